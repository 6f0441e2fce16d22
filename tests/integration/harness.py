"""Helpers for beacon's integration tests (Python 3 standard library only).

Environment (set by run.py):
  BEACON_BIN   absolute path of the built binary
  BEACON_WRAP  command prefix such as "valgrind -q ..." (may be empty)

The main helper is Agent, a context manager that writes a JSON config into a
fresh temporary directory (the socket lives there too), starts
`BEACON_WRAP BEACON_BIN agent --config FILE`, waits until the socket answers
GET /health and always kills the process on the way out.
"""

import contextlib
import errno
import http.client
import json
import os
import random
import re
import shlex
import shutil
import signal as _signal
import socket
import subprocess
import sys
import tempfile
import time


class Skip(Exception):
    """Raised by skip(); the runner reports the test as skipped."""


def skip(reason):
    raise Skip(reason)


# ---- environment -------------------------------------------------------------

def beacon_bin():
    path = os.environ.get("BEACON_BIN", "")
    if not path:
        raise AssertionError("BEACON_BIN is not set (run the tests through run.py)")
    return path


def wrap():
    """The wrap command as an argv prefix (empty list when unset)."""
    return shlex.split(os.environ.get("BEACON_WRAP", ""))


def wrapped():
    return bool(wrap())


def scale(seconds):
    """Timeouts grow 4x under a wrapper such as valgrind."""
    return seconds * 4 if wrapped() else seconds


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A loopback TCP port that was free a moment ago.

    Chosen below the kernel's ephemeral range when there is room: a port
    handed out by bind(0) can be taken by any outgoing connection before the
    process under test binds it; one outside the range cannot."""
    lo, _ = _ephemeral_range()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(10000, lo) if lo > 11000 else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def temp_dir(prefix="beacon-it-"):
    """A temporary directory, removed afterwards. Kept short: Unix socket
    paths are limited to 107 bytes."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def wait_for(pred, timeout=5.0, interval=0.02, what="condition"):
    """Poll pred() until it returns a true value; return that value."""
    deadline = time.monotonic() + scale(timeout)
    last = None
    while True:
        try:
            last = pred()
        except (OSError, http.client.HTTPException) as e:
            last = None
            err = e
        else:
            err = None
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s%s" % (
                scale(timeout), what, " (last error: %r)" % (err,) if err else ""))
        time.sleep(interval)


def run_beacon(*args, env=None, timeout=30, input=None, use_wrap=True):
    """Run `BEACON_WRAP BEACON_BIN args...`; returns (rc, stdout, stderr)."""
    full_env = dict(os.environ)
    if env:
        for k, v in env.items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = v
    argv = (wrap() if use_wrap else []) + [beacon_bin()] + [str(a) for a in args]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=full_env, timeout=scale(timeout), input=input,
                       universal_newlines=True)
    return p.returncode, p.stdout, p.stderr


def log_lines(text):
    """Lines of an agent's stderr without a wrapper's own ("==PID== ...") lines."""
    return [l for l in text.splitlines() if l.strip() and not re.match(r"^==\d+==", l)]


# ---- HTTP over a Unix socket --------------------------------------------------

class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10.0):
        super().__init__("beacon", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except BaseException:
            s.close()
            raise
        self.sock = s


def _decode(headers, raw):
    text = raw.decode("utf-8", "replace")
    ctype = headers.get("content-type", "")
    if "json" in ctype or text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except ValueError:
            if "json" in ctype:
                raise AssertionError("answer says %s but is not JSON: %r" % (ctype, text[:300]))
    return text


def http_request(conn, method, path, body=None, headers=None):
    """One request on an http.client connection; (status, headers, body)."""
    hdrs = dict(headers or {})
    if isinstance(body, str):
        body = body.encode()
    conn.request(method, path, body=body, headers=hdrs)
    r = conn.getresponse()
    raw = r.read()
    h = {k.lower(): v for k, v in r.getheaders()}
    return r.status, h, _decode(h, raw)


def tcp_request(port, method, path, host="127.0.0.1", body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection(host, port, timeout=scale(timeout))
    try:
        return http_request(conn, method, path, body, headers)
    finally:
        conn.close()


class RawResponseReader:
    """Reads HTTP/1.1 responses one after another from a socket (for pipelining,
    keep-alive and hostile-client tests, where http.client would hide things)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the agent")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def read(self):
        status_line = self._line()
        m = re.match(r"HTTP/1\.[01] (\d{3})", status_line)
        if not m:
            raise AssertionError("not an HTTP status line: %r" % status_line)
        headers = {}
        while True:
            line = self._line()
            if not line:
                break
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(self.buf) < n:
                self._fill()
            raw, self.buf = self.buf[:n], self.buf[n:]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            raw = b""
            while True:
                size = int(self._line().split(";")[0], 16)
                while len(self.buf) < size + 2:
                    self._fill()
                raw += self.buf[:size]
                self.buf = self.buf[size + 2:]
                if size == 0:
                    break
        else:
            raw = b""
            try:
                while True:
                    self._fill()
            except EOFError:
                pass
            raw, self.buf = self.buf, b""
        return int(m.group(1)), headers, _decode(headers, raw)


def raw_get(path, extra=""):
    return ("GET %s HTTP/1.1\r\nHost: beacon\r\n%s\r\n" % (path, extra)).encode()


# ---- the agent ----------------------------------------------------------------

_live = []  # every started Popen, killed at interpreter exit as a last resort


def kill_leftovers():
    for p in list(_live):
        if p.poll() is None:
            with contextlib.suppress(OSError):
                p.kill()
            with contextlib.suppress(Exception):
                p.wait(timeout=5)
        _live.remove(p)


def _deep_expand(value, d):
    if isinstance(value, str):
        return value.replace("@DIR@", d)
    if isinstance(value, list):
        return [_deep_expand(v, d) for v in value]
    if isinstance(value, dict):
        return {k: _deep_expand(v, d) for k, v in value.items()}
    return value


class Agent:
    """A running agent.

        with Agent({"static": {...}}) as a:
            status, headers, body = a.get("/v1/services")

    config: a dict written as JSON (the string "@DIR@" anywhere in it becomes
    the agent's temporary directory), or a str written verbatim. socket.path
    defaults to DIR/beacon.sock; when the config sets it (even through
    ${VAR}), pass sock= so the harness knows where to connect.
    env: extra environment variables (None removes one).
    wait: wait for /health (True) or only start the process (False).
    preexec_fn: run in the child before exec (e.g. to set resource limits).
    """

    def __init__(self, config=None, env=None, sock=None, wait=True, dir=None,
                 args=None, preexec_fn=None):
        self._own_dir = dir is None
        self.dir = dir or tempfile.mkdtemp(prefix="beacon-it-", dir="/tmp")
        self.config_path = os.path.join(self.dir, "beacon.json")
        self.stderr_path = os.path.join(self.dir, "agent.stderr")
        self.config = config if config is not None else {}
        self.sock = sock
        self.env = env or {}
        self.wait_ready = wait
        self.args = list(args or [])
        self.preexec_fn = preexec_fn
        self.proc = None
        self.rc = None
        self._stderr_file = None
        if isinstance(self.config, dict):
            cfg = _deep_expand(self.config, self.dir)
            sockcfg = cfg.setdefault("socket", {})
            if "path" not in sockcfg:
                sockcfg["path"] = os.path.join(self.dir, "beacon.sock")
            if self.sock is None:
                self.sock = sockcfg["path"]
            self.config = cfg
        if self.sock is None:
            self.sock = os.path.join(self.dir, "beacon.sock")

    # -- config file --

    def write_config(self, config=None):
        """(Re)write the config file: a dict (socket.path kept) or raw text."""
        if config is None:
            config = self.config
        if isinstance(config, dict):
            config = _deep_expand(config, self.dir)
            sockcfg = config.setdefault("socket", {})
            sockcfg.setdefault("path", self.sock)
            text = json.dumps(config, indent=2)
        else:
            text = config
        tmp = self.config_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    def reload(self, config):
        """Write a new config and send SIGHUP."""
        self.write_config(config)
        self.signal(_signal.SIGHUP)

    # -- life --

    def start(self):
        self.write_config()
        env = dict(os.environ)
        for k, v in self.env.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        argv = wrap() + [beacon_bin(), "agent", "--config", self.config_path] + self.args
        self._stderr_file = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self._stderr_file, stderr=self._stderr_file,
                                     env=env, cwd=self.dir, preexec_fn=self.preexec_fn)
        _live.append(self.proc)
        if self.wait_ready:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout=10.0):
        deadline = time.monotonic() + scale(timeout)
        last = None
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError("the agent exited with %d before serving; stderr:\n%s"
                                     % (rc, self.log()))
            try:
                st, _, _ = self.get("/health", timeout=2)
                if st == 200:
                    return
                last = "status %d" % st
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            if time.monotonic() >= deadline:
                raise AssertionError("the agent did not answer GET /health on %s within %.0fs "
                                     "(last: %s); stderr:\n%s" % (self.sock, scale(timeout),
                                                                 last, self.log()))
            time.sleep(0.01)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=15.0):
        """Wait for the process to exit on its own; returns its exit code."""
        try:
            self.rc = self.proc.wait(timeout=scale(timeout))
        except subprocess.TimeoutExpired:
            raise AssertionError("the agent did not exit within %.0fs; stderr:\n%s"
                                 % (scale(timeout), self.log()))
        return self.rc

    def stop(self, sig=_signal.SIGTERM, timeout=15.0):
        """Send sig (SIGTERM), wait, return the exit code."""
        if self.proc.poll() is None:
            self.signal(sig)
        rc = self.wait_exit(timeout)
        self._assert_no_leftover()
        return rc

    def _assert_no_leftover(self):
        assert self.proc.poll() is not None, "the agent process %d is still running" % self.pid
        # No other process may still run with our config (e.g. a forked child).
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    cmd = f.read()
                with open("/proc/%s/stat" % entry, "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0]
            except OSError:
                continue
            if self.config_path.encode() in cmd and state != b"Z":
                raise AssertionError("process %s still runs with %s: %r"
                                     % (entry, self.config_path, cmd))

    def log(self):
        """The agent's stderr (and stdout) so far."""
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=5.0):
        """Wait until the log matches the regex pattern; returns the match."""
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.log()), timeout,
                        what="log line matching %r; log so far:\n%s" % (pattern, self.log()))

    def close(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(OSError):
                    self.proc.kill()
                with contextlib.suppress(Exception):
                    self.proc.wait(timeout=10)
            if self.proc in _live:
                _live.remove(self.proc)
        if self._stderr_file:
            self._stderr_file.close()
            self._stderr_file = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self.proc is not None and \
                not issubclass(exc_type, Skip):
            # the test failed: say what the agent was doing
            rc = self.proc.poll()
            state = "running" if rc is None else "exited with %d" % rc
            lines = self.log().splitlines()[-15:]
            note = "agent (pid %d) %s; last log lines:\n%s" % (
                self.proc.pid, state, "\n".join("  | " + l for l in lines))
            if exc is not None and hasattr(exc, "add_note"):
                exc.add_note(note)
            else:
                print("    " + note.replace("\n", "\n    "))
        self.close()
        if exc_type is None and self.proc is not None:
            self._assert_no_leftover()
        return False

    # -- talking to it --

    def http(self, timeout=10.0):
        """A fresh keep-alive HTTP connection over the socket (caller closes)."""
        return UnixHTTPConnection(self.sock, timeout=scale(timeout))

    def request(self, method, path, body=None, headers=None, timeout=10.0):
        conn = self.http(timeout)
        try:
            return http_request(conn, method, path, body, headers)
        finally:
            conn.close()

    def get(self, path, headers=None, timeout=10.0):
        return self.request("GET", path, headers=headers, timeout=timeout)

    def post(self, path, body=None, headers=None, timeout=10.0):
        return self.request("POST", path, body=body, headers=headers, timeout=timeout)

    def connect(self, timeout=10.0):
        """A raw connected AF_UNIX socket (caller closes)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(scale(timeout))
        try:
            s.connect(self.sock)
        except BaseException:
            s.close()
            raise
        return s

    def cli(self, *args, env=None, timeout=30):
        """`BEACON_BIN --socket SOCK args...` -> (rc, stdout, stderr)."""
        return run_beacon("--socket", self.sock, *args, env=env, timeout=timeout)

    def metrics(self):
        st, _, text = self.get("/metrics")
        assert st == 200, "GET /metrics answered %d" % st
        return parse_metrics(text)

    def index(self, path="/v1/services"):
        st, h, _ = self.get(path)
        assert st == 200, "GET %s answered %d" % (path, st)
        return int(h["x-beacon-index"])


# ---- Prometheus text ---------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def parse_metrics(text):
    """{(name, frozenset(labels.items())): float}, plus "#TYPE name" -> type.
    Raises AssertionError on a line that is not valid exposition format."""
    out = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                out["#TYPE " + parts[2]] = parts[3].strip()
            continue
        m = _SAMPLE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        labels = {}
        if m.group(3):
            pos, s = 0, m.group(3)
            while pos < len(s):
                lm = _LABEL.match(s, pos)
                assert lm, "bad labels in %r" % line
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out


def metric(parsed, name, **labels):
    """The value of one sample (None if absent)."""
    return parsed.get((name, frozenset(labels.items())))


def samples(parsed, name):
    """[(labels dict, value)] of every sample named name."""
    return [(dict(k[1]), v) for k, v in parsed.items()
            if isinstance(k, tuple) and k[0] == name]


# ---- misc --------------------------------------------------------------------

def raise_nofile(want):
    """Raise RLIMIT_NOFILE (soft) to at least want, within the hard limit."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft


def endpoint(address, port, **kw):
    e = {"address": address, "port": port}
    e.update(kw)
    return e


def registry_config(reg, service=None, services=(), kv=(), check=None, **top):
    """A config dict for a registry test: debug logs, the registry object reg,
    optionally this app as service=(name, id, port) with a check, and watches."""
    cfg = {"log": {"level": "debug"}, "registry": reg}
    if service:
        name, sid, port = service
        cfg["service"] = {"name": name, "id": sid, "address": "10.0.0.1", "port": port,
                          "tags": ["v1"], "meta": {"zone": "a"}, "weight": 5}
        if check:
            cfg["service"]["check"] = check
    if services or kv:
        cfg["watch"] = {"services": list(services), "kv": list(kv)}
    cfg.update(top)
    return cfg


def static(services, **top):
    """A config dict with static services."""
    cfg = {"static": {"services": services}}
    cfg.update(top)
    return cfg


def is_closed_or_reset(sock, timeout):
    """True when the peer closes the connection (EOF or reset) within timeout,
    skipping any data it sends first."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return False
        except OSError as e:
            if e.errno in (errno.ECONNRESET, errno.EPIPE):
                return True
            raise
        if not data:
            return True


def eprint(*a):
    print(*a, file=sys.stderr)
