# SPDX-License-Identifier: Apache-2.0
"""The layering of docs/architecture.md, checked on the sources: which target may import which,
no Foundation anywhere in Sources/, and a shim that includes only libc, libpam and its frame header."""
import re

from mfagate_harness import ROOT

SOURCES = ROOT / "Sources"

# Each Swift target and the modules it may import (Package.swift's dependencies, plus Glibc).
ALLOWED = {
    "MFACore": {"CMFACrypto"},
    "MFAProtocol": set(),
    "MFATerminalQR": {"CQREncode"},
    "MFASafeFile": {"CMFASys"},
    "MFAStore": {"MFACore", "CMFASys", "MFASafeFile"},
    "MFAFleetStore": {"MFACore", "MFAStore", "CMFAPostgres", "CMFAFleetCrypto", "CMFASys", "MFASafeFile", "Logging"},
    "MFADaemon": {"MFACore", "MFAProtocol", "MFAStore", "MFATerminalQR", "CMFASys", "CMFASystemd", "Logging"},
    "mfagated": {"MFADaemon", "MFACore", "MFAStore", "MFAFleetStore", "MFASafeFile", "CMFASys", "ArgumentParser", "Logging"},
    "mfagate": {"MFAProtocol", "MFACore", "MFATerminalQR", "MFASafeFile", "CMFASys", "ArgumentParser"},
}
IMPORT = re.compile(r"^\s*(?:@\w+(?:\([^)]*\))?\s+)*import\s+(?:(?:struct|class|enum|protocol|func|var|let|typealias)\s+)?([A-Za-z_][\w]*)", re.M)


def imports_of(target):
    found = {}
    for path in sorted((SOURCES / target).rglob("*.swift")):
        for module in IMPORT.findall(path.read_text()):
            found.setdefault(module, []).append(path.relative_to(ROOT).as_posix())
    return found


def test_every_swift_target_imports_only_what_the_map_allows():
    swift_targets = {p.name for p in SOURCES.iterdir() if any(p.rglob("*.swift"))}
    assert swift_targets == set(ALLOWED), "a target was added or removed: update docs/architecture.md and ALLOWED"
    wrong = []
    for target, allowed in ALLOWED.items():
        for module, files in imports_of(target).items():
            if module not in allowed | {"Glibc"}:
                wrong.append(f"{files[0]}: import {module} (not allowed in {target})")
    assert not wrong, "\n".join(wrong)


def test_no_foundation_in_the_daemon_the_cli_or_the_libraries():
    offenders = [f"{files[0]}: import {module}"
                 for target in ALLOWED for module, files in imports_of(target).items()
                 if module == "Foundation" or module.startswith("Foundation")]
    assert not offenders, "\n".join(offenders)


def test_the_shim_includes_only_libc_libpam_and_its_frame_header():
    include = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
    wrong = []
    for path in sorted((SOURCES / "pam_mfagate").glob("*.[ch]")):
        for kind, header in include.findall(path.read_text()):
            if kind == '"':
                ok = header == "mfg_frame.h"
            else:
                ok = header.startswith("security/pam_") or "/" not in header or header.startswith("sys/")
            if not ok:
                wrong.append(f"{path.name}: #include {kind}{header}")
    assert not wrong, "\n".join(wrong)
