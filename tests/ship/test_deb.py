#!/usr/bin/env python3
"""Tests of `make deb` (build/beacon_VERSION_ARCH.deb), as a user would use it.

    python3 tests/ship/test_deb.py        (after `make deb`; `make ship-check` does both)

- The package's control data and file list; lintian reports no error and no
  warning (run as user nobody, as lintian asks).
- Installed on THIS machine with apt-get (`apt-get install ./beacon_....deb`) (a throwaway root would need a whole
  Debian in it for the maintainer scripts: adduser, a shell; debootstrap is
  too slow for make check): `beacon --version` of the installed binary, the
  "beacon" system user and group, the shipped config passes --check-config,
  the unit passes `systemd-analyze verify` and is not enabled.
- remove keeps the conffile and the user; purge removes them, and the places
  the package touches hold exactly what they held before the install.
The test refuses to run (fails, changing nothing) when beacon is already
installed, a "beacon" user exists (purge would delete someone else's user) or
one of the package's files is there already (e.g. from make install).
"""

import contextlib
import os
import re
import shutil
import subprocess

import shiplib
from shiplib import sh, skip

VERSION = shiplib.version()
ARCH = subprocess.run(["dpkg", "--print-architecture"], stdout=subprocess.PIPE,
                      universal_newlines=True).stdout.strip() or "amd64"
DEB = os.path.join(shiplib.build_dir(), "beacon_%s_%s.deb" % (VERSION, ARCH))
UNIT = "/lib/systemd/system/beacon.service"
EXPECTED = {"/usr/bin/beacon", "/usr/share/man/man1/beacon.1.gz", UNIT, "/etc/beacon/beacon.json",
            "/usr/share/doc/beacon/copyright", "/usr/share/doc/beacon/changelog.gz",
            "/usr/share/doc/beacon/README.Debian"}
# Where the package or its scripts write; compared before install and after purge.
WATCHED = ["/etc", "/usr/bin", "/usr/share/man/man1", "/usr/share/doc", "/lib/systemd/system",
           "/var/lib/dpkg/info", "/var/lib/systemd/deb-systemd-helper-enabled"]
# Checked for a beacon line after purge. (adduser/deluser keep the previous
# file as passwd- etc., Debian's own behaviour: that backup is not checked.)
ACCOUNT_FILES = ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"]


def deb():
    if not os.path.exists(DEB):
        raise AssertionError("%s is missing: run `make deb` first" % DEB)
    return DEB


def snapshot():
    paths = set()
    for top in WATCHED:
        for d, dirs, files in os.walk(top):
            for n in dirs + files:
                paths.add(os.path.join(d, n))
    return paths


def accounts():
    out = {}
    for f in ACCOUNT_FILES:
        with contextlib.suppress(OSError), open(f) as fh:
            out[f] = fh.read()
    return out


def beacon_in_accounts():
    return sorted(f for f, text in accounts().items() if re.search(r"^beacon:", text, re.M))


def apt(*args):
    """apt-get as a user would run it; waits for the dpkg lock (other apt
    runs on a shared machine) instead of failing at once."""
    return sh("apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", *args, timeout=400,
              env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def test_deb_control_and_files():
    _, info, _ = sh("dpkg-deb", "--field", deb(), "Package", "Version", "Architecture", "Depends",
                    "Maintainer", "Section")
    fields = dict(l.split(": ", 1) for l in info.splitlines() if ": " in l)
    assert fields["Package"] == "beacon" and fields["Version"] == VERSION, fields
    for lib in ("libc6", "libcurl4", "libevent-2.1-7", "libjansson4", "libsodium23", "adduser"):
        assert lib in fields["Depends"], fields["Depends"]
    _, listing, _ = sh("dpkg-deb", "--contents", deb())
    files = {}
    for line in listing.splitlines():
        perm, owner, _size, _date, _time, path = line.split(None, 5)
        files[path[1:].rstrip("/") or "/"] = (perm, owner)
        assert owner == "root/root", line
    assert EXPECTED <= set(files), "missing: %s" % sorted(EXPECTED - set(files))
    assert files["/usr/bin/beacon"][0] == "-rwxr-xr-x"
    _, conffiles, _ = sh("sh", "-c", "dpkg-deb --ctrl-tarfile %s | tar -xOf - ./conffiles" % deb())
    assert conffiles.split() == ["/etc/beacon/beacon.json"], conffiles
    _, unit, _ = sh("sh", "-c", "dpkg-deb --fsys-tarfile %s | tar -xOf - .%s" % (deb(), UNIT))
    execs = re.findall(r"^Exec\w+=.*$", unit, re.M)
    assert "ExecStart=/usr/bin/beacon agent --config /etc/beacon/beacon.json" in execs, execs
    assert not [e for e in execs if "/usr/local" in e], execs
    assert "make install" not in unit, unit[:600]


def test_deb_lintian_clean():
    if not shutil.which("lintian"):
        skip("lintian is not installed")
    rc, out, err = sh("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                      "env", "HOME=/tmp", "TMPDIR=/tmp", "lintian", "--fail-on", "error,warning",
                      deb(), check=False, timeout=300)
    tags = [l for l in (out + err).splitlines() if re.match(r"^[EW]: ", l)]
    assert rc == 0 and not tags, "lintian (%d):\n%s%s" % (rc, out, err)


def test_deb_install_verify_remove_purge():
    if shutil.which("dpkg-query") is None or os.geteuid() != 0:
        skip("needs root and dpkg")
    rc, status, _ = sh("dpkg-query", "-W", "-f=${Status}", "beacon", check=False)
    assert "installed" not in status and "config-files" not in status, \
        "beacon is already installed here (%s): not touching it" % status
    assert not beacon_in_accounts(), "a beacon user or group exists already: purge would remove it"
    for path in EXPECTED:
        assert not os.path.exists(path), "%s exists already (make install?): not overwriting it" % path
    before = snapshot()
    try:
        apt("install", "--no-install-recommends", os.path.abspath(deb()))
        _, out, _ = sh("/usr/bin/beacon", "--version")
        assert out.splitlines()[0] == "beacon " + VERSION, out
        _, pw, _ = sh("getent", "passwd", "beacon")
        name, _, uid, gid, _, home, shell = pw.strip().split(":")
        assert int(uid) < 1000 and shell in ("/usr/sbin/nologin", "/bin/false"), pw
        _, gr, _ = sh("getent", "group", "beacon")
        assert gr.split(":")[2] == gid, (pw, gr)
        assert not os.path.exists(home) or home == "/nonexistent" and not os.path.exists(home), home
        sh("/usr/bin/beacon", "agent", "--config", "/etc/beacon/beacon.json", "--check-config")
        _, man, _ = sh("sh", "-c", "gzip -dc /usr/share/man/man1/beacon.1.gz | head -c 2000")
        assert ".TH BEACON" in man.upper(), man[:200]

        if shutil.which("systemd-analyze"):
            env = dict(os.environ, SYSTEMD_LOG_COLOR="0", SYSTEMD_PAGER="cat")
            rc, out, err = sh("systemd-analyze", "verify", "--man=no", UNIT, check=False, env=env)
            ours = [l for l in (out + err).splitlines() if "beacon.service" in l]
            assert rc == 0 and not ours, "systemd-analyze verify (%d):\n%s%s" % (rc, out, err)
        else:
            print("  systemd-analyze is not installed: unit not verified")
        # Installed disabled: no enable link anywhere under /etc/systemd.
        links = [os.path.join(d, n) for d, _, fs in os.walk("/etc/systemd") for n in fs
                 if n == "beacon.service"]
        assert not links, "the unit was enabled: %s" % links

        apt("remove", "beacon")
        assert not os.path.exists("/usr/bin/beacon") and not os.path.exists(UNIT)
        assert os.path.exists("/etc/beacon/beacon.json"), "remove must keep the conffile"
        assert beacon_in_accounts(), "remove must keep the user (purge removes it)"

        apt("purge", "beacon")
        assert not beacon_in_accounts(), "purge left the beacon user/group in %s" % beacon_in_accounts()
        # Only names with "beacon" in them count: the machine is shared, and
        # other apt runs may add or remove their own files meanwhile.
        after = snapshot()
        left = sorted(p for p in after - before if "beacon" in p)
        gone = sorted(p for p in before - after if "beacon" in p)
        assert not left, "purge left files behind: %s" % left
        assert not gone, "install/purge removed files that were there before: %s" % gone
        rc, status, _ = sh("dpkg-query", "-W", "-f=${Status}", "beacon", check=False)
        assert rc != 0 or "not-installed" in status, status
    finally:
        subprocess.run(["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", "purge", "beacon"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=400)


if __name__ == "__main__":
    shiplib.main(globals())
