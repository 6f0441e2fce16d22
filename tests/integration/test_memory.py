"""A light sanity check of the agent's memory (no tight numbers)."""

from harness import Agent, endpoint, skip, wrapped

LIMIT_KIB = 64 * 1024


def status_kib(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def test_memory_after_start_and_load():
    if wrapped():
        skip("memory is not meaningful under a wrapper")
    services = {"s%d" % i: [endpoint("10.%d.0.%d" % (i, j + 1), 8000 + j) for j in range(10)]
                for i in range(50)}
    with Agent({"static": {"services": services}}) as a:
        start = status_kib(a.pid)
        print("    after start: VmRSS %d KiB, VmHWM %d KiB" % (start["VmRSS"], start["VmHWM"]))
        conn = a.http()
        try:
            for i in range(1000):
                conn.request("GET", "/v1/endpoints/s%d" % (i % 50))
                r = conn.getresponse()
                r.read()
                assert r.status == 200
        finally:
            conn.close()
        after = status_kib(a.pid)
        print("    after 1000 requests: VmRSS %d KiB, VmHWM %d KiB" % (after["VmRSS"], after["VmHWM"]))
        assert after["VmHWM"] < LIMIT_KIB, "VmHWM %d KiB" % after["VmHWM"]
        assert a.stop() == 0


PAD = "# rendered by beacon from the store; do not edit by hand\n" * 100


def test_memory_holds_no_secret_after_rendering_templates_and_exec_env():
    """Templates and exec mode render secrets: the rendered buffers, the data
    tree and the child's environment are wiped; only the files hold them."""
    import json
    import os
    import time

    from harness import wait_for
    from test_vault import asan_build, rand, scan_memory
    from vault_fixture import Vault

    if os.geteuid() != 0:
        skip("reading another process's memory needs root")
    if wrapped() or asan_build():
        skip("a wrapper or AddressSanitizer keeps its own copies")
    with Vault() as v:
        tok = v.create_token(ttl="1h")
        old, new = rand("TmplOld"), rand("TmplNew")
        v.kv2_put("web/db", {"password": old})
        a = Agent({"vault": {"address": v.url, "auth": {"method": "token", "token_file": "@DIR@/token"},
                             "secrets": [{"name": "db", "path": "secret/data/web/db", "refresh": "200ms"}],
                             "timeout": "2s"},
                   # padding first: a freed block's first bytes are overwritten by
                   # malloc's own pointers, and a small block is soon reused: either
                   # would hide an unwiped buffer
                   "templates": [{"contents": PAD + "password={{secret.db.password}}\n",
                                  "destination": "@DIR@/db.conf"},
                                 {"contents": "{\"pw\": \"{{secret.db.password}}\"}", "escape": "json",
                                  "destination": "@DIR@/db.json"}],
                   "exec": {"command": ["sh", "-c", "while :; do sleep 0.1; done"],
                            "env": {"DB_PASSWORD": "{{secret.db.password}}"}}}, wait=False)
        with open(os.path.join(a.dir, "token"), "w") as f:
            f.write(tok)
        with a:
            a.wait_healthy()
            dest = os.path.join(a.dir, "db.conf")

            def content():
                try:
                    with open(dest) as f:
                        return f.read()
                except FileNotFoundError:
                    return None
            wait_for(lambda: content() == PAD + "password=%s\n" % old, 10, what="the first render")
            v.kv2_put("web/db", {"password": new})
            wait_for(lambda: content() == PAD + "password=%s\n" % new, 10, what="the render of the new value")
            wait_for(lambda: a.get("/v1/self")[2]["exec"]["restarts"] == 1, 10, what="the exec restart")
            # Quiet from here on (no refresh), and one more render of the same
            # bytes (the reload re-renders): its freed buffer is the freshest.
            cfg = json.loads(json.dumps(a.config))
            cfg["vault"]["secrets"][0]["refresh"] = "1h"
            a.reload(cfg)
            a.wait_log(r"configuration reloaded")
            time.sleep(0.5)
            found, scanned = scan_memory(a.pid, [old.encode(), new.encode()])
            assert scanned > 1 << 20, "could not read the agent's memory"
            assert not found, "plaintext in the agent's memory: %r" % found
            found, _ = scan_memory(a.pid, [dest.encode()])
            assert found, "the scanner cannot see the agent's memory"
            a.stop()
