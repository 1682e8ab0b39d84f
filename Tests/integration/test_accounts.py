# SPDX-License-Identifier: Apache-2.0
"""Canonical accounts, unknown names and bytes that are not UTF-8 (issue 14, findings 3, 4, 5),
through the real libpam and the real socket.

On a host whose accounts come from a directory, NSS maps other spellings to one account (SSSD or
winbind with case-insensitive names, `user@domain`). The daemon here runs in a private mount
namespace whose /etc/nsswitch.conf says `passwd: files mfatest`: the tests' own NSS module
(Tests/integration/nss/nss_mfatest.c, build/libnss_mfatest.so.2 found through LD_LIBRARY_PATH)
answers `ALICE` and `alice@example.test` with alice's account, as SSSD would. The host's
nsswitch.conf is never touched. alice is a test account of the suite's namespace
(with_test_accounts.py)."""
from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from mfagate_harness import BUILD, NSS_MODULE, oathtool_totp, wrong_code

SPELLINGS = ["ALICE", "alice@example.test", "Alice@Example.Test"]
REFUSED = ["\udcff\udcfe", "\udcfe\udcff"]        # the bytes \xff\xfe and \xfe\xff in argv (surrogateescape)


def with_directory_nss(d):
    """Runs the daemon where NSS maps other spellings to the canonical account."""
    nsswitch = d.dir / "nsswitch.conf"
    nsswitch.write_text("passwd: files mfatest\ngroup: files\nshadow: files\nhosts: files\n")
    script = 'mount -n --bind "$1" /etc/nsswitch.conf && export LD_LIBRARY_PATH="$2" && shift 2 && exec "$@"'
    d.wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(nsswitch), str(BUILD)]
    return d


@pytest.fixture
def directory_daemon(daemon_factory):
    assert NSS_MODULE.exists(), "make test-helpers builds the tests' NSS module"

    def make(mode: str, extra: str = "") -> object:
        return with_directory_nss(daemon_factory(mode, extra_config=extra, start=False)).start()
    return make


def user_files(d) -> list[str]:
    users = d.state / "users"
    return sorted(p for p in os.listdir(users) if not p.startswith(".")) if users.exists() else []


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_other_spellings_are_asked_the_accounts_code_never_ignored_nor_offered_enrollment(directory_daemon, mode):
    d = directory_daemon(mode, "enroll_at_login = yes\ngrace_period = 7d\n")
    e = d.enroll("alice")
    d.service()
    for i, typed in enumerate(SPELLINGS):
        r = d.pam(typed, oathtool_totp(e["secret"], at=f"now + {30 * i} seconds"))
        assert r.result == "PAM_SUCCESS", (typed, r)
        assert "PROMPT_ECHO_OFF: Verification code: " in r.messages, (typed, r)
        assert not any("QR" in m or "second factor now" in m for m in r.messages), (typed, r)
    assert user_files(d) == ["alice"]
    assert not (d.state / "seen").exists() or "ALICE" not in (d.state / "seen").read_text()
    # Without an answer: the prompt, never PAM_IGNORE (which `optional` gives the unenrolled).
    r = d.pam("ALICE")
    assert r.result != "PAM_IGNORE" and "PROMPT_ECHO_OFF: Verification code: " in r.messages, r


def test_wrong_codes_under_other_spellings_lock_the_account(directory_daemon):
    d = directory_daemon("required", "max_failures = 3\nfailure_window = 15m\nlockout = 15m\n")
    e = d.enroll("alice")
    d.service()
    code = oathtool_totp(e["secret"])
    for typed in SPELLINGS:
        assert d.pam(typed, wrong_code(code)).result == "PAM_AUTH_ERR"
    assert "user locked out" in d.log() and 'user=alice' in d.log().replace('"', "")
    locked = d.pam("alice", code)
    assert locked.result == "PAM_MAXTRIES", locked


def test_root_enrolling_another_spelling_stores_the_canonical_account(directory_daemon):
    d = directory_daemon("required")
    e = d.enroll("ALICE")
    assert e["user"] == "alice" and "alice%40" in e["otpauth_uri"]
    assert user_files(d) == ["alice"]
    again = d.cli("enroll", "--user", "alice@example.test", "--json")
    assert again.returncode == 1 and "already enrolled" in again.stderr
    status = d.cli("status", "--user", "Alice", "--json", check=True).stdout
    assert '"user": "alice"' in status and '"enrolled": true' in status


def test_an_unknown_name_is_denied_with_no_file_no_sighting_no_mail_and_not_logged(daemon_factory, tmp_path):
    witness = tmp_path / "mail-sent"
    sender = tmp_path / "send-mail"
    sender.write_text(f"#!/bin/sh\necho sent >> {witness}\n")
    sender.chmod(0o755)
    d = daemon_factory("required", extra_config=(
        "enroll_at_login = yes\ngrace_period = 7d\nmethods = totp email\n"
        f"email_address_pattern = %u@example.test\nemail_command = {sender}\n"))
    d.service()
    typed = "hunter2-not-a-name"                      # a password typed into the login field
    for answers in ((), ("",), ("email",), ("resend",)):
        r = d.pam(typed, *answers)
        assert r.result == "PAM_AUTH_ERR", r
        assert not any("QR" in m or "Verification code" in m for m in r.messages), r
    assert user_files(d) == []
    assert not (d.state / "seen").exists()
    assert not witness.exists(), "no code mail for a name NSS does not know"
    assert typed not in d.log()
    assert "no such account" in d.log()
    # Root's CLI gets one sentence, and nothing is created either.
    out = d.cli("enroll", "--user", typed, "--json")
    assert out.returncode == 1 and "no such account" in out.stderr, out
    out = d.cli("method", "add", "email", "x@example.test", "--user", typed)
    assert out.returncode != 0 and "no such account" in out.stderr, out
    assert user_files(d) == [] and not witness.exists()


def login_frame(user: bytes) -> bytes:
    def s(b: bytes) -> bytes:
        return struct.pack(">H", len(b)) + b
    payload = bytes([0x01, 1]) + s(user) + s(b"sshd") + s(b"") + s(b"") + s(b"") + b"\x00"
    return struct.pack(">I", len(payload)) + payload


def enroll_frame(user: bytes) -> bytes:
    payload = bytes([0x10, 1]) + struct.pack(">H", len(user)) + user + struct.pack(">H", 0) + b"\x00"
    return struct.pack(">I", len(payload)) + payload


@pytest.mark.parametrize("failmode", ["secure", "safe"])
def test_names_that_are_not_utf8_are_refused_never_folded_into_one(daemon_factory, failmode):
    d = daemon_factory("optional", extra_config="enroll_at_login = yes\n")
    d.service(args=f"failmode={failmode}")
    # The CLI refuses such an argument itself (Swift would repair it to U+FFFD before it is sent).
    out = d.cli("enroll", "--user", REFUSED[0], "--json")
    assert out.returncode == 2 and "not valid UTF-8" in out.stderr, out
    # Root's raw enroll of \xff\xfe: refused as not UTF-8 (it used to become U+FFFD U+FFFD).
    answer = d.raw(enroll_frame(b"\xff\xfe"))
    assert answer[4] == 0x9F and b"not valid UTF-8" in answer, answer
    assert user_files(d) == []
    # Logins under both byte strings: denied, never left to the failmode (PAM_IGNORE with safe).
    for typed in REFUSED:
        r = d.pam(typed)
        assert r.result == "PAM_AUTH_ERR", (typed, r)
    answer = d.raw(login_frame(b"\xfe\xff"))
    assert answer[4] == 0x82 and b"not valid UTF-8" in answer, answer
    assert user_files(d) == [] and not (d.state / "seen").exists()
    assert "\ufffd" not in d.log()


def test_a_typed_code_that_is_not_utf8_is_a_wrong_code_not_a_dropped_login(daemon_factory):
    d = daemon_factory("required", extra_config="max_failures = 2\n")
    e = d.enroll("alice")
    d.service(args="failmode=safe")
    for _ in range(2):
        r = d.pam("alice", "\udcff\udcfe")
        assert r.result == "PAM_AUTH_ERR", r
    assert d.pam("alice", oathtool_totp(e["secret"])).result == "PAM_MAXTRIES", "counted towards the lockout"


def test_config_value_that_is_not_utf8_is_refused_with_its_line(daemon_factory):
    d = daemon_factory("required", start=False)
    d.config.write_bytes(d.config.read_bytes() + b"require_users = al\xff\xfe\n")
    lines = d.config.read_bytes().count(b"\n")
    from mfagate_harness import MFAGATED
    import subprocess
    out = subprocess.run([str(MFAGATED), "--config", str(d.config), "--check-config"], capture_output=True, text=True,
                         errors="replace", timeout=30)
    assert out.returncode != 0, out
    assert f"{d.config}:{lines}: the line is not valid UTF-8" in out.stderr, out.stderr


def test_fleet_keys_by_the_canonical_account(request, daemon_factory):
    fleet_pg = pytest.importorskip("fleet_pg")
    if not fleet_pg.available():
        pytest.skip("PostgreSQL 15 (postgresql package) is not installed")
    cluster = fleet_pg.Cluster()
    request.addfinalizer(cluster.close)
    database = cluster.new_database()
    hosts = []
    key_text = None
    for _ in range(2):
        d = daemon_factory("required", start=False)
        key = fleet_pg.make_key_file(d.dir)
        if key_text is None:
            key_text = key.read_text()
        else:
            os.chmod(key, 0o600)
            key.write_text(key_text)
            os.chmod(key, 0o400)
        d.write_config("required", fleet_pg.fleet_config(cluster, database, key, "max_failures = 2\n"))
        hosts.append(with_directory_nss(d).start())
    a, b = hosts
    e = a.enroll("ALICE")
    assert e["user"] == "alice"
    b.service()
    assert b.pam("alice@example.test", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    code = oathtool_totp(e["secret"], at="now + 30 seconds")
    a.service()
    assert a.pam("Alice", wrong_code(code)).result == "PAM_AUTH_ERR"
    assert b.pam("ALICE", wrong_code(code)).result == "PAM_AUTH_ERR"
    assert a.pam("alice", code).result == "PAM_MAXTRIES", "two wrong codes under two spellings on two hosts lock alice"


def test_ssh_ALICE_at_host_is_asked_alices_code_under_a_directory_like_nss(directory_daemon, tmp_path):
    """The attack of finding 3 end to end: the real sshd and ssh client, sshd's NSS (and pam_unix's
    shadow lookup) mapping `ALICE` to alice as SSSD would, the daemon resolving it the same way."""
    import hygiene
    from mfagate_harness import SHIM
    from sshd_sandbox import SshdSandbox, ssh_login
    password = "correct horse 42"
    d = directory_daemon("required", "enroll_at_login = yes\nmax_failures = 2\n")
    e = d.enroll("alice")
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text("passwd: files mfatest\nshadow: files mfatest\ngroup: files\nhosts: files\n")
    os.chmod(nsswitch, 0o644)
    stack = ["auth required pam_unix.so", f"auth required {SHIM} socket={d.socket} timeout=5"]
    with SshdSandbox(stack, [("alice", password)], tmp_path, extra_binds=[(str(nsswitch), "/etc/nsswitch.conf")],
                     extra_env={"LD_LIBRARY_PATH": str(BUILD)}) as box:
        try:
            def answers(code):
                return [(r"[Pp]assword:", password), (r"Verification code:", code)]
            code = oathtool_totp(e["secret"])
            bad = ssh_login(box.port, "ALICE", answers(wrong_code(code)))
            assert not bad.ok and any("Verification code" in p for p in bad.prompts), bad
            assert not any("QR" in p or "second factor" in p for p in bad.prompts), bad
            good = ssh_login(box.port, "alice@example.test", answers(code))
            assert good.ok, (good, box.log_text()[-2000:], d.log())
            # Two wrong codes under two more spellings: alice's own lockout (max_failures = 2).
            assert not ssh_login(box.port, "Alice", answers(wrong_code(code))).ok
            assert not ssh_login(box.port, "ALICE@EXAMPLE.TEST", answers(wrong_code(code))).ok
            locked = ssh_login(box.port, "alice", answers(oathtool_totp(e["secret"], at="now + 30 seconds")))
            assert not locked.ok, locked
            assert "user locked out" in d.log()
            assert user_files(d) == ["alice"]
        finally:
            hygiene.capture("sshd log", box.log_text())
            hygiene.capture("syslog in the sshd sandbox", box.syslog_text())
