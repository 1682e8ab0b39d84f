#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make check-repro: builds the package twice (make deb) and checks the two .debs are byte-identical;
# if not, says which members and files differ (diffoscope, if installed, shows how). Today the two
# Swift binaries differ (README, "Installing the Debian package"): it exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d /tmp/mfagate-repro.XXXXXX)
trap 'rm -rf "$out"' EXIT
for n in 1 2; do
  make --no-print-directory deb >"$out/build$n.log" 2>&1 || { tail -n 30 "$out/build$n.log"; exit 1; }
  mkdir -p "$out/$n" && cp build/mfagate_*_amd64.deb build/mfagate-dbgsym_*_amd64.deb "$out/$n/"
done
status=0
for deb in "$out"/1/*.deb; do
  name=$(basename "$deb")
  if cmp -s "$deb" "$out/2/$name"; then
    echo "check-repro: $name: identical ($(sha256sum <"$deb" | cut -c1-16))"
    continue
  fi
  status=1
  echo "check-repro: $name differs"
  for n in 1 2; do mkdir -p "$out/x$n" && dpkg-deb -R "$out/$n/$name" "$out/x$n/$name"; done
  diff -rq "$out/x1/$name" "$out/x2/$name" || true
  if command -v diffoscope >/dev/null; then diffoscope --text - "$deb" "$out/2/$name" | head -n 80 || true; fi
done
exit $status
