/*
 * mem.h - the project's allocator.
 *
 * Every allocation in Borealis goes through these wrappers so tests can make
 * allocation fail on purpose (bo_mem_fail_after) and so sizes are checked for
 * overflow in one place. The wrappers return NULL on failure; callers turn that
 * into BO_ENOMEM. Memory from bo_malloc is released with bo_free.
 */
#ifndef BO_MEM_H
#define BO_MEM_H

#include <stdbool.h>
#include <stddef.h>

void *bo_malloc(size_t size);
void *bo_calloc(size_t n, size_t size);
void *bo_realloc(void *p, size_t size);
/* realloc of n * size with overflow check (git's st_mult). */
void *bo_reallocarray(void *p, size_t n, size_t size);
char *bo_strdup(const char *s);
char *bo_strndup(const char *s, size_t n);
void bo_free(void *p);

/* Test hook: after `n` more successful allocations, fail every one until
 * reset with a negative `n`. Not thread-safe; tests only. */
void bo_mem_fail_after(long n);

/* True if a * b overflows size_t; the product is stored in *out otherwise. */
static inline bool bo_mul_overflows(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

#endif
