/*
 * store.h - the state of the scheduler in SQLite, normalized.
 *
 * The store is the replicated log's state machine. It knows nothing of raft or
 * libuv: it applies transactions (in log order, each as one SQLite
 * transaction, all or nothing), answers typed queries, exports a consistent
 * view into a snapshot writer and restores itself from a snapshot image.
 *
 * Tables (docs/storage-format.md has the DDL): jobs (role, environment, name);
 * task_configs, one row per distinct config (hash of the canonical encoding,
 * confirmed by comparing bytes) with a reference count, deleted when nothing
 * refers to it; tasks (task id, job, instance, status, host, config, and the
 * task's own encoding with the config left out: events, ports, failure count,
 * ancestor); cron_jobs; quotas; host_attributes; maintenance; job_updates
 * with their configs and events; meta (applied index, cluster id). Tasks per
 * job per status are counted in memory as entries apply, so summaries need no
 * scan (store.c, "tally").
 *
 * The database is a cache of the log: it lives in a file in WAL mode, is
 * never synced, and is rebuilt from the last snapshot and the log at start.
 * That is what makes a second, read-only connection possible: a read view
 * pinned on the loop thread gives a consistent state to a worker thread that
 * serializes a snapshot while the store goes on applying writes.
 *
 * Threads: the store may be used by two threads, the storage's applier
 * (applies, commits) and the loop (reads, views, checkpoints); every public
 * function holds the store's lock for its duration, so calls never overlap.
 * The lock is recursive: a streaming read's callback may call the store. It
 * makes each call atomic, not a sequence of them: between two reads the
 * applier may apply entries whose writes are not yet called back. Config
 * row ids are never reused (AUTOINCREMENT), so a bo_config_cache stays right
 * across applies. A view is opened and closed under the lock and exported on
 * any one thread in between; a checkpoint likewise.
 *
 * Ownership: query results are allocated by the store and freed with the
 * matching *_release function. Protobuf structs passed in are not kept.
 */
#ifndef BO_STORE_H
#define BO_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "storage.pb-c.h"
#include "storage/snapshot.h"

#define BO_SCHEMA_VERSION 1
/* The newest Transaction.schema_version this store applies: 2 adds the
 * save_tasks_shared op (a writer sets 2 only on a transaction holding one). */
#define BO_TXN_VERSION 2

struct bo_store;

/* Open (creating if needed) the database at `path`. `fresh` deletes what is
 * there first: the normal case at start, since the log rebuilds it. */
int bo_store_open(const char *path, bool fresh, struct bo_store **out, struct bo_err *err);
void bo_store_close(struct bo_store *st);

/* Check a transaction without applying it (the leader does this before it
 * appends, so the log holds only transactions that apply). BO_EINVAL with a
 * message naming the op and field. */
int bo_store_validate(struct bo_store *st, const Bo__Transaction *txn, struct bo_err *err);

/* Apply a transaction as log entry `index`: all ops or none. An op that is
 * invalid against the current state (validated elsewhere) is BO_EINVAL and
 * nothing changes. An I/O error from SQLite (BO_EIO, BO_ENOSPC) also changes
 * nothing; the caller must stop, since the store no longer follows the log. */
int bo_store_apply(struct bo_store *st, const Bo__Transaction *txn, uint64_t index,
                   struct bo_err *err);

/* Apply an encoded bo.LogEntry: a transaction, a noop, or a whole snapshot
 * (plain, deduplicated or compressed: the state is replaced, as when a staged
 * recovery is committed). */
int bo_store_apply_entry(struct bo_store *st, const uint8_t *data, size_t len, uint64_t index,
                         struct bo_err *err);

/* Group commit. With it on, each apply is a part of one open SQLite
 * transaction that bo_store_flush commits: many log entries cost one commit
 * (one write of each dirty page to the WAL). An apply the state may refuse
 * has a savepoint and is all or nothing on its own; one of task ops only
 * (which nothing refuses once valid) has none, and if it fails it undoes
 * the whole group and returns BO_EIO (never BO_EINVAL or BO_ECORRUPT, the
 * refusals a caller skips): the store then no longer follows the log.
 * Reads on the owning thread see applied entries at once; views, restores
 * and close flush first. The durable copy is the log, so nothing is lost by
 * committing later. Off by default. */
void bo_store_set_group_commit(struct bo_store *st, bool on);
int bo_store_flush(struct bo_store *st, struct bo_err *err);
/* With group commit on: open the group's transaction now, so that a run of
 * reads on the owning thread shares one read lock instead of taking one per
 * statement; bo_store_flush ends it like any group. */
int bo_store_read_begin(struct bo_store *st, struct bo_err *err);
/* True if applied entries wait for bo_store_flush. */
bool bo_store_pending(const struct bo_store *st);

/* Checkpoints. With group commit on, SQLite's automatic WAL checkpoint (which
 * copies pages into the database file inside a commit, on the owning thread)
 * is off; the owner checkpoints on a worker thread instead: open on the owning
 * thread, run on any one thread (a PASSIVE checkpoint: never blocks the
 * owner's writes), close on the owning thread. Like a view, an open
 * checkpoint keeps bo_store_restore from swapping files (it restores in
 * place instead). */
struct bo_store_ckpt;
int bo_store_ckpt_open(struct bo_store *st, struct bo_store_ckpt **out, struct bo_err *err);
int bo_store_ckpt_run(struct bo_store_ckpt *ckpt, struct bo_err *err);
void bo_store_ckpt_close(struct bo_store_ckpt *ckpt);
/* Owning thread, between groups (after bo_store_flush): copy into the
 * database file the frames committed while the last checkpoint ran, if they
 * are few, so that the WAL starts over at the next commit instead of
 * growing. Does nothing when a group is open or the gap is large. */
int bo_store_ckpt_finish(struct bo_store *st, struct bo_err *err);
/* True if more frames wait to be copied than bo_store_ckpt_finish copies:
 * the owner should run the next checkpoint at once rather than on its timer,
 * or the gap never closes under steady writes and the WAL never starts
 * over. False while the last checkpoint was held back by a reader (a
 * snapshot's view): the next one could copy no more, and running them back
 * to back only burns the cores the snapshot and the loop need. */
bool bo_store_ckpt_behind(const struct bo_store *st);

/* Last applied log index (0 for an empty store). */
uint64_t bo_store_applied_index(const struct bo_store *st);

/* Note that the state reflects the log up to `index` though no entry of ours
 * was applied there: raft tells the index of a restored snapshot only after
 * the restore, and its own entries (barriers, configuration) never reach the
 * store. Only ever moves the index forward; kept in memory until the next
 * apply writes it. */
void bo_store_note_index(struct bo_store *st, uint64_t index);

/* Replace the whole state with an image's content; `index` becomes the
 * applied index. On error the previous state is kept. With no view open the
 * new state is built in a fresh file that replaces the old one (fast); with
 * views open it is replaced inside one transaction, and the views keep
 * seeing the state they pinned. */
int bo_store_restore(struct bo_store *st, const uint8_t *image, size_t len, uint64_t index,
                     struct bo_err *err);

/* ---- consistent read views, for snapshots ---- */

struct bo_store_view;

/* Pin the current state (owning thread). */
int bo_store_view_open(struct bo_store *st, struct bo_store_view **out, struct bo_err *err);
/* Feed the pinned state to `w` (any one thread): configs, tasks, rest. */
int bo_store_view_export(struct bo_store_view *view, struct bo_snap_writer *w, int64_t now_ms,
                         struct bo_err *err);
/* The applied index the view shows. */
uint64_t bo_store_view_index(const struct bo_store_view *view);
/* Release (owning thread). */
void bo_store_view_close(struct bo_store_view *view);
/* The heavy half of closing, for any one thread once the view's reads are
 * done: ends its read transaction and closes its connection, which unmaps
 * the view's file mapping (25 ms at a million tasks). The view still counts
 * as open (a restore goes in place) until bo_store_view_close(), which then
 * costs the owning thread nothing. */
void bo_store_view_release(struct bo_store_view *view);

/* Convenience: view + export + close on the calling (owning) thread. */
int bo_store_export(struct bo_store *st, struct bo_snap_writer *w, int64_t now_ms,
                    struct bo_err *err);

/* ---- queries (Aurora's TaskQuery and friends) ---- */

/* Every set field narrows the result; empty arrays and NULL strings do not.
 * Results are ordered by job (role, environment, name), then instance, then
 * task id, so they are the same on every replica. limit 0 = no limit. */
struct bo_task_query {
    const char *role;
    const char *environment;
    const char *job_name;
    const Bo__JobKey *const *job_keys;
    size_t n_job_keys;
    const char *const *task_ids;
    size_t n_task_ids;
    const int32_t *instance_ids;
    size_t n_instance_ids;
    const Bo__ScheduleStatus *statuses;
    size_t n_statuses;
    const char *const *hosts;
    size_t n_hosts;
    int64_t offset;
    int64_t limit;
};

/* Tasks with equal configs share one config struct (Aurora's interning), so
 * a list is freed only as a whole with bo_task_list_release. */
struct bo_task_list {
    Bo__ScheduledTask **tasks; /* each with its config unless asked without */
    size_t n;
    /* private: the distinct configs the tasks point to */
    Bo__TaskConfig **configs;
    size_t n_configs;
};

int bo_store_query_tasks(struct bo_store *st, const struct bo_task_query *q, bool with_configs,
                         struct bo_task_list *out, struct bo_err *err);
/* Configs decoded once for many queries. A caller that runs many small
 * queries (the scheduler's batch: one per status update) passes one cache
 * to each: a config is read and decoded the first time a task names it,
 * and the tasks' configs belong to the cache, not to the lists, valid until
 * bo_config_cache_release (release the lists first or after: either). The
 * cache is for one stretch of reads (it holds every config it decoded):
 * configs no task uses any more may be collected by later writes, though
 * their ids are never used again. */
struct bo_config_cache {
    /* private: ids sorted, with their decoded configs */
    int64_t *ids;
    Bo__TaskConfig **cfgs;
    size_t n, cap;
};
int bo_store_query_tasks_shared(struct bo_store *st, const struct bo_task_query *q,
                                struct bo_config_cache *cc, struct bo_task_list *out,
                                struct bo_err *err);
void bo_config_cache_release(struct bo_config_cache *cc);

/* The same tasks as bo_store_query_tasks, streamed: `fn` is called for each,
 * in order, with a task (and its config unless !with_configs) that is valid
 * only during the call. Each task is unpacked into an arena reused from one
 * task to the next, so a big answer costs no allocation per field and keeps
 * nothing. A non-BO_OK return from `fn` stops the walk and is returned. For
 * readers that turn tasks into output at once (the API's task lists). */
typedef int (*bo_task_fn)(const Bo__ScheduledTask *t, void *data);
int bo_store_each_task(struct bo_store *st, const struct bo_task_query *q, bool with_configs,
                       bo_task_fn fn, void *data, struct bo_err *err);
/* Tasks as text, kept. An owner that turns tasks (without their configs)
 * into text, the API's JSON, can have the store keep each task's text until
 * its row changes: a repeated read of a big job then costs an index walk and
 * a copy per task instead of a body read, a decode and a rendering. The
 * store drops a task's text whenever its row is written or deleted, on any
 * rollback and on restore, so a kept text is always that of the task as the
 * store holds it. `render` must depend on the task alone; what it appends
 * is the task's text, and BO_EINVAL from it leaves the task out of every
 * answer. At most `budget` bytes are kept (least recently read out first);
 * 0 keeps nothing but still serves each_task_text. */
typedef int (*bo_task_render_fn)(const Bo__ScheduledTask *t, struct bo_buf *out);
int bo_store_set_task_render(struct bo_store *st, bo_task_render_fn render, size_t budget,
                             struct bo_err *err);
/* The text of each task `q` selects (configs left out), in the order of
 * bo_store_each_task, handed to `fn` (valid during the call only). A
 * non-BO_OK return from `fn` stops the walk and is returned. BO_EINVAL if
 * no renderer was set. */
typedef int (*bo_text_fn)(const uint8_t *text, size_t len, void *data);
int bo_store_each_task_text(struct bo_store *st, const struct bo_task_query *q, bo_text_fn fn,
                            void *data, struct bo_err *err);
struct bo_store_text_stats {
    uint64_t hits, misses, evictions;
    size_t entries, bytes, budget;
};
void bo_store_get_text_stats(const struct bo_store *st, struct bo_store_text_stats *out);

/* Counts every match: offset and limit are ignored. */
int bo_store_count_tasks(struct bo_store *st, const struct bo_task_query *q, uint64_t *count,
                         struct bo_err *err);
void bo_task_list_release(struct bo_task_list *l);

/* Task counts by status, Aurora's JobStats grouping. */
struct bo_task_counts {
    uint64_t active;        /* ASSIGNED, STARTING, RUNNING, KILLING, DRAINING, RESTARTING,
                               PREEMPTING, PARTITIONED */
    uint64_t pending;       /* PENDING, THROTTLED, INIT */
    uint64_t finished;      /* FINISHED, KILLED */
    uint64_t failed;        /* FAILED, LOST */
    uint64_t by_status[19]; /* indexed by Bo__ScheduleStatus value */
};

struct bo_job_summary {
    Bo__JobKey *key;
    struct bo_task_counts counts;
    bool is_cron;
    char *cron_schedule;    /* NULL unless is_cron */
    int32_t instance_count; /* distinct active instances, or the cron job's count */
};

struct bo_job_summary_list {
    struct bo_job_summary *jobs;
    size_t n;
};

/* Jobs of a role (all roles if NULL) with task counts: jobs with tasks and
 * cron jobs, ordered by key. No scan of tasks. */
int bo_store_job_summaries(struct bo_store *st, const char *role, struct bo_job_summary_list *out,
                           struct bo_err *err);
void bo_job_summary_list_release(struct bo_job_summary_list *l);

struct bo_role_summary {
    char *role;
    uint64_t job_count;
    uint64_t cron_job_count;
    struct bo_task_counts counts;
};

struct bo_role_summary_list {
    struct bo_role_summary *roles;
    size_t n;
};

int bo_store_role_summaries(struct bo_store *st, struct bo_role_summary_list *out,
                            struct bo_err *err);
void bo_role_summary_list_release(struct bo_role_summary_list *l);

/* Config groups of a job's active tasks: each distinct config with the
 * instance ids that run it (as closed ranges), ordered by first instance. */
struct bo_config_group {
    Bo__TaskConfig *config;
    Bo__Range **ranges;
    size_t n_ranges;
};

struct bo_config_group_list {
    struct bo_config_group *groups;
    size_t n;
};

int bo_store_config_groups(struct bo_store *st, const Bo__JobKey *job,
                           struct bo_config_group_list *out, struct bo_err *err);
void bo_config_group_list_release(struct bo_config_group_list *l);

/* ---- the other entities: each getter returns BO_ENOTFOUND when absent;
 * returned messages are freed with protobuf_c_message_free_unpacked(m, NULL). */

int bo_store_get_cron_job(struct bo_store *st, const Bo__JobKey *key, Bo__JobConfiguration **out,
                          struct bo_err *err);
/* All cron jobs, ordered by key; *out is a bo_malloc'd array. */
int bo_store_list_cron_jobs(struct bo_store *st, Bo__JobConfiguration ***out, size_t *n,
                            struct bo_err *err);

int bo_store_get_quota(struct bo_store *st, const char *role, Bo__ResourceAggregate **out,
                       struct bo_err *err);
int bo_store_list_quotas(struct bo_store *st, Bo__QuotaConfiguration ***out, size_t *n,
                         struct bo_err *err);

int bo_store_get_host(struct bo_store *st, const char *host, Bo__HostAttributes **out,
                      struct bo_err *err);
int bo_store_list_hosts(struct bo_store *st, Bo__HostAttributes ***out, size_t *n,
                        struct bo_err *err);

int bo_store_list_maintenance(struct bo_store *st, Bo__HostMaintenanceRequest ***out, size_t *n,
                              struct bo_err *err);

/* Update details with events; summary.state derived from the events. */
int bo_store_get_job_update(struct bo_store *st, const Bo__JobUpdateKey *key,
                            Bo__JobUpdateDetails **out, struct bo_err *err);
/* Summaries of a job's updates (all jobs if NULL), newest first. */
int bo_store_list_job_updates(struct bo_store *st, const Bo__JobKey *job,
                              Bo__JobUpdateSummary ***out, size_t *n, struct bo_err *err);

int bo_store_get_metadata(struct bo_store *st, Bo__SchedulerMetadata **out, struct bo_err *err);

/* Free an array returned by a list function, and its elements. */
void bo_store_free_list(void *array, size_t n);

/* Counts of rows per table, for stats and tests. */
struct bo_store_counts {
    uint64_t jobs, tasks, configs, cron_jobs, quotas, hosts, maintenance, job_updates;
};
int bo_store_counts(struct bo_store *st, struct bo_store_counts *out, struct bo_err *err);

/* A digest of the whole logical state (independent of row ids and insertion
 * order): equal states give equal digests. For replica comparison in tests.
 * BO_ECORRUPT if the task counts kept in memory differ from the tasks. */
int bo_store_digest(struct bo_store *st, uint64_t *digest, struct bo_err *err);

#endif
