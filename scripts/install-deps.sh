#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages that building, testing and the demo need. Run as root.
set -euo pipefail
PKGS=(libpam0g-dev libssl-dev nettle-dev libsystemd-dev libqrencode-dev libpq-dev postgresql pamtester libpam-wrapper oathtool
      libpam-google-authenticator libpam-oath valgrind zbar-tools
      openssh-server openssh-client binutils util-linux passwd python3 python3-pexpect python3-pytest
      openssl python3-cryptography
      systemd debhelper lintian debootstrap systemd-container)
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
# make check-deb boots Debian in systemd-nspawn (systemd-container, installed above without its
# recommended libnss-mymachines, which would add "mymachines" to the host's /etc/nsswitch.conf).
if grep -q mymachines /etc/nsswitch.conf 2>/dev/null; then
  echo "install-deps: /etc/nsswitch.conf names mymachines (libnss-mymachines is installed); make check-deb" \
       "needs no such change: apt-get purge libnss-mymachines restores the file" >&2
fi
# A real MTA for the email tests (Tests/integration/mta.py): Debian's exim4, used only through its
# sendmail binary with a test configuration in a private mount namespace. It replaces no other MTA
# (postfix etc. stay; the email tests then skip) and is never started: the tests need no exim
# daemon, and a policy-rc.d (if none is there) stops the package from starting one. Debian's
# default exim4 configuration is local delivery only, listening on loopback.
if ! dpkg -s exim4-daemon-light >/dev/null 2>&1 && ! dpkg -s exim4-daemon-heavy >/dev/null 2>&1 \
   && [ ! -e /usr/sbin/sendmail ] && [ "$(id -u)" -eq 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  made_policy=no
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=yes
  fi
  [ "$made_policy" = yes ] && trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get install -y -qq --no-install-recommends exim4-daemon-light \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends exim4-daemon-light; }
fi
# The Python that runs the tests may not be Debian's (e.g. pyenv): make sure it has pytest, pexpect and
# cryptography (test_fleet_attacks.py seals old-format rows with it, independently of our code).
if ! python3 -c 'import pytest, pexpect, cryptography' 2>/dev/null; then
  python3 -m pip install -q pytest pexpect cryptography
fi
