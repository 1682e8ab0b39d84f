// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import MFAProtocol

extension MFAGate {
    struct Forget: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End remembered hosts (`remember`): the next login from any host asks for a code.",
            discussion: "Without --user, your own; root may name any user.")

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "The user whose remembered hosts end (root; default: yourself).")
        var user: String?

        func run() throws {
            let reply = try perform(.forget(version: WireProtocol.version, user: user ?? ""), with: global)
            guard case .done(let message) = reply else { throw unexpected(reply) }
            print(message)
        }
    }
}
