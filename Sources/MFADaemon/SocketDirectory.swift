// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// The socket's directory must be writable by root and the daemon's user only (like sshd's
/// StrictModes): whoever else can write there can remove the socket and put their own in its
/// place, and answer the PAM module's logins (issue 14, finding 10). The module checks the same
/// from its side (root-owned, closed to group and others; mfg_socket.c, `mfg_check_socket_dir`).
public enum SocketDirectory {
    /// nil if the directory of `socketPath` is safe for a daemon running as `daemonUID`, else one
    /// sentence naming the option, the directory and what to do. A directory that does not exist
    /// yet is judged by its nearest existing ancestor (whoever can write that can create it first).
    public static func problem(socketPath: String, daemonUID: uid_t) -> String? {
        var directory = parent(of: socketPath)
        var st = stat()
        while stat(directory, &st) != 0 {
            guard errno == ENOENT, directory != "/" else {
                return "`socket` = \(socketPath): cannot check its directory \(directory): \(String(cString: strerror(errno)))"
            }
            directory = parent(of: directory)
        }
        let groupOrOtherWritable = st.st_mode & (S_IWGRP | S_IWOTH) != 0
        let owner = st.st_uid
        guard groupOrOtherWritable || (owner != 0 && owner != daemonUID) else { return nil }
        let mode = String(st.st_mode & 0o7777, radix: 8)
        return "`socket` = \(socketPath): the directory \(directory) (owner uid \(owner), mode 0\(mode)) is writable by others than root and mfagated's user, who could put their own socket in its place; use a directory only root (or mfagated's user) can write, such as /run/mfagate"
    }

    static func parent(of path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        let head = String(path[..<slash])
        return head.isEmpty ? "/" : head
    }
}
