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
    public static func parse<S: Collection>(_ text: S) -> SSHAuthInfo? where S.Element == UInt8 {
        guard text.count <= maximumLength else { return nil }
        var lines = text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        guard lines.count <= maximumMethods else { return nil }
        var methods: [Method] = []
        for line in lines {
            guard !line.isEmpty, line.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return nil }
            let words = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            let name = String(decoding: words[0], as: UTF8.self)
            var key: SSHPublicKey? = nil
            if name == "publickey", words.count >= 3, let blob = Base64.decode(words[2]),
               let parsed = SSHPublicKey.parse(blob), Array(parsed.type.utf8) == Array(words[1]) {
                key = parsed
            }
            methods.append(Method(name: name, key: key))
        }
        return SSHAuthInfo(methods: methods)
    }
}
