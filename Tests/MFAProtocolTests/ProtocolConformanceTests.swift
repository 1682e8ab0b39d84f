// SPDX-License-Identifier: Apache-2.0
import Foundation
import MFACore
@testable import MFAProtocol
import XCTest

/// The protocol is written twice, in Swift (MFAProtocol) and in C (Sources/pam_mfagate/mfg_frame.h,
/// the PAM module). These tests build the C codec with a small driver (Tests/conformance/
/// mfg_conformance.c) and check that both sides agree: every shared constant, every login
/// message the module sends decoded by Swift, every message the daemon sends decoded by C, and the
/// same frames refused by both.
final class ProtocolConformanceTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let driver: String? = {
        let out = NSTemporaryDirectory() + "mfg_conformance-\(getpid())"
        let sources = ["Sources/pam_mfagate/mfg_frame.c", "Tests/conformance/mfg_conformance.c"].map { root.appendingPathComponent($0).path }
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cc.arguments = ["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE",
                        "-I", root.appendingPathComponent("Sources/pam_mfagate").path] + sources + ["-o", out]
        guard (try? cc.run()) != nil else { return nil }
        cc.waitUntilExit()
        return cc.terminationStatus == 0 ? out : nil
    }()

    func c(_ arguments: String...) throws -> String {
        let driver = try XCTUnwrap(Self.driver, "cc could not build Tests/conformance/mfg_conformance.c")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: driver)
        p.arguments = arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, arguments.joined(separator: " "))
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
    }

    func hex(_ bytes: some Sequence<UInt8>) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
    func unhex(_ text: some StringProtocol) -> [UInt8] {
        let chars = Array(text.utf8)
        return stride(from: 0, to: chars.count, by: 2).map { UInt8(String(decoding: chars[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
    }

    /// Swift's decoder on a whole frame, as the daemon's connection reads it.
    func swiftDecodeClient(_ frame: [UInt8]) throws -> ClientMessage {
        var splitter = FrameSplitter()
        splitter.append(frame[...])
        let payload = try XCTUnwrap(try splitter.nextPayload())
        XCTAssertTrue(splitter.buffer.isEmpty)
        return try FrameCodec.decodeClient(payload)
    }

    func testEverySharedConstantAgrees() throws {
        var cConstants: [String: String] = [:]
        for line in try c("constants").split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            cConstants[String(parts[0])] = String(parts[1])
        }
        let expected: [String: String] = [
            "MFG_PROTOCOL_VERSION": "\(WireProtocol.version)", "MFG_HEADER_LEN": "\(WireProtocol.headerLength)",
            "MFG_MAX_PAYLOAD": "\(WireProtocol.maximumPayload)", "MFG_MAX_STR": "\(UInt16.max)",
            "MFG_MAX_MESSAGES": "\(WireProtocol.maximumConversationMessages)", "MFG_MAX_ROUNDS": "\(WireProtocol.maximumRounds)",
            "MFG_MAX_FRAME": "\(WireProtocol.headerLength + WireProtocol.maximumPayload)",
            "MFG_TAG_LOGIN_BEGIN": "\(Tag.loginBegin.rawValue)", "MFG_TAG_REPLY": "\(Tag.reply.rawValue)",
            "MFG_TAG_CANCEL": "\(Tag.cancel.rawValue)", "MFG_TAG_ENROLL": "\(Tag.enroll.rawValue)",
            "MFG_TAG_STATUS": "\(Tag.status.rawValue)", "MFG_TAG_CONVERSE": "\(Tag.converse.rawValue)",
            "MFG_TAG_VERDICT": "\(Tag.verdict.rawValue)", "MFG_TAG_ENROLLED": "\(Tag.enrolled.rawValue)",
            "MFG_TAG_STATUS_REPLY": "\(Tag.statusReply.rawValue)", "MFG_TAG_ERROR": "\(Tag.error.rawValue)",
            "MFG_STYLE_PROMPT_ECHO_OFF": "\(MessageStyle.promptEchoOff.rawValue)", "MFG_STYLE_PROMPT_ECHO_ON": "\(MessageStyle.promptEchoOn.rawValue)",
            "MFG_STYLE_ERROR_MSG": "\(MessageStyle.errorMessage.rawValue)", "MFG_STYLE_TEXT_INFO": "\(MessageStyle.textInfo.rawValue)",
            "MFG_STYLE_CODE_DIGITS": "\(MessageStyle.codeDigits.rawValue)", "MFG_LOGIN_FLAG_ONE_PROMPT": "\(WireProtocol.loginFlagOnePrompt)",
            "MFG_RESULT_SUCCESS": "\(VerdictResult.success.rawValue)", "MFG_RESULT_DENIED": "\(VerdictResult.denied.rawValue)",
            "MFG_RESULT_IGNORE": "\(VerdictResult.ignore.rawValue)", "MFG_RESULT_LOCKED": "\(VerdictResult.locked.rawValue)",
            "MFG_RESULT_UNAVAILABLE": "\(VerdictResult.unavailable.rawValue)", "MFG_RESULT_BUSY": "\(VerdictResult.busy.rawValue)",
            "MFG_LOGIN_FLAG_SILENT": "\(WireProtocol.loginFlagSilent)", "MFG_LOGIN_FLAG_REAL_UID": "\(WireProtocol.loginFlagRealUID)",
            "MFG_LOGIN_FLAG_SSH_AUTH_INFO": "\(WireProtocol.loginFlagSSHAuthInfo)", "MFG_MAX_AUTH_INFO": "\(WireProtocol.maximumSSHAuthInfo)",
            "MFG_DEFAULT_SOCKET": DaemonConfig.defaultSocketPath,
        ]
        for key in Set(cConstants.keys).union(expected.keys).sorted() {
            XCTAssertEqual(cConstants[key], expected[key], "\(key): C says \(cConstants[key] ?? "nothing"), Swift \(expected[key] ?? "nothing")")
        }
        // Every value the Swift side can send has a C name: a verdict or style added to one side only fails here.
        let cResults = Set(cConstants.filter { $0.key.hasPrefix("MFG_RESULT_") }.values)
        let swiftResults = Set((0...255).compactMap { VerdictResult(rawValue: UInt8($0)) }.map { "\($0.rawValue)" })
        XCTAssertEqual(cResults, swiftResults)
        let cStyles = Set(cConstants.filter { $0.key.hasPrefix("MFG_STYLE_") }.values)
        XCTAssertEqual(cStyles, Set((0...255).compactMap { MessageStyle(rawValue: UInt8($0)) }.map { "\($0.rawValue)" }))
    }

    func testEveryLoginMessageTheModuleSendsDecodesInSwift() throws {
        for (user, service, rhost, tty, ruser, flags, uid) in [
            ("alice", "sshd", "192.0.2.7", "ssh", "", "0", "0"),
            ("", "", "", "", "", "1", "4294967295"),
            ("jürgen", "su", "", "/dev/pts/3", "bob", "1", "1000"),
            (String(repeating: "u", count: 300), "sudo", "2001:db8::1", "", "root", "0", "65534"),
            ("carol", "login", "", "tty1", "", "8", "0"),
            ("dave", "sshd", "192.0.2.8", "ssh", "", "9", "1000"),
        ] {
            let frame = unhex(try c("login-begin", user, service, rhost, tty, ruser, flags, uid))
            let bits = UInt8(flags)!
            let begin = LoginBegin(user: user, service: service, rhost: rhost, tty: tty, ruser: ruser, silent: bits & 1 != 0,
                                   realUID: UInt32(uid)!, onePrompt: bits & WireProtocol.loginFlagOnePrompt != 0)
            XCTAssertEqual(try swiftDecodeClient(frame), .loginBegin(begin))
            // And Swift's encoder writes the very same bytes.
            XCTAssertEqual(try FrameCodec.encode(ClientMessage.loginBegin(begin)), frame)
        }
        for answer in ["123456", "", "ABCD-EFGH-2345", "ünïcode answer", String(repeating: "9", count: 1000)] {
            let frame = unhex(try c("reply", hex(Array(answer.utf8))))
            XCTAssertEqual(try swiftDecodeClient(frame), .reply(answer: answer))
            XCTAssertEqual(try FrameCodec.encode(ClientMessage.reply(answer: answer)), frame)
        }
        let cancel = unhex(try c("cancel"))
        XCTAssertEqual(try swiftDecodeClient(cancel), .cancel)
        XCTAssertEqual(try FrameCodec.encode(ClientMessage.cancel), cancel)
    }

    /// The optional SSH_AUTH_INFO_0 field (flag bit 2): C and Swift write the same bytes and read
    /// each other's, empty (password-only login) and at the limit included; over it both refuse.
    func testTheSSHAuthInfoFieldAgrees() throws {
        let cert = "publickey ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29t\n"
        for info in ["", "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==\n", cert + cert,
                     String(repeating: "x", count: WireProtocol.maximumSSHAuthInfo)] {
            for silent in [false, true] {
                let frame = unhex(try c("login-begin", "alice", "sshd", "192.0.2.7", "ssh", "", silent ? "1" : "0", "0", hex(Array(info.utf8))))
                let message = LoginBegin(user: "alice", service: "sshd", rhost: "192.0.2.7", tty: "ssh", silent: silent,
                                         realUID: 0, sshAuthInfo: info)
                XCTAssertEqual(try swiftDecodeClient(frame), .loginBegin(message))
                XCTAssertEqual(try FrameCodec.encode(ClientMessage.loginBegin(message)), frame)
            }
        }
        let tooLong = String(repeating: "x", count: WireProtocol.maximumSSHAuthInfo + 1)
        XCTAssertEqual(try c("login-begin-refused", hex(Array(tooLong.utf8))), "encode-error")
        XCTAssertThrowsError(try FrameCodec.encode(ClientMessage.loginBegin(LoginBegin(user: "a", service: "s", realUID: 0, sshAuthInfo: tooLong))))
        // A frame carrying one (written by hand) is refused by the daemon's decoder too.
        var w = Writer()
        w.u8(Tag.loginBegin.rawValue); w.u8(1)
        for _ in 0..<5 { try w.str("") }
        w.u8(WireProtocol.loginFlagSSHAuthInfo); try w.str(tooLong)
        let payload = Array(try w.finish().dropFirst(4))
        XCTAssertThrowsError(try FrameCodec.decodeClient(payload))
        // Without the flag (an older module) the field is absent and reads as nil.
        let old = unhex(try c("login-begin", "alice", "sshd", "", "", "", "0", "0"))
        XCTAssertEqual(try swiftDecodeClient(old), .loginBegin(LoginBegin(user: "alice", service: "sshd", realUID: 0)))
    }

    func testEveryMessageTheDaemonSendsToTheModuleDecodesInC() throws {
        var conversations: [[ConversationMessage]] = [
            [ConversationMessage(.promptEchoOff, "Verification code: ")],
            [ConversationMessage(.textInfo, "Scan this QR code:\n█▀▀▀█"), ConversationMessage(.promptEchoOn, "Code: ")],
            [ConversationMessage(.errorMessage, "Wrong code.")],
            [ConversationMessage(.codeDigits, "8"), ConversationMessage(.promptEchoOff, "Verification code: ")],
        ]
        conversations.append((0..<WireProtocol.maximumConversationMessages - 1).map { ConversationMessage(.textInfo, "line \($0)") }
                             + [ConversationMessage(.promptEchoOff, "Last: ")])
        for messages in conversations {
            let frame = try FrameCodec.encode(DaemonMessage.converse(messages))
            let lines = try c("decode", hex(frame)).split(separator: "\n").map(String.init)
            XCTAssertEqual(lines.first, "converse \(messages.count)")
            XCTAssertEqual(Array(lines.dropFirst()), messages.map { "\($0.style.rawValue) \(hex(Array($0.text.utf8)))" })
        }
        for result in (0...255).compactMap({ VerdictResult(rawValue: UInt8($0)) }) {
            for reason in ["", "wrong code", "gesperrt für 15 Minuten"] {
                let frame = try FrameCodec.encode(DaemonMessage.verdict(result, reason: reason))
                XCTAssertEqual(try c("decode", hex(frame)), "verdict \(result.rawValue) \(hex(Array(reason.utf8)))")
            }
        }
    }

    /// STATUS and CHECK are the CLI's verbs: the module sends neither, and its decoder takes no
    /// STATUS answer (old, or ending with the remembered hosts `mfagate status` asks for) for an
    /// answer to a login. So the fields added to them need no C side.
    func testTheModuleTakesNoStatusAnswerForALoginAnswer() throws {
        for remembered in [nil, [], [RememberedHost(rhost: "192.0.2.7", service: "sshd", since: 1, until: 2)]] as [[RememberedHost]?] {
            let frame = try FrameCodec.encode(DaemonMessage.status(StatusReply(user: "a", enrolled: true, recoveryCodesLeft: 1,
                                                                               remembered: remembered)))
            XCTAssertEqual(try c("decode", hex(frame)), "error -3", "MFG_ERR_TAG")
        }
    }

    /// forward_pass's rule (mfg_split_combined, man/pam_mfagate.8): a recovery code in its shown form
    /// at the end, else the user's number of trailing digits, else no code at all.
    func testTheModuleSplitsACombinedAnswerByItsFixedRule() throws {
        for (answer, digits, password) in [
            ("hunter2" + "123456", "6", "hunter2"),
            ("pass1234" + "567890", "6", "pass1234"),      // a password that ends in digits itself
            ("pass12345678", "8", "pass"),                  // an 8-digit user
            ("123456", "6", ""),                            // no password
            ("secret" + "abcd-efgh-2345", "6", "secret"),   // a recovery code
            ("secret" + "ABCD-EFGH-2345", "6", "secret"),
            ("pw1-abcd-efgh-jkm1", "6", "pw1-abcd-efgh-jkm1"),  // '1' is not a recovery symbol, nor 6 digits
            ("only-a-password", "6", "only-a-password"),
            ("12345", "6", "12345"),
        ] {
            let split = try c("split", hex(Array(answer.utf8)), digits).trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertEqual(Int(split), password.utf8.count, "\(answer) with \(digits) digits")
        }
    }

    /// Frames one side refuses, the other must refuse too (a shim that accepted what the daemon
    /// never sends would be the weak side of a confused exchange).
    func testBothSidesRefuseTheSameMalformedFrames() throws {
        func frame(_ payload: [UInt8]) -> [UInt8] {
            let n = payload.count
            return [UInt8(n >> 24 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + payload
        }
        func str(_ s: String) -> [UInt8] { let b = Array(s.utf8); return [UInt8(b.count >> 8), UInt8(b.count & 0xFF)] + b }
        let nine: [UInt8] = [Tag.converse.rawValue, 9] + (0..<9).flatMap { _ -> [UInt8] in [MessageStyle.textInfo.rawValue] + str("x") }
        let bad: [(String, [UInt8])] = [
            ("no messages", [Tag.converse.rawValue, 0]),
            ("more messages than MFG_MAX_MESSAGES", nine),
            ("a prompt that is not last", [Tag.converse.rawValue, 2, 1] + str("a") + [4] + str("b")),
            ("two prompts", [Tag.converse.rawValue, 2, 1] + str("a") + [2] + str("b")),
            ("style 0", [Tag.converse.rawValue, 1, 0] + str("a")),
            ("style 6", [Tag.converse.rawValue, 1, 6] + str("a")),
            ("NUL in a string", [Tag.converse.rawValue, 1, 1] + [0, 3, 97, 0, 98]),
            ("trailing bytes", [Tag.verdict.rawValue, 0] + str("ok") + [0]),
            ("short string", [Tag.verdict.rawValue, 0, 0, 9, 65]),
            ("unknown tag", [0x7F]),
        ]
        for (what, payload) in bad {
            XCTAssertThrowsError(try FrameCodec.decodeDaemon(payload), "Swift accepted \(what)")
            XCTAssertTrue(try c("decode", hex(frame(payload))).hasPrefix("error "), "C accepted \(what)")
        }
    }
}
