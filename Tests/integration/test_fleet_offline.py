# SPDX-License-Identifier: Apache-2.0
"""The fleet's offline cache (issue 20, docs/fleet.md "When the database is away"): with
`fleet_offline = cache`, a host keeps a sealed copy of the record of each user it has read or
written, and while the real PostgreSQL (fleet_pg.py) is stopped it checks logins against that
copy, records used codes locally, and pushes them when the database is back. Two daemons stand
for two hosts; codes come from oathtool."""
from __future__ import annotations

import os
import shutil
import signal
import time

import pytest

from fleet_pg import available, fleet_config
from mfagate_harness import oathtool_totp, wrong_code
from test_fleet import cluster, fleet  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(not available(), reason="PostgreSQL 15 (postgresql package) is not installed")

OFFLINE = "fleet_offline = cache\ndatabase_timeout = 1s\ndatabase_retry = 1s\n"
SECURE = "failmode=secure timeout=5"
SAFE = "failmode=safe timeout=5"


def wait_for_retry() -> None:
    time.sleep(1.2)  # database_retry = 1s: the next request reconnects


def test_offline_login_on_a_host_that_saw_the_user_refuses_its_used_code_and_pushes_it(fleet, cluster):
    a, b = fleet(2, extra=OFFLINE)
    e = a.enroll("alice")
    assert a.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    code = oathtool_totp(e["secret"], at="now + 30 seconds")
    cluster.stop()
    try:
        assert a.pam("alice", code, args=SECURE).result == "PAM_SUCCESS"
        r = a.pam("alice", code, args=SECURE)
        assert r.result == "PAM_AUTH_ERR", r
        # b never read alice: it has no copy, and answers by the failmode.
        assert b.pam("alice", code, args=SECURE).result == "PAM_AUTHINFO_UNAVAIL"
        assert b.pam("alice", code, args=SAFE).result == "PAM_IGNORE"
    finally:
        cluster.start()
    assert "replayed code" in a.log()
    assert a.log().count("serving logins from this host's offline cache") == 1
    assert a.log().count("fleet database unreachable") == 1
    wait_for_retry()
    # a's next request reaches the database and pushes the used step before anything else.
    assert '"enrolled": true' in a.cli("status", "--user", "alice", "--json", check=True).stdout
    r = b.pam("alice", code)
    assert r.result == "PAM_AUTH_ERR", r
    assert "replayed code" in b.log()
    assert "offline uses of 1 user pushed" in a.log(), a.log()
    assert a.log().count("fleet database reachable again") == 1
    assert not (a.state / "fleet-cache" / "p-alice").exists() and (a.state / "fleet-cache" / "c-alice").exists()


def test_a_copy_older_than_fleet_offline_max_age_is_not_used(fleet, cluster, tmp_path):
    (a,) = fleet(1, extra=OFFLINE, start=False)
    offset = tmp_path / "clock-offset"
    offset.write_text("0\n")
    a.daemon_args = ["--clock-offset-file", str(offset)]
    a.start()
    e = a.enroll("alice")
    assert a.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    cluster.stop()
    try:
        assert a.pam("alice", oathtool_totp(e["secret"], at="now + 30 seconds"), args=SECURE).result == "PAM_SUCCESS"
        offset.write_text(f"{7 * 86400 + 60}\n")  # the daemon's clock moves on 7 days and a minute
        os.kill(a.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "configuration reloaded" not in a.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        later = oathtool_totp(e["secret"], at=f"now + {7 * 86400 + 90} seconds")
        assert a.pam("alice", later, args=SECURE).result == "PAM_AUTHINFO_UNAVAIL"
        assert a.pam("alice", later, args=SAFE).result == "PAM_IGNORE"
    finally:
        cluster.start()
    assert "longer than fleet_offline_max_age: not used" in a.log()


def test_recovery_code_used_offline_on_one_host_and_online_on_another(fleet, cluster):
    """docs/fleet.md: a recovery code used offline on host A is refused again on A; until A has
    pushed it (at A's first request once the database is back) another host may accept it once
    more; once A has pushed, every host refuses it, and the merge never brings a code back."""
    a, b = fleet(2, extra=OFFLINE)
    e = a.enroll("alice")
    first, second = e["recovery_codes"][0], e["recovery_codes"][1]
    assert a.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    cluster.stop()
    try:
        for rc in (first, second):
            assert a.pam("alice", rc, args=SECURE).result == "PAM_SUCCESS"
            assert a.pam("alice", rc, args=SECURE).result == "PAM_AUTH_ERR"
    finally:
        cluster.start()
    wait_for_retry()
    # b is online; a has not been asked anything since the database came back, so has not pushed.
    assert b.pam("alice", first).result == "PAM_SUCCESS"
    assert '"enrolled": true' in a.cli("status", "--user", "alice", "--json", check=True).stdout
    assert b.pam("alice", second).result == "PAM_AUTH_ERR"
    assert b.pam("alice", first).result == "PAM_AUTH_ERR"
    assert '"recovery_codes_left": 8' in b.cli("status", "--user", "alice", "--json", check=True).stdout
    assert "offline uses of 1 user pushed" in a.log()


def test_a_copy_older_than_the_hosts_mark_is_not_used(fleet, cluster):
    """The rollback rule through the cache: a copy put back (or left behind by a crash) that is
    older than the version this host has seen of the user is not used."""
    (a,) = fleet(1, extra=OFFLINE)
    e = a.enroll("alice")
    assert a.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    entry = a.state / "fleet-cache" / "c-alice"
    old = entry.read_bytes()
    assert a.pam("alice", oathtool_totp(e["secret"], at="now + 30 seconds")).result == "PAM_SUCCESS"
    assert entry.read_bytes() != old
    entry.write_bytes(old)  # the copy of the first login, whose code step is older
    cluster.stop()
    try:
        r = a.pam("alice", oathtool_totp(e["secret"], at="now + 30 seconds"), args=SECURE)
        assert r.result == "PAM_AUTHINFO_UNAVAIL", r
    finally:
        cluster.start()
    assert "this host has seen: not used" in a.log()


def test_a_tombstone_read_removes_the_copy(fleet, cluster):
    a, b = fleet(2, extra=OFFLINE)
    e = a.enroll("alice")
    assert a.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    assert (a.state / "fleet-cache" / "c-alice").exists()
    b.cli("disable", "--user", "alice", check=True)
    assert '"enrolled": false' in a.cli("status", "--user", "alice", "--json", check=True).stdout
    assert not (a.state / "fleet-cache" / "c-alice").exists()
    cluster.stop()
    try:
        r = a.pam("alice", oathtool_totp(e["secret"], at="now + 30 seconds"), args=SECURE)
        assert r.result == "PAM_AUTHINFO_UNAVAIL", r
    finally:
        cluster.start()


def test_a_damaged_copy_is_not_used_and_does_not_stop_the_daemon(fleet, cluster):
    (a,) = fleet(1, extra=OFFLINE)
    e = a.enroll("alice")
    assert a.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    a.stop()
    entry = a.state / "fleet-cache" / "c-alice"
    data = bytearray(entry.read_bytes())
    data[-3] ^= 0x01
    entry.write_bytes(bytes(data))
    cluster.stop()
    try:
        a.start()
        r = a.pam("alice", oathtool_totp(e["secret"], at="now + 30 seconds"), args=SECURE)
        assert r.result == "PAM_AUTHINFO_UNAVAIL", r
    finally:
        cluster.start()
    assert "does not open with the fleet key" in a.log()


def test_the_copy_holds_no_secret_in_clear(fleet, cluster):
    (a,) = fleet(1, extra=OFFLINE)
    e = a.enroll("alice")
    assert a.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    directory = a.state / "fleet-cache"
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    data = (directory / "c-alice").read_bytes()
    assert (directory / "c-alice").stat().st_mode & 0o077 == 0
    assert e["secret"].encode() not in data and b"alice" not in data


def test_with_the_default_refuse_nothing_is_cached(fleet, cluster):
    (a,) = fleet(1, extra="database_timeout = 1s\ndatabase_retry = 1s\n")
    e = a.enroll("alice")
    assert a.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    assert not (a.state / "fleet-cache").exists()
    cluster.stop()
    try:
        r = a.pam("alice", oathtool_totp(e["secret"], at="now + 30 seconds"), args=SECURE)
        assert r.result == "PAM_AUTHINFO_UNAVAIL", r
    finally:
        cluster.start()


def test_wrong_codes_offline_lock_out_on_that_host(fleet, cluster):
    """Offline the shared ledger is away: wrong codes are counted and locked out per host."""
    (a,) = fleet(1, extra=OFFLINE + "max_failures = 3\n")
    e = a.enroll("alice")
    assert a.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    code = oathtool_totp(e["secret"], at="now + 30 seconds")
    cluster.stop()
    try:
        for _ in range(3):
            assert a.pam("alice", wrong_code(code), args=SECURE).result == "PAM_AUTH_ERR"
        assert a.pam("alice", code, args=SECURE).result == "PAM_MAXTRIES"
    finally:
        cluster.start()


def test_switching_back_to_refuse_with_unpushed_uses_says_so(fleet, cluster):
    (a,) = fleet(1, extra=OFFLINE)
    e = a.enroll("alice")
    assert a.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    cluster.stop()
    try:
        assert a.pam("alice", oathtool_totp(e["secret"], at="now + 30 seconds"), args=SECURE).result == "PAM_SUCCESS"
        a.stop()
        a.write_config("optional", fleet_config(cluster, a.database, a.key, "database_timeout = 1s\n"))
        a.start()
    finally:
        cluster.start()
    assert "holds offline uses of 1 user(s) not pushed to the fleet database; set fleet_offline = cache" in a.log()
