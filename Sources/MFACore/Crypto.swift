// SPDX-License-Identifier: Apache-2.0
import CMFACrypto

/// Thin, typed access to the libcrypto primitives mfagate needs.
public enum Crypto {
    public enum Digest: String, Sendable, CaseIterable {
        case sha1, sha256, sha512

        var evp: OpaquePointer? {
            switch self {
            case .sha1: return EVP_sha1()
            case .sha256: return EVP_sha256()
            case .sha512: return EVP_sha512()
            }
        }
    }

    /// Template contexts for `mfa_hmac`, made once per digest (nil if OpenSSL refused: the slow
    /// one-shot path is then used). Shared read-only: each HMAC works on its own duplicate.
    nonisolated(unsafe) static let hmacTemplates: [Digest: OpaquePointer?] = [
        .sha1: mfa_hmac_template("SHA1"), .sha256: mfa_hmac_template("SHA256"), .sha512: mfa_hmac_template("SHA512"),
    ]

    /// HMAC of `message` under `key`. libcrypto's one-shot HMAC never fails for these digests.
    public static func hmac(_ digest: Digest, key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        if let template = hmacTemplates[digest] ?? nil {
            var length = 0
            let ok = key.withUnsafeBufferPointer { k in
                message.withUnsafeBufferPointer { m in
                    out.withUnsafeMutableBufferPointer { o in
                        mfa_hmac(template, k.baseAddress, k.count, m.baseAddress, m.count, o.baseAddress, o.count, &length)
                    }
                }
            }
            if ok == 1 {
                out.removeLast(out.count - length)
                return out
            }
        }
        var outLength: UInt32 = 0
        key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { o in
                    _ = HMAC(digest.evp, k.baseAddress, Int32(k.count), m.baseAddress, m.count,
                             o.baseAddress, &outLength)
                }
            }
        }
        return Array(out.prefix(Int(outLength)))
    }

    /// An HMAC key prepared once for several messages (the steps of a TOTP window): keying costs
    /// about a third of an HMAC, so three steps under one key cost two HMACs' worth less.
    final class HMACKey {
        let digest: Digest
        let key: [UInt8]
        /// The keyed context (freed, and with it the key material cleansed, by deinit); nil if
        /// OpenSSL refused, and then each message takes the one-shot path.
        let context: OpaquePointer?

        init(_ digest: Digest, key: [UInt8]) {
            self.digest = digest
            self.key = key
            let template = hmacTemplates[digest] ?? nil
            context = key.withUnsafeBufferPointer { mfa_hmac_keyed(template, $0.baseAddress, $0.count) }
        }

        deinit { EVP_MAC_CTX_free(context) }

        func mac(_ message: [UInt8]) -> [UInt8] {
            guard let context else { return Crypto.hmac(digest, key: key, message: message) }
            var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
            var length = 0
            let ok = message.withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { o in
                    mfa_hmac_with_keyed(context, m.baseAddress, m.count, o.baseAddress, o.count, &length)
                }
            }
            guard ok == 1 else { return Crypto.hmac(digest, key: key, message: message) }
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
        let ok = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        guard ok == 1 else { throw .unavailable }
        return out
    }

    /// Compares two byte strings in time that depends only on their lengths.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0 }
        }
    }
}

extension Crypto {
    /// A SHA-256 context initialised once (nil if OpenSSL refused: the one-shot path is then used).
    /// Shared read-only: each digest works on its own copy.
    nonisolated(unsafe) static let sha256Template: OpaquePointer? = mfa_sha256_template()

    /// SHA-256 of `bytes`. Every login's replay-journal record carries one (its checksum).
    public static func sha256(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let ok = out.withUnsafeMutableBufferPointer { o in
            mfa_sha256(sha256Template, bytes.baseAddress, bytes.count, o.baseAddress)
        }
        if ok == 1 { return out }
        var length: UInt32 = 0
        out.withUnsafeMutableBufferPointer { o in
            _ = EVP_Digest(bytes.baseAddress, bytes.count, o.baseAddress, &length, EVP_sha256(), nil)
        }
        return out
    }
}
