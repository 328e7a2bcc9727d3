/*
 * snapshot.c - snapshot images: the streaming writer and the checking reader.
 *
 * Writing (dedup with zstd, the normal case: streaming). Configs and tasks
 * arrive already encoded, as the store keeps them. Each is framed with its
 * protobuf field header (config: DeduplicatedSnapshot field 3; task: field 2,
 * a DeduplicatedScheduledTask{3: partial, delta-encoded (ts_delta), or 1:
 * partial as is, 2: config id}; the entry is a deduplicated_snapshot_delta
 * whenever the writer compresses, and the image header version 2) into a staging
 * buffer that is handed to a zstd stream every 4 MB, in arrival order: a
 * caller that adds all configs first (the store does) gets fields 3, 2, 1;
 * one that interleaves still has every config ahead of the tasks that name
 * it. Past the first 8 MB a thread of ours compresses each chunk while the
 * caller fills the next (a smaller snapshot is compressed at finish, on the
 * calling thread; see "pump" for why not zstd's own workers), and no
 * uncompressed copy of the tasks is
 * ever held: at a million tasks that was 600 MB of fresh memory, which costs
 * more than compressing it on the VMs we run on. set_rest packs the partial Snapshot as field 1
 * into `rest`; finish streams it last and closes the frame. The LogEntry header in front (field 6
 * or 4, and the total length) is known only then, so it goes into a second, tiny zstd frame placed
 * before the first: a decoder reads two concatenated frames as one stream. The compressed bytes
 * follow a reserved slot for image header, Compressed wrapper and head frame; finish fills it and
 * moves the data down over what is unused (one pass over the compressed size), then hands the
 * buffer over to an empty image instead of copying.
 *
 * Writing (dedup with codec none or zlib). The same elements go to two
 * growing buffers, `configs` and `tasks`, so field 3 comes first even when
 * the caller interleaves; at finish the outer headers are computed from the
 * buffer sizes and the pieces are handed to the compressor as an iovec (never
 * concatenated), into the image after a header slot of the largest possible
 * size, and moved down as above. raw_bytes is computed per task from the
 * partial's assigned_task length and the config size, never by building the
 * plain encoding.
 *
 * Writing (plain, for tools and benchmarks): each task is unpacked, given its
 * config (unpacked once per config) and packed again as Snapshot field 3.
 *
 * Reading. The header is checked first (magic, version, header CRC, flags,
 * size, payload CRC), then the payload is walked with the pbwire cursor:
 * a Compressed entry is decompressed (its codec checks sizes and its own
 * checksum; a zstd one over FEED_MIN on a thread of its own, see "feed") and
 * walked again, a DeduplicatedSnapshot is walked twice (configs, then tasks,
 * so any field order works), a delta one once, as it is decompressed (a
 * task's config comes before it there), its tasks' delta encoding undone
 * before the visitor sees them, and the partial Snapshot unpacked by
 * protobuf-c; a plain Snapshot is walked once, each task unpacked and split
 * into canonical config and partial, configs deduplicated in a hash table
 * keyed by the XXH3-128 of the canonical bytes and confirmed with memcmp, and
 * every non-task field copied aside to be unpacked as the `rest` at the end.
 * Tasks found inside a DeduplicatedSnapshot's partial Snapshot (a writer
 * that did not strip them) are treated the same way, as full tasks.
 *
 * Failure modes: every framing problem (truncation, bad length, bad wire type,
 * a message protobuf-c refuses, a config id out of range, a Compressed inside
 * a Compressed, an unknown codec, a payload that is not a snapshot) is
 * BO_ECORRUPT naming the byte offset, in the image or in the decompressed
 * payload. Inside configs and partial tasks only the top level is checked
 * here (a full unpack of a million tasks would double the restore time); the
 * visitor unpacks them, and the checksums already guarantee the bytes are the
 * ones written; a delta-encoded task whose encoding cannot be undone is
 * BO_ECORRUPT too. A visitor's own error stops the walk and is returned as
 * is; the feed thread's error wins over the walk's (feed).
 * A streaming writer whose compressor fails makes that add return BO_ENOMEM
 * (all zstd can fail on with valid input) and finish report zstd's message;
 * one created with a level zstd refuses buffers instead, and finish reports
 * the level, as for the other codecs.
 */
#include "storage/snapshot.h"

#include <assert.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "common/hash.h"
#include "common/mem.h"
#include "common/pbwire.h"
#include "storage/canon.h"

/* Field numbers and tags, as bytes, of the messages built by hand. */
enum {
    LOGENTRY_SNAPSHOT = 1,
    LOGENTRY_TRANSACTION = 2,
    LOGENTRY_NOOP = 3,
    LOGENTRY_DEDUP = 4,
    LOGENTRY_COMPRESSED = 5,
    LOGENTRY_DEDUP_DELTA = 6,
    DEDUP_PARTIAL_SNAPSHOT = 1,
    DEDUP_PARTIAL_TASKS = 2,
    DEDUP_TASK_CONFIGS = 3,
    DTASK_PARTIAL = 1,
    DTASK_CONFIG_ID = 2,
    DTASK_PARTIAL_DELTA = 3,
    SNAPSHOT_TASKS = 3,
    STASK_ASSIGNED = 1,
    STASK_EVENTS = 4,
    STASK_TS_COLUMN = 15, /* reserved in ScheduledTask for this */
    EVENT_TIMESTAMP = 1,
    ATASK_TASK = 4,
    COMPRESSED_CODEC = 1,
    COMPRESSED_SIZE = 2,
    COMPRESSED_DATA = 3,
};

#define TAG(field, wire) ((uint8_t)(((field) << 3) | (wire)))

/* Largest Compressed wrapper: LogEntry tag + length, codec field, size field,
 * data tag + length. */
#define WRAP_MAX (1 + 10 + 2 + 1 + 10 + 1 + 10)

/* protobuf-c allocates through the project's allocator, so allocation
 * failures can be injected in tests. */
static void *pb_alloc(void *data, size_t size)
{
    (void)data;
    return bo_malloc(size);
}

static void pb_free(void *data, void *p)
{
    (void)data;
    bo_free(p);
}

static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

/* protobuf-c's unpack returns NULL for bad bytes and for a failed allocation
 * alike; this allocator remembers the latter so the two can be told apart. */
struct pb_tracked {
    ProtobufCAllocator a;
    bool failed;
};

static void *pb_alloc_tracked(void *data, size_t size)
{
    void *p = bo_malloc(size);
    if (p == NULL) {
        ((struct pb_tracked *)data)->failed = true;
    }
    return p;
}

static void pb_tracked_init(struct pb_tracked *t)
{
    t->a = (ProtobufCAllocator){pb_alloc_tracked, pb_free, t};
    t->failed = false;
}

/* Big buffers get no huge-page advice: see codec.c (a first touch of a
 * transparent huge page costs several times more than of 4 KB pages on the
 * VMs we run on). The streaming writer keeps the big ones from existing. */
static int reserve(struct bo_buf *b, size_t extra)
{
    return bo_buf_reserve(b, extra);
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* Size of a length-delimited field with a one-byte tag and `len` bytes. */
static uint64_t field_size(uint64_t len)
{
    return 1 + bo_pb_varint_size(len) + len;
}

/* Walk the top level of a ScheduledTask encoding: checks the framing and
 * finds the length of its assigned_task (field 1). */
static int scan_partial(const uint8_t *p, size_t len, bool *has_assigned, size_t *assigned_len,
                        size_t *bad_offset)
{
    struct bo_pb_reader r;
    struct bo_pb_field f;
    int rv;
    *has_assigned = false;
    *assigned_len = 0;
    bo_pb_reader_init(&r, p, len);
    while ((rv = bo_pb_next(&r, &f)) == 1) {
        if (f.number == STASK_ASSIGNED) {
            if (f.wire_type != BO_PB_LEN) {
                *bad_offset = f.offset;
                return BO_ECORRUPT;
            }
            /* Repeated occurrences merge; their sizes add up the same way. */
            *assigned_len = *has_assigned ? *assigned_len + f.len : f.len;
            *has_assigned = true;
        }
    }
    if (rv != 0) {
        *bad_offset = bo_pb_offset(&r);
        return BO_ECORRUPT;
    }
    return BO_OK;
}

/* Size of a task's element in a plain Snapshot (field 3), from its partial
 * encoding and its config's size: the config goes back inside assigned_task
 * as field 4, which grows assigned_task's length and maybe its varint. */
static uint64_t raw_task_element(size_t partial_len, bool has_assigned, size_t assigned_len,
                                 size_t config_len)
{
    uint64_t ins = field_size(config_len);
    uint64_t full;
    if (has_assigned) {
        full = partial_len - bo_pb_varint_size(assigned_len) +
               bo_pb_varint_size(assigned_len + ins) + ins;
    } else {
        full = partial_len + field_size(ins);
    }
    return field_size(full);
}

/* Size of a task's element in a DeduplicatedSnapshot (field 2). */
static uint64_t dedup_task_body(size_t partial_len, uint32_t config_index)
{
    return field_size(partial_len) + (config_index != 0 ? 1 + bo_pb_varint_size(config_index) : 0);
}

static int scan_config(const uint8_t *p, size_t len, size_t *bad_offset)
{
    struct bo_pb_reader r;
    struct bo_pb_field f;
    int rv;
    bo_pb_reader_init(&r, p, len);
    while ((rv = bo_pb_next(&r, &f)) == 1) {
    }
    if (rv != 0) {
        *bad_offset = bo_pb_offset(&r);
        return BO_ECORRUPT;
    }
    return BO_OK;
}

static void rest_stats(const Bo__Snapshot *s, struct bo_snap_stats *st)
{
    st->hosts = s->n_host_attributes;
    st->cron_jobs = s->n_cron_jobs;
    st->quotas = s->n_quotas;
    st->job_updates = s->n_job_updates;
    st->maintenance = s->n_maintenance_requests;
    st->timestamp_ms = s->timestamp_ms;
}

/* ------------------------------------------------------ delta encoding ---- */

static uint64_t zigzag(uint64_t d)
{
    return (d << 1) ^ (uint64_t)((int64_t)d >> 63);
}

static uint64_t unzigzag(uint64_t z)
{
    return (z >> 1) ^ (0 - (z & 1));
}

/* The first event timestamps of the last three delta-encoded tasks. */
struct ts_base {
    uint64_t first[3];
};

/* Median of three, as signed values (timestamps before 1970 included). */
static uint64_t median3(const uint64_t v[3])
{
    int64_t a = (int64_t)v[0], b = (int64_t)v[1], c = (int64_t)v[2];
    if (a > b) {
        int64_t t = a;
        a = b;
        b = t;
    }
    return (uint64_t)(c <= a ? a : c >= b ? b : c);
}

/* A bare varint at *p, before `end`; false if truncated or over 10 bytes. */
static bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* Event timestamps as deltas (partial_task_delta), one direction or the
 * other. Each task_events[].timestamp_ms is taken out of its event and
 * becomes the zigzag of its difference to the timestamp before it in the
 * task, the task's first to the median of the first timestamps of the three
 * delta-encoded tasks before it (*base; zeros at the start of a snapshot):
 * one task in ten was rescheduled at a time of its own, and the median keeps
 * it from costing its successor a long difference too. The differences go,
 * in event order,
 * into one packed varint field STASK_TS_COLUMN at the end of the task. Why:
 * neighbouring tasks were mostly created within a scheduling round and their
 * events follow each other by seconds, so four 6-byte varints that zstd can
 * only half match, each breaking a run of bytes equal to the previous task's,
 * become 8-10 bytes of literals in one place, and the events in between
 * match whole. Arithmetic is modulo 2^64, so any value goes both ways.
 *
 * The result must decode to the very bytes given, so the writer takes only
 * tasks in the form protobuf-c writes: every event starts with its timestamp
 * (a one-byte tag and a shortest varint) and has no other, event headers are
 * shortest, and there is no field STASK_TS_COLUMN; anything else is BO_EINVAL
 * and the task is kept as partial_task. Decoding, BO_EINVAL means malformed.
 * *bad: the offset in `p`. `out` receives the result, `col` is scratch; *base
 * moves only on success. */
static int ts_delta(const uint8_t *p, size_t len, bool encode, struct ts_base *base,
                    struct bo_buf *out, struct bo_buf *col, size_t *bad)
{
    struct bo_pb_reader r;
    struct bo_pb_field f;
    int got;
    uint64_t ref = median3(base->first), first = 0;
    bool any = false;
    out->len = 0;
    col->len = 0;
    const uint8_t *cp = p, *cend = p; /* the column being decoded */
    if (!encode) {
        /* The column first: events need it. */
        bool found = false;
        bo_pb_reader_init(&r, p, len);
        while ((got = bo_pb_next(&r, &f)) == 1) {
            if (f.number == STASK_TS_COLUMN) {
                if (f.wire_type != BO_PB_LEN || found) {
                    *bad = f.offset;
                    return BO_EINVAL;
                }
                cp = f.data;
                cend = f.data + f.len;
                found = true;
            }
        }
    }
    bo_pb_reader_init(&r, p, len);
    while ((got = bo_pb_next(&r, &f)) == 1) {
        const uint8_t *fs = p + f.offset;
        size_t flen = (size_t)(r.p - fs);
        if (f.number == STASK_TS_COLUMN) {
            if (encode) {
                *bad = f.offset;
                return BO_EINVAL;
            }
            continue;
        }
        if (f.number != STASK_EVENTS || f.wire_type != BO_PB_LEN) {
            if (bo_buf_append(out, fs, flen) != BO_OK) {
                return BO_ENOMEM;
            }
            continue;
        }
        const uint8_t *ev = f.data;
        size_t evlen = f.len;
        uint64_t v;
        if (encode) {
            /* The timestamp: first, once, shortest. */
            struct bo_pb_reader er;
            struct bo_pb_field e;
            bo_pb_reader_init(&er, f.data, f.len);
            if (fs[0] != TAG(STASK_EVENTS, BO_PB_LEN) || flen != field_size(f.len) ||
                bo_pb_next(&er, &e) != 1 || e.number != EVENT_TIMESTAMP ||
                e.wire_type != BO_PB_VARINT || f.data[0] != TAG(EVENT_TIMESTAMP, BO_PB_VARINT) ||
                (size_t)(er.p - f.data) != 1 + bo_pb_varint_size(e.varint)) {
                *bad = f.offset;
                return BO_EINVAL;
            }
            ev = er.p;
            evlen = f.len - (size_t)(er.p - f.data);
            v = e.varint;
            while ((got = bo_pb_next(&er, &e)) == 1) {
                if (e.number == EVENT_TIMESTAMP) {
                    *bad = (size_t)(f.data - p) + e.offset;
                    return BO_EINVAL;
                }
            }
            if (got != 0) {
                *bad = (size_t)(f.data - p) + bo_pb_offset(&er);
                return BO_EINVAL;
            }
            if (bo_pb_put_varint(col, zigzag(v - ref)) != BO_OK) {
                return BO_ENOMEM;
            }
        } else {
            uint64_t d;
            if (!get_varint(&cp, cend, &d)) {
                *bad = (size_t)(cp - p);
                return BO_EINVAL;
            }
            v = ref + unzigzag(d);
        }
        ref = v;
        if (!any) {
            first = v;
            any = true;
        }
        /* The event with its timestamp taken out, or put back. */
        size_t body = encode ? evlen : 1 + bo_pb_varint_size(v) + evlen;
        if (reserve(out, 11 + body) != BO_OK) {
            return BO_ENOMEM;
        }
        uint8_t *o = out->data + out->len;
        size_t n = 0;
        o[n++] = TAG(STASK_EVENTS, BO_PB_LEN);
        n += put_varint(o + n, body);
        if (!encode) {
            o[n++] = TAG(EVENT_TIMESTAMP, BO_PB_VARINT);
            n += put_varint(o + n, v);
        }
        if (evlen > 0) {
            memcpy(o + n, ev, evlen);
        }
        out->len += n + evlen;
    }
    if (got != 0) {
        *bad = bo_pb_offset(&r);
        return BO_EINVAL;
    }
    if (encode && col->len > 0 && bo_pb_put_bytes(out, STASK_TS_COLUMN, col->data, col->len) != 0) {
        return BO_ENOMEM;
    }
    if (cp != cend) {
        *bad = (size_t)(cp - p); /* timestamps left over */
        return BO_EINVAL;
    }
    if (any) {
        base->first[2] = base->first[1];
        base->first[1] = base->first[0];
        base->first[0] = first;
    }
    return BO_OK;
}

/* ------------------------------------------------------------- splitting ---- */

int bo_snap_split_task(const Bo__ScheduledTask *task, struct bo_buf *config, struct bo_buf *partial)
{
    Bo__AssignedTask *at = task->assigned_task;
    Bo__TaskConfig empty = BO__TASK_CONFIG__INIT;
    Bo__TaskConfig *c = at != NULL && at->task != NULL ? at->task : &empty;
    int rv = bo_canon_encode_config(c, config);
    if (rv != BO_OK) {
        return rv;
    }
    /* Pack with the config detached, then put it back: the caller's task is
     * unchanged apart from the canonical order of its config's sets. */
    if (at != NULL) {
        at->task = NULL;
    }
    size_t n = protobuf_c_message_get_packed_size(&task->base);
    rv = bo_buf_reserve(partial, n);
    if (rv == BO_OK) {
        partial->len += protobuf_c_message_pack(&task->base, partial->data + partial->len);
    }
    if (at != NULL) {
        at->task = c == &empty ? NULL : c;
    }
    return rv;
}

/* --------------------------------------------------------------- writer ---- */

/* Background work gives up its CPU at least this often (see "pump"). */
#define YIELD_EVERY_NS (200 * 1000ull)

struct yield_clock {
    uint64_t last_ns;
};

struct stream_pump;

struct bo_snap_writer {
    bool dedup;
    /* Tasks delta-encoded (compressed dedup images): the entry is a
     * deduplicated_snapshot_delta and the image header version 2. */
    bool delta;
    struct ts_base ts_base; /* see ts_delta */
    struct bo_buf xform;    /* a task's delta encoding */
    struct bo_buf xev;      /* ts_delta's scratch */
    uint64_t task_elems;    /* bytes of the task elements as written */
    enum bo_codec codec;
    int level;
    /* dedup: field-3 elements; plain: the bare config encodings. */
    struct bo_buf configs;
    /* dedup: field-2 elements; plain: Snapshot field-3 elements. */
    struct bo_buf tasks;
    /* dedup: the field-1 element; plain: the Snapshot's other fields. */
    struct bo_buf rest;
    size_t rest_len; /* the bare partial Snapshot encoding's size */
    bool rest_set;
    /* Per config: where its bare encoding starts in `configs`, its size. */
    size_t *cfg_off;
    size_t *cfg_len;
    Bo__TaskConfig **cfg_unpacked; /* plain only, filled lazily */
    size_t n_cfg;
    size_t cap_cfg;
    uint64_t n_tasks;
    uint64_t raw_tasks;   /* bytes of the tasks in a plain Snapshot */
    uint64_t dedup_tasks; /* bytes of the tasks in a DeduplicatedSnapshot */
    struct bo_snap_stats stats;
    /* Streaming (dedup + zstd): config and task elements are compressed as
     * they arrive, in arrival order, instead of landing in `configs` and
     * `tasks`. `stage` gathers them into chunks for the compressor; `out`
     * holds STREAM_PREFIX reserved bytes, then the compressed body frame. */
    ZSTD_CCtx *zc;
    struct stream_pump *pump; /* NULL: the caller's thread compresses */
    struct yield_clock yield; /* the caller's thread (see "pump") */
    struct bo_buf stage;
    struct bo_buf out;
    uint64_t streamed; /* uncompressed element bytes given to the compressor */
    bool started;      /* the compressor has seen input (its parameters are set) */
    bool broken;       /* the stream lost data: every later call fails */
    size_t zerr;       /* why, if zstd said so (0: out of memory) */
};

/* Elements are handed to the compressor in chunks of about this size, once
 * compression has started; it starts when the first STREAM_MT_MIN bytes are
 * staged (on the pump's thread) or at finish (for a small snapshot starting
 * a thread costs more than it saves, as in codec.c). The pump holds one
 * chunk while the caller fills the next: a million tasks took 1.03-1.08 s
 * with chunks of 256 KB, 0.91-0.99 s with 4 MB (the caller waits less often
 * for a chunk the pump has not taken yet). */
#define STAGE_SIZE    ((size_t)4 << 20)
#define STREAM_MT_MIN ((size_t)8 << 20)

#define STREAM_WINDOW_LOG 22
#define STREAM_HASH_LOG   18
/* What zstd picks for level 3's window (it takes four windows): the last
 * jobs are compressed after the export ends, so bigger ones lengthen it. */
#define STREAM_JOB_SIZE ((int)8 << 20)

/* The compressed head frame: a zstd frame holding at most 11 bytes. */
#define HEAD_FRAME_MAX 128

/* Reserved in front of the streamed body frame: image header, Compressed
 * wrapper and the head frame, written at finish. */
#define STREAM_PREFIX (BO_SNAP_HEADER_SIZE + WRAP_MAX + HEAD_FRAME_MAX)

/* Let whatever waits for this CPU run, if YIELD_EVERY_NS has passed. */
static void maybe_yield(struct yield_clock *y)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    if (now - y->last_ns >= YIELD_EVERY_NS) {
        sched_yield();
        y->last_ns = now;
    }
}

static int stream_fail(struct bo_snap_writer *w, size_t code)
{
    if (!w->broken) {
        w->broken = true;
        w->zerr = code;
    }
    return BO_ENOMEM;
}

/* Compress `len` bytes into `out` (`end`: and close the body frame), 64 KB
 * at a time, yielding between pieces (on whichever thread compresses). */
static int stream_compress(struct bo_snap_writer *w, const uint8_t *p, size_t len, bool end,
                           struct yield_clock *y)
{
    if (w->broken) {
        return BO_ENOMEM;
    }
    const size_t piece = (size_t)64 << 10;
    ZSTD_inBuffer ib = {p, len < piece ? len : piece, 0};
    for (;;) {
        size_t room = ZSTD_CStreamOutSize();
        if (reserve(&w->out, room) != BO_OK) {
            return stream_fail(w, 0);
        }
        ZSTD_outBuffer ob = {w->out.data + w->out.len, w->out.cap - w->out.len, 0};
        size_t r = ZSTD_compressStream2(w->zc, &ob, &ib, end ? ZSTD_e_end : ZSTD_e_continue);
        w->out.len += ob.pos;
        if (ZSTD_isError(r)) {
            return stream_fail(w, r);
        }
        if (ib.pos == ib.size && ib.size < len) {
            maybe_yield(y);
            ib.size = len - ib.size < piece ? len : ib.size + piece;
            continue;
        }
        if (end ? r == 0 : ib.pos == ib.size) {
            return BO_OK;
        }
    }
}

/* ------------------------------------------------------------- pump ----
 *
 * The compressor thread of a big streaming snapshot. While the caller fills
 * `stage`, the pump compresses the chunk handed over before it: the two
 * halves of a snapshot (reading the store, compressing) overlap, as they did
 * with zstd's own worker thread, which a million tasks need to stay well
 * inside 2 s. Both threads run at the lowest priority (the caller's, which
 * the pump inherits) and yield the CPU every YIELD_EVERY_NS. That is the
 * point of having our own thread: on kernels that preempt lazily (Linux's
 * PREEMPT_NONE and PREEMPT_LAZY), a thread woken on a CPU busy with a
 * low-priority one in user space waits for the next tick, up to 4 ms, and
 * the kernel's block-I/O workers behind each log write and flush are such
 * threads; zstd's worker never yields. Commits during a snapshot of a
 * million tasks, 5,000 a second, alternating runs: p50 1.6-2.1 ms with
 * zstd's worker, 0.7-0.8 ms with the pump (docs/benchmarks.md, "Sixth
 * pass").
 *
 * Hand-over (pump_put) swaps buffers under the lock; only the pump touches
 * `zc` and `out` between its start and pump_stop. A failure is kept and
 * returned by the next hand-over and by pump_stop. */
struct stream_pump {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct bo_snap_writer *w;
    struct bo_buf in; /* a chunk to compress, while `full` */
    bool full, end, stop;
    int rv;
};

static void *pump_main(void *arg)
{
    struct stream_pump *pu = arg;
    struct yield_clock y = {0};
    pthread_mutex_lock(&pu->mu);
    for (;;) {
        while (!pu->full && !pu->stop) {
            pthread_cond_wait(&pu->cv, &pu->mu);
        }
        if (!pu->full) {
            break;
        }
        bool end = pu->end;
        pthread_mutex_unlock(&pu->mu);
        int rv =
            pu->rv == BO_OK ? stream_compress(pu->w, pu->in.data, pu->in.len, end, &y) : pu->rv;
        pthread_mutex_lock(&pu->mu);
        pu->in.len = 0;
        pu->full = false;
        pu->rv = rv;
        pthread_cond_broadcast(&pu->cv);
    }
    pthread_mutex_unlock(&pu->mu);
    return NULL;
}

/* Start the pump; NULL (compress on the caller's thread) if it cannot be. */
static struct stream_pump *pump_start(struct bo_snap_writer *w)
{
    struct stream_pump *pu = bo_calloc(1, sizeof(*pu));
    if (pu == NULL) {
        return NULL;
    }
    pu->w = w;
    pu->rv = BO_OK;
    if (pthread_mutex_init(&pu->mu, NULL) != 0) {
        goto err_after_alloc;
    }
    if (pthread_cond_init(&pu->cv, NULL) != 0) {
        goto err_after_mutex;
    }
    if (pthread_create(&pu->thread, NULL, pump_main, pu) != 0) {
        goto err_after_cond;
    }
    return pu;
err_after_cond:
    pthread_cond_destroy(&pu->cv);
err_after_mutex:
    pthread_mutex_destroy(&pu->mu);
err_after_alloc:
    bo_free(pu);
    return NULL;
}

/* Hand `b`'s bytes over (`b` gets an empty buffer back) once the pump has
 * taken the last chunk; its failure so far, if any. */
static int pump_put(struct stream_pump *pu, struct bo_buf *b, bool end)
{
    pthread_mutex_lock(&pu->mu);
    while (pu->full) {
        pthread_cond_wait(&pu->cv, &pu->mu);
    }
    int rv = pu->rv;
    if (rv == BO_OK) {
        struct bo_buf t = pu->in;
        pu->in = *b;
        *b = t;
        pu->full = true;
        pu->end = end;
        pthread_cond_broadcast(&pu->cv);
    }
    pthread_mutex_unlock(&pu->mu);
    return rv;
}

/* Wait for the pump to compress what it holds, stop it; its result. */
static int pump_stop(struct stream_pump *pu)
{
    pthread_mutex_lock(&pu->mu);
    pu->stop = true;
    pthread_cond_broadcast(&pu->cv);
    pthread_mutex_unlock(&pu->mu);
    pthread_join(pu->thread, NULL);
    int rv = pu->rv;
    pthread_cond_destroy(&pu->cv);
    pthread_mutex_destroy(&pu->mu);
    bo_buf_release(&pu->in);
    bo_free(pu);
    return rv;
}

/* Compress `len` bytes on this thread (`end`: and close the body frame). */
static int stream_feed(struct bo_snap_writer *w, const uint8_t *p, size_t len, bool end)
{
    w->started = true;
    return stream_compress(w, p, len, end, &w->yield);
}

/* Hand the staged chunk on: to the pump, which the first chunk starts. */
static int stream_flush_stage(struct bo_snap_writer *w)
{
    if (!w->started) {
        w->started = true;
        w->pump = pump_start(w);
    }
    int rv;
    if (w->pump != NULL) {
        rv = pump_put(w->pump, &w->stage, false);
    } else {
        rv = stream_feed(w, w->stage.data, w->stage.len, false);
    }
    w->stage.len = 0;
    return rv;
}

/* Room for one element of at most `max` bytes, in `stage` when streaming,
 * in `b` otherwise. */
static int element_room(struct bo_snap_writer *w, struct bo_buf *b, size_t max, struct bo_buf **dst)
{
    if (w->zc == NULL) {
        *dst = b;
        return reserve(b, max);
    }
    if (w->stage.len > 0 && w->stage.len + max > (w->started ? STAGE_SIZE : STREAM_MT_MIN)) {
        int rv = stream_flush_stage(w);
        if (rv != BO_OK) {
            return rv;
        }
    }
    *dst = &w->stage;
    return bo_buf_reserve(&w->stage, max);
}

static int stream_start(struct bo_snap_writer *w)
{
    int level = w->level == 0 ? BO_ZSTD_LEVEL_DEFAULT : w->level;
    if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
        return BO_OK; /* finish reports it, as for a buffered writer */
    }
    w->zc = ZSTD_createCCtx();
    if (w->zc == NULL) {
        return BO_ENOMEM;
    }
    size_t r = ZSTD_CCtx_setParameter(w->zc, ZSTD_c_compressionLevel, level);
    if (!ZSTD_isError(r)) {
        r = ZSTD_CCtx_setParameter(w->zc, ZSTD_c_checksumFlag, 1);
    }
    if (!ZSTD_isError(r) && w->level == 0) {
        /* The default level with a 4 MB window (2 MB: level 3's) and a hash
         * table twice level 3's: at a million tasks 1.7% smaller for about
         * the same CPU, where level 4 is 0.8% smaller for 1.2-1.3x. A
         * decoder needs the window in memory, far below zstd's default limit
         * (128 MB). */
        r = ZSTD_CCtx_setParameter(w->zc, ZSTD_c_windowLog, STREAM_WINDOW_LOG);
        if (!ZSTD_isError(r)) {
            r = ZSTD_CCtx_setParameter(w->zc, ZSTD_c_hashLog, STREAM_HASH_LOG);
        }
        if (!ZSTD_isError(r)) {
            r = ZSTD_CCtx_setParameter(w->zc, ZSTD_c_jobSize, STREAM_JOB_SIZE);
        }
    }
    if (ZSTD_isError(r) || bo_buf_reserve(&w->out, STREAM_PREFIX) != BO_OK) {
        ZSTD_freeCCtx(w->zc);
        w->zc = NULL;
        return BO_ENOMEM;
    }
    w->out.len = STREAM_PREFIX;
    return BO_OK;
}

int bo_snap_writer_new(bool dedup, enum bo_codec codec, int level, struct bo_snap_writer **out)
{
    if (codec != BO_CODEC_NONE && codec != BO_CODEC_ZLIB && codec != BO_CODEC_ZSTD) {
        return BO_EINVAL;
    }
    struct bo_snap_writer *w = bo_calloc(1, sizeof(*w));
    if (w == NULL) {
        return BO_ENOMEM;
    }
    w->dedup = dedup;
    w->delta = dedup && codec != BO_CODEC_NONE;
    w->codec = codec;
    w->level = level;
    if (dedup && codec == BO_CODEC_ZSTD && stream_start(w) != BO_OK) {
        bo_free(w);
        return BO_ENOMEM;
    }
    *out = w;
    return BO_OK;
}

void bo_snap_writer_free(struct bo_snap_writer *w)
{
    if (w == NULL) {
        return;
    }
    if (w->cfg_unpacked != NULL) {
        for (size_t i = 0; i < w->n_cfg; i++) {
            if (w->cfg_unpacked[i] != NULL) {
                protobuf_c_message_free_unpacked(&w->cfg_unpacked[i]->base, &pb_allocator);
            }
        }
    }
    bo_free(w->cfg_unpacked);
    bo_free(w->cfg_off);
    bo_free(w->cfg_len);
    bo_buf_release(&w->configs);
    bo_buf_release(&w->tasks);
    bo_buf_release(&w->rest);
    bo_buf_release(&w->xform);
    bo_buf_release(&w->xev);
    if (w->pump != NULL) {
        pump_stop(w->pump);
    }
    ZSTD_freeCCtx(w->zc);
    bo_buf_release(&w->stage);
    bo_buf_release(&w->out);
    bo_free(w);
}

static int grow_configs(struct bo_snap_writer *w)
{
    if (w->n_cfg < w->cap_cfg) {
        return BO_OK;
    }
    size_t cap = w->cap_cfg < 64 ? 64 : w->cap_cfg * 2;
    size_t *off = bo_reallocarray(w->cfg_off, cap, sizeof(*off));
    if (off == NULL) {
        return BO_ENOMEM;
    }
    w->cfg_off = off;
    size_t *len = bo_reallocarray(w->cfg_len, cap, sizeof(*len));
    if (len == NULL) {
        return BO_ENOMEM;
    }
    w->cfg_len = len;
    if (!w->dedup) {
        Bo__TaskConfig **u = bo_reallocarray(w->cfg_unpacked, cap, sizeof(*u));
        if (u == NULL) {
            return BO_ENOMEM;
        }
        memset(u + w->cap_cfg, 0, (cap - w->cap_cfg) * sizeof(*u));
        w->cfg_unpacked = u;
    }
    w->cap_cfg = cap;
    return BO_OK;
}

int bo_snap_writer_add_config(struct bo_snap_writer *w, const uint8_t *config, size_t len,
                              uint32_t *index)
{
    if (w->n_cfg >= INT32_MAX) {
        return BO_ETOOBIG;
    }
    size_t bad;
    if (scan_config(config, len, &bad) != BO_OK) {
        return BO_EINVAL;
    }
    int rv = grow_configs(w);
    if (rv != BO_OK) {
        return rv;
    }
    struct bo_buf *b;
    rv = element_room(w, &w->configs, 11 + len, &b);
    if (rv != BO_OK) {
        return rv;
    }
    uint8_t *p = b->data + b->len;
    size_t h = 0;
    if (w->dedup) {
        p[h++] = TAG(DEDUP_TASK_CONFIGS, BO_PB_LEN);
        h += put_varint(p + h, len);
    }
    if (len > 0) {
        memcpy(p + h, config, len);
    }
    w->cfg_off[w->n_cfg] = b->len + h; /* meaningless when streaming */
    w->cfg_len[w->n_cfg] = len;
    b->len += h + len;
    if (w->zc != NULL) {
        w->streamed += h + len;
    }
    *index = (uint32_t)w->n_cfg++;
    return BO_OK;
}

static int plain_add_task(struct bo_snap_writer *w, uint32_t ci, const uint8_t *partial, size_t len)
{
    struct pb_tracked pa;
    pb_tracked_init(&pa);
    if (w->cfg_unpacked[ci] == NULL) {
        w->cfg_unpacked[ci] =
            bo__task_config__unpack(&pa.a, w->cfg_len[ci], w->configs.data + w->cfg_off[ci]);
        if (w->cfg_unpacked[ci] == NULL) {
            return pa.failed ? BO_ENOMEM : BO_EINVAL;
        }
    }
    Bo__ScheduledTask *t = bo__scheduled_task__unpack(&pa.a, len, partial);
    if (t == NULL) {
        return pa.failed ? BO_ENOMEM : BO_EINVAL;
    }
    Bo__AssignedTask blank = BO__ASSIGNED_TASK__INIT;
    Bo__AssignedTask *at = t->assigned_task != NULL ? t->assigned_task : &blank;
    t->assigned_task = at;
    Bo__TaskConfig *saved = at->task;
    at->task = w->cfg_unpacked[ci];
    size_t n = bo__scheduled_task__get_packed_size(t);
    int rv = reserve(&w->tasks, 11 + n);
    if (rv == BO_OK) {
        uint8_t *p = w->tasks.data + w->tasks.len;
        size_t h = 0;
        p[h++] = TAG(SNAPSHOT_TASKS, BO_PB_LEN);
        h += put_varint(p + h, n);
        size_t packed = bo__scheduled_task__pack(t, p + h);
        assert(packed == n);
        w->tasks.len += h + packed;
    }
    at->task = saved;
    if (at == &blank) {
        t->assigned_task = NULL;
    }
    bo__scheduled_task__free_unpacked(t, &pb_allocator);
    return rv;
}

int bo_snap_writer_add_task(struct bo_snap_writer *w, uint32_t config_index, const uint8_t *partial,
                            size_t len)
{
    if (config_index >= w->n_cfg) {
        return BO_EINVAL;
    }
    bool has_assigned;
    size_t assigned_len, bad;
    if (scan_partial(partial, len, &has_assigned, &assigned_len, &bad) != BO_OK) {
        return BO_EINVAL;
    }
    size_t clen = w->cfg_len[config_index];
    w->raw_tasks += raw_task_element(len, has_assigned, assigned_len, clen);
    uint64_t body = dedup_task_body(len, config_index);
    w->dedup_tasks += field_size(body);
    w->n_tasks++;
    if ((w->n_tasks & 255) == 0) {
        maybe_yield(&w->yield);
    }
    if (!w->dedup) {
        int rv = plain_add_task(w, config_index, partial, len);
        if (rv != BO_OK) {
            w->n_tasks--;
            w->raw_tasks -= raw_task_element(len, has_assigned, assigned_len, clen);
            w->dedup_tasks -= field_size(body);
        }
        return rv;
    }
    uint8_t field = DTASK_PARTIAL;
    const uint8_t *elem = partial;
    size_t elen = len;
    struct ts_base base = w->ts_base;
    int rv = BO_OK;
    if (w->delta) {
        rv = ts_delta(partial, len, true, &base, &w->xform, &w->xev, &bad);
        if (rv == BO_OK) {
            field = DTASK_PARTIAL_DELTA;
            elem = w->xform.data;
            elen = w->xform.len;
        } else if (rv == BO_EINVAL) {
            rv = BO_OK; /* not in minimal form: kept as it is */
        }
    }
    struct bo_buf *b = NULL;
    if (rv == BO_OK) {
        rv = element_room(w, &w->tasks, 1 + 10 + 1 + 10 + elen + 1 + 5, &b);
    }
    if (rv != BO_OK) {
        w->n_tasks--;
        w->raw_tasks -= raw_task_element(len, has_assigned, assigned_len, clen);
        w->dedup_tasks -= field_size(body);
        return rv;
    }
    w->ts_base = base;
    uint8_t *p = b->data + b->len;
    size_t h = 0;
    p[h++] = TAG(DEDUP_PARTIAL_TASKS, BO_PB_LEN);
    h += put_varint(p + h, dedup_task_body(elen, config_index));
    p[h++] = TAG(field, BO_PB_LEN);
    h += put_varint(p + h, elen);
    if (elen > 0) {
        memcpy(p + h, elem, elen);
    }
    h += elen;
    if (config_index != 0) {
        p[h++] = TAG(DTASK_CONFIG_ID, BO_PB_VARINT);
        h += put_varint(p + h, config_index);
    }
    b->len += h;
    w->task_elems += h;
    if (w->zc != NULL) {
        w->streamed += h;
    }
    return BO_OK;
}

int bo_snap_writer_set_rest(struct bo_snap_writer *w, const Bo__Snapshot *partial)
{
    if (partial->n_tasks != 0) {
        return BO_EINVAL;
    }
    size_t n = bo__snapshot__get_packed_size(partial);
    w->rest.len = 0;
    int rv = bo_buf_reserve(&w->rest, 11 + n);
    if (rv != BO_OK) {
        return rv;
    }
    uint8_t *p = w->rest.data;
    size_t h = 0;
    if (w->dedup) {
        p[h++] = TAG(DEDUP_PARTIAL_SNAPSHOT, BO_PB_LEN);
        h += put_varint(p + h, n);
    }
    w->rest.len = h + bo__snapshot__pack(partial, p + h);
    w->rest_len = n;
    w->rest_set = true;
    rest_stats(partial, &w->stats);
    return BO_OK;
}

/* Fill the 32-byte header at `h` for the payload that follows it. */
static void write_header(uint8_t *h, uint32_t version, size_t payload_len)
{
    memcpy(h, BO_SNAP_MAGIC, 8);
    put_le32(h + 8, version);
    put_le32(h + 12, 0);
    put_le64(h + 16, payload_len);
    put_le32(h + 24, bo_crc32(0, h + BO_SNAP_HEADER_SIZE, payload_len));
    put_le32(h + 28, bo_crc32(0, h, 28));
}

int bo_snap_wrap_image(const uint8_t *payload, size_t len, struct bo_buf *image)
{
    size_t base = image->len;
    int rv = reserve(image, BO_SNAP_HEADER_SIZE + len);
    if (rv != BO_OK) {
        return rv;
    }
    image->len += BO_SNAP_HEADER_SIZE;
    bo_buf_append(image, payload, len);
    /* The payload is not looked into: the version says it may hold anything. */
    write_header(image->data + base, BO_SNAP_VERSION, len);
    return BO_OK;
}

/* Write the Compressed wrapper for `clen` bytes of data holding `inner_len`
 * uncompressed ones into `wrap` (WRAP_MAX bytes); returns its size. */
static size_t compressed_wrap(uint8_t *wrap, enum bo_codec codec, size_t inner_len, size_t clen)
{
    size_t body = 2 + 1 + bo_pb_varint_size(inner_len) + field_size(clen);
    size_t wl = 0;
    wrap[wl++] = TAG(LOGENTRY_COMPRESSED, BO_PB_LEN);
    wl += put_varint(wrap + wl, body);
    wrap[wl++] = TAG(COMPRESSED_CODEC, BO_PB_VARINT);
    wrap[wl++] = (uint8_t)codec;
    wrap[wl++] = TAG(COMPRESSED_SIZE, BO_PB_VARINT);
    wl += put_varint(wrap + wl, inner_len);
    wrap[wl++] = TAG(COMPRESSED_DATA, BO_PB_LEN);
    wl += put_varint(wrap + wl, clen);
    return wl;
}

/* Streaming finish: close the body frame with the rest, compress the head
 * (which needs the total size, known only now) as a frame of its own, and
 * lay out header slot, wrapper, head frame and body frame in `image`. The
 * data is then two zstd frames, which a decoder reads as one stream. The
 * image header itself is left to the caller. */
static int stream_finish(struct bo_snap_writer *w, const uint8_t *head, size_t hlen,
                         size_t inner_len, struct bo_buf *image, struct bo_err *err)
{
    int rv = BO_OK;
    if (w->started) {
        rv = stream_flush_stage(w);
    } else if (bo_buf_append(&w->stage, w->rest.data, w->rest.len) != BO_OK) {
        rv = stream_fail(w, 0);
    }
    if (w->pump != NULL) {
        if (rv == BO_OK) {
            rv = bo_buf_append(&w->stage, w->rest.data, w->rest.len) == BO_OK
                     ? pump_put(w->pump, &w->stage, true)
                     : BO_ENOMEM;
        }
        int prv = pump_stop(w->pump);
        w->pump = NULL;
        rv = rv != BO_OK ? rv : prv;
        if (rv != BO_OK) {
            stream_fail(w, 0); /* keeps the pump's zstd error, if it had one */
        }
    } else if (rv == BO_OK) {
        rv = w->started ? stream_feed(w, w->rest.data, w->rest.len, true)
                        : stream_feed(w, w->stage.data, w->stage.len, true);
    }
    uint8_t hf[HEAD_FRAME_MAX];
    size_t hfl = 0;
    if (rv == BO_OK) {
        ZSTD_CCtx_reset(w->zc, ZSTD_reset_session_only);
        hfl = ZSTD_compress2(w->zc, hf, sizeof(hf), head, hlen);
        if (ZSTD_isError(hfl)) {
            rv = stream_fail(w, hfl);
        }
    }
    if (rv != BO_OK) {
        if (w->zerr != 0) {
            return bo_errf(err, BO_EINTERNAL, "finish snapshot: zstd compress: %s",
                           ZSTD_getErrorName(w->zerr));
        }
        return bo_errf(err, BO_ENOMEM, "finish snapshot: out of memory");
    }
    size_t body_len = w->out.len - STREAM_PREFIX;
    size_t clen = hfl + body_len;
    uint8_t wrap[WRAP_MAX];
    size_t wl = compressed_wrap(wrap, BO_CODEC_ZSTD, inner_len, clen);
    size_t front = BO_SNAP_HEADER_SIZE + wl + hfl;
    assert(front <= STREAM_PREFIX);
    if (image->len == 0) {
        /* Hand our buffer over rather than copying a hundred MB. */
        uint8_t *p = w->out.data + STREAM_PREFIX - front;
        memcpy(p + BO_SNAP_HEADER_SIZE, wrap, wl);
        memcpy(p + BO_SNAP_HEADER_SIZE + wl, hf, hfl);
        memmove(w->out.data, p, front + body_len);
        bo_buf_release(image);
        *image = w->out;
        image->len = front + body_len;
        w->out = (struct bo_buf)BO_BUF_INIT;
        return BO_OK;
    }
    if (reserve(image, front + body_len) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "finish snapshot: out of memory (%zu bytes)",
                       front + body_len);
    }
    uint8_t *p = image->data + image->len;
    memcpy(p + BO_SNAP_HEADER_SIZE, wrap, wl);
    memcpy(p + BO_SNAP_HEADER_SIZE + wl, hf, hfl);
    memcpy(p + front, w->out.data + STREAM_PREFIX, body_len);
    image->len += front + body_len;
    return BO_OK;
}

int bo_snap_writer_finish(struct bo_snap_writer *w, struct bo_buf *image,
                          struct bo_snap_stats *stats, struct bo_err *err)
{
    /* A writer never given the rest still writes a (empty) partial Snapshot,
     * so readers always find field 1. */
    if (!w->rest_set) {
        Bo__Snapshot empty = BO__SNAPSHOT__INIT;
        if (bo_snap_writer_set_rest(w, &empty) != BO_OK) {
            return bo_errf(err, BO_ENOMEM, "finish snapshot: out of memory");
        }
    }
    uint64_t cfg_elems = 0;
    for (size_t i = 0; i < w->n_cfg; i++) {
        cfg_elems += field_size(w->cfg_len[i]);
    }
    uint64_t dedup_body = cfg_elems + w->dedup_tasks + field_size(w->rest_len);
    uint64_t raw_body = w->rest_len + w->raw_tasks;
    /* What is written: differs from dedup_body where tasks are delta-encoded. */
    uint64_t body = w->dedup ? cfg_elems + w->task_elems + field_size(w->rest_len) : raw_body;

    /* The inner LogEntry: its header, then the pieces. */
    uint8_t head[11];
    size_t hlen = 0;
    head[hlen++] = !w->dedup  ? TAG(LOGENTRY_SNAPSHOT, BO_PB_LEN)
                   : w->delta ? TAG(LOGENTRY_DEDUP_DELTA, BO_PB_LEN)
                              : TAG(LOGENTRY_DEDUP, BO_PB_LEN);
    hlen += put_varint(head + hlen, body);
    struct iovec iov[4];
    int n = 0;
    iov[n++] = (struct iovec){head, hlen};
    if (w->dedup) {
        iov[n++] = (struct iovec){w->configs.data, w->configs.len};
        iov[n++] = (struct iovec){w->tasks.data, w->tasks.len};
        iov[n++] = (struct iovec){w->rest.data, w->rest.len};
    } else {
        iov[n++] = (struct iovec){w->rest.data, w->rest.len};
        iov[n++] = (struct iovec){w->tasks.data, w->tasks.len};
    }
    size_t inner_len = hlen + (w->dedup ? w->configs.len : 0) + w->tasks.len + w->rest.len;
    if (w->zc != NULL) {
        inner_len = hlen + w->streamed + w->rest.len;
    }
    assert(inner_len == hlen + body);

    size_t base = image->len;
    size_t payload_len;
    int rv;
    if (w->zc != NULL) {
        rv = stream_finish(w, head, hlen, inner_len, image, err);
        if (rv != BO_OK) {
            return rv;
        }
        payload_len = image->len - base - BO_SNAP_HEADER_SIZE;
    } else if (w->codec == BO_CODEC_NONE) {
        if (reserve(image, BO_SNAP_HEADER_SIZE + inner_len) != BO_OK) {
            return bo_errf(err, BO_ENOMEM, "finish snapshot: out of memory (%zu bytes)", inner_len);
        }
        image->len += BO_SNAP_HEADER_SIZE;
        bo_codec_compress_iov(BO_CODEC_NONE, 0, iov, n, image, err);
        payload_len = inner_len;
    } else {
        if (bo_buf_reserve(image, BO_SNAP_HEADER_SIZE + WRAP_MAX) != BO_OK) {
            return bo_errf(err, BO_ENOMEM, "finish snapshot: out of memory");
        }
        image->len += BO_SNAP_HEADER_SIZE + WRAP_MAX;
        rv = bo_codec_compress_iov(w->codec, w->level, iov, n, image, err);
        if (rv != BO_OK) {
            image->len = base;
            return bo_err_wrapf(err, rv, "finish snapshot");
        }
        size_t clen = image->len - base - BO_SNAP_HEADER_SIZE - WRAP_MAX;
        uint8_t wrap[WRAP_MAX];
        size_t wl = compressed_wrap(wrap, w->codec, inner_len, clen);
        uint8_t *start = image->data + base + BO_SNAP_HEADER_SIZE;
        memmove(start + wl, start + WRAP_MAX, clen);
        memcpy(start, wrap, wl);
        payload_len = wl + clen;
        image->len = base + BO_SNAP_HEADER_SIZE + payload_len;
    }
    write_header(image->data + base, w->delta ? BO_SNAP_VERSION : BO_SNAP_VERSION_BASE,
                 payload_len);

    if (stats != NULL) {
        *stats = w->stats;
        stats->tasks = w->n_tasks;
        stats->configs = w->n_cfg;
        stats->raw_bytes = field_size(raw_body);
        stats->dedup_bytes = field_size(dedup_body);
        stats->payload_bytes = payload_len;
        stats->codec = w->codec;
        stats->deduplicated = w->dedup;
    }
    return BO_OK;
}

/* --------------------------------------------------------------- reader ---- */

/* Distinct canonical configs met while reading a plain Snapshot, by content. */
struct cfg_table {
    struct bo_buf bytes;  /* the configs, back to back */
    size_t *off;          /* per index: offset in bytes */
    struct bo_hash128 *h; /* per index: hash */
    uint32_t *slots;      /* open addressing: index + 1, 0 = empty */
    size_t n_slots;       /* a power of two */
    size_t cap;           /* entries off and h have room for */
};

struct reader {
    const struct bo_snap_visitor *v;
    struct bo_snap_stats *st;
    struct bo_err *err;
    /* Where the buffer being walked sits, for error messages. */
    const uint8_t *origin;
    size_t base;
    const char *where;
    /* Sizes of the configs by index (raw_bytes needs them). */
    size_t *cfg_len;
    size_t n_cfg;
    size_t cap_cfg;
    struct cfg_table table;
    bool table_built;
    uint64_t raw_tasks;
    uint64_t dedup_tasks;
    uint64_t task_elems; /* bytes of DeduplicatedSnapshot.partial_tasks as read */
    uint64_t cfg_elems;
    /* Undoing delta encoding (ts_delta). */
    struct ts_base ts_base;
    struct bo_buf xform;
    struct bo_buf xev;
    /* Set while a delta entry is walked as it is decompressed. */
    struct feed *feed;
};

static size_t offset_of(const struct reader *r, const uint8_t *p)
{
    return r->base + (size_t)(p - r->origin);
}

static int corrupt(struct reader *r, const uint8_t *p, const char *what)
{
    return bo_errf(r->err, BO_ECORRUPT, "read snapshot: %s at offset %zu of the %s", what,
                   offset_of(r, p), r->where);
}

static int push_config_len(struct reader *r, size_t len)
{
    if (r->n_cfg >= INT32_MAX) {
        return bo_errf(r->err, BO_ECORRUPT, "read snapshot: more than %d configs", INT32_MAX);
    }
    if (r->n_cfg == r->cap_cfg) {
        size_t cap = r->cap_cfg < 64 ? 64 : r->cap_cfg * 2;
        size_t *p = bo_reallocarray(r->cfg_len, cap, sizeof(*p));
        if (p == NULL) {
            return bo_errf(r->err, BO_ENOMEM, "read snapshot: out of memory");
        }
        r->cfg_len = p;
        r->cap_cfg = cap;
    }
    r->cfg_len[r->n_cfg++] = len;
    r->cfg_elems += field_size(len);
    return BO_OK;
}

static void table_release(struct cfg_table *t)
{
    bo_buf_release(&t->bytes);
    bo_free(t->off);
    bo_free(t->h);
    bo_free(t->slots);
    memset(t, 0, sizeof(*t));
}

static int table_grow(struct cfg_table *t, size_t n)
{
    /* Keep the load factor at or below one half. */
    if (n * 2 < t->n_slots) {
        return BO_OK;
    }
    size_t ns = t->n_slots == 0 ? 1024 : t->n_slots * 2;
    uint32_t *slots = bo_calloc(ns, sizeof(*slots));
    if (slots == NULL) {
        return BO_ENOMEM;
    }
    for (size_t i = 0; i < t->n_slots; i++) {
        if (t->slots[i] != 0) {
            size_t j = t->h[t->slots[i] - 1].lo & (ns - 1);
            while (slots[j] != 0) {
                j = (j + 1) & (ns - 1);
            }
            slots[j] = t->slots[i];
        }
    }
    bo_free(t->slots);
    t->slots = slots;
    t->n_slots = ns;
    return BO_OK;
}

/* Find `cfg` in the table, or add it as config number r->n_cfg (calling the
 * visitor). *index receives its number. */
static int table_intern(struct reader *r, const uint8_t *cfg, size_t len, uint32_t *index)
{
    struct cfg_table *t = &r->table;
    int rv = table_grow(t, r->n_cfg + 1);
    if (rv != BO_OK) {
        return bo_errf(r->err, rv, "read snapshot: out of memory");
    }
    struct bo_hash128 h = bo_hash128(cfg, len);
    size_t j = h.lo & (t->n_slots - 1);
    while (t->slots[j] != 0) {
        uint32_t i = t->slots[j] - 1;
        if (t->h[i].lo == h.lo && t->h[i].hi == h.hi && r->cfg_len[i] == len &&
            (len == 0 || memcmp(t->bytes.data + t->off[i], cfg, len) == 0)) {
            *index = i;
            return BO_OK;
        }
        j = (j + 1) & (t->n_slots - 1);
    }
    uint32_t i = (uint32_t)r->n_cfg;
    if (t->cap <= i) {
        size_t cap = t->cap < 64 ? 64 : t->cap * 2;
        size_t *off = bo_reallocarray(t->off, cap, sizeof(*off));
        if (off == NULL) {
            return bo_errf(r->err, BO_ENOMEM, "read snapshot: out of memory");
        }
        t->off = off;
        struct bo_hash128 *hs = bo_reallocarray(t->h, cap, sizeof(*hs));
        if (hs == NULL) {
            return bo_errf(r->err, BO_ENOMEM, "read snapshot: out of memory");
        }
        t->h = hs;
        t->cap = cap;
    }
    rv = push_config_len(r, len);
    if (rv != BO_OK) {
        return rv;
    }
    t->off[i] = t->bytes.len;
    t->h[i] = h;
    if (bo_buf_append(&t->bytes, cfg, len) != BO_OK) {
        r->n_cfg--;
        return bo_errf(r->err, BO_ENOMEM, "read snapshot: out of memory");
    }
    t->slots[j] = i + 1;
    *index = i;
    if (r->v != NULL && r->v->config != NULL) {
        return r->v->config(r->v->data, i, cfg, len);
    }
    return BO_OK;
}

/* A full task (from a plain Snapshot, or left in a partial one): split it,
 * intern its config, hand both to the visitor. */
static int visit_full_task(struct reader *r, Bo__ScheduledTask *t, struct bo_buf *cfg,
                           struct bo_buf *partial)
{
    cfg->len = 0;
    partial->len = 0;
    if (bo_snap_split_task(t, cfg, partial) != BO_OK) {
        return bo_errf(r->err, BO_ENOMEM, "read snapshot: out of memory");
    }
    uint32_t ci;
    int rv = table_intern(r, cfg->data, cfg->len, &ci);
    if (rv != BO_OK) {
        return rv;
    }
    r->dedup_tasks += field_size(dedup_task_body(partial->len, ci));
    r->st->tasks++;
    if (r->v != NULL && r->v->task != NULL) {
        return r->v->task(r->v->data, ci, partial->data, partial->len);
    }
    return BO_OK;
}

/* Hand the rest to the visitor after dealing with tasks left inside it. */
static int visit_rest(struct reader *r, Bo__Snapshot *rest)
{
    int rv = BO_OK;
    if (rest->n_tasks > 0) {
        struct bo_buf cfg = BO_BUF_INIT, partial = BO_BUF_INIT;
        for (size_t i = 0; i < rest->n_tasks && rv == BO_OK; i++) {
            rv = visit_full_task(r, rest->tasks[i], &cfg, &partial);
        }
        bo_buf_release(&cfg);
        bo_buf_release(&partial);
        for (size_t i = 0; i < rest->n_tasks; i++) {
            protobuf_c_message_free_unpacked(&rest->tasks[i]->base, &pb_allocator);
        }
        bo_free(rest->tasks);
        rest->tasks = NULL;
        rest->n_tasks = 0;
        if (rv != BO_OK) {
            return rv;
        }
    }
    rest_stats(rest, r->st);
    if (r->v != NULL && r->v->rest != NULL) {
        return r->v->rest(r->v->data, rest);
    }
    return BO_OK;
}

static int read_plain(struct reader *r, const uint8_t *data, size_t len)
{
    struct bo_buf rest_bytes = BO_BUF_INIT, cfg = BO_BUF_INIT, partial = BO_BUF_INIT;
    struct bo_pb_reader pr;
    struct bo_pb_field f;
    int rv = BO_OK, got;
    bo_pb_reader_init(&pr, data, len);
    while ((got = bo_pb_next(&pr, &f)) == 1) {
        const uint8_t *field_start = data + f.offset;
        if (f.number != SNAPSHOT_TASKS) {
            /* Everything but tasks is kept, header and all, for the rest. */
            if (bo_buf_append(&rest_bytes, field_start, (size_t)(pr.p - field_start)) != BO_OK) {
                rv = bo_errf(r->err, BO_ENOMEM, "read snapshot: out of memory");
                goto cleanup;
            }
            continue;
        }
        if (f.wire_type != BO_PB_LEN) {
            rv = corrupt(r, field_start, "task with a bad wire type");
            goto cleanup;
        }
        struct pb_tracked pa;
        pb_tracked_init(&pa);
        Bo__ScheduledTask *t = bo__scheduled_task__unpack(&pa.a, f.len, f.data);
        if (t == NULL) {
            rv = pa.failed ? bo_errf(r->err, BO_ENOMEM, "read snapshot: out of memory")
                           : corrupt(r, f.data, "task that does not decode");
            goto cleanup;
        }
        r->raw_tasks += (uint64_t)(pr.p - field_start);
        rv = visit_full_task(r, t, &cfg, &partial);
        bo__scheduled_task__free_unpacked(t, &pb_allocator);
        if (rv != BO_OK) {
            goto cleanup;
        }
    }
    if (got != 0) {
        rv = corrupt(r, pr.p, "malformed snapshot field");
        goto cleanup;
    }
    struct pb_tracked pa;
    pb_tracked_init(&pa);
    Bo__Snapshot *rest = bo__snapshot__unpack(&pa.a, rest_bytes.len, rest_bytes.data);
    if (rest == NULL) {
        rv = pa.failed ? bo_errf(r->err, BO_ENOMEM, "read snapshot: out of memory")
                       : corrupt(r, data, "snapshot that does not decode");
        goto cleanup;
    }
    r->st->raw_bytes = field_size(len);
    r->st->dedup_bytes = field_size(r->cfg_elems + r->dedup_tasks + field_size(rest_bytes.len));
    r->st->deduplicated = false;
    rv = visit_rest(r, rest);
    bo__snapshot__free_unpacked(rest, &pb_allocator);

cleanup:
    bo_buf_release(&rest_bytes);
    bo_buf_release(&cfg);
    bo_buf_release(&partial);
    return rv;
}

/* Put the configs already met in a DeduplicatedSnapshot into the table, for
 * full tasks found in its partial Snapshot. */
static int build_table_from_dedup(struct reader *r, const uint8_t *data, size_t len)
{
    size_t n = r->n_cfg;
    r->n_cfg = 0;
    r->cfg_elems = 0;
    struct bo_pb_reader pr;
    struct bo_pb_field f;
    bo_pb_reader_init(&pr, data, len);
    const struct bo_snap_visitor *v = r->v;
    r->v = NULL; /* already visited */
    int rv = BO_OK;
    while (rv == BO_OK && bo_pb_next(&pr, &f) == 1) {
        if (f.number == DEDUP_TASK_CONFIGS) {
            uint32_t ci;
            size_t before = r->n_cfg;
            rv = table_intern(r, f.data, f.len, &ci);
            if (rv == BO_OK && r->n_cfg == before) {
                /* A duplicate among the listed configs keeps its own number. */
                rv = push_config_len(r, f.len);
            }
        }
    }
    r->v = v;
    assert(rv != BO_OK || r->n_cfg == n);
    (void)n;
    return rv;
}

/* ---------------------------------------------------------------- feed ---- */

/* Decompressing a zstd payload on a thread of its own while the walk follows
 * it (restore: the visitor's inserts and the decompression overlap on two
 * cores). The thread writes the output front to back into a buffer of the
 * recorded size and publishes how much is written (`avail`, release) after
 * every step of at most FEED_STEP; the walker reads a byte only after seeing
 * it published (acquire), so no byte is read while it is written. The thread
 * touches nothing but the input, the output and this struct (no bo_malloc:
 * its test hooks are not thread-safe), stops early when `cancel` is set, and
 * is always joined before the walk returns. Its error, if any, wins over the
 * walk's: the walk may have choked on what damaged data decoded to before the
 * decoder saw the damage. */
struct feed {
    const uint8_t *in;
    size_t in_len;
    uint8_t *out;
    size_t expected;
    size_t in_offset;  /* of `in`, for messages */
    const char *where; /* of `in`, for messages */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic size_t avail;
    atomic_bool cancel;
    bool done;         /* under mu */
    int rv;            /* under mu, once done */
    struct bo_err err; /* under mu, once done */
};

#define FEED_STEP ((size_t)1 << 20)
/* Smaller payloads are decompressed before the walk, on the calling thread. */
#define FEED_MIN ((size_t)8 << 20)

static void feed_publish(struct feed *fd, size_t pos, bool done, int rv, const struct bo_err *err)
{
    pthread_mutex_lock(&fd->mu);
    atomic_store_explicit(&fd->avail, pos, memory_order_release);
    if (done) {
        fd->done = true;
        fd->rv = rv;
        fd->err = *err;
    }
    pthread_cond_broadcast(&fd->cv);
    pthread_mutex_unlock(&fd->mu);
}

/* codec.c's zstd_decompress, checks and messages alike, into a buffer of
 * exactly the recorded size. */
static void *feed_main(void *arg)
{
    struct feed *fd = arg;
    struct bo_err err = BO_ERR_INIT;
    int rv = BO_OK;
    size_t pos = 0;
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (d == NULL) {
        rv = bo_errf(&err, BO_ENOMEM, "zstd decompress: out of memory for the context");
    }
    ZSTD_inBuffer ib = {fd->in, fd->in_len, 0};
    size_t zr = 1;
    while (rv == BO_OK && (ib.pos < ib.size || zr != 0)) {
        if (atomic_load_explicit(&fd->cancel, memory_order_relaxed)) {
            rv = BO_ECANCELED;
            break;
        }
        /* Past the recorded size any output is too much: `spill` sees it. */
        uint8_t spill[64];
        size_t step = fd->expected - pos < FEED_STEP ? fd->expected - pos : FEED_STEP;
        ZSTD_outBuffer ob = {step > 0 ? fd->out + pos : spill, step > 0 ? step : sizeof(spill), 0};
        size_t before = ib.pos;
        zr = ZSTD_decompressStream(d, &ob, &ib);
        if (ZSTD_isError(zr)) {
            rv = bo_errf(&err, BO_ECORRUPT, "zstd decompress: %s near offset %zu",
                         ZSTD_getErrorName(zr), ib.pos);
        } else if (step == 0 && ob.pos > 0) {
            rv = bo_errf(&err, BO_ECORRUPT,
                         "zstd decompress: more than the %zu bytes recorded (at offset %zu)",
                         fd->expected, ib.pos);
        } else if (ib.pos == ib.size && ob.pos == 0 && before == ib.pos && zr != 0) {
            rv = bo_errf(&err, BO_ECORRUPT, "zstd decompress: input truncated at offset %zu",
                         ib.pos);
        } else if (ob.pos > 0) {
            pos += ob.pos;
            feed_publish(fd, pos, false, BO_OK, NULL);
        }
    }
    if (rv == BO_OK && pos != fd->expected) {
        rv = bo_errf(&err, BO_ECORRUPT, "zstd decompress: got %zu bytes, %zu were recorded", pos,
                     fd->expected);
    }
    ZSTD_freeDCtx(d);
    feed_publish(fd, pos, true, rv, &err);
    return NULL;
}

/* The thread's error as the reader reports a decompression error. */
static int feed_error(struct reader *r, struct feed *fd, int rv, const struct bo_err *err)
{
    return bo_errf(r->err, rv, "read snapshot: compressed data at offset %zu of the %s: %s",
                   fd->in_offset, fd->where, bo_err_msg(err, rv));
}

/* Wait until the output is there up to `end`. BO_OK, or the thread's error
 * when it stopped short of it. */
static int feed_need(struct reader *r, const uint8_t *end)
{
    struct feed *fd = r->feed;
    if (fd == NULL) {
        return BO_OK;
    }
    size_t n = (size_t)(end - fd->out);
    n = n < fd->expected ? n : fd->expected;
    if (atomic_load_explicit(&fd->avail, memory_order_acquire) >= n) {
        return BO_OK;
    }
    pthread_mutex_lock(&fd->mu);
    while (atomic_load_explicit(&fd->avail, memory_order_acquire) < n && !fd->done) {
        pthread_cond_wait(&fd->cv, &fd->mu);
    }
    bool short_of = atomic_load_explicit(&fd->avail, memory_order_acquire) < n;
    int rv = fd->rv;
    struct bo_err err = fd->err;
    pthread_mutex_unlock(&fd->mu);
    if (!short_of) {
        return BO_OK;
    }
    /* Only an error stops the thread short of the recorded size. */
    assert(rv != BO_OK);
    return feed_error(r, fd, rv, &err);
}

/* The next field of `pr`, its bytes there to read (1), the end (0), or an
 * error: BO_ECORRUPT for bad framing (the caller reports it), otherwise the
 * thread's, already in r->err (*feed_rv). */
static int next_field(struct reader *r, struct bo_pb_reader *pr, struct bo_pb_field *f,
                      int *feed_rv)
{
    /* A field header is at most 15 bytes: a 5-byte tag and a 10-byte length. */
    size_t left = (size_t)(pr->end - pr->p);
    *feed_rv = feed_need(r, pr->p + (left < 15 ? left : 15));
    if (*feed_rv != BO_OK) {
        return *feed_rv;
    }
    int got = bo_pb_next(pr, f);
    if (got == 1 && f->wire_type == BO_PB_LEN) {
        *feed_rv = feed_need(r, f->data + f->len);
        if (*feed_rv != BO_OK) {
            return *feed_rv;
        }
    }
    return got;
}

/* One element of DeduplicatedSnapshot.partial_tasks (`f`), in a delta entry
 * or not. */
static int read_dedup_task(struct reader *r, const struct bo_pb_field *f, bool delta)
{
    if (f->wire_type != BO_PB_LEN) {
        return corrupt(r, f->data, "deduplicated task with a bad wire type");
    }
    struct bo_pb_reader tr;
    struct bo_pb_field tf;
    const uint8_t *partial = NULL;
    size_t plen = 0;
    uint64_t ci = 0;
    bool encoded = false;
    int got, rv;
    bo_pb_reader_init(&tr, f->data, f->len);
    while ((got = bo_pb_next(&tr, &tf)) == 1) {
        if (tf.number == DTASK_PARTIAL || tf.number == DTASK_PARTIAL_DELTA) {
            if (tf.wire_type != BO_PB_LEN || partial != NULL) {
                return corrupt(r, f->data + tf.offset, "bad partial task field");
            }
            if (tf.number == DTASK_PARTIAL_DELTA && !delta) {
                return corrupt(r, f->data + tf.offset,
                               "delta-encoded task outside a deduplicated_snapshot_delta");
            }
            partial = tf.data;
            plen = tf.len;
            encoded = tf.number == DTASK_PARTIAL_DELTA;
        } else if (tf.number == DTASK_CONFIG_ID) {
            if (tf.wire_type != BO_PB_VARINT) {
                return corrupt(r, f->data + tf.offset, "bad task config id field");
            }
            ci = tf.varint;
        }
    }
    if (got != 0) {
        return corrupt(r, tr.p, "malformed deduplicated task");
    }
    if (ci >= r->n_cfg) {
        char what[96];
        snprintf(what, sizeof(what), "task config id %llu out of range (%zu configs)",
                 (unsigned long long)ci, r->n_cfg);
        return corrupt(r, f->data, what);
    }
    if (partial == NULL) {
        partial = f->data; /* an empty partial task */
    }
    size_t bad;
    if (encoded) {
        rv = ts_delta(partial, plen, false, &r->ts_base, &r->xform, &r->xev, &bad);
        if (rv == BO_ENOMEM) {
            return bo_errf(r->err, BO_ENOMEM, "read snapshot: out of memory");
        }
        if (rv != BO_OK) {
            return corrupt(r, partial + bad, "malformed delta-encoded task");
        }
        partial = r->xform.data;
        plen = r->xform.len;
    }
    bool has_assigned;
    size_t alen;
    if (scan_partial(partial, plen, &has_assigned, &alen, &bad) != BO_OK) {
        /* Only a delta encoding's inverse can be outside the image. */
        return encoded ? corrupt(r, f->data, "malformed delta-encoded task")
                       : corrupt(r, partial + bad, "malformed partial task");
    }
    r->raw_tasks += raw_task_element(plen, has_assigned, alen, r->cfg_len[ci]);
    r->dedup_tasks += field_size(dedup_task_body(plen, (uint32_t)ci));
    r->task_elems += field_size(f->len);
    r->st->tasks++;
    if (r->v != NULL && r->v->task != NULL) {
        return r->v->task(r->v->data, (uint32_t)ci, partial, plen);
    }
    return BO_OK;
}

/* A DeduplicatedSnapshot. In a deduplicated_snapshot_delta (`delta`) a task's
 * config comes before it, so one pass serves; otherwise configs first, then
 * tasks, so any field order works. */
static int read_dedup(struct reader *r, const uint8_t *data, size_t len, bool delta)
{
    struct bo_pb_reader pr;
    struct bo_pb_field f;
    int rv, got;
    const uint8_t *rest_data = NULL;
    size_t rest_len = 0;

    /* Pass 1: configs (and tasks of a delta entry), framing, and where the
     * partial Snapshot is. */
    int feed_rv;
    bo_pb_reader_init(&pr, data, len);
    while ((got = next_field(r, &pr, &f, &feed_rv)) == 1) {
        const uint8_t *field_start = data + f.offset;
        if (f.number > DEDUP_TASK_CONFIGS) {
            continue;
        }
        if (f.wire_type != BO_PB_LEN) {
            return corrupt(r, field_start, "deduplicated snapshot field with a bad wire type");
        }
        if (f.number == DEDUP_PARTIAL_SNAPSHOT) {
            if (rest_data != NULL) {
                return corrupt(r, field_start, "second partial snapshot");
            }
            rest_data = f.data;
            rest_len = f.len;
        } else if (f.number == DEDUP_TASK_CONFIGS) {
            size_t bad;
            if (scan_config(f.data, f.len, &bad) != BO_OK) {
                return corrupt(r, f.data + bad, "malformed task config");
            }
            uint32_t ci = (uint32_t)r->n_cfg;
            rv = push_config_len(r, f.len);
            if (rv != BO_OK) {
                return rv;
            }
            if (r->v != NULL && r->v->config != NULL) {
                rv = r->v->config(r->v->data, ci, f.data, f.len);
                if (rv != BO_OK) {
                    return rv;
                }
            }
        } else if (delta) {
            rv = read_dedup_task(r, &f, true);
            if (rv != BO_OK) {
                return rv;
            }
        }
    }
    if (got != 0) {
        return feed_rv != BO_OK ? feed_rv
                                : corrupt(r, pr.p, "malformed deduplicated snapshot field");
    }

    /* Pass 2: tasks. */
    bo_pb_reader_init(&pr, data, len);
    while (!delta && bo_pb_next(&pr, &f) == 1) {
        if (f.number != DEDUP_PARTIAL_TASKS) {
            continue;
        }
        rv = read_dedup_task(r, &f, false);
        if (rv != BO_OK) {
            return rv;
        }
    }

    /* The rest. */
    Bo__Snapshot empty = BO__SNAPSHOT__INIT;
    Bo__Snapshot *rest = &empty;
    if (rest_data != NULL) {
        struct pb_tracked pa;
        pb_tracked_init(&pa);
        rest = bo__snapshot__unpack(&pa.a, rest_len, rest_data);
        if (rest == NULL) {
            return pa.failed ? bo_errf(r->err, BO_ENOMEM, "read snapshot: out of memory")
                             : corrupt(r, rest_data, "partial snapshot that does not decode");
        }
    }
    r->st->raw_bytes = field_size(rest_len + r->raw_tasks);
    /* As if written without delta encoding. */
    r->st->dedup_bytes = field_size(delta ? len - r->task_elems + r->dedup_tasks : len);
    r->st->deduplicated = true;
    rv = BO_OK;
    if (rest->n_tasks > 0) {
        rv = build_table_from_dedup(r, data, len);
    }
    if (rv == BO_OK) {
        rv = visit_rest(r, rest);
    }
    if (rest != &empty) {
        bo__snapshot__free_unpacked(rest, &pb_allocator);
    }
    return rv;
}

static int read_entry(struct reader *r, const uint8_t *data, size_t len, bool inner);

/* A zstd payload of `size` bytes decompressed by a feed thread: a delta entry
 * is walked as it comes, anything else once it is all there. *started: false
 * if the thread could not start (nothing done then). */
static int read_fed(struct reader *r, const uint8_t *cdata, size_t clen, size_t size, bool *started)
{
    struct feed fd = {.in = cdata,
                      .in_len = clen,
                      .expected = size,
                      .in_offset = offset_of(r, cdata),
                      .where = r->where};
    *started = false;
    fd.out = bo_malloc(size);
    if (fd.out == NULL) {
        return bo_errf(r->err, BO_ENOMEM, "read snapshot: out of memory (%zu bytes)", size);
    }
    atomic_init(&fd.avail, 0);
    atomic_init(&fd.cancel, false);
    pthread_mutex_init(&fd.mu, NULL);
    pthread_cond_init(&fd.cv, NULL);
    if (pthread_create(&fd.thread, NULL, feed_main, &fd) != 0) {
        pthread_cond_destroy(&fd.cv);
        pthread_mutex_destroy(&fd.mu);
        bo_free(fd.out);
        return BO_OK;
    }
    *started = true;
    r->st->codec = BO_CODEC_ZSTD;
    const uint8_t *saved_origin = r->origin;
    size_t saved_base = r->base;
    const char *saved_where = r->where;
    r->origin = fd.out;
    r->base = 0;
    r->where = "decompressed payload (zstd)";
    r->feed = &fd;
    /* The entry's header, not the whole entry. */
    int rv = feed_need(r, fd.out + (size < 15 ? size : 15));
    if (rv == BO_OK) {
        struct bo_pb_reader pr;
        struct bo_pb_field f;
        bo_pb_reader_init(&pr, fd.out, size);
        if (bo_pb_next(&pr, &f) == 1 && f.number == LOGENTRY_DEDUP_DELTA &&
            f.wire_type == BO_PB_LEN && f.data + f.len == fd.out + size) {
            rv = read_dedup(r, f.data, f.len, true);
        } else {
            rv = feed_need(r, fd.out + size);
            r->feed = NULL;
            if (rv == BO_OK) {
                rv = read_entry(r, fd.out, size, true);
            }
        }
    }
    r->feed = NULL;
    /* Bad bytes may come from damage the decoder has yet to reach: let it
     * finish then, so that its error is the one reported. */
    if (rv != BO_OK && rv != BO_ECORRUPT) {
        atomic_store_explicit(&fd.cancel, true, memory_order_relaxed);
    }
    pthread_join(fd.thread, NULL);
    if (fd.rv != BO_OK && fd.rv != BO_ECANCELED) {
        rv = feed_error(r, &fd, fd.rv, &fd.err);
    }
    r->origin = saved_origin;
    r->base = saved_base;
    r->where = saved_where;
    pthread_cond_destroy(&fd.cv);
    pthread_mutex_destroy(&fd.mu);
    bo_free(fd.out);
    return rv;
}

static int read_compressed(struct reader *r, const uint8_t *field_start, const uint8_t *data,
                           size_t len)
{
    struct bo_pb_reader pr;
    struct bo_pb_field f;
    int got;
    uint64_t codec = 0, size = 0;
    const uint8_t *cdata = NULL;
    size_t clen = 0;
    bo_pb_reader_init(&pr, data, len);
    while ((got = bo_pb_next(&pr, &f)) == 1) {
        bool bad = false;
        if (f.number == COMPRESSED_CODEC) {
            bad = f.wire_type != BO_PB_VARINT;
            codec = f.varint;
        } else if (f.number == COMPRESSED_SIZE) {
            bad = f.wire_type != BO_PB_VARINT;
            size = f.varint;
        } else if (f.number == COMPRESSED_DATA) {
            bad = f.wire_type != BO_PB_LEN;
            cdata = f.data;
            clen = f.len;
        }
        if (bad) {
            return corrupt(r, data + f.offset, "compressed entry field with a bad wire type");
        }
    }
    if (got != 0) {
        return corrupt(r, pr.p, "malformed compressed entry");
    }
    if (codec != BO_CODEC_NONE && codec != BO_CODEC_ZLIB && codec != BO_CODEC_ZSTD) {
        char what[64];
        snprintf(what, sizeof(what), "unknown codec %llu", (unsigned long long)codec);
        return corrupt(r, field_start, what);
    }
    if (size > SIZE_MAX / 2) {
        return corrupt(r, field_start, "impossible uncompressed size");
    }
    if (cdata == NULL) {
        cdata = data;
    }
    /* A big zstd payload, with a plausible size (as codec.c judges it). */
    if (codec == BO_CODEC_ZSTD && size >= FEED_MIN && size / 64 <= clen) {
        bool started;
        int frv = read_fed(r, cdata, clen, (size_t)size, &started);
        if (started || frv != BO_OK) {
            return frv;
        }
    }
    struct bo_buf plain = BO_BUF_INIT;
    struct bo_err cerr = BO_ERR_INIT;
    int rv = bo_codec_decompress((enum bo_codec)codec, cdata, clen, (size_t)size, &plain, &cerr);
    if (rv != BO_OK) {
        bo_buf_release(&plain);
        return bo_errf(r->err, rv, "read snapshot: compressed data at offset %zu of the %s: %s",
                       offset_of(r, cdata), r->where, bo_err_msg(&cerr, rv));
    }
    r->st->codec = (enum bo_codec)codec;
    const uint8_t *saved_origin = r->origin;
    size_t saved_base = r->base;
    const char *saved_where = r->where;
    r->origin = plain.data;
    r->base = 0;
    r->where = codec == BO_CODEC_ZLIB   ? "decompressed payload (zlib)"
               : codec == BO_CODEC_ZSTD ? "decompressed payload (zstd)"
                                        : "uncompressed payload";
    rv = read_entry(r, plain.data, plain.len, true);
    r->origin = saved_origin;
    r->base = saved_base;
    r->where = saved_where;
    bo_buf_release(&plain);
    return rv;
}

/* Walk an encoded LogEntry that must hold a snapshot. */
static int read_entry(struct reader *r, const uint8_t *data, size_t len, bool inner)
{
    struct bo_pb_reader pr;
    struct bo_pb_field f, entry = {0};
    int got;
    bool found = false;
    bo_pb_reader_init(&pr, data, len);
    while ((got = bo_pb_next(&pr, &f)) == 1) {
        if (f.number < LOGENTRY_SNAPSHOT || f.number > LOGENTRY_DEDUP_DELTA) {
            continue; /* a newer writer's field */
        }
        if (found) {
            return corrupt(r, data + f.offset, "second entry in a log entry");
        }
        entry = f;
        found = true;
    }
    if (got != 0) {
        return corrupt(r, pr.p, "malformed log entry");
    }
    if (!found) {
        return corrupt(r, data, "log entry without content");
    }
    const uint8_t *start = data + entry.offset;
    if (entry.number == LOGENTRY_TRANSACTION || entry.number == LOGENTRY_NOOP) {
        return corrupt(r, start,
                       entry.number == LOGENTRY_NOOP ? "noop instead of a snapshot"
                                                     : "transaction instead of a snapshot");
    }
    if (entry.wire_type != BO_PB_LEN) {
        return corrupt(r, start, "log entry field with a bad wire type");
    }
    switch (entry.number) {
    case LOGENTRY_COMPRESSED:
        if (inner) {
            return corrupt(r, start, "compressed entry inside a compressed entry");
        }
        return read_compressed(r, start, entry.data, entry.len);
    case LOGENTRY_DEDUP:
    case LOGENTRY_DEDUP_DELTA:
        return read_dedup(r, entry.data, entry.len, entry.number == LOGENTRY_DEDUP_DELTA);
    default:
        return read_plain(r, entry.data, entry.len);
    }
}

static int read_payload(const uint8_t *payload, size_t len, size_t base, const char *where,
                        const struct bo_snap_visitor *v, struct bo_snap_stats *stats,
                        struct bo_err *err)
{
    struct bo_snap_stats local;
    struct reader r = {
        .v = v,
        .st = stats != NULL ? stats : &local,
        .err = err,
        .origin = payload,
        .base = base,
        .where = where,
    };
    memset(r.st, 0, sizeof(*r.st));
    r.st->codec = BO_CODEC_NONE;
    int rv = read_entry(&r, payload, len, false);
    r.st->configs = r.n_cfg;
    r.st->payload_bytes = len;
    bo_free(r.cfg_len);
    table_release(&r.table);
    bo_buf_release(&r.xform);
    bo_buf_release(&r.xev);
    return rv;
}

int bo_snap_read_payload(const uint8_t *payload, size_t len, const struct bo_snap_visitor *v,
                         struct bo_snap_stats *stats, struct bo_err *err)
{
    return read_payload(payload, len, 0, "entry", v, stats, err);
}

int bo_snap_check_header(const uint8_t *image, size_t len, const uint8_t **payload,
                         size_t *payload_len, struct bo_err *err)
{
    if (len < BO_SNAP_HEADER_SIZE) {
        return bo_errf(err, BO_ECORRUPT,
                       "check snapshot image: truncated: %zu bytes, the header alone needs %d", len,
                       BO_SNAP_HEADER_SIZE);
    }
    if (memcmp(image, BO_SNAP_MAGIC, 8) != 0) {
        return bo_errf(err, BO_ECORRUPT, "check snapshot image: bad magic at offset 0");
    }
    uint32_t version = get_le32(image + 8);
    bool header_ok = get_le32(image + 28) == bo_crc32(0, image, 28);
    if (version > BO_SNAP_VERSION && header_ok) {
        return bo_errf(err, BO_EVERSION,
                       "check snapshot image: version %u is newer than the supported %d", version,
                       BO_SNAP_VERSION);
    }
    if (!header_ok) {
        return bo_errf(err, BO_ECORRUPT,
                       "check snapshot image: header checksum mismatch at offset 28");
    }
    if (version == 0) {
        return bo_errf(err, BO_ECORRUPT, "check snapshot image: version 0 at offset 8");
    }
    uint32_t flags = get_le32(image + 12);
    if (flags != 0) {
        return bo_errf(err, BO_EVERSION, "check snapshot image: unknown flags 0x%x at offset 12",
                       flags);
    }
    uint64_t size = get_le64(image + 16);
    if (size > len - BO_SNAP_HEADER_SIZE) {
        return bo_errf(err, BO_ECORRUPT,
                       "check snapshot image: truncated: the payload of %llu bytes would end at "
                       "offset %llu, the image has %zu bytes",
                       (unsigned long long)size, (unsigned long long)size + BO_SNAP_HEADER_SIZE,
                       len);
    }
    if (size < len - BO_SNAP_HEADER_SIZE) {
        return bo_errf(err, BO_ECORRUPT,
                       "check snapshot image: %llu bytes of garbage after the payload at offset "
                       "%llu",
                       (unsigned long long)(len - BO_SNAP_HEADER_SIZE - size),
                       (unsigned long long)size + BO_SNAP_HEADER_SIZE);
    }
    if (get_le32(image + 24) != bo_crc32(0, image + BO_SNAP_HEADER_SIZE, (size_t)size)) {
        return bo_errf(err, BO_ECORRUPT,
                       "check snapshot image: payload checksum mismatch (payload at offset %d, "
                       "%llu bytes)",
                       BO_SNAP_HEADER_SIZE, (unsigned long long)size);
    }
    *payload = image + BO_SNAP_HEADER_SIZE;
    *payload_len = (size_t)size;
    return BO_OK;
}

int bo_snap_read(const uint8_t *image, size_t len, const struct bo_snap_visitor *v,
                 struct bo_snap_stats *stats, struct bo_err *err)
{
    const uint8_t *payload;
    size_t plen;
    int rv = bo_snap_check_header(image, len, &payload, &plen, err);
    if (rv != BO_OK) {
        return rv;
    }
    return read_payload(payload, plen, BO_SNAP_HEADER_SIZE, "image", v, stats, err);
}

/* ------------------------------------------------------------- convert ---- */

struct convert {
    struct bo_snap_writer *w;
    int writer_rv; /* why the writer refused something */
    const char *what;
};

static int convert_failed(struct convert *c, int rv, const char *what)
{
    if (rv != BO_OK) {
        c->writer_rv = rv;
        c->what = what;
    }
    return rv;
}

static int convert_config(void *data, uint32_t index, const uint8_t *config, size_t len)
{
    struct convert *c = data;
    uint32_t got;
    int rv = bo_snap_writer_add_config(c->w, config, len, &got);
    assert(rv != BO_OK || got == index);
    (void)index;
    return convert_failed(c, rv, "add config");
}

static int convert_task(void *data, uint32_t config_index, const uint8_t *partial, size_t len)
{
    struct convert *c = data;
    return convert_failed(c, bo_snap_writer_add_task(c->w, config_index, partial, len), "add task");
}

static int convert_rest(void *data, const Bo__Snapshot *rest)
{
    struct convert *c = data;
    return convert_failed(c, bo_snap_writer_set_rest(c->w, rest), "set rest");
}

int bo_snap_convert(const uint8_t *image, size_t len, bool dedup, enum bo_codec codec, int level,
                    struct bo_buf *out, struct bo_snap_stats *stats, struct bo_err *err)
{
    struct convert c = {0};
    int rv = bo_snap_writer_new(dedup, codec, level, &c.w);
    if (rv != BO_OK) {
        return bo_errf(err, rv, "convert snapshot: %s", bo_strerror(rv));
    }
    struct bo_snap_visitor v = {&c, convert_config, convert_task, convert_rest};
    rv = bo_snap_read(image, len, &v, NULL, err);
    if (rv != BO_OK && c.writer_rv != BO_OK) {
        /* The writer refused what the reader passed: a config or task that
         * does not decode (the reader checks only the top level). */
        rv = bo_errf(err, c.writer_rv == BO_EINVAL ? BO_ECORRUPT : c.writer_rv,
                     "convert snapshot: %s: %s", c.what, bo_strerror(c.writer_rv));
    }
    if (rv != BO_OK) {
        goto cleanup;
    }
    rv = bo_snap_writer_finish(c.w, out, stats, err);

cleanup:
    bo_snap_writer_free(c.w);
    return rv;
}
