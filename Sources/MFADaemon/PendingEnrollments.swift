// SPDX-License-Identifier: Apache-2.0
import MFACore

/// An enrollment the user has seen (QR code, key) but not yet confirmed with a code from the device.
/// Kept in the daemon's memory only: a secret nobody confirmed never reaches the disk, and a restart
/// simply means running `mfagate enroll` again.
struct PendingEnrollment {
    var user: UserName
    var method: OTPMethod
    var secret: [UInt8]
    /// HOTP: the token's next counter.
    var counter: UInt64
    var expires: Int64
    var attemptsLeft: Int
}

/// At most one pending enrollment per user; a new `enroll` replaces the old pending one (never an
/// active enrollment). Time is passed in.
struct PendingEnrollments {
    /// How long a pending enrollment waits for its confirming code.
    static let lifetime: Int64 = 600
    /// Wrong confirming codes before the pending enrollment is dropped.
    static let attempts = 5
    private var byUser: [String: PendingEnrollment] = [:]

    /// Users with a pending enrollment at most; past it, expired ones go, then the oldest.
    static let maximumUsers = 10_000

    mutating func put(_ pending: PendingEnrollment) {
        byUser[pending.user.value] = pending
        if byUser.count > Self.maximumUsers {
            sweep(now: pending.expires - Self.lifetime)
            BoundedBook.evictOldest(&byUser, limit: BoundedBook.evictionTarget(Self.maximumUsers)) { $0.expires }
        }
    }

    var count: Int { byUser.count }

    /// The live pending enrollment of `user`; an expired one is forgotten here.
    mutating func get(_ user: UserName, now: Int64) -> PendingEnrollment? {
        guard let p = byUser[user.value] else { return nil }
        if now >= p.expires {
            byUser[user.value] = nil
            return nil
        }
        return p
    }

    mutating func remove(_ user: UserName) { byUser[user.value] = nil }

    /// Forgets every expired entry, so the map stays as small as the number of users enrolling now.
    mutating func sweep(now: Int64) { byUser = byUser.filter { now < $0.value.expires } }
}
