// SPDX-License-Identifier: Apache-2.0
import Foundation
import Logging
import XCTest
@testable import MFACore
@testable import MFADaemon
@testable import MFAProtocol
@testable import MFAStore

/// A clock the test moves by hand.
final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64
    init(_ start: Int64) { value = start }
    var now: Int64 { lock.withLock { value } }
    func advance(_ seconds: Int64) { lock.withLock { value += seconds } }
}

/// The self-service rules against the real store in a temp dir, with a hand-moved clock. Codes come
/// from oathtool (an independent implementation), never from our own OTP code.
final class SelfServiceTests: XCTestCase {
    var root = ""
    var clock = TestClock(1_800_000_000)
    var authority: Authority!
    let root0 = Peer(pid: 1, uid: 0, gid: 0)
    let nobody = Peer(pid: 2, uid: 65534, gid: 65534)

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/oathtool") else { throw XCTSkip("oathtool is not installed") }
        root = NSTemporaryDirectory() + "mfagate-selfservice-\(UUID().uuidString)"
        XCTAssertEqual(mkdir(root, 0o700), 0)
        let clock = self.clock
        var environment = DaemonEnvironment(now: { clock.now }, randomBytes: { try Crypto.randomBytes($0) }, hostName: "testhost")
        // The accounts from a table, not the host's NSS: no real uid 65534 needed.
        let table = ["nobody": Account(name: "nobody", uid: 65534, gid: 65534), "root": Account(name: "root", uid: 0, gid: 0)]
        environment.accounts = AccountDirectory(lookup: { table[$0].map { .found($0) } ?? .unknown },
                                                nameOfUID: { uid in table.values.first { $0.uid == uid }?.name },
                                                groups: { _ in [] })
        var config = DaemonConfig()
        config.stateDirectory = root
        authority = try Authority(config: config, store: try FileStore(path: root), environment: environment,
                                  logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    override func tearDownWithError() throws {
        authority = nil
        try? FileManager.default.removeItem(atPath: root)
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

    func begin(_ peer: Peer, proof: String = "") -> DaemonMessage {
        authority.selfService.enrollBegin(EnrollBeginRequest(user: "", proof: proof), peer: peer)
    }

    /// Enrolls nobody by self-service; returns the secret and the recovery codes.
    func enrollNobody() throws -> (secret: String, codes: [String]) {
        guard case .pending(let p) = begin(nobody) else { XCTFail("no pending enrollment"); throw XCTSkip() }
        XCTAssertEqual(p.user, "nobody")
        XCTAssertEqual(p.secondsValid, 600)
        XCTAssertTrue(p.otpauthURI.hasPrefix("otpauth://totp/testhost:nobody%40testhost?secret=\(p.secret)&issuer=testhost"), p.otpauthURI)
        let reply = authority.selfService.enrollConfirm(UserCodeRequest(user: "", code: try oathtool(p.secret, at: clock.now)), peer: nobody)
        guard case .enrolled(let e) = reply else { XCTFail("\(reply)"); throw XCTSkip() }
        XCTAssertEqual(e.recoveryCodes.count, 10)
        return (p.secret, e.recoveryCodes)
    }

    func status() -> StatusReply? {
        if case .status(let s) = authority.admin.status(user: "", peer: nobody) { return s }
        return nil
    }

    func testPendingEnrollmentIsNotActiveAndExpiresAfterTenMinutes() throws {
        guard case .pending(let p) = begin(nobody) else { return XCTFail() }
        XCTAssertEqual(status()?.enrolled, false, "pending is not active")
        XCTAssertEqual(status()?.pending, true)
        clock.advance(601)
        let late = authority.selfService.enrollConfirm(UserCodeRequest(user: "", code: try oathtool(p.secret, at: clock.now)), peer: nobody)
        guard case .error(.noPendingEnrollment, _) = late else { return XCTFail("\(late)") }
        XCTAssertEqual(status()?.enrolled, false)
    }

    func testWrongConfirmingCodeDoesNotActivate() throws {
        guard case .pending(let p) = begin(nobody) else { return XCTFail() }
        let right = try oathtool(p.secret, at: clock.now)
        let wrong = String(format: "%06d", (Int(right)! + 1) % 1_000_000)
        guard case .error(.wrongCode, _) = authority.selfService.enrollConfirm(UserCodeRequest(user: "", code: wrong), peer: nobody) else { return XCTFail() }
        XCTAssertEqual(status()?.enrolled, false)
        guard case .enrolled = authority.selfService.enrollConfirm(UserCodeRequest(user: "", code: right), peer: nobody) else { return XCTFail() }
        let s = try XCTUnwrap(status())
        XCTAssertEqual(s.enrolled, true)
        XCTAssertEqual(s.method, "totp")
        XCTAssertEqual(s.enrolledSince, clock.now)
        XCTAssertEqual(s.recoveryCodesLeft, 10)
    }

    func testReEnrollNeedsACurrentCodeOrARecoveryCodeAndKeepsTheOldOneUntilConfirmed() throws {
        let (secret, codes) = try enrollNobody()
        guard case .error(.wrongCode, _) = begin(nobody) else { return XCTFail("re-enroll without proof") }
        guard case .error(.wrongCode, _) = begin(nobody, proof: "000000") else { return XCTFail("re-enroll with a wrong code") }
        guard case .pending(let p) = begin(nobody, proof: codes[0]) else { return XCTFail("recovery code as proof") }
        XCTAssertNotEqual(p.secret, secret)
        // Not confirmed yet: the old enrollment is still the active one.
        let record = try XCTUnwrap(try authority.store.load(UserName(validating: "nobody")))
        XCTAssertEqual(Base32.encode(record.secret), secret)
        XCTAssertEqual(record.recoveryCodes.count, 9, "the recovery code used as proof is spent")
        clock.advance(30)
        guard case .pending = begin(nobody, proof: try oathtool(secret, at: clock.now)) else { return XCTFail("current code as proof") }
    }

    func testRegenerateKillsTheOldSetAndNeedsACodeFromTheDevice() throws {
        let (secret, old) = try enrollNobody()
        guard case .error(.wrongCode, _) = authority.selfService.regenerateRecoveryCodes(UserCodeRequest(user: "", code: old[0]), peer: nobody) else {
            return XCTFail("a recovery code must not regenerate recovery codes")
        }
        clock.advance(30)
        let reply = authority.selfService.regenerateRecoveryCodes(UserCodeRequest(user: "", code: try oathtool(secret, at: clock.now)), peer: nobody)
        guard case .recoveryCodes(_, let fresh) = reply else { return XCTFail("\(reply)") }
        XCTAssertEqual(fresh.count, 10)
        XCTAssertTrue(Set(fresh).isDisjoint(with: old))
        let record = try XCTUnwrap(try authority.store.load(UserName(validating: "nobody")))
        XCTAssertNil(RecoveryCodes.match(typed: old[1], stored: record.recoveryCodes), "old set dead")
        XCTAssertNotNil(RecoveryCodes.match(typed: fresh[0], stored: record.recoveryCodes))
    }

    func testDisableNeedsACodeRootResetDoesNot() throws {
        let (_, codes) = try enrollNobody()
        guard case .error(.wrongCode, _) = authority.selfService.disable(UserCodeRequest(user: "", code: ""), peer: nobody) else { return XCTFail() }
        XCTAssertEqual(status()?.enrolled, true)
        guard case .changed = authority.selfService.disable(UserCodeRequest(user: "", code: codes[3]), peer: nobody) else { return XCTFail() }
        XCTAssertEqual(status()?.enrolled, false)
        _ = try enrollNobody()
        guard case .changed = authority.selfService.disable(UserCodeRequest(user: "nobody", code: ""), peer: root0) else { return XCTFail() }
        XCTAssertEqual(status()?.enrolled, false)
    }

    func testOthersMayNotActForSomeoneElseAndListIsRootOnly() throws {
        guard case .error(.notAllowed, _) = authority.selfService.enrollBegin(EnrollBeginRequest(user: "root"), peer: nobody) else { return XCTFail() }
        guard case .error(.notAllowed, _) = authority.selfService.list(peer: nobody) else { return XCTFail() }
        _ = try enrollNobody()
        guard case .list(let entries) = authority.selfService.list(peer: root0) else { return XCTFail() }
        XCTAssertEqual(entries.map(\.user), ["nobody"])
    }

    func testWrongProofsCountTowardsTheLockout() throws {
        let (_, codes) = try enrollNobody()
        for _ in 0..<authority.config.maxFailures {
            guard case .error(.wrongCode, _) = authority.selfService.disable(UserCodeRequest(user: "", code: "000000"), peer: nobody) else { return XCTFail() }
        }
        // Locked now: even a right recovery code is refused, and it is not spent.
        guard case .error(.wrongCode, let text) = authority.selfService.disable(UserCodeRequest(user: "", code: codes[0]), peer: nobody) else { return XCTFail() }
        XCTAssertTrue(text.contains("locked until"), text)
        XCTAssertEqual(status()?.enrolled, true)
        XCTAssertEqual(status()?.recoveryCodesLeft, 10)
    }
}
