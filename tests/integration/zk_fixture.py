"""A real ZooKeeper for beacon's integration tests (Debian's server classes).

    with ZooKeeper() as z:            # standalone, free loopback port, temp dir
        z.client().create("/k", b"v", makepath=True)
        z.kill9(); z.start()          # same data dir and port
        z.sigstop(); z.sigcont()
    with Ensemble(3) as e:            # three members, quorum on loopback
        e.members[0].kill9()

    z = shared()                      # one server for a whole test module

The server is org.apache.zookeeper.server.ZooKeeperServerMain (standalone) or
QuorumPeerMain (ensemble) from libzookeeper-java, started with `java -cp` on
a zoo.cfg in a temp dir: the admin server is disabled and only loopback ports
are bound, so the zookeeperd system service (port 2181) is never involved.
The JVM is the slow part (about 1-3 s per start), so a test module shares one
server (shared()) and isolates tests by base path. Test-side clients are
kazoo (python3-kazoo). Skips when Java or the classes are missing; every
process started here is killed on close and at interpreter exit.
"""

import atexit
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from harness import free_port, skip

JAVA = shutil.which("java") or "/usr/bin/java"
JARS = "/usr/share/java"
SERVER_CP = ["zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar", "slf4j-nop.jar",
             "commons-io.jar", "metrics-core.jar", "commons-cli.jar", "snappy-java.jar"]
# Small heap, no JIT tiers beyond C1: a test server starts faster and lighter.
JVM_OPTS = ["-Xmx160m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k",
            "-Djute.maxbuffer=4194304", "-Dzookeeper.admin.enableServer=false"]

_all = []
# kazoo logs every connection drop; the fault tests cause them on purpose.
logging.getLogger("kazoo").addHandler(logging.NullHandler())
logging.getLogger("kazoo").propagate = False


def kazoo_client_class():
    """kazoo's KazooClient: python3-kazoo is installed for Debian's python3;
    a python3 of another origin (pyenv, venv) finds it in dist-packages."""
    try:
        from kazoo.client import KazooClient
    except ImportError:
        deb = "/usr/lib/python3/dist-packages"
        if deb not in sys.path and os.path.isdir(os.path.join(deb, "kazoo")):
            sys.path.append(deb)
        try:
            from kazoo.client import KazooClient
        except ImportError:
            skip("python3-kazoo is not installed")
    return KazooClient


def classpath(names):
    return ":".join(os.path.join(JARS, n) for n in names)


def have_server():
    return os.access(JAVA, os.X_OK) and os.path.exists(os.path.join(JARS, "zookeeper.jar"))


def four_letter(port, cmd, timeout=1.0):
    """A four-letter-word command ("ruok", "srvr", "mntr"); b"" when it fails."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(cmd.encode())
            out = b""
            while True:
                b = s.recv(4096)
                if not b:
                    return out
                out += b
    except OSError:
        return b""


class ZooKeeper:
    """One ZooKeeper server on loopback: standalone, or member `myid` of an
    ensemble when `quorum` (a list of (peer_port, election_port)) is given."""

    def __init__(self, myid=None, quorum=None, ports=None, tick_ms=200, extra=()):
        if not have_server():
            skip("ZooKeeper server classes or java missing (apt-get install libzookeeper-java default-jdk-headless)")
        self.dir = tempfile.mkdtemp(prefix="beacon-zk-", dir="/tmp")
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data)
        self.myid = myid
        self.quorum = quorum
        self.port = ports[myid - 1] if ports else free_port()
        self.tick_ms = tick_ms
        self.extra = list(extra)  # more zoo.cfg lines ("forceSync=no")
        self.proc = None
        self.stopped = False
        self._clients = []
        self._write_cfg(ports)
        _all.append(self)

    def _write_cfg(self, ports):
        lines = ["tickTime=%d" % self.tick_ms, "dataDir=" + self.data,
                 "clientPort=%d" % self.port, "clientPortAddress=127.0.0.1",
                 "admin.enableServer=false", "4lw.commands.whitelist=*",
                 # beacon's session_timeout is negotiated within these
                 "minSessionTimeout=1000", "maxSessionTimeout=60000",
                 "initLimit=20", "syncLimit=10", "maxClientCnxns=0"] + self.extra
        if self.quorum:
            with open(os.path.join(self.data, "myid"), "w") as f:
                f.write("%d\n" % self.myid)
            for i, (pp, ep) in enumerate(self.quorum, 1):
                lines.append("server.%d=127.0.0.1:%d:%d" % (i, pp, ep))
        with open(os.path.join(self.dir, "zoo.cfg"), "w") as f:
            f.write("\n".join(lines) + "\n")

    @property
    def hostport(self):
        return "127.0.0.1:%d" % self.port

    # -- life --

    def start(self, timeout=30, wait=True):
        main = ("org.apache.zookeeper.server.quorum.QuorumPeerMain" if self.quorum
                else "org.apache.zookeeper.server.ZooKeeperServerMain")
        argv = [JAVA] + JVM_OPTS + ["-cp", classpath(SERVER_CP), main,
                                    os.path.join(self.dir, "zoo.cfg")]
        self.log_file = open(os.path.join(self.dir, "zk.log"), "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=self.log_file, cwd=self.dir)
        self.stopped = False
        if wait:
            self.wait_serving(timeout)
        return self

    def serving(self):
        """True when the server answers requests (a quorum member: has joined one)."""
        out = four_letter(self.port, "srvr")
        return b"Mode: standalone" in out or b"Mode: leader" in out or b"Mode: follower" in out

    def wait_serving(self, timeout=30):
        deadline = time.monotonic() + timeout
        while not self.serving():
            if self.proc.poll() is not None:
                raise AssertionError("ZooKeeper exited with %d; log:\n%s"
                                     % (self.proc.returncode, self.log()))
            if time.monotonic() > deadline:
                raise AssertionError("ZooKeeper did not serve within %ds; log:\n%s"
                                     % (timeout, self.log()))
            time.sleep(0.05)
        return self

    def log(self):
        try:
            with open(os.path.join(self.dir, "zk.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return "(no log)"

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            if self.stopped:
                self.sigcont()
            self.proc.kill()
            self.proc.wait(timeout=10)
        if getattr(self, "log_file", None):
            self.log_file.close()
            self.log_file = None

    def restart(self):
        self.kill9()
        return self.start()

    def sigstop(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def sigcont(self):
        self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    # -- clients --

    def client(self, timeout=10.0):
        """A connected kazoo client (closed with the server)."""
        c = kazoo_client_class()(hosts=self.hostport, timeout=timeout)
        c.start(timeout=timeout)
        self._clients.append(c)
        return c

    def close(self):
        for c in self._clients:
            with contextlib.suppress(Exception):
                c.stop()
                c.close()
        self._clients = []
        self.kill9()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self in _all:
            _all.remove(self)

    def __enter__(self):
        if self.proc is None:
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(self, *exc):
        self.close()


class Ensemble:
    """n members on loopback (client, peer and election ports all free ports)."""

    def __init__(self, n=3, tick_ms=200):
        # 3n distinct ports: free_port() picks each at random and releases it,
        # so two picks may agree, and a member that cannot bind its quorum
        # port exits (ZooKeeper's exit code 14).
        picked = []
        while len(picked) < 3 * n:
            port = free_port()
            if port not in picked:
                picked.append(port)
        ports = picked[:n]
        quorum = [(picked[n + 2 * i], picked[n + 2 * i + 1]) for i in range(n)]
        self.members = [ZooKeeper(myid=i + 1, quorum=quorum, ports=ports, tick_ms=tick_ms)
                        for i in range(n)]

    @property
    def hostports(self):
        return [m.hostport for m in self.members]

    def start(self, timeout=60):
        for m in self.members:
            m.start(wait=False)
        for m in self.members:
            m.wait_serving(timeout)
        return self

    def client(self):
        c = kazoo_client_class()(hosts=",".join(self.hostports), timeout=10)
        c.start(timeout=15)
        self.members[0]._clients.append(c)
        return c

    def close(self):
        for m in self.members:
            m.close()

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()


_shared = None


def shared():
    """One standalone server for a test module's tests (started on first use,
    restarted when a test left it killed or stopped, closed at exit). Tests
    sharing it use base paths of their own."""
    global _shared
    if _shared is None:
        _shared = ZooKeeper().start()
    elif _shared.stopped:
        _shared.sigcont()
    if _shared.proc.poll() is not None:
        _shared.start()
    return _shared


@atexit.register
def _close_all():
    for z in list(_all):
        with contextlib.suppress(Exception):
            z.close()
