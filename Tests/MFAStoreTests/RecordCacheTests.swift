// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFAStore

final class RecordCacheTests: XCTestCase {
    func testAnEntrySurvivesHalfTheLimitOfLaterInsertionsAndTheSizeStaysBounded() {
        var cache = RecordCache<Int>(limit: 512)
        for i in 0..<10_000 {
            cache["user\(i)"] = i
            XCTAssertLessThanOrEqual(cache.count, 512)
            if i >= 256 {
                // a login's entry made at its request is still there 255 requests later
                XCTAssertEqual(cache["user\(i - 255)"], i - 255)
            }
        }
    }

    func testRemovalAndReplacementReachBothGenerations() {
        var cache = RecordCache<Int>(limit: 4)
        cache["a"] = 1; cache["b"] = 2; cache["c"] = 3   // "a" and "b" are now the old generation
        cache["a"] = 10
        XCTAssertEqual(cache["a"], 10)
        cache["b"] = nil
        XCTAssertNil(cache["b"])
        XCTAssertEqual(cache["c"], 3)
    }
}
