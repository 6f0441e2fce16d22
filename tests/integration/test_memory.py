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
