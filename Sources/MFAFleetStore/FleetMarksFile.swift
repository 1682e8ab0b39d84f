// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
import MFASafeFile
#endif

/// Where a host keeps its high-water marks: `STATE/fleet-marks` (0600, the daemon's). A mark that
/// rises is appended as one line and flushed (`fdatasync`) before the daemon acts on the row, so a
/// login costs one short write, not a rewrite of every user's mark; when the appended lines
/// outnumber the marks (and at start), the file is rewritten compactly and atomically (a temporary
/// file, fsync, rename, fsync of the directory). A later line of a user wins over an earlier one;
/// a last line cut short by a crash is ignored. Written here rather than through FileStore, whose
/// opening takes the state directory's lock and pre-allocates the file store's journal.
///
/// Nothing in it may stop the daemon: a missing, damaged or unsafe file is reported by `load` and
/// the daemon goes on with no marks (it loses the rollback protection until it has read each user
/// again, not its availability).
public final class FleetMarksFile: @unchecked Sendable {
    public let directory: String
    public static let name = "fleet-marks"
    public static let maximumSize = 32 << 20
    /// Lines appended since the last rewrite (one thread, the daemon's, uses this).
    var appended = 0
    /// At least this many appended lines before a compaction (tests lower it).
    var compactAfter = 1024

    public init(directory: String) {
        self.directory = directory
    }

    /// Appends the new mark of `user` (compacting first when the appended lines outnumber the
    /// marks); throws one sentence naming the file. `durable: false` skips the `fdatasync` (the line
    /// survives a crash of the daemon, perhaps not of the machine): for a row only read, whose mark
    /// the next write's flush makes durable too.
    public func record(_ user: String, _ version: Int64, in marks: FleetMarks, durable: Bool = true) throws(FleetError) {
        if appended >= max(compactAfter, marks.versions.count) {
            try save(marks)
            return
        }
        let bytes = Array("\(user) \(version)\n".utf8)
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .unreadable(path: path, reason: "opening failed: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        guard n == bytes.count, !durable || fdatasync(fd) == 0 else {
            throw .unreadable(path: path, reason: "appending failed: \(String(cString: strerror(errno)))")
        }
        appended += 1
    }

    public var path: String { directory + "/" + FleetMarksFile.name }

    /// The marks, or a sentence saying why they could not be read (nil marks: start empty).
    public func load() -> (marks: FleetMarks, problem: String?) {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        if fd < 0 {
            let e = errno
            if e == ENOENT { return (FleetMarks(), nil) }
            return (FleetMarks(), "cannot open \(path): \(String(cString: strerror(e)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return (FleetMarks(), "\(path) is not a regular file") }
        guard st.st_uid == geteuid(), st.st_mode & 0o077 == 0 else {
            return (FleetMarks(), "\(path) is not private to the daemon's user (mode \(String(st.st_mode & 0o777, radix: 8)), uid \(st.st_uid))")
        }
        guard st.st_size <= FleetMarksFile.maximumSize else { return (FleetMarks(), "\(path) is larger than \(FleetMarksFile.maximumSize) bytes") }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var total = 0
        while total < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            total += n
        }
        // A last line without its newline was cut short by a crash: the mark it raised is lost (the
        // row it named was not acted on before the line was flushed).
        var complete = bytes[0..<total]
        while let last = complete.last, last != UInt8(ascii: "\n") { complete = complete.dropLast() }
        do {
            return (try FleetMarks.parse(String(decoding: complete, as: UTF8.self)), nil)
        } catch {
            return (FleetMarks(), "\(path) is damaged (\(error))")
        }
    }

    /// Replaces the file with one line per user; throws one sentence naming the file.
    public func save(_ marks: FleetMarks) throws(FleetError) {
        appended = 0
        let temporary = path + ".tmp"
        let bytes = Array(marks.serialize().utf8)
        func fail(_ operation: String) -> FleetError {
            .unreadable(path: path, reason: "\(operation) failed: \(String(cString: strerror(errno)))")
        }
        _ = unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw fail("creating \(temporary)") }
        if !writeAll(fd, bytes) {
            let error = fail("writing")
            close(fd)
            unlink(temporary)
            throw error
        }
        guard fsync(fd) == 0 else {
            let error = fail("fsync")
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let error = fail("rename")
            unlink(temporary)
            throw error
        }
        let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }
}
