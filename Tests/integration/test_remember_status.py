# SPDX-License-Identifier: Apache-2.0
"""`mfagate status` lists the user's remembered hosts (`remember`): each live entry's rhost, PAM
service, since and until; none after `forget`, after the time, or with `remember` off; the same
access rule as status (the user's own, root anyone's). Real sshd and ssh for the logins
(test_remember.py's fixture), codes from oathtool; the fleet store on Debian's PostgreSQL. The
protocol stays readable across versions: an older CLI's plain STATUS gets the old answer, and an
older daemon (which closes the connection on the new flags byte) is asked again the old way."""
import json
import socket
import struct
import threading
import time

import pytest

import fake_daemon as fd
from fleet_pg import available
from mfagate_harness import MFAGATE, oathtool_totp
from test_fleet import cluster, fleet  # noqa: F401 (fixtures)
from test_remember import SERVICE, login, asked, remembered_login, sshd  # noqa: F401 (fixtures)
import subprocess

KEYS = ["user", "enrolled", "recovery_codes_left", "method", "enrolled_since", "last_success", "pending", "remembered"]


def status(d, *args, user=None):
    out = d.cli("status", *args, "--json", user=user, check=True).stdout
    return json.loads(out)


def utc(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def test_status_lists_the_host_and_service_of_a_remembered_login_and_none_after_forget(sshd):
    d, box, clock = sshd
    e = d.enroll("mfauser")
    assert status(d, "--user", "mfauser")["remembered"] == []
    r = login(box, clock.code(e["secret"]))
    assert r.ok and asked(r), r
    remembered_login(d, box)
    # The user's own status (no --user) and root's show the same entry.
    own = status(d, user="mfauser")
    assert list(own) == KEYS, own
    assert [(h["rhost"], h["service"]) for h in own["remembered"]] == [("127.0.0.1", SERVICE)], own
    host = own["remembered"][0]
    assert sorted(host) == ["rhost", "service", "since", "until"]
    assert host["until"] - host["since"] == 8 * 3600
    # since is the daemon's time of the right code (its clock runs clock.offset ahead)
    assert abs(host["since"] - (time.time() + clock.offset)) < 120, (host, clock.offset)
    assert status(d, "--user", "mfauser") == own
    text = d.cli("status", "--user", "mfauser", check=True).stdout
    assert f"127.0.0.1 via {SERVICE} since {utc(host['since'])} until {utc(host['until'])}" in text, text
    assert "mfagate forget ends them" in text
    # Never anything secret in it.
    assert e["secret"] not in text and not any(c in text for c in e["recovery_codes"])
    # Another user may not look, as before.
    other = d.cli("status", "--user", "mfauser", user="nobody")
    assert other.returncode == 1 and "you may only ask about your own enrollment" in other.stderr, other
    assert "127.0.0.1" not in other.stdout + other.stderr
    # After forget: none, and the text says nothing about remembered hosts.
    d.cli("forget", "--user", "mfauser", check=True)
    assert status(d, user="mfauser")["remembered"] == []
    assert "remembered" not in d.cli("status", user="mfauser", check=True).stdout


def test_an_entry_is_listed_until_its_time_and_not_with_remember_off(sshd):
    d, box, clock = sshd
    e = d.enroll("mfauser")
    assert login(box, clock.code(e["secret"])).ok
    clock.move(8 * 3600 - 120)
    assert len(status(d, "--user", "mfauser")["remembered"]) == 1
    clock.move(120)  # created + 8h: over, though the entry is still stored
    assert status(d, "--user", "mfauser")["remembered"] == []
    clock.move(-8 * 3600)
    assert len(status(d, "--user", "mfauser")["remembered"]) == 1
    d.write_config("required", "")  # remember off
    clock.reload()
    assert status(d, "--user", "mfauser")["remembered"] == []
    r = login(box, clock.code(e["secret"]))
    assert r.ok and asked(r), r


@pytest.mark.skipif(not available(), reason="PostgreSQL 15 (postgresql package) is not installed")
def test_the_fleet_store_lists_the_entries_of_its_sealed_record_on_every_host(fleet):
    a, b = fleet(2, extra="remember = 8h\n", mode="required")
    e = a.enroll("alice")
    assert a.pam("alice", oathtool_totp(e["secret"]), rhost="198.51.100.7").result == "PAM_SUCCESS"
    for host in (a, b):
        listed = status(host, "--user", "alice")["remembered"]
        assert [(h["rhost"], h["service"]) for h in listed] == [("198.51.100.7", "mfa-test")], (listed, host.log()[-1500:])
    b.cli("forget", "--user", "alice", check=True)
    for host in (a, b):
        assert status(host, "--user", "alice")["remembered"] == []


def test_an_older_cli_gets_the_old_answer(daemon_factory):
    """The plain STATUS frame an older mfagate sends: the answer ends where it always did."""
    d = daemon_factory("required", "remember = 8h\n")
    e = d.enroll("alice")
    assert d.pam("alice", oathtool_totp(e["secret"]), rhost="198.51.100.7").result == "PAM_SUCCESS"
    assert len(status(d, "--user", "alice")["remembered"]) == 1
    plain = fd.frame(bytes([0x11, fd.VERSION]) + fd.enc_str("alice"))
    answer = d.raw(plain)
    (n,) = struct.unpack(">I", answer[:4])
    body = answer[4:]
    assert len(body) == n and body[0] == 0x91, answer
    # str user, u8 enrolled, u16 left, str method, str since, str last, u8 pending: nothing after.
    pos = 1 + 2 + 5 + 1 + 2
    for _ in range(3):
        (k,) = struct.unpack(">H", body[pos:pos + 2])
        pos += 2 + k
    assert pos + 1 == len(body), body


def old_daemon(path: str, stop: threading.Event, seen: list):
    """What an mfagated of the version before speaks: a STATUS with bytes after the user name is a
    malformed frame (closed without an answer); a plain one gets the old answer."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(4)
    s.settimeout(0.1)
    while not stop.is_set():
        try:
            conn, _ = s.accept()
        except socket.timeout:
            continue
        with conn:
            conn.settimeout(5)
            (n,) = struct.unpack(">I", conn.recv(4, socket.MSG_WAITALL))
            payload = conn.recv(n, socket.MSG_WAITALL)
            seen.append(payload)
            (k,) = struct.unpack(">H", payload[2:4])
            if len(payload) != 4 + k:
                continue
            conn.sendall(fd.frame(bytes([0x91]) + fd.enc_str("alice") + bytes([1, 0, 7]) + fd.enc_str("totp")
                                  + fd.enc_str("1800000000") + fd.enc_str("") + bytes([0])))
    s.close()


def test_an_older_daemon_is_asked_again_the_old_way_and_the_cli_says_why_the_list_is_missing(tmp_path):
    path = str(tmp_path / "old.sock")
    stop, seen = threading.Event(), []
    thread = threading.Thread(target=old_daemon, args=(path, stop, seen), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not (tmp_path / "old.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        run = lambda *a: subprocess.run([str(MFAGATE), "--socket", path, "status", "--user", "alice", *a],
                                        capture_output=True, text=True, timeout=30)
        text = run()
        assert text.returncode == 0, text
        assert "alice: enrolled since" in text.stdout and "7 recovery code(s) left" in text.stdout, text
        assert f"remembered hosts: not shown (mfagated at {path} is older than this mfagate; upgrade it)" in text.stdout
        js = run("--json")
        assert js.returncode == 0 and json.loads(js.stdout)["remembered"] is None, js
        assert [len(p) for p in seen] == [4 + 5 + 1, 4 + 5] * 2, seen  # flagged, then plain; twice
    finally:
        stop.set()
        thread.join(timeout=5)
