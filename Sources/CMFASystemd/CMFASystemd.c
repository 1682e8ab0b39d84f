// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE
#include "CMFASystemd.h"
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
/* Our entries carry the Swift caller's CODE_FILE/LINE/FUNC (JournalLogHandler); without this,
 * sd_journal_sendv adds a second set naming this C file by its build path. */
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>
#include <unistd.h>

int mfa_sd_listening_socket(void) {
    int n = sd_listen_fds(1);
    if (n <= 0) return -1;
    if (n > 1) return -2;
    int fd = SD_LISTEN_FDS_START;
    if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) return -3;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return -3;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) return -3;
    return fd;
}

int mfa_sd_socket_path(int fd, char *buffer, size_t size) {
    struct sockaddr_un address;
    socklen_t length = sizeof(address);
    memset(&address, 0, sizeof(address));
    if (getsockname(fd, (struct sockaddr *)&address, &length) != 0) return -1;
    if (address.sun_family != AF_UNIX || length <= offsetof(struct sockaddr_un, sun_path)) return -1;
    if (address.sun_path[0] == '\0') return -1;
    size_t n = strnlen(address.sun_path, length - offsetof(struct sockaddr_un, sun_path));
    if (n + 1 > size) return -1;
    memcpy(buffer, address.sun_path, n);
    buffer[n] = '\0';
    return 0;
}

int mfa_sd_notify(const char *state) {
    return sd_notify(0, state);
}

uint64_t mfa_sd_watchdog_usec(void) {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0) return 0;
    return usec;
}

int mfa_sd_journal_send(const char *const *fields, const size_t *lengths, size_t count) {
    if (count == 0 || count > 64) return -EINVAL;
    struct iovec iov[64];
    for (size_t i = 0; i < count; i++) {
        iov[i].iov_base = (void *)fields[i];
        iov[i].iov_len = lengths[i];
    }
    return sd_journal_sendv(iov, (int)count);
}

int mfa_stderr_is_journal_stream(void) {
    const char *value = getenv("JOURNAL_STREAM");
    if (value == NULL) return 0;
    uintmax_t device = 0, inode = 0;
    char extra;
    if (sscanf(value, "%ju:%ju%c", &device, &inode, &extra) != 2) return 0;
    struct stat st;
    if (fstat(STDERR_FILENO, &st) != 0) return 0;
    return (uintmax_t)st.st_dev == device && (uintmax_t)st.st_ino == inode;
}
