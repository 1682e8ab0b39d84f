# SPDX-License-Identifier: Apache-2.0
"""A Debian root booted with a real systemd as PID 1 in systemd-nspawn, for make check-deb.

The roots come from debootstrap (minbase + systemd, openssh, sudo, oathtool, exim4 and the package's
dependencies), made once per release from the mirror and cached in ~/.cache/mfagate-check-deb/; every
run boots a fresh copy in a temp dir. The container shares the host's network (sshd is moved to
127.0.0.1 and a free port before boot, exim's daemon is masked), and nothing of the host's /etc, package
database or cgroups is touched: no `machinectl`/machined registration (--register=no --keep-unit).
Commands run in it through nsenter on its PID 1. Stopping it (poweroff, then SIGKILL to nspawn's
process group) and removing the copy happen by PID and by path, also when a check failed.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pexpect

CACHE = Path(os.environ.get("MFAGATE_CHECK_DEB_CACHE", Path.home() / ".cache" / "mfagate-check-deb"))
MIRROR = os.environ.get("MFAGATE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# The package's runtime dependencies are pre-installed (the install runs with --no-download): keep this
# in step with what dpkg-shlibdeps puts in Depends (check_deb.py compares them).
COMMON = ("systemd,systemd-sysv,dbus,libpam-systemd,openssh-server,openssh-client,sudo,oathtool,libpam-runtime,"
          "procps,login,passwd,util-linux,libc6,libqrencode4,libsystemd0,libpam0g,libstdc++6,libgcc-s1,libpq5,"
          "exim4-daemon-light")
SUITES = {"bookworm": COMMON + ",libssl3,libnettle8", "trixie": COMMON + ",libssl3t64,libnettle8t64"}
ENV = ["/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "TERM=dumb",
       "DEBIAN_FRONTEND=noninteractive", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"]


def log(message: str) -> None:
    print(f"check-deb: {message}", flush=True)


def cached_root(suite: str) -> Path:
    """The pristine root for `suite`, keyed by its package list (a new dependency makes a new root)."""
    include = SUITES[suite]
    return CACHE / f"{suite}-{hashlib.sha256((include + MIRROR).encode()).hexdigest()[:12]}"


def debootstrap(suites: list[str]) -> None:
    """Makes the missing roots, all at once (each is mostly waiting for the mirror)."""
    jobs = []
    for suite in suites:
        base = cached_root(suite)
        if base.is_dir():
            continue
        CACHE.mkdir(parents=True, exist_ok=True)
        staging = base.with_name(base.name + ".new")
        if staging.exists():
            subprocess.run(["rm", "-rf", "--one-file-system", str(staging)], check=True)
        log(f"debootstrap {suite} from {MIRROR} (once; cached in {base})")
        logfile = open(CACHE / f"{suite}.debootstrap.log", "w")
        jobs.append((suite, base, staging, logfile, subprocess.Popen(
            ["debootstrap", "--variant=minbase", f"--include={SUITES[suite]}", suite, str(staging), MIRROR],
            stdout=logfile, stderr=subprocess.STDOUT)))
    for suite, base, staging, logfile, proc in jobs:
        rc = proc.wait()
        logfile.close()
        if rc != 0:
            raise RuntimeError(f"debootstrap {suite} failed (exit {rc}); see {logfile.name}")
        # Postfix's packages, for the check of its setgid postdrop (installed in place of exim4 there).
        subprocess.run(["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "-D", str(staging),
                        "sh", "-c", "apt-get update -qq && apt-get install -qq -y --download-only postfix"],
                       check=True, stdin=subprocess.DEVNULL, env=dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1"))
        staging.rename(base)


class Container:
    """A fresh copy of the cached root, booted with systemd as PID 1."""

    def __init__(self, suite: str, work: Path, ssh_port: int):
        self.suite, self.work, self.ssh_port = suite, work, ssh_port
        self.path = work / "root"
        self.nspawn: subprocess.Popen | None = None
        self.init_pid = 0
        self.console_log: Path | None = None
        subprocess.run(["cp", "-a", "--reflink=auto", str(cached_root(suite)), str(self.path)], check=True)
        self._prepare()

    def _prepare(self) -> None:
        """Before the first boot: the host's network is shared, so nothing may listen where the host does."""
        etc = self.path / "etc"
        shutil.copy("/etc/resolv.conf", etc / "resolv.conf")
        (etc / "hostname").write_text(f"mfagate-check-{self.suite}\n")
        (etc / "ssh/sshd_config.d/check.conf").write_text(
            f"Port {self.ssh_port}\nListenAddress 127.0.0.1\nUsePAM yes\nKbdInteractiveAuthentication yes\n"
            "PasswordAuthentication no\nAuthenticationMethods keyboard-interactive\n")
        # Mail is queued and delivered by `sendmail` itself; an exim daemon would listen on the host's :25.
        (etc / "systemd/system/exim4.service").symlink_to("/dev/null")

    def boot(self) -> None:
        self.console_log = self.work / f"console-{int(time.time())}.log"
        self.console = open(self.console_log, "w")
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--capability=CAP_NET_ADMIN,CAP_BPF",
             "--system-call-filter=bpf", f"--machine=mfagate-check-{self.suite}", "-b", "-D", str(self.path)],
            stdin=subprocess.DEVNULL, stdout=self.console, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while not self.init_pid:
            assert self.nspawn.poll() is None, f"systemd-nspawn exited ({self.nspawn.returncode}): {self.console_text()}"
            assert time.monotonic() < deadline, "the container's systemd did not appear"
            found = subprocess.run(["pgrep", "-P", str(self.nspawn.pid), "-x", "systemd"], capture_output=True, text=True)
            self.init_pid = int(found.stdout.split()[0]) if found.stdout.split() else 0
            time.sleep(0.2)
        while self.run("test -S /run/systemd/private", check=False).returncode:
            assert time.monotonic() < deadline, "the container's service manager did not come up"
            time.sleep(0.2)
        state = self.run("systemctl is-system-running --wait", check=False, timeout=120).stdout.strip()
        assert state == "running", f"the container booted {state!r}:\n" + self.run(
            "systemctl list-units --failed --no-legend", check=False).stdout

    def console_text(self) -> str:
        """The end of the last boot's console output (what nspawn printed)."""
        if self.console_log is None or not self.console_log.exists():
            return "(no console output)"
        return self.console_log.read_text(errors="replace")[-4000:]

    def command(self, script: str) -> list[str]:
        return ["nsenter", "-t", str(self.init_pid), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w",
                *ENV, "/bin/sh", "-c", script]

    def run(self, script: str, check: bool = True, input: str | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
        out = subprocess.run(self.command(script), capture_output=True, text=True, input=input, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"in the {self.suite} container: {script}\n--- exit {out.returncode}\n--- stdout\n"
                                 f"{out.stdout}\n--- stderr\n{out.stderr}")
        return out

    def pty(self, script: str) -> pexpect.spawn:
        cmd = self.command(script)
        return pexpect.spawn(cmd[0], cmd[1:], encoding="utf-8", timeout=30)

    def host_path(self, path: str) -> Path:
        """A path inside the running container (its /run is a tmpfs only PID 1's mount namespace sees)."""
        return Path(f"/proc/{self.init_pid}/root") / path.lstrip("/")

    def journal(self) -> str:
        if not self.init_pid or not self.nspawn or self.nspawn.poll() is not None:
            return "(the container is not running)"
        return self.run("journalctl -b --no-pager -o short-precise", check=False, timeout=60).stdout

    def poweroff(self) -> None:
        """Stops the container and waits for nspawn; SIGKILL to its process group if it hangs."""
        if self.nspawn is None:
            return
        if self.nspawn.poll() is None and self.init_pid:
            subprocess.run(self.command("systemctl poweroff --no-block"), capture_output=True, timeout=30)
            try:
                self.nspawn.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        if self.nspawn.poll() is None:
            os.killpg(self.nspawn.pid, signal.SIGKILL)
            self.nspawn.wait(timeout=30)
        self.nspawn, self.init_pid = None, 0
        self.console.close()

    def remove(self) -> None:
        """Unmounts whatever is still mounted under the copy (nothing, normally) and deletes it."""
        prefix = str(self.work) + "/"
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.work)], check=False)
