# SPDX-License-Identifier: Apache-2.0
"""Self-tests for the real-sshd harness (sshd_sandbox.py); they do not need mfagate.

Run from the repo root:  python3 -m pytest -q Tests/integration/test_sshd_sandbox.py
Needs root, /usr/sbin/sshd, /usr/bin/ssh, unshare and overlayfs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sshd_sandbox import SERVICE, SshdSandbox, ssh_login  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/usr/sbin/sshd") or not os.path.exists("/usr/bin/ssh")
    or shutil.which("unshare") is None,
    reason="needs root, openssh-server, openssh-client and unshare",
)

USER, PASSWORD = "mfasbx-alice", "correct horse 42"
PW_RE = r"[Pp]assword:"


def _host_snapshot() -> dict:
    def digest(p: str) -> str | None:
        try:
            return hashlib.sha256(Path(p).read_bytes()).hexdigest()
        except FileNotFoundError:
            return None

    # specific paths rather than whole listings: other work may run on this host meanwhile
    return {
        "pam.d": sorted(os.listdir("/etc/pam.d")),
        **{p: os.path.lexists(p) for p in ("/run/sshd", "/run/sshd-mfa-test-home", "/run/mount",
                                           "/dev/log", f"/etc/pam.d/{SERVICE}")},
        **{p: digest(p) for p in ("/etc/passwd", "/etc/shadow", "/etc/group",
                                  "/var/log/wtmp", "/var/log/btmp", "/var/log/lastlog",
                                  "/var/log/faillog")},
    }


def test_pam_unix_right_and_wrong_password(tmp_path):
    with SshdSandbox(["auth required pam_unix.so"], [(USER, PASSWORD)], tmp_path) as sb:
        t0 = time.monotonic()
        good = ssh_login(sb.port, USER, {PW_RE: PASSWORD},
                         command="echo LOGIN-OK; id -un; pwd", timeout=20)
        assert good.ok, (good, sb.log_text())
        assert "LOGIN-OK" in good.output
        assert good.prompts == ["Password:"]
        assert good.reason == "ok" and good.exitstatus == 0
        assert f"\n{USER}\r\n" in good.output  # ran as the test user
        assert f"/run/sshd-mfa-test-home/{USER}" in good.output  # in its own home
        assert time.monotonic() - t0 < 5

        bad = ssh_login(sb.port, USER, [(PW_RE, "not the password")], timeout=20)
        assert not bad.ok
        assert "LOGIN-OK" not in bad.output
        assert bad.reason == "denied"
        assert "Permission denied" in bad.output
        assert bad.prompts == ["Password:"]

        log = sb.log_text()
        assert f"Accepted keyboard-interactive/pam for {USER}" in log
        assert f"Failed keyboard-interactive/pam for {USER}" in log
    # the PAM service was ours and libpam's syslog went to the sandbox's /dev/log
    assert "pam_unix(sshd-mfa-test:auth): authentication failure" in sb.syslog_text()


def test_second_module_denies_even_with_right_password(tmp_path):
    stack = ["auth required pam_unix.so", "auth required pam_deny.so"]
    with SshdSandbox(stack, [(USER, PASSWORD)], tmp_path) as sb:
        r = ssh_login(sb.port, USER, {PW_RE: PASSWORD}, timeout=20)
        assert not r.ok, r
        assert r.reason == "denied"
        assert r.prompts == ["Password:"]
        assert f"Failed keyboard-interactive/pam for {USER}" in sb.log_text()
    assert (tmp_path / "sshd-sandbox" / "pam.d" / SERVICE).read_text().splitlines()[1:3] == stack


def test_info_text_glued_before_prompt_and_unknown_prompt(tmp_path):
    # pam_exec's "stdout" turns the program's output into PAM_TEXT_INFO messages, which
    # OpenSSH glues in front of the next prompt (here pam_unix's "Password: ").
    script = tmp_path / "info.sh"
    script.write_text("#!/bin/sh\necho 'INFO-FROM-PAM line one'\necho 'line two'\n")
    script.chmod(0o755)
    stack = [f"auth optional pam_exec.so quiet stdout {script}", "auth required pam_unix.so"]
    with SshdSandbox(stack, [(USER, PASSWORD)], tmp_path) as sb:
        r = ssh_login(sb.port, USER, {r"Pass": PASSWORD}, timeout=20)  # partial regex
        assert r.ok, (r, sb.log_text())
        assert r.prompts == ["Password:"]
        assert r.texts and "INFO-FROM-PAM line one\nline two" in r.texts[0]

        # no regex for the prompt: recorded, then the login is abandoned without hanging
        t0 = time.monotonic()
        u = ssh_login(sb.port, USER, {r"Verification code:": "123456"},
                      timeout=20, quiet_prompt_delay=1.0)
        assert not u.ok and u.reason == "unexpected-prompt"
        assert u.prompts == ["Password:"]
        assert time.monotonic() - t0 < 5


def test_no_host_state_left_behind(tmp_path):
    before = _host_snapshot()
    # a deep workdir: the /dev/log socket path is then too long for a plain bind()
    workdir = tmp_path / ("deep-" + "d" * 70)
    workdir.mkdir()
    with SshdSandbox(["auth required pam_unix.so"], [(USER, PASSWORD)], workdir,
                     host_run_paths=["/run/lock"]) as sb:
        pid = sb.pid
        assert os.readlink(f"/proc/{pid}/exe") == "/usr/sbin/sshd"  # we hold sshd's own PID
        # the sandbox's view differs from the host's...
        assert (workdir / "sshd-sandbox" / "pam.d" / SERVICE).is_file()
        assert f"\n{USER}:" in (workdir / "sshd-sandbox" / "passwd").read_text()
        # ...while the host sees nothing of it, even while sshd runs
        assert not os.path.exists(f"/etc/pam.d/{SERVICE}")
        assert _host_snapshot() == before
        r = ssh_login(sb.port, USER, {PW_RE: PASSWORD}, timeout=20,
                      command="echo LOGIN-OK; logger -t sbxtest hello-from-session")
        assert r.ok, (r, sb.log_text())
        # inside sshd's mount namespace (seen through /proc/PID/root) the copies are in place
        ns_root = Path(f"/proc/{pid}/root")
        assert (ns_root / "etc/pam.d" / SERVICE).is_file()
        assert f"\n{USER}:" in (ns_root / "etc/passwd").read_text()
        assert (ns_root / "run/sshd").is_dir()
        # /run is an overlay there, except host_run_paths, which are the host's own
        assert os.stat(ns_root / "run").st_dev != os.stat("/run").st_dev
        host_lock, ns_lock = os.stat("/run/lock"), os.stat(ns_root / "run/lock")
        assert (ns_lock.st_dev, ns_lock.st_ino) == (host_lock.st_dev, host_lock.st_ino)
    assert "sbxtest: hello-from-session" in sb.syslog_text()
    # sshd is gone (not even a zombie: it was waited for)
    assert not os.path.exists(f"/proc/{pid}")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not os.path.exists(f"/etc/pam.d/{SERVICE}")
    assert USER not in Path("/etc/passwd").read_text()
    assert USER not in Path("/etc/group").read_text()
    assert _host_snapshot() == before
