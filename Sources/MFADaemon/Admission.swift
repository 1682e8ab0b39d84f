// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Whom an open connection is charged to, for the connection caps.
enum Owner: Hashable {
    /// A local user: the peer's uid (SO_PEERCRED), or, for a root peer (the module inside a setuid
    /// `su` or `sudo`), the real uid the module reports it runs under.
    case user(uid_t)
    /// A login with no local user behind it (sshd, login, cron, root's own `su`: real uid 0),
    /// charged to the account it is for.
    case account(String)
}

/// Fair admission: who may hold how many of the daemon's connection slots (docs/robustness.md,
/// "Local attacker").
///
/// The rule:
/// - every connection is charged to one owner once known: a local user by real uid (a non-root
///   peer at accept; a root peer when its LOGIN_BEGIN names the real uid it runs under), else the
///   account the login is for;
/// - a local user holds at most `perUser` connections at once (16), and never more than a quarter
///   of the slots open to local users, so a small table still has room for three others;
/// - an account holds at most `perAccount` (64: logins of one shared account from many places at
///   once are legitimate, and sshd's MaxStartups bounds unauthenticated connections anyway), and
///   never more than a quarter of the table;
/// - connections charged to local users (uid ≠ 0) together never take the last `reservedForRoot`
///   slots: those stay for logins with real uid 0 (sshd, the console) and for root's admin
///   requests;
/// - a root peer is not charged before its request (it has `requestTimeout` to send it).
/// So one user's thousand `su` hold 16 slots, a remote attacker who knows one password holds the
/// 64 of that account, and only sshd-like logins reach the reserve. A connection over a cap is answered
/// BUSY (never left unanswered), which the module maps to PAM_AUTHINFO_UNAVAIL whatever its
/// failmode.
struct Admission {
    let capacity: Int
    let perUser: Int
    let perAccount: Int
    let reservedForRoot: Int
    private(set) var open = 0
    private(set) var heldByUsers = 0
    private var held: [Owner: Int] = [:]

    init(capacity: Int, perUser: Int, perAccount: Int, reservedForRoot: Int) {
        self.capacity = capacity
        // Never more than half the table, so a tiny table still serves users.
        self.reservedForRoot = min(reservedForRoot, capacity / 2)
        self.perUser = max(1, min(perUser, (capacity - self.reservedForRoot) / 4))
        self.perAccount = max(1, min(perAccount, capacity / 4))
    }

    /// Whether a connection with this SO_PEERCRED uid may be accepted; if so it is counted (and,
    /// for a non-root peer, charged to its uid). Returns the owner charged, or nil for a root peer.
    mutating func accept(peerUID: uid_t) -> (admitted: Bool, owner: Owner?) {
        guard open < capacity else { return (false, nil) }
        if peerUID == 0 {
            open += 1
            return (true, nil)
        }
        let owner = Owner.user(peerUID)
        guard admits(owner) else { return (false, nil) }
        open += 1
        take(owner)
        return (true, owner)
    }

    /// Whether an open (already counted) connection may now be charged to `owner`.
    func admits(_ owner: Owner) -> Bool {
        switch owner {
        case .user: return held[owner, default: 0] < perUser && heldByUsers < capacity - reservedForRoot
        case .account: return held[owner, default: 0] < perAccount
        }
    }

    /// Charges an open connection to `owner` (after `admits` said yes).
    mutating func take(_ owner: Owner) {
        held[owner, default: 0] += 1
        if case .user = owner { heldByUsers += 1 }
    }

    /// A connection closed: its slot and its owner's share are free again.
    mutating func release(_ owner: Owner?) {
        open -= 1
        guard let owner else { return }
        let left = held[owner, default: 1] - 1
        held[owner] = left > 0 ? left : nil
        if case .user = owner { heldByUsers -= 1 }
    }

    /// The owner a root peer's LOGIN_BEGIN is charged to: the real uid the module reports when it
    /// is not root, else the account.
    static func owner(ofLoginFor user: String, reportedRealUID: UInt32?) -> Owner {
        if let uid = reportedRealUID, uid != 0 { return .user(uid_t(uid)) }
        return .account(user)
    }
}
