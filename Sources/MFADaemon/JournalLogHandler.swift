// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFASystemd
import Logging

/// The pure mapping from a swift-log event to journald fields (systemd.journal-fields(7)), kept apart
/// from the sending so it can be tested without a journal.
public enum JournalFields {
    public static let syslogIdentifier = "mfagated"

    /// A stable MESSAGE_ID per kind of event, so admins can select them (`journalctl MESSAGE_ID=…`)
    /// whatever the wording. Matched against the start of the log message. Never change an ID.
    public static let messageIDs: [(prefix: String, id: String)] = [
        ("login timed out", "45e268e459d3421b8598e7cf09fbb91e"),
        ("login", "7d0d0ab36ec24c3ebdc12cc3ee8182d0"),
        // Every enrollment change (enrolled, disabled, reset, imported, codes regenerated or used);
        // the kind is in MFAGATE_EVENT.
        ("enrollment change", "cd16482ad6b24c8eaf995edf13030e16"),
        // A second factor added at the login prompt (any enroll_at_login): worth an alert.
        ("enrolled at login", "7ce5e6e3279c4fa5a0c934429d52edfc"),
        ("refused", "05fda9ea7b0042919a81d65c8f14c23a"),
        ("ready", "dd04c02e147043e0a0a2784f2db848d8"),
        ("stopping", "113307d20e0a4ec4a258cd0271360018"),
        ("stopped", "7fde87a154b04c00b41ca1258eadca91"),
        ("configuration reloaded", "76f04411b0184ca1b833bfd77ba1e152"),
        ("reload refused", "bec3fe5aec09406198e29667e895cdbb"),
        ("protocol error", "1d3f131d6bcc42bc87d06a880c69d41e"),
        ("connection refused", "4e09f3a82824428387d9699330c20436"),
        ("user locked out", "9b2f61c4d0a84e4f8e3c2a7d5b1e6f03"),
        ("address blocked", "c41d7e2a9f6b4d18a3e5b7c9d2f0a614"),
        ("unlock", "5e8a3c1f7b2d4e96a0c4f6b8d1e3a725"),
    ]

    /// The MESSAGE_ID for a message, matched on whole words so "login" does not claim "loginfoo".
    public static func messageID(for message: String) -> String? {
        for entry in messageIDs where message.hasPrefix(entry.prefix) {
            let rest = message.dropFirst(entry.prefix.count)
            if rest.isEmpty || rest.first == " " || rest.first == ":" || rest.first == "," { return entry.id }
        }
        return nil
    }

    /// syslog priority (0 emerg … 7 debug) for a swift-log level.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// `user` → `MFAGATE_USER`: journal field names allow only A–Z, 0–9 and `_`, at most 64 bytes.
    public static func fieldName(forMetadataKey key: String) -> String {
        let cleaned = key.uppercased().unicodeScalars.map { scalar -> Character in
            let isAllowed = (scalar >= "A" && scalar <= "Z") || (scalar >= "0" && scalar <= "9")
            return isAllowed ? Character(scalar) : "_"
        }
        return String(("MFAGATE_" + String(cleaned)).prefix(64))
    }

    /// The entry for one event: MESSAGE (the same text a plain line carries, without the level),
    /// PRIORITY, SYSLOG_IDENTIFIER, MESSAGE_ID when the kind is known, one MFAGATE_* field per
    /// metadata key (sorted, so entries are reproducible), and the source location.
    public static func make(level: Logger.Level, message: String, metadata: Logger.Metadata,
                            file: String = "", function: String = "", line: UInt = 0) -> [String] {
        var fields = [
            "MESSAGE=" + LineLogHandler.render(message: message, metadata: metadata),
            "PRIORITY=\(priority(level))",
            "SYSLOG_IDENTIFIER=\(syslogIdentifier)",
        ]
        if let id = messageID(for: message) { fields.append("MESSAGE_ID=\(id)") }
        for key in metadata.keys.sorted() {
            fields.append("\(fieldName(forMetadataKey: key))=\(metadata[key]!)")
        }
        if !file.isEmpty {
            fields.append("CODE_FILE=\(file)")
            fields.append("CODE_LINE=\(line)")
            fields.append("CODE_FUNC=\(function)")
        }
        return fields
    }

    /// Sends fields to journald (its native protocol, CMFASystemd); returns 0 or -errno.
    public static func send(_ fields: [String]) -> Int32 {
        let limited = fields.prefix(64)
        var blob: [UInt8] = []
        var offsets: [Int] = []
        var lengths: [Int] = []
        for field in limited {
            offsets.append(blob.count)
            let bytes = Array(field.utf8)
            lengths.append(bytes.count)
            blob.append(contentsOf: bytes)
        }
        blob.append(0)
        return blob.withUnsafeBufferPointer { base -> Int32 in
            guard let start = base.baseAddress else { return -EINVAL }
            let raw = UnsafeRawPointer(start).assumingMemoryBound(to: CChar.self)
            let pointers: [UnsafePointer<CChar>?] = offsets.map { raw + $0 }
            return pointers.withUnsafeBufferPointer { fieldPointers in
                lengths.withUnsafeBufferPointer { lengthPointer in
                    mfa_sd_journal_send(fieldPointers.baseAddress, lengthPointer.baseAddress, limited.count)
                }
            }
        }
    }

    /// journald's socket for native entries (the path libsystemd writes to).
    public static let journalSocketPath = "/run/systemd/journal/socket"

    /// True when systemd connected stderr to journald (JOURNAL_STREAM names our stderr) and the
    /// journal's socket is there: then structured entries replace plain lines. The socket is checked
    /// because without it there is no journal to take structured entries.
    public static var shouldUseJournal: Bool {
        mfa_stderr_is_journal_stream() != 0 && access(journalSocketPath, W_OK) == 0
    }
}

/// swift-log back end for journald: one structured entry per event (fields as JournalFields.make).
/// If the journal cannot take an entry, the event is written as a plain line to stderr instead
/// (which systemd also forwards to the journal), so nothing is lost.
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public init(level: Logger.Level = .info) { logLevel = level }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = JournalFields.make(level: event.level, message: "\(event.message)", metadata: merged,
                                        file: event.file, function: event.function, line: event.line)
        if JournalFields.send(fields) < 0 {
            var fallback = LineLogHandler(level: logLevel)
            fallback.metadata = metadata
            fallback.log(event: event)
        }
    }
}
