// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFASys
import MFACore
import MFASafeFile

/// The replay state of logins (`last_step`, `last_success`), kept with one small write (flushed in
/// the background) instead of rewriting the user's file (temp file, fsync, rename, fsync dir).
///
/// Why: a login that succeeds must be recorded before the daemon answers SUCCESS, so that the
/// same code is refused even after a crash right after. Rewriting a 1.3 kB user file for that costs a
/// file creation and two journal commits of the file system (≈ 0.5–1 ms and most of the daemon's
/// CPU time); overwriting 96 bytes inside a file whose blocks are already allocated and written
/// costs one small write.
///
/// A TOTP login no longer waits for the flush: its record is written before SUCCESS and flushed in
/// the background, and the journal's marker (`JournalMarker`) proves after a power cut which
/// steps may have been lost. Recovery codes, HOTP counters and enrollments are file rewrites,
/// durable before SUCCESS as before.
///
/// `STATE/journal` is a preallocated file of 96-byte slots. Slot 0 is the header (magic and
/// generation), slots 1 and 2 the marker (written in turn); every other slot is empty (zeros) or one record: generation, time step, time of
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
    static let magic = Array("MFAGJRN2".utf8)
    /// Format 1 (records from slot 1, no marker; every record was flushed before its SUCCESS): read
    /// once and rewritten in format 2.
    static let magicVersion1 = Array("MFAGJRN1".utf8)
    static let firstRecordSlot = 3
    /// The default flush bound (ms): a TOTP reply may leave before its record is flushed only
    /// while the last flushed marker is younger than this; the lease is renewed every half of it.
    public static let defaultFlushBound: Int64 = 1_000
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
    var nextSlot = ReplayJournal.firstRecordSlot
    /// Records written but not yet flushed with fdatasync (nor handed to a background flush).
    private(set) var unsynced = false
    /// Some of those records were written outside the lease: their replies wait for a flush.
    private(set) var uncovered = false

    /// Wall-clock milliseconds (injected: tests present a clock set back, a new boot…).
    let clock: () -> Int64
    let bootID: [UInt8]
    let flushBound: Int64
    /// The marker last written (on disk once its flush ends).
    private(set) var marker = JournalMarker()
    /// `durableUntil` of the last marker whose flush ended: the lease runs to this + `flushBound`.
    /// nil: no lease (none flushed yet, or a wider window since): every reply waits for a flush.
    private(set) var leaseStart: Int64?
    /// `durableUntil` of the marker the running background flush carries.
    private var inFlightLeaseStart: Int64?
    /// The latest acceptance time of the records not yet handed to a flush (clock set back).
    private var pendingLatest = Int64.min
    /// The widest window used by logins of this run (goes into the marker; widening ends the lease).
    private(set) var leadWindow = 0
    /// Every TOTP step acceptable before `time` (ms) with `window` counts as used (see JournalMarker).
    public private(set) var horizon: (time: Int64, window: Int)?
    /// CLOCK_MONOTONIC ms when the last flush began (schedules the renewals, not the proof).
    private(set) var lastFlushStart: Int64 = .min
    /// True when the journal read was of format 1 (no marker, rewritten at start).
    private var readVersion1 = false
    /// A format-2 journal with no valid marker (see JournalMarker.horizon).
    private var markerless = false

    /// A flush on the flush thread: running, or ended with a result (0 or an errno) not yet collected.
    enum BackgroundSync: Equatable {
        case idle, running, finished(Int32)
    }
    private(set) var backgroundSync = BackgroundSync.idle
    /// The flush thread's pipes (mfa_sync_worker_start), made at the first background flush.
    private var worker: (request: Int32, result: Int32)?

    /// Opens `STATE/journal`, creating it if missing, reads every valid record and the marker,
    /// works out the horizon of a crash in an earlier boot, and writes (and flushes) this run's
    /// first marker. A flush that fails here is not fatal: without a lease every TOTP reply then
    /// waits for a flush of its own, and those report the failure.
    init(rootFD: Int32, tmpFD: Int32, statePath: String, owner: uid_t, minimumSlots: Int = ReplayJournal.minimumSlots,
         bootID: [UInt8], clock: @escaping () -> Int64, flushBound: Int64 = ReplayJournal.defaultFlushBound,
         window: Int = 0) throws(StoreError) {
        self.minimumSlots = max(ReplayJournal.firstRecordSlot + 1, minimumSlots)
        self.rootFD = rootFD
        self.tmpFD = tmpFD
        self.displayPath = statePath + "/" + ReplayJournal.fileName
        self.owner = owner
        self.bootID = bootID
        self.clock = clock
        self.flushBound = max(2, flushBound)
        leadWindow = max(0, window)
        fd = openat(rootFD, ReplayJournal.fileName, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        var previous: [JournalMarker] = []
        if fd < 0 {
            guard errno == ENOENT else {
                if errno == ELOOP { throw .unsafeFile(path: displayPath, reason: "it is a symbolic link") }
                throw .system(path: displayPath, operation: "opening", errno: errno)
            }
        } else {
            previous = try readAll()
        }
        let now = clock()
        horizon = JournalMarker.horizon(after: previous, markerless: markerless, bootID: bootID, now: now,
                                        maximumWindow: 10)
        marker = JournalMarker(sequence: previous.first?.sequence ?? 0, bootID: bootID, bound: self.flushBound,
                               horizon: horizon?.time, horizonWindow: horizon?.window ?? 0, leadWindow: leadWindow)
        if fd < 0 || readVersion1 {
            // The rewrite is flushed whole (fsync) before it is renamed in: a lease from the start.
            try replace(with: entries, generation: fd < 0 ? 1 : generation &+ 1 == 0 ? 1 : generation &+ 1,
                        slots: slotsFor(entries.count))
            return
        }
        let start = try writeMarker(clean: false)
        lastFlushStart = ReplayJournal.monotonicNow()
        if fdatasync(fd) == 0 { leaseStart = start }
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

    /// Reads the records and returns the valid markers, newest first (none for format 1).
    private func readAll() throws(StoreError) -> [JournalMarker] {
        let st = try FileStore.checkPrivateFile(fd, owner: owner, display: displayPath)
        let size = Int(st.st_size)
        guard size >= 2 * ReplayJournal.slotSize, size % ReplayJournal.slotSize == 0, size <= 1 << 30 else {
            throw .damagedFile(path: displayPath, detail: "its size \(size) is not a whole number of slots")
        }
        var bytes = [UInt8](repeating: 0, count: size)
        var total = 0
        while total < size {
            let n = bytes.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return pread(fd, base + total, size - total, off_t(total))
            }
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
        generation = header.generation
        readVersion1 = header.version1
        slots = size / ReplayJournal.slotSize
        let first = readVersion1 ? 1 : ReplayJournal.firstRecordSlot
        guard slots >= first else {
            throw .damagedFile(path: displayPath, detail: "its size \(size) leaves no room for records")
        }
        nextSlot = first
        var markers: [JournalMarker] = []
        bytes.withUnsafeBytes { raw in
            func view(_ slot: Int) -> UnsafeRawBufferPointer {
                UnsafeRawBufferPointer(rebasing: raw[slot * ReplayJournal.slotSize..<(slot + 1) * ReplayJournal.slotSize])
            }
            if !readVersion1 {
                for slot in 1..<ReplayJournal.firstRecordSlot {
                    if let m = JournalMarker.decode(view(slot), generation: generation) { markers.append(m) }
                }
            }
            for slot in first..<slots {
                guard let (name, entry) = ReplayJournal.decodeRecord(view(slot), generation: generation) else { continue }
                merge(name, entry)
                nextSlot = slot + 1
            }
        }
        markerless = !readVersion1 && markers.isEmpty
        return markers.sorted { $0.sequence > $1.sequence }
    }

    // MARK: writing

    /// Records a login's replay state, accepted at `acceptedAt` (ms): durable after the next flush.
    /// Outside the lease (see JournalMarker) the record is `uncovered`: its reply must wait for
    /// the flush.
    func append(user: String, entry: Entry, acceptedAt: Int64? = nil) throws(StoreError) {
        let t = max(acceptedAt ?? .min, clock())
        if nextSlot >= slots {
            var all = entries
            if var old = all[user] { old.merge(entry); all[user] = old } else { all[user] = entry }
            pendingLatest = max(pendingLatest, t)
            try replace(with: all, generation: generation &+ 1 == 0 ? 1 : generation &+ 1, slots: slotsFor(all.count))
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
        pendingLatest = max(pendingLatest, t)
        if !covers(t) { uncovered = true }
        merge(user, entry)
    }

    /// Slots of a rewritten journal holding `records`: half the new file stays free, so rewrites
    /// stay rare however many users log in.
    func slotsFor(_ records: Int) -> Int {
        var newSlots = minimumSlots
        while newSlots < ReplayJournal.firstRecordSlot + 2 * (records + 1) { newSlots *= 2 }
        return newSlots
    }

    /// True when a login answered at `time` (ms) is inside the lease of a flushed marker.
    func covers(_ time: Int64) -> Bool {
        guard let leaseStart else { return false }
        let (end, overflow) = leaseStart.addingReportingOverflow(flushBound)
        return overflow || time < end
    }

    /// A login of this run used `window`: a wider one than the markers on disk name ends the
    /// lease, so the next marker (flushed before that login's reply) names it.
    func noteWindow(_ window: Int) {
        guard window > leadWindow else { return }
        leadWindow = window
        leaseStart = nil
    }

    private func merge(_ user: String, _ entry: Entry) {
        if var old = entries[user] { old.merge(entry); entries[user] = old } else { entries[user] = entry }
    }

    static func monotonicNow() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Milliseconds until the lease should be renewed (0: now). Renewals every half bound keep
    /// the lease alive while the daemon idles, so a TOTP reply never waits for the disk, and
    /// flush records at most half a bound (plus the flush's own time) after they were written.
    var renewalDelay: Int64 {
        guard lastFlushStart != .min else { return 0 }
        return max(0, lastFlushStart + flushBound / 2 - ReplayJournal.monotonicNow())
    }

    /// The marker after the current one: `durableUntil` is now, or the latest acceptance of a
    /// record it covers if the clock went back since.
    private func nextMarker(durableSlots: Int, clean: Bool) -> JournalMarker {
        var next = marker
        next.sequence &+= 1
        next.durableUntil = max(clock(), pendingLatest)
        next.durableSlots = durableSlots
        next.leadWindow = leadWindow
        next.clean = clean
        return next
    }

    /// Where a marker goes: the two marker slots after the header alternate by sequence number.
    static func markerOffset(_ marker: JournalMarker) -> Int {
        (1 + Int(marker.sequence % 2)) * slotSize
    }

    /// Writes the next marker (not flushed): `durableUntil` is now, or the latest acceptance of a
    /// record it covers if the clock went back since. Returns that time.
    private func writeMarker(clean: Bool) throws(StoreError) -> Int64 {
        let next = nextMarker(durableSlots: nextSlot, clean: clean)
        let bytes = next.encode(generation: generation)
        let offset = off_t(ReplayJournal.markerOffset(next))
        let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, offset) }
        guard n == bytes.count else {
            throw .system(path: displayPath, operation: "writing", errno: n < 0 ? errno : EIO)
        }
        marker = next
        pendingLatest = .min
        return next.durableUntil
    }

    /// Makes every appended record durable and renews the lease (one fdatasync for all of them).
    func sync() throws(StoreError) {
        lastFlushStart = ReplayJournal.monotonicNow()  // an attempt that fails waits for the next turn too
        let start = try writeMarker(clean: false)
        unsynced = false
        uncovered = false
        if fdatasync(fd) != 0 { throw .system(path: displayPath, operation: "syncing", errno: errno) }
        leaseStart = start
    }

    /// Hands every record appended so far, and a new marker, to the flush thread and returns at
    /// once, so the server goes on answering other requests while the disk works.
    /// Replies that wait for these records (`uncovered`) must wait for `finishBackgroundSync`.
    /// Returns false when the thread could not be used: the flush then ran here before returning
    /// (or an error was thrown). Only one background flush runs at a time; records appended
    /// meanwhile wait for the next.
    func startBackgroundSync() throws(StoreError) -> Bool {
        precondition(backgroundSync == .idle, "collect the running flush first")
        lastFlushStart = ReplayJournal.monotonicNow()
        if worker == nil {
            var request: Int32 = -1, result: Int32 = -1
            if mfa_sync_worker_start(&request, &result) == 0 { worker = (request, result) }
        }
        guard let worker else {
            try sync()
            return false
        }
        let start = try writeMarker(clean: false)
        guard mfa_sync_worker_request(worker.request, fd) == 0 else {
            try sync()
            return false
        }
        unsynced = false
        uncovered = false
        inFlightLeaseStart = start
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
            let result = mfa_sync_worker_result(worker.result)
            backgroundSync = .finished(result)
            if result == 0, let start = inFlightLeaseStart { leaseStart = start }
            inFlightLeaseStart = nil
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

    /// A clean stop: every record flushed, then the clean marker written and flushed, so the next
    /// start, in whatever boot, knows nothing was lost. Throws if either flush failed (the
    /// journal then stays unclean, which is safe).
    func closeCleanly() throws(StoreError) {
        awaitBackgroundSync()
        if case .finished = backgroundSync { try finishBackgroundSync() }
        try sync()
        _ = try writeMarker(clean: true)
        if fdatasync(fd) != 0 { throw .system(path: displayPath, operation: "syncing", errno: errno) }
    }

    /// Writes a complete new journal holding `state` and swaps it in atomically.
    private func replace(with state: [String: Entry], generation newGeneration: UInt32, slots newSlots: Int) throws(StoreError) {
        // The flush thread may be flushing the old file: let it end before the descriptor is closed.
        awaitBackgroundSync()
        var bytes = [UInt8](repeating: 0, count: newSlots * ReplayJournal.slotSize)
        ReplayJournal.encodeHeader(generation: newGeneration).withUnsafeBytes { h in
            bytes.withUnsafeMutableBytes { $0.copyMemory(from: h) }
        }
        var slot = ReplayJournal.firstRecordSlot
        for (name, entry) in state {
            let record = ReplayJournal.encodeRecord(user: name, entry: entry, generation: newGeneration)
            bytes.replaceSubrange(slot * ReplayJournal.slotSize..<(slot + 1) * ReplayJournal.slotSize, with: record)
            slot += 1
        }
        // The new file's marker: flushed with it (fsync below), so it starts a lease.
        let next = nextMarker(durableSlots: slot, clean: false)
        let markerOffset = ReplayJournal.markerOffset(next)
        bytes.replaceSubrange(markerOffset..<markerOffset + ReplayJournal.slotSize, with: next.encode(generation: newGeneration))
        let flushStart = ReplayJournal.monotonicNow()
        let tempName = "journal.\(getpid()).new"
        unlinkat(tmpFD, tempName, 0)
        let newFD = openat(tmpFD, tempName, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard newFD >= 0 else { throw .system(path: displayPath, operation: "creating a new", errno: errno) }
        var ok = false
        defer {
            if !ok { close(newFD); unlinkat(tmpFD, tempName, 0) }
        }
        guard writeAll(newFD, bytes) else { throw .system(path: displayPath, operation: "writing", errno: errno) }
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
        uncovered = false
        entries = state
        marker = next
        pendingLatest = .min
        lastFlushStart = flushStart
        leaseStart = next.durableUntil
    }
}
