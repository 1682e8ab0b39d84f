// SPDX-License-Identifier: Apache-2.0
/// The fleet database's tables, created and migrated by the daemon (docs/fleet.md). Each
/// migration runs once, in one transaction, under an advisory lock, so hosts starting together
/// do not race; `mfagate_schema` records which have run. A database migrated by a newer mfagated
/// is refused (this one would not know its rows), and so is a database whose rows were sealed
/// under another fleet key (`mfagate_meta.key_id`).
enum FleetSchema {
    /// Arbitrary, fixed: the advisory lock every mfagated takes while migrating.
    static let lockID = 0x6d66_6167_6174_65

    /// migrations[i] brings the schema from version i to i + 1.
    static let migrations: [String] = [
        """
        CREATE TABLE IF NOT EXISTS mfagate_users (
            name text PRIMARY KEY,
            version bigint NOT NULL,
            created bigint NOT NULL,
            sealed bytea NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            updated_by text NOT NULL DEFAULT ''
        );
        CREATE TABLE IF NOT EXISTS mfagate_failures (
            kind text NOT NULL CHECK (kind IN ('user', 'rhost')),
            key text NOT NULL,
            version bigint NOT NULL,
            locked_until bigint,
            failures text NOT NULL DEFAULT '',
            PRIMARY KEY (kind, key)
        );
        CREATE TABLE IF NOT EXISTS mfagate_first_seen (
            name text PRIMARY KEY,
            first_seen bigint NOT NULL
        );
        CREATE TABLE IF NOT EXISTS mfagate_meta (
            key text PRIMARY KEY,
            value text NOT NULL
        );
        """,
        // Version 2 (issue 16): each row names the key that sealed it (key rotation); rows of
        // version 1 were all sealed under the key the database then named.
        """
        ALTER TABLE mfagate_users ADD COLUMN IF NOT EXISTS key_id text NOT NULL DEFAULT '';
        UPDATE mfagate_users SET key_id = coalesce((SELECT value FROM mfagate_meta WHERE key = 'key_id'), '') WHERE key_id = ''
        """,
    ]
}

extension PostgresStore {
    /// Brings the schema up to `schemaVersion` and checks the fleet key against the database's.
    func prepareSchema(_ db: DatabaseConnection) throws(DatabaseError) {
        // Records are read as text: bytea must come as \x hex whatever the server's or role's default.
        _ = try db.run("SET bytea_output = 'hex'")
        _ = try db.run("CREATE TABLE IF NOT EXISTS mfagate_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        var current = try schemaVersion(db)
        if current > PostgresStore.schemaVersion {
            throw .refused("the fleet database has schema version \(current), newer than this mfagated knows (\(PostgresStore.schemaVersion)); upgrade mfagated on this host")
        }
        if current < PostgresStore.schemaVersion {
            _ = try db.run("BEGIN")
            do {
                _ = try db.run("SELECT pg_advisory_xact_lock(\(FleetSchema.lockID))")
                current = try schemaVersion(db)
                while current < PostgresStore.schemaVersion {
                    for statement in FleetSchema.migrations[current].split(separator: ";") where !statement.allSatisfy({ $0.isWhitespace }) {
                        _ = try db.run(String(statement))
                    }
                    current += 1
                    _ = try db.run("INSERT INTO mfagate_schema (version) VALUES ($1)", [.text(String(current))])
                    logger.notice("fleet database schema migrated to version \(current)")
                }
                _ = try db.run("COMMIT")
            } catch {
                _ = try? db.run("ROLLBACK")
                throw error
            }
        }
        let id = keys.primary.keyID
        _ = try db.run("INSERT INTO mfagate_meta (key, value) VALUES ('key_id', $1) ON CONFLICT (key) DO NOTHING", [.text(id)])
        let stored = try db.run("SELECT value FROM mfagate_meta WHERE key = 'key_id'").rows.first?[0] ?? nil
        guard let stored, keys.cipher(id: stored) != nil else {
            let held = settings.newKeyFile.map { " nor fleet_new_key_file \($0) (id \(keys.extra?.keyID ?? ""))" } ?? ""
            throw .refused("the fleet key \(settings.keyFile) (id \(id))\(held) is not the key this fleet database was sealed with (id \(stored ?? "none")); copy the fleet's key to this host")
        }
        sealingKeyID = stored
    }

    func schemaVersion(_ db: DatabaseConnection) throws(DatabaseError) -> Int {
        let rows = try db.run("SELECT coalesce(max(version), 0) FROM mfagate_schema").rows
        return rows.first?[0].flatMap { Int($0) } ?? 0
    }
}
