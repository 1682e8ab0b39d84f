// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAProtocol
import MFAStore

/// `mfagate forget [--user NAME]`: ends every remembered login (`remember`) of a user, so their next
/// login from any host is asked for a code again. The user may forget their own (no code needed:
/// it only takes a convenience away); root anyone's.
extension Authority {
    func forget(user raw: String, peer: Peer) -> DaemonMessage {
        let user: UserName
        switch resolveUser(raw, peer: peer, action: "forget", denial: "you may only forget your own remembered hosts (or run as root)") {
        case .success(let u): user = u
        case .failure(let refusal): return refusal.message
        }
        // A fleet store refuses a write based on a stale read (another host saved meanwhile): read
        // again and retry, as a login's answer does.
        for _ in 0..<3 {
            do {
                guard var record = try store.load(user) else { return .error(.notEnrolled, message: "\(user) is not enrolled") }
                let count = record.remembered.count
                if count == 0 { return .done(message: "\(user) has no remembered hosts") }
                record.remembered = []
                try store.save(record)
                logger.info("remembered hosts forgotten", metadata: ["user": "\(user)", "count": "\(count)", "peer": "\(peer)"])
                return .done(message: "\(user): \(count) remembered \(count == 1 ? "host" : "hosts") forgotten; the next login asks for a code")
            } catch .conflict {
                continue
            } catch {
                return storageError(error)
            }
        }
        return .error(.storageFailure, message: "\(user) was changed by another host at every try; try again")
    }
}
