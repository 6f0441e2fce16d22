#!/usr/bin/env python3
"""ab.py - compare two beacon builds on the socket hot path (A/B, same run).

    python3 bench/ab.py --a /tmp/before/beacon --b /tmp/after/beacon --loadgen build/loadgen

Starts both agents with the same static service of 10 endpoints, then runs
build/loadgen against each in alternating order for --rounds rounds (server
on one CPU, generator on the other, as bench.py does) and prints the median
req/s, p50, p99 and requests per server CPU-second of each, then the syscalls
per request of each (strace -c over --count requests, when strace is
installed). Used to measure a hot-path change before proposing it; see
bench/README.md. With --nginx, nginx (one process) serving B's exact body
as a static file is measured the same way as a third column, the reference
of the "system calls per request <= nginx's" target.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import Beacon, Nginx, Runner, endpoint, ensure_nginx, stop_all, unix_get


def syscalls_per_request(loadgen, server, path, conns, count, work):
    out = os.path.join(work, "strace.%d" % server.pid)
    tracer = subprocess.Popen(["strace", "-c", "-f", "-p", str(server.pid), "-o", out],
                              stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    subprocess.run([loadgen, "--unix", server.sock, "--path", path, "-c", str(conns), "-n", str(count),
                    "--warmup", "0"], stdout=subprocess.DEVNULL, check=True)
    time.sleep(0.2)
    tracer.send_signal(2)
    tracer.wait()
    calls = {}
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[3].isdigit() and parts[-1] != "total":
                calls[parts[-1]] = int(parts[3]) / count
    return calls


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="the baseline beacon binary")
    ap.add_argument("--b", required=True, help="the changed beacon binary")
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--path", default="/v1/endpoints/svc")
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--duration", type=int, default=2)
    ap.add_argument("--count", type=int, default=20000, help="requests traced for syscall counts")
    ap.add_argument("--nginx", action="store_true", help="also measure nginx serving the same bytes")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="beacon-ab-", dir="/tmp")
    eps = [endpoint(i, "svc") for i in range(10)]
    for e in eps:
        del e["service"], e["id"], e["status"]
    try:
        agents = {}
        for name, exe in (("A", args.a), ("B", args.b)):
            agents[name] = Beacon(os.path.abspath(exe), work, name, {"static": {"services": {"svc": eps}}})
            agents[name].wait_ready()
        names = [("A", args.a), ("B", args.b)]
        if args.nginx:
            exe, note = ensure_nginx()
            if not exe:
                raise RuntimeError(note)
            _, _, body, _ = unix_get(agents["B"].sock, args.path)
            agents["nginx"] = Nginx(exe, work, {args.path: body})
            agents["nginx"].wait_serving(args.path)
            names.append(("nginx", exe))
        runner = Runner(os.path.abspath(args.loadgen), args.duration, 0.5)
        res = {name: [] for name, _ in names}
        for i in range(args.rounds):
            order = [n for n, _ in names]
            for name in order if i % 2 == 0 else reversed(order):
                res[name].append(runner.loadgen_run(name, ["--unix", agents[name].sock], args.path,
                                                    args.conns, agents[name].pid))
        for name, exe in names:
            v = res[name]
            print("%s %s\n  req/s %.0f (rounds %s)  p50 %.0f us  p99 %.0f us  req/server-CPU-s %.0f  "
                  "other CPU %.0f%%" % (
                      name, exe, statistics.median(r["req_per_s"] for r in v),
                      " ".join("%.0f" % r["req_per_s"] for r in v),
                      statistics.median(r["latency_us"]["p50"] for r in v),
                      statistics.median(r["latency_us"]["p99"] for r in v),
                      statistics.median(r["req_per_s"] / r["server_cpu_util"] for r in v if r["server_cpu_util"]),
                      100 * statistics.median(r["other_cpu_util"] for r in v)))
        if shutil.which("strace"):
            for name, _ in names:
                calls = syscalls_per_request(os.path.abspath(args.loadgen), agents[name], args.path,
                                             args.conns, args.count, work)
                print("%s syscalls per request: %.2f  %s" % (
                    name, sum(calls.values()),
                    " ".join("%s=%.2f" % (k, v) for k, v in sorted(calls.items(), key=lambda kv: -kv[1])
                             if v >= 0.01)))
        return 0
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
