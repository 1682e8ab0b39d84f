#!/usr/bin/env python3
"""make check-deb: installs build/mfagate_<version>_amd64.deb into a clean Debian 12 root and proves it
works there, then removes and purges it and checks that nothing is left.

The root comes from debootstrap (minbase + systemd, openssh, sudo, oathtool), made once from the
mirror apt already uses and cached in ~/.cache/mfagate-check-deb/base-HASH; every run works on a fresh
copy in a temp dir. Everything runs in a private mount namespace (`unshare -m`, `mount -n`), so the
host's /etc/pam.d, account files and package database are never touched. The root has no Swift
toolchain, so the installed binaries and module prove they need none.

Steps: apt install ./the.deb -> files, modes, user, conffile where listed -> systemd-analyze verify
of the installed units -> pam-auth-update --enable puts pam_mfagate after the password in
common-auth -> the installed daemon starts socket-activated as _mfagate -> a real SSH login with the
installed module and the generated common-auth asks for the password and a code (oathtool) and is
let in; a wrong code is refused -> sudo and su through the same stack ask for both -> pam-auth-update
--disable -> apt remove (profile gone from common-auth) -> apt purge (state, conffile gone).
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pexpect

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("MFAGATE_CHECK_DEB_CACHE", Path.home() / ".cache" / "mfagate-check-deb"))
MIRROR = os.environ.get("MFAGATE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# The package's runtime dependencies are pre-installed here (the install runs with --no-download):
# keep this list in step with what dpkg-shlibdeps puts in Depends.
INCLUDE = ("systemd,openssh-server,openssh-client,sudo,oathtool,libpam-runtime,procps,login,passwd,"
           "libc6,libqrencode4,libssl3,libsystemd0,libpam0g,libstdc++6,libgcc-s1,libpq5")
USER, PASSWORD = "mfacheck", "correct horse battery staple 7"
MULTIARCH = "x86_64-linux-gnu"


def log(message: str) -> None:
    print(f"check-deb: {message}", flush=True)


def base_root() -> Path:
    # The cache is keyed by the package list, so a new dependency builds a new root.
    import hashlib
    base = CACHE / ("base-" + hashlib.sha256(INCLUDE.encode()).hexdigest()[:12])
    if base.is_dir():
        return base
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = CACHE / (base.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    log(f"debootstrap bookworm from {MIRROR} (once; cached in {base})")
    subprocess.run(["debootstrap", "--variant=minbase", f"--include={INCLUDE}", "bookworm", str(staging), MIRROR],
                   check=True, stdout=subprocess.DEVNULL)
    staging.rename(base)
    return base


class Chroot:
    """A fresh copy of the base root, entered by one long-lived `unshare -m` shell that holds the
    private mounts (/proc, /dev, /run) for the whole check; commands run through it with chroot."""

    def __init__(self, base: Path, work: Path):
        self.path = work / "root"
        subprocess.run(["cp", "-a", str(base), str(self.path)], check=True)
        shutil.copy("/etc/resolv.conf", self.path / "etc/resolv.conf")
        self.holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             "set -e; r=\"$1\"; mount -n -t proc proc \"$r/proc\"; mount -n --rbind /dev \"$r/dev\";"
             " mount -n -t tmpfs -o mode=0755 run \"$r/run\"; mount -n -t tmpfs -o mode=1777 tmp \"$r/tmp\";"
             " echo ready; exec sleep infinity", "sh", str(self.path)],
            stdout=subprocess.PIPE, text=True)
        assert self.holder.stdout.readline().strip() == "ready", "could not set up the private mounts"

    def run(self, script: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        cmd = ["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", "chroot", str(self.path),
               "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
               "DEBIAN_FRONTEND=noninteractive", "/bin/sh", "-c", script]
        out = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=600)
        if check and out.returncode != 0:
            raise AssertionError(f"in the root: {script}\n--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}")
        return out

    def spawn(self, script: str) -> subprocess.Popen:
        cmd = ["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", "chroot", str(self.path),
               "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "/bin/sh", "-c", f"exec {script}"]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def pty(self, script: str) -> pexpect.spawn:
        args = [f"--mount=/proc/{self.holder.pid}/ns/mnt", "chroot", str(self.path),
                "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=dumb", "/bin/sh", "-c", script]
        return pexpect.spawn("nsenter", args, encoding="utf-8", timeout=30)

    def close(self) -> None:
        os.kill(self.holder.pid, signal.SIGTERM)
        self.holder.wait(timeout=10)


def stop(proc: subprocess.Popen | None) -> None:
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def totp(secret: str) -> str:
    return subprocess.run(["oathtool", "--totp", "-b", secret], check=True, capture_output=True, text=True).stdout.strip()


def wait_for_next_step() -> None:
    """A code may be used once per 30-second step: wait for a fresh step before the next login."""
    time.sleep(30 - time.time() % 30 + 0.5)


def ssh_login(port: int, code: str) -> tuple[bool, str]:
    child = pexpect.spawn("ssh", ["-p", str(port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                  "-o", "PreferredAuthentications=keyboard-interactive", "-o", "PubkeyAuthentication=no",
                                  "-o", "NumberOfPasswordPrompts=1", f"{USER}@127.0.0.1", "echo LOGIN-OK"],
                          encoding="utf-8", timeout=30)
    transcript = ""
    try:
        child.expect(r"[Pp]assword:")
        child.sendline(PASSWORD)
        child.expect("Verification code: ")
        transcript = child.before + child.after
        child.sendline(code)
        child.expect(pexpect.EOF)
        transcript += child.before
    finally:
        child.close()
    return "LOGIN-OK" in transcript, transcript


def main() -> int:
    if os.geteuid() != 0:
        print("check-deb: run as root (it uses debootstrap, chroot and mount namespaces)", file=sys.stderr)
        return 1
    debs = sorted((ROOT / "build").glob("mfagate_*_amd64.deb"))
    assert debs, "no build/mfagate_*_amd64.deb: run make deb"
    deb = debs[-1]
    depends = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True, check=True).stdout
    # DT_RELR (Makefile) needs glibc 2.36, which dpkg-shlibdeps does not derive (debian/control).
    assert "libc6 (>= 2.36)" in depends, f"Depends lacks libc6 (>= 2.36): {depends}"
    wanted = {alt.split("(")[0].strip() for dep in depends.split(",") for alt in dep.split("|")[:1]}
    included = set(INCLUDE.split(","))
    missing = sorted(p for p in wanted if p not in included and not p.startswith("systemd-sysusers"))
    assert not missing, f"the package depends on {missing}, which INCLUDE in {__file__} does not pre-install: add them"
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="mfagate-check-deb-"))
    root = sshd = daemon = None
    try:
        root = Chroot(base_root(), work)
        r = root.run
        # (/tmp in the root is a tmpfs of the namespace; /root is on the copy.)
        shutil.copy(deb, root.path / "root" / deb.name)
        assert r("command -v swift || ls /opt/swift", check=False).returncode != 0, "the root must have no Swift toolchain"

        log(f"apt install ./{deb.name}")
        r(f"apt-get install -y --no-download /root/{deb.name} || dpkg -i /root/{deb.name}")
        listed = r("dpkg -L mfagate").stdout.split()
        for path in ["/usr/sbin/mfagated", "/usr/bin/mfagate", f"/lib/{MULTIARCH}/security/pam_mfagate.so",
                     "/lib/systemd/system/mfagated.service", "/lib/systemd/system/mfagated.socket",
                     "/usr/share/pam-configs/mfagate", "/etc/mfagate/mfagate.conf",
                     "/usr/lib/sysusers.d/mfagate.conf", "/usr/lib/tmpfiles.d/mfagate.conf",
                     "/usr/share/man/man8/mfagated.8.gz", "/usr/share/man/man1/mfagate.1.gz",
                     "/usr/share/man/man8/pam_mfagate.8.gz", "/usr/share/man/man5/mfagate.conf.5.gz",
                     "/usr/share/bash-completion/completions/mfagate", "/usr/share/zsh/vendor-completions/_mfagate",
                     "/usr/share/fish/vendor_completions.d/mfagate.fish", "/usr/share/doc/mfagate/README.md.gz",
                     "/usr/share/doc/mfagate/changelog.gz", "/usr/share/doc/mfagate/copyright"]:
            assert path in listed, f"{path} is not in the package"
        modes = r(f"stat -c '%a %U:%G %n' /lib/{MULTIARCH}/security/pam_mfagate.so /var/lib/mfagate /usr/sbin/mfagated").stdout
        assert f"644 root:root /lib/{MULTIARCH}/security/pam_mfagate.so" in modes, modes
        assert "700 _mfagate:_mfagate /var/lib/mfagate" in modes, modes
        assert r("getent passwd _mfagate").stdout.split(":")[6].strip() in ("/usr/sbin/nologin", "/sbin/nologin")
        assert "pam_mfagate" not in r("cat /etc/pam.d/common-auth").stdout, "the profile must be installed disabled"
        assert r("mfagated --check-config").returncode == 0
        verify = r("systemd-analyze verify --man=no mfagated.service mfagated.socket 2>&1", check=False)
        assert verify.stdout.strip() == "", f"systemd-analyze verify: {verify.stdout}"
        log("installed files, modes, user, disabled profile, verify: OK")

        log("pam-auth-update --enable mfagate")
        r("pam-auth-update --enable mfagate")
        auth = [l.split() for l in r("cat /etc/pam.d/common-auth").stdout.splitlines() if l.startswith("auth")]
        modules = [next((t for t in l if t.endswith(".so")), "") for l in auth]
        assert "pam_mfagate.so" in modules and modules.index("pam_mfagate.so") > modules.index("pam_unix.so"), auth
        line = next(l for l in auth if "pam_mfagate.so" in l)
        assert line[1] == "required", f"pam_mfagate must be required, never sufficient: {line}"

        log("start the installed daemon, socket-activated, as _mfagate")
        r("install -d -m 0755 /run/mfagate /run/sshd")
        daemon = root.spawn("systemd-socket-activate -l /run/mfagate/mfagated.sock"
                            " setpriv --reuid=_mfagate --regid=_mfagate --clear-groups"
                            " /usr/sbin/mfagated --config /etc/mfagate/mfagate.conf")
        deadline = time.monotonic() + 10
        while r("test -S /run/mfagate/mfagated.sock", check=False).returncode:
            assert time.monotonic() < deadline, "the socket did not appear"
            time.sleep(0.1)
        r("chmod 0666 /run/mfagate/mfagated.sock")

        log("a real SSH login through the installed module and common-auth")
        r(f"useradd --create-home --shell /bin/bash {USER}")
        r(f"chpasswd", input=f"{USER}:{PASSWORD}\n")
        enrolled = json.loads(r(f"mfagate enroll --user {USER} --json").stdout)
        port = free_port()
        r(f"printf 'Port {port}\\nListenAddress 127.0.0.1\\nUsePAM yes\\nKbdInteractiveAuthentication yes\\n"
          f"PasswordAuthentication no\\nAuthenticationMethods keyboard-interactive\\n' > /etc/ssh/sshd_config.d/check.conf")
        sshd = root.spawn("/usr/sbin/sshd -D -e")
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "sshd did not start"
                time.sleep(0.1)
        code = totp(enrolled["secret"])
        wrong = f"{(int(code) + 500000) % 1000000:06d}"
        ok, transcript = ssh_login(port, wrong)
        assert not ok, f"a wrong code let the login in: {transcript}"
        ok, transcript = ssh_login(port, code)
        assert ok, f"the right code did not let the login in: {transcript}"
        log("SSH: password then code asked; wrong code refused, right code accepted")

        log("sudo through the same stack")
        r(f"echo '{USER} ALL=(ALL) ALL' > /etc/sudoers.d/check && chmod 0440 /etc/sudoers.d/check")
        wait_for_next_step()
        child = root.pty(f"su --pty - {USER} -c 'sudo -k; sudo echo SUDO-OK'")
        child.expect(r"[Pp]assword")
        child.sendline(PASSWORD)
        child.expect("Verification code: ")
        child.sendline(totp(enrolled["secret"]))
        child.expect(pexpect.EOF)
        assert "SUDO-OK" in child.before, child.before
        log("sudo: password then code asked and accepted")

        log("su through the same stack, answered with a recovery code")
        r("useradd --create-home --shell /bin/bash othercheck")
        child = root.pty(f"su --pty - othercheck -c 'su - {USER} -c \"echo SU-OK\"'")
        child.expect(r"[Pp]assword")
        child.sendline(PASSWORD)
        child.expect("Verification code: ")
        child.sendline(enrolled["recovery_codes"][0])
        child.expect(pexpect.EOF)
        assert "SU-OK" in child.before, child.before
        log("su: password then recovery code asked and accepted")

        stop(sshd)
        sshd = None
        stop(daemon)
        daemon = None

        log("pam-auth-update --disable, apt remove, apt purge")
        r("pam-auth-update --disable mfagate")
        assert "pam_mfagate" not in r("cat /etc/pam.d/common-auth").stdout
        r("pam-auth-update --enable mfagate")
        r("apt-get remove -y mfagate")
        assert "pam_mfagate" not in r("cat /etc/pam.d/common-auth").stdout, "remove left the module in common-auth"
        r("apt-get purge -y mfagate")
        left = r("ls -d /var/lib/mfagate /etc/mfagate /usr/sbin/mfagated /usr/bin/mfagate "
                 f"/lib/{MULTIARCH}/security/pam_mfagate.so /usr/share/pam-configs/mfagate "
                 "/lib/systemd/system/mfagated.service /etc/systemd/system/sockets.target.wants/mfagated.socket 2>/dev/null",
                 check=False).stdout
        assert left.strip() == "", f"left after purge: {left}"
        assert r("dpkg-query -W -f='${Status}' mfagate 2>/dev/null", check=False).stdout.strip() in ("", "unknown ok not-installed")
        assert "mfagate" not in r("ls /var/lib/pam").stdout, "pam-auth-update still remembers the profile"
        log(f"removed and purged, nothing left; all checks passed in {time.monotonic() - started:.0f}s")
        return 0
    finally:
        stop(sshd)
        stop(daemon)
        if root:
            root.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
