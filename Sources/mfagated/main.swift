// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CMFASys
import Logging
import MFACore
import MFADaemon
import MFAFleetStore
import MFASafeFile
import MFAStore

/// Reads the config file as OpenDoas reads doas.conf: through SafeFileReader (no symlink, a regular
/// file owned by root that group and others cannot write, at most 1 MiB), then parses it, reporting
/// every error with its line. A missing default file means "all defaults".
func loadConfig(path: String, explicit: Bool) throws(ConfigError) -> DaemonConfig {
    let rules = SafeFileRules.rootOwned(maximumSize: ConfigParser.maximumSize)
    let bytes: [UInt8]
    do {
        bytes = try SafeFileReader.read(path, rules: rules).bytes
    } catch {
        if error == .missing && !explicit { return DaemonConfig() }
        throw ConfigError(file: path, line: 0, message: "the file " + error.reason(rules))
    }
    return try ConfigParser.parse(bytes: bytes, file: path)
}

@main
struct MFAGated: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mfagated",
        abstract: "The mfagate daemon: checks second-factor codes for pam_mfagate.so.",
        discussion: "Runs in the foreground. Logs plain lines to stderr, or structured entries to journald when started by systemd. Uses the listening socket systemd passes (socket activation), else creates its own. Stop it with SIGTERM; SIGHUP reloads the config.")

    static let defaultConfigPath = DaemonConfig.defaultPath

    @Option(name: .long, help: ArgumentHelp("The configuration file.", valueName: "file"))
    var config: String?

    @Flag(name: .long, help: "Check the configuration file and exit (non-zero with FILE:LINE: message on an error).")
    var checkConfig = false

    @Flag(name: .long, help: "With --check-config: print the effective configuration, defaults filled in.")
    var print = false

    @Flag(name: .long, help: "Run even as root (by default the daemon refuses: run it as its own unprivileged user, see README).")
    var allowRoot = false

    @Flag(name: .long, help: "Log debug messages too.")
    var debug = false

    @Flag(name: .long, help: "Copy this host's enrollments from state_dir into the fleet database named in the config, then exit (what `mfagate migrate-store` runs; stop the daemon first).")
    var migrateStore = false

    @Option(name: .long, help: ArgumentHelp("Re-seal every fleet database row under the new fleet key in FILE, then exit (what `mfagate fleet rotate-key` runs).", valueName: "file"))
    var rotateKey: String?

    @Flag(name: .long, help: "Print how many fleet database rows each fleet key sealed, then exit (what `mfagate fleet key-status` runs).")
    var fleetKeyStatus = false

    /// Shifts the daemon's clock, so tests can check grace periods and lockouts without waiting.
    @Option(name: .long, help: .hidden)
    var clockOffset: Int64 = 0

    /// Like --clock-offset, read from a file at start and again at each SIGHUP, so tests can move the
    /// clock of a running daemon (delivered codes live only in its memory).
    @Option(name: .long, help: .hidden)
    var clockOffsetFile: String?

    /// Random bytes (secrets, delivered codes, salts) from HMAC-SHA256 over a counter keyed with
    /// this text instead of the system's generator, so a test knows that two codes differ and
    /// which one it holds. Never for a real host: every secret and code becomes predictable.
    @Option(name: .long, help: .hidden)
    var randomSeed: String?

    /// Reads the boot id from this file instead of /proc/sys/kernel/random/boot_id, so a test can
    /// present a new boot to a restarted daemon (a power cut without the power cut).
    @Option(name: .long, help: .hidden)
    var bootIdFile: String?

    /// The replay journal's flush bound in milliseconds (default 1000), so a test can keep
    /// records unflushed long enough to drop them as a power cut would.
    @Option(name: .long, help: .hidden)
    var journalFlushBound: Int64?

    func run() throws {
        let path = config ?? Self.defaultConfigPath
        let settings: DaemonConfig
        do {
            settings = try loadConfig(path: path, explicit: config != nil)
        } catch {
            // Every error of the file, one line each (as OpenDoas reports doas.conf).
            for one in error.all { mfa_write_stderr("mfagated: \(one)\n") }
            throw ExitCode(2)
        }
        if checkConfig {
            // The socket systemd passes is judged when the daemon starts on it (Server.init).
            if let problem = SocketDirectory.problem(socketPath: settings.socketPath, daemonUID: geteuid()) {
                let place = settings.lines["socket"].map { "\(path):\($0)" } ?? path
                mfa_write_stderr("mfagated: \(place): \(problem)\n")
                throw ExitCode(2)
            }
            if let refusal = FleetLink.refusal(settings) {
                mfa_write_stderr("mfagated: \(refusal)\n")
                throw ExitCode(2)
            }
            if print {
                Swift.print("# effective configuration from \(path)")
                Swift.print(ConfigParser.render(settings), terminator: "")
            } else {
                Swift.print("\(path): OK (mode \(settings.mode), state_dir \(settings.stateDirectory), socket \(settings.socketPath))")
            }
            return
        }
        let level: Logger.Level = debug ? .debug : .info
        // Under systemd stderr is journald's stream: send structured entries instead of plain lines.
        if JournalFields.shouldUseJournal {
            LoggingSystem.bootstrap { _ in JournalLogHandler(level: level) }
        } else {
            LoggingSystem.bootstrap { _ in LineLogHandler(level: level) }
        }
        let logger = Logger(label: "mfagated")
        _ = mfa_set_not_dumpable()
        umask(0o077)
        if migrateStore {
            throw ExitCode(FleetCommands.migrate(settings, hostName: DaemonEnvironment.live.hostName, logger: logger))
        }
        if let rotateKey {
            throw ExitCode(FleetCommands.rotateKey(settings, newKeyFile: rotateKey, hostName: DaemonEnvironment.live.hostName, logger: logger))
        }
        if fleetKeyStatus {
            throw ExitCode(FleetCommands.keyStatus(settings, hostName: DaemonEnvironment.live.hostName, logger: logger))
        }
        if geteuid() == 0 {
            guard allowRoot else {
                logger.critical("refusing to run as root: run mfagated as its own unprivileged user (User= in mfagated.service, see README), or pass --allow-root")
                throw ExitCode(1)
            }
            logger.warning("running as root (--allow-root); run mfagated as its own unprivileged user (see README)")
        }
        let authority: Authority
        var fileStore: FileStore? = nil
        var durability: (any ReplyDurability)? = nil
        do {
            var environment = DaemonEnvironment.live
            var offsetSeconds: @Sendable () -> Int64 = { 0 }
            if clockOffset != 0 {
                let offset = clockOffset, live = environment.now
                environment.now = { live() + offset }
                offsetSeconds = { offset }
                logger.warning("clock offset by \(offset) s (--clock-offset is for tests only)")
            }
            if let clockOffsetFile {
                let live = environment.now, offset = movableOffset, fixed = clockOffset
                offset.read(clockOffsetFile)
                environment.now = { live() + offset.seconds }
                offsetSeconds = { fixed + offset.seconds }
                logger.warning("clock offset read from \(clockOffsetFile) (--clock-offset-file is for tests only)")
            }
            let store: any FactorStore
            switch settings.store {
            case .files:
                let bootID = BootID.read(path: bootIdFile ?? BootID.kernelPath)
                if let bootIdFile { logger.warning("boot id read from \(bootIdFile) (--boot-id-file is for tests only)") }
                if let journalFlushBound {
                    logger.warning("replay journal flush bound \(journalFlushBound) ms (--journal-flush-bound is for tests only)")
                }
                let shift = offsetSeconds
                let files = try FileStore(path: settings.stateDirectory, bootID: bootID,
                                      clock: { FileStore.wallClockMilliseconds() + shift() * 1000 },
                                      journalFlushBound: journalFlushBound ?? ReplayJournal.defaultFlushBound,
                                      window: settings.window)
                fileStore = files
                durability = files
                store = files
            case .postgresql:
                let fleet = try PostgresStore(settings: FleetSettings(settings, hostName: environment.hostName), logger: logger,
                                              marksFile: FleetMarksFile(directory: settings.stateDirectory))
                // Not fatal: while the database is down, logins follow the PAM module's failmode.
                fleet.connectNow()
                durability = fleet.durability
                store = fleet
            }
            if let randomSeed {
                let seeded = SeededRandom(seed: randomSeed)
                environment.randomBytes = { seeded.bytes($0) }
                logger.warning("random bytes from a fixed seed (--random-seed is for tests only: every secret and code is predictable)")
            }
            // The offline cache's ages follow the daemon's clock (and its test offsets).
            (store as? PostgresStore)?.clock = environment.now
            authority = try Authority(config: settings, store: store, environment: environment, logger: logger)
        } catch {
            logger.critical("\(error)")
            throw ExitCode(1)
        }
        let server: Server
        do {
            server = try Server(authority: authority, durability: durability ?? CommittedOnWrite(), socketPath: settings.socketPath,
                                inheritedSocket: try ServiceManager.inheritedListeningSocket(), logger: logger)
        } catch {
            logger.critical("\(error)")
            throw ExitCode(1)
        }
        server.reloadConfig = {
            if let clockOffsetFile { movableOffset.read(clockOffsetFile) }
            do {
                let fresh = try loadConfig(path: path, explicit: true)
                if fresh.stateDirectory != settings.stateDirectory || fresh.socketPath != settings.socketPath {
                    logger.warning("state_dir and socket changes take effect at the next restart")
                }
                if !FleetCommands.sameStore(fresh, settings) {
                    logger.warning("store and database changes take effect at the next restart")
                }
                fileStore?.replayWindow = fresh.window
                var applied = fresh
                applied.stateDirectory = settings.stateDirectory
                applied.socketPath = settings.socketPath
                return applied
            } catch {
                let every = (error as? ConfigError).map { $0.all.map { "\($0)" }.joined(separator: "; ") } ?? "\(error)"
                logger.error("reload refused, keeping the old configuration: \(every)")
                return nil
            }
        }
        server.run()
    }
}

/// The offset of --clock-offset-file (tests only). One thread reads and writes it: the daemon's.
final class MovableOffset: @unchecked Sendable {
    var seconds: Int64 = 0
    func read(_ path: String) {
        guard let file = fopen(path, "r") else { return }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 32)
        guard fgets(&buffer, 32, file) != nil else { return }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        seconds = Int64(text.split(separator: "\n").first.map(String.init) ?? "") ?? 0
    }
}
let movableOffset = MovableOffset()

/// The generator of --random-seed (tests only): HMAC-SHA256(seed, counter) blocks, one after
/// the other. One thread uses it: the daemon's.
final class SeededRandom: @unchecked Sendable {
    let key: [UInt8]
    var counter: UInt64 = 0
    init(seed: String) { key = Array(seed.utf8) }
    func bytes(_ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        while out.count < count {
            counter += 1
            out += Crypto.hmac(.sha256, key: key, message: (0..<8).map { UInt8(truncatingIfNeeded: counter >> (56 - 8 * $0)) })
        }
        return Array(out.prefix(count))
    }
}
