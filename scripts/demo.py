#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""make demo: a real SSH login checked by mfagated through pam_mfagate.so, in a sandbox.

Starts mfagated (as the unprivileged user `nobody`) in a temp dir, enrolls a demo user, starts a
real sshd on 127.0.0.1 in a private mount namespace whose /etc/pam.d, /etc/passwd and /etc/shadow
are temp copies (pam_unix + pam_mfagate), and logs in with the real ssh client, answering the
password and a code computed by oathtool. Leaves no process, user or file behind. Run by
scripts/demo.sh through Tests/integration/with_test_accounts.py, so the demo user is an account the
daemon (outside sshd's namespace) knows."""
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "integration"))

from mfagate_harness import SHIM, Daemon, oathtool_totp, wrong_code  # noqa: E402
from sshd_sandbox import SshdSandbox, ssh_login  # noqa: E402

USER, PASSWORD = "mfademo", "demo-password-1"
failures = 0


def step(text):
    print(f"\n==> {text}", flush=True)


def expect(what, ok, detail=""):
    global failures
    print(f"    {'OK  ' if ok else 'FAIL'} {what}" + (f"  ({detail})" if detail else ""), flush=True)
    if not ok:
        failures += 1


def login(port, code, label):
    r = ssh_login(port, USER, [(r"[Pp]assword:", PASSWORD), (r"Verification code:", code)])
    shown = " -> ".join(p.split(") ", 1)[-1] for p in r.prompts)
    print(f"    ssh {USER}@127.0.0.1 answered: {shown or '(no prompt)'}; {label}: "
          f"{'logged in, remote command printed LOGIN-OK' if r.ok else 'refused (' + r.reason + ')'}")
    return r.ok


def main():
    work = Path(tempfile.mkdtemp(prefix="mfagate-demo-"))
    daemon = Daemon(mode="required", run_as="nobody")
    try:
        step(f"starting mfagated as user nobody (mode required, state in {daemon.state})")
        daemon.start()
        expect("daemon ready", True, f"pid {daemon.proc.pid}, socket {daemon.socket}")

        step(f"enrolling {USER}: mfagate enroll --user {USER} --json")
        e = daemon.enroll(USER)
        print(f"    secret {e['secret']} (the demo user's own; shown only at enrollment)")
        print(f"    {e['otpauth_uri']}")
        print(f"    {len(e['recovery_codes'])} recovery codes, e.g. {e['recovery_codes'][0]}")

        step("starting a real sshd on 127.0.0.1 in a private mount namespace "
             "(auth: pam_unix.so, then pam_mfagate.so)")
        stack = ["auth required pam_unix.so", f"auth required {SHIM} socket={daemon.socket} timeout=5"]
        with SshdSandbox(stack, [(USER, PASSWORD)], work) as box:
            print(f"    sshd pid {box.pid}, port {box.port}; host /etc/pam.d untouched")

            code = oathtool_totp(e["secret"])
            step("login with the password and a wrong code")
            expect("wrong code refused", not login(box.port, wrong_code(code), "wrong code"))

            step("login with the password and the current code from oathtool")
            expect("right code accepted", login(box.port, code, "oathtool code"))

            step("the same code again (replay)")
            expect("replayed code refused", not login(box.port, code, "replayed code"))

            rc = e["recovery_codes"][0]
            step("a recovery code instead of a TOTP code")
            expect("recovery code accepted once", login(box.port, rc, "recovery code"))
            step("the same recovery code again")
            expect("used recovery code refused", not login(box.port, rc, "used recovery code"))

        status = daemon.cli("status", "--user", USER, "--json").stdout.strip()
        step(f"mfagate status --user {USER} --json: {status}")
        expect("one recovery code used", '"recovery_codes_left": 9' in status)

        step("what mfagated logged (one line per decision; no code, no secret):")
        for line in daemon.log().splitlines():
            if line.startswith(("info login", "notice login")):
                print("    " + line)
        log = daemon.log()
        expect("no code or secret in the log", code not in log and e["secret"] not in log
               and all(c not in log for c in e["recovery_codes"]))
    finally:
        daemon.close()
        shutil.rmtree(work, ignore_errors=True)
        step("cleaned up: daemon and sshd stopped by PID, temp dirs removed")
    print(f"\n{'demo passed' if failures == 0 else f'demo FAILED ({failures} step(s))'}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
