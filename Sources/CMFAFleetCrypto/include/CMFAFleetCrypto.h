// SPDX-License-Identifier: Apache-2.0
#ifndef CMFAFLEETCRYPTO_H
#define CMFAFLEETCRYPTO_H
#include <stddef.h>

/* AES-256-GCM through libcrypto's EVP interface, for the fleet store's sealed records.
 * Written in C because the EVP control codes are macros Swift does not import reliably.
 * key: 32 bytes, nonce: 12 bytes, tag: 16 bytes. Return 1 on success, 0 on any failure
 * (for open: also when the tag does not match, i.e. the ciphertext, nonce, key or AAD differ). */
int mfa_gcm_seal(const unsigned char *key, const unsigned char *nonce,
                 const unsigned char *aad, size_t aad_length,
                 const unsigned char *plain, size_t plain_length,
                 unsigned char *cipher_out, unsigned char *tag_out);

int mfa_gcm_open(const unsigned char *key, const unsigned char *nonce,
                 const unsigned char *aad, size_t aad_length,
                 const unsigned char *cipher, size_t cipher_length,
                 const unsigned char *tag, unsigned char *plain_out);

#endif
