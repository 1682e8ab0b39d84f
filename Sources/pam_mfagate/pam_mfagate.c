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
 *
 * This file drives the login and holds the PAM entry points; the module's other jobs are in
 * mfg_options.c (arguments), mfg_socket.c (bounded I/O to the daemon), mfg_conv.c (the
 * conversation relay) and mfg_frame.c (the frame codec); mfg_login.h is what they share.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <security/pam_appl.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "mfg_login.h"

#define PUBLIC __attribute__((visibility("default")))

#define MAX_LOGGED_REASON 200 /* a VERDICT reason is short; cap what a debug line copies */

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
        return mfg_unavailable(l, "malformed frame from mfagated: verdict %u",
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
    if (mfg_send_frame(l, len) != 0) {
        /* A daemon at its caps answers BUSY and closes at once, maybe before our request got
         * there: the verdict may be waiting to be read. */
        int send_errno = errno;
        struct mfg_daemon_msg msg;
        if ((send_errno == EPIPE || send_errno == ECONNRESET) && mfg_read_message(l, &msg) == CONTINUE &&
            msg.tag == MFG_TAG_VERDICT)
            return map_verdict(l, &msg);
        return mfg_unavailable(l, "sending to mfagated: %s", strerror(send_errno));
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
        if ((rc = mfg_read_message(l, &msg)) != CONTINUE)
            break;
        if (msg.tag == MFG_TAG_VERDICT)
            return map_verdict(l, &msg);
        if (++rounds > MFG_MAX_ROUNDS)
            return mfg_unavailable(l, "malformed exchange: more than %d rounds", MFG_MAX_ROUNDS);
        rc = mfg_converse_round(l, &msg);
    }
    return rc;
}


PUBLIC int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    struct options opt;
    struct login l = {.pamh = pamh, .opt = &opt, .fd = -1, .silent = (flags & PAM_SILENT) != 0};
    const char *user = NULL;
    int retval = mfg_parse_options(pamh, argc, argv, &opt);

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
    if (mfg_check_socket_dir(&l) != 0) {
        retval = PAM_AUTHINFO_UNAVAIL;
        goto out;
    }
    if (mfg_connect_daemon(&l, &l.fd) != 0) {
        retval = mfg_unavailable(&l, "cannot connect to %s: %s", opt.socket_path, strerror(errno));
        goto out;
    }
    retval = run_login(&l, user);
    if (retval == CONTINUE) /* unreachable; keep a stray internal code out of PAM */
        retval = PAM_AUTH_ERR;

out:
    if (opt.forward_pass && user != NULL && user[0] != '\0')
        retval = mfg_forward_pass_end(&l, retval);
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
