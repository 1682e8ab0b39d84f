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
        guard let info = SSHAuthInfo.parse(Array(text.utf8)) else { return nil }
        return config.trustedSSHKeys.match(info)
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
