// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import MFACore

/// The replay journal's marker: which boot wrote the journal, up to when a TOTP login may have
/// been answered without its record on disk, and whether the last run ended with a clean,
/// flushed shutdown. It replaces the flush before each TOTP SUCCESS (docs/robustness.md,
/// "Replay across a power cut").
///
/// The rule: a TOTP login is answered once its record is written (`pwrite`, in the page cache),
/// without waiting for the disk, only while the clock is before `durableUntil + bound` of a
/// marker that is already on disk (a lease). The daemon renews the lease by flushing the journal
/// in the background every `bound / 2`; when a flush is late the replies wait for one instead.
/// A SIGKILL loses nothing (the page cache keeps every write); only a machine crash can lose
/// records, and a machine crash means a new boot id. So, at start, a marker of another boot that
/// is not clean means that every code accepted before the crash was accepted before
/// `durableUntil + bound` by the crashed run's clock: every TOTP step up to the last one
/// acceptable then (`OTP.lastStepAcceptable`, with the user's drift and the widest window used)
/// counts as used. That horizon is kept in every later marker, so a second crash (or a clock set
/// back at boot) cannot lose it.
///
/// Two marker slots (1 and 2) are written in turn, so a torn write leaves the previous one.
struct JournalMarker: Equatable {
    /// Higher is newer; the marker goes to slot `1 + sequence % 2`.
    var sequence: UInt64 = 0
    /// `/proc/sys/kernel/random/boot_id` as 16 bytes (all zeros: unknown, never the same boot).
    var bootID: [UInt8] = JournalMarker.unknownBoot
    /// Wall-clock milliseconds: the flush that wrote this marker started at (or after) this time.
    var durableUntil: Int64 = 0
    /// Milliseconds after `durableUntil` during which logins may be answered before their flush.
    var bound: Int64 = 0
    /// Slots (header and markers included) written before this marker's flush began: after a
    /// power cut, at least these hold what they held then (a test drops the rest to make one).
    var durableSlots: Int = 0
    /// Every TOTP step acceptable before this time (ms) counts as used (from an earlier crash).
    var horizon: Int64? = nil
    /// The widest `window` in use when the horizon's codes were accepted.
    var horizonWindow: Int = 0
    /// The widest `window` used for any login of this run so far.
    var leadWindow: Int = 0
    /// Written last, after every record was flushed, by a daemon that stopped cleanly.
    var clean: Bool = false

    static let unknownBoot = [UInt8](repeating: 0, count: 16)
    static let tag = Array("MARK".utf8)
    static let none = Int64.min

    /// The horizon in force for a run that starts in boot `bootID` after the run that wrote
    /// `markers` (the valid ones, newest first). None: a new journal, or one of format 1 (which
    /// flushed before every SUCCESS): nothing can have been lost. `markerless`: a journal of this
    /// format whose two markers are both damaged, which this daemon never writes: nothing is
    /// known, so every step acceptable until now (by this boot's clock) counts as used, with the
    /// widest window there is.
    ///
    /// The newest marker says which boot wrote last and whether it stopped cleanly; the lease end
    /// is the latest of both slots (while a flush was writing one slot, replies still left under
    /// the lease of the other).
    static func horizon(after markers: [JournalMarker], markerless: Bool, bootID: [UInt8], now: Int64,
                        maximumWindow: Int) -> (time: Int64, window: Int)? {
        guard let newest = markers.first else { return markerless ? (now, maximumWindow) : nil }
        var result: (time: Int64, window: Int)? = nil
        for m in markers {
            if let h = m.horizon { result = (max(result?.time ?? h, h), max(result?.window ?? 0, m.horizonWindow)) }
        }
        let sameBoot = newest.bootID == bootID && bootID != unknownBoot
        if !sameBoot && !newest.clean {
            for m in markers {
                let (end, overflow) = m.durableUntil.addingReportingOverflow(m.bound)
                let crash = (time: overflow ? Int64.max : end, window: m.leadWindow)
                result = (max(result?.time ?? crash.time, crash.time), max(result?.window ?? 0, crash.window))
            }
        }
        return result
    }

    // MARK: slot format

    /// generation u32 | sequence u64 | boot id (16) | durableUntil i64 | bound u32 | durableSlots u32 |
    /// horizon i64 | horizonWindow u8 | leadWindow u8 | clean u8 | zeros | "MARK" at 84 | checksum (8).
    func encode(generation: UInt32) -> [UInt8] {
        var slot = [UInt8](repeating: 0, count: ReplayJournal.slotSize)
        ReplayJournal.put(UInt64(generation), into: &slot, at: 0, width: 4)
        ReplayJournal.put(sequence, into: &slot, at: 4, width: 8)
        slot.replaceSubrange(12..<28, with: bootID.count == 16 ? bootID : JournalMarker.unknownBoot)
        ReplayJournal.put(UInt64(bitPattern: durableUntil), into: &slot, at: 28, width: 8)
        ReplayJournal.put(UInt64(max(0, min(bound, Int64(UInt32.max)))), into: &slot, at: 36, width: 4)
        ReplayJournal.put(UInt64(max(0, min(durableSlots, Int(UInt32.max)))), into: &slot, at: 40, width: 4)
        ReplayJournal.put(UInt64(bitPattern: horizon ?? JournalMarker.none), into: &slot, at: 44, width: 8)
        slot[52] = UInt8(clamping: horizonWindow)
        slot[53] = UInt8(clamping: leadWindow)
        slot[54] = clean ? 1 : 0
        slot.replaceSubrange(84..<88, with: JournalMarker.tag)
        let sum = slot.withUnsafeBytes { ReplayJournal.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<88])) }
        slot.replaceSubrange(88..<96, with: sum)
        return slot
    }

    static func decode(_ slot: UnsafeRawBufferPointer, generation: UInt32) -> JournalMarker? {
        guard UInt32(ReplayJournal.get(slot, at: 0, width: 4)) == generation, Array(slot[84..<88]) == tag,
              Array(ReplayJournal.checksum(UnsafeRawBufferPointer(rebasing: slot[0..<88]))) == Array(slot[88..<96]) else {
            return nil
        }
        var m = JournalMarker()
        m.sequence = ReplayJournal.get(slot, at: 4, width: 8)
        m.bootID = Array(slot[12..<28])
        m.durableUntil = Int64(bitPattern: ReplayJournal.get(slot, at: 28, width: 8))
        m.bound = Int64(ReplayJournal.get(slot, at: 36, width: 4))
        m.durableSlots = Int(ReplayJournal.get(slot, at: 40, width: 4))
        let h = Int64(bitPattern: ReplayJournal.get(slot, at: 44, width: 8))
        m.horizon = h == none ? nil : h
        m.horizonWindow = Int(slot[52])
        m.leadWindow = Int(slot[53])
        m.clean = slot[54] == 1
        return m
    }
}

/// Reads the kernel's boot id (a new random UUID at every boot).
public enum BootID {
    public static let kernelPath = "/proc/sys/kernel/random/boot_id"

    /// The 16 bytes of the UUID in the file, or all zeros (unknown: every start counts as a new
    /// boot) if it cannot be read or is not a UUID.
    public static func read(path: String = kernelPath) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { return JournalMarker.unknownBoot }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 64) }
        guard n > 0 else { return JournalMarker.unknownBoot }
        return parse(String(decoding: buffer[0..<n], as: UTF8.self)) ?? JournalMarker.unknownBoot
    }

    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (surrounding whitespace allowed) → 16 bytes.
    public static func parse(_ text: String) -> [UInt8]? {
        var nibbles: [UInt8] = []
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibbles.append(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibbles.append(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibbles.append(byte - UInt8(ascii: "A") + 10)
            case UInt8(ascii: "-"), UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\t"): continue
            default: return nil
            }
        }
        guard nibbles.count == 32 else { return nil }
        let bytes = (0..<16).map { nibbles[2 * $0] << 4 | nibbles[2 * $0 + 1] }
        return bytes == JournalMarker.unknownBoot ? nil : bytes
    }
}
