// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
import MFASafeFile
import MFAStore
#endif

/// Where a host keeps its high-water marks: `STATE/fleet-marks` (0600, the daemon's). A mark that
/// rises is appended as one line (`write`, so a crash of the daemon loses nothing) before the daemon
/// acts on the row, and flushed (`fdatasync`) by a flush thread right after (MarksFlusher): a
/// login does not wait for the disk, and only a machine crash within that flush can lose the line
/// (docs/fleet.md, "High-water marks and power cuts"); when the appended lines
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
    /// Flushes appended lines on its own thread (started at the first append that asks for it).
    let flusher = MarksFlusher()

    public init(directory: String) {
        self.directory = directory
    }

    /// Appends the new mark of `user` (compacting first when the appended lines outnumber the
    /// marks); throws one sentence naming the file. The line is in the page cache when this
    /// returns (it survives a crash of the daemon); `durable` asks the flush thread to flush it
    /// now, without waiting for it; `durable: false` leaves that to the next flush (for a row only
    /// read). A flush that failed is reported by the next call.
    public func record(_ user: String, _ version: Int64, in marks: FleetMarks, durable: Bool = true) throws(FleetError) {
        if appended >= max(compactAfter, marks.versions.count) {
            try save(marks)
            return
        }
        let bytes = Array("\(user) \(version)\n".utf8)
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .unreadable(path: path, reason: "opening failed: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let n = bytes.withUnsafeBytes { raw -> Int in
            guard let base = raw.baseAddress else { return 0 }
            return write(fd, base, raw.count)
        }
        guard n == bytes.count else {
            throw .unreadable(path: path, reason: "appending failed: \(String(cString: strerror(errno)))")
        }
        appended += 1
        if durable { flusher.flush(dup(fd)) }
        let failed = flusher.takeFailure()
        if failed != 0 {
            throw .unreadable(path: path, reason: "flushing failed: \(String(cString: strerror(failed)))")
        }
    }

    /// Flushes what was appended, waiting for it (a clean stop).
    public func flushNow() {
        let fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fdatasync(fd)
        close(fd)
    }

    public var path: String { directory + "/" + FleetMarksFile.name }

    /// The marks, or a sentence saying why they could not be read (nil marks: start empty).
    public func load() -> (marks: FleetMarks, problem: String?) {
        let rules = SafeFileRules.secret(owner: geteuid(), maximumSize: FleetMarksFile.maximumSize)
        let bytes: [UInt8]
        do {
            bytes = try SafeFileReader.read(path, rules: rules).bytes
        } catch .missing {
            return (FleetMarks(), nil)
        } catch {
            return (FleetMarks(), error.sentence(path: path, what: "high-water marks file", rules: rules))
        }
        // A last line without its newline was cut short by a crash: the mark it raised is lost (the
        // row it named was not acted on before the line was flushed).
        var complete = bytes[...]
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

/// The marks file's flush thread: `flush` hands it a descriptor of the file and returns at once;
/// the thread calls `fdatasync` on it and closes it. While one flush runs, the newest descriptor
/// handed over waits for the next, so every line appended before a `flush` call is on disk at most
/// two flushes later, and a burst of logins shares one flush.
final class MarksFlusher: @unchecked Sendable {
    // @unchecked: `pending`, `failure` and `started` are only touched with `mutex` held.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let ready = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var pending: Int32 = -1
    private var failure: Int32 = 0
    private var started = false

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(ready, nil)
    }

    /// Takes ownership of `fd` (a descriptor of the marks file); flushes inline if no thread can
    /// be started.
    func flush(_ fd: Int32) {
        guard fd >= 0 else { return }
        pthread_mutex_lock(mutex)
        if !started {
            started = DetachedThread.start { [self] in run() }
            if !started {
                pthread_mutex_unlock(mutex)
                if fdatasync(fd) != 0 { note(errno) }
                close(fd)
                return
            }
        }
        if pending >= 0 { close(pending) }
        pending = fd
        pthread_cond_signal(ready)
        pthread_mutex_unlock(mutex)
    }

    /// The errno of a flush that failed since the last call, or 0.
    func takeFailure() -> Int32 {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        let f = failure
        failure = 0
        return f
    }

    private func note(_ code: Int32) {
        pthread_mutex_lock(mutex)
        failure = code
        pthread_mutex_unlock(mutex)
    }

    private func run() {
        while true {
            pthread_mutex_lock(mutex)
            while pending < 0 { pthread_cond_wait(ready, mutex) }
            let fd = pending
            pending = -1
            pthread_mutex_unlock(mutex)
            if fdatasync(fd) != 0 { note(errno) }
            close(fd)
        }
    }
}
