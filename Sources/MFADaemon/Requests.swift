// SPDX-License-Identifier: Apache-2.0
import MFAProtocol

extension ClientMessage {
    /// The protocol version a CLI request carries; nil for the frames of a login (LOGIN_BEGIN's
    /// version is the login flow's to check, REPLY and CANCEL carry none).
    var requestVersion: UInt8? {
        switch self {
        case .enroll(let r): return r.version
        case .status(let version, _, _), .forget(let version, _), .list(let version), .check(let version, _, _, _, _), .unlock(let version, _, _): return version
        case .enrollBegin(let r): return r.version
        case .enrollConfirm(let r), .regenerateRecoveryCodes(let r), .disable(let r): return r.version
        case .importGoogleAuthenticator(let r): return r.version
        case .invite(let r): return r.version
        case .report(let r): return r.version
        case .method(let r): return r.version
        case .loginBegin, .reply, .cancel: return nil
        }
    }
}

/// The CLI's requests (docs/protocol.md, tags 0x10–0x23), one per connection: the protocol version
/// is checked here, once for every verb, then the verb's handler runs (AdminVerbs.swift,
/// SelfService.swift, MethodService.swift, Invites.swift, ImportGoogleAuthenticator.swift). Each
/// handler authorises the peer itself (SO_PEERCRED: root, or the account's own uid).
extension Authority {
    static let versionMessage = "the daemon speaks protocol version \(WireProtocol.version); upgrade the mfagate command"

    public func request(_ message: ClientMessage, peer: Peer) -> Step {
        guard let version = message.requestVersion else {
            return .finish(.error(.badRequest, message: "a login frame is not a request"))
        }
        guard version == WireProtocol.version else { return .finish(.error(.unsupportedVersion, message: Self.versionMessage)) }
        switch message {
        case .enroll(let r): return .finish(admin.enroll(r, peer: peer))
        case .status(_, let user, let remembered): return .finish(admin.status(user: user, peer: peer, remembered: remembered))
        case .check(_, let user, let service, let rhost, let key):
            return .finish(admin.check(user: user, service: service, rhost: rhost, sshKey: key, peer: peer))
        case .unlock(_, let user, let rhost): return .finish(admin.unlock(user: user, rhost: rhost, peer: peer))
        case .enrollBegin(let r): return .finish(selfService.enrollBegin(r, peer: peer))
        case .enrollConfirm(let r): return .finish(selfService.enrollConfirm(r, peer: peer))
        case .regenerateRecoveryCodes(let r): return regenerateRecoveryCodesStep(r, peer: peer)
        case .disable(let r): return .finish(selfService.disable(r, peer: peer))
        case .list: return .finish(selfService.list(peer: peer))
        case .importGoogleAuthenticator(let r): return .finish(admin.importGoogleAuthenticator(r, peer: peer))
        case .invite(let r): return .finish(admin.invite(r, peer: peer))
        case .method(let r): return methods.method(r, peer: peer)
        case .report(let r): return .finish(admin.report(r, peer: peer))
        case .forget(_, let user): return .finish(forget(user: user, peer: peer))
        case .loginBegin, .reply, .cancel: return .finish(.error(.badRequest, message: "a login frame is not a request"))
        }
    }
}
