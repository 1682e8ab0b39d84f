// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest
import MFACore
import MFAStore
@testable import MFAFleetStore

/// The offline cache's files (FleetOfflineCache): sealed per user, pending and clean names, damage.
final class FleetOfflineCacheTests: XCTestCase {
    let keys = FleetKeyring(primary: FleetCipher(key: (0..<32).map { UInt8($0) }), extra: nil)

    func record(_ name: String, step: Int64) throws -> UserRecord {
        UserRecord(user: try UserName(validating: name), parameters: .standard, secret: [UInt8](repeating: 7, count: 20),
                   created: 100, lastUsedStep: step, recoveryCodes: [])
    }

    func testEntriesRoundTripMovePendingAndStaySealed() throws {
        let state = NSTemporaryDirectory() + "cache-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(mkdir(state, 0o700), 0)
        defer { try? FileManager.default.removeItem(atPath: state) }
        let cache = FleetOfflineCache(stateDirectory: state)
        XCTAssertNil(cache.prepare())
        XCTAssertNil(cache.read("alice", keys: keys).entry)
        XCTAssertNil(cache.read("alice", keys: keys).problem, "no entry is not a problem")
        let clean = OfflineEntry(version: 5, readAt: 1000, pending: false, record: try record("alice", step: 10))
        XCTAssertTrue(try cache.write("alice", clean, cipher: keys.primary, durable: false))
        XCTAssertEqual(cache.read("alice", keys: keys).entry, clean)
        var used = clean
        used.pending = true
        used.record.lastUsedStep = 11
        XCTAssertTrue(try cache.write("alice", used, cipher: keys.primary, durable: true))
        XCTAssertEqual(cache.pending, ["alice"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: state + "/fleet-cache/c-alice"))
        XCTAssertEqual(cache.read("alice", keys: keys).entry, used)
        XCTAssertEqual(cache.count, 1)
        // Counted again at the next start, pending included.
        let again = FleetOfflineCache(stateDirectory: state)
        XCTAssertNil(again.prepare())
        XCTAssertEqual(again.pending, ["alice"])
        XCTAssertEqual(again.count, 1)
        // Not in clear, and not usable under another name.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: state + "/fleet-cache/p-alice"))
        XCTAssertNil(bytes.range(of: Data("JBSWY3".utf8)))
        XCTAssertEqual(rename(state + "/fleet-cache/p-alice", state + "/fleet-cache/c-bob"), 0)
        XCTAssertNil(FleetOfflineCache(stateDirectory: state).read("bob", keys: keys).entry)
        XCTAssertNotNil(FleetOfflineCache(stateDirectory: state).read("bob", keys: keys).problem)
        again.remove("bob")
        XCTAssertFalse(FileManager.default.fileExists(atPath: state + "/fleet-cache/c-bob"))
    }

    func testACacheEntryDoesNotOpenAsARowNorARowAsAnEntry() throws {
        let cipher = keys.primary
        let plain = Array("5 1000 0\nversion 1\n".utf8)
        let entry = try cipher.sealCacheEntry(plain, user: "alice")
        XCTAssertEqual(cipher.openCacheEntry(entry, user: "alice"), plain)
        XCTAssertNil(cipher.openCacheEntry(entry, user: "bob"))
        XCTAssertNil(cipher.open(entry, user: "alice", version: 5))
        XCTAssertNil(cipher.openCacheEntry(try cipher.seal(plain, user: "alice", version: 5), user: "alice"))
    }

    func testOfflineOnlyTheReplayStateMayChange() throws {
        let codes = (0..<2).map { RecoveryCodes.Hashed(salt: [UInt8](repeating: UInt8($0), count: 16), hash: [UInt8](repeating: 1, count: 32)) }
        var old = try record("alice", step: 10)
        old.recoveryCodes = codes
        var login = old
        login.lastUsedStep = 11
        login.lastSuccess = 500
        login.drift = 1
        login.recoveryCodes = [codes[1]]
        XCTAssertTrue(PostgresStore.onlyReplayStateChanged(from: old, to: login))
        var regenerated = old
        regenerated.recoveryCodes = [RecoveryCodes.Hashed(salt: [UInt8](repeating: 9, count: 16), hash: [UInt8](repeating: 1, count: 32))]
        XCTAssertFalse(PostgresStore.onlyReplayStateChanged(from: old, to: regenerated))
        var reenrolled = old
        reenrolled.secret = [UInt8](repeating: 8, count: 20)
        XCTAssertFalse(PostgresStore.onlyReplayStateChanged(from: old, to: reenrolled))
        var newAddress = old
        newAddress.email = "alice@example.org"
        XCTAssertFalse(PostgresStore.onlyReplayStateChanged(from: old, to: newAddress))
    }

    func testConfigKeysAndTheirSentences() throws {
        func parse(_ text: String) throws -> DaemonConfig { try ConfigParser.parse(text, file: "/etc/mfagate/mfagate.conf") }
        XCTAssertEqual(try parse("").fleetOffline, .refuse)
        XCTAssertEqual(try parse("").fleetOfflineMaxAge, 7 * 86400)
        let set = try parse("fleet_offline = cache\nfleet_offline_max_age = 12h\n")
        XCTAssertEqual(set.fleetOffline, .cache)
        XCTAssertEqual(set.fleetOfflineMaxAge, 12 * 3600)
        XCTAssertEqual(FleetSettings(set, hostName: "a").offline, .cache)
        XCTAssertEqual(ConfigParser.defaultText("fleet_offline_max_age", DaemonConfig()), "1w", "7 days")
        for (text, fragment) in [("fleet_offline = yes\n", "`fleet_offline` must be refuse or cache"),
                                 ("fleet_offline_max_age = 0\n", "duration like")] {
            XCTAssertThrowsError(try parse(text), text) { error in
                XCTAssertTrue("\(error)".contains(fragment) && "\(error)".hasPrefix("/etc/mfagate/mfagate.conf:1"), "\(error)")
            }
        }
    }

    func testAnUnsafeDirectoryTurnsTheCacheOffWithASentence() throws {
        let state = NSTemporaryDirectory() + "cache-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(mkdir(state, 0o700), 0)
        defer { try? FileManager.default.removeItem(atPath: state) }
        XCTAssertEqual(mkdir(state + "/fleet-cache", 0o755), 0)
        XCTAssertEqual(chmod(state + "/fleet-cache", 0o755), 0)
        XCTAssertTrue(FleetOfflineCache(stateDirectory: state).prepare()?.contains("not private") == true)
    }
}
