// Per-message primitives of RPCSEC_GSS srpc-dh from the system's OpenSSL libcrypto: HMAC-SHA256
// with the key's inner and outer states prepared once per context, and AES-256-GCM. They sit
// on every protected call, where swift-crypto's generic wrappers cost more than the hashing
// itself (docs/GSS.md, "Performance"). The prepared HMAC state is plain bytes the caller keeps
// in SecretBytes; every temporary copy is cleansed before a function returns.
#ifndef SRPC_MESSAGE_CRYPTO_H
#define SRPC_MESSAGE_CRYPTO_H
#include <stddef.h>

/// Bytes of a prepared HMAC-SHA256 key state.
size_t srpc_hmac_sha256_state_size(void);

/// Prepares the inner and outer states of HMAC-SHA256 for `key` (at most 64 bytes) into
/// `state` (srpc_hmac_sha256_state_size() bytes). Returns 1 on success.
int srpc_hmac_sha256_prepare(const unsigned char *key, size_t key_length, void *state);

/// HMAC-SHA256 over `prefix` (one byte) followed by `data`, with a prepared state; writes
/// the 32-byte tag to `out`.
void srpc_hmac_sha256(const void *state, unsigned char prefix, const void *data, size_t length, unsigned char *out);

/// An AES-256-GCM key with its expanded cipher contexts kept for reuse (a small pool per
/// direction of use, so concurrent callers never share one). The key and every context are
/// cleansed by srpc_gcm_key_free.
typedef struct srpc_gcm_key srpc_gcm_key;

srpc_gcm_key *srpc_gcm_key_new(const unsigned char *key);
void srpc_gcm_key_free(srpc_gcm_key *key);
/// AES-256-GCM with a 12-byte nonce and no associated data: `length` bytes of `in` to `out`
/// (the same length; may be the same memory) and a 16-byte `tag`. Returns 1 on success.
int srpc_gcm_key_seal(srpc_gcm_key *key, const unsigned char *nonce, const unsigned char *in, size_t length,
                      unsigned char *out, unsigned char *tag);
/// Opens what srpc_gcm_key_seal made. Returns 1 when the tag verifies (and `out` holds the
/// plaintext), 0 otherwise (and `out` is wiped).
int srpc_gcm_key_open(srpc_gcm_key *key, const unsigned char *nonce, const unsigned char *in, size_t length,
                      const unsigned char *tag, unsigned char *out);
/// GMAC: the tag over `length` bytes of associated data and no plaintext; the nonce rules
/// of srpc_gcm_key_seal. Returns 1 on success.
int srpc_gcm_key_gmac(srpc_gcm_key *key, const unsigned char *nonce, const unsigned char *data, size_t length,
                      unsigned char *tag);

#endif
