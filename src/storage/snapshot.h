/*
 * snapshot.h - the snapshot image: the whole state in one checksummed blob.
 *
 * Images are what raft stores as snapshots, what backups contain and what
 * `borealis-log` reads. Layout (docs/storage-format.md):
 *
 *   offset  size  field
 *   0       8     magic "BRLSIMG1"
 *   8       4     header version, little-endian (1, or 2 with a delta entry)
 *   12      4     flags (0)
 *   16      8     payload size, little-endian
 *   24      4     CRC-32 of the payload
 *   28      4     CRC-32 of bytes 0..27
 *   32      n     payload: an encoded bo.LogEntry, one of
 *                   compressed{codec, uncompressed_size, data}  (data = LogEntry below)
 *                   deduplicated_snapshot_delta                 (compressed dedup images)
 *                   deduplicated_snapshot
 *                   snapshot                                    (not deduplicated)
 *
 * Writing: a bo_snap_writer is fed the state piece by piece (distinct configs,
 * then tasks pointing at them, then the rest as a partial Snapshot) and builds
 * the encoding incrementally: tasks and configs arrive already encoded, as the
 * store keeps them, so a million tasks cost a million appends, not a million
 * protobuf-c structs. A writer is used by one thread at a time; it does not
 * touch the store, so a worker thread can run it on a read view.
 *
 * Reading: bo_snap_read checks the header, both checksums and the codec, then
 * walks the payload and calls a visitor for each config, task and the partial
 * snapshot. A non-deduplicated snapshot is presented the same way (its configs
 * are deduplicated while reading), so the store restores both alike.
 *
 * Stats: raw_bytes and dedup_bytes are sizes of the whole encoded LogEntry
 * (the uncompressed payload), so with codec none payload_bytes equals one of
 * them. A future header version keeps bytes 0..31 in this layout (magic,
 * version, and the header CRC at 28 over 0..27), so a reader can tell a newer
 * image (BO_EVERSION) from a damaged one.
 *
 * Failure modes: a truncated image, a bad magic, a checksum mismatch, an
 * unknown codec, a decompression error, a malformed message or a task pointing
 * at a config that does not exist are all BO_ECORRUPT with a message naming
 * the offset; an image from a newer header version is BO_EVERSION.
 */
#ifndef BO_SNAPSHOT_H
#define BO_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "storage.pb-c.h"
#include "storage/codec.h"

#define BO_SNAP_MAGIC       "BRLSIMG1"
#define BO_SNAP_HEADER_SIZE 32
/* Version 2: the payload may hold a LogEntry.deduplicated_snapshot_delta,
 * which version 1 readers do not know; an image without one is written as
 * version 1, so older readers still read it. */
#define BO_SNAP_VERSION      2
#define BO_SNAP_VERSION_BASE 1

struct bo_snap_stats {
    uint64_t tasks;
    uint64_t configs; /* distinct task configs */
    uint64_t hosts;   /* host attributes */
    uint64_t cron_jobs;
    uint64_t quotas;
    uint64_t job_updates;
    uint64_t maintenance;   /* host maintenance requests */
    uint64_t raw_bytes;     /* encoded as a plain Snapshot (configs repeated per task) */
    uint64_t dedup_bytes;   /* encoded as a DeduplicatedSnapshot */
    uint64_t payload_bytes; /* after compression, i.e. the image minus its header */
    enum bo_codec codec;
    bool deduplicated;
    int64_t timestamp_ms;
};

struct bo_snap_writer;

/* `dedup`: write a DeduplicatedSnapshot (true) or a plain Snapshot (false).
 * `codec`/`level`: how the payload is compressed (level 0 = codec default). */
int bo_snap_writer_new(bool dedup, enum bo_codec codec, int level, struct bo_snap_writer **out);
void bo_snap_writer_free(struct bo_snap_writer *w);

/* Add a distinct TaskConfig given in its canonical encoding (copied). Configs
 * are numbered from 0 in the order added; the number is returned in *index. */
int bo_snap_writer_add_config(struct bo_snap_writer *w, const uint8_t *config, size_t len,
                              uint32_t *index);

/* Add a task: the encoding of a ScheduledTask whose assigned_task.task is
 * unset (copied), and the number of its config. Both adds return BO_EINVAL
 * for bytes that are not a message at the top level or a config number not
 * yet added, BO_ENOMEM, or BO_OK. */
int bo_snap_writer_add_task(struct bo_snap_writer *w, uint32_t config_index, const uint8_t *partial,
                            size_t len);

/* Everything else: host attributes, cron jobs, quotas, job updates,
 * maintenance requests, scheduler metadata, timestamp. `partial->tasks` must
 * be empty. Encoded at once; the caller keeps ownership. */
int bo_snap_writer_set_rest(struct bo_snap_writer *w, const Bo__Snapshot *partial);

/* Finish: compress and wrap into an image (appended to `image`). The writer
 * may be freed afterwards. `stats` (optional) receives counts and sizes;
 * raw_bytes is computed without building the plain encoding. */
int bo_snap_writer_finish(struct bo_snap_writer *w, struct bo_buf *image,
                          struct bo_snap_stats *stats, struct bo_err *err);

/* Reading. Callbacks return BO_OK to go on, anything else to stop (returned
 * from bo_snap_read as is). Byte arguments are valid only during the call.
 * Callbacks run on the calling thread, but a big zstd payload is walked while
 * another thread decompresses it: they may have seen every config, task and
 * the rest when the decoder's final check fails and the read returns its
 * error, so a caller keeps nothing of a read that failed (a restore throws
 * its file away). The image's own CRC-32 is checked before any callback. */
struct bo_snap_visitor {
    void *data;
    /* Distinct configs, numbered from 0 in order; always before any task that
     * refers to them. */
    int (*config)(void *data, uint32_t index, const uint8_t *config, size_t len);
    int (*task)(void *data, uint32_t config_index, const uint8_t *partial, size_t len);
    /* Once, after configs and tasks; the visitor does not own `rest`. */
    int (*rest)(void *data, const Bo__Snapshot *rest);
};

/* Check and walk an image. Any callback may be NULL. `stats` optional. */
int bo_snap_read(const uint8_t *image, size_t len, const struct bo_snap_visitor *v,
                 struct bo_snap_stats *stats, struct bo_err *err);

/* The same walk over a bare encoded bo.LogEntry (no image header): a snapshot
 * that arrived as a log entry. Offsets in messages are from its start. An
 * entry that is not a snapshot (transaction, noop) is BO_ECORRUPT. */
int bo_snap_read_payload(const uint8_t *payload, size_t len, const struct bo_snap_visitor *v,
                         struct bo_snap_stats *stats, struct bo_err *err);

/* Append an image holding `payload` (an encoded LogEntry) to `image`:
 * header (version BO_SNAP_VERSION), checksums, payload. BO_OK or BO_ENOMEM. */
int bo_snap_wrap_image(const uint8_t *payload, size_t len, struct bo_buf *image);

/* Check only the header and the payload checksum (cheap). */
int bo_snap_check_header(const uint8_t *image, size_t len, const uint8_t **payload,
                         size_t *payload_len, struct bo_err *err);

/* Re-encode an image with another codec and/or dedup setting. */
int bo_snap_convert(const uint8_t *image, size_t len, bool dedup, enum bo_codec codec, int level,
                    struct bo_buf *out, struct bo_snap_stats *stats, struct bo_err *err);

/* Helpers shared with the store: split a full ScheduledTask into its config
 * (canonical encoding) and its partial encoding, appended to `config` and
 * `partial`. The task's config is canonicalized in place (its sets sorted) and
 * assigned_task.task is detached during the call and put back before it
 * returns; a task without a config gets the empty config. BO_ENOMEM only. */
int bo_snap_split_task(const Bo__ScheduledTask *task, struct bo_buf *config,
                       struct bo_buf *partial);

#endif
