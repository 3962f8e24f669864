// The single-DES block cipher from the system's OpenSSL libcrypto (libssl-dev), used only
// for the legacy Sun AUTH_DES rules. The low-level DES_* API is deprecated in OpenSSL 3 but
// still exported; silence the deprecation so the Swift importer sees the declarations.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/des.h>
