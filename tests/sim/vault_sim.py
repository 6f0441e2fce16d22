#!/usr/bin/env python3
"""vault_sim.py - a faithful-enough HashiCorp Vault dev server for beacon's tests.

Python 3 standard library only.  One threaded HTTP server on 127.0.0.1, one state lock.

    python3 tests/sim/vault_sim.py --port 0 \
        --approle ROLE_ID:SECRET_ID:ttl=60s:max_ttl=300s:policies=p1,p2[:num_uses=1][:name=web]
                  [:no_default_policy=1] \
        --k8s-role ROLE:JWT:ttl=60s:max_ttl=300s[:policies=..][:sa=NAME][:sa_namespace=NS] \
        --db-role NAME:ttl=30s:max_ttl=120s --db-static-role NAME:rotation_period=30s \
        [--root-token root] [--kv1-mount kv] [--namespaces ns1,ns2] [--verbose]
        [--standby [--standby-tls CERT:KEY]]

With --standby a second node of an HA pair listens on another port (second stdout line
"STANDBY <port>"): a standby that cannot forward, answering 307 to this node (StandbyHandler).

With --port 0 a free port is chosen; the first stdout line is always "LISTENING <port>".
Durations are "30s", "5m", "1h30m", "500ms" or integer seconds.  Time is real time.

Mounts (as `vault server -dev` plus the extras beacon needs): KV v2 at secret/, KV v1 at kv/,
approle and kubernetes auth, a database engine at database/.  Error bodies, status codes and
warning strings are copied from Vault's docs/source; each handler cites what it imitates.
Vault endpoints: GET|HEAD sys/health, GET sys/seal-status, PUT sys/seal, PUT sys/unseal,
POST auth/approle/login, POST auth/kubernetes/login, GET auth/token/lookup-self,
POST auth/token/{lookup,renew-self,revoke-self,revoke,create}, GET|POST|PUT|DELETE secret/data/:p,
GET|LIST|DELETE secret/metadata/:p, GET|PUT|POST|DELETE|LIST kv/:p, GET database/creds/:role,
GET database/static-creds/:role, GET sys/internal/ui/mounts/:path,
PUT|POST sys/leases/{renew,revoke,lookup} (+ sys/renew/:id, sys/revoke/:id); for setup as on a
real dev server (root only): POST sys/auth/approle, POST sys/mounts/:path (KV v1),
POST auth/approle/role/:name, .../role-id, .../custom-secret-id. tests/sim/vault-cli starts
this simulator from the argv of `vault server -dev`, without the kv/ mount, as Vault would.

Fault/inspection controls under /sim/ (not part of Vault, no token needed):
  POST /sim/seal, /sim/unseal            seal state (real Vault: PUT /v1/sys/seal, /v1/sys/unseal
                                         - the sim implements those too; unseal key: --unseal-key)
  POST /sim/fail?count=N&status=S[&path=PREFIX]  next N /v1 requests -> S {"errors":["simulated failure"]}
  POST /sim/delay?ms=M                   delay every /v1 request by M ms (0 clears)
  POST /sim/standby?target=self|active   where the standby's 307 points (self: a second redirect)
  POST /sim/mangle?path=/v1/PREFIX       body {"lease_duration": 9223372036854775807, "auth.x": ..}:
                                         set those (dotted) fields in every 2xx answer under
                                         PREFIX - a broken or hostile server; {} clears
  POST /sim/reset                        back to the start-up state (keeps CLI config)
  POST /sim/kv2?path=p[&namespace=ns][&mount=team/kv]  body = data map (or {"data":{...}}): write
                                         a KV v2 version (mount: an --kv2-extra-mount)
  POST /sim/kv1?path=p[&namespace=ns]    body = data map: write a KV v1 secret
  POST /sim/approle|/sim/k8s-role|/sim/db-role|/sim/db-static-role?spec=SPEC   add a role (same
                                         syntax as the CLI flag)
  POST /sim/revoke?accessor=A | ?lease_id=L   revoke out-of-band, as an operator would
  GET  /sim/state                        tokens (ttl left, renew history), leases, counters,
                                         request counts per path, last X-Vault-Namespace, request log

Running against a real Vault instead (VAULT_BIN set): a harness would start
    $VAULT_BIN server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:P
wait for GET /v1/sys/health == 200, then (with X-Vault-Token: root) do the real setup the sim
does from flags: POST /v1/sys/auth/approle {"type":"approle"}, POST auth/approle/role/NAME
{token_ttl, token_max_ttl, token_policies, secret_id_num_uses}, PUT .../role-id {role_id},
POST .../custom-secret-id {secret_id}; POST /v1/sys/mounts/kv {"type":"kv","options":{"version":"1"}};
kubernetes auth needs a reachable Kubernetes TokenReview API (practically: skip those tests);
the database engine needs a real database plugin + DB (skip, or use a plugin such as
`vault-plugin-database-redis` only if available).  Namespaces need Vault Enterprise (skip).
Controls with NO real-Vault equivalent - tests must skip them under VAULT_BIN: /sim/fail,
/sim/delay, /sim/reset, /sim/state (partial substitutes: auth/token/lookup-accessor,
sys/leases/lookup, a file audit device), /sim/revoke (use auth/token/revoke-accessor or
sys/leases/revoke with the root token), /sim/kv2 and /sim/kv1 (use the real write with the root
token), /sim/approle etc. (use the real role APIs).  Seal/unseal exists in real Vault:
PUT /v1/sys/seal with the root token, PUT /v1/sys/unseal {"key": <dev unseal key printed at start>}.

Known simplifications: no ACL language - every valid token may do everything except that a
token holding a "deny" policy (--deny-policy NAME=prefix,..; default deny-secret=secret/,kv/) gets
Vault's ACL-denied body on those prefixes and only root may PUT sys/seal; tokens are "service"
tokens, no num_uses, no periodic tokens, no response wrapping, no entities; the k8s JWT is
compared as an opaque string (no TokenReview); namespaces (Enterprise) are a flat list: with
--namespaces, every path except sys/health|seal-status|seal|unseal must carry a listed namespace
(X-Vault-Namespace header or /v1/<ns>/... prefix), else 404 "no handler for route" (what Vault
answers for a path under no mount); login tokens are bound to their namespace, the root token
works in all; KV data and leases are kept per namespace.  Without --namespaces the header is
recorded and otherwise ignored, as Vault OSS does.  Token/lease expiry is hard-capped at
creation + max_ttl (Vault truncates to whole seconds and can overrun by <1 s).
"""
import argparse
import json
import re
import secrets
import signal
import string
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

SYS_DEFAULT_TTL = SYS_MAX_TTL = 768 * 3600     # 768h, Vault's default_lease_ttl / max_lease_ttl
KV1_DEFAULT_LEASE = 2764800                    # kv-v1 read "lease_duration" (768h) unless data.ttl
KV2_MAX_VERSIONS = 10                          # kv-v2 docs: "When 0 is used ... Vault will keep 10"
SEALED = "Vault is sealed"                     # sdk/helper/consts ErrSealed
PERM = "permission denied"
# Vault >= 1.17 (docs/concepts/tokens.mdx "Error responses"; PR #26687): a revoked, expired or
# otherwise invalid token -> 403 with "invalid token" and "permission denied" (a 2-item multierror).
INVALID_TOKEN = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"
# ACL denial with a valid token: CheckToken appends ErrPermissionDenied to a multierror and
# handleRequest returns logical.ErrorResponse(ctErr.Error()) (vault/request_handling.go).
ACL_DENIED = "1 error occurred:\n\t* permission denied\n\n"
ALNUM = string.ascii_letters + string.digits


class VaultError(Exception):
    def __init__(self, status, errors=None, body=None):
        super().__init__(status)
        self.status, self.body = status, body if body is not None else {"errors": errors or []}


def rand(n):
    return "".join(secrets.choice(ALNUM) for _ in range(n))


_DUR = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_duration(v):
    """Seconds (float) from 30 / "30" / "30s" / "5m" / "1h30m" / "500ms" (Go ParseDuration-ish)."""
    if v is None or v == "":
        return 0.0
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    s = str(v).strip()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    pos, total = 0, 0.0
    for m in _DUR.finditer(s):
        if m.start() != pos:
            break
        total, pos = total + float(m.group(1)) * _UNITS[m.group(2)], m.end()
    if pos != len(s) or not s:
        raise ValueError("invalid duration %r" % v)
    return total


def go_duration(sec):
    """time.Duration.String() for whole seconds."""
    sec = int(sec)
    if sec == 0:
        return "0s"
    sign, sec = ("-", -sec) if sec < 0 else ("", sec)
    h, rem = divmod(sec, 3600)
    m, s = divmod(rem, 60)
    if h:
        return "%s%dh%dm%ds" % (sign, h, m, s)
    if m:
        return "%s%dm%ds" % (sign, m, s)
    return "%s%ds" % (sign, s)


def human_duration(sec):
    # sdk/framework/lease.go humanDuration: drop zero elements ("1m0s"->"1m", "1h0m0s"->"1h").
    s = go_duration(sec)
    if s.endswith("m0s"):
        s = s[:-2]
    i = s.find("h0m")
    if i > 0:
        s = s[:i + 1] + s[i + 3:]
    return s


def rfc3339(t):
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


def calculate_ttl(increment, backend_ttl, backend_max, explicit_max, start, now):
    """Port of sdk/framework/lease.go CalculateTTL (non-periodic branch).

    Returns (ttl seconds, warnings, hard expiry epoch).  Vault truncates start/now to whole
    seconds; the sim uses exact times and rounds the remaining max TTL, so the reported
    lease_duration always matches the real (hard-capped) expiry."""
    max_ttl = SYS_MAX_TTL
    if 0 < backend_max < max_ttl:
        max_ttl = backend_max
    if 0 < explicit_max < max_ttl:
        max_ttl = explicit_max
    ttl = increment if increment > 0 else backend_ttl if backend_ttl > 0 else SYS_DEFAULT_TTL
    max_valid_f = start + max_ttl - now
    if max_valid_f <= 0:
        raise VaultError(500, ["past the max TTL, cannot renew"])
    warnings = []
    max_valid = max(1, int(round(max_valid_f)))
    if max_valid - ttl < 0:
        warnings.append('TTL of "%s" exceeded the effective max_ttl of "%s"; TTL value is capped '
                        "accordingly" % (human_duration(ttl), human_duration(max_valid)))
        ttl = max_valid
    return int(ttl), warnings, start + max_ttl


def parse_spec(kind, spec):
    """approle: ROLE_ID:SECRET_ID[:k=v]..  k8s: ROLE:JWT[:k=v]..  db: NAME[:k=v].."""
    parts = spec.split(":")
    npos = {"approle": 2, "k8s": 2, "db": 1, "static": 1}[kind]
    if len(parts) < npos or any("=" in p for p in parts[:npos]):
        raise ValueError("bad %s spec %r" % (kind, spec))
    opts = {}
    for p in parts[npos:]:
        k, _, v = p.partition("=")
        opts[k.strip()] = v.strip()
    r = {"ttl": int(parse_duration(opts.get("ttl"))), "max_ttl": int(parse_duration(opts.get("max_ttl"))),
         "policies": [p for p in opts.get("policies", "").split(",") if p]}
    if kind == "approle":
        r.update(role_id=parts[0], secret_id=parts[1], name=opts.get("name", parts[0]),
                 num_uses=int(opts.get("num_uses", opts.get("secret_id_num_uses", 0)) or 0),
                 no_default_policy=opts.get("no_default_policy", "") in ("1", "true"))
    elif kind == "k8s":
        r.update(name=parts[0], jwt=parts[1], sa=opts.get("sa", "default"),
                 sa_namespace=opts.get("sa_namespace", "default"), uid=str(uuid.uuid4()))
    elif kind == "static":
        r.update(name=parts[0], period=int(parse_duration(opts.get("rotation_period", "24h"))),
                 username=opts.get("username", parts[0]))
    else:
        r.update(name=parts[0])
    return r


class Sim:
    def __init__(self, cfg):
        self.cfg, self.lock = cfg, threading.RLock()
        self.deny = {}
        for d in cfg.deny_policy or ["deny-secret=secret/,kv/"]:
            name, _, prefixes = d.partition("=")
            self.deny[name] = [p for p in prefixes.split(",") if p]
        self.namespaces = None
        if cfg.namespaces:
            self.namespaces = {("" if n.strip("/") == "root" else n.strip("/"))
                               for n in cfg.namespaces.split(",") if n.strip()}
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self):
        with self.lock:
            c = self.cfg
            self.sealed = bool(c.sealed)
            self.cluster_id = str(uuid.uuid4())
            self.cluster_name = "vault-cluster-" + secrets.token_hex(4)
            self.tokens, self.leases, self.kv1, self.kv2 = {}, {}, {}, {}
            self.approles = {r["role_id"]: dict(r, uses_left=r["num_uses"]) for r in
                             (parse_spec("approle", s) for s in c.approle or [])}
            self.role_defs = {}        # AppRoles made through the role API, by name
            self.auth_enabled = set()  # auth methods enabled through sys/auth
            self.kv1_mount = c.kv1_mount
            self.k8s_roles = {r["name"]: r for r in (parse_spec("k8s", s) for s in c.k8s_role or [])}
            self.db_roles = {r["name"]: r for r in (parse_spec("db", s) for s in c.db_role or [])}
            self.static_roles = {}
            for r in (parse_spec("static", s) for s in c.db_static_role or []):
                self.add_static_role(r)
            self.lockouts = {}
            self.fail = {"count": 0, "status": 500, "path": ""}
            self.mangles = {}          # /sim/mangle: path prefix -> {"a.b": value} for 2xx answers
            self.delay_ms = 0
            self.counts = {k: 0 for k in ("logins", "approle_logins", "kubernetes_logins",
                                          "login_failures", "token_renewals", "token_revocations",
                                          "tokens_expired", "leases_issued", "lease_renewals",
                                          "lease_revocations", "leases_expired", "simulated_failures",
                                          "standby_redirects")}
            self.standby_target = "active"   # /sim/standby?target=self: a standby that points at itself
            self.requests, self.request_paths, self.ns_seen = {}, {}, {}
            self.last_namespace, self.request_log = None, []
            self.started = time.time()
            self.add_token(c.root_token, kind="root", policies=["root"], path="auth/token/root",
                           display="root", ttl=0, expire=None, renewable=False, ns="")

    def add_token(self, tid, kind, policies, path, display, ttl, expire, renewable, ns,
                  role_ttl=0, max_ttl=0, explicit_max=0, meta=None, role=None, hard=None, created=None):
        now = created or time.time()
        t = {"id": tid, "accessor": rand(24), "kind": kind, "policies": policies, "path": path,
             "display_name": display, "creation_ttl": ttl, "created": now, "expire": expire,
             "hard_expire": hard, "renewable": renewable, "namespace": ns, "role_ttl": role_ttl,
             "max_ttl": max_ttl, "explicit_max_ttl": explicit_max, "meta": meta, "role": role,
             "revoked": None, "revoked_at": None, "renewals": [], "last_renewal": None, "uses": 0}
        self.tokens[tid] = t
        return t

    def sweep(self):
        """Expiration manager: revoke expired tokens (and their leases) and expired leases."""
        now = time.time()
        with self.lock:
            for t in self.tokens.values():
                if t["revoked"] is None and t["expire"] is not None and now >= t["expire"]:
                    self.revoke_token(t, "expired")
                    self.counts["tokens_expired"] += 1
            for lease in self.leases.values():
                if lease["revoked"] is None and now >= lease["expire"]:
                    self.revoke_lease(lease, "expired")
                    self.counts["leases_expired"] += 1

    def revoke_token(self, t, reason):
        # api-docs/auth/token.mdx "Revoke a Token (Self)": all dynamic secrets generated with it
        # are also revoked.
        t["revoked"], t["revoked_at"] = reason, time.time()
        for lease in self.leases.values():
            if lease["token"] == t["id"] and lease["revoked"] is None:
                self.revoke_lease(lease, "token-" + reason)

    @staticmethod
    def revoke_lease(lease, reason):
        lease["revoked"], lease["revoked_at"], lease["credentials_valid"] = reason, time.time(), False

    # --------------------------------------------------------------- envelope
    @staticmethod
    def envelope(data=None, auth=None, warnings=None, lease_id="", lease_duration=0,
                 renewable=False, mount_type=""):
        # Standard response: api-docs/index "HTTP API" + logical.HTTPResponse field order.
        return {"request_id": str(uuid.uuid4()), "lease_id": lease_id, "renewable": renewable,
                "lease_duration": lease_duration, "data": data, "wrap_info": None,
                "warnings": warnings or None, "auth": auth, "mount_type": mount_type}

    def auth_block(self, t, lease_duration):
        return {"client_token": t["id"], "accessor": t["accessor"], "policies": t["policies"],
                "token_policies": t["policies"], "metadata": t["meta"],
                "lease_duration": lease_duration, "renewable": t["renewable"], "entity_id": "",
                "token_type": "service", "orphan": True, "mfa_requirement": None, "num_uses": 0}

    # ------------------------------------------------------------ token check
    def check_token(self, hdrs, ns):
        tid = hdrs.get("X-Vault-Token") or ""
        authz = hdrs.get("Authorization") or ""
        if not tid and authz.startswith("Bearer "):
            tid = authz[7:].strip()
        if not tid:
            # fetchACLTokenEntryAndEntity: missing token -> ErrPermissionDenied, returned as a plain
            # ErrorResponse -> 403 {"errors":["permission denied"]}.
            raise VaultError(403, [PERM])
        t = self.tokens.get(tid)
        if t is not None and t["revoked"] is None and t["expire"] is not None and time.time() >= t["expire"]:
            self.revoke_token(t, "expired")
            self.counts["tokens_expired"] += 1
        if t is None or t["revoked"] is not None:
            raise VaultError(403, [PERM if self.cfg.legacy_invalid_token else INVALID_TOKEN])
        if t["namespace"] and t["namespace"] != ns:
            raise VaultError(403, [ACL_DENIED])   # token of another (non-parent) namespace
        t["uses"] += 1
        return t

    # vault/policy_store.go defaultPolicy: the "default" policy is what grants a token its own
    # auth/token/lookup-self, renew-self and revoke-self; a token created without it
    # (no_default_policy / token_no_default_policy) gets the ACL-denied body there.
    DEFAULT_POLICY_PATHS = ("auth/token/lookup-self", "auth/token/renew-self", "auth/token/revoke-self")

    def check_acl(self, t, rel):
        if "root" in t["policies"]:
            return
        if "default" not in t["policies"] and rel in self.DEFAULT_POLICY_PATHS:
            raise VaultError(403, [ACL_DENIED])
        for p in t["policies"]:
            if any(rel.startswith(pre) for pre in self.deny.get(p, [])):
                raise VaultError(403, [ACL_DENIED])

    # ------------------------------------------------------------ HTTP entry
    def handle_v1(self, method, rawpath, query, body, hdrs):
        rel = rawpath[len("/v1/"):]
        hdr_ns = hdrs.get("X-Vault-Namespace")
        with self.lock:
            key = "%s %s" % (method, rawpath)
            self.requests[key] = self.requests.get(key, 0) + 1
            self.request_paths[rawpath] = self.request_paths.get(rawpath, 0) + 1
            if hdr_ns is not None:
                self.last_namespace = hdr_ns
                self.ns_seen[hdr_ns] = self.ns_seen.get(hdr_ns, 0) + 1
            delay = self.delay_ms
        if delay:
            time.sleep(delay / 1000.0)
        with self.lock:
            f = self.fail
            if f["count"] > 0 and rawpath.startswith(f["path"] or "/v1/"):
                f["count"] -= 1
                self.counts["simulated_failures"] += 1
                return f["status"], {"errors": ["simulated failure"]}, None
            try:
                status, obj, extra = self.route(method, rel, query, body, hdrs, hdr_ns)
            except VaultError as e:
                return e.status, e.body, None
            for prefix, fields in self.mangles.items():
                if 200 <= status < 300 and isinstance(obj, dict) and rawpath.startswith(prefix):
                    for dotted, value in fields.items():
                        node, keys = obj, dotted.split(".")
                        for k in keys[:-1]:
                            node = node.get(k) if isinstance(node, dict) else None
                        if isinstance(node, dict):
                            node[keys[-1]] = value
            return status, obj, extra

    def route(self, method, rel, q, body, hdrs, hdr_ns):
        list_op = method == "LIST" or (method == "GET" and q.get("list", [""])[0] in ("true", "1"))
        op = "list" if list_op else {"GET": "read", "HEAD": "read", "POST": "write", "PUT": "write",
                                     "DELETE": "delete", "PATCH": "patch"}.get(method, "?")
        if rel == "sys/health" and op == "read":
            return self.sys_health(q)
        if rel == "sys/seal-status" and op == "read":
            return 200, self.seal_status(), None
        if rel == "sys/unseal" and op == "write":
            return self.sys_unseal(body)
        # switchedLockHandleRequest: `if c.Sealed() { return nil, consts.ErrSealed }` -> 503
        # {"errors":["Vault is sealed"]}; health, seal-status and unseal are served while sealed.
        if self.sealed:
            raise VaultError(503, [SEALED])
        ns = ""
        if self.namespaces is not None and rel != "sys/seal":
            ns = (hdr_ns or "").strip("/")
            first = rel.split("/", 1)[0]
            if not hdr_ns and first in self.namespaces and first:
                ns, rel = first, rel[len(first) + 1:]
            ns = "" if ns == "root" else ns
            if ns not in self.namespaces:
                raise VaultError(404, ['no handler for route "%s%s". route entry not found.'
                                       % (ns + "/" if ns else "", rel)])
        if rel == "auth/approle/login" and op == "write":
            return self.approle_login(body, ns)
        if rel == "auth/kubernetes/login" and op == "write":
            return self.k8s_login(body, ns)
        t = self.check_token(hdrs, ns)
        if rel.startswith("sys/internal/ui/mounts/") and op == "read":
            if self.cfg.no_ui_mounts:   # the sys backend's answer to a path it does not have
                raise VaultError(404, ["unsupported path"])
            return self.ui_mount(rel[len("sys/internal/ui/mounts/"):], t)
        self.check_acl(t, rel)
        for extra in self.cfg.kv2_extra_mount or []:
            m = extra.strip("/") + "/"
            if rel.startswith(m):
                return self.kv2_api(op, rel[len(m):], q, body, ns, m)
        kv2 = self.cfg.kv2_mount.strip("/") + "/"
        kv1 = self.kv1_mount.strip("/") + "/" if self.kv1_mount else None
        if rel.startswith(("sys/auth/", "sys/mounts/")) and op == "write":
            return self.sys_enable(rel, body, t)
        if rel.startswith("auth/approle/role/") and op == "write":
            return self.approle_role_api(rel[len("auth/approle/role/"):], body, t)
        if rel == "sys/seal" and op == "write":
            if "root" not in t["policies"]:
                raise VaultError(403, [ACL_DENIED])
            self.sealed = True
            return 204, None, None
        if rel.startswith("auth/token/"):
            return self.token_api(op, rel[len("auth/token/"):], body, t, ns)
        if rel in ("sys/leases/renew", "sys/renew") or rel.startswith(("sys/leases/renew/", "sys/renew/")):
            if op == "write":
                return self.lease_renew(rel, body, ns)
        if rel in ("sys/leases/revoke", "sys/revoke") or rel.startswith(("sys/leases/revoke/", "sys/revoke/")):
            if op == "write":
                return self.lease_revoke(rel, body, ns)
        if rel == "sys/leases/lookup" and op == "write":
            return self.lease_lookup(body, ns)
        if rel.startswith(kv2):
            return self.kv2_api(op, rel[len(kv2):], q, body, ns, kv2)
        if kv1 and rel.startswith(kv1) and rel != kv1:
            return self.kv1_api(op, rel[len(kv1):], body, ns)
        if kv1 and rel == kv1 and op == "list":
            return self.kv1_api(op, "", body, ns)
        if rel.startswith("database/creds/") and op == "read":
            return self.db_creds(rel[len("database/creds/"):], t, ns)
        if rel.startswith("database/static-creds/") and op == "read":
            return self.static_creds(rel[len("database/static-creds/"):])
        # router: no mount matches -> 404 "no handler for route %q. route entry not found."
        raise VaultError(404, ['no handler for route "%s". route entry not found.' % rel])

    # ------------------------------------------------------------------- sys
    # vault/logical_system.go pathInternalUIMountRead (what `vault kv` and Vault Agent's
    # templates use to detect a KV version): GET sys/internal/ui/mounts/<path> -> data =
    # mountInfo of the longest mount matching path, with "path" = the mount path ("secret/",
    # "team/kv/") and "options" ({"version": "2"} for KV v2).  No mount, or a token with no
    # access to anything under it (hasMountAccess) -> 403 "preflight capability check returned
    # 403, please ensure client's policies grant access to path ..." (not ACL-checked itself: it
    # is in the sys backend's unauthenticated paths).  --no-ui-mounts: an older Vault without it.
    def ui_mount(self, path, t):
        path = path.lstrip("/")
        path = path if path.endswith("/") else path + "/"
        denied = VaultError(403, ["preflight capability check returned 403, please ensure client's "
                                  "policies grant access to path \"%s\"" % path])
        mounts = {self.cfg.kv2_mount.strip("/") + "/": ("kv", {"version": "2"}),
                  "database/": ("database", None), "cubbyhole/": ("cubbyhole", None)}
        for extra in self.cfg.kv2_extra_mount or []:
            mounts[extra.strip("/") + "/"] = ("kv", {"version": "2"})
        if self.kv1_mount:
            mounts[self.kv1_mount.strip("/") + "/"] = ("kv", {"version": "1"})
        match = max((m for m in mounts if path.startswith(m)), key=len, default=None)
        if match is None:
            raise denied
        if "root" not in t["policies"] and any(match.startswith(pre) for p in t["policies"]
                                               for pre in self.deny.get(p, [])):
            raise denied
        typ, opts = mounts[match]
        return 200, self.envelope(data={
            "accessor": "%s_%s" % (typ, secrets.token_hex(4)), "config": {
                "default_lease_ttl": 0, "force_no_cache": False, "max_lease_ttl": 0},
            "description": "", "external_entropy_access": False, "local": False, "options": opts,
            "path": match, "plugin_version": "", "running_plugin_version": "v1.17.2+builtin.vault",
            "running_sha256": "", "seal_wrap": False, "type": typ, "uuid": str(uuid.uuid4())}), None

    # api-docs/system/health.mdx: 200 initialized+unsealed+active, 503 sealed (501 uninit,
    # 429 standby never happen here); ?sealedcode= / ?activecode= / ?uninitcode= override; HEAD
    # gets no body.  Sealed bodies omit cluster_name/cluster_id and report standby=true with
    # replication modes "unknown", as Vault does.
    def sys_health(self, q):
        def code(name, default):
            try:
                return int(q.get(name, [default])[0])
            except ValueError:
                raise VaultError(400, ["unable to parse %s: invalid syntax" % name])
        ent = self.namespaces is not None
        body = {"initialized": True, "sealed": self.sealed, "standby": self.sealed,
                "performance_standby": False,
                "replication_performance_mode": "unknown" if self.sealed else "disabled",
                "replication_dr_mode": "unknown" if self.sealed else "disabled",
                "server_time_utc": int(time.time()),
                "version": self.cfg.version + ("+ent" if ent else ""), "enterprise": ent,
                "echo_duration_ms": 0, "clock_skew_ms": 0}
        if not self.sealed:
            body.update(cluster_name=self.cluster_name, cluster_id=self.cluster_id)
        status = code("sealedcode", 503) if self.sealed else code("activecode", 200)
        return status, body, None

    # api-docs/system/seal-status.mdx: unauthenticated; shamir fields; cluster info when unsealed.
    def seal_status(self):
        s = {"type": "shamir", "initialized": True, "sealed": self.sealed, "t": 1, "n": 1,
             "progress": 0, "nonce": "", "version": self.cfg.version, "build_date": "2024-07-01T00:00:00Z",
             "migration": False, "recovery_seal": False, "storage_type": "inmem"}
        if not self.sealed:
            s.update(cluster_name=self.cluster_name, cluster_id=self.cluster_id)
        return s

    # api-docs/system/unseal.mdx: PUT {key} (or {reset:true}); returns the seal status.
    def sys_unseal(self, body):
        if body.get("reset"):
            return 200, self.seal_status(), None
        key = body.get("key")
        if not key:
            raise VaultError(400, ["'key' must be specified in request body as JSON, or 'reset' set to true"])
        if key != self.cfg.unseal_key:
            raise VaultError(400, ["Unseal failed, invalid key"])
        self.sealed = False
        return 200, self.seal_status(), None

    # ------------------------------------------------------------------ auth
    def new_login_token(self, kind, role, policies, path, display, meta, ns):
        now = time.time()
        ttl, warnings, hard = calculate_ttl(0, role["ttl"], role["max_ttl"], 0, now, now)
        # SanitizePolicies adds "default" and sorts, unless the role sets token_no_default_policy.
        pols = sorted(set(policies + ([] if role.get("no_default_policy") else ["default"])))
        t = self.add_token("hvs." + rand(24), kind=kind, policies=pols, path=path, display=display,
                           ttl=ttl, expire=min(now + ttl, hard), renewable=True, ns=ns,
                           role_ttl=role["ttl"], max_ttl=role["max_ttl"], meta=meta,
                           role=role["name"], hard=hard, created=now)
        self.counts["logins"] += 1
        return 200, self.envelope(auth=self.auth_block(t, ttl), warnings=warnings,
                                  mount_type=kind), None

    # api-docs/auth/approle.mdx "Login with AppRole" + builtin/credential/approle/path_login.go:
    # missing role_id -> 400 "missing role_id"; unknown role_id or wrong/used-up secret_id ->
    # logical.ErrorResponse("invalid role or secret ID") -> 400 (RespondErrorCommon: error response
    # => 400).  A secret_id with num_uses is deleted after its last use.  User lockout (Vault >=1.13,
    # docs/concepts/user-lockout): after `lockout_threshold` (5) bad secret_ids for a role_id,
    # logins get 403 "permission denied" for `lockout_duration` (15m).
    def approle_login(self, body, ns):
        role_id = str(body.get("role_id") or "").strip()
        if not role_id:
            raise VaultError(400, ["missing role_id"])
        role = self.approles.get(role_id)
        lk = self.lockouts.get(role_id)
        if lk and lk["until"] and time.time() < lk["until"]:
            self.counts["login_failures"] += 1
            raise VaultError(403, [PERM])
        if role is None:
            self.counts["login_failures"] += 1
            raise VaultError(400, ["invalid role or secret ID"])
        secret_id = str(body.get("secret_id") or "").strip()
        if not secret_id:
            raise VaultError(400, ["missing secret_id"])
        if secret_id != role["secret_id"] or (role["num_uses"] and role["uses_left"] <= 0):
            self.counts["login_failures"] += 1
            lk = self.lockouts.setdefault(role_id, {"failures": 0, "until": None})
            lk["failures"] += 1
            if self.cfg.lockout_threshold and lk["failures"] >= self.cfg.lockout_threshold:
                lk["until"] = time.time() + parse_duration(self.cfg.lockout_duration)
            raise VaultError(400, ["invalid role or secret ID"])
        self.lockouts.pop(role_id, None)
        if role["num_uses"]:
            role["uses_left"] -= 1
        self.counts["approle_logins"] += 1
        return self.new_login_token("approle", role, role["policies"], "auth/approle/login",
                                    "approle", {"role_name": role["name"]}, ns)

    # ------------------------------------------------- setup through Vault's own API
    # The subset a harness uses on a fresh `vault server -dev` (see the module text), so the
    # same harness code can drive this simulator (tests/sim/vault-cli) and a real Vault.
    # api-docs/system/auth.mdx "Enable auth method": POST sys/auth/:path {type} -> 204; a path
    # in use -> 400 "path is already in use at approle/". api-docs/system/mounts.mdx "Enable
    # secrets engine": POST sys/mounts/:path {type, options} -> 204, same 400 when in use.
    # Only approle auth and a KV v1 mount at a new path are simulated; root only.
    def sys_enable(self, rel, body, t):
        if "root" not in t["policies"]:
            raise VaultError(403, [ACL_DENIED])
        kind, _, path = rel.partition("/")[2].partition("/")
        path = path.strip("/")
        if kind == "auth":
            if body.get("type") != "approle" or path != "approle":
                raise VaultError(400, ["only the approle auth method at approle/ is simulated"])
            if path in self.auth_enabled:
                raise VaultError(400, ["path is already in use at %s/" % path])
            self.auth_enabled.add(path)
            return 204, None, None
        opts = body.get("options") or {}
        if body.get("type") != "kv" or str(opts.get("version", "1")) != "1":
            raise VaultError(400, ["only a KV version 1 mount is simulated"])
        if path in (self.kv1_mount.strip("/"), self.cfg.kv2_mount.strip("/")):
            raise VaultError(400, ["path is already in use at %s/" % path])
        self.kv1_mount = path
        return 204, None, None

    # api-docs/auth/approle.mdx: POST role/:name {token_ttl, token_max_ttl, token_policies,
    # secret_id_num_uses} -> 204; POST role/:name/role-id {role_id} -> 204; POST
    # role/:name/custom-secret-id {secret_id} -> 200 {data: {secret_id, secret_id_accessor,
    # secret_id_ttl, secret_id_num_uses}}; an unknown role -> 400 `role "x" does not exist`.
    # One secret_id per role here (a new one replaces the old).
    def approle_role_api(self, sub, body, t):
        if "root" not in t["policies"]:
            raise VaultError(403, [ACL_DENIED])
        if "approle" not in self.auth_enabled:
            raise VaultError(404, ['no handler for route "auth/approle/role/%s". route entry not found.' % sub])
        name, _, action = sub.partition("/")
        if not action:
            try:
                d = self.role_defs.setdefault(name, {"name": name, "role_id": str(uuid.uuid4()),
                                                     "secret_id": None})
                d.update(ttl=int(parse_duration(body.get("token_ttl"))),
                         max_ttl=int(parse_duration(body.get("token_max_ttl"))),
                         policies=list(body.get("token_policies") or []),
                         num_uses=int(body.get("secret_id_num_uses") or 0))
            except (TypeError, ValueError) as e:
                raise VaultError(400, [str(e)])
            self.publish_role(d)
            return 204, None, None
        d = self.role_defs.get(name)
        if d is None:
            raise VaultError(400, ['role "%s" does not exist' % name])
        if action == "role-id":
            if not body.get("role_id"):
                raise VaultError(400, ["missing role_id"])
            self.approles.pop(d["role_id"], None)
            d["role_id"] = str(body["role_id"])
            self.publish_role(d)
            return 204, None, None
        if action == "custom-secret-id":
            if not body.get("secret_id"):
                raise VaultError(400, ["missing secret_id"])
            d["secret_id"] = str(body["secret_id"])
            self.publish_role(d)
            return 200, self.envelope(data={"secret_id": d["secret_id"], "secret_id_accessor": str(uuid.uuid4()),
                                            "secret_id_ttl": 0, "secret_id_num_uses": d["num_uses"]}), None
        raise VaultError(405, ["unsupported operation"])

    def publish_role(self, d):
        """Make a role defined through the API usable for login, as the flag-made ones are."""
        if d["secret_id"] is not None:
            self.approles[d["role_id"]] = dict(d, uses_left=d["num_uses"])

    # api-docs/auth/kubernetes.mdx "Login" + vault-plugin-auth-kubernetes path_login.go:
    # missing field -> 400 "missing role"/"missing jwt"; unknown role -> 400 `invalid role name "x"`;
    # a JWT the TokenReview rejects -> logical.ErrPermissionDenied -> 403 {"errors":["permission denied"]}.
    def k8s_login(self, body, ns):
        for f in ("role", "jwt"):
            if not body.get(f):
                raise VaultError(400, ["missing %s" % f])
        role = self.k8s_roles.get(body["role"])
        if role is None:
            self.counts["login_failures"] += 1
            raise VaultError(400, ['invalid role name "%s"' % body["role"]])
        if body["jwt"] != role["jwt"]:
            self.counts["login_failures"] += 1
            raise VaultError(403, [PERM])
        self.counts["kubernetes_logins"] += 1
        meta = {"role": role["name"], "service_account_name": role["sa"],
                "service_account_namespace": role["sa_namespace"],
                "service_account_secret_name": "", "service_account_uid": role["uid"]}
        return self.new_login_token("kubernetes", role, role["policies"], "auth/kubernetes/login",
                                    "kubernetes-%s-%s" % (role["sa_namespace"], role["sa"]), meta, ns)

    # api-docs/auth/token.mdx: lookup-self (GET), lookup (POST {token}), renew-self (POST
    # {increment}), revoke-self (POST -> 204), revoke (POST {token} -> 204), create (POST).
    def token_api(self, op, sub, body, t, ns):
        now = time.time()
        if sub == "lookup-self" and op == "read" or sub == "lookup" and op in ("read", "write"):
            target = t
            if sub == "lookup" and body.get("token"):
                target = self.tokens.get(body["token"])
                if target is None or target["revoked"] or (target["expire"] and now >= target["expire"]):
                    raise VaultError(403, [INVALID_TOKEN])
            return 200, self.envelope(data=self.lookup_data(target, now), mount_type="token"), None
        if sub == "renew-self" and op == "write":
            return self.renew_token(t, body, now)
        if sub == "revoke-self" and op == "write":
            self.revoke_token(t, "revoke-self")
            self.counts["token_revocations"] += 1
            return 204, None, None
        # "Revoke a token": POST {token} -> 204; the token and its children and
        # leases go (token_store.go handleRevokeTree: an unknown token is no error).
        if sub == "revoke" and op == "write":
            if not body.get("token"):
                raise VaultError(400, ["missing token"])
            target = self.tokens.get(body["token"])
            if target is not None and target["revoked"] is None:
                self.revoke_token(target, "revoke")
                self.counts["token_revocations"] += 1
            return 204, None, None
        if sub in ("create", "create-orphan") and op == "write":
            return self.create_token(t, body, now, ns)
        raise VaultError(405, ["unsupported operation"])

    def lookup_data(self, t, now):
        # Field set of the "Lookup a Token (Self)" sample response.
        ttl = 0 if t["expire"] is None else max(0, int(round(t["expire"] - now)))
        d = {"accessor": t["accessor"], "creation_time": int(t["created"]),
             "creation_ttl": t["creation_ttl"], "display_name": t["display_name"], "entity_id": "",
             "expire_time": rfc3339(t["expire"]), "explicit_max_ttl": t["explicit_max_ttl"],
             "id": t["id"], "issue_time": rfc3339(t["created"]), "meta": t["meta"], "num_uses": 0,
             "orphan": True, "path": t["path"], "policies": t["policies"],
             "renewable": t["renewable"], "ttl": ttl, "type": "service"}
        if t["last_renewal"]:
            d.update(last_renewal=rfc3339(t["last_renewal"]), last_renewal_time=int(t["last_renewal"]))
        return d

    # vault/expiration.go RenewToken: no lease (root, non-expiring) -> 400 "lease is not
    # renewable"; else CalculateTTL(increment, auth.TTL (role token_ttl), 0, auth.MaxTTL,
    # explicit_max_ttl, issue time) - the TTL is capped at the max with the warning
    # 'TTL of "1m" exceeded the effective max_ttl of "4s"; TTL value is capped accordingly'.
    def renew_token(self, t, body, now):
        if t["expire"] is None or not t["renewable"]:
            raise VaultError(400, ["lease is not renewable"])
        try:
            inc = parse_duration(body.get("increment"))
        except ValueError as e:
            raise VaultError(400, [str(e)])
        ttl, warnings, hard = calculate_ttl(int(inc), t["role_ttl"], t["max_ttl"],
                                            t["explicit_max_ttl"], t["created"], now)
        prev_expire = t["expire"]
        last = t["last_renewal"] or t["created"]
        t["renewals"].append({"at": now, "since_issue": round(now - t["created"], 3),
                              "since_last": round(now - last, 3),
                              "remaining_before": round(prev_expire - now, 3),
                              "lease_duration_before": (t["renewals"][-1]["lease_duration"]
                                                        if t["renewals"] else t["creation_ttl"]),
                              "increment": int(inc), "lease_duration": ttl, "capped": bool(warnings)})
        r = t["renewals"][-1]   # elapsed_fraction: how far into the previous TTL the renewal came
        r["elapsed_fraction"] = round((now - last) / r["lease_duration_before"], 3) if r["lease_duration_before"] else None
        t["expire"], t["last_renewal"] = min(now + ttl, hard), now
        self.counts["token_renewals"] += 1
        return 200, self.envelope(auth=self.auth_block(t, ttl), warnings=warnings, mount_type="token"), None

    # api-docs/auth/token.mdx "Create Token": policies, ttl, explicit_max_ttl, renewable, meta,
    # display_name; non-root callers may only request a subset of their policies.
    def create_token(self, parent, body, now, ns):
        pols = body.get("policies") or [p for p in parent["policies"]]
        if isinstance(pols, str):
            pols = [p for p in pols.split(",") if p]
        if "root" not in parent["policies"] and not set(pols) <= set(parent["policies"]):
            raise VaultError(400, ["child policies must be subset of parent"])
        if pols != ["root"]:
            pols = sorted(set(pols + ([] if body.get("no_default_policy") else ["default"])))
        ttl = int(parse_duration(body.get("ttl") or body.get("lease")))
        emax = int(parse_duration(body.get("explicit_max_ttl")))
        if pols == ["root"] and not ttl:
            expire, hard, warnings = None, None, []
        else:
            ttl, warnings, hard = calculate_ttl(0, ttl, 0, emax, now, now)
            expire = min(now + ttl, hard)
        t = self.add_token(body.get("id") or "hvs." + rand(24), kind="token", policies=pols,
                           path="auth/token/create",
                           display=("token-%s" % body["display_name"]) if body.get("display_name") else "token",
                           ttl=ttl, expire=expire, renewable=body.get("renewable", True) is not False,
                           ns=ns, role_ttl=ttl, explicit_max=emax, meta=body.get("meta"), hard=hard,
                           created=now)
        return 200, self.envelope(auth=self.auth_block(t, ttl), warnings=warnings, mount_type="token"), None

    # ---------------------------------------------------------------- leases
    def lease_id_from(self, rel, body):
        lid = body.get("lease_id")
        if not lid:
            for pre in ("sys/leases/renew/", "sys/renew/", "sys/leases/revoke/", "sys/revoke/"):
                if rel.startswith(pre):
                    lid = rel[len(pre):]
        if not lid:
            raise VaultError(400, ["lease_id must be specified"])
        return lid

    def live_lease(self, lid, ns):
        lease = self.leases.get(lid)
        if lease is not None and lease["revoked"] is None and time.time() >= lease["expire"]:
            self.revoke_lease(lease, "expired")
            self.counts["leases_expired"] += 1
        if lease is None or lease["revoked"] is not None or lease["namespace"] != ns:
            return None
        return lease

    # api-docs/system/leases.mdx "Renew lease" (PUT/POST sys/leases/renew {lease_id, increment},
    # also sys/renew/:id) + vault/expiration.go Renew: a revoked/expired (deleted) or unknown lease
    # -> leaseEntry.renewable(): "lease not found" -> ErrorResponse + ErrInvalidRequest -> 400;
    # otherwise CalculateTTL(increment, role default_ttl, 0, role max_ttl, 0, issue time) with
    # the capped-TTL warning.  (Older Vault said "lease not found or lease is not renewable".)
    def lease_renew(self, rel, body, ns):
        lid = self.lease_id_from(rel, body)
        lease = self.live_lease(lid, ns)
        if lease is None:
            raise VaultError(400, ["lease not found"])
        try:
            inc = int(parse_duration(body.get("increment")))
        except ValueError as e:
            raise VaultError(400, [str(e)])
        now = time.time()
        ttl, warnings, hard = calculate_ttl(inc, lease["ttl"], lease["max_ttl"], 0, lease["created"], now)
        last = lease["last_renewal"] or lease["created"]
        before = lease["renewals"][-1]["lease_duration"] if lease["renewals"] else lease["initial_ttl"]
        lease["renewals"].append({"at": now, "since_issue": round(now - lease["created"], 3),
                                  "since_last": round(now - last, 3),
                                  "remaining_before": round(lease["expire"] - now, 3),
                                  "lease_duration_before": before,
                                  "elapsed_fraction": round((now - last) / before, 3) if before else None,
                                  "increment": inc, "lease_duration": ttl, "capped": bool(warnings)})
        lease["expire"], lease["last_renewal"] = min(now + ttl, hard), now
        self.counts["lease_renewals"] += 1
        return 200, self.envelope(lease_id=lid, renewable=True, lease_duration=ttl,
                                  warnings=warnings), None

    # api-docs/system/leases.mdx "Revoke lease": 204; revoking an unknown lease is not an error
    # (expiration.revokeCommon returns nil for a missing entry).
    def lease_revoke(self, rel, body, ns):
        lease = self.live_lease(self.lease_id_from(rel, body), ns)
        if lease is not None:
            self.revoke_lease(lease, "revoke")
            self.counts["lease_revocations"] += 1
        return 204, None, None

    # api-docs/system/leases.mdx "Read lease"; unknown lease -> 400 "invalid lease"
    # (vault/logical_system.go handleLeaseLookup).
    def lease_lookup(self, body, ns):
        lease = self.live_lease(self.lease_id_from("", body), ns)
        if lease is None:
            raise VaultError(400, ["invalid lease"])
        return 200, self.envelope(data={
            "id": lease["lease_id"], "issue_time": rfc3339(lease["created"]),
            "expire_time": rfc3339(lease["expire"]), "last_renewal": rfc3339(lease["last_renewal"]),
            "renewable": True, "ttl": max(0, int(round(lease["expire"] - time.time())))}), None

    # api-docs/secret/databases/index.mdx "Generate credentials": GET database/creds/:name ->
    # data {username, password}, a renewable lease "database/creds/<role>/<id>" whose duration is
    # the role default_ttl (capped by max_ttl, with the same warning).  Unknown role -> 400
    # "unknown role: <name>" (builtin/logical/database path_creds_create.go).  Username follows
    # the default template v-{{display_name|8}}-{{role|8}}-{{random 20}}-{{unix_time}}.
    def db_creds(self, name, t, ns):
        role = self.db_roles.get(name)
        if role is None:
            raise VaultError(400, ["unknown role: %s" % name])
        now = time.time()
        ttl, warnings, hard = calculate_ttl(0, role["ttl"], role["max_ttl"], 0, now, now)
        lid = "database/creds/%s/%s" % (name, rand(24))
        user = "v-%s-%s-%s-%d" % (t["display_name"][:8], name[:8], rand(20), int(now))
        pw = "A1a-" + rand(16)
        self.leases[lid] = {"lease_id": lid, "role": name, "username": user, "password": pw,
                            "created": now, "ttl": role["ttl"], "max_ttl": role["max_ttl"],
                            "expire": min(now + ttl, hard), "hard_expire": hard, "token": t["id"],
                            "token_accessor": t["accessor"], "namespace": ns, "revoked": None,
                            "revoked_at": None, "renewals": [], "last_renewal": None,
                            "credentials_valid": True, "initial_ttl": ttl}
        self.counts["leases_issued"] += 1
        return 200, self.envelope(data={"username": user, "password": pw}, lease_id=lid,
                                  lease_duration=ttl, renewable=True, warnings=warnings,
                                  mount_type="database"), None

    # api-docs/secret/databases/index.mdx "Get static credentials" + builtin/logical/database
    # path_creds_create.go pathStaticCredsRead: GET database/static-creds/:name -> data {username,
    # password, last_vault_rotation, rotation_period, ttl} and NO lease (lease_id "", duration 0);
    # ttl = seconds to the next rotation (staticAccount.CredentialTTL, rounded, never negative).
    # Vault rotates the password every rotation_period; unknown role -> 400 "unknown role: <name>".
    def add_static_role(self, r):
        now = time.time()
        self.static_roles[r["name"]] = dict(r, last=now, password="A1a-" + rand(16), rotations=0)

    def static_creds(self, name):
        r = self.static_roles.get(name)
        if r is None:
            raise VaultError(400, ["unknown role: %s" % name])
        now = time.time()
        while now >= r["last"] + r["period"]:
            r["last"] += r["period"]
            r["password"], r["rotations"] = "A1a-" + rand(16), r["rotations"] + 1
        ttl = max(0, int(round(r["last"] + r["period"] - now)))
        return 200, self.envelope(mount_type="database", data={
            "username": r["username"], "password": r["password"],
            "last_vault_rotation": rfc3339(r["last"]), "rotation_period": r["period"], "ttl": ttl}), None

    # -------------------------------------------------------------------- kv
    def kv2_write_version(self, ns, path, data, cas=None):
        now = time.time()
        m = self.kv2.get((ns, path))
        if m is None:
            m = {"versions": {}, "current": 0, "oldest": 0, "created": now, "updated": now,
                 "custom_metadata": None}
        # vault-plugin-secrets-kv path_data.go validateCheckAndSetOption
        if cas is not None:
            try:
                cas_i = int(cas)
            except (TypeError, ValueError):
                raise VaultError(400, ["error parsing check-and-set parameter"])
            if cas_i != m["current"]:
                raise VaultError(400, ["check-and-set parameter did not match the current version"])
        self.kv2[(ns, path)] = m
        m["current"] += 1
        m["updated"] = now
        m["versions"][m["current"]] = {"data": data, "created": now, "deletion": None, "destroyed": False}
        while len(m["versions"]) > KV2_MAX_VERSIONS:
            oldest = min(m["versions"])
            del m["versions"][oldest]
            m["oldest"] = min(m["versions"])
        return m["current"], self.kv2_vmeta(m, m["current"])

    @staticmethod
    def kv2_vmeta(m, v, with_version=True):
        vm = m["versions"][v]
        d = {"created_time": rfc3339(vm["created"]), "custom_metadata": m["custom_metadata"],
             "deletion_time": rfc3339(vm["deletion"]) or "", "destroyed": vm["destroyed"]}
        if with_version:
            d["version"] = v
        return d

    # api-docs/secret/kv/kv-v2.mdx (dev mode mounts KV v2 at secret/):
    #  GET  data/:path?version=N -> {"data":{"data":{..},"metadata":{..}}}; missing key/version ->
    #       404 {"errors":[]}; deleted (deletion_time passed) or destroyed -> 404 whose body is the
    #       full response with data=null and the version metadata (path_data.go: "If the version
    #       has been deleted return metadata with a 404", logical.RespondWithStatusCode).
    #  POST/PUT data/:path {data, options{cas}} -> version metadata; no data -> 400 "no data
    #       provided"; cas mismatch -> 400.   DELETE data/:path -> soft-delete latest, 204.
    #  GET/LIST/DELETE metadata/:path (versions map, current_version, ...).
    def kv2_api(self, op, sub, q, body, ns, mount):
        kind, _, path = sub.partition("/")
        mt = "kv"
        if kind not in ("data", "metadata", "delete", "undelete", "destroy", "subkeys", "config",
                        "detailed-metadata"):
            # vault-plugin-secrets-kv backend.go pathInvalid: a KV v2 path without data/ (what a
            # KV v1 client reads) -> 404 whose body has only a warning, no "errors".
            verb = {"write": "put", "read": "get", "list": "list", "delete": "delete",
                    "patch": "patch"}.get(op, "get")
            raise VaultError(404, body=self.envelope(mount_type=mt, warnings=[
                "Invalid path for a versioned K/V secrets engine. See the API docs for the "
                "appropriate API endpoints to use. If using the Vault CLI, use 'vault kv %s' for "
                "this operation." % verb]))
        if mount != self.cfg.kv2_mount.strip("/") + "/" and path:
            path = mount + path    # keys of an extra mount live under its mount path
        if kind == "data" and path:
            if op == "read":
                m = self.kv2.get((ns, path))
                try:
                    v = int(q.get("version", ["0"])[0] or 0)
                except ValueError:
                    raise VaultError(400, ["error converting input for field \"version\""])
                v = v or (m["current"] if m else 0)
                if m is None or v not in m["versions"]:
                    raise VaultError(404, [])
                vm = m["versions"][v]
                meta = self.kv2_vmeta(m, v)
                if vm["destroyed"] or (vm["deletion"] is not None and vm["deletion"] <= time.time()):
                    raise VaultError(404, body=self.envelope(data={"data": None, "metadata": meta},
                                                             mount_type=mt))
                return 200, self.envelope(data={"data": vm["data"], "metadata": meta}, mount_type=mt), None
            if op == "write":
                if not isinstance(body.get("data"), dict):
                    raise VaultError(400, ["no data provided"])
                opts = body.get("options") if isinstance(body.get("options"), dict) else {}
                _, meta = self.kv2_write_version(ns, path, body["data"], opts.get("cas"))
                return 200, self.envelope(data=meta, mount_type=mt), None
            if op == "delete":
                m = self.kv2.get((ns, path))
                if m and m["current"] in m["versions"]:
                    vm = m["versions"][m["current"]]
                    if vm["deletion"] is None:
                        vm["deletion"] = time.time()
                return 204, None, None
        if kind == "metadata":
            if op == "list":
                pre = path if not path or path.endswith("/") else path + "/"
                keys = sorted({(k[len(pre):].split("/")[0] + ("/" if "/" in k[len(pre):] else ""))
                               for (n, k) in self.kv2 if n == ns and k.startswith(pre)})
                if not keys:
                    raise VaultError(404, [])
                return 200, self.envelope(data={"keys": keys}, mount_type=mt), None
            m = self.kv2.get((ns, path))
            if op == "read":
                if m is None:
                    raise VaultError(404, [])
                return 200, self.envelope(mount_type=mt, data={
                    "cas_required": False, "created_time": rfc3339(m["created"]),
                    "current_version": m["current"], "custom_metadata": m["custom_metadata"],
                    "delete_version_after": "0s", "max_versions": 0, "oldest_version": m["oldest"],
                    "updated_time": rfc3339(m["updated"]),
                    "versions": {str(v): self.kv2_vmeta(m, v, False) for v in sorted(m["versions"])}}), None
            if op == "delete":
                self.kv2.pop((ns, path), None)
                return 204, None, None
        raise VaultError(404, ['no handler for route "%s%s". route entry not found.' % (mount, sub)])

    # api-docs/secret/kv/kv-v1.mdx: GET -> {"data":{..}, "lease_duration": <data.ttl or 768h>,
    # "renewable": false, "lease_id": ""} (advisory, no lease); missing -> 404 {"errors":[]};
    # POST/PUT -> 204; DELETE -> 204; LIST -> keys.
    def kv1_api(self, op, path, body, ns):
        mt = "kv"
        if op == "read":
            d = self.kv1.get((ns, path))
            if d is None:
                raise VaultError(404, [])
            lease = KV1_DEFAULT_LEASE
            if "ttl" in d:
                try:
                    lease = int(parse_duration(d["ttl"]))
                except ValueError:
                    pass
            return 200, self.envelope(data=d, lease_duration=lease, mount_type=mt), None
        if op == "write":
            if not body:
                raise VaultError(400, ["missing data fields"])
            self.kv1[(ns, path)] = dict(body)
            return 204, None, None
        if op == "delete":
            self.kv1.pop((ns, path), None)
            return 204, None, None
        if op == "list":
            pre = path if not path or path.endswith("/") else path + "/"
            keys = sorted({(k[len(pre):].split("/")[0] + ("/" if "/" in k[len(pre):] else ""))
                           for (n, k) in self.kv1 if n == ns and k.startswith(pre)})
            if not keys:
                raise VaultError(404, [])
            return 200, self.envelope(data={"keys": keys}, lease_duration=KV1_DEFAULT_LEASE, mount_type=mt), None
        raise VaultError(405, ["unsupported operation"])

    # ------------------------------------------------------------------ /sim
    def handle_sim(self, method, path, q, body):
        arg = lambda k, d=None: q.get(k, [d])[0]
        with self.lock:
            if path == "/sim/state" and method == "GET":
                return 200, self.state()
            if method not in ("POST", "PUT"):
                return 405, {"error": "use POST"}
            if path == "/sim/seal":
                self.sealed = True
            elif path == "/sim/unseal":
                self.sealed = False
            elif path == "/sim/fail":
                self.fail = {"count": int(arg("count", "1")), "status": int(arg("status", "500")),
                             "path": arg("path", "")}
            elif path == "/sim/mangle":
                p = arg("path") or ""
                if not p.startswith("/v1/"):
                    return 400, {"error": "path must start with /v1/"}
                if body:
                    self.mangles[p] = dict(body)
                else:
                    self.mangles.pop(p, None)
            elif path == "/sim/standby":
                target = arg("target", "active")
                if target not in ("active", "self"):
                    return 400, {"error": "target is active or self"}
                self.standby_target = target
            elif path == "/sim/delay":
                self.delay_ms = int(arg("ms", "0"))
            elif path == "/sim/reset":
                self.reset()
            elif path in ("/sim/kv2", "/sim/kv1"):
                p, ns = (arg("path") or "").strip("/"), (arg("namespace") or "").strip("/")
                if not p:
                    return 400, {"error": "path is required"}
                if path == "/sim/kv1":
                    self.kv1[(ns, p)] = dict(body)
                    return 200, {"ok": True}
                data = body["data"] if set(body) == {"data"} and isinstance(body["data"], dict) else body
                if arg("mount"):   # an --kv2-extra-mount
                    p = arg("mount").strip("/") + "/" + p
                v, _ = self.kv2_write_version(ns, p, data)
                return 200, {"ok": True, "version": v}
            elif path == "/sim/db-static-role":
                try:
                    self.add_static_role(parse_spec("static", arg("spec") or ""))
                except ValueError as e:
                    return 400, {"error": str(e)}
            elif path in ("/sim/approle", "/sim/k8s-role", "/sim/db-role"):
                spec = arg("spec") or body.get("spec")
                try:
                    r = parse_spec({"/sim/approle": "approle", "/sim/k8s-role": "k8s",
                                    "/sim/db-role": "db"}[path], spec or "")
                except ValueError as e:
                    return 400, {"error": str(e)}
                if path == "/sim/approle":
                    self.approles[r["role_id"]] = dict(r, uses_left=r["num_uses"])
                elif path == "/sim/k8s-role":
                    self.k8s_roles[r["name"]] = r
                else:
                    self.db_roles[r["name"]] = r
            elif path == "/sim/revoke":
                acc, lid = arg("accessor"), arg("lease_id")
                tok = next((t for t in self.tokens.values() if t["accessor"] == acc), None)
                if tok is not None:
                    self.revoke_token(tok, "operator")
                elif lid in self.leases:
                    self.revoke_lease(self.leases[lid], "operator")
                else:
                    return 404, {"error": "no such accessor or lease"}
            else:
                return 404, {"error": "unknown sim control"}
            return 200, {"ok": True}

    def state(self):
        now = time.time()

        def tok(t):
            valid = t["revoked"] is None and (t["expire"] is None or now < t["expire"])
            return {"id": t["id"], "accessor": t["accessor"], "kind": t["kind"], "role": t["role"],
                    "policies": t["policies"], "namespace": t["namespace"], "created": t["created"],
                    "age": round(now - t["created"], 3), "creation_ttl": t["creation_ttl"],
                    "expire_time": t["expire"], "max_expire_time": t["hard_expire"],
                    "ttl_remaining": None if t["expire"] is None else round(max(0.0, t["expire"] - now), 3),
                    "valid": valid, "revoked": t["revoked"], "revoked_at": t["revoked_at"],
                    "renewal_count": len(t["renewals"]), "renewals": t["renewals"], "uses": t["uses"]}

        def lease(le):
            valid = le["revoked"] is None and now < le["expire"]
            return {"lease_id": le["lease_id"], "role": le["role"], "username": le["username"],
                    "namespace": le["namespace"], "token_accessor": le["token_accessor"],
                    "created": le["created"], "initial_ttl": le["initial_ttl"],
                    "expire_time": le["expire"], "max_expire_time": le["hard_expire"],
                    "ttl_remaining": round(max(0.0, le["expire"] - now), 3), "valid": valid,
                    "credentials_valid": valid and le["credentials_valid"], "revoked": le["revoked"],
                    "revoked_at": le["revoked_at"], "renewal_count": len(le["renewals"]),
                    "renewals": le["renewals"]}
        return {"now": now, "started": self.started, "sealed": self.sealed,
                "tokens": [tok(t) for t in self.tokens.values()],
                "leases": [lease(le) for le in self.leases.values()],
                "counts": dict(self.counts), "requests": dict(self.requests),
                "request_paths": dict(self.request_paths), "last_namespace": self.last_namespace,
                "namespaces_seen": dict(self.ns_seen),
                "faults": {"fail_remaining": self.fail["count"], "fail_status": self.fail["status"],
                           "fail_path": self.fail["path"], "delay_ms": self.delay_ms},
                "kv2": {("%s/%s" % (n, p) if n else p): m["current"] for (n, p), m in self.kv2.items()},
                "approle_uses_left": {r: a["uses_left"] for r, a in self.approles.items() if a["num_uses"]},
                "lockouts": {r: l["failures"] for r, l in self.lockouts.items()},
                "request_log": list(self.request_log)}

    def log_request(self, method, path, status, ns):
        with self.lock:
            self.request_log.append({"t": round(time.time(), 3), "method": method, "path": path,
                                     "status": status, "namespace": ns})
            del self.request_log[:-500]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "vault-sim"
    sim = None
    verbose = False

    def log_message(self, fmt, *args):
        if self.verbose:
            sys.stderr.write("vault_sim: %s\n" % (fmt % args))

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                n = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(n)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def dispatch(self, method):
        u = urlsplit(self.path)
        path, q = unquote(u.path), parse_qs(u.query, keep_blank_values=True)
        raw = self.read_body()
        body = {}
        status, obj = None, None
        if raw.strip():
            try:
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError("body must be a JSON object")
            except ValueError as e:
                status, obj = 400, {"errors": ["failed to parse JSON input: %s" % e]}
        try:
            if status is not None:
                pass
            elif path.startswith("/sim/"):
                status, obj = self.sim.handle_sim(method, path, q, body)
            elif path.startswith("/v1/"):
                status, obj, _ = self.sim.handle_v1(method, path, q, body, self.headers)
                self.sim.log_request(method, path, status, self.headers.get("X-Vault-Namespace"))
            else:
                status, obj = 404, {"errors": []}
        except ValueError as e:           # e.g. /sim/fail?count=abc
            status, obj = 400, {"errors": [str(e)]}
        except Exception as e:            # never drop the connection: answer like Vault's 500
            sys.stderr.write("vault_sim: internal error: %r\n" % e)
            status, obj = 500, {"errors": ["1 error occurred:\n\t* internal error\n\n"]}
        data = b"" if status == 204 or obj is None or method == "HEAD" else (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)


class StandbyHandler(Handler):
    """The standby node of an HA pair (--standby) that cannot forward requests.

    Imitates vault/http/handler.go respondStandby (docs/concepts/ha.mdx "Client redirection"):
    every API request is answered 307 Temporary Redirect with Location = the active node's
    api_addr + the request's path and query, no body.  sys/health answers itself: a standby
    reports standby=true with 429 (api-docs/system/health.mdx, ?standbycode=).  /sim/ controls
    work on both ports.  /sim/standby?target=self makes the Location point back at this standby
    (an api_addr that names the wrong node), so a client following redirects sees a second one."""
    active_port = None

    def dispatch(self, method):
        u = urlsplit(self.path)
        path = unquote(u.path)
        if path.startswith("/sim/") or not path.startswith("/v1/"):
            return Handler.dispatch(self, method)
        self.read_body()
        if path == "/v1/sys/health":
            q = parse_qs(u.query, keep_blank_values=True)
            st, body, _ = self.sim.sys_health(q)
            body["standby"] = True
            if st == 200:
                st = int(q.get("standbycode", ["429"])[0])
            data = b"" if method == "HEAD" else (json.dumps(body) + "\n").encode()
            self.send_response(st)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        with self.sim.lock:
            self.sim.counts["standby_redirects"] += 1
            port = self.server.server_address[1] if self.sim.standby_target == "self" else self.active_port
            self.sim.log_request(method, "standby " + path, 307, self.headers.get("X-Vault-Namespace"))
        self.send_response(307)
        self.send_header("Location", "http://127.0.0.1:%d%s" % (port, self.path))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", "0")
        self.end_headers()


for _m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "LIST"):
    setattr(Handler, "do_" + _m, lambda self, _m=_m: self.dispatch(_m))


def main(argv=None):
    ap = argparse.ArgumentParser(description="HashiCorp Vault dev-server simulator for tests")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--tls-cert", help="serve https with this PEM certificate (with --tls-key)")
    ap.add_argument("--tls-key")
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    ap.add_argument("--root-token", default="root")
    ap.add_argument("--approle", action="append", metavar="ROLE_ID:SECRET_ID[:k=v..]")
    ap.add_argument("--k8s-role", action="append", metavar="ROLE:JWT[:k=v..]")
    ap.add_argument("--db-role", action="append", metavar="NAME[:k=v..]")
    ap.add_argument("--db-static-role", action="append", metavar="NAME[:rotation_period=30s][:username=U]")
    ap.add_argument("--kv1-mount", default="kv", help='KV v1 mount ("" disables)')
    ap.add_argument("--kv2-mount", default="secret")
    ap.add_argument("--kv2-extra-mount", action="append", metavar="PATH",
                    help="another KV v2 mount, e.g. team/kv (repeatable)")
    ap.add_argument("--no-ui-mounts", action="store_true",
                    help="no sys/internal/ui/mounts (an older Vault): 404 unsupported path")
    ap.add_argument("--namespaces", default="", help="comma list; enables Enterprise-style checks")
    ap.add_argument("--deny-policy", action="append", metavar="NAME=prefix,prefix",
                    help="default: deny-secret=secret/,kv/")
    ap.add_argument("--unseal-key", default="c2ltLXVuc2VhbC1rZXk=")
    ap.add_argument("--version", default="1.17.2")
    ap.add_argument("--sealed", action="store_true", help="start sealed")
    ap.add_argument("--lockout-threshold", type=int, default=5, help="0 disables approle lockout")
    ap.add_argument("--lockout-duration", default="15m")
    ap.add_argument("--legacy-invalid-token", action="store_true",
                    help='pre-1.17 body for invalid tokens: {"errors":["permission denied"]}')
    ap.add_argument("--standby", action="store_true",
                    help='also run a standby node on another port (second stdout line "STANDBY <port>")')
    ap.add_argument("--standby-tls", metavar="CERT:KEY", help="the standby node speaks https")
    ap.add_argument("--verbose", action="store_true")
    cfg = ap.parse_args(argv)
    try:
        sim = Sim(cfg)
    except ValueError as e:
        ap.error(str(e))
    Handler.sim, Handler.verbose = sim, cfg.verbose
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer((cfg.host, cfg.port), Handler)
    if cfg.tls_cert:
        # A listener's tls_cert_file / tls_key_file (Vault docs: configuration/listener/tcp).
        # The handshake runs in the request's thread, so a stalled client blocks no one.
        import ssl
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    stop = threading.Event()

    def reaper():
        while not stop.wait(0.1):
            sim.sweep()
    threading.Thread(target=reaper, daemon=True).start()

    standby = None
    if cfg.standby:
        StandbyHandler.active_port = server.server_address[1]
        standby = ThreadingHTTPServer((cfg.host, 0), StandbyHandler)
        if cfg.standby_tls:
            # An https standby whose active node's api_addr is http: the Location downgrades.
            import ssl
            cert, _, key = cfg.standby_tls.partition(":")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            standby.socket = ctx.wrap_socket(standby.socket, server_side=True)
        threading.Thread(target=standby.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    def on_signal(signum, _frame):
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()
        if standby is not None:
            threading.Thread(target=standby.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("LISTENING %d" % server.server_address[1], flush=True)
    if standby is not None:
        print("STANDBY %d" % standby.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if standby is not None:
            standby.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
