#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make deb: builds build/mfagate_<version>_amd64.deb with dpkg-buildpackage + debhelper in a temporary
# copy of the tracked source tree (the package's debian/ lives in Packaging/debian), then runs lintian
# on the .deb and the .changes and fails on any error or warning.
# `-d` skips the build-dependency check: the Swift toolchain (/opt/swift) is not a Debian package.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH=/opt/swift/usr/bin:$PATH
fi
for tool in dpkg-buildpackage dh lintian; do
  command -v "$tool" >/dev/null || { echo "make deb: $tool is missing (bash scripts/install-deps.sh)" >&2; exit 1; }
done
version=$(dpkg-parsechangelog -l Packaging/debian/changelog -S Version)
work=$(mktemp -d /tmp/mfagate-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
src="$work/mfagate-$version"
mkdir -p "$src"
# Tracked and new (not ignored) files only: no .build/, build/ or other local state.
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$src"
cp -r Packaging/debian "$src/debian"
cp systemd/mfagate.sysusers "$src/debian/mfagate.sysusers"
cp systemd/mfagate.tmpfiles "$src/debian/mfagate.tmpfiles"
(cd "$src" && dpkg-buildpackage -us -uc -b -d)
mkdir -p build
rm -f build/mfagate_*.deb build/mfagate-dbgsym_*.deb build/mfagate_*.changes build/mfagate_*.buildinfo
cp "$work"/mfagate_"$version"_amd64.deb "$work"/mfagate_"$version"_amd64.changes \
   "$work"/mfagate_"$version"_amd64.buildinfo build/
cp "$work"/mfagate-dbgsym_"$version"_amd64.*deb build/ 2>/dev/null || true
echo "make deb: lintian"
lintian --fail-on error,warning \
  "build/mfagate_${version}_amd64.changes"
echo "make deb: built build/mfagate_${version}_amd64.deb"
