# SPDX-License-Identifier: Apache-2.0
"""`make bench` must not rot: run the whole benchmark once on tiny sizes (no timing asserted)."""
from __future__ import annotations

import json
import subprocess
import sys

from mfagate_harness import BUILD, ROOT


def test_bench_runs_on_tiny_sizes_and_writes_every_figure(tmp_path):
    assert (BUILD / "bench_driver").exists(), "build/bench_driver is missing: run make test-helpers"
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "bench.py"), "--tiny", "--output", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr + run.stdout
    res = json.loads(out.read_text())
    modules = ["pam_permit", "pam_google_authenticator", "pam_oath", "pam_mfagate"]
    for m in modules:
        # every module was configured right: each login with a fresh code succeeded
        assert res["latency"][m]["ok"] == res["meta"]["latency_logins_per_module"], (m, res["latency"][m])
        assert res["latency"][m]["fail"] == 0
        assert set(res["throughput"][m]) == {"1", "2", "8"}
    assert res["flood"]["wrong_accepted"] == 0
    assert res["flood"]["legit"]["fail"] == 0
    assert all(r["fail"] == 0 for r in res["scale"].values())
    assert {"idle_10_users", "during_flood_peak"} <= set(res["memory_kb"])
    assert len(res["start"]["runs_us"]) >= 1 and res["shim"]["file_bytes"] > 0
    # the daemon takes LISTEN_FDS, so the start figure is measured through socket activation
    assert res["start"]["method"].startswith("socket activation"), res["start"]
    assert "p50/GA" in run.stdout
    # issue 18: wrong codes refused for GA and mfagate, the floor rows, ratios, PSS beside VmRSS
    assert all(res["wrong"][m]["ok"] == 0 for m in ("pam_google_authenticator", "pam_mfagate")), res["wrong"]
    assert set(res["floor"]) == {"pam_permit", "shim_no_daemon", "shim_one_round_trip"}
    assert {"p50", "auths_per_s", "wrong_code_p50"} <= set(res["ratios_to_ga"])
    assert res["memory_kb"]["idle_10_users_pss"] > 0 and "mfagate ÷ GA in this run" in run.stdout
    # the fleet rows (bench/fleet_bench.py, issue 17): the database local and 10 ms away (the delay
    # proxy), one client and eight, and the file store's p50 beside them; every login succeeded
    fleet = res["fleet"]
    if "skipped" not in fleet:
        for where in ("local", "remote_10ms"):
            assert fleet[where]["ok"] >= 1 and fleet[where]["fail"] == 0, (where, fleet[where])
            runs = fleet[where]["throughput"]
            assert set(runs) == {"1", "8"}, runs
            assert all(r["ok"] >= 1 and r["fail"] == 0 for r in runs.values()), (where, runs)
        assert fleet["file_store_p50_us"] > 0
        assert "database 10 ms away" in run.stdout and "8 clients" in run.stdout
    else:
        assert "mfagate fleet backend: skipped" in run.stdout
