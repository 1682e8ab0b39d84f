// SPDX-License-Identifier: Apache-2.0
/// `mfagate status` lists the user's remembered logins (`remember`): STATUS flag bit 0 asks for
/// them, and only then does the STATUS answer end with the list (docs/protocol.md). A plain STATUS
/// and its answer are the old frames byte for byte, so an older CLI keeps working with a newer
/// daemon; an older daemon refuses the flags byte (a malformed frame: it closes the connection),
/// and the CLI then asks again without it and says why the list is missing.
extension WireProtocol {
    /// STATUS flags (an optional last byte): bit 0, list the live remembered logins.
    public static let statusFlagRemembered: UInt8 = 0x01
}

/// One live remembered login: no code for `service` from `rhost` while since ≤ now < until.
public struct RememberedHost: Sendable, Equatable {
    public var rhost: String
    public var service: String
    /// Unix time of the right code that made it.
    public var since: Int64
    /// Unix time from which a code is asked again (since + `remember`).
    public var until: Int64
    public init(rhost: String, service: String, since: Int64, until: Int64) {
        self.rhost = rhost
        self.service = service
        self.since = since
        self.until = until
    }
}

extension Writer {
    /// u16 count, then count × (str rhost, str service, u64 since, u64 until).
    mutating func rememberedHosts(_ hosts: [RememberedHost]) throws(FrameError) {
        guard hosts.count <= 0xFFFF else { throw .badValue("too many remembered hosts") }
        u16(UInt16(hosts.count))
        for host in hosts {
            try str(host.rhost); try str(host.service)
            u64(UInt64(bitPattern: host.since)); u64(UInt64(bitPattern: host.until))
        }
    }
}

extension Reader {
    mutating func rememberedHosts() throws(FrameError) -> [RememberedHost] {
        let count = Int(try u16())
        var hosts: [RememberedHost] = []
        for _ in 0..<count {
            let rhost = try str(), service = try str()
            let since = Int64(bitPattern: try u64())
            hosts.append(RememberedHost(rhost: rhost, service: service, since: since, until: Int64(bitPattern: try u64())))
        }
        return hosts
    }
}
