# SPDX-License-Identifier: Apache-2.0
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mfagate_harness import ROOT, Daemon, MFAGATED, MFAGATE, SHIM, PAM_DRIVER, NSS_MODULE  # noqa: E402

# mfagated refuses a config file group or others could write (as OpenDoas refuses doas.conf): the
# files the tests write get 0644 whatever umask the suite was started with.
os.umask(0o022)


def pytest_configure(config):
    """The daemon refuses names NSS does not know: a bare `pytest` run as root re-runs itself
    through with_test_accounts.py, in a private mount namespace where the test accounts exist."""
    if os.geteuid() != 0 or os.environ.get("MFAGATE_TEST_ACCOUNTS") == "1" or not shutil.which("unshare"):
        return
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=True)
    sys.stdout.flush()
    wrapper = Path(__file__).resolve().with_name("with_test_accounts.py")
    os.execv(sys.executable, [sys.executable, str(wrapper), *sys.orig_argv])


@pytest.fixture(scope="session", autouse=True)
def artefacts():
    """`make check` builds first; a bare `pytest` run builds what is missing."""
    if not all(p.exists() for p in (MFAGATED, MFAGATE, SHIM, PAM_DRIVER, NSS_MODULE)):
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
