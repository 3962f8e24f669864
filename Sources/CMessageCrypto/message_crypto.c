// The implementations behind message_crypto.h (see there).
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include "message_crypto.h"
#include <stddef.h>
#include <string.h>

typedef struct {
    SHA256_CTX inner;
    SHA256_CTX outer;
} srpc_hmac_sha256_state;

/// Bytes of a prepared HMAC-SHA256 key state.
size_t srpc_hmac_sha256_state_size(void) { return sizeof(srpc_hmac_sha256_state); }

/// Prepares the inner and outer states of HMAC-SHA256 for `key` (at most 64 bytes) into
/// `state` (srpc_hmac_sha256_state_size() bytes). Returns 1 on success.
int srpc_hmac_sha256_prepare(const unsigned char *key, size_t key_length, void *state) {
    if (key_length > 64) return 0;
    srpc_hmac_sha256_state *s = (srpc_hmac_sha256_state *)state;
    unsigned char pad[64];
    memset(pad, 0, sizeof pad);
    memcpy(pad, key, key_length);
    for (int i = 0; i < 64; i++) pad[i] ^= 0x36;
    int ok = SHA256_Init(&s->inner) && SHA256_Update(&s->inner, pad, 64);
    for (int i = 0; i < 64; i++) pad[i] ^= 0x36 ^ 0x5c;
    ok = ok && SHA256_Init(&s->outer) && SHA256_Update(&s->outer, pad, 64);
    OPENSSL_cleanse(pad, sizeof pad);
    return ok;
}

/// HMAC-SHA256 over `prefix` (one byte) followed by `data`, with a prepared state; writes
/// the 32-byte tag to `out`.
void srpc_hmac_sha256(const void *state, unsigned char prefix, const void *data, size_t length,
                                    unsigned char *out) {
    const srpc_hmac_sha256_state *s = (const srpc_hmac_sha256_state *)state;
    SHA256_CTX ctx = s->inner;
    unsigned char inner[SHA256_DIGEST_LENGTH];
    SHA256_Update(&ctx, &prefix, 1);
    if (length > 0) SHA256_Update(&ctx, data, length);
    SHA256_Final(inner, &ctx);
    ctx = s->outer;
    SHA256_Update(&ctx, inner, sizeof inner);
    SHA256_Final(out, &ctx);
    OPENSSL_cleanse(&ctx, sizeof ctx);
    OPENSSL_cleanse(inner, sizeof inner);
}

/// AES-256-GCM from the default provider, fetched once (an implicit fetch on every
/// EVP_EncryptInit_ex would cost a provider lookup per message).
static EVP_CIPHER *srpc_aes256gcm_cipher(void) {
    static _Atomic(EVP_CIPHER *) cached = NULL;
    EVP_CIPHER *cipher = atomic_load(&cached);
    if (cipher != NULL) return cipher;
    EVP_CIPHER *fetched = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    EVP_CIPHER *expected = NULL;
    if (atomic_compare_exchange_strong(&cached, &expected, fetched)) return fetched;
    EVP_CIPHER_free(fetched);   /* another thread was first */
    return expected;
}

#define SRPC_GCM_POOL 8

struct srpc_gcm_key {
    unsigned char key[32];
    pthread_mutex_t lock;
    EVP_CIPHER_CTX *encrypt[SRPC_GCM_POOL];
    EVP_CIPHER_CTX *decrypt[SRPC_GCM_POOL];
    int encrypt_count;
    int decrypt_count;
};

srpc_gcm_key *srpc_gcm_key_new(const unsigned char *key) {
    srpc_gcm_key *k = calloc(1, sizeof *k);
    if (k == NULL) return NULL;
    memcpy(k->key, key, 32);
    pthread_mutex_init(&k->lock, NULL);
    return k;
}

void srpc_gcm_key_free(srpc_gcm_key *k) {
    if (k == NULL) return;
    for (int i = 0; i < k->encrypt_count; i++) EVP_CIPHER_CTX_free(k->encrypt[i]);
    for (int i = 0; i < k->decrypt_count; i++) EVP_CIPHER_CTX_free(k->decrypt[i]);
    pthread_mutex_destroy(&k->lock);
    OPENSSL_cleanse(k, sizeof *k);
    free(k);
}

/* A context with the key set up for `encrypt`, from the pool or new. */
static EVP_CIPHER_CTX *srpc_gcm_take(srpc_gcm_key *k, int encrypt) {
    EVP_CIPHER_CTX *ctx = NULL;
    pthread_mutex_lock(&k->lock);
    if (encrypt && k->encrypt_count > 0) ctx = k->encrypt[--k->encrypt_count];
    if (!encrypt && k->decrypt_count > 0) ctx = k->decrypt[--k->decrypt_count];
    pthread_mutex_unlock(&k->lock);
    if (ctx != NULL) return ctx;
    EVP_CIPHER *cipher = srpc_aes256gcm_cipher();
    if (cipher == NULL || (ctx = EVP_CIPHER_CTX_new()) == NULL) return NULL;
    if (EVP_CipherInit_ex(ctx, cipher, NULL, k->key, NULL, encrypt) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static void srpc_gcm_give(srpc_gcm_key *k, EVP_CIPHER_CTX *ctx, int encrypt) {
    pthread_mutex_lock(&k->lock);
    if (encrypt && k->encrypt_count < SRPC_GCM_POOL) { k->encrypt[k->encrypt_count++] = ctx; ctx = NULL; }
    else if (!encrypt && k->decrypt_count < SRPC_GCM_POOL) { k->decrypt[k->decrypt_count++] = ctx; ctx = NULL; }
    pthread_mutex_unlock(&k->lock);
    if (ctx != NULL) EVP_CIPHER_CTX_free(ctx);
}

int srpc_gcm_key_seal(srpc_gcm_key *k, const unsigned char *nonce, const unsigned char *in, size_t length,
                      unsigned char *out, unsigned char *tag) {
    if (length > INT_MAX) return 0;
    EVP_CIPHER_CTX *ctx = srpc_gcm_take(k, 1);
    if (ctx == NULL) return 0;
    int n = 0, ok = EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1;
    ok = ok && (length == 0 || EVP_EncryptUpdate(ctx, out, &n, in, (int)length) == 1);
    ok = ok && EVP_EncryptFinal_ex(ctx, out + n, &n) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
    if (ok) srpc_gcm_give(k, ctx, 1); else EVP_CIPHER_CTX_free(ctx);
    return ok;
}

int srpc_gcm_key_open(srpc_gcm_key *k, const unsigned char *nonce, const unsigned char *in, size_t length,
                      const unsigned char *tag, unsigned char *out) {
    if (length > INT_MAX) return 0;
    EVP_CIPHER_CTX *ctx = srpc_gcm_take(k, 0);
    if (ctx == NULL) return 0;
    unsigned char expected[16];
    memcpy(expected, tag, 16);
    int n = 0, ok = EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1;
    ok = ok && (length == 0 || EVP_DecryptUpdate(ctx, out, &n, in, (int)length) == 1);
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, expected) == 1;
    ok = ok && EVP_DecryptFinal_ex(ctx, out + n, &n) == 1;
    /* A failed tag leaves the context reusable (the next init resets it). */
    srpc_gcm_give(k, ctx, 0);
    if (!ok && length > 0) OPENSSL_cleanse(out, length);
    return ok;
}

int srpc_gcm_key_gmac(srpc_gcm_key *k, const unsigned char *nonce, const unsigned char *data, size_t length,
                      unsigned char *tag) {
    if (length > INT_MAX) return 0;
    EVP_CIPHER_CTX *ctx = srpc_gcm_take(k, 1);
    if (ctx == NULL) return 0;
    unsigned char none[16];
    int n = 0, ok = EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1;
    ok = ok && (length == 0 || EVP_EncryptUpdate(ctx, NULL, &n, data, (int)length) == 1);
    ok = ok && EVP_EncryptFinal_ex(ctx, none, &n) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
    if (ok) srpc_gcm_give(k, ctx, 1); else EVP_CIPHER_CTX_free(ctx);
    return ok;
}
