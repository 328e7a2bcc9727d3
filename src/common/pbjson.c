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
 * bo_pbjson_write renders the same JSON as json_dumps(bo_pbjson_encode(m),
 * JSON_COMPACT), byte for byte, straight into a buffer: no tree, no
 * allocation but the buffer's growth. Both encoders ask the same helpers
 * which fields appear (field_emitted), under which key (field_json_name)
 * and as what JSON value (load_value: enum names, 64-bit handling, unset
 * strings and submessages), so the two cannot disagree on the mapping; the
 * writer then reproduces jansson's compact dump: its string escapes, its
 * "%.17g" reals, its integer format and what json_object_set_new does with
 * a repeated map key. What jansson refuses (invalid UTF-8, a real that is
 * not finite) fails the writer too (BO_EINVAL), as it makes the encoder
 * return NULL.
 *
 * The path of the value being decoded is kept in a small bounded buffer and
 * names the culprit in every error message.
 */
#include "common/pbjson.h"

#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
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

/* ------------------------------------------ what both encoders decide --- */

/* The rules below are the mapping's one source of truth: bo_pbjson_encode
 * turns their answers into jansson values, bo_pbjson_write into text. */

static bool is_map_entry(const ProtobufCMessageDescriptor *d)
{
    size_t n = strlen(d->name);
    return d->n_fields == 2 && n > 5 && strcmp(d->name + n - 5, "Entry") == 0 &&
           strcmp(d->fields[0].name, "key") == 0 && strcmp(d->fields[1].name, "value") == 0;
}

/* True if repeated field `f` is a map (an object of its entries). */
static bool is_map_field(const ProtobufCFieldDescriptor *f)
{
    return f->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(f->descriptor);
}

/* A map entry's key ("" when unset) and the descriptor and address of its
 * value. */
static const char *map_key(const ProtobufCMessage *e)
{
    const char *key = *(char *const *)((const char *)e + e->descriptor->fields[0].offset);
    return key != NULL ? key : "";
}

static const ProtobufCFieldDescriptor *map_value_field(const ProtobufCMessage *e)
{
    return &e->descriptor->fields[1];
}

static const void *map_value(const ProtobufCMessage *e)
{
    return (const char *)e + e->descriptor->fields[1].offset;
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

static size_t repeated_count(const ProtobufCFieldDescriptor *f, const char *base)
{
    return *(const size_t *)(base + f->quantifier_offset);
}

static const char *repeated_array(const ProtobufCFieldDescriptor *f, const char *base)
{
    return *(char *const *)(base + f->offset);
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

/* Whether field `f` of the message at `base` is in the output: repeated
 * fields unless empty and compact, oneof members when their oneof names
 * them, unset submessages never, defaults only without BO_PBJSON_COMPACT. */
static bool field_emitted(const ProtobufCFieldDescriptor *f, const char *base, unsigned flags)
{
    bool compact = (flags & BO_PBJSON_COMPACT) != 0;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        return !compact || repeated_count(f, base) > 0;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
    }
    if (f->type == PROTOBUF_C_TYPE_MESSAGE || compact) {
        return !is_default(f, base + f->offset);
    }
    return true;
}

/* The key of field `f` in its message's object. */
static const char *field_json_name(const ProtobufCFieldDescriptor *f)
{
    return f->name;
}

/* One value as JSON sees it. */
enum jkind { J_INT, J_REAL, J_BOOL, J_STRING, J_BYTES, J_MESSAGE, J_NULL };

struct jvalue {
    enum jkind kind;
    json_int_t i;                 /* J_INT, J_BOOL */
    double d;                     /* J_REAL */
    const char *s;                /* J_STRING, never NULL */
    const ProtobufCBinaryData *b; /* J_BYTES */
    const ProtobufCMessage *m;    /* J_MESSAGE */
};

/* Read the value of field `f` at `p` (a plain slot or an array slot):
 * 64-bit unsigned values as json_int_t (two's complement), floats widened
 * to double, enums by name (their number if the name is unknown), unset
 * strings as "", unset submessages as null. */
static void load_value(const ProtobufCFieldDescriptor *f, const void *p, struct jvalue *v)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        v->kind = J_INT;
        v->i = *(const int32_t *)p;
        return;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        v->kind = J_INT;
        v->i = *(const uint32_t *)p;
        return;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        v->kind = J_INT;
        v->i = *(const int64_t *)p;
        return;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        v->kind = J_INT;
        v->i = (json_int_t) * (const uint64_t *)p;
        return;
    case PROTOBUF_C_TYPE_FLOAT:
        v->kind = J_REAL;
        v->d = *(const float *)p;
        return;
    case PROTOBUF_C_TYPE_DOUBLE:
        v->kind = J_REAL;
        v->d = *(const double *)p;
        return;
    case PROTOBUF_C_TYPE_BOOL:
        v->kind = J_BOOL;
        v->i = *(const protobuf_c_boolean *)p != 0;
        return;
    case PROTOBUF_C_TYPE_ENUM: {
        int e = *(const int *)p;
        const char *name = bo_pbjson_enum_name(f->descriptor, e);
        if (name != NULL) {
            v->kind = J_STRING;
            v->s = name;
        } else {
            v->kind = J_INT;
            v->i = e;
        }
        return;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        v->kind = J_STRING;
        v->s = s != NULL ? s : "";
        return;
    }
    case PROTOBUF_C_TYPE_BYTES:
        v->kind = J_BYTES;
        v->b = p;
        return;
    case PROTOBUF_C_TYPE_MESSAGE:
        v->m = *(ProtobufCMessage *const *)p;
        v->kind = v->m != NULL ? J_MESSAGE : J_NULL;
        return;
    }
    v->kind = J_NULL;
}

/* Bytes as lowercase hex: 2 * b->len characters at `dst`, not terminated. */
static void hex_encode(const ProtobufCBinaryData *b, char *dst)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < b->len; i++) {
        dst[2 * i] = digits[b->data[i] >> 4];
        dst[2 * i + 1] = digits[b->data[i] & 15];
    }
}

/* ---------------------------------------------------- encode (jansson) --- */

static json_t *encode_value(const ProtobufCFieldDescriptor *f, const void *p, unsigned flags)
{
    struct jvalue v;
    load_value(f, p, &v);
    switch (v.kind) {
    case J_INT:
        return json_integer(v.i);
    case J_REAL:
        return json_real(v.d);
    case J_BOOL:
        return json_boolean(v.i);
    case J_STRING:
        return json_string(v.s);
    case J_BYTES: {
        if (flags & BO_PBJSON_BYTES_LENGTH) {
            return json_pack("{s:I}", "bytes", (json_int_t)v.b->len);
        }
        size_t n;
        if (bo_mul_overflows(v.b->len, 2, &n)) {
            return NULL;
        }
        char *hex = bo_malloc(n + 1);
        if (hex == NULL) {
            return NULL;
        }
        hex_encode(v.b, hex);
        json_t *j = json_stringn(hex, n);
        bo_free(hex);
        return j;
    }
    case J_MESSAGE:
        return bo_pbjson_encode(v.m, flags);
    case J_NULL:
        return json_null();
    }
    return NULL;
}

static json_t *encode_repeated(const ProtobufCFieldDescriptor *f, const char *base, unsigned flags)
{
    size_t n = repeated_count(f, base);
    const char *arr = repeated_array(f, base);
    size_t sz = elem_size(f);
    bool map = is_map_field(f);
    json_t *out = map ? json_object() : json_array();
    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const void *p = arr + i * sz;
        if (map) {
            /* A repeated key replaces the value in place (jansson keeps
             * the first key's position); bo_pbjson_write does the same. */
            const ProtobufCMessage *e = *(ProtobufCMessage *const *)p;
            json_t *v = encode_value(map_value_field(e), map_value(e), flags);
            if (v == NULL || json_object_set_new(out, map_key(e), v) != 0) {
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

json_t *bo_pbjson_encode(const ProtobufCMessage *m, unsigned flags)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    json_t *obj = json_object();
    if (obj == NULL) {
        return NULL;
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!field_emitted(f, base, flags)) {
            continue;
        }
        json_t *v = f->label == PROTOBUF_C_LABEL_REPEATED
                        ? encode_repeated(f, base, flags)
                        : encode_value(f, base + f->offset, flags);
        if (v == NULL || json_object_set_new(obj, field_json_name(f), v) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

/* ------------------------------------------------------- encode (text) --- */

/* Room for `n` more bytes; the check inline, the growth in bo_buf_reserve. */
static inline int room(struct bo_buf *out, size_t n)
{
    return out->cap - out->len >= n ? BO_OK : bo_buf_reserve(out, n);
}

static inline int put(struct bo_buf *out, const char *s, size_t n)
{
    int rc = room(out, n);
    if (rc == BO_OK) {
        memcpy(out->data + out->len, s, n);
        out->len += n;
    }
    return rc;
}

static inline int put_char(struct bo_buf *out, char c)
{
    int rc = room(out, 1);
    if (rc == BO_OK) {
        out->data[out->len++] = (uint8_t)c;
    }
    return rc;
}

/* Length of the UTF-8 sequence starting at s[0] (in a NUL-terminated
 * string: the terminator is no continuation byte, so nothing past it is
 * read) if it is one jansson accepts (utf8_check_first and
 * utf8_check_full: no overlong forms, no surrogates, nothing past
 * U+10FFFF), 0 if not. */
static size_t utf8_seq_len(const uint8_t *s)
{
    uint8_t u = s[0];
    size_t len;
    uint32_t cp;
    if (u >= 0xC2 && u <= 0xDF) {
        len = 2;
        cp = u & 0x1F;
    } else if (u >= 0xE0 && u <= 0xEF) {
        len = 3;
        cp = u & 0x0F;
    } else if (u >= 0xF0 && u <= 0xF4) {
        len = 4;
        cp = u & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (len == 3 && cp < 0x800) ||
        (len == 4 && cp < 0x10000)) {
        return 0;
    }
    return len;
}

/* Whether none of the 8 bytes at p needs attention: no control character
 * (the terminator included), '"', '\\' or byte of a multi-byte sequence.
 * The usual word-at-a-time tests: each is exact about whether any byte
 * matches, which is all that is asked. */
static inline bool plain8(const uint8_t *p)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t x;
    memcpy(&x, p, sizeof(x));
    uint64_t q = x ^ (ones * '"');
    uint64_t b = x ^ (ones * '\\');
    uint64_t hit = ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b) | x;
    return (hit & high) == 0;
}

/* A string as jansson's dump_string writes it without JSON_ENSURE_ASCII
 * and JSON_ESCAPE_SLASH: '"' and '\\' escaped, control characters as the
 * short escapes or \u00XX (uppercase hex), everything else as is. Invalid
 * UTF-8 is BO_EINVAL, as json_string refuses it. Most strings of a task
 * list (ids, host names, statuses) need no escape at all, so runs of plain
 * bytes are found eight at a time and copied whole. */
static int write_string(struct bo_buf *out, const char *str)
{
    static const char hex[] = "0123456789ABCDEF";
    const uint8_t *s = (const uint8_t *)str;
    size_t n = strlen(str);
    int rc = room(out, n + 2);
    if (rc != BO_OK) {
        return rc;
    }
    out->data[out->len++] = '"';
    size_t run = 0; /* start of the bytes not yet copied */
    size_t i = 0;
    while (rc == BO_OK && i < n) {
        if (i + 8 <= n && plain8(s + i)) {
            i += 8;
            continue;
        }
        uint8_t c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t len = utf8_seq_len(s + i);
            if (len == 0) {
                return BO_EINVAL;
            }
            i += len;
            continue;
        }
        rc = put(out, str + run, i - run);
        if (rc != BO_OK) {
            break;
        }
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t elen = 2;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
            break;
        }
        rc = put(out, esc, elen);
        i++;
        run = i;
    }
    if (rc == BO_OK) {
        rc = put(out, str + run, i - run);
    }
    return rc == BO_OK ? put_char(out, '"') : rc;
}

/* An integer as jansson prints it ("%" JSON_INTEGER_FORMAT). */
static int write_int(struct bo_buf *out, json_int_t v)
{
    char tmp[24];
    size_t k = sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--k] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        tmp[--k] = '-';
    }
    return put(out, tmp + k, sizeof(tmp) - k);
}

/* A real as jansson prints it (jsonp_dtostr at the default precision):
 * "%.17g", the locale's decimal point turned into '.', ".0" appended when
 * there is neither a '.' nor an exponent, and the exponent without '+' and
 * leading zeros. Not finite is BO_EINVAL, as json_real refuses it. */
static int write_real(struct bo_buf *out, double v)
{
    if (!isfinite(v)) {
        return BO_EINVAL;
    }
    char b[100];
    int r = snprintf(b, sizeof(b), "%.17g", v);
    if (r < 0 || (size_t)r >= sizeof(b) - 3) {
        return BO_EINVAL;
    }
    size_t len = (size_t)r;
    const char *point = localeconv()->decimal_point;
    if (*point != '.') {
        char *pos = strchr(b, *point);
        if (pos != NULL) {
            *pos = '.';
        }
    }
    if (strchr(b, '.') == NULL && strchr(b, 'e') == NULL) {
        memcpy(b + len, ".0", 3);
        len += 2;
    }
    char *start = strchr(b, 'e');
    if (start != NULL) {
        start++;
        char *end = start + 1;
        if (*start == '-') {
            start++;
        }
        while (*end == '0') {
            end++;
        }
        if (end != start) {
            memmove(start, end, len - (size_t)(end - b) + 1);
            len -= (size_t)(end - start);
        }
    }
    return put(out, b, len);
}

static int write_message(const ProtobufCMessage *m, unsigned flags, struct bo_buf *out);

static int write_value(const ProtobufCFieldDescriptor *f, const void *p, unsigned flags,
                       struct bo_buf *out)
{
    struct jvalue v;
    load_value(f, p, &v);
    switch (v.kind) {
    case J_INT:
        return write_int(out, v.i);
    case J_REAL:
        return write_real(out, v.d);
    case J_BOOL:
        return v.i ? put(out, "true", 4) : put(out, "false", 5);
    case J_STRING:
        return write_string(out, v.s);
    case J_BYTES: {
        int rc;
        if (flags & BO_PBJSON_BYTES_LENGTH) {
            rc = put(out, "{\"bytes\":", 9);
            if (rc == BO_OK) {
                rc = write_int(out, (json_int_t)v.b->len);
            }
            return rc == BO_OK ? put_char(out, '}') : rc;
        }
        size_t n;
        if (bo_mul_overflows(v.b->len, 2, &n) || n > SIZE_MAX - 2) {
            return BO_ENOMEM;
        }
        rc = room(out, n + 2);
        if (rc == BO_OK) {
            out->data[out->len++] = '"';
            hex_encode(v.b, (char *)out->data + out->len);
            out->len += n;
            out->data[out->len++] = '"';
        }
        return rc;
    }
    case J_MESSAGE:
        return write_message(v.m, flags, out);
    case J_NULL:
        return put(out, "null", 4);
    }
    return BO_EINVAL;
}

/* A map: one key per distinct entry key, at the first entry's position,
 * with the last entry's value (what json_object_set_new makes of repeated
 * keys). Quadratic in the entries; maps hold a few. */
static int write_map(const ProtobufCMessage *const *es, size_t n, unsigned flags,
                     struct bo_buf *out)
{
    int rc = put_char(out, '{');
    bool first = true;
    for (size_t i = 0; i < n && rc == BO_OK; i++) {
        const char *key = map_key(es[i]);
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) {
            seen = strcmp(map_key(es[j]), key) == 0;
        }
        if (seen) {
            continue;
        }
        const ProtobufCMessage *last = es[i];
        for (size_t j = i + 1; j < n; j++) {
            if (strcmp(map_key(es[j]), key) == 0) {
                last = es[j];
            }
        }
        if (!first) {
            rc = put_char(out, ',');
        }
        first = false;
        if (rc == BO_OK) {
            rc = write_string(out, key);
        }
        if (rc == BO_OK) {
            rc = put_char(out, ':');
        }
        if (rc == BO_OK) {
            rc = write_value(map_value_field(last), map_value(last), flags, out);
        }
    }
    return rc == BO_OK ? put_char(out, '}') : rc;
}

static int write_repeated(const ProtobufCFieldDescriptor *f, const char *base, unsigned flags,
                          struct bo_buf *out)
{
    size_t n = repeated_count(f, base);
    const char *arr = repeated_array(f, base);
    if (is_map_field(f)) {
        return write_map((const ProtobufCMessage *const *)arr, n, flags, out);
    }
    size_t sz = elem_size(f);
    int rc = put_char(out, '[');
    for (size_t i = 0; i < n && rc == BO_OK; i++) {
        if (i > 0) {
            rc = put_char(out, ',');
        }
        if (rc == BO_OK) {
            rc = write_value(f, arr + i * sz, flags, out);
        }
    }
    return rc == BO_OK ? put_char(out, ']') : rc;
}

static int write_message(const ProtobufCMessage *m, unsigned flags, struct bo_buf *out)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    int rc = put_char(out, '{');
    bool first = true;
    for (unsigned i = 0; i < d->n_fields && rc == BO_OK; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!field_emitted(f, base, flags)) {
            continue;
        }
        if (!first) {
            rc = put_char(out, ',');
        }
        first = false;
        if (rc == BO_OK) {
            rc = write_string(out, field_json_name(f));
        }
        if (rc == BO_OK) {
            rc = put_char(out, ':');
        }
        if (rc == BO_OK) {
            rc = f->label == PROTOBUF_C_LABEL_REPEATED
                     ? write_repeated(f, base, flags, out)
                     : write_value(f, base + f->offset, flags, out);
        }
    }
    return rc == BO_OK ? put_char(out, '}') : rc;
}

int bo_pbjson_write(const ProtobufCMessage *m, unsigned flags, struct bo_buf *out)
{
    size_t saved = out->len;
    int rc = write_message(m, flags, out);
    if (rc != BO_OK) {
        out->len = saved;
    }
    return rc;
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
    if (is_map_field(f)) {
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

int bo_pbjson_write_str(const char *str, struct bo_buf *out)
{
    return write_string(out, str);
}

int bo_pbjson_write_int(int64_t v, struct bo_buf *out)
{
    return write_int(out, (json_int_t)v);
}
