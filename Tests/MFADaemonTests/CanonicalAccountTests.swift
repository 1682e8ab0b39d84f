// SPDX-License-Identifier: Apache-2.0
import Foundation
import Logging
import XCTest
@testable import MFACore
@testable import MFADaemon
@testable import MFAProtocol
@testable import MFAStore

/// Issue 14, findings 3 and 4: every spelling NSS maps to an account is that account, and a name
/// NSS does not know gets nothing. The account database is a table here (as SSSD with
/// case-insensitive names and a default domain would answer); the real NSS path has its own
/// integration test (Tests/integration/test_accounts.py, with an NSS module of the tests' own).
final class CanonicalAccountTests: XCTestCase {
    var root = ""
    let clock = TestClock(1_800_000_000)
    var authority: Authority!
    let root0 = Peer(pid: 1, uid: 0, gid: 0)
    let alicePeer = Peer(pid: 2, uid: 31001, gid: 31001)

    /// alice under any case, with or without `@example.test`; `down` makes NSS fail.
    static let directory = AccountDirectory(
        lookup: { name in
            let lower = name.lowercased()
            if lower == "alice" || lower == "alice@example.test" { return .found(Account(name: "alice", uid: 31001, gid: 31001)) }
            if name == "down" { return .unavailable("Input/output error") }
            return .unknown
        },
        nameOfUID: { $0 == 31001 ? "alice" : nil },
        groups: { _ in ["staff"] })

    func make(_ change: (inout DaemonConfig) -> Void = { _ in }) throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/oathtool") else { throw XCTSkip("oathtool is not installed") }
        root = NSTemporaryDirectory() + "mfagate-canonical-\(UUID().uuidString)"
        XCTAssertEqual(mkdir(root, 0o700), 0)
        let clock = self.clock
        var environment = DaemonEnvironment(now: { clock.now }, randomBytes: { try Crypto.randomBytes($0) }, hostName: "testhost")
        environment.accounts = Self.directory
        var config = DaemonConfig()
        config.stateDirectory = root
        config.mode = .required
        config.enrollAtLogin = true
        config.gracePeriod = 7 * 86400
        config.maxFailures = 3
        change(&config)
        authority = try Authority(config: config, store: try FileStore(path: root), environment: environment,
                                  logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    override func tearDownWithError() throws {
        authority = nil
        if !root.isEmpty { try? FileManager.default.removeItem(atPath: root) }
    }

    func oathtool(_ secret: String, at time: Int64) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/oathtool")
        process.arguments = ["--totp", "-b", "--now", "@\(time)", secret]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func enroll(_ typed: String) throws -> EnrolledReply {
        guard case .enrolled(let e) = authority.admin.enroll(EnrollRequest(user: typed, secret: "", replaceExisting: false), peer: root0) else {
            XCTFail("not enrolled"); throw XCTSkip()
        }
        return e
    }

    func userFiles() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: root + "/users").filter { !$0.hasPrefix(".") } }

    func testRootEnrollingAnotherSpellingStoresTheCanonicalAccount() throws {
        try make()
        let e = try enroll("ALICE")
        XCTAssertEqual(e.user, "alice")
        XCTAssertTrue(e.otpauthURI.contains("alice%40testhost"), e.otpauthURI)
        XCTAssertEqual(try userFiles(), ["alice"])
        guard case .error(.alreadyEnrolled, _) = authority.admin.enroll(EnrollRequest(user: "alice@example.test", secret: "", replaceExisting: false), peer: root0) else {
            return XCTFail("a second spelling must find the same enrollment")
        }
    }

    func testEverySpellingIsAskedTheAccountsCodeNeverEnrollmentNorIgnore() throws {
        for mode in [MFAMode.required, .optional] {
            try make { $0.mode = mode }
            let e = try enroll("alice")
            for typed in ["ALICE", "Alice", "alice@example.test", "ALICE@EXAMPLE.TEST"] {
                guard case .ask(.converse(let messages), let session) = authority.beginLogin(LoginBegin(user: typed, service: "sshd"), peer: root0) else {
                    return XCTFail("\(mode) \(typed): not asked for a code")
                }
                XCTAssertEqual(messages.map(\.text), [LoginFlow.prompt], "\(typed): no enrollment screen")
                XCTAssertEqual(session.user.value, "alice")
                clock.advance(30)
                guard case .verdict(.success, _) = authority.login.checkCode(try oathtool(e.secret, at: clock.now), in: session) else {
                    return XCTFail("\(mode) \(typed): alice's code refused")
                }
            }
            try tearDownWithError()
        }
    }

    func testWrongCodesUnderAnySpellingCountTowardsTheAccountsLockout() throws {
        try make()
        let e = try enroll("alice")
        for typed in ["ALICE", "alice@example.test", "Alice"] {
            guard case .ask(_, let session) = authority.beginLogin(LoginBegin(user: typed, service: "sshd"), peer: root0) else { return XCTFail() }
            let wrong = String(format: "%06d", ((Int(try oathtool(e.secret, at: clock.now)) ?? 0) + 500_000) % 1_000_000)
            guard case .verdict(.denied, _) = authority.login.checkCode(wrong, in: session) else { return XCTFail(typed) }
        }
        XCTAssertNotNil(authority.books.userLockedUntil("alice", now: clock.now), "three wrong codes under three spellings lock alice")
        guard case .ask(_, let session) = authority.beginLogin(LoginBegin(user: "alice", service: "sshd"), peer: root0),
              case .locked = session.purpose else { return XCTFail("alice is locked under her own name too") }
    }

    func testUnlockNamesTheAccountInAnySpelling() throws {
        try make()
        _ = try enroll("alice")
        for _ in 0..<3 {
            guard case .ask(_, let session) = authority.beginLogin(LoginBegin(user: "ALICE", service: "sshd"), peer: root0) else { return XCTFail() }
            _ = authority.login.checkCode("000000", in: session)
        }
        XCTAssertNotNil(authority.books.userLockedUntil("alice", now: clock.now))
        guard case .done(let text) = authority.admin.unlock(user: "alice@example.test", rhost: "", peer: root0) else {
            return XCTFail()
        }
        XCTAssertEqual(text, "unlocked user alice")
        XCTAssertNil(authority.books.userLockedUntil("alice", now: clock.now))
    }

    /// Root may still see and remove what is stored under a name NSS no longer knows (a deleted account).
    func testRootMayStillRemoveWhatADeletedAccountLeft() throws {
        try make()
        let ghost = try UserName(validating: "ghost")
        try authority.store.save(UserRecord(user: ghost, parameters: .standard, secret: Array(repeating: 7, count: 20), created: clock.now, recoveryCodes: []))
        guard case .status(let s) = authority.admin.status(user: "ghost", peer: root0) else { return XCTFail() }
        XCTAssertTrue(s.enrolled)
        guard case .error(.invalidUserName, _) = authority.admin.status(user: "ghost", peer: alicePeer) else {
            return XCTFail("only root")
        }
        guard case .changed = authority.selfService.disable(UserCodeRequest(user: "ghost", code: ""), peer: root0) else { return XCTFail() }
        XCTAssertEqual(try userFiles(), [])
    }

    func testAnUnknownNameIsDeniedAndLeavesNothingBehind() throws {
        try make()
        for typed in ["ghost", "hunter2-typed-as-a-name"] {
            let step = authority.beginLogin(LoginBegin(user: typed, service: "sshd"), peer: root0)
            guard case .finish(.verdict(.denied, let reason)) = step else { return XCTFail("\(typed): \(step)") }
            XCTAssertFalse(reason.contains(typed), "the typed name is not repeated: \(reason)")
            XCTAssertNil(authority.books.firstSeenTime(typed), "no first sighting for \(typed)")
        }
        XCTAssertEqual(try userFiles(), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/seen"))
        guard case .error(.invalidUserName, _) = authority.admin.enroll(EnrollRequest(user: "ghost", secret: "", replaceExisting: false), peer: root0) else {
            return XCTFail("root may not enroll a name NSS does not know")
        }
        guard case .error(.invalidUserName, _) = authority.selfService.enrollBegin(EnrollBeginRequest(user: "ghost"), peer: root0) else {
            return XCTFail("nor start a self-service enrollment for one")
        }
        XCTAssertEqual(try userFiles(), [])
        // Mode off: nothing to decide, nothing refused.
        authority.config.mode = .off
        guard case .finish(.verdict(.ignore, _)) = authority.beginLogin(LoginBegin(user: "ghost", service: "sshd"), peer: root0) else { return XCTFail() }
    }

    func testAFailingAccountDatabaseIsUnavailableNotDenied() throws {
        try make()
        guard case .finish(.verdict(.unavailable, let reason)) = authority.beginLogin(LoginBegin(user: "down", service: "sshd"), peer: root0) else {
            return XCTFail()
        }
        XCTAssertTrue(reason.contains("NSS"), reason)
    }

    func testAUserMayNameHerselfInAnySpelling() throws {
        try make()
        _ = try enroll("alice")
        guard case .status(let s) = authority.admin.status(user: "ALICE", peer: alicePeer) else { return XCTFail() }
        XCTAssertEqual(s.user, "alice")
        XCTAssertTrue(s.enrolled)
        guard case .status(let own) = authority.admin.status(user: "", peer: alicePeer) else { return XCTFail() }
        XCTAssertEqual(own.user, "alice")
    }
}
