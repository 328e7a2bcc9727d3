/*
 * tsm.c - the task state machine (reference: aurora-features.md section 1.2,
 * Aurora's TaskStateMachine.java).
 *
 * Happy path: bo_tsm_decide looks the pair (from, to) up in `rules`, a const
 * list of every legal move and of the few illegal ones that still carry
 * actions. A rule gives fixed actions plus, where the outcome depends on the
 * task, a kind:
 *  - RESCHED_IF_SERVICE: FINISHED from ASSIGNED/STARTING/RUNNING reschedules
 *    services only;
 *  - FAIL: FAILED from ASSIGNED/STARTING/RUNNING/PARTITIONED increments the
 *    failure count and reschedules services, unlimited tasks
 *    (max_task_failures -1) and tasks whose count after the increment is
 *    still below max_task_failures. Aurora compares the count before the
 *    increment with max_task_failures - 1; it is the same test;
 *  - LOST_AFTER_PARTITION: PARTITIONED to LOST reschedules unless the task
 *    ever went through KILLING (the user wanted it gone).
 * SAVE_STATE is then added to every legal move except those to DELETED and
 * PENDING/THROTTLED to KILLING (which delete the task instead), as Aurora's
 * catch-all transition callback does. A RESCHEDULE is completed with the
 * replacement's first status: THROTTLED with a flapping penalty, else PENDING.
 *
 * Illegal moves: a pair with no rule changes nothing and has no actions. The
 * rules that are illegal mirror Aurora running the "from" state's callback on
 * a refused move: a task we believe terminal, unknown (DELETED) or being
 * stopped (PREEMPTING, RESTARTING, DRAINING, KILLING) that is reported
 * ASSIGNED, STARTING or RUNNING gets KILL. A move to the current status is a
 * no-op before any rule is consulted, as in Aurora's updateState.
 *
 * Where the reference is read narrowly: PARTITIONED to FINISHED is a plain
 * move (no reschedule, even for services) and PARTITIONED to KILLED or
 * DELETED is illegal, because the reference's table lists them so.
 */
#include "scheduler/tsm.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"

/* Short local names for the statuses. */
enum {
    S_PENDING = BO__SCHEDULE_STATUS__PENDING,
    S_STARTING = BO__SCHEDULE_STATUS__STARTING,
    S_RUNNING = BO__SCHEDULE_STATUS__RUNNING,
    S_FINISHED = BO__SCHEDULE_STATUS__FINISHED,
    S_FAILED = BO__SCHEDULE_STATUS__FAILED,
    S_KILLED = BO__SCHEDULE_STATUS__KILLED,
    S_KILLING = BO__SCHEDULE_STATUS__KILLING,
    S_LOST = BO__SCHEDULE_STATUS__LOST,
    S_ASSIGNED = BO__SCHEDULE_STATUS__ASSIGNED,
    S_INIT = BO__SCHEDULE_STATUS__INIT,
    S_RESTARTING = BO__SCHEDULE_STATUS__RESTARTING,
    S_PREEMPTING = BO__SCHEDULE_STATUS__PREEMPTING,
    S_THROTTLED = BO__SCHEDULE_STATUS__THROTTLED,
    S_DRAINING = BO__SCHEDULE_STATUS__DRAINING,
    S_PARTITIONED = BO__SCHEDULE_STATUS__PARTITIONED,
    S_DELETED = BO_TSM_DELETED,
};

/* ---- sets and names ---------------------------------------------------- */

/* Bit of a real status in a set mask; every ScheduleStatus is below 32. */
static uint32_t bit(int s)
{
    return s >= 0 && s < 32 ? 1u << s : 0;
}

#define B(s) (1u << (s))

static const uint32_t active_set = B(S_PENDING) | B(S_THROTTLED) | B(S_ASSIGNED) | B(S_STARTING) |
                                   B(S_RUNNING) | B(S_PREEMPTING) | B(S_RESTARTING) |
                                   B(S_DRAINING) | B(S_KILLING) | B(S_PARTITIONED);
static const uint32_t slave_assigned_set = active_set & ~(B(S_PENDING) | B(S_THROTTLED));
static const uint32_t live_set = B(S_RUNNING) | B(S_PREEMPTING) | B(S_RESTARTING) | B(S_DRAINING) |
                                 B(S_KILLING) | B(S_PARTITIONED);
static const uint32_t terminal_set = B(S_FINISHED) | B(S_FAILED) | B(S_KILLED) | B(S_LOST);
static const uint32_t transient_set =
    B(S_ASSIGNED) | B(S_PREEMPTING) | B(S_RESTARTING) | B(S_KILLING) | B(S_DRAINING);
static const uint32_t real_set = active_set | terminal_set | B(S_INIT);
/* States the user moves a task into; the task is then not flapping. */
static const uint32_t interrupt_set = B(S_RESTARTING) | B(S_KILLING) | B(S_DRAINING);

bool bo_tsm_is_valid(int s)
{
    return s == S_DELETED || (bit(s) & real_set) != 0;
}

bool bo_tsm_is_active(int s)
{
    return (bit(s) & active_set) != 0;
}

bool bo_tsm_is_slave_assigned(int s)
{
    return (bit(s) & slave_assigned_set) != 0;
}

bool bo_tsm_is_live(int s)
{
    return (bit(s) & live_set) != 0;
}

bool bo_tsm_is_terminal(int s)
{
    return (bit(s) & terminal_set) != 0;
}

bool bo_tsm_is_transient(int s)
{
    return (bit(s) & transient_set) != 0;
}

static const struct {
    int status;
    const char *name;
} status_names[BO_TSM_NUM_STATES] = {
    {S_INIT, "INIT"},
    {S_THROTTLED, "THROTTLED"},
    {S_PENDING, "PENDING"},
    {S_ASSIGNED, "ASSIGNED"},
    {S_STARTING, "STARTING"},
    {S_RUNNING, "RUNNING"},
    {S_FINISHED, "FINISHED"},
    {S_PREEMPTING, "PREEMPTING"},
    {S_RESTARTING, "RESTARTING"},
    {S_DRAINING, "DRAINING"},
    {S_FAILED, "FAILED"},
    {S_KILLED, "KILLED"},
    {S_KILLING, "KILLING"},
    {S_LOST, "LOST"},
    {S_PARTITIONED, "PARTITIONED"},
    {S_DELETED, "DELETED"},
};

const char *bo_tsm_status_name(int s)
{
    for (size_t i = 0; i < BO_TSM_NUM_STATES; i++) {
        if (status_names[i].status == s) {
            return status_names[i].name;
        }
    }
    return "UNKNOWN";
}

int bo_tsm_status_parse(const char *name)
{
    if (name == NULL) {
        return BO_TSM_UNKNOWN;
    }
    for (size_t i = 0; i < BO_TSM_NUM_STATES; i++) {
        if (strcmp(status_names[i].name, name) == 0) {
            return status_names[i].status;
        }
    }
    return BO_TSM_UNKNOWN;
}

static const char *const action_names[] = {
    "INCREMENT_FAILURES", "SAVE_STATE", "RESCHEDULE", "TRANSITION_TO_LOST", "KILL", "DELETE",
};

const char *bo_tsm_action_name(unsigned action)
{
    for (unsigned i = 0; i < sizeof(action_names) / sizeof(action_names[0]); i++) {
        if (action == 1u << i) {
            return action_names[i];
        }
    }
    return NULL;
}

size_t bo_tsm_actions_str(unsigned actions, char *buf, size_t n)
{
    size_t len = 0;
    if (n > 0) {
        buf[0] = '\0';
    }
    for (unsigned i = 0; i < sizeof(action_names) / sizeof(action_names[0]); i++) {
        if ((actions & (1u << i)) == 0) {
            continue;
        }
        const char *sep = len > 0 ? "|" : "";
        int w = snprintf(len < n ? buf + len : NULL, len < n ? n - len : 0, "%s%s", sep,
                         action_names[i]);
        len += (size_t)w;
    }
    if (len == 0) {
        int w = snprintf(buf, n, "-");
        len = (size_t)w;
    }
    return len;
}

/* ---- the transition rules ---------------------------------------------- */

enum rule_kind {
    PLAIN,
    RESCHED_IF_SERVICE,
    FAIL,
    LOST_AFTER_PARTITION,
};

struct rule {
    int8_t from;
    int8_t to;
    bool legal;
    uint8_t actions; /* fixed actions, before SAVE_STATE and the kind */
    uint8_t kind;    /* enum rule_kind */
};

/* clang-format off */
#define OK(f, t, a, k) {S_##f, S_##t, true, (a), (k)}
#define KILL_ON_REVIVE(f)                                                                          \
    {S_##f, S_ASSIGNED, false, BO_TSM_KILL, PLAIN},                                                \
    {S_##f, S_STARTING, false, BO_TSM_KILL, PLAIN},                                                \
    {S_##f, S_RUNNING, false, BO_TSM_KILL, PLAIN}
/* clang-format on */

enum {
    K = BO_TSM_KILL,
    RS = BO_TSM_RESCHEDULE,
    TL = BO_TSM_TRANSITION_TO_LOST,
    D = BO_TSM_DELETE,
};

/* Transitions of a task on an agent that is still running (ASSIGNED,
 * STARTING, RUNNING) to a terminal or stopping state. */
#define FROM_ON_AGENT(f, lost)                                                                     \
    OK(f, FINISHED, 0, RESCHED_IF_SERVICE), OK(f, FAILED, 0, FAIL), OK(f, RESTARTING, K, PLAIN),   \
        OK(f, DRAINING, K, PLAIN), OK(f, PREEMPTING, K, PLAIN), OK(f, KILLING, K, PLAIN),          \
        OK(f, KILLED, RS, PLAIN), OK(f, LOST, (lost), PLAIN)

/* PREEMPTING, RESTARTING and DRAINING: the task is being stopped by us. */
#define FROM_STOPPING(f)                                                                           \
    OK(f, FINISHED, RS, PLAIN), OK(f, FAILED, RS, PLAIN), OK(f, KILLED, RS, PLAIN),                \
        OK(f, LOST, RS | K, PLAIN), OK(f, KILLING, 0, PLAIN), OK(f, PARTITIONED, TL, PLAIN),       \
        KILL_ON_REVIVE(f)

#define FROM_TERMINAL(f) OK(f, DELETED, D, PLAIN), KILL_ON_REVIVE(f)

static const struct rule rules[] = {
    OK(INIT, PENDING, 0, PLAIN),
    OK(INIT, THROTTLED, 0, PLAIN),

    OK(PENDING, ASSIGNED, 0, PLAIN),
    OK(PENDING, KILLING, D, PLAIN),

    OK(THROTTLED, PENDING, 0, PLAIN),
    OK(THROTTLED, KILLING, D, PLAIN),

    OK(ASSIGNED, STARTING, 0, PLAIN),
    OK(ASSIGNED, RUNNING, 0, PLAIN),
    FROM_ON_AGENT(ASSIGNED, RS | K),

    OK(STARTING, RUNNING, 0, PLAIN),
    OK(STARTING, PARTITIONED, 0, PLAIN),
    FROM_ON_AGENT(STARTING, RS),

    OK(RUNNING, PARTITIONED, 0, PLAIN),
    FROM_ON_AGENT(RUNNING, RS),

    OK(PARTITIONED, RUNNING, 0, PLAIN),
    OK(PARTITIONED, ASSIGNED, 0, PLAIN),
    OK(PARTITIONED, STARTING, 0, PLAIN),
    OK(PARTITIONED, FINISHED, 0, PLAIN),
    OK(PARTITIONED, LOST, K, LOST_AFTER_PARTITION),
    OK(PARTITIONED, FAILED, 0, FAIL),
    OK(PARTITIONED, KILLING, TL, PLAIN),
    OK(PARTITIONED, RESTARTING, TL, PLAIN),
    OK(PARTITIONED, DRAINING, TL, PLAIN),
    OK(PARTITIONED, PREEMPTING, TL, PLAIN),

    FROM_STOPPING(PREEMPTING),
    FROM_STOPPING(RESTARTING),
    FROM_STOPPING(DRAINING),

    OK(KILLING, FINISHED, 0, PLAIN),
    OK(KILLING, FAILED, 0, PLAIN),
    OK(KILLING, KILLED, 0, PLAIN),
    OK(KILLING, LOST, 0, PLAIN),
    OK(KILLING, DELETED, D, PLAIN),
    OK(KILLING, PARTITIONED, TL, PLAIN),
    KILL_ON_REVIVE(KILLING),

    FROM_TERMINAL(FINISHED),
    FROM_TERMINAL(FAILED),
    FROM_TERMINAL(KILLED),
    FROM_TERMINAL(LOST),

    /* Reconciliation: an agent reports a task the store does not know. */
    KILL_ON_REVIVE(DELETED),
};

static const struct rule *find_rule(int from, int to)
{
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        if (rules[i].from == from && rules[i].to == to) {
            return &rules[i];
        }
    }
    return NULL;
}

/* Whether a FAILED task gets another run. */
static bool retries_left(const struct bo_tsm_task *t)
{
    if (t->is_service || t->max_task_failures == -1) {
        return true;
    }
    /* failure_count + 1 < max_task_failures, without overflow. */
    return t->max_task_failures > INT32_MIN && t->failure_count < t->max_task_failures - 1;
}

void bo_tsm_params_init(struct bo_tsm_params *p)
{
    *p = (struct bo_tsm_params)BO_TSM_PARAMS_INIT;
}

int64_t bo_tsm_flapping_penalty(const struct bo_tsm_task *t, int64_t now_ms,
                                const struct bo_tsm_params *p)
{
    if (t->running_since_ms <= 0 || t->user_interrupted) {
        return 0;
    }
    if (now_ms - t->running_since_ms >= p->flapping_threshold_ms) {
        return 0;
    }
    int64_t max = p->max_flapping_delay_ms;
    if (t->last_penalty_ms <= 0) {
        return p->initial_flapping_delay_ms < max ? p->initial_flapping_delay_ms : max;
    }
    return t->last_penalty_ms >= max / 2 ? max : t->last_penalty_ms * 2;
}

void bo_tsm_decide(const struct bo_tsm_task *t, int to, int64_t now_ms,
                   const struct bo_tsm_params *p, struct bo_tsm_result *out)
{
    assert(bo_tsm_is_valid(t->status));
    assert(bo_tsm_is_valid(to));

    int from = t->status;
    *out = (struct bo_tsm_result){
        .legal = false,
        .noop = from == to,
        .to = from,
        .actions = 0,
        .failure_count = t->failure_count,
        .reschedule_status = BO_TSM_UNKNOWN,
        .penalty_ms = 0,
        .reschedule_message = NULL,
    };
    if (from == to) {
        return;
    }
    const struct rule *r = find_rule(from, to);
    if (r == NULL) {
        return;
    }

    unsigned actions = r->actions;
    switch ((enum rule_kind)r->kind) {
    case PLAIN:
        break;
    case RESCHED_IF_SERVICE:
        if (t->is_service) {
            actions |= BO_TSM_RESCHEDULE;
        }
        break;
    case FAIL:
        actions |= BO_TSM_INCREMENT_FAILURES;
        if (retries_left(t)) {
            actions |= BO_TSM_RESCHEDULE;
        }
        break;
    case LOST_AFTER_PARTITION:
        if (!t->ever_killing) {
            actions |= BO_TSM_RESCHEDULE;
        }
        break;
    }

    if (r->legal) {
        bool deletes_instead = (from == S_PENDING || from == S_THROTTLED) && to == S_KILLING;
        if (to != S_DELETED && !deletes_instead) {
            actions |= BO_TSM_SAVE_STATE;
        }
        out->legal = true;
        out->to = to;
    }
    if (actions & BO_TSM_INCREMENT_FAILURES) {
        out->failure_count = t->failure_count < INT32_MAX ? t->failure_count + 1 : INT32_MAX;
    }
    if (actions & BO_TSM_RESCHEDULE) {
        out->penalty_ms = bo_tsm_flapping_penalty(t, now_ms, p);
        if (out->penalty_ms > 0) {
            out->reschedule_status = S_THROTTLED;
        } else {
            out->reschedule_status = S_PENDING;
            out->reschedule_message = BO_TSM_MSG_RESCHEDULED;
        }
    }
    out->actions = actions;
}

/* ---- timeouts, retries, partitions ------------------------------------- */

bool bo_tsm_transient_timed_out(int s, int64_t entered_ms, int64_t now_ms,
                                const struct bo_tsm_params *p)
{
    return bo_tsm_is_transient(s) && now_ms - entered_ms >= p->transient_timeout_ms;
}

int64_t bo_tsm_kill_retry_delay(const struct bo_tsm_params *p, int attempt)
{
    assert(attempt >= 0);
    int64_t max = p->kill_retry_max_ms;
    int64_t d = p->kill_retry_initial_ms < max ? p->kill_retry_initial_ms : max;
    for (int i = 0; i < attempt && d < max; i++) {
        d = d >= max / 2 ? max : d * 2;
    }
    return d;
}

bool bo_tsm_partition_lost_delay(const struct bo_tsm_task *t, int64_t now_ms, int64_t *delay_ms)
{
    if (!t->partition_reschedule) {
        return false;
    }
    int64_t d = t->partition_delay_ms > 0 ? t->partition_delay_ms : 0;
    if (t->partitioned_since_ms > 0) {
        int64_t elapsed = now_ms - t->partitioned_since_ms;
        d = elapsed >= d ? 0 : d - (elapsed > 0 ? elapsed : 0);
    }
    *delay_ms = d;
    return true;
}

/* ---- audit messages ---------------------------------------------------- */

#define PENALTY_PREFIX "Rescheduled, penalized for "
#define PENALTY_SUFFIX " ms for flapping"

size_t bo_tsm_format_penalty_message(char *buf, size_t n, int64_t ms)
{
    int w = snprintf(buf, n, PENALTY_PREFIX "%lld" PENALTY_SUFFIX, (long long)ms);
    return w < 0 ? 0 : (size_t)w;
}

bool bo_tsm_parse_penalty_message(const char *msg, int64_t *ms)
{
    size_t plen = strlen(PENALTY_PREFIX);
    if (msg == NULL || strncmp(msg, PENALTY_PREFIX, plen) != 0) {
        return false;
    }
    const char *p = msg + plen;
    int64_t v = 0;
    size_t digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        int d = *p - '0';
        if (v > (INT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    if (digits == 0 || strcmp(p, PENALTY_SUFFIX) != 0) {
        return false;
    }
    *ms = v;
    return true;
}

/* ---- facts from a stored task ------------------------------------------ */

int bo_tsm_task_from_proto(const Bo__ScheduledTask *st, struct bo_tsm_task *out)
{
    int rv = BO_OK;
    *out = (struct bo_tsm_task)BO_TSM_TASK_INIT;
    out->status = (int)st->status;
    out->failure_count = st->failure_count;
    if (!bo_tsm_is_valid(out->status) || out->status == S_DELETED) {
        rv = BO_EINVAL;
    }

    const Bo__TaskConfig *cfg = st->assigned_task != NULL ? st->assigned_task->task : NULL;
    if (cfg != NULL) {
        out->is_service = cfg->is_service;
        out->max_task_failures = cfg->max_task_failures;
        if (cfg->partition_policy != NULL) {
            out->partition_reschedule = cfg->partition_policy->reschedule;
            int64_t secs = cfg->partition_policy->delay_secs;
            out->partition_delay_ms = secs <= 0                 ? 0
                                      : secs > INT64_MAX / 1000 ? INT64_MAX
                                                                : secs * 1000;
        }
    } else {
        rv = BO_EINVAL;
    }

    uint32_t seen = bit(out->status);
    for (size_t i = 0; i < st->n_task_events; i++) {
        const Bo__TaskEvent *ev = st->task_events[i];
        if (ev == NULL) {
            continue;
        }
        int s = (int)ev->status;
        seen |= bit(s);
        if (s == S_RUNNING) {
            out->running_since_ms = ev->timestamp_ms;
        } else if (s == S_PARTITIONED) {
            out->partitioned_since_ms = ev->timestamp_ms;
        } else if (s == S_THROTTLED) {
            int64_t ms;
            out->last_penalty_ms = bo_tsm_parse_penalty_message(ev->message, &ms) ? ms : 0;
        }
    }
    out->ever_killing = (seen & B(S_KILLING)) != 0;
    out->user_interrupted = (seen & interrupt_set) != 0;
    return rv;
}
