// SPDX-License-Identifier: Apache-2.0
/// A public key or certificate file as OpenSSH writes it (`ssh-keygen` makes `id_ed25519.pub` and,
/// with `-s`, `id_ed25519-cert.pub`): one line `TYPE BASE64 [COMMENT]`. Read for `mfagate check
/// --ssh-key FILE`, which sends the type and the base64 blob to the daemon. Pure: the caller reads
/// the file. The problems never quote the file (a file that is not a key may hold anything, even a
/// secret); they name the line and what is wrong with it.
public enum SSHPublicKeyFile {
    /// Largest file read (a certificate with many principals is a few KiB).
    public static let maximumSize = 16 * 1024

    public enum Problem: Error, Equatable, Sendable {
        /// The file holds a private key (OpenSSH, PEM, PKCS#8 or PuTTY form).
        case privateKey
        /// No line holds a key (empty, or only comments).
        case noKey
        /// `line` (1-based) is not one public key line; `why` says what is wrong, without its text.
        case badLine(line: Int, why: String)

        /// One sentence naming `path` (and the line) and what to give instead.
        public func sentence(path: String) -> String {
            switch self {
            case .privateKey:
                return "\(path) holds a private key; give its public key (\(path).pub) or its certificate (\(path)-cert.pub) instead, never the private key"
            case .noKey:
                return "\(path) holds no public key line (TYPE BASE64 [COMMENT], as ssh-keygen writes it)"
            case .badLine(let line, let why):
                return "\(path):\(line): \(why)"
            }
        }
    }

    /// The file's one key: its type as the line names it, the base64 of its blob, the parsed key.
    public struct Key: Sendable, Equatable {
        public var type: String
        public var base64: String
        public var key: SSHPublicKey
        public var line: Int
    }

    static let privateKeyMarkers = ["PRIVATE KEY-----", "PuTTY-User-Key-File-", "SSH PRIVATE KEY FILE FORMAT"]

    public static func parse(_ bytes: [UInt8]) -> Result<Key, Problem> {
        for marker in privateKeyMarkers where contains(bytes, Array(marker.utf8)) { return .failure(.privateKey) }
        var found: Key? = nil
        var lineNumber = 0
        for rawLine in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = rawLine
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            let words = line.split(whereSeparator: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") })
            if words.isEmpty || words[0].first == UInt8(ascii: "#") { continue }
            if found != nil {
                return .failure(.badLine(line: lineNumber, why: "a second key; give a file with one public key or certificate"))
            }
            switch parseLine(words) {
            case .success(let (type, base64, key)): found = Key(type: type, base64: base64, key: key, line: lineNumber)
            case .failure(let why): return .failure(.badLine(line: lineNumber, why: why.message))
            }
        }
        guard let found else { return .failure(.noKey) }
        return .success(found)
    }

    struct Why: Error { var message: String }

    static let lineForm = "TYPE BASE64 [COMMENT], as ssh-keygen writes it"

    static func parseLine(_ words: [ArraySlice<UInt8>]) -> Result<(String, String, SSHPublicKey), Why> {
        guard words.count >= 2 else { return .failure(Why(message: "not a public key line (\(lineForm))")) }
        guard words[0].allSatisfy({ $0 > 0x20 && $0 < 0x7F }), words[1].allSatisfy({ $0 > 0x20 && $0 < 0x7F }),
              let blob = Base64.decode(words[1]) else {
            return .failure(Why(message: "not a public key line (\(lineForm)): the second word is not base64"))
        }
        guard blob.count <= SSHPublicKey.maximumBlobSize, let key = SSHPublicKey.parse(blob) else {
            return .failure(Why(message: "the key data is not a public key or certificate mfagate can read (\(lineForm))"))
        }
        let type = String(decoding: words[0], as: UTF8.self)
        guard key.type == type else {
            return .failure(Why(message: "the type the line names is not its key data's (\(key.type)); give the file as ssh-keygen wrote it"))
        }
        return .success((type, String(decoding: words[1], as: UTF8.self), key))
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }
}
