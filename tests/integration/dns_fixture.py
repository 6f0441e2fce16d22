"""Real DNS clients for the DNS interface tests: dig (dnsutils), kdig
(knot-dnsutils) and drill (ldnsutils), run as a user would, their text
output parsed into status, flags and sections. Also a raw-socket client for
the hostile packets no real client sends, and a tiny UDP DNS server that
plays "the next nameserver" for the glibc resolver test."""

import re
import shutil
import socket
import struct
import subprocess
import threading

from harness import scale, skip

CLIENTS = ("dig", "kdig", "drill")


def need(tool):
    if not shutil.which(tool):
        skip("%s is not installed (apt-get install dnsutils knot-dnsutils ldnsutils; "
             "make deps does it)" % tool)


class Answer:
    def __init__(self, text):
        self.text = text
        m = re.search(r"(?:status|rcode): ([A-Z]+)", text)
        self.status = m.group(1) if m else None
        m = re.search(r";; [Ff]lags: ([a-z ]*?) ?;", text)
        self.flags = set(m.group(1).split()) if m else set()
        self.sections = {"ANSWER": [], "AUTHORITY": [], "ADDITIONAL": []}
        cur = None
        for line in text.splitlines():
            h = re.match(r";; (ANSWER|AUTHORITY|ADDITIONAL) SECTION:", line)
            if h:
                cur = h.group(1)
                continue
            if not line.strip() or line.startswith(";"):
                if not line.strip():
                    cur = None
                continue
            if cur:
                f = line.split()
                self.sections[cur].append((f[0], int(f[1]), f[3], " ".join(f[4:])))

    def rdata(self, section="ANSWER", rtype=None):
        return [r[3] for r in self.sections[section] if rtype is None or r[2] == rtype]

    def __repr__(self):
        return "<%s %s %s>\n%s" % (self.status, sorted(self.flags), self.sections, self.text)


def query(client, port, name, rtype="A", tcp=False, extra=(), host="127.0.0.1"):
    """Ask name/rtype with a real client; returns an Answer."""
    need(client)
    if client == "dig":
        argv = ["dig", "@" + host, "-p", str(port), name, rtype, "+time=2", "+tries=1"]
        argv += ["+tcp"] if tcp else []
    elif client == "kdig":
        argv = ["kdig", "@" + host, "-p", str(port), name, rtype, "+time=2", "+retry=0"]
        argv += ["+tcp"] if tcp else []
    else:
        argv = ["drill", "-p", str(port)] + (["-t"] if tcp else []) + ["@" + host, name, rtype]
    argv += list(extra)
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=scale(15))
    return Answer(p.stdout)


# ---- raw packets ----------------------------------------------------------------

def packet(name, rtype=1, qid=0x4242, flags=0x0100, qdcount=1, edns=None):
    qname = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".") if l) + b"\0"
    p = struct.pack(">HHHHHH", qid, flags, qdcount, 0, 0, 1 if edns else 0)
    p += qname + struct.pack(">HH", rtype, 1)
    if edns:
        p += b"\0" + struct.pack(">HHIH", 41, edns, 0, 0)
    return p


def header(resp):
    qid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", resp[:12])
    return {"id": qid, "rcode": flags & 15, "tc": bool(flags & 0x200), "qr": bool(flags & 0x8000),
            "an": an, "ns": ns, "ar": ar}


def udp_ask(port, data, timeout=2.0):
    """Send one datagram; the answer, or None when none comes."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(scale(timeout))
        s.sendto(data, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except socket.timeout:
            return None


def tcp_read_frame(s):
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf
    hdr = exact(2)
    if hdr is None:
        return None
    return exact(struct.unpack(">H", hdr)[0])


class FakeUpstream:
    """A UDP DNS server answering every A query with one fixed address: the
    second nameserver of the glibc resolver test."""

    def __init__(self, host, port, address):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.address = socket.inet_aton(address)
        self.names = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 12:
                continue
            end = 12
            while end < len(data) and data[end]:
                end += data[end] + 1
            qtype = struct.unpack(">H", data[end + 1:end + 3])[0]
            q = data[12:end + 5]
            self.names.append(q)
            flags = 0x8180
            an = 1 if qtype == 1 else 0
            resp = data[:2] + struct.pack(">HHHHH", flags, 1, an, 0, 0) + q
            if an:
                resp += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + self.address
            self.sock.sendto(resp, peer)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join(2)
        self.sock.close()
