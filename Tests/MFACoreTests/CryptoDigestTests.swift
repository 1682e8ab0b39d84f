// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore

/// SHA-256 through the once-initialised context (the replay journal's checksums): FIPS 180-2 vectors,
/// and the same answer on every call (each call works on its own copy of the context).
final class CryptoDigestTests: XCTestCase {
    func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    func digest(_ text: String) -> String {
        let bytes = Array(text.utf8)
        return hex(bytes.withUnsafeBytes { Crypto.sha256($0) })
    }

    func testKnownVectors() {
        XCTAssertEqual(digest(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        for _ in 0..<3 { XCTAssertEqual(digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") }
    }
}
