#!/usr/bin/env bash
# Installs the Debian packages that building, testing and the demo need. Run as root.
set -euo pipefail
PKGS=(libpam0g-dev libssl-dev libsystemd-dev libqrencode-dev libpq-dev postgresql pamtester libpam-wrapper oathtool
      libpam-google-authenticator libpam-oath valgrind zbar-tools
      openssh-server openssh-client binutils util-linux passwd python3 python3-pexpect python3-pytest
      systemd debhelper lintian debootstrap)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The Python that runs the tests may not be Debian's (e.g. pyenv): make sure it has pytest and pexpect.
if ! python3 -c 'import pytest, pexpect' 2>/dev/null; then
  python3 -m pip install -q pytest pexpect
fi
