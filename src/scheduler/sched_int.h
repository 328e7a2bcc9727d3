/*
 * sched_int.h - what the scheduler's own files share: the context, the batch
 * that becomes one log transaction, and the helpers that record task
 * transitions into it. Not for use outside src/scheduler/sched*.c.
 */
#ifndef BO_SCHED_INT_H
#define BO_SCHED_INT_H

#define uthash_malloc(sz)    bo_malloc(sz)
#define uthash_free(ptr, sz) bo_free(ptr)
#include <regex.h>
#include <uthash.h>

#include "common/heap.h"
#include "common/mem.h"
#include "scheduler/cron.h"
#include "scheduler/place.h"
#include "scheduler/sched.h"
#include "scheduler/tsm.h"

/* A command waiting for its agent to poll. */
struct sched_cmd {
    uint64_t seq;
    json_t *json; /* the command object, with its seq */
    char *task_id;
    bool launch;
    struct sched_cmd *next;
};

struct sched_agent {
    char *id;
    char *host;
    int64_t last_seen_ms;
    bool registered;  /* false: known only from tasks, since leadership began */
    bool partitioned; /* timed out; its tasks were partitioned */
    struct sched_cmd *cmds, *cmds_tail;
    uint64_t next_seq;
    /* a parked poll */
    bo_sched_reply_cb poll_cb;
    void *poll_data;
    int64_t poll_deadline_ms;
    UT_hash_handle hh;
};

/* A job with PENDING tasks, and why its last placement attempt failed. */
struct sched_pjob {
    char *key; /* role/env/name */
    int64_t retry_at_ms;
    char *reason;
    uint64_t marked; /* batch that made tasks pending: not placeable before it commits */
    UT_hash_handle hh;
};

struct sched_cron {
    char *key;
    struct bo_cron expr;
    int64_t next_ms; /* 0: none */
    int64_t launch_backoff_ms;
    UT_hash_handle hh;
};

enum sched_deadline {
    DL_KILL_RETRY = 1, /* re-send a kill */
    DL_THROTTLE,       /* THROTTLED -> PENDING */
    DL_PARTITION,      /* PARTITIONED -> LOST */
    DL_CRON_LAUNCH,    /* a KILL_EXISTING cron run waiting for the old run to end */
};

struct sched_dl {
    char *id; /* task id or cron job key */
    int status;
    int attempt;
};

/* An item of work: a request, or an internal event (a deadline, a
 * registration to reconcile). */
enum sched_work_kind {
    W_OP = 1, /* enum bo_sched_op in `op` */
    W_DEADLINE,
    W_RECONCILE, /* args: {agent_id, host, tasks} */
    W_CRON_TRIGGER,
    W_DRAIN_CHECK,    /* args: {host} */
    W_HOST_ATTRS,     /* args: HostAttributes to save when changed */
    W_PRUNE,          /* terminal task history beyond its age or count */
    W_TRANSIENT_SCAN, /* tasks too long in a transient state */
};

struct sched_work {
    enum sched_work_kind kind;
    int op;
    json_t *args;
    struct sched_dl dl;
    int dl_kind;
    bo_sched_reply_cb cb;
    void *data;
    int status; /* the reply, once decided */
    char *msg;
    json_t *result;
    struct sched_work *next;
};

struct sched_effect {
    char *agent_id;
    json_t *cmd; /* without seq */
    char *task_id;
    bool launch;
    struct sched_effect *next;
};

struct sched_post_dl {
    int64_t at_ms;
    int kind;
    struct sched_dl dl;
    struct sched_post_dl *next;
};

struct sched_touch {
    char *key;
    const void *saved;    /* the task saved under this id in the batch, if any */
    const void *saved_op; /* ... in this op */
    bool created;         /* a task created in this batch (not in the store yet) */
    UT_hash_handle hh;
};

/* Everything one log transaction carries, and what to do once it commits. */
struct sched_batch {
    Bo__Op **ops;
    size_t n_ops, cap_ops;
    size_t cap_save;            /* capacity of the last SaveTasks op's array */
    struct bo_task_list *lists; /* store results the ops point into */
    size_t n_lists, cap_lists;
    struct bo_config_cache configs; /* the lists' configs, each decoded once */
    Bo__ScheduledTask **owned;      /* tasks built here; configs borrowed */
    size_t n_owned, cap_owned;
    ProtobufCMessage **msgs; /* other messages owned by the batch */
    size_t n_msgs, cap_msgs;
    struct sched_touch *touched;
    struct sched_work *works, *works_tail;
    struct sched_effect *effects, *effects_tail;
    struct sched_post_dl *dls;
    size_t n_tasks_saved;
    size_t n_placed;
    uint64_t started_ns;
    struct bo_storage_write req;
    struct bo_sched *s;
};

struct bo_sched {
    uv_loop_t *loop;
    struct bo_storage *storage;
    struct bo_store *store;
    struct bo_sched_config cfg;
    char *cluster;
    char *hostname;
    regex_t env_re;
    bool leader;
    bool closing;
    int64_t leader_since_ms;
    /* Names this term of leadership to agents: command sequence numbers
     * are only comparable within one session (docs/agent-protocol.md). */
    char session[24];
    struct bo_tsm_params tsm;

    struct bo_place *place;
    struct sched_agent *agents;
    struct sched_pjob *pjobs;
    struct sched_cron *crons;
    struct bo_heap deadlines;

    struct sched_work *queue, *queue_tail;
    size_t queued;
    struct sched_batch *inflight;
    bool drain_scheduled;
    uint64_t batch_seq; /* of the batch being built */
    bool placement_wanted;

    uv_idle_t drain_idle;
    uv_timer_t tick;
    int64_t last_prune_ms;
    int64_t last_transient_scan_ms;

    struct bo_sched_stats stats;
    struct bo_metrics_series *append_latency;
};

int64_t sched_now_ms(const struct bo_sched *s);
void sched_kick(struct bo_sched *s);

/* ---- building a batch (sched.c) ---- */

/* True if `key` is not yet touched in this batch (and marks it). */
bool batch_touch(struct sched_batch *b, const char *key);
bool batch_touched(const struct sched_batch *b, const char *key);
int batch_keep_list(struct sched_batch *b, struct bo_task_list *l);
int batch_save_task(struct sched_batch *b, Bo__ScheduledTask *t);
int batch_remove_task(struct sched_batch *b, const char *task_id);
int batch_add_op(struct sched_batch *b, Bo__Op *op);
/* A new op of `kind` appended to the batch; returns its (initialized) body,
 * e.g. a Bo__SaveQuota for BO__OP__OP_SAVE_QUOTA, or NULL out of memory. */
void *batch_op(struct sched_batch *b, Bo__Op__OpCase kind);
int batch_own_msg(struct sched_batch *b, ProtobufCMessage *m);
int batch_effect(struct sched_batch *b, const char *agent_id, const char *task_id, json_t *cmd,
                 bool launch);
int batch_deadline(struct sched_batch *b, int64_t at_ms, int kind, const char *id, int status,
                   int attempt);

/* Transition `t` (a task of a list kept by the batch) to `to` with every
 * side effect (events, reschedule, kill, delete, accounting). */
int sched_transition(struct bo_sched *s, struct sched_batch *b, Bo__ScheduledTask *t, int to,
                     const char *message, struct bo_err *err);
/* A new PENDING task of `job` (config borrowed). */
int sched_new_task(struct bo_sched *s, struct sched_batch *b, const Bo__JobKey *job,
                   Bo__TaskConfig *config, int32_t instance, Bo__ScheduledTask **out,
                   struct bo_err *err);
int sched_queue_kill(struct bo_sched *s, struct sched_batch *b, const char *agent_id,
                     const char *task_id);
void sched_mark_pending(struct bo_sched *s, const Bo__JobKey *job);

/* Query helpers. */
int sched_query(struct bo_sched *s, struct sched_batch *b, const struct bo_task_query *q,
                bool with_configs, struct bo_task_list **out, struct bo_err *err);
void job_key_str(const Bo__JobKey *k, char *out, size_t n);

/* ---- ops (sched_ops.c) ---- */
int sched_validate_op(struct bo_sched *s, int op, json_t *args, struct bo_err *err);
/* Run one request into the batch. BO_EAGAIN-like: returns 1 when it touches
 * something already touched (retry in the next batch), 0 when done (the reply
 * status is in w), <0 on a fatal error for the batch. */
int sched_run_op(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                 struct bo_err *err);
int sched_run_reconcile(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                        struct bo_err *err);
int sched_run_cron(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                   struct bo_err *err);
int sched_run_drain_check(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                          struct bo_err *err);
int sched_run_host_attrs(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                         struct bo_err *err);
int sched_run_prune(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                    struct bo_err *err);
void sched_cron_reload(struct bo_sched *s);
int sched_read(struct bo_sched *s, const char *what, const json_t *args, json_t **out,
               struct bo_err *err);
/* A task (without its config) as the API's JSON text, appended to `out`;
 * BO_EINVAL for a task JSON cannot hold (not UTF-8). The store keeps these
 * texts (bo_store_set_task_render). */
int sched_task_text(const Bo__ScheduledTask *t, struct bo_buf *out);

/* Reply helpers: work items carry their outcome until the batch commits. */
void work_fail(struct sched_work *w, int status, const char *msg);

#endif
