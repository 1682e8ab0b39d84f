# SPDX-License-Identifier: Apache-2.0
"""Enrollment at first login (`enroll_at_login = yes`) through a real sshd (private mount namespace)
and the real ssh client: the QR code and key arrive in the keyboard-interactive prompt, a code from
oathtool activates the enrollment, the recovery codes come with a final "Press Enter" prompt."""
import json
import os
import re

import pexpect
import pytest

from mfagate_harness import SHIM, oathtool_totp, wrong_code
from sshd_sandbox import SSH, SshdSandbox, ssh_login

PASSWORD = "correct horse 42"


def sandbox(daemon_factory, tmp_path, mode):
    d = daemon_factory(mode, extra_config="enroll_at_login = yes\n", run_as="nobody")
    stack = ["auth required pam_unix.so", f"auth required {SHIM} socket={d.socket} timeout=5"]
    return d, SshdSandbox(stack, [("newuser", PASSWORD)], tmp_path)


def ssh_spawn(port, user):
    args = ["-F", "/dev/null", "-p", str(port), "-T", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "PreferredAuthentications=keyboard-interactive", "-o", "PubkeyAuthentication=no",
            "-o", "NumberOfPasswordPrompts=1", "-o", "LogLevel=ERROR", "-o", "ControlMaster=no",
            "-o", "ControlPath=none", f"{user}@127.0.0.1", "echo LOGIN-OK"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSH_", "DISPLAY"))}
    env.update({"TERM": "dumb", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"})
    return pexpect.spawn(SSH, args, env=env, encoding="utf-8", codec_errors="replace", timeout=30, echo=False)


@pytest.mark.parametrize("mode", ["required", "optional"])
def test_enroll_at_first_ssh_login_then_log_in_with_the_new_factor(daemon_factory, tmp_path, mode):
    d, box = sandbox(daemon_factory, tmp_path, mode)
    with box:
        check = json.loads(d.cli("check", "--user", "newuser", "--json", check=True).stdout)
        assert check["decision"] == "enroll" and "enroll_at_login" in check["rule"]
        child = ssh_spawn(box.port, "newuser")
        child.expect(r"[Pp]assword:")
        child.sendline(PASSWORD)
        child.expect("Verification code:")
        screen = child.before.replace("\r", "")
        assert "Scan this QR code" in screen
        assert "█" in screen or "\\342\\226\\210" in screen, screen[:500]  # the QR, as the client shows it
        assert ("Press Enter without a code to skip" in screen) == (mode == "optional")
        key = re.search(r"by hand \(time-based, 6 digits\): ([A-Z2-7 ]+)", screen).group(1)
        secret = key.replace(" ", "")
        code = oathtool_totp(secret)
        child.sendline(wrong_code(code))
        child.expect("Verification code:")
        assert "not right" in child.before
        child.sendline(code)
        child.expect("Press Enter after you saved them")
        codes = re.findall(r"\b([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})\b", child.before)
        assert len(codes) == 10
        child.sendline("")
        child.expect("LOGIN-OK")
        child.expect(pexpect.EOF)
        child.close()
        assert 'reason="enrolled at login"' in d.log() and "event=enrolled" in d.log()
        # Enrolled now: the next login asks for a code, and a recovery code from that screen works.
        r = ssh_login(box.port, "newuser", [(r"[Pp]assword:", PASSWORD), (r"Verification code:", codes[0])])
        assert r.ok, (r, d.log())
        assert not any("QR" in t for t in r.texts)
        status = json.loads(d.cli("status", "--user", "newuser", "--json", check=True).stdout)
        assert status["enrolled"] and status["recovery_codes_left"] == 9 and status["last_success"]


def test_optional_mode_empty_answer_skips_and_the_login_proceeds(daemon_factory, tmp_path):
    d, box = sandbox(daemon_factory, tmp_path, "optional")
    with box:
        r = ssh_login(box.port, "newuser", [(r"[Pp]assword:", PASSWORD), (r"Verification code:", "")])
        assert r.ok, (r, d.log())
        assert any("skip" in t for t in r.texts)
        assert 'reason="enrollment skipped, mode optional"' in d.log() and "result=ignore" in d.log()
        assert json.loads(d.cli("status", "--user", "newuser", "--json", check=True).stdout)["enrolled"] is False


def test_required_mode_cannot_skip(daemon_factory, tmp_path):
    d, box = sandbox(daemon_factory, tmp_path, "required")
    with box:
        r = ssh_login(box.port, "newuser", [(r"[Pp]assword:", PASSWORD), (r"Verification code:", "")])
        assert not r.ok
        assert json.loads(d.cli("status", "--user", "newuser", "--json", check=True).stdout)["enrolled"] is False


def test_enroll_at_login_no_never_offers_it(daemon_factory):
    d = daemon_factory("optional", extra_config="enroll_at_login = no\n")
    r = d.pam("carol")
    assert r.result == "PAM_IGNORE" and not any("QR" in m for m in r.messages), r
    d.write_config("required", "enroll_at_login = no\n")
    d.stop(); d.start()
    r = d.pam("carol", "")
    assert r.result == "PAM_AUTH_ERR" and not any("QR" in m for m in r.messages), r
