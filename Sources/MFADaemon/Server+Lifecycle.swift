// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import Logging
import CMFASys

/// What the loop does besides requests: signals (SIGTERM drains, SIGHUP reloads), the systemd
/// watchdog, and connections resumed when a delivery command ends.
extension Server {
    func handleSignals() {
        while true {
            let signal = mfa_signalfd_read(signalFD)
            if signal < 0 { return }
            switch signal {
            case SIGHUP:
                ServiceManager.notify("RELOADING=1\nMONOTONIC_USEC=\(Server.monotonicNow() * 1000)")
                if let config = reloadConfig?() {
                    authority.config = config
                    logger.notice("configuration reloaded", metadata: ["mode": "\(config.mode)"])
                }
                ServiceManager.notify("READY=1\nSTATUS=serving on \(socketPath), mode \(authority.config.mode)")
            default:
                if !draining {
                    ServiceManager.notify("STOPPING=1\nSTATUS=stopping: letting \(connections.count) connection(s) finish")
                    logger.notice("stopping: letting \(connections.count) connection(s) finish")
                    draining = true
                    drainDeadline = Server.monotonicNow() + limits.drainTimeout * 1000
                    // Connections that have not started a login have nothing to finish.
                    for connection in Array(connections.values) where !connection.withWorker {
                        if case .awaitingRequest = connection.state, connection.splitter.buffer.isEmpty { drop(connection) }
                    }
                }
            }
        }
    }

    /// Gives connections waiting for a delivery their next step once the command has ended.
    func resumeDeliveries() {
        for (token, outcome) in authority.notifier.takeFinishedDeliveries() {
            let (step, session) = authority.deliveryEnded(token: token, outcome: outcome)
            let waiting = connections.values.first {
                if case .awaitingDelivery(let t) = $0.state { return t == token }
                return false
            }
            if let step, let waiting {
                apply(step, on: waiting)
            } else if waiting == nil, let session {
                authority.cancelled(session)
            }
        }
    }

    /// WATCHDOG=1 every `watchdogPingInterval` when systemd asked for a watchdog (WatchdogSec=):
    /// a loop that stops turning gets the daemon restarted.
    func pingWatchdogIfDue(now: Int64) {
        if let watchdogPingInterval, now >= nextWatchdogPing {
            ServiceManager.notify("WATCHDOG=1")
            nextWatchdogPing = now + watchdogPingInterval
        }
    }
}
