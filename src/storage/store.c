/*
 * store.c - the scheduler state in SQLite (contract in store.h).
 *
 * Happy path of a write. bo_store_apply checks the transaction's shape (no
 * database access), opens BEGIN IMMEDIATE on the main connection, applies the
 * ops in order with cached prepared statements, records the applied index in
 * `meta` and commits (with group commit, the owner's mode: a savepoint per
 * entry the state may refuse, and the index and the commit once per group,
 * in bo_store_flush).
 * A log entry is decoded into an arena kept from entry to entry. Every task
 * config goes through config_intern(): it is encoded in canonical order
 * (canon.h; from a shallow copy when it is not in order already, never
 * changing the caller's struct), hashed with bo_hash128, looked up
 * by hash and confirmed by comparing bytes, inserted when new; a reference
 * count (`refs`, and `task_refs` for the tasks among them) is kept by the
 * apply code and a config whose count drops to zero is deleted in the same
 * transaction, as is a job row nothing refers to any more. A memo of the
 * configs seen lately (keyed by their encoding, compared whole) spares most
 * lookups in SQLite. Before that, the configs of a save_tasks op are looked
 * up by the bytes the entry carries them as (entrydec.h): one the memo
 * knows is never decoded, its task given a stub (struct cfg_stub).
 *
 * Tasks are stored as the protobuf encoding of the ScheduledTask with
 * assigned_task.task left out (events, ports, failure count, ancestor, slave
 * id and host all live in that blob), in task_bodies with the id of their
 * config, and the columns queries filter on in `tasks` under the same row id.
 * Keeping the blob out of `tasks` keeps that table narrow (about 130 bytes a
 * task against 700), which is what index builds and index-less searches scan.
 * That blob is exactly what a deduplicated snapshot holds per task, so an
 * export streams it without re-encoding anything. The number of tasks per
 * job and status is kept in memory by the apply code ("tally" below), so
 * job and role summaries never scan tasks.
 *
 * Reads for snapshots: a view is a second, read-only connection; view_open
 * runs BEGIN and one SELECT on the loop thread, which pins a WAL snapshot.
 * The export may then run on a worker thread while the loop keeps writing on
 * the main connection: configs referenced by tasks (in id order), then every
 * task's blob (task_bodies alone, in rowid order, no sort, read through a
 * memory map), then the small rest as a partial Snapshot. Nothing per task is
 * held in memory.
 *
 * Restore builds the new state in a fresh file beside the live one
 * (path ".restore") with journal_mode=OFF and no secondary index on tasks,
 * inserts everything in one transaction (row ids numbered by the restore,
 * tasks and task_bodies alike), creates the indexes at the end, then closes
 * the main connection, moves the old file aside (".old"), renames the new
 * one into place, removes the old file and WAL and reopens. Task rows get
 * their columns from a field walk over the blob (pbwire), not from a
 * protobuf-c unpack; host names become ids through a hash map of the names
 * met so far, numbered by the restore itself in a fresh file; rows go in
 * RESTORE_BATCH at a time with one multi-row INSERT per table (stepping a
 * statement costs more than the row it inserts), on a thread of their own
 * while the caller's thread walks the image (restore_pipe). The file is written through
 * wbuf.h's VFS, which turns SQLite's page writes into 64 KB ones, and a
 * big zstd image is decompressed on a thread of its own while the tasks are
 * inserted (snapshot.c). Measured costs behind the
 * details, at a million tasks: the index builds sort with temporary files in
 * runs of a small cache, since
 * temp_store=MEMORY makes SQLite sort everything as one linked list on one
 * thread (twice as slow); renaming over an existing file makes ext4 flush
 * the new one first (auto_da_alloc, half a second), renaming to a free name
 * does not; and the main connection syncs nothing (synchronous=OFF, or FULL
 * through wbuf.h's WAL variant, whose syncs skip the fsync) before switching
 * a restored file to WAL, which would otherwise fsync all of it.
 *
 * Failure modes. An invalid op (missing field, event for an unknown update)
 * is BO_EINVAL naming the op index and the field; the transaction is rolled
 * back, nothing changes, the applied index stays. SQLITE_FULL is BO_ENOSPC,
 * other SQLite failures BO_EIO (BO_ENOMEM, BO_ECORRUPT where they say so),
 * always with sqlite3_errmsg; the caller must stop since the store no longer
 * follows the log. A restore that fails before the renames leaves the old
 * state as it was (moved back if the second rename fails; if even that fails
 * the store stays closed rather than reopen an empty file); one that fails
 * to reopen after the renames leaves the store unusable (every call fails)
 * and the caller rebuilds from the log. A crash between the two renames
 * leaves the old state under ".old", which bo_store_open puts back unless
 * asked for a fresh store. While views are open the files cannot be
 * swapped under them, so a restore then replaces the state in place, in one
 * transaction on the main connection (restore_in_place): slower, but a
 * state-replacing log entry cannot wait. Malformed images and log entries
 * are BO_ECORRUPT.
 *
 * Threads: the main connection is used only by the owning thread; each view
 * has its own connection (opened NOMUTEX: one thread at a time uses it).
 */
#include "storage/store.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/buf.h"
#include "common/flags.h"
#include "common/hash.h"
#include "common/lru.h"
#include "common/mem.h"
#include "common/pbwire.h"
#include "storage/canon.h"
#include "storage/entrydec.h"
#include "storage/wbuf.h"

#define uthash_malloc(sz)    bo_malloc(sz)
#define uthash_free(ptr, sz) bo_free(ptr)
#define HASH_NONFATAL_OOM    1
#include <uthash.h>

/* ------------------------------------------------------------- schema ---- */

/* Secondary indexes on tasks are kept apart: a restore creates them after the
 * bulk insert, which is several times faster than maintaining them. */
static const char schema_tables[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS jobs(id INTEGER PRIMARY KEY, role TEXT NOT NULL,"
    " environment TEXT NOT NULL, name TEXT NOT NULL, UNIQUE(role, environment, name));"
    "CREATE TABLE IF NOT EXISTS task_configs(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " hash_lo INTEGER NOT NULL,"
    " hash_hi INTEGER NOT NULL, job_id INTEGER NOT NULL, refs INTEGER NOT NULL,"
    " task_refs INTEGER NOT NULL, body BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS task_configs_hash ON task_configs(hash_lo, hash_hi);"
    "CREATE INDEX IF NOT EXISTS task_configs_job ON task_configs(job_id);"
    /* Host names of tasks, numbered, so tasks index a small integer. Rows
     * are never deleted: there are as many as hosts ever seen. */
    "CREATE TABLE IF NOT EXISTS hosts(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS tasks(id INTEGER PRIMARY KEY, task_id TEXT NOT NULL,"
    " job_id INTEGER NOT NULL, instance_id INTEGER NOT NULL, status INTEGER NOT NULL,"
    " host_id INTEGER NOT NULL, config_id INTEGER NOT NULL);"
    /* The body of tasks.id, apart so that the tasks table stays narrow
     * (index builds and searches scan a tenth of the bytes); config_id is
     * repeated so an export reads this table alone. */
    "CREATE TABLE IF NOT EXISTS task_bodies(id INTEGER PRIMARY KEY, config_id INTEGER NOT NULL,"
    " body BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS cron_jobs(job_id INTEGER PRIMARY KEY,"
    " config_id INTEGER NOT NULL, body BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS quotas(role TEXT PRIMARY KEY, body BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS host_attributes(host TEXT PRIMARY KEY, mode INTEGER NOT NULL,"
    " slave_id TEXT NOT NULL, body BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS maintenance(host TEXT PRIMARY KEY, body BLOB NOT NULL)"
    " WITHOUT ROWID;"
    /* status/created_ms/last_event_ms/last_modified_ms are derived from the
     * events as they are appended (Aurora never trusted summary.state). */
    "CREATE TABLE IF NOT EXISTS job_updates(id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL,"
    " update_id TEXT NOT NULL, body BLOB NOT NULL, status INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER, last_event_ms INTEGER, last_modified_ms INTEGER,"
    " UNIQUE(job_id, update_id));"
    /* kind 0 = desired state, 1 = initial state (position = its index). The
     * instance ranges stay in the update's body. */
    "CREATE TABLE IF NOT EXISTS job_update_configs(update_row INTEGER NOT NULL,"
    " kind INTEGER NOT NULL, position INTEGER NOT NULL, config_id INTEGER NOT NULL,"
    " PRIMARY KEY(update_row, kind, position)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS job_update_events(update_row INTEGER NOT NULL,"
    " seq INTEGER NOT NULL, ts INTEGER NOT NULL, body BLOB NOT NULL,"
    " PRIMARY KEY(update_row, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS job_instance_events(update_row INTEGER NOT NULL,"
    " seq INTEGER NOT NULL, ts INTEGER NOT NULL, body BLOB NOT NULL,"
    " PRIMARY KEY(update_row, seq)) WITHOUT ROWID;";

static const char schema_task_indexes[] =
    "CREATE UNIQUE INDEX IF NOT EXISTS tasks_task_id ON tasks(task_id);"
    "CREATE INDEX IF NOT EXISTS tasks_job ON tasks(job_id, instance_id);"
    "CREATE INDEX IF NOT EXISTS tasks_host ON tasks(host_id);"
    "CREATE INDEX IF NOT EXISTS tasks_status ON tasks(status);";

#define META_SCHEMA_VERSION "schema_version"
#define META_APPLIED_INDEX  "applied_index"
#define META_SCHED_METADATA "scheduler_metadata"

/* Aurora's ACTIVE_STATES: what config groups and a job's instance count see. */
#define ACTIVE_STATUS_SQL "(0, 16, 9, 1, 2, 6, 17, 12, 13, 18)"

/* ----------------------------------------------------- statement cache ---- */

#define RESTORE_BATCH 64
#define ROWS2(r)      r ", " r
#define ROWS4(r)      ROWS2(r) ", " ROWS2(r)
#define ROWS16(r)     ROWS4(r) ", " ROWS4(r) ", " ROWS4(r) ", " ROWS4(r)
#define ROWS64(r)     ROWS16(r) ", " ROWS16(r) ", " ROWS16(r) ", " ROWS16(r)

enum stmt_id {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    S_META_GET,
    S_META_PUT,
    S_JOB_FIND,
    S_JOB_INSERT,
    S_JOB_GC,
    S_CFG_FIND,
    S_CFG_INSERT,
    S_CFG_REF,
    S_CFG_UNREF,
    S_CFG_DELETE,
    S_CFG_BODY,
    S_HOSTNAME_FIND,
    S_HOSTNAME_INSERT,
    S_HOSTNAME_INSERT_ID,
    S_TASK_FIND,
    S_TASK_INSERT,
    S_TASK_INSERT_NEW,
    S_TASK_INSERT_MANY,
    S_BODY_INSERT_MANY,
    S_TASK_UPDATE,
    S_TASK_SET_STATUS,
    S_TASK_SET_STATE,
    S_TASK_DELETE,
    S_BODY_PUT,
    S_BODY_DELETE,
    S_BODY_GET,
    S_BODY_SET,
    S_CRON_FIND,
    S_CRON_PUT,
    S_CRON_DELETE,
    S_QUOTA_PUT,
    S_QUOTA_DELETE,
    S_QUOTA_GET,
    S_HOST_PUT,
    S_HOST_GET,
    S_MAINT_PUT,
    S_MAINT_DELETE,
    S_UPD_FIND,
    S_UPD_INSERT,
    S_UPD_SET_BODY,
    S_UPD_DELETE,
    S_UPD_STATE_EVENT,
    S_UPD_STATE_INSTANCE,
    S_UPD_CFG_LIST,
    S_UPD_CFG_INSERT,
    S_UPD_CFG_DELETE,
    S_UPD_EV_NEXT,
    S_UPD_EV_INSERT,
    S_UPD_EV_LIST,
    S_UPD_EV_LIST_SEQ,
    S_UPD_EV_DELETE,
    S_UPD_IEV_NEXT,
    S_UPD_IEV_INSERT,
    S_UPD_IEV_LIST,
    S_UPD_IEV_LIST_SEQ,
    S_UPD_IEV_DELETE,
    S_HOST_LIST,
    S_CRON_LIST,
    S_CRON_GET,
    S_QUOTA_LIST,
    S_MAINT_LIST,
    S_UPD_LIST_ALL,
    S_UPD_GET,
    S_UPD_SUMMARIES,
    S_JOB_SUMMARIES,
    S_ROLES,
    S_CONFIG_GROUPS,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT apply",
    [S_RELEASE] = "RELEASE apply",
    [S_ROLLBACK_TO] = "ROLLBACK TO apply",
    [S_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [S_META_PUT] = "INSERT INTO meta(key, value) VALUES(?1, ?2)"
                   " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [S_JOB_FIND] = "SELECT id FROM jobs WHERE role = ?1 AND environment = ?2 AND name = ?3",
    [S_JOB_INSERT] = "INSERT INTO jobs(role, environment, name) VALUES(?1, ?2, ?3)",
    [S_JOB_GC] = "DELETE FROM jobs WHERE id = ?1"
                 " AND NOT EXISTS (SELECT 1 FROM task_configs WHERE job_id = ?1)"
                 " AND NOT EXISTS (SELECT 1 FROM cron_jobs WHERE job_id = ?1)"
                 " AND NOT EXISTS (SELECT 1 FROM job_updates WHERE job_id = ?1)",
    [S_CFG_FIND] = "SELECT id, job_id, body FROM task_configs WHERE hash_lo = ?1 AND hash_hi = ?2",
    [S_CFG_INSERT] = "INSERT INTO task_configs(hash_lo, hash_hi, job_id, refs, task_refs, body)"
                     " VALUES(?1, ?2, ?3, 0, 0, ?4)",
    [S_CFG_REF] = "UPDATE task_configs SET refs = refs + ?2, task_refs = task_refs + ?3"
                  " WHERE id = ?1",
    [S_CFG_UNREF] = "UPDATE task_configs SET refs = refs - 1, task_refs = task_refs - ?2"
                    " WHERE id = ?1 RETURNING refs, job_id",
    [S_CFG_DELETE] = "DELETE FROM task_configs WHERE id = ?1",
    [S_CFG_BODY] = "SELECT body FROM task_configs WHERE id = ?1",
    [S_TASK_FIND] = "SELECT id, config_id, job_id, status, instance_id, host_id FROM tasks"
                    " WHERE task_id = ?1",
    /* ?1 is NULL for a new row id, given by a restore. */
    [S_HOSTNAME_FIND] = "SELECT id FROM hosts WHERE name = ?1",
    [S_HOSTNAME_INSERT] = "INSERT INTO hosts(name) VALUES(?1)",
    [S_HOSTNAME_INSERT_ID] = "INSERT INTO hosts(id, name) VALUES(?1, ?2)",
    [S_TASK_INSERT] = "INSERT INTO tasks(id, task_id, job_id, instance_id, status, host_id,"
                      " config_id)"
                      " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    /* A task saved by an apply: nothing when the task id is stored already. */
    [S_TASK_INSERT_NEW] = "INSERT INTO tasks(task_id, job_id, instance_id, status, host_id,"
                          " config_id) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"
                          " ON CONFLICT(task_id) DO NOTHING",
    /* A restore inserts tasks RESTORE_BATCH at a time (one step for many
     * rows: most of an insert's cost is the step, not the row). */
    [S_TASK_INSERT_MANY] = "INSERT INTO tasks(id, task_id, job_id, instance_id, status, host_id,"
                           " config_id) VALUES" ROWS64("(?, ?, ?, ?, ?, ?, ?)"),
    [S_BODY_INSERT_MANY] =
        "INSERT INTO task_bodies(id, config_id, body) VALUES" ROWS64("(?, ?, ?)"),
    /* SQLite rewrites the entry of every index on a column the SET names,
     * changed or not: a status change names only what it changes. */
    [S_TASK_SET_STATUS] = "UPDATE tasks SET status = ?2 WHERE id = ?1",
    [S_TASK_SET_STATE] = "UPDATE tasks SET status = ?2, host_id = ?3 WHERE id = ?1",
    [S_TASK_UPDATE] = "UPDATE tasks SET job_id = ?2, instance_id = ?3, status = ?4, host_id = ?5,"
                      " config_id = ?6 WHERE id = ?1",
    [S_TASK_DELETE] = "DELETE FROM tasks WHERE id = ?1",
    [S_BODY_PUT] = "INSERT OR REPLACE INTO task_bodies(id, config_id, body) VALUES(?1, ?2, ?3)",
    [S_BODY_DELETE] = "DELETE FROM task_bodies WHERE id = ?1",
    [S_BODY_GET] = "SELECT body FROM task_bodies WHERE id = ?1",
    /* A row that exists is rewritten in place; REPLACE would delete it and
     * insert it again, two B-tree operations for one. */
    [S_BODY_SET] = "UPDATE task_bodies SET config_id = ?2, body = ?3 WHERE id = ?1",
    [S_CRON_FIND] = "SELECT config_id FROM cron_jobs WHERE job_id = ?1",
    [S_CRON_PUT] = "INSERT INTO cron_jobs(job_id, config_id, body) VALUES(?1, ?2, ?3)"
                   " ON CONFLICT(job_id) DO UPDATE SET config_id = excluded.config_id,"
                   " body = excluded.body",
    [S_CRON_DELETE] = "DELETE FROM cron_jobs WHERE job_id = ?1",
    [S_QUOTA_PUT] = "INSERT INTO quotas(role, body) VALUES(?1, ?2)"
                    " ON CONFLICT(role) DO UPDATE SET body = excluded.body",
    [S_QUOTA_DELETE] = "DELETE FROM quotas WHERE role = ?1",
    [S_QUOTA_GET] = "SELECT body FROM quotas WHERE role = ?1",
    [S_HOST_PUT] = "INSERT INTO host_attributes(host, mode, slave_id, body) VALUES(?1, ?2, ?3, ?4)"
                   " ON CONFLICT(host) DO UPDATE SET mode = excluded.mode,"
                   " slave_id = excluded.slave_id, body = excluded.body",
    [S_HOST_GET] = "SELECT body FROM host_attributes WHERE host = ?1",
    [S_MAINT_PUT] = "INSERT INTO maintenance(host, body) VALUES(?1, ?2)"
                    " ON CONFLICT(host) DO UPDATE SET body = excluded.body",
    [S_MAINT_DELETE] = "DELETE FROM maintenance WHERE host = ?1",
    [S_UPD_FIND] = "SELECT id FROM job_updates WHERE job_id = ?1 AND update_id = ?2",
    [S_UPD_INSERT] = "INSERT INTO job_updates(job_id, update_id, body) VALUES(?1, ?2, ?3)",
    [S_UPD_SET_BODY] = "UPDATE job_updates SET body = ?2 WHERE id = ?1",
    [S_UPD_DELETE] = "DELETE FROM job_updates WHERE id = ?1",
    /* Events are kept stably sorted by timestamp (Aurora): the last one is
     * the newest, ties going to the one appended last. */
    [S_UPD_STATE_EVENT] =
        "UPDATE job_updates SET"
        " status = CASE WHEN last_event_ms IS NULL OR ?2 >= last_event_ms THEN ?3 ELSE status END,"
        " last_event_ms = max(coalesce(last_event_ms, ?2), ?2),"
        " created_ms = min(coalesce(created_ms, ?2), ?2),"
        " last_modified_ms = max(coalesce(last_modified_ms, ?2), ?2) WHERE id = ?1",
    [S_UPD_STATE_INSTANCE] = "UPDATE job_updates SET"
                             " last_modified_ms = max(coalesce(last_modified_ms, ?2), ?2)"
                             " WHERE id = ?1",
    [S_UPD_CFG_LIST] = "SELECT kind, position, config_id FROM job_update_configs"
                       " WHERE update_row = ?1 ORDER BY kind, position",
    [S_UPD_CFG_INSERT] = "INSERT INTO job_update_configs(update_row, kind, position, config_id)"
                         " VALUES(?1, ?2, ?3, ?4)",
    [S_UPD_CFG_DELETE] = "DELETE FROM job_update_configs WHERE update_row = ?1",
    [S_UPD_EV_NEXT] = "SELECT coalesce(max(seq) + 1, 0) FROM job_update_events"
                      " WHERE update_row = ?1",
    [S_UPD_EV_INSERT] = "INSERT INTO job_update_events(update_row, seq, ts, body)"
                        " VALUES(?1, ?2, ?3, ?4)",
    [S_UPD_EV_LIST] = "SELECT body FROM job_update_events WHERE update_row = ?1 ORDER BY ts, seq",
    [S_UPD_EV_LIST_SEQ] = "SELECT body FROM job_update_events WHERE update_row = ?1 ORDER BY seq",
    [S_UPD_EV_DELETE] = "DELETE FROM job_update_events WHERE update_row = ?1",
    [S_UPD_IEV_NEXT] = "SELECT coalesce(max(seq) + 1, 0) FROM job_instance_events"
                       " WHERE update_row = ?1",
    [S_UPD_IEV_INSERT] = "INSERT INTO job_instance_events(update_row, seq, ts, body)"
                         " VALUES(?1, ?2, ?3, ?4)",
    [S_UPD_IEV_LIST] = "SELECT body FROM job_instance_events WHERE update_row = ?1"
                       " ORDER BY ts, seq",
    [S_UPD_IEV_LIST_SEQ] = "SELECT body FROM job_instance_events WHERE update_row = ?1"
                           " ORDER BY seq",
    [S_UPD_IEV_DELETE] = "DELETE FROM job_instance_events WHERE update_row = ?1",
    [S_HOST_LIST] = "SELECT body FROM host_attributes ORDER BY host",
    [S_CRON_LIST] = "SELECT cj.body, cfg.body FROM cron_jobs cj JOIN jobs j ON j.id = cj.job_id"
                    " JOIN task_configs cfg ON cfg.id = cj.config_id"
                    " ORDER BY j.role, j.environment, j.name",
    [S_CRON_GET] = "SELECT cj.body, cfg.body FROM cron_jobs cj"
                   " JOIN task_configs cfg ON cfg.id = cj.config_id WHERE cj.job_id = ?1",
    [S_QUOTA_LIST] = "SELECT role, body FROM quotas ORDER BY role",
    [S_MAINT_LIST] = "SELECT body FROM maintenance ORDER BY host",
    [S_UPD_LIST_ALL] = "SELECT u.id, u.body, u.status, u.created_ms, u.last_modified_ms"
                       " FROM job_updates u JOIN jobs j ON j.id = u.job_id"
                       " ORDER BY j.role, j.environment, j.name, u.update_id",
    [S_UPD_GET] = "SELECT id, body, status, created_ms, last_modified_ms FROM job_updates"
                  " WHERE id = ?1",
    [S_UPD_SUMMARIES] = "SELECT u.id, u.body, u.status, u.created_ms, u.last_modified_ms"
                        " FROM job_updates u JOIN jobs j ON j.id = u.job_id"
                        " WHERE ?1 IS NULL OR u.job_id = ?1"
                        " ORDER BY coalesce(u.last_modified_ms, 0) DESC, j.role, j.environment,"
                        " j.name, u.update_id",
    /* One row per job and status (one with a NULL status for a cron job
     * without tasks): a role's summaries in one statement, not one per job. */
    /* Jobs with tasks or a cron job; which have tasks, the tally says. */
    [S_JOB_SUMMARIES] = "SELECT j.id, j.role, j.environment, j.name, cj.body FROM jobs j"
                        " LEFT JOIN cron_jobs cj ON cj.job_id = j.id"
                        " WHERE (?1 IS NULL OR j.role = ?1)"
                        " ORDER BY j.role, j.environment, j.name",
    [S_ROLES] = "SELECT j.role, j.id, cj.job_id IS NOT NULL FROM jobs j"
                " LEFT JOIN cron_jobs cj ON cj.job_id = j.id ORDER BY j.role",
    [S_CONFIG_GROUPS] = "SELECT config_id, instance_id FROM tasks WHERE job_id = ?1"
                        " AND status IN " ACTIVE_STATUS_SQL " ORDER BY config_id, instance_id",
};

/* A bump allocator for protobuf-c: allocations come from 64 KiB chunks
 * (bigger ones get a chunk of their own), frees are no-ops, and a reset
 * makes all of it reusable. Tasks streamed by bo_store_each_task live here
 * one at a time. */
#define ARENA_CHUNK (64u << 10)
/* What the apply arena keeps between entries: a 100-task entry decodes into
 * about 0.5 MiB. */
#define APPLY_ARENA_KEEP (4u << 20)

struct arena_chunk {
    struct arena_chunk *next;
    size_t size, used;
    max_align_t data[];
};

struct arena {
    struct arena_chunk *head, *cur;
    size_t held; /* bytes in chunks */
    bool failed;
};

/* Where an arena stood, to give back what was allocated since. */
struct arena_mark {
    struct arena_chunk *cur;
    size_t used;
};

static void *arena_alloc(void *data, size_t size)
{
    struct arena *a = data;
    size = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    struct arena_chunk *last = NULL;
    for (struct arena_chunk *c = a->cur; c != NULL; c = c->next) {
        if (c->size - c->used >= size) {
            void *p = (uint8_t *)c->data + c->used;
            c->used += size;
            a->cur = c;
            return p;
        }
        if (c->next != NULL) {
            c->next->used = 0; /* left over from before the last reset */
        }
        last = c;
    }
    size_t cap = size > ARENA_CHUNK ? size : ARENA_CHUNK;
    struct arena_chunk *c = bo_malloc(sizeof(*c) + cap);
    if (c == NULL) {
        a->failed = true;
        return NULL;
    }
    c->size = cap;
    c->used = size;
    c->next = NULL;
    a->held += sizeof(*c) + cap;
    if (last != NULL) {
        last->next = c;
    } else {
        a->head = c;
    }
    a->cur = c;
    return c->data;
}

static void arena_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

static void arena_reset(struct arena *a)
{
    a->cur = a->head;
    if (a->head != NULL) {
        a->head->used = 0;
    }
}

static struct arena_mark arena_mark(const struct arena *a)
{
    return (struct arena_mark){a->cur, a->cur != NULL ? a->cur->used : 0};
}

static void arena_rewind(struct arena *a, struct arena_mark m)
{
    if (m.cur == NULL) {
        arena_reset(a);
        return;
    }
    a->cur = m.cur;
    m.cur->used = m.used;
}

static void arena_release(struct arena *a)
{
    struct arena_chunk *c = a->head;
    while (c != NULL) {
        struct arena_chunk *next = c->next;
        bo_free(c);
        c = next;
    }
    *a = (struct arena){0};
}

/* A connection with its statements, prepared on first use and kept. */
/* Task queries are built from their filters, so their SQL varies; the
 * shapes a scheduler uses are few and repeat thousands of times a second, and
 * preparing one costs more than running it. A small cache keyed by the text
 * keeps the last ones prepared. */
#define QCACHE_SIZE 16

struct qcache_entry {
    char *sql;
    sqlite3_stmt *stmt;
    uint64_t used; /* clock of the last use, for eviction */
    bool busy;     /* handed out and not released yet */
};

struct conn {
    sqlite3 *db;
    sqlite3_stmt *stmts[S_COUNT];
    struct qcache_entry qc[QCACHE_SIZE];
    uint64_t qc_clock;
};

/* Configs interned lately, keyed by their canonical encoding or by the bytes
 * a log entry carried them as (equal bytes, equal config, either way): a
 * table of MEMO_SIZE slots in sets of MEMO_WAYS, each set holding the
 * configs whose hash fell in it that were used last. One slot per hash
 * missed a third of the time at 10,000 configs in use, for the configs
 * whose slot another one shared.
 * Entries are valid only for `memo_conn` and for the generation they were
 * made in; a config row deleted or a transaction rolled back starts a new
 * generation. With writes spread over many jobs, 8 slots missed nearly
 * always and each miss looked the config up in SQLite (a tenth of an
 * apply, docs/benchmarks.md, "Fifth pass"). At most MEMO_SIZE copies of
 * configs are kept (~1-2 KB each), allocated as they are first used. */
#define MEMO_SIZE 32768
#define MEMO_WAYS 4

struct memo_entry {
    uint64_t gen; /* valid when equal to the store's memo_gen */
    uint64_t hash;
    uint64_t used; /* memo_clock when last found or added */
    struct bo_buf raw;
    /* The config's job key as "role\0environment\0name\0", empty if it
     * has none: all that validating a task reads of its config. */
    struct bo_buf job;
    int64_t config_id;
    int64_t job_id;
};

/* A config of the log entry being applied that came as bytes (entrydec.h).
 * Its task's assigned_task.task points at `cfg`: only the job key when the
 * memo knew the bytes (validation reads nothing else, and config_intern
 * takes the ids found then), a shallow copy of the decoded config when it
 * did not. config_intern tells a stub by its address (stub_of). */
struct cfg_stub {
    Bo__TaskConfig cfg;
    Bo__JobKey job;
    const uint8_t *raw;
    size_t len;
    uint64_t hash;
    const Bo__TaskConfig *full; /* decoded, or NULL until needed */
    uint64_t gen;               /* the ids hold while memo_gen is this */
    int64_t config_id;
    int64_t job_id;
    bool known;
};

struct bo_store {
    /* Held by every public function for its duration (STORE_LOCKED), so the
     * storage's applier thread and the loop thread can share the store
     * (storage.c, "The applier"); recursive, since the callbacks of the
     * streaming reads may call back in. */
    pthread_mutex_t lock;
    char *path;
    struct conn main;
    uint64_t applied_index;
    /* Group commit: applies run as savepoints inside one open transaction,
     * committed by bo_store_flush (see store.h). */
    bool group_commit;
    bool group_open;
    bool group_index; /* an entry applied in the group: its index to write */
    unsigned n_views;
    struct memo_entry *memo; /* MEMO_SIZE, NULL until the first config */
    uint64_t memo_gen;       /* starts at 1: a zeroed entry is invalid */
    uint64_t memo_clock;
    const struct conn *memo_conn;
    /* Log entries are decoded with new tasks' configs as bytes, and those
     * configs stubbed for the entry's apply (empty between entries). */
    struct bo_entrydec dec;
    struct cfg_stub *stubs;
    size_t n_stubs;
    /* Scratch buffers reused across calls (owning thread only). */
    struct bo_buf raw, canon, part;
    /* What one log entry decodes into, with the private config copies its
     * apply makes: given back as a whole when the entry is applied, so an
     * apply frees nothing field by field (malloc and free were a tenth of
     * the loop thread's time). */
    struct arena apply_arena;
    /* Host names and their ids in `hosts`, for the applies (NULL until the
     * first): rows are never deleted, so only a rollback or a restore makes
     * an entry wrong, and both reset it (memo_reset). */
    struct host_map *host_cache;
    /* Task count changes of the apply in progress (counts_note), and the
     * counts of everything applied (the tally; stale: to be recounted). */
    struct count_delta *count_deltas;
    struct job_tally *tally;
    bool tally_stale;
    /* The checkpointer's connection, kept between checkpoints (opening one
     * costs more than most checkpoints); closed before files are swapped. */
    struct conn ckpt_c;
    bool ckpt_c_open;
    bool ckpt_busy;
    /* Tasks as text (bo_store_set_task_render): kept by row id, dropped by
     * the main connection's update and rollback hooks. */
    bo_task_render_fn render;
    struct bo_lru *texts;
    struct bo_buf text_tmp;
    /* Frames in the WAL after the last commit (the WAL hook), and frames
     * the last worker checkpoint had copied into the database file: what
     * bo_store_ckpt_finish would have left to copy. */
    int wal_frames;
    int ckpt_done;
    /* The last worker checkpoint stopped short of the WAL's end: a reader
     * (a snapshot's view) still needs the frames after it. */
    bool ckpt_blocked;
};

struct bo_store_view {
    struct bo_store *st;
    struct conn c;
    uint64_t index;
};

static struct bo_store *store_lock(const struct bo_store *st)
{
    struct bo_store *m = (struct bo_store *)st; /* the lock is not the state */
    pthread_mutex_lock(&m->lock);
    return m;
}

static void store_unlock_guard(struct bo_store **st)
{
    pthread_mutex_unlock(&(*st)->lock);
}

/* Hold st's lock until the enclosing block ends, on every way out of it. */
#define STORE_LOCKED(st)                                                                           \
    struct bo_store *store_guard_ __attribute__((cleanup(store_unlock_guard))) = store_lock(st)

/* ------------------------------------------------------------ helpers ---- */

static bool str_empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

static const char *str_or_empty(const char *s)
{
    return s == NULL ? "" : s;
}

static int sql_code(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return BO_OK;
    case SQLITE_FULL:
        return BO_ENOSPC;
    case SQLITE_NOMEM:
        return BO_ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return BO_ECORRUPT;
    case SQLITE_CONSTRAINT:
        return BO_EINVAL;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return BO_EBUSY;
    default:
        return BO_EIO;
    }
}

static int sql_fail(sqlite3 *db, int rc, struct bo_err *err, const char *what)
{
    return bo_errf(err, sql_code(rc), "%s: %s", what,
                   db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static int conn_stmt(struct conn *c, enum stmt_id id, sqlite3_stmt **out, struct bo_err *err)
{
    if (c->stmts[id] == NULL) {
        int rc = sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &c->stmts[id], NULL);
        if (rc != SQLITE_OK) {
            return sql_fail(c->db, rc, err, "prepare");
        }
    }
    *out = c->stmts[id];
    return BO_OK;
}

static void conn_close(struct conn *c, bool checkpoint)
{
    for (size_t i = 0; i < S_COUNT; i++) {
        sqlite3_finalize(c->stmts[i]);
        c->stmts[i] = NULL;
    }
    for (size_t i = 0; i < QCACHE_SIZE; i++) {
        sqlite3_finalize(c->qc[i].stmt);
        bo_free(c->qc[i].sql);
        c->qc[i] = (struct qcache_entry){0};
    }
    if (c->db != NULL) {
        if (!checkpoint) {
            sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        }
        sqlite3_close(c->db);
        c->db = NULL;
    }
}

static int conn_exec(struct conn *c, const char *sql, struct bo_err *err, const char *what)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int code =
            bo_errf(err, sql_code(rc), "%s: %s", what, msg != NULL ? msg : sqlite3_errmsg(c->db));
        sqlite3_free(msg);
        return code;
    }
    return BO_OK;
}

static void bind_str(sqlite3_stmt *s, int i, const char *v)
{
    sqlite3_bind_text(s, i, str_or_empty(v), -1, SQLITE_STATIC);
}

static void bind_blob(sqlite3_stmt *s, int i, const void *p, size_t len)
{
    /* A NULL pointer would bind SQL NULL; an empty blob is not NULL. */
    sqlite3_bind_blob64(s, i, len == 0 ? (const void *)"" : p, len, SQLITE_STATIC);
}

/* Step a statement that returns no row (or whose rows are ignored). */
static int step_done(struct conn *c, sqlite3_stmt *s, struct bo_err *err, const char *what)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    }
    int code = rc == SQLITE_DONE ? BO_OK : sql_fail(c->db, rc, err, what);
    sqlite3_reset(s);
    return code;
}

/* Step once: BO_OK with a row (the caller resets), BO_ENOTFOUND without one
 * (reset done), an error otherwise (reset done). */
static int step_row(struct conn *c, sqlite3_stmt *s, struct bo_err *err, const char *what)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        return BO_OK;
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) {
        return BO_ENOTFOUND;
    }
    return sql_fail(c->db, rc, err, what);
}

static const uint8_t *col_blob(sqlite3_stmt *s, int i, size_t *len)
{
    const uint8_t *p = sqlite3_column_blob(s, i);
    *len = (size_t)sqlite3_column_bytes(s, i);
    return p != NULL ? p : (const uint8_t *)"";
}

/* Replace `out`'s content with the encoding of `m`. */
static int pack_into(const ProtobufCMessage *m, struct bo_buf *out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    out->len = 0;
    if (bo_buf_reserve(out, n) != BO_OK) {
        return BO_ENOMEM;
    }
    out->len = protobuf_c_message_pack(m, out->data);
    return BO_OK;
}

/* A deep, independently owned copy of `m` (freed with
 * protobuf_c_message_free_unpacked): used to hand out messages assembled from
 * borrowed pieces. */
static void *repack(const ProtobufCMessage *m, struct bo_buf *tmp)
{
    if (pack_into(m, tmp) != BO_OK) {
        return NULL;
    }
    return protobuf_c_message_unpack(m->descriptor, NULL, tmp->len,
                                     tmp->len == 0 ? (const uint8_t *)"" : tmp->data);
}

static void *unpack_blob(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len)
{
    return protobuf_c_message_unpack(d, NULL, len, p);
}

static bool status_known(int v)
{
    return v >= 0 && v < 19 &&
           protobuf_c_enum_descriptor_get_value(&bo__schedule_status__descriptor, v) != NULL;
}

/* ------------------------------------------------------------- meta ---- */

static int meta_put_int(struct conn *c, const char *key, int64_t v, struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_META_PUT, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    bind_str(s, 1, key);
    sqlite3_bind_int64(s, 2, v);
    return step_done(c, s, err, "save meta");
}

static int meta_put_blob(struct conn *c, const char *key, const struct bo_buf *b,
                         struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_META_PUT, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    bind_str(s, 1, key);
    bind_blob(s, 2, b->data, b->len);
    return step_done(c, s, err, "save meta");
}

/* BO_ENOTFOUND when absent. */
static int meta_get_int(struct conn *c, const char *key, int64_t *v, struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_META_GET, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    bind_str(s, 1, key);
    rc = step_row(c, s, err, "read meta");
    if (rc != BO_OK) {
        return rc;
    }
    *v = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return BO_OK;
}

/* ------------------------------------------------------------- jobs ---- */

static int job_find(struct conn *c, const Bo__JobKey *k, int64_t *id, struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_JOB_FIND, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    bind_str(s, 1, k->role);
    bind_str(s, 2, k->environment);
    bind_str(s, 3, k->name);
    rc = step_row(c, s, err, "find job");
    if (rc != BO_OK) {
        return rc;
    }
    *id = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return BO_OK;
}

static int job_intern(struct conn *c, const Bo__JobKey *k, int64_t *id, struct bo_err *err)
{
    int rc = job_find(c, k, id, err);
    if (rc != BO_ENOTFOUND) {
        return rc;
    }
    sqlite3_stmt *s = NULL;
    rc = conn_stmt(c, S_JOB_INSERT, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    bind_str(s, 1, k->role);
    bind_str(s, 2, k->environment);
    bind_str(s, 3, k->name);
    rc = step_done(c, s, err, "insert job");
    if (rc != BO_OK) {
        return rc;
    }
    *id = sqlite3_last_insert_rowid(c->db);
    return BO_OK;
}

/* Delete the job row if nothing refers to it any more. */
static int job_gc(struct conn *c, int64_t id, struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_JOB_GC, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, id);
    return step_done(c, s, err, "collect job");
}

/* ---------------------------------------------------------- configs ---- */

static void host_cache_reset(struct bo_store *st);

static void memo_clear(struct bo_store *st)
{
    st->memo_gen++;
    st->memo_conn = NULL;
}

/* Forget every row id remembered in memory: after a rollback or a restore. */
static void memo_reset(struct bo_store *st)
{
    memo_clear(st);
    host_cache_reset(st);
}

static struct memo_entry *memo_find(struct bo_store *st, const struct conn *c, uint64_t h,
                                    const uint8_t *bytes, size_t len)
{
    if (st->memo_conn != c || st->memo == NULL) {
        return NULL;
    }
    struct memo_entry *set = &st->memo[h % (MEMO_SIZE / MEMO_WAYS) * MEMO_WAYS];
    for (struct memo_entry *e = set; e < set + MEMO_WAYS; e++) {
        if (e->gen == st->memo_gen && e->hash == h && e->raw.len == len &&
            memcmp(e->raw.data, bytes, len) == 0) {
            e->used = ++st->memo_clock;
            return e;
        }
    }
    return NULL;
}

static int memo_put_job(struct bo_buf *b, const Bo__JobKey *job)
{
    b->len = 0;
    if (job == NULL) {
        return BO_OK;
    }
    const char *parts[] = {job->role, job->environment, job->name};
    int rc = BO_OK;
    for (size_t i = 0; i < 3 && rc == BO_OK; i++) {
        const char *p = parts[i] != NULL ? parts[i] : "";
        rc = bo_buf_append(b, p, strlen(p) + 1);
    }
    return rc;
}

static void memo_add(struct bo_store *st, const struct conn *c, uint64_t h, const uint8_t *bytes,
                     size_t len, const Bo__JobKey *job, int64_t config_id, int64_t job_id)
{
    if (st->memo_conn != c) {
        memo_clear(st);
        st->memo_conn = c;
    }
    if (st->memo == NULL) {
        st->memo = bo_calloc(MEMO_SIZE, sizeof(*st->memo));
        if (st->memo == NULL) {
            return; /* a memo miss costs time, not correctness */
        }
    }
    /* The entry for these bytes if there is one, else a free one, else the
     * one used longest ago. */
    struct memo_entry *set = &st->memo[h % (MEMO_SIZE / MEMO_WAYS) * MEMO_WAYS];
    struct memo_entry *e = set;
    for (struct memo_entry *x = set; x < set + MEMO_WAYS; x++) {
        if (x->gen == st->memo_gen && x->hash == h && x->raw.len == len &&
            memcmp(x->raw.data, bytes, len) == 0) {
            e = x;
            break;
        }
        bool e_free = e->gen != st->memo_gen;
        if (x->gen != st->memo_gen ? !e_free : !e_free && x->used < e->used) {
            e = x;
        }
    }
    e->gen = 0;
    e->used = ++st->memo_clock;
    e->raw.len = 0;
    if (bo_buf_append(&e->raw, bytes, len) != BO_OK || memo_put_job(&e->job, job) != BO_OK) {
        return;
    }
    e->gen = st->memo_gen;
    e->hash = h;
    e->config_id = config_id;
    e->job_id = job_id;
}

/* Look up a canonical encoding; BO_ENOTFOUND if no row holds these bytes. */
static int config_find(struct conn *c, struct bo_hash128 h, const uint8_t *body, size_t len,
                       int64_t *id, int64_t *job_id, struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_CFG_FIND, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, (int64_t)h.lo);
    sqlite3_bind_int64(s, 2, (int64_t)h.hi);
    int step;
    rc = BO_ENOTFOUND;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        size_t blen;
        const uint8_t *b = col_blob(s, 2, &blen);
        if (blen == len && memcmp(b, body, len) == 0) {
            *id = sqlite3_column_int64(s, 0);
            *job_id = sqlite3_column_int64(s, 1);
            rc = BO_OK;
            break;
        }
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = sql_fail(c->db, step, err, "find config");
    }
    sqlite3_reset(s);
    return rc;
}

/* Find or insert the row for a canonical encoding (refs untouched). */
static int config_store_canonical(struct conn *c, const Bo__JobKey *job, const uint8_t *body,
                                  size_t len, int64_t *id, int64_t *job_id, struct bo_err *err)
{
    struct bo_hash128 h = bo_hash128(body, len);
    int rc = config_find(c, h, body, len, id, job_id, err);
    if (rc != BO_ENOTFOUND) {
        return rc;
    }
    rc = job_intern(c, job, job_id, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_stmt *s = NULL;
    rc = conn_stmt(c, S_CFG_INSERT, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, (int64_t)h.lo);
    sqlite3_bind_int64(s, 2, (int64_t)h.hi);
    sqlite3_bind_int64(s, 3, *job_id);
    bind_blob(s, 4, body, len);
    rc = step_done(c, s, err, "insert config");
    if (rc != BO_OK) {
        return rc;
    }
    *id = sqlite3_last_insert_rowid(c->db);
    return BO_OK;
}

/* The stub `cfg` is, or NULL if it is a config of its own. */
static struct cfg_stub *stub_of(const struct bo_store *st, const Bo__TaskConfig *cfg)
{
    uintptr_t p = (uintptr_t)cfg;
    uintptr_t first = (uintptr_t)st->stubs;
    if (st->n_stubs == 0 || p < first || p >= first + st->n_stubs * sizeof(*st->stubs)) {
        return NULL;
    }
    struct cfg_stub *sb = &st->stubs[(p - first) / sizeof(*st->stubs)];
    return &sb->cfg == cfg ? sb : NULL;
}

/* The row id of `cfg`'s canonical form (inserting it if new) and of its job.
 * `cfg` is not modified: a config not in canonical order already is encoded
 * from a shallow copy with sorted copies of its arrays; one in order (as the
 * encoding of a stored config is) is encoded as it is. One encoding per
 * config serves the memo and the lookup. */
static int config_intern(struct bo_store *st, struct conn *c, const Bo__TaskConfig *cfg,
                         int64_t *id, int64_t *job_id, struct bo_err *err)
{
    int rc;
    struct cfg_stub *sb = stub_of(st, cfg);
    if (sb != NULL) {
        if (sb->known && sb->gen == st->memo_gen && st->memo_conn == c) {
            *id = sb->config_id;
            *job_id = sb->job_id;
            return BO_OK;
        }
        /* Unknown when the entry was decoded, or known but a config row
         * went since: interned from its decoded form. */
        if (sb->full == NULL) {
            ProtobufCAllocator alloc = {arena_alloc, arena_free, &st->apply_arena};
            sb->full = bo__task_config__unpack(&alloc, sb->len, sb->raw);
            if (sb->full == NULL) {
                return bo_errf(err, BO_ENOMEM, "decode config: out of memory");
            }
        }
        cfg = sb->full;
    }
    st->raw.len = 0;
    if (bo_canon_task_config_is_canonical(cfg)) {
        rc = pack_into(&cfg->base, &st->raw);
    } else {
        struct arena_mark mark = arena_mark(&st->apply_arena);
        ProtobufCAllocator alloc = {arena_alloc, arena_free, &st->apply_arena};
        rc = bo_canon_encode_config_const(cfg, &alloc, &st->raw);
        arena_rewind(&st->apply_arena, mark);
    }
    if (rc != BO_OK) {
        return bo_errf(err, rc, "canonicalize config: %s", bo_strerror(rc));
    }
    uint64_t h = bo_hash64(st->raw.data, st->raw.len);
    struct memo_entry *e = memo_find(st, c, h, st->raw.data, st->raw.len);
    if (e != NULL) {
        *id = e->config_id;
        *job_id = e->job_id;
    } else {
        rc = config_store_canonical(c, cfg->job, st->raw.data, st->raw.len, id, job_id, err);
        if (rc != BO_OK) {
            return rc;
        }
        if (sb == NULL) {
            memo_add(st, c, h, st->raw.data, st->raw.len, cfg->job, *id, *job_id);
        }
    }
    if (sb != NULL) {
        /* Only the bytes it came as: the next entry with it brings those. */
        memo_add(st, c, sb->hash, sb->raw, sb->len, cfg->job, *id, *job_id);
        sb->known = true;
        sb->gen = st->memo_gen;
        sb->config_id = *id;
        sb->job_id = *job_id;
    }
    return BO_OK;
}

static int config_ref(struct conn *c, int64_t id, int64_t refs, int64_t task_refs,
                      struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_CFG_REF, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, refs);
    sqlite3_bind_int64(s, 3, task_refs);
    return step_done(c, s, err, "reference config");
}

/* Drop one reference; the config (and then perhaps its job) goes with the last. */
static int config_unref(struct bo_store *st, struct conn *c, int64_t id, bool by_task,
                        struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_CFG_UNREF, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, by_task ? 1 : 0);
    rc = step_row(c, s, err, "release config");
    if (rc == BO_ENOTFOUND) {
        return bo_errf(err, BO_EINTERNAL, "release config %lld: no such row", (long long)id);
    }
    if (rc != BO_OK) {
        return rc;
    }
    int64_t refs = sqlite3_column_int64(s, 0);
    int64_t job_id = sqlite3_column_int64(s, 1);
    rc = step_done(c, s, err, "release config");
    if (rc != BO_OK || refs > 0) {
        return rc;
    }
    rc = conn_stmt(c, S_CFG_DELETE, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, id);
    rc = step_done(c, s, err, "delete config");
    if (rc != BO_OK) {
        return rc;
    }
    memo_clear(st);
    return job_gc(c, job_id, err);
}

/* Config bodies unpacked once per query, looked up by row id. */
void bo_config_cache_release(struct bo_config_cache *cc)
{
    for (size_t i = 0; i < cc->n; i++) {
        bo__task_config__free_unpacked(cc->cfgs[i], NULL);
    }
    bo_free(cc->ids);
    bo_free(cc->cfgs);
    *cc = (struct bo_config_cache){0};
}

static int cfg_cache_get(struct conn *c, struct bo_config_cache *cc, int64_t id,
                         Bo__TaskConfig **out, struct bo_err *err)
{
    size_t lo = 0, hi = cc->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cc->ids[mid] < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < cc->n && cc->ids[lo] == id) {
        *out = cc->cfgs[lo];
        return BO_OK;
    }
    if (cc->n == cc->cap) {
        size_t cap = cc->cap == 0 ? 8 : cc->cap * 2;
        int64_t *ids = bo_reallocarray(cc->ids, cap, sizeof(*ids));
        if (ids == NULL) {
            return bo_errf(err, BO_ENOMEM, "config cache: out of memory");
        }
        cc->ids = ids;
        Bo__TaskConfig **cfgs = bo_reallocarray(cc->cfgs, cap, sizeof(*cfgs));
        if (cfgs == NULL) {
            return bo_errf(err, BO_ENOMEM, "config cache: out of memory");
        }
        cc->cfgs = cfgs;
        cc->cap = cap;
    }
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_CFG_BODY, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, id);
    rc = step_row(c, s, err, "read config");
    if (rc == BO_ENOTFOUND) {
        return bo_errf(err, BO_ECORRUPT, "config %lld is missing", (long long)id);
    }
    if (rc != BO_OK) {
        return rc;
    }
    size_t len;
    const uint8_t *p = col_blob(s, 0, &len);
    Bo__TaskConfig *cfg = bo__task_config__unpack(NULL, len, p);
    sqlite3_reset(s);
    if (cfg == NULL) {
        return bo_errf(err, BO_ECORRUPT, "config %lld: cannot decode", (long long)id);
    }
    memmove(&cc->ids[lo + 1], &cc->ids[lo], (cc->n - lo) * sizeof(*cc->ids));
    memmove(&cc->cfgs[lo + 1], &cc->cfgs[lo], (cc->n - lo) * sizeof(*cc->cfgs));
    cc->ids[lo] = id;
    cc->cfgs[lo] = cfg;
    cc->n++;
    *out = cfg;
    return BO_OK;
}

/* --------------------------------------------------------- validation ---- */

static const char *op_name(int op_case)
{
    static const char *const names[] = {
        [BO__OP__OP__NOT_SET] = "empty",
        [BO__OP__OP_SAVE_TASKS] = "save_tasks",
        [BO__OP__OP_REMOVE_TASKS] = "remove_tasks",
        [BO__OP__OP_SAVE_CRON_JOB] = "save_cron_job",
        [BO__OP__OP_REMOVE_CRON_JOB] = "remove_cron_job",
        [BO__OP__OP_SAVE_QUOTA] = "save_quota",
        [BO__OP__OP_REMOVE_QUOTA] = "remove_quota",
        [BO__OP__OP_SAVE_HOST_ATTRIBUTES] = "save_host_attributes",
        [BO__OP__OP_SAVE_JOB_UPDATE] = "save_job_update",
        [BO__OP__OP_SAVE_JOB_UPDATE_EVENT] = "save_job_update_event",
        [BO__OP__OP_SAVE_JOB_INSTANCE_UPDATE_EVENT] = "save_job_instance_update_event",
        [BO__OP__OP_REMOVE_JOB_UPDATES] = "remove_job_updates",
        [BO__OP__OP_SAVE_HOST_MAINTENANCE_REQUEST] = "save_host_maintenance_request",
        [BO__OP__OP_REMOVE_HOST_MAINTENANCE_REQUEST] = "remove_host_maintenance_request",
        [BO__OP__OP_SAVE_SCHEDULER_METADATA] = "save_scheduler_metadata",
        [BO__OP__OP_SAVE_TASK_STATES] = "save_task_states",
        [BO__OP__OP_SAVE_TASKS_SHARED] = "save_tasks_shared",
    };
    if (op_case < 0 || (size_t)op_case >= sizeof(names) / sizeof(names[0])) {
        return "unknown";
    }
    return names[op_case];
}

/* Validators fill `why` and return false when something is wrong. */
#define WHY(...) (snprintf(why, n, __VA_ARGS__), false)

static bool check_job_key(const Bo__JobKey *k, const char *field, char *why, size_t n)
{
    if (k == NULL) {
        return WHY("missing %s", field);
    }
    if (str_empty(k->role)) {
        return WHY("%s: empty role", field);
    }
    if (str_empty(k->environment)) {
        return WHY("%s: empty environment", field);
    }
    if (str_empty(k->name)) {
        return WHY("%s: empty name", field);
    }
    return true;
}

static bool check_task(const Bo__ScheduledTask *t, char *why, size_t n)
{
    if (t == NULL) {
        return WHY("missing");
    }
    const Bo__AssignedTask *a = t->assigned_task;
    if (a == NULL) {
        return WHY("missing assigned_task");
    }
    if (str_empty(a->task_id)) {
        return WHY("empty assigned_task.task_id");
    }
    if (a->task == NULL) {
        return WHY("missing assigned_task.task");
    }
    if (!check_job_key(a->task->job, "assigned_task.task.job", why, n)) {
        return false;
    }
    if (a->instance_id < 0) {
        return WHY("negative assigned_task.instance_id %d", a->instance_id);
    }
    if (!status_known((int)t->status)) {
        return WHY("unknown status %d", (int)t->status);
    }
    return true;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* No task id twice among `tasks` (each with an assigned_task and an id). */
static bool check_unique_ids(Bo__ScheduledTask *const *tasks, size_t n_tasks, char *why, size_t n)
{
    if (n_tasks < 2) {
        return true;
    }
    const char **ids = bo_calloc(n_tasks, sizeof(*ids));
    if (ids == NULL) {
        return WHY("out of memory");
    }
    for (size_t i = 0; i < n_tasks; i++) {
        ids[i] = tasks[i]->assigned_task->task_id;
    }
    qsort(ids, n_tasks, sizeof(*ids), cmp_str_ptr);
    bool ok = true;
    for (size_t i = 1; i < n_tasks && ok; i++) {
        if (strcmp(ids[i - 1], ids[i]) == 0) {
            ok = WHY("task id '%s' appears twice", ids[i]);
        }
    }
    bo_free(ids);
    return ok;
}

static bool check_save_tasks(const Bo__SaveTasks *op, char *why, size_t n)
{
    for (size_t i = 0; i < op->n_tasks; i++) {
        char inner[256];
        if (!check_task(op->tasks[i], inner, sizeof(inner))) {
            return WHY("task %zu: %s", i, inner);
        }
    }
    return check_unique_ids(op->tasks, op->n_tasks, why, n);
}

/* `t` as a task of `cfg`: shallow copies, valid while `t` and `cfg` are. */
static const Bo__ScheduledTask *with_config(const Bo__ScheduledTask *t, const Bo__TaskConfig *cfg,
                                            Bo__ScheduledTask *ts, Bo__AssignedTask *as)
{
    *ts = *t;
    *as = *t->assigned_task;
    as->task = (Bo__TaskConfig *)cfg;
    ts->assigned_task = as;
    return ts;
}

static bool check_tasks_shared(const Bo__SaveTasksShared *op, char *why, size_t n)
{
    if (op->config == NULL) {
        return WHY("missing config");
    }
    for (size_t i = 0; i < op->n_tasks; i++) {
        const Bo__ScheduledTask *t = op->tasks[i];
        if (t == NULL || t->assigned_task == NULL) {
            return WHY("task %zu: missing assigned_task", i);
        }
        if (t->assigned_task->task != NULL) {
            return WHY("task %zu: carries a config of its own", i);
        }
        Bo__ScheduledTask ts;
        Bo__AssignedTask as;
        char inner[256];
        if (!check_task(with_config(t, op->config, &ts, &as), inner, sizeof(inner))) {
            return WHY("task %zu: %s", i, inner);
        }
    }
    return check_unique_ids(op->tasks, op->n_tasks, why, n);
}

static bool check_task_states(const Bo__SaveTaskStates *op, char *why, size_t n)
{
    for (size_t i = 0; i < op->n_tasks; i++) {
        const Bo__ScheduledTask *t = op->tasks[i];
        if (t == NULL || t->assigned_task == NULL || str_empty(t->assigned_task->task_id)) {
            return WHY("task %zu: missing assigned_task.task_id", i);
        }
        if (t->assigned_task->task != NULL) {
            return WHY("task %zu: carries a config (use save_tasks)", i);
        }
        if (!status_known((int)t->status)) {
            return WHY("task %zu: unknown status %d", i, (int)t->status);
        }
    }
    return true;
}

static bool check_cron_job(const Bo__JobConfiguration *jc, char *why, size_t n)
{
    if (jc == NULL) {
        return WHY("missing job_config");
    }
    if (!check_job_key(jc->key, "job_config.key", why, n)) {
        return false;
    }
    if (jc->task_config == NULL) {
        return WHY("missing job_config.task_config");
    }
    return check_job_key(jc->task_config->job, "job_config.task_config.job", why, n);
}

static bool check_update_key(const Bo__JobUpdateKey *k, const char *field, char *why, size_t n)
{
    if (k == NULL) {
        return WHY("missing %s", field);
    }
    char jf[64];
    snprintf(jf, sizeof(jf), "%s.job", field);
    if (!check_job_key(k->job, jf, why, n)) {
        return false;
    }
    if (str_empty(k->id)) {
        return WHY("empty %s.id", field);
    }
    return true;
}

static bool check_instance_config(const Bo__InstanceTaskConfig *c, const char *field, char *why,
                                  size_t n)
{
    if (c->task == NULL) {
        return WHY("%s: missing task", field);
    }
    char jf[96];
    snprintf(jf, sizeof(jf), "%s.task.job", field);
    if (!check_job_key(c->task->job, jf, why, n)) {
        return false;
    }
    if (c->n_instances == 0) {
        return WHY("%s: no instances", field);
    }
    for (size_t i = 0; i < c->n_instances; i++) {
        const Bo__Range *r = c->instances[i];
        if (r == NULL || r->first < 0 || r->first > r->last) {
            return WHY("%s: instance range %zu is empty", field, i);
        }
    }
    return true;
}

/* Aurora's saveJobUpdate checks: desired and/or initial state, no missing
 * config, no empty range. */
static bool check_job_update(const Bo__JobUpdate *u, char *why, size_t n)
{
    if (u == NULL) {
        return WHY("missing job_update");
    }
    if (u->summary == NULL) {
        return WHY("missing summary");
    }
    if (!check_update_key(u->summary->key, "summary.key", why, n)) {
        return false;
    }
    const Bo__JobUpdateInstructions *in = u->instructions;
    if (in == NULL) {
        return WHY("missing instructions");
    }
    if (in->desired_state == NULL && in->n_initial_state == 0) {
        return WHY("instructions: no desired or initial state");
    }
    if (in->desired_state != NULL &&
        !check_instance_config(in->desired_state, "instructions.desired_state", why, n)) {
        return false;
    }
    for (size_t i = 0; i < in->n_initial_state; i++) {
        char field[64];
        snprintf(field, sizeof(field), "instructions.initial_state[%zu]", i);
        if (in->initial_state[i] == NULL) {
            return WHY("missing %s", field);
        }
        if (!check_instance_config(in->initial_state[i], field, why, n)) {
            return false;
        }
    }
    return true;
}

static bool check_host_attributes(const Bo__HostAttributes *h, char *why, size_t n)
{
    if (h == NULL) {
        return WHY("missing host_attributes");
    }
    if (str_empty(h->host)) {
        return WHY("empty host");
    }
    if (protobuf_c_enum_descriptor_get_value(&bo__maintenance_mode__descriptor, (int)h->mode) ==
        NULL) {
        return WHY("unknown mode %d", (int)h->mode);
    }
    for (size_t i = 0; i < h->n_attributes; i++) {
        const Bo__Attribute *a = h->attributes[i];
        if (a == NULL || str_empty(a->name)) {
            return WHY("attribute %zu: empty name", i);
        }
        if (a->n_values == 0) {
            return WHY("attribute '%s': no values", a->name);
        }
    }
    return true;
}

static bool check_op(const Bo__Op *op, char *why, size_t n)
{
    if (op == NULL) {
        return WHY("missing");
    }
    switch (op->op_case) {
    case BO__OP__OP_SAVE_TASKS:
        return check_save_tasks(op->save_tasks, why, n);
    case BO__OP__OP_SAVE_TASK_STATES:
        return check_task_states(op->save_task_states, why, n);
    case BO__OP__OP_SAVE_TASKS_SHARED:
        return check_tasks_shared(op->save_tasks_shared, why, n);
    case BO__OP__OP_REMOVE_TASKS:
        return true; /* missing ids are ignored */
    case BO__OP__OP_SAVE_CRON_JOB:
        return check_cron_job(op->save_cron_job->job_config, why, n);
    case BO__OP__OP_REMOVE_CRON_JOB:
        return check_job_key(op->remove_cron_job->job_key, "job_key", why, n);
    case BO__OP__OP_SAVE_QUOTA:
        return str_empty(op->save_quota->role) ? WHY("empty role") : true;
    case BO__OP__OP_REMOVE_QUOTA:
        return str_empty(op->remove_quota->role) ? WHY("empty role") : true;
    case BO__OP__OP_SAVE_HOST_ATTRIBUTES:
        return check_host_attributes(op->save_host_attributes->host_attributes, why, n);
    case BO__OP__OP_SAVE_JOB_UPDATE:
        return check_job_update(op->save_job_update->job_update, why, n);
    case BO__OP__OP_SAVE_JOB_UPDATE_EVENT: {
        const Bo__SaveJobUpdateEvent *e = op->save_job_update_event;
        if (!check_update_key(e->key, "key", why, n)) {
            return false;
        }
        return e->event == NULL ? WHY("missing event") : true;
    }
    case BO__OP__OP_SAVE_JOB_INSTANCE_UPDATE_EVENT: {
        const Bo__SaveJobInstanceUpdateEvent *e = op->save_job_instance_update_event;
        if (!check_update_key(e->key, "key", why, n)) {
            return false;
        }
        return e->event == NULL ? WHY("missing event") : true;
    }
    case BO__OP__OP_REMOVE_JOB_UPDATES:
        for (size_t i = 0; i < op->remove_job_updates->n_keys; i++) {
            char field[32];
            snprintf(field, sizeof(field), "keys[%zu]", i);
            if (!check_update_key(op->remove_job_updates->keys[i], field, why, n)) {
                return false;
            }
        }
        return true;
    case BO__OP__OP_SAVE_HOST_MAINTENANCE_REQUEST: {
        const Bo__HostMaintenanceRequest *r = op->save_host_maintenance_request->request;
        if (r == NULL) {
            return WHY("missing request");
        }
        return str_empty(r->host) ? WHY("empty request.host") : true;
    }
    case BO__OP__OP_REMOVE_HOST_MAINTENANCE_REQUEST:
        return str_empty(op->remove_host_maintenance_request->host) ? WHY("empty host") : true;
    case BO__OP__OP_SAVE_SCHEDULER_METADATA:
        return op->save_scheduler_metadata->metadata == NULL ? WHY("missing metadata") : true;
    default:
        return WHY("no op set");
    }
}

/* The shape of a transaction: what needs no look at the state. */
static int check_txn(const Bo__Transaction *txn, struct bo_err *err)
{
    if (txn == NULL) {
        return bo_errf(err, BO_EINVAL, "missing transaction");
    }
    if (txn->schema_version > BO_TXN_VERSION || txn->schema_version < 0) {
        return bo_errf(err, BO_EVERSION, "transaction schema version %d (this store knows %d)",
                       txn->schema_version, BO_TXN_VERSION);
    }
    for (size_t i = 0; i < txn->n_ops; i++) {
        char why[384];
        if (!check_op(txn->ops[i], why, sizeof(why))) {
            return bo_errf(err, BO_EINVAL, "op %zu (%s): %s", i,
                           txn->ops[i] != NULL ? op_name(txn->ops[i]->op_case) : "empty", why);
        }
    }
    return BO_OK;
}

#undef WHY

/* ------------------------------------------------------------- tasks ---- */

/* Tasks per job and status, in memory: what job and role summaries show.
 * Kept in a table, a state change cost three statements (add, subtract,
 * prune an emptied row), an eighth of the applier's time at 64 writes in
 * flight, for numbers `tasks` holds anyway; here it costs two lookups.
 *
 * The tally matches the main connection's state, an open group's applies
 * included: an apply's changes are noted apart (counts_note) and join the
 * tally once its transaction or savepoint is released (counts_fold), so a
 * failed apply leaves it as it was. Where SQLite undoes more than one apply
 * (a group lost with a failed commit), where a change does not fit (out of
 * memory), and for a file opened as it is, the tally is marked stale and
 * counted again from `tasks` at its next use (tally_ready). A restore counts
 * what it inserts and installs that with the state. Statuses outside the
 * known ones (a newer writer's) are not counted, as summaries never showed
 * them. */
#define N_STATUS 19

struct job_tally {
    int64_t job_id;
    int64_t tasks; /* the sum of n[]: none left removes the entry */
    int64_t n[N_STATUS];
    UT_hash_handle hh;
};

static void tally_free(struct job_tally **t)
{
    struct job_tally *e, *tmp;
    HASH_ITER(hh, *t, e, tmp)
    {
        HASH_DEL(*t, e);
        bo_free(e);
    }
}

static struct job_tally *tally_find(struct job_tally *t, int64_t job_id)
{
    struct job_tally *e = NULL;
    HASH_FIND(hh, t, &job_id, sizeof(job_id), e);
    return e;
}

/* n[status] of `job_id` += delta. BO_ENOMEM, or BO_ECORRUPT for a count
 * that would go below zero (the tally does not match the tasks). */
static int tally_add(struct job_tally **t, int64_t job_id, int64_t status, int64_t delta)
{
    if (status < 0 || status >= N_STATUS || delta == 0) {
        return BO_OK;
    }
    struct job_tally *e = tally_find(*t, job_id);
    if (e == NULL) {
        if (delta < 0) {
            return BO_ECORRUPT;
        }
        e = bo_calloc(1, sizeof(*e));
        if (e == NULL) {
            return BO_ENOMEM;
        }
        e->job_id = job_id;
        HASH_ADD(hh, *t, job_id, sizeof(e->job_id), e);
        if (e->hh.tbl == NULL) {
            bo_free(e);
            return BO_ENOMEM;
        }
    }
    if (e->n[status] + delta < 0) {
        return BO_ECORRUPT;
    }
    e->n[status] += delta;
    e->tasks += delta;
    if (e->tasks == 0) {
        HASH_DEL(*t, e);
        bo_free(e);
    }
    return BO_OK;
}

/* Count the tasks of the main connection's state again. */
static int tally_recount(struct bo_store *st, struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(
        st->main.db, "SELECT job_id, status, count(*) FROM tasks GROUP BY job_id, status", -1, &s,
        NULL);
    if (src != SQLITE_OK) {
        return sql_fail(st->main.db, src, err, "count tasks");
    }
    struct job_tally *t = NULL;
    int rc = BO_OK;
    while (rc == BO_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
        rc = tally_add(&t, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
                       sqlite3_column_int64(s, 2));
    }
    if (rc != BO_OK) {
        rc = bo_errf(err, rc, "count tasks: %s", bo_strerror(rc));
    } else if (src != SQLITE_DONE) {
        rc = sql_fail(st->main.db, src, err, "count tasks");
    }
    sqlite3_finalize(s);
    if (rc != BO_OK) {
        tally_free(&t);
        return rc;
    }
    tally_free(&st->tally);
    st->tally = t;
    st->tally_stale = false;
    return BO_OK;
}

/* The tally, counted again first if it is stale. */
static int tally_ready(struct bo_store *st, struct bo_err *err)
{
    return st->tally_stale ? tally_recount(st, err) : BO_OK;
}

/* Count changes of the apply in progress, summed per job and status. */
struct count_delta {
    struct count_key {
        int64_t job_id;
        int64_t status;
    } key;
    int64_t delta;
    UT_hash_handle hh;
};

static void counts_forget(struct bo_store *st)
{
    struct count_delta *d, *tmp;
    HASH_ITER(hh, st->count_deltas, d, tmp)
    {
        HASH_DEL(st->count_deltas, d);
        bo_free(d);
    }
}

static int counts_note(struct bo_store *st, int64_t job_id, int status, int64_t delta,
                       struct bo_err *err)
{
    struct count_key k = {job_id, status};
    struct count_delta *d = NULL;
    HASH_FIND(hh, st->count_deltas, &k, sizeof(k), d);
    if (d == NULL) {
        d = bo_calloc(1, sizeof(*d));
        if (d == NULL) {
            return bo_errf(err, BO_ENOMEM, "count tasks: out of memory");
        }
        d->key = k;
        HASH_ADD(hh, st->count_deltas, key, sizeof(d->key), d);
        if (d->hh.tbl == NULL) {
            bo_free(d);
            return bo_errf(err, BO_ENOMEM, "count tasks: out of memory");
        }
    }
    d->delta += delta;
    return BO_OK;
}

/* The apply in progress is released: its changes join the tally. */
static void counts_fold(struct bo_store *st)
{
    for (struct count_delta *d = st->count_deltas; d != NULL && !st->tally_stale; d = d->hh.next) {
        if (tally_add(&st->tally, d->key.job_id, d->key.status, d->delta) != BO_OK) {
            st->tally_stale = true;
        }
    }
    counts_forget(st);
}

/* The task's encoding without its config: what the tasks table and a
 * deduplicated snapshot hold. */
static int encode_partial_task(const Bo__ScheduledTask *t, struct bo_buf *out)
{
    Bo__ScheduledTask copy = *t;
    Bo__AssignedTask assigned = *t->assigned_task;
    assigned.task = NULL;
    copy.assigned_task = &assigned;
    return pack_into(&copy.base, out);
}

struct task_row {
    int64_t id;
    int64_t config_id;
    int64_t job_id;
    int64_t host_id;
    int32_t instance_id;
    int status;
};

static int task_find(struct conn *c, const char *task_id, struct task_row *row, struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_TASK_FIND, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    bind_str(s, 1, task_id);
    rc = step_row(c, s, err, "find task");
    if (rc != BO_OK) {
        return rc;
    }
    row->id = sqlite3_column_int64(s, 0);
    row->config_id = sqlite3_column_int64(s, 1);
    row->job_id = sqlite3_column_int64(s, 2);
    row->status = sqlite3_column_int(s, 3);
    row->instance_id = sqlite3_column_int(s, 4);
    row->host_id = sqlite3_column_int64(s, 5);
    sqlite3_reset(s);
    return BO_OK;
}

/* Insert or replace the body of task row `id`. */
static int body_put(struct conn *c, int64_t id, int64_t config_id, const uint8_t *body, size_t len,
                    struct bo_err *err);

/* The body of task row `id`, which has one already (`exists`) or not. */
static int body_write(struct conn *c, bool exists, int64_t id, int64_t config_id,
                      const uint8_t *body, size_t len, struct bo_err *err)
{
    if (!exists) {
        return body_put(c, id, config_id, body, len, err);
    }
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_BODY_SET, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, config_id);
    bind_blob(s, 3, body, len);
    rc = step_done(c, s, err, "store task body");
    if (rc == BO_OK && sqlite3_changes(c->db) != 1) {
        rc = bo_errf(err, BO_ECORRUPT, "store task body: task row %lld has no body", (long long)id);
    }
    return rc;
}

static int body_put(struct conn *c, int64_t id, int64_t config_id, const uint8_t *body, size_t len,
                    struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_BODY_PUT, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, config_id);
    bind_blob(s, 3, body, len);
    return step_done(c, s, err, "store task body");
}

/* The row id of host name `name` (`len` bytes) in `hosts`, added if new. */
static int host_id(struct conn *c, const char *name, size_t len, int64_t *id, struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_HOSTNAME_FIND, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_text(s, 1, name, (int)len, SQLITE_STATIC);
    rc = step_row(c, s, err, "find host");
    if (rc == BO_OK) {
        *id = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        return BO_OK;
    }
    if (rc != BO_ENOTFOUND) {
        return rc;
    }
    rc = conn_stmt(c, S_HOSTNAME_INSERT, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_text(s, 1, name, (int)len, SQLITE_STATIC);
    rc = step_done(c, s, err, "insert host");
    if (rc == BO_OK) {
        *id = sqlite3_last_insert_rowid(c->db);
    }
    return rc;
}

static int host_cached_id(struct bo_store *st, struct conn *c, const char *name, size_t len,
                          int64_t *id, struct bo_err *err);

/* Insert or replace by task id. The new config is referenced before the old
 * one is released so a task keeping its config never deletes it. */
/* Write a task's row and body, given its config and job; `old` is its row
 * before (replace) or NULL (insert). Keeps the config reference counts and
 * per-status counts right. */
static int task_write(struct bo_store *st, struct conn *c, const Bo__ScheduledTask *t,
                      int64_t config_id, int64_t job_id, const struct task_row *old,
                      struct bo_err *err)
{
    const Bo__AssignedTask *a = t->assigned_task;
    bool replace = old != NULL;
    /* A status change keeps the config: its reference count stays, and the
     * per-status counts move only when the status (or job) does. */
    bool same_config = replace && old->config_id == config_id;
    bool same_count = replace && old->job_id == job_id && old->status == (int)t->status;
    int rc;
    if (!same_config) {
        rc = config_ref(c, config_id, 1, 1, err);
        if (rc != BO_OK) {
            return rc;
        }
    }
    if (encode_partial_task(t, &st->part) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "encode task: out of memory");
    }
    const char *host = a->slave_host != NULL ? a->slave_host : "";
    int64_t hid;
    rc = host_cached_id(st, c, host, strlen(host), &hid, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_stmt *s = NULL;
    if (replace && same_config && old->job_id == job_id && old->instance_id == a->instance_id) {
        /* A state change: the row's status and host at most. */
        if (old->host_id != hid) {
            rc = conn_stmt(c, S_TASK_SET_STATE, &s, err);
            if (rc == BO_OK) {
                sqlite3_bind_int64(s, 3, hid);
            }
        } else if (old->status != (int)t->status) {
            rc = conn_stmt(c, S_TASK_SET_STATUS, &s, err);
        }
        if (rc != BO_OK) {
            return rc;
        }
        if (s != NULL) {
            sqlite3_bind_int64(s, 1, old->id);
            sqlite3_bind_int(s, 2, (int)t->status);
            rc = step_done(c, s, err, "update task");
            if (rc != BO_OK) {
                return rc;
            }
        }
    } else {
        rc = conn_stmt(c, replace ? S_TASK_UPDATE : S_TASK_INSERT, &s, err);
        if (rc != BO_OK) {
            return rc;
        }
        int k = 1;
        if (replace) {
            sqlite3_bind_int64(s, k++, old->id);
        } else {
            sqlite3_bind_null(s, k++);
            bind_str(s, k++, a->task_id);
        }
        sqlite3_bind_int64(s, k++, job_id);
        sqlite3_bind_int(s, k++, a->instance_id);
        sqlite3_bind_int(s, k++, (int)t->status);
        sqlite3_bind_int64(s, k++, hid);
        sqlite3_bind_int64(s, k++, config_id);
        rc = step_done(c, s, err, replace ? "update task" : "insert task");
        if (rc != BO_OK) {
            return rc;
        }
    }
    rc = body_write(c, replace, replace ? old->id : sqlite3_last_insert_rowid(c->db), config_id,
                    st->part.data, st->part.len, err);
    if (rc != BO_OK) {
        return rc;
    }
    if (same_count) {
        return same_config ? BO_OK : config_unref(st, c, old->config_id, true, err);
    }
    rc = counts_note(st, job_id, (int)t->status, 1, err);
    if (rc != BO_OK || !replace) {
        return rc;
    }
    rc = counts_note(st, old->job_id, old->status, -1, err);
    if (rc != BO_OK || same_config) {
        return rc;
    }
    return config_unref(st, c, old->config_id, true, err);
}

/* Save `t` as a new task if no task has its id: the row goes in first and
 * the unique index on task ids says whether one was there, so saving a new
 * task costs no lookup by task id. BO_EEXIST (nothing written) if one was. */
static int task_insert_new(struct bo_store *st, struct conn *c, const Bo__ScheduledTask *t,
                           int64_t config_id, int64_t job_id, struct bo_err *err)
{
    const Bo__AssignedTask *a = t->assigned_task;
    const char *host = a->slave_host != NULL ? a->slave_host : "";
    int64_t hid;
    int rc = host_cached_id(st, c, host, strlen(host), &hid, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_stmt *s = NULL;
    rc = conn_stmt(c, S_TASK_INSERT_NEW, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    bind_str(s, 1, a->task_id);
    sqlite3_bind_int64(s, 2, job_id);
    sqlite3_bind_int(s, 3, a->instance_id);
    sqlite3_bind_int(s, 4, (int)t->status);
    sqlite3_bind_int64(s, 5, hid);
    sqlite3_bind_int64(s, 6, config_id);
    rc = step_done(c, s, err, "insert task");
    if (rc != BO_OK) {
        return rc;
    }
    if (sqlite3_changes(c->db) == 0) {
        return BO_EEXIST;
    }
    int64_t id = sqlite3_last_insert_rowid(c->db);
    if (encode_partial_task(t, &st->part) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "encode task: out of memory");
    }
    rc = body_put(c, id, config_id, st->part.data, st->part.len, err);
    if (rc == BO_OK) {
        rc = config_ref(c, config_id, 1, 1, err);
    }
    if (rc == BO_OK) {
        rc = counts_note(st, job_id, (int)t->status, 1, err);
    }
    return rc;
}

/* Save `t` whose config is interned already as `config_id` of `job_id`. */
static int save_task_interned(struct bo_store *st, struct conn *c, const Bo__ScheduledTask *t,
                              int64_t config_id, int64_t job_id, struct bo_err *err)
{
    const Bo__AssignedTask *a = t->assigned_task;
    int rc = task_insert_new(st, c, t, config_id, job_id, err);
    if (rc != BO_EEXIST) {
        return rc;
    }
    struct task_row old;
    rc = task_find(c, a->task_id, &old, err);
    if (rc != BO_OK && rc != BO_ENOTFOUND) {
        return rc;
    }
    return task_write(st, c, t, config_id, job_id, rc == BO_OK ? &old : NULL, err);
}

static int save_task(struct bo_store *st, struct conn *c, const Bo__ScheduledTask *t,
                     struct bo_err *err)
{
    int64_t config_id, job_id;
    int rc = config_intern(st, c, t->assigned_task->task, &config_id, &job_id, err);
    if (rc != BO_OK) {
        return rc;
    }
    return save_task_interned(st, c, t, config_id, job_id, err);
}

/* Tasks of one config: the config interned once for all of them. */
static int save_tasks_shared(struct bo_store *st, struct conn *c, const Bo__SaveTasksShared *op,
                             struct bo_err *err)
{
    int64_t config_id, job_id;
    int rc = config_intern(st, c, op->config, &config_id, &job_id, err);
    for (size_t i = 0; i < op->n_tasks && rc == BO_OK; i++) {
        Bo__ScheduledTask ts;
        Bo__AssignedTask as;
        const Bo__ScheduledTask *t = with_config(op->tasks[i], op->config, &ts, &as);
        rc = save_task_interned(st, c, t, config_id, job_id, err);
        if (rc != BO_OK) {
            rc = bo_err_wrapf(err, rc, "task '%s'", t->assigned_task->task_id);
        }
    }
    return rc;
}

/* A new state of a stored task: its config and job stay. A task the store
 * does not have is skipped (the leader checks before it appends; replicas
 * skip alike, so they agree). */
static int save_task_state(struct bo_store *st, struct conn *c, const Bo__ScheduledTask *t,
                           struct bo_err *err)
{
    struct task_row old;
    int rc = task_find(c, t->assigned_task->task_id, &old, err);
    if (rc == BO_ENOTFOUND) {
        return BO_OK;
    }
    if (rc != BO_OK) {
        return rc;
    }
    return task_write(st, c, t, old.config_id, old.job_id, &old, err);
}

static int remove_task(struct bo_store *st, struct conn *c, const char *task_id, struct bo_err *err)
{
    struct task_row old;
    int rc = task_find(c, task_id, &old, err);
    if (rc == BO_ENOTFOUND) {
        return BO_OK;
    }
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_stmt *s = NULL;
    rc = conn_stmt(c, S_TASK_DELETE, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, old.id);
    rc = step_done(c, s, err, "delete task");
    if (rc != BO_OK) {
        return rc;
    }
    rc = conn_stmt(c, S_BODY_DELETE, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, old.id);
    rc = step_done(c, s, err, "delete task");
    if (rc != BO_OK) {
        return rc;
    }
    rc = counts_note(st, old.job_id, old.status, -1, err);
    if (rc != BO_OK) {
        return rc;
    }
    return config_unref(st, c, old.config_id, true, err);
}

/* --------------------------------------------------- the other entities ---- */

static int save_cron_job(struct bo_store *st, struct conn *c, const Bo__JobConfiguration *jc,
                         struct bo_err *err)
{
    int64_t job_id, config_id, config_job_id;
    int rc = job_intern(c, jc->key, &job_id, err);
    if (rc != BO_OK) {
        return rc;
    }
    rc = config_intern(st, c, jc->task_config, &config_id, &config_job_id, err);
    if (rc != BO_OK) {
        return rc;
    }
    rc = config_ref(c, config_id, 1, 0, err);
    if (rc != BO_OK) {
        return rc;
    }
    Bo__JobConfiguration body = *jc;
    body.task_config = NULL;
    if (pack_into(&body.base, &st->part) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "encode cron job: out of memory");
    }
    sqlite3_stmt *s = NULL;
    rc = conn_stmt(c, S_CRON_FIND, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, job_id);
    rc = step_row(c, s, err, "find cron job");
    if (rc != BO_OK && rc != BO_ENOTFOUND) {
        return rc;
    }
    bool replace = rc == BO_OK;
    int64_t old_config = replace ? sqlite3_column_int64(s, 0) : 0;
    if (replace) {
        sqlite3_reset(s);
    }
    rc = conn_stmt(c, S_CRON_PUT, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, job_id);
    sqlite3_bind_int64(s, 2, config_id);
    bind_blob(s, 3, st->part.data, st->part.len);
    rc = step_done(c, s, err, "save cron job");
    if (rc != BO_OK || !replace) {
        return rc;
    }
    return config_unref(st, c, old_config, false, err);
}

static int remove_cron_job(struct bo_store *st, struct conn *c, const Bo__JobKey *key,
                           struct bo_err *err)
{
    int64_t job_id;
    int rc = job_find(c, key, &job_id, err);
    if (rc == BO_ENOTFOUND) {
        return BO_OK;
    }
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_stmt *s = NULL;
    rc = conn_stmt(c, S_CRON_FIND, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, job_id);
    rc = step_row(c, s, err, "find cron job");
    if (rc == BO_ENOTFOUND) {
        return BO_OK;
    }
    if (rc != BO_OK) {
        return rc;
    }
    int64_t config_id = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    rc = conn_stmt(c, S_CRON_DELETE, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, job_id);
    rc = step_done(c, s, err, "delete cron job");
    if (rc == BO_OK) {
        rc = config_unref(st, c, config_id, false, err);
    }
    if (rc == BO_OK) {
        rc = job_gc(c, job_id, err);
    }
    return rc;
}

static int save_quota(struct bo_store *st, struct conn *c, const char *role,
                      const Bo__ResourceAggregate *quota, struct bo_err *err)
{
    Bo__ResourceAggregate empty = BO__RESOURCE_AGGREGATE__INIT;
    if (pack_into(quota != NULL ? &quota->base : &empty.base, &st->part) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "encode quota: out of memory");
    }
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_QUOTA_PUT, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    bind_str(s, 1, role);
    bind_blob(s, 2, st->part.data, st->part.len);
    return step_done(c, s, err, "save quota");
}

/* Delete by a text key with one of the *_DELETE statements. */
static int delete_by_key(struct conn *c, enum stmt_id id, const char *key, struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, id, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    bind_str(s, 1, key);
    return step_done(c, s, err, "delete");
}

static int save_host(struct bo_store *st, struct conn *c, const Bo__HostAttributes *h,
                     struct bo_err *err)
{
    if (pack_into(&h->base, &st->part) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "encode host attributes: out of memory");
    }
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_HOST_PUT, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    bind_str(s, 1, h->host);
    sqlite3_bind_int(s, 2, (int)h->mode);
    bind_str(s, 3, h->slave_id);
    bind_blob(s, 4, st->part.data, st->part.len);
    return step_done(c, s, err, "save host attributes");
}

static int save_maintenance(struct bo_store *st, struct conn *c,
                            const Bo__HostMaintenanceRequest *r, struct bo_err *err)
{
    if (pack_into(&r->base, &st->part) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "encode maintenance request: out of memory");
    }
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_MAINT_PUT, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    bind_str(s, 1, r->host);
    bind_blob(s, 2, st->part.data, st->part.len);
    return step_done(c, s, err, "save maintenance request");
}

static int save_metadata(struct bo_store *st, struct conn *c, const Bo__SchedulerMetadata *m,
                         struct bo_err *err)
{
    if (pack_into(&m->base, &st->part) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "encode scheduler metadata: out of memory");
    }
    return meta_put_blob(c, META_SCHED_METADATA, &st->part, err);
}

/* ------------------------------------------------------- job updates ---- */

/* BO_ENOTFOUND if the job or the update does not exist. */
static int update_find(struct conn *c, const Bo__JobUpdateKey *key, int64_t *row, int64_t *job_id,
                       struct bo_err *err)
{
    int64_t jid;
    int rc = job_find(c, key->job, &jid, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_stmt *s = NULL;
    rc = conn_stmt(c, S_UPD_FIND, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, jid);
    bind_str(s, 2, key->id);
    rc = step_row(c, s, err, "find job update");
    if (rc != BO_OK) {
        return rc;
    }
    *row = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (job_id != NULL) {
        *job_id = jid;
    }
    return BO_OK;
}

static int update_not_found(const Bo__JobUpdateKey *key, struct bo_err *err)
{
    return bo_errf(err, BO_EINVAL, "job update '%s/%s/%s/%s' not found", key->job->role,
                   key->job->environment, key->job->name, key->id);
}

/* The config ids an update refers to, in (kind, position) order. */
static int update_configs(struct conn *c, int64_t row, int64_t **ids, size_t *n, struct bo_err *err)
{
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_UPD_CFG_LIST, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, row);
    size_t cap = 0;
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap == 0 ? 4 : cap * 2;
            int64_t *p = bo_reallocarray(*ids, cap, sizeof(*p));
            if (p == NULL) {
                sqlite3_reset(s);
                return bo_errf(err, BO_ENOMEM, "update configs: out of memory");
            }
            *ids = p;
        }
        (*ids)[(*n)++] = sqlite3_column_int64(s, 2);
    }
    rc = step == SQLITE_DONE ? BO_OK : sql_fail(c->db, step, err, "list update configs");
    sqlite3_reset(s);
    return rc;
}

static int update_delete_rows(struct conn *c, enum stmt_id id, int64_t row, struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, id, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, row);
    return step_done(c, s, err, "delete job update rows");
}

/* Upsert by key. Events already recorded are kept (Aurora's store did the
 * same); summary.state is dropped, it is derived from the events. */
static int save_job_update(struct bo_store *st, struct conn *c, const Bo__JobUpdate *u,
                           struct bo_err *err)
{
    const Bo__JobUpdateKey *key = u->summary->key;
    const Bo__JobUpdateInstructions *in = u->instructions;
    size_t n_init = in->n_initial_state;
    size_t n_cfg = n_init + (in->desired_state != NULL ? 1 : 0);
    int64_t *cfg_ids = bo_calloc(n_cfg, sizeof(*cfg_ids));
    Bo__InstanceTaskConfig *inits = bo_calloc(n_init, sizeof(*inits));
    Bo__InstanceTaskConfig **init_ptrs = bo_calloc(n_init, sizeof(*init_ptrs));
    int64_t *old_ids = NULL;
    size_t n_old = 0;
    int rc;
    if (cfg_ids == NULL || inits == NULL || init_ptrs == NULL) {
        rc = bo_errf(err, BO_ENOMEM, "save job update: out of memory");
        goto out;
    }
    int64_t job_id, cfg_job;
    rc = job_intern(c, key->job, &job_id, err);
    if (rc != BO_OK) {
        goto out;
    }
    /* Position i: 0 = desired state (if any), then the initial states. */
    for (size_t i = 0; i < n_cfg; i++) {
        bool desired = in->desired_state != NULL && i == 0;
        size_t init_i = i - (in->desired_state != NULL ? 1 : 0);
        const Bo__TaskConfig *cfg =
            desired ? in->desired_state->task : in->initial_state[init_i]->task;
        rc = config_intern(st, c, cfg, &cfg_ids[i], &cfg_job, err);
        if (rc == BO_OK) {
            rc = config_ref(c, cfg_ids[i], 1, 0, err);
        }
        if (rc != BO_OK) {
            goto out;
        }
    }
    Bo__JobUpdateSummary summary = *u->summary;
    summary.state = NULL;
    Bo__JobUpdateInstructions instr = *in;
    Bo__InstanceTaskConfig desired;
    if (in->desired_state != NULL) {
        desired = *in->desired_state;
        desired.task = NULL;
        instr.desired_state = &desired;
    }
    for (size_t i = 0; i < n_init; i++) {
        inits[i] = *in->initial_state[i];
        inits[i].task = NULL;
        init_ptrs[i] = &inits[i];
    }
    instr.initial_state = init_ptrs;
    Bo__JobUpdate body = *u;
    body.summary = &summary;
    body.instructions = &instr;
    if (pack_into(&body.base, &st->part) != BO_OK) {
        rc = bo_errf(err, BO_ENOMEM, "encode job update: out of memory");
        goto out;
    }

    int64_t row;
    sqlite3_stmt *s = NULL;
    rc = update_find(c, key, &row, NULL, err);
    if (rc == BO_OK) {
        rc = update_configs(c, row, &old_ids, &n_old, err);
        if (rc == BO_OK) {
            rc = update_delete_rows(c, S_UPD_CFG_DELETE, row, err);
        }
        if (rc == BO_OK) {
            rc = conn_stmt(c, S_UPD_SET_BODY, &s, err);
        }
        if (rc == BO_OK) {
            sqlite3_bind_int64(s, 1, row);
            bind_blob(s, 2, st->part.data, st->part.len);
            rc = step_done(c, s, err, "update job update");
        }
    } else if (rc == BO_ENOTFOUND) {
        rc = conn_stmt(c, S_UPD_INSERT, &s, err);
        if (rc == BO_OK) {
            sqlite3_bind_int64(s, 1, job_id);
            bind_str(s, 2, key->id);
            bind_blob(s, 3, st->part.data, st->part.len);
            rc = step_done(c, s, err, "insert job update");
            row = sqlite3_last_insert_rowid(c->db);
        }
    }
    if (rc != BO_OK) {
        goto out;
    }
    for (size_t i = 0; i < n_cfg; i++) {
        bool desired_row = in->desired_state != NULL && i == 0;
        rc = conn_stmt(c, S_UPD_CFG_INSERT, &s, err);
        if (rc != BO_OK) {
            goto out;
        }
        sqlite3_bind_int64(s, 1, row);
        sqlite3_bind_int(s, 2, desired_row ? 0 : 1);
        sqlite3_bind_int64(s, 3, (int64_t)(desired_row ? 0 : i - (in->desired_state != NULL)));
        sqlite3_bind_int64(s, 4, cfg_ids[i]);
        rc = step_done(c, s, err, "insert update config");
        if (rc != BO_OK) {
            goto out;
        }
    }
    for (size_t i = 0; i < n_old && rc == BO_OK; i++) {
        rc = config_unref(st, c, old_ids[i], false, err);
    }
out:
    bo_free(old_ids);
    bo_free(init_ptrs);
    bo_free(inits);
    bo_free(cfg_ids);
    return rc;
}

static int append_event(struct bo_store *st, struct conn *c, int64_t row, bool instance,
                        const ProtobufCMessage *ev, int64_t ts, int status, struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, instance ? S_UPD_IEV_NEXT : S_UPD_EV_NEXT, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, row);
    rc = step_row(c, s, err, "next event");
    if (rc != BO_OK) {
        return rc == BO_ENOTFOUND ? bo_errf(err, BO_EINTERNAL, "next event: no row") : rc;
    }
    int64_t seq = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (pack_into(ev, &st->part) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "encode event: out of memory");
    }
    rc = conn_stmt(c, instance ? S_UPD_IEV_INSERT : S_UPD_EV_INSERT, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, row);
    sqlite3_bind_int64(s, 2, seq);
    sqlite3_bind_int64(s, 3, ts);
    bind_blob(s, 4, st->part.data, st->part.len);
    rc = step_done(c, s, err, "insert event");
    if (rc != BO_OK) {
        return rc;
    }
    rc = conn_stmt(c, instance ? S_UPD_STATE_INSTANCE : S_UPD_STATE_EVENT, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, row);
    sqlite3_bind_int64(s, 2, ts);
    if (!instance) {
        sqlite3_bind_int(s, 3, status);
    }
    return step_done(c, s, err, "derive update state");
}

static int save_update_event(struct bo_store *st, struct conn *c, const Bo__JobUpdateKey *key,
                             const Bo__JobUpdateEvent *ev, struct bo_err *err)
{
    int64_t row;
    int rc = update_find(c, key, &row, NULL, err);
    if (rc == BO_ENOTFOUND) {
        return update_not_found(key, err);
    }
    if (rc != BO_OK) {
        return rc;
    }
    return append_event(st, c, row, false, &ev->base, ev->timestamp_ms, (int)ev->status, err);
}

static int save_instance_event(struct bo_store *st, struct conn *c, const Bo__JobUpdateKey *key,
                               const Bo__JobInstanceUpdateEvent *ev, struct bo_err *err)
{
    int64_t row;
    int rc = update_find(c, key, &row, NULL, err);
    if (rc == BO_ENOTFOUND) {
        return update_not_found(key, err);
    }
    if (rc != BO_OK) {
        return rc;
    }
    return append_event(st, c, row, true, &ev->base, ev->timestamp_ms, 0, err);
}

static int remove_job_update(struct bo_store *st, struct conn *c, const Bo__JobUpdateKey *key,
                             struct bo_err *err)
{
    int64_t row, job_id;
    int rc = update_find(c, key, &row, &job_id, err);
    if (rc == BO_ENOTFOUND) {
        return BO_OK;
    }
    if (rc != BO_OK) {
        return rc;
    }
    int64_t *ids;
    size_t n;
    rc = update_configs(c, row, &ids, &n, err);
    if (rc != BO_OK) {
        return rc;
    }
    static const enum stmt_id deletes[] = {S_UPD_CFG_DELETE, S_UPD_EV_DELETE, S_UPD_IEV_DELETE,
                                           S_UPD_DELETE};
    for (size_t i = 0; i < sizeof(deletes) / sizeof(deletes[0]) && rc == BO_OK; i++) {
        rc = update_delete_rows(c, deletes[i], row, err);
    }
    for (size_t i = 0; i < n && rc == BO_OK; i++) {
        rc = config_unref(st, c, ids[i], false, err);
    }
    bo_free(ids);
    if (rc == BO_OK) {
        rc = job_gc(c, job_id, err);
    }
    return rc;
}

/* ------------------------------------------------------------- apply ---- */

static int apply_op(struct bo_store *st, struct conn *c, const Bo__Op *op, struct bo_err *err)
{
    int rc = BO_OK;
    switch (op->op_case) {
    case BO__OP__OP_SAVE_TASKS:
        for (size_t i = 0; i < op->save_tasks->n_tasks && rc == BO_OK; i++) {
            const Bo__ScheduledTask *t = op->save_tasks->tasks[i];
            rc = save_task(st, c, t, err);
            if (rc != BO_OK) {
                rc = bo_err_wrapf(err, rc, "task '%s'", t->assigned_task->task_id);
            }
        }
        return rc;
    case BO__OP__OP_SAVE_TASK_STATES:
        for (size_t i = 0; i < op->save_task_states->n_tasks && rc == BO_OK; i++) {
            const Bo__ScheduledTask *t = op->save_task_states->tasks[i];
            rc = save_task_state(st, c, t, err);
            if (rc != BO_OK) {
                rc = bo_err_wrapf(err, rc, "task '%s'", t->assigned_task->task_id);
            }
        }
        return rc;
    case BO__OP__OP_SAVE_TASKS_SHARED:
        return save_tasks_shared(st, c, op->save_tasks_shared, err);
    case BO__OP__OP_REMOVE_TASKS:
        for (size_t i = 0; i < op->remove_tasks->n_task_ids && rc == BO_OK; i++) {
            rc = remove_task(st, c, op->remove_tasks->task_ids[i], err);
        }
        return rc;
    case BO__OP__OP_SAVE_CRON_JOB:
        return save_cron_job(st, c, op->save_cron_job->job_config, err);
    case BO__OP__OP_REMOVE_CRON_JOB:
        return remove_cron_job(st, c, op->remove_cron_job->job_key, err);
    case BO__OP__OP_SAVE_QUOTA:
        return save_quota(st, c, op->save_quota->role, op->save_quota->quota, err);
    case BO__OP__OP_REMOVE_QUOTA:
        return delete_by_key(c, S_QUOTA_DELETE, op->remove_quota->role, err);
    case BO__OP__OP_SAVE_HOST_ATTRIBUTES:
        return save_host(st, c, op->save_host_attributes->host_attributes, err);
    case BO__OP__OP_SAVE_JOB_UPDATE:
        return save_job_update(st, c, op->save_job_update->job_update, err);
    case BO__OP__OP_SAVE_JOB_UPDATE_EVENT:
        return save_update_event(st, c, op->save_job_update_event->key,
                                 op->save_job_update_event->event, err);
    case BO__OP__OP_SAVE_JOB_INSTANCE_UPDATE_EVENT:
        return save_instance_event(st, c, op->save_job_instance_update_event->key,
                                   op->save_job_instance_update_event->event, err);
    case BO__OP__OP_REMOVE_JOB_UPDATES:
        for (size_t i = 0; i < op->remove_job_updates->n_keys && rc == BO_OK; i++) {
            rc = remove_job_update(st, c, op->remove_job_updates->keys[i], err);
        }
        return rc;
    case BO__OP__OP_SAVE_HOST_MAINTENANCE_REQUEST:
        return save_maintenance(st, c, op->save_host_maintenance_request->request, err);
    case BO__OP__OP_REMOVE_HOST_MAINTENANCE_REQUEST:
        return delete_by_key(c, S_MAINT_DELETE, op->remove_host_maintenance_request->host, err);
    case BO__OP__OP_SAVE_SCHEDULER_METADATA:
        return save_metadata(st, c, op->save_scheduler_metadata->metadata, err);
    default:
        return bo_errf(err, BO_EINVAL, "no op set");
    }
}

static int run_stmt(struct conn *c, enum stmt_id id, struct bo_err *err, const char *what)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, id, &s, err);
    return rc != BO_OK ? rc : step_done(c, s, err, what);
}

/* Can the state refuse `txn` once it is valid (bo_store_validate)? Only
 * ops that depend on other rows can: an update's event needs its update,
 * say. Tasks are saved, changed and removed whatever the state holds, so
 * a transaction of task ops fails only for environmental reasons (a full
 * disk, out of memory) or a corrupt store, after which the store stops
 * following the log anyway. */
static bool txn_may_be_refused(const Bo__Transaction *txn)
{
    for (size_t i = 0; txn != NULL && i < txn->n_ops; i++) {
        switch (txn->ops[i]->op_case) {
        case BO__OP__OP_SAVE_TASKS:
        case BO__OP__OP_SAVE_TASK_STATES:
        case BO__OP__OP_SAVE_TASKS_SHARED:
        case BO__OP__OP_REMOVE_TASKS:
            break;
        default:
            return true;
        }
    }
    return false;
}

/* One apply is one transaction, or with group commit a part of the group's
 * transaction: in a savepoint of its own if the state may refuse it
 * (`savepoint`), so that a refusal undoes it alone. Without one, a failure
 * undoes the whole group (txn_rollback). A savepoint costs its statements
 * and a copy of each page the apply changes first into SQLite's
 * sub-journal: a seventh of the applier's time per state change. */
static int txn_begin(struct bo_store *st, bool savepoint, struct bo_err *err)
{
    struct conn *c = &st->main;
    if (!st->group_commit) {
        return run_stmt(c, S_BEGIN, err, "begin");
    }
    if (!st->group_open) {
        int rc = run_stmt(c, S_BEGIN, err, "begin");
        if (rc != BO_OK) {
            return rc;
        }
        st->group_open = true;
    }
    return savepoint ? run_stmt(c, S_SAVEPOINT, err, "savepoint") : BO_OK;
}

static int txn_commit(struct bo_store *st, bool savepoint, struct bo_err *err)
{
    if (st->group_commit) {
        return savepoint ? run_stmt(&st->main, S_RELEASE, err, "commit") : BO_OK;
    }
    return run_stmt(&st->main, S_COMMIT, err, "commit");
}

static void txn_rollback(struct bo_store *st, bool savepoint)
{
    struct conn *c = &st->main;
    /* SQLite may have rolled back already (SQLITE_FULL, SQLITE_NOMEM): with
     * group commit that undid the whole group. */
    if (sqlite3_get_autocommit(c->db)) {
        st->group_open = false;
        return;
    }
    if (st->group_commit && savepoint) {
        run_stmt(c, S_ROLLBACK_TO, NULL, "rollback");
        run_stmt(c, S_RELEASE, NULL, "rollback");
        return;
    }
    run_stmt(c, S_ROLLBACK, NULL, "rollback");
    st->group_open = false;
}

void bo_store_set_group_commit(struct bo_store *st, bool on)
{
    STORE_LOCKED(st);
    struct bo_err ignored = BO_ERR_INIT;
    if (!on) {
        bo_store_flush(st, &ignored);
    }
    /* With group commit the owner checkpoints off its thread (ckpt below);
     * without, wal_hook checkpoints as SQLite's automatic one would. */
    st->group_commit = on;
}

int bo_store_flush(struct bo_store *st, struct bo_err *err)
{
    STORE_LOCKED(st);
    bool index = st->group_index;
    st->group_index = false;
    if (!st->group_open) {
        return BO_OK;
    }
    st->group_open = false;
    if (st->main.db == NULL || sqlite3_get_autocommit(st->main.db)) {
        st->tally_stale = true;
        return BO_OK;
    }
    int rc = BO_OK;
    if (index) {
        rc = meta_put_int(&st->main, META_APPLIED_INDEX, (int64_t)st->applied_index, err);
        if (rc != BO_OK) {
            run_stmt(&st->main, S_ROLLBACK, NULL, "rollback");
        }
    }
    if (rc == BO_OK) {
        rc = run_stmt(&st->main, S_COMMIT, err, "flush");
    }
    if (rc != BO_OK) {
        /* The group may be gone, and rows it added with it. */
        memo_reset(st);
        st->tally_stale = true;
    }
    return rc;
}

int bo_store_read_begin(struct bo_store *st, struct bo_err *err)
{
    STORE_LOCKED(st);
    if (!st->group_commit || st->group_open || st->main.db == NULL) {
        return BO_OK;
    }
    int rc = run_stmt(&st->main, S_BEGIN, err, "begin reads");
    if (rc == BO_OK) {
        st->group_open = true;
    }
    return rc;
}

bool bo_store_pending(const struct bo_store *st)
{
    STORE_LOCKED(st);
    return st->group_open;
}

static int store_usable(const struct bo_store *st, struct bo_err *err)
{
    if (st->main.db == NULL) {
        return bo_errf(err, BO_EIO, "store '%s' is closed after a failed restore", st->path);
    }
    return BO_OK;
}

/* Apply `txn` (NULL for a noop) and record `index`, all or nothing. */
static int apply_locked(struct bo_store *st, const Bo__Transaction *txn, uint64_t index,
                        struct bo_err *err)
{
    struct conn *c = &st->main;
    int rc = store_usable(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    bool savepoint = txn_may_be_refused(txn);
    bool group_was_open = st->group_open;
    rc = txn_begin(st, savepoint, err);
    if (rc != BO_OK) {
        return rc;
    }
    for (size_t i = 0; txn != NULL && i < txn->n_ops; i++) {
        rc = apply_op(st, c, txn->ops[i], err);
        if (rc != BO_OK) {
            rc = bo_err_wrapf(err, rc, "op %zu (%s)", i, op_name(txn->ops[i]->op_case));
            goto fail;
        }
    }
    /* With group commit the index is written once, by the flush that
     * commits the group: a statement per entry less. */
    if (!st->group_commit) {
        rc = meta_put_int(c, META_APPLIED_INDEX, (int64_t)index, err);
        if (rc != BO_OK) {
            goto fail;
        }
    }
    rc = txn_commit(st, savepoint, err);
    if (rc != BO_OK) {
        goto fail;
    }
    counts_fold(st);
    st->applied_index = index;
    st->group_index = st->group_commit;
    return BO_OK;
fail:
    counts_forget(st);
    txn_rollback(st, savepoint);
    /* Memo entries may name rows the rollback removed. */
    memo_reset(st);
    if (st->group_commit && !st->group_open && group_was_open) {
        /* The group's earlier applies are undone too: the store no longer
         * follows the log, whatever failed. Not a refusal of this entry,
         * which the caller would skip and carry on after. */
        st->tally_stale = true;
        st->group_index = false;
        if (rc == BO_EINVAL || rc == BO_ECORRUPT) {
            char why[BO_ERR_MSG_SIZE];
            snprintf(why, sizeof(why), "%s", bo_err_msg(err, rc));
            rc = bo_errf(err, BO_EIO, "%s; the applies before it since the last commit are undone",
                         why);
        }
    }
    return rc;
}

int bo_store_apply(struct bo_store *st, const Bo__Transaction *txn, uint64_t index,
                   struct bo_err *err)
{
    STORE_LOCKED(st);
    int rc = check_txn(txn, err);
    if (rc != BO_OK) {
        return rc;
    }
    return apply_locked(st, txn, index, err);
}

/* Is the update `key` saved by an op before `upto`? */
static bool saved_earlier(const Bo__Transaction *txn, size_t upto, const Bo__JobUpdateKey *key)
{
    for (size_t i = 0; i < upto; i++) {
        const Bo__Op *op = txn->ops[i];
        if (op->op_case != BO__OP__OP_SAVE_JOB_UPDATE) {
            continue;
        }
        const Bo__JobUpdateKey *k = op->save_job_update->job_update->summary->key;
        if (strcmp(k->id, key->id) == 0 && strcmp(k->job->role, key->job->role) == 0 &&
            strcmp(k->job->environment, key->job->environment) == 0 &&
            strcmp(k->job->name, key->job->name) == 0) {
            return true;
        }
    }
    return false;
}

int bo_store_validate(struct bo_store *st, const Bo__Transaction *txn, struct bo_err *err)
{
    int rc = check_txn(txn, err);
    if (rc != BO_OK) {
        return rc;
    }
    /* Events need their update: in the store or saved earlier in txn. Only
     * those read the store, so only they take its lock. */
    bool reads = false;
    for (size_t i = 0; i < txn->n_ops && !reads; i++) {
        reads = txn->ops[i]->op_case == BO__OP__OP_SAVE_JOB_UPDATE_EVENT ||
                txn->ops[i]->op_case == BO__OP__OP_SAVE_JOB_INSTANCE_UPDATE_EVENT;
    }
    if (!reads) {
        return BO_OK;
    }
    STORE_LOCKED(st);
    rc = store_usable(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    for (size_t i = 0; i < txn->n_ops; i++) {
        const Bo__Op *op = txn->ops[i];
        const Bo__JobUpdateKey *key = NULL;
        if (op->op_case == BO__OP__OP_SAVE_JOB_UPDATE_EVENT) {
            key = op->save_job_update_event->key;
        } else if (op->op_case == BO__OP__OP_SAVE_JOB_INSTANCE_UPDATE_EVENT) {
            key = op->save_job_instance_update_event->key;
        } else {
            continue;
        }
        if (saved_earlier(txn, i, key)) {
            continue;
        }
        int64_t row;
        rc = update_find(&st->main, key, &row, NULL, err);
        if (rc == BO_ENOTFOUND) {
            rc = update_not_found(key, err);
        }
        if (rc != BO_OK) {
            return bo_err_wrapf(err, rc, "op %zu (%s)", i, op_name(op->op_case));
        }
    }
    return BO_OK;
}

/* ------------------------------------------------------ open / close ---- */

static int path_with_suffix(char *out, size_t size, const char *path, const char *suffix)
{
    int n = snprintf(out, size, "%s%s", path, suffix);
    return n < 0 || (size_t)n >= size ? BO_ETOOBIG : BO_OK;
}

/* Remove `path``suffix` if it exists. */
static int remove_file(const char *path, const char *suffix, struct bo_err *err)
{
    char p[4096];
    if (path_with_suffix(p, sizeof(p), path, suffix) != BO_OK) {
        return bo_errf(err, BO_ETOOBIG, "path '%s%s' is too long", path, suffix);
    }
    if (unlink(p) != 0 && errno != ENOENT) {
        return bo_errf(err, bo_err_from_errno(errno), "remove '%s': %s", p, strerror(errno));
    }
    return BO_OK;
}

static int remove_db(const char *path, const char *suffix, struct bo_err *err)
{
    static const char *const parts[] = {"", "-wal", "-shm", "-journal"};
    char base[4096];
    if (path_with_suffix(base, sizeof(base), path, suffix) != BO_OK) {
        return bo_errf(err, BO_ETOOBIG, "path '%s%s' is too long", path, suffix);
    }
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        int rc = remove_file(base, parts[i], err);
        if (rc != BO_OK) {
            return rc;
        }
    }
    return BO_OK;
}

/* `vfs`: NULL for the default one. */
static int open_conn_vfs(struct conn *c, const char *path, int flags, const char *vfs,
                         const char *pragmas, struct bo_err *err)
{
    int rc = sqlite3_open_v2(path, &c->db, flags | SQLITE_OPEN_NOMUTEX, vfs);
    if (rc != SQLITE_OK) {
        int code = sql_fail(c->db, rc, err, "open");
        conn_close(c, true);
        return bo_err_wrapf(err, code, "'%s'", path);
    }
    rc = conn_exec(c, pragmas, err, "configure");
    if (rc != BO_OK) {
        conn_close(c, true);
        return bo_err_wrapf(err, rc, "'%s'", path);
    }
    return BO_OK;
}

static int open_conn(struct conn *c, const char *path, int flags, const char *pragmas,
                     struct bo_err *err)
{
    return open_conn_vfs(c, path, flags, NULL, pragmas, err);
}

/* A file written before task bodies moved to their own table still has
 * tasks.body, one written before host names moved to `hosts` has tasks.host
 * (the file is a cache, opened fresh at every start, so this only guards an
 * explicit reopen of an old file). */
static int check_layout(struct conn *c, struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(c->db,
                                "SELECT name = 'body' FROM pragma_table_info('tasks')"
                                " WHERE name IN ('body', 'host') ORDER BY 1 DESC",
                                -1, &s, NULL);
    if (rc != SQLITE_OK) {
        return sql_fail(c->db, rc, err, "check layout");
    }
    rc = sqlite3_step(s);
    bool bodies = rc == SQLITE_ROW && sqlite3_column_int(s, 0) != 0;
    sqlite3_finalize(s);
    if (rc == SQLITE_ROW) {
        return bo_errf(err, BO_EVERSION, "database from an older release: tasks hold %s",
                       bodies ? "bodies" : "host names");
    }
    return rc == SQLITE_DONE ? BO_OK : sql_fail(c->db, rc, err, "check layout");
}

/* A task's row written or deleted: its text is stale. Rows deleted by the
 * truncate optimization (DELETE without WHERE) and by REPLACE conflicts call
 * no hook; the first happens only in restore, which clears everything, and
 * the second is followed by the insert's own call for the same id. */
static void texts_on_change(void *data, int op, const char *db, const char *table, sqlite3_int64 id)
{
    (void)op;
    (void)db;
    struct bo_store *st = data;
    /* an empty cache (a restore's million inserts) costs one test a row */
    if (bo_lru_count(st->texts) == 0) {
        return;
    }
    if (table[0] == 't' && (strcmp(table, "task_bodies") == 0 || strcmp(table, "tasks") == 0)) {
        bo_lru_drop(st->texts, id);
    }
}

static void texts_on_rollback(void *data)
{
    struct bo_store *st = data;
    bo_lru_clear(st->texts);
}

/* A new main connection (open, restore): nothing kept holds for it. */
static void texts_attach(struct bo_store *st)
{
    if (st->texts == NULL || st->main.db == NULL) {
        return;
    }
    bo_lru_clear(st->texts);
    sqlite3_update_hook(st->main.db, texts_on_change, st);
    sqlite3_rollback_hook(st->main.db, texts_on_rollback, st);
}

/* Runs after every commit on the main connection. It stands in for SQLite's
 * automatic checkpoint (which is this hook, set by wal_autocheckpoint) so
 * that it holds for every connection open_main makes, reopened ones
 * included, and notes the WAL's length for bo_store_ckpt_finish. */
static int wal_hook(void *data, sqlite3 *db, const char *name, int frames)
{
    struct bo_store *st = data;
    st->wal_frames = frames;
    if (!st->group_commit && frames >= 1000) {
        sqlite3_wal_checkpoint(db, name);
    }
    return SQLITE_OK;
}

/* Pages of 2 KB, set where a file is created (the restore's, or an empty
 * store's; an existing file keeps its own). A state change of one task of
 * a million dirties about five pages all over the file (the task's row, its
 * body, both ends of its move in the status index, its job's counts), and a
 * commit writes each whole into the WAL, checksums it, and the checkpoint
 * copies it again: with 4 KB pages that was a third of the applier's time.
 * 2 KB pages wrote 23-31% more state changes a second; the B-trees are a
 * level deeper in places, and a restore took 2% longer (docs/benchmarks.md,
 * "Sixth pass"). */
#define STORE_PAGE_SIZE "2048"

static int open_main(struct bo_store *st, struct bo_err *err)
{
    struct conn *c = &st->main;
    /* synchronous first: switching a restored file to WAL would otherwise
     * fsync all of it; through wbuf.h's WAL variant, FULL makes each commit
     * write its gathered frames before publishing them, and costs no fsync.
     * temp_store keeps the savepoints' sub-journal (group commit: every page
     * an entry touches again is copied there) in memory: past 64 KiB SQLite
     * spills it to a new temporary file per group, and its pwrites were a
     * third of the loop thread (docs/benchmarks.md). Reads through a
     * mapping: a page not in the cache costs no pread copy (writes still go
     * to the WAL); state changes at a million tasks went from 9,300 to
     * 11,400-13,300 a second. The cache then holds the pages being written,
     * and a small one pays: a commit after a B-tree page split walks the
     * cache's whole hash table (SQLite 3.40 swaps pages through the
     * lock-byte page's number, far past the file's end, and each commit
     * truncates the cache to the file's size), 5-10% of the loop with 64 MiB;
     * 8 MiB wrote 9-23% more a second (docs/benchmarks.md). */
    static const char common[] = " PRAGMA page_size=" STORE_PAGE_SIZE ";"
                                 " PRAGMA journal_mode=WAL; PRAGMA cache_size=-8192;"
                                 " PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;"
                                 " PRAGMA mmap_size=2147418112;";
    char pragmas[sizeof(common) + 32];
    const char *wal_vfs = bo_flags_env_on("BO_WALBUF") ? bo_wbuf_wal_vfs() : NULL;
    snprintf(pragmas, sizeof(pragmas), "PRAGMA synchronous=%s;%s", wal_vfs ? "FULL" : "OFF",
             common);
    int rc = open_conn_vfs(c, st->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, wal_vfs,
                           pragmas, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_wal_hook(c->db, wal_hook, st);
    st->wal_frames = 0;
    st->ckpt_done = 0;
    st->ckpt_blocked = false;
    sqlite3_stmt *s = NULL;
    rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode", -1, &s, NULL);
    if (rc != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW ||
        strcmp((const char *)sqlite3_column_text(s, 0), "wal") != 0) {
        sqlite3_finalize(s);
        rc = bo_errf(err, BO_EIO, "open '%s': cannot use WAL mode", st->path);
        goto fail;
    }
    sqlite3_finalize(s);
    rc = conn_exec(c, "BEGIN IMMEDIATE", err, "create schema");
    if (rc == BO_OK) {
        rc = conn_exec(c, schema_tables, err, "create schema");
    }
    if (rc == BO_OK) {
        rc = check_layout(c, err);
    }
    if (rc == BO_OK) {
        rc = conn_exec(c, schema_task_indexes, err, "create schema");
    }
    int64_t v;
    if (rc == BO_OK) {
        rc = meta_get_int(c, META_SCHEMA_VERSION, &v, err);
        if (rc == BO_ENOTFOUND) {
            v = BO_SCHEMA_VERSION;
            rc = meta_put_int(c, META_SCHEMA_VERSION, v, err);
        }
        if (rc == BO_OK && v != BO_SCHEMA_VERSION) {
            rc = bo_errf(err, BO_EVERSION, "schema version %lld, this store knows %d", (long long)v,
                         BO_SCHEMA_VERSION);
        }
    }
    if (rc == BO_OK) {
        rc = meta_get_int(c, META_APPLIED_INDEX, &v, err);
        if (rc == BO_ENOTFOUND) {
            v = 0;
            rc = BO_OK;
        }
        st->applied_index = (uint64_t)v;
    }
    if (rc == BO_OK) {
        rc = conn_exec(c, "COMMIT", err, "create schema");
    }
    if (rc != BO_OK) {
        goto fail;
    }
    texts_attach(st);
    return BO_OK;
fail:
    conn_close(c, true);
    return bo_err_wrapf(err, rc, "open '%s'", st->path);
}

int bo_store_open(const char *path, bool fresh, struct bo_store **out, struct bo_err *err)
{
    struct bo_store *st = bo_calloc(1, sizeof(*st));
    if (st == NULL) {
        return bo_errf(err, BO_ENOMEM, "open store: out of memory");
    }
    int rc;
    pthread_mutexattr_t attr;
    if (pthread_mutexattr_init(&attr) != 0 ||
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE) != 0 ||
        pthread_mutex_init(&st->lock, &attr) != 0) {
        bo_free(st);
        return bo_errf(err, BO_ENOMEM, "open store: cannot create its lock");
    }
    pthread_mutexattr_destroy(&attr);
    st->memo_gen = 1;
    rc = bo_entrydec_init(&st->dec);
    if (rc != BO_OK) {
        rc = bo_errf(err, rc, "open store: cannot build the entry decoder");
        goto fail;
    }
    st->path = bo_strdup(path);
    if (st->path == NULL) {
        rc = bo_errf(err, BO_ENOMEM, "open store: out of memory");
        goto fail;
    }
    /* A restore that crashed midway leaves its files behind; one that crashed
     * between its two renames leaves the old state only under ".old". */
    rc = remove_db(path, ".restore", err);
    if (rc == BO_OK && !fresh && access(path, F_OK) != 0 && errno == ENOENT) {
        char old_path[4096];
        if (path_with_suffix(old_path, sizeof(old_path), path, ".old") == BO_OK) {
            (void)rename(old_path, path);
        }
    }
    if (rc == BO_OK) {
        rc = remove_db(path, ".old", err);
    }
    if (rc == BO_OK && fresh) {
        rc = remove_db(path, "", err);
    }
    if (rc == BO_OK) {
        rc = open_main(st, err);
    }
    if (rc != BO_OK) {
        goto fail;
    }
    st->tally_stale = !fresh; /* counted at its first use */
    *out = st;
    return BO_OK;
fail:
    bo_entrydec_release(&st->dec);
    pthread_mutex_destroy(&st->lock);
    bo_free(st->path);
    bo_free(st);
    return rc;
}

static void ckpt_conn_drop(struct bo_store *st)
{
    if (st->ckpt_c_open) {
        assert(!st->ckpt_busy);
        conn_close(&st->ckpt_c, false);
        st->ckpt_c_open = false;
    }
}

void bo_store_close(struct bo_store *st)
{
    if (st == NULL) {
        return;
    }
    assert(st->n_views == 0);
    struct bo_err ignored = BO_ERR_INIT;
    bo_store_flush(st, &ignored);
    counts_forget(st);
    tally_free(&st->tally);
    ckpt_conn_drop(st);
    conn_close(&st->main, true);
    for (size_t i = 0; st->memo != NULL && i < MEMO_SIZE; i++) {
        bo_buf_release(&st->memo[i].raw);
        bo_buf_release(&st->memo[i].job);
    }
    bo_entrydec_release(&st->dec);
    bo_free(st->memo);
    bo_buf_release(&st->raw);
    bo_buf_release(&st->canon);
    bo_buf_release(&st->part);
    bo_buf_release(&st->text_tmp);
    bo_lru_free(st->texts);
    arena_release(&st->apply_arena);
    host_cache_reset(st);
    pthread_mutex_destroy(&st->lock);
    bo_free(st->path);
    bo_free(st);
}

void bo_store_note_index(struct bo_store *st, uint64_t index)
{
    STORE_LOCKED(st);
    if (index > st->applied_index) {
        st->applied_index = index;
    }
}

uint64_t bo_store_applied_index(const struct bo_store *st)
{
    STORE_LOCKED(st);
    return st->applied_index;
}

/* ------------------------------------------------- reading entities ---- */

/* A growing array of protobuf-c messages, handed out as the lists' arrays. */
struct msg_vec {
    void **v;
    size_t n, cap;
};

static int vec_push(struct msg_vec *v, void *m)
{
    if (v->n == v->cap) {
        size_t cap = v->cap == 0 ? 8 : v->cap * 2;
        void **p = bo_reallocarray(v->v, cap, sizeof(*p));
        if (p == NULL) {
            return BO_ENOMEM;
        }
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = m;
    return BO_OK;
}

static void vec_release(struct msg_vec *v)
{
    for (size_t i = 0; i < v->n; i++) {
        protobuf_c_message_free_unpacked(v->v[i], NULL);
    }
    bo_free(v->v);
    *v = (struct msg_vec){0};
}

typedef int (*row_conv)(struct conn *c, sqlite3_stmt *s, void **out, struct bo_err *err);

/* Run `s` (bound by the caller) and convert each row into a message. */
static int collect(struct conn *c, sqlite3_stmt *s, row_conv conv, struct msg_vec *v,
                   struct bo_err *err)
{
    int step, rc = BO_OK;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        void *m;
        rc = conv(c, s, &m, err);
        if (rc != BO_OK) {
            break;
        }
        if (vec_push(v, m) != BO_OK) {
            protobuf_c_message_free_unpacked(m, NULL);
            rc = bo_errf(err, BO_ENOMEM, "list: out of memory");
            break;
        }
    }
    if (rc == BO_OK && step != SQLITE_DONE) {
        rc = sql_fail(c->db, step, err, "list");
    }
    sqlite3_reset(s);
    return rc;
}

static int conv_unpack(const ProtobufCMessageDescriptor *d, sqlite3_stmt *s, int col, void **out,
                       struct bo_err *err)
{
    size_t len;
    const uint8_t *p = col_blob(s, col, &len);
    *out = unpack_blob(d, p, len);
    if (*out == NULL) {
        return bo_errf(err, BO_ECORRUPT, "cannot decode stored %s", d->short_name);
    }
    return BO_OK;
}

static int conv_host(struct conn *c, sqlite3_stmt *s, void **out, struct bo_err *err)
{
    (void)c;
    return conv_unpack(&bo__host_attributes__descriptor, s, 0, out, err);
}

static int conv_maintenance(struct conn *c, sqlite3_stmt *s, void **out, struct bo_err *err)
{
    (void)c;
    return conv_unpack(&bo__host_maintenance_request__descriptor, s, 0, out, err);
}

/* Messages are merged field by field when their encodings are concatenated,
 * so a stored body plus an appended field is the whole message. */
static int conv_concat(const ProtobufCMessageDescriptor *d, const uint8_t *head, size_t head_len,
                       uint32_t field, const uint8_t *tail, size_t tail_len, void **out,
                       struct bo_err *err)
{
    struct bo_buf b = BO_BUF_INIT;
    int rc = bo_buf_append(&b, head, head_len);
    if (rc == BO_OK) {
        rc = bo_pb_put_bytes(&b, field, tail, tail_len);
    }
    if (rc != BO_OK) {
        bo_buf_release(&b);
        return bo_errf(err, BO_ENOMEM, "decode %s: out of memory", d->short_name);
    }
    *out = unpack_blob(d, b.data, b.len);
    bo_buf_release(&b);
    if (*out == NULL) {
        return bo_errf(err, BO_ECORRUPT, "cannot decode stored %s", d->short_name);
    }
    return BO_OK;
}

/* Row (cron body, config body): the JobConfiguration with its task_config. */
static int conv_cron(struct conn *c, sqlite3_stmt *s, void **out, struct bo_err *err)
{
    (void)c;
    size_t blen, clen;
    const uint8_t *body = col_blob(s, 0, &blen);
    const uint8_t *cfg = col_blob(s, 1, &clen);
    return conv_concat(&bo__job_configuration__descriptor, body, blen, 5, cfg, clen, out, err);
}

/* Row (role, aggregate body). */
static int conv_quota(struct conn *c, sqlite3_stmt *s, void **out, struct bo_err *err)
{
    (void)c;
    struct bo_buf head = BO_BUF_INIT;
    const char *role = (const char *)sqlite3_column_text(s, 0);
    size_t blen;
    const uint8_t *body = col_blob(s, 1, &blen);
    if (bo_pb_put_bytes(&head, 1, str_or_empty(role), strlen(str_or_empty(role))) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "decode quota: out of memory");
    }
    int rc = conv_concat(&bo__quota_configuration__descriptor, head.data, head.len, 2, body, blen,
                         out, err);
    bo_buf_release(&head);
    return rc;
}

static int conv_update_event(struct conn *c, sqlite3_stmt *s, void **out, struct bo_err *err)
{
    (void)c;
    return conv_unpack(&bo__job_update_event__descriptor, s, 0, out, err);
}

static int conv_instance_event(struct conn *c, sqlite3_stmt *s, void **out, struct bo_err *err)
{
    (void)c;
    return conv_unpack(&bo__job_instance_update_event__descriptor, s, 0, out, err);
}

static int list_events(struct conn *c, enum stmt_id id, int64_t row, row_conv conv,
                       struct msg_vec *v, struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, id, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, row);
    return collect(c, s, conv, v, err);
}

/* Row (id, body, status, created_ms, last_modified_ms) -> JobUpdateDetails
 * with its configs re-attached, its events and the derived state. Events in
 * timestamp order for readers, in append order for snapshots (so a restore
 * appends them again in the same order and derives the same state). */
static int conv_update_details(struct conn *c, sqlite3_stmt *s, bool append_order, void **out,
                               struct bo_err *err)
{
    int64_t row = sqlite3_column_int64(s, 0);
    size_t blen;
    const uint8_t *body = col_blob(s, 1, &blen);
    Bo__JobUpdateState state = BO__JOB_UPDATE_STATE__INIT;
    state.status = (Bo__JobUpdateStatus)sqlite3_column_int(s, 2);
    state.created_timestamp_ms = sqlite3_column_int64(s, 3);
    state.last_modified_timestamp_ms = sqlite3_column_int64(s, 4);

    Bo__JobUpdate *u = bo__job_update__unpack(NULL, blen, body);
    if (u == NULL) {
        return bo_errf(err, BO_ECORRUPT, "job update %lld: cannot decode", (long long)row);
    }
    struct bo_config_cache cc = {0};
    struct msg_vec events = {0}, ievents = {0};
    struct bo_buf tmp = BO_BUF_INIT;
    int64_t *ids = NULL;
    size_t n_ids = 0;
    Bo__JobUpdateInstructions *in = u->instructions;
    int rc = update_configs(c, row, &ids, &n_ids, err);
    if (rc != BO_OK) {
        goto out;
    }
    size_t want = in == NULL ? 0 : in->n_initial_state + (in->desired_state != NULL ? 1 : 0);
    if (n_ids != want) {
        rc = bo_errf(err, BO_ECORRUPT, "job update %lld: %zu configs for %zu states",
                     (long long)row, n_ids, want);
        goto out;
    }
    for (size_t i = 0; i < n_ids; i++) {
        Bo__TaskConfig *cfg;
        rc = cfg_cache_get(c, &cc, ids[i], &cfg, err);
        if (rc != BO_OK) {
            goto out;
        }
        bool desired = in->desired_state != NULL && i == 0;
        size_t init_i = i - (in->desired_state != NULL ? 1 : 0);
        (desired ? in->desired_state : in->initial_state[init_i])->task = cfg;
    }
    rc = list_events(c, append_order ? S_UPD_EV_LIST_SEQ : S_UPD_EV_LIST, row, conv_update_event,
                     &events, err);
    if (rc == BO_OK) {
        rc = list_events(c, append_order ? S_UPD_IEV_LIST_SEQ : S_UPD_IEV_LIST, row,
                         conv_instance_event, &ievents, err);
    }
    if (rc != BO_OK) {
        goto out;
    }
    if (u->summary != NULL) {
        u->summary->state = &state;
    }
    Bo__JobUpdateDetails d = BO__JOB_UPDATE_DETAILS__INIT;
    d.update = u;
    d.n_update_events = events.n;
    d.update_events = (Bo__JobUpdateEvent **)events.v;
    d.n_instance_events = ievents.n;
    d.instance_events = (Bo__JobInstanceUpdateEvent **)ievents.v;
    *out = repack(&d.base, &tmp);
    if (*out == NULL) {
        rc = bo_errf(err, BO_ENOMEM, "job update %lld: out of memory", (long long)row);
    }
out:
    /* Borrowed pieces go back before `u` is freed. */
    if (u->summary != NULL) {
        u->summary->state = NULL;
    }
    if (in != NULL) {
        if (in->desired_state != NULL) {
            in->desired_state->task = NULL;
        }
        for (size_t i = 0; i < in->n_initial_state; i++) {
            in->initial_state[i]->task = NULL;
        }
    }
    bo__job_update__free_unpacked(u, NULL);
    bo_config_cache_release(&cc);
    vec_release(&events);
    vec_release(&ievents);
    bo_buf_release(&tmp);
    bo_free(ids);
    return rc;
}

static int conv_update_export(struct conn *c, sqlite3_stmt *s, void **out, struct bo_err *err)
{
    return conv_update_details(c, s, true, out, err);
}

static int conv_update_read(struct conn *c, sqlite3_stmt *s, void **out, struct bo_err *err)
{
    return conv_update_details(c, s, false, out, err);
}

/* Row (id, body, status, created_ms, last_modified_ms) -> JobUpdateSummary. */
static int conv_update_summary(struct conn *c, sqlite3_stmt *s, void **out, struct bo_err *err)
{
    (void)c;
    int64_t row = sqlite3_column_int64(s, 0);
    size_t blen;
    const uint8_t *body = col_blob(s, 1, &blen);
    Bo__JobUpdateState state = BO__JOB_UPDATE_STATE__INIT;
    state.status = (Bo__JobUpdateStatus)sqlite3_column_int(s, 2);
    state.created_timestamp_ms = sqlite3_column_int64(s, 3);
    state.last_modified_timestamp_ms = sqlite3_column_int64(s, 4);
    Bo__JobUpdate *u = bo__job_update__unpack(NULL, blen, body);
    if (u == NULL || u->summary == NULL) {
        if (u != NULL) {
            bo__job_update__free_unpacked(u, NULL);
        }
        return bo_errf(err, BO_ECORRUPT, "job update %lld: cannot decode", (long long)row);
    }
    struct bo_buf tmp = BO_BUF_INIT;
    u->summary->state = &state;
    *out = repack(&u->summary->base, &tmp);
    u->summary->state = NULL;
    bo__job_update__free_unpacked(u, NULL);
    bo_buf_release(&tmp);
    return *out == NULL ? bo_errf(err, BO_ENOMEM, "job update summary: out of memory") : BO_OK;
}

static int list_stmt(struct conn *c, enum stmt_id id, row_conv conv, struct msg_vec *v,
                     struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, id, &s, err);
    return rc != BO_OK ? rc : collect(c, s, conv, v, err);
}

static int get_metadata(struct conn *c, Bo__SchedulerMetadata **out, struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_META_GET, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    bind_str(s, 1, META_SCHED_METADATA);
    rc = step_row(c, s, err, "read scheduler metadata");
    if (rc != BO_OK) {
        return rc;
    }
    void *m;
    rc = conv_unpack(&bo__scheduler_metadata__descriptor, s, 0, &m, err);
    sqlite3_reset(s);
    if (rc == BO_OK) {
        *out = m;
    }
    return rc;
}

/* The partial Snapshot: everything but tasks. */
struct rest {
    struct msg_vec hosts, crons, quotas, updates, maintenance;
    Bo__SchedulerMetadata *metadata;
};

static void rest_release(struct rest *r)
{
    vec_release(&r->hosts);
    vec_release(&r->crons);
    vec_release(&r->quotas);
    vec_release(&r->updates);
    vec_release(&r->maintenance);
    if (r->metadata != NULL) {
        bo__scheduler_metadata__free_unpacked(r->metadata, NULL);
        r->metadata = NULL;
    }
}

static int rest_load(struct conn *c, struct rest *r, struct bo_err *err)
{
    int rc = list_stmt(c, S_HOST_LIST, conv_host, &r->hosts, err);
    if (rc == BO_OK) {
        rc = list_stmt(c, S_CRON_LIST, conv_cron, &r->crons, err);
    }
    if (rc == BO_OK) {
        rc = list_stmt(c, S_QUOTA_LIST, conv_quota, &r->quotas, err);
    }
    if (rc == BO_OK) {
        rc = list_stmt(c, S_UPD_LIST_ALL, conv_update_export, &r->updates, err);
    }
    if (rc == BO_OK) {
        rc = list_stmt(c, S_MAINT_LIST, conv_maintenance, &r->maintenance, err);
    }
    if (rc == BO_OK) {
        rc = get_metadata(c, &r->metadata, err);
        if (rc == BO_ENOTFOUND) {
            rc = BO_OK;
        }
    }
    return rc;
}

/* ------------------------------------------------------------- views ---- */

struct bo_store_ckpt {
    struct bo_store *st;
    struct conn *c;
    int done;     /* frames copied into the database file */
    bool blocked; /* frames were left that a reader still needs */
};

int bo_store_ckpt_open(struct bo_store *st, struct bo_store_ckpt **out, struct bo_err *err)
{
    STORE_LOCKED(st);
    int rc = store_usable(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    if (st->ckpt_busy) {
        return bo_errf(err, BO_EBUSY, "checkpoint: one is running");
    }
    struct bo_store_ckpt *k = bo_calloc(1, sizeof(*k));
    if (k == NULL) {
        return bo_errf(err, BO_ENOMEM, "checkpoint: out of memory");
    }
    k->st = st;
    if (!st->ckpt_c_open) {
        rc = open_conn(&st->ckpt_c, st->path, SQLITE_OPEN_READWRITE,
                       "PRAGMA synchronous=OFF; PRAGMA wal_autocheckpoint=0;", err);
        if (rc != BO_OK) {
            bo_free(k);
            return bo_err_wrapf(err, rc, "checkpoint");
        }
        st->ckpt_c_open = true;
    }
    k->c = &st->ckpt_c;
    st->ckpt_busy = true;
    /* Counted as a view: a restore must not swap the file under it. */
    st->n_views++;
    *out = k;
    return BO_OK;
}

int bo_store_ckpt_run(struct bo_store_ckpt *k, struct bo_err *err)
{
    int log_frames = 0, done = 0;
    int rc =
        sqlite3_wal_checkpoint_v2(k->c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &done);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        return sql_fail(k->c->db, rc, err, "checkpoint");
    }
    k->done = done > 0 ? done : 0;
    k->blocked = done >= 0 && done < log_frames;
    return BO_OK;
}

/* A WAL starts over from its beginning (reusing the file's blocks, which
 * are in the OS cache) only at a commit whose transaction began with every
 * frame in the database file. A worker's checkpoint never sees that under
 * steady writes, since the loop commits more frames while it runs: the WAL
 * then grew to hundreds of MB in seconds, every write landing on a fresh
 * block the kernel had to allocate and zero. So the owner copies the few
 * frames committed meanwhile itself, between two groups; when they are
 * more than BO_CKPT_FINISH_MAX_FRAMES the next worker checkpoint is left
 * to close the gap. */
#define BO_CKPT_FINISH_MAX_FRAMES 512

/* Frames committed since the last checkpoint copied its share; all of them
 * if the WAL has started over since (it is shorter than what was copied). */
static int ckpt_left(const struct bo_store *st)
{
    return st->wal_frames >= st->ckpt_done ? st->wal_frames - st->ckpt_done : st->wal_frames;
}

int bo_store_ckpt_finish(struct bo_store *st, struct bo_err *err)
{
    STORE_LOCKED(st);
    if (st->main.db == NULL || st->group_open || !st->group_commit) {
        return BO_OK;
    }
    int left = ckpt_left(st);
    if (left == 0 || left > BO_CKPT_FINISH_MAX_FRAMES) {
        return BO_OK;
    }
    int rc = sqlite3_wal_checkpoint_v2(st->main.db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        return sql_fail(st->main.db, rc, err, "checkpoint");
    }
    return BO_OK;
}

bool bo_store_ckpt_behind(const struct bo_store *st)
{
    STORE_LOCKED(st);
    return !st->ckpt_blocked && ckpt_left(st) > BO_CKPT_FINISH_MAX_FRAMES;
}

void bo_store_ckpt_close(struct bo_store_ckpt *k)
{
    if (k == NULL) {
        return;
    }
    STORE_LOCKED(k->st);
    k->st->n_views--;
    k->st->ckpt_busy = false;
    k->st->ckpt_done = k->done;
    k->st->ckpt_blocked = k->blocked;
    bo_free(k);
}

int bo_store_view_open(struct bo_store *st, struct bo_store_view **out, struct bo_err *err)
{
    STORE_LOCKED(st);
    int rc = store_usable(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    /* The view must see every applied entry. */
    rc = bo_store_flush(st, err);
    if (rc != BO_OK) {
        return bo_err_wrapf(err, rc, "open view");
    }
    struct bo_store_view *v = bo_calloc(1, sizeof(*v));
    if (v == NULL) {
        return bo_errf(err, BO_ENOMEM, "open view: out of memory");
    }
    v->st = st;
    /* Memory-mapped reads: an export reads every task body once, and a
     * mapping spares copying each page into the cache. Safe here: the file
     * is never swapped or shrunk under a view (restores go in place while
     * views are open, and nothing vacuums). */
    rc = open_conn(&v->c, st->path, SQLITE_OPEN_READONLY,
                   "PRAGMA cache_size=-8192; PRAGMA mmap_size=2147418112;", err);
    if (rc != BO_OK) {
        bo_free(v);
        return bo_err_wrapf(err, rc, "open view");
    }
    /* BEGIN and one read pin the WAL snapshot until the view is closed. */
    int64_t index = 0;
    rc = conn_exec(&v->c, "BEGIN", err, "open view");
    if (rc == BO_OK) {
        rc = meta_get_int(&v->c, META_APPLIED_INDEX, &index, err);
        if (rc == BO_ENOTFOUND) {
            index = 0;
            rc = BO_OK;
        }
    }
    if (rc != BO_OK) {
        conn_close(&v->c, true);
        bo_free(v);
        return bo_err_wrapf(err, rc, "open view");
    }
    v->index = (uint64_t)index;
    st->n_views++;
    *out = v;
    return BO_OK;
}

uint64_t bo_store_view_index(const struct bo_store_view *view)
{
    return view->index;
}

void bo_store_view_release(struct bo_store_view *view)
{
    if (view == NULL || view->c.db == NULL) {
        return;
    }
    conn_exec(&view->c, "COMMIT", NULL, "close view");
    conn_close(&view->c, true);
}

void bo_store_view_close(struct bo_store_view *view)
{
    if (view == NULL) {
        return;
    }
    bo_store_view_release(view);
    STORE_LOCKED(view->st);
    view->st->n_views--;
    bo_free(view);
}

static int export_configs(struct conn *c, struct bo_snap_writer *w, int64_t **ids, size_t *n,
                          struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(
        c->db, "SELECT id, body FROM task_configs WHERE task_refs > 0 ORDER BY id", -1, &s, NULL);
    if (rc != SQLITE_OK) {
        return sql_fail(c->db, rc, err, "export configs");
    }
    size_t cap = 0;
    int step;
    rc = BO_OK;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap == 0 ? 64 : cap * 2;
            int64_t *p = bo_reallocarray(*ids, cap, sizeof(*p));
            if (p == NULL) {
                rc = bo_errf(err, BO_ENOMEM, "export configs: out of memory");
                break;
            }
            *ids = p;
        }
        size_t len;
        const uint8_t *body = col_blob(s, 1, &len);
        uint32_t index;
        rc = bo_snap_writer_add_config(w, body, len, &index);
        if (rc != BO_OK) {
            rc = bo_errf(err, rc, "export configs: %s", bo_strerror(rc));
            break;
        }
        if (index != *n) {
            rc = bo_errf(err, BO_EINTERNAL, "export configs: writer numbered %u, expected %zu",
                         index, *n);
            break;
        }
        (*ids)[(*n)++] = sqlite3_column_int64(s, 0);
    }
    if (rc == BO_OK && step != SQLITE_DONE) {
        rc = sql_fail(c->db, step, err, "export configs");
    }
    sqlite3_finalize(s);
    return rc;
}

static int export_tasks(struct conn *c, struct bo_snap_writer *w, const int64_t *ids, size_t n,
                        struct bo_err *err)
{
    sqlite3_stmt *s = NULL;
    /* Rowid order: a sequential read of the table, no sort. */
    int rc = sqlite3_prepare_v2(c->db, "SELECT config_id, body FROM task_bodies", -1, &s, NULL);
    if (rc != SQLITE_OK) {
        return sql_fail(c->db, rc, err, "export tasks");
    }
    size_t last = 0;
    int step;
    rc = BO_OK;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t cid = sqlite3_column_int64(s, 0);
        if (last >= n || ids[last] != cid) {
            size_t lo = 0, hi = n;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (ids[mid] < cid) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            if (lo == n || ids[lo] != cid) {
                rc = bo_errf(err, BO_ECORRUPT, "export tasks: config %lld is not exported",
                             (long long)cid);
                break;
            }
            last = lo;
        }
        size_t len;
        const uint8_t *body = col_blob(s, 1, &len);
        rc = bo_snap_writer_add_task(w, (uint32_t)last, body, len);
        if (rc != BO_OK) {
            rc = bo_errf(err, rc, "export tasks: %s", bo_strerror(rc));
            break;
        }
    }
    if (rc == BO_OK && step != SQLITE_DONE) {
        rc = sql_fail(c->db, step, err, "export tasks");
    }
    sqlite3_finalize(s);
    return rc;
}

int bo_store_view_export(struct bo_store_view *view, struct bo_snap_writer *w, int64_t now_ms,
                         struct bo_err *err)
{
    struct conn *c = &view->c;
    int64_t *ids = NULL;
    size_t n = 0;
    struct rest r = {0};
    int rc = export_configs(c, w, &ids, &n, err);
    if (rc == BO_OK) {
        rc = export_tasks(c, w, ids, n, err);
    }
    if (rc == BO_OK) {
        rc = rest_load(c, &r, err);
    }
    if (rc == BO_OK) {
        Bo__Snapshot snap = BO__SNAPSHOT__INIT;
        snap.timestamp_ms = now_ms;
        snap.n_host_attributes = r.hosts.n;
        snap.host_attributes = (Bo__HostAttributes **)r.hosts.v;
        snap.n_cron_jobs = r.crons.n;
        snap.cron_jobs = (Bo__JobConfiguration **)r.crons.v;
        snap.scheduler_metadata = r.metadata;
        snap.n_quotas = r.quotas.n;
        snap.quotas = (Bo__QuotaConfiguration **)r.quotas.v;
        snap.n_job_updates = r.updates.n;
        snap.job_updates = (Bo__JobUpdateDetails **)r.updates.v;
        snap.n_maintenance_requests = r.maintenance.n;
        snap.maintenance_requests = (Bo__HostMaintenanceRequest **)r.maintenance.v;
        rc = bo_snap_writer_set_rest(w, &snap);
        if (rc != BO_OK) {
            rc = bo_errf(err, rc, "export: %s", bo_strerror(rc));
        }
    }
    rest_release(&r);
    bo_free(ids);
    return rc == BO_OK
               ? BO_OK
               : bo_err_wrapf(err, rc, "export view at %llu", (unsigned long long)view->index);
}

int bo_store_export(struct bo_store *st, struct bo_snap_writer *w, int64_t now_ms,
                    struct bo_err *err)
{
    STORE_LOCKED(st);
    struct bo_store_view *v;
    int rc = bo_store_view_open(st, &v, err);
    if (rc != BO_OK) {
        return rc;
    }
    rc = bo_store_view_export(v, w, now_ms, err);
    bo_store_view_close(v);
    return rc;
}

/* ----------------------------------------------------------- restore ---- */

struct restore_cfg {
    int64_t id;
    int64_t job_id;
    uint32_t by_status[19]; /* tasks of this image config, by status */
};

/* Host names met by a restore and their ids in `hosts`, so that a million
 * tasks on a few thousand hosts cost a few thousand lookups in SQLite.
 * Open addressing on bo_hash64, names compared. */
struct host_slot {
    uint64_t hash;
    char *name; /* NULL: empty slot */
    size_t len;
    int64_t id;
};

struct host_map {
    struct host_slot *slots;
    size_t n_slots; /* a power of two, or 0 */
    size_t n;
};

static void host_map_release(struct host_map *m)
{
    for (size_t i = 0; i < m->n_slots; i++) {
        bo_free(m->slots[i].name);
    }
    bo_free(m->slots);
    *m = (struct host_map){0};
}

static struct host_slot *host_map_slot(struct host_slot *slots, size_t n_slots, uint64_t hash,
                                       const char *name, size_t len)
{
    size_t i = (size_t)hash & (n_slots - 1);
    while (slots[i].name != NULL && !(slots[i].hash == hash && slots[i].len == len &&
                                      memcmp(slots[i].name, name, len) == 0)) {
        i = (i + 1) & (n_slots - 1);
    }
    return &slots[i];
}

static int host_map_grow(struct host_map *m)
{
    size_t n_slots = m->n_slots == 0 ? 1024 : m->n_slots * 2;
    struct host_slot *slots = bo_calloc(n_slots, sizeof(*slots));
    if (slots == NULL) {
        return BO_ENOMEM;
    }
    for (size_t i = 0; i < m->n_slots; i++) {
        const struct host_slot *o = &m->slots[i];
        if (o->name != NULL) {
            *host_map_slot(slots, n_slots, o->hash, o->name, o->len) = *o;
        }
    }
    bo_free(m->slots);
    m->slots = slots;
    m->n_slots = n_slots;
    return BO_OK;
}

/* Tasks on their way to SQLite: their rows, task ids and bodies (in
 * `bytes`), and the hosts first met in them with the ids the restore gave
 * them. */
#define RESTORE_CHUNK 1024

struct restore_row {
    int64_t id, job_id, host_id, config_id;
    int32_t instance_id;
    int status;
    size_t tid_off, tid_len, body_off, body_len;
};

struct restore_host {
    int64_t id;
    size_t off, len;
};

struct restore_chunk {
    struct restore_row rows[RESTORE_CHUNK];
    size_t n_rows;
    struct restore_host *hosts;
    size_t n_hosts, cap_hosts;
    struct bo_buf bytes;
    struct restore_chunk *next;
};

/* A restore into a fresh file inserts on a thread of its own while the
 * caller's thread walks the image (decoding, delta timestamps, host map):
 * the two took 1.9 s in turn at a million tasks. Chunks go round between
 * the two through `full` and `free`. The inserter owns the connection from
 * the first chunk until restore_pipe_stop() joins it; nothing else touches
 * the connection meanwhile (configs come before the first task, the rest of
 * the image after the last). After a failure it inserts nothing more and
 * hands chunks back, so the walk stops at its next hand-off with the
 * inserter's error. */
#define RESTORE_PIPE_CHUNKS 3

struct restore_pipe {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct conn *c;
    struct restore_chunk *free, *full, *full_tail;
    bool done;   /* no more chunks will come */
    bool failed; /* the inserter stopped: `rc` and `err` say why */
    int rc;
    struct bo_err err;
    struct restore_chunk chunks[RESTORE_PIPE_CHUNKS];
};

struct restore {
    struct bo_store *st;
    struct conn *c; /* `own` (a fresh file) or the store's main connection */
    struct conn own;
    struct restore_cfg *cfgs;
    size_t n_cfgs, cap_cfgs;
    uint64_t n_tasks;
    bool refs_done;
    struct job_tally *tally; /* of the tasks inserted, for the store once it succeeds */
    struct bo_buf tmp;
    struct host_map hosts;
    struct restore_chunk *cur; /* tasks waiting; NULL before the first */
    struct restore_chunk *own_chunk;
    struct restore_pipe *pipe;
    struct bo_err *err;
};

static void chunk_clear(struct restore_chunk *k)
{
    k->n_rows = 0;
    k->n_hosts = 0;
    k->bytes.len = 0;
}

static void chunk_release(struct restore_chunk *k)
{
    bo_free(k->hosts);
    bo_buf_release(&k->bytes);
}

/* Insert a chunk's hosts and tasks: one statement for RESTORE_BATCH tasks
 * (stepping a statement costs more than the row it inserts), one per task
 * for the rest. */
static int chunk_insert(struct conn *c, struct restore_chunk *k, struct bo_err *err)
{
    const uint8_t *base = k->bytes.data;
    sqlite3_stmt *s = NULL;
    int rc = BO_OK;
    for (size_t i = 0; i < k->n_hosts && rc == BO_OK; i++) {
        const struct restore_host *h = &k->hosts[i];
        rc = conn_stmt(c, S_HOSTNAME_INSERT_ID, &s, err);
        if (rc == BO_OK) {
            sqlite3_bind_int64(s, 1, h->id);
            sqlite3_bind_text(s, 2, (const char *)base + h->off, (int)h->len, SQLITE_STATIC);
            rc = step_done(c, s, err, "insert host");
        }
    }
    size_t i = 0;
    for (; i + RESTORE_BATCH <= k->n_rows && rc == BO_OK; i += RESTORE_BATCH) {
        rc = conn_stmt(c, S_TASK_INSERT_MANY, &s, err);
        if (rc != BO_OK) {
            break;
        }
        for (size_t j = 0; j < RESTORE_BATCH; j++) {
            const struct restore_row *w = &k->rows[i + j];
            int b = (int)j * 7;
            sqlite3_bind_int64(s, b + 1, w->id);
            sqlite3_bind_text(s, b + 2, (const char *)base + w->tid_off, (int)w->tid_len,
                              SQLITE_STATIC);
            sqlite3_bind_int64(s, b + 3, w->job_id);
            sqlite3_bind_int(s, b + 4, w->instance_id);
            sqlite3_bind_int(s, b + 5, w->status);
            sqlite3_bind_int64(s, b + 6, w->host_id);
            sqlite3_bind_int64(s, b + 7, w->config_id);
        }
        rc = step_done(c, s, err, "insert tasks");
        if (rc == BO_OK) {
            rc = conn_stmt(c, S_BODY_INSERT_MANY, &s, err);
        }
        if (rc != BO_OK) {
            break;
        }
        for (size_t j = 0; j < RESTORE_BATCH; j++) {
            const struct restore_row *w = &k->rows[i + j];
            int b = (int)j * 3;
            sqlite3_bind_int64(s, b + 1, w->id);
            sqlite3_bind_int64(s, b + 2, w->config_id);
            bind_blob(s, b + 3, base + w->body_off, w->body_len);
        }
        rc = step_done(c, s, err, "store task bodies");
    }
    for (; i < k->n_rows && rc == BO_OK; i++) {
        const struct restore_row *w = &k->rows[i];
        rc = conn_stmt(c, S_TASK_INSERT, &s, err);
        if (rc != BO_OK) {
            break;
        }
        sqlite3_bind_int64(s, 1, w->id);
        sqlite3_bind_text(s, 2, (const char *)base + w->tid_off, (int)w->tid_len, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, w->job_id);
        sqlite3_bind_int(s, 4, w->instance_id);
        sqlite3_bind_int(s, 5, w->status);
        sqlite3_bind_int64(s, 6, w->host_id);
        sqlite3_bind_int64(s, 7, w->config_id);
        rc = step_done(c, s, err, "insert task");
        if (rc == BO_OK) {
            rc = body_put(c, w->id, w->config_id, base + w->body_off, w->body_len, err);
        }
    }
    chunk_clear(k);
    return rc;
}

static void *restore_pipe_main(void *arg)
{
    struct restore_pipe *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->full == NULL && !p->done) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
        struct restore_chunk *k = p->full;
        if (k == NULL) {
            break;
        }
        p->full = k->next;
        if (p->full == NULL) {
            p->full_tail = NULL;
        }
        bool failed = p->failed;
        pthread_mutex_unlock(&p->mu);
        struct bo_err err = BO_ERR_INIT;
        int rc = BO_OK;
        if (failed) {
            chunk_clear(k); /* nothing more goes in: hand it back */
        } else {
            rc = chunk_insert(p->c, k, &err);
        }
        pthread_mutex_lock(&p->mu);
        if (rc != BO_OK && !p->failed) {
            p->failed = true;
            p->rc = rc;
            p->err = err;
        }
        k->next = p->free;
        p->free = k;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Start the inserter, or leave the restore inserting on its own thread if
 * it cannot (only slower). */
static void restore_pipe_start(struct restore *r)
{
    struct restore_pipe *p = bo_calloc(1, sizeof(*p));
    if (p == NULL) {
        return;
    }
    p->c = r->c;
    for (size_t i = 0; i < RESTORE_PIPE_CHUNKS; i++) {
        p->chunks[i].next = p->free;
        p->free = &p->chunks[i];
    }
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        goto err_after_alloc;
    }
    if (pthread_cond_init(&p->cv, NULL) != 0) {
        goto err_after_mutex;
    }
    if (pthread_create(&p->thread, NULL, restore_pipe_main, p) != 0) {
        goto err_after_cond;
    }
    r->cur = p->free;
    p->free = r->cur->next;
    r->pipe = p;
    return;

err_after_cond:
    pthread_cond_destroy(&p->cv);
err_after_mutex:
    pthread_mutex_destroy(&p->mu);
err_after_alloc:
    bo_free(p);
}

/* Hand the current chunk to the inserter and take a free one. */
static int restore_pipe_hand_off(struct restore *r)
{
    struct restore_pipe *p = r->pipe;
    pthread_mutex_lock(&p->mu);
    struct restore_chunk *k = r->cur;
    k->next = NULL;
    if (p->full_tail != NULL) {
        p->full_tail->next = k;
    } else {
        p->full = k;
    }
    p->full_tail = k;
    pthread_cond_broadcast(&p->cv);
    while (p->free == NULL) {
        pthread_cond_wait(&p->cv, &p->mu);
    }
    r->cur = p->free;
    p->free = r->cur->next;
    int rc = BO_OK;
    if (p->failed) {
        *r->err = p->err;
        rc = p->rc;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* Join the inserter once it has inserted every chunk handed to it (and
 * `cur` too unless `abandon`); the connection is the caller's again. */
static int restore_pipe_stop(struct restore *r, bool abandon)
{
    struct restore_pipe *p = r->pipe;
    if (p == NULL) {
        return BO_OK;
    }
    int rc = abandon || r->cur->n_rows + r->cur->n_hosts == 0 ? BO_OK : restore_pipe_hand_off(r);
    pthread_mutex_lock(&p->mu);
    p->done = true;
    if (abandon) {
        p->failed = true;
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    if (rc == BO_OK && p->failed && !abandon) {
        *r->err = p->err;
        rc = p->rc;
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    for (size_t i = 0; i < RESTORE_PIPE_CHUNKS; i++) {
        chunk_release(&p->chunks[i]);
    }
    bo_free(p);
    r->pipe = NULL;
    r->cur = NULL;
    return rc;
}

/* What a restore holds besides its connection. */
static void restore_release(struct restore *r)
{
    tally_free(&r->tally);
    bo_free(r->cfgs);
    host_map_release(&r->hosts);
    if (r->own_chunk != NULL) {
        chunk_release(r->own_chunk);
        bo_free(r->own_chunk);
    }
    bo_buf_release(&r->tmp);
}

/* Insert the waiting tasks, or hand them to the inserter. */
static int restore_flush(struct restore *r)
{
    if (r->pipe != NULL) {
        return restore_pipe_hand_off(r);
    }
    return r->cur == NULL ? BO_OK : chunk_insert(r->c, r->cur, r->err);
}

/* host_id() through the restore's map. */
static int restore_host_id(struct restore *r, const char *name, size_t len, int64_t *id)
{
    if (r->hosts.n * 2 >= r->hosts.n_slots && host_map_grow(&r->hosts) != BO_OK) {
        return bo_errf(r->err, BO_ENOMEM, "restore: out of memory");
    }
    uint64_t hash = bo_hash64(name, len);
    struct host_slot *slot = host_map_slot(r->hosts.slots, r->hosts.n_slots, hash, name, len);
    if (slot->name != NULL) {
        *id = slot->id;
        return BO_OK;
    }
    int rc = BO_OK;
    if (r->c == &r->own) {
        /* A fresh file has no hosts yet: numbered here, inserted with the
         * chunk that first names it. */
        struct restore_chunk *k = r->cur;
        if (k->n_hosts == k->cap_hosts) {
            size_t cap = k->cap_hosts == 0 ? 64 : k->cap_hosts * 2;
            struct restore_host *h = bo_reallocarray(k->hosts, cap, sizeof(*h));
            if (h == NULL) {
                return bo_errf(r->err, BO_ENOMEM, "restore: out of memory");
            }
            k->hosts = h;
            k->cap_hosts = cap;
        }
        *id = (int64_t)r->hosts.n + 1;
        k->hosts[k->n_hosts++] = (struct restore_host){.id = *id, .off = k->bytes.len, .len = len};
        if (bo_buf_append(&k->bytes, name, len) != BO_OK) {
            return bo_errf(r->err, BO_ENOMEM, "restore: out of memory");
        }
    } else {
        rc = host_id(r->c, name, len, id, r->err);
    }
    if (rc != BO_OK) {
        return rc;
    }
    slot->name = bo_strndup(len == 0 ? "" : name, len);
    if (slot->name == NULL) {
        return bo_errf(r->err, BO_ENOMEM, "restore: out of memory");
    }
    slot->hash = hash;
    slot->len = len;
    slot->id = *id;
    r->hosts.n++;
    return BO_OK;
}

static int restore_config(void *data, uint32_t index, const uint8_t *bytes, size_t len)
{
    struct restore *r = data;
    if (index != r->n_cfgs) {
        return bo_errf(r->err, BO_ECORRUPT, "snapshot config %u out of order", index);
    }
    if (r->n_cfgs == r->cap_cfgs) {
        size_t cap = r->cap_cfgs == 0 ? 64 : r->cap_cfgs * 2;
        struct restore_cfg *p = bo_reallocarray(r->cfgs, cap, sizeof(*p));
        if (p == NULL) {
            return bo_errf(r->err, BO_ENOMEM, "restore: out of memory");
        }
        r->cfgs = p;
        r->cap_cfgs = cap;
    }
    Bo__TaskConfig *cfg = bo__task_config__unpack(NULL, len, bytes);
    if (cfg == NULL) {
        return bo_errf(r->err, BO_ECORRUPT, "snapshot config %u: cannot decode", index);
    }
    char why[256];
    int rc;
    if (!check_job_key(cfg->job, "job", why, sizeof(why))) {
        rc = bo_errf(r->err, BO_ECORRUPT, "snapshot config %u: %s", index, why);
        goto out;
    }
    /* Images written elsewhere may not be canonical: normalize again so a
     * later save of an equal config finds this row. */
    r->st->canon.len = 0;
    rc = bo_canon_encode_config(cfg, &r->st->canon);
    if (rc != BO_OK) {
        rc = bo_errf(r->err, rc, "snapshot config %u: %s", index, bo_strerror(rc));
        goto out;
    }
    struct restore_cfg *rc_ = &r->cfgs[r->n_cfgs];
    memset(rc_, 0, sizeof(*rc_));
    rc = config_store_canonical(r->c, cfg->job, r->st->canon.data, r->st->canon.len, &rc_->id,
                                &rc_->job_id, r->err);
    if (rc == BO_OK) {
        r->n_cfgs++;
    }
out:
    bo__task_config__free_unpacked(cfg, NULL);
    return rc;
}

/* The indexed columns of a task, read from its partial encoding. */
struct task_cols {
    const char *task_id;
    size_t task_id_len;
    const char *host;
    size_t host_len;
    int32_t instance_id;
    int status;
    bool has_config;
};

static const char *parse_partial(const uint8_t *p, size_t len, struct task_cols *t)
{
    memset(t, 0, sizeof(*t));
    t->host = "";
    struct bo_pb_reader r;
    struct bo_pb_field f;
    int rc;
    bo_pb_reader_init(&r, p, len);
    while ((rc = bo_pb_next(&r, &f)) == 1) {
        if (f.number == 2) {
            if (f.wire_type != BO_PB_VARINT) {
                return "status is not a varint";
            }
            t->status = (int)(int32_t)(uint32_t)(f.varint & 0xffffffffu);
            continue;
        }
        if (f.number != 1) {
            continue;
        }
        if (f.wire_type != BO_PB_LEN) {
            return "assigned_task is not a message";
        }
        /* Repeated occurrences of a message field merge: read them all. */
        struct bo_pb_reader ar;
        struct bo_pb_field af;
        bo_pb_reader_init(&ar, f.data, f.len);
        while ((rc = bo_pb_next(&ar, &af)) == 1) {
            switch (af.number) {
            case 1:
            case 3:
                if (af.wire_type != BO_PB_LEN) {
                    return "assigned_task string field has the wrong type";
                }
                if (af.number == 1) {
                    t->task_id = (const char *)af.data;
                    t->task_id_len = af.len;
                } else {
                    t->host = (const char *)af.data;
                    t->host_len = af.len;
                }
                break;
            case 4:
                t->has_config = true;
                break;
            case 6:
                if (af.wire_type != BO_PB_VARINT) {
                    return "instance_id is not a varint";
                }
                t->instance_id = (int32_t)(uint32_t)(af.varint & 0xffffffffu);
                break;
            default:
                break;
            }
        }
        if (rc < 0) {
            return "malformed assigned_task";
        }
    }
    if (rc < 0) {
        return "malformed task";
    }
    if (t->task_id_len == 0) {
        return "empty task id";
    }
    if (!status_known(t->status)) {
        return "unknown status";
    }
    if (t->instance_id < 0) {
        return "negative instance id";
    }
    return NULL;
}

static int restore_task(void *data, uint32_t config_index, const uint8_t *p, size_t len)
{
    struct restore *r = data;
    uint64_t n = r->n_tasks;
    if (config_index >= r->n_cfgs) {
        return bo_errf(r->err, BO_ECORRUPT, "snapshot task %llu: config %u does not exist",
                       (unsigned long long)n, config_index);
    }
    struct task_cols t;
    const char *why = parse_partial(p, len, &t);
    if (why != NULL) {
        return bo_errf(r->err, BO_ECORRUPT, "snapshot task %llu: %s", (unsigned long long)n, why);
    }
    if (t.has_config) {
        /* Keep the table's invariant: bodies never carry their config. */
        Bo__ScheduledTask *full = bo__scheduled_task__unpack(NULL, len, p);
        if (full == NULL || full->assigned_task == NULL) {
            if (full != NULL) {
                bo__scheduled_task__free_unpacked(full, NULL);
            }
            return bo_errf(r->err, BO_ECORRUPT, "snapshot task %llu: cannot decode",
                           (unsigned long long)n);
        }
        int rc = encode_partial_task(full, &r->tmp);
        bo__scheduled_task__free_unpacked(full, NULL);
        if (rc != BO_OK) {
            return bo_errf(r->err, BO_ENOMEM, "restore: out of memory");
        }
        p = r->tmp.data;
        len = r->tmp.len;
    }
    struct restore_cfg *cfg = &r->cfgs[config_index];
    if (r->cur == NULL) {
        if (r->c == &r->own) {
            restore_pipe_start(r);
        }
        if (r->cur == NULL) {
            r->own_chunk = bo_calloc(1, sizeof(*r->own_chunk));
            if (r->own_chunk == NULL) {
                return bo_errf(r->err, BO_ENOMEM, "restore: out of memory");
            }
            r->cur = r->own_chunk;
        }
    }
    int64_t hid;
    int rc = restore_host_id(r, t.host, t.host_len, &hid);
    if (rc != BO_OK) {
        return rc;
    }
    struct restore_chunk *k = r->cur;
    struct restore_row *w = &k->rows[k->n_rows];
    *w = (struct restore_row){.id = (int64_t)n + 1,
                              .job_id = cfg->job_id,
                              .host_id = hid,
                              .config_id = cfg->id,
                              .instance_id = t.instance_id,
                              .status = t.status,
                              .tid_off = k->bytes.len,
                              .tid_len = t.task_id_len,
                              .body_off = k->bytes.len + t.task_id_len,
                              .body_len = len};
    if (bo_buf_append(&k->bytes, t.task_id, t.task_id_len) != BO_OK ||
        bo_buf_append(&k->bytes, p, len) != BO_OK) {
        return bo_errf(r->err, BO_ENOMEM, "restore: out of memory");
    }
    if (++k->n_rows == RESTORE_CHUNK) {
        rc = restore_flush(r);
        if (rc != BO_OK) {
            return rc;
        }
    }
    cfg->by_status[t.status]++;
    r->n_tasks++;
    return BO_OK;
}

/* Task references and counts, added in bulk once all tasks are in. */
static int restore_task_refs(struct restore *r)
{
    int frc = r->pipe != NULL ? restore_pipe_stop(r, false) : restore_flush(r);
    if (frc != BO_OK) {
        return frc;
    }
    if (r->refs_done) {
        return BO_OK;
    }
    r->refs_done = true;
    for (size_t i = 0; i < r->n_cfgs; i++) {
        const struct restore_cfg *cfg = &r->cfgs[i];
        int64_t total = 0;
        for (int status = 0; status < 19; status++) {
            if (cfg->by_status[status] == 0) {
                continue;
            }
            total += cfg->by_status[status];
            int rc = tally_add(&r->tally, cfg->job_id, status, cfg->by_status[status]);
            if (rc != BO_OK) {
                return bo_errf(r->err, rc, "restore: count tasks: %s", bo_strerror(rc));
            }
        }
        if (total > 0) {
            int rc = config_ref(r->c, cfg->id, total, total, r->err);
            if (rc != BO_OK) {
                return rc;
            }
        }
    }
    return BO_OK;
}

static int restore_invalid(struct restore *r, const char *what, size_t i, const char *why)
{
    return bo_errf(r->err, BO_ECORRUPT, "snapshot %s %zu: %s", what, i, why);
}

static int restore_rest(void *data, const Bo__Snapshot *snap)
{
    struct restore *r = data;
    struct bo_store *st = r->st;
    struct conn *c = r->c;
    char why[384];
    int rc = restore_task_refs(r);
    for (size_t i = 0; i < snap->n_host_attributes && rc == BO_OK; i++) {
        const Bo__HostAttributes *h = snap->host_attributes[i];
        rc = check_host_attributes(h, why, sizeof(why))
                 ? save_host(st, c, h, r->err)
                 : restore_invalid(r, "host attributes", i, why);
    }
    for (size_t i = 0; i < snap->n_cron_jobs && rc == BO_OK; i++) {
        const Bo__JobConfiguration *jc = snap->cron_jobs[i];
        rc = check_cron_job(jc, why, sizeof(why)) ? save_cron_job(st, c, jc, r->err)
                                                  : restore_invalid(r, "cron job", i, why);
    }
    for (size_t i = 0; i < snap->n_quotas && rc == BO_OK; i++) {
        const Bo__QuotaConfiguration *q = snap->quotas[i];
        rc = q != NULL && !str_empty(q->role) ? save_quota(st, c, q->role, q->quota, r->err)
                                              : restore_invalid(r, "quota", i, "empty role");
    }
    for (size_t i = 0; i < snap->n_job_updates && rc == BO_OK; i++) {
        const Bo__JobUpdateDetails *d = snap->job_updates[i];
        if (d == NULL || !check_job_update(d->update, why, sizeof(why))) {
            rc = restore_invalid(r, "job update", i, d == NULL ? "missing" : why);
            break;
        }
        rc = save_job_update(st, c, d->update, r->err);
        int64_t row = 0;
        if (rc == BO_OK) {
            rc = update_find(c, d->update->summary->key, &row, NULL, r->err);
        }
        for (size_t j = 0; j < d->n_update_events && rc == BO_OK; j++) {
            const Bo__JobUpdateEvent *e = d->update_events[j];
            rc = e == NULL ? restore_invalid(r, "job update", i, "missing event")
                           : append_event(st, c, row, false, &e->base, e->timestamp_ms,
                                          (int)e->status, r->err);
        }
        for (size_t j = 0; j < d->n_instance_events && rc == BO_OK; j++) {
            const Bo__JobInstanceUpdateEvent *e = d->instance_events[j];
            rc = e == NULL ? restore_invalid(r, "job update", i, "missing instance event")
                           : append_event(st, c, row, true, &e->base, e->timestamp_ms, 0, r->err);
        }
    }
    for (size_t i = 0; i < snap->n_maintenance_requests && rc == BO_OK; i++) {
        const Bo__HostMaintenanceRequest *m = snap->maintenance_requests[i];
        rc = m != NULL && !str_empty(m->host) ? save_maintenance(st, c, m, r->err)
                                              : restore_invalid(r, "maintenance", i, "empty host");
    }
    if (rc == BO_OK && snap->scheduler_metadata != NULL) {
        rc = save_metadata(st, c, snap->scheduler_metadata, r->err);
    }
    return rc;
}

/* Fill a fresh database at `tmp_path` from `image`. */
static int restore_build(struct restore *r, const char *tmp_path, const uint8_t *image, size_t len,
                         bool bare, uint64_t index)
{
    struct bo_err *err = r->err;
    r->c = &r->own;
    /* The file is thrown away on any error: no journal needed, and its pages
     * can be written in big writes (wbuf.h) whose errors come late. */
    int rc =
        open_conn_vfs(r->c, tmp_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, bo_wbuf_vfs(),
                      "PRAGMA page_size=" STORE_PAGE_SIZE "; PRAGMA journal_mode=OFF;"
                      " PRAGMA synchronous=OFF;"
                      " PRAGMA locking_mode=EXCLUSIVE; PRAGMA cache_size=-65536;"
                      " PRAGMA threads=2;",
                      err);
    if (rc != BO_OK) {
        return rc;
    }
    rc = conn_exec(r->c, "BEGIN", err, "restore");
    if (rc == BO_OK) {
        rc = conn_exec(r->c, schema_tables, err, "create schema");
    }
    if (rc != BO_OK) {
        return rc;
    }
    struct bo_snap_visitor v = {
        .data = r, .config = restore_config, .task = restore_task, .rest = restore_rest};
    rc = bare ? bo_snap_read_payload(image, len, &v, NULL, err)
              : bo_snap_read(image, len, &v, NULL, err);
    if (rc == BO_OK) {
        rc = restore_task_refs(r);
    }
    if (rc == BO_OK) {
        /* Configs of the image nothing refers to, and their jobs. */
        rc = conn_exec(r->c,
                       "DELETE FROM task_configs WHERE refs <= 0;"
                       "DELETE FROM jobs WHERE"
                       " NOT EXISTS (SELECT 1 FROM task_configs c WHERE c.job_id = jobs.id)"
                       " AND NOT EXISTS (SELECT 1 FROM cron_jobs c WHERE c.job_id = jobs.id)"
                       " AND NOT EXISTS (SELECT 1 FROM job_updates u WHERE u.job_id = jobs.id);",
                       err, "collect configs");
    }
    if (rc == BO_OK) {
        /* Index builds sort with temporary files (never temp_store=MEMORY:
         * SQLite then sorts everything as one linked list, on one thread)
         * in runs as large as the cache; small runs sort in the CPU cache
         * and on PRAGMA threads. */
        rc = conn_exec(r->c, "PRAGMA cache_size=-4096", err, "index tasks");
        if (rc == BO_OK) {
            rc = conn_exec(r->c, schema_task_indexes, err, "index tasks");
        }
        if (rc == BO_EINVAL) {
            rc = bo_err_wrapf(err, BO_ECORRUPT, "snapshot has duplicate task ids");
        }
    }
    if (rc == BO_OK) {
        rc = meta_put_int(r->c, META_SCHEMA_VERSION, BO_SCHEMA_VERSION, err);
    }
    if (rc == BO_OK) {
        rc = meta_put_int(r->c, META_APPLIED_INDEX, (int64_t)index, err);
    }
    if (rc == BO_OK) {
        rc = conn_exec(r->c, "COMMIT", err, "restore");
    }
    if (rc == BO_OK) {
        /* Nothing syncs with synchronous=OFF: what the buffer holds is
         * written here, and its errors seen. */
        int frc = sqlite3_file_control(r->c->db, "main", BO_WBUF_FCNTL_FLUSH, NULL);
        if (frc != SQLITE_OK && frc != SQLITE_NOTFOUND) {
            rc = sql_fail(NULL, frc, err, "restore: write");
        }
    }
    return rc;
}

/* Replace the state inside one write transaction on the main connection,
 * while views (snapshots, backups, checkpoints) may be reading: WAL keeps
 * showing them the state they pinned. Slower than building a fresh file
 * (indexes are maintained row by row), so only used when views are open; a
 * state-replacing log entry (a recovery commit) cannot wait for them. */
static int restore_in_place(struct bo_store *st, const uint8_t *image, size_t len, bool bare,
                            uint64_t index, struct bo_err *err)
{
    struct restore r = {.st = st, .err = err, .c = &st->main};
    int rc = conn_exec(r.c, "BEGIN IMMEDIATE", err, "restore");
    if (rc != BO_OK) {
        return bo_err_wrapf(err, rc, "restore");
    }
    memo_reset(st);
    rc = conn_exec(
        r.c,
        "DELETE FROM tasks; DELETE FROM task_bodies; DELETE FROM hosts; DELETE FROM task_configs;"
        " DELETE FROM jobs; DELETE FROM cron_jobs;"
        " DELETE FROM quotas; DELETE FROM host_attributes; DELETE FROM maintenance;"
        " DELETE FROM job_updates; DELETE FROM job_update_configs;"
        " DELETE FROM job_update_events; DELETE FROM job_instance_events;",
        err, "restore: clear");
    if (rc == BO_OK) {
        struct bo_snap_visitor v = {
            .data = &r, .config = restore_config, .task = restore_task, .rest = restore_rest};
        rc = bare ? bo_snap_read_payload(image, len, &v, NULL, err)
                  : bo_snap_read(image, len, &v, NULL, err);
    }
    if (rc == BO_OK) {
        rc = restore_task_refs(&r);
    }
    if (rc == BO_OK) {
        rc = conn_exec(r.c,
                       "DELETE FROM task_configs WHERE refs <= 0;"
                       "DELETE FROM jobs WHERE"
                       " NOT EXISTS (SELECT 1 FROM task_configs c WHERE c.job_id = jobs.id)"
                       " AND NOT EXISTS (SELECT 1 FROM cron_jobs c WHERE c.job_id = jobs.id)"
                       " AND NOT EXISTS (SELECT 1 FROM job_updates u WHERE u.job_id = jobs.id);",
                       err, "collect configs");
    }
    if (rc == BO_EINVAL) {
        rc = bo_err_wrapf(err, BO_ECORRUPT, "snapshot has duplicate task ids");
    }
    if (rc == BO_OK) {
        rc = meta_put_int(r.c, META_APPLIED_INDEX, (int64_t)index, err);
    }
    if (rc == BO_OK) {
        rc = conn_exec(r.c, "COMMIT", err, "restore");
    }
    if (rc != BO_OK && !sqlite3_get_autocommit(st->main.db)) {
        conn_exec(r.c, "ROLLBACK", NULL, "restore");
    }
    memo_reset(st);
    if (rc == BO_OK) {
        st->applied_index = index;
        tally_free(&st->tally);
        st->tally = r.tally;
        r.tally = NULL;
        st->tally_stale = false;
    }
    restore_release(&r);
    return rc == BO_OK ? BO_OK : bo_err_wrapf(err, rc, "restore");
}

/* `bare`: `image` is an encoded LogEntry without the image header. */
static int restore_from(struct bo_store *st, const uint8_t *image, size_t len, bool bare,
                        uint64_t index, struct bo_err *err)
{
    bo_lru_clear(st->texts); /* its DELETEs call no hook */
    int frc = bo_store_flush(st, err);
    if (frc != BO_OK) {
        return bo_err_wrapf(err, frc, "restore");
    }
    if (st->n_views > 0) {
        return restore_in_place(st, image, len, bare, index, err);
    }
    char tmp_path[4096];
    if (path_with_suffix(tmp_path, sizeof(tmp_path), st->path, ".restore") != BO_OK) {
        return bo_errf(err, BO_ETOOBIG, "restore: path '%s' is too long", st->path);
    }
    int rc = remove_db(st->path, ".restore", err);
    if (rc != BO_OK) {
        return bo_err_wrapf(err, rc, "restore");
    }
    struct restore r = {.st = st, .err = err};
    memo_reset(st);
    rc = restore_build(&r, tmp_path, image, len, bare, index);
    restore_pipe_stop(&r, true); /* still running only if the walk failed */
    conn_close(&r.own, true);
    memo_reset(st);
    struct job_tally *tally = r.tally;
    r.tally = NULL;
    restore_release(&r);
    if (rc != BO_OK) {
        tally_free(&tally);
        remove_db(st->path, ".restore", NULL);
        return bo_err_wrapf(err, rc, "restore");
    }
    /* From here the store's file changes (or it stays closed): its tally
     * is the new one, or stale until the old state is known again. */
    tally_free(&st->tally);
    st->tally = tally;
    st->tally_stale = true;

    ckpt_conn_drop(st); /* it would keep the old file */
    /* Swap files. The old WAL is discarded, not checkpointed: its content is
     * what is being replaced. The old file is moved aside first: ext4 flushes
     * a file renamed over another one (auto_da_alloc), which costs half a
     * second for a million tasks, while a rename to a free name does not. */
    conn_close(&st->main, false);
    char old_path[4096];
    rc = path_with_suffix(old_path, sizeof(old_path), st->path, ".old") != BO_OK
             ? bo_errf(err, BO_ETOOBIG, "restore: path '%s' is too long", st->path)
             : remove_db(st->path, ".old", err);
    bool moved = false, lost = false;
    if (rc == BO_OK) {
        if (rename(st->path, old_path) == 0) {
            moved = true;
        } else if (errno != ENOENT) {
            rc = bo_errf(err, bo_err_from_errno(errno), "restore: rename '%s': %s", st->path,
                         strerror(errno));
        }
    }
    if (rc == BO_OK && rename(tmp_path, st->path) != 0) {
        rc = bo_errf(err, bo_err_from_errno(errno), "restore: rename '%s': %s", tmp_path,
                     strerror(errno));
        lost = moved && rename(old_path, st->path) != 0;
    }
    if (rc != BO_OK) {
        remove_db(st->path, ".restore", NULL);
        if (lost) {
            /* Reopening would create an empty state: stay closed. */
            return bo_err_wrapf(err, rc, "and moving the old state back failed");
        }
        if (open_main(st, NULL) != BO_OK) {
            bo_err_wrapf(err, rc, "and reopening the old state failed");
        }
        return rc;
    }
    if (moved) {
        rc = remove_db(st->path, ".old", err);
    }
    if (rc == BO_OK) {
        rc = remove_file(st->path, "-wal", err);
    }
    if (rc == BO_OK) {
        rc = remove_file(st->path, "-shm", err);
    }
    if (rc == BO_OK) {
        rc = open_main(st, err);
    }
    if (rc != BO_OK) {
        return bo_err_wrapf(err, rc, "restore");
    }
    st->tally_stale = false;
    return BO_OK;
}

int bo_store_restore(struct bo_store *st, const uint8_t *image, size_t len, uint64_t index,
                     struct bo_err *err)
{
    STORE_LOCKED(st);
    return restore_from(st, image, len, false, index, err);
}

/* Fill `sb` for a config that came as `raw`: from the memo if it knows
 * the bytes (the job key copied into the arena, since a later memo_add may
 * reuse the slot), else decoded. */
static int stub_config(struct bo_store *st, struct cfg_stub *sb, const ProtobufCBinaryData *raw)
{
    *sb = (struct cfg_stub){.raw = raw->data, .len = raw->len};
    sb->hash = bo_hash64(raw->data, raw->len);
    ProtobufCAllocator alloc = {arena_alloc, arena_free, &st->apply_arena};
    struct memo_entry *e = memo_find(st, &st->main, sb->hash, raw->data, raw->len);
    if (e == NULL) {
        sb->full = bo__task_config__unpack(&alloc, raw->len, raw->data);
        if (sb->full == NULL) {
            return st->apply_arena.failed ? BO_ENOMEM : BO_ECORRUPT;
        }
        sb->cfg = *sb->full;
        return BO_OK;
    }
    sb->known = true;
    sb->gen = st->memo_gen;
    sb->config_id = e->config_id;
    sb->job_id = e->job_id;
    sb->cfg = (Bo__TaskConfig)BO__TASK_CONFIG__INIT;
    if (e->job.len == 0) {
        return BO_OK;
    }
    char *key = arena_alloc(&st->apply_arena, e->job.len);
    if (key == NULL) {
        return BO_ENOMEM;
    }
    memcpy(key, e->job.data, e->job.len);
    sb->job = (Bo__JobKey)BO__JOB_KEY__INIT;
    sb->job.role = key;
    sb->job.environment = key + strlen(key) + 1;
    sb->job.name = sb->job.environment + strlen(sb->job.environment) + 1;
    sb->cfg.job = &sb->job;
    return BO_OK;
}

static const Bo__SaveTasks *save_tasks_of(const Bo__Op *op)
{
    return op != NULL && op->op_case == BO__OP__OP_SAVE_TASKS ? op->save_tasks : NULL;
}

/* Stub the configs entrydec left as bytes in `e` (struct cfg_stub): those
 * the memo knows need no decoding. Every task is plain on return, unless
 * *merged: a config came in parts, for the generated decoder to merge (the
 * caller decodes the entry again and drops the stubs). BO_ECORRUPT if a
 * config does not decode. */
static int entry_stub_configs(struct bo_store *st, Bo__LogEntry *e, bool *merged)
{
    *merged = false;
    const Bo__Transaction *txn = e->transaction;
    size_t max = 0;
    for (size_t i = 0; i < txn->n_ops; i++) {
        const Bo__SaveTasks *op = save_tasks_of(txn->ops[i]);
        max += op != NULL ? op->n_tasks : 0;
    }
    if (max == 0) {
        return BO_OK;
    }
    st->stubs = arena_alloc(&st->apply_arena, max * sizeof(*st->stubs));
    if (st->stubs == NULL) {
        return BO_ENOMEM;
    }
    for (size_t i = 0; i < txn->n_ops; i++) {
        const Bo__SaveTasks *op = save_tasks_of(txn->ops[i]);
        for (size_t j = 0; op != NULL && j < op->n_tasks; j++) {
            Bo__ScheduledTask *t = op->tasks[j];
            struct bo_entrydec_assigned *x =
                t != NULL ? bo_entrydec_assigned(&st->dec, t->assigned_task) : NULL;
            if (x == NULL) {
                continue;
            }
            if (x->n_raw > 1) {
                *merged = true;
                return BO_OK;
            }
            bo_entrydec_plain(x);
            if (x->n_raw == 0) {
                continue;
            }
            int rc = stub_config(st, &st->stubs[st->n_stubs], &x->raw[0]);
            if (rc != BO_OK) {
                return rc;
            }
            x->base.task = &st->stubs[st->n_stubs++].cfg;
        }
    }
    return BO_OK;
}

int bo_store_apply_entry(struct bo_store *st, const uint8_t *data, size_t len, uint64_t index,
                         struct bo_err *err)
{
    STORE_LOCKED(st);
    /* Find which oneof member is set without decoding a whole snapshot. */
    struct bo_pb_reader r;
    struct bo_pb_field f;
    uint32_t kind = 0;
    int rc;
    bo_pb_reader_init(&r, data, len);
    while ((rc = bo_pb_next(&r, &f)) == 1) {
        if (f.number < 1 || f.number > BO__LOG_ENTRY__ENTRY_DEDUPLICATED_SNAPSHOT_DELTA) {
            continue;
        }
        if ((f.number == 3) != (f.wire_type == BO_PB_VARINT) ||
            (f.number != 3 && f.wire_type != BO_PB_LEN)) {
            return bo_errf(err, BO_ECORRUPT, "log entry %llu: field %u has wire type %d",
                           (unsigned long long)index, f.number, f.wire_type);
        }
        kind = f.number;
    }
    if (rc < 0) {
        return bo_errf(err, BO_ECORRUPT, "log entry %llu: malformed at offset %zu",
                       (unsigned long long)index, bo_pb_offset(&r));
    }
    switch (kind) {
    case BO__LOG_ENTRY__ENTRY_TRANSACTION: {
        struct arena *a = &st->apply_arena;
        ProtobufCAllocator alloc = {arena_alloc, arena_free, a};
        a->failed = false;
        Bo__LogEntry *e = bo_entrydec_unpack(&st->dec, &alloc, len, data);
        bool merged = false;
        rc = e != NULL && e->entry_case == BO__LOG_ENTRY__ENTRY_TRANSACTION
                 ? entry_stub_configs(st, e, &merged)
                 : BO_OK;
        if (merged) {
            st->stubs = NULL;
            st->n_stubs = 0;
            arena_reset(a);
            e = bo__log_entry__unpack(&alloc, len, data);
        } else if (rc != BO_OK) {
            e = NULL;
        }
        if (e == NULL || e->entry_case != BO__LOG_ENTRY__ENTRY_TRANSACTION) {
            /* Out of memory is no reason to reject an entry: the caller
             * must stop rather than diverge from the other replicas. */
            rc = a->failed ? bo_errf(err, BO_ENOMEM, "log entry %llu: out of memory",
                                     (unsigned long long)index)
                           : bo_errf(err, BO_ECORRUPT, "log entry %llu: cannot decode transaction",
                                     (unsigned long long)index);
        } else {
            rc = bo_store_apply(st, e->transaction, index, err);
        }
        st->stubs = NULL;
        st->n_stubs = 0;
        /* Keep the chunks for the next entry, unless a big one grew them. */
        if (a->held > APPLY_ARENA_KEEP) {
            arena_release(a);
        } else {
            arena_reset(a);
        }
        return rc;
    }
    case BO__LOG_ENTRY__ENTRY_NOOP:
        return apply_locked(st, NULL, index, err);
    case BO__LOG_ENTRY__ENTRY_SNAPSHOT:
    case BO__LOG_ENTRY__ENTRY_DEDUPLICATED_SNAPSHOT:
    case BO__LOG_ENTRY__ENTRY_DEDUPLICATED_SNAPSHOT_DELTA:
    case BO__LOG_ENTRY__ENTRY_COMPRESSED:
        rc = restore_from(st, data, len, true, index, err);
        return rc == BO_OK ? BO_OK
                           : bo_err_wrapf(err, rc, "log entry %llu", (unsigned long long)index);
    default:
        return bo_errf(err, BO_ECORRUPT, "log entry %llu: no entry set", (unsigned long long)index);
    }
}

/* ------------------------------------------------------ host cache ---- */

/* The slots the host cache may grow to: a cluster has tens of thousands of
 * hosts; beyond this many names, lookups go to SQLite. */
#define HOST_CACHE_MAX_SLOTS (1u << 17)

static void host_cache_reset(struct bo_store *st)
{
    if (st->host_cache != NULL) {
        host_map_release(st->host_cache);
        bo_free(st->host_cache);
        st->host_cache = NULL;
    }
}

/* host_id() for the main connection through the cache: a task's host was a
 * SELECT on the hosts table by name for every task saved. */
static int host_cached_id(struct bo_store *st, struct conn *c, const char *name, size_t len,
                          int64_t *id, struct bo_err *err)
{
    if (c != &st->main) {
        return host_id(c, name, len, id, err);
    }
    struct host_map *m = st->host_cache;
    if (m == NULL) {
        m = st->host_cache = bo_calloc(1, sizeof(*m));
        if (m == NULL) {
            return host_id(c, name, len, id, err);
        }
    }
    if (m->n * 2 >= m->n_slots &&
        (m->n_slots >= HOST_CACHE_MAX_SLOTS || host_map_grow(m) != BO_OK)) {
        return host_id(c, name, len, id, err);
    }
    uint64_t hash = bo_hash64(name, len);
    struct host_slot *slot = host_map_slot(m->slots, m->n_slots, hash, name, len);
    if (slot->name != NULL) {
        *id = slot->id;
        return BO_OK;
    }
    int rc = host_id(c, name, len, id, err);
    if (rc != BO_OK) {
        return rc;
    }
    slot->name = bo_strndup(len == 0 ? "" : name, len);
    if (slot->name != NULL) { /* else a miss next time: time, not correctness */
        slot->hash = hash;
        slot->len = len;
        slot->id = *id;
        m->n++;
    }
    return BO_OK;
}

/* ----------------------------------------------------------- queries ---- */

static int sql_cat(struct bo_buf *b, const char *s)
{
    return bo_buf_append(b, s, strlen(s));
}

static int sql_in(struct bo_buf *b, const char *col, size_t n)
{
    int rc = sql_cat(b, " AND ");
    rc = rc != BO_OK ? rc : sql_cat(b, col);
    rc = rc != BO_OK ? rc : sql_cat(b, " IN (");
    for (size_t i = 0; i < n && rc == BO_OK; i++) {
        rc = sql_cat(b, i == 0 ? "?" : ", ?");
    }
    return rc != BO_OK ? rc : sql_cat(b, ")");
}

static bool query_needs_jobs(const struct bo_task_query *q)
{
    return q->role != NULL || q->environment != NULL || q->job_name != NULL || q->n_job_keys > 0;
}

/* SQL built from the set fields, values always bound, never spliced. */
/* A prepared statement for `sql`, from the cache when it is there. */
static int qcache_prepare(struct conn *c, const char *sql, sqlite3_stmt **out)
{
    struct qcache_entry *victim = NULL;
    c->qc_clock++;
    for (size_t i = 0; i < QCACHE_SIZE; i++) {
        struct qcache_entry *e = &c->qc[i];
        if (e->sql != NULL && !e->busy && strcmp(e->sql, sql) == 0) {
            e->busy = true;
            e->used = c->qc_clock;
            *out = e->stmt;
            return SQLITE_OK;
        }
        if (!e->busy && (victim == NULL || e->used < victim->used)) {
            victim = e;
        }
    }
    int rc = sqlite3_prepare_v3(c->db, sql, -1, victim != NULL ? SQLITE_PREPARE_PERSISTENT : 0, out,
                                NULL);
    if (rc != SQLITE_OK || victim == NULL) {
        return rc;
    }
    char *copy = bo_strdup(sql);
    if (copy == NULL) {
        return SQLITE_OK; /* used once, not cached */
    }
    sqlite3_finalize(victim->stmt);
    bo_free(victim->sql);
    *victim = (struct qcache_entry){copy, *out, c->qc_clock, true};
    return SQLITE_OK;
}

/* Give a statement from qcache_prepare back: reset if cached, else freed. */
static void qcache_release(struct conn *c, sqlite3_stmt *s)
{
    for (size_t i = 0; i < QCACHE_SIZE; i++) {
        if (c->qc[i].stmt == s && c->qc[i].busy) {
            sqlite3_reset(s);
            sqlite3_clear_bindings(s);
            c->qc[i].busy = false;
            return;
        }
    }
    sqlite3_finalize(s);
}

/* What a task query selects: a count, each task's config id and body, or
 * each task's row id (the bodies then read only where needed). */
enum tq_select { TQ_COUNT, TQ_BODIES, TQ_IDS };

static int task_query_prepare(struct conn *c, const struct bo_task_query *q, enum tq_select sel,
                              sqlite3_stmt **out, struct bo_err *err)
{
    bool count = sel == TQ_COUNT;
    size_t params =
        3 + q->n_job_keys * 3 + q->n_task_ids + q->n_instance_ids + q->n_statuses + q->n_hosts + 2;
    if (params > 32766) {
        return bo_errf(err, BO_EINVAL, "task query: too many values (%zu)", params);
    }
    /* One job named whole (the CLI's and the UI's usual query): its id
     * first, then its tasks alone by tasks_job, in instance order, with no
     * join and no sort by job. Found nowhere, it is the id no job has. */
    Bo__JobKey one = BO__JOB_KEY__INIT;
    bool single = false;
    if (q->n_job_keys == 1 && q->job_keys[0] != NULL && q->role == NULL && q->environment == NULL &&
        q->job_name == NULL) {
        one = *q->job_keys[0];
        single = true;
    } else if (q->n_job_keys == 0 && q->role != NULL && q->environment != NULL &&
               q->job_name != NULL) {
        one.role = (char *)q->role;
        one.environment = (char *)q->environment;
        one.name = (char *)q->job_name;
        single = true;
    }
    int64_t job_id = -1;
    if (single) {
        int frc = job_find(c, &one, &job_id, err);
        if (frc != BO_OK && frc != BO_ENOTFOUND) {
            return frc;
        }
    }
    bool jobs = !single && (!count || query_needs_jobs(q));
    struct bo_buf b = BO_BUF_INIT;
    int rc = sql_cat(&b, sel == TQ_COUNT ? "SELECT count(*) FROM tasks t"
                         : sel == TQ_IDS ? "SELECT t.id FROM tasks t"
                                         : "SELECT b.config_id, b.body FROM tasks t"
                                           " JOIN task_bodies b ON b.id = t.id");
    if (rc == BO_OK && jobs) {
        rc = sql_cat(&b, " JOIN jobs j ON j.id = t.job_id");
    }
    rc = rc != BO_OK ? rc : sql_cat(&b, single ? " WHERE t.job_id = ?" : " WHERE 1");
    if (single) {
        /* the job's fields are in its id */
    } else if (rc == BO_OK && q->role != NULL) {
        rc = sql_cat(&b, " AND j.role = ?");
    }
    if (rc == BO_OK && !single && q->environment != NULL) {
        rc = sql_cat(&b, " AND j.environment = ?");
    }
    if (rc == BO_OK && !single && q->job_name != NULL) {
        rc = sql_cat(&b, " AND j.name = ?");
    }
    if (rc == BO_OK && !single && q->n_job_keys > 0) {
        rc = sql_cat(&b, " AND (");
        for (size_t i = 0; i < q->n_job_keys && rc == BO_OK; i++) {
            rc = sql_cat(&b, i == 0 ? "(j.role = ? AND j.environment = ? AND j.name = ?)"
                                    : " OR (j.role = ? AND j.environment = ? AND j.name = ?)");
        }
        rc = rc != BO_OK ? rc : sql_cat(&b, ")");
    }
    if (rc == BO_OK && q->n_task_ids > 0) {
        rc = sql_in(&b, "t.task_id", q->n_task_ids);
    }
    if (rc == BO_OK && q->n_instance_ids > 0) {
        rc = sql_in(&b, "t.instance_id", q->n_instance_ids);
    }
    if (rc == BO_OK && q->n_statuses > 0) {
        rc = sql_in(&b, "t.status", q->n_statuses);
    }
    if (rc == BO_OK && q->n_hosts > 0) {
        /* Names to ids first, then tasks_host. */
        rc = sql_in(&b, "t.host_id IN (SELECT id FROM hosts WHERE name", q->n_hosts);
        rc = rc != BO_OK ? rc : sql_cat(&b, ")");
    }
    if (rc == BO_OK && !count) {
        rc = sql_cat(&b, single ? " ORDER BY t.instance_id, t.task_id LIMIT ? OFFSET ?"
                                : " ORDER BY j.role, j.environment, j.name, t.instance_id,"
                                  " t.task_id LIMIT ? OFFSET ?");
    }
    rc = rc != BO_OK ? rc : bo_buf_append_byte(&b, '\0');
    if (rc != BO_OK) {
        bo_buf_release(&b);
        return bo_errf(err, BO_ENOMEM, "task query: out of memory");
    }
    sqlite3_stmt *s = NULL;
    int src = qcache_prepare(c, (const char *)b.data, &s);
    bo_buf_release(&b);
    if (src != SQLITE_OK) {
        return sql_fail(c->db, src, err, "task query");
    }
    int i = 1;
    if (single) {
        sqlite3_bind_int64(s, i++, job_id);
    }
    if (!single && q->role != NULL) {
        bind_str(s, i++, q->role);
    }
    if (!single && q->environment != NULL) {
        bind_str(s, i++, q->environment);
    }
    if (!single && q->job_name != NULL) {
        bind_str(s, i++, q->job_name);
    }
    for (size_t k = 0; !single && k < q->n_job_keys; k++) {
        const Bo__JobKey *key = q->job_keys[k];
        bind_str(s, i++, key != NULL ? key->role : NULL);
        bind_str(s, i++, key != NULL ? key->environment : NULL);
        bind_str(s, i++, key != NULL ? key->name : NULL);
    }
    for (size_t k = 0; k < q->n_task_ids; k++) {
        bind_str(s, i++, q->task_ids[k]);
    }
    for (size_t k = 0; k < q->n_instance_ids; k++) {
        sqlite3_bind_int(s, i++, q->instance_ids[k]);
    }
    for (size_t k = 0; k < q->n_statuses; k++) {
        sqlite3_bind_int(s, i++, (int)q->statuses[k]);
    }
    for (size_t k = 0; k < q->n_hosts; k++) {
        bind_str(s, i++, q->hosts[k]);
    }
    if (!count) {
        sqlite3_bind_int64(s, i++, q->limit > 0 ? q->limit : -1);
        sqlite3_bind_int64(s, i++, q->offset > 0 ? q->offset : 0);
    }
    *out = s;
    return BO_OK;
}

static void task_list_detach(Bo__ScheduledTask **tasks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (tasks[i]->assigned_task != NULL) {
            tasks[i]->assigned_task->task = NULL;
        }
    }
}

typedef int (*row_fn)(Bo__ScheduledTask *t, void *data);

/* The rows a task query selects, in order: each unpacked (into `arena`,
 * reset from row to row, or on the heap when it is NULL), given its config
 * from `cc` when asked, and handed to `fn`. A heap task belongs to `fn`
 * once handed over; one that fails before is freed here. A non-BO_OK
 * return from `fn` stops the walk and is returned. */
static int walk_tasks(struct bo_store *st, const struct bo_task_query *q, bool with_configs,
                      struct bo_config_cache *cc, struct arena *arena, row_fn fn, void *data,
                      struct bo_err *err)
{
    int rc = store_usable(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    struct conn *c = &st->main;
    sqlite3_stmt *s = NULL;
    rc = task_query_prepare(c, q, TQ_BODIES, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    ProtobufCAllocator alloc = {arena_alloc, arena_free, arena};
    ProtobufCAllocator *a = arena != NULL ? &alloc : NULL;
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        size_t len;
        const uint8_t *body = col_blob(s, 1, &len);
        if (arena != NULL) {
            arena_reset(arena);
        }
        Bo__ScheduledTask *t = bo__scheduled_task__unpack(a, len, body);
        if (t == NULL || t->assigned_task == NULL) {
            if (t != NULL && arena == NULL) {
                bo__scheduled_task__free_unpacked(t, NULL);
            }
            rc = arena != NULL && arena->failed
                     ? bo_errf(err, BO_ENOMEM, "task query: out of memory")
                     : bo_errf(err, BO_ECORRUPT, "task query: cannot decode a stored task");
            break;
        }
        if (with_configs) {
            Bo__TaskConfig *cfg;
            rc = cfg_cache_get(c, cc, sqlite3_column_int64(s, 0), &cfg, err);
            if (rc != BO_OK) {
                if (arena == NULL) {
                    bo__scheduled_task__free_unpacked(t, NULL);
                }
                break;
            }
            t->assigned_task->task = cfg;
        }
        rc = fn(t, data);
        if (rc != BO_OK) {
            break;
        }
    }
    if (rc == BO_OK && step != SQLITE_DONE) {
        rc = sql_fail(c->db, step, err, "task query");
    }
    qcache_release(c, s);
    return rc;
}

/* Keep a heap task in the list being built. */
static int push_task(Bo__ScheduledTask *t, void *data)
{
    if (vec_push(data, t) != BO_OK) {
        t->assigned_task->task = NULL; /* the config belongs to the cache */
        bo__scheduled_task__free_unpacked(t, NULL);
        return BO_ENOMEM;
    }
    return BO_OK;
}

/* The tasks `q` selects as a list; their configs, when asked for, come
 * from (and stay in) `cc`. */
static int query_list(struct bo_store *st, const struct bo_task_query *q, bool with_configs,
                      struct bo_config_cache *cc, struct bo_task_list *out, struct bo_err *err)
{
    *out = (struct bo_task_list){0};
    struct msg_vec tasks = {0};
    int rc = walk_tasks(st, q, with_configs, cc, NULL, push_task, &tasks, err);
    if (rc != BO_OK) {
        if (rc == BO_ENOMEM && err != NULL && err->msg[0] == '\0') {
            bo_errf(err, rc, "task query: out of memory");
        }
        task_list_detach((Bo__ScheduledTask **)tasks.v, tasks.n);
        vec_release(&tasks);
        return rc;
    }
    out->tasks = (Bo__ScheduledTask **)tasks.v;
    out->n = tasks.n;
    return BO_OK;
}

int bo_store_query_tasks(struct bo_store *st, const struct bo_task_query *q, bool with_configs,
                         struct bo_task_list *out, struct bo_err *err)
{
    STORE_LOCKED(st);
    struct bo_config_cache cc = {0};
    int rc = query_list(st, q, with_configs, &cc, out, err);
    if (rc != BO_OK) {
        bo_config_cache_release(&cc);
        return rc;
    }
    /* the list owns its configs */
    out->configs = cc.cfgs;
    out->n_configs = cc.n;
    bo_free(cc.ids);
    return BO_OK;
}

int bo_store_query_tasks_shared(struct bo_store *st, const struct bo_task_query *q,
                                struct bo_config_cache *cc, struct bo_task_list *out,
                                struct bo_err *err)
{
    STORE_LOCKED(st);
    return query_list(st, q, true, cc, out, err);
}

struct each_ctx {
    bo_task_fn fn;
    void *data;
};

static int each_one(Bo__ScheduledTask *t, void *data)
{
    struct each_ctx *e = data;
    return e->fn(t, e->data);
}

int bo_store_each_task(struct bo_store *st, const struct bo_task_query *q, bool with_configs,
                       bo_task_fn fn, void *data, struct bo_err *err)
{
    STORE_LOCKED(st);
    struct arena arena = {0};
    struct bo_config_cache cc = {0};
    struct each_ctx e = {fn, data};
    int rc = walk_tasks(st, q, with_configs, &cc, &arena, each_one, &e, err);
    bo_config_cache_release(&cc);
    arena_release(&arena);
    return rc;
}

int bo_store_set_task_render(struct bo_store *st, bo_task_render_fn render, size_t budget,
                             struct bo_err *err)
{
    STORE_LOCKED(st);
    struct bo_lru *texts;
    if (bo_lru_new(budget, &texts) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "task texts: out of memory");
    }
    bo_lru_free(st->texts);
    st->texts = texts;
    st->render = render;
    texts_attach(st);
    return BO_OK;
}

/* The text of task row `id`, rendered from its body (a miss) and kept. */
static int task_text_render(struct bo_store *st, int64_t id, struct arena *arena,
                            struct bo_err *err)
{
    struct conn *c = &st->main;
    sqlite3_stmt *s = NULL;
    int rc = conn_stmt(c, S_BODY_GET, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, id);
    int step = sqlite3_step(s);
    if (step != SQLITE_ROW) {
        rc = step == SQLITE_DONE
                 ? bo_errf(err, BO_ECORRUPT, "task query: task %lld has no body", (long long)id)
                 : sql_fail(c->db, step, err, "task query");
        sqlite3_reset(s);
        return rc;
    }
    size_t len;
    const uint8_t *body = col_blob(s, 0, &len);
    arena_reset(arena);
    ProtobufCAllocator alloc = {arena_alloc, arena_free, arena};
    Bo__ScheduledTask *t = bo__scheduled_task__unpack(&alloc, len, body);
    sqlite3_reset(s);
    if (t == NULL || t->assigned_task == NULL) {
        return arena->failed ? bo_errf(err, BO_ENOMEM, "task query: out of memory")
                             : bo_errf(err, BO_ECORRUPT, "task query: cannot decode a stored task");
    }
    st->text_tmp.len = 0;
    rc = st->render(t, &st->text_tmp);
    if (rc == BO_EINVAL) {
        st->text_tmp.len = 0; /* left out, and kept as left out */
    } else if (rc != BO_OK) {
        return bo_errf(err, rc, "task query: out of memory");
    }
    /* A cache may forget: a failed put only means rendering again. */
    (void)bo_lru_put(st->texts, id, st->text_tmp.data, st->text_tmp.len);
    return BO_OK;
}

int bo_store_each_task_text(struct bo_store *st, const struct bo_task_query *q, bo_text_fn fn,
                            void *data, struct bo_err *err)
{
    STORE_LOCKED(st);
    if (st->render == NULL) {
        return bo_errf(err, BO_EINVAL, "task query: no task renderer");
    }
    int rc = store_usable(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    struct conn *c = &st->main;
    sqlite3_stmt *s = NULL;
    rc = task_query_prepare(c, q, TQ_IDS, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    struct arena arena = {0};
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(s, 0);
        const uint8_t *text;
        size_t len;
        if (!bo_lru_get(st->texts, id, &text, &len)) {
            rc = task_text_render(st, id, &arena, err);
            if (rc != BO_OK) {
                break;
            }
            text = st->text_tmp.data;
            len = st->text_tmp.len;
        }
        if (len > 0 && (rc = fn(text, len, data)) != BO_OK) {
            break;
        }
    }
    if (rc == BO_OK && step != SQLITE_DONE) {
        rc = sql_fail(c->db, step, err, "task query");
    }
    qcache_release(c, s);
    arena_release(&arena);
    return rc;
}

void bo_store_get_text_stats(const struct bo_store *st, struct bo_store_text_stats *out)
{
    STORE_LOCKED(st);
    *out = (struct bo_store_text_stats){0};
    if (st->texts != NULL) {
        struct bo_lru_stats ls;
        bo_lru_get_stats(st->texts, &ls);
        *out = (struct bo_store_text_stats){ls.hits,    ls.misses, ls.evictions,
                                            ls.entries, ls.bytes,  ls.budget};
    }
}

void bo_task_list_release(struct bo_task_list *l)
{
    if (l == NULL) {
        return;
    }
    task_list_detach(l->tasks, l->n);
    for (size_t i = 0; i < l->n; i++) {
        bo__scheduled_task__free_unpacked(l->tasks[i], NULL);
    }
    for (size_t i = 0; i < l->n_configs; i++) {
        bo__task_config__free_unpacked(l->configs[i], NULL);
    }
    bo_free(l->tasks);
    bo_free(l->configs);
    *l = (struct bo_task_list){0};
}

int bo_store_count_tasks(struct bo_store *st, const struct bo_task_query *q, uint64_t *count,
                         struct bo_err *err)
{
    STORE_LOCKED(st);
    int rc = store_usable(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_stmt *s = NULL;
    rc = task_query_prepare(&st->main, q, TQ_COUNT, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        *count = (uint64_t)sqlite3_column_int64(s, 0);
        rc = BO_OK;
    } else {
        rc = sql_fail(st->main.db, step, err, "count tasks");
    }
    qcache_release(&st->main, s);
    return rc;
}

/* ---------------------------------------------------------- summaries ---- */

static void counts_bucket(struct bo_task_counts *tc, int status, uint64_t n)
{
    if (status < 0 || status >= N_STATUS) {
        return;
    }
    tc->by_status[status] += n;
    switch (status) {
    case BO__SCHEDULE_STATUS__ASSIGNED:
    case BO__SCHEDULE_STATUS__STARTING:
    case BO__SCHEDULE_STATUS__RUNNING:
    case BO__SCHEDULE_STATUS__KILLING:
    case BO__SCHEDULE_STATUS__DRAINING:
    case BO__SCHEDULE_STATUS__RESTARTING:
    case BO__SCHEDULE_STATUS__PREEMPTING:
    case BO__SCHEDULE_STATUS__PARTITIONED:
        tc->active += n;
        break;
    case BO__SCHEDULE_STATUS__PENDING:
    case BO__SCHEDULE_STATUS__THROTTLED:
    case BO__SCHEDULE_STATUS__INIT:
        tc->pending += n;
        break;
    case BO__SCHEDULE_STATUS__FINISHED:
    case BO__SCHEDULE_STATUS__KILLED:
        tc->finished += n;
        break;
    case BO__SCHEDULE_STATUS__FAILED:
    case BO__SCHEDULE_STATUS__LOST:
        tc->failed += n;
        break;
    default:
        break;
    }
}

/* A job's tally into `tc`. */
static void counts_of_job(const struct job_tally *e, struct bo_task_counts *tc)
{
    for (int status = 0; e != NULL && status < N_STATUS; status++) {
        if (e->n[status] > 0) {
            counts_bucket(tc, status, (uint64_t)e->n[status]);
        }
    }
}

static Bo__JobKey *job_key_copy(const char *role, const char *env, const char *name,
                                struct bo_buf *tmp)
{
    Bo__JobKey k = BO__JOB_KEY__INIT;
    k.role = (char *)role;
    k.environment = (char *)env;
    k.name = (char *)name;
    return repack(&k.base, tmp);
}

void bo_job_summary_list_release(struct bo_job_summary_list *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        if (l->jobs[i].key != NULL) {
            bo__job_key__free_unpacked(l->jobs[i].key, NULL);
        }
        bo_free(l->jobs[i].cron_schedule);
    }
    bo_free(l->jobs);
    *l = (struct bo_job_summary_list){0};
}

static int job_summary_fill(sqlite3_stmt *s, struct bo_job_summary *js, struct bo_buf *tmp,
                            struct bo_err *err)
{
    js->key = job_key_copy((const char *)sqlite3_column_text(s, 1),
                           (const char *)sqlite3_column_text(s, 2),
                           (const char *)sqlite3_column_text(s, 3), tmp);
    if (js->key == NULL) {
        return bo_errf(err, BO_ENOMEM, "job summaries: out of memory");
    }
    if (sqlite3_column_type(s, 4) != SQLITE_NULL) {
        size_t len;
        const uint8_t *body = col_blob(s, 4, &len);
        Bo__JobConfiguration *jc = bo__job_configuration__unpack(NULL, len, body);
        if (jc == NULL) {
            return bo_errf(err, BO_ECORRUPT, "job summaries: cannot decode a cron job");
        }
        js->is_cron = true;
        js->instance_count = jc->instance_count;
        js->cron_schedule = bo_strdup(str_or_empty(jc->cron_schedule));
        bo__job_configuration__free_unpacked(jc, NULL);
        if (js->cron_schedule == NULL) {
            return bo_errf(err, BO_ENOMEM, "job summaries: out of memory");
        }
    }
    return BO_OK;
}

/* The job's counts into the summary, and the fields derived from them. */
static void job_summary_count(const struct job_tally *e, struct bo_job_summary *js)
{
    counts_of_job(e, &js->counts);
    if (!js->is_cron) {
        /* Aurora's getJobs: the number of active tasks (pending included). */
        js->instance_count =
            (int32_t)(js->counts.active + js->counts.by_status[BO__SCHEDULE_STATUS__PENDING] +
                      js->counts.by_status[BO__SCHEDULE_STATUS__THROTTLED]);
    }
}

int bo_store_job_summaries(struct bo_store *st, const char *role, struct bo_job_summary_list *out,
                           struct bo_err *err)
{
    STORE_LOCKED(st);
    *out = (struct bo_job_summary_list){0};
    int rc = store_usable(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    rc = tally_ready(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    struct conn *c = &st->main;
    sqlite3_stmt *s = NULL;
    rc = conn_stmt(c, S_JOB_SUMMARIES, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    if (role != NULL) {
        bind_str(s, 1, role);
    } else {
        sqlite3_bind_null(s, 1);
    }
    struct bo_buf tmp = BO_BUF_INIT;
    size_t cap = 0;
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const struct job_tally *e = tally_find(st->tally, sqlite3_column_int64(s, 0));
        if (e == NULL && sqlite3_column_type(s, 4) == SQLITE_NULL) {
            continue; /* neither tasks nor a cron job: only updates refer to it */
        }
        if (out->n == cap) {
            cap = cap == 0 ? 16 : cap * 2;
            struct bo_job_summary *p = bo_reallocarray(out->jobs, cap, sizeof(*p));
            if (p == NULL) {
                rc = bo_errf(err, BO_ENOMEM, "job summaries: out of memory");
                break;
            }
            out->jobs = p;
        }
        struct bo_job_summary *js = &out->jobs[out->n++];
        memset(js, 0, sizeof(*js));
        rc = job_summary_fill(s, js, &tmp, err);
        if (rc != BO_OK) {
            break;
        }
        job_summary_count(e, js);
    }
    if (rc == BO_OK && step != SQLITE_DONE) {
        rc = sql_fail(c->db, step, err, "job summaries");
    }
    sqlite3_reset(s);
    bo_buf_release(&tmp);
    if (rc != BO_OK) {
        bo_job_summary_list_release(out);
    }
    return rc;
}

void bo_role_summary_list_release(struct bo_role_summary_list *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        bo_free(l->roles[i].role);
    }
    bo_free(l->roles);
    *l = (struct bo_role_summary_list){0};
}

int bo_store_role_summaries(struct bo_store *st, struct bo_role_summary_list *out,
                            struct bo_err *err)
{
    STORE_LOCKED(st);
    *out = (struct bo_role_summary_list){0};
    int rc = store_usable(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    rc = tally_ready(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    struct conn *c = &st->main;
    sqlite3_stmt *s = NULL;
    rc = conn_stmt(c, S_ROLES, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    /* Rows (role, job, has a cron job) by role: a summary per role, kept
     * if some job of it has tasks or a cron job. */
    size_t cap = 0;
    struct bo_role_summary *rs = NULL;
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *role = str_or_empty((const char *)sqlite3_column_text(s, 0));
        if (rs == NULL || strcmp(rs->role, role) != 0) {
            if (rs != NULL && rs->job_count == 0 && rs->cron_job_count == 0) {
                bo_free(rs->role); /* only job updates refer to its jobs */
                out->n--;
            }
            if (out->n == cap) {
                cap = cap == 0 ? 16 : cap * 2;
                struct bo_role_summary *p = bo_reallocarray(out->roles, cap, sizeof(*p));
                if (p == NULL) {
                    rc = bo_errf(err, BO_ENOMEM, "role summaries: out of memory");
                    break;
                }
                out->roles = p;
            }
            rs = &out->roles[out->n++];
            memset(rs, 0, sizeof(*rs));
            rs->role = bo_strdup(role);
            if (rs->role == NULL) {
                rc = bo_errf(err, BO_ENOMEM, "role summaries: out of memory");
                break;
            }
        }
        const struct job_tally *e = tally_find(st->tally, sqlite3_column_int64(s, 1));
        if (e != NULL) {
            rs->job_count++;
            counts_of_job(e, &rs->counts);
        }
        rs->cron_job_count += (uint64_t)sqlite3_column_int(s, 2);
    }
    if (rc == BO_OK && rs != NULL && rs->job_count == 0 && rs->cron_job_count == 0) {
        bo_free(rs->role);
        out->n--;
    }
    if (rc == BO_OK && step != SQLITE_DONE) {
        rc = sql_fail(c->db, step, err, "role summaries");
    }
    sqlite3_reset(s);
    if (rc != BO_OK) {
        bo_role_summary_list_release(out);
    }
    return rc;
}

void bo_config_group_list_release(struct bo_config_group_list *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        struct bo_config_group *g = &l->groups[i];
        if (g->config != NULL) {
            bo__task_config__free_unpacked(g->config, NULL);
        }
        if (g->ranges != NULL) {
            bo_free(g->ranges[0]); /* one block holds all of a group's ranges */
        }
        bo_free(g->ranges);
    }
    bo_free(l->groups);
    *l = (struct bo_config_group_list){0};
}

/* Sorted instance ids -> closed ranges. */
static int group_ranges(struct bo_config_group *g, const int32_t *ids, size_t n)
{
    size_t n_ranges = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || ids[i] > ids[i - 1] + 1) {
            n_ranges++;
        }
    }
    Bo__Range *block = bo_calloc(n_ranges, sizeof(*block));
    g->ranges = bo_calloc(n_ranges, sizeof(*g->ranges));
    if (block == NULL || g->ranges == NULL) {
        bo_free(block);
        bo_free(g->ranges);
        g->ranges = NULL;
        return BO_ENOMEM;
    }
    size_t r = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || ids[i] > ids[i - 1] + 1) {
            bo__range__init(&block[r]);
            block[r].first = ids[i];
            block[r].last = ids[i];
            g->ranges[r] = &block[r];
            r++;
        } else {
            block[r - 1].last = ids[i];
        }
    }
    g->n_ranges = n_ranges;
    return BO_OK;
}

static int cmp_group(const void *a, const void *b)
{
    const struct bo_config_group *x = a, *y = b;
    int32_t fx = x->ranges[0]->first, fy = y->ranges[0]->first;
    return fx < fy ? -1 : fx > fy;
}

int bo_store_config_groups(struct bo_store *st, const Bo__JobKey *job,
                           struct bo_config_group_list *out, struct bo_err *err)
{
    STORE_LOCKED(st);
    *out = (struct bo_config_group_list){0};
    int rc = store_usable(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    struct conn *c = &st->main;
    int64_t job_id;
    rc = job_find(c, job, &job_id, err);
    if (rc == BO_ENOTFOUND) {
        return BO_OK;
    }
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_stmt *s = NULL;
    rc = conn_stmt(c, S_CONFIG_GROUPS, &s, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, job_id);
    int32_t *ids = NULL;
    size_t n_ids = 0, cap_ids = 0, cap_groups = 0;
    int64_t cur = -1;
    struct bo_config_cache cc = {0};
    int step;
    for (;;) {
        step = sqlite3_step(s);
        bool row = step == SQLITE_ROW;
        int64_t cid = row ? sqlite3_column_int64(s, 0) : -1;
        /* Close the current group when its config changes or rows end. */
        if (n_ids > 0 && (!row || cid != cur)) {
            if (out->n == cap_groups) {
                cap_groups = cap_groups == 0 ? 4 : cap_groups * 2;
                struct bo_config_group *p = bo_reallocarray(out->groups, cap_groups, sizeof(*p));
                if (p == NULL) {
                    rc = BO_ENOMEM;
                    break;
                }
                out->groups = p;
            }
            struct bo_config_group *g = &out->groups[out->n];
            memset(g, 0, sizeof(*g));
            Bo__TaskConfig *cfg;
            rc = cfg_cache_get(c, &cc, cur, &cfg, err);
            if (rc != BO_OK) {
                break;
            }
            rc = group_ranges(g, ids, n_ids);
            if (rc != BO_OK) {
                break;
            }
            out->n++;
            n_ids = 0;
        }
        if (!row) {
            break;
        }
        cur = cid;
        if (n_ids == cap_ids) {
            cap_ids = cap_ids == 0 ? 64 : cap_ids * 2;
            int32_t *p = bo_reallocarray(ids, cap_ids, sizeof(*p));
            if (p == NULL) {
                rc = BO_ENOMEM;
                break;
            }
            ids = p;
        }
        ids[n_ids++] = sqlite3_column_int(s, 1);
    }
    if (rc == BO_ENOMEM) {
        rc = bo_errf(err, BO_ENOMEM, "config groups: out of memory");
    } else if (rc == BO_OK && step != SQLITE_DONE) {
        rc = sql_fail(c->db, step, err, "config groups");
    }
    sqlite3_reset(s);
    bo_free(ids);
    if (rc == BO_OK) {
        /* Hand each group its own config, taken out of the cache. The groups
         * are in config id order, like the cache. */
        for (size_t i = 0, j = 0; i < out->n; i++, j++) {
            out->groups[i].config = cc.cfgs[j];
            cc.cfgs[j] = NULL;
        }
        cc.n = 0;
        if (out->n > 1) {
            /* (qsort of NULL is undefined even for no elements) */
            qsort(out->groups, out->n, sizeof(*out->groups), cmp_group);
        }
    }
    bo_config_cache_release(&cc);
    if (rc != BO_OK) {
        bo_config_group_list_release(out);
    }
    return rc;
}

/* ---------------------------------------------------------- getters ---- */

static int list_out(struct msg_vec *v, int rc, void *out, size_t *n)
{
    if (rc != BO_OK) {
        vec_release(v);
        return rc;
    }
    *(void ***)out = v->v;
    *n = v->n;
    return BO_OK;
}

int bo_store_get_cron_job(struct bo_store *st, const Bo__JobKey *key, Bo__JobConfiguration **out,
                          struct bo_err *err)
{
    STORE_LOCKED(st);
    int rc = store_usable(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    struct conn *c = &st->main;
    int64_t job_id;
    rc = job_find(c, key, &job_id, err);
    sqlite3_stmt *s = NULL;
    if (rc == BO_OK) {
        rc = conn_stmt(c, S_CRON_GET, &s, err);
    }
    if (rc == BO_OK) {
        sqlite3_bind_int64(s, 1, job_id);
        rc = step_row(c, s, err, "get cron job");
    }
    if (rc == BO_ENOTFOUND) {
        return bo_errf(err, BO_ENOTFOUND, "cron job '%s/%s/%s' not found", key->role,
                       key->environment, key->name);
    }
    if (rc != BO_OK) {
        return rc;
    }
    void *m;
    rc = conv_cron(c, s, &m, err);
    sqlite3_reset(s);
    if (rc == BO_OK) {
        *out = m;
    }
    return rc;
}

int bo_store_list_cron_jobs(struct bo_store *st, Bo__JobConfiguration ***out, size_t *n,
                            struct bo_err *err)
{
    STORE_LOCKED(st);
    struct msg_vec v = {0};
    int rc = store_usable(st, err);
    if (rc == BO_OK) {
        rc = list_stmt(&st->main, S_CRON_LIST, conv_cron, &v, err);
    }
    return list_out(&v, rc, out, n);
}

/* One row by a text key (statement `id`, parameter 1), column 0 unpacked as
 * `d`. BO_ENOTFOUND without a message: the caller names what was missing. */
static int get_by_text(struct bo_store *st, enum stmt_id id, const char *key,
                       const ProtobufCMessageDescriptor *d, const char *what, void **out,
                       struct bo_err *err)
{
    int rc = store_usable(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    struct conn *c = &st->main;
    sqlite3_stmt *s = NULL;
    rc = conn_stmt(c, id, &s, err);
    if (rc == BO_OK) {
        bind_str(s, 1, key);
        rc = step_row(c, s, err, what);
    }
    if (rc == BO_OK) {
        rc = conv_unpack(d, s, 0, out, err);
        sqlite3_reset(s);
    }
    return rc;
}

int bo_store_get_quota(struct bo_store *st, const char *role, Bo__ResourceAggregate **out,
                       struct bo_err *err)
{
    STORE_LOCKED(st);
    void *m;
    int rc = get_by_text(st, S_QUOTA_GET, role, &bo__resource_aggregate__descriptor, "get quota",
                         &m, err);
    if (rc == BO_ENOTFOUND) {
        return bo_errf(err, BO_ENOTFOUND, "quota of role '%s' not found", role);
    }
    if (rc == BO_OK) {
        *out = m;
    }
    return rc;
}

int bo_store_list_quotas(struct bo_store *st, Bo__QuotaConfiguration ***out, size_t *n,
                         struct bo_err *err)
{
    STORE_LOCKED(st);
    struct msg_vec v = {0};
    int rc = store_usable(st, err);
    if (rc == BO_OK) {
        rc = list_stmt(&st->main, S_QUOTA_LIST, conv_quota, &v, err);
    }
    return list_out(&v, rc, out, n);
}

int bo_store_get_host(struct bo_store *st, const char *host, Bo__HostAttributes **out,
                      struct bo_err *err)
{
    STORE_LOCKED(st);
    void *m;
    int rc =
        get_by_text(st, S_HOST_GET, host, &bo__host_attributes__descriptor, "get host", &m, err);
    if (rc == BO_ENOTFOUND) {
        return bo_errf(err, BO_ENOTFOUND, "host '%s' not found", host);
    }
    if (rc == BO_OK) {
        bo_canon_host_attributes(m);
        *out = m;
    }
    return rc;
}

int bo_store_list_hosts(struct bo_store *st, Bo__HostAttributes ***out, size_t *n,
                        struct bo_err *err)
{
    STORE_LOCKED(st);
    struct msg_vec v = {0};
    int rc = store_usable(st, err);
    if (rc == BO_OK) {
        rc = list_stmt(&st->main, S_HOST_LIST, conv_host, &v, err);
    }
    for (size_t i = 0; rc == BO_OK && i < v.n; i++) {
        bo_canon_host_attributes(v.v[i]);
    }
    return list_out(&v, rc, out, n);
}

int bo_store_list_maintenance(struct bo_store *st, Bo__HostMaintenanceRequest ***out, size_t *n,
                              struct bo_err *err)
{
    STORE_LOCKED(st);
    struct msg_vec v = {0};
    int rc = store_usable(st, err);
    if (rc == BO_OK) {
        rc = list_stmt(&st->main, S_MAINT_LIST, conv_maintenance, &v, err);
    }
    return list_out(&v, rc, out, n);
}

int bo_store_get_job_update(struct bo_store *st, const Bo__JobUpdateKey *key,
                            Bo__JobUpdateDetails **out, struct bo_err *err)
{
    STORE_LOCKED(st);
    int rc = store_usable(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    if (key == NULL || key->job == NULL) {
        return bo_errf(err, BO_EINVAL, "get job update: missing key");
    }
    struct conn *c = &st->main;
    int64_t row;
    rc = update_find(c, key, &row, NULL, err);
    sqlite3_stmt *s = NULL;
    if (rc == BO_OK) {
        rc = conn_stmt(c, S_UPD_GET, &s, err);
    }
    if (rc == BO_OK) {
        sqlite3_bind_int64(s, 1, row);
        rc = step_row(c, s, err, "get job update");
    }
    if (rc == BO_ENOTFOUND) {
        return bo_errf(err, BO_ENOTFOUND, "job update '%s/%s/%s/%s' not found", key->job->role,
                       key->job->environment, key->job->name, key->id);
    }
    if (rc != BO_OK) {
        return rc;
    }
    void *m;
    rc = conv_update_read(c, s, &m, err);
    sqlite3_reset(s);
    if (rc == BO_OK) {
        *out = m;
    }
    return rc;
}

int bo_store_list_job_updates(struct bo_store *st, const Bo__JobKey *job,
                              Bo__JobUpdateSummary ***out, size_t *n, struct bo_err *err)
{
    STORE_LOCKED(st);
    struct msg_vec v = {0};
    int rc = store_usable(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    struct conn *c = &st->main;
    int64_t job_id = 0;
    if (job != NULL) {
        rc = job_find(c, job, &job_id, err);
        if (rc == BO_ENOTFOUND) {
            *out = NULL;
            *n = 0;
            return BO_OK;
        }
        if (rc != BO_OK) {
            return rc;
        }
    }
    sqlite3_stmt *s = NULL;
    rc = conn_stmt(c, S_UPD_SUMMARIES, &s, err);
    if (rc == BO_OK) {
        if (job != NULL) {
            sqlite3_bind_int64(s, 1, job_id);
        } else {
            sqlite3_bind_null(s, 1);
        }
        rc = collect(c, s, conv_update_summary, &v, err);
    }
    return list_out(&v, rc, out, n);
}

int bo_store_get_metadata(struct bo_store *st, Bo__SchedulerMetadata **out, struct bo_err *err)
{
    STORE_LOCKED(st);
    int rc = store_usable(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    rc = get_metadata(&st->main, out, err);
    if (rc == BO_ENOTFOUND) {
        return bo_errf(err, BO_ENOTFOUND, "scheduler metadata not found");
    }
    return rc;
}

void bo_store_free_list(void *array, size_t n)
{
    void **v = array;
    for (size_t i = 0; i < n; i++) {
        if (v[i] != NULL) {
            protobuf_c_message_free_unpacked(v[i], NULL);
        }
    }
    bo_free(array);
}

int bo_store_counts(struct bo_store *st, struct bo_store_counts *out, struct bo_err *err)
{
    STORE_LOCKED(st);
    int rc = store_usable(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(
        st->main.db,
        "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM tasks),"
        " (SELECT count(*) FROM task_configs), (SELECT count(*) FROM cron_jobs),"
        " (SELECT count(*) FROM quotas), (SELECT count(*) FROM host_attributes),"
        " (SELECT count(*) FROM maintenance), (SELECT count(*) FROM job_updates)",
        -1, &s, NULL);
    if (src != SQLITE_OK) {
        return sql_fail(st->main.db, src, err, "counts");
    }
    src = sqlite3_step(s);
    if (src == SQLITE_ROW) {
        uint64_t *f[] = {&out->jobs,   &out->tasks, &out->configs,     &out->cron_jobs,
                         &out->quotas, &out->hosts, &out->maintenance, &out->job_updates};
        for (int i = 0; i < 8; i++) {
            *f[i] = (uint64_t)sqlite3_column_int64(s, i);
        }
        rc = BO_OK;
    } else {
        rc = sql_fail(st->main.db, src, err, "counts");
    }
    sqlite3_finalize(s);
    return rc;
}

/* ------------------------------------------------------------ digest ---- */

/* Tasks per job and status, counted from `tasks`; the job's row id last,
 * left out of the digest, to look the tally up with. */
static const char digest_counts_sql[] =
    "SELECT j.role, j.environment, j.name, t.status, count(*), t.job_id FROM tasks t"
    " JOIN jobs j ON j.id = t.job_id GROUP BY t.job_id, t.status ORDER BY 1, 2, 3, 4";

/* Every table in key order, without row ids: configs by content hash, rows
 * that point at configs or jobs by the content they point at. The applied
 * index is left out: it is where the state came from, not what it is. */
static const char *const digest_sql[] = {
    "SELECT role, environment, name FROM jobs ORDER BY 1, 2, 3",
    "SELECT c.hash_lo, c.hash_hi, c.body, c.refs, c.task_refs, j.role, j.environment, j.name"
    " FROM task_configs c JOIN jobs j ON j.id = c.job_id ORDER BY 1, 2, 3",
    "SELECT t.task_id, j.role, j.environment, j.name, t.instance_id, t.status, h.name,"
    " c.hash_lo, c.hash_hi, b.body FROM tasks t JOIN task_bodies b ON b.id = t.id"
    " JOIN hosts h ON h.id = t.host_id"
    " JOIN jobs j ON j.id = t.job_id"
    " JOIN task_configs c ON c.id = t.config_id ORDER BY t.task_id",
    digest_counts_sql,
    "SELECT j.role, j.environment, j.name, c.hash_lo, c.hash_hi, cj.body FROM cron_jobs cj"
    " JOIN jobs j ON j.id = cj.job_id JOIN task_configs c ON c.id = cj.config_id"
    " ORDER BY 1, 2, 3",
    "SELECT role, body FROM quotas ORDER BY role",
    "SELECT host, mode, slave_id, body FROM host_attributes ORDER BY host",
    "SELECT host, body FROM maintenance ORDER BY host",
    "SELECT j.role, j.environment, j.name, u.update_id, u.body, u.status, u.created_ms,"
    " u.last_event_ms, u.last_modified_ms FROM job_updates u JOIN jobs j ON j.id = u.job_id"
    " ORDER BY 1, 2, 3, 4",
    "SELECT j.role, j.environment, j.name, u.update_id, k.kind, k.position, c.hash_lo,"
    " c.hash_hi FROM job_update_configs k JOIN job_updates u ON u.id = k.update_row"
    " JOIN jobs j ON j.id = u.job_id JOIN task_configs c ON c.id = k.config_id"
    " ORDER BY 1, 2, 3, 4, 5, 6",
    "SELECT j.role, j.environment, j.name, u.update_id, e.seq, e.ts, e.body"
    " FROM job_update_events e JOIN job_updates u ON u.id = e.update_row"
    " JOIN jobs j ON j.id = u.job_id ORDER BY 1, 2, 3, 4, 5",
    "SELECT j.role, j.environment, j.name, u.update_id, e.seq, e.ts, e.body"
    " FROM job_instance_events e JOIN job_updates u ON u.id = e.update_row"
    " JOIN jobs j ON j.id = u.job_id ORDER BY 1, 2, 3, 4, 5",
    "SELECT key, value FROM meta WHERE key <> '" META_APPLIED_INDEX "' ORDER BY key",
};

/* Values are framed (type, length) so no two dumps run together alike; the
 * dump is hashed in chunks, each chunk's hash leading the next. */
struct digest {
    struct bo_buf b;
};

static int digest_flush(struct digest *d, bool force)
{
    if (!force && d->b.len < (1u << 20)) {
        return BO_OK;
    }
    uint64_t h = bo_hash64(d->b.data, d->b.len);
    d->b.len = 0;
    return bo_pb_put_varint(&d->b, h);
}

/* The first `n` columns of the row. */
static int digest_row(struct digest *d, sqlite3_stmt *s, int n)
{
    int rc = BO_OK;
    for (int i = 0; i < n && rc == BO_OK; i++) {
        int type = sqlite3_column_type(s, i);
        rc = bo_buf_append_byte(&d->b, (uint8_t)type);
        if (rc != BO_OK) {
            break;
        }
        if (type == SQLITE_INTEGER) {
            rc = bo_pb_put_varint(&d->b, (uint64_t)sqlite3_column_int64(s, i));
        } else if (type != SQLITE_NULL) {
            size_t len;
            const uint8_t *p =
                type == SQLITE_TEXT ? sqlite3_column_text(s, i) : sqlite3_column_blob(s, i);
            len = (size_t)sqlite3_column_bytes(s, i);
            rc = bo_pb_put_varint(&d->b, len);
            if (rc == BO_OK) {
                rc = bo_buf_append(&d->b, p, len);
            }
        }
    }
    return rc != BO_OK ? rc : digest_flush(d, false);
}

int bo_store_digest(struct bo_store *st, uint64_t *digest, struct bo_err *err)
{
    STORE_LOCKED(st);
    int rc = store_usable(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    rc = tally_ready(st, err);
    if (rc != BO_OK) {
        return rc;
    }
    struct digest d = {BO_BUF_INIT};
    for (size_t t = 0; t < sizeof(digest_sql) / sizeof(digest_sql[0]) && rc == BO_OK; t++) {
        sqlite3_stmt *s = NULL;
        int src = sqlite3_prepare_v2(st->main.db, digest_sql[t], -1, &s, NULL);
        if (src != SQLITE_OK) {
            rc = sql_fail(st->main.db, src, err, "digest");
            break;
        }
        /* The counts in memory must be those of the tasks: every (job,
         * status) counted from the tasks, and no other. */
        bool counts = digest_sql[t] == digest_counts_sql, tally_ok = true;
        size_t counted = 0;
        rc = bo_pb_put_varint(&d.b, t);
        while (rc == BO_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
            /* the counts' last column, the job's row id, is not digested */
            int n = counts ? 5 : sqlite3_column_count(s);
            int64_t status = counts ? sqlite3_column_int64(s, 3) : -1;
            if (status >= 0 && status < N_STATUS) {
                const struct job_tally *e = tally_find(st->tally, sqlite3_column_int64(s, 5));
                tally_ok = tally_ok && e != NULL && e->n[status] == sqlite3_column_int64(s, 4);
                counted++;
            }
            rc = digest_row(&d, s, n);
        }
        size_t kept = 0;
        for (const struct job_tally *e = st->tally; counts && e != NULL; e = e->hh.next) {
            for (int status = 0; status < N_STATUS; status++) {
                kept += e->n[status] > 0;
            }
        }
        if (rc == BO_OK && src != SQLITE_DONE) {
            rc = sql_fail(st->main.db, src, err, "digest");
        } else if (rc != BO_OK && rc != BO_EIO) {
            rc = bo_errf(err, rc, "digest: %s", bo_strerror(rc));
        } else if (rc == BO_OK && (!tally_ok || kept != counted)) {
            rc = bo_errf(err, BO_ECORRUPT, "digest: the task counts kept differ from the tasks");
        }
        sqlite3_finalize(s);
    }
    if (rc == BO_OK) {
        *digest = bo_hash64(d.b.data, d.b.len);
    }
    bo_buf_release(&d.b);
    return rc;
}
