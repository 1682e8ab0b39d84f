// SPDX-License-Identifier: Apache-2.0
/// The fleet keys a host holds: `fleet_key_file`, and during a key rotation also
/// `fleet_new_key_file` (docs/fleet.md, "Rotating the fleet key"). Each row names the key that
/// sealed it (`mfagate_users.key_id`, a public HMAC-derived id); a host opens a row with that key
/// and writes it back under the same key, so hosts with both keys work with rows under either.
/// New rows are sealed under the key the database names in `mfagate_meta.key_id`, which
/// `mfagated --rotate-key` moves to the new key before it re-seals the old rows.
struct FleetKeyring: Sendable {
    let primary: FleetCipher
    let extra: FleetCipher?

    var all: [FleetCipher] { [primary] + (extra.map { [$0] } ?? []) }

    var ids: [String] { all.map(\.keyID) }

    func cipher(id: String) -> FleetCipher? {
        all.first { $0.keyID == id }
    }

    /// Opens a row: with the key its key_id names, else (rows of schema version 1, whose key_id
    /// was filled in by the migration, or a key_id a database writer changed) with every key held.
    func open(_ sealed: [UInt8], user: String, version: Int64, keyID: String) -> (opened: FleetCipher.Opened, cipher: FleetCipher)? {
        let ordered = (cipher(id: keyID).map { [$0] } ?? []) + all.filter { $0.keyID != keyID }
        for candidate in ordered {
            if let opened = candidate.open(sealed, user: user, version: version) { return (opened, candidate) }
        }
        return nil
    }
}
