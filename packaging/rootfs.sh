#!/bin/sh
# rootfs.sh BINARY DEST - lay out beacon's minimal container root filesystem.
#
# One script for both ways the image is built (`make image` on the host and the
# Containerfile's builder stage), so the two cannot drift apart: the test in
# tests/ship/ compares their file lists. What goes in, distroless-style:
#   - the binary at /usr/bin/beacon;
#   - exactly the shared libraries it loads, found by asking the dynamic loader
#     (ld.so --list, the same resolution the kernel-started binary gets), each
#     copied as one regular file under its soname, plus the loader itself at
#     the path the binary's PT_INTERP names;
#   - the Debian copyright file of every package a library came from (the image
#     redistributes those libraries);
#   - the CA bundle libcurl reads for https backends (Debian's path, which is
#     libcurl's compiled-in default);
#   - /etc/passwd, /etc/group, /etc/nsswitch.conf with uid/gid 65532 "nonroot"
#     (distroless's numbers), /etc/beacon/beacon.json (a static-services example
#     that runs as is), /run/beacon (the socket's folder, owned by 65532) and /tmp;
#   - nothing else: no shell, no package manager, no ld.so.cache (the loader
#     then searches its built-in multiarch folders, where the libraries are).
# Everything is owned by root except /run/beacon; mtimes are set to
# SOURCE_DATE_EPOCH (default 0) so two runs give the same tree.
set -eu
bin=$(readlink -f "$1")
mkdir -p "$2" && dest=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
epoch=${SOURCE_DATE_EPOCH:-0}
multiarch=$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH)

rm -rf "$dest"
mkdir -p "$dest"
cd "$dest"
mkdir -p usr/bin etc/ssl/certs etc/beacon run/beacon tmp "usr/lib/$multiarch" usr/share/doc/beacon

install -m 0755 "$bin" usr/bin/beacon
interp=$(readelf -l "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
[ -n "$interp" ] || { echo "rootfs.sh: $bin has no program interpreter (static build?)" >&2; exit 1; }

# The loader's own answer: "libfoo.so.1 => /lib/x86_64-linux-gnu/libfoo.so.1 (0x...)".
libs=$("$interp" --list "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
if "$interp" --list "$bin" | grep -q 'not found'; then
	echo "rootfs.sh: a library of $bin is missing on this machine" >&2; exit 1
fi
reals=""
for lib in $libs "$interp"; do
	real=$(readlink -f "$lib")
	# Merged /usr, as Debian 12: /lib and /lib64 are links into /usr, so the
	# loader's PT_INTERP path and the loader's built-in search folders
	# (/lib/<multiarch>, /usr/lib/<multiarch>) all resolve inside the image.
	if [ "$lib" = "$interp" ]; then target="./usr$interp"; else target="./usr/lib/$multiarch/$(basename "$lib")"; fi
	mkdir -p "$(dirname "$target")"
	install -m 0644 "$real" "$target"
	reals="$reals $real $(echo "$real" | sed 's|^/usr/lib|/lib|')"
done
# The packages the libraries came from (dpkg knows each file by its merged-/usr
# or its /lib name, so both are asked; one dpkg call, unknown names ignored).
pkgs=$(dpkg -S $reals 2>/dev/null | sed 's/:.*//' | tr ', ' '\n\n' | sed '/^$/d' | sort -u)
chmod 0755 "./usr$interp"
ln -s usr/lib lib
[ -d usr/lib64 ] && ln -s usr/lib64 lib64

for p in $(printf '%s\n' $pkgs libc6 ca-certificates | sort -u); do
	src=/usr/share/doc/$p/copyright
	if [ -f "$src" ]; then mkdir -p "usr/share/doc/$p"; install -m 0644 "$src" "usr/share/doc/$p/copyright"; fi
done
install -m 0644 "$here/copyright" usr/share/doc/beacon/copyright

install -m 0644 /etc/ssl/certs/ca-certificates.crt etc/ssl/certs/ca-certificates.crt
cat > etc/passwd <<'PW'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PW
cat > etc/group <<'GR'
root:x:0:
nogroup:x:65534:
nonroot:x:65532:
GR
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > etc/nsswitch.conf
install -m 0644 "$here/beacon.json" etc/beacon/beacon.json
chmod 0644 etc/passwd etc/group etc/nsswitch.conf
chmod 1777 tmp
find . -type d -exec chmod 0755 {} + 2>/dev/null || true
chmod 1777 tmp
chown -R 0:0 .
chown 65532:65532 run/beacon
find . -exec touch -h -d "@$epoch" {} +
