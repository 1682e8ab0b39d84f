import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mfagate_harness import ROOT, Daemon, MFAGATED, MFAGATE, SHIM, PAM_DRIVER  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def artefacts():
    """`make check` builds first; a bare `pytest` run builds what is missing."""
    if not all(p.exists() for p in (MFAGATED, MFAGATE, SHIM, PAM_DRIVER)):
        subprocess.run(["make", "-s", "build", "test-helpers"], cwd=ROOT, check=True)


@pytest.fixture
def daemon_factory():
    made = []

    def make(mode="optional", extra_config="", start=True, run_as=None, accounts=None, daemon_args=()):
        d = Daemon(mode, extra_config, run_as=run_as, accounts=accounts)
        d.daemon_args = list(daemon_args)
        made.append(d)
        return d.start() if start else d

    yield make
    for d in made:
        d.close()


@pytest.fixture
def daemon(daemon_factory):
    return daemon_factory()
