#!/usr/bin/env python3
"""Self-test for vault_sim.py: python3 tests/sim/test_vault_sim.py

Starts the simulator on a free port, exercises every endpoint over real HTTP (urllib), prints
`PASS name` / `FAIL name: why` per test and a final `N passed, N failed` (exit 1 on failure).
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "vault_sim.py")
INVALID_TOKEN = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"
ACL_DENIED = "1 error occurred:\n\t* permission denied\n\n"
CAP_RE = re.compile(r'^TTL of "(\S+)" exceeded the effective max_ttl of "(\d+)s"; TTL value is capped accordingly$')

MAIN_ARGS = [
    "--approle", "r1:s1:ttl=3s:max_ttl=5s:policies=app",
    "--approle", "once:once-secret:num_uses=1",
    "--approle", "short:short-secret:ttl=1s:max_ttl=1s",
    "--approle", "denied:denied-secret:policies=deny-secret",
    "--approle", "lock:lock-secret:name=locky",
    "--k8s-role", "web:good-jwt:ttl=3s:max_ttl=5s:policies=web:sa=beacon:sa_namespace=apps",
    "--db-role", "app:ttl=2s:max_ttl=4s",
    "--db-role", "quick:ttl=1s:max_ttl=1s",
]


class Sim:
    def __init__(self, args):
        self.proc = subprocess.Popen([sys.executable, SIM, "--port", "0"] + args,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = []
        t = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(10)
        if not line or not line[0].startswith("LISTENING "):
            self.proc.kill()
            raise RuntimeError("simulator did not start: %r %s" % (line, self.proc.stderr.read()))
        self.port = int(line[0].split()[1])
        self.base = "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


SIMS = {}


def call(method, path, body=None, token=None, headers=None, sim="main", raw=False):
    """Returns (status, parsed JSON or None)."""
    h = {"Content-Type": "application/json"}
    if token:
        h["X-Vault-Token"] = token
    h.update(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(SIMS[sim].base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, text = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    if raw:
        return status, text
    return status, (json.loads(text) if text.strip() else None)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def eq(got, want, what):
    check(got == want, "%s: got %r, want %r" % (what, got, want))


def fresh():
    eq(call("POST", "/sim/reset")[0], 200, "reset")


def state():
    return call("GET", "/sim/state")[1]


def login(role_id="r1", secret_id="s1", sim="main", headers=None):
    st, b = call("POST", "/v1/auth/approle/login", {"role_id": role_id, "secret_id": secret_id},
                 sim=sim, headers=headers)
    eq(st, 200, "login %s status (%r)" % (role_id, b))
    return b["auth"]


def token_state(accessor, sim="main"):
    return next(t for t in call("GET", "/sim/state", sim=sim)[1]["tokens"] if t["accessor"] == accessor)


# ---------------------------------------------------------------------------- tests
def test_health_and_seal():
    fresh()
    st, b = call("GET", "/v1/sys/health")
    eq(st, 200, "health")
    for k in ("initialized", "sealed", "standby", "version", "cluster_name", "cluster_id", "server_time_utc"):
        check(k in b, "health field %s missing: %r" % (k, b))
    eq((b["initialized"], b["sealed"], b["standby"]), (True, False, False), "health flags")
    st, text = call("HEAD", "/v1/sys/health", raw=True)
    eq((st, text), (200, b""), "HEAD health")
    call("POST", "/sim/seal")
    st, b = call("GET", "/v1/sys/health")
    eq(st, 503, "sealed health")
    eq(b["sealed"], True, "sealed flag")
    check("cluster_name" not in b, "sealed health must not carry cluster_name")
    eq(call("GET", "/v1/sys/health?sealedcode=200")[0], 200, "sealedcode override")
    eq(call("GET", "/v1/secret/data/x", token="root"), (503, {"errors": ["Vault is sealed"]}), "sealed route")
    eq(call("POST", "/v1/auth/approle/login", {"role_id": "r1", "secret_id": "s1"})[0], 503, "sealed login")
    eq(call("GET", "/v1/sys/seal-status")[1]["sealed"], True, "seal-status")
    call("POST", "/sim/unseal")
    eq(call("GET", "/v1/sys/health")[0], 200, "unsealed health")
    # The real API works too.
    eq(call("PUT", "/v1/sys/seal", token="root")[0], 204, "sys/seal")
    eq(call("GET", "/v1/sys/health")[0], 503, "sealed via API")
    eq(call("PUT", "/v1/sys/unseal", {"key": "wrong"})[0], 400, "bad unseal key")
    st, b = call("PUT", "/v1/sys/unseal", {"key": "c2ltLXVuc2VhbC1rZXk="})
    eq((st, b["sealed"]), (200, False), "unseal via API")
    eq(call("GET", "/v1/sys/health?activecode=299")[0], 299, "activecode override")


def test_approle_login_ok():
    fresh()
    st, b = call("POST", "/v1/auth/approle/login", {"role_id": "r1", "secret_id": "s1"})
    eq(st, 200, "status")
    for k in ("request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth"):
        check(k in b, "envelope field %s missing" % k)
    a = b["auth"]
    check(a["client_token"] and a["accessor"], "token/accessor")
    eq(a["policies"], ["app", "default"], "policies")
    eq(a["token_policies"], ["app", "default"], "token_policies")
    eq((a["lease_duration"], a["renewable"]), (3, True), "lease")
    eq(a["metadata"], {"role_name": "r1"}, "metadata")
    eq(state()["counts"]["approle_logins"], 1, "login counted")


def test_approle_login_bad():
    fresh()
    bad = {"errors": ["invalid role or secret ID"]}
    eq(call("POST", "/v1/auth/approle/login", {"role_id": "r1", "secret_id": "nope"}), (400, bad), "bad secret")
    eq(call("POST", "/v1/auth/approle/login", {"role_id": "zz", "secret_id": "s1"}), (400, bad), "bad role")
    eq(call("POST", "/v1/auth/approle/login", {"secret_id": "s1"}), (400, {"errors": ["missing role_id"]}), "no role")
    eq(state()["counts"]["login_failures"], 2, "failures counted")


def test_approle_secret_id_num_uses():
    fresh()
    login("once", "once-secret")
    eq(call("POST", "/v1/auth/approle/login", {"role_id": "once", "secret_id": "once-secret"})[0], 400,
       "second use of a num_uses=1 secret_id")


def test_approle_user_lockout():
    fresh()
    for _ in range(5):
        eq(call("POST", "/v1/auth/approle/login", {"role_id": "lock", "secret_id": "x"})[0], 400, "bad")
    eq(call("POST", "/v1/auth/approle/login", {"role_id": "lock", "secret_id": "lock-secret"}),
       (403, {"errors": ["permission denied"]}), "locked out")


def test_kubernetes_login():
    fresh()
    st, b = call("POST", "/v1/auth/kubernetes/login", {"role": "web", "jwt": "good-jwt"})
    eq(st, 200, "k8s login")
    a = b["auth"]
    eq(a["metadata"]["service_account_name"], "beacon", "sa name")
    eq(a["metadata"]["service_account_namespace"], "apps", "sa ns")
    eq(a["policies"], ["default", "web"], "policies")
    eq(a["lease_duration"], 3, "ttl")
    eq(call("POST", "/v1/auth/kubernetes/login", {"role": "web", "jwt": "forged"}),
       (403, {"errors": ["permission denied"]}), "wrong jwt")
    eq(call("POST", "/v1/auth/kubernetes/login", {"role": "nope", "jwt": "good-jwt"}),
       (400, {"errors": ['invalid role name "nope"']}), "unknown role")
    eq(call("POST", "/v1/auth/kubernetes/login", {"role": "web"}), (400, {"errors": ["missing jwt"]}), "no jwt")


def test_lookup_self():
    fresh()
    a = login()
    st, b = call("GET", "/v1/auth/token/lookup-self", token=a["client_token"])
    eq(st, 200, "lookup-self")
    d = b["data"]
    for k in ("accessor", "creation_time", "creation_ttl", "expire_time", "explicit_max_ttl", "id",
              "issue_time", "meta", "num_uses", "path", "policies", "renewable", "ttl", "type"):
        check(k in d, "lookup field %s missing" % k)
    eq((d["accessor"], d["creation_ttl"], d["path"]), (a["accessor"], 3, "auth/approle/login"), "lookup values")
    check(1 <= d["ttl"] <= 3, "ttl %r" % d["ttl"])
    st, b = call("GET", "/v1/auth/token/lookup-self", headers={"Authorization": "Bearer root"})
    eq((st, b["data"]["policies"], b["data"]["ttl"], b["data"]["expire_time"]), (200, ["root"], 0, None),
       "root lookup via Bearer")


def test_renew_self_capped():
    fresh()
    a = login()                                     # ttl 3s, max_ttl 5s
    time.sleep(1.1)
    st, b = call("POST", "/v1/auth/token/renew-self", {"increment": "1m"}, token=a["client_token"])
    eq(st, 200, "renew-self")
    check(b["auth"]["lease_duration"] <= 4, "capped lease_duration %r" % b["auth"]["lease_duration"])
    check(b["warnings"] and CAP_RE.match(b["warnings"][0]), "cap warning %r" % b["warnings"])
    eq(CAP_RE.match(b["warnings"][0]).group(1), "1m", "humanized increment")
    eq(int(CAP_RE.match(b["warnings"][0]).group(2)), b["auth"]["lease_duration"], "max_ttl in warning")
    st, b = call("POST", "/v1/auth/token/renew-self", {}, token=a["client_token"])
    eq(st, 200, "renew-self without increment")
    check(b["auth"]["lease_duration"] <= 3, "role ttl or capped")
    ts = token_state(a["accessor"])
    eq(ts["renewal_count"], 2, "renewals recorded")
    check(0.9 <= ts["renewals"][0]["since_issue"] <= 2.5, "since_issue %r" % ts["renewals"][0])
    check(0.25 <= ts["renewals"][0]["elapsed_fraction"] <= 0.8, "elapsed_fraction %r" % ts["renewals"][0])
    check(abs(ts["max_expire_time"] - ts["created"] - 5) < 0.01, "hard max %r" % ts)
    eq(call("POST", "/v1/auth/token/renew-self", {}, token="root"),
       (400, {"errors": ["lease is not renewable"]}), "root renew")


def test_token_create_for_token_auth():
    fresh()
    st, b = call("POST", "/v1/auth/token/create", {"ttl": "2s", "explicit_max_ttl": "3s", "policies": ["app"]},
                 token="root")
    eq((st, b["auth"]["lease_duration"], b["auth"]["policies"]), (200, 2, ["app", "default"]), "create")
    tok = b["auth"]["client_token"]
    st, b = call("POST", "/v1/auth/token/renew-self", {"increment": 10}, token=tok)
    eq(st, 200, "renew created token")
    check(b["auth"]["lease_duration"] <= 3 and CAP_RE.match(b["warnings"][0]), "explicit max caps: %r" % b)
    eq(call("POST", "/v1/auth/token/create", {"policies": ["root"]}, token=tok)[0], 400, "no escalation")


def test_token_expiry():
    fresh()
    a = login("short", "short-secret")              # ttl 1s
    eq(call("GET", "/v1/auth/token/lookup-self", token=a["client_token"])[0], 200, "fresh token")
    time.sleep(1.3)
    eq(call("GET", "/v1/auth/token/lookup-self", token=a["client_token"]), (403, {"errors": [INVALID_TOKEN]}),
       "expired token")
    ts = token_state(a["accessor"])
    eq((ts["valid"], ts["revoked"]), (False, "expired"), "state")


def test_revoke_self():
    fresh()
    a = login()
    st, creds = call("GET", "/v1/database/creds/app", token=a["client_token"])
    eq(st, 200, "creds")
    eq(call("POST", "/v1/auth/token/revoke-self", token=a["client_token"]), (204, None), "revoke-self")
    eq(call("GET", "/v1/auth/token/lookup-self", token=a["client_token"])[0], 403, "revoked token")
    s = state()
    eq(s["counts"]["token_revocations"], 1, "revocation counted")
    lease = next(le for le in s["leases"] if le["lease_id"] == creds["lease_id"])
    eq((lease["revoked"], lease["credentials_valid"]), ("token-revoke-self", False), "child lease revoked")


def test_revoke_other_token():
    fresh()
    a = login()
    eq(call("POST", "/v1/auth/token/revoke", {}, token="root")[0], 400, "no token given")
    eq(call("POST", "/v1/auth/token/revoke", {"token": a["client_token"]}, token="root"), (204, None), "revoke")
    eq(call("GET", "/v1/auth/token/lookup-self", token=a["client_token"])[0], 403, "revoked token")
    eq(call("POST", "/v1/auth/token/revoke", {"token": "s.unknown"}, token="root"), (204, None), "unknown token")
    eq(state()["counts"]["token_revocations"], 1, "one revocation counted")


def test_setup_through_vault_api():
    # What a harness does on a fresh `vault server -dev` (tests/sim/vault-cli uses it).
    fresh()
    a = login()
    eq(call("POST", "/v1/sys/auth/approle", {"type": "approle"}, token=a["client_token"]),
       (403, {"errors": [ACL_DENIED]}), "non-root enable")
    eq(call("POST", "/v1/auth/approle/role/web", {}, token="root")[0], 404, "role API before enable")
    eq(call("POST", "/v1/sys/auth/approle", {"type": "approle"}, token="root"), (204, None), "enable approle")
    eq(call("POST", "/v1/sys/auth/approle", {"type": "approle"}, token="root"),
       (400, {"errors": ["path is already in use at approle/"]}), "enable twice")
    eq(call("POST", "/v1/auth/approle/role/nope/role-id", {"role_id": "x"}, token="root"),
       (400, {"errors": ['role "nope" does not exist']}), "unknown role")
    eq(call("POST", "/v1/auth/approle/role/web", {"token_ttl": "30s", "token_max_ttl": "1m",
                                                  "token_policies": ["default"]}, token="root"),
       (204, None), "create role")
    eq(call("POST", "/v1/auth/approle/role/web/role-id", {"role_id": "web-rid"}, token="root"),
       (204, None), "role-id")
    st, b = call("POST", "/v1/auth/approle/role/web/custom-secret-id", {"secret_id": "web-sid"}, token="root")
    eq((st, b["data"]["secret_id"]), (200, "web-sid"), "custom-secret-id")
    auth = login("web-rid", "web-sid")
    eq((auth["lease_duration"], auth["metadata"]), (30, {"role_name": "web"}), "login with the API-made role")
    eq(call("POST", "/v1/sys/mounts/kv", {"type": "kv", "options": {"version": "1"}}, token="root"),
       (400, {"errors": ["path is already in use at kv/"]}), "mount in use")
    eq(call("POST", "/v1/sys/mounts/kv1b", {"type": "kv", "options": {"version": "1"}}, token="root"),
       (204, None), "mount kv v1")
    eq(call("POST", "/v1/kv1b/app", {"k": "v"}, token="root"), (204, None), "write to the new mount")
    eq(call("GET", "/v1/kv1b/app", token="root")[1]["data"], {"k": "v"}, "read from the new mount")


def test_kv2_versions_metadata_delete():
    fresh()
    path = "/v1/secret/data/web/db"
    st, b = call("POST", path, {"data": {"user": "a"}}, token="root")
    eq((st, b["data"]["version"], b["data"]["deletion_time"], b["data"]["destroyed"]), (200, 1, "", False), "v1")
    eq(call("PUT", path, {"data": {"user": "b"}, "options": {"cas": 1}}, token="root")[1]["data"]["version"], 2, "v2")
    eq(call("POST", path, {"data": {"user": "c"}, "options": {"cas": 1}}, token="root"),
       (400, {"errors": ["check-and-set parameter did not match the current version"]}), "cas mismatch")
    eq(call("POST", path, {"user": "c"}, token="root"), (400, {"errors": ["no data provided"]}), "no data")
    st, b = call("GET", path, token="root")
    eq((st, b["data"]["data"], b["data"]["metadata"]["version"]), (200, {"user": "b"}, 2), "read latest")
    for k in ("created_time", "custom_metadata", "deletion_time", "destroyed", "version"):
        check(k in b["data"]["metadata"], "metadata field %s" % k)
    eq(call("GET", path + "?version=1", token="root")[1]["data"]["data"], {"user": "a"}, "read v1")
    eq(call("GET", path + "?version=9", token="root"), (404, {"errors": []}), "missing version")
    st, b = call("GET", "/v1/secret/metadata/web/db", token="root")
    eq((st, b["data"]["current_version"], sorted(b["data"]["versions"])), (200, 2, ["1", "2"]), "metadata")
    eq(call("GET", "/v1/secret/metadata/web?list=true", token="root")[1]["data"]["keys"], ["db"], "list")
    eq(call("DELETE", path, token="root")[0], 204, "soft delete")
    st, b = call("GET", path, token="root")
    eq(st, 404, "deleted read status")
    eq(b["data"]["data"], None, "deleted read data")
    check(b["data"]["metadata"]["deletion_time"], "deletion_time set")
    eq(call("GET", path + "?version=1", token="root")[0], 200, "older version still readable")
    eq(call("GET", "/v1/secret/data/nope", token="root"), (404, {"errors": []}), "missing key")
    st, b = call("POST", "/sim/kv2?path=web/db", {"data": {"user": "sim"}})
    eq((st, b["version"]), (200, 3), "sim write")
    eq(call("GET", path, token="root")[1]["data"]["data"], {"user": "sim"}, "sim write visible")
    eq(state()["kv2"]["web/db"], 3, "state kv2")


def test_kv1():
    fresh()
    eq(call("PUT", "/v1/kv/app/cfg", {"color": "blue"}, token="root"), (204, None), "write")
    st, b = call("GET", "/v1/kv/app/cfg", token="root")
    eq((st, b["data"], b["lease_duration"], b["renewable"], b["lease_id"]),
       (200, {"color": "blue"}, 2764800, False, ""), "read")
    call("POST", "/v1/kv/app/cfg", {"color": "red", "ttl": "1h"}, token="root")
    eq(call("GET", "/v1/kv/app/cfg", token="root")[1]["lease_duration"], 3600, "ttl-advised lease")
    eq(call("LIST", "/v1/kv/app", token="root")[1]["data"]["keys"], ["cfg"], "list")
    eq(call("DELETE", "/v1/kv/app/cfg", token="root")[0], 204, "delete")
    eq(call("GET", "/v1/kv/app/cfg", token="root"), (404, {"errors": []}), "gone")


def test_dynamic_creds_renew_revoke():
    fresh()
    st, c1 = call("GET", "/v1/database/creds/app", token="root")
    eq(st, 200, "creds")
    _, c2 = call("GET", "/v1/database/creds/app", token="root")
    check(c1["data"]["username"] != c2["data"]["username"], "fresh username each call")
    check(c1["data"]["password"] != c2["data"]["password"], "fresh password each call")
    check(c1["lease_id"].startswith("database/creds/app/"), "lease id %r" % c1["lease_id"])
    eq((c1["lease_duration"], c1["renewable"]), (2, True), "lease")
    time.sleep(1.1)
    st, b = call("PUT", "/v1/sys/leases/renew", {"lease_id": c1["lease_id"], "increment": 60}, token="root")
    eq((st, b["lease_id"], b["renewable"]), (200, c1["lease_id"], True), "renew")
    check(b["lease_duration"] <= 3, "capped %r" % b["lease_duration"])
    check(b["warnings"] and CAP_RE.match(b["warnings"][0]), "cap warning %r" % b["warnings"])
    st, b = call("PUT", "/v1/sys/leases/renew", {"lease_id": c2["lease_id"], "increment": 1}, token="root")
    eq((st, b["lease_duration"], b["warnings"]), (200, 1, None), "uncapped renew")
    eq(call("PUT", "/v1/sys/leases/renew", {"lease_id": "database/creds/app/bogus"}, token="root"),
       (400, {"errors": ["lease not found"]}), "unknown lease")
    eq(call("PUT", "/v1/sys/leases/revoke", {"lease_id": c1["lease_id"]}, token="root"), (204, None), "revoke")
    eq(call("PUT", "/v1/sys/leases/renew", {"lease_id": c1["lease_id"]}, token="root")[1],
       {"errors": ["lease not found"]}, "renew revoked")
    eq(call("PUT", "/v1/sys/leases/lookup", {"lease_id": c1["lease_id"]}, token="root"),
       (400, {"errors": ["invalid lease"]}), "lookup revoked")
    eq(call("GET", "/v1/database/creds/nope", token="root"), (400, {"errors": ["unknown role: nope"]}), "bad role")
    s = state()
    l1 = next(le for le in s["leases"] if le["lease_id"] == c1["lease_id"])
    eq((l1["revoked"], l1["credentials_valid"], l1["renewal_count"]), ("revoke", False, 1), "state lease")
    eq((s["counts"]["leases_issued"], s["counts"]["lease_renewals"], s["counts"]["lease_revocations"]),
       (2, 2, 1), "lease counters")


def test_lease_expiry():
    fresh()
    _, c = call("GET", "/v1/database/creds/quick", token="root")
    eq(c["lease_duration"], 1, "ttl")
    time.sleep(1.3)
    le = next(x for x in state()["leases"] if x["lease_id"] == c["lease_id"])
    eq((le["revoked"], le["credentials_valid"]), ("expired", False), "auto-revoked")
    eq(call("PUT", "/v1/sys/leases/renew", {"lease_id": c["lease_id"]}, token="root")[0], 400, "renew expired")


def test_permission_denied_shapes():
    fresh()
    call("POST", "/sim/kv2?path=web/db", {"user": "x"})
    a = login("denied", "denied-secret")
    eq(call("GET", "/v1/secret/data/web/db", token=a["client_token"]), (403, {"errors": [ACL_DENIED]}), "acl kv2")
    eq(call("GET", "/v1/kv/anything", token=a["client_token"]), (403, {"errors": [ACL_DENIED]}), "acl kv1")
    eq(call("GET", "/v1/auth/token/lookup-self", token=a["client_token"])[0], 200, "other paths allowed")
    eq(call("GET", "/v1/secret/data/web/db"), (403, {"errors": ["permission denied"]}), "no token")
    eq(call("GET", "/v1/secret/data/web/db", token="bogus"), (403, {"errors": [INVALID_TOKEN]}), "bad token")
    eq(call("GET", "/v1/nomount/x", token="root"),
       (404, {"errors": ['no handler for route "nomount/x". route entry not found.']}), "no route")
    eq(call("POST", "/v1/secret/data/x", b"{not json", token="root")[0], 400, "bad json")


def test_namespace_header_recorded():
    fresh()
    eq(call("GET", "/v1/auth/token/lookup-self", token="root", headers={"X-Vault-Namespace": "team-a"})[0],
       200, "OSS ignores the header")
    s = state()
    eq((s["last_namespace"], s["namespaces_seen"]), ("team-a", {"team-a": 1}), "recorded")


def test_namespaces_enforced():
    SIMS["ns"] = Sim(["--namespaces", "ns1,ns2", "--approle", "r1:s1:ttl=30s"])
    try:
        st, b = call("GET", "/v1/sys/health", sim="ns")
        eq((st, b["version"].endswith("+ent")), (200, True), "health without namespace")
        eq(call("POST", "/v1/auth/approle/login", {"role_id": "r1", "secret_id": "s1"}, sim="ns")[0], 404,
           "login without namespace")
        eq(call("GET", "/v1/secret/data/x", token="root", sim="ns", headers={"X-Vault-Namespace": "zz"})[0],
           404, "unknown namespace")
        a = login(sim="ns", headers={"X-Vault-Namespace": "ns1"})
        h1 = {"X-Vault-Namespace": "ns1"}
        eq(call("POST", "/v1/secret/data/app", {"data": {"k": 1}}, token=a["client_token"], sim="ns",
                headers=h1)[0], 200, "write in ns1")
        eq(call("GET", "/v1/ns1/secret/data/app", token=a["client_token"], sim="ns")[1]["data"]["data"], {"k": 1},
           "path-prefix namespace")
        eq(call("GET", "/v1/secret/data/app", token=a["client_token"], sim="ns",
                headers={"X-Vault-Namespace": "ns2"})[0], 403, "ns1 token in ns2")
        eq(call("GET", "/v1/secret/data/app", token="root", sim="ns", headers={"X-Vault-Namespace": "ns2"})[0],
           404, "data is per namespace")
        eq(call("GET", "/sim/state", sim="ns")[1]["last_namespace"], "ns2", "last namespace")
    finally:
        SIMS.pop("ns").stop()


def test_fault_fail():
    fresh()
    eq(call("POST", "/sim/fail?count=2&status=502")[0], 200, "arm")
    eq(call("GET", "/v1/sys/health"), (502, {"errors": ["simulated failure"]}), "fail 1")
    eq(call("GET", "/v1/auth/token/lookup-self", token="root")[0], 502, "fail 2")
    eq(call("GET", "/v1/sys/health")[0], 200, "recovered")
    eq(state()["counts"]["simulated_failures"], 2, "counted")
    call("POST", "/sim/fail?count=1&status=500&path=/v1/secret/")
    eq(call("GET", "/v1/sys/health")[0], 200, "path filter skips others")
    eq(call("GET", "/v1/secret/data/x", token="root")[0], 500, "path filter hits")


def test_fault_delay():
    fresh()
    call("POST", "/sim/delay?ms=300")
    t0 = time.time()
    eq(call("GET", "/v1/sys/health")[0], 200, "delayed ok")
    check(time.time() - t0 >= 0.28, "delay applied")
    call("POST", "/sim/delay?ms=0")
    t0 = time.time()
    call("GET", "/v1/sys/health")
    check(time.time() - t0 < 0.25, "delay cleared")


def test_sim_reset_and_state():
    fresh()
    a = login()
    call("POST", "/sim/kv2?path=p", {"a": "b"})
    call("GET", "/v1/secret/data/p", token="root")
    s = state()
    eq(s["requests"].get("GET /v1/secret/data/p"), 1, "request count per path")
    eq(s["request_paths"].get("/v1/auth/approle/login"), 1, "request_paths")
    check(any(r["path"] == "/v1/secret/data/p" and r["status"] == 200 for r in s["request_log"]), "request log")
    fresh()
    eq(call("GET", "/v1/auth/token/lookup-self", token=a["client_token"])[0], 403, "token gone after reset")
    eq(call("GET", "/v1/secret/data/p", token="root")[0], 404, "kv gone after reset")
    eq(state()["counts"]["logins"], 0, "counters reset")
    eq(call("POST", "/sim/approle?spec=new:new-secret:ttl=10s")[0], 200, "add approle at runtime")
    eq(login("new", "new-secret")["lease_duration"], 10, "runtime approle works")
    eq(call("POST", "/sim/revoke?accessor=" + token_state_by_role("new")["accessor"])[0], 200, "operator revoke")


def token_state_by_role(role):
    return next(t for t in state()["tokens"] if t["role"] == role)


def test_sigterm_graceful():
    s = Sim([])
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    rc = s.proc.wait(5)
    eq(rc, 0, "exit code after SIGTERM")
    check(time.time() - t0 < 3, "stopped promptly")


def test_no_default_policy():
    # vault/policy_store.go defaultPolicy grants lookup-self/renew-self/revoke-self.
    fresh()
    eq(call("POST", "/sim/approle?spec=nd:nd-secret:ttl=60s:no_default_policy=1")[0], 200, "add role")
    a = login("nd", "nd-secret")
    eq(a["policies"], [], "no default policy")
    st, b = call("GET", "/v1/auth/token/lookup-self", token=a["client_token"])
    eq((st, b["errors"]), (403, [ACL_DENIED]), "lookup-self denied by ACL, not invalid token")
    st, b = call("POST", "/v1/auth/token/create", {"policies": ["x"], "no_default_policy": True},
                 token="root")
    eq(b["auth"]["policies"], ["x"], "create without default")


def test_ui_mounts_and_kv2_path_without_data():
    fresh()
    st, b = call("GET", "/v1/sys/internal/ui/mounts/secret/web/db", token="root")
    eq((st, b["data"]["path"], b["data"]["type"], b["data"]["options"]), (200, "secret/", "kv", {"version": "2"}),
       "KV v2 mount info")
    st, b = call("GET", "/v1/sys/internal/ui/mounts/kv/data/x", token="root")
    eq((st, b["data"]["path"], b["data"]["options"]), (200, "kv/", {"version": "1"}), "KV v1 mount info")
    st, b = call("GET", "/v1/sys/internal/ui/mounts/nowhere/x", token="root")
    eq(st, 403, "no mount: preflight 403")
    check("preflight capability check returned 403" in b["errors"][0], b)
    tok = login("denied", "denied-secret")["client_token"]
    eq(call("GET", "/v1/sys/internal/ui/mounts/secret/x", token=tok)[0], 403, "no access to the mount")
    # vault-plugin-secrets-kv pathInvalid: 404, a warning and no errors.
    st, b = call("GET", "/v1/secret/web/db", token="root")
    eq(st, 404, "KV v2 read without data/")
    check("errors" not in b and b["warnings"][0].startswith("Invalid path for a versioned K/V"), b)


def test_static_creds_rotate():
    fresh()
    eq(call("POST", "/sim/db-static-role?spec=st:rotation_period=2s")[0], 200, "add static role")
    st, b = call("GET", "/v1/database/static-creds/st", token="root")
    eq((st, b["lease_id"], b["lease_duration"], b["data"]["rotation_period"]), (200, "", 0, 2), "static creds")
    check(0 <= b["data"]["ttl"] <= 2 and b["data"]["username"] == "st", b)
    time.sleep(b["data"]["ttl"] + 0.2)
    st, b2 = call("GET", "/v1/database/static-creds/st", token="root")
    check(b2["data"]["password"] != b["data"]["password"], "rotated")
    eq(call("GET", "/v1/database/static-creds/nope", token="root")[0], 400, "unknown role")


def test_standby_redirects():
    # vault/http/handler.go respondStandby: 307, Location = active api_addr + path + query, no body.
    import http.client
    proc = subprocess.Popen([sys.executable, SIM, "--port", "0", "--standby"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        active = int(proc.stdout.readline().split()[1])
        line = proc.stdout.readline()
        check(line.startswith("STANDBY "), "second line names the standby: %r" % line)
        standby = int(line.split()[1])

        def raw(method, path, body=None, port=standby):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request(method, path, body=body, headers={"X-Vault-Token": "root"})
            r = c.getresponse()
            out = (r.status, r.getheader("Location"), r.read())
            c.close()
            return out
        st, loc, body = raw("POST", "/v1/auth/approle/login?x=1", b'{"role_id":"a"}')
        eq((st, loc, body), (307, "http://127.0.0.1:%d/v1/auth/approle/login?x=1" % active, b""),
           "standby answer")
        eq(raw("GET", "/v1/sys/health")[0], 429, "standby health")
        eq(raw("GET", "/v1/sys/health?standbycode=200")[0], 200, "standbycode")
        eq(raw("POST", "/sim/standby?target=self")[0], 200, "target=self")
        eq(raw("GET", "/v1/secret/data/x")[1], "http://127.0.0.1:%d/v1/secret/data/x" % standby,
           "redirect to itself")
        eq(raw("GET", "/sim/state", port=active)[2] and
           json.loads(raw("GET", "/sim/state", port=active)[2])["counts"]["standby_redirects"], 2,
           "redirects counted")
    finally:
        proc.terminate()
        proc.wait(5)


def main():
    SIMS["main"] = Sim(MAIN_ARGS)
    passed = failed = 0
    t0 = time.time()
    try:
        for name, fn in [(n, f) for n, f in globals().items() if n.startswith("test_") and callable(f)]:
            try:
                fn()
                print("PASS %s" % name, flush=True)
                passed += 1
            except Exception as e:
                why = str(e) if isinstance(e, AssertionError) else traceback.format_exc().strip().splitlines()[-1]
                print("FAIL %s: %s" % (name, why.replace("\n", "\\n")), flush=True)
                failed += 1
    finally:
        for s in list(SIMS.values()):
            s.stop()
    print("%d passed, %d failed" % (passed, failed))
    if os.environ.get("VAULT_SIM_TEST_TIMING"):
        print("elapsed %.1fs" % (time.time() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
