/*
 * An LD_PRELOAD allocation counter for `rpcbench allocs`: every call to malloc, calloc,
 * realloc, posix_memalign, aligned_alloc, memalign, valloc and pvalloc adds one to a
 * process-wide atomic, read with securerpc_malloc_count(). free is not counted: a call's
 * cost here is how often it asks the allocator for memory. A measuring tool only, built by
 * build.sh beside the C peers, never linked into a product; it trusts the process it is
 * loaded into.
 *
 * The real functions come from dlsym(RTLD_NEXT, ...). dlsym may allocate (calloc for its
 * error state) before the lookups are done; those few requests are served from a static
 * arena, are not counted, and are never handed to the real free or realloc.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <string.h>

static unsigned long long allocations;

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);

static _Alignas(64) char arena[16384];
static size_t arena_used;
static int resolving;

static void *arena_alloc(size_t size) {
    size = (size + 63) & ~(size_t)63;
    if (size > sizeof arena - arena_used) return NULL;
    void *p = arena + arena_used;
    arena_used += size;
    return p; /* static storage: already zero, so calloc's promise holds */
}

static int in_arena(const void *p) {
    return (const char *)p >= arena && (const char *)p < arena + sizeof arena;
}

/* Runs first from the constructor (before any other thread exists), so no lock. */
static void resolve(void) {
    if (real_malloc || resolving) return;
    resolving = 1;
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    real_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
    real_valloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "valloc");
    real_pvalloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "pvalloc");
    real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    resolving = 0;
}

__attribute__((constructor)) static void malloc_count_init(void) { resolve(); }

static void counted(void) { __atomic_fetch_add(&allocations, 1, __ATOMIC_RELAXED); }

/** Allocation calls so far in this process (all threads). */
unsigned long long securerpc_malloc_count(void) { return __atomic_load_n(&allocations, __ATOMIC_RELAXED); }

void *malloc(size_t size) {
    if (!real_malloc) resolve();
    if (!real_malloc) return arena_alloc(size);
    counted();
    return real_malloc(size);
}

void *calloc(size_t n, size_t size) {
    if (!real_calloc) resolve();
    if (!real_calloc) return (size && n > (size_t)-1 / size) ? NULL : arena_alloc(n * size);
    counted();
    return real_calloc(n, size);
}

void free(void *p) {
    if (!p || in_arena(p)) return;
    if (!real_free) resolve();
    if (real_free) real_free(p);
}

void *realloc(void *p, size_t size) {
    if (in_arena(p)) {
        /* The old size is unknown: copy what fits before the arena's end. */
        void *q = malloc(size);
        size_t left = (size_t)(arena + sizeof arena - (char *)p);
        if (q) memcpy(q, p, size < left ? size : left);
        return q;
    }
    if (!real_realloc) resolve();
    if (!real_realloc) return p ? NULL : arena_alloc(size);
    counted();
    return real_realloc(p, size);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    if (!real_posix_memalign) resolve();
    if (!real_posix_memalign) return 12; /* ENOMEM */
    counted();
    return real_posix_memalign(out, alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    if (!real_aligned_alloc) resolve();
    if (!real_aligned_alloc) return NULL;
    counted();
    return real_aligned_alloc(alignment, size);
}

void *memalign(size_t alignment, size_t size) {
    if (!real_memalign) resolve();
    if (!real_memalign) return NULL;
    counted();
    return real_memalign(alignment, size);
}

void *valloc(size_t size) {
    if (!real_valloc) resolve();
    if (!real_valloc) return NULL;
    counted();
    return real_valloc(size);
}

void *pvalloc(size_t size) {
    if (!real_pvalloc) resolve();
    if (!real_pvalloc) return NULL;
    counted();
    return real_pvalloc(size);
}
