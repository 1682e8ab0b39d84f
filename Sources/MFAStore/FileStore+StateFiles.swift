// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
import MFASafeFile
#endif

/// The daemon's own bookkeeping files at the top of the state directory (`lockout`, `seen`):
/// replaced whole, or appended to line by line (BookFiles.swift), never read back half-written
/// without notice.
extension FileStore {
    public enum StateFile: String, Sendable {
        case lockout, seen, invites
        /// `mode = audit` records (AuditLog.swift) and the older ones, moved aside at the size cap.
        case audit, auditPrevious = "audit.1"
    }

    public static let maximumStateFileSize = 8 << 20

    /// The text of a bookkeeping file, or nil if there is none yet.
    public func loadState(_ file: StateFile) throws(StoreError) -> String? {
        guard let (bytes, _) = try readChecked(dirFD: rootFD, name: file.rawValue, display: "\(path)/\(file.rawValue)",
                                               maximumSize: FileStore.maximumStateFileSize) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Replaces a bookkeeping file atomically. `durable: false` skips the fsyncs: the new file
    /// survives a crash of the daemon (it is in the page cache) but perhaps not of the machine, which
    /// is the right price for counts of wrong codes written at every failure during a flood.
    public func saveState(_ file: StateFile, _ text: String, durable: Bool = true) throws(StoreError) {
        let bytes = Array(text.utf8)
        try writeAtomically(dirFD: rootFD, dirDisplay: path, name: file.rawValue, bytes: bytes, durable: durable)
        stateBytesWritten += bytes.count
    }

    /// Appends lines to a bookkeeping file, checked like a read (regular, the daemon's, 0600).
    /// False if there is no file yet (the caller writes it whole). A line torn by a crash in the
    /// middle of an earlier append is ended first, so it cannot run into the new one. `durable`:
    /// fdatasync before returning.
    public func appendState(_ file: StateFile, _ text: String, durable: Bool) throws(StoreError) -> Bool {
        let display = "\(path)/\(file.rawValue)"
        // Read and write: the last byte is read to see whether an earlier append was torn.
        let fd = openat(rootFD, file.rawValue, O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        if fd < 0 {
            let e = errno
            if e == ENOENT { return false }
            if e == ELOOP { throw .unsafeFile(path: display, reason: "it is a symbolic link") }
            throw .system(path: display, operation: "opening", errno: e)
        }
        defer { close(fd) }
        let st = try FileStore.checkPrivateFile(fd, owner: owner, display: display)
        var bytes = Array(text.utf8)
        if st.st_size > 0 {
            var last: UInt8 = 0
            if pread(fd, &last, 1, off_t(st.st_size - 1)) == 1, last != UInt8(ascii: "\n") { bytes.insert(UInt8(ascii: "\n"), at: 0) }
        }
        guard writeAll(fd, bytes) else { throw .system(path: display, operation: "writing", errno: errno) }
        stateBytesWritten += bytes.count
        if durable && fdatasync(fd) != 0 { throw .system(path: display, operation: "syncing", errno: errno) }
        return true
    }

    /// Moves a bookkeeping file the daemon cannot use to `NAME.damaged` (replacing an older one),
    /// so it starts with an empty book and the admin can still look at what was there.
    public func moveStateAside(_ file: StateFile) throws(StoreError) -> String {
        let aside = "\(file.rawValue).damaged"
        if renameat(rootFD, file.rawValue, rootFD, aside) != 0 {
            throw .system(path: "\(path)/\(file.rawValue)", operation: "moving aside", errno: errno)
        }
        _ = fsync(rootFD)
        return "\(path)/\(aside)"
    }
}
