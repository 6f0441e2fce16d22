"""Checks on systemd/beacon.service, the unit shipped for hosts and VMs.

`systemd-analyze verify` reads the unit offline (no systemd needs to run as
PID 1) and reports unknown keys, bad values and missing executables. It exits
0 even for an unknown key, so the test also fails on any message it prints
about the unit. The remaining tests pin what the rest of the project relies
on: Type=notify with a watchdog (agent/base/sdnotify.c), no core dumps (secrets),
and a config check before start and before reload.

Plain functions named test_*; each takes no argument and raises
AssertionError on failure. Environment: BEACON_BIN, absolute path of the built
binary, substituted for /usr/local/bin/beacon in the Exec lines of a temporary
copy of the unit (verify insists that Exec paths exist); /bin/true stands in
when it is unset or missing, since verify only checks that the file is
executable and never runs it.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

UNIT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    "..", "..", "systemd", "beacon.service")
UNIT_NAME = "beacon.service"
INSTALLED_BIN = "/usr/local/bin/beacon"


def _unit_text():
    with open(UNIT, encoding="utf-8") as f:
        return f.read()


def _service_directives():
    """[(key, value)] of the [Service] section, in file order."""
    out, section = [], None
    for raw in _unit_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), "continuation lines are not expected: " + line
        if line.startswith("["):
            section = line
            continue
        key, sep, value = line.partition("=")
        assert sep, "not a key=value line: " + line
        if section == "[Service]":
            out.append((key.strip(), value.strip()))
    return out


def _values(key):
    return [v for k, v in _service_directives() if k == key]


def _stand_in_binary():
    path = os.environ.get("BEACON_BIN", "")
    if path and os.path.isabs(path) and os.access(path, os.X_OK):
        return path
    return "/bin/true"


def test_unit_verifies_cleanly():
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        # Not in .ci/deps' package list: say so rather than fail on a bare host.
        print("SKIP test_unit_verifies_cleanly: systemd-analyze not installed",
              file=sys.stderr)
        return

    binary = _stand_in_binary()
    # Only the program path of the Exec lines changes; their arguments, and
    # everything else in the unit (User=beacon included), is verified as shipped.
    exec_line = re.compile(r"^(Exec\w+=[-@:+!]*)" + re.escape(INSTALLED_BIN) + r"(?=\s|$)",
                           re.MULTILINE)
    text, n = exec_line.subn(lambda m: m.group(1) + binary, _unit_text())
    assert n == 3, "expected 3 Exec lines running %s, rewrote %d" % (INSTALLED_BIN, n)
    # verify checks only the first command of each Exec list (systemd 252
    # ignores a missing /bin/kill in the second ExecReload), so check them all.
    for m in re.finditer(r"^Exec\w+=[-@:+!]*(\S+)", text, re.MULTILINE):
        assert os.access(m.group(1), os.X_OK), "not an executable: " + m.group(0)

    with tempfile.TemporaryDirectory(prefix="beacon-unit-") as tmp:
        path = os.path.join(tmp, UNIT_NAME)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        env = dict(os.environ, SYSTEMD_LOG_COLOR="0", SYSTEMD_PAGER="cat")
        proc = subprocess.run([analyze, "verify", "--man=no", path],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=env, timeout=60, check=False,
                              universal_newlines=True)

    # Ignored: lines that do not name our unit. verify also loads the units
    # beacon.service refers to (network-online.target, multi-user.target...)
    # and prints whatever it finds wrong in the host's copies of those; that
    # says nothing about our file. Nothing else is filtered. In particular
    # User=beacon/Group=beacon are kept: verify (systemd 252) does not look
    # the user up, so no user needs to exist and nothing is rewritten to root.
    ours = [line for line in proc.stdout.splitlines() if UNIT_NAME in line]
    assert proc.returncode == 0, "systemd-analyze verify exited %d:\n%s" % (
        proc.returncode, proc.stdout)
    assert not ours, "systemd-analyze verify complained about the unit:\n" + "\n".join(ours)


def test_unit_is_type_notify_with_watchdog():
    assert _values("Type") == ["notify"], _values("Type")
    # The agent is the only sender; its exec health checks must not be able to notify.
    assert _values("NotifyAccess") == ["main"], _values("NotifyAccess")
    watchdog = _values("WatchdogSec")
    assert len(watchdog) == 1 and watchdog[0] not in ("", "0", "infinity"), watchdog


def test_unit_disables_core_dumps():
    assert _values("LimitCORE") == ["0"], _values("LimitCORE")


def test_unit_leaves_room_for_connections():
    # systemd's default soft limit (1024) equals socket.max_connections' default:
    # accept() then fails with EMFILE. Room for the socket's 1024, the probe
    # listener's 1024 and the descriptors kept for backends (agent/agent.c).
    nofile = _values("LimitNOFILE")
    assert len(nofile) == 1, "LimitNOFILE is not set: %r" % (nofile,)
    soft = nofile[0].split(":")[0]
    assert soft == "infinity" or int(soft) >= 4096, nofile


def test_config_is_checked_before_start_and_reload():
    pre = _values("ExecStartPre")
    assert any("--check-config" in v for v in pre), "ExecStartPre must run --check-config"
    assert not any("--check-config" in v for v in _values("ExecStart")), \
        "ExecStart must run the agent, not the check"

    reload = _values("ExecReload")
    assert len(reload) >= 2, "ExecReload must check the config, then signal: %r" % reload
    assert "--check-config" in reload[0], "the first ExecReload must be the config check"
    # The check runs first so that a bad config fails the reload before the
    # running agent is told to reread it.
    assert re.search(r"\bkill\b.*-HUP.*\$MAINPID", reload[-1]), \
        "the last ExecReload must send SIGHUP to $MAINPID: %r" % reload[-1]


def _notify_messages(sock, until, timeout):
    """Collect datagrams from sock until one contains `until` (or timeout)."""
    import time
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except OSError:
            break
        if until in got[-1]:
            break
    return got


def test_agent_speaks_the_notify_protocol():
    # The agent itself, not only sdnotify.c: READY=1 with a STATUS once it
    # serves, WATCHDOG=1 from the loop at half of WATCHDOG_USEC, RELOADING=1
    # then READY=1 around a SIGHUP, STOPPING=1 on SIGTERM.
    import signal
    import socket as s
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import harness
    d = tempfile.mkdtemp(prefix="beacon-notify-")
    try:
        path = os.path.join(d, "notify")
        n = s.socket(s.AF_UNIX, s.SOCK_DGRAM)
        n.bind(path)
        env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": None}
        cfg = harness.static({"web": [harness.endpoint("10.0.0.1", 80)]})
        with harness.Agent(cfg, env=env) as a:
            msgs = _notify_messages(n, "READY=1", harness.scale(5))
            assert any("READY=1" in m for m in msgs), msgs
            assert any("STATUS=ready" in m for m in msgs), msgs
            msgs = _notify_messages(n, "never", harness.scale(0.6))
            assert sum("WATCHDOG=1" in m for m in msgs) >= 2, "watchdog pings every 100 ms: %r" % msgs
            a.signal(signal.SIGHUP)
            msgs = _notify_messages(n, "READY=1", harness.scale(5))
            text = "".join(msgs)
            assert "RELOADING=1" in text and "READY=1" in text, msgs
            assert text.index("RELOADING=1") < text.rindex("READY=1"), msgs
            rc = a.stop()
            assert rc == 0, rc
            msgs = _notify_messages(n, "STOPPING=1", harness.scale(2))
            assert any("STOPPING=1" in m for m in msgs), msgs
        n.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
