// SPDX-License-Identifier: Apache-2.0
/*
 * mfg_login.h - what the shim's files share about one login (internal to pam_mfagate.so).
 *
 * The files, one job each:
 *   mfg_options.c   the module arguments (socket=, timeout=, failmode=, forward_pass, debug)
 *   mfg_socket.c    the bounded link to mfagated: the socket directory check, connect, send and
 *                   read one frame each within the timeout, and the failmode answer when it breaks
 *   mfg_conv.c      the PAM conversation relay: one CONVERSE round, forward_pass's combined prompt
 *   pam_mfagate.c   the login (LOGIN_BEGIN, rounds, VERDICT mapping) and the PAM entry points
 *   mfg_frame.c     the pure frame codec and forward_pass's split rule (mfg_frame.h)
 * Everything here has hidden visibility (-fvisibility=hidden, pam/exports.map): the .so exports
 * only pam_sm_authenticate and pam_sm_setcred.
 */
#ifndef MFG_LOGIN_H
#define MFG_LOGIN_H

#include <stddef.h>
#include <stdint.h>

#include <security/pam_modules.h>

#include "mfg_frame.h"

#define CONTINUE (-1) /* internal: not a PAM code (those are >= 0) */

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

static inline void note_used(size_t *used, size_t n)
{
    if (n > *used)
        *used = n;
}

/* mfg_options.c: fills *o from the module arguments; PAM_SERVICE_ERR (logged) on any bad one. */
int mfg_parse_options(pam_handle_t *pamh, int argc, const char **argv, struct options *o);

/* mfg_socket.c */
/* Daemon unreachable, silent, gone or talking nonsense: log why and answer per failmode. */
__attribute__((format(printf, 2, 3))) int mfg_unavailable(const struct login *l, const char *fmt, ...);
/* 0 if the socket's directory may be trusted (root's, closed to group and others, or absent). */
int mfg_check_socket_dir(const struct login *l);
/* Connects within the timeout; *fd_out is set as soon as there is a socket (the caller closes it). */
int mfg_connect_daemon(const struct login *l, int *fd_out);
/* Sends a frame already encoded in buf->frame (len < 0: the encoder refused), then wipes it. */
int mfg_send_frame(struct login *l, long len);
/* Reads and decodes one daemon frame: CONTINUE, else the failmode answer (already logged). */
int mfg_read_message(struct login *l, struct mfg_daemon_msg *msg);

/* mfg_conv.c */
/* One CONVERSE round: show the messages, send the REPLY. Returns CONTINUE or a final code. */
int mfg_converse_round(struct login *l, const struct mfg_daemon_msg *m);
/* forward_pass, at the end of a login whose user is known: the password for the next module. */
int mfg_forward_pass_end(struct login *l, int retval);

#endif /* MFG_LOGIN_H */
