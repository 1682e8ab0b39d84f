# SPDX-License-Identifier: Apache-2.0
"""A misbehaving (or well-behaved) mfagated peer for testing the PAM shim.

Not a mock of PAM: the shim runs in real libpam (pam_driver, pamtester) and talks to this
process over a real Unix socket. The daemon side follows a script of steps, so a test can
make it answer correctly, lie, stall or hang up at any point. Frame format: docs/protocol.md.

    with FakeDaemon(path, script_verdict(0, prompts=...)) as d:
        ...run the driver...
    d.received  # client frames, decoded, in order
"""

import os
import re
import socket
import struct
import threading
from pathlib import Path

# ---- protocol constants (docs/protocol.md) ----
# Read from the module's own header, not written a third time (ProtocolConformanceTests holds the
# header and the Swift side together).
_HEADER = Path(__file__).resolve().parents[2] / "Sources/pam_mfagate/mfg_frame.h"
C = {m.group(1): int(m.group(2), 0)
     for m in re.finditer(r"\b(MFG_[A-Z_]+)(?:\s+|\s*=\s*)(0x[0-9A-Fa-f]+|\d+)\b", _HEADER.read_text())}
VERSION = C["MFG_PROTOCOL_VERSION"]
MAX_PAYLOAD = C["MFG_MAX_PAYLOAD"]
LOGIN_BEGIN, REPLY, CANCEL = C["MFG_TAG_LOGIN_BEGIN"], C["MFG_TAG_REPLY"], C["MFG_TAG_CANCEL"]
CONVERSE, VERDICT, ERROR = C["MFG_TAG_CONVERSE"], C["MFG_TAG_VERDICT"], C["MFG_TAG_ERROR"]
ECHO_OFF, ECHO_ON, ERROR_MSG, TEXT_INFO = (C[f"MFG_STYLE_{s}"] for s in ("PROMPT_ECHO_OFF", "PROMPT_ECHO_ON", "ERROR_MSG", "TEXT_INFO"))
SUCCESS, DENIED, IGNORE, LOCKED, UNAVAILABLE, BUSY = (
    C[f"MFG_RESULT_{r}"] for r in ("SUCCESS", "DENIED", "IGNORE", "LOCKED", "UNAVAILABLE", "BUSY"))
FLAG_REAL_UID = C["MFG_LOGIN_FLAG_REAL_UID"]  # LOGIN_BEGIN flags bit 1: a u32 real uid follows
FLAG_SSH_AUTH_INFO = C["MFG_LOGIN_FLAG_SSH_AUTH_INFO"]  # bit 2: a str follows, sshd's SSH_AUTH_INFO_0


# ---- encoding ----
def enc_str(s):
    b = s.encode() if isinstance(s, str) else bytes(s)
    return struct.pack(">H", len(b)) + b


def frame(payload):
    """Wraps a payload in its 4-byte big-endian length header."""
    return struct.pack(">I", len(payload)) + payload


def converse(*messages):
    """messages: (style, text) pairs."""
    body = bytes([CONVERSE, len(messages)])
    for style, text in messages:
        body += bytes([style]) + enc_str(text)
    return frame(body)


def verdict(result, reason="test"):
    return frame(bytes([VERDICT, result]) + enc_str(reason))


def error(code, message="test"):
    """An ERROR answer (u16 code, str message) as the daemon sends to the CLI."""
    return frame(bytes([ERROR]) + struct.pack(">H", code) + enc_str(message))


def login_begin(user, service, rhost="", tty="", ruser="", flags=0):
    return frame(bytes([LOGIN_BEGIN, VERSION]) + b"".join(
        enc_str(s) for s in (user, service, rhost, tty, ruser)) + bytes([flags]))


def reply(answer):
    return frame(bytes([REPLY]) + enc_str(answer))


# ---- decoding of what the shim sends ----
class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def u8(self):
        if self.pos >= len(self.data):
            raise ValueError("short")
        self.pos += 1
        return self.data[self.pos - 1]

    def str(self):
        if self.pos + 2 > len(self.data):
            raise ValueError("short")
        (n,) = struct.unpack_from(">H", self.data, self.pos)
        self.pos += 2
        if self.pos + n > len(self.data):
            raise ValueError("short")
        s = self.data[self.pos:self.pos + n]
        self.pos += n
        if b"\0" in s:
            raise ValueError("NUL in str")
        return s.decode("utf-8", "replace")

    def u32(self):
        if self.pos + 4 > len(self.data):
            raise ValueError("short")
        (v,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        return v

    def end(self):
        if self.pos != len(self.data):
            raise ValueError("trailing bytes")


def decode_client(payload):
    """Decodes a client payload into a dict with 'tag' and its fields; raises ValueError."""
    r = _Reader(payload)
    tag = r.u8()
    if tag == LOGIN_BEGIN:
        out = {"tag": "LOGIN_BEGIN", "version": r.u8(), "user": r.str(), "service": r.str(),
               "rhost": r.str(), "tty": r.str(), "ruser": r.str(), "flags": r.u8()}
        if out["flags"] & FLAG_REAL_UID:
            out["real_uid"] = r.u32()
        if out["flags"] & FLAG_SSH_AUTH_INFO:
            out["ssh_auth_info"] = r.str()
    elif tag == REPLY:
        out = {"tag": "REPLY", "answer": r.str()}
    elif tag == CANCEL:
        out = {"tag": "CANCEL"}
    else:
        raise ValueError("unknown tag %#x" % tag)
    r.end()
    return out


# ---- script steps ----
RECV = ("recv",)    # read one client frame and record it
HANG = ("hang",)    # say nothing until the test stops the daemon
CLOSE = ("close",)  # close the connection now
RECV_ANY = ("recv_any",)  # read one frame of any tag (a CLI request) and record its raw payload


def send(data):
    return ("send", bytes(data))


def script_verdict(result, *messages, rounds=1):
    """LOGIN_BEGIN, then `rounds` CONVERSE rounds of `messages` (if any), then VERDICT."""
    steps = [RECV]
    if messages:
        steps += [send(converse(*messages)), RECV] * rounds
    return steps + [send(verdict(result))]


PROMPT = (ECHO_OFF, "Verification code: ")

BEHAVIOURS = {
    "close": [CLOSE],                                  # accept, then hang up at once
    "hang": [RECV, HANG],                              # read the request, never answer
    "garbage": [RECV, send(b"\x00\x00\x00\x05\xde\xad\xbe\xef\x00"), HANG],
    "oversized": [RECV, send(struct.pack(">I", MAX_PAYLOAD + 1)), HANG],
    "zero_length": [RECV, send(struct.pack(">I", 0)), HANG],
    "truncated": [RECV, send(verdict(SUCCESS)[:-3]), CLOSE],
    "early_close": [RECV, CLOSE],
    "unknown_verdict": script_verdict(6),
    "too_many_rounds": [RECV] + [send(converse(PROMPT)), RECV] * 9 + [send(verdict(SUCCESS))],
}


class FakeDaemon:
    """Listens on a Unix socket in a thread and plays `steps` to each connection in turn."""

    def __init__(self, path, steps):
        self.path = str(path)
        self.steps = list(steps)
        self.received = []  # decoded client frames, or {"tag": "INVALID", "error": ...}
        self.errors = []    # exceptions seen by the thread (tests may assert it is empty)
        self._stop = threading.Event()
        self._sock = None
        self._thread = None

    def start(self):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(8)
        self._sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            assert not self._thread.is_alive(), "fake daemon thread did not stop"
        if self._sock is not None:
            self._sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def frames(self, tag):
        return [f for f in self.received if f["tag"] == tag]

    # -- thread side --
    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                try:
                    self._play(conn)
                except Exception as e:  # recorded for the test, never raised in the thread
                    self.errors.append(e)

    def _play(self, conn):
        conn.settimeout(0.05)
        for step in self.steps:
            kind = step[0]
            if kind in ("recv", "recv_any"):
                if not self._recv_frame(conn, any_tag=kind == "recv_any"):
                    return
            elif kind == "send":
                try:
                    conn.sendall(step[1])
                except (BrokenPipeError, ConnectionResetError):
                    return  # the shim hung up first (it gave up or cancelled): not our error
            elif kind == "hang":
                self._stop.wait()
                return
            elif kind == "close":
                return
        # Script done: like the daemon, close after the verdict.

    def _recv_exact(self, conn, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = conn.recv(n - len(buf))
            except socket.timeout:
                # Stop only when nothing is pending: what the shim sent before it finished (a
                # CANCEL, say) must still be read and recorded after the test asks us to stop.
                if self._stop.is_set():
                    return None
                continue
            if not chunk:
                return None
            buf += chunk
        return buf

    def _recv_frame(self, conn, any_tag=False):
        head = self._recv_exact(conn, 4)
        if head is None:
            return False
        (n,) = struct.unpack(">I", head)
        if n == 0 or n > MAX_PAYLOAD:
            self.received.append({"tag": "INVALID", "error": "length %d" % n})
            return False
        payload = self._recv_exact(conn, n)
        if payload is None:
            return False
        if any_tag:
            self.received.append({"tag": "RAW", "payload": payload})
            return True
        try:
            self.received.append(decode_client(payload))
        except ValueError as e:
            self.received.append({"tag": "INVALID", "error": str(e)})
            return False
        return True
