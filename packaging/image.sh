#!/bin/sh
# image.sh BINARY VERSION OUT.tar - build beacon's OCI image from scratch with
# buildah, no daemon and no base image, and write it as an OCI archive.
#
# The root filesystem comes from rootfs.sh (shared with the Containerfile).
# buildah runs with vfs storage kept under build/image/ (STORAGE), so nothing
# is written to the machine's own container storage and no overlay mounts or
# fuse are needed; `make clean` removes it. The archive is an OCI layout
# (podman load, skopeo) that also carries docker's manifest.json (docker
# load), tagged beacon:VERSION. Labels follow the OCI annotation keys; the revision is the
# git commit (with "-dirty" when the tree has changes), the source the
# origin remote when there is one. --timestamp makes the layer and config
# dates fixed, so only real changes change the digest.
set -eu
bin=$1
version=$2
out=$3
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
storage=${STORAGE:-$(dirname "$out")/image}
rootfs=$storage/rootfs
revision=$(git -C "$top" rev-parse HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$top" status --porcelain -- agent plugins packaging Makefile 2>/dev/null)" ] || revision="$revision-dirty"
source=$(git -C "$top" remote get-url origin 2>/dev/null || true)
[ -n "$source" ] || source="unknown (no git remote named origin)"
b="buildah --storage-driver vfs --root $storage/storage --runroot $storage/run"

mkdir -p "$storage"
# The storage is this script's alone: drop what earlier builds and test runs
# left (working containers, images), so build/image/ does not grow per build.
$b rm --all >/dev/null 2>&1 || true
$b rmi --all --force >/dev/null 2>&1 || true
SOURCE_DATE_EPOCH=0 sh "$here/rootfs.sh" "$bin" "$rootfs"

ctr=$($b from --name "beacon-build-$$" scratch)
trap '$b rm "$ctr" >/dev/null 2>&1 || true' EXIT
mnt=$($b mount "$ctr")
# tar keeps owners, modes, links and mtimes exactly as rootfs.sh set them.
tar -C "$rootfs" -cf - . | tar -C "$mnt" -xpf - --numeric-owner
$b umount "$ctr" >/dev/null
$b config \
	--entrypoint '["/usr/bin/beacon"]' \
	--cmd '["agent", "--config", "/etc/beacon/beacon.json"]' \
	--user 65532 \
	--workingdir / \
	--env BEACON_SOCKET=/run/beacon/beacon.sock \
	--stop-signal SIGTERM \
	--label "org.opencontainers.image.title=beacon" \
	--label "org.opencontainers.image.description=beacon sidecar agent: service discovery and secrets over a Unix socket" \
	--label "org.opencontainers.image.version=$version" \
	--label "org.opencontainers.image.revision=$revision" \
	--label "org.opencontainers.image.source=$source" \
	--label "org.opencontainers.image.licenses=NOASSERTION" \
	"$ctr"
rm -f "$out.tmp"
$b commit --quiet --format oci --disable-compression=false --timestamp 0 --rm "$ctr" "oci-archive:$out.tmp:beacon:$version" >/dev/null
trap - EXIT
# An OCI archive alone loads only into Docker with the containerd image store;
# the manifest.json that `docker save` writes next to the OCI layout (same
# blobs, paths into blobs/sha256/) makes every Docker's `docker load` take it.
# podman and skopeo read the OCI layout and ignore the extra file.
python3 - "$out.tmp" "beacon:$version" <<'PY'
import io, json, sys, tarfile
path, tag = sys.argv[1], sys.argv[2]
with tarfile.open(path) as tf:
    blob = lambda d: json.loads(tf.extractfile("blobs/" + d.replace(":", "/")).read())
    desc = json.loads(tf.extractfile("index.json").read())["manifests"][0]
    manifest = blob(desc["digest"])
entry = [{"Config": "blobs/" + manifest["config"]["digest"].replace(":", "/"),
          "RepoTags": [tag],
          "Layers": ["blobs/" + l["digest"].replace(":", "/") for l in manifest["layers"]]}]
data = json.dumps(entry).encode()
info = tarfile.TarInfo("manifest.json")
info.size, info.mode, info.mtime = len(data), 0o644, 0
with tarfile.open(path, "a") as tf:
    tf.addfile(info, io.BytesIO(data))
PY
mv "$out.tmp" "$out"
