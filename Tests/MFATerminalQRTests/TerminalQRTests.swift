// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFATerminalQR

final class TerminalQRTests: XCTestCase {
    func testMatrixHasFinderPatternsAndQuietZone() throws {
        let rows = try TerminalQR.matrix("otpauth://totp/host:alice%40host?secret=JBSWY3DPEHPK3PXP&issuer=host")
        let m = TerminalQR.margin
        XCTAssertEqual(rows.count, rows[0].count)
        XCTAssertEqual((rows.count - 2 * m - 21) % 4, 0, "QR sizes are 21 + 4k modules")
        XCTAssertFalse(rows[0].contains(true), "quiet zone is light")
        // The top-left finder pattern: a dark 7-module ring around a light ring around a dark 3x3.
        XCTAssertTrue((0..<7).allSatisfy { rows[m][m + $0] && rows[m + 6][m + $0] })
        XCTAssertFalse(rows[m + 1][m + 1])
        XCTAssertTrue(rows[m + 3][m + 3])
    }

    func testHalfBlocksUseTwoModuleRowsPerLineAndAsciiTwoCharactersPerModule() throws {
        let text = "otpauth://totp/x:y?secret=ABC"
        let rows = try TerminalQR.matrix(text)
        let half = try TerminalQR.render(text, style: .halfBlocks).split(separator: "\n")
        XCTAssertEqual(half.count, (rows.count + 1) / 2)
        XCTAssertTrue(half.allSatisfy { $0.count == rows.count })
        XCTAssertTrue(half.joined().allSatisfy { "█▀▄ ".contains($0) })
        let ascii = try TerminalQR.render(text, style: .ascii).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(ascii.count, rows.count)
        XCTAssertTrue(ascii.allSatisfy { $0.count == 2 * rows.count && $0.allSatisfy { $0 == "#" || $0 == " " } })
    }
}
