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
    /// SHA-256 of `bytes` (libcrypto's one-shot digest).
    public static func sha256(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        out.withUnsafeMutableBufferPointer { o in
            _ = EVP_Digest(bytes.baseAddress, bytes.count, o.baseAddress, &length, EVP_sha256(), nil)
        }
        return out
    }
}
