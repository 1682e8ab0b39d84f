// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import MFASafeFile
import XCTest

/// The one reader of trusted files: each rule refuses the file it is about, checked on the descriptor.
final class SafeFileReaderTests: XCTestCase {
    var dir = ""

    override func setUp() {
        var template = Array("/tmp/mfagate-safefile-XXXXXX".utf8CString)
        dir = String(cString: mkdtemp(&template)!)
    }

    override func tearDown() {
        _ = try? FileManager.default.removeItem(atPath: dir)
    }

    func file(_ name: String, _ text: String, mode: mode_t = 0o600, owner: uid_t? = nil) -> String {
        let path = "\(dir)/\(name)"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        precondition(fd >= 0)
        _ = text.utf8CString.withUnsafeBytes { write(fd, $0.baseAddress, text.utf8.count) }
        close(fd)
        chmod(path, mode)
        if let owner { chown(path, owner, owner) }
        return path
    }

    func problem(_ path: String, _ rules: SafeFileRules) -> SafeFileProblem? {
        do { _ = try SafeFileReader.read(path, rules: rules); return nil } catch { return error }
    }

    func testReadsAFileThatFollowsTheRules() throws {
        let path = file("ok", "mode = required\n", mode: 0o600)
        let (bytes, st) = try SafeFileReader.read(path, rules: .secret(owner: geteuid(), maximumSize: 100))
        XCTAssertEqual(String(decoding: bytes, as: UTF8.self), "mode = required\n")
        XCTAssertEqual(st.st_size, 16)
    }

    func testRefusesASymbolicLinkMissingFileAndNonRegularFile() {
        let real = file("real", "x")
        symlink(real, "\(dir)/link")
        let rules = SafeFileRules.secret(owner: geteuid(), maximumSize: 100)
        XCTAssertEqual(problem("\(dir)/link", rules), .symbolicLink)
        XCTAssertEqual(problem("\(dir)/absent", rules), .missing)
        mkfifo("\(dir)/fifo", 0o600)  // O_NONBLOCK: opening a FIFO does not hang
        XCTAssertEqual(problem("\(dir)/fifo", rules), .notRegular)
        XCTAssertEqual(problem(dir, rules), .notRegular)
    }

    func testRefusesTheWrongOwner() {
        let path = file("theirs", "x", owner: 65534)
        XCTAssertEqual(problem(path, .secret(owner: geteuid(), maximumSize: 100)), .owner(65534))
        let rootOwned = SafeFileRules.rootOwned(maximumSize: 100)
        XCTAssertEqual(problem(path, rootOwned), .owner(65534))
        XCTAssertEqual(SafeFileProblem.owner(65534).sentence(path: path, what: "config file", rules: rootOwned),
                       "the config file \(path) is owned by uid 65534, not by root; chown it")
    }

    func testSecretsMustBePrivateAndTheConfigNotWritableByOthers() {
        let readable = file("readable", "x", mode: 0o644)
        XCTAssertEqual(problem(readable, .secret(owner: geteuid(), maximumSize: 100)), .mode(0o644))
        if geteuid() == 0 { XCTAssertNil(problem(readable, .rootOwned(maximumSize: 100))) }
        for mode: mode_t in [0o664, 0o646, 0o666] {
            let writable = file("w\(mode)", "x", mode: mode)
            let rules = SafeFileRules(owners: [geteuid()], forbiddenModeBits: 0o022, maximumSize: 100)
            XCTAssertEqual(problem(writable, rules), .mode(mode))
            XCTAssertTrue(SafeFileProblem.mode(mode).sentence(path: writable, what: "config file", rules: rules)
                .contains("is writable by group or others (mode \(String(mode, radix: 8))); chmod go-w it"))
        }
    }

    func testRefusesALargeFileAndAHardLinkWhenAsked() {
        let big = file("big", String(repeating: "a", count: 101))
        XCTAssertEqual(problem(big, .secret(owner: geteuid(), maximumSize: 100)), .tooLarge(limit: 100))
        XCTAssertNil(problem(big, .secret(owner: geteuid(), maximumSize: 101)))
        link(big, "\(dir)/second")
        let single = SafeFileRules(owners: [geteuid()], forbiddenModeBits: 0o077, maximumSize: 1000, singleLink: true)
        XCTAssertEqual(problem(big, single), .hardLinks(2))
    }

    func testReadsRelativeToADirectoryDescriptor() throws {
        _ = file("inside", "abc")
        let dirFD = open(dir, O_RDONLY | O_DIRECTORY)
        defer { close(dirFD) }
        XCTAssertEqual(try SafeFileReader.read(at: dirFD, "inside", rules: .secret(owner: geteuid(), maximumSize: 10)).bytes, Array("abc".utf8))
    }
}
