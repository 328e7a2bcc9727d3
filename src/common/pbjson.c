/*
 * pbjson.c - protobuf <-> JSON through protobuf-c descriptors.
 *
 * Encoding walks the descriptor's fields in order and reads each value at
 * its offset: plain fields always, oneof members only when the oneof's case
 * names them, repeated fields from their count and array. Map fields are
 * repeated "Entry" messages with a key and a value and become objects.
 *
 * Decoding builds the message the way protobuf-c's own unpacker does, so
 * protobuf_c_message_free_unpacked can free it: the struct is initialized
 * from the descriptor (strings point at protobuf-c's static empty string),
 * and every string, array and submessage set from JSON is a separate
 * allocation. On error the partly built message is freed with the same
 * function, so nothing leaks whatever the input.
 *
 * The path of the value being decoded is kept in a small bounded buffer and
 * names the culprit in every error message.
 */
#include "common/pbjson.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"

/* ------------------------------------------------------------- enums --- */

/* Length of the prefix common to every value name, cut after its last '_'. */
static size_t enum_prefix_len(const ProtobufCEnumDescriptor *d)
{
    if (d->n_values < 2) {
        return 0;
    }
    const char *first = d->values[0].name;
    size_t len = strlen(first);
    for (unsigned i = 1; i < d->n_values; i++) {
        const char *n = d->values[i].name;
        size_t k = 0;
        while (k < len && n[k] == first[k]) {
            k++;
        }
        len = k;
    }
    while (len > 0 && first[len - 1] != '_') {
        len--;
    }
    return len;
}

const char *bo_pbjson_enum_name(const ProtobufCEnumDescriptor *d, int value)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    if (v == NULL) {
        return NULL;
    }
    return v->name + enum_prefix_len(d);
}

int bo_pbjson_enum_parse(const ProtobufCEnumDescriptor *d, const char *name, int *value)
{
    size_t plen = enum_prefix_len(d);
    for (unsigned i = 0; i < d->n_values; i++) {
        const char *n = d->values[i].name;
        if (strcmp(n, name) == 0 || strcmp(n + plen, name) == 0) {
            *value = d->values[i].value;
            return BO_OK;
        }
    }
    return BO_EINVAL;
}

/* ------------------------------------------------------------ encode --- */

static bool is_map_entry(const ProtobufCMessageDescriptor *d)
{
    size_t n = strlen(d->name);
    return d->n_fields == 2 && n > 5 && strcmp(d->name + n - 5, "Entry") == 0 &&
           strcmp(d->fields[0].name, "key") == 0 && strcmp(d->fields[1].name, "value") == 0;
}

static json_t *encode_value(const ProtobufCFieldDescriptor *f, const void *p, unsigned flags)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return json_integer((json_int_t) * (const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT:
        return json_real(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return json_real(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const char *name = bo_pbjson_enum_name(f->descriptor, v);
        return name != NULL ? json_string(name) : json_integer(v);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return json_string(s != NULL ? s : "");
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        if (flags & BO_PBJSON_BYTES_LENGTH) {
            return json_pack("{s:I}", "bytes", (json_int_t)b->len);
        }
        char *hex = bo_malloc(b->len * 2 + 1);
        if (hex == NULL) {
            return NULL;
        }
        for (size_t i = 0; i < b->len; i++) {
            snprintf(hex + 2 * i, 3, "%02x", b->data[i]);
        }
        hex[b->len * 2] = '\0';
        json_t *j = json_string(hex);
        bo_free(hex);
        return j;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        return m != NULL ? bo_pbjson_encode(m, flags) : json_null();
    }
    }
    return NULL;
}

static size_t elem_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    }
    return 0;
}

static json_t *encode_repeated(const ProtobufCFieldDescriptor *f, const char *base, unsigned flags)
{
    size_t n = *(const size_t *)(base + f->quantifier_offset);
    const char *arr = *(char *const *)(base + f->offset);
    size_t sz = elem_size(f);
    bool map = f->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(f->descriptor);
    json_t *out = map ? json_object() : json_array();
    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const void *p = arr + i * sz;
        if (map) {
            const ProtobufCMessage *e = *(ProtobufCMessage *const *)p;
            const ProtobufCMessageDescriptor *ed = e->descriptor;
            const char *eb = (const char *)e;
            const char *key = *(char *const *)(eb + ed->fields[0].offset);
            json_t *v = encode_value(&ed->fields[1], eb + ed->fields[1].offset, flags);
            if (v == NULL || json_object_set_new(out, key != NULL ? key : "", v) != 0) {
                json_decref(out);
                return NULL;
            }
        } else {
            json_t *v = encode_value(f, p, flags);
            if (v == NULL || json_array_append_new(out, v) != 0) {
                json_decref(out);
                return NULL;
            }
        }
    }
    return out;
}

/* True if a plain (not oneof, not repeated) field holds its proto3 default. */
static bool is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s == NULL || s[0] == '\0';
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)p == NULL;
    default: {
        static const uint8_t zero[8];
        return memcmp(p, zero, elem_size(f)) == 0;
    }
    }
}

json_t *bo_pbjson_encode(const ProtobufCMessage *m, unsigned flags)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    json_t *obj = json_object();
    if (obj == NULL) {
        return NULL;
    }
    bool compact = (flags & BO_PBJSON_COMPACT) != 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        json_t *v;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (compact && *(const size_t *)(base + f->quantifier_offset) == 0) {
                continue;
            }
            v = encode_repeated(f, base, flags);
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which = *(const uint32_t *)(base + f->quantifier_offset);
            if (which != f->id) {
                continue;
            }
            v = encode_value(f, base + f->offset, flags);
        } else if ((f->type == PROTOBUF_C_TYPE_MESSAGE || compact) &&
                   is_default(f, base + f->offset)) {
            continue;
        } else {
            v = encode_value(f, base + f->offset, flags);
        }
        if (v == NULL || json_object_set_new(obj, f->name, v) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

/* ------------------------------------------------------------ decode --- */

struct path {
    char buf[256];
    size_t len;
};

static size_t path_push(struct path *p, const char *name, long index)
{
    size_t saved = p->len;
    int n;
    if (index >= 0) {
        n = snprintf(p->buf + p->len, sizeof(p->buf) - p->len, "[%ld]", index);
    } else {
        n = snprintf(p->buf + p->len, sizeof(p->buf) - p->len, "%s%s", p->len > 0 ? "." : "",
                     name != NULL ? name : "");
    }
    if (n > 0) {
        p->len += (size_t)n < sizeof(p->buf) - p->len ? (size_t)n : sizeof(p->buf) - p->len - 1;
    }
    return saved;
}

static void path_pop(struct path *p, size_t saved)
{
    p->len = saved;
    p->buf[saved] = '\0';
}

static int fail(struct bo_err *err, const struct path *p, const char *what)
{
    return bo_errf(err, BO_EINVAL, "%s%s%s", p->len > 0 ? p->buf : "", p->len > 0 ? ": " : "",
                   what);
}

static int decode_message(const ProtobufCMessageDescriptor *d, const json_t *j,
                          ProtobufCMessage **out, struct path *path, struct bo_err *err);

static int int_in(const json_t *j, int64_t lo, int64_t hi, int64_t *out)
{
    if (json_is_integer(j)) {
        json_int_t v = json_integer_value(j);
        if (v < lo || v > hi) {
            return BO_EINVAL;
        }
        *out = v;
        return BO_OK;
    }
    if (json_is_real(j)) {
        double v = json_real_value(j);
        if (v != floor(v) || v < (double)lo || v > (double)hi) {
            return BO_EINVAL;
        }
        *out = (int64_t)v;
        return BO_OK;
    }
    return BO_EINVAL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decode one value of field `f` into `p` (a plain slot or an array slot). */
static int decode_value(const ProtobufCFieldDescriptor *f, const json_t *j, void *p,
                        struct path *path, struct bo_err *err)
{
    int64_t v;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (int_in(j, INT32_MIN, INT32_MAX, &v) != BO_OK) {
            return fail(err, path, "expected a 32-bit integer");
        }
        *(int32_t *)p = (int32_t)v;
        return BO_OK;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (int_in(j, 0, UINT32_MAX, &v) != BO_OK) {
            return fail(err, path, "expected a non-negative 32-bit integer");
        }
        *(uint32_t *)p = (uint32_t)v;
        return BO_OK;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (int_in(j, INT64_MIN, INT64_MAX, &v) != BO_OK) {
            return fail(err, path, "expected an integer");
        }
        *(int64_t *)p = v;
        return BO_OK;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (int_in(j, 0, INT64_MAX, &v) != BO_OK) {
            return fail(err, path, "expected a non-negative integer");
        }
        *(uint64_t *)p = (uint64_t)v;
        return BO_OK;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        if (!json_is_number(j)) {
            return fail(err, path, "expected a number");
        }
        double x = json_number_value(j);
        if (!isfinite(x)) {
            return fail(err, path, "expected a finite number");
        }
        if (f->type == PROTOBUF_C_TYPE_FLOAT) {
            *(float *)p = (float)x;
        } else {
            *(double *)p = x;
        }
        return BO_OK;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(j)) {
            return fail(err, path, "expected true or false");
        }
        *(protobuf_c_boolean *)p = json_is_true(j);
        return BO_OK;
    case PROTOBUF_C_TYPE_ENUM: {
        int e;
        if (json_is_string(j)) {
            if (bo_pbjson_enum_parse(f->descriptor, json_string_value(j), &e) != BO_OK) {
                char msg[160];
                snprintf(msg, sizeof(msg), "unknown value '%.100s'", json_string_value(j));
                return fail(err, path, msg);
            }
        } else if (json_is_integer(j) &&
                   protobuf_c_enum_descriptor_get_value(f->descriptor,
                                                        (int)json_integer_value(j)) != NULL &&
                   json_integer_value(j) >= INT32_MIN && json_integer_value(j) <= INT32_MAX) {
            e = (int)json_integer_value(j);
        } else {
            return fail(err, path, "expected an enum value name");
        }
        *(int *)p = e;
        return BO_OK;
    }
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(j)) {
            return fail(err, path, "expected a string");
        }
        char *s = bo_strndup(json_string_value(j), json_string_length(j));
        if (s == NULL) {
            return bo_errf(err, BO_ENOMEM, "out of memory");
        }
        *(char **)p = s;
        return BO_OK;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (!json_is_string(j) || json_string_length(j) % 2 != 0) {
            return fail(err, path, "expected a hex string");
        }
        size_t n = json_string_length(j) / 2;
        const char *s = json_string_value(j);
        uint8_t *data = bo_malloc(n);
        if (data == NULL) {
            return bo_errf(err, BO_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
            int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                bo_free(data);
                return fail(err, path, "expected a hex string");
            }
            data[i] = (uint8_t)(hi << 4 | lo);
        }
        ProtobufCBinaryData *b = p;
        b->data = data;
        b->len = n;
        return BO_OK;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return decode_message(f->descriptor, j, (ProtobufCMessage **)p, path, err);
    }
    return fail(err, path, "unsupported field type");
}

static int decode_map(const ProtobufCFieldDescriptor *f, const json_t *j, char *base,
                      struct path *path, struct bo_err *err)
{
    if (!json_is_object(j)) {
        return fail(err, path, "expected an object");
    }
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    size_t n = json_object_size(j);
    ProtobufCMessage **arr = bo_calloc(n == 0 ? 1 : n, sizeof(*arr));
    if (arr == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    *(ProtobufCMessage ***)(base + f->offset) = arr;
    const char *key;
    json_t *val;
    size_t i = 0;
    json_object_foreach((json_t *)j, key, val)
    {
        ProtobufCMessage *e = bo_calloc(1, ed->sizeof_message);
        if (e == NULL) {
            return bo_errf(err, BO_ENOMEM, "out of memory");
        }
        protobuf_c_message_init(ed, e);
        arr[i++] = e;
        *(size_t *)(base + f->quantifier_offset) = i;
        char *k = bo_strdup(key);
        if (k == NULL) {
            return bo_errf(err, BO_ENOMEM, "out of memory");
        }
        *(char **)((char *)e + ed->fields[0].offset) = k;
        size_t saved = path_push(path, key, -1);
        int rc = decode_value(&ed->fields[1], val, (char *)e + ed->fields[1].offset, path, err);
        path_pop(path, saved);
        if (rc != BO_OK) {
            return rc;
        }
    }
    return BO_OK;
}

static int decode_repeated(const ProtobufCFieldDescriptor *f, const json_t *j, char *base,
                           struct path *path, struct bo_err *err)
{
    if (f->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(f->descriptor)) {
        return decode_map(f, j, base, path, err);
    }
    if (!json_is_array(j)) {
        return fail(err, path, "expected an array");
    }
    size_t n = json_array_size(j);
    size_t sz = elem_size(f);
    char *arr = bo_calloc(n == 0 ? 1 : n, sz);
    if (arr == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    *(char **)(base + f->offset) = arr;
    for (size_t i = 0; i < n; i++) {
        /* Counted before decoding: the slot is zeroed, and a submessage
         * half built when decoding fails is then freed with the rest. */
        *(size_t *)(base + f->quantifier_offset) = i + 1;
        size_t saved = path_push(path, NULL, (long)i);
        int rc = decode_value(f, json_array_get(j, i), arr + i * sz, path, err);
        path_pop(path, saved);
        if (rc != BO_OK) {
            return rc;
        }
    }
    return BO_OK;
}

static int decode_message(const ProtobufCMessageDescriptor *d, const json_t *j,
                          ProtobufCMessage **out, struct path *path, struct bo_err *err)
{
    if (!json_is_object(j)) {
        return fail(err, path, "expected an object");
    }
    ProtobufCMessage *m = bo_calloc(1, d->sizeof_message);
    if (m == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    protobuf_c_message_init(d, m);
    /* Linked in before any field is decoded, so the caller's cleanup of the
     * outermost message frees this one and what it holds. */
    *out = m;
    char *base = (char *)m;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)j, key, val)
    {
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, key);
        if (f == NULL) {
            char msg[200];
            snprintf(msg, sizeof(msg), "unknown field '%.100s'", key);
            return fail(err, path, msg);
        }
        if (json_is_null(val)) {
            continue;
        }
        size_t saved = path_push(path, key, -1);
        int rc;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            rc = decode_repeated(f, val, base, path, err);
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t *which = (uint32_t *)(base + f->quantifier_offset);
            if (*which != 0) {
                rc = fail(err, path, "only one member of a oneof may be set");
            } else {
                /* Set first, for the same reason as repeated counts. */
                *which = f->id;
                rc = decode_value(f, val, base + f->offset, path, err);
            }
        } else {
            rc = decode_value(f, val, base + f->offset, path, err);
        }
        path_pop(path, saved);
        if (rc != BO_OK) {
            return rc;
        }
    }
    return BO_OK;
}

int bo_pbjson_decode(const ProtobufCMessageDescriptor *d, const json_t *j, ProtobufCMessage **out,
                     struct bo_err *err)
{
    struct path path = {{0}, 0};
    ProtobufCMessage *m = NULL;
    int rc = decode_message(d, j, &m, &path, err);
    if (rc != BO_OK) {
        if (m != NULL) {
            protobuf_c_message_free_unpacked(m, NULL);
        }
        return rc;
    }
    *out = m;
    return BO_OK;
}
