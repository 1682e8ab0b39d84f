// SPDX-License-Identifier: Apache-2.0
#ifndef CMFASYS_H
#define CMFASYS_H
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

/// Credentials of the process at the other end of a connected Unix socket (SO_PEERCRED).
/// Returns 0 and fills the out-parameters, or -1 with errno set.
int mfa_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

/// Blocks SIGTERM, SIGINT and SIGHUP for the calling thread and returns a signalfd that reports them
/// (so the daemon's poll loop sees signals as readable events), or -1 with errno set.
int mfa_signalfd_for_lifecycle(void);

/// Reads one pending signal number from a signalfd made by mfa_signalfd_for_lifecycle; -1 if none.
int mfa_signalfd_read(int fd);

/// Wipes a buffer in a way the compiler may not optimise away.
void mfa_wipe(void *buffer, size_t length);

/// Disables core dumps and ptrace attach by other users of the daemon's uid (PR_SET_DUMPABLE 0).
int mfa_set_not_dumpable(void);
/// accept4 with SOCK_CLOEXEC | SOCK_NONBLOCK (accept4 needs _GNU_SOURCE, which Swift's Glibc lacks).
int mfa_accept_nonblocking(int listen_fd);

/// Writes a whole line to stderr with one write(2) so concurrent log lines do not interleave.
void mfa_write_stderr(const char *text);
/// Fills a Unix socket address for `path`; returns 0, or -1 (errno ENAMETOOLONG) if it does not fit.
int mfa_unix_address(const char *path, struct sockaddr_un *address, socklen_t *length);

/// Starts the replay journal's flush thread: each descriptor number written with
/// mfa_sync_worker_request is fdatasync'ed on that thread, and the result (0 or an errno) can then
/// be read with mfa_sync_worker_result (result_fd becomes readable). Returns 0, or -1 with errno.
int mfa_sync_worker_start(int *request_fd, int *result_fd);
/// Asks the flush thread to fdatasync `fd`. Returns 0, or -1 with errno.
int mfa_sync_worker_request(int request_fd, int fd);
/// Waits for the result of one request: 0 if the fdatasync succeeded, else its errno.
int mfa_sync_worker_result(int result_fd);
/// An eventfd (non-blocking, close-on-exec) by which worker threads wake the poll loop; -1 on error.
int mfa_wakeup_fd(void);
/// Makes a wakeup fd readable (from any thread).
void mfa_wakeup_signal(int fd);
/// Makes it unreadable again (the poll loop, before it looks at what the workers finished).
void mfa_wakeup_drain(int fd);
#endif
