/*
 * runner.c - the Thermos process-graph planner.
 *
 * Happy path: every event updates the state of one process (or the task)
 * and then calls plan(), which is the whole policy in one place and is
 * idempotent: calling it twice in a row changes nothing the second time.
 * plan() first moves the task through its stages as far as the current
 * state allows (ACTIVE -> CLEANING -> FINALIZING -> DONE, possibly several
 * steps in one call), then starts every process that may start now, then
 * computes the next wake-up time: the earliest not-before time of a process
 * that waits only for time, and the finalization deadline.
 *
 * A process may start when it is WAITING, belongs to the current stage
 * (non-final in ACTIVE, final in FINALIZING), every predecessor is SUCCESS,
 * its not-before time has come and the concurrency cap leaves room. A
 * process is "done" for completion when it is SUCCESS or FAILED, or when it
 * can never start because a predecessor is FAILED or itself blocked.
 *
 * Failure modes: a run that fails (non-zero exit, a signal we did not
 * send, a spawn failure) bumps the process's failure count; at max_failures
 * the process is FAILED and the task's failed count goes up; at the task's
 * max_failures the outcome becomes FAILED with that process's message and
 * ACTIVE ends. A run that ends after we signalled it is KILLED and is no
 * failure. Past the deadline KILL_ALL goes out once; from then on nothing
 * new starts and the task is DONE as soon as no tracked process is alive
 * (stray descendants are the executor's to SIGKILL again on its way out).
 */
#include "executor/runner.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"

int bo_runner_init(struct bo_runner *r, const struct bo_tconf *c)
{
    memset(r, 0, sizeof(*r));
    r->conf = c;
    r->procs = bo_calloc(c->nprocs, sizeof(*r->procs));
    r->capacts = 2 * c->nprocs + 8;
    r->acts = bo_calloc(r->capacts, sizeof(*r->acts));
    if (r->procs == NULL || r->acts == NULL) {
        bo_free(r->procs);
        bo_free(r->acts);
        memset(r, 0, sizeof(*r));
        return BO_ENOMEM;
    }
    r->nprocs = c->nprocs;
    for (size_t i = 0; i < r->nprocs; i++) {
        r->procs[i].conf = &c->procs[i];
        r->procs[i].exit_code = -1;
    }
    r->stage = BO_STAGE_ACTIVE;
    r->wake_ms = INT64_MAX;
    return BO_OK;
}

void bo_runner_release(struct bo_runner *r)
{
    bo_free(r->procs);
    bo_free(r->acts);
    memset(r, 0, sizeof(*r));
}

static void emit(struct bo_runner *r, int kind, size_t proc, int run, int stage)
{
    assert(r->nacts < r->capacts);
    struct bo_runner_act *a = &r->acts[r->nacts++];
    a->kind = kind;
    a->proc = proc;
    a->run = run;
    a->stage = stage;
}

static bool is_alive(const struct bo_runner_proc *p)
{
    return p->state == BO_PROC_FORKED || p->state == BO_PROC_RUNNING;
}

size_t bo_runner_alive(const struct bo_runner *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nprocs; i++) {
        n += is_alive(&r->procs[i]);
    }
    return n;
}

/* A WAITING process that can never start: some predecessor FAILED or
 * blocked. The order graph is acyclic (tconf), so the recursion ends. */
static bool is_blocked(const struct bo_runner *r, size_t i)
{
    const struct bo_runner_proc *p = &r->procs[i];
    if (p->state != BO_PROC_WAITING) {
        return false;
    }
    for (size_t k = 0; k < p->conf->nafter; k++) {
        size_t pred = p->conf->after[k];
        if (r->procs[pred].state == BO_PROC_FAILED || is_blocked(r, pred)) {
            return true;
        }
    }
    return false;
}

static bool deps_met(const struct bo_runner *r, size_t i)
{
    const struct bo_runner_proc *p = &r->procs[i];
    for (size_t k = 0; k < p->conf->nafter; k++) {
        if (r->procs[p->conf->after[k]].state != BO_PROC_SUCCESS) {
            return false;
        }
    }
    return true;
}

/* Whether every process of the stage's completion set is done. */
static bool stage_complete(const struct bo_runner *r, bool finals)
{
    for (size_t i = 0; i < r->nprocs; i++) {
        const struct bo_runner_proc *p = &r->procs[i];
        if (p->conf->final != finals || p->conf->ephemeral) {
            continue;
        }
        if (p->state == BO_PROC_SUCCESS || p->state == BO_PROC_FAILED ||
            p->state == BO_PROC_KILLED || p->state == BO_PROC_LOST) {
            continue;
        }
        if (is_blocked(r, i)) {
            continue;
        }
        return false;
    }
    return true;
}

static void signal_all(struct bo_runner *r, int kind)
{
    for (size_t i = 0; i < r->nprocs; i++) {
        if (is_alive(&r->procs[i])) {
            r->procs[i].signalled = true;
        }
    }
    emit(r, kind, 0, 0, 0);
}

static void set_stage(struct bo_runner *r, int stage)
{
    r->stage = stage;
    emit(r, BO_RUNNER_STAGE, 0, 0, stage);
}

static void enter_cleaning(struct bo_runner *r, int64_t now)
{
    set_stage(r, BO_STAGE_CLEANING);
    r->deadline_ms = now + r->conf->finalization_wait_ms;
    if (bo_runner_alive(r) > 0 || r->stragglers > 0) {
        signal_all(r, BO_RUNNER_TERM_ALL);
    }
}

static void finish(struct bo_runner *r)
{
    if (r->end == BO_END_NONE) {
        r->end = BO_END_FINISHED;
    }
    if (r->end == BO_END_FINISHED) {
        snprintf(r->msg, sizeof(r->msg), "all processes finished");
    }
    set_stage(r, BO_STAGE_DONE);
    r->wake_ms = INT64_MAX;
    emit(r, BO_RUNNER_DONE, 0, 0, 0);
}

static bool task_failed(const struct bo_runner *r)
{
    return r->conf->max_failures > 0 && r->failed_procs >= r->conf->max_failures;
}

/* Move through the stages as far as the state allows. */
static void advance(struct bo_runner *r, int64_t now)
{
    for (;;) {
        switch (r->stage) {
        case BO_STAGE_ACTIVE:
            if (task_failed(r)) {
                r->end = BO_END_FAILED;
            } else if (r->draining || !stage_complete(r, false)) {
                return;
            }
            enter_cleaning(r, now);
            break;
        case BO_STAGE_CLEANING:
            if (bo_runner_alive(r) > 0 || (r->stragglers > 0 && !r->sigkilled)) {
                return;
            }
            if (r->killing || r->sigkilled) {
                finish(r);
                return;
            }
            set_stage(r, BO_STAGE_FINALIZING);
            break;
        case BO_STAGE_FINALIZING:
            if (r->killing || r->sigkilled) {
                if (bo_runner_alive(r) > 0) {
                    return;
                }
                finish(r);
                return;
            }
            if (!stage_complete(r, true)) {
                return;
            }
            /* A FAILED final reaching the limit fails the task, as any process. */
            if (task_failed(r) && r->end == BO_END_NONE) {
                r->end = BO_END_FAILED;
            }
            finish(r);
            return;
        default:
            return;
        }
    }
}

static void plan(struct bo_runner *r, int64_t now)
{
    if (r->stage == BO_STAGE_DONE) {
        return;
    }
    if ((r->stage == BO_STAGE_CLEANING || r->stage == BO_STAGE_FINALIZING) && !r->sigkilled &&
        now >= r->deadline_ms) {
        r->sigkilled = true;
        if (bo_runner_alive(r) > 0 || r->stragglers > 0) {
            signal_all(r, BO_RUNNER_KILL_ALL);
        }
    }
    advance(r, now);
    if (r->stage == BO_STAGE_DONE) {
        return;
    }
    r->wake_ms = INT64_MAX;
    bool may_start = !r->sigkilled && !r->killing && !r->draining &&
                     (r->stage == BO_STAGE_ACTIVE || r->stage == BO_STAGE_FINALIZING);
    if (may_start) {
        bool finals = r->stage == BO_STAGE_FINALIZING;
        size_t alive = bo_runner_alive(r);
        size_t cap = r->conf->max_concurrency > 0 ? (size_t)r->conf->max_concurrency : SIZE_MAX;
        for (size_t i = 0; i < r->nprocs; i++) {
            struct bo_runner_proc *p = &r->procs[i];
            if (p->state != BO_PROC_WAITING || p->conf->final != finals || !deps_met(r, i)) {
                continue;
            }
            if (p->not_before_ms > now) {
                if (p->not_before_ms < r->wake_ms) {
                    r->wake_ms = p->not_before_ms;
                }
                continue;
            }
            if (alive >= cap) {
                continue; /* an exit will plan again */
            }
            p->state = BO_PROC_FORKED;
            p->runs++;
            p->start_ms = now;
            p->stop_ms = 0;
            p->pid = 0;
            p->exit_code = -1;
            p->term_signal = 0;
            p->signalled = false;
            alive++;
            emit(r, BO_RUNNER_START, i, p->run, 0);
        }
    }
    if ((r->stage == BO_STAGE_CLEANING || r->stage == BO_STAGE_FINALIZING) && !r->sigkilled &&
        r->deadline_ms < r->wake_ms) {
        r->wake_ms = r->deadline_ms;
    }
}

void bo_runner_start(struct bo_runner *r, int64_t now)
{
    plan(r, now);
}

void bo_runner_forked(struct bo_runner *r, size_t proc, long pid, int64_t now)
{
    assert(proc < r->nprocs);
    struct bo_runner_proc *p = &r->procs[proc];
    if (p->state == BO_PROC_FORKED) {
        p->state = BO_PROC_RUNNING;
        p->pid = pid;
    }
    plan(r, now);
}

/* A run failed: retry later or give the process up. */
static void run_failed(struct bo_runner *r, struct bo_runner_proc *p, const char *what, int64_t now,
                       int64_t min_gap_ms)
{
    p->failures++;
    int maxf = p->conf->max_failures;
    if (maxf > 0 && p->failures >= maxf) {
        p->state = BO_PROC_FAILED;
        r->failed_procs++;
        if (task_failed(r) && r->end != BO_END_FAILED && !r->killing) {
            snprintf(r->msg, sizeof(r->msg), "process '%s' %s (run %d of %d)", p->conf->name, what,
                     p->failures, maxf);
        }
        return;
    }
    p->state = BO_PROC_WAITING;
    p->run++;
    int64_t nb = p->start_ms + p->conf->min_duration_ms;
    if (nb < now + min_gap_ms) {
        nb = now + min_gap_ms;
    }
    p->not_before_ms = nb;
}

void bo_runner_spawn_failed(struct bo_runner *r, size_t proc, const char *why, int64_t now)
{
    assert(proc < r->nprocs);
    struct bo_runner_proc *p = &r->procs[proc];
    if (p->state != BO_PROC_FORKED) {
        return;
    }
    char what[300];
    snprintf(what, sizeof(what), "could not start: %.250s", why);
    p->stop_ms = now;
    p->pid = 0;
    run_failed(r, p, what, now, 1000);
    plan(r, now);
}

void bo_runner_exited(struct bo_runner *r, size_t proc, int exit_code, int term_signal, int64_t now)
{
    assert(proc < r->nprocs);
    struct bo_runner_proc *p = &r->procs[proc];
    if (!is_alive(p)) {
        return;
    }
    p->stop_ms = now;
    p->exit_code = term_signal != 0 ? -1 : exit_code;
    p->term_signal = term_signal;
    p->pid = 0;
    bool stopping = r->killing || r->draining || r->sigkilled || r->stage == BO_STAGE_CLEANING;
    if (p->signalled || (stopping && (exit_code != 0 || term_signal != 0))) {
        p->state = BO_PROC_KILLED;
    } else if (exit_code == 0 && term_signal == 0) {
        bool again = p->conf->daemon && !stopping &&
                     r->stage == (p->conf->final ? BO_STAGE_FINALIZING : BO_STAGE_ACTIVE);
        if (again) {
            p->state = BO_PROC_WAITING;
            p->run++;
            p->not_before_ms = p->start_ms + p->conf->min_duration_ms;
        } else {
            p->state = BO_PROC_SUCCESS;
        }
    } else {
        char what[64];
        if (term_signal != 0) {
            snprintf(what, sizeof(what), "killed by signal %d", term_signal);
        } else {
            snprintf(what, sizeof(what), "failed: exit code %d", exit_code);
        }
        run_failed(r, p, what, now, 0);
    }
    plan(r, now);
}

void bo_runner_drain(struct bo_runner *r, int64_t now)
{
    r->draining = true;
    plan(r, now);
}

void bo_runner_kill(struct bo_runner *r, int end, const char *msg, int64_t now)
{
    assert(end == BO_END_KILLED || end == BO_END_FAILED);
    if (r->stage == BO_STAGE_DONE || r->killing) {
        return;
    }
    r->killing = true;
    r->end = end;
    snprintf(r->msg, sizeof(r->msg), "%s", msg);
    int64_t deadline = now + r->conf->finalization_wait_ms;
    switch (r->stage) {
    case BO_STAGE_ACTIVE:
        enter_cleaning(r, now);
        break;
    case BO_STAGE_CLEANING:
        if (deadline < r->deadline_ms) {
            r->deadline_ms = deadline;
        }
        break;
    case BO_STAGE_FINALIZING:
        if (deadline < r->deadline_ms) {
            r->deadline_ms = deadline;
        }
        if (!r->sigkilled && (bo_runner_alive(r) > 0 || r->stragglers > 0)) {
            signal_all(r, BO_RUNNER_TERM_ALL);
        }
        break;
    default:
        break;
    }
    plan(r, now);
}

void bo_runner_stragglers(struct bo_runner *r, int n, int64_t now)
{
    r->stragglers = n < 0 ? 0 : n;
    plan(r, now);
}

void bo_runner_tick(struct bo_runner *r, int64_t now)
{
    plan(r, now);
}

size_t bo_runner_take(struct bo_runner *r, struct bo_runner_act *out)
{
    size_t n = r->nacts;
    if (n > 0) {
        memcpy(out, r->acts, n * sizeof(*out));
    }
    r->nacts = 0;
    return n;
}

size_t bo_runner_max_actions(const struct bo_runner *r)
{
    return r->capacts;
}

const char *bo_proc_state_name(int s)
{
    static const char *const names[] = {"WAITING", "FORKED", "RUNNING", "SUCCESS",
                                        "KILLED",  "FAILED", "LOST"};
    return s >= 0 && s <= BO_PROC_LOST ? names[s] : "UNKNOWN";
}

const char *bo_task_stage_name(int s)
{
    static const char *const names[] = {"ACTIVE", "CLEANING", "FINALIZING", "DONE"};
    return s >= 0 && s <= BO_STAGE_DONE ? names[s] : "UNKNOWN";
}

const char *bo_task_end_name(int e)
{
    static const char *const names[] = {"NONE", "FINISHED", "FAILED", "KILLED"};
    return e >= 0 && e <= BO_END_KILLED ? names[e] : "UNKNOWN";
}
