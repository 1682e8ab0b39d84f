// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Writes all of `bytes` to `fd`, again after EINTR and short writes. False on failure, with
/// `errno` saying why (EIO for a write that wrote nothing). The one write loop of every file the
/// stores write (user and state files, the replay journal, the fleet marks and offline cache).
public func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var written = 0
    while written < bytes.count {
        let n = bytes.withUnsafeBytes { buffer -> Int in
            guard let base = buffer.baseAddress else { return 0 }
            return write(fd, base + written, buffer.count - written)
        }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 {
            if n == 0 { errno = EIO }
            return false
        }
        written += n
    }
    return true
}
