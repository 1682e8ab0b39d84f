# SPDX-License-Identifier: Apache-2.0
"""New recovery codes (issue 19, part 7) through the real CLI and daemon: `--json` on every verb that
shows new codes, and a user whose only method is email or SMS regenerating with a code sent there
(Debian's exim4 delivering to a local mailbox, mta.py; the SMS gateway script of test_delivery.py)."""
from __future__ import annotations

import json
import re
import subprocess

import hygiene
import mta
import pytest
from mfagate_harness import MFAGATE, as_account, oathtool_totp, wrong_code
from test_delivery import PHONE, Login, setup  # noqa: F401  (the fixture: daemon + exim + SMS gateway)

pytestmark = pytest.mark.skipif(not mta.available(), reason="exim4 (exim4-daemon-light) is not installed")

NOBODY = "nobody@example.org"


def codes_of(out: str) -> list[str]:
    data = json.loads(out)
    assert list(data)[-1] == "recovery_codes" and len(data["recovery_codes"]) == 10, data
    hygiene.register("recovery code", *data["recovery_codes"])
    return data["recovery_codes"]


def enroll_by_email(setup) -> list[str]:
    d = setup.d
    d.cli("method", "add", "email", NOBODY, user="nobody", check=True)
    r = d.cli("method", "confirm", "email", setup.mail_code(NOBODY), "--json", user="nobody", check=True)
    data = json.loads(r.stdout)
    assert (data["user"], data["method"]) == ("nobody", "email"), data
    return codes_of(r.stdout)


def test_regenerate_json_like_enroll_json(setup):
    d = setup.d
    e = d.enroll("nobody")
    r = d.cli("recovery-codes", "--regenerate", "--user", "nobody", "--json", check=True)
    assert list(json.loads(r.stdout)) == ["user", "recovery_codes"] and json.loads(r.stdout)["user"] == "nobody"
    codes_of(r.stdout)
    # Self-service with a code from the app: the same object, nothing else on standard output.
    r = d.cli("recovery-codes", "--regenerate", "--json", "--code", oathtool_totp(e["secret"]), user="nobody")
    assert r.returncode == 0, r
    fresh = codes_of(r.stdout)
    # The set before is gone; the new one works.
    r = d.cli("disable", "--code", e["recovery_codes"][0], user="nobody")
    assert r.returncode == 1 and "not a current code" in r.stderr, r
    d.cli("disable", "--code", fresh[0], user="nobody", check=True)


def test_an_email_only_user_regenerates_with_a_mailed_code(setup):
    d = setup.d
    old = enroll_by_email(setup)
    # No app, no terminal: a code is mailed, and the command says how to go on; nothing changed yet.
    r = d.cli("recovery-codes", "--regenerate", user="nobody")
    assert r.returncode == 1 and "A code was sent to n***@example.org" in r.stdout, r
    assert "run again with --code" in r.stderr
    code = setup.mail_code(NOBODY, count=2)
    mail = setup.mail.wait_for(NOBODY, 2, codes_only=True)[-1]
    assert "to make new recovery codes" in mail, mail
    # A recovery code is no proof for new recovery codes; a wrong code costs a try.
    r = d.cli("recovery-codes", "--regenerate", "--code", old[0], user="nobody")
    assert r.returncode == 1 and "not the code sent to n***@example.org; 2 tries left" in r.stderr, r
    r = d.cli("recovery-codes", "--regenerate", "--code", wrong_code(code), user="nobody")
    assert r.returncode == 1 and "1 tries left" in r.stderr, r
    r = d.cli("recovery-codes", "--regenerate", "--code", code, "--json", user="nobody")
    assert r.returncode == 0, r
    fresh = codes_of(r.stdout)
    # The code is spent; the old set is dead, the new one logs in.
    r = d.cli("recovery-codes", "--regenerate", "--code", code, user="nobody")
    assert r.returncode == 1 and "is waiting" in r.stderr, r
    login = Login(d, "nobody")
    assert login.prompt().startswith("Code sent to")
    login.answer(old[1])
    assert login.prompt().startswith("Code sent to"), login.messages()
    login.answer(fresh[0])
    assert login.result().result == "PAM_SUCCESS"


def test_an_email_only_user_regenerates_interactively(setup):
    d = setup.d
    enroll_by_email(setup)
    cmd = as_account("nobody", [str(d.readable_copy(MFAGATE)), "--socket", d.socket, "recovery-codes", "--regenerate"])
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert "A code was sent to n***@example.org" in first, first
        code = setup.mail_code(NOBODY, count=2)
        out, err = proc.communicate(code + "\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    hygiene.capture("mfagate recovery-codes stderr", err)
    assert proc.returncode == 0, (out, err)
    assert "New recovery codes for nobody" in out
    hygiene.register("recovery code", *re.findall(r"(?m)^  (\S{4}-\S{4}-\S{4})$", out))


def test_an_sms_only_user_regenerates_with_a_texted_code(setup):
    d = setup.d
    r = d.cli("method", "add", "sms", PHONE, "--user", "nobody")
    assert r.returncode == 0, r
    r = d.cli("method", "confirm", "sms", setup.sms_code(1), "--user", "nobody", "--json", check=True)
    codes_of(r.stdout)
    r = d.cli("recovery-codes", "--regenerate", user="nobody")
    assert r.returncode == 1 and "A code was sent to" in r.stdout, r
    r = d.cli("recovery-codes", "--regenerate", "--json", "--code", setup.sms_code(2), user="nobody")
    assert r.returncode == 0, r
    codes_of(r.stdout)


def test_another_user_cannot_make_codes_be_sent_for_someone(setup):
    d = setup.d
    enroll_by_email(setup)
    # `resend` asks the daemon for a code straight away (the CLI asks no status first).
    r = d.cli("recovery-codes", "--regenerate", "--user", "nobody", "--code", "resend", user="alice")
    assert "only manage your own" in r.stderr, r
    assert setup.codes_sent(NOBODY) == 1


def test_self_service_enroll_json_keeps_standard_output_for_the_object(setup):
    d = setup.d
    cmd = as_account("nobody", [str(d.readable_copy(MFAGATE)), "--socket", d.socket, "enroll", "--json", "--no-qr"])
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        secret = None
        while True:
            line = proc.stderr.readline()
            assert line, "no key shown"
            m = re.search(r"by hand \(time-based, 6 digits\): ([A-Z2-7 ]+)$", line.rstrip("\n"))
            if m:
                secret = m.group(1).replace(" ", "")
            if line.startswith("This enrollment becomes active"):
                break
        hygiene.register("TOTP secret", secret)
        out, err = proc.communicate(oathtool_totp(secret) + "\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    data = json.loads(out)
    assert list(data) == ["user", "secret", "otpauth_uri", "recovery_codes"] and data["secret"] == secret, data
    codes_of(out)
