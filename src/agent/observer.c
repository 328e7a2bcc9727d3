/*
 * observer.c - the agent's read-only HTTP side (Aurora's thermos observer):
 * health, metrics, the tasks it runs with their process states, and
 * sandbox browsing, file reads and log tails.
 *
 * Routes (docs/agent.md has the shapes):
 *   GET /health                          "OK"
 *   GET /metrics, /vars, /vars.json      the agent's metrics
 *   GET /api/v1/agent                    who we are, what we offer, isolation
 *   GET /api/v1/tasks                    every task the agent keeps
 *   GET /api/v1/tasks/ID                 one task: status, updates, and the
 *                                        executor's checkpoint (process states)
 *   GET /api/v1/tasks/ID/browse?path=P   a sandbox directory
 *   GET /api/v1/tasks/ID/file?path=P&offset=O&length=N   bytes of a file
 *   GET /api/v1/tasks/ID/tail?path=P&lines=N             the end of a file
 *
 * Every sandbox path is resolved by src/host/sandboxfs, which refuses
 * absolute paths, `..` and symlinks that leave the sandbox (403). Reading
 * files happens on the thread pool; the answer is sent from the loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_int.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "host/sandboxfs.h"

#define FILE_READ_MAX  (4u << 20)
#define TAIL_MAX_BYTES (1u << 20)
#define TAIL_MAX_LINES 10000

static void respond_json(struct bo_http_req *req, unsigned status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        static const char oom[] = "{\"code\":\"INTERNAL\",\"message\":\"out of memory\"}";
        bo_http_respond(req, 500, "application/json", oom, sizeof(oom) - 1);
        return;
    }
    bo_http_respond(req, status, "application/json", text, strlen(text));
    free(text);
}

static void respond_error(struct bo_http_req *req, unsigned status, const char *code,
                          const char *msg)
{
    respond_json(req, status,
                 json_pack("{s:s, s:s, s:[]}", "code", code, "message", msg, "details"));
}

static unsigned status_for(int rc, const char **code)
{
    switch (rc) {
    case BO_EINVAL:
        *code = "FORBIDDEN";
        return 403;
    case BO_ENOTFOUND:
        *code = "NOT_FOUND";
        return 404;
    case BO_ETOOBIG:
        *code = "TOO_BIG";
        return 413;
    default:
        *code = "INTERNAL";
        return 500;
    }
}

static json_t *task_summary(struct agent_task *t)
{
    static const char *const phases[] = {"PREPARING", "RUNNING", "EXITED"};
    return json_pack("{s:s, s:s, s:s, s:i, s:I, s:b, s:I, s:I, s:s}", "task_id", t->id, "status",
                     t->last_status[0] ? t->last_status : "ASSIGNED", "executor", phases[t->phase],
                     "pid", t->pid, "launched_ms", (json_int_t)t->launched_ms, "kill_requested",
                     t->kill_requested, "last_seq", (json_int_t)t->last_seq, "acked_seq",
                     (json_int_t)t->acked, "sandbox", t->sandbox);
}

/* ---- work on the thread pool ---- */

enum job_kind { JOB_TASK, JOB_BROWSE, JOB_FILE, JOB_TAIL };

struct obs_job {
    uv_work_t w;
    struct bo_agent *a;
    struct bo_http_req *req;
    enum job_kind kind;
    char *dir, *sandbox, *rel;
    uint64_t offset;
    size_t length, lines;
    json_t *summary; /* JOB_TASK: made on the loop, completed on the worker */
    /* out */
    int rc;
    struct bo_err err;
    json_t *doc;
    struct bo_buf buf;
    uint64_t file_size;
};

static json_t *load_json_file(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return json_load_file(path, 0, NULL);
}

static json_t *load_updates(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/updates", dir);
    json_t *arr = json_array();
    FILE *f = fopen(path, "re");
    if (!f)
        return arr;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        if (o)
            json_array_append_new(arr, o);
    }
    free(line);
    fclose(f);
    return arr;
}

static void obs_work(uv_work_t *w)
{
    struct obs_job *j = w->data;
    switch (j->kind) {
    case JOB_TASK: {
        json_t *cp = load_json_file(j->dir, "checkpoint.json");
        json_object_set_new(j->summary, "checkpoint", cp ? cp : json_null());
        json_object_set_new(j->summary, "updates", load_updates(j->dir));
        j->doc = j->summary;
        j->summary = NULL;
        j->rc = BO_OK;
        break;
    }
    case JOB_BROWSE:
        j->rc = bo_sbx_list(j->sandbox, j->rel, &j->doc, &j->err);
        break;
    case JOB_FILE:
        j->rc =
            bo_sbx_read(j->sandbox, j->rel, j->offset, j->length, &j->buf, &j->file_size, &j->err);
        break;
    case JOB_TAIL:
        j->rc = bo_sbx_tail(j->sandbox, j->rel, j->lines, TAIL_MAX_BYTES, &j->buf, &j->err);
        break;
    }
}

static void obs_after(uv_work_t *w, int status)
{
    struct obs_job *j = w->data;
    struct bo_agent *a = j->a;
    if (status != 0) {
        respond_error(j->req, 503, "SHUTDOWN", "the agent is stopping");
    } else if (j->rc != BO_OK) {
        const char *code;
        unsigned st = status_for(j->rc, &code);
        respond_error(j->req, st, code, bo_err_msg(&j->err, j->rc));
    } else if (j->kind == JOB_TASK || j->kind == JOB_BROWSE) {
        respond_json(j->req, 200, j->doc);
        j->doc = NULL;
    } else {
        if (j->kind == JOB_FILE) {
            char size[32];
            snprintf(size, sizeof(size), "%" PRIu64, j->file_size);
            bo_http_set_header(j->req, "X-File-Size", size);
        }
        bo_http_respond(j->req, 200, "text/plain; charset=utf-8", j->buf.data, j->buf.len);
    }
    json_decref(j->doc);
    json_decref(j->summary);
    bo_buf_release(&j->buf);
    bo_free(j->dir);
    bo_free(j->sandbox);
    bo_free(j->rel);
    bo_free(j);
    agent_job_done(a);
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || s[0] == '-' || v > max)
        return -1;
    *out = v;
    return 0;
}

static void submit(struct bo_agent *a, struct bo_http_req *req, struct agent_task *t,
                   enum job_kind kind)
{
    struct obs_job *j = bo_calloc(1, sizeof(*j));
    if (!j) {
        respond_error(req, 500, "INTERNAL", "out of memory");
        return;
    }
    j->a = a;
    j->req = req;
    j->kind = kind;
    j->dir = bo_strdup(t->dir);
    j->sandbox = bo_strdup(t->sandbox);
    const char *path = bo_http_query(req, "path");
    j->rel = bo_strdup(path ? path : "");
    j->length = FILE_READ_MAX;
    j->lines = 100;
    uint64_t v = 0;
    const char *q;
    bool bad = false;
    if ((q = bo_http_query(req, "offset")))
        bad |= parse_u64(q, UINT64_MAX / 2, &j->offset) != 0;
    if ((q = bo_http_query(req, "length"))) {
        bad |= parse_u64(q, FILE_READ_MAX, &v) != 0;
        j->length = (size_t)v;
    }
    if ((q = bo_http_query(req, "lines"))) {
        bad |= parse_u64(q, TAIL_MAX_LINES, &v) != 0;
        j->lines = (size_t)v;
    }
    if (kind == JOB_TASK)
        j->summary = task_summary(t);
    j->w.data = j;
    if (bad || !j->dir || !j->sandbox || !j->rel || (kind == JOB_TASK && !j->summary) ||
        (kind != JOB_TASK && kind != JOB_BROWSE && !path)) {
        if (bad || (kind != JOB_TASK && kind != JOB_BROWSE && !path))
            respond_error(req, 400, "INVALID_REQUEST",
                          "path is required; offset, length and lines are numbers within limits");
        else
            respond_error(req, 500, "INTERNAL", "out of memory");
        json_decref(j->summary);
        bo_free(j->dir);
        bo_free(j->sandbox);
        bo_free(j->rel);
        bo_free(j);
        return;
    }
    if (uv_queue_work(a->loop, &j->w, obs_work, obs_after) != 0) {
        respond_error(req, 500, "INTERNAL", "cannot queue the work");
        json_decref(j->summary);
        bo_free(j->dir);
        bo_free(j->sandbox);
        bo_free(j->rel);
        bo_free(j);
        return;
    }
    a->work_pending++;
}

/* ---- routing ---- */

static void r_metrics(struct bo_agent *a, struct bo_http_req *req, const char *path)
{
    struct bo_buf b = BO_BUF_INIT;
    int rc;
    const char *ct = "text/plain; charset=utf-8";
    if (strcmp(path, "/metrics") == 0) {
        rc = bo_metrics_render_prometheus(a->cfg.metrics, &b);
        ct = BO_METRICS_PROMETHEUS_TYPE;
    } else if (strcmp(path, "/vars") == 0) {
        rc = bo_metrics_render_vars(a->cfg.metrics, &b);
    } else {
        rc = bo_metrics_render_vars_json(a->cfg.metrics, &b);
        ct = "application/json";
    }
    if (rc != BO_OK)
        respond_error(req, 500, "INTERNAL", "out of memory");
    else
        bo_http_respond(req, 200, ct, b.data, b.len);
    bo_buf_release(&b);
}

static void r_agent(struct bo_agent *a, struct bo_http_req *req)
{
    respond_json(req, 200,
                 json_pack("{s:s, s:s, s:b, s:s, s:{s:f, s:I, s:I, s:O}, s:O, s:s, s:I}",
                           "agent_id", a->id, "host", a->hostname, "registered", a->registered,
                           "scheduler", a->leader[0] ? a->leader : a->schedulers[a->cur],
                           "resources", "cpus", a->cpus, "ram_mb", (json_int_t)a->ram_mb, "disk_mb",
                           (json_int_t)a->disk_mb, "ports", a->ports, "attributes", a->attributes,
                           "isolation", a->isolation_note, "tasks", (json_int_t)a->ntasks));
}

static void r_tasks(struct bo_agent *a, struct bo_http_req *req)
{
    json_t *arr = json_array();
    struct agent_task *t, *tmp;
    HASH_ITER(hh, a->tasks, t, tmp)
    json_array_append_new(arr, task_summary(t));
    respond_json(req, 200, json_pack("{s:o}", "tasks", arr));
}

static void handler(struct bo_http_req *req, void *data)
{
    struct bo_agent *a = data;
    const char *method = bo_http_method(req);
    const char *path = bo_http_path(req);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        respond_error(req, 405, "METHOD_NOT_ALLOWED", "the agent's HTTP is read-only");
        return;
    }
    if (strcmp(path, "/health") == 0) {
        bo_http_respond(req, 200, "text/plain", "OK\n", 3);
        return;
    }
    if (strcmp(path, "/metrics") == 0 || strcmp(path, "/vars") == 0 ||
        strcmp(path, "/vars.json") == 0) {
        r_metrics(a, req, path);
        return;
    }
    if (strcmp(path, "/api/v1/agent") == 0) {
        r_agent(a, req);
        return;
    }
    if (strcmp(path, "/api/v1/tasks") == 0) {
        r_tasks(a, req);
        return;
    }
    static const char prefix[] = "/api/v1/tasks/";
    if (strncmp(path, prefix, sizeof(prefix) - 1) == 0) {
        const char *rest = path + sizeof(prefix) - 1;
        size_t n = strcspn(rest, "/");
        char id[AGENT_TASK_ID_MAX + 1];
        if (n == 0 || n > AGENT_TASK_ID_MAX) {
            respond_error(req, 404, "NOT_FOUND", "no such task");
            return;
        }
        memcpy(id, rest, n);
        id[n] = '\0';
        struct agent_task *t = agent_task_find(a, id);
        if (!t) {
            respond_error(req, 404, "NOT_FOUND", "no such task on this agent");
            return;
        }
        const char *op = rest[n] == '/' ? rest + n + 1 : "";
        if (*op == '\0')
            submit(a, req, t, JOB_TASK);
        else if (strcmp(op, "browse") == 0)
            submit(a, req, t, JOB_BROWSE);
        else if (strcmp(op, "file") == 0)
            submit(a, req, t, JOB_FILE);
        else if (strcmp(op, "tail") == 0)
            submit(a, req, t, JOB_TAIL);
        else
            respond_error(req, 404, "NOT_FOUND", "no such route");
        return;
    }
    respond_error(req, 404, "NOT_FOUND", "no such route");
}

int agent_observer_start(struct bo_agent *a, struct bo_err *err)
{
    struct bo_http_config cfg;
    bo_http_config_init(&cfg);
    cfg.listen = a->cfg.listen;
    cfg.handler = handler;
    cfg.data = a;
    cfg.max_body = 4096; /* nothing to post */
    int rc = bo_http_start(a->loop, &cfg, &a->http, err);
    if (rc != BO_OK)
        return bo_err_wrapf(err, rc, "agent HTTP on '%s'", a->cfg.listen);
    a->open_handles++;
    return BO_OK;
}

uint16_t bo_agent_http_port(const struct bo_agent *a)
{
    return a->http ? bo_http_port(a->http) : 0;
}

static void http_closed(struct bo_http_server *srv)
{
    struct bo_agent *a = bo_http_data(srv);
    agent_observer_closed(a);
}

void agent_observer_close(struct bo_agent *a)
{
    bo_http_close(a->http, http_closed);
}
