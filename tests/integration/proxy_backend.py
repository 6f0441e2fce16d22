#!/usr/bin/env python3
"""A small TCP backend for the proxy tests (standard library only).

    python3 proxy_backend.py PORT NAME [--mode echo|source] [--bytes N]

Binds 127.0.0.1:PORT, prints "ready" on stdout once listening, and serves
every connection from one selectors loop (thousands of connections are fine):
  echo    sends "NAME\\n", then echoes every byte back; after the client's FIN
          and the echo of everything before it, it closes (so a client that
          half-closes still gets its whole answer). It stops reading a client
          while 4 MiB of echo are unsent (its own back-pressure). The echo
          goes through a pipe with splice(2) where Python has os.splice, so
          the backend costs little CPU next to the proxy under test.
  source  sends "NAME\\n" then N bytes of a fixed pattern, then closes.
Runs until killed.
"""

import fcntl
import os
import selectors
import socket
import struct
import sys

CHUNK = 256 * 1024
PATTERN = bytes(range(256)) * (CHUNK // 256)


SPLICE = hasattr(os, "splice")
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = 1031


class Conn:
    def __init__(self, sock, banner, left, echo):
        self.sock = sock
        self.out = bytearray(banner)
        self.eof = False
        self.left = left  # source mode: bytes still to produce
        self.pipe = None  # echo with splice: (read end, write end)
        self.piped = 0    # bytes in the pipe
        if echo and SPLICE:
            self.pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                fcntl.fcntl(self.pipe[1], F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass

    def pending(self):
        return len(self.out) + self.piped

    def close(self):
        self.sock.close()
        if self.pipe:
            os.close(self.pipe[0])
            os.close(self.pipe[1])
            self.pipe = None


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
        room = c.piped < PIPE_SIZE if c.pipe else len(c.out) < 4 * 1024 * 1024
        if mode in ("echo", "reset") and not c.eof and room:
            ev |= selectors.EVENT_READ
        if c.pending() or (mode == "source" and c.left > 0):
            ev |= selectors.EVENT_WRITE
        return ev

    def update(c):
        ev = want(c)
        done = not c.pending() and (c.eof if mode in ("echo", "reset") else c.left <= 0)
        if done:
            sel.unregister(c.sock)
            try:
                c.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            c.close()
            return
        if ev == 0:
            ev = selectors.EVENT_READ  # only to notice a reset; reads are skipped
        sel.modify(c.sock, ev, c)

    def drop(c):
        sel.unregister(c.sock)
        c.close()

    while True:
        for key, events in sel.select():
            if key.data is None:
                for _ in range(64):
                    try:
                        s, _ = ls.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    s.setblocking(False)
                    c = Conn(s, banner, total if mode == "source" else 0, mode == "echo")
                    sel.register(s, selectors.EVENT_WRITE, c)
                continue
            c = key.data
            try:
                if events & selectors.EVENT_READ and mode == "reset":
                    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    drop(c)
                    continue
                if events & selectors.EVENT_READ and want(c) & selectors.EVENT_READ and c.pipe:
                    n = os.splice(c.sock.fileno(), c.pipe[1], PIPE_SIZE - c.piped,
                                  flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
                    if n:
                        c.piped += n
                    else:
                        c.eof = True
                elif events & selectors.EVENT_READ and want(c) & selectors.EVENT_READ:
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
                    elif c.piped:
                        c.piped -= os.splice(c.pipe[0], c.sock.fileno(), c.piped,
                                             flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
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
