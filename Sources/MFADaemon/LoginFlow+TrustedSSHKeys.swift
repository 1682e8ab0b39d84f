// SPDX-License-Identifier: Apache-2.0
import MFACore
import MFAProtocol

/// `trusted_ssh_keys` (issue 19): the key sshd says was already used in this connection
/// (`SSH_AUTH_INFO_0`, relayed by the module in LOGIN_BEGIN) may make the code unnecessary.
/// The policy decides where that counts (Policy.evaluate); this only finds the key.
extension LoginFlow {
    /// A description of the trusted key used (type, CA fingerprint; never the blob), or nil.
    ///
    /// Only sshd's word counts: a root peer (the kernel's SO_PEERCRED) whose process has real uid 0
    /// (the module's getuid(): sshd's monitor). A plain user's client can send any auth info in a raw
    /// LOGIN_BEGIN, and a setuid su or sudo is root with the invoking user's real uid, whose PAM
    /// environment pam_env may fill from the user's files; neither gets a skip.
    func trustedSSHKey(_ request: LoginBegin, peer: Peer) -> String? {
        guard !config.trustedSSHKeys.isEmpty, let text = request.sshAuthInfo, !text.isEmpty else { return nil }
        guard peer.isRoot, request.realUID == 0 else { return nil }
        return config.trustedSSHKeys.match(authInfo: Array(text.utf8))
    }
}

extension AdminVerbs {
    /// For `mfagate check`: a login that would be asked (or refused, or offered enrollment) skips
    /// the code when sshd reports a trusted key; say so, with the config line.
    func trustedSSHKeysNote(_ decision: LoginDecision) -> String? {
        guard !config.trustedSSHKeys.isEmpty else { return nil }
        if case .ignore = decision { return nil }
        return "; an SSH login that already used a key trusted by \(config.rule("trusted_ssh_keys")) gets no code instead"
    }
}

extension AdminVerbs {
    /// `mfagate check --ssh-key`: the line sshd would put in `SSH_AUTH_INFO_0` for a login with this
    /// key, read by the login's parser and matched as a login's is. What `trusted_ssh_keys` trusts in
    /// it (nil: nothing) and, if nothing, why not; nil when the key cannot be read at all.
    func checkedKey(_ key: CheckSSHKey) -> (trusted: String?, note: String?)? {
        // One word each, as in a `.pub` line: more words would be read as sshd's extra info.
        let isWord: (String) -> Bool = { !$0.isEmpty && $0.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F } }
        guard isWord(key.type), isWord(key.blob) else { return nil }
        let line = Array("publickey \(key.type) \(key.blob)\n".utf8)
        guard let info = SSHAuthInfo.parse(line), info.methods.count == 1, let parsed = info.methods[0].key else { return nil }
        if let trusted = config.trustedSSHKeys.match(authInfo: line) { return (trusted, nil) }
        return (nil, "; an SSH login with this key gets no skip: \(config.trustedSSHKeys.whyNotTrusted(parsed))")
    }

    static func unreadableKey(_ key: CheckSSHKey) -> DaemonMessage {
        let shown = key.type.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) ? key.type : "(not printable)"
        return .error(.badRequest, message: "the SSH key sent (type \(shown.prefix(80))) is not a public key or certificate mfagated can read")
    }
}
