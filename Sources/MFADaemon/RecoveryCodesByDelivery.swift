// SPDX-License-Identifier: Apache-2.0
import MFACore
import MFAProtocol
import MFAStore

/// New recovery codes for a user whose only methods are email or SMS (issue 19, part 7). Such a
/// user has no app to prove the change with, and a recovery code may not regenerate recovery codes
/// (SelfService.swift): the proof is a code sent to their method. A request without a code (or
/// `resend`) sends one; the request with that code makes the new set. Users with an app, and root,
/// go the usual way (regenerateRecoveryCodes).
extension Authority {
    public func regenerateRecoveryCodesStep(_ request: UserCodeRequest, peer: Peer) -> Step {
        guard request.version == WireProtocol.version, !peer.isRoot else { return .finish(selfService.regenerateRecoveryCodes(request, peer: peer)) }
        let user: UserName
        switch resolveUser(request.user, peer: peer, action: "regenerate") {
        case .success(let u): user = u
        case .failure(let refusal): return .finish(refusal.message)
        }
        let record: UserRecord
        do {
            guard let loaded = try store.load(user), !loaded.appActive else { return .finish(selfService.regenerateRecoveryCodes(request, peer: peer)) }
            record = loaded
        } catch {
            return .finish(storageError(error))
        }
        guard let (method, address) = proofMethod(record) else {
            return .finish(.error(.methodNotAllowed, message: "\(user) has no app and no email or SMS method this host allows (methods = \(config.methods.map(\.rawValue).joined(separator: " ")) in mfagate.conf); ask root: mfagate recovery-codes --regenerate --user \(user)"))
        }
        let key = "\(user.value) regenerate"
        let now = environment.now()
        let typed = request.code.trimmed(of: " \t")
        if typed.isEmpty || typed.lowercased() == "resend" {
            return sendRegenerateProof(method, address: address, key: key, user: user, peer: peer)
        }
        if let until = books.userLockedUntil(user.value, now: now) {
            return .finish(.error(.wrongCode, message: "too many wrong codes; locked until \(UTCTime.format(until)) (root: mfagate unlock --user \(user))"))
        }
        let masked = DeliveryAddress.masked(address, method: method)
        switch delivery.confirmations.check(key, typed: typed, now: now) {
        case .matched:
            break
        case .wrong(let left) where left > 0:
            books.recordFailure(user: user.value, rhost: "", config: config, now: now)
            logLimited(.refused, .notice, "refused", metadata: ["action": "regenerate", "user": "\(user)", "peer": "\(peer)", "reason": "wrong code"])
            return .finish(.error(.wrongCode, message: "that is not the code sent to \(masked); \(left) tries left"))
        case .wrong, .noCode:
            books.recordFailure(user: user.value, rhost: "", config: config, now: now)
            return .finish(.error(.wrongCode, message: "no code sent to \(masked) is waiting (they expire after \(Self.deliveryMinutes) minutes, or it was typed wrong too often); run mfagate recovery-codes --regenerate without --code to get one"))
        }
        do {
            var updated = record
            let codes = try makeRecoveryCodes()
            updated.recoveryCodes = codes.hashed
            try store.save(updated)
            books.recordSuccess(user: user.value, config: config, now: now)
            notifier.notify(.recoveryCodesRegenerated, user: user, command: config.notifyCommand, metadata: ["peer": "\(peer)", "proof": "\(method.rawValue)"])
            return .finish(.recoveryCodes(user: user.value, codes: codes.shown))
        } catch {
            return .finish(storageError(error))
        }
    }

    /// The method the proof goes to: the preferred one, else email, else SMS (allowed on this host).
    func proofMethod(_ record: UserRecord) -> (LoginMethod, String)? {
        let candidates: [(LoginMethod, String?)] = [(record.preferred ?? .email, record.preferred == .sms ? record.sms : record.email),
                                                    (.email, record.email), (.sms, record.sms)]
        for (method, address) in candidates {
            if let address, method.isDelivered, config.methods.contains(method) { return (method, address) }
        }
        return nil
    }

    func sendRegenerateProof(_ method: LoginMethod, address: String, key: String, user: UserName, peer: Peer) -> Step {
        sendConfirmationCode(key: key, method: method, address: address, user: user, peer: peer, label: "regenerate",
                             purpose: "to make new recovery codes", hint: "ask the administrator to check \(method.rawValue)_command")
    }
}
