// SPDX-License-Identifier: Apache-2.0
import Foundation
import Logging
import XCTest
@testable import MFACore
@testable import MFADaemon
@testable import MFAProtocol
@testable import MFAStore

/// Scripts whole logins through the login flow, as the server would drive it, without a socket,
/// root or the real clock: accounts from a table, the clock moved by hand, the real file store in a
/// temp dir (or a stand-in store), the 160-bit secrets the daemon makes are RFC 6238's, so the codes
/// typed are the RFC's test vectors.
final class LoginHarness {
    /// RFC 6238 appendix B's SHA-1 secret, "12345678901234567890".
    static let rfcSecret = Array("12345678901234567890".utf8)
    static let rfcSecretBase32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    /// RFC 6238 appendix B (SHA-1, 8 digits); our 6-digit codes are their last six digits.
    static let rfcVectors: [Int64: String] = [
        59: "287082", 1_111_111_109: "081804", 1_111_111_111: "050471", 1_234_567_890: "005924",
        2_000_000_000: "279037", 20_000_000_000: "353130",
    ]

    static let accounts: [String: Account] = [
        "alice": Account(name: "alice", uid: 1001, gid: 1001),
        "bob": Account(name: "bob", uid: 1002, gid: 1002),
    ]

    let root: String
    let clock: TestClock
    var config: DaemonConfig
    let store: any FactorStore
    let authority: Authority
    /// sshd: the PAM stack runs as root.
    let peer = Peer(pid: 100, uid: 0, gid: 0)

    init(_ setUp: (inout DaemonConfig) -> Void = { _ in }, start: Int64 = 1_234_567_890,
         store makeStore: (FileStore) -> any FactorStore = { $0 }) throws {
        root = NSTemporaryDirectory() + "mfagate-loginflow-\(UUID().uuidString)"
        guard mkdir(root, 0o700) == 0 else { throw HarnessError("cannot make \(root)") }
        clock = TestClock(start)
        var config = DaemonConfig()
        config.stateDirectory = root
        setUp(&config)
        self.config = config
        let clock = self.clock
        let table = Self.accounts
        let accounts = AccountDirectory(
            lookup: { name in table[name].map { .found($0) } ?? .unknown },
            nameOfUID: { uid in table.values.first { $0.uid == uid }?.name },
            groups: { _ in [] })
        var environment = DaemonEnvironment(
            now: { clock.now },
            // A new app secret is RFC 6238's; salts, recovery and delivered codes stay random.
            randomBytes: { count in count == 20 ? LoginHarness.rfcSecret : try Crypto.randomBytes(count) },
            hostName: "testhost")
        environment.accounts = accounts
        store = makeStore(try FileStore(path: root))
        authority = try Authority(config: config, store: store, environment: environment,
                                  logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    static func code(at time: Int64) -> String {
        guard let code = rfcVectors[time] else { preconditionFailure("no RFC 6238 vector for \(time)") }
        return code
    }

    // MARK: driving a login

    func begin(_ user: String, rhost: String = "192.0.2.7", service: String = "sshd", silent: Bool = false) -> Step {
        store.forgetLastCheck()
        return authority.beginLogin(LoginBegin(user: user, service: service, rhost: rhost, silent: silent), peer: peer)
    }

    func answer(_ typed: String, to step: Step, file: StaticString = #filePath, line: UInt = #line) -> Step {
        guard case .ask(_, let session) = step else {
            XCTFail("no question to answer: \(step)", file: file, line: line)
            return .finish(.verdict(.denied, reason: "test: no question"))
        }
        store.forgetLastCheck()
        return authority.continueLogin(typed, in: session)
    }

    /// A whole login with one code: begin, answer, verdict.
    func login(_ user: String, code: String, rhost: String = "192.0.2.7") -> (VerdictResult, String)? {
        Self.verdict(answer(code, to: begin(user, rhost: rhost)))
    }

    /// Waits (at most 5 s) for a delivery command the flow started and gives its outcome back to the flow.
    func delivered(_ step: Step, file: StaticString = #filePath, line: UInt = #line) -> Step {
        guard case .awaitDelivery(let token) = step else {
            XCTFail("no delivery started: \(step)", file: file, line: line)
            return step
        }
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            authority.notifier.reap()
            for (finished, outcome) in authority.notifier.takeFinishedDeliveries() where finished == token {
                guard let next = authority.deliveryEnded(token: token, outcome: outcome).0 else {
                    XCTFail("the delivery's end gave no step", file: file, line: line)
                    return step
                }
                return next
            }
            usleep(10_000)
        }
        XCTFail("the delivery command did not end", file: file, line: line)
        return step
    }

    // MARK: reading steps

    static func verdict(_ step: Step) -> (VerdictResult, String)? {
        if case .finish(.verdict(let result, let reason)) = step { return (result, reason) }
        return nil
    }

    static func messages(_ step: Step) -> [ConversationMessage] {
        if case .ask(.converse(let messages), _) = step { return messages }
        return []
    }

    static func prompt(_ step: Step) -> String? {
        messages(step).last.flatMap { $0.style == .promptEchoOff || $0.style == .promptEchoOn ? $0.text : nil }
    }

    static func text(_ step: Step) -> String { messages(step).map(\.text).joined(separator: "\n") }

    // MARK: state

    /// Enrolls `user` through the admin verb with RFC 6238's secret; returns the recovery codes.
    @discardableResult
    func enroll(_ user: String) throws -> [String] {
        let reply = authority.admin.enroll(EnrollRequest(user: user, secret: Self.rfcSecretBase32, replaceExisting: false), peer: peer)
        guard case .enrolled(let enrolled) = reply else { throw HarnessError("enroll: \(reply)") }
        return enrolled.recoveryCodes
    }

    func record(_ user: String) throws -> UserRecord? {
        store.forgetLastCheck()
        return try store.load(try UserName(validating: user))
    }
}

/// A set-up step that failed: the test fails (never skips).
struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A fleet store stand-in: the file store underneath, but the first `save` of the user's record
/// behaves as if another host wrote the record between this host's read and its write (the
/// compare-and-swap fails): `otherHost` changes the stored record, and `.conflict` is thrown.
final class ConflictOnceStore: FactorStore {
    let files: FileStore
    var otherHost: ((inout UserRecord) -> Void)?
    private(set) var conflicts = 0
    private(set) var saves = 0

    init(_ files: FileStore) { self.files = files }

    func load(_ user: UserName) throws(StoreError) -> UserRecord? { try files.load(user) }
    func save(_ record: UserRecord) throws(StoreError) {
        saves += 1
        if let change = otherHost, var theirs = try files.load(record.user) {
            otherHost = nil
            change(&theirs)
            try files.save(theirs)
            conflicts += 1
            throw .conflict(user: record.user.value)
        }
        try files.save(record)
    }
    func delete(_ user: UserName) throws(StoreError) { try files.delete(user) }
    func listUsers() throws(StoreError) -> [UserName] { try files.listUsers() }
    func forgetLastCheck() { files.forgetLastCheck() }
    func openBooks(now: Int64, failureWindow: Int64, report: (String) -> Void) throws(StoreError) -> StoreBooks {
        try files.openBooks(now: now, failureWindow: failureWindow, report: report)
    }
    var backendFailedInRequest: Bool { false }
}
