# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the robustness tests (test_robustness.py): scale, a strict reader of user files
that does not trust the daemon's own parser, the state a test expects, and non-blocking clients.

Scale: `make check` runs each test small; `make stress` sets MFAGATE_STRESS=1 for the figures of
docs/robustness.md (1,000 kills, 1,000 connections, ...). Single figures can be overridden with
MFAGATE_KILLS etc."""
from __future__ import annotations

import base64
import os
import re
import secrets as random_source
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import hygiene
from mfagate_harness import PAM_DRIVER, Daemon

STRESS = os.environ.get("MFAGATE_STRESS") == "1"


def scale(name: str, check: int, stress: int) -> int:
    return int(os.environ.get(f"MFAGATE_{name}", stress if STRESS else check))


def report(line: str) -> None:
    """A figure for docs/robustness.md: printed (pytest -s) and appended to build/robustness-figures.txt."""
    print(line)
    path = Path(__file__).resolve().parents[2] / "build" / "robustness-figures.txt"
    path.parent.mkdir(exist_ok=True)
    with open(path, "a") as f:
        f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + ("[stress] " if STRESS else "[check] ") + line + "\n")


def new_secret() -> str:
    s = base64.b32encode(random_source.token_bytes(20)).decode().rstrip("=")
    hygiene.register("TOTP secret", s)
    return s


REQUIRED = ("user", "method", "algorithm", "digits", "period", "secret", "created")


def read_user_file(path: Path) -> dict:
    """The user file format (Sources/MFAStore/UserRecord.swift), read strictly and independently:
    raises ValueError for anything half-written, truncated or foreign."""
    data = path.read_bytes()
    text = data.decode("ascii")
    if not text.endswith("\n"):
        raise ValueError(f"{path}: does not end with a newline (truncated)")
    fields: dict = {"recovery": []}
    lines = [l for l in text.split("\n")[:-1] if l and not l.startswith("#")]
    if not lines or lines[0] != "version 1":
        raise ValueError(f"{path}: first field is not `version 1`")
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        if key == "recovery":
            if not re.fullmatch(r"[0-9a-f]{32}:[0-9a-f]{64}", value):
                raise ValueError(f"{path}: bad recovery entry")
            fields["recovery"].append(value)
        elif key in REQUIRED or key in ("last_step", "last_success", "drift", "counter", "window"):
            if key in fields:
                raise ValueError(f"{path}: {key} twice")
            fields[key] = value
        else:
            raise ValueError(f"{path}: unknown field {key}")
    for key in REQUIRED:
        if key not in fields:
            raise ValueError(f"{path}: missing {key}")
    if fields["user"] != path.name:
        raise ValueError(f"{path}: belongs to {fields['user']}")
    if os.stat(path).st_mode & 0o777 != 0o600:
        raise ValueError(f"{path}: mode is not 0600")
    return fields


@dataclass
class Expected:
    """What one user's file may hold. `secrets` has one element once the test knows which write
    won; two after an interrupted replacement (old or new, never anything else); None in it means
    "no file" is allowed (an interrupted first enrollment)."""
    secrets: set = field(default_factory=set)
    unused_recovery: list = field(default_factory=list)
    accepted_recovery: list = field(default_factory=list)
    accepted_totp: list = field(default_factory=list)   # (secret, step, code)
    next_step: int = 0
    pending: str | None = None                          # secret of an interrupted enrollment


def pam_command(daemon: Daemon, user: str, *answers: str, service: str = "mfa-test") -> list[str]:
    cmd = [str(PAM_DRIVER), str(daemon.confdir), service, user]
    for a in answers:
        cmd += ["--answer", a]
    return cmd


def result_of(stdout: str) -> str:
    hygiene.capture("pam_driver output", stdout)
    for line in stdout.splitlines():
        if line.startswith("RESULT: "):
            return line[len("RESULT: "):]
    return "NO_RESULT"


def elapsed_of(stdout: str) -> int:
    m = re.search(r"^ELAPSED_MS: (\d+)$", stdout, re.M)
    return int(m.group(1)) if m else -1


def rss_kib(pid: int) -> int:
    m = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(m.group(1)) if m else -1


def popen_pam(daemon: Daemon, user: str, *answers: str) -> subprocess.Popen:
    return subprocess.Popen(pam_command(daemon, user, *answers), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


# --------------------------------------------------------------------------------------------------
# Strict, independent readers of the daemon's other state files (Sources/MFAStore/Bookkeeping.swift,
# Sources/MFAStore/ReplayJournal.swift): each raises ValueError on anything half-written or foreign.

USER_NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\$?")


def _state_lines(path: Path) -> list[str]:
    text = path.read_bytes().decode("ascii")
    if not text.endswith("\n"):
        raise ValueError(f"{path}: does not end with a newline (truncated)")
    if os.stat(path).st_mode & 0o777 != 0o600:
        raise ValueError(f"{path}: mode is not 0600")
    lines = [l for l in text.split("\n")[:-1] if l and not l.startswith("#")]
    if not lines or lines[0] != "version 1":
        raise ValueError(f"{path}: first field is not `version 1`")
    return lines[1:]


def read_lockout_file(path: Path) -> dict:
    """STATE/lockout: `user|rhost KEY UNTIL TIMES` lines → {("user"|"rhost", key): (until, [times])}."""
    book = {}
    for line in _state_lines(path):
        m = re.fullmatch(r"(user|rhost) (\S+) (-|-?\d+) (-|-?\d+(?:,-?\d+)*)", line)
        if not m:
            raise ValueError(f"{path}: bad line {line!r}")
        kind, key, until, times = m.groups()
        if kind == "user" and not USER_NAME.fullmatch(key):
            raise ValueError(f"{path}: bad user name {key!r}")
        if kind == "rhost" and not re.fullmatch(r"[0-9A-Za-z.:%-]{1,255}", key):
            raise ValueError(f"{path}: bad address {key!r}")
        # The file is a log (issue 14): a later line about a key replaces the earlier one, and a line
        # with neither lock nor failures removes the key.
        if until == "-" and times == "-":
            book.pop((kind, key), None)
            continue
        book[(kind, key)] = (None if until == "-" else int(until), [] if times == "-" else [int(t) for t in times.split(",")])
    return book


def read_seen_file(path: Path) -> dict:
    """STATE/seen: `USER TIME` lines → {user: time}; a later line about a user wins (a log, issue 14)."""
    seen = {}
    for line in _state_lines(path):
        m = re.fullmatch(r"(\S+) (\d+)", line)
        if not m or not USER_NAME.fullmatch(m.group(1)):
            raise ValueError(f"{path}: bad line {line!r}")
        seen[m.group(1)] = int(m.group(2))
    return seen


JOURNAL_SLOT = 96
NO_VALUE = -(1 << 63)


JOURNAL_FIRST_RECORD = 3  # slot 0 header, slots 1 and 2 the marker (JournalMarker.swift)


def read_journal_marker(path: Path) -> dict:
    """The newest valid marker of STATE/journal (format 2): {sequence, boot_id (hex), durable_until
    (ms), bound (ms), durable_slots, horizon (ms or None), horizon_window, lead_window, clean}."""
    import hashlib
    import struct
    data = path.read_bytes()
    generation = struct.unpack_from("<I", data, 8)[0]
    found = []
    for slot in (1, 2):
        m = data[slot * JOURNAL_SLOT:(slot + 1) * JOURNAL_SLOT]
        if (struct.unpack_from("<I", m, 0)[0] != generation or m[84:88] != b"MARK"
                or hashlib.sha256(m[:88]).digest()[:8] != m[88:]):
            continue
        seq, = struct.unpack_from("<Q", m, 4)
        until, bound, durable, horizon = struct.unpack_from("<qIIq", m, 28)
        found.append({"sequence": seq, "boot_id": m[12:28].hex(), "durable_until": until, "bound": bound,
                      "durable_slots": durable, "horizon": None if horizon == NO_VALUE else horizon,
                      "horizon_window": m[52], "lead_window": m[53], "clean": m[54] == 1})
    if not found:
        raise ValueError(f"{path}: no valid marker")
    return max(found, key=lambda x: x["sequence"])


def read_journal(path: Path) -> dict:
    """STATE/journal: a header slot, two marker slots and 96-byte record slots; records of the
    header's generation with a valid checksum count, merged by maximum → {user: (created, step, success)}."""
    import hashlib
    import struct
    data = path.read_bytes()
    if len(data) < 2 * JOURNAL_SLOT or len(data) % JOURNAL_SLOT:
        raise ValueError(f"{path}: size {len(data)} is not a whole number of slots")
    if os.stat(path).st_mode & 0o777 != 0o600:
        raise ValueError(f"{path}: mode is not 0600")

    def sum_ok(slot: bytes) -> bool:
        return hashlib.sha256(slot[:88]).digest()[:8] == slot[88:]

    header = data[:JOURNAL_SLOT]
    if header[:8] != b"MFAGJRN2" or not sum_ok(header):
        raise ValueError(f"{path}: damaged header")
    generation = struct.unpack_from("<I", header, 8)[0]
    read_journal_marker(path)
    entries: dict = {}
    for offset in range(JOURNAL_FIRST_RECORD * JOURNAL_SLOT, len(data), JOURNAL_SLOT):
        slot = data[offset:offset + JOURNAL_SLOT]
        if struct.unpack_from("<I", slot, 0)[0] != generation or not 1 <= slot[28] <= 32 or not sum_ok(slot):
            continue
        step, success, created = struct.unpack_from("<qqq", slot, 4)
        name = slot[29:29 + slot[28]].decode("ascii")
        step = None if step == NO_VALUE else step
        success = None if success == NO_VALUE else success
        old = entries.get(name)
        if old and old[0] == created:
            step = max(x for x in (old[1], step) if x is not None) if (old[1], step) != (None, None) else None
            success = max(x for x in (old[2], success) if x is not None) if (old[2], success) != (None, None) else None
        entries[name] = (created, step, success)
    return entries
