// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFAPostgres
import MFACore

/// Whether the link to the fleet database is authenticated (docs/fleet.md, "What the database can
/// and cannot do to you"): whoever sits on the path of a plaintext or unverified TLS connection can
/// delete or roll back rows as a database writer could. A `database_url` must therefore name only
/// local Unix sockets, or use `sslmode=verify-full`; anything else needs `database_insecure = yes`.
/// The URL is read with libpq's own parser (`PQconninfoParse`), so URIs and `key=value` strings
/// mean here exactly what they mean to the connection.
public enum FleetLink {
    /// For `mfagated --check-config`: the sentence the daemon would refuse to start with, if any.
    public static func refusal(_ config: DaemonConfig) -> String? {
        guard config.store == .postgresql, let url = config.databaseURL, !config.databaseInsecure else { return nil }
        do {
            guard let why = try insecurity(of: url) else { return nil }
            return "\(config.file): database_url \(why); use sslmode=verify-full (with sslrootcert), or write `database_insecure = yes` to accept it"
        } catch {
            return "\(config.file): \(error)"
        }
    }

    /// nil if the link is a local socket or verified TLS; else why not (a clause for a sentence).
    static func insecurity(of conninfo: String) throws(FleetError) -> String? {
        var loadError = [CChar](repeating: 0, count: 256)
        if mfa_libpq_load(&loadError, loadError.count) != 0 {
            throw .library(String(decoding: loadError.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        var error: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &error) else {
            let why = error.map { String(cString: $0) } ?? "out of memory"
            if let error { PQfreemem(error) }
            throw .insecureLink("database_url cannot be read: \(why.split(separator: "\n").first.map(String.init) ?? why)")
        }
        defer { PQconninfoFree(options) }
        var values: [String: String] = [:]
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { values[String(cString: keyword)] = String(cString: value) }
            option += 1
        }
        func setting(_ key: String, _ environment: String) -> String {
            if let value = values[key], !value.isEmpty { return value }
            return getenv(environment).map { String(cString: $0) } ?? ""
        }
        let mode = setting("sslmode", "PGSSLMODE")
        let service = setting("service", "PGSERVICE")
        if !service.isEmpty && mode != "verify-full" {
            // pg_service.conf may name any host; this check reads only the URL.
            return "names the pg_service.conf service \(service), whose host this check cannot see, without sslmode=verify-full in the URL"
        }
        let hostaddr = setting("hostaddr", "PGHOSTADDR")
        let hosts = setting("host", "PGHOST").split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let local = hostaddr.isEmpty && hosts.allSatisfy { $0.isEmpty || $0.hasPrefix("/") || $0.hasPrefix("@") }
        if local { return nil }
        if mode == "verify-full" { return nil }
        let target = hostaddr.isEmpty ? hosts.filter { !$0.hasPrefix("/") && !$0.hasPrefix("@") }.joined(separator: ",") : hostaddr
        return "connects over the network (\(target)) with sslmode=\(mode.isEmpty ? "prefer (libpq's default)" : mode), which does not verify the server"
    }
}
