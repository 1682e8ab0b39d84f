// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest
@testable import MFACore
@testable import MFAStore

/// `STATE/audit` (issue 19, part 5): append-only, bounded by rotation to `audit.1`, damage skipped.
final class AuditLogTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "mfagate-audit-\(UUID().uuidString)"
        XCTAssertEqual(mkdir(root, 0o700), 0)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    func record(_ i: Int) -> AuditRecord {
        AuditRecord(time: Int64(1_000 + i), user: "u\(i)", service: "sshd", rhost: "192.0.2.1", decision: "refuse",
                    rule: "config line 1: mode = audit", reason: "not enrolled, MFA required")
    }

    func testRecordsRotateAtTheCapAndStayBounded() throws {
        let store = try FileStore(path: root)
        let log = AuditLog(cap: 4096, openFiles: { store })
        for i in 0..<1000 { try log.append(record(i)) }
        let size = { (name: String) in (try FileManager.default.attributesOfItem(atPath: "\(self.root)/\(name)")[.size] as? Int) ?? -1 }
        XCTAssertLessThanOrEqual(try size("audit"), 4096 + 200)
        XCTAssertLessThanOrEqual(try size("audit.1"), 4096 + 200)
        let (records, skipped, problems) = log.read(since: 0)
        XCTAssertEqual(skipped, 0)
        XCTAssertEqual(problems, [])
        XCTAssertEqual(records.last, record(999), "the newest records are kept")
        XCTAssertGreaterThan(records.count, 40)
        XCTAssertEqual(records.map(\.time), records.map(\.time).sorted(), "oldest first across the two files")
        XCTAssertEqual(log.read(since: 1990).records.count, 10)
        // A new daemon (a new AuditLog) learns the size from the file and goes on appending.
        let again = AuditLog(cap: 4096, openFiles: { store })
        try again.append(record(1000))
        XCTAssertEqual(again.read(since: 2000).records, [record(1000)])
    }

    func testTornAndDamagedLinesAreSkippedAndAnUnreadableFileIsOnlyReported() throws {
        let store = try FileStore(path: root)
        let log = AuditLog(openFiles: { store })
        try log.append(record(1))
        let fd = open("\(root)/audit", O_WRONLY | O_APPEND)
        XCTAssertTrue(fd >= 0)
        let junk = Array("nonsense\nv1\t2\tu2\tss".utf8)  // a line torn by a crash mid-append
        XCTAssertEqual(write(fd, junk, junk.count), junk.count)
        close(fd)
        try log.append(record(3))
        let (records, skipped, _) = log.read(since: 0)
        XCTAssertEqual(records, [record(1), record(3)])
        XCTAssertEqual(skipped, 2)
        // audit.1 is a symbolic link (not the daemon's file): reported, the rest still read.
        XCTAssertEqual(symlink("/etc/passwd", "\(root)/audit.1"), 0)
        let after = log.read(since: 0)
        XCTAssertEqual(after.records, [record(1), record(3)])
        XCTAssertEqual(after.problems.count, 1)
    }
}
