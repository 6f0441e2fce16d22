"""The optional TCP listener (http.listen): probes only, never the API."""

import contextlib
import http.client
import os
import selectors
import socket
import threading
import time

from harness import (Agent, RawResponseReader, endpoint, free_port, is_closed_or_reset,
                     parse_metrics, raise_nofile, raw_get, samples, scale, tcp_request)

# The probe listener's whole-request deadline (PROBE_DEADLINE_MS in agent/agent.c).
DEADLINE = 3.0


def config(port):
    return {"http": {"listen": "127.0.0.1:%d" % port},
            "static": {"services": {"web": [endpoint("10.0.0.1", 80)]}}}


def test_probes_served_over_tcp():
    port = free_port()
    with Agent(config(port)) as a:
        st, h, body = tcp_request(port, "GET", "/health")
        assert st == 200, (st, body)
        st, h, body = tcp_request(port, "GET", "/ready")
        assert st == 200, (st, body)
        st, h, text = tcp_request(port, "GET", "/metrics")
        assert st == 200, st
        assert h["content-type"].startswith("text/plain"), h
        m = parse_metrics(text)
        assert samples(m, "beacon_build_info"), text
        # readiness follows drain on both listeners
        assert a.post("/v1/self/drain")[0] == 200
        assert tcp_request(port, "GET", "/ready")[0] == 503
        assert a.post("/v1/self/resume")[0] == 200
        assert tcp_request(port, "GET", "/ready")[0] == 200


def test_api_never_served_over_tcp():
    port = free_port()
    with Agent(config(port)) as a:
        for method, path in (("GET", "/v1/services"), ("GET", "/v1/endpoints/web"),
                             ("GET", "/v1/endpoints/web?status=any"), ("GET", "/v1/pick/web"),
                             ("GET", "/v1/self"), ("GET", "/v1/kv/config/x"),
                             ("GET", "/v1/secrets/db"), ("POST", "/v1/self/drain")):
            st, h, body = tcp_request(port, method, path)
            assert st == 404, "%s %s over TCP answered %d: %r" % (method, path, st, body)
            text = body if isinstance(body, str) else str(body)
            assert "10.0.0.1" not in text, "endpoint data leaked over TCP: %r" % body
        assert a.get("/ready")[0] == 200, "POST /v1/self/drain over TCP must not drain"
        assert a.get("/v1/services")[0] == 200, "the socket still serves the API"


def test_tcp_listens_on_configured_address_only():
    port = free_port()
    with Agent(config(port)):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.close()
        assert tcp_request(port, "GET", "/health")[0] == 200


def test_tcp_port_in_use_fails_start():
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        with Agent(config(port), wait=False) as a:
            rc = a.wait_exit(10)
            assert rc != 0, "started although 127.0.0.1:%d is taken" % port
            assert str(port) in a.log(), a.log()
            assert not os.path.exists(a.sock), "the socket was left behind by a failed start"
    finally:
        blocker.close()


def test_probe_answer_closes_and_deadline_holds():
    port = free_port()
    with Agent(config(port)) as a:
        # one request per connection, even when the client asks to keep it
        with contextlib.closing(socket.create_connection(("127.0.0.1", port), timeout=scale(5))) as s:
            s.sendall(raw_get("/health", "Connection: keep-alive\r\n"))
            st, h, body = RawResponseReader(s).read()
            assert st == 200 and body == {"status": "ok"}, (st, body)
            assert h.get("connection", "").lower() == "close", h
            assert is_closed_or_reset(s, scale(2)), "the connection stayed open after the answer"
        # a connection that never sends is closed at the deadline
        with contextlib.closing(socket.create_connection(("127.0.0.1", port), timeout=scale(5))) as s:
            t0 = time.monotonic()
            assert is_closed_or_reset(s, scale(DEADLINE + 5)), "an idle connection stayed open"
            took = time.monotonic() - t0
            assert DEADLINE - 0.5 <= took <= scale(DEADLINE + 3), \
                "an idle probe connection was closed after %.2fs" % took
        # so is one that keeps sending a byte now and then (socket.timeout is
        # 30 s and restarts with every byte: only the deadline stops it)
        with contextlib.closing(socket.create_connection(("127.0.0.1", port), timeout=scale(5))) as s:
            req = raw_get("/health", "X-Pad: " + "a" * 200 + "\r\n")
            t0 = time.monotonic()
            closed = False
            for i in range(len(req)):
                try:
                    s.sendall(req[i:i + 1])
                except OSError:
                    closed = True
                    break
                if is_closed_or_reset(s, 0.3):
                    closed = True
                    break
                if time.monotonic() - t0 > scale(DEADLINE + 5):
                    break
            took = time.monotonic() - t0
            assert closed, "a connection trickling one byte each 0.3 s stayed open %.1fs" % took
            assert took <= scale(DEADLINE + 3), "a trickling connection lasted %.2fs" % took
        assert tcp_request(port, "GET", "/health")[0] == 200
        assert a.get("/health")[0] == 200


class Flood(threading.Thread):
    """Holds n_idle connections that send nothing and n_slow that send one byte
    of a request each second, reopening each one the agent closes."""

    SLOW = raw_get("/health", "X-Pad: " + "a" * 4000 + "\r\n")

    def __init__(self, port, n_idle, n_slow):
        super().__init__(daemon=True)
        self.port = port
        self.want = {"idle": n_idle, "slow": n_slow}
        self.sel = selectors.DefaultSelector()  # epoll: select() stops at fd 1024
        self.socks = {}       # sock -> [kind, bytes of SLOW sent]
        self.closed = 0       # connections the agent closed (EOF or reset)
        self.opened = 0
        self.halt = threading.Event()
        self.error = None

    def _open(self, kind):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        self.socks[s] = [kind, 0]
        self.sel.register(s, selectors.EVENT_READ)
        self.opened += 1

    def _drop(self, s):
        kind = self.socks.pop(s)[0]
        self.sel.unregister(s)
        s.close()
        self.closed += 1
        if not self.halt.is_set():
            self._open(kind)

    def run(self):
        try:
            for kind, n in self.want.items():
                for _ in range(n):
                    self._open(kind)
            tick = time.monotonic()
            while not self.halt.is_set():
                for key, _ in self.sel.select(0.1):
                    s = key.fileobj
                    try:
                        data = s.recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        self._drop(s)
                if time.monotonic() >= tick:
                    tick += 1.0
                    for s, st in list(self.socks.items()):
                        if st[0] != "slow":
                            continue
                        try:
                            st[1] += s.send(self.SLOW[st[1] % len(self.SLOW):][:1])
                        except OSError:
                            pass  # not connected yet, or closed: seen by recv
        except BaseException as e:  # reported by the test
            self.error = e

    def stop(self):
        self.halt.set()
        self.join(10)
        for s in list(self.socks):
            s.close()
        self.sel.close()


def test_probe_listener_survives_a_flood():
    # The old listener allowed 64 connections and timed out only idle ones,
    # so this flood starved /health (and Kubernetes restarted the pod).
    n_idle, n_slow = 300, 150
    raise_nofile(n_idle + n_slow + 500)
    port = free_port()
    with Agent(config(port)) as a:
        flood = Flood(port, n_idle, n_slow)
        flood.start()
        try:
            time.sleep(1.0)  # the flood is in place
            probes, worst = 0, 0.0
            end = time.monotonic() + 2 * DEADLINE + 4
            while time.monotonic() < end:
                t0 = time.monotonic()
                try:
                    st, _, body = tcp_request(port, "GET", "/health", timeout=2)
                except (OSError, http.client.HTTPException) as e:
                    raise AssertionError("probe %d failed after %.2fs during a flood of %d "
                                         "connections: %r" % (probes + 1, time.monotonic() - t0,
                                                              n_idle + n_slow, e))
                took = time.monotonic() - t0
                assert st == 200, (st, body)
                worst = max(worst, took)
                probes += 1
                time.sleep(0.2)
            assert flood.error is None, flood.error
            assert worst < scale(2), "a probe took %.2fs" % worst
            # the flood was real: the agent held it and closed it at the deadline
            assert flood.closed >= n_idle + n_slow, \
                "only %d of %d flood connections were closed by the agent in %d s" % (
                    flood.closed, flood.opened, 2 * DEADLINE + 5)
        finally:
            flood.stop()
        assert a.alive(), a.log()
        assert tcp_request(port, "GET", "/health")[0] == 200
        assert a.get("/health")[0] == 200
        assert a.stop() == 0
