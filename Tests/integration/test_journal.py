# SPDX-License-Identifier: Apache-2.0
"""Structured logging to journald, without a journald: the daemon runs in a private mount namespace
whose /run is a temp dir holding a datagram socket at systemd/journal/socket, the address the real
libsystemd's sd_journal_sendv writes to. The test reads the entries in journald's native protocol.
JOURNAL_STREAM is set to the daemon's stderr, as systemd does for a service."""
import os
import shutil
import socket
import struct
import subprocess
import time

import pytest

from mfagate_harness import MFAGATED, Daemon, oathtool_totp, wrong_code

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="needs root and unshare for a private mount namespace")

LOGIN_ID = "7d0d0ab36ec24c3ebdc12cc3ee8182d0"
READY_ID = "dd04c02e147043e0a0a2784f2db848d8"


def parse_native(datagram: bytes) -> dict[str, str]:
    """journald's native protocol: `KEY=value\\n`, or `KEY\\n` + little-endian u64 length + value + `\\n`."""
    fields, i = {}, 0
    while i < len(datagram):
        newline = datagram.index(b"\n", i)
        line = datagram[i:newline]
        if b"=" in line:
            key, value = line.split(b"=", 1)
            i = newline + 1
        else:
            key = line
            (length,) = struct.unpack_from("<Q", datagram, newline + 1)
            start = newline + 9
            value = datagram[start:start + length]
            i = start + length + 1
        fields[key.decode()] = value.decode(errors="replace")
    return fields


class FakeJournal:
    def __init__(self, directory):
        self.run = directory / "run"
        (self.run / "systemd" / "journal").mkdir(parents=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.run / "systemd" / "journal" / "socket"))
        self.entries: list[dict[str, str]] = []
        self.raw: list[bytes] = []

    def wait_for(self, predicate, timeout: float = 10) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.entries:
                if predicate(entry):
                    return entry
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching journal entry in {self.entries}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            self.raw.append(data)
            self.entries.append(parse_native(data))


@pytest.fixture
def journaled():
    made = []

    def start():
        d = Daemon("optional")
        journal = FakeJournal(d.dir)
        log = open(d.log_path, "ab")
        st = os.fstat(log.fileno())
        env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        script = f'mount -n --bind "$1" /run && shift && exec "$@"'
        d.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                                   str(journal.run), str(MFAGATED), "--config", str(d.config), "--allow-root"],
                                  stdout=log, stderr=log, env=env)
        log.close()
        made.append((d, journal))
        journal.wait_for(lambda e: e.get("MESSAGE_ID") == READY_ID)
        return d, journal

    yield start
    for d, journal in made:
        d.close()
        journal.sock.close()


def test_login_decisions_reach_the_journal_as_structured_fields(journaled):
    d, journal = journaled()
    e = d.enroll("alice")
    code = oathtool_totp(e["secret"])
    bad = wrong_code(code)
    assert d.pam("alice", bad, rhost="192.0.2.7").result == "PAM_AUTH_ERR"
    assert d.pam("alice", code, rhost="192.0.2.7").result == "PAM_SUCCESS"
    denied = journal.wait_for(lambda x: x.get("MESSAGE_ID") == LOGIN_ID and x.get("MFAGATE_RESULT") == "denied")
    success = journal.wait_for(lambda x: x.get("MESSAGE_ID") == LOGIN_ID and x.get("MFAGATE_RESULT") == "success")
    for entry in (denied, success):
        assert entry["MFAGATE_USER"] == "alice"
        assert entry["MFAGATE_SERVICE"] == "mfa-test"
        assert entry["MFAGATE_RHOST"] == "192.0.2.7"
        assert entry["MFAGATE_PEER"].startswith("uid=0 ")
        assert entry["SYSLOG_IDENTIFIER"] == "mfagated"
        assert entry["MESSAGE"].startswith("login ")
    assert denied["MFAGATE_REASON"] == "wrong code" and denied["PRIORITY"] == "5"
    assert success["MFAGATE_REASON"] == "totp" and success["PRIORITY"] == "6"
    enrolled = journal.wait_for(lambda x: x.get("MESSAGE_ID") == "cd16482ad6b24c8eaf995edf13030e16")
    assert enrolled["MFAGATE_USER"] == "alice"
    # No secret, code or recovery code in any entry; nothing went to stderr as plain lines.
    everything = b"".join(journal.raw).decode(errors="replace")
    for secret in [e["secret"], code, bad, *e["recovery_codes"]]:
        assert secret not in everything
    assert "login" not in d.log() and "ready" not in d.log(), d.log()


def test_without_a_journal_the_daemon_falls_back_to_plain_lines(daemon_factory):
    """JOURNAL_STREAM naming stderr but no journald socket (sd_journal_sendv would drop entries
    silently): the daemon must keep writing plain lines."""
    d = daemon_factory(start=False)
    empty_run = d.dir / "empty-run"
    empty_run.mkdir()
    log = open(d.log_path, "ab")
    st = os.fstat(log.fileno())
    env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
    d.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                               'mount -n --bind "$1" /run && shift && exec "$@"', "sh",
                               str(empty_run), str(MFAGATED), "--config", str(d.config), "--allow-root"],
                              stdout=log, stderr=log, env=env)
    log.close()
    deadline = time.monotonic() + 10
    while "ready" not in d.log():
        assert time.monotonic() < deadline and d.proc.poll() is None, d.log()
        time.sleep(0.02)
    assert "notice ready" in d.log()


def test_journal_stream_naming_another_file_keeps_plain_lines(daemon_factory, tmp_path):
    """JOURNAL_STREAM inherited from a parent whose stderr was journald's, but ours is a file: plain lines."""
    other = tmp_path / "other"
    other.write_text("")
    st = os.stat(other)
    d = daemon_factory(start=False)
    old = os.environ.get("JOURNAL_STREAM")
    os.environ["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    try:
        d.start()
    finally:
        if old is None:
            del os.environ["JOURNAL_STREAM"]
        else:
            os.environ["JOURNAL_STREAM"] = old
    assert "notice ready" in d.log()
