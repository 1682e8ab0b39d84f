# SPDX-License-Identifier: Apache-2.0
"""The systemd units in systemd/: `systemd-analyze verify` prints nothing, the offline security
exposure stays at or below 2.0, and the socket unit listens where the module and CLI look by
default. Runs against a temp root holding the host's stock units plus ours (no systemd as PID 1)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mfagate_harness import MFAGATED, ROOT

ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None or not Path("/lib/systemd/system/sysinit.target").exists(),
                                reason="systemd-analyze and the stock units (package systemd) are needed")
UNITS = ROOT / "systemd"


@pytest.fixture(scope="module")
def unit_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("unitroot")
    shutil.copytree("/lib/systemd/system", root / "lib/systemd/system", symlinks=True)
    for unit in ("mfagated.service", "mfagated.socket", "mfagate-mail.socket", "mfagate-mail@.service"):
        shutil.copy(UNITS / unit, root / "lib/systemd/system" / unit)
    (root / "usr/sbin").mkdir(parents=True)
    shutil.copy(MFAGATED, root / "usr/sbin/mfagated")
    (root / "bin").mkdir()
    shutil.copy("/bin/kill", root / "bin/kill")
    shutil.copy("/bin/sh", root / "bin/sh")  # the mail relay's ExecStart
    return root


def test_verify_prints_nothing(unit_root):
    # --man=no: the man pages are checked where they are installed (make check-deb).
    out = subprocess.run([ANALYZE, "verify", "--man=no", f"--root={unit_root}", "mfagated.service", "mfagated.socket",
                          "mfagate-mail.socket", "mfagate-mail@1.service"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stderr == "" and out.stdout == "", out


def test_offline_security_exposure_at_most_2(unit_root):
    out = subprocess.run([ANALYZE, "security", "--offline=yes", f"--root={unit_root}", "--no-pager", "mfagated.service"],
                         capture_output=True, text=True, timeout=120)
    match = re.search(r"Overall exposure level for mfagated.service: ([0-9.]+)", out.stdout)
    assert match, out
    assert float(match.group(1)) <= 2.0, out.stdout


def test_units_agree_with_the_defaults_of_module_daemon_and_packaging():
    socket_unit = (UNITS / "mfagated.socket").read_text()
    service = (UNITS / "mfagated.service").read_text()
    assert "ListenStream=/run/mfagate/mfagated.sock\n" in socket_unit
    assert '#define MFG_DEFAULT_SOCKET "/run/mfagate/mfagated.sock"' in (ROOT / "Sources/pam_mfagate/mfg_frame.h").read_text()
    assert "Type=notify\n" in service and "User=_mfagate\n" in service
    assert "StateDirectory=mfagate\n" in service and "StateDirectoryMode=0700\n" in service
    assert "RestrictAddressFamilies=AF_UNIX\n" in service
    # PrivateUsers= would turn every peer uid but root and _mfagate into the overflow uid.
    assert not re.search(r"^PrivateUsers=(yes|true|1)", service, re.M)
    assert "u _mfagate " in (UNITS / "mfagate.sysusers").read_text()
    assert "d /var/lib/mfagate 0700 _mfagate _mfagate" in (UNITS / "mfagate.tmpfiles").read_text()


def test_the_mail_relay_units_keep_the_daemon_sandboxed():
    """Email goes through mfagate-mail.socket (issue 10): the daemon's unit is not relaxed for it,
    and only the daemon's user may hand the relay a message."""
    service = (UNITS / "mfagated.service").read_text()
    assert "NoNewPrivileges=yes\n" in service and "PrivateNetwork=yes\n" in service and "ProtectSystem=strict\n" in service
    socket_unit = (UNITS / "mfagate-mail.socket").read_text()
    assert "ListenStream=/run/mfagate/mail.sock\n" in socket_unit and "SocketMode=0600\n" in socket_unit
    assert "SocketUser=_mfagate\n" in socket_unit and "Accept=yes\n" in socket_unit
    relay = (UNITS / "mfagate-mail@.service").read_text()
    assert "ExecStart=/bin/sh -c '/usr/sbin/sendmail -t -oi && echo OK'\n" in relay and "User=_mfagate\n" in relay


# Options with which systemd turns on NoNewPrivileges for a service with User= (seccomp, or documented
# so; checked under systemd 252 for ProtectKernelTunables by make check-deb). Any of them in the relay
# makes exim4's setuid sendmail and postfix's setgid postdrop fail to queue (issue 15).
IMPLY_NO_NEW_PRIVILEGES = ("NoNewPrivileges=yes", "SystemCallFilter=", "SystemCallArchitectures=",
                           "RestrictAddressFamilies=", "RestrictNamespaces=", "RestrictRealtime=",
                           "RestrictSUIDSGID=", "RestrictFileSystems=", "LockPersonality=",
                           "MemoryDenyWriteExecute=", "PrivateDevices=", "ProtectKernelTunables=",
                           "ProtectKernelModules=", "ProtectKernelLogs=", "ProtectClock=", "ProtectHostname=",
                           "DynamicUser=", "CapabilityBoundingSet=", "ProtectHome=")


def test_the_relay_keeps_setuid_and_setgid_sendmail_working():
    """make check-deb proves it under a real systemd; this catches the same options offline."""
    relay = (UNITS / "mfagate-mail@.service").read_text()
    options = [l.strip() for l in relay.splitlines() if l.strip() and not l.startswith("#")]
    bad = [o for o in options if o.startswith(IMPLY_NO_NEW_PRIVILEGES)]
    assert bad == [], f"the relay may not use {bad}"
    assert "NoNewPrivileges=no" in options and "CollectMode=inactive-or-failed" in options


def test_the_daemon_has_run_read_only_and_a_reload_that_checks_first():
    service = (UNITS / "mfagated.service").read_text()
    assert "ReadOnlyPaths=/run\n" in service
    reloads = re.findall(r"(?m)^ExecReload=(.*)$", service)
    assert reloads == ["/usr/sbin/mfagated --config /etc/mfagate/mfagate.conf --check-config",
                       "/bin/kill -HUP $MAINPID"], reloads


def test_the_package_stops_and_disables_the_relay_and_has_one_systemd_snippet():
    rules = (ROOT / "Packaging/debian/rules").read_text()
    assert len(re.findall(r"(?m)^\tdh_installsystemd\b", rules)) == 1, "one call, or maintainer scripts repeat blocks"
    prerm = (ROOT / "Packaging/debian/mfagate.prerm").read_text()
    assert "deb-systemd-invoke stop mfagated.service mfagate-mail.socket" in prerm
    assert "systemctl --quiet disable mfagate-mail.socket" in prerm
