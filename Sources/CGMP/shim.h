// GMP for Swift. GMP's public names (mpz_powm, ...) are C macros that Swift does not
// import; the real symbols are __gmpz_*. This header only pulls in gmp.h.
#include <gmp.h>
