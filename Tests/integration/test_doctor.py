# SPDX-License-Identifier: Apache-2.0
"""`mfagate doctor` (issue 19, part 6) through the real CLI and the real `sshd -T`: each diagnosis on
an /etc/pam.d and /etc/ssh of the test's own, bind-mounted in a private mount namespace (the host's
files are never touched), and one proved with the real sshd: a key-only login that the doctor says
skips MFA does skip it, and with the doctor's fix it is asked for the code."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import hygiene
from mfagate_harness import MFAGATE, SHIM
from sshd_sandbox import SERVICE, SSHD, SshdSandbox

pytestmark = pytest.mark.skipif(not Path(SSHD).exists(), reason="openssh-server is not installed")

DEBIAN_COMMON = """\
auth\t[success=1 default=ignore]\tpam_unix.so nullok
auth\trequisite\t\t\tpam_deny.so
auth\trequired\t\t\tpam_permit.so
"""
GOOD_SSHD = ["UsePAM yes", "KbdInteractiveAuthentication yes", "PasswordAuthentication no",
             "AuthenticationMethods publickey,keyboard-interactive"]
GOOD_STACK = "@include common-auth\nauth required pam_mfagate.so\naccount required pam_unix.so\n"
SOCKET = "/run/mfagate/mfagated.sock"


def run_doctor(tmp_path: Path, sshd: list[str], stack: str = GOOD_STACK, common: str = DEBIAN_COMMON,
               socket: str = SOCKET, args: tuple[str, ...] = (), login: str | None = None, raw: bool = False,
               conf_text: str | None = None, pam_configs: Path | None = None):
    """Writes the files, then runs `mfagate doctor --json` where they are /etc/pam.d and /etc/ssh."""
    pam, ssh = tmp_path / "pam.d", tmp_path / "ssh"
    pam.mkdir()
    ssh.mkdir()
    (pam / "sshd").write_text(stack)
    (pam / "common-auth").write_text(common)
    (pam / "other").write_text("auth required pam_deny.so\n")
    (pam / "login").write_text(login if login is not None else GOOD_STACK)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / "ssh_host_ed25519_key")],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    (ssh / "sshd_config").write_text("HostKey /etc/ssh/ssh_host_ed25519_key\n" + "".join(l + "\n" for l in sshd))
    conf = tmp_path / "mfagate.conf"
    conf.write_text(conf_text if conf_text is not None else f"socket = {socket}\n")
    # sshd -T wants its privilege separation directory: a /run of the namespace's own holds it.
    script = ("mount -t tmpfs tmpfs /run && mkdir /run/sshd && "
              f"mount --bind {pam} /etc/pam.d && mount --bind {ssh} /etc/ssh && "
              + (f"mount --bind {pam_configs} /usr/share/pam-configs && " if pam_configs else "")
              + 
              f'exec {MFAGATE} doctor --config {conf} "$@"')
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                        *(() if raw else ("--json",)), *args], capture_output=True, text=True, timeout=60)
    if raw:
        return r
    assert r.returncode in (0, 1), r
    report = json.loads(r.stdout)
    assert (r.returncode == 1) == (report["problems"] > 0)
    return report


def problems(report) -> set[str]:
    found = {f["code"] for w in report["ways"] for f in w["findings"] if f["kind"] == "problem"}
    found |= {f["code"] for s in report["services"] for f in s["findings"] if f["kind"] == "problem"}
    return found


def ways(report) -> dict[str, str]:
    return {w["way"]: w["status"] for w in report["ways"]}


def test_a_good_setup_has_no_problem_and_says_where_the_module_runs(tmp_path):
    report = run_doctor(tmp_path, GOOD_SSHD)
    assert report["problems"] == 0, report
    assert ways(report) == {"password": "not-offered", "key": "not-offered", "key + code": "mfa", "console": "mfa"}
    sshd = report["services"][0]
    assert sshd["module"] == {"control": "required", "file": "/etc/pam.d/sshd", "line": 2, "position": 3, "modules_run": 3}
    assert [e["module"] for e in sshd["stack"]] == ["pam_unix.so", "pam_deny.so", "pam_permit.so", "pam_mfagate.so"]
    assert sshd["stack"][0]["file"] == "/etc/pam.d/common-auth"


@pytest.mark.parametrize("name, sshd, stack, common, expected", [
    ("key alone (AuthenticationMethods any)", ["UsePAM yes", "KbdInteractiveAuthentication yes", "PasswordAuthentication no"],
     GOOD_STACK, DEBIAN_COMMON, {"key-skips-pam"}),
    ("key alone listed", ["UsePAM yes", "KbdInteractiveAuthentication yes", "AuthenticationMethods publickey"],
     GOOD_STACK, DEBIAN_COMMON, {"key-skips-pam"}),
    ("keyboard-interactive off", ["UsePAM yes", "KbdInteractiveAuthentication no", "PasswordAuthentication no",
                                  "AuthenticationMethods publickey,keyboard-interactive publickey"],
     GOOD_STACK, DEBIAN_COMMON, {"kbdinteractive-off", "key-skips-pam"}),
    ("UsePAM no", ["UsePAM no", "KbdInteractiveAuthentication yes", "PasswordAuthentication yes", "PubkeyAuthentication no"],
     GOOD_STACK, DEBIAN_COMMON, {"usepam-off"}),
    ("password method", ["UsePAM yes", "KbdInteractiveAuthentication yes", "PasswordAuthentication yes",
                         "AuthenticationMethods password keyboard-interactive"],
     GOOD_STACK, DEBIAN_COMMON, {"password-method"}),
    ("module before the password module", GOOD_SSHD, "auth required pam_mfagate.so\n@include common-auth\n",
     DEBIAN_COMMON, {"before-password"}),
    ("sufficient on the module", GOOD_SSHD, "auth sufficient pam_mfagate.so\n@include common-auth\n",
     DEBIAN_COMMON, {"code-skips-password", "wrong-code-passes"}),
    ("sufficient pam_unix", GOOD_SSHD, "auth sufficient pam_unix.so\nauth required pam_mfagate.so\n",
     DEBIAN_COMMON, {"skipped-by", "code-skips-password"}),
    ("a jump over the module", GOOD_SSHD, "@include common-auth\n",
     "auth [success=2 default=ignore] pam_unix.so\nauth required pam_mfagate.so\nauth requisite pam_deny.so\nauth required pam_permit.so\n",
     {"skipped-by"}),
    ("module missing", GOOD_SSHD, "@include common-auth\n", DEBIAN_COMMON, {"not-in-stack"}),
    ("an include that is not there", GOOD_SSHD, "@include common-auth-gone\nauth required pam_mfagate.so\n",
     DEBIAN_COMMON, {"stack-file"}),
])
def test_each_diagnosis(tmp_path, name, sshd, stack, common, expected):
    report = run_doctor(tmp_path, sshd, stack, common)
    assert problems(report) == expected, (name, report)
    for code in expected:  # each says what to change
        finding = next(f for w in report["ways"] + report["services"] for f in w["findings"] if f["code"] == code)
        assert finding["fix"], finding


def test_socket_mismatch_against_mfagate_conf(tmp_path):
    report = run_doctor(tmp_path, GOOD_SSHD, "@include common-auth\nauth required pam_mfagate.so socket=/run/other.sock\n",
                        socket="/run/mfagate/custom.sock")
    assert problems(report) == {"socket-mismatch"}
    text = next(f["text"] for f in report["services"][0]["findings"] if f["code"] == "socket-mismatch")
    assert "/run/other.sock" in text and "/run/mfagate/custom.sock" in text


def test_a_hand_written_line_in_pam_auth_updates_blocks_is_noted(tmp_path):
    """"After an update it stopped asking": the line was written by hand into common-auth's managed
    blocks, with no mfagate profile for pam-auth-update to write it again."""
    common = Path("/etc/pam.d/common-auth").read_text()
    assert "# end of pam-auth-update config" in common
    common = common.replace("# end of pam-auth-update config", "auth required pam_mfagate.so\n# end of pam-auth-update config")
    # The profile directory of the namespace's own: empty, as on a host where mfagate was built by hand.
    configs = tmp_path / "pam-configs"
    configs.mkdir()
    (tmp_path / "d").mkdir()
    report = run_doctor(tmp_path / "d", GOOD_SSHD, stack="@include common-auth\n", common=common,
                        args=(), login="@include common-auth\n", pam_configs=configs)
    notes = [f for f in report["services"][0]["findings"] if f["code"] == "pam-auth-update"]
    assert notes and notes[0]["kind"] == "note" and "pam-auth-update --enable mfagate" in notes[0]["fix"], report
    assert report["problems"] == 0, report


def test_match_blocks_apply_with_user(tmp_path):
    """sshd -T -C: a Match block that lets one user in with a key alone."""
    sshd = GOOD_SSHD + ["Match User bob", "  AuthenticationMethods publickey"]
    (tmp_path / "all").mkdir()
    assert run_doctor(tmp_path / "all", sshd)["problems"] == 0
    (tmp_path / "bob").mkdir()
    report = run_doctor(tmp_path / "bob", sshd, args=("--user", "bob", "--addr", "192.0.2.7"))
    assert problems(report) == {"key-skips-pam"}


def test_console_stack_is_checked_too(tmp_path):
    report = run_doctor(tmp_path, GOOD_SSHD, login="@include common-auth\nauth optional pam_mfagate.so\n")
    assert ways(report)["console"] == "no-mfa"
    assert {f["code"] for f in report["services"][1]["findings"]} == {"wrong-code-passes"}


def test_text_output_and_refusals(tmp_path):
    r = subprocess.run([str(MFAGATE), "doctor", "--sshd-config", str(tmp_path / "missing")], capture_output=True, text=True)
    assert r.returncode == 3 and "sshd -T" in r.stderr and r.stderr.count("\n") == 1, r
    (tmp_path / "text").mkdir()
    r = run_doctor(tmp_path / "text", GOOD_SSHD, raw=True)
    assert r.returncode == 0, r
    assert "PAM service sshd: pam_mfagate runs as auth module 3 of 3 (required, /etc/pam.d/sshd:2)" in r.stdout
    assert "  - 2. requisite pam_deny.so   (/etc/pam.d/common-auth:2)" in r.stdout, r.stdout
    assert "  key + code: MFA" in r.stdout and "No problems found." in r.stdout
    # A config the daemon would refuse: one sentence naming the file and line, exit 3.
    (tmp_path / "badconf").mkdir()
    r = run_doctor(tmp_path / "badconf", GOOD_SSHD, raw=True, conf_text="socket = relative/path\n")
    assert r.returncode == 3 and "mfagate.conf:1: `socket` must be an absolute path" in r.stderr and r.stderr.count("\n") == 1, r
    # No mfagate.conf: a note, and the module's socket is compared with the default.
    (tmp_path / "noconf").mkdir()
    report = run_doctor(tmp_path / "noconf", GOOD_SSHD, args=("--config", "/nonexistent/mfagate.conf"))
    assert report["problems"] == 0 and [n["code"] for n in report["notes"]] == ["no-config"], report


# -- the proof with the real sshd ------------------------------------------------------------------

def key_only_login(box: SshdSandbox, key: Path, user: str) -> subprocess.CompletedProcess:
    """A login with the key and nothing else: BatchMode answers no prompt."""
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-p", str(box.port), "-i", str(key), "-T",
         "-o", "IdentitiesOnly=yes", "-o", "PreferredAuthentications=publickey,keyboard-interactive",
         "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
         f"{user}@127.0.0.1", "echo LOGIN-OK"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def doctor_for(box: SshdSandbox, d) -> dict:
    script = f'mount -t tmpfs tmpfs /run && mkdir /run/sshd && exec "$@"'
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(MFAGATE), "doctor", "--json",
                        "--service", SERVICE, "--pam-dir", str(box.pam_dir), "--sshd-config", str(box.config_path),
                        "--config", str(d.config)], capture_output=True, text=True, timeout=60)
    assert r.returncode in (0, 1), r
    return json.loads(r.stdout)


@pytest.mark.parametrize("methods, skips", [("any", True), ("publickey,keyboard-interactive", False)])
def test_real_sshd_key_login_skips_mfa_exactly_when_the_doctor_says_so(daemon_factory, tmp_path, methods, skips):
    d = daemon_factory("required", run_as="nobody")
    secret = "JBSWY3DPEHPK3PXP"
    d.enroll("mfauser", secret)
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, capture_output=True,
                   stdin=subprocess.DEVNULL)
    stack = [f"auth required {SHIM} socket={d.socket} timeout=5"]
    box_dir = tmp_path / "box"
    box_dir.mkdir()
    with SshdSandbox(stack, [("mfauser", "pw-not-used-42")], box_dir,
                     extra_sshd_config=["PubkeyAuthentication yes", f"AuthenticationMethods {methods}",
                                        "AuthorizedKeysFile .ssh/authorized_keys"]) as box:
        try:
            ssh_dir = box.home_of("mfauser") / ".ssh"
            ssh_dir.mkdir()
            (ssh_dir / "authorized_keys").write_text((tmp_path / "id_ed25519.pub").read_text())
            report = doctor_for(box, d)
            key_way = next(w for w in report["ways"] if w["way"] == "key")
            logins_before = d.log().count("mfauser")
            r = key_only_login(box, key, "mfauser")
            if skips:
                assert key_way["status"] == "no-mfa" and key_way["findings"][0]["code"] == "key-skips-pam", report
                # An enrolled user under mode = required logs in with the key alone: no code was asked.
                assert r.returncode == 0 and "LOGIN-OK" in r.stdout, r
                assert d.log().count("mfauser") == logins_before, "the daemon never heard of this login"
            else:
                assert key_way["status"] == "not-offered", report
                assert {w["way"]: w["status"] for w in report["ways"]}["key + code"] == "mfa", report
                # The key is not enough: keyboard-interactive (the code) is asked, and BatchMode cannot answer.
                assert r.returncode != 0 and "LOGIN-OK" not in r.stdout, r
        finally:
            hygiene.capture("sshd log", box.log_text())
            hygiene.capture("syslog in the sshd sandbox", box.syslog_text())
