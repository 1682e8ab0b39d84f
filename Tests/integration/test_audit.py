# SPDX-License-Identifier: Apache-2.0
"""`mode = audit` (issue 19, part 5) through the real libpam: nobody is asked anything, every login
gets PAM_IGNORE, and the daemon records what `required` would have done (code, enroll, refuse,
grace, locked) with the deciding rule; `mfagate report` (root) summarises it, filtered by the
daemon's (test) clock. The records are the daemon's own file: damage in it is skipped, never fatal."""
from __future__ import annotations

import json
import os
import signal
import time

from mfagate_harness import oathtool_totp, wrong_code


def report(d, *args: str) -> dict:
    return json.loads(d.cli("report", "--json", *args, check=True).stdout)


def user_rows(rep: dict, user: str) -> list[dict]:
    return [u for u in rep["users"] if u["user"] == user]


def test_audit_mode_asks_nobody_and_records_what_required_would_do(daemon_factory):
    d = daemon_factory("audit", "exempt_users = carol\n")
    alice = d.enroll("alice")
    for user in ("alice", "bob", "carol", "no-such-user-19c"):
        r = d.pam(user, "000000", rhost="192.0.2.7")
        assert r.result == "PAM_IGNORE" and r.messages == [], (user, r)
    # A local login and another service count too.
    assert d.pam("bob", service=d.service("sudo")).result == "PAM_IGNORE"
    rep = report(d)
    assert rep["mode"] == "audit" and rep["logins"] == 5 and rep["skipped_lines"] == 0
    assert set(rep["would_refuse"]) == {"bob", "-"}, rep
    [a] = user_rows(rep, "alice")
    assert a["decision"] == "code" and a["rhosts"] == ["192.0.2.7"] and a["rule"].endswith("mode = audit")
    [c] = user_rows(rep, "carol")
    assert c["decision"] == "ignore" and c["rule"] == "config line 4: exempt_users = carol"
    [b] = user_rows(rep, "bob")
    assert b["decision"] == "refuse" and b["logins"] == 2 and set(b["services"]) == {"mfa-test", "sudo"}
    assert set(b["rhosts"]) == {"192.0.2.7", "local"}
    svc = {s["service"]: s for s in rep["services"]}
    assert svc["mfa-test"]["refuse"] == 2 and svc["mfa-test"]["code"] == 1 and svc["sudo"]["refuse"] == 1
    # The text form names who would be refused, and the rule.
    text = d.cli("report", check=True).stdout
    assert "Would be refused (2 user(s)):" in text and "  bob  2 login(s)" in text and "mode = audit" in text
    # Logged per login, and no code typed anywhere (none was asked for) nor the secret in the file.
    assert d.log().count('would=refuse') >= 3
    records = (d.state / "audit").read_text()
    assert alice["secret"] not in records and "no-such-user-19c" not in records, "a typed name that is no account is never kept"
    assert oathtool_totp(alice["secret"]) not in records
    assert oct((d.state / "audit").stat().st_mode & 0o777) == "0o600"


def test_audit_mode_would_enroll_grace_and_locked(daemon_factory):
    d = daemon_factory("required", "max_failures = 2\n")
    code = oathtool_totp(d.enroll("alice")["secret"])
    for _ in range(2):
        assert d.pam("alice", wrong_code(code)).result == "PAM_AUTH_ERR"
    assert d.check("alice")["decision"] == "locked"
    d.stop()
    # The same state, now audited: the locked user is not asked (not even the lockout's prompt).
    d.write_config("audit", "max_failures = 2\nrequire_users = bob\nenroll_at_login = yes\n")
    d.start()
    assert d.pam("alice", "").result == "PAM_IGNORE"
    r = d.pam("bob", "")
    assert r.result == "PAM_IGNORE" and r.messages == [], "no enrollment screen in audit mode"
    d.stop()
    d.write_config("audit", "grace_period = 7d\n")
    d.start()
    r = d.pam("carol", "")
    assert r.result == "PAM_IGNORE" and r.messages == [], "no grace notice in audit mode"
    assert not (d.state / "seen").exists(), "audit mode starts nobody's grace period"
    rep = report(d)
    decisions = {u["user"]: u["decision"] for u in rep["users"]}
    assert decisions == {"alice": "locked", "bob": "enroll", "carol": "grace"}, rep
    assert rep["would_enroll"] == ["bob"]
    [a] = user_rows(rep, "alice")
    assert a["rule"].startswith("config line") and "max_failures = 2" in a["rule"]


def test_report_since_follows_the_daemon_clock(daemon_factory, tmp_path):
    offset = tmp_path / "offset"
    offset.write_text("0\n")
    d = daemon_factory("audit", daemon_args=["--clock-offset-file", str(offset)])
    assert d.pam("bob", "").result == "PAM_IGNORE"
    offset.write_text(f"{8 * 86400}\n")
    os.kill(d.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "reloaded" not in d.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert d.pam("carol", "").result == "PAM_IGNORE"
    assert {u["user"] for u in report(d)["users"]} == {"bob", "carol"}
    recent = report(d, "--since", "7d")
    assert {u["user"] for u in recent["users"]} == {"carol"} and recent["logins"] == 1
    assert recent["from"] > time.time() + 86400 - 600, "the window is the daemon's clock, not the CLI's"
    bad = d.cli("report", "--since", "seven days")
    assert bad.returncode == 64 and "--since must be a duration" in bad.stderr


def test_report_is_root_only(daemon_factory):
    d = daemon_factory("audit")
    d.pam("bob", "")
    out = d.cli("report", "--json", user="nobody")
    assert out.returncode == 1 and "only root" in out.stderr and "bob" not in out.stdout


def test_damaged_records_are_skipped_and_never_stop_the_daemon(daemon_factory):
    d = daemon_factory("audit")
    assert d.pam("bob", "").result == "PAM_IGNORE"
    d.stop()
    with open(d.state / "audit", "ab") as f:
        f.write(b"garbage\x1b[2J line\nv1\tnot-a-time\tbob\tx\ty\trefuse\tr\tr\n")
        f.write(b"v1\t1\tbob\tss")  # torn by a crash in the middle of an append
    (d.state / "audit.1").write_bytes(b"\xff\xfe binary\n" + os.urandom(3000).replace(b"\n", b"."))
    os.chmod(d.state / "audit.1", 0o600)
    d.start()
    assert d.pam("carol", "").result == "PAM_IGNORE"
    rep = report(d)
    assert {u["user"] for u in rep["users"]} >= {"bob", "carol"}
    assert rep["skipped_lines"] == 5 and rep["logins"] == 2 and rep["problem"] == "", rep
    # The torn line was ended before the next append, so carol's record is whole.
    assert any(line.split("\t")[2] == "carol" for line in (d.state / "audit").read_text().splitlines() if line.startswith("v1\t"))


def test_hostile_service_and_rhost_are_stored_escaped(daemon_factory):
    d = daemon_factory("audit")
    evil = "10.0.0.1\x1b]0;owned\x07\tdecision"
    d.pam("bob", "", rhost=evil)
    lines = [l for l in (d.state / "audit").read_text().splitlines() if l.startswith("v1\t")]
    assert len(lines) == 1 and "\x1b" not in lines[0] and "\x07" not in lines[0]
    assert len(lines[0].split("\t")) == 8
    text = d.cli("report", check=True).stdout
    assert "\x1b" not in text and "\\u{1b}]0;owned" in text


def test_an_ssh_login_in_audit_mode_is_not_asked_for_a_code(daemon_factory, tmp_path):
    """The real sshd and ssh: password, then pam_mfagate (required) in audit mode: no code prompt,
    the login goes through, and the record says an enrolled user would have been asked."""
    from mfagate_harness import SHIM
    from sshd_sandbox import SshdSandbox, ssh_login
    password = "correct horse 42"
    d = daemon_factory("audit", run_as="nobody")
    stack = ["auth required pam_unix.so", f"auth required {SHIM} socket={d.socket} timeout=5"]
    with SshdSandbox(stack, [("mfauser", password), ("plainuser", password)], tmp_path) as box:
        d.enroll("mfauser")
        for user in ("mfauser", "plainuser"):
            r = ssh_login(box.port, user, [(r"[Pp]assword:", password)])
            assert r.ok, (r, box.log_text()[-2000:], d.log())
            assert not any("code" in p.lower() for p in r.prompts), r.prompts
    decisions = {u["user"]: u["decision"] for u in report(d)["users"]}
    assert decisions == {"mfauser": "code", "plainuser": "refuse"}, decisions
