# SPDX-License-Identifier: Apache-2.0
"""A real PostgreSQL server (Debian's postgresql package) for the fleet-mode tests: a throwaway
cluster in a temp dir, run as the `postgres` account (initdb refuses root), listening only on a Unix
socket in a private dir, started and stopped by PID. `mfagate` connects with a password (scram),
from a root-only password file, as the daemon would in a fleet."""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_ACCOUNT = "postgres"


def available() -> bool:
    try:
        pwd.getpwnam(PG_ACCOUNT)
    except KeyError:
        return False
    return (PG_BIN / "initdb").exists() and (PG_BIN / "postgres").exists() and shutil.which("psql") is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_test_ca(directory: Path, server_ip: str = "127.0.0.1") -> dict[str, Path]:
    """A throwaway CA (openssl) and a server certificate for `server_ip` (IP SAN) signed by it, plus
    a second CA that signed nothing (a client trusting it must refuse the server)."""
    directory.mkdir(mode=0o755, exist_ok=True)
    paths = {name: directory / f"{name}" for name in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt",
                                                        "other-ca.key", "other-ca.crt", "san.ext")}

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=mfagate test {ca}",
                "-keyout", str(paths[f"{ca}.key"]), "-out", str(paths[f"{ca}.crt"]))
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={server_ip}",
            "-keyout", str(paths["server.key"]), "-out", str(paths["server.csr"]))
    paths["san.ext"].write_text(f"subjectAltName = IP:{server_ip}\n")
    openssl("x509", "-req", "-in", str(paths["server.csr"]), "-CA", str(paths["ca.crt"]), "-CAkey", str(paths["ca.key"]),
            "-CAcreateserial", "-days", "2", "-extfile", str(paths["san.ext"]), "-out", str(paths["server.crt"]))
    return paths


class Cluster:
    def __init__(self, tls: bool = False, durable: bool = False, statement_log: bool = False) -> None:
        """tls: also listen on TCP 127.0.0.1 (a free port) with TLS only (hostssl), with a server
        certificate from a test CA made here (`self.ca`). durable: PostgreSQL's own defaults (fsync,
        synchronous_commit, full_page_writes on), as a fleet runs it (the bench's fleet rows); the
        tests run without them, which only makes them faster. statement_log: the server logs every
        statement it runs, with its backend's PID (log_statement = all), in `self.log_path`."""
        self.durable = durable
        self.statement_log = statement_log
        entry = pwd.getpwnam(PG_ACCOUNT)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        self.dir = Path(tempfile.mkdtemp(prefix="mfagate-pg-"))
        os.chmod(self.dir, 0o755)
        self.data = self.dir / "data"
        self.sockets = self.dir / "sock"
        self.sockets.mkdir(mode=0o755)
        os.chown(self.dir, self.uid, self.gid)
        os.chown(self.sockets, self.uid, self.gid)
        self.log_path = self.dir / "postgres.log"
        self.proc: subprocess.Popen | None = None
        self.password = secrets.token_hex(16)
        self.databases = 0
        self.tls = tls
        self.port = free_port() if tls else 5432
        self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth-local=peer",
                           "--auth-host=reject", "--no-sync", "-E", "UTF8", "--locale=C"])
        hba = ("local all postgres peer\n"
               "local all mfagate scram-sha-256\n")
        self.server_options: list[str] = ["-c", "listen_addresses="]
        if tls:
            self.ca = make_test_ca(self.dir / "tls")
            for name in ("server.crt", "server.key"):
                target = self.data / name
                shutil.copy(self.ca[name], target)
                os.chown(target, self.uid, self.gid)
                os.chmod(target, 0o600)
            hba += "hostssl all mfagate 127.0.0.1/32 scram-sha-256\n"
            self.server_options = ["-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}", "-c", "ssl=on",
                                   "-c", "ssl_cert_file=server.crt", "-c", "ssl_key_file=server.key"]
        (self.data / "pg_hba.conf").write_text(hba)
        self.start()
        self.psql("CREATE ROLE mfagate LOGIN PASSWORD '%s'" % self.password)
        # The password file, as an admin would make it: root's, 0400.
        self.password_file = self.dir / "database.password"
        self.password_file.write_text(self.password + "\n")
        os.chmod(self.password_file, 0o400)

    def _as_postgres(self, cmd: list[str], **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", *cmd],
                              cwd=self.dir, check=True, capture_output=True, text=True, **kw)

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
             str(PG_BIN / "postgres"), "-D", str(self.data), "-k", str(self.sockets), *self.server_options,
             *([] if self.durable else ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]),
             # MFAGATE_PG_LOG=FILE: log every statement with its duration and keep the log there
             # when the cluster closes (profiling the fleet rows: docs/performance.md)
             *(["-c", "log_min_duration_statement=0", "-c", "log_line_prefix=%m %p "]
               if os.environ.get("MFAGATE_PG_LOG") else []),
             *(["-c", "log_statement=all", "-c", "log_line_prefix=%p "] if self.statement_log else [])],
            cwd=self.dir, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited: " + self.log_path.read_text(errors="replace"))
            ok = subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", str(self.sockets), "-p", str(self.port)]).returncode == 0
            if ok:
                return
            time.sleep(0.1)
        raise RuntimeError("postgres did not start: " + self.log_path.read_text(errors="replace"))

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of the postmaster by its PID; it ends its own children."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGQUIT)
                self.proc.wait(timeout=10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        if os.environ.get("MFAGATE_PG_LOG"):
            shutil.copy(self.log_path, os.environ["MFAGATE_PG_LOG"])
        shutil.rmtree(self.dir, ignore_errors=True)

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self._as_postgres(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.sockets), "-p", str(self.port),
                                  "-d", database, "-c", sql]).stdout

    def new_database(self) -> str:
        """A fresh, empty database owned by mfagate (one per test: tests do not see each other)."""
        self.databases += 1
        name = f"fleet{self.databases}"
        self.psql(f"CREATE DATABASE {name} OWNER mfagate")
        return name

    def dump(self, database: str) -> str:
        return self._as_postgres(["pg_dump", "-h", str(self.sockets), "-p", str(self.port), "-d", database]).stdout

    @property
    def socket_file(self) -> Path:
        """The server's Unix socket (what a proxy in front of it connects to)."""
        return self.sockets / f".s.PGSQL.{self.port}"

    def conninfo(self, database: str) -> str:
        return f"host={self.sockets} port={self.port} dbname={database} user=mfagate"

    def tcp_conninfo(self, database: str, sslmode: str, rootcert: Path | None = None) -> str:
        extra = f" sslrootcert={rootcert}" if rootcert else ""
        return f"host=127.0.0.1 port={self.port} dbname={database} user=mfagate sslmode={sslmode}{extra}"


def make_key_file(directory: Path, name: str = "fleet.key", mode: int = 0o400) -> Path:
    path = directory / name
    path.write_text(secrets.token_hex(32) + "\n")
    os.chmod(path, mode)
    return path


def fleet_config(cluster: Cluster, database: str, key: Path, extra: str = "") -> str:
    return (f"store = postgresql\n"
            f"database_url = {cluster.conninfo(database)}\n"
            f"database_password_file = {cluster.password_file}\n"
            f"fleet_key_file = {key}\n" + extra)
