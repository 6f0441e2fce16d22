#!/usr/bin/env python3
"""Self-test for consul_sim.py: python3 tests/sim/test_consul_sim.py

Starts the simulator on a free port (plus a Unix socket, plus a second ACL-enabled instance),
exercises it over real HTTP with urllib, prints `PASS name` / `FAIL name: why` per test and a
final `N passed, N failed` line (exit 1 on any failure).
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "consul_sim.py")
UNIX = os.path.join(tempfile.mkdtemp(prefix="consul-sim-"), "consul.sock")
ANON_DENIED = ("Permission denied: anonymous token lacks permission 'service:write' on \"web\". The "
               "anonymous token is used implicitly when a request does not specify a token.")


class Sim:
    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, SIM, "--port", "0"] + list(args),
                                     stdout=subprocess.PIPE, text=True)
        line = []
        t = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(10)
        if not line or not line[0].startswith("LISTENING "):
            self.proc.kill()
            raise RuntimeError("simulator did not start: %r" % line)
        self.base = "http://127.0.0.1:%d" % int(line[0].split()[1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


MAIN = ACL = None


class R:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self):
        return self.body.decode()

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def index(self):
        return int(self.headers["X-Consul-Index"])


def req(method, path, body=None, headers=None, sim=None, timeout=15):
    data = body.encode() if isinstance(body, str) else body
    if data is None and method in ("PUT", "POST"):
        data = b""
    r = urllib.request.Request((sim or MAIN).base + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(r, timeout=timeout) as resp:
            return R(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as e:
        return R(e.code, e.headers, e.read())


def get(path, **kw):
    return req("GET", path, **kw)


def put(path, body=None, **kw):
    return req("PUT", path, body, **kw)


def register(svc, **kw):
    r = put("/v1/agent/service/register", json.dumps(svc), **kw)
    assert r.status == 200, (r.status, r.text)
    return r


def state():
    return get("/sim/state").json


def eq(a, b, what=""):
    assert a == b, "%s: expected %r, got %r" % (what, b, a)


def wait_for(fn, timeout=5.0, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("condition not met within %.1fs" % timeout)


# ------------------------------------------------------------------------------ tests
def test_headers_and_index():
    r = get("/v1/catalog/services")
    eq(r.status, 200)
    assert r.index >= 1, r.headers
    eq(r.headers["X-Consul-KnownLeader"], "true")
    eq(r.headers["X-Consul-LastContact"], "0")
    eq(r.headers["Content-Type"], "application/json")
    assert "consul" in r.json, r.json
    r = get("/v1/kv/never/written/key")     # missing key: empty 404, index still >= 1
    eq(r.status, 404)
    eq(r.body, b"")
    assert r.index >= 1
    eq(get("/v1/status/leader").json, "127.0.0.1:8300")


def test_register_list_deregister():
    register({"ID": "web-1", "Name": "web", "Tags": ["v1", "primary"], "Address": "10.0.0.1",
              "Port": 8080, "Meta": {"zone": "a"}, "Weights": {"Passing": 10, "Warning": 1},
              "Check": {"TTL": "10s", "Notes": "beacon"}})
    svcs = get("/v1/agent/services").json
    s = svcs["web-1"]
    eq(s["Service"], "web")
    eq(s["Tags"], ["v1", "primary"])
    eq(s["Weights"], {"Passing": 10, "Warning": 1})
    eq(s["Meta"], {"zone": "a"})
    eq(s["Port"], 8080)
    c = get("/v1/agent/checks").json["service:web-1"]
    eq(c["Status"], "critical", "initial status")
    eq(c["Name"], "Service 'web' check")
    eq(c["Notes"], "beacon")
    # ID defaults to Name, snake_case / lower-case keys accepted, default weights
    register({"name": "solo", "port": 1, "check": {"ttl": "5s", "deregister_critical_service_after": "1h"}})
    eq(get("/v1/agent/services").json["solo"]["Weights"], {"Passing": 1, "Warning": 1})
    r = put("/v1/agent/service/deregister/web-1")
    eq((r.status, r.body), (200, b""))
    assert "web-1" not in get("/v1/agent/services").json
    assert "service:web-1" not in get("/v1/agent/checks").json
    r = put("/v1/agent/service/deregister/web-1")
    eq(r.status, 404)
    eq(r.text, 'Unknown service ID "web-1". Ensure that the service ID is passed, not the service name.')
    put("/v1/agent/service/deregister/solo")


def test_register_bad_input():
    r = put("/v1/agent/service/register", json.dumps({"Port": 1}))
    eq((r.status, r.text), (400, "Missing service name"))
    assert r.headers["Content-Type"].startswith("text/plain"), r.headers["Content-Type"]
    r = put("/v1/agent/service/register", json.dumps({"Name": "x", "Check": {"TTL": "abc"}}))
    eq((r.status, r.text), (400, 'Request decode failed: time: invalid duration "abc"'))
    r = put("/v1/agent/service/register", "{not json")
    eq(r.status, 400)
    assert r.text.startswith("Request decode failed: "), r.text
    r = put("/v1/agent/service/register", "")
    eq((r.status, r.text), (400, "Request decode failed: EOF"))
    r = put("/v1/agent/service/register", json.dumps({"Name": "x", "Port": "80"}))
    eq(r.status, 400)
    assert "cannot unmarshal string" in r.text, r.text
    r = put("/v1/agent/service/register", json.dumps({"Name": "x", "Check": {"TTL": "5s", "Status": "ok"}}))
    eq((r.status, r.text), (400, "Status for checks must 'passing', 'warning', 'critical'"))
    r = put("/v1/agent/service/register", json.dumps({"Name": "x", "Check": {"TTL": "-1s"}}))
    eq((r.status, r.text), (400, "Invalid check: TTL must be > 0 for TTL checks"))
    r = put("/v1/agent/service/register", json.dumps({"Name": "x", "Address": "0.0.0.0"}))
    eq((r.status, r.text), (400, "Invalid service address"))
    r = get("/v1/agent/service/register")
    eq((r.status, r.text, r.headers["Allow"]), (405, "method GET not allowed", "OPTIONS,PUT"))
    eq(get("/v1/nope").status, 404)
    assert "x" not in get("/v1/agent/services").json


def test_check_pass_warn_fail_update():
    register({"ID": "chk-1", "Name": "chk", "Checks": [{"TTL": "30s"}, {"TTL": "30s", "Name": "second"}]})
    checks = get("/v1/agent/checks").json
    assert {"service:chk-1:1", "service:chk-1:2"} <= set(checks), sorted(checks)
    eq(checks["service:chk-1:2"]["Name"], "second")
    for verb, status in (("pass", "passing"), ("warn", "warning"), ("fail", "critical")):
        r = put("/v1/agent/check/%s/service:chk-1:1?note=%s+note" % (verb, verb))
        eq((r.status, r.body), (200, b""))
        c = get("/v1/agent/checks").json["service:chk-1:1"]
        eq((c["Status"], c["Output"]), (status, verb + " note"))
    r = put("/v1/agent/check/update/service:chk-1:2", json.dumps({"Status": "passing", "Output": "ok"}))
    eq(r.status, 200)
    c = get("/v1/agent/checks").json["service:chk-1:2"]
    eq((c["Status"], c["Output"]), ("passing", "ok"))
    r = put("/v1/agent/check/update/service:chk-1:2", json.dumps({"Status": "bogus"}))
    eq((r.status, r.text), (400, "Invalid check status: 'bogus'"))
    r = put("/v1/agent/check/pass/chk")
    eq(r.status, 404)
    eq(r.text, 'Unknown check ID "chk". Ensure that the check ID is passed, not the check name.')
    st = state()["checks"]["service:chk-1:1"]
    eq(st["updates"], 3)
    assert st["last_update"] and abs(time.time() - st["last_update"]) < 5, st
    put("/v1/agent/service/deregister/chk-1")


def test_ttl_expiry_to_critical():
    register({"ID": "ttl-1", "Name": "ttl", "Check": {"TTL": "500ms", "Status": "passing"}})
    register({"ID": "ttl-2", "Name": "ttl", "Check": {"TTL": "500ms"}})
    put("/v1/agent/check/pass/service:ttl-2?note=last+words")
    time.sleep(0.2)
    eq(get("/v1/agent/checks").json["service:ttl-1"]["Status"], "passing")
    c = wait_for(lambda: (lambda c: c if c["Status"] == "critical" else None)(
        get("/v1/agent/checks").json["service:ttl-1"]), timeout=2)
    eq(c["Output"], "TTL expired")
    c2 = wait_for(lambda: (lambda c: c if c["Status"] == "critical" else None)(
        get("/v1/agent/checks").json["service:ttl-2"]), timeout=2)
    eq(c2["Output"], "TTL expired (last output before timeout follows): last words")
    h = get("/v1/health/service/ttl").json     # status changes reach the catalog at once
    eq(sorted(ch["Status"] for e in h for ch in e["Checks"] if ch["CheckID"] != "serfHealth"),
       ["critical", "critical"])
    put("/v1/agent/check/pass/service:ttl-1")    # an update restarts the TTL timer
    eq(get("/v1/agent/checks").json["service:ttl-1"]["Status"], "passing")
    for i in ("ttl-1", "ttl-2"):
        put("/v1/agent/service/deregister/" + i)


def test_deregister_critical_service_after():
    register({"ID": "reap-1", "Name": "reap",
              "Check": {"TTL": "300ms", "Status": "passing", "DeregisterCriticalServiceAfter": "400ms"}})
    register({"ID": "keep-1", "Name": "reap", "Check": {"TTL": "30s", "Status": "passing",
                                                        "DeregisterCriticalServiceAfter": "400ms"}})
    t0 = time.time()
    wait_for(lambda: "reap-1" not in get("/v1/agent/services").json, timeout=3)
    assert time.time() - t0 >= 0.6, "reaped too early"
    assert "keep-1" in get("/v1/agent/services").json
    assert any(e["event"].startswith("reaped") and e["service_id"] == "reap-1" for e in state()["events"])
    eq([e["Service"]["ID"] for e in get("/v1/health/service/reap").json], ["keep-1"])
    put("/v1/agent/service/deregister/keep-1")


def test_health_passing_and_tags():
    for i, tags in ((1, ["a", "b"]), (2, ["a"]), (3, ["b", "A-upper"])):
        register({"ID": "hp-%d" % i, "Name": "hp", "Tags": tags, "Port": 9000 + i, "Check": {"TTL": "30s"}})
    put("/v1/agent/check/pass/service:hp-1")
    put("/v1/agent/check/warn/service:hp-2")
    r = get("/v1/health/service/hp")
    eq(r.status, 200)
    e = r.json
    eq([x["Service"]["ID"] for x in e], ["hp-1", "hp-2", "hp-3"])
    eq(set(e[0]), {"Node", "Service", "Checks"})
    eq(e[0]["Checks"][0]["CheckID"], "serfHealth")
    eq(e[0]["Service"]["Port"], 9001)
    eq(e[0]["Service"]["Weights"], {"Passing": 1, "Warning": 1})
    eq([x["Service"]["ID"] for x in get("/v1/health/service/hp?passing").json], ["hp-1"])
    eq([x["Service"]["ID"] for x in get("/v1/health/service/hp?passing=true").json], ["hp-1"])
    eq(len(get("/v1/health/service/hp?passing=false").json), 3)
    eq(get("/v1/health/service/hp?passing=maybe").status, 400)
    eq([x["Service"]["ID"] for x in get("/v1/health/service/hp?tag=a").json], ["hp-1", "hp-2"])
    eq([x["Service"]["ID"] for x in get("/v1/health/service/hp?tag=a&tag=b").json], ["hp-1"])
    eq([x["Service"]["ID"] for x in get("/v1/health/service/hp?tag=a-upper").json], ["hp-3"])
    r = get("/v1/health/service/does-not-exist")
    eq((r.status, r.json), (200, []))
    assert r.index >= 1
    eq(get("/v1/catalog/services").json["hp"], ["A-upper", "a", "b"])
    r = get("/v1/health/service/hp?dc=dc2")
    eq((r.status, r.text), (500, "No path to datacenter"))
    eq(get("/v1/health/service/hp?dc=dc1").status, 200)
    eq((get("/v1/health/service/hp?wait=xyz").status, get("/v1/health/service/hp?index=-1").status),
       (400, 400))
    for i in (1, 2, 3):
        put("/v1/agent/service/deregister/hp-%d" % i)


def test_blocking_wakes_on_change():
    r = get("/v1/health/service/blk")
    idx = r.index
    out = {}

    def blocker():
        t = time.time()
        out["r"] = get("/v1/health/service/blk?index=%d&wait=10s" % idx)
        out["t"] = time.time() - t
    th = threading.Thread(target=blocker)
    th.start()
    wait_for(lambda: state()["blocked_queries"] >= 1, timeout=3)
    register({"ID": "blk-1", "Name": "blk", "Check": {"TTL": "30s", "Status": "passing"}})
    th.join(5)
    assert "r" in out, "blocking query did not return"
    assert out["t"] < 3, out["t"]
    assert out["r"].index > idx, (out["r"].index, idx)
    eq([e["Service"]["ID"] for e in out["r"].json], ["blk-1"])
    # KV blocking on a recurse prefix wakes on a put below it
    put("/v1/kv/blk/a", "1")
    kidx = get("/v1/kv/blk/?recurse").index
    th = threading.Thread(target=lambda: out.update(k=get("/v1/kv/blk/?recurse&index=%d&wait=10s" % kidx)))
    th.start()
    wait_for(lambda: state()["blocked_queries"] >= 1, timeout=3)
    put("/v1/kv/blk/b", "2")
    th.join(5)
    assert out["k"].index > kidx
    eq([e["Key"] for e in out["k"].json], ["blk/a", "blk/b"])
    put("/v1/agent/service/deregister/blk-1")


def test_blocking_times_out_unchanged():
    register({"ID": "quiet-1", "Name": "quiet"})
    idx = get("/v1/health/service/quiet").index
    put("/v1/kv/other/key", "x")          # unrelated writes must not wake it
    t = time.time()
    r = get("/v1/health/service/quiet?index=%d&wait=1s" % idx)
    el = time.time() - t
    assert 0.9 <= el < 1.6, el                # 1s + up to 1s/16 jitter
    eq(r.index, idx)
    put("/v1/kv/quiet/k", "v")
    kidx = get("/v1/kv/quiet/k").index
    t = time.time()
    r = get("/v1/kv/quiet/k?index=%d&wait=500ms" % kidx)
    assert 0.45 <= time.time() - t < 1.2
    eq(r.index, kidx)
    put("/v1/agent/service/deregister/quiet-1")


def test_kv_store():
    eq(put("/v1/kv/cfg/web/color", "blue").json, True)
    r = get("/v1/kv/cfg/web/color")
    e = r.json
    eq(len(e), 1)
    eq(list(e[0]), ["LockIndex", "Key", "Flags", "Value", "CreateIndex", "ModifyIndex"])
    eq((e[0]["Key"], e[0]["Value"], e[0]["Flags"]), ("cfg/web/color", "Ymx1ZQ==", 0))
    eq(r.index, e[0]["ModifyIndex"])
    r = get("/v1/kv/cfg/web/color?raw")
    eq((r.body, r.headers["Content-Type"]), (b"blue", "text/plain"))
    put("/v1/kv/cfg/web/size?flags=42", "10")
    put("/v1/kv/cfg/web/empty", "")
    put("/v1/kv/cfg/webx", "no")
    r = get("/v1/kv/cfg/web/?recurse")
    eq([x["Key"] for x in r.json], ["cfg/web/color", "cfg/web/empty", "cfg/web/size"])
    eq(r.json[1]["Value"], None)
    eq(r.json[2]["Flags"], 42)
    eq(r.index, max(x["ModifyIndex"] for x in r.json))
    eq(get("/v1/kv/cfg/?keys&separator=/").json, ["cfg/web/", "cfg/webx"])
    r = get("/v1/kv/nothing/here/?recurse")
    eq((r.status, r.body), (404, b""))
    assert r.index >= 1
    eq(get("/v1/kv/cfg/web/missing").status, 404)
    # CAS
    mi = get("/v1/kv/cfg/web/color").json[0]["ModifyIndex"]
    eq(put("/v1/kv/cfg/web/color?cas=%d" % (mi + 1000), "red").json, False)
    eq(put("/v1/kv/cfg/web/color?cas=0", "red").json, False)
    eq(put("/v1/kv/cfg/web/color?cas=%d" % mi, "red").json, True)
    eq(put("/v1/kv/cfg/web/new?cas=0", "n").json, True)
    # delete: the prefix index moves forward (tombstone) even though the max item went away
    before = get("/v1/kv/cfg/web/?recurse").index
    eq(req("DELETE", "/v1/kv/cfg/web/new").json, True)
    r = get("/v1/kv/cfg/web/?recurse")
    assert r.index > before, (r.index, before)
    eq(get("/v1/kv/cfg/web/new").status, 404)
    eq(req("DELETE", "/v1/kv/cfg/web?recurse").json, True)
    eq(get("/v1/kv/cfg/?recurse").status, 404)
    eq(put("/v1/kv/", "x").text, "Missing key name")
    assert not [k for k in state()["kv"] if k.startswith("cfg/")], state()["kv"]


def test_index_backwards_after_restart():
    register({"ID": "rs-1", "Name": "rs", "Check": {"TTL": "30s"}})
    put("/v1/kv/rs/a", "1")
    hi = get("/v1/health/service/rs").index
    ki = get("/v1/kv/rs/a").index
    # a blocked query is cut off by the restart (connection closed, no answer)
    out = {}

    def blocker():
        try:
            out["r"] = get("/v1/health/service/rs?index=%d&wait=10s" % hi)
        except Exception as e:   # noqa: BLE001 - any transport error is what we expect
            out["err"] = e
    th = threading.Thread(target=blocker)
    th.start()
    wait_for(lambda: state()["blocked_queries"] >= 1, timeout=3)
    r = req("POST", "/sim/restart")
    eq(r.status, 200)
    th.join(5)
    assert "err" in out, out
    eq(get("/v1/agent/services").json, {})
    r = get("/v1/health/service/rs")
    eq(r.json, [])
    assert r.index < hi, (r.index, hi)
    r = get("/v1/kv/rs/a")
    eq(r.status, 404)
    assert 1 <= r.index < ki, (r.index, ki)
    eq(state()["restarts"], 1)


def test_index_forced_backwards():
    register({"ID": "fb-1", "Name": "fb"})
    for i in range(5):
        put("/v1/kv/fb/k%d" % i, str(i))
    hi = get("/v1/health/service/fb").index
    out = {}
    th = threading.Thread(target=lambda: out.update(r=get("/v1/health/service/fb?index=%d&wait=10s" % hi)))
    th.start()
    wait_for(lambda: state()["blocked_queries"] >= 1, timeout=3)
    t, low = time.time(), hi - 3
    eq(req("POST", "/sim/index?set=%d" % low).status, 200)
    th.join(5)
    assert time.time() - t < 2 and "r" in out
    assert out["r"].index <= low < hi, (out["r"].index, low, hi)
    assert get("/v1/kv/fb/?recurse").index <= low
    eq(state()["index"], low)
    put("/v1/agent/service/deregister/fb-1")
    assert get("/v1/health/service/fb").index > low


def test_output_only_updates_are_deferred():
    register({"ID": "df-1", "Name": "df", "Check": {"TTL": "30s"}})
    put("/v1/agent/check/pass/service:df-1?note=a")
    idx = get("/v1/health/service/df").index
    put("/v1/agent/check/pass/service:df-1?note=b")     # same status: output sync is deferred
    eq(get("/v1/agent/checks").json["service:df-1"]["Output"], "b")
    r = get("/v1/health/service/df")
    eq([c["Output"] for c in r.json[0]["Checks"] if c["CheckID"] == "service:df-1"], ["a"])
    eq(r.index, idx)
    put("/v1/agent/service/deregister/df-1")


def test_faults():
    eq(req("POST", "/sim/fail?count=2&status=503").status, 200)
    eq(get("/v1/catalog/services").status, 503)
    r = get("/v1/catalog/services")
    eq((r.status, r.text), (503, "No cluster leader"))
    eq(get("/v1/catalog/services").status, 200)
    req("POST", "/sim/delay?ms=300")
    t = time.time()
    get("/v1/catalog/services")
    assert time.time() - t >= 0.29
    req("POST", "/sim/reset")
    t = time.time()
    get("/v1/catalog/services")
    assert time.time() - t < 0.25
    req("POST", "/sim/truncate?count=1")
    try:
        get("/v1/catalog/services").json
        raise AssertionError("truncated body was read completely")
    except http.client.IncompleteRead:
        pass
    req("POST", "/sim/garbage?count=1")
    r = get("/v1/catalog/services")
    eq(r.status, 200)
    try:
        r.json
        raise AssertionError("garbage parsed as JSON")
    except ValueError:
        pass
    eq(get("/v1/catalog/services").status, 200)
    req("POST", "/sim/restart?down_ms=400")
    try:
        get("/v1/catalog/services", timeout=3)
        raise AssertionError("agent answered while down")
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError):
        pass
    time.sleep(0.45)
    eq(get("/v1/catalog/services").status, 200)
    st = state()
    assert st["requests"]["/v1/catalog/services"] >= 8, st["requests"]
    assert "GET /v1/catalog/services" in st["requests_by_method"]
    # expire control fires a TTL timer immediately
    register({"ID": "ex-1", "Name": "ex", "Check": {"TTL": "1h", "Status": "passing"}})
    req("POST", "/sim/expire?check=service:ex-1")
    eq(get("/v1/agent/checks").json["service:ex-1"]["Status"], "critical")
    put("/v1/agent/service/deregister/ex-1")


def test_unix_socket():
    class UnixConn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(UNIX)
    c = UnixConn("localhost", timeout=5)
    c.request("PUT", "/v1/kv/unix/key", body=b"via-socket")
    r = c.getresponse()
    eq((r.status, r.read()), (200, b"true\n"))
    c.request("GET", "/v1/kv/unix/key?raw")     # keep-alive: same connection
    r = c.getresponse()
    eq((r.status, r.read()), (200, b"via-socket"))
    c.close()
    eq(get("/v1/kv/unix/key?raw").body, b"via-socket")


def test_acl():
    a = ACL
    ro_acc = get("/v1/acl/token/self", headers={"X-Consul-Token": "ro"}, sim=a).json["AccessorID"]
    eq(get("/v1/acl/token/self").status, 401)      # ACLs disabled on the main sim
    body = json.dumps({"ID": "web-1", "Name": "web", "Check": {"TTL": "10s"}})
    r = put("/v1/agent/service/register", body, sim=a)
    eq((r.status, r.text), (403, ANON_DENIED))
    eq(r.headers["X-Consul-Default-ACL-Policy"], "deny")
    r = put("/v1/agent/service/register", body, sim=a, headers={"X-Consul-Token": "nope"})
    eq((r.status, r.text), (403, "ACL not found"))
    r = put("/v1/agent/service/register", body, sim=a, headers={"X-Consul-Token": "ro"})
    eq((r.status, r.text), (403, "Permission denied: token with AccessorID '%s' lacks permission "
                                 "'service:write' on \"web\"" % ro_acc))
    r = put("/v1/agent/service/register", body, sim=a, headers={"Authorization": "Bearer root"})
    eq(r.status, 200)
    eq(put("/v1/agent/check/pass/service:web-1?token=root", sim=a).status, 200)
    eq(put("/v1/agent/check/pass/service:web-1", sim=a).text, ANON_DENIED)
    eq(len(get("/v1/health/service/web?token=ro", sim=a).json), 1)
    r = get("/v1/health/service/web", sim=a)          # anonymous: filtered, not refused
    eq((r.status, r.json), (200, []))
    eq(get("/v1/health/service/web?token=bad", sim=a).status, 403)
    eq(get("/v1/catalog/services", sim=a).json, {})
    eq(put("/v1/kv/k?token=root", "v", sim=a).json, True)
    r = get("/v1/kv/k", sim=a)
    eq((r.status, r.text), (403, "Permission denied"))
    eq(get("/v1/kv/k?raw&token=ro", sim=a).body, b"v")
    r = put("/v1/kv/k?token=ro", "w", sim=a)
    eq((r.status, r.text), (403, "Permission denied: token with AccessorID '%s' lacks permission "
                                 "'key:write' on \"k\"" % ro_acc))
    r = put("/v1/kv/cfg/x", "w", sim=a, headers={"X-Consul-Token": "svc"})   # custom rules
    eq(r.status, 200)
    eq(put("/v1/kv/other", "w", sim=a, headers={"X-Consul-Token": "svc"}).status, 403)
    eq(a.stop(), 0)                                  # SIGTERM -> graceful exit 0


def test_data_dir_restores_check_state():
    # agent.go loadCheckState: a non-dev agent restores the saved TTL status on re-registration.
    d = Sim("-data-dir", "/unused")
    try:
        svc = json.dumps({"ID": "p-1", "Name": "p", "Check": {"CheckID": "c1", "TTL": "30s"}})
        eq(put("/v1/agent/service/register", svc, sim=d).status, 200)
        eq(put("/v1/agent/check/pass/c1", sim=d).status, 200)
        crit = json.dumps({"ID": "p-1", "Name": "p", "Check": {"CheckID": "c1", "TTL": "30s", "Status": "critical"}})
        eq(put("/v1/agent/service/register", crit, sim=d).status, 200)
        eq(get("/v1/agent/checks", sim=d).json["c1"]["Status"], "passing")   # restored, not critical
        eq(req("POST", "/sim/restart?keep=1", sim=d).status, 200)           # a restart keeps it all
        eq(get("/v1/agent/checks", sim=d).json["c1"]["Status"], "passing")
        eq(put("/v1/agent/service/deregister/p-1", sim=d).status, 200)      # removal purges the state
        eq(put("/v1/agent/service/register", crit, sim=d).status, 200)
        eq(get("/v1/agent/checks", sim=d).json["c1"]["Status"], "critical")
    finally:
        d.stop()
    # -dev (and the default) keep nothing: the registration's Status wins.
    register({"ID": "p-1", "Name": "p", "Check": {"CheckID": "c1", "TTL": "30s"}})
    put("/v1/agent/check/pass/c1")
    register({"ID": "p-1", "Name": "p", "Check": {"CheckID": "c1", "TTL": "30s", "Status": "critical"}})
    eq(get("/v1/agent/checks").json["c1"]["Status"], "critical")
    put("/v1/agent/service/deregister/p-1")


def test_legacy_unknown_errors():
    # hashicorp/consul#5821: older agents with ACLs answered 500 for unknown checks and services.
    d = Sim("--legacy-unknown-errors")
    try:
        r = put("/v1/agent/check/pass/nope", sim=d)
        eq((r.status, r.text), (500, 'Unknown check "nope"'))
        r = put("/v1/agent/service/deregister/nope", sim=d)
        eq((r.status, r.text), (500, 'Unknown service "nope"'))
    finally:
        d.stop()


def test_no_leader():
    # agent/consul/rpc.go: no leader -> 500 "No cluster leader"; ?stale answers, KnownLeader false.
    register({"ID": "nl-1", "Name": "nl", "Check": {"TTL": "30s"}})
    eq(req("POST", "/sim/leader?known=0").status, 200)
    try:
        r = get("/v1/health/service/nl")
        eq((r.status, r.text), (500, "No cluster leader"))
        r = get("/v1/health/service/nl?stale")
        eq((r.status, r.headers["X-Consul-KnownLeader"]), (200, "false"))
        eq([e["Service"]["ID"] for e in r.json], ["nl-1"])
        eq(get("/v1/kv/x?recurse").status, 500)
        eq(get("/v1/kv/x?recurse&stale").status, 404)
        eq(put("/v1/kv/x", "v").status, 500)
        eq(put("/v1/agent/check/pass/service:nl-1").status, 200)     # agent-local
    finally:
        req("POST", "/sim/leader?known=1")
    eq(get("/v1/health/service/nl?stale").headers["X-Consul-KnownLeader"], "true")
    put("/v1/agent/service/deregister/nl-1")


def test_namespace_partition_recorded_and_scoped():
    register({"ID": "ns-1", "Name": "nsd", "Namespace": "team-a", "Check": {"TTL": "30s"}})
    register({"ID": "ns-2", "Name": "nsd", "Check": {"TTL": "30s"}}, )
    put("/v1/agent/service/register?ns=team-b&partition=p1", json.dumps({"ID": "ns-3", "Name": "nsd"}))
    st = state()["services"]
    eq((st["ns-1"]["Namespace"], st["ns-1"]["Partition"]), ("team-a", "default"))
    eq((st["ns-3"]["Namespace"], st["ns-3"]["Partition"]), ("team-b", "p1"))
    ids = lambda q: [e["Service"]["ID"] for e in get("/v1/health/service/nsd" + q).json]
    eq(ids(""), ["ns-2"])
    eq(ids("?ns=team-a"), ["ns-1"])
    eq(ids("?ns=team-b&partition=p1"), ["ns-3"])
    for i in (1, 2, 3):
        put("/v1/agent/service/deregister/ns-%d" % i)


def test_kv_key_validation_1_21_5():
    d = Sim("--kv-key-validation")
    try:
        eq(put("/v1/kv/cfg/ok-key_1.2,x", "v", sim=d).status, 200)
        r = get("/v1/kv/cfg/my%20app/?recurse", sim=d)
        eq((r.status, r.text), (400, "key contains invalid character ' ' at position 6. Only alphanumeric "
                                     "characters and ,-_./ are allowed"))
        r = get("/v1/kv/cfg/settings.json", sim=d)
        eq((r.status, r.text), (400, "key contains suspicious file extension '.json' that may be cached by proxies"))
        eq(get("/v1/kv/cfg/?recurse", sim=d).status, 200)
    finally:
        d.stop()
    eq(put("/v1/kv/cfg/my%20app/x", "v").status, 200)       # other versions accept it
    req("DELETE", "/v1/kv/cfg/?recurse")


TESTS = [(n, f) for n, f in list(globals().items()) if n.startswith("test_") and callable(f)]


def main():
    global MAIN, ACL
    passed = failed = 0
    t0 = time.time()
    MAIN = Sim("--unix", UNIX, "--node", "sim-node")
    ACL = Sim("--acl-token", "root", "--read-only-token", "ro",
              "--token", "svc=key_prefix:cfg/:write,service_prefix::read")
    try:
        for name, fn in TESTS:
            req("POST", "/sim/reset")
            try:
                fn()
                print("PASS %s" % name, flush=True)
                passed += 1
            except Exception as e:   # noqa: BLE001
                why = "%s: %s" % (type(e).__name__, e) if str(e) else traceback.format_exc().strip().splitlines()[-1]
                tb = traceback.extract_tb(e.__traceback__)
                line = next((f.lineno for f in reversed(tb) if f.filename == __file__), "?")
                print("FAIL %s: %s (line %s)" % (name, why, line), flush=True)
                failed += 1
    finally:
        for s in (MAIN, ACL):
            s.stop()
    print("# %.1fs" % (time.time() - t0))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
