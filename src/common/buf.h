/*
 * buf.h - a growable byte buffer (git's strbuf, for bytes).
 *
 * A zeroed struct (BO_BUF_INIT) is an empty buffer. Appends grow the buffer
 * geometrically and return BO_ENOMEM on failure, leaving the contents intact.
 * bo_buf_release frees the memory and resets the buffer to empty; bo_buf_detach
 * hands the memory to the caller (release it with bo_free).
 */
#ifndef BO_BUF_H
#define BO_BUF_H

#include <stddef.h>
#include <stdint.h>

struct bo_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

#define BO_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

int bo_buf_reserve(struct bo_buf *b, size_t extra);
int bo_buf_append(struct bo_buf *b, const void *data, size_t len);
int bo_buf_append_byte(struct bo_buf *b, uint8_t byte);
void bo_buf_release(struct bo_buf *b);
uint8_t *bo_buf_detach(struct bo_buf *b, size_t *len);

#endif
