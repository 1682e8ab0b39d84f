// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CMFASys

extension MFAGate {
    /// `email_command = /usr/bin/mfagate relay /run/mfagate/mail.sock`: hands a message from the
    /// sandboxed daemon to `mfagate-mail.socket`, whose per-connection service runs the MTA's
    /// setuid/setgid `sendmail` outside the daemon's sandbox (NoNewPrivileges, read-only /var).
    struct Relay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pass a message on stdin to a socket-activated sender (for email_command/sms_command).",
            discussion: """
                Reads the message from stdin (at most 64 KiB), sends it to the Unix socket, closes its \
                sending side and waits for the answer: exit 0 if the last line is OK, else the answer \
                goes to stderr and the exit status is 1. The daemon uses it so it can keep its sandbox; \
                see mfagate.conf(5), DELIVERY.
                """)

        @Argument(help: ArgumentHelp("The socket of mfagate-mail.socket.", valueName: "socket"))
        var socket: String

        @Option(name: .long, help: ArgumentHelp("Seconds to wait for the answer.", valueName: "n"))
        var timeout: Int32 = 30

        func run() throws {
            var message: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                message.append(contentsOf: chunk[0..<n])
                if message.count > 65536 { return fail("the message is larger than 64 KiB") }
            }
            let client = DaemonClient(socketPath: socket, timeoutMilliseconds: timeout * 1000)
            let fd: Int32
            do { fd = try client.connectSocket() } catch { return fail("\(error)") }
            defer { close(fd) }
            var sent = 0
            while sent < message.count {
                do { try client.wait(fd, for: Int16(POLLOUT)) } catch { return fail("\(error)") }
                let n = message.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
                if n < 0 {
                    if errno == EAGAIN || errno == EINTR { continue }
                    return fail("sending to \(socket): \(String(cString: strerror(errno)))")
                }
                sent += n
            }
            shutdown(fd, Int32(SHUT_WR))
            var answer: [UInt8] = []
            while answer.count < 4096 {
                do { try client.wait(fd, for: Int16(POLLIN)) } catch { return fail("\(error)") }
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 {
                    if errno == EAGAIN || errno == EINTR { continue }
                    return fail("reading from \(socket): \(String(cString: strerror(errno)))")
                }
                if n == 0 { break }
                answer.append(contentsOf: chunk[0..<n])
            }
            let text = String(decoding: answer, as: UTF8.self)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
            if lines.last.map({ $0.hasSuffix("OK") && $0.count <= 3 }) != true {
                return fail("the sender answered: \(text.isEmpty ? "nothing" : text)")
            }
        }

        func fail(_ text: String) {
            mfa_write_stderr("mfagate relay: \(text)\n")
            Glibc.exit(1)
        }
    }
}
