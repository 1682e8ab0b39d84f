// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAProtocol

/// Frames whose strings are not valid UTF-8 (FrameCodec refuses them, never repairs them) get an
/// answer, not a dropped connection: the PAM module treats a dropped login by its `failmode`, and
/// with `failmode=safe` that would let a name or a code typed in bad UTF-8 skip the second factor.
extension Authority {
    /// A LOGIN_BEGIN or a CLI request that could not be decoded. Nothing in it is logged: the name
    /// field may hold a password typed at the login prompt.
    public func refusedRequest(tag: UInt8?, peer: Peer) -> DaemonMessage {
        let reason = "the request is not valid UTF-8"
        guard FrameCodec.isLoginBegin(tag: tag) else {
            logger.warning("refused", metadata: ["action": "request", "peer": "\(peer)", "reason": "\(reason)"])
            return .error(.badRequest, message: "\(reason): names, addresses and values must be UTF-8")
        }
        logger.notice("login", metadata: ["user": "-", "service": "-", "rhost": "-", "peer": "\(peer)",
                                          "result": "\(VerdictResult.denied.logName)", "reason": "\(reason)"])
        return .verdict(.denied, reason: reason)
    }
}

extension LoginFlow {
    /// A typed answer that is not valid UTF-8: a wrong code, counted as one where a code was asked.
    func refusedAnswer(in session: LoginSession) -> Step {
        let reason = "the answer is not valid UTF-8"
        switch session.purpose {
        case .code, .delivered:
            logDecision(session.request, user: session.user.value, peer: session.peer, result: .denied, reason: reason)
            let now = environment.now()
            if books.rhostBlockedUntil(session.request.rhost, now: now) == nil && books.userLockedUntil(session.user.value, now: now) == nil {
                books.recordFailure(user: session.user.value, rhost: session.request.rhost, config: config, now: now)
            }
            if case .delivered = session.purpose { delivery.loginCodes.revoke(session.user.value) }
        case .locked(let until, let why):
            logDecision(session.request, user: session.user.value, peer: session.peer, result: .locked, reason: why)
            return .finish(.verdict(.locked, reason: "\(why), locked until \(UTCTime.format(until))"))
        case .graceNotice, .enrolling:
            logDecision(session.request, user: session.user.value, peer: session.peer, result: .denied, reason: reason)
        }
        return abandonedIfBackendFailed(.finish(.verdict(.denied, reason: reason)), session.request, user: session.user.value, peer: session.peer)
    }
}
