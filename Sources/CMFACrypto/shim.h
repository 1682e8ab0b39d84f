// SPDX-License-Identifier: Apache-2.0
/* The few primitives mfagate needs, from GNU Nettle (Debian's libnettle8) and the kernel's getrandom(2).
 * Nettle rather than OpenSSL 3's libcrypto (docs/architecture.md, "Crypto"): its HMAC and SHA-2 are
 * plain functions on caller-owned contexts, with no provider set-up at first use — libcrypto's left
 * about 3.3 MB of its pages resident in an idle daemon — and no per-call lookups or allocations. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>

enum { MFA_DIGEST_SHA1 = 1, MFA_DIGEST_SHA256 = 2, MFA_DIGEST_SHA512 = 3, MFA_MAX_DIGEST_SIZE = 64 };

/* A keyed HMAC of one of the three digests TOTP/HOTP use. */
typedef struct {
    int digest;
    union {
        struct hmac_sha1_ctx sha1;
        struct hmac_sha256_ctx sha256;
        struct hmac_sha512_ctx sha512;
    } u;
} mfa_hmac_ctx;

/* 1, or 0 for an unknown digest. */
static inline int mfa_hmac_set_key(mfa_hmac_ctx *c, int digest, const uint8_t *key, size_t key_length) {
    c->digest = digest;
    switch (digest) {
    case MFA_DIGEST_SHA1: hmac_sha1_set_key(&c->u.sha1, key_length, key); return 1;
    case MFA_DIGEST_SHA256: hmac_sha256_set_key(&c->u.sha256, key_length, key); return 1;
    case MFA_DIGEST_SHA512: hmac_sha512_set_key(&c->u.sha512, key_length, key); return 1;
    default: return 0;
    }
}

/* The HMAC of one message into out (MFA_MAX_DIGEST_SIZE bytes); returns its length. Nettle's digest
 * call leaves the context keyed again, ready for the next message. */
static inline size_t mfa_hmac_mac(mfa_hmac_ctx *c, const uint8_t *message, size_t length, uint8_t *out) {
    switch (c->digest) {
    case MFA_DIGEST_SHA1:
        hmac_sha1_update(&c->u.sha1, length, message);
        hmac_sha1_digest(&c->u.sha1, SHA1_DIGEST_SIZE, out);
        return SHA1_DIGEST_SIZE;
    case MFA_DIGEST_SHA256:
        hmac_sha256_update(&c->u.sha256, length, message);
        hmac_sha256_digest(&c->u.sha256, SHA256_DIGEST_SIZE, out);
        return SHA256_DIGEST_SIZE;
    case MFA_DIGEST_SHA512:
        hmac_sha512_update(&c->u.sha512, length, message);
        hmac_sha512_digest(&c->u.sha512, SHA512_DIGEST_SIZE, out);
        return SHA512_DIGEST_SIZE;
    default:
        return 0;
    }
}

/* Wipes the key material (the padded key's inner and outer states). */
static inline void mfa_hmac_clear(mfa_hmac_ctx *c) { explicit_bzero(c, sizeof *c); }

static inline void mfa_sha256(const void *data, size_t length, uint8_t out[32]) {
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, length, (const uint8_t *)data);
    sha256_digest(&ctx, SHA256_DIGEST_SIZE, out);
}

/* Fills buf from the kernel's CSPRNG (getrandom(2), waiting for it to be seeded at boot): 1, or 0. */
static inline int mfa_random(void *buf, size_t length) {
    uint8_t *p = (uint8_t *)buf;
    while (length > 0) {
        ssize_t n = getrandom(p, length, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        p += n;
        length -= (size_t)n;
    }
    return 1;
}

/* 1 if equal, in time that depends only on length. */
static inline int mfa_equal(const void *a, const void *b, size_t length) { return memeql_sec(a, b, length); }
