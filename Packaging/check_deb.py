#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""make check-deb: installs build/mfagate_<version>_amd64.deb into clean Debian 12 (bookworm) and 13
(trixie) roots booted with a real systemd as PID 1 (Packaging/nspawn.py), and proves there, under the
service manager and as an admin meets the package, that it works; then removes and purges it.

First, on the .deb: Depends are all pre-installed in the roots, and each debhelper block of the
maintainer scripts appears once. Per release: apt install -> files, modes, user, disabled profile, units verified -> reboot: the socket
is listening at boot -> activation as _mfagate; the sandbox of the running daemon (read-only /run,
NoNewPrivs, no capabilities, seccomp filter in kill mode for the whole run, exposure 0.4) -> SSH (the
container's sshd), su and sudo ask for the password and an oathtool code -> codes by email through
mfagate-mail.socket and Debian's exim4, delivered to a Maildir under /home and read from there; the
relay runs without NoNewPrivs; postfix's setgid postdrop through the same relay unit -> journal
entries carry one CODE_FILE and no build path -> `systemctl reload` with a broken config fails and
says why, the daemon keeps serving -> no unit failed, no restart -> apt remove leaves no mfagate unit
active or enabled -> apt purge leaves nothing. A failed check prints the container's journal.

MFAGATE_CHECK_DEB_SUITES="bookworm trixie" (default) picks the releases; MFAGATE_DEB=path another .deb.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nspawn  # noqa: E402
from nspawn import log  # noqa: E402
import deb_checks  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_depends(deb: Path) -> None:
    depends = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True, check=True).stdout
    # DT_RELR (Makefile) needs glibc 2.36, which dpkg-shlibdeps does not derive (debian/control).
    assert "libc6 (>= 2.36)" in depends, f"Depends lacks libc6 (>= 2.36): {depends}"
    wanted = {alt.split("(")[0].strip() for dep in depends.split(",") for alt in dep.split("|")[:1]}
    included = set(nspawn.SUITES["bookworm"].split(","))
    missing = sorted(p for p in wanted if p not in included)
    assert not missing, f"the package depends on {missing}, which nspawn.COMMON does not pre-install: add them"


def check_maintainer_scripts(deb: Path) -> None:
    """Each debhelper snippet once (several dh_installsystemd calls had repeated enable/purge blocks)."""
    for script in ("postinst", "prerm", "postrm"):
        text = subprocess.run(["dpkg-deb", "-I", str(deb), script], capture_output=True, text=True, check=True).stdout
        blocks = [b.split("# End automatically added section")[0] for b in text.split("# Automatically added by ")[1:]]
        repeated = {b.splitlines()[0] for b in blocks if blocks.count(b) > 1}
        assert not repeated, f"{script} carries the same debhelper block more than once: {sorted(repeated)}"


def run_suite(suite: str, deb: Path) -> bool:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f"mfagate-check-deb-{suite}-"))
    box = None
    try:
        box = nspawn.Container(suite, work, free_port())
        deb_checks.Checks(box, deb).run()
        log(f"{suite}: all checks passed in {time.monotonic() - started:.0f}s")
        return True
    except Exception:
        traceback.print_exc()
        if box is not None:
            journal = box.journal()
            print(f"check-deb: {suite}: FAILED; the container's journal follows\n{journal}", flush=True)
            if box.init_pid == 0 or box.nspawn is None or box.nspawn.poll() is not None:
                print(f"check-deb: {suite}: console\n{box.console_text()}", flush=True)
        return False
    finally:
        if box is not None:
            box.poweroff()
            box.remove()
        else:
            subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)


def main() -> int:
    if os.geteuid() != 0:
        print("check-deb: run as root (it uses debootstrap and systemd-nspawn)", file=sys.stderr)
        return 1
    for tool in ("systemd-nspawn", "debootstrap", "nsenter", "oathtool", "ssh"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            print(f"check-deb: {tool} is missing (bash scripts/install-deps.sh)", file=sys.stderr)
            return 1
    debs = sorted((ROOT / "build").glob("mfagate_*_amd64.deb"))
    deb = Path(os.environ["MFAGATE_DEB"]) if os.environ.get("MFAGATE_DEB") else debs[-1] if debs else None
    assert deb and deb.is_file(), "no build/mfagate_*_amd64.deb: run make deb"
    check_depends(deb)
    check_maintainer_scripts(deb)
    suites = os.environ.get("MFAGATE_CHECK_DEB_SUITES", "bookworm trixie").split()
    unknown = [s for s in suites if s not in nspawn.SUITES]
    assert not unknown, f"unknown releases {unknown}; known: {sorted(nspawn.SUITES)}"
    started = time.monotonic()
    nspawn.debootstrap(suites)
    results = {suite: run_suite(suite, deb) for suite in suites}
    summary = ", ".join(f"{s} {'passed' if ok else 'FAILED'}" for s, ok in results.items())
    log(f"{summary} ({time.monotonic() - started:.0f}s in all)")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
