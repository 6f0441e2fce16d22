#!/usr/bin/env python3
"""bench_dns.py - beacon's DNS interface against Debian's unbound serving the
same records from local-data, measured with dnsperf in the same run.

    python3 bench/bench_dns.py --beacon build/beacon --out bench/results_dns.json
        [--duration 8 --rounds 3 --rate 5000]

Each server is one process on one CPU (taskset; unbound with num-threads: 1),
dnsperf on another; the two servers never run at the same time, and rounds
alternate between them so drift on a shared machine hits both alike.

  throughput  dnsperf at full speed (100 queries outstanding) for --duration
              seconds: queries/s, median of the rounds.
  latency     dnsperf at a fixed --rate for 3 s per round, every answer's
              latency (-v): average and p99 (medians of the rounds), the same
              offered load for both servers. On a loaded machine these are
              mostly scheduling delay: compare them within one run only.
  memory      RSS with 10 000 endpoints (100 services x 100) minus RSS with
              none, after every name was asked once; the same for unbound
              with the same 10 000 A records.

The query mix: A of a 5-endpoint service (5 records), SRV of it (5 records,
plus beacon's 5 additional A), AAAA with no such record (NODATA) and an
unknown name (NXDOMAIN), in equal parts. Targets: beacon >= 1.0x unbound's
queries/s, average and p99 latency no worse. A miss is printed, never fails
the command; the command fails only when a tool is missing.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

ENDPOINTS = [("10.0.0.%d" % i, 8080 + i) for i in range(1, 6)]
QUERIES = ["payments.service.beacon A", "payments.service.beacon SRV",
           "payments.service.beacon AAAA", "nope.service.beacon A"]


def beacon_config(work, port, big):
    if big:
        services = {"s%d" % s: [{"id": "e%d" % e, "address": "10.%d.%d.%d" % (s, e // 250, e % 250 + 1),
                                 "port": 80} for e in range(100)] for s in range(100)}
    else:
        services = {"payments": [{"id": "p%d" % i, "address": a, "port": p}
                                 for i, (a, p) in enumerate(ENDPOINTS, 1)]}
    cfg = {"socket": {"path": os.path.join(work, "b%d.sock" % port)}, "log": {"level": "warn"},
           "dns": {"listen": "127.0.0.1:%d" % port, "domain": "beacon.", "ttl": "0s"},
           "static": {"services": services}}
    path = os.path.join(work, "beacon-%d.json" % port)
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def unbound_config(work, port, big):
    data = ['beacon. 0 IN SOA ns.beacon. hostmaster.beacon. 1 3600 600 86400 0']
    if big:
        for s in range(100):
            data += ["s%d.service.beacon. 0 IN A 10.%d.%d.%d" % (s, s, e // 250, e % 250 + 1)
                     for e in range(100)]
    else:
        for i, (a, p) in enumerate(ENDPOINTS, 1):
            data.append("payments.service.beacon. 0 IN A %s" % a)
            data.append("payments.service.beacon. 0 IN SRV 1 1 %d p%d.payments.service.beacon." % (p, i))
            data.append("p%d.payments.service.beacon. 0 IN A %s" % (i, a))
    lines = ["server:", "  interface: 127.0.0.1", "  port: %d" % port, "  num-threads: 1",
             "  do-daemonize: no", '  chroot: ""', '  username: ""', '  directory: "%s"' % work,
             '  pidfile: ""', '  logfile: ""', "  use-syslog: no", "  verbosity: 0",
             "  access-control: 127.0.0.0/8 allow", "  do-ip6: no", "  so-reuseport: no",
             '  module-config: "iterator"', '  local-zone: "beacon." static']
    lines += ['  local-data: "%s"' % d for d in data]
    lines += ["remote-control:", "  control-enable: no"]
    path = os.path.join(work, "unbound-%d.conf" % port)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def start(argv, cpus):
    p = subprocess.Popen(["taskset", "-c", ",".join(map(str, sorted(cpus)))] + argv,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    B.PROCS.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in B.PROCS:
        B.PROCS.remove(p)


def wait_answering(port, proc, name="payments.service.beacon"):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited: %s" % proc.stderr.read().decode(errors="replace")[-500:])
        r = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), name, "A", "+time=1", "+tries=1",
                            "+short"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           universal_newlines=True)
        if r.stdout.strip():
            return
        time.sleep(0.05)
    raise SystemExit("no DNS answer on port %d" % port)


def dnsperf(port, qfile, seconds, rate=None):
    argv = ["taskset", "-c", ",".join(map(str, sorted(B.LOADGEN_CPUS))), "dnsperf", "-s", "127.0.0.1",
            "-p", str(port), "-d", qfile, "-l", str(seconds)]
    if rate:
        argv += ["-Q", str(rate), "-v"]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=seconds + 60)
    out = {"qps": None, "lost": None, "lat": []}
    for line in p.stdout.splitlines():
        if "Queries per second:" in line:
            out["qps"] = float(line.split()[-1])
        elif "Queries lost:" in line:
            out["lost"] = int(line.split()[2])
        elif line.startswith("> "):
            out["lat"].append(float(line.split()[-1]))
    if out["qps"] is None:
        raise SystemExit("dnsperf printed no result:\n" + p.stdout[-800:])
    return out


def rss_kib(pid):
    return B.proc_mem(pid).get("VmRSS")


def memory(kind, exe, work, port):
    """RSS with 10 000 endpoints minus RSS with none, KiB."""
    res = []
    for big in (False, True):
        if kind == "beacon":
            p = start([exe, "agent", "--config", beacon_config(work, port, big)], B.SERVER_CPUS)
        else:
            p = start([exe, "-c", unbound_config(work, port, big)], B.SERVER_CPUS)
        wait_answering(port, p, "s0.service.beacon" if big else "payments.service.beacon")
        if big:
            with open(os.path.join(work, "mem.txt"), "w") as f:
                f.write("".join("s%d.service.beacon A\n" % s for s in range(100)))
            dnsperf(port, os.path.join(work, "mem.txt"), 1)
        res.append(rss_kib(p.pid))
        stop(p)
    return {"empty_kib": res[0], "10k_kib": res[1], "per_10k_kib": res[1] - res[0]}


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        return ("%.0f" % v if v >= 100 else "%.3g" % v) + unit
    return "%s%s" % (v, unit)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--beacon", required=True)
    ap.add_argument("--out", default="bench/results_dns.json")
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=int, default=5000)
    args = ap.parse_args()
    beacon = os.path.abspath(args.beacon)
    unbound = shutil.which("unbound") or "/usr/sbin/unbound"
    for tool, path in (("dnsperf", shutil.which("dnsperf")), ("unbound", unbound if os.path.exists(unbound) else None),
                       ("dig", shutil.which("dig")), ("taskset", shutil.which("taskset"))):
        if not path:
            raise SystemExit("%s is missing: apt-get install dnsperf unbound dnsutils (make deps)" % tool)
    work = tempfile.mkdtemp(prefix="bench-dns-")
    res = {"beacon": {"qps": [], "lat_rounds": [], "mem": None},
           "unbound": {"qps": [], "lat_rounds": [], "mem": None},
           "cpus": {"server": sorted(B.SERVER_CPUS), "dnsperf": sorted(B.LOADGEN_CPUS)}}
    try:
        qfile = os.path.join(work, "queries.txt")
        with open(qfile, "w") as f:
            f.write("\n".join(QUERIES) + "\n")
        port = B.free_port()
        servers = {"beacon": [beacon, "agent", "--config", beacon_config(work, port, False)],
                   "unbound": [unbound, "-c", unbound_config(work, port, False)]}
        for rnd in range(args.rounds):
            order = ("beacon", "unbound") if rnd % 2 == 0 else ("unbound", "beacon")
            for name in order:
                p = start(servers[name], B.SERVER_CPUS)
                wait_answering(port, p)
                dnsperf(port, qfile, 1)  # warm-up
                r = dnsperf(port, qfile, args.duration)
                res[name]["qps"].append(r["qps"])
                B.log("round %d %s: %.0f q/s, %s lost" % (rnd + 1, name, r["qps"], r["lost"]))
                lat = dnsperf(port, qfile, 3, rate=args.rate)["lat"]
                res[name]["lat_rounds"].append({"avg_ms": statistics.mean(lat) * 1e3,
                                                "p99_ms": B.pct(lat, 99) * 1e3, "n": len(lat)})
                stop(p)
        for name, exe in (("beacon", beacon), ("unbound", unbound)):
            res[name]["mem"] = memory(name, exe, work, port)
    finally:
        B.stop_all()
        shutil.rmtree(work, ignore_errors=True)

    b, u = res["beacon"], res["unbound"]
    for r in (b, u):
        r["lat"] = {k: statistics.median(x[k] for x in r["lat_rounds"]) for k in ("avg_ms", "p99_ms")}
    bq, uq = statistics.median(b["qps"]), statistics.median(u["qps"])
    res["ratio_qps"] = bq / uq
    rows = [
        ("queries/s (median of %d)" % args.rounds, fmt(bq), fmt(uq), "%.2fx" % (bq / uq),
         "PASS" if bq >= uq else "MISS"),
        ("avg latency at %d q/s (median)" % args.rate, fmt(b["lat"]["avg_ms"], " ms"), fmt(u["lat"]["avg_ms"], " ms"),
         "%.2fx" % (b["lat"]["avg_ms"] / u["lat"]["avg_ms"]),
         "PASS" if b["lat"]["avg_ms"] <= u["lat"]["avg_ms"] else "MISS"),
        ("p99 latency at %d q/s (median)" % args.rate, fmt(b["lat"]["p99_ms"], " ms"), fmt(u["lat"]["p99_ms"], " ms"),
         "%.2fx" % (b["lat"]["p99_ms"] / u["lat"]["p99_ms"]),
         "PASS" if b["lat"]["p99_ms"] <= u["lat"]["p99_ms"] else "MISS"),
        ("RSS, no endpoints", fmt(b["mem"]["empty_kib"], " KiB"), fmt(u["mem"]["empty_kib"], " KiB"), "", ""),
        ("RSS per 10 000 endpoints", fmt(b["mem"]["per_10k_kib"], " KiB"), fmt(u["mem"]["per_10k_kib"], " KiB"),
         "", ""),
    ]
    headers = ("", "beacon", "unbound", "ratio", "target")
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(5)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
