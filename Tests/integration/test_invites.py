# SPDX-License-Identifier: Apache-2.0
"""`enroll_at_login = invite` (issue 14, finding 11): enrollment at the login prompt only for a user
who types a one-time invite code root made with `mfagate invite`, through the real libpam
(pam_driver) with codes from oathtool. Also: every enrollment at login has a log line of its own."""
import json
import os
import re
import time

import pexpect
import pytest

from fleet_pg import available as fleet_available
from mfagate_harness import SHIM, oathtool_totp
from sshd_sandbox import SshdSandbox
from test_delivery import Login
from test_enroll_at_login import PASSWORD, ssh_spawn
from test_fleet import cluster, fleet  # noqa: F401 (fixtures)

import hygiene

INVITE_CONFIG = "enroll_at_login = invite\nmax_failures = 5\n"
WRONG_INVITE = "2345-6789-abcd-efgh-jkmn"


def make_invite(d, user: str, *extra: str) -> str:
    out = d.cli("invite", "--user", user, "--json", *extra, check=True)
    invite = json.loads(out.stdout)
    assert invite["user"] == user and invite["expires"] > time.time()
    hygiene.register("invite code", invite["invite"])
    return invite["invite"]


def enroll_through_screen(login: Login) -> list[str]:
    """From the Verification code prompt of the enrollment screen to the end: a right code from
    oathtool, then Enter after the recovery codes. Returns the recovery codes shown."""
    # The key and the recovery codes are shown to the user on purpose: not registered as leaks.
    key = re.search(r"by hand \(time-based, 6 digits\): ([A-Z2-7 ]+)", login.messages()).group(1).replace(" ", "")
    login.answer(oathtool_totp(key))
    assert login.prompt() == "Press Enter after you saved them"
    codes = re.findall(r"\b([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})\b", login.messages())
    login.answer("")
    return codes


def state_bytes(d) -> bytes:
    blob = b""
    for root, _, files in os.walk(d.state):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                blob += f.read()
    return blob


def test_invite_only_enrollment_at_login(daemon_factory):
    d = daemon_factory("required", extra_config=INVITE_CONFIG)
    # No invite: not offered (no prompt for one, no QR code); refused as an unenrolled user in required mode.
    r = d.pam("carol", "")
    assert r.result == "PAM_AUTH_ERR" and not r.messages, r
    assert 'reason="not enrolled, no invite, mode required"' in d.log()
    assert d.check("carol")["decision"] == "refuse"

    # Only root makes invites.
    denied = d.cli("invite", "--user", "carol", user="nobody")
    assert denied.returncode == 1 and "only root" in denied.stderr
    code = make_invite(d, "carol")
    assert d.check("carol")["decision"] == "enroll"
    assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){4}", code), code
    # Stored hashed: neither the code as shown nor without its dashes is anywhere in the state dir.
    blob = state_bytes(d)
    assert b"invite carol " in blob
    assert code.encode() not in blob and code.replace("-", "").encode() not in blob

    # A wrong invite is refused and counted as a wrong code.
    login = Login(d, "carol")
    assert login.prompt() == "Invite code:"
    assert "invite code your administrator gave you" in login.messages()
    login.answer(WRONG_INVITE)
    assert login.result().result == "PAM_AUTH_ERR"
    assert 'reason="wrong or expired invite code"' in d.log()
    assert re.search(r"^user carol \S+ \d+", (d.state / "lockout").read_text(), re.M), "the failure is counted"

    # The right one: the enrollment screen, then a code from oathtool enrolls carol.
    login = Login(d, "carol")
    assert login.prompt() == "Invite code:"
    login.answer(code.upper().replace("-", " "))  # typed as read aloud: case and separators do not matter
    assert login.prompt() == "Verification code:"
    assert "Scan this QR code" in login.messages()
    assert len(enroll_through_screen(login)) == 10
    assert login.result().result == "PAM_SUCCESS"
    log = d.log()
    assert re.search(r"enrolled at login .*invite=yes.*user=carol", log), log
    assert "event=enrolled" in log and "by=login" in log
    assert json.loads(d.cli("status", "--user", "carol", "--json", check=True).stdout)["enrolled"]
    assert b"invite carol " not in state_bytes(d), "a used invite is gone from the book"

    # Used once: after a reset carol is unenrolled again, and the old invite offers nothing.
    d.cli("reset", "--user", "carol", check=True)
    r = d.pam("carol", code)
    assert r.result == "PAM_AUTH_ERR" and not r.messages, r


def test_an_invite_works_once_even_in_two_logins_at_the_same_time(daemon_factory):
    d = daemon_factory("optional", extra_config=INVITE_CONFIG)
    code = make_invite(d, "dave")
    first, second = Login(d, "dave"), Login(d, "dave")
    assert first.prompt() == "Invite code:", first.lines
    assert second.prompt() == "Invite code:", (second.lines, second.proc.poll(), d.log()[-2000:])
    assert "Press Enter without a code to skip" in first.messages()
    first.answer(code)
    assert first.prompt() == "Verification code:"
    second.answer(code)
    assert second.prompt() == "", "no enrollment screen for a used invite"
    assert second.result().result == "PAM_AUTH_ERR", "the invite was used by the first login"
    enroll_through_screen(first)
    assert first.result().result == "PAM_SUCCESS"


def test_expired_invite_is_refused_and_optional_mode_stays_unenrolled(daemon_factory, tmp_path):
    offset = tmp_path / "offset"
    offset.write_text("0\n")
    d = daemon_factory("optional", extra_config=INVITE_CONFIG, daemon_args=["--clock-offset-file", str(offset)])
    code = make_invite(d, "mallory", "--expires", "30m")
    bad = d.cli("invite", "--user", "mallory", "--expires", "91d")
    assert bad.returncode == 64 and "at most 90 days" in bad.stderr  # a usage error (ArgumentParser)
    login = Login(d, "mallory")
    assert login.prompt() == "Invite code:"
    # 31 minutes pass while the prompt is open: the code is refused.
    offset.write_text(f"{31 * 60}\n")
    os.kill(d.proc.pid, 1)
    deadline = time.monotonic() + 5
    while "reloaded" not in d.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    login.answer(code)
    assert login.result().result == "PAM_AUTH_ERR"
    # Expired: no longer offered; an optional login proceeds unenrolled (PAM_IGNORE), never enrolled.
    r = d.pam("mallory", code)
    assert r.result == "PAM_IGNORE" and not r.messages, r
    assert json.loads(d.cli("status", "--user", "mallory", "--json", check=True).stdout)["enrolled"] is False


def test_enroll_at_login_yes_also_logs_the_enrollment_for_alerts(daemon_factory):
    d = daemon_factory("required", extra_config="enroll_at_login = yes\n")
    login = Login(d, "bob")
    assert login.prompt() == "Verification code:"
    enroll_through_screen(login)
    assert login.result().result == "PAM_SUCCESS"
    assert re.search(r"enrolled at login .*invite=no.*user=bob", d.log()), d.log()


def test_a_bad_invite_file_never_stops_the_daemon(daemon_factory):
    d = daemon_factory("required", extra_config=INVITE_CONFIG)
    make_invite(d, "carol")
    d.stop()
    (d.state / "invites").write_bytes(b"version 1\ninvite carol not-a-time\n\xff\xfe garbage\n")
    d.start()
    r = d.pam("carol", "")
    assert r.result == "PAM_AUTH_ERR" and not r.messages, r
    assert "unreadable line(s) skipped" in d.log()
    assert d.check("carol")["decision"] == "refuse", "the damaged file's invite is gone"
    make_invite(d, "carol")
    assert d.check("carol")["decision"] == "enroll", "a new invite holds after the damaged file"


def test_invite_then_enrollment_through_real_sshd(daemon_factory, tmp_path):
    """The same through OpenSSH's keyboard-interactive prompts (private mount namespace)."""
    d = daemon_factory("required", extra_config=INVITE_CONFIG, run_as="nobody")
    stack = ["auth required pam_unix.so", f"auth required {SHIM} socket={d.socket} timeout=5"]
    with SshdSandbox(stack, [("newuser", PASSWORD)], tmp_path) as box:
        code = make_invite(d, "newuser")
        child = ssh_spawn(box.port, "newuser")
        child.expect(r"[Pp]assword:")
        child.sendline(PASSWORD)
        child.expect("Invite code:")
        assert "invite code your administrator gave you" in child.before
        child.sendline(code)
        child.expect("Verification code:")
        key = re.search(r"by hand \(time-based, 6 digits\): ([A-Z2-7 ]+)", child.before.replace("\r", "")).group(1)
        child.sendline(oathtool_totp(key.replace(" ", "")))
        child.expect("Press Enter after you saved them")
        child.sendline("")
        child.expect("LOGIN-OK")
        child.expect(pexpect.EOF)
        child.close()
        assert re.search(r"enrolled at login .*invite=yes.*user=newuser", d.log()), d.log()


@pytest.mark.skipif(not fleet_available(), reason="PostgreSQL 15 (postgresql package) is not installed")
def test_fleet_invites_are_per_host_and_the_enrollment_is_fleet_wide(fleet):
    a, b = fleet(2, extra=INVITE_CONFIG, mode="required")
    code = make_invite(a, "carol")
    assert (a.state / "invites").exists() and not (b.state / "invites").exists()
    r = b.pam("carol", code)
    assert r.result == "PAM_AUTH_ERR" and not r.messages, "the invite is for host a"
    login = Login(a, "carol")
    assert login.prompt() == "Invite code:"
    login.answer(code)
    assert login.prompt() == "Verification code:"
    secret = re.search(r"by hand \(time-based, 6 digits\): ([A-Z2-7 ]+)", login.messages()).group(1).replace(" ", "")
    enroll_through_screen(login)
    assert login.result().result == "PAM_SUCCESS"
    assert b.pam("carol", oathtool_totp(secret, at="now + 30 seconds")).result == "PAM_SUCCESS", "enrolled fleet-wide"
