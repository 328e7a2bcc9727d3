/*
 * api.c - HTTP routes of the scheduler onto bo_sched and bo_storage.
 *
 * Every request goes through one handler: it counts the request, finds the
 * route, sends writes to the leader (307, or 503 without one), parses the
 * body as JSON (400 with the position when it is not), and calls the
 * scheduler. Reads answer at once; writes answer from the scheduler's reply
 * callback once their transaction is committed, the request's connection
 * suspended meanwhile. Every error is {"code", "message", "details"} with
 * the status its code maps to, and a request that fails changed nothing.
 *
 * Routes are a table of (method, pattern, handler). Patterns are paths
 * whose `{}` segments match one non-empty segment each; the matched
 * segments are handed to the handler in order.
 */
#include "scheduler/api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/http.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/metrics.h"
#include "common/pbjson.h"
#include "scheduler/tsm.h"
#include "storage/backup.h"

#define MAX_SEGS 8

/* Metrics filled at scrape time from the scheduler's and storage's counters. */
enum {
    M_TASK_STORE,
    M_SCHED_ATTEMPTS,
    M_SCHED_PLACED,
    M_SCHED_NO_MATCH,
    M_PENDING_REASON,
    M_AGENTS,
    M_CRON_TRIGGERS,
    M_CRON_MISFIRES,
    M_CRON_COLLISIONS,
    M_ILLEGAL,
    M_TIMED_OUT,
    M_STATUS_UPDATES,
    M_BATCHES,
    M_BATCH_FAILURES,
    M_PRUNED,
    M_LEADER,
    M_UPTIME,
    M_SNAP_SECONDS,
    M_SNAP_BYTES,
    M_SNAPSHOTS,
    M_BACKUPS_OK,
    M_BACKUPS_FAILED,
    M_LOG_WRITES,
    M_LOG_ENTRIES,
    M_QUEUED,
    M_TEXT_HITS,
    M_TEXT_MISSES,
    M_TEXT_BYTES,
    METRIC_COUNT
};

struct api_peer {
    uint64_t id;
    char *url;
};

struct bo_api {
    uv_loop_t *loop;
    struct bo_http_server *http;
    struct bo_sched *sched;
    struct bo_storage *storage;
    char *cluster;
    char *backup_dir;
    struct api_peer *peers;
    size_t n_peers;
    bo_api_close_cb close_cb;
    bo_api_exit_cb exit_cb;
    void *data;
    int64_t started_ms;
    struct bo_metrics *metrics;
    struct bo_metric *http_requests;
    struct bo_metric *m[METRIC_COUNT];
    char **reasons; /* pending reason labels set so far, zeroed before each scrape */
    size_t n_reasons;
};

struct route;
typedef void (*route_fn)(struct bo_api *api, struct bo_http_req *req, const struct route *r,
                         char segs[][256], json_t *body);

struct route {
    const char *method;
    const char *pattern;
    route_fn fn;
    bool write; /* leader only */
    bool json_body;
    int op; /* for generic write routes */
};

/* Per request: what the reply callback needs. */
struct api_call {
    struct bo_api *api;
    struct bo_http_req *req;
    const char *route;
    uint64_t start_ns;
};

/* -------------------------------------------------------------- replies --- */

static const char *code_name(int code)
{
    switch (code) {
    case BO_EINVAL:
        return "INVALID_REQUEST";
    case BO_ENOTFOUND:
        return "NOT_FOUND";
    case BO_EEXIST:
        return "ALREADY_EXISTS";
    case BO_EBUSY:
        return "BUSY";
    case BO_ETOOBIG:
        return "TOO_BIG";
    case BO_ENOTLEADER:
        return "NOT_LEADER";
    case BO_ENOLEADER:
        return "NO_LEADER";
    case BO_ESHUTDOWN:
        return "SHUTDOWN";
    case BO_ENOSPC:
        return "NO_SPACE";
    default:
        return "ERROR";
    }
}

static unsigned code_status(int code)
{
    switch (code) {
    case BO_OK:
        return 200;
    case BO_EINVAL:
        return 400;
    case BO_ENOTFOUND:
        return 404;
    case BO_EEXIST:
    case BO_EBUSY:
        return 409;
    case BO_ETOOBIG:
        return 413;
    case BO_ENOTLEADER:
    case BO_ENOLEADER:
    case BO_ESHUTDOWN:
        return 503;
    default:
        return 500;
    }
}

static void count_request(struct bo_api *api, const char *route, unsigned status)
{
    if (api->http_requests != NULL) {
        char code[8];
        snprintf(code, sizeof(code), "%u", status);
        struct bo_metrics_series *x = bo_metrics_with(api->http_requests, route, code);
        if (x != NULL) {
            bo_metrics_inc(x, 1);
        }
    }
}

static void send_json(struct bo_http_req *req, unsigned status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    if (s == NULL) {
        const char *oom = "{\"code\":\"ERROR\",\"message\":\"out of memory\",\"details\":[]}";
        bo_http_respond(req, 500, "application/json", oom, strlen(oom));
        return;
    }
    size_t n = strlen(s);
    s[n] = '\0';
    char *t = realloc(s, n + 2);
    if (t != NULL) {
        s = t;
        s[n++] = '\n';
        s[n] = '\0';
    }
    bo_http_respond(req, status, "application/json", s, n);
    free(s);
}

/* send_json's sibling for an answer already rendered as JSON text in `b`
 * (which gets the same trailing newline). */
static void send_buf(struct bo_http_req *req, unsigned status, struct bo_buf *b)
{
    if (bo_buf_append_byte(b, '\n') != BO_OK) {
        const char *oom = "{\"code\":\"ERROR\",\"message\":\"out of memory\",\"details\":[]}";
        bo_http_respond(req, 500, "application/json", oom, strlen(oom));
        return;
    }
    bo_http_respond(req, status, "application/json", b->data, b->len);
}

static void send_error(struct bo_http_req *req, int code, const char *msg)
{
    json_t *j = json_pack("{s:s, s:s, s:[]}", "code", code_name(code), "message",
                          msg != NULL ? msg : bo_strerror(code), "details");
    send_json(req, code_status(code), j);
    json_decref(j);
}

static void send_text(struct bo_http_req *req, unsigned status, const char *ctype, const char *text,
                      size_t len)
{
    bo_http_respond(req, status, ctype, text, len);
}

static struct api_call *call_new(struct bo_api *api, struct bo_http_req *req, const char *route)
{
    struct api_call *c = bo_calloc(1, sizeof(*c));
    if (c != NULL) {
        c->api = api;
        c->req = req;
        c->route = route;
    }
    return c;
}

/* The scheduler's reply: answer the suspended request. */
static void reply_cb(void *data, int status, const char *message, json_t *result)
{
    struct api_call *c = data;
    unsigned http = code_status(status);
    count_request(c->api, c->route, http);
    if (status == BO_OK) {
        json_t *ok = result != NULL ? json_incref(result) : json_object();
        send_json(c->req, 200, ok);
        json_decref(ok);
    } else {
        send_error(c->req, status, message);
    }
    bo_free(c);
}

/* ------------------------------------------------------------ leadership --- */

static const char *leader_url(struct bo_api *api)
{
    uint64_t id;
    const char *addr;
    bo_storage_leader(api->storage, &id, &addr);
    for (size_t i = 0; i < api->n_peers; i++) {
        if (api->peers[i].id == id) {
            return api->peers[i].url;
        }
    }
    return NULL;
}

/* Percent-encode `s` into `out` (bounded, always terminated); characters in
 * `keep` and unreserved ones stay. Returns the length written. */
static size_t url_escape(char *out, size_t size, const char *s, const char *keep)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    if (size == 0) {
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL ||
                     strchr(keep, *p) != NULL;
        if (n + (plain ? 1 : 3) >= size) {
            break;
        }
        if (plain) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
    return n;
}

/* Not the leader: 307 to it, or 503. Returns true if answered. */
static bool redirect_to_leader(struct bo_api *api, struct bo_http_req *req, const char *route)
{
    if (bo_sched_is_leader(api->sched)) {
        return false;
    }
    const char *url = leader_url(api);
    if (url == NULL) {
        count_request(api, route, 503);
        send_error(req, BO_ENOLEADER, "no leading scheduler: try again shortly");
        return true;
    }
    char loc[4096];
    const char *path = bo_http_path(req);
    size_t n = (size_t)snprintf(loc, sizeof(loc), "%s", url);
    n += url_escape(loc + n, sizeof(loc) - n, path, "/");
    /* The query arguments the leader-only routes read, re-encoded. */
    static const char *const keys[] = {"role",  "environment",  "job_name", "task_ids", "statuses",
                                       "hosts", "instance_ids", "offset",   "limit",    "configs",
                                       NULL};
    char sep = '?';
    for (const char *const *k = keys; *k != NULL && n + 1 < sizeof(loc); k++) {
        const char *v = bo_http_query(req, *k);
        if (v == NULL) {
            continue;
        }
        n += (size_t)snprintf(loc + n, sizeof(loc) - n, "%c%s=", sep, *k);
        if (n >= sizeof(loc)) {
            break;
        }
        n += url_escape(loc + n, sizeof(loc) - n, v, ",");
        sep = '&';
    }
    bo_http_set_header(req, "Location", loc);
    count_request(api, route, 307);
    json_t *j = json_pack("{s:s, s:s, s:[], s:s}", "code", "NOT_LEADER", "message",
                          "not the leader: follow the redirect", "details", "leader", url);
    send_json(req, 307, j);
    json_decref(j);
    return true;
}

/* ---------------------------------------------------------------- routes --- */

static json_t *key_json(const char *role, const char *env, const char *name)
{
    return json_pack("{s:s, s:s, s:s}", "role", role, "environment", env, "name", name);
}

static void answer_read(struct bo_api *api, struct bo_http_req *req, const char *route,
                        const char *what, json_t *args)
{
    struct bo_err err = BO_ERR_INIT;
    struct bo_buf text = BO_BUF_INIT;
    int rc = bo_sched_read_text(api->sched, what, args, &text, &err);
    count_request(api, route, code_status(rc));
    if (rc != BO_OK) {
        send_error(req, rc, bo_err_msg(&err, rc));
    } else {
        send_buf(req, 200, &text);
    }
    bo_buf_release(&text);
    json_decref(args);
}

static void submit(struct bo_api *api, struct bo_http_req *req, const char *route, int op,
                   json_t *args)
{
    struct bo_err err = BO_ERR_INIT;
    struct api_call *c = call_new(api, req, route);
    if (c == NULL) {
        json_decref(args);
        count_request(api, route, 500);
        send_error(req, BO_ENOMEM, "out of memory");
        return;
    }
    int rc = bo_sched_submit(api->sched, op, args, reply_cb, c, &err);
    if (rc != BO_OK) {
        bo_free(c);
        count_request(api, route, code_status(rc));
        send_error(req, rc, bo_err_msg(&err, rc));
    }
}

/* Comma-separated lists in query strings: "a,b" -> ["a","b"]. */
static json_t *csv(const char *s, bool ints)
{
    json_t *arr = json_array();
    if (s == NULL) {
        return arr;
    }
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", s);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (ints) {
            char *end;
            long long v = strtoll(tok, &end, 10);
            json_array_append_new(arr, *end == '\0' ? json_integer(v) : json_string(tok));
        } else {
            json_array_append_new(arr, json_string(tok));
        }
    }
    return arr;
}

/* A TaskQuery from the query string of GET /api/v1/tasks and friends. */
static json_t *query_args(struct bo_http_req *req)
{
    json_t *a = json_object();
    const char *v;
    if ((v = bo_http_query(req, "role")) != NULL) {
        json_object_set_new(a, "role", json_string(v));
    }
    if ((v = bo_http_query(req, "environment")) != NULL) {
        json_object_set_new(a, "environment", json_string(v));
    }
    if ((v = bo_http_query(req, "job_name")) != NULL) {
        json_object_set_new(a, "job_name", json_string(v));
    }
    if ((v = bo_http_query(req, "task_ids")) != NULL) {
        json_object_set_new(a, "task_ids", csv(v, false));
    }
    if ((v = bo_http_query(req, "statuses")) != NULL) {
        json_object_set_new(a, "statuses", csv(v, false));
    }
    if ((v = bo_http_query(req, "hosts")) != NULL) {
        json_object_set_new(a, "hosts", csv(v, false));
    }
    if ((v = bo_http_query(req, "instance_ids")) != NULL) {
        json_object_set_new(a, "instance_ids", csv(v, true));
    }
    if ((v = bo_http_query(req, "offset")) != NULL) {
        char *end;
        long long x = strtoll(v, &end, 10);
        json_object_set_new(a, "offset", *end == '\0' ? json_integer(x) : json_string(v));
    }
    if ((v = bo_http_query(req, "limit")) != NULL) {
        char *end;
        long long x = strtoll(v, &end, 10);
        json_object_set_new(a, "limit", *end == '\0' ? json_integer(x) : json_string(v));
    }
    if ((v = bo_http_query(req, "configs")) != NULL) {
        json_object_set_new(a, "configs", json_boolean(strcmp(v, "false") != 0));
    }
    return a;
}

static void r_health(struct bo_api *api, struct bo_http_req *req, const struct route *r,
                     char segs[][256], json_t *body)
{
    (void)segs;
    (void)body;
    count_request(api, r->pattern, 200);
    send_text(req, 200, "text/plain", "OK\n", 3);
}

static void r_leaderhealth(struct bo_api *api, struct bo_http_req *req, const struct route *r,
                           char segs[][256], json_t *body)
{
    (void)segs;
    (void)body;
    unsigned st;
    const char *msg;
    uint64_t id;
    const char *addr;
    bo_storage_leader(api->storage, &id, &addr);
    if (bo_sched_is_leader(api->sched)) {
        st = 200;
        msg = "leader\n";
    } else if (id != 0) {
        st = 503;
        msg = "not the leader\n";
    } else {
        st = 502;
        msg = "no leader\n";
    }
    count_request(api, r->pattern, st);
    send_text(req, st, "text/plain", msg, strlen(msg));
}

static void r_info(struct bo_api *api, struct bo_http_req *req, const struct route *r,
                   char segs[][256], json_t *body)
{
    (void)segs;
    (void)body;
    const char *url = leader_url(api);
    json_t *j = json_pack("{s:s, s:b, s:s?, s:s}", "cluster", api->cluster, "leader",
                          bo_sched_is_leader(api->sched), "leader_url", url, "version", BO_VERSION);
    count_request(api, r->pattern, 200);
    send_json(req, 200, j);
    json_decref(j);
}

static void r_read(struct bo_api *api, struct bo_http_req *req, const struct route *r,
                   char segs[][256], json_t *body)
{
    (void)body;
    const char *p = r->pattern;
    if (strcmp(p, "/api/v1/roles") == 0) {
        answer_read(api, req, p, "roles", json_object());
    } else if (strcmp(p, "/api/v1/roles/{}/jobs") == 0) {
        answer_read(api, req, p, "job_summaries", json_pack("{s:s}", "role", segs[0]));
    } else if (strcmp(p, "/api/v1/jobs") == 0) {
        const char *role = bo_http_query(req, "role");
        answer_read(api, req, p, "jobs",
                    role != NULL ? json_pack("{s:s}", "role", role) : json_object());
    } else if (strcmp(p, "/api/v1/jobs/{}/{}/{}/config") == 0) {
        answer_read(api, req, p, "config_summary",
                    json_pack("{s:o}", "key", key_json(segs[0], segs[1], segs[2])));
    } else if (strcmp(p, "/api/v1/tasks") == 0) {
        answer_read(api, req, p, "tasks", query_args(req));
    } else if (strcmp(p, "/api/v1/pending") == 0) {
        answer_read(api, req, p, "pending", query_args(req));
    } else if (strcmp(p, "/api/v1/quotas/{}") == 0) {
        answer_read(api, req, p, "quota", json_pack("{s:s}", "role", segs[0]));
    } else if (strcmp(p, "/api/v1/maintenance") == 0) {
        json_t *a = json_object();
        const char *h = bo_http_query(req, "hosts");
        if (h != NULL) {
            json_object_set_new(a, "hosts", csv(h, false));
        }
        answer_read(api, req, p, "hosts", a);
    } else if (strcmp(p, "/api/v1/cron") == 0) {
        answer_read(api, req, p, "cron", json_object());
    } else if (strcmp(p, "/api/v1/jobs/populate") == 0) {
        answer_read(api, req, p, "populate", body != NULL ? json_incref(body) : json_object());
    }
}

/* POST bodies that go straight to the scheduler, with path segments merged
 * into the arguments. */
static void r_write(struct bo_api *api, struct bo_http_req *req, const struct route *r,
                    char segs[][256], json_t *body)
{
    json_t *args = body != NULL ? json_incref(body) : json_object();
    if (!json_is_object(args)) {
        json_decref(args);
        count_request(api, r->pattern, 400);
        send_error(req, BO_EINVAL, "request body: expected a JSON object");
        return;
    }
    const char *p = r->pattern;
    if (strncmp(p, "/api/v1/jobs/{}/{}/{}/", 22) == 0 ||
        strncmp(p, "/api/v1/cron/{}/{}/{}", 21) == 0) {
        if (json_object_get(args, "key") != NULL && !(r->op == BO_SCHED_SCHEDULE_CRON)) {
            json_decref(args);
            count_request(api, p, 400);
            send_error(req, BO_EINVAL, "key: given by the path, not the body");
            return;
        }
        if (r->op == BO_SCHED_SCHEDULE_CRON) {
            json_t *k = json_object_get(args, "key");
            json_t *want = key_json(segs[0], segs[1], segs[2]);
            if (k != NULL && !json_equal(k, want)) {
                json_decref(want);
                json_decref(args);
                count_request(api, p, 400);
                send_error(req, BO_EINVAL, "key: does not match the path");
                return;
            }
            json_object_set_new(args, "key", want);
        } else {
            json_object_set_new(args, "key", key_json(segs[0], segs[1], segs[2]));
        }
    } else if (strncmp(p, "/api/v1/quotas/{}", 17) == 0) {
        if (json_object_get(args, "role") != NULL) {
            json_decref(args);
            count_request(api, p, 400);
            send_error(req, BO_EINVAL, "role: given by the path, not the body");
            return;
        }
        json_object_set_new(args, "role", json_string(segs[0]));
    } else if (strcmp(p, "/api/v1/tasks/{}/state") == 0) {
        if (json_object_get(args, "task_id") != NULL) {
            json_decref(args);
            count_request(api, p, 400);
            send_error(req, BO_EINVAL, "task_id: given by the path, not the body");
            return;
        }
        json_object_set_new(args, "task_id", json_string(segs[0]));
    }
    submit(api, req, p, r->op, args);
}

static void r_agent(struct bo_api *api, struct bo_http_req *req, const struct route *r,
                    char segs[][256], json_t *body)
{
    (void)segs;
    struct bo_err err = BO_ERR_INIT;
    if (!json_is_object(body)) {
        count_request(api, r->pattern, 400);
        send_error(req, BO_EINVAL, "request body: expected a JSON object");
        return;
    }
    struct api_call *c = call_new(api, req, r->pattern);
    if (c == NULL) {
        count_request(api, r->pattern, 500);
        send_error(req, BO_ENOMEM, "out of memory");
        return;
    }
    int rc;
    json_incref(body);
    if (strcmp(r->pattern, "/agent/v1/register") == 0) {
        rc = bo_sched_agent_register(api->sched, body, reply_cb, c, &err);
    } else if (strcmp(r->pattern, "/agent/v1/poll") == 0) {
        rc = bo_sched_agent_poll(api->sched, body, reply_cb, c, &err);
    } else {
        rc = bo_sched_submit(api->sched, BO_SCHED_AGENT_STATUS, body, reply_cb, c, &err);
    }
    if (rc != BO_OK) {
        bo_free(c);
        count_request(api, r->pattern, code_status(rc));
        send_error(req, rc, bo_err_msg(&err, rc));
    }
}

/* The staged state is committed: answer, then stop, as Aurora does, so the
 * supervisor restarts the scheduler on the recovered state. */
static void recovery_committed(struct bo_storage *s, int status, const char *message, void *data)
{
    (void)s;
    struct api_call *c = data;
    struct bo_api *api = c->api;
    json_t *res = status == BO_OK ? json_pack("{s:s}", "committed",
                                              "the scheduler restarts on the recovered state")
                                  : NULL;
    reply_cb(c, status, message, res);
    json_decref(res);
    if (status == BO_OK && api->exit_cb != NULL) {
        api->exit_cb(api, 0);
    }
}

static void r_admin(struct bo_api *api, struct bo_http_req *req, const struct route *r,
                    char segs[][256], json_t *body)
{
    (void)segs;
    struct bo_err err = BO_ERR_INIT;
    const char *p = r->pattern;
    int rc = BO_OK;
    json_t *out = NULL;
    if (strcmp(p, "/api/v1/admin/snapshot") == 0 || strcmp(p, "/api/v1/admin/backup") == 0) {
        struct api_call *c = call_new(api, req, p);
        if (c == NULL) {
            rc = bo_errf(&err, BO_ENOMEM, "out of memory");
        } else {
            rc = strcmp(p, "/api/v1/admin/snapshot") == 0
                     ? bo_sched_snapshot(api->sched, reply_cb, c, &err)
                     : bo_sched_backup(api->sched, reply_cb, c, &err);
            if (rc == BO_OK) {
                return;
            }
            bo_free(c);
        }
    } else if (strcmp(p, "/api/v1/admin/backups") == 0) {
        if (api->backup_dir == NULL) {
            rc = bo_errf(&err, BO_EINVAL, "no backup directory configured");
        } else {
            char **names = NULL;
            size_t n = 0;
            rc = bo_backup_list(api->backup_dir, &names, &n, &err);
            if (rc == BO_OK) {
                json_t *arr = json_array();
                for (size_t i = 0; i < n; i++) {
                    json_array_append_new(arr, json_string(names[i]));
                }
                bo_backup_list_free(names, n);
                out = json_pack("{s:o}", "backups", arr);
            }
        }
    } else if (strcmp(p, "/api/v1/admin/reconcile") == 0) {
        rc = bo_sched_reconcile(api->sched, &err);
        if (rc == BO_OK) {
            out = json_object();
        }
    } else if (strcmp(p, "/api/v1/admin/recovery/stage") == 0) {
        const char *name = json_string_value(json_object_get(body, "backup"));
        if (name == NULL) {
            rc = bo_errf(&err, BO_EINVAL, "backup: expected a backup name");
        } else if ((rc = bo_storage_recovery_stage(api->storage, name, &err)) == BO_OK) {
            out = json_pack("{s:s}", "staged", name);
        }
    } else if (strcmp(p, "/api/v1/admin/recovery/tasks") == 0 ||
               strcmp(p, "/api/v1/admin/recovery/delete") == 0) {
        bool del = strcmp(p, "/api/v1/admin/recovery/delete") == 0;
        json_t *qa = del ? json_incref(body) : query_args(req);
        const char *ids[1024];
        Bo__ScheduleStatus st[32];
        struct bo_task_query q = {0};
        q.role = json_string_value(json_object_get(qa, "role"));
        q.environment = json_string_value(json_object_get(qa, "environment"));
        q.job_name = json_string_value(json_object_get(qa, "job_name"));
        json_t *v = json_object_get(qa, "task_ids");
        for (size_t i = 0; i < json_array_size(v) && i < 1024 && rc == BO_OK; i++) {
            if (!json_is_string(json_array_get(v, i))) {
                rc = bo_errf(&err, BO_EINVAL, "task_ids[%zu]: expected a task id", i);
                break;
            }
            ids[q.n_task_ids++] = json_string_value(json_array_get(v, i));
        }
        static const char *const strs[] = {"role", "environment", "job_name", NULL};
        for (const char *const *k = strs; *k != NULL && rc == BO_OK; k++) {
            json_t *x = json_object_get(qa, *k);
            if (x != NULL && !json_is_string(x)) {
                rc = bo_errf(&err, BO_EINVAL, "%s: expected a string", *k);
            }
        }
        q.task_ids = ids;
        v = json_object_get(qa, "statuses");
        for (size_t i = 0; i < json_array_size(v) && i < 32; i++) {
            int x = bo_tsm_status_parse(json_string_value(json_array_get(v, i)));
            if (x < 0) {
                rc = bo_errf(&err, BO_EINVAL, "statuses[%zu]: unknown status", i);
                break;
            }
            st[q.n_statuses++] = (Bo__ScheduleStatus)x;
        }
        q.statuses = st;
        if (rc == BO_OK && del && q.n_task_ids == 0) {
            rc = bo_errf(&err, BO_EINVAL, "task_ids: name the tasks to delete");
        }
        if (rc == BO_OK && del) {
            uint64_t n = 0;
            rc = bo_storage_recovery_delete(api->storage, &q, &n, &err);
            if (rc == BO_OK) {
                out = json_pack("{s:I}", "deleted", (json_int_t)n);
            }
        } else if (rc == BO_OK) {
            struct bo_task_list l = {0};
            rc = bo_storage_recovery_query(api->storage, &q, &l, &err);
            if (rc == BO_OK) {
                json_t *arr = json_array();
                for (size_t i = 0; i < l.n; i++) {
                    json_t *t = bo_pbjson_encode(&l.tasks[i]->base, 0);
                    json_array_append_new(arr, t);
                }
                bo_task_list_release(&l);
                out = json_pack("{s:o}", "tasks", arr);
            }
        }
        json_decref(qa);
    } else if (strcmp(p, "/api/v1/admin/recovery/commit") == 0) {
        struct api_call *c = call_new(api, req, p);
        if (c == NULL) {
            rc = bo_errf(&err, BO_ENOMEM, "out of memory");
        } else {
            rc = bo_storage_recovery_commit(api->storage, recovery_committed, c, &err);
            if (rc == BO_OK) {
                return; /* answered when the snapshot entry commits */
            }
            bo_free(c);
        }
    } else if (strcmp(p, "/api/v1/admin/recovery/unload") == 0) {
        rc = bo_storage_recovery_unload(api->storage, &err);
        if (rc == BO_OK) {
            out = json_object();
        }
    } else if (strcmp(p, "/quitquitquit") == 0) {
        /* answered first: the close that follows lets sent answers finish */
        count_request(api, p, 200);
        json_t *bye = json_pack("{s:s}", "exiting", "clean shutdown");
        send_json(req, 200, bye);
        json_decref(bye);
        if (api->exit_cb != NULL) {
            api->exit_cb(api, 0);
        }
        return;
    }
    count_request(api, p, code_status(rc));
    if (rc != BO_OK) {
        send_error(req, rc, bo_err_msg(&err, rc));
    } else if (out != NULL) {
        send_json(req, 200, out);
    } else {
        json_t *empty = json_object();
        send_json(req, 200, empty);
        json_decref(empty);
    }
    json_decref(out);
}

static void r_metrics(struct bo_api *api, struct bo_http_req *req, const struct route *r,
                      char segs[][256], json_t *body);

static const struct route ROUTES[] = {
    {"GET", "/health", r_health, false, false, 0},
    {"GET", "/leaderhealth", r_leaderhealth, false, false, 0},
    {"GET", "/metrics", r_metrics, false, false, 0},
    {"GET", "/vars", r_metrics, false, false, 0},
    {"GET", "/vars.json", r_metrics, false, false, 0},
    {"GET", "/api/v1/info", r_info, false, false, 0},
    {"GET", "/api/v1/roles", r_read, false, false, 0},
    {"GET", "/api/v1/roles/{}/jobs", r_read, false, false, 0},
    {"GET", "/api/v1/jobs", r_read, false, false, 0},
    {"POST", "/api/v1/jobs", r_write, true, true, BO_SCHED_CREATE_JOB},
    {"POST", "/api/v1/jobs/populate", r_read, false, true, 0},
    {"GET", "/api/v1/jobs/{}/{}/{}/config", r_read, false, false, 0},
    {"POST", "/api/v1/jobs/{}/{}/{}/kill", r_write, true, true, BO_SCHED_KILL},
    {"POST", "/api/v1/jobs/{}/{}/{}/restart", r_write, true, true, BO_SCHED_RESTART},
    {"POST", "/api/v1/jobs/{}/{}/{}/instances", r_write, true, true, BO_SCHED_ADD_INSTANCES},
    {"GET", "/api/v1/tasks", r_read, false, false, 0},
    {"GET", "/api/v1/pending", r_read, false, false, 0},
    {"POST", "/api/v1/tasks/{}/state", r_write, true, true, BO_SCHED_FORCE_STATE},
    {"GET", "/api/v1/quotas/{}", r_read, false, false, 0},
    {"PUT", "/api/v1/quotas/{}", r_write, true, true, BO_SCHED_SET_QUOTA},
    {"POST", "/api/v1/quotas/{}/increase", r_write, true, true, BO_SCHED_INCREASE_QUOTA},
    {"GET", "/api/v1/cron", r_read, false, false, 0},
    {"PUT", "/api/v1/cron/{}/{}/{}", r_write, true, true, BO_SCHED_SCHEDULE_CRON},
    {"DELETE", "/api/v1/cron/{}/{}/{}", r_write, true, false, BO_SCHED_DESCHEDULE_CRON},
    {"POST", "/api/v1/cron/{}/{}/{}/start", r_write, true, false, BO_SCHED_START_CRON},
    {"GET", "/api/v1/maintenance", r_read, false, false, 0},
    {"POST", "/api/v1/maintenance/start", r_write, true, true, BO_SCHED_MAINT_START},
    {"POST", "/api/v1/maintenance/drain", r_write, true, true, BO_SCHED_MAINT_DRAIN},
    {"POST", "/api/v1/maintenance/end", r_write, true, true, BO_SCHED_MAINT_END},
    {"POST", "/api/v1/admin/prune", r_write, true, true, BO_SCHED_PRUNE},
    {"POST", "/api/v1/admin/snapshot", r_admin, true, false, 0},
    {"POST", "/api/v1/admin/backup", r_admin, true, false, 0},
    {"GET", "/api/v1/admin/backups", r_admin, false, false, 0},
    {"POST", "/api/v1/admin/reconcile", r_admin, true, false, 0},
    {"POST", "/api/v1/admin/recovery/stage", r_admin, true, true, 0},
    {"GET", "/api/v1/admin/recovery/tasks", r_admin, true, false, 0},
    {"POST", "/api/v1/admin/recovery/delete", r_admin, true, true, 0},
    {"POST", "/api/v1/admin/recovery/commit", r_admin, true, false, 0},
    {"POST", "/api/v1/admin/recovery/unload", r_admin, true, false, 0},
    {"POST", "/quitquitquit", r_admin, false, false, 0},
    {"POST", "/agent/v1/register", r_agent, true, true, 0},
    {"POST", "/agent/v1/poll", r_agent, true, true, 0},
    {"POST", "/agent/v1/status", r_agent, true, true, 0},
};

/* Match `path` against `pattern`; fills segs. */
static bool match(const char *pattern, const char *path, char segs[][256], size_t *n)
{
    *n = 0;
    while (*pattern != '\0' && *path != '\0') {
        if (pattern[0] == '{' && pattern[1] == '}') {
            const char *end = strchr(path, '/');
            size_t len = end != NULL ? (size_t)(end - path) : strlen(path);
            if (len == 0 || len >= 256 || *n >= MAX_SEGS) {
                return false;
            }
            memcpy(segs[*n], path, len);
            segs[*n][len] = '\0';
            (*n)++;
            path += len;
            pattern += 2;
            continue;
        }
        if (*pattern != *path) {
            return false;
        }
        pattern++;
        path++;
    }
    return *pattern == '\0' && (*path == '\0' || strcmp(path, "/") == 0);
}

static void handle(struct bo_http_req *req, void *data)
{
    struct bo_api *api = data;
    const char *method = bo_http_method(req);
    const char *path = bo_http_path(req);
    char segs[MAX_SEGS][256];
    size_t n;
    bool path_matched = false;
    for (size_t i = 0; i < sizeof(ROUTES) / sizeof(*ROUTES); i++) {
        const struct route *r = &ROUTES[i];
        if (!match(r->pattern, path, segs, &n)) {
            continue;
        }
        path_matched = true;
        if (strcmp(r->method, method) != 0 &&
            !(strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)) {
            continue;
        }
        if (r->write && redirect_to_leader(api, req, r->pattern)) {
            return;
        }
        json_t *body = NULL;
        size_t len;
        const char *text = bo_http_body(req, &len);
        if (r->json_body || len > 0) {
            if (len == 0) {
                body = json_object();
            } else {
                json_error_t jerr;
                body = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
                if (body == NULL) {
                    char msg[300];
                    snprintf(msg, sizeof(msg), "request body is not JSON: %s at line %d column %d",
                             jerr.text, jerr.line, jerr.column);
                    count_request(api, r->pattern, 400);
                    send_error(req, BO_EINVAL, msg);
                    return;
                }
            }
        }
        r->fn(api, req, r, segs, body);
        json_decref(body);
        return;
    }
    if (path_matched) {
        count_request(api, "other", 405);
        json_t *j = json_pack("{s:s, s:s, s:[]}", "code", "METHOD_NOT_ALLOWED", "message",
                              "method not allowed on this path", "details");
        send_json(req, 405, j);
        json_decref(j);
        return;
    }
    count_request(api, "other", 404);
    char msg[600];
    snprintf(msg, sizeof(msg), "no route for '%s %.400s'", method, path);
    send_error(req, BO_ENOTFOUND, msg);
}

/* ---------------------------------------------------------------- metrics --- */

struct mdef {
    int id;
    enum bo_metric_type type;
    const char *name;
    const char *help;
    const char *label;
};

static const struct mdef MDEFS[] = {
    {M_TASK_STORE, BO_METRIC_GAUGE_INT, "task_store", "Tasks in the store by status", "status"},
    {M_SCHED_ATTEMPTS, BO_METRIC_COUNTER, "schedule_attempts_fired",
     "Tasks tried in placement rounds", NULL},
    {M_SCHED_PLACED, BO_METRIC_COUNTER, "scheduler_tasks_placed", "Tasks assigned to a host", NULL},
    {M_SCHED_NO_MATCH, BO_METRIC_COUNTER, "schedule_attempts_no_match",
     "Tasks tried and left pending", NULL},
    {M_PENDING_REASON, BO_METRIC_GAUGE_INT, "pending_tasks",
     "Pending tasks by the reason of their last placement attempt", "reason"},
    {M_AGENTS, BO_METRIC_GAUGE_INT, "agents", "Agents by state", "state"},
    {M_CRON_TRIGGERS, BO_METRIC_COUNTER, "cron_job_triggers", "Cron runs started", NULL},
    {M_CRON_MISFIRES, BO_METRIC_COUNTER, "cron_job_misfires",
     "Cron fire times missed (late by more than a minute)", NULL},
    {M_CRON_COLLISIONS, BO_METRIC_COUNTER, "cron_job_collisions",
     "Cron runs that found the previous run active", NULL},
    {M_ILLEGAL, BO_METRIC_COUNTER, "scheduler_illegal_task_state_transitions",
     "Status changes the task state machine refused", NULL},
    {M_TIMED_OUT, BO_METRIC_COUNTER, "timed_out_tasks", "Tasks timed out in a transient state",
     NULL},
    {M_STATUS_UPDATES, BO_METRIC_COUNTER, "status_updates_received",
     "Task status updates from agents", NULL},
    {M_BATCHES, BO_METRIC_COUNTER, "scheduler_transactions",
     "Transactions the scheduler wrote to the log", NULL},
    {M_BATCH_FAILURES, BO_METRIC_COUNTER, "scheduler_transaction_failures",
     "Transactions that failed to commit", NULL},
    {M_PRUNED, BO_METRIC_COUNTER, "tasks_pruned", "Terminal tasks pruned", NULL},
    {M_LEADER, BO_METRIC_GAUGE_INT, "framework_registered", "1 on the leading scheduler", NULL},
    {M_UPTIME, BO_METRIC_GAUGE_INT, "uptime_secs", "Seconds since the scheduler started", NULL},
    {M_SNAP_SECONDS, BO_METRIC_GAUGE, "scheduler_log_snapshot_seconds",
     "Duration of the last snapshot", NULL},
    {M_SNAP_BYTES, BO_METRIC_GAUGE_INT, "scheduler_log_snapshot_bytes", "Size of the last snapshot",
     NULL},
    {M_SNAPSHOTS, BO_METRIC_COUNTER, "scheduler_log_snapshots", "Snapshots taken", NULL},
    {M_BACKUPS_OK, BO_METRIC_COUNTER, "scheduler_backup_success", "Backups written", NULL},
    {M_BACKUPS_FAILED, BO_METRIC_COUNTER, "scheduler_backup_failed", "Backups that failed", NULL},
    {M_LOG_WRITES, BO_METRIC_COUNTER, "scheduler_log_entries_written", "Log writes committed",
     NULL},
    {M_LOG_ENTRIES, BO_METRIC_COUNTER, "scheduler_log_entries_applied",
     "Log entries applied to the store", NULL},
    {M_QUEUED, BO_METRIC_GAUGE_INT, "scheduler_queued_work", "Work items waiting", NULL},
    {M_TEXT_HITS, BO_METRIC_COUNTER, "task_text_cache_hits",
     "Tasks answered from their kept JSON text", NULL},
    {M_TEXT_MISSES, BO_METRIC_COUNTER, "task_text_cache_misses",
     "Tasks read, decoded and rendered for an answer", NULL},
    {M_TEXT_BYTES, BO_METRIC_GAUGE_INT, "task_text_cache_bytes", "Bytes of kept task texts", NULL},
};

static int metrics_init(struct bo_api *api, struct bo_err *err)
{
    static const char *const http_labels[] = {"route", "code"};
    struct bo_metric_desc d = {.type = BO_METRIC_COUNTER,
                               .name = "http_requests",
                               .help = "HTTP requests by route and status code",
                               .labels = http_labels,
                               .n_labels = 2};
    int rc = bo_metrics_register(api->metrics, &d, &api->http_requests, err);
    for (size_t i = 0; rc == BO_OK && i < sizeof(MDEFS) / sizeof(*MDEFS); i++) {
        const struct mdef *m = &MDEFS[i];
        struct bo_metric_desc md = {.type = m->type,
                                    .name = m->name,
                                    .help = m->help,
                                    .labels = m->label != NULL ? &m->label : NULL,
                                    .n_labels = m->label != NULL ? 1 : 0};
        rc = bo_metrics_register(api->metrics, &md, &api->m[m->id], err);
    }
    return rc;
}

static void metrics_free(struct bo_api *api)
{
    for (size_t i = 0; i < api->n_reasons; i++) {
        bo_free(api->reasons[i]);
    }
    bo_free(api->reasons);
}

static void counter_to(struct bo_metric *m, uint64_t total)
{
    struct bo_metrics_series *x = bo_metrics_series(m, NULL, 0);
    if (x != NULL) {
        uint64_t cur = bo_metrics_counter_value(x);
        if (total > cur) {
            bo_metrics_inc(x, total - cur);
        }
    }
}

static void gauge_int(struct bo_metric *m, const char *label, int64_t v)
{
    struct bo_metrics_series *x =
        label != NULL ? bo_metrics_series(m, &label, 1) : bo_metrics_series(m, NULL, 0);
    if (x != NULL) {
        bo_metrics_set_int(x, v);
    }
}

static void reason_cb(const char *reason, uint64_t tasks, void *ctx)
{
    struct bo_api *api = ctx;
    struct bo_metrics_series *x = bo_metrics_series(api->m[M_PENDING_REASON], &reason, 1);
    if (x == NULL) {
        return;
    }
    bo_metrics_add_int(x, (int64_t)tasks);
    for (size_t i = 0; i < api->n_reasons; i++) {
        if (strcmp(api->reasons[i], reason) == 0) {
            return;
        }
    }
    /* Reasons name resources and attributes: their number stays small, and
     * is capped so a pathological cluster cannot grow it without bound. */
    if (api->n_reasons >= 256) {
        return;
    }
    char **v = bo_reallocarray(api->reasons, api->n_reasons + 1, sizeof(*v));
    if (v != NULL) {
        api->reasons = v;
        if ((v[api->n_reasons] = bo_strdup(reason)) != NULL) {
            api->n_reasons++;
        }
    }
}

/* Bring the scrape-time metrics up to date. */
static void metrics_refresh(struct bo_api *api)
{
    struct bo_store *st = bo_storage_store(api->storage);
    struct bo_err err = BO_ERR_INIT;
    struct bo_role_summary_list roles = {0};
    uint64_t by_status[19] = {0};
    if (bo_store_role_summaries(st, &roles, &err) == BO_OK) {
        for (size_t i = 0; i < roles.n; i++) {
            for (size_t k = 0; k < 19; k++) {
                by_status[k] += roles.roles[i].counts.by_status[k];
            }
        }
        bo_role_summary_list_release(&roles);
    }
    for (int k = 0; k < 19; k++) {
        if (bo_tsm_is_valid(k)) {
            gauge_int(api->m[M_TASK_STORE], bo_tsm_status_name(k), (int64_t)by_status[k]);
        }
    }
    struct bo_sched_stats ss;
    bo_sched_get_stats(api->sched, &ss);
    counter_to(api->m[M_SCHED_ATTEMPTS], ss.schedule_attempts);
    counter_to(api->m[M_SCHED_PLACED], ss.tasks_placed);
    counter_to(api->m[M_SCHED_NO_MATCH], ss.schedule_no_match);
    counter_to(api->m[M_CRON_TRIGGERS], ss.cron_triggers);
    counter_to(api->m[M_CRON_MISFIRES], ss.cron_misfires);
    counter_to(api->m[M_CRON_COLLISIONS], ss.cron_collisions);
    counter_to(api->m[M_ILLEGAL], ss.illegal_transitions);
    counter_to(api->m[M_TIMED_OUT], ss.timed_out_tasks);
    counter_to(api->m[M_STATUS_UPDATES], ss.status_updates);
    counter_to(api->m[M_BATCHES], ss.batches);
    counter_to(api->m[M_BATCH_FAILURES], ss.batch_failures);
    counter_to(api->m[M_PRUNED], ss.tasks_pruned);
    gauge_int(api->m[M_AGENTS], "registered", (int64_t)ss.agents_registered);
    gauge_int(api->m[M_AGENTS], "partitioned", (int64_t)ss.agents_partitioned);
    gauge_int(api->m[M_AGENTS], "unconfirmed", (int64_t)ss.agents_unconfirmed);
    gauge_int(api->m[M_QUEUED], NULL, (int64_t)ss.queued);
    gauge_int(api->m[M_LEADER], NULL, bo_sched_is_leader(api->sched) ? 1 : 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    gauge_int(api->m[M_UPTIME], NULL, (now - api->started_ms) / 1000);
    /* pending reasons: reset what was there, then add the current ones */
    for (size_t i = 0; i < api->n_reasons; i++) {
        const char *label = api->reasons[i];
        struct bo_metrics_series *y = bo_metrics_series(api->m[M_PENDING_REASON], &label, 1);
        if (y != NULL) {
            bo_metrics_set_int(y, 0);
        }
    }
    bo_sched_pending_reasons(api->sched, reason_cb, api);
    struct bo_storage_stats ls;
    bo_storage_stats(api->storage, &ls);
    struct bo_metrics_series *x = bo_metrics_series(api->m[M_SNAP_SECONDS], NULL, 0);
    if (x != NULL) {
        bo_metrics_set(x, ls.last_snapshot_seconds);
    }
    gauge_int(api->m[M_SNAP_BYTES], NULL, (int64_t)ls.last_snapshot_bytes);
    counter_to(api->m[M_SNAPSHOTS], ls.snapshots_taken);
    counter_to(api->m[M_BACKUPS_OK], ls.backups_written);
    counter_to(api->m[M_BACKUPS_FAILED], ls.backups_failed);
    counter_to(api->m[M_LOG_WRITES], ls.writes_committed);
    counter_to(api->m[M_LOG_ENTRIES], ls.entries_applied);
    struct bo_store_text_stats ts_;
    bo_store_get_text_stats(bo_storage_store(api->storage), &ts_);
    counter_to(api->m[M_TEXT_HITS], ts_.hits);
    counter_to(api->m[M_TEXT_MISSES], ts_.misses);
    gauge_int(api->m[M_TEXT_BYTES], NULL, (int64_t)ts_.bytes);
}

static void r_metrics(struct bo_api *api, struct bo_http_req *req, const struct route *r,
                      char segs[][256], json_t *body)
{
    (void)segs;
    (void)body;
    count_request(api, r->pattern, 200);
    metrics_refresh(api);
    struct bo_buf out = BO_BUF_INIT;
    int rc;
    const char *ctype;
    if (strcmp(r->pattern, "/metrics") == 0) {
        rc = bo_metrics_render_prometheus(api->metrics, &out);
        ctype = BO_METRICS_PROMETHEUS_TYPE;
    } else if (strcmp(r->pattern, "/vars") == 0) {
        rc = bo_metrics_render_vars(api->metrics, &out);
        ctype = "text/plain";
    } else {
        rc = bo_metrics_render_vars_json(api->metrics, &out);
        ctype = "application/json";
    }
    if (rc != BO_OK) {
        bo_buf_release(&out);
        send_error(req, rc, "rendering metrics failed");
        return;
    }
    bo_http_respond(req, 200, ctype, out.data, out.len);
    bo_buf_release(&out);
}

/* -------------------------------------------------------------- lifecycle --- */

int bo_api_start(uv_loop_t *loop, const struct bo_api_config *cfg, struct bo_sched *sched,
                 struct bo_storage *storage, struct bo_api **out, struct bo_err *err)
{
    struct bo_api *api = bo_calloc(1, sizeof(*api));
    if (api == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    api->loop = loop;
    api->metrics = cfg->metrics;
    api->sched = sched;
    api->storage = storage;
    api->cluster = bo_strdup(cfg->cluster != NULL ? cfg->cluster : "devcluster");
    api->backup_dir = cfg->backup_dir != NULL ? bo_strdup(cfg->backup_dir) : NULL;
    api->peers = bo_calloc(cfg->n_peers + 1, sizeof(*api->peers));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    api->started_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int rc = BO_OK;
    if (api->cluster == NULL || api->peers == NULL) {
        rc = bo_errf(err, BO_ENOMEM, "out of memory");
    }
    for (size_t i = 0; rc == BO_OK && i < cfg->n_peers; i++) {
        api->peers[i].id = cfg->peers[i].id;
        api->peers[i].url = bo_strdup(cfg->peers[i].url);
        api->n_peers++;
        if (api->peers[i].url == NULL) {
            rc = bo_errf(err, BO_ENOMEM, "out of memory");
        }
    }
    if (rc == BO_OK) {
        rc = metrics_init(api, err);
    }
    if (rc == BO_OK) {
        struct bo_http_config hc;
        bo_http_config_init(&hc);
        hc.listen = cfg->listen;
        if (cfg->max_body > 0) {
            hc.max_body = cfg->max_body;
        }
        hc.handler = handle;
        hc.data = api;
        rc = bo_http_start(loop, &hc, &api->http, err);
    }
    if (rc != BO_OK) {
        api->http = NULL;
        bo_api_free(api);
        return rc;
    }
    *out = api;
    return BO_OK;
}

uint16_t bo_api_port(const struct bo_api *api)
{
    return bo_http_port(api->http);
}

static void http_closed(struct bo_http_server *srv)
{
    struct bo_api *api = bo_http_data(srv);
    if (api->close_cb != NULL) {
        api->close_cb(api);
    }
}

void bo_api_close(struct bo_api *api, bo_api_close_cb cb)
{
    api->close_cb = cb;
    bo_http_close(api->http, http_closed);
}

void bo_api_free(struct bo_api *api)
{
    if (api == NULL) {
        return;
    }
    if (api->http != NULL) {
        bo_http_free(api->http);
    }
    for (size_t i = 0; i < api->n_peers; i++) {
        bo_free(api->peers[i].url);
    }
    bo_free(api->peers);
    bo_free(api->cluster);
    bo_free(api->backup_dir);
    metrics_free(api);
    bo_free(api);
}

void *bo_api_get_data(const struct bo_api *api)
{
    return api->data;
}

void bo_api_set_data(struct bo_api *api, void *data)
{
    api->data = data;
}

void bo_api_on_exit(struct bo_api *api, bo_api_exit_cb cb)
{
    api->exit_cb = cb;
}
