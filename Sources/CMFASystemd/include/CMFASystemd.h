// SPDX-License-Identifier: Apache-2.0
#ifndef CMFASYSTEMD_H
#define CMFASYSTEMD_H
#include <stddef.h>
#include <stdint.h>

/// The listening socket systemd passed (socket activation), made non-blocking and close-on-exec.
/// Returns the descriptor; -1 if the daemon was not socket-activated (LISTEN_FDS unset or for
/// another process); -2 if more than one descriptor was passed; -3 if the descriptor is not a
/// listening AF_UNIX stream socket. The LISTEN_* variables are removed from the environment.
int mfa_sd_listening_socket(void);

/// Copies the filesystem path an AF_UNIX socket is bound to into `buffer` (NUL-terminated).
/// Returns 0, or -1 if it is not bound to a path (abstract, unnamed) or does not fit.
int mfa_sd_socket_path(int fd, char *buffer, size_t size);

/// Sends `state` (e.g. "READY=1") to the service manager if NOTIFY_SOCKET is set.
/// Returns >0 if sent, 0 if there is no service manager to tell, <0 (-errno) on failure.
int mfa_sd_notify(const char *state);

/// The watchdog interval the service manager asked for, in microseconds; 0 if none.
uint64_t mfa_sd_watchdog_usec(void);

/// Sends one journal entry made of `count` "FIELD=value" strings (values may hold any byte;
/// lengths are given so they need not be NUL-free). Returns 0 or -errno (e.g. no journald).
int mfa_sd_journal_send(const char *const *fields, const size_t *lengths, size_t count);

/// True if stderr is the stream named by JOURNAL_STREAM ("device:inode"), i.e. systemd connected
/// our stderr to journald, so structured entries can replace plain lines.
int mfa_stderr_is_journal_stream(void);
#endif
