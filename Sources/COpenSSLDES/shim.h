// The single-DES block cipher from the system's OpenSSL libcrypto (libssl-dev), used only
// for the legacy Sun AUTH_DES rules. The low-level DES_* API is deprecated in OpenSSL 3 but
// still exported and needs no legacy provider; the wrappers take plain byte pointers (Swift
// imports DES_cblock as a tuple) and wipe the key schedule after use. A schedule kept for a
// conversation lives in caller-owned memory (a SecretBytes, which wipes itself).
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/crypto.h>
#include <openssl/des.h>
#include <stddef.h>
#include <string.h>

/// DES-CBC over `length` bytes (a multiple of 8), no padding.
static inline void srpc_des_cbc(const unsigned char *key, const unsigned char *iv, const unsigned char *in,
                                unsigned char *out, size_t length, int encrypt) {
    DES_cblock k, ivec;
    DES_key_schedule schedule;
    memcpy(k, key, 8);
    memcpy(ivec, iv, 8);
    DES_set_key_unchecked(&k, &schedule);
    DES_ncbc_encrypt(in, out, (long)length, &schedule, &ivec, encrypt ? DES_ENCRYPT : DES_DECRYPT);
    OPENSSL_cleanse(&schedule, sizeof schedule);
    OPENSSL_cleanse(k, sizeof k);
}

/// The size of a DES key schedule, for callers that keep one.
static inline size_t srpc_des_schedule_size(void) { return sizeof(DES_key_schedule); }

/// Expands `key` into `schedule` (srpc_des_schedule_size() bytes, 4-byte aligned).
static inline void srpc_des_make_schedule(const unsigned char *key, void *schedule) {
    DES_cblock k;
    memcpy(k, key, 8);
    DES_set_key_unchecked(&k, (DES_key_schedule *)schedule);
    OPENSSL_cleanse(k, sizeof k);
}

/// DES-ECB over `length` bytes (a multiple of 8) with a schedule made by srpc_des_make_schedule.
/// `encrypt`: 1 encrypt, 0 decrypt.
static inline void srpc_des_ecb_scheduled(const void *schedule, const unsigned char *in, unsigned char *out,
                                          size_t length, int encrypt) {
    for (size_t i = 0; i + 8 <= length; i += 8) {
        DES_ecb_encrypt((const_DES_cblock *)(in + i), (DES_cblock *)(out + i), (DES_key_schedule *)schedule,
                        encrypt ? DES_ENCRYPT : DES_DECRYPT);
    }
}
