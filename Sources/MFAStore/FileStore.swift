#if canImport(Glibc)
import Glibc
#endif
import CMFASys
import MFACore

/// Why the store refused to start or to read or write a file. Each says what to fix, and where.
public enum StoreError: Error, Equatable, CustomStringConvertible {
    case unsafeDirectory(path: String, reason: String)
    case unsafeFile(path: String, reason: String)
    case damagedFile(path: String, detail: String)
    case inUse(path: String)
    case system(path: String, operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .unsafeDirectory(let path, let reason):
            return "refusing state directory \(path): \(reason)"
        case .unsafeFile(let path, let reason):
            return "refusing user file \(path): \(reason)"
        case .damagedFile(let path, let detail):
            return "cannot read user file \(path): \(detail); restore it from backup or re-enroll the user"
        case .inUse(let path):
            return "state directory \(path) is locked by another running mfagated"
        case .system(let path, let operation, let code):
            return "\(operation) \(path) failed: \(String(cString: strerror(code)))"
        }
    }
}

/// The only code that opens, reads or writes secret files.
///
/// Layout: `STATE/users/NAME` (0600) and `STATE/tmp/` for writes in progress, all owned by the
/// daemon's uid. Every file is opened relative to a directory descriptor with `O_NOFOLLOW`, checked
/// with `fstat`, and replaced atomically (temp file, fsync, rename, fsync dir), never rewritten in
/// place, so a crash leaves either the old or the new state.
public final class FileStore {
    public let path: String
    let owner: uid_t
    let rootFD: Int32
    let usersFD: Int32
    let tmpFD: Int32
    var tempCounter: UInt64 = 0

    /// Checks the state directory (not a symlink, a directory, owned by `owner`, not group- or
    /// world-writable), creates `users/` and `tmp/` inside it if missing, and takes an exclusive lock
    /// so a second daemon cannot write the same files.
    public init(path: String, owner: uid_t = geteuid()) throws(StoreError) {
        self.path = path
        self.owner = owner
        rootFD = try FileStore.openCheckedDirectory(at: AT_FDCWD, name: path, displayPath: path, owner: owner, create: false)
        if flock(rootFD, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            close(rootFD)
            throw e == EWOULDBLOCK ? .inUse(path: path) : .system(path: path, operation: "locking", errno: e)
        }
        do {
            usersFD = try FileStore.openCheckedDirectory(at: rootFD, name: "users", displayPath: path + "/users", owner: owner, create: true)
        } catch {
            close(rootFD)
            throw error
        }
        do {
            tmpFD = try FileStore.openCheckedDirectory(at: rootFD, name: "tmp", displayPath: path + "/tmp", owner: owner, create: true)
        } catch {
            close(usersFD); close(rootFD)
            throw error
        }
        removeStaleTemporaryFiles()
    }

    deinit {
        close(tmpFD); close(usersFD); close(rootFD)
    }

    static func openCheckedDirectory(at dirFD: Int32, name: String, displayPath: String, owner: uid_t,
                                     create: Bool) throws(StoreError) -> Int32 {
        var st = stat()
        if fstatat(dirFD, name, &st, AT_SYMLINK_NOFOLLOW) != 0 {
            let e = errno
            if e == ENOENT && create {
                if mkdirat(dirFD, name, 0o700) != 0 { throw .system(path: displayPath, operation: "creating", errno: errno) }
                if fstatat(dirFD, name, &st, AT_SYMLINK_NOFOLLOW) != 0 {
                    throw .system(path: displayPath, operation: "checking", errno: errno)
                }
            } else if e == ENOENT {
                throw .unsafeDirectory(path: displayPath, reason: "it does not exist (create it, owned by the daemon's user, mode 0700)")
            } else {
                throw .system(path: displayPath, operation: "checking", errno: e)
            }
        }
        if (st.st_mode & S_IFMT) == S_IFLNK {
            throw .unsafeDirectory(path: displayPath, reason: "it is a symbolic link (use the real directory)")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw .unsafeDirectory(path: displayPath, reason: "it is not a directory")
        }
        let fd = openat(dirFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw .system(path: displayPath, operation: "opening", errno: errno) }
        // Re-check on the descriptor: the name may have been swapped between fstatat and openat.
        if fstat(fd, &st) != 0 { let e = errno; close(fd); throw .system(path: displayPath, operation: "checking", errno: e) }
        if st.st_uid != owner {
            close(fd)
            throw .unsafeDirectory(path: displayPath, reason: "it is owned by uid \(st.st_uid), not by the daemon's uid \(owner) (chown it)")
        }
        if st.st_mode & 0o022 != 0 {
            close(fd)
            throw .unsafeDirectory(path: displayPath, reason: "it is group- or world-writable (chmod 0700 it)")
        }
        return fd
    }

    func removeStaleTemporaryFiles() {
        let dupFD = dup(tmpFD)
        guard dupFD >= 0, let dir = fdopendir(dupFD) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name == "." || name == ".." { continue }
            unlinkat(tmpFD, name, 0)
        }
    }

    func filePath(_ user: UserName) -> String { "\(path)/users/\(user.value)" }

    /// The user's record, or nil if the user has no file.
    public func load(_ user: UserName) throws(StoreError) -> UserRecord? {
        let display = filePath(user)
        guard var bytes = try readChecked(dirFD: usersFD, name: user.value, display: display,
                                          maximumSize: UserFileFormat.maximumSize) else { return nil }
        defer { mfa_wipe(&bytes, bytes.count) }
        do {
            return try UserFileFormat.parse(String(decoding: bytes, as: UTF8.self), expectedUser: user)
        } catch {
            throw .damagedFile(path: display, detail: error.description)
        }
    }

    /// Replaces the user's file with `record`, durably, before returning.
    public func save(_ record: UserRecord) throws(StoreError) {
        var bytes = Array(UserFileFormat.serialize(record).utf8)
        defer { mfa_wipe(&bytes, bytes.count) }
        try writeAtomically(dirFD: usersFD, dirDisplay: "\(path)/users", name: record.user.value, bytes: bytes)
    }

    /// Names of the daemon's own bookkeeping files at the top of the state directory.
    public enum StateFile: String, Sendable {
        case lockout, seen
    }

    public static let maximumStateFileSize = 8 << 20

    /// The text of a bookkeeping file, or nil if there is none yet.
    public func loadState(_ file: StateFile) throws(StoreError) -> String? {
        guard let bytes = try readChecked(dirFD: rootFD, name: file.rawValue, display: "\(path)/\(file.rawValue)",
                                          maximumSize: FileStore.maximumStateFileSize) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Replaces a bookkeeping file atomically and durably.
    public func saveState(_ file: StateFile, _ text: String) throws(StoreError) {
        try writeAtomically(dirFD: rootFD, dirDisplay: path, name: file.rawValue, bytes: Array(text.utf8))
    }

    /// Reads a whole file after checking, on the open descriptor, that it is a regular file owned by
    /// the daemon, private (no group/other bits) and not larger than `maximumSize`. nil: no file.
    func readChecked(dirFD: Int32, name: String, display: String, maximumSize: Int) throws(StoreError) -> [UInt8]? {
        let fd = openat(dirFD, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        if fd < 0 {
            let e = errno
            if e == ENOENT { return nil }
            if e == ELOOP { throw .unsafeFile(path: display, reason: "it is a symbolic link") }
            throw .system(path: display, operation: "opening", errno: e)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .system(path: display, operation: "checking", errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .unsafeFile(path: display, reason: "it is not a regular file") }
        guard st.st_uid == owner else {
            throw .unsafeFile(path: display, reason: "it is owned by uid \(st.st_uid), not by the daemon's uid \(owner)")
        }
        guard st.st_mode & 0o077 == 0 else {
            throw .unsafeFile(path: display, reason: "its mode \(String(st.st_mode & 0o777, radix: 8)) lets others read or write it (must be 0600)")
        }
        guard st.st_size <= maximumSize else {
            throw .damagedFile(path: display, detail: "larger than \(maximumSize) bytes")
        }
        // One byte more than the size says, to notice a file that grew since fstat.
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size) + 1)
        var total = 0
        while total < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                mfa_wipe(&bytes, bytes.count)
                throw .system(path: display, operation: "reading", errno: e)
            }
            if n == 0 { break }
            total += n
        }
        if total > maximumSize {
            mfa_wipe(&bytes, bytes.count)
            throw .damagedFile(path: display, detail: "larger than \(maximumSize) bytes")
        }
        let content = Array(bytes[0..<total])
        mfa_wipe(&bytes, bytes.count)
        return content
    }

    /// Temp file in `tmp/`, write, fsync, rename over `name`, fsync the directory: a crash at any
    /// point leaves the old or the new file, never a mix, and the new one survives power loss.
    func writeAtomically(dirFD: Int32, dirDisplay: String, name: String, bytes: [UInt8]) throws(StoreError) {
        let display = "\(dirDisplay)/\(name)"
        tempCounter &+= 1
        let tempName = "\(name).\(getpid()).\(tempCounter)"
        let fd = openat(tmpFD, tempName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .system(path: "\(path)/tmp/\(tempName)", operation: "creating", errno: errno) }
        var renamed = false
        defer {
            if !renamed { unlinkat(tmpFD, tempName, 0) }
        }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno; close(fd)
                throw .system(path: display, operation: "writing", errno: e)
            }
            written += n
        }
        if fsync(fd) != 0 { let e = errno; close(fd); throw .system(path: display, operation: "syncing", errno: e) }
        if close(fd) != 0 { throw .system(path: display, operation: "closing", errno: errno) }
        if renameat(tmpFD, tempName, dirFD, name) != 0 {
            throw .system(path: display, operation: "replacing", errno: errno)
        }
        renamed = true
        if fsync(dirFD) != 0 { throw .system(path: dirDisplay, operation: "syncing", errno: errno) }
    }

    /// Removes the user's file (no error if there is none).
    public func delete(_ user: UserName) throws(StoreError) {
        if unlinkat(usersFD, user.value, 0) != 0 {
            if errno == ENOENT { return }
            throw .system(path: filePath(user), operation: "removing", errno: errno)
        }
        if fsync(usersFD) != 0 { throw .system(path: "\(path)/users", operation: "syncing", errno: errno) }
    }
}
