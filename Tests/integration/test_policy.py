# SPDX-License-Identifier: Apache-2.0
"""Host policy through the real daemon and the real libpam: every rule and precedence case, and
`mfagate check` agreeing with what a login actually gets for the same user, service and address.
Users and groups exist only for the daemon (a private mount namespace with temp /etc/passwd and
/etc/group), resolved through NSS as LDAP/SSSD users would be."""
import os
import re
import signal
import time

import pytest

from mfagate_harness import oathtool_totp, wrong_code

ACCOUNTS = {"alice": ["admins"], "bob": ["robots"], "carol": ["robots"], "dave": ["admins"],
            "erin": [], "frank": ["admins", "robots"]}
POLICY = """require_groups = admins
exempt_groups = robots
require_users = carol
exempt_users = dave
services = sshd sudo
trusted_networks = 10.0.0.0/8 fd00::/8
max_failures = 0
"""

# (user, service, rhost) -> decision; enrolled users: alice, dave, erin
CASES = [
    ("alice", "sshd", "192.0.2.1", "code"),      # require_groups
    ("alice", "sudo", "", "code"),               # local, trust_local = no
    ("alice", "login", "192.0.2.1", "ignore"),   # services
    ("alice", "sshd", "10.1.2.3", "ignore"),     # trusted IPv4
    ("alice", "sshd", "fd00::5", "ignore"),      # trusted IPv6
    ("alice", "sshd", "2001:db8::5", "code"),    # untrusted IPv6
    ("alice", "sshd", "ten.example.org", "code"),  # host names are never trusted
    ("bob", "sshd", "192.0.2.1", "ignore"),      # exempt_groups
    ("carol", "sshd", "192.0.2.1", "refuse"),    # require_users beats exempt group; not enrolled
    ("dave", "sshd", "192.0.2.1", "ignore"),     # exempt_users beats require group
    ("erin", "sshd", "192.0.2.1", "code"),       # mode optional, enrolled
    ("frank", "sshd", "192.0.2.1", "refuse"),    # required group beats exempt group
]
PAM_FOR = {"code": "PAM_AUTH_ERR", "ignore": "PAM_IGNORE", "refuse": "PAM_AUTH_ERR", "grace": "PAM_IGNORE",
           "locked": "PAM_MAXTRIES"}


@pytest.fixture
def policy_daemon(daemon_factory):
    d = daemon_factory("optional", POLICY, accounts=ACCOUNTS)
    for name in ("alice", "dave", "erin"):
        d.enroll(name)
    return d


@pytest.mark.parametrize("user,service,rhost,expected", CASES)
def test_check_agrees_with_an_actual_login(policy_daemon, user, service, rhost, expected):
    d = policy_daemon
    checked = d.check(user, service, rhost)
    assert checked["decision"] == expected, checked
    svc = d.service(service)
    r = d.pam(user, "000000", service=svc, rhost=rhost or None)
    prompted = any(m.startswith("PROMPT_ECHO_OFF: Verification code") for m in r.messages)
    assert prompted == (expected == "code"), r
    assert r.result == PAM_FOR[expected], (r, checked)


def test_a_user_nss_does_not_know_is_refused_by_check_and_at_login(policy_daemon):
    # Issue 14: once "ignore" in optional mode (and enrollment offered); now no account, no opinion
    # to give but a refusal, and nothing remembered.
    d = policy_daemon
    out = d.cli("check", "--user", "ghost", "--json")
    assert out.returncode == 1 and "no such account" in out.stderr, out
    r = d.pam("ghost", "000000", service=d.service("sshd"), rhost="192.0.2.1")
    assert r.result == "PAM_AUTH_ERR" and not r.messages, r


def test_check_names_the_rule_and_the_line(policy_daemon):
    d = policy_daemon
    assert d.check("bob")["rule"] == "config line 5: exempt_groups = robots"
    assert d.check("dave")["rule"] == "config line 7: exempt_users = dave"
    assert d.check("alice", "login")["rule"] == "config line 8: services = sshd sudo"
    assert d.check("alice", rhost="10.9.9.9")["rule"] == "config line 9: trusted_networks = 10.0.0.0/8 fd00::/8"
    human = d.cli("check", "--user", "frank", "--rhost", "192.0.2.1").stdout
    assert "frank via sshd from 192.0.2.1: refuse" in human and "config line 4: require_groups = admins" in human


def test_check_is_root_only_and_has_no_side_effects(daemon_factory):
    d = daemon_factory("required", "grace_period = 7d\n")
    out = d.cli("check", "--user", "alice", "--json", user="nobody")
    assert out.returncode == 1 and "only root" in out.stderr
    assert d.check("alice")["decision"] == "grace"
    assert not (d.state / "seen").exists(), "check must not start anyone's grace period"


def test_grace_period_before_and_after_the_deadline(daemon_factory):
    d = daemon_factory("required", "grace_period = 7d\n")
    r = d.pam("alice", "")
    assert r.result == "PAM_IGNORE", r
    notice = [m for m in r.messages if m.startswith("TEXT_INFO:")]
    assert notice and "mfagate enroll" in notice[0] and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", notice[0]), r
    assert "PROMPT_ECHO_ON: Press Enter to continue: " in r.messages
    c = d.check("alice")
    assert c["decision"] == "grace" and c["until"] > time.time() + 6 * 86400
    # Six days later (daemon clock offset), still in grace; eight days later, refused.
    d.stop()
    d.daemon_args = ["--clock-offset", str(6 * 86400)]
    d.start()
    assert d.pam("alice", "").result == "PAM_IGNORE"
    d.stop()
    d.daemon_args = ["--clock-offset", str(8 * 86400)]
    d.start()
    r = d.pam("alice", "")
    assert r.result == "PAM_AUTH_ERR" and not r.messages, r
    assert d.check("alice")["decision"] == "refuse"
    # Enrolled users are never in grace: they give a code.
    e = d.enroll("bob")
    assert d.check("bob")["decision"] == "code"


def test_lockout_then_unlock_and_it_survives_a_restart(daemon_factory):
    d = daemon_factory("optional", "max_failures = 3\nfailure_window = 15m\nlockout = 15m\n")
    e = d.enroll("alice")
    for _ in range(3):
        assert d.pam("alice", "000000", rhost="192.0.2.7").result == "PAM_AUTH_ERR"
    assert "user locked out" in d.log() and "user=alice" in d.log() and "rhost=192.0.2.7" in d.log()
    # Locked: the prompt looks the same and a right code gets the same answer as a wrong one.
    right = d.pam("alice", oathtool_totp(e["secret"]), rhost="192.0.2.7")
    wrong = d.pam("alice", "123456", rhost="192.0.2.7")
    assert right.result == wrong.result == "PAM_MAXTRIES"
    assert right.messages == wrong.messages == ["PROMPT_ECHO_OFF: Verification code: "]
    c = d.check("alice")
    assert c["decision"] == "locked" and c["rule"] == "config line 4: max_failures = 3"
    d.stop(signal.SIGKILL)
    d.start()
    assert d.pam("alice", oathtool_totp(e["secret"])).result == "PAM_MAXTRIES", "the lock survives a restart"
    out = d.cli("unlock", "--user", "alice")
    assert out.returncode == 0 and "unlocked user alice" in out.stdout
    assert d.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    assert d.cli("unlock", "--user", "alice", user="nobody").returncode == 1


def test_a_right_code_clears_the_count(daemon_factory):
    d = daemon_factory("optional", "max_failures = 3\n")
    e = d.enroll("alice")
    assert d.pam("alice", "000000").result == "PAM_AUTH_ERR"
    assert d.pam("alice", "000001").result == "PAM_AUTH_ERR"
    assert d.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    assert d.pam("alice", "000002").result == "PAM_AUTH_ERR"
    assert d.check("alice")["decision"] == "code", "two failures after a success do not lock"


def test_one_address_cannot_lock_out_everyone(daemon_factory):
    d = daemon_factory("optional", "max_failures = 3\nmax_failures_per_rhost = 4\n")
    secrets = {u: d.enroll(u)["secret"] for u in ("u1", "u2", "u3", "u4", "u5")}
    attacker, legit = "192.0.2.66", "198.51.100.7"
    for u in ("u1", "u2", "u3", "u4"):
        assert d.pam(u, "000000", rhost=attacker).result == "PAM_AUTH_ERR"
    assert "address blocked" in d.log() and f"rhost={attacker}" in d.log()
    # Every further attempt from that address is refused unchecked, so it cannot reach 3 failures for anyone.
    for _ in range(5):
        assert d.pam("u5", "000000", rhost=attacker).result == "PAM_MAXTRIES"
    assert d.check("u5", rhost=attacker)["decision"] == "locked"
    assert d.check("u5", rhost=legit)["decision"] == "code"
    assert d.pam("u5", oathtool_totp(secrets["u5"]), rhost=legit).result == "PAM_SUCCESS"
    assert "unlocked address" in d.cli("unlock", "--rhost", attacker).stdout
    assert d.check("u1", rhost=attacker)["decision"] == "code"


def _away_from_step_edge():
    while time.time() % 30 > 25 or time.time() % 30 < 2:
        time.sleep(0.5)


def test_clock_drift_is_learnt_and_bounded(daemon_factory):
    d = daemon_factory("optional", "window = 1\nmax_failures = 0\n")
    e = d.enroll("alice")
    _away_from_step_edge()
    now = int(time.time())
    two_ahead = oathtool_totp(e["secret"], at=f"@{now + 60}")
    assert d.pam("alice", two_ahead).result == "PAM_AUTH_ERR", "two steps ahead is outside ±1"
    one_ahead = oathtool_totp(e["secret"], at=f"@{now + 30}")
    assert d.pam("alice", one_ahead).result == "PAM_SUCCESS"
    assert "drift 1" in (d.state / "users" / "alice").read_text()
    assert d.pam("alice", two_ahead).result == "PAM_SUCCESS", "the window now centres on the device's clock"


def test_print_shows_the_effective_configuration(tmp_path):
    import subprocess
    from mfagate_harness import MFAGATED
    conf = tmp_path / "m.conf"
    conf.write_text("mode = required\nexempt_groups = robots\n")
    out = subprocess.run([str(MFAGATED), "--config", str(conf), "--check-config", "--print"],
                         capture_output=True, text=True, check=True).stdout
    assert re.search(r"^mode = required\s+# line 1$", out, re.M)
    assert re.search(r"^exempt_groups = robots\s+# line 2$", out, re.M)
    assert re.search(r"^lockout = 15m\s+# default$", out, re.M)
    assert re.search(r"^max_failures = 5\s+# default$", out, re.M)


def test_sighup_does_not_drop_a_login_in_progress(daemon_factory):
    """A login waiting at the prompt when the config is reloaded still gets its verdict."""
    import socket
    import struct
    import fake_daemon as fd
    d = daemon_factory("optional")
    e = d.enroll("alice")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(d.socket)
        s.sendall(fd.login_begin("alice", "sshd", "192.0.2.3"))

        def read_frame():
            header = b""
            while len(header) < 4:
                header += s.recv(4 - len(header))
            (n,) = struct.unpack(">I", header)
            body = b""
            while len(body) < n:
                body += s.recv(n - len(body))
            return body

        assert read_frame()[0] == 0x81, "a CONVERSE with the prompt"
        d.write_config("required")
        os.kill(d.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "configuration reloaded" not in d.log() and time.monotonic() < deadline:
            time.sleep(0.02)
        s.sendall(fd.reply(oathtool_totp(e["secret"])))
        verdict = read_frame()
        assert verdict[0] == 0x82 and verdict[1] == 0, verdict


def test_no_fresh_grace_period_after_a_factor_is_removed(daemon_factory):
    d = daemon_factory("required", "grace_period = 7d\n")
    d.enroll("alice")
    assert d.cli("reset", "--user", "alice").returncode == 0
    c = d.check("alice")
    assert c["decision"] == "refuse", c
    assert d.pam("alice", "").result == "PAM_AUTH_ERR"
    # A user MFA is new to still gets the grace period.
    assert d.check("bob")["decision"] == "grace"
