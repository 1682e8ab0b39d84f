// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest
@testable import MFACore
@testable import MFAStore

final class FileStoreTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "mfagate-store-\(UUID().uuidString)"
        XCTAssertEqual(mkdir(root, 0o700), 0)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    func record(_ name: String = "alice") throws -> UserRecord {
        let codes = (0..<10).map { i in RecoveryCodes.Hashed(salt: [UInt8](repeating: UInt8(i), count: 16), hash: [UInt8](repeating: 7, count: 32)) }
        return UserRecord(user: try UserName(validating: name), parameters: .standard, secret: Array("12345678901234567890".utf8),
                          created: 1_700_000_000, lastUsedStep: 56_666_666, lastSuccess: 1_700_000_100, recoveryCodes: codes)
    }

    func testSaveThenLoadRoundTripsWithMode0600AndNoTempFilesLeft() throws {
        let store = try FileStore(path: root)
        let r = try record()
        try store.save(r)
        XCTAssertEqual(try store.load(r.user), r)
        var st = stat()
        XCTAssertEqual(stat(root + "/users/alice", &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root + "/tmp"), [])
        XCTAssertNil(try store.load(try UserName(validating: "nobody-here")))
        try store.delete(r.user)
        XCTAssertNil(try store.load(r.user))
    }

    func testTheFileNeverContainsRecoveryCodesInClear() throws {
        let store = try FileStore(path: root)
        let code = "abcd-efgh-jkmn"
        var r = try record()
        r.recoveryCodes = [RecoveryCodes.hash(normalizedCode: RecoveryCodes.normalize(code)!, salt: Array(repeating: 1, count: 16))]
        try store.save(r)
        let text = try String(contentsOfFile: root + "/users/alice", encoding: .utf8)
        XCTAssertFalse(text.contains("abcdefghjkmn"))
        XCTAssertFalse(text.contains(code))
    }

    func assertRefused(_ expectedFragment: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(expectedFragment), "\(error)", file: file, line: line)
        }
    }

    func testUnsafeStateDirectoriesAreRefusedWithTheReason() throws {
        chmod(root, 0o777)
        assertRefused("group- or world-writable") { _ = try FileStore(path: root) }
        chmod(root, 0o770)
        assertRefused("group- or world-writable") { _ = try FileStore(path: root) }
        chmod(root, 0o700)
        let link = root + "-link"
        XCTAssertEqual(symlink(root, link), 0)
        defer { unlink(link) }
        assertRefused("symbolic link") { _ = try FileStore(path: link) }
        assertRefused("does not exist") { _ = try FileStore(path: root + "/missing") }
        assertRefused("owned by uid") { _ = try FileStore(path: root, owner: geteuid() + 1) }
    }

    func testASecondStoreOnTheSameDirectoryIsRefused() throws {
        let first = try FileStore(path: root)
        assertRefused("locked by another running mfagated") { _ = try FileStore(path: root) }
        withExtendedLifetime(first) {}
    }

    func testUnsafeUserFilesAreRefusedAndNotFollowed() throws {
        let store = try FileStore(path: root)
        try store.save(try record())
        let alice = try UserName(validating: "alice")
        chmod(root + "/users/alice", 0o644)
        assertRefused("must be 0600") { _ = try store.load(alice) }
        chmod(root + "/users/alice", 0o600)
        if geteuid() == 0 {
            chown(root + "/users/alice", 65534, 65534)
            assertRefused("owned by uid 65534") { _ = try store.load(alice) }
            chown(root + "/users/alice", 0, 0)
        }
        let target = root + "/elsewhere"
        FileManager.default.createFile(atPath: target, contents: Data("secret stuff".utf8))
        XCTAssertEqual(symlink(target, root + "/users/bob"), 0)
        assertRefused("symbolic link") { _ = try store.load(try UserName(validating: "bob")) }
        // Saving over the symlink replaces the link itself; the target is untouched.
        try store.save(try record("bob"))
        XCTAssertEqual(try String(contentsOfFile: target, encoding: .utf8), "secret stuff")
    }

    func testDamagedFilesGiveOneClearError() throws {
        let store = try FileStore(path: root)
        let alice = try UserName(validating: "alice")
        let full = UserFileFormat.serialize(try record())
        let cases: [(String, String)] = [
            (String(full.prefix(60)), "no `version` line"),     // truncated inside the header
            (full.split(separator: "\n").prefix(4).joined(separator: "\n") + "\n", "missing `algorithm`"), // cut at a line end
            ("garbage\u{0}\u{1}", "expected `key value`"),
            ("colour blue\n", "first field must be `version`"),
            ("", "no `version` line"),
            ("version 9\n", "newer mfagate"),
            (full.replacingOccurrences(of: "user alice", with: "user mallory"), "another user"),
            (full + "colour blue\n", "unknown field"),
            (String(repeating: "#", count: 70_000), "larger than"),
        ]
        for (content, fragment) in cases {
            let path = root + "/users/alice"
            unlink(path)
            FileManager.default.createFile(atPath: path, contents: Data(content.utf8), attributes: [.posixPermissions: 0o600])
            assertRefused(fragment) { _ = try store.load(alice) }
        }
    }

    func testStaleTemporaryFilesAreRemovedAtStart() throws {
        do { _ = try FileStore(path: root) }
        FileManager.default.createFile(atPath: root + "/tmp/alice.1.1", contents: Data("half".utf8))
        _ = try FileStore(path: root)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root + "/tmp"), [])
    }
}
