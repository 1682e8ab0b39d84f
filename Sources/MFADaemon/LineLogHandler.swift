#if canImport(Glibc)
import Glibc
#endif
import CMFASys
import Logging

/// swift-log back end writing one plain line per event to stderr: `LEVEL message key=value ...`.
/// (journald gets structured fields in a later step; see issue 6.)
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public init(level: Logger.Level = .info) { logLevel = level }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = "\(event.level) \(event.message)"
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        for key in merged.keys.sorted() {
            let value = "\(merged[key]!)"
            let quoted = value.contains(" ") || value.isEmpty ? "\"\(value)\"" : value
            line += " \(key)=\(quoted)"
        }
        line += "\n"
        line.withCString { mfa_write_stderr($0) }
    }
}
