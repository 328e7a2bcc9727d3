#include "common/buf.h"

#include <string.h>

#include "common/err.h"
#include "common/mem.h"

int bo_buf_reserve(struct bo_buf *b, size_t extra)
{
    size_t need;
    if (__builtin_add_overflow(b->len, extra, &need)) {
        return BO_ENOMEM;
    }
    if (need <= b->cap) {
        return BO_OK;
    }
    size_t cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need) {
        if (__builtin_mul_overflow(cap, 2, &cap)) {
            return BO_ENOMEM;
        }
    }
    uint8_t *p = bo_realloc(b->data, cap);
    if (p == NULL) {
        return BO_ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return BO_OK;
}

int bo_buf_append(struct bo_buf *b, const void *data, size_t len)
{
    if (len == 0) {
        return BO_OK;
    }
    int rv = bo_buf_reserve(b, len);
    if (rv != BO_OK) {
        return rv;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return BO_OK;
}

int bo_buf_append_byte(struct bo_buf *b, uint8_t byte)
{
    return bo_buf_append(b, &byte, 1);
}

void bo_buf_release(struct bo_buf *b)
{
    bo_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

uint8_t *bo_buf_detach(struct bo_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len != NULL) {
        *len = b->len;
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
