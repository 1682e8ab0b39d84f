// SPDX-License-Identifier: Apache-2.0
/// RFC 4648 base32, as authenticator apps and google-authenticator files use it.
public enum Base32 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    /// Upper case, no padding: the form the Key Uri Format wants.
    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 8 + 4) / 5)
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | UInt32(byte)
            bits += 8
            while bits >= 5 {
                bits -= 5
                out.append(alphabet[Int((buffer >> UInt32(bits)) & 0x1F)])
            }
        }
        if bits > 0 {
            out.append(alphabet[Int((buffer << UInt32(5 - bits)) & 0x1F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Accepts what people paste: any case, spaces and dashes between groups, optional `=` padding.
    /// Returns nil for any other character or for trailing bits that are not zero-padding.
    public static func decode(_ text: String) -> [UInt8]? {
        decode(utf8: Array(text.utf8)[...])
    }

    /// `decode` over the text's UTF-8 bytes (the daemon parses user files as bytes).
    public static func decode(utf8 text: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.count * 5 / 8)
        var buffer: UInt32 = 0
        var bits = 0
        var sawPadding = false
        for ch in text {
            if ch == UInt8(ascii: " ") || ch == UInt8(ascii: "-") { continue }
            if ch == UInt8(ascii: "=") { sawPadding = true; continue }
            if sawPadding { return nil }
            let value: UInt8
            switch ch {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = ch - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = ch - UInt8(ascii: "a")
            case UInt8(ascii: "2")...UInt8(ascii: "7"): value = ch - UInt8(ascii: "2") + 26
            default: return nil
            }
            buffer = (buffer << 5) | UInt32(value)
            bits += 5
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((buffer >> UInt32(bits)) & 0xFF))
            }
        }
        // Leftover bits must be fewer than 5; an extra full symbol means a length no encoder makes.
        if bits >= 5 { return nil }
        return out
    }
}
