# SPDX-License-Identifier: Apache-2.0
"""A real OpenSSH sshd for integration tests, without touching the host's PAM or user setup.

``SshdSandbox`` runs ``/usr/sbin/sshd`` (through a symlink named ``sshd-mfa-test`` so that
OpenSSH names its PAM service ``sshd-mfa-test``) inside a private mount namespace in which:

* ``/etc/pam.d`` is a copy holding an extra ``sshd-mfa-test`` service file;
* ``/etc/passwd``, ``/etc/shadow`` and ``/etc/group`` are copies with the test users added;
* ``/run`` is an overlay whose writable layer lives in the work directory, so sshd's
  privilege-separation directory ``/run/sshd`` exists without creating it on the host
  (falls back to a tmpfs over ``/run`` if overlayfs is unavailable);
* ``/var/log/{wtmp,btmp,lastlog,faillog}`` (those that exist) are copies;
* ``/dev`` is an overlay too (the host's submounts such as ``/dev/pts`` and ``/dev/shm`` are
  bound back on top) with a ``/dev/log`` datagram socket of our own, drained into
  ``workdir/pam-syslog.log``: there is no syslog daemon on these machines, so what PAM modules
  log would otherwise be lost (or go to a slow serial console with ``LOG_CONS``).
  ``SshdSandbox.syslog_text()`` returns it.

All mounts use ``mount -n`` with ``LIBMOUNT_UTAB`` pointing into the work directory, so
libmount does not create ``/run/mount`` on the host either.

``ssh_login`` drives the real ``/usr/bin/ssh`` client with pexpect through keyboard-interactive.

Needs root, ``unshare`` and overlayfs (or tmpfs). Stdlib + pexpect only.
"""

from __future__ import annotations

import dataclasses
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence, Union

import pexpect

SSHD = "/usr/sbin/sshd"
SSH = "/usr/bin/ssh"
SERVICE = "sshd-mfa-test"
HOME_MOUNT = "/run/sshd-mfa-test-home"  # exists only inside the namespace (overlay /run)
LOG_FILES = ("/var/log/wtmp", "/var/log/btmp", "/var/log/lastlog", "/var/log/faillog")
FIRST_UID = 20000

__all__ = ["SshdSandbox", "LoginResult", "ssh_login", "SERVICE"]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def _hash_password(password: str) -> str:
    """SHA-512 crypt hash via ``openssl passwd -6`` (password on stdin, never in argv)."""
    out = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"],
        input=password + "\n", capture_output=True, text=True, check=True, timeout=10,
    )
    h = out.stdout.strip()
    if not h.startswith("$6$"):
        raise RuntimeError(f"openssl passwd -6 gave unexpected output: {h!r}")
    return h


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_ids(path: Path) -> tuple[set[str], set[int]]:
    names, ids = set(), set()
    for line in path.read_text().splitlines():
        parts = line.split(":")
        if len(parts) >= 3:
            names.add(parts[0])
            try:
                ids.add(int(parts[2]))
            except ValueError:
                pass
    return names, ids


def _suite_accounts(passwd_txt: str) -> dict[str, int]:
    """The test suite's own accounts (gecos "mfagate test account"): name -> uid."""
    accounts = {}
    for line in passwd_txt.splitlines():
        parts = line.split(":")
        if len(parts) >= 5 and parts[4] == "mfagate test account" and parts[2].isdigit():
            accounts[parts[0]] = int(parts[2])
    return accounts


def _without(name: str, text: str) -> str:
    return "".join(l for l in text.splitlines(keepends=True) if not l.startswith(f"{name}:"))


def _proc_children() -> dict[int, list[int]]:
    """ppid -> [pid] for every process currently visible in /proc."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        # field 2 (comm) may contain spaces/parens: split after the last ')'
        rest = stat[stat.rfind(")") + 2:].split()
        ppid = int(rest[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        return stat[stat.rfind(")") + 2:].split()[19]
    except (OSError, IndexError):
        return None


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        state = stat[stat.rfind(")") + 2:].split()[0]
        return f"{pid}[{state}] {cmd}"
    except OSError:
        return f"{pid}[gone]"


def _descendants(pid: int) -> list[tuple[int, str | None]]:
    """Live (non-zombie) descendants of ``pid``, parents before children."""
    kids = _proc_children()
    out, todo = [], list(kids.get(pid, []))
    while todo:
        p = todo.pop(0)
        st = _start_time(p)
        if _same_live_process(p, st):
            out.append((p, st))
        todo.extend(kids.get(p, []))
    return out


def _same_live_process(pid: int, start: str | None) -> bool:
    """True while ``pid`` is still the process that had ``start`` time and is not a zombie."""
    if start is None:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        rest = stat[stat.rfind(")") + 2:].split()
        return rest[19] == start and rest[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


# --------------------------------------------------------------------------------------------
# the sandbox
# --------------------------------------------------------------------------------------------

class SshdSandbox:
    """Context manager running a throw-away sshd with a custom PAM auth stack.

    ``SshdSandbox(pam_auth_lines, users, workdir)``:

    * ``pam_auth_lines``: full ``auth`` lines for ``/etc/pam.d/sshd-mfa-test`` (inside the
      namespace), e.g. ``["auth required pam_unix.so",
      "auth required /abs/build/pam_mfagate.so socket=/tmp/x/mfagated.sock timeout=5"]``.
      Followed by ``account required pam_unix.so``, ``session required pam_permit.so`` and
      ``password required pam_deny.so`` unless ``pam_other_lines`` is given.
    * ``users``: ``[(name, password), ...]``; each gets an unused uid/gid >= 20000, a home
      directory (``workdir/home/NAME``, seen by sshd as ``/run/sshd-mfa-test-home/NAME``) owned
      by it, shell ``/bin/sh``.
    * ``workdir``: an existing directory owned by the caller (e.g. pytest's ``tmp_path``);
      everything the sandbox writes goes there and is left there.
    * ``extra_sshd_config``: lines put at the top of sshd_config; sshd uses the first value
      it sees for an option, so these override the defaults (no ``Match`` blocks here).
    * ``extra_binds``: ``[(source, target), ...]`` files bind-mounted over existing paths inside
      the namespace (e.g. a private ``/etc/nsswitch.conf``); ``extra_env``: variables for sshd
      (e.g. ``LD_LIBRARY_PATH`` for an NSS module of the tests' own).
    * ``host_run_paths``: existing host paths under ``/run`` to bind into the namespace's
      ``/run`` overlay. Needed for Unix sockets there (e.g. a daemon listening on
      ``/run/mfagate/mfagated.sock``): a socket seen through overlayfs refuses connections.
      Paths outside ``/run`` and ``/dev`` are the host's own anyway.

    One sandbox per ``workdir`` (use sub-directories for several).

    Attributes after ``__enter__``: ``port``, ``pid`` (sshd's own PID), ``users`` (name ->
    uid), ``workdir``, ``config_path``, ``log_path``, ``pam_service_path`` (the copy).
    """

    def __init__(
        self,
        pam_auth_lines: Sequence[str],
        users: Iterable[tuple[str, str]],
        workdir: Union[str, os.PathLike],
        *,
        extra_sshd_config: Sequence[str] = (),
        pam_other_lines: Sequence[str] | None = None,
        log_level: str = "VERBOSE",
        start_timeout: float = 10.0,
        host_run_paths: Sequence[str] = (),
        extra_binds: Sequence[tuple[str, str]] = (),
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.extra_binds = [(str(a), str(b)) for a, b in extra_binds]
        self.extra_env = dict(extra_env or {})
        self.pam_auth_lines = list(pam_auth_lines)
        self._user_specs = list(users)
        self.workdir = Path(workdir).resolve()
        self.extra_sshd_config = list(extra_sshd_config)
        self.pam_other_lines = (
            list(pam_other_lines) if pam_other_lines is not None else [
                "account required pam_unix.so",
                "session required pam_permit.so",
                "password required pam_deny.so",
            ]
        )
        self.log_level = log_level
        self.start_timeout = start_timeout
        self.host_run_paths = [os.path.normpath(p) for p in host_run_paths]
        for p in self.host_run_paths:
            if not p.startswith("/run/") or not os.path.lexists(p):
                raise ValueError(f"host_run_paths: {p!r} is not an existing path under /run/")

        self.port: int | None = None
        self.pid: int | None = None
        self.users: dict[str, int] = {}
        self._proc: subprocess.Popen | None = None
        self._log_file = None
        self._drain_thread: threading.Thread | None = None
        self._drain_stop = threading.Event()
        self._log_sock: socket.socket | None = None

        self.sb = self.workdir / "sshd-sandbox"
        self.config_path = self.sb / "sshd_config"
        self.log_path = self.workdir / "sshd.log"
        self.syslog_path = self.workdir / "pam-syslog.log"
        self.pam_dir = self.sb / "pam.d"
        self.pam_service_path = self.pam_dir / SERVICE
        self.home_root = self.workdir / "home"

    # -- public helpers ----------------------------------------------------------------------

    def log_text(self) -> str:
        """sshd's own stderr log (``-e``), LogLevel VERBOSE by default."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def syslog_text(self) -> str:
        """What was sent to syslog inside the namespace (PAM modules, libpam), one message a
        line, raw ``<PRI>timestamp tag[pid]: text`` as glibc formats it."""
        try:
            return self.syslog_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def home_of(self, name: str) -> Path:
        """The user's home directory as seen from the host (inside workdir)."""
        return self.home_root / name

    # -- context manager ---------------------------------------------------------------------

    def __enter__(self) -> "SshdSandbox":
        try:
            self._prepare()
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stop()

    # -- setup --------------------------------------------------------------------------------

    def _prepare(self) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("SshdSandbox needs root")
        if not self.workdir.is_dir():
            raise RuntimeError(f"workdir {self.workdir} does not exist")
        self.sb.mkdir()
        self.home_root.mkdir()
        os.chmod(self.home_root, 0o755)

        # PAM: copy of /etc/pam.d plus our service file
        shutil.copytree("/etc/pam.d", self.pam_dir, symlinks=True)
        for line in self.pam_auth_lines:
            if "\n" in line or not line.split() or line.split()[0].lstrip("-") != "auth":
                raise ValueError(f"not a single PAM auth line: {line!r}")
        self.pam_service_path.write_text(
            "# written by Tests/integration/sshd_sandbox.py\n"
            + "".join(l.strip() + "\n" for l in self.pam_auth_lines)
            + "".join(l.strip() + "\n" for l in self.pam_other_lines)
        )
        os.chmod(self.pam_service_path, 0o644)

        # users
        passwd_txt = Path("/etc/passwd").read_text()
        group_txt = Path("/etc/group").read_text()
        shadow_txt = Path("/etc/shadow").read_text()
        names, uids = _read_ids(Path("/etc/passwd"))
        gnames, gids = _read_ids(Path("/etc/group"))
        today = int(time.time() // 86400)
        uid = FIRST_UID
        add_p, add_g, add_s = [], [], []
        # An account of the test suite's namespace (Tests/integration/with_test_accounts.py: the
        # daemon outside this sandbox must know the name too) keeps its uid and gets a home and a
        # password here; any other existing name is an error.
        suite_accounts = _suite_accounts(passwd_txt) if os.environ.get("MFAGATE_TEST_ACCOUNTS") == "1" else {}
        for name, password in self._user_specs:
            if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,30}", name):
                raise ValueError(f"bad user name {name!r}")
            if name in self.users or ((name in names or name in gnames) and name not in suite_accounts):
                raise ValueError(f"user or group {name!r} already exists")
            while uid in uids or uid in gids:
                uid += 1
            if name in suite_accounts:
                passwd_txt, group_txt, shadow_txt = (_without(name, t) for t in (passwd_txt, group_txt, shadow_txt))
            uid_of = suite_accounts.get(name, uid)
            home_host = self.home_root / name
            home_host.mkdir()
            os.chown(home_host, uid_of, uid_of)
            os.chmod(home_host, 0o755)
            home_ns = f"{HOME_MOUNT}/{name}"
            add_p.append(f"{name}:x:{uid_of}:{uid_of}:mfagate test user:{home_ns}:/bin/sh\n")
            add_g.append(f"{name}:x:{uid_of}:\n")
            add_s.append(f"{name}:{_hash_password(password)}:{today}:0:99999:7:::\n")
            self.users[name] = uid_of
            uids.add(uid_of)
            gids.add(uid_of)

        def with_lines(text: str, lines: list[str]) -> str:
            if text and not text.endswith("\n"):
                text += "\n"
            return text + "".join(lines)

        for src, text, lines in (("/etc/passwd", passwd_txt, add_p),
                                 ("/etc/group", group_txt, add_g),
                                 ("/etc/shadow", shadow_txt, add_s)):
            dst = self.sb / Path(src).name
            dst.write_text(with_lines(text, lines))
            st = os.stat(src)
            os.chown(dst, st.st_uid, st.st_gid)
            os.chmod(dst, st.st_mode & 0o7777)

        # copies of login records sshd might append to
        self._log_copies = []
        for src in LOG_FILES:
            if os.path.isfile(src) and not os.path.islink(src):
                dst = self.sb / ("log-" + Path(src).name)
                shutil.copy2(src, dst)
                st = os.stat(src)
                os.chown(dst, st.st_uid, st.st_gid)
                self._log_copies.append((str(dst), src))

        # host key
        self.host_key = self.sb / "ssh_host_ed25519_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sshd-mfa-test",
             "-f", str(self.host_key)],
            check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=20,
        )

        # overlay dirs for /run and /dev; where the host's /dev is bound inside the namespace
        for d in ("run-upper", "run-work", "dev-upper", "dev-work", "hostdev", "hostrun"):
            (self.sb / d).mkdir()
        self.devlog_path = self.sb / "devlog.sock"
        # mounts directly below /dev (pts, shm, mqueue, ...) to put back over the /dev overlay
        subs = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].encode().decode("unicode_escape")
                if mp.startswith("/dev/") and mp.count("/") == 2 and mp not in subs:
                    subs.append(mp)
        self._dev_submounts = subs

        # sshd config
        self.port = _free_port()
        self.pid_file = self.sb / "sshd.pid"
        user_list = " ".join(self.users) or "nobody-at-all"
        cfg = list(self.extra_sshd_config) + [
            f"ListenAddress 127.0.0.1:{self.port}",
            "AddressFamily inet",
            f"HostKey {self.host_key}",
            f"PidFile {self.pid_file}",
            "UsePAM yes",
            "KbdInteractiveAuthentication yes",
            "PasswordAuthentication no",
            "PubkeyAuthentication no",
            "HostbasedAuthentication no",
            "GSSAPIAuthentication no",
            "AuthenticationMethods keyboard-interactive",
            "AuthorizedKeysFile none",
            "PermitRootLogin no",
            "PermitEmptyPasswords no",
            f"AllowUsers {user_list}",
            "UseDNS no",
            "LoginGraceTime 60",
            "MaxAuthTries 3",
            "MaxStartups 50:30:100",
            "StrictModes no",
            "PermitTTY no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "AllowStreamLocalForwarding no",
            "PermitTunnel no",
            "PermitUserEnvironment no",
            "AcceptEnv none-at-all",
            "Banner none",
            "Compression no",
            f"LogLevel {self.log_level}",
            "SyslogFacility AUTH",
        ]
        self.config_path.write_text("".join(l + "\n" for l in cfg))

        # sshd through a symlink so that the PAM service is "sshd-mfa-test"
        self.sshd_link = self.workdir / SERVICE
        os.symlink(SSHD, self.sshd_link)

    def _script(self) -> str:
        q = shlex.quote
        sb = self.sb
        upper, work = sb / "run-upper", sb / "run-work"
        lines = [
            "set -e",
            f"mount -n --rbind /run {q(str(sb / 'hostrun'))}",  # the host's /run, for binds
            f"mount -n --bind {q(str(self.pam_dir))} /etc/pam.d",
            f"mount -n --bind {q(str(sb / 'passwd'))} /etc/passwd",
            f"mount -n --bind {q(str(sb / 'shadow'))} /etc/shadow",
            f"mount -n --bind {q(str(sb / 'group'))} /etc/group",
        ]
        for copy, orig in self._log_copies + self.extra_binds:
            lines.append(f"mount -n --bind {q(copy)} {q(orig)}")
        # /run: overlay (keeps everything of the host's /run visible) or, failing that, a tmpfs
        overlay_ok = not any(c in str(sb) for c in ",:\\ ")
        if overlay_ok:
            lines.append(
                f"mount -n -t overlay overlay -o "
                f"{q(f'lowerdir=/run,upperdir={upper},workdir={work}')} /run 2>/dev/null"
                f" || mount -n -t tmpfs -o mode=0755 sshd-mfa-test-run /run"
            )
        else:
            lines.append("mount -n -t tmpfs -o mode=0755 sshd-mfa-test-run /run")
        for p in self.host_run_paths:
            src = q(str(sb / "hostrun") + p[len("/run"):])
            mk = f"mkdir -p {q(p)}" if os.path.isdir(p) else \
                f"mkdir -p {q(os.path.dirname(p))} && touch {q(p)}"
            lines.append(f"{mk} && mount -n --bind {src} {q(p)}")
        lines += [
            "mkdir -p -m 0755 /run/sshd",
            "chown root:root /run/sshd",
            "chmod 0755 /run/sshd",
            f"mkdir -p -m 0755 {HOME_MOUNT}",
            f"mount -n --bind {q(str(self.home_root))} {HOME_MOUNT}",
        ]
        # /dev: overlay with our own /dev/log (skipped, with a note in the log, if it fails)
        hostdev = sb / "hostdev"
        rebinds = "".join(
            f" && mount -n --rbind {q(str(hostdev) + m[4:])} {q(m)}" for m in self._dev_submounts)
        if overlay_ok:
            lines.append(
                f"if mount -n --rbind /dev {q(str(hostdev))}"
                f" && mount -n -t overlay overlay -o "
                f"{q(f'lowerdir=/dev,upperdir={sb}/dev-upper,workdir={sb}/dev-work')} /dev"
                f"{rebinds}"
                f" && touch /dev/log && mount -n --bind {q(str(self.devlog_path))} /dev/log;"
                f" then :; else echo 'sshd_sandbox: no private /dev/log' >&2; fi"
            )
        lines += [
            f"exec {q(str(self.sshd_link))} -D -e -f {q(str(self.config_path))}",
        ]
        return "\n".join(lines) + "\n"

    def _drain_syslog(self) -> None:
        sock = self._log_sock
        assert sock is not None
        with open(self.syslog_path, "ab", buffering=0) as out:
            while not self._drain_stop.is_set():
                try:
                    r, _, _ = select.select([sock], [], [], 0.1)
                    if not r:
                        continue
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except (OSError, ValueError):
                    return
                out.write(data.rstrip(b"\0\n") + b"\n")

    def _start(self) -> None:
        # the namespace's /dev/log, drained by a thread for the sandbox's lifetime
        self._log_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if len(str(self.devlog_path).encode()) < 100:
            self._log_sock.bind(str(self.devlog_path))
        else:  # sun_path is 108 bytes: bind through a short /proc/self/fd/N path instead
            dfd = os.open(self.sb, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                self._log_sock.bind(f"/proc/self/fd/{dfd}/devlog.sock")
            finally:
                os.close(dfd)
        os.chmod(self.devlog_path, 0o666)
        self._log_sock.setblocking(False)
        self._drain_thread = threading.Thread(
            target=self._drain_syslog, name="sshd-sandbox-syslog", daemon=True)
        self._drain_thread.start()

        script = self._script()
        (self.sb / "start.sh").write_text(script)
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C",
            "LIBMOUNT_UTAB": str(self.sb / "utab"),
            **self.extra_env,
        }
        self._log_file = open(self.log_path, "ab", buffering=0)
        # unshare execs sh, which execs sshd: the PID we hold is sshd's own.
        self._proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "--", "/bin/sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
            env=env, cwd=str(self.sb), start_new_session=True, close_fds=True,
        )
        self.pid = self._proc.pid

        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"sshd sandbox exited with status {self._proc.returncode} during start-up; "
                    f"log:\n{self.log_text()}")
            if self._banner_ok():
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"sshd did not accept connections on 127.0.0.1:{self.port} within "
                    f"{self.start_timeout}s; log:\n{self.log_text()}")
            time.sleep(0.05)
        try:
            exe = os.readlink(f"/proc/{self.pid}/exe")
        except OSError:
            exe = "?"
        if exe != SSHD:
            raise RuntimeError(f"PID {self.pid} is {exe}, not {SSHD}")

    def _banner_ok(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                s.settimeout(2.0)
                return s.recv(64).startswith(b"SSH-")
        except OSError:
            return False

    # -- teardown ------------------------------------------------------------------------------

    def _note(self, text: str) -> None:
        """Add a line of our own to sshd.log."""
        if self._log_file is not None:
            self._log_file.write(f"sshd_sandbox: {text}\n".encode())

    def _stop(self) -> None:
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                # Connections still in flight (their processes are the listener's descendants)
                # get a moment to end on their own; then they are stopped deepest first while
                # the listener is still there to reap them, so no zombie is left to PID 1.
                deadline = time.monotonic() + 2
                while _descendants(proc.pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                kids = _descendants(proc.pid)  # (pid, start time), parents before children
                if kids:
                    self._note(f"stopping connection processes still running: "
                               + ", ".join(_describe(p) for p, _ in kids))
                for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 2)):
                    live = [k for k in kids if _same_live_process(*k)]
                    for pid, _ in reversed(live):
                        try:
                            os.kill(pid, sig)
                        except ProcessLookupError:
                            pass
                    deadline = time.monotonic() + grace
                    while (any(_same_live_process(*k) for k in live)
                           and time.monotonic() < deadline):
                        time.sleep(0.05)
                    if live and sig == signal.SIGKILL:
                        self._note("needed SIGKILL for: " + ", ".join(str(p) for p, _ in live))
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    try:
                        os.kill(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait(timeout=5)
            self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._drain_thread is not None:
            time.sleep(0.1)  # let the last messages land
            self._drain_stop.set()
            self._drain_thread.join(timeout=5)
            self._drain_thread = None
        if self._log_sock is not None:
            self._log_sock.close()
            self._log_sock = None


# --------------------------------------------------------------------------------------------
# the client
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class LoginResult:
    ok: bool                 # the command's output contained the marker (LOGIN-OK)
    output: str              # everything the client printed (prompts, info text, output)
    prompts: list[str]       # each prompt seen, "(user@host) " prefix and info text removed
    texts: list[str] = dataclasses.field(default_factory=list)  # info text before each prompt
    reason: str = ""         # "ok", "denied", "eof", "timeout", "unexpected-prompt"
    exitstatus: int | None = None

    def __bool__(self) -> bool:  # pragma: no cover - convenience
        return self.ok


Answers = Union[Mapping[str, str], Sequence[tuple[Union[str, "re.Pattern[str]"], str]]]

_USERHOST_PREFIX = re.compile(r"^\([^()\s]+@[^()\s]+\) ")


def _split_prompt(chunk: str) -> tuple[str, str]:
    """Split the text read up to a prompt into (info text before it, the prompt line)."""
    chunk = chunk.replace("\r\n", "\n").replace("\r", "\n")
    head, _, last = chunk.rstrip("\n").rpartition("\n")
    if not head:
        last = _USERHOST_PREFIX.sub("", last)
    head = _USERHOST_PREFIX.sub("", head.strip("\n"), count=1) if head else ""
    return head.strip(), last.strip()


def ssh_login(
    port: int,
    user: str,
    answers: Answers,
    command: str = "echo LOGIN-OK",
    timeout: float = 30,
    *,
    marker: str = "LOGIN-OK",
    unknown_prompt_answer: str | None = None,
    quiet_prompt_delay: float = 1.5,
    ssh_options: Sequence[str] = (),
    host: str = "127.0.0.1",
) -> LoginResult:
    """Log in with the real ssh client via keyboard-interactive and run ``command``.

    ``answers``: ``{prompt_regex: answer}`` or ``[(prompt_regex, answer), ...]`` (an answer may be a
    callable, called when its prompt comes, e.g. to read a mailed code); a prompt is
    answered with the answer of the regex matching earliest in the output (ties: first listed);
    answers may be used more than once. A prompt no regex matches (detected as unterminated
    output that stays quiet for ``quiet_prompt_delay`` s) is recorded and answered with
    ``unknown_prompt_answer``, or, if that is None, the login is abandoned
    (``reason="unexpected-prompt"``). Never raises for denied logins, EOF or timeouts.
    ``ok`` is True iff ``marker`` appears in what the client printed after the last prompt.
    """
    if isinstance(answers, Mapping):
        pairs = list(answers.items())
    else:
        pairs = list(answers)
    regexes = [p if isinstance(p, re.Pattern) else re.compile(p) for p, _ in pairs]
    replies = [a for _, a in pairs]
    denied = re.compile(r"Permission denied[^\r\n]*")
    n = len(regexes)
    patterns = regexes + [denied, pexpect.EOF, pexpect.TIMEOUT]
    I_DENIED, I_EOF, I_TIMEOUT = n, n + 1, n + 2

    # ssh keeps the first value it gets for an option: the caller's ssh_options come first, so
    # they override the defaults below (e.g. PubkeyAuthentication=yes for key + code).
    args = [
        *ssh_options,
        "-F", "/dev/null", "-p", str(port), "-T",
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "PreferredAuthentications=keyboard-interactive",
        "-o", "PubkeyAuthentication=no",
        "-o", "NumberOfPasswordPrompts=1",
        "-o", "ConnectTimeout=10",
        "-o", "LogLevel=ERROR",
        "-o", "BatchMode=no",
        "-o", "ControlMaster=no",
        "-o", "ControlPath=none",
        f"{user}@{host}", command,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSH_", "DISPLAY"))}
    env.update({"TERM": "dumb", "LANG": "C", "LC_ALL": "C"})

    transcript: list[str] = []
    prompts: list[str] = []
    texts: list[str] = []
    after_last_prompt_start = 0  # index into "".join(transcript)
    reason = ""
    exitstatus = None
    deadline = time.monotonic() + timeout
    unmatched = ""  # text read since the last match (kept in pexpect's buffer)

    child = pexpect.spawn(SSH, args, env=env, encoding="utf-8", codec_errors="replace",
                          timeout=timeout, echo=False)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = "timeout"
                transcript.append(unmatched)
                break
            idx = child.expect(patterns, timeout=min(remaining, quiet_prompt_delay))
            if idx < n:
                chunk = child.before + child.after
                # the regex may end before the prompt does ("Verification" of "Verification
                # code: "): take the rest of an unterminated line already read, so the prompt
                # is recorded whole and not mistaken for output later
                rest = child.buffer
                if rest and "\n" not in rest and "\r" not in rest:
                    child.expect_exact(rest, timeout=1)
                    chunk += rest
                transcript.append(chunk)
                info, prompt = _split_prompt(chunk)
                if info:
                    texts.append(info)
                prompts.append(prompt)
                unmatched = ""
                reply = replies[idx]
                child.sendline(reply() if callable(reply) else reply)  # a callable: answer known only now
                after_last_prompt_start = sum(len(t) for t in transcript)
            elif idx == I_DENIED:
                transcript.append(child.before + child.after)
                reason = "denied"
                # collect the rest (bounded) without raising
                try:
                    child.expect(pexpect.EOF, timeout=max(0.1, min(5, deadline - time.monotonic())))
                except (pexpect.TIMEOUT, pexpect.EOF):
                    pass
                transcript.append(child.before if isinstance(child.before, str) else "")
                break
            elif idx == I_EOF:
                transcript.append(child.before if isinstance(child.before, str) else "")
                reason = "eof"
                break
            else:  # quiet for quiet_prompt_delay: an unterminated last line is a prompt
                pending = unmatched = child.before if isinstance(child.before, str) else ""
                if pending and not pending.endswith(("\n", "\r")) and pending.strip():
                    child.expect_exact(pending, timeout=1)  # consume it (public API)
                    transcript.append(pending)
                    unmatched = ""
                    info, prompt = _split_prompt(pending)
                    if info:
                        texts.append(info)
                    prompts.append(prompt)
                    after_last_prompt_start = sum(len(t) for t in transcript)
                    if unknown_prompt_answer is None:
                        reason = "unexpected-prompt"
                        break
                    child.sendline(unknown_prompt_answer)
                # else keep waiting (pending data stays in child.buffer)
    except (pexpect.ExceptionPexpect, OSError) as e:  # pragma: no cover - defensive
        reason = reason or f"error: {e}"
    finally:
        try:
            child.close(force=True)
        except Exception:  # pragma: no cover - defensive
            pass
        exitstatus = child.exitstatus

    output = "".join(transcript)
    tail = output[after_last_prompt_start:]
    ok = marker in tail
    if ok:
        reason = "ok"
    rest = tail.replace("\r\n", "\n").strip()
    if rest and not ok:
        texts.append(_USERHOST_PREFIX.sub("", rest, count=1))
    return LoginResult(ok=ok, output=output, prompts=prompts, texts=texts,
                       reason=reason or "eof", exitstatus=exitstatus)
