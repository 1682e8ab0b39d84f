# SPDX-License-Identifier: Apache-2.0
"""Fleet mode (issue 9, docs/fleet.md): two daemons standing for two hosts, each with its own state
dir, socket and PAM service, share one real PostgreSQL database (Debian's server, started by
fleet_pg.py as the `postgres` account on a private Unix socket, stopped by PID). Codes come from
oathtool. Every guarantee of the file store must hold across the hosts."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import hygiene
from fleet_pg import Cluster, available, fleet_config, make_key_file
from mfagate_harness import MFAGATE, MFAGATED, oathtool_totp, wrong_code

pytestmark = pytest.mark.skipif(not available(), reason="PostgreSQL 15 (postgresql package) is not installed")


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    hygiene.register("database password", c.password)
    yield c
    c.close()


@pytest.fixture
def fleet(cluster, daemon_factory):
    """make(n, extra) -> n started daemons ("hosts") sharing one fresh database and one fleet key,
    each holding its own copy of the key (0400), as an admin would distribute it."""
    database = cluster.new_database()
    key_text: list[str] = []

    def make(n: int = 2, extra: str = "", mode: str = "optional", start: bool = True):
        hosts = []
        for _ in range(n):
            d = daemon_factory(mode, start=False)
            key = make_key_file(d.dir)
            if key_text:
                os.chmod(key, 0o600)
                key.write_text(key_text[0])
                os.chmod(key, 0o400)
            else:
                key_text.append(key.read_text())
                hygiene.register("fleet key", key_text[0].strip())
            d.key = key
            d.database = database
            d.write_config(mode, fleet_config(cluster, database, key, extra))
            hosts.append(d.start() if start else d)
        return hosts

    make.database = database
    return make


def test_enrollment_on_one_host_serves_the_other_and_a_used_code_is_refused_everywhere(fleet):
    a, b = fleet(2)
    e = a.enroll("alice")
    assert '"enrolled": true' in b.cli("status", "--user", "alice", "--json", check=True).stdout
    code = oathtool_totp(e["secret"])
    assert a.pam("alice", code).result == "PAM_SUCCESS"
    assert b.pam("alice", code).result == "PAM_AUTH_ERR"
    assert "replayed code" in b.log()
    assert a.pam("alice", code).result == "PAM_AUTH_ERR"


def race(a, b, user, code) -> list[str]:
    """The same answer through both hosts at the same moment; the two PAM results, sorted."""
    results = {}
    start = threading.Barrier(2)

    def login(name, host):
        start.wait()
        results[name] = host.pam(user, code).result

    threads = [threading.Thread(target=login, args=(n, h)) for n, h in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(results.values())


class RowLock:
    """Holds the user's row locked (SELECT ... FOR UPDATE in an open transaction) so that both
    hosts read the same version and then queue on their compare-and-swap UPDATE: when the lock is
    released one write lands and the other must see the conflict. Makes the race deterministic."""

    def __init__(self, cluster, database, user):
        self.cluster, self.database = cluster, database
        self.proc = subprocess.Popen(["setpriv", f"--reuid={cluster.uid}", f"--regid={cluster.gid}", "--clear-groups",
                                      "psql", "-X", "-q", "-A", "-t", "-h", str(cluster.sockets), "-d", database],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=cluster.dir)
        self.proc.stdin.write(f"BEGIN; SELECT 'locked' FROM mfagate_users WHERE name = '{user}' FOR UPDATE;\n")
        self.proc.stdin.flush()
        while "locked" not in self.proc.stdout.readline():  # the lock is held from here on
            pass

    def waiters(self) -> int:
        return int(self.cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                     f"AND datname = '{self.database}'").strip())

    def release(self) -> None:
        self.proc.stdin.write("COMMIT;\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=10)

    def release_when_both_wait(self) -> int:
        deadline = time.monotonic() + 5
        while self.waiters() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        seen = self.waiters()
        self.proc.stdin.write("COMMIT;\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        return seen


def forced_race(cluster, database, a, b, user, code) -> tuple[list[str], int]:
    lock = RowLock(cluster, database, user)
    results: list[str] = []
    racer = threading.Thread(target=lambda: results.extend(race(a, b, user, code)))
    racer.start()
    waiting = lock.release_when_both_wait()
    racer.join()
    return results, waiting


def test_records_read_right_whatever_the_servers_bytea_output(fleet, cluster):
    """A database (or role) set to bytea_output = escape must not make enrolled users look unenrolled
    (which would skip MFA under mode = optional): the daemon asks for hex on every connection."""
    (a,) = fleet(1, start=False)
    cluster.psql(f"ALTER DATABASE {fleet.database} SET bytea_output = 'escape'")
    a.start()
    e = a.enroll("alice")
    code = oathtool_totp(e["secret"])
    assert a.pam("alice", code).result == "PAM_SUCCESS"
    assert a.pam("alice", wrong_code(code)).result == "PAM_AUTH_ERR"


def test_recovery_code_raced_from_both_hosts_wins_exactly_once(fleet, cluster):
    a, b = fleet(2, extra="database_timeout = 8s\n")
    e = a.enroll("alice")
    results, waiting = forced_race(cluster, fleet.database, a, b, "alice", e["recovery_codes"][0])
    assert waiting == 2 and results == ["PAM_AUTH_ERR", "PAM_SUCCESS"], (waiting, results)
    assert (a.log() + b.log()).count("another host changed the record meanwhile") == 1
    # And unforced, as it happens.
    for code in e["recovery_codes"][1:4]:
        assert race(a, b, "alice", code) == ["PAM_AUTH_ERR", "PAM_SUCCESS"]
    assert '"recovery_codes_left": 6' in b.cli("status", "--user", "alice", "--json", check=True).stdout


def test_totp_code_raced_from_both_hosts_wins_exactly_once(fleet, cluster):
    a, b = fleet(2, extra="database_timeout = 8s\n")
    e = a.enroll("alice")
    code = oathtool_totp(e["secret"])
    results, waiting = forced_race(cluster, fleet.database, a, b, "alice", code)
    assert waiting == 2 and results == ["PAM_AUTH_ERR", "PAM_SUCCESS"], (waiting, results)
    assert "replayed code" in a.log() + b.log()


def test_a_held_row_does_not_hold_other_users_logins(fleet, cluster):
    """Fleet requests run on worker threads (docs/fleet.md, "Several requests at once"): while one
    login waits on the database (alice's row locked by a psql transaction, so her compare-and-swap
    UPDATE waits), other users log in on the same host at once; hers goes on when the lock goes.
    With one connection on the loop's thread, bob waited for alice's statement to time out, and the
    timeout then opened the circuit breaker for everyone."""
    (a,) = fleet(1, extra="database_timeout = 6s\n")
    alice, bob, carol = a.enroll("alice"), a.enroll("bob"), a.enroll("carol")
    lock = RowLock(cluster, fleet.database, "alice")
    results = {}
    held = threading.Thread(target=lambda: results.update(alice=a.pam("alice", oathtool_totp(alice["secret"]))))
    held.start()
    try:
        deadline = time.monotonic() + 5
        while lock.waiters() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lock.waiters() == 1, "alice's login never reached her locked row"
        for name, e in (("bob", bob), ("carol", carol)):
            started = time.monotonic()
            r = a.pam(name, oathtool_totp(e["secret"]))
            elapsed = time.monotonic() - started
            assert r.result == "PAM_SUCCESS" and elapsed < 2.0, (name, r, elapsed)
        assert lock.waiters() == 1 and "alice" not in results, "alice's login should still be waiting"
    finally:
        lock.release()
        held.join()
    assert results["alice"].result == "PAM_SUCCESS", results
    assert "unreachable" not in a.log()


def test_lockout_made_on_one_host_holds_on_the_other(fleet):
    a, b = fleet(2, extra="max_failures = 3\n")
    e = a.enroll("alice")
    code = oathtool_totp(e["secret"])
    for _ in range(3):
        assert a.pam("alice", wrong_code(code)).result == "PAM_AUTH_ERR"
    assert b.pam("alice", code).result == "PAM_MAXTRIES"
    assert b.check("alice")["decision"] == "locked"
    assert "unlocked user alice" in b.cli("unlock", "--user", "alice", check=True).stdout
    assert a.pam("alice", code).result == "PAM_SUCCESS"


def test_wrong_codes_counted_on_both_hosts_add_up(fleet):
    a, b = fleet(2, extra="max_failures = 4\n")
    e = a.enroll("alice")
    code = oathtool_totp(e["secret"])
    for host in (a, b, a, b):
        assert host.pam("alice", wrong_code(code)).result == "PAM_AUTH_ERR"
    assert a.pam("alice", code).result == "PAM_MAXTRIES"


def test_disable_on_one_host_is_seen_on_the_other(fleet):
    a, b = fleet(2)
    e = a.enroll("alice")
    assert "reset" in a.cli("reset", "--user", "alice", check=True).stdout
    assert '"enrolled": false' in b.cli("status", "--user", "alice", "--json", check=True).stdout
    assert b.pam("alice", oathtool_totp(e["secret"])).result == "PAM_IGNORE"
    assert b.cli("list", "--json", check=True).stdout.strip() == "[]"


def test_a_database_dump_holds_no_secret(fleet, cluster):
    a, b = fleet(2)
    enrolled = [a.enroll("alice"), b.enroll("bob")]
    assert a.pam("alice", oathtool_totp(enrolled[0]["secret"])).result == "PAM_SUCCESS"
    dump = cluster.dump(fleet.database)
    assert "mfagate_users" in dump and "alice" in dump
    import base64
    for e in enrolled:
        secret = e["secret"]
        raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
        for form in (secret, secret.lower(), raw.hex(), base64.b64encode(raw).decode()):
            assert form not in dump
        for code in e["recovery_codes"]:
            assert code not in dump and code.replace("-", "") not in dump
    assert "JBSWY3DP" not in dump and "otpauth" not in dump


def test_a_row_copied_onto_another_user_does_not_open(fleet, cluster):
    """Someone with write access to the database copies bob's sealed row onto alice's name (to log
    in as alice with bob's codes): the row is bound to bob's name, so it does not open, and the
    login is refused as for a damaged user file (PAM_AUTHINFO_UNAVAIL, even with failmode=safe)."""
    (a,) = fleet(1)
    a.enroll("alice")
    bob = a.enroll("bob")
    cluster.psql("UPDATE mfagate_users SET sealed = (SELECT sealed FROM mfagate_users WHERE name = 'bob') "
                 "WHERE name = 'alice'", fleet.database)
    r = a.pam("alice", oathtool_totp(bob["secret"]), args="failmode=safe")
    assert r.result == "PAM_AUTHINFO_UNAVAIL", r
    assert "fleet database row of alice: it does not open with this host's fleet key" in a.log()
    assert a.pam("bob", oathtool_totp(bob["secret"])).result == "PAM_SUCCESS"


def test_fleet_key_readable_by_others_is_refused(fleet):
    (a,) = fleet(1, start=False)
    os.chmod(a.key, 0o644)
    a.start(expect_ready=False)
    assert a.proc.wait(timeout=10) == 1
    assert f"refusing {a.key}: its mode 644 lets others read the fleet key (chmod 0400 it)" in a.log()


def test_password_file_readable_by_others_is_refused(fleet, cluster):
    (a,) = fleet(1, start=False)
    loose = a.dir / "database.password"
    shutil.copy(cluster.password_file, loose)
    os.chmod(loose, 0o640)
    a.write_config("optional", fleet_config(cluster, a.database, a.key).replace(str(cluster.password_file), str(loose)))
    a.start(expect_ready=False)
    assert a.proc.wait(timeout=10) == 1
    assert f"refusing {loose}: its mode 640 lets others read the database password file (chmod 0400 it)" in a.log()


def test_a_host_with_another_fleet_key_is_told_and_follows_failmode(fleet):
    a, b = fleet(2, start=False)
    a.start()
    a.enroll("alice")
    os.chmod(b.key, 0o600)
    b.key.write_text(os.urandom(32).hex() + "\n")
    b.start()
    assert "is not the key this fleet database was sealed with" in b.log(), b.log()
    assert str(b.key) in b.log()
    assert b.pam("alice", "123456", args="failmode=secure").result == "PAM_AUTHINFO_UNAVAIL"


def test_a_phone_added_on_one_host_gets_codes_from_the_other(fleet, tmp_path):
    """Methods (issue 10) live in the sealed record, so they hold fleet-wide; the code itself is
    sent and checked by the host the user logs in to (docs/fleet.md, "What stays on each host")."""
    from test_delivery import PHONE, Login, make_sms_gateway, sms_code
    script, sms_dir = make_sms_gateway(tmp_path)

    def code(count: int) -> str:
        return sms_code(sms_dir, count)

    a, b = fleet(2, extra=f"methods = totp sms\nsms_command = {script}\n")
    a.enroll("alice")
    assert a.cli("method", "add", "sms", PHONE, "--user", "alice").returncode == 0
    a.cli("method", "confirm", "sms", code(1), "--user", "alice", check=True)
    a.cli("method", "prefer", "sms", "--user", "alice", check=True)
    login = Login(b, "alice")
    assert login.prompt() == "Code sent to +*********5678:"
    sent_by_b = code(2)
    login.answer(sent_by_b)
    assert login.result().result == "PAM_SUCCESS"
    assert "delivery method=sms purpose=login result=sent" in b.log()
    assert "purpose=login" not in a.log(), "host A sent no login code"


def mapped_libraries(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_libpq_is_loaded_only_by_a_fleet_daemon(fleet, daemon_factory):
    """libpq and what it brings (GnuTLS, Kerberos, LDAP) cost an idle daemon ~4 MB: a host on the
    file store must not load it (CMFAPostgres.h)."""
    needed = subprocess.run(["readelf", "-d", str(MFAGATED)], capture_output=True, text=True, check=True).stdout
    assert "libpq" not in needed
    files_host = daemon_factory("optional")
    files_host.enroll("alice")
    assert "libpq.so" not in mapped_libraries(files_host.proc.pid)
    (a,) = fleet(1)
    a.enroll("bob")
    assert "libpq.so" in mapped_libraries(a.proc.pid)


def test_fleet_mode_without_libpq_names_the_package(fleet):
    (a,) = fleet(1, start=False)
    # libpq hidden in a private mount namespace (a bind mount over the file; nothing is deleted).
    library = next(Path(p) for p in ("/usr/lib/x86_64-linux-gnu/libpq.so.5", "/usr/lib/libpq.so.5") if Path(p).exists())
    a.wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c",
              f'mount -n --bind /dev/null {library} && exec "$@"', "sh"]
    a.start(expect_ready=False)
    assert a.proc.wait(timeout=10) == 1
    assert "store = postgresql needs libpq.so.5 (Debian package libpq5)" in a.log(), a.log()


def postgres_processes(cluster) -> list[int]:
    """The postmaster and its children, by PID (for SIGSTOP/SIGCONT)."""
    pids = [cluster.proc.pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == cluster.proc.pid:
                pids.append(int(entry))
    return pids


def test_database_stopped_mid_run_follows_failmode_logs_once_and_recovers(fleet, cluster):
    a, b = fleet(2, extra="database_timeout = 1s\ndatabase_retry = 1s\n")
    e = a.enroll("alice")
    assert a.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    cluster.stop()
    try:
        for host in (a, b):
            for failmode, expected in (("secure", "PAM_AUTHINFO_UNAVAIL"), ("safe", "PAM_IGNORE"),
                                       ("secure", "PAM_AUTHINFO_UNAVAIL")):
                r = host.pam("alice", "123456", args=f"failmode={failmode} timeout=5")
                assert r.result == expected, (failmode, r)
                assert r.elapsed_ms < 2500, r
        time.sleep(1.2)  # a retry is due: it fails again, and says nothing new
        assert a.pam("alice", "123456", args="failmode=secure").result == "PAM_AUTHINFO_UNAVAIL"
    finally:
        cluster.start()
    for host in (a, b):
        # One line for the outage, not one per login (each login still gets its decision line).
        assert host.log().count("unreachable") == 1, host.log()
        assert host.log().count("result=abandoned") >= 3
        assert "result=unavailable" not in host.log()
    time.sleep(1.2)
    code = oathtool_totp(e["secret"], at="now + 30 seconds")
    assert b.pam("alice", code).result == "PAM_SUCCESS"
    assert "fleet database reachable again" in b.log()
    assert b.log().count("fleet database reachable again") == 1


@pytest.mark.parametrize("connections", [1, 4])
def test_a_database_restart_between_logins_costs_no_login(fleet, cluster, connections):
    """The server closed the idle connection (restart): the daemon notices before sending anything
    and reconnects at once, so the next login works and nothing is logged as an outage. With four
    workers the next login may go to one that never connected (then it simply connects), so the
    `reconnecting` line is asserted with one connection only."""
    (a,) = fleet(1, extra=f"database_connections = {connections}\n")
    e = a.enroll("alice")
    assert a.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    cluster.stop()
    cluster.start()
    assert a.pam("alice", oathtool_totp(e["secret"], at="now + 30 seconds")).result == "PAM_SUCCESS"
    if connections == 1:
        assert "closed the idle connection; reconnecting" in a.log()
    assert "unreachable" not in a.log() and "abandoned" not in a.log()


def test_hung_database_is_bounded_by_database_timeout(fleet, cluster):
    (a,) = fleet(1, extra="database_timeout = 1s\ndatabase_retry = 1s\n")
    e = a.enroll("alice")
    pids = postgres_processes(cluster)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        r = a.pam("alice", oathtool_totp(e["secret"]), args="failmode=secure timeout=5")
        assert r.result == "PAM_AUTHINFO_UNAVAIL" and r.elapsed_ms < 3000, r
        r = a.pam("alice", "123456", args="failmode=safe timeout=5")
        assert r.result == "PAM_IGNORE" and r.elapsed_ms < 3000, r
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert "no answer within the timeout" in a.log()
    assert a.log().count("unreachable") == 1
    time.sleep(1.2)
    assert a.pam("alice", oathtool_totp(e["secret"], at="now + 30 seconds")).result == "PAM_SUCCESS"


def migrate(config: Path) -> subprocess.CompletedProcess:
    out = subprocess.run([str(MFAGATE), "migrate-store", "--to", "postgresql", "--config", str(config)],
                         capture_output=True, text=True, timeout=60)
    hygiene.capture("migrate-store", out.stdout + out.stderr)
    return out


def test_migrate_store_moves_enrollments_with_their_replay_state_idempotently(fleet, cluster, daemon_factory):
    host = daemon_factory("optional")  # file store
    alice, bob = host.enroll("alice"), host.enroll("bob")
    used = oathtool_totp(alice["secret"])
    assert host.pam("alice", used).result == "PAM_SUCCESS"
    assert host.pam("bob", bob["recovery_codes"][0]).result == "PAM_SUCCESS"
    (other,) = fleet(1)
    host.write_config("optional", fleet_config(cluster, fleet.database, other.key))

    running = migrate(host.config)
    assert running.returncode == 2 and "stop mfagated on this host first" in running.stderr
    host.stop()
    first = migrate(host.config)
    assert first.returncode == 0, first
    assert "alice: copied into the fleet database" in first.stdout
    assert "bob: copied into the fleet database" in first.stdout
    again = migrate(host.config)
    assert again.returncode == 0 and again.stdout.count("already in the fleet database\n") == 2, again

    # No re-enrollment: the other host takes the same app codes; what was used stays used.
    assert other.pam("alice", used).result == "PAM_AUTH_ERR"
    assert other.pam("bob", bob["recovery_codes"][0]).result == "PAM_AUTH_ERR"
    assert other.pam("bob", bob["recovery_codes"][1]).result == "PAM_SUCCESS"
    assert other.pam("bob", oathtool_totp(bob["secret"])).result == "PAM_SUCCESS"
    assert '"recovery_codes_left": 8' in other.cli("status", "--user", "bob", "--json", check=True).stdout
    host.start()  # now in fleet mode
    assert '"recovery_codes_left": 8' in host.cli("status", "--user", "bob", "--json", check=True).stdout

    # A third host had the same secret enrolled separately (as when one google-authenticator file
    # was imported on every host) and used a later code there: its replay state is merged in.
    third = daemon_factory("optional")
    third.enroll("alice", secret=alice["secret"])
    later = oathtool_totp(alice["secret"], at="now + 30 seconds")
    assert third.pam("alice", later).result == "PAM_SUCCESS"
    third.stop()
    third.write_config("optional", fleet_config(cluster, fleet.database, other.key))
    merged = migrate(third.config)
    assert merged.returncode == 0 and "alice: already in the fleet database with the same secret, enrolled separately" in merged.stdout
    assert other.pam("alice", later).result == "PAM_AUTH_ERR"
    assert "replayed code" in other.log()


def test_migrate_store_leaves_a_different_enrollment_alone(fleet, cluster, daemon_factory):
    (other,) = fleet(1)
    other.enroll("alice")
    host = daemon_factory("optional")
    host.enroll("alice")
    host.stop()
    host.write_config("optional", fleet_config(cluster, fleet.database, other.key))
    out = migrate(host.config)
    assert out.returncode == 1 and "alice: left alone: a different enrollment" in out.stdout, out


def test_config_keeps_the_password_out_and_needs_a_database(tmp_path):
    cases = {
        "store = postgresql\n": "needs `database_url`",
        "store = postgresql\ndatabase_url = postgresql://mfagate:hunter2@db/mfagate\n": "without the password",
        "store = postgresql\ndatabase_url = host=db password=hunter2\n": "without the password",
        "store = sqlite\n": "`store` must be files or postgresql",
        "database_timeout = 0\n": "`database_timeout` must be a duration",
        "database_connections = 0\n": "`database_connections` must be a number from 1 to 64",
        "database_connections = 65\n": "`database_connections` must be a number from 1 to 64",
        "database_connections = four\n": "`database_connections` must be a number from 1 to 64",
    }
    for text, message in cases.items():
        conf = tmp_path / "c.conf"
        conf.write_text(text)
        out = subprocess.run([str(MFAGATED), "--config", str(conf), "--check-config"], capture_output=True, text=True)
        assert out.returncode == 2 and message in out.stderr, (text, out.stderr)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None or not Path("/lib/systemd/system/sysinit.target").exists(),
                    reason="systemd-analyze and the stock units (package systemd) are needed")
def test_systemd_drop_in_for_fleet_mode_verifies_and_stays_sandboxed(tmp_path):
    """systemd/fleet.conf.example on top of the shipped unit: `systemd-analyze verify` prints nothing,
    the unit may reach the network (the database) and the offline exposure stays at most 2.0."""
    from mfagate_harness import ROOT
    root = tmp_path / "root"
    units = root / "lib/systemd/system"
    shutil.copytree("/lib/systemd/system", units, symlinks=True)
    for unit in ("mfagated.service", "mfagated.socket"):
        shutil.copy(ROOT / "systemd" / unit, units / unit)
    (units / "mfagated.service.d").mkdir()
    shutil.copy(ROOT / "systemd/fleet.conf.example", units / "mfagated.service.d/fleet.conf")
    (root / "usr/sbin").mkdir(parents=True)
    shutil.copy(MFAGATED, root / "usr/sbin/mfagated")
    (root / "bin").mkdir()
    shutil.copy("/bin/kill", root / "bin/kill")
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", "mfagated.service"],
                            capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0 and verify.stdout == "" and verify.stderr == "", verify
    security = subprocess.run(["systemd-analyze", "security", "--offline=yes", f"--root={root}", "--no-pager",
                               "mfagated.service"], capture_output=True, text=True, timeout=120)
    assert "Service has access to the host's network" in security.stdout
    exposure = float(re.search(r"Overall exposure level for mfagated.service: ([0-9.]+)", security.stdout).group(1))
    assert exposure <= 2.0, security.stdout
