// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFASys
import Logging
import MFACore
import MFAStore

/// The daemon binary's one-shot fleet tasks (docs/fleet.md). They live in mfagated because it is
/// the only program that holds secrets: the CLI never reads a user file or the fleet key.
public enum FleetCommands {
    public static func sameStore(_ a: DaemonConfig, _ b: DaemonConfig) -> Bool {
        a.store == b.store && a.databaseURL == b.databaseURL && a.databasePasswordFile == b.databasePasswordFile
            && a.fleetKeyFile == b.fleetKeyFile && a.databaseTimeout == b.databaseTimeout && a.databaseRetry == b.databaseRetry
            && a.fleetNewKeyFile == b.fleetNewKeyFile && a.databaseInsecure == b.databaseInsecure
            && a.fleetOffline == b.fleetOffline && a.fleetOfflineMaxAge == b.fleetOfflineMaxAge
    }

    /// Copies every enrollment of `state_dir` into the fleet database; prints one line per user,
    /// never a secret. Run as root, it reads the fleet key first and then works as the state
    /// directory's owner (the daemon's user), so the files it reads are checked as the daemon does.
    /// Returns the exit code: 0 done, 1 some user failed or conflicted, 2 cannot start.
    public static func migrate(_ settings: DaemonConfig, hostName: String, logger: Logger) -> Int32 {
        func fail(_ message: String) -> Int32 {
            mfa_write_stderr("mfagated: \(message)\n")
            return 2
        }
        guard settings.store == .postgresql else {
            return fail("set `store = postgresql` and `database_url` in \(settings.file.isEmpty ? "the config" : settings.file) first; migrate-store copies into that database")
        }
        var st = stat()
        guard stat(settings.stateDirectory, &st) == 0 else {
            return fail("cannot read state_dir \(settings.stateDirectory): \(String(cString: strerror(errno)))")
        }
        let fleet: PostgresStore
        do {
            fleet = try PostgresStore(settings: FleetSettings(settings, hostName: hostName), logger: logger,
                                      secretOwner: geteuid() == 0 ? st.st_uid : geteuid())
        } catch {
            return fail("\(error)")
        }
        if geteuid() == 0 && st.st_uid != 0 {
            guard setgroups(0, nil) == 0, setgid(st.st_gid) == 0, setuid(st.st_uid) == 0 else {
                return fail("cannot switch to the state directory's owner uid \(st.st_uid): \(String(cString: strerror(errno)))")
            }
        }
        let files: FileStore
        do {
            files = try FileStore(path: settings.stateDirectory)
        } catch {
            if case .inUse = error {
                return fail("\(error): stop mfagated on this host first (the copy must not race its logins)")
            }
            return fail("\(error)")
        }
        fleet.attachMarks(FleetMarksFile(directory: settings.stateDirectory))
        // The marks are flushed on a flush thread; this process does not wait for it otherwise.
        defer { fleet.marksFile?.flushNow() }
        guard fleet.connectNow() else { return fail("the fleet database is unreachable; see the message above") }
        var failures = 0
        let users = files.listUsers()
        for user in users {
            let outcome = fleet.migrate(user: user, from: files)
            if outcome.isFailure { failures += 1 }
            print("\(user.value): \(outcome.text)")
        }
        do {
            if let text = try files.loadState(.seen) {
                try fleet.migrateFirstSeen(try FirstSeenBook.parse(text))
            }
        } catch {
            mfa_write_stderr("mfagated: first sightings (grace periods) not copied: \(error)\n")
            failures += 1
        }
        print("\(users.count) user(s) checked, \(failures) problem(s); set `store = postgresql` on this host and start mfagated")
        return failures == 0 ? 0 : 1
    }
}
