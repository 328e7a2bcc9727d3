/*
 * client.h - what the two CLIs (`borealis`, `borealis-admin`) share: cluster
 * definitions, job keys and instance lists, calls to the scheduler's HTTP
 * API with leader discovery, Aurora's exit codes, and progress output.
 *
 * Everything here is blocking (libcurl's easy interface): a CLI does one
 * thing at a time and has no loop. Not thread-safe; one thread.
 *
 * Clusters (docs/client.md): clusters.json files are JSON arrays of
 * {"name": "devcluster", "scheduler_uri": "http://host:8081",
 *  "scheduler_urls": ["http://a:8081", "http://b:8081"], ...}; read in this
 * order, a later entry of the same name replacing an earlier one:
 *   1. /etc/borealis/clusters.json
 *   2. ~/.borealis/clusters.json
 *   3. the file named by $BOREALIS_CLUSTERS (if set, and then the two above
 *      are still read first).
 * A cluster's URLs are `scheduler_urls` if present, else `scheduler_uri`.
 * A later entry replaces an earlier one whole (fields are not merged). A
 * default file that does not exist is skipped; $BOREALIS_CLUSTERS naming a
 * file that does not exist is an error (BO_ENOTFOUND naming it).
 *
 * Calls: bo_client_call tries the cluster's URLs in turn (the last one that
 * answered first), follows 307/308 redirects to the leader (keeping method
 * and body), retries a 503 NO_LEADER for a bounded time, and returns the
 * final answer. Transport failures on every URL are BO_EIO (exit 7),
 * timeouts BO_EBUSY (exit 9). A request that failed after it was sent (reset,
 * empty answer) goes to the next URL only for GET and HEAD; a write is BO_EIO
 * at once, since it may have been applied.
 */
#ifndef BO_CLIENT_H
#define BO_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Aurora's exit codes. */
enum bo_exit {
    BO_EXIT_OK = 0,
    BO_EXIT_INVALID_CONFIG = 3,
    BO_EXIT_COMMAND_FAILURE = 4,
    BO_EXIT_INVALID_COMMAND = 5,
    BO_EXIT_INVALID_PARAMETER = 6,
    BO_EXIT_NETWORK_ERROR = 7,
    BO_EXIT_TIMEOUT = 9,
    BO_EXIT_API_ERROR = 10,
    BO_EXIT_UNKNOWN = 20,
    BO_EXIT_AUTH_ERROR = 30,
    BO_EXIT_INTERRUPTED = 130,
};

/* ---- clusters ---- */

struct bo_cluster {
    char *name;
    char **urls; /* scheduler base URLs, without a trailing slash */
    size_t n_urls;
    json_t *entry; /* the whole clusters.json entry (owned) */
};

/* Every cluster known, merged as described above, as a new JSON array of
 * entries (sorted by name). Malformed files are BO_EINVAL naming the file. */
int bo_clusters_load(json_t **out, struct bo_err *err);

/* The cluster called `name`; BO_ENOTFOUND "unknown cluster 'x' (known: a,
 * b)" when there is none. Release with bo_cluster_release. */
int bo_cluster_find(const char *name, struct bo_cluster *out, struct bo_err *err);
void bo_cluster_release(struct bo_cluster *c);

/* ---- job keys and instances ---- */

#define BO_KEY_PART_MAX 128

struct bo_jobkey {
    char cluster[BO_KEY_PART_MAX];
    char role[BO_KEY_PART_MAX];
    char env[BO_KEY_PART_MAX];
    char name[BO_KEY_PART_MAX];
    int *instances; /* bo_malloc'd, sorted, unique; NULL when none given */
    size_t n_instances;
};

enum bo_jobkey_flags {
    BO_JOBKEY_FULL = 0,          /* cluster/role/env/name */
    BO_JOBKEY_INSTANCES = 1,     /* .../name/0-2,5 allowed */
    BO_JOBKEY_PARTIAL = 2,       /* cluster[/role[/env[/name]]] allowed */
    BO_JOBKEY_NEED_INSTANCES = 4 /* the instance list is required */
};

/* Parse a job key. Parts follow the scheduler's rules ([A-Za-z0-9_.-]+,
 * not starting with '.'); '*' and '?' globs are allowed in partial keys.
 * Errors are BO_EINVAL with a message naming the bad part. */
int bo_jobkey_parse(const char *s, int flags, struct bo_jobkey *out, struct bo_err *err);
void bo_jobkey_release(struct bo_jobkey *k);
/* "cluster/role/env/name" */
void bo_jobkey_str(const struct bo_jobkey *k, char *buf, size_t size);

/* Parse "0-2,5,7-9" into a sorted, unique bo_malloc'd array. */
int bo_instances_parse(const char *s, int **out, size_t *n, struct bo_err *err);

/* ---- calls ---- */

struct bo_client;

/* Zero fields take the defaults. */
struct bo_client_opts {
    unsigned timeout_ms;        /* per HTTP request (default 30 s) */
    unsigned no_leader_wait_ms; /* retry 503 NO_LEADER this long (default 10 s) */
    bool verbose;               /* log requests to stderr */
};

/* `c` is copied (it may be released after this); `opts` may be NULL. */
int bo_client_open(const struct bo_cluster *c, const struct bo_client_opts *opts,
                   struct bo_client **out, struct bo_err *err);
void bo_client_close(struct bo_client *cl);

/* One call. `path` starts with '/' and may carry a query string; `body`
 * (borrowed, may be NULL) is sent as JSON. On BO_OK *status is the final
 * HTTP status and *resp the parsed JSON answer (NULL if not JSON; then
 * *text, if asked for, holds the raw body, bo_malloc'd). A non-2xx answer
 * is still BO_OK: look at *status; bo_client_api_error formats it. */
int bo_client_call(struct bo_client *cl, const char *method, const char *path, json_t *body,
                   unsigned *status, json_t **resp, char **text, struct bo_err *err);

/* The base URL that answered last (the leader after a redirect). */
const char *bo_client_url(const struct bo_client *cl);

/* "POST /api/v1/jobs: 400 INVALID_REQUEST: task_config.resources: ..." from
 * an error answer, into err; returns BO_EINVAL (400 and other 4xx),
 * BO_ENOTFOUND (404), BO_EEXIST (409), BO_EBUSY (503), or BO_EIO (5xx). A
 * 2xx status returns BO_OK and leaves err untouched. Without a JSON error the
 * first line of `text` (or the reason phrase) stands in for code and message.
 * A CLI exits BO_EXIT_API_ERROR (10) for any such answer: the codes returned
 * here overlap with parse errors, so bo_client_exit_code cannot tell. */
int bo_client_api_error(const char *method, const char *path, unsigned status, json_t *resp,
                        const char *text, struct bo_err *err);

/* The exit code for an error code from this module that is not an error
 * answer of the API (see above): BO_EINVAL and BO_ENOTFOUND -> 6 (invalid
 * parameter), BO_EIO -> 7, BO_EBUSY -> 9, BO_EEXIST -> 10, others -> 20. */
int bo_client_exit_code(int rc);

/* ---- output ---- */

/* True when stdout is a terminal (progress lines are shown only then). */
bool bo_client_tty(void);
/* Rewrite the current terminal line with a progress message (no-op when
 * not a terminal); bo_client_progress_done ends the line. */
void bo_client_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bo_client_progress_done(void);

#endif
