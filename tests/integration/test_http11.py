"""beacon's own HTTP/1.1 server on the Unix socket: clients of blocking reads
that go away free their slots at once; HTTP/1.0, Expect and framing edges
answered cleanly."""

import contextlib
import socket
import struct
import time

from harness import (Agent, RawResponseReader, endpoint, metric, raise_nofile, raw_get, scale,
                     wait_for)


def config(**sock):
    c = {"static": {"services": {"web": [endpoint("10.0.0.1", 80)]}}}
    if sock:
        c["socket"] = dict(sock)
    return c


def gauges(a):
    m = a.metrics()
    return metric(m, "beacon_connections") or 0, metric(m, "beacon_blocking_queries") or 0


def park(a, index, reset=False):
    """A client that sends a blocking read for the current index and goes
    away without waiting (closing, or resetting with SO_LINGER 0)."""
    s = a.connect()
    try:
        s.sendall(raw_get("/v1/services?index=%d&wait=5m" % index))
    finally:
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


def test_parked_clients_that_go_away_free_their_slots():
    n, batch = 1100, 100  # more than socket.max_connections (1024)
    raise_nofile(n + 500)
    with Agent(config()) as a:
        index = a.index("/v1/services")
        # Parked clients really are held while they stay (the part below
        # would pass trivially if the request were answered at once).
        held = [a.connect() for _ in range(20)]
        try:
            for s in held:
                s.sendall(raw_get("/v1/services?index=%d&wait=5m" % index))
            wait_for(lambda: gauges(a)[1] >= 20, scale(5), what="20 parked blocking reads")
        finally:
            for s in held:
                s.close()
        t0 = time.monotonic()
        wait_for(lambda: gauges(a) == (1, 0), scale(1), what="closed parked clients counted out")
        took = time.monotonic() - t0
        assert took < scale(1), "slots came back after %.2fs" % took

        worst = 0.0
        for i in range(0, n, batch):
            for k in range(batch):
                park(a, index, reset=(k % 2 == 1))
            # a new client is served throughout
            t1 = time.monotonic()
            st, _, body = a.get("/health", timeout=scale(3))
            worst = max(worst, time.monotonic() - t1)
            assert st == 200, (i, st, body)
        assert worst < scale(2), "/health took %.2fs next to parked clients going away" % worst
        t0 = time.monotonic()
        wait_for(lambda: gauges(a) == (1, 0), scale(1.5),
                 what="%d parked clients that went away to be counted out" % n)
        assert a.get("/v1/endpoints/web")[0] == 200
        assert "connections open" not in a.log(), a.log()
        assert a.stop() == 0


def exchange(a, data):
    with contextlib.closing(a.connect()) as s:
        s.sendall(data)
        r = RawResponseReader(s)
        st, h, body = r.read()
        rest = b""
        s.settimeout(scale(2))
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
        except socket.timeout:
            rest += b"<open>"
        return st, h, body, r.buf + rest


def test_http10_and_connection_handling():
    with Agent(config()) as a:
        # HTTP/1.0 without keep-alive: answered, then closed.
        st, h, body, rest = exchange(a, b"GET /health HTTP/1.0\r\n\r\n")
        assert st == 200 and body == {"status": "ok"}, (st, body)
        assert rest == b"", "an HTTP/1.0 connection stayed open: %r" % rest[:60]
        assert h.get("connection") == "close", h
        # HTTP/1.0 with keep-alive: stays open for the next request.
        with contextlib.closing(a.connect()) as s:
            r = RawResponseReader(s)
            for _ in range(2):
                s.sendall(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                st, h, body = r.read()
                assert st == 200 and h.get("connection", "").lower() == "keep-alive", h
        # HTTP/1.1 Connection: close after pipelined requests: both answered, then closed.
        st, h, body, rest = exchange(a, raw_get("/health") + raw_get("/health", "Connection: close\r\n"))
        assert st == 200
        assert rest.startswith(b"HTTP/1.1 200") and rest.endswith(b"}\n"), rest[-80:]
        assert b"Connection: close" in rest, rest


def test_expect_and_framing_refused_with_json():
    with Agent(config(max_body_size=1024)) as a:
        cases = (
            (b"POST /v1/self/drain HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n"
             b"Expect: 100-continue\r\n\r\n", 417, "Expect"),
            (b"POST /v1/self/drain HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n{}", 400, "Transfer-Encoding"),
            (b"POST /v1/self/drain HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n"
             b"Content-Length: 3\r\n\r\n{}", 400, "Content-Length"),
            (b"POST /v1/self/drain HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
             "transfer coding"),
            (b"GET /health HTTP/2.0\r\n\r\n", 505, "HTTP/1.1"),
            (b"GET /health HTTP/1.1\r\nHost: b\r\n folded\r\n\r\n", 400, "malformed"),
        )
        for data, want, words in cases:
            st, h, body, rest = exchange(a, data)
            assert st == want and words in body.get("error", ""), (data, st, body)
            assert h.get("content-type") == "application/json", h
            assert rest == b"", "the connection stayed open after %d: %r" % (st, rest[:60])
        assert a.get("/ready")[0] == 200, "a refused request drained the agent"
