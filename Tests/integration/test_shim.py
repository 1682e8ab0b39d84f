# SPDX-License-Identifier: Apache-2.0
"""pam_mfagate.so through the real libpam (pam_start_confdir via build/pam_driver, and
pamtester under libpam-wrapper), against fake_daemon.FakeDaemon on a Unix socket.

Protocol and verdict table: docs/protocol.md. Every row of that table and every failure the
shim must absorb (daemon down, hang, garbage, short frames) has a test here, per failmode.
"""

import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_daemon as fd  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MODULE = os.path.join(ROOT, "build", "pam_mfagate.so")
DRIVER = os.path.join(ROOT, "build", "pam_driver")
SERVICE = "mfatest"
USER = "alice"
CODE = "123456"
UNAVAIL, IGNORE = "PAM_AUTHINFO_UNAVAIL", "PAM_IGNORE"
FAILMODES = [("secure", UNAVAIL), ("safe", IGNORE)]


@pytest.fixture(scope="session", autouse=True)
def built():
    subprocess.run(["make", "-s", "build/pam_mfagate.so", "build/pam_driver"], cwd=ROOT,
                   check=True)


@pytest.fixture
def sock(tmp_path):
    return str(tmp_path / "d.sock")


# libpam never hands PAM_IGNORE to the application (a stack whose modules all ignore fails
# with PAM_PERM_DENIED), so to observe the module's own return code the test stack is:
#   success -> done (PAM_SUCCESS), any failure -> die (that code, unchanged),
#   ignore -> fall through to pam_debug, which returns a marker code the shim never returns.
IGNORE_MARKER = "cred_insufficient"
OBSERVE = ("auth [success=done ignore=ignore default=die] {module} {args}\n"
           "auth requisite pam_debug.so auth=%s\n" % IGNORE_MARKER)
REQUIRED = "auth required {module} {args}\n"


def make_confdir(tmp_path, args, stack=OBSERVE):
    """A PAM config dir with an `other` file and our service using the built module."""
    confdir = tmp_path / "pam.d"
    confdir.mkdir(exist_ok=True)
    # `other` keeps libpam from logging "no default config" on every pam_start.
    (confdir / "other").write_text("auth required pam_deny.so\n")
    (confdir / SERVICE).write_text(stack.format(module=MODULE, args=" ".join(args)))
    return str(confdir)


def run_driver(confdir, *extra, user=USER, wrap=None, timeout=30):
    """Runs pam_driver; returns (result, messages, elapsed_ms, lines)."""
    cmd = [DRIVER, confdir, SERVICE, user, *extra]
    if wrap is not None:
        cmd = wrap(cmd)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    values = dict(l.split(": ", 1) for l in lines if l.startswith(("RESULT:", "ELAPSED_MS:",
                                                                  "SETCRED:")))
    # pam_debug announces itself with a TEXT_INFO; it is part of the test stack, not the shim.
    messages = [l for l in lines if l.split(":", 1)[0] in
                ("PROMPT_ECHO_OFF", "PROMPT_ECHO_ON", "ERROR_MSG", "TEXT_INFO")
                and l != "TEXT_INFO: auth=" + IGNORE_MARKER]
    result = values["RESULT"]
    if result == "PAM_" + IGNORE_MARKER.upper():  # pam_debug's marker: the shim ignored
        result = IGNORE
    return result, messages, int(values["ELAPSED_MS"]), lines


def login(tmp_path, sock, steps, *driver_args, failmode=None, timeout=2, extra_args=()):
    """One login against a fake daemon playing `steps`; returns (result, messages, daemon)."""
    args = ["socket=" + sock, "timeout=%d" % timeout, *extra_args]
    if failmode:
        args.append("failmode=" + failmode)
    confdir = make_confdir(tmp_path, args)
    with fd.FakeDaemon(sock, steps) as d:
        result, messages, _, _ = run_driver(confdir, *driver_args)
    assert not d.errors, d.errors
    return result, messages, d


# ---- the built object -----------------------------------------------------

def test_links_only_libpam_and_libc():
    out = subprocess.run(["readelf", "-d", MODULE], capture_output=True, text=True,
                         check=True).stdout
    needed = sorted(l.split("[")[1].rstrip("]") for l in out.splitlines() if "(NEEDED)" in l)
    assert needed == ["libc.so.6", "libpam.so.0"]
    assert "RPATH" not in out and "RUNPATH" not in out


def test_exports_only_pam_sm():
    out = subprocess.run(["nm", "-D", "--defined-only", MODULE], capture_output=True, text=True,
                         check=True).stdout
    names = sorted(l.split()[-1] for l in out.splitlines() if l.strip())
    assert names == ["pam_sm_authenticate", "pam_sm_setcred"]


# ---- the daemon fails -------------------------------------------------------

@pytest.mark.parametrize("failmode,expected", FAILMODES)
def test_daemon_down(tmp_path, sock, failmode, expected):
    confdir = make_confdir(tmp_path, ["socket=" + sock, "failmode=" + failmode])
    assert run_driver(confdir)[0] == expected


def test_daemon_down_default_failmode_is_secure(tmp_path, sock):
    confdir = make_confdir(tmp_path, ["socket=" + sock])
    assert run_driver(confdir)[0] == UNAVAIL


def test_socket_path_not_a_socket(tmp_path):
    path = tmp_path / "plain-file"
    path.write_text("")
    confdir = make_confdir(tmp_path, ["socket=%s" % path])
    assert run_driver(confdir)[0] == UNAVAIL


@pytest.mark.parametrize("failmode,expected", FAILMODES)
def test_hanging_daemon_times_out(tmp_path, sock, failmode, expected):
    confdir = make_confdir(tmp_path, ["socket=" + sock, "timeout=1", "failmode=" + failmode])
    with fd.FakeDaemon(sock, fd.BEHAVIOURS["hang"]) as d:
        result, _, elapsed, _ = run_driver(confdir)
    assert result == expected
    assert 900 <= elapsed < 2000
    assert [f["tag"] for f in d.received] == ["LOGIN_BEGIN"]


def test_timeout_counts_per_frame_not_per_login(tmp_path, sock):
    """Three slow-but-timely frames (0.6 s each, timeout=1) must all be accepted."""
    class Slow(fd.FakeDaemon):
        def _play(self, conn):
            conn.settimeout(0.05)
            self._recv_frame(conn)
            for _ in range(2):
                self._stop.wait(0.6)
                conn.sendall(fd.converse((fd.TEXT_INFO, "still here")))
                self._recv_frame(conn)
            self._stop.wait(0.6)
            conn.sendall(fd.verdict(fd.SUCCESS))

    confdir = make_confdir(tmp_path, ["socket=" + sock, "timeout=1"])
    with Slow(sock, []) as d:
        result, messages, elapsed, _ = run_driver(confdir)
    assert not d.errors
    assert result == "PAM_SUCCESS"
    assert elapsed >= 1800
    assert messages == ["TEXT_INFO: still here"] * 2


@pytest.mark.parametrize("failmode,expected", FAILMODES)
@pytest.mark.parametrize("behaviour", ["close", "early_close", "garbage", "oversized",
                                       "zero_length", "truncated", "unknown_verdict"])
def test_misbehaving_daemon(tmp_path, sock, behaviour, failmode, expected):
    result, _, _ = login(tmp_path, sock, fd.BEHAVIOURS[behaviour], failmode=failmode)
    assert result == expected


@pytest.mark.parametrize("failmode,expected", FAILMODES)
def test_a_second_frame_before_the_reply_is_malformed(tmp_path, sock, failmode, expected):
    """The shim reads a frame with one recv of what has arrived; the daemon never sends another
    frame before the shim's reply (docs/protocol.md, "Who speaks when"), so bytes after the frame
    break the protocol: a VERDICT glued to a CONVERSE is refused per failmode, never obeyed."""
    steps = [fd.RECV, fd.send(fd.converse(fd.PROMPT) + fd.verdict(fd.SUCCESS)), fd.RECV, fd.CLOSE]
    result, messages, d = login(tmp_path, sock, steps, "--answer", CODE, failmode=failmode)
    assert result == expected
    assert messages == [] and d.frames("REPLY") == []


def test_a_frame_arriving_in_pieces_is_read_whole(tmp_path, sock):
    """A header split from its body, and the body in two pieces: still one frame."""
    class Dribbling(fd.FakeDaemon):
        def _play(self, conn):
            conn.settimeout(0.05)
            self._recv_frame(conn)
            whole = fd.converse(fd.PROMPT)
            for piece in (whole[:2], whole[2:7], whole[7:]):
                conn.sendall(piece)
                self._stop.wait(0.05)
            self._recv_frame(conn)
            whole = fd.verdict(fd.SUCCESS)
            for piece in (whole[:4], whole[4:]):
                conn.sendall(piece)
                self._stop.wait(0.05)

    confdir = make_confdir(tmp_path, ["socket=" + sock])
    with Dribbling(sock, []) as d:
        result, messages, _, _ = run_driver(confdir, "--answer", CODE)
    assert not d.errors
    assert result == "PAM_SUCCESS"
    assert messages == ["PROMPT_ECHO_OFF: Verification code: "]


FREE_WATCH_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* free() that reports a block still holding $MFG_WATCH when it is freed. */
static void (*real_free)(void *);
__attribute__((constructor)) static void init(void) { real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free"); }
void free(void *p) {
    if (real_free == NULL) return; /* during dlsym itself: leak, never recurse */
    const char *watch = getenv("MFG_WATCH");
    if (p != NULL && watch != NULL && *watch != '\0' && memmem(p, malloc_usable_size(p), watch, strlen(watch)) != NULL)
        write(2, "WATCHED TEXT LEFT IN FREED MEMORY\n", 34);
    real_free(p);
}
"""


@pytest.mark.parametrize("watched", ["answer", "shown text"])
def test_nothing_the_login_carried_is_left_in_freed_memory(tmp_path, sock, watched):
    """The shim wipes what it wrote into its buffers (not the whole 128 KiB any more): the user's
    answer and the daemon's texts (recovery codes are shown this way) must be gone from every
    block the login frees. A free() hook (LD_PRELOAD) scans each freed block."""
    source = tmp_path / "free_watch.c"
    source.write_text(FREE_WATCH_C)
    hook = tmp_path / "free_watch.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(hook), str(source), "-ldl"], check=True)
    shown = "recovery k7m2-p9qx-w4rt"
    steps = [fd.RECV, fd.send(fd.converse((fd.TEXT_INFO, shown), fd.PROMPT)), fd.RECV,
             fd.send(fd.verdict(fd.SUCCESS))]
    confdir = make_confdir(tmp_path, ["socket=" + sock])
    env = dict(os.environ, LD_PRELOAD=str(hook), MFG_WATCH=CODE if watched == "answer" else shown)
    with fd.FakeDaemon(sock, steps) as d:
        p = subprocess.run([DRIVER, confdir, SERVICE, USER, "--answer", CODE], capture_output=True,
                           text=True, timeout=30, env=env)
    assert not d.errors
    assert "RESULT: PAM_SUCCESS" in p.stdout, p.stdout + p.stderr
    assert "WATCHED TEXT LEFT" not in p.stderr


@pytest.mark.parametrize("failmode,expected", FAILMODES)
def test_text_garbage(tmp_path, sock, failmode, expected):
    steps = [fd.RECV, fd.send(b"HTTP/1.1 400 Bad Request\r\n\r\n"), fd.CLOSE]
    assert login(tmp_path, sock, steps, failmode=failmode)[0] == expected


@pytest.mark.parametrize("failmode,expected", FAILMODES)
def test_too_many_rounds(tmp_path, sock, failmode, expected):
    answers = [a for _ in range(9) for a in ("--answer", CODE)]
    result, messages, d = login(tmp_path, sock, fd.BEHAVIOURS["too_many_rounds"], *answers,
                                failmode=failmode)
    assert result == expected
    assert len(messages) == 8  # the ninth round is refused before it is shown
    assert len(d.frames("REPLY")) == 8


def test_eight_rounds_are_allowed(tmp_path, sock):
    answers = [a for _ in range(8) for a in ("--answer", CODE)]
    steps = fd.script_verdict(fd.SUCCESS, fd.PROMPT, rounds=8)
    result, messages, d = login(tmp_path, sock, steps, *answers)
    assert result == "PAM_SUCCESS"
    assert len(d.frames("REPLY")) == 8


def raw_converse(body):
    return [fd.RECV, fd.send(fd.frame(bytes([fd.CONVERSE]) + body)), fd.RECV,
            fd.send(fd.verdict(fd.SUCCESS))]


MALFORMED = {
    "count_zero": bytes([0]),
    "count_nine": bytes([9]) + (bytes([fd.TEXT_INFO]) + fd.enc_str("x")) * 9,
    "unknown_style": bytes([1, 7]) + fd.enc_str("x"),
    "prompt_not_last": bytes([2, fd.ECHO_OFF]) + fd.enc_str("a") + bytes([fd.TEXT_INFO])
    + fd.enc_str("b"),
    "two_prompts": bytes([2, fd.ECHO_OFF]) + fd.enc_str("a") + bytes([fd.ECHO_ON])
    + fd.enc_str("b"),
    "nul_in_text": bytes([1, fd.TEXT_INFO]) + fd.enc_str(b"a\0b"),
    "str_past_end": bytes([1, fd.TEXT_INFO]) + struct.pack(">H", 10) + b"abc",
    "trailing": bytes([1, fd.TEXT_INFO]) + fd.enc_str("x") + b"!",
}


@pytest.mark.parametrize("failmode,expected", FAILMODES)
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_converse(tmp_path, sock, case, failmode, expected):
    result, messages, d = login(tmp_path, sock, raw_converse(MALFORMED[case]), "--answer", CODE,
                                failmode=failmode)
    assert result == expected
    assert messages == []
    assert d.frames("REPLY") == []


@pytest.mark.parametrize("body", [b"\x82\x00", b"\x82\x00" + fd.enc_str("r") + b"x",
                                  b"\x9f\x00\x01" + fd.enc_str("error frame in a login")])
def test_malformed_verdict(tmp_path, sock, body):
    steps = [fd.RECV, fd.send(fd.frame(body)), fd.CLOSE]
    assert login(tmp_path, sock, steps)[0] == UNAVAIL


# ---- the daemon decides -------------------------------------------------------

def test_code_prompt_then_success(tmp_path, sock):
    steps = fd.script_verdict(fd.SUCCESS, (fd.TEXT_INFO, "Scan the QR code"), fd.PROMPT)
    result, messages, d = login(tmp_path, sock, steps, "--rhost", "192.0.2.7", "--answer", CODE)
    assert result == "PAM_SUCCESS"
    assert messages == ["TEXT_INFO: Scan the QR code", "PROMPT_ECHO_OFF: Verification code: "]
    begin, rep = d.received
    assert begin == {"tag": "LOGIN_BEGIN", "version": 1, "user": USER, "service": SERVICE,
                     "rhost": "192.0.2.7", "tty": "", "ruser": "", "flags": fd.FLAG_REAL_UID,
                     "real_uid": os.getuid()}
    assert rep == {"tag": "REPLY", "answer": CODE}


def test_echo_on_prompt_and_error_msg(tmp_path, sock):
    steps = fd.script_verdict(fd.SUCCESS, (fd.ERROR_MSG, "Code expired"),
                              (fd.ECHO_ON, "Recovery code: "))
    result, messages, d = login(tmp_path, sock, steps, "--answer", "abcd-efgh")
    assert result == "PAM_SUCCESS"
    assert messages == ["ERROR_MSG: Code expired", "PROMPT_ECHO_ON: Recovery code: "]
    assert d.frames("REPLY") == [{"tag": "REPLY", "answer": "abcd-efgh"}]


def test_verdict_without_conversation(tmp_path, sock):
    result, messages, d = login(tmp_path, sock, fd.script_verdict(fd.SUCCESS))
    assert result == "PAM_SUCCESS" and messages == []
    assert [f["tag"] for f in d.received] == ["LOGIN_BEGIN"]


@pytest.mark.parametrize("failmode", ["secure", "safe"])
@pytest.mark.parametrize("verdict,expected", [(fd.DENIED, "PAM_AUTH_ERR"),
                                              (fd.IGNORE, "PAM_IGNORE"),
                                              (fd.LOCKED, "PAM_MAXTRIES"),
                                              (fd.UNAVAILABLE, UNAVAIL),
                                              (fd.BUSY, UNAVAIL)])
def test_verdict_table(tmp_path, sock, verdict, expected, failmode):
    steps = fd.script_verdict(verdict, fd.PROMPT)
    result, _, _ = login(tmp_path, sock, steps, "--answer", "000000", failmode=failmode)
    assert result == expected  # UNAVAILABLE stays UNAVAIL even with failmode=safe


def test_info_only_round_sends_empty_reply(tmp_path, sock):
    steps = fd.script_verdict(fd.DENIED, (fd.TEXT_INFO, "MFA is required here"))
    result, messages, d = login(tmp_path, sock, steps)
    assert result == "PAM_AUTH_ERR"
    assert messages == ["TEXT_INFO: MFA is required here"]
    assert d.frames("REPLY") == [{"tag": "REPLY", "answer": ""}]


def test_silent_drops_info_but_prompts(tmp_path, sock):
    steps = fd.script_verdict(fd.SUCCESS, (fd.TEXT_INFO, "Scan the QR code"),
                              (fd.ERROR_MSG, "Last code failed"), fd.PROMPT)
    result, messages, d = login(tmp_path, sock, steps, "--silent", "--answer", CODE)
    assert result == "PAM_SUCCESS"
    assert messages == ["PROMPT_ECHO_OFF: Verification code: "]
    assert d.frames("LOGIN_BEGIN")[0]["flags"] == 1 | fd.FLAG_REAL_UID
    assert d.frames("REPLY") == [{"tag": "REPLY", "answer": CODE}]


def test_silent_info_only_round_skips_conversation(tmp_path, sock):
    # No --answer: were the conversation called at all, the driver would print the text.
    steps = fd.script_verdict(fd.IGNORE, (fd.TEXT_INFO, "MFA is off"))
    result, messages, d = login(tmp_path, sock, steps, "--silent")
    assert result == "PAM_IGNORE"
    assert messages == []
    assert d.frames("REPLY") == [{"tag": "REPLY", "answer": ""}]


def test_conversation_failure_cancels(tmp_path, sock):
    steps = [fd.RECV, fd.send(fd.converse(fd.PROMPT)), fd.RECV, fd.CLOSE]
    result, _, d = login(tmp_path, sock, steps)  # no --answer: the driver's conv fails
    assert result == "PAM_CONV_ERR"
    assert [f["tag"] for f in d.received] == ["LOGIN_BEGIN", "CANCEL"]


def test_empty_answer_is_sent_as_empty(tmp_path, sock):
    steps = fd.script_verdict(fd.DENIED, fd.PROMPT)
    result, _, d = login(tmp_path, sock, steps, "--answer", "")
    assert result == "PAM_AUTH_ERR"
    assert d.frames("REPLY") == [{"tag": "REPLY", "answer": ""}]


# ---- module arguments and setcred ---------------------------------------------

@pytest.mark.parametrize("args", [["bogus"], ["timeout=0"], ["timeout=abc"], ["timeout=301"],
                                  ["timeout=-5"], ["timeout="], ["timeout=10s"],
                                  ["failmode=maybe"], ["socket=relative.sock"], ["socket="],
                                  ["socket=/" + "x" * 120], ["debug=1"]])
def test_bad_module_args(tmp_path, sock, args):
    with fd.FakeDaemon(sock, fd.script_verdict(fd.SUCCESS)) as d:
        confdir = make_confdir(tmp_path, ["socket=" + sock, *args])
        assert run_driver(confdir)[0] == "PAM_SERVICE_ERR"
    assert d.received == []  # refused before connecting


def test_good_module_args(tmp_path, sock):
    steps = fd.script_verdict(fd.SUCCESS)
    result, _, _ = login(tmp_path, sock, steps, failmode="safe", timeout=300,
                         extra_args=("debug",))
    assert result == "PAM_SUCCESS"


def test_setcred(tmp_path, sock):
    confdir = make_confdir(tmp_path, ["socket=" + sock, "timeout=2"])
    with fd.FakeDaemon(sock, fd.script_verdict(fd.SUCCESS)):
        _, _, _, lines = run_driver(confdir, "--setcred")
    assert "SETCRED: PAM_SUCCESS" in lines


# ---- fair admission and overload (issue 14) ---------------------------------------

def test_login_begin_reports_the_real_uid_of_a_setuid_process(tmp_path, sock):
    """In a setuid-root program (su, sudo) the real uid is the invoking user's: the module sends
    it, so the daemon can charge the connection to her (here: real uid nobody, effective uid 0)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to set a real uid under an effective uid 0")
    confdir = make_confdir(tmp_path, ["socket=" + sock])
    os.chmod(tmp_path, 0o755)
    with fd.FakeDaemon(sock, fd.script_verdict(fd.SUCCESS)) as d:
        result = run_driver(confdir, wrap=lambda cmd: ["setpriv", "--ruid=65534", "--", *cmd])[0]
    assert result == "PAM_SUCCESS"
    begin = d.frames("LOGIN_BEGIN")[0]
    assert begin["flags"] & fd.FLAG_REAL_UID and begin["real_uid"] == 65534, begin


# ---- SSH_AUTH_INFO_0 (issue 19, trusted_ssh_keys) ----------------------------------------

def test_login_begin_relays_ssh_auth_info_from_the_pam_environment_only(tmp_path, sock):
    """sshd puts SSH_AUTH_INFO_0 into the PAM environment; the module sends it as it is (flag bit 2).
    The same name in the process environment (which whoever runs the program controls) is never
    sent, nor is a value longer than the protocol's bound (the daemon then asks for the code)."""
    confdir = make_confdir(tmp_path, ["socket=" + sock])
    info = "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==\n"
    cases = [
        (["--pam-env", "SSH_AUTH_INFO_0=" + info], None, info),
        (["--pam-env", "SSH_AUTH_INFO_0="], None, ""),  # password-only login: set but empty
        ([], lambda cmd: ["env", "SSH_AUTH_INFO_0=" + info, *cmd], None),
        (["--pam-env", "SSH_AUTH_INFO_0=" + "x" * (fd.C["MFG_MAX_AUTH_INFO"] + 1)], None, None),
        (["--pam-env", "SSH_AUTH_INFO_0=" + "x" * fd.C["MFG_MAX_AUTH_INFO"]], None, "x" * fd.C["MFG_MAX_AUTH_INFO"]),
    ]
    for args, wrap, expected in cases:
        with fd.FakeDaemon(sock, fd.script_verdict(fd.SUCCESS)) as d:
            kwargs = {"wrap": wrap} if wrap else {}
            assert run_driver(confdir, *args, **kwargs)[0] == "PAM_SUCCESS"
        begin = d.frames("LOGIN_BEGIN")[0]
        assert begin.get("ssh_auth_info") == expected, (args, begin.get("ssh_auth_info", "")[:40])
        assert bool(begin["flags"] & fd.FLAG_SSH_AUTH_INFO) == (expected is not None)


@pytest.mark.parametrize("failmode", ["secure", "safe"])
def test_busy_answered_before_the_request_is_read_fails_closed(tmp_path, sock, failmode):
    """A daemon at its caps answers BUSY at accept and closes without reading the request: the
    module must read that verdict (even if its request then fails with EPIPE), and `failmode=safe`
    must not make it PAM_IGNORE (busy is not down)."""
    steps = [fd.send(fd.verdict(fd.BUSY, "busy")), fd.CLOSE]
    for _ in range(5):  # the request may go out before or after the daemon's close
        result, _, _ = login(tmp_path, sock, steps, failmode=failmode)
        assert result == UNAVAIL


# ---- socket squatting (issue 14, finding 10) -----------------------------------------

@pytest.mark.parametrize("failmode", ["secure", "safe"])
@pytest.mark.parametrize("owner,mode", [(0, 0o777), (0, 0o1777), (0, 0o775), (65534, 0o755)],
                         ids=["world-writable", "sticky-tmp-like", "group-writable", "user-owned"])
def test_a_socket_in_a_directory_others_control_is_not_believed(tmp_path, owner, mode, failmode, syslog):
    """A user's fake daemon answering SUCCESS from a directory she can write (or owns) is never
    asked: PAM_AUTHINFO_UNAVAIL whatever the failmode, and one syslog line says why."""
    sink, wrap = syslog
    squat = tmp_path / "squat"
    squat.mkdir()
    os.chown(squat, owner, -1)
    os.chmod(squat, mode)
    path = str(squat / "mfagated.sock")
    confdir = make_confdir(tmp_path, ["socket=" + path, "failmode=" + failmode])
    with fd.FakeDaemon(path, fd.script_verdict(fd.SUCCESS)) as d:
        assert run_driver(confdir, wrap=wrap)[0] == UNAVAIL
    assert d.received == [], "the module talked to the squatter"
    assert sink.wait_for(lambda m: m.startswith("<83>") and "refusing to use " + path in m
                         and "must be owned by root" in m), sink.messages


def test_a_socket_in_a_root_directory_closed_to_others_is_used(tmp_path):
    safe = tmp_path / "run"
    safe.mkdir(mode=0o755)
    path = str(safe / "mfagated.sock")
    assert login(tmp_path, path, fd.script_verdict(fd.SUCCESS))[0] == "PAM_SUCCESS"


# ---- logs (a private /dev/log in a mount namespace) -----------------------------

class SyslogSink:
    """A datagram socket standing in for /dev/log; collects messages in a thread."""

    def __init__(self, path):
        self.path = path
        self.messages = []
        self._s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._s.bind(path)
        self._s.settimeout(0.05)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.messages.append(self._s.recv(65536).decode("utf-8", "replace"))
            except socket.timeout:
                continue

    def wait_for(self, predicate, timeout=3.0):
        """True once a collected message satisfies predicate (the reader thread may lag)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(predicate(m) for m in list(self.messages)):
                return True
            time.sleep(0.02)
        return False

    def close(self):
        self._stop.set()
        self._t.join(timeout=5)
        self._s.close()


@pytest.fixture
def syslog(tmp_path):
    """Yields (sink, wrap): wrap(cmd) runs cmd with /dev/log pointing at sink."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a private /dev/log")
    sink = SyslogSink(str(tmp_path / "log.sock"))
    realdev = tmp_path / "realdev"
    realdev.mkdir()
    # tmpfs over /dev only inside the namespace; keep the few device nodes libc/libpam use.
    script = ('set -e; mount -n --bind /dev "$1"; mount -n -t tmpfs tmpfs /dev; '
              'for n in null zero random urandom; do touch /dev/$n; mount -n --bind "$1/$n" /dev/$n;'
              ' done; ln -s "$2" /dev/log; shift 2; exec "$@"')

    def wrap(cmd):
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                str(realdev), sink.path, *cmd]

    yield sink, wrap
    sink.close()


def test_logs_errors_only_and_never_the_answer(tmp_path, sock, syslog):
    sink, wrap = syslog
    confdir = make_confdir(tmp_path, ["socket=" + sock, "timeout=2"])
    steps = fd.script_verdict(fd.SUCCESS, fd.PROMPT)
    with fd.FakeDaemon(sock, steps):
        assert run_driver(confdir, "--answer", "987654", wrap=wrap)[0] == "PAM_SUCCESS"
    with fd.FakeDaemon(sock, fd.BEHAVIOURS["garbage"]):
        assert run_driver(confdir, "--answer", "987654", wrap=wrap)[0] == UNAVAIL
    assert sink.wait_for(lambda m: "malformed frame" in m), sink.messages
    ours = [m for m in sink.messages if "pam_mfagate" in m]
    assert len(ours) == 1, sink.messages  # the success logged nothing
    assert "malformed frame" in ours[0]
    assert ours[0].startswith("<83>")  # LOG_AUTHPRIV | LOG_ERR
    assert not any("987654" in m for m in sink.messages)


def test_logs_daemon_down(tmp_path, sock, syslog):
    sink, wrap = syslog
    confdir = make_confdir(tmp_path, ["socket=" + sock, "failmode=safe"])
    assert run_driver(confdir, wrap=wrap)[0] == IGNORE
    assert sink.wait_for(lambda m: "cannot connect to " + sock in m), sink.messages


def test_debug_logs_verdict_reason(tmp_path, sock, syslog):
    sink, wrap = syslog
    confdir = make_confdir(tmp_path, ["socket=" + sock, "debug"])
    with fd.FakeDaemon(sock, [fd.RECV, fd.send(fd.verdict(fd.DENIED, "wrong code"))]):
        assert run_driver(confdir, wrap=wrap)[0] == "PAM_AUTH_ERR"
    assert sink.wait_for(lambda m: m.startswith("<87>") and "wrong code" in m), sink.messages


# ---- an unmodified application: pamtester under libpam-wrapper -------------------

def test_pamtester_under_pam_wrapper(tmp_path, sock):
    if shutil.which("pamtester") is None:
        pytest.skip("pamtester not installed")
    confdir = make_confdir(tmp_path, ["socket=" + sock, "timeout=5"])
    env = dict(os.environ, LD_PRELOAD="libpam_wrapper.so", PAM_WRAPPER="1",
               PAM_WRAPPER_SERVICE_DIR=confdir)
    steps = fd.script_verdict(fd.SUCCESS, (fd.TEXT_INFO, "Hello from mfagate"), fd.PROMPT)
    with fd.FakeDaemon(sock, steps) as d:
        p = subprocess.run(["pamtester", "-v", SERVICE, USER, "authenticate"], input=CODE + "\n",
                           capture_output=True, text=True, env=env, timeout=30)
    out = p.stdout + p.stderr
    assert "successfully authenticated" in out, out
    assert "Verification code: " in out
    assert d.frames("REPLY") == [{"tag": "REPLY", "answer": CODE}]


# ---- what an admin's plain `required` line does with those answers ---------------

@pytest.mark.parametrize("failmode,after,expected", [
    ("safe", "auth required pam_permit.so\n", "PAM_SUCCESS"),  # the next module decides
    ("secure", "auth required pam_permit.so\n", UNAVAIL),      # fail closed
    ("safe", "", "PAM_PERM_DENIED"),                           # a stack that only ignores fails
])
def test_required_stack_daemon_down(tmp_path, sock, failmode, after, expected):
    confdir = make_confdir(tmp_path, ["socket=" + sock, "failmode=" + failmode],
                           stack=REQUIRED + after)
    assert run_driver(confdir)[0] == expected


# ---- inputs too big for the protocol come from the client side: refuse, never failmode ----

@pytest.mark.parametrize("failmode", ["secure", "safe"])
def test_overlong_answer_is_refused(tmp_path, sock, failmode):
    steps = [fd.RECV, fd.send(fd.converse(fd.PROMPT)), fd.RECV, fd.CLOSE]
    result, _, d = login(tmp_path, sock, steps, "--answer", "9" * 70000, failmode=failmode)
    assert result == "PAM_AUTH_ERR"
    assert [f["tag"] for f in d.received] == ["LOGIN_BEGIN", "CANCEL"]


@pytest.mark.parametrize("failmode", ["secure", "safe"])
def test_overlong_user_is_refused(tmp_path, sock, failmode):
    confdir = make_confdir(tmp_path, ["socket=" + sock, "failmode=" + failmode])
    with fd.FakeDaemon(sock, fd.script_verdict(fd.SUCCESS)) as d:
        assert run_driver(confdir, user="u" * 70000)[0] == "PAM_AUTH_ERR"
    assert d.received == []
