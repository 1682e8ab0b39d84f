// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CMFASys
import MFACore
import MFAProtocol

/// Reads the key file of `mfagate check --ssh-key FILE` and gives the type and base64 blob CHECK
/// carries. This process reads, with the caller's own rights, a file the caller named: unlike the
/// files mfagate must trust (MFASafeFile's readers check their owner and refuse symlinks), any
/// owner and a symlink are fine here; only the size cap and a regular file matter (so a FIFO or
/// /dev/zero cannot hang or flood it). The bytes are wiped after, since a private key given by
/// mistake passes through them; nothing of the file is ever printed.
enum SSHKeyFileReader {
    static func read(_ path: String) throws -> CheckSSHKey {
        var bytes = try readBytes(path)
        defer { mfa_wipe(&bytes, bytes.count) }
        switch SSHPublicKeyFile.parse(bytes) {
        case .success(let key): return CheckSSHKey(type: key.type, blob: key.base64)
        case .failure(let problem): throw fail(problem.sentence(path: path))
        }
    }

    static func readBytes(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { throw fail("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw fail("cannot read \(path): \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw fail("\(path) is not a regular file; give a public key file") }
        let limit = SSHPublicKeyFile.maximumSize
        guard st.st_size <= limit else { throw fail("\(path) is larger than \(limit / 1024) KiB; give one public key or certificate file") }
        // One byte over the cap, to notice a file that grew since fstat.
        var bytes = [UInt8](repeating: 0, count: limit + 1)
        var total = 0
        while total < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                mfa_wipe(&bytes, bytes.count)
                throw fail("cannot read \(path): \(String(cString: strerror(e)))")
            }
            if n == 0 { break }
            total += n
        }
        guard total <= limit else {
            mfa_wipe(&bytes, bytes.count)
            throw fail("\(path) is larger than \(limit / 1024) KiB; give one public key or certificate file")
        }
        let content = Array(bytes[0..<total])
        mfa_wipe(&bytes, bytes.count)
        return content
    }

    /// One sentence on stderr; exit code 2 (a usage error: nothing was asked).
    static func fail(_ sentence: String) -> ExitCode {
        mfa_write_stderr("mfagate: \(sentence)\n")
        return ExitCode(2)
    }
}
