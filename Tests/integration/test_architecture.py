# SPDX-License-Identifier: Apache-2.0
"""The layering of docs/architecture.md, checked on the sources: which target may import which,
no Foundation anywhere in Sources/, and a shim that includes only libc, libpam and its own headers, in
files of one job each that share only what their internal header declares."""
import re
import shutil
import subprocess

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


SHIM = SOURCES / "pam_mfagate"


def test_the_shim_includes_only_libc_libpam_and_its_own_headers():
    include = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
    own = {p.name for p in SHIM.glob("*.h")}
    wrong = []
    for path in sorted(SHIM.glob("*.[ch]")):
        for kind, header in include.findall(path.read_text()):
            if kind == '"':
                ok = header in own  # checked by this same loop in turn
            else:
                ok = header.startswith("security/pam_") or "/" not in header or header.startswith("sys/")
            if not ok:
                wrong.append(f"{path.name}: #include {kind}{header}")
    assert not wrong, "\n".join(wrong)


def test_the_makefile_builds_every_shim_file_and_each_stays_small():
    makefile = (ROOT / "Makefile").read_text()
    listed = set(re.search(r"^SHIM_SRC := \$\(addprefix Sources/pam_mfagate/,([^)]*)\)", makefile, re.M).group(1).split())
    assert listed == {p.name for p in SHIM.glob("*.c")}
    long = [f"{p.name}: {n} lines" for p in sorted(SHIM.glob("*.[ch]")) if (n := len(p.read_text().splitlines())) > 400]
    assert not long, "split the file by job (docs/architecture.md): " + ", ".join(long)


def test_the_shims_files_share_only_what_another_of_them_uses(tmp_path):
    """One job a file, everything else static: a function with external linkage in one of the shim's
    objects is used by another of them, or is a PAM entry point (the .so exports only those)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed"
    defined, used = {}, {}
    for src in sorted(SHIM.glob("*.c")):
        obj = tmp_path / (src.stem + ".o")
        subprocess.run([cc, "-std=c11", "-O2", "-fPIC", "-fvisibility=hidden", "-D_GNU_SOURCE", "-c", str(src), "-o", str(obj)],
                       capture_output=True, check=True, timeout=120)
        syms = subprocess.run(["nm", "-P", str(obj)], capture_output=True, text=True, check=True, timeout=60).stdout
        rows = [line.split()[:2] for line in syms.splitlines() if len(line.split()) >= 2]
        defined[src.name] = {name for name, kind in rows if kind in "TDBR"}
        used[src.name] = {name for name, kind in rows if kind == "U"}
    lonely = [f"{f}: {name}" for f, names in defined.items() for name in sorted(names)
              if not name.startswith("pam_sm_") and not any(name in u for g, u in used.items() if g != f)]
    assert not lonely, "make these static (used only in their own file): " + ", ".join(lonely)
