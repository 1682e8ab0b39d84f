// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAStore

/// Log lines any local peer can cause at will (issue 14, finding 8) go through one
/// `LogRateLimiter`: refusals, protocol errors, refused connections, repeated storage errors, codes
/// not sent for a cap. At most `burst` lines of a kind per interval; the rest become one
/// "suppressed N" line. Login decisions are never limited (`logDecision` does not come here).
extension Authority {
    /// The kinds: fixed words, never a name or address from a peer.
    enum NoisyKind: String {
        case refused
        /// A non-root peer asked for a verdict on another user: no login of that user happens.
        case notOwnAccount = "login refused (not the peer's own account)"
        case protocolError = "protocol error"
        case connectionsRefused = "connections refused"
        case storageError = "storage error"
        case codeNotSent = "code not sent"
        /// `mode = audit`: a login record asked for by a non-root peer (anyone can script the socket
        /// for their own account), so one user cannot flood the records out of their size cap.
        case auditOfUnprivilegedPeer = "audit record from a non-root peer"
    }

    /// Writes the line unless its kind is over its budget (then it is counted for the summary).
    func logLimited(_ kind: NoisyKind, _ level: Logger.Level, _ message: @autoclosure () -> Logger.Message,
                    metadata: @autoclosure () -> Logger.Metadata = [:]) {
        guard case .write(let summary) = logLimiter.admit(kind.rawValue, now: Server.monotonicNow()) else { return }
        if let summary { logSummary(summary) }
        logger.log(level: level, message(), metadata: metadata())
    }

    /// True if a line of `kind` may be written now (for call sites that build their own line).
    func mayLog(_ kind: NoisyKind) -> Bool {
        guard case .write(let summary) = logLimiter.admit(kind.rawValue, now: Server.monotonicNow()) else { return false }
        if let summary { logSummary(summary) }
        return true
    }

    /// Writes the summaries whose interval is over (the poll loop calls this every round).
    public func flushLogSummaries() {
        for summary in logLimiter.summaries(now: Server.monotonicNow()) { logSummary(summary) }
    }

    /// Monotonic milliseconds when the next summary is due, so the poll loop wakes for it.
    public var nextLogSummary: Int64? { logLimiter.nextSummaryAt }

    func logSummary(_ summary: LogRateLimiter.Summary) {
        logger.warning("suppressed \(summary.suppressed) similar log lines", metadata: [
            "kind": "\(summary.kind)", "seconds": "\((summary.interval + 999) / 1000)",
            "limit": "\(logLimiter.burst) per \(logLimiter.interval / 1000) s",
        ])
    }

    /// A storage error of the daemon's own books or a request, limited like a refusal: a broken
    /// disk makes every request fail the same way.
    func logStorageError(_ error: Error) {
        if case .refusedRow? = error as? StoreError { return }  // the fleet store logged it, naming the user
        logLimited(.storageError, .error, "\(error)")
    }
}
