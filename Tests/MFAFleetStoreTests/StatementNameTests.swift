// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFAFleetStore

/// A prepared statement's name comes from its text alone (DatabaseConnection.statementName), so
/// that one name means one text on every server connection, behind a pooler too.
final class StatementNameTests: XCTestCase {
    func testTheNameIsTheTextsSHA256Prefix() {
        // printf 'SELECT 1' | sha256sum → e004ebd5b5532a4b…
        XCTAssertEqual(DatabaseConnection.statementName("SELECT 1"), "mfagate_e004ebd5b5532a4b")
    }

    func testAnotherTextGetsAnotherName() {
        XCTAssertNotEqual(DatabaseConnection.statementName("SELECT 1"), DatabaseConnection.statementName("SELECT 2"))
    }
}
