# SPDX-License-Identifier: Apache-2.0
# mfagate — see README.md. `make demo` runs a real SSH login through the daemon; `make check` runs every test.
SHELL := /bin/bash
CC ?= cc
SWIFT ?= swift
BUILD := build
SWIFT_RELEASE_FLAGS := -c release --static-swift-stdlib --disable-local-rpath -Xlinker -z -Xlinker relro -Xlinker -z -Xlinker now
# Less of the daemon resident (docs/performance.md, "Idle RSS"): lld with packed relative relocations
# (DT_RELR, glibc >= 2.36: 0.9 MB of .rela.dyn the loader read whole, now 8 kB) and the functions a
# start and a login run laid out together (link/mfagated.order, made by bench/order_file.py).
SWIFT_RELEASE_FLAGS += -Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs \
	-Xlinker --symbol-ordering-file=$(CURDIR)/link/mfagated.order -Xlinker --no-warn-symbol-ordering
# No build path in the binaries or their debug info, whatever directory the tree was built in
# (reproducible packages; make check-repro says what still differs between two builds).
PREFIX_MAP := -Xswiftc -file-prefix-map -Xswiftc $(CURDIR)=. -Xcc -ffile-prefix-map=$(CURDIR)=.
SWIFT_RELEASE_FLAGS += $(PREFIX_MAP)
# libstdc++ linked statically (docs/performance.md, "libstdc++"): only the Swift runtime uses it, a
# few kB of it, and the shared library kept ~0.9 MB of the idle daemon resident. The toolchain's
# static-stdlib-args.lnk asks for -lstdc++ itself; a directory searched first whose libstdc++.so is
# a linker script naming the compiler's libstdc++.a makes that request link the archive.
STATIC_CXX := $(BUILD)/static-cxx
SWIFT_RELEASE_FLAGS += -Xlinker -L$(CURDIR)/$(STATIC_CXX)
# The PAM module, one job a file (docs/architecture.md): the login and the PAM entry points, the
# arguments, the bounded link to the daemon, the conversation relay, the frame codec.
SHIM_SRC := $(addprefix Sources/pam_mfagate/,pam_mfagate.c mfg_options.c mfg_socket.c mfg_conv.c mfg_frame.c)
SHIM_HDR := Sources/pam_mfagate/mfg_login.h Sources/pam_mfagate/mfg_frame.h
SHIM_CFLAGS := -std=c11 -O2 -g -fPIC -fvisibility=hidden -Wall -Wextra -Werror -D_GNU_SOURCE \
	-fstack-protector-strong -D_FORTIFY_SOURCE=2 -ffile-prefix-map=$(CURDIR)=.
SHIM_LDFLAGS := -shared -Wl,--version-script=pam/exports.map -Wl,-z,relro,-z,now -Wl,--as-needed

.PHONY: all build swift-build shim test-helpers check unit integration demo clean deps

all: build

build: $(BUILD)/pam_mfagate.so swift-build

$(STATIC_CXX)/libstdc++.so:
	@mkdir -p $(STATIC_CXX)
	@archive="$$($(CC) -print-file-name=libstdc++.a)"; \
	  if [ ! -f "$$archive" ]; then echo "libstdc++.a not found ($(CC) -print-file-name); install libstdc++-dev (scripts/install-deps.sh)" >&2; exit 1; fi; \
	  echo "INPUT($$archive)" > $@

swift-build: $(STATIC_CXX)/libstdc++.so
	@# SwiftPM does not know the ordering file is a link input: relink when it changed.
	@bin="$$($(SWIFT) build $(SWIFT_RELEASE_FLAGS) --show-bin-path)/mfagated"; \
	  if [ -e "$$bin" ] && [ link/mfagated.order -nt "$$bin" ]; then rm -f "$$bin"; fi
	$(SWIFT) build $(SWIFT_RELEASE_FLAGS) --product mfagated
	$(SWIFT) build $(SWIFT_RELEASE_FLAGS) --product mfagate
	@mkdir -p $(BUILD)
	cp "$$($(SWIFT) build $(SWIFT_RELEASE_FLAGS) --show-bin-path)/mfagated" $(BUILD)/mfagated
	cp "$$($(SWIFT) build $(SWIFT_RELEASE_FLAGS) --show-bin-path)/mfagate" $(BUILD)/mfagate

$(BUILD)/pam_mfagate.so: $(SHIM_SRC) $(SHIM_HDR) pam/exports.map
	@mkdir -p $(BUILD)
	$(CC) $(SHIM_CFLAGS) $(SHIM_LDFLAGS) -o $@ $(SHIM_SRC) -lpam

# Small C programs the integration tests drive (real libpam through pam_start_confdir).
test-helpers: $(BUILD)/pam_driver $(BUILD)/bench_driver $(BUILD)/libnss_mfatest.so.2

# The tests' own NSS module (case-insensitive names, name@example.test), used only inside a private
# mount namespace by Tests/integration/test_accounts.py.
$(BUILD)/libnss_mfatest.so.2: Tests/integration/nss/nss_mfatest.c
	@mkdir -p $(BUILD)
	$(CC) -std=c11 -O1 -g -fPIC -shared -Wall -Wextra -Werror -D_GNU_SOURCE -Wl,-soname,libnss_mfatest.so.2 -o $@ $<

$(BUILD)/pam_driver: Tests/integration/pam_driver.c
	@mkdir -p $(BUILD)
	$(CC) -std=c11 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $< -lpam

deps:
	bash scripts/install-deps.sh

unit:
	$(SWIFT) test

# In a private mount namespace where the suite's test accounts exist (the host's files untouched).
integration: build test-helpers
	python3 Tests/integration/with_test_accounts.py python3 -m pytest -q Tests/integration

check: unit integration

demo:
	bash scripts/demo.sh

clean:
	rm -rf $(BUILD) .build

# The Debian package (Packaging/, README "Installing the Debian package"): build/mfagate_<version>_amd64.deb.
.PHONY: deb check-deb
deb:
	bash Packaging/build-deb.sh

# Boots Debian 12 and 13 with systemd in systemd-nspawn and proves the .deb works there (Packaging/check_deb.py).
check-deb: deb
	bash Packaging/check-deb.sh

# Builds the package twice and compares the .debs byte for byte; says which files differ (Packaging/check-repro.sh).
.PHONY: check-repro
check-repro:
	bash Packaging/check-repro.sh

# libFuzzer targets of the shim's pure code (Tests/integration/fuzz/README.md), ASan + UBSan: the frame
# decoder (shim_frame_fuzz) and forward_pass's split rule (shim_split_fuzz). `make fuzz-shim` runs each
# for FUZZ_SECONDS (30); make check runs them briefly (Tests/integration/test_fuzz_short.py).
SHIM_FUZZ_CC = $$(command -v clang || echo /opt/swift/usr/bin/clang)
SHIM_FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -ISources/pam_mfagate
SHIM_FUZZ_TARGETS := frame split

$(BUILD)/shim_%_fuzz: Tests/integration/fuzz/shim_%_fuzz.c Sources/pam_mfagate/mfg_frame.c Sources/pam_mfagate/mfg_frame.h
	@mkdir -p $(@D)
	"$(SHIM_FUZZ_CC)" $(SHIM_FUZZ_FLAGS) Sources/pam_mfagate/mfg_frame.c $< -o $@

.PHONY: fuzz-shim
fuzz-shim: $(foreach t,$(SHIM_FUZZ_TARGETS),$(BUILD)/shim_$(t)_fuzz)
	for t in $(SHIM_FUZZ_TARGETS); do \
	  rm -rf $(BUILD)/shim_$${t}_corpus && cp -r Tests/integration/fuzz/corpus/$$t $(BUILD)/shim_$${t}_corpus && \
	  $(BUILD)/shim_$${t}_fuzz -max_total_time=$${FUZZ_SECONDS:-30} $(BUILD)/shim_$${t}_corpus || exit 1; done

# Benchmarks side by side with pam_google_authenticator and pam_oath (docs/performance.md).
# A few minutes on 2 cores; prints a table and writes build/bench.json. BENCH_ARGS=--tiny for a smoke run.
.PHONY: bench
bench: build $(BUILD)/bench_driver $(BUILD)/libnss_mfatest.so.2
	python3 bench/bench.py $(BENCH_ARGS)

$(BUILD)/bench_driver: bench/bench_driver.c
	@mkdir -p $(BUILD)
	$(CC) -std=c11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $< -lpam -lcrypto

# libFuzzer runs of the Swift parsers that read hostile bytes (Tests/fuzz/README.md): the daemon's
# frame decoder, the config parser, the user-file parser. Each target compiles the few sources it
# needs with swiftc directly (-sanitize=fuzzer,address), so Package.swift stays as it is.
SWIFTC ?= swiftc
SWIFT_FUZZ_FLAGS := -sanitize=fuzzer,address -parse-as-library -O -g -use-ld=lld -suppress-warnings
FUZZ_RUNS ?= 10000000
FUZZ_SECONDS ?= 30

$(BUILD)/fuzz/frame_fuzz: $(wildcard Sources/MFAProtocol/*.swift) Tests/fuzz/FrameFuzz.swift
	@mkdir -p $(@D)
	$(SWIFTC) $(SWIFT_FUZZ_FLAGS) -module-name MFAProtocol $^ -o $@

$(BUILD)/fuzz/config_fuzz: $(wildcard Sources/MFACore/*.swift) Tests/fuzz/ConfigFuzz.swift
	@mkdir -p $(@D)
	$(SWIFTC) $(SWIFT_FUZZ_FLAGS) -module-name MFACore -I Sources/CMFACrypto $^ -lnettle -o $@

$(BUILD)/fuzz/userfile_fuzz: $(wildcard Sources/MFACore/*.swift) Sources/MFAStore/UserRecord.swift Tests/fuzz/UserFileFuzz.swift
	@mkdir -p $(@D)
	$(SWIFTC) $(SWIFT_FUZZ_FLAGS) -module-name MFACore -I Sources/CMFACrypto $^ -lnettle -o $@

$(BUILD)/fuzz/gafile_fuzz: $(wildcard Sources/MFACore/*.swift) Tests/fuzz/GoogleAuthenticatorFuzz.swift
	@mkdir -p $(@D)
	$(SWIFTC) $(SWIFT_FUZZ_FLAGS) -module-name MFACore -I Sources/CMFACrypto $^ -lnettle -o $@

$(BUILD)/fuzz/sshinfo_fuzz: $(wildcard Sources/MFACore/*.swift) Tests/fuzz/SSHAuthInfoFuzz.swift
	@mkdir -p $(@D)
	$(SWIFTC) $(SWIFT_FUZZ_FLAGS) -module-name MFACore -I Sources/CMFACrypto $^ -lnettle -o $@

$(BUILD)/fuzz/sshcert_fuzz: $(wildcard Sources/MFACore/*.swift) Tests/fuzz/SSHCertificateFuzz.swift
	@mkdir -p $(@D)
	$(SWIFTC) $(SWIFT_FUZZ_FLAGS) -module-name MFACore -I Sources/CMFACrypto $^ -lnettle -o $@

.PHONY: fuzz-build fuzz-swift stress
FUZZ_TARGETS := frame config userfile gafile sshinfo sshcert
fuzz-build: $(foreach t,$(FUZZ_TARGETS),$(BUILD)/fuzz/$(t)_fuzz) $(foreach t,$(SHIM_FUZZ_TARGETS),$(BUILD)/shim_$(t)_fuzz)

# FUZZ_RUNS executions (default 10 million) or FUZZ_SECONDS per target, whichever comes first.
fuzz-swift: fuzz-build
	for t in $(FUZZ_TARGETS); do Tests/fuzz/run.sh $$t $(FUZZ_RUNS) $(FUZZ_SECONDS) || exit 1; done

# The long robustness run (docs/robustness.md): 10 million libFuzzer executions per parser (Swift
# targets and the shim's), then the robustness tests at full scale (1,000 SIGKILLs, 1,000 idle
# connections, ...), with MFAGATE_STRESS=1. Figures go to build/robustness-figures.txt.
# `make check` runs the same tests small.
STRESS_FUZZ_SECONDS ?= 1800
stress: build test-helpers fuzz-build
	set -o pipefail; for t in $(FUZZ_TARGETS) $(addprefix shim-,$(SHIM_FUZZ_TARGETS)); do Tests/fuzz/run.sh $$t $(FUZZ_RUNS) $(STRESS_FUZZ_SECONDS) | tee -a $(BUILD)/robustness-figures.txt || exit 1; done
	MFAGATE_STRESS=1 python3 -m pytest -q -s Tests/integration/test_robustness.py Tests/integration/test_zz_secret_hygiene.py
