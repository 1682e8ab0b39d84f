# SPDX-License-Identifier: Apache-2.0
"""Self-service enrollment with the real `mfagate` CLI driven in a pty (pexpect), as a real
unprivileged account (nobody), against the real daemon; codes from oathtool; the terminal QR code
decoded by an independent decoder (zbarimg from zbar-tools)."""
import json
import re
import shutil
import subprocess

import pexpect
import pytest

from mfagate_harness import MFAGATE, as_account, oathtool_totp, wrong_code

USER = "nobody"


def spawn_cli(d, *args, user=USER, lang="C.UTF-8"):
    cmd = [str(d.readable_copy(MFAGATE)), "--socket", d.socket, *args]
    if user:
        cmd = as_account(user, cmd)
    env = {"PATH": "/usr/bin:/bin", "LANG": lang, "TERM": "dumb"}
    return pexpect.spawn(cmd[0], cmd[1:], env=env, encoding="utf-8", timeout=20, dimensions=(200, 200))


def half_blocks_to_pbm(lines, scale=4):
    """Our half-block text back to pixels: ink (█▀▄ parts) is a light module, space a dark one,
    as `qrencode -t UTF8` draws it; two module rows per text line."""
    rows = []
    for line in lines:
        top, bottom = [], []
        for ch in line:
            top.append(ch in "█▀")       # light?
            bottom.append(ch in "█▄")
        rows += [top, bottom]
    width = max(len(r) for r in rows)
    out = [f"P1\n{width * scale + 16} {len(rows) * scale + 16}\n"]
    blank = "0 " * (width * scale + 16)
    for _ in range(8):
        out.append(blank + "\n")
    for r in rows:
        pixels = "0 " * 8 + "".join(("0 " if light else "1 ") * scale for light in r + [True] * (width - len(r))) + "0 " * 8
        for _ in range(scale):
            out.append(pixels + "\n")
    for _ in range(8):
        out.append(blank + "\n")
    return "".join(out)


def enroll_interactively(d, tmp_path, lang="C.UTF-8", extra=()):
    """Runs `mfagate enroll` as nobody; returns (secret, uri, qr_lines, recovery_codes)."""
    child = spawn_cli(d, "enroll", *extra, lang=lang)
    child.expect("Code from the app: ")
    screen = child.before.replace("\r", "")
    key = re.search(r"by hand \(time-based, 6 digits\): ([A-Z2-7 ]+)\n", screen).group(1)
    uri = re.search(r"URI: (otpauth://\S+)\n", screen).group(1)
    secret = key.replace(" ", "")
    assert all(len(g) == 4 for g in key.split(" ")[:-1]), key
    qr = screen.split("authenticator app:\n", 1)[1].split("\nOr enter")[0].split("\n") if "QR code" in screen else []
    code = oathtool_totp(secret)
    child.sendline(wrong_code(code))
    child.expect("Not right: ")
    child.expect("Code from the app: ")
    child.sendline(code)
    child.expect("not shown again:\r\n")
    child.expect(pexpect.EOF)
    codes = re.findall(r"^  ([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})\s*$", child.before.replace("\r", ""), re.M)
    child.close()
    assert child.exitstatus == 0, child.before
    return secret, uri, qr, codes


def status(d, user=USER):
    return json.loads(d.cli("status", "--json", user=user, check=True).stdout)


def test_self_service_enroll_qr_decodes_to_the_uri_and_only_a_right_code_activates(daemon, tmp_path):
    secret, uri, qr, codes = enroll_interactively(daemon, tmp_path)
    host = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    assert uri == f"otpauth://totp/{host}:{USER}%40{host}?secret={secret}&issuer={host}&algorithm=SHA1&digits=6&period=30"
    assert len(codes) == 10 and len(set(codes)) == 10
    # The QR code drawn in the terminal decodes, with an independent decoder, to exactly the URI.
    assert qr and all(set(line) <= set("█▀▄ ") for line in qr), qr[:3]
    if not shutil.which("zbarimg"):
        pytest.skip("zbarimg (zbar-tools) is not installed")
    image = tmp_path / "qr.pbm"
    image.write_text(half_blocks_to_pbm(qr))
    decoded = subprocess.run(["zbarimg", "--quiet", "--raw", str(image)], capture_output=True, text=True)
    assert decoded.returncode == 0, decoded.stderr
    assert decoded.stdout.strip() == uri
    # Active now, with the stable JSON keys.
    s = status(daemon)
    assert s["user"] == USER and s["enrolled"] is True and s["recovery_codes_left"] == 10
    assert s["method"] == "totp" and isinstance(s["enrolled_since"], int) and s["last_success"] is None
    # A recovery code shown at enrollment logs in once.
    assert daemon.pam(USER, codes[0]).result == "PAM_SUCCESS"
    assert daemon.pam(USER, codes[0]).result == "PAM_AUTH_ERR"
    human = daemon.cli("status", user=USER, check=True).stdout
    assert "enrolled since" in human and "9 recovery code(s) left" in human and secret not in human


def test_ascii_qr_without_utf8_and_no_qr_flag(daemon, tmp_path):
    child = spawn_cli(daemon, "enroll", lang="C")
    child.expect("Code from the app: ")
    screen = child.before.replace("\r", "")
    child.sendeof()
    child.expect(pexpect.EOF)
    qr = screen.split("authenticator app:\n", 1)[1].split("\nOr enter")[0].split("\n")
    assert all(set(line) <= set("# ") for line in qr) and any("##" in line for line in qr)
    child = spawn_cli(daemon, "enroll", "--no-qr")
    child.expect("Code from the app: ")
    assert "QR" not in child.before and "█" not in child.before and "otpauth://" in child.before
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert status(daemon)["enrolled"] is False, "an unconfirmed enrollment is never active"
    assert status(daemon)["pending"] is True


def test_re_enroll_regenerate_disable_need_a_code(daemon, tmp_path):
    secret, _, _, codes = enroll_interactively(daemon, tmp_path)
    # Re-enroll (new phone): a wrong proof is refused and the enrollment stays.
    child = spawn_cli(daemon, "enroll", "--no-qr")
    child.expect("Current code or a recovery code: ")
    child.sendline("aaaa-bbbb-cccc")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1 and "already enrolled" in child.before
    assert daemon.pam(USER, codes[5]).result == "PAM_SUCCESS", "old enrollment still active"
    # Regenerate needs a code from the device: a recovery code is refused; a right code kills the old set.
    r = daemon.cli("recovery-codes", "--regenerate", "--code", codes[1], user=USER)
    assert r.returncode == 1 and "current code" in r.stderr
    r = daemon.cli("recovery-codes", "--regenerate", "--code", oathtool_totp(secret, at="now + 30 seconds"), user=USER)
    assert r.returncode == 0, r.stderr
    fresh = re.findall(r"^  (\S{4}-\S{4}-\S{4})$", r.stdout, re.M)
    assert len(fresh) == 10
    assert daemon.pam(USER, codes[2]).result == "PAM_AUTH_ERR", "old set dead"
    assert daemon.pam(USER, fresh[0]).result == "PAM_SUCCESS"
    # Disable needs a code too.
    r = daemon.cli("disable", "--code", "000000", user=USER)
    assert r.returncode == 1 and status(daemon)["enrolled"] is True
    r = daemon.cli("disable", "--code", fresh[1], user=USER)
    assert r.returncode == 0 and "disabled" in r.stdout, r.stderr
    assert status(daemon)["enrolled"] is False
    assert daemon.pam(USER).result == "PAM_IGNORE"


def test_root_list_and_reset_and_users_cannot_list(daemon):
    daemon.enroll("alice")
    daemon.enroll("bob")
    listed = json.loads(daemon.cli("list", "--json", check=True).stdout)
    assert [e["user"] for e in listed] == ["alice", "bob"]
    assert all(e["enrolled"] and e["recovery_codes_left"] == 10 and e["method"] == "totp" for e in listed)
    assert "alice: enrolled since" in daemon.cli("list", check=True).stdout
    assert daemon.cli("list", user=USER).returncode == 1
    assert daemon.cli("reset", "--user", "alice", user=USER).returncode == 1
    r = daemon.cli("reset", "--user", "alice", check=True)
    assert "reset" in r.stdout
    assert [e["user"] for e in json.loads(daemon.cli("list", "--json", check=True).stdout)] == ["bob"]
    assert "event=reset" in daemon.log() and "user=alice" in daemon.log()
