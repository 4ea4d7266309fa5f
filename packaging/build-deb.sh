#!/bin/bash
# Builds the Debian package from this source tree as a packager would:
# a clean copy of the tree (the files git knows, with their changes in the
# work tree), packaging/debian as its debian/, `dpkg-buildpackage -us -uc -b`.
#
# Usage: packaging/build-deb.sh OUT_DIR [COPY]
# Leaves in OUT_DIR: unlinkd_<version>_amd64.deb, the .changes and
# .buildinfo, build.log, and lintian.log (lintian's verdict). The exit
# status is non-zero when the build fails or lintian reports an error.
# COPY: also copy the .deb there.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
WORK=$(mktemp -d /var/tmp/unlinkd-deb.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# Built again only when a file of the tree changed since the last build
# into OUT_DIR: the tests that install the package (tests/systemd,
# tests/vm) call this each time.
# Documentation and the test scripts do not go into the package.
tree_hash=$(cd "$SRC" && git ls-files -z --cached --others --exclude-standard -- . ':!*.md' ':!tests/*.sh' |
  xargs -0 sha1sum 2>/dev/null | sha1sum | cut -d' ' -f1)
if [ -f "$OUT/tree.sha1" ] && [ "$(cat "$OUT/tree.sha1")" = "$tree_hash" ] && ls "$OUT"/unlinkd_*.deb >/dev/null 2>&1; then
  echo "build-deb: the tree is unchanged since $(ls "$OUT"/unlinkd_*.deb) was built"
  [ -z "${2:-}" ] || cp "$OUT"/unlinkd_*.deb "$2"
  exit 0
fi

version=$(dpkg-parsechangelog -l "$SRC/packaging/debian/changelog" -S Version)
tree=$WORK/unlinkd-$version
mkdir -p "$tree"
# tracked files and new ones not ignored, as they are now in the work tree
(cd "$SRC" && git ls-files -z --cached --others --exclude-standard) |
  (cd "$SRC" && xargs -0 cp --parents -a -t "$tree" 2>/dev/null || true)
[ -f "$tree/meson.build" ] || { echo "build-deb: could not copy the source tree" >&2; exit 1; }
rm -rf "$tree/debian"
cp -a "$SRC/packaging/debian" "$tree/debian"

rm -f "$OUT"/unlinkd_* "$OUT"/unlinkd-dbgsym_* "$OUT"/unlinkd-monitor_* "$OUT"/unlinkd-monitor-dbgsym_* "$OUT/tree.sha1"
jobs=$(nproc)
echo "build-deb: dpkg-buildpackage in $tree (log: $OUT/build.log)"
if ! (cd "$tree" && DEB_BUILD_OPTIONS="parallel=$jobs ${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -us -uc -b) > "$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log" >&2
  echo "build-deb: dpkg-buildpackage failed" >&2
  exit 1
fi
# The .changes names both packages (unlinkd, unlinkd-monitor): lintian
# finds the .debs beside it.
mv "$WORK"/unlinkd_* "$WORK"/unlinkd-monitor_* "$OUT/"
mv "$WORK"/unlinkd-dbgsym_* "$WORK"/unlinkd-monitor-dbgsym_* "$OUT/" 2>/dev/null || true
ls "$OUT"/unlinkd_*.deb
# lintian: errors fail the build; warnings are listed (justified in
# packaging/debian/README.lintian or fixed)
rc=0
lintian --fail-on error "$OUT"/unlinkd_*.changes > "$OUT/lintian.log" 2>&1 || rc=$?
echo "build-deb: lintian:"
sed 's/^/    /' "$OUT/lintian.log"
[ $rc = 0 ] || { echo "build-deb: lintian reports errors" >&2; exit $rc; }
echo "$tree_hash" > "$OUT/tree.sha1"
[ -z "${2:-}" ] || cp "$OUT"/unlinkd_*.deb "$2"

