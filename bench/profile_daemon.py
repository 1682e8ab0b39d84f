#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Profiling harness for the daemon (docs/performance.md, "Fewer system calls per login"). Root only.

One build/mfagated as `nobody` in a temp dir under /var/tmp, LOGINS fresh users, DRIVERS concurrent
bench_drivers; prints auths/s, the daemon's CPU per login and the machine's idle share. In a private
mount namespace only for the bench users' accounts (bench.numbered_accounts); the shim does not
need /dev/log.
Environment: LOGINS (4000), DRIVERS (1), BIN (daemon binary), SHIM (pam_mfagate.so),
  WRAP (command the daemon runs under, e.g. "strace -f -o /tmp/x/st.txt" or
  "valgrind --tool=callgrind --callgrind-out-file=/tmp/x/cg.out"; the daemon runs as nobody, so the
  output directory must be writable by it; a tracer that forks the daemon breaks LISTEN_PID: use
  ATTACH="strace -f -c -o FILE" instead, attached after the start), IDLE=1 (no logins: VmRSS and the binary's resident
  pages by section and module, bench/resident_pages.py), KEEP=1 (keep the temp dir).
"""
import os, sys, time, shutil, signal, tempfile, subprocess, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench
from pathlib import Path
# The daemon refuses names NSS does not know: the numbered users come from the tests' NSS module,
# set up by bench.numbered_accounts in a private mount namespace (this script, re-run in one).
if os.environ.get("MFAGATE_PROFILE_NS") != "1":
    sys.exit(subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, os.path.abspath(__file__)],
                            env=dict(os.environ, MFAGATE_PROFILE_NS="1")).returncode)
wrapper = os.environ.get("WRAP", "").split()
logins = int(os.environ.get("LOGINS", "4000"))
drivers = int(os.environ.get("DRIVERS", "1"))
work = Path(tempfile.mkdtemp(prefix="mfagate-profile.", dir="/var/tmp"))
d = None
try:
    shutil.copy2(os.environ.get("BIN", str(bench.BUILD / "mfagated")), work / "mfagated"); os.chmod(work / "mfagated", 0o755)
    os.chmod(work, 0o755)
    bench.numbered_accounts(work)
    d = bench.Daemon(work, "main")
    confdir = bench.configure_modules(work, d)
    if os.environ.get("SHIM"): shutil.copy2(os.environ["SHIM"], work / "pam_mfagate.so")
    users = bench.Users("mf", work / "users.txt"); users.grow(logins)
    d.enroll_files(users, range(logins))
    if wrapper:
        # the wrapper goes between setpriv and the binary, so it runs as the daemon's user
        plain = d.command
        def wrapped():
            cmd = plain()
            at = cmd.index(str(d.binary))
            return cmd[:at] + wrapper + cmd[at:]
        d.command = wrapped
    d.start()  # binds the socket as root and passes it as LISTEN_FDS, as bench.py does
    # ATTACH: a tracer attached to the started daemon (a WRAP tracer that forks breaks LISTEN_PID),
    # e.g. ATTACH="strace -f -c -o /var/tmp/st.txt"; stopped with SIGINT after the logins.
    tracer = None
    if os.environ.get("ATTACH"):
        tracer = subprocess.Popen(os.environ["ATTACH"].split() + ["-p", str(d.proc.pid)])
        time.sleep(1)
    if os.environ.get("IDLE"):
        time.sleep(0.5); subprocess.run(["sync"])
        pid = d.proc.pid
        print(open(f"/proc/{pid}/status").read().split("VmRSS:")[1].split("\n")[0])
        print("".join(l for l in open(f"/proc/{pid}/smaps_rollup") if l.split()[0] in ("Rss:", "Pss:", "Anonymous:")), end="")
        cur=None; agg={}
        for line in open(f"/proc/{pid}/smaps"):
            p=line.split()
            if "-" in p[0] and len(p)>=5 and ":" not in p[0]:
                cur = p[5] if len(p)>5 else "[anon]"
            elif p[0] in ("Rss:", "Pss:") and cur:
                rp = agg.setdefault(cur, [0, 0]); rp[p[0] == "Pss:"] += int(p[1])
        print("Rss kB  Pss kB  mapping")
        for k,v in sorted(agg.items(), key=lambda x:-x[1][1])[:15]: print(f"{v[0]:6} {v[1]:7}  {k}")
        if os.environ.get("FLAGS"):
            sm = open(f"/proc/{pid}/smaps").read().split("\n")
            print([l for l in sm if "mfagated" in l or l.startswith("VmFlags")][:4])
        subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "resident_pages.py"), str(pid), str(work / "mfagated")])
        d.stop(); sys.exit(0)
    per = logins // drivers
    t0 = time.monotonic()
    cpu0 = open(f"/proc/{d.proc.pid}/stat").read().split()
    sys0 = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    lists = [[bench.spec("pam_mfagate", users, i * per, (i + 1) * per)] for i in range(drivers)]
    res = bench.collect(bench.start_drivers(confdir, lists, "--count", str(per)))
    el = time.monotonic() - t0
    cpu1 = open(f"/proc/{d.proc.pid}/stat").read().split()
    sys1 = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    dl = [b - a for a, b in zip(sys0, sys1)]; tot = sum(dl)
    machine = {"idle": round(dl[3] / tot, 2), "iowait": round(dl[4] / tot, 2)}
    hz = os.sysconf("SC_CLK_TCK")
    ut = (int(cpu1[13]) - int(cpu0[13])) / hz; st_ = (int(cpu1[14]) - int(cpu0[14])) / hz
    ok = sum(r["ok"] for r in res)
    print(json.dumps({"ok": ok, "fail": sum(r["fail"] for r in res), "per_s": round(ok / el), "cpu_us_per_login": round((ut + st_) * 1e6 / max(ok, 1)), "user": round(ut * 1e6 / max(ok, 1)), "sys": round(st_ * 1e6 / max(ok, 1)), "busy": round((ut + st_) / el, 2), **machine}))
    if tracer is not None:
        tracer.send_signal(signal.SIGINT); tracer.wait()
    d.stop()
    print(open(d.log_path, errors="replace").read()[-3000:] if os.environ.get("SHOWLOG") else "")
finally:
    if d is not None and d.proc is not None:
        d.stop()
    # A wrapper (strace) may exit on SIGTERM and leave the daemon running: stop it by its pid,
    # found by the temp dir on its command line (nothing else runs from there).
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                args = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if args and args[0] == str(work / "mfagated").encode():
                os.kill(int(entry), signal.SIGTERM)
    if os.environ.get("KEEP"): print("kept", work)
    else: shutil.rmtree(work)
