// SPDX-License-Identifier: Apache-2.0
/*
 * mfg_conformance.c - the PAM module's frame codec (Sources/pam_mfagate/mfg_frame.c) on the
 * command line, so that Tests/MFAProtocolTests/ProtocolConformanceTests.swift can round-trip
 * every login message between it and the Swift codec, and compare every shared constant.
 * Built by that test with the system C compiler; frames travel as hex.
 *
 *   mfg_conformance constants                     NAME VALUE per line
 *   mfg_conformance login-begin USER SERVICE RHOST TTY RUSER FLAGS REAL_UID [AUTH_INFO_HEX]
 *                                                 -> frame hex ("encode-error", exit 1, if refused)
 *   mfg_conformance login-begin-refused AUTH_INFO_HEX -> "encode-error" if the encoder refuses it (exit 0)
 *   mfg_conformance reply ANSWER_HEX              -> frame hex
 *   mfg_conformance cancel                        -> frame hex
 *   mfg_conformance split ANSWER_HEX DIGITS        -> where forward_pass's code starts
 *   mfg_conformance decode FRAME_HEX              -> "converse N" + "STYLE TEXT_HEX" lines,
 *                                                    "verdict RESULT REASON_HEX", or "error CODE"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfg_frame.h"

static uint8_t buf[MFG_MAX_FRAME];

static void put_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
}

static int print_frame(long n)
{
    if (n < 0) {
        puts("encode-error");
        return 1;
    }
    put_hex(buf, (size_t)n);
    putchar('\n');
    return 0;
}

static size_t from_hex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    if (n > cap)
        exit(3);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            exit(3);
        out[i] = (uint8_t)v;
    }
    return n;
}

static void constants(void)
{
#define C(name) printf("%s %ld\n", #name, (long)(name))
    C(MFG_PROTOCOL_VERSION); C(MFG_HEADER_LEN); C(MFG_MAX_PAYLOAD); C(MFG_MAX_STR);
    C(MFG_MAX_MESSAGES); C(MFG_MAX_ROUNDS); C(MFG_MAX_FRAME);
    C(MFG_TAG_LOGIN_BEGIN); C(MFG_TAG_REPLY); C(MFG_TAG_CANCEL); C(MFG_TAG_ENROLL); C(MFG_TAG_STATUS);
    C(MFG_TAG_CONVERSE); C(MFG_TAG_VERDICT); C(MFG_TAG_ENROLLED); C(MFG_TAG_STATUS_REPLY); C(MFG_TAG_ERROR);
    C(MFG_STYLE_PROMPT_ECHO_OFF); C(MFG_STYLE_PROMPT_ECHO_ON); C(MFG_STYLE_ERROR_MSG); C(MFG_STYLE_TEXT_INFO); C(MFG_STYLE_CODE_DIGITS);
    C(MFG_RESULT_SUCCESS); C(MFG_RESULT_DENIED); C(MFG_RESULT_IGNORE); C(MFG_RESULT_LOCKED);
    C(MFG_RESULT_UNAVAILABLE); C(MFG_RESULT_BUSY);
    C(MFG_LOGIN_FLAG_SILENT); C(MFG_LOGIN_FLAG_REAL_UID); C(MFG_LOGIN_FLAG_SSH_AUTH_INFO); C(MFG_MAX_AUTH_INFO);
    C(MFG_LOGIN_FLAG_ONE_PROMPT);
#undef C
    printf("MFG_DEFAULT_SOCKET %s\n", MFG_DEFAULT_SOCKET);
}

static int decode(const char *hex)
{
    static uint8_t frame[MFG_MAX_FRAME + 16];
    size_t n = from_hex(hex, frame, sizeof frame);
    if (n < MFG_HEADER_LEN || mfg_decode_header(frame) != n - MFG_HEADER_LEN) {
        puts("error header");
        return 0;
    }
    struct mfg_daemon_msg m;
    int rc = mfg_decode_daemon_frame(frame + MFG_HEADER_LEN, n - MFG_HEADER_LEN, &m);
    if (rc != 0) {
        printf("error %d\n", rc);
        return 0;
    }
    if (m.tag == MFG_TAG_CONVERSE) {
        printf("converse %u\n", m.u.converse.count);
        for (unsigned i = 0; i < m.u.converse.count; i++) {
            printf("%u ", m.u.converse.msgs[i].style);
            put_hex(m.u.converse.msgs[i].text.ptr, m.u.converse.msgs[i].text.len);
            putchar('\n');
        }
    } else {
        printf("verdict %u ", m.u.verdict.result);
        put_hex(m.u.verdict.reason.ptr, m.u.verdict.reason.len);
        putchar('\n');
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "constants") == 0) {
        constants();
        return 0;
    }
    if ((argc == 9 || argc == 10) && strcmp(argv[1], "login-begin") == 0) {
        static char info[MFG_MAX_PAYLOAD + 1];
        struct mfg_login_begin b = {argv[2], argv[3], argv[4], argv[5], argv[6],
                                    (uint8_t)strtoul(argv[7], NULL, 0), (uint32_t)strtoul(argv[8], NULL, 0), NULL};
        if (argc == 10) {
            from_hex(argv[9], (uint8_t *)info, sizeof info - 1);
            b.ssh_auth_info = info;
        }
        return print_frame(mfg_encode_login_begin(buf, sizeof buf, &b));
    }
    if (argc == 3 && strcmp(argv[1], "login-begin-refused") == 0) {
        static char info[MFG_MAX_PAYLOAD + 1];
        struct mfg_login_begin b = {"a", "s", "", "", "", 0, 0, info};
        from_hex(argv[2], (uint8_t *)info, sizeof info - 1);
        print_frame(mfg_encode_login_begin(buf, sizeof buf, &b));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "reply") == 0) {
        static uint8_t answer[MFG_MAX_PAYLOAD];
        size_t n = from_hex(argv[2], answer, sizeof answer);
        return print_frame(mfg_encode_reply(buf, sizeof buf, (const char *)answer, n));
    }
    if (argc == 4 && strcmp(argv[1], "split") == 0) {
        static uint8_t answer[MFG_MAX_PAYLOAD];
        size_t n = from_hex(argv[2], answer, sizeof answer);
        printf("%zu\n", mfg_split_combined((const char *)answer, n, atoi(argv[3])));
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "cancel") == 0)
        return print_frame(mfg_encode_cancel(buf, sizeof buf));
    if (argc == 3 && strcmp(argv[1], "decode") == 0)
        return decode(argv[2]);
    fprintf(stderr, "usage: see the comment at the top of mfg_conformance.c\n");
    return 2;
}
