#!/usr/bin/env python3
"""Tests of `make image` (build/beacon-VERSION.oci.tar), as a user of the image
would see it, on a machine where no container runtime can start a container.

    python3 tests/ship/test_image.py        (after `make image`; `make ship-check` does both)

- The archive's manifest and config: ENTRYPOINT, CMD, USER 65532, OCI labels.
- The layer's file list: the binary, its libraries, a CA bundle, passwd/group with
  65532, and no shell or package manager.
- The image runs: the archive is loaded back with buildah (vfs storage under
  build/image/, no daemon), its root filesystem mounted, and the agent started
  in it with chroot as uid/gid 65532 (chroot --userspec after setpriv has cut
  the capability bounding set to what chroot itself needs, with no_new_privs),
  in a private mount namespace with /proc mounted as a runtime would. Against a
  real etcd on loopback it must register, serve /ready on its socket, run
  with no capability, leave discovery on `beacon drain` run in the image (the
  manifests' preStop hook), and revoke its lease and exit 0 on SIGTERM.
- Nothing of the host is needed: the same run is traced (strace -f, open/openat/
  execve); every file the agent opened must be in the image (or /proc), and no
  library was looked for and not found; the image's own loader lists every
  library as found inside the root.
"""

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time

import shiplib
from shiplib import sh, skip

from etcd_fixture import Etcd
from harness import UnixHTTPConnection, free_port, http_request, wait_for

VERSION = shiplib.version()
ARCHIVE = os.path.join(shiplib.build_dir(), "beacon-%s.oci.tar" % VERSION)
STORAGE = os.path.join(shiplib.build_dir(), "image")
SHELLS = ("sh", "bash", "dash", "busybox", "ash", "zsh")
PKG_TOOLS = ("apt", "apt-get", "dpkg", "apk", "rpm", "yum", "dnf", "microdnf")


def buildah(*args, check=True):
    if not shutil.which("buildah"):
        skip("buildah is not installed (Debian package buildah)")
    return sh("buildah", "--storage-driver", "vfs", "--root", os.path.join(STORAGE, "storage"),
              "--runroot", os.path.join(STORAGE, "run"), *args, check=check)[1].strip()


def archive():
    if not os.path.exists(ARCHIVE):
        raise AssertionError("%s is missing: run `make image` first" % ARCHIVE)
    return tarfile.open(ARCHIVE)


def blob(tf, digest):
    return tf.extractfile("blobs/%s" % digest.replace(":", "/")).read()


def manifest_and_config(tf):
    index = json.loads(tf.extractfile("index.json").read())
    assert len(index["manifests"]) == 1, index
    desc = index["manifests"][0]
    manifest = json.loads(blob(tf, desc["digest"]))
    config = json.loads(blob(tf, manifest["config"]["digest"]))
    return desc, manifest, config


def layer_members(tf, manifest):
    assert len(manifest["layers"]) == 1, "one layer expected, got %d" % len(manifest["layers"])
    data = blob(tf, manifest["layers"][0]["digest"])
    with tarfile.open(fileobj=io.BytesIO(data)) as layer:
        return {os.path.normpath("/" + m.name): m for m in layer.getmembers()}


def image_file_list():
    """{path: (type, mode, uid, gid, link target)} of the image's layer."""
    with archive() as tf:
        _, manifest, _ = manifest_and_config(tf)
        members = layer_members(tf, manifest)
    kind = lambda m: "d" if m.isdir() else "l" if m.issym() else "f" if m.isfile() else "?"
    return {p: (kind(m), m.mode & 0o7777, m.uid, m.gid, m.linkname if m.issym() else "")
            for p, m in members.items() if p != "/"}


def test_image_config_entrypoint_user_labels():
    with archive() as tf:
        desc, manifest, config = manifest_and_config(tf)
    c = config["config"]
    assert c["Entrypoint"] == ["/usr/bin/beacon"], c.get("Entrypoint")
    assert c["Cmd"] == ["agent", "--config", "/etc/beacon/beacon.json"], c.get("Cmd")
    assert c["User"] == "65532", c.get("User")
    labels = c.get("Labels", {})
    assert labels.get("org.opencontainers.image.version") == VERSION, labels
    assert re.match(r"^[0-9a-f]{40}(-dirty)?$", labels.get("org.opencontainers.image.revision", "")), labels
    for key in ("source", "licenses", "title"):
        assert labels.get("org.opencontainers.image." + key), "label %s missing: %s" % (key, labels)
    assert desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == VERSION or \
        desc.get("annotations", {}).get("org.opencontainers.image.ref.name", "").endswith(VERSION), desc
    assert config["os"] == "linux" and config["architecture"], config
    # docker load's index of the same blobs (what `docker save` writes beside the OCI layout).
    with archive() as tf:
        names = set(tf.getnames())
        [entry] = json.loads(tf.extractfile("manifest.json").read())
    assert entry["RepoTags"] == ["beacon:" + VERSION], entry
    assert entry["Config"] == "blobs/" + manifest["config"]["digest"].replace(":", "/"), entry
    assert entry["Layers"] == ["blobs/" + l["digest"].replace(":", "/") for l in manifest["layers"]], entry
    assert {entry["Config"], *entry["Layers"]} <= names, entry
    assert len(config["rootfs"]["diff_ids"]) == len(entry["Layers"]), config["rootfs"]
    print("  image: %s, %.1f MB archive, layer %.1f MB compressed" % (
        ARCHIVE, os.path.getsize(ARCHIVE) / 1e6, manifest["layers"][0]["size"] / 1e6))


def test_image_files_minimal_nonroot_no_shell():
    files = image_file_list()
    for path in ("/usr/bin/beacon", "/etc/passwd", "/etc/group", "/etc/ssl/certs/ca-certificates.crt",
                 "/etc/beacon/beacon.json", "/usr/lib64/ld-linux-x86-64.so.2"):
        assert path in files and files[path][0] == "f", "%s missing from the image" % path
    assert files["/usr/bin/beacon"][1] == 0o755
    assert files["/run/beacon"][:4] == ("d", 0o755, 65532, 65532), files["/run/beacon"]
    for path, (kind, mode, uid, gid, _) in files.items():
        if path != "/run/beacon":
            assert (uid, gid) == (0, 0), "%s is owned by %d:%d" % (path, uid, gid)
        assert not (mode & 0o6000), "%s is setuid/setgid" % path
        base = os.path.basename(path)
        assert base not in SHELLS and base not in PKG_TOOLS, "%s is in the image" % path
    assert not any(p.startswith(("/var/lib/dpkg", "/var/lib/apt", "/var/cache")) for p in files)
    with archive() as tf:
        _, manifest, _ = manifest_and_config(tf)
        data = blob(tf, manifest["layers"][0]["digest"])
    with tarfile.open(fileobj=io.BytesIO(data)) as layer:
        passwd = layer.extractfile("etc/passwd").read().decode()
        group = layer.extractfile("etc/group").read().decode()
    assert re.search(r"^nonroot:x:65532:65532:", passwd, re.M), passwd
    assert re.search(r"^nonroot:x:65532:", group, re.M), group
    assert "/bin/sh" not in passwd and "/bin/bash" not in passwd, passwd
    libs = sorted(p for p in files if re.search(r"\.so(\.\d+)*$", p))
    print("  %d files, %d shared libraries" % (len(files), len(libs)))


@contextlib.contextmanager
def working_container():
    """The archive loaded back as a buildah working container, mounted; removed after."""
    ctr = buildah("from", "--quiet", "oci-archive:" + ARCHIVE)
    try:
        yield buildah("mount", ctr)
    finally:
        buildah("umount", ctr, check=False)
        buildah("rm", ctr, check=False)


def beacon_pids(root):
    exe = os.path.join(root, "usr/bin/beacon")
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink("/proc/%s/exe" % pid) == exe:
                    pids.append(int(pid))
    return pids


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def resolve(path, files):
    """path with the image's symlinks followed (as the chrooted agent saw it)."""
    parts, done = [c for c in path.split("/") if c], ""
    for _ in range(40):
        if not parts:
            return done or "/"
        nxt = done + "/" + parts.pop(0)
        entry = files.get(nxt)
        if entry and entry[0] == "l":
            target = entry[4]
            base = "" if target.startswith("/") else done
            parts = [c for c in (base + "/" + target).split("/") if c] + parts
            done = ""
        else:
            done = os.path.normpath(nxt)
    raise AssertionError("symlink loop at %s" % path)


def agent_opens(trace):
    """(opened, missing): paths the agent (after its execve) opened, and failed to."""
    opened, missing, started = set(), set(), False
    for line in trace.splitlines():
        if not started:
            started = 'execve("/usr/bin/beacon"' in line and line.rstrip().endswith("= 0")
            continue
        m = re.search(r'open(?:at)?\((?:AT_FDCWD, )?"([^"]+)".*\) = (-?\d+)(?: (E[A-Z]+))?', line)
        if m:
            (opened if int(m.group(2)) >= 0 else missing).add((m.group(1), m.group(3)))
        m = re.search(r'execve\("([^"]+)"', line)
        if m:
            raise AssertionError("the agent executed %s" % m.group(1))
    assert started, "the trace has no execve of /usr/bin/beacon:\n" + trace[-2000:]
    return {p for p, _ in opened}, missing


def test_image_runs_as_65532_against_etcd_and_needs_nothing_from_the_host():
    for tool in ("strace", "setpriv", "unshare"):
        if not shutil.which(tool):
            skip("%s is not installed" % tool)
    if os.geteuid() != 0:
        skip("needs root (chroot, mount namespaces)")
    files = image_file_list()
    with Etcd() as etcd, working_container() as root, tempfile.TemporaryDirectory(prefix="beacon-img-") as tmp:
        # Missing-library check with the image's own loader, inside the root.
        _, out, _ = sh("/usr/sbin/chroot", root, "/usr/lib64/ld-linux-x86-64.so.2", "--list", "/usr/bin/beacon")
        assert "not found" not in out and "libcurl.so.4" in out, out

        # The image's default CMD config is valid as shipped (as its user).
        _, out, _ = sh("/usr/sbin/chroot", "--userspec=65532:65532", root, "/usr/bin/beacon", "agent",
                       "--config", "/etc/beacon/beacon.json", "--check-config")
        assert "valid" in out, out

        port = free_port()
        config = {
            "node": "img-node",
            "socket": {"path": "/run/beacon/beacon.sock", "mode": "0660"},
            "log": {"level": "info", "format": "text"},
            "registry": {"backend": "etcd", "endpoints": [etcd.url], "prefix": "/beacon/services",
                         "ttl": "10s"},
            "service": {"name": "web", "id": "web-img", "address": "127.0.0.1", "port": port},
        }
        # The test's config lives in the working container only (like a mounted ConfigMap).
        with open(os.path.join(root, "etc/beacon/test.json"), "w") as f:
            json.dump(config, f)
        for d in ("proc", "dev"):  # mount points a runtime creates
            os.makedirs(os.path.join(root, d), exist_ok=True)
        trace = os.path.join(tmp, "trace")
        log = open(os.path.join(tmp, "agent.log"), "w+")
        argv = ["strace", "-f", "-qq", "-o", trace, "-e", "trace=open,openat,execve",
                "unshare", "--mount", "--propagation", "private", "--mount-proc=" + os.path.join(root, "proc"),
                # The device nodes a runtime gives every container, on a tmpfs
                # that vanishes with this mount namespace.
                "sh", "-ec", 'mount -t tmpfs -o mode=0755,size=64k dev "$0/dev"; '
                'for d in null zero random urandom; do touch "$0/dev/$d"; mount --bind "/dev/$d" "$0/dev/$d"; done; '
                'exec "$@"', root,
                "setpriv", "--no-new-privs", "--bounding-set=-all,+sys_chroot,+setuid,+setgid",
                "/usr/sbin/chroot", "--userspec=65532:65532", "--groups=", root,
                "/usr/bin/beacon", "agent", "--config", "/etc/beacon/test.json"]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            # The mount path is too long for sun_path; connect through a short link.
            os.symlink(os.path.join(root, "run/beacon"), os.path.join(tmp, "run"))
            sock = os.path.join(tmp, "run/beacon.sock")

            def ready():
                conn = UnixHTTPConnection(sock, timeout=2)
                try:
                    return http_request(conn, "GET", "/ready")[0] == 200
                finally:
                    conn.close()
            wait_for(lambda: proc.poll() is not None or ready(), timeout=20, what="/ready on the image's socket")
            assert proc.poll() is None, "the agent exited:\n" + open(log.name).read()[-3000:]
            reg = wait_for(lambda: etcd.get_json("/beacon/services/web/web-img"), timeout=10,
                           what="the registration in etcd")
            assert reg["address"] == "127.0.0.1" and reg["port"] == port, reg

            pids = beacon_pids(root)
            assert len(pids) == 1, "expected one beacon process, found %r" % pids
            st = proc_status(pids[0])
            assert st["Uid"].split()[:2] == ["65532", "65532"], st["Uid"]
            assert st["Gid"].split()[:2] == ["65532", "65532"], st["Gid"]
            assert st["Groups"].strip() == "", st["Groups"]
            assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0, (st["CapEff"], st["CapPrm"])
            assert st["NoNewPrivs"].strip() == "1", st["NoNewPrivs"]
            sock_st = os.stat(sock)
            assert (sock_st.st_uid, sock_st.st_gid) == (65532, 65532), (sock_st.st_uid, sock_st.st_gid)

            lease = etcd.get("/beacon/services/web/web-img")["lease"]
            assert lease and lease in etcd.leases(), lease
            # The manifests' preStop hook, `beacon drain`, works in the image (no shell):
            # the instance leaves discovery while the agent keeps running.
            _, out, _ = sh("/usr/sbin/chroot", "--userspec=65532:65532", root, "/usr/bin/beacon", "drain")
            wait_for(lambda: etcd.get("/beacon/services/web/web-img") is None, timeout=10,
                     what="the key to go on `beacon drain`")
            assert proc.poll() is None, "the agent exited on drain"

            os.kill(pids[0], signal.SIGTERM)
            assert proc.wait(timeout=20) == 0, "exit status %r:\n%s" % (proc.returncode, open(log.name).read()[-3000:])
            assert lease not in etcd.leases(), "the lease was not revoked on SIGTERM"
        finally:
            if proc.poll() is None:
                for pid in beacon_pids(root):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                proc.kill()
                proc.wait(timeout=10)
            log.close()

        with open(trace) as f:
            opened, missing = agent_opens(f.read())
        allowed_extra = ("/proc/", "/run/beacon/", "/etc/beacon/test.json", "/dev/")
        outside = sorted(p for p in opened if resolve(p, files) not in files and not p.startswith(allowed_extra))
        assert not outside, "the agent opened files that are not in the image: %s" % outside
        is_lib = re.compile(r"^(lib|ld-).*\.so(\.|$)").match
        found_libs = {os.path.basename(p) for p in opened if is_lib(os.path.basename(p))}
        lost = sorted(p for p, _ in missing if is_lib(os.path.basename(p))
                      and os.path.basename(p) not in found_libs)
        assert not lost, "libraries looked for and not found: %s" % lost
        print("  opened in the image: %d files; looked for and absent (optional): %s" % (
            len(opened), ", ".join(sorted({p for p, _ in missing if not is_lib(os.path.basename(p))})) or "none"))


if __name__ == "__main__":
    shiplib.main(globals())
