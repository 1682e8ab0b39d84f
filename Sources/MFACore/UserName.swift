// SPDX-License-Identifier: Apache-2.0
/// A user name that is safe to use as a file name and in a log line.
public struct UserName: Sendable, Hashable, CustomStringConvertible {
    public let value: String
    public var description: String { value }

    public enum Invalid: Error, Equatable, CustomStringConvertible {
        case empty, tooLong, leadingDash, dotOrDotDot, forbiddenByte(UInt8)
        public var description: String {
            switch self {
            case .empty: return "the user name is empty"
            case .tooLong: return "the user name is longer than 32 bytes"
            case .leadingDash: return "the user name starts with '-'"
            case .dotOrDotDot: return "the user name is '.' or '..'"
            case .forbiddenByte(let b): return "the user name contains the byte 0x\(String(b, radix: 16))"
            }
        }
    }

    /// Accepts the names `useradd` and directory services make (letters, digits, `._-@$`, UTF-8)
    /// and refuses anything that could walk a path or forge a log line.
    /// Checked over the UTF-8 bytes in one pass (every login validates a name; `String.contains`
    /// cost more than the rest of the check).
    public init(validating raw: String) throws(Invalid) {
        let bytes = raw.utf8
        guard let first = bytes.first else { throw .empty }
        if bytes.count > 32 { throw .tooLong }
        if first == UInt8(ascii: "-") { throw .leadingDash }
        let dot = UInt8(ascii: ".")
        if bytes.allSatisfy({ $0 == dot }) && bytes.count <= 2 { throw .dotOrDotDot }
        var twoDots = false
        var previous: UInt8 = 0
        for b in bytes {
            let allowed = (b >= 0x80) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z"))
                || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
                || b == dot || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
                || b == UInt8(ascii: "@") || b == UInt8(ascii: "$")
            if !allowed { throw .forbiddenByte(b) }
            if b == dot && previous == dot { twoDots = true }
            previous = b
        }
        if twoDots { throw .dotOrDotDot }
        value = raw
    }
}
