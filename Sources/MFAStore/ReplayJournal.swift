// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFASys
import MFACore

/// The replay state of logins (`last_step`, `last_success`), made durable with one small write
/// and one `fdatasync` instead of rewriting the user's file (temp file, fsync, rename, fsync dir).
///
/// Why: a login that succeeds must be on disk before the daemon answers SUCCESS, so that the same
/// code is refused even after a crash right after. Rewriting a 1.3 kB user file for that costs a
/// file creation and two journal commits of the file system (≈ 0.5–1 ms and most of the daemon's
/// CPU time); overwriting 96 bytes inside a file whose blocks are already allocated and written
/// costs one data flush, with no metadata to commit.
///
/// `STATE/journal` is a preallocated file of 96-byte slots. Slot 0 is the header (magic and
/// generation); every other slot is empty (zeros) or one record: generation, time step, time of
/// success, the enrollment's creation time, user name, and a checksum (the first 8 bytes of SHA-256 over the rest). Records of the
/// current generation with a valid checksum count; any other slot is ignored, so a torn or
/// unacknowledged write can only be lost, never misread. Records are merged by maximum, so reading
/// the same record twice, or records in any order, gives the same state.
///
/// When the slots run out, the journal is rewritten whole, atomically (temp file, fsync, rename,
/// fsync dir), holding one record per user under the next generation, with room for at least as
/// many again. A crash at any point leaves the old journal or the new one, both complete.
public final class ReplayJournal {
    /// The replay state of one enrollment (named by its `created` time, so that a new enrollment
    /// of the same user starts clean instead of inheriting the old one's last step).
    struct Entry: Equatable {
        var created: Int64
        var step: Int64?
        var success: Int64?

        /// Later state of the same enrollment raises the maxima; another enrollment replaces it.
        mutating func merge(_ other: Entry) {
            guard other.created == created else { self = other; return }
            if let s = other.step { step = max(step ?? s, s) }
            if let t = other.success { success = max(success ?? t, t) }
        }
    }

    static let fileName = "journal"
    static let slotSize = 96
    public static let minimumSlots = 16_384
    /// Slots of a new journal (at least `minimumSlots` unless a test asks for fewer).
    let minimumSlots: Int
    static let magic = Array("MFAGJRN1".utf8)
    /// An absent `Int64?` on disk.
    static let none = Int64.min

    private(set) var entries: [String: Entry] = [:]
    let rootFD: Int32
    let tmpFD: Int32
    let displayPath: String
    let owner: uid_t
    var fd: Int32 = -1
    var generation: UInt32 = 1
    var slots = 0
    var nextSlot = 1
    /// Records written but not yet flushed with fdatasync (nor handed to a background flush).
    private(set) var unsynced = false

    /// A flush on the flush thread: running, or ended with a result (0 or an errno) not yet collected.
    enum BackgroundSync: Equatable {
        case idle, running, finished(Int32)
    }
    private(set) var backgroundSync = BackgroundSync.idle
    /// The flush thread's pipes (mfa_sync_worker_start), made at the first background flush.
    private var worker: (request: Int32, result: Int32)?

    /// Opens `STATE/journal`, creating it if missing, and reads every valid record.
    init(rootFD: Int32, tmpFD: Int32, statePath: String, owner: uid_t, minimumSlots: Int = ReplayJournal.minimumSlots) throws(StoreError) {
        self.minimumSlots = max(2, minimumSlots)
        self.rootFD = rootFD
        self.tmpFD = tmpFD
        self.displayPath = statePath + "/" + ReplayJournal.fileName
        self.owner = owner
        fd = openat(rootFD, ReplayJournal.fileName, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        if fd < 0 {
            guard errno == ENOENT else {
                if errno == ELOOP { throw .unsafeFile(path: displayPath, reason: "it is a symbolic link") }
                throw .system(path: displayPath, operation: "opening", errno: errno)
            }
            try replace(with: [:], generation: 1, slots: self.minimumSlots)
            return
        }
        try readAll()
    }

    deinit {
        awaitBackgroundSync()
        if fd >= 0 { close(fd) }
        if let worker {
            close(worker.request)  // the thread sees end of file, closes its ends and exits
            close(worker.result)
        }
    }

    // MARK: reading

    private func readAll() throws(StoreError) {
        let st = try FileStore.checkPrivateFile(fd, owner: owner, display: displayPath)
        let size = Int(st.st_size)
        guard size >= 2 * ReplayJournal.slotSize, size % ReplayJournal.slotSize == 0, size <= 1 << 30 else {
            throw .damagedFile(path: displayPath, detail: "its size \(size) is not a whole number of slots")
        }
        var bytes = [UInt8](repeating: 0, count: size)
        var total = 0
        while total < size {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + total, size - total, off_t(total)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .system(path: displayPath, operation: "reading", errno: errno)
            }
            if n == 0 { break }
            total += n
        }
        guard total == size else { throw .damagedFile(path: displayPath, detail: "it ended early") }
        let header = bytes.withUnsafeBytes {
            ReplayJournal.decodeHeader(UnsafeRawBufferPointer(rebasing: $0[0..<ReplayJournal.slotSize]))
        }
        guard let header else {
            throw .damagedFile(path: displayPath, detail: "its header is damaged (move it away to start a new one; logins since the user files were last written may then be replayed once)")
        }
        generation = header
        slots = size / ReplayJournal.slotSize
        nextSlot = 1
        bytes.withUnsafeBytes { raw in
            for slot in 1..<slots {
                let start = slot * ReplayJournal.slotSize
                let view = UnsafeRawBufferPointer(rebasing: raw[start..<start + ReplayJournal.slotSize])
                guard let (name, entry) = ReplayJournal.decodeRecord(view, generation: generation) else { continue }
                merge(name, entry)
                nextSlot = slot + 1
            }
        }
    }

    // MARK: writing

    /// Records a login's replay state; durable after the next `sync()`.
    func append(user: String, entry: Entry) throws(StoreError) {
        if nextSlot >= slots {
            var all = entries
            if var old = all[user] { old.merge(entry); all[user] = old } else { all[user] = entry }
            // Half the new file stays free, so rewrites stay rare however many users log in.
            var newSlots = minimumSlots
            while newSlots < 2 * (all.count + 1) { newSlots *= 2 }
            try replace(with: all, generation: generation &+ 1 == 0 ? 1 : generation &+ 1, slots: newSlots)
            return
        }
        let record = ReplayJournal.encodeRecord(user: user, entry: entry, generation: generation)
        let offset = off_t(nextSlot * ReplayJournal.slotSize)
        let n = record.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, offset) }
        guard n == record.count else {
            throw .system(path: displayPath, operation: "writing", errno: n < 0 ? errno : EIO)
        }
        nextSlot += 1
        unsynced = true
        merge(user, entry)
    }

    private func merge(_ user: String, _ entry: Entry) {
        if var old = entries[user] { old.merge(entry); entries[user] = old } else { entries[user] = entry }
    }

    /// Makes every appended record durable (one fdatasync for all of them: group commit).
    func sync() throws(StoreError) {
        guard unsynced else { return }
        if fdatasync(fd) != 0 { throw .system(path: displayPath, operation: "syncing", errno: errno) }
        unsynced = false
    }

    /// Hands every record appended so far to the flush thread and returns at once, so the server
    /// goes on answering other requests while the disk works (with eight logins at once the server
    /// otherwise sat in fdatasync while every client waited on it: a fifth of the machine idle).
    /// The replies of the logins these records belong to must wait for `finishBackgroundSync`.
    /// Returns false when nothing was handed over: nothing to flush, or the thread could not be
    /// used, and then the records were flushed here before returning (or an error was thrown).
    /// Only one background flush runs at a time; records appended meanwhile wait for the next.
    func startBackgroundSync() throws(StoreError) -> Bool {
        precondition(backgroundSync == .idle, "collect the running flush first")
        guard unsynced else { return false }
        if worker == nil {
            var request: Int32 = -1, result: Int32 = -1
            if mfa_sync_worker_start(&request, &result) == 0 { worker = (request, result) }
        }
        guard let worker, mfa_sync_worker_request(worker.request, fd) == 0 else {
            try sync()
            return false
        }
        unsynced = false
        backgroundSync = .running
        return true
    }

    /// Readable when the running background flush has ended; nil when none runs.
    var backgroundSyncFD: Int32? {
        backgroundSync == .running ? worker?.result : nil
    }

    /// Waits for a running background flush and keeps its result for `finishBackgroundSync`.
    private func awaitBackgroundSync() {
        if backgroundSync == .running, let worker {
            backgroundSync = .finished(mfa_sync_worker_result(worker.result))
        }
    }

    /// Collects the background flush's result, waiting for it if it still runs; throws if the
    /// fdatasync failed (the replies that waited for it must then never be sent).
    func finishBackgroundSync() throws(StoreError) {
        awaitBackgroundSync()
        guard case .finished(let result) = backgroundSync else { return }
        backgroundSync = .idle
        if result != 0 { throw .system(path: displayPath, operation: "syncing", errno: result) }
    }

    /// Writes a complete new journal holding `state` and swaps it in atomically.
    private func replace(with state: [String: Entry], generation newGeneration: UInt32, slots newSlots: Int) throws(StoreError) {
        // The flush thread may be flushing the old file: let it end before the descriptor is closed.
        awaitBackgroundSync()
        var bytes = [UInt8](repeating: 0, count: newSlots * ReplayJournal.slotSize)
        ReplayJournal.encodeHeader(generation: newGeneration).withUnsafeBytes { h in
            bytes.withUnsafeMutableBytes { $0.copyMemory(from: h) }
        }
        var slot = 1
        for (name, entry) in state {
            let record = ReplayJournal.encodeRecord(user: name, entry: entry, generation: newGeneration)
            bytes.replaceSubrange(slot * ReplayJournal.slotSize..<(slot + 1) * ReplayJournal.slotSize, with: record)
            slot += 1
        }
        let tempName = "journal.\(getpid()).new"
        unlinkat(tmpFD, tempName, 0)
        let newFD = openat(tmpFD, tempName, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard newFD >= 0 else { throw .system(path: displayPath, operation: "creating a new", errno: errno) }
        var ok = false
        defer {
            if !ok { close(newFD); unlinkat(tmpFD, tempName, 0) }
        }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(newFD, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .system(path: displayPath, operation: "writing", errno: errno)
            }
            written += n
        }
        if fsync(newFD) != 0 { throw .system(path: displayPath, operation: "syncing", errno: errno) }
        if renameat(tmpFD, tempName, rootFD, ReplayJournal.fileName) != 0 {
            throw .system(path: displayPath, operation: "replacing", errno: errno)
        }
        ok = true
        if fsync(rootFD) != 0 { throw .system(path: displayPath, operation: "syncing the directory of", errno: errno) }
        if fd >= 0 { close(fd) }
        fd = newFD
        generation = newGeneration
        slots = newSlots
        nextSlot = slot
        unsynced = false
        entries = state
    }

    // MARK: slot format

    static func checksum(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        Array(Crypto.sha256(bytes).prefix(8))
    }

    static func encodeHeader(generation: UInt32) -> [UInt8] {
        var slot = [UInt8](repeating: 0, count: slotSize)
        slot.replaceSubrange(0..<8, with: magic)
        put(UInt64(generation), into: &slot, at: 8, width: 4)
        let sum = slot.withUnsafeBytes { checksum(UnsafeRawBufferPointer(rebasing: $0[0..<88])) }
        slot.replaceSubrange(88..<96, with: sum)
        return slot
    }

    static func decodeHeader(_ slot: UnsafeRawBufferPointer) -> UInt32? {
        guard Array(slot[0..<8]) == magic, Array(checksum(UnsafeRawBufferPointer(rebasing: slot[0..<88]))) == Array(slot[88..<96]) else {
            return nil
        }
        let g = UInt32(get(slot, at: 8, width: 4))
        return g == 0 ? nil : g
    }

    /// generation u32 | step i64 | success i64 | created i64 | name length u8 | name (≤ 32) | zeros |
    /// checksum (8), little-endian.
    static func encodeRecord(user: String, entry: Entry, generation: UInt32) -> [UInt8] {
        var slot = [UInt8](repeating: 0, count: slotSize)
        put(UInt64(generation), into: &slot, at: 0, width: 4)
        put(UInt64(bitPattern: entry.step ?? none), into: &slot, at: 4, width: 8)
        put(UInt64(bitPattern: entry.success ?? none), into: &slot, at: 12, width: 8)
        put(UInt64(bitPattern: entry.created), into: &slot, at: 20, width: 8)
        let name = Array(user.utf8)
        precondition(name.count >= 1 && name.count <= 32, "user names are 1 to 32 bytes")
        slot[28] = UInt8(name.count)
        slot.replaceSubrange(29..<29 + name.count, with: name)
        let sum = slot.withUnsafeBytes { checksum(UnsafeRawBufferPointer(rebasing: $0[0..<88])) }
        slot.replaceSubrange(88..<96, with: sum)
        return slot
    }

    static func decodeRecord(_ slot: UnsafeRawBufferPointer, generation: UInt32) -> (String, Entry)? {
        guard UInt32(get(slot, at: 0, width: 4)) == generation else { return nil }
        let length = Int(slot[28])
        guard length >= 1, length <= 32,
              Array(checksum(UnsafeRawBufferPointer(rebasing: slot[0..<88]))) == Array(slot[88..<96]) else { return nil }
        let step = Int64(bitPattern: get(slot, at: 4, width: 8))
        let success = Int64(bitPattern: get(slot, at: 12, width: 8))
        let created = Int64(bitPattern: get(slot, at: 20, width: 8))
        let name = String(decoding: slot[29..<29 + length], as: UTF8.self)
        return (name, Entry(created: created, step: step == none ? nil : step, success: success == none ? nil : success))
    }

    static func put(_ value: UInt64, into bytes: inout [UInt8], at offset: Int, width: Int) {
        for i in 0..<width { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }

    static func get(_ bytes: UnsafeRawBufferPointer, at offset: Int, width: Int) -> UInt64 {
        var value: UInt64 = 0
        for i in 0..<width { value |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        return value
    }
}
