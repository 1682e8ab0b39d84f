# SPDX-License-Identifier: Apache-2.0
"""Issue 14, findings 1, 2 and 10, attacked as a local user would: the real setuid `su` run by a
non-root account through a PAM stack with pam_mfagate.so (private /etc/pam.d, /etc/passwd and
/etc/group in a mount namespace), raw frames from several local uids, and squatted sockets.
Rules: docs/robustness.md, "Local attacker"; Sources/MFADaemon/Admission.swift."""
from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

import hygiene
from mfagate_harness import MFAGATED, SHIM, account_uids, oathtool_totp, wrong_code
from robustness import report

# The daemon's accounts (the suite's test accounts, or mfagate_harness.Daemon(accounts=...)).
ACCOUNTS = {name: [] for name in ("alice", "bob", "carol", "dave", "mallory")}
UID = account_uids(ACCOUNTS)
RHOST = "192.0.2.50"


# --------------------------------------------------------------------------------------------------
# The real su, setuid root, run by non-root accounts

def su_sandbox(d, stack: str) -> tuple[Path, Path, Path]:
    """A passwd/group pair with the test accounts (login shell /bin/sh) and a PAM dir whose `su`
    is `stack`, for a private mount namespace; nothing of the host's is changed."""
    box = d.dir / "su"
    box.mkdir(exist_ok=True)
    def without_ours(path: str) -> str:
        return "".join(line for line in Path(path).read_text().splitlines(keepends=True)
                       if line.split(":", 1)[0] not in UID)
    passwd = without_ours("/etc/passwd") + "".join(f"{n}:x:{u}:{u}::/tmp:/bin/sh\n" for n, u in UID.items())
    group = without_ours("/etc/group") + "".join(f"{n}:x:{u}:\n" for n, u in UID.items())
    (box / "passwd").write_text(passwd)
    (box / "group").write_text(group)
    pamd = box / "pam.d"
    pamd.mkdir(exist_ok=True)
    (pamd / "other").write_text("auth required pam_deny.so\naccount required pam_deny.so\n"
                                "session required pam_deny.so\n")
    (pamd / "su").write_text(stack)
    return box / "passwd", box / "group", pamd


def as_local_user_in_sandbox(sandbox: tuple[Path, Path, Path], user: str, cmd: list[str]) -> list[str]:
    """cmd run as `user` (real and effective uid, no capabilities) inside a mount namespace where
    /etc/passwd, /etc/group and /etc/pam.d are the sandbox's: so `su` is the host's setuid binary
    reading our PAM stack."""
    passwd, group, pamd = sandbox
    script = ('set -e; mount -n --bind "$1" /etc/passwd; mount -n --bind "$2" /etc/group; '
              'mount -n --bind "$3" /etc/pam.d; shift 3; exec "$@"')
    uid = UID[user]
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
            str(passwd), str(group), str(pamd),
            "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *cmd]


def su(sandbox, user: str, target: str | None = None, stdin=subprocess.PIPE) -> subprocess.Popen:
    """`su TARGET -c 'echo SU-OK'` run by USER (TARGET: herself by default); the code prompt reads stdin."""
    cmd = ["su", target or user, "-c", "echo SU-OK"]
    return subprocess.Popen(as_local_user_in_sandbox(sandbox, user, cmd),
                            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"})


def su_with_answer(sandbox, user: str, answer: str) -> tuple[int, str]:
    p = su(sandbox, user)
    out, err = p.communicate(answer + "\n", timeout=60)
    hygiene.capture("su output", out + err)
    return p.returncode, out + err


def test_one_users_setuid_su_flood_leaves_every_other_login_served(daemon_factory):
    """alice runs many real `su alice`, and `su bob` (the stack here asks no password), all setuid
    root (peer uid 0), and leaves them at the code prompt. With a small slot table (RLIMIT_NOFILE
    64: 32 slots, 16 open to local users), she holds her share (a quarter of those: 4) and the
    rest are refused BUSY (her `su bob` too: charged to her real uid, not to bob's account); bob's
    own `su`, and root-peer logins (sshd's: real uid 0) of bob, carol and alice herself, get the
    prompt and succeed. failmode=safe with pam_permit after the module (the
    stack that turns PAM_IGNORE into a login) lets none of it through without a code.
    On the old daemon her su's took every slot and the refused ones became PAM_IGNORE: SU-OK."""
    hold = 40
    SHARE = 4  # noqa: N806
    d = daemon_factory("required", accounts=ACCOUNTS, start=False)
    d.wrap = ["prlimit", "--nofile=64:64", "--"]
    d.start()
    secrets = {u: d.enroll(u)["secret"] for u in ("alice", "bob", "carol")}
    d.service()
    stack = (f"auth [success=done ignore=ignore default=die] {SHIM} socket={d.socket} failmode=safe timeout=5\n"
             "auth required pam_permit.so\naccount required pam_permit.so\nsession required pam_permit.so\n")
    sandbox = su_sandbox(d, stack)
    held = [su(sandbox, "alice", target="bob" if i % 5 == 0 else "alice") for i in range(hold)]
    try:
        # Every su either waits at the prompt (its stdin never answers) or has been refused.
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and sum(1 for p in held if p.poll() is None) > SHARE:
            time.sleep(0.2)
        time.sleep(2.0)  # the last ones reach the daemon
        waiting = [p for p in held if p.poll() is None]
        refused = [p for p in held if p.poll() is not None]
        refused_out = [p.communicate(timeout=10) for p in refused]
        assert not any("SU-OK" in out for out, _ in refused_out), "a refused su logged in without a code"
        assert all(p.returncode != 0 for p in refused)
        assert len(waiting) == SHARE, f"{len(waiting)} of alice's su wait at the prompt (her share is {SHARE})"

        # bob's own su (real uid bob): the prompt, his right code, in.
        rc, out = su_with_answer(sandbox, "bob", oathtool_totp(secrets["bob"]))
        assert rc == 0 and "SU-OK" in out and "Verification code" in out, out
        # ... and with a wrong code, out (never PAM_IGNORE + pam_permit).
        rc, out = su_with_answer(sandbox, "bob", wrong_code(oathtool_totp(secrets["bob"])))
        assert rc != 0 and "SU-OK" not in out, out
        # Root peers with real uid 0 (as sshd): carol, and alice herself.
        for user in ("bob", "carol", "alice"):
            # bob's code of this step went to his su: his sshd-like login uses the next step's.
            code = oathtool_totp(secrets[user], at="now + 30 seconds" if user == "bob" else None)
            r = d.pam(user, code, args="failmode=safe")
            assert r.result == "PAM_SUCCESS", (user, r, d.log()[-2000:])
            assert any("Verification code" in m for m in r.messages), r
        # One more su of alice's: refused (BUSY), and not let through by failmode=safe.
        rc, out = su_with_answer(sandbox, "alice", oathtool_totp(secrets["alice"]))
        assert rc != 0 and "SU-OK" not in out, out
        assert "mfagated is busy" in d.log() or "refused" in d.log()
        report(f"fair admission: {hold} setuid su by one user against 32 slots: she holds {SHARE}, "
               f"{len(refused) + 1} refused BUSY (none let in by failmode=safe); bob's su and root-peer logins served")
    finally:
        for p in held:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            p.communicate(timeout=10)


# --------------------------------------------------------------------------------------------------
# Raw frames

def enc(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def login_begin(user: str, rhost: str = "", real_uid: int | None = None, service: str = "sshd") -> bytes:
    flags = 0 if real_uid is None else 2
    tail = b"" if real_uid is None else struct.pack(">I", real_uid)
    return frame(b"\x01\x01" + b"".join(enc(f) for f in (user, service, rhost, "", "")) + bytes([flags]) + tail)


def read_frame(s: socket.socket) -> bytes:
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


# A client run as a local account: logs in as itself with wrong codes, claiming a remote address.
WRONG_CODE_CLIENT = r"""
import socket, struct, sys
path, user, rhost, count, code = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
def enc(s):
    b = s.encode(); return struct.pack(">H", len(b)) + b
def frame(p): return struct.pack(">I", len(p)) + p
def read(s):
    d = b""
    while len(d) < 4 or len(d) < 4 + struct.unpack(">I", d[:4])[0]:
        c = s.recv(65536)
        if not c: break
        d += c
    return d
verdicts = []
for _ in range(count):
    s = socket.socket(socket.AF_UNIX); s.connect(path)
    s.sendall(frame(b"\x01\x01" + b"".join(enc(f) for f in (user, "sshd", rhost, "", "")) + b"\x00"))
    f = read(s)
    if f[4] == 0x81:
        s.sendall(frame(b"\x02" + enc(code))); f = read(s)
    verdicts.append(f[5] if f[4] == 0x82 else -1)
    s.close()
print(" ".join(map(str, verdicts)))
"""


@pytest.mark.parametrize("max_failures,senders,each", [(5, ("alice", "bob", "dave", "mallory"), 5),
                                                        (0, ("mallory",), 21)],
                         ids=["four-accounts", "max_failures-0"])
def test_a_local_users_claimed_rhost_blocks_no_address(daemon_factory, max_failures, senders, each):
    """Local accounts send their own logins with rhost=192.0.2.50 and wrong codes (the issue: four
    accounts, or one with max_failures = 0 in 21 frames, blocked that address for everyone). A
    non-root peer's rhost counts for nothing: root's login of carol from that address still works."""
    d = daemon_factory("required", f"max_failures = {max_failures}\n", accounts=ACCOUNTS)
    secrets = {u: d.enroll(u)["secret"] for u in ("alice", "bob", "carol", "dave", "mallory")}
    d.service()
    script = d.dir / "wrong_codes.py"
    script.write_text(WRONG_CODE_CLIENT)
    os.chmod(script, 0o644)
    for user in senders:
        code = wrong_code(oathtool_totp(secrets[user]))
        uid = UID[user]
        out = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--",
                              "/usr/bin/python3", str(script), d.socket, user, RHOST, str(each), code],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[0] == "1", out.stdout  # DENIED: the frames were served
    assert d.check("carol", rhost=RHOST)["decision"] == "code", d.check("carol", rhost=RHOST)
    r = d.pam("carol", oathtool_totp(secrets["carol"]), rhost=RHOST)
    assert r.result == "PAM_SUCCESS", (r, d.log()[-1500:])
    report(f"forged rhost: {len(senders)} local account(s) x {each} wrong codes claiming {RHOST} "
           f"(max_failures = {max_failures}): the address is not blocked, root's login from it works")


def test_a_local_users_claimed_trusted_address_is_not_trusted(daemon_factory):
    """A non-root peer claiming an address in trusted_networks is treated as local (no rhost)."""
    d = daemon_factory("required", "trusted_networks = 192.0.2.0/24\n", accounts=ACCOUNTS)
    d.enroll("mallory")
    uid = UID["mallory"]
    script = (f"import socket,struct;s=socket.socket(socket.AF_UNIX);s.connect({d.socket!r});"
              f"s.sendall({login_begin('mallory', rhost=RHOST)!r});print(s.recv(4096).hex())")
    out = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--",
                          "/usr/bin/python3", "-c", script], capture_output=True, text=True, timeout=30)
    reply = bytes.fromhex(out.stdout.strip())
    assert reply[4] == 0x81, "a code prompt, not IGNORE for a trusted network"


def test_root_peer_logins_of_one_account_hold_only_that_accounts_share(daemon_factory):
    """A remote attacker who knows bob's password holds logins of bob at the prompt (root peer,
    real uid 0): the 65th gets BUSY at once, and carol's login is served."""
    d = daemon_factory("required", accounts=ACCOUNTS)
    secrets = {u: d.enroll(u)["secret"] for u in ("bob", "carol")}
    d.service()
    conns = []
    try:
        answers = []
        for _ in range(70):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(d.socket)
            s.sendall(login_begin("bob", rhost="198.51.100.7"))
            answers.append(read_frame(s)[4:6])
            conns.append(s)
        prompts = [a for a in answers if a[0] == 0x81]
        busy = [a for a in answers if a == b"\x82\x05"]
        assert len(prompts) == 64 and len(busy) == 6, answers
        r = d.pam("carol", oathtool_totp(secrets["carol"]))
        assert r.result == "PAM_SUCCESS", r
    finally:
        for s in conns:
            s.close()
    # Their slots are free again once closed: bob's own login works.
    time.sleep(0.3)
    assert d.pam("bob", oathtool_totp(secrets["bob"])).result == "PAM_SUCCESS"


def test_a_login_waits_at_the_prompt_only_prompt_timeout(daemon_factory):
    d = daemon_factory("required", "prompt_timeout = 2s\n")
    d.enroll("alice")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(d.socket)
        s.sendall(login_begin("alice"))
        assert read_frame(s)[4] == 0x81
        t0 = time.monotonic()
        assert s.recv(4096) == b""
        waited = time.monotonic() - t0
    assert 1.5 < waited < 5, waited
    assert "login timed out waiting for the code" in d.log()


# --------------------------------------------------------------------------------------------------
# Socket squatting, the daemon's side

@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o775])
def test_check_config_and_start_refuse_a_socket_directory_others_can_write(daemon_factory, mode):
    d = daemon_factory("required", start=False)
    squat = d.dir / "squat"
    squat.mkdir()
    os.chmod(squat, mode)
    path = squat / "mfagated.sock"
    d.config.write_text(d.config.read_text().replace(f"socket = {d.socket}", f"socket = {path}"))
    line = next(i for i, l in enumerate(d.config.read_text().splitlines(), 1) if l.startswith("socket ="))
    r = subprocess.run([str(MFAGATED), "--config", str(d.config), "--check-config"], capture_output=True, text=True)
    assert r.returncode != 0
    assert f"{d.config}:{line}: `socket` = {path}: the directory {squat}" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    p = subprocess.run([str(MFAGATED), "--config", str(d.config), "--allow-root"], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and f"the directory {squat}" in p.stderr and not path.exists(), p.stderr
