#!/usr/bin/env python3
"""A tiny example app for the beacon demo: answers / with its name and /healthz
with 200 (or 503 while the file given by --unhealthy-file exists)."""
import argparse
import http.server
import os


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="web")
    ap.add_argument("--unhealthy-file", default="")
    args = ap.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/healthz":
                bad = args.unhealthy_file and os.path.exists(args.unhealthy_file)
                self.send_response(503 if bad else 200)
                body = b"unhealthy\n" if bad else b"ok\n"
            else:
                self.send_response(200)
                body = ("hello from %s on port %d\n" % (args.name, args.port)).encode()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
