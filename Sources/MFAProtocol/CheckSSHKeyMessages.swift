// SPDX-License-Identifier: Apache-2.0
/// `mfagate check --ssh-key FILE`: the dry-run answers as if sshd had reported a login with that
/// key (`SSH_AUTH_INFO_0` = `publickey TYPE BLOB`). CHECK gains an optional flags byte after the
/// rhost; bit 0: the key's type and its base64 blob follow (docs/protocol.md). A CHECK without a
/// key is the old frame byte for byte; an older daemon refuses the flags byte (it closes the
/// connection), which the CLI turns into one sentence.
extension WireProtocol {
    /// CHECK flags (an optional last byte): bit 0, str key type and str key blob (base64) follow.
    public static let checkFlagSSHKey: UInt8 = 0x01
    /// Longest key type accepted (OpenSSH's longest is `sk-ecdsa-sha2-nistp256-cert-v01@openssh.com`).
    public static let maximumSSHKeyType = 255
}

/// A public key or certificate as a `.pub` line names it: its type and the base64 of its blob.
/// Public by nature; the daemon logs neither (only the type and a CA fingerprint).
public struct CheckSSHKey: Sendable, Equatable {
    public var type: String
    public var blob: String
    public init(type: String, blob: String) {
        self.type = type
        self.blob = blob
    }
}

extension Writer {
    mutating func checkSSHKey(_ key: CheckSSHKey) throws(FrameError) {
        try CheckSSHKey.checkLengths(type: key.type, blob: key.blob)
        u8(WireProtocol.checkFlagSSHKey); try str(key.type); try str(key.blob)
    }
}

extension Reader {
    /// The optional tail of CHECK: nil when absent (an older CLI, or no `--ssh-key`).
    mutating func checkSSHKey() throws(FrameError) -> CheckSSHKey? {
        guard !atEnd else { return nil }
        let flags = try u8()
        guard flags & WireProtocol.checkFlagSSHKey != 0 else { return nil }
        let type = try str(), blob = try str()
        try CheckSSHKey.checkLengths(type: type, blob: blob)
        return CheckSSHKey(type: type, blob: blob)
    }
}

extension CheckSSHKey {
    /// Both sides refuse what a login's SSH auth info could not carry either.
    static func checkLengths(type: String, blob: String) throws(FrameError) {
        guard !type.isEmpty, type.utf8.count <= WireProtocol.maximumSSHKeyType else { throw .badValue("SSH key type of \(type.utf8.count) bytes") }
        guard blob.utf8.count <= WireProtocol.maximumSSHAuthInfo else {
            throw .badValue("SSH key longer than \(WireProtocol.maximumSSHAuthInfo) bytes")
        }
    }
}
