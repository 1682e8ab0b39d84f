#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs one libFuzzer target of build/fuzz/ on a fresh copy of its committed seed corpus.
#   Tests/fuzz/run.sh TARGET RUNS SECONDS      (TARGET: frame, config, userfile, gafile, sshinfo, sshcert,
#                                              or the shim's C targets shim-frame, shim-split)
# Stops at RUNS executions or after SECONDS, whichever comes first, and prints one summary line:
#   fuzz TARGET: EXECUTIONS executions in SECONDS s (RATE/s), peak RSS MB, no finding
# A crash, sanitizer report, hang (> 5 s per input) or leak exits non-zero and leaves the input in
# build/fuzz/TARGET-crash-* (turn it into a regression test, fix, then add it to the corpus).
set -euo pipefail
target=$1 runs=$2 seconds=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
binary=$root/build/fuzz/${target}_fuzz
seeds=$root/Tests/fuzz/corpus/$target
if [[ $target == shim-* ]]; then
    binary=$root/build/shim_${target#shim-}_fuzz seeds=$root/Tests/integration/fuzz/corpus/${target#shim-}
fi
work=$root/build/fuzz/corpus-$target
rm -rf "$work" && mkdir -p "$work" && cp -r "$seeds"/. "$work"/
log=$root/build/fuzz/$target.log
start=$(date +%s)
# The Swift runtime's crash backtracer takes seconds per report; libFuzzer prints its own.
if ! SWIFT_BACKTRACE=enable=no "$binary" -runs="$runs" -max_total_time="$seconds" -timeout=5 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$root/build/fuzz/$target-" \
        "$work" >"$log" 2>&1; then
    grep -E "ERROR|Fatal error|SUMMARY|Test unit written|Base64" "$log" | head -20 >&2
    echo "fuzz $target: FINDING (full log: $log)" >&2
    exit 1
fi
elapsed=$(( $(date +%s) - start ))
executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n1)
echo "fuzz $target: $executions executions in $elapsed s ($(( executions / (elapsed > 0 ? elapsed : 1) ))/s), peak RSS $rss MB, no finding"
