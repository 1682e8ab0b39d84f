// SPDX-License-Identifier: Apache-2.0
/// The Key Uri Format that authenticator apps scan (otpauth://totp/ISSUER:ACCOUNT?...).
public enum OTPAuthURI {
    public static func totp(secret: [UInt8], issuer: String, account: String, parameters: OTPParameters) -> String {
        let label = percentEncode(issuer) + ":" + percentEncode(account)
        return "otpauth://totp/\(label)?secret=\(Base32.encode(secret))&issuer=\(percentEncode(issuer))"
            + "&algorithm=\(parameters.digest.rawValue.uppercased())&digits=\(parameters.digits)&period=\(parameters.period)"
    }

    /// `otpauth://hotp/...&counter=N` for counter-based tokens and apps.
    public static func hotp(secret: [UInt8], issuer: String, account: String, parameters: OTPParameters, counter: UInt64) -> String {
        let label = percentEncode(issuer) + ":" + percentEncode(account)
        return "otpauth://hotp/\(label)?secret=\(Base32.encode(secret))&issuer=\(percentEncode(issuer))"
            + "&algorithm=\(parameters.digest.rawValue.uppercased())&digits=\(parameters.digits)&counter=\(counter)"
    }

    /// RFC 3986: everything but the unreserved characters is %-escaped.
    public static func percentEncode(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for b in text.utf8 {
            let unreserved = (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "-") || b == UInt8(ascii: ".")
                || b == UInt8(ascii: "_") || b == UInt8(ascii: "~")
            if unreserved { out.append(b) } else {
                out.append(UInt8(ascii: "%")); out.append(hex[Int(b >> 4)]); out.append(hex[Int(b & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
