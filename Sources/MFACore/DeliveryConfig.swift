/// The config keys of code delivery (issue 10): `methods`, `email_command`, `email_from`,
/// `email_address_pattern`, `sms_command`. Kept apart from Config.swift so that file only routes to here.
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
    static func checkDeliveryConflicts(_ config: DaemonConfig) throws(ConfigError) {
        if config.methods.contains(.sms) && config.smsCommand == nil {
            throw ConfigError(file: config.file, line: config.lines["methods"] ?? 0,
                              message: "`methods` includes sms but `sms_command` is not set (the program that sends a text through your gateway)")
        }
    }
}
