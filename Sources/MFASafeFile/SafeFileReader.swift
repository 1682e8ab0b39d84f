// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFASys

/// What a file must be for a reader to trust it. The checks run on the open descriptor (fstat), never
/// on the name, which another process may swap between a check and the open.
public struct SafeFileRules: Sendable, Equatable {
    /// The uids that may own the file (root for the config, the daemon's uid for state files, ...).
    public var owners: [uid_t]
    /// Permission bits that must be clear: 0o077 for a secret (nobody else may read it), 0o022 for
    /// a file others may read but must not be able to write (the config, a user's GA file).
    public var forbiddenModeBits: mode_t
    /// The largest file accepted, in bytes.
    public var maximumSize: Int
    /// Refuse a file with more than one hard link (it may be someone else's file linked in).
    public var singleLink: Bool

    public init(owners: [uid_t], forbiddenModeBits: mode_t, maximumSize: Int, singleLink: Bool = false) {
        self.owners = owners
        self.forbiddenModeBits = forbiddenModeBits
        self.maximumSize = maximumSize
        self.singleLink = singleLink
    }

    /// A secret only `owner` may read or write (user files, the replay journal, the fleet key).
    public static func secret(owner: uid_t, maximumSize: Int) -> SafeFileRules {
        SafeFileRules(owners: [owner], forbiddenModeBits: 0o077, maximumSize: maximumSize)
    }

    /// A file root wrote and nobody else may change (the daemon's configuration, as OpenDoas reads
    /// doas.conf): owned by root, not writable by group or others.
    public static func rootOwned(maximumSize: Int) -> SafeFileRules {
        SafeFileRules(owners: [0], forbiddenModeBits: 0o022, maximumSize: maximumSize)
    }
}

/// Why a file was refused. `sentence(path:what:)` turns it into the one sentence an admin reads.
public enum SafeFileProblem: Error, Equatable, Sendable {
    case missing
    case symbolicLink
    case notRegular
    case owner(uid_t)
    /// The file's permission bits (some of the forbidden ones are set).
    case mode(mode_t)
    case hardLinks(Int)
    case tooLarge(limit: Int)
    /// "opening", "checking" or "reading" failed with errno.
    case system(operation: String, errno: Int32)

    /// "the config file /etc/mfagate/mfagate.conf is writable by group or others (mode 664); chmod go-w it".
    public func sentence(path: String, what: String, rules: SafeFileRules) -> String {
        if case .system(let operation, let code) = self {
            return "\(operation) the \(what) \(path) failed: \(String(cString: strerror(code)))"
        }
        return "the \(what) \(path) \(reason(rules))"
    }

    /// The sentence without its subject: "is owned by uid 1000, not by root; chown it".
    public func reason(_ rules: SafeFileRules) -> String {
        switch self {
        case .missing:
            return "does not exist"
        case .symbolicLink:
            return "is a symbolic link; name the real file"
        case .notRegular:
            return "is not a regular file"
        case .owner(let uid):
            let allowed = rules.owners.map { $0 == 0 ? "root" : "uid \($0)" }.joined(separator: " or ")
            return "is owned by uid \(uid), not by \(allowed); chown it"
        case .mode(let mode):
            let octal = String(mode & 0o7777, radix: 8)
            if rules.forbiddenModeBits & 0o044 != 0 {
                return "has mode \(octal), which lets others read or write it; chmod 600 it"
            }
            return "is writable by group or others (mode \(octal)); chmod go-w it"
        case .hardLinks(let count):
            return "has \(count) hard links (it may be another file); copy it and name the copy"
        case .tooLarge(let limit):
            return "is larger than \(limit) bytes"
        case .system(let operation, let code):
            return "could not be read (\(operation) failed: \(String(cString: strerror(code))))"
        }
    }
}

/// The one way mfagate reads a file it must trust: opened with O_NOFOLLOW|O_CLOEXEC|O_NOCTTY|O_NONBLOCK
/// (no symlink, no terminal, no hang on a FIFO), checked with fstat on that descriptor against
/// `SafeFileRules`, read whole up to the size cap. Used by the file store (user files, state files),
/// the config loader, the fleet key and password files, and the CLI's google-authenticator import
/// (pam-u2f's open_safely, OpenDoas's parseconfig). Hand-written: it is a few system calls, and no
/// library offers the fstat-on-the-descriptor checks together.
public enum SafeFileReader {
    public static let openFlags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK

    /// Reads `name` (relative to `dirFD`, or a path with AT_FDCWD). Returns the bytes and the
    /// descriptor's stat (which identifies what was read). The scratch buffer is wiped.
    public static func read(at dirFD: Int32 = AT_FDCWD, _ name: String,
                            rules: SafeFileRules) throws(SafeFileProblem) -> (bytes: [UInt8], status: stat) {
        let fd = openat(dirFD, name, openFlags)
        if fd < 0 {
            let e = errno
            if e == ENOENT { throw .missing }
            if e == ELOOP { throw .symbolicLink }
            throw .system(operation: "opening", errno: e)
        }
        defer { close(fd) }
        let st = try check(fd, rules: rules)
        // One byte more than the size says (and than the cap), to notice a file that grew since fstat.
        var bytes = [UInt8](repeating: 0, count: min(Int(st.st_size), rules.maximumSize) + 1)
        defer { mfa_wipe(&bytes, bytes.count) }
        var total = 0
        while total < bytes.count {
            let wanted = bytes.count - total
            let n = bytes.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return Glibc.read(fd, base + total, wanted)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw .system(operation: "reading", errno: errno)
            }
            if n == 0 { break }
            total += n
        }
        if total > rules.maximumSize { throw .tooLarge(limit: rules.maximumSize) }
        return (Array(bytes[0..<total]), st)
    }

    /// The checks alone, for a descriptor the caller opened itself (a state file opened for appending).
    public static func check(_ fd: Int32, rules: SafeFileRules) throws(SafeFileProblem) -> stat {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .system(operation: "checking", errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .notRegular }
        if rules.singleLink && st.st_nlink != 1 { throw .hardLinks(Int(st.st_nlink)) }
        guard rules.owners.contains(st.st_uid) else { throw .owner(st.st_uid) }
        guard st.st_mode & rules.forbiddenModeBits == 0 else { throw .mode(st.st_mode & 0o7777) }
        guard st.st_size <= rules.maximumSize else { throw .tooLarge(limit: rules.maximumSize) }
        return st
    }
}
