// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFADaemon
@testable import MFAProtocol

/// The protocol version of a CLI request is checked once, in `Authority.request`, for every verb.
final class RequestVersionTests: XCTestCase {
    func testEveryRequestOfAnotherVersionIsRefusedBeforeItsHandlerRuns() throws {
        let h = try LoginHarness()
        let v = WireProtocol.version &+ 1
        let requests: [ClientMessage] = [
            .enroll(EnrollRequest(version: v, user: "alice", secret: "", replaceExisting: false)),
            .status(version: v, user: "alice"),
            .status(version: v, user: "alice", remembered: true),
            .check(version: v, user: "alice", service: "sshd", rhost: ""),
            .check(version: v, user: "alice", service: "sshd", rhost: "", sshKey: CheckSSHKey(type: "ssh-ed25519", blob: "AAAA")),
            .unlock(version: v, user: "alice", rhost: ""),
            .enrollBegin(EnrollBeginRequest(version: v, user: "alice")),
            .enrollConfirm(UserCodeRequest(version: v, user: "alice", code: "1")),
            .regenerateRecoveryCodes(UserCodeRequest(version: v, user: "alice", code: "1")),
            .disable(UserCodeRequest(version: v, user: "alice", code: "")),
            .list(version: v),
            .importGoogleAuthenticator(ImportRequest(version: v, user: "alice", content: "", replaceExisting: false)),
            .invite(InviteRequest(version: v, user: "alice")),
            .method(MethodRequest(.list, version: v, user: "alice")),
        ]
        for request in requests {
            XCTAssertNotNil(request.requestVersion, "\(request)")
            guard case .finish(.error(.unsupportedVersion, _)) = h.authority.request(request, peer: h.peer) else {
                return XCTFail("\(request) was not refused")
            }
        }
        // Root's enroll of that version did nothing.
        XCTAssertNil(try h.record("alice"))
        // The current version reaches the handler.
        guard case .finish(.status(let status)) = h.authority.request(.status(version: WireProtocol.version, user: "alice"), peer: h.peer) else {
            return XCTFail("status was not answered")
        }
        XCTAssertFalse(status.enrolled)
        XCTAssertNil(ClientMessage.reply(answer: "x").requestVersion)
    }
}
