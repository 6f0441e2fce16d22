"""The Unix socket file: mode, group, ownership of the path, clean removal."""

import grp
import json
import os
import signal
import socket
import stat
import time

from harness import Agent, endpoint, run_beacon, scale, skip, temp_dir

SERVICES = {"static": {"services": {"web": [endpoint("10.0.0.1", 80)]}}}


def cfg(**sock):
    c = dict(SERVICES)
    c["socket"] = dict(sock)
    return c


def some_group():
    for name in ("nogroup", "daemon", "nobody", "users"):
        try:
            g = grp.getgrnam(name)
        except KeyError:
            continue
        if g.gr_gid != os.getgid():
            return g
    skip("no group other than our own to test with")


def test_socket_mode_0600():
    with Agent(cfg(mode="0600")) as a:
        st = os.lstat(a.sock)
        assert stat.S_ISSOCK(st.st_mode), oct(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600, oct(stat.S_IMODE(st.st_mode))


def test_socket_mode_default_0660():
    with Agent(cfg()) as a:
        assert stat.S_IMODE(os.lstat(a.sock).st_mode) == 0o660, oct(os.lstat(a.sock).st_mode)


def test_socket_mode_and_numeric_group():
    g = some_group()
    with Agent(cfg(mode="0660", group=str(g.gr_gid))) as a:
        st = os.lstat(a.sock)
        assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
        assert st.st_gid == g.gr_gid, "group %d, wanted %d" % (st.st_gid, g.gr_gid)
        assert st.st_uid == os.getuid(), st.st_uid


def test_socket_group_by_name():
    g = some_group()
    with Agent(cfg(mode="0640", group=g.gr_name)) as a:
        st = os.lstat(a.sock)
        assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == g.gr_gid, (oct(st.st_mode), st.st_gid)


def test_unknown_group_refused():
    with Agent(cfg(group="no-such-group-beacon-it"), wait=False) as a:
        rc = a.wait_exit(10)
        assert rc == 2, "rc %d: %s" % (rc, a.log())
        assert "$.socket.group" in a.log(), a.log()
        assert not os.path.exists(a.sock)


def check_config(c):
    with temp_dir() as d:
        path = os.path.join(d, "c.json")
        with open(path, "w") as f:
            json.dump(c, f)
        return run_beacon("agent", "--config", path, "--check-config")


def test_group_ids_out_of_range_refused():
    # strtol and a cast made "4294967297" gid 1 and "4294967296" gid 0 (root).
    for gid in ("4294967297", "4294967296", "4294967295", "99999999999999999999999"):
        rc, out, err = check_config(cfg(group=gid))
        assert rc == 2, "group %s accepted: rc %d\n%s%s" % (gid, rc, out, err)
        line = [l for l in err.splitlines() if l.startswith("$.socket.group")]
        assert line and "out of range" in line[0] and "4294967294" in line[0], (gid, err)
    # Not a number and not a name: no such group (strtol took " 5" and "+5").
    for name in (" 5", "+5", "-1", "5x"):
        rc, out, err = check_config(cfg(group=name))
        assert rc == 2 and "$.socket.group" in err and "no such group" in err, (name, rc, err)
    rc, out, err = check_config(cfg(group="4294967294"))
    assert rc == 0, (rc, out, err)


def test_second_agent_on_live_socket_refused():
    with Agent(cfg()) as first:
        with Agent(cfg(path=first.sock), wait=False) as second:
            rc = second.wait_exit(10)
            assert rc != 0, "the second agent started on a live socket"
            log = second.log()
            assert first.sock in log and ("already" in log or "in use" in log), \
                "no clear message: %r" % log
        assert first.alive(), "the first agent died"
        assert os.path.exists(first.sock), "the second agent removed the first one's socket"
        st, _, body = first.get("/v1/endpoints/web")
        assert st == 200 and body["endpoints"], (st, body)
        assert first.stop() == 0


def test_stale_socket_file_replaced():
    with temp_dir() as d:
        path = os.path.join(d, "beacon.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()  # the file stays, nobody listens
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        with Agent(cfg(path=path, mode="0600")) as a:
            assert a.get("/health")[0] == 200
            assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
            assert a.stop() == 0
        assert not os.path.exists(path)


def test_regular_file_at_path_refused():
    with temp_dir() as d:
        path = os.path.join(d, "beacon.sock")
        with open(path, "w") as f:
            f.write("precious data\n")
        with Agent(cfg(path=path), wait=False) as a:
            rc = a.wait_exit(10)
            assert rc != 0, "started over a regular file"
            assert path in a.log() and "not a socket" in a.log(), a.log()
        with open(path) as f:
            assert f.read() == "precious data\n", "the regular file was touched"


def test_missing_directory_reported():
    with temp_dir() as d:
        path = os.path.join(d, "no", "such", "dir", "beacon.sock")
        with Agent(cfg(path=path), wait=False) as a:
            rc = a.wait_exit(10)
            assert rc != 0, rc
            assert path in a.log(), a.log()


def _stop_removes_socket(sig):
    with Agent(cfg()) as a:
        assert os.path.exists(a.sock)
        t0 = time.monotonic()
        rc = a.stop(sig)
        assert rc == 0, "exit code %d after %s; log:\n%s" % (rc, sig.name, a.log())
        assert time.monotonic() - t0 < scale(3), "stopping took %.1fs" % (time.monotonic() - t0)
        assert not os.path.exists(a.sock), "the socket file is left behind after %s" % sig.name


def test_sigterm_removes_socket():
    _stop_removes_socket(signal.SIGTERM)


def test_sigint_removes_socket():
    _stop_removes_socket(signal.SIGINT)


def test_restart_on_same_path():
    with temp_dir() as d:
        path = os.path.join(d, "beacon.sock")
        for _ in range(2):
            with Agent(cfg(path=path)) as a:
                assert a.get("/health")[0] == 200
                assert a.stop() == 0


def test_cli_cannot_reach_stopped_agent():
    with Agent(cfg()) as a:
        sock = a.sock
        assert a.stop() == 0
    rc, _, err = run_beacon("--socket", sock, "status")
    assert rc == 1, (rc, err)
