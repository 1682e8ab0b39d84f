# SPDX-License-Identifier: Apache-2.0
"""A real OpenSSH login (real sshd in a private mount namespace, real ssh client) through
pam_unix + pam_mfagate.so + mfagated, with codes from oathtool."""
import pytest

import hygiene

from mfagate_harness import SHIM, oathtool_totp, wrong_code
from sshd_sandbox import SshdSandbox, ssh_login

PASSWORD = "correct horse 42"


@pytest.fixture
def sshd(daemon_factory, tmp_path):
    d = daemon_factory("required", run_as="nobody")
    stack = ["auth required pam_unix.so",
             f"auth required {SHIM} socket={d.socket} timeout=5"]
    with SshdSandbox(stack, [("mfauser", PASSWORD), ("plainuser", PASSWORD)], tmp_path) as box:
        try:
            yield d, box
        finally:  # for test_zz_secret_hygiene.py: no code in sshd's log or what PAM sent to syslog
            hygiene.capture("sshd log", box.log_text())
            hygiene.capture("syslog in the sshd sandbox", box.syslog_text())


def answers(code):
    return [(r"[Pp]assword:", PASSWORD), (r"Verification code:", code)]


def test_ssh_login_right_code_in_wrong_code_out_replay_out(sshd):
    d, box = sshd
    e = d.enroll("mfauser")
    code = oathtool_totp(e["secret"])

    bad = ssh_login(box.port, "mfauser", answers(wrong_code(code)))
    assert not bad.ok and bad.reason == "denied", bad
    assert any("Verification code" in p for p in bad.prompts), bad.prompts

    good = ssh_login(box.port, "mfauser", answers(code))
    assert good.ok, (good, box.log_text()[-2000:], d.log())
    assert [p for p in good.prompts if "Verification" in p][0].endswith("Verification code:")

    replay = ssh_login(box.port, "mfauser", answers(code))
    assert not replay.ok, replay
    assert 'reason="replayed code"' in d.log() and "service=sshd-mfa-test" in d.log()


def test_ssh_recovery_code_once_and_required_mode_refuses_unenrolled(sshd):
    d, box = sshd
    e = d.enroll("mfauser")
    rc = e["recovery_codes"][0]
    assert ssh_login(box.port, "mfauser", answers(rc)).ok
    assert not ssh_login(box.port, "mfauser", answers(rc)).ok
    # plainuser is not enrolled and the mode is required: the right password is not enough.
    r = ssh_login(box.port, "plainuser", answers("000000"))
    assert not r.ok
    assert 'reason="not enrolled, MFA required"' in d.log() and "rhost=127.0.0.1" in d.log()


def test_ssh_wrong_password_never_reaches_a_verdict_of_success(sshd):
    d, box = sshd
    e = d.enroll("mfauser")
    r = ssh_login(box.port, "mfauser", [(r"[Pp]assword:", "wrong"), (r"Verification code:", oathtool_totp(e["secret"]))])
    assert not r.ok
