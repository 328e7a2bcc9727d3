/*
 * main.c - borealis-executor: runs one task's processes (Thermos semantics)
 * and reports its status through files in the task directory.
 *
 * Happy path: `borealis-executor --task-dir DIR`. Become a child subreaper,
 * append STARTING to DIR/updates, parse DIR/task.json (tconf), expand every
 * template once to catch unknown references, join the task's cgroups, then
 * hand the process graph to the pure runner and perform what it asks:
 * START spawns `/bin/bash -c <cmdline>` detached, as the task's user, in the
 * sandbox, with a clean environment and its stdout/stderr going to
 * <sandbox>/.logs/<process>/<run>/ (file descriptors handed over, or pipes
 * we copy and rotate); TERM_ALL/KILL_ALL signal every descendant found in
 * /proc; DONE writes the terminal update and ends the loop. RUNNING goes out
 * at once when there is nothing to health-check, otherwise after the health
 * checker (health.c counting, HTTP via httpc or a shell command) says the
 * task is healthy. Every event ends in pump(): take the runner's actions,
 * perform them, rewrite DIR/checkpoint.json if it changed, re-arm the wake
 * timer.
 *
 * Watchdogs, each ending the task FAILED through bo_runner_kill: health
 * checks failing; the cgroup's OOM-kill counter rising (checked on every
 * process exit and every second); with "sampling" memory enforcement the
 * summed RSS of the descendants over the limit (every second); the sandbox's
 * disk usage over the limit (an nftw walk on the thread pool every
 * disk_check_interval_ms).
 *
 * Kill (SIGTERM or SIGINT): with a lifecycle port, POST the graceful
 * endpoint and wait, POST the shutdown endpoint and wait (each wait cut
 * short once no process is left), then bo_runner_kill: SIGTERM to every
 * tree, SIGKILL after finalization_wait; processes that left the runner's
 * trees (double-forked daemons) get the same wait (finish_when_quiet).
 * stop_timeout_ms bounds it all: at
 * that point everything is SIGKILLed and KILLED is written regardless.
 *
 * Failure modes: a task.json or Thermos config that cannot be used ends the
 * task FAILED at once with the problem as the message (the executor still
 * exits 0: it did its job, which was to report). An update that cannot be
 * written is fatal (exit 1): the agent would otherwise wait forever.
 * Checkpoint write errors are logged and retried at the next change. A
 * process that cannot be spawned counts as a failed run.
 *
 * Blocking on the loop thread, on purpose: the updates line (write +
 * fdatasync is the contract: the agent may read it the moment we move on),
 * the atomic checkpoint (a few hundred bytes, once per state change, and it
 * must not fall behind the update it explains), the /proc scans (cheap),
 * and rotated log writes (local files, page cache). The disk walk, which
 * can take seconds, runs on the thread pool.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/err.h"
#include "common/fs.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/mem.h"
#include "executor/health.h"
#include "executor/proc.h"
#include "executor/runner.h"
#include "executor/tconf.h"
#include "executor/tmpl.h"

#define MIB      (1024LL * 1024LL)
#define TICK_MS  1000
#define MAX_SKIP 4

enum { KILL_NONE = 0, KILL_GRACEFUL, KILL_SHUTDOWN, KILL_RUNNER };

struct exec;

/* One run of one process: its handle and log plumbing. Freed once every
 * handle in it is closed (refs reaches 0). */
struct run {
    struct exec *x;
    size_t idx;
    int run;
    int refs;
    bool exited;
    uv_process_t proc;
    uv_pipe_t pipes[2]; /* rotate mode or destination 'both' */
    bool piped;
    int fds[2]; /* current log files in pipe mode; -1 = none */
    int64_t written[2];
    char logdir[PATH_MAX];
    struct run *next; /* in exec.runs */
};

struct exec {
    uv_loop_t *loop;
    char dir[PATH_MAX];
    char user[256]; /* the processes' user name */
    struct bo_tconf conf;
    bool conf_ok;
    struct bo_runner runner;
    bool runner_ok;
    struct bo_runner_act *acts;
    struct run **current; /* per process: its live run, or NULL */
    struct run *runs;     /* every run not yet freed */
    struct bo_httpc *http;
    char *last_ckpt; /* last checkpoint written, without its timestamp */

    uv_timer_t wake;
    uv_timer_t tick;
    uv_timer_t health_timer;
    uv_timer_t hc_timeout;
    uv_timer_t disk_timer;
    uv_timer_t kill_timer;
    uv_timer_t stop_timer;
    uv_timer_t quiet_timer; /* a kill's stragglers: finish once they are gone */
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_signal_t sigchld;

    int updates_fd;
    int64_t seq;
    char status[16]; /* last status written */

    /* health */
    struct bo_health health;
    bool health_on;
    bool hc_busy;
    struct bo_httpc_call *hc_call;
    uv_process_t hc_proc;
    bool hc_proc_open;
    pid_t hc_pid;
    char *hc_cmd; /* templated shell command */
    char hc_last[256];
    int64_t hc_started;

    /* kill */
    int kill_phase;
    struct bo_httpc_call *lc_call;

    /* memory and disk */
    char oom_path[PATH_MAX];
    const char *oom_key;
    uint64_t oom_base;
    bool oom_watch;
    int64_t mem_limit_shown; /* bytes, for messages */
    uv_work_t disk_work;
    bool disk_busy;
    uint64_t disk_used;
    int disk_rv;

    bool done;
    bool closing;
    int exit_code;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pump(struct exec *x);
static void finish(struct exec *x);
static void finish_when_quiet(struct exec *x);
static void maybe_cut_kill_wait(struct exec *x, int stragglers);

/* ---- updates and checkpoint ---- */

/* Find the last seq of an existing updates file (never expected, but an
 * executor started twice must not reuse numbers). */
static void scan_updates(struct exec *x, const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (bo_fs_read_file(path, &data, &len, NULL) != BO_OK) {
        return;
    }
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && data[i] != '\n') {
            continue;
        }
        json_t *j = json_loadb((const char *)data + start, i - start, 0, NULL);
        json_t *s = json_object_get(j, "seq");
        if (json_is_integer(s) && json_integer_value(s) > x->seq) {
            x->seq = json_integer_value(s);
        }
        json_decref(j);
        start = i + 1;
    }
    bo_free(data);
}

static int open_updates(struct exec *x, struct bo_err *err)
{
    char path[PATH_MAX];
    if (bo_fs_join(path, sizeof(path), x->dir, "updates") != BO_OK) {
        return bo_errf(err, BO_ETOOBIG, "task dir path is too long");
    }
    scan_updates(x, path);
    x->updates_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (x->updates_fd < 0) {
        return bo_errf(err, bo_err_from_errno(errno), "open '%s': %s", path, strerror(errno));
    }
    return BO_OK;
}

/* One line, one write(), fdatasync; exits the process if it cannot. */
static void write_update(struct exec *x, const char *status, const char *msg)
{
    json_t *j = json_pack("{s:I, s:s, s:s, s:I}", "seq", (json_int_t)(x->seq + 1), "status", status,
                          "message", msg, "timestamp_ms", (json_int_t)now_ms());
    char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (s == NULL) {
        bo_error("update %s: out of memory", status);
        exit(1);
    }
    size_t len = strlen(s);
    char *line = bo_malloc(len + 2);
    if (line == NULL) {
        bo_error("update %s: out of memory", status);
        exit(1);
    }
    memcpy(line, s, len);
    line[len] = '\n';
    free(s);
    ssize_t n;
    do {
        n = write(x->updates_fd, line, len + 1);
    } while (n < 0 && errno == EINTR);
    bo_free(line);
    if (n != (ssize_t)(len + 1) || fdatasync(x->updates_fd) != 0) {
        bo_error("write update %s: %s", status, n < 0 ? strerror(errno) : "short write");
        exit(1);
    }
    x->seq++;
    snprintf(x->status, sizeof(x->status), "%s", status);
    bo_info("status %s: %s", status, msg);
}

static json_t *ckpt_json(struct exec *x)
{
    json_t *root = json_object();
    json_t *procs = json_object();
    if (root == NULL || procs == NULL) {
        json_decref(root);
        json_decref(procs);
        return NULL;
    }
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "task_id", json_string(x->conf.task_id ? x->conf.task_id : ""));
    json_object_set_new(root, "status", json_string(x->status));
    if (x->runner_ok) {
        struct bo_runner *r = &x->runner;
        json_object_set_new(root, "stage", json_string(bo_task_stage_name(r->stage)));
        json_object_set_new(root, "end", json_string(bo_task_end_name(r->end)));
        json_object_set_new(root, "message", json_string(r->msg));
        json_object_set_new(root, "failed_processes", json_integer(r->failed_procs));
        for (size_t i = 0; i < r->nprocs; i++) {
            const struct bo_runner_proc *p = &r->procs[i];
            json_t *jp = json_pack(
                "{s:s, s:i, s:i, s:I, s:I, s:I, s:i, s:i, s:i, s:i, s:b, s:b, s:b}", "state",
                bo_proc_state_name(p->state), "run", p->run, "runs", p->runs, "pid",
                (json_int_t)p->pid, "start_ms", (json_int_t)p->start_ms, "stop_ms",
                (json_int_t)p->stop_ms, "exit_code", p->exit_code, "signal", p->term_signal,
                "failures", p->failures, "max_failures", p->conf->max_failures, "daemon",
                p->conf->daemon, "ephemeral", p->conf->ephemeral, "final", p->conf->final);
            if (jp != NULL) {
                json_object_set_new(procs, p->conf->name, jp);
            }
        }
    } else {
        json_object_set_new(root, "stage", json_string("DONE"));
    }
    json_object_set_new(root, "processes", procs);
    if (x->conf_ok && x->conf.health.kind != BO_TCONF_HEALTH_NONE) {
        const struct bo_health *h = &x->health;
        json_t *jh =
            json_pack("{s:s, s:i, s:i, s:i, s:i, s:b, s:s}", "kind",
                      x->conf.health.kind == BO_TCONF_HEALTH_HTTP ? "http" : "shell", "attempts",
                      h->attempts, "consecutive_failures", h->consecutive_failures,
                      "consecutive_successes", h->consecutive_successes, "total_failures",
                      h->total_failures, "healthy", h->healthy, "last_failure", x->hc_last);
        if (jh != NULL) {
            json_object_set_new(root, "health", jh);
        }
    }
    return root;
}

static void write_checkpoint(struct exec *x)
{
    json_t *j = ckpt_json(x);
    if (j == NULL) {
        bo_warn("checkpoint: out of memory");
        return;
    }
    char *cmp = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (cmp != NULL && x->last_ckpt != NULL && strcmp(cmp, x->last_ckpt) == 0) {
        free(cmp);
        json_decref(j);
        return;
    }
    json_object_set_new(j, "updated_ms", json_integer(now_ms()));
    char *s = json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (s == NULL || cmp == NULL) {
        free(s);
        free(cmp);
        bo_warn("checkpoint: out of memory");
        return;
    }
    struct bo_err err = BO_ERR_INIT;
    struct iovec iov[2] = {{s, strlen(s)}, {"\n", 1}};
    int rv = bo_fs_write_atomic(x->dir, "checkpoint.json", ".tmp.", iov, 2, &err);
    free(s);
    if (rv != BO_OK) {
        bo_warn("checkpoint: %s", bo_err_msg(&err, rv));
        free(cmp);
        return;
    }
    free(x->last_ckpt);
    x->last_ckpt = cmp;
}

/* ---- helpers ---- */

static const char *proc_name(struct exec *x, size_t idx)
{
    return x->conf.procs[idx].name;
}

static void mib_text(int64_t bytes, char *out, size_t size)
{
    if (bytes % MIB == 0) {
        snprintf(out, size, "%lld MiB", (long long)(bytes / MIB));
    } else {
        snprintf(out, size, "%.1f MiB", (double)bytes / (double)MIB);
    }
}

static void tmpl_ctx(struct exec *x, struct bo_tmpl_ctx *ctx)
{
    ctx->task_id = x->conf.task_id;
    ctx->hostname = x->conf.hostname;
    ctx->user = x->user;
    ctx->instance = x->conf.instance;
    ctx->ports = x->conf.ports;
    ctx->nports = x->conf.nports;
}

/* The pids libuv waits for: live runs and the health-check shell. */
static size_t managed_pids(struct exec *x, pid_t *out, size_t cap)
{
    size_t n = 0;
    for (struct run *r = x->runs; r != NULL; r = r->next) {
        if (!r->exited && r->proc.pid > 0 && n < cap) {
            out[n++] = r->proc.pid;
        }
    }
    if (x->hc_proc_open && x->hc_pid > 0 && n < cap) {
        out[n++] = x->hc_pid;
    }
    return n;
}

static void reap(struct exec *x)
{
    size_t cap = x->conf.nprocs + 2;
    pid_t *pids = bo_calloc(cap, sizeof(*pids));
    if (pids == NULL) {
        return;
    }
    size_t n = managed_pids(x, pids, cap);
    bo_proc_reap_orphans(pids, n);
    bo_free(pids);
}

static int count_stragglers(struct exec *x)
{
    pid_t skip[1] = {x->hc_proc_open ? x->hc_pid : 0};
    return bo_proc_count_tree(getpid(), skip, 1);
}

static void signal_all(struct exec *x, int sig)
{
    pid_t skip[1] = {0};
    size_t n = bo_proc_signal_tree(getpid(), sig, skip, 0);
    bo_info("sent %s to %zu processes", sig == SIGKILL ? "SIGKILL" : "SIGTERM", n);
    (void)x;
}

static void fail_task(struct exec *x, const char *msg)
{
    if (x->runner_ok && !x->done) {
        bo_warn("failing the task: %s", msg);
        x->health_on = false;
        bo_runner_kill(&x->runner, BO_END_FAILED, msg, now_ms());
        pump(x);
    }
}

/* ---- process environment ---- */

struct env {
    char home[PATH_MAX + 8];
    char user[300];
    char logname[300];
    char bash_env[PATH_MAX + 16];
    char *v[8];
};

static void make_env(struct exec *x, struct env *e)
{
    size_t n = 0;
    snprintf(e->home, sizeof(e->home), "HOME=%s", x->conf.sandbox);
    snprintf(e->user, sizeof(e->user), "USER=%s", x->user);
    snprintf(e->logname, sizeof(e->logname), "LOGNAME=%s", x->user);
    e->v[n++] = e->home;
    e->v[n++] = e->user;
    e->v[n++] = e->logname;
    e->v[n++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    char profile[PATH_MAX];
    if (bo_fs_join(profile, sizeof(profile), x->conf.sandbox, ".thermos_profile") == BO_OK &&
        access(profile, F_OK) == 0) {
        snprintf(e->bash_env, sizeof(e->bash_env), "BASH_ENV=%s", profile);
        e->v[n++] = e->bash_env;
    }
    e->v[n] = NULL;
}

static void fill_options(struct exec *x, uv_process_options_t *o, struct env *e, char **args)
{
    make_env(x, e);
    o->file = "/bin/bash";
    o->args = args;
    o->env = e->v;
    o->cwd = x->conf.sandbox;
    o->flags = UV_PROCESS_DETACHED;
    if (x->conf.has_ids) {
        o->flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
        o->uid = (uv_uid_t)x->conf.uid;
        o->gid = (uv_gid_t)x->conf.gid;
    }
}

/* ---- logs ---- */

static int open_log(struct run *r, int which, int extra_flags)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/%s", r->logdir, which == 0 ? "stdout" : "stderr");
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | extra_flags, 0644);
    if (fd >= 0 && r->x->conf.has_ids && fchown(fd, r->x->conf.uid, r->x->conf.gid) != 0) {
        bo_debug("chown '%s': %s", path, strerror(errno));
    }
    return fd;
}

/* stdout -> stdout.1 -> ... -> stdout.<backups>; the oldest is dropped. */
static void rotate_log(struct run *r, int which)
{
    const struct bo_tconf_proc *pc = &r->x->conf.procs[r->idx];
    const char *base = which == 0 ? "stdout" : "stderr";
    char from[PATH_MAX + 32], to[PATH_MAX + 32];
    close(r->fds[which]);
    r->fds[which] = -1;
    if (pc->log_backups > 0) {
        for (int i = pc->log_backups - 1; i >= 0; i--) {
            if (i == 0) {
                snprintf(from, sizeof(from), "%s/%s", r->logdir, base);
            } else {
                snprintf(from, sizeof(from), "%s/%s.%d", r->logdir, base, i);
            }
            snprintf(to, sizeof(to), "%s/%s.%d", r->logdir, base, i + 1);
            if (rename(from, to) != 0 && errno != ENOENT) {
                bo_debug("rename '%s': %s", from, strerror(errno));
            }
        }
        r->fds[which] = open_log(r, which, 0);
    } else {
        r->fds[which] = open_log(r, which, O_TRUNC);
    }
    r->written[which] = 0;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char slab[65536]; /* the loop is single-threaded; reads are consumed at once */
    buf->base = slab;
    buf->len = sizeof(slab);
}

static void run_unref(struct run *r);

static void on_handle_closed(uv_handle_t *h)
{
    run_unref(h->data);
}

/* Output of a piped run: to the console and/or the rotated log file. */
static void log_data(struct run *r, int which, const char *data, size_t n)
{
    const struct bo_tconf_proc *pc = &r->x->conf.procs[r->idx];
    if (pc->log_dest == BO_TCONF_LOG_CONSOLE || pc->log_dest == BO_TCONF_LOG_BOTH) {
        write_all(which == 0 ? STDOUT_FILENO : STDERR_FILENO, data, n);
    }
    /* Files hold log_size bytes each, however the output arrives (a process
     * that prints and exits at once arrives as one big read). A file is
     * rotated before the next write once it is full, not right after, so the
     * newest output is always in the current file. */
    while (n > 0 && r->fds[which] >= 0) {
        if (pc->log_rotate && r->written[which] >= pc->log_size) {
            rotate_log(r, which);
            if (r->fds[which] < 0) {
                return;
            }
        }
        size_t chunk = n;
        if (pc->log_rotate && (int64_t)chunk > pc->log_size - r->written[which]) {
            chunk = (size_t)(pc->log_size - r->written[which]);
        }
        write_all(r->fds[which], data, chunk);
        r->written[which] += (int64_t)chunk;
        data += chunk;
        n -= chunk;
    }
}

static void on_log_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct run *r = s->data;
    int which = s == (uv_stream_t *)&r->pipes[0] ? 0 : 1;
    if (nread < 0) {
        uv_close((uv_handle_t *)s, on_handle_closed);
        return;
    }
    log_data(r, which, buf->base, (size_t)nread);
}

/* The process has exited: what it wrote is all in its pipes already, but
 * libuv may deliver the exit before the last reads. Take it now, so the
 * logs are complete before the run's end is reported (a process that
 * prints and exits at once must not lose its last lines). Non-blocking:
 * a daemon it left behind may keep a pipe open. */
static void drain_pipes(struct run *r)
{
    char buf[65536];
    for (int i = 0; i < 2; i++) {
        uv_os_fd_t fd;
        if (uv_is_closing((uv_handle_t *)&r->pipes[i]) ||
            uv_fileno((uv_handle_t *)&r->pipes[i], &fd) != 0) {
            continue;
        }
        for (;;) {
            ssize_t n = read(fd, buf, sizeof(buf));
            if (n <= 0) {
                break; /* EOF, EAGAIN (nothing more), or an error */
            }
            log_data(r, i, buf, (size_t)n);
        }
    }
}

/* ---- runs ---- */

static void run_unref(struct run *r)
{
    if (--r->refs > 0) {
        return;
    }
    struct exec *x = r->x;
    for (struct run **pp = &x->runs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    for (int i = 0; i < 2; i++) {
        if (r->fds[i] >= 0) {
            close(r->fds[i]);
        }
    }
    bo_free(r);
}

/* The cgroup's OOM-kill counter rose: fail the task, naming the process
 * when we know which one died (`who`, or NULL). */
static void check_oom(struct exec *x, const char *who)
{
    if (!x->oom_watch)
        return;
    uint64_t v;
    if (bo_proc_read_counter(x->oom_path, x->oom_key, &v, NULL) != BO_OK || v <= x->oom_base)
        return;
    x->oom_base = v;
    char lim[32], what[160], msg[300];
    mib_text(x->mem_limit_shown, lim, sizeof(lim));
    if (who)
        snprintf(what, sizeof(what), "process '%s'", who);
    else
        snprintf(what, sizeof(what), "a process");
    snprintf(msg, sizeof(msg), "memory limit exceeded: %s killed by the OOM killer (limit %s)",
             what, lim);
    fail_task(x, msg);
}

static void on_proc_exit(uv_process_t *h, int64_t status, int term_signal)
{
    struct run *r = h->data;
    struct exec *x = r->x;
    r->exited = true;
    if (x->current[r->idx] == r) {
        x->current[r->idx] = NULL;
    }
    int64_t now = now_ms();
    bo_info("process '%s' run %d exited: %s %d", proc_name(x, r->idx), r->run,
            term_signal != 0 ? "signal" : "code", term_signal != 0 ? term_signal : (int)status);
    check_oom(x, proc_name(x, r->idx));
    if (r->piped) {
        drain_pipes(r);
    }
    bo_runner_exited(&x->runner, r->idx, (int)status, term_signal, now);
    int stragglers = count_stragglers(x);
    bo_runner_stragglers(&x->runner, stragglers, now);
    uv_close((uv_handle_t *)h, on_handle_closed);
    pump(x);
    maybe_cut_kill_wait(x, stragglers);
}

static void kill_step(struct exec *x);

/* During the lifecycle waits: once nothing is left, skip to the end. */
static void maybe_cut_kill_wait(struct exec *x, int stragglers)
{
    if ((x->kill_phase == KILL_GRACEFUL || x->kill_phase == KILL_SHUTDOWN) && !x->done &&
        bo_runner_alive(&x->runner) == 0 && stragglers <= 0) {
        x->kill_phase = KILL_SHUTDOWN;
        kill_step(x);
    }
}

/* Without a memory cgroup, a hard backstop between two RSS samples:
 * RLIMIT_DATA (private writable memory, which is what a runaway heap grows)
 * at four times the limit plus 256 MiB, set on each process right after it
 * is spawned and inherited by what it starts. Not at the limit itself: data
 * segments count reservations that are never touched, and the RSS sample
 * is the real enforcement, with the clear message; a process that outruns
 * the sampler past the backstop sees its allocations fail instead
 * (docs/executor.md). Set on the child, not on the executor, whose own
 * reservations (sanitizer shadow memory, say) are none of the task's
 * business. */
static void data_backstop(struct exec *x, int pid)
{
    if (!x->conf.mem_sampling || x->conf.ram_bytes <= 0)
        return;
    struct rlimit rl;
    rlim_t cap = (rlim_t)x->conf.ram_bytes * 4 + ((rlim_t)256 << 20);
    if (prlimit(pid, RLIMIT_DATA, NULL, &rl) != 0 ||
        (rl.rlim_max != RLIM_INFINITY && cap >= rl.rlim_max))
        return;
    rl.rlim_cur = cap;
    if (prlimit(pid, RLIMIT_DATA, &rl, NULL) != 0 && errno != ESRCH)
        bo_warn("cannot set RLIMIT_DATA on pid %d: %s", pid, strerror(errno));
}

static int spawn_run(struct exec *x, size_t idx, int run_no, struct bo_err *err)
{
    const struct bo_tconf_proc *pc = &x->conf.procs[idx];
    struct bo_tmpl_ctx ctx;
    tmpl_ctx(x, &ctx);
    char *cmd = NULL;
    int rv = bo_tmpl_expand(&ctx, pc->cmdline, &cmd, err);
    if (rv != BO_OK) {
        return rv;
    }
    struct run *r = bo_calloc(1, sizeof(*r));
    if (r == NULL) {
        bo_free(cmd);
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    r->x = x;
    r->idx = idx;
    r->run = run_no;
    r->fds[0] = r->fds[1] = -1;
    int n =
        snprintf(r->logdir, sizeof(r->logdir), "%s/.logs/%s/%d", x->conf.sandbox, pc->name, run_no);
    if (n < 0 || (size_t)n >= sizeof(r->logdir)) {
        rv = bo_errf(err, BO_ETOOBIG, "log path is too long");
        goto err_after_run;
    }
    if (pc->log_dest != BO_TCONF_LOG_NONE && (rv = bo_fs_mkdirs(r->logdir, err)) != BO_OK) {
        goto err_after_run;
    }
    if (x->conf.has_ids && pc->log_dest != BO_TCONF_LOG_NONE) {
        char d[PATH_MAX];
        snprintf(d, sizeof(d), "%s/.logs", x->conf.sandbox);
        if (chown(d, x->conf.uid, x->conf.gid) != 0 ||
            chown(r->logdir, x->conf.uid, x->conf.gid) != 0) {
            bo_debug("chown log dirs: %s", strerror(errno));
        }
    }
    uv_stdio_container_t stdio[3];
    memset(stdio, 0, sizeof(stdio));
    stdio[0].flags = UV_IGNORE;
    r->piped = pc->log_rotate || pc->log_dest == BO_TCONF_LOG_BOTH;
    for (int i = 0; i < 2; i++) {
        if (pc->log_dest == BO_TCONF_LOG_NONE) {
            stdio[i + 1].flags = UV_IGNORE;
        } else if (r->piped) {
            uv_pipe_init(x->loop, &r->pipes[i], 0);
            r->pipes[i].data = r;
            r->refs++;
            stdio[i + 1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
            stdio[i + 1].data.stream = (uv_stream_t *)&r->pipes[i];
            if (pc->log_dest != BO_TCONF_LOG_CONSOLE) {
                r->fds[i] = open_log(r, i, 0);
            }
        } else if (pc->log_dest == BO_TCONF_LOG_CONSOLE) {
            stdio[i + 1].flags = UV_INHERIT_FD;
            stdio[i + 1].data.fd = i + 1;
        } else {
            r->fds[i] = open_log(r, i, 0);
            if (r->fds[i] < 0) {
                rv = bo_errf(err, bo_err_from_errno(errno), "open log in '%s': %s", r->logdir,
                             strerror(errno));
                goto err_after_pipes;
            }
            stdio[i + 1].flags = UV_INHERIT_FD;
            stdio[i + 1].data.fd = r->fds[i];
        }
    }
    char *args[] = {"bash", "-c", cmd, NULL};
    uv_process_options_t o;
    memset(&o, 0, sizeof(o));
    struct env env;
    fill_options(x, &o, &env, args);
    o.exit_cb = on_proc_exit;
    o.stdio = stdio;
    o.stdio_count = 3;
    r->proc.data = r;
    int uvrv = uv_spawn(x->loop, &r->proc, &o);
    if (uvrv != 0) {
        /* uv_spawn leaves the handle initialized: close it like any other. */
        rv = bo_errf(err, BO_EIO, "spawn: %s", uv_strerror(uvrv));
        r->exited = true;
        r->refs++;
        r->next = x->runs;
        x->runs = r;
        for (int i = 0; i < 2; i++) {
            if (r->piped) {
                uv_close((uv_handle_t *)&r->pipes[i], on_handle_closed);
            }
        }
        uv_close((uv_handle_t *)&r->proc, on_handle_closed);
        bo_free(cmd);
        return rv;
    }
    bo_free(cmd);
    data_backstop(x, r->proc.pid);
    r->refs++;
    r->next = x->runs;
    x->runs = r;
    x->current[idx] = r;
    if (r->piped) {
        for (int i = 0; i < 2; i++) {
            uv_read_start((uv_stream_t *)&r->pipes[i], on_alloc, on_log_read);
        }
    } else {
        for (int i = 0; i < 2; i++) {
            if (r->fds[i] >= 0) {
                close(r->fds[i]); /* the child has its copy */
                r->fds[i] = -1;
            }
        }
    }
    bo_info("process '%s' run %d started: pid %d", pc->name, run_no, r->proc.pid);
    bo_runner_forked(&x->runner, idx, r->proc.pid, now_ms());
    return BO_OK;

err_after_pipes:
    /* pipes were initialized: they must be closed through the loop */
    if (r->piped) {
        r->exited = true;
        r->next = x->runs;
        x->runs = r;
        for (int i = 0; i < 2; i++) {
            uv_close((uv_handle_t *)&r->pipes[i], on_handle_closed);
        }
        bo_free(cmd);
        return rv;
    }
err_after_run:
    for (int i = 0; i < 2; i++) {
        if (r->fds[i] >= 0) {
            close(r->fds[i]);
        }
    }
    bo_free(r);
    bo_free(cmd);
    return rv;
}

/* ---- the pump: runner actions ---- */

static void on_wake(uv_timer_t *t)
{
    struct exec *x = t->data;
    bo_runner_tick(&x->runner, now_ms());
    pump(x);
}

static void pump(struct exec *x)
{
    if (!x->runner_ok || x->closing) {
        return;
    }
    bool done = false;
    for (;;) {
        size_t n = bo_runner_take(&x->runner, x->acts);
        if (n == 0) {
            break;
        }
        for (size_t i = 0; i < n; i++) {
            const struct bo_runner_act *a = &x->acts[i];
            switch (a->kind) {
            case BO_RUNNER_START: {
                struct bo_err err = BO_ERR_INIT;
                int rv = spawn_run(x, a->proc, a->run, &err);
                if (rv != BO_OK) {
                    bo_warn("process '%s': %s", proc_name(x, a->proc), bo_err_msg(&err, rv));
                    bo_runner_spawn_failed(&x->runner, a->proc, bo_err_msg(&err, rv), now_ms());
                }
                break;
            }
            case BO_RUNNER_TERM_ALL:
                signal_all(x, SIGTERM);
                break;
            case BO_RUNNER_KILL_ALL:
                signal_all(x, SIGKILL);
                break;
            case BO_RUNNER_STAGE:
                bo_info("stage %s", bo_task_stage_name(a->stage));
                if (a->stage != BO_STAGE_ACTIVE) {
                    x->health_on = false;
                }
                break;
            case BO_RUNNER_DONE:
                done = true;
                break;
            default:
                assert(0);
            }
        }
    }
    if (done) {
        finish_when_quiet(x);
        return;
    }
    write_checkpoint(x);
    int64_t wake = x->runner.wake_ms;
    if (wake == INT64_MAX) {
        uv_timer_stop(&x->wake);
    } else {
        int64_t d = wake - now_ms();
        uv_timer_start(&x->wake, on_wake, d < 0 ? 0 : (uint64_t)d + 1, 0);
    }
}

/* ---- health checks ---- */

static void health_schedule(struct exec *x, int64_t delay_ms);

static void health_result(struct exec *x, bool ok, const char *why)
{
    x->hc_busy = false;
    if (!x->health_on || x->done) {
        return;
    }
    if (!ok) {
        snprintf(x->hc_last, sizeof(x->hc_last), "%s", why);
        bo_info("health check failed: %s", why);
    }
    enum bo_health_verdict v = bo_health_record(&x->health, ok);
    if (v == BO_HEALTH_BECAME_HEALTHY) {
        if (strcmp(x->status, "STARTING") == 0) {
            write_update(x, "RUNNING", "healthy");
        }
    } else if (v == BO_HEALTH_FAILED) {
        char msg[400];
        const struct bo_health *h = &x->health;
        if (h->consecutive_failures > h->max_consecutive_failures) {
            snprintf(msg, sizeof(msg), "health check failed %d times: %s", h->consecutive_failures,
                     x->hc_last);
        } else {
            snprintf(msg, sizeof(msg), "not healthy within %d health checks: %s", h->attempts,
                     x->hc_last[0] != '\0' ? x->hc_last : "too few successes");
        }
        fail_task(x, msg);
        return;
    }
    write_checkpoint(x);
    int64_t next = x->hc_started + x->conf.health.interval_ms - now_ms();
    health_schedule(x, next < 0 ? 0 : next);
}

static bool body_matches(const char *body, const char *want)
{
    while (isspace((unsigned char)*body)) {
        body++;
    }
    size_t n = strlen(body);
    while (n > 0 && isspace((unsigned char)body[n - 1])) {
        n--;
    }
    return strlen(want) == n && strncasecmp(body, want, n) == 0;
}

static void on_health_http(const struct bo_httpc_resp *resp, void *data)
{
    struct exec *x = data;
    x->hc_call = NULL;
    if (resp->result == BO_ECANCELED) {
        x->hc_busy = false;
        return;
    }
    const struct bo_tconf_health *hc = &x->conf.health;
    char why[256] = "";
    bool ok = true;
    if (resp->result != BO_OK) {
        snprintf(why, sizeof(why), "request failed: %s",
                 resp->error != NULL ? resp->error : bo_strerror(resp->result));
        ok = false;
    } else if (hc->expected_response_code != 0 && (int)resp->status != hc->expected_response_code) {
        snprintf(why, sizeof(why), "expected HTTP %d, got HTTP %u", hc->expected_response_code,
                 resp->status);
        ok = false;
    } else if (hc->expected_response[0] != '\0' &&
               !body_matches(resp->body, hc->expected_response)) {
        if (resp->status < 200 || resp->status >= 300) {
            snprintf(why, sizeof(why), "expected '%s', got HTTP %u", hc->expected_response,
                     resp->status);
        } else {
            snprintf(why, sizeof(why), "expected '%s', got '%.60s'", hc->expected_response,
                     resp->body);
        }
        ok = false;
    } else if (hc->expected_response_code == 0 && hc->expected_response[0] == '\0' &&
               (resp->status < 200 || resp->status >= 300)) {
        snprintf(why, sizeof(why), "got HTTP %u", resp->status);
        ok = false;
    }
    health_result(x, ok, why);
}

static void on_hc_proc_closed(uv_handle_t *h)
{
    struct exec *x = h->data;
    x->hc_proc_open = false;
    x->hc_pid = 0;
}

static void on_hc_exit(uv_process_t *h, int64_t status, int term_signal)
{
    struct exec *x = h->data;
    bool timed_out = !uv_is_active((uv_handle_t *)&x->hc_timeout) && term_signal == SIGKILL;
    uv_timer_stop(&x->hc_timeout);
    uv_close((uv_handle_t *)h, on_hc_proc_closed);
    char why[128] = "";
    if (timed_out) {
        snprintf(why, sizeof(why), "shell command timed out after %lld ms",
                 (long long)x->conf.health.timeout_ms);
    } else if (term_signal != 0) {
        snprintf(why, sizeof(why), "shell command killed by signal %d", term_signal);
    } else if (status != 0) {
        snprintf(why, sizeof(why), "shell command exited with code %d", (int)status);
    }
    health_result(x, why[0] == '\0', why);
}

static void on_hc_timeout(uv_timer_t *t)
{
    struct exec *x = t->data;
    if (x->hc_proc_open && x->hc_pid > 0) {
        kill(-x->hc_pid, SIGKILL); /* its own process group (detached) */
        kill(x->hc_pid, SIGKILL);
    }
}

static void health_check(uv_timer_t *t)
{
    struct exec *x = t->data;
    if (!x->health_on || x->done || x->hc_busy) {
        return;
    }
    x->hc_started = now_ms();
    char snooze[PATH_MAX];
    if (bo_fs_join(snooze, sizeof(snooze), x->conf.sandbox, ".healthchecksnooze") == BO_OK &&
        access(snooze, F_OK) == 0) {
        bo_debug("health checks snoozed");
        health_schedule(x, x->conf.health.interval_ms);
        return;
    }
    const struct bo_tconf_health *hc = &x->conf.health;
    x->hc_busy = true;
    if (hc->kind == BO_TCONF_HEALTH_HTTP) {
        char url[512];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", hc->port, hc->endpoint);
        struct bo_httpc_opts o = {.method = "GET",
                                  .url = url,
                                  .timeout_ms = (unsigned)hc->timeout_ms,
                                  .max_response = 65536};
        struct bo_err err = BO_ERR_INIT;
        int rv = bo_httpc_request(x->http, &o, on_health_http, x, &x->hc_call, &err);
        if (rv != BO_OK) {
            health_result(x, false, bo_err_msg(&err, rv));
        }
        return;
    }
    char *args[] = {"bash", "-c", x->hc_cmd, NULL};
    uv_process_options_t o;
    memset(&o, 0, sizeof(o));
    struct env env;
    fill_options(x, &o, &env, args);
    uv_stdio_container_t stdio[3];
    memset(stdio, 0, sizeof(stdio));
    for (int i = 0; i < 3; i++) {
        stdio[i].flags = UV_IGNORE;
    }
    o.stdio = stdio;
    o.stdio_count = 3;
    o.exit_cb = on_hc_exit;
    x->hc_proc.data = x;
    int uvrv = uv_spawn(x->loop, &x->hc_proc, &o);
    x->hc_proc_open = true;
    if (uvrv != 0) {
        uv_close((uv_handle_t *)&x->hc_proc, on_hc_proc_closed);
        char why[128];
        snprintf(why, sizeof(why), "spawn shell command: %s", uv_strerror(uvrv));
        health_result(x, false, why);
        return;
    }
    x->hc_pid = x->hc_proc.pid;
    uv_timer_start(&x->hc_timeout, on_hc_timeout, (uint64_t)hc->timeout_ms, 0);
}

static void health_schedule(struct exec *x, int64_t delay_ms)
{
    if (x->health_on && !x->done) {
        uv_timer_start(&x->health_timer, health_check, (uint64_t)delay_ms, 0);
    }
}

/* ---- the 1 s tick: orphans, stragglers, memory ---- */

static void on_tick(uv_timer_t *t)
{
    struct exec *x = t->data;
    if (x->done) {
        return;
    }
    reap(x);
    int64_t now = now_ms();
    check_oom(x, NULL);
    if (x->conf.mem_sampling && x->conf.ram_bytes > 0 && !x->runner.killing) {
        int64_t rss = bo_proc_tree_rss(getpid());
        if (rss > x->conf.ram_bytes) {
            char used[32], lim[32], msg[300];
            mib_text(rss - rss % MIB, used, sizeof(used));
            mib_text(x->conf.ram_bytes, lim, sizeof(lim));
            snprintf(msg, sizeof(msg), "memory limit exceeded: %s used, limit %s", used, lim);
            fail_task(x, msg);
        }
    }
    /* Stragglers (processes the runner did not start: double-forked
     * daemons) matter only while the task winds down, and counting them
     * walks all of /proc: not every second of a running task's life, or a
     * host with a hundred idle tasks spends a third of a core on it. */
    if (!x->done && (x->runner.stage != BO_STAGE_ACTIVE || x->kill_phase != KILL_NONE)) {
        int stragglers = count_stragglers(x);
        bo_runner_stragglers(&x->runner, stragglers, now);
        pump(x);
        maybe_cut_kill_wait(x, stragglers);
    }
}

static void on_sigchld(uv_signal_t *s, int signum)
{
    (void)signum;
    reap(s->data);
}

/* ---- disk ---- */

static void disk_work(uv_work_t *w)
{
    struct exec *x = w->data;
    x->disk_rv = bo_proc_disk_usage(x->conf.sandbox, &x->disk_used, NULL);
}

static void disk_after(uv_work_t *w, int status)
{
    struct exec *x = w->data;
    x->disk_busy = false;
    if (status != 0 || x->done || x->disk_rv != BO_OK) {
        return;
    }
    if ((int64_t)x->disk_used > x->conf.disk_bytes && !x->runner.killing) {
        char used[32], lim[32], msg[300];
        mib_text((int64_t)x->disk_used - (int64_t)x->disk_used % MIB, used, sizeof(used));
        mib_text(x->conf.disk_bytes, lim, sizeof(lim));
        snprintf(msg, sizeof(msg), "disk limit exceeded: %s used, limit %s", used, lim);
        fail_task(x, msg);
    }
}

static void on_disk_timer(uv_timer_t *t)
{
    struct exec *x = t->data;
    if (x->disk_busy || x->done) {
        return;
    }
    x->disk_work.data = x;
    if (uv_queue_work(x->loop, &x->disk_work, disk_work, disk_after) == 0) {
        x->disk_busy = true;
    }
}

/* ---- kill ---- */

static void on_lifecycle(const struct bo_httpc_resp *resp, void *data)
{
    struct exec *x = data;
    x->lc_call = NULL;
    if (resp->result == BO_OK) {
        bo_info("lifecycle endpoint answered HTTP %u", resp->status);
    } else if (resp->result != BO_ECANCELED) {
        bo_info("lifecycle endpoint: %s", resp->error != NULL ? resp->error : "failed");
    }
}

static void on_kill_timer(uv_timer_t *t)
{
    kill_step(t->data);
}

static void post_lifecycle(struct exec *x, const char *endpoint, int64_t wait_ms)
{
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", x->conf.lifecycle.port, endpoint);
    struct bo_httpc_opts o = {.method = "POST",
                              .url = url,
                              .body = "",
                              .body_len = 0,
                              .content_type = "text/plain",
                              .timeout_ms = wait_ms > 0 ? (unsigned)wait_ms : 1000};
    struct bo_err err = BO_ERR_INIT;
    if (x->lc_call != NULL) {
        bo_httpc_cancel(x->lc_call);
        x->lc_call = NULL;
    }
    int rv = bo_httpc_request(x->http, &o, on_lifecycle, x, &x->lc_call, &err);
    if (rv != BO_OK) {
        bo_info("POST %s: %s", url, bo_err_msg(&err, rv));
    } else {
        bo_info("POST %s", url);
    }
    uv_timer_start(&x->kill_timer, on_kill_timer, (uint64_t)wait_ms, 0);
}

/* Advance the kill sequence one phase. */
static void kill_step(struct exec *x)
{
    if (x->done) {
        return;
    }
    bool any = bo_runner_alive(&x->runner) > 0 || count_stragglers(x) > 0;
    if (x->kill_phase == KILL_NONE && x->conf.lifecycle.port > 0 && any) {
        x->kill_phase = KILL_GRACEFUL;
        post_lifecycle(x, x->conf.lifecycle.graceful_endpoint, x->conf.lifecycle.graceful_wait_ms);
        return;
    }
    if (x->kill_phase == KILL_GRACEFUL && any) {
        x->kill_phase = KILL_SHUTDOWN;
        post_lifecycle(x, x->conf.lifecycle.shutdown_endpoint, x->conf.lifecycle.shutdown_wait_ms);
        return;
    }
    x->kill_phase = KILL_RUNNER;
    uv_timer_stop(&x->kill_timer);
    bo_runner_kill(&x->runner, BO_END_KILLED, "killed by request", now_ms());
    pump(x);
}

static void on_stop_timeout(uv_timer_t *t)
{
    struct exec *x = t->data;
    if (x->done) {
        return;
    }
    bo_warn("stop timeout: killing everything");
    if (!x->runner.killing) {
        x->runner.killing = true;
        x->runner.end = BO_END_KILLED;
        snprintf(x->runner.msg, sizeof(x->runner.msg), "killed by request");
    }
    x->runner.stage = BO_STAGE_DONE;
    finish(x);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct exec *x = s->data;
    bo_info("got signal %d", signum);
    if (x->done || x->kill_phase != KILL_NONE || !x->runner_ok) {
        return;
    }
    x->health_on = false;
    uv_timer_stop(&x->health_timer);
    uv_timer_start(&x->stop_timer, on_stop_timeout, (uint64_t)x->conf.stop_timeout_ms, 0);
    if (x->conf.lifecycle.port > 0) {
        bo_runner_drain(&x->runner, now_ms());
        pump(x);
    }
    kill_step(x);
}

/* ---- the end ---- */

static void close_cb_nop(uv_handle_t *h)
{
    (void)h;
}

static void on_httpc_closed(struct bo_httpc *c, void *data)
{
    (void)data;
    bo_httpc_free(c);
}

static void close_all(struct exec *x)
{
    x->closing = true;
    uv_timer_t *timers[] = {&x->wake,       &x->tick,       &x->health_timer, &x->hc_timeout,
                            &x->disk_timer, &x->kill_timer, &x->stop_timer,   &x->quiet_timer};
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
        if (!uv_is_closing((uv_handle_t *)timers[i])) {
            uv_close((uv_handle_t *)timers[i], close_cb_nop);
        }
    }
    uv_signal_t *sigs[] = {&x->sigterm, &x->sigint, &x->sigchld};
    for (size_t i = 0; i < 3; i++) {
        uv_close((uv_handle_t *)sigs[i], close_cb_nop);
    }
    if (x->hc_proc_open && !uv_is_closing((uv_handle_t *)&x->hc_proc)) {
        uv_close((uv_handle_t *)&x->hc_proc, on_hc_proc_closed);
    }
    for (struct run *r = x->runs; r != NULL; r = r->next) {
        if (!r->exited && !uv_is_closing((uv_handle_t *)&r->proc)) {
            r->exited = true;
            uv_close((uv_handle_t *)&r->proc, on_handle_closed);
        }
        if (r->piped) {
            for (int i = 0; i < 2; i++) {
                if (!uv_is_closing((uv_handle_t *)&r->pipes[i])) {
                    uv_close((uv_handle_t *)&r->pipes[i], on_handle_closed);
                }
            }
        }
    }
    if (x->http != NULL) {
        bo_httpc_close(x->http, on_httpc_closed, x);
        x->http = NULL;
    }
}

/* SIGKILL whatever is left below us and reap it; bounded to ~2 s. */
/* The runner is done once its own processes are; processes it never
 * started (a daemon that double-forked away from them) got the kill's
 * SIGTERM too and may still be running their handlers. Like the runner's
 * own, they get what is left of the finalization wait before finish()
 * SIGKILLs them: polled every 20 ms, bounded by the runner's deadline (and
 * by stop_timeout_ms, which finishes regardless). */
static void on_quiet_check(uv_timer_t *t);

static void finish_when_quiet(struct exec *x)
{
    if (!x->done && x->runner.killing && now_ms() < x->runner.deadline_ms &&
        count_stragglers(x) > 0) {
        uv_timer_start(&x->quiet_timer, on_quiet_check, 20, 0);
        return;
    }
    finish(x);
}

static void on_quiet_check(uv_timer_t *t)
{
    finish_when_quiet(t->data);
}

static void kill_leftovers(struct exec *x)
{
    for (int i = 0; i < 200; i++) {
        pid_t skip[1] = {0};
        size_t n = bo_proc_signal_tree(getpid(), SIGKILL, skip, 0);
        reap(x);
        if (n == 0) {
            return;
        }
        if (i == 0) {
            bo_info("killed %zu leftover processes", n);
        }
        usleep(10000);
    }
}

static void finish(struct exec *x)
{
    if (x->done) {
        return;
    }
    x->done = true;
    x->health_on = false;
    if (x->hc_call != NULL) {
        bo_httpc_cancel(x->hc_call);
    }
    kill_leftovers(x);
    const char *status = "FAILED";
    if (x->runner.end == BO_END_FINISHED) {
        status = "FINISHED";
    } else if (x->runner.end == BO_END_KILLED) {
        status = "KILLED";
    }
    snprintf(x->status, sizeof(x->status), "%s", status);
    write_checkpoint(x);
    write_update(x, status, x->runner.msg[0] != '\0' ? x->runner.msg : status);
    close_all(x);
}

/* ---- start-up ---- */

static void resolve_user(struct exec *x)
{
    if (x->conf.user != NULL && x->conf.user[0] != '\0') {
        snprintf(x->user, sizeof(x->user), "%s", x->conf.user);
        return;
    }
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res) == 0 && res != NULL) {
        snprintf(x->user, sizeof(x->user), "%s", pw.pw_name);
    } else {
        snprintf(x->user, sizeof(x->user), "%u", (unsigned)geteuid());
    }
}

/* Expand every template once, so an unknown reference fails the task now
 * rather than at the process's turn. */
static int check_templates(struct exec *x, struct bo_err *err)
{
    struct bo_tmpl_ctx ctx;
    tmpl_ctx(x, &ctx);
    for (size_t i = 0; i < x->conf.nprocs; i++) {
        char *out = NULL;
        int rv = bo_tmpl_expand(&ctx, x->conf.procs[i].cmdline, &out, err);
        if (rv != BO_OK) {
            return bo_err_wrapf(err, rv, "process '%s'", x->conf.procs[i].name);
        }
        bo_free(out);
    }
    if (x->conf.health.kind == BO_TCONF_HEALTH_SHELL) {
        int rv = bo_tmpl_expand(&ctx, x->conf.health.shell_command, &x->hc_cmd, err);
        if (rv != BO_OK) {
            return bo_err_wrapf(err, rv, "health check shell command");
        }
    }
    return BO_OK;
}

static int setup_cgroups(struct exec *x, struct bo_err *err)
{
    const char *dirs[] = {x->conf.cg_memory, x->conf.cg_cpu, x->conf.cg_unified};
    for (int i = 0; i < 3; i++) {
        if (dirs[i] != NULL) {
            int rv = bo_proc_join_cgroup(dirs[i], err);
            if (rv != BO_OK) {
                return rv;
            }
            bo_info("joined cgroup '%s'", dirs[i]);
        }
    }
    const char *memdir = x->conf.cg_unified != NULL ? x->conf.cg_unified : x->conf.cg_memory;
    if (memdir != NULL) {
        bool v2 = x->conf.cg_unified != NULL;
        snprintf(x->oom_path, sizeof(x->oom_path), "%s/%s", memdir,
                 v2 ? "memory.events" : "memory.oom_control");
        x->oom_key = "oom_kill";
        if (bo_proc_read_counter(x->oom_path, x->oom_key, &x->oom_base, NULL) == BO_OK) {
            x->oom_watch = true;
        } else {
            bo_warn("no OOM-kill counter in '%s': OOM kills are reported as signals", x->oom_path);
        }
        x->mem_limit_shown = x->conf.ram_bytes;
        if (x->mem_limit_shown <= 0) {
            char p[PATH_MAX + 32];
            uint64_t v;
            snprintf(p, sizeof(p), "%s/%s", memdir, v2 ? "memory.max" : "memory.limit_in_bytes");
            if (bo_proc_read_number(p, &v, NULL) == BO_OK && v < (uint64_t)INT64_MAX) {
                x->mem_limit_shown = (int64_t)v;
            }
        }
    }
    if (x->conf.mem_sampling) {
        char lim[32];
        mib_text(x->conf.ram_bytes, lim, sizeof(lim));
        bo_info("no memory cgroup: memory is enforced by sampling the RSS of the task's "
                "processes every second (limit %s), with RLIMIT_DATA at four times that plus 256 "
                "MiB as a backstop",
                lim);
    }
    return BO_OK;
}

static int load_config(struct exec *x, struct bo_err *err)
{
    char path[PATH_MAX];
    if (bo_fs_join(path, sizeof(path), x->dir, "task.json") != BO_OK) {
        return bo_errf(err, BO_ETOOBIG, "task dir path is too long");
    }
    uint8_t *data = NULL;
    size_t len = 0;
    int rv = bo_fs_read_file(path, &data, &len, err);
    if (rv != BO_OK) {
        return rv;
    }
    rv = bo_tconf_parse(&x->conf, (const char *)data, len, err);
    bo_free(data);
    if (rv != BO_OK) {
        return rv;
    }
    x->conf_ok = true;
    resolve_user(x);
    return check_templates(x, err);
}

static void init_handles(struct exec *x)
{
    uv_timer_t *timers[] = {&x->wake,       &x->tick,       &x->health_timer, &x->hc_timeout,
                            &x->disk_timer, &x->kill_timer, &x->stop_timer,   &x->quiet_timer};
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
        uv_timer_init(x->loop, timers[i]);
        timers[i]->data = x;
    }
    uv_signal_init(x->loop, &x->sigterm);
    uv_signal_init(x->loop, &x->sigint);
    uv_signal_init(x->loop, &x->sigchld);
    x->sigterm.data = x->sigint.data = x->sigchld.data = x;
    uv_signal_start(&x->sigterm, on_signal, SIGTERM);
    uv_signal_start(&x->sigint, on_signal, SIGINT);
    uv_signal_start(&x->sigchld, on_sigchld, SIGCHLD);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: borealis-executor --task-dir DIR [--log-level LEVEL]\n"
               "Runs the task described by DIR/task.json; reports to DIR/updates and\n"
               "DIR/checkpoint.json (docs/executor.md).\n");
}

int main(int argc, char **argv)
{
    static struct exec x;
    static const struct option opts[] = {{"task-dir", required_argument, NULL, 'd'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *dir = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            dir = optarg;
            break;
        case 'l': {
            int lv = bo_log_parse_level(optarg);
            if (lv < 0) {
                fprintf(stderr, "borealis-executor: unknown log level '%s'\n", optarg);
                return 2;
            }
            bo_log_set_level((enum bo_log_level)lv);
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (dir == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (snprintf(x.dir, sizeof(x.dir), "%s", dir) >= (int)sizeof(x.dir)) {
        fprintf(stderr, "borealis-executor: task dir path is too long\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    x.updates_fd = -1;
    x.loop = uv_default_loop();

    struct bo_err err = BO_ERR_INIT;
    int rv = open_updates(&x, &err);
    if (rv != BO_OK) {
        bo_error("%s", bo_err_msg(&err, rv));
        return 1;
    }
    if ((rv = bo_proc_make_subreaper(&err)) != BO_OK) {
        bo_warn("%s: double-forked daemons will escape", bo_err_msg(&err, rv));
    }
    write_update(&x, "STARTING", "starting the executor");
    init_handles(&x);

    rv = load_config(&x, &err);
    if (rv == BO_OK) {
        rv = setup_cgroups(&x, &err);
    }
    if (rv == BO_OK && (rv = bo_httpc_global_init(&err)) == BO_OK) {
        rv = bo_httpc_new(x.loop, &x.http, &err);
    }
    if (rv == BO_OK && bo_runner_init(&x.runner, &x.conf) != BO_OK) {
        rv = bo_errf(&err, BO_ENOMEM, "out of memory");
    }
    if (rv == BO_OK) {
        x.runner_ok = true;
        x.acts = bo_calloc(bo_runner_max_actions(&x.runner), sizeof(*x.acts));
        x.current = bo_calloc(x.conf.nprocs, sizeof(*x.current));
        if (x.acts == NULL || x.current == NULL) {
            rv = bo_errf(&err, BO_ENOMEM, "out of memory");
        }
    }
    if (rv != BO_OK) {
        bo_error("%s", bo_err_msg(&err, rv));
        snprintf(x.status, sizeof(x.status), "FAILED");
        if (x.runner_ok) {
            bo_runner_release(&x.runner);
            x.runner_ok = false;
        }
        write_checkpoint(&x);
        write_update(&x, "FAILED", bo_err_msg(&err, rv));
        x.done = true;
        close_all(&x);
    } else {
        bo_info("task '%s': %zu processes, sandbox '%s', user '%s'", x.conf.task_id, x.conf.nprocs,
                x.conf.sandbox, x.user);
        const struct bo_tconf_health *hc = &x.conf.health;
        if (hc->kind == BO_TCONF_HEALTH_NONE) {
            write_update(&x, "RUNNING", "no health check configured");
        } else {
            bo_health_init(&x.health, hc->initial_interval_ms, hc->interval_ms,
                           hc->max_consecutive_failures, hc->min_consecutive_successes);
            x.health_on = true;
            health_schedule(&x, hc->interval_ms < 1000 ? hc->interval_ms : 1000);
        }
        uv_timer_start(&x.tick, on_tick, TICK_MS, TICK_MS);
        if (x.conf.disk_bytes > 0) {
            uv_timer_start(&x.disk_timer, on_disk_timer, (uint64_t)x.conf.disk_check_interval_ms,
                           (uint64_t)x.conf.disk_check_interval_ms);
        }
        bo_runner_start(&x.runner, now_ms());
        pump(&x);
    }

    uv_run(x.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(x.loop) != 0) {
        bo_debug("loop closed with handles open");
    }
    while (x.runs != NULL) {
        struct run *r = x.runs;
        x.runs = r->next;
        for (int i = 0; i < 2; i++) {
            if (r->fds[i] >= 0) {
                close(r->fds[i]);
            }
        }
        bo_free(r);
    }
    if (x.runner_ok) {
        bo_runner_release(&x.runner);
    }
    bo_tconf_release(&x.conf);
    bo_free(x.acts);
    bo_free(x.current);
    bo_free(x.hc_cmd);
    free(x.last_ckpt);
    if (x.updates_fd >= 0) {
        close(x.updates_fd);
    }
    return x.exit_code;
}
