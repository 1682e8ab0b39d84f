// SPDX-License-Identifier: Apache-2.0
/// Requests and answers of self-service enrollment and administration (docs/protocol.md, tags
/// 0x12–0x17 and 0x92–0x95). The PAM shim never sends or reads these.

/// Which one-time-password algorithm an enrollment uses, as it travels on the wire.
public enum OTPMethodCode: UInt8, Sendable {
    case totp = 0, hotp = 1
}

/// Starts a pending enrollment: active only once ENROLL_CONFIRM brings a right code.
public struct EnrollBeginRequest: Sendable, Equatable {
    public var version: UInt8
    /// Empty: the peer's own user.
    public var user: String
    public var method: OTPMethodCode
    /// Decimal counter of an HOTP token (empty: 0).
    public var counter: String
    /// Base32 secret of a hardware token; empty: the daemon generates one.
    public var secret: String
    /// A current code or an unused recovery code: needed to replace an active enrollment (not from root).
    public var proof: String
    public init(version: UInt8 = WireProtocol.version, user: String, method: OTPMethodCode = .totp, counter: String = "",
                secret: String = "", proof: String = "") {
        self.version = version
        self.user = user
        self.method = method
        self.counter = counter
        self.secret = secret
        self.proof = proof
    }
}

/// A request that names a user and carries one code: confirm, regenerate, disable.
public struct UserCodeRequest: Sendable, Equatable {
    public var version: UInt8
    /// Empty: the peer's own user.
    public var user: String
    public var code: String
    public init(version: UInt8 = WireProtocol.version, user: String, code: String) {
        self.version = version
        self.user = user
        self.code = code
    }
}

/// Root sends the bytes of a google-authenticator file it read safely; the daemon parses them.
public struct ImportRequest: Sendable, Equatable {
    public var version: UInt8
    public var user: String
    public var content: String
    /// Replace an existing mfagate enrollment with a different secret.
    public var replaceExisting: Bool
    public init(version: UInt8 = WireProtocol.version, user: String, content: String, replaceExisting: Bool) {
        self.version = version
        self.user = user
        self.content = content
        self.replaceExisting = replaceExisting
    }
}

public struct PendingReply: Sendable, Equatable {
    public var user: String
    public var secret: String
    public var otpauthURI: String
    public var secondsValid: Int
    public init(user: String, secret: String, otpauthURI: String, secondsValid: Int) {
        self.user = user
        self.secret = secret
        self.otpauthURI = otpauthURI
        self.secondsValid = secondsValid
    }
}

extension Writer {
    mutating func userCode(_ tag: Tag, _ r: UserCodeRequest) throws(FrameError) {
        u8(tag.rawValue); u8(r.version); try str(r.user); try str(r.code)
    }
    /// Optional times travel as decimal strings, empty for none: the codec has no 64-bit type.
    mutating func time(_ t: Int64?) throws(FrameError) { try str(t.map { String($0) } ?? "") }
    mutating func statusBody(_ s: StatusReply) throws(FrameError) {
        try str(s.user); u8(s.enrolled ? 1 : 0); u16(UInt16(clamping: s.recoveryCodesLeft))
        try str(s.method); try time(s.enrolledSince); try time(s.lastSuccess); u8(s.pending ? 1 : 0)
    }
    mutating func codes(_ list: [String]) throws(FrameError) {
        guard list.count <= 255 else { throw .badValue("too many recovery codes") }
        u8(UInt8(list.count))
        for code in list { try str(code) }
    }
}

extension Reader {
    mutating func userCode() throws(FrameError) -> UserCodeRequest {
        let version = try u8()
        return UserCodeRequest(version: version, user: try str(), code: try str())
    }
    mutating func time() throws(FrameError) -> Int64? {
        let text = try str()
        if text.isEmpty { return nil }
        guard let value = Int64(text) else { throw .badValue("time \"\(text)\"") }
        return value
    }
    mutating func statusBody() throws(FrameError) -> StatusReply {
        let user = try str()
        let enrolled = try u8() != 0
        let left = Int(try u16())
        let method = try str()
        let since = try time(), last = try time()
        let pending = try u8() != 0
        return StatusReply(user: user, enrolled: enrolled, recoveryCodesLeft: left, method: method,
                           enrolledSince: since, lastSuccess: last, pending: pending)
    }
    mutating func codes() throws(FrameError) -> [String] {
        let count = Int(try u8())
        var out: [String] = []
        for _ in 0..<count { out.append(try str()) }
        return out
    }
}
