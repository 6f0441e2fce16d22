"""The Consul registry backend (SPEC.md "Registry layout", Consul).

Each test starts its own Consul (consul_fixture.Consul: the simulator in
tests/sim/consul_sim.py, or a real `consul agent -dev` when CONSUL_BIN is
set) on a free port, with short TTLs and waits, and polls with deadlines
instead of sleeping. Tests that need the simulator's fault controls skip
under CONSUL_BIN.
"""

import json
import os
import re
import threading
import time

from consul_fixture import Consul
from harness import Agent, registry_config, log_lines, run_beacon, scale, temp_dir, wait_for

TOKEN = "7f3c2a9e-beacon-root-token-5d1b"


# ---- helpers -------------------------------------------------------------------

def registry(consul, **kw):
    r = {"backend": "consul", "address": consul.url, "ttl": "2s", "wait": "2s",
         "timeout": "%ds" % scale(2)}
    r.update(kw)
    return r


def config(consul, service=None, services=(), kv=(), reg=None, check=None, **top):
    return registry_config(reg or registry(consul), service, services, kv, check, **top)


def endpoints(a, service, any_status=True):
    return a.get("/v1/endpoints/%s%s" % (service, "?status=any" if any_status else ""))


def ids(a, service, any_status=True):
    st, _, body = endpoints(a, service, any_status)
    return sorted(e["id"] for e in body["endpoints"]) if st == 200 else None


def backend(a, plugin="consul"):
    st, _, body = a.get("/v1/self")
    assert st == 200, (st, body)
    return [b for b in body["backends"] if b["plugin"] == plugin][0]


def ready(a):
    return a.get("/ready")[0] == 200


def stale(a, service):
    st, h, body = endpoints(a, service)
    return st == 200 and body["stale"] is True and h.get("x-beacon-stale") == "1"


def fresh(a, service):
    st, h, body = endpoints(a, service)
    return st == 200 and body["stale"] is False and h.get("x-beacon-stale") in (None, "0")


def other(sid, port=9000, **more):
    """Another instance of "web", registered directly in Consul."""
    svc = {"ID": sid, "Name": "web", "Address": "10.9.0.1", "Port": port}
    svc.update(more)
    return svc


def stops_cleanly(a):
    """SIGTERM: exit 0 (under valgrind also: no memory errors, no leaks)."""
    rc = a.stop()
    assert rc == 0, "the agent exited with %d:\n%s" % (rc, a.log())


def with_token_file(cfg, token):
    """An Agent whose registry reads `token` from DIR/token."""
    cfg["registry"]["token_file"] = "@DIR@/token"
    a = Agent(cfg)
    with open(os.path.join(a.dir, "token"), "w") as f:
        f.write(token + "\n")
    return a


# ---- registration and discovery ---------------------------------------------------

def test_consul_register_discover_deregister():
    with Consul() as c:
        with Agent(config(c, service=("web", "web-1", 8080))) as a:
            wait_for(lambda: ready(a), 10, what="the registering agent to be ready")
            svc = c.services()["web-1"]
            assert (svc["Service"], svc["Address"], svc["Port"]) == ("web", "10.0.0.1", 8080), svc
            assert svc["Tags"] == ["v1"] and svc["Meta"] == {"zone": "a"}, svc
            assert svc["Weights"] == {"Passing": 5, "Warning": 1}, svc
            chk = c.checks()["beacon:web-1"]
            assert chk["ServiceID"] == "web-1" and chk["Type"] == "ttl" and chk["Status"] == "passing", chk
            if "Definition" in chk and "TTL" in chk["Definition"]:
                assert chk["Definition"]["TTL"] == "2s", chk
                assert chk["Definition"]["DeregisterCriticalServiceAfter"] == "1m0s", chk
            b = backend(a)
            assert b["registered"] is True and b["state"] == "registered" and b["ready"] is True, b
            assert b["check_id"] == "beacon:web-1" and b["address"] == c.url, b
            wait_for(lambda: backend(a)["last_check_status_sent"] == "passing", 3, what="a check update")

            # Another instance without its own address: Consul's rule is the node's address.
            c.register(other("web-2", Address="", Weights={"Passing": 3, "Warning": 1}))
            with Agent(config(c, services=["web"])) as b2:
                wait_for(lambda: ids(b2, "web") == ["web-1", "web-2"], 5, what="discovery of web-1 and web-2")
                st, h, body = endpoints(b2, "web", any_status=False)
                eps = {e["id"]: e for e in body["endpoints"]}
                assert eps["web-1"] == {"id": "web-1", "service": "web", "address": "10.0.0.1", "port": 8080,
                                        "tags": ["v1"], "meta": {"zone": "a"}, "weight": 5,
                                        "status": "passing"}, eps
                assert eps["web-2"]["address"] == "127.0.0.1" and eps["web-2"]["weight"] == 3, eps
                assert body["stale"] is False and h.get("x-beacon-stale") in (None, "0"), (h, body)
                rc, out, err = b2.cli("endpoints", "web")
                assert rc == 0 and "10.0.0.1:8080" in out, (rc, out, err)
                assert ready(b2)
                w = backend(b2)["watches"]
                assert [x["name"] for x in w] == ["web"] and w[0]["index"] > 0, w

                assert a.stop() == 0, a.log()
                a.wait_log(r"deregistered web-1")
                assert "web-1" not in c.services(), "the service survived SIGTERM"
                assert "beacon:web-1" not in c.checks(), "the check survived SIGTERM"
                wait_for(lambda: ids(b2, "web") == ["web-2"], 5, what="the discovering agent to drop web-1")


def test_consul_check_status_follows_health_check():
    with Consul() as c:
        # exit code from a file: 0 passing, 1 warning, 2 critical (no file)
        check = {"exec": ["sh", "-c", "exit $(cat @DIR@/code 2>/dev/null || echo 2)"], "interval": "200ms",
                 "timeout": "150ms", "rise": 1, "fall": 1}
        with Agent(config(c, service=("api", "api-1", 9000), check=check)) as a, \
                Agent(config(c, services=["api"])) as watcher:
            code = os.path.join(a.dir, "code")

            def status_seen():
                st, _, body = endpoints(watcher, "api")
                return st == 200 and body["endpoints"] and body["endpoints"][0]["status"]

            def flip(value, status):
                with open(code + ".tmp", "w") as f:
                    f.write(value)
                os.replace(code + ".tmp", code)
                wait_for(lambda: c.check_status("beacon:api-1") == status, 5, what="%s in Consul" % status)
                wait_for(lambda: status_seen() == status, 5, what="%s at the watcher" % status)

            wait_for(lambda: c.check_status("beacon:api-1") == "critical", 5, what="critical in Consul")
            wait_for(lambda: status_seen() == "critical", 5, what="critical at the watcher")
            assert ids(watcher, "api", any_status=False) == [], "a critical endpoint is served as passing"
            flip("0", "passing")
            assert ids(watcher, "api", any_status=False) == ["api-1"]
            flip("1", "warning")
            assert ids(watcher, "api", any_status=False) == [], "a warning endpoint is served as passing"
            flip("2", "critical")
            flip("0", "passing")
            a.wait_log(r"published status warning for api-1")
            assert backend(a)["last_check_status_sent"] == "passing"


def test_consul_ttl_kept_alive():
    with Consul() as c:
        reg = registry(c, ttl="1s")
        with Agent(config(c, service=("web", "web-1", 8080), reg=reg)) as a:
            wait_for(lambda: c.check_status("beacon:web-1") == "passing", 10, what="registration")
            t0 = time.monotonic()
            seen = set()
            while time.monotonic() - t0 < scale(4.0):  # four TTLs
                seen.add(c.check_status("beacon:web-1"))
                time.sleep(0.1)
            assert seen == {"passing"}, "the TTL check expired in between: %r\n%s" % (seen, a.log())
            if not c.real:
                chk = c.state()["checks"]["beacon:web-1"]
                assert [h[1] for h in chk["history"]] == ["passing"], chk["history"]
                assert chk["updates"] >= 6, "expected an update every TTL/2, got %d" % chk["updates"]
                gaps = [b - a_ for a_, b in zip(chk["update_times"], chk["update_times"][1:])]
                assert max(gaps) < scale(0.9), "an update came %.2fs after the previous one" % max(gaps)


# ---- anti-entropy and outages ---------------------------------------------------------

def test_consul_restart_without_state_reregisters():
    with Consul() as c:
        with Agent(config(c, service=("web", "web-1", 8080), services=["web"], kv=["/config/"])) as a:
            c.kv_put("config/x", "1")
            wait_for(lambda: ready(a) and ids(a, "web") == ["web-1"], 10, what="registered and discovered")
            wait_for(lambda: a.get("/v1/kv/config/x")[0] == 200, 5, what="the key")
            t0 = time.monotonic()
            c.restart_without_state()
            # A real dev agent takes a moment to come back; the agent's backoff is at most 5 s.
            wait_for(lambda: "web-1" in c.services(), 8 if c.real else 5, what="re-registration after the restart")
            print("re-registered %.2fs after the restart" % (time.monotonic() - t0))
            wait_for(lambda: c.check_status("beacon:web-1") == "passing", 5, what="the check passing again")
            # The restarted agent has no KV: the key goes; discovery follows new writes.
            wait_for(lambda: a.get("/v1/kv/config/x")[0] == 404, 5, what="the key gone with the old state")
            c.register(other("web-2"))
            wait_for(lambda: ids(a, "web") == ["web-1", "web-2"], 5, what="a registration after the restart")
            wait_for(lambda: fresh(a, "web") and backend(a)["state"] == "registered", 5, what="registered, fresh")
            assert backend(a)["registrations"] >= 2
            stops_cleanly(a)


def test_consul_down_serves_stale_then_recovers():
    with Consul() as c:
        with Agent(config(c, service=("web", "web-1", 8080), services=["web"])) as a:
            wait_for(lambda: ready(a) and ids(a, "web") == ["web-1"], 10, what="registered and discovered")
            c.kill()
            wait_for(lambda: stale(a, "web"), 5, what="stale answers while Consul is down")
            assert ids(a, "web") == ["web-1"], "the last known state is gone"
            b = wait_for(lambda: (lambda b: b["state"] == "unreachable" and b)(backend(a)), 5,
                         what="state unreachable")
            assert b["error"] and b["stale"] is True and b["reachable"] is False, b
            assert ready(a), "/ready flipped during an outage (it should keep serving stale)"
            a.wait_log(r"lost the Consul agent")
            time.sleep(scale(1.5))
            c.start()  # same port, no state
            t0 = time.monotonic()
            wait_for(lambda: fresh(a, "web"), 15, what="stale cleared after Consul returned")
            wait_for(lambda: "web-1" in c.services(), 5, what="re-registration after the outage")
            print("recovered %.2fs after Consul returned" % (time.monotonic() - t0))
            wait_for(lambda: backend(a)["state"] == "registered", 5, what="state registered")
            c.register(other("web-2"))
            wait_for(lambda: ids(a, "web") == ["web-1", "web-2"], 5, what="a registration after the outage")
            stops_cleanly(a)


def test_consul_index_going_backwards():
    with Consul() as c:
        c.require_sim()
        c.kv_put("cfg/a", "1")
        with Agent(config(c, services=["web"], kv=["/cfg/"])) as a:
            wait_for(lambda: ready(a), 10, what="ready")
            for i in range(5):
                c.register(other("web-%d" % i))
            wait_for(lambda: len(ids(a, "web")) == 5, 5, what="five instances")
            c.sim("index", set=3)  # like a snapshot restore of older data
            a.wait_log(r"the index of service web went backwards \(\d+ -> 3\)")
            c.register(other("web-new"))
            c.kv_put("cfg/b", "2")
            wait_for(lambda: "web-new" in ids(a, "web"), 5, what="a registration after the reset")
            wait_for(lambda: a.get("/v1/kv/cfg/b")[0] == 200, 5, what="a key after the reset")
            w = {x["name"]: x for x in backend(a)["watches"]}
            assert w["web"]["index_resets"] >= 1 and w["web"]["index"] > 3, w
            stops_cleanly(a)
            # Never index=0 again after the first answer (the docs: use 1).
            log = c.ok("GET", "/sim/state?log=1")["log"]
            queries = [e["query"] for e in log if e["path"] == "/v1/health/service/web"]
            assert "index=0" not in " ".join(queries) and "index=1&" in " ".join(queries), queries


def test_consul_malformed_and_truncated_answers():
    with Consul() as c:
        c.require_sim()
        with Agent(config(c, service=("web", "web-1", 8080), services=["web"])) as a:
            wait_for(lambda: ready(a) and ids(a, "web") == ["web-1"], 10, what="ready")
            for n, fault in enumerate(("garbage", "truncate")):
                c.sim(fault, count=2, path="/v1/health/service/web")
                c.register(other("%s-1" % fault))     # wakes the query in flight
                c.register(other("%s-2" % fault))     # answered with the fault
                want = sorted(["web-1"] + ["%s-%d" % (f, i) for f in ("garbage", "truncate")[:n + 1]
                                           for i in (1, 2)])
                wait_for(lambda: ids(a, "web") == want, 10, what="recovery after %s answers" % fault)
                wait_for(lambda: fresh(a, "web"), 5, what="fresh after %s answers" % fault)
                assert a.alive()
            a.wait_log(r"query of service web failed: malformed answer from Consul")
            c.sim("garbage", count=1, path="/v1/agent/check/")
            c.sim("truncate", count=1, path="/v1/agent/check/")
            time.sleep(scale(2.5))
            assert a.alive() and c.check_status("beacon:web-1") == "passing", a.log()
            wait_for(lambda: backend(a)["state"] == "registered", 5, what="registered after the faults")
            stops_cleanly(a)


# ---- ACL -------------------------------------------------------------------------------

def test_consul_acl_token():
    with Consul(acl_token=TOKEN) as c:
        c.kv_put("config/web/color", "blue")
        good = with_token_file(config(c, service=("web", "web-1", 8080), services=["web"],
                                      kv=["/config/web/"]), TOKEN)
        with good:
            wait_for(lambda: ready(good), 10, what="ready with the token; log:\n" + good.log())
            assert "web-1" in c.services()
            wait_for(lambda: ids(good, "web") == ["web-1"], 5, what="discovery with the token")
            assert good.get("/v1/kv/config/web/color")[2]["value"] == "blue"
            assert backend(good)["token"] is True
            stops_cleanly(good)
            assert "web-1" not in c.services(), "deregistration with the token failed"
            assert TOKEN not in good.log(), "the token appears in the log"

        bad = with_token_file(config(c, service=("web", "web-2", 8081), services=["web"]),
                              "00000000-wrong-token-0000")
        with bad:
            b = wait_for(lambda: (lambda b: "ACL" in b["error"] and b)(backend(bad)), 10,
                         what="an ACL error in /v1/self")
            assert "token_file" in b["error"] and not b["ready"] and not ready(bad), b
            bad.wait_log(r"ACL not found")
            time.sleep(scale(1.5))  # several refused retries
            lines = [l for l in log_lines(bad.log()) if "ACL not found" in l]
            assert len(lines) == 1, "expected one log line about the token, got:\n" + "\n".join(lines)
            assert "wrong-token" not in bad.log(), "the token appears in the log"
            assert "wrong-token" not in json.dumps(bad.get("/v1/self")[2])
            print("wrong token: %s" % b["error"])
            stops_cleanly(bad)

        # Without a token reads are filtered (an empty list), writes refused.
        anon = Agent(config(c, service=("web", "web-3", 8082)))
        with anon:
            b = wait_for(lambda: (lambda b: "Permission denied" in b["error"] and b)(backend(anon)), 10,
                         what="a permission error without a token")
            assert "token_file" in b["error"] and b["state"] == "registering", b
            stops_cleanly(anon)


# ---- config values ------------------------------------------------------------------

def test_consul_kv_prefix():
    with Consul() as c:
        c.kv_put("config/web/color", "blue")
        c.kv_put("config/web/limits/rps", "100")
        c.kv_put("config/other/x", "not watched")
        with Agent(config(c, kv=["/config/web/", "/config/empty/"])) as a:
            wait_for(lambda: ready(a), 10, what="ready (an empty prefix answers 404 and counts)")
            st, h, body = a.get("/v1/kv/config/web/color")
            assert st == 200 and body["value"] == "blue" and body["key"] == "config/web/color", body
            assert body["stale"] is False and h.get("x-beacon-stale") in (None, "0"), (h, body)
            assert a.get("/v1/kv/config/other/x")[0] == 404
            assert a.get("/v1/kv/config/empty/?recurse")[0] == 404
            st, _, body = a.get("/v1/kv/config/web/?recurse")
            assert {e["key"]: e["value"] for e in body["entries"]} == \
                {"config/web/color": "blue", "config/web/limits/rps": "100"}, body

            idx = int(a.get("/v1/kv/config/web/color")[1]["x-beacon-index"])
            result = {}

            def blocking():
                result["r"] = a.get("/v1/kv/config/web/color?index=%d&wait=10s" % idx, timeout=15)
            t = threading.Thread(target=blocking, daemon=True)
            t.start()
            time.sleep(0.2)
            c.kv_put("config/web/color", "green")
            t.join(scale(10))
            st, _, body = result["r"]
            assert st == 200 and body["value"] == "green", body
            c.kv_put("config/web/new", "\u00e9t\u00e9")
            wait_for(lambda: a.get("/v1/kv/config/web/new")[2].get("value") == "\u00e9t\u00e9", 5,
                     what="a new key")
            c.kv_put("config/empty/now", "x")
            wait_for(lambda: a.get("/v1/kv/config/empty/now")[0] == 200, 5, what="a key under the empty prefix")
            c.kv_delete("config/web/color")
            wait_for(lambda: a.get("/v1/kv/config/web/color")[0] == 404, 5, what="a deleted key")
            c.kv_delete("config/web/", recurse=True)
            wait_for(lambda: a.get("/v1/kv/config/web/?recurse")[0] == 404, 5, what="everything deleted")
            w = {x["name"]: x for x in backend(a)["watches"]}
            assert w["/config/web/"]["type"] == "kv" and w["/config/web/"]["index"] > 0, w
            stops_cleanly(a)


def test_consul_kv_prefix_without_slash():
    # Consul's own form "config/web/" is the prefix "/config/web/" (one watch
    # when written both ways); answers keep keys without the leading "/".
    with Consul() as c:
        c.kv_put("config/web/color", "blue")
        c.kv_put("config/webx/y", "not under config/web/")
        with Agent(config(c, kv=["config/web/", "/config/web/"])) as a:
            wait_for(lambda: ready(a), 10, what="ready")
            kv = [w["name"] for w in backend(a)["watches"] if w["type"] == "kv"]
            assert kv == ["/config/web/"], kv
            st, _, body = a.get("/v1/kv/config/web/color")
            assert st == 200 and body["value"] == "blue" and body["key"] == "config/web/color", body
            assert a.get("/v1/kv/config/webx/y")[0] == 404
            c.kv_put("config/web/color", "green")
            wait_for(lambda: a.get("/v1/kv/config/web/color")[2].get("value") == "green", 5,
                     what="a change under the prefix")
            rc, out, err = a.cli("kv", "config/web/", "--recurse")
            assert rc == 0 and out == "config/web/color=green\n", (rc, out, err)
            stops_cleanly(a)


# ---- drain --------------------------------------------------------------------------

def test_consul_drain_and_resume():
    with Consul() as c:
        with Agent(config(c, service=("web", "web-1", 8080))) as a:
            wait_for(lambda: ready(a) and "web-1" in c.services(), 10, what="registered")
            st, _, body = a.post("/v1/self/drain")
            assert st == 200, (st, body)
            wait_for(lambda: "web-1" not in c.services(), 5, what="deregistration on drain")
            assert a.get("/ready")[0] == 503
            wait_for(lambda: backend(a)["state"] == "drained", 3, what="state drained")
            time.sleep(scale(2.5))  # longer than the TTL: nothing comes back by itself
            assert "web-1" not in c.services()
            rc, out, err = a.cli("resume")
            assert rc == 0, (rc, out, err)
            wait_for(lambda: "web-1" in c.services(), 5, what="registration on resume")
            wait_for(lambda: c.check_status("beacon:web-1") == "passing", 5, what="the check passing")
            wait_for(lambda: ready(a), 5, what="/ready 200 after resume")
            assert backend(a)["state"] == "registered"
            stops_cleanly(a)
            assert "web-1" not in c.services()


# ---- several registries, transports, reload --------------------------------------------

def test_consul_and_etcd_together():
    from etcd_fixture import Etcd
    with Etcd() as etcd, Consul() as c:
        etcd_reg = {"backend": "etcd", "endpoints": [etcd.url], "ttl": "2s", "timeout": "2s",
                    "dial_timeout": "1s"}
        both = [etcd_reg, registry(c)]
        cfg = config(c, service=("web", "web-1", 8080), services=["web"])
        del cfg["registry"]
        cfg["registries"] = both
        with Agent(cfg) as a:
            wait_for(lambda: ready(a), 10, what="ready with two registries; log:\n" + a.log())
            assert etcd.get("/beacon/services/web/web-1") and "web-1" in c.services()
            st, _, body = a.get("/v1/self")
            bs = {b["plugin"]: b for b in body["backends"] if b["kind"] == "registry"}
            assert bs["etcd"]["registered"] is True and bs["consul"]["registered"] is True, bs
            assert bs["consul"]["check_id"] == "beacon:web-1", bs
            c.register(other("web-2"))  # only in Consul
            wait_for(lambda: ids(a, "web") == ["web-1", "web-2"], 5, what="web-1 listed once, web-2 from Consul")
            watcher = {"log": {"level": "debug"}, "registries": both, "watch": {"services": ["web"]}}
            with Agent(watcher) as w:
                wait_for(lambda: ready(w), 10, what="the watcher ready on both registries")
                wait_for(lambda: ids(w, "web") == ["web-1", "web-2"], 5, what="the merged view")
                st, _, body = endpoints(w, "web")
                assert len(body["endpoints"]) == 2 and body["stale"] is False, body
            stops_cleanly(a)
            assert etcd.get("/beacon/services/web/web-1") is None and "web-1" not in c.services()


def test_consul_unix_socket():
    with Consul(unix=True) as c:
        reg = registry(c, address="unix://" + c.unix_path)
        with Agent(config(c, service=("web", "web-1", 8080), services=["web"], kv=["/k/"], reg=reg)) as a:
            c.kv_put("k/v", "over a socket")
            wait_for(lambda: ready(a), 10, what="ready over the Unix socket; log:\n" + a.log())
            assert "web-1" in c.services()
            wait_for(lambda: ids(a, "web") == ["web-1"], 5, what="discovery over the Unix socket")
            wait_for(lambda: a.get("/v1/kv/k/v")[2].get("value") == "over a socket", 5, what="KV over the socket")
            assert backend(a)["address"] == "unix://" + c.unix_path
            stops_cleanly(a)
            assert "web-1" not in c.services()


def test_consul_tls_server_name_and_insecure_skip_verify():
    # The simulator's https listener, with a certificate for a DNS name only,
    # reached by IP: tls.server_name does what Consul's own tls_server_name
    # (CONSUL_TLS_SERVER_NAME) does.
    from etcd_fixture import make_certs
    name = "consul.beacon.test"
    with temp_dir() as d, Consul(tls=make_certs(d, name)) as c:
        tls = {"ca_file": os.path.join(d, "ca.crt")}
        with Agent(config(c, services=["web"], reg=registry(c, tls=tls))) as a:
            b = wait_for(lambda: (lambda b: b["error"] and b)(backend(a)), 10, what="a TLS error")
            assert not b["ready"] and "TLS" in b["error"] and "Set tls.server_name" in b["error"], b
            stops_cleanly(a)
        reg = registry(c, tls=dict(tls, server_name=name))
        with Agent(config(c, service=("web", "web-1", 8080), services=["web"], reg=reg)) as a:
            wait_for(lambda: ready(a), 10, what="ready with server_name; log:\n" + a.log())
            assert "web-1" in c.services()
            wait_for(lambda: ids(a, "web") == ["web-1"], 5, what="discovery with server_name")
            assert "insecure_skip_verify" not in a.log()
            stops_cleanly(a)
            assert "web-1" not in c.services()
        reg = registry(c, tls={"insecure_skip_verify": True})
        with Agent(config(c, services=["web"], reg=reg)) as a:
            wait_for(lambda: ready(a), 10, what="ready with insecure_skip_verify; log:\n" + a.log())
            a.wait_log(r"consul#0.*insecure_skip_verify is set")
            stops_cleanly(a)


def test_consul_reload_changes_watch_lists():
    with Consul() as c:
        c.register({"ID": "o1", "Name": "one", "Address": "10.1.0.1", "Port": 1})
        c.register({"ID": "t1", "Name": "two", "Address": "10.2.0.1", "Port": 2})
        c.kv_put("config/a/x", "1")
        with Agent(config(c, services=["one"])) as a:
            wait_for(lambda: ids(a, "one") == ["o1"], 10, what="service one")
            assert a.get("/v1/endpoints/two")[0] == 404
            a.reload(config(c, services=["two"], kv=["/config/a/"], reg=registry(c, ttl="5s")))
            wait_for(lambda: ids(a, "two") == ["t1"], 5, what="service two after reload")
            wait_for(lambda: a.get("/v1/endpoints/one")[0] == 404, 5, what="service one gone")
            wait_for(lambda: a.get("/v1/kv/config/a/x")[0] == 200, 5, what="the new kv prefix")
            a.wait_log(r"changes to ttl take effect after a restart")
            assert ready(a)
            stops_cleanly(a)


def test_consul_hostile_entries_are_skipped():
    with Consul() as c:
        c.register(other("zero-port", port=0))
        c.register(other("good", port=80))
        c.register(other("many-tags", Tags=["t%d" % i for i in range(70)]))
        with Agent(config(c, services=["web"])) as a:
            wait_for(lambda: ready(a) and ids(a, "web") == ["good"], 10, what="only the good instance")
            a.wait_log(r"skipping instance \"zero-port\" of web: .*port")
            a.wait_log(r"skipping instance \"many-tags\" of web: .*tags")
            c.register(other("late", port=81))
            wait_for(lambda: ids(a, "web") == ["good", "late"], 5, what="a later good instance")
            lines = [l for l in log_lines(a.log()) if "skipping" in l]
            assert len(lines) == 2, "each problem is logged once:\n" + "\n".join(lines)
            stops_cleanly(a)


def test_consul_check_config():
    def check(reg):
        with open(path, "w") as f:
            json.dump({"registry": dict(reg, backend="consul")}, f)
        rc, out, err = run_beacon("agent", "--config", path, "--check-config", use_wrap=False)
        return rc, out + err

    with temp_dir() as d:
        path = os.path.join(d, "beacon.json")
        rc, out = check({"ttl": "1h2x", "wait": "11m"})
        assert rc == 2 and "$.registry.ttl" in out and "$.registry.wait" in out, (rc, out)
        rc, out = check({"address": "ftp://x", "datacenter": "dc 1", "tls": {"cert_file": "/c"}})
        assert rc == 2, (rc, out)
        for p in ("$.registry.address", "$.registry.datacenter", "$.registry.tls"):
            assert p in out, "%s not reported:\n%s" % (p, out)
        rc, out = check({"address": "unix:///run/consul/consul.sock", "token_file": "/etc/beacon/token",
                         "datacenter": "dc1", "ttl": "10s", "deregister_critical_after": "2m",
                         "wait": "5m", "timeout": "5s"})
        assert rc == 0, (rc, out)
        assert "warning" not in out, out
        assert re.search(r"consul", run_beacon("--version", use_wrap=False)[1])


def test_consul_check_config_dereg_warning_and_meta_limits():
    def check(reg, meta=None):
        cfg = {"registry": dict(reg, backend="consul")}
        if meta is not None:
            cfg["service"] = {"name": "web", "id": "web-1", "address": "10.0.0.1", "port": 80, "meta": meta}
        with open(path, "w") as f:
            json.dump(cfg, f)
        rc, out, err = run_beacon("agent", "--config", path, "--check-config", use_wrap=False)
        return rc, out + err

    with temp_dir() as d:
        path = os.path.join(d, "beacon.json")
        # Consul raises deregister_critical_after to 1m: valid, with a warning.
        rc, out = check({"deregister_critical_after": "10s"})
        assert rc == 0 and "configuration is valid" in out, (rc, out)
        assert re.search(r"warning: \$\.registry\.deregister_critical_after: .*1m.*30s", out), out
        assert check({"deregister_critical_after": "1m"}) == (0, check({})[1]) and "warning" not in check({})[1]
        # Meta Consul would refuse with 400 (and beacon retry forever): errors, exit 2.
        good = {"zone": "a", "k_" + "x" * 126: "v" * 512}
        rc, out = check({}, good)
        assert rc == 0, (rc, out)
        for meta, where, why in (({"bad.key": "x"}, '$.service.meta["bad.key"]', "letters, digits"),
                                 ({"k" * 129: "x"}, "$.service.meta.k", "128 bytes"),
                                 ({"v": "x" * 513}, "$.service.meta.v", "512 bytes"),
                                 ({"consul-version": "1"}, '$.service.meta["consul-version"]', "reserved"),
                                 (dict(("k%d" % i, "v") for i in range(65)), "$.service.meta:", "64")):
            rc, out = check({}, meta)
            assert rc == 2 and where in out and why in out and "Consul" in out, (meta, rc, out)

    # The agent logs the warning at start.
    with Consul() as c:
        with Agent(config(c, reg=registry(c, deregister_critical_after="30s"))) as a:
            a.wait_log(r"warn.*deregister_critical_after: Consul raises it to 1m")
            stops_cleanly(a)


# ---- real-agent behaviours the simulator imitates (issue 9) ------------------------------

def exec_check(a_dir_code="@DIR@/code"):
    """An app check whose exit code comes from a file: 0 passing, 2 critical (no file)."""
    return {"exec": ["sh", "-c", "exit $(cat %s 2>/dev/null || echo 2)" % a_dir_code], "interval": "200ms",
            "timeout": "150ms", "rise": 1, "fall": 1}


def set_code(a, value):
    path = os.path.join(a.dir, "code")
    with open(path + ".tmp", "w") as f:
        f.write(value)
    os.replace(path + ".tmp", path)


def health_status(c, service, check_id):
    for e in c.health(service):
        for chk in e["Checks"]:
            if chk["CheckID"] == check_id:
                return chk["Status"]
    return None


def test_consul_reregistration_sends_current_status():
    # A non-dev agent (-data-dir) restores a TTL check's saved status when the check is
    # registered again (loadCheckState), ignoring the Status in the registration.
    with Consul(sim_args=["-data-dir", "/nonexistent/kept-in-memory"]) as c:
        c.require_sim()
        reg = registry(c, ttl="20s")  # the periodic update would only come after 10 s
        with Agent(config(c, service=("web", "web-1", 8080), services=["web"], check=exec_check(), reg=reg)) as a:
            set_code(a, "0")
            wait_for(lambda: health_status(c, "web", "beacon:web-1") == "passing", 10, what="passing in Consul")
            wait_for(lambda: backend(a)["last_check_status_sent"] == "passing", 5, what="a passing update")
            c.sim("restart", keep=1, down_ms=int(scale(3.0) * 1000))  # a blip; the agent keeps its state
            set_code(a, "2")
            wait_for(lambda: a.get("/v1/self")[2]["service"]["status"] == "critical", 5,
                     what="the app critical during the blip")
            wait_for(lambda: backend(a)["registrations"] >= 2, 15, what="re-registration after the blip")
            # At once, not after ttl/2 = 10 s with the restored "passing" in between.
            wait_for(lambda: health_status(c, "web", "beacon:web-1") == "critical", scale(2.0),
                     what="critical in Consul right after the re-registration")
            chk = c.state()["checks"]["beacon:web-1"]
            assert chk["Status"] == "critical", chk
            stops_cleanly(a)


def test_consul_legacy_unknown_check_500():
    # Older agents with ACLs: 500 'Unknown check "x"' / 'Unknown service "x"' (consul#5821).
    with Consul(sim_args=["--legacy-unknown-errors"]) as c:
        c.require_sim()
        with Agent(config(c, service=("web", "web-1", 8080), reg=registry(c, ttl="4s"))) as a:
            wait_for(lambda: ready(a) and "web-1" in c.services(), 10, what="registered")
            wait_for(lambda: backend(a)["last_check_status_sent"] == "passing", 5, what="an update")
            c.deregister("web-1")  # the agent forgets us; the next update hears 500 Unknown check
            wait_for(lambda: "web-1" in c.services(), scale(6.0), what="re-registration after the 500")
            a.wait_log(r"Consul lost the registration of web-1 \(it does not know the check\)")
            assert backend(a)["registrations"] >= 2

            # Draining when Consul no longer has the service: 500 Unknown service = already gone.
            c.deregister("web-1")
            st, _, body = a.post("/v1/self/drain")
            assert st == 200, (st, body)
            wait_for(lambda: backend(a)["state"] == "drained", 5, what="drained despite the 500")
            a.wait_log(r"deregistered web-1 \(drained\)")
            assert not [l for l in log_lines(a.log()) if "deregistering web-1 failed" in l], a.log()
            log = c.ok("GET", "/sim/state?log=1")["log"]
            assert [e for e in log if e["path"] == "/v1/agent/check/pass/beacon:web-1" and e["status"] == 500], log
            assert [e for e in log if e["path"] == "/v1/agent/service/deregister/web-1" and e["status"] == 500], log
            stops_cleanly(a)


def test_consul_stale_reads_through_leader_election():
    with Consul() as c:
        c.require_sim()
        c.register(other("web-2"))
        with Agent(config(c, services=["web"], kv=["/cfg/"], reg=registry(c, consistency="stale"))) as a, \
                Agent(config(c, services=["web"])) as d:
            wait_for(lambda: ready(a) and ready(d) and ids(a, "web") == ["web-2"] and ids(d, "web") == ["web-2"],
                     10, what="both ready")
            b = backend(a)
            assert b["consistency"] == "stale" and b["known_leader"] is True and b["warnings"] == [], b
            c.sim("leader", known=0)        # a leader election: no known leader
            c.register(other("web-3"))      # agent-local; wakes the blocking queries
            wait_for(lambda: ids(a, "web") == ["web-2", "web-3"] and fresh(a, "web"), 5,
                     what="stale reads keep discovery working")
            b = wait_for(lambda: (lambda b: b["known_leader"] is False and b)(backend(a)), 5,
                         what="known_leader false in /v1/self")
            assert any("no known leader" in w for w in b["warnings"]), b
            a.wait_log(r"Consul has no known leader")
            log = c.ok("GET", "/sim/state?log=1")["log"]
            assert [e for e in log if e["path"] == "/v1/kv/cfg/" and "stale" in e["query"].split("&")], log
            # The default consistency fails until there is a leader again.
            wait_for(lambda: "No cluster leader" in backend(d)["watches"][0]["error"], 10,
                     what="the default consistency failing without a leader")
            assert stale(d, "web")
            c.sim("leader", known=1)
            wait_for(lambda: backend(a)["known_leader"] is True and backend(a)["warnings"] == [], 10,
                     what="the leader back")
            a.wait_log(r"Consul has a known leader again")
            wait_for(lambda: fresh(d, "web"), 10, what="the default consistency working again")
            stops_cleanly(a)


def test_consul_namespace_and_partition():
    # Consul Enterprise keys: the simulator records them and scopes health queries by them.
    with Consul() as c:
        c.require_sim()
        c.register(other("w-default"))
        st, _, body = c.request("PUT", "/v1/agent/service/register?ns=team-a&partition=p1",
                                json.dumps(other("w-a")))
        assert st == 200, (st, body)
        reg = registry(c, namespace="team-a", partition="p1")
        with Agent(config(c, service=("web", "web-1", 8080), services=["web"], reg=reg)) as a:
            wait_for(lambda: ready(a) and ids(a, "web") == ["w-a", "web-1"], 10,
                     what="only the instances of team-a in p1")
            s = c.state()["services"]["web-1"]
            assert (s["Namespace"], s["Partition"]) == ("team-a", "p1"), s
            b = backend(a)
            assert (b["namespace"], b["partition"]) == ("team-a", "p1"), b
            wait_for(lambda: backend(a)["last_check_status_sent"] == "passing", 5, what="a check update")
            log = c.ok("GET", "/sim/state?log=1")["log"]
            for prefix in ("/v1/agent/service/register", "/v1/agent/check/pass/", "/v1/health/service/web"):
                mine = [e for e in log if e["path"].startswith(prefix) and "ns=team-a" in e["query"]]
                assert mine and all("partition=p1" in e["query"] for e in mine), (prefix, log)
            stops_cleanly(a)
            assert "web-1" not in c.services()

    with temp_dir() as d:
        path = os.path.join(d, "beacon.json")
        with open(path, "w") as f:
            json.dump({"registry": {"backend": "consul", "namespace": "team a", "partition": "-p",
                                    "consistency": "eventual"}}, f)
        rc, out, err = run_beacon("agent", "--config", path, "--check-config", use_wrap=False)
        for p in ("$.registry.namespace", "$.registry.partition", "$.registry.consistency"):
            assert rc == 2 and p in out + err, (p, rc, out, err)


def test_consul_acl_default_deny_without_token_warns():
    with Consul(acl_token=TOKEN) as c:
        c.register(other("web-2"))
        with Agent(config(c, services=["web"])) as a:
            # Anonymous reads are filtered: an empty answer, indistinguishable from no instances.
            wait_for(lambda: ready(a), 10, what="ready")
            assert ids(a, "web") == []
            b = wait_for(lambda: (lambda b: b["warnings"] and b)(backend(a)), 5, what="a warning in /v1/self")
            assert any("default policy is deny" in w and "token_file" in w for w in b["warnings"]), b
            a.wait_log(r"ACL default policy is deny and no token_file is set")
            time.sleep(scale(1.0))
            lines = [l for l in log_lines(a.log()) if "default policy is deny" in l]
            assert len(lines) == 1, "\n".join(lines)
            stops_cleanly(a)
        good = with_token_file(config(c, services=["web"]), TOKEN)
        with good:
            wait_for(lambda: ids(good, "web") == ["web-2"], 10, what="discovery with the token")
            assert backend(good)["warnings"] == [], backend(good)
            assert "default policy is deny" not in good.log()
            stops_cleanly(good)


def test_consul_kv_prefix_refused_by_consul():
    # Consul 1.21.5 refuses keys outside [A-Za-z0-9,-_./] (and some suffixes) with a 400.
    with Consul(sim_args=["--kv-key-validation"]) as c:
        c.require_sim()
        c.kv_put("cfg/ok/x", "1")
        with Agent(config(c, kv=["/cfg/ok/", "/cfg/my app/"])) as a:
            def bad_watch():
                return {w["name"]: w for w in backend(a)["watches"]}["/cfg/my app/"]
            w = wait_for(lambda: "invalid character" in bad_watch()["error"] and bad_watch(), 10,
                         what="Consul's message in /v1/self")
            assert "400" in w["error"] and "Only alphanumeric characters and ,-_./ are allowed" in w["error"], w
            st, _, body = a.get("/ready")
            assert st == 503 and "/cfg/my app/" in body["reason"] and "invalid character" in body["reason"], body
            wait_for(lambda: a.get("/v1/kv/cfg/ok/x")[0] == 200, 5, what="the good prefix served")
            a.wait_log(r"prefix /cfg/my app/ failed: .*invalid character")
            time.sleep(scale(3.0))  # several retries
            lines = [l for l in log_lines(a.log()) if "invalid character" in l]
            assert len(lines) == 1, "\n".join(lines)
            stops_cleanly(a)
