// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the OpenSSH key and certificate blob parser (SSHPublicKey.parse,
// PROTOCOL.certkeys), which reads the blob behind `publickey TYPE BASE64` in SSH_AUTH_INFO_0.
// Built by `make fuzz-build` with MFACore's sources compiled into this module (see README.md).
//
// Besides crashes and sanitizer reports it traps when an accepted blob is not what it says: a type
// outside the known tables, a certificate flag that disagrees with the type name, a CA key that is
// not itself a plain key, a fingerprint that is not `SHA256:` and 43 base64 characters; and when
// base64 of the input does not decode back to it.

@_cdecl("LLVMFuzzerTestOneInput")
public func sshCertificateFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let text = Base64.encode(bytes)
    require(Base64.decode(Array(text.utf8)) == bytes, "base64 did not round-trip")
    guard let key = SSHPublicKey.parse(bytes) else { return 0 }
    require(bytes.count <= SSHPublicKey.maximumBlobSize, "an oversized blob was accepted")
    let isCertType = SSHPublicKey.certificateBase[key.type] != nil
    require(isCertType || SSHPublicKey.plainFields[key.type] != nil, "unknown type \(key.type) accepted")
    require(isCertType == (key.certificate != nil), "certificate and type disagree")
    require(key.isSecurityKey == key.type.hasPrefix("sk-"), "security key flag and type disagree")
    if let cert = key.certificate {
        let ca = SSHPublicKey.parse(cert.signatureKey)
        require(ca != nil && ca?.certificate == nil, "the CA key is not a plain key")
        let fp = cert.caFingerprint
        require(fp.hasPrefix("SHA256:") && fp.utf8.count == 7 + 43, "fingerprint \(fp) malformed")
        // The line sshd would write for it reads back as the same key.
        let line = Array("publickey \(key.type) \(text)\n".utf8)
        require(SSHAuthInfo.parse(line)?.methods.first?.key == key, "the auth info line does not read back")
    }
    return 0
}

/// Like `precondition`, but the message survives `-O`, so a finding says which rule broke.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}
