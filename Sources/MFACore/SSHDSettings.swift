// SPDX-License-Identifier: Apache-2.0
/// The few settings of `sshd -T` output (lowercase `keyword value` lines, the effective
/// configuration) that decide whether a login reaches PAM's auth stack. Pure; `mfagate doctor` runs sshd.
public struct SSHDSettings: Equatable, Sendable {
    public var usePAM = false
    public var kbdInteractive = true
    public var password = true
    public var publicKey = true
    public var hostBased = false
    public var gssapi = false
    /// nil: `AuthenticationMethods any` (each enabled method alone is enough).
    public var authenticationMethods: [[String]]? = nil

    public init() {}

    /// Parses `sshd -T` output. Unknown lines are skipped (sshd prints every keyword).
    public static func parse(_ text: String) -> SSHDSettings {
        var s = SSHDSettings()
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            let value = parts[1].trimmingCharacters(" \t\r")
            let yes = value.lowercased() == "yes"
            switch parts[0].lowercased() {
            case "usepam": s.usePAM = yes
            case "kbdinteractiveauthentication": s.kbdInteractive = yes
            case "passwordauthentication": s.password = yes
            case "pubkeyauthentication": s.publicKey = yes
            case "hostbasedauthentication": s.hostBased = yes
            case "gssapiauthentication": s.gssapi = yes
            case "authenticationmethods":
                if value.lowercased() == "any" {
                    s.authenticationMethods = nil
                } else {
                    s.authenticationMethods = value.split(separator: " ").map { list in
                        list.split(separator: ",").map { method in
                            // keyboard-interactive:pam names a submethod; the method is what counts here.
                            String(method.split(separator: ":", maxSplits: 1).first ?? method).lowercased()
                        }
                    }
                }
            default: break
            }
        }
        return s
    }

    public func enabled(_ method: String) -> Bool {
        switch method {
        case "publickey": return publicKey
        case "password": return password
        case "keyboard-interactive": return kbdInteractive
        case "hostbased": return hostBased
        case "gssapi-with-mic": return gssapi
        case "none": return false
        default: return false
        }
    }

    /// The method sequences that can log a user in: the configured lists whose every method is on,
    /// or, with `any`, each enabled method alone.
    public var usableLists: [[String]] {
        if let lists = authenticationMethods { return lists.filter { $0.allSatisfy(enabled) } }
        return ["publickey", "password", "keyboard-interactive", "hostbased", "gssapi-with-mic"].filter(enabled).map { [$0] }
    }
}

fileprivate extension String {
    func trimmingCharacters(_ set: String) -> String {
        var view = self[...]
        while let f = view.first, set.contains(f) { view = view.dropFirst() }
        while let l = view.last, set.contains(l) { view = view.dropLast() }
        return String(view)
    }
}
