// GMP for Swift. GMP's public names (mpz_powm, ...) are C macros that Swift does not
// import; the small inline wrappers below give them callable names. The allocation hooks
// make every block GMP frees pass through a wipe first, so numbers that held secrets do not
// linger in freed memory.
#include <gmp.h>
#include <stdlib.h>
#include <string.h>

static void *srpc_gmp_alloc(size_t size) {
    void *p = malloc(size);
    if (!p) abort();
    return p;
}

static void srpc_gmp_wipe(void *p, size_t size) {
    // A volatile pointer so the compiler cannot drop the stores as dead.
    volatile unsigned char *v = (volatile unsigned char *)p;
    while (size--) *v++ = 0;
}

static void *srpc_gmp_realloc(void *old, size_t old_size, size_t new_size) {
    void *p = srpc_gmp_alloc(new_size);
    memcpy(p, old, old_size < new_size ? old_size : new_size);
    srpc_gmp_wipe(old, old_size);
    free(old);
    return p;
}

static void srpc_gmp_free(void *p, size_t size) {
    srpc_gmp_wipe(p, size);
    free(p);
}

/// Installs the wiping allocator. Call before the first GMP allocation.
static inline void srpc_gmp_install_wiping_allocator(void) {
    mp_set_memory_functions(srpc_gmp_alloc, srpc_gmp_realloc, srpc_gmp_free);
}

static inline int srpc_mpz_sgn(const mpz_t z) { return mpz_sgn(z); }
