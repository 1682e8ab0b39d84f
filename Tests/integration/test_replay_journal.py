# SPDX-License-Identifier: Apache-2.0
"""The replay journal (Sources/MFAStore/ReplayJournal.swift) through the real daemon and libpam:
a login is recorded with one small write, flushed in the background (or, outside the journal's
lease, before the reply, shared by the logins answered together), and still no accepted code is
ever accepted again, even after SIGKILL right after (power cuts: test_power_cut.py)."""
from __future__ import annotations

import os
import socket
import subprocess
import signal
import stat
import threading
import time

from mfagate_harness import oathtool_totp


def test_a_login_does_not_rewrite_the_user_file_and_the_journal_is_private(daemon):
    e = daemon.enroll("alice")
    user_file = daemon.state / "users" / "alice"
    before = os.stat(user_file).st_ino
    assert daemon.pam("alice", oathtool_totp(e["secret"])).result == "PAM_SUCCESS"
    assert os.stat(user_file).st_ino == before
    st = os.stat(daemon.state / "journal")
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()


def test_concurrent_successes_then_sigkill_are_all_refused_after_restart(daemon):
    users = [f"gc{i}" for i in range(8)]
    codes = {u: oathtool_totp(daemon.enroll(u)["secret"]) for u in users}
    results: dict[str, str] = {}
    service = daemon.service()  # written once: the threads must not rewrite it under each other

    def login(u: str) -> None:
        results[u] = daemon.pam(u, codes[u], service=service).result

    threads = [threading.Thread(target=login, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {u: "PAM_SUCCESS" for u in users}
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    daemon.start()
    for u in users:
        assert daemon.pam(u, codes[u]).result == "PAM_AUTH_ERR", u
    assert daemon.log().count('reason="replayed code"') == len(users)


def test_a_damaged_journal_header_stops_the_daemon_with_what_to_do(daemon):
    daemon.enroll("alice")
    daemon.stop()
    with open(daemon.state / "journal", "r+b") as f:
        f.write(b"garbage!")
    daemon.start(expect_ready=False)
    assert daemon.proc.wait(timeout=10) != 0
    assert "journal" in daemon.log() and "header is damaged" in daemon.log()


def _logins_at_once(daemon, users: list[str], codes: dict[str, str]) -> dict[str, str]:
    results: dict[str, str] = {}
    service = daemon.service()

    def login(u: str) -> None:
        results[u] = daemon.pam(u, codes[u], service=service).result

    threads = [threading.Thread(target=login, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _idle_connection(daemon) -> socket.socket:
    """An open connection that sends nothing: while it is open, some connection does not wait
    for the journal flush, so the server always flushes on its flush thread (Server.commitJournal)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(daemon.socket)
    return s


def test_flushes_on_the_flush_thread_keep_replays_refused_across_sigkill(daemon):
    users = [f"bg{i}" for i in range(6)]
    codes = {u: oathtool_totp(daemon.enroll(u)["secret"]) for u in users}
    with _idle_connection(daemon):
        assert _logins_at_once(daemon, users, codes) == {u: "PAM_SUCCESS" for u in users}
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    daemon.start()
    for u in users:
        assert daemon.pam(u, codes[u]).result == "PAM_AUTH_ERR", u


def test_no_success_leaves_when_the_flush_thread_fails(daemon_factory, tmp_path):
    """fdatasync fails (an LD_PRELOAD stand-in for a dying disk): once the last flushed lease has
    run out (1 s; the new journal's own marker was flushed with fsync at creation), the logins
    whose codes could not be recorded get no SUCCESS, on the flush thread as inline."""
    preload = tmp_path / "failing_fdatasync.so"
    source = tmp_path / "failing_fdatasync.c"
    source.write_text("#include <errno.h>\nint fdatasync(int fd) { (void)fd; errno = EIO; return -1; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(preload), str(source)], check=True)
    os.chmod(tmp_path, 0o755)
    d = daemon_factory("required", start=False)
    d.wrap = ["env", f"LD_PRELOAD={preload}"]
    d.start()
    users = [f"ff{i}" for i in range(4)]
    codes = {u: oathtool_totp(d.enroll(u)["secret"]) for u in users}
    time.sleep(1.5)  # the lease of the journal's first marker ends; its renewals fail
    assert "could not flush the replay journal" in d.log()
    with _idle_connection(d):
        results = _logins_at_once(d, users, codes)
    assert "PAM_SUCCESS" not in results.values(), results
    assert set(results.values()) == {"PAM_AUTHINFO_UNAVAIL"}, results
    assert "could not record used codes" in d.log() and "Input/output error" in d.log()
    assert d.proc.poll() is None, "the daemon keeps serving"


def test_sigkill_during_background_flushes_never_lets_an_accepted_code_in_twice(daemon):
    """Logins at once (an idle connection held open, so every flush runs on the flush thread) and
    a SIGKILL at a random moment among them: every code a client saw accepted is refused after the
    restart, whatever the kill interrupted (a flush, a held reply, a record being written)."""
    import random
    rng = random.Random()
    accepted_total = 0
    for round_ in range(12):
        users = [f"k{round_}u{i}" for i in range(6)]
        codes = {u: oathtool_totp(daemon.enroll(u)["secret"]) for u in users}
        results: dict[str, str] = {}
        service = daemon.service()

        def login(u: str) -> None:
            results[u] = daemon.pam(u, codes[u], service=service).result

        with _idle_connection(daemon):
            threads = [threading.Thread(target=login, args=(u,)) for u in users]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0, 0.005))
            assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
            for t in threads:
                t.join()
        daemon.start()
        accepted = [u for u in users if results[u] == "PAM_SUCCESS"]
        accepted_total += len(accepted)
        for u in accepted:
            assert daemon.pam(u, codes[u]).result == "PAM_AUTH_ERR", (round_, u)
    print(f"accepted before the kills: {accepted_total} of {12 * 6}")
    assert accepted_total > 0, "no login finished before a kill: the test proved nothing"
