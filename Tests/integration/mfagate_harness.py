# SPDX-License-Identifier: Apache-2.0
"""Helpers for integration tests that run the real mfagated, the real mfagate CLI and the real
pam_mfagate.so through the real libpam (pam_start_confdir via build/pam_driver).

Each Daemon lives in its own temp dir (mode 0755 so unprivileged peers can reach its socket),
is stopped by its PID, and removes the dir afterwards."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import hygiene

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
MFAGATED = BUILD / "mfagated"
MFAGATE = BUILD / "mfagate"
SHIM = BUILD / "pam_mfagate.so"
PAM_DRIVER = BUILD / "pam_driver"
NSS_MODULE = BUILD / "libnss_mfatest.so.2"


# libpam never hands PAM_IGNORE to the application (a stack whose modules all ignore fails with
# PAM_PERM_DENIED). To see the module's own answer: success ends the stack, any failure ends it with
# that code, and ignore falls through to pam_debug, which returns a code the shim never returns.
IGNORE_MARKER = "cred_insufficient"
OBSERVE_STACK = ("auth [success=done ignore=ignore default=die] {module} {args}\n"
                 f"auth requisite pam_debug.so auth={IGNORE_MARKER}\n"
                 "account required pam_permit.so\n")


def oathtool_totp(secret_b32: str, at: str | None = None, digits: int = 6) -> str:
    """The current (or `at`) TOTP code from oath-toolkit, an implementation independent of ours."""
    cmd = ["oathtool", "--totp", "-b", "-d", str(digits)]
    if at is None or at.startswith("now"):
        # A code made in the last moments of a 30 s step reaches the daemon in the next one: it is
        # accepted one step late and the daemon learns a drift of -1 (OTP.learntDrift), after which
        # a test's "one step ahead" code is two ahead and refused. Real devices show no future
        # codes; tests do, so they start their codes well inside a step.
        left = 30 - time.time() % 30
        if left < 3:
            time.sleep(left + 0.05)
    if at:
        cmd += ["--now", at]
    code = subprocess.run(cmd + [secret_b32], check=True, capture_output=True, text=True).stdout.strip()
    hygiene.register("TOTP code", code)
    return code


def _known_account(name: str) -> bool:
    import pwd
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def account_uids(names) -> dict[str, int]:
    """The uid of each name: the account's own where it exists (the suite's test accounts,
    with_test_accounts.py), else 31000 + its index in sorted order (Daemon(accounts=...) adds it)."""
    import pwd
    out = {}
    for i, name in enumerate(sorted(names)):
        out[name] = pwd.getpwnam(name).pw_uid if _known_account(name) else 31000 + i
    return out


def as_account(name: str, cmd: list[str]) -> list[str]:
    """Runs cmd as an unprivileged account (a real, different SO_PEERCRED uid)."""
    import pwd
    entry = pwd.getpwnam(name)
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups", *cmd]


def wrong_code(code: str) -> str:
    wrong = f"{(int(code) + 500_000) % 1_000_000:06d}"
    hygiene.register("wrong code", wrong)
    return wrong


class Daemon:
    def __init__(self, mode: str = "optional", extra_config: str = "", run_as: str | None = None,
                 accounts: dict[str, list[str]] | None = None):
        """run_as: an unprivileged account to run the daemon as (its state dir is chowned to it).
        accounts: {user: [groups]} that exist for the daemon only: it runs in a private mount
        namespace whose /etc/passwd and /etc/group are temp copies with these added."""
        self.dir = Path(tempfile.mkdtemp(prefix="mfagate-it-"))
        os.chmod(self.dir, 0o755)
        self.run_as = run_as
        self.accounts = accounts or {}
        self.daemon_args: list[str] = []
        self.state = self.dir / "state"
        self.state.mkdir(mode=0o700)
        run_dir = self.dir / "run"
        run_dir.mkdir(mode=0o755)
        if run_as:
            import pwd
            entry = pwd.getpwnam(run_as)
            os.chown(self.state, entry.pw_uid, entry.pw_gid)
        # The socket's directory stays root's (0755): the module refuses a socket in a directory
        # anyone but root could write (issue 14). A daemon run as another user gets its socket the
        # way systemd passes it (socket activation), bound here by root.
        self.socket = str(run_dir / "mfagated.sock")
        self._listener: socket.socket | None = None
        self.config = self.dir / "mfagate.conf"
        self.confdir = self.dir / "pam"
        self.confdir.mkdir()
        os.chmod(self.confdir, 0o755)
        self.log_path = self.dir / "mfagated.log"
        self.proc: subprocess.Popen | None = None
        # A command prefix that execs the daemon in the end (same PID), e.g. a private mount namespace.
        self.wrap: list[str] = []
        self.write_config(mode, extra_config)

    def write_config(self, mode: str, extra: str = "") -> None:
        # Enrollment at login (default yes) is off unless a test asks for it: most tests look at
        # the plain policy, and the enrollment screen has tests of its own (test_enroll_at_login.py).
        if "enroll_at_login" not in extra:
            extra = extra + ("" if not extra or extra.endswith("\n") else "\n") + "enroll_at_login = no\n"
        self.config.write_text(f"mode = {mode}\nstate_dir = {self.state}\nsocket = {self.socket}\n{extra}")

    # lifecycle -------------------------------------------------------------------------------
    def start(self, expect_ready: bool = True) -> "Daemon":
        offset = len(self.log())
        log = open(self.log_path, "ab")
        # Without run_as the daemon runs as root, which it refuses unless told so (--allow-root).
        cmd = [str(self.readable_copy(MFAGATED) if self.run_as else MFAGATED), "--config", str(self.config),
               *([] if self.run_as else ["--allow-root"]), *self.daemon_args]
        if self.run_as:
            cmd = as_account(self.run_as, cmd)
        if self.accounts:
            cmd = self._with_accounts(cmd)
        prefix: list[str] = []
        pass_fds: tuple[int, ...] = ()
        if self.run_as:
            prefix, pass_fds = self._activation()
        self.proc = subprocess.Popen(prefix + self.wrap + cmd, stdout=log, stderr=log, pass_fds=pass_fds)
        log.close()
        if expect_ready:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mfagated exited: {self.log()}")
                if "ready" in self.log()[offset:]:
                    return self
                time.sleep(0.02)
            raise RuntimeError("mfagated did not become ready: " + self.log())
        return self

    def _activation(self) -> tuple[list[str], tuple[int, ...]]:
        """Binds the socket as root (like mfagated.socket: mode 0666 in a root-owned directory) and
        returns a command prefix that hands it to the daemon as LISTEN_FDS (every wrapper execs,
        so the daemon keeps the shell's PID, which LISTEN_PID names)."""
        if self._listener is None:
            if os.path.exists(self.socket):
                os.unlink(self.socket)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(self.socket)
            os.chmod(self.socket, 0o666)
            listener.listen(128)
            self._listener = listener
        fd = self._listener.fileno()
        script = 'eval "exec 3<&$0"; export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@"'
        return ["bash", "-c", script, str(fd)], (fd,)  # dash takes single-digit descriptors only

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            if os.path.exists(self.socket):
                os.unlink(self.socket)

    def _with_accounts(self, cmd: list[str]) -> list[str]:
        passwd = Path("/etc/passwd").read_text()
        group_lines = Path("/etc/group").read_text().splitlines()
        users = []
        for name, uid in account_uids(self.accounts).items():
            if not _known_account(name):
                users.append(f"{name}:x:{uid}:{uid}::/nonexistent:/usr/sbin/nologin")
                group_lines.append(f"{name}:x:{uid}:")
        members: dict[str, list[str]] = {}
        for name, groups in self.accounts.items():
            for g in groups:
                members.setdefault(g, []).append(name)
        for j, (g, names) in enumerate(sorted(members.items())):
            group_lines.append(f"{g}:x:{32000 + j}:{','.join(sorted(names))}")
        (self.dir / "passwd").write_text(passwd + "\n".join(users) + "\n")
        (self.dir / "group").write_text("\n".join(group_lines) + "\n")
        script = 'mount -n --bind "$1" /etc/passwd && mount -n --bind "$2" /etc/group && shift 2 && exec "$@"'
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                str(self.dir / "passwd"), str(self.dir / "group"), *cmd]

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        rc = self.proc.returncode
        self.proc = None
        self._close_listener()  # like a standalone daemon: once stopped, no socket answers
        return rc

    def close(self) -> None:
        self.stop()
        hygiene.capture(f"daemon log {self.dir.name}", self.log())
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # clients ---------------------------------------------------------------------------------
    def cli(self, *args: str, user: str | None = None, check: bool = False) -> subprocess.CompletedProcess:
        cmd = [str(self.readable_copy(MFAGATE) if user else MFAGATE), "--socket", self.socket, *args]
        if user:
            cmd = as_account(user, cmd)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        hygiene.capture(f"mfagate {args[0] if args else ''} stderr", out.stderr)
        # enroll shows the admin the new secret and codes, on purpose; so do recovery-codes, the confirmation of a
        # first method by email or SMS (its recovery codes), and invite its one-time code
        if not args or (args[0] not in ("enroll", "invite", "recovery-codes") and args[:2] != ("method", "confirm")):
            hygiene.capture(f"mfagate {args[0] if args else ''} stdout", out.stdout)
        if check:
            out.check_returncode()
        return out

    def enroll(self, name: str, secret: str | None = None) -> dict:
        import json
        args = ["enroll", "--user", name, "--json"] + (["--secret", secret] if secret else [])
        enrolled = json.loads(self.cli(*args, check=True).stdout)
        hygiene.register("TOTP secret", enrolled["secret"])
        hygiene.register("recovery code", *enrolled["recovery_codes"])
        return enrolled

    def service(self, name: str = "mfa-test", args: str = "", module: Path = SHIM) -> str:
        """Writes a PAM service file for pam_start_confdir and returns its name."""
        (self.confdir / "other").write_text("auth required pam_deny.so\naccount required pam_deny.so\n")
        (self.confdir / name).write_text(OBSERVE_STACK.format(module=module, args=f"socket={self.socket} {args}"))
        return name

    def readable_copy(self, path: Path) -> Path:
        """A copy of a build artefact in this daemon's 0755 dir: the checkout itself may sit in a
        directory an unprivileged test account cannot enter."""
        copy = self.dir / path.name
        if not copy.exists():
            shutil.copy2(path, copy)
            os.chmod(copy, 0o755)
        return copy

    def check(self, user: str, service: str = "sshd", rhost: str = "") -> dict:
        import json
        args = ["check", "--user", user, "--service", service, "--json"] + (["--rhost", rhost] if rhost else [])
        return json.loads(self.cli(*args, check=True).stdout)

    def pam(self, user: str, *answers: str, service: str | None = None, args: str = "", as_user: str | None = None,
            rhost: str | None = None, timeout: float = 30, silent: bool = False,
            pam_env: dict[str, str] | None = None, env: dict[str, str] | None = None) -> "PamResult":
        driver = PAM_DRIVER
        if as_user:
            svc = service or self.service("mfa-test-unprivileged", args=args, module=self.readable_copy(SHIM))
            driver = self.readable_copy(PAM_DRIVER)
        else:
            svc = service or self.service(args=args)
        cmd = [str(driver), str(self.confdir), svc, user]
        if rhost:
            cmd += ["--rhost", rhost]
        if silent:
            cmd.append("--silent")  # pam_authenticate(PAM_SILENT)
        for a in answers:
            cmd += ["--answer", a]
        for name, value in (pam_env or {}).items():  # the PAM environment (pam_putenv), as sshd fills it
            cmd += ["--pam-env", f"{name}={value}"]
        if as_user:
            cmd = as_account(as_user, cmd)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             env=None if env is None else {**os.environ, **env})
        hygiene.capture("pam_driver output", out.stdout + out.stderr)
        return PamResult(out.stdout)

    def raw(self, data: bytes, read: bool = True, timeout: float = 5) -> bytes:
        """Sends raw bytes on a fresh connection and returns what the daemon answered before closing."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.socket)
            s.sendall(data)
            chunks = []
            if read:
                try:
                    while chunk := s.recv(65536):
                        chunks.append(chunk)
                except (socket.timeout, ConnectionResetError):
                    pass
            return b"".join(chunks)


class PamResult:
    def __init__(self, stdout: str):
        self.stdout = stdout
        self.result = ""
        self.elapsed_ms = -1
        self.messages: list[str] = []
        self.open_fds: tuple[int, int] = (-1, -1)
        for line in stdout.splitlines():
            if line.startswith("OPEN_FDS: "):
                before, after = line.split()[1:]
                self.open_fds = (int(before), int(after))
                continue
            if line.startswith("RESULT: "):
                self.result = line[len("RESULT: "):]
                if self.result == "PAM_" + IGNORE_MARKER.upper():
                    self.result = "PAM_IGNORE"
            elif line == "TEXT_INFO: auth=" + IGNORE_MARKER:
                continue
            elif line.startswith("ELAPSED_MS: "):
                self.elapsed_ms = int(line.split()[1])
            else:
                self.messages.append(line)

    def __repr__(self) -> str:
        return f"PamResult({self.result}, {self.elapsed_ms} ms, {self.messages})"
