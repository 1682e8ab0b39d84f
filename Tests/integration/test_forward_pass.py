# SPDX-License-Identifier: Apache-2.0
"""forward_pass (issue 19 part 3): one prompt `Password and code: `; the module splits the code off,
sends only the code to the daemon and puts the password in PAM_AUTHTOK for `pam_unix use_first_pass`.
Through the real libpam (pam_driver, pam_start_confdir) with the real pam_unix, which checks a real
password hash in a private /etc/shadow (a bind mount in a private mount namespace, never the host's
file); pam_exec's expose_authtok shows what PAM_AUTHTOK held; a relay between the module and the
daemon records every byte the module sent. Codes from oathtool."""
from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

import hygiene
from mfagate_harness import PAM_DRIVER, SHIM, PamResult, oathtool_totp, wrong_code

PASSWORD = "sesame open"
DIGIT_PASSWORD = "sesame2024"  # a password that itself ends in digits
COMBINED = "PROMPT_ECHO_OFF: Password and code: "


class Relay:
    """A Unix socket in front of the daemon's that forwards both ways and keeps what clients sent."""

    def __init__(self, directory: Path, target: str):
        self.path = str(directory / "relay.sock")
        self.target = target
        self.sent = bytearray()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        os.chmod(self.path, 0o666)
        self.server.listen(16)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while data := src.recv(65536):
                if record:
                    self.sent += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        # Wake the accepting thread before the descriptor is closed (and its number reused by the
        # next test's socket, which that thread would then serve).
        try:
            self.server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(timeout=5)
        self.server.close()
        os.unlink(self.path)


@pytest.fixture
def stack(daemon_factory, tmp_path):
    """A daemon (mode optional), a PAM service `pam_mfagate forward_pass` then `pam_unix use_first_pass`
    (with pam_exec writing PAM_AUTHTOK to a file between them), carol and dave with real password
    hashes in a private copy of /etc/shadow."""
    d = daemon_factory("optional")
    relay = Relay(d.dir / "run", d.socket)
    authtok = tmp_path / "authtok"
    reveal = tmp_path / "reveal-authtok"
    reveal.write_text(f"#!/bin/sh\ntr -d '\\000' > {authtok}\n")
    os.chmod(reveal, 0o700)
    (d.confdir / "forward").write_text(
        f"auth requisite {SHIM} socket={relay.path} forward_pass\n"
        f"auth optional pam_exec.so expose_authtok quiet {reveal}\n"
        "auth required pam_unix.so use_first_pass\n"
        "account required pam_permit.so\n")
    shadow = tmp_path / "shadow"
    lines = []
    hashes = {name: subprocess.run(["openssl", "passwd", "-6", pw], check=True, capture_output=True, text=True).stdout.strip()
              for name, pw in (("carol", PASSWORD), ("dave", PASSWORD), ("erin", DIGIT_PASSWORD))}
    for line in Path("/etc/shadow").read_text().splitlines():
        name = line.split(":", 1)[0]
        if name in hashes:
            fields = line.split(":")
            fields[1] = hashes[name]
            line = ":".join(fields)
        lines.append(line)
    assert all(any(line.startswith(f"{n}:") for line in lines) for n in hashes), "test accounts missing"
    shadow.write_text("\n".join(lines) + "\n")
    os.chmod(shadow, 0o640)

    def login(user: str, *answers: str) -> tuple[PamResult, str]:
        if authtok.exists():
            authtok.unlink()
        cmd = [str(PAM_DRIVER), str(d.confdir), "forward", user, "--rhost", "192.0.2.44"]
        for a in answers:
            cmd += ["--answer", a]
        script = 'mount -n --bind "$1" /etc/shadow && shift && exec "$@"'
        out = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(shadow), *cmd],
                             capture_output=True, text=True, timeout=30)
        hygiene.capture("pam_driver output", out.stdout + out.stderr)
        return PamResult(out.stdout), (authtok.read_text() if authtok.exists() else "")

    try:
        yield d, relay, login
    finally:
        relay.close()


def test_right_password_and_code_in_one_answer_only_the_code_reaches_the_daemon(stack):
    d, relay, login = stack
    e = d.enroll("carol")
    code = oathtool_totp(e["secret"])
    r, authtok = login("carol", PASSWORD + code)
    assert r.result == "PAM_SUCCESS", (r, d.log()[-2000:])
    assert [m for m in r.messages if m.startswith("PROMPT")] == [COMBINED], r.messages
    assert authtok == PASSWORD, "PAM_AUTHTOK must hold the password and never the code"
    assert code.encode() in relay.sent and PASSWORD.encode() not in relay.sent
    assert b"sesame" not in relay.sent and "sesame" not in d.log()


def test_wrong_password_or_wrong_code_fails(stack):
    d, relay, login = stack
    e = d.enroll("carol")
    code = oathtool_totp(e["secret"])
    r, _ = login("carol", "not the password" + code)
    assert r.result == "PAM_AUTH_ERR", r  # pam_unix refuses; the code itself was right
    assert 'result=success' in d.log()
    r, _ = login("carol", PASSWORD + wrong_code(code))
    assert r.result == "PAM_AUTH_ERR", r
    assert 'reason="wrong code"' in d.log() or 'reason="replayed code"' in d.log()
    r, _ = login("carol", PASSWORD)  # no code at the end: the daemon gets an empty answer
    assert r.result == "PAM_AUTH_ERR", r
    assert PASSWORD.encode() not in relay.sent


def test_a_password_that_ends_in_digits_and_a_recovery_code(stack):
    d, relay, login = stack
    e = d.enroll("erin")
    code = oathtool_totp(e["secret"])
    r, authtok = login("erin", DIGIT_PASSWORD + code)
    assert r.result == "PAM_SUCCESS" and authtok == DIGIT_PASSWORD, (r, authtok)
    recovery = e["recovery_codes"][0]
    r, authtok = login("erin", DIGIT_PASSWORD + recovery)
    assert r.result == "PAM_SUCCESS" and authtok == DIGIT_PASSWORD, (r, authtok)
    assert 'reason="recovery code, 9 left"' in d.log()
    assert DIGIT_PASSWORD.encode() not in relay.sent and recovery.encode() in relay.sent


def test_a_user_asked_no_code_is_asked_for_the_password_alone(stack):
    """dave is not enrolled and the mode is optional: the daemon's verdict is IGNORE without a
    question; the module then asks libpam's `Password: ` so pam_unix still gets it."""
    d, relay, login = stack
    r, authtok = login("dave", PASSWORD)
    assert r.result == "PAM_SUCCESS" and authtok == PASSWORD, (r, authtok)
    prompts = [m for m in r.messages if m.startswith("PROMPT")]
    assert prompts == ["PROMPT_ECHO_OFF: Password: "], prompts
    r, _ = login("dave", "wrong")
    assert r.result == "PAM_AUTH_ERR", r
    assert PASSWORD.encode() not in relay.sent


def test_a_remembered_host_is_asked_for_the_password_alone(stack):
    """With `remember`, the second login from the same host needs no code: one `Password: ` prompt,
    and the password still reaches pam_unix."""
    import signal
    import time
    d, relay, login = stack
    d.write_config("optional", "remember = 8h\n")
    os.kill(d.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "configuration reloaded" not in d.log() and time.monotonic() < deadline:
        time.sleep(0.02)
    e = d.enroll("carol")
    r, _ = login("carol", PASSWORD + oathtool_totp(e["secret"]))
    assert r.result == "PAM_SUCCESS", r
    r, authtok = login("carol", PASSWORD)
    assert r.result == "PAM_SUCCESS" and authtok == PASSWORD, (r, authtok)
    assert [m for m in r.messages if m.startswith("PROMPT")] == ["PROMPT_ECHO_OFF: Password: "], r.messages
    r, _ = login("carol", "wrong")
    assert r.result == "PAM_AUTH_ERR", r


def test_the_daemon_down_with_failmode_safe_still_forwards_the_password(stack):
    """No daemon: with failmode=safe the module has no opinion (PAM_IGNORE), and the password it
    asks alone still decides through pam_unix."""
    d, relay, login = stack
    service = (d.confdir / "forward").read_text().replace(f"socket={relay.path}", f"socket={d.socket} failmode=safe timeout=2")
    (d.confdir / "forward").write_text(service)
    d.stop()
    r, authtok = login("carol", PASSWORD)
    assert r.result == "PAM_SUCCESS" and authtok == PASSWORD, (r, authtok)
    assert [m for m in r.messages if m.startswith("PROMPT")] == ["PROMPT_ECHO_OFF: Password: "], r.messages
    assert login("carol", "wrong")[0].result == "PAM_AUTH_ERR"
