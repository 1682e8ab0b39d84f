// SPDX-License-Identifier: Apache-2.0
/// A `~/.google_authenticator` file from google-authenticator-libpam, parsed for import
/// (format: ../shared/reference/otp.md). Pure: the caller reads the bytes safely and passes them in.
/// Anything the file could use to widen what we accept is bounded: the window to our own limit, the
/// step size to what phone apps support, the number of scratch codes and used steps to small counts.
public struct GoogleAuthenticatorFile: Sendable, Equatable {
    public var secret: [UInt8]
    public var method: OTPMethod
    /// HOTP: the next counter the token will show (google-authenticator's `HOTP_COUNTER`).
    public var counter: UInt64
    /// TOTP step size in seconds (`STEP_SIZE`, default 30).
    public var period: Int
    /// Steps accepted either side of now, from `WINDOW_SIZE` (a total count there); nil: not given.
    public var window: Int?
    /// The newest time step used there (`DISALLOW_REUSE` list), so a code used there is refused here.
    public var lastUsedStep: Int64?
    /// The 8-digit single-use scratch codes, to keep as hashed recovery codes.
    public var scratchCodes: [String]
    /// Options we read but do not carry over (e.g. RATE_LIMIT: mfagate has its own lockout).
    public var ignoredOptions: [String]

    /// Larger files are refused before parsing: real ones are a few hundred bytes.
    public static let maximumSize = 4096
    static let maximumScratchCodes = 20
    static let maximumUsedSteps = 100

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var line: Int
        public var message: String
        public var description: String { line > 0 ? "line \(line): \(message)" : message }
    }

    public static func parse(_ text: String) throws(ParseError) -> GoogleAuthenticatorFile {
        func fail(_ line: Int, _ message: String) -> ParseError { ParseError(line: line, message: message) }
        guard text.utf8.count <= maximumSize else { throw fail(0, "the file is larger than \(maximumSize) bytes") }
        guard !text.utf8.contains(0) else { throw fail(0, "the file contains a NUL byte") }
        // Split on the `\n` byte: Swift reads "\r\n" as one Character, so splitting on the Character
        // "\n" would merge a CR LF line with the next (found by Tests/fuzz/GoogleAuthenticatorFuzz.swift).
        let lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .map { Substring($0) }.map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
        guard let first = lines.first, !first.isEmpty else { throw fail(1, "the first line must be the base32 secret") }
        guard let secret = Base32.decode(String(first)), secret.count >= 10, secret.count <= 128 else {
            throw fail(1, "the first line is not a base32 secret of 80 to 1024 bits")
        }
        var file = GoogleAuthenticatorFile(secret: secret, method: .totp, counter: 0, period: 30, window: nil,
                                           lastUsedStep: nil, scratchCodes: [], ignoredOptions: [])
        var sawTOTP = false, sawHOTP = false
        for (index, raw) in lines.enumerated().dropFirst() {
            let number = index + 1
            if raw.isEmpty { continue }
            // Option lines are split on bytes too: a space followed by a combining mark is one
            // Character, so a Character split would read `" DISALLOW_REUSE` + U+0365… as one unknown word.
            if raw.utf8.starts(with: "\" ".utf8) {
                let words = raw.utf8.dropFirst(2).split(separator: UInt8(ascii: " ")).map { String(Substring($0)) }
                guard let option = words.first else { continue }
                let args = Array(words.dropFirst())
                switch option {
                case "TOTP_AUTH": sawTOTP = true
                case "HOTP_COUNTER":
                    guard args.count == 1, let c = UInt64(args[0]) else { throw fail(number, "HOTP_COUNTER needs one whole number") }
                    sawHOTP = true
                    file.method = .hotp
                    file.counter = c
                case "STEP_SIZE":
                    guard args.count == 1, let s = Int(args[0]), (1...300).contains(s) else {
                        throw fail(number, "STEP_SIZE must be 1 to 300 seconds")
                    }
                    file.period = s
                case "WINDOW_SIZE":
                    guard args.count == 1, let w = Int(args[0]), (1...100).contains(w) else {
                        throw fail(number, "WINDOW_SIZE must be 1 to 100")
                    }
                    // A total count (3 = previous, current, next); bounded by mfagate's own limit.
                    file.window = min(10, (w - 1) / 2)
                case "DISALLOW_REUSE":
                    guard args.count <= maximumUsedSteps else { throw fail(number, "too many used time steps") }
                    for word in args {
                        guard let step = Int64(word), step >= 0 else { throw fail(number, "DISALLOW_REUSE lists a bad time step") }
                        file.lastUsedStep = max(file.lastUsedStep ?? step, step)
                    }
                default:
                    file.ignoredOptions.append(option)
                }
                continue
            }
            let code = raw.utf8
            guard code.count == 8, code.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                throw fail(number, "expected an option line or an 8-digit scratch code")
            }
            guard file.scratchCodes.count < maximumScratchCodes else { throw fail(number, "more than \(maximumScratchCodes) scratch codes") }
            if !file.scratchCodes.contains(String(raw)) { file.scratchCodes.append(String(raw)) }
        }
        if sawTOTP && sawHOTP { throw fail(0, "the file sets both TOTP_AUTH and HOTP_COUNTER") }
        if !sawTOTP && !sawHOTP { throw fail(0, "the file sets neither TOTP_AUTH nor HOTP_COUNTER") }
        if file.method == .hotp { file.lastUsedStep = nil }
        return file
    }
}
