// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFASys
import MFACore
import MFASafeFile

/// The only code that opens, reads or writes secret files.
///
/// Layout: `STATE/users/NAME` (0600), `STATE/journal` (replay state, see `ReplayJournal`) and
/// `STATE/tmp/` for writes in progress, all owned by the daemon's uid. Every file is opened relative to a directory descriptor with `O_NOFOLLOW`, checked
/// with `fstat`, and replaced atomically (temp file, fsync, rename, fsync dir), never rewritten in
/// place, so a crash leaves either the old or the new state.
public final class FileStore {
    public let path: String
    let owner: uid_t
    let rootFD: Int32
    let usersFD: Int32
    let tmpFD: Int32
    /// `STATE/remembered/`, opened at the first use (FileStore+Remembered.swift); -1 until then,
    /// -2 when found absent.
    var rememberedFD: Int32 = -1
    var tempCounter: UInt64 = 0
    let journal: ReplayJournal
    /// Parsed user files, each valid while the file keeps the same inode, size, times, owner and
    /// mode (the daemon replaces files, never edits them, so its own writes always show).
    /// Bounded (≈ 3 kB a user): a login needs its entry only from its first request to its
    /// answer, so a few hundred cover every login in flight.
    var cache = RecordCache<CachedFile>(limit: 512)
    /// When true, `save` leaves replay records unflushed until `syncJournal()`: the caller then
    /// flushes once for every login answered in one round (group commit) and must not send any
    /// SUCCESS before that call returns.
    public var defersJournalSync = false
    /// The user whose file `loadFile` checked last, with the identity it found: a login's answer
    /// loads the record and then saves it in the same call, so `save` need not `fstatat` the file
    /// a second time microseconds later (one system call per login). Consumed by `save`, cleared
    /// before each request (`forgetLastCheck`).
    var lastChecked: (user: String, identity: FileIdentity)?
    /// Bytes written to the bookkeeping files so far (FileStore+StateFiles.swift): what a new
    /// name costs, for tests and for the figures in docs/robustness.md.
    public internal(set) var stateBytesWritten = 0

    struct FileIdentity: Equatable {
        var device: UInt64, inode: UInt64, size: Int64, mode: UInt32, uid: UInt32
        var mtime: Int, mtimeNanos: Int, ctime: Int, ctimeNanos: Int

        init(_ st: stat) {
            device = UInt64(st.st_dev); inode = UInt64(st.st_ino); size = Int64(st.st_size)
            mode = UInt32(st.st_mode); uid = UInt32(st.st_uid)
            mtime = Int(st.st_mtim.tv_sec); mtimeNanos = Int(st.st_mtim.tv_nsec)
            ctime = Int(st.st_ctim.tv_sec); ctimeNanos = Int(st.st_ctim.tv_nsec)
        }
    }

    struct CachedFile {
        var identity: FileIdentity
        /// The record as the file holds it (without the journal's newer replay state).
        var record: UserRecord
    }

    /// The configured `window` (the daemon sets it, and again at each reload): the replay journal
    /// names the widest window used in its marker (see JournalMarker).
    public var replayWindow: Int {
        didSet { journal.noteWindow(replayWindow) }
    }

    /// Wall-clock milliseconds (CLOCK_REALTIME): the journal's default clock.
    public static func wallClockMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Checks the state directory (not a symlink, a directory, owned by `owner`, not group- or
    /// world-writable), creates `users/` and `tmp/` inside it if missing, and takes an exclusive lock
    /// so a second daemon cannot write the same files. `bootID`, `clock` (wall ms) and
    /// `journalFlushBound` (ms) are the replay journal's (see JournalMarker); `window` the
    /// configured one.
    public init(path: String, owner: uid_t = geteuid(), journalSlots: Int = ReplayJournal.minimumSlots,
                bootID: [UInt8] = BootID.read(), clock: @escaping () -> Int64 = FileStore.wallClockMilliseconds,
                journalFlushBound: Int64 = ReplayJournal.defaultFlushBound, window: Int = 1) throws(StoreError) {
        self.path = path
        self.owner = owner
        replayWindow = window
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
        FileStore.removeStaleTemporaryFiles(in: tmpFD)
        do {
            journal = try ReplayJournal(rootFD: rootFD, tmpFD: tmpFD, statePath: path, owner: owner, minimumSlots: journalSlots,
                                        bootID: bootID, clock: clock, flushBound: journalFlushBound, window: window)
        } catch {
            close(tmpFD); close(usersFD); close(rootFD)
            throw error
        }
    }

    deinit {
        if rememberedFD >= 0 { close(rememberedFD) }
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

    static func removeStaleTemporaryFiles(in tmpFD: Int32) {
        let dupFD = dup(tmpFD)
        guard dupFD >= 0, let dir = fdopendir(dupFD) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            unlinkat(tmpFD, name, 0)
        }
    }

    func filePath(_ user: UserName) -> String { "\(path)/users/\(user.value)" }

    /// The user's record, or nil if the user has no file, with the newest replay state.
    public func load(_ user: UserName) throws(StoreError) -> UserRecord? {
        guard var record = try loadFile(user) else { return nil }
        record.remembered = mergedRemembered(record)
        if let entry = journal.entries[user.value], entry.created == record.created {
            if let s = entry.step { record.lastUsedStep = max(record.lastUsedStep ?? s, s) }
            if let t = entry.success { record.lastSuccess = max(record.lastSuccess ?? t, t) }
        }
        if let horizon = journal.horizon, record.method == .totp {
            // A crash in an earlier boot may have lost records written before this time: every step
            // acceptable then counts as used (JournalMarker). Drift and period are the file's (their
            // changes are file rewrites, durable before SUCCESS); the window the widest in use.
            let floor = OTP.lastStepAcceptable(before: horizon.time / 1000, period: record.parameters.period,
                                               window: max(horizon.window, record.window ?? replayWindow),
                                               drift: record.drift)
            record.lastUsedStep = max(record.lastUsedStep ?? floor, floor)
        }
        return record
    }

    /// The record as the user's file holds it: from the cache if the file is still the one
    /// read, else read, checked and parsed again.
    func loadFile(_ user: UserName) throws(StoreError) -> UserRecord? {
        lastChecked = nil
        if let cached = cache[user.value] {
            var st = stat()
            if fstatat(usersFD, user.value, &st, AT_SYMLINK_NOFOLLOW) == 0, FileIdentity(st) == cached.identity {
                lastChecked = (user.value, cached.identity)
                return cached.record
            }
            cache[user.value] = nil
        }
        let display = filePath(user)
        guard var (bytes, st) = try readChecked(dirFD: usersFD, name: user.value, display: display,
                                                maximumSize: UserFileFormat.maximumSize) else { return nil }
        defer { mfa_wipe(&bytes, bytes.count) }
        let record: UserRecord
        do {
            record = try UserFileFormat.parse(utf8: bytes, expectedUser: user)
        } catch {
            throw .damagedFile(path: display, detail: error.description)
        }
        remember(user, CachedFile(identity: FileIdentity(st), record: record))
        lastChecked = (user.value, FileIdentity(st))
        return record
    }

    func remember(_ user: UserName, _ file: CachedFile) {
        cache[user.value] = file
    }

    /// Makes `record` durable before returning (or, with `defersJournalSync`, records it in the
    /// journal for the next flush: the reply may leave at once inside the journal's lease, else
    /// `repliesWaitForJournal` says it must wait). A change of replay state alone (a login) goes to
    /// the journal; any other change replaces the user's file, durably, before returning.
    public func save(_ record: UserRecord) throws(StoreError) {
        let checked = lastChecked
        lastChecked = nil
        try saveRemembered(record)
        if let cached = cache[record.user.value], Self.differsOnlyInReplayState(cached.record, record),
           checked.map({ $0.user == record.user.value && $0.identity == cached.identity }) == true
            || fileIdentity(record.user) == cached.identity {
            if record.method == .totp { journal.noteWindow(record.window ?? replayWindow) }
            try journal.append(user: record.user.value, entry: .init(created: record.created, step: record.lastUsedStep,
                                                                     success: record.lastSuccess),
                               acceptedAt: record.lastSuccess.map { $0.multipliedReportingOverflow(by: 1000).overflow ? .max : $0 * 1000 })
            if !defersJournalSync { try journal.sync() }
            return
        }
        try replaceFile(record)
    }

    /// Forgets which file `loadFile` checked last: called before each request, so only a load in
    /// the same request lets `save` skip its own check.
    public func forgetLastCheck() { lastChecked = nil }

    func fileIdentity(_ user: UserName) -> FileIdentity? {
        var st = stat()
        return fstatat(usersFD, user.value, &st, AT_SYMLINK_NOFOLLOW) == 0 ? FileIdentity(st) : nil
    }

    /// Flushes replay records appended since the last flush (one fdatasync for all).
    public func syncJournal() throws(StoreError) {
        try journal.sync()
    }

    /// True when replay records wait for `syncJournal()` (or `startJournalSync()`).
    public var hasUnsyncedJournal: Bool { journal.unsynced }

    /// True when a record written outside the journal's lease waits for a flush: the replies of
    /// this round must wait for it. Inside the lease a TOTP SUCCESS leaves at once (JournalMarker).
    public var repliesWaitForJournal: Bool { journal.uncovered }

    /// Milliseconds until the journal's next background flush is due (it renews the lease).
    public var journalRenewalDelay: Int64? { journal.renewalDelay }

    /// A clean stop: flushes every record, then marks the journal closed cleanly.
    public func closeJournal() throws(StoreError) {
        try journal.closeCleanly()
    }

    /// Flushes the replay records appended so far on the journal's flush thread, returning at
    /// once (true); their replies wait for `finishJournalSync()`. False if it flushed them here
    /// instead (or there was nothing to flush). See `ReplayJournal.startBackgroundSync`.
    public func startJournalSync() throws(StoreError) -> Bool {
        try journal.startBackgroundSync()
    }

    /// True from a `startJournalSync()` that returned true until `finishJournalSync()`.
    public var journalSyncPending: Bool { journal.backgroundSync != .idle }

    /// Readable when the background flush has ended (nil if it has ended already, or none runs).
    public var journalSyncFD: Int32? { journal.backgroundSyncFD }

    /// The background flush's result (waits if it still runs): throws if the records did not
    /// reach the disk.
    public func finishJournalSync() throws(StoreError) {
        try journal.finishBackgroundSync()
    }

    static func differsOnlyInReplayState(_ a: UserRecord, _ b: UserRecord) -> Bool {
        var x = a, y = b
        x.lastUsedStep = nil; x.lastSuccess = nil; x.remembered = []
        y.lastUsedStep = nil; y.lastSuccess = nil; y.remembered = []
        return x == y
    }

    /// Replaces the user's file with `record`, durably, before returning.
    func replaceFile(_ record: UserRecord) throws(StoreError) {
        // The cached entry stays valid if the write fails (the old file is untouched) and is checked
        // against the file's identity on every use, so it is only replaced once the new file exists.
        var inFile = record
        inFile.remembered = []  // kept beside the file (FileStore+Remembered.swift)
        var bytes = Array(UserFileFormat.serialize(inFile).utf8)
        defer { mfa_wipe(&bytes, bytes.count) }
        try writeAtomically(dirFD: usersFD, dirDisplay: "\(path)/users", name: record.user.value, bytes: bytes)
        var st = stat()
        if fstatat(usersFD, record.user.value, &st, AT_SYMLINK_NOFOLLOW) == 0 {
            remember(record.user, CachedFile(identity: FileIdentity(st), record: inFile))
        }
    }

    /// Reads a whole file after checking, on the open descriptor, that it is a regular file owned by
    /// the daemon, private (no group/other bits) and not larger than `maximumSize` (SafeFileReader,
    /// the one reader of trusted files). nil: no file. Also returns the descriptor's stat, which
    /// identifies what was read (for the cache).
    func readChecked(dirFD: Int32, name: String, display: String, maximumSize: Int) throws(StoreError) -> ([UInt8], stat)? {
        do {
            let (bytes, st) = try SafeFileReader.read(at: dirFD, name, rules: .secret(owner: owner, maximumSize: maximumSize))
            return (bytes, st)
        } catch {
            if error == .missing { return nil }
            throw FileStore.storeError(error, owner: owner, display: display)
        }
    }

    /// Checks, on the open descriptor (not the name, which may have been swapped), that a file is
    /// a regular file owned by the daemon and private to it (no group or other bits).
    static func checkPrivateFile(_ fd: Int32, owner: uid_t, display: String) throws(StoreError) -> stat {
        do {
            return try SafeFileReader.check(fd, rules: .secret(owner: owner, maximumSize: Int.max))
        } catch {
            throw storeError(error, owner: owner, display: display)
        }
    }

    /// The store's sentence for a refused file.
    static func storeError(_ problem: SafeFileProblem, owner: uid_t, display: String) -> StoreError {
        switch problem {
        case .missing: return .system(path: display, operation: "opening", errno: ENOENT)
        case .symbolicLink: return .unsafeFile(path: display, reason: "it is a symbolic link")
        case .notRegular: return .unsafeFile(path: display, reason: "it is not a regular file")
        case .owner(let uid): return .unsafeFile(path: display, reason: "it is owned by uid \(uid), not by the daemon's uid \(owner)")
        case .mode(let mode):
            return .unsafeFile(path: display, reason: "its mode \(String(mode & 0o777, radix: 8)) lets others read or write it (must be 0600)")
        case .hardLinks(let count): return .unsafeFile(path: display, reason: "it has \(count) hard links")
        case .tooLarge(let limit): return .damagedFile(path: display, detail: "larger than \(limit) bytes")
        case .system(let operation, let code): return .system(path: display, operation: operation, errno: code)
        }
    }

    /// Temp file in `tmp/`, write, fsync, rename over `name`, fsync the directory: a crash at any
    /// point leaves the old or the new file, never a mix, and the new one survives power loss.
    func writeAtomically(dirFD: Int32, dirDisplay: String, name: String, bytes: [UInt8], durable: Bool = true) throws(StoreError) {
        let display = "\(dirDisplay)/\(name)"
        tempCounter &+= 1
        let tempName = "\(name).\(getpid()).\(tempCounter)"
        let fd = openat(tmpFD, tempName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .system(path: "\(path)/tmp/\(tempName)", operation: "creating", errno: errno) }
        var renamed = false
        defer {
            if !renamed { unlinkat(tmpFD, tempName, 0) }
        }
        guard writeAll(fd, bytes) else { let e = errno; close(fd); throw .system(path: display, operation: "writing", errno: e) }
        if durable && fsync(fd) != 0 { let e = errno; close(fd); throw .system(path: display, operation: "syncing", errno: e) }
        if close(fd) != 0 { throw .system(path: display, operation: "closing", errno: errno) }
        if renameat(tmpFD, tempName, dirFD, name) != 0 {
            throw .system(path: display, operation: "replacing", errno: errno)
        }
        renamed = true
        if durable && fsync(dirFD) != 0 { throw .system(path: dirDisplay, operation: "syncing", errno: errno) }
    }

    /// Removes the user's file (no error if there is none).
    public func delete(_ user: UserName) throws(StoreError) {
        cache[user.value] = nil
        try removeRemembered(user)
        if unlinkat(usersFD, user.value, 0) != 0 {
            if errno == ENOENT { return }
            throw .system(path: filePath(user), operation: "removing", errno: errno)
        }
        if fsync(usersFD) != 0 { throw .system(path: "\(path)/users", operation: "syncing", errno: errno) }
    }
}
