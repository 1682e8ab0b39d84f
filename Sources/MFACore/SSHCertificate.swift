// SPDX-License-Identifier: Apache-2.0
/// An OpenSSH public key or certificate blob, as sshd writes it into `SSH_AUTH_INFO_0` (the bytes
/// behind the base64 of `publickey TYPE BASE64`). Pure parsing, no I/O, no signature check: sshd
/// already verified the key and the certificate's signature before it listed the method as passed;
/// what the daemon needs is which kind of key it was and, for a certificate, which CA key signed it.
///
/// Formats: RFC 4253 §6.6 (`ssh-rsa`, `ssh-dss`), RFC 5656 (`ecdsa-sha2-*`), RFC 8709 (`ssh-ed25519`),
/// OpenSSH's PROTOCOL.u2f (`sk-*`: the key, then the application string) and PROTOCOL.certkeys
/// (`*-cert-v01@openssh.com`: nonce, the key's fields, serial, type, key id, principals, validity,
/// critical options, extensions, reserved, signature key, signature). Every field is read; anything
/// unknown, short, or left over refuses the whole blob (then the key is simply not trusted).
public struct SSHPublicKey: Sendable, Equatable {
    /// The key type as named inside the blob, e.g. `sk-ssh-ed25519-cert-v01@openssh.com`.
    public var type: String
    /// A FIDO security key (`sk-*`, PROTOCOL.u2f), plain or certified.
    public var isSecurityKey: Bool
    /// Present when the blob is a certificate.
    public var certificate: SSHCertificate?
}

public struct SSHCertificate: Sendable, Equatable {
    /// 1: a user certificate, 2: a host certificate (PROTOCOL.certkeys).
    public var certType: UInt32
    public var serial: UInt64
    /// The key id the CA wrote (bytes as given; only for logs, through `loggable`).
    public var keyID: String
    /// The CA's public key blob, as embedded in the certificate.
    public var signatureKey: [UInt8]

    /// `SHA256:` and the unpadded base64 of SHA-256 over the CA key blob: what `ssh-keygen -l -f CA.pub` prints.
    public var caFingerprint: String { SSHPublicKey.fingerprint(of: signatureKey) }
}

extension SSHPublicKey {
    /// Largest blob accepted (an RSA-16384 certificate with many principals stays far below).
    public static let maximumBlobSize = 12 * 1024

    /// Plain key types and how many length-prefixed fields follow the type name.
    static let plainFields: [String: Int] = [
        "ssh-ed25519": 1, "ssh-rsa": 2, "ssh-dss": 4,
        "ecdsa-sha2-nistp256": 2, "ecdsa-sha2-nistp384": 2, "ecdsa-sha2-nistp521": 2,
        "sk-ssh-ed25519@openssh.com": 2, "sk-ecdsa-sha2-nistp256@openssh.com": 3,
    ]
    /// Certificate types and the plain type whose fields they carry.
    static let certificateBase: [String: String] = [
        "ssh-ed25519-cert-v01@openssh.com": "ssh-ed25519", "ssh-rsa-cert-v01@openssh.com": "ssh-rsa",
        "ssh-dss-cert-v01@openssh.com": "ssh-dss",
        "ecdsa-sha2-nistp256-cert-v01@openssh.com": "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com": "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521-cert-v01@openssh.com": "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519-cert-v01@openssh.com": "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com": "sk-ecdsa-sha2-nistp256@openssh.com",
    ]

    /// The key or certificate in `blob`, or nil if it is not one of the types above, well formed.
    public static func parse(_ blob: [UInt8]) -> SSHPublicKey? {
        guard blob.count <= maximumBlobSize else { return nil }
        var r = SSHWireReader(blob)
        guard let typeBytes = r.string(), let type = String(validating: typeBytes, as: UTF8.self) else { return nil }
        if let count = plainFields[type] {
            guard r.skipStrings(count), r.atEnd else { return nil }
            return SSHPublicKey(type: type, isSecurityKey: type.hasPrefix("sk-"), certificate: nil)
        }
        guard let base = certificateBase[type], let fields = plainFields[base] else { return nil }
        guard r.skipStrings(1 + fields),  // nonce, then the key's own fields
              let serial = r.u64(), let certType = r.u32(), let keyID = r.string(),
              r.skipStrings(1), r.u64() != nil, r.u64() != nil,  // principals, valid after, valid before
              r.skipStrings(3),  // critical options, extensions, reserved
              let signatureKey = r.string(), r.skipStrings(1), r.atEnd else { return nil }
        // The CA key is a plain key itself (a certificate cannot sign one).
        guard let ca = parse(signatureKey), ca.certificate == nil else { return nil }
        return SSHPublicKey(type: type, isSecurityKey: base.hasPrefix("sk-"),
                            certificate: SSHCertificate(certType: certType, serial: serial,
                                                        keyID: String(decoding: keyID, as: UTF8.self),
                                                        signatureKey: signatureKey))
    }

    /// `SHA256:` + unpadded base64 of SHA-256(blob), OpenSSH's fingerprint.
    public static func fingerprint(of blob: [UInt8]) -> String {
        "SHA256:" + Base64.encode(blob.withUnsafeBytes { Crypto.sha256($0) }, padded: false)
    }
}

/// SSH wire fields (RFC 4251 §5): u32 and u64 big-endian, string = u32 length + bytes.
struct SSHWireReader {
    let bytes: [UInt8]
    var index = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var atEnd: Bool { index == bytes.count }

    mutating func u32() -> UInt32? {
        guard bytes.count - index >= 4 else { return nil }
        var v: UInt32 = 0
        for _ in 0..<4 { v = v << 8 | UInt32(bytes[index]); index += 1 }
        return v
    }
    mutating func u64() -> UInt64? {
        guard let hi = u32(), let lo = u32() else { return nil }
        return UInt64(hi) << 32 | UInt64(lo)
    }
    mutating func string() -> [UInt8]? {
        guard let n = u32(), UInt64(n) <= UInt64(bytes.count - index) else { return nil }
        defer { index += Int(n) }
        return Array(bytes[index..<(index + Int(n))])
    }
    mutating func skipStrings(_ count: Int) -> Bool {
        for _ in 0..<count {
            guard let n = u32(), UInt64(n) <= UInt64(bytes.count - index) else { return false }
            index += Int(n)
        }
        return true
    }
}
