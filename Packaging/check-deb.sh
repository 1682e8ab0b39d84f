#!/usr/bin/env bash
# make check-deb: see Packaging/check_deb.py (installs the .deb into a clean Debian 12 root, proves it
# works, removes and purges it; the host's /etc and package database are never touched).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 Packaging/check_deb.py "$@"
