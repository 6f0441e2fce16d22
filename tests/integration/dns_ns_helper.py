"""Run inside `unshare -m -n` by test_dns.test_dns_glibc_resolver: a private
mount namespace (so /etc/resolv.conf can be replaced for this process tree
only) and a private network namespace (so port 53 on 127.0.0.1 and
127.0.0.2 is ours alone). Brings lo up, bind-mounts a resolv.conf naming
beacon first and a fake upstream second, starts beacon on 127.0.0.1:53 and
the upstream on 127.0.0.2:53, then asks glibc (getent ahosts) for a name in
beacon's domain and one outside it. Prints one JSON object with the
results; the caller asserts.

argv: BEACON_BIN CONFIG_FILE RESOLV_CONF"""

import fcntl
import json
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
from dns_fixture import FakeUpstream, packet, udp_ask  # noqa: E402


def lo_up():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ifr = fcntl.ioctl(s, 0x8913, struct.pack("16sH14s", b"lo", 0, b""))  # SIOCGIFFLAGS
    flags = struct.unpack("16sH", ifr[:18])[1] | 1                          # IFF_UP
    fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags, b""))       # SIOCSIFFLAGS
    s.close()


def getent(name):
    p = subprocess.run(["getent", "ahosts", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=20)
    return {"rc": p.returncode, "addresses": sorted({l.split()[0] for l in p.stdout.splitlines()})}


def main():
    beacon, config, resolv = sys.argv[1:4]
    lo_up()
    subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
    out = {}
    with FakeUpstream("127.0.0.2", 53, "192.0.2.77") as up:
        agent = subprocess.Popen([beacon, "agent", "--config", config], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 10
            while udp_ask(53, packet("payments.service.beacon"), 0.2) is None:
                if time.monotonic() > deadline or agent.poll() is not None:
                    raise SystemExit("beacon did not answer on 127.0.0.1:53")
            out["inside"] = getent("payments.service.beacon")
            out["outside"] = getent("www.example.org")
            out["upstream_saw"] = len(up.names)
        finally:
            agent.terminate()
            agent.wait(10)
    print(json.dumps(out))


main()
