// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the SSH_AUTH_INFO_0 parser (SSHAuthInfo.parse) and `trusted_ssh_keys` matching,
// which read what the PAM module relays from sshd's PAM environment in LOGIN_BEGIN. Only a root peer
// is believed, but any local user can send the bytes, so the parser sees them all. Built by
// `make fuzz-build` with MFACore's sources compiled into this module (see README.md).
//
// Besides crashes and sanitizer reports it traps when an accepted value means something its lines,
// read one by one on the `\n` byte, do not: a method more or less, a key on a line that is not
// `publickey`, a line whose text type differs from its blob's type, a skip for a key that is neither
// a security key nor a certificate of the listed CA.

let everyCA: TrustedSSHKeys = {
    var keys = TrustedSSHKeys()
    keys.securityKeys = true
    // The CA of the seed corpus's certificates (Tests/fuzz/corpus/sshinfo/).
    keys.caDigests = [TrustedSSHKeys.fingerprintDigest("Fhk2QEOL9jOYNH+caq8/2WkXMr71R9cU4aeF6enHtks")!]
    return keys
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func sshAuthInfoFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // Base64 as the parser uses it: whatever decodes is canonical (encodes back to the same text).
    if let decoded = Base64.decode(bytes) {
        require(Array(Base64.encode(decoded).utf8) == bytes, "base64 accepted a non-canonical text")
    }
    guard let info = SSHAuthInfo.parse(bytes) else { return 0 }
    var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
    if lines.last?.isEmpty == true { lines.removeLast() }
    require(info.methods.count == lines.count, "a line was skipped or made up")
    require(info.methods.count <= SSHAuthInfo.maximumMethods, "too many methods")
    for (method, line) in zip(info.methods, lines) {
        let words = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        require(Array(method.name.utf8) == Array(words[0]), "the method is not the line's first word")
        if let key = method.key {
            require(method.name == "publickey", "a key on a line that is not publickey")
            require(words.count >= 3 && Array(key.type.utf8) == Array(words[1]), "the key's type is not the line's")
            require(key.isSecurityKey == key.type.hasPrefix("sk-"), "security key flag and type disagree")
        }
    }
    if let why = everyCA.match(info) {
        let keys = info.methods.compactMap(\.key)
        require(keys.contains { $0.isSecurityKey } || keys.contains {
            $0.certificate.map { $0.certType == 1 && $0.caFingerprint == "SHA256:Fhk2QEOL9jOYNH+caq8/2WkXMr71R9cU4aeF6enHtks" } ?? false
        }, "a skip without a trusted key: \(why)")
    }
    require(TrustedSSHKeys().match(info) == nil, "an empty trusted_ssh_keys trusted something")
    return 0
}

/// Like `precondition`, but the message survives `-O`, so a finding says which rule broke.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}
