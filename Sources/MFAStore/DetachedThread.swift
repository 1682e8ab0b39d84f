// SPDX-License-Identifier: Apache-2.0
import Glibc

/// A detached POSIX thread running one closure: the daemon's few long-lived helper threads (the
/// fleet request workers, the high-water marks' flusher). No Foundation `Thread` in the daemon.
public enum DetachedThread {
    /// Starts `body` on a new detached thread; false if the system refused one (the caller then
    /// does the work inline or with fewer threads).
    public static func start(_ body: @escaping () -> Void) -> Bool {
        final class Start {
            let body: () -> Void
            init(_ body: @escaping () -> Void) { self.body = body }
        }
        let start = Unmanaged.passRetained(Start(body)).toOpaque()
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<Start>.fromOpaque(raw).takeRetainedValue().body()
            return nil
        }, start)
        guard started == 0 else {
            Unmanaged<Start>.fromOpaque(start).release()
            return false
        }
        pthread_detach(thread)
        return true
    }
}
