"""Hostile or careless clients on the Unix socket: the agent keeps serving."""

import contextlib
import os
import resource
import select
import socket
import time

from harness import (Agent, RawResponseReader, endpoint, is_closed_or_reset, log_lines,
                     metric, raise_nofile, raw_get, scale, skip, wait_for, wrapped)


def config(**sock):
    services = {"web": [endpoint("10.0.0.1", 80)]}
    for i in range(10):
        services["s%d" % i] = [endpoint("10.1.0.%d" % (i + 1), 1000 + i)]
    c = {"static": {"services": services}}
    if sock:
        c["socket"] = dict(sock)
    return c


def assert_serving(a, within=2.0):
    """A fresh connection gets 200 on /health quickly and the process runs."""
    assert a.alive(), "the agent died; log:\n" + a.log()
    t0 = time.monotonic()
    st, _, body = a.get("/health", timeout=within)
    took = time.monotonic() - t0
    assert st == 200, (st, body)
    assert took < scale(within), "/health took %.2fs" % took


def send_quietly(s, data):
    """sendall that tolerates the agent closing the connection on us."""
    try:
        s.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def drain_answer(s, timeout):
    """Everything the agent sends until it closes or goes quiet."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not data:
            break
        out += data
    return out


def test_garbage_bytes():
    with Agent(config()) as a:
        blob = os.urandom(64 * 1024)
        with contextlib.closing(a.connect()) as s:
            send_quietly(s, blob)
            answer = drain_answer(s, scale(2))
            if answer:
                assert answer.startswith(b"HTTP/1.1 4"), "garbage got %r" % answer[:100]
        # a request line followed by garbage headers
        with contextlib.closing(a.connect()) as s:
            send_quietly(s, b"GET /health HTTP/1.1\r\n" + blob[:4096] + b"\r\n\r\n")
            drain_answer(s, scale(1))
        # NUL bytes and a bogus method
        with contextlib.closing(a.connect()) as s:
            send_quietly(s, b"\x00\x00\x00BREW /pot HTCPCP/1.0\r\n\r\n")
            drain_answer(s, scale(1))
        assert_serving(a)
        assert a.get("/v1/endpoints/web")[0] == 200


def test_huge_header():
    with Agent(config()) as a:
        with contextlib.closing(a.connect()) as s:
            ok = send_quietly(s, b"GET /health HTTP/1.1\r\nHost: beacon\r\nX-Big: " +
                              b"a" * (1024 * 1024) + b"\r\n\r\n")
            answer = drain_answer(s, scale(3))
            if answer:
                status = answer.split(b"\r\n", 1)[0]
                assert status.startswith(b"HTTP/1.1 4"), \
                    "a 1 MiB header got %r (sent whole: %s)" % (status, ok)
        # just over the default 8 KiB limit
        with contextlib.closing(a.connect()) as s:
            send_quietly(s, b"GET /health HTTP/1.1\r\nHost: beacon\r\nX-Big: " +
                         b"a" * 9000 + b"\r\n\r\n")
            answer = drain_answer(s, scale(3))
            if answer:
                assert answer.startswith(b"HTTP/1.1 4"), answer[:100]
        # and one well within it is fine
        st, _, _ = a.get("/health", headers={"X-Small": "a" * 4000})
        assert st == 200
        assert_serving(a)


def test_many_idle_connections():
    n = 1000
    raise_nofile(n + 1000)
    with Agent(config()) as a:
        socks = []
        try:
            for _ in range(n):
                socks.append(a.connect())
            # the agent really holds them (accepted, not only queued in the kernel)
            wait_for(lambda: (metric(a.metrics(), "beacon_connections") or 0) >= n, 10,
                     what="the agent to accept %d idle connections" % n)
            t0 = time.monotonic()
            st, _, body = a.get("/v1/endpoints/web")
            took = time.monotonic() - t0
            assert st == 200 and body["endpoints"], (st, body)
            assert took < scale(1.0), "a request next to %d idle connections took %.2fs" % (n, took)
        finally:
            for s in socks:
                s.close()
        wait_for(lambda: (metric(a.metrics(), "beacon_connections") or 0) <= 2, 10,
                 what="closed connections to be counted out")
        assert_serving(a)
        assert a.stop() == 0


def test_half_closed_client_gets_full_answer():
    with Agent(config()) as a:
        for path in ("/v1/endpoints/web", "/v1/services", "/health"):
            with contextlib.closing(a.connect()) as s:
                s.sendall(raw_get(path))
                s.shutdown(socket.SHUT_WR)
                try:
                    st, h, body = RawResponseReader(s).read()
                except EOFError:
                    raise AssertionError("%s: the agent closed a half-closed connection "
                                         "without answering" % path)
                assert st == 200, (path, st, body)
                assert isinstance(body, dict), body
        with contextlib.closing(a.connect()) as s:
            s.sendall(raw_get("/v1/endpoints/web", "Connection: close\r\n"))
            s.shutdown(socket.SHUT_WR)
            st, _, body = RawResponseReader(s).read()
            assert st == 200 and body["service"] == "web", body
        assert_serving(a)


def test_stalled_partial_request_does_not_block_others():
    with Agent(config()) as a:
        with contextlib.closing(a.connect()) as slow:
            slow.sendall(b"GET /v1/endpoints/w")
            for _ in range(3):
                assert_serving(a, within=1.0)
            assert a.get("/v1/endpoints/web")[0] == 200
            # the slow client finishes and is answered too
            slow.sendall(b"eb HTTP/1.1\r\nHost: beacon\r\n\r\n")
            st, _, body = RawResponseReader(slow).read()
            assert st == 200 and body["service"] == "web", (st, body)


def test_body_over_max_body_size():
    with Agent(config(max_body_size=1024)) as a:
        with contextlib.closing(a.connect()) as s:
            body = b"x" * 4096
            send_quietly(s, b"POST /v1/self/drain HTTP/1.1\r\nHost: beacon\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                         % len(body) + body)
            answer = drain_answer(s, scale(2))
            if answer:
                status = answer.split(b"\r\n", 1)[0]
                assert status.startswith(b"HTTP/1.1 413"), "got %r" % answer[:200]
        assert_serving(a)
        st, _, body = a.get("/ready")
        assert st == 200, "a refused request must not have drained the agent: %r" % (body,)
        # a body within the limit reaches the route
        st, _, body = a.post("/v1/self/drain", body="{}")
        assert st == 200, (st, body)


def chunked_post(a, path, body):
    with contextlib.closing(a.connect()) as s:
        send_quietly(s, b"POST " + path.encode() + b" HTTP/1.1\r\nHost: beacon\r\n"
                     b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body)
        return RawResponseReader(s).read()


def test_chunk_extensions_are_accepted():
    # RFC 9112 7.1.1: a chunk-size line may carry extensions, which a server ignores.
    with Agent(config(max_body_size=1024)) as a:
        for body in (b"3;x=y\r\nabc\r\n0\r\n\r\n",
                     b'3 ; name = "quoted \\" value" ;flag\r\nabc\r\n2;n=v\r\nde\r\n0;last\r\n\r\n'):
            st, h, answer = chunked_post(a, "/v1/self/drain", body)
            assert st == 200 and answer == {"drained": True}, (body, st, answer)
            assert a.get("/ready")[0] == 503
            assert a.post("/v1/self/resume")[0] == 200
        # A malformed chunk-size line is a clear 400, not "body too large".
        for body in (b"3;\r\nabc\r\n0\r\n\r\n", b"zz\r\nabc\r\n0\r\n\r\n",
                     b"3;x=\r\nabc\r\n0\r\n\r\n", b'3;x="open\r\nabc\r\n0\r\n\r\n'):
            st, h, answer = chunked_post(a, "/v1/self/drain", body)
            assert st == 400 and "chunked request body is malformed" in answer["error"], \
                (body, st, answer)
        # A chunk really over socket.max_body_size is still 413.
        st, _, answer = chunked_post(a, "/v1/self/drain", b"800;x=y\r\n" + b"x" * 2048 + b"\r\n0\r\n\r\n")
        assert st == 413 and "max_body_size" in answer["error"], (st, answer)
        assert a.get("/ready")[0] == 200, "a refused request must not have drained the agent"
        assert_serving(a)


def test_pipelined_requests_answered_in_order():
    with Agent(config()) as a:
        paths = []
        for i in range(40):
            if i % 7 == 3:
                paths.append("/health")
            elif i % 11 == 5:
                paths.append("/v1/endpoints/nope")
            else:
                paths.append("/v1/endpoints/s%d" % (i % 10))
        with contextlib.closing(a.connect()) as s:
            s.sendall(b"".join(raw_get(p) for p in paths))
            r = RawResponseReader(s)
            for p in paths:
                st, _, body = r.read()
                if p == "/health":
                    assert st == 200 and body == {"status": "ok"}, (p, st, body)
                elif p.endswith("nope"):
                    assert st == 404 and "error" in body, (p, st, body)
                else:
                    assert st == 200 and body["service"] == p.rsplit("/", 1)[1], \
                        "answers out of order: asked %s, got %r" % (p, body)
            # the connection is still usable afterwards
            s.sendall(raw_get("/v1/services"))
            st, _, body = r.read()
            assert st == 200 and "services" in body, body


def test_connection_limit():
    with Agent(config(max_connections=5)) as a:
        idle = []
        try:
            for _ in range(5):
                s = a.connect()
                s.sendall(raw_get("/health"))
                st, _, _ = RawResponseReader(s).read()
                assert st == 200
                idle.append(s)
            sixth = a.connect()  # the kernel queues it
            idle.append(sixth)
            sixth.sendall(raw_get("/v1/endpoints/web"))
            r, _, _ = select.select([sixth], [], [], 0.7)
            assert not r, "a 6th connection was served with max_connections=5"
            assert a.alive()
            t0 = time.monotonic()
            idle.pop(0).close()
            sixth.settimeout(scale(5))
            st, _, body = RawResponseReader(sixth).read()
            assert st == 200 and body["service"] == "web", (st, body)
            assert time.monotonic() - t0 < scale(2), "served %.2fs after a slot freed" % (
                time.monotonic() - t0)
        finally:
            for s in idle:
                s.close()
        assert a.alive(), a.log()
        wait_for(lambda: a.get("/health", timeout=1)[0] == 200, 5, what="/health")
        m = a.metrics()
        assert (metric(m, "beacon_connection_limit_hits_total") or 0) >= 1, m
        assert a.stop() == 0


def test_idle_connection_closed_after_timeout():
    with Agent(config(timeout="1s")) as a:
        with contextlib.closing(a.connect()) as s:
            t0 = time.monotonic()
            assert is_closed_or_reset(s, scale(5)), "an idle connection stayed open"
            took = time.monotonic() - t0
            assert 0.8 <= took <= scale(3.5), "closed after %.2fs with timeout 1s" % took
        # a keep-alive connection after its answer
        with contextlib.closing(a.connect()) as s:
            s.sendall(raw_get("/health"))
            st, _, _ = RawResponseReader(s).read()
            assert st == 200
            t0 = time.monotonic()
            assert is_closed_or_reset(s, scale(5)), "an idle keep-alive connection stayed open"
            assert 0.8 <= time.monotonic() - t0 <= scale(3.5)
        # a client stuck in the middle of its request
        with contextlib.closing(a.connect()) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: bea")
            t0 = time.monotonic()
            assert is_closed_or_reset(s, scale(5)), "a stalled request stayed open"
            assert 0.8 <= time.monotonic() - t0 <= scale(3.5)
        assert_serving(a)


def test_limit_errors_are_json():
    # SPEC: "Errors are JSON {"error": "one clear sentence"} with 400, 403, 404,
    # 405, 413, 503" - 413 can only come from a body over socket.max_body_size.
    wrong = []
    with Agent(config(max_body_size=1024, max_header_size=2048)) as a:
        for what, data in (
                ("a body over max_body_size",
                 b"POST /v1/self/drain HTTP/1.1\r\nHost: beacon\r\nContent-Length: 4096\r\n\r\n"
                 + b"x" * 4096),
                ("headers over max_header_size",
                 b"GET /health HTTP/1.1\r\nHost: beacon\r\nX-Big: " + b"a" * 4096 + b"\r\n\r\n")):
            with contextlib.closing(a.connect()) as s:
                send_quietly(s, data)
                try:
                    st, h, body = RawResponseReader(s).read()
                except (EOFError, ConnectionResetError):
                    continue  # closing without an answer is allowed
                assert 400 <= st < 500, (what, st)
                if what.startswith("a body"):
                    assert st == 413, (what, st, body)
                if not (h.get("content-type", "").startswith("application/json") and
                        isinstance(body, dict) and "error" in body):
                    wrong.append("%s is answered %d with %s, not a JSON error: %r" % (
                        what, st, h.get("content-type"),
                        body if isinstance(body, dict) else body[:60]))
        assert_serving(a)
    assert not wrong, "; ".join(wrong)


def cpu_seconds(pid):
    """CPU time (user + system) the process has used, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nofile_limits(pid):
    """(soft, hard) RLIMIT_NOFILE of a process, from /proc/PID/limits."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no 'Max open files' in /proc/%d/limits" % pid)


def test_soft_fd_limit_raised_to_hard():
    if wrapped():
        skip("valgrind shows its client a soft limit of its own and keeps the real one")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 65536  # a child may lower its hard limit, never raise it
    lo = min(256, hard // 2)

    def low_soft():
        resource.setrlimit(resource.RLIMIT_NOFILE, (lo, hard))

    with Agent(config(), preexec_fn=low_soft) as a:
        assert nofile_limits(a.pid) == (hard, hard), nofile_limits(a.pid)
        assert "RLIMIT_NOFILE" not in a.log(), a.log()


def test_low_fd_limit_does_not_spin():
    # soft = hard = 64, below socket.max_connections (1024): the agent cannot
    # raise it, so it must serve what fits instead of looping on EMFILE.
    def low_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    n = 200
    raise_nofile(n + 500)
    with Agent(config(), preexec_fn=low_fds) as a:
        socks = []
        try:
            for _ in range(n):
                socks.append(a.connect())
            time.sleep(0.5)
            cpu0, t0 = cpu_seconds(a.pid), time.monotonic()
            time.sleep(2.0)
            cpu, wall = cpu_seconds(a.pid) - cpu0, time.monotonic() - t0
            assert a.alive(), a.log()
            assert cpu < 0.2 * wall, "the agent used %.2f s of CPU in %.2f s with %d " \
                "connections waiting" % (cpu, wall, n)
            lines = log_lines(a.log())
            assert len(lines) < 10, "%d log lines, first ones:\n%s" % (
                len(lines), "\n".join(lines[:20]))
            capped = [l for l in lines if "RLIMIT_NOFILE" in l]
            assert len(capped) == 1, lines
            # (valgrind keeps a few descriptors for itself and says less)
            assert wrapped() or "RLIMIT_NOFILE) is 64:" in capped[0], capped
        finally:
            for s in socks:
                s.close()
        # the connections are gone: served again at once
        wait_for(lambda: a.get("/health", timeout=1)[0] == 200, 5, what="/health")
        assert a.get("/v1/endpoints/web")[0] == 200
        assert a.stop() == 0
