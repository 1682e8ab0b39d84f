// SPDX-License-Identifier: Apache-2.0
/// Rate limit for log lines that an unprivileged peer can cause at will (refusals, protocol
/// errors, connection refusals, repeated storage errors): at most `burst` lines of one kind per
/// `interval`; the rest are counted and reported in one summary line once the interval is over
/// (`summaries`). Without it, 20,000 refused frames wrote 20,000 lines in 1.8 s, and journald
/// (10,000 lines per 30 s by default) would then drop real login decisions. Login decision
/// lines never go through it. Pure: the caller passes the time (milliseconds, monotonic).
public struct LogRateLimiter: Sendable {
    public struct Summary: Equatable, Sendable {
        public var kind: String
        public var suppressed: Int
        /// Milliseconds the interval lasted (for "N lines in the last S s").
        public var interval: Int64
    }

    struct Window: Sendable {
        var start: Int64
        var written: Int
        var suppressed: Int
    }

    public let burst: Int
    public let interval: Int64
    var windows: [String: Window] = [:]

    public init(burst: Int = 20, interval: Int64 = 10_000) {
        self.burst = burst
        self.interval = interval
    }

    public enum Admission: Equatable, Sendable {
        /// Write the line; first the summary of this kind's last interval, if it suppressed lines
        /// and nobody took its summary yet.
        case write(summaryFirst: Summary?)
        /// Do not write it: it is counted for the summary of its kind.
        case drop
    }

    /// Kinds are a fixed set of words from the call sites (never a name or an address), so the
    /// map stays small.
    public mutating func admit(_ kind: String, now: Int64) -> Admission {
        var summary: Summary? = nil
        var window = windows[kind] ?? Window(start: now, written: 0, suppressed: 0)
        if now - window.start >= interval || now < window.start {
            if window.suppressed > 0 {
                summary = Summary(kind: kind, suppressed: window.suppressed, interval: max(interval, now - window.start))
            }
            window = Window(start: now, written: 0, suppressed: 0)
        }
        defer { windows[kind] = window }
        guard window.written < burst else {
            window.suppressed += 1
            return .drop
        }
        window.written += 1
        return .write(summaryFirst: summary)
    }

    /// The kinds whose interval is over and which suppressed lines in it: one summary each, and
    /// their counts start again from zero. Kinds quiet for a whole interval are forgotten.
    public mutating func summaries(now: Int64) -> [Summary] {
        var out: [Summary] = []
        for (kind, window) in windows where now - window.start >= interval || now < window.start {
            if window.suppressed > 0 {
                out.append(Summary(kind: kind, suppressed: window.suppressed, interval: max(interval, now - window.start)))
            }
            windows[kind] = nil
        }
        return out.sorted { $0.kind < $1.kind }
    }

    /// When the next summary is due (nil: nothing suppressed), so the poll loop wakes for it.
    public var nextSummaryAt: Int64? {
        windows.values.filter { $0.suppressed > 0 }.map { $0.start + interval }.min()
    }
}
