// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the daemon's config parser (ConfigParser.parse), which reads an admin's file at
// start and on every SIGHUP. Built by `make fuzz-swift` with MFACore's sources compiled into this
// module (see README.md).
//
// Besides crashes and sanitizer reports it traps when the parser accepts a file whose settings
// break the rules the rest of the daemon relies on, or when the parse does not follow the lines of
// the file (each `\n` byte ends a line, whatever comes before it).

@_cdecl("LLVMFuzzerTestOneInput")
public func configFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // As the daemon reads it: bytes, refused when not UTF-8 (so an accepted file is UTF-8 throughout).
    let text = String(decoding: bytes, as: UTF8.self)
    let parsed: DaemonConfig
    do {
        parsed = try ConfigParser.parse(bytes: bytes, file: "fuzz.conf")
        require(String(validating: bytes, as: UTF8.self) != nil, "a file that is not UTF-8 was accepted")
    } catch {
        require(error.line >= 0, "negative line number")
        let lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).count
        require(error.line <= lines, "error on line \(error.line) of a \(lines)-line file")
        return 0
    }
    require((0...10).contains(parsed.window), "window out of range")
    require(parsed.stateDirectory.hasPrefix("/") && parsed.socketPath.hasPrefix("/"), "relative path accepted")
    require(parsed.socketPath.utf8.count <= 107, "socket path too long")
    require(!parsed.stateDirectory.utf8.contains(0) && !parsed.socketPath.utf8.contains(0), "NUL in a path")
    // The login texts reach every terminal that logs in: no control, format or separator character.
    for key in PromptTexts.keys {
        require(ConfigParser.defaultText(key, parsed).unicodeScalars.allSatisfy { PromptTexts.refusedKind($0) == nil },
                "a login text that could drive a terminal was accepted (\(key))")
    }
    // Every accepted file means the same when each line is parsed on its own: a line ending must not
    // hide a setting inside a comment or a value (a CR LF pair is one Swift Character, not a `\n`).
    var merged: [String: String] = [:]
    for line in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
        let one = String(decoding: line, as: UTF8.self)
        let single: DaemonConfig
        // Rules between keys (`store = postgresql` needs `database_url`, `methods` with sms needs
        // `sms_command`) hold for the file, not for one of its lines.
        do { single = try ConfigParser.parse(one, file: "line", checkingConflicts: false) } catch {
            fatalError("a line of an accepted file is refused on its own: \(error)")
        }
        for key in single.lines.keys { merged[key] = ConfigParser.defaultText(key, single) }
    }
    let defaults = DaemonConfig()
    for key in ConfigParser.keys {
        let expected = merged[key] ?? ConfigParser.defaultText(key, defaults)
        require(ConfigParser.defaultText(key, parsed) == expected, "the file means something else than its lines (\(key))")
    }
    return 0
}
/// Like `precondition`, but the message survives `-O`, so a finding says which rule broke.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}
