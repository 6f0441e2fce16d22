"""A real etcd for beacon's integration tests (Python 3 standard library only).

    with Etcd() as e:                 # free loopback ports, temporary data dir
        e.put("/k", "v"); e.get("/k")
        e.kill9(); e.restart()        # same data dir and ports
        e.sigstop(); e.sigcont()

Talks to etcd through its JSON gateway (/v3/...) and, for setup that is
simpler there (users, roles), through etcdctl. Everything is cleaned up on
exit, including a SIGSTOPped etcd. Skips the test when etcd is not installed.
"""

import base64
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from harness import free_port, skip

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def unb64(text):
    return base64.b64decode(text or "")


def prefix_end(prefix):
    """etcd's range_end for every key starting with prefix (bytes)."""
    if isinstance(prefix, str):
        prefix = prefix.encode()
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return b"\0"
    p[-1] += 1
    return bytes(p)


def make_certs(d, server_name=None):
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl).
    With server_name, the server certificate holds only that DNS name, as one
    issued for a cluster-internal or load-balancer name and reached by IP."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=beacon-test-ca")
    # The 3.4 gateway dials etcd with the server certificate: it needs clientAuth too.
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=%s\n" % ("DNS:" + server_name if server_name else "IP:127.0.0.1,DNS:localhost") +
                "extendedKeyUsage=serverAuth,clientAuth\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name, ext in (("server", "server.ext"), ("client", "client.ext")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
            "-subj", "/CN=" + ((server_name or "127.0.0.1") if name == "server" else "beacon-client"))
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", ext)
    return {k: os.path.join(d, k + ".crt") for k in ("ca", "server", "client")} | \
        {k + "_key": os.path.join(d, k + ".key") for k in ("server", "client")}


def start_on_free_ports(start, members, close):
    """start() the etcd members. A port found free can still be taken (by some
    client's ephemeral port) before etcd binds it: on "address already in use"
    the members get new ports and a fresh data dir, up to 3 tries. Anything
    else closes them and raises."""
    for attempt in range(3):
        try:
            return start()
        except AssertionError as e:
            for m in members:
                with contextlib.suppress(Exception):
                    m.kill9()
            if "address already in use" not in str(e) or attempt == 2:
                close()
                raise
            for m in members:
                shutil.rmtree(m.data, ignore_errors=True)
                m._pick_ports()
        except BaseException:
            close()
            raise


class Etcd:
    """One etcd member on loopback.

    tls: serve https with a generated CA and require client certificates.
    server_name: with tls, the server certificate names only this DNS name
    (still served on 127.0.0.1); the fixture's own calls then skip the name check.
    extra: more command-line flags (e.g. ["--max-txn-ops", "10000"]).
    """

    def __init__(self, tls=False, extra=(), name="beacon-test", server_name=None):
        if not os.access(ETCD, os.X_OK):
            skip("etcd is not installed")
        self.name = name
        self.cluster = None  # "n1=peer1,n2=peer2,...": a member of EtcdCluster
        self.dir = tempfile.mkdtemp(prefix="beacon-etcd-", dir="/tmp")
        self.data = os.path.join(self.dir, "data")
        self.tls = tls
        self.extra = list(extra)
        self.proc = None
        self.stopped = False
        self.token = None  # set by as_root() once auth is on
        self.root_password = None
        self.certs = make_certs(self.dir, server_name) if tls else None
        self._pick_ports()
        self._ssl = None
        if tls:
            self._ssl = ssl.create_default_context(cafile=self.certs["ca"])
            self._ssl.load_cert_chain(self.certs["client"], self.certs["client_key"])
            self._ssl.check_hostname = not server_name  # the CA is still checked

    def _pick_ports(self):
        self.client_port = free_port()
        self.peer_port = free_port()
        scheme = "https" if self.tls else "http"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.client_port)
        self.peer_url = "http://127.0.0.1:%d" % self.peer_port

    # -- life --

    def spawn(self):
        """Start the process without waiting (cluster members wait for each other)."""
        self.start(timeout=None)

    def start(self, timeout=15):
        argv = [ETCD, "--name", self.name, "--data-dir", self.data,
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", self.cluster or "%s=%s" % (self.name, self.peer_url),
                "--initial-cluster-state", "new", "--log-level", "warn", "--logger", "zap"]
        if self.tls:
            argv += ["--cert-file", self.certs["server"], "--key-file", self.certs["server_key"],
                     "--trusted-ca-file", self.certs["ca"], "--client-cert-auth"]
        argv += self.extra
        self.log_file = open(os.path.join(self.dir, "etcd.log"), "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=self.log_file)
        self.stopped = False
        if timeout is None:
            return self
        return self.wait_healthy(timeout)

    def wait_healthy(self, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("etcd exited with %d; log:\n%s" % (self.proc.returncode, self.log()))
            try:
                self.call("/v3/maintenance/status", {}, timeout=1)
                return self
            except (OSError, ValueError, AssertionError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("etcd did not become healthy within %ds; log:\n%s"
                                     % (timeout, self.log()))
            time.sleep(0.05)

    def log(self):
        try:
            with open(os.path.join(self.dir, "etcd.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def kill9(self):
        if self.stopped:
            self.sigcont()
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if getattr(self, "log_file", None):
            self.log_file.close()
            self.log_file = None

    def restart(self):
        """kill -9 (when running), then start again on the same data dir and ports."""
        self.kill9()
        return self.start()

    def sigstop(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.stopped = True

    def sigcont(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.stopped = False

    def close(self):
        with contextlib.suppress(Exception):
            self.kill9()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return start_on_free_ports(self.start, [self], self.close)

    def __exit__(self, *exc):
        self.close()
        return False

    # -- the JSON gateway --

    def call(self, path, body, timeout=10, _retry=True):
        """POST body to path; the decoded answer. AssertionError on an etcd error."""
        data = json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        if self.token:
            req.add_header("Authorization", self.token)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ssl) as r:
                text = r.read().decode()
        except urllib.error.HTTPError as e:
            text = e.read()[:300]
            if e.code == 401 and self.root_password and _retry and b"invalid auth token" in text:
                self.as_root(self.root_password)
                return self.call(path, body, timeout, _retry=False)
            raise AssertionError("etcd %s answered %d: %s" % (path, e.code, text))
        # Streaming endpoints (keepalive) answer {"result": ...}.
        obj = json.loads(text.splitlines()[0]) if text.strip() else {}
        return obj.get("result", obj)

    def put(self, key, value, lease=None):
        body = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self.call("/v3/kv/put", body)["header"]["revision"])

    def txn_put(self, items):
        """Put many (key, value) pairs in one transaction (one revision)."""
        ops = [{"request_put": {"key": b64(k), "value": b64(v)}} for k, v in items]
        return int(self.call("/v3/kv/txn", {"success": ops}, timeout=60)["header"]["revision"])

    def range(self, key, prefix=False):
        body = {"key": b64(key)}
        if prefix:
            body["range_end"] = b64(prefix_end(key))
        return self.call("/v3/kv/range", body).get("kvs", [])

    def get(self, key):
        """{"value": str, "lease": int, "mod_revision": int} or None."""
        kvs = self.range(key)
        if not kvs:
            return None
        kv = kvs[0]
        return {"value": unb64(kv.get("value")).decode("utf-8", "replace"),
                "lease": int(kv.get("lease", 0)), "mod_revision": int(kv.get("mod_revision", 0))}

    def get_json(self, key):
        kv = self.get(key)
        return json.loads(kv["value"]) if kv else None

    def keys(self, prefix):
        return [unb64(kv["key"]).decode("utf-8", "replace") for kv in self.range(prefix, True)]

    def delete(self, key, prefix=False):
        body = {"key": b64(key)}
        if prefix:
            body["range_end"] = b64(prefix_end(key))
        return int(self.call("/v3/kv/deleterange", body).get("deleted", 0))

    def revision(self):
        return int(self.call("/v3/kv/range", {"key": b64("\0")})["header"]["revision"])

    def compact(self, revision=None):
        rev = revision or self.revision()
        self.call("/v3/kv/compaction", {"revision": rev, "physical": True}, timeout=30)
        return rev

    def lease_revoke(self, lease):
        return self.call("/v3/lease/revoke", {"ID": str(lease)})

    def lease_ttl(self, lease):
        """Remaining TTL in seconds; -1 when etcd does not know the lease."""
        return int(self.call("/v3/lease/timetolive", {"ID": str(lease)}).get("TTL", -1))

    def leases(self):
        return [int(l["ID"]) for l in self.call("/v3/lease/leases", {}).get("leases", [])]

    # -- etcdctl, for auth setup --

    def etcdctl(self, *args, user=None, check=True):
        argv = [ETCDCTL, "--endpoints", self.url, "--dial-timeout", "5s", "--command-timeout", "10s"]
        if self.tls:
            argv += ["--cacert", self.certs["ca"], "--cert", self.certs["client"],
                     "--key", self.certs["client_key"]]
        if user:
            argv += ["--user", user]
        argv += list(args)
        env = dict(os.environ, ETCDCTL_API="3")
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           universal_newlines=True, timeout=30)
        if check and p.returncode != 0:
            raise AssertionError("etcdctl %s failed: %s %s" % (" ".join(args), p.stdout, p.stderr))
        return p.stdout

    def as_root(self, password):
        """Use a root token for the gateway helpers (after auth is enabled)."""
        self.token = None
        self.root_password = password
        self.token = self.call("/v3/auth/authenticate", {"name": "root", "password": password},
                               _retry=False)["token"]



class EtcdCluster:
    """Several etcd members on loopback forming one cluster.

        with EtcdCluster(3) as c:
            c.members[0].put(...); c.urls; c.member_at(url).kill9()

    Short heartbeat and election timeouts, so losing the leader costs well
    under a second.
    """

    def __init__(self, size=3):
        timing = ["--heartbeat-interval", "50", "--election-timeout", "500"]
        self.members = [Etcd(extra=timing, name="m%d" % i) for i in range(size)]

    @property
    def urls(self):
        return [m.url for m in self.members]

    def member_at(self, url):
        return next(m for m in self.members if m.url == url)

    def others(self, url):
        return [m for m in self.members if m.url != url]

    def _start(self):
        spec = ",".join("%s=%s" % (m.name, m.peer_url) for m in self.members)
        for m in self.members:
            m.cluster = spec
            m.spawn()
        for m in self.members:
            m.wait_healthy(20)
        # Healthy members may still be electing: wait until a write goes through.
        deadline = time.monotonic() + 20
        while True:
            try:
                self.members[0].put("/beacon-test/leader-check", "1")
                return self
            except (OSError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def __enter__(self):
        return start_on_free_ports(self._start, self.members, self.close)

    def close(self):
        for m in self.members:
            m.close()

    def __exit__(self, *exc):
        self.close()
        return False
