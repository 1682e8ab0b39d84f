# SPDX-License-Identifier: Apache-2.0
"""Runs last (pytest takes files in name order): every secret, TOTP code, wrong code and recovery
code the suite used, searched for in every daemon log, CLI stderr and PAM conversation the suite
captured (see hygiene.py). Zero hits, or the test names where and what kind of value leaked."""
import os
import re
import time

import pytest

import hygiene
from mfagate_harness import Daemon, oathtool_totp, wrong_code


def test_a_planted_secret_is_found():
    """The search itself works: a capture holding a code, a secret and a recovery code (dashed or not)
    is reported, and a pid that equals a code is not."""
    saved = (dict(hygiene._values), list(hygiene._captures))
    try:
        hygiene._values.clear(); hygiene._captures.clear()
        hygiene.register("TOTP code", "314159")
        hygiene.register("TOTP secret", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
        hygiene.register("recovery code", "abcd-efgh-jkmn")
        hygiene.capture("clean", 'info login peer="uid=0 pid=314159" result=success\nELAPSED_MS: 314159\n')
        assert hygiene.hits() == []
        hygiene.capture("leaky", "typed 314159 secret JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP code ABCDEFGHJKMN")
        assert hygiene.hits() == ["leaky: a TOTP code", "leaky: a TOTP secret", "leaky: a recovery code"]
    finally:
        hygiene._values.clear(); hygiene._values.update(saved[0])
        hygiene._captures.clear(); hygiene._captures.extend(saved[1])


def test_no_secret_code_or_recovery_code_in_any_log_or_stderr():
    values, captures, size = hygiene.counts()
    if captures == 0:
        pytest.skip("no capture: run the whole suite (this test checks what the others produced)")
    print(f"searched {captures} captures ({size} bytes) for {values} secrets and codes")
    assert hygiene.hits() == []


def test_delivered_codes_are_among_the_values_searched(request):
    """Codes sent by email or SMS (test_delivery.py registers each one it reads from a mailbox or the
    gateway script) are searched for like every other code: in the daemon's log, exim's log, the
    relay's stderr and what PAM showed. The daemon logs each delivery's outcome, never the code."""
    import mta
    # `make stress` runs this file with test_robustness.py only: no code was sent in that run.
    if not any(item.nodeid.split("::")[0].endswith("test_delivery.py") for item in request.session.items):
        pytest.skip("test_delivery.py is not part of this run")
    values, captures, _ = hygiene.counts()
    if captures == 0 or not mta.available():
        pytest.skip("run the whole suite with exim4 installed")
    with hygiene._lock:
        kinds = set(hygiene._values.values())
        texts = [t for w, t in hygiene._captures if w.startswith("daemon log")]
    assert "delivered code" in kinds
    assert any("delivery method=email purpose=login result=sent" in t for t in texts)
    assert hygiene.hits() == []


def test_the_daemon_is_not_dumpable(tmp_path):
    """PR_SET_DUMPABLE 0: no core file, no ptrace by its own uid. The kernel shows it from outside by
    making /proc/PID/* owned by root even though the daemon runs as nobody."""
    d = Daemon(run_as="nobody")
    try:
        d.start()
        pid = d.proc.pid
        assert os.stat(f"/proc/{pid}/status").st_uid == 0, "a dumpable process owns its /proc entries"
        assert re.search(r"^Uid:\s+65534\s", open(f"/proc/{pid}/status").read(), re.M), "the daemon runs as nobody"
        # The control: an ordinary process of the same uid owns its /proc entries.
        import subprocess
        from mfagate_harness import as_account
        sleeper = subprocess.Popen(as_account("nobody", ["sleep", "30"]))
        try:
            deadline = time.monotonic() + 5
            while os.stat(f"/proc/{sleeper.pid}/status").st_uid != 65534 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert os.stat(f"/proc/{sleeper.pid}/status").st_uid == 65534
        finally:
            sleeper.kill(); sleeper.wait()
    finally:
        d.close()
