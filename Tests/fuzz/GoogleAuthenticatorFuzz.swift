// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the google-authenticator file parser (GoogleAuthenticatorFile.parse), which
// reads a user's own ~/.google_authenticator as root during `mfagate import-google-authenticator`:
// the user controls every byte. Built by `make fuzz-swift` with MFACore's sources compiled into this
// module (see README.md).
//
// Besides crashes and sanitizer reports it traps when an accepted file widens what we accept (bounds
// on secret, step size, window, scratch codes) or when a line does not count as what it says, read
// independently line by line on the `\n` byte (a used time step or a scratch code hidden inside
// another line would be silently dropped on import).

@_cdecl("LLVMFuzzerTestOneInput")
public func googleAuthenticatorFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let file = try? GoogleAuthenticatorFile.parse(text) else { return 0 }
    require((10...128).contains(file.secret.count), "secret length out of range")
    require((1...300).contains(file.period), "step size out of range")
    require(file.window.map { (0...10).contains($0) } ?? true, "window out of range")
    require(file.scratchCodes.count <= 20, "too many scratch codes")
    require(file.method == .totp || file.lastUsedStep == nil, "an HOTP file kept a used time step")
    require(file.lastUsedStep.map { $0 >= 0 } ?? true, "a negative used step")
    // What each line means on its own (lines end at `\n`, an optional `\r` before it is dropped).
    var lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        .map { line -> String in
            let s = String(decoding: line, as: UTF8.self)
            return s.utf8.last == UInt8(ascii: "\r") ? String(decoding: line.dropLast(), as: UTF8.self) : s
        }
    lines.removeFirst()
    var scratch = Set<String>()
    var newestStep: Int64?
    for line in lines {
        if line.utf8.count == 8 && line.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            scratch.insert(line)
        }
        let words = line.utf8.split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
        if line.utf8.starts(with: "\" ".utf8), words.count >= 2, words[1] == "DISALLOW_REUSE" {
            for w in words.dropFirst(2) { if let s = Int64(w) { newestStep = max(newestStep ?? s, s) } }
        }
    }
    require(Set(file.scratchCodes) == scratch, "a scratch code line was not read, or one was made up")
    if file.method == .totp {
        require(file.lastUsedStep == newestStep, "a DISALLOW_REUSE step was not read")
    }
    // What an import then does with it: the login path at extreme instants.
    let parameters = OTPParameters(digest: .sha1, digits: 6, period: file.period)
    for now in [Int64(0), 1_700_000_000, Int64.max] {
        _ = OTP.matchTOTP(code: "123456", secret: file.secret, unixTime: now, parameters: parameters,
                          window: file.window ?? 1, lastUsedStep: file.lastUsedStep)
    }
    return 0
}
/// Like `precondition`, but the message survives `-O`, so a finding says which rule broke.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}
