// SPDX-License-Identifier: Apache-2.0
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


/// The rules: who may ask what, which login needs a code, which code is right. Owns no socket.
/// It holds what logins (`login`, LoginFlow*.swift) and the CLI's requests (Requests.swift) share:
/// everything they read from the outside is injected here (config, store, clock and accounts in
/// `environment`, the notifier), so both can be driven by tests without a socket, root or a clock.
public final class Authority {
    public var config: DaemonConfig
    let store: any FactorStore
    let environment: DaemonEnvironment
    let logger: Logger
    let books: any Bookkeeper
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
    /// The login state machine (LoginFlow.swift); the rest of this type is what logins and the
    /// admin verbs share.
    public private(set) lazy var login = LoginFlow(self)
    /// The CLI's requests (Requests.swift): root's verbs, the user's own, email/SMS methods.
    public private(set) lazy var admin = AdminVerbs(self)
    public private(set) lazy var selfService = SelfService(self)
    public private(set) lazy var methods = MethodService(self)
    /// `mode = audit`: the records of what logins would have got (LoginFlow+Audit.swift, AuditReport.swift).
    public private(set) lazy var audit = AuditLog(openFiles: { [unowned self] () throws(StoreError) -> FileStore in try self.invites.stateFiles() })

    /// `notifier`: the runner of `notify_command` and the delivery commands; a new one by default.
    public init(config: DaemonConfig, store: any FactorStore, environment: DaemonEnvironment, logger: Logger,
                notifier: Notifier? = nil) throws(StoreError) {
        self.config = config
        self.store = store
        self.environment = environment
        self.logger = logger
        self.books = try openBookkeeper(store: store, logger: logger, now: environment.now(), failureWindow: config.failureWindow)
        self.invites = InviteKeeper(store: store, stateDirectory: config.stateDirectory, logger: logger)
        self.notifier = notifier ?? Notifier(logger: logger)
        self.notifier.onEvent = { [unowned self] event, user, metadata in self.sendNotice(event, user: user, metadata: metadata) }
        books.onStorageError = { [unowned self] error in self.logStorageError(error) }
    }

    /// Gathers the facts for the policy (user file, NSS groups, books) and evaluates it. With
    /// `sideEffects`, an unenrolled user who needs MFA is remembered as seen (grace starts now).
    /// `trustedSSHKey`: what LoginFlow+TrustedSSHKeys.swift found in sshd's auth info, if anything.
    func evaluate(_ resolved: ResolvedAccount, service: String, rhost: String, sideEffects: Bool,
                  trustedSSHKey: String? = nil) throws(StoreError) -> (outcome: PolicyOutcome, record: UserRecord?) {
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
        var facts = LoginFacts(user: user.value, service: service, rhost: rhost, groups: groups, enrolled: record != nil,
                               firstSeen: firstSeen, userLockedUntil: books.userLockedUntil(user.value, now: now),
                               rhostBlockedUntil: books.rhostBlockedUntil(rhost, now: now), now: now,
                               trustedSSHKey: trustedSSHKey)
        facts.remembered = record?.remembered ?? []
        return (Policy.evaluate(config, facts), record)
    }
    // MARK: logins, delegated to the login flow (kept for the server's calls)

    public func beginLogin(_ request: LoginBegin, peer: Peer) -> Step { login.begin(request, peer: peer) }
    public func continueLogin(_ typed: String, in session: LoginSession) -> Step { login.answer(typed, in: session) }
    public func cancelled(_ session: LoginSession) { login.cancelled(session) }
    public func refusedAnswer(in session: LoginSession) -> Step { login.refusedAnswer(in: session) }

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
}
