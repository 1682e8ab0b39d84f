# SPDX-License-Identifier: Apache-2.0
"""No secrets in argv (issue 14, finding 9): `--secret -` and `--code -` read the value from standard
input (a pipe, or a terminal with echo off), so it never shows in /proc/PID/cmdline (`ps`) while the
CLI runs; the inline forms still work but warn that every local user can read them."""
import json
import socket
import subprocess
import time

import pexpect

import hygiene
from mfagate_harness import MFAGATE, as_account, oathtool_totp

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


def wait_reading(proc_pid: int) -> None:
    """Until the CLI sleeps in a read (it is waiting for the value)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{proc_pid}/stat") as f:
            if f.read().split(") ", 1)[1].startswith("S"):
                return
        time.sleep(0.02)


def test_inline_secret_is_visible_and_warned_about(daemon, tmp_path):
    hygiene.register("TOTP secret", SECRET)
    # The attack: while the CLI waits for a daemon (here one that never answers), any local user
    # reads its arguments from /proc.
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(str(tmp_path / "silent.sock"))
    silent.listen(1)
    proc = subprocess.Popen([str(MFAGATE), "--socket", str(tmp_path / "silent.sock"), "enroll", "--user", "bob", "--json",
                             "--secret", SECRET], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn, _ = silent.accept()
        assert SECRET.encode() in cmdline(proc.pid)
    finally:
        proc.kill()
        proc.wait()
        silent.close()
    # The inline form still works (scripts), with a warning that says what to use instead.
    out = subprocess.run([str(MFAGATE), "--socket", daemon.socket, "enroll", "--user", "bob", "--json", "--secret", SECRET],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and json.loads(out.stdout)["secret"] == SECRET
    assert "visible to every local user" in out.stderr and "--secret -" in out.stderr


def test_secret_from_a_pipe_never_in_cmdline(daemon):
    hygiene.register("TOTP secret", SECRET)
    proc = subprocess.Popen([str(MFAGATE), "--socket", daemon.socket, "enroll", "--user", "bob", "--json", "--secret", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_reading(proc.pid)
    assert SECRET.encode() not in cmdline(proc.pid)
    out, err = proc.communicate(SECRET + "\n", timeout=30)
    assert proc.returncode == 0, err
    assert json.loads(out)["secret"] == SECRET and "visible" not in err
    # Nothing on standard input: refused, nothing enrolled.
    empty = subprocess.run([str(MFAGATE), "--socket", daemon.socket, "enroll", "--user", "carol", "--json", "--secret", "-"],
                           input="", capture_output=True, text=True, timeout=30)
    assert empty.returncode == 2 and "nothing was read" in empty.stderr


def test_code_from_a_terminal_with_echo_off(daemon):
    e = daemon.enroll("nobody")
    code = e["recovery_codes"][0]
    cli = daemon.readable_copy(MFAGATE)
    cmd = as_account("nobody", [str(cli), "--socket", daemon.socket, "recovery-codes", "--regenerate", "--code", "-"])
    child = pexpect.spawn(cmd[0], cmd[1:], encoding="utf-8", timeout=30)
    child.expect("Current code from your authenticator: ")
    assert code.encode() not in cmdline(child.pid)
    child.sendline(oathtool_totp(e["secret"]))
    child.expect("New recovery codes for nobody")
    typed_echo = child.before
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert not any(ch.isdigit() for ch in typed_echo), "echo was off while the code was typed"


def test_recovery_code_from_a_pipe_disables(daemon):
    e = daemon.enroll("nobody")
    recovery = e["recovery_codes"][2]
    cli = daemon.readable_copy(MFAGATE)
    proc = subprocess.Popen(as_account("nobody", [str(cli), "--socket", daemon.socket, "disable", "--code", "-"]),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_reading(proc.pid)
    assert recovery.encode() not in cmdline(proc.pid)
    out, err = proc.communicate(recovery + "\n", timeout=30)
    assert proc.returncode == 0, err
    hygiene.capture("mfagate disable stdout", out)
    assert json.loads(daemon.cli("status", "--user", "nobody", "--json", check=True).stdout)["enrolled"] is False


def test_secret_from_a_terminal_with_echo_off(daemon):
    hygiene.register("TOTP secret", SECRET)
    child = pexpect.spawn(str(MFAGATE), ["--socket", daemon.socket, "enroll", "--user", "carol", "--json", "--secret", "-"],
                          encoding="utf-8", timeout=30)
    child.expect("Secret \\(base32\\): ")
    assert SECRET.encode() not in cmdline(child.pid)
    child.sendline(SECRET)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    echoed, _, rest = child.before.partition("{")
    assert SECRET not in echoed, "echo was off while the secret was typed"
    assert json.loads("{" + rest)["secret"] == SECRET
