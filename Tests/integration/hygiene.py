# SPDX-License-Identifier: Apache-2.0
"""Secret hygiene across the whole integration suite.

The harness registers every secret, TOTP code, wrong code and recovery code a test uses
(`register`) and every text the system under test produced that nobody should find a secret in
(`capture`): the daemon's log (its stderr), the CLI's stderr, what the PAM driver saw of the
conversation. test_zz_secret_hygiene.py, which runs last, searches every capture for every
registered value and fails on any hit, naming the capture and the kind of value, never the value.

Six-digit codes are searched as whole numbers after removing the numbers a log legitimately holds
(pids, uids, timings), so a pid that happens to equal a code is not a false alarm."""
from __future__ import annotations

import re
import threading

_lock = threading.Lock()
_values: dict[str, str] = {}          # value -> kind
_captures: list[tuple[str, str]] = []  # (where, text)

_LEGIT_NUMBERS = re.compile(r"\b(?:pid|uid|gid)=\d+|ELAPSED_MS: \d+|OPEN_FDS: \d+ \d+|mfagate-it-\w+|\.\d+\.\d+\b")


def register(kind: str, *values: str) -> None:
    with _lock:
        for v in values:
            if v:
                _values[v] = kind


def capture(where: str, text: str | bytes | None) -> None:
    if not text:
        return
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    with _lock:
        _captures.append((where, text))


def counts() -> tuple[int, int, int]:
    """(values registered, captures, bytes captured)"""
    with _lock:
        return len(_values), len(_captures), sum(len(t) for _, t in _captures)


def hits() -> list[str]:
    """One line per (capture, kind of value) found, without the value itself."""
    found: set[str] = set()
    with _lock:
        values = dict(_values)
        captures = list(_captures)
    digits = {v: k for v, k in values.items() if v.isdigit()}
    others = {v: k for v, k in values.items() if not v.isdigit()}
    # Recovery codes are also matched without their dashes and in upper case, as a user may type them.
    variants: dict[str, str] = {}
    for v, k in others.items():
        for form in {v, v.replace("-", ""), v.upper(), v.replace("-", "").upper()}:
            if len(form) >= 8:
                variants[form] = k
    number = re.compile(r"(?<!\d)\d{6,8}(?!\d)")
    for where, text in captures:
        cleaned = _LEGIT_NUMBERS.sub(" ", text)
        for n in set(number.findall(cleaned)):
            if n in digits:
                found.add(f"{where}: a {digits[n]}")
        for form, kind in variants.items():
            if form in text:
                found.add(f"{where}: a {kind}")
    return sorted(found)
