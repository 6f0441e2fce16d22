"""The optional TCP listener (http.listen): probes only, never the API."""

import os
import socket

from harness import Agent, endpoint, free_port, parse_metrics, samples, tcp_request


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
