"""The ZooKeeper registry backend against a real ZooKeeper (SPEC.md "Registry
layout", ZooKeeper: Apache Curator's Service Discovery layout).

Most tests share one standalone server (zk_fixture.shared(): JVM starts are
the slow part) and keep apart by base path and KV root; the fault tests that
kill or stop a server start their own. Test-side reads and writes go through
kazoo; the interop test runs a real Curator client (tests/integration/java).
"""

import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time

import zk_fixture
from harness import Agent, registry_config, run_beacon, skip, wait_for
from zk_fixture import Ensemble, ZooKeeper, shared

_n = [0]


def unique(name):
    _n[0] += 1
    return "/%s%d_%d" % (name, os.getpid(), _n[0])


def registry(servers, base, **kw):
    r = {"backend": "zookeeper", "servers": servers if isinstance(servers, list) else [servers],
         "base_path": base, "session_timeout": "2s"}
    r.update(kw)
    return r


def config(servers, base, service=None, services=(), kv=(), **kw):
    return registry_config(registry(servers, base, **kw), service, services, kv)


def instance(name, iid, address="10.0.0.9", port=7000, payload=None, **extra):
    d = {"name": name, "id": iid, "address": address, "port": port, "sslPort": None,
         "payload": payload, "registrationTimeUTC": 1700000000000, "serviceType": "DYNAMIC",
         "uriSpec": None}
    d.update(extra)
    return json.dumps(d).encode()


def endpoints(a, service):
    st, _, body = a.get("/v1/endpoints/%s?status=any" % service)
    assert st == 200, (st, body)
    return body


def ids(a, service):
    return sorted(e["id"] for e in endpoints(a, service)["endpoints"])


def backend(a):
    st, _, body = a.get("/v1/self")
    assert st == 200, (st, body)
    return [b for b in body["backends"] if b["plugin"] == "zookeeper"][0]


def ready(a):
    return a.get("/ready")[0] == 200


def znode(c, path):
    """The znode's data as JSON, or None when it does not exist."""
    if not c.exists(path):
        return None
    try:
        return json.loads(c.get(path)[0])
    except Exception:  # noqa: BLE001 -- deleted between the calls
        return None


# ---- registration and discovery ----------------------------------------------

def test_zk_register_discover_and_deregister():
    z = shared()
    c = z.client()
    base = unique("svc")
    c.create(base + "/api/a1", instance("api", "a1", payload={"tags": ["x"], "meta": {"k": "v"},
                                                              "weight": 3, "status": "warning"}),
             makepath=True)
    spring = {"@class": "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance",
              "id": "api", "name": "api", "metadata": {"zone": "b", "n": 1}}
    c.create(base + "/api/s1", instance("api", "s1", address="10.0.0.2", port=8081, payload=spring))
    c.create(base + "/api/p1", instance("api", "p1", address="h.example", port=None, sslPort=8443,
                                        payload="just a string"))
    with Agent(config(z.hostport, base, service=("web", "web-1", 8080), services=["web", "api"])) as a:
        wait_for(lambda: ready(a), 10, what="ready")
        own = znode(c, base + "/web/web-1")
        assert own["name"] == "web" and own["id"] == "web-1" and own["address"] == "10.0.0.1"
        assert own["port"] == 8080 and own["serviceType"] == "DYNAMIC"
        assert own["payload"] == {"tags": ["v1"], "meta": {"zone": "a"}, "weight": 5,
                                  "status": "passing"}, own["payload"]
        assert "@class" not in json.dumps(own)
        assert c.exists(base + "/web/web-1").ephemeralOwner != 0
        eps = {e["id"]: e for e in endpoints(a, "api")["endpoints"]}
        assert eps["a1"]["tags"] == ["x"] and eps["a1"]["meta"] == {"k": "v"}, eps
        assert eps["a1"]["weight"] == 3 and eps["a1"]["status"] == "warning", eps
        assert eps["s1"]["meta"] == {"zone": "b"} and eps["s1"]["status"] == "passing", eps
        assert eps["p1"]["port"] == 8443 and eps["p1"]["address"] == "h.example", eps
        assert ids(a, "web") == ["web-1"]
        # changes are watched: a new instance, a data change, a deletion
        c.create(base + "/api/a2", instance("api", "a2", port=7002))
        wait_for(lambda: "a2" in ids(a, "api"), 5, what="a new child")
        c.set(base + "/api/a2", instance("api", "a2", port=7003))
        wait_for(lambda: [e for e in endpoints(a, "api")["endpoints"]
                          if e["id"] == "a2" and e["port"] == 7003], 5, what="a data change")
        c.delete(base + "/api/a1")
        wait_for(lambda: "a1" not in ids(a, "api"), 5, what="a deletion")
        # a service created after the start
        c.create(base + "/late/l1", instance("late", "l1"), makepath=True)
        assert a.stop() == 0
        assert not c.exists(base + "/web/web-1"), "SIGTERM did not delete the znode"
        assert "deregistered %s/web/web-1" % base in a.log()


def test_zk_service_created_later_and_health_drain_resume():
    z = shared()
    c = z.client()
    base = unique("svc")
    d = tempfile.mkdtemp(prefix="beacon-zkh-")
    flag = os.path.join(d, "ok")
    open(flag, "w").close()
    try:
        cfg = config(z.hostport, base, service=("web", "web-1", 8080), services=["later"])
        cfg["service"]["check"] = {"exec": ["/bin/sh", "-c", "test -e " + flag + " || exit 2"],
                                   "interval": "200ms", "timeout": "200ms", "rise": 1, "fall": 1}
        with Agent(cfg) as a:
            path = base + "/web/web-1"
            wait_for(lambda: (znode(c, path) or {}).get("payload", {}).get("status") == "passing", 10,
                     what="registered passing")
            os.unlink(flag)
            wait_for(lambda: (znode(c, path) or {}).get("payload", {}).get("status") == "critical", 5,
                     what="the status change in the znode's data")
            assert a.post("/v1/self/drain")[0] == 200
            wait_for(lambda: not c.exists(path), 5, what="drain deletes the znode")
            assert a.post("/v1/self/resume")[0] == 200
            wait_for(lambda: c.exists(path), 5, what="resume creates it again")
            # a service that did not exist at start is picked up when it appears
            assert ids(a, "later") == []
            c.create(base + "/later/x1", instance("later", "x1"), makepath=True)
            wait_for(lambda: ids(a, "later") == ["x1"], 5, what="a service created later")
            assert a.stop() == 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_zk_kv_subtree_watched():
    z = shared()
    c = z.client()
    root = unique("config")
    c.create(root + "/web/color", b"blue", makepath=True)
    c.create(root + "/web/deep/size", b"10", makepath=True)
    c.create(root + "/other/x", b"no", makepath=True)
    c.create(root + "/web/edge", b"y" * (1024 * 1024))     # the limit (README, Limits)
    c.create(root + "/web/huge", b"z" * (2 * 1024 * 1024))  # over it: skipped
    with Agent(config(z.hostport, unique("svc"), kv=[root + "/web/"])) as a:
        wait_for(lambda: ready(a), 10, what="ready")
        st, _, body = a.get("/v1/kv%s/web/edge" % root)
        assert st == 200 and len(body["value"]) == 1024 * 1024, st
        assert a.get("/v1/kv%s/web/huge" % root)[0] == 404
        a.wait_log("skipping %s/web/huge: its value is 2097152 bytes" % root)
        c.delete(root + "/web/edge")
        c.delete(root + "/web/huge")
        wait_for(lambda: a.get("/v1/kv%s/web/edge" % root)[0] == 404, 5, what="the 1 MiB key deleted")
        st, _, body = a.get("/v1/kv%s/web/color" % root)
        assert st == 200 and body["value"] == "blue", (st, body)
        st, _, body = a.get("/v1/kv%s/web/?recurse" % root)
        got = {e["key"]: e["value"] for e in body["entries"]}
        assert got == {root[1:] + "/web/color": "blue", root[1:] + "/web/deep": "",
                       root[1:] + "/web/deep/size": "10"}, sorted(got)
        c.set(root + "/web/color", b"red")
        wait_for(lambda: a.get("/v1/kv%s/web/color" % root)[2].get("value") == "red", 5,
                 what="a changed value")
        c.create(root + "/web/new", b"n")
        wait_for(lambda: a.get("/v1/kv%s/web/new" % root)[0] == 200, 5, what="a new key")
        c.delete(root + "/web/deep", recursive=True)
        wait_for(lambda: a.get("/v1/kv%s/web/deep/size" % root)[0] == 404, 5, what="a deleted subtree")
        assert a.get("/v1/kv%s/other/x" % root)[0] == 404
        assert a.stop() == 0


def test_zk_chroot():
    z = shared()
    c = z.client()
    chroot = unique("apps")
    c.create(chroot, b"")
    c.create(chroot + "/services/api/a1", instance("api", "a1"), makepath=True)
    with Agent(config(z.hostport, "/services", service=("web", "web-1", 8080), services=["api"],
                      chroot=chroot)) as a:
        wait_for(lambda: ready(a), 10, what="ready")
        assert ids(a, "api") == ["a1"]
        assert c.exists(chroot + "/services/web/web-1"), "not registered under the chroot"
        assert a.stop() == 0


def test_zk_reload_changes_watch_lists():
    z = shared()
    c = z.client()
    base = unique("svc")
    c.create(base + "/one/o1", instance("one", "o1"), makepath=True)
    c.create(base + "/two/t1", instance("two", "t1"), makepath=True)
    cfg = config(z.hostport, base, services=["one", ".."])
    with Agent(cfg) as a:
        # ".." cannot be a znode name: that watch says so and the rest is served
        wait_for(lambda: ready(a), 10, what="ready despite a service ZooKeeper cannot name")
        assert ids(a, "one") == ["o1"]
        cfg["watch"]["services"] = ["two"]
        a.reload(cfg)
        wait_for(lambda: a.get("/v1/endpoints/two")[0] == 200 and ids(a, "two") == ["t1"], 5,
                 what="a service watched after SIGHUP")
        wait_for(lambda: a.get("/v1/endpoints/one")[0] == 404, 5, what="an unwatched service dropped")
        c.create(base + "/two/t2", instance("two", "t2"))
        wait_for(lambda: ids(a, "two") == ["t1", "t2"], 5, what="the new watch follows changes")
        assert a.stop() == 0


def test_zk_digest_auth_file():
    from kazoo.security import make_digest_acl
    z = shared()
    c = z.client()
    root = unique("secure")
    acl = [make_digest_acl("beacon", "s3cret-pw", all=True)]
    c.create(root + "/db", b"", makepath=True)
    c.create(root + "/db/url", b"postgres://db", acl=acl)
    with tempfile.TemporaryDirectory(prefix="beacon-zka-") as d:
        good = os.path.join(d, "auth")
        with open(good, "w") as f:
            f.write("beacon:s3cret-pw\n")
        with Agent(config(z.hostport, unique("svc"), kv=[root + "/db/"], auth_file=good)) as a:
            wait_for(lambda: a.get("/v1/kv%s/db/url" % root)[2].get("value") == "postgres://db", 10,
                     what="a value only the digest user may read")
            assert "s3cret-pw" not in a.log()
            assert "s3cret-pw" not in json.dumps(a.get("/v1/self")[2])
            assert a.stop() == 0
        with Agent(config(z.hostport, unique("svc"), kv=[root + "/db/"])) as a:
            wait_for(lambda: ready(a), 10, what="ready without the credential")
            assert a.get("/v1/kv%s/db/url" % root)[0] == 404
            assert "skipping %s/db/url: not authenticated" % root in a.log(), a.log()
            assert a.stop() == 0


def test_zk_config_errors():
    with tempfile.TemporaryDirectory(prefix="beacon-zkc-") as d:
        p = os.path.join(d, "c.json")
        with open(p, "w") as f:
            json.dump({"registry": {"backend": "zookeeper", "servers": ["nohost", "h:99999"],
                                    "base_path": "services/", "chroot": "/a//b"}}, f)
        rc, _, err = run_beacon("agent", "--check-config", "--config", p)
        assert rc != 0
        for s in ("registry.servers[0]", "registry.servers[1]", "registry.base_path", "registry.chroot"):
            assert s in err, err
        # a service without a name (found by fuzz_config) and names ZooKeeper cannot use
        for svc, where in (({"port": 80}, "$.service.name"),
                           ({"name": "..", "port": 80}, "$.service.name"),
                           ({"name": "web", "id": ".", "port": 80}, "$.service.id")):
            with open(p, "w") as f:
                json.dump({"registry": {"backend": "zookeeper"}, "service": svc}, f)
            rc, _, err = run_beacon("agent", "--check-config", "--config", p)
            assert rc == 2 and where in err, (rc, err)


# ---- hostile data ------------------------------------------------------------

def test_zk_hostile_znodes_skipped():
    z = shared()
    c = z.client()
    base = unique("svc")
    c.create(base + "/api/good", instance("api", "good"), makepath=True)
    c.create(base + "/api/notjson", b"{nope")
    c.create(base + "/api/utf8", b'{"id":"utf8","address":"\xff\xfe","port":1}')
    c.create(base + "/api/big", b"{" + b" " * (1024 * 1024 - 2) + b"}")
    c.create(base + "/api/empty", b"")
    c.create(base + "/api/other", instance("api", "not-other"))
    c.create(base + "/api/badport", instance("api", "badport", port=70000))
    with Agent(config(z.hostport, base, services=["api"])) as a:
        wait_for(lambda: ready(a), 15, what="ready")
        assert ids(a, "api") == ["good"]
        log = a.log()
        for child in ("notjson", "utf8", "big", "empty", "other", "badport"):
            assert "skipping %s/api/%s" % (base, child) in log, (child, log[-3000:])
        # a bad change to a good instance withdraws it; the rest is served
        c.set(base + "/api/good", b"[]")
        wait_for(lambda: ids(a, "api") == [], 5, what="the instance withdrawn")
        c.set(base + "/api/good", instance("api", "good"))
        wait_for(lambda: ids(a, "api") == ["good"], 5, what="the instance back")
        assert a.stop() == 0


def test_zk_10k_children():
    z = shared()
    c = z.client()
    base = unique("svc")
    c.create(base + "/big", b"", makepath=True)
    n = 10000
    t0 = time.monotonic()
    futures = [c.create_async("%s/big/i%05d" % (base, i),
                              instance("big", "i%05d" % i, port=1 + i % 60000)
                              if i % 100 else b"\xff not json")
               for i in range(n)]
    for f in futures:
        f.get(timeout=30)
    made = time.monotonic() - t0
    with Agent(config(z.hostport, base, services=["big"])) as a:
        t0 = time.monotonic()
        wait_for(lambda: ready(a), 40, what="ready with 10 000 children")
        took = time.monotonic() - t0
        assert len(endpoints(a, "big")["endpoints"]) == n - n // 100
        lines = [l for l in a.log().splitlines() if "skipping" in l]
        # rate-limited: 20 lines per 10 s window (+ one summary per window)
        windows = 1 + int(took / 10) + 1
        assert 0 < len(lines) <= 21 * windows, (len(lines), took)
        print("10 000 children created in %.2fs, read by the agent in %.2fs" % (made, took))
        c.delete("%s/big/i00001" % base)
        wait_for(lambda: len(endpoints(a, "big")["endpoints"]) == n - n // 100 - 1, 10,
                 what="one deletion among 10 000")
        assert a.stop() == 0


# ---- interop with a real Curator client ----------------------------------------

CURATOR_CP = ["curator-x-discovery.jar", "curator-framework.jar", "curator-client.jar",
              # Debian's curator-x-discovery manifest omits curator-recipes: add it ourselves
              "curator-recipes.jar", "zookeeper.jar", "zookeeper-jute.jar", "guava.jar",
              "jackson-databind.jar", "jackson-core.jar", "jackson-annotations.jar",
              "slf4j-api.jar", "slf4j-nop.jar"]
JAVA_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java", "CuratorInterop.java")


def curator_program(d):
    """Compile CuratorInterop.java into d; the java argv prefix to run it."""
    javac = shutil.which("javac")
    java = shutil.which("java")
    if not javac or not java:
        skip("no JDK (apt-get install default-jdk-headless)")
    try:
        subprocess.run([java, "-version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        skip("java cannot start here")
    missing = [j for j in CURATOR_CP if not os.path.exists(os.path.join(zk_fixture.JARS, j))]
    if missing:
        skip("Curator jars missing (apt-get install libcurator-discovery-java "
             "libcurator-recipes-java): %s" % ", ".join(missing))
    cp = zk_fixture.classpath(CURATOR_CP)
    r = subprocess.run([javac, "-nowarn", "-cp", cp, "-d", d, JAVA_SRC], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    return [java, "-Xmx96m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-cp", cp + ":" + d, "CuratorInterop"]


def test_zk_curator_service_discovery_interop():
    z = shared()
    c = z.client()
    base = unique("curator")
    with tempfile.TemporaryDirectory(prefix="beacon-zkj-") as d:
        argv = curator_program(d)
        with Agent(config(z.hostport, base, service=("web", "web-1", 8080),
                          services=["javasvc"])) as a:
            wait_for(lambda: ready(a), 10, what="beacon registered")
            p = subprocess.Popen(argv + [z.hostport, base, "javasvc", "j-1", "web", "web-1"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            try:
                line = p.stdout.readline().decode()
                assert line.strip() == "REGISTERED", (line, p.stderr.read1().decode())
                # (a) Curator's registration, served by beacon
                wait_for(lambda: ids(a, "javasvc") == ["j-1"], 10, what="the Curator instance")
                e = endpoints(a, "javasvc")["endpoints"][0]
                assert (e["address"], e["port"]) == ("10.9.8.7", 9090), e
                assert e["tags"] == ["java", "curator"] and e["meta"] == {"lang": "java"}, e
                assert e["status"] == "passing", e
                # (b) beacon's registration, found by queryForInstances
                line = p.stdout.readline().decode()
                assert line.startswith("FOUND "), line
                got = json.loads(line[6:])
                assert got["address"] == "10.0.0.1" and got["port"] == 8080, got
                assert got["name"] == "web" and got["serviceType"] == "DYNAMIC", got
                assert got["payload"]["tags"] == ["v1"] and got["payload"]["weight"] == 5, got
                p.stdin.close()
                assert p.wait(timeout=20) == 0, p.stderr.read().decode()
                wait_for(lambda: ids(a, "javasvc") == [], 10, what="Curator's unregistration")
            finally:
                if p.poll() is None:
                    p.kill()
                p.wait()
                p.stdout.close()
                p.stderr.close()
            assert a.stop() == 0


# ---- faults -----------------------------------------------------------------------

def stale(a, service):
    return endpoints(a, service)["stale"]


def test_zk_kill9_and_restart():
    with ZooKeeper() as z:
        c = z.client()
        base = unique("svc")
        c.create(base + "/api/a1", instance("api", "a1"), makepath=True)
        with Agent(config(z.hostport, base, service=("web", "web-1", 8080),
                          services=["api", "web"])) as a:
            wait_for(lambda: ready(a) and ids(a, "web") == ["web-1"], 10, what="registered")
            z.kill9()
            wait_for(lambda: stale(a, "api"), 10, what="stale answers while ZooKeeper is down")
            assert ids(a, "api") == ["a1"], "the last known state is gone"
            assert backend(a)["state"] == "unreachable"
            t0 = time.monotonic()
            z.start()
            wait_for(lambda: not stale(a, "api") and not stale(a, "web"), 20,
                     what="fresh answers after the restart")
            print("fresh %.2fs after ZooKeeper's restart" % (time.monotonic() - t0))
            c2 = z.client()
            wait_for(lambda: c2.exists(base + "/web/web-1"), 10, what="the znode after the restart")
            c2.create(base + "/api/a2", instance("api", "a2"))
            wait_for(lambda: ids(a, "api") == ["a1", "a2"], 5, what="a change after the restart")
            assert a.proc.poll() is None
            assert a.stop() == 0


def test_zk_agent_sigstop_past_session_timeout():
    z = shared()
    c = z.client()
    base = unique("svc")
    path = base + "/web/web-1"
    with Agent(config(z.hostport, base, service=("web", "web-1", 8080), services=["web"])) as a:
        wait_for(lambda: c.exists(path), 10, what="registered")
        a.signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            wait_for(lambda: not c.exists(path), 15, what="the ephemeral znode gone after expiry")
            gone = time.monotonic() - t0
        finally:
            a.signal(signal.SIGCONT)
        t0 = time.monotonic()
        wait_for(lambda: c.exists(path), 15, what="the znode back after SIGCONT")
        back = time.monotonic() - t0
        wait_for(lambda: ids(a, "web") == ["web-1"] and not stale(a, "web"), 5,
                 what="fresh discovery on the new session")
        print("znode gone %.2fs after SIGSTOP (session_timeout 2s); "
              "recreated %.2fs after SIGCONT" % (gone, back))
        assert a.log().count("expired (ephemeral znode lost)") == 1, a.log()
        c.create(base + "/web/web-2", instance("web", "web-2"))
        wait_for(lambda: ids(a, "web") == ["web-1", "web-2"], 5, what="watches set again")
        assert a.stop() == 0


def test_zk_stop_with_zookeeper_hung():
    z = shared()
    base = unique("svc")
    with Agent(config(z.hostport, base, service=("web", "web-1", 8080), session_timeout="10s")) as a:
        wait_for(lambda: ready(a), 10, what="registered")
        z.sigstop()
        try:
            t0 = time.monotonic()
            assert a.stop() == 0
            took = time.monotonic() - t0
        finally:
            z.sigcont()
        assert took < 6, "stopping took %.1fs with ZooKeeper hung" % took
        assert "did not confirm the delete" in a.log()
        print("stopped in %.2fs with ZooKeeper hung" % took)


def test_zk_ensemble_member_killed():
    with Ensemble(3) as e:
        c = e.client()
        base = unique("svc")
        c.create(base + "/api/a1", instance("api", "a1"), makepath=True)
        cfg = config(e.hostports, base, service=("web", "web-1", 8080), services=["api"],
                     session_timeout="6s")
        with Agent(cfg) as a:
            wait_for(lambda: ready(a), 15, what="registered on the ensemble")
            sid = backend(a)["session"]
            assert sid, backend(a)
            talking = [m for m in e.members if sid.encode() in zk_fixture.four_letter(m.port, "cons")]
            assert len(talking) == 1, sid
            talking[0].kill9()
            wait_for(lambda: backend(a)["session"] == sid and backend(a)["state"] == "registered"
                     and not stale(a, "api"), 20, what="the same session on another member")
            assert "unreachable: connection lost" in a.log(), a.log()
            assert "expired" not in a.log()
            c.create(base + "/api/a2", instance("api", "a2"))
            wait_for(lambda: ids(a, "api") == ["a1", "a2"], 10, what="a change after failover")
            assert c.exists(base + "/web/web-1")
            assert a.proc.poll() is None
            assert a.stop() == 0
