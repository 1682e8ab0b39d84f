# SPDX-License-Identifier: Apache-2.0
"""The daemon under a service manager, without systemd as PID 1: socket activation through the real
`systemd-socket-activate` (it binds the socket, waits for the first connection, then execs mfagated
with LISTEN_FDS), and the sd_notify protocol read from a datagram socket standing in for
systemd's NOTIFY_SOCKET. Each test fails if the behaviour it names breaks."""
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from mfagate_harness import MFAGATED, Daemon, oathtool_totp, wrong_code

ACTIVATE = shutil.which("systemd-socket-activate")
pytestmark = pytest.mark.skipif(ACTIVATE is None, reason="systemd-socket-activate (package systemd) is not installed")


class NotifyListener:
    """A datagram socket in the daemon's temp dir, passed as NOTIFY_SOCKET; collects what sd_notify sends."""

    def __init__(self, directory: Path):
        self.path = str(directory / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[str] = []

    def wait_for(self, line: str, timeout: float = 10) -> list[str]:
        """Reads datagrams until one holds `line` as one of its lines; returns everything read."""
        deadline = time.monotonic() + timeout
        while not any(line in m.split("\n") for m in self.messages):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {line!r} from sd_notify; got {self.messages}")
            self.sock.settimeout(left)
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
        return self.messages

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def activated():
    """A Daemon whose process is systemd-socket-activate (which execs into mfagated on the first
    connection, keeping its PID); stopped by that PID and cleaned up by Daemon.close()."""
    made = []

    def start(*listen: str, env: dict[str, str] | None = None, mode: str = "optional"):
        d = Daemon(mode)
        notify = NotifyListener(d.dir)
        cmd = [ACTIVATE]
        for address in listen or (d.socket,):
            cmd += ["-l", address]
        for key, value in {"NOTIFY_SOCKET": notify.path, **(env or {})}.items():
            cmd += ["-E", f"{key}={value}"]
        cmd += [str(MFAGATED), "--config", str(d.config), "--allow-root"]
        log = open(d.log_path, "ab")
        d.proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while not os.path.exists(d.socket) and listen == ():
            assert time.monotonic() < deadline and d.proc.poll() is None, d.log()
            time.sleep(0.02)
        made.append((d, notify))
        return d, notify

    yield start
    for d, notify in made:
        d.close()
        notify.close()


def test_socket_activated_daemon_serves_a_real_login_and_reports_ready(activated):
    d, notify = activated()
    assert notify.messages == [] and "ready" not in d.log(), "nothing runs before the first connection"
    e = d.enroll("alice")  # this first connection makes systemd-socket-activate exec mfagated
    messages = notify.wait_for("READY=1")
    assert "activation=systemd" in d.log() and f"socket={d.socket}" in d.log()
    assert any("STATUS=serving on" in m for m in messages)
    code = oathtool_totp(e["secret"])
    assert d.pam("alice", wrong_code(code)).result == "PAM_AUTH_ERR"
    assert d.pam("alice", code).result == "PAM_SUCCESS"
    assert d.pam("alice", code).result == "PAM_AUTH_ERR", "replay refused through the inherited socket too"


def test_sigterm_sends_stopping_and_leaves_the_socket_units_file(activated):
    d, notify = activated()
    d.enroll("alice")
    notify.wait_for("READY=1")
    pid = d.proc.pid
    os.kill(pid, signal.SIGTERM)
    assert d.proc.wait(timeout=15) == 0
    notify.wait_for("STOPPING=1")
    assert "stopped" in d.log()
    # The socket belongs to the socket unit: a standalone daemon removes its own, an activated one must not.
    assert os.path.exists(d.socket), "the daemon unlinked a socket file systemd owns"


def test_watchdog_pings_at_half_the_interval(activated):
    d, notify = activated(env={"WATCHDOG_USEC": "400000"})
    d.cli("status", "--user", "alice", check=True)
    notify.wait_for("READY=1")
    started = time.monotonic()
    while sum(m == "WATCHDOG=1" for m in notify.messages) < 4:
        notify.sock.settimeout(2)
        notify.messages.append(notify.sock.recv(4096).decode())
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"4 pings took {elapsed:.2f}s with WATCHDOG_USEC=0.4s"


def test_no_watchdog_pings_unless_asked(activated):
    d, notify = activated()
    d.cli("status", "--user", "alice", check=True)
    notify.wait_for("READY=1")
    time.sleep(1)
    notify.sock.settimeout(0.2)
    try:
        while True:
            notify.messages.append(notify.sock.recv(4096).decode())
    except socket.timeout:
        pass
    assert "WATCHDOG=1" not in notify.messages


def test_two_passed_sockets_are_refused_with_a_clear_error(activated, tmp_path):
    d, _ = activated(str(tmp_path / "a.sock"), str(tmp_path / "b.sock"))
    poke(str(tmp_path / "a.sock"))
    assert d.proc.wait(timeout=15) == 1
    assert "exactly one ListenStream=" in d.log()


def test_a_passed_tcp_socket_is_refused(activated):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d, _ = activated(f"127.0.0.1:{port}")
    poke_tcp(port)
    assert d.proc.wait(timeout=15) == 1
    assert "not a listening Unix stream socket" in d.log()


def test_standalone_daemon_sends_ready_too(daemon_factory):
    d = daemon_factory(start=False)
    notify = NotifyListener(d.dir)
    try:
        log = open(d.log_path, "ab")
        d.proc = subprocess.Popen([str(MFAGATED), "--config", str(d.config), "--allow-root"], stdout=log, stderr=log,
                                  env=dict(os.environ, NOTIFY_SOCKET=notify.path))
        log.close()
        notify.wait_for("READY=1")
        assert "activation=standalone" in d.log()
        assert d.cli("status", "--user", "alice").returncode == 0
        d.stop()
        notify.wait_for("STOPPING=1")
        assert not os.path.exists(d.socket), "a standalone daemon removes the socket it made"
    finally:
        notify.close()


def poke(path: str) -> None:
    """A first connection, so systemd-socket-activate execs the daemon."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(path)
                return
        except (FileNotFoundError, ConnectionRefusedError):
            assert time.monotonic() < deadline
            time.sleep(0.05)


def poke_tcp(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return
        except ConnectionRefusedError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
