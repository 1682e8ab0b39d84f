// SPDX-License-Identifier: Apache-2.0
/*
 * pam_mfagate.so - the PAM shim of mfagate.
 *
 * It holds no policy, secrets or files: it sends the login's PAM items to mfagated over a
 * Unix socket, relays the daemon's CONVERSE rounds to the application's conversation, and
 * maps the daemon's VERDICT to a PAM return (docs/protocol.md). It runs inside sshd, sudo,
 * su or login, so: no signal handlers, no exit, no descriptor leaks (SOCK_CLOEXEC), and
 * every connect/read/write is bounded by poll(). Logs go to syslog and are errors only.
 *
 * Arguments: socket=PATH  timeout=SECONDS (1..300)  failmode=secure|safe  forward_pass  debug
 *
 * forward_pass: one prompt "Password and code: " for clients that can ask only one question; the
 * module splits the code off the end (mfg_split_combined), sends only the code to the daemon and puts
 * the password in PAM_AUTHTOK for the next module (use_first_pass). See man/pam_mfagate.8.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <security/pam_appl.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "mfg_frame.h"

#define PUBLIC __attribute__((visibility("default")))

#define DEFAULT_TIMEOUT_S 10
#define MAX_TIMEOUT_S 300
#define MAX_LOGGED_REASON 200 /* a VERDICT reason is short; cap what a debug line copies */
#define CONTINUE (-1)         /* internal: not a PAM code (those are >= 0) */

struct options {
    const char *socket_path;
    int timeout_ms;
    int failmode_safe;
    int forward_pass;
    int debug;
};

/* One bounded allocation for all I/O: the frame in flight and NUL-terminated copies of
 * a CONVERSE round's texts (their total is below one payload). What was written into it is
 * wiped before it is freed (struct login counts how far). */
struct buffers {
    uint8_t frame[MFG_MAX_FRAME];
    char text[MFG_MAX_PAYLOAD + MFG_MAX_MESSAGES];
};

struct login {
    pam_handle_t *pamh;
    const struct options *opt;
    int fd;
    int silent;
    struct buffers *buf;
    /* How many leading bytes of buf->frame and buf->text have ever been written: only those are
     * wiped at the end (wiping all 128 KiB cost more than the rest of the shim's work). */
    size_t frame_used;
    size_t text_used;
    /* forward_pass: the code length the daemon gave this round's prompt (0: not a code prompt),
     * and whether this module has put the password in PAM_AUTHTOK. */
    int code_digits;
    int password_forwarded;
};

static void note_used(size_t *used, size_t n)
{
    if (n > *used)
        *used = n;
}

/* ---- arguments --------------------------------------------------------- */

static int parse_timeout(const char *s, int *ms)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '+' || s[0] == '-' || v < 1 ||
        v > MAX_TIMEOUT_S)
        return -1;
    *ms = (int)v * 1000;
    return 0;
}

static int parse_socket(const char *s, const char **path)
{
    struct sockaddr_un sun;
    /* Absolute only (a relative path would depend on the host program's cwd), and it
     * must fit sun_path with its NUL. */
    if (s[0] != '/' || strlen(s) >= sizeof sun.sun_path)
        return -1;
    *path = s;
    return 0;
}

static int parse_options(pam_handle_t *pamh, int argc, const char **argv, struct options *o)
{
    o->socket_path = MFG_DEFAULT_SOCKET;
    o->timeout_ms = DEFAULT_TIMEOUT_S * 1000;
    o->failmode_safe = 0;
    o->forward_pass = 0;
    o->debug = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0;
        if (strncmp(a, "socket=", 7) == 0)
            bad = parse_socket(a + 7, &o->socket_path);
        else if (strncmp(a, "timeout=", 8) == 0)
            bad = parse_timeout(a + 8, &o->timeout_ms);
        else if (strcmp(a, "failmode=secure") == 0)
            o->failmode_safe = 0;
        else if (strcmp(a, "failmode=safe") == 0)
            o->failmode_safe = 1;
        else if (strcmp(a, "forward_pass") == 0)
            o->forward_pass = 1;
        else if (strcmp(a, "debug") == 0)
            o->debug = 1;
        else
            bad = -1;
        /* A typo must not silently change behaviour (e.g. "failmode=saef"): refuse. */
        if (bad != 0) {
            pam_syslog(pamh, LOG_ERR, "bad module argument: %s", a);
            return PAM_SERVICE_ERR;
        }
    }
    return PAM_SUCCESS;
}

/* ---- failure reporting ------------------------------------------------- */

/* Daemon unreachable, silent, gone or talking nonsense: log why and answer per failmode. */
__attribute__((format(printf, 2, 3))) static int unavailable(const struct login *l,
                                                             const char *fmt, ...)
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
static int check_socket_dir(const struct login *l)
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

static int connect_daemon(const struct login *l, int *fd_out)
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
static int send_frame(struct login *l, long len)
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
static int read_message(struct login *l, struct mfg_daemon_msg *msg)
{
    int64_t deadline = now_ms() + l->opt->timeout_ms;
    enum read_status st;
    uint32_t len = 0;
    int err;

    /* The daemon answers after it has worked (and, for a verdict, flushed its journal): a recv
     * now would almost always fail with EAGAIN, so wait first (one system call fewer a frame). */
    st = wait_fd(l->fd, POLLIN, deadline) == 0 ? read_frame(l, &len, deadline) : READ_FAIL;
    if (st == READ_BAD_LENGTH)
        return unavailable(l, "malformed frame from mfagated: length %u", (unsigned)len);
    if (st == READ_TRAILING)
        return unavailable(l, "malformed exchange: mfagated sent more than one frame");
    if (st == READ_EOF)
        return unavailable(l, "mfagated closed the connection early");
    if (st == READ_FAIL && errno == ETIMEDOUT)
        return unavailable(l, "no answer from mfagated within %d s", l->opt->timeout_ms / 1000);
    if (st == READ_FAIL)
        return unavailable(l, "reading from mfagated: %s", strerror(errno));
    err = mfg_decode_daemon_frame(l->buf->frame + MFG_HEADER_LEN, len, msg);
    if (err != 0)
        return unavailable(l, "malformed frame from mfagated: %s", mfg_strerror(err));
    return CONTINUE;
}

/* ---- conversation ------------------------------------------------------ */

static void free_responses(struct pam_response *resp, int n)
{
    if (resp == NULL)
        return;
    for (int i = 0; i < n; i++) {
        if (resp[i].resp != NULL) {
            explicit_bzero(resp[i].resp, strlen(resp[i].resp));
            free(resp[i].resp);
        }
    }
    free(resp);
}

/* The conversation failed: tell the daemon (best effort, it ends the login) and give up. */
static int cancel(struct login *l, int pam_code)
{
    (void)send_frame(l, mfg_encode_cancel(l->buf->frame, sizeof l->buf->frame));
    return pam_code;
}

/* ---- forward_pass: one answer, password then code ------------------------ */

#define COMBINED_PROMPT "Password and code: "

/* The round is the login's code prompt and this module asks one combined question. */
static int combined_round(const struct login *l, int prompt_idx)
{
    return l->opt->forward_pass && l->code_digits > 0 && prompt_idx >= 0 && !l->password_forwarded;
}

/* Puts answer[0..split) in PAM_AUTHTOK (libpam keeps its own copy). The caller has sent the code;
 * it wipes the whole answer afterwards. */
static int forward_password(struct login *l, char *answer, size_t split)
{
    int rc;
    char saved = answer[split];
    answer[split] = '\0';
    rc = pam_set_item(l->pamh, PAM_AUTHTOK, answer);
    answer[split] = saved;
    if (rc == PAM_SUCCESS)
        l->password_forwarded = 1;
    return rc;
}

/* The login ended without a combined prompt (no code asked: not enrolled, mode optional or off,
 * a remembered host, a trusted network, the daemon down with failmode=safe, or refused): the
 * password is still asked, with libpam's own "Password: " prompt, for the next module, unless an
 * earlier module has set it. */
static int ask_password(struct login *l)
{
    const void *item = NULL;
    const char *tok = NULL;
    if (pam_get_item(l->pamh, PAM_AUTHTOK, &item) == PAM_SUCCESS && item != NULL)
        return PAM_SUCCESS;
    return pam_get_authtok(l->pamh, PAM_AUTHTOK, &tok, NULL);
}

/* Turns a CONVERSE into pam_messages, with NUL-terminated copies of the texts in buf->text.
 * Info and error texts are dropped under PAM_SILENT. Returns the number kept. */
static int build_messages(struct login *l, const struct mfg_daemon_msg *m,
                          struct pam_message *pm, int *prompt_idx)
{
    char *text = l->buf->text;
    int n = 0;
    *prompt_idx = -1;
    l->code_digits = 0;
    for (int i = 0; i < m->u.converse.count; i++) {
        const struct mfg_message *src = &m->u.converse.msgs[i];
        int prompt = src->style == MFG_STYLE_PROMPT_ECHO_OFF ||
                     src->style == MFG_STYLE_PROMPT_ECHO_ON;
        if (src->style == MFG_STYLE_CODE_DIGITS) { /* a mark, never shown (forward_pass) */
            l->code_digits = mfg_code_digits(&src->text);
            continue;
        }
        if (l->silent && !prompt)
            continue;
        memcpy(text, src->text.ptr, src->text.len);
        text[src->text.len] = '\0';
        /* mfg styles are PAM's numbers (checked by the decoder). */
        pm[n].msg_style = src->style;
        pm[n].msg = text;
        text += src->text.len + 1;
        note_used(&l->text_used, (size_t)(text - l->buf->text));
        if (prompt)
            *prompt_idx = n;
        n++;
    }
    return n;
}

/* One CONVERSE round: show the messages, send the REPLY. Returns CONTINUE or a final code. */
static int converse_round(struct login *l, const struct mfg_daemon_msg *m)
{
    struct pam_message pm[MFG_MAX_MESSAGES];
    const struct pam_message *pmp[MFG_MAX_MESSAGES];
    struct pam_response *resp = NULL;
    const struct pam_conv *conv = NULL;
    const char *answer = "";
    size_t answer_len, split;
    int prompt_idx, combined;
    long len;
    int n = build_messages(l, m, pm, &prompt_idx);

    combined = combined_round(l, prompt_idx);
    if (combined) {
        pm[prompt_idx].msg_style = PAM_PROMPT_ECHO_OFF;
        pm[prompt_idx].msg = COMBINED_PROMPT;
    }

    if (n > 0) {
        int rc = pam_get_item(l->pamh, PAM_CONV, (const void **)&conv);
        if (rc != PAM_SUCCESS || conv == NULL || conv->conv == NULL) {
            pam_syslog(l->pamh, LOG_ERR, "no conversation function");
            return cancel(l, PAM_CONV_ERR);
        }
        for (int i = 0; i < n; i++)
            pmp[i] = &pm[i];
        rc = conv->conv(n, pmp, &resp, conv->appdata_ptr);
        if (rc != PAM_SUCCESS || (prompt_idx >= 0 && resp == NULL)) {
            free_responses(resp, n);
            pam_syslog(l->pamh, LOG_ERR, "conversation failed: %s", pam_strerror(l->pamh, rc));
            return cancel(l, PAM_CONV_ERR);
        }
        if (prompt_idx >= 0 && resp[prompt_idx].resp != NULL)
            answer = resp[prompt_idx].resp;
    }
    /* The answer goes straight from the application's buffer into the frame; both are wiped.
     * forward_pass: only the code goes (the part after `split`); the password goes to PAM_AUTHTOK. */
    answer_len = strnlen(answer, (size_t)MFG_MAX_STR + 1);
    split = combined ? mfg_split_combined(answer, answer_len, l->code_digits) : 0;
    len = mfg_encode_reply(l->buf->frame, sizeof l->buf->frame, answer + split, answer_len - split);
    if (combined && len >= 0 && resp != NULL && resp[prompt_idx].resp != NULL) {
        int rc = forward_password(l, resp[prompt_idx].resp, split);
        if (rc != PAM_SUCCESS) {
            explicit_bzero(l->buf->frame, (size_t)len);
            free_responses(resp, n);
            pam_syslog(l->pamh, LOG_ERR, "cannot set the password for the next module: %s", pam_strerror(l->pamh, rc));
            return cancel(l, rc);
        }
    }
    free_responses(resp, n);
    if (len < 0) {
        /* Only an absurdly long answer gets here; no code is that long. Whatever the encoder
         * wrote before it refused is wiped with the whole frame at the end. */
        note_used(&l->frame_used, sizeof l->buf->frame);
        pam_syslog(l->pamh, LOG_ERR, "answer too long for the protocol");
        return cancel(l, PAM_AUTH_ERR);
    }
    if (send_frame(l, len) != 0)
        return unavailable(l, "sending to mfagated: %s", strerror(errno));
    return CONTINUE;
}

/* ---- verdict ----------------------------------------------------------- */

static int map_verdict(const struct login *l, const struct mfg_daemon_msg *m)
{
    if (l->opt->debug) {
        size_t n = m->u.verdict.reason.len;
        pam_syslog(l->pamh, LOG_DEBUG, "verdict %u: %.*s", (unsigned)m->u.verdict.result,
                   (int)(n < MAX_LOGGED_REASON ? n : MAX_LOGGED_REASON),
                   (const char *)m->u.verdict.reason.ptr);
    }
    switch (m->u.verdict.result) {
    case MFG_RESULT_SUCCESS:
        return PAM_SUCCESS;
    case MFG_RESULT_DENIED:
        return PAM_AUTH_ERR;
    case MFG_RESULT_IGNORE:
        return PAM_IGNORE;
    case MFG_RESULT_LOCKED:
        return PAM_MAXTRIES;
    case MFG_RESULT_UNAVAILABLE:
        /* Not failmode: the daemon is up and could not decide (e.g. a damaged user file);
         * failing open here would let damage skip MFA. */
        return PAM_AUTHINFO_UNAVAIL;
    case MFG_RESULT_BUSY:
        /* Not failmode either: a daemon at its connection caps is up, and whoever filled them
         * must not switch the second factor off with failmode=safe. */
        pam_syslog(l->pamh, LOG_ERR, "mfagated is busy (too many logins at once); refusing");
        return PAM_AUTHINFO_UNAVAIL;
    default:
        return unavailable(l, "malformed frame from mfagated: verdict %u",
                           (unsigned)m->u.verdict.result);
    }
}

/* ---- the login --------------------------------------------------------- */

static const char *item_or_empty(pam_handle_t *pamh, int type)
{
    const void *v = NULL;
    if (pam_get_item(pamh, type, &v) != PAM_SUCCESS || v == NULL)
        return "";
    return v;
}

/* What sshd (>= 7.8) says about the methods already passed in this connection, from the PAM
 * environment, which only the application (sshd) fills, never from the process environment. The
 * daemon decides whether it counts (trusted_ssh_keys); this only relays it. NULL when unset, or
 * longer than the protocol carries (then the daemon asks for the code as without it). */
static const char *ssh_auth_info(pam_handle_t *pamh)
{
    const char *info = pam_getenv(pamh, "SSH_AUTH_INFO_0");
    if (info == NULL || strnlen(info, (size_t)MFG_MAX_AUTH_INFO + 1) > MFG_MAX_AUTH_INFO)
        return NULL;
    return info;
}

static int send_login_begin(struct login *l, const char *user)
{
    struct mfg_login_begin b = {
        .user = user,
        .service = item_or_empty(l->pamh, PAM_SERVICE),
        .rhost = item_or_empty(l->pamh, PAM_RHOST),
        .tty = item_or_empty(l->pamh, PAM_TTY),
        .ruser = item_or_empty(l->pamh, PAM_RUSER),
        .flags = (uint8_t)((l->silent ? MFG_LOGIN_FLAG_SILENT : 0) |
                           (l->opt->forward_pass ? MFG_LOGIN_FLAG_ONE_PROMPT : 0)),
        /* In a setuid su or sudo the invoking user: the daemon charges the connection to them
         * (it believes this only from a root peer, which a user cannot load code into). */
        .real_uid = (uint32_t)getuid(),
        .ssh_auth_info = ssh_auth_info(l->pamh),
    };
    long len = mfg_encode_login_begin(l->buf->frame, sizeof l->buf->frame, &b);
    if (len < 0) {
        /* Items over 64 KiB come from the client, not the daemon: refuse, never failmode. */
        note_used(&l->frame_used, sizeof l->buf->frame);
        pam_syslog(l->pamh, LOG_ERR, "login items too long for the protocol");
        return PAM_AUTH_ERR;
    }
    if (send_frame(l, len) != 0) {
        /* A daemon at its caps answers BUSY and closes at once, maybe before our request got
         * there: the verdict may be waiting to be read. */
        int send_errno = errno;
        struct mfg_daemon_msg msg;
        if ((send_errno == EPIPE || send_errno == ECONNRESET) && read_message(l, &msg) == CONTINUE &&
            msg.tag == MFG_TAG_VERDICT)
            return map_verdict(l, &msg);
        return unavailable(l, "sending to mfagated: %s", strerror(send_errno));
    }
    return CONTINUE;
}

/* Relays CONVERSE rounds until the VERDICT. Returns the final PAM code. */
static int run_login(struct login *l, const char *user)
{
    int rounds = 0;
    int rc = send_login_begin(l, user);
    while (rc == CONTINUE) {
        struct mfg_daemon_msg msg;
        if ((rc = read_message(l, &msg)) != CONTINUE)
            break;
        if (msg.tag == MFG_TAG_VERDICT)
            return map_verdict(l, &msg);
        if (++rounds > MFG_MAX_ROUNDS)
            return unavailable(l, "malformed exchange: more than %d rounds", MFG_MAX_ROUNDS);
        rc = converse_round(l, &msg);
    }
    return rc;
}

/* forward_pass, at the end of every login whose user is known: the password still reaches the next
 * module when no combined prompt took it (ask_password). A conversation that fails then turns a
 * success or "no opinion" into PAM_CONV_ERR; any other result stays. */
static int forward_pass_end(struct login *l, int retval)
{
    int rc;
    if (l->password_forwarded || retval == PAM_CONV_ERR)
        return retval;
    rc = ask_password(l);
    if (rc != PAM_SUCCESS && (retval == PAM_SUCCESS || retval == PAM_IGNORE))
        return rc;
    return retval;
}

PUBLIC int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    struct options opt;
    struct login l = {.pamh = pamh, .opt = &opt, .fd = -1, .silent = (flags & PAM_SILENT) != 0};
    const char *user = NULL;
    int retval = parse_options(pamh, argc, argv, &opt);

    if (retval != PAM_SUCCESS)
        return retval;
    retval = PAM_AUTH_ERR; /* fail closed: only a SUCCESS verdict sets PAM_SUCCESS */

    int rc = pam_get_user(pamh, &user, NULL);
    if (rc != PAM_SUCCESS || user == NULL || user[0] == '\0') {
        retval = rc != PAM_SUCCESS ? rc : PAM_USER_UNKNOWN;
        goto out;
    }
    l.buf = malloc(sizeof *l.buf);
    if (l.buf == NULL) {
        retval = PAM_BUF_ERR;
        goto out;
    }
    if (check_socket_dir(&l) != 0) {
        retval = PAM_AUTHINFO_UNAVAIL;
        goto out;
    }
    if (connect_daemon(&l, &l.fd) != 0) {
        retval = unavailable(&l, "cannot connect to %s: %s", opt.socket_path, strerror(errno));
        goto out;
    }
    retval = run_login(&l, user);
    if (retval == CONTINUE) /* unreachable; keep a stray internal code out of PAM */
        retval = PAM_AUTH_ERR;

out:
    if (opt.forward_pass && user != NULL && user[0] != '\0')
        retval = forward_pass_end(&l, retval);
    if (l.buf != NULL) {
        explicit_bzero(l.buf->frame, l.frame_used);
        explicit_bzero(l.buf->text, l.text_used);
        free(l.buf);
    }
    if (l.fd >= 0)
        close(l.fd);
    return retval;
}

PUBLIC int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)pamh;
    (void)flags;
    (void)argc;
    (void)argv;
    return PAM_SUCCESS;
}
