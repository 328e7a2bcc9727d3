/*
 * pbwire.h - just enough of the protobuf wire format to stream big messages.
 *
 * A snapshot of a million tasks is one protobuf message (DeduplicatedSnapshot)
 * whose repeated fields are emitted and read one element at a time instead of
 * building a million protobuf-c structs. Everything inside an element is packed
 * and unpacked by protobuf-c; these helpers only write and read the field
 * headers (tag and length) around them, exactly as protobuf defines them, so
 * the bytes are a valid encoding any protobuf reader accepts.
 */
#ifndef BO_PBWIRE_H
#define BO_PBWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

enum { BO_PB_VARINT = 0, BO_PB_I64 = 1, BO_PB_LEN = 2, BO_PB_I32 = 5 };

/* Append a varint; returns BO_OK or BO_ENOMEM. */
int bo_pb_put_varint(struct bo_buf *b, uint64_t v);
/* Append the header of a length-delimited field: tag then length. */
int bo_pb_put_len_header(struct bo_buf *b, uint32_t field, uint64_t len);
/* Append a whole length-delimited field. */
int bo_pb_put_bytes(struct bo_buf *b, uint32_t field, const void *data, size_t len);
/* Append a varint field. */
int bo_pb_put_uint(struct bo_buf *b, uint32_t field, uint64_t v);

/* Bytes a varint of `v` takes. */
size_t bo_pb_varint_size(uint64_t v);

/* A cursor over an encoded message. */
struct bo_pb_reader {
    const uint8_t *p;
    const uint8_t *end;
    const uint8_t *start; /* for error positions */
};

struct bo_pb_field {
    uint32_t number;
    int wire_type;
    uint64_t varint;     /* BO_PB_VARINT, BO_PB_I64, BO_PB_I32 */
    const uint8_t *data; /* BO_PB_LEN */
    size_t len;          /* BO_PB_LEN */
    size_t offset;       /* where the field starts, from reader start */
};

void bo_pb_reader_init(struct bo_pb_reader *r, const uint8_t *data, size_t len);
/* 1: a field was read into *f; 0: end of message; BO_ECORRUPT: malformed
 * (truncated varint, length past the end, bad wire type). */
int bo_pb_next(struct bo_pb_reader *r, struct bo_pb_field *f);
/* Offset of the cursor from the start, for error messages. */
size_t bo_pb_offset(const struct bo_pb_reader *r);

#endif
