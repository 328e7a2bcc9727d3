/*
 * pbjson.h - protobuf messages to and from JSON, driven by protobuf-c's
 * descriptors, so the API and borealis-log speak the same entities the log
 * stores (proto/storage.proto) without a hand-written converter per message.
 *
 * The mapping (docs/api.md says it for users):
 *  - a message is an object keyed by the proto field names (snake_case);
 *  - scalars are JSON numbers and booleans; 64-bit integers are numbers
 *    (exact up to 2^53 in most JSON readers, which covers every value the
 *    scheduler stores: times in ms, sizes in MB);
 *  - enums are their value names with the enum's common prefix removed
 *    ("RUNNING", "KILL_EXISTING" for CRON_KILL_EXISTING, "DRAINING" for
 *    MAINTENANCE_DRAINING); the full name and the number are accepted too;
 *  - a oneof member is its own field; at most one may be given;
 *  - repeated fields are arrays, maps are objects;
 *  - bytes are lowercase hex strings.
 *
 * Decoding is strict: an unknown field, a value of the wrong type, a number
 * out of range, an unknown enum name or two members of one oneof are
 * BO_EINVAL with a message naming the path ("task_config.resources[1]:
 * unknown field 'cpu'"). JSON null means "absent".
 *
 * Ownership: decoded messages are allocated with bo_malloc and freed with
 * protobuf_c_message_free_unpacked(m, NULL). Encoded values are new jansson
 * references the caller must json_decref.
 */
#ifndef BO_PBJSON_H
#define BO_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "common/buf.h"
#include "common/err.h"

/* Encoding flags. */
enum {
    /* Leave out what proto3 would not send: zero scalars, empty strings,
     * empty repeated fields (dumps, where size matters more than shape). */
    BO_PBJSON_COMPACT = 1 << 0,
    /* bytes as {"bytes": length} instead of their hex (dumps of images,
     * where the bytes are an entry's payload). */
    BO_PBJSON_BYTES_LENGTH = 1 << 1,
};

/* Encode `m`. Without flags scalar fields are always present (zero
 * included) and unset submessages and oneofs are left out. NULL when out of
 * memory, and for a string that is not valid UTF-8 or a real that is not
 * finite (jansson refuses both). */
json_t *bo_pbjson_encode(const ProtobufCMessage *m, unsigned flags);

/* Append the JSON text of `m` to `out`: exactly the bytes of
 * json_dumps(bo_pbjson_encode(m, flags), JSON_COMPACT), without building the
 * tree (the API's big reads). The only allocations are `out` growing.
 * BO_ENOMEM when out of memory; BO_EINVAL for what bo_pbjson_encode cannot
 * encode either: a string or map key that is not valid UTF-8, a float or
 * double that is not finite. On error `out` keeps what it held before the
 * call (its length is restored; its capacity may have grown). */
int bo_pbjson_write(const ProtobufCMessage *m, unsigned flags, struct bo_buf *out);

/* Append `str` as a JSON string, and `v` as a JSON integer, exactly as
 * jansson's compact dump writes them: for answers written as text around
 * bo_pbjson_write. BO_EINVAL for a string that is not valid UTF-8 (`out`
 * may then hold part of it: the caller restores its length), BO_ENOMEM. */
int bo_pbjson_write_str(const char *str, struct bo_buf *out);
int bo_pbjson_write_int(int64_t v, struct bo_buf *out);

/* Decode `j` (an object) into a new message of type `d`. */
int bo_pbjson_decode(const ProtobufCMessageDescriptor *d, const json_t *j, ProtobufCMessage **out,
                     struct bo_err *err);

/* The short name of an enum value ("RUNNING"), NULL if unknown. */
const char *bo_pbjson_enum_name(const ProtobufCEnumDescriptor *d, int value);
/* Parse a short or full enum value name; BO_EINVAL if unknown. */
int bo_pbjson_enum_parse(const ProtobufCEnumDescriptor *d, const char *name, int *value);

#endif
