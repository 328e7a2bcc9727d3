/*
 * sched.h - the scheduler: jobs and tasks, placement, agents, cron, quota
 * and maintenance, on top of the durable store (storage/storage.h).
 *
 * Only the raft leader schedules and writes. The owner forwards storage role
 * changes to bo_sched_set_leader; on gaining leadership the scheduler rebuilds
 * its in-memory state (host index, pending jobs, deadlines) from the store,
 * on losing it every queued request fails with BO_ENOTLEADER and all timers
 * stop.
 *
 * Writes are batched: requests, agent status updates and timer events are
 * queued, and a drain step turns as many as possible into one transaction
 * against the committed state (a request that touches a task or job already
 * touched in the batch waits for the next one). One transaction is in flight
 * at a time; its requests are answered and its launch and kill commands
 * handed to agents only once it is committed. A failed write fails its
 * requests and rebuilds the in-memory state from the store.
 *
 * Threads: everything runs on the loop thread.
 * Lifecycle: bo_sched_create -> bo_sched_close (synchronous: fails what is
 * queued; the storage must still be open) -> bo_sched_free.
 */
#ifndef BO_SCHED_H
#define BO_SCHED_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/metrics.h"
#include "storage/storage.h"

struct bo_sched;

struct bo_sched_config {
    const char *cluster;                /* cluster name, "devcluster" by default */
    const char *hostname;               /* written into task events */
    const char *env_pattern;            /* allowed environments (POSIX ERE) */
    int64_t transient_timeout_ms;       /* ASSIGNED/KILLING/... -> LOST (5 min) */
    int64_t kill_retry_initial_ms;      /* first kill re-send (15 s) */
    int64_t kill_retry_max_ms;          /* backoff cap (5 min) */
    int64_t flapping_threshold_ms;      /* ran less than this: flapping (5 min) */
    int64_t initial_flapping_delay_ms;  /* first THROTTLED penalty (30 s) */
    int64_t max_flapping_delay_ms;      /* penalty cap (5 min) */
    int64_t agent_timeout_ms;           /* no poll for this long: PARTITIONED (15 s) */
    int64_t agent_poll_hold_ms;         /* long-poll hold (5 s) */
    int64_t history_prune_threshold_ms; /* terminal tasks older than this go (2 days) */
    int64_t history_min_retention_ms;   /* ... but none younger than this (1 h) */
    int history_max_per_job;            /* terminal tasks kept per job (100) */
    int max_tasks_per_job;              /* 4000, Aurora's default */
    int scheduling_batch;               /* tasks placed per round at most (10000) */
    int64_t unplaced_backoff_ms;        /* retry a job that did not fit (1 s) */
    size_t task_text_cache_bytes;       /* tasks' API text kept by the store (64 MiB) */
    bool cron_utc;                      /* cron in UTC (default) or the process's TZ */
};

void bo_sched_config_init(struct bo_sched_config *cfg);

int bo_sched_create(uv_loop_t *loop, struct bo_storage *storage, struct bo_metrics *metrics,
                    const struct bo_sched_config *cfg, struct bo_sched **out, struct bo_err *err);
void bo_sched_set_leader(struct bo_sched *s, bool leader);
bool bo_sched_is_leader(const struct bo_sched *s);
void bo_sched_close(struct bo_sched *s);
void bo_sched_free(struct bo_sched *s);

/* Fires exactly once per accepted request, on the loop thread. `result` is
 * borrowed (the callee keeps nothing of it after returning). */
typedef void (*bo_sched_reply_cb)(void *data, int status, const char *message, json_t *result);

/* ---- mutations (leader only: BO_ENOTLEADER otherwise) ----
 * Each takes ownership of its JSON arguments and, when it returns BO_OK,
 * calls `cb` once the change is committed (or failed). A non-OK return means
 * `cb` never fires and nothing changed; `err` says why (BO_EINVAL for a bad
 * argument). Argument shapes are documented in docs/api.md. */
enum bo_sched_op {
    BO_SCHED_CREATE_JOB,      /* {JobConfiguration} */
    BO_SCHED_ADD_INSTANCES,   /* {key, instance_id, count} */
    BO_SCHED_KILL,            /* {key, instances?, message?} */
    BO_SCHED_RESTART,         /* {key, instances} */
    BO_SCHED_FORCE_STATE,     /* {task_id, status} */
    BO_SCHED_PRUNE,           /* {query fields} */
    BO_SCHED_SCHEDULE_CRON,   /* {JobConfiguration} create or replace */
    BO_SCHED_DESCHEDULE_CRON, /* {key} */
    BO_SCHED_START_CRON,      /* {key} */
    BO_SCHED_SET_QUOTA,       /* {role, cpu, ram_mb, disk_mb} */
    BO_SCHED_INCREASE_QUOTA,  /* {role, cpu, ram_mb, disk_mb} */
    BO_SCHED_MAINT_START,     /* {hosts} */
    BO_SCHED_MAINT_DRAIN,     /* {hosts} */
    BO_SCHED_MAINT_END,       /* {hosts} */
    BO_SCHED_AGENT_STATUS,    /* {agent_id, updates: [{task_id, status, message}]} */
    BO_SCHED_OP_COUNT
};

int bo_sched_submit(struct bo_sched *s, enum bo_sched_op op, json_t *args, bo_sched_reply_cb cb,
                    void *data, struct bo_err *err);

/* ---- agents (leader only) ---- */

/* {agent_id?, host, resources: {cpus, ram_mb, disk_mb, ports: [[lo, hi]...]},
 * attributes: {name: [values]}, tasks: [{task_id, status}]}. Answers
 * {agent_id, poll_hold_ms, timeout_ms} synchronously (through cb) and
 * reconciles the reported tasks in the next batch. */
int bo_sched_agent_register(struct bo_sched *s, json_t *args, bo_sched_reply_cb cb, void *data,
                            struct bo_err *err);
/* {agent_id, ack}: drops commands up to `ack` and answers with those left
 * ({commands: [{seq, type: "launch"|"kill", ...}]}), at once if there are
 * any, else when one is queued or after the poll hold. BO_ENOTFOUND for an
 * unknown agent (it must register again). */
int bo_sched_agent_poll(struct bo_sched *s, json_t *args, bo_sched_reply_cb cb, void *data,
                        struct bo_err *err);
/* Forget a parked poll whose reply can no longer be delivered. */
void bo_sched_agent_poll_cancel(struct bo_sched *s, void *data);

/* ---- reads (any replica; synchronous; *out is a new reference) ---- */
int bo_sched_read(struct bo_sched *s, const char *what, const json_t *args, json_t **out,
                  struct bo_err *err);
/* The same read as its answer's text, appended to `out`: the bytes
 * json_dumps(JSON_COMPACT) gives for bo_sched_read's answer. "tasks" and
 * "job_summaries" are written straight from the stored messages
 * (bo_pbjson_write), without the tree, for the API's big reads; every other
 * read is bo_sched_read dumped.
 * On error `out` keeps what it held (its capacity may have grown). */
int bo_sched_read_text(struct bo_sched *s, const char *what, const json_t *args, struct bo_buf *out,
                       struct bo_err *err);

/* ---- metrics ---- */

struct bo_sched_stats {
    uint64_t schedule_attempts;   /* tasks tried in placement rounds */
    uint64_t tasks_placed;        /* tasks assigned to a host */
    uint64_t schedule_no_match;   /* tasks tried and left pending */
    uint64_t illegal_transitions; /* status changes the state machine refused */
    uint64_t timed_out_tasks;     /* transient states timed out to LOST */
    uint64_t status_updates;      /* agent status updates received */
    uint64_t batches;             /* transactions written */
    uint64_t batch_failures;      /* transactions that failed */
    uint64_t cron_triggers;
    uint64_t cron_misfires;
    uint64_t cron_collisions;
    uint64_t tasks_pruned;
    uint64_t agents_lost;
    size_t agents_registered;
    size_t agents_partitioned;
    size_t agents_unconfirmed; /* known from tasks, not registered since leading */
    size_t queued;             /* work items waiting */
    size_t pending_jobs;       /* jobs with tasks waiting for placement */
};

void bo_sched_get_stats(const struct bo_sched *s, struct bo_sched_stats *out);

/* Pending tasks by the reason their job's last placement failed ("" for jobs
 * not tried yet). Counts come from the store's indexed counts. */
typedef void (*bo_sched_reason_cb)(const char *reason, uint64_t tasks, void *ctx);
void bo_sched_pending_reasons(struct bo_sched *s, bo_sched_reason_cb cb, void *ctx);

/* ---- admin ---- */
int bo_sched_snapshot(struct bo_sched *s, bo_sched_reply_cb cb, void *data, struct bo_err *err);
int bo_sched_backup(struct bo_sched *s, bo_sched_reply_cb cb, void *data, struct bo_err *err);
int bo_sched_reconcile(struct bo_sched *s, struct bo_err *err);

#endif
