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
    public var request: LoginBegin
    public var user: UserName
    public var peer: Peer
}

/// The outcome of one request: frames to send, and whether the login continues.
public enum Step: Sendable {
    /// Send the frame and wait for the client's REPLY.
    case ask(DaemonMessage, LoginSession)
    /// Send the frame and close the connection.
    case finish(DaemonMessage)
}

/// The rules: who may ask what, which login needs a code, which code is right. Owns no socket.
public final class Authority {
    public var config: DaemonConfig
    let store: FileStore
    let environment: DaemonEnvironment
    let logger: Logger
    public static let prompt = "Verification code: "

    public init(config: DaemonConfig, store: FileStore, environment: DaemonEnvironment, logger: Logger) {
        self.config = config
        self.store = store
        self.environment = environment
        self.logger = logger
    }

    // MARK: login

    public func beginLogin(_ request: LoginBegin, peer: Peer) -> Step {
        func verdict(_ result: VerdictResult, _ reason: String, user: String? = nil) -> Step {
            logDecision(request, user: user ?? "-", peer: peer, result: result, reason: reason)
            return .finish(.verdict(result, reason: reason))
        }
        guard request.version == WireProtocol.version else {
            return verdict(.unavailable, "unsupported protocol version \(request.version)")
        }
        let user: UserName
        do {
            user = try UserName(validating: request.user)
        } catch {
            // The raw name is not logged: a user who typed a password into the login field would leak it.
            return verdict(.denied, "invalid user name (\(error))")
        }
        guard mayActFor(user, peer: peer) else {
            return verdict(.denied, "peer \(peer) may not ask about another user", user: user.value)
        }
        if config.mode == .off { return verdict(.ignore, "mode off", user: user.value) }
        let record: UserRecord?
        do {
            record = try store.load(user)
        } catch {
            logger.error("\(error)")
            return verdict(.unavailable, "user file unusable", user: user.value)
        }
        switch Policy.decide(mode: config.mode, enrolled: record != nil) {
        case .ignore(let reason): return verdict(.ignore, reason, user: user.value)
        case .deny(let reason): return verdict(.denied, reason, user: user.value)
        case .offerEnrollment(let mandatory):
            // Enrollment at login is not built yet (issue 4): behave as the plain mode table says.
            return mandatory ? verdict(.denied, "not enrolled, mode required", user: user.value)
                             : verdict(.ignore, "not enrolled, mode optional", user: user.value)
        case .askForCode:
            let session = LoginSession(request: request, user: user, peer: peer)
            return .ask(.converse([ConversationMessage(.promptEchoOff, Authority.prompt)]), session)
        }
    }

    /// Checks the answer against a fresh read of the file (another login may have used a code
    /// meanwhile) and makes the new replay state durable before answering success.
    public func answer(_ typed: String, in session: LoginSession) -> DaemonMessage {
        func verdict(_ result: VerdictResult, _ reason: String) -> DaemonMessage {
            logDecision(session.request, user: session.user.value, peer: session.peer, result: result, reason: reason)
            return .verdict(result, reason: reason)
        }
        let record: UserRecord?
        do {
            record = try store.load(session.user)
        } catch {
            logger.error("\(error)")
            return verdict(.unavailable, "user file unusable")
        }
        guard var record else { return verdict(.denied, "enrollment removed during login") }
        let now = environment.now()
        let compact = typed.filter { $0 != " " && $0 != "\t" }
        if !compact.isEmpty && compact.allSatisfy({ $0.isASCII && $0.isNumber }) {
            if let step = OTP.matchTOTP(code: compact, secret: record.secret, unixTime: now, parameters: record.parameters,
                                        window: config.window, lastUsedStep: record.lastUsedStep) {
                record.lastUsedStep = step
                record.lastSuccess = now
                return persist(record, then: verdict(.success, "totp"), else: verdict)
            }
            let replay = OTP.matchTOTP(code: compact, secret: record.secret, unixTime: now, parameters: record.parameters,
                                       window: config.window, lastUsedStep: nil) != nil
            return verdict(.denied, replay ? "replayed code" : "wrong code")
        }
        if let index = RecoveryCodes.match(typed: typed, stored: record.recoveryCodes) {
            record.recoveryCodes.remove(at: index)
            record.lastSuccess = now
            return persist(record, then: verdict(.success, "recovery code, \(record.recoveryCodes.count) left"), else: verdict)
        }
        return verdict(.denied, "wrong code")
    }

    func persist(_ record: UserRecord, then success: @autoclosure () -> DaemonMessage,
                 else failure: (VerdictResult, String) -> DaemonMessage) -> DaemonMessage {
        do {
            try store.save(record)
        } catch {
            logger.error("\(error)")
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
        do { user = try UserName(validating: request.user) } catch {
            return .error(.invalidUserName, message: "\(error)")
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
            let secret: [UInt8]
            if request.secret.isEmpty {
                secret = try environment.randomBytes(20)
            } else {
                guard let decoded = Base32.decode(request.secret), decoded.count >= 10, decoded.count <= 128 else {
                    return .error(.invalidSecret, message: "the secret must be base32 (A-Z, 2-7) of 80 to 1024 bits")
                }
                secret = decoded
            }
            var shown: [String] = []
            var hashed: [RecoveryCodes.Hashed] = []
            while shown.count < RecoveryCodes.count {
                guard let code = RecoveryCodes.makeCode(randomBytes: try environment.randomBytes(32)) else { continue }
                shown.append(code)
                hashed.append(RecoveryCodes.hash(normalizedCode: RecoveryCodes.normalize(code) ?? code,
                                                 salt: try environment.randomBytes(16)))
            }
            let record = UserRecord(user: user, parameters: .standard, secret: secret, created: environment.now(),
                                    recoveryCodes: hashed)
            try store.save(record)
            logger.notice("enrolled", metadata: ["user": "\(user)", "peer": "\(peer)", "by": "admin"])
            let host = environment.hostName
            let uri = OTPAuthURI.totp(secret: secret, issuer: host, account: "\(user.value)@\(host)", parameters: .standard)
            return .enrolled(EnrolledReply(user: user.value, secret: Base32.encode(secret), otpauthURI: uri, recoveryCodes: shown))
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
            guard let own = Accounts.name(ofUID: peer.uid) else {
                return .error(.invalidUserName, message: "your uid \(peer.uid) has no user name; pass --user")
            }
            raw = own
        } else {
            raw = requested
        }
        let user: UserName
        do { user = try UserName(validating: raw) } catch { return .error(.invalidUserName, message: "\(error)") }
        guard mayActFor(user, peer: peer) else {
            return refuse(.notAllowed, "you may only ask about your own enrollment (or run as root)", peer: peer, action: "status")
        }
        do {
            let record = try store.load(user)
            return .status(StatusReply(user: user.value, enrolled: record != nil, recoveryCodesLeft: record?.recoveryCodes.count ?? 0))
        } catch {
            logger.error("\(error)")
            return .error(.storageFailure, message: "\(error)")
        }
    }

    // MARK: helpers

    /// Root may act for anyone; anyone else only for the account whose uid they run as.
    func mayActFor(_ user: UserName, peer: Peer) -> Bool {
        if peer.isRoot { return true }
        return Accounts.uid(ofUser: user.value) == peer.uid
    }

    func refuse(_ code: ErrorCode, _ message: String, peer: Peer, action: String) -> DaemonMessage {
        logger.warning("refused", metadata: ["action": "\(action)", "peer": "\(peer)", "reason": "\(message)"])
        return .error(code, message: message)
    }

    func logDecision(_ request: LoginBegin, user: String, peer: Peer, result: VerdictResult, reason: String) {
        let level: Logger.Level = result == .success || result == .ignore ? .info : .notice
        logger.log(level: level, "login", metadata: [
            "user": "\(user)", "service": "\(loggable(request.service))", "rhost": "\(loggable(request.rhost))",
            "peer": "\(peer)", "result": "\(result)", "reason": "\(reason)",
        ])
    }
}
