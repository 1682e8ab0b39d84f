// SPDX-License-Identifier: Apache-2.0
/*
 * mfg_frame.c - encoder/decoder for the mfagate login frames; format in docs/protocol.md.
 * Pure functions over caller buffers: no I/O, no allocation (fuzzed as such).
 */
#include "mfg_frame.h"

#include <string.h>

/* ---- encoding ---------------------------------------------------------- */

/* A bounded writer; any overflow latches `failed` so callers check once at the end. */
struct writer {
    uint8_t *buf;
    size_t cap;
    size_t pos;
    int failed;
};

static void put_bytes(struct writer *w, const void *p, size_t n)
{
    if (w->failed || n > w->cap - w->pos) {
        w->failed = 1;
        return;
    }
    if (n > 0)
        memcpy(w->buf + w->pos, p, n);
    w->pos += n;
}

static void put_u8(struct writer *w, uint8_t v)
{
    put_bytes(w, &v, 1);
}

static void put_u16(struct writer *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put_bytes(w, b, sizeof b);
}

static void put_u32(struct writer *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put_bytes(w, b, sizeof b);
}

static void put_str_n(struct writer *w, const char *s, size_t n)
{
    if (s == NULL)
        n = 0;
    /* A NUL inside would be cut by the peer's C strings; the protocol forbids it. */
    if (n > MFG_MAX_STR || (n > 0 && memchr(s, 0, n) != NULL)) {
        w->failed = 1;
        return;
    }
    put_u16(w, (uint16_t)n);
    put_bytes(w, s, n);
}

static void put_str(struct writer *w, const char *s)
{
    /* strnlen bounds the scan; a longer string fails the MFG_MAX_STR check. */
    put_str_n(w, s, s == NULL ? 0 : strnlen(s, (size_t)MFG_MAX_STR + 1));
}

/* Reserves the header, lets the caller write the payload, then fills in its length. */
static struct writer begin_frame(uint8_t *buf, size_t cap)
{
    struct writer w = {buf, cap, 0, buf == NULL || cap < MFG_HEADER_LEN};
    if (!w.failed)
        w.pos = MFG_HEADER_LEN;
    return w;
}

static long end_frame(struct writer *w)
{
    size_t payload;
    if (w->failed)
        return -1;
    payload = w->pos - MFG_HEADER_LEN;
    if (payload == 0 || payload > MFG_MAX_PAYLOAD)
        return -1;
    w->buf[0] = (uint8_t)(payload >> 24);
    w->buf[1] = (uint8_t)(payload >> 16);
    w->buf[2] = (uint8_t)(payload >> 8);
    w->buf[3] = (uint8_t)payload;
    return (long)w->pos;
}

long mfg_encode_login_begin(uint8_t *buf, size_t cap, const struct mfg_login_begin *b)
{
    struct writer w = begin_frame(buf, cap);
    if (b == NULL)
        return -1;
    put_u8(&w, MFG_TAG_LOGIN_BEGIN);
    put_u8(&w, MFG_PROTOCOL_VERSION);
    put_str(&w, b->user);
    put_str(&w, b->service);
    put_str(&w, b->rhost);
    put_str(&w, b->tty);
    put_str(&w, b->ruser);
    put_u8(&w, (uint8_t)((b->flags & ~MFG_LOGIN_FLAG_SSH_AUTH_INFO) | MFG_LOGIN_FLAG_REAL_UID |
                         (b->ssh_auth_info != NULL ? MFG_LOGIN_FLAG_SSH_AUTH_INFO : 0)));
    put_u32(&w, b->real_uid);
    if (b->ssh_auth_info != NULL) {
        size_t n = strnlen(b->ssh_auth_info, (size_t)MFG_MAX_AUTH_INFO + 1);
        if (n > MFG_MAX_AUTH_INFO)
            w.failed = 1;
        else
            put_str_n(&w, b->ssh_auth_info, n);
    }
    return end_frame(&w);
}

long mfg_encode_reply(uint8_t *buf, size_t cap, const char *answer, size_t answer_len)
{
    struct writer w = begin_frame(buf, cap);
    put_u8(&w, MFG_TAG_REPLY);
    put_str_n(&w, answer, answer_len);
    return end_frame(&w);
}

long mfg_encode_cancel(uint8_t *buf, size_t cap)
{
    struct writer w = begin_frame(buf, cap);
    put_u8(&w, MFG_TAG_CANCEL);
    return end_frame(&w);
}

/* ---- decoding ---------------------------------------------------------- */

uint32_t mfg_decode_header(const uint8_t header[MFG_HEADER_LEN])
{
    return ((uint32_t)header[0] << 24) | ((uint32_t)header[1] << 16) |
           ((uint32_t)header[2] << 8) | (uint32_t)header[3];
}

/* A bounds-checked reader; each get_* returns 0 or a negative enum mfg_error. */
struct reader {
    const uint8_t *p;
    size_t left;
};

static int get_u8(struct reader *r, uint8_t *v)
{
    if (r->left < 1)
        return MFG_ERR_SHORT;
    *v = r->p[0];
    r->p += 1;
    r->left -= 1;
    return 0;
}

static int get_str(struct reader *r, struct mfg_str *s)
{
    size_t n;
    if (r->left < 2)
        return MFG_ERR_SHORT;
    n = ((size_t)r->p[0] << 8) | r->p[1];
    if (r->left - 2 < n)
        return MFG_ERR_SHORT;
    if (n > 0 && memchr(r->p + 2, 0, n) != NULL)
        return MFG_ERR_NUL;
    s->ptr = r->p + 2;
    s->len = n;
    r->p += 2 + n;
    r->left -= 2 + n;
    return 0;
}

static int is_prompt(uint8_t style)
{
    return style == MFG_STYLE_PROMPT_ECHO_OFF || style == MFG_STYLE_PROMPT_ECHO_ON;
}

static int decode_converse(struct reader *r, struct mfg_daemon_msg *out)
{
    uint8_t count;
    int err = get_u8(r, &count);
    if (err != 0)
        return err;
    if (count == 0 || count > MFG_MAX_MESSAGES)
        return MFG_ERR_COUNT;
    out->u.converse.count = count;
    for (uint8_t i = 0; i < count; i++) {
        struct mfg_message *m = &out->u.converse.msgs[i];
        if ((err = get_u8(r, &m->style)) != 0)
            return err;
        if (m->style < MFG_STYLE_PROMPT_ECHO_OFF || m->style > MFG_STYLE_CODE_DIGITS)
            return MFG_ERR_STYLE;
        /* At most one prompt, and it must be last: so checking "a prompt that is not
         * the last message" covers both rules. */
        if (is_prompt(m->style) && i + 1 != count)
            return MFG_ERR_PROMPT;
        if ((err = get_str(r, &m->text)) != 0)
            return err;
    }
    return 0;
}

static int decode_verdict(struct reader *r, struct mfg_daemon_msg *out)
{
    int err = get_u8(r, &out->u.verdict.result);
    if (err != 0)
        return err;
    return get_str(r, &out->u.verdict.reason);
}

int mfg_decode_daemon_frame(const uint8_t *payload, size_t len, struct mfg_daemon_msg *out)
{
    struct reader r = {payload, len};
    int err;
    if (payload == NULL || len == 0)
        return MFG_ERR_EMPTY;
    if (len > MFG_MAX_PAYLOAD)
        return MFG_ERR_TOO_LONG;
    if ((err = get_u8(&r, &out->tag)) != 0)
        return err;
    switch (out->tag) {
    case MFG_TAG_CONVERSE:
        err = decode_converse(&r, out);
        break;
    case MFG_TAG_VERDICT:
        err = decode_verdict(&r, out);
        break;
    default:
        /* Includes valid daemon tags (ENROLLED, STATUS, ERROR) that never answer a login. */
        return MFG_ERR_TAG;
    }
    if (err != 0)
        return err;
    return r.left == 0 ? 0 : MFG_ERR_TRAILING;
}

const char *mfg_strerror(int err)
{
    switch (err) {
    case 0:
        return "ok";
    case MFG_ERR_EMPTY:
        return "empty payload";
    case MFG_ERR_TOO_LONG:
        return "payload too long";
    case MFG_ERR_TAG:
        return "unexpected tag";
    case MFG_ERR_SHORT:
        return "field runs past the payload";
    case MFG_ERR_TRAILING:
        return "trailing bytes";
    case MFG_ERR_NUL:
        return "NUL byte in string";
    case MFG_ERR_COUNT:
        return "bad message count";
    case MFG_ERR_STYLE:
        return "unknown message style";
    case MFG_ERR_PROMPT:
        return "prompt not last or more than one prompt";
    default:
        return "unknown error";
    }
}

/* ---- forward_pass: splitting a combined answer ---------------------------- */

#define DEFAULT_CODE_DIGITS 6
#define MAX_CODE_DIGITS 10
#define RECOVERY_FORM_LEN 14 /* abcd-efgh-jkmn: 12 symbols in groups of four */

int mfg_code_digits(const struct mfg_str *text)
{
    int v = 0;
    if (text->len == 0 || text->len > 2)
        return DEFAULT_CODE_DIGITS;
    for (size_t i = 0; i < text->len; i++) {
        uint8_t c = text->ptr[i];
        if (c < '0' || c > '9')
            return DEFAULT_CODE_DIGITS;
        v = v * 10 + (c - '0');
    }
    return v >= 1 && v <= MAX_CODE_DIGITS ? v : DEFAULT_CODE_DIGITS;
}

/* The recovery alphabet (MFACore/RecoveryCodes.swift), either case. */
static int is_recovery_symbol(char c)
{
    if (c >= 'A' && c <= 'Z')
        c = (char)(c - 'A' + 'a');
    return c != '\0' && strchr("23456789abcdefghjkmnpqrstuvwxyz", c) != NULL;
}

size_t mfg_split_combined(const char *answer, size_t n, int digits)
{
    if (n >= RECOVERY_FORM_LEN) {
        const char *t = answer + n - RECOVERY_FORM_LEN;
        int ok = 1;
        for (size_t i = 0; i < RECOVERY_FORM_LEN && ok; i++)
            ok = (i == 4 || i == 9) ? t[i] == '-' : is_recovery_symbol(t[i]);
        if (ok)
            return n - RECOVERY_FORM_LEN;
    }
    if (digits < 1 || n < (size_t)digits)
        return n;
    for (size_t i = n - (size_t)digits; i < n; i++)
        if (answer[i] < '0' || answer[i] > '9')
            return n;
    return n - (size_t)digits;
}
