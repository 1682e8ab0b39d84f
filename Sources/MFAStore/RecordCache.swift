// SPDX-License-Identifier: Apache-2.0
/// A map of at most `limit` entries that forgets the oldest half at once: entries go into a young
/// generation; when it holds `limit / 2`, it becomes the old one and the previous old one is
/// dropped. Every entry therefore survives at least `limit / 2` later insertions, with O(1) work.
///
/// Why not evict "any" entry: removing `Dictionary.startIndex` (the lowest occupied bucket), as the
/// first cache did, mostly evicted entries inserted moments before, because old entries pile up in
/// high buckets. A login's entry, made at its request, was then gone by its answer in most logins
/// under load, and the file was opened and parsed twice.
struct RecordCache<Value> {
    let limit: Int
    private var young: [String: Value] = [:]
    private var old: [String: Value] = [:]

    init(limit: Int) { self.limit = max(2, limit) }

    var count: Int { young.count + old.count }

    subscript(key: String) -> Value? {
        get { young[key] ?? old[key] }
        set {
            old[key] = nil
            guard let newValue else { young[key] = nil; return }
            if young[key] == nil && young.count >= limit / 2 {
                swap(&young, &old)
                young.removeAll(keepingCapacity: true)
            }
            young[key] = newValue
        }
    }
}
