# SPDX-License-Identifier: Apache-2.0
"""`trusted_ssh_keys` (issue 19): a login whose SSH key, already used in the same connection, is
trusted skips the code. The real sshd (AuthenticationMethods publickey,keyboard-interactive,
TrustedUserCAKeys with two CAs) and the real ssh client; keys and certificates from ssh-keygen.
What sshd reports cannot be forged: not by the client (SetEnv with AcceptEnv *), not by a local
user's raw frames or own PAM stack (only a root peer with real uid 0 is believed)."""
import os
import socket
import struct
import subprocess
from pathlib import Path

import pytest

import hygiene
from mfagate_harness import SHIM, as_account, oathtool_totp, wrong_code
from sshd_sandbox import SshdSandbox, ssh_login

PASSWORD = "correct horse 42"
USER = "mfauser"  # a suite account (with_test_accounts.py): the daemon outside the sandbox knows it


def keygen(*args):
    subprocess.run(["ssh-keygen", "-q", *args], check=True, capture_output=True, timeout=30)


def fingerprint(pub: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(pub)], check=True, capture_output=True, text=True)
    return out.stdout.split()[1]


@pytest.fixture
def keys(tmp_path):
    """Two CAs, a user key certified by each (copied, so each certificate sits next to its own key),
    and a plain key for authorized_keys."""
    k = tmp_path / "keys"
    k.mkdir()
    keygen("-t", "ed25519", "-N", "", "-C", "trusted-ca", "-f", str(k / "ca"))
    keygen("-t", "ecdsa", "-N", "", "-C", "other-ca", "-f", str(k / "other_ca"))
    for name, ca in (("trusted", "ca"), ("other", "other_ca")):
        keygen("-t", "ed25519", "-N", "", "-C", name, "-f", str(k / name))
        keygen("-s", str(k / ca), "-I", f"{USER}-{name}", "-n", USER, "-z", "42", str(k / f"{name}.pub"))
    keygen("-t", "ecdsa", "-N", "", "-C", "plain", "-f", str(k / "plain"))
    (k / "user_cas").write_text((k / "ca.pub").read_text() + (k / "other_ca.pub").read_text())
    return k


def key_options(k: Path, name: str) -> list[str]:
    opts = ["-o", "PubkeyAuthentication=yes", "-o", "PreferredAuthentications=publickey,keyboard-interactive",
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i", str(k / name)]
    if (k / f"{name}-cert.pub").exists():
        opts += ["-o", f"CertificateFile={k / f'{name}-cert.pub'}"]
    return opts


@pytest.fixture
def key_sshd(daemon_factory, tmp_path, keys):
    d = daemon_factory("required", f"trusted_ssh_keys = cert-authority:{fingerprint(keys / 'ca.pub')}\n"
                                   "enroll_at_login = no\n", run_as="nobody")
    # Key + code, the usual set-up: the key is checked by sshd, then the auth stack asks the code;
    # pam_permit turns the module's PAM_IGNORE (no code needed) into a login.
    stack = [f"auth required {SHIM} socket={d.socket} timeout=5", "auth required pam_permit.so"]
    config = ["AuthenticationMethods publickey,keyboard-interactive", "PubkeyAuthentication yes",
              f"TrustedUserCAKeys {keys / 'user_cas'}", "AuthorizedKeysFile .ssh/authorized_keys", "AcceptEnv *"]
    (tmp_path / "sshd").mkdir()
    with SshdSandbox(stack, [(USER, PASSWORD)], tmp_path / "sshd", extra_sshd_config=config) as box:
        ssh_dir = box.home_of(USER) / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text((keys / "plain.pub").read_text())
        uid = box.users[USER]
        for p in (ssh_dir, ssh_dir / "authorized_keys"):
            os.chown(p, uid, uid)
        try:
            yield d, box
        finally:
            hygiene.capture("sshd log", box.log_text())
            hygiene.capture("syslog in the sshd sandbox", box.syslog_text())


def asked(result) -> bool:
    return any("Verification code" in p for p in result.prompts)


def test_a_certificate_of_the_trusted_ca_logs_in_without_a_code(key_sshd, keys):
    d, box = key_sshd
    d.enroll(USER)
    r = ssh_login(box.port, USER, [(r"Verification code:", "000000")], ssh_options=key_options(keys, "trusted"))
    assert r.ok and not asked(r), (r, box.log_text()[-1500:], d.log()[-1500:])
    ca = fingerprint(keys / "ca.pub")
    assert f'reason="trusted SSH key: certificate ssh-ed25519-cert-v01@openssh.com signed by CA {ca}"' in d.log(), d.log()[-1500:]
    assert "result=ignore" in d.log()
    # Never the blob in the daemon's log.
    blob = (keys / "trusted-cert.pub").read_text().split()[1]
    assert blob[:40] not in d.log() and blob[-40:] not in d.log()


def test_an_unenrolled_user_under_required_logs_in_with_the_trusted_certificate(key_sshd, keys):
    d, box = key_sshd
    r = ssh_login(box.port, USER, [(r"Verification code:", "000000")], ssh_options=key_options(keys, "trusted"))
    assert r.ok and not asked(r), (r, d.log()[-1500:])


@pytest.mark.parametrize("key", ["plain", "other"], ids=["ordinary-key", "certificate-of-another-ca"])
def test_an_ordinary_key_and_another_cas_certificate_are_asked_for_the_code(key_sshd, keys, key):
    d, box = key_sshd
    e = d.enroll(USER)
    code = oathtool_totp(e["secret"])
    bad = ssh_login(box.port, USER, [(r"Verification code:", wrong_code(code))], ssh_options=key_options(keys, key))
    assert asked(bad) and not bad.ok, bad
    good = ssh_login(box.port, USER, [(r"Verification code:", code)], ssh_options=key_options(keys, key))
    assert asked(good) and good.ok, (good, d.log()[-1500:])
    # sshd did pass the key first (the module saw it): it was just not trusted.
    assert "Accepted publickey" in box.log_text() or "Accepted key" in box.log_text() or "Partial publickey" in box.log_text()


def test_the_client_cannot_forge_ssh_auth_info_with_setenv(key_sshd, keys):
    """The trusted certificate's own line, sent by the client as SetEnv (accepted by the server, as
    the shell's environment shows): still asked, since only sshd fills the PAM environment."""
    d, box = key_sshd
    e = d.enroll(USER)
    cert = (keys / "trusted-cert.pub").read_text().split()
    forged = f"publickey {cert[0]} {cert[1]}"
    options = key_options(keys, "plain") + ["-o", f'SetEnv=SSH_AUTH_INFO_0="{forged}"']
    r = ssh_login(box.port, USER, [(r"Verification code:", oathtool_totp(e["secret"]))], ssh_options=options,
                  command="echo LOGIN-OK; printenv SSH_AUTH_INFO_0")
    assert asked(r), (r, d.log()[-1500:])
    assert r.ok and forged in r.output, r  # the variable did reach the server, in the session only
    assert "trusted SSH key" not in d.log()


def test_a_password_only_login_is_asked(daemon_factory, tmp_path, keys):
    d = daemon_factory("required", f"trusted_ssh_keys = sk cert-authority:{fingerprint(keys / 'ca.pub')}\n",
                       run_as="nobody")
    e = d.enroll(USER)
    stack = ["auth required pam_unix.so", f"auth required {SHIM} socket={d.socket} timeout=5"]
    (tmp_path / "sshd").mkdir()
    with SshdSandbox(stack, [(USER, PASSWORD)], tmp_path / "sshd", extra_sshd_config=["AcceptEnv *"]) as box:
        cert = (keys / "trusted-cert.pub").read_text().split()
        r = ssh_login(box.port, USER, [(r"[Pp]assword:", PASSWORD), (r"Verification code:", oathtool_totp(e["secret"]))],
                      ssh_options=["-o", f'SetEnv=SSH_AUTH_INFO_0="publickey {cert[0]} {cert[1]}"'])
        assert asked(r) and r.ok, (r, d.log()[-1500:])
        hygiene.capture("sshd log", box.log_text())


# ---- a local user's own frames and PAM stack ------------------------------------------------

def enc(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def login_begin(user: str, auth_info: str, real_uid: int = 0) -> bytes:
    payload = (b"\x01\x01" + b"".join(enc(f) for f in (user, "sshd", "192.0.2.7", "ssh", ""))
               + bytes([0x02 | 0x04]) + struct.pack(">I", real_uid) + enc(auth_info))
    return struct.pack(">I", len(payload)) + payload


def test_a_local_users_raw_login_begin_with_a_forged_auth_info_gets_the_prompt(daemon_factory, keys):
    """nobody connects to the socket and sends a LOGIN_BEGIN for itself claiming real uid 0 and the
    trusted certificate's line: a CONVERSE (the code prompt), not IGNORE. Root's identical frame
    is believed (the control: the frame itself is right)."""
    d = daemon_factory("required", f"trusted_ssh_keys = cert-authority:{fingerprint(keys / 'ca.pub')}\n")
    d.enroll("nobody")
    cert = (keys / "trusted-cert.pub").read_text().split()
    frame = login_begin("nobody", f"publickey {cert[0]} {cert[1]}\n")
    script = (f"import socket;s=socket.socket(socket.AF_UNIX);s.connect({d.socket!r});"
              f"s.sendall({frame!r});print(s.recv(4096).hex())")
    out = subprocess.run(as_account("nobody", ["/usr/bin/python3", "-c", script]), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert bytes.fromhex(out.stdout.strip())[4] == 0x81, "a code prompt, not a verdict"
    root_reply = d.raw(frame)
    assert root_reply[4] == 0x82 and root_reply[5] == 2, root_reply  # VERDICT IGNORE
    # `mfagate check` says what the skip would be, with the config line.
    check = d.check("nobody")
    assert check["decision"] == "code" and "key trusted by config line" in check["reason"], check


def test_the_module_in_a_plain_users_pam_stack_is_not_believed(daemon_factory, keys):
    """The real module and libpam, run by nobody with SSH_AUTH_INFO_0 in its PAM environment (any
    program a user runs can pam_putenv): asked for the code. The same run by root skips it."""
    d = daemon_factory("required", f"trusted_ssh_keys = cert-authority:{fingerprint(keys / 'ca.pub')}\n")
    e = d.enroll("nobody")
    cert = (keys / "trusted-cert.pub").read_text().split()
    env = {"SSH_AUTH_INFO_0": f"publickey {cert[0]} {cert[1]}\n"}
    code = oathtool_totp(e["secret"])
    r = d.pam("nobody", wrong_code(code), as_user="nobody", pam_env=env)
    assert r.result == "PAM_AUTH_ERR", r
    assert d.pam("nobody", pam_env=env).result == "PAM_IGNORE"
    # In the process environment only (not sshd's PAM environment): not relayed, asked.
    assert d.pam("nobody", code, env=env).result == "PAM_SUCCESS"
