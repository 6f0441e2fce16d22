"""A Consul agent for beacon's integration tests (Python 3 standard library only).

    with Consul() as c:                      # tests/sim/consul_sim.py on a free port
        c.kv_put("config/web/color", "blue")
        c.services(); c.checks()             # the agent API, as beacon's registration left it
        c.kill(); c.start()                  # down, then back on the same port(s)
        c.restart_without_state()            # /sim/restart (real Consul: kill + start)
        c.sim("garbage", count=2)            # /sim/ fault controls (simulator only)

By default this starts the simulator (tests/sim/consul_sim.py) with the
interpreter running the tests. With CONSUL_BIN set it starts a real
`$CONSUL_BIN agent -dev` on free loopback ports instead (its -dev mode keeps
no state, so a restart is a restart without state); tests that need the
simulator's /sim/ controls call require_sim(), which skips them there.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from harness import free_port, skip

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "..", "sim", "consul_sim.py")
CONSUL_BIN = os.environ.get("CONSUL_BIN", "")


def real_consul():
    return bool(CONSUL_BIN)


class Consul:
    """One Consul agent (simulator or real dev agent) on loopback.

    acl_token: management token; enables ACLs with default policy deny.
    unix: also serve the HTTP API on DIR/consul.sock (self.unix_path).
    tls: files from etcd_fixture.make_certs: serve https (simulator only).
    sim_args: extra simulator flags (modes such as --legacy-unknown-errors);
    a test that passes them needs the simulator (require_sim).
    """

    def __init__(self, acl_token=None, unix=False, tls=None, sim_args=()):
        self.real = real_consul()
        if self.real and not os.access(CONSUL_BIN, os.X_OK):
            skip("CONSUL_BIN=%s is not an executable" % CONSUL_BIN)
        if self.real and tls:
            skip("the https listener is the simulator's (tls=)")
        self.dir = tempfile.mkdtemp(prefix="beacon-consul-", dir="/tmp")
        self.port = free_port()
        self.extra_ports = [free_port() for _ in range(3)] if self.real else []
        self.acl_token = acl_token
        self.unix_path = os.path.join(self.dir, "consul.sock") if unix else None
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)
        self.tls = tls
        self._ssl = None
        if tls:
            import ssl
            self._ssl = ssl.create_default_context(cafile=tls["ca"])
            self._ssl.check_hostname = False  # the CA is still checked
        self.proc = None
        self.log_file = None
        self.sim_args = list(sim_args)

    # -- life --

    def _argv(self):
        if not self.real:
            argv = [sys.executable, SIM, "--port", str(self.port), "--node", "beacon-sim"]
            if self.acl_token:
                argv += ["--acl-token", self.acl_token]
            if self.unix_path:
                argv += ["--unix", self.unix_path]
            if self.tls:
                argv += ["--tls-cert", self.tls["server"], "--tls-key", self.tls["server_key"]]
            return argv + self.sim_args
        p1, p2, p3 = self.extra_ports
        argv = [CONSUL_BIN, "agent", "-dev", "-node", "beacon-sim", "-datacenter", "dc1",
                "-bind", "127.0.0.1", "-client", "127.0.0.1", "-http-port", str(self.port),
                "-dns-port", "-1", "-grpc-port", "-1", "-server-port", str(p1),
                "-serf-lan-port", str(p2), "-serf-wan-port", str(p3), "-log-level", "warn",
                "-hcl", 'check_update_interval = "0s"']
        if self.acl_token:
            argv += ["-hcl", 'acl { enabled = true default_policy = "deny" '
                             'tokens { initial_management = "%s" } }' % self.acl_token]
        if self.unix_path:
            argv += ["-hcl", 'addresses { http = "127.0.0.1 unix://%s" }' % self.unix_path]
        return argv

    def start(self, timeout=20):
        self.log_file = open(os.path.join(self.dir, "consul.log"), "ab")
        if self.real:
            self.proc = subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL, stdout=self.log_file,
                                         stderr=self.log_file)
        else:
            self.proc = subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=self.log_file, universal_newlines=True)
            line = []
            t = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
            t.start()
            t.join(timeout)
            if not line or not line[0].startswith("LISTENING "):
                self.kill()
                raise AssertionError("the Consul simulator did not start (%r); log:\n%s" % (line, self.log()))
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("consul exited with %d; log:\n%s" % (self.proc.returncode, self.log()))
            try:
                st, _, leader = self.request("GET", "/v1/status/leader", timeout=1)
                if st == 200 and leader:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("consul did not elect a leader within %ds; log:\n%s" % (timeout, self.log()))
            time.sleep(0.05)
        if self.real and self.unix_path:
            deadline = time.monotonic() + timeout
            while not os.path.exists(self.unix_path):
                if time.monotonic() > deadline:
                    raise AssertionError("consul did not create %s" % self.unix_path)
                time.sleep(0.05)
        return self

    def log(self):
        try:
            with open(os.path.join(self.dir, "consul.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def kill(self):
        """SIGKILL: the agent vanishes without closing anything gracefully."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        if self.log_file:
            self.log_file.close()
            self.log_file = None

    def restart_without_state(self, down_ms=0):
        """The agent restarts and forgets every service, check and key."""
        if self.real:
            self.kill()
            time.sleep(down_ms / 1000.0)
            self.start()
        else:
            self.sim("restart", down_ms=down_ms)

    def close(self):
        with contextlib.suppress(Exception):
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()
        return False

    # -- the HTTP API --

    def request(self, method, path, body=None, token=None, timeout=10):
        """(status, headers, decoded body) of one call; the management token by default."""
        data = body.encode() if isinstance(body, str) else body
        if data is None and method in ("PUT", "POST"):
            data = b""
        req = urllib.request.Request(self.url + path, data=data, method=method)
        tok = self.acl_token if token is None else token
        if tok:
            req.add_header("X-Consul-Token", tok)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ssl) as r:
                status, headers, raw = r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            status, headers, raw = e.code, dict(e.headers), e.read()
        text = raw.decode("utf-8", "replace")
        try:
            value = json.loads(text) if text.strip() else None
        except ValueError:
            value = text
        return status, headers, value

    def ok(self, method, path, body=None):
        st, _, value = self.request(method, path, body)
        assert st == 200, "consul %s %s answered %d: %r" % (method, path, st, value)
        return value

    def services(self):
        """The agent's services: {id: {...}}."""
        return self.ok("GET", "/v1/agent/services")

    def checks(self):
        """The agent's checks: {check_id: {...}}."""
        return self.ok("GET", "/v1/agent/checks")

    def check_status(self, check_id):
        c = self.checks().get(check_id)
        return c and c["Status"]

    def health(self, service):
        return self.ok("GET", "/v1/health/service/%s" % urllib.parse.quote(service, safe=""))

    def register(self, svc):
        """Register another instance directly (as some other agent would)."""
        return self.ok("PUT", "/v1/agent/service/register", json.dumps(svc))

    def deregister(self, sid):
        return self.ok("PUT", "/v1/agent/service/deregister/%s" % urllib.parse.quote(sid, safe=""))

    def kv_put(self, key, value):
        return self.ok("PUT", "/v1/kv/%s" % urllib.parse.quote(key), value)

    def kv_delete(self, key, recurse=False):
        return self.ok("DELETE", "/v1/kv/%s%s" % (urllib.parse.quote(key), "?recurse" if recurse else ""))

    # -- simulator only --

    def require_sim(self, what="this test"):
        if self.real:
            skip("%s needs the simulator's /sim/ controls (CONSUL_BIN is set)" % what)

    def sim(self, name, **params):
        self.require_sim("/sim/%s" % name)
        q = urllib.parse.urlencode(params)
        return self.ok("POST", "/sim/%s%s" % (name, "?" + q if q else ""))

    def state(self):
        """The simulator's whole state (checks with their update history, kv, index...)."""
        self.require_sim("/sim/state")
        return self.ok("GET", "/sim/state")
