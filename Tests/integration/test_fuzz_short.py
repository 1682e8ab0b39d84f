# SPDX-License-Identifier: Apache-2.0
"""The short version of `make stress`'s fuzzing: each libFuzzer target, the Swift ones (Tests/fuzz/) and
the shim's C ones (Tests/integration/fuzz/: frame decoder, forward_pass's split), replays its committed corpus, which holds every input that once found a bug, then fuzzes a little. A finding fails
the test with the input left in build/fuzz/. `make stress` runs the same targets for 10 million
executions each."""
import re
import subprocess

import pytest

from mfagate_harness import ROOT
from robustness import report, scale


@pytest.fixture(scope="module")
def fuzzers():
    subprocess.run(["make", "-s", "fuzz-build"], cwd=ROOT, check=True, capture_output=True, timeout=900)


@pytest.mark.parametrize("target", ["frame", "config", "userfile", "gafile", "sshinfo", "sshcert",
                                    "shim-frame", "shim-split"])
def test_fuzz_target_finds_nothing(fuzzers, target):
    runs = scale("FUZZ_RUNS", 200_000, 10_000_000)
    out = subprocess.run([str(ROOT / "Tests/fuzz/run.sh"), target, str(runs), str(scale("FUZZ_SECONDS", 20, 1200))],
                         capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip().splitlines()[-1]
    assert re.match(rf"fuzz {target}: \d+ executions", line), out.stdout
    report(line)
