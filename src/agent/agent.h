/*
 * agent.h - borealis-agent: one per host. Registers with the scheduler,
 * launches one borealis-executor per task, forwards status updates
 * reliably, survives its own restart, and serves a read-only observer
 * (tasks, process states, sandbox files) over HTTP.
 *
 * The protocol with the scheduler is docs/agent-protocol.md; the files
 * shared with the executor are docs/executor.md; operating the agent is
 * docs/agent.md.
 *
 * Threads: everything here runs on the loop thread; file work (preparing
 * sandboxes, cgroups, users, sandbox reads for the observer, clean-up) runs
 * on libuv's thread pool and comes back to the loop.
 * Lifecycle: bo_agent_start -> (loop runs) -> bo_agent_close(cb) ->
 * bo_agent_free in or after cb. Closing leaves executors running: they are
 * re-attached by the next agent started on the same work directory.
 */
#ifndef BO_AGENT_H
#define BO_AGENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "common/metrics.h"

struct bo_agent;

struct bo_agent_config {
    const char *work_dir;           /* required; created if missing */
    const char *const *schedulers;  /* scheduler URLs, tried in turn */
    size_t n_schedulers;            /* at least one */
    const char *listen;             /* observer HTTP address; NULL: none */
    const char *executor_path;      /* the borealis-executor binary */
    const char *hostname;           /* NULL: gethostname() */
    json_t *attributes;             /* borrowed object; may be NULL */
    json_t *ports;                  /* borrowed array of [lo, hi]; NULL: 31000-32000 */
    double cpus;                    /* 0: detected */
    int64_t ram_mb, disk_mb;        /* 0: detected */
    bool setuid;                    /* as root, run tasks as their role's user */
    bool create_users;              /* create missing role users (useradd) */
    const char *user_map;           /* "role=user,..." or NULL */
    bool isolation;                 /* use cgroups when writable */
    int64_t sandbox_retention_ms;   /* finished sandboxes kept this long */
    int64_t disk_check_interval_ms; /* executor's sandbox disk checks */
    int64_t stop_timeout_ms;        /* executor's whole graceful kill */
    int64_t retry_ms;               /* first back-off after a failed call */
    struct bo_metrics *metrics;     /* required, owned by the caller */
};

void bo_agent_config_init(struct bo_agent_config *cfg);

/* Load or create the agent id, re-attach to executors left by an earlier
 * agent, start the observer and begin registering. The configuration is
 * copied (attributes and ports are referenced). */
int bo_agent_start(uv_loop_t *loop, const struct bo_agent_config *cfg, struct bo_agent **out,
                   struct bo_err *err);

const char *bo_agent_id(const struct bo_agent *a);
uint16_t bo_agent_http_port(const struct bo_agent *a); /* 0 without observer */

typedef void (*bo_agent_close_cb)(struct bo_agent *a, void *data);

/* Stop talking to the scheduler and serving, close every handle; executors
 * keep running. `cb` fires once all is closed. Call once. */
void bo_agent_close(struct bo_agent *a, bo_agent_close_cb cb, void *data);
void bo_agent_free(struct bo_agent *a);

#endif
