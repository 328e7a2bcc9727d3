/*
 * agent.c - the agent's work: the scheduler session, tasks and executors.
 *
 * Happy path. The agent registers (POST /agent/v1/register) with what it
 * offers and the tasks it has, then long-polls (POST /agent/v1/poll) for
 * commands, acknowledging each batch on the next poll once every command
 * of the batch is handled. A launch makes the task's directories, its
 * task.json and (when available) its cgroup on a worker thread, then
 * spawns `borealis-executor --task-dir <work>/tasks/<id>` in a session of
 * its own. The executor appends status updates to <dir>/updates; the agent
 * watches the file (inotify, plus a one-second sweep), queues what is new
 * and sends it (POST /agent/v1/status) in order, one request in flight;
 * the scheduler answers after the transitions are durable, and only then
 * is an update acknowledged (<dir>/acked, written on a worker). A kill
 * sends SIGTERM to the executor, which shuts the task down gracefully.
 *
 * Failure modes.
 *  - A follower answers 307 with the leader's URL: the agent goes there at
 *    once. 503, errors and timeouts: back off (doubling to 10 s) and try the
 *    next URL of the list. 404 on a poll: the scheduler forgot us
 *    (restart, failover, declared lost): register again, with our tasks.
 *  - The agent crashes or is killed: executors live in their own sessions
 *    and keep running. The next agent on the same work directory finds
 *    them through <dir>/executor.pid (pid and kernel start time, so a
 *    recycled pid is not mistaken for the executor), watches them with a
 *    pidfd, resends updates after <dir>/acked, and reconciles by
 *    registering with every task it has.
 *  - An executor dies without writing a terminal update (kill -9, crash):
 *    the agent writes one itself (LOST, or KILLED when a kill was asked),
 *    and kills what is left of the task (its cgroup, or its session).
 *  - A launch that cannot be prepared (disk full, bad task) ends FAILED
 *    with the reason; if even the task directory cannot be made the update
 *    lives in memory until acknowledged.
 *  - Executors that ignore SIGTERM are SIGKILLed after stop_timeout plus a
 *    grace period.
 */
#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "agent/isolate.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "host/hostinfo.h"

#define RETRY_MAX_MS    10000
#define NEXT_REPLICA_MS 20
#define STATUS_BATCH    256
#define TICK_MS         1000
#define KILL_GRACE_MS   10000
#define CALL_TIMEOUT_MS 10000
#define POLL_MARGIN_MS  10000

static const char *const TERMINAL[] = {"FINISHED", "FAILED", "KILLED", "LOST"};
static const char *const KNOWN[] = {"STARTING", "RUNNING", "FINISHED", "FAILED", "KILLED", "LOST"};

static bool is_terminal(const char *s)
{
    for (size_t i = 0; i < sizeof(TERMINAL) / sizeof(TERMINAL[0]); i++)
        if (strcmp(s, TERMINAL[i]) == 0)
            return true;
    return false;
}

static bool is_known_status(const char *s)
{
    for (size_t i = 0; i < sizeof(KNOWN) / sizeof(KNOWN[0]); i++)
        if (strcmp(s, KNOWN[i]) == 0)
            return true;
    return false;
}

int64_t agent_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void bo_agent_config_init(struct bo_agent_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->setuid = true;
    cfg->create_users = true;
    cfg->isolation = true;
    cfg->sandbox_retention_ms = 3600 * 1000;
    cfg->disk_check_interval_ms = 10000;
    cfg->stop_timeout_ms = 120000;
    cfg->retry_ms = 250;
}

const char *bo_agent_id(const struct bo_agent *a)
{
    return a->id;
}

/* A task id becomes a directory name: keep it to a safe alphabet. */
static bool valid_task_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > AGENT_TASK_ID_MAX || id[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

static char *path2(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = bo_malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* ------------------------------------------------------------- tasks ---- */

struct agent_task *agent_task_find(struct bo_agent *a, const char *id)
{
    struct agent_task *t = NULL;
    HASH_FIND_STR(a->tasks, id, t);
    return t;
}

static struct agent_task *task_new(struct bo_agent *a, const char *id)
{
    struct agent_task *t = bo_calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    snprintf(t->id, sizeof(t->id), "%s", id);
    t->dir = path2(a->tasks_dir, id);
    t->sandbox = path2(a->sandboxes_dir, id);
    t->pidfd = -1;
    t->a = a;
    if (!t->dir || !t->sandbox) {
        bo_free(t->dir);
        bo_free(t->sandbox);
        bo_free(t);
        return NULL;
    }
    HASH_ADD_STR(a->tasks, id, t);
    a->ntasks++;
    return t;
}

static void task_free(struct agent_task *t)
{
    for (size_t i = 0; i < t->nq; i++)
        bo_free(t->q[i].message);
    bo_free(t->q);
    bo_free(t->dir);
    bo_free(t->sandbox);
    bo_free(t);
}

static int queue_push(struct agent_task *t, int64_t seq, const char *status, const char *msg,
                      int64_t ts)
{
    if (t->nq == t->capq) {
        size_t cap = t->capq ? t->capq * 2 : 4;
        struct agent_upd *q = bo_reallocarray(t->q, cap, sizeof(*q));
        if (!q)
            return BO_ENOMEM;
        t->q = q;
        t->capq = cap;
    }
    struct agent_upd *u = &t->q[t->nq];
    u->seq = seq;
    snprintf(u->status, sizeof(u->status), "%s", status);
    u->message = bo_strdup(msg ? msg : "");
    u->timestamp_ms = ts;
    if (!u->message)
        return BO_ENOMEM;
    t->nq++;
    snprintf(t->last_status, sizeof(t->last_status), "%s", status);
    if (is_terminal(status) && !t->terminal) {
        t->terminal = true;
        t->terminal_ms = ts;
    }
    return BO_OK;
}

/* Parse the complete lines of <dir>/updates after `read_off`. */
static void read_updates(struct bo_agent *a, struct agent_task *t)
{
    if (t->transient)
        return;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/updates", t->dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size <= t->read_off) {
        close(fd);
        return;
    }
    size_t n = (size_t)((uint64_t)st.st_size - t->read_off);
    char *buf = bo_malloc(n + 1);
    ssize_t got = buf ? pread(fd, buf, n, (off_t)t->read_off) : -1;
    close(fd);
    if (got <= 0) {
        bo_free(buf);
        return;
    }
    buf[got] = '\0';
    char *line = buf;
    char *nl;
    bool added = false;
    while ((nl = memchr(line, '\n', (size_t)(buf + got - line)))) {
        *nl = '\0';
        t->read_off += (uint64_t)(nl - line) + 1;
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        json_int_t seq = 0, ts = 0;
        const char *status = NULL, *msg = "";
        if (!o ||
            json_unpack(o, "{s:I, s:s, s?s, s?I}", "seq", &seq, "status", &status, "message", &msg,
                        "timestamp_ms", &ts) != 0 ||
            !is_known_status(status)) {
            bo_warn("agent: task '%s': skipping a malformed status update: %.200s", t->id, line);
        } else if (seq > t->last_seq) {
            t->last_seq = seq;
            if (seq > t->acked) {
                queue_push(t, seq, status, msg, ts);
                added = true;
            } else {
                snprintf(t->last_status, sizeof(t->last_status), "%s", status);
                if (is_terminal(status) && !t->terminal) {
                    t->terminal = true;
                    t->terminal_ms = ts;
                }
            }
        }
        json_decref(o);
        line = nl + 1;
    }
    bo_free(buf);
    if (added)
        a->status_wanted = true;
}

/* The agent speaks for a task whose executor is gone: append to the same
 * file the executor used (no other writer is left), or keep it in memory
 * when there is no file. */
static void append_update(struct bo_agent *a, struct agent_task *t, const char *status,
                          const char *msg)
{
    read_updates(a, t);
    int64_t now = agent_now_ms();
    int64_t seq = t->last_seq + 1;
    if (!t->transient) {
        json_t *o = json_pack("{s:I, s:s, s:s, s:I}", "seq", (json_int_t)seq, "status", status,
                              "message", msg, "timestamp_ms", (json_int_t)now);
        char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/updates", t->dir);
        int fd = line ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
        bool ok = false;
        if (fd >= 0) {
            size_t len = strlen(line);
            line[len] = '\n';
            ok = write(fd, line, len + 1) == (ssize_t)(len + 1) && fdatasync(fd) == 0;
            line[len] = '\0';
            close(fd);
        }
        free(line);
        if (ok) {
            read_updates(a, t);
            return;
        }
        bo_warn("agent: task '%s': cannot write its status file (%s): keeping '%s' in memory",
                t->id, strerror(errno), status);
        t->transient = true;
    }
    t->last_seq = seq;
    queue_push(t, seq, status, msg, now);
    a->status_wanted = true;
}

/* ------------------------------------------------ the scheduler session ---- */

static void try_register(struct bo_agent *a);
static void do_poll(struct bo_agent *a);
static void maybe_send_status(struct bo_agent *a);
static void launch(struct bo_agent *a, json_t *cmd, int64_t seq);
static void kill_task(struct bo_agent *a, const char *id);
static void arm_kill_timer(struct bo_agent *a, struct agent_task *t);
static void maybe_finish_close(struct bo_agent *a);

static const char *base_url(struct bo_agent *a)
{
    return a->leader[0] ? a->leader : a->schedulers[a->cur];
}

/* Keep "http://host:port" of a Location header. */
static void learn_leader(struct bo_agent *a, const char *location)
{
    const char *p = strstr(location, "://");
    if (!p)
        return;
    p += 3;
    size_t n = strcspn(p, "/?");
    size_t len = (size_t)(p - location) + n;
    if (len >= sizeof(a->leader))
        return;
    memcpy(a->leader, location, len);
    a->leader[len] = '\0';
    bo_info("agent: the leading scheduler is %s", a->leader);
}

static void on_retry(uv_timer_t *t)
{
    struct bo_agent *a = t->data;
    try_register(a);
}

/* A call failed: forget the session, back off, try the next scheduler. */
static void session_lost(struct bo_agent *a, const char *why)
{
    if (a->closing)
        return;
    bo_metrics_inc(a->m.call_errors, 1);
    if (a->failures == 0 || a->failures % 10 == 0)
        bo_warn("agent: %s: %s", base_url(a), why);
    a->registered = false;
    a->leader[0] = '\0';
    a->failures++;
    a->cur = (a->cur + 1) % a->n_schedulers;
    /* Try the other replicas at once (after a failover one of them leads);
     * back off, doubling, only once a whole round of them has failed. */
    uint64_t delay = NEXT_REPLICA_MS;
    if (a->failures % a->n_schedulers == 0) {
        unsigned rounds = (unsigned)(a->failures / a->n_schedulers);
        delay = (uint64_t)a->cfg.retry_ms;
        for (unsigned i = 1; i < rounds && delay < RETRY_MAX_MS; i++)
            delay *= 2;
        if (delay > RETRY_MAX_MS)
            delay = RETRY_MAX_MS;
    }
    uv_timer_start(&a->retry_timer, on_retry, delay, 0);
}

typedef void (*post_cb)(struct bo_agent *a, const struct bo_httpc_resp *r, json_t *body);

struct post_ctx {
    struct bo_agent *a;
    post_cb cb;
    struct bo_httpc_call **slot;
};

static void on_post(const struct bo_httpc_resp *r, void *data)
{
    struct post_ctx *ctx = data;
    struct bo_agent *a = ctx->a;
    *ctx->slot = NULL;
    post_cb cb = ctx->cb;
    bool was_poll = ctx->slot == &a->poll_call;
    bo_free(ctx);
    if (r->result == BO_ECANCELED) {
        /* A poll cancelled by a registration that has already been answered
         * would otherwise leave the agent without one. */
        if (was_poll && !a->closing)
            do_poll(a);
        maybe_finish_close(a);
        return;
    }
    json_t *body = NULL;
    if (r->result == BO_OK && r->body_len)
        body = json_loadb(r->body, r->body_len, 0, NULL);
    cb(a, r, body);
    json_decref(body);
}

static int post(struct bo_agent *a, const char *path, json_t *body, unsigned timeout_ms, post_cb cb,
                struct bo_httpc_call **slot)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", base_url(a), path);
    char *text = json_dumps(body, JSON_COMPACT);
    struct post_ctx *ctx = bo_malloc(sizeof(*ctx));
    if (!text || !ctx) {
        free(text);
        bo_free(ctx);
        return BO_ENOMEM;
    }
    *ctx = (struct post_ctx){a, cb, slot};
    struct bo_httpc_opts o = {.method = "POST",
                              .url = url,
                              .body = text,
                              .body_len = strlen(text),
                              .timeout_ms = timeout_ms};
    struct bo_err err = BO_ERR_INIT;
    int rc = bo_httpc_request(a->httpc, &o, on_post, ctx, slot, &err);
    free(text);
    if (rc != BO_OK) {
        bo_free(ctx);
        bo_warn("agent: %s", bo_err_msg(&err, rc));
    }
    return rc;
}

/* What to do with an answer that is not a 200. Returns true if handled. */
static bool redirected(struct bo_agent *a, const struct bo_httpc_resp *r,
                       void (*again)(struct bo_agent *))
{
    if (r->result == BO_OK && (r->status == 307 || r->status == 308) && r->location) {
        learn_leader(a, r->location);
        again(a);
        return true;
    }
    return false;
}

static json_t *tasks_report(struct bo_agent *a)
{
    json_t *arr = json_array();
    struct agent_task *t, *tmp;
    HASH_ITER(hh, a->tasks, t, tmp)
    {
        if (t->terminal && t->nq == 0)
            continue; /* done, and the scheduler knows */
        const char *st = t->last_status[0] ? t->last_status : "STARTING";
        json_array_append_new(arr, json_pack("{s:s, s:s}", "task_id", t->id, "status", st));
    }
    return arr;
}

static void on_registered(struct bo_agent *a, const struct bo_httpc_resp *r, json_t *body)
{
    a->registering = false;
    if (redirected(a, r, try_register))
        return;
    if (r->result != BO_OK || r->status != 200 || !body) {
        char why[256];
        snprintf(why, sizeof(why), "register: %s%s%.120s", r->result == BO_OK ? "HTTP " : r->error,
                 r->result == BO_OK ? "" : "", r->result == BO_OK ? r->body : "");
        if (r->result == BO_OK)
            snprintf(why, sizeof(why), "register: HTTP %u %.160s", r->status, r->body);
        session_lost(a, why);
        return;
    }
    const char *id = NULL, *session = "";
    json_int_t hold = 5000, ack = 0;
    if (json_unpack(body, "{s:s, s?I, s?s, s?I}", "agent_id", &id, "poll_hold_ms", &hold, "session",
                    &session, "ack", &ack) != 0) {
        session_lost(a, "register: answer without an agent id");
        return;
    }
    /* Command numbers belong to the scheduler's session: resume where it
     * says, not where an earlier scheduler left us. */
    snprintf(a->session, sizeof(a->session), "%s", session);
    a->ack = a->batch_seq = ack;
    if (strcmp(id, a->id) != 0) {
        snprintf(a->id, sizeof(a->id), "%s", id);
        struct bo_err err = BO_ERR_INIT;
        struct iovec iov = {.iov_base = a->id, .iov_len = strlen(a->id)};
        int rc = bo_fs_write_atomic(a->work_dir, "agent_id", ".tmp-", &iov, 1, &err);
        if (rc != BO_OK)
            bo_warn("agent: cannot keep the agent id: %s", bo_err_msg(&err, rc));
    }
    if (!a->registered)
        bo_info("agent: registered with %s as '%s' (%zu tasks)", base_url(a), a->id, a->ntasks);
    a->registered = true;
    a->failures = 0;
    a->poll_hold_ms = hold;
    bo_metrics_inc(a->m.registrations, 1);
    do_poll(a);
    maybe_send_status(a);
}

static void try_register(struct bo_agent *a)
{
    if (a->closing || a->registering)
        return;
    if (a->poll_call)
        bo_httpc_cancel(a->poll_call);
    /* Report every task, including those whose updates wait to be sent. */
    struct agent_task *t, *tmp;
    HASH_ITER(hh, a->tasks, t, tmp)
    read_updates(a, t);
    json_t *res =
        json_pack("{s:f, s:I, s:I, s:O}", "cpus", a->cpus, "ram_mb", (json_int_t)a->ram_mb,
                  "disk_mb", (json_int_t)a->disk_mb, "ports", a->ports);
    json_t *body = json_pack("{s:s, s:s, s:o, s:O, s:o, s:s, s:I}", "agent_id", a->id, "host",
                             a->hostname, "resources", res, "attributes", a->attributes, "tasks",
                             tasks_report(a), "session", a->session, "ack", (json_int_t)a->ack);
    a->registering = true;
    if (!body || post(a, "/agent/v1/register", body, CALL_TIMEOUT_MS, on_registered,
                      &a->reg_call) != BO_OK) {
        a->registering = false;
        session_lost(a, "register: cannot build the request");
    }
    json_decref(body);
}

static void batch_done(struct bo_agent *a)
{
    if (a->batch_pending == 0 && a->batch_seq > a->ack) {
        a->ack = a->batch_seq;
    }
    if (a->batch_pending == 0 && a->registered && !a->poll_call && !a->closing)
        do_poll(a);
}

static void on_polled(struct bo_agent *a, const struct bo_httpc_resp *r, json_t *body)
{
    if (redirected(a, r, try_register))
        return;
    if (r->result == BO_OK && r->status == 404) {
        bo_info("agent: the scheduler does not know us: registering again");
        a->registered = false;
        try_register(a);
        return;
    }
    json_t *cmds = body ? json_object_get(body, "commands") : NULL;
    if (r->result != BO_OK || r->status != 200 || !json_is_array(cmds)) {
        char why[256];
        if (r->result == BO_OK)
            snprintf(why, sizeof(why), "poll: HTTP %u %.160s", r->status, r->body);
        else
            snprintf(why, sizeof(why), "poll: %s", r->error);
        session_lost(a, why);
        return;
    }
    a->failures = 0;
    size_t i;
    json_t *cmd;
    int64_t max_seq = a->ack;
    json_array_foreach(cmds, i, cmd)
    {
        json_int_t seq = 0;
        const char *type = NULL, *id = "";
        if (json_unpack(cmd, "{s:I, s:s, s?s}", "seq", &seq, "type", &type, "task_id", &id) != 0) {
            bo_warn("agent: ignoring a malformed command");
            continue;
        }
        if (seq <= a->ack)
            continue; /* already handled, not yet dropped by the scheduler */
        if (seq > max_seq)
            max_seq = seq;
        if (strcmp(type, "launch") == 0)
            launch(a, cmd, seq);
        else if (strcmp(type, "kill") == 0)
            kill_task(a, id);
        else if (strcmp(type, "reconcile") == 0)
            a->registered = false;
        else
            bo_warn("agent: ignoring unknown command '%s'", type);
    }
    a->batch_seq = max_seq;
    if (!a->registered) {
        a->ack = max_seq; /* registering reports everything anyway */
        try_register(a);
        return;
    }
    batch_done(a);
    maybe_send_status(a);
}

static void do_poll(struct bo_agent *a)
{
    if (a->closing || !a->registered || a->poll_call)
        return;
    json_t *body = json_pack("{s:s, s:I}", "agent_id", a->id, "ack", (json_int_t)a->ack);
    if (!body || post(a, "/agent/v1/poll", body, (unsigned)(a->poll_hold_ms + POLL_MARGIN_MS),
                      on_polled, &a->poll_call) != BO_OK)
        session_lost(a, "poll: cannot build the request");
    json_decref(body);
}

/* ---------------------------------------------------- status updates ---- */

struct ack_job {
    uv_work_t w;
    struct bo_agent *a;
    char *dir;
    int64_t seq;
};

static void ack_work(uv_work_t *w)
{
    struct ack_job *j = w->data;
    char text[32];
    int n = snprintf(text, sizeof(text), "%" PRId64 "\n", j->seq);
    struct iovec iov = {.iov_base = text, .iov_len = (size_t)n};
    struct bo_err err = BO_ERR_INIT;
    bo_fs_write_atomic(j->dir, "acked", ".tmp-", &iov, 1, &err);
}

void agent_job_done(struct bo_agent *a)
{
    a->work_pending--;
    maybe_finish_close(a);
}

static void ack_after(uv_work_t *w, int status)
{
    (void)status;
    struct ack_job *j = w->data;
    struct bo_agent *a = j->a;
    bo_free(j->dir);
    bo_free(j);
    agent_job_done(a);
}

static void persist_ack(struct bo_agent *a, struct agent_task *t)
{
    if (t->transient)
        return;
    struct ack_job *j = bo_calloc(1, sizeof(*j));
    if (!j)
        return;
    j->a = a;
    j->dir = bo_strdup(t->dir);
    j->seq = t->acked;
    j->w.data = j;
    if (!j->dir || uv_queue_work(a->loop, &j->w, ack_work, ack_after) != 0) {
        bo_free(j->dir);
        bo_free(j);
        return;
    }
    a->work_pending++;
}

static void cleanup_after_terminal(struct bo_agent *a, struct agent_task *t);

static void on_status(struct bo_agent *a, const struct bo_httpc_resp *r, json_t *body)
{
    (void)body;
    bool ok = r->result == BO_OK && r->status == 200;
    if (!ok && redirected(a, r, try_register)) {
        ok = false;
    } else if (!ok) {
        char why[256];
        if (r->result == BO_OK)
            snprintf(why, sizeof(why), "status: HTTP %u %.160s", r->status, r->body);
        else
            snprintf(why, sizeof(why), "status: %s", r->error);
        if (r->result == BO_OK && r->status == 404) {
            a->registered = false;
            try_register(a);
        } else {
            session_lost(a, why);
        }
    }
    struct agent_task *t, *tmp;
    HASH_ITER(hh, a->tasks, t, tmp)
    {
        if (!t->inflight)
            continue;
        if (ok) {
            t->acked = t->q[t->inflight - 1].seq;
            for (size_t i = 0; i < t->inflight; i++)
                bo_free(t->q[i].message);
            memmove(t->q, t->q + t->inflight, (t->nq - t->inflight) * sizeof(*t->q));
            t->nq -= t->inflight;
            bo_metrics_inc(a->m.updates_acked, t->inflight);
            persist_ack(a, t);
            if (t->terminal && t->nq == 0)
                cleanup_after_terminal(a, t);
        }
        t->inflight = 0;
    }
    if (ok)
        maybe_send_status(a);
}

static void maybe_send_status(struct bo_agent *a)
{
    if (a->closing || !a->registered || a->status_call)
        return;
    a->status_wanted = false;
    json_t *ups = json_array();
    size_t n = 0;
    struct agent_task *t, *tmp;
    HASH_ITER(hh, a->tasks, t, tmp)
    {
        for (size_t i = 0; i < t->nq && n < STATUS_BATCH; i++, n++) {
            struct agent_upd *u = &t->q[i];
            json_array_append_new(ups, json_pack("{s:s, s:s, s:s, s:I}", "task_id", t->id, "status",
                                                 u->status, "message", u->message, "timestamp_ms",
                                                 (json_int_t)u->timestamp_ms));
            t->inflight = i + 1;
        }
    }
    if (n == 0) {
        json_decref(ups);
        return;
    }
    json_t *body = json_pack("{s:s, s:o}", "agent_id", a->id, "updates", ups);
    bo_metrics_inc(a->m.updates_sent, n);
    if (!body ||
        post(a, "/agent/v1/status", body, CALL_TIMEOUT_MS, on_status, &a->status_call) != BO_OK) {
        HASH_ITER(hh, a->tasks, t, tmp)
        t->inflight = 0;
        a->status_wanted = true;
    }
    json_decref(body);
}

/* ------------------------------------------------------------ launch ---- */

struct prep_job {
    uv_work_t w;
    struct bo_agent *a;
    char id[AGENT_TASK_ID_MAX + 1];
    char *dir, *sandbox;
    json_t *task; /* the ScheduledTask, owned */
    int64_t seq;
    uint64_t start_ns;
    /* out */
    int rc;
    struct bo_err err;
    int log_fd;
    char cg_memory[256], cg_cpu[256], cg_unified[256];
};

/* Resources of the task's config, for limits. */
static void task_resources(json_t *task, double *cpus, int64_t *ram_mb, int64_t *disk_mb)
{
    json_t *res = json_object_get(json_object_get(json_object_get(task, "assigned_task"), "task"),
                                  "resources");
    size_t i;
    json_t *r;
    json_array_foreach(res, i, r)
    {
        json_t *v;
        if ((v = json_object_get(r, "num_cpus")))
            *cpus = json_number_value(v);
        else if ((v = json_object_get(r, "ram_mb")))
            *ram_mb = (int64_t)json_number_value(v);
        else if ((v = json_object_get(r, "disk_mb")))
            *disk_mb = (int64_t)json_number_value(v);
    }
}

static const char *task_role(json_t *task)
{
    json_t *job =
        json_object_get(json_object_get(json_object_get(task, "assigned_task"), "task"), "job");
    const char *role = json_string_value(json_object_get(job, "role"));
    return role ? role : "";
}

static int write_json_atomic(const char *dir, const char *name, json_t *doc, struct bo_err *err)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text)
        return bo_errf(err, BO_ENOMEM, "encode '%s': out of memory", name);
    struct iovec iov = {.iov_base = text, .iov_len = strlen(text)};
    int rc = bo_fs_write_atomic(dir, name, ".tmp-", &iov, 1, err);
    free(text);
    return rc;
}

/* On a worker: directories, user, cgroup, task.json, an empty updates file
 * and the executor's log. Reads only the agent's immutable fields. */
static void prep_work(uv_work_t *w)
{
    struct prep_job *j = w->data;
    struct bo_agent *a = j->a;
    struct bo_err *err = &j->err;
    j->log_fd = -1;
    double cpus = 0;
    int64_t ram_mb = 0, disk_mb = 0;
    task_resources(j->task, &cpus, &ram_mb, &disk_mb);
    char user[64] = "";
    uint32_t uid = 0, gid = 0;
    int rc = bo_fs_mkdirs(j->dir, err);
    if (rc == BO_OK)
        rc = bo_fs_mkdirs(j->sandbox, err);
    if (rc == BO_OK && a->cfg.setuid && geteuid() == 0) {
        rc = agent_iso_user(a, task_role(j->task), user, sizeof(user), &uid, &gid, err);
        if (rc == BO_OK && chown(j->sandbox, uid, gid) != 0)
            rc = bo_errf(err, bo_err_from_errno(errno), "chown '%s': %s", j->sandbox,
                         strerror(errno));
    }
    if (rc == BO_OK && a->cg_available)
        rc = agent_iso_prepare(a, j->id, cpus, ram_mb << 20, j->cg_memory, j->cg_cpu, j->cg_unified,
                               sizeof(j->cg_memory), err);
    if (rc == BO_OK) {
        json_t *doc = json_pack(
            "{s:O, s:s, s:s, s:s, s:{s:I, s:I, s:f}, s:{s:s, s:s, s:s}, s:s, s:I, s:I}", "task",
            j->task, "sandbox", j->sandbox, "hostname", a->hostname, "user", user, "limits",
            "ram_bytes", (json_int_t)(ram_mb << 20), "disk_bytes", (json_int_t)(disk_mb << 20),
            "cpus", cpus, "cgroups", "memory", j->cg_memory, "cpu", j->cg_cpu, "unified",
            j->cg_unified, "memory_enforcement", a->cg_available ? "cgroup" : "sampling",
            "disk_check_interval_ms", (json_int_t)a->cfg.disk_check_interval_ms, "stop_timeout_ms",
            (json_int_t)a->cfg.stop_timeout_ms);
        if (doc && user[0]) {
            json_object_set_new(doc, "uid", json_integer(uid));
            json_object_set_new(doc, "gid", json_integer(gid));
        }
        rc = doc ? write_json_atomic(j->dir, "task.json", doc, err)
                 : bo_errf(err, BO_ENOMEM, "task.json: out of memory");
        json_decref(doc);
    }
    if (rc == BO_OK) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/updates", j->dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            rc = bo_errf(err, bo_err_from_errno(errno), "create '%s': %s", path, strerror(errno));
        else
            close(fd);
    }
    if (rc == BO_OK) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/executor.log", j->dir);
        j->log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (j->log_fd < 0)
            rc = bo_errf(err, bo_err_from_errno(errno), "create '%s': %s", path, strerror(errno));
    }
    j->rc = rc;
}

static void on_exec_exit(uv_process_t *p, int64_t exit_status, int term_signal);
static void executor_gone(struct bo_agent *a, struct agent_task *t, const char *why);
static void handle_closed(uv_handle_t *h);

/* <dir>/executor.pid: "pid starttime", so a later agent can tell the
 * executor from a process that got its pid recycled. Not fsynced: it only
 * has to survive the agent, not the machine (a reboot ends executors too). */
static uint64_t proc_starttime(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    /* fields after the command: state is field 3, starttime field 22 */
    int field = 2;
    for (p++; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    return strtoull(p, NULL, 10);
}

static void write_pidfile(struct agent_task *t)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/.executor.pid.tmp", t->dir);
    snprintf(path, sizeof(path), "%s/executor.pid", t->dir);
    FILE *f = fopen(tmp, "we");
    if (!f)
        return;
    fprintf(f, "%d %" PRIu64 "\n", t->pid, proc_starttime(t->pid));
    if (fclose(f) == 0)
        rename(tmp, path);
}

static void spawn_executor(struct bo_agent *a, struct agent_task *t, int log_fd)
{
    char *args[] = {(char *)"borealis-executor", (char *)"--task-dir", t->dir, NULL};
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = log_fd},
        {.flags = UV_INHERIT_FD, .data.fd = log_fd},
    };
    uv_process_options_t o = {
        .exit_cb = on_exec_exit,
        .file = a->cfg.executor_path,
        .args = args,
        .flags = UV_PROCESS_DETACHED,
        .stdio_count = 3,
        .stdio = stdio,
    };
    t->proc.data = t;
    int rc = uv_spawn(a->loop, &t->proc, &o);
    if (rc != 0) {
        char msg[512];
        snprintf(msg, sizeof(msg), "launch failed: cannot start '%s': %s", a->cfg.executor_path,
                 uv_strerror(rc));
        /* uv_spawn initialized the handle even on failure: close it. */
        t->closing++, t->a->task_closes++;
        uv_close((uv_handle_t *)&t->proc, handle_closed);
        t->phase = PHASE_EXITED;
        append_update(a, t, "FAILED", msg);
        return;
    }
    t->proc_open = true;
    t->pid = t->proc.pid;
    t->phase = PHASE_RUNNING;
    /* Executors outlive the agent: the loop must not wait for them. */
    uv_unref((uv_handle_t *)&t->proc);
    write_pidfile(t);
    if (t->kill_requested) {
        kill(t->pid, SIGTERM);
        arm_kill_timer(a, t);
    }
}

static void on_updates_changed(uv_fs_event_t *h, const char *file, int events, int status)
{
    (void)file;
    (void)events;
    (void)status;
    struct agent_task *t = h->data;
    struct bo_agent *a = t->a;
    read_updates(a, t);
    maybe_send_status(a);
}

static void watch_updates(struct bo_agent *a, struct agent_task *t)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/updates", t->dir);
    if (uv_fs_event_init(a->loop, &t->watch) != 0)
        return;
    t->watch.data = t;
    if (uv_fs_event_start(&t->watch, on_updates_changed, path, 0) != 0) {
        t->closing++, t->a->task_closes++;
        uv_close((uv_handle_t *)&t->watch, handle_closed);
        return; /* the one-second sweep still reads it */
    }
    t->watch_open = true;
}

static void prep_after(uv_work_t *w, int status)
{
    struct prep_job *j = w->data;
    struct bo_agent *a = j->a;
    struct agent_task *t = agent_task_find(a, j->id);
    bo_metrics_observe(a->m.launch_prep_ms, (double)(uv_hrtime() - j->start_ns) / 1e6);
    if (t && status == 0 && !a->closing) {
        snprintf(t->cg_memory, sizeof(t->cg_memory), "%s", j->cg_memory);
        snprintf(t->cg_cpu, sizeof(t->cg_cpu), "%s", j->cg_cpu);
        snprintf(t->cg_unified, sizeof(t->cg_unified), "%s", j->cg_unified);
        if (j->rc == BO_OK) {
            watch_updates(a, t);
            spawn_executor(a, t, j->log_fd);
        } else {
            char msg[600];
            snprintf(msg, sizeof(msg), "launch failed: %s", bo_err_msg(&j->err, j->rc));
            bo_warn("agent: task '%s': %s", t->id, msg);
            t->phase = PHASE_EXITED;
            struct stat st;
            if (stat(t->dir, &st) != 0)
                t->transient = true;
            append_update(a, t, "FAILED", msg);
            cleanup_after_terminal(a, t);
        }
    }
    if (j->log_fd >= 0)
        close(j->log_fd);
    json_decref(j->task);
    bo_free(j->dir);
    bo_free(j->sandbox);
    bo_free(j);
    a->batch_pending--;
    agent_job_done(a);
    batch_done(a);
    maybe_send_status(a);
}

static void launch(struct bo_agent *a, json_t *cmd, int64_t seq)
{
    const char *id = json_string_value(json_object_get(cmd, "task_id"));
    json_t *task = json_object_get(cmd, "task");
    if (!id || agent_task_find(a, id))
        return; /* at least once: a launch we have is done */
    if (!valid_task_id(id) || !json_is_object(task)) {
        /* Never a path: answer from memory so the scheduler need not wait
         * for its transient timeout. */
        bo_warn("agent: refusing a launch with a bad task id or no task");
        struct agent_task *bad = strlen(id) <= AGENT_TASK_ID_MAX ? task_new(a, id) : NULL;
        if (bad) {
            bad->phase = PHASE_EXITED;
            bad->transient = true;
            append_update(a, bad, "FAILED",
                          valid_task_id(id)
                              ? "launch refused: the command carries no task"
                              : "launch refused: the task id is not a safe file name");
        }
        return;
    }
    struct agent_task *t = task_new(a, id);
    struct prep_job *j = bo_calloc(1, sizeof(*j));
    if (!t || !j) {
        bo_free(j);
        bo_error("agent: out of memory launching '%s'", id);
        return;
    }
    bo_metrics_inc(a->m.launches, 1);
    t->phase = PHASE_PREPARING;
    t->launched_ms = agent_now_ms();
    snprintf(t->last_status, sizeof(t->last_status), "ASSIGNED");
    j->a = a;
    snprintf(j->id, sizeof(j->id), "%s", id);
    j->dir = bo_strdup(t->dir);
    j->sandbox = bo_strdup(t->sandbox);
    j->task = json_incref(task);
    j->seq = seq;
    j->start_ns = uv_hrtime();
    j->w.data = j;
    j->log_fd = -1;
    if (!j->dir || !j->sandbox || uv_queue_work(a->loop, &j->w, prep_work, prep_after) != 0) {
        json_decref(j->task);
        bo_free(j->dir);
        bo_free(j->sandbox);
        bo_free(j);
        t->phase = PHASE_EXITED;
        t->transient = true;
        append_update(a, t, "FAILED", "launch failed: out of memory");
        return;
    }
    a->work_pending++;
    a->batch_pending++;
}

/* -------------------------------------------------------------- kill ---- */

static void on_kill_timeout(uv_timer_t *h)
{
    struct agent_task *t = h->data;
    if (t->phase == PHASE_RUNNING && t->pid > 0) {
        bo_warn("agent: task '%s': executor did not stop in time: SIGKILL", t->id);
        kill(t->pid, SIGKILL);
    }
}

static void kill_task(struct bo_agent *a, const char *id)
{
    struct agent_task *t = agent_task_find(a, id);
    bo_metrics_inc(a->m.kills, 1);
    if (!t) {
        /* Nothing here: say so, so the scheduler need not wait for a
         * timeout. Kept in memory until acknowledged. */
        if (!valid_task_id(id) || !(t = task_new(a, id)))
            return;
        t->phase = PHASE_EXITED;
        t->transient = true;
        append_update(a, t, "LOST", "the task is not on this agent");
        return;
    }
    if (t->terminal) {
        if (t->nq == 0) {
            /* acknowledged long ago: say it again */
            append_update(a, t, t->last_status, "the task already ended");
        }
        return;
    }
    t->kill_requested = true;
    if (t->phase != PHASE_RUNNING)
        return; /* preparing: killed as soon as it is spawned */
    kill(t->pid, SIGTERM);
    arm_kill_timer(a, t);
}

/* SIGKILL the executor if it has not ended stop_timeout + grace from now. */
static void arm_kill_timer(struct bo_agent *a, struct agent_task *t)
{
    if (!t->kill_timer_open) {
        uv_timer_init(a->loop, &t->kill_timer);
        t->kill_timer.data = t;
        t->kill_timer_open = true;
    }
    if (!uv_is_active((uv_handle_t *)&t->kill_timer))
        uv_timer_start(&t->kill_timer, on_kill_timeout,
                       (uint64_t)(a->cfg.stop_timeout_ms + KILL_GRACE_MS), 0);
}

/* ------------------------------------------------- executors that end ---- */

struct clean_job {
    uv_work_t w;
    struct bo_agent *a;
    char id[AGENT_TASK_ID_MAX + 1];
    int pid;
    char cg_memory[256], cg_cpu[256], cg_unified[256];
};

static void clean_work(uv_work_t *w)
{
    struct clean_job *j = w->data;
    agent_iso_cleanup(j->a, j->id, j->pid, j->cg_memory, j->cg_cpu, j->cg_unified);
}

static void clean_after(uv_work_t *w, int status)
{
    (void)status;
    struct clean_job *j = w->data;
    struct bo_agent *a = j->a;
    bo_free(j);
    agent_job_done(a);
}

/* Kill whatever the task left behind and drop its cgroup, once. */
static void cleanup_after_terminal(struct bo_agent *a, struct agent_task *t)
{
    if (t->phase == PHASE_RUNNING ||
        (!t->cg_memory[0] && !t->cg_cpu[0] && !t->cg_unified[0] && t->pid <= 0))
        return;
    struct clean_job *j = bo_calloc(1, sizeof(*j));
    if (!j)
        return;
    j->a = a;
    snprintf(j->id, sizeof(j->id), "%s", t->id);
    j->pid = t->pid;
    memcpy(j->cg_memory, t->cg_memory, sizeof(j->cg_memory));
    memcpy(j->cg_cpu, t->cg_cpu, sizeof(j->cg_cpu));
    memcpy(j->cg_unified, t->cg_unified, sizeof(j->cg_unified));
    t->cg_memory[0] = t->cg_cpu[0] = t->cg_unified[0] = '\0';
    t->pid = 0;
    j->w.data = j;
    if (uv_queue_work(a->loop, &j->w, clean_work, clean_after) != 0) {
        bo_free(j);
        return;
    }
    a->work_pending++;
}

static void executor_gone(struct bo_agent *a, struct agent_task *t, const char *why)
{
    if (t->phase != PHASE_RUNNING)
        return;
    t->phase = PHASE_EXITED;
    if (t->kill_timer_open)
        uv_timer_stop(&t->kill_timer);
    if (t->timer_open)
        uv_timer_stop(&t->timer);
    read_updates(a, t);
    if (!t->terminal) {
        char msg[300];
        if (t->kill_requested) {
            snprintf(msg, sizeof(msg), "killed by request (the executor %s)", why);
            append_update(a, t, "KILLED", msg);
        } else {
            snprintf(msg, sizeof(msg), "the executor %s before the task ended", why);
            bo_warn("agent: task '%s': %s", t->id, msg);
            bo_metrics_inc(a->m.executor_lost, 1);
            append_update(a, t, "LOST", msg);
        }
    }
    cleanup_after_terminal(a, t);
    maybe_send_status(a);
}

static void on_exec_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    struct agent_task *t = p->data;
    struct bo_agent *a = t->a;
    char why[64];
    if (term_signal)
        snprintf(why, sizeof(why), "was killed by signal %d", term_signal);
    else
        snprintf(why, sizeof(why), "exited with status %" PRId64, exit_status);
    t->proc_open = false;
    t->closing++, t->a->task_closes++;
    uv_close((uv_handle_t *)p, handle_closed);
    executor_gone(a, t, why);
}

static void on_pidfd(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct agent_task *t = h->data;
    struct bo_agent *a = t->a;
    t->pidfd_open = false;
    t->closing++, t->a->task_closes++;
    uv_close((uv_handle_t *)h, handle_closed);
    close(t->pidfd);
    t->pidfd = -1;
    executor_gone(a, t, "ended (it was re-attached after an agent restart)");
}

/* Without pidfd (old kernels): look once a second. */
static void on_liveness(uv_timer_t *h)
{
    struct agent_task *t = h->data;
    struct bo_agent *a = t->a;
    if (t->phase == PHASE_RUNNING && t->pid > 0 && kill(t->pid, 0) != 0 && errno == ESRCH) {
        uv_timer_stop(h);
        executor_gone(a, t, "ended (it was re-attached after an agent restart)");
    }
}

/* ------------------------------------------------ restart: re-attach ---- */

static int64_t read_int_file(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "re");
    long long v = 0;
    if (f) {
        if (fscanf(f, "%lld", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v;
}

static void attach(struct bo_agent *a, struct agent_task *t)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/executor.pid", t->dir);
    FILE *f = fopen(path, "re");
    int pid = 0;
    unsigned long long start = 0;
    if (f) {
        if (fscanf(f, "%d %llu", &pid, &start) != 2)
            pid = 0;
        fclose(f);
    }
    t->phase = PHASE_RUNNING; /* until proven otherwise */
    if (pid <= 0 || kill(pid, 0) != 0 || proc_starttime(pid) != start) {
        t->pid = 0;
        executor_gone(a, t,
                      pid > 0 ? "ended while the agent was away"
                              : "never started (the agent stopped while launching)");
        return;
    }
    t->pid = pid;
    /* The cgroup it was given, for the clean-up when it ends. */
    char tj[PATH_MAX];
    snprintf(tj, sizeof(tj), "%s/task.json", t->dir);
    json_t *doc = json_load_file(tj, 0, NULL);
    json_t *cg = json_object_get(doc, "cgroups");
    const char *v;
    if ((v = json_string_value(json_object_get(cg, "memory"))))
        snprintf(t->cg_memory, sizeof(t->cg_memory), "%s", v);
    if ((v = json_string_value(json_object_get(cg, "cpu"))))
        snprintf(t->cg_cpu, sizeof(t->cg_cpu), "%s", v);
    if ((v = json_string_value(json_object_get(cg, "unified"))))
        snprintf(t->cg_unified, sizeof(t->cg_unified), "%s", v);
    json_decref(doc);
    watch_updates(a, t);
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0 && uv_poll_init(a->loop, &t->pidfd_poll, fd) == 0) {
        t->pidfd = fd;
        t->pidfd_poll.data = t;
        t->pidfd_open = true;
        uv_poll_start(&t->pidfd_poll, UV_READABLE, on_pidfd);
        uv_unref((uv_handle_t *)&t->pidfd_poll);
    } else {
        if (fd >= 0)
            close(fd);
        uv_timer_init(a->loop, &t->timer);
        t->timer.data = t;
        t->timer_open = true;
        uv_timer_start(&t->timer, on_liveness, 1000, 1000);
        uv_unref((uv_handle_t *)&t->timer);
    }
    bo_info("agent: task '%s': re-attached to its executor (pid %d)", t->id, pid);
}

/* Every <work>/tasks/<id> left by an earlier agent. */
static int load_tasks(struct bo_agent *a, struct bo_err *err)
{
    DIR *d = opendir(a->tasks_dir);
    if (!d)
        return bo_errf(err, bo_err_from_errno(errno), "open '%s': %s", a->tasks_dir,
                       strerror(errno));
    struct dirent *e;
    size_t running = 0, ended = 0;
    while ((e = readdir(d))) {
        if (!valid_task_id(e->d_name))
            continue;
        struct agent_task *t = task_new(a, e->d_name);
        if (!t) {
            closedir(d);
            return bo_errf(err, BO_ENOMEM, "load tasks: out of memory");
        }
        t->acked = read_int_file(t->dir, "acked");
        read_updates(a, t);
        if (t->terminal) {
            t->phase = PHASE_EXITED;
            struct stat st;
            char path[PATH_MAX];
            snprintf(path, sizeof(path), "%s/updates", t->dir);
            if (stat(path, &st) == 0)
                t->terminal_ms = (int64_t)st.st_mtime * 1000;
            /* Its cgroup, if the old agent had not removed it yet. */
            snprintf(t->cg_memory, sizeof(t->cg_memory), "%s", "");
            ended++;
            continue;
        }
        attach(a, t);
        running++;
    }
    closedir(d);
    if (running + ended)
        bo_info("agent: found %zu running and %zu finished tasks in '%s'", running, ended,
                a->tasks_dir);
    if (a->cg_available) {
        /* Groups of tasks that ended while no agent watched them. */
        const char **live = bo_calloc(a->ntasks + 1, sizeof(char *));
        size_t n = 0;
        struct agent_task *t, *tmp;
        HASH_ITER(hh, a->tasks, t, tmp)
        if (t->phase == PHASE_RUNNING)
            live[n++] = t->id;
        size_t removed = 0;
        struct bo_err cerr = BO_ERR_INIT;
        int rc = live ? bo_cg_remove_stale(&a->cg, live, n, &removed, &cerr) : BO_ENOMEM;
        if (rc != BO_OK)
            bo_warn("agent: removing stale cgroups: %s", bo_err_msg(&cerr, rc));
        else if (removed)
            bo_info("agent: removed %zu cgroups of tasks that ended", removed);
        bo_free(live);
    }
    return BO_OK;
}

/* -------------------------------------------------- periodic: sweep, GC ---- */

struct gc_job {
    uv_work_t w;
    struct bo_agent *a;
    char *dir, *sandbox;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void gc_work(uv_work_t *w)
{
    struct gc_job *j = w->data;
    nftw(j->sandbox, rm_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    nftw(j->dir, rm_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static void gc_after(uv_work_t *w, int status)
{
    (void)status;
    struct gc_job *j = w->data;
    struct bo_agent *a = j->a;
    bo_free(j->dir);
    bo_free(j->sandbox);
    bo_free(j);
    agent_job_done(a);
}

static void task_remove(struct bo_agent *a, struct agent_task *t)
{
    HASH_DEL(a->tasks, t);
    a->ntasks--;
    t->removing = true;
    if (t->watch_open) {
        t->watch_open = false;
        t->closing++, t->a->task_closes++;
        uv_close((uv_handle_t *)&t->watch, handle_closed);
    }
    if (t->kill_timer_open) {
        t->kill_timer_open = false;
        t->closing++, t->a->task_closes++;
        uv_close((uv_handle_t *)&t->kill_timer, handle_closed);
    }
    if (t->timer_open) {
        t->timer_open = false;
        t->closing++, t->a->task_closes++;
        uv_close((uv_handle_t *)&t->timer, handle_closed);
    }
    if (t->closing == 0)
        task_free(t);
}

static void gc(struct bo_agent *a, int64_t now)
{
    struct agent_task *t, *tmp;
    HASH_ITER(hh, a->tasks, t, tmp)
    {
        if (!t->terminal || t->nq || t->phase == PHASE_RUNNING ||
            now - t->terminal_ms < a->cfg.sandbox_retention_ms)
            continue;
        if (!t->transient) {
            struct gc_job *j = bo_calloc(1, sizeof(*j));
            if (!j)
                return;
            j->a = a;
            j->dir = bo_strdup(t->dir);
            j->sandbox = bo_strdup(t->sandbox);
            j->w.data = j;
            if (!j->dir || !j->sandbox || uv_queue_work(a->loop, &j->w, gc_work, gc_after) != 0) {
                bo_free(j->dir);
                bo_free(j->sandbox);
                bo_free(j);
                return;
            }
            a->work_pending++;
        }
        task_remove(a, t);
    }
}

static void on_tick(uv_timer_t *h)
{
    struct bo_agent *a = h->data;
    size_t running = 0;
    struct agent_task *t, *tmp;
    HASH_ITER(hh, a->tasks, t, tmp)
    {
        if (!t->terminal)
            read_updates(a, t);
        if (t->phase == PHASE_RUNNING)
            running++;
    }
    bo_metrics_set_int(a->m.tasks_running, (int64_t)running);
    bo_metrics_set_int(a->m.tasks_known, (int64_t)a->ntasks);
    gc(a, agent_now_ms());
    if (a->status_wanted)
        maybe_send_status(a);
}

/* ------------------------------------------------------ start and close ---- */

static void handle_closed(uv_handle_t *h)
{
    struct agent_task *t = h->data;
    struct bo_agent *a = t->a;
    t->closing--;
    a->task_closes--;
    if (t->removing && t->closing == 0)
        task_free(t);
    maybe_finish_close(a);
}

static int register_metrics(struct bo_agent *a, struct bo_err *err)
{
    struct {
        enum bo_metric_type type;
        const char *name, *help;
        struct bo_metrics_series **slot;
    } defs[] = {
        {BO_METRIC_COUNTER, "agent_registrations_total", "successful registrations",
         &a->m.registrations},
        {BO_METRIC_COUNTER, "agent_launches_total", "launch commands taken", &a->m.launches},
        {BO_METRIC_COUNTER, "agent_kills_total", "kill commands taken", &a->m.kills},
        {BO_METRIC_COUNTER, "agent_status_updates_sent_total", "status updates sent",
         &a->m.updates_sent},
        {BO_METRIC_COUNTER, "agent_status_updates_acked_total",
         "status updates acknowledged by the scheduler", &a->m.updates_acked},
        {BO_METRIC_COUNTER, "agent_executors_lost_total",
         "executors that ended without a final status", &a->m.executor_lost},
        {BO_METRIC_COUNTER, "agent_scheduler_call_errors_total", "failed calls to the scheduler",
         &a->m.call_errors},
        {BO_METRIC_GAUGE_INT, "agent_tasks_running", "tasks with a live executor",
         &a->m.tasks_running},
        {BO_METRIC_GAUGE_INT, "agent_tasks_known", "tasks the agent keeps (live and ended)",
         &a->m.tasks_known},
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        struct bo_metric *m;
        struct bo_metric_desc d = {defs[i].type, defs[i].name, defs[i].help, NULL, 0};
        int rc = bo_metrics_register(a->cfg.metrics, &d, &m, err);
        if (rc != BO_OK)
            return rc;
        *defs[i].slot = bo_metrics_series(m, NULL, 0);
        if (!*defs[i].slot)
            return bo_errf(err, BO_ENOMEM, "metrics: out of memory");
    }
    static const double buckets[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
    struct bo_metric *m;
    struct bo_metric_desc d = {BO_METRIC_HISTOGRAM, "agent_launch_prepare_ms",
                               "milliseconds to prepare a sandbox before spawning the executor",
                               NULL, 0};
    d.bounds = buckets;
    d.n_bounds = sizeof(buckets) / sizeof(buckets[0]);
    int rc = bo_metrics_register(a->cfg.metrics, &d, &m, err);
    if (rc != BO_OK)
        return rc;
    a->m.launch_prep_ms = bo_metrics_series(m, NULL, 0);
    return a->m.launch_prep_ms ? BO_OK : bo_errf(err, BO_ENOMEM, "metrics: out of memory");
}

static int load_agent_id(struct bo_agent *a, struct bo_err *err)
{
    char id[BO_HOST_AGENT_ID_MAX + 1];
    int rc = bo_host_agent_id(a->work_dir, id, err);
    if (rc != BO_OK)
        return bo_err_wrapf(err, rc, "agent id");
    snprintf(a->id, sizeof(a->id), "%s", id);
    return BO_OK;
}

int bo_agent_start(uv_loop_t *loop, const struct bo_agent_config *cfg, struct bo_agent **out,
                   struct bo_err *err)
{
    if (!cfg->work_dir || !cfg->n_schedulers || !cfg->executor_path || !cfg->metrics)
        return bo_errf(err, BO_EINVAL,
                       "agent: work dir, scheduler, executor path and metrics are required");
    struct bo_agent *a = bo_calloc(1, sizeof(*a));
    if (!a)
        return bo_errf(err, BO_ENOMEM, "agent: out of memory");
    a->loop = loop;
    a->cfg = *cfg;
    int rc = BO_ENOMEM;
    a->work_dir = bo_strdup(cfg->work_dir);
    a->tasks_dir = a->work_dir ? path2(a->work_dir, "tasks") : NULL;
    a->sandboxes_dir = a->work_dir ? path2(a->work_dir, "sandboxes") : NULL;
    a->schedulers = bo_calloc(cfg->n_schedulers, sizeof(char *));
    if (!a->tasks_dir || !a->sandboxes_dir || !a->schedulers)
        goto err_free;
    a->n_schedulers = cfg->n_schedulers;
    for (size_t i = 0; i < cfg->n_schedulers; i++) {
        size_t n = strlen(cfg->schedulers[i]);
        while (n && cfg->schedulers[i][n - 1] == '/')
            n--;
        if (!(a->schedulers[i] = bo_strndup(cfg->schedulers[i], n)))
            goto err_free;
    }
    if ((rc = bo_fs_mkdirs(a->tasks_dir, err)) != BO_OK ||
        (rc = bo_fs_mkdirs(a->sandboxes_dir, err)) != BO_OK)
        goto err_free;
    if (cfg->hostname)
        snprintf(a->hostname, sizeof(a->hostname), "%s", cfg->hostname);
    else if (gethostname(a->hostname, sizeof(a->hostname) - 1) != 0)
        snprintf(a->hostname, sizeof(a->hostname), "localhost");
    a->attributes = cfg->attributes ? json_incref(cfg->attributes) : json_object();
    a->ports = cfg->ports ? json_incref(cfg->ports) : json_pack("[[ii]]", 31000, 32000);
    if (!a->attributes || !a->ports) {
        rc = bo_errf(err, BO_ENOMEM, "agent: out of memory");
        goto err_free;
    }
    if ((rc = agent_iso_init(a, err)) != BO_OK)
        goto err_free;
    if ((rc = load_agent_id(a, err)) != BO_OK)
        goto err_free;
    if ((rc = register_metrics(a, err)) != BO_OK)
        goto err_free;
    if ((rc = bo_httpc_new(loop, &a->httpc, err)) != BO_OK)
        goto err_free;
    uv_timer_init(loop, &a->retry_timer);
    uv_timer_init(loop, &a->tick);
    a->retry_timer.data = a->tick.data = a;
    a->open_handles = 3; /* the two timers and the client */
    if ((rc = load_tasks(a, err)) != BO_OK)
        goto err_close;
    if (cfg->listen && (rc = agent_observer_start(a, err)) != BO_OK)
        goto err_close;
    uv_timer_start(&a->tick, on_tick, TICK_MS, TICK_MS);
    bo_info("agent: %s; %.2f cpus, %" PRId64 " MiB ram, %" PRId64 " MiB disk; %s", a->hostname,
            a->cpus, a->ram_mb, a->disk_mb, a->isolation_note);
    try_register(a);
    *out = a;
    return BO_OK;

err_close:
    /* Handles exist: close them; the agent frees itself once the loop has
     * run their close callbacks. */
    a->free_on_close = true;
    bo_agent_close(a, NULL, NULL);
    return rc;

err_free:
    json_decref(a->user_map);
    json_decref(a->attributes);
    json_decref(a->ports);
    for (size_t i = 0; a->schedulers && i < a->n_schedulers; i++)
        bo_free(a->schedulers[i]);
    bo_free(a->schedulers);
    bo_free(a->work_dir);
    bo_free(a->tasks_dir);
    bo_free(a->sandboxes_dir);
    bo_free(a);
    if (rc == BO_ENOMEM && !err->msg[0])
        bo_errf(err, rc, "agent: out of memory");
    return rc;
}

static void timer_closed(uv_handle_t *h)
{
    struct bo_agent *a = h->data;
    a->open_handles--;
    maybe_finish_close(a);
}

static void httpc_closed(struct bo_httpc *c, void *data)
{
    (void)c;
    struct bo_agent *a = data;
    a->open_handles--;
    maybe_finish_close(a);
}

void agent_observer_closed(struct bo_agent *a)
{
    a->open_handles--;
    maybe_finish_close(a);
}

static void maybe_finish_close(struct bo_agent *a)
{
    if (!a->closing || a->open_handles || a->task_closes || a->work_pending || a->finished)
        return;
    a->finished = true;
    if (a->close_cb)
        a->close_cb(a, a->close_data);
    if (a->free_on_close)
        bo_agent_free(a);
}

void bo_agent_close(struct bo_agent *a, bo_agent_close_cb cb, void *data)
{
    a->closing = true;
    a->close_cb = cb;
    a->close_data = data;
    uv_close((uv_handle_t *)&a->retry_timer, timer_closed);
    uv_close((uv_handle_t *)&a->tick, timer_closed);
    if (a->http)
        agent_observer_close(a);
    /* Cancels the calls in flight; their callbacks see BO_ECANCELED. */
    bo_httpc_close(a->httpc, httpc_closed, a);
    struct agent_task *t, *tmp;
    HASH_ITER(hh, a->tasks, t, tmp)
    {
        if (t->proc_open) {
            t->proc_open = false;
            t->closing++, a->task_closes++;
            uv_close((uv_handle_t *)&t->proc, handle_closed);
        }
        if (t->pidfd_open) {
            t->pidfd_open = false;
            t->closing++, a->task_closes++;
            uv_close((uv_handle_t *)&t->pidfd_poll, handle_closed);
            close(t->pidfd);
            t->pidfd = -1;
        }
        task_remove(a, t);
    }
    maybe_finish_close(a);
}

void bo_agent_free(struct bo_agent *a)
{
    if (!a)
        return;
    bo_httpc_free(a->httpc);
    if (a->http)
        bo_http_free(a->http);
    json_decref(a->attributes);
    json_decref(a->ports);
    json_decref(a->user_map);
    for (size_t i = 0; i < a->n_schedulers; i++)
        bo_free(a->schedulers[i]);
    bo_free(a->schedulers);
    bo_free(a->work_dir);
    bo_free(a->tasks_dir);
    bo_free(a->sandboxes_dir);
    bo_free(a);
}
