// SPDX-License-Identifier: Apache-2.0
/// The bookkeeping files as logs (issue 14, finding 6). A change appends one line (the later
/// line about a key wins), so a new name costs one line, not a rewrite of the whole file (which
/// took ≈ 65 ms with an fsync near 100,000 entries, stalling every login of the single-threaded
/// daemon). Once the file holds more than twice the live entries (plus 1,024), or after an
/// eviction, it is rewritten whole and atomically: over a flood that costs a few bytes per name.
/// Nothing in these files can stop the daemon from starting: bad lines are dropped, a file too
/// large to read is moved aside (`NAME.damaged`); either is reported once, in one sentence.
public final class StateLog {
    public let store: FileStore
    public let file: FileStore.StateFile
    let header: String
    /// Entry lines the file holds (current or overwritten): when to compact.
    public private(set) var lines = 0

    public init(store: FileStore, file: FileStore.StateFile, header: String) {
        self.store = store
        self.file = file
        self.header = header
    }

    /// The file's text (nil: none), and a sentence for the admin if some or all of it was lost.
    /// `read` parses the text into the caller's book and says how many entry lines the file had
    /// and how many of them were dropped.
    public func load(read: (String) -> (lines: Int, dropped: Int)) throws(StoreError) -> String? {
        let display = "\(store.path)/\(file.rawValue)"
        let text: String?
        do {
            text = try store.loadState(file)
        } catch .damagedFile(_, let detail) {
            let aside = try store.moveStateAside(file)
            return "\(display) was unusable (\(detail)): moved to \(aside), starting with an empty book"
        }
        guard let text else { return nil }
        let (count, dropped) = read(text)
        if count > 0 && dropped == count {
            // Not one readable entry (no `version 1` line, or another file altogether): kept for the admin.
            let aside = try store.moveStateAside(file)
            return "\(display) was unusable (not one readable entry): moved to \(aside), starting with an empty book"
        }
        lines = count
        return dropped > 0 ? "\(display): \(dropped) unreadable line(s) dropped (a torn write or damage); the other entries are kept" : nil
    }

    /// Appends entry lines (creating the file if there is none).
    public func append(_ entries: [String], live: () -> [String], durable: Bool) throws(StoreError) {
        guard !entries.isEmpty else { return }
        if try store.appendState(file, entries.joined(separator: "\n") + "\n", durable: durable) {
            lines += entries.count
        } else {
            try rewrite(live(), durable: durable)
        }
    }

    public func compactionDue(liveEntries: Int) -> Bool { lines > 2 * liveEntries + 1024 }

    /// Replaces the file with exactly `live`.
    public func rewrite(_ live: [String], durable: Bool) throws(StoreError) {
        try store.saveState(file, ([header, "version 1"] + live).joined(separator: "\n") + "\n", durable: durable)
        lines = live.count
    }
}

/// The first-sighting book (`STATE/seen`) with its file.
public final class FirstSeenLedger {
    public private(set) var book = FirstSeenBook()
    public let log: StateLog

    /// `report`: one sentence for the admin (a damaged file, an eviction); called rarely.
    public init(store: FileStore, report: (String) -> Void) throws(StoreError) {
        log = StateLog(store: store, file: .seen, header: FirstSeenBook.header)
        if let problem = try log.load(read: { text in
            let (book, lines, dropped) = FirstSeenBook.read(text)
            self.book = book
            return (lines, dropped)
        }) {
            report(problem)
        }
        // More lines than entries: overwritten ones, dropped ones, or entries past the cap (read,
        // then evicted). The file is rewritten with the entries kept, once, now.
        if log.lines > book.users.count {
            let lines = log.lines
            try log.rewrite(book.entryLines, durable: true)
            if lines > FirstSeenBook.maximumEntries {
                report("\(store.path)/seen held \(lines) entries, more than the \(FirstSeenBook.maximumEntries) kept: the oldest sightings were forgotten (those users start a new grace period if seen again)")
            }
        }
    }

    public func time(_ user: String) -> Int64? { book.users[user] }

    /// Records a sighting: one appended line, without fsync (a crash of the daemon keeps it; a
    /// power cut may forget the last seconds' sightings, whose grace then starts at the next
    /// login). Returns the users evicted to stay within the cap (the file is then rewritten).
    public func note(_ user: String, at time: Int64, durable: Bool = false) throws(StoreError) -> [String] {
        let evicted = book.note(user, at: time)
        if !evicted.isEmpty || log.compactionDue(liveEntries: book.users.count) {
            try log.rewrite(book.entryLines, durable: true)
        } else {
            try log.append([FirstSeenBook.line(user, time)], live: { book.entryLines }, durable: durable)
        }
        return evicted
    }
}

/// The lockout book (`STATE/lockout`) with its file.
public final class LockoutLedger {
    public var book = LockoutBook()
    public let log: StateLog

    public init(store: FileStore, now: Int64, window: Int64, report: (String) -> Void) throws(StoreError) {
        log = StateLog(store: store, file: .lockout, header: LockoutBook.header)
        if let problem = try log.load(read: { text in
            let (book, lines, dropped) = LockoutBook.read(text)
            self.book = book
            return (lines, dropped)
        }) {
            report(problem)
        }
        book.prune(now: now, window: window)
        book.enforceCaps(now: now, window: window)
        if log.lines > book.users.count + book.rhosts.count {
            try log.rewrite(book.entryLines, durable: false)
        }
    }

    /// Writes the records of the keys that changed (their current state, or their removal).
    /// Not fsynced: a lockout must survive a restart or crash of the daemon, which the page
    /// cache gives; a power cut may forget the last few wrong codes, which costs little.
    /// Returns how many entries the caps evicted.
    @discardableResult
    public func save(users: [String], rhosts: [String], now: Int64, window: Int64) throws(StoreError) -> Int {
        let evicted = book.enforceCaps(now: now, window: window)
        let live = book.users.count + book.rhosts.count
        if evicted > 0 || log.compactionDue(liveEntries: live) {
            book.prune(now: now, window: window)
            try log.rewrite(book.entryLines, durable: false)
            return evicted
        }
        let lines = users.map { LockoutBook.line("user", $0, book.users[$0]) } + rhosts.map { LockoutBook.line("rhost", $0, book.rhosts[$0]) }
        try log.append(lines, live: { book.entryLines }, durable: false)
        return 0
    }
}
