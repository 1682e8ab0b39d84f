# SPDX-License-Identifier: Apache-2.0
"""`remember` (google-authenticator's grace_period), issue 19 part 2: after a right code the same user
from the same remote host through the same PAM service is not asked again until the time passes.
Real sshd and ssh (sshd_sandbox.py), codes from oathtool; the daemon's clock is moved with its
hidden --clock-offset-file (re-read at SIGHUP), so each code login gets a fresh time step without
waiting."""
import json
import os
import signal
import subprocess
import time

import pytest

import hygiene

from mfagate_harness import SHIM, oathtool_totp
from sshd_sandbox import SshdSandbox, ssh_login

PASSWORD = "correct horse 42"
SERVICE = "sshd-mfa-test"
CONFIG = "remember = 8h\nnever_remember = 10.9.9.9 192.0.2.0/24\n"


class Clock:
    """The daemon's clock offset (seconds), moved and re-read with SIGHUP."""

    def __init__(self, d, path):
        self.d, self.path, self.offset = d, path, 0
        path.write_text("0\n")

    def move(self, seconds: int) -> None:
        self.offset += seconds
        self.path.write_text(f"{self.offset}\n")
        self.reload()

    def reload(self) -> None:
        before = self.d.log().count("configuration reloaded")
        os.kill(self.d.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while self.d.log().count("configuration reloaded") == before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.d.log().count("configuration reloaded") > before, self.d.log()[-2000:]

    def code(self, secret: str) -> str:
        """A code for the daemon's time, after moving it one minute on (a fresh step: no replay)."""
        self.move(60)
        return oathtool_totp(secret, at=f"now + {self.offset} seconds")


@pytest.fixture
def sshd(daemon_factory, tmp_path):
    d = daemon_factory("required", CONFIG, run_as="nobody", start=False)
    offset = d.dir / "clock-offset"  # in the daemon's 0755 directory: the daemon runs as nobody
    offset.write_text("0\n")
    os.chmod(offset, 0o644)
    d.daemon_args = ["--clock-offset-file", str(offset)]
    d.start()
    clock = Clock(d, offset)
    stack = ["auth required pam_unix.so",
             f"auth required {SHIM} socket={d.socket} timeout=5"]
    with SshdSandbox(stack, [("mfauser", PASSWORD)], tmp_path) as box:
        try:
            yield d, box, clock
        finally:
            hygiene.capture("sshd log", box.log_text())
            hygiene.capture("syslog in the sshd sandbox", box.syslog_text())


def login(box, code: str):
    return ssh_login(box.port, "mfauser", [(r"[Pp]assword:", PASSWORD), (r"Verification code:", code)])


def asked(result) -> bool:
    return any("Verification code" in p for p in result.prompts)


def remembered_login(d, box):
    """A login that must not be asked: the code offered would be wrong anyway."""
    r = login(box, "000000")
    assert r.ok and not asked(r), (r, d.log()[-3000:])
    return r


def test_second_ssh_login_from_the_same_host_is_not_asked_and_check_explains_it(sshd):
    d, box, clock = sshd
    e = d.enroll("mfauser")
    first = login(box, clock.code(e["secret"]))
    assert first.ok and asked(first), (first, d.log()[-3000:])
    assert "127.0.0.1 remembered until" in d.log()
    remembered_login(d, box)
    assert 'reason="remembered: right code from 127.0.0.1 for sshd-mfa-test' in d.log()
    verdict = d.check("mfauser", service=SERVICE, rhost="127.0.0.1")
    assert verdict["decision"] == "ignore" and "remember = 8h" in verdict["rule"], verdict
    # The entry is this host's and service's only.
    assert d.check("mfauser", service="other-service", rhost="127.0.0.1")["decision"] == "code"
    assert d.check("mfauser", service=SERVICE, rhost="127.0.0.2")["decision"] == "code"
    assert d.check("mfauser", service=SERVICE)["decision"] == "code"


def test_a_different_service_from_the_same_host_is_asked(sshd):
    d, box, clock = sshd
    e = d.enroll("mfauser")
    assert login(box, clock.code(e["secret"])).ok
    # The same user and rhost through another PAM service (the real libpam, a root peer).
    r = d.pam("mfauser", "000000", rhost="127.0.0.1")
    assert r.result == "PAM_AUTH_ERR" and any("Verification code" in m for m in r.messages), r
    remembered_login(d, box)


def test_never_remember_hosts_and_local_logins_are_asked_every_time(sshd):
    d, box, clock = sshd
    e = d.enroll("mfauser")
    for rhost in ("10.9.9.9", "192.0.2.77", None):
        assert d.pam("mfauser", clock.code(e["secret"]), rhost=rhost).result == "PAM_SUCCESS"
        again = d.pam("mfauser", "000000", rhost=rhost)
        assert again.result == "PAM_AUTH_ERR" and any("Verification code" in m for m in again.messages), (rhost, again)
    assert "remembered until" not in d.log()
    # A host added to never_remember later is asked at once, though its entry is still there.
    assert login(box, clock.code(e["secret"])).ok
    d.write_config("required", CONFIG.replace("10.9.9.9", "10.9.9.9 127.0.0.1"))
    clock.reload()
    r = login(box, clock.code(e["secret"]))
    assert r.ok and asked(r), r


def test_forget_by_root_and_by_the_user_themself_ends_it(sshd):
    d, box, clock = sshd
    e = d.enroll("mfauser")
    assert login(box, clock.code(e["secret"])).ok
    out = d.cli("forget", "--user", "mfauser", check=True).stdout
    assert "1 remembered host forgotten" in out, out
    r = login(box, clock.code(e["secret"]))
    assert r.ok and asked(r), r
    remembered_login(d, box)
    own = d.cli("forget", user="mfauser")
    assert own.returncode == 0 and "forgotten" in own.stdout, own
    r = login(box, clock.code(e["secret"]))
    assert r.ok and asked(r), r
    # Another user may not forget someone else's.
    other = d.cli("forget", "--user", "mfauser", user="nobody")
    assert other.returncode != 0 and "only forget your own" in other.stderr, other


def test_it_ends_after_the_time_and_when_the_clock_is_set_back(sshd):
    d, box, clock = sshd
    e = d.enroll("mfauser")
    assert login(box, clock.code(e["secret"])).ok
    clock.move(8 * 3600 - 120)
    remembered_login(d, box)
    clock.move(120)  # exactly created + 8h: over
    r = login(box, clock.code(e["secret"]))  # (the code moves the clock one minute more)
    assert r.ok and asked(r), r
    remembered_login(d, box)
    clock.move(-3600)  # the clock set back before the entry was made
    r = login(box, "000000")  # (a code of that time would be a replay: only the question counts)
    assert not r.ok and asked(r), r


def test_a_recovery_code_login_neither_creates_an_entry_nor_leaves_one(sshd):
    d, box, clock = sshd
    e = d.enroll("mfauser")
    first = login(box, e["recovery_codes"][0])
    assert first.ok and asked(first), first
    r = login(box, clock.code(e["secret"]))
    assert r.ok and asked(r), (r, "a recovery-code login made an entry")
    remembered_login(d, box)
    # A recovery code through another service ends the entry of every host and service.
    assert d.pam("mfauser", e["recovery_codes"][1], rhost="10.1.1.1").result == "PAM_SUCCESS"
    assert "remembered hosts forgotten" in d.log()
    r = login(box, clock.code(e["secret"]))
    assert r.ok and asked(r), r


@pytest.mark.parametrize("how", ["reset", "disable", "re-enroll"])
def test_reset_disable_and_re_enroll_end_it(sshd, how):
    d, box, clock = sshd
    e = d.enroll("mfauser")
    assert login(box, clock.code(e["secret"])).ok
    remembered_login(d, box)
    if how == "reset":
        d.cli("reset", "--user", "mfauser", check=True)
        e = d.enroll("mfauser")
    elif how == "disable":
        d.cli("disable", "--user", "mfauser", "--code", e["recovery_codes"][0], user="mfauser", check=True)
        e = d.enroll("mfauser")
    else:
        e = json.loads(d.cli("enroll", "--user", "mfauser", "--json", "--force", check=True).stdout)
        hygiene.register("TOTP secret", e["secret"])
        hygiene.register("recovery code", *e["recovery_codes"])
    r = login(box, clock.code(e["secret"]))
    assert r.ok and asked(r), (how, r, d.log()[-2000:])


def test_the_entry_survives_a_restart_and_a_damaged_file_only_means_asked(sshd):
    d, box, clock = sshd
    e = d.enroll("mfauser")
    assert login(box, clock.code(e["secret"])).ok
    d.stop()
    d.start()
    remembered_login(d, box)
    entry = d.state / "remembered" / "mfauser"
    text = entry.read_text()
    assert "remember " in text and " sshd-mfa-test 127.0.0.1" in text and "secret" not in text
    # A torn or edited file holds no entry: asked, never refused or let in.
    st = entry.stat()
    entry.write_text(text[: len(text) // 2].replace("remember", "rem"))
    os.chown(entry, st.st_uid, st.st_gid)
    r = login(box, clock.code(e["secret"]))
    assert r.ok and asked(r), r
    remembered_login(d, box)


def test_making_an_entry_adds_no_flush_to_the_code_login_and_forgetting_is_durable(daemon_factory, tmp_path):
    """Every fsync fails (EIO) once a trigger file exists (an LD_PRELOAD stand-in for a disk that
    cannot flush; the replay journal's fdatasync is left alone): a code login that makes an entry
    still succeeds, so making one calls no fsync; `forget` reports the failure, so ending one is
    made durable before it is answered."""
    trigger = tmp_path / "fail-fsync"
    source = tmp_path / "failing_fsync.c"
    preload = tmp_path / "failing_fsync.so"
    source.write_text(
        "#define _GNU_SOURCE\n#include <dlfcn.h>\n#include <errno.h>\n#include <unistd.h>\n"
        f'int fsync(int fd) {{ if (access("{trigger}", F_OK) == 0) {{ errno = EIO; return -1; }}\n'
        '  int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync"); return real(fd); }\n')
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(preload), str(source), "-ldl"], check=True)
    os.chmod(tmp_path, 0o755)
    d = daemon_factory("required", CONFIG, start=False)
    d.wrap = ["env", f"LD_PRELOAD={preload}"]
    d.start()
    e = d.enroll("alice")
    trigger.write_text("")
    assert d.pam("alice", oathtool_totp(e["secret"]), rhost="198.51.100.7").result == "PAM_SUCCESS", d.log()[-2000:]
    assert "198.51.100.7 remembered until" in d.log()
    assert d.pam("alice", "000000", rhost="198.51.100.7").result == "PAM_IGNORE"
    out = d.cli("forget", "--user", "alice")
    assert out.returncode != 0 and "Input/output error" in out.stderr, out
    trigger.unlink()
    assert d.cli("forget", "--user", "alice").returncode == 0
    again = d.pam("alice", "000000", rhost="198.51.100.7")
    assert again.result == "PAM_AUTH_ERR" and any("Verification code" in m for m in again.messages), again


def test_a_module_running_as_the_user_is_never_remembered(daemon_factory):
    """A PAM stack running as the user (a screen locker, a user's own pam_start) sends whatever rhost
    it likes; the daemon believes an rhost only from root (sshd), so such a login is never
    remembered, nor does it use an entry sshd's logins made."""
    d = daemon_factory("required", CONFIG)
    e = d.enroll("alice")
    assert d.pam("alice", oathtool_totp(e["secret"]), rhost="198.51.100.7", as_user="alice").result == "PAM_SUCCESS"
    assert "remembered until" not in d.log()
    assert d.pam("alice", oathtool_totp(e["secret"], at="now + 30 seconds"), rhost="198.51.100.7").result == "PAM_SUCCESS"
    assert "198.51.100.7 remembered until" in d.log()
    own = d.pam("alice", "000000", rhost="198.51.100.7", as_user="alice")
    assert own.result == "PAM_AUTH_ERR" and any("Verification code" in m for m in own.messages), own
