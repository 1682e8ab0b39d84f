# SPDX-License-Identifier: Apache-2.0
"""What the CLI does with an answer it cannot read (issue 17): an ERROR frame with a code it does
not know is refused with one sentence naming the code, never read as "bad request". The daemon
side is a scripted peer (fake_daemon.py) on a real Unix socket; the CLI is the real binary."""
import subprocess

import fake_daemon as fd
from mfagate_harness import MFAGATE


def cli(sock: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MFAGATE), "--socket", sock, *args], capture_output=True, text=True, timeout=30)


def test_an_unknown_error_code_is_an_error_not_bad_request(tmp_path):
    sock = str(tmp_path / "fake.sock")
    with fd.FakeDaemon(sock, [fd.RECV_ANY, fd.send(fd.error(999, "from the future"))]):
        r = cli(sock, "status", "--user", "alice")
    assert r.returncode != 0
    assert "sent an answer this mfagate cannot read (bad value: unknown error code 999)" in r.stderr, r.stderr
    assert "from the future" not in r.stdout + r.stderr
    # A known code is shown as the daemon's sentence.
    with fd.FakeDaemon(sock, [fd.RECV_ANY, fd.send(fd.error(2, "you may not ask about alice"))]):
        r = cli(sock, "status", "--user", "alice")
    assert r.returncode != 0 and "you may not ask about alice" in r.stderr, r.stderr


def test_the_fake_daemon_reads_its_numbers_from_the_module_header():
    assert (fd.VERSION, fd.MAX_PAYLOAD, fd.CONVERSE, fd.VERDICT, fd.ERROR, fd.BUSY) == (1, 65536, 0x81, 0x82, 0x9F, 5)
