// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAProtocol
import MFAStore

/// The invite book of `enroll_at_login = invite` (InviteBook, `STATE/invites`), loaded on first use
/// and written through atomically and durably on every change. It always lives in this host's
/// state directory, also in fleet mode (an invite is for a login on this host). A missing, damaged
/// or unreadable file never stops the daemon: it is logged and the book starts empty.
final class InviteKeeper {
    private let openFiles: () throws(StoreError) -> FileStore
    private var files: FileStore?
    private var book: InviteBook?
    let logger: Logger

    init(store: any FactorStore, stateDirectory: String, logger: Logger) {
        self.logger = logger
        if let fileStore = store as? FileStore {
            openFiles = { fileStore }
        } else {
            // Fleet mode: the state directory holds nothing else of ours, opened only when invites are used.
            openFiles = { () throws(StoreError) -> FileStore in try FileStore(path: stateDirectory) }
        }
    }

    /// The state directory's file store, opened once (it is locked per process): shared with the audit log.
    func stateFiles() throws(StoreError) -> FileStore {
        if let files { return files }
        let opened = try openFiles()
        files = opened
        return opened
    }

    private func loaded(now: Int64) throws(StoreError) -> (FileStore, InviteBook) {
        let store: FileStore
        if let files { store = files } else { store = try openFiles() }
        files = store
        if let book { return (store, book) }
        var fresh = InviteBook()
        do {
            if let text = try store.loadState(.invites) {
                let (parsed, skipped) = InviteBook.parse(text, now: now)
                if skipped > 0 {
                    logger.error("\(store.path)/invites: \(skipped) unreadable line(s) skipped; make those invites again with mfagate invite")
                }
                fresh = parsed
            }
        } catch {
            logger.error("\(error); starting with no invites (make them again with mfagate invite)")
        }
        book = fresh
        return (store, fresh)
    }

    /// Whether the user holds an unexpired invite (false if the book cannot be read).
    func hasInvite(_ user: UserName, now: Int64) -> Bool {
        do {
            return try loaded(now: now).1.hasInvite(user.value, now: now)
        } catch {
            logger.error("\(error); invites cannot be checked, so none is asked for")
            return false
        }
    }

    /// Stores a new invite (replacing the user's older one) before it is handed out.
    func add(_ user: UserName, _ entry: InviteBook.Entry, now: Int64) throws(StoreError) {
        var (store, book) = try loaded(now: now)
        book.add(user.value, entry, now: now)
        try store.saveState(.invites, book.serialize())
        self.book = book
    }

    /// Whether `typed` is the user's invite. A right one is removed and that removal is on disk
    /// before true is returned, so it is used once even across a crash; if it cannot be written the
    /// error is thrown and the invite is not used.
    func redeem(_ user: UserName, typed: String, now: Int64) throws(StoreError) -> Bool {
        var (store, book) = try loaded(now: now)
        guard book.redeem(user.value, typed: typed, now: now) else { return false }
        try store.saveState(.invites, book.serialize())
        self.book = book
        return true
    }
}

/// `mfagate invite`: root makes a one-time code that lets the user enroll at the login prompt.
extension AdminVerbs {
    public func invite(_ request: InviteRequest, peer: Peer) -> DaemonMessage {
        let user: UserName
        switch shared.resolveUser(request.user, peer: peer, action: "invite", rootOnly: "only root may make invites") {
        case .success(let u): user = u
        case .failure(let refusal): return refusal.message
        }
        let lifetime = request.lifetime == 0 ? InviteCodes.defaultLifetime : Int64(request.lifetime)
        guard lifetime <= InviteCodes.maximumLifetime else {
            return .error(.badRequest, message: "an invite may last at most \(InviteCodes.maximumLifetime / 86400) days")
        }
        let now = environment.now()
        do {
            if try store.load(user) != nil {
                return .error(.alreadyEnrolled, message: "\(user.value) is already enrolled; an invite is for a user without a second factor")
            }
        } catch {
            logger.error("\(error)")
            return .error(.storageFailure, message: "\(error)")
        }
        guard let bytes = try? environment.randomBytes(64), let code = InviteCodes.makeCode(randomBytes: bytes),
              let normalized = InviteCodes.normalize(code) else {
            return .error(.storageFailure, message: "could not make a random invite code (see the daemon's log)")
        }
        let entry = InviteBook.Entry(digest: InviteCodes.digest(normalizedCode: normalized), created: now, expires: now + lifetime)
        do { try invites.add(user, entry, now: now) } catch {
            logger.error("\(error)")
            return .error(.storageFailure, message: "\(error)")
        }
        var notes: [String] = []
        if !config.enrollAtLoginNeedsInvite { notes.append("enroll_at_login is not invite, so logins do not ask for it yet") }
        logger.notice("invite created", metadata: ["user": "\(user)", "peer": "\(peer)", "until": "\(UTCTime.format(now + lifetime))"])
        return .invited(InviteReply(user: user.value, code: code, expires: now + lifetime, note: notes.joined(separator: "; ")))
    }
}
