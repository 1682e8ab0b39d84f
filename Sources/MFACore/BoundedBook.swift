// SPDX-License-Identifier: Apache-2.0
/// Caps for the daemon's books kept per name or per address (first sightings, wrong-code counts,
/// codes in flight, send counts): a flood of distinct names or addresses evicts the oldest
/// entries instead of growing memory, files or start-up time without end. Pure: no I/O.
public enum BoundedBook {
    /// Removes the entries with the smallest `age` until at most `limit` remain (ties: the
    /// smaller key goes first, so the result does not depend on the dictionary's order). Over by
    /// one, one pass finds the oldest; over by more, one sort. Returns the evicted keys.
    @discardableResult
    public static func evictOldest<K: Comparable, V>(_ book: inout [K: V], limit: Int, age: (V) -> Int64) -> [K] {
        let excess = book.count - max(0, limit)
        guard excess > 0 else { return [] }
        if excess == 1, let oldest = book.min(by: { (age($0.value), $0.key) < (age($1.value), $1.key) }) {
            book[oldest.key] = nil
            return [oldest.key]
        }
        let evicted = book.sorted { (age($0.value), $0.key) < (age($1.value), $1.key) }.prefix(excess).map(\.key)
        for key in evicted { book[key] = nil }
        return evicted
    }

    /// Where a full book of `limit` entries is cut down to when one more comes: 1 % below the
    /// limit, so a flood pays for one eviction pass per hundredth of the book, not one per name.
    public static func evictionTarget(_ limit: Int) -> Int { max(0, limit - max(1, limit / 100)) }
}
