// SPDX-License-Identifier: Apache-2.0
import CQREncode

/// A QR code drawn with characters, so an authenticator app can scan it off a terminal or an SSH
/// login prompt. libqrencode does the encoding; this only draws its module matrix.
public enum TerminalQR {
    public enum Style: Sendable {
        /// Two module rows per text line with `█ ▀ ▄` and space: compact, needs a UTF-8 terminal.
        case halfBlocks
        /// Two characters per module, one line per module row, `#` for dark: any terminal.
        case ascii
    }

    public struct EncodingError: Error, CustomStringConvertible {
        public var description: String { "the text is too long for a QR code" }
    }

    /// Quiet zone in modules around the symbol. The standard asks for 4; 2 scans reliably on a
    /// terminal and keeps the login prompt small.
    public static let margin = 2

    /// The module matrix (true: dark), quiet zone included, rows top to bottom.
    public static func matrix(_ text: String) throws(EncodingError) -> [[Bool]] {
        // Level M: survives a smudged screen; byte mode keeps the URI exactly as given.
        guard let code = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M) else { throw EncodingError() }
        defer { QRcode_free(code) }
        let width = Int(code.pointee.width)
        let size = width + 2 * margin
        var rows = [[Bool]](repeating: [Bool](repeating: false, count: size), count: size)
        for y in 0..<width {
            for x in 0..<width {
                // Bit 0 of each byte is the module colour (1: dark); the other bits are libqrencode's bookkeeping.
                rows[y + margin][x + margin] = code.pointee.data[y * width + x] & 1 != 0
            }
        }
        return rows
    }

    /// Lines of text, no trailing newline. Half blocks draw light modules as ink, like
    /// `qrencode -t UTF8`, so the code reads dark-on-light on the usual dark terminal background.
    public static func render(_ text: String, style: Style) throws(EncodingError) -> String {
        let rows = try matrix(text)
        var lines: [String] = []
        switch style {
        case .ascii:
            for row in rows { lines.append(String(row.map { $0 ? "##" : "  " }.joined())) }
        case .halfBlocks:
            var y = 0
            while y < rows.count {
                let top = rows[y]
                let bottom = y + 1 < rows.count ? rows[y + 1] : [Bool](repeating: false, count: top.count)
                var line = ""
                for x in 0..<top.count {
                    switch (!top[x], !bottom[x]) {   // ink where the module is light
                    case (true, true): line += "█"
                    case (true, false): line += "▀"
                    case (false, true): line += "▄"
                    case (false, false): line += " "
                    }
                }
                lines.append(line)
                y += 2
            }
        }
        return lines.joined(separator: "\n")
    }
}
