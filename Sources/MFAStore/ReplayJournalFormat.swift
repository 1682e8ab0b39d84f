// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import MFACore

/// The replay journal's slot format: header (slot 0) and records (slots 3…); the markers (slots
/// 1 and 2) are JournalMarker's.
extension ReplayJournal {

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

    static func decodeHeader(_ slot: UnsafeRawBufferPointer) -> (generation: UInt32, version1: Bool)? {
        let tag = Array(slot[0..<8])
        guard tag == magic || tag == magicVersion1,
              Array(checksum(UnsafeRawBufferPointer(rebasing: slot[0..<88]))) == Array(slot[88..<96]) else {
            return nil
        }
        let g = UInt32(get(slot, at: 8, width: 4))
        return g == 0 ? nil : (g, tag == magicVersion1)
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
