// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import MFACore

/// Remembered logins (`remember`) of the file store: `STATE/remembered/NAME`, beside the user file
/// rather than in it. A new entry is made at a TOTP login, whose success path writes only the replay
/// journal and, inside the journal's lease, flushes nothing before SUCCESS (docs/robustness.md):
/// rewriting the user file durably there would add two fsyncs to every login. So an entry is
/// written without waiting for the disk (temp file, rename; a power cut may lose it, and the user is
/// then asked for a code again), while removing entries (forget, a recovery-code login, disable,
/// reset, re-enroll) is durable before the request is answered. The file names the enrollment it
/// belongs to (`enrolled` = the record's `created`): entries of an earlier enrollment never apply.
/// A file that cannot be read or parsed holds no entries (the user is asked): nothing here can
/// stop a login or the daemon, nor let anyone in.
extension FileStore {
    static let rememberedDirectory = "remembered"
    static let rememberedHeader = "# mfagate remembered logins: written by mfagated; do not edit (use mfagate forget)"
    static let maximumRememberedSize = 16 * 1024

    /// `STATE/remembered/`, checked like the other directories; made only when an entry is first
    /// written (`create`), so a host that never remembers a login has none. nil: none yet.
    /// Only this daemon writes the state directory (it holds its lock), so a directory found absent
    /// stays absent until it makes one: logins on a host that remembers nothing cost no system call.
    static let rememberedDirectoryAbsent: Int32 = -2

    func openRememberedDirectory(create: Bool) throws(StoreError) -> Int32? {
        if rememberedFD >= 0 { return rememberedFD }
        if !create {
            if rememberedFD == FileStore.rememberedDirectoryAbsent { return nil }
            var st = stat()
            if fstatat(rootFD, FileStore.rememberedDirectory, &st, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT {
                rememberedFD = FileStore.rememberedDirectoryAbsent
                return nil
            }
        }
        rememberedFD = try FileStore.openCheckedDirectory(at: rootFD, name: FileStore.rememberedDirectory,
                                                          displayPath: "\(path)/\(FileStore.rememberedDirectory)", owner: owner, create: create)
        return rememberedFD
    }

    /// The entries stored beside the user file for this enrollment, added to any the user file
    /// itself holds (a file migrated from the fleet store).
    func mergedRemembered(_ record: UserRecord) -> [RememberedLogin] {
        let beside = readRemembered(record.user, created: record.created)
        return record.remembered + beside.filter { !record.remembered.contains($0) }
    }

    /// What `STATE/remembered/NAME` holds for the enrollment made at `created`; [] for no file, a
    /// file of another enrollment, or one that cannot be read.
    func readRemembered(_ user: UserName, created: Int64) -> [RememberedLogin] {
        guard let dirFD = try? openRememberedDirectory(create: false),
              let (bytes, _) = try? readChecked(dirFD: dirFD, name: user.value, display: "", maximumSize: FileStore.maximumRememberedSize)
        else { return [] }
        return FileStore.parseRemembered(bytes, created: created) ?? []
    }

    static func parseRemembered(_ bytes: [UInt8], created: Int64) -> [RememberedLogin]? {
        var entries: [RememberedLogin] = []
        var sawEnrollment = false
        for line in bytes.split(separator: UInt8(ascii: "\n")) where line.first != UInt8(ascii: "#") {
            guard let space = line.firstIndex(of: UInt8(ascii: " ")) else { return nil }
            let key = line[..<space], value = line[(space + 1)...]
            if key.elementsEqual("enrolled".utf8) {
                guard !sawEnrollment, UserFileFormat.integer(value) == created else { return nil }
                sawEnrollment = true
            } else if key.elementsEqual("remember".utf8), sawEnrollment, let entry = UserFileFormat.parseRemembered(value) {
                entries.append(entry)
                if entries.count > RememberedLogin.maximumPerUser { return nil }
            } else {
                return nil
            }
        }
        return sawEnrollment ? entries : nil
    }

    /// Brings `STATE/remembered/NAME` in line with `record.remembered`: nothing to do when it holds
    /// them already; no entries left (forget, a recovery-code login, re-enroll) is a durable removal,
    /// whose failure fails the save;
    /// anything else (an entry added or renewed at a right code, expired ones pruned then) is
    /// written without waiting for the disk: what a power cut may bring back is either expired or
    /// was rightly made.
    func saveRemembered(_ record: UserRecord) throws(StoreError) {
        let stored = readRemembered(record.user, created: record.created)
        if stored == record.remembered { return }
        if record.remembered.isEmpty {
            try removeRemembered(record.user)
            return
        }
        // Adding or renewing: a failure (a full disk, a directory refused as unsafe) loses the entry,
        // which only means the user is asked next time; it must not fail the login whose code is
        // being recorded (the replay journal is pre-allocated for a full disk, this file is not).
        guard let dirFD = try? openRememberedDirectory(create: true) else { return }
        let text = ([FileStore.rememberedHeader, "enrolled \(record.created)"] + UserFileFormat.serializeRemembered(record.remembered))
            .joined(separator: "\n") + "\n"
        _ = try? writeAtomically(dirFD: dirFD, dirDisplay: "\(path)/\(FileStore.rememberedDirectory)", name: record.user.value,
                                 bytes: Array(text.utf8), durable: false)
    }

    /// Removes the user's remembered logins, durably (no error if there are none).
    func removeRemembered(_ user: UserName) throws(StoreError) {
        guard let dirFD = try openRememberedDirectory(create: false) else { return }
        let display = "\(path)/\(FileStore.rememberedDirectory)"
        if unlinkat(dirFD, user.value, 0) != 0 {
            if errno == ENOENT { return }
            throw .system(path: "\(display)/\(user.value)", operation: "removing", errno: errno)
        }
        if fsync(dirFD) != 0 { throw .system(path: display, operation: "syncing", errno: errno) }
    }
}
