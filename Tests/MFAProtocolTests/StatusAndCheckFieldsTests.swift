// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFAProtocol

/// The fields added to STATUS and CHECK without a new version number (docs/protocol.md): a request
/// without them, and an answer to it, are the old frames byte for byte, so an older CLI or daemon
/// on the other side reads them as before; with them, both sides of this version round-trip.
final class StatusAndCheckFieldsTests: XCTestCase {
    func payload(_ frame: [UInt8]) -> [UInt8] { Array(frame.dropFirst(4)) }

    func testPlainStatusAndCheckAreTheOldFramesByteForByte() throws {
        // tag, version, str user "al"
        XCTAssertEqual(payload(try FrameCodec.encode(ClientMessage.status(version: 1, user: "al"))), [0x11, 1, 0, 2, 0x61, 0x6c])
        // tag, version, str user, str service, str rhost
        XCTAssertEqual(payload(try FrameCodec.encode(ClientMessage.check(version: 1, user: "a", service: "s", rhost: ""))),
                       [0x20, 1, 0, 1, 0x61, 0, 1, 0x73, 0, 0])
        // The answer to a plain STATUS carries no list: the old layout, ending with `pending`.
        let old = payload(try FrameCodec.encode(DaemonMessage.status(StatusReply(user: "a", enrolled: true, recoveryCodesLeft: 2))))
        XCTAssertEqual(old, [0x91, 0, 1, 0x61, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(try FrameCodec.decodeDaemon(old), .status(StatusReply(user: "a", enrolled: true, recoveryCodesLeft: 2)))
    }

    func testTheNewFieldsRoundTripAndSitAfterTheOldOnes() throws {
        let status = ClientMessage.status(version: 1, user: "al", remembered: true)
        XCTAssertEqual(payload(try FrameCodec.encode(status)), [0x11, 1, 0, 2, 0x61, 0x6c, WireProtocol.statusFlagRemembered])
        XCTAssertEqual(try FrameCodec.decodeClient(payload(try FrameCodec.encode(status))), status)
        // A flags byte with only unknown bits reads as a plain STATUS.
        XCTAssertEqual(try FrameCodec.decodeClient([0x11, 1, 0, 0, 0x80]), .status(version: 1, user: ""))
        let key = CheckSSHKey(type: "ssh-ed25519", blob: "AAAAC3NzaC1lZDI1NTE5AAAAIEmLcX78a0TrPtbBhPwPd3tLYEe6jc+2qVU03KY2wdN/")
        let check = ClientMessage.check(version: 1, user: "a", service: "s", rhost: "", sshKey: key)
        let checkBytes = payload(try FrameCodec.encode(check))
        XCTAssertEqual(Array(checkBytes.prefix(11)), [0x20, 1, 0, 1, 0x61, 0, 1, 0x73, 0, 0, WireProtocol.checkFlagSSHKey])
        XCTAssertEqual(try FrameCodec.decodeClient(checkBytes), check)
        XCTAssertEqual(try FrameCodec.decodeClient([0x20, 1, 0, 0, 0, 0, 0, 0, 0]), .check(version: 1, user: "", service: "", rhost: ""))
        let hosts = [RememberedHost(rhost: "192.0.2.7", service: "sshd", since: 1_800_000_000, until: 1_800_028_800),
                     RememberedHost(rhost: "host.example.org", service: "login", since: 5, until: .max)]
        for list in [hosts, []] {
            let reply = DaemonMessage.status(StatusReply(user: "a", enrolled: true, recoveryCodesLeft: 9, method: "totp",
                                                         enrolledSince: 1, lastSuccess: 2, remembered: list))
            XCTAssertEqual(try FrameCodec.decodeDaemon(payload(try FrameCodec.encode(reply))), reply)
        }
        // LIST's entries never carry the list (their layout has no room for it).
        let listed = DaemonMessage.list([StatusReply(user: "a", enrolled: true, recoveryCodesLeft: 1, remembered: hosts)])
        XCTAssertEqual(try FrameCodec.decodeDaemon(payload(try FrameCodec.encode(listed))),
                       .list([StatusReply(user: "a", enrolled: true, recoveryCodesLeft: 1)]))
    }

    func testMalformedNewFieldsAreRefused() throws {
        let cases: [[UInt8]] = [
            [0x11, 1, 0, 0, 1, 0],                    // bytes after the flags
            [0x20, 1, 0, 0, 0, 0, 0, 0, 1],           // key flag without the key
            [0x20, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],  // an empty key type
            [0x20, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0x61],  // the blob missing
        ]
        for bytes in cases { XCTAssertThrowsError(try FrameCodec.decodeClient(bytes), "\(bytes)") }
        let long = CheckSSHKey(type: "ssh-ed25519", blob: String(repeating: "A", count: WireProtocol.maximumSSHAuthInfo + 1))
        XCTAssertThrowsError(try FrameCodec.encode(ClientMessage.check(version: 1, user: "a", service: "s", rhost: "", sshKey: long)))
        // A STATUS answer whose list is cut short.
        var reply = payload(try FrameCodec.encode(DaemonMessage.status(StatusReply(user: "a", enrolled: true, recoveryCodesLeft: 0,
            remembered: [RememberedHost(rhost: "h", service: "s", since: 1, until: 2)]))))
        reply.removeLast()
        XCTAssertThrowsError(try FrameCodec.decodeDaemon(reply))
    }
}
