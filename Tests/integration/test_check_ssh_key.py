# SPDX-License-Identifier: Apache-2.0
"""`mfagate check --ssh-key FILE`: the policy dry-run answers as if sshd had reported a login with
that key (SSH_AUTH_INFO_0 `publickey TYPE BLOB`), through the login's own parser and
`trusted_ssh_keys` match. Keys and certificates from ssh-keygen (test_trusted_ssh_keys.py's
fixture); the real sshd shows the dry-run agrees with a login. The CLI reads the file: more than
16 KiB, a private key, or anything but one public key line is refused with one sentence naming
the file (and line), never quoting it. A dry-run changes no state and grants nothing."""
import json
import os
from pathlib import Path

import fake_daemon as fd
from mfagate_harness import MFAGATE
from test_trusted_ssh_keys import USER, asked, fingerprint, key_options, key_sshd, keys  # noqa: F401 (fixtures)
from sshd_sandbox import ssh_login
import subprocess


def check(d, key: Path, *args, user=USER, rhost="192.0.2.7"):
    return d.cli("check", "--user", user, "--rhost", rhost, "--ssh-key", str(key), *args)


def check_json(d, key: Path, **kw) -> dict:
    out = check(d, key, "--json", **kw)
    assert out.returncode == 0, out
    return json.loads(out.stdout)


def state_snapshot(d) -> dict:
    """Every file under the daemon's state directory with its size and modification time; not the
    replay journal, whose lease marker the daemon may renew at any time (logins alone add to it)."""
    snap = {}
    for root, dirs, files in os.walk(d.state):
        for name in dirs + files:
            if root == str(d.state) and name == "journal":
                continue
            st = os.lstat(os.path.join(root, name))
            snap[os.path.relpath(os.path.join(root, name), d.state)] = (st.st_size, st.st_mtime_ns)
    return snap


def test_a_certificate_of_the_trusted_ca_is_not_asked_and_the_login_agrees(key_sshd, keys):
    d, box = key_sshd
    d.enroll(USER)
    ca = fingerprint(keys / "ca.pub")
    verdict = check_json(d, keys / "trusted-cert.pub")
    assert verdict["decision"] == "ignore", verdict
    assert verdict["reason"] == f"no code needed (trusted SSH key: certificate ssh-ed25519-cert-v01@openssh.com signed by CA {ca})"
    assert verdict["rule"].startswith("config line ") and f"trusted_ssh_keys = cert-authority:{ca}" in verdict["rule"], verdict
    assert verdict["ssh_key_type"] == "ssh-ed25519-cert-v01@openssh.com"
    text = check(d, keys / "trusted-cert.pub").stdout
    assert f"{USER} via sshd from 192.0.2.7 with the SSH key ssh-ed25519-cert-v01@openssh.com: ignore" in text, text
    assert "decided by config line" in text
    # The real sshd with the same certificate: no code asked.
    r = ssh_login(box.port, USER, [(r"Verification code:", "000000")], ssh_options=key_options(keys, "trusted"))
    assert r.ok and not asked(r), r
    # The certificate of the other CA and the plain key: a code, and why the key does not count.
    other = check_json(d, keys / "other-cert.pub")
    assert other["decision"] == "code", other
    assert other["reason"].endswith(f"is signed by CA {fingerprint(keys / 'other_ca.pub')}, which trusted_ssh_keys does not list"), other
    r = ssh_login(box.port, USER, [(r"Verification code:", "000000")], ssh_options=key_options(keys, "other"))
    assert asked(r) and not r.ok, r
    # Never the blob in the daemon's log.
    blob = (keys / "trusted-cert.pub").read_text().split()[1]
    assert blob[:40] not in d.log() and blob[-40:] not in d.log()


def test_an_ordinary_key_with_only_sk_trusted_is_asked(daemon_factory, keys):
    d = daemon_factory("required", "trusted_ssh_keys = sk\n")
    d.enroll(USER)
    verdict = check_json(d, keys / "trusted.pub")
    assert verdict["decision"] == "code" and verdict["ssh_key_type"] == "ssh-ed25519", verdict
    assert verdict["reason"] == ("a verification code is needed; an SSH login with this key gets no skip: ssh-ed25519 is "
                                 "neither a security key (sk) nor a certificate signed by a CA trusted_ssh_keys lists"), verdict
    # Without trusted_ssh_keys at all, the answer says so.
    d.write_config("required", "")
    d.stop()
    d.start()
    assert check_json(d, keys / "trusted-cert.pub")["reason"].endswith("trusted_ssh_keys is not set, so no key skips the code")


def test_a_dry_run_changes_nothing_and_grants_nothing(daemon_factory, keys):
    d = daemon_factory("required", f"trusted_ssh_keys = cert-authority:{fingerprint(keys / 'ca.pub')}\n"
                                   "grace_period = 1d\nremember = 8h\n")
    e = d.enroll(USER)
    before = state_snapshot(d)
    for user in (USER, "nobody"):  # enrolled, and unenrolled with a grace period to start
        for key in ("trusted-cert.pub", "plain.pub", "other-cert.pub"):
            assert check(d, keys / key, user=user).returncode == 0
    assert state_snapshot(d) == before
    # A login without the key is still asked (the dry-run left no remembered host, nothing trusted).
    r = d.pam(USER, "000000", rhost="192.0.2.7")
    assert r.result == "PAM_AUTH_ERR" and any("Verification code" in m for m in r.messages), r
    assert e["secret"] not in d.log()


def test_a_private_key_is_refused_with_one_sentence_and_never_sent(daemon_factory, keys, tmp_path):
    d = daemon_factory("required", "trusted_ssh_keys = sk\n")
    for private in ("trusted", "plain", "ca"):
        out = check(d, keys / private)
        assert out.returncode == 2, out
        assert out.stderr == (f"mfagate: {keys / private} holds a private key; give its public key ({keys / private}.pub) "
                              f"or its certificate ({keys / private}-cert.pub) instead, never the private key\n"), out
        body = [line for line in (keys / private).read_text().splitlines() if "PRIVATE KEY" not in line]
        assert not any(line[:20] in out.stdout + out.stderr for line in body if line)
    # A PEM (PKCS#8) private key too.
    pem = tmp_path / "pem_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-m", "PKCS8", "-f", str(pem)], check=True, capture_output=True)
    assert "holds a private key" in check(d, pem).stderr


def test_anything_but_one_public_key_line_is_named_by_file_and_line(daemon_factory, keys, tmp_path):
    d = daemon_factory("required", "trusted_ssh_keys = sk\n")
    plain = (keys / "plain.pub").read_text()
    cases = {
        "garbage": ("# my key\nnot a key at all\n", 2, "not a public key line"),
        "bad-base64": ("ssh-ed25519 AAAA!!!! comment\n", 1, "the second word is not base64"),
        "two-keys": (plain + (keys / "trusted.pub").read_text(), 2, "a second key"),
        "wrong-type": ("ssh-ed25519 " + plain.split()[1] + "\n", 1, "is not its key data's"),
        "shadow": ("root:$6$SALTSECRET$abc:19000:0:99999:7:::\n", 1, "not a public key line"),
    }
    for name, (text, line, why) in cases.items():
        f = tmp_path / f"{name}.pub"
        f.write_text(text)
        out = check(d, f)
        assert out.returncode == 2, (name, out)
        assert out.stderr.startswith(f"mfagate: {f}:{line}: ") and why in out.stderr, (name, out.stderr)
        assert out.stderr.count("\n") == 1 and "SALTSECRET" not in out.stderr, out.stderr
    empty = tmp_path / "empty.pub"
    empty.write_text("\n# nothing\n")
    assert check(d, empty).stderr == f"mfagate: {empty} holds no public key line (TYPE BASE64 [COMMENT], as ssh-keygen writes it)\n"
    big = tmp_path / "big.pub"
    big.write_text(plain.strip() + " " + "x" * (16 * 1024) + "\n")
    out = check(d, big)
    assert out.returncode == 2 and out.stderr == f"mfagate: {big} is larger than 16 KiB; give one public key or certificate file\n", out
    out = check(d, tmp_path / "missing.pub")
    assert out.returncode == 2 and "cannot open" in out.stderr and "No such file" in out.stderr, out
    out = check(d, Path("/dev/zero"))
    assert out.returncode == 2 and "is not a regular file" in out.stderr, out


def test_check_stays_root_only_with_a_key(daemon_factory, keys):
    d = daemon_factory("required", "trusted_ssh_keys = sk\n")
    pub = d.dir / "plain.pub"  # in the daemon's 0755 directory, readable by nobody
    pub.write_text((keys / "plain.pub").read_text())
    os.chmod(pub, 0o644)
    out = d.cli("check", "--user", USER, "--ssh-key", str(pub), user="nobody")
    assert out.returncode == 1 and "only root may ask how the policy treats a user" in out.stderr, out


def test_an_older_daemon_gets_one_sentence(tmp_path, keys):
    """An mfagated of the version before closes the connection on CHECK's new flags byte."""
    sock = str(tmp_path / "old.sock")
    with fd.FakeDaemon(sock, [fd.RECV_ANY, fd.CLOSE]):
        out = subprocess.run([str(MFAGATE), "--socket", sock, "check", "--user", USER, "--ssh-key", str(keys / "plain.pub")],
                             capture_output=True, text=True, timeout=30)
    assert out.returncode == 3, out
    assert out.stderr == (f"mfagate: mfagated at {sock} closed the connection without an answer; an mfagated older than "
                          "this mfagate does not know --ssh-key (upgrade mfagated)\n"), out
