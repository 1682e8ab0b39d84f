// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFASys
import Logging

/// swift-log back end writing one plain line per event to stderr: `LEVEL message key=value ...`.
/// Used when stderr is not journald's stream (see JournalLogHandler for the structured entries).
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public init(level: Logger.Level = .info) { logLevel = level }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.isEmpty ? (event.metadata ?? [:]) : metadata.merging(event.metadata ?? [:]) { $1 }
        var line = "\(event.level) " + LineLogHandler.render(message: "\(event.message)", metadata: merged)
        line += "\n"
        line.withCString { mfa_write_stderr($0) }
    }

    /// `message key=value ...` with keys sorted and values quoted if they hold a space or are empty;
    /// the same text is the MESSAGE of a journal entry. Built in one string without re-looking up
    /// keys: every login writes one of these lines.
    public static func render(message: String, metadata: Logger.Metadata) -> String {
        var line = message
        line.reserveCapacity(message.utf8.count + metadata.count * 24)
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            let text = value.description
            line += " "
            line += key
            line += "="
            if text.isEmpty || text.utf8.contains(UInt8(ascii: " ")) {
                line += "\""
                line += text
                line += "\""
            } else {
                line += text
            }
        }
        return line
    }
}
