// SPDX-License-Identifier: Apache-2.0
/// `mfagate invite` (docs/protocol.md, INVITE 0x23 and INVITED 0xA3): root asks for a one-time
/// code that lets an unenrolled user enroll at the login prompt (`enroll_at_login = invite`).
/// The PAM shim never sends or reads these.

public struct InviteRequest: Sendable, Equatable {
    public var version: UInt8
    public var user: String
    /// Seconds the invite holds; 0: the daemon's default (7 days).
    public var lifetime: Int64
    public init(version: UInt8 = WireProtocol.version, user: String, lifetime: Int64 = 0) {
        self.version = version
        self.user = user
        self.lifetime = lifetime
    }
}

public struct InviteReply: Sendable, Equatable {
    public var user: String
    /// The code, shown to root once; the daemon keeps only its SHA-256.
    public var code: String
    /// Unix time the invite stops working.
    public var expires: Int64
    /// A remark for the admin (e.g. that `enroll_at_login` is not `invite`); empty if none.
    public var note: String
    public init(user: String, code: String, expires: Int64, note: String = "") {
        self.user = user
        self.code = code
        self.expires = expires
        self.note = note
    }
}

extension Writer {
    mutating func invite(_ r: InviteRequest) throws(FrameError) {
        u8(Tag.invite.rawValue); u8(r.version); try str(r.user); u64(UInt64(bitPattern: r.lifetime))
    }
    mutating func invited(_ r: InviteReply) throws(FrameError) {
        u8(Tag.invited.rawValue); try str(r.user); try str(r.code); u64(UInt64(bitPattern: r.expires)); try str(r.note)
    }
}

extension Reader {
    mutating func invite() throws(FrameError) -> InviteRequest {
        let version = try u8()
        let user = try str()
        let lifetime = Int64(bitPattern: try u64())
        guard lifetime >= 0 else { throw .badValue("negative invite lifetime") }
        return InviteRequest(version: version, user: user, lifetime: lifetime)
    }
    mutating func invited() throws(FrameError) -> InviteReply {
        let user = try str(), code = try str()
        let expires = Int64(bitPattern: try u64())
        return InviteReply(user: user, code: code, expires: expires, note: try str())
    }
}
