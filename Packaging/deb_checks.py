# SPDX-License-Identifier: Apache-2.0
"""The checks make check-deb runs in each booted container (Packaging/check_deb.py has the list)."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from pathlib import Path

import pexpect

from nspawn import Container, log

USER, PASSWORD = "mfacheck", "correct horse battery staple 7"
ADDRESS = f"{USER}@example.org"
MULTIARCH = "x86_64-linux-gnu"
CONF = "/etc/mfagate/mfagate.conf"
# The admin's own drop-in (not the package's): the seccomp filter kills instead of failing the call,
# so a system call outside the allow-list ends the daemon and the "no restart" check sees it.
KILL_MODE = "[Service]\nSystemCallErrorNumber=kill\n"
DROPIN = "/etc/systemd/system/mfagated.service.d/check-deb.conf"
SHIPPED = ["/usr/sbin/mfagated", "/usr/bin/mfagate", f"/lib/{MULTIARCH}/security/pam_mfagate.so",
           "/lib/systemd/system/mfagated.service", "/lib/systemd/system/mfagated.socket",
           "/lib/systemd/system/mfagate-mail.socket", "/lib/systemd/system/mfagate-mail@.service",
           "/usr/share/pam-configs/mfagate", CONF, "/usr/lib/sysusers.d/mfagate.conf",
           "/usr/lib/tmpfiles.d/mfagate.conf", "/usr/share/man/man8/mfagated.8.gz", "/usr/share/man/man1/mfagate.1.gz",
           "/usr/share/man/man8/pam_mfagate.8.gz", "/usr/share/man/man5/mfagate.conf.5.gz",
           "/usr/share/bash-completion/completions/mfagate", "/usr/share/zsh/vendor-completions/_mfagate",
           "/usr/share/fish/vendor_completions.d/mfagate.fish", "/usr/share/doc/mfagate/README.md.gz",
           "/usr/share/doc/mfagate/changelog.gz", "/usr/share/doc/mfagate/copyright"]
UNITS = ["mfagated.socket", "mfagated.service", "mfagate-mail.socket"]


def totp(secret: str) -> str:
    return subprocess.run(["oathtool", "--totp", "-b", secret], check=True, capture_output=True, text=True).stdout.strip()


def wait_for_next_step() -> None:
    """A code may be used once per 30-second step: wait for a fresh step before the next login."""
    time.sleep(30 - time.time() % 30 + 0.5)


def status_fields(text: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


class Checks:
    def __init__(self, box: Container, deb: Path):
        self.box, self.deb, self.r = box, deb, box.run
        self.suite = box.suite

    def step(self, message: str) -> None:
        log(f"{self.suite}: {message}")

    def show(self, unit: str, prop: str) -> str:
        return self.r(f"systemctl show -P {prop} {unit}").stdout.strip()

    def run(self) -> None:
        self.box.boot()
        self.step(f"booted {self.r('systemctl --version').stdout.splitlines()[0]} as PID 1: running")
        self.install()
        self.reboot_with_socket()
        self.activation_and_sandbox()
        self.logins()
        self.email_through_the_relay()
        self.postfix_postdrop()
        self.journal_fields()
        self.reload_with_a_broken_config()
        self.whole_run()
        self.remove_and_purge()

    def install(self) -> None:
        r = self.r
        (self.box.path / "root" / self.deb.name).write_bytes(self.deb.read_bytes())
        assert r("command -v swift || ls /opt/swift", check=False).returncode != 0, "the root must have no Swift toolchain"
        r(f"apt-get install -y /root/{self.deb.name}")  # every dependency is there: nothing to download
        listed = r("dpkg -L mfagate").stdout.split()
        for path in SHIPPED:
            assert path in listed, f"{path} is not in the package"
        modes = r(f"stat -c '%a %U:%G %n' /lib/{MULTIARCH}/security/pam_mfagate.so /var/lib/mfagate").stdout
        assert f"644 root:root /lib/{MULTIARCH}/security/pam_mfagate.so" in modes, modes
        assert "700 _mfagate:_mfagate /var/lib/mfagate" in modes, modes
        assert r("getent passwd _mfagate").stdout.split(":")[6].strip() in ("/usr/sbin/nologin", "/sbin/nologin")
        assert "pam_mfagate" not in r("cat /etc/pam.d/common-auth").stdout, "the profile must be installed disabled"
        r("mfagated --check-config")
        verify = r("systemd-analyze verify --man=no mfagated.service mfagated.socket mfagate-mail.socket 2>&1", check=False)
        assert verify.stdout.strip() == "", f"systemd-analyze verify: {verify.stdout}"
        assert self.show("mfagated.socket", "ActiveState") == "active", "apt install did not start mfagated.socket"
        assert self.show("mfagate-mail.socket", "UnitFileState") == "disabled", "the mail relay must ship disabled"
        self.step("apt install: files, modes, user, disabled profile, units verified, socket started")

    def reboot_with_socket(self) -> None:
        r = self.r
        r(f"mkdir -p {Path(DROPIN).parent} && printf '{KILL_MODE}' > {DROPIN}")
        self.box.poweroff()
        self.box.boot()
        assert self.show("mfagated.socket", "ActiveState") == "active", "mfagated.socket is not listening at boot"
        assert self.show("mfagated.service", "ActiveState") == "inactive", "the daemon must wait for a connection"
        assert self.show("mfagated.service", "SystemCallErrorNumber") in ("kill", "2147483646", ""), \
            self.show("mfagated.service", "SystemCallErrorNumber")
        self.step("rebooted: mfagated.socket listening at boot, mfagated.service not started yet")

    def activation_and_sandbox(self) -> None:
        r = self.r
        r(f"useradd --create-home --shell /bin/bash {USER}")
        r("chpasswd", input=f"{USER}:{PASSWORD}\n")
        self.enrolled = json.loads(r(f"mfagate enroll --user {USER} --json").stdout)
        assert self.show("mfagated.service", "ActiveState") == "active"
        self.pid = self.show("mfagated.service", "MainPID")
        assert r(f"ps -o user= -p {self.pid}").stdout.strip() == "_mfagate"
        status = status_fields(r(f"cat /proc/{self.pid}/status").stdout)
        for field, want in [("NoNewPrivs", "1"), ("Seccomp", "2"), ("CapInh", "0" * 16), ("CapPrm", "0" * 16),
                            ("CapEff", "0" * 16), ("CapBnd", "0" * 16), ("CapAmb", "0" * 16)]:
            assert status[field].strip() == want, f"mfagated's {field} is {status[field].strip()}, not {want}"
        for path in ("/run/lock/mfagate-check", "/run/mfagate/check", "/run/check"):
            tried = r(f"nsenter -t {self.pid} -m setpriv --reuid=_mfagate --regid=_mfagate --clear-groups "
                      f"touch {path}", check=False)
            assert tried.returncode != 0 and "Read-only file system" in tried.stderr, \
                f"_mfagate could write {path} in the daemon's sandbox: {tried}"
        exposure = r("systemd-analyze security --no-pager mfagated.service").stdout
        level = float(re.search(r"Overall exposure level for mfagated.service: ([0-9.]+)", exposure).group(1))
        assert level <= 0.4, f"mfagated.service exposure {level} > 0.4:\n{exposure}"
        relay = r("systemd-analyze security --no-pager mfagate-mail@check.service").stdout
        self.relay_level = re.search(r"Overall exposure level for \S+: ([0-9.]+)", relay).group(1)
        self.step(f"activated as _mfagate: NoNewPrivs, no capabilities, seccomp (kill mode), /run read-only; "
                  f"exposure {level} (relay {self.relay_level})")

    def ssh(self, answers: list) -> tuple[bool, str]:
        child = pexpect.spawn("ssh", ["-p", str(self.box.ssh_port), "-o", "StrictHostKeyChecking=no",
                                      "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                                      "-o", "PreferredAuthentications=keyboard-interactive", "-o", "PubkeyAuthentication=no",
                                      "-o", "NumberOfPasswordPrompts=1", f"{USER}@127.0.0.1", "echo LOGIN-OK"],
                              encoding="utf-8", timeout=30)
        transcript = ""
        try:
            for prompt, answer in answers:
                child.expect(prompt)
                transcript += child.before + child.after
                child.sendline(answer() if callable(answer) else answer)
            child.expect(pexpect.EOF)
            transcript += child.before
        finally:
            child.close()
        return "LOGIN-OK" in transcript, transcript

    def logins(self) -> None:
        r = self.r
        r("pam-auth-update --enable mfagate")
        auth = [l.split() for l in r("cat /etc/pam.d/common-auth").stdout.splitlines() if l.startswith("auth")]
        modules = [next((t for t in l if t.endswith(".so")), "") for l in auth]
        assert "pam_mfagate.so" in modules and modules.index("pam_mfagate.so") > modules.index("pam_unix.so"), auth
        assert next(l for l in auth if "pam_mfagate.so" in l)[1] == "required", auth
        deadline = time.monotonic() + 20
        while r(f"systemctl is-active ssh.service", check=False).stdout.strip() != "active":
            assert time.monotonic() < deadline, "the container's ssh.service is not running"
            time.sleep(0.2)
        code = totp(self.enrolled["secret"])
        ok, transcript = self.ssh([(r"[Pp]assword:", PASSWORD), ("Verification code: ", f"{(int(code) + 500000) % 1000000:06d}")])
        assert not ok, f"a wrong code let the login in: {transcript}"
        ok, transcript = self.ssh([(r"[Pp]assword:", PASSWORD), ("Verification code: ", code)])
        assert ok, f"the right code did not let the login in: {transcript}"
        self.step("SSH (the container's sshd): password then code; wrong code refused, right code accepted")

        r(f"echo '{USER} ALL=(ALL) ALL' > /etc/sudoers.d/check && chmod 0440 /etc/sudoers.d/check")
        wait_for_next_step()
        child = self.box.pty(f"su --pty - {USER} -c 'sudo -k; sudo echo SUDO-OK'")
        child.expect(r"[Pp]assword")
        child.sendline(PASSWORD)
        child.expect("Verification code: ")
        child.sendline(totp(self.enrolled["secret"]))
        child.expect(pexpect.EOF)
        assert "SUDO-OK" in child.before, child.before
        r("useradd --create-home --shell /bin/bash othercheck")
        child = self.box.pty(f"su --pty - othercheck -c 'su - {USER} -c \"echo SU-OK\"'")
        child.expect(r"[Pp]assword")
        child.sendline(PASSWORD)
        child.expect("Verification code: ")
        child.sendline(self.enrolled["recovery_codes"][0])
        child.expect(pexpect.EOF)
        assert "SU-OK" in child.before, child.before
        self.step("sudo (oathtool code) and su (recovery code): password then code asked and accepted")

    # --- email -------------------------------------------------------------------------------------

    def mails(self) -> list[str]:
        """The messages in the user's Maildir, oldest first (/home is on the copy, readable from here)."""
        new = self.box.path / "home" / USER / "Maildir" / "new"
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns) if new.is_dir() else []
        return [p.read_text(errors="replace") for p in files]

    def wait_for_mail(self, subject: str) -> str:
        deadline = time.monotonic() + 30
        while not (found := [m for m in self.mails() if f"\nSubject: {subject}\n" in m]):
            assert time.monotonic() < deadline, (f"no mail {subject!r} in /home/{USER}/Maildir/new:\n"
                                                 + self.r("tail -n 30 /var/log/exim4/mainlog /var/log/mail.log 2>&1",
                                                          check=False).stdout)
            time.sleep(0.3)
        return found[0]

    def code_mails(self) -> list[str]:
        return [m for m in self.mails() if re.search(r"(?m)^Subject: Your verification code", m)]

    def code_in_mail(self, count: int) -> str:
        """The code in the count-th code mail (notices of changes come in between)."""
        deadline = time.monotonic() + 30
        while len(codes := self.code_mails()) < count:
            assert time.monotonic() < deadline, f"no code mail #{count} in /home/{USER}/Maildir/new:\n" + self.r(
                "tail -n 30 /var/log/exim4/mainlog /var/log/mail.log 2>&1", check=False).stdout
            time.sleep(0.3)
        return re.search(r"(?m)^    (\d{6})$", codes[count - 1]).group(1)

    def relay_directly(self, subject: str) -> None:
        """One message straight to mfagate-mail.socket, held open while the instance's /proc is read."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(str(self.box.host_path("/run/mfagate/mail.sock")))
            deadline = time.monotonic() + 10
            while not (units := self.r("systemctl list-units --plain --no-legend 'mfagate-mail@*.service'").stdout.split()):
                assert time.monotonic() < deadline, "no mfagate-mail@ instance for the connection"
                time.sleep(0.1)
            pid = self.show(units[0], "MainPID")
            status = status_fields(self.r(f"cat /proc/{pid}/status").stdout)
            assert status["NoNewPrivs"].strip() == "0", "the relay runs with NoNewPrivs: setuid/setgid sendmail fails"
            s.sendall(f"To: {ADDRESS}\nSubject: {subject}\n\nrelay check\n".encode())
            s.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
        assert answer.decode().strip().endswith("OK"), f"the relay answered {answer!r}"

    def email_through_the_relay(self) -> None:
        r = self.r
        # Debian's exim4, local delivery only, to a Maildir under /home (ProtectHome= would defer it).
        r("sed -i -e \"s/^dc_other_hostnames=.*/dc_other_hostnames='example.org'/\" "
          "-e \"s/^dc_localdelivery=.*/dc_localdelivery='maildir_home'/\" /etc/exim4/update-exim4.conf.conf"
          " && update-exim4.conf")
        r("systemctl enable --now mfagate-mail.socket")
        r(f"printf 'methods = totp email\\nemail_command = /usr/bin/mfagate relay /run/mfagate/mail.sock\\n' >> {CONF}")
        r("systemctl reload mfagated.service")
        self.relay_directly("relay check exim4")
        self.wait_for_mail("relay check exim4")
        added = r(f"mfagate method add email {ADDRESS} --user {USER}").stdout
        assert "A code was sent to m***@example.org" in added, added
        r(f"mfagate method confirm email {self.code_in_mail(1)} --user {USER}")
        r(f"mfagate method prefer email --user {USER}")
        before = len(self.code_mails())
        ok, transcript = self.ssh([(r"[Pp]assword:", PASSWORD),
                                   (r"Code sent to m\*\*\*@example.org: ", lambda: self.code_in_mail(before + 1))])
        assert ok, f"the mailed code did not let the login in: {transcript}"
        assert r("systemctl list-units --failed --plain --no-legend 'mfagate-mail@*'").stdout.strip() == ""
        self.step(f"email: exim4's setuid sendmail through mfagate-mail.socket (relay NoNewPrivs 0), "
                  f"delivered to ~/Maildir; SSH login with the mailed code")

    def postfix_postdrop(self) -> None:
        """Postfix's sendmail hands the message to the setgid postdrop: it must work in the relay unit."""
        r = self.r
        r("echo 'postfix postfix/main_mailer_type select Local only' | debconf-set-selections && "
          "echo 'postfix postfix/mailname string example.org' | debconf-set-selections && "
          "apt-get install -y --no-download postfix")
        r("postconf -e home_mailbox=Maildir/ mydestination=example.org,localhost inet_interfaces=loopback-only"
          " && systemctl restart postfix.service")
        assert r("stat -c %A /usr/sbin/postdrop").stdout[6] == "s", "postdrop is not setgid"
        self.relay_directly("relay check postfix")
        self.wait_for_mail("relay check postfix")
        self.step("email: postfix's sendmail and setgid postdrop through the same relay unit, delivered")

    # --- journal, reload, the run as a whole -------------------------------------------------------

    def journal_fields(self) -> None:
        out = self.r(f"journalctl -b --no-pager -o json _PID={self.pid}").stdout
        entries = [json.loads(line) for line in out.splitlines() if line.strip()]
        assert entries, "no journal entry from the daemon"
        for entry in entries:
            files = entry.get("CODE_FILE")
            assert isinstance(files, str), f"an entry carries CODE_FILE {files!r}, not exactly one: {entry}"
            assert not files.startswith("/"), f"CODE_FILE names a build path: {files}"
            for key, value in entry.items():
                assert "mfagate-deb" not in str(value) and "/tmp/" not in str(value), f"{key}={value} names a build path"
        self.step(f"journal: {len(entries)} daemon entries, each with one CODE_FILE and no build path")

    def reload_with_a_broken_config(self) -> None:
        r = self.r
        good = r(f"cat {CONF}").stdout
        r(f"echo 'no_such_option = 1' >> {CONF}")
        reload = r("systemctl reload mfagated.service", check=False)
        assert reload.returncode != 0, f"systemctl reload with a broken config exited 0: {reload}"
        status = r("systemctl status --no-pager -n 20 mfagated.service", check=False).stdout
        assert "no_such_option" in status, f"the error is not shown by systemctl status:\n{status}"
        assert self.show("mfagated.service", "ActiveState") == "active"
        assert self.show("mfagated.service", "MainPID") == self.pid, "a failed reload must not restart the daemon"
        r(f"mfagate status --user {USER}")
        r(f"cat > {CONF}", input=good)
        r("systemctl reload mfagated.service")
        self.step("reload with a broken config: systemctl reload exits non-zero, status names the error, old config kept")

    def whole_run(self) -> None:
        r = self.r
        assert self.show("mfagated.service", "MainPID") == self.pid, "the daemon was restarted during the run"
        assert self.show("mfagated.service", "NRestarts") == "0"
        killed = r("journalctl -b --no-pager -u mfagated.service | grep -E 'status=31/SYS|code=killed|code=dumped'", check=False)
        assert killed.stdout.strip() == "", f"the daemon was killed: {killed.stdout}"
        state = r("systemctl is-system-running", check=False).stdout.strip()
        assert state == "running", f"the system is {state}:\n" + r("systemctl list-units --failed --no-legend").stdout
        self.step("whole run: one daemon process, no restart, nothing killed by seccomp, system running")

    def remove_and_purge(self) -> None:
        r = self.r
        r("apt-get remove -y mfagate")
        assert "pam_mfagate" not in r("cat /etc/pam.d/common-auth").stdout, "remove left the module in common-auth"
        for unit in UNITS:
            assert self.show(unit, "ActiveState") != "active", f"apt remove left {unit} active"
        # mfagated.socket stays enabled until purge, as debhelper does it (a reinstall gets it back); the
        # relay, which the admin enabled with systemctl, goes now.
        enabled = r("ls /etc/systemd/system/*.wants/ | grep mfagate-mail", check=False).stdout
        assert enabled.strip() == "", f"apt remove left the mail relay enabled: {enabled}"
        for sock in ("/run/mfagate/mfagated.sock", "/run/mfagate/mail.sock"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                try:
                    s.connect(str(self.box.host_path(sock)))
                    raise AssertionError(f"something still listens on {sock} after apt remove")
                except (ConnectionRefusedError, FileNotFoundError):
                    pass
        self.step("apt remove: no mfagate unit active, the relay disabled, nothing listening, profile out of common-auth")
        r(f"rm -r {Path(DROPIN).parent}")  # the admin's own file, which purge rightly leaves
        r("apt-get purge -y mfagate")
        left = r("ls -d /var/lib/mfagate /etc/mfagate /usr/sbin/mfagated /usr/bin/mfagate "
                 f"/lib/{MULTIARCH}/security/pam_mfagate.so /usr/share/pam-configs/mfagate "
                 "/lib/systemd/system/mfagate* /lib/systemd/system/mfagated* /etc/systemd/system/*/mfagate* "
                 "/var/lib/systemd/deb-systemd-helper-enabled/*mfagate* "
                 "/var/lib/systemd/deb-systemd-helper-enabled/*/*mfagate* /var/lib/pam/*mfagate* 2>/dev/null",
                 check=False).stdout
        assert left.strip() == "", f"left after purge: {left}"
        assert r("systemctl list-unit-files --no-legend 'mfagate*'", check=False).stdout.strip() == ""
        assert r("dpkg-query -W -f='${Status}' mfagate 2>/dev/null", check=False).stdout.strip() in ("", "unknown ok not-installed")
        assert "mfagate" not in r("cat /var/lib/pam/seen 2>/dev/null", check=False).stdout
        state = r("systemctl is-system-running", check=False).stdout.strip()
        assert state == "running", f"the system is {state} after purge"
        self.step("apt purge: nothing left")
