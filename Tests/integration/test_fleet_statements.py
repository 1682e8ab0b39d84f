# SPDX-License-Identifier: Apache-2.0
"""What a fleet login asks the database (issue 20's bench condition, docs/fleet.md "Statements per
login"): with the real PostgreSQL logging every statement it runs (log_statement = all), a login
makes three statements, each a prepared statement named after its text: the row (with the
failure record and first sighting) when the login begins, the row again when the code comes, the
compare-and-swap write. A table changed under a prepared statement (SQLSTATE 0A000) costs no
login: the statement runs unprepared and the connection prepares no more."""
from __future__ import annotations

import re

import pytest

import hygiene
from fleet_pg import Cluster, available, fleet_config, make_key_file
from mfagate_harness import oathtool_totp

pytestmark = pytest.mark.skipif(not available(), reason="PostgreSQL 15 (postgresql package) is not installed")

# "<pid> LOG:  execute <name>: <sql>" (extended protocol) or "<pid> LOG:  statement: <sql>"
STATEMENT = re.compile(r"^\d+ LOG:  (?:execute (\S+)|statement): (.*)$")


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(statement_log=True)
    hygiene.register("database password", c.password)
    yield c
    c.close()


@pytest.fixture
def host(cluster, daemon_factory):
    database = cluster.new_database()
    d = daemon_factory("optional", start=False)
    key = make_key_file(d.dir)
    hygiene.register("fleet key", key.read_text().strip())
    d.write_config("optional", fleet_config(cluster, database, key))
    d.database = database
    return d.start()


def statements_during(cluster, action) -> list[tuple[str, str]]:
    """(prepared statement name or "" for one parsed anew, the statement's first line) of every
    statement the server ran while `action` ran."""
    start = cluster.log_path.stat().st_size
    action()
    with open(cluster.log_path, "rb") as log:
        log.seek(start)
        lines = log.read().decode(errors="replace").splitlines()
    out = []
    for line in lines:
        m = STATEMENT.match(line)
        if m:
            name = m.group(1) or ""
            out.append(("" if name == "<unnamed>" else name, m.group(2).strip()))
    return out


def login(host, user, secret):
    result = host.pam(user, oathtool_totp(secret))
    assert result.result == "PAM_SUCCESS", result


def test_a_login_makes_three_prepared_statements(cluster, host):
    alice, bob = host.enroll("alice"), host.enroll("bob")
    login(host, "alice", alice["secret"])  # the first login prepares the statements
    seen = statements_during(cluster, lambda: login(host, "bob", bob["secret"]))
    # a periodic prune of old failure records may fall into the window; it is not the login's
    seen = [s for s in seen if not s[1].startswith("DELETE FROM mfagate_failures")]
    assert len(seen) == 3, seen
    row_read, row_again, write = seen
    assert row_read[1].startswith("SELECT u.version, u.sealed") and row_again == row_read, seen
    assert write[1].startswith("UPDATE mfagate_users SET version"), seen
    assert all(name.startswith("mfagate_") and len(name) == len("mfagate_") + 16 for name, _ in seen), seen


def test_a_table_changed_under_a_prepared_statement_costs_no_login(cluster, host):
    alice, bob, carol = host.enroll("alice"), host.enroll("bob"), host.enroll("carol")
    login(host, "alice", alice["secret"])
    # The row's key_id column changes type: the prepared SELECT's result type is no longer its own.
    cluster.psql("ALTER TABLE mfagate_users ALTER COLUMN key_id TYPE varchar(200)", database=host.database)
    seen = statements_during(cluster, lambda: login(host, "bob", bob["secret"]))
    assert any(name == "" and sql.startswith("SELECT u.version, u.sealed") for name, sql in seen), seen
    assert "cached plan must not change result type" in cluster.log_path.read_text(errors="replace")
    # From then on this connection prepares nothing: every statement is parsed anew, and works.
    seen = statements_during(cluster, lambda: login(host, "carol", carol["secret"]))
    seen = [s for s in seen if not s[1].startswith("DELETE FROM mfagate_failures")]
    assert seen and all(name == "" for name, _ in seen), seen
