#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Regenerates link/mfagated.order, the symbol ordering file the Makefile passes to the linker (lld's
--symbol-ordering-file). Root only; needs valgrind. See docs/performance.md, "Idle RSS".

Why: the daemon's code is statically linked with the Swift runtime and standard library (about
10 MB of .text), and the functions a start and a login execute are scattered through it; every
page fault on code maps up to 64 kB around it (the kernel's fault-around), so an idle daemon had
4.7 MB of .text resident for well under 1 MB of code it ran. Placing the functions that run first
and together makes that code sit on few pages. A stale file only makes the layout less compact:
functions it does not name are laid out after those it names, as before.

How: build/mfagated (debug info stripped, which valgrind 3.19 cannot read) serves LOGINS logins
of fresh users from 2 drivers under `valgrind --tool=callgrind --demangle=no` (bench/profile_daemon.py);
every function of the binary that ran is written, in the order callgrind first lists it.
"""
import os, re, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "link" / "mfagated.order"


def main() -> int:
    if os.geteuid() != 0:
        print("order_file.py: run as root (the profiled daemon runs as nobody)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="mfagate-order.", dir="/var/tmp"))
    os.chmod(work, 0o777)
    try:
        binary = work / "mfagated"
        subprocess.run(["strip", "--strip-debug", "-o", str(binary), str(ROOT / "build" / "mfagated")], check=True)
        os.chmod(binary, 0o755)
        out = work / "callgrind.out"
        env = dict(os.environ, BIN=str(binary), LOGINS=os.environ.get("LOGINS", "400"), DRIVERS="2",
                   WRAP=f"valgrind --tool=callgrind --demangle=no --callgrind-out-file={out}")
        subprocess.run([sys.executable, str(ROOT / "bench" / "profile_daemon.py")], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        defined = set()
        for line in subprocess.run(["nm", "--defined-only", str(binary)], capture_output=True, text=True,
                                   check=True).stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "tTwW":
                defined.add(parts[2])
        names, seen = [], set()
        for line in out.read_text(errors="replace").splitlines():
            m = re.match(r"c?fn=\(\d+\) (.+)$", line)
            if m and m.group(1) in defined and m.group(1) not in seen:
                seen.add(m.group(1))
                names.append(m.group(1))
        OUT.parent.mkdir(exist_ok=True)
        OUT.write_text("".join(n + "\n" for n in names))
        print(f"order_file.py: {len(names)} functions written to {OUT.relative_to(ROOT)}")
        return 0
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)])


if __name__ == "__main__":
    sys.exit(main())
