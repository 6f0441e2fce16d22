#!/usr/bin/env python3
"""The Containerfile must give the same image as `make image`.

    python3 tests/ship/test_containerfile.py      (after `make image`)

CI cannot build the Containerfile (no registry to pull debian:12 from), so
this checks what can be checked here, and says so:
- the runtime stage is FROM scratch and copies only the builder's /rootfs;
  ENTRYPOINT, CMD, USER, ENV and the label keys equal the config of
  `make image`'s archive;
- the builder stage is Debian 12 (this machine's release), installs the
  build dependencies .ci/deps names, and lays out /rootfs with the same
  script and arguments as packaging/image.sh (packaging/rootfs.sh, epoch 0);
- that script, run here exactly as the builder runs it, then put through the
  runtime stage's COPY lines (owners as --chown sets them), gives the same
  file list as the image's layer: paths, types, modes, owners, link targets.
"""

import json
import os
import re
import shlex
import tempfile

import shiplib
from shiplib import sh

import test_image

CONTAINERFILE = os.path.join(shiplib.TOP, "Containerfile")


def instructions():
    """[(stage index, INSTRUCTION, argument text)] with continuations joined."""
    out, stage, buf = [], -1, ""
    with open(CONTAINERFILE) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not buf and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            line, buf = buf + line, ""
            word, _, rest = line.strip().partition(" ")
            if word.upper() == "FROM":
                stage += 1
            out.append((stage, word.upper(), rest.strip()))
    return out


def stage(n):
    return [(w, a) for s, w, a in instructions() if s == n]


def test_runtime_stage_matches_make_image_config():
    stages = {s for s, _, _ in instructions()}
    assert stages == {0, 1}, "two stages expected, got %d" % len(stages)
    final = stage(1)
    assert final[0] == ("FROM", "scratch"), final[0]
    with test_image.archive() as tf:
        _, _, config = test_image.manifest_and_config(tf)
    c = config["config"]
    got = {w: a for w, a in final}
    assert json.loads(got["ENTRYPOINT"]) == c["Entrypoint"], (got["ENTRYPOINT"], c["Entrypoint"])
    assert json.loads(got["CMD"]) == c["Cmd"], (got["CMD"], c["Cmd"])
    assert got["USER"] == c["User"], (got["USER"], c["User"])
    assert got.get("STOPSIGNAL") == c.get("StopSignal"), (got.get("STOPSIGNAL"), c.get("StopSignal"))
    env = [e for e in c.get("Env", []) if not e.startswith("PATH=")]
    assert [got["ENV"]] == env, (got["ENV"], env)
    labels = dict(re.findall(r'(\S+?)="([^"]*)"', got["LABEL"]))
    # io.buildah.version: buildah's own stamp (podman build adds it too).
    image_labels = {k for k in c["Labels"] if k != "io.buildah.version"}
    assert set(labels) == image_labels, (sorted(labels), sorted(image_labels))
    for key in ("title", "description", "licenses"):
        k = "org.opencontainers.image." + key
        assert labels[k] == c["Labels"][k], (k, labels[k], c["Labels"][k])
    args = dict(a.split("=", 1) for w, a in final if w == "ARG" and "=" in a)
    assert args.get("VERSION") == shiplib.version(), "ARG VERSION=%s, the Makefile says %s" % (
        args.get("VERSION"), shiplib.version())
    assert labels["org.opencontainers.image.version"] == "$VERSION", labels
    for w, a in final:
        assert w not in ("RUN", "ADD"), "the runtime stage runs or adds something: %s %s" % (w, a)
        if w == "COPY":
            assert a.startswith("--from=builder ") or a.startswith("--from=builder --chown="), a
            assert shlex.split(a)[-2].startswith("/rootfs/"), a


def test_builder_stage_is_debian12_and_uses_rootfs_sh():
    builder = stage(0)
    assert re.match(r"^(docker\.io/library/)?debian:12(\.\d+)?(-slim)? AS builder$", builder[0][1]), builder[0]
    with open("/etc/debian_version") as f:
        assert f.read().startswith("12."), "this machine is not Debian 12: the comparison would not hold"
    run = " ".join(a for w, a in builder if w == "RUN")
    with open(os.path.join(shiplib.TOP, ".ci", "deps")) as f:
        deps = f.read()
    for pkg in re.findall(r"\b(lib[a-z0-9.-]+-dev)\b", deps):
        if pkg not in ("libclang-rt-14-dev",):  # sanitizer runtimes: tests only
            assert pkg in run, "the builder does not install %s" % pkg
    assert "ca-certificates" in run
    m = re.search(r"SOURCE_DATE_EPOCH=0 sh packaging/rootfs\.sh (\S+) /rootfs", run)
    assert m, "the builder does not run packaging/rootfs.sh into /rootfs: " + run
    assert re.search(r"make .*BUILD=/build %s" % re.escape(m.group(1)), run), run
    with open(os.path.join(shiplib.TOP, "packaging", "image.sh")) as f:
        assert 'SOURCE_DATE_EPOCH=0 sh "$here/rootfs.sh"' in f.read(), "image.sh no longer uses rootfs.sh"


def test_rootfs_sh_as_the_builder_runs_it_equals_the_image_layer():
    final = stage(1)
    with tempfile.TemporaryDirectory(prefix="beacon-cf-") as d:
        root = os.path.join(d, "rootfs")
        sh("sh", os.path.join(shiplib.TOP, "packaging", "rootfs.sh"),
           os.path.join(shiplib.build_dir(), "beacon"), root, env=dict(os.environ, SOURCE_DATE_EPOCH="0"))
        files = {}
        for top, dirs, names in os.walk(root):
            for n in dirs + names:
                p = os.path.join(top, n)
                st = os.lstat(p)
                kind = "l" if os.path.islink(p) else "d" if os.path.isdir(p) else "f"
                files["/" + os.path.relpath(p, root)] = [kind, st.st_mode & 0o7777, st.st_uid, st.st_gid,
                                                        os.readlink(p) if kind == "l" else ""]
    # The runtime stage's COPY lines: each --chown applies to what it copies.
    for w, a in final:
        if w != "COPY":
            continue
        args = shlex.split(a)
        chown = [x.split("=", 1)[1] for x in args if x.startswith("--chown=")]
        src, dst = args[-2], args[-1]
        if chown:
            uid, gid = (int(x) for x in chown[0].split(":"))
            prefix = "/" + src[len("/rootfs/"):].rstrip("/")
            for p, entry in files.items():
                if p.startswith(prefix + "/"):
                    entry[2], entry[3] = uid, gid
    image = test_image.image_file_list()
    files = {p: tuple(e) for p, e in files.items()}
    only_cf = sorted(set(files) - set(image))
    only_img = sorted(set(image) - set(files))
    assert not only_cf and not only_img, "only from the Containerfile: %s; only in make image: %s" % (
        only_cf, only_img)
    differ = sorted((p, files[p], image[p]) for p in files if files[p] != image[p])
    assert not differ, "entries differ (Containerfile, make image): %s" % differ[:10]
    print("  %d entries, identical" % len(files))


if __name__ == "__main__":
    shiplib.main(globals())
