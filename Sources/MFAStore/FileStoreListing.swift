// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import MFACore

extension FileStore {
    /// Every user with a file, sorted by name; names that are not valid user names (stray files an
    /// admin left) are skipped, never followed.
    public func listUsers() -> [UserName] {
        // A fresh descriptor of its own, so the listing never shares a read position with usersFD.
        let listFD = openat(usersFD, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard listFD >= 0 else { return [] }
        guard let dir = fdopendir(listFD) else { close(listFD); return [] }
        defer { closedir(dir) }
        var users: [UserName] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            if let user = try? UserName(validating: name) { users.append(user) }
        }
        return users.sorted { $0.value < $1.value }
    }
}
