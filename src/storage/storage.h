/*
 * storage.h - the durable store: the SQLite state (store.h) as the state
 * machine of a raft log (libraft over libuv), with snapshots and backups.
 *
 * Happy path of a write: the owner builds a bo.Transaction and calls
 * bo_storage_write on the leader. The transaction is validated against the
 * store, encoded as one bo.LogEntry and handed to raft_apply. Raft appends it
 * to its log on disk (fsync), replicates it to a quorum, and applies it to
 * the store on every replica in log order. The write's callback fires after
 * the entry is committed and applied on this replica: an acknowledged write is
 * durable on a quorum.
 *
 * Snapshots: every `snapshot_threshold` entries (and on demand) raft asks the
 * state machine for a snapshot. On the loop thread the store pins a read view
 * (cheap); on a worker thread the view is exported into a snapshot image
 * (deduplicated, compressed with the configured codec); back on the loop the
 * view is released. Writes keep flowing meanwhile. At start, and when a
 * follower installs the leader's snapshot, the image is restored into a fresh
 * database.
 *
 * Backups: every `backup_interval_ms` (and on demand) an image is built the
 * same way and written to `backup_dir` off the loop thread, keeping
 * `max_saved_backups`.
 *
 * Roles: a single voter in one data directory is the embedded default. With
 * peers, the owner is told through `role_cb` whenever this replica becomes
 * leader or stops being it. A write on a follower fails at once with
 * BO_ENOTLEADER, the message naming the leader's id and address (or
 * BO_ENOLEADER when there is none).
 *
 * Failure modes: a corrupt log segment, snapshot or metadata file makes
 * bo_storage_open fail with BO_ECORRUPT naming the file (raft's own checksums
 * on segments, ours on images); nothing is dropped silently. An append that
 * fails (disk full) fails the writes in it with BO_EIO/BO_ENOSPC and nothing
 * acknowledged is lost. A state-machine failure to apply a committed entry
 * (SQLite I/O error) is fatal: the storage stops (`fatal_cb`), since the store
 * no longer follows the log.
 *
 * Process: the owner must ignore SIGPIPE (`signal(SIGPIPE, SIG_IGN)` in
 * main): raft's transport writes to sockets whose peer may have died, and the
 * default action would kill the process without a word.
 *
 * Threads: all functions and callbacks run on the loop thread. Committed
 * entries are applied to the store on a thread of the storage's own (the
 * applier, storage.c), so the store returned by bo_storage_store is shared
 * with it under the store's lock (store.h, "Threads"): a read sees every
 * entry whose write was called back, and perhaps a few later ones.
 * Lifecycle: bo_storage_open -> ... -> bo_storage_close(cb) -> bo_storage_free
 * once the loop has run dry (uv_run returned): raft's I/O can complete
 * requests after the close callback, and they use memory freed there.
 */
#ifndef BO_STORAGE_H
#define BO_STORAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "storage.pb-c.h"
#include "storage/codec.h"
#include "storage/store.h"

struct bo_storage;

struct bo_storage_peer {
    uint64_t id;
    const char *address; /* "host:port" of its raft transport */
};

enum bo_storage_role {
    BO_ROLE_UNAVAILABLE = 0,
    BO_ROLE_FOLLOWER,
    BO_ROLE_CANDIDATE,
    BO_ROLE_LEADER
};

typedef void (*bo_storage_role_cb)(struct bo_storage *s, enum bo_storage_role role, void *data);
typedef void (*bo_storage_fatal_cb)(struct bo_storage *s, int code, const char *msg, void *data);

struct bo_storage_config {
    const char *data_dir; /* raft log, snapshots and the SQLite cache */
    uint64_t id;          /* this replica's id (default 1) */
    const char *address;  /* this replica's raft address, "127.0.0.1:port" */
    /* All voters, this one included. Empty = a single voter (this one). Used
     * only to bootstrap an empty data directory. */
    const struct bo_storage_peer *peers;
    size_t n_peers;
    unsigned snapshot_threshold;   /* entries between snapshots (default 8192) */
    unsigned snapshot_trailing;    /* entries kept after a snapshot (default 1024) */
    size_t segment_size;           /* raft log segment size in bytes (default 8 MiB) */
    bool snapshot_dedup;           /* default true */
    enum bo_codec snapshot_codec;  /* default zstd */
    int snapshot_level;            /* 0 = codec default */
    const char *backup_dir;        /* NULL = no periodic backups */
    uint64_t backup_interval_ms;   /* default 1 h; 0 = never */
    unsigned max_saved_backups;    /* default 48 */
    unsigned election_timeout_ms;  /* default 1000 */
    unsigned heartbeat_timeout_ms; /* default 100 */
    bo_storage_role_cb role_cb;
    bo_storage_fatal_cb fatal_cb;
    void *data; /* passed to the callbacks */
};

/* Fill `cfg` with the defaults above (data_dir and address left NULL). */
void bo_storage_config_init(struct bo_storage_config *cfg);

/* Open the data directory (bootstrapping it if empty), load the last snapshot
 * and the log into the store, and start raft. Blocks while loading. */
int bo_storage_open(uv_loop_t *loop, const struct bo_storage_config *cfg, struct bo_storage **out,
                    struct bo_err *err);

typedef void (*bo_storage_close_cb)(struct bo_storage *s);
/* Stop raft and close everything; pending writes fail with BO_ECANCELED. */
void bo_storage_close(struct bo_storage *s, bo_storage_close_cb cb);
/* Free after the close callback, once the loop has no more requests running
 * (uv_run in UV_RUN_DEFAULT mode returned). */
void bo_storage_free(struct bo_storage *s);

enum bo_storage_role bo_storage_role(const struct bo_storage *s);
/* The leader's id and address as this replica knows them (0 / NULL if none). */
void bo_storage_leader(const struct bo_storage *s, uint64_t *id, const char **address);

/* The store, for reads on the loop thread (shared with the applier, see
 * "Threads" above). Never write through it. */
struct bo_store *bo_storage_store(struct bo_storage *s);

/* ---- writes ---- */

struct bo_storage_write;
typedef void (*bo_storage_write_cb)(struct bo_storage_write *req, int status, const char *message);

/* The caller owns the request until its callback. If bo_storage_write returns
 * an error the callback never fires; otherwise it fires exactly once. */
struct bo_storage_write {
    void *data; /* for the caller */
    /* private */
    struct bo_storage *s;
    bo_storage_write_cb cb;
    uint64_t index; /* log index once committed */
    void *impl;
};

int bo_storage_write(struct bo_storage *s, struct bo_storage_write *req, const Bo__Transaction *txn,
                     bo_storage_write_cb cb, struct bo_err *err);

/* Append an already encoded bo.LogEntry (a snapshot entry, for recovery). */
int bo_storage_write_entry(struct bo_storage *s, struct bo_storage_write *req, const uint8_t *entry,
                           size_t len, bo_storage_write_cb cb, struct bo_err *err);

/* ---- snapshots and backups on demand ---- */

typedef void (*bo_storage_done_cb)(struct bo_storage *s, int status, const char *message,
                                   void *data);

/* Take a snapshot at the next applied entry. */
int bo_storage_snapshot_now(struct bo_storage *s, bo_storage_done_cb cb, void *data,
                            struct bo_err *err);
/* Write a backup now; the message is the backup's name on success. */
int bo_storage_backup_now(struct bo_storage *s, bo_storage_done_cb cb, void *data,
                          struct bo_err *err);

/* ---- online recovery (Aurora's stage / query / delete / commit / unload) ----
 *
 * Caveat: stage (reading and restoring a backup) and commit (exporting the
 * staged store) run on the loop thread and block it for as long as that takes
 * (seconds at a million tasks). They are rare operator actions; moving them to
 * a worker thread is planned with the scheduler's admin API. */

/* Load backup `name` from backup_dir into a temporary store. At most one is
 * staged at a time (BO_EBUSY otherwise). */
int bo_storage_recovery_stage(struct bo_storage *s, const char *name, struct bo_err *err);
/* Query / delete tasks in the staged store. */
int bo_storage_recovery_query(struct bo_storage *s, const struct bo_task_query *q,
                              struct bo_task_list *out, struct bo_err *err);
int bo_storage_recovery_delete(struct bo_storage *s, const struct bo_task_query *q,
                               uint64_t *deleted, struct bo_err *err);
/* Replace the live state with the staged one through the log (one snapshot
 * entry); the staged store is unloaded when the write commits. */
int bo_storage_recovery_commit(struct bo_storage *s, bo_storage_done_cb cb, void *data,
                               struct bo_err *err);
int bo_storage_recovery_unload(struct bo_storage *s, struct bo_err *err);

/* ---- metrics ---- */

struct bo_storage_stats {
    uint64_t writes_committed;
    uint64_t writes_failed;
    uint64_t entries_applied;
    uint64_t snapshots_taken;
    uint64_t last_snapshot_bytes;
    double last_snapshot_seconds;
    uint64_t backups_written;
    uint64_t backups_failed;
    /* log append-to-commit latency histogram, microseconds, bucket upper
     * bounds 100us * 2^i */
    uint64_t commit_latency_us_buckets[16];
    uint64_t commit_latency_us_sum;
};

void bo_storage_stats(const struct bo_storage *s, struct bo_storage_stats *out);

#endif
