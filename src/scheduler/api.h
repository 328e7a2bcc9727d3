/*
 * api.h - the scheduler's HTTP surface: the JSON API (docs/api.md), the
 * agent protocol (docs/agent-protocol.md), health, metrics and /vars.
 *
 * Reads are answered by any replica from the state it has applied. Writes
 * and the agent protocol need the leader: a follower answers them with 307
 * to the leader's URL, or 503 NO_LEADER when there is none.
 *
 * Threads: the loop thread. Lifecycle: bo_api_start -> bo_api_close(cb) ->
 * bo_api_free after cb.
 */
#ifndef BO_API_H
#define BO_API_H

#include <uv.h>

#include "common/err.h"
#include "common/metrics.h"
#include "scheduler/sched.h"
#include "storage/storage.h"

struct bo_api;

/* A raft voter and the URL of its HTTP API, for redirects. */
struct bo_api_peer {
    uint64_t id;
    const char *url; /* "http://127.0.0.1:8081" */
};

struct bo_api_config {
    const char *listen; /* "127.0.0.1:8081" */
    const char *cluster;
    const char *backup_dir; /* for listing backups; may be NULL */
    size_t max_body;
    const struct bo_api_peer *peers;
    size_t n_peers;
    struct bo_metrics *metrics; /* the process's registry (shared with bo_sched) */
};

int bo_api_start(uv_loop_t *loop, const struct bo_api_config *cfg, struct bo_sched *sched,
                 struct bo_storage *storage, struct bo_api **out, struct bo_err *err);
uint16_t bo_api_port(const struct bo_api *api);

typedef void (*bo_api_close_cb)(struct bo_api *api);
void bo_api_close(struct bo_api *api, bo_api_close_cb cb);
void bo_api_free(struct bo_api *api);
void *bo_api_get_data(const struct bo_api *api);
void bo_api_set_data(struct bo_api *api, void *data);

/* Set when the operator asked the scheduler to exit (/quitquitquit) or a
 * recovery was committed (the supervisor restarts it). */
typedef void (*bo_api_exit_cb)(struct bo_api *api, int code);
void bo_api_on_exit(struct bo_api *api, bo_api_exit_cb cb);

#endif
