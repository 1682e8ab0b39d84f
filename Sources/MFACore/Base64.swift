// SPDX-License-Identifier: Apache-2.0
/// Standard base64 (RFC 4648 §4), strict: what OpenSSH writes for key blobs and fingerprints.
/// Hand-written (40 lines) rather than libcrypto's EVP_DecodeBlock, which skips whitespace, accepts
/// a missing final group and returns the padding as zero bytes: an SSH key blob read from
/// `SSH_AUTH_INFO_0` must be exactly one encoding or refused (docs/architecture.md).
public enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    static let values: [Int8] = {
        var table = [Int8](repeating: -1, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = Int8(i) }
        return table
    }()

    public static func encode(_ bytes: [UInt8], padded: Bool = true) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            let b0 = UInt32(bytes[i]), b1 = n > 1 ? UInt32(bytes[i + 1]) : 0, b2 = n > 2 ? UInt32(bytes[i + 2]) : 0
            let v = b0 << 16 | b1 << 8 | b2
            for k in 0..<4 {
                if k <= n { out.append(alphabet[Int(v >> UInt32(18 - 6 * k) & 63)]) } else if padded { out.append(UInt8(ascii: "=")) }
            }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes, or nil unless `text` is canonical padded base64 (length a multiple of 4, `=` only
    /// at the end, unused low bits zero).
    public static func decode(_ text: [UInt8]) -> [UInt8]? { decode(text[...]) }

    public static func decode(_ chars: ArraySlice<UInt8>) -> [UInt8]? {
        guard chars.count % 4 == 0 else { return nil }
        var padding = 0
        while padding < 3 && padding < chars.count && chars[chars.endIndex - 1 - padding] == UInt8(ascii: "=") { padding += 1 }
        guard padding <= 2 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 4 * 3)
        var i = chars.startIndex
        while i < chars.endIndex {
            var v: UInt32 = 0
            let last = i + 4 == chars.endIndex
            let pad = last ? padding : 0
            for k in 0..<4 {
                let c = chars[i + k]
                if k >= 4 - pad { v <<= 6; continue }
                let d = values[Int(c)]
                guard d >= 0 else { return nil }
                v = v << 6 | UInt32(d)
            }
            // Bits below the last whole byte must be zero, so each blob has one encoding only.
            if pad == 1 && v & 0xFF != 0 { return nil }
            if pad == 2 && v & 0xFFFF != 0 { return nil }
            out.append(UInt8(v >> 16 & 0xFF))
            if pad < 2 { out.append(UInt8(v >> 8 & 0xFF)) }
            if pad < 1 { out.append(UInt8(v & 0xFF)) }
            i += 4
        }
        return out
    }
}
