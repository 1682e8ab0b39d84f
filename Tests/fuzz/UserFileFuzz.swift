// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the user-file parser (UserFileFormat.parse), which reads STATE/users/NAME before
// every login. Built by `make fuzz-swift` with MFACore's sources and MFAStore's UserRecord.swift
// compiled into this module (see README.md).
//
// Besides crashes and sanitizer reports it traps when an accepted file does not survive
// serialize → parse unchanged, or when the login path (TOTP and recovery-code matching) cannot cope
// with what the parser accepted (e.g. arithmetic overflow on an extreme last_step).

let expectedUser = try! UserName(validating: "alice")

@_cdecl("LLVMFuzzerTestOneInput")
public func userFileFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let record = try? UserFileFormat.parse(text, expectedUser: expectedUser) else { return 0 }
    require(record.parameters.isValid, "invalid OTP parameters accepted")
    require((10...128).contains(record.secret.count), "secret length out of range")
    require(record.recoveryCodes.count <= 100, "too many recovery codes accepted")
    // Every line the file has counts: none may hide inside another (CR LF is one Swift Character).
    let lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        .map { String(decoding: $0, as: UTF8.self) }
    require(lines.filter { $0.hasPrefix("recovery ") }.count == record.recoveryCodes.count, "a recovery line was not read")
    require(lines.contains { $0.hasPrefix("last_step ") } == (record.lastUsedStep != nil), "a last_step line was not read")
    let written = UserFileFormat.serialize(record)
    require(written.utf8.count <= UserFileFormat.maximumSize, "an accepted record serializes too large to read back")
    let again: UserRecord
    do { again = try UserFileFormat.parse(written, expectedUser: expectedUser) } catch {
        fatalError("a serialized record does not parse: \(error)")
    }
    require(again == record, "record changed on serialize → parse")
    // What a login does with the record, at a few instants including the extremes.
    for now in [Int64(0), 1_700_000_000, record.created, Int64.max] {
        _ = OTP.matchTOTP(code: "123456", secret: record.secret, unixTime: now, parameters: record.parameters,
                          window: 10, lastUsedStep: record.lastUsedStep)
    }
    _ = RecoveryCodes.match(typed: "abcd-efgh-jkmn", stored: Array(record.recoveryCodes.prefix(2)))
    return 0
}
/// Like `precondition`, but the message survives `-O`, so a finding says which rule broke.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}
