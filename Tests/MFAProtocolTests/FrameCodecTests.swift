// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFAProtocol

final class FrameCodecTests: XCTestCase {
    func payload(_ frame: [UInt8]) -> [UInt8] { Array(frame.dropFirst(4)) }

    func testClientMessagesRoundTrip() throws {
        let messages: [ClientMessage] = [
            .loginBegin(LoginBegin(user: "alice", service: "sshd", rhost: "192.0.2.1", tty: "ssh", ruser: "", silent: true)),
            .reply(answer: "123456"), .reply(answer: ""), .cancel,
            .enroll(EnrollRequest(user: "bob", secret: "JBSWY3DPEHPK3PXP", replaceExisting: true)),
            .status(version: 1, user: ""),
            .enroll(EnrollRequest(user: "tok", secret: "JBSWY3DPEHPK3PXP", replaceExisting: false, method: .hotp, counter: "42")),
            .enrollBegin(EnrollBeginRequest(user: "", method: .hotp, counter: "7", secret: "", proof: "abcd-efgh-jkmn")),
            .enrollConfirm(UserCodeRequest(user: "a", code: "123456")),
            .regenerateRecoveryCodes(UserCodeRequest(user: "", code: "1")),
            .disable(UserCodeRequest(user: "b", code: "")),
            .list(version: 1),
            .importGoogleAuthenticator(ImportRequest(user: "c", content: "ABC\n\" TOTP_AUTH\n", replaceExisting: true)),
            .forget(version: 1, user: ""), .forget(version: 1, user: "dave"),
            .loginBegin(LoginBegin(user: "erin", service: "vpn", rhost: "192.0.2.2", realUID: 0, onePrompt: true)),
        ]
        for m in messages {
            let frame = try FrameCodec.encode(m)
            XCTAssertEqual(Int(frame[0]) << 24 | Int(frame[1]) << 16 | Int(frame[2]) << 8 | Int(frame[3]), frame.count - 4)
            XCTAssertEqual(try FrameCodec.decodeClient(payload(frame)), m)
        }
    }

    func testDaemonMessagesRoundTrip() throws {
        let messages: [DaemonMessage] = [
            .converse([ConversationMessage(.textInfo, "scan this"), ConversationMessage(.promptEchoOff, "Verification code: ")]),
            .converse([ConversationMessage(.codeDigits, "8"), ConversationMessage(.promptEchoOff, "Verification code: ")]),
            .verdict(.success, reason: "totp"), .verdict(.locked, reason: ""),
            .enrolled(EnrolledReply(user: "a", secret: "S", otpauthURI: "otpauth://x", recoveryCodes: ["a", "b"])),
            .status(StatusReply(user: "a", enrolled: true, recoveryCodesLeft: 9)),
            .status(StatusReply(user: "a", enrolled: true, recoveryCodesLeft: 3, method: "hotp", enrolledSince: 1_700_000_000,
                                lastSuccess: 1_700_000_100, pending: true)),
            .pending(PendingReply(user: "a", secret: "S", otpauthURI: "otpauth://y", secondsValid: 600)),
            .recoveryCodes(user: "a", codes: ["x", "y"]),
            .changed(user: "a", message: "disabled"),
            .list([StatusReply(user: "a", enrolled: false, recoveryCodesLeft: 0), StatusReply(user: "b", enrolled: true, recoveryCodesLeft: 1)]),
            .list([]),
            .error(.wrongCode, message: "no"),
            .error(.notAllowed, message: "no"),
        ]
        for m in messages { XCTAssertEqual(try FrameCodec.decodeDaemon(payload(try FrameCodec.encode(m))), m) }
    }

    func testOldEnrollFrameWithoutHOTPFlagStillDecodes() throws {
        // The skeleton's ENROLL layout (flags bit 1 clear, no counter field) is unchanged.
        let payload: [UInt8] = [0x10, 1, 0, 1, 0x61, 0, 0, 1]
        XCTAssertEqual(try FrameCodec.decodeClient(payload), .enroll(EnrollRequest(user: "a", secret: "", replaceExisting: true)))
    }

    func testLoginBeginWireLayoutMatchesTheDocument() throws {
        let frame = try FrameCodec.encode(.loginBegin(LoginBegin(user: "al", service: "s", rhost: "", tty: "t", ruser: "", silent: false)))
        XCTAssertEqual(frame, [0, 0, 0, 17, 0x01, 1, 0, 2, 0x61, 0x6c, 0, 1, 0x73, 0, 0, 0, 1, 0x74, 0, 0, 0])
    }

    func testLoginBeginCarriesTheRealUIDAfterFlagBit1() throws {
        let begin = LoginBegin(user: "al", service: "s", rhost: "", tty: "t", ruser: "", silent: true, realUID: 31000)
        let frame = try FrameCodec.encode(.loginBegin(begin))
        XCTAssertEqual(frame, [0, 0, 0, 21, 0x01, 1, 0, 2, 0x61, 0x6c, 0, 1, 0x73, 0, 0, 0, 1, 0x74, 0, 0, 3, 0, 0, 0x79, 0x18])
        XCTAssertEqual(try FrameCodec.decodeClient(payload(frame)), .loginBegin(begin))
        // Bit 1 without the u32 is truncated; a module that does not send it decodes with nil.
        XCTAssertThrowsError(try FrameCodec.decodeClient(Array(payload(frame).dropLast(4))))
        XCTAssertEqual(try FrameCodec.decodeClient([0x01, 1, 0, 1, 0x61, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
                       .loginBegin(LoginBegin(user: "a", service: "", realUID: nil)))
        XCTAssertEqual(try FrameCodec.decodeDaemon(payload(try FrameCodec.encode(.verdict(.busy, reason: "busy")))),
                       .verdict(.busy, reason: "busy"))
    }

    func testMalformedPayloadsAreRefused() {
        let cases: [([UInt8], FrameError)] = [
            ([], .truncated),
            ([0x7F], .unknownTag(0x7F)),
            ([0x02, 0, 5, 0x31], .truncated),
            ([0x02, 0, 1, 0x31, 0xFF], .trailingBytes),
            ([0x02, 0, 3, 0x31, 0, 0x32], .nulInString),
            ([0x01, 1, 0, 1, 0x61], .truncated),
        ]
        for (bytes, expected) in cases {
            XCTAssertThrowsError(try FrameCodec.decodeClient(bytes), "\(bytes)") { XCTAssertEqual($0 as? FrameError, expected, "\(bytes)") }
        }
        let daemonCases: [[UInt8]] = [
            [0x81, 0],                                  // no messages
            [0x81, 9] + Array(repeating: [4, 0, 0], count: 9).flatMap { $0 },  // too many
            [0x81, 2, 1, 0, 0, 4, 0, 0],                // prompt not last
            [0x81, 1, 7, 0, 0],                         // unknown style
            [0x82, 9, 0, 0],                            // unknown verdict
        ]
        for bytes in daemonCases { XCTAssertThrowsError(try FrameCodec.decodeDaemon(bytes), "\(bytes)") }
    }

    /// Issue 14, finding 5: `\xff\xfe` and `\xfe\xff` were both decoded to U+FFFD U+FFFD (one record).
    /// Issue 17: an error code the CLI does not know was decoded as `.badRequest`, so a newer
    /// daemon's answer read as "bad request". It is a protocol error, naming the code.
    func testAnUnknownErrorCodeIsRefusedNotMadeBadRequest() throws {
        let known = try FrameCodec.encode(DaemonMessage.error(.tooManyCodes, message: "later"))
        XCTAssertEqual(try FrameCodec.decodeDaemon(Array(known.dropFirst(4))), .error(.tooManyCodes, message: "later"))
        var unknown = Array(known.dropFirst(4))
        unknown[1] = 0x03; unknown[2] = 0xE7  // 999
        XCTAssertThrowsError(try FrameCodec.decodeDaemon(unknown)) { error in
            XCTAssertEqual(error as? FrameError, .badValue("unknown error code 999"))
        }
        XCTAssertNil(ErrorCode(rawValue: 0))
    }

    func testStringsThatAreNotUTF8AreRefusedNotRepaired() throws {
        func login(_ name: [UInt8]) -> [UInt8] {
            [0x01, 1, 0, UInt8(name.count)] + name + [0, 4] + Array("sshd".utf8) + [0, 0, 0, 0, 0, 0, 0]
        }
        for name: [UInt8] in [[0xFF, 0xFE], [0xFE, 0xFF], [0x61, 0xC3], [0xED, 0xA0, 0x80], [0xC0, 0xAF]] {
            XCTAssertThrowsError(try FrameCodec.decodeClient(login(name)), "\(name)") { XCTAssertEqual($0 as? FrameError, .invalidUTF8) }
        }
        XCTAssertThrowsError(try FrameCodec.decodeClient([0x02, 0, 2, 0x31, 0xFF])) { XCTAssertEqual($0 as? FrameError, .invalidUTF8) }
        // Well-formed UTF-8 other than ASCII still passes, byte for byte.
        guard case .loginBegin(let b) = try FrameCodec.decodeClient(login(Array("jürgen".utf8))) else { return XCTFail() }
        XCTAssertEqual(Array(b.user.utf8), Array("jürgen".utf8))
    }

    func testSplitterHandlesPartialFramesAndRefusesBadLengths() throws {
        let a = try FrameCodec.encode(.reply(answer: "123456"))
        let b = try FrameCodec.encode(.cancel)
        var splitter = FrameSplitter()
        let stream = a + b
        var payloads: [[UInt8]] = []
        for byte in stream {
            splitter.append([byte][...])
            while let p = try splitter.nextPayload() { payloads.append(p) }
        }
        XCTAssertEqual(payloads, [payload(a), payload(b)])

        var oversized = FrameSplitter()
        oversized.append([0, 1, 0, 1][...])
        XCTAssertThrowsError(try oversized.nextPayload()) { XCTAssertEqual($0 as? FrameError, .oversized(65537)) }
        var empty = FrameSplitter()
        empty.append([0, 0, 0, 0][...])
        XCTAssertThrowsError(try empty.nextPayload()) { XCTAssertEqual($0 as? FrameError, .emptyFrame) }
        var bounded = FrameSplitter()
        bounded.append([0, 0, 0, 10][...])
        XCTAssertEqual(bounded.wantedBytes, 10, "never reads past the frame")
    }

    func testEncoderRefusesWhatTheDecoderWouldRefuse() {
        XCTAssertThrowsError(try FrameCodec.encode(.reply(answer: "a\u{0}b")))
        XCTAssertThrowsError(try FrameCodec.encode(.reply(answer: String(repeating: "x", count: 70000))))
        XCTAssertThrowsError(try FrameCodec.encode(.converse([])))
    }
}
