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

    public init(user: UserName, parameters: OTPParameters, secret: [UInt8], created: Int64,
                lastUsedStep: Int64? = nil, lastSuccess: Int64? = nil, recoveryCodes: [RecoveryCodes.Hashed]) {
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
        var lines = [header, "version \(UserRecord.formatVersion)", "user \(r.user.value)", "method totp",
                     "algorithm \(r.parameters.digest.rawValue)", "digits \(r.parameters.digits)",
                     "period \(r.parameters.period)", "secret \(Base32.encode(r.secret))", "created \(r.created)"]
        if let step = r.lastUsedStep { lines.append("last_step \(step)") }
        if let t = r.lastSuccess { lines.append("last_success \(t)") }
        for code in r.recoveryCodes { lines.append("recovery \(hex(code.salt)):\(hex(code.hash))") }
        return lines.joined(separator: "\n") + "\n"
    }

    public static func parse(_ text: String, expectedUser: UserName) throws(UserFileFormatError) -> UserRecord {
        func fail(_ line: Int, _ message: String) -> UserFileFormatError { UserFileFormatError(line: line, message: message) }
        if text.utf8.count > maximumSize { throw fail(0, "larger than \(maximumSize) bytes") }
        var fields: [String: (Int, String)] = [:]
        var recovery: [RecoveryCodes.Hashed] = []
        var lineNumber = 0
        var sawVersion = false
        // Lines end at the `\n` byte: a CR LF pair is one Swift Character and must not merge lines.
        for rawBytes in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            let raw = Substring(rawBytes)
            lineNumber += 1
            if raw.isEmpty || raw.hasPrefix("#") { continue }
            guard let space = raw.firstIndex(of: " ") else { throw fail(lineNumber, "expected `key value`") }
            let key = String(raw[..<space]), value = String(raw[raw.index(after: space)...])
            if !sawVersion {
                guard key == "version" else { throw fail(lineNumber, "the first field must be `version`") }
                guard let v = Int(value) else { throw fail(lineNumber, "bad version") }
                if v > UserRecord.formatVersion {
                    throw fail(lineNumber, "written by a newer mfagate (format \(v); this one reads \(UserRecord.formatVersion))")
                }
                guard v == UserRecord.formatVersion else { throw fail(lineNumber, "unknown format version \(v)") }
                sawVersion = true
                continue
            }
            switch key {
            case "recovery":
                let parts = value.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count == 2, let salt = unhex(parts[0]), let hash = unhex(parts[1]),
                      salt.count == 16, hash.count == 32 else { throw fail(lineNumber, "bad recovery code entry") }
                recovery.append(RecoveryCodes.Hashed(salt: salt, hash: hash))
                if recovery.count > 100 { throw fail(lineNumber, "too many recovery codes") }
            case "user", "method", "algorithm", "digits", "period", "secret", "created", "last_step", "last_success":
                if fields[key] != nil { throw fail(lineNumber, "`\(key)` appears twice") }
                fields[key] = (lineNumber, value)
            default:
                throw fail(lineNumber, "unknown field `\(key)`")
            }
        }
        if !sawVersion { throw fail(0, "empty or truncated (no `version` line)") }
        func required(_ key: String) throws(UserFileFormatError) -> (Int, String) {
            guard let f = fields[key] else { throw fail(0, "missing `\(key)` (truncated?)") }
            return f
        }
        let (userLine, userValue) = try required("user")
        guard userValue == expectedUser.value else { throw fail(userLine, "belongs to another user") }
        let (methodLine, method) = try required("method")
        guard method == "totp" else { throw fail(methodLine, "unknown method `\(method)`") }
        let (algLine, alg) = try required("algorithm")
        guard let digest = Crypto.Digest(rawValue: alg) else { throw fail(algLine, "unknown algorithm `\(alg)`") }
        let (digitsLine, digitsText) = try required("digits")
        let (periodLine, periodText) = try required("period")
        guard let digits = Int(digitsText) else { throw fail(digitsLine, "bad digits") }
        guard let period = Int(periodText) else { throw fail(periodLine, "bad period") }
        let parameters = OTPParameters(digest: digest, digits: digits, period: period)
        guard parameters.isValid else { throw fail(digitsLine, "unsupported digits or period") }
        let (secretLine, secretText) = try required("secret")
        guard let secret = Base32.decode(secretText), secret.count >= 10, secret.count <= 128 else {
            throw fail(secretLine, "bad secret")
        }
        let (createdLine, createdText) = try required("created")
        guard let created = Int64(createdText) else { throw fail(createdLine, "bad created time") }
        var lastStep: Int64? = nil
        if let (line, text) = fields["last_step"] {
            guard let v = Int64(text), v >= 0 else { throw fail(line, "bad last_step") }
            lastStep = v
        }
        var lastSuccess: Int64? = nil
        if let (line, text) = fields["last_success"] {
            guard let v = Int64(text) else { throw fail(line, "bad last_success") }
            lastSuccess = v
        }
        return UserRecord(user: expectedUser, parameters: parameters, secret: secret, created: created,
                          lastUsedStep: lastStep, lastSuccess: lastSuccess, recoveryCodes: recovery)
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0xF)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func unhex(_ text: Substring) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}
