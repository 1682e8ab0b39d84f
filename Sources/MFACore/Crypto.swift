// SPDX-License-Identifier: Apache-2.0
import CMFACrypto

/// Thin, typed access to the primitives mfagate needs: HMAC and SHA-256 from GNU Nettle, random bytes
/// from getrandom(2), a constant-time comparison (Sources/CMFACrypto/shim.h; why Nettle:
/// docs/architecture.md, "Crypto").
public enum Crypto {
    public enum Digest: String, Sendable, CaseIterable {
        case sha1, sha256, sha512

        var nettle: Int32 {
            switch self {
            case .sha1: return Int32(MFA_DIGEST_SHA1)
            case .sha256: return Int32(MFA_DIGEST_SHA256)
            case .sha512: return Int32(MFA_DIGEST_SHA512)
            }
        }
    }

    /// HMAC of `message` under `key`.
    public static func hmac(_ digest: Digest, key: [UInt8], message: [UInt8]) -> [UInt8] {
        HMACKey(digest, key: key).mac(message)
    }

    /// An HMAC key prepared once for several messages (the steps of a TOTP window): keying hashes the
    /// padded key, about a third of an HMAC, so three steps under one key cost two HMACs' worth less.
    /// One user at a time (`mac` works on the keyed context); the key material is wiped by deinit.
    final class HMACKey {
        private let context: UnsafeMutablePointer<mfa_hmac_ctx>

        init(_ digest: Digest, key: [UInt8]) {
            context = .allocate(capacity: 1)
            context.initialize(to: mfa_hmac_ctx())
            _ = key.withUnsafeBufferPointer { mfa_hmac_set_key(context, digest.nettle, $0.baseAddress, $0.count) }
        }

        deinit {
            mfa_hmac_clear(context)
            context.deallocate()
        }

        func mac(_ message: [UInt8]) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: Int(MFA_MAX_DIGEST_SIZE))
            let length = message.withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { mfa_hmac_mac(context, m.baseAddress, m.count, $0.baseAddress) }
            }
            out.removeLast(out.count - length)
            return out
        }
    }

    public enum RandomError: Error, CustomStringConvertible {
        case unavailable
        public var description: String { "the system random number generator failed" }
    }

    /// Cryptographically secure random bytes.
    public static func randomBytes(_ count: Int) throws(RandomError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBytes { mfa_random($0.baseAddress, $0.count) }
        guard ok == 1 else { throw .unavailable }
        return out
    }

    /// Compares two byte strings in time that depends only on their lengths.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in mfa_equal(pa.baseAddress, pb.baseAddress, a.count) == 1 }
        }
    }
}

extension Crypto {
    /// SHA-256 of `bytes`. Every login's replay-journal record carries one (its checksum).
    public static func sha256(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { mfa_sha256(bytes.baseAddress, bytes.count, $0.baseAddress) }
        return out
    }
}
