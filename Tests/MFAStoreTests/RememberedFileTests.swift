// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest
@testable import MFACore
@testable import MFAStore

/// Remembered logins in the file store (FileStore+Remembered.swift) and in the user file format
/// (the fleet store seals that format, so its entries are under the fleet key's MAC).
final class RememberedFileTests: XCTestCase {
    var root = ""
    let entry = RememberedLogin(service: "sshd", rhost: "192.0.2.7", created: 1_700_000_200)

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "mfagate-remember-\(UUID().uuidString)"
        XCTAssertEqual(mkdir(root, 0o700), 0)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    func record() throws -> UserRecord {
        UserRecord(user: try UserName(validating: "alice"), parameters: .standard, secret: Array("12345678901234567890".utf8),
                   created: 1_700_000_000, lastUsedStep: 56_666_666, lastSuccess: 1_700_000_100, recoveryCodes: [])
    }

    func inode(_ path: String) -> UInt64 {
        var st = stat()
        return stat(path, &st) == 0 ? UInt64(st.st_ino) : 0
    }

    func testTheUserFileFormatCarriesEntriesAndRefusesBadOnes() throws {
        var r = try record()
        r.remembered = [entry, RememberedLogin(service: "login", rhost: "host.example.org", created: 1_700_000_300)]
        let text = UserFileFormat.serialize(r)
        XCTAssertTrue(text.contains("remember 1700000200 sshd 192.0.2.7\n"))
        XCTAssertEqual(try UserFileFormat.parse(text, expectedUser: r.user), r)
        for bad in ["remember 1700000200 sshd\n", "remember x sshd 192.0.2.7\n", "remember 1 sshd 192.0.2.7 extra\n",
                    "remember 1 ss\u{7}hd 192.0.2.7\n"] {
            XCTAssertThrowsError(try UserFileFormat.parse(UserFileFormat.serialize(try record()) + bad, expectedUser: r.user), bad) { error in
                XCTAssertTrue("\(error)".contains("bad remember entry"), "\(error)")
            }
        }
    }

    func testALoginThatMakesAnEntryWritesOnlyTheJournalAndTheSideFileNeverTheUserFile() throws {
        let store = try FileStore(path: root)
        store.defersJournalSync = true
        var r = try record()
        try store.save(r)
        let userInode = inode(root + "/users/alice")
        r = try XCTUnwrap(try store.load(r.user))
        r.lastUsedStep = 56_666_700
        r.lastSuccess = 1_700_000_200
        r.remembered = [entry]
        try store.save(r)
        XCTAssertEqual(inode(root + "/users/alice"), userInode, "the user file was rewritten")
        XCTAssertTrue(store.hasUnsyncedJournal, "the replay state went to the journal, unflushed")
        XCTAssertFalse(try String(contentsOfFile: root + "/users/alice", encoding: .utf8).contains("remember"))
        let side = try String(contentsOfFile: root + "/remembered/alice", encoding: .utf8)
        XCTAssertTrue(side.contains("enrolled 1700000000\nremember 1700000200 sshd 192.0.2.7\n"), side)
        XCTAssertEqual(try store.load(r.user)?.remembered, [entry])
        // A restarted daemon reads it back.
        try store.syncJournal()
        try store.closeJournal()
    }

    func testEntriesOfAnotherEnrollmentOrADamagedFileCountForNothing() throws {
        let store = try FileStore(path: root)
        var r = try record()
        r.remembered = [entry]
        try store.save(r)
        XCTAssertEqual(try store.load(r.user)?.remembered, [entry])
        var again = try record()
        again.created += 1  // re-enrolled
        try store.save(again)
        XCTAssertEqual(try store.load(r.user)?.remembered, [])
        try store.save(r)
        let path = root + "/remembered/alice"
        for damaged in ["", "remember 1700000200 sshd 192.0.2.7\n", "enrolled 1700000000\nremember garbage\n", "enrolled 1700000000\nenrolled 1700000000\n"] {
            try damaged.write(toFile: path, atomically: false, encoding: .utf8)
            XCTAssertEqual(try store.load(r.user)?.remembered, [], damaged)
        }
    }

    func testEmptyingTheEntriesAndDeletingTheUserRemoveTheSideFile() throws {
        let store = try FileStore(path: root)
        var r = try record()
        r.remembered = [entry]
        try store.save(r)
        XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/remembered/alice"))
        r.remembered = []
        try store.save(r)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/remembered/alice"))
        r.remembered = [entry]
        try store.save(r)
        try store.delete(r.user)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/remembered/alice"))
        XCTAssertNil(try store.load(r.user))
    }

    func testNoDirectoryUntilAnEntryAndAnUnwritableOneNeverFailsALogin() throws {
        let store = try FileStore(path: root)
        var r = try record()
        try store.save(r)
        _ = try store.load(r.user)
        try store.delete(r.user)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/remembered"), "made without an entry")
        // `remembered` is not a directory the daemon may use: the entry is lost, the save goes through.
        XCTAssertTrue(FileManager.default.createFile(atPath: root + "/remembered", contents: Data()))
        r.remembered = [entry]
        XCTAssertNoThrow(try store.save(r))
        XCTAssertEqual(try store.load(r.user)?.remembered, [])
        XCTAssertEqual(try store.load(r.user)?.lastUsedStep, r.lastUsedStep)
    }
}
