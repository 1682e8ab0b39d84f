// SPDX-License-Identifier: Apache-2.0
import MFACore
import MFAProtocol
import MFAStore

/// `mfagate import-google-authenticator`: root's CLI reads the user's file safely and sends its bytes;
/// the daemon parses and stores them, so the secret never passes through anything but these two.
extension AdminVerbs {
    public func importGoogleAuthenticator(_ request: ImportRequest, peer: Peer) -> DaemonMessage {
        let user: UserName
        switch shared.resolveUser(request.user, peer: peer, action: "import", rootOnly: "only root may import google-authenticator files") {
        case .success(let u): user = u
        case .failure(let refusal): return refusal.message
        }
        let file: GoogleAuthenticatorFile
        do { file = try GoogleAuthenticatorFile.parse(request.content) } catch {
            logger.notice("import refused", metadata: ["user": "\(user)", "reason": "\(error)"])
            return .error(.badImport, message: "\(user): the google-authenticator file is not usable (\(error))")
        }
        let now = environment.now()
        do {
            if let existing = try store.load(user) {
                // Idempotent: the same secret again changes nothing (and never revives used codes).
                if Crypto.constantTimeEqual(existing.secret, file.secret) && existing.method == file.method {
                    return .changed(user: user.value, message: "\(user): already imported (same secret), unchanged")
                }
                if !request.replaceExisting {
                    return .error(.alreadyEnrolled, message: "\(user) already has a different mfagate enrollment; pass --force to replace it")
                }
            }
        } catch {
            if !request.replaceExisting { return .error(.storageFailure, message: "\(error); pass --force to replace it") }
        }
        do {
            var hashed: [RecoveryCodes.Hashed] = []
            for code in file.scratchCodes {
                hashed.append(RecoveryCodes.hash(normalizedCode: code, salt: try environment.randomBytes(16)))
            }
            let parameters = OTPParameters(digest: .sha1, digits: 6, period: file.period)
            let record = UserRecord(user: user, parameters: parameters, secret: file.secret, created: now,
                                    lastUsedStep: file.lastUsedStep, recoveryCodes: hashed,
                                    method: file.method, counter: file.counter, window: file.window)
            try store.save(record)
            pending.remove(user)
            notifier.notify(.imported, user: user, command: config.notifyCommand, metadata: ["peer": "\(peer)"])
            var report = "\(user): imported \(file.method.rawValue.uppercased())"
            report += file.method == .hotp ? " (counter \(file.counter))" : " (\(file.period) s steps)"
            report += ", \(file.scratchCodes.count) scratch code(s) as recovery codes"
            if let w = file.window { report += ", window ±\(w)" }
            if !file.ignoredOptions.isEmpty { report += "; not carried over: \(file.ignoredOptions.joined(separator: ", "))" }
            return .changed(user: user.value, message: report)
        } catch {
            return shared.storageError(error)
        }
    }
}
