# SPDX-License-Identifier: Apache-2.0
"""`remember` in fleet mode (issue 19 part 2): the entries are fleet-wide and live inside the sealed
user record, so the fleet key's MAC, the rollback marks and the tombstones cover them: a database
writer can neither make one nor bring back one that was forgotten. Two daemons as two hosts on
Debian's PostgreSQL (fleet_pg.py), codes from oathtool, logins through the real libpam."""
from __future__ import annotations

import pytest

from fleet_pg import available
from mfagate_harness import oathtool_totp
from test_fleet import cluster, fleet  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(not available(), reason="PostgreSQL 15 (postgresql package) is not installed")

EXTRA = "remember = 8h\n"
HOST = "198.51.100.7"


def asked(r) -> bool:
    return any("Verification code" in m for m in r.messages)


def test_an_entry_made_through_one_host_serves_the_other_and_forget_on_either_ends_it(fleet):
    a, b = fleet(2, extra=EXTRA, mode="required")
    e = a.enroll("alice")
    assert a.pam("alice", oathtool_totp(e["secret"]), rhost=HOST).result == "PAM_SUCCESS"
    for host in (a, b):
        r = host.pam("alice", "000000", rhost=HOST)
        assert r.result == "PAM_IGNORE" and not asked(r), (r, host.log()[-2000:])
    assert "remembered: right code from 198.51.100.7" in b.log()
    other = b.pam("alice", "000000", rhost="198.51.100.8")
    assert other.result == "PAM_AUTH_ERR" and asked(other), other
    assert "1 remembered host forgotten" in b.cli("forget", "--user", "alice", check=True).stdout
    for host in (a, b):
        r = host.pam("alice", "000000", rhost=HOST)
        assert r.result == "PAM_AUTH_ERR" and asked(r), r


def test_a_database_writer_can_neither_make_nor_bring_back_an_entry(fleet, cluster):
    """The row with an entry is snapshotted, the entry forgotten (a newer row, read by both hosts),
    and the snapshot written back: both hosts refuse the old row (its sealed version is below their
    marks), never skip the code. Bob's row (with an entry) copied over alice's does not open (the
    name is inside the seal), nor does a row whose sealed bytes were edited."""
    a, b = fleet(2, extra=EXTRA, mode="required")
    e = a.enroll("alice")
    bob = a.enroll("bob")
    assert a.pam("alice", oathtool_totp(e["secret"]), rhost=HOST).result == "PAM_SUCCESS"
    assert a.pam("bob", oathtool_totp(bob["secret"]), rhost=HOST).result == "PAM_SUCCESS"
    cluster.psql("CREATE TABLE snapshot AS SELECT * FROM mfagate_users WHERE name = 'alice'", fleet.database)
    a.cli("forget", "--user", "alice", check=True)
    for host in (a, b):  # both read the newer row (and mark its version)
        assert host.pam("alice", "000000", rhost=HOST).result == "PAM_AUTH_ERR"
    cluster.psql("UPDATE mfagate_users u SET version = s.version, sealed = s.sealed FROM snapshot s WHERE u.name = s.name",
                 fleet.database)
    for host in (a, b):
        r = host.pam("alice", "000000", rhost=HOST, args="failmode=safe")
        assert r.result == "PAM_AUTHINFO_UNAVAIL", r
        assert "older than version" in host.log()
    # A row of bob (with his entry for the same host) relabelled as alice's.
    b.cli("reset", "--user", "alice", check=True)
    again = b.enroll("alice")
    assert a.pam("alice", oathtool_totp(again["secret"], at="now + 30 seconds"), rhost="198.51.100.9").result == "PAM_SUCCESS"
    cluster.psql("UPDATE mfagate_users u SET version = s.version + 1000000, sealed = s.sealed FROM mfagate_users s "
                 "WHERE u.name = 'alice' AND s.name = 'bob'", fleet.database)
    for host in (a, b):
        r = host.pam("alice", "000000", rhost=HOST, args="failmode=safe")
        assert r.result == "PAM_AUTHINFO_UNAVAIL", r
    assert "it does not open with this host's fleet key" in a.log()
    # bob's own row with one byte of the sealed record changed.
    cluster.psql("UPDATE mfagate_users SET sealed = set_byte(sealed, 40, get_byte(sealed, 40) # 1) WHERE name = 'bob'",
                 fleet.database)
    r = b.pam("bob", "000000", rhost=HOST, args="failmode=safe")
    assert r.result == "PAM_AUTHINFO_UNAVAIL", r
