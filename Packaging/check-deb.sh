#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make check-deb: see Packaging/check_deb.py (boots Debian 12 and 13 with systemd as PID 1 in
# systemd-nspawn, installs the .deb there and proves it works under the service manager, removes and
# purges it; the host's /etc, package database and cgroups are never touched).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 Packaging/check_deb.py "$@"
