// swift-tools-version:6.0
// SPDX-License-Identifier: Apache-2.0
// mfagate: the Swift side (daemon, CLI and their libraries). The PAM module is plain C, built by the
// Makefile with the C compiler so that sshd never loads the Swift runtime.
import PackageDescription

let package = Package(
    name: "mfagate",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "mfagated", targets: ["mfagated"]),
        .executable(name: "mfagate", targets: ["mfagate"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // GNU Nettle from Debian's nettle-dev: HMAC, SHA-256, a constant-time compare (random bytes
        // come from getrandom(2)); docs/architecture.md says why Nettle and not OpenSSL's libcrypto.
        .systemLibrary(name: "CMFACrypto", pkgConfig: "nettle", providers: [.apt(["nettle-dev"])]),
        // libqrencode from Debian's libqrencode-dev: the QR code of the otpauth:// URI at enrollment.
        .systemLibrary(name: "CQREncode", pkgConfig: "libqrencode", providers: [.apt(["libqrencode-dev"])]),
        // libpq from Debian's libpq-dev: the fleet store's PostgreSQL client (docs/fleet.md says why
        // libpq and not a Swift client: a blocking-free C API that fits the daemon's one poll loop).
        // Loaded with dlopen only when `store = postgresql` (CMFAPostgres.h says why), so not linked.
        .target(name: "CMFAPostgres"),
        // AES-256-GCM (GNU Nettle) for the fleet store's sealed records.
        .target(name: "CMFAFleetCrypto", linkerSettings: [.linkedLibrary("nettle")]),
        // Linux details Swift's Glibc module does not show (struct ucred needs _GNU_SOURCE, signalfd).
        .target(name: "CMFASys"),
        // systemd's documented protocols without libsystemd: socket activation, sd_notify, the watchdog
        // and native journal entries (docs/architecture.md says why).
        .target(name: "CMFASystemd"),
        // Pure logic, no I/O, time passed in: OTP, base32, recovery codes, user names, config, policy.
        .target(name: "MFACore", dependencies: ["CMFACrypto"]),
        // The wire protocol (docs/protocol.md): frame codec and message types. No I/O.
        .target(name: "MFAProtocol"),
        // Renders a QR code as terminal text (UTF-8 half blocks or ASCII) for the CLI and the login prompt.
        .target(name: "MFATerminalQR", dependencies: ["CQREncode"]),
        // The one reader of files mfagate must trust (config, user files, fleet key, a user's GA file):
        // O_NOFOLLOW, fstat on the descriptor, owner, mode and size checked.
        .target(name: "MFASafeFile", dependencies: ["CMFASys"]),
        // The only code that touches secret files.
        .target(name: "MFAStore", dependencies: ["MFACore", "CMFASys", "MFASafeFile"]),
        // The fleet store (store = postgresql): enrollments, lockouts and first sightings in PostgreSQL,
        // secrets sealed with the hosts' fleet key (docs/fleet.md).
        .target(name: "MFAFleetStore", dependencies: [
            "MFACore", "MFAStore", "CMFAPostgres", "CMFAFleetCrypto", "CMFASys", "MFASafeFile",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Sockets, peer credentials, connection state machines, lifecycle.
        .target(name: "MFADaemon", dependencies: [
            "MFACore", "MFAProtocol", "MFAStore", "CMFASys", "CMFASystemd", "MFATerminalQR",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "mfagated", dependencies: [
            "MFADaemon", "MFACore", "MFAStore", "MFAFleetStore", "MFASafeFile",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "mfagate", dependencies: [
            "MFAProtocol", "MFACore", "CMFASys", "MFATerminalQR", "MFASafeFile",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "MFACoreTests", dependencies: ["MFACore"]),
        .testTarget(name: "MFAProtocolTests", dependencies: ["MFAProtocol", "MFACore"]),
        .testTarget(name: "MFASafeFileTests", dependencies: ["MFASafeFile"]),
        .testTarget(name: "MFAStoreTests", dependencies: ["MFAStore", "MFACore"]),
        .testTarget(name: "MFAFleetStoreTests", dependencies: ["MFAFleetStore", "MFAStore", "MFACore", "CMFAFleetCrypto"]),
        .testTarget(name: "MFATerminalQRTests", dependencies: ["MFATerminalQR"]),
        .testTarget(name: "MFADaemonTests", dependencies: ["MFADaemon", "MFACore", "MFAProtocol", "MFAStore",
                                                           .product(name: "Logging", package: "swift-log")]),
    ]
)
