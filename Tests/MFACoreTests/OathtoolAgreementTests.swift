// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest
@testable import MFACore

/// Our TOTP against oath-toolkit's `oathtool` on random secrets, times, digests and lengths: the
/// RFC vectors catch a wrong algorithm, this catches anything the vectors happen not to exercise.
final class OathtoolAgreementTests: XCTestCase {
    func oathtool(_ arguments: [String]) throws -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/oathtool")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "oathtool \(arguments)")
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    func testAgreesWithOathtoolOnRandomSecretsAndTimes() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/oathtool") else {
            throw XCTSkip("oathtool is not installed (apt-get install oathtool)")
        }
        var generator = SystemRandomNumberGenerator()
        var compared = 0
        for round in 0..<60 {
            let digest = Crypto.Digest.allCases[round % 3]
            let digits = round % 2 == 0 ? 6 : 8
            let length = [10, 16, 20, 32, 64][round % 5]
            let secret = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let time = Int64.random(in: 0...4_000_000_000, using: &generator)
            let hex = secret.map { String(format: "%02x", $0) }.joined()
            // -w 3 prints the codes of 4 consecutive steps starting at --now.
            let codes = try oathtool(["--totp=\(digest.rawValue)", "-d", "\(digits)", "--now", "@\(time)", "-w", "3", hex])
            XCTAssertEqual(codes.count, 4)
            let parameters = OTPParameters(digest: digest, digits: digits, period: 30)
            for (i, expected) in codes.enumerated() {
                XCTAssertEqual(OTP.totp(secret: secret, unixTime: time + Int64(30 * i), parameters: parameters), expected,
                               "\(digest) \(digits) digits, secret \(hex), time \(time + Int64(30 * i))")
                compared += 1
            }
            // And base32, as enrollment hands it out, decodes to the same key oathtool reads.
            let b32 = try oathtool(["--totp", "-b", "--now", "@\(time)", Base32.encode(secret)])
            XCTAssertEqual(OTP.totp(secret: secret, unixTime: time), b32.first)
        }
        XCTAssertEqual(compared, 240)
    }
}
