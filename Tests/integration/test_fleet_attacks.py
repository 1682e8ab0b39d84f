# SPDX-License-Identifier: Apache-2.0
"""What someone with write access to the fleet database (or on the path to it) can and cannot do to
the hosts (issue 16, docs/fleet.md "What the database can and cannot do to you"): two daemons as
two hosts on Debian's PostgreSQL (fleet_pg.py), the attacks made with psql as the database owner,
codes from oathtool, logins through the real libpam."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

import hygiene
from fleet_pg import Cluster, available, fleet_config, make_key_file
from mfagate_harness import MFAGATE, MFAGATED, oathtool_totp
from test_fleet import RowLock, cluster, fleet  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(not available(), reason="PostgreSQL 15 (postgresql package) is not installed")

REFUSED = "refusing the fleet database row of"


def row_count(cluster, database, user) -> int:
    return int(cluster.psql(f"SELECT count(*) FROM mfagate_users WHERE name = '{user}'", database).strip())


def restart(host):
    host.stop()
    host.start()


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_a_deleted_row_skips_no_code_and_offers_no_enrollment(fleet, cluster, mode):
    """DELETE of alice's row: on today's main host B lets her in with no code (optional: PAM_IGNORE)
    or offers enrollment to whoever has her password (required). Now both hosts, which have seen her
    row, refuse it (PAM_AUTHINFO_UNAVAIL, also with failmode=safe: tampering is not an outage),
    also after a restart (the marks are on disk); an admin's reset then writes a tombstone every
    host believes."""
    a, b = fleet(2, mode=mode, extra="enroll_at_login = yes\n")
    e = a.enroll("alice")
    assert b.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    cluster.psql("DELETE FROM mfagate_users WHERE name = 'alice'", fleet.database)
    restart(b)
    for host in (a, b):
        r = host.pam("alice", "123456")
        assert r.result == "PAM_AUTHINFO_UNAVAIL", r
        assert not any("enrol" in m.lower() or "otpauth" in m for m in r.messages), r
        assert f"{REFUSED} alice: alice has no row in the fleet database" in host.log(), host.log()
        assert "result=unavailable" in host.log()
        safe = host.pam("alice", "123456", args="failmode=safe")
        assert safe.result == "PAM_AUTHINFO_UNAVAIL", ("failmode=safe must not skip MFA for a deleted row", safe)
    assert "reset" in b.cli("reset", "--user", "alice", check=True).stdout
    assert row_count(cluster, fleet.database, "alice") == 1  # the tombstone
    for host in (a, b):  # not enrolled, believed: enrollment at login is offered again
        r = host.pam("alice", "123456")
        assert r.result != "PAM_AUTHINFO_UNAVAIL" and any("Scan this QR" in m for m in r.messages), r


def test_a_restored_snapshot_keeps_used_codes_used_on_both_hosts(fleet, cluster):
    """alice's row is snapshotted; she uses a recovery code on A, another on B and a TOTP code on A;
    the snapshot is written back. Today's main accepts the used codes again. Now the old row is
    refused on both hosts (its sealed version is below their marks), and an old row relabelled with
    a higher version does not open at all."""
    a, b = fleet(2)
    e = a.enroll("alice")
    assert b.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    cluster.psql("CREATE TABLE snapshot AS SELECT * FROM mfagate_users WHERE name = 'alice'", fleet.database)
    rc = e["recovery_codes"]
    totp = oathtool_totp(e["secret"], at="now + 30 seconds")
    assert a.pam("alice", rc[0]).result == "PAM_SUCCESS"
    assert b.pam("alice", rc[1]).result == "PAM_SUCCESS"
    assert a.pam("alice", totp).result == "PAM_SUCCESS"
    # The marks are written before each SUCCESS and flushed on a flush thread (docs/fleet.md,
    # "High-water marks and power cuts"): a clean stop flushes them, a SIGKILL loses none.
    a.stop()
    a.start()
    b.stop(signal.SIGKILL)
    b.start()
    restore = ("UPDATE mfagate_users u SET version = s.version, sealed = s.sealed "
               "FROM snapshot s WHERE u.name = s.name")
    cluster.psql(restore, fleet.database)
    for host in (a, b):
        for code in (rc[0], rc[1], totp):
            r = host.pam("alice", code)
            assert r.result == "PAM_AUTHINFO_UNAVAIL", (code, r)
        assert "older than version" in host.log() and "restored backup" in host.log()
    # The same old row under a version number above every mark: the version is inside the seal.
    cluster.psql(restore.replace("version = s.version", "version = s.version + 1000000000000"), fleet.database)
    for host in (a, b):
        r = host.pam("alice", rc[0], args="failmode=safe")
        assert r.result == "PAM_AUTHINFO_UNAVAIL", r
    assert "it does not open with this host's fleet key" in a.log()


def test_a_genuine_disable_on_one_host_is_believed_on_the_other(fleet, cluster):
    """A reset on A leaves a sealed tombstone (today's main deletes the row, which B must not believe
    any more); B, which had seen alice enrolled, believes it; a new enrollment made on B afterwards
    is newer than A's mark and serves A."""
    a, b = fleet(2)
    e = a.enroll("alice")
    assert b.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    assert "reset" in a.cli("reset", "--user", "alice", check=True).stdout
    assert row_count(cluster, fleet.database, "alice") == 1
    assert b.pam("alice", "123456").result == "PAM_IGNORE"
    assert '"enrolled": false' in b.cli("status", "--user", "alice", "--json", check=True).stdout
    assert b.cli("list", "--json", check=True).stdout.strip() == "[]"
    assert REFUSED not in a.log() + b.log()
    again = b.enroll("alice")
    assert a.pam("alice", oathtool_totp(again["secret"])).result == "PAM_SUCCESS"


def test_a_tombstone_cannot_be_forged_or_replayed(fleet, cluster):
    """The tombstone is sealed like a record: a database writer cannot make one for bob by copying
    alice's (the name is inside the seal), nor put alice's old tombstone back over her new
    enrollment (its version is below the marks)."""
    a, b = fleet(2)
    first = a.enroll("alice")
    bob = a.enroll("bob")
    assert b.pam("bob", oathtool_totp(bob["secret"])).result == "PAM_SUCCESS"
    assert b.pam("alice", oathtool_totp(first["secret"])).result == "PAM_SUCCESS"
    a.cli("reset", "--user", "alice", check=True)
    cluster.psql("CREATE TABLE tomb AS SELECT * FROM mfagate_users WHERE name = 'alice'", fleet.database)
    cluster.psql("UPDATE mfagate_users u SET version = t.version, sealed = t.sealed FROM tomb t WHERE u.name = 'bob'",
                 fleet.database)
    assert b.pam("bob", "123456", args="failmode=safe").result == "PAM_AUTHINFO_UNAVAIL"
    again = a.enroll("alice")
    assert b.pam("alice", oathtool_totp(again["secret"], at="now + 30 seconds")).result == "PAM_SUCCESS"
    cluster.psql("UPDATE mfagate_users u SET version = t.version, sealed = t.sealed FROM tomb t WHERE u.name = 'alice'",
                 fleet.database)
    for host in (a, b):
        assert host.pam("alice", "123456").result == "PAM_AUTHINFO_UNAVAIL"
        assert "older than version" in host.log()


def test_damaged_marks_file_never_stops_the_daemon(fleet):
    (a,) = fleet(1, start=False)
    marks = a.state / "fleet-marks"
    marks.write_text("alice not-a-number\n\x00\x01")
    os.chmod(marks, 0o600)
    a.start()
    e = a.enroll("alice")
    assert a.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    assert "starting without high-water marks" in a.log()
    assert marks.read_text().splitlines()[1].startswith("alice ")


# --- the link ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_cluster():
    c = Cluster(tls=True)
    hygiene.register("database password", c.password)
    yield c
    c.close()


def tls_host(daemon_factory, cluster, conninfo: str, extra: str = ""):
    database = cluster.new_database()
    d = daemon_factory("optional", start=False)
    d.key = make_key_file(d.dir)
    hygiene.register("fleet key", d.key.read_text().strip())
    config = fleet_config(cluster, database, d.key, extra).replace(cluster.conninfo(database), conninfo.format(db=database))
    d.write_config("optional", config)
    return d


def test_a_network_database_needs_verified_tls(tls_cluster, daemon_factory):
    """TCP to 127.0.0.1 with TLS from a test CA: verify-full works; require (no server check) is
    refused at start unless database_insecure = yes, which is logged; verify-full against another CA
    does not connect (failmode)."""
    c = tls_cluster
    verified = tls_host(daemon_factory, c, c.tcp_conninfo("{db}", "verify-full", c.ca["ca.crt"])).start()
    e = verified.enroll("alice")
    assert verified.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    assert "insecure" not in verified.log()

    unverified = tls_host(daemon_factory, c, c.tcp_conninfo("{db}", "require"))
    unverified.start(expect_ready=False)
    assert unverified.proc.wait(timeout=10) == 1
    assert "database_url connects over the network (127.0.0.1) with sslmode=require, which does not verify the server" in unverified.log()
    assert "database_insecure = yes" in unverified.log()

    checked = subprocess.run([str(MFAGATED), "--config", str(unverified.config), "--check-config"], capture_output=True, text=True)
    assert checked.returncode == 2 and "sslmode=require, which does not verify the server" in checked.stderr, checked

    default_mode = tls_host(daemon_factory, c, "host=127.0.0.1 port=%d dbname={db} user=mfagate" % c.port)
    default_mode.start(expect_ready=False)
    assert default_mode.proc.wait(timeout=10) == 1
    assert "sslmode=prefer (libpq's default)" in default_mode.log()

    service = tls_host(daemon_factory, c, "service=fleet dbname={db} user=mfagate")
    service.start(expect_ready=False)
    assert service.proc.wait(timeout=10) == 1
    assert "names the pg_service.conf service fleet, whose host this check cannot see" in service.log()

    accepted = tls_host(daemon_factory, c, c.tcp_conninfo("{db}", "require"), extra="database_insecure = yes\n").start()
    e = accepted.enroll("bob")
    assert accepted.pam("bob", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    assert "accepted because database_insecure = yes" in accepted.log()
    restart(accepted)
    assert accepted.log().count("accepted because database_insecure = yes") == 2

    impostor = tls_host(daemon_factory, c, c.tcp_conninfo("{db}", "verify-full", c.ca["other-ca.crt"])).start()
    assert impostor.pam("carol", "123456").result == "PAM_AUTHINFO_UNAVAIL"
    assert "certificate verify failed" in impostor.log() or "certificate" in impostor.log(), impostor.log()


# --- key rotation --------------------------------------------------------------------------------


def fleet_cli(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([str(MFAGATE), "fleet", *args], capture_output=True, text=True, timeout=120)
    hygiene.capture("mfagate fleet", out.stdout + out.stderr)
    return out


def test_key_rotation_under_live_logins_from_both_hosts(fleet, cluster):
    """Both hosts get the new key (fleet_new_key_file) and restart; rotate-key runs while both hosts
    log users in with recovery codes: no login fails, no row is left on the old key. Forced: host A
    reads bob's row under the old key and queues its write behind a row lock (psql) together with
    rotate-key's re-seal of that row; whichever lands first, the other pass catches it. Then the
    tombstone and the marks survive (an old row put back is still refused), the old key is retired
    and a host holding only it is refused at connect."""
    slow = "database_timeout = 8s\n"
    a, b = fleet(2, extra=slow)
    users = ["alice", "bob", "carol", "dave", "mallory"]
    enrolled = {u: a.enroll(u) for u in users}
    a.cli("reset", "--user", "dave", check=True)
    for host in (a, b):
        assert host.pam("alice", oathtool_totp(enrolled["alice"]["secret"])).result in ("PAM_SUCCESS", "PAM_AUTH_ERR")
    cluster.psql("CREATE TABLE before_rotation AS SELECT * FROM mfagate_users", fleet.database)

    new_key = make_key_file(a.dir, "fleet-new.key")
    hygiene.register("fleet key", new_key.read_text().strip())
    for host in (a, b):
        copy = host.dir / "fleet-new.key"
        if copy != new_key:
            copy.write_text(new_key.read_text())
            os.chmod(copy, 0o400)
        host.write_config("optional", fleet_config(cluster, fleet.database, host.key, slow + f"fleet_new_key_file = {copy}\n"))
        restart(host)

    results: list[str] = []

    services = {a: a.service(), b: b.service()}  # written once: threads must not rewrite the file

    def logins(label, host, user, codes):
        for code in codes:
            results.append(f"{label}:{user}:{host.pam(user, code, service=services[host]).result}")

    lock = RowLock(cluster, fleet.database, "bob")
    threads = [threading.Thread(target=logins, args=("a", a, "bob", enrolled["bob"]["recovery_codes"][:1])),
               threading.Thread(target=logins, args=("a", a, "alice", enrolled["alice"]["recovery_codes"])),
               threading.Thread(target=logins, args=("b", b, "carol", enrolled["carol"]["recovery_codes"])),
               threading.Thread(target=logins, args=("b", b, "mallory", enrolled["mallory"]["recovery_codes"]))]
    for t in threads:
        t.start()
    rotation: list[subprocess.CompletedProcess] = []
    rotator = threading.Thread(target=lambda: rotation.append(fleet_cli("rotate-key", "--new", str(new_key), "--config", str(a.config))))
    rotator.start()
    deadline = time.monotonic() + 30  # the rotation's process starts on a loaded machine
    while lock.waiters() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    waiting = lock.release_when_both_wait()
    rotator.join()
    for t in threads:
        t.join()
    rotated = rotation[0]
    assert waiting == 2, (waiting, rotated)
    assert rotated.returncode == 0, rotated
    assert "no row is left on another key" in rotated.stdout
    assert len(results) == 31 and all(r.endswith("PAM_SUCCESS") for r in results), results
    status = fleet_cli("key-status", "--config", str(b.config))
    assert status.returncode == 0 and "no row is left on another key" in status.stdout, status
    new_id = cluster.psql("SELECT value FROM mfagate_meta WHERE key = 'key_id'", fleet.database).strip()
    assert cluster.psql(f"SELECT count(*) FROM mfagate_users WHERE key_id <> '{new_id}'", fleet.database).strip() == "0"

    # Tombstone and marks survive: dave stays disabled, an old row of alice is refused.
    assert b.cli("list", "--json", check=True).stdout.count('"dave"') == 0
    cluster.psql("UPDATE mfagate_users u SET version = s.version, sealed = s.sealed, key_id = s.key_id "
                 "FROM before_rotation s WHERE u.name = s.name AND u.name = 'bob'", fleet.database)
    assert a.pam("bob", enrolled["bob"]["recovery_codes"][9]).result == "PAM_AUTHINFO_UNAVAIL"

    # Retire the old key: every host holds only the new one.
    for host in (a, b):
        host.write_config("optional", fleet_config(cluster, fleet.database, host.dir / "fleet-new.key", slow))
        restart(host)
    assert b.pam("alice", oathtool_totp(enrolled["alice"]["secret"], at="now + 30 seconds")).result == "PAM_SUCCESS"
    old_only = a.dir / "old-only.conf"
    old_only.write_text(a.config.read_text().replace(str(a.dir / "fleet-new.key"), str(a.key)))
    a.config.write_text(old_only.read_text())
    restart(a)
    assert "is not the key this fleet database was sealed with" in a.log()
    assert a.pam("alice", "123456").result == "PAM_AUTHINFO_UNAVAIL"


# --- upgrade from schema version 1 ---------------------------------------------------------------


SCHEMA_V1 = """
CREATE TABLE mfagate_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE mfagate_users (name text PRIMARY KEY, version bigint NOT NULL, created bigint NOT NULL, sealed bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(), updated_by text NOT NULL DEFAULT '');
CREATE TABLE mfagate_failures (kind text NOT NULL CHECK (kind IN ('user', 'rhost')), key text NOT NULL, version bigint NOT NULL,
    locked_until bigint, failures text NOT NULL DEFAULT '', PRIMARY KEY (kind, key));
CREATE TABLE mfagate_first_seen (name text PRIMARY KEY, first_seen bigint NOT NULL);
CREATE TABLE mfagate_meta (key text PRIMARY KEY, value text NOT NULL);
INSERT INTO mfagate_schema (version) VALUES (1);
"""


def legacy_row(key_hex: str, user: str, record: bytes) -> tuple[str, str]:
    """A row as mfagated of schema version 1 sealed it (format 1: no version inside), made here with
    Python's cryptography, not with our code: `0x01 | nonce | ciphertext | tag`."""
    import hmac
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    key = bytes.fromhex(key_hex)
    nonce = os.urandom(12)
    sealed = b"\x01" + nonce + AESGCM(key).encrypt(nonce, record, b"mfagate fleet record v1\x00" + user.encode())
    key_id = hmac.new(key, b"mfagate fleet key id", "sha256").digest()[:8].hex()
    return key_id, sealed.hex()


def test_a_schema_version_1_database_upgrades_and_its_old_rows_still_serve(fleet, cluster, daemon_factory):
    """A database made by the previous mfagated (schema 1, format-1 rows) is migrated to schema 2;
    alice logs in with her existing enrollment, her row is re-sealed with its version inside, and
    her old format-1 row put back is refused whatever version number it is given."""
    files_host = daemon_factory("optional")
    e = files_host.enroll("alice")
    record = (files_host.state / "users" / "alice").read_bytes()
    files_host.stop()
    (a,) = fleet(1, start=False)
    key_id, sealed = legacy_row(a.key.read_text().strip(), "alice", record)
    cluster.psql("SET ROLE mfagate;" + SCHEMA_V1 +
                 f"INSERT INTO mfagate_meta VALUES ('key_id', '{key_id}');"
                 f"INSERT INTO mfagate_users (name, version, created, sealed) VALUES ('alice', 3, 0, '\\x{sealed}')",
                 fleet.database)
    a.start()
    assert "fleet database schema migrated to version 2" in a.log()
    assert a.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    row = cluster.psql("SELECT get_byte(sealed, 0), key_id, version > 3 FROM mfagate_users WHERE name = 'alice'",
                       fleet.database).strip()
    assert row == f"2|{key_id}|t", row
    for version in (3, 10 ** 15):
        cluster.psql(f"UPDATE mfagate_users SET version = {version}, sealed = '\\x{sealed}' WHERE name = 'alice'", fleet.database)
        r = a.pam("alice", oathtool_totp(e["secret"], at="now + 30 seconds"))
        assert r.result == "PAM_AUTHINFO_UNAVAIL", r
    assert "a row of schema version 1 (no sealed version)" in a.log()


def test_config_of_the_new_fleet_keys(tmp_path):
    cases = {
        "database_insecure = maybe\n": "`database_insecure` must be yes or no",
        "fleet_new_key_file = etc/new.key\n": "fleet_new_key_file",
        "fleet_key_file = /etc/k\nfleet_new_key_file = /etc/k\n": "names the same file as `fleet_key_file`",
    }
    for text, message in cases.items():
        conf = tmp_path / "c.conf"
        conf.write_text(text)
        out = subprocess.run([str(MFAGATED), "--config", str(conf), "--check-config"], capture_output=True, text=True)
        assert out.returncode == 2 and message in out.stderr, (text, out.stderr)
    conf.write_text("database_insecure = yes\nfleet_new_key_file = /etc/mfagate/fleet.key.new\n")
    out = subprocess.run([str(MFAGATED), "--config", str(conf), "--check-config", "--print"], capture_output=True, text=True)
    assert "database_insecure = yes" in out.stdout and "fleet_new_key_file = /etc/mfagate/fleet.key.new" in out.stdout, out
