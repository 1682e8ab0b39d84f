# SPDX-License-Identifier: Apache-2.0
"""Codes by email and SMS (issue 10), through the real parts: Debian's exim4 `sendmail` delivering
to a local mailbox (mta.py; the daemon runs in a private mount namespace holding the test's exim
configuration), a shell script standing in for an SMS gateway, the real libpam (pam_driver, which
answers a prompt with a line it reads only when the prompt comes) and the real sshd. Codes are read
from the delivered message, never from the daemon."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

import hygiene
import mta
from mfagate_harness import PAM_DRIVER, PamResult, oathtool_totp, wrong_code

pytestmark = pytest.mark.skipif(not mta.available(), reason="exim4 (exim4-daemon-light) is not installed")

ALICE = "alice@example.org"
PHONE = "+4915112345678"

SMS_SCRIPT = """#!/bin/sh
# Stands in for an admin's SMS gateway script: records what it got, behaves as {dir}/mode says.
n=$(ls {dir}/sms.* 2>/dev/null | wc -l)
{{ echo "ARGS $#"; echo "TO $MFAGATE_SMS_TO"; echo "USER $MFAGATE_USER"; cat; }} > {dir}/sms.$n
case "$(cat {dir}/mode 2>/dev/null)" in
  fail) echo "gateway says no" >&2; exit 3 ;;
  hang) exec sleep 60 ;;
esac
exit 0
"""


def make_sms_gateway(tmp_path: Path) -> tuple[Path, Path]:
    """The stand-in gateway script and the directory it records texts in (writable by the daemon)."""
    sms_dir = tmp_path / "sms"
    sms_dir.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(sms_dir, 0o777)
    script = tmp_path / "sms-gateway"
    script.write_text(SMS_SCRIPT.format(dir=sms_dir))
    os.chmod(script, 0o755)
    return script, sms_dir


def sms_texts(sms_dir: Path) -> list[str]:
    files = sorted(sms_dir.glob("sms.*"), key=lambda p: int(p.suffix[1:]))
    return [p.read_text() for p in files]


def sms_code(sms_dir: Path, count: int = 1) -> str:
    """The code in the count-th text the gateway got (waiting for it up to 10 s)."""
    deadline = time.monotonic() + 10
    while len(sms_texts(sms_dir)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    code = re.search(r"^(\d{6}) is your verification code", sms_texts(sms_dir)[count - 1], re.M).group(1)
    hygiene.register("delivered code", code)
    return code


class Setup:
    def __init__(self, daemon, mail: mta.LocalMTA, sms_dir: Path):
        self.d, self.mail, self.sms_dir = daemon, mail, sms_dir

    def sms(self) -> list[str]:
        return sms_texts(self.sms_dir)

    def set_sms_mode(self, mode: str) -> None:
        (self.sms_dir / "mode").write_text(mode)

    def mail_code(self, address: str = ALICE, index: int = -1, count: int = 1) -> str:
        code = mta.code_in(self.mail.wait_for(address, count, codes_only=True)[index])
        hygiene.register("delivered code", code)
        return code

    def sms_code(self, count: int = 1) -> str:
        return sms_code(self.sms_dir, count)

    def codes_sent(self, address: str = ALICE) -> int:
        return len(self.mail.messages(address, codes_only=True))

    def add_email(self, user: str, address: str = ALICE, prefer: bool = True) -> None:
        before = self.codes_sent(address)
        r = self.d.cli("method", "add", "email", address, "--user", user)
        assert r.returncode == 0 and re.search(r"A code was sent to .\*\*\*@example.org", r.stdout), r
        code = self.mail_code(address, count=before + 1)
        self.d.cli("method", "confirm", "email", code, "--user", user, check=True)
        if prefer:
            self.d.cli("method", "prefer", "email", "--user", user, check=True)

    def add_sms(self, user: str, prefer: bool = True) -> None:
        before = len(self.sms())
        r = self.d.cli("method", "add", "sms", PHONE, "--user", user)
        assert r.returncode == 0, r
        self.d.cli("method", "confirm", "sms", self.sms_code(before + 1), "--user", user, check=True)
        if prefer:
            self.d.cli("method", "prefer", "sms", "--user", user, check=True)


@pytest.fixture
def setup(daemon_factory, tmp_path):
    mail = mta.LocalMTA()
    script, sms_dir = make_sms_gateway(tmp_path)
    offset = tmp_path / "clock-offset"
    offset.write_text("0\n")
    d = daemon_factory("optional", extra_config=(
        "methods = totp email sms\nemail_from = mfagate@example.org\n"
        f"sms_command = {script}\nmax_failures = 20\n"), start=False,
        # A fixed seed for the daemon's random bytes: which codes go out is then known to differ
        # (test_resend_kills_the_old_code_and_is_rate_limited), not left to chance.
        daemon_args=["--clock-offset-file", str(offset), "--random-seed", "test-delivery"])
    d.wrap = mail.wrap()
    d.start()
    s = Setup(d, mail, sms_dir)
    s.offset = offset
    try:
        yield s
    finally:
        d.stop()
        hygiene.capture("exim log", mail.exim_log())
        mail.close()


class Login:
    """One pam_authenticate through the real libpam, answered prompt by prompt."""

    def __init__(self, d, user: str, rounds: int = 8, silent: bool = False):
        svc = d.service()
        cmd = [str(PAM_DRIVER), str(d.confdir), svc, user] + ["--silent"] * silent + ["--answer", "-"] * rounds
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.started = time.monotonic()

    def prompt(self, timeout: float = 15) -> str:
        """Reads up to the next prompt (returned) or the result."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                return ""
            self.lines.append(line.rstrip("\n"))
            if line.startswith(("PROMPT_ECHO_OFF: ", "PROMPT_ECHO_ON: ")):
                return line.split(": ", 1)[1].rstrip("\n").rstrip()
            if line.startswith("RESULT: "):
                return ""
        raise AssertionError(f"no prompt within {timeout} s: {self.lines}")

    def answer(self, text: str) -> None:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def result(self) -> PamResult:
        out, _ = self.proc.communicate(timeout=30)
        text = "\n".join(self.lines) + "\n" + out
        hygiene.capture("pam_driver output", text)
        return PamResult(text)

    def messages(self, since: int = 0) -> str:
        """Everything shown so far, or only what came after line `since` (a len(self.lines) taken
        earlier), so that a check looks at the answer to one reply, not at any earlier one."""
        return "\n".join(self.lines[since:])


def test_email_code_logs_in_once_and_a_totp_code_works_at_the_same_prompt(setup):
    d = setup.d
    e = d.enroll("alice")
    setup.add_email("alice")
    listed = d.cli("method", "list", "--user", "alice", "--json", check=True).stdout
    assert '"preferred":"email"' in listed.replace(" ", "") and "a***@example.org" in listed
    assert ALICE not in listed, "addresses are shown masked"

    sent = setup.codes_sent()
    login = Login(d, "alice")
    assert login.prompt() == "Code sent to a***@example.org:"
    assert "Type resend for a new code" in login.messages()
    code = setup.mail_code(count=sent + 1)  # exim delivers in the background: wait for it
    login.answer(code)
    assert login.result().result == "PAM_SUCCESS"

    # The same code again: single use. A new code goes out; the old one is wrong, a TOTP code works.
    again = Login(d, "alice")
    assert again.prompt().startswith("Code sent to")
    again.answer(code)
    assert again.prompt().startswith("Code sent to")
    assert "That code is not right. 2 tries left." in again.messages()
    again.answer(oathtool_totp(e["secret"]))
    assert again.result().result == "PAM_SUCCESS"
    log = d.log()
    assert "delivery method=email purpose=login result=sent to=a***@example.org user=alice" in log
    assert ALICE not in log, "the daemon logs the masked address only"
    assert 'reason="email code"' in log


def test_a_silent_email_login_gets_the_prompts_but_no_info_or_error_text(setup):
    """PAM_SILENT (issue 19, part 4): "Type resend…" (info) and "That code is not right" (error)
    are dropped; the prompt, which names where the code went, still comes, and the code works."""
    d = setup.d
    d.enroll("alice")
    setup.add_email("alice")
    sent = setup.codes_sent()
    login = Login(d, "alice", silent=True)
    assert login.prompt() == "Code sent to a***@example.org:"
    code = setup.mail_code(count=sent + 1)
    login.answer(wrong_code(code))
    assert login.prompt() == "Code sent to a***@example.org:"
    login.answer(code)
    r = login.result()
    assert r.result == "PAM_SUCCESS", r
    assert all(m.startswith("PROMPT_ECHO_OFF: ") for m in r.messages), r
    assert len(r.messages) == 2


def test_resend_kills_the_old_code_and_is_rate_limited(setup):
    d = setup.d
    d.enroll("alice")
    setup.add_email("alice")
    sent = setup.codes_sent()
    login = Login(d, "alice")
    assert login.prompt().startswith("Code sent to")
    first = setup.mail_code(count=sent + 1)
    login.answer("resend")
    assert login.prompt().startswith("Code sent to")
    second = setup.mail_code(count=sent + 2)
    # The daemon's random bytes come from a fixed seed (the fixture): three distinct codes, always.
    assert len({first, second}) == 2, "a resend sends a new code"
    login.answer("resend")
    assert login.prompt().startswith("Code sent to")
    third = setup.mail_code(count=sent + 3)
    assert len({first, second, third}) == 3
    # A fourth code within 10 minutes is refused; the last one still works.
    login.answer("resend")
    assert login.prompt().startswith("Code sent to")
    assert "3 codes were sent in the last 10 minutes" in login.messages()
    time.sleep(0.5)
    assert setup.codes_sent() == sent + 3
    for old in (first, second):
        mark = len(login.lines)
        login.answer(old)
        assert login.prompt().startswith("Code sent to"), "the old code died"
        assert "not right" in login.messages(since=mark)
    login.answer(third)
    assert login.result().result == "PAM_SUCCESS"
    assert "result=\"not sent (rate limit)\"" in d.log()


def test_a_code_expires_after_5_minutes(setup):
    d = setup.d
    d.enroll("alice")
    setup.add_email("alice")
    sent = setup.codes_sent()
    login = Login(d, "alice")
    assert login.prompt().startswith("Code sent to")
    code = setup.mail_code(count=sent + 1)
    setup.offset.write_text("301\n")  # the daemon's clock moves on 5 minutes and 1 second
    os.kill(d.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "configuration reloaded" not in d.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    login.answer(code)
    assert login.result().result == "PAM_AUTH_ERR"


def test_three_wrong_answers_kill_the_code(setup):
    d = setup.d
    d.enroll("alice")
    setup.add_email("alice")
    sent = setup.codes_sent()
    login = Login(d, "alice")
    assert login.prompt().startswith("Code sent to")
    code = setup.mail_code(count=sent + 1)
    for left in (2, 1):
        login.answer(wrong_code(code))
        assert login.prompt().startswith("Code sent to")
        assert f"That code is not right. {left} tries left." in login.messages()
    login.answer(wrong_code(code))
    assert login.result().result == "PAM_AUTH_ERR"
    assert d.log().count('reason="wrong code"') >= 1


def test_recovery_code_at_the_email_prompt_and_its_notice(setup):
    d = setup.d
    e = d.enroll("alice")
    setup.add_email("alice")
    login = Login(d, "alice")
    assert login.prompt().startswith("Code sent to")
    login.answer(e["recovery_codes"][0])
    assert login.result().result == "PAM_SUCCESS"
    notices = [m for m in setup.mail.wait_for(ALICE, 5) if "Security notice" in m]
    assert any("a recovery code was used" in m for m in notices), notices


def test_sms_through_the_gateway_script(setup):
    d = setup.d
    d.enroll("alice")
    setup.add_sms("alice")
    login = Login(d, "alice")
    assert login.prompt() == "Code sent to +*********5678:"
    code = setup.sms_code(count=2)
    login.answer(code)
    assert login.result().result == "PAM_SUCCESS"
    text = setup.sms()[1]
    assert "ARGS 0\n" in text, "the number is never in argv"
    assert f"TO {PHONE}\n" in text and "USER alice\n" in text
    assert "delivery method=sms purpose=login result=sent to=+*********5678 user=alice" in d.log()


def test_failing_gateway_gives_one_clear_line_and_the_app_still_works(setup):
    d = setup.d
    e = d.enroll("alice")
    setup.add_sms("alice")
    setup.set_sms_mode("fail")
    login = Login(d, "alice")
    assert login.prompt() == "Verification code:"
    assert "ERROR_MSG: Could not send a code to +*********5678. Enter a code from your authenticator app or a recovery code." in login.messages()
    login.answer(oathtool_totp(e["secret"]))
    assert login.result().result == "PAM_SUCCESS"
    assert "delivery method=sms purpose=login result=\"failed (exit 3)\"" in d.log()


def test_hanging_gateway_is_killed_and_holds_up_no_other_login(setup):
    d = setup.d
    e = d.enroll("alice")
    bob = d.enroll("bob")
    setup.add_sms("alice")
    setup.set_sms_mode("hang")
    login = Login(d, "alice")
    # While alice's delivery hangs, bob logs in with his app at once.
    time.sleep(0.3)
    started = time.monotonic()
    assert d.pam("bob", oathtool_totp(bob["secret"])).result == "PAM_SUCCESS"
    assert time.monotonic() - started < 2
    assert login.prompt() == "Verification code:"
    waited = time.monotonic() - login.started
    assert 4.5 < waited < 9, f"the delivery is bounded at 5 s, below the shim's 10 s ({waited:.1f} s)"
    assert "Could not send a code" in login.messages()
    login.answer(oathtool_totp(e["secret"]))
    assert login.result().result == "PAM_SUCCESS"
    assert "failed (no answer within 5 s, killed)" in d.log()


def test_header_injection_and_other_non_addresses_are_refused(setup):
    d = setup.d
    d.enroll("alice")
    for bad in ["alice@example.org\nBcc: mallory@example.net", "alice@example.org\r\nSubject: hi",
                "Alice <alice@example.org>", "alice@example.org, mallory@example.net", "alice", "alice@localhost",
                '"a b"@example.org']:
        r = d.cli("method", "add", "email", bad, "--user", "alice")
        assert r.returncode == 1, (bad, r)
        assert ("line break" in r.stderr) if "\n" in bad else ("not" in r.stderr and "email address" in r.stderr), r.stderr
        assert "\n" not in r.stderr.rstrip("\n"), "the address is echoed with the line break escaped"
    for bad in ["+0123456789", "4915112345678", "+49 151 abc", "+1234"]:
        r = d.cli("method", "add", "sms", bad, "--user", "alice")
        assert r.returncode == 1 and "E.164" in r.stderr, (bad, r)
    time.sleep(0.3)
    assert setup.mail.all_messages() == [] and setup.sms() == []
    assert "Bcc" not in d.log() and "mallory" not in d.log()


def test_notices_on_each_change(setup):
    d = setup.d
    e = d.enroll("alice")
    setup.add_email("alice", prefer=False)
    setup.add_sms("alice", prefer=False)
    d.cli("method", "prefer", "sms", "--user", "alice", check=True)
    d.cli("recovery-codes", "--regenerate", "--user", "alice", check=True)
    d.cli("method", "remove", "sms", "--user", "alice", check=True)
    # The address changes: the old one hears of it too.
    r = d.cli("method", "add", "email", "alice.new@example.org", "--user", "alice")
    assert r.returncode == 0, r
    d.cli("method", "confirm", "email", setup.mail_code("alice.new@example.org"), "--user", "alice", check=True)
    d.cli("disable", "--user", "alice", "--code", oathtool_totp(e["secret"]), check=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        old = [m for m in setup.mail.messages(ALICE) if "Security notice" in m]
        new = [m for m in setup.mail.messages("alice.new@example.org") if "Security notice" in m]
        if len(old) >= 6 and len(new) >= 2:
            break
        time.sleep(0.1)
    subjects = [re.search(r"(?m)^Subject: Security notice for alice@\S+: (.*)$", m).group(1) for m in old]
    # One notice per change; exim delivers each in the background, so their order may vary.
    assert sorted(subjects) == sorted(["the login method email (a***@example.org) was added or changed",
                        "the login method sms (+*********5678) was added or changed",
                        "the preferred login method is now sms",
                        "new recovery codes were made (the old ones no longer work)",
                        "the login method sms (+*********5678) was removed",
                        "the login method email (a***@example.org) was added or changed"]), subjects
    assert sorted(re.search(r"(?m)^Subject: .*: (.*)$", m).group(1) for m in new) == [
        "multi-factor login was turned off", "the login method email (a***@example.org) was added or changed"]
    for m in old + new:
        assert "Auto-Submitted: auto-generated" in m and "From: mfagate@example.org" in m
        assert not re.search(r"(?m)^    \d{6}$", m), "a notice carries no code"


def test_a_method_the_policy_does_not_allow_can_be_neither_added_nor_used(setup):
    d = setup.d
    e = d.enroll("alice")
    setup.add_email("alice")
    sent = setup.codes_sent()
    d.write_config("optional", "methods = totp\nmax_failures = 20\n")
    os.kill(d.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "configuration reloaded" not in d.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    r = d.cli("method", "add", "sms", PHONE, "--user", "alice")
    assert r.returncode == 1 and "does not allow sms" in r.stderr, r
    login = Login(d, "alice")
    assert login.prompt() == "Verification code:", "email is not used: the app is asked for"
    login.answer(oathtool_totp(e["secret"]))
    assert login.result().result == "PAM_SUCCESS"
    listed = d.cli("method", "list", "--user", "alice", check=True).stdout
    assert "not allowed on this host now" in listed
    time.sleep(0.3)
    assert setup.codes_sent() == sent


def test_a_user_adds_email_with_proof_and_may_not_touch_another_users(setup):
    d = setup.d
    e = d.enroll("nobody")
    d.enroll("alice")
    r = d.cli("method", "add", "email", "nobody@example.org", "--code", "000000", user="nobody")
    assert r.returncode == 1 and "not a current code" in r.stderr, r
    r = d.cli("method", "add", "email", "nobody@example.org", "--code", oathtool_totp(e["secret"]), user="nobody")
    assert r.returncode == 0 and "Not confirmed yet" in r.stdout, r
    wrong = wrong_code(setup.mail_code("nobody@example.org"))
    r = d.cli("method", "confirm", "email", wrong, user="nobody")
    assert r.returncode == 1 and "2 tries left" in r.stderr
    d.cli("method", "confirm", "email", setup.mail_code("nobody@example.org"), user="nobody", check=True)
    r = d.cli("method", "list", "--user", "alice", user="nobody")
    assert r.returncode == 1 and "only manage your own" in r.stderr
    r = d.cli("method", "remove", "email", "--user", "alice", "--code", "1", user="nobody")
    assert r.returncode == 1
    # Removing the last method (the app) follows disable: a code is needed, then everything goes.
    r = d.cli("method", "remove", "totp", "--code", "000000", user="nobody")
    assert r.returncode == 1
    assert (d.state / "users" / "nobody").exists()


def test_ssh_login_with_a_mailed_code(daemon_factory, tmp_path):
    from sshd_sandbox import SshdSandbox, ssh_login
    from mfagate_harness import SHIM
    password = "correct horse 42"
    mail = mta.LocalMTA()
    d = daemon_factory("required", extra_config="methods = totp email\n", run_as="nobody", start=False)
    d.wrap = mail.wrap()
    d.start()
    try:
        s = Setup(d, mail, tmp_path)
        d.enroll("mfauser")
        s.add_email("mfauser", address="mfauser@example.org")
        stack = ["auth required pam_unix.so", f"auth required {SHIM} socket={d.socket} timeout=10"]
        with SshdSandbox(stack, [("mfauser", password)], tmp_path) as box:
            try:
                before = s.codes_sent("mfauser@example.org")
                r = ssh_login(box.port, "mfauser", [(r"[Pp]assword:", password),
                                                    (r"Code sent to m\*\*\*@example.org:",
                                                     lambda: s.mail_code("mfauser@example.org", count=before + 1))])
                assert r.ok, (r, d.log())
                assert any(p.endswith("Code sent to m***@example.org:") for p in r.prompts), r.prompts
            finally:
                hygiene.capture("sshd log", box.log_text())
                hygiene.capture("syslog in the sshd sandbox", box.syslog_text())
    finally:
        d.stop()
        hygiene.capture("exim log", mail.exim_log())
        mail.close()


def test_the_sandboxed_daemon_mails_through_the_relay_socket(daemon_factory, tmp_path):
    """Under systemd the daemon has NoNewPrivileges: exim's setuid sendmail cannot queue a message
    from inside it (the login says so in one line and the app still works). Through
    `mfagate relay` and a socket-activated sender (systemd/mfagate-mail.socket, played here by the
    real systemd-socket-activate with the unit's own ExecStart line) the same daemon mails fine."""
    import shutil
    from mfagate_harness import MFAGATE
    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        pytest.skip("systemd-socket-activate (package systemd) is not installed")
    unit = (Path(__file__).resolve().parents[2] / "systemd/mfagate-mail@.service").read_text()
    exec_start = re.search(r"(?m)^ExecStart=/bin/sh -c '(.*)'$", unit).group(1)
    mail = mta.LocalMTA()
    relay_sock = mail.dir / "mail.sock"
    relay = subprocess.Popen(mail.wrap() + [activate, "-l", str(relay_sock), "--accept", "--inetd", "/bin/sh", "-c", exec_start],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 5
        while not relay_sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.chmod(relay_sock, 0o666)
        d = daemon_factory("optional", extra_config="methods = totp email\n", run_as="nobody", start=False)
        relay_client = d.readable_copy(MFAGATE)
        d.config.write_text(d.config.read_text() + f"email_command = {relay_client} relay {relay_sock}\n")
        d.wrap = mail.wrap() + ["setpriv", "--no-new-privs"]
        d.start()
        s = Setup(d, mail, tmp_path)
        e = d.enroll("alice")
        s.add_email("alice")
        login = Login(d, "alice")
        assert login.prompt() == "Code sent to a***@example.org:"
        login.answer(s.mail_code(count=2))
        assert login.result().result == "PAM_SUCCESS"
        assert "no_new_privs:\t1" in Path(f"/proc/{d.proc.pid}/status").read_text().replace("NoNewPrivs", "no_new_privs")

        # The same daemon with the default email_command (exim's setuid sendmail, called directly).
        d.stop()
        d.config.write_text(d.config.read_text().replace(f"email_command = {relay_client} relay {relay_sock}\n", ""))
        d.start()
        login = Login(d, "alice")
        assert login.prompt() == "Verification code:"
        assert "Could not send a code to a***@example.org" in login.messages()
        login.answer(oathtool_totp(e["secret"]))
        assert login.result().result == "PAM_SUCCESS"
        assert 'purpose=login result="failed (exit' in d.log()
    finally:
        relay.terminate()
        relay.wait(timeout=10)
        hygiene.capture("relay stderr", relay.stderr.read())
        hygiene.capture("exim log", mail.exim_log())
        mail.close()


def test_a_user_without_an_app_enrolls_by_email_alone(setup):
    """No authenticator app: the email method is the user's first factor, confirmed by its code, with
    recovery codes shown once. Removing the last method follows `disable` (a code, then all goes)."""
    d = setup.d
    addr = "nobody@example.org"
    r = d.cli("method", "add", "email", addr, user="nobody")  # nothing to prove yet
    assert r.returncode == 0 and "Not confirmed yet" in r.stdout, r
    r = d.cli("method", "confirm", "email", setup.mail_code(addr), user="nobody")
    assert r.returncode == 0 and "Enrolled nobody with email codes" in r.stdout, r
    recovery = re.findall(r"(?m)^  (\S{4}-\S{4}-\S{4})$", r.stdout)
    assert len(recovery) == 10, r.stdout
    hygiene.register("recovery code", *recovery)
    status = d.cli("status", "--json", user="nobody", check=True).stdout
    assert '"method":"email"' in status.replace(" ", ""), status
    assert "app none" in (d.state / "users" / "nobody").read_text()

    login = Login(d, "nobody")
    assert login.prompt() == "Code sent to n***@example.org:"
    code = setup.mail_code(addr, count=2)
    login.answer(wrong_code(code))
    assert login.prompt() == "Code sent to n***@example.org:"
    login.answer(code)
    assert login.result().result == "PAM_SUCCESS"
    login = Login(d, "nobody")
    assert login.prompt().startswith("Code sent to")
    login.answer(recovery[0])
    assert login.result().result == "PAM_SUCCESS"

    r = d.cli("method", "remove", "email", "--code", "000000", user="nobody")
    assert r.returncode == 1 and (d.state / "users" / "nobody").exists()
    r = d.cli("method", "remove", "email", "--code", recovery[1], user="nobody")
    assert r.returncode == 0 and "disabled" in r.stdout, r
    assert not (d.state / "users" / "nobody").exists()


def test_removing_the_app_keeps_email_and_kills_the_old_secret(setup):
    d = setup.d
    e = d.enroll("alice")
    setup.add_email("alice", prefer=False)
    r = d.cli("method", "remove", "totp", "--user", "alice")
    assert r.returncode == 0 and "logins use email codes now" in r.stdout, r
    stored = (d.state / "users" / "alice").read_text()
    assert "app none" in stored and e["secret"] not in stored
    listed = d.cli("method", "list", "--user", "alice", "--json", check=True).stdout
    assert '"method":"totp"' not in listed.replace(" ", "") and '"preferred":"email"' in listed.replace(" ", "")
    sent = setup.codes_sent()
    login = Login(d, "alice")
    assert login.prompt().startswith("Code sent to")
    login.answer(oathtool_totp(e["secret"]))
    assert login.prompt().startswith("Code sent to"), "the old app's code no longer works"
    login.answer(setup.mail_code(count=sent + 1))
    assert login.result().result == "PAM_SUCCESS"


def test_enrollment_at_login_may_choose_email_instead_of_an_app(daemon_factory):
    mail = mta.LocalMTA()
    d = daemon_factory("required", extra_config="methods = totp email\nemail_address_pattern = %u@example.org\n"
                                                "enroll_at_login = yes\n", start=False)
    d.wrap = mail.wrap()
    d.start()
    try:
        s = Setup(d, mail, Path(d.dir))
        login = Login(d, "carol")
        assert login.prompt() == "Verification code:"
        assert "No app? Type email to get codes at c***@example.org instead" in login.messages()
        login.answer("carol@example.org, mallory@example.net")
        assert login.prompt() == "Verification code:"
        assert "is not a plain email address" in login.messages()
        login.answer("email")
        assert login.prompt() == "Code sent to c***@example.org:"
        login.answer(wrong_code(s.mail_code("carol@example.org")))
        assert login.prompt() == "Code sent to c***@example.org:"
        login.answer(s.mail_code("carol@example.org"))
        assert login.prompt() == "Press Enter after you saved them"
        shown = login.messages()
        recovery = re.findall(r"(?m)^TEXT_INFO:\s+(\S{4}-\S{4}-\S{4})$|^\s+(\S{4}-\S{4}-\S{4})$", shown)
        codes = [a or b for a, b in recovery]
        assert len(codes) == 10, shown  # shown in the conversation on purpose, once: not registered for hygiene
        login.answer("")
        assert login.result().result == "PAM_SUCCESS"
        stored = (d.state / "users" / "carol").read_text()
        assert "email carol@example.org\nprefer email\napp none\n" in stored
        # The next login sends a code there.
        again = Login(d, "carol")
        assert again.prompt() == "Code sent to c***@example.org:"
        again.answer(s.mail_code("carol@example.org", count=2))
        assert again.result().result == "PAM_SUCCESS"
    finally:
        d.stop()
        hygiene.capture("exim log", mail.exim_log())
        mail.close()
