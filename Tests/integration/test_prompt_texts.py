# SPDX-License-Identifier: Apache-2.0
"""The admin's own login texts (issue 19, part 4: `code_prompt`, `code_hint`, `enroll_intro`,
`grace_notice`) and PAM_SILENT on every kind of message, through the real libpam (pam_driver
passes PAM_SILENT with --silent). A text that could drive the user's terminal (an escape sequence,
a bidirectional override) is refused with its file:line, and the refusal never echoes it."""
from __future__ import annotations

import re
import subprocess

import pytest

from mfagate_harness import MFAGATED, oathtool_totp

TEXTS = ("code_prompt = Code from the MFA app:\n"
         "code_hint = Lost your phone? Type one of your recovery codes.\n"
         "grace_notice = Hello %u: from %d you need a code here (100% sure).\n")


def test_own_code_prompt_and_hint_and_silence(daemon_factory):
    d = daemon_factory("optional", TEXTS)
    code = oathtool_totp(d.enroll("alice")["secret"])
    r = d.pam("alice", code)
    assert r.result == "PAM_SUCCESS", r
    assert r.messages == ["TEXT_INFO: Lost your phone? Type one of your recovery codes.",
                          "PROMPT_ECHO_OFF: Code from the MFA app: "], r
    # PAM_SILENT: the hint (info) is gone, the prompt still comes and the code still works.
    r = d.pam("alice", "", silent=True)
    assert r.messages == ["PROMPT_ECHO_OFF: Code from the MFA app: "], r
    assert r.result == "PAM_AUTH_ERR"


def test_a_locked_user_sees_the_same_hint_and_prompt(daemon_factory):
    d = daemon_factory("optional", TEXTS + "max_failures = 1\n")
    code = oathtool_totp(d.enroll("alice")["secret"])
    first = d.pam("alice", "000000" if code != "000000" else "111111")
    assert first.result == "PAM_AUTH_ERR"
    locked = d.pam("alice", code)
    assert locked.result == "PAM_MAXTRIES" and locked.messages == first.messages, (first, locked)


def test_own_grace_notice_and_silence_skips_it(daemon_factory):
    d = daemon_factory("required", TEXTS + "grace_period = 7d\n")
    r = d.pam("bob", "")
    assert r.result == "PAM_IGNORE", r
    notice = [m for m in r.messages if m.startswith("TEXT_INFO:")]
    assert len(notice) == 1 and re.fullmatch(r"TEXT_INFO: Hello bob: from \d{4}-\d\d-\d\d \d\d:\d\d UTC you need a code here \(100% sure\)\.", notice[0]), r
    # Silent: the notice could not be shown, so no bare "Press Enter" either; still in grace.
    r = d.pam("bob", silent=True)
    assert r.result == "PAM_IGNORE" and r.messages == [], r
    assert "silent: no notice" in d.log()


def test_own_enroll_intro_and_silence_offers_no_enrollment(daemon_factory):
    d = daemon_factory("optional", "enroll_at_login = yes\nenroll_intro = Welcome %u! Scan this with FreeOTP:\n")
    r = d.pam("bob", "")
    assert r.result == "PAM_IGNORE", r
    assert r.messages[0] == "TEXT_INFO: Welcome bob! Scan this with FreeOTP:", r
    assert r.messages[-1] == "PROMPT_ECHO_OFF: Verification code: "
    # Silent: the QR code and key could not be seen; the plain policy verdict, no prompt at all.
    r = d.pam("bob", silent=True)
    assert r.result == "PAM_IGNORE" and r.messages == [], r
    d.stop()
    d.write_config("required", "enroll_at_login = yes\n")
    d.start()
    r = d.pam("bob", silent=True)
    assert r.result == "PAM_AUTH_ERR" and r.messages == [], "required and silent: not enrolled, refused"


@pytest.mark.parametrize("key,value,problem", [
    ("code_prompt", "Code\x1b]0;owned\x07:", "character 5 is a control character U+001B"),
    ("code_hint", "Hint \x1b[2J\x1b[H", "character 6 is a control character U+001B"),
    ("enroll_intro", "Scan \u009b31m this", "character 6 is a control character U+009B"),
    ("grace_notice", "abc \u202edcba", "character 5 is a format character (e.g. a bidirectional override) U+202E"),
    ("code_hint", "x" * 513, "it is 513 bytes long"),
    ("code_prompt", "y" * 129, "it is 129 bytes long"),
])
def test_texts_that_could_drive_a_terminal_are_refused_with_their_line(daemon_factory, key, value, problem):
    d = daemon_factory(start=False)
    good = d.config.read_text()
    d.config.write_bytes((good + f"{key} = {value}\n").encode())
    line = len(good.splitlines()) + 1
    r = subprocess.run([str(MFAGATED), "--config", str(d.config), "--check-config"], capture_output=True, timeout=30)
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert f"{d.config}:{line}: `{key}` must be 1 to" in err and problem in err, err
    assert b"\x1b" not in r.stderr and "\u009b" not in err and "\u202e" not in err, "the refusal never echoes the text"
