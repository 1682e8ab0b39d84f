// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 network (address/prefix), for `trusted_networks`.
public struct IPNetwork: Sendable, Equatable, CustomStringConvertible {
    /// 4 bytes for IPv4, 16 for IPv6.
    public let address: [UInt8]
    public let prefix: Int
    let text: String
    public var description: String { text }

    /// Accepts `10.0.0.0/8`, `fd00::/8`, or a single address (a /32 or /128).
    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let address = IPNetwork.parseAddress(String(parts[0])) else { return nil }
        let maximum = address.count * 8
        var prefix = maximum
        if parts.count == 2 {
            guard let p = Int(parts[1]), (0...maximum).contains(p), parts[1].allSatisfy(\.isNumber) else { return nil }
            prefix = p
        }
        self.address = address
        self.prefix = prefix
        self.text = text
    }

    /// The bytes of a literal IPv4 or IPv6 address; nil for anything else (host names included).
    /// An IPv4-mapped IPv6 address (::ffff:a.b.c.d, as sshd may report) is read as the IPv4 one.
    public static func parseAddress(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            let bytes = withUnsafeBytes(of: &v6) { Array($0) }
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
                return Array(bytes[12..<16])
            }
            return bytes
        }
        return nil
    }

    public func contains(_ candidate: [UInt8]) -> Bool {
        guard candidate.count == address.count else { return false }
        var bits = prefix
        for i in 0..<address.count where bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xFF : UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if candidate[i] & mask != address[i] & mask { return false }
            bits -= 8
        }
        return true
    }
}
