"""A scripted etcd JSON gateway, for answers a real etcd never gives.

    with FakeEtcd(revision="9223372036854775807") as f:   # on a free loopback port
        ... agent with endpoints [f.url] ...
        f.requests("/v3/watch")                          # the bodies beacon sent

A real etcd cannot be made to report a revision near 2^63 or a lease TTL
beyond its MaxLeaseTTL; a broken or hostile member can. This one answers
every request the etcd plugin makes (status, range, watch, lease grant,
keepalive, put, delete, revoke) from a few settable numbers, in the
gateway's spelling (int64 as decimal strings, as grpc-gateway's jsonpb
writes them), and records what it was sent, headers included. Python 3
standard library only; tls= serves https (files of etcd_fixture.make_certs).
"""

import base64
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def b64(text):
    return base64.b64encode(text.encode()).decode()


class FakeEtcd:
    def __init__(self, revision="5", lease_id="7587869391345195788", ttl="10", kvs=(), tls=None):
        self.revision, self.lease_id, self.ttl = revision, lease_id, ttl
        self.kvs = list(kvs)  # [(key, value)] every range answers
        self.lock = threading.Lock()
        self.log = []         # (path, headers dict, decoded body)
        self.stop = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = None
                with fake.lock:
                    fake.log.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if self.path == "/v3/watch":
                    return self.watch()
                self.answer(fake.reply(self.path))

            def answer(self, obj):
                data = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def watch(self):
                # The gateway streams one JSON object per message, chunked.
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                msg = json.dumps({"result": {"header": fake.header(), "created": True}}).encode() + b"\n"
                try:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(msg), msg))
                    self.wfile.flush()
                    while not fake.stop.wait(0.1):
                        pass
                except OSError:
                    pass
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls["server"], tls["server_key"])
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
            scheme = "https"
        self.port = self.server.server_address[1]
        self.url = "%s://127.0.0.1:%d" % (scheme, self.port)

    def header(self):
        return {"cluster_id": "1", "member_id": "2", "revision": self.revision, "raft_term": "3"}

    def reply(self, path):
        h = self.header()
        if path == "/v3/kv/range":
            kvs = [{"key": b64(k), "value": b64(v), "create_revision": "2", "mod_revision": self.revision,
                    "version": "1"} for k, v in self.kvs]
            return {"header": h, "kvs": kvs, "count": str(len(kvs))}
        if path == "/v3/lease/grant":
            return {"header": h, "ID": self.lease_id, "TTL": self.ttl}
        if path == "/v3/lease/keepalive":
            return {"result": {"header": h, "ID": self.lease_id, "TTL": self.ttl}}
        if path == "/v3/maintenance/status":
            return {"header": h, "version": "3.4.23", "dbSize": "20480", "leader": "2", "raftIndex": "9",
                    "raftTerm": "3"}
        return {"header": h}  # put, deleterange, revoke

    def requests(self, path):
        with self.lock:
            return [(headers, body) for p, headers, body in self.log if p == path]

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
        return False
