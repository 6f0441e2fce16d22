"""The Vault secrets backend (SPEC.md "vault", GET /v1/secrets/{name}, `beacon secret`).

Each test starts its own Vault (vault_fixture.Vault: the simulator, or a real
dev server under VAULT_BIN) with short TTLs, and polls with deadlines instead
of sleeping where it can. Secret values are random and distinctive, so that
finding one in a log or in the agent's memory cannot be a coincidence.
"""

import json
import os
import re
import secrets
import shutil
import string
import tempfile
import threading
import time

from harness import (Agent, UnixHTTPConnection, beacon_bin, http_request, log_lines, run_beacon,
                     scale, skip, wait_for, wrapped)
from vault_fixture import Vault

ALNUM = string.ascii_letters + string.digits


# ---- helpers -------------------------------------------------------------------

def rand(prefix="S3cr3t", n=28):
    return "%s-%s" % (prefix, "".join(secrets.choice(ALNUM) for _ in range(n)))


def write(d, name, text, mode=0o600):
    """Write a credential file the way kubelet and careful tools do: a new file
    renamed over the old one, so a reader never sees it half written."""
    path = os.path.join(d, name)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def config(vault, auth, secret_list, log_level="debug", **top):
    vc = {"address": vault.url, "auth": auth, "secrets": secret_list, "timeout": "2s"}
    vc.update(top.pop("vault_extra", {}))
    cfg = {"log": {"level": log_level}, "vault": vc}
    cfg.update(top)
    return cfg


APPROLE = {"method": "approle", "role_id_file": "@DIR@/role_id", "secret_id_file": "@DIR@/secret_id"}


def approle_agent(vault, secret_list, ttl="1h", max_ttl="2h", auth_extra=None, **top):
    """An Agent (not started) logging in with a fresh AppRole; returns (agent, secret_id)."""
    role_id, secret_id = rand("role"), rand("sid")
    vault.approle(role_id, secret_id, ttl=ttl, max_ttl=max_ttl)
    auth = dict(APPROLE)
    auth.update(auth_extra or {})
    a = Agent(config(vault, auth, secret_list, **top))
    write(a.dir, "role_id", role_id + "\n")
    write(a.dir, "secret_id", secret_id + "\n")
    return a, secret_id


def secret(a, name, query=""):
    return a.get("/v1/secrets/%s%s" % (name, query))


def data(a, name):
    st, _, body = secret(a, name)
    return body["data"] if st == 200 else None


def backend(a):
    st, _, body = a.get("/v1/self")
    assert st == 200, (st, body)
    return [b for b in body["backends"] if b["plugin"] == "vault"][0]


def ready(a):
    return a.get("/ready")[0] == 200


def wait_ready(a, timeout=10):
    wait_for(lambda: ready(a), timeout, what="/ready; log:\n" + a.log()[-2000:])


def assert_clean(text, values, where="the agent's log"):
    for v in values:
        assert v not in text, "%s contains a secret or token (%s...)" % (where, v[:10])


def asan_build():
    with open(beacon_bin(), "rb") as f:
        return b"AddressSanitizer" in f.read()


def as_user(uid, sock_path, path):
    """GET path over the socket from a child running as uid; (status, body)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            conn = UnixHTTPConnection(sock_path, timeout=10)
            st, _, body = http_request(conn, "GET", path)
            os.write(w, json.dumps([st, body]).encode())
        except BaseException as e:  # noqa: B902 - report anything to the parent
            os.write(w, json.dumps([-1, repr(e)]).encode())
        finally:
            os._exit(0)
    os.close(w)
    out = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    st, body = json.loads(out.decode())
    return st, body


# ---- authentication -------------------------------------------------------------

def test_vault_token_auth():
    with Vault() as v:
        tok = v.create_token(ttl="1h")
        pw = rand()
        v.kv2_put("web/db", {"user": "app", "password": pw})
        a = Agent(config(v, {"method": "token", "token_file": "@DIR@/token"},
                         [{"name": "db", "path": "secret/data/web/db"}]))
        write(a.dir, "token", tok + "\n")
        with a:
            wait_ready(a)
            st, h, body = secret(a, "db")
            assert st == 200, (st, body)
            assert body == {"name": "db", "data": {"user": "app", "password": pw}, "version": 1,
                            "expires_in": None, "stale": False}, body
            assert int(h["x-beacon-index"]) > 0 and h.get("cache-control") == "no-store", h
            b = backend(a)
            assert b["state"] == "synced" and b["auth"]["method"] == "token" and b["auth"]["authenticated"], b
            assert b["secrets"][0]["kind"] == "kv2", b
            assert secret(a, "nope")[0] == 404
            assert a.stop() == 0
            assert_clean(a.log(), [pw, tok])
        # token_file's token belongs to the operator: never revoked by beacon.
        assert v.token_valid(tok), "the agent revoked a token it did not create"


def test_vault_approle_removes_secret_id_file_and_revokes_at_stop():
    with Vault() as v:
        pw = rand()
        v.kv2_put("web/db", {"password": pw})
        a, sid = approle_agent(v, [{"name": "db", "path": "secret/data/web/db"}])
        sid_path = os.path.join(a.dir, "secret_id")
        with a:
            wait_ready(a)
            assert data(a, "db") == {"password": pw}
            assert not os.path.exists(sid_path), "secret_id_file was not removed after reading"
            a.wait_log(r"removed .*secret_id after reading it")
            assert os.path.exists(os.path.join(a.dir, "role_id"))
            if not v.real:
                tok = v.tokens("approle")[-1]
                assert tok["valid"], tok
            assert a.stop() == 0
            a.wait_log(r"revoked the Vault token")
            assert_clean(a.log(), [pw, sid])
            if not v.real:
                assert v.tokens("approle")[-1]["revoked"] == "revoke-self", v.tokens("approle")[-1]

        # remove_secret_id_file_after_reading false keeps the file; revoke_on_shutdown false keeps the token.
        b, sid = approle_agent(v, [{"name": "db", "path": "secret/data/web/db"}],
                               auth_extra={"remove_secret_id_file_after_reading": False},
                               vault_extra={"revoke_on_shutdown": False})
        with b:
            wait_ready(b)
            assert os.path.exists(os.path.join(b.dir, "secret_id"))
            assert b.stop() == 0
            assert "revoked the Vault token" not in b.log()
            if not v.real:
                assert v.tokens("approle")[-1]["valid"], "revoke_on_shutdown false still revoked"


def test_vault_kubernetes_auth():
    with Vault() as v:
        v.require_sim("the Kubernetes auth method")
        jwt = "eyJhbGciOiJSUzI1NiJ9." + rand("k8s", 40)
        v.k8s_role("web", jwt, ttl="1h", max_ttl="2h")
        pw = rand()
        v.kv2_put("web/db", {"password": pw})
        sl = [{"name": "db", "path": "secret/data/web/db"}]
        a = Agent(config(v, {"method": "kubernetes", "role": "web", "token_file": "@DIR@/sa"}, sl))
        write(a.dir, "sa", jwt)
        with a:
            wait_ready(a)
            assert data(a, "db") == {"password": pw}
            st = v.state()
            assert st["counts"]["kubernetes_logins"] == 1, st["counts"]
            assert st["request_paths"].get("/v1/auth/kubernetes/login") == 1, st["request_paths"]
            assert backend(a)["auth"]["method"] == "kubernetes"
            assert_clean(a.log(), [pw, jwt])

        bad = Agent(config(v, {"method": "kubernetes", "role": "web", "token_file": "@DIR@/sa",
                               "mount": "k8s-east"}, sl))
        write(bad.dir, "sa", jwt)
        with bad:
            wait_for(lambda: v.state()["request_paths"].get("/v1/auth/k8s-east/login"), 5,
                     what="a login on the configured mount")
            b = wait_for(lambda: (lambda b: b["state"] == "auth failed" and b)(backend(bad)), 5,
                         what="state auth failed")
            assert "kubernetes login" in b["error"] and not b["ready"], b
            assert not ready(bad)
            assert secret(bad, "db")[0] == 503
            assert_clean(bad.log(), [jwt])


def test_vault_kubernetes_jwt_is_read_again_for_each_login():
    # kubelet rotates projected service-account tokens and the old ones expire:
    # a login after the rotation must send the JWT now in the file.
    with Vault() as v:
        v.require_sim("the Kubernetes auth method")
        jwt1 = "eyJhbGciOiJSUzI1NiJ9." + rand("k8s1", 40)
        jwt2 = "eyJhbGciOiJSUzI1NiJ9." + rand("k8s2", 40)
        v.k8s_role("web", jwt1, ttl="3s", max_ttl="3s")
        pw = rand()
        v.kv2_put("web/db", {"password": pw})
        a = Agent(config(v, {"method": "kubernetes", "role": "web", "token_file": "@DIR@/sa"},
                         [{"name": "db", "path": "secret/data/web/db"}]))
        write(a.dir, "sa", jwt1)
        with a:
            wait_ready(a)
            assert v.state()["counts"]["kubernetes_logins"] == 1
            # The cluster now accepts only the new JWT, and kubelet wrote it.
            v.k8s_role("web", jwt2, ttl="3s", max_ttl="3s")
            write(a.dir, "sa", jwt2)
            wait_for(lambda: v.state()["counts"]["kubernetes_logins"] >= 2, 6,
                     what="a login past the first token's max TTL")
            a.wait_log(r"read a new service-account JWT from ")
            assert v.state()["counts"]["login_failures"] == 0, v.state()["counts"]
            b = backend(a)
            assert b["auth"]["authenticated"] and b["state"] == "synced", b
            assert data(a, "db") == {"password": pw}
            assert_clean(a.log(), [pw, jwt1, jwt2])


def test_vault_token_file_is_read_again_when_its_token_stops_working():
    with Vault() as v:
        tok1, tok2 = v.create_token(ttl="1h"), v.create_token(ttl="1h")
        pw = rand()
        v.kv2_put("web/db", {"password": pw})
        a = Agent(config(v, {"method": "token", "token_file": "@DIR@/token"},
                         [{"name": "db", "path": "secret/data/web/db", "refresh": "1s"}]))
        write(a.dir, "token", tok1 + "\n")
        with a:
            wait_ready(a)
            # The operator writes a new token and revokes the old one.
            write(a.dir, "token", tok2 + "\n")
            v.revoke_token(tok1)
            a.wait_log(r"read a new token from ", timeout=10)
            pw2 = rand()
            v.kv2_put("web/db", {"password": pw2})
            wait_for(lambda: data(a, "db") == {"password": pw2}, 6, what="reads with the new token")
            b = backend(a)
            assert b["auth"]["authenticated"] and b["state"] == "synced", b
            assert secret(a, "db")[2]["stale"] is False
            assert a.stop() == 0
            assert_clean(a.log(), [pw, pw2, tok1, tok2])
        assert v.token_valid(tok2), "the agent revoked the operator's token"


# ---- renewal and re-login ---------------------------------------------------------

def check_fractions(renewals, what):
    for r in renewals:
        if not r["capped"]:
            assert abs(r["elapsed_fraction"] - 0.67) <= 0.15, \
                "%s renewed at %.3f of its TTL (want 0.67 +- 0.15): %r" % (what, r["elapsed_fraction"], renewals)


def test_vault_token_renewal_at_two_thirds_and_relogin_past_max_ttl():
    with Vault() as v:
        v.require_sim("renewal history (/sim/state)")
        if wrapped():
            skip("TTL arithmetic of seconds does not survive a slow wrapper")
        pw = rand()
        v.kv2_put("web/db", {"password": pw})
        a, _ = approle_agent(v, [{"name": "db", "path": "secret/data/web/db", "refresh": "1s"}],
                             ttl="3s", max_ttl="8s")
        with a:
            wait_ready(a)
            first = v.tokens("approle")[0]
            seen = []
            deadline = time.monotonic() + 10.5
            while time.monotonic() < deadline:
                st, _, body = secret(a, "db")
                seen.append((st, body.get("stale") if isinstance(body, dict) else None))
                time.sleep(0.1)
            assert all(s == (200, False) for s in seen), "the secret was not served fresh throughout: %r" % \
                [s for s in seen if s != (200, False)][:5]
            toks = v.tokens("approle")
            first = [t for t in toks if t["id"] == first["id"]][0]
            ren = first["renewals"]
            assert len(ren) >= 2, "the token was not renewed: %r" % first
            check_fractions(ren, "the token")
            assert ren[-1]["capped"], "no renewal reached the max TTL: %r" % ren
            assert len(toks) >= 2 and v.state()["counts"]["approle_logins"] >= 2, "no second login: %r" % toks
            second = toks[1]
            assert second["created"] < first["max_expire_time"], \
                "the new token came %.2fs after the old one died" % (second["created"] - first["max_expire_time"])
            print("renewals of the first token at %s; re-login %.2fs before its max TTL"
                  % ([r["elapsed_fraction"] for r in ren], first["max_expire_time"] - second["created"]))
            a.wait_log(r"reached its max TTL .*logging in again")
            assert_clean(a.log(), [pw] + [t["id"] for t in toks])


def test_vault_token_revoked_out_of_band_logs_in_again():
    with Vault() as v:
        v.require_sim("/sim/revoke")
        pw = rand()
        v.kv2_put("web/db", {"password": pw})
        a, _ = approle_agent(v, [{"name": "db", "path": "secret/data/web/db", "refresh": "1s"}])
        with a:
            wait_ready(a)
            tok = v.tokens("approle")[-1]
            v.sim("/revoke", {}, accessor=tok["accessor"])
            wait_for(lambda: v.state()["counts"]["approle_logins"] >= 2, 5, what="a new login")
            a.wait_log(r"token is invalid")
            pw2 = rand()
            v.kv2_put("web/db", {"password": pw2})
            wait_for(lambda: data(a, "db") == {"password": pw2}, 5, what="reads with the new token")
            assert secret(a, "db")[2]["stale"] is False


def test_vault_lookup_self_denied_is_not_an_invalid_token():
    """A token without the default policy is refused auth/token/lookup-self (Vault's ACL
    body, not "invalid token"): beacon keeps it and its login TTL instead of logging in
    again every time a secret read is denied."""
    with Vault() as v:
        v.require_sim("roles without the default policy and login counts")
        role_id, sid = rand("role"), rand("sid")
        v.sim("/approle", {}, spec="%s:%s:ttl=1h:max_ttl=2h:policies=deny-secret:no_default_policy=1"
              % (role_id, sid))
        v.kv2_put("web/db", {"password": rand()})
        a = Agent(config(v, dict(APPROLE), [{"name": "db", "path": "secret/data/web/db"}]))
        write(a.dir, "role_id", role_id + "\n")
        write(a.dir, "secret_id", sid + "\n")
        with a:
            wait_for(lambda: v.state()["requests"].get("GET /v1/auth/token/lookup-self", 0) >= 1, 10,
                     what="the token checked after a denied read")
            time.sleep(scale(7))   # more than the 5 s between two checks of a denied read
            st = v.state()
            assert st["counts"]["approle_logins"] == 1, \
                "logged in again after lookup-self was denied: %r" % st["counts"]
            a.wait_log(r"denies auth/token/lookup-self to this token")
            b = backend(a)
            assert b["auth"]["authenticated"] and b["auth"]["token_ttl"] > 3000, b["auth"]
            assert "permission denied" in b["secrets"][0]["error"], b


def test_vault_token_file_without_default_policy_is_used():
    with Vault() as v:
        v.require_sim("tokens without the default policy")
        st, obj = v.v1("POST", "auth/token/create", {"ttl": "1h", "policies": ["reader"],
                                                     "no_default_policy": True}, expect=(200,))
        tok = obj["auth"]["client_token"]
        pw = rand()
        v.kv2_put("web/db", {"password": pw})
        a = Agent(config(v, {"method": "token", "token_file": "@DIR@/token"},
                         [{"name": "db", "path": "secret/data/web/db"}]))
        write(a.dir, "token", tok + "\n")
        with a:
            wait_ready(a)
            assert data(a, "db") == {"password": pw}
            a.wait_log(r"authenticated to Vault with token \(token TTL 0s, unknown: lookup-self is denied\)")
            assert_clean(a.log(), [pw, tok])


# ---- KV v2, KV v1, blocking reads ---------------------------------------------------

def test_vault_kv2_update_within_refresh_wakes_blocking_reads():
    with Vault() as v:
        p1, p2 = rand(), rand()
        v.kv2_put("app/cfg", {"password": p1})
        a, _ = approle_agent(v, [{"name": "cfg", "path": "secret/data/app/cfg", "refresh": "1s"}])
        with a:
            wait_ready(a)
            st, h, body = secret(a, "cfg")
            assert st == 200 and body["version"] == 1 and body["data"] == {"password": p1}, body
            idx = int(h["x-beacon-index"])

            # Nothing changes: the read is held for `wait`, then answered as is.
            t0 = time.monotonic()
            st, h2, body = secret(a, "cfg", "?index=%d&wait=400ms" % idx)
            took = time.monotonic() - t0
            assert st == 200 and int(h2["x-beacon-index"]) == idx and body["version"] == 1, (st, h2, body)
            assert took >= 0.35, "a blocking read returned after %.2fs" % took

            result = {}

            def blocked():
                t = time.monotonic()
                result["answer"] = secret(a, "cfg", "?index=%d&wait=20s" % idx)
                result["at"] = time.monotonic()
                result["held"] = result["at"] - t

            th = threading.Thread(target=blocked)
            th.start()
            time.sleep(0.3)
            t_put = time.monotonic()
            assert v.kv2_put("app/cfg", {"password": p2}) == 2
            th.join(scale(15))
            st, h3, body = result["answer"]
            assert st == 200 and body["data"] == {"password": p2} and body["version"] == 2, body
            assert int(h3["x-beacon-index"]) > idx, h3
            lag = result["at"] - t_put
            print("KV v2 update reached a blocking reader %.2fs after the write (refresh 1s)" % lag)
            assert lag <= scale(2.0), "picked up %.2fs after the write (refresh is 1s)" % lag
            assert_clean(a.log(), [p1, p2])


def test_vault_kv1():
    with Vault() as v:
        k1, k2 = rand(), rand()
        v.kv1_put("web/legacy", {"api_key": k1})
        a, _ = approle_agent(v, [{"name": "legacy", "path": "kv/web/legacy", "refresh": "1s"}])
        with a:
            wait_ready(a)
            st, _, body = secret(a, "legacy")
            assert st == 200 and body == {"name": "legacy", "data": {"api_key": k1}, "version": 1,
                                          "expires_in": None, "stale": False}, body
            assert backend(a)["secrets"][0]["kind"] == "kv1"
            v.kv1_put("web/legacy", {"api_key": k2})
            wait_for(lambda: data(a, "legacy") == {"api_key": k2}, 3, what="the KV v1 update")
            assert secret(a, "legacy")[2]["version"] == 2
            assert_clean(a.log(), [k1, k2])


def test_vault_kv_version_detection():
    """kv_version 0 asks sys/internal/ui/mounts, as the Vault CLI and Vault Agent do: data/
    goes after the mount path (which may hold a '/'), a KV v1 path with /data/ stays v1."""
    with Vault(extra=["--kv2-extra-mount", "team/kv"]) as v:
        v.require_sim("an extra KV v2 mount")
        p1, p2, p3, p4 = rand(), rand(), rand(), rand()
        v.kv2_put("web/db", {"password": p1})
        v.sim("/kv2", {"password": p2}, path="app/cfg", mount="team/kv")
        v.kv1_put("data/x", {"password": p3})
        v.kv2_put("web/db", {"password": p4})   # version 2; version 1 is pinned below
        a, _ = approle_agent(v, [{"name": "plain", "path": "secret/web/db"},
                                 {"name": "team", "path": "team/kv/app/cfg"},
                                 {"name": "v1data", "path": "kv/data/x"},
                                 {"name": "pinned", "path": "secret/data/web/db", "version": 1}])
        with a:
            wait_ready(a)
            assert data(a, "plain") == {"password": p4}
            assert data(a, "team") == {"password": p2}
            assert data(a, "v1data") == {"password": p3}
            assert data(a, "pinned") == {"password": p1}
            kinds = {s["name"]: (s["kind"], s["path"]) for s in backend(a)["secrets"]}
            assert kinds == {"plain": ("kv2", "secret/data/web/db"),
                             "team": ("kv2", "team/kv/data/app/cfg"),
                             "v1data": ("kv1", "kv/data/x"),
                             "pinned": ("kv2", "secret/data/web/db?version=1")}, kinds
            assert_clean(a.log(), [p1, p2, p3, p4])


def test_vault_kv_detection_falls_back_and_reports_kv2_warnings():
    """Where sys/internal/ui/mounts is missing (older Vault: 404) or denied (403), the path is
    read as configured; a KV v2 path read without data/ reports Vault's warning."""
    with Vault(extra=["--no-ui-mounts"]) as v:
        v.require_sim("a Vault without sys/internal/ui/mounts")
        v.kv2_put("web/db", {"password": rand()})
        a, _ = approle_agent(v, [{"name": "db", "path": "secret/web/db"}])
        with a:
            wait_for(lambda: backend(a)["secrets"][0]["error"], 10, what="the read's error")
            err = backend(a)["secrets"][0]["error"]
            assert "Invalid path for a versioned K/V secrets engine" in err, err
            assert "no reason given" not in a.log()
            a.wait_log(r"cannot detect its KV version \(HTTP 404: unsupported path\); reading secret/web/db")
    with Vault() as v:
        v.require_sim("the deny-secret policy")
        role_id, sid = rand("role"), rand("sid")
        v.sim("/approle", {}, spec="%s:%s:ttl=1h:max_ttl=2h:policies=deny-secret" % (role_id, sid))
        a = Agent(config(v, dict(APPROLE), [{"name": "db", "path": "secret/data/web/db"}]))
        write(a.dir, "role_id", role_id + "\n")
        write(a.dir, "secret_id", sid + "\n")
        with a:
            a.wait_log(r"cannot detect its KV version \(HTTP 403: preflight capability check", timeout=10)
            wait_for(lambda: v.state()["request_paths"].get("/v1/secret/data/web/db", 0) >= 1, 10,
                     what="the configured path read")
            wait_for(lambda: "permission denied" in backend(a)["secrets"][0]["error"], 10,
                     what="the read's own error")


# ---- dynamic secrets ------------------------------------------------------------------

def test_vault_dynamic_lease_renewal_and_rotation_before_expiry():
    with Vault() as v:
        v.require_sim("the database engine and lease history")
        if wrapped():
            skip("TTL arithmetic of seconds does not survive a slow wrapper")
        v.db_role("app", ttl="3s", max_ttl="8s")
        a, _ = approle_agent(v, [{"name": "creds", "path": "database/creds/app"}])
        with a:
            wait_ready(a)
            st, _, body = secret(a, "creds")
            assert st == 200 and 0 <= body["expires_in"] <= 3 and body["version"] == 1, body
            assert backend(a)["secrets"][0]["kind"] == "lease"
            served = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                st, _, body = secret(a, "creds")
                assert st == 200, (st, body)
                served.append((time.time(), body["data"]["username"], body["data"]["password"]))
                time.sleep(0.1)
            leases = v.state()["leases"]
            first = leases[0]
            check_fractions(first["renewals"], "the lease")
            assert len(first["renewals"]) >= 2 and first["renewals"][-1]["capped"], first["renewals"]
            assert len(leases) >= 2, "the lease was never replaced: %r" % leases
            assert leases[1]["created"] < first["max_expire_time"], \
                "the new lease came after the old one ended"
            by_user = {le["username"]: le for le in leases}
            for t, user, _ in served:
                le = by_user[user]
                assert t < le["max_expire_time"] and (le["revoked_at"] is None or t < le["revoked_at"]), \
                    "served credentials of an ended lease (%s)" % user
            assert served[-1][1] != served[0][1], "the served credentials never changed"
            print("lease renewed at %s, replaced %.2fs before its max TTL"
                  % ([r["elapsed_fraction"] for r in first["renewals"]],
                     first["max_expire_time"] - leases[1]["created"]))
            a.wait_log(r"lease of secret creds reaches its max TTL")
            assert_clean(a.log(), sorted({p for _, _, p in served}))


def test_vault_static_database_credentials_follow_their_rotation():
    """database/static-creds has no lease but data.ttl (seconds to the next rotation): the
    new password is read when that runs out, not only every `refresh` (5m here)."""
    with Vault() as v:
        v.require_sim("the database engine")
        v.db_static_role("app", rotation_period="3s")
        a, _ = approle_agent(v, [{"name": "db", "path": "database/static-creds/app"}])
        with a:
            wait_ready(a)
            first = data(a, "db")
            assert first["username"] == "app" and "ttl" not in first, first
            s = backend(a)["secrets"][0]
            assert s["kind"] == "rotating" and s["version"] == 1, s
            wait_for(lambda: data(a, "db")["password"] != first["password"], 8,
                     what="the rotated password")
            st, _, body = secret(a, "db")
            assert body["stale"] is False and body["version"] >= 2, body
            _, vs = v.v1("GET", "database/static-creds/app")
            wait_for(lambda: data(a, "db")["password"] == v.v1("GET", "database/static-creds/app")[1]
                     ["data"]["password"], 8, what="the password Vault has now")
            assert_clean(a.log(), [first["password"], vs["data"]["password"]])


# ---- HA: a standby that redirects -----------------------------------------------------

def test_vault_standby_redirect_is_followed_once():
    """An agent pointed at a standby (307 to the active node, empty body) still logs in,
    renews its token, renews its lease and reads KV; a second redirect is an error."""
    with Vault(extra=["--standby"]) as v:
        v.db_role("app", ttl="3s", max_ttl="1h")
        pw = rand()
        v.kv2_put("web/db", {"password": pw})
        a, _ = approle_agent(v, [{"name": "db", "path": "secret/data/web/db", "refresh": "1s"},
                                 {"name": "creds", "path": "database/creds/app"}],
                             ttl="3s", max_ttl="1h", vault_extra={"address": v.standby_url})
        with a:
            wait_ready(a, timeout=15)
            assert data(a, "db") == {"password": pw}
            wait_for(lambda: v.state()["counts"]["token_renewals"] >= 2
                     and v.state()["counts"]["lease_renewals"] >= 2, 15,
                     what="token and lease renewals through the standby")
            st = v.state()
            assert st["counts"]["approle_logins"] == 1, st["counts"]
            assert st["counts"]["standby_redirects"] >= 5, st["counts"]
            b = backend(a)
            assert b["state"] == "synced" and b["auth"]["authenticated"], b

            # A standby whose redirect leads to another redirect: one is followed, not two.
            v.sim("/standby", {}, target="self")
            wait_for(lambda: "redirected the request twice" in (backend(a).get("error") or ""), 10,
                     what="the second redirect reported; self: %r" % (backend(a),))
            assert data(a, "db") == {"password": pw}, "the cached secret is no longer served"
            v.sim("/standby", {}, target="active")
            pw2 = rand()
            v.kv2_put("web/db", {"password": pw2})
            wait_for(lambda: data(a, "db") == {"password": pw2}, 10, what="recovery through the standby")
            assert_clean(a.log(), [pw, pw2])
        # The token method's lookup-self goes through the standby too.
        tok = v.create_token(ttl="1h")
        t = Agent(config(v, {"method": "token", "token_file": "@DIR@/token"},
                         [{"name": "db", "path": "secret/data/web/db"}],
                         vault_extra={"address": v.standby_url}))
        write(t.dir, "token", tok + "\n")
        with t:
            wait_ready(t)
            assert data(t, "db") == {"password": pw2}
            assert backend(t)["auth"]["token_ttl"] > 3000, backend(t)["auth"]
            assert v.state()["requests"].get("GET /v1/auth/token/lookup-self", 0) >= 1


def test_vault_standby_redirect_from_https_to_http_is_refused():
    """As Vault's Go client: a redirect may not downgrade from https to http (the token and
    the secret_id would cross the network in clear)."""
    from etcd_fixture import make_certs
    d = tempfile.mkdtemp(prefix="beacon-vault-tls-", dir="/tmp")
    try:
        certs = make_certs(d)
        with Vault(extra=["--standby", "--standby-tls",
                          "%s:%s" % (certs["server"], certs["server_key"])]) as v:
            v.require_sim("the standby node")
            v.kv2_put("web/db", {"password": rand()})
            a, sid = approle_agent(v, [{"name": "db", "path": "secret/data/web/db"}],
                                   vault_extra={"address": v.standby_url,
                                                "tls": {"ca_file": certs["ca"]}})
            with a:
                a.wait_log(r"answered HTTP 307 to an http:// address \(refused: that would downgrade",
                           timeout=10)
                assert not ready(a)
                st = v.state()
                assert st["counts"]["standby_redirects"] >= 1, st["counts"]
                assert st["counts"]["logins"] == 0, "the login was sent over http: %r" % st["counts"]
                assert_clean(a.log(), [sid])
    finally:
        shutil.rmtree(d, ignore_errors=True)


YEAR = 365 * 86400


def test_vault_extreme_durations_are_clamped():
    """lease_duration / ttl values a broken or hostile Vault might send (2^63-1, -1, 1e300)
    are clamped before any arithmetic: no lease counted as expired at once, no renewal loop."""
    with Vault() as v:
        v.require_sim("/sim/mangle")
        for role in ("big", "float", "neg", "renewed"):
            v.db_role(role, ttl="2s" if role == "renewed" else "1h", max_ttl="2h")
        v.sim("/mangle", {"auth.lease_duration": 9223372036854775807}, path="/v1/auth/approle/login")
        v.sim("/mangle", {"lease_duration": 9223372036854775807}, path="/v1/database/creds/big")
        v.sim("/mangle", {"lease_duration": 1e300}, path="/v1/database/creds/float")
        v.sim("/mangle", {"lease_duration": -1}, path="/v1/database/creds/neg")
        a, _ = approle_agent(v, [{"name": n, "path": "database/creds/" + n}
                                 for n in ("big", "float", "neg", "renewed")])
        with a:
            wait_ready(a)
            # The first renewal of "renewed" answers 2^63-1 seconds.
            v.sim("/mangle", {"lease_duration": 9223372036854775807}, path="/v1/sys/leases/renew")
            wait_for(lambda: v.state()["counts"]["lease_renewals"] >= 1, 10, what="a lease renewal")
            before = v.state()["counts"]
            time.sleep(scale(2.5))
            after = v.state()["counts"]
            for k in ("logins", "token_renewals", "lease_renewals", "leases_issued"):
                assert after[k] == before[k], "%s went on: %r -> %r" % (k, before, after)
            assert after["logins"] == 1 and after["lease_renewals"] == 1, after
            b = backend(a)
            assert b["auth"]["token_ttl"] >= 9 * YEAR, b["auth"]
            for name in ("big", "float", "renewed"):
                st, _, body = secret(a, name)
                assert st == 200 and body["expires_in"] >= 9 * YEAR, (name, st, body)
            st, _, body = secret(a, "neg")   # no usable duration: kept as a secret without lease
            assert st == 200 and body["expires_in"] is None, body
            assert "ended" not in a.log(), a.log()[-2000:]


# ---- outages ----------------------------------------------------------------------------

def stale(a, name):
    st, h, body = secret(a, name)
    return st == 200 and body["stale"] is True and h.get("x-beacon-stale") == "1"


def fresh(a, name):
    st, h, body = secret(a, name)
    return st == 200 and body["stale"] is False and "x-beacon-stale" not in h


def test_vault_sealed_serves_stale_then_recovers():
    with Vault() as v:
        pw = rand()
        v.kv2_put("web/db", {"password": pw})
        a, _ = approle_agent(v, [{"name": "db", "path": "secret/data/web/db", "refresh": "1s"}])
        with a:
            wait_ready(a)
            v.seal()
            wait_for(lambda: stale(a, "db"), 5, what="stale answers while Vault is sealed")
            assert data(a, "db") == {"password": pw}, "the cached secret is gone"
            b = wait_for(lambda: (lambda b: b["state"] == "sealed" and b)(backend(a)), 5, what="state sealed")
            assert "sealed" in b["error"] and b["stale"] is True, b
            assert ready(a), "/ready flipped during an outage"
            time.sleep(scale(1.5))
            v.unseal()
            t0 = time.monotonic()
            wait_for(lambda: fresh(a, "db"), 15, what="fresh answers after the unseal")
            print("recovered %.2fs after the unseal" % (time.monotonic() - t0))
            wait_for(lambda: backend(a)["state"] == "synced", 5, what="state synced")
            pw2 = rand()
            v.kv2_put("web/db", {"password": pw2})
            wait_for(lambda: data(a, "db") == {"password": pw2}, 5, what="an update after recovery")
            assert a.alive()
            assert_clean(a.log(), [pw, pw2])


def test_vault_outage_longer_than_the_token_ttl():
    with Vault() as v:
        pw = rand()
        v.kv2_put("web/db", {"password": pw})
        a, _ = approle_agent(v, [{"name": "db", "path": "secret/data/web/db", "refresh": "1s"}],
                             ttl="2s", max_ttl="1h")
        with a:
            wait_ready(a)
            v.seal()
            wait_for(lambda: stale(a, "db"), 5, what="stale while sealed")
            wait_for(lambda: not backend(a)["auth"]["authenticated"], 10,
                     what="the token to run out during the outage")
            assert stale(a, "db") and data(a, "db") == {"password": pw}, "not served stale without a token"
            v.unseal()
            wait_for(lambda: fresh(a, "db"), 15, what="a new login and fresh answers after the unseal")
            if not v.real:
                assert v.state()["counts"]["approle_logins"] >= 2, v.state()["counts"]


def test_vault_lease_ends_during_outage_then_recovers():
    with Vault() as v:
        v.require_sim("the database engine")
        v.db_role("app", ttl="2s", max_ttl="1h")
        a, _ = approle_agent(v, [{"name": "creds", "path": "database/creds/app"}])
        with a:
            wait_ready(a)
            user = data(a, "creds")["username"]
            v.seal()
            wait_for(lambda: stale(a, "creds"), 4, what="stale while sealed")
            st, _, body = wait_for(lambda: (lambda r: r[0] == 503 and r)(secret(a, "creds")), 5,
                                   what="503 once the lease ended")
            assert "lease ended" in body["error"], body
            assert ready(a)
            v.unseal()
            wait_for(lambda: fresh(a, "creds"), 15, what="new credentials after the unseal")
            assert data(a, "creds")["username"] != user
            a.wait_log(r"lease of secret creds ended")


def test_vault_ready_waits_for_every_secret():
    with Vault() as v:
        v.kv2_put("web/now", {"k": rand()})
        a, _ = approle_agent(v, [{"name": "now", "path": "secret/data/web/now"},
                                 {"name": "later", "path": "secret/data/web/later"}])
        with a:
            b = wait_for(lambda: (lambda b: b["state"] == "loading" and b["error"] and b)(backend(a)), 10,
                         what="state loading with the missing secret's error")
            assert "later" in b["error"] and "404" in b["error"], b
            st, _, body = a.get("/ready")
            assert st == 503 and "vault#0" in body["reason"], body
            wait_for(lambda: secret(a, "now")[0] == 200, 5, what="the secret that exists")
            st, _, body = a.get("/ready")
            assert st == 503, "ready before every secret was read"
            st, _, body = secret(a, "later")
            assert st == 503 and "not been read" in body["error"], body
            v.kv2_put("web/later", {"k": rand()})
            wait_ready(a, 15)
            assert secret(a, "later")[0] == 200


# ---- access ---------------------------------------------------------------------------------

def test_vault_wrong_uid_gets_403():
    if os.geteuid() != 0:
        skip("needs root to act as another uid")
    with Vault() as v:
        pw, pw2 = rand(), rand()
        v.kv2_put("web/db", {"password": pw})
        v.kv2_put("web/nobody", {"password": pw2})
        a, _ = approle_agent(v, [{"name": "db", "path": "secret/data/web/db"},
                                 {"name": "for-nobody", "path": "secret/data/web/nobody",
                                  "allow_uids": [65534]}],
                             socket={"mode": "0666"})
        os.chmod(a.dir, 0o711)  # uid 65534 may reach the socket, not list the directory
        with a:
            wait_ready(a)
            assert data(a, "db") == {"password": pw}  # default allow_uids: the agent's own uid
            st, body = as_user(65534, a.sock, "/v1/secrets/db")
            assert st == 403 and "65534" in body["error"] and pw not in json.dumps(body), (st, body)
            a.wait_log(r"refused secret db to uid 65534 \(pid \d+\)")
            st, body = as_user(65534, a.sock, "/v1/secrets/for-nobody")
            assert st == 200 and body["data"] == {"password": pw2}, (st, body)
            st, _, body = secret(a, "for-nobody")
            assert st == 403, (st, body)
            a.wait_log(r"refused secret for-nobody to uid 0 \(pid \d+\)")
            # Blocking reads are refused before they are parked.
            st, body = as_user(65534, a.sock, "/v1/secrets/db?index=1&wait=5s")
            assert st == 403, (st, body)
            assert_clean(a.log(), [pw, pw2])


def test_vault_logs_and_self_free_of_secrets_and_tokens():
    with Vault() as v:
        values = [rand(), rand(), rand()]
        v.kv2_put("web/a", {"password": values[0], "nested": {"key": values[1]}})
        v.kv1_put("web/b", {"token": values[2]})
        extra = []
        secret_list = [{"name": "a", "path": "secret/data/web/a", "refresh": "1s"},
                       {"name": "b", "path": "kv/web/b", "refresh": "1s"}]
        if not v.real:
            v.db_role("app", ttl="2s", max_ttl="1h")
            secret_list.append({"name": "c", "path": "database/creds/app"})
        a, sid = approle_agent(v, secret_list, ttl="2s", max_ttl="1h")
        with a:
            wait_ready(a)
            for name in [s["name"] for s in secret_list]:
                assert secret(a, name)[0] == 200
            rc, out, err = a.cli("secret", "a", "--field", "password")
            assert rc == 0 and out.strip() == values[0], (rc, err)
            v.seal()
            wait_for(lambda: stale(a, "a"), 5, what="stale while sealed")
            v.unseal()
            wait_for(lambda: fresh(a, "a"), 15, what="recovery")
            time.sleep(scale(2))  # a few renewals
            self_text = json.dumps(a.get("/v1/self")[2])
            if not v.real:
                st = v.state()
                extra = [t["id"] for t in st["tokens"] if t["kind"] != "root"]
                extra += [data(a, "c")["password"], data(a, "c")["username"]]
                assert extra, st
            assert a.stop() == 0
            log = a.log()
            assert_clean(log, values + [sid] + extra)
            assert_clean(self_text, values + [sid] + extra, "/v1/self")
            print("checked %d log lines for %d secret values and tokens" % (len(log_lines(log)),
                                                                             len(values + extra) + 1))


def test_vault_cli_secret_field():
    with Vault() as v:
        pw = rand()
        v.kv2_put("web/db", {"user": "app", "password": pw, "port": 5432})
        a, _ = approle_agent(v, [{"name": "db", "path": "secret/data/web/db"}])
        with a:
            wait_ready(a)
            rc, out, err = a.cli("secret", "db", "--field", "password")
            assert rc == 0 and out == pw + "\n", (rc, out, err)
            rc, out, err = a.cli("secret", "db", "--field", "port")
            assert rc == 0 and out == "5432\n", (rc, out, err)
            rc, out, err = a.cli("secret", "db")
            assert rc == 0 and json.loads(out) == {"user": "app", "password": pw, "port": 5432}, (rc, out)
            rc, out, err = a.cli("secret", "db", "--field", "nope")
            assert rc == 1 and "no field" in err, (rc, err)
            rc, out, err = a.cli("secret", "missing")
            assert rc == 1 and "not configured" in err, (rc, err)


def test_vault_tls_server_name_and_insecure_skip_verify():
    # The simulator's https listener, with a certificate for a DNS name only,
    # reached by IP: tls.server_name does what Vault's own tls_server_name
    # (VAULT_TLS_SERVER_NAME) does.
    from etcd_fixture import make_certs
    from harness import temp_dir
    name = "vault.beacon.test"
    with temp_dir() as path, Vault(tls=make_certs(path, name)) as v:
        v.kv2_put("web/db", {"password": "tls-pw"})
        secret_list = [{"name": "db", "path": "secret/data/web/db"}]
        tls = {"ca_file": os.path.join(path, "ca.crt")}
        a, _ = approle_agent(v, secret_list, vault_extra={"tls": tls})
        with a:
            b = wait_for(lambda: (lambda b: b["error"] and b)(backend(a)), 10, what="a TLS error")
            assert not b["ready"] and "TLS" in b["error"] and "Set tls.server_name" in b["error"], b
            assert a.stop() == 0
        a, _ = approle_agent(v, secret_list, vault_extra={"tls": dict(tls, server_name=name)})
        with a:
            wait_ready(a)
            assert data(a, "db") == {"password": "tls-pw"}
            assert "insecure_skip_verify" not in a.log()
            assert a.stop() == 0
        a, _ = approle_agent(v, secret_list, vault_extra={"tls": {"insecure_skip_verify": True}})
        with a:
            wait_ready(a)
            assert data(a, "db") == {"password": "tls-pw"}
            a.wait_log(r"vault#0.*insecure_skip_verify is set")
            assert a.stop() == 0


def test_vault_namespace_header():
    with Vault(namespaces="team-a") as v:
        v.require_sim("namespaces (Vault Enterprise)")
        pw = rand()
        v.kv2_put("web/db", {"password": pw}, namespace="team-a")
        a, _ = approle_agent(v, [{"name": "db", "path": "secret/data/web/db"}],
                             vault_extra={"namespace": "team-a"})
        with a:
            wait_ready(a)
            assert data(a, "db") == {"password": pw}
            st = v.state()
            assert set(st["namespaces_seen"]) == {"team-a"}, st["namespaces_seen"]


def test_vault_config_checks():
    bad = [
        ({"method": "ldap"}, [], r"\$\.vault\.auth\.method: unknown method"),
        ({"method": "approle"}, [], r"\$\.vault\.auth\.role_id_file: the approle method needs"),
        ({"method": "kubernetes"}, [], r"\$\.vault\.auth\.role: the kubernetes method needs"),
        ({"method": "token", "token_file": "/x"},
         [{"name": "a", "path": "secret/data/x", "allow_uids": ["root"]}],
         r"\$\.vault\.secrets\[0\]\.allow_uids\[0\]: expected a uid"),
        ({"method": "token", "token_file": "/x"}, [{"name": "a", "path": "kv/x", "version": 3}],
         r"\$\.vault\.secrets\[0\]\.version: only KV v2"),
        ({"method": "token", "token_file": "/x"},
         [{"name": "a", "path": "kv/x"}, {"name": "a", "path": "kv/y"}],
         r"\$\.vault\.secrets\[1\]\.name: secret \"a\" is already defined"),
        ({"method": "token", "token_file": "/x"}, [{"name": "a/b", "path": "kv/x"}],
         r"\$\.vault\.secrets\[0\]\.name: a secret name"),
        ({"method": "token", "token_file": "/x", "password": "x"}, [], r"\$\.vault\.auth\.password: unknown key"),
    ]
    d = os.path.join("/tmp", "beacon-vcfg-%d" % os.getpid())
    os.makedirs(d, exist_ok=True)
    try:
        path = os.path.join(d, "c.json")
        for auth, sl, want in bad:
            with open(path, "w") as f:
                json.dump({"vault": {"address": "http://127.0.0.1:1", "auth": auth, "secrets": sl}}, f)
            rc, out, err = run_beacon("agent", "--config", path, "--check-config")
            assert rc == 2 and re.search(want, err), "%r: rc %d, %r" % (want, rc, err)
        with open(path, "w") as f:
            json.dump({"vault": {"address": "http://127.0.0.1:1",
                                 "auth": {"method": "approle", "role_id_file": "/r", "secret_id_file": "/s"},
                                 "secrets": [{"name": "db", "path": "secret/data/db", "version": 2,
                                              "allow_uids": [0, 1000], "refresh": "30s"}]}}, f)
        rc, out, err = run_beacon("agent", "--config", path, "--check-config")
        assert rc == 0, (rc, out, err)
    finally:
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)


# ---- memory -----------------------------------------------------------------------------------

def scan_memory(pid, needles):
    """Which needles (bytes) appear in the readable memory of pid (as root)."""
    found = set()
    longest = max(len(n) for n in needles)
    with open("/proc/%d/maps" % pid) as f:
        maps = f.read().splitlines()
    fd = os.open("/proc/%d/mem" % pid, os.O_RDONLY)
    scanned = 0
    try:
        for line in maps:
            parts = line.split()
            name = parts[5] if len(parts) > 5 else ""
            if name in ("[vvar]", "[vsyscall]", "[vvar_vclock]"):
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            off, tail = lo, b""
            while off < hi:
                n = min(1 << 20, hi - off)
                try:
                    chunk = os.pread(fd, n, off)
                except OSError:
                    chunk, tail = b"", b""
                off += n
                if not chunk:
                    continue
                scanned += len(chunk)
                buf = tail + chunk
                for nd in needles:
                    if nd in buf:
                        found.add(nd)
                tail = buf[-longest:]
    finally:
        os.close(fd)
    return found, scanned


def test_vault_memory_holds_no_plaintext_secret_or_token():
    if os.geteuid() != 0:
        skip("reading another process's memory needs root")
    if wrapped():
        skip("a wrapper's own bookkeeping keeps copies of what the program touched")
    if asan_build():
        skip("an ASan build maps terabytes of shadow memory; scan a plain build")
    with Vault() as v:
        old, new, kv1 = rand("MemOld"), rand("MemNew"), rand("MemKv1")
        v.kv2_put("web/db", {"password": old})
        v.kv1_put("web/legacy", {"api_key": kv1})
        sl = [{"name": "db", "path": "secret/data/web/db", "refresh": "1s"},
              {"name": "legacy", "path": "kv/web/legacy", "refresh": "1s"}]
        a, sid = approle_agent(v, sl, ttl="1h", max_ttl="2h")
        with a:
            wait_ready(a)
            for _ in range(5):
                assert data(a, "db") == {"password": old}
                assert data(a, "legacy") == {"api_key": kv1}
            # A change, picked up by a blocking read: the old value must be gone too.
            idx = int(secret(a, "db")[1]["x-beacon-index"])
            v.kv2_put("web/db", {"password": new})
            st, _, body = secret(a, "db", "?index=%d&wait=10s" % idx)
            assert st == 200 and body["data"] == {"password": new}, body
            for _ in range(5):
                assert data(a, "db") == {"password": new}
                rc, out, _ = a.cli("secret", "db", "--field", "password")
                assert rc == 0 and out.strip() == new
            assert secret(a, "legacy", "?index=%d&wait=300ms" % idx)[0] == 200
            # Quiet from here on: no refresh (the live reload applies after the next read).
            cfg = json.loads(json.dumps(a.config))
            for s in cfg["vault"]["secrets"]:
                s["refresh"] = "1h"
            a.reload(cfg)
            a.wait_log(r"configuration reloaded")
            time.sleep(1.5)
            wait_for(lambda: (lambda m: m.get(("beacon_http_client_requests", frozenset())) == 0)(a.metrics()),
                     5, what="no request to Vault in flight")
            # The last thing the agent does before the scan is answering with the secret,
            # so the freed answer buffers are the freshest blocks in its heap.
            for _ in range(3):
                assert data(a, "db") == {"password": new}
                assert data(a, "legacy") == {"api_key": kv1}
            rc, out, _ = a.cli("secret", "db", "--field", "password")
            assert rc == 0 and out.strip() == new
            time.sleep(0.3)
            needles = [old.encode(), new.encode(), kv1.encode(), sid.encode()]
            token = None
            if not v.real:
                token = v.tokens("approle")[-1]["id"]
                needles.append(token.encode())
            found, scanned = scan_memory(a.pid, needles)
            print("scanned %.1f MiB of the agent's memory for %d values" % (scanned / 2.0 ** 20, len(needles)))
            assert scanned > 1 << 20, "could not read the agent's memory"
            names = {old.encode(): "the old secret value", new.encode(): "the current secret value",
                     kv1.encode(): "the KV v1 value", sid.encode(): "the AppRole secret_id"}
            if token:
                names[token.encode()] = "the Vault token"
            assert not found, "plaintext in the agent's memory: %s" % ", ".join(names[f] for f in found)
            # Sanity: the scanner does find what is there (the role_id is sealed too, the
            # socket path is not secret and sits in plain memory).
            found, _ = scan_memory(a.pid, [a.sock.encode()])
            assert found, "the scanner cannot see the agent's memory"


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def test_vault_memory_locked_or_warns_once():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        skip("needs root and setpriv to run the agent without CAP_IPC_LOCK")
    if wrapped() or asan_build():
        skip("a wrapper or AddressSanitizer decides what is locked")
    with Vault() as v:
        v.kv2_put("web/db", {"password": rand()})
        sl = [{"name": "db", "path": "secret/data/web/db"}]
        a, _ = approle_agent(v, sl)
        with a:  # root: CAP_IPC_LOCK, so everything is locked
            wait_ready(a)
            locked, rss = vm_kib(a.pid, "VmLck"), vm_kib(a.pid, "VmRSS")
            assert locked >= rss * 0.9, "mlockall not in effect: VmLck %d KiB, VmRSS %d KiB" % (locked, rss)
            assert "RLIMIT_MEMLOCK" not in a.log()
        # Without CAP_IPC_LOCK and with a finite limit: only the guarded buffers, and one warning.
        b, _ = approle_agent(v, sl)
        old = os.environ.get("BEACON_WRAP", "")
        os.environ["BEACON_WRAP"] = "setpriv --bounding-set=-ipc_lock --inh-caps=-ipc_lock prlimit --memlock=8388608"
        try:
            with b:
                wait_ready(b)
                assert secret(b, "db")[0] == 200
                assert len(re.findall(r"RLIMIT_MEMLOCK is 8192 KiB and the agent lacks CAP_IPC_LOCK",
                                      b.log())) == 1, b.log()
                locked, rss = vm_kib(b.pid, "VmLck"), vm_kib(b.pid, "VmRSS")
                assert 0 < locked < rss, "VmLck %d KiB, VmRSS %d KiB" % (locked, rss)
                print("without CAP_IPC_LOCK: %d KiB locked of %d KiB resident" % (locked, rss))
        finally:
            os.environ["BEACON_WRAP"] = old
