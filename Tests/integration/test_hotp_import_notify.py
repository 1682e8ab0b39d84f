# SPDX-License-Identifier: Apache-2.0
"""HOTP tokens (bounded look-ahead), import of files made by the real `google-authenticator` tool
(Debian libpam-google-authenticator) with logins afterwards through the real libpam using codes
from oathtool and a former scratch code, hostile files, and `notify_command`."""
import json
import os
import pwd
import shutil
import subprocess
import time

import pytest

from mfagate_harness import MFAGATE as MFAGATE_BIN, oathtool_totp

USER = "nobody"


def oathtool_hotp(secret, counter):
    return subprocess.run(["oathtool", "--hotp", "-b", "-c", str(counter), secret],
                          check=True, capture_output=True, text=True).stdout.strip()


def test_hotp_token_resynchronises_within_the_look_ahead_and_never_goes_back(daemon):
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    e = json.loads(daemon.cli("enroll", "--user", "tok", "--hotp", "--counter", "5", "--secret", secret, "--json",
                              check=True).stdout)
    assert e["otpauth_uri"].startswith("otpauth://hotp/") and e["otpauth_uri"].endswith("&counter=5")
    assert daemon.pam("tok", oathtool_hotp(secret, 4)).result == "PAM_AUTH_ERR", "before the counter"
    assert daemon.pam("tok", oathtool_hotp(secret, 5)).result == "PAM_SUCCESS"
    assert daemon.pam("tok", oathtool_hotp(secret, 5)).result == "PAM_AUTH_ERR", "used once"
    # Pressed three times without logging in: counter 9 is within the look-ahead (next is 6).
    assert daemon.pam("tok", oathtool_hotp(secret, 9)).result == "PAM_SUCCESS"
    assert "resynchronised 3 ahead" in daemon.log()
    assert daemon.pam("tok", oathtool_hotp(secret, 8)).result == "PAM_AUTH_ERR", "never back"
    # Next is 10; the look-ahead is 10 presses: 21 is too far.
    assert daemon.pam("tok", oathtool_hotp(secret, 21)).result == "PAM_AUTH_ERR"
    assert daemon.pam("tok", oathtool_hotp(secret, 20)).result == "PAM_SUCCESS"
    status = json.loads(daemon.cli("status", "--user", "tok", "--json", check=True).stdout)
    assert status["method"] == "hotp"


def google_authenticator(path, *flags):
    """A secret file written by the real google-authenticator tool, owned by USER like a real one."""
    if not shutil.which("google-authenticator"):
        pytest.skip("google-authenticator (libpam-google-authenticator) is not installed")
    subprocess.run(["google-authenticator", "-f", "-C", "-q", "-Q", "NONE", "-r", "3", "-R", "30", "-w", "3",
                    *flags, "-s", str(path)], check=True, stdin=subprocess.DEVNULL, capture_output=True)
    entry = pwd.getpwnam(USER)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    return path.read_text().splitlines()


def import_file(d, path, *extra):
    return d.cli("import-google-authenticator", "--user", USER, str(path), *extra)


def test_import_totp_file_with_scratch_codes_then_log_in(daemon, tmp_path):
    path = tmp_path / "ga_totp"
    lines = google_authenticator(path, "-t", "-d", "-e", "5")
    secret, scratch = lines[0], [l for l in lines if l.isdigit() and len(l) == 8]
    assert len(scratch) == 5
    # A code already used there must not work here: note the current step as used (the module
    # appends used steps to the DISALLOW_REUSE line the same way).
    used_code = oathtool_totp(secret)
    step = int(time.time()) // 30
    os.chmod(path, 0o600)
    path.write_text("\n".join(l + (f" {step}" if l == '" DISALLOW_REUSE' else "") for l in lines) + "\n")
    before = path.read_bytes()
    r = import_file(daemon, path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "imported TOTP" in r.stdout and "5 scratch code(s)" in r.stdout and "window ±1" in r.stdout
    assert path.read_bytes() == before, "the file is never changed"
    assert secret not in r.stdout and not any(c in r.stdout for c in scratch)
    # Idempotent.
    again = import_file(daemon, path)
    assert again.returncode == 0 and "unchanged" in again.stdout
    assert daemon.pam(USER, used_code).result == "PAM_AUTH_ERR", "a code used before the import"
    assert daemon.pam(USER, oathtool_totp(secret, at="now + 30 seconds")).result == "PAM_SUCCESS"
    assert daemon.pam(USER, scratch[2]).result == "PAM_SUCCESS", "a former scratch code, once"
    assert daemon.pam(USER, scratch[2]).result == "PAM_AUTH_ERR"
    stored = (daemon.state / "users" / USER).read_text()
    assert not any(c in stored for c in scratch), "scratch codes are stored hashed"


def test_import_hotp_file_without_scratch_codes(daemon, tmp_path):
    path = tmp_path / "ga_hotp"
    lines = google_authenticator(path, "-c", "-e", "0")
    secret = lines[0]
    assert '" HOTP_COUNTER 1' in lines
    r = import_file(daemon, path)
    assert r.returncode == 0 and "imported HOTP (counter 1), 0 scratch code(s)" in r.stdout, r.stdout
    assert daemon.pam(USER, oathtool_hotp(secret, 0)).result == "PAM_AUTH_ERR"
    assert daemon.pam(USER, oathtool_hotp(secret, 1)).result == "PAM_SUCCESS"
    assert daemon.pam(USER, oathtool_hotp(secret, 2)).result == "PAM_SUCCESS"


def test_hostile_files_are_refused(daemon, tmp_path):
    real = tmp_path / "real"
    google_authenticator(real, "-t", "-d", "-e", "1")
    entry = pwd.getpwnam(USER)

    link = tmp_path / "link"
    link.symlink_to(real)
    r = import_file(daemon, link)
    assert r.returncode == 1 and "symbolic link" in r.stdout

    hard = tmp_path / "hard"
    os.link(real, hard)
    r = import_file(daemon, hard)
    assert r.returncode == 1 and "hard links" in r.stdout
    os.unlink(hard)

    other = tmp_path / "other"
    shutil.copy(real, other)  # owned by root, not by the user
    r = import_file(daemon, other)
    assert r.returncode == 1 and "not to the user" in r.stdout

    writable = tmp_path / "writable"
    shutil.copy(real, writable)
    os.chown(writable, entry.pw_uid, entry.pw_gid)
    os.chmod(writable, 0o666)
    r = import_file(daemon, writable)
    assert r.returncode == 1 and "writable by group or others" in r.stdout

    for name, text in [("big", "JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n" + "12345678\n" * 1000),
                       ("garbage", "JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\nrm -rf /\n")]:
        p = tmp_path / name
        p.write_text(text)
        os.chown(p, entry.pw_uid, entry.pw_gid)
        os.chmod(p, 0o400)
        r = import_file(daemon, p)
        assert r.returncode == 1, r.stdout
        assert ("larger than" in r.stdout) if name == "big" else ("line 3" in r.stdout and "rm -rf" not in r.stdout)
    assert not (daemon.state / "users" / USER).exists()
    # A non-root user may not import at all.
    assert daemon.cli("import-google-authenticator", "--user", USER, str(real), user=USER).returncode == 1


def test_notify_command_gets_event_and_user_and_never_blocks_a_login(daemon_factory, tmp_path):
    out = tmp_path / "events"
    script = tmp_path / "notify.sh"
    script.write_text(f"#!/bin/sh\necho \"$# $1 $2\" >> {out}\n[ \"$(readlink /proc/self/fd/0)\" = /dev/null ] || echo STDIN >> {out}\n[ \"$1\" = disabled ] && exit 3\n"
                      "[ \"$1\" = reset ] && exec sleep 60\nexit 0\n")
    os.chmod(script, 0o755)
    d = daemon_factory("optional", extra_config=f"notify_command = {script}\n")
    e = d.enroll("alice")
    assert d.pam("alice", e["recovery_codes"][0]).result == "PAM_SUCCESS"
    d.cli("recovery-codes", "--regenerate", "--user", "alice", check=True)
    d.cli("disable", "--user", "bob", "--code", "1")  # not enrolled: no event
    enrolled = d.enroll("bob")
    d.cli("disable", "--user", "bob", "--code", enrolled["recovery_codes"][0], check=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "notify_command failed" not in d.log():
        d.pam("nobody-else")  # any request wakes the loop that reaps finished commands
        time.sleep(0.1)
    events = out.read_text().splitlines()
    assert events[:6] == ["2 enrolled alice", "2 recovery-code-used alice", "2 recovery-codes-regenerated alice",
                          "2 enrolled bob", "2 recovery-code-used bob", "2 disabled bob"], events
    assert "notify_command failed" in d.log() and "exit 3" in d.log()
    assert not any(c in out.read_text() for c in e["recovery_codes"] + [e["secret"]]) and "STDIN" not in out.read_text()
    # A hung command: the reset and the logins after it are not held up; it is killed after 10 s.
    d.enroll("carol")
    started = time.monotonic()
    d.cli("reset", "--user", "carol", check=True)
    assert d.pam("carol").result == "PAM_IGNORE"
    assert time.monotonic() - started < 3
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "notify_command killed" not in d.log():
        time.sleep(0.2)
    assert "notify_command killed after 10 s" in d.log()


def test_import_all_reads_every_account_with_a_file(daemon, tmp_path):
    """--all walks the password database; a temp /etc/passwd is bind-mounted in a private mount
    namespace (`mount -n`: nothing written to the host's /run/mount) so only our accounts exist."""
    homes = {}
    for name in ("nobody", "daemon"):
        home = tmp_path / f"home-{name}"
        home.mkdir()
        entry = pwd.getpwnam(name)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        homes[name] = (home, entry)
    google_authenticator(homes["nobody"][0] / ".google_authenticator", "-t", "-d", "-e", "2")
    ga = homes["daemon"][0] / ".google_authenticator"
    google_authenticator(ga, "-c", "-e", "0")
    os.chown(ga, homes["daemon"][1].pw_uid, homes["daemon"][1].pw_gid)
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/sh\n" + "".join(
        f"{n}:x:{e.pw_uid}:{e.pw_gid}::{h}:/usr/sbin/nologin\n" for n, (h, e) in homes.items()))
    script = f"mount -n --bind {passwd} /etc/passwd && exec {daemon.readable_copy(MFAGATE_BIN)} --socket {daemon.socket} import-google-authenticator --all"
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nobody: imported TOTP" in r.stdout and "daemon: imported HOTP (counter 1)" in r.stdout, r.stdout
    listed = {e["user"]: e["method"] for e in json.loads(daemon.cli("list", "--json", check=True).stdout)}
    assert listed == {"nobody": "totp", "daemon": "hotp"}
