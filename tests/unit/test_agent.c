/* Unit tests for src/agent (agent.c, observer.c): the agent runs in the
 * test's own uv loop against a scripted scheduler, a real bo_http server on
 * loopback in the same loop, whose handler answers /agent/v1/register, poll
 * and status as each test scripts it (hold polls, queue commands, answer
 * 503/307/404 on demand) and records every request body. Executors are a
 * small shell script written into the test's temporary directory: it appends
 * STARTING and RUNNING to <task dir>/updates, loops, and on SIGTERM appends
 * KILLED and exits 0.
 *
 * Every wait is bounded by a timer; teardown closes the agent, kills the
 * executors still alive (their pids are in <task dir>/executor.pid), closes
 * every handle and checks that uv_loop_close returns 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>
#include <uv.h>

#include "agent/agent.h"
#include "common/err.h"
#include "common/http.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/metrics.h"

#define WAIT_MS  5000 /* any single wait */
#define QUIET_MS 1300 /* "nothing more happens": longer than the agent's 1 s sweep */

/* ------------------------------------------------- the fake executor ---- */

static const char FAKE_EXECUTOR[] =
    "#!/bin/sh\n"
    "# fake borealis-executor written by test_agent\n"
    "dir=\n"
    "while [ $# -gt 0 ]; do\n"
    "  case \"$1\" in\n"
    "    --task-dir) dir=\"$2\"; shift 2 ;;\n"
    "    *) shift ;;\n"
    "  esac\n"
    "done\n"
    "[ -n \"$dir\" ] || exit 2\n"
    "echo $$ >> \"$dir/runs\"\n"
    "seq=0\n"
    "emit() {\n"
    "  seq=$((seq + 1))\n"
    "  printf '{\"seq\":%d,\"status\":\"%s\",\"message\":\"%s\"}\\n' \"$seq\" \"$1\" \"$2\" "
    ">> \"$dir/updates\"\n"
    "}\n"
    "trap 'emit KILLED \"fake: got SIGTERM\"; exit 0' TERM\n"
    "emit STARTING \"fake: starting\"\n"
    "sleep 0.05\n"
    "emit RUNNING \"fake: running\"\n"
    "while :; do\n"
    "  sleep 0.05 &\n"
    "  wait $!\n"
    "done\n";

/* ------------------------------------------------ the scripted scheduler ---- */

struct fx;

struct sched {
    struct fx *fx;
    struct bo_http_server *srv;
    char url[64];
    bool closed;

    /* script */
    char assign_id[64];       /* register: answer with this id instead of the agent's */
    char redirect[128];       /* register and poll: 307 with this Location */
    int fail_status;          /* answer the next N /status with 503 */
    json_t *cmds;             /* queued commands, dropped by the poll's ack */
    int64_t next_seq;         /* of the next queued command */
    struct bo_http_req *held; /* the parked poll */
    const char *check_path;   /* on a poll acknowledging something: does it exist? */
    int check_path_result;    /* -1 unchecked, 0 missing, 1 there */

    /* record */
    json_t *regs;  /* register bodies */
    json_t *polls; /* poll bodies */
    json_t *stats; /* {"code": answered, "epoch": fx->epoch, "body": ...} */
};

struct fx {
    uv_loop_t loop;
    char tmp[64];   /* mkdtemp */
    char work[128]; /* <tmp>/work, the agent's work dir */
    char exec_path[128];
    struct sched s[2];
    const char *urls[2];
    json_t *attrs, *ports;
    struct bo_agent_config cfg;
    struct bo_metrics *metrics;
    struct bo_agent *agent;
    bool agent_closed;
    int epoch; /* agent instances started so far, minus one */
    struct bo_httpc *c;
    bool c_closed;
    uv_timer_t wait_timer;
    bool expired;
};

static void respond_json(struct bo_http_req *req, unsigned code, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    bo_http_respond(req, code, "application/json", text, text ? strlen(text) : 0);
    free(text);
}

static void answer_poll(struct sched *s, struct bo_http_req *req)
{
    respond_json(req, 200, json_pack("{s:O}", "commands", s->cmds));
}

static void sched_handler(struct bo_http_req *req, void *data)
{
    struct sched *s = data;
    const char *path = bo_http_path(req);
    size_t len;
    const char *text = bo_http_body(req, &len);
    json_t *body = json_loadb(text, len, 0, NULL);
    if (!body)
        body = json_pack("{s:s}", "unparsable", text);

    if (strcmp(path, "/agent/v1/register") == 0) {
        json_array_append(s->regs, body);
        if (s->redirect[0]) {
            bo_http_set_header(req, "Location", s->redirect);
            bo_http_respond(req, 307, NULL, NULL, 0);
        } else {
            const char *id = s->assign_id[0] ? s->assign_id
                                             : json_string_value(json_object_get(body, "agent_id"));
            respond_json(req, 200,
                         json_pack("{s:s, s:i, s:i}", "agent_id", id ? id : "agent-sched",
                                   "poll_hold_ms", 5000, "timeout_ms", 15000));
        }
    } else if (strcmp(path, "/agent/v1/poll") == 0) {
        json_array_append(s->polls, body);
        json_int_t ack = json_integer_value(json_object_get(body, "ack"));
        if (ack > 0 && s->check_path && s->check_path_result < 0) {
            struct stat st;
            s->check_path_result = stat(s->check_path, &st) == 0;
        }
        if (s->redirect[0]) {
            bo_http_set_header(req, "Location", s->redirect);
            bo_http_respond(req, 307, NULL, NULL, 0);
        } else {
            /* as the scheduler does: drop what is acknowledged; a newer
             * poll replaces a parked one; answer at once if anything waits */
            while (json_array_size(s->cmds) &&
                   json_integer_value(json_object_get(json_array_get(s->cmds, 0), "seq")) <= ack)
                json_array_remove(s->cmds, 0);
            if (s->held) {
                answer_poll(s, s->held);
                s->held = NULL;
            }
            if (json_array_size(s->cmds))
                answer_poll(s, req);
            else
                s->held = req;
        }
    } else if (strcmp(path, "/agent/v1/status") == 0) {
        unsigned code = 200;
        if (s->fail_status > 0) {
            s->fail_status--;
            code = 503;
        }
        json_array_append_new(s->stats, json_pack("{s:i, s:i, s:O}", "code", (int)code, "epoch",
                                                  s->fx->epoch, "body", body));
        if (code == 200)
            respond_json(req, 200,
                         json_pack("{s:I}", "acked",
                                   (json_int_t)json_array_size(json_object_get(body, "updates"))));
        else
            respond_json(req, code,
                         json_pack("{s:s, s:s, s:[]}", "code", "NO_LEADER", "message", "no leader",
                                   "details"));
    } else {
        respond_json(req, 404, json_pack("{s:s}", "code", "NOT_FOUND"));
    }
    json_decref(body);
}

/* Queue a command (its seq is set here); a parked poll gets it at once. */
static int64_t sched_push(struct sched *s, json_t *cmd)
{
    int64_t seq = s->next_seq++;
    json_object_set_new(cmd, "seq", json_integer(seq));
    json_array_append_new(s->cmds, cmd);
    if (s->held) {
        answer_poll(s, s->held);
        s->held = NULL;
    }
    return seq;
}

/* Answer the parked poll with `code` and no command. */
static void sched_answer_held(struct sched *s, unsigned code)
{
    assert_non_null(s->held);
    struct bo_http_req *req = s->held;
    s->held = NULL;
    if (code == 404)
        respond_json(req, 404,
                     json_pack("{s:s, s:s, s:[]}", "code", "NOT_FOUND", "message",
                               "agent is not registered", "details"));
    else
        respond_json(req, code, json_pack("{s:[]}", "commands"));
}

/* Answer the parked poll with these commands verbatim (steals `cmds`). */
static void sched_answer_held_with(struct sched *s, json_t *cmds)
{
    assert_non_null(s->held);
    struct bo_http_req *req = s->held;
    s->held = NULL;
    respond_json(req, 200, json_pack("{s:o}", "commands", cmds));
}

static json_t *launch_cmd(const char *id)
{
    return json_pack("{s:s, s:s, s:{s:{s:s, s:{s:{s:s, s:s, s:s}, s:[{s:f}, {s:i}, {s:i}]}}}}",
                     "type", "launch", "task_id", id, "task", "assigned_task", "task_id", id,
                     "task", "job", "role", "www", "environment", "prod", "name", "hello",
                     "resources", "num_cpus", 0.5, "ram_mb", 64, "disk_mb", 128);
}

static json_t *kill_cmd(const char *id)
{
    return json_pack("{s:s, s:s}", "type", "kill", "task_id", id);
}

/* Every update for `task` in /status requests answered `code` (0: any), of
 * agent instances from `min_epoch` on, in the order they arrived. New ref. */
static json_t *updates_for(struct sched *s, const char *task, int code, int min_epoch)
{
    json_t *out = json_array();
    size_t i, j;
    json_t *st, *u;
    json_array_foreach(s->stats, i, st)
    {
        if (code && json_integer_value(json_object_get(st, "code")) != code)
            continue;
        if (json_integer_value(json_object_get(st, "epoch")) < min_epoch)
            continue;
        json_array_foreach(json_object_get(json_object_get(st, "body"), "updates"), j, u)
        {
            if (strcmp(json_string_value(json_object_get(u, "task_id")), task) == 0)
                json_array_append(out, u);
        }
    }
    return out;
}

/* The first update of `task` with `status`, acknowledged (200). Borrowed
 * from the record, or NULL. */
static json_t *acked_update(struct sched *s, const char *task, const char *status, int min_epoch)
{
    size_t i, j;
    json_t *st, *u;
    json_array_foreach(s->stats, i, st)
    {
        if (json_integer_value(json_object_get(st, "code")) != 200 ||
            json_integer_value(json_object_get(st, "epoch")) < min_epoch)
            continue;
        json_array_foreach(json_object_get(json_object_get(st, "body"), "updates"), j, u)
        {
            if (strcmp(json_string_value(json_object_get(u, "task_id")), task) == 0 &&
                strcmp(json_string_value(json_object_get(u, "status")), status) == 0)
                return u;
        }
    }
    return NULL;
}

static const char *str_of(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

/* `doc` as compact JSON into `out`, for failure messages. */
static void dump(json_t *doc, char *out, size_t size)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    snprintf(out, size, "%s", text ? text : "(null)");
    free(text);
}

/* The highest ack of any poll so far, -1 if none. */
static int64_t max_ack(struct sched *s)
{
    int64_t m = -1;
    size_t i;
    json_t *p;
    json_array_foreach(s->polls, i, p)
    {
        int64_t v = json_integer_value(json_object_get(p, "ack"));
        if (v > m)
            m = v;
    }
    return m;
}

/* ------------------------------------------------------------ waiting ---- */

static void on_wait_timer(uv_timer_t *t)
{
    struct fx *fx = t->data;
    fx->expired = true;
}

static void wait_begin(struct fx *fx, unsigned ms)
{
    fx->expired = false;
    uv_timer_start(&fx->wait_timer, on_wait_timer, ms, 0);
}

static void wait_end(struct fx *fx)
{
    uv_timer_stop(&fx->wait_timer);
}

/* Run the loop until `cond` holds, at most `ms`; fail with the message if
 * it does not. The timer is referenced, so UV_RUN_ONCE always returns. */
#define WAIT_FOR(fx, ms, cond, ...)                                                                \
    do {                                                                                           \
        wait_begin((fx), (ms));                                                                    \
        while (!(cond) && !(fx)->expired)                                                          \
            uv_run(&(fx)->loop, UV_RUN_ONCE);                                                      \
        wait_end(fx);                                                                              \
        if (!(cond))                                                                               \
            fail_msg(__VA_ARGS__);                                                                 \
    } while (0)

/* Run the loop for `ms` whatever happens. */
static void run_for(struct fx *fx, unsigned ms)
{
    wait_begin(fx, ms);
    while (!fx->expired)
        uv_run(&fx->loop, UV_RUN_ONCE);
    wait_end(fx);
}

/* ------------------------------------------------------------- files ---- */

static void task_path(struct fx *fx, char *out, size_t size, const char *id, const char *name)
{
    snprintf(out, size, "%s/tasks/%s%s%s", fx->work, id, name ? "/" : "", name ? name : "");
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static bool read_text(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
    return true;
}

/* tasks/<id>/acked, or -1. */
static int64_t acked_seq(struct fx *fx, const char *id)
{
    char path[PATH_MAX], buf[64];
    task_path(fx, path, sizeof(path), id, "acked");
    if (!read_text(path, buf, sizeof(buf)))
        return -1;
    return strtoll(buf, NULL, 10);
}

/* Lines in tasks/<id>/<name> (0 when missing). */
static int count_lines(struct fx *fx, const char *id, const char *name)
{
    char path[PATH_MAX], buf[8192];
    task_path(fx, path, sizeof(path), id, name);
    if (!read_text(path, buf, sizeof(buf)))
        return 0;
    int n = 0;
    for (char *p = buf; *p; p++)
        n += *p == '\n';
    return n;
}

static uint64_t proc_starttime(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (!read_text(path, buf, sizeof(buf)))
        return 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    int field = 2;
    for (p++; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    return strtoull(p, NULL, 10);
}

/* The executor's pid from tasks/<id>/executor.pid, 0 if none. */
static int executor_pid(struct fx *fx, const char *id, uint64_t *start)
{
    char path[PATH_MAX], buf[128];
    task_path(fx, path, sizeof(path), id, "executor.pid");
    int pid = 0;
    unsigned long long st = 0;
    if (!read_text(path, buf, sizeof(buf)) || sscanf(buf, "%d %llu", &pid, &st) != 2)
        return 0;
    if (start)
        *start = st;
    return pid;
}

static bool alive(int pid)
{
    return pid > 0 && kill(pid, 0) == 0;
}

/* Names in a directory, sorted, comma-separated. */
static void list_dir(const char *dir, char *out, size_t size)
{
    struct dirent **names;
    out[0] = '\0';
    int n = scandir(dir, &names, NULL, alphasort);
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0)
            used += (size_t)snprintf(out + used, used < size ? size - used : 0, "%s%s",
                                     used ? "," : "", names[i]->d_name);
        free(names[i]);
    }
    if (n >= 0)
        free(names);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* ------------------------------------------------- fixture and agent ---- */

static void srv_closed(struct bo_http_server *srv)
{
    struct sched *s = bo_http_data(srv);
    s->closed = true;
}

static void c_closed(struct bo_httpc *c, void *data)
{
    (void)c;
    struct fx *fx = data;
    fx->c_closed = true;
}

static int setup(void **state)
{
    struct fx *fx = bo_calloc(1, sizeof(*fx));
    assert_non_null(fx);
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->wait_timer);
    fx->wait_timer.data = fx;

    snprintf(fx->tmp, sizeof(fx->tmp), "/tmp/test_agent.XXXXXX");
    assert_non_null(mkdtemp(fx->tmp));
    snprintf(fx->work, sizeof(fx->work), "%s/work", fx->tmp);
    snprintf(fx->exec_path, sizeof(fx->exec_path), "%s/fake-executor", fx->tmp);
    int fd = open(fx->exec_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, FAKE_EXECUTOR, sizeof(FAKE_EXECUTOR) - 1),
                     (ssize_t)(sizeof(FAKE_EXECUTOR) - 1));
    close(fd);

    for (int i = 0; i < 2; i++) {
        struct sched *s = &fx->s[i];
        s->fx = fx;
        s->cmds = json_array();
        s->regs = json_array();
        s->polls = json_array();
        s->stats = json_array();
        s->next_seq = 1;
        s->check_path_result = -1;
        struct bo_http_config cfg;
        bo_http_config_init(&cfg);
        cfg.listen = "127.0.0.1:0";
        cfg.handler = sched_handler;
        cfg.data = s;
        cfg.close_grace_ms = 100;
        assert_int_equal(bo_http_start(&fx->loop, &cfg, &s->srv, &err), BO_OK);
        snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%u", bo_http_port(s->srv));
    }
    assert_int_equal(bo_httpc_new(&fx->loop, &fx->c, &err), BO_OK);

    fx->attrs = json_pack("{s:[s], s:[s, s]}", "host", "test-host", "rack", "r4", "r5");
    fx->ports = json_pack("[[ii]]", 31000, 31010);
    fx->urls[0] = fx->s[0].url;
    bo_agent_config_init(&fx->cfg);
    fx->cfg.work_dir = fx->work;
    fx->cfg.schedulers = fx->urls;
    fx->cfg.n_schedulers = 1;
    fx->cfg.executor_path = fx->exec_path;
    fx->cfg.hostname = "test-host";
    fx->cfg.attributes = fx->attrs;
    fx->cfg.ports = fx->ports;
    fx->cfg.cpus = 3.5;
    fx->cfg.ram_mb = 2048;
    fx->cfg.disk_mb = 4096;
    fx->cfg.setuid = false;
    fx->cfg.create_users = false;
    fx->cfg.isolation = false;
    fx->cfg.retry_ms = 20;
    fx->cfg.stop_timeout_ms = 5000;
    *state = fx;
    return 0;
}

static void agent_start(struct fx *fx)
{
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_metrics_new(&fx->metrics), BO_OK);
    fx->cfg.metrics = fx->metrics;
    int rc = bo_agent_start(&fx->loop, &fx->cfg, &fx->agent, &err);
    if (rc != BO_OK)
        fail_msg("bo_agent_start: %s", bo_err_msg(&err, rc));
}

static void agent_closed(struct bo_agent *a, void *data)
{
    (void)a;
    struct fx *fx = data;
    fx->agent_closed = true;
}

static void agent_stop(struct fx *fx)
{
    fx->agent_closed = false;
    bo_agent_close(fx->agent, agent_closed, fx);
    WAIT_FOR(fx, WAIT_MS, fx->agent_closed, "the agent's close callback did not fire");
    bo_agent_free(fx->agent);
    fx->agent = NULL;
    bo_metrics_free(fx->metrics);
    fx->metrics = NULL;
}

/* SIGKILL an executor (and its session) named by an executor.pid file, if
 * it is still the process the file names, and reap it if it is this
 * process's child. */
static int kill_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    if (flag != FTW_F || strcmp(path + ftw->base, "executor.pid") != 0)
        return 0;
    char buf[128];
    int pid = 0;
    unsigned long long start = 0;
    if (!read_text(path, buf, sizeof(buf)) || sscanf(buf, "%d %llu", &pid, &start) != 2 ||
        pid <= 1 || proc_starttime(pid) != start)
        return 0;        /* gone, or the pid is someone else's now */
    kill(-pid, SIGKILL); /* its session is its process group too */
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return 0;
}

/* Every executor still alive, wherever its executor.pid is (the whole
 * temporary directory, in case a broken agent made a task directory outside
 * tasks/). Only with no agent running: an open uv_process_t would lose its
 * exit status to our waitpid. */
static void kill_executors(struct fx *fx)
{
    nftw(fx->tmp, kill_one, 32, FTW_PHYS);
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    if (fx->agent)
        agent_stop(fx);
    kill_executors(fx);
    uv_close((uv_handle_t *)&fx->wait_timer, NULL);
    bo_httpc_close(fx->c, c_closed, fx);
    for (int i = 0; i < 2; i++) {
        fx->s[i].held = NULL; /* answered 503 by the close */
        bo_http_close(fx->s[i].srv, srv_closed);
    }
    uint64_t deadline = uv_hrtime() + 5000000000ull;
    while ((!fx->c_closed || !fx->s[0].closed || !fx->s[1].closed || uv_loop_alive(&fx->loop)) &&
           uv_hrtime() < deadline) {
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_true(fx->c_closed);
    assert_true(fx->s[0].closed);
    assert_true(fx->s[1].closed);
    bo_httpc_free(fx->c);
    for (int i = 0; i < 2; i++) {
        bo_http_free(fx->s[i].srv);
        json_decref(fx->s[i].cmds);
        json_decref(fx->s[i].regs);
        json_decref(fx->s[i].polls);
        json_decref(fx->s[i].stats);
    }
    json_decref(fx->attrs);
    json_decref(fx->ports);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    nftw(fx->tmp, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
    bo_free(fx);
    return 0;
}

/* Launch `id` through the scheduler and wait until its RUNNING update is
 * acknowledged and persisted (tasks/<id>/acked is 2). */
static void launch_and_wait_running(struct fx *fx, struct sched *s, const char *id)
{
    sched_push(s, launch_cmd(id));
    WAIT_FOR(fx, WAIT_MS, acked_update(s, id, "RUNNING", 0) != NULL,
             "task '%s': no RUNNING update reached /agent/v1/status", id);
    WAIT_FOR(fx, WAIT_MS, acked_seq(fx, id) == 2, "task '%s': acked is %" PRId64 ", not 2", id,
             acked_seq(fx, id));
}

/* ------------------------------------------------------------- cases ---- */

/* 1. Registration carries host, resources, attributes and the agent id,
 * which is kept in the work dir across restarts. */
static void registration_and_persisted_id(void **state)
{
    struct fx *fx = *state;
    struct sched *s = &fx->s[0];
    agent_start(fx);
    WAIT_FOR(fx, WAIT_MS, json_array_size(s->polls) >= 1, "the agent did not register and poll");
    json_t *reg = json_array_get(s->regs, 0);
    char path[PATH_MAX], file_id[128];
    snprintf(path, sizeof(path), "%s/agent_id", fx->work);
    assert_true(read_text(path, file_id, sizeof(file_id)));
    file_id[strcspn(file_id, "\n")] = '\0';
    const char *id = str_of(reg, "agent_id");
    assert_true(strncmp(id, "agent-", 6) == 0);
    assert_string_equal(id, file_id);
    assert_string_equal(id, bo_agent_id(fx->agent));
    assert_string_equal(str_of(reg, "host"), "test-host");
    json_t *res = json_object_get(reg, "resources");
    assert_true(json_number_value(json_object_get(res, "cpus")) == 3.5);
    assert_int_equal(json_integer_value(json_object_get(res, "ram_mb")), 2048);
    assert_int_equal(json_integer_value(json_object_get(res, "disk_mb")), 4096);
    assert_true(json_equal(json_object_get(res, "ports"), fx->ports));
    assert_true(json_equal(json_object_get(reg, "attributes"), fx->attrs));
    assert_int_equal(json_array_size(json_object_get(reg, "tasks")), 0);
    assert_string_equal(str_of(json_array_get(s->polls, 0), "agent_id"), id);
    char first[128];
    snprintf(first, sizeof(first), "%s", id);

    /* Same work dir: same id. */
    agent_stop(fx);
    agent_start(fx);
    WAIT_FOR(fx, WAIT_MS, json_array_size(s->regs) >= 2, "no registration after a restart");
    assert_string_equal(str_of(json_array_get(s->regs, 1), "agent_id"), first);

    /* An id handed out by the scheduler is adopted, polled with and kept. */
    agent_stop(fx);
    snprintf(s->assign_id, sizeof(s->assign_id), "agent-given-by-sched");
    size_t polls = json_array_size(s->polls);
    agent_start(fx);
    WAIT_FOR(fx, WAIT_MS, json_array_size(s->polls) > polls, "no poll after the third start");
    assert_string_equal(str_of(json_array_get(s->regs, 2), "agent_id"), first);
    assert_string_equal(str_of(json_array_get(s->polls, polls), "agent_id"),
                        "agent-given-by-sched");
    assert_string_equal(bo_agent_id(fx->agent), "agent-given-by-sched");
    agent_stop(fx);
    s->assign_id[0] = '\0';
    agent_start(fx);
    WAIT_FOR(fx, WAIT_MS, json_array_size(s->regs) >= 4, "no registration after a restart");
    assert_string_equal(str_of(json_array_get(s->regs, 3), "agent_id"), "agent-given-by-sched");
}

/* 2. A launch makes the task's directories and task.json, spawns the
 * executor, forwards STARTING then RUNNING, and is acknowledged on the next
 * poll once handled. */
static void launch_runs_executor_and_forwards_updates(void **state)
{
    struct fx *fx = *state;
    struct sched *s = &fx->s[0];
    char tj[PATH_MAX];
    task_path(fx, tj, sizeof(tj), "t-2", "task.json");
    s->check_path = tj;
    agent_start(fx);
    WAIT_FOR(fx, WAIT_MS, s->held != NULL, "the agent did not poll");
    json_t *cmd = launch_cmd("t-2");
    json_t *task = json_incref(json_object_get(cmd, "task"));
    int64_t seq = sched_push(s, cmd);
    assert_int_equal(seq, 1);
    WAIT_FOR(fx, WAIT_MS, acked_update(s, "t-2", "RUNNING", 0) != NULL,
             "no RUNNING update reached /agent/v1/status");

    json_t *doc = json_load_file(tj, 0, NULL);
    assert_non_null(doc);
    assert_true(json_equal(json_object_get(doc, "task"), task));
    json_decref(task);
    char sandbox[PATH_MAX];
    snprintf(sandbox, sizeof(sandbox), "%s/sandboxes/t-2", fx->work);
    assert_string_equal(str_of(doc, "sandbox"), sandbox);
    json_t *limits = json_object_get(doc, "limits");
    assert_int_equal(json_integer_value(json_object_get(limits, "ram_bytes")), 64 << 20);
    assert_int_equal(json_integer_value(json_object_get(limits, "disk_bytes")), 128 << 20);
    assert_true(json_number_value(json_object_get(limits, "cpus")) == 0.5);
    json_decref(doc);
    struct stat st;
    assert_int_equal(stat(sandbox, &st), 0);
    assert_true(S_ISDIR(st.st_mode));

    /* One executor, the one in executor.pid, still running. */
    assert_int_equal(count_lines(fx, "t-2", "runs"), 1);
    int pid = executor_pid(fx, "t-2", NULL);
    char path[PATH_MAX], runs[64];
    task_path(fx, path, sizeof(path), "t-2", "runs");
    assert_true(read_text(path, runs, sizeof(runs)));
    assert_int_equal(atoi(runs), pid);
    assert_true(alive(pid));

    /* Both updates, in order, each once, from this agent. */
    json_t *ups = updates_for(s, "t-2", 0, 0);
    assert_int_equal(json_array_size(ups), 2);
    assert_string_equal(str_of(json_array_get(ups, 0), "status"), "STARTING");
    assert_string_equal(str_of(json_array_get(ups, 0), "message"), "fake: starting");
    assert_string_equal(str_of(json_array_get(ups, 1), "status"), "RUNNING");
    assert_string_equal(str_of(json_array_get(ups, 1), "message"), "fake: running");
    json_decref(ups);
    json_t *st0 = json_object_get(json_array_get(s->stats, 0), "body");
    assert_string_equal(str_of(st0, "agent_id"), bo_agent_id(fx->agent));

    /* The command is acknowledged on the next poll, after it was handled. */
    WAIT_FOR(fx, WAIT_MS, max_ack(s) >= 1, "no poll acknowledged the launch");
    assert_int_equal(max_ack(s), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(s->polls, 0), "ack")), 0);
    assert_int_equal(s->check_path_result, 1);
    WAIT_FOR(fx, WAIT_MS, acked_seq(fx, "t-2") == 2, "acked is not 2");
}

/* 3. /status answered 503 twice: the same updates come again, in order;
 * after the 200, acked holds the last seq and nothing is sent again. */
static void status_updates_are_retried(void **state)
{
    struct fx *fx = *state;
    struct sched *s = &fx->s[0];
    s->fail_status = 2;
    agent_start(fx);
    WAIT_FOR(fx, WAIT_MS, s->held != NULL, "the agent did not poll");
    sched_push(s, launch_cmd("t-3"));
    WAIT_FOR(fx, WAIT_MS, acked_update(s, "t-3", "RUNNING", 0) != NULL,
             "no RUNNING update was acknowledged after two 503s");
    WAIT_FOR(fx, WAIT_MS, acked_seq(fx, "t-3") == 2, "acked is %" PRId64 ", not 2",
             acked_seq(fx, "t-3"));

    size_t n = json_array_size(s->stats);
    assert_true(n >= 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(s->stats, 0), "code")), 503);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(s->stats, 1), "code")), 503);
    /* After a failure, the next request starts with everything that failed. */
    for (size_t i = 0; i + 1 < n; i++) {
        json_t *cur =
            json_object_get(json_object_get(json_array_get(s->stats, i), "body"), "updates");
        json_t *next =
            json_object_get(json_object_get(json_array_get(s->stats, i + 1), "body"), "updates");
        if (json_integer_value(json_object_get(json_array_get(s->stats, i), "code")) != 503)
            continue;
        assert_true(json_array_size(next) >= json_array_size(cur));
        for (size_t j = 0; j < json_array_size(cur); j++) {
            json_t *a = json_array_get(cur, j), *b = json_array_get(next, j);
            assert_string_equal(str_of(b, "task_id"), str_of(a, "task_id"));
            assert_string_equal(str_of(b, "status"), str_of(a, "status"));
            assert_string_equal(str_of(b, "message"), str_of(a, "message"));
        }
    }
    /* What was acknowledged: each update once, in order. */
    json_t *ok = updates_for(s, "t-3", 200, 0);
    assert_int_equal(json_array_size(ok), 2);
    assert_string_equal(str_of(json_array_get(ok, 0), "status"), "STARTING");
    assert_string_equal(str_of(json_array_get(ok, 1), "status"), "RUNNING");
    json_decref(ok);

    /* Nothing more is sent, not even by the one-second sweep. */
    run_for(fx, QUIET_MS);
    assert_int_equal(json_array_size(s->stats), n);
    assert_int_equal(acked_seq(fx, "t-3"), 2);
}

/* 4. A 307 names the leader: the agent registers there, and talks to it. */
static void redirect_to_the_leader(void **state)
{
    struct fx *fx = *state;
    struct sched *a = &fx->s[0], *b = &fx->s[1];
    snprintf(a->redirect, sizeof(a->redirect), "%s/agent/v1/register", b->url);
    agent_start(fx);
    WAIT_FOR(fx, WAIT_MS, b->held != NULL, "the agent did not register and poll at the leader");
    assert_int_equal(json_array_size(a->regs), 1);
    assert_int_equal(json_array_size(a->polls), 0);
    assert_int_equal(json_array_size(b->regs), 1);
    assert_string_equal(str_of(json_array_get(b->regs, 0), "agent_id"), bo_agent_id(fx->agent));
    assert_string_equal(str_of(json_array_get(b->regs, 0), "host"), "test-host");
    sched_push(b, launch_cmd("t-4"));
    WAIT_FOR(fx, WAIT_MS, acked_update(b, "t-4", "RUNNING", 0) != NULL,
             "the task's updates did not reach the leader");
    assert_int_equal(json_array_size(a->stats), 0);
    assert_int_equal(json_array_size(a->polls), 0);
}

/* 5. A poll answered 404: the agent registers again, with its tasks. */
static void poll_404_registers_again_with_tasks(void **state)
{
    struct fx *fx = *state;
    struct sched *s = &fx->s[0];
    agent_start(fx);
    WAIT_FOR(fx, WAIT_MS, s->held != NULL, "the agent did not poll");
    launch_and_wait_running(fx, s, "t-5");
    WAIT_FOR(fx, WAIT_MS, s->held != NULL && max_ack(s) == 1, "no poll after the launch");
    assert_int_equal(json_array_size(s->regs), 1);
    sched_answer_held(s, 404);
    WAIT_FOR(fx, WAIT_MS, json_array_size(s->regs) == 2, "no registration after the 404");
    json_t *reg = json_array_get(s->regs, 1);
    assert_string_equal(str_of(reg, "agent_id"), bo_agent_id(fx->agent));
    json_t *want = json_pack("[{s:s, s:s}]", "task_id", "t-5", "status", "RUNNING");
    if (!json_equal(json_object_get(reg, "tasks"), want)) {
        char got[512];
        dump(json_object_get(reg, "tasks"), got, sizeof(got));
        fail_msg("registration after a 404 reports tasks %s", got);
    }
    json_decref(want);
    size_t polls = json_array_size(s->polls);
    WAIT_FOR(fx, WAIT_MS, json_array_size(s->polls) > polls, "no poll after registering again");
}

/* 5b. The scheduler that answered 404 has forgotten the agent (restart,
 * failover): its command numbers start again at 1. A launch it queues must
 * still run: the agent resumes acknowledging where the registration answer
 * says (its "ack", 0 when absent), never where the old session left it.
 * (Found by this test: the agent used to keep its old ack.) */
static void commands_after_the_scheduler_forgot_us(void **state)
{
    struct fx *fx = *state;
    struct sched *s = &fx->s[0];
    agent_start(fx);
    WAIT_FOR(fx, WAIT_MS, s->held != NULL, "the agent did not poll");
    launch_and_wait_running(fx, s, "t-5b");
    WAIT_FOR(fx, WAIT_MS, s->held != NULL && max_ack(s) == 1, "no poll after the launch");
    /* The scheduler forgets the agent, as a new leader does. */
    s->next_seq = 1;
    sched_answer_held(s, 404);
    WAIT_FOR(fx, WAIT_MS, json_array_size(s->regs) == 2, "no registration after the 404");
    size_t polls = json_array_size(s->polls);
    WAIT_FOR(fx, WAIT_MS, json_array_size(s->polls) > polls, "no poll after registering again");
    json_int_t ack = json_integer_value(json_object_get(json_array_get(s->polls, polls), "ack"));
    sched_push(s, launch_cmd("t-5c")); /* seq 1 of the new session */
    char tj[PATH_MAX];
    task_path(fx, tj, sizeof(tj), "t-5c", "task.json");
    WAIT_FOR(fx, 2000, exists(tj),
             "after registering again (404) the agent polls with ack %lld from the old "
             "session: the new session's launch with seq 1 is dropped and never starts",
             (long long)ack);
}

/* 6. kill: the executor gets SIGTERM and its KILLED update is forwarded; a
 * kill for a task the agent does not have is answered with LOST. */
static void kill_and_kill_unknown(void **state)
{
    struct fx *fx = *state;
    struct sched *s = &fx->s[0];
    agent_start(fx);
    WAIT_FOR(fx, WAIT_MS, s->held != NULL, "the agent did not poll");
    launch_and_wait_running(fx, s, "t-6");
    int pid = executor_pid(fx, "t-6", NULL);
    assert_true(alive(pid));
    sched_push(s, kill_cmd("t-6"));
    WAIT_FOR(fx, WAIT_MS, acked_update(s, "t-6", "KILLED", 0) != NULL,
             "no KILLED update after a kill");
    /* The executor's own update: it got SIGTERM. */
    assert_string_equal(str_of(acked_update(s, "t-6", "KILLED", 0), "message"),
                        "fake: got SIGTERM");
    WAIT_FOR(fx, WAIT_MS, !alive(pid), "the executor is still alive after the kill");
    json_t *ups = updates_for(s, "t-6", 200, 0);
    assert_int_equal(json_array_size(ups), 3);
    json_decref(ups);

    sched_push(s, kill_cmd("ghost-6"));
    WAIT_FOR(fx, WAIT_MS, acked_update(s, "ghost-6", "LOST", 0) != NULL,
             "no LOST update for a kill of an unknown task");
    assert_string_equal(str_of(acked_update(s, "ghost-6", "LOST", 0), "message"),
                        "the task is not on this agent");
    char dir[PATH_MAX];
    task_path(fx, dir, sizeof(dir), "ghost-6", NULL);
    assert_false(exists(dir));
    WAIT_FOR(fx, WAIT_MS, max_ack(s) == 3 && s->held != NULL, "the kills were not acknowledged");

    /* The kill delivered again after its ack (seq 2 <= ack 3): skipped, so
     * no second KILLED ("the task already ended") is sent. */
    json_t *again = kill_cmd("t-6");
    json_object_set_new(again, "seq", json_integer(2));
    sched_answer_held_with(s, json_pack("[o]", again));
    size_t polls = json_array_size(s->polls);
    WAIT_FOR(fx, WAIT_MS, json_array_size(s->polls) > polls, "no poll after the re-delivery");
    run_for(fx, 200);
    ups = updates_for(s, "t-6", 0, 0);
    assert_int_equal(json_array_size(ups), 3);
    json_decref(ups);
}

/* 7. An executor killed by SIGKILL: the agent reports LOST, naming the
 * signal. */
static void executor_sigkill_is_lost(void **state)
{
    struct fx *fx = *state;
    struct sched *s = &fx->s[0];
    agent_start(fx);
    WAIT_FOR(fx, WAIT_MS, s->held != NULL, "the agent did not poll");
    launch_and_wait_running(fx, s, "t-7");
    int pid = executor_pid(fx, "t-7", NULL);
    assert_true(alive(pid));
    assert_int_equal(kill(pid, SIGKILL), 0);
    WAIT_FOR(fx, WAIT_MS, acked_update(s, "t-7", "LOST", 0) != NULL,
             "no LOST update after the executor was SIGKILLed");
    const char *msg = str_of(acked_update(s, "t-7", "LOST", 0), "message");
    if (!strstr(msg, "signal 9"))
        fail_msg("LOST message does not name the signal: '%s'", msg);
    /* Written to the task's updates file, as the executor's would be. */
    WAIT_FOR(fx, WAIT_MS, acked_seq(fx, "t-7") == 3, "acked is %" PRId64 ", not 3",
             acked_seq(fx, "t-7"));
}

/* 8. An agent restart leaves the executor running; the new agent reports
 * the task RUNNING, re-attaches, and reports its death. */
static void restart_reattaches(void **state)
{
    struct fx *fx = *state;
    struct sched *s = &fx->s[0];
    agent_start(fx);
    WAIT_FOR(fx, WAIT_MS, s->held != NULL, "the agent did not poll");
    launch_and_wait_running(fx, s, "t-8");
    uint64_t start = 0;
    int pid = executor_pid(fx, "t-8", &start);
    agent_stop(fx);
    assert_true(alive(pid));
    assert_int_equal(proc_starttime(pid), start);

    fx->epoch = 1;
    agent_start(fx);
    WAIT_FOR(fx, WAIT_MS, json_array_size(s->regs) == 2, "the new agent did not register");
    json_t *want = json_pack("[{s:s, s:s}]", "task_id", "t-8", "status", "RUNNING");
    if (!json_equal(json_object_get(json_array_get(s->regs, 1), "tasks"), want)) {
        char got[512];
        dump(json_object_get(json_array_get(s->regs, 1), "tasks"), got, sizeof(got));
        fail_msg("the new agent reports tasks %s", got);
    }
    json_decref(want);
    WAIT_FOR(fx, WAIT_MS, s->held != NULL && json_array_size(s->polls) >= 3,
             "the new agent did not poll");
    /* What was acknowledged before is not sent again. */
    run_for(fx, 100);
    json_t *ups = updates_for(s, "t-8", 0, 1);
    assert_int_equal(json_array_size(ups), 0);
    json_decref(ups);
    assert_true(alive(pid));

    /* The executor is this process's child (the first agent spawned it) and
     * no uv_process_t watches it any more: reap it here. */
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    WAIT_FOR(fx, WAIT_MS, acked_update(s, "t-8", "LOST", 1) != NULL,
             "the new agent did not report the re-attached executor's death");
    const char *msg = str_of(acked_update(s, "t-8", "LOST", 1), "message");
    if (!strstr(msg, "re-attached"))
        fail_msg("unexpected LOST message '%s'", msg);
    ups = updates_for(s, "t-8", 0, 1);
    assert_int_equal(json_array_size(ups), 1);
    json_decref(ups);
}

/* 9. A launch with a bad task id is refused without touching anything
 * outside the work dir; a launch delivered again is ignored. */
static void bad_id_refused_and_repeated_launch_ignored(void **state)
{
    struct fx *fx = *state;
    struct sched *s = &fx->s[0];
    agent_start(fx);
    WAIT_FOR(fx, WAIT_MS, s->held != NULL, "the agent did not poll");
    sched_push(s, launch_cmd("../x"));
    sched_push(s, launch_cmd("../../y"));
    sched_push(s, launch_cmd(".."));
    sched_push(s, launch_cmd("t-9"));
    sched_push(s, launch_cmd("t-9")); /* seq 5: the same launch queued twice */
    WAIT_FOR(fx, WAIT_MS, acked_update(s, "t-9", "RUNNING", 0) != NULL, "t-9 did not run");
    WAIT_FOR(fx, WAIT_MS, max_ack(s) == 5 && s->held != NULL,
             "the batch was not acknowledged (max ack %" PRId64 ")", max_ack(s));
    /* Delivered again with the same seq, as a scheduler that has not yet
     * dropped it would. */
    json_t *again4 = launch_cmd("t-9"), *again5 = launch_cmd("t-9");
    json_object_set_new(again4, "seq", json_integer(4));
    json_object_set_new(again5, "seq", json_integer(5));
    sched_answer_held_with(s, json_pack("[o, o]", again4, again5));
    size_t polls = json_array_size(s->polls);
    WAIT_FOR(fx, WAIT_MS, json_array_size(s->polls) > polls, "no poll after the re-delivery");
    run_for(fx, 300);

    char path[PATH_MAX], names[512];
    snprintf(path, sizeof(path), "%s/x", fx->work);
    assert_false(exists(path));
    snprintf(path, sizeof(path), "%s/x", fx->tmp);
    assert_false(exists(path));
    snprintf(path, sizeof(path), "%s/y", fx->tmp);
    assert_false(exists(path));
    list_dir(fx->tmp, names, sizeof(names));
    assert_string_equal(names, "fake-executor,work");
    list_dir(fx->work, names, sizeof(names));
    assert_string_equal(names, "agent_id,sandboxes,tasks");
    snprintf(path, sizeof(path), "%s/tasks", fx->work);
    list_dir(path, names, sizeof(names));
    assert_string_equal(names, "t-9");
    snprintf(path, sizeof(path), "%s/sandboxes", fx->work);
    list_dir(path, names, sizeof(names));
    assert_string_equal(names, "t-9");
    /* One executor only, and its updates sent once. */
    assert_int_equal(count_lines(fx, "t-9", "runs"), 1);
    assert_int_equal(count_lines(fx, "t-9", "updates"), 2);
    json_t *ups = updates_for(s, "t-9", 0, 0);
    assert_int_equal(json_array_size(ups), 2);
    json_decref(ups);
    assert_int_equal(max_ack(s), 5);
}

/* 10. The observer lists the task and refuses paths out of the sandbox. */
struct got {
    bool fired;
    int result;
    unsigned status;
    char body[8192];
};

static void on_got(const struct bo_httpc_resp *r, void *data)
{
    struct got *g = data;
    g->fired = true;
    g->result = r->result;
    g->status = r->status;
    snprintf(g->body, sizeof(g->body), "%s", r->body ? r->body : "");
}

static void observer_get(struct fx *fx, const char *path, struct got *g)
{
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", bo_agent_http_port(fx->agent), path);
    struct bo_httpc_opts o = {.url = url, .timeout_ms = WAIT_MS};
    struct bo_err err = BO_ERR_INIT;
    memset(g, 0, sizeof(*g));
    assert_int_equal(bo_httpc_request(fx->c, &o, on_got, g, NULL, &err), BO_OK);
    WAIT_FOR(fx, WAIT_MS + 1000, g->fired, "GET %s: no answer", path);
    assert_int_equal(g->result, BO_OK);
}

static void observer_lists_and_confines(void **state)
{
    struct fx *fx = *state;
    struct sched *s = &fx->s[0];
    fx->cfg.listen = "127.0.0.1:0";
    agent_start(fx);
    assert_true(bo_agent_http_port(fx->agent) != 0);
    WAIT_FOR(fx, WAIT_MS, s->held != NULL, "the agent did not poll");
    launch_and_wait_running(fx, s, "t-10");
    int pid = executor_pid(fx, "t-10", NULL);

    struct got g;
    observer_get(fx, "/api/v1/tasks", &g);
    assert_int_equal(g.status, 200);
    json_t *doc = json_loads(g.body, 0, NULL);
    json_t *tasks = json_object_get(doc, "tasks");
    assert_int_equal(json_array_size(tasks), 1);
    json_t *t = json_array_get(tasks, 0);
    assert_string_equal(str_of(t, "task_id"), "t-10");
    assert_string_equal(str_of(t, "status"), "RUNNING");
    assert_string_equal(str_of(t, "executor"), "RUNNING");
    assert_int_equal(json_integer_value(json_object_get(t, "pid")), pid);
    assert_int_equal(json_integer_value(json_object_get(t, "acked_seq")), 2);
    json_decref(doc);

    /* A file in the sandbox can be tailed ... */
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/sandboxes/t-10/hello.txt", fx->work);
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs("one\ntwo\n", f);
    fclose(f);
    observer_get(fx, "/api/v1/tasks/t-10/tail?path=hello.txt&lines=1", &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "two\n");
    /* ... but nothing outside it. */
    observer_get(fx, "/api/v1/tasks/t-10/tail?path=../../etc/passwd", &g);
    assert_int_equal(g.status, 403);
    assert_null(strstr(g.body, "root:"));
    doc = json_loads(g.body, 0, NULL);
    assert_string_equal(str_of(doc, "code"), "FORBIDDEN");
    json_decref(doc);
    observer_get(fx, "/api/v1/tasks/t-10/tail?path=%2Fetc%2Fpasswd", &g);
    assert_int_equal(g.status, 403);
    observer_get(fx, "/api/v1/tasks/nope/tail?path=hello.txt", &g);
    assert_int_equal(g.status, 404);
}

int main(void)
{
    struct bo_err err = BO_ERR_INIT;
    signal(SIGPIPE, SIG_IGN);
    if (bo_httpc_global_init(&err) != BO_OK)
        return 1;
    bo_log_set_level(getenv("TEST_AGENT_LOG") ? BO_LOG_DEBUG : BO_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(registration_and_persisted_id, setup, teardown),
        cmocka_unit_test_setup_teardown(launch_runs_executor_and_forwards_updates, setup, teardown),
        cmocka_unit_test_setup_teardown(status_updates_are_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(redirect_to_the_leader, setup, teardown),
        cmocka_unit_test_setup_teardown(poll_404_registers_again_with_tasks, setup, teardown),
        cmocka_unit_test_setup_teardown(commands_after_the_scheduler_forgot_us, setup, teardown),
        cmocka_unit_test_setup_teardown(kill_and_kill_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(executor_sigkill_is_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(restart_reattaches, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_id_refused_and_repeated_launch_ignored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(observer_lists_and_confines, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
