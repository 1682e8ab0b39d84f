// SPDX-License-Identifier: Apache-2.0
/*
 * mfg_socket.c - the shim's bounded link to mfagated: the socket directory check, connect, and
 * sending or reading one frame, every step bounded by poll() and the module's timeout
 * (docs/protocol.md, "Who speaks when"). A link that breaks answers per failmode (mfg_unavailable).
 * Non-blocking and SOCK_CLOEXEC; MSG_NOSIGNAL so a daemon that went away cannot SIGPIPE the host.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>

#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "mfg_login.h"

/* ---- failure reporting ------------------------------------------------- */

/* Daemon unreachable, silent, gone or talking nonsense: log why and answer per failmode. */
int mfg_unavailable(const struct login *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pam_vsyslog(l->pamh, LOG_ERR, fmt, ap);
    va_end(ap);
    return l->opt->failmode_safe ? PAM_IGNORE : PAM_AUTHINFO_UNAVAIL;
}

/* ---- bounded socket I/O ------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for `events` or the deadline passes (errno ETIMEDOUT). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int64_t left = deadline - now_ms();
        int r;
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        r = poll(&p, 1, (int)left);
        if (r > 0)
            return 0; /* ready, or POLLHUP/POLLERR: the following read/write reports it */
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/* Like sshd's StrictModes: the socket's directory must be root's and closed to group and others,
 * else someone else could have put their own socket there and would answer our logins (a user's
 * fake daemon answering SUCCESS). Such a socket is never used, whatever failmode: it is not a
 * daemon that is down but one that may be lying. A directory that does not exist is left to the
 * connect (daemon down). Returns 0 if the directory may be trusted. */
int mfg_check_socket_dir(const struct login *l)
{
    char dir[sizeof ((struct sockaddr_un *)0)->sun_path];
    const char *path = l->opt->socket_path;
    const char *slash = strrchr(path, '/'); /* the path is absolute (parse_socket) */
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    struct stat st;

    memcpy(dir, path, n);
    dir[n] = '\0';
    if (stat(dir, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        pam_syslog(l->pamh, LOG_ERR,
                   "refusing to use %s: its directory %s must be owned by root and not writable "
                   "by group or others (it is uid %u, mode %04o)",
                   path, dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
        return -1;
    }
    return 0;
}

int mfg_connect_daemon(const struct login *l, int *fd_out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int64_t deadline = now_ms() + l->opt->timeout_ms;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    *fd_out = fd; /* the caller's cleanup closes it, on failure too */
    memcpy(sa.sun_path, l->opt->socket_path, strlen(l->opt->socket_path) + 1);
    for (;;) {
        int err = 0;
        socklen_t len = sizeof err;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            /* Unix sockets: the listen backlog is full; retry shortly, within the deadline. */
            if (deadline - now_ms() <= 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            poll(NULL, 0, 10);
            continue;
        }
        if (errno != EINPROGRESS)
            return -1;
        if (wait_fd(fd, POLLOUT, deadline) != 0)
            return -1;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            return -1;
        errno = err;
        return err == 0 ? 0 : -1;
    }
}

static int send_all(const struct login *l, const uint8_t *p, size_t n)
{
    int64_t deadline = now_ms() + l->opt->timeout_ms;
    while (n > 0) {
        /* MSG_NOSIGNAL: a daemon that went away must not SIGPIPE the host process. */
        ssize_t w = send(l->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(l->fd, POLLOUT, deadline) != 0)
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

/* Sends a frame already encoded in buf->frame (len < 0: the encoder refused), then wipes it:
 * a REPLY carries the user's answer. */
int mfg_send_frame(struct login *l, long len)
{
    int rc;
    if (len < 0) {
        /* A refusing encoder may have written part of the frame: wipe it all at the end. */
        note_used(&l->frame_used, sizeof l->buf->frame);
        return -1;
    }
    note_used(&l->frame_used, (size_t)len);
    rc = send_all(l, l->buf->frame, (size_t)len);
    explicit_bzero(l->buf->frame, (size_t)len);
    return rc;
}

enum read_status { READ_OK, READ_EOF, READ_FAIL, READ_BAD_LENGTH, READ_TRAILING };

/* Reads one whole frame into buf->frame and its payload length into *len. Each recv takes what
 * has arrived, up to the buffer's end, so a frame the daemon sent with one send is read with one
 * recv (reading the header and then the body took two). The daemon sends nothing more until we
 * reply (docs/protocol.md, "Who speaks when"): bytes past the frame's end are malformed. */
static enum read_status read_frame(struct login *l, uint32_t *len, int64_t deadline)
{
    uint8_t *frame = l->buf->frame;
    size_t have = 0;
    size_t need = MFG_HEADER_LEN;
    while (have < need) {
        ssize_t r = recv(l->fd, frame + have, sizeof l->buf->frame - have, 0);
        if (r > 0) {
            have += (size_t)r;
            note_used(&l->frame_used, have);
            if (need == MFG_HEADER_LEN && have >= MFG_HEADER_LEN) {
                *len = mfg_decode_header(frame);
                if (*len == 0 || *len > MFG_MAX_PAYLOAD)
                    return READ_BAD_LENGTH;
                need = MFG_HEADER_LEN + (size_t)*len;
            }
        } else if (r == 0) {
            return READ_EOF;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(l->fd, POLLIN, deadline) != 0)
                return READ_FAIL;
        } else {
            return READ_FAIL;
        }
    }
    return have == need ? READ_OK : READ_TRAILING;
}

/* Reads and decodes one daemon frame. Returns CONTINUE on success, else the failmode answer
 * (already logged). The timeout covers this frame only, from when we start waiting. */
int mfg_read_message(struct login *l, struct mfg_daemon_msg *msg)
{
    int64_t deadline = now_ms() + l->opt->timeout_ms;
    enum read_status st;
    uint32_t len = 0;
    int err;

    /* The daemon answers after it has worked (and, for a verdict, flushed its journal): a recv
     * now would almost always fail with EAGAIN, so wait first (one system call fewer a frame). */
    st = wait_fd(l->fd, POLLIN, deadline) == 0 ? read_frame(l, &len, deadline) : READ_FAIL;
    if (st == READ_BAD_LENGTH)
        return mfg_unavailable(l, "malformed frame from mfagated: length %u", (unsigned)len);
    if (st == READ_TRAILING)
        return mfg_unavailable(l, "malformed exchange: mfagated sent more than one frame");
    if (st == READ_EOF)
        return mfg_unavailable(l, "mfagated closed the connection early");
    if (st == READ_FAIL && errno == ETIMEDOUT)
        return mfg_unavailable(l, "no answer from mfagated within %d s", l->opt->timeout_ms / 1000);
    if (st == READ_FAIL)
        return mfg_unavailable(l, "reading from mfagated: %s", strerror(errno));
    err = mfg_decode_daemon_frame(l->buf->frame + MFG_HEADER_LEN, len, msg);
    if (err != 0)
        return mfg_unavailable(l, "malformed frame from mfagated: %s", mfg_strerror(err));
    return CONTINUE;
}
