#!/usr/bin/env python3
"""bench_zk.py - `make bench`: the ZooKeeper backend's figures, each next to a
reference measured in the same invocation on the same machine.

    python3 bench/bench_zk.py --beacon build/beacon --out bench/results_zk.json

1. Propagation: a znode set (an instance's data changes) -> a blocking read
   on beacon wakes with the new data, next to a plain ZooKeeper data watch
   (kazoo) on the same znode receiving the same change. With etcd installed,
   the same measurement for the etcd backend (benchlib.propagation: a put ->
   beacon, next to etcd's watch stream), so the two backends sit side by side.
2. Registration visible to a watcher: POST /v1/self/resume -> a ZooKeeper
   child watch on <base>/<service> sees beacon's ephemeral znode (p50/p99
   over drain/resume cycles).
   Both servers skip the disk flush per write (etcd on tmpfs, ZooKeeper with
   forceSync=no), so the figure is the notification path, not the disk.
3. Resync after session expiry: the agent SIGSTOPped past its session
   timeout (its znode is reaped), then SIGCONT -> the znode is back (a new
   session, created again).
4. Peak RSS of the ZooKeeper-backed agent (VmHWM) and of the ZooKeeper JVM.

The server is Debian's ZooKeeper (tests/integration/zk_fixture.py). A miss
never fails the command; it fails only when the benchmark cannot run.
"""

import argparse
import json
import os
import queue
import signal
import socket
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from benchlib import (Beacon, Etcd, UnixHTTPConnection, compact, endpoint, log, pct,  # noqa: E402
                      proc_mem, propagation, stop_all)
import zk_fixture  # noqa: E402


def dist(v):
    return {"n": len(v), "p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99),
            "max": max(v) if v else None}


def instance(name, iid, rev):
    return json.dumps({"name": name, "id": iid, "address": "10.0.0.1", "port": 8080,
                       "payload": {"meta": {"rev": str(rev)}}, "serviceType": "DYNAMIC"}).encode()


def blocking_read(sock, service, index, out):
    c = UnixHTTPConnection(sock, 15)
    try:
        c.request("GET", "/v1/endpoints/%s?index=%d&wait=10s" % (service, index))
        r = c.getresponse()
        body = r.read()
        out.put((time.perf_counter(), int(r.getheader("X-Beacon-Index")), body))
    finally:
        c.close()


def current_index(sock, service):
    c = UnixHTTPConnection(sock, 10)
    try:
        c.request("GET", "/v1/endpoints/" + service)
        r = c.getresponse()
        r.read()
        return int(r.getheader("X-Beacon-Index"))
    finally:
        c.close()


def zk_propagation(agent, zc, path, service, changes):
    """znode set -> beacon's blocking read answers / a kazoo data watch fires."""
    beacon_ms, watch_ms = [], []
    watched = queue.Queue()
    seen = {"v": None}

    def on_data(data, stat, *_):
        if data is not None and data != seen["v"]:
            seen["v"] = data
            watched.put(time.perf_counter())
    zc.DataWatch(path, on_data)
    watched.get(timeout=5)  # the initial read
    index = current_index(agent.sock, service)
    for i in range(1, changes + 1):
        got = queue.Queue()
        t = threading.Thread(target=blocking_read, args=(agent.sock, service, index, got))
        t.start()
        time.sleep(0.003)  # let the agent park the read
        t0 = time.perf_counter()
        zc.set(path, instance(service, "i0", i))
        tw = watched.get(timeout=10)
        tb, index, body = got.get(timeout=10)
        t.join()
        if ('"rev":"%d"' % i).encode() not in body:
            # woke by something else (or early): wait for the change itself
            while ('"rev":"%d"' % i).encode() not in body:
                t = threading.Thread(target=blocking_read, args=(agent.sock, service, index, got))
                t.start()
                tb, index, body = got.get(timeout=10)
                t.join()
        beacon_ms.append((tb - t0) * 1e3)
        watch_ms.append((tw - t0) * 1e3)
    return {"changes": changes, "beacon_ms": dist(beacon_ms), "zk_watch_ms": dist(watch_ms)}


def registration_visible(agent, zc, base, service, iid, cycles):
    path = "%s/%s/%s" % (base, service, iid)
    events = queue.Queue()

    def wait_state(exists):
        while (zc.exists(path) is not None) != exists:
            ev = threading.Event()
            if (zc.exists(path, watch=lambda e: ev.set()) is not None) == exists:
                break
            ev.wait(10)
    out = []
    for _ in range(cycles):
        c = UnixHTTPConnection(agent.sock, 10)
        c.request("POST", "/v1/self/drain")
        c.getresponse().read()
        c.close()
        wait_state(False)
        ev = threading.Event()
        stamp = {}

        def on_child(e):
            stamp["t"] = time.perf_counter()
            ev.set()
        zc.get_children("%s/%s" % (base, service), watch=on_child)
        t0 = time.perf_counter()
        c = UnixHTTPConnection(agent.sock, 10)
        c.request("POST", "/v1/self/resume")
        c.getresponse().read()
        c.close()
        ev.wait(10)
        if "t" in stamp:
            out.append((stamp["t"] - t0) * 1e3)
        wait_state(True)
    del events
    return dist(out)


def expiry_resync(agent, zc, path, rounds, timeout_s):
    out = []
    for _ in range(rounds):
        agent.proc.p.send_signal(signal.SIGSTOP)
        try:
            deadline = time.monotonic() + timeout_s * 4 + 10
            while zc.exists(path) is not None and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            agent.proc.p.send_signal(signal.SIGCONT)
        t0 = time.perf_counter()
        while zc.exists(path) is None and time.perf_counter() - t0 < 30:
            time.sleep(0.002)
        out.append((time.perf_counter() - t0) * 1e3)
    return dist(out)


def fmt(v):
    return "-" if v is None else ("%.2f" % v if isinstance(v, float) else str(v))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--beacon", default="build/beacon")
    ap.add_argument("--out", default=os.path.join(HERE, "results_zk.json"))
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--cycles", type=int, default=50)
    ap.add_argument("--expiries", type=int, default=3)
    args = ap.parse_args()
    beacon_exe = os.path.abspath(args.beacon)
    if not zk_fixture.have_server():
        log("ZooKeeper server classes or java missing: nothing to measure")
        return 0
    try:
        zk_fixture.kazoo_client_class()
    except Exception as e:  # noqa: BLE001 -- harness.Skip: python3-kazoo missing
        log("ZooKeeper part skipped: %s" % e)
        return 0
    res = {"meta": {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}
    work = tempfile.mkdtemp(prefix="beacon-bench-zk-")
    # No fsync per write: the etcd of benchlib has its data on tmpfs, so the
    # two servers compare without the disk in the way.
    z = zk_fixture.ZooKeeper(extra=["forceSync=no"]).start()
    etcd = None
    try:
        zc = z.client()
        base, svc = "/bench/services", "zsvc"
        zc.create("%s/%s/i0" % (base, svc), instance(svc, "i0", 0), makepath=True)
        agent = Beacon(beacon_exe, work, "bz", {
            "registry": {"backend": "zookeeper", "servers": [z.hostport], "base_path": base,
                         "session_timeout": "2s"},
            "service": {"name": "self", "id": "self-1", "address": "127.0.0.1", "port": 9000},
            "watch": {"services": [svc]}})
        res["ready_s"] = agent.wait_ready()
        log("1. propagation (ZooKeeper): %d changes" % args.changes)
        res["propagation_zk"] = zk_propagation(agent, zc, "%s/%s/i0" % (base, svc), svc, args.changes)
        try:
            etcd = Etcd(work)
            prefix, esvc = "/beacon/services/", "esvc"
            etcd.txn_put([("%s%s/%s" % (prefix, esvc, e["id"]), compact(e))
                          for e in (endpoint(i, esvc) for i in range(10))])
            be = Beacon(beacon_exe, work, "be", {"registry": {"backend": "etcd", "endpoints": [etcd.url],
                                                              "prefix": prefix.rstrip("/")},
                                                 "watch": {"services": [esvc]}})
            be.wait_ready()
            log("1. propagation (etcd, same run): %d changes" % args.changes)
            res["propagation_etcd"] = propagation(be, etcd, prefix, esvc, args.changes)
            be.stop()
        except Exception as e:  # noqa: BLE001 -- etcd is optional here
            log("etcd part skipped: %s" % e)
        log("2. registration visible to a watcher: %d drain/resume cycles" % args.cycles)
        res["registration_visible_ms"] = registration_visible(agent, zc, base, "self", "self-1", args.cycles)
        log("3. resync after session expiry: %d rounds" % args.expiries)
        res["expiry_resync_ms"] = expiry_resync(agent, zc, base + "/self/self-1", args.expiries, 2)
        res["rss_kib"] = {"beacon_VmHWM": proc_mem(agent.pid).get("VmHWM"),
                          "zookeeper_VmHWM": proc_mem(z.proc.pid).get("VmHWM")}
        agent.stop()
    finally:
        z.close()
        stop_all()
    pz, pe = res["propagation_zk"], res.get("propagation_etcd")
    rows = [("propagation ZK: beacon answer", pz["beacon_ms"]), ("propagation ZK: plain ZK watch", pz["zk_watch_ms"])]
    if pe:
        rows += [("propagation etcd: beacon answer", pe["beacon_ms"]), ("propagation etcd: etcd watch", pe["etcd_watch_ms"])]
    rows += [("registration -> watcher sees it", res["registration_visible_ms"]),
             ("resync after expiry (SIGCONT -> znode)", res["expiry_resync_ms"])]
    print("\n%-42s %8s %8s %8s" % ("ZooKeeper backend (ms)", "p50", "p99", "max"))
    for name, d in rows:
        print("%-42s %8s %8s %8s" % (name, fmt(d["p50"]), fmt(d["p99"]), fmt(d["max"])))
    ratio = lambda a, b: a / b if a and b else None  # noqa: E731
    res["ratios"] = {"zk_beacon_over_zk_watch_p50": ratio(pz["beacon_ms"]["p50"], pz["zk_watch_ms"]["p50"]),
                     "zk_beacon_over_zk_watch_p99": ratio(pz["beacon_ms"]["p99"], pz["zk_watch_ms"]["p99"])}
    if pe:
        res["ratios"]["zk_beacon_over_etcd_beacon_p50"] = ratio(pz["beacon_ms"]["p50"], pe["beacon_ms"]["p50"])
    print("ratios: %s" % ", ".join("%s %s" % (k, fmt(v)) for k, v in res["ratios"].items()))
    print("peak RSS (KiB): beacon %s, ZooKeeper JVM %s" % (res["rss_kib"]["beacon_VmHWM"],
                                                          res["rss_kib"]["zookeeper_VmHWM"]))
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
