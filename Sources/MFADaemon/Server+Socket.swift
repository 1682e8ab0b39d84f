// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFASys

/// Why the daemon could not start serving.
public struct ServerError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
    static func system(_ what: String, _ path: String, _ code: Int32 = errno) -> ServerError {
        ServerError("\(what) \(path) failed: \(String(cString: strerror(code)))")
    }
}

/// The listening socket and the descriptor limit: set up once, before the loop runs.
extension Server {
    /// Raises the soft descriptor limit so every connection slot has a descriptor (systemd's default
    /// soft limit is 1,024): otherwise accept fails with EMFILE while the listening socket stays
    /// readable. Returns the number of connections the limit allows.
    static func fitDescriptorLimit(to connections: Int) -> Int {
        let spare = 32  // listening socket, signalfd, state directories, stdio, a user file being read
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return connections }
        let wanted = rlim_t(connections + spare)
        if limit.rlim_cur < wanted {
            var raised = limit
            raised.rlim_cur = min(wanted, limit.rlim_max)
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return max(1, min(connections, Int(limit.rlim_cur) - spare))
    }

    static func monotonicNow() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Creates the socket, world-connectable because every request is authorised by SO_PEERCRED.
    /// A socket file left by a crashed daemon is replaced; one that still answers is not.
    static func bindListeningSocket(path: String) throws -> Int32 {
        var address = sockaddr_un()
        var length = socklen_t(0)
        guard mfa_unix_address(path, &address, &length) == 0 else {
            throw ServerError("socket path \(path) is too long for a Unix socket")
        }
        let parent = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        if !parent.isEmpty { mkdir(parent, 0o755) }

        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else {
                throw ServerError("\(path) exists and is not a socket; remove it or set `socket` to another path")
            }
            let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let inUse = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, length) == 0 }
            }
            close(probe)
            if inUse { throw ServerError("another mfagated is already listening on \(path)") }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw ServerError.system("creating socket", path) }
        let oldMask = umask(0o111)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        let bindErrno = errno
        umask(oldMask)
        guard bound == 0 else { close(fd); throw ServerError.system("binding", path, bindErrno) }
        guard listen(fd, 128) == 0 else { close(fd); throw ServerError.system("listening on", path) }
        return fd
    }
}
