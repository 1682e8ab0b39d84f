// SPDX-License-Identifier: Apache-2.0
import MFACore
import MFAProtocol

/// Why a typed name does not lead to an account.
enum AccountRefusal: Error, Equatable {
    /// Not a name at all (a path, a control byte): UserName's rules.
    case invalidName(UserName.Invalid)
    /// NSS knows no such account.
    case unknown
    /// NSS failed; nothing is known about the name.
    case unavailable(String)
    /// NSS maps the name to an account whose own name mfagate cannot use as a key (UserName's rules).
    case unusableCanonicalName(UserName.Invalid)

    /// The name itself was fine; NSS had no usable account for it.
    var isAboutTheAccount: Bool {
        if case .invalidName = self { return false }
        return true
    }

    /// One sentence for the requester. The typed name is left out: at a login it may be a password.
    var sentence: String {
        switch self {
        case .invalidName(let why): return "\(why)"
        case .unknown: return "no such account (NSS knows no user by that name)"
        case .unavailable(let why): return "the account database (NSS) failed: \(why)"
        case .unusableCanonicalName(let why): return "the account's own name is not usable: \(why)"
        }
    }

    /// The CLI's error for this refusal.
    var message: DaemonMessage {
        switch self {
        case .unavailable: return .error(.storageFailure, message: sentence)
        default: return .error(.invalidUserName, message: sentence)
        }
    }
}

/// A typed user name resolved to the account it stands for. Under SSSD or winbind `ALICE` and
/// `alice@example.com` reach alice's account; every record, lockout, first sighting, policy match
/// and log line then uses `alice`, the name NSS gives back (`pw_name`), so another spelling can
/// neither skip her second factor nor enroll a new one nor dodge her lockout.
struct ResolvedAccount {
    var user: UserName
    var account: Account
}

extension Authority {
    /// Asks NSS once for the account `raw` names. An account NSS does not know is refused: such a
    /// name is never offered enrollment, never gets a user file, a first sighting or a code sent.
    func resolveAccount(_ raw: String) -> Result<ResolvedAccount, AccountRefusal> {
        do { _ = try UserName(validating: raw) } catch { return .failure(.invalidName(error)) }
        switch environment.accounts.lookup(raw) {
        case .unknown: return .failure(.unknown)
        case .unavailable(let why): return .failure(.unavailable(why))
        case .found(let account):
            do {
                return .success(ResolvedAccount(user: try UserName(validating: account.name), account: account))
            } catch {
                return .failure(.unusableCanonicalName(error))
            }
        }
    }

    /// The one resolution of the user a CLI request is about; only the login flow and `check`, which
    /// need the NSS account itself (its groups), call `resolveAccount` directly. The canonical name
    /// comes back if the peer may act for that account: root for anyone, others for their own uid.
    /// - `ownByDefault`: an empty name means the peer's own account (self-service verbs).
    /// - `removal`: root may name an account NSS no longer knows, to see or remove what is stored
    ///   under the name as typed (status, disable, unlock); nothing is created under such a name.
    /// - `denial`: the sentence for a peer asking about someone else.
    /// - `rootOnly`: a verb only root may use (provisioning, import, invites): this sentence refuses
    ///   anyone else before any name is looked up, and an empty name is not the peer's own.
    func resolveUser(_ raw: String, peer: Peer, action: String, ownByDefault: Bool = true, removal: Bool = false,
                     denial: String = "you may only manage your own enrollment (or run as root)",
                     rootOnly: String? = nil) -> Result<UserName, SelfServiceRefusal> {
        if let rootOnly {
            guard peer.isRoot else { return .failure(SelfServiceRefusal(refuse(.notAllowed, rootOnly, peer: peer, action: action))) }
        }
        let ownByDefault = ownByDefault && rootOnly == nil
        var name = raw
        if name.isEmpty && ownByDefault {
            guard let own = environment.accounts.nameOfUID(peer.uid) else {
                return .failure(SelfServiceRefusal(.invalidUserName, "your uid \(peer.uid) has no user name; pass --user"))
            }
            name = own
        }
        switch resolveAccount(name) {
        case .success(let resolved):
            guard mayActFor(resolved.account, peer: peer) else {
                return .failure(SelfServiceRefusal(refuse(.notAllowed, denial, peer: peer, action: action)))
            }
            return .success(resolved.user)
        case .failure(let refusal):
            if removal, peer.isRoot, case .unknown = refusal, let stored = try? UserName(validating: name) { return .success(stored) }
            return .failure(SelfServiceRefusal(refusal))
        }
    }

    /// Root may act for anyone; anyone else only for the account whose uid they run as.
    func mayActFor(_ account: Account, peer: Peer) -> Bool {
        peer.isRoot || account.uid == peer.uid
    }
}
