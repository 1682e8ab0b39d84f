// SPDX-License-Identifier: Apache-2.0
/// A host's high-water marks (docs/fleet.md, "What the database can and cannot do to you"): for
/// every user whose row this host has read or written, the highest row version it has seen. The
/// version is inside each row's seal (FleetCipher), so a database writer cannot raise it; a row
/// older than the mark is a rollback (a restored backup, an old row put back) and a missing row of a
/// marked user is a deletion, and both are refused. Kept in `STATE/fleet-marks` (FleetMarksFile),
/// `user version` lines; of several lines of one user the highest version counts.
///
/// Version 0 marks a user seen only in a row of schema version 1 (no version inside its seal):
/// its disappearance is still noticed.
public struct FleetMarks: Equatable, Sendable {
    public private(set) var versions: [String: Int64] = [:]
    /// Bound on the file (and memory): beyond it new users are not marked (one log line says so).
    public static let maximumUsers = 200_000
    static let header = "# mfagate fleet high-water marks v1 (written by mfagated; deleting it removes the rollback protection)"

    public init() {}

    public subscript(user: String) -> Int64? { versions[user] }

    /// Raises the mark of `user` to `version`. Returns whether it changed (the file must be
    /// rewritten), nil if the user is new and the marks are full.
    public mutating func raise(_ user: String, to version: Int64) -> Bool? {
        if let old = versions[user] {
            guard version > old else { return false }
        } else if versions.count >= FleetMarks.maximumUsers {
            return nil
        }
        versions[user] = version
        return true
    }

    public func serialize() -> String {
        var out = FleetMarks.header + "\n"
        for (user, version) in versions.sorted(by: { $0.key < $1.key }) {
            out += "\(user) \(version)\n"
        }
        return out
    }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var line: Int
        public var description: String { "line \(line) is not `user version`" }
    }

    public static func parse(_ text: String) throws(ParseError) -> FleetMarks {
        var marks = FleetMarks()
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count == 2, !fields[0].isEmpty, let version = Int64(fields[1]), version >= 0 else {
                throw ParseError(line: index + 1)
            }
            _ = marks.raise(String(fields[0]), to: version)  // beyond maximumUsers: not marked
        }
        return marks
    }
}
