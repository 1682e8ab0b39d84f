// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import MFACore

/// The records of `mode = audit` (`STATE/audit`, AuditRecord's lines), written by the daemon only.
///
/// Append-only: one line per login, appended with one write (a line torn by a crash is ended
/// before the next append and then skipped when read). Bounded: once the file passes `cap`
/// bytes it becomes `audit.1` (replacing the older one), so the two hold at most about twice the
/// cap. Not fsynced: a crash of the daemon keeps every line (page cache); a power cut may lose the
/// last seconds, which a report-only record can afford. Nothing in these files can stop the daemon:
/// it never reads them at start, and `read` skips and counts lines it cannot parse.
/// It always lives in this host's state directory, also in fleet mode (a record of this host's logins).
public final class AuditLog {
    public static let defaultCap = 4 << 20
    static let header = "# mfagate audit records (mode = audit): time, user, service, rhost, decision, rule, reason; written by mfagated"

    private let openFiles: () throws(StoreError) -> FileStore
    private var files: FileStore?
    /// Bytes in `audit`, learned at the first append.
    private var size: Int?
    let cap: Int

    /// `openFiles`: the file store of the state directory (opened on first use in fleet mode).
    public init(cap: Int = AuditLog.defaultCap, openFiles: @escaping () throws(StoreError) -> FileStore) {
        self.cap = cap
        self.openFiles = openFiles
    }

    private func store() throws(StoreError) -> FileStore {
        if let files { return files }
        let opened = try openFiles()
        files = opened
        return opened
    }

    /// Appends one record, moving the file aside first when it is over the cap.
    public func append(_ record: AuditRecord) throws(StoreError) {
        let files = try store()
        let line = record.line + "\n"
        var current: Int
        if let size { current = size } else { current = try files.stateFileSize(.audit) }
        if current >= cap {
            try files.renameState(.audit, to: .auditPrevious)
            current = 0
        }
        if try !files.appendState(.audit, line, durable: false) {
            try files.saveState(.audit, Self.header + "\n" + line, durable: false)
            current = Self.header.utf8.count + 1
        }
        size = current + line.utf8.count
    }

    /// Every readable record at or after `since` (oldest first), the number of lines skipped
    /// (torn, damaged, not ours), and a sentence for each file that could not be read at all.
    public func read(since: Int64) -> (records: [AuditRecord], skipped: Int, problems: [String]) {
        var records: [AuditRecord] = []
        var skipped = 0
        var problems: [String] = []
        let files: FileStore
        do { files = try store() } catch {
            return ([], 0, ["\(error)"])
        }
        for file in [FileStore.StateFile.auditPrevious, .audit] {
            let text: String?
            do { text = try files.loadState(file) } catch {
                problems.append("\(error)")
                continue
            }
            guard let text else { continue }
            for line in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
                if line.first == UInt8(ascii: "#") { continue }
                guard let record = AuditRecord.parse(Substring(line)) else { skipped += 1; continue }
                if record.time >= since { records.append(record) }
            }
        }
        return (records, skipped, problems)
    }
}

extension FileStore {
    /// The size of a bookkeeping file (0 if there is none), without following a link.
    func stateFileSize(_ file: StateFile) throws(StoreError) -> Int {
        var st = stat()
        if fstatat(rootFD, file.rawValue, &st, AT_SYMLINK_NOFOLLOW) != 0 {
            if errno == ENOENT { return 0 }
            throw .system(path: "\(path)/\(file.rawValue)", operation: "checking", errno: errno)
        }
        return Int(st.st_size)
    }

    /// Renames one bookkeeping file to another (replacing it); nothing to do if there is none.
    func renameState(_ file: StateFile, to target: StateFile) throws(StoreError) {
        if renameat(rootFD, file.rawValue, rootFD, target.rawValue) != 0 && errno != ENOENT {
            throw .system(path: "\(path)/\(file.rawValue)", operation: "moving aside", errno: errno)
        }
    }
}
