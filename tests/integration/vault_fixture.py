"""A Vault for beacon's integration tests (Python 3 standard library only).

    with Vault() as v:                      # tests/sim/vault_sim.py on a free port
        v.kv2_put("web/db", {"password": "x"})
        v.approle("role-id", "secret-id", ttl="60s", max_ttl="5m")
        v.seal(); v.unseal()
        v.state()                           # the simulator's /sim/state

By default this runs the simulator (tests/sim/vault_sim.py, started with
sys.executable). With VAULT_BIN set it starts a real `vault server -dev` on a
free port and does through Vault's own API the setup the simulator takes
from flags (AppRole, a KV v1 mount at kv/). Tests that need /sim/ controls
(state with renewal history, failure injection, Kubernetes and database
roles, namespaces) call require_sim(), which skips them under VAULT_BIN.
"""

import json
import os
import re
import shutil
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
SIM = os.path.join(HERE, "..", "sim", "vault_sim.py")
ROOT = "root"


class Vault:
    """One Vault on loopback: the simulator, or a real dev server under VAULT_BIN.

    namespaces: comma list for the simulator's Enterprise-style namespaces.
    tls: files from etcd_fixture.make_certs: serve https (simulator only).
    """

    def __init__(self, namespaces=None, extra=(), tls=None):
        self.bin = os.environ.get("VAULT_BIN", "")
        self.real = bool(self.bin)
        self.namespaces = namespaces
        self.extra = list(extra)
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="beacon-vault-", dir="/tmp")
        self.port = None
        self.url = None
        self.unseal_key = None
        self.root_token = ROOT
        self.tls = tls
        self._ssl = None
        self.standby_url = None

    # -- life --

    def start(self):
        if self.real:
            self._start_real()
        else:
            self._start_sim()
        return self

    def _start_sim(self):
        argv = [sys.executable, SIM, "--port", "0", "--root-token", ROOT] + self.extra
        if self.namespaces:
            argv += ["--namespaces", self.namespaces]
        if self.tls:
            import ssl
            argv += ["--tls-cert", self.tls["server"], "--tls-key", self.tls["server_key"]]
            self._ssl = ssl.create_default_context(cafile=self.tls["ca"])
            self._ssl.check_hostname = False  # the CA is still checked
        self._log = open(os.path.join(self.dir, "sim.log"), "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._log)
        line = []
        t = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(10)
        if not line or not line[0].startswith(b"LISTENING "):
            self.proc.kill()
            raise AssertionError("the Vault simulator did not start: %r" % (line,))
        self.port = int(line[0].split()[1])
        self.url = "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)
        self.unseal_key = "c2ltLXVuc2VhbC1rZXk="
        if "--standby" in self.extra:
            # The HA pair's standby node: answers 307 to self.url (vault_sim.py StandbyHandler).
            line = self.proc.stdout.readline()
            if not line.startswith(b"STANDBY "):
                self.proc.kill()
                raise AssertionError("the Vault simulator started no standby: %r" % (line,))
            scheme = "https" if "--standby-tls" in self.extra else "http"
            self.standby_url = "%s://127.0.0.1:%d" % (scheme, int(line.split()[1]))

    def _start_real(self):
        if self.namespaces:
            skip("namespaces need Vault Enterprise")
        if self.tls:
            skip("the https listener is the simulator's (tls=)")
        if "--standby" in self.extra:
            skip("an HA pair needs the simulator's --standby node")
        if self.extra:
            skip("simulator options %s" % " ".join(self.extra))
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self._log = open(os.path.join(self.dir, "vault.log"), "wb")
        self.proc = subprocess.Popen([self.bin, "server", "-dev", "-dev-root-token-id=" + ROOT,
                                      "-dev-listen-address=127.0.0.1:%d" % self.port],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("vault server -dev exited: %s" % self.log())
            try:
                if self.v1("GET", "sys/health", token="")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("vault server -dev did not become healthy: %s" % self.log())
            time.sleep(0.1)
        m = re.search(r"Unseal Key: (\S+)", self.log())
        self.unseal_key = m.group(1) if m else None
        self.v1("POST", "sys/auth/approle", {"type": "approle"}, expect=(200, 204))
        self.v1("POST", "sys/mounts/kv", {"type": "kv", "options": {"version": "1"}}, expect=(200, 204))

    def log(self):
        for name in ("vault.log", "sim.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    return f.read().decode("utf-8", "replace")[-4000:]
            except OSError:
                pass
        return ""

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        if getattr(self, "_log", None):
            self._log.close()
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

    def require_sim(self, what):
        if self.real:
            skip("%s needs the simulator's /sim/ controls (VAULT_BIN is set)" % what)

    # -- HTTP --

    def _call(self, method, path, body=None, headers=None, timeout=10):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers=dict(headers or {}))
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ssl) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        return status, (json.loads(text) if text.strip() else None)

    def v1(self, method, path, body=None, token=ROOT, namespace=None, expect=None):
        """A Vault API call as root (token="" for none); (status, answer)."""
        headers = {}
        if token:
            headers["X-Vault-Token"] = token
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        st, obj = self._call(method, "/v1/" + path, body, headers)
        if expect and st not in expect:
            raise AssertionError("Vault %s %s answered %d: %r" % (method, path, st, obj))
        return st, obj

    def sim(self, control, body=None, **query):
        """POST /sim/<control> (GET for /state) with query parameters; the answer."""
        self.require_sim("/sim" + control)
        q = ("?" + urllib.parse.urlencode(query)) if query else ""
        st, obj = self._call("POST" if body is not None or control != "/state" else "GET",
                             "/sim" + control + q, body)
        if st != 200:
            raise AssertionError("sim %s answered %d: %r" % (control, st, obj))
        return obj

    # -- setup --

    def kv2_put(self, path, data, namespace=None):
        """Write a new KV v2 version at secret/data/<path>; returns the version."""
        if not self.real:
            q = {"path": path}
            if namespace:
                q["namespace"] = namespace
            return self.sim("/kv2", data, **q)["version"]
        st, obj = self.v1("POST", "secret/data/" + path, {"data": data}, expect=(200,))
        return obj["data"]["version"]

    def kv1_put(self, path, data):
        """Write a KV v1 secret at kv/<path>."""
        if not self.real:
            self.sim("/kv1", data, path=path)
            return
        self.v1("POST", "kv/" + path, data, expect=(200, 204))

    def create_token(self, ttl="1h", policies=("default",)):
        """A new token (for the token auth method)."""
        st, obj = self.v1("POST", "auth/token/create", {"ttl": ttl, "policies": list(policies)},
                          expect=(200,))
        return obj["auth"]["client_token"]

    def approle(self, role_id, secret_id, ttl="60s", max_ttl="300s", num_uses=0, name=None):
        """An AppRole whose role_id and secret_id are the given strings."""
        name = name or re.sub(r"[^a-zA-Z0-9_-]", "-", role_id)
        if not self.real:
            spec = "%s:%s:ttl=%s:max_ttl=%s:name=%s" % (role_id, secret_id, ttl, max_ttl, name)
            if num_uses:
                spec += ":num_uses=%d" % num_uses
            self.sim("/approle", {}, spec=spec)
            return
        self.v1("POST", "auth/approle/role/" + name,
                {"token_ttl": ttl, "token_max_ttl": max_ttl, "token_policies": ["default"],
                 "secret_id_num_uses": num_uses}, expect=(200, 204))
        self.v1("POST", "auth/approle/role/%s/role-id" % name, {"role_id": role_id}, expect=(200, 204))
        self.v1("POST", "auth/approle/role/%s/custom-secret-id" % name, {"secret_id": secret_id},
                expect=(200,))

    def k8s_role(self, role, jwt, ttl="60s", max_ttl="300s"):
        self.sim("/k8s-role", {}, spec="%s:%s:ttl=%s:max_ttl=%s" % (role, jwt, ttl, max_ttl))

    def db_role(self, name, ttl, max_ttl):
        self.sim("/db-role", {}, spec="%s:ttl=%s:max_ttl=%s" % (name, ttl, max_ttl))

    def db_static_role(self, name, rotation_period):
        self.sim("/db-static-role", {}, spec="%s:rotation_period=%s" % (name, rotation_period))

    # -- faults and inspection --

    def seal(self):
        if not self.real:
            self.sim("/seal", {})
        else:
            self.v1("PUT", "sys/seal", expect=(200, 204))

    def unseal(self):
        if not self.real:
            self.sim("/unseal", {})
        else:
            self.v1("PUT", "sys/unseal", {"key": self.unseal_key}, token="", expect=(200,))

    def state(self):
        return self.sim("/state")

    def token_valid(self, token):
        """Does Vault still accept this token? (Asked as root.)"""
        st, _ = self.v1("POST", "auth/token/lookup", {"token": token})
        return st == 200

    def revoke_token(self, token):
        self.v1("POST", "auth/token/revoke", {"token": token}, expect=(200, 204))

    def tokens(self, kind=None):
        """The simulator's tokens (id, accessor, renewals...), oldest first."""
        return [t for t in self.state()["tokens"] if kind is None or t["kind"] == kind]
