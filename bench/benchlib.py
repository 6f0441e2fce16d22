"""benchlib.py - the machinery behind bench.py: processes (beacon, nginx, etcd)
started and always stopped, /proc readings, CPU pinning, small HTTP clients,
runs of build/loadgen and wrk, and the propagation driver.

Python 3 standard library only. Every process started here is listed in
PROCS and stopped by stop_all(), also when a step fails.
"""

import base64
import http.client
import json
import math
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROCS = []          # every process we started, stopped on the way out
DIRS = []           # directories outside the work dir (etcd's on tmpfs), removed likewise
T0 = time.monotonic()


def log(msg):
    print("[%6.1fs] %s" % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, p):
    """Nearest-rank percentile of a list (None when empty)."""
    if not values:
        return None
    v = sorted(values)
    return v[max(0, min(len(v) - 1, math.ceil(p / 100.0 * len(v)) - 1))]


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def prefix_end(prefix):
    p = bytearray(prefix.encode())
    while p and p[-1] == 0xFF:
        p.pop()
    p[-1] += 1
    return bytes(p)


# ---- CPUs, /proc -------------------------------------------------------------

ALL_CPUS = sorted(os.sched_getaffinity(0))
if len(ALL_CPUS) >= 2:
    LOADGEN_CPUS, SERVER_CPUS = {ALL_CPUS[0]}, {ALL_CPUS[1]}
else:
    LOADGEN_CPUS = SERVER_CPUS = set(ALL_CPUS)


def pin(pid, cpus):
    """Set the affinity of every thread of pid (Go's etcd has many)."""
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                os.sched_setaffinity(int(tid), cpus)
            except OSError:
                pass
    except OSError:
        pass


def proc_cpu(pid):
    """utime + stime of the whole process, in seconds (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_sched_ns(pid):
    """On-CPU time of every thread in ns (schedstat: finer than CLK_TCK)."""
    total = 0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    total += int(f.read().split()[0])
            except OSError:
                pass
    except OSError:
        return None
    return total


def proc_mem(pid):
    """VmRSS, VmHWM, RssAnon, RssFile, RssShmem, and Pss (shared pages
    divided among the processes mapping them) in KiB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[k] = int(v.split()[0])
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Pss", "Pss_Anon", "Pss_File"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def system_busy():
    """(busy, total) jiffies over all CPUs (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:8]) - idle, sum(v[:8])


# ---- processes ---------------------------------------------------------------

class Proc:
    def __init__(self, argv, logpath, cpus=None, env=None):
        self.argv = argv
        self.logpath = logpath
        self.logf = open(logpath, "ab")
        self.t_exec = time.monotonic()
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                  stderr=self.logf, env=env,
                                  preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        self.pid = self.p.pid
        PROCS.append(self)

    def alive(self):
        return self.p.poll() is None

    def log(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout=10):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logf.close()
        if self in PROCS:
            PROCS.remove(self)


def stop_all():
    for p in list(PROCS):
        try:
            p.stop(timeout=5)
        except Exception:
            pass
    while DIRS:
        shutil.rmtree(DIRS.pop(), ignore_errors=True)


# ---- small HTTP clients --------------------------------------------------------

class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("beacon", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def unix_get(path, target, timeout=10):
    """(status, headers dict lower-cased, body bytes, raw head length)."""
    c = UnixHTTPConnection(path, timeout)
    try:
        c.request("GET", target)
        r = c.getresponse()
        body = r.read()
        headers = {k.lower(): v for k, v in r.getheaders()}
        head = len("HTTP/1.1 %d %s\r\n" % (r.status, r.reason)) + \
            sum(len(k) + len(v) + 4 for k, v in r.getheaders()) + 2
        return r.status, headers, body, head
    finally:
        c.close()


class Etcd:
    """One etcd member on loopback, its data dir on tmpfs when there is one."""

    def __init__(self, workdir, cpus=None):
        exe = shutil.which("etcd") or "/usr/bin/etcd"
        if not os.access(exe, os.X_OK):
            raise RuntimeError("etcd is not installed (apt-get install etcd-server)")
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else workdir
        self.dir = tempfile.mkdtemp(prefix="beacon-bench-etcd-", dir=base)
        DIRS.append(self.dir)
        self.on_tmpfs = base == "/dev/shm"
        self.port = free_port()
        peer = "http://127.0.0.1:%d" % free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        argv = [exe, "--name", "bench", "--data-dir", os.path.join(self.dir, "data"),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", "bench=" + peer, "--initial-cluster-state", "new",
                "--log-level", "warn", "--logger", "zap",
                "--max-txn-ops", "10000", "--max-request-bytes", str(32 << 20),
                "--quota-backend-bytes", str(4 << 30)]
        self.proc = Proc(argv, os.path.join(workdir, "etcd.log"), cpus)
        self.conn = None
        deadline = time.monotonic() + 20
        while True:
            if not self.proc.alive():
                raise RuntimeError("etcd exited: " + self.proc.log()[-2000:])
            try:
                self.call("/v3/maintenance/status", {}, timeout=1)
                break
            except (OSError, ValueError, RuntimeError, http.client.HTTPException):
                self.conn = None
            if time.monotonic() > deadline:
                raise RuntimeError("etcd did not start: " + self.proc.log()[-2000:])
            time.sleep(0.05)
        self.version = subprocess.run([exe, "--version"], stdout=subprocess.PIPE,
                                      universal_newlines=True).stdout.split("\n")[0]

    def call(self, path, body, timeout=60):
        """POST JSON over one keep-alive connection; the decoded answer."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                self.conn.request("POST", path, json.dumps(body),
                                  {"Content-Type": "application/json"})
                r = self.conn.getresponse()
                text = r.read()
                if r.status != 200:
                    raise RuntimeError("etcd %s answered %d: %s" % (path, r.status, text[:300]))
                return json.loads(text)
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def put(self, key, value):
        return self.call("/v3/kv/put", {"key": b64(key), "value": b64(value)})

    def txn_put(self, items):
        ops = [{"request_put": {"key": b64(k), "value": b64(v)}} for k, v in items]
        return self.call("/v3/kv/txn", {"success": ops}, timeout=120)

    def range_count(self, prefix):
        r = self.call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix)),
                                       "count_only": True})
        return int(r.get("count", 0))

    def close(self):
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- beacon and nginx ------------------------------------------------------------

def endpoint(i, service, port=8080, rev=None):
    """The ENDPOINT objects every part uses: addresses of equal length, so
    every /v1/pick answer has the same number of bytes."""
    meta = {"zone": "a"}
    if rev is not None:
        meta["rev"] = str(rev)
    addr = "10.%d.%d.%d" % (100 + i // 156 // 156 % 156, 100 + i // 156 % 156, 100 + i % 156)
    return {"id": "%s:%d" % (addr, port), "service": service, "address": addr, "port": port,
            "tags": ["v1"], "meta": meta, "weight": 1, "status": "passing"}


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


class Beacon:
    def __init__(self, exe, workdir, name, config, cpus=None):
        self.sock = os.path.join(workdir, name + ".sock")
        self.cfgpath = os.path.join(workdir, name + ".json")
        config = dict(config)
        config["socket"] = {"path": self.sock, "mode": "0600"}
        config.setdefault("log", {"level": "info", "format": "text"})
        with open(self.cfgpath, "w") as f:
            json.dump(config, f)
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.proc = Proc([exe, "agent", "--config", self.cfgpath],
                         os.path.join(workdir, name + ".log"), cpus)
        self.pid = self.proc.pid

    def wait_ready(self, timeout=120, interval=0.001):
        """Seconds from exec to the first GET /ready answering 200."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.proc.alive():
                raise RuntimeError("beacon exited: " + self.proc.log()[-2000:])
            try:
                st, _, _, _ = unix_get(self.sock, "/ready", timeout=5)
                if st == 200:
                    return time.monotonic() - self.proc.t_exec
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("beacon not ready after %ds: %s" % (timeout, self.proc.log()[-2000:]))
            time.sleep(interval)

    def own_ready_ms(self):
        m = re.search(r"ready ([0-9.]+) ms after start", self.proc.log())
        return float(m.group(1)) if m else None

    def stop(self):
        self.proc.stop()


def ensure_nginx():
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if os.access(exe, os.X_OK):
        return exe, None
    log("nginx is missing: apt-get install -y nginx-light")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "nginx-light"]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(exe, os.X_OK):
        return None, "nginx is not installed and apt-get install nginx-light failed"
    return exe, "installed nginx-light"


class Nginx:
    """Debian's nginx as one process (master_process off), its own config."""

    def __init__(self, exe, workdir, files, cpus=None, name="nginx"):
        self.dir = os.path.join(workdir, name)
        self.root = os.path.join(self.dir, "www")
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        for rel, data in files.items():
            p = os.path.join(self.root, rel.lstrip("/"))
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
        self.sock = os.path.join(self.dir, "n.sock")
        self.port = free_port()
        t = os.path.join(self.dir, "tmp")
        conf = """
daemon off;
master_process off;
worker_processes 1;
error_log %(d)s/error.log warn;
pid %(d)s/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    default_type application/json;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    open_file_cache max=100 inactive=60s;
    client_body_temp_path %(t)s; proxy_temp_path %(t)s; fastcgi_temp_path %(t)s;
    uwsgi_temp_path %(t)s; scgi_temp_path %(t)s;
    server {
        listen unix:%(sock)s;
        listen 127.0.0.1:%(port)d;
        root %(root)s;
    }
}
""" % {"d": self.dir, "t": t, "sock": self.sock, "port": self.port, "root": self.root}
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.exe = exe
        self.proc = Proc([exe, "-c", self.conf, "-p", self.dir], os.path.join(self.dir, "out.log"), cpus)
        self.pid = self.proc.pid

    def wait_serving(self, path, timeout=10, interval=0.001):
        deadline = time.monotonic() + timeout
        while True:
            if not self.proc.alive():
                raise RuntimeError("nginx exited: " + self.proc.log()[-2000:])
            try:
                st, _, _, _ = unix_get(self.sock, path, timeout=5)
                if st == 200:
                    return time.monotonic() - self.proc.t_exec
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("nginx did not serve: " + self.proc.log()[-2000:])
            time.sleep(interval)

    def stop(self):
        self.proc.stop()
        if os.path.exists(self.sock):
            os.unlink(self.sock)


def version_of(argv):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=10)
        return p.stdout.strip().split("\n")[0]
    except OSError:
        return None


# ---- load generation ---------------------------------------------------------------

class Runner:
    def __init__(self, loadgen, duration, warmup):
        self.loadgen = loadgen
        self.duration = duration
        self.warmup = warmup
        self.runs = []

    def loadgen_run(self, label, target, path, conns, server_pid, extra=(), expect_bytes=None):
        argv = [self.loadgen] + list(target) + ["--path", path, "-c", str(conns),
                                                "-d", str(self.duration), "--warmup", str(self.warmup),
                                                "--expect-status", "200"] + list(extra)
        if expect_bytes is not None:
            argv += ["--expect-bytes", str(expect_bytes)]
        pin(server_pid, SERVER_CPUS)
        c0, b0 = proc_cpu(server_pid), system_busy()
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=self.duration + self.warmup + 60,
                           preexec_fn=lambda: os.sched_setaffinity(0, LOADGEN_CPUS))
        c1, b1 = proc_cpu(server_pid), system_busy()
        pin(server_pid, set(ALL_CPUS))
        if p.returncode != 0 and not p.stdout.strip():
            raise RuntimeError("loadgen failed on %s: %s" % (label, p.stderr.strip()))
        r = json.loads(p.stdout)
        wall = self.duration + self.warmup
        r["label"] = label
        r["server_cpu_util"] = round((c1 - c0) / wall, 3)
        # CPU busy on the machine that was neither the server nor the generator
        # (other tenants); a noisy neighbour shows up here.
        other = (b1[0] - b0[0]) / CLK_TCK - (c1 - c0) - r["loadgen_cpu_util"] * wall
        r["other_cpu_util"] = round(max(0.0, other / wall), 3)
        self.runs.append(r)
        return r

    def wrk_run(self, url, conns, server_pid):
        exe = shutil.which("wrk")
        if not exe:
            return None
        pin(server_pid, SERVER_CPUS)
        secs = max(1, round(self.duration))
        p = subprocess.run([exe, "-t1", "-c%d" % conns, "-d%ds" % secs,
                            "--latency", url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=self.duration + self.warmup + 60,
                           preexec_fn=lambda: os.sched_setaffinity(0, LOADGEN_CPUS))
        pin(server_pid, set(ALL_CPUS))
        out = p.stdout

        def us(text):
            m = re.match(r"([0-9.]+)(us|ms|s)$", text)
            if not m:
                return None
            return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
        rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
        p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
        p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
        errs = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        sock = re.search(r"Socket errors:.*", out)
        return {"tool": "wrk -t1", "url": url, "connections": conns,
                "duration_s": secs,
                "req_per_s": float(rps.group(1)) if rps else None,
                "latency_us": {"p50": us(p50.group(1)) if p50 else None,
                               "p99": us(p99.group(1)) if p99 else None},
                "non_2xx": int(errs.group(1)) if errs else 0,
                "socket_errors": sock.group(0) if sock else None}


def summarize(runs):
    """Median over rounds of req/s, p50 and p99, with the req/s spread."""
    rps = [r["req_per_s"] for r in runs]
    return {"label": runs[0]["label"], "connections": runs[0]["connections"],
            "rounds": len(runs), "req_per_s": statistics.median(rps),
            "req_per_s_min": min(rps), "req_per_s_max": max(rps),
            "p50_us": statistics.median(r["latency_us"]["p50"] for r in runs),
            "p99_us": statistics.median(r["latency_us"]["p99"] for r in runs),
            "server_cpu_util": statistics.median(r["server_cpu_util"] for r in runs),
            # Requests per CPU-second of the server: less sensitive than req/s
            # to other tenants taking the server's CPU.
            "req_per_server_cpu_s": statistics.median(
                r["req_per_s"] / r["server_cpu_util"] for r in runs if r["server_cpu_util"] > 0)
            if any(r["server_cpu_util"] > 0 for r in runs) else None,
            "loadgen_cpu_util": statistics.median(r["loadgen_cpu_util"] for r in runs),
            "other_cpu_util": statistics.median(r["other_cpu_util"] for r in runs),
            "body_bytes": runs[0]["body_bytes"],
            "errors": sum(r["unexpected_status"] + r["unexpected_bytes"] + sum(r["errors"].values())
                          for r in runs)}


# ---- raw HTTP for the propagation driver ------------------------------------------

def take_response(buf):
    """(status, headers, body, rest) for the first complete response in buf, or None."""
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return None
    head = buf[:i].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    pos = i + 4
    if "content-length" in headers:
        n = int(headers["content-length"])
        if len(buf) < pos + n:
            return None
        return status, headers, buf[pos:pos + n], buf[pos + n:]
    if headers.get("transfer-encoding", "").lower().endswith("chunked"):
        body = b""
        while True:
            j = buf.find(b"\r\n", pos)
            if j < 0:
                return None
            n = int(buf[pos:j].split(b";")[0], 16)
            pos = j + 2
            if n == 0:
                if len(buf) < pos + 2:
                    return None
                return status, headers, body, buf[pos + 2:]
            if len(buf) < pos + n + 2:
                return None
            body += buf[pos:pos + n]
            pos += n + 2
    return status, headers, b"", buf[pos:]


def http_req(method, target, host, body=None):
    data = body.encode() if isinstance(body, str) else (body or b"")
    head = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, target, host)
    if body is not None:
        head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(data)
    return head.encode() + b"\r\n" + data


def propagation(beacon, etcd, prefix, service, changes):
    """Hold a blocking read on beacon, put through the gateway, time both the
    beacon answer and a plain etcd watch stream's event (the reference)."""
    sel = selectors.DefaultSelector()
    host = "127.0.0.1:%d" % etcd.port
    # The reference watcher: etcd's own watch stream through the gateway.
    w = socket.create_connection(("127.0.0.1", etcd.port))
    w.sendall(http_req("POST", "/v3/watch", host, compact(
        {"create_request": {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}})))
    wbuf = b""
    while b'"created":true' not in wbuf:
        wbuf += w.recv(65536)
    put = socket.create_connection(("127.0.0.1", etcd.port))
    put.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    b.connect(beacon.sock)
    for s in (w, put, b):
        s.setblocking(False)
    sel.register(w, selectors.EVENT_READ, "watch")
    sel.register(put, selectors.EVENT_READ, "put")
    sel.register(b, selectors.EVENT_READ, "beacon")

    def wait_beacon_plain():
        buf = b""
        while True:
            for key, _ in sel.select(5):
                if key.data == "beacon":
                    buf += b.recv(1 << 20)
            r = take_response(buf)
            if r:
                return r

    b.sendall(http_req("GET", "/v1/endpoints/%s" % service, "b"))
    r = wait_beacon_plain()
    index = int(r[1]["x-beacon-index"])
    wevents = wbuf.count(b'"events"')
    beacon_ms, watch_ms, ack_ms, added_ms = [], [], [], []
    early = wrong = lost = 0
    i = 0
    while len(beacon_ms) < changes and i < changes * 2:
        i += 1
        b.sendall(http_req("GET", "/v1/endpoints/%s?index=%d&wait=10s" % (service, index), "b"))
        time.sleep(0.002)  # let the agent park the read before the change
        ep = endpoint(i % 10, service, rev=i)
        bbuf = b""
        ready = [k.data for k, _ in sel.select(0)]
        if "beacon" in ready:
            early += 1  # the index moved before our put: not a measurement
            r = wait_beacon_plain()
            index = int(r[1]["x-beacon-index"])
            continue
        t0 = time.perf_counter()
        put.sendall(http_req("POST", "/v3/kv/put", host, compact(
            {"key": b64("%s%s/%s" % (prefix, service, ep["id"])), "value": b64(compact(ep))})))
        t_b = t_w = t_a = None
        pbuf = b""
        deadline = t0 + 10
        while (t_b is None or t_w is None or t_a is None) and time.perf_counter() < deadline:
            for key, _ in sel.select(1):
                now = time.perf_counter()
                if key.data == "beacon":
                    bbuf += b.recv(1 << 20)
                    r = take_response(bbuf)
                    if r and t_b is None:
                        t_b = now
                        bresp = r
                elif key.data == "watch":
                    wbuf += w.recv(1 << 20)
                    if t_w is None and wbuf.count(b'"events"') > wevents:
                        t_w = now
                        wevents = wbuf.count(b'"events"')
                else:
                    pbuf += put.recv(65536)
                    if t_a is None and take_response(pbuf):
                        t_a = now
        if t_b is None or t_w is None or t_a is None:
            lost += 1
            break
        index = int(bresp[1]["x-beacon-index"])
        if ('"rev":"%d"' % i).encode() not in bresp[2]:
            wrong += 1
            continue
        beacon_ms.append((t_b - t0) * 1e3)
        watch_ms.append((t_w - t0) * 1e3)
        ack_ms.append((t_a - t0) * 1e3)
        added_ms.append((t_b - t_w) * 1e3)
        wbuf = wbuf[-64:]
        wevents = wbuf.count(b'"events"')
    for s in (w, put, b):
        sel.unregister(s)
        s.close()

    def dist(v):
        return {"p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99), "max": max(v) if v else None}
    return {"changes": len(beacon_ms), "early_wakeups_skipped": early, "wrong_answers": wrong,
            "lost": lost,
            "beacon_ms": dist(beacon_ms), "etcd_watch_ms": dist(watch_ms),
            "etcd_put_ack_ms": dist(ack_ms), "beacon_minus_watch_ms": dist(added_ms)}


def wait_for_rev(beacon, service, rev, timeout=30):
    needle = ('"rev":"%d"' % rev).encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, _, body, _ = unix_get(beacon.sock, "/v1/endpoints/%s" % service)
        if needle in body:
            return True
        time.sleep(0.005)
    return False
