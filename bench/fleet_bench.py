# SPDX-License-Identifier: Apache-2.0
"""The fleet backend's auth cost (issue 9, docs/fleet.md), beside the file store's figures in
bench.py: one mfagated with `store = postgresql` against a real PostgreSQL server (Debian's, started
as the `postgres` account on a private Unix socket by Tests/integration/fleet_pg.py, stopped by
PID), logins through the same bench_driver and PAM module. Kept in its own file so bench.py only
calls `phase_fleet` and prints one row."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "integration"))
import fleet_pg  # noqa: E402


def phase_fleet(work: Path, sz, Daemon, Users, run_driver) -> dict:
    """Enrolls fresh users through the fleet daemon (the CLI, so secrets are sealed as in use) and
    times `sz.scale_logins` logins, one fresh user each. {"skipped": why} without PostgreSQL."""
    if not fleet_pg.available():
        return {"skipped": "PostgreSQL 15 is not installed (scripts/install-deps.sh)"}
    cluster = fleet_pg.Cluster()
    daemon = None
    try:
        database = cluster.new_database()
        daemon = Daemon(work, "fleet")
        key = fleet_pg.make_key_file(daemon.dir)
        password = daemon.dir / "database.password"
        password.write_text(cluster.password + "\n")
        for secret_file in (key, password):
            os.chmod(secret_file, 0o400)
            os.chown(secret_file, daemon.uid, daemon.gid)
        daemon.config.write_text(daemon.config.read_text() + fleet_pg.fleet_config(cluster, database, key).replace(
            str(cluster.password_file), str(password)))
        daemon.start()
        users = Users("fl", work / "fleet-users.txt")
        users.grow(sz.scale_logins)
        cli = work / "mfagate"
        for i in range(len(users.secrets)):
            secret = base64.b32encode(users.secrets[i]).decode().rstrip("=")
            subprocess.run([str(cli), "--socket", str(daemon.socket), "enroll", "--user", users.name(i),
                            "--secret", secret, "--json"], check=True, capture_output=True, timeout=30)
        confdir = work / "pam-fleet"
        confdir.mkdir()
        (confdir / "other").write_text("auth required pam_deny.so\n")
        (confdir / "mfagate").write_text(f"auth required {work}/pam_mfagate.so socket={daemon.socket}\n")
        first, end = users.take(sz.scale_logins)
        result = run_driver(confdir, [f"mfagate:{users.path}:{first}:{end}"], "--count", str(end - first))[0]
        result["users"] = len(users.secrets)
        result["server"] = "PostgreSQL 15, Unix socket, same machine, fsync off"
        return result
    finally:
        if daemon:
            daemon.stop()
        cluster.close()
