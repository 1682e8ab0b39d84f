# SPDX-License-Identifier: Apache-2.0
"""A lockout stops guessing, not the owner (issue 14, finding 11): someone who knows the password
can lock a user out with wrong codes, but while locked a recovery code still logs the owner in
(and is used up); codes of digits are still not evaluated. Real libpam (pam_driver), oathtool codes."""
import json

from mfagate_harness import oathtool_totp, wrong_code

LOCKED = "PAM_MAXTRIES"


def left(d, user):
    return json.loads(d.cli("status", "--user", user, "--json", check=True).stdout)["recovery_codes_left"]


def test_locked_user_gets_in_with_a_recovery_code_only(daemon_factory):
    d = daemon_factory("optional", "max_failures = 5\nfailure_window = 15m\nlockout = 15m\n")
    e = d.enroll("alice")
    code = oathtool_totp(e["secret"])
    for _ in range(5):
        assert d.pam("alice", wrong_code(code), rhost="192.0.2.9").result == "PAM_AUTH_ERR"
    assert d.check("alice")["decision"] == "locked"
    # Digits are not evaluated: the right TOTP, a wrong one and an 8-digit answer look the same.
    right = d.pam("alice", oathtool_totp(e["secret"]), rhost="192.0.2.9")
    wrong = d.pam("alice", "123456", rhost="192.0.2.9")
    eight = d.pam("alice", "12345678", rhost="192.0.2.9")
    assert right.result == wrong.result == eight.result == LOCKED
    assert right.messages == wrong.messages == ["PROMPT_ECHO_OFF: Verification code: "]
    # A wrong recovery code: still locked, nothing used.
    assert d.pam("alice", "2345-6789-abcd").result == LOCKED
    assert left(d, "alice") == 10
    # The owner's recovery code: in, the code used up, the lockout gone, a notice logged.
    recovery = e["recovery_codes"][3]
    assert d.pam("alice", recovery.upper(), rhost="192.0.2.9").result == "PAM_SUCCESS"
    assert left(d, "alice") == 9
    log = d.log()
    assert "event=recovery-code-used" in log and "by a recovery code at login" in log
    assert d.check("alice")["decision"] == "code", "the lockout is cleared"
    assert d.pam("alice", recovery).result == "PAM_AUTH_ERR", "used up"
    assert d.pam("alice", oathtool_totp(e["secret"], at="now + 30 seconds")).result == "PAM_SUCCESS"


def test_blocked_address_lets_a_recovery_code_through(daemon_factory):
    attacker = "198.51.100.7"
    d = daemon_factory("optional", "max_failures = 0\nmax_failures_per_rhost = 3\n")
    e = d.enroll("bob")
    for _ in range(3):
        assert d.pam("bob", "000000", rhost=attacker).result == "PAM_AUTH_ERR"
    assert d.check("bob", rhost=attacker)["decision"] == "locked"
    assert d.pam("bob", oathtool_totp(e["secret"]), rhost=attacker).result == LOCKED
    assert d.pam("bob", e["recovery_codes"][0], rhost=attacker).result == "PAM_SUCCESS"
    assert left(d, "bob") == 9
    # The address stays blocked for codes of digits.
    assert d.check("bob", rhost=attacker)["decision"] == "locked"
