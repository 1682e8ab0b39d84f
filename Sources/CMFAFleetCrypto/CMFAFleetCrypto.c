// SPDX-License-Identifier: Apache-2.0
#include "CMFAFleetCrypto.h"
#include <string.h>
#include <nettle/gcm.h>
#include <nettle/memops.h>

/* AES-256-GCM from GNU Nettle (the same library as the HMACs, Sources/CMFACrypto/shim.h), 96-bit
 * nonce, 128-bit tag. The context holds the expanded key: wiped before returning. */
int mfa_gcm_seal(const unsigned char *key, const unsigned char *nonce,
                 const unsigned char *aad, size_t aad_length,
                 const unsigned char *plain, size_t plain_length,
                 unsigned char *cipher_out, unsigned char *tag_out) {
    struct gcm_aes256_ctx ctx;
    gcm_aes256_set_key(&ctx, key);
    gcm_aes256_set_iv(&ctx, 12, nonce);
    if (aad_length > 0) gcm_aes256_update(&ctx, aad_length, aad);
    if (plain_length > 0) gcm_aes256_encrypt(&ctx, plain_length, cipher_out, plain);
    gcm_aes256_digest(&ctx, GCM_DIGEST_SIZE, tag_out);
    explicit_bzero(&ctx, sizeof ctx);
    return 1;
}

/* 1 and the plaintext in plain_out if the tag matches; 0 (and plain_out wiped) if not. */
int mfa_gcm_open(const unsigned char *key, const unsigned char *nonce,
                 const unsigned char *aad, size_t aad_length,
                 const unsigned char *cipher, size_t cipher_length,
                 const unsigned char *tag, unsigned char *plain_out) {
    struct gcm_aes256_ctx ctx;
    unsigned char expected[GCM_DIGEST_SIZE];
    gcm_aes256_set_key(&ctx, key);
    gcm_aes256_set_iv(&ctx, 12, nonce);
    if (aad_length > 0) gcm_aes256_update(&ctx, aad_length, aad);
    if (cipher_length > 0) gcm_aes256_decrypt(&ctx, cipher_length, plain_out, cipher);
    gcm_aes256_digest(&ctx, GCM_DIGEST_SIZE, expected);
    explicit_bzero(&ctx, sizeof ctx);
    int ok = memeql_sec(expected, tag, GCM_DIGEST_SIZE);
    if (!ok && cipher_length > 0) explicit_bzero(plain_out, cipher_length);
    return ok;
}
