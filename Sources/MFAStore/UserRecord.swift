// SPDX-License-Identifier: Apache-2.0
import MFACore

/// Everything the daemon knows about one user's second factor.
public struct UserRecord: Sendable, Equatable {
    public static let formatVersion = 1

    public var user: UserName
    public var parameters: OTPParameters
    public var secret: [UInt8]
    /// Unix time of the enrollment.
    public var created: Int64
    /// Time step of the last accepted TOTP code: codes of this step or older are replays.
    public var lastUsedStep: Int64?
    /// Unix time of the last successful login with a factor.
    public var lastSuccess: Int64?
    /// Recovery codes not used yet; a used one is removed, so the count left is this count.
    public var recoveryCodes: [RecoveryCodes.Hashed]
    /// TOTP (default) or HOTP. Files without a counter are TOTP, as format version 1 always was.
    public var method: OTPMethod
    /// HOTP only: the counter the token's next code should have.
    public var counter: UInt64
    /// Steps accepted either side of now for this user (set by an import that carried WINDOW_SIZE);
    /// nil: the host's `window`.
    public var window: Int?
    /// Learnt clock drift of the user's device, in time steps: the window is centred there.
    public var drift: Int = 0
    /// Confirmed delivery addresses (issue 10): a plain email address, an E.164 number.
    public var email: String? = nil
    public var sms: String? = nil
    /// The method asked for first at login; nil: the app or token (TOTP/HOTP).
    public var preferred: LoginMethod? = nil
    /// False for a user who logs in with email/SMS codes only (no app or token): `secret` is then a
    /// random one nobody was shown, and no OTP code is checked against it.
    public var appActive: Bool = true
    /// Logins remembered after a right code (`remember`, RememberedLogin.swift). The file store
    /// keeps them beside the user file (FileStore+Remembered.swift); in the fleet they are inside
    /// the sealed record, under the fleet key's MAC.
    public var remembered: [RememberedLogin] = []

    public init(user: UserName, parameters: OTPParameters, secret: [UInt8], created: Int64,
                lastUsedStep: Int64? = nil, lastSuccess: Int64? = nil, recoveryCodes: [RecoveryCodes.Hashed],
                method: OTPMethod = .totp, counter: UInt64 = 0, window: Int? = nil) {
        self.method = method
        self.counter = counter
        self.window = window
        self.user = user
        self.parameters = parameters
        self.secret = secret
        self.created = created
        self.lastUsedStep = lastUsedStep
        self.lastSuccess = lastSuccess
        self.recoveryCodes = recoveryCodes
    }
}

/// A user file that cannot be understood; `line` is 0 when the problem is the whole file.
public struct UserFileFormatError: Error, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { line > 0 ? "line \(line): \(message)" : message }
}

/// The text format of `STATE_DIR/users/NAME`: `key value` lines, written only by mfagated.
/// Text so an admin can inspect it with `cat` (as root); strict so damage is noticed, not guessed at.
public enum UserFileFormat {
    public static let maximumSize = 64 * 1024
    static let header = "# mfagate user file: written by mfagated; do not edit (use the mfagate command)"

    public static func serialize(_ r: UserRecord) -> String {
        var lines = [header, "version \(UserRecord.formatVersion)", "user \(r.user.value)", "method \(r.method.rawValue)",
                     "algorithm \(r.parameters.digest.rawValue)", "digits \(r.parameters.digits)",
                     "period \(r.parameters.period)", "secret \(Base32.encode(r.secret))", "created \(r.created)"]
        if r.method == .hotp { lines.append("counter \(r.counter)") }
        if let w = r.window { lines.append("window \(w)") }
        if let step = r.lastUsedStep { lines.append("last_step \(step)") }
        if let t = r.lastSuccess { lines.append("last_success \(t)") }
        if r.drift != 0 { lines.append("drift \(r.drift)") }
        if let e = r.email { lines.append("email \(e)") }
        if let n = r.sms { lines.append("sms \(n)") }
        if let p = r.preferred { lines.append("prefer \(p.rawValue)") }
        if !r.appActive { lines.append("app none") }
        for code in r.recoveryCodes { lines.append("recovery \(hex(code.salt)):\(hex(code.hash))") }
        lines += serializeRemembered(r.remembered)
        return lines.joined(separator: "\n") + "\n"
    }

    public static func parse(_ text: String, expectedUser: UserName) throws(UserFileFormatError) -> UserRecord {
        try parse(utf8: Array(text.utf8), expectedUser: expectedUser)
    }

    /// The fields a user file may hold once each (`recovery` may repeat), in one fixed order.
    static let singleFields = ["user", "method", "algorithm", "digits", "period", "secret", "created", "last_step",
                               "last_success", "counter", "window", "drift",
                               "email", "sms", "prefer", "app"].map { Array($0.utf8) }
    /// Positions in `singleFields`, so the parser looks a field up without making its name again.
    enum Field: Int {
        case user, method, algorithm, digits, period, secret, created, lastStep, lastSuccess, counter, window, drift, email, sms, prefer, app
        var name: String { String(decoding: UserFileFormat.singleFields[rawValue], as: UTF8.self) }
    }

    /// Parses the file's bytes as they were read. Works on bytes, not `Character`s: the daemon
    /// parses a file at nearly every login (a user logs in rarely, so the cache seldom holds it),
    /// and splitting a `String` into grapheme clusters cost ≈ 1.3 M instructions per file, most of
    /// the daemon's CPU per login. Lines are split at LF; keys and numbers are ASCII.
    public static func parse(utf8 bytes: [UInt8], expectedUser: UserName) throws(UserFileFormatError) -> UserRecord {
        func fail(_ line: Int, _ message: String) -> UserFileFormatError { UserFileFormatError(line: line, message: message) }
        if bytes.count > maximumSize { throw fail(0, "larger than \(maximumSize) bytes") }
        var fields = [(line: Int, value: ArraySlice<UInt8>)?](repeating: nil, count: singleFields.count)
        var recovery: [RecoveryCodes.Hashed] = []
        recovery.reserveCapacity(RecoveryCodes.count)
        var remembered: [RememberedLogin] = []
        var lineNumber = 0
        var sawVersion = false
        var lineStart = 0
        while lineStart <= bytes.count {
            let lineEnd = bytes[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
            defer { lineStart = lineEnd + 1 }
            let raw = bytes[lineStart..<lineEnd]
            lineNumber += 1
            if raw.isEmpty || raw.first == UInt8(ascii: "#") { continue }
            guard let space = raw.firstIndex(of: UInt8(ascii: " ")) else { throw fail(lineNumber, "expected `key value`") }
            let key = raw[..<space], value = raw[(space + 1)...]
            if !sawVersion {
                guard key.elementsEqual("version".utf8) else { throw fail(lineNumber, "the first field must be `version`") }
                guard let v = integer(value) else { throw fail(lineNumber, "bad version") }
                if v > UserRecord.formatVersion {
                    throw fail(lineNumber, "written by a newer mfagate (format \(v); this one reads \(UserRecord.formatVersion))")
                }
                guard v == UserRecord.formatVersion else { throw fail(lineNumber, "unknown format version \(v)") }
                sawVersion = true
                continue
            }
            if key.elementsEqual("recovery".utf8) {
                guard let colon = value.firstIndex(of: UInt8(ascii: ":")),
                      let salt = unhex(value[..<colon]), let hash = unhex(value[(colon + 1)...]),
                      salt.count == 16, hash.count == 32 else { throw fail(lineNumber, "bad recovery code entry") }
                recovery.append(RecoveryCodes.Hashed(salt: salt, hash: hash))
                if recovery.count > 100 { throw fail(lineNumber, "too many recovery codes") }
            } else if key.elementsEqual("remember".utf8) {
                guard let entry = parseRemembered(value) else { throw fail(lineNumber, "bad remember entry") }
                remembered.append(entry)
                if remembered.count > RememberedLogin.maximumPerUser { throw fail(lineNumber, "too many remember entries") }
            } else if let field = singleFields.firstIndex(where: { $0.count == key.count && key.elementsEqual($0) }) {
                if fields[field] != nil { throw fail(lineNumber, "`\(text(key))` appears twice") }
                fields[field] = (lineNumber, value)
            } else {
                throw fail(lineNumber, "unknown field `\(text(key))`")
            }
        }
        if !sawVersion { throw fail(0, "empty or truncated (no `version` line)") }
        func optional(_ field: Field) -> (line: Int, value: ArraySlice<UInt8>)? {
            fields[field.rawValue]
        }
        func required(_ field: Field) throws(UserFileFormatError) -> (line: Int, value: ArraySlice<UInt8>) {
            guard let f = optional(field) else { throw fail(0, "missing `\(field.name)` (truncated?)") }
            return f
        }
        let (userLine, userValue) = try required(.user)
        guard userValue.elementsEqual(expectedUser.value.utf8) else { throw fail(userLine, "belongs to another user") }
        let (methodLine, method) = try required(.method)
        guard let otpMethod = OTPMethod(rawValue: text(method)) else { throw fail(methodLine, "unknown method `\(text(method))`") }
        var counter: UInt64 = 0
        if otpMethod == .hotp {
            let (line, value) = try required(.counter)
            guard let c = integer(value), c >= 0 else { throw fail(line, "bad counter") }
            counter = UInt64(c)
        } else if let (line, _) = optional(.counter) {
            throw fail(line, "`counter` belongs to method hotp only")
        }
        var window: Int? = nil
        if let (line, value) = optional(.window) {
            guard let w = integer(value), (0...10).contains(w) else { throw fail(line, "bad window (0 to 10)") }
            window = Int(w)
        }
        let (algLine, alg) = try required(.algorithm)
        guard let digest = Crypto.Digest(rawValue: text(alg)) else { throw fail(algLine, "unknown algorithm `\(text(alg))`") }
        let (digitsLine, digitsText) = try required(.digits)
        let (periodLine, periodText) = try required(.period)
        guard let digits = integer(digitsText).flatMap({ Int(exactly: $0) }) else { throw fail(digitsLine, "bad digits") }
        guard let period = integer(periodText).flatMap({ Int(exactly: $0) }) else { throw fail(periodLine, "bad period") }
        let parameters = OTPParameters(digest: digest, digits: digits, period: period)
        guard parameters.isValid else { throw fail(digitsLine, "unsupported digits or period") }
        let (secretLine, secretText) = try required(.secret)
        guard let secret = Base32.decode(utf8: secretText), secret.count >= 10, secret.count <= 128 else {
            throw fail(secretLine, "bad secret")
        }
        let (createdLine, createdText) = try required(.created)
        guard let created = integer(createdText) else { throw fail(createdLine, "bad created time") }
        var lastStep: Int64? = nil
        if let (line, text) = optional(.lastStep) {
            guard let v = integer(text), v >= 0 else { throw fail(line, "bad last_step") }
            lastStep = v
        }
        var lastSuccess: Int64? = nil
        if let (line, text) = optional(.lastSuccess) {
            guard let v = integer(text) else { throw fail(line, "bad last_success") }
            lastSuccess = v
        }
        var record = UserRecord(user: expectedUser, parameters: parameters, secret: secret, created: created,
                                lastUsedStep: lastStep, lastSuccess: lastSuccess, recoveryCodes: recovery,
                                method: otpMethod, counter: counter, window: window)
        if let (line, text) = optional(.drift) {
            guard let v = integer(text).flatMap({ Int(exactly: $0) }), abs(v) <= OTP.maximumDrift else { throw fail(line, "bad drift") }
            record.drift = v
        }
        try parseDeliveryFields(optional, into: &record)
        record.remembered = remembered
        return record
    }

    /// A decimal integer as `Int64(String)` reads one: an optional sign, then at least one digit,
    /// nothing else; nil on overflow.
    static func integer(_ digits: ArraySlice<UInt8>) -> Int64? {
        var rest = digits[...]
        var negative = false
        if let sign = rest.first, sign == UInt8(ascii: "-") || sign == UInt8(ascii: "+") {
            negative = sign == UInt8(ascii: "-")
            rest = rest.dropFirst()
        }
        guard !rest.isEmpty else { return nil }
        var value: Int64 = 0
        for c in rest {
            guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else { return nil }
            let digit = Int64(c - UInt8(ascii: "0"))
            let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) = negative ? shifted.subtractingReportingOverflow(digit) : shifted.addingReportingOverflow(digit)
            guard !o1 && !o2 else { return nil }
            value = next
        }
        return value
    }

    /// Bytes of the file for an error message (never for a secret).
    static func text(_ bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }

    /// Lowercase hex of `bytes` (also the fleet key's id and prepared statements' names).
    public static func hex<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0xF)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Lowercase hex to bytes, nil for anything else. Written over the raw buffers: ten recovery
    /// code entries (960 hex digits) are parsed at nearly every login, and the checked, appending
    /// version cost ≈ 21 k instructions of the daemon's ≈ 245 k per login (callgrind).
    static func unhex(_ chars: ArraySlice<UInt8>) -> [UInt8]? {
        guard chars.count % 2 == 0 else { return nil }
        @inline(__always) func nibble(_ c: UInt8) -> UInt8 {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c &- UInt8(ascii: "a") &+ 10
            default: return 0xFF
            }
        }
        let count = chars.count / 2
        var invalid: UInt8 = 0
        let out = [UInt8](unsafeUninitializedCapacity: count) { dst, initialized in
            chars.withUnsafeBufferPointer { src in
                guard var p = src.baseAddress, var q = dst.baseAddress else { return }
                var seen: UInt8 = 0
                for _ in 0..<count {
                    let hi = nibble(p[0]), lo = nibble(p[1])
                    seen |= hi | lo
                    q.pointee = hi << 4 | lo
                    p += 2
                    q += 1
                }
                invalid = seen & 0xF0
            }
            initialized = count
        }
        return invalid == 0 ? out : nil
    }
}

extension UserFileFormat {
    /// `remember CREATED SERVICE RHOST` lines, oldest first.
    public static func serializeRemembered(_ entries: [RememberedLogin]) -> [String] {
        entries.map { "remember \($0.created) \($0.service) \($0.rhost)" }
    }

    /// One `remember` value: a Unix time, a service and an rhost, each without spaces.
    static func parseRemembered(_ value: ArraySlice<UInt8>) -> RememberedLogin? {
        let parts = value.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3, let created = integer(parts[0]) else { return nil }
        let service = text(parts[1]), rhost = text(parts[2])
        guard RememberedLogin.isStorable(service), RememberedLogin.isStorable(rhost) else { return nil }
        return RememberedLogin(service: service, rhost: rhost, created: created)
    }

    /// `email`, `sms` and `prefer` (issue 10), checked as strictly as when they were added: a file
    /// edited to hold a header-injecting address or a preference without its address is damaged.
    static func parseDeliveryFields(_ optional: (Field) -> (line: Int, value: ArraySlice<UInt8>)?,
                                    into record: inout UserRecord) throws(UserFileFormatError) {
        if let (line, value) = optional(.email) {
            guard let address = try? DeliveryAddress.validateEmail(text(value)) else { throw UserFileFormatError(line: line, message: "bad email address") }
            record.email = address
        }
        if let (line, value) = optional(.sms) {
            guard let number = try? DeliveryAddress.validatePhone(text(value)), number == text(value) else {
                throw UserFileFormatError(line: line, message: "bad sms number")
            }
            record.sms = number
        }
        if let (line, value) = optional(.prefer) {
            guard let method = LoginMethod(rawValue: text(value)) else { throw UserFileFormatError(line: line, message: "unknown preferred method") }
            if (method == .email && record.email == nil) || (method == .sms && record.sms == nil) {
                throw UserFileFormatError(line: line, message: "preferred method \(method.rawValue) has no address")
            }
            record.preferred = method == .totp ? nil : method
        }
        if let (line, value) = optional(.app) {
            guard text(value) == "none" else { throw UserFileFormatError(line: line, message: "`app` may only be `none`") }
            guard record.preferred != nil else { throw UserFileFormatError(line: line, message: "no app and no preferred email or sms method") }
            record.appActive = false
        }
    }
}
