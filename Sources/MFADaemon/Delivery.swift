// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import Logging
import MFACore
import MFAProtocol
import MFAStore

/// How a delivery command ended.
public enum DeliveryOutcome: Error, Sendable, Equatable {
    case sent
    /// Exited non-zero or was killed by a signal (`exit 75`, `signal 9`), or could not start.
    case failed(String)
    /// Still running after `Notifier.deliveryTimeoutSeconds`: killed, with its process group.
    case timedOut(seconds: Int64)

    var logText: String {
        switch self {
        case .sent: return "sent"
        case .failed(let why): return "failed (\(why))"
        case .timedOut(let s): return "failed (no answer within \(s) s, killed)"
        }
    }
}

/// Runs delivery commands with the spawner `notify_command` uses: never waited on in the poll loop,
/// its message written to a pipe on its stdin at once (a message is far below the pipe's 64 KiB, so
/// the write never blocks), killed with its process group after `deliveryTimeoutSeconds`.
extension Notifier {
    /// Well below the shim's 10 s default wait per frame: the login prompt waits for the delivery.
    public static let deliveryTimeoutSeconds: Int64 = 5
    /// How often the poll loop looks at a running delivery (waitpid, no descriptor to poll).
    static let deliveryPollMilliseconds: Int64 = 20

    /// Starts `argv` with `message` on stdin and `environment` added to a minimal one. Returns the
    /// token whose outcome `takeFinishedDeliveries` reports, or the reason it could not start.
    func deliver(argv: [String], environment: [String], message: [UInt8], label: String, event: String) -> Result<Int, DeliveryOutcome> {
        reap()
        guard running.count < Notifier.maximumRunning else { return .failure(.failed("\(running.count) commands still running")) }
        guard let program = argv.first else { return .failure(.failed("no command configured")) }
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return .failure(.failed("pipe: \(String(cString: strerror(errno)))")) }
        // Single-threaded daemon: nothing can fork between pipe() and these, so no descriptor leaks.
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        let spawned = spawn(program, arguments: Array(argv.dropFirst()), environment: environment, stdinFD: fds[0])
        close(fds[0])
        guard case .success(let pid) = spawned else {
            close(fds[1])
            if case .failure(let e) = spawned { return .failure(.failed("cannot start \(program): \(String(cString: strerror(e.code)))")) }
            return .failure(.failed("cannot start \(program)"))
        }
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        let written = message.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
        close(fds[1])
        deliveryTokens += 1
        let token = deliveryTokens
        running.append(Running(pid: pid, label: label, event: event,
                               deadline: monotonicNow() + Notifier.deliveryTimeoutSeconds * 1000,
                               delivery: token, timeoutSeconds: Notifier.deliveryTimeoutSeconds))
        if written != message.count {
            // The command exited before reading its message (or the pipe was full): it failed.
            logger.error("\(label) did not take its whole message", metadata: ["event": "\(event)"])
        }
        return .success(token)
    }
}

/// What a delivery in flight is for: logged when it ends, then `then` says what the waiting
/// connection gets (nil: nobody waits, e.g. a notice).
struct DeliveryWait {
    var user: UserName
    var method: LoginMethod
    var masked: String
    var purpose: String
    var session: LoginSession?
    var then: (DeliveryOutcome) -> Step?
}

/// An email or SMS method being added, waiting for the code sent through it.
struct PendingMethod {
    var method: LoginMethod
    var address: String
    var expires: Int64
}

/// The daemon's delivery state, all in memory: live codes (hashed), send counts, methods waiting
/// for their confirming code, and deliveries in flight. A restart forgets it; users then ask again.
final class DeliveryState {
    var loginCodes = DeliveryBook()
    var confirmations = DeliveryBook()
    var pendingMethods: [String: PendingMethod] = [:]
    var waits: [Int: DeliveryWait] = [:]
    /// Addresses that must also get the next notice about a user (a removed or replaced address,
    /// or the address of a user whose enrollment is about to be deleted).
    var alsoNotify: [String: [String]] = [:]
    /// Codes sent per sender and by the host in the last hour (SendGate.swift).
    var caps = SendCaps(perSender: 10, perHour: 200)
}

extension Authority {
    static let deliveryMinutes = Int(DeliveryBook.lifetime / 60)

    func account(_ user: UserName) -> String { "\(user.value)@\(environment.hostName)" }

    /// The command and environment for `method`; nil if the host has none configured.
    func deliveryCommand(_ method: LoginMethod, user: UserName, address: String) -> (argv: [String], env: [String], label: String)? {
        switch method {
        case .email: return (config.emailCommand, ["MFAGATE_USER=\(user.value)"], "email_command")
        case .sms:
            guard let sms = config.smsCommand else { return nil }
            return (sms, ["MFAGATE_USER=\(user.value)", "MFAGATE_SMS_TO=\(address)"], "sms_command")
        case .totp: return nil
        }
    }

    /// Starts sending `text`; the returned step waits for the outcome (or is `then`'s answer at
    /// once if the command could not even start).
    func send(_ text: String, method: LoginMethod, to address: String, user: UserName, purpose: String,
              session: LoginSession?, then: @escaping (DeliveryOutcome) -> Step?) -> Step? {
        let masked = DeliveryAddress.masked(address, method: method)
        guard let command = deliveryCommand(method, user: user, address: address) else {
            return finishDelivery(DeliveryWait(user: user, method: method, masked: masked, purpose: purpose, session: session, then: then),
                                  .failed("no \(method.rawValue)_command configured"))
        }
        switch notifier.deliver(argv: command.argv, environment: command.env, message: Array(text.utf8),
                                label: command.label, event: purpose) {
        case .success(let token):
            delivery.waits[token] = DeliveryWait(user: user, method: method, masked: masked, purpose: purpose, session: session, then: then)
            return .awaitDelivery(token: token)
        case .failure(let outcome):
            return finishDelivery(DeliveryWait(user: user, method: method, masked: masked, purpose: purpose, session: session, then: then), outcome)
        }
    }

    func finishDelivery(_ wait: DeliveryWait, _ outcome: DeliveryOutcome) -> Step? {
        let fields: Logger.Metadata = ["user": "\(wait.user)", "method": "\(wait.method.rawValue)", "to": "\(wait.masked)",
                                       "purpose": "\(wait.purpose)", "result": "\(outcome.logText)"]
        if outcome == .sent {
            logger.info("delivery", metadata: fields)
        } else {
            logger.error("delivery", metadata: fields)
        }
        return wait.then(outcome)
    }

    /// Called by the server when a delivery ended: what its waiting connection gets, if any.
    /// `connectionGone`: the client left meanwhile (a login then counts as cancelled).
    public func deliveryEnded(token: Int, outcome: DeliveryOutcome) -> (Step?, LoginSession?) {
        guard let wait = delivery.waits.removeValue(forKey: token) else { return (nil, nil) }
        return (finishDelivery(wait, outcome), wait.session)
    }

    func makeDeliveredCode() throws -> String {
        while true {
            if let code = DeliveryBook.makeCode(randomBytes: try environment.randomBytes(4)) { return code }
        }
    }

    // MARK: notices

    /// A short notice to the user's email address (and to any address just removed or replaced)
    /// for each enrollment change; the event itself was logged by the notifier.
    func sendNotice(_ event: EnrollmentEvent, user: UserName, metadata: Logger.Metadata) {
        var addresses = delivery.alsoNotify.removeValue(forKey: user.value) ?? []
        if config.methods.contains(.email), let record = try? store.load(user), let email = record.email, !addresses.contains(email) {
            addresses.insert(email, at: 0)
        }
        guard config.methods.contains(.email), !addresses.isEmpty else { return }
        let method = metadata["method"].map { "\($0)" } ?? ""
        let what: String
        switch event {
        case .enrolled: what = "multi-factor login was set up"
        case .disabled: what = "multi-factor login was turned off"
        case .reset: what = "multi-factor login was reset by an administrator"
        case .imported: what = "a google-authenticator secret was imported"
        case .recoveryCodesRegenerated: what = "new recovery codes were made (the old ones no longer work)"
        case .recoveryCodeUsed: what = "a recovery code was used"
        case .methodAdded: what = "the login method \(method) was added or changed"
        case .methodRemoved: what = "the login method \(method) was removed"
        case .methodPreferred: what = "the preferred login method is now \(method)"
        }
        for address in addresses {
            let text = DeliveryMessage.noticeEmail(to: address, from: config.emailFrom, account: account(user), what: what,
                                                   when: UTCTime.format(environment.now()))
            _ = send(text, method: .email, to: address, user: user, purpose: "notice \(event.rawValue)", session: nil) { _ in nil }
        }
    }

    /// Remembers the user's email address before a change removes it, so the notice still reaches it.
    func noteNoticeAddress(_ user: UserName, _ address: String?) {
        guard let address else { return }
        // Bounded like every per-name book: a few addresses per user, a capped number of users.
        if delivery.alsoNotify[user.value] == nil && delivery.alsoNotify.count >= DeliveryBook.maximumKeys { return }
        if (delivery.alsoNotify[user.value]?.count ?? 0) >= 8 { return }
        delivery.alsoNotify[user.value, default: []].append(address)
    }
}

extension String {
    func trimmed(of set: String) -> String {
        var view = self[...]
        while let f = view.first, set.contains(f) { view = view.dropFirst() }
        while let l = view.last, set.contains(l) { view = view.dropLast() }
        return String(view)
    }
}

extension Authority {
    /// Sends a confirmation code for `key` (a method being added, new recovery codes for a user
    /// without an app) to `address`: within the per-key and per-sender send limits, kept as a
    /// salted HMAC, revoked if the sending fails. `label` names the purpose in the log, `purpose`
    /// in the message, `hint` what to check when it cannot be sent.
    func sendConfirmationCode(key: String, method: LoginMethod, address: String, user: UserName, peer: Peer,
                              label: String, purpose: String, hint: String) -> Step {
        let now = environment.now()
        let masked = DeliveryAddress.masked(address, method: method)
        delivery.confirmations.sweep(now: now)
        let left = delivery.confirmations.sendsLeft(key, now: now)
        guard left.count > 0 else {
            let when = left.nextAt.map { "; try again from \(UTCTime.format($0))" } ?? ""
            return .finish(.error(.tooManyCodes, message: "\(DeliveryBook.maximumSends) codes were sent to \(masked) in the last \(DeliveryBook.sendWindow / 60) minutes\(when)"))
        }
        let code: String, salt: [UInt8]
        do {
            code = try makeDeliveredCode()
            salt = try environment.randomBytes(16)
        } catch {
            return .finish(storageError(error))
        }
        if let refusal = codeSendRefusal(method, to: address, sender: sender(ofCommand: peer), user: user, purpose: label) {
            return .finish(.error(.tooManyCodes, message: refusal))
        }
        delivery.confirmations.issue(key, code: code, salt: salt, now: now)
        let text = method == .email
            ? DeliveryMessage.codeEmail(code: code, to: address, from: config.emailFrom, account: account(user), purpose: purpose,
                                        minutes: Self.deliveryMinutes)
            : DeliveryMessage.codeSMS(code: code, account: account(user), purpose: purpose, minutes: Self.deliveryMinutes)
        let failed: (String) -> Step = { why in
            .finish(.error(.deliveryFailed, message: "could not send a code to \(masked)\(why); \(hint)"))
        }
        return send(text, method: method, to: address, user: user, purpose: label, session: nil) { [unowned self] outcome in
            guard outcome == .sent else {
                self.delivery.confirmations.revoke(key)
                return failed(" (\(outcome.logText))")
            }
            return .finish(.done(message: "A code was sent to \(masked); it is valid for \(Self.deliveryMinutes) minutes."))
        } ?? failed("")
    }
}
