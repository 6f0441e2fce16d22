#!/usr/bin/env python3
"""A small TCP backend for the proxy tests (standard library only).

    python3 proxy_backend.py PORT NAME [--mode echo|source] [--bytes N]

Binds 127.0.0.1:PORT, prints "ready" on stdout once listening, and serves
every connection from one selectors loop (thousands of connections are fine):
  echo    sends "NAME\\n", then echoes every byte back; after the client's FIN
          and the echo of everything before it, it closes (so a client that
          half-closes still gets its whole answer). It stops reading a client
          while 4 MiB of echo are unsent (its own back-pressure).
  source  sends "NAME\\n" then N bytes of a fixed pattern, then closes.
Runs until killed.
"""

import os
import selectors
import socket
import sys

CHUNK = 256 * 1024
PATTERN = bytes(range(256)) * (CHUNK // 256)


class Conn:
    def __init__(self, sock, banner, left):
        self.sock = sock
        self.out = bytearray(banner)
        self.eof = False
        self.left = left  # source mode: bytes still to produce


def main():
    port, name = int(sys.argv[1]), sys.argv[2]
    mode, total = "echo", 0
    args = sys.argv[3:]
    while args:
        if args[0] == "--mode":
            mode = args[1]
        elif args[0] == "--bytes":
            total = int(args[1])
        args = args[2:]
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4096)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    banner = (name + "\n").encode()
    print("ready", flush=True)

    def want(c):
        ev = 0
        if mode == "echo" and not c.eof and len(c.out) < 4 * 1024 * 1024:
            ev |= selectors.EVENT_READ
        if c.out or (mode == "source" and c.left > 0):
            ev |= selectors.EVENT_WRITE
        return ev

    def update(c):
        ev = want(c)
        done = not c.out and (c.eof if mode == "echo" else c.left <= 0)
        if done:
            sel.unregister(c.sock)
            try:
                c.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            c.sock.close()
            return
        if ev == 0:
            ev = selectors.EVENT_READ  # only to notice a reset; reads are skipped
        sel.modify(c.sock, ev, c)

    def drop(c):
        sel.unregister(c.sock)
        c.sock.close()

    while True:
        for key, events in sel.select():
            if key.data is None:
                for _ in range(64):
                    try:
                        s, _ = ls.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    s.setblocking(False)
                    c = Conn(s, banner, total if mode == "source" else 0)
                    sel.register(s, selectors.EVENT_WRITE, c)
                continue
            c = key.data
            try:
                if events & selectors.EVENT_READ and want(c) & selectors.EVENT_READ:
                    data = c.sock.recv(CHUNK)
                    if data:
                        c.out += data
                    else:
                        c.eof = True
                elif events & selectors.EVENT_READ and mode == "source":
                    if not c.sock.recv(CHUNK):
                        pass  # the client finished writing; keep sending
                if events & selectors.EVENT_WRITE:
                    if not c.out and mode == "source" and c.left > 0:
                        n = min(c.left, CHUNK)
                        c.out += PATTERN[:n]
                        c.left -= n
                    if c.out:
                        n = c.sock.send(c.out)
                        del c.out[:n]
            except (ConnectionResetError, BrokenPipeError):
                drop(c)
                continue
            except BlockingIOError:
                pass
            update(c)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        os._exit(0)
