#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`make bench`: mfagate side by side with pam_google_authenticator and pam_oath (docs/performance.md).

Runs as root, re-executing itself in a private mount namespace whose /dev has a /dev/log of its own
(a datagram socket drained by `bench_driver drain`): there is no syslog daemon on these machines, and
glibc would otherwise write every syslog line to the slow console. All figures come from this one run.

Phases (every login uses a user no earlier login of the run used: each module refuses a code reused
within its 30 s step):
  latency     one driver interleaves pam_permit, GA, pam_oath and mfagate, N logins each
  throughput  1, 2 and 8 concurrent drivers per module for D seconds (or until their users run out)
  scale       a second daemon: auth cost and RSS with 10, 10k and 100k enrolled users
  flood       a legitimate user's latency while clients flood wrong codes for other users
  start       socket activation (or process start) to the first verdict

Writes build/bench.json and prints a table. `--tiny` runs everything on a few users (make check).
"""
from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
DRIVER = BUILD / "bench_driver"
MODULE_DIR = Path("/lib/x86_64-linux-gnu/security")
MODULES = ["pam_permit", "pam_google_authenticator", "pam_oath", "pam_mfagate"]
SHORT = {"pam_permit": "permit", "pam_google_authenticator": "ga", "pam_oath": "oath", "pam_mfagate": "mfagate"}
DAEMON_USER = "nobody"
# Prefixes of the users the daemon sees (pam_mfagate's population, the scale and flood phases).
NUMBERED = "mf,su,fu,fl,ff,floor"


def numbered_accounts(work: Path) -> None:
    """Makes the bench users accounts for the daemon without a 100,000-line /etc/passwd: in this
    private mount namespace, /etc/nsswitch.conf says `passwd: mfatest files`, and the tests' own NSS
    module (Tests/integration/nss/nss_mfatest.c, copied where `nobody` can read it) answers every
    name of a NUMBERED prefix and digits. Other processes do not find the module and skip it."""
    nss = work / "nss"
    nss.mkdir(mode=0o755)
    shutil.copy2(BUILD / "libnss_mfatest.so.2", nss / "libnss_mfatest.so.2")
    os.chmod(nss / "libnss_mfatest.so.2", 0o755)
    conf = nss / "nsswitch.conf"
    conf.write_text("passwd: mfatest files\ngroup: files\nshadow: files\nhosts: files\n")
    os.chmod(conf, 0o644)
    subprocess.run(["mount", "-n", "--bind", str(conf), "/etc/nsswitch.conf"], check=True)
FLOOR_USER = "floor0"  # exempt in the bench daemon's config: one round trip, no code


class Sizes:
    def __init__(self, tiny: bool):
        self.tiny = tiny
        self.latency = 3 if tiny else 1000                 # logins per module, interleaved
        self.duration = 0.2 if tiny else 2.0               # seconds per throughput run
        self.concurrency = [1, 2, 8]
        # users per (module, throughput run): enough for the run unless a module is faster than this
        self.pool = {"pam_permit": 1, "pam_google_authenticator": 4 if tiny else 8000,
                     "pam_oath": 4 if tiny else 800, "pam_mfagate": 4 if tiny else 16000}
        self.scale = [10, 30, 60] if tiny else [10, 10_000, 100_000]
        self.scale_logins = 3 if tiny else 400             # per size (at most the users not used yet)
        self.flood_clients = 2 if tiny else 6
        self.flood_seconds = 0.5 if tiny else 5.0
        self.legit_logins = 3 if tiny else 500
        self.starts = 1 if tiny else 5


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---- users ----------------------------------------------------------------------------------
def b32(secret: bytes) -> str:
    import base64
    return base64.b32encode(secret).decode().rstrip("=")


class Users:
    """A numbered population of users with random secrets, written as `name hexsecret` lines for
    the driver; `take(n)` hands out users no earlier phase has used."""

    def __init__(self, prefix: str, path: Path):
        self.prefix, self.path = prefix, path
        self.secrets: list[bytes] = []
        self.next = 0

    def name(self, i: int) -> str:
        return f"{self.prefix}{i:06d}"

    def grow(self, n: int) -> range:
        first = len(self.secrets)
        self.secrets += [os.urandom(20) for _ in range(n)]
        with open(self.path, "a") as f:
            for i in range(first, first + n):
                f.write(f"{self.name(i)} {self.secrets[i].hex()}\n")
        return range(first, first + n)

    def take(self, n: int) -> tuple[int, int]:
        first = self.next
        self.next = min(len(self.secrets), first + n)
        return first, self.next


def mfagate_user_file(name: str, secret: bytes, created: int) -> bytes:
    """UserFileFormat (Sources/MFAStore/UserRecord.swift) as enrollment writes it, with ten recovery
    code hashes so the file is as large as a real one. The daemon only reads these files."""
    lines = ["# mfagate user file: written by mfagated; do not edit (use the mfagate command)",
             "version 1", f"user {name}", "method totp", "algorithm sha1", "digits 6", "period 30",
             f"secret {b32(secret)}", f"created {created}"]
    lines += [f"recovery {os.urandom(16).hex()}:{os.urandom(32).hex()}" for _ in range(10)]
    return ("\n".join(lines) + "\n").encode()


# ---- processes ------------------------------------------------------------------------------
def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def smaps_kb(pid: int, field: str) -> int:
    """A field of /proc/PID/smaps_rollup: `Pss` is what the host pays (each shared page divided
    among the processes mapping it), `Anonymous` what no file backs."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of `pid` so far (schedstat: ns on a CPU), for daemon work per login."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def anonymous_kb(pid: int) -> int:
    """Anonymous memory (heap, stacks, relocated data): what the daemon costs the host beyond
    file pages the kernel can drop and share (the binary's text, libcrypto, libc)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Anonymous:"):
            return int(line.split()[1])
    return -1


def run_driver(confdir: Path, specs: list[str], *flags: str) -> list[dict]:
    out = subprocess.run([str(DRIVER), "auth", str(confdir), *flags, *specs], capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"bench_driver failed: {out.stderr.strip()}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def start_drivers(confdir: Path, spec_lists: list[list[str]], *flags: str) -> list[subprocess.Popen]:
    return [subprocess.Popen([str(DRIVER), "auth", str(confdir), *flags, *specs], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for specs in spec_lists]


def collect(procs: list[subprocess.Popen]) -> list[dict]:
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"bench_driver failed: {err.strip()}")
        results += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return results


class Daemon:
    """build/mfagated as `nobody` (as an admin would run it: its own unprivileged user), state in `dir`."""

    def __init__(self, work: Path, name: str):
        self.dir = work / name
        self.dir.mkdir(mode=0o755)
        ent = pwd.getpwnam(DAEMON_USER)
        self.uid, self.gid = ent.pw_uid, ent.pw_gid
        self.state = self.dir / "state"
        self.users = self.state / "users"
        for d in (self.state, self.users, self.state / "tmp"):
            d.mkdir(mode=0o700)
            os.chown(d, self.uid, self.gid)
        # root's and 0755, as /run/mfagate is: the module refuses a socket in a directory anyone
        # but root could write (issue 14), so the socket is bound by root and handed over (start).
        self.run = self.dir / "run"
        self.run.mkdir(mode=0o755)
        self.socket = self.run / "mfagated.sock"
        self.config = self.dir / "mfagate.conf"
        # FLOOR_USER is exempt: its login is one round trip with no code (the floor table)
        self.config.write_text(f"mode = required\nstate_dir = {self.state}\nsocket = {self.socket}\n"
                               f"exempt_users = {FLOOR_USER}\n")
        self.binary = work / "mfagated"
        self.log_path = self.dir / "mfagated.log"
        self.proc: subprocess.Popen | None = None

    def enroll_files(self, users: Users, indices: range) -> None:
        now = int(time.time())
        for i in indices:
            fd = os.open(self.users / users.name(i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, mfagate_user_file(users.name(i), users.secrets[i], now))
                os.fchown(fd, self.uid, self.gid)
            finally:
                os.close(fd)

    def command(self) -> list[str]:
        # The daemon refuses names NSS does not know: the tests' NSS module answers for the
        # numbered bench users in constant time, as a directory's cache would (numbered_accounts).
        return ["env", f"LD_LIBRARY_PATH={self.binary.parent / 'nss'}", f"MFATEST_NSS_NUMBERED={NUMBERED}",
                "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                str(self.binary), "--config", str(self.config)]

    def start(self, activation: bool = False) -> None:
        cmd = self.command()
        if activation:
            # systemd-socket-activate binds the socket as root, then on the first connection execs
            # the command (setpriv drops to nobody, then execs mfagated) with LISTEN_FDS, as systemd
            # does for mfagated.socket. A socket-activated daemon leaves its socket file (the socket
            # unit owns it), so the previous run's is removed first; it is in our own temp dir.
            if self.socket.is_socket():
                self.socket.unlink()
            cmd = ["systemd-socket-activate", "-l", str(self.socket), *cmd]
            self.log_path.write_bytes(b"")
        pass_fds: tuple[int, ...] = ()
        listener = None
        if not activation:
            # Bound here as root, mode 0666, and passed as LISTEN_FDS (as mfagated.socket does);
            # setpriv execs, so the daemon keeps bash's PID, which LISTEN_PID names.
            if self.socket.is_socket():
                self.socket.unlink()
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(self.socket))
            os.chmod(self.socket, 0o666)
            listener.listen(128)
            pass_fds = (listener.fileno(),)
            cmd = ["bash", "-c", 'eval "exec 3<&$0"; export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@"',
                   str(listener.fileno()), *cmd]
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, pass_fds=pass_fds)
        logf.close()
        if listener is not None:
            listener.close()  # the daemon holds it now
        if activation:
            # logged after listen(): a connection from now on waits in the backlog for the daemon
            wait_for(lambda: "Listening on" in self.log_path.read_text(errors="replace"), "the activation socket")
        else:
            wait_for(lambda: "ready" in self.log_path.read_text(errors="replace"), "mfagated ready")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid


def wait_for(check, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.005)
    raise RuntimeError(f"timed out waiting for {what}")


# ---- the namespace's /dev/log -----------------------------------------------------------------
def private_devlog(work: Path) -> subprocess.Popen:
    """Overlays /dev (writable layer in `work`), binds the host's /dev submounts back, and binds a
    drained datagram socket on /dev/log. Only this namespace sees any of it."""
    env = dict(os.environ, LIBMOUNT_UTAB=str(work / "utab"))
    hostdev, upper, wdir = work / "hostdev", work / "dev-upper", work / "dev-work"
    for d in (hostdev, upper, wdir):
        d.mkdir()
    submounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mnt = line.split()[4]
        if mnt.startswith("/dev/"):
            submounts.append(mnt)
    sock = work / "devlog.sock"
    drain = subprocess.Popen([str(DRIVER), "drain", str(sock)], stdout=subprocess.PIPE, text=True)
    assert drain.stdout and drain.stdout.readline().strip() == "ready"

    def mount(*args: str) -> None:
        subprocess.run(["mount", "-n", *args], check=True, env=env)

    mount("--rbind", "/dev", str(hostdev))
    mount("-t", "overlay", "overlay", "-o", f"lowerdir=/dev,upperdir={upper},workdir={wdir}", "/dev")
    for m in sorted(set(submounts), key=len):
        if os.path.isdir(m):
            mount("--rbind", str(hostdev) + m[4:], m)
    Path("/dev/log").touch()
    mount("--bind", str(sock), "/dev/log")
    return drain


# ---- module configuration -----------------------------------------------------------------------
def configure_modules(work: Path, daemon: Daemon) -> Path:
    confdir = work / "pam"
    confdir.mkdir()
    (confdir / "other").write_text("auth required pam_deny.so\naccount required pam_deny.so\n")
    shim = work / "pam_mfagate.so"
    shutil.copy2(BUILD / "pam_mfagate.so", shim)
    lines = {
        "pam_permit": "auth required pam_permit.so",
        # secrets in a root-owned directory, not in the users' homes (the careful setup)
        "pam_google_authenticator": f"auth required pam_google_authenticator.so secret={work}/ga/${{USER}} user=root",
        "pam_oath": f"auth required pam_oath.so usersfile={work}/oath/users.oath window=1",
        "pam_mfagate": f"auth required {shim} socket={daemon.socket}",
    }
    for module, line in lines.items():
        (confdir / SHORT[module]).write_text(line + "\naccount required pam_permit.so\n")
    # the floor table: the shim with no daemon behind its socket (load + a failed connect), and
    # the shim for the daemon's exempt user (load + connect + one round trip, no code)
    (confdir / "nosock").write_text(f"auth required {shim} socket={work}/nothing-here.sock\n")
    (confdir / "exempt").write_text(f"auth required {shim} socket={daemon.socket}\n")
    for d in ("ga", "oath"):
        (work / d).mkdir(mode=0o700)
    return confdir


def enroll_ga(work: Path, users: Users, indices: range) -> None:
    for i in indices:
        # the options `google-authenticator -t -d -r 3 -R 30` writes: TOTP, reuse refused, rate limit
        body = f"{b32(users.secrets[i])}\n\" RATE_LIMIT 3 30\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n"
        fd = os.open(work / "ga" / users.name(i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, body.encode())
        os.close(fd)


def enroll_oath(work: Path, users: Users) -> None:
    path = work / "oath" / "users.oath"
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        for i, s in enumerate(users.secrets):
            f.write(f"HOTP/T30 {users.name(i)} - {s.hex()}\n")


# ---- phases -----------------------------------------------------------------------------------------
def spec(module: str, users: Users, first: int, end: int) -> str:
    return f"{SHORT[module]}:{users.path}:{first}:{end}"


def phase_latency(confdir: Path, pops: dict[str, Users], sz: Sizes) -> dict:
    specs = [spec(m, pops[m], *pops[m].take(sz.latency)) for m in MODULES]
    results = {SHORT[m]: r for m, r in zip(MODULES, run_driver(confdir, specs, "--count", str(sz.latency)))}
    return {m: results[SHORT[m]] for m in MODULES}


def phase_wrong(confdir: Path, pops: dict[str, Users], sz: Sizes) -> dict:
    """A wrong code, interleaved: GA searches its skew window (and rewrites its file for the rate
    limit); mfagate checks three steps and counts the failure in its lockout book. Each login is a
    user not used before (one wrong code each: no rate limit or lockout is reached)."""
    mods = ["pam_permit", "pam_google_authenticator", "pam_mfagate"]
    specs = [spec(m, pops[m], *pops[m].take(sz.latency)) if m != "pam_permit" else spec(m, pops[m], 0, 1)
             for m in mods]
    results = {r["service"]: r for r in run_driver(confdir, specs, "--count", str(sz.latency), "--wrong")}
    return {m: results[SHORT[m]] for m in mods}


def phase_floor(confdir: Path, work: Path, daemon: "Daemon", sz: Sizes) -> dict:
    """Where a login's time goes, against pam_permit, interleaved in one driver: the shim loaded
    with no daemon behind its socket (libpam's module load of pam_mfagate.so and a connect that
    fails), the daemon's exempt user (+ connect and one round trip, no code). The full login (two
    round trips, the code check, the journal write) is the latency phase's row. Also the daemon's
    CPU time per full login over the latency phase (bench.py records it there)."""
    floor = Users("fl", work / "users-floor.txt")
    floor.grow(1)
    floor.path.write_text(f"{FLOOR_USER} {floor.secrets[0].hex()}\n")
    specs = [f"permit:{floor.path}:0:1", f"nosock:{floor.path}:0:1", f"exempt:{floor.path}:0:1"]
    results = {r["service"]: r for r in run_driver(confdir, specs, "--count", str(sz.latency), "--wrong")}
    return {"pam_permit": results["permit"], "shim_no_daemon": results["nosock"],
            "shim_one_round_trip": results["exempt"]}


def phase_throughput(confdir: Path, pops: dict[str, Users], sz: Sizes) -> dict:
    out: dict[str, dict] = {m: {} for m in MODULES}
    for conc in sz.concurrency:
        for m in MODULES:
            per = max(1, sz.pool[m] // conc)
            lists = []
            for _ in range(conc):
                if m == "pam_permit":
                    lists.append([spec(m, pops[m], 0, 1)])  # pam_permit never checks a code
                else:
                    lists.append([spec(m, pops[m], *pops[m].take(per))])
            flags = ["--duration", str(sz.duration)] + (["--wrong"] if m == "pam_permit" else [])
            results = collect(start_drivers(confdir, lists, *flags))
            ok = sum(r["ok"] for r in results)
            fail = sum(r["fail"] for r in results) if m != "pam_permit" else 0
            elapsed = max(r["elapsed_s"] for r in results)
            out[m][str(conc)] = {"ok_per_s": round(ok / elapsed), "ok": ok, "fail": fail,
                                 "elapsed_s": round(elapsed, 3), "p50_us": max(r["p50_us"] for r in results)}
    return out


def phase_scale_memory_flood(work: Path, sz: Sizes) -> dict:
    daemon = Daemon(work, "scale")
    users = Users("su", work / "scale-users.txt")
    flood_users = Users("fu", work / "flood-users.txt")
    confdir = work / "pam-scale"
    confdir.mkdir()
    (confdir / "other").write_text("auth required pam_deny.so\n")
    (confdir / "mfagate").write_text(f"auth required {work}/pam_mfagate.so socket={daemon.socket}\n")
    result: dict = {"scale": {}, "memory_kb": {}}
    # enrolled users grow 10 -> 10k -> 100k; the flood's targets are among them
    target = sz.scale[0]
    daemon.enroll_files(users, users.grow(target))
    daemon.start()
    time.sleep(0.5)  # past start-up (the first lease renewal)
    result["memory_kb"]["idle_10_users"] = rss_kb(daemon.pid)
    result["memory_kb"]["idle_10_users_anonymous"] = anonymous_kb(daemon.pid)
    result["memory_kb"]["idle_10_users_pss"] = smaps_kb(daemon.pid, "Pss")
    for n in sz.scale:
        if n > len(users.secrets):
            daemon.enroll_files(users, users.grow(n - len(users.secrets)))
        logins = min(sz.scale_logins, len(users.secrets) - users.next)
        r = run_driver(confdir, [f"mfagate:{users.path}:{users.take(logins)[0]}:{users.next}"], "--count", str(logins))[0]
        result["scale"][str(n)] = r
        result["memory_kb"][f"after_{n}_users"] = rss_kb(daemon.pid)
    # the flood: wrong codes for other (enrolled) users, while one legitimate client logs in
    flood_range = flood_users.grow(max(10, sz.flood_clients * 50))
    daemon.enroll_files(flood_users, flood_range)
    per = len(flood_range) // sz.flood_clients
    flooders = start_drivers(confdir, [[f"mfagate:{flood_users.path}:{k * per}:{(k + 1) * per}"]
                                       for k in range(sz.flood_clients)],
                             "--duration", str(sz.flood_seconds), "--wrong")
    time.sleep(min(0.5, sz.flood_seconds / 4))
    legit_pool = users.grow(sz.legit_logins)
    daemon.enroll_files(users, legit_pool)
    legit = start_drivers(confdir, [[f"mfagate:{users.path}:{users.take(sz.legit_logins)[0]}:{users.next}"]],
                          "--count", str(sz.legit_logins))
    peak = 0
    while any(p.poll() is None for p in flooders + legit):
        peak = max(peak, rss_kb(daemon.pid))
        time.sleep(0.05)
    legit_r = collect(legit)[0]
    flood_r = collect(flooders)
    result["memory_kb"]["during_flood_peak"] = peak
    result["flood"] = {
        "clients": sz.flood_clients,
        "wrong_codes_per_s": round(sum(r["fail"] for r in flood_r) / max(r["elapsed_s"] for r in flood_r)),
        "wrong_accepted": sum(r["ok"] for r in flood_r),
        "legit": legit_r,
    }
    daemon.stop()
    result["daemon"] = daemon
    result["users"] = users
    return result


def phase_start(work: Path, daemon: Daemon, users: Users, sz: Sizes) -> dict:
    """Time to the first verdict: the whole first login (pam_start to pam_end) against a socket
    that systemd-socket-activate holds, so it includes starting the daemon (exec of setpriv and
    mfagated, reading the state directory and the journal) on that first connection. Falls back to
    timing from process start if the daemon does not take LISTEN_FDS."""
    activation = b"LISTEN_FDS" in daemon.binary.read_bytes() and shutil.which("systemd-socket-activate")
    confdir = work / "pam-scale"
    times = []
    for _ in range(sz.starts):
        users.grow(1)
        daemon.enroll_files(users, range(len(users.secrets) - 1, len(users.secrets)))
        first, end = users.take(1)
        if activation:
            daemon.start(activation=True)
            r = run_driver(confdir, [f"mfagate:{users.path}:{first}:{end}"], "--count", "1")[0]
            if r["ok"] != 1:
                raise RuntimeError(f"the first login after socket activation failed (see {daemon.log_path})")
            times.append(r["p50_us"])
        else:
            t0 = time.monotonic_ns()
            drv = start_drivers(confdir, [[f"mfagate:{users.path}:{first}:{end}"]], "--count", "1", "--until-ok",
                                "--t0-ns", str(t0))
            daemon.start()
            times.append(collect(drv)[0]["first_ok_since_t0_us"])
        daemon.stop()
    return {"method": "socket activation (systemd-socket-activate)" if activation else
            "process start to first verdict (the daemon does not take LISTEN_FDS yet)",
            "enrolled_users": len(users.secrets), "runs_us": times, "median_us": int(statistics.median(times))}


def shim_size() -> dict:
    out = subprocess.run(["size", "-A", "-d", str(BUILD / "pam_mfagate.so")], capture_output=True, text=True).stdout
    sections = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in (".text", ".data", ".bss", ".rodata"):
            sections[parts[0]] = int(parts[1])
    return {"file_bytes": (BUILD / "pam_mfagate.so").stat().st_size, **sections}


# ---- report -----------------------------------------------------------------------------------------
def ratios(res: dict) -> dict:
    """mfagate ÷ GA within this run: the issue-18 targets (p50 ≤ 0.5, auths/s with 8 drivers ≥ 1.5,
    wrong-code p50 ≤ 0.2)."""
    lat, thr, wr = res["latency"], res["throughput"], res["wrong"]
    ga, mf = "pam_google_authenticator", "pam_mfagate"
    return {"p50": round(lat[mf]["p50_us"] / lat[ga]["p50_us"], 3),
            "auths_per_s": {c: round(thr[mf][c]["ok_per_s"] / max(1, thr[ga][c]["ok_per_s"]), 3) for c in thr[mf]},
            "wrong_code_p50": round(wr[mf]["p50_us"] / wr[ga]["p50_us"], 3),
            "permit_p50": round(lat["pam_permit"]["p50_us"] / lat[ga]["p50_us"], 3)}


def table(res: dict) -> str:
    lat, thr = res["latency"], res["throughput"]
    ga = lat["pam_google_authenticator"]["p50_us"]
    rows = [f"{'module':<26}{'p50 µs':>8}{'p99 µs':>8}{'max µs':>8}{'p50/GA':>8}{'ok/fail':>10}"
            f"{'auth/s 1':>10}{'2':>7}{'8':>7}"]
    for m in MODULES:
        l = lat[m]
        t = thr[m]
        rows.append(f"{m:<26}{l['p50_us']:>8}{l['p99_us']:>8}{l['max_us']:>8}{l['p50_us'] / ga:>8.2f}"
                    f"{str(l['ok']) + '/' + str(l['fail']):>10}"
                    f"{t['1']['ok_per_s']:>10}{t['2']['ok_per_s']:>7}{t['8']['ok_per_s']:>7}")
    r = res["ratios_to_ga"]
    mark = lambda ok: "✔" if ok else "✘"  # noqa: E731
    rows.append(f"mfagate ÷ GA in this run: p50 {r['p50']:.2f} (target ≤ 0.5 {mark(r['p50'] <= 0.5)}), "
                f"auths/s " + " / ".join(f"{c} drv {v:.2f}" for c, v in r["auths_per_s"].items()) +
                f" (target 8 drv ≥ 1.5 {mark(r['auths_per_s'].get('8', 0) >= 1.5)}), "
                f"wrong-code p50 {r['wrong_code_p50']:.2f} (target ≤ 0.2 {mark(r['wrong_code_p50'] <= 0.2)}); "
                f"pam_permit p50 {r['permit_p50']:.2f}")
    wr = res["wrong"]
    rows.append("wrong code p50/p99 µs (interleaved): " +
                ", ".join(f"{m} {x['p50_us']}/{x['p99_us']} (fail {x['fail']})" for m, x in wr.items()))
    fl0 = res["floor"]
    permit = fl0["pam_permit"]["p50_us"]
    rows.append("floor p50 µs (interleaved; Δ to pam_permit): " +
                ", ".join(f"{k} {x['p50_us']} (+{x['p50_us'] - permit})" for k, x in fl0.items()) +
                f"; full login {lat['pam_mfagate']['p50_us']} µs (latency phase: +{lat['pam_mfagate']['p50_us'] - lat['pam_permit']['p50_us']} over its pam_permit); "
                f"daemon CPU {res['daemon_cpu_us_per_login']} µs per login")
    sc = res["scale"]
    rows.append("mfagate scale (p50/p99 µs by enrolled users): " +
                ", ".join(f"{n}: {r['p50_us']}/{r['p99_us']}" for n, r in sc.items()))
    fl = res["flood"]
    rows.append(f"mfagate under flood ({fl['clients']} clients, {fl['wrong_codes_per_s']} wrong codes/s, "
                f"{fl['wrong_accepted']} accepted): legitimate p50 {fl['legit']['p50_us']} µs, "
                f"p99 {fl['legit']['p99_us']} µs, max {fl['legit']['max_us']} µs, ok {fl['legit']['ok']}/{fl['legit']['ok'] + fl['legit']['fail']}")
    mem = res["memory_kb"]
    rows.append("mfagated memory (kB; VmRSS unless named): " + ", ".join(f"{k} {v}" for k, v in mem.items()))
    st = res["start"]
    rows.append(f"first verdict: median {st['median_us']} µs over {len(st['runs_us'])} ({st['method']})")
    sh = res["shim"]
    rows.append(f"pam_mfagate.so: {sh['file_bytes']} bytes on disk, .text {sh.get('.text')} B")
    if res.get("fleet"):
        import fleet_bench
        rows += fleet_bench.rows(res["fleet"])
    return "\n".join(rows)


def inside(args) -> int:
    """Runs in the private mount namespace. Never deletes anything: `work/hostdev` is a bind of the
    host's /dev here, so a recursive delete from inside would empty the host's real /dev. The outer
    process removes the work dir once this namespace (and every mount in it) is gone."""
    sz = Sizes(args.tiny)
    work = Path(args.work)
    drain = None
    daemon = None
    scale_daemon = None
    try:
        drain = private_devlog(work)
        numbered_accounts(work)
        shutil.copy2(args.daemon or BUILD / "mfagated", work / "mfagated")
        os.chmod(work / "mfagated", 0o755)
        if args.only == "fleet":
            return only_fleet(args, sz, work)
        daemon = Daemon(work, "main")
        confdir = configure_modules(work, daemon)
        # populations: each module gets its own users; pam_permit borrows GA's names
        pops: dict[str, Users] = {}
        need = {m: 2 * sz.latency + sum(max(1, sz.pool[m] // c) * c for c in sz.concurrency) for m in MODULES}
        for m in MODULES[1:]:
            pops[m] = Users(f"{SHORT[m][:2]}", work / f"users-{SHORT[m]}.txt")
            pops[m].grow(need[m])
        pops["pam_permit"] = Users("pe", work / "users-permit.txt")
        pops["pam_permit"].grow(max(sz.latency, 1) + 1)
        log(f"enrolling {', '.join(f'{len(p.secrets)} {m}' for m, p in pops.items() if m != 'pam_permit')} users")
        enroll_ga(work, pops["pam_google_authenticator"], range(len(pops["pam_google_authenticator"].secrets)))
        enroll_oath(work, pops["pam_oath"])
        daemon.enroll_files(pops["pam_mfagate"], range(len(pops["pam_mfagate"].secrets)))
        daemon.start()
        res: dict = {"meta": {
            "tiny": sz.tiny, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(),
            "kernel": os.uname().release, "filesystem_dir": str(work),
            "oath_usersfile_users": len(pops["pam_oath"].secrets),
            "latency_logins_per_module": sz.latency, "throughput_seconds": sz.duration,
        }}
        log("latency (interleaved)")
        cpu_before = cpu_ns(daemon.pid)
        res["latency"] = phase_latency(confdir, pops, sz)
        res["daemon_cpu_us_per_login"] = round((cpu_ns(daemon.pid) - cpu_before) / 1000 / max(1, sz.latency), 1)
        log("wrong codes (interleaved)")
        res["wrong"] = phase_wrong(confdir, pops, sz)
        log("floor (interleaved)")
        res["floor"] = phase_floor(confdir, work, daemon, sz)
        log("throughput")
        res["throughput"] = phase_throughput(confdir, pops, sz)
        res["memory_kb"] = {"main_daemon_after_runs": rss_kb(daemon.pid)}
        daemon.stop()
        log("scale, memory, flood")
        smf = phase_scale_memory_flood(work, sz)
        scale_daemon = smf.pop("daemon")
        scale_users = smf.pop("users")
        res["scale"] = smf["scale"]
        res["memory_kb"].update(smf["memory_kb"])
        res["flood"] = smf["flood"]
        log("start")
        res["start"] = phase_start(work, scale_daemon, scale_users, sz)
        res["shim"] = shim_size()
        # The fleet backend (issue 9): bench/fleet_bench.py, one row in the table.
        import fleet_bench
        log("fleet backend (PostgreSQL)")
        shutil.copy2(BUILD / "mfagate", work / "mfagate")
        res["fleet"] = fleet_bench.phase_fleet(work, sz, Daemon, Users, run_driver, start_drivers, collect)
        ga = res["latency"]["pam_google_authenticator"]["p50_us"]
        res["ratios_to_ga_p50"] = {m: round(res["latency"][m]["p50_us"] / ga, 3) for m in MODULES}
        res["ratios_to_ga"] = ratios(res)
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2) + "\n")
        print(table(res))
        print(f"(written to {out})")
        return 0
    finally:
        for d in (daemon, scale_daemon):
            if d:
                d.stop()
        if drain:
            drain.kill()
            drain.wait()
        env = dict(os.environ, LIBMOUNT_UTAB=str(work / "utab"))
        for target in ("/dev/log", "/dev", str(work / "hostdev")):
            subprocess.run(["umount", "-n", "-R", "-l", target], env=env, stderr=subprocess.DEVNULL)


def only_fleet(args, sz: Sizes, work: Path) -> int:
    """`--only fleet`: the fleet rows alone (bench/fleet_bench.py), with the file store's p50 of
    the same run; writes build/bench-fleet.json unless --output says otherwise."""
    import fleet_bench
    if args.connections is not None:
        fleet_bench.CONNECTIONS = args.connections or None  # 0: leave the key out (binaries before it)
    fleet_bench.DURABLE = args.pg_fsync == "on"
    shutil.copy2(BUILD / "mfagate", work / "mfagate")
    shutil.copy2(BUILD / "pam_mfagate.so", work / "pam_mfagate.so")
    log("fleet backend (PostgreSQL, fsync on; local and 10 ms away)")
    res = {"fleet": fleet_bench.phase_fleet(work, sz, Daemon, Users, run_driver, start_drivers, collect),
           "meta": {"tiny": sz.tiny, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count()}}
    out = Path(args.output if args.output != str(BUILD / "bench.json") else BUILD / "bench-fleet.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print("\n".join(fleet_bench.rows(res["fleet"])))
    print(f"(written to {out})")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="a few users per phase: checks the bench runs (make check)")
    ap.add_argument("--output", default=str(BUILD / "bench.json"))
    ap.add_argument("--workdir-parent", help="where the temp dir goes (default /var/tmp: a real disk, not tmpfs)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs) for inspection")
    ap.add_argument("--only", choices=["fleet"], help="run only the fleet rows (bench/fleet_bench.py)")
    ap.add_argument("--connections", type=int, help="database_connections of the fleet daemons (default 8; 0: leave the key out, for older binaries)")
    ap.add_argument("--pg-fsync", choices=["on", "off"], default="on",
                    help="PostgreSQL's fsync in the fleet rows (off: as the rows before issue 17 ran it, for A/B runs)")
    ap.add_argument("--daemon", help="the mfagated binary to measure (default build/mfagated; A/B runs)")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench: run as root (it needs a private mount namespace and root-owned secret files)", file=sys.stderr)
        return 2
    for m in MODULES[:3]:
        if not (MODULE_DIR / f"{m}.so").exists():
            print(f"bench: {MODULE_DIR}/{m}.so is missing; run scripts/install-deps.sh", file=sys.stderr)
            return 2
    if args.inside:
        return inside(args)
    base = Path(args.workdir_parent) if args.workdir_parent else Path("/var/tmp")
    work = Path(tempfile.mkdtemp(prefix="mfagate-bench-", dir=base))
    os.chmod(work, 0o755)
    try:
        cmd = ["unshare", "-m", "--propagation", "private", sys.executable, __file__, "--inside",
               "--work", str(work), *sys.argv[1:]]
        return subprocess.run(cmd).returncode
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            remove_work_dir(work)


def remove_work_dir(work: Path) -> None:
    """Deletes the work dir from outside the namespace, and only files on the work dir's own
    filesystem: it refuses to descend into anything mounted there (such as a bind of /dev)."""
    mounted = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
               if line.split()[4].startswith(str(work) + "/")]
    if mounted:
        log(f"not removing {work}: something is still mounted in it ({mounted[0]})")
        return
    device = os.lstat(work).st_dev

    def walk(path: Path) -> None:
        with os.scandir(path) as entries:
            for e in entries:
                st = e.stat(follow_symlinks=False)
                if st.st_dev != device:
                    raise RuntimeError(f"{e.path} is on another filesystem")
                if e.is_dir(follow_symlinks=False):
                    walk(Path(e.path))
                    os.rmdir(e.path)
                else:
                    os.unlink(e.path)

    try:
        walk(work)
        os.rmdir(work)
    except (OSError, RuntimeError) as error:
        log(f"not removing the rest of {work}: {error}")


if __name__ == "__main__":
    sys.exit(main())
