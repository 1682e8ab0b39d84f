// SPDX-License-Identifier: Apache-2.0
/*
 * mfg_frame.h - the C side of the mfagate wire protocol, login subset.
 *
 * The frame format, tags and field order are specified in docs/protocol.md (the one
 * place; this header only mirrors its numbers). This codec is pure: no I/O, no PAM,
 * no allocation, so the decoder and forward_pass's split rule can be fuzzed on their own
 * (Tests/integration/fuzz/shim_frame_fuzz.c, shim_split_fuzz.c).
 */
#ifndef MFG_FRAME_H
#define MFG_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define MFG_PROTOCOL_VERSION 1
#define MFG_HEADER_LEN 4          /* u32 big-endian payload length */
#define MFG_MAX_PAYLOAD 65536     /* largest payload a frame may carry */
#define MFG_MAX_STR 65535         /* a str's u16 length prefix */
#define MFG_MAX_MESSAGES 8        /* messages in one CONVERSE */
#define MFG_MAX_ROUNDS 8          /* CONVERSE rounds the shim accepts per login */
#define MFG_MAX_FRAME (MFG_HEADER_LEN + MFG_MAX_PAYLOAD)
/* Where mfagated listens: DaemonConfig.defaultSocketPath on the Swift side. */
#define MFG_DEFAULT_SOCKET "/run/mfagate/mfagated.sock"

enum mfg_tag {
    MFG_TAG_LOGIN_BEGIN = 0x01,
    MFG_TAG_REPLY = 0x02,
    MFG_TAG_CANCEL = 0x03,
    MFG_TAG_ENROLL = 0x10,
    MFG_TAG_STATUS = 0x11,
    MFG_TAG_CONVERSE = 0x81,
    MFG_TAG_VERDICT = 0x82,
    MFG_TAG_ENROLLED = 0x90,
    MFG_TAG_STATUS_REPLY = 0x91,
    MFG_TAG_ERROR = 0x9F,
};

/* CONVERSE styles: the same numbers as PAM's PAM_PROMPT_ECHO_OFF .. PAM_TEXT_INFO. */
enum mfg_style {
    MFG_STYLE_PROMPT_ECHO_OFF = 1,
    MFG_STYLE_PROMPT_ECHO_ON = 2,
    MFG_STYLE_ERROR_MSG = 3,
    MFG_STYLE_TEXT_INFO = 4,
    /* Not PAM's and never shown: marks the round's prompt as a login code prompt; the text is the
     * user's code length in decimal. Sent only after MFG_LOGIN_FLAG_ONE_PROMPT. */
    MFG_STYLE_CODE_DIGITS = 5,
};

enum mfg_result {
    MFG_RESULT_SUCCESS = 0,
    MFG_RESULT_DENIED = 1,
    MFG_RESULT_IGNORE = 2,
    MFG_RESULT_LOCKED = 3,
    MFG_RESULT_UNAVAILABLE = 4,
    MFG_RESULT_BUSY = 5, /* the daemon is at a connection cap: fail closed whatever failmode */
};

#define MFG_LOGIN_FLAG_SILENT 0x01   /* LOGIN_BEGIN flags bit 0: PAM_SILENT */
#define MFG_LOGIN_FLAG_REAL_UID 0x02 /* bit 1: a u32 real uid follows the flags */
#define MFG_LOGIN_FLAG_SSH_AUTH_INFO 0x04 /* bit 2: a str follows: sshd's SSH_AUTH_INFO_0 */
#define MFG_MAX_AUTH_INFO 16384        /* longest SSH_AUTH_INFO_0 sent; longer is not sent */
#define MFG_LOGIN_FLAG_ONE_PROMPT 0x08 /* bit 3: forward_pass; mark code prompts (CODE_DIGITS) */

/* Decoder errors; every one means "malformed frame" to the shim. */
enum mfg_error {
    MFG_ERR_EMPTY = -1,     /* zero-length payload */
    MFG_ERR_TOO_LONG = -2,  /* payload longer than MFG_MAX_PAYLOAD */
    MFG_ERR_TAG = -3,       /* unknown tag, or not a CONVERSE/VERDICT */
    MFG_ERR_SHORT = -4,     /* a field runs past the end of the payload */
    MFG_ERR_TRAILING = -5,  /* bytes left over after the last field */
    MFG_ERR_NUL = -6,       /* NUL byte inside a str */
    MFG_ERR_COUNT = -7,     /* CONVERSE count 0 or > MFG_MAX_MESSAGES */
    MFG_ERR_STYLE = -8,     /* CONVERSE style not 1..5 */
    MFG_ERR_PROMPT = -9,    /* more than one prompt, or a prompt not last */
};

/* A decoded str: points into the payload it was decoded from, not NUL-terminated. */
struct mfg_str {
    const uint8_t *ptr;
    size_t len;
};

struct mfg_message {
    uint8_t style; /* enum mfg_style */
    struct mfg_str text;
};

struct mfg_daemon_msg {
    uint8_t tag; /* MFG_TAG_CONVERSE or MFG_TAG_VERDICT */
    union {
        struct {
            uint8_t count; /* 1..MFG_MAX_MESSAGES */
            struct mfg_message msgs[MFG_MAX_MESSAGES];
        } converse;
        struct {
            uint8_t result; /* any value: mapping (and rejecting unknown ones) is the caller's */
            struct mfg_str reason;
        } verdict;
    } u;
};

/* LOGIN_BEGIN fields; NULL strings are sent as empty. */
struct mfg_login_begin {
    const char *user;
    const char *service;
    const char *rhost;
    const char *tty;
    const char *ruser;
    uint8_t flags;    /* MFG_LOGIN_FLAG_SILENT; the encoder sets MFG_LOGIN_FLAG_REAL_UID itself */
    uint32_t real_uid; /* getuid() of the process the module runs in */
    /* SSH_AUTH_INFO_0 from the PAM environment, or NULL: not sent (the encoder sets
     * MFG_LOGIN_FLAG_SSH_AUTH_INFO itself; longer than MFG_MAX_AUTH_INFO fails the encoding) */
    const char *ssh_auth_info;
};

/*
 * Encoders write a whole frame (4-byte header + payload) into buf and return its length,
 * or -1 if it would not fit in cap, the payload would exceed MFG_MAX_PAYLOAD, or a string
 * is longer than MFG_MAX_STR or contains a NUL byte (possible only with an explicit length).
 */
long mfg_encode_login_begin(uint8_t *buf, size_t cap, const struct mfg_login_begin *b);
long mfg_encode_reply(uint8_t *buf, size_t cap, const char *answer, size_t answer_len);
long mfg_encode_cancel(uint8_t *buf, size_t cap);

/* Reads the payload length from a 4-byte header. */
uint32_t mfg_decode_header(const uint8_t header[MFG_HEADER_LEN]);

/*
 * Decodes one daemon -> shim payload (without its header): CONVERSE or VERDICT.
 * Returns 0, or a negative enum mfg_error; on error *out is unspecified.
 * Strings in *out point into payload, which must outlive them.
 */
int mfg_decode_daemon_frame(const uint8_t *payload, size_t len, struct mfg_daemon_msg *out);

/* A short constant description of an enum mfg_error, for logs. */
const char *mfg_strerror(int err);

/*
 * forward_pass (one combined answer, password then code; man/pam_mfagate.8):
 * mfg_code_digits: the code length a CODE_DIGITS mark carries, 1..10 decimal; anything else 6.
 * mfg_split_combined: where the code starts in an answer of n bytes (the password is what comes
 * before it): a recovery code in the form it is shown (abcd-efgh-jkmn, either case) at the very
 * end; else the last `digits` bytes if they are all ASCII digits; else n (no code: the daemon gets
 * an empty answer, a wrong code).
 */
int mfg_code_digits(const struct mfg_str *text);
size_t mfg_split_combined(const char *answer, size_t n, int digits);

#endif /* MFG_FRAME_H */
