// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFASys
import MFACore
import MFAProtocol

/// Why the CLI could not get an answer; each names the socket so the admin knows where to look.
struct ClientError: Error, CustomStringConvertible {
    var description: String
    /// The daemon closed the connection before answering: how an older mfagated refuses a field it
    /// does not know (a malformed frame), so a verb that sent a new field can say so or ask again.
    var closedWithoutAnswer = false
    static func unreachable(_ path: String, _ code: Int32) -> ClientError {
        ClientError(description: "cannot reach mfagated at \(path): \(String(cString: strerror(code))) (is the daemon running? see --socket / MFAGATE_SOCKET)")
    }
}

/// One request, one answer, every wait bounded.
struct DaemonClient {
    static let defaultSocket = DaemonConfig.defaultSocketPath
    var socketPath: String
    var timeoutMilliseconds: Int32 = 10_000

    func request(_ message: ClientMessage) throws -> DaemonMessage {
        let fd = try connectSocket()
        defer { close(fd) }
        let frame = try FrameCodec.encode(message)
        var sent = 0
        while sent < frame.count {
            try wait(fd, for: Int16(POLLOUT))
            let n = frame.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw ClientError.unreachable(socketPath, errno)
            }
            sent += n
        }
        var splitter = FrameSplitter()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let payload = try splitter.nextPayload() {
                let answer: DaemonMessage
                do { answer = try FrameCodec.decodeDaemon(payload) } catch {
                    // Never guessed at (an unknown error code is not "bad request"): one sentence.
                    throw ClientError(description: "mfagated at \(socketPath) sent an answer this mfagate cannot read (\(error)); install the same version of mfagate and mfagated")
                }
                // A daemon at its connection caps answers BUSY to any request (docs/protocol.md).
                if case .verdict(.busy, let reason) = answer {
                    throw ClientError(description: "\(reason); try again in a moment")
                }
                return answer
            }
            try wait(fd, for: Int16(POLLIN))
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, min($0.count, max(1, splitter.wantedBytes))) }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw ClientError.unreachable(socketPath, errno)
            }
            if n == 0 {
                throw ClientError(description: "mfagated at \(socketPath) closed the connection without an answer", closedWithoutAnswer: true)
            }
            splitter.append(chunk[0..<n])
        }
    }

    func wait(_ fd: Int32, for events: Int16) throws {
        var p = pollfd(fd: fd, events: events, revents: 0)
        let rc = poll(&p, 1, timeoutMilliseconds)
        if rc == 0 { throw ClientError(description: "mfagated at \(socketPath) did not answer within \(timeoutMilliseconds / 1000) s") }
        if rc < 0 && errno != EINTR { throw ClientError.unreachable(socketPath, errno) }
    }

    func connectSocket() throws -> Int32 {
        var address = sockaddr_un()
        var length = socklen_t(0)
        guard mfa_unix_address(socketPath, &address, &length) == 0 else {
            throw ClientError(description: "socket path \(socketPath) is too long")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw ClientError.unreachable(socketPath, errno) }
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
        if rc != 0 && errno != EINPROGRESS && errno != EAGAIN {
            let e = errno
            close(fd)
            throw ClientError.unreachable(socketPath, e)
        }
        return fd
    }
}
