// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFASys

/// Who is at the other end of a connection, as the kernel says (SO_PEERCRED), never as the peer says.
public struct Peer: Sendable, Equatable, CustomStringConvertible {
    public var pid: pid_t
    public var uid: uid_t
    public var gid: gid_t
    public var isRoot: Bool { uid == 0 }
    public var description: String { "uid=\(uid) pid=\(pid)" }

    public static func of(socket fd: Int32) -> Peer? {
        var pid: pid_t = 0, uid: uid_t = 0, gid: gid_t = 0
        guard mfa_peer_credentials(fd, &pid, &uid, &gid) == 0 else { return nil }
        return Peer(pid: pid, uid: uid, gid: gid)
    }
}

/// The account database as NSS sees it (so LDAP/SSSD users resolve too).
public enum Accounts {
    public static func uid(ofUser name: String) -> uid_t? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buffer = [CChar](repeating: 0, count: 16384)
        let rc = getpwnam_r(name, &entry, &buffer, buffer.count, &result)
        guard rc == 0, result != nil else { return nil }
        return entry.pw_uid
    }

    public static func name(ofUID uid: uid_t) -> String? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buffer = [CChar](repeating: 0, count: 16384)
        let rc = getpwuid_r(uid, &entry, &buffer, buffer.count, &result)
        guard rc == 0, result != nil, let name = entry.pw_name else { return nil }
        return String(cString: name)
    }

    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Makes a peer-supplied string safe for one log line: control bytes escaped, length capped.
public func loggable(_ text: String, limit: Int = 64) -> String {
    // Nearly always (a service name, an address) plain printable ASCII within the limit: returned
    // as it is, without walking it scalar by scalar (two of these per login line).
    let utf8 = text.utf8
    if !utf8.isEmpty, utf8.count <= limit,
       utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") && $0 != UInt8(ascii: "\"") }) {
        return text
    }
    var out = ""
    for scalar in text.unicodeScalars.prefix(limit) {
        if scalar.value < 0x20 || scalar.value == 0x7F || scalar == "\\" || scalar == "\"" {
            out += "\\x" + String(scalar.value, radix: 16)
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    if text.unicodeScalars.count > limit { out += "…" }
    return out.isEmpty ? "-" : out
}
