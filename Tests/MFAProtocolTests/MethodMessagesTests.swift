// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFAProtocol

/// METHOD_ADD ... METHOD_REMOVE and METHODS (docs/protocol.md, issue 10).
final class MethodMessagesTests: XCTestCase {
    func testRoundTrip() throws {
        let requests: [MethodRequest] = [
            MethodRequest(.add, user: "alice", method: "email", address: "a@b.org", code: "123456"),
            MethodRequest(.add, user: "", method: "email"),
            MethodRequest(.confirm, user: "alice", method: "sms", code: "resend"),
            MethodRequest(.list, user: ""),
            MethodRequest(.prefer, user: "bob", method: "totp"),
            MethodRequest(.remove, user: "bob", method: "sms", code: "abcd-efgh-jkmn"),
        ]
        for r in requests {
            let frame = try FrameCodec.encode(ClientMessage.method(r))
            XCTAssertEqual(try FrameCodec.decodeClient(Array(frame.dropFirst(4))), .method(r))
        }
        let reply = DaemonMessage.methods(MethodsReply(user: "alice", preferred: "email", entries: [
            .init(method: "totp", detail: "", allowed: true), .init(method: "email", detail: "a***@b.org", allowed: false)]))
        XCTAssertEqual(try FrameCodec.decodeDaemon(Array(try FrameCodec.encode(reply).dropFirst(4))), reply)
    }

    func testWireLayoutMatchesTheDocument() throws {
        // 0x18, version, str user, str method, str address, str proof
        let frame = try FrameCodec.encode(ClientMessage.method(MethodRequest(.add, user: "a", method: "sms", address: "+1234567", code: "")))
        XCTAssertEqual(Array(frame.dropFirst(4)), [0x18, 1, 0, 1, 0x61, 0, 3, 0x73, 0x6D, 0x73, 0, 8] + Array("+1234567".utf8) + [0, 0])
        XCTAssertEqual(Array(try FrameCodec.encode(ClientMessage.method(MethodRequest(.list, user: ""))).dropFirst(4)), [0x1A, 1, 0, 0])
    }

    func testTruncatedAndTrailingBytesAreRefused() {
        XCTAssertThrowsError(try FrameCodec.decodeClient([0x1B, 1, 0, 1, 0x61]))
        XCTAssertThrowsError(try FrameCodec.decodeClient([0x1A, 1, 0, 0, 0]))
        XCTAssertThrowsError(try FrameCodec.decodeDaemon([0x96, 0, 0, 0, 0, 1]))
    }
}
