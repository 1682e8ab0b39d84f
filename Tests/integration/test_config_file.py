# SPDX-License-Identifier: Apache-2.0
"""The config file is read as strictly as OpenDoas reads doas.conf (issue 17): every error reported
with its file:line before refusing, a file that is a symlink, not root's, or writable by group or
others refused as a whole (at start, by --check-config and at reload), and the daemon refuses to run
as root unless told so with --allow-root."""
import os
import re
import signal
import subprocess
import time

import pytest

from mfagate_harness import MFAGATED


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([str(MFAGATED), *args], capture_output=True, text=True, timeout=timeout)


def test_every_error_of_the_file_is_reported_with_its_line(daemon_factory):
    d = daemon_factory(start=False)
    good = d.config.read_text()
    d.config.write_text(good + "mode = sometimes\nwindow = 2\nsokcet = /run/x.sock\nwindow = 3\n"
                               "require_users = alice\nexempt_users = alice\n")
    first = len(good.splitlines()) + 1
    # `mode` is already set by the harness's first line: a repeat, then a bad value would be two
    # errors of one line; the repeat is the one reported.
    expected = [first, first + 2, first + 3, first + 5]
    for args in (["--check-config"], ["--allow-root"]):
        r = run("--config", str(d.config), *args)
        assert r.returncode == 2, r
        lines = [l for l in r.stderr.splitlines() if l.startswith(f"mfagated: {d.config}:")]
        assert [int(re.match(rf"mfagated: {re.escape(str(d.config))}:(\d+): ", l).group(1)) for l in lines] == expected, r.stderr
        assert "unknown key `sokcet`" in lines[1] and "already set on line" in lines[2]
        assert 'user "alice" is listed in both' in lines[3]
    assert not os.path.exists(d.socket), "nothing started"


@pytest.mark.parametrize("damage,sentence", [
    ("symlink", "is a symbolic link; name the real file"),
    ("owner", "is owned by uid 65534, not by root; chown it"),
    ("group-writable", "is writable by group or others (mode 664); chmod go-w it"),
    ("world-writable", "is writable by group or others (mode 646); chmod go-w it"),
])
def test_a_config_others_could_change_is_refused(daemon_factory, damage, sentence):
    d = daemon_factory(start=False)
    path = d.config
    if damage == "symlink":
        real = d.dir / "real.conf"
        os.rename(d.config, real)
        os.symlink(real, d.config)
    elif damage == "owner":
        os.chown(path, 65534, 65534)
    else:
        os.chmod(path, 0o664 if damage == "group-writable" else 0o646)
    expected = f"mfagated: {path}: the file {sentence}"
    r = run("--config", str(path), "--check-config")
    assert r.returncode == 2 and r.stderr.strip() == expected, r.stderr
    r = run("--config", str(path), "--allow-root")
    assert r.returncode == 2 and r.stderr.strip() == expected, r.stderr
    assert not os.path.exists(d.socket)


def test_root_owned_files_not_writable_by_others_are_accepted(daemon_factory):
    d = daemon_factory(start=False)
    for mode in (0o644, 0o640, 0o600, 0o444):
        os.chmod(d.config, mode)
        r = run("--config", str(d.config), "--check-config")
        assert r.returncode == 0 and "OK" in r.stdout, (oct(mode), r.stderr)


def test_a_reload_of_a_config_others_can_write_keeps_the_old_one(daemon_factory):
    d = daemon_factory("off")
    assert d.pam("alice").result == "PAM_IGNORE"
    d.write_config("required")  # as a local user who could write the file would
    os.chmod(d.config, 0o666)
    os.kill(d.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "reload refused" not in d.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"{d.config}: the file is writable by group or others (mode 666); chmod go-w it" in d.log(), d.log()
    assert d.pam("alice").result == "PAM_IGNORE", "the old (off) policy stays"
    os.chmod(d.config, 0o644)
    os.kill(d.proc.pid, signal.SIGHUP)
    while "configuration reloaded" not in d.log() and time.monotonic() < deadline + 5:
        time.sleep(0.05)
    assert d.pam("alice").result == "PAM_AUTH_ERR", "the same file, made safe, is read"


def test_the_daemon_refuses_to_run_as_root_unless_told(daemon_factory):
    d = daemon_factory(start=False)
    r = run("--config", str(d.config))
    assert r.returncode == 1, r
    assert "refusing to run as root" in r.stderr and "--allow-root" in r.stderr, r.stderr
    assert not os.path.exists(d.socket) and not os.listdir(d.state), "refused before touching anything"
    d.start()  # the harness passes --allow-root to a daemon it runs as root
    assert "running as root (--allow-root)" in d.log()
