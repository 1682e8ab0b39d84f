// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for forward_pass's split rule in the shim (Sources/pam_mfagate/mfg_frame.c):
 * mfg_code_digits, which reads the code length from the daemon's CODE_DIGITS mark, and
 * mfg_split_combined, which divides the one answer to "Password and code: " into the password
 * (for the next module) and the code (for the daemon). Both are pure; mfg_conv.c calls them.
 *
 * Input: byte 0 = m; then (m & 3) bytes of mark text; the rest is the answer. The answer is split
 * twice: with the digits the mark gives (what the shim does) and with a raw count from m (-2..13,
 * out of range too). Each split must be what man/pam_mfagate.8 says, restated here on its own:
 *   the last 14 bytes are a recovery code as shown (xxxx-xxxx-xxxx, recovery alphabet, either
 *   case) -> the code is those 14; else the last `digits` bytes (digits >= 1) are all ASCII
 *   digits -> the code is those; else there is no code (split == n).
 * The answer is copied to a buffer of exactly its size, so ASan reports any read outside it.
 * See README.md in this directory for build and run commands.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mfg_frame.h"

/* The recovery alphabet (MFACore/RecoveryCodes.swift): digits 2-9 and a-z without i, l, o. */
static int recovery_symbol(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        c = (unsigned char)(c + ('a' - 'A'));
    if (c >= '2' && c <= '9')
        return 1;
    return c >= 'a' && c <= 'z' && c != 'i' && c != 'l' && c != 'o';
}

static int shown_recovery_code(const unsigned char *t)
{
    for (size_t group = 0; group < 3; group++) {
        for (size_t i = 0; i < 4; i++)
            if (!recovery_symbol(t[group * 5 + i]))
                return 0;
        if (group < 2 && t[group * 5 + 4] != '-')
            return 0;
    }
    return 1;
}

static size_t expected_split(const unsigned char *a, size_t n, int digits)
{
    if (n >= 14 && shown_recovery_code(a + n - 14))
        return n - 14;
    if (digits < 1 || (size_t)digits > n)
        return n;
    for (size_t i = n - (size_t)digits; i < n; i++)
        if (a[i] < '0' || a[i] > '9')
            return n;
    return n - (size_t)digits;
}

/* What the mark means (docs/protocol.md, CODE_DIGITS): 1..10 written in decimal, else 6. */
static int expected_digits(const uint8_t *t, size_t len)
{
    int v = 0;
    if (len < 1 || len > 2)
        return 6;
    for (size_t i = 0; i < len; i++) {
        if (t[i] < '0' || t[i] > '9')
            return 6;
        v = v * 10 + (t[i] - '0');
    }
    return v >= 1 && v <= 10 ? v : 6;
}

static void check_split(const char *answer, size_t n, int digits)
{
    size_t split = mfg_split_combined(answer, n, digits);
    if (split != expected_split((const unsigned char *)answer, n, digits))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t mark_len = data[0] & 3;
    if (size < 1 + mark_len)
        return 0;
    /* Exactly sized (malloc(0) too, under ASan): a read past either end is a finding. */
    uint8_t *mark = malloc(mark_len);
    size_t n = size - 1 - mark_len;
    char *answer = malloc(n);
    if ((mark == NULL && mark_len > 0) || (answer == NULL && n > 0))
        abort();
    memcpy(mark, data + 1, mark_len);
    memcpy(answer, data + 1 + mark_len, n);

    struct mfg_str text = {.ptr = mark, .len = mark_len};
    int digits = mfg_code_digits(&text);
    if (digits != expected_digits(mark, mark_len))
        abort();
    check_split(answer, n, digits);
    check_split(answer, n, (int)((data[0] >> 2) % 16) - 2);

    free(answer);
    free(mark);
    return 0;
}
