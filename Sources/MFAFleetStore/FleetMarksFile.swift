#if canImport(Glibc)
import Glibc
#endif

/// Where a host keeps its high-water marks: `STATE/fleet-marks` (0600, the daemon's), replaced
/// atomically (a temporary file, fsync, rename, fsync of the directory) whenever a mark rises, so a
/// crash leaves the old or the new file. Written here rather than through FileStore, whose opening
/// takes the state directory's lock and pre-allocates the file store's journal.
///
/// Nothing in it may stop the daemon: a missing, damaged or unsafe file is reported by `load` and
/// the daemon goes on with no marks (it loses the rollback protection until it has read each user
/// again, not its availability).
public struct FleetMarksFile: Sendable {
    public let directory: String
    public static let name = "fleet-marks"
    public static let maximumSize = 16 << 20

    public init(directory: String) {
        self.directory = directory
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
        do {
            return (try FleetMarks.parse(String(decoding: bytes[0..<total], as: UTF8.self)), nil)
        } catch {
            return (FleetMarks(), "\(path) is damaged (\(error))")
        }
    }

    /// Replaces the file; throws one sentence naming the file.
    public func save(_ marks: FleetMarks) throws(FleetError) {
        let temporary = path + ".tmp"
        let bytes = Array(marks.serialize().utf8)
        func fail(_ operation: String) -> FleetError {
            .unreadable(path: path, reason: "\(operation) failed: \(String(cString: strerror(errno)))")
        }
        _ = unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw fail("creating \(temporary)") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                let error = fail("writing")
                close(fd)
                unlink(temporary)
                throw error
            }
            written += n
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
