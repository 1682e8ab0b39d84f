// SPDX-License-Identifier: Apache-2.0
/// Requests and answers for email/SMS login methods (docs/protocol.md, tags 0x18–0x1C and 0x96).
/// The PAM shim never sends or reads these. Methods travel as words (`totp`, `email`, `sms`) so a
/// method added later needs no new wire value.

public struct MethodRequest: Sendable, Equatable {
    public enum Verb: UInt8, Sendable {
        /// Start adding a method: the daemon sends a confirming code to `address`.
        case add = 0x18
        /// `code` confirms the pending method (`resend`: send a new code).
        case confirm = 0x19
        case list = 0x1A
        case prefer = 0x1B
        /// `code`: a current code or a recovery code (not needed from root).
        case remove = 0x1C
    }
    public var verb: Verb
    public var version: UInt8
    /// Empty: the peer's own user.
    public var user: String
    public var method: String
    /// ADD only: the email address or phone number; empty: the address `email_address_pattern` gives.
    public var address: String
    /// ADD and REMOVE: proof (current code or recovery code); CONFIRM: the code that was sent.
    public var code: String
    public init(_ verb: Verb, version: UInt8 = WireProtocol.version, user: String, method: String = "",
                address: String = "", code: String = "") {
        self.verb = verb
        self.version = version
        self.user = user
        self.method = method
        self.address = address
        self.code = code
    }
}

public struct MethodsReply: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// `totp`, `hotp`, `email`, `sms`.
        public var method: String
        /// The masked address (`a***@example.org`) for email/SMS; empty for the app.
        public var detail: String
        /// Whether the host's `methods` allows it now.
        public var allowed: Bool
        public init(method: String, detail: String, allowed: Bool) {
            self.method = method
            self.detail = detail
            self.allowed = allowed
        }
    }
    public var user: String
    /// `totp`, `email` or `sms`.
    public var preferred: String
    public var entries: [Entry]
    public init(user: String, preferred: String, entries: [Entry]) {
        self.user = user
        self.preferred = preferred
        self.entries = entries
    }
}

extension Writer {
    mutating func method(_ m: MethodRequest) throws(FrameError) {
        u8(m.verb.rawValue); u8(m.version); try str(m.user)
        switch m.verb {
        case .add: try str(m.method); try str(m.address); try str(m.code)
        case .confirm, .remove: try str(m.method); try str(m.code)
        case .prefer: try str(m.method)
        case .list: break
        }
    }
    mutating func methods(_ reply: MethodsReply) throws(FrameError) {
        guard reply.entries.count <= 255 else { throw .badValue("too many methods") }
        u8(Tag.methodsReply.rawValue); try str(reply.user); try str(reply.preferred); u8(UInt8(reply.entries.count))
        for e in reply.entries { try str(e.method); try str(e.detail); u8(e.allowed ? 1 : 0) }
    }
}

extension Reader {
    mutating func method(_ tag: UInt8) throws(FrameError) -> MethodRequest {
        guard let verb = MethodRequest.Verb(rawValue: tag) else { throw .unknownTag(tag) }
        let version = try u8()
        var request = MethodRequest(verb, version: version, user: try str())
        switch verb {
        case .add: request.method = try str(); request.address = try str(); request.code = try str()
        case .confirm, .remove: request.method = try str(); request.code = try str()
        case .prefer: request.method = try str()
        case .list: break
        }
        return request
    }
    mutating func methods() throws(FrameError) -> MethodsReply {
        let user = try str(), preferred = try str()
        let count = Int(try u8())
        var entries: [MethodsReply.Entry] = []
        for _ in 0..<count {
            let method = try str(), detail = try str()
            entries.append(MethodsReply.Entry(method: method, detail: detail, allowed: try u8() != 0))
        }
        return MethodsReply(user: user, preferred: preferred, entries: entries)
    }
}
