// SPDX-License-Identifier: Apache-2.0
/// Why a frame was refused. Every case closes the connection.
public enum FrameError: Error, Equatable, CustomStringConvertible {
    case emptyFrame
    case oversized(Int)
    case truncated
    case trailingBytes
    case unknownTag(UInt8)
    case nulInString
    /// A string is not valid UTF-8. It is refused, never repaired to U+FFFD: the names
    /// `\xff\xfe` and `\xfe\xff` would otherwise both become "\u{FFFD}\u{FFFD}", one record.
    case invalidUTF8
    case badValue(String)

    public var description: String {
        switch self {
        case .emptyFrame: return "empty frame"
        case .oversized(let n): return "frame length \(n) exceeds \(WireProtocol.maximumPayload)"
        case .truncated: return "frame ends inside a field"
        case .trailingBytes: return "bytes left over after the last field"
        case .unknownTag(let t): return "unknown tag 0x\(String(t, radix: 16))"
        case .nulInString: return "NUL byte inside a string"
        case .invalidUTF8: return "a string is not valid UTF-8"
        case .badValue(let what): return "bad value: \(what)"
        }
    }
}

/// Splits a byte stream into frame payloads. Holds at most one frame's worth of bytes.
public struct FrameSplitter: Sendable {
    public private(set) var buffer: [UInt8] = []
    public init() {}

    /// Bytes the caller may read next without exceeding one frame (so memory stays bounded).
    public var wantedBytes: Int {
        if buffer.count < 4 { return 4 - buffer.count }
        return max(0, 4 + declaredLength - buffer.count)
    }

    var declaredLength: Int {
        Int(buffer[0]) << 24 | Int(buffer[1]) << 16 | Int(buffer[2]) << 8 | Int(buffer[3])
    }

    public mutating func append(_ bytes: ArraySlice<UInt8>) { buffer.append(contentsOf: bytes) }

    /// The next complete payload, nil if more bytes are needed, or an error for a bad length.
    public mutating func nextPayload() throws(FrameError) -> [UInt8]? {
        guard buffer.count >= 4 else { return nil }
        let length = declaredLength
        if length == 0 { throw .emptyFrame }
        if length > WireProtocol.maximumPayload { throw .oversized(length) }
        guard buffer.count >= 4 + length else { return nil }
        let payload = Array(buffer[4..<(4 + length)])
        buffer.removeFirst(4 + length)
        return payload
    }

    /// Overwrites buffered bytes (they may hold a typed code) before the connection is dropped.
    public mutating func wipe() {
        for i in buffer.indices { buffer[i] = 0 }
        buffer.removeAll()
    }
}

struct Writer {
    var bytes: [UInt8] = [0, 0, 0, 0]
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xFF)) }
    mutating func u32(_ v: UInt32) { for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(shift))) } }
    mutating func u64(_ v: UInt64) { for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) } }
    mutating func str(_ s: String) throws(FrameError) {
        let utf8 = Array(s.utf8)
        guard utf8.count <= 0xFFFF else { throw .badValue("string longer than 65535 bytes") }
        guard !utf8.contains(0) else { throw .nulInString }
        u16(UInt16(utf8.count))
        bytes.append(contentsOf: utf8)
    }
    /// The whole frame: length header filled in.
    func finish() throws(FrameError) -> [UInt8] {
        let length = bytes.count - 4
        guard length <= WireProtocol.maximumPayload else { throw .oversized(length) }
        var out = bytes
        out[0] = UInt8(length >> 24 & 0xFF); out[1] = UInt8(length >> 16 & 0xFF)
        out[2] = UInt8(length >> 8 & 0xFF); out[3] = UInt8(length & 0xFF)
        return out
    }
}

struct Reader {
    let bytes: [UInt8]
    var index = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    mutating func u8() throws(FrameError) -> UInt8 {
        guard index < bytes.count else { throw .truncated }
        defer { index += 1 }
        return bytes[index]
    }
    mutating func u16() throws(FrameError) -> UInt16 {
        let hi = try u8(), lo = try u8()
        return UInt16(hi) << 8 | UInt16(lo)
    }
    mutating func u32() throws(FrameError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 { v = v << 8 | UInt32(try u8()) }
        return v
    }
    mutating func u64() throws(FrameError) -> UInt64 {
        var v: UInt64 = 0
        for _ in 0..<8 { v = v << 8 | UInt64(try u8()) }
        return v
    }
    mutating func str() throws(FrameError) -> String {
        let n = Int(try u16())
        guard bytes.count - index >= n else { throw .truncated }
        let slice = bytes[index..<(index + n)]
        index += n
        if slice.contains(0) { throw .nulInString }
        guard let text = String(validating: slice, as: UTF8.self) else { throw .invalidUTF8 }
        return text
    }
    func end() throws(FrameError) { if index != bytes.count { throw .trailingBytes } }
    /// No field left: an optional last field (a flags byte added later) is absent.
    var atEnd: Bool { index == bytes.count }
}

public enum FrameCodec {
    /// Whether a payload's first byte is LOGIN_BEGIN (for answering a login that could not be decoded).
    public static func isLoginBegin(tag: UInt8?) -> Bool { tag == Tag.loginBegin.rawValue }

    // MARK: client → daemon

    public static func encode(_ message: ClientMessage) throws(FrameError) -> [UInt8] {
        var w = Writer()
        switch message {
        case .loginBegin(let b):
            w.u8(Tag.loginBegin.rawValue); w.u8(b.version)
            try w.str(b.user); try w.str(b.service); try w.str(b.rhost); try w.str(b.tty); try w.str(b.ruser)
            w.u8((b.silent ? WireProtocol.loginFlagSilent : 0) | (b.realUID != nil ? WireProtocol.loginFlagRealUID : 0)
                 | (b.onePrompt ? WireProtocol.loginFlagOnePrompt : 0)
                 | (b.sshAuthInfo != nil ? WireProtocol.loginFlagSSHAuthInfo : 0))
            if let realUID = b.realUID { w.u32(realUID) }
            if let info = b.sshAuthInfo {
                guard info.utf8.count <= WireProtocol.maximumSSHAuthInfo else { throw .badValue("SSH auth info longer than \(WireProtocol.maximumSSHAuthInfo) bytes") }
                try w.str(info)
            }
        case .reply(let answer):
            w.u8(Tag.reply.rawValue); try w.str(answer)
        case .cancel:
            w.u8(Tag.cancel.rawValue)
        case .enroll(let e):
            w.u8(Tag.enroll.rawValue); w.u8(e.version); try w.str(e.user); try w.str(e.secret)
            w.u8((e.replaceExisting ? 1 : 0) | (e.method == .hotp ? 2 : 0))
            if e.method == .hotp { try w.str(e.counter) }
        case .status(let version, let user, let remembered):
            w.u8(Tag.status.rawValue); w.u8(version); try w.str(user)
            // The flags byte only when a flag is set: a plain STATUS is the old frame, byte for byte.
            if remembered { w.u8(WireProtocol.statusFlagRemembered) }
        case .enrollBegin(let b):
            w.u8(Tag.enrollBegin.rawValue); w.u8(b.version); try w.str(b.user); w.u8(b.method.rawValue)
            try w.str(b.counter); try w.str(b.secret); try w.str(b.proof)
        case .enrollConfirm(let r): try w.userCode(.enrollConfirm, r)
        case .regenerateRecoveryCodes(let r): try w.userCode(.regenerate, r)
        case .disable(let r): try w.userCode(.disable, r)
        case .list(let version):
            w.u8(Tag.list.rawValue); w.u8(version)
        case .importGoogleAuthenticator(let i):
            w.u8(Tag.importGA.rawValue); w.u8(i.version); try w.str(i.user); try w.str(i.content)
            w.u8(i.replaceExisting ? 1 : 0)
        case .check(let version, let user, let service, let rhost, let key):
            w.u8(Tag.check.rawValue); w.u8(version); try w.str(user); try w.str(service); try w.str(rhost)
            if let key { try w.checkSSHKey(key) }
        case .unlock(let version, let user, let rhost):
            w.u8(Tag.unlock.rawValue); w.u8(version); try w.str(user); try w.str(rhost)
        case .method(let m): try w.method(m)
        case .invite(let r): try w.invite(r)
        case .report(let r): w.report(r)
        case .forget(let version, let user):
            w.u8(Tag.forget.rawValue); w.u8(version); try w.str(user)
        }
        return try w.finish()
    }

    public static func decodeClient(_ payload: [UInt8]) throws(FrameError) -> ClientMessage {
        var r = Reader(payload)
        let tagByte = try r.u8()
        let message: ClientMessage
        switch Tag(rawValue: tagByte) {
        case .loginBegin:
            let version = try r.u8()
            let user = try r.str(), service = try r.str(), rhost = try r.str(), tty = try r.str(), ruser = try r.str()
            let flags = try r.u8()
            let realUID = flags & WireProtocol.loginFlagRealUID != 0 ? try r.u32() : nil
            let info = flags & WireProtocol.loginFlagSSHAuthInfo != 0 ? try r.str() : nil
            if let info, info.utf8.count > WireProtocol.maximumSSHAuthInfo {
                throw .badValue("SSH auth info longer than \(WireProtocol.maximumSSHAuthInfo) bytes")
            }
            message = .loginBegin(LoginBegin(version: version, user: user, service: service, rhost: rhost,
                                             tty: tty, ruser: ruser, silent: flags & WireProtocol.loginFlagSilent != 0, realUID: realUID,
                                             onePrompt: flags & WireProtocol.loginFlagOnePrompt != 0,
                                             sshAuthInfo: info))
        case .reply:
            message = .reply(answer: try r.str())
        case .cancel:
            message = .cancel
        case .enroll:
            let version = try r.u8()
            let user = try r.str(), secret = try r.str()
            let flags = try r.u8()
            let hotp = flags & 2 != 0
            message = .enroll(EnrollRequest(version: version, user: user, secret: secret, replaceExisting: flags & 1 != 0,
                                            method: hotp ? .hotp : .totp, counter: hotp ? try r.str() : ""))
        case .status:
            let version = try r.u8()
            let user = try r.str()
            let flags = r.atEnd ? 0 : try r.u8()
            message = .status(version: version, user: user, remembered: flags & WireProtocol.statusFlagRemembered != 0)
        case .enrollBegin:
            let version = try r.u8()
            let user = try r.str()
            let methodByte = try r.u8()
            guard let method = OTPMethodCode(rawValue: methodByte) else { throw .badValue("method \(methodByte)") }
            let counter = try r.str(), secret = try r.str(), proof = try r.str()
            message = .enrollBegin(EnrollBeginRequest(version: version, user: user, method: method, counter: counter,
                                                      secret: secret, proof: proof))
        case .enrollConfirm: message = .enrollConfirm(try r.userCode())
        case .regenerate: message = .regenerateRecoveryCodes(try r.userCode())
        case .disable: message = .disable(try r.userCode())
        case .list: message = .list(version: try r.u8())
        case .importGA:
            let version = try r.u8()
            let user = try r.str(), content = try r.str()
            let flags = try r.u8()
            message = .importGoogleAuthenticator(ImportRequest(version: version, user: user, content: content,
                                                               replaceExisting: flags & 1 != 0))
        case .check:
            let version = try r.u8()
            let user = try r.str(), service = try r.str(), rhost = try r.str()
            message = .check(version: version, user: user, service: service, rhost: rhost, sshKey: try r.checkSSHKey())
        case .unlock:
            let version = try r.u8()
            let user = try r.str(), rhost = try r.str()
            message = .unlock(version: version, user: user, rhost: rhost)
        case .methodAdd, .methodConfirm, .methodList, .methodPrefer, .methodRemove:
            message = .method(try r.method(tagByte))
        case .invite: message = .invite(try r.invite())
        case .report: message = .report(try r.report())
        case .forget:
            let version = try r.u8()
            message = .forget(version: version, user: try r.str())
        default:
            throw .unknownTag(tagByte)
        }
        try r.end()
        return message
    }

    // MARK: daemon → client

    public static func encode(_ message: DaemonMessage) throws(FrameError) -> [UInt8] {
        var w = Writer()
        switch message {
        case .converse(let messages):
            try checkConversation(messages)
            w.u8(Tag.converse.rawValue); w.u8(UInt8(messages.count))
            for m in messages { w.u8(m.style.rawValue); try w.str(m.text) }
        case .verdict(let result, let reason):
            w.u8(Tag.verdict.rawValue); w.u8(result.rawValue); try w.str(reason)
        case .enrolled(let e):
            guard e.recoveryCodes.count <= 255 else { throw .badValue("too many recovery codes") }
            w.u8(Tag.enrolled.rawValue); try w.str(e.user); try w.str(e.secret); try w.str(e.otpauthURI)
            w.u8(UInt8(e.recoveryCodes.count))
            for code in e.recoveryCodes { try w.str(code) }
        case .status(let s):
            w.u8(Tag.statusReply.rawValue); try w.statusBody(s)
            if let remembered = s.remembered { try w.rememberedHosts(remembered) }
        case .pending(let p):
            w.u8(Tag.pending.rawValue); try w.str(p.user); try w.str(p.secret); try w.str(p.otpauthURI)
            w.u16(UInt16(clamping: p.secondsValid))
        case .recoveryCodes(let user, let codes):
            w.u8(Tag.recoveryCodes.rawValue); try w.str(user); try w.codes(codes)
        case .changed(let user, let text):
            w.u8(Tag.changed.rawValue); try w.str(user); try w.str(text)
        case .list(let entries):
            guard entries.count <= 0xFFFF else { throw .badValue("too many users") }
            w.u8(Tag.listReply.rawValue); w.u16(UInt16(entries.count))
            for entry in entries { try w.statusBody(entry) }
        case .checked(let c):
            w.u8(Tag.checked.rawValue); try w.str(c.decision); try w.str(c.reason); try w.str(c.rule)
            w.u64(UInt64(bitPattern: c.until)); w.u8(c.enrolled ? 1 : 0)
        case .done(let text):
            w.u8(Tag.done.rawValue); try w.str(text)
        case .error(let code, let text):
            w.u8(Tag.error.rawValue); w.u16(code.rawValue); try w.str(text)
        case .methods(let reply): try w.methods(reply)
        case .invited(let reply): try w.invited(reply)
        case .reported(let reply): try w.reported(reply)
        }
        return try w.finish()
    }

    public static func decodeDaemon(_ payload: [UInt8]) throws(FrameError) -> DaemonMessage {
        var r = Reader(payload)
        let tagByte = try r.u8()
        let message: DaemonMessage
        switch Tag(rawValue: tagByte) {
        case .converse:
            let count = Int(try r.u8())
            var messages: [ConversationMessage] = []
            for _ in 0..<count {
                let styleByte = try r.u8()
                guard let style = MessageStyle(rawValue: styleByte) else { throw .badValue("message style \(styleByte)") }
                messages.append(ConversationMessage(style, try r.str()))
            }
            try checkConversation(messages)
            message = .converse(messages)
        case .verdict:
            let resultByte = try r.u8()
            guard let result = VerdictResult(rawValue: resultByte) else { throw .badValue("verdict \(resultByte)") }
            message = .verdict(result, reason: try r.str())
        case .enrolled:
            let user = try r.str(), secret = try r.str(), uri = try r.str()
            let count = Int(try r.u8())
            var codes: [String] = []
            for _ in 0..<count { codes.append(try r.str()) }
            message = .enrolled(EnrolledReply(user: user, secret: secret, otpauthURI: uri, recoveryCodes: codes))
        case .statusReply:
            var status = try r.statusBody()
            // Present only in answer to a STATUS that asked for it (flag bit 0).
            if !r.atEnd { status.remembered = try r.rememberedHosts() }
            message = .status(status)
        case .pending:
            let user = try r.str(), secret = try r.str(), uri = try r.str()
            message = .pending(PendingReply(user: user, secret: secret, otpauthURI: uri, secondsValid: Int(try r.u16())))
        case .recoveryCodes:
            let user = try r.str()
            message = .recoveryCodes(user: user, codes: try r.codes())
        case .changed:
            let user = try r.str()
            message = .changed(user: user, message: try r.str())
        case .listReply:
            let count = Int(try r.u16())
            var entries: [StatusReply] = []
            for _ in 0..<count { entries.append(try r.statusBody()) }
            message = .list(entries)
        case .checked:
            let decision = try r.str(), reason = try r.str(), rule = try r.str()
            let until = Int64(bitPattern: try r.u64())
            message = .checked(CheckReply(decision: decision, reason: reason, rule: rule, until: until, enrolled: try r.u8() != 0))
        case .done:
            message = .done(message: try r.str())
        case .error:
            // A code this side does not know is a protocol error, never silently another code.
            let raw = try r.u16()
            guard let code = ErrorCode(rawValue: raw) else { throw .badValue("unknown error code \(raw)") }
            message = .error(code, message: try r.str())
        case .methodsReply:
            message = .methods(try r.methods())
        case .invited: message = .invited(try r.invited())
        case .reported: message = .reported(try r.reported())
        default:
            throw .unknownTag(tagByte)
        }
        try r.end()
        return message
    }

    /// 1...8 messages, at most one prompt, and a prompt only in last place (see docs/protocol.md).
    static func checkConversation(_ messages: [ConversationMessage]) throws(FrameError) {
        guard (1...WireProtocol.maximumConversationMessages).contains(messages.count) else {
            throw .badValue("conversation of \(messages.count) messages")
        }
        for (i, m) in messages.enumerated() where m.style.isPrompt && i != messages.count - 1 {
            throw .badValue("a prompt that is not the last message")
        }
    }
}
