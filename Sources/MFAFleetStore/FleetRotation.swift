// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFASys
import Logging
import MFACore
import MFAStore

/// Rotating the fleet key (docs/fleet.md, "Rotating the fleet key"). Every host first holds both
/// keys (`fleet_new_key_file`); then `mfagated --rotate-key FILE` (what `mfagate fleet rotate-key
/// --new FILE` runs) names the new key in `mfagate_meta` (new rows are sealed under it) and
/// re-seals every row under it, at the row's own version: a re-sealed row says exactly what it
/// said before, so the rotation can neither launder a rolled-back row nor conflict with a login.
/// A host that wrote a row under the old key meanwhile (it had read it just before) is caught by
/// the next pass; passes repeat until no row is left on another key.
extension PostgresStore {
    public struct KeyCount: Equatable, Sendable {
        public var keyID: String
        public var rows: Int
    }

    /// Rows per key id, and the key the database seals new rows under.
    public func keyStatus() throws(StoreError) -> (counts: [KeyCount], sealing: String) {
        forgetLastCheck()
        let result = try withDatabase { (db: DatabaseConnection) throws(DatabaseError) in
            try db.run("SELECT key_id, count(*) FROM mfagate_users GROUP BY key_id ORDER BY key_id")
        }
        let counts = result.rows.map { KeyCount(keyID: $0[0] ?? "", rows: $0[1].flatMap { Int($0) } ?? 0) }
        forgetLastCheck()
        let meta = try withDatabase { (db: DatabaseConnection) throws(DatabaseError) in
            try db.run("SELECT value FROM mfagate_meta WHERE key = 'key_id'")
        }
        return (counts, meta.rows.first?[0] ?? "")
    }

    /// Names the new key for new rows, then re-seals every row sealed under another key. Returns
    /// the number re-sealed and the rows that could not be (name and why).
    public func rotate(to newID: String, passes: Int = 20) throws(StoreError) -> (resealed: Int, problems: [String: String]) {
        guard let target = keys.cipher(id: newID) else { throw .unavailable(detail: "the new key \(newID) is not loaded") }
        forgetLastCheck()
        _ = try withDatabase { (db: DatabaseConnection) throws(DatabaseError) in
            try db.run("UPDATE mfagate_meta SET value = $1 WHERE key = 'key_id'", [.text(newID)])
        }
        sealingKeyID = newID
        var resealed = 0
        var problems: [String: String] = [:]
        for _ in 0..<passes {
            forgetLastCheck()
            let rows = try withDatabase { (db: DatabaseConnection) throws(DatabaseError) in
                try db.run("SELECT name, version, sealed, key_id FROM mfagate_users WHERE key_id <> $1 ORDER BY name", [.text(newID)])
            }.rows
            let pending = rows.filter { problems[$0[0] ?? ""] == nil }
            if pending.isEmpty { break }
            for row in pending {
                guard let name = row[0], let version = row[1].flatMap({ Int64($0) }),
                      let sealed = row[2].flatMap({ DatabaseConnection.bytea($0) }) else { continue }
                guard let (opened, _) = keys.open(sealed, user: name, version: version, keyID: row[3] ?? "") else {
                    problems[name] = "its row does not open with either key (damaged, or sealed under a third key): reset the user"
                    continue
                }
                var plain = opened.plain
                defer { mfa_wipe(&plain, plain.count) }
                let fresh: [UInt8]
                do {
                    // The same format: a schema-version-1 row (no sealed version) stays one, so the
                    // rotation never vouches for a version a database writer may have set.
                    fresh = opened.versionSealed ? try target.seal(plain, user: name, version: version) : try target.sealLegacy(plain, user: name)
                } catch {
                    throw .unavailable(detail: "\(error)")
                }
                forgetLastCheck()
                let result = try withDatabase { (db: DatabaseConnection) throws(DatabaseError) in
                    try db.run("UPDATE mfagate_users SET sealed = $1, key_id = $2 WHERE name = $3 AND version = $4::bigint AND key_id = $5",
                               [.bytes(fresh), .text(newID), .text(name), .text(String(version)), .text(row[3] ?? "")])
                }
                resealed += result.affected
            }
        }
        return (resealed, problems)
    }
}

extension FleetCommands {
    /// Opens the fleet store as `migrate` does (root reads the keys), with `extraKey` (if any) as
    /// the second key. nil: the sentence was printed.
    static func openFleet(_ settings: DaemonConfig, extraKey: String?, hostName: String, logger: Logger) -> PostgresStore? {
        guard settings.store == .postgresql else {
            mfa_write_stderr("mfagated: \(settings.file.isEmpty ? "the config" : settings.file) does not say `store = postgresql`\n")
            return nil
        }
        var fleetSettings = FleetSettings(settings, hostName: hostName)
        if let extraKey { fleetSettings.newKeyFile = extraKey }
        var st = stat()
        let owner = stat(settings.stateDirectory, &st) == 0 ? st.st_uid : geteuid()
        do {
            let fleet = try PostgresStore(settings: fleetSettings, logger: logger, secretOwner: geteuid() == 0 ? owner : geteuid())
            guard fleet.connectNow() else {
                mfa_write_stderr("mfagated: the fleet database is unreachable; see the message above\n")
                return nil
            }
            return fleet
        } catch {
            mfa_write_stderr("mfagated: \(error)\n")
            return nil
        }
    }

    static func describe(_ fleet: PostgresStore, _ settings: DaemonConfig) -> String {
        guard let status = try? fleet.keyStatus() else { return "the fleet database failed; see the message above\n" }
        func label(_ id: String) -> String {
            if id == fleet.keys.primary.keyID { return "\(id) (fleet_key_file \(fleet.settings.keyFile))" }
            if id == fleet.keys.extra?.keyID { return "\(id) (new key \(fleet.settings.newKeyFile ?? ""))" }
            return "\(id.isEmpty ? "(none)" : id) (a key this host does not hold)"
        }
        var out = "new rows are sealed under key \(label(status.sealing))\n"
        for count in status.counts {
            out += "\(count.rows) row(s) under key \(label(count.keyID))\n"
        }
        let left = status.counts.filter { $0.keyID != status.sealing }.reduce(0) { $0 + $1.rows }
        out += left == 0 ? "no row is left on another key\n" : "\(left) row(s) left on another key\n"
        return out
    }

    /// `mfagate fleet key-status`. Exit 0: every row is under the sealing key; 1: some are not.
    public static func keyStatus(_ settings: DaemonConfig, hostName: String, logger: Logger) -> Int32 {
        guard let fleet = openFleet(settings, extraKey: nil, hostName: hostName, logger: logger) else { return 2 }
        let text = describe(fleet, settings)
        print(text, terminator: "")
        return text.contains("no row is left on another key") ? 0 : 1
    }

    /// `mfagate fleet rotate-key --new FILE`. Exit 0: every row is under the new key.
    public static func rotateKey(_ settings: DaemonConfig, newKeyFile: String, hostName: String, logger: Logger) -> Int32 {
        guard let fleet = openFleet(settings, extraKey: newKeyFile, hostName: hostName, logger: logger),
              let newID = fleet.keys.extra?.keyID else { return 2 }
        do {
            let (resealed, problems) = try fleet.rotate(to: newID)
            print("\(resealed) row(s) re-sealed under the new key \(newID)")
            for (user, why) in problems.sorted(by: { $0.key < $1.key }) { print("\(user): left on the old key: \(why)") }
        } catch {
            mfa_write_stderr("mfagated: \(error)\n")
            return 2
        }
        let text = describe(fleet, settings)
        print(text, terminator: "")
        guard text.contains("no row is left on another key") else { return 1 }
        print("next, on every host: fleet_key_file = \(newKeyFile), no fleet_new_key_file, restart mfagated; then destroy the old key")
        return 0
    }
}
