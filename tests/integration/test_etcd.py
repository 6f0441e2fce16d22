"""The etcd registry backend against a real etcd (SPEC.md "Registry layout").

Each test starts its own etcd (etcd_fixture.Etcd) on free loopback ports with
short TTLs and check intervals, and polls with deadlines instead of sleeping.
"""

import json
import os
import pty
import re
import signal
import subprocess
import statistics
import threading
import time

from etcd_fake import FakeEtcd
from etcd_fixture import Etcd, EtcdCluster
from harness import (Agent, beacon_bin, registry_config, free_port, log_lines, metric, scale,
                     wait_for, wrapped)

PREFIX = "/beacon/services"


# ---- helpers -------------------------------------------------------------------

def registry(etcd, **kw):
    r = {"backend": "etcd", "endpoints": [etcd.url], "ttl": "2s", "timeout": "2s",
         "dial_timeout": "1s"}
    r.update(kw)
    return r


def config(etcd, service=None, services=(), kv=(), reg=None, check=None, **top):
    return registry_config(reg or registry(etcd), service, services, kv, check, **top)


def key(service, sid):
    return "%s/%s/%s" % (PREFIX, service, sid)


def endpoints(a, service, any_status=True):
    st, h, body = a.get("/v1/endpoints/%s%s" % (service, "?status=any" if any_status else ""))
    return st, h, body


def ids(a, service, any_status=True):
    st, _, body = endpoints(a, service, any_status)
    return sorted(e["id"] for e in body["endpoints"]) if st == 200 else None


def backend(a):
    st, _, body = a.get("/v1/self")
    assert st == 200, (st, body)
    return [b for b in body["backends"] if b["plugin"] == "etcd"][0]


def ready(a):
    return a.get("/ready")[0] == 200


def put_endpoint(etcd, service, sid, address="10.9.0.1", port=80, **more):
    ep = {"id": sid, "address": address, "port": port}
    ep.update(more)
    return etcd.put(key(service, sid), json.dumps(ep))


def stale(a, service):
    st, h, body = endpoints(a, service)
    return st == 200 and body["stale"] is True and h.get("x-beacon-stale") == "1"


def fresh(a, service):
    st, h, body = endpoints(a, service)
    return st == 200 and body["stale"] is False and h.get("x-beacon-stale") in (None, "0")


# ---- registration and discovery ---------------------------------------------------

def test_etcd_register_discover_deregister():
    with Etcd() as etcd:
        with Agent(config(etcd, service=("web", "web-1", 8080))) as a:
            wait_for(lambda: ready(a), 10, what="the registering agent to be ready")
            kv = wait_for(lambda: etcd.get(key("web", "web-1")), 5, what="the key in etcd")
            assert kv["lease"] != 0, "the key is not attached to a lease: %r" % kv
            value = json.loads(kv["value"])
            assert value == {"id": "web-1", "service": "web", "address": "10.0.0.1", "port": 8080,
                             "tags": ["v1"], "meta": {"zone": "a"}, "weight": 5,
                             "status": "passing"}, value
            ttl = etcd.lease_ttl(kv["lease"])
            assert 0 < ttl <= 2, "lease TTL %r (asked 2s)" % ttl
            b = backend(a)
            assert b["registered"] is True and b["lease_id"] == kv["lease"], b
            assert b["state"] == "registered" and b["ready"] is True and b["ttl"] == 2, b
            assert b["endpoint"] == etcd.url and b["key"] == key("web", "web-1"), b

            # Outlives several TTLs: the keepalive works.
            time.sleep(scale(2.5))
            assert etcd.get(key("web", "web-1"))["lease"] == kv["lease"], "lease changed or key expired"

            with Agent(config(etcd, services=["web"])) as b2:
                wait_for(lambda: ids(b2, "web") == ["web-1"], 5, what="discovery of web-1")
                st, h, body = endpoints(b2, "web", any_status=False)
                assert body["endpoints"][0]["address"] == "10.0.0.1" and body["stale"] is False, body
                rc, out, err = b2.cli("endpoints", "web")
                assert rc == 0 and "10.0.0.1:8080" in out, (rc, out, err)
                assert ready(b2)
                assert [w["name"] for w in backend(b2)["watches"]] == ["web"], backend(b2)

                assert a.stop() == 0, a.log()
                a.wait_log(r"deregistered /beacon/services/web/web-1 and revoked lease")
                assert etcd.get(key("web", "web-1")) is None, "the key survived SIGTERM"
                assert etcd.lease_ttl(kv["lease"]) == -1, "the lease survived SIGTERM"
                wait_for(lambda: ids(b2, "web") == [], 5, what="the discovering agent to drop web-1")


def test_etcd_health_check_status_published():
    with Etcd() as etcd:
        check = {"exec": ["sh", "-c", "test -f @DIR@/healthy || exit 2"], "interval": "200ms",
                 "timeout": "150ms", "rise": 1, "fall": 1}
        with Agent(config(etcd, service=("api", "api-1", 9000), check=check)) as a, \
                Agent(config(etcd, services=["api"])) as watcher:
            healthy = os.path.join(a.dir, "healthy")

            def status_in_etcd():
                v = etcd.get_json(key("api", "api-1"))
                return v and v["status"]

            def status_seen():
                st, _, body = endpoints(watcher, "api")
                return st == 200 and body["endpoints"] and body["endpoints"][0]["status"]

            wait_for(lambda: status_in_etcd() == "critical", 5, what="critical in etcd")
            wait_for(lambda: status_seen() == "critical", 5, what="critical at the watcher")
            assert ids(watcher, "api", any_status=False) == [], "a critical endpoint is served as passing"
            for flip in range(2):
                open(healthy, "w").close()
                wait_for(lambda: status_in_etcd() == "passing", 5, what="passing in etcd")
                wait_for(lambda: status_seen() == "passing", 5, what="passing at the watcher")
                assert ids(watcher, "api", any_status=False) == ["api-1"]
                os.unlink(healthy)
                wait_for(lambda: status_in_etcd() == "critical", 5, what="critical again in etcd")
                wait_for(lambda: status_seen() == "critical", 5, what="critical again at the watcher")
            a.wait_log(r"published status critical")
            assert a.stop() == 0 and watcher.stop() == 0


def test_etcd_lease_revoked_behind_the_agents_back():
    with Etcd() as etcd:
        with Agent(config(etcd, service=("web", "web-1", 8080))) as a:
            kv = wait_for(lambda: etcd.get(key("web", "web-1")), 10, what="registration")
            etcd.lease_revoke(kv["lease"])
            assert etcd.get(key("web", "web-1")) is None, "revoking did not delete the key"
            t0 = time.monotonic()
            kv2 = wait_for(lambda: etcd.get(key("web", "web-1")), 5, what="re-registration")
            print("re-registered %.2fs after the revoke" % (time.monotonic() - t0))
            assert kv2["lease"] not in (0, kv["lease"]), (kv, kv2)
            assert etcd.lease_ttl(kv2["lease"]) > 0
            wait_for(lambda: backend(a)["lease_id"] == kv2["lease"], 3, what="/v1/self to show the new lease")
            a.wait_log(r"lease [0-9a-f]+ is gone")
            assert a.stop() == 0


# ---- outages -----------------------------------------------------------------------

def test_etcd_kill9_and_restart():
    with Etcd() as etcd:
        with Agent(config(etcd, service=("web", "web-1", 8080), services=["web"])) as a:
            wait_for(lambda: ready(a) and ids(a, "web") == ["web-1"], 10, what="registered and discovered")
            lease = etcd.get(key("web", "web-1"))["lease"]
            etcd.kill9()
            wait_for(lambda: stale(a, "web"), 5, what="stale answers while etcd is down")
            st, _, body = endpoints(a, "web")
            assert [e["id"] for e in body["endpoints"]] == ["web-1"], "the last known state is gone: %r" % body
            b = wait_for(lambda: (lambda b: b["state"] == "unreachable" and b)(backend(a)), 5,
                         what="state unreachable")
            assert b["error"] and b["stale"] is True, b
            assert ready(a), "/ready flipped during an outage (it should keep serving stale)"
            time.sleep(scale(2.5))  # longer than the TTL
            etcd.start()
            wait_for(lambda: fresh(a, "web"), 15, what="stale cleared after etcd returned")
            kv = wait_for(lambda: etcd.get(key("web", "web-1")), 5, what="re-registration after restart")
            wait_for(lambda: etcd.lease_ttl(etcd.get(key("web", "web-1"))["lease"]) > 0, 5,
                     what="a live lease on the key")
            print("lease before %x, after %x" % (lease, kv["lease"]))
            wait_for(lambda: backend(a)["state"] == "registered", 5, what="state registered")
            # The watch works again.
            put_endpoint(etcd, "web", "web-2")
            wait_for(lambda: ids(a, "web") == ["web-1", "web-2"], 5, what="a put after the restart")
            assert a.stop() == 0
            assert etcd.get(key("web", "web-1")) is None


def test_etcd_sigstop_times_out_then_recovers():
    with Etcd() as etcd:
        with Agent(config(etcd, service=("web", "web-1", 8080), services=["web"])) as a:
            wait_for(lambda: ready(a) and ids(a, "web") == ["web-1"], 10, what="registered and discovered")
            etcd.sigstop()
            t0 = time.monotonic()
            try:
                wait_for(lambda: stale(a, "web"), 8, what="stale answers while etcd is stopped")
                took = time.monotonic() - t0
                b = backend(a)
                assert b["state"] == "unreachable" and "did not answer" in b["error"], b
                print("hung etcd detected after %.2fs" % took)
                assert ids(a, "web") == ["web-1"], "the last known state is gone"
                time.sleep(0.5)
            finally:
                etcd.sigcont()
            t0 = time.monotonic()
            wait_for(lambda: fresh(a, "web"), 15, what="recovery after SIGCONT")
            print("recovered %.2fs after SIGCONT" % (time.monotonic() - t0))
            wait_for(lambda: etcd.get(key("web", "web-1")), 5, what="the key after recovery")
            put_endpoint(etcd, "web", "web-2")
            wait_for(lambda: ids(a, "web") == ["web-1", "web-2"], 5, what="a put after recovery")
            assert a.stop() == 0


def test_etcd_compaction_during_watch():
    with Etcd() as etcd:
        with Agent(config(etcd, services=["big"])) as a:
            wait_for(lambda: ready(a), 10, what="ready")
            put_endpoint(etcd, "big", "seed")
            wait_for(lambda: ids(a, "big") == ["seed"], 5, what="the first endpoint")
            # Freeze the agent so its watch falls behind while etcd moves on
            # and compacts: when it resumes, etcd answers with compact_revision.
            a.signal(signal.SIGSTOP)
            try:
                meta = {"k%02d" % i: "x" * 1000 for i in range(60)}
                threads = []

                def writer(start):
                    for i in range(start, start + 80):
                        put_endpoint(etcd, "big", "e%03d" % i, meta=meta)
                for t in range(5):
                    threads.append(threading.Thread(target=writer, args=(t * 80,)))
                    threads[-1].start()
                for t in threads:
                    t.join()
                etcd.delete(key("big", "seed"))
                etcd.compact()
                put_endpoint(etcd, "big", "after-compaction")
            finally:
                a.signal(signal.SIGCONT)
            want = sorted(["e%03d" % i for i in range(400)] + ["after-compaction"])
            wait_for(lambda: ids(a, "big") == want, 20, what="every change, including after compaction")
            # 24 MB behind a frozen reader overflows every buffer on the way,
            # so etcd's catch-up hits the compacted history. (Under a slow
            # wrapper a liveness request in flight at SIGSTOP may time out on
            # SIGCONT first; the full resync that follows is correct too.)
            compacted = re.search(r"history was compacted at revision \d+; reading it again", a.log())
            print("watch answered with compact_revision: %s" % bool(compacted))
            if not wrapped():
                assert compacted, "the watch never saw compact_revision; log:\n" + a.log()[-3000:]
            put_endpoint(etcd, "big", "later")
            wait_for(lambda: "later" in ids(a, "big"), 5, what="a put after the resync")
            assert a.stop() == 0


# ---- scale and latency ----------------------------------------------------------------

def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def test_etcd_10k_endpoints():
    n = 10000
    with Etcd(extra=["--max-txn-ops", "2500", "--max-request-bytes", "16777216"]) as etcd:
        for start in range(0, n, 2500):
            etcd.txn_put([(key("huge", "i%05d" % i),
                           json.dumps({"id": "i%05d" % i, "address": "10.%d.%d.%d" % (i >> 16, (i >> 8) & 255, i & 255),
                                       "port": 8000 + i % 1000, "tags": ["v1"], "meta": {"zone": "z%d" % (i % 3)}}))
                          for i in range(start, start + 2500)])
        t0 = time.monotonic()
        with Agent(config(etcd, services=["huge"])) as a:
            def count():
                st, _, body = a.get("/v1/services")
                return st == 200 and body["services"].get("huge") == n
            wait_for(count, 60, interval=0.05, what="all %d endpoints" % n)
            took = time.monotonic() - t0
            st, _, body = endpoints(a, "huge", any_status=False)
            assert st == 200 and len(body["endpoints"]) == n and body["stale"] is False
            rss = rss_kib(a.pid)
            print("10k endpoints: full sync %.2fs after start (agent start included), RSS %.1f MiB"
                  % (took, rss / 1024.0))
            # One transaction updating 2500 of them arrives as one watch response.
            t1 = time.monotonic()
            etcd.txn_put([(key("huge", "i%05d" % i),
                           json.dumps({"id": "i%05d" % i, "address": "10.200.0.1", "port": 1}))
                          for i in range(2500)])

            def updated():
                st, _, body = a.get("/v1/endpoints/huge?tag=v1")
                return st == 200 and len(body["endpoints"]) == n - 2500
            wait_for(updated, 20, interval=0.05, what="a 2500-key transaction")
            print("10k endpoints: 2500-key txn applied in %.2fs, RSS %.1f MiB"
                  % (time.monotonic() - t1, rss_kib(a.pid) / 1024.0))
            etcd.delete(key("huge", ""), prefix=True)
            wait_for(lambda: ids(a, "huge") == [], 20, what="a range delete of everything")
            assert a.stop() == 0


def test_etcd_blocking_read_wakes_fast():
    with Etcd() as etcd:
        with Agent(config(etcd, services=["lat"])) as a:
            wait_for(lambda: ready(a), 10, what="ready")
            latencies = []
            for i in range(15):
                idx = a.index("/v1/endpoints/lat")
                result = {}

                def blocking():
                    result["r"] = a.get("/v1/endpoints/lat?index=%d&wait=10s" % idx, timeout=15)
                    result["t"] = time.monotonic()
                t = threading.Thread(target=blocking, daemon=True)
                t.start()
                wait_for(lambda: metric(a.metrics(), "beacon_blocking_queries") == 1, 5,
                         what="the parked blocking read")
                t0 = time.monotonic()
                put_endpoint(etcd, "lat", "e%d" % i)
                t.join(scale(10))
                assert "r" in result, "the blocking read did not return"
                st, _, body = result["r"]
                assert st == 200 and "e%d" % i in [e["id"] for e in body["endpoints"]], body
                latencies.append(result["t"] - t0)
            p50 = statistics.median(latencies)
            print("etcd put -> blocking read answered: p50 %.1f ms, max %.1f ms"
                  % (p50 * 1000, max(latencies) * 1000))
            assert p50 < scale(0.1), "p50 %.3fs" % p50
            assert a.stop() == 0


# ---- config values ------------------------------------------------------------------

def test_etcd_watch_kv_prefix():
    with Etcd() as etcd:
        etcd.put("/config/web/color", "blue")
        etcd.put("/config/other/x", "not watched")
        with Agent(config(etcd, kv=["/config/web/"])) as a:
            wait_for(lambda: ready(a), 10, what="ready")
            st, h, body = a.get("/v1/kv/config/web/color")
            assert st == 200 and body["value"] == "blue" and body["key"] == "config/web/color", body
            assert body["stale"] is False and h.get("x-beacon-stale") in (None, "0"), (h, body)
            assert a.get("/v1/kv/config/other/x")[0] == 404
            rc, out, err = a.cli("kv", "config/web/color")
            assert rc == 0 and out.strip() == "blue", (rc, out, err)

            idx = int(a.get("/v1/kv/config/web/color")[1]["x-beacon-index"])
            etcd.put("/config/web/color", "green")
            st, h, body = a.get("/v1/kv/config/web/color?index=%d&wait=5s" % idx)
            assert st == 200 and body["value"] == "green", body
            etcd.put("/config/web/new", "\u00e9t\u00e9")
            wait_for(lambda: a.get("/v1/kv/config/web/new")[2].get("value") == "\u00e9t\u00e9", 5,
                     what="a new key")
            etcd.delete("/config/web/color")
            wait_for(lambda: a.get("/v1/kv/config/web/color")[0] == 404, 5, what="a deleted key")
            etcd.kill9()
            wait_for(lambda: a.get("/v1/kv/config/web/new")[2].get("stale") is True, 5,
                     what="stale KV answers while etcd is down")
            etcd.start()
            wait_for(lambda: a.get("/v1/kv/config/web/new")[2].get("stale") is False, 15,
                     what="fresh KV answers after etcd returned")
            assert a.stop() == 0


def test_etcd_kv_reader_sleeps_through_other_keys():
    # A blocking read of key A is held while key B changes, and answered when A does;
    # a recursive reader of the prefix wakes for B.
    with Etcd() as etcd:
        etcd.put("/config/web/a", "1")
        etcd.put("/config/web/b", "1")
        with Agent(config(etcd, kv=["/config/web/"])) as a:
            wait_for(lambda: ready(a), 10, what="ready")
            idx = int(a.get("/v1/kv/config/web/a")[1]["x-beacon-index"])
            tidx = int(a.get("/v1/kv/config/web/?recurse")[1]["x-beacon-index"])
            result = {}

            def read(name, path):
                result[name] = a.get(path, timeout=scale(15))

            ta = threading.Thread(target=read, args=("a", "/v1/kv/config/web/a?index=%d&wait=10s" % idx))
            tt = threading.Thread(target=read, args=("t", "/v1/kv/config/web/?recurse&index=%d&wait=10s" % tidx))
            ta.start()
            tt.start()
            wait_for(lambda: metric(a.metrics(), "beacon_blocking_queries") == 2, 5,
                     what="the parked blocking reads")
            etcd.put("/config/web/b", "2")
            tt.join(scale(5))
            assert "t" in result, "the recursive reader did not wake for a key under its prefix"
            st, _, body = result["t"]
            assert st == 200 and {e["key"]: e["value"] for e in body["entries"]}["config/web/b"] == "2", body
            time.sleep(scale(0.3))
            assert "a" not in result, "the reader of key a woke for key b: %r" % (result.get("a"),)
            assert metric(a.metrics(), "beacon_blocking_queries") == 1
            etcd.put("/config/web/a", "2")
            ta.join(scale(5))
            assert "a" in result, "the reader of key a did not wake when a changed"
            st, h, body = result["a"]
            assert st == 200 and body["value"] == "2" and int(h["x-beacon-index"]) > idx, (st, h, body)
            assert a.stop() == 0


def test_etcd_watch_kv_recurse():
    with Etcd() as etcd:
        etcd.put("/config/web/color", "blue")
        etcd.put("/config/web/limits/rps", "100")
        with Agent(config(etcd, kv=["/config/web/"])) as a:
            wait_for(lambda: ready(a), 10, what="ready")
            st, _, body = a.get("/v1/kv/config/web/?recurse")
            assert st == 200, (st, body)
            assert {e["key"]: e["value"] for e in body["entries"]} == \
                {"config/web/color": "blue", "config/web/limits/rps": "100"}, body
            rc, out, err = a.cli("kv", "config/web/", "--recurse")
            assert rc == 0 and "config/web/color=blue" in out and "config/web/limits/rps=100" in out, \
                (rc, out, err)
            etcd.put("/config/web/limits/burst", "5")
            wait_for(lambda: len(a.get("/v1/kv/config/web/?recurse")[2].get("entries", [])) == 3, 5,
                     what="a put under the prefix")
            # A key with characters that must be escaped in a URL, read with the CLI.
            etcd.put("/config/web/a b?c", "odd")
            wait_for(lambda: a.cli("kv", "/config/web/a b?c")[0] == 0, 5, what="an odd key")
            rc, out, err = a.cli("kv", "/config/web/a b?c")
            assert rc == 0 and out == "odd\n", (rc, out, err)
            etcd.delete("/config/web/a b?c")
            etcd.delete("/config/web/", prefix=True)
            wait_for(lambda: a.get("/v1/kv/config/web/?recurse")[0] == 404, 5, what="everything deleted")


def test_etcd_watch_kv_prefix_without_slash():
    # "config/web/" (as Consul users write it) is the prefix "/config/web/";
    # written both ways it is one watch; answers keep keys without the "/".
    with Etcd() as etcd:
        etcd.put("/config/web/color", "blue")
        etcd.put("/config/webx/y", "not under config/web/")
        with Agent(config(etcd, kv=["config/web/", "/config/web/"])) as a:
            wait_for(lambda: ready(a), 10, what="ready")
            kv = [w["name"] for w in backend(a)["watches"] if w["type"] == "kv"]
            assert kv == ["/config/web/"], kv
            st, _, body = a.get("/v1/kv/config/web/color")
            assert st == 200 and body["value"] == "blue" and body["key"] == "config/web/color", body
            assert a.get("/v1/kv/config/webx/y")[0] == 404
            etcd.put("/config/web/color", "green")
            wait_for(lambda: a.get("/v1/kv/config/web/color")[2].get("value") == "green", 5,
                     what="a change under the prefix")
            rc, out, err = a.cli("kv", "config/web/", "--recurse")
            assert rc == 0 and out == "config/web/color=green\n", (rc, out, err)


def on_a_terminal(argv):
    """What argv writes with its stdout on a pseudo-terminal."""
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(argv, stdout=slave, stderr=subprocess.PIPE)
        os.close(slave)
        slave = None
        out = b""
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            out += data
        p.wait(timeout=scale(10))
        return out.decode("utf-8", "replace")
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)


def raw_kv(a, path):
    """(status, body) of a KV read, the body parsed from strict UTF-8."""
    conn = a.http()
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        raw = r.read()
    finally:
        conn.close()
    return r.status, json.loads(raw.decode("utf-8"))


def test_etcd_kv_odd_bytes_are_repaired_not_dropped():
    with Etcd() as etcd:
        etcd.put(b"/config/web/\xffkey", b"v\xfe")
        etcd.put("/config/web/nul", b"a\x00b")
        etcd.put("/config/web/plain", "ok")
        with Agent(config(etcd, kv=["/config/web/"])) as a:
            wait_for(lambda: ready(a), 10, what="ready")
            # A key that is not UTF-8: read by its bytes, shown with U+FFFD.
            st, body = raw_kv(a, "/v1/kv/config/web/%FFkey")
            assert st == 200, (st, body)
            assert body["key"] == "config/web/\ufffdkey" and body["value"] == "v\ufffd", body
            # ... and never dropped from a recursive read.
            st, body = raw_kv(a, "/v1/kv/config/web/?recurse")
            assert st == 200, (st, body)
            assert {e["key"]: e["value"] for e in body["entries"]} == {
                "config/web/\ufffdkey": "v\ufffd", "config/web/nul": "a\ufffdb",
                "config/web/plain": "ok"}, body
            # NUL in a value is U+FFFD as the README says, not \u0000.
            st, body = raw_kv(a, "/v1/kv/config/web/nul")
            assert st == 200 and body["value"] == "a\ufffdb", body
            # The CLI escapes control characters in key=value lines; one value
            # into a pipe is printed as stored.
            etcd.put("/config/web/esc\x1b[31m", "line1\nline2\x1b[0m")
            wait_for(lambda: len(a.get("/v1/kv/config/web/?recurse")[2].get("entries", [])) == 4, 5,
                     what="the key with an escape")
            rc, out, err = a.cli("kv", "config/web/", "--recurse")
            assert rc == 0 and "\x1b" not in out, (rc, out, err)
            assert "config/web/esc\\x1b[31m=line1\\nline2\\x1b[0m\n" in out, out
            assert len(out.splitlines()) == 4, out
            rc, out, err = a.cli("kv", "config/web/esc\x1b[31m")
            assert rc == 0 and out == "line1\nline2\x1b[0m\n", (rc, out, err)
            # On a terminal the value keeps its newline but not its escape.
            out = on_a_terminal([beacon_bin(), "--socket", a.sock, "kv", "config/web/esc\x1b[31m"])
            assert "\x1b" not in out and "line2\\x1b[0m" in out and "line1\r\nline2" in out, repr(out)
            assert a.stop() == 0


def test_etcd_kv_value_over_the_limit_is_skipped():
    limit = 1024 * 1024  # README, Limits
    with Etcd(extra=["--max-request-bytes", str(12 << 20)]) as etcd:
        etcd.put("/config/web/big", "x" * 100)
        etcd.put("/config/web/edge", "y" * limit)
        with Agent(config(etcd, kv=["/config/web/"])) as a:
            wait_for(lambda: ready(a), 10, what="ready")
            assert a.get("/v1/kv/config/web/big")[0] == 200
            st, _, body = a.get("/v1/kv/config/web/edge")
            assert st == 200 and len(body["value"]) == limit, (st, len(str(body)))
            etcd.put("/config/web/big", "z" * (10 << 20))
            wait_for(lambda: a.get("/v1/kv/config/web/big")[0] == 404, 10,
                     what="a 10 MiB value skipped (the key reads as absent)")
            a.wait_log("skipping /config/web/big: its value is 10485760 bytes", timeout=5)
            st, _, body = a.get("/v1/kv/config/web/?recurse")
            assert st == 200 and sorted(e["key"] for e in body["entries"]) == ["config/web/edge"], body
            # Said once: a resync (etcd hung, then back) does not repeat the line.
            # (Not a restart: etcd cannot replay a WAL entry of 10 MiB.)
            etcd.sigstop()
            try:
                wait_for(lambda: a.get("/v1/kv/config/web/edge")[2].get("stale") is True, 15,
                         what="stale")
            finally:
                etcd.sigcont()
            wait_for(lambda: a.get("/v1/kv/config/web/edge")[2].get("stale") is False, 20, what="fresh")
            etcd.put("/config/web/after", "1")
            wait_for(lambda: a.get("/v1/kv/config/web/after")[0] == 200, 10, what="a later put")
            lines = [l for l in log_lines(a.log()) if "skipping /config/web/big" in l]
            assert len(lines) == 1, lines
            assert a.get("/v1/kv/config/web/big")[0] == 404
            assert a.stop() == 0


# ---- drain ---------------------------------------------------------------------------

def test_etcd_drain_and_resume():
    with Etcd() as etcd:
        with Agent(config(etcd, service=("web", "web-1", 8080))) as a:
            wait_for(lambda: ready(a), 10, what="ready")
            lease = etcd.get(key("web", "web-1"))["lease"]
            st, _, body = a.post("/v1/self/drain")
            assert st == 200, (st, body)
            wait_for(lambda: etcd.get(key("web", "web-1")) is None, 5, what="the key removed on drain")
            assert a.get("/ready")[0] == 503
            assert backend(a)["state"] == "drained", backend(a)
            assert etcd.lease_ttl(lease) > 0, "the lease should stay alive while drained"
            time.sleep(scale(2.5))  # the key stays away across keepalives
            assert etcd.get(key("web", "web-1")) is None
            rc, out, err = a.cli("resume")
            assert rc == 0, (rc, out, err)
            kv = wait_for(lambda: etcd.get(key("web", "web-1")), 5, what="the key back on resume")
            assert kv["lease"] == lease, "resume should reuse the live lease"
            wait_for(lambda: a.get("/ready")[0] == 200, 5, what="/ready 200 after resume")
            assert backend(a)["state"] == "registered"
            assert a.stop() == 0


# ---- hostile data ----------------------------------------------------------------------

def test_etcd_hostile_values_are_skipped():
    with Etcd() as etcd:
        hostile = {
            key("svc", "badjson"): "{not json",
            key("svc", "huge"): json.dumps({"id": "huge", "address": "10.0.0.9", "port": 1,
                                            "meta": {"x": "y" * 70000}}),
            key("svc", "types"): json.dumps({"id": "types", "address": "10.0.0.9", "port": "eighty"}),
            key("svc", "array"): "[1,2,3]",
            key("svc", "nested/deeper"): json.dumps({"address": "10.0.0.9", "port": 1}),
            key("svc", ""): json.dumps({"address": "10.0.0.9", "port": 1}),
            key("svc", "mismatch"): json.dumps({"id": "other", "address": "10.0.0.9", "port": 1}),
        }
        for k, v in hostile.items():
            etcd.put(k, v)
        put_endpoint(etcd, "svc", "good1", "10.1.0.1")
        etcd.put(key("svc", "good2"), json.dumps({"address": "10.1.0.2", "port": 81}))  # id from the key
        with Agent(config(etcd, services=["svc"])) as a:
            wait_for(lambda: ready(a), 10, what="ready")
            assert ids(a, "svc") == ["good1", "good2"], endpoints(a, "svc")
            for k in hostile:
                a.wait_log(r"skipping %s" % re.escape(k) + r"(:|\.\.\.)")
            # Live events: more garbage, and a good endpoint turning bad.
            etcd.put(key("svc", "badjson2"), "\xff\xfe")
            etcd.put(key("svc", "good1"), json.dumps({"id": "good1", "address": "10.1.0.1", "port": -5}))
            put_endpoint(etcd, "svc", "good3", "10.1.0.3")
            wait_for(lambda: ids(a, "svc") == ["good2", "good3"], 5, what="good3 in, bad good1 out")
            a.wait_log(r"skipping %s" % re.escape(key("svc", "badjson2")))
            # The same problems again (a resync after an outage, repeated puts): no new lines.
            for k, v in hostile.items():
                etcd.put(k, v)
            etcd.kill9()
            wait_for(lambda: stale(a, "svc"), 5, what="stale")
            etcd.start()
            wait_for(lambda: fresh(a, "svc"), 15, what="resynced")
            put_endpoint(etcd, "svc", "good4", "10.1.0.4")
            wait_for(lambda: ids(a, "svc") == ["good2", "good3", "good4"], 5, what="good4")
            lines = [l for l in log_lines(a.log()) if "skipping" in l]
            for k in list(hostile) + [key("svc", "badjson2"), key("svc", "good1")]:
                mine = [l for l in lines if re.search(r"skipping %s(:|\.\.\.)" % re.escape(k), l)]
                assert len(mine) == 1, "expected one log line for %s, got %r" % (k, mine)
            assert a.stop() == 0
            print("\n".join(lines))


# ---- TLS and auth ------------------------------------------------------------------------

def test_etcd_tls_client_certificates():
    with Etcd(tls=True) as etcd:
        c = etcd.certs
        tls = {"ca_file": c["ca"], "cert_file": c["client"], "key_file": c["client_key"]}
        reg = registry(etcd, tls=tls)
        with Agent(config(etcd, service=("web", "web-1", 8080), services=["web"], reg=reg)) as a:
            wait_for(lambda: ready(a), 10, what="ready over TLS; log:\n" + a.log())
            assert etcd.get(key("web", "web-1"))["lease"] != 0
            wait_for(lambda: ids(a, "web") == ["web-1"], 5, what="discovery over TLS")
            assert a.stop() == 0
            assert etcd.get(key("web", "web-1")) is None, "deregistration over TLS failed"
        # Without the client certificate etcd refuses: a clear error, not a crash.
        reg = registry(etcd, tls={"ca_file": c["ca"]})
        with Agent(config(etcd, services=["web"], reg=reg)) as a:
            b = wait_for(lambda: (lambda b: b["error"] and b)(backend(a)), 10, what="a TLS error")
            assert b["state"] == "connecting" and not b["ready"], b
            print("without a client certificate: %s" % b["error"])
            assert a.stop() == 0


def test_etcd_tls_server_name_and_insecure_skip_verify():
    # The certificate names only a DNS name, and beacon reaches etcd by IP (a
    # cluster-internal name, a load balancer's name): as Vault's and Consul's
    # tls_server_name, tls.server_name is the name to check instead of the IP.
    name = "etcd.beacon.test"
    with Etcd(tls=True, server_name=name) as etcd:
        c = etcd.certs
        tls = {"ca_file": c["ca"], "cert_file": c["client"], "key_file": c["client_key"]}
        with Agent(config(etcd, services=["web"], reg=registry(etcd, tls=tls))) as a:
            b = wait_for(lambda: (lambda b: b["error"] and b)(backend(a)), 10, what="a TLS error")
            assert b["state"] == "connecting" and not b["ready"], b
            assert "TLS" in b["error"] and "127.0.0.1" in b["error"], b
            assert "Set tls.server_name" in b["error"], b
            print("without server_name: %s" % b["error"])
            assert a.stop() == 0

        reg = registry(etcd, tls=dict(tls, server_name=name))
        with Agent(config(etcd, service=("web", "web-1", 8080), services=["web"], reg=reg)) as a:
            wait_for(lambda: ready(a), 10, what="ready with server_name; log:\n" + a.log())
            assert etcd.get(key("web", "web-1"))["lease"] != 0
            wait_for(lambda: ids(a, "web") == ["web-1"], 5, what="discovery with server_name")
            assert "insecure_skip_verify" not in a.log()
            assert a.stop() == 0
            assert etcd.get(key("web", "web-1")) is None, "deregistration with server_name failed"

        # A name the certificate does not hold is refused just the same.
        reg = registry(etcd, tls=dict(tls, server_name="other.beacon.test"))
        with Agent(config(etcd, services=["web"], reg=reg)) as a:
            b = wait_for(lambda: (lambda b: b["error"] and b)(backend(a)), 10, what="a TLS error")
            assert "TLS" in b["error"] and "other.beacon.test" in b["error"], b
            assert a.stop() == 0

        # insecure_skip_verify: no CA, no name, yet it connects, and says so at
        # start and at every reload while it stays on.
        insecure = {"cert_file": c["client"], "key_file": c["client_key"], "insecure_skip_verify": True}
        cfg = config(etcd, services=["web"], reg=registry(etcd, tls=insecure))
        warning = r"insecure_skip_verify is set: the server's certificate is not checked"
        with Agent(cfg) as a:
            wait_for(lambda: ready(a), 10, what="ready with insecure_skip_verify; log:\n" + a.log())
            assert len(re.findall(warning, a.log())) == 1, a.log()
            a.reload(config(etcd, services=["web", "api"], reg=registry(etcd, tls=insecure)))
            wait_for(lambda: len(re.findall(warning, a.log())) == 2, 5, what="the warning again at reload")
            # Turning it off needs a restart, as every tls change: still warned.
            a.reload(config(etcd, services=["web"], reg=registry(etcd, tls=dict(tls, server_name=name))))
            a.wait_log(r"changes to tls take effect after a restart")
            wait_for(lambda: len(re.findall(warning, a.log())) == 3, 5, what="the warning while still in use")
            assert ready(a)
            assert a.stop() == 0


def test_etcd_tls_server_name_keeps_the_host_header():
    # As Go's tls.Config.ServerName (Vault's and Consul's tls_server_name):
    # the name goes into SNI and the certificate check only; the request still
    # goes to, and names in Host, the address the user configured.
    from etcd_fixture import make_certs
    from harness import temp_dir
    with temp_dir() as d:
        certs = make_certs(d, "etcd.beacon.test")
        with FakeEtcd(tls=certs) as f:
            reg = {"backend": "etcd", "endpoints": [f.url], "timeout": "2s", "dial_timeout": "1s",
                   "tls": {"ca_file": certs["ca"], "server_name": "etcd.beacon.test"}}
            with Agent(registry_config(reg, None, ["web"])) as a:
                wait_for(lambda: ready(a), 10, what="ready; log:\n" + a.log())
                hosts = {h.get("host") for h, _ in f.requests("/v3/kv/range") + f.requests("/v3/watch")}
                assert hosts == {"127.0.0.1:%d" % f.port}, hosts
                assert a.stop() == 0


def test_etcd_numbers_at_the_int64_edge_are_clamped():
    # etcd spells int64 as strings. A member answering 2^63-1 must not make
    # revision + 1 overflow (undefined, and in practice a negative
    # start_revision: a watch "from now" that loses every event in between),
    # nor ttl * 1000. Lease IDs are opaque and kept exactly.
    top = "9223372036854775807"
    value = json.dumps({"id": "w1", "address": "10.0.0.1", "port": 80})
    with FakeEtcd(revision=top, ttl=top, lease_id=top, kvs=[(key("web", "w1"), value)]) as f:
        reg = {"backend": "etcd", "endpoints": [f.url], "ttl": "2s", "timeout": "2s", "dial_timeout": "1s"}
        with Agent(registry_config(reg, ("web", "web-1", 8080), ["web"])) as a:
            wait_for(lambda: ready(a), 10, what="ready; log:\n" + a.log())
            assert ids(a, "web") == ["w1"]
            watches = [b["create_request"] for _, b in f.requests("/v3/watch")]
            assert watches, "no watch was started"
            for w in watches:
                assert 2 ** 62 <= int(w["start_revision"]) < 2 ** 63, w
            b = backend(a)
            assert b["registered"] is True, b
            assert b["lease_id"] == 2 ** 63 - 1, b
            assert b["ttl"] == 9000000000, b  # etcd's MaxLeaseTTL
            assert 0 < b["revision"] <= 2 ** 62, b
            assert a.stop() == 0
    # Below the range: negative numbers read as absent. A lease without a
    # positive TTL is refused, and the watch starts at a positive revision.
    with FakeEtcd(revision="-9223372036854775808", ttl="-1", kvs=[(key("web", "w1"), value)]) as f:
        reg = {"backend": "etcd", "endpoints": [f.url], "ttl": "2s", "timeout": "2s", "dial_timeout": "1s"}
        with Agent(registry_config(reg, ("web", "web-1", 8080), ["web"])) as a:
            wait_for(lambda: ids(a, "web") == ["w1"], 10, what="discovery; log:\n" + a.log())
            a.wait_log(r"granting a lease for .* failed: the answer has no lease ID or TTL")
            watches = [b["create_request"] for _, b in f.requests("/v3/watch")]
            assert watches and all(int(w["start_revision"]) > 0 for w in watches), watches
            assert backend(a)["registered"] is False
            assert a.stop() == 0


def test_etcd_auth_username_password():
    # Tokens expire after 1 s without use, so the agent must authenticate again.
    with Etcd(extra=["--auth-token-ttl", "1"]) as etcd:
        etcd.etcdctl("user", "add", "root:rootpw")
        etcd.etcdctl("user", "add", "app:s3cret-Pa55")
        etcd.etcdctl("role", "add", "app-role")
        etcd.etcdctl("role", "grant-permission", "app-role", "--prefix=true", "readwrite", "/beacon/")
        etcd.etcdctl("role", "grant-permission", "app-role", "--prefix=true", "read", "/config/")
        etcd.etcdctl("user", "grant-role", "app", "app-role")
        etcd.etcdctl("auth", "enable")
        etcd.as_root("rootpw")
        etcd.put("/config/web/color", "blue")

        good = "@DIR@/password"
        reg = registry(etcd, username="app", password_file=good)
        cfg = config(etcd, service=("web", "web-1", 8080), services=["web"], kv=["/config/web/"], reg=reg)
        a = Agent(cfg)
        with open(os.path.join(a.dir, "password"), "w") as f:
            f.write("s3cret-Pa55\n")
        with a:
            wait_for(lambda: ready(a), 10, what="ready with auth; log:\n" + a.log())
            kv = etcd.get(key("web", "web-1"))
            assert kv and kv["lease"] != 0, kv
            wait_for(lambda: ids(a, "web") == ["web-1"], 5, what="discovery with auth")
            assert a.get("/v1/kv/config/web/color")[2]["value"] == "blue"
            # Let the token expire: the drain's delete is refused, then retried with a new token.
            time.sleep(scale(2.5))
            assert a.post("/v1/self/drain")[0] == 200
            wait_for(lambda: etcd.get(key("web", "web-1")) is None, 5, what="the drain with an expired token")
            a.wait_log(r"etcd refused the auth token .*invalid auth token.*authenticating again")
            assert a.post("/v1/self/resume")[0] == 200
            wait_for(lambda: etcd.get(key("web", "web-1")), 5, what="the resume")
            put_endpoint(etcd, "web", "web-2")
            wait_for(lambda: ids(a, "web") == ["web-1", "web-2"], 5, what="a put after re-authentication")
            time.sleep(scale(1.5))
            assert a.stop() == 0
            assert etcd.get(key("web", "web-1")) is None, "deregistration with auth failed:\n" + a.log()
            assert "s3cret-Pa55" not in a.log()

        bad = Agent(config(etcd, services=["web"], reg=registry(etcd, username="app",
                                                                  password_file="@DIR@/password")))
        with open(os.path.join(bad.dir, "password"), "w") as f:
            f.write("wrong-Pa55word\n")
        with bad:
            b = wait_for(lambda: (lambda b: "authentication" in b["error"] and b)(backend(bad)), 10,
                         what="an authentication error in /v1/self")
            assert not b["ready"] and "app" in b["error"], b
            assert not ready(bad)
            bad.wait_log(r"authentication as user \"app\" failed")
            assert "wrong-Pa55word" not in bad.log(), "the password appears in the log"
            assert "wrong-Pa55word" not in json.dumps(bad.get("/v1/self")[2])
            print("wrong password: %s" % b["error"])
            assert bad.stop() == 0


# ---- reload ------------------------------------------------------------------------------

def test_etcd_reload_changes_watch_lists():
    with Etcd() as etcd:
        put_endpoint(etcd, "one", "o1")
        put_endpoint(etcd, "two", "t1")
        etcd.put("/config/a/x", "1")
        cfg = config(etcd, services=["one"])
        with Agent(cfg) as a:
            wait_for(lambda: ids(a, "one") == ["o1"], 10, what="service one")
            assert a.get("/v1/endpoints/two")[0] == 404
            a.reload(config(etcd, services=["two"], kv=["/config/a/"],
                            reg=registry(etcd, ttl="5s")))
            wait_for(lambda: ids(a, "two") == ["t1"], 5, what="service two after reload")
            wait_for(lambda: a.get("/v1/endpoints/one")[0] == 404, 5, what="service one gone")
            wait_for(lambda: a.get("/v1/kv/config/a/x")[0] == 200, 5, what="the new kv prefix")
            a.wait_log(r"changes to ttl take effect after a restart")
            assert ready(a)
            assert a.stop() == 0


def attempt(fn, *args):
    """fn(*args), or None when etcd refused it (a cluster electing a leader)."""
    try:
        return fn(*args) or True
    except (AssertionError, OSError):
        return None


def test_etcd_cluster_member_killed_agent_moves_on():
    # A three-member cluster; the member the agent talks to is killed twice over
    # (the second time it is the one the agent moved to). The agent moves to a
    # live member, keeps its registration alive there and keeps watching.
    with EtcdCluster(3) as c:
        reg = registry(c.members[0], endpoints=c.urls)
        with Agent(config(c.members[0], service=("web", "web-1", 8080), services=["web"], reg=reg)) as a:
            wait_for(lambda: ready(a) and ids(a, "web") == ["web-1"], 10, what="registered and discovered")
            killed = []
            for n in range(2):
                first = backend(a)["endpoint"]
                assert first in c.urls and first not in killed, (first, killed)
                c.member_at(first).kill9()
                t_kill = time.monotonic()
                killed.append(first)
                b = wait_for(lambda: (lambda b: b["endpoint"] not in killed and b["state"] == "registered" and b)
                             (backend(a)), 10, what="the agent registered on a live member")
                print("killed %s; the agent was registered on %s %.2fs later"
                      % (first, b["endpoint"], time.monotonic() - t_kill))
                live = c.member_at(b["endpoint"])
                # A put may time out while the members elect a new leader: retried.
                wait_for(lambda: attempt(put_endpoint, live, "web", "web-%d" % (n + 2)), 15,
                         what="a put accepted by the remaining members")
                want = ["web-%d" % i for i in range(1, n + 3)]
                wait_for(lambda: ids(a, "web") == want, 10, what="a put on another member after the kill")
                assert fresh(a, "web"), endpoints(a, "web")
                if n == 0:
                    # The lease lives in the cluster: longer than the TTL later the key is
                    # still there, kept alive through the new member.
                    lease = live.get(key("web", "web-1"))["lease"]
                    time.sleep(scale(2.5))
                    kv = live.get(key("web", "web-1"))
                    assert kv and live.lease_ttl(kv["lease"]) > 0, kv
                    print("lease %x before, %x after the TTL" % (lease, kv["lease"]))
                    # The member comes back and rejoins; the agent stays where it is.
                    c.member_at(first).start()
                    killed.clear()
            # Two members down of three: no quorum. Answers go stale, the last state stays.
            assert ready(a)
            survivor = [m for m in c.members if m.url == backend(a)["endpoint"]][0]
            for m in c.others(survivor.url):
                m.kill9()
            t0 = time.monotonic()
            wait_for(lambda: stale(a, "web"), 15, what="stale answers without a quorum")
            print("stale %.2fs after the quorum was lost" % (time.monotonic() - t0))
            assert ids(a, "web") == ["web-1", "web-2", "web-3"]
            t0 = time.monotonic()
            for m in c.others(survivor.url):
                m.start()
            wait_for(lambda: fresh(a, "web"), 20, what="fresh answers once the quorum is back")
            print("fresh %.2fs after the members were started again" % (time.monotonic() - t0))
            assert a.stop() == 0
            assert survivor.get(key("web", "web-1")) is None


def test_etcd_rotates_across_endpoints():
    with Etcd() as etcd:
        dead = "http://127.0.0.1:%d" % free_port()
        reg = registry(etcd, endpoints=[dead, etcd.url])
        with Agent(config(etcd, service=("web", "web-1", 8080), services=["web"], reg=reg)) as a:
            wait_for(lambda: ready(a), 10, what="ready through the second endpoint")
            assert backend(a)["endpoint"] == etcd.url, backend(a)
            # Ready follows the first sync and the registration; the agent sees
            # its own key when the watch delivers the put, a moment later.
            wait_for(lambda: ids(a, "web") == ["web-1"], 5, what="its own registration discovered")
            a.wait_log(r"cannot connect to %s" % re.escape(dead))
            assert a.stop() == 0
