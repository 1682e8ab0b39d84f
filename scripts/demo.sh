#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make demo: installs what is missing (as root), builds, then runs scripts/demo.py.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "make demo needs root: it starts sshd in a private mount namespace (unshare -m) and runs" >&2
  echo "the daemon as the user nobody. Nothing outside a temp dir is changed." >&2
  exit 1
fi
bash scripts/install-deps.sh
make -s build
# The daemon knows only accounts NSS knows: the demo user is added in a private mount namespace
# (temp copies of /etc/passwd, /etc/group, /etc/shadow bind-mounted; the host's files untouched).
exec python3 Tests/integration/with_test_accounts.py python3 scripts/demo.py
