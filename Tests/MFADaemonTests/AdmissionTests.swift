// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import XCTest
@testable import MFADaemon

/// Fair admission (Admission.swift): who may hold how many connection slots.
final class AdmissionTests: XCTestCase {
    func testAUserHoldsHerShareAndNeverTheRootReserve() {
        var a = Admission(capacity: 1024, perUser: 16, perAccount: 64, reservedForRoot: 64)
        for _ in 0..<16 { XCTAssertTrue(a.accept(peerUID: 1000).admitted) }
        XCTAssertFalse(a.accept(peerUID: 1000).admitted, "17th connection of one uid")
        // Her setuid su (root peer, real uid 1000) counts against the same share.
        XCTAssertTrue(a.accept(peerUID: 0).admitted)
        XCTAssertFalse(a.admits(Admission.owner(ofLoginFor: "bob", reportedRealUID: 1000)))
        // sshd's logins (real uid 0) are charged to the account, 64 each.
        let bob = Admission.owner(ofLoginFor: "bob", reportedRealUID: 0)
        XCTAssertEqual(bob, .account("bob"))
        XCTAssertEqual(Admission.owner(ofLoginFor: "bob", reportedRealUID: nil), .account("bob"))
        for _ in 0..<64 { XCTAssertTrue(a.admits(bob)); a.take(bob) }
        XCTAssertFalse(a.admits(bob))
        XCTAssertTrue(a.admits(.account("carol")))
    }

    func testUsersTogetherLeaveTheReserve() {
        var a = Admission(capacity: 100, perUser: 16, perAccount: 64, reservedForRoot: 64)
        // Reserve at most half: 50; a quarter of the other 50 per user: 12; a quarter of all per account.
        XCTAssertEqual(a.reservedForRoot, 50)
        XCTAssertEqual(a.perUser, 12)
        XCTAssertEqual(a.perAccount, 25)
        var admitted = 0
        for uid in 1000..<1010 {
            for _ in 0..<12 {
                if a.accept(peerUID: uid_t(uid)).admitted { admitted += 1 }
            }
        }
        XCTAssertEqual(admitted, 50)
        XCTAssertEqual(a.heldByUsers, 50)
        // Root peers still get in, up to the table's end.
        for _ in 0..<50 { XCTAssertTrue(a.accept(peerUID: 0).admitted) }
        XCTAssertFalse(a.accept(peerUID: 0).admitted)
        // Releasing frees both the slot and the share.
        a.release(.user(1000))
        XCTAssertEqual(a.open, 99)
        XCTAssertTrue(a.accept(peerUID: 1000).admitted)
    }

    func testATinyTableStillServesSomeone() {
        var a = Admission(capacity: 2, perUser: 16, perAccount: 64, reservedForRoot: 64)
        XCTAssertEqual(a.perUser, 1)
        XCTAssertTrue(a.accept(peerUID: 1000).admitted)
        XCTAssertFalse(a.accept(peerUID: 1001).admitted)
        XCTAssertTrue(a.accept(peerUID: 0).admitted)
    }
}
