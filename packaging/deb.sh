#!/bin/sh
# deb.sh BINARY VERSION OUT.deb - build beacon's Debian package with dpkg-deb.
#
# No debhelper and no debian/ source tree: the package is put together from
# what the repository already has (the binary `make` built, man/beacon.1,
# systemd/beacon.service) plus the control files in packaging/debian/, so
# `make deb` works on any Debian 12 with dpkg-dev. Depends: comes from
# dpkg-shlibdeps (the libraries the binary links, with the versions their
# symbols need). The unit is systemd/beacon.service with the binary's path
# changed from /usr/local/bin (make install) to /usr/bin; nothing else in it
# changes. Files are owned by root (--root-owner-group) and dated
# SOURCE_DATE_EPOCH (default: the last commit), so a rebuild is identical.
set -eu
bin=$(readlink -f "$1")
version=$2
out=$3
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
mkdir -p "$(dirname "$out")" && work=$(cd "$(dirname "$out")" && pwd)/deb
stage=$work/root
arch=$(dpkg --print-architecture)
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$top" log -1 --format=%ct 2>/dev/null || echo 0)}

rm -rf "$work"
mkdir -p "$stage/DEBIAN" "$stage/usr/share/doc/beacon" "$stage/usr/share/man/man1" \
	"$stage/lib/systemd/system" "$stage/etc/beacon"

install -D -m 0755 "$bin" "$stage/usr/bin/beacon"
# Debian ships stripped binaries (debug symbols belong in a -dbgsym package).
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/bin/beacon"
gzip -9n < "$top/man/beacon.1" > "$stage/usr/share/man/man1/beacon.1.gz"
# The unit's opening comment tells how to install it by hand; the package
# says what applies to it instead. The rest is the unit as in the repository.
{
	printf '%s\n' "# beacon.service - the beacon agent, from the beacon Debian package." \
		"# Installed disabled: edit /etc/beacon/beacon.json, then" \
		"#   systemctl enable --now beacon" \
		"# The package created user and group beacon. Secret files named in the" \
		"# config (*_file) must be readable by user beacon." ""
	sed -e '1,/^$/d' -e 's|/usr/local/bin/beacon|/usr/bin/beacon|g' "$top/systemd/beacon.service"
} > "$stage/lib/systemd/system/beacon.service"
install -m 0644 "$here/beacon.json" "$stage/etc/beacon/beacon.json"
install -m 0644 "$here/copyright" "$stage/usr/share/doc/beacon/copyright"
install -m 0644 "$here/debian/README.Debian" "$stage/usr/share/doc/beacon/README.Debian"
sed "s/@VERSION@/$version/" "$here/debian/changelog" | gzip -9n > "$stage/usr/share/doc/beacon/changelog.gz"
chmod 0644 "$stage/usr/share/man/man1/beacon.1.gz" "$stage/lib/systemd/system/beacon.service" \
	"$stage/usr/share/doc/beacon/changelog.gz"

# dpkg-shlibdeps wants a debian/control to read; a two-stanza stub is enough.
mkdir -p "$work/src/debian"
printf 'Source: beacon\n\nPackage: beacon\nArchitecture: any\n' > "$work/src/debian/control"
depends=$(cd "$work/src" && dpkg-shlibdeps -O --warnings=0 -e"$stage/usr/bin/beacon" \
	| sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "deb.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)

sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
	-e "s/@DEPENDS@/$depends/" "$here/debian/control.in" > "$stage/DEBIAN/control"
install -m 0644 "$here/debian/conffiles" "$stage/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "$here/debian/$s" "$stage/DEBIAN/$s"; done
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
	| xargs -0 md5sum > DEBIAN/md5sums)
chmod 0644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/control"
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -exec touch -h -d "@$epoch" {} +
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out.tmp" >/dev/null
mv "$out.tmp" "$out"
