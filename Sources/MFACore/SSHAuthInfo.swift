// SPDX-License-Identifier: Apache-2.0
/// What sshd (OpenSSH ≥ 7.8) puts in the PAM environment as `SSH_AUTH_INFO_0` before
/// keyboard-interactive runs: one line per authentication method already passed in this
/// connection, each `METHOD[/SUBMETHOD][ KEYTYPE BASE64][ INFO]\n` (OpenSSH's
/// auth2_update_session_info), e.g. `publickey ssh-ed25519-cert-v01@openssh.com AAAA…\n`.
/// Empty for a login that passed nothing before (password-only keyboard-interactive).
/// Pure parsing: a line that cannot be read is kept with `key == nil` (it trusts nothing).
public struct SSHAuthInfo: Sendable, Equatable {
    /// One method already passed.
    public struct Method: Sendable, Equatable {
        /// `publickey`, `password`, `keyboard-interactive/pam`, `hostbased`, ...
        public var name: String
        /// For `publickey`: the key (or certificate) used, if its line reads as one whose text
        /// type names the same type as the blob; nil otherwise.
        public var key: SSHPublicKey?
    }
    public var methods: [Method]

    /// Largest value read (the PAM module sends at most this much: MFG_MAX_AUTH_INFO).
    public static let maximumLength = 16384
    /// Lines read at most (sshd lists one per method passed; `AuthenticationMethods` chains are short).
    public static let maximumMethods = 16

    /// Reads the variable's value. Lines end at `\n` (the last may lack it); a line holding any
    /// control byte, or more lines than `maximumMethods`, or more than `maximumLength` bytes in
    /// all: nil, the whole value counts for nothing.
    public static func parse(_ text: [UInt8]) -> SSHAuthInfo? {
        guard text.count <= maximumLength else { return nil }
        // Index scanning, no split into arrays: this runs on every SSH login, and the fuzzer
        // (Tests/fuzz/SSHAuthInfoFuzz.swift) runs it ten million times.
        var methods: [Method] = []
        var start = 0
        while start < text.count {
            var end = start
            while end < text.count && text[end] != UInt8(ascii: "\n") { end += 1 }
            guard end > start, methods.count < maximumMethods else { return nil }
            // Words of the line (single spaces, as sshd writes them): method, then for publickey
            // the type and the base64 blob.
            var bounds: [Range<Int>] = []
            var wordStart = start
            for i in start...end {
                if i == end || text[i] == UInt8(ascii: " ") {
                    if bounds.count < 3 { bounds.append(wordStart..<i) }
                    wordStart = i + 1
                } else if text[i] < 0x20 || text[i] >= 0x7F {
                    return nil
                }
            }
            let name = String(decoding: text[bounds[0]], as: UTF8.self)
            var key: SSHPublicKey? = nil
            if name == "publickey", bounds.count == 3, let blob = Base64.decode(text[bounds[2]]),
               let parsed = SSHPublicKey.parse(blob), parsed.type.utf8.elementsEqual(text[bounds[1]]) {
                key = parsed
            }
            methods.append(Method(name: name, key: key))
            start = end + 1
        }
        return SSHAuthInfo(methods: methods)
    }
}
