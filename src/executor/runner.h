/*
 * runner.h - the Thermos process-graph planner: which process runs when,
 * the task's stages, failure accounting and the task's end. Pure.
 *
 * The runner holds the state of one task's processes. The executor feeds it
 * events (the task started, a process forked or exited, a kill was asked
 * for, a wake-up time came, the number of stray descendants changed) with
 * the current time in milliseconds, and after each event takes the actions
 * the runner wants performed, in order:
 *   START      spawn process `proc`, run `run` (its log directory number);
 *              report back with bo_runner_forked or bo_runner_spawn_failed
 *   TERM_ALL   SIGTERM every process tree of the task
 *   KILL_ALL   SIGKILL every process tree of the task
 *   STAGE      the stage changed (informational: log it)
 *   DONE       the task is over: r->end and r->msg say how; no event after
 *              this changes anything
 * and calls bo_runner_tick no later than r->wake_ms (INT64_MAX: no timer).
 * Nothing here reads a clock or performs I/O; the caller persists a
 * checkpoint from the public fields after every event.
 *
 * Semantics (Thermos): processes run in parallel unless ordered, up to
 * max_concurrency at a time. A run exiting 0 is a success; a daemon is then
 * run again, no sooner than min_duration after its last start. A failed run
 * is retried, no sooner than min_duration after its last start, until the
 * process has failed max_failures times (0 = forever); then the process is
 * FAILED and counts toward the task's max_failures (0 = never fail). A
 * process waiting on a FAILED predecessor never runs and counts as done.
 * Stages: ACTIVE runs the non-final processes until every one that is not
 * ephemeral is SUCCESS or FAILED (or cannot run), or the task's failure
 * limit is reached; CLEANING sends TERM_ALL to what is left (ephemerals,
 * daemons, stray descendants) and waits until nothing is alive;
 * FINALIZING runs the final processes; then DONE. CLEANING and FINALIZING
 * together get finalization_wait, after which KILL_ALL. The task ends
 * FINISHED ("all processes finished") or FAILED (the message of the
 * failure that reached the limit).
 *
 * bo_runner_kill ends the task early (a kill request, or a failure found by
 * the executor: health, memory, disk): no final processes run, TERM_ALL
 * now, KILL_ALL after finalization_wait, DONE once nothing is alive; the
 * end and message are the kill's. The first kill wins.
 *
 * Threads: single-threaded; the caller serializes events.
 */
#ifndef BO_EXEC_RUNNER_H
#define BO_EXEC_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "executor/tconf.h"

enum bo_proc_state {
    BO_PROC_WAITING = 0,
    BO_PROC_FORKED,
    BO_PROC_RUNNING,
    BO_PROC_SUCCESS,
    BO_PROC_KILLED,
    BO_PROC_FAILED,
    BO_PROC_LOST,
};

enum bo_task_stage {
    BO_STAGE_ACTIVE = 0,
    BO_STAGE_CLEANING,
    BO_STAGE_FINALIZING,
    BO_STAGE_DONE,
};

enum bo_task_end {
    BO_END_NONE = 0,
    BO_END_FINISHED,
    BO_END_FAILED,
    BO_END_KILLED,
};

enum bo_runner_act_kind {
    BO_RUNNER_START = 1,
    BO_RUNNER_TERM_ALL,
    BO_RUNNER_KILL_ALL,
    BO_RUNNER_STAGE,
    BO_RUNNER_DONE,
};

struct bo_runner_act {
    int kind;    /* enum bo_runner_act_kind */
    size_t proc; /* START */
    int run;     /* START */
    int stage;   /* STAGE */
};

struct bo_runner_proc {
    const struct bo_tconf_proc *conf; /* borrowed from the bo_tconf */
    int state;                        /* enum bo_proc_state */
    int run;                          /* current (or next) run, from 0 */
    int runs;                         /* runs started */
    int failures;                     /* failed runs */
    long pid;                         /* of the current run; 0 = none */
    int64_t start_ms;                 /* of the last run; 0 = never started */
    int64_t stop_ms;                  /* of the last run; 0 = not stopped */
    int exit_code;                    /* of the last run; -1 = none */
    int term_signal;                  /* of the last run; 0 = none */
    int64_t not_before_ms;            /* earliest start of the next run */
    bool signalled;                   /* the current run was sent TERM/KILL */
};

struct bo_runner {
    const struct bo_tconf *conf; /* borrowed; must outlive the runner */
    struct bo_runner_proc *procs;
    size_t nprocs;
    int stage;      /* enum bo_task_stage */
    int end;        /* enum bo_task_end: decided outcome, NONE until decided */
    bool killing;   /* bo_runner_kill was called */
    bool draining;  /* bo_runner_drain was called */
    bool sigkilled; /* KILL_ALL was sent */
    int failed_procs;
    int stragglers;      /* last count from bo_runner_stragglers */
    int64_t deadline_ms; /* end of CLEANING + FINALIZING; 0 before */
    int64_t wake_ms;     /* call bo_runner_tick by then; INT64_MAX = never */
    char msg[BO_ERR_MSG_SIZE];
    struct bo_runner_act *acts; /* pending actions, see bo_runner_take */
    size_t nacts;
    size_t capacts;
};

/* `c` must have been validated by bo_tconf_parse and outlive the runner.
 * BO_ENOMEM on failure. */
int bo_runner_init(struct bo_runner *r, const struct bo_tconf *c);
void bo_runner_release(struct bo_runner *r);

/* Events. `now` is milliseconds since the epoch (any monotonic-enough clock
 * the caller also uses for wake_ms). */
void bo_runner_start(struct bo_runner *r, int64_t now);
void bo_runner_forked(struct bo_runner *r, size_t proc, long pid, int64_t now);
/* `why` names the reason ("setuid: operation not permitted"); the run
 * counts as failed and is retried no sooner than 1 s later. */
void bo_runner_spawn_failed(struct bo_runner *r, size_t proc, const char *why, int64_t now);
/* exit_code when term_signal is 0; otherwise the signal that ended it. */
void bo_runner_exited(struct bo_runner *r, size_t proc, int exit_code, int term_signal,
                      int64_t now);
/* A kill is coming (the executor is asking the task to shut down over
 * HTTP first): start nothing more, count runs that end now as KILLED (a
 * clean exit stays SUCCESS), and do not end ACTIVE because processes are
 * done; wait for bo_runner_kill. */
void bo_runner_drain(struct bo_runner *r, int64_t now);
/* `end` is BO_END_KILLED or BO_END_FAILED; `msg` is copied. */
void bo_runner_kill(struct bo_runner *r, int end, const char *msg, int64_t now);
/* Number of live descendants of the executor (process trees of the task,
 * including orphans), as last counted; CLEANING waits for it to reach 0. */
void bo_runner_stragglers(struct bo_runner *r, int n, int64_t now);
void bo_runner_tick(struct bo_runner *r, int64_t now);

/* Move the pending actions into `out` (room for bo_runner_max_actions) and
 * return how many. Take them after every event, before the next. */
size_t bo_runner_take(struct bo_runner *r, struct bo_runner_act *out);
size_t bo_runner_max_actions(const struct bo_runner *r);

/* Processes in FORKED or RUNNING. */
size_t bo_runner_alive(const struct bo_runner *r);

/* Static names: "WAITING", "ACTIVE", "FINISHED", ... */
const char *bo_proc_state_name(int s);
const char *bo_task_stage_name(int s);
const char *bo_task_end_name(int e);

#endif
