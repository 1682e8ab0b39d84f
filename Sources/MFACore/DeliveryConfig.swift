// SPDX-License-Identifier: Apache-2.0
/// The config keys of code delivery (issue 10): `methods`, `email_command`, `email_from`,
/// `email_address_pattern`, `sms_command`, and the send caps of issue 14: `max_codes_per_sender`,
/// `max_codes_per_hour`, `sms_allowed_prefixes`. Kept apart from Config.swift so that file only routes to here.
extension ConfigParser {
    static func applyDelivery(key: String, value: String, to config: inout DaemonConfig) throws(ValueError) {
        do {
            switch key {
            case "methods":
                var list: [LoginMethod] = []
                for word in words(value) {
                    guard let method = LoginMethod(rawValue: word) else {
                        throw ValueError(message: "`methods`: \"\(DeliveryAddress.escaped(word))\" is not a method (totp, email, sms)")
                    }
                    if !list.contains(method) { list.append(method) }
                }
                // Email and SMS are added to an enrollment whose base is the app or token: a user
                // who lost both still logs in with a recovery code, and every check stays as it is.
                guard list.contains(.totp) else {
                    throw ValueError(message: "`methods` must include totp: email and sms are added to a TOTP/HOTP enrollment")
                }
                config.methods = list
            case "email_command":
                config.emailCommand = try DeliveryCommand.parse(key, value)
            case "sms_command":
                config.smsCommand = try DeliveryCommand.parse(key, value)
            case "email_from":
                config.emailFrom = try DeliveryAddress.validateEmail(value)
            case "email_address_pattern":
                guard value.contains("%u") else {
                    throw ValueError(message: "`email_address_pattern` must contain %u (the user name), like %u@example.org")
                }
                _ = try DeliveryAddress.fromPattern(value, user: "user")
                config.emailAddressPattern = value
            case "max_codes_per_sender":
                config.maxCodesPerSender = try number(key, value, in: 1...10_000, what: "a count of codes per hour")
            case "max_codes_per_hour":
                config.maxCodesPerHour = try number(key, value, in: 1...1_000_000, what: "a count of codes per hour")
            case "sms_allowed_prefixes":
                var prefixes: [String] = []
                for word in words(value) {
                    guard let prefix = PhonePrefix.parse(word) else {
                        throw ValueError(message: "`sms_allowed_prefixes`: \"\(DeliveryAddress.escaped(word))\" is not an E.164 prefix like +49 or +1 (a plus and 1 to 15 digits, the first not 0)")
                    }
                    if !prefixes.contains(prefix) { prefixes.append(prefix) }
                }
                config.smsAllowedPrefixes = prefixes
            default:
                throw ValueError(message: "unknown key `\(key)`")
            }
        } catch let error as AddressError {
            throw ValueError(message: key == "email_from" ? "`email_from`: \(error.message)" : error.message)
        } catch let error as ValueError {
            throw error
        } catch {
            throw ValueError(message: "\(error)")
        }
    }

    /// `methods = ... sms` needs a gateway: there is no default `sms_command`.
    static func deliveryConflict(_ config: DaemonConfig) -> ConfigError? {
        if config.methods.contains(.sms) && config.smsCommand == nil {
            return ConfigError(file: config.file, line: config.lines["methods"] ?? 0,
                              message: "`methods` includes sms but `sms_command` is not set (the program that sends a text through your gateway)")
        }
        return nil
    }
}

/// `sms_allowed_prefixes`: the countries (or narrower prefixes) texts may go to. Premium-rate and
/// far-away numbers cost the admin money per text (SMS pumping); the default allows any number.
public enum PhonePrefix {
    /// `+49`, `+1`, `+4420`: a plus and 1 to 15 digits, the first not 0. nil: not a prefix.
    public static func parse(_ word: String) -> String? {
        let digits = word.utf8.dropFirst()
        guard word.hasPrefix("+"), (1...15).contains(digits.count), digits.first != UInt8(ascii: "0"),
              digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return word
    }

    /// Whether texts may go to `number` (already in E.164 form, `DeliveryAddress.validatePhone`).
    public static func allows(_ prefixes: [String], _ number: String) -> Bool {
        prefixes.isEmpty || prefixes.contains { number.hasPrefix($0) }
    }

    /// The one sentence a refused number gets.
    public static func refusal(_ prefixes: [String], _ number: String) -> String {
        "\(DeliveryAddress.maskPhone(number)) is not a number this host sends texts to: sms_allowed_prefixes in mfagate.conf allows only \(prefixes.joined(separator: " ")) (ask the administrator)"
    }
}
