// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFASys
import MFACore
import MFAStore
import MFASafeFile

/// One user's entry in a host's offline cache: the last record this host read from or wrote to
/// the fleet database, the row version it came from, when it was read, and whether it carries
/// uses made while the database was away that are not pushed yet.
struct OfflineEntry: Equatable {
    var version: Int64
    /// Seconds (the daemon's clock) of the last read from the database.
    var readAt: Int64
    var pending: Bool
    var record: UserRecord
}

/// `fleet_offline = cache` (docs/fleet.md, "When the database is away"): `STATE/fleet-cache/`, one
/// file per user, named `c-USER` (as in the database) or `p-USER` (with uses to push), each
/// sealed under the fleet key (FleetCipher.sealCacheEntry: a copy of the state directory gives
/// no secret, and an entry does not open under another name). Written atomically (temporary file,
/// rename; fsync when it holds an offline use, which must be durable before the login succeeds).
///
/// Nothing in it may stop the daemon: an entry that cannot be read is reported and not used
/// (the login follows the failmode), and a directory that cannot be made disables the cache.
final class FleetOfflineCache {
    let directory: String
    static let name = "fleet-cache"
    static let maximumUsers = 100_000
    static let maximumSize = 256 << 10
    /// Entries on disk (counted at start), for the bound.
    private(set) var count = 0
    /// Users whose entry holds uses not yet pushed (`p-` files).
    private(set) var pending: Set<String> = []

    init(stateDirectory: String) {
        directory = stateDirectory + "/" + FleetOfflineCache.name
    }

    /// Makes the directory (0700) if needed and counts its entries; a sentence if unusable.
    func prepare(create: Bool = true) -> String? {
        if !create && access(directory, F_OK) != 0 { return nil }
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            return "cannot create \(directory): \(String(cString: strerror(errno)))"
        }
        var st = stat()
        guard lstat(directory, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return "\(directory) is not a directory" }
        guard st.st_uid == geteuid(), st.st_mode & 0o077 == 0 else {
            return "\(directory) is not private to the daemon's user (mode \(String(st.st_mode & 0o777, radix: 8)), uid \(st.st_uid))"
        }
        guard let dir = opendir(directory) else { return "cannot read \(directory): \(String(cString: strerror(errno)))" }
        defer { closedir(dir) }
        count = 0
        pending = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasPrefix(".tmp-") {
                _ = unlink(directory + "/" + name)  // a write cut short by a crash
            } else if name.hasPrefix("c-") || name.hasPrefix("p-") {
                count += 1
                if name.hasPrefix("p-") { pending.insert(String(name.dropFirst(2))) }
            }
        }
        return nil
    }

    func path(_ user: String, pending: Bool) -> String { directory + "/" + (pending ? "p-" : "c-") + user }

    /// The user's entry; nil and no problem if there is none; nil and a sentence if it is damaged,
    /// unsafe or under a key this host does not hold.
    func read(_ user: String, keys: FleetKeyring) -> (entry: OfflineEntry?, problem: String?) {
        let file = path(user, pending: pending.contains(user))
        var (bytes, problem) = readFile(file)
        defer { mfa_wipe(&bytes, bytes.count) }
        if let problem { return (nil, problem) }
        if bytes.isEmpty { return (nil, nil) }
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")),
              let cipher = keys.cipher(id: String(decoding: bytes[..<newline], as: UTF8.self)) else {
            return (nil, "\(file) is not sealed under a fleet key this host holds")
        }
        guard var plain = cipher.openCacheEntry(Array(bytes[(newline + 1)...]), user: user) else {
            return (nil, "\(file) does not open with the fleet key (damaged, or copied from another user)")
        }
        defer { mfa_wipe(&plain, plain.count) }
        guard let end = plain.firstIndex(of: UInt8(ascii: "\n")) else { return (nil, "\(file) is damaged") }
        let fields = String(decoding: plain[..<end], as: UTF8.self).split(separator: " ")
        guard fields.count == 3, let version = Int64(fields[0]), let readAt = Int64(fields[1]),
              let userName = try? UserName(validating: user) else {
            return (nil, "\(file) is damaged")
        }
        do {
            let record = try UserFileFormat.parse(utf8: Array(plain[(end + 1)...]), expectedUser: userName)
            return (OfflineEntry(version: version, readAt: readAt, pending: fields[2] == "1", record: record), nil)
        } catch {
            return (nil, "\(file) is damaged (\(error))")
        }
    }

    /// Replaces the user's entry; `durable`: flushed (file and directory) before returning.
    /// Throws one sentence naming the file. A new user beyond `maximumUsers` is not cached (false).
    @discardableResult
    func write(_ user: String, _ entry: OfflineEntry, cipher: FleetCipher, durable: Bool) throws(FleetError) -> Bool {
        let known = pending.contains(user) || access(path(user, pending: false), F_OK) == 0
        if !known && count >= FleetOfflineCache.maximumUsers { return false }
        var plain = Array("\(entry.version) \(entry.readAt) \(entry.pending ? 1 : 0)\n".utf8) + Array(UserFileFormat.serialize(entry.record).utf8)
        defer { mfa_wipe(&plain, plain.count) }
        let bytes = Array("\(cipher.keyID)\n".utf8) + (try cipher.sealCacheEntry(plain, user: user))
        let target = path(user, pending: entry.pending)
        let temporary = directory + "/.tmp-" + user
        func fail(_ operation: String) -> FleetError {
            .unreadable(path: target, reason: "\(operation) failed: \(String(cString: strerror(errno)))")
        }
        _ = unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw fail("creating \(temporary)") }
        guard writeAll(fd, bytes), !durable || fsync(fd) == 0 else {
            let error = fail("writing")
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, target) == 0 else {
            let error = fail("rename")
            unlink(temporary)
            throw error
        }
        // The other name goes after the new one is in place: a crash between leaves both, and
        // the pending one is read (its uses are pushed again, which changes nothing).
        _ = unlink(path(user, pending: !entry.pending))
        if durable { syncDirectory() }
        if !known { count += 1 }
        if entry.pending { pending.insert(user) } else { pending.remove(user) }
        return true
    }

    /// Removes the user's entry (a tombstone or a missing row was read).
    func remove(_ user: String) {
        var removed = false
        for flag in [false, true] where unlink(path(user, pending: flag)) == 0 { removed = true }
        if removed { count = max(0, count - 1) }
        pending.remove(user)
    }

    func syncDirectory() {
        let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }

    /// The file's bytes ([] if it does not exist), or a sentence.
    func readFile(_ file: String) -> (bytes: [UInt8], problem: String?) {
        let rules = SafeFileRules.secret(owner: geteuid(), maximumSize: FleetOfflineCache.maximumSize)
        do {
            return (try SafeFileReader.read(file, rules: rules).bytes, nil)
        } catch .missing {
            return ([], nil)
        } catch {
            return ([], error.sentence(path: file, what: "offline cache entry", rules: rules))
        }
    }
}
