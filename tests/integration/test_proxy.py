"""Local proxies (SPEC "Local proxies"): real sockets, real backends.

Backends are proxy_backend.py processes (echo, or a byte source), each
sending its name as the first line of every connection, so a client sees
which endpoint the proxy chose. Every process started here is stopped.
"""

import collections
import contextlib
import errno
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

from etcd_fixture import Etcd
from harness import (Agent, endpoint, free_port, metric, raise_nofile, registry_config, run_beacon,
                     samples, scale, temp_dir, wait_for, wrapped)

HERE = os.path.dirname(os.path.abspath(__file__))
BACKEND = os.path.join(HERE, "proxy_backend.py")


# ---- fixtures ------------------------------------------------------------------

class Backend:
    """One proxy_backend.py process on a free loopback port."""

    def __init__(self, name, mode="echo", nbytes=0, port=None):
        self.name, self.mode, self.nbytes = name, mode, nbytes
        self.port = port or free_port()
        self.proc = None

    def start(self):
        argv = [sys.executable, BACKEND, str(self.port), self.name, "--mode", self.mode,
                "--bytes", str(self.nbytes)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline()
        assert line.strip() == b"ready", "backend %s did not start: %r" % (self.name, line)
        return self

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def endpoint(self, **kw):
        return endpoint("127.0.0.1", self.port, id=self.name, **kw)


@contextlib.contextmanager
def backends(*names, **kw):
    bs = [Backend(n, **kw) for n in names]
    try:
        for b in bs:
            b.start()
        yield bs
    finally:
        for b in bs:
            b.kill()


@contextlib.contextmanager
def scripted_backend(handle):
    """A listener on a free loopback port whose every connection is handed to
    handle(sock) on a thread (for exchanges proxy_backend.py does not script).
    Yields the port; the listener is closed on the way out."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)

    def serve():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            try:
                handle(c)
            finally:
                c.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield ls.getsockname()[1]
    finally:
        ls.close()


def proxy_config(bs, port, weights=None, service="svc", **px):
    eps = [b.endpoint(weight=weights[i]) if weights else b.endpoint() for i, b in enumerate(bs)]
    p = {"listen": "127.0.0.1:%d" % port, "service": service}
    p.update(px)
    return {"static": {"services": {service: eps}}, "proxies": [p]}


def connect(port, timeout=10, source=None):
    s = socket.socket()
    s.settimeout(scale(timeout))
    if source:
        s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        d = s.recv(1)
        if not d:
            return buf.decode() if buf else None
        buf += d
    return buf[:-1].decode()


def who(port, source=None):
    """Connect once; the backend's name (None when the proxy closed at once)."""
    with connect(port, source=source) as s:
        return read_line(s)


def proxies(a):
    st, _, body = a.get("/v1/proxies")
    assert st == 200, (st, body)
    return body["proxies"]


def upstream(a, name, listen_port=None):
    for p in proxies(a):
        if listen_port and not p["listen"].endswith(":%d" % listen_port):
            continue
        for u in p["upstreams"]:
            if u["id"] == name:
                return u
    return None


def echo_ok(s, payload=b"ping"):
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        d = s.recv(65536)
        if not d:
            return False
        got += d
    return got == payload


def read_to_end(s):
    """Every byte until the peer's FIN."""
    got = bytearray()
    while True:
        d = s.recv(1 << 20)
        if not d:
            return bytes(got)
        got += d


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---- distribution per policy --------------------------------------------------------

def test_proxy_round_robin_three_backends():
    port = free_port()
    with backends("a", "b", "c") as bs, Agent(proxy_config(bs, port)) as a:
        seen = collections.Counter(who(port) for _ in range(30))
        assert seen == {"a": 10, "b": 10, "c": 10}, seen
        with connect(port) as s:
            read_line(s)
            assert echo_ok(s, b"x" * 100000), "bytes relayed both ways"
        # the counters SPEC names, per proxy and upstream
        wait_for(lambda: proxies(a)[0]["active"] == 0, what="connections closed")
        px = proxies(a)[0]
        assert px["service"] == "svc" and px["policy"] == "round_robin", px
        assert px["accepted"] == 31, px
        ups = {u["id"]: u for u in px["upstreams"]}
        assert sorted(ups) == ["a", "b", "c"], ups
        assert sum(u["total"] for u in ups.values()) == 31, ups
        assert sum(u["bytes_to_upstream"] for u in ups.values()) == 100000, ups
        assert sum(u["bytes_to_client"] for u in ups.values()) == 31 * 2 + 100000, ups
        m = a.metrics()
        tot = samples(m, "beacon_proxy_upstream_connections_total")
        assert sum(v for _, v in tot) == 31, tot
        assert m["#TYPE beacon_proxy_upstream_bytes_total"] == "counter"
        lbl = dict(proxy="127.0.0.1:%d" % port, service="svc")
        assert metric(m, "beacon_proxy_accepted_total", **lbl) == 31, m
        up = sum(v for l, v in samples(m, "beacon_proxy_upstream_bytes_total")
                 if l["direction"] == "to_upstream")
        assert up == 100000, up
        st, _, body = a.get("/v1/self")
        assert body["proxies"][0]["endpoints"] == 3, body["proxies"]


def test_proxy_weighted_and_random_and_hash():
    port = free_port()
    with backends("a", "b", "c") as bs:
        with Agent(proxy_config(bs, port, weights=[1, 2, 3], policy="weighted")):
            seen = collections.Counter(who(port) for _ in range(60))
            assert seen == {"a": 10, "b": 20, "c": 30}, seen
        with Agent(proxy_config(bs, port, policy="random")):
            seen = collections.Counter(who(port) for _ in range(90))
            assert set(seen) == {"a", "b", "c"} and min(seen.values()) >= 10, seen
        with Agent(proxy_config(bs, port, policy="hash")):
            # one client address, one endpoint; several addresses spread
            by_source = {}
            for i in range(2, 26):
                src = "127.0.0.%d" % i
                got = {who(port, source=src) for _ in range(3)}
                assert len(got) == 1, (src, got)
                by_source[src] = got.pop()
            assert len(set(by_source.values())) >= 2, by_source


def test_proxy_least_conn_sends_to_least_loaded():
    port = free_port()
    with backends("a", "b", "c") as bs, Agent(proxy_config(bs, port, policy="least_conn")) as a:
        held = collections.defaultdict(list)
        try:
            for _ in range(6):
                s = connect(port)
                held[read_line(s)].append(s)
            assert {k: len(v) for k, v in held.items()} == {"a": 2, "b": 2, "c": 2}, held
            # b's connections end: the next two go to b, the least loaded
            for s in held.pop("b"):
                s.close()
            wait_for(lambda: upstream(a, "b")["active"] == 0, what="b drained")
            for _ in range(2):
                s = connect(port)
                name = read_line(s)
                held[name].append(s)
                assert name == "b", name
            # all equal again: ties go round robin over the three
            nxt = []
            for _ in range(3):
                s = connect(port)
                nxt.append(read_line(s))
                held[nxt[-1]].append(s)
            assert sorted(nxt) == ["a", "b", "c"], nxt
        finally:
            for v in held.values():
                for s in v:
                    s.close()


def test_proxy_least_conn_by_weight():
    port = free_port()
    with backends("a", "b") as bs, \
            Agent(proxy_config(bs, port, weights=[1, 3], policy="least_conn")):
        held = []
        try:
            names = collections.Counter()
            for _ in range(8):
                s = connect(port)
                names[read_line(s)] += 1
                held.append(s)
            assert names == {"a": 2, "b": 6}, names
        finally:
            for s in held:
                s.close()


# ---- failures, ejection, retries ------------------------------------------------------

def test_proxy_backend_killed_mid_stream_ejected_and_back():
    port = free_port()
    cfg = lambda bs: proxy_config(bs, port, retries=2,
                                  outlier={"consecutive_failures": 2, "ejection": "1500ms"})
    with backends("a", "b", "c") as bs, Agent(cfg(bs)) as a:
        held = {}
        try:
            for _ in range(3):
                s = connect(port)
                held[read_line(s)] = s
            assert sorted(held) == ["a", "b", "c"], held
            bs[1].kill()
            # b's client sees the end of its stream (FIN or reset), at once
            s = held.pop("b")
            try:
                s.sendall(b"x")
                end = s.recv(10)
            except OSError as e:
                end = e.errno
            assert end in (b"", errno.ECONNRESET, errno.EPIPE), end
            s.close()
            # the others are unaffected
            for name, s in held.items():
                assert echo_ok(s), name
            # new connections never fail (retries), never reach b; b is ejected
            t0 = time.monotonic()
            seen = collections.Counter(who(port) for _ in range(12))
            assert "b" not in seen and None not in seen, seen
            assert sum(seen.values()) == 12, seen
            ub = upstream(a, "b")
            assert ub["connect_failures"] == 2 and ub["ejections"] == 1, ub
            assert ub["ejected"] is True, ub
            # b comes back (same port); after the ejection it gets connections again
            bs[1] = Backend("b", port=bs[1].port).start()
            seen = collections.Counter(who(port) for _ in range(6))
            if time.monotonic() - t0 < 1.2:
                assert "b" not in seen, seen
            wait_for(lambda: not upstream(a, "b")["ejected"], timeout=5, what="ejection over")
            seen = collections.Counter(who(port) for _ in range(6))
            assert seen["b"] >= 1, seen
            m = a.metrics()
            assert metric(m, "beacon_proxy_upstream_ejections_total",
                          proxy="127.0.0.1:%d" % port, service="svc", upstream="b") == 1
        finally:
            for s in held.values():
                s.close()


def test_proxy_never_ejects_the_last_and_no_endpoint_closes():
    port = free_port()
    with backends("a") as bs:
        cfg = proxy_config(bs, port, retries=0, outlier={"consecutive_failures": 1})
        bs[0].kill()
        with Agent(cfg) as a:
            for _ in range(3):
                assert who(port) is None  # closed at once: the connect failed
            u = upstream(a, "a")
            assert u["connect_failures"] == 3 and u["ejections"] == 0, u
        # a service without endpoints: the client is closed at once
        cfg["proxies"][0]["service"] = "nothing"
        cfg["static"]["services"]["nothing"] = []
        with Agent(cfg) as a:
            assert who(port) is None
            assert proxies(a)[0]["no_endpoint"] == 1


def test_proxy_connect_timeout_retries_next():
    # A listener that never accepts, its backlog full: a connect to it hangs
    # (the SYN is dropped) until connect_timeout.
    port = free_port()
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    filler = socket.create_connection(hole.getsockname())
    try:
        with backends("a") as bs:
            cfg = proxy_config(bs, port, connect_timeout="200ms", retries=1)
            cfg["static"]["services"]["svc"].insert(
                0, endpoint("127.0.0.1", hole.getsockname()[1], id="blackhole"))
            with Agent(cfg) as a:
                t0 = time.monotonic()
                names = [who(port) for _ in range(4)]
                took = time.monotonic() - t0
                assert names == ["a"] * 4, names
                u = upstream(a, "blackhole")
                assert u["connect_failures"] >= 1, u
                # each failure cost about one connect_timeout, not more
                assert 0.18 * u["connect_failures"] <= took < scale(0.5 + 0.4 * u["connect_failures"]), \
                    (took, u)
    finally:
        filler.close()
        hole.close()


# ---- the relay -------------------------------------------------------------------------

def test_proxy_one_gib_both_ways_with_checksums():
    total = 1 << 30
    block = os.urandom(1 << 20)
    # rotated variants, so a reordering of blocks would change the sum
    variants = [block[k:] + block[:k] for k in range(7)]
    port = free_port()
    with backends("a") as bs, Agent(proxy_config(bs, port)) as a:
        s = connect(port, timeout=60)
        assert read_line(s) == "a"
        sent_crc = [0]

        def writer():
            crc = 0
            for i in range(total // len(block)):
                chunk = variants[i % 7]
                crc = zlib.crc32(chunk, crc)
                s.sendall(chunk)
            sent_crc[0] = crc
            s.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=writer)
        t0 = time.monotonic()
        t.start()
        got, crc = 0, 0
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while True:
            n = s.recv_into(buf)
            if not n:
                break
            got += n
            crc = zlib.crc32(view[:n], crc)
        t.join()
        s.close()
        took = time.monotonic() - t0
        assert got == total, got
        assert crc == sent_crc[0], "checksum differs"
        u = upstream(a, "a")
        assert u["bytes_to_upstream"] == total and u["bytes_to_client"] == total + 2, u
        print("1 GiB each way in %.1fs" % took)


def test_proxy_slow_reader_memory_bounded():
    port = free_port()
    nbytes = 256 << 20
    with backends("a", mode="source", nbytes=nbytes) as bs, Agent(proxy_config(bs, port)) as a:
        base = rss_kb(a.pid)
        s = connect(port, timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        got = 0
        peak = base
        for _ in range(100):  # a slow reader: 64 KiB per 20 ms for 2 s
            got += len(s.recv(65536))
            peak = max(peak, rss_kb(a.pid))
            time.sleep(0.02)
        assert got < nbytes // 4, "the reader was slow, yet %d bytes arrived" % got
        # the agent buffered at most a chunk or two, not the backend's flood
        assert peak - base < 8 * 1024, (base, peak)
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            got += len(d)
        s.close()
        assert got == nbytes + 2, got


def test_proxy_half_close_gets_full_response():
    port = free_port()
    payload = os.urandom(3 << 20)
    with backends("a") as bs, Agent(proxy_config(bs, port)):
        s = connect(port)
        assert read_line(s) == "a"
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)  # the backend answers after our FIN
        got = read_to_end(s)
        s.close()
        assert got == payload, len(got)


def test_proxy_last_bytes_and_fin_in_one_segment():
    """A peer that sends its last bytes and its FIN together (TCP_CORK, as
    nginx does for "Connection: close") takes the relay's one-segment path
    (EPOLLRDHUP: the last send with MSG_MORE, then the FIN): every byte and
    the end arrive, both ways, for small and large answers, a client that
    reads late, and a client of a Unix listener (MSG_MORE on a Unix socket)."""
    port = free_port()
    seen, errors = [], []

    def pattern(size):
        return (bytes(range(251)) * (size // 251 + 1))[:size]

    def answer(c):
        try:
            c.settimeout(scale(20))
            req = read_to_end(c)
            seen.append(req)
            size = int(req.split(b" ")[1])
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            c.sendall(pattern(size))
            c.shutdown(socket.SHUT_WR)  # corked: the FIN rides on the last segment
            c.recv(1)
        except OSError as e:
            errors.append(repr(e))

    with scripted_backend(answer) as bport, temp_dir() as tmp:
        upath = os.path.join(tmp, "px.sock")
        cfg = {"static": {"services": {"svc": [endpoint("127.0.0.1", bport, id="a")]}},
               "proxies": [{"listen": "127.0.0.1:%d" % port, "service": "svc"},
                           {"listen": "unix:" + upath, "service": "svc"}]}
        with Agent(cfg) as a:
            n = 0
            for unix in (False, True):  # a Unix client: MSG_MORE on a Unix socket too
                for size, late in [(1, 0), (100, 0), (3000, 0), (70000, 0), (4 << 20, 0.3),
                                   (100, 0.2)] * 2:
                    if unix:
                        s = socket.socket(socket.AF_UNIX)
                        s.settimeout(scale(10))
                        s.connect(upath)
                    else:
                        s = connect(port)
                        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                    req = b"GET %d %d\n" % (size, n)
                    n += 1
                    s.sendall(req)
                    s.shutdown(socket.SHUT_WR)  # the request and the FIN together
                    time.sleep(late)  # a late reader: the proxy holds the end till it drains
                    got = read_to_end(s)
                    s.close()
                    assert len(got) == size, (unix, size, len(got))
                    assert got == pattern(size), (unix, size)
                    assert seen[-1] == req, (seen[-1], req)
            assert not errors, errors
            wait_for(lambda: all(p["active"] == 0 for p in proxies(a)), what="all closed")
            ups = [u for p in proxies(a) for u in p["upstreams"]]
            assert sum(u["total"] for u in ups) == n == 24, ups
            assert all(u["connect_failures"] == 0 for u in ups), ups


def test_proxy_data_then_reset_passes_both():
    """An endpoint that writes and then resets (SO_LINGER 0), both usually in
    before the proxy wakes: the client reads the bytes, then sees the reset,
    as it would connected straight to the endpoint."""
    port = free_port()

    def answer(c):
        c.recv(100)
        c.sendall(b"partial answer")
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with scripted_backend(answer) as bport:
        cfg = {"static": {"services": {"svc": [endpoint("127.0.0.1", bport, id="a")]}},
               "proxies": [{"listen": "127.0.0.1:%d" % port, "service": "svc"}]}
        with Agent(cfg) as a:
            for i in range(20):
                s = connect(port)
                s.sendall(b"ask %d" % i)
                time.sleep(0.05)  # both the bytes and the reset are in by now
                got, end = b"", None
                try:
                    while True:
                        d = s.recv(100)
                        if not d:
                            end = "fin"
                            break
                        got += d
                except ConnectionResetError:
                    end = "reset"
                s.close()
                assert (got, end) == (b"partial answer", "reset"), (i, got, end)
            wait_for(lambda: proxies(a)[0]["active"] == 0, what="all closed")


def test_proxy_reset_passed_on_as_reset():
    port = free_port()
    with backends("a", mode="reset") as bs, Agent(proxy_config(bs, port)) as a:
        s = connect(port)
        assert read_line(s) == "a"
        s.sendall(b"x")  # the backend answers with a reset
        try:
            got = s.recv(10)
        except ConnectionResetError:
            got = "reset"
        s.close()
        assert got == "reset", "the client saw %r, not a reset" % (got,)
        wait_for(lambda: proxies(a)[0]["active"] == 0, what="closed")


def test_proxy_idle_timeout_closes():
    port = free_port()
    with backends("a") as bs, Agent(proxy_config(bs, port, idle_timeout="300ms")) as a:
        s = connect(port)
        assert read_line(s) == "a"
        t0 = time.monotonic()
        s.settimeout(scale(5))
        assert s.recv(10) == b""
        assert time.monotonic() - t0 >= 0.25
        s.close()
        wait_for(lambda: proxies(a)[0]["active"] == 0, what="closed")


def test_proxy_5000_connections_limit_and_no_fd_leak():
    n = 5000
    raise_nofile(n + 500)
    port = free_port()
    with backends("a", "b", "c") as bs, \
            Agent(proxy_config(bs, port, max_connections=n, policy="least_conn")) as a:
        before = fd_count(a.pid)
        socks = []
        try:
            for i in range(n):
                socks.append(connect(port))
            names = collections.Counter(read_line(s) for s in socks)
            assert sum(names.values()) == n and None not in names, names
            assert set(names.values()) == {n // 3, n // 3 + 1} or max(names.values()) - \
                min(names.values()) <= 2, names
            assert proxies(a)[0]["active"] == n
            # one more: refused cleanly, closed at once
            assert who(port) is None
            assert proxies(a)[0]["refused"] == 1
            for s in socks[:10]:
                assert echo_ok(s)
        finally:
            for s in socks:
                s.close()
        wait_for(lambda: proxies(a)[0]["active"] == 0, timeout=20, what="all closed")
        wait_for(lambda: fd_count(a.pid) <= before, timeout=10,
                 what="descriptors back to %d (now %d)" % (before, fd_count(a.pid)))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


def test_proxy_low_fd_limit_refuses_and_keeps_the_api():
    # soft = hard = 64: the proxies get what the limit leaves after a reserve
    # (here 16 connections of two descriptors each); more clients are refused
    # at once, the agent does not spin, and the API still answers.
    import resource

    def low_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    port = free_port()
    with backends("a") as bs, Agent(proxy_config(bs, port), preexec_fn=low_fds) as a:
        socks = []
        try:
            for _ in range(40):
                socks.append(connect(port))
            names = [read_line(s) for s in socks]
            relayed = sum(1 for n in names if n == "a")
            log = a.log()
            room = re.search(r"leaves room for (\d+) relayed connections", log)
            assert room, log
            # 16 here; valgrind keeps some descriptors for itself and shows fewer
            assert relayed == int(room.group(1)) and (relayed == 16 or wrapped()), (relayed, log)
            assert names.count(None) == 40 - relayed, names
            cpu0, t0 = cpu_seconds(a.pid), time.monotonic()
            time.sleep(1.0)
            cpu, wall = cpu_seconds(a.pid) - cpu0, time.monotonic() - t0
            assert cpu < 0.2 * wall, "%.2f s of CPU in %.2f s" % (cpu, wall)
            assert a.get("/health")[0] == 200
            px = proxies(a)[0]
            assert px["refused"] == 40 - relayed and px["active"] == relayed, px
            assert a.log().count("refusing connections") == 1, a.log()
        finally:
            for s in socks:
                s.close()
        wait_for(lambda: proxies(a)[0]["active"] == 0, what="all closed")
        assert [who(port) for _ in range(3)] == ["a"] * 3


def test_proxy_unix_listener():
    with temp_dir() as d, backends("a") as bs:
        path = os.path.join(d, "px.sock")
        cfg = proxy_config(bs, 1)
        cfg["proxies"][0]["listen"] = "unix:" + path
        with Agent(cfg) as a:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(path)
            assert read_line(s) == "a"
            assert echo_ok(s)
            s.close()
            assert a.stop() == 0
        assert not os.path.exists(path), "the socket file is removed at stop"


# ---- discovery and reload ---------------------------------------------------------------

def test_proxy_etcd_delete_no_new_connections():
    port = free_port()
    with Etcd() as etcd, backends("a", "b") as bs:
        prefix = "/beacon/services/svc/"
        for b in bs:
            etcd.put(prefix + b.name, json.dumps({"id": b.name, "address": "127.0.0.1",
                                                   "port": b.port}))
        reg = {"backend": "etcd", "endpoints": [etcd.url], "ttl": "2s", "timeout": "2s"}
        cfg = registry_config(reg, proxies=[{"listen": "127.0.0.1:%d" % port, "service": "svc"}])
        with Agent(cfg) as a:
            wait_for(lambda: len(proxies(a)[0]["upstreams"]) == 2, what="both discovered")
            held = {}
            for _ in range(2):
                s = connect(port)
                held[read_line(s)] = s
            assert sorted(held) == ["a", "b"]
            st, h, _ = a.get("/v1/endpoints/svc")
            idx = int(h["x-beacon-index"])
            etcd.delete(prefix + "b")
            # the blocking read wakes in the same delivery as the proxy
            st, _, body = a.get("/v1/endpoints/svc?index=%d&wait=10s" % idx)
            assert [e["id"] for e in body["endpoints"]] == ["a"], body
            names = [who(port) for _ in range(6)]
            assert names == ["a"] * 6, names
            # b's established connection runs on (a drain)
            assert echo_ok(held["b"]), "the connection to b was dropped"
            ub = upstream(a, "b")
            assert ub["in_discovery"] is False and ub["active"] == 1, ub
            for s in held.values():
                s.close()
            wait_for(lambda: upstream(a, "b") is None, what="b forgotten once drained")


def test_proxy_sighup_add_remove_change_keeps_connections():
    p1, p2, p3 = free_port(), free_port(), free_port()
    with backends("a", "b") as bs:
        eps = {"svc": [b.endpoint(tags=[b.name]) for b in bs]}
        cfg = {"static": {"services": eps},
               "proxies": [{"listen": "127.0.0.1:%d" % p1, "service": "svc"},
                           {"listen": "127.0.0.1:%d" % p2, "service": "svc"}]}
        with Agent(cfg) as a:
            held = []
            for _ in range(2):
                s = connect(p1)
                read_line(s)
                held.append(s)
            on_removed = connect(p2)
            read_line(on_removed)
            cfg2 = {"static": {"services": eps},
                    "proxies": [{"listen": "127.0.0.1:%d" % p1, "service": "svc", "tag": "b",
                                 "max_connections": 50},
                                {"listen": "127.0.0.1:%d" % p3, "service": "svc"}]}
            a.reload(cfg2)
            a.wait_log("configuration reloaded")
            # the kept proxy's connections run on, both of them
            for s in held:
                assert echo_ok(s), "an established connection was dropped"
            # the kept proxy takes its new settings
            assert [who(p1) for _ in range(4)] == ["b"] * 4
            px = {p["listen"]: p for p in proxies(a)}
            assert px["127.0.0.1:%d" % p1]["max_connections"] == 50
            # the removed proxy no longer listens; the new one does
            with socket.socket() as s:
                assert s.connect_ex(("127.0.0.1", p2)) == errno.ECONNREFUSED
            assert who(p3) in ("a", "b")
            # the removed proxy's connection runs on until it ends, then it is gone
            assert echo_ok(on_removed), "a connection of the removed proxy was dropped"
            assert any(p["removed"] for p in proxies(a))
            on_removed.close()
            wait_for(lambda: not any(p["removed"] for p in proxies(a)), what="removed proxy freed")
            for s in held:
                s.close()


def test_proxy_listen_in_use_fails_start():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        with backends("a") as bs:
            a = Agent(proxy_config(bs, port), wait=False)
            try:
                a.start()
                assert a.wait_exit(10) != 0
                assert "cannot listen on 127.0.0.1:%d" % port in a.log(), a.log()
            finally:
                a.close()
    finally:
        busy.close()


def test_proxy_config_errors():
    with temp_dir() as d:
        path = os.path.join(d, "c.json")
        with open(path, "w") as f:
            json.dump({"static": {"services": {"svc": []}},
                       "proxies": [{"listen": "127.0.0.1", "service": "svc"},
                                   {"listen": "127.0.0.1:9", "service": "svc", "policy": "fastest"},
                                   {"listen": "127.0.0.1:9", "service": "svc"},
                                   {"listen": "unix:rel.sock", "service": "svc"},
                                   {"listen": "127.0.0.1:10", "service": "svc", "retries": -1,
                                    "outlier": {"ejection": "soon"}}]}, f)
        rc, out, err = run_beacon("agent", "--config", path, "--check-config")
        assert rc == 2, (rc, out, err)
        text = out + err
        for want in ("$.proxies[0].listen", "$.proxies[1].policy", "$.proxies[2].listen",
                     "$.proxies[3].listen", "$.proxies[4].retries",
                     "$.proxies[4].outlier.ejection"):
            assert want in text, (want, text)
