// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFAFleetCrypto
import CMFASys
import MFASafeFile
import MFACore
import MFAStore

/// Why the fleet store cannot start or cannot read a record. Each says what to fix.
public enum FleetError: Error, Equatable, CustomStringConvertible {
    case unsafeFile(path: String, reason: String)
    case badKey(path: String, reason: String)
    case unreadable(path: String, reason: String)
    case sealing(String)
    /// libpq could not be loaded (CMFAPostgres.h): the sentence names the package.
    case library(String)
    /// database_url is neither a local socket nor verified TLS, and database_insecure is not set.
    case insecureLink(String)

    public var description: String {
        switch self {
        case .unsafeFile(let path, let reason): return "refusing \(path): \(reason)"
        case .badKey(let path, let reason): return "fleet key \(path) is unusable: \(reason)"
        case .unreadable(let path, let reason): return "cannot read \(path): \(reason)"
        case .sealing(let what): return what
        case .library(let what): return what
        case .insecureLink(let what): return what
        }
    }
}

/// Seals user records for the fleet database with AES-256-GCM under the fleet key, which lives only
/// on the hosts: a dump of the database alone yields no working secret. The additional data binds
/// each ciphertext to its user name and to the row's version, so a row copied onto another user's
/// name does not open, and neither does an old row put back under a newer version number: the
/// version a host compares with its high-water mark (FleetMarks) is the one inside the seal.
///
/// Sealed form: format byte | 12-byte random nonce | ciphertext | 16-byte tag. Format 2 (written
/// since schema version 2): additional data `"mfagate fleet record v2" NUL user NUL version`.
/// Format 1 (schema version 1, still read): `"mfagate fleet record v1" NUL user`, no version.
public struct FleetCipher: Sendable {
    public static let keySize = 32
    static let legacyFormat: UInt8 = 1
    static let format: UInt8 = 2
    static let nonceSize = 12
    static let tagSize = 16
    let key: [UInt8]

    public init(key: [UInt8]) {
        precondition(key.count == FleetCipher.keySize, "the fleet key is 32 bytes")
        self.key = key
    }

    static func additionalData(user: String, version: Int64?) -> [UInt8] {
        guard let version else { return Array("mfagate fleet record v1".utf8) + [0] + Array(user.utf8) }
        return Array("mfagate fleet record v2".utf8) + [0] + Array(user.utf8) + [0] + Array(String(version).utf8)
    }

    /// A short public name of the key (HMAC of a fixed label), stored in the database so a host with
    /// another key is told so at connect time instead of failing on every user.
    public var keyID: String {
        UserFileFormat.hex(Crypto.hmac(.sha256, key: key, message: Array("mfagate fleet key id".utf8)).prefix(8))
    }

    /// Seals `plain` as the record of `user` at row version `version` (format 2).
    public func seal(_ plain: [UInt8], user: String, version: Int64, nonce: [UInt8]? = nil) throws(FleetError) -> [UInt8] {
        try seal(plain, format: FleetCipher.format, aad: FleetCipher.additionalData(user: user, version: version), nonce: nonce)
    }

    /// Format 1, as schema version 1 wrote it (for tests of the upgrade path).
    func sealLegacy(_ plain: [UInt8], user: String) throws(FleetError) -> [UInt8] {
        try seal(plain, format: FleetCipher.legacyFormat, aad: FleetCipher.additionalData(user: user, version: nil), nonce: nil)
    }

    func seal(_ plain: [UInt8], format: UInt8, aad: [UInt8], nonce: [UInt8]?) throws(FleetError) -> [UInt8] {
        let iv: [UInt8]
        if let nonce {
            iv = nonce
        } else {
            do { iv = try Crypto.randomBytes(FleetCipher.nonceSize) } catch { throw .sealing("no random bytes for a nonce: \(error)") }
        }
        precondition(iv.count == FleetCipher.nonceSize)
        var cipher = [UInt8](repeating: 0, count: plain.count)
        var tag = [UInt8](repeating: 0, count: FleetCipher.tagSize)
        let ok = mfa_gcm_seal(key, iv, aad, aad.count, plain, plain.count, &cipher, &tag)
        guard ok == 1 else { throw .sealing("AES-256-GCM sealing failed") }
        return [format] + iv + cipher + tag
    }

    /// What a sealed row opened to: the plain bytes, and whether the version was inside the seal
    /// (format 2) or only in the row's plain column (format 1, from before schema version 2).
    public struct Opened {
        public var plain: [UInt8]
        public var versionSealed: Bool
    }

    /// The plain bytes, or nil if the sealed bytes were made under another key, user name or (format
    /// 2) version, or were changed in any bit.
    public func open(_ sealed: [UInt8], user: String, version: Int64) -> Opened? {
        let overhead = 1 + FleetCipher.nonceSize + FleetCipher.tagSize
        guard sealed.count >= overhead, sealed[0] == FleetCipher.format || sealed[0] == FleetCipher.legacyFormat else { return nil }
        let versionSealed = sealed[0] == FleetCipher.format
        let aad = FleetCipher.additionalData(user: user, version: versionSealed ? version : nil)
        guard let plain = open(sealed, aad: aad) else { return nil }
        return Opened(plain: plain, versionSealed: versionSealed)
    }

    /// Seals a host's offline-cache entry (FleetOfflineCache): format 3, additional data
    /// `"mfagate fleet cache v1" NUL user`, so an entry neither opens as a database row nor under
    /// another user's name.
    func sealCacheEntry(_ plain: [UInt8], user: String) throws(FleetError) -> [UInt8] {
        try seal(plain, format: FleetCipher.cacheFormat, aad: FleetCipher.cacheAdditionalData(user: user), nonce: nil)
    }

    func openCacheEntry(_ sealed: [UInt8], user: String) -> [UInt8]? {
        guard sealed.first == FleetCipher.cacheFormat else { return nil }
        return open(sealed, aad: FleetCipher.cacheAdditionalData(user: user))
    }

    static let cacheFormat: UInt8 = 3

    static func cacheAdditionalData(user: String) -> [UInt8] {
        Array("mfagate fleet cache v1".utf8) + [0] + Array(user.utf8)
    }

    /// The plain bytes of `sealed` (any format byte) under `aad`, or nil.
    func open(_ sealed: [UInt8], aad: [UInt8]) -> [UInt8]? {
        let overhead = 1 + FleetCipher.nonceSize + FleetCipher.tagSize
        guard sealed.count >= overhead else { return nil }
        let iv = Array(sealed[1..<1 + FleetCipher.nonceSize])
        let cipher = Array(sealed[(1 + FleetCipher.nonceSize)..<(sealed.count - FleetCipher.tagSize)])
        let tag = Array(sealed[(sealed.count - FleetCipher.tagSize)...])
        var plain = [UInt8](repeating: 0, count: cipher.count)
        guard mfa_gcm_open(key, iv, aad, aad.count, cipher, cipher.count, tag, &plain) == 1 else {
            mfa_wipe(&plain, plain.count)
            return nil
        }
        return plain
    }

    /// The key from its file's text: 64 hex digits, an optional trailing newline.
    public static func parseKey(_ bytes: [UInt8], path: String) throws(FleetError) -> [UInt8] {
        var text = bytes[...]
        while let last = text.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") || last == UInt8(ascii: " ") {
            text = text.dropLast()
        }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        let digits = Array(text)
        guard digits.count == 2 * keySize else {
            throw .badKey(path: path, reason: "it must hold 64 hex digits (make one with: openssl rand -hex 32)")
        }
        var key: [UInt8] = []
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let hi = nibble(digits[i]), let lo = nibble(digits[i + 1]) else {
                throw .badKey(path: path, reason: "it must hold 64 hex digits (make one with: openssl rand -hex 32)")
            }
            key.append(hi << 4 | lo)
        }
        return key
    }
}

/// Reads a small secret file (the fleet key, the database password) after checking, on the open
/// descriptor, that nobody but its owner can read it and that the owner is root or the daemon.
public enum SecretFile {
    public static func read(_ path: String, what: String, owner: uid_t = geteuid()) throws(FleetError) -> [UInt8] {
        let rules = SafeFileRules(owners: [owner, 0], forbiddenModeBits: 0o077, maximumSize: 4096)
        do {
            return try SafeFileReader.read(path, rules: rules).bytes
        } catch {
            switch error {
            case .symbolicLink: throw .unsafeFile(path: path, reason: "\(what) is a symbolic link (point the config at the real file)")
            case .missing: throw .unreadable(path: path, reason: "\(String(cString: strerror(ENOENT))) (the \(what) must exist, readable by the daemon's user only)")
            case .system(_, let e): throw .unreadable(path: path, reason: "\(String(cString: strerror(e))) (the \(what) must exist, readable by the daemon's user only)")
            case .notRegular: throw .unsafeFile(path: path, reason: "the \(what) is not a regular file")
            case .mode(let mode): throw .unsafeFile(path: path, reason: "its mode \(String(mode & 0o777, radix: 8)) lets others read the \(what) (chmod 0400 it)")
            case .owner(let uid): throw .unsafeFile(path: path, reason: "the \(what) is owned by uid \(uid), not by root or the daemon's uid \(owner) (chown it)")
            case .tooLarge: throw .unsafeFile(path: path, reason: "the \(what) is larger than 4 KiB")
            case .hardLinks: throw .unsafeFile(path: path, reason: error.sentence(path: path, what: what, rules: rules))
            }
        }
    }
}
