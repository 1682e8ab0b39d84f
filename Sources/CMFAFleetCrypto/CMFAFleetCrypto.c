// SPDX-License-Identifier: Apache-2.0
#include "CMFAFleetCrypto.h"
#include <limits.h>
#include <openssl/evp.h>

int mfa_gcm_seal(const unsigned char *key, const unsigned char *nonce,
                 const unsigned char *aad, size_t aad_length,
                 const unsigned char *plain, size_t plain_length,
                 unsigned char *cipher_out, unsigned char *tag_out) {
    if (aad_length > INT_MAX || plain_length > INT_MAX) return 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return 0;
    int n = 0, ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1
        && EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) == 1
        && (aad_length == 0 || EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_length) == 1)
        && (plain_length == 0 || EVP_EncryptUpdate(ctx, cipher_out, &n, plain, (int)plain_length) == 1)
        && EVP_EncryptFinal_ex(ctx, cipher_out + (plain_length == 0 ? 0 : n), &n) == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag_out) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

int mfa_gcm_open(const unsigned char *key, const unsigned char *nonce,
                 const unsigned char *aad, size_t aad_length,
                 const unsigned char *cipher, size_t cipher_length,
                 const unsigned char *tag, unsigned char *plain_out) {
    if (aad_length > INT_MAX || cipher_length > INT_MAX) return 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return 0;
    int n = 0, ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1
        && EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) == 1
        && (aad_length == 0 || EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_length) == 1)
        && (cipher_length == 0 || EVP_DecryptUpdate(ctx, plain_out, &n, cipher, (int)cipher_length) == 1)
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)tag) == 1
        && EVP_DecryptFinal_ex(ctx, plain_out + (cipher_length == 0 ? 0 : n), &n) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}
