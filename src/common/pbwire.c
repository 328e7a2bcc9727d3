#include "common/pbwire.h"

#include "common/err.h"

size_t bo_pb_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

int bo_pb_put_varint(struct bo_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    return bo_buf_append(b, tmp, n);
}

int bo_pb_put_len_header(struct bo_buf *b, uint32_t field, uint64_t len)
{
    int rv = bo_pb_put_varint(b, ((uint64_t)field << 3) | BO_PB_LEN);
    return rv != BO_OK ? rv : bo_pb_put_varint(b, len);
}

int bo_pb_put_bytes(struct bo_buf *b, uint32_t field, const void *data, size_t len)
{
    int rv = bo_pb_put_len_header(b, field, len);
    return rv != BO_OK ? rv : bo_buf_append(b, data, len);
}

int bo_pb_put_uint(struct bo_buf *b, uint32_t field, uint64_t v)
{
    int rv = bo_pb_put_varint(b, ((uint64_t)field << 3) | BO_PB_VARINT);
    return rv != BO_OK ? rv : bo_pb_put_varint(b, v);
}

void bo_pb_reader_init(struct bo_pb_reader *r, const uint8_t *data, size_t len)
{
    r->p = data;
    r->end = data + len;
    r->start = data;
}

size_t bo_pb_offset(const struct bo_pb_reader *r)
{
    return (size_t)(r->p - r->start);
}

static int get_varint(struct bo_pb_reader *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            return BO_ECORRUPT;
        }
        uint8_t byte = *r->p++;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if ((byte & 0x80) == 0) {
            *out = v;
            return BO_OK;
        }
    }
    return BO_ECORRUPT;
}

int bo_pb_next(struct bo_pb_reader *r, struct bo_pb_field *f)
{
    if (r->p >= r->end) {
        return 0;
    }
    f->offset = bo_pb_offset(r);
    uint64_t key;
    if (get_varint(r, &key) != BO_OK || (key >> 3) == 0 || (key >> 3) > UINT32_MAX) {
        return BO_ECORRUPT;
    }
    f->number = (uint32_t)(key >> 3);
    f->wire_type = (int)(key & 7);
    f->data = NULL;
    f->len = 0;
    f->varint = 0;
    switch (f->wire_type) {
    case BO_PB_VARINT:
        return get_varint(r, &f->varint) == BO_OK ? 1 : BO_ECORRUPT;
    case BO_PB_I64:
    case BO_PB_I32: {
        size_t n = f->wire_type == BO_PB_I64 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n) {
            return BO_ECORRUPT;
        }
        for (size_t i = 0; i < n; i++) {
            f->varint |= (uint64_t)r->p[i] << (8 * i);
        }
        r->p += n;
        return 1;
    }
    case BO_PB_LEN: {
        uint64_t len;
        if (get_varint(r, &len) != BO_OK || len > (uint64_t)(r->end - r->p)) {
            return BO_ECORRUPT;
        }
        f->data = r->p;
        f->len = (size_t)len;
        r->p += len;
        return 1;
    }
    default:
        return BO_ECORRUPT;
    }
}
