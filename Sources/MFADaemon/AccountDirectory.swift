// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// An account as NSS knows it: the canonical name (`pw_name`), not the spelling that was typed.
public struct Account: Sendable, Equatable {
    public var name: String
    public var uid: uid_t
    public var gid: gid_t
    public init(name: String, uid: uid_t, gid: gid_t) {
        self.name = name
        self.uid = uid
        self.gid = gid
    }
}

/// What NSS said about a name.
public enum AccountLookup: Sendable, Equatable {
    case found(Account)
    /// NSS answered: no such account.
    case unknown
    /// NSS itself failed (a directory service down, no memory): nothing is known about the name.
    case unavailable(String)
}

/// The account database, injected so the rules can be tested without real accounts. `nss` asks
/// glibc (getpwnam_r), so a name SSSD or winbind maps to an account (`ALICE`, `alice@example.com`)
/// comes back as that account's own name.
public struct AccountDirectory: Sendable {
    public var lookup: @Sendable (String) -> AccountLookup
    public var nameOfUID: @Sendable (uid_t) -> String?
    /// Names of the account's groups (primary and supplementary).
    public var groups: @Sendable (Account) -> [String]

    public init(lookup: @escaping @Sendable (String) -> AccountLookup, nameOfUID: @escaping @Sendable (uid_t) -> String?,
                groups: @escaping @Sendable (Account) -> [String]) {
        self.lookup = lookup
        self.nameOfUID = nameOfUID
        self.groups = groups
    }

    public static let nss = AccountDirectory(lookup: NSSAccounts.lookup, nameOfUID: NSSAccounts.name(ofUID:),
                                             groups: NSSAccounts.groups(of:))
}

/// The NSS calls behind `AccountDirectory.nss`.
enum NSSAccounts {
    static func lookup(_ name: String) -> AccountLookup {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var size = 16384
        while true {
            var buffer = [CChar](repeating: 0, count: size)
            let rc = getpwnam_r(name, &entry, &buffer, buffer.count, &result)
            if rc == ERANGE && size < 1 << 20 { size *= 4; continue }
            guard result != nil, rc == 0 else {
                // getpwnam_r(3): 0, ENOENT, ESRCH, EBADF or EPERM with no entry mean "not found".
                if [0, ENOENT, ESRCH, EBADF, EPERM].contains(rc) { return .unknown }
                return .unavailable(String(cString: strerror(rc)))
            }
            // A name that is not valid UTF-8 is not repaired into another name: it is unusable.
            guard let raw = entry.pw_name, let canonical = String(validatingCString: raw) else { return .unknown }
            return .found(Account(name: canonical, uid: entry.pw_uid, gid: entry.pw_gid))
        }
    }

    static func name(ofUID uid: uid_t) -> String? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name else { return nil }
        return String(validatingCString: name)
    }

    /// Through NSS, so users and groups from LDAP or SSSD count the same as local ones.
    static func groups(of account: Account) -> [String] {
        var count: Int32 = 64
        var gids = [gid_t](repeating: 0, count: Int(count))
        while getgrouplist(account.name, account.gid, &gids, &count) < 0 {
            guard count < 65536 else { return [] }
            gids = [gid_t](repeating: 0, count: Int(count) * 2)
            count = Int32(gids.count)
        }
        var names: [String] = []
        var groupEntry = group()
        var groupResult: UnsafeMutablePointer<group>? = nil
        var groupBuffer = [CChar](repeating: 0, count: 65536)
        for gid in gids.prefix(Int(count)) {
            if getgrgid_r(gid, &groupEntry, &groupBuffer, groupBuffer.count, &groupResult) == 0, groupResult != nil,
               let groupName = groupEntry.gr_name, let name = String(validatingCString: groupName) {
                names.append(name)
            }
        }
        return names
    }
}
