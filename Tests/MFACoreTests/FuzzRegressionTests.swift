import XCTest
@testable import MFACore

/// Inputs the fuzzers (Tests/fuzz/) found, each kept as a test so the bug cannot come back.
final class ConfigFuzzRegressionTests: XCTestCase {
    /// ConfigFuzz.swift, crlf-hides-setting: Swift reads "\r\n" as one Character, so splitting the
    /// file on the Character "\n" made a CR LF file one line; after a comment line every setting
    /// was silently ignored (here `state_dir`), and `mode = required` could be lost the same way.
    func testCRLFLineEndsDoNotHideSettingsAfterAComment() throws {
        let found = "#\u{0f}\r\r\nstate_dir  =/#"
        XCTAssertEqual(try ConfigParser.parse(found, file: "f").stateDirectory, "/#")
        let windows = "# edited on Windows\r\nmode = required\r\nwindow = 2\r\n"
        let config = try ConfigParser.parse(windows, file: "f")
        XCTAssertEqual(config.mode, .required)
        XCTAssertEqual(config.window, 2)
    }

    func testCRLFErrorsNameTheirOwnLine() {
        XCTAssertThrowsError(try ConfigParser.parse("mode = off\r\nwindow = 99\r\n", file: "f")) { error in
            XCTAssertEqual((error as? ConfigError)?.line, 2)
        }
    }
}
