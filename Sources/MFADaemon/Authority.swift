#if canImport(Glibc)
import Glibc
#endif
import CMFASys
import Logging
import MFACore
import MFAProtocol
import MFAStore

/// What the daemon needs from the outside world, injected so the rules can be tested with a fixed clock.
public struct DaemonEnvironment: Sendable {
    public var now: @Sendable () -> Int64
    public var randomBytes: @Sendable (Int) throws -> [UInt8]
    public var hostName: String
    /// Who a typed name is (AccountDirectory.swift); NSS in the daemon, a table in unit tests.
    public var accounts: AccountDirectory = .nss

    public static let live = DaemonEnvironment(
        now: {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            return Int64(ts.tv_sec)
        },
        randomBytes: { try Crypto.randomBytes($0) },
        hostName: Accounts.hostName())
}

/// A login waiting for the user's answer.
public struct LoginSession: Sendable {
    /// What the answer is for.
    public enum Purpose: Sendable {
        /// A TOTP or recovery code.
        case code
        /// Locked out: the prompt looks the same, but no code is checked, so right and wrong
        /// codes get the same answer in the same time; only a recovery code is (LockoutRecovery.swift).
        case locked(until: Int64, reason: String)
        /// The grace-period notice was shown; Enter continues without a code.
        case graceNotice(until: Int64)
        /// Enrollment offered at login (issue 4, EnrollmentAtLogin.swift): a code confirms the new secret.
        case enrolling(LoginEnrollment)
        /// A code was sent by email or SMS (issue 10, Delivery.swift); `resend`, the code, a TOTP or
        /// a recovery code may be typed.
        case delivered(DeliveredLogin)
    }
    public var request: LoginBegin
    /// The account's canonical name (NSS's pw_name), not necessarily the spelling in `request.user`.
    public var user: UserName
    public var peer: Peer
    public var purpose: Purpose = .code
    /// This login typed a right invite code (`enroll_at_login = invite`).
    public var invited = false
}

/// The outcome of one request: frames to send, and whether the login continues.
public enum Step: Sendable {
    /// Send the frame and wait for the client's REPLY.
    case ask(DaemonMessage, LoginSession)
    /// Send the frame and close the connection.
    case finish(DaemonMessage)
    /// Close the connection without a verdict: the store's backend (the fleet database) is
    /// unreachable, and the PAM module then answers per its `failmode`, as for a daemon that is down.
    case abandon(reason: String)
    /// Send nothing yet: a delivery command runs; the server asks `deliveryEnded` for the next step.
    case awaitDelivery(token: Int)
}

/// The rules: who may ask what, which login needs a code, which code is right. Owns no socket.
public final class Authority {
    public var config: DaemonConfig
    let store: any FactorStore
    let environment: DaemonEnvironment
    let logger: Logger
    let books: Bookkeeper
    /// Self-service enrollments waiting for their confirming code (memory only, SelfService.swift).
    var pending = PendingEnrollments()
    /// Logs enrollment changes and runs `notify_command` (Notifier.swift).
    public let notifier: Notifier
    /// Delivered codes, methods being added, deliveries in flight (Delivery.swift; memory only).
    let delivery = DeliveryState()
    /// One-time invites of `enroll_at_login = invite` (Invites.swift).
    let invites: InviteKeeper
    /// Lines a peer can cause at will, limited per kind (RefusalLog.swift).
    var logLimiter = LogRateLimiter()
    public static let prompt = "Verification code: "
    public static let continuePrompt = "Press Enter to continue: "

    public init(config: DaemonConfig, store: any FactorStore, environment: DaemonEnvironment, logger: Logger) throws(StoreError) {
        self.config = config
        self.store = store
        self.environment = environment
        self.logger = logger
        self.books = try Bookkeeper(store: store, logger: logger, now: environment.now(), failureWindow: config.failureWindow)
        self.invites = InviteKeeper(store: store, stateDirectory: config.stateDirectory, logger: logger)
        self.notifier = Notifier(logger: logger)
        notifier.onEvent = { [unowned self] event, user, metadata in self.sendNotice(event, user: user, metadata: metadata) }
        books.onStorageError = { [unowned self] error in self.logStorageError(error) }
    }

    // MARK: login

    public func beginLogin(_ request: LoginBegin, peer: Peer) -> Step {
        var loggedName = "-"
        let step = decideLogin(request, peer: peer, loggedName: &loggedName)
        return abandonedIfBackendFailed(step, request, user: loggedName, peer: peer)
    }

    /// A verdict built while the fleet database failed may rest on missing facts (a lockout not
    /// read, a used code not recorded): the login is closed without one, and `failmode` decides.
    /// `user` is the canonical name, or "-" when the typed one led to no account.
    func abandonedIfBackendFailed(_ step: Step, _ request: LoginBegin, user: String, peer: Peer) -> Step {
        guard store.backendFailedInRequest else { return step }
        let reason = "fleet database unavailable, left to the module's failmode"
        logger.log(level: .notice, "login", metadata: [
            "user": "\(user)", "service": "\(loggable(request.service))", "rhost": "\(loggable(request.rhost))",
            "peer": "\(peer)", "result": "abandoned", "reason": "\(reason)",
        ])
        return .abandon(reason: reason)
    }

    func decideLogin(_ request: LoginBegin, peer: Peer, loggedName: inout String) -> Step {
        func verdict(_ result: VerdictResult, _ reason: String, user: String? = nil) -> Step {
            logDecision(request, user: user ?? "-", peer: peer, result: result, reason: reason)
            return .finish(.verdict(result, reason: reason))
        }
        guard request.version == WireProtocol.version else {
            return verdict(.unavailable, "unsupported protocol version \(request.version)")
        }
        // The typed name is never logged: a user who typed a password into the login field would
        // leak it. Once NSS has named the account, its own name is.
        let resolved: ResolvedAccount
        switch resolveAccount(request.user) {
        case .success(let r): resolved = r
        case .failure(let refusal):
            if config.mode == .off, refusal.isAboutTheAccount { return verdict(.ignore, "mode off") }
            if case .unavailable = refusal { return verdict(.unavailable, refusal.sentence) }
            return verdict(.denied, refusal.sentence)
        }
        let user = resolved.user
        loggedName = user.value
        guard mayActFor(resolved.account, peer: peer) else {
            // Not a login of that user (no PAM stack runs as another user): a refusal, rate-limited.
            logLimited(.notOwnAccount, .notice, "login", metadata: ["user": "\(user)", "peer": "\(peer)", "result": "denied",
                                                                    "reason": "peer may not ask about another user"])
            return .finish(.verdict(.denied, reason: "peer \(peer) may not ask about another user"))
        }
        if config.mode == .off { return verdict(.ignore, "mode off", user: user.value) }
        let outcome: PolicyOutcome
        let record: UserRecord?
        do {
            (outcome, record) = try evaluate(resolved, service: request.service, rhost: request.rhost, sideEffects: true)
        } catch {
            // A database outage is logged once by the store, not at every login.
            if !store.backendFailedInRequest { logStorageError(error) }
            return verdict(.unavailable, "user file unusable", user: user.value)
        }
        let session = LoginSession(request: request, user: user, peer: peer)
        switch outcome.decision {
        case .ignore(let reason): return verdict(.ignore, reason, user: user.value)
        case .deny(let reason): return verdict(.denied, reason, user: user.value)
        case .offerEnrollment(let mandatory):
            return offerEnrollment(request, user: user, peer: peer, mandatory: mandatory)
        case .askForCode:
            if let delivered = beginDeliveredLogin(session, record: record) { return delivered }
            return .ask(.converse([ConversationMessage(.promptEchoOff, Authority.prompt)]), session)
        case .locked(let until, let reason):
            var locked = session
            locked.purpose = .locked(until: until, reason: reason)
            return .ask(.converse([ConversationMessage(.promptEchoOff, Authority.prompt)]), locked)
        case .grace(let until):
            var notice = session
            notice.purpose = .graceNotice(until: until)
            let text = "Multi-factor authentication is required for \(user.value) on this host from \(UTCTime.format(until)). "
                + "Until then you may log in without a code. Set it up now with: mfagate enroll"
            return .ask(.converse([ConversationMessage(.textInfo, text), ConversationMessage(.promptEchoOn, Authority.continuePrompt)]), notice)
        }
    }

    /// Gathers the facts for the policy (user file, NSS groups, books) and evaluates it. With
    /// `sideEffects`, an unenrolled user who needs MFA is remembered as seen (grace starts now).
    func evaluate(_ resolved: ResolvedAccount, service: String, rhost: String, sideEffects: Bool) throws(StoreError) -> (outcome: PolicyOutcome, record: UserRecord?) {
        let now = environment.now()
        let user = resolved.user
        let record = try store.load(user)
        let needsGroups = !config.requireGroups.isEmpty || !config.exemptGroups.isEmpty
        let groups = needsGroups ? environment.accounts.groups(resolved.account) : []
        var firstSeen = books.firstSeenTime(user.value)
        if record == nil && config.gracePeriod > 0 && firstSeen == nil
            && Policy.requirement(config, user: user.value, groups: groups).required == true {
            firstSeen = sideEffects ? books.noteFirstSeen(user.value, now: now) : now
        }
        let facts = LoginFacts(user: user.value, service: service, rhost: rhost, groups: groups, enrolled: record != nil,
                               firstSeen: firstSeen, userLockedUntil: books.userLockedUntil(user.value, now: now),
                               rhostBlockedUntil: books.rhostBlockedUntil(rhost, now: now), now: now)
        return (Policy.evaluate(config, facts), record)
    }

    /// The next step after the user's answer: another round while enrolling, else the verdict.
    public func continueLogin(_ typed: String, in session: LoginSession) -> Step {
        let step: Step
        switch session.purpose {
        case .enrolling(let state): step = continueEnrollment(typed, in: session, state)
        case .delivered(let state): step = continueDeliveredLogin(typed, in: session, state)
        default: step = .finish(answer(typed, in: session))
        }
        return abandonedIfBackendFailed(step, session.request, user: session.user.value, peer: session.peer)
    }

    /// Checks the answer against a fresh read of the file (another login may have used a code
    /// meanwhile) and makes the new replay state durable before answering success.
    public func answer(_ typed: String, in session: LoginSession) -> DaemonMessage {
        func verdict(_ result: VerdictResult, _ reason: String) -> DaemonMessage {
            logDecision(session.request, user: session.user.value, peer: session.peer, result: result, reason: reason)
            return .verdict(result, reason: reason)
        }
        let now = environment.now()
        switch session.purpose {
        case .locked(let until, let reason):
            if let recovered = recoveryWhileLocked(typed, in: session, now: now) { return recovered }
            return verdict(.locked, "\(reason), locked until \(UTCTime.format(until))")
        case .graceNotice(let until):
            return verdict(.ignore, "not enrolled, in grace period until \(UTCTime.format(until))")
        case .enrolling:
            return verdict(.denied, "enrollment answer out of order")
        case .delivered:
            return verdict(.denied, "answer out of order")
        case .code:
            break
        }
        // Locked while the user was typing (parallel guesses): nothing more is checked.
        if let until = books.rhostBlockedUntil(session.request.rhost, now: now) ?? books.userLockedUntil(session.user.value, now: now) {
            if let recovered = recoveryWhileLocked(typed, in: session, now: now) { return recovered }
            return verdict(.locked, "too many wrong codes, locked until \(UTCTime.format(until))")
        }
        switch checkAgainstStore(session, now: now, { checkFactor(typed, against: $0, now: now) }) {
        case .answered(let message):
            return message
        case .rejected(let denial):
            let message = verdict(.denied, denial)
            books.recordFailure(user: session.user.value, rhost: session.request.rhost, config: config, now: now)
            return message
        }
    }

    /// What `checkAgainstStore` made of an answer.
    enum StoredCheck {
        /// The verdict to send (success once the new state is saved, or why it could not be).
        case answered(DaemonMessage)
        /// The answer is wrong; the caller counts the failure.
        case rejected(reason: String)
    }

    /// Checks an answer against a fresh read of the record and saves what it changed before success
    /// is granted. Fleet mode: another host may use the same code between our read and our write;
    /// the write is then refused (compare-and-swap) and the answer checked again against what that
    /// host wrote, so a time step or recovery code is accepted once fleet-wide.
    func checkAgainstStore(_ session: LoginSession, now: Int64, _ check: (UserRecord) -> FactorCheck) -> StoredCheck {
        func verdict(_ result: VerdictResult, _ reason: String) -> DaemonMessage {
            logDecision(session.request, user: session.user.value, peer: session.peer, result: result, reason: reason)
            return .verdict(result, reason: reason)
        }
        var attemptsLeft = 3
        while true {
            let record: UserRecord?
            do {
                record = try store.load(session.user)
            } catch {
                if !store.backendFailedInRequest { logger.error("\(error)") }
                return .answered(verdict(.unavailable, "user file unusable"))
            }
            guard let record else { return .answered(verdict(.denied, "enrollment removed during login")) }
            switch check(record) {
            case .accepted(let updated, let reason, let usedRecoveryCode):
                attemptsLeft -= 1
                guard let message = persist(updated, learntFrom: record, retryingConflict: attemptsLeft > 0,
                                            then: succeeded(verdict(.success, reason), session, now), else: verdict) else {
                    logger.info("another host changed the record meanwhile; checking the code again", metadata: ["user": "\(session.user)"])
                    continue
                }
                if usedRecoveryCode, case .verdict(.success, _) = message { notifyRecoveryCodeUsed(session) }
                return .answered(message)
            case .rejected(let reason):
                return .rejected(reason: reason)
            }
        }
    }

    func notifyRecoveryCodeUsed(_ session: LoginSession) {
        notifier.notify(.recoveryCodeUsed, user: session.user, command: config.notifyCommand,
                        metadata: ["service": "\(loggable(session.request.service))"])
    }

    func succeeded(_ message: DaemonMessage, _ session: LoginSession, _ now: Int64) -> DaemonMessage {
        books.recordSuccess(user: session.user.value, config: config, now: now)
        return message
    }

    /// Saves the new replay state before success is granted. Learnt drift is a comfort, the replay
    /// state a guarantee: if the whole record cannot be written (a full disk), the replay state alone
    /// is tried (it goes to the pre-allocated journal), keeping the old drift. nil: another host
    /// changed the record meanwhile (fleet) and `retryingConflict` asks the caller to check again.
    func persist(_ record: UserRecord, learntFrom original: UserRecord? = nil, retryingConflict: Bool = false,
                 then success: @autoclosure () -> DaemonMessage,
                 else failure: (VerdictResult, String) -> DaemonMessage) -> DaemonMessage? {
        do {
            try store.save(record)
        } catch .conflict(let user) {
            if retryingConflict { return nil }
            logger.warning("\(user): changed by other hosts at every try; refusing this login's code")
            return failure(.denied, "record changed by another host")
        } catch {
            if !store.backendFailedInRequest { logger.error("\(error)") }
            if let original, original.drift != record.drift {
                var replayOnly = record
                replayOnly.drift = original.drift
                if (try? store.save(replayOnly)) != nil { return success() }
            }
            return failure(.unavailable, "could not record the used code")
        }
        return success()
    }

    public func cancelled(_ session: LoginSession) {
        logDecision(session.request, user: session.user.value, peer: session.peer, result: .denied, reason: "conversation cancelled")
    }

    // MARK: enrollment and status

    public func enroll(_ request: EnrollRequest, peer: Peer) -> DaemonMessage {
        guard request.version == WireProtocol.version else { return .error(.unsupportedVersion, message: "the daemon speaks protocol version \(WireProtocol.version); upgrade the mfagate command") }
        guard peer.isRoot else {
            return refuse(.notAllowed, "only root may provision an enrollment for a user", peer: peer, action: "enroll")
        }
        let user: UserName
        switch resolveAccount(request.user) {
        case .success(let resolved): user = resolved.user
        case .failure(let refusal): return refusal.message
        }
        do {
            if try store.load(user) != nil && !request.replaceExisting {
                return .error(.alreadyEnrolled, message: "\(user) is already enrolled; pass --force to replace the enrollment")
            }
        } catch {
            // A damaged file may be replaced only on purpose.
            if !request.replaceExisting { return .error(.storageFailure, message: "\(error); pass --force to replace it") }
        }
        do {
            guard let secret = try secretBytes(request.secret) else { return Authority.invalidSecret }
            let method: OTPMethod = request.method == .hotp ? .hotp : .totp
            var counter: UInt64 = 0
            if method == .hotp && !request.counter.isEmpty {
                guard let c = UInt64(request.counter) else { return .error(.badRequest, message: "the counter must be a whole number ≥ 0") }
                counter = c
            }
            let codes = try makeRecoveryCodes()
            let record = UserRecord(user: user, parameters: .standard, secret: secret, created: environment.now(),
                                    recoveryCodes: codes.hashed, method: method, counter: counter)
            try store.save(record)
            pending.remove(user)
            notifier.notify(.enrolled, user: user, command: config.notifyCommand, metadata: ["peer": "\(peer)", "by": "admin"])
            let uri = otpauthURI(user: user, method: method, secret: secret, counter: counter)
            return .enrolled(EnrolledReply(user: user.value, secret: Base32.encode(secret), otpauthURI: uri, recoveryCodes: codes.shown))
        } catch let error as StoreError {
            logger.error("\(error)")
            return .error(.storageFailure, message: "\(error)")
        } catch {
            logger.error("\(error)")
            return .error(.storageFailure, message: "\(error)")
        }
    }

    public func status(user requested: String, version: UInt8, peer: Peer) -> DaemonMessage {
        guard version == WireProtocol.version else { return .error(.unsupportedVersion, message: "the daemon speaks protocol version \(WireProtocol.version); upgrade the mfagate command") }
        let raw: String
        if requested.isEmpty {
            guard let own = environment.accounts.nameOfUID(peer.uid) else {
                return .error(.invalidUserName, message: "your uid \(peer.uid) has no user name; pass --user")
            }
            raw = own
        } else {
            raw = requested
        }
        let user: UserName
        switch resolveAccount(raw) {
        case .success(let resolved):
            guard mayActFor(resolved.account, peer: peer) else {
                return refuse(.notAllowed, "you may only ask about your own enrollment (or run as root)", peer: peer, action: "status")
            }
            user = resolved.user
        case .failure(let refusal):
            // Root may look at what is stored under a name NSS no longer knows.
            guard let stored = storedName(raw, after: refusal, peer: peer) else { return refusal.message }
            user = stored
        }
        do {
            return .status(summary(user, try store.load(user), now: environment.now()))
        } catch {
            logger.error("\(error)")
            return .error(.storageFailure, message: "\(error)")
        }
    }

    // MARK: policy administration

    public func check(user raw: String, service: String, rhost: String, version: UInt8, peer: Peer) -> DaemonMessage {
        guard version == WireProtocol.version else { return .error(.unsupportedVersion, message: "the daemon speaks protocol version \(WireProtocol.version); upgrade the mfagate command") }
        guard peer.isRoot else {
            return refuse(.notAllowed, "only root may ask how the policy treats a user", peer: peer, action: "check")
        }
        let resolved: ResolvedAccount
        switch resolveAccount(raw) {
        case .success(let r): resolved = r
        case .failure(let refusal): return refusal.message
        }
        do {
            let (outcome, record) = try evaluate(resolved, service: service, rhost: rhost, sideEffects: false)
            var decision = outcome.decision
            // enroll_at_login = invite: without an invite the screen is not shown (EnrollmentAtLogin.swift).
            if case .offerEnrollment(let mandatory) = decision, config.enrollAtLoginNeedsInvite,
               !invites.hasInvite(resolved.user, now: environment.now()) {
                decision = mandatory ? .deny(reason: "not enrolled, no invite") : .ignore(reason: "not enrolled, no invite")
            }
            var until: Int64 = 0
            let reason: String
            switch decision {
            case .askForCode: reason = "a verification code is needed"
            case .offerEnrollment(let mandatory):
                reason = mandatory ? "not enrolled: must enroll at this login" : "not enrolled: may enroll at this login or skip"
            case .ignore(let why): reason = "no code needed (\(why))"
            case .deny(let why): reason = "login refused (\(why))"
            case .grace(let t): until = t; reason = "not enrolled, in grace period: no code needed until \(UTCTime.format(t))"
            case .locked(let t, let why): until = t; reason = "locked out (\(why)) until \(UTCTime.format(t))"
            }
            let effective = config.mode == .off ? "no code needed (mode off)" : reason
            return .checked(CheckReply(decision: decision.word, reason: effective, rule: outcome.rule, until: until,
                                       enrolled: record != nil))
        } catch {
            logger.error("\(error)")
            return .error(.storageFailure, message: "\(error)")
        }
    }

    public func unlock(user raw: String, rhost: String, version: UInt8, peer: Peer) -> DaemonMessage {
        guard version == WireProtocol.version else { return .error(.unsupportedVersion, message: "the daemon speaks protocol version \(WireProtocol.version); upgrade the mfagate command") }
        guard peer.isRoot else {
            return refuse(.notAllowed, "only root may unlock", peer: peer, action: "unlock")
        }
        var user: String? = nil
        if !raw.isEmpty {
            switch resolveForRemoval(raw, peer: peer) {
            case .success(let u): user = u.value
            case .failure(let refusal): return refusal.message
            }
        }
        if !rhost.isEmpty && LockoutBook.rhostKey(rhost) == nil {
            return .error(.badRequest, message: "\"\(loggable(rhost))\" is not an address")
        }
        let cleared = books.unlock(user: user, rhost: rhost.isEmpty ? nil : rhost, config: config, now: environment.now())
        if store.backendFailedInRequest {
            return .error(.storageFailure, message: "the fleet database is unreachable; nothing was unlocked (try again when it is back)")
        }
        let what = cleared.isEmpty ? "nothing was locked" : "unlocked " + cleared.joined(separator: " and ")
        logger.notice("unlock", metadata: ["user": "\(user ?? "-")", "rhost": "\(loggable(rhost))", "peer": "\(peer)", "result": "\(what)"])
        return .done(message: what)
    }

    // MARK: helpers

    static let invalidSecret = DaemonMessage.error(.invalidSecret, message: "the secret must be base32 (A-Z, 2-7) of 80 to 1024 bits")

    /// A new 160-bit secret when `text` is empty, else the given base32 one; nil if that is not
    /// base32 of 80 to 1024 bits.
    func secretBytes(_ text: String) throws -> [UInt8]? {
        if text.isEmpty { return try environment.randomBytes(20) }
        guard let decoded = Base32.decode(text), decoded.count >= 10, decoded.count <= 128 else { return nil }
        return decoded
    }

    func refuse(_ code: ErrorCode, _ message: String, peer: Peer, action: String) -> DaemonMessage {
        logLimited(.refused, .warning, "refused", metadata: ["action": "\(action)", "peer": "\(peer)", "reason": "\(message)"])
        return .error(code, message: message)
    }

    func logDecision(_ request: LoginBegin, user: String, peer: Peer, result: VerdictResult, reason: String) {
        // Such a verdict is never sent: the login is logged as abandoned instead (abandonedIfBackendFailed).
        if store.backendFailedInRequest { return }
        let level: Logger.Level = result == .success || result == .ignore ? .info : .notice
        logger.log(level: level, "login", metadata: [
            "user": "\(user)", "service": "\(loggable(request.service))", "rhost": "\(loggable(request.rhost))",
            "peer": "\(peer)", "result": "\(result.logName)", "reason": "\(reason)",
        ])
    }
}
