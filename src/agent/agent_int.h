/*
 * agent_int.h - the agent's internals, shared by agent.c (scheduler
 * protocol, tasks, executors) and observer.c (the read-only HTTP side).
 * Everything here belongs to the loop thread.
 */
#ifndef BO_AGENT_INT_H
#define BO_AGENT_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "agent/agent.h"
#include "common/http.h"
#include "common/httpc.h"
#include "common/mem.h"
#include "common/metrics.h"
#include "host/cgroup.h"
#include "host/hostinfo.h"

#undef uthash_malloc
#undef uthash_free
#define uthash_malloc(sz)  bo_malloc(sz)
#define uthash_free(p, sz) bo_free(p)
#define uthash_fatal(msg)  abort()
#include <uthash.h>

#define AGENT_TASK_ID_MAX 200
#define AGENT_STATUS_MAX  16

/* One status update, as the executor (or the agent) wrote it. */
struct agent_upd {
    int64_t seq;
    char status[AGENT_STATUS_MAX];
    char *message;
    int64_t timestamp_ms;
};

enum agent_phase {
    PHASE_PREPARING, /* sandbox, task.json, cgroup being made on a worker */
    PHASE_RUNNING,   /* an executor is alive (spawned or re-attached) */
    PHASE_EXITED,    /* no executor any more; updates may still be unsent */
};

struct agent_task {
    char id[AGENT_TASK_ID_MAX + 1];
    char *dir;     /* <work>/tasks/<id> */
    char *sandbox; /* <work>/sandboxes/<id> */
    enum agent_phase phase;
    bool kill_requested;
    bool removing;
    int64_t launched_ms;

    /* the executor */
    uv_process_t proc; /* when spawned by this agent */
    bool proc_open;
    uv_poll_t pidfd_poll; /* when re-attached after an agent restart */
    int pidfd;
    bool pidfd_open;
    uv_timer_t kill_timer; /* SIGKILL escalation after a kill */
    bool kill_timer_open;
    uv_timer_t timer; /* liveness checks of a re-attached executor, without pidfd */
    bool timer_open;
    int pid;
    int closing; /* handles being closed before the record can go */

    /* cgroup directories handed to the executor ("" when none) */
    char cg_memory[256], cg_cpu[256], cg_unified[256];

    /* status updates: the file is read up to `read_off`; `q` holds every
     * update after `acked` in order; `inflight` of them are being sent */
    uv_fs_event_t watch;
    bool watch_open;
    uint64_t read_off;
    int64_t last_seq;
    int64_t acked;
    struct agent_upd *q;
    size_t nq, capq;
    size_t inflight;
    char last_status[AGENT_STATUS_MAX];
    bool terminal;
    int64_t terminal_ms;
    bool transient; /* no task directory: updates live only in memory */

    struct bo_agent *a;
    UT_hash_handle hh;
};

struct bo_agent {
    uv_loop_t *loop;
    struct bo_agent_config cfg;
    char *work_dir, *tasks_dir, *sandboxes_dir;
    char **schedulers;
    size_t n_schedulers, cur;
    char leader[256]; /* base URL learned from a redirect, "" if none */
    char hostname[256];
    char id[BO_HOST_AGENT_ID_MAX + 16];
    double cpus;
    int64_t ram_mb, disk_mb;
    json_t *attributes, *ports;
    bool cg_available;
    struct bo_cg cg;
    json_t *user_map; /* role -> user, or NULL */
    char cg_tag[32];
    char isolation_note[512];

    struct bo_httpc *httpc;
    struct bo_http_server *http;

    /* scheduler session */
    bool registered;
    bool registering;
    struct bo_httpc_call *reg_call, *poll_call, *status_call;
    int64_t poll_hold_ms;
    char session[64];  /* the scheduler's, from the last registration */
    int64_t ack;       /* last command handled */
    int64_t batch_seq; /* highest seq of the batch being prepared */
    size_t batch_pending;
    unsigned failures; /* consecutive failed calls, for back-off */
    uv_timer_t retry_timer;
    uv_timer_t tick; /* periodic: updates sweep, GC */
    bool status_wanted;

    struct agent_task *tasks;
    size_t ntasks;
    size_t work_pending; /* thread-pool jobs in flight */

    bool closing, finished, free_on_close;
    unsigned open_handles; /* agent-level handles and the client */
    size_t task_closes;    /* task handles being closed */
    bo_agent_close_cb close_cb;
    void *close_data;

    struct {
        struct bo_metrics_series *registrations, *launches, *kills, *updates_sent, *updates_acked,
            *executor_lost, *call_errors, *tasks_running, *tasks_known;
        struct bo_metrics_series *launch_prep_ms;
    } m;
};

/* observer.c */
int agent_observer_start(struct bo_agent *a, struct bo_err *err);
/* Close the HTTP server; calls agent_observer_closed when done. */
void agent_observer_close(struct bo_agent *a);
void agent_observer_closed(struct bo_agent *a);

/* agent.c, for the observer */
/* A thread-pool job of the agent ended (work_pending was counted). */
void agent_job_done(struct bo_agent *a);
struct agent_task *agent_task_find(struct bo_agent *a, const char *id);
int64_t agent_now_ms(void);

#endif
