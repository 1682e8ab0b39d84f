#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Runs a command (the integration tests: `make integration`) where the suite's test accounts exist.

mfagated refuses a name NSS does not know (issue 14), so the names the tests log in and enroll
(alice, bob, tok, u0 ... u199, ...) must be real accounts. They are added without touching the
host's files: the command runs in a private mount namespace (`unshare -m --propagation private`)
in which /etc/passwd, /etc/group and /etc/shadow are bind-mounted copies of the host's with the
test accounts appended (uids from 40000 up, no password, no shell, no home). The copies live in a
temp dir removed afterwards; the mounts vanish with the namespace.

    python3 Tests/integration/with_test_accounts.py python3 -m pytest -q Tests/integration

Inside, MFAGATE_TEST_ACCOUNTS=1 is set; started there again, the command runs as it is. Not root
(unshare needs it): the command runs as it is, and the tests that need the accounts say so.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIRST_UID = 40000

# Every name the integration tests use as an account (grep the tests for pam(, enroll(, --user).
# Names SshdSandbox creates itself (mfauser, newuser, plainuser, make demo's mfademo) are here too: the daemon, outside
# the sandbox, must know them; the sandbox then gives the same account a home and a password.
NAMED = ["alice", "bob", "carol", "dave", "erin", "frank", "mallory", "tok", "victim",
         "mfauser", "newuser", "plainuser", "u", "mfademo"]
# Families of generated names, up to the largest count a test uses at stress scale.
FAMILIES = ([f"u{i}" for i in range(200)] + [f"alice{i}" for i in range(8)] + [f"other{i}" for i in range(16)]
            + [f"gc{i}" for i in range(8)] + [f"bg{i}" for i in range(6)] + [f"ff{i}" for i in range(4)]
            + [f"k{r}u{i}" for r in range(12) for i in range(6)]
            + [f"crash{i}" for i in range(1100)] + [f"ghost{i}" for i in range(1100)])
ACCOUNTS = NAMED + FAMILIES


def _names_and_ids(text: str) -> tuple[set[str], set[int]]:
    names, ids = set(), set()
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 3:
            names.add(parts[0])
            if parts[2].isdigit():
                ids.add(int(parts[2]))
    return names, ids


def write_copies(workdir: Path) -> dict[str, Path]:
    """Copies of the host's passwd, group and shadow with the test accounts added; {etc path: copy}."""
    texts = {p: Path(p).read_text() for p in ("/etc/passwd", "/etc/group", "/etc/shadow")}
    names, uids = _names_and_ids(texts["/etc/passwd"])
    gnames, gids = _names_and_ids(texts["/etc/group"])
    day = int(time.time() // 86400)
    added = {"/etc/passwd": [], "/etc/group": [], "/etc/shadow": []}
    uid = FIRST_UID
    for name in ACCOUNTS:
        if name in names or name in gnames:
            continue                                   # the host has it already: the host's account is used
        while uid in uids or uid in gids:
            uid += 1
        added["/etc/passwd"].append(f"{name}:x:{uid}:{uid}:mfagate test account:/nonexistent:/usr/sbin/nologin\n")
        added["/etc/group"].append(f"{name}:x:{uid}:\n")
        added["/etc/shadow"].append(f"{name}:!:{day}:0:99999:7:::\n")
        uid += 1
    copies = {}
    for path, text in texts.items():
        copy = workdir / Path(path).name
        copy.write_text(text + ("" if not text or text.endswith("\n") else "\n") + "".join(added[path]))
        st = os.stat(path)
        os.chown(copy, st.st_uid, st.st_gid)
        os.chmod(copy, st.st_mode & 0o7777)
        copies[path] = copy
    return copies


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    if os.environ.get("MFAGATE_TEST_ACCOUNTS") == "1" or os.geteuid() != 0:
        os.execvp(argv[0], argv)
    workdir = Path(tempfile.mkdtemp(prefix="mfagate-accounts-"))
    os.chmod(workdir, 0o755)
    try:
        copies = write_copies(workdir)
        binds = " && ".join(f'mount -n --bind "${i + 1}" {etc}' for i, etc in enumerate(copies))
        script = f"{binds} && shift {len(copies)} && exec \"$@\""
        env = dict(os.environ, MFAGATE_TEST_ACCOUNTS="1", LIBMOUNT_UTAB=str(workdir / "utab"))
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
               *(str(c) for c in copies.values()), *argv]
        return subprocess.run(cmd, env=env).returncode
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
