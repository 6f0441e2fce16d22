#!/usr/bin/env python3
"""consul_sim.py - a single-node `consul agent -dev` simulator for beacon's tests.

Python 3 standard library only. One ThreadingHTTPServer on 127.0.0.1 (optionally also a Unix
socket), one state lock plus a Condition that wakes blocking queries.

    python3 tests/sim/consul_sim.py [agent -dev] --port 0 [--unix PATH] [--node NAME]
        [--datacenter dc1] [--acl-token ROOT]... [--read-only-token RO]...
        [--token 'SECRET=service_prefix::write,node_prefix::read,key:cfg/x:read']...
        [--check-update-interval 5m] [--dereg-min 0s] [--reap-interval 100ms] [--verbose]
        [-data-dir DIR] [--legacy-unknown-errors] [--kv-key-validation]

The first stdout line is always "LISTENING <port>" (flushed); with --port 0 a free port is
picked. Consul-style flags are accepted too (-http-port, -client, -node, -datacenter, -dev,
-bind, -hcl, and ignored -dns-port/-grpc-port/-serf-lan-port/-serf-wan-port/-server-port/
-log-level), so a harness can build one argv and swap the binary. -hcl understands the subset
`acl { enabled = true default_policy = "deny" tokens { initial_management = "T" } }` (or
`master = "T"`), `check_update_interval = "0s"` and `addresses { http = "127.0.0.1 unix:///p" }`.

Running against real Consul (CONSUL_BIN set) - pick free ports and start
    $CONSUL_BIN agent -dev -node beacon-sim -datacenter dc1 -bind 127.0.0.1 -client 127.0.0.1 \
      -http-port P -dns-port -1 -grpc-port -1 -server-port P1 -serf-lan-port P2 -serf-wan-port P3 \
      [-hcl 'check_update_interval = "0s"'] \
      [-hcl 'acl { enabled = true default_policy = "deny" tokens { initial_management = "ROOT" } }']
then poll GET /v1/status/leader until it returns a non-empty string (the sim answers at once).
A read-only token like --read-only-token RO is created with the management token:
    consul acl policy create -name ro -rules 'service_prefix "" { policy = "read" }
      node_prefix "" { policy = "read" } key_prefix "" { policy = "read" }
      agent_prefix "" { policy = "read" }'
    consul acl token create -secret RO -policy-name ro
Token accessor IDs (needed for exact 403 texts) come from GET /v1/acl/token/self on both.

Controls under /sim/ (not Consul; no ACL token needed) - NONE has a real-Consul equivalent, so
tests must skip them when CONSUL_BIN is set (/sim/restart can be approximated by killing and
restarting the dev agent, which also loses all state and resets the raft index):
  POST /sim/fail?count=N[&status=500][&body=TEXT][&path=PREFIX]  next N /v1 requests fail
  POST /sim/delay?ms=M[&path=PREFIX]    delay every /v1 request by M ms until reset
  POST /sim/truncate?count=N[&path=]    send Content-Length > body, then close the connection
  POST /sim/garbage?count=N[&path=]     reply 200 application/json with malformed JSON
  POST /sim/restart[?down_ms=M]         dev agent restart without state: services, checks, KV
                                        dropped, open connections closed, raft index back to 10;
                                        for M ms /v1 requests get their connection closed
       [&keep=1]                        ... or a restart that keeps everything (an agent with a
                                        data dir restores its services, checks and check state)
  POST /sim/index?set=N                 force the raft index to N (all stored indexes clamped),
                                        waking blocked queries like a raft snapshot restore
  POST /sim/expire?check=ID             fire a TTL check's timer now
  POST /sim/gc-tombstones               reap KV tombstones now (real: after ~15m)
  POST /sim/leader?known=0|1            no known leader (an election): server reads answer 500
                                        "No cluster leader" unless ?stale, which answers with
                                        X-Consul-KnownLeader: false; KV writes fail
  POST /sim/reset                       clear all faults (state untouched)
  GET  /sim/state[?log=1]               services, checks (status, last update, update times,
                                        history), kv, index, blocked queries, request counts

Known divergences from a real dev agent: only TTL checks change state (HTTP/TCP/script checks
are accepted but never run; they keep their initial status); no sessions/locks, txn, prepared
queries, connect, maintenance mode, Enterprise namespaces and partitions beyond recording them on
services and scoping health queries by them (KV and checks are not scoped), ?filter (400), ?near/?cached (ignored), hash blocking on
agent endpoints; ACL rules are a flat kind/prefix list (no policies/roles API); the reaper
runs every --reap-interval (real: 30s) and DeregisterCriticalServiceAfter is clamped to
--dereg-min (real: 1m); re-registration resets check status to the initial one (a dev agent
has no persisted check state; with -data-dir the saved TTL status is restored as loadCheckState
does); KV tombstones live until /sim/gc-tombstones; JSON is
pretty-printed as in dev mode; decode error texts are close to, not identical with, Go's.
"""
import argparse
import base64
import collections
import gzip
import hashlib
import json
import os
import random
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

VERSION = "1.17.0-sim"
ANON_ACCESSOR = "00000000-0000-0000-0000-000000000002"   # acl.AnonymousTokenID
BOOT_INDEX = 5        # node, serfHealth and the "consul" service written at leader election
INITIAL_INDEX = 10    # a fresh dev agent has made a few more internal raft writes
DEFAULT_WAIT, MAX_WAIT, JITTER_FRACTION = 300.0, 600.0, 16
OUTPUT_MAX = 4096     # check output_max_size default
KV_MAX_VALUE = 512 * 1024
STATUSES = ("passing", "warning", "critical")
TEXT = "text/plain; charset=utf-8"
LEVELS = {"deny": 0, "read": 1, "list": 1, "write": 2}


class HTTPErr(Exception):
    def __init__(self, status, msg, headers=None):
        super().__init__(msg)
        self.status, self.msg, self.headers = status, msg, headers or {}


class Drop(Exception):
    """Close the connection without an answer (restart, shutdown, agent 'down')."""


# ---------------------------------------------------------------- Go-compatible helpers
_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0,
          "m": 60.0, "h": 3600.0}


def parse_duration(s):
    """Go time.ParseDuration -> seconds; ValueError carries Go's message."""
    q = '"%s"' % s
    neg = bool(s) and s[0] == "-"
    if s and s[0] in "+-":
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError("time: invalid duration " + q)
    total = 0.0
    while s:
        num = re.match(r"[0-9]*(\.[0-9]*)?", s).group(0)
        if num in ("", "."):
            raise ValueError("time: invalid duration " + q)
        s = s[len(num):]
        unit = re.match(r"[^0-9.]*", s).group(0)
        if not unit:
            raise ValueError("time: missing unit in duration " + q)
        if unit not in _UNITS:
            raise ValueError('time: unknown unit "%s" in duration %s' % (unit, q))
        s = s[len(unit):]
        total += float(num) * _UNITS[unit]
    return -total if neg else total


def go_dur(sec):
    """Go time.Duration.String()."""
    ns = int(round(sec * 1e9))
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)

    def frac(v, unit):
        ip, fp = divmod(v, unit)
        return str(ip) if not fp else "%d.%s" % (ip, str(fp).rjust(len(str(unit)) - 1, "0").rstrip("0"))
    if ns < 1000:
        return "%s%dns" % (sign, ns)
    if ns < 10**6:
        return sign + frac(ns, 1000) + "\u00b5s"
    if ns < 10**9:
        return sign + frac(ns, 10**6) + "ms"
    h, ns = divmod(ns, 3600 * 10**9)
    m, ns = divmod(ns, 60 * 10**9)
    s = frac(ns, 10**9) + "s"
    return sign + ("%dh%dm%s" % (h, m, s) if h else "%dm%s" % (m, s) if m else s)


def go_json(obj):
    """Dev mode pretty-prints (json.MarshalIndent, 4 spaces, trailing newline); Go escapes <>&."""
    s = json.dumps(obj, indent=4, ensure_ascii=False)
    for a, b in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                 ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        s = s.replace(a, b)
    return (s + "\n").encode()


def go_quote(s):
    return json.dumps(s, ensure_ascii=False)


def go_bool(v):
    """strconv.ParseBool."""
    if v in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if v in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(v)


def jtype(v):
    return ("string" if isinstance(v, str) else "bool" if isinstance(v, bool) else
            "number" if isinstance(v, (int, float)) else "array" if isinstance(v, list) else "object")


def decode_json(body, gotype):
    """lib.DecodeJSON: errors become 'Request decode failed: ...' (400)."""
    text = body.decode("utf-8", "replace")
    if not text.strip():
        raise HTTPErr(400, "Request decode failed: EOF")
    try:
        raw = json.loads(text)
    except ValueError as e:
        pos = getattr(e, "pos", 0)
        if pos >= len(text.rstrip()):
            why = "unexpected EOF"
        else:
            why = "invalid character %s looking for beginning of value" % ("'%s'" % text[pos])
        raise HTTPErr(400, "Request decode failed: " + why)
    if not isinstance(raw, dict):
        raise HTTPErr(400, "Request decode failed: json: cannot unmarshal %s into Go value of type %s"
                      % (jtype(raw), gotype))
    # encoding/json matches field names case-insensitively; the register endpoint also takes
    # snake_case keys (docs: "supports snake_case service definition keys").
    return {k.replace("_", "").lower(): v for k, v in raw.items()}


def field(d, name, typ, struct, default=None):
    v = d.get(name.lower())
    if v is None:
        return default
    ok = {"string": isinstance(v, str),
          "int": isinstance(v, int) and not isinstance(v, bool),
          "bool": isinstance(v, bool),
          "[]string": isinstance(v, list) and all(isinstance(x, str) for x in v),
          "map[string]string": isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
          "object": isinstance(v, dict),
          "[]object": isinstance(v, list) and all(isinstance(x, dict) or x is None for x in v),
          "duration": isinstance(v, (str, int, float)) and not isinstance(v, bool)}[typ]
    if not ok:
        raise HTTPErr(400, "Request decode failed: json: cannot unmarshal %s into Go struct field "
                      "%s.%s of type %s" % (jtype(v), struct, name, typ))
    if typ == "duration":          # CheckType.UnmarshalJSON: string duration or nanoseconds
        if isinstance(v, str):
            try:
                return parse_duration(v)
            except ValueError as e:
                raise HTTPErr(400, "Request decode failed: %s" % e)
        return v / 1e9
    return v


# ---------------------------------------------------------------- ACL
class Authz:
    """Token -> rules. rules: list of (kind, name, exact, level); exact rules beat prefixes,
    the longest prefix wins, otherwise the default policy applies (acl docs, rule precedence)."""

    def __init__(self, secret, accessor, rules=(), default_allow=False, management=False, desc=""):
        self.secret, self.accessor, self.rules = secret, accessor, list(rules)
        self.default_allow, self.management, self.desc = default_allow, management, desc

    def level(self, kind, name):
        if self.management:
            return 2
        best, blen = None, -1
        for k, n, exact, lvl in self.rules:
            if k != kind:
                continue
            if exact and n == name:
                return lvl
            if not exact and name.startswith(n) and len(n) > blen:
                best, blen = lvl, len(n)
        return best if best is not None else (2 if self.default_allow else 0)

    def allowed(self, kind, name, level):
        return self.level(kind, name) >= LEVELS[level]

    def require(self, kind, name, level):
        # acl/errors.go PermissionDeniedError.Error()
        if self.allowed(kind, name, level):
            return
        if self.accessor == ANON_ACCESSOR:
            msg = ("Permission denied: anonymous token lacks permission '%s:%s' on \"%s\". The anonymous "
                   "token is used implicitly when a request does not specify a token." % (kind, level, name))
        else:
            msg = ("Permission denied: token with AccessorID '%s' lacks permission '%s:%s' on \"%s\""
                   % (self.accessor, kind, level, name))
        raise HTTPErr(403, msg)


ALLOW_ALL = Authz("", "", management=True)


def parse_rules(spec):
    rules = []
    for part in filter(None, spec.split(",")):
        kind, _, rest = part.partition(":")
        name, _, lvl = rest.rpartition(":")
        exact = not kind.endswith("_prefix")
        kind = kind[:-7] if not exact else kind
        if kind not in ("service", "node", "key", "agent") or lvl not in LEVELS:
            raise SystemExit("bad rule %r (want kind[_prefix]:name:read|write|deny)" % part)
        rules.append((kind, name, exact, LEVELS[lvl]))
    return rules


# ---------------------------------------------------------------- state
class Sim:
    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.node_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, cfg.node))
        self.tokens = {}
        for t in cfg.acl_token:
            self.tokens[t] = Authz(t, self.accessor(t), management=True, desc="management")
        ro = [(k, "", False, 1) for k in ("service", "node", "key", "agent")]
        for t in cfg.read_only_token:
            self.tokens[t] = Authz(t, self.accessor(t), ro, desc="read-only")
        for spec in cfg.token:
            secret, _, rules = spec.partition("=")
            self.tokens[secret] = Authz(secret, self.accessor(secret), parse_rules(rules), desc="custom")
        self.acl_enabled = cfg.acl_enabled or bool(self.tokens)
        self.anon = Authz("", ANON_ACCESSOR, default_allow=cfg.acl_default_policy == "allow")
        self.conns = set()
        self.abandon_gen = self.restart_gen = self.restarts = self.blocked = 0
        self.down_until = 0.0
        self.shutting_down = False
        self.requests = collections.Counter()
        self.requests_m = collections.Counter()
        self.log = collections.deque(maxlen=500)
        self.events = collections.deque(maxlen=200)
        self.next_reap = 0.0
        self.no_leader = False
        self.clear_faults()
        self.reset_data()

    @staticmethod
    def accessor(secret):
        return str(uuid.uuid5(uuid.NAMESPACE_OID, "consul-sim-accessor:" + secret))

    def clear_faults(self):
        self.faults = {"fail": [0, 500, "", ""], "truncate": [0, ""], "garbage": [0, ""],
                       "delay": [0, ""]}
        self.down_until = 0.0

    def reset_data(self):
        self.index = INITIAL_INDEX
        self.services, self.checks, self.kv, self.tombstones = {}, {}, {}, {}
        self.check_state = {}     # persisted TTL check state (-data-dir only)
        self.svc_idx = {"consul": BOOT_INDEX}
        self.extinct_idx = 0
        self.tbl = {"nodes": BOOT_INDEX, "services": BOOT_INDEX, "checks": BOOT_INDEX, "kvs": 0}

    def bump(self):
        self.index += 1
        self.cond.notify_all()
        return self.index

    def resolve(self, token):
        """ResolveTokenAndDefaultMeta: no ACLs -> allow all; "" -> anonymous; unknown -> 403."""
        if not self.acl_enabled:
            return ALLOW_ALL
        if token == "":
            return self.anon
        a = self.tokens.get(token)
        if a is None:
            raise HTTPErr(403, "ACL not found")
        return a

    # ---- JSON views
    def node_json(self):
        a = "127.0.0.1"
        return {"ID": self.node_id, "Node": self.cfg.node, "Address": a, "Datacenter": self.cfg.datacenter,
                "TaggedAddresses": {"lan": a, "lan_ipv4": a, "wan": a, "wan_ipv4": a},
                "Meta": {"consul-network-segment": "", "consul-version": VERSION},
                "CreateIndex": BOOT_INDEX, "ModifyIndex": BOOT_INDEX}

    def serf_json(self):
        return {"Node": self.cfg.node, "CheckID": "serfHealth", "Name": "Serf Health Status",
                "Status": "passing", "Notes": "", "Output": "Agent alive and reachable",
                "ServiceID": "", "ServiceName": "", "ServiceTags": [], "Type": "", "Interval": "",
                "Timeout": "", "ExposedPort": 0, "Definition": {},
                "CreateIndex": BOOT_INDEX, "ModifyIndex": BOOT_INDEX}

    def check_json(self, c, catalog):
        return {"Node": self.cfg.node, "CheckID": c["CheckID"], "Name": c["Name"],
                "Status": c["cat_status"] if catalog else c["Status"], "Notes": c["Notes"],
                "Output": c["cat_output"] if catalog else c["Output"],
                "ServiceID": c["ServiceID"], "ServiceName": c["ServiceName"],
                "ServiceTags": c["ServiceTags"], "Type": c["Type"], "Interval": go_dur(c["interval"]),
                "Timeout": go_dur(c["timeout"]), "ExposedPort": 0,
                "Definition": {"Interval": go_dur(c["interval"]), "Timeout": go_dur(c["timeout"]),
                               "DeregisterCriticalServiceAfter": go_dur(c["dcsa_raw"]),
                               "TTL": go_dur(c["ttl"] or 0)},
                "CreateIndex": c["CreateIndex"] if catalog else 0,
                "ModifyIndex": c["ModifyIndex"] if catalog else 0}

    def svc_catalog_json(self, s):
        return {"ID": s["ID"], "Service": s["Service"], "Tags": s["Tags"], "Address": s["Address"],
                "Meta": s["Meta"], "Port": s["Port"], "Weights": s["Weights"],
                "EnableTagOverride": s["EnableTagOverride"],
                "Proxy": {"Mode": "", "MeshGateway": {}, "Expose": {}}, "Connect": {},
                "CreateIndex": s["CreateIndex"], "ModifyIndex": s["ModifyIndex"]}

    def svc_agent_json(self, s):
        # buildAgentService: never null Tags/Meta, adds the agent's Datacenter
        out = {"ID": s["ID"], "Service": s["Service"], "Tags": s["Tags"] or [],
               "Meta": s["Meta"] or {}, "Port": s["Port"], "Address": s["Address"]}
        if s["TaggedAddresses"]:
            out["TaggedAddresses"] = s["TaggedAddresses"]
        out.update({"Weights": s["Weights"], "EnableTagOverride": s["EnableTagOverride"],
                    "Datacenter": self.cfg.datacenter})
        return out

    CONSUL_SVC = {"ID": "consul", "Service": "consul", "Tags": [], "Address": "", "Meta": {},
                  "Port": 8300, "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": False,
                  "TaggedAddresses": None, "CreateIndex": BOOT_INDEX, "ModifyIndex": BOOT_INDEX}

    # ---- agent writes (caller holds the lock)
    def register(self, svc, chks, replace):
        """Agent.AddService + an immediate anti-entropy sync (the HTTP handler syncs before it
        answers). The catalog skips identical writes (ensureServiceTxn IsSameService)."""
        idx = self.bump()
        sid, name = svc["ID"], svc["Service"]
        old = self.services.get(sid)
        touched = set()
        keys = ("Service", "Tags", "Address", "Meta", "Port", "Weights", "EnableTagOverride",
                "TaggedAddresses")
        if old is None or any(old[k] != svc[k] for k in keys):
            svc["CreateIndex"], svc["ModifyIndex"] = (old["CreateIndex"] if old else idx), idx
            touched.add(name)
            self.tbl["services"] = idx
            if old and old["Service"] != name:
                touched.add(old["Service"])
        else:
            svc["CreateIndex"], svc["ModifyIndex"] = old["CreateIndex"], old["ModifyIndex"]
        svc["registered_at"] = time.time()
        self.services[sid] = svc
        new_ids = set()
        for i, ct in enumerate(chks):
            # Agent.addServiceInternal: "service:<id>" (":<n>" when several), "Service '<name>' check"
            cid = ct["CheckID"] or "service:%s%s" % (sid, ":%d" % (i + 1) if len(chks) > 1 else "")
            new_ids.add(cid)
            c = self.new_check(cid, ct, svc)
            self.load_check_state(c)
            prev = self.checks.get(cid)
            same = prev is not None and all(prev[k] == c[k] for k in (
                "Name", "Status", "Output", "Notes", "ServiceID", "ServiceName", "ServiceTags", "Type"))
            if same:
                c["CreateIndex"], c["ModifyIndex"] = prev["CreateIndex"], prev["ModifyIndex"]
            else:
                c["CreateIndex"], c["ModifyIndex"] = (prev["CreateIndex"] if prev else idx), idx
                touched.add(name)
                self.tbl["checks"] = idx
            if prev is not None:   # keep the sim's bookkeeping across re-registration
                for k in ("updates", "update_times", "history", "last_update"):
                    c[k] = prev[k]
                c["history"].append([time.time(), c["Status"]])
            self.checks[cid] = c
        for cid in [k for k, c in self.checks.items() if c["ServiceID"] == sid and k not in new_ids]:
            if replace:
                del self.checks[cid]
            else:
                self.checks[cid].update(ServiceName=name, ServiceTags=svc["Tags"] or [])
            touched.add(name)
            self.tbl["checks"] = idx
        for n in touched:
            self.svc_idx[n] = idx
        if old and old["Service"] != name:
            self.maybe_extinct(old["Service"], idx)

    def new_check(self, cid, ct, svc):
        status = ct["Status"] or "critical"        # checks start critical unless Status is given
        now = time.monotonic()
        dcsa = max(ct["DCSA"], self.cfg.dereg_min) if ct["DCSA"] > 0 else 0
        return {"CheckID": cid, "Name": ct["Name"] or "Service '%s' check" % svc["Service"],
                "Status": status, "Output": "", "Notes": ct["Notes"], "ServiceID": svc["ID"],
                "ServiceName": svc["Service"], "ServiceTags": svc["Tags"] or [], "Type": ct["Type"],
                "interval": ct["Interval"], "timeout": ct["Timeout"], "ttl": ct["TTL"],
                "dcsa": dcsa, "dcsa_raw": ct["DCSA"],
                "deadline": now + ct["TTL"] if ct["TTL"] else None, "last_output": "",
                "critical_since": None, "cat_status": status, "cat_output": "", "defer_at": None,
                "last_update": None, "updates": 0, "update_times": [], "history": [[time.time(), status]]}

    def load_check_state(self, c):
        """agent/agent.go (hashicorp/consul) Agent.loadCheckState: an agent with a data dir (not
        -dev) restores a TTL check's persisted Status and Output when the check is (re-)added,
        whatever Status the registration carried, unless the saved state has expired (it is saved
        by every TTL update, persistCheckState, with Expires = now + TTL)."""
        saved = self.check_state.get(c["CheckID"])
        if not self.cfg.data_dir or not c["ttl"] or saved is None:
            return
        status, output, expires = saved
        if time.time() >= expires:
            del self.check_state[c["CheckID"]]      # purgeCheckState
            return
        c["Status"], c["Output"], c["cat_status"], c["cat_output"] = status, output, status, output
        c["history"] = [[time.time(), status]]
        c["restored"] = True

    def maybe_extinct(self, name, idx):
        if any(s["Service"] == name for s in self.services.values()):
            self.svc_idx[name] = idx
        else:
            self.svc_idx.pop(name, None)
            self.extinct_idx = idx   # serviceLastExtinctionIndexName

    def remove_service(self, sid, why):
        svc = self.services.pop(sid)
        idx = self.bump()
        for cid in [k for k, c in self.checks.items() if c["ServiceID"] == sid]:
            del self.checks[cid]
            self.check_state.pop(cid, None)        # removeCheckLocked -> purgeCheckState
        self.tbl["services"] = self.tbl["checks"] = idx
        self.maybe_extinct(svc["Service"], idx)
        self.events.append({"time": time.time(), "event": why, "service_id": sid, "index": idx})

    def ttl_set(self, c, status, output):
        """CheckTTL.SetStatus: truncate output, remember it, restart the TTL timer."""
        if len(output) > OUTPUT_MAX:
            output = "%s ...\nCaptured %d of %d bytes" % (output[:OUTPUT_MAX], OUTPUT_MAX, len(output))
        c["last_output"] = output
        c["deadline"] = time.monotonic() + c["ttl"]
        if self.cfg.data_dir:          # Agent.updateTTLCheck -> persistCheckState
            self.check_state[c["CheckID"]] = (status, output, time.time() + c["ttl"])
        now = time.time()
        c["last_update"], c["updates"] = now, c["updates"] + 1
        c["update_times"] = (c["update_times"] + [now])[-100:]
        self.update_check(c, status, output)

    def update_check(self, c, status, output):
        """local.State.UpdateCheck: critical-time tracking, idempotent updates dropped, output-only
        changes deferred by check_update_interval/2 + rand(check_update_interval)."""
        now = time.monotonic()
        if status == "critical":
            if c["critical_since"] is None:
                c["critical_since"] = now
        else:
            c["critical_since"] = None
        if c["Status"] == status and c["Output"] == output:
            return
        civ = self.cfg.check_update_interval
        if civ > 0 and c["Status"] == status:
            c["Output"] = output
            if c["defer_at"] is None:
                c["defer_at"] = now + civ / 2 + random.uniform(0, civ)
            return
        if c["Status"] != status:
            c["history"] = (c["history"] + [[time.time(), status]])[-100:]
        c["Status"], c["Output"] = status, output
        self.sync_check(c)

    def sync_check(self, c):
        idx = self.bump()
        c["cat_status"], c["cat_output"] = c["Status"], c["Output"]
        c["ModifyIndex"], c["defer_at"] = idx, None
        self.svc_idx[c["ServiceName"]] = idx
        self.tbl["checks"] = idx

    def expire(self, c):
        # CheckTTL.run / getExpiredOutput
        c["deadline"] = None
        out = "TTL expired"
        if c["last_output"]:
            out += " (last output before timeout follows): " + c["last_output"]
        self.update_check(c, "critical", out)

    def tick(self):
        """TTL timers, deferred output syncs and the critical-service reaper. api-docs/agent/check,
        DeregisterCriticalServiceAfter: "If a check is in the critical state for more than this
        configured value, then its associated service (and all of its associated checks) will
        automatically be deregistered. The minimum timeout is 1 minute, and the process that reaps
        critical services runs every 30 seconds" - the sim reaps every --reap-interval (100ms) and
        clamps to --dereg-min (0s). Critical time starts when an update makes the check critical
        (local.State.UpdateCheck), so a never-updated TTL check counts from its TTL expiry."""
        with self.lock:
            now = time.monotonic()
            for c in list(self.checks.values()):
                if c["deadline"] is not None and now >= c["deadline"]:
                    self.expire(c)
                if c["defer_at"] is not None and now >= c["defer_at"]:
                    c["defer_at"] = None
                    if (c["cat_status"], c["cat_output"]) != (c["Status"], c["Output"]):
                        self.sync_check(c)
            if now >= self.next_reap:
                self.next_reap = now + self.cfg.reap_interval
                reaped = set()
                for c in list(self.checks.values()):
                    sid = c["ServiceID"]
                    if (sid and sid not in reaped and sid in self.services and c["dcsa"] > 0
                            and c["critical_since"] is not None and now - c["critical_since"] > c["dcsa"]):
                        reaped.add(sid)
                        self.remove_service(sid, "reaped: critical longer than %s" % go_dur(c["dcsa"]))

    # ---- queries (caller holds the lock); return (index, result, filtered)
    def health_index(self, name):
        """maxIndexAndWatchChForService: extinction index for a missing service, else the
        per-service index, else max(nodes, services, checks)."""
        exists = name == "consul" or any(s["Service"] == name for s in self.services.values())
        if not exists and self.extinct_idx:
            return self.extinct_idx
        if name in self.svc_idx:
            return self.svc_idx[name]
        return max(self.tbl["nodes"], self.tbl["services"], self.tbl["checks"])

    def q_health(self, name, tags, passing, authz, scope=("default", "default")):
        insts = [self.CONSUL_SVC] if name == "consul" else []
        insts += sorted((s for s in self.services.values() if s["Service"] == name and
                         (s.get("Namespace", "default"), s.get("Partition", "default")) == scope),
                        key=lambda s: s["ID"])
        out, filtered = [], False
        want = [t.lower() for t in tags]     # tag filters are case-insensitive, all must match
        for s in insts:
            have = [t.lower() for t in s["Tags"] or []]
            if any(t not in have for t in want):
                continue
            checks = [self.serf_json()] + [self.check_json(c, True) for c in self.checks.values()
                                           if c["ServiceID"] == s["ID"]]
            checks.sort(key=lambda c: c["CheckID"])
            if passing and any(c["Status"] != "passing" for c in checks):
                continue
            if not (authz.allowed("service", name, "read") and authz.allowed("node", self.cfg.node, "read")):
                filtered = True
                continue
            out.append({"Node": self.node_json(), "Service": self.svc_catalog_json(s), "Checks": checks})
        return self.health_index(name), out, filtered

    def q_catalog(self, authz):
        names = {"consul": set()}
        for s in self.services.values():
            names.setdefault(s["Service"], set()).update(s["Tags"] or [])
        out, filtered = {}, False
        for n in sorted(names):
            if authz.allowed("service", n, "read"):
                out[n] = sorted(names[n])
            else:
                filtered = True
        return self.tbl["services"], out, filtered

    def q_kv_list(self, prefix, authz):
        """KV docs: "if ?recurse is provided, the returned X-Consul-Index corresponds to the latest
        ModifyIndex within the prefix"; state kvsListTxn also counts tombstones under the prefix
        and falls back to the table index; entries are filtered by key:read (KVS.List)."""
        keys = sorted(k for k in self.kv if k.startswith(prefix))
        lidx = max([self.kv[k]["ModifyIndex"] for k in keys] +
                   [i for k, i in self.tombstones.items() if k.startswith(prefix)] + [0])
        idx = (lidx or self.tbl["kvs"]) if prefix else self.tbl["kvs"]
        vis = [k for k in keys if authz.allowed("key", k, "read")]
        return idx, vis, len(vis) != len(keys)

    def kv_json(self, k):
        e = self.kv[k]
        return {"LockIndex": 0, "Key": k, "Flags": e["Flags"],
                "Value": base64.b64encode(e["Value"]).decode() if e["Value"] else None,
                "CreateIndex": e["CreateIndex"], "ModifyIndex": e["ModifyIndex"]}

    # ---- KV writes (caller holds the lock)
    def kv_put(self, key, value, flags, cas):
        """KVS.Apply set/cas: cas=0 only creates; cas=N needs ModifyIndex==N; identical writes
        don't modify the entry (kvsSetTxn)."""
        idx = self.bump()
        e = self.kv.get(key)
        if cas is not None and ((cas == 0 and e is not None) or
                                (cas != 0 and (e is None or e["ModifyIndex"] != cas))):
            return False
        if e is not None and e["Value"] == value and e["Flags"] == flags:
            return True
        self.kv[key] = {"Value": value, "Flags": flags, "CreateIndex": e["CreateIndex"] if e else idx,
                        "ModifyIndex": idx}
        self.tbl["kvs"] = idx
        return True

    def kv_delete(self, key, recurse, cas):
        idx = self.bump()
        if recurse:
            keys = [k for k in self.kv if k.startswith(key)]
        else:
            e = self.kv.get(key)
            if cas is not None and (e is None or e["ModifyIndex"] != cas):
                return e is None   # kvsDeleteCASTxn: a missing key "succeeds"
            keys = [key] if e else []
        for k in keys:
            del self.kv[k]
            self.tombstones[k] = idx
        if keys:
            self.tbl["kvs"] = idx
        return True

    # ---- fault injection
    def take_faults(self, path):
        f, res = self.faults, {"delay": 0, "fail": None, "truncate": False, "garbage": False}
        if f["delay"][0] and path.startswith(f["delay"][1]):
            res["delay"] = f["delay"][0]
        if f["fail"][0] > 0 and path.startswith(f["fail"][3]):
            f["fail"][0] -= 1
            res["fail"] = (f["fail"][1], f["fail"][2])
            return res
        for k in ("truncate", "garbage"):
            if f[k][0] > 0 and path.startswith(f[k][1]):
                f[k][0] -= 1
                res[k] = True
        return res

    def set_index(self, n):
        """Like a raft snapshot restore of older data: indexes drop, blockers are abandoned."""
        clamp = lambda v: min(v, n)
        self.index = n
        for c in list(self.services.values()) + list(self.checks.values()) + list(self.kv.values()):
            c["CreateIndex"], c["ModifyIndex"] = clamp(c["CreateIndex"]), clamp(c["ModifyIndex"])
        for d in (self.tombstones, self.svc_idx, self.tbl):
            for k in d:
                d[k] = clamp(d[k])
        self.extinct_idx = clamp(self.extinct_idx)
        self.abandon_gen += 1
        self.cond.notify_all()

    def dump(self, with_log):
        mono, wall = time.monotonic(), time.time()
        epoch = lambda m: None if m is None else wall - (mono - m)
        svcs = {sid: {k: s[k] for k in ("ID", "Service", "Tags", "Address", "Port", "Meta", "Weights",
                                         "Namespace", "Partition",
                                         "CreateIndex", "ModifyIndex", "registered_at")}
                for sid, s in sorted(self.services.items())}
        checks = {cid: {"CheckID": cid, "Name": c["Name"], "ServiceID": c["ServiceID"],
                        "ServiceName": c["ServiceName"], "Type": c["Type"], "Status": c["Status"],
                        "Output": c["Output"], "Notes": c["Notes"], "TTL": c["ttl"],
                        "DeregisterCriticalServiceAfter": c["dcsa"] or None,
                        "catalog_status": c["cat_status"], "catalog_output": c["cat_output"],
                        "last_update": c["last_update"], "updates": c["updates"],
                        "update_times": c["update_times"], "history": c["history"],
                        "ttl_deadline": epoch(c["deadline"]), "critical_since": epoch(c["critical_since"]),
                        "ModifyIndex": c["ModifyIndex"]}
                  for cid, c in sorted(self.checks.items())}
        kv = {}
        for k, e in sorted(self.kv.items()):
            try:
                val = e["Value"].decode()
            except UnicodeDecodeError:
                val = None
            kv[k] = {"value": val, "value_b64": base64.b64encode(e["Value"]).decode(), "flags": e["Flags"],
                     "create_index": e["CreateIndex"], "modify_index": e["ModifyIndex"]}
        out = {"index": self.index, "node": self.cfg.node, "datacenter": self.cfg.datacenter,
               "restarts": self.restarts, "blocked_queries": self.blocked, "services": svcs,
               "checks": checks, "kv": kv, "tombstones": dict(self.tombstones),
               "indexes": {"tables": dict(self.tbl), "services": dict(self.svc_idx),
                           "extinction": self.extinct_idx},
               "events": list(self.events), "requests": dict(self.requests),
               "requests_by_method": dict(self.requests_m),
               "faults": {k: list(v) for k, v in self.faults.items()},
               "down_for": max(0.0, self.down_until - mono),
               "acl": {"enabled": self.acl_enabled,
                       "accessors": {s: a.accessor for s, a in self.tokens.items()}}}
        if with_log:
            out["log"] = list(self.log)
        return out


# ---------------------------------------------------------------- request parsing helpers
def qget(q, name, default=""):
    return q.get(name, [default])[0]


def parse_wait(q):
    """parseWait + blockingquery: wait defaults to 5m, is capped at 10m, and gets up to
    wait/16 random jitter; index must be a uint64."""
    wait, index = qget(q, "wait"), qget(q, "index")
    w, i = 0.0, 0
    if wait:
        try:
            w = parse_duration(wait)
        except ValueError:
            raise HTTPErr(400, "Invalid wait time")
    if index:
        if not re.fullmatch(r"[0-9]+", index) or int(index) >= 2**64:
            raise HTTPErr(400, "Invalid index")
        i = int(index)
    if "stale" in q and "consistent" in q:
        raise HTTPErr(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
    w = MAX_WAIT if w > MAX_WAIT else DEFAULT_WAIT if w <= 0 else w
    return i, w + random.uniform(0, w / JITTER_FRACTION)


def parse_service(body):
    """AgentRegisterService decode step (structs.ServiceDefinition)."""
    d = decode_json(body, "structs.ServiceDefinition")
    S = "ServiceDefinition"
    svc = {"Service": field(d, "Name", "string", S, ""), "ID": field(d, "ID", "string", S, ""),
           "Tags": field(d, "Tags", "[]string", S), "Address": field(d, "Address", "string", S, ""),
           "Meta": field(d, "Meta", "map[string]string", S), "Port": field(d, "Port", "int", S, 0),
           "Weights": field(d, "Weights", "object", S),
           "EnableTagOverride": field(d, "EnableTagOverride", "bool", S, False),
           "TaggedAddresses": field(d, "TaggedAddresses", "object", S),
           "Namespace": field(d, "Namespace", "string", S, ""), "Partition": field(d, "Partition", "string", S, "")}
    raw_checks = []
    one = field(d, "Check", "object", S)
    if one:
        raw_checks.append(one)
    raw_checks += [c for c in field(d, "Checks", "[]object", S, []) if c]
    checks = []
    for rc in raw_checks:
        c = {k.replace("_", "").lower(): v for k, v in rc.items()}
        C = "CheckType"
        ct = {"CheckID": field(c, "CheckID", "string", C, ""), "Name": field(c, "Name", "string", C, ""),
              "Notes": field(c, "Notes", "string", C, ""), "Status": field(c, "Status", "string", C, ""),
              "TTL": field(c, "TTL", "duration", C, 0.0), "Interval": field(c, "Interval", "duration", C, 0.0),
              "Timeout": field(c, "Timeout", "duration", C, 0.0),
              "DCSA": field(c, "DeregisterCriticalServiceAfter", "duration", C, 0.0)}
        kinds = [k for k in ("http", "tcp", "udp", "grpc", "h2ping", "osservice") if c.get(k)]
        if c.get("args") or c.get("scriptargs"):
            kinds.append("script")
        alias = bool(c.get("aliasservice") or c.get("aliasnode"))
        ct["Type"] = kinds[0].replace("osservice", "os_service") if kinds else "alias" if alias else "ttl"
        ct["_interval_check"], ct["_alias"] = bool(kinds), alias
        if any(v not in (None, "", 0, False, [], {}) for v in c.values()):   # CheckType.Empty()
            checks.append(ct)
    if svc["ID"] == "" and svc["Service"]:
        svc["ID"] = svc["Service"]      # "ID defaults to the Name parameter"
    return svc, checks


def validate_service(svc, checks):
    """The validation that follows token resolution in AgentRegisterService."""
    w = svc["Weights"]
    if w is None:
        svc["Weights"] = {"Passing": 1, "Warning": 1}    # docs: default {"Passing": 1, "Warning": 1}
    else:
        wl = {k.lower(): v for k, v in w.items()}
        p, wa = wl.get("passing", 0), wl.get("warning", 0)
        if not isinstance(p, int) or not isinstance(wa, int):
            raise HTTPErr(400, "Request decode failed: json: cannot unmarshal into Go struct field "
                          "ServiceDefinition.Weights of type int")
        if p < 1:
            raise HTTPErr(400, "Invalid Weights: Passing must be greater than 0")
        if wa < 0:
            raise HTTPErr(400, "Invalid Weights: Warning must be greater or equal than 0")
        svc["Weights"] = {"Passing": p, "Warning": wa}
    meta = svc["Meta"] or {}
    if len(meta) > 64:
        raise HTTPErr(400, "Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs")
    for k, v in meta.items():
        why = ("Key cannot be blank" if k == "" else
               "Key contains invalid characters" if not re.fullmatch(r"[a-zA-Z0-9_-]+", k) else
               "Key is too long (limit: 128 characters)" if len(k) > 128 else
               "Key prefix 'consul-' is reserved for internal use" if k.startswith("consul-") else
               "Value is too long (limit: 512 characters)" if len(v) > 512 else None)
        if why:
            raise HTTPErr(400, "Invalid Service Meta: " + why)
    if svc["Meta"] is not None:
        svc["Meta"] = dict(sorted(meta.items()))
    if not 0 <= svc["Port"] <= 65535:
        raise HTTPErr(400, "Validation failed: invalid port")
    for ct in checks:   # structs.CheckType.Validate
        why = None
        if ct["Interval"] > 0 and ct["TTL"] > 0:
            why = "Interval and TTL cannot both be specified"
        elif ct["_interval_check"] and ct["Interval"] <= 0:
            why = "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks"
        elif ct["_alias"] and ct["_interval_check"]:
            why = "Interval cannot be set for Alias checks"
        elif ct["_alias"] and ct["TTL"] > 0:
            why = "TTL must be not be set for Alias checks"
        elif not ct["_interval_check"] and not ct["_alias"] and ct["TTL"] <= 0:
            why = "TTL must be > 0 for TTL checks"
        if why:
            raise HTTPErr(400, "Invalid check: " + why)
    for ct in checks:
        if ct["Status"] and ct["Status"] not in STATUSES:
            raise HTTPErr(400, "Status for checks must 'passing', 'warning', 'critical'")


SUSPICIOUS_EXTENSIONS = (
    ".js", ".css", ".html", ".htm", ".xml", ".json", ".txt", ".log", ".php", ".asp", ".jsp", ".cgi", ".pl",
    ".py", ".rb", ".sh", ".exe", ".dll", ".bat", ".cmd", ".com", ".scr", ".vbs", ".pdf", ".doc", ".docx",
    ".xls", ".xlsx", ".ppt", ".pptx", ".zip", ".rar", ".tar", ".gz", ".7z", ".bz2", ".jpg", ".jpeg", ".png",
    ".gif", ".svg", ".ico", ".bmp", ".mp3", ".mp4", ".avi", ".mov", ".wmv", ".flv", ".swf", ".woff",
    ".woff2", ".ttf", ".eot", ".otf")


def validate_kv_key(key):
    """agent/kvs_endpoint.go validateKVKey as shipped in Consul 1.21.5 (hashicorp/consul#22682, relaxed
    again in #22850): 400 for a leading '/', any character outside a-zA-Z0-9,-_./, '../', and keys
    ending in a file extension a proxy might cache. Returns the error text or None."""
    if key.startswith("/"):
        return "key must not begin with a '/'"
    pos = 0
    for ch in key:
        if not (ch.isascii() and (ch.isalnum() or ch in ",-_./")):
            return ("key contains invalid character '%s' at position %d. Only alphanumeric characters "
                    "and ,-_./ are allowed" % (ch, pos))
        pos += len(ch.encode())
    if "../" in key or "..\\" in key:
        return "key contains path traversal sequence"
    low = key.lower()
    for ext in SUSPICIOUS_EXTENSIONS:
        if low.endswith(ext):
            return "key contains suspicious file extension '%s' that may be cached by proxies" % ext
    return None


def meta_headers(idx, q, filtered, token):
    """setMeta: X-Consul-Index (never 0 - 'it is always safe to return index=1'),
    X-Consul-KnownLeader, X-Consul-LastContact, X-Consul-Effective-Consistency."""
    h = {"X-Consul-Effective-Consistency": "stale" if "stale" in q else
         "consistent" if "consistent" in q else "leader",
         "X-Consul-Index": str(max(int(idx), 1)), "X-Consul-KnownLeader": "true",
         "X-Consul-LastContact": "0"}
    if filtered and token:   # maskResultsFilteredByACLs: never told to anonymous callers
        h["X-Consul-Results-Filtered-By-ACLs"] = "true"
    return h


def json_resp(obj, headers=None):
    return 200, go_json(obj), "application/json", headers or {}


EMPTY_OK = (200, b"", None, {})


# ---------------------------------------------------------------- HTTP layer
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    # (path, is_prefix, methods, handler) - Go ServeMux semantics: exact, then longest prefix
    ROUTES = [
        ("/v1/agent/service/register", False, ("PUT",), "h_register"),
        ("/v1/agent/service/deregister/", True, ("PUT",), "h_deregister"),
        ("/v1/agent/service/", True, ("GET",), "h_agent_service"),
        ("/v1/agent/services", False, ("GET",), "h_agent_services"),
        ("/v1/agent/checks", False, ("GET",), "h_agent_checks"),
        ("/v1/agent/check/pass/", True, ("PUT",), "h_check_pass"),
        ("/v1/agent/check/warn/", True, ("PUT",), "h_check_warn"),
        ("/v1/agent/check/fail/", True, ("PUT",), "h_check_fail"),
        ("/v1/agent/check/update/", True, ("PUT",), "h_check_update"),
        ("/v1/agent/self", False, ("GET",), "h_self"),
        ("/v1/acl/token/self", False, ("GET",), "h_token_self"),
        ("/v1/health/service/", True, ("GET",), "h_health"),
        ("/v1/catalog/services", False, ("GET",), "h_catalog"),
        ("/v1/kv/", True, ("GET", "PUT", "DELETE"), "h_kv"),
        ("/v1/status/leader", False, ("GET",), "h_leader"),
    ]

    @property
    def sim(self):
        return self.server.sim

    def log_message(self, fmt, *args):
        if self.sim.cfg.verbose:
            sys.stderr.write("consul-sim: %s %s\n" % (self.address_string(), fmt % args))

    def address_string(self):
        return self.client_address[0] if isinstance(self.client_address, tuple) else "unix"

    def send_response(self, code, message=None):   # Go sends no Server header
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def setup(self):
        super().setup()
        with self.sim.lock:
            self.sim.conns.add(self.connection)

    def finish(self):
        with self.sim.lock:
            self.sim.conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def do_ANY(self):
        self.dispatch()
    do_GET = do_PUT = do_POST = do_DELETE = do_OPTIONS = do_HEAD = do_PATCH = do_ANY

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def dispatch(self):
        parts = urlsplit(self.path)
        path, q = unquote(parts.path), parse_qs(parts.query, keep_blank_values=True)
        try:
            body = self.read_body()
            if path.startswith("/sim/"):
                self.write(self.sim_control(path, q, body))
            else:
                self.api(path, q, body)
        except Drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except (ConnectionError, socket.timeout, ValueError):
            self.close_connection = True

    def api(self, path, q, body):
        sim = self.sim
        with sim.lock:
            if sim.down_until > time.monotonic() or sim.shutting_down:
                raise Drop()
            sim.requests[path] += 1
            sim.requests_m["%s %s" % (self.command, path)] += 1
            f = sim.take_faults(path)
        if f["delay"]:
            time.sleep(f["delay"] / 1000.0)
        no_leader = sim.no_leader and path.startswith(("/v1/health/", "/v1/catalog/", "/v1/kv/"))
        if no_leader and (self.command != "GET" or "stale" not in q):
            # Reads go to a server over RPC; without a leader the forwarding fails with
            # structs.ErrNoLeader (agent/consul/rpc.go) -> 500 "No cluster leader". ?stale lets any
            # server answer from its own state, and setMeta/setKnownLeader (agent/http.go) then
            # says X-Consul-KnownLeader: false. Agent endpoints (register, checks) stay local.
            f["fail"] = (500, "No cluster leader")
        if f["fail"]:
            st, text = f["fail"]
            resp = (st, (text or ("No cluster leader" if st >= 500 else "simulated failure")).encode(), TEXT, {})
        else:
            try:
                resp = self.route(path, q, body)
            except HTTPErr as e:
                resp = (e.status, e.msg.encode(), TEXT, e.headers)
        st, data, ctype, hdrs = resp
        hdrs = dict(hdrs)
        if no_leader and "X-Consul-KnownLeader" in hdrs:
            hdrs["X-Consul-KnownLeader"] = "false"
        # agent/http.go: every answer says the agent's acl.default_policy ("allow" with ACLs off).
        hdrs["X-Consul-Default-Acl-Policy"] = ("deny" if sim.acl_enabled and
                                               sim.cfg.acl_default_policy == "deny" else "allow")
        if f["garbage"]:
            st, data, ctype = 200, b'{"ID": "garbage", "Tags": [1, 2,, }}\n', "application/json"
        with sim.lock:
            sim.log.append({"time": time.time(), "method": self.command, "path": path,
                            "query": urlsplit(self.path).query, "status": st})
        self.write((st, data, ctype, hdrs), truncate=f["truncate"])

    def write(self, resp, truncate=False):
        st, data, ctype, hdrs = resp
        hdrs = dict(hdrs)
        hdrs.setdefault("Vary", "Accept-Encoding")       # gziphandler always adds Vary
        if (not truncate and len(data) >= 1400 and
                "gzip" in self.headers.get("Accept-Encoding", "")):
            data = gzip.compress(data)
            hdrs["Content-Encoding"] = "gzip"
        self.send_response(st)
        for k, v in hdrs.items():     # Go's Header.Set canonicalizes: X-Consul-Knownleader
            self.send_header("-".join(p[:1].upper() + p[1:].lower() for p in k.split("-")), v)
        if ctype and (data or ctype == "application/json"):
            self.send_header("Content-Type", ctype)
        if truncate:
            self.send_header("Content-Length", str(2 * len(data) + 64))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            raise Drop()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def route(self, path, q, body):
        best = None
        for p, prefix, methods, name in self.ROUTES:
            if path == p or (prefix and path.startswith(p) and (best is None or len(p) > len(best[0]))):
                best = (p, prefix, methods, name)
                if path == p:
                    break
        if best is None:
            # HTTPHandlers.Index
            if path == "/":
                return 200, b"Consul Agent", TEXT, {}
            msg = ("Invalid URL path: not a recognized HTTP API endpoint\n" if "/v1/" in path else
                   "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'\n")
            return 404, msg.encode(), TEXT, {}
        p, prefix, methods, name = best
        if self.command == "OPTIONS":
            return 200, b"", None, {"Allow": ",".join(("OPTIONS",) + methods)}
        if self.command not in methods:
            # wrap(): MethodNotAllowedError -> 405 + Allow header
            return (405, ("method %s not allowed" % self.command).encode(), TEXT,
                    {"Allow": ",".join(("OPTIONS",) + methods)})
        return getattr(self, name)(q, body, path[len(p):] if prefix else "")

    # ---- token / dc
    def token(self, q):
        """parseTokenInternal: ?token=, then X-Consul-Token, then Authorization: Bearer."""
        t = qget(q, "token")
        if t:
            return t
        t = self.headers.get("X-Consul-Token", "")
        if t:
            return t
        parts = self.headers.get("Authorization", "").split(" ")
        if len(parts) > 1 and parts[0].lower() == "bearer":
            return " ".join(parts[1:]).strip().split(" ")[0].strip()
        return ""

    def authz(self, q):
        return self.sim.resolve(self.token(q))

    def check_dc(self, q):
        # RPC forwarding: an unknown datacenter is structs.ErrNoDCPath -> 500
        dc = qget(q, "dc")
        if dc and dc != self.sim.cfg.datacenter:
            raise HTTPErr(500, "No path to datacenter")

    def blocking(self, q, min_idx, wait, compute):
        """Blocking Queries (api-docs/features/blocking): with ?index the request "hangs" until
        the result's index moves past it or wait ends (then the unchanged index is returned).
        blockingquery.Query: index < 1 is answered as 1; an abandoned state store (snapshot
        restore, here /sim/index) returns at once, possibly with a lower index."""
        sim = self.sim
        deadline = time.monotonic() + wait
        with sim.cond:
            gen, rgen = sim.abandon_gen, sim.restart_gen
            sim.blocked += 1
            try:
                while True:
                    if sim.restart_gen != rgen or sim.shutting_down:
                        raise Drop()
                    idx, out, filtered = compute()
                    idx = max(idx, 1)
                    if min_idx == 0 or idx > min_idx or sim.abandon_gen != gen:
                        return idx, out, filtered
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return idx, out, filtered
                    sim.cond.wait(left)
            finally:
                sim.blocked -= 1

    @staticmethod
    def no_filter(q):
        if qget(q, "filter"):
            raise HTTPErr(400, "consul-sim: ?filter expressions are not supported")

    # ---- Agent HTTP API: Service (api-docs/agent/service)
    # Register Service: PUT, body ServiceDefinition (case-insensitive or snake_case keys); ID
    # defaults to Name; Weights default {Passing:1, Warning:1}; Check/Checks with TTL; checks start
    # critical unless Status; ?replace-existing-checks drops checks not in the definition.
    # Errors (agent_endpoint.go): 400 "Request decode failed: ...", "Missing service name",
    # "Invalid service address", "Invalid check: ...", "Status for checks must ..."; 403 ACL.
    # Success: 200 with an empty body (after a synchronous catalog sync).
    def h_register(self, q, body, _):
        svc, checks = parse_service(body)
        if svc["Service"] == "":
            raise HTTPErr(400, "Missing service name")
        if svc["Address"] in ("0.0.0.0", "::", "[::]"):
            raise HTTPErr(400, "Invalid service address")
        authz = self.authz(q)
        validate_service(svc, checks)
        # Enterprise (api-docs/agent/service, "ns"/"partition" query parameters or the
        # Namespace/Partition fields): the sim records them and scopes health queries by them.
        svc["Namespace"] = svc["Namespace"] or qget(q, "ns") or "default"
        svc["Partition"] = svc["Partition"] or qget(q, "partition") or "default"
        with self.sim.lock:
            authz.require("service", svc["Service"], "write")     # vetServiceRegisterWithAuthorizer
            old = self.sim.services.get(svc["ID"])
            if old and old["Service"] != svc["Service"]:
                authz.require("service", old["Service"], "write")
            rec = qget(q, "replace-existing-checks", None)
            self.sim.register(svc, checks, rec is not None and rec in ("", "true"))
        return EMPTY_OK

    # Deregister Service: PUT /agent/service/deregister/:service_id; unknown ID -> 404
    # 'Unknown service ID "x". Ensure that the service ID is passed, not the service name.'
    # (vetServiceUpdateWithAuthorizer); its checks are removed too.
    def h_deregister(self, q, body, sid):
        authz = self.authz(q)
        with self.sim.lock:
            s = self.sim.services.get(sid)
            if s is None and self.sim.cfg.legacy_unknown_errors:
                # hashicorp/consul#5821: vetServiceUpdate's fmt.Errorf("Unknown service %q") -> 500
                raise HTTPErr(500, "Unknown service %s" % go_quote(sid))
            if s is None:
                raise HTTPErr(404, "Unknown service ID %s. Ensure that the service ID is passed, "
                                   "not the service name." % go_quote(sid))
            authz.require("service", s["Service"], "write")
            self.sim.remove_service(sid, "deregistered")
        return EMPTY_OK

    # List Services: GET /agent/services -> map ID -> service; not blocking (no X-Consul-Index);
    # results filtered by service:read.
    def h_agent_services(self, q, body, _):
        self.no_filter(q)
        authz = self.authz(q)
        with self.sim.lock:
            out = {sid: self.sim.svc_agent_json(s) for sid, s in sorted(self.sim.services.items())
                   if authz.allowed("service", s["Service"], "read")}
        return json_resp(out)

    # Get Service Configuration: GET /agent/service/:service_id (404 "unknown service ID: x").
    def h_agent_service(self, q, body, sid):
        authz = self.authz(q)
        with self.sim.lock:
            s = self.sim.services.get(sid)
            if s is None:
                raise HTTPErr(404, "unknown service ID: %s" % sid)
            authz.require("service", s["Service"], "read")
            out = self.sim.svc_agent_json(s)
        h = hashlib.sha256(go_json(out)).hexdigest()[:16]
        out["ContentHash"] = h
        return json_resp(out, {"X-Consul-Contenthash": h})

    # ---- Agent HTTP API: Checks (api-docs/agent/check)
    # List Checks: GET /agent/checks -> map CheckID -> check (local agent state, not blocking).
    def h_agent_checks(self, q, body, _):
        self.no_filter(q)
        authz = self.authz(q)
        with self.sim.lock:
            out = {cid: self.sim.check_json(c, False) for cid, c in sorted(self.sim.checks.items())
                   if authz.allowed("service", c["ServiceName"], "read")}
        return json_resp(out)

    # TTL Check Pass/Warn/Fail: PUT /agent/check/{pass,warn,fail}/:check_id?note= ("passed through
    # to the check's Output field"), resets the TTL clock. Unknown ID -> 404 'Unknown check ID "x".
    # Ensure that the check ID is passed, not the check name.'; a non-TTL check -> 500.
    def h_check_pass(self, q, body, cid):
        return self.check_update(q, cid, "passing", qget(q, "note"))

    def h_check_warn(self, q, body, cid):
        return self.check_update(q, cid, "warning", qget(q, "note"))

    def h_check_fail(self, q, body, cid):
        return self.check_update(q, cid, "critical", qget(q, "note"))

    # TTL Check Update: PUT /agent/check/update/:check_id with {"Status", "Output"}; a bad
    # status -> 400 "Invalid check status: '<s>'".
    def h_check_update(self, q, body, cid):
        d = decode_json(body, "agent.checkUpdate")
        status = field(d, "Status", "string", "checkUpdate", "")
        output = field(d, "Output", "string", "checkUpdate", "")
        if status not in STATUSES:
            raise HTTPErr(400, "Invalid check status: '%s'" % status)
        return self.check_update(q, cid, status, output)

    def check_update(self, q, cid, status, output):
        authz = self.authz(q)
        with self.sim.lock:
            c = self.sim.checks.get(cid)
            if c is None and self.sim.cfg.legacy_unknown_errors:
                # Agents before the fix of hashicorp/consul#5821, with ACLs enabled:
                # vetCheckUpdate returned fmt.Errorf("Unknown check %q") -> 500.
                raise HTTPErr(500, "Unknown check %s" % go_quote(cid))
            if c is None:    # vetCheckUpdateWithAuthorizer
                raise HTTPErr(404, "Unknown check ID %s. Ensure that the check ID is passed, not the "
                                   "check name." % go_quote(cid))
            authz.require("service", c["ServiceName"], "write")
            if not c["ttl"]:  # Agent.updateTTLCheck
                raise HTTPErr(500, "CheckID %s does not have associated TTL" % go_quote(cid))
            self.sim.ttl_set(c, status, output)
        return EMPTY_OK

    # Agent HTTP API "Read Configuration" (GET /agent/self, needs agent:read) - a minimal Config and
    # Member; Status HTTP API "Get Raft Leader" (GET /status/leader -> "127.0.0.1:8300"), the usual
    # readiness probe for a dev agent.
    def h_self(self, q, body, _):
        self.authz(q).require("agent", self.sim.cfg.node, "read")
        return json_resp({"Config": {"Datacenter": self.sim.cfg.datacenter, "NodeName": self.sim.cfg.node,
                                     "NodeID": self.sim.node_id, "Server": True, "Version": VERSION},
                          "Member": {"Name": self.sim.cfg.node, "Addr": "127.0.0.1", "Port": 8301,
                                     "Status": 1}})

    def h_leader(self, q, body, _):
        return json_resp("127.0.0.1:8300")

    # ACL Tokens: GET /acl/token/self (api-docs/acl/tokens "Read Self Token"); ACLs disabled ->
    # 401 "ACL support disabled"; unknown token -> 403 "ACL not found".
    def h_token_self(self, q, body, _):
        if not self.sim.acl_enabled:
            raise HTTPErr(401, "ACL support disabled")
        t = self.token(q)
        a = self.sim.tokens.get(t)
        if a is None:
            raise HTTPErr(403, "ACL not found")
        return json_resp({"AccessorID": a.accessor, "SecretID": a.secret, "Description": a.desc,
                          "Policies": [{"ID": "00000000-0000-0000-0000-000000000001",
                                        "Name": "global-management"}] if a.management else [],
                          "Local": False, "CreateTime": "2024-01-01T00:00:00Z", "Hash": "",
                          "CreateIndex": BOOT_INDEX, "ModifyIndex": BOOT_INDEX})

    # ---- Health HTTP API (api-docs/health): List Service Instances for Service
    # GET /health/service/:service; blocking (per-service index); ?passing keeps only entries whose
    # checks (incl. the node's serfHealth) are all passing - warning is not passing; ?tag= may be
    # repeated and all must match; an unknown service is 200 []; entries are {Node, Service,
    # Checks}; filtered by node:read + service:read.
    def h_health(self, q, body, name):
        min_idx, wait = parse_wait(q)
        if name == "":
            raise HTTPErr(400, "Missing service name")
        passing = False
        if "passing" in q:
            try:
                passing = qget(q, "passing") == "" or go_bool(qget(q, "passing"))
            except ValueError:
                raise HTTPErr(400, "Invalid value for ?passing")
        self.no_filter(q)
        self.check_dc(q)
        tok = self.token(q)
        authz = self.sim.resolve(tok)
        idx, out, filt = self.blocking(q, min_idx, wait,
                                       lambda: self.sim.q_health(name, q.get("tag", []), passing, authz,
                                                                 (qget(q, "ns") or "default",
                                                                  qget(q, "partition") or "default")))
        h = meta_headers(idx, q, filt, tok)
        h["X-Consul-Query-Backend"] = "blocking-query"
        return json_resp(out, h)

    # ---- Catalog HTTP API (api-docs/catalog): List Services -> {name: [tags]}, blocking on the
    # services table index; includes the server's own "consul" service; filtered by service:read.
    def h_catalog(self, q, body, _):
        min_idx, wait = parse_wait(q)
        self.no_filter(q)
        self.check_dc(q)
        tok = self.token(q)
        authz = self.sim.resolve(tok)
        idx, out, filt = self.blocking(q, min_idx, wait, lambda: self.sim.q_catalog(authz))
        return json_resp(out, meta_headers(idx, q, filt, tok))

    # ---- KV Store HTTP API (api-docs/kv)
    def h_kv(self, q, body, key):
        if key != "" and self.sim.cfg.kv_key_validation:
            why = validate_kv_key(key)
            if why:
                raise HTTPErr(400, why)
        if self.command == "GET":
            return self.kv_get(q, key)
        if self.command == "PUT":
            return self.kv_put(q, body, key)
        return self.kv_delete(q, key)

    # Read Key: 404 with an empty body when missing; [{LockIndex, Key, Flags, Value(base64),
    # CreateIndex, ModifyIndex}]; ?recurse = prefix (404 if nothing), ?keys (+separator), ?raw =
    # the bare value as text/plain (CVE-2020-25864 fix); blocking; single-key denial is a bare
    # "Permission denied", lists are filtered.
    def kv_get(self, q, key):
        min_idx, wait = parse_wait(q)
        sim = self.sim
        if "keys" not in q and "recurse" not in q and key == "":
            raise HTTPErr(400, "Missing key name")
        self.check_dc(q)
        tok = self.token(q)
        authz = sim.resolve(tok)
        if "keys" in q:
            sep = qget(q, "separator")

            def compute():
                idx, keys, filt = sim.q_kv_list(key, authz)
                out, seen = [], set()
                for k in keys:
                    i = k[len(key):].find(sep) if sep else -1
                    k2 = k[:len(key) + i + len(sep)] if i >= 0 else k
                    if k2 not in seen:
                        seen.add(k2)
                        out.append(k2)
                return idx, out, filt
            idx, keys, filt = self.blocking(q, min_idx, wait, compute)
            h = meta_headers(idx, q, filt, tok)
            if not keys and key != "":
                return 404, b"", None, h
            return json_resp(keys, h)
        if "recurse" in q:
            def compute():
                idx, keys, filt = sim.q_kv_list(key, authz)
                return idx, [sim.kv_json(k) for k in keys], filt
            idx, ents, filt = self.blocking(q, min_idx, wait, compute)
            h = meta_headers(idx, q, filt, tok)
            return (404, b"", None, h) if not ents else json_resp(ents, h)

        def compute():
            if not authz.allowed("key", key, "read"):
                raise HTTPErr(403, "Permission denied")
            if key in sim.kv:
                return sim.kv[key]["ModifyIndex"], [sim.kv_json(key)], False
            return sim.tbl["kvs"], [], False
        idx, ents, _ = self.blocking(q, min_idx, wait, compute)
        h = meta_headers(idx, q, False, tok)
        if not ents:
            return 404, b"", None, h
        if "raw" in q:
            h["X-Content-Type-Options"] = "nosniff"
            return 200, base64.b64decode(ents[0]["Value"] or ""), "text/plain", h
        return json_resp(ents, h)

    # Create/Update Key: body = value (max 512kB -> 413), ?flags, ?cas (0 = create only, else
    # must equal ModifyIndex); returns true/false; needs key:write.
    def kv_put(self, q, body, key):
        if key == "":
            raise HTTPErr(400, "Missing key name")
        if sum(1 for k in ("cas", "acquire", "release") if k in q) > 1:
            raise HTTPErr(400, "Conflicting flags: " + urlsplit(self.path).query)
        if "acquire" in q or "release" in q:
            raise HTTPErr(400, "consul-sim: sessions (acquire/release) are not supported")
        flags = cas = None
        for name in ("flags", "cas"):
            if qget(q, name) or name == "cas" and name in q:
                v = qget(q, name)
                if not re.fullmatch(r"[0-9]+", v):
                    raise HTTPErr(500, 'strconv.ParseUint: parsing %s: invalid syntax' % go_quote(v))
                if name == "flags":
                    flags = int(v)
                else:
                    cas = int(v)
        if len(body) > KV_MAX_VALUE:
            raise HTTPErr(413, "Request body(%d bytes) too large, max size: %d bytes. See "
                               "https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size."
                          % (len(body), KV_MAX_VALUE))
        self.check_dc(q)
        authz = self.authz(q)
        authz.require("key", key, "write")
        with self.sim.lock:
            ok = self.sim.kv_put(key, body, flags or 0, cas)
        return json_resp(ok)

    # Delete Key: ?recurse deletes the prefix, ?cas must match ModifyIndex; returns true/false.
    def kv_delete(self, q, key):
        recurse = "recurse" in q
        if key == "" and not recurse:
            raise HTTPErr(400, "Missing key name")
        cas = None
        if "cas" in q:
            v = qget(q, "cas")
            if not re.fullmatch(r"[0-9]+", v):
                raise HTTPErr(500, 'strconv.ParseUint: parsing %s: invalid syntax' % go_quote(v))
            cas = int(v)
        self.check_dc(q)
        authz = self.authz(q)
        authz.require("key", key, "write")
        with self.sim.lock:
            ok = self.sim.kv_delete(key, recurse, cas)
        return json_resp(ok)

    # ---- /sim/ controls (not Consul)
    def sim_control(self, path, q, body):
        sim, name = self.sim, path[len("/sim/"):]
        num = lambda k, d: int(qget(q, k, str(d)) or d)
        if name == "state":
            with sim.lock:
                return json_resp(sim.dump(qget(q, "log") not in ("", "0")))
        if self.command not in ("POST", "PUT"):
            return 405, b"use POST", TEXT, {"Allow": "POST,PUT"}
        conns = []
        with sim.lock:
            f = sim.faults
            if name == "fail":
                f["fail"] = [num("count", 1), num("status", 500), qget(q, "body"), qget(q, "path")]
            elif name == "delay":
                f["delay"] = [num("ms", 0), qget(q, "path")]
            elif name in ("truncate", "garbage"):
                f[name] = [num("count", 1), qget(q, "path")]
            elif name == "reset":
                sim.clear_faults()
            elif name == "restart":
                sim.restart_gen += 1
                sim.restarts += 1
                if qget(q, "keep") not in ("1", "true"):
                    sim.reset_data()
                sim.down_until = time.monotonic() + num("down_ms", 0) / 1000.0
                sim.events.append({"time": time.time(), "event": "restart", "index": sim.index})
                conns = [c for c in sim.conns if c is not self.connection]
                sim.cond.notify_all()
            elif name == "index":
                n = num("set", 0)
                if n < 1:
                    return 400, b"set must be >= 1", TEXT, {}
                sim.set_index(n)
            elif name == "expire":
                c = sim.checks.get(qget(q, "check"))
                if c is None or not c["ttl"]:
                    return 404, b"no such TTL check", TEXT, {}
                sim.expire(c)
            elif name == "leader":
                sim.no_leader = qget(q, "known", "1") in ("0", "false")
            elif name == "gc-tombstones":
                sim.tombstones.clear()
                sim.cond.notify_all()
            else:
                return 404, b"unknown /sim/ control", TEXT, {}
            idx = sim.index
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return json_resp({"ok": True, "index": idx})


class TCPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def build_config(argv):
    ap = argparse.ArgumentParser(description="single-node Consul dev agent simulator")
    ap.add_argument("mode", nargs="*", help="ignored ('agent' for consul CLI compatibility)")
    ap.add_argument("--port", "-http-port", type=int, default=0, help="0 = pick a free port")
    ap.add_argument("--host", "-client", default="127.0.0.1")
    ap.add_argument("--tls-cert", help="serve https with this PEM certificate (with --tls-key)")
    ap.add_argument("--tls-key")
    ap.add_argument("--unix", help="also serve on this Unix socket path")
    ap.add_argument("--node", "-node", default="consul-sim")
    ap.add_argument("--datacenter", "-datacenter", default="dc1")
    ap.add_argument("--acl-token", action="append", default=[], help="management token (repeatable)")
    ap.add_argument("--read-only-token", action="append", default=[])
    ap.add_argument("--token", action="append", default=[], metavar="SECRET=kind[_prefix]:name:level,..")
    ap.add_argument("--acl-default-policy", choices=("allow", "deny"), default="deny")
    ap.add_argument("--hcl", "-hcl", action="append", default=[])
    ap.add_argument("--check-update-interval", default="5m")
    ap.add_argument("--reap-interval", default="100ms")
    ap.add_argument("--dereg-min", default="0s", help="real Consul: 1m")
    ap.add_argument("--verbose", "-v", action="store_true")
    ap.add_argument("-dev", action="store_true")
    ap.add_argument("--data-dir", "-data-dir", help="a non-dev agent: TTL check state is persisted "
                    "and restored on re-registration (loadCheckState); kept in memory")
    ap.add_argument("--kv-key-validation", action="store_true",
                    help="reject KV keys as Consul 1.21.5 did (validateKVKey): 400")
    ap.add_argument("--legacy-unknown-errors", action="store_true",
                    help="answer unknown checks/services with 500 'Unknown check \"x\"' as agents with "
                    "ACLs did before hashicorp/consul#5821 was fixed")
    ap.add_argument("-bind")
    for ign in ("-dns-port", "-grpc-port", "-serf-lan-port", "-serf-wan-port", "-server-port", "-log-level"):
        ap.add_argument(ign)
    cfg = ap.parse_args(argv)
    if cfg.dev:
        cfg.data_dir = None        # -dev keeps nothing on disk
    cfg.acl_enabled = False
    for h in cfg.hcl:
        if re.search(r"\bacl\b", h) and re.search(r"\benabled\s*=\s*true", h):
            cfg.acl_enabled = True
        m = re.search(r'default_policy\s*=\s*"(allow|deny)"', h)
        if m:
            cfg.acl_default_policy = m.group(1)
        for m in re.finditer(r'\b(?:initial_management|master)\s*=\s*"([^"]+)"', h):
            cfg.acl_token.append(m.group(1))
        m = re.search(r'check_update_interval\s*=\s*"([^"]+)"', h)
        if m:
            cfg.check_update_interval = m.group(1)
        # addresses { http = "127.0.0.1 unix:///path" }: Consul's space-separated
        # list of listen addresses (docs "addresses"; go-sockaddr templates aside).
        m = re.search(r'\baddresses\s*\{[^}]*\bhttp\s*=\s*"([^"]*)"', h)
        if m:
            for addr in m.group(1).split():
                if addr.startswith("unix://"):
                    cfg.unix = addr[len("unix://"):]
    for k in ("check_update_interval", "reap_interval", "dereg_min"):
        try:
            setattr(cfg, k, parse_duration(getattr(cfg, k)))
        except ValueError as e:
            ap.error("--%s: %s" % (k.replace("_", "-"), e))
    return cfg


def main(argv=None):
    cfg = build_config(argv)
    sim = Sim(cfg)
    servers = [TCPServer((cfg.host, cfg.port), Handler)]
    if cfg.tls_cert:
        # The HTTPS listener (Consul docs: agent config "ports.https", "tls.https.cert_file").
        # The handshake runs in the request's thread, so a stalled client blocks no one.
        import ssl
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        servers[0].socket = tls.wrap_socket(servers[0].socket, server_side=True,
                                            do_handshake_on_connect=False)
    if cfg.unix:
        if os.path.exists(cfg.unix):
            os.unlink(cfg.unix)
        servers.append(UnixServer(cfg.unix, Handler))
    for s in servers:
        s.sim = sim
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    print("LISTENING %d" % servers[0].server_address[1], flush=True)
    for s in servers:
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    def ticker():
        while not stop.is_set():
            sim.tick()
            time.sleep(0.1)
    threading.Thread(target=ticker, daemon=True).start()
    while not stop.wait(0.2):
        pass
    with sim.lock:                 # graceful: stop accepting, end blocked queries, close sockets
        sim.shutting_down = True
        sim.cond.notify_all()
        conns = list(sim.conns)
    for s in servers:
        s.shutdown()
        s.server_close()
    for c in conns:
        try:
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    if cfg.unix and os.path.exists(cfg.unix):
        os.unlink(cfg.unix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
