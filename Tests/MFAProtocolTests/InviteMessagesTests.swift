// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFAProtocol

/// INVITE and INVITED (docs/protocol.md, issue 14).
final class InviteMessagesTests: XCTestCase {
    func testRoundTrip() throws {
        for r in [InviteRequest(user: "carol"), InviteRequest(user: "dave", lifetime: 1800)] {
            let frame = try FrameCodec.encode(ClientMessage.invite(r))
            XCTAssertEqual(try FrameCodec.decodeClient(Array(frame.dropFirst(4))), .invite(r))
        }
        let reply = DaemonMessage.invited(InviteReply(user: "carol", code: "abcd-efgh-jkmn-pqrs-tuvw", expires: 1_800_604_800, note: "n"))
        XCTAssertEqual(try FrameCodec.decodeDaemon(Array(try FrameCodec.encode(reply).dropFirst(4))), reply)
    }

    func testWireLayoutMatchesTheDocument() throws {
        // 0x23, version, str user, u64 lifetime (seconds, 0 = default)
        let frame = try FrameCodec.encode(ClientMessage.invite(InviteRequest(user: "a", lifetime: 0x0102)))
        XCTAssertEqual(Array(frame.dropFirst(4)), [0x23, 1, 0, 1, 0x61, 0, 0, 0, 0, 0, 0, 1, 2])
    }

    func testNegativeTruncatedAndTrailingAreRefused() {
        XCTAssertThrowsError(try FrameCodec.decodeClient([0x23, 1, 0, 1, 0x61, 0xFF, 0, 0, 0, 0, 0, 0, 1]))
        XCTAssertThrowsError(try FrameCodec.decodeClient([0x23, 1, 0, 1, 0x61, 0, 0]))
        XCTAssertThrowsError(try FrameCodec.decodeClient([0x23, 1, 0, 1, 0x61, 0, 0, 0, 0, 0, 0, 0, 0, 9]))
        XCTAssertThrowsError(try FrameCodec.decodeDaemon([0xA3, 0, 1, 0x61]))
    }
}
