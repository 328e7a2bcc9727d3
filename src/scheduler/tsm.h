/*
 * tsm.h - the task state machine: which status changes are legal and what the
 * scheduler must do about them (Aurora's TaskStateMachine and the rescheduling
 * rules of StateManagerImpl / RescheduleCalculator).
 *
 * The module is pure: it reads a few facts about a task (struct bo_tsm_task,
 * usually filled by bo_tsm_task_from_proto) and a target status, and returns a
 * decision (struct bo_tsm_result): whether the move is legal, the status the
 * task ends in, and a set of side-effect actions. It performs no I/O and never
 * reads the clock; times are milliseconds since the epoch, passed in. Every
 * function may be called from any thread; nothing here keeps state.
 *
 * The caller performs the actions, in this fixed order (Aurora's):
 *   INCREMENT_FAILURES, SAVE_STATE, RESCHEDULE, TRANSITION_TO_LOST, KILL, DELETE
 * - INCREMENT_FAILURES: store result.failure_count on the task;
 * - SAVE_STATE: store result.to as the task's status and append a TaskEvent;
 * - RESCHEDULE: insert a copy of the task under a new ID (ancestor_id = old
 *   ID, failure_count carried over) in INIT, then move it to
 *   result.reschedule_status (PENDING, or THROTTLED for result.penalty_ms)
 *   with the audit message result.reschedule_message, or for THROTTLED the
 *   text of bo_tsm_format_penalty_message;
 * - TRANSITION_TO_LOST: run a further transition of this task to LOST;
 * - KILL: ask the agent to kill the task (also for tasks the store does not
 *   know: reconciliation);
 * - DELETE: remove the task from the store.
 *
 * Status values are the protobuf Bo__ScheduleStatus values; BO_TSM_DELETED
 * stands for "not in the store". Functions that take a status accept any int;
 * values that are neither a ScheduleStatus nor BO_TSM_DELETED belong to no set.
 */
#ifndef BO_TSM_H
#define BO_TSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage.pb-c.h"

/* Pseudo-status: the task is not (or no longer) in the store. */
#define BO_TSM_DELETED (-1)
/* Not a status: bo_tsm_status_parse's answer for an unknown name, and
 * bo_tsm_result.reschedule_status when nothing is rescheduled. */
#define BO_TSM_UNKNOWN (-2)

/* Number of statuses the machine knows: the 15 ScheduleStatus values and
 * BO_TSM_DELETED. */
#define BO_TSM_NUM_STATES 16

/* True for the 15 ScheduleStatus values and BO_TSM_DELETED. */
bool bo_tsm_is_valid(int s);

/* The sets of api.thrift. ACTIVE = {PENDING, THROTTLED, ASSIGNED, STARTING,
 * RUNNING, PREEMPTING, RESTARTING, DRAINING, KILLING, PARTITIONED};
 * SLAVE_ASSIGNED = ACTIVE - {PENDING, THROTTLED}; LIVE = {RUNNING,
 * PREEMPTING, RESTARTING, DRAINING, KILLING, PARTITIONED}; TERMINAL =
 * {FINISHED, FAILED, KILLED, LOST}. INIT and DELETED are in none. */
bool bo_tsm_is_active(int s);
bool bo_tsm_is_slave_assigned(int s);
bool bo_tsm_is_live(int s);
bool bo_tsm_is_terminal(int s);

/* States that time out into LOST after bo_tsm_params.transient_timeout_ms:
 * ASSIGNED, PREEMPTING, RESTARTING, KILLING, DRAINING. STARTING is not one
 * (Aurora's TaskTimeout.TRANSIENT_STATES; its docs say otherwise). */
bool bo_tsm_is_transient(int s);

/* "RUNNING", "DELETED", ...; "UNKNOWN" for any other value. Static strings. */
const char *bo_tsm_status_name(int s);

/* The inverse of bo_tsm_status_name (exact, upper case): a status,
 * BO_TSM_DELETED for "DELETED", BO_TSM_UNKNOWN for anything else. */
int bo_tsm_status_parse(const char *name);

/* Side-effect actions, as bits. Their numeric order is the order in which the
 * caller must perform them. */
enum bo_tsm_action {
    BO_TSM_INCREMENT_FAILURES = 1u << 0,
    BO_TSM_SAVE_STATE = 1u << 1,
    BO_TSM_RESCHEDULE = 1u << 2,
    BO_TSM_TRANSITION_TO_LOST = 1u << 3,
    BO_TSM_KILL = 1u << 4,
    BO_TSM_DELETE = 1u << 5,
};
#define BO_TSM_ACTIONS_ALL 0x3fu

/* "KILL" for one action bit; NULL for anything else. */
const char *bo_tsm_action_name(unsigned action);

/* Write the set as "SAVE_STATE|RESCHEDULE" ("-" when empty) into `buf`
 * (always terminated when n > 0). Returns the length the full text needs, as
 * snprintf does. For logs and test messages. */
size_t bo_tsm_actions_str(unsigned actions, char *buf, size_t n);

/* What the decision needs to know about a task. Plain values, no pointers. */
struct bo_tsm_task {
    int status; /* current status, or BO_TSM_DELETED for an unknown task */
    bool is_service;
    int32_t max_task_failures;    /* -1: unlimited */
    int32_t failure_count;        /* before this transition */
    bool ever_killing;            /* some event is KILLING */
    bool user_interrupted;        /* some event is RESTARTING, KILLING or DRAINING */
    int64_t running_since_ms;     /* timestamp of the last RUNNING event, 0 if none */
    int64_t last_penalty_ms;      /* flapping penalty this task was THROTTLED with, 0 if none */
    bool partition_reschedule;    /* PartitionPolicy.reschedule; true without a policy */
    int64_t partition_delay_ms;   /* PartitionPolicy.delay_secs in ms; 0 without a policy */
    int64_t partitioned_since_ms; /* timestamp of the last PARTITIONED event, 0 if none */
};

/* A task with no history: status INIT, non-service, max_task_failures 1
 * (Aurora's default), partition_reschedule true, everything else zero. */
#define BO_TSM_TASK_INIT                                                                           \
    {                                                                                              \
        .status = BO__SCHEDULE_STATUS__INIT, .max_task_failures = 1, .partition_reschedule = true  \
    }

/* Tunables, in milliseconds, named after Aurora's flags. */
struct bo_tsm_params {
    int64_t flapping_threshold_ms;     /* -flapping_task_threshold: 5 min */
    int64_t initial_flapping_delay_ms; /* -initial_flapping_task_delay: 30 s */
    int64_t max_flapping_delay_ms;     /* -max_flapping_task_delay: 5 min */
    int64_t transient_timeout_ms;      /* -transient_task_state_timeout: 5 min */
    int64_t kill_retry_initial_ms;     /* -initial_task_kill_retry_interval: 15 s */
    int64_t kill_retry_max_ms;         /* cap of the kill retry backoff: 5 min */
};

#define BO_TSM_PARAMS_INIT                                                                         \
    {                                                                                              \
        .flapping_threshold_ms = 5 * 60 * 1000, .initial_flapping_delay_ms = 30 * 1000,            \
        .max_flapping_delay_ms = 5 * 60 * 1000, .transient_timeout_ms = 5 * 60 * 1000,             \
        .kill_retry_initial_ms = 15 * 1000, .kill_retry_max_ms = 5 * 60 * 1000                     \
    }

/* Fill `p` with Aurora's defaults (the same values as BO_TSM_PARAMS_INIT). */
void bo_tsm_params_init(struct bo_tsm_params *p);

struct bo_tsm_result {
    /* The move is allowed. An illegal move changes nothing but may still
     * carry actions (KILL for a task reported alive that we think is dead,
     * unknown or being stopped); the caller counts it as illegal
     * (scheduler_illegal_task_state_transitions) and performs the actions. A
     * move to the current status is a no-op: illegal, no actions, not
     * counted (Aurora's NOOP). */
    bool legal;
    bool noop;
    int to;                         /* status afterwards (the old one when illegal) */
    unsigned actions;               /* enum bo_tsm_action bits */
    int32_t failure_count;          /* after INCREMENT_FAILURES, else unchanged */
    int reschedule_status;          /* PENDING or THROTTLED with RESCHEDULE, else UNKNOWN */
    int64_t penalty_ms;             /* > 0 exactly when reschedule_status is THROTTLED */
    const char *reschedule_message; /* "Rescheduled" for PENDING, else NULL */
};

/* Decide the move of task `t` to status `to` (a ScheduleStatus, or
 * BO_TSM_DELETED to remove the task) at time `now_ms`. Both t->status and
 * `to` must satisfy bo_tsm_is_valid (asserted). All of `out` is written.
 *
 * A rescheduled replacement is THROTTLED when the task was flapping (see
 * bo_tsm_flapping_penalty) and PENDING otherwise. A non-service task that
 * FAILED is rescheduled only while its failure count after the increment is
 * below max_task_failures (or max_task_failures is -1): 1 means no retry, 3
 * means two retries. Services are rescheduled whatever max_task_failures. */
void bo_tsm_decide(const struct bo_tsm_task *t, int to, int64_t now_ms,
                   const struct bo_tsm_params *p, struct bo_tsm_result *out);

/* The penalty for rescheduling `t` at `now_ms`, 0 when it was not flapping.
 * A task flaps when it reached RUNNING (running_since_ms > 0) less than
 * flapping_threshold_ms before `now_ms` and was never interrupted by a user
 * (user_interrupted). A task that never reached RUNNING does not flap. The
 * penalty is initial_flapping_delay_ms for a task that was not itself
 * throttled, and twice its own penalty otherwise, at most
 * max_flapping_delay_ms. */
int64_t bo_tsm_flapping_penalty(const struct bo_tsm_task *t, int64_t now_ms,
                                const struct bo_tsm_params *p);

/* True when a task that entered transient status `s` at `entered_ms` has
 * timed out at `now_ms` and must be moved to LOST. False for other statuses. */
bool bo_tsm_transient_timed_out(int s, int64_t entered_ms, int64_t now_ms,
                                const struct bo_tsm_params *p);

/* Delay before kill attempt number `attempt` + 1 is retried (attempt >= 0):
 * kill_retry_initial_ms doubled per attempt, at most kill_retry_max_ms. */
int64_t bo_tsm_kill_retry_delay(const struct bo_tsm_params *p, int attempt);

/* Partition policy for a PARTITIONED task. Returns false when the policy
 * keeps the task PARTITIONED until its agent comes back. Otherwise returns
 * true and sets *delay_ms to how long from `now_ms` until the task must move
 * to LOST (message BO_TSM_MSG_PARTITIONED): the policy's delay counted from
 * partitioned_since_ms, so a scheduler failover does not restart it; 0 when
 * already due. */
bool bo_tsm_partition_lost_delay(const struct bo_tsm_task *t, int64_t now_ms, int64_t *delay_ms);

/* Audit messages. */
#define BO_TSM_MSG_RESCHEDULED  "Rescheduled"
#define BO_TSM_MSG_PARTITIONED  "Task partitioned for too long."
#define BO_TSM_PENALTY_MSG_SIZE 64 /* fits any int64_t penalty */

/* "Rescheduled, penalized for N ms for flapping" into `buf` (always
 * terminated when n > 0). Returns the length the full text needs, as
 * snprintf does; BO_TSM_PENALTY_MSG_SIZE is always enough. */
size_t bo_tsm_format_penalty_message(char *buf, size_t n, int64_t ms);

/* The inverse: true and *ms = N (N >= 0) when `msg` is exactly that text. */
bool bo_tsm_parse_penalty_message(const char *msg, int64_t *ms);

/* Read the facts of `st` (not kept; no allocation). Events are taken in list
 * order, oldest first, as the store appends them; the current status counts
 * as an event for ever_killing and user_interrupted. Returns BO_OK, or
 * BO_EINVAL when st->status is not a ScheduleStatus or the task has no
 * assigned_task or config; `out` is filled as far as possible either way. */
int bo_tsm_task_from_proto(const Bo__ScheduledTask *st, struct bo_tsm_task *out);

#endif
