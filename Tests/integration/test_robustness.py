# SPDX-License-Identifier: Apache-2.0
"""Robustness under faults and attack (issue 7; docs/robustness.md): SIGKILL at random moments,
parallel logins racing for one code, floods of idle and slow connections, a full disk, and peers
asking about users that are not theirs. Real daemon, real CLI, real libpam (pam_driver), codes
from oathtool. Small in `make check`; `make stress` (MFAGATE_STRESS=1) runs the figures."""
from __future__ import annotations

import json
import os
import random
import resource
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

import hygiene
from mfagate_harness import MFAGATE, Daemon, as_account, oathtool_totp, wrong_code
from robustness import (Expected, STRESS, elapsed_of, new_secret, pam_command, popen_pam, read_journal,
                        read_lockout_file, read_seen_file, read_user_file, report, result_of, rss_kib, scale)

WINDOW = 10          # steps either side: room for many fresh TOTP codes per user within a test
PERIOD = 30


def now_step() -> int:
    return int(time.time()) // PERIOD


def totp_at(secret: str, step: int) -> str:
    return oathtool_totp(secret, at=f"@{step * PERIOD}")


# --------------------------------------------------------------------------------------------------
# Crash consistency


class CrashModel:
    """What the files may hold after any kill, and every code a client saw accepted."""

    def __init__(self, daemon: Daemon, rng: random.Random):
        self.daemon = daemon
        self.rng = rng
        self.users: dict[str, Expected] = {}
        self.outcomes: dict[str, int] = {}

        self.journal_only: set[str] = set()   # users whose newest accepted step is only in the journal
        self.revoked_recovery: list[tuple[str, str]] = []   # (user, code) a regenerate or disable made void
        self.ghosts = 0

    def enroll_now(self, user: str) -> None:
        secret = new_secret()
        e = self.daemon.enroll(user, secret)
        self.users[user] = Expected(secrets={secret}, unused_recovery=list(e["recovery_codes"]),
                                    next_step=now_step() - WINDOW + 1)

    def count(self, what: str) -> None:
        self.outcomes[what] = self.outcomes.get(what, 0) + 1

    # Each verb starts a client and returns a function that records what the client saw.

    def enrolled(self) -> list[str]:
        return [u for u, x in self.users.items() if len(x.secrets) == 1 and None not in x.secrets]

    def verb_enroll(self):
        # Re-enrolls a known user (enrolled, disabled or half-enrolled) or enrolls a new one.
        user = (self.rng.choice(list(self.users)) if self.users and self.rng.random() < 0.8
                else f"crash{len(self.users)}")
        secret = new_secret()
        proc = subprocess.Popen([str(MFAGATE), "--socket", self.daemon.socket, "enroll", "--user", user, "--force",
                                 "--secret", secret, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def done():
            out, err = proc.communicate(timeout=30)
            hygiene.capture("mfagate enroll stderr", err)
            old = self.users.get(user)
            if proc.returncode == 0:
                e = json.loads(out)
                hygiene.register("recovery code", *e["recovery_codes"])
                self.users[user] = Expected(secrets={secret}, unused_recovery=list(e["recovery_codes"]),
                                            next_step=now_step() - WINDOW + 1)
                self.count("enroll confirmed")
            else:
                x = self.users.setdefault(user, Expected(secrets={None}))
                x.secrets = set(x.secrets) | {secret}
                x.pending = secret
                self.count("enroll interrupted")
            return user, old
        return done

    def recovery_entries(self, user: str) -> list[str]:
        return read_user_file(self.daemon.state / "users" / user)["recovery"]

    def verb_regenerate(self):
        """`mfagate recovery-codes --regenerate --user U` (root): the file holds the old set or the
        new one, the same secret either way; once the new set is in, every old code is void."""
        candidates = self.enrolled()
        if not candidates:
            return None
        user = self.rng.choice(candidates)
        x = self.users[user]
        before = self.recovery_entries(user)
        proc = subprocess.Popen([str(MFAGATE), "--socket", self.daemon.socket, "recovery-codes", "--regenerate",
                                 "--user", user], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def done():
            out, err = proc.communicate(timeout=30)   # stdout shows the new codes on purpose: not captured
            hygiene.capture("mfagate recovery-codes stderr", err)
            old_unused = x.unused_recovery
            if proc.returncode == 0:
                codes = [l.strip() for l in out.splitlines() if l.startswith("  ")]
                assert len(codes) == 10, "ten new recovery codes shown"
                hygiene.register("recovery code", *codes)
                x.unused_recovery = codes
                self.revoked_recovery += [(user, c) for c in old_unused]
                self.count("regenerate confirmed")
                return user, None
            self.count("regenerate interrupted")
            x.unused_recovery = []   # either set may be on disk: offer none of them again
            if os.path.exists(self.daemon.state / "users" / user) and self.recovery_entries(user) != before:
                self.revoked_recovery += [(user, c) for c in old_unused]   # the new set won
            return None
        return done

    def verb_disable(self):
        """`mfagate disable --user U` (root, same as reset): the file is there whole or gone."""
        candidates = self.enrolled()
        if not candidates:
            return None
        user = self.rng.choice(candidates)
        x = self.users[user]
        proc = subprocess.Popen([str(MFAGATE), "--socket", self.daemon.socket, "disable", "--user", user],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def done():
            out, err = proc.communicate(timeout=30)
            hygiene.capture("mfagate disable output", out + err)
            if proc.returncode == 0:
                self.revoked_recovery += [(user, c) for c in x.unused_recovery]
                self.users[user] = Expected(secrets={None})
                self.count("disable confirmed")
            else:
                x.secrets = set(x.secrets) | {None}
                self.count("disable interrupted")
            return None
        return done

    def verb_wrong(self):
        """A wrong code from an address: rewrites STATE/lockout (counts per user and per rhost)."""
        candidates = self.enrolled()
        if not candidates:
            return None
        user = self.rng.choice(candidates)
        code = f"{self.rng.randrange(10**6):06d}"
        hygiene.register("wrong code", code)
        proc = subprocess.Popen(pam_command(self.daemon, user, code) + ["--rhost", f"192.0.2.{self.rng.randrange(1, 255)}"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def done():
            result = result_of(proc.communicate(timeout=30)[0])
            self.count(f"wrong code {result}")
            return None
        return done

    def verb_ghost(self):
        """A login of a never-enrolled user: starts a grace period, rewrites STATE/seen."""
        self.ghosts += 1
        proc = popen_pam(self.daemon, f"ghost{self.ghosts}", "")

        def done():
            self.count(f"ghost {result_of(proc.communicate(timeout=30)[0])}")
            return None
        return done

    def verb_totp(self):
        candidates = [u for u, x in self.users.items() if len(x.secrets) == 1 and None not in x.secrets
                      and max(x.next_step, now_step() - WINDOW + 1) <= now_step() + WINDOW]
        if not candidates:
            return None
        user = self.rng.choice(candidates)
        x = self.users[user]
        secret = next(iter(x.secrets))
        step = max(x.next_step, now_step() - WINDOW + 1)
        code = totp_at(secret, step)
        x.next_step = step + 1
        proc = popen_pam(self.daemon, user, code)

        def done():
            result = result_of(proc.communicate(timeout=30)[0])
            self.count(f"totp {result}")
            if result == "PAM_SUCCESS":
                x.accepted_totp.append((secret, step, code))
                return user, code
            assert result in ("PAM_AUTHINFO_UNAVAIL", "PAM_AUTH_ERR"), result
            return None
        return done

    def verb_recovery(self):
        candidates = [u for u in self.enrolled() if self.users[u].unused_recovery]
        if not candidates:
            return None
        user = self.rng.choice(candidates)
        x = self.users[user]
        code = x.unused_recovery.pop(self.rng.randrange(len(x.unused_recovery)))
        proc = popen_pam(self.daemon, user, code)

        def done():
            result = result_of(proc.communicate(timeout=30)[0])
            self.count(f"recovery {result}")
            if result == "PAM_SUCCESS":
                x.accepted_recovery.append(code)
                return user, code
            # Not seen accepted: it may or may not have been recorded; never offered again.
            assert result == "PAM_AUTHINFO_UNAVAIL", result
            return None
        return done

    VERBS = ("enroll", "totp", "recovery", "regenerate", "disable", "wrong", "ghost")

    # After each restart ------------------------------------------------------------------------
    def check_files(self) -> None:
        state = self.daemon.state
        assert os.listdir(state / "tmp") == [], "temp files of interrupted writes are removed at start"
        journal = read_journal(state / "journal")               # each raises on a half-written file
        if (state / "lockout").exists():
            read_lockout_file(state / "lockout")
            self.count("lockout file parsed")
        if (state / "seen").exists():
            ghosts = read_seen_file(state / "seen")
            assert set(ghosts) <= {f"ghost{i}" for i in range(1, self.ghosts + 1)} | set(self.users)
            self.count("seen file parsed")
        present = set(os.listdir(state / "users"))
        for user, x in self.users.items():
            if user not in present:
                assert None in x.secrets, f"enrollment of {user} lost"
                if x.secrets != {None}:
                    self.revoked_recovery += [(user, c) for c in x.unused_recovery]
                x.secrets, x.pending, x.unused_recovery = {None}, None, []
                continue
            fields = read_user_file(state / "users" / user)   # raises on a half-written file
            assert fields["secret"] in x.secrets, f"{user}'s file holds a secret no enrollment wrote"
            if fields["secret"] != x.pending:
                # Every TOTP code accepted for this enrollment is on disk: in the file's last_step or
                # only in the replay journal (a record of this enrollment, named by its created time).
                entry = journal.get(user)
                journal_step = entry[1] if entry and entry[0] == int(fields["created"]) else None
                durable = max(int(fields.get("last_step", -1)), journal_step if journal_step is not None else -1)
                for secret, step, _ in x.accepted_totp:
                    if secret == fields["secret"]:
                        assert step <= durable, f"{user}: an accepted TOTP step is in neither the file nor the journal"
                self.journal_only = {u for u in self.journal_only if u != user}
                if x.accepted_totp and x.accepted_totp[-1][0] == fields["secret"] \
                        and x.accepted_totp[-1][1] > int(fields.get("last_step", -1)):
                    self.journal_only.add(user)
            if x.pending is not None:
                # The interrupted enrollment lost or won; from now on the file tells which.
                if fields["secret"] == x.pending:
                    x.unused_recovery = []            # generated by the daemon, never seen by the client
                    x.next_step = now_step() - WINDOW + 1
                x.pending = None
            x.secrets = {fields["secret"]}
        assert present <= set(self.users), f"files nobody enrolled: {present - set(self.users)}"

    def assert_refused(self, user: str, code: str, what: str) -> None:
        r = subprocess.run(pam_command(self.daemon, user, code), capture_output=True, text=True, timeout=30)
        assert result_of(r.stdout) == "PAM_AUTH_ERR", f"an accepted {what} was accepted again"


def test_sigkill_at_random_moments_loses_nothing_and_never_accepts_a_code_twice(daemon_factory):
    kills = scale("KILLS", 30, 1000)
    rng = random.Random(int(os.environ.get("MFAGATE_SEED", "0")) or None)
    # Lockout on but out of reach (so every wrong code and replay rewrites STATE/lockout, and a
    # PAM_MAXTRIES never hides whether a code itself was refused); a grace period, so every login of
    # a never-enrolled user rewrites STATE/seen.
    d = daemon_factory("required", extra_config=f"window = {WINDOW}\nmax_failures = 1000\nfailure_window = 1m\n"
                                                "max_failures_per_rhost = 100000\ngrace_period = 7d\n")
    d.service()
    model = CrashModel(d, rng)
    for i in range(4):
        model.enroll_now(f"crash{i}")
    started = time.monotonic()
    for _ in range(kills):
        verbs = list(CrashModel.VERBS)
        rng.shuffle(verbs)
        done = None
        for verb in verbs:
            done = getattr(model, f"verb_{verb}")()
            if done:
                break
        assert done is not None
        # A random moment: before the client connects, while the daemon reads, computes, writes,
        # syncs or renames, or after it answered.
        time.sleep(rng.uniform(0, 0.025))
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait(timeout=10)
        d.proc = None
        if os.listdir(d.state / "tmp"):
            model.count("killed with a write in progress")
        seen = done()
        d.start()
        model.check_files()
        if seen and isinstance(seen[1], str):
            user, code = seen
            model.assert_refused(user, code, "code")
            x = model.users[user]
            if user in model.journal_only and x.accepted_totp and x.accepted_totp[-1][2] == code:
                model.count("TOTP replay refused, its step only in the journal")
    # At the end: every accepted code whose enrollment is still current is refused, and the daemon
    # itself reads every file.
    replays = 0
    for user, x in model.users.items():
        current = next(iter(x.secrets))
        if current is None:
            continue   # not enrolled (disabled): no code is asked for, a grace period applies
        for code in x.accepted_recovery:
            model.assert_refused(user, code, "recovery code")
            replays += 1
        for secret, step, code in x.accepted_totp:
            if secret == current and step > now_step() - WINDOW:
                model.assert_refused(user, code, "TOTP code")
                replays += 1
        status = d.cli("status", "--user", user, "--json")
        assert status.returncode == 0 and '"enrolled": true' in status.stdout, status.stderr
    for user, code in model.revoked_recovery:
        if next(iter(model.users[user].secrets)) is not None:
            model.assert_refused(user, code, "recovery code made void by regenerate or disable")
            replays += 1
    elapsed = time.monotonic() - started
    report(f"crash consistency: {kills} SIGKILLs in {elapsed:.0f} s, {len(model.users)} users, "
           f"outcomes {dict(sorted(model.outcomes.items()))}, {replays} final replays refused")
    assert model.outcomes.get("totp PAM_SUCCESS", 0) + model.outcomes.get("recovery PAM_SUCCESS", 0) > 0
    if STRESS:
        # A kill that leaves a used step only in the journal is rare (0 or 1 in 1,000, by chance), so
        # it is reported, not required here; test_replay_journal.py makes that case on purpose.
        for what in ("regenerate confirmed", "disable confirmed", "lockout file parsed", "seen file parsed"):
            assert model.outcomes.get(what, 0) > 0, f"no kill exercised {what!r}"


# --------------------------------------------------------------------------------------------------
# Races


def run_parallel(commands: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """Starts every command before waiting for any, so they race for the daemon."""
    barrier = threading.Barrier(len(commands))
    results: list = [None] * len(commands)

    def one(i):
        barrier.wait()
        results[i] = subprocess.run(commands[i], capture_output=True, text=True, timeout=60)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(commands))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("kind", ["recovery code", "TOTP code"])
def test_parallel_logins_with_one_code_exactly_one_succeeds(daemon_factory, kind):
    # Lockout off: with it, the refused logins lock the user and later ones get PAM_MAXTRIES,
    # which hides nothing but muddles the count this test is about.
    daemon = daemon_factory("optional", "max_failures = 0\n")
    parallel = scale("PARALLEL", 50, 50)
    e = daemon.enroll("alice")
    daemon.service()
    code = e["recovery_codes"][0] if kind == "recovery code" else oathtool_totp(e["secret"])
    results = [result_of(r.stdout) for r in run_parallel([pam_command(daemon, "alice", code)] * parallel)]
    assert results.count("PAM_SUCCESS") == 1, results
    assert results.count("PAM_AUTH_ERR") == parallel - 1, results
    report(f"race: {parallel} parallel logins with one {kind}: 1 success, {parallel - 1} refused")


def test_parallel_enroll_force_on_one_user_leaves_one_whole_enrollment(daemon):
    parallel = scale("PARALLEL_ENROLL", 20, 50)
    daemon.enroll("alice")
    secrets_given = [new_secret() for _ in range(parallel)]
    cmds = [[str(MFAGATE), "--socket", daemon.socket, "enroll", "--user", "alice", "--force", "--secret", s, "--json"]
            for s in secrets_given]
    outs = run_parallel(cmds)
    for o in outs:
        hygiene.capture("mfagate enroll stderr", o.stderr)
    assert all(o.returncode == 0 for o in outs), [o.stderr for o in outs]
    replies = {json.loads(o.stdout)["secret"]: json.loads(o.stdout) for o in outs}
    for r in replies.values():
        hygiene.register("recovery code", *r["recovery_codes"])
    fields = read_user_file(daemon.state / "users" / "alice")
    assert os.listdir(daemon.state / "tmp") == []
    winner = replies[fields["secret"]]
    # The file is the whole of one enrollment: its secret and its recovery codes, no mix.
    assert len(fields["recovery"]) == 10
    daemon.service()
    assert daemon.pam("alice", winner["recovery_codes"][5]).result == "PAM_SUCCESS"
    assert daemon.pam("alice", oathtool_totp(winner["secret"])).result == "PAM_SUCCESS"
    loser = next(r for s, r in replies.items() if s != fields["secret"])
    assert daemon.pam("alice", loser["recovery_codes"][0]).result == "PAM_AUTH_ERR"
    report(f"race: {parallel} parallel `enroll --force` of one user: file whole, one enrollment's secret and codes")


# --------------------------------------------------------------------------------------------------
# Load and abuse


def open_connections(path: str, count: int) -> list[socket.socket]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 256), hard))
    conns = []
    for _ in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        conns.append(s)
    return conns


def timed_login(daemon: Daemon, secret: str, step: int, user: str = "alice") -> tuple[str, int, float]:
    code = totp_at(secret, step)
    t0 = time.monotonic()
    out = subprocess.run(pam_command(daemon, user, code), capture_output=True, text=True, timeout=30).stdout
    return result_of(out), elapsed_of(out), (time.monotonic() - t0) * 1000


def test_idle_connections_do_not_delay_a_login_and_memory_per_connection_is_bounded(daemon_factory):
    count = scale("IDLE", 200, 1000)
    d = daemon_factory("required", extra_config=f"window = {WINDOW}\n")
    secret = d.enroll("alice", new_secret())["secret"]
    d.service()
    step = now_step() - WINDOW + 1
    baseline = rss_kib(d.proc.pid)
    conns = open_connections(d.socket, count)
    try:
        time.sleep(0.2)
        idle_rss = rss_kib(d.proc.pid)
        result, elapsed, wall = timed_login(d, secret, step)
        assert result == "PAM_SUCCESS"
        if STRESS:
            assert elapsed < 1000, f"login took {elapsed} ms behind {count} idle connections"
        # Each connection now sends all but the last byte of the largest frame allowed: the daemon
        # holds at most one frame per connection.
        half = struct.pack(">I", 65536) + b"\x11" + b"A" * 65534
        for s in conns:
            s.setblocking(False)
            try:
                s.send(half)
            except BlockingIOError:
                pass
        time.sleep(1.0)
        full_rss = rss_kib(d.proc.pid)
        result2, elapsed2, _ = timed_login(d, secret, step + 1)
        assert result2 == "PAM_SUCCESS"
        if STRESS:
            assert elapsed2 < 1000
        per_connection = (full_rss - baseline) / count
        assert per_connection < 2 * 65536 / 1024 + 32, f"{per_connection:.0f} KiB per connection"
        report(f"load: {count} idle connections: login {elapsed} ms (wall {wall:.0f} ms); RSS {baseline} KiB → "
               f"{idle_rss} KiB idle → {full_rss} KiB with a 64 KiB half frame each "
               f"({per_connection:.0f} KiB per connection); login then {elapsed2} ms")
    finally:
        for s in conns:
            s.close()


def test_slow_drip_clients_do_not_delay_a_login(daemon_factory):
    clients = scale("DRIP", 100, 500)
    seconds = scale("DRIP_SECONDS", 3, 9)  # below the 10 s request timeout: every client stays mid-frame
    d = daemon_factory("required", extra_config=f"window = {WINDOW}\n")
    # Fresh codes for every login: 2 * WINDOW steps per user.
    users = {f"alice{i}": d.enroll(f"alice{i}", new_secret())["secret"] for i in range(4)}
    fresh = [(u, s, step) for step in range(now_step() - WINDOW + 1, now_step() + WINDOW) for u, s in users.items()]
    d.service()
    conns = open_connections(d.socket, clients)
    # Each client sends a 60 kB status request one byte at a time, a byte per client every 20 ms:
    # no request ever completes, every client holds its connection for the whole test.
    payload = b"\x11\x01" + struct.pack(">H", 60000) + b"a" * 60000
    frame = struct.pack(">I", len(payload)) + payload
    stop = threading.Event()

    def drip():
        i = 0
        while not stop.is_set():
            for s in conns:
                try:
                    s.send(frame[i % len(frame):i % len(frame) + 1], socket.MSG_DONTWAIT)
                except OSError:
                    pass
            i += 1
            time.sleep(0.02)

    t = threading.Thread(target=drip)
    t.start()
    worst = 0
    logins = 0
    try:
        end = time.monotonic() + seconds
        pause = seconds / len(fresh)
        while time.monotonic() < end and fresh:
            user, secret, step = fresh.pop(0)
            result, elapsed, _ = timed_login(d, secret, step, user)
            assert result == "PAM_SUCCESS", result
            worst = max(worst, elapsed)
            logins += 1
            time.sleep(pause)
        if STRESS:
            assert worst < 1000, f"a login took {worst} ms among {clients} slow-drip clients"
    finally:
        stop.set()
        t.join()
        for s in conns:
            s.close()
    report(f"load: {clients} slow-drip clients for {seconds} s: {logins} logins, slowest {worst} ms")


def test_a_flood_of_connections_from_one_user_cannot_lock_out_logins(daemon_factory):
    """More connections than the daemon serves at once, all from one unprivileged uid, held open and
    renewed: root's (sshd's) login must still be served, promptly."""
    count = scale("FLOOD", 1100, 1100)
    d = daemon_factory("required", extra_config=f"window = {WINDOW}\n")
    secret = d.enroll("alice", new_secret())["secret"]
    d.service()
    script = d.dir / "flood.py"
    script.write_text(
        "import socket, sys, time\n"
        "conns = []\n"
        f"for _ in range({count}):\n"
        "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "    s.setblocking(False)\n"
        "    try:\n"
        f"        s.connect({d.socket!r})\n"
        "    except (BlockingIOError, ConnectionRefusedError, OSError):\n"
        "        pass\n"
        "    conns.append(s)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n")
    os.chmod(script, 0o644)
    flood = subprocess.Popen(["prlimit", f"--nofile={count + 64}", "--", *as_account("nobody", ["/usr/bin/python3", str(script)])],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert flood.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        result, elapsed, wall = timed_login(d, secret, now_step() - WINDOW + 1)
        assert result == "PAM_SUCCESS", f"{result} after {elapsed} ms behind {count} connections of one user"
        assert elapsed < 1000, f"login took {elapsed} ms behind {count} connections of one user"
        report(f"load: {count} connections held by one unprivileged uid: root's login {elapsed} ms")
    finally:
        flood.kill()
        flood.wait()


# --------------------------------------------------------------------------------------------------
# Peer authorisation (what test_daemon.py does not cover yet)


ADMIN_VERBS = [
    ("enroll", ["enroll", "--user", "{user}", "--force", "--json"]),
]

# Verbs that act on another user's state or tell about it; each run by `nobody` against alice, with
# alice's right current code where the verb takes one ({code}), so only the peer check can refuse.
OTHER_USER_VERBS = [
    ("regenerate", ["recovery-codes", "--regenerate", "--user", "alice", "--code", "{code}"]),
    ("disable", ["disable", "--user", "alice", "--code", "{code}"]),
    ("disable with a recovery code", ["disable", "--user", "alice", "--code", "{recovery}"]),
    ("reset", ["reset", "--user", "alice"]),
    ("list", ["list", "--json"]),
    ("import", ["import-google-authenticator", "--user", "alice", "--force", "{gafile}"]),
    ("check", ["check", "--user", "alice", "--service", "sshd", "--json"]),
    ("unlock", ["unlock", "--user", "alice"]),
    ("unlock address", ["unlock", "--rhost", "192.0.2.9"]),
]


@pytest.mark.parametrize("verb,args", ADMIN_VERBS)
@pytest.mark.parametrize("target", ["alice", "nobody"])
def test_admin_verbs_refuse_non_root_peers_and_change_nothing(daemon, verb, args, target):
    daemon.enroll("alice")
    daemon.enroll("nobody")
    before = {u: (daemon.state / "users" / u).read_bytes() for u in ("alice", "nobody")}
    out = daemon.cli(*[a.format(user=target) for a in args], user="nobody")
    assert out.returncode == 1 and "only root" in out.stderr
    assert {u: (daemon.state / "users" / u).read_bytes() for u in ("alice", "nobody")} == before


@pytest.mark.parametrize("verb,args", OTHER_USER_VERBS, ids=[v for v, _ in OTHER_USER_VERBS])
def test_a_non_root_peer_cannot_act_on_another_users_state(daemon_factory, verb, args):
    d = daemon_factory("optional", "max_failures = 3\nmax_failures_per_rhost = 3\n")
    e = d.enroll("alice", new_secret())
    d.enroll("nobody")
    for _ in range(3):   # alice and an address locked, so unlock has something to clear
        assert d.pam("alice", "000000", rhost="192.0.2.9").result == "PAM_AUTH_ERR"
    hygiene.register("wrong code", "000000")
    gafile = d.dir / "google_authenticator"
    gafile.write_text(f"{new_secret()}\n\" TOTP_AUTH\n")
    os.chmod(gafile, 0o644)
    os.chmod(d.dir, 0o755)
    state = d.state

    def snapshot():
        # The replay journal is left out: its markers are renewed twice a second (issue 18's lease),
        # so it changes with time alone. That nothing was used up is shown below: alice's code and
        # recovery code still work once root unlocks her.
        files = {p.relative_to(state): p.read_bytes() for p in state.rglob("*") if p.is_file() and p.name != "journal"}
        return files

    before = snapshot()
    code = oathtool_totp(e["secret"])
    out = d.cli(*[a.format(code=code, recovery=e["recovery_codes"][0], gafile=gafile) for a in args], user="nobody")
    hygiene.capture(f"mfagate {verb} as nobody", out.stdout + out.stderr)
    assert out.returncode != 0, f"{verb} for alice by nobody: {out.stdout}"
    assert "alice" not in out.stdout, out.stdout
    assert snapshot() == before, f"{verb} by nobody changed the state directory"
    # Nothing was used up: alice is still locked, and once unlocked by root her code and recovery code work.
    assert d.check("alice")["decision"] == "locked"
    assert d.cli("unlock", "--user", "alice", "--rhost", "192.0.2.9").returncode == 0
    assert d.pam("alice", code).result == "PAM_SUCCESS"
    assert d.pam("alice", e["recovery_codes"][0]).result == "PAM_SUCCESS"
    report(f"peer authorisation: `{verb}` for alice by nobody refused ({out.stderr.strip()!r}), state unchanged")


def test_a_refused_peer_learns_nothing_and_uses_up_no_code(daemon):
    """nobody asking a verdict for alice (enrolled) and for bob (not enrolled) gets the same answer;
    alice's right code sent by nobody is not consumed, and her file is untouched."""
    e = daemon.enroll("alice")
    before = (daemon.state / "users" / "alice").read_bytes()
    code = oathtool_totp(e["secret"])
    as_nobody = [daemon.pam(user, answer, as_user="nobody")
                 for user, answer in (("alice", code), ("bob", code), ("alice", e["recovery_codes"][0]))]
    assert {(r.result, tuple(r.messages)) for r in as_nobody} == {("PAM_AUTH_ERR", ())}, as_nobody
    status = [daemon.cli("status", "--user", u, "--json", user="nobody") for u in ("alice", "bob")]
    assert [s.returncode for s in status] == [1, 1] and status[0].stderr == status[1].stderr
    assert (daemon.state / "users" / "alice").read_bytes() == before
    assert daemon.pam("alice", code).result == "PAM_SUCCESS"
    assert daemon.pam("alice", e["recovery_codes"][0]).result == "PAM_SUCCESS"
    # A raw frame from nobody, claiming to be alice's login, is refused the same way.
    payload = b"\x01\x01" + b"".join(struct.pack(">H", len(f)) + f for f in (b"alice", b"x", b"", b"", b"")) + b"\x00"
    script = (f"import socket,struct;s=socket.socket(socket.AF_UNIX);s.connect({daemon.socket!r});"
              f"s.sendall(struct.pack('>I',{len(payload)})+{payload!r});print(s.recv(4096).hex())")
    raw = subprocess.run(as_account("nobody", ["/usr/bin/python3", "-c", script]), capture_output=True, text=True, timeout=30)
    reply = bytes.fromhex(raw.stdout.strip())
    assert reply[4] == 0x82 and reply[5] == 1, "a DENIED verdict, no prompt"


# --------------------------------------------------------------------------------------------------
# Full disk


def test_a_full_disk_refuses_clearly_keeps_the_old_state_and_recovers(daemon_factory):
    """The state dir is a small tmpfs in the daemon's private mount namespace (nothing mounted on
    the host); the test reaches it through /proc/PID/root. TOTP logins record their step in the
    pre-allocated replay journal, so they keep working on a full disk (and stay single-use);
    whatever needs a file rewritten (a recovery code, an enrollment) is refused clearly."""
    d = daemon_factory("required", extra_config=f"window = {WINDOW}\n", start=False)
    d.wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c",
              'mount -n -t tmpfs -o size=4m,mode=0700 mfagate-full "$0" && exec "$@"', str(d.state)]
    d.start()
    state = f"/proc/{d.proc.pid}/root{d.state}"
    assert os.path.ismount(state) or os.stat(state).st_dev != os.stat(d.state).st_dev, "the state dir is the tmpfs"
    e = d.enroll("alice", new_secret())
    d.service()
    step = now_step() - WINDOW + 1
    assert timed_login(d, e["secret"], step)[0] == "PAM_SUCCESS"
    user_file = f"{state}/users/alice"
    before = open(user_file, "rb").read()

    filler = f"{state}/filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as err:
            assert err.errno == 28, err  # ENOSPC
        try:
            while True:
                f.write(b"\0")
        except OSError:
            pass
    # A TOTP code is recorded in a journal slot that already has its blocks: accepted once.
    code = totp_at(e["secret"], step + 1)
    out = subprocess.run(pam_command(d, "alice", code), capture_output=True, text=True, timeout=30).stdout
    assert result_of(out) == "PAM_SUCCESS"
    out = subprocess.run(pam_command(d, "alice", code), capture_output=True, text=True, timeout=30).stdout
    assert result_of(out) == "PAM_AUTH_ERR", "still single-use on a full disk"
    # A recovery code needs the user file rewritten: refused clearly (UNAVAILABLE), not accepted unrecorded.
    out = subprocess.run(pam_command(d, "alice", e["recovery_codes"][0]), capture_output=True, text=True, timeout=30).stdout
    assert result_of(out) == "PAM_AUTHINFO_UNAVAIL"
    assert "could not record the used code" in d.log() and "No space left on device" in d.log()
    # A replacement enrollment fails with a sentence naming the cause.
    again = d.cli("enroll", "--user", "alice", "--force", "--secret", new_secret(), "--json")
    assert again.returncode == 1 and "No space left on device" in again.stderr
    assert d.cli("enroll", "--user", "bob", "--json").returncode == 1
    # The old file is intact, nothing half-written is left, and reading still works.
    assert open(user_file, "rb").read() == before
    assert os.listdir(f"{state}/tmp") == [] and sorted(os.listdir(f"{state}/users")) == ["alice"]
    assert '"enrolled": true' in d.cli("status", "--user", "alice", "--json").stdout

    os.unlink(filler)
    # Space is back: the recovery code (never recorded) now works, once; the TOTP code stays used.
    assert d.pam("alice", e["recovery_codes"][0]).result == "PAM_SUCCESS"
    assert d.pam("alice", e["recovery_codes"][0]).result == "PAM_AUTH_ERR"
    out = subprocess.run(pam_command(d, "alice", code), capture_output=True, text=True, timeout=30).stdout
    assert result_of(out) == "PAM_AUTH_ERR"
    read_user_file(type(d.state)(user_file))
    report("full disk: TOTP login recorded in the pre-allocated journal and single-use; recovery code refused "
           "with UNAVAILABLE, enroll refused naming ENOSPC, old file byte-identical, no temp left; service resumed "
           "when space returned")


# --------------------------------------------------------------------------------------------------
# Floods of wrong codes and the lockout policy (Sources/MFACore/Policy.swift, MFADaemon/Bookkeeper.swift)


def run_pool(commands: list[list[str]], width: int) -> list[str]:
    """Runs the commands `width` at a time; returns each one's PAM result."""
    results: list = [None] * len(commands)
    lock = threading.Lock()
    todo = list(range(len(commands)))

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop(0)
            results[i] = result_of(subprocess.run(commands[i], capture_output=True, text=True, timeout=60).stdout)

    threads = [threading.Thread(target=worker) for _ in range(width)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def wrong_codes(count: int, rng: random.Random) -> list[str]:
    codes = [f"{rng.randrange(10**6):06d}" for _ in range(count)]
    hygiene.register("wrong code", *codes)
    return codes


def test_a_flood_of_wrong_codes_locks_its_user_and_does_not_slow_other_users(daemon_factory):
    flood = scale("WRONG_FLOOD", 100, 1000)
    limit = 5
    d = daemon_factory("required", extra_config=f"window = {WINDOW}\nmax_failures = {limit}\nfailure_window = 15m\n"
                                                "lockout = 15m\nmax_failures_per_rhost = 0\n")
    victim = d.enroll("victim", new_secret())
    others = {f"other{i}": d.enroll(f"other{i}", new_secret())["secret"] for i in range(8)}
    d.service()
    fresh = [(u, s, step) for step in range(now_step() - WINDOW + 1, now_step() + WINDOW) for u, s in others.items()]
    rng = random.Random()
    attack = [pam_command(d, "victim", c) + ["--rhost", f"203.0.113.{i % 250 + 1}"]
              for i, c in enumerate(wrong_codes(flood, rng))]
    timings: list[int] = []
    stop = threading.Event()

    def legitimate_logins():
        while not stop.is_set() and fresh:
            user, secret, step = fresh.pop(0)
            result, elapsed, _ = timed_login(d, secret, step, user)
            assert result == "PAM_SUCCESS", f"{user}: {result} during the flood"
            timings.append(elapsed)

    t = threading.Thread(target=legitimate_logins)
    t.start()
    started = time.monotonic()
    try:
        results = run_pool(attack, 16)
    finally:
        seconds = time.monotonic() - started
        stop.set()
        t.join()
    # Exactly `limit` wrong codes were checked; every later attempt got PAM_MAXTRIES unchecked.
    assert results.count("PAM_AUTH_ERR") == limit, {r: results.count(r) for r in set(results)}
    assert results.count("PAM_MAXTRIES") == flood - limit
    assert d.pam("victim", oathtool_totp(victim["secret"])).result == "PAM_MAXTRIES", "the right code too, while locked"
    assert d.check("victim")["decision"] == "locked"
    assert timings, "other users logged in during the flood"
    for u in others:
        assert d.check(u)["decision"] == "code", f"{u} is not locked by another user's flood"
    timings.sort()
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    if STRESS:
        assert p99 < 1000, f"other users' p99 {p99} ms during a flood of wrong codes"
    read_lockout_file(d.state / "lockout")
    report(f"flood: {flood} wrong codes against one user in {seconds:.1f} s (16 at a time): {limit} checked, "
           f"{flood - limit} PAM_MAXTRIES; {len(timings)} other users' logins meanwhile, median {timings[len(timings) // 2]} ms, "
           f"p99 {p99} ms, slowest {timings[-1]} ms")


def test_a_flood_from_one_address_blocks_it_and_locks_no_user_beyond_its_budget(daemon_factory):
    users = scale("RHOST_USERS", 20, 100)
    per_user, per_rhost = 3, 10
    d = daemon_factory("required", extra_config=f"window = {WINDOW}\nmax_failures = {per_user}\n"
                                                f"max_failures_per_rhost = {per_rhost}\nfailure_window = 15m\nlockout = 15m\n")
    secrets = {f"u{i}": d.enroll(f"u{i}", new_secret())["secret"] for i in range(users)}
    d.service()
    attacker, legit = "192.0.2.66", "198.51.100.7"
    # Enough wrong codes to lock every user (per_user each), user after user, 8 at a time.
    targets = [u for u in secrets for _ in range(per_user + 1)]
    attack = [pam_command(d, u, c) + ["--rhost", attacker] for u, c in zip(targets, wrong_codes(len(targets), random.Random()))]
    results = run_pool(attack, 8)
    assert results.count("PAM_AUTH_ERR") == per_rhost, {r: results.count(r) for r in set(results)}
    assert results.count("PAM_MAXTRIES") == len(attack) - per_rhost
    locked = [u for u in secrets if d.check(u, rhost=legit)["decision"] == "locked"]
    assert len(locked) <= per_rhost // per_user, f"{len(locked)} users locked by one address's {per_rhost} failures"
    assert d.check("u0", rhost=attacker)["decision"] == "locked"
    step = now_step()
    for u in secrets:
        if u not in locked:
            code = totp_at(secrets[u], step)
            assert d.pam(u, code, rhost=legit).result == "PAM_SUCCESS", f"{u} from another address"
    book = read_lockout_file(d.state / "lockout")
    assert book[("rhost", attacker)][0] is not None, "the address is recorded as blocked"
    report(f"flood: {len(attack)} wrong codes from one address across {users} users: {per_rhost} checked "
           f"(max_failures_per_rhost), {len(attack) - per_rhost} PAM_MAXTRIES, {len(locked)} users locked "
           f"(≤ {per_rhost // per_user}); every other user logs in from another address")
