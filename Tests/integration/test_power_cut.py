# SPDX-License-Identifier: Apache-2.0
"""Replay refused across a power cut, with no flush on the TOTP path (JournalMarker.swift,
docs/robustness.md "Replay across a power cut"), through the real daemon, libpam and oathtool.

A power cut is made without one: the daemon is killed with SIGKILL, the journal is truncated to
the length its newest marker says was durable (what the disk held when the page cache was lost),
and the next start is shown another boot id (`--boot-id-file`, hidden, for tests only). A long
flush bound (`--journal-flush-bound`, hidden) keeps the logins' records unflushed until the kill,
so the truncation really drops them (checked before the kill, and by the control test)."""
from __future__ import annotations

import hashlib
import os
import signal
import struct
import time
from pathlib import Path

from mfagate_harness import oathtool_totp
from robustness import JOURNAL_FIRST_RECORD, JOURNAL_SLOT, read_journal_marker

BOOT_A = "6f1a0d35-6c1b-4a55-9d2e-3a1b2c3d4e5f\n"
BOOT_B = "0b7e2f11-2222-4333-8444-555566667777\n"
USERS = ["alice", "bob", "carol", "dave"]


def _record_slots(journal: Path) -> dict[str, list[int]]:
    """Slots of the valid records of each user (independent reader of ReplayJournalFormat.swift)."""
    data = journal.read_bytes()
    generation = struct.unpack_from("<I", data, 8)[0]
    slots: dict[str, list[int]] = {}
    for slot in range(JOURNAL_FIRST_RECORD, len(data) // JOURNAL_SLOT):
        s = data[slot * JOURNAL_SLOT:(slot + 1) * JOURNAL_SLOT]
        if (struct.unpack_from("<I", s, 0)[0] == generation and 1 <= s[28] <= 32
                and hashlib.sha256(s[:88]).digest()[:8] == s[88:]):
            slots.setdefault(s[29:29 + s[28]].decode(), []).append(slot)
    return slots


def _daemon(daemon_factory, tmp_path: Path, *extra: str):
    os.chmod(tmp_path, 0o755)
    boot = tmp_path / "boot_id"
    boot.write_text(BOOT_A)
    offset = tmp_path / "clock-offset"
    offset.write_text("0\n")
    d = daemon_factory("required", daemon_args=["--boot-id-file", str(boot), "--clock-offset-file", str(offset), *extra])
    return d, boot, offset


def _accept_then_cut_power(d, new_boot: str, boot: Path) -> dict[str, str]:
    """Logs every user in once, kills the daemon, drops the journal's unflushed tail, starts it
    again with `new_boot`. Returns the codes that were accepted."""
    secrets = {u: d.enroll(u)["secret"] for u in USERS}
    codes = {u: oathtool_totp(secrets[u]) for u in USERS}
    for u in USERS:
        assert d.pam(u, codes[u]).result == "PAM_SUCCESS", u
    journal = d.state / "journal"
    marker = read_journal_marker(journal)
    slots = _record_slots(journal)
    for u in USERS:
        assert min(slots[u]) >= marker["durable_slots"], f"{u}'s record was flushed already: the cut would drop nothing"
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    assert not read_journal_marker(journal)["clean"]
    with open(journal, "r+b") as f:
        f.truncate(read_journal_marker(journal)["durable_slots"] * JOURNAL_SLOT)
    assert not set(USERS) & set(_record_slots(journal)), "the truncation left a login's record"
    boot.write_text(new_boot)
    d.start()
    return codes


def test_every_code_accepted_before_a_power_cut_is_refused_in_the_next_boot(daemon_factory, tmp_path):
    d, boot, offset = _daemon(daemon_factory, tmp_path, "--journal-flush-bound", "60000")
    codes = _accept_then_cut_power(d, BOOT_B, boot)
    for u in USERS:
        assert d.pam(u, codes[u]).result == "PAM_AUTH_ERR", u
    assert d.log().count('reason="replayed code"') == len(USERS)
    # The horizon ends: past the lease end (60 s) + window, the users' next codes are accepted.
    offset.write_text("180\n")
    os.kill(d.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "configuration reloaded" not in d.log() and time.monotonic() < deadline:
        time.sleep(0.02)
    secrets = {u: d.enroll(u)["secret"] for u in ["mallory"]}
    assert d.pam("mallory", oathtool_totp(secrets["mallory"], at="now + 180 seconds")).result == "PAM_SUCCESS"


def test_control_with_the_same_boot_id_the_dropped_codes_would_be_accepted_again(daemon_factory, tmp_path):
    """Not a case a real power cut can make (a machine crash is a new boot): it shows that the
    truncation above drops the records, so only the boot id rule refuses those codes."""
    d, boot, _ = _daemon(daemon_factory, tmp_path, "--journal-flush-bound", "60000")
    codes = _accept_then_cut_power(d, BOOT_A, boot)
    for u in USERS:
        assert d.pam(u, codes[u]).result == "PAM_SUCCESS", u


def test_a_clean_stop_makes_no_one_wait_in_the_next_boot(daemon_factory, tmp_path):
    """SIGTERM flushes everything and marks the journal clean: in a new boot the used code is
    refused (it is on disk) and the very next step's code is accepted at once."""
    d, boot, _ = _daemon(daemon_factory, tmp_path)
    secret = d.enroll("alice")["secret"]
    code = oathtool_totp(secret)
    assert d.pam("alice", code).result == "PAM_SUCCESS"
    assert d.stop() == 0
    assert read_journal_marker(d.state / "journal")["clean"]
    boot.write_text(BOOT_B)
    d.start()
    assert d.pam("alice", code).result == "PAM_AUTH_ERR"
    assert d.pam("alice", oathtool_totp(secret, at="now + 30 seconds")).result == "PAM_SUCCESS"


def test_a_totp_success_does_not_wait_for_the_disk(daemon_factory, tmp_path):
    """Every fdatasync takes 1 s (an LD_PRELOAD stand-in for a slow disk): each TOTP login still
    answers well under that, because its record is flushed in the background within the bound.
    (Before this rule every SUCCESS waited for one fdatasync.)"""
    import subprocess
    source = tmp_path / "slow_fdatasync.c"
    preload = tmp_path / "slow_fdatasync.so"
    source.write_text(
        "#define _GNU_SOURCE\n#include <dlfcn.h>\n#include <unistd.h>\n"
        "int fdatasync(int fd) { int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, \"fdatasync\");\n"
        "  usleep(1000000); return real(fd); }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(preload), str(source), "-ldl"], check=True)
    os.chmod(tmp_path, 0o755)
    d = daemon_factory("required", start=False, daemon_args=["--journal-flush-bound", "10000"])
    d.wrap = ["env", f"LD_PRELOAD={preload}"]
    d.start()
    secrets = {u: d.enroll(u)["secret"] for u in USERS}
    codes = {u: oathtool_totp(secrets[u]) for u in USERS}
    service = d.service()
    for u in USERS:
        started = time.monotonic()
        assert d.pam(u, codes[u], service=service).result == "PAM_SUCCESS", u
        assert time.monotonic() - started < 0.8, f"{u}'s SUCCESS waited for the disk"
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    d.start()
    for u in USERS:
        assert d.pam(u, codes[u], service=service).result == "PAM_AUTH_ERR", u
