// SPDX-License-Identifier: Apache-2.0
/// `trusted_ssh_keys` (issue 19): SSH keys whose use earlier in the same connection already gives
/// a second factor, so the code is skipped (PAM_IGNORE). Words: `sk` (a FIDO security key, `sk-*`
/// types and their certificates: possession plus the user's touch) and
/// `cert-authority:SHA256:<fingerprint>` (a user certificate whose signing CA key has that
/// fingerprint, as `ssh-keygen -l -f CA.pub` prints it). Empty: off.
public struct TrustedSSHKeys: Sendable, Equatable {
    public var securityKeys = false
    /// SHA-256 digests (32 bytes) of trusted CA key blobs, in the order listed.
    public var caDigests: [[UInt8]] = []
    public init() {}
    public var isEmpty: Bool { !securityKeys && caDigests.isEmpty }

    /// The words as the config file would take them.
    public var text: String {
        ((securityKeys ? ["sk"] : []) + caDigests.map { "cert-authority:SHA256:" + Base64.encode($0, padded: false) })
            .joined(separator: " ")
    }

    static let caPrefix = "cert-authority:SHA256:"

    /// Parses the words of the value; the error names the word and the forms allowed.
    static func parse(_ words: [String]) -> Result<TrustedSSHKeys, ConfigParser.ValueError> {
        var keys = TrustedSSHKeys()
        for word in words {
            if word == "sk" {
                keys.securityKeys = true
            } else if word.hasPrefix(caPrefix), let digest = fingerprintDigest(word.dropFirst(caPrefix.count)) {
                if !keys.caDigests.contains(digest) { keys.caDigests.append(digest) }
            } else {
                let shown = word.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }) ? word : "(not printable)"
                return .failure(ConfigParser.ValueError(message: "`trusted_ssh_keys`: \"\(shown.prefix(80))\" is neither sk nor cert-authority:SHA256:<the CA key's fingerprint, as ssh-keygen -l -f CA.pub prints it>"))
            }
        }
        return .success(keys)
    }

    /// The 32 bytes of an unpadded base64 SHA-256 fingerprint (43 characters), or nil.
    static func fingerprintDigest(_ text: Substring) -> [UInt8]? {
        guard text.utf8.count == 43, let bytes = Base64.decode(Array(text.utf8) + [UInt8(ascii: "=")]), bytes.count == 32 else {
            return nil
        }
        return bytes
    }

    /// Why the methods already passed make the code unnecessary, for the log and `check`
    /// (key type, CA fingerprint; never the blob), or nil if no key listed here was used.
    public func match(_ info: SSHAuthInfo) -> String? {
        for method in info.methods {
            guard method.name == "publickey", let key = method.key else { continue }
            if securityKeys && key.isSecurityKey {
                return "security key \(key.type)"
            }
            // Only user certificates log users in; sshd refuses a host certificate for that anyway.
            if let cert = key.certificate, cert.certType == 1, !caDigests.isEmpty {
                let digest = cert.signatureKey.withUnsafeBytes { Crypto.sha256($0) }
                if caDigests.contains(digest) {
                    return "certificate \(key.type) signed by CA \(cert.caFingerprint)"
                }
            }
        }
        return nil
    }

    /// `match` on the text of `SSH_AUTH_INFO_0` (a login's, or the line `mfagate check --ssh-key`
    /// builds): nil when it cannot be read or names no trusted key.
    public func match(authInfo text: [UInt8]) -> String? {
        guard !isEmpty, let info = SSHAuthInfo.parse(text) else { return nil }
        return match(info)
    }

    /// Why a key `match` does not trust gives no skip, for `mfagate check --ssh-key` (the key type
    /// and CA fingerprint only; never the blob).
    public func whyNotTrusted(_ key: SSHPublicKey) -> String {
        if isEmpty { return "trusted_ssh_keys is not set, so no key skips the code" }
        if let cert = key.certificate {
            if cert.certType != 1 { return "\(key.type) is a host certificate, which never logs a user in" }
            if key.isSecurityKey && !securityKeys {
                return "\(key.type) is a security key certificate signed by CA \(cert.caFingerprint), but trusted_ssh_keys lists neither sk nor that CA"
            }
            return "\(key.type) is signed by CA \(cert.caFingerprint), which trusted_ssh_keys does not list"
        }
        if key.isSecurityKey { return "\(key.type) is a security key, but trusted_ssh_keys does not list sk" }
        return "\(key.type) is neither a security key (sk) nor a certificate signed by a CA trusted_ssh_keys lists"
    }
}

extension ConfigParser {
    static func applyTrustedSSHKeys(_ value: String, to config: inout DaemonConfig) throws(ValueError) {
        switch TrustedSSHKeys.parse(words(value)) {
        case .success(let keys): config.trustedSSHKeys = keys
        case .failure(let error): throw error
        }
    }
}
