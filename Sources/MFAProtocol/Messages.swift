// SPDX-License-Identifier: Apache-2.0
/// The messages of docs/protocol.md. The C shim implements the same table in mfg_frame.h.
public enum WireProtocol {
    public static let version: UInt8 = 1
    public static let maximumPayload = 65536
    public static let maximumConversationMessages = 8
    /// CONVERSE rounds the PAM module accepts in one login (MFG_MAX_ROUNDS); the daemon ends a
    /// login with a verdict before it asks for more.
    public static let maximumRounds = 8
    /// The frame header: a u32 big-endian payload length.
    public static let headerLength = 4
    /// LOGIN_BEGIN flags: bit 0 PAM_SILENT, bit 1 a u32 real uid follows the flags.
    public static let loginFlagSilent: UInt8 = 0x01
    public static let loginFlagRealUID: UInt8 = 0x02
    /// Bit 2: a str follows (after the real uid, if any): sshd's `SSH_AUTH_INFO_0` from the PAM
    /// environment, at most `maximumSSHAuthInfo` bytes (MFG_MAX_AUTH_INFO).
    public static let loginFlagSSHAuthInfo: UInt8 = 0x04
    public static let maximumSSHAuthInfo = 16384
    /// Bit 3: the module asks one combined question (`forward_pass`) and wants each code prompt
    /// marked with a `codeDigits` message.
    public static let loginFlagOnePrompt: UInt8 = 0x08
}

public enum MessageStyle: UInt8, Sendable {
    case promptEchoOff = 1, promptEchoOn = 2, errorMessage = 3, textInfo = 4
    /// Not shown: marks the round's prompt as a login code prompt and says how many digits the
    /// user's code has (decimal text, 1...10). Sent only to a module that set `loginFlagOnePrompt`.
    case codeDigits = 5
    public var isPrompt: Bool { self == .promptEchoOff || self == .promptEchoOn }
}

public struct ConversationMessage: Sendable, Equatable {
    public var style: MessageStyle
    public var text: String
    public init(_ style: MessageStyle, _ text: String) {
        self.style = style
        self.text = text
    }
}

public enum VerdictResult: UInt8, Sendable {
    case success = 0, denied = 1, ignore = 2, locked = 3, unavailable = 4
    /// The daemon is up but at one of its connection caps (docs/robustness.md, "Fair admission"):
    /// the module answers PAM_AUTHINFO_UNAVAIL whatever its failmode, so `failmode=safe` never
    /// turns "daemon busy" into "no second factor".
    case busy = 5
}

public enum ErrorCode: UInt16, Sendable {
    case badRequest = 1, notAllowed = 2, invalidUserName = 3, notEnrolled = 4, alreadyEnrolled = 5
    case invalidSecret = 6, storageFailure = 7, unsupportedVersion = 8
    /// Self-service (docs/protocol.md): the code proving the user, or confirming an enrollment, is wrong.
    case wrongCode = 9
    /// No pending enrollment to confirm (never begun, expired, or replaced).
    case noPendingEnrollment = 10
    /// An import file the daemon cannot use (the message says which line and why).
    case badImport = 11
    /// Delivery (issue 10): the method is not in the host's `methods`.
    case methodNotAllowed = 12
    /// An email address or phone number that cannot be used (the message says why).
    case badAddress = 13
    /// The code could not be sent (the command failed or timed out); the daemon's log says more.
    case deliveryFailed = 14
    /// Too many codes sent to this user recently; the message says when the next may go.
    case tooManyCodes = 15
}

public struct LoginBegin: Sendable, Equatable {
    public var version: UInt8
    public var user: String
    public var service: String
    public var rhost: String
    public var tty: String
    public var ruser: String
    public var silent: Bool
    /// The real uid of the process the module runs in (`getuid()`: in a setuid `su` or `sudo`, the
    /// invoking user), as the module reports it; nil from a module that does not send it. The
    /// daemon believes it only from a root peer (a user cannot load code into a setuid program).
    public var realUID: UInt32?
    /// The module splits one combined answer (password and code) itself (`forward_pass`).
    public var onePrompt: Bool
    /// `SSH_AUTH_INFO_0` from the PAM environment (sshd: the methods already passed, with their
    /// keys); nil when the module did not send it. The daemon reads it only from a root peer whose
    /// process has real uid 0 (sshd), never from a user's client or a setuid su/sudo.
    public var sshAuthInfo: String?
    public init(version: UInt8 = WireProtocol.version, user: String, service: String, rhost: String = "",
                tty: String = "", ruser: String = "", silent: Bool = false, realUID: UInt32? = nil,
                onePrompt: Bool = false, sshAuthInfo: String? = nil) {
        self.version = version
        self.onePrompt = onePrompt
        self.sshAuthInfo = sshAuthInfo
        self.realUID = realUID
        self.user = user
        self.service = service
        self.rhost = rhost
        self.tty = tty
        self.ruser = ruser
        self.silent = silent
    }
}

public struct EnrollRequest: Sendable, Equatable {
    public var version: UInt8
    public var user: String
    /// Base32; empty asks the daemon to generate a 160-bit secret.
    public var secret: String
    public var replaceExisting: Bool
    /// HOTP (counter-based token) instead of TOTP; `counter` is the token's next counter value.
    public var method: OTPMethodCode
    public var counter: String
    public init(version: UInt8 = WireProtocol.version, user: String, secret: String, replaceExisting: Bool,
                method: OTPMethodCode = .totp, counter: String = "") {
        self.version = version
        self.user = user
        self.secret = secret
        self.replaceExisting = replaceExisting
        self.method = method
        self.counter = counter
    }
}

public enum ClientMessage: Sendable, Equatable {
    case loginBegin(LoginBegin)
    case reply(answer: String)
    case cancel
    case enroll(EnrollRequest)
    /// Empty user: the peer's own. `remembered`: also list the user's live remembered logins
    /// (STATUS flag bit 0, RememberedHostMessages.swift); an older daemon does not know the flag.
    case status(version: UInt8, user: String, remembered: Bool = false)
    case enrollBegin(EnrollBeginRequest)
    case enrollConfirm(UserCodeRequest)
    case regenerateRecoveryCodes(UserCodeRequest)
    case disable(UserCodeRequest)
    case list(version: UInt8)
    case importGoogleAuthenticator(ImportRequest)
    /// What would a login of this user, service and address get now? (root; no side effects)
    /// `sshKey`: as if sshd reported a login with that key (CHECK flag bit 0, CheckSSHKeyMessages.swift).
    case check(version: UInt8, user: String, service: String, rhost: String, sshKey: CheckSSHKey? = nil)
    /// Clear the lockout of a user and/or an address (root; either may be empty).
    case unlock(version: UInt8, user: String, rhost: String)
    /// Email/SMS methods: add, confirm, list, prefer, remove (MethodMessages.swift).
    case method(MethodRequest)
    /// A one-time invite to enroll at login (root; InviteMessages.swift).
    case invite(InviteRequest)
    /// A summary of the `mode = audit` records (root; ReportMessages.swift).
    case report(ReportRequest)
    /// End the user's remembered logins (`remember`); empty user: the peer's own (others: root).
    case forget(version: UInt8, user: String)
}

/// The answer to `check`: the decision, the human reason, the rule that made it, and a deadline.
public struct CheckReply: Sendable, Equatable {
    /// A stable word: code, enroll, ignore, refuse, grace, locked.
    public var decision: String
    public var reason: String
    public var rule: String
    /// Unix time until which a grace period or lockout lasts; 0 if none.
    public var until: Int64
    public var enrolled: Bool
    public init(decision: String, reason: String, rule: String, until: Int64, enrolled: Bool) {
        self.decision = decision
        self.reason = reason
        self.rule = rule
        self.until = until
        self.enrolled = enrolled
    }
}

public struct EnrolledReply: Sendable, Equatable {
    public var user: String
    public var secret: String
    public var otpauthURI: String
    public var recoveryCodes: [String]
    public init(user: String, secret: String, otpauthURI: String, recoveryCodes: [String]) {
        self.user = user
        self.secret = secret
        self.otpauthURI = otpauthURI
        self.recoveryCodes = recoveryCodes
    }
}

public struct StatusReply: Sendable, Equatable {
    public var user: String
    public var enrolled: Bool
    public var recoveryCodesLeft: Int
    /// "totp", "hotp", or empty when not enrolled.
    public var method: String
    /// Unix times; nil: not enrolled / never.
    public var enrolledSince: Int64?
    public var lastSuccess: Int64?
    /// A self-service enrollment is waiting for its confirming code.
    public var pending: Bool
    /// The live remembered logins (`remember`), newest first; nil when the request did not ask for
    /// them (and always in LIST, whose entries never carry them).
    public var remembered: [RememberedHost]?
    public init(user: String, enrolled: Bool, recoveryCodesLeft: Int, method: String = "",
                enrolledSince: Int64? = nil, lastSuccess: Int64? = nil, pending: Bool = false,
                remembered: [RememberedHost]? = nil) {
        self.remembered = remembered
        self.user = user
        self.enrolled = enrolled
        self.recoveryCodesLeft = recoveryCodesLeft
        self.method = method
        self.enrolledSince = enrolledSince
        self.lastSuccess = lastSuccess
        self.pending = pending
    }
}

public enum DaemonMessage: Sendable, Equatable {
    case converse([ConversationMessage])
    case verdict(VerdictResult, reason: String)
    case enrolled(EnrolledReply)
    case status(StatusReply)
    case pending(PendingReply)
    case recoveryCodes(user: String, codes: [String])
    /// A user's enrollment was changed; `message` is one sentence for the user (e.g. the import report line).
    case changed(user: String, message: String)
    case list([StatusReply])
    case checked(CheckReply)
    /// An admin request was carried out; the message says what changed.
    case done(message: String)
    case error(ErrorCode, message: String)
    /// The answer to METHOD_LIST.
    case methods(MethodsReply)
    /// The answer to INVITE.
    case invited(InviteReply)
    /// The answer to REPORT.
    case reported(ReportReply)
}

enum Tag: UInt8 {
    case loginBegin = 0x01, reply = 0x02, cancel = 0x03, enroll = 0x10, status = 0x11, check = 0x20, unlock = 0x21
    case enrollBegin = 0x12, enrollConfirm = 0x13, regenerate = 0x14, disable = 0x15, list = 0x16, importGA = 0x17
    case converse = 0x81, verdict = 0x82, enrolled = 0x90, statusReply = 0x91, error = 0x9F, checked = 0xA0, done = 0xA1
    case pending = 0x92, recoveryCodes = 0x93, changed = 0x94, listReply = 0x95
    case methodAdd = 0x18, methodConfirm = 0x19, methodList = 0x1A, methodPrefer = 0x1B, methodRemove = 0x1C
    case methodsReply = 0x96
    case invite = 0x23, invited = 0xA3
    case report = 0x28, reported = 0xA8
    case forget = 0x1D
}
