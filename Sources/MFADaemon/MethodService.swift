// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAProtocol
import MFAStore

/// `mfagate method add|confirm|list|prefer|remove` (docs/protocol.md, tags 0x18–0x1C). An email or
/// SMS method counts only once a code sent through it comes back; adding or removing one needs a
/// current code or a recovery code unless root asks; removing `totp` is `disable`.
public final class MethodService: AuthorityPart {
    unowned let shared: Authority
    init(_ shared: Authority) { self.shared = shared }

    public func method(_ request: MethodRequest, peer: Peer) -> Step {
        let user: UserName
        switch shared.resolveUser(request.user, peer: peer, action: "method \(request.verb)") {
        case .success(let u): user = u
        case .failure(let refusal): return .finish(refusal.message)
        }
        if request.verb == .list { return .finish(listMethods(user)) }
        guard let method = LoginMethod(rawValue: request.method.lowercased()) ?? (request.method == "hotp" ? .totp : nil) else {
            return .finish(.error(.badRequest, message: "\"\(DeliveryAddress.escaped(request.method))\" is not a method (totp, email, sms)"))
        }
        switch request.verb {
        case .add: return addMethod(method, address: request.address, proof: request.code, user: user, peer: peer)
        case .confirm: return confirmMethod(method, code: request.code, user: user, peer: peer)
        case .prefer: return .finish(preferMethod(method, user: user, peer: peer))
        case .remove: return .finish(removeMethod(method, proof: request.code, user: user, peer: peer))
        case .list: return .finish(listMethods(user))
        }
    }

    func notAllowed(_ method: LoginMethod) -> DaemonMessage {
        .error(.methodNotAllowed, message: "this host does not allow \(method.rawValue) codes (methods = \(config.methods.map(\.rawValue).joined(separator: " ")) in mfagate.conf)")
    }

    func listMethods(_ user: UserName) -> DaemonMessage {
        do {
            guard let record = try store.load(user) else { return .error(.notEnrolled, message: "\(user) is not enrolled (mfagate enroll)") }
            var entries = record.appActive ? [MethodsReply.Entry(method: record.method.rawValue, detail: "", allowed: true)] : []
            if let e = record.email {
                entries.append(MethodsReply.Entry(method: "email", detail: DeliveryAddress.maskEmail(e), allowed: config.methods.contains(.email)))
            }
            if let n = record.sms {
                entries.append(MethodsReply.Entry(method: "sms", detail: DeliveryAddress.maskPhone(n), allowed: config.methods.contains(.sms)))
            }
            return .methods(MethodsReply(user: user.value, preferred: (record.preferred ?? .totp).rawValue, entries: entries))
        } catch {
            return shared.storageError(error)
        }
    }

    func addMethod(_ method: LoginMethod, address raw: String, proof: String, user: UserName, peer: Peer) -> Step {
        guard method.isDelivered else {
            return .finish(.error(.badRequest, message: "the app or token is set up with mfagate enroll"))
        }
        guard config.methods.contains(method) else { return .finish(notAllowed(method)) }
        let address: String
        do {
            switch method {
            case .email:
                if raw.isEmpty {
                    guard let pattern = config.emailAddressPattern else {
                        return .finish(.error(.badAddress, message: "give the email address (this host has no email_address_pattern)"))
                    }
                    address = try DeliveryAddress.fromPattern(pattern, user: user.value)
                } else {
                    address = try DeliveryAddress.validateEmail(raw)
                }
            default:
                address = try DeliveryAddress.validatePhone(raw)
            }
        } catch {
            shared.logLimited(.refused, .notice, "refused", metadata: ["action": "method add", "user": "\(user)", "peer": "\(peer)", "reason": "bad \(method.rawValue) address"])
            return .finish(.error(.badAddress, message: error.message))
        }
        if method == .sms && !PhonePrefix.allows(config.smsAllowedPrefixes, address) {
            shared.logLimited(.refused, .notice, "refused", metadata: ["action": "method add", "user": "\(user)", "peer": "\(peer)",
                                                                "reason": "number outside sms_allowed_prefixes"])
            return .finish(.error(.badAddress, message: PhonePrefix.refusal(config.smsAllowedPrefixes, address)))
        }
        guard shared.deliveryCommand(method, user: user, address: address) != nil else {
            return .finish(.error(.methodNotAllowed, message: "this host has no sms_command"))
        }
        do {
            // Not enrolled yet: this method becomes the user's first (nothing to prove yet).
            if let record = try store.load(user), !peer.isRoot || !proof.isEmpty {
                if case .failure(let refusal) = shared.prove(proof, record, allowRecoveryCode: true, action: "method add", peer: peer) {
                    return .finish(refusal.message)
                }
            }
        } catch {
            return .finish(shared.storageError(error))
        }
        let now = environment.now()
        delivery.pendingMethods = delivery.pendingMethods.filter { now < $0.value.expires }
        delivery.pendingMethods[shared.pendingKey(user, method)] = PendingMethod(method: method, address: address, expires: now + DeliveryBook.lifetime)
        BoundedBook.evictOldest(&delivery.pendingMethods, limit: DeliveryBook.maximumKeys) { $0.expires }
        return sendConfirmation(method, address: address, user: user, peer: peer)
    }


    func sendConfirmation(_ method: LoginMethod, address: String, user: UserName, peer: Peer) -> Step {
        shared.sendConfirmationCode(key: shared.pendingKey(user, method), method: method, address: address, user: user, peer: peer,
                                    label: "confirm", purpose: "to confirm this \(method == .email ? "address" : "number")",
                                    hint: "check the address, or ask the administrator to check \(method.rawValue)_command")
    }

    func confirmMethod(_ method: LoginMethod, code: String, user: UserName, peer: Peer) -> Step {
        let key = shared.pendingKey(user, method)
        let now = environment.now()
        guard let waiting = delivery.pendingMethods[key], now < waiting.expires || code == "resend" else {
            delivery.pendingMethods[key] = nil
            return .finish(.error(.noPendingEnrollment, message: "no \(method.rawValue) method of \(user) is waiting for a code; run mfagate method add \(method.rawValue) again"))
        }
        guard config.methods.contains(method) else { return .finish(notAllowed(method)) }
        if code.trimmed(of: " \t").lowercased() == "resend" {
            delivery.pendingMethods[key]?.expires = now + DeliveryBook.lifetime
            return sendConfirmation(method, address: waiting.address, user: user, peer: peer)
        }
        switch delivery.confirmations.check(key, typed: code, now: now) {
        case .matched:
            break
        case .wrong(let left) where left > 0:
            shared.logLimited(.refused, .notice, "refused", metadata: ["action": "method confirm", "user": "\(user)", "peer": "\(peer)", "reason": "wrong code"])
            return .finish(.error(.wrongCode, message: "that is not the code sent to \(DeliveryAddress.masked(waiting.address, method: method)); \(left) tries left"))
        case .wrong, .noCode:
            delivery.pendingMethods[key] = nil
            return .finish(.error(.noPendingEnrollment, message: "the code expired or was typed wrong too often; run mfagate method add \(method.rawValue) again"))
        }
        delivery.pendingMethods[key] = nil
        do {
            guard var record = try store.load(user) else { return .finish(shared.enrollByDelivery(method, address: waiting.address, user: user, peer: peer)) }
            let old = method == .email ? record.email : record.sms
            if method == .email { record.email = waiting.address } else { record.sms = waiting.address }
            try store.save(record)
            if method == .email, let old, old != waiting.address { shared.noteNoticeAddress(user, old) }
            let masked = DeliveryAddress.masked(waiting.address, method: method)
            notifier.notify(.methodAdded, user: user, command: config.notifyCommand,
                            metadata: ["peer": "\(peer)", "method": "\(method.rawValue) (\(masked))"])
            let hint = record.preferred == method ? "" : " Make it the first one asked at login with: mfagate method prefer \(method.rawValue)"
            return .finish(.done(message: "\(method.rawValue) \(masked) confirmed for \(user).\(hint)"))
        } catch {
            return .finish(shared.storageError(error))
        }
    }

    func preferMethod(_ method: LoginMethod, user: UserName, peer: Peer) -> DaemonMessage {
        guard config.methods.contains(method) else { return notAllowed(method) }
        do {
            guard var record = try store.load(user) else { return .error(.notEnrolled, message: "\(user) is not enrolled") }
            if (method == .email && record.email == nil) || (method == .sms && record.sms == nil) {
                return .error(.badRequest, message: "\(user) has no \(method.rawValue) method yet; add it with mfagate method add \(method.rawValue)")
            }
            if method == .totp && !record.appActive {
                return .error(.badRequest, message: "\(user) has no app or token; set one up with mfagate enroll")
            }
            let wanted: LoginMethod? = method == .totp ? nil : method
            if record.preferred == wanted { return .done(message: "\(method.rawValue) already comes first for \(user)") }
            record.preferred = wanted
            try store.save(record)
            notifier.notify(.methodPreferred, user: user, command: config.notifyCommand, metadata: ["peer": "\(peer)", "method": "\(method.rawValue)"])
            return .done(message: "\(user) is asked for \(method == .totp ? "a code from the app" : method == .email ? "an emailed code" : "a texted code") first at login")
        } catch {
            return shared.storageError(error)
        }
    }

    /// Removing email or SMS needs proof like `disable`; removing the app is `disable` itself (the
    /// enrollment with every method goes, by its rules).
    func removeMethod(_ method: LoginMethod, proof: String, user: UserName, peer: Peer) -> DaemonMessage {
        do {
            guard var record = try store.load(user) else { return .error(.notEnrolled, message: "\(user) is not enrolled") }
            let others = [record.appActive && method != .totp, record.email != nil && method != .email,
                          record.sms != nil && method != .sms].filter { $0 }.count
            // The last method: its removal is `disable`, by its rules (a code, then everything goes).
            if others == 0 { return shared.selfService.disable(UserCodeRequest(user: user.value, code: proof), peer: peer) }
            if method == .totp {
                guard record.appActive else { return .error(.badRequest, message: "\(user) has no app or token") }
                return removeApp(record, proof: proof, user: user, peer: peer)
            }
            guard let address = method == .email ? record.email : record.sms else {
                return .error(.badRequest, message: "\(user) has no \(method.rawValue) method")
            }
            if !peer.isRoot || !proof.isEmpty {
                switch shared.prove(proof, record, allowRecoveryCode: true, action: "method remove", peer: peer) {
                case .success(let updated): record = updated
                case .failure(let refusal): return refusal.message
                }
            }
            if method == .email { record.email = nil } else { record.sms = nil }
            if record.preferred == method { record.preferred = record.appActive ? nil : (record.email != nil ? .email : .sms) }
            try store.save(record)
            delivery.loginCodes.revoke(user.value)
            if method == .email { shared.noteNoticeAddress(user, address) }
            let masked = DeliveryAddress.masked(address, method: method)
            notifier.notify(.methodRemoved, user: user, command: config.notifyCommand,
                            metadata: ["peer": "\(peer)", "method": "\(method.rawValue) (\(masked))"])
            return .done(message: "\(method.rawValue) \(masked) removed from \(user)")
        } catch {
            return shared.storageError(error)
        }
    }

    /// The app goes, email/SMS stay: the secret is replaced by a random one nobody is shown, so the
    /// old phone's codes stop working at once.
    func removeApp(_ original: UserRecord, proof: String, user: UserName, peer: Peer) -> DaemonMessage {
        var record = original
        if !peer.isRoot || !proof.isEmpty {
            switch shared.prove(proof, record, allowRecoveryCode: true, action: "method remove", peer: peer) {
            case .success(let updated): record = updated
            case .failure(let refusal): return refusal.message
            }
        }
        do {
            record.secret = try environment.randomBytes(20)
            record.appActive = false
            if record.preferred == nil { record.preferred = record.email != nil ? .email : .sms }
            try store.save(record)
        } catch {
            return shared.storageError(error)
        }
        notifier.notify(.methodRemoved, user: user, command: config.notifyCommand, metadata: ["peer": "\(peer)", "method": "totp"])
        return .done(message: "the app or token was removed from \(user); logins use \(record.preferred?.rawValue ?? "email") codes now")
    }
}
