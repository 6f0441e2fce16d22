"""The local HTTP/JSON API on the Unix socket (SPEC.md, "Local API")."""

import collections
import json
import re
from urllib.parse import quote

from harness import Agent, RawResponseReader, endpoint, metric, samples, scale

ENDPOINT_KEYS = {"id", "service", "address", "port", "tags", "meta", "weight", "status"}

WEB = [
    endpoint("10.0.0.1", 8080, tags=["v1", "blue"], meta={"zone": "a"}),
    endpoint("10.0.0.2", 8080, tags=["v2"]),
    endpoint("10.0.0.3", 8081, tags=["v1"]),
    endpoint("10.0.0.4", 8080, tags=["v1"], status="critical"),
    endpoint("10.0.0.5", 8080, tags=["v2"], status="warning"),
]
WEB_PASSING = {"10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8081"}


def config(**extra):
    cfg = {
        "node": "it-node",
        "static": {"services": {
            "web": WEB,
            "db": [endpoint("10.1.0.1", 5432)],
            "down": [endpoint("10.2.0.1", 80, status="critical"),
                     endpoint("10.2.0.2", 80, status="warning")],
            "weighted": [endpoint("10.3.0.1", 80, weight=5),
                         endpoint("10.3.0.2", 80, weight=1),
                         endpoint("10.3.0.3", 80, weight=1)],
            "my svc": [endpoint("10.4.0.1", 80)],
            'we"ird\\svc': [endpoint("10.4.0.2", 80)],
        }},
    }
    cfg.update(extra)
    return cfg


def hostport(e):
    return "%s:%d" % (e["address"], e["port"])


def assert_error(status, headers, body, code):
    assert status == code, "expected %d, got %d: %r" % (code, status, body)
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert isinstance(body, dict) and set(body) == {"error"}, \
        "an error is {\"error\": sentence}, got %r" % (body,)
    assert isinstance(body["error"], str) and len(body["error"]) > 5, body


def picks(agent, path, n):
    """n GET requests on one keep-alive connection; the bodies."""
    conn = agent.http()
    out = []
    try:
        for _ in range(n):
            conn.request("GET", path)
            r = conn.getresponse()
            raw = r.read()
            assert r.status == 200, "%s answered %d: %r" % (path, r.status, raw)
            out.append(json.loads(raw))
    finally:
        conn.close()
    return out


def test_services_shape_and_counts():
    with Agent(config()) as a:
        st, h, body = a.get("/v1/services")
        assert st == 200, (st, body)
        assert h["content-type"].startswith("application/json"), h
        assert set(body) == {"services", "index"}, body
        assert isinstance(body["index"], int) and body["index"] > 0, body
        assert body["services"] == {"web": 3, "db": 1, "down": 0, "weighted": 3, "my svc": 1,
                                    'we"ird\\svc': 1}, \
            "counts are of passing endpoints: %r" % body["services"]
        assert int(h["x-beacon-index"]) == body["index"], (h, body)


def test_endpoints_passing_only_by_default():
    with Agent(config()) as a:
        st, h, body = a.get("/v1/endpoints/web")
        assert st == 200, (st, body)
        assert set(body) == {"service", "index", "stale", "endpoints"}, body
        assert body["service"] == "web" and body["stale"] is False, body
        assert int(h["x-beacon-index"]) == body["index"], (h, body)
        assert "x-beacon-stale" not in h, h
        eps = body["endpoints"]
        assert {hostport(e) for e in eps} == WEB_PASSING, eps
        assert len(eps) == 3, eps
        for e in eps:
            assert set(e) == ENDPOINT_KEYS, e
            assert e["service"] == "web" and e["status"] == "passing", e
            assert isinstance(e["port"], int) and isinstance(e["weight"], int), e
            assert isinstance(e["tags"], list) and isinstance(e["meta"], dict), e
            assert isinstance(e["id"], str) and e["id"], e
        first = [e for e in eps if e["address"] == "10.0.0.1"][0]
        assert first["tags"] == ["v1", "blue"] and first["meta"] == {"zone": "a"}, first
        assert first["weight"] == 1, first
        # ?status=passing is the default spelled out
        st2, _, body2 = a.get("/v1/endpoints/web?status=passing")
        assert st2 == 200 and body2["endpoints"] == eps, body2


def test_endpoints_status_any():
    with Agent(config()) as a:
        st, _, body = a.get("/v1/endpoints/web?status=any")
        assert st == 200, (st, body)
        got = {hostport(e): e["status"] for e in body["endpoints"]}
        assert got == {"10.0.0.1:8080": "passing", "10.0.0.2:8080": "passing",
                       "10.0.0.3:8081": "passing", "10.0.0.4:8080": "critical",
                       "10.0.0.5:8080": "warning"}, got
        st, _, body = a.get("/v1/endpoints/down")
        assert st == 200 and body["endpoints"] == [], body
        st, _, body = a.get("/v1/endpoints/down?status=any")
        assert st == 200 and len(body["endpoints"]) == 2, body


def test_endpoints_tag_filter():
    with Agent(config()) as a:
        st, h, body = a.get("/v1/endpoints/web?tag=v1")
        assert st == 200, (st, body)
        assert {hostport(e) for e in body["endpoints"]} == {"10.0.0.1:8080", "10.0.0.3:8081"}, body
        assert body["service"] == "web" and "index" in body and body["stale"] is False, body
        assert "x-beacon-index" in h, h
        st, _, body = a.get("/v1/endpoints/web?tag=v1&status=any")
        assert {hostport(e) for e in body["endpoints"]} == \
            {"10.0.0.1:8080", "10.0.0.3:8081", "10.0.0.4:8080"}, body
        st, _, body = a.get("/v1/endpoints/web?tag=nope")
        assert st == 200 and body["endpoints"] == [], body
        st, _, body = a.get("/v1/endpoints/web?tag=blue")
        assert [hostport(e) for e in body["endpoints"]] == ["10.0.0.1:8080"], body


def test_unknown_service_is_404_json():
    with Agent(config()) as a:
        for path in ("/v1/endpoints/nope", "/v1/pick/nope", "/v1/endpoints/nope?status=any"):
            st, h, body = a.get(path)
            assert_error(st, h, body, 404)
            assert "nope" in body["error"], body


def test_bad_status_param_is_400():
    with Agent(config()) as a:
        for q in ("status=critical", "status=", "status=ANY"):
            st, h, body = a.get("/v1/endpoints/web?" + q)
            assert_error(st, h, body, 400)
            assert "status" in body["error"], body


def test_bad_service_name_in_path_is_400():
    with Agent(config()) as a:
        for path in ("/v1/endpoints/", "/v1/endpoints/web/extra", "/v1/pick/", "/v1/endpoints/%zz"):
            st, h, body = a.get(path)
            assert_error(st, h, body, 400)


def test_every_api_answer_has_index_header():
    with Agent(config()) as a:
        cases = [
            ("GET", "/v1/services", 200), ("GET", "/v1/endpoints/web", 200),
            ("GET", "/v1/endpoints/web?tag=v1", 200), ("GET", "/v1/pick/web", 200),
            ("GET", "/v1/self", 200), ("GET", "/v1/endpoints/nope", 404),
            ("GET", "/v1/endpoints/web?status=bad", 400), ("GET", "/v1/pick/down", 503),
            ("GET", "/v1/pick/web?policy=nope", 400), ("POST", "/v1/services", 405),
            ("GET", "/v1/nothing-here", 404), ("POST", "/v1/self/drain", 200),
            ("POST", "/v1/self/resume", 200), ("GET", "/v1/kv/config/x", 404),
            ("GET", "/v1/secrets/db", 404),
        ]
        idx = a.index()
        for method, path, code in cases:
            st, h, body = a.request(method, path)
            assert st == code, "%s %s: expected %d, got %d %r" % (method, path, code, st, body)
            assert "x-beacon-index" in h, "%s %s has no X-Beacon-Index: %r" % (method, path, h)
            assert re.fullmatch(r"\d+", h["x-beacon-index"]), h
            if path.startswith(("/v1/services", "/v1/self")):
                assert int(h["x-beacon-index"]) == idx, (path, h, idx)


def test_pick_round_robin_cycles_over_passing():
    with Agent(config()) as a:
        got = [hostport(e) for e in picks(a, "/v1/pick/web", 12)]
        for i in range(0, 12, 3):
            assert set(got[i:i + 3]) == WEB_PASSING, "not a cycle over all passing: %r" % got
        assert got[0:3] == got[3:6] == got[9:12], "round robin keeps its order: %r" % got
        # the default policy is round_robin
        got2 = [hostport(e) for e in picks(a, "/v1/pick/web?policy=round_robin", 6)]
        assert set(got2[0:3]) == WEB_PASSING and got2[0:3] == got2[3:6], got2
        for e in picks(a, "/v1/pick/web", 3):
            assert set(e) == ENDPOINT_KEYS and e["status"] == "passing", e


def test_pick_random_hits_every_endpoint():
    with Agent(config()) as a:
        got = collections.Counter(hostport(e) for e in picks(a, "/v1/pick/web?policy=random", 2000))
        assert set(got) == WEB_PASSING, got
        # each of 3 is expected ~667 times; 400 is > 13 sigma away
        assert min(got.values()) > 400, "random is far from uniform: %r" % got


def test_pick_weighted_proportions():
    with Agent(config()) as a:
        got = collections.Counter(hostport(e) for e in picks(a, "/v1/pick/weighted?policy=weighted", 700))
        assert got == {"10.3.0.1:80": 500, "10.3.0.2:80": 100, "10.3.0.3:80": 100}, got
        # any 7 consecutive picks of the smooth sequence hold 5:1:1
        seq = [hostport(e) for e in picks(a, "/v1/pick/weighted?policy=weighted", 7)]
        assert collections.Counter(seq) == {"10.3.0.1:80": 5, "10.3.0.2:80": 1, "10.3.0.3:80": 1}, seq


def test_pick_hash_is_stable_and_spreads():
    with Agent(config()) as a:
        for key in ("user-1", "user-2", "a b/c"):
            got = {hostport(e) for e in picks(a, "/v1/pick/web?policy=hash&key=" + quote(key), 20)}
            assert len(got) == 1, "key %r went to %r" % (key, got)
        spread = collections.Counter()
        for i in range(200):
            st, _, e = a.get("/v1/pick/web?policy=hash&key=k%d" % i)
            assert st == 200, (st, e)
            spread[hostport(e)] += 1
        assert set(spread) == WEB_PASSING, "200 keys should reach all 3 endpoints: %r" % spread
        st, h, body = a.get("/v1/pick/web?policy=hash")
        assert_error(st, h, body, 400)
        assert "key" in body["error"], body


def test_pick_unknown_policy_is_400():
    with Agent(config()) as a:
        st, h, body = a.get("/v1/pick/web?policy=least_conn")
        assert_error(st, h, body, 400)
        assert "policy" in body["error"], body


def test_pick_without_passing_endpoint_is_503():
    with Agent(config()) as a:
        for policy in ("round_robin", "random", "weighted"):
            st, h, body = a.get("/v1/pick/down?policy=" + policy)
            assert_error(st, h, body, 503)
        st, h, body = a.get("/v1/pick/down?policy=hash&key=x")
        assert_error(st, h, body, 503)


def test_self_shape():
    with Agent(config()) as a:
        st, h, body = a.get("/v1/self")
        assert st == 200, (st, body)
        assert body["node"] == "it-node", body
        assert body["ready"] is True, body
        assert body.get("drained") is False, body
        assert isinstance(body["backends"], list) and body["backends"], body
        names = [b.get("name") for b in body["backends"]]
        assert "static#0" in names, names
        static = body["backends"][names.index("static#0")]
        assert static.get("ready") is True, static


def test_health_and_ready():
    with Agent(config()) as a:
        st, h, body = a.get("/health")
        assert st == 200, (st, body)
        st, h, body = a.get("/ready")
        assert st == 200, (st, body)
        assert h["content-type"].startswith("application/json"), h


def test_metrics():
    with Agent(config()) as a:
        a.get("/v1/endpoints/web")
        a.get("/v1/endpoints/web")
        a.get("/v1/endpoints/nope")
        st, h, text = a.get("/metrics")
        assert st == 200, st
        assert h["content-type"].startswith("text/plain"), h
        m = a.metrics()
        req = samples(m, "beacon_requests_total")
        assert req, "no beacon_requests_total:\n" + text
        for labels, _ in req:
            assert "route" in labels and "status" in labels, labels
        assert (metric(m, "beacon_requests_total", route="endpoints", status="200") or 0) >= 2, text
        assert (metric(m, "beacon_requests_total", route="endpoints", status="404") or 0) >= 1, text
        assert m.get("#TYPE beacon_requests_total") == "counter", text
        assert m.get("#TYPE beacon_request_duration_seconds") == "histogram", text
        buckets = samples(m, "beacon_request_duration_seconds_bucket")
        assert any(l.get("le") == "+Inf" for l, _ in buckets), text
        inf = [v for l, v in buckets if l.get("le") == "+Inf"]
        count = metric(m, "beacon_request_duration_seconds_count")
        assert count is not None and count >= 3 and sum(inf) == count, text
        assert metric(m, "beacon_request_duration_seconds_sum") is not None, text
        # buckets are cumulative
        vals = [v for _, v in sorted(((float(l["le"]), v) for l, v in buckets
                                       if len(l) == 1), key=lambda t: t[0])]
        assert vals == sorted(vals), text
        assert metric(m, "beacon_endpoints", service="web", status="passing") == 3, text
        assert metric(m, "beacon_endpoints", service="down", status="passing") == 0, text
        assert metric(m, "beacon_endpoints", service="my svc", status="passing") == 1, text
        # label values are escaped (the parser above rejects a broken line)
        assert metric(m, "beacon_endpoints", service='we\\"ird\\\\svc', status="passing") == 1, text
        info = samples(m, "beacon_build_info")
        assert len(info) == 1 and info[0][1] == 1, text
        assert "version" in info[0][0] and "static" in info[0][0].get("plugins", ""), info
        for key in m:
            name = key[0] if isinstance(key, tuple) else key.split()[1]
            assert name.startswith("beacon_"), "metric without the beacon_ prefix: %r" % (key,)


def test_wrong_method_is_405_with_allow():
    with Agent(config()) as a:
        for method, path, allow in (("POST", "/v1/services", "GET"),
                                    ("DELETE", "/v1/endpoints/web", "GET"),
                                    ("PUT", "/v1/pick/web", "GET"),
                                    ("POST", "/v1/self", "GET"),
                                    ("GET", "/v1/self/drain", "POST"),
                                    ("GET", "/v1/self/resume", "POST"),
                                    ("POST", "/health", "GET")):
            st, h, body = a.request(method, path)
            assert_error(st, h, body, 405)
            want = "GET, HEAD" if allow == "GET" else allow
            assert h.get("allow") == want, "%s %s: Allow %r" % (method, path, h.get("allow"))
        # GET /v1/self/drain must not have drained
        assert a.get("/ready")[0] == 200


def test_drain_and_resume():
    with Agent(config()) as a:
        st, _, body = a.post("/v1/self/drain")
        assert st == 200 and body.get("drained") is True, (st, body)
        st, _, body = a.get("/ready")
        assert st == 503, (st, body)
        st, _, body = a.get("/v1/self")
        assert body["drained"] is True and body["ready"] is False, body
        assert a.get("/health")[0] == 200, "liveness does not depend on draining"
        # draining twice is fine
        assert a.post("/v1/self/drain")[0] == 200
        st, _, body = a.post("/v1/self/resume")
        assert st == 200 and body.get("drained") is False, (st, body)
        assert a.get("/ready")[0] == 200
        st, _, body = a.get("/v1/self")
        assert body["drained"] is False and body["ready"] is True, body


def test_unknown_route_is_404():
    with Agent(config()) as a:
        for path in ("/", "/v1", "/v1/", "/v2/services", "/v1/servicesx", "/healthz", "/v1/endpoints"):
            st, h, body = a.get(path)
            assert_error(st, h, body, 404)


def test_url_encoded_service_name():
    with Agent(config()) as a:
        st, _, body = a.get("/v1/endpoints/my%20svc")
        assert st == 200, (st, body)
        assert body["service"] == "my svc", body
        assert [hostport(e) for e in body["endpoints"]] == ["10.4.0.1:80"], body
        assert body["endpoints"][0]["service"] == "my svc", body
        st, _, e = a.get("/v1/pick/my%20svc")
        assert st == 200 and hostport(e) == "10.4.0.1:80", (st, e)
        st, _, body = a.get("/v1/endpoints/w%65b")
        assert st == 200 and body["service"] == "web", body
        st, _, body = a.get("/v1/endpoints/web?tag=v%31")
        assert st == 200 and len(body["endpoints"]) == 2, body


def test_get_with_body_is_400():
    with Agent(config()) as a:
        st, h, body = a.request("GET", "/v1/services", body="{}")
        assert_error(st, h, body, 400)
        st, h, body = a.request("GET", "/v1/endpoints/web", body="x" * 100)
        assert_error(st, h, body, 400)
        assert a.get("/health")[0] == 200


def raw_answer(agent, method, path):
    """(status, headers, body bytes) without any decoding."""
    conn = agent.http()
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def strict_error(raw):
    """The error sentence of a body that must be strict UTF-8 JSON."""
    body = json.loads(raw.decode("utf-8"))  # no "replace": invalid UTF-8 fails here
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    return body["error"]


def test_error_messages_with_bytes_that_are_not_utf8():
    with Agent(config()) as a:
        for path, code in (("/v1/endpoints/%FF", 404), ("/v1/pick/%FE%FF", 404),
                           ("/v1/pick/web?policy=%C3", 400), ("/v1/secrets/%80x", 404)):
            st, h, raw = raw_answer(a, "GET", path)
            assert st == code, (path, st, raw)
            msg = strict_error(raw)
            assert "\ufffd" in msg, "%s: the invalid bytes are shown as U+FFFD: %r" % (path, msg)
        st, _, raw = raw_answer(a, "GET", "/v1/endpoints/%FF")
        assert "\"\ufffd\" is not known" in strict_error(raw), raw


def test_error_messages_cut_between_characters():
    with Agent(config()) as a:
        # The name is shown up to 100 bytes; here byte 100 is the middle of "é".
        for name in ("a" * 99 + "\u00e9" * 3, "\u00e9" * 60, "a" * 98 + "\u20ac" * 4):
            st, _, raw = raw_answer(a, "GET", "/v1/endpoints/" + quote(name))
            assert st == 404, (st, raw)
            msg = strict_error(raw)
            shown = re.search(r'service "([^"]*)"', msg).group(1)
            assert "\ufffd" not in shown, "a character cut in half: %r" % msg
            assert name.startswith(shown) and 97 <= len(shown.encode()) <= 100, (shown, msg)


def head_then_get(agent, path):
    """HEAD and GET of path pipelined on one connection: (HEAD status line and
    headers, GET status, headers, raw body). A HEAD answer that carried a body
    would show up where the GET answer must start."""
    s = agent.connect()
    try:
        s.sendall(("HEAD %s HTTP/1.1\r\nHost: b\r\n\r\nGET %s HTTP/1.1\r\nHost: b\r\n"
                   "Connection: close\r\n\r\n" % (path, path)).encode())
        data = b""
        s.settimeout(scale(5))
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hh = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    assert rest.startswith(b"HTTP/1.1 "), "the HEAD answer carried a body: %r" % rest[:80]
    get_head, _, body = rest.partition(b"\r\n\r\n")
    glines = get_head.decode("latin-1").split("\r\n")
    gh = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in glines[1:])}
    return lines[0], hh, glines[0], gh, body


def test_head_is_get_without_body():
    with Agent(config()) as a:
        for path in ("/v1/endpoints/web", "/v1/services", "/health", "/v1/pick/db",
                     "/v1/endpoints/nope", "/ready", "/v1/kv/x"):
            hline, hh, gline, gh, body = head_then_get(a, path)
            assert hline.split()[1] == gline.split()[1], (path, hline, gline)
            assert hh.get("content-length") == str(len(body)) == gh.get("content-length"), \
                (path, hh, gh, len(body))
            assert hh.get("content-type") == gh.get("content-type"), (path, hh, gh)
            assert "allow" not in hh, (path, hh)
        # HEAD where only POST is allowed: 405 with its headers and no body.
        hline, hh, gline, _, _ = head_then_get(a, "/v1/self/drain")
        assert hline.split()[1] == "405" and hh.get("allow") == "POST", (hline, hh)
        assert int(hh.get("content-length", "-1")) > 0, hh
        assert a.get("/ready")[0] == 200, "HEAD did not drain"
