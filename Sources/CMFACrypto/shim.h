// SPDX-License-Identifier: Apache-2.0
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/params.h>

/* HMAC without the one-shot HMAC()'s per-call lookups: HMAC() (EVP_Q_mac in OpenSSL 3) fetches the
 * HMAC implementation and then the digest by name on every call, about 10k instructions, several
 * times the hashing itself. A template context per digest is made once (keyed with a placeholder,
 * so it can be duplicated on every OpenSSL 3 release); each HMAC duplicates it and sets the real key. */
static inline EVP_MAC_CTX *mfa_hmac_template(const char *digest_name) {
    static const unsigned char placeholder_key[1] = { 0 };
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) return NULL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context keeps its own reference */
    if (ctx == NULL) return NULL;
    OSSL_PARAM params[2] = { OSSL_PARAM_construct_utf8_string("digest", (char *)digest_name, 0), OSSL_PARAM_construct_end() };
    if (EVP_MAC_init(ctx, placeholder_key, sizeof placeholder_key, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* 1 and the MAC in out (*out_length bytes), or 0 if anything failed. */
static inline int mfa_hmac(EVP_MAC_CTX *template_ctx, const unsigned char *key, size_t key_length,
                           const unsigned char *message, size_t message_length,
                           unsigned char *out, size_t out_size, size_t *out_length) {
    if (template_ctx == NULL || key == NULL || key_length == 0) return 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(template_ctx);
    if (ctx == NULL) return 0;
    int ok = EVP_MAC_init(ctx, key, key_length, NULL) == 1
        && EVP_MAC_update(ctx, message, message_length) == 1
        && EVP_MAC_final(ctx, out, out_length, out_size) == 1;
    EVP_MAC_CTX_free(ctx);
    return ok;
}

/* SHA-256 without EVP_Digest's per-call fetch of the digest by name and its context set-up (about
 * 10k instructions for the 88 bytes of a replay-journal record, five times the hashing): a context
 * initialised once is copied for each digest. */
static inline EVP_MD_CTX *mfa_sha256_template(void) {
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (md == NULL) return NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex2(ctx, md, NULL) == 1;
    EVP_MD_free(md); /* the context keeps its own reference */
    if (!ok) {
        EVP_MD_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* 1 and the digest in out (32 bytes), or 0 if anything failed. */
static inline int mfa_sha256(const EVP_MD_CTX *template_ctx, const void *data, size_t length, unsigned char out[32]) {
    if (template_ctx == NULL) return 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) return 0;
    unsigned int out_length = 0;
    int ok = EVP_MD_CTX_copy_ex(ctx, template_ctx) == 1
        && EVP_DigestUpdate(ctx, data, length) == 1
        && EVP_DigestFinal_ex(ctx, out, &out_length) == 1
        && out_length == 32;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* A duplicate of an HMAC template keyed once (NULL if anything failed): keying hashes the padded
 * key, a third of an HMAC's cost, and a TOTP window of three steps needs it only once. */
static inline EVP_MAC_CTX *mfa_hmac_keyed(EVP_MAC_CTX *template_ctx, const unsigned char *key, size_t key_length) {
    if (template_ctx == NULL || key == NULL || key_length == 0) return NULL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(template_ctx);
    if (ctx == NULL) return NULL;
    if (EVP_MAC_init(ctx, key, key_length, NULL) != 1) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The HMAC of one message under a context from mfa_hmac_keyed (which stays as it is): 1, or 0. */
static inline int mfa_hmac_with_keyed(EVP_MAC_CTX *keyed_ctx, const unsigned char *message, size_t message_length,
                                      unsigned char *out, size_t out_size, size_t *out_length) {
    if (keyed_ctx == NULL) return 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(keyed_ctx);
    if (ctx == NULL) return 0;
    int ok = EVP_MAC_update(ctx, message, message_length) == 1
        && EVP_MAC_final(ctx, out, out_length, out_size) == 1;
    EVP_MAC_CTX_free(ctx);
    return ok;
}
