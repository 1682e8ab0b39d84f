// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for the shim's frame decoder (Sources/pam_mfagate/mfg_frame.c).
 * The input is one daemon payload (no length header). Beyond "no crash, no UB" under ASan
 * and UBSan, it checks what the shim relies on after a successful decode: strings lie inside
 * the payload and hold no NUL, counts and styles are in range, a prompt is only ever last.
 * It also feeds the input to the REPLY encoder, which must refuse exactly NUL-bearing or
 * over-long answers. forward_pass's split rule has its own target (shim_split_fuzz.c). See README.md
 * in this directory for build and run commands.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mfg_frame.h"

static void check_str(const uint8_t *data, size_t size, const struct mfg_str *s)
{
    if (s->ptr < data || s->len > size || s->ptr + s->len > data + size)
        abort();
    if (s->len > 0 && memchr(s->ptr, 0, s->len) != NULL)
        abort();
}

static void check_decoded(const uint8_t *data, size_t size, const struct mfg_daemon_msg *m)
{
    if (m->tag == MFG_TAG_VERDICT) {
        check_str(data, size, &m->u.verdict.reason);
        return;
    }
    if (m->tag != MFG_TAG_CONVERSE)
        abort();
    uint8_t n = m->u.converse.count;
    if (n < 1 || n > MFG_MAX_MESSAGES)
        abort();
    for (uint8_t i = 0; i < n; i++) {
        uint8_t style = m->u.converse.msgs[i].style;
        if (style < MFG_STYLE_PROMPT_ECHO_OFF || style > MFG_STYLE_CODE_DIGITS)
            abort();
        if (style <= MFG_STYLE_PROMPT_ECHO_ON && i + 1 != n)
            abort();
        check_str(data, size, &m->u.converse.msgs[i].text);
    }
}

static void check_reply_encoder(const uint8_t *data, size_t size)
{
    static uint8_t buf[MFG_MAX_FRAME];
    int refuse = size > MFG_MAX_STR || (size > 0 && memchr(data, 0, size) != NULL);
    long len = mfg_encode_reply(buf, sizeof buf, (const char *)data, size);
    if (refuse != (len < 0))
        abort();
    if (len >= 0 && ((size_t)len != MFG_HEADER_LEN + 3 + size ||
                     mfg_decode_header(buf) != (uint32_t)(len - MFG_HEADER_LEN)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mfg_daemon_msg m;
    int rc = mfg_decode_daemon_frame(data, size, &m);
    if (rc == 0)
        check_decoded(data, size, &m);
    else if (rc > 0 || mfg_strerror(rc) == NULL)
        abort();
    check_reply_encoder(data, size);
    return 0;
}
