#include "common/mem.h"

#include <stdlib.h>
#include <string.h>

static long fail_after = -1;

static bool should_fail(void)
{
    if (fail_after < 0) {
        return false;
    }
    if (fail_after == 0) {
        return true;
    }
    fail_after--;
    return false;
}

void bo_mem_fail_after(long n)
{
    fail_after = n;
}

void *bo_malloc(size_t size)
{
    return should_fail() ? NULL : malloc(size == 0 ? 1 : size);
}

void *bo_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
}

void *bo_realloc(void *p, size_t size)
{
    return should_fail() ? NULL : realloc(p, size == 0 ? 1 : size);
}

void *bo_reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (bo_mul_overflows(n, size, &total)) {
        return NULL;
    }
    return bo_realloc(p, total);
}

char *bo_strdup(const char *s)
{
    return bo_strndup(s, strlen(s));
}

char *bo_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = bo_malloc(len + 1);
    if (d != NULL) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

void bo_free(void *p)
{
    free(p);
}
