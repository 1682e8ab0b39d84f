// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CMFASys
import MFACore
import MFAProtocol
import MFASafeFile

/// Why a google-authenticator file was not read; one sentence naming the file and the fix.
struct ImportFileError: Error, CustomStringConvertible {
    var description: String
}

/// Reads a user's google-authenticator file the way root must read a file in someone's home: no
/// symlink followed (O_NOFOLLOW), a regular file with one link, owned by that user, writable by
/// nobody else, and small. The file is never changed or deleted.
enum GoogleAuthenticatorFileReader {
    static let fileName = ".google_authenticator"

    static func read(path: String, ownerUID: uid_t) throws(ImportFileError) -> String {
        let rules = SafeFileRules(owners: [ownerUID], forbiddenModeBits: 0o022,
                                  maximumSize: GoogleAuthenticatorFile.maximumSize, singleLink: true)
        do {
            var bytes = try SafeFileReader.read(path, rules: rules).bytes
            defer { mfa_wipe(&bytes, bytes.count) }
            return String(decoding: bytes, as: UTF8.self)
        } catch {
            if case .owner(let uid) = error {
                throw ImportFileError(description: "\(path) belongs to uid \(uid), not to the user (uid \(ownerUID)); refused")
            }
            throw ImportFileError(description: error.sentence(path: path, what: "google-authenticator file", rules: rules) + "; refused")
        }
    }
}

struct Account {
    var name: String
    var uid: uid_t
    var home: String

    static func named(_ name: String) -> Account? {
        guard let entry = getpwnam(name), let home = entry.pointee.pw_dir else { return nil }
        return Account(name: name, uid: entry.pointee.pw_uid, home: String(cString: home))
    }

    /// Every account in the password database (files, LDAP... as NSS lists them).
    static func all() -> [Account] {
        var out: [Account] = []
        setpwent()
        defer { endpwent() }
        while let entry = getpwent() {
            guard let name = entry.pointee.pw_name, let home = entry.pointee.pw_dir else { continue }
            out.append(Account(name: String(cString: name), uid: entry.pointee.pw_uid, home: String(cString: home)))
        }
        return out
    }

    var googleAuthenticatorPath: String { (home.hasSuffix("/") ? home : home + "/") + GoogleAuthenticatorFileReader.fileName }
}

extension MFAGate {
    struct ImportGoogleAuthenticator: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import-google-authenticator",
            abstract: "Import google-authenticator-libpam users without re-enrolling them (root).",
            discussion: """
                Carries over the secret, TOTP or HOTP (and its counter), the step size, the window, the time \
                steps already used (a code used there is refused here) and the scratch codes (as hashed \
                recovery codes). The file is read without following symlinks and must belong to the user; \
                it is never changed. Importing the same file again changes nothing. One report line per user; \
                exit code 1 if any user could not be imported.
                """)

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "The user to import.")
        var user: String?

        @Argument(help: ArgumentHelp("The file (default: ~USER/.google_authenticator).", valueName: "file"))
        var file: String?

        @Flag(name: .long, help: "Every local user with a ~/.google_authenticator file.")
        var all = false

        @Flag(name: .long, help: "Replace an existing, different mfagate enrollment.")
        var force = false

        func validate() throws {
            if all == (user != nil) { throw ValidationError("give either --user NAME [FILE] or --all") }
            if all && file != nil { throw ValidationError("a FILE goes with --user NAME, not with --all") }
        }

        func run() throws {
            guard getuid() == 0 else {
                mfa_write_stderr("mfagate: only root may import google-authenticator files\n")
                throw ExitCode(1)
            }
            var failed = 0
            if let user {
                guard let account = Account.named(user) else {
                    mfa_write_stderr("mfagate: no user named \(user)\n")
                    throw ExitCode(1)
                }
                if !importOne(account, path: file ?? account.googleAuthenticatorPath) { failed += 1 }
            } else {
                var seen = Set<String>()
                var found = 0
                for account in Account.all() where !seen.contains(account.name) {
                    seen.insert(account.name)
                    var st = stat()
                    guard lstat(account.googleAuthenticatorPath, &st) == 0 else { continue }
                    found += 1
                    if !importOne(account, path: account.googleAuthenticatorPath) { failed += 1 }
                }
                if found == 0 { print("no user has a \(GoogleAuthenticatorFileReader.fileName) file") }
            }
            if failed > 0 { throw ExitCode(1) }
        }

        /// Imports one user and prints its report line; false if it failed.
        func importOne(_ account: Account, path: String) -> Bool {
            let content: String
            do { content = try GoogleAuthenticatorFileReader.read(path: path, ownerUID: account.uid) } catch {
                print("\(account.name): not imported: \(error)")
                return false
            }
            let reply = (try? ask(.importGoogleAuthenticator(ImportRequest(user: account.name, content: content, replaceExisting: force)),
                                  with: global)) ?? .error(.storageFailure, message: "the daemon is unreachable")
            switch reply {
            case .changed(_, let text):
                print(text)
                return true
            case .error(_, let text):
                print("\(account.name): not imported: \(text)")
                return false
            default:
                print("\(account.name): not imported: unexpected answer from the daemon")
                return false
            }
        }
    }
}
