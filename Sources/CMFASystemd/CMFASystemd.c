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
#include <unistd.h>

/* The service manager's side of the daemon, written against systemd's documented, stable
 * interfaces instead of linking libsystemd (docs/architecture.md, "systemd without libsystemd"):
 * socket activation (sd_listen_fds(3): LISTEN_PID, LISTEN_FDS, descriptors from 3), readiness and
 * watchdog (sd_notify(3): one datagram to NOTIFY_SOCKET; sd_watchdog_enabled(3): WATCHDOG_USEC,
 * WATCHDOG_PID) and the journal's native protocol (systemd.io/JOURNAL_NATIVE_PROTOCOL: one datagram
 * to /run/systemd/journal/socket). libsystemd and the libraries it loads (libgcrypt, libgpg-error,
 * liblz4, libzstd, liblzma, libcap) kept about 1.1 MB resident in an idle daemon for these five
 * calls. Each is tested against real sockets (Tests/integration/test_systemd.py, test_journal.py)
 * and under systemd as PID 1 (make check-deb). */

#define LISTEN_FDS_START 3

/* A decimal number without sign, spaces or trailing bytes; 0 and the value, or -1. */
static int parse_u64(const char *text, uint64_t *out) {
    if (text == NULL || *text == '\0') return -1;
    uint64_t value = 0;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') return -1;
        uint64_t digit = (uint64_t)(*p - '0');
        if (value > (UINT64_MAX - digit) / 10) return -1;
        value = value * 10 + digit;
    }
    *out = value;
    return 0;
}

/* True if the variable names this process (LISTEN_PID, WATCHDOG_PID). */
static int names_this_process(const char *text) {
    uint64_t pid = 0;
    return parse_u64(text, &pid) == 0 && pid == (uint64_t)getpid();
}

int mfa_sd_listening_socket(void) {
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    uint64_t count = 0;
    int ours = pid != NULL && fds != NULL && names_this_process(pid) && parse_u64(fds, &count) == 0;
    /* As sd_listen_fds(1): the variables are not passed on to anything the daemon starts. */
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (!ours || count == 0) return -1;
    if (count > 1) return -2;
    int fd = LISTEN_FDS_START;
    struct stat st;
    int type = 0, listening = 0;
    socklen_t length = sizeof(type);
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return -3;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0 || type != SOCK_STREAM) return -3;
    length = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || !listening) return -3;
    struct sockaddr_storage address;
    length = sizeof(address);
    if (getsockname(fd, (struct sockaddr *)&address, &length) != 0 || address.ss_family != AF_UNIX) return -3;
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

/* The address in NOTIFY_SOCKET (a path, or "@name" in the abstract namespace); its length, or -1. */
static socklen_t notify_address(const char *name, struct sockaddr_un *address) {
    size_t n = strlen(name);
    if (n < 2 || n >= sizeof(address->sun_path) || (name[0] != '/' && name[0] != '@')) return (socklen_t)-1;
    memset(address, 0, sizeof(*address));
    address->sun_family = AF_UNIX;
    memcpy(address->sun_path, name, n);
    if (name[0] == '@') address->sun_path[0] = '\0';
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

int mfa_sd_notify(const char *state) {
    const char *name = getenv("NOTIFY_SOCKET");
    if (name == NULL || *name == '\0') return 0;
    struct sockaddr_un address;
    socklen_t length = notify_address(name, &address);
    if (length == (socklen_t)-1) return -EAFNOSUPPORT;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    /* systemd reads the sender's credentials from the socket (SO_PASSCRED on its side). */
    ssize_t sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&address, length);
    int error = errno;
    close(fd);
    return sent < 0 ? -error : 1;
}

uint64_t mfa_sd_watchdog_usec(void) {
    uint64_t usec = 0;
    if (parse_u64(getenv("WATCHDOG_USEC"), &usec) != 0) return 0;
    const char *pid = getenv("WATCHDOG_PID");
    if (pid != NULL && !names_this_process(pid)) return 0;
    return usec;
}

/* One datagram socket to journald for the process's life, made by the first entry; entries may
 * come from several threads (sendmsg on one datagram socket is safe). */
static int journal_socket(void) {
    static int shared = -1;
    int fd = __atomic_load_n(&shared, __ATOMIC_ACQUIRE);
    if (fd >= 0) return fd;
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int size = 8 * 1024 * 1024; /* as libsystemd: room for bursts (best effort, capped by the kernel) */
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    int expected = -1;
    if (!__atomic_compare_exchange_n(&shared, &expected, fd, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        close(fd);
        return expected;
    }
    return fd;
}

int mfa_sd_journal_send(const char *const *fields, const size_t *lengths, size_t count) {
    if (count == 0 || count > 64) return -EINVAL;
    /* Each field "NAME=value" goes out as NAME, a newline, the value's length (64-bit little
     * endian), the value and a newline: the protocol's form that carries any byte in the value. */
    struct iovec iov[64 * 5];
    uint64_t sizes[64];
    static const char newline = '\n';
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        const char *equals = memchr(fields[i], '=', lengths[i]);
        if (equals == NULL || equals == fields[i]) return -EINVAL;
        size_t name = (size_t)(equals - fields[i]), value = lengths[i] - name - 1;
        uint64_t v = value;
        unsigned char *le = (unsigned char *)&sizes[i];
        for (int b = 0; b < 8; b++) le[b] = (unsigned char)(v >> (8 * b));
        iov[n++] = (struct iovec){ (void *)fields[i], name };
        iov[n++] = (struct iovec){ (void *)&newline, 1 };
        iov[n++] = (struct iovec){ (void *)&sizes[i], 8 };
        iov[n++] = (struct iovec){ (void *)(equals + 1), value };
        iov[n++] = (struct iovec){ (void *)&newline, 1 };
    }
    int fd = journal_socket();
    if (fd < 0) return -errno;
    struct sockaddr_un address = { .sun_family = AF_UNIX, .sun_path = "/run/systemd/journal/socket" };
    struct msghdr message = {
        .msg_name = &address,
        .msg_namelen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + sizeof("/run/systemd/journal/socket")),
        .msg_iov = iov,
        .msg_iovlen = n,
    };
    return sendmsg(fd, &message, MSG_NOSIGNAL) < 0 ? -errno : 0;
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
