/*
 * test_tsm.c - the task state machine: every (from, to) pair over the 15
 * statuses and DELETED against a hand-written table taken from the reference
 * (aurora-features.md section 1.2), then failure limits, services, flapping
 * penalties, partitions, timeouts, messages and facts read from a stored task.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "scheduler/tsm.h"
#include "storage.pb-c.h"

enum {
    T_INIT = BO__SCHEDULE_STATUS__INIT,
    T_THROTTLED = BO__SCHEDULE_STATUS__THROTTLED,
    T_PENDING = BO__SCHEDULE_STATUS__PENDING,
    T_ASSIGNED = BO__SCHEDULE_STATUS__ASSIGNED,
    T_STARTING = BO__SCHEDULE_STATUS__STARTING,
    T_RUNNING = BO__SCHEDULE_STATUS__RUNNING,
    T_FINISHED = BO__SCHEDULE_STATUS__FINISHED,
    T_PREEMPTING = BO__SCHEDULE_STATUS__PREEMPTING,
    T_RESTARTING = BO__SCHEDULE_STATUS__RESTARTING,
    T_DRAINING = BO__SCHEDULE_STATUS__DRAINING,
    T_FAILED = BO__SCHEDULE_STATUS__FAILED,
    T_KILLED = BO__SCHEDULE_STATUS__KILLED,
    T_KILLING = BO__SCHEDULE_STATUS__KILLING,
    T_LOST = BO__SCHEDULE_STATUS__LOST,
    T_PARTITIONED = BO__SCHEDULE_STATUS__PARTITIONED,
    T_DELETED = BO_TSM_DELETED,
};

/* The 16 states, in the reference's order. */
static const int all_states[BO_TSM_NUM_STATES] = {
    T_INIT,     T_THROTTLED,  T_PENDING,     T_ASSIGNED, T_STARTING, T_RUNNING,
    T_FINISHED, T_PREEMPTING, T_RESTARTING,  T_DRAINING, T_FAILED,   T_KILLED,
    T_KILLING,  T_LOST,       T_PARTITIONED, T_DELETED,
};

static size_t state_index(int s)
{
    for (size_t i = 0; i < BO_TSM_NUM_STATES; i++) {
        if (all_states[i] == s) {
            return i;
        }
    }
    fail_msg("status %d is not one of the 16 states", s);
    return 0;
}

#define INC BO_TSM_INCREMENT_FAILURES
#define SS  BO_TSM_SAVE_STATE
#define RS  BO_TSM_RESCHEDULE
#define TL  BO_TSM_TRANSITION_TO_LOST
#define K   BO_TSM_KILL
#define D   BO_TSM_DELETE

/* Variants of the task moved: a batch task with retries left
 * (max_task_failures 3, no failures yet), a batch task at its limit
 * (max_task_failures 1) and a service (max_task_failures 1). */
enum { V_BATCH, V_LIMIT, V_SERVICE, V_COUNT };
static const char *const variant_names[V_COUNT] = {"batch", "batch at limit", "service"};

struct row {
    int from;
    int to;
    bool legal;
    unsigned actions[V_COUNT];
};

/* X: illegal, nothing happens. I: illegal with actions. L: legal, the same
 * actions for every variant. V: legal, actions per variant. */
/* clang-format off */
#define X(f, t)          {T_##f, T_##t, false, {0, 0, 0}}
#define I(f, t, a)       {T_##f, T_##t, false, {(a), (a), (a)}}
#define L(f, t, a)       {T_##f, T_##t, true, {(a), (a), (a)}}
#define V(f, t, b, l, s) {T_##f, T_##t, true, {(b), (l), (s)}}
/* clang-format on */

static const struct row table[] = {
    /* INIT */
    X(INIT, INIT),
    L(INIT, THROTTLED, SS),
    L(INIT, PENDING, SS),
    X(INIT, ASSIGNED),
    X(INIT, STARTING),
    X(INIT, RUNNING),
    X(INIT, FINISHED),
    X(INIT, PREEMPTING),
    X(INIT, RESTARTING),
    X(INIT, DRAINING),
    X(INIT, FAILED),
    X(INIT, KILLED),
    X(INIT, KILLING),
    X(INIT, LOST),
    X(INIT, PARTITIONED),
    X(INIT, DELETED),

    /* THROTTLED */
    X(THROTTLED, INIT),
    X(THROTTLED, THROTTLED),
    L(THROTTLED, PENDING, SS),
    X(THROTTLED, ASSIGNED),
    X(THROTTLED, STARTING),
    X(THROTTLED, RUNNING),
    X(THROTTLED, FINISHED),
    X(THROTTLED, PREEMPTING),
    X(THROTTLED, RESTARTING),
    X(THROTTLED, DRAINING),
    X(THROTTLED, FAILED),
    X(THROTTLED, KILLED),
    L(THROTTLED, KILLING, D),
    X(THROTTLED, LOST),
    X(THROTTLED, PARTITIONED),
    X(THROTTLED, DELETED),

    /* PENDING */
    X(PENDING, INIT),
    X(PENDING, THROTTLED),
    X(PENDING, PENDING),
    L(PENDING, ASSIGNED, SS),
    X(PENDING, STARTING),
    X(PENDING, RUNNING),
    X(PENDING, FINISHED),
    X(PENDING, PREEMPTING),
    X(PENDING, RESTARTING),
    X(PENDING, DRAINING),
    X(PENDING, FAILED),
    X(PENDING, KILLED),
    L(PENDING, KILLING, D),
    X(PENDING, LOST),
    X(PENDING, PARTITIONED),
    X(PENDING, DELETED),

    /* ASSIGNED */
    X(ASSIGNED, INIT),
    X(ASSIGNED, THROTTLED),
    X(ASSIGNED, PENDING),
    X(ASSIGNED, ASSIGNED),
    L(ASSIGNED, STARTING, SS),
    L(ASSIGNED, RUNNING, SS),
    V(ASSIGNED, FINISHED, SS, SS, SS | RS),
    L(ASSIGNED, PREEMPTING, SS | K),
    L(ASSIGNED, RESTARTING, SS | K),
    L(ASSIGNED, DRAINING, SS | K),
    V(ASSIGNED, FAILED, INC | SS | RS, INC | SS, INC | SS | RS),
    L(ASSIGNED, KILLED, SS | RS),
    L(ASSIGNED, KILLING, SS | K),
    L(ASSIGNED, LOST, SS | RS | K),
    X(ASSIGNED, PARTITIONED),
    X(ASSIGNED, DELETED),

    /* STARTING */
    X(STARTING, INIT),
    X(STARTING, THROTTLED),
    X(STARTING, PENDING),
    X(STARTING, ASSIGNED),
    X(STARTING, STARTING),
    L(STARTING, RUNNING, SS),
    V(STARTING, FINISHED, SS, SS, SS | RS),
    L(STARTING, PREEMPTING, SS | K),
    L(STARTING, RESTARTING, SS | K),
    L(STARTING, DRAINING, SS | K),
    V(STARTING, FAILED, INC | SS | RS, INC | SS, INC | SS | RS),
    L(STARTING, KILLED, SS | RS),
    L(STARTING, KILLING, SS | K),
    L(STARTING, LOST, SS | RS),
    L(STARTING, PARTITIONED, SS),
    X(STARTING, DELETED),

    /* RUNNING */
    X(RUNNING, INIT),
    X(RUNNING, THROTTLED),
    X(RUNNING, PENDING),
    X(RUNNING, ASSIGNED),
    X(RUNNING, STARTING),
    X(RUNNING, RUNNING),
    V(RUNNING, FINISHED, SS, SS, SS | RS),
    L(RUNNING, PREEMPTING, SS | K),
    L(RUNNING, RESTARTING, SS | K),
    L(RUNNING, DRAINING, SS | K),
    V(RUNNING, FAILED, INC | SS | RS, INC | SS, INC | SS | RS),
    L(RUNNING, KILLED, SS | RS),
    L(RUNNING, KILLING, SS | K),
    L(RUNNING, LOST, SS | RS),
    L(RUNNING, PARTITIONED, SS),
    X(RUNNING, DELETED),

    /* FINISHED */
    X(FINISHED, INIT),
    X(FINISHED, THROTTLED),
    X(FINISHED, PENDING),
    I(FINISHED, ASSIGNED, K),
    I(FINISHED, STARTING, K),
    I(FINISHED, RUNNING, K),
    X(FINISHED, FINISHED),
    X(FINISHED, PREEMPTING),
    X(FINISHED, RESTARTING),
    X(FINISHED, DRAINING),
    X(FINISHED, FAILED),
    X(FINISHED, KILLED),
    X(FINISHED, KILLING),
    X(FINISHED, LOST),
    X(FINISHED, PARTITIONED),
    L(FINISHED, DELETED, D),

    /* PREEMPTING */
    X(PREEMPTING, INIT),
    X(PREEMPTING, THROTTLED),
    X(PREEMPTING, PENDING),
    I(PREEMPTING, ASSIGNED, K),
    I(PREEMPTING, STARTING, K),
    I(PREEMPTING, RUNNING, K),
    L(PREEMPTING, FINISHED, SS | RS),
    X(PREEMPTING, PREEMPTING),
    X(PREEMPTING, RESTARTING),
    X(PREEMPTING, DRAINING),
    L(PREEMPTING, FAILED, SS | RS),
    L(PREEMPTING, KILLED, SS | RS),
    L(PREEMPTING, KILLING, SS),
    L(PREEMPTING, LOST, SS | RS | K),
    L(PREEMPTING, PARTITIONED, SS | TL),
    X(PREEMPTING, DELETED),

    /* RESTARTING */
    X(RESTARTING, INIT),
    X(RESTARTING, THROTTLED),
    X(RESTARTING, PENDING),
    I(RESTARTING, ASSIGNED, K),
    I(RESTARTING, STARTING, K),
    I(RESTARTING, RUNNING, K),
    L(RESTARTING, FINISHED, SS | RS),
    X(RESTARTING, PREEMPTING),
    X(RESTARTING, RESTARTING),
    X(RESTARTING, DRAINING),
    L(RESTARTING, FAILED, SS | RS),
    L(RESTARTING, KILLED, SS | RS),
    L(RESTARTING, KILLING, SS),
    L(RESTARTING, LOST, SS | RS | K),
    L(RESTARTING, PARTITIONED, SS | TL),
    X(RESTARTING, DELETED),

    /* DRAINING */
    X(DRAINING, INIT),
    X(DRAINING, THROTTLED),
    X(DRAINING, PENDING),
    I(DRAINING, ASSIGNED, K),
    I(DRAINING, STARTING, K),
    I(DRAINING, RUNNING, K),
    L(DRAINING, FINISHED, SS | RS),
    X(DRAINING, PREEMPTING),
    X(DRAINING, RESTARTING),
    X(DRAINING, DRAINING),
    L(DRAINING, FAILED, SS | RS),
    L(DRAINING, KILLED, SS | RS),
    L(DRAINING, KILLING, SS),
    L(DRAINING, LOST, SS | RS | K),
    L(DRAINING, PARTITIONED, SS | TL),
    X(DRAINING, DELETED),

    /* FAILED */
    X(FAILED, INIT),
    X(FAILED, THROTTLED),
    X(FAILED, PENDING),
    I(FAILED, ASSIGNED, K),
    I(FAILED, STARTING, K),
    I(FAILED, RUNNING, K),
    X(FAILED, FINISHED),
    X(FAILED, PREEMPTING),
    X(FAILED, RESTARTING),
    X(FAILED, DRAINING),
    X(FAILED, FAILED),
    X(FAILED, KILLED),
    X(FAILED, KILLING),
    X(FAILED, LOST),
    X(FAILED, PARTITIONED),
    L(FAILED, DELETED, D),

    /* KILLED */
    X(KILLED, INIT),
    X(KILLED, THROTTLED),
    X(KILLED, PENDING),
    I(KILLED, ASSIGNED, K),
    I(KILLED, STARTING, K),
    I(KILLED, RUNNING, K),
    X(KILLED, FINISHED),
    X(KILLED, PREEMPTING),
    X(KILLED, RESTARTING),
    X(KILLED, DRAINING),
    X(KILLED, FAILED),
    X(KILLED, KILLED),
    X(KILLED, KILLING),
    X(KILLED, LOST),
    X(KILLED, PARTITIONED),
    L(KILLED, DELETED, D),

    /* KILLING: nothing is rescheduled */
    X(KILLING, INIT),
    X(KILLING, THROTTLED),
    X(KILLING, PENDING),
    I(KILLING, ASSIGNED, K),
    I(KILLING, STARTING, K),
    I(KILLING, RUNNING, K),
    L(KILLING, FINISHED, SS),
    X(KILLING, PREEMPTING),
    X(KILLING, RESTARTING),
    X(KILLING, DRAINING),
    L(KILLING, FAILED, SS),
    L(KILLING, KILLED, SS),
    X(KILLING, KILLING),
    L(KILLING, LOST, SS),
    L(KILLING, PARTITIONED, SS | TL),
    L(KILLING, DELETED, D),

    /* LOST */
    X(LOST, INIT),
    X(LOST, THROTTLED),
    X(LOST, PENDING),
    I(LOST, ASSIGNED, K),
    I(LOST, STARTING, K),
    I(LOST, RUNNING, K),
    X(LOST, FINISHED),
    X(LOST, PREEMPTING),
    X(LOST, RESTARTING),
    X(LOST, DRAINING),
    X(LOST, FAILED),
    X(LOST, KILLED),
    X(LOST, KILLING),
    X(LOST, LOST),
    X(LOST, PARTITIONED),
    L(LOST, DELETED, D),

    /* PARTITIONED (the task never went through KILLING here) */
    X(PARTITIONED, INIT),
    X(PARTITIONED, THROTTLED),
    X(PARTITIONED, PENDING),
    L(PARTITIONED, ASSIGNED, SS),
    L(PARTITIONED, STARTING, SS),
    L(PARTITIONED, RUNNING, SS),
    L(PARTITIONED, FINISHED, SS),
    L(PARTITIONED, PREEMPTING, SS | TL),
    L(PARTITIONED, RESTARTING, SS | TL),
    L(PARTITIONED, DRAINING, SS | TL),
    V(PARTITIONED, FAILED, INC | SS | RS, INC | SS, INC | SS | RS),
    X(PARTITIONED, KILLED),
    L(PARTITIONED, KILLING, SS | TL),
    L(PARTITIONED, LOST, SS | RS | K),
    X(PARTITIONED, PARTITIONED),
    X(PARTITIONED, DELETED),

    /* DELETED: an unknown task reported alive is killed (reconciliation) */
    X(DELETED, INIT),
    X(DELETED, THROTTLED),
    X(DELETED, PENDING),
    I(DELETED, ASSIGNED, K),
    I(DELETED, STARTING, K),
    I(DELETED, RUNNING, K),
    X(DELETED, FINISHED),
    X(DELETED, PREEMPTING),
    X(DELETED, RESTARTING),
    X(DELETED, DRAINING),
    X(DELETED, FAILED),
    X(DELETED, KILLED),
    X(DELETED, KILLING),
    X(DELETED, LOST),
    X(DELETED, PARTITIONED),
    X(DELETED, DELETED),
};

#define TABLE_ROWS (sizeof(table) / sizeof(table[0]))

static const int64_t NOW = 1700000000000LL;

static struct bo_tsm_task variant_task(int status, int variant)
{
    struct bo_tsm_task t = BO_TSM_TASK_INIT;
    t.status = status;
    t.is_service = variant == V_SERVICE;
    t.max_task_failures = variant == V_BATCH ? 3 : 1;
    t.failure_count = 0;
    return t;
}

static void test_table_covers_every_pair(void **state)
{
    (void)state;
    int seen[BO_TSM_NUM_STATES][BO_TSM_NUM_STATES] = {{0}};
    assert_int_equal(TABLE_ROWS, BO_TSM_NUM_STATES * BO_TSM_NUM_STATES);
    for (size_t i = 0; i < TABLE_ROWS; i++) {
        seen[state_index(table[i].from)][state_index(table[i].to)]++;
    }
    for (size_t f = 0; f < BO_TSM_NUM_STATES; f++) {
        for (size_t t = 0; t < BO_TSM_NUM_STATES; t++) {
            if (seen[f][t] != 1) {
                fail_msg("pair %s -> %s appears %d times", bo_tsm_status_name(all_states[f]),
                         bo_tsm_status_name(all_states[t]), seen[f][t]);
            }
        }
    }
}

static void test_table(void **state)
{
    (void)state;
    struct bo_tsm_params p;
    bo_tsm_params_init(&p);
    for (size_t i = 0; i < TABLE_ROWS; i++) {
        const struct row *r = &table[i];
        for (int v = 0; v < V_COUNT; v++) {
            struct bo_tsm_task t = variant_task(r->from, v);
            struct bo_tsm_result res;
            memset(&res, 0xa5, sizeof(res));
            bo_tsm_decide(&t, r->to, NOW, &p, &res);

            char got[128], want[128];
            bo_tsm_actions_str(res.actions, got, sizeof(got));
            bo_tsm_actions_str(r->actions[v], want, sizeof(want));
            const char *from = bo_tsm_status_name(r->from), *to = bo_tsm_status_name(r->to);
            if (res.legal != r->legal) {
                fail_msg("%s -> %s (%s): legal %d, want %d", from, to, variant_names[v], res.legal,
                         r->legal);
            }
            if (res.actions != r->actions[v]) {
                fail_msg("%s -> %s (%s): actions %s, want %s", from, to, variant_names[v], got,
                         want);
            }
            int want_to = r->legal ? r->to : r->from;
            if (res.to != want_to) {
                fail_msg("%s -> %s (%s): ends in %s, want %s", from, to, variant_names[v],
                         bo_tsm_status_name(res.to), bo_tsm_status_name(want_to));
            }
            assert_int_equal(res.noop, r->from == r->to);
            int32_t want_failures = (r->actions[v] & INC) ? 1 : 0;
            assert_int_equal(res.failure_count, want_failures);
            if (r->actions[v] & RS) {
                /* Never ran, so never flapping. */
                assert_int_equal(res.reschedule_status, T_PENDING);
                assert_string_equal(res.reschedule_message, "Rescheduled");
            } else {
                assert_int_equal(res.reschedule_status, BO_TSM_UNKNOWN);
                assert_null(res.reschedule_message);
            }
            assert_int_equal(res.penalty_ms, 0);
        }
    }
}

static void test_action_order(void **state)
{
    (void)state;
    /* Bits ascend in the order the caller performs them. */
    const unsigned order[] = {BO_TSM_INCREMENT_FAILURES, BO_TSM_SAVE_STATE, BO_TSM_RESCHEDULE,
                              BO_TSM_TRANSITION_TO_LOST, BO_TSM_KILL,       BO_TSM_DELETE};
    unsigned all = 0;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (i > 0) {
            assert_true(order[i - 1] < order[i]);
        }
        assert_int_equal(order[i] & (order[i] - 1), 0); /* one bit */
        all |= order[i];
    }
    assert_int_equal(all, BO_TSM_ACTIONS_ALL);
    assert_string_equal(bo_tsm_action_name(BO_TSM_INCREMENT_FAILURES), "INCREMENT_FAILURES");
    assert_string_equal(bo_tsm_action_name(BO_TSM_TRANSITION_TO_LOST), "TRANSITION_TO_LOST");
    assert_string_equal(bo_tsm_action_name(BO_TSM_DELETE), "DELETE");
    assert_null(bo_tsm_action_name(BO_TSM_KILL | BO_TSM_DELETE));
    assert_null(bo_tsm_action_name(0));

    char buf[128];
    assert_int_equal(bo_tsm_actions_str(K | SS | RS, buf, sizeof(buf)),
                     strlen("SAVE_STATE|RESCHEDULE|KILL"));
    assert_string_equal(buf, "SAVE_STATE|RESCHEDULE|KILL");
    bo_tsm_actions_str(0, buf, sizeof(buf));
    assert_string_equal(buf, "-");
    char small[6];
    assert_int_equal(bo_tsm_actions_str(SS | K, small, sizeof(small)), strlen("SAVE_STATE|KILL"));
    assert_string_equal(small, "SAVE_");
}

/* Run a batch task again and again until it is not rescheduled; the number
 * of runs. */
static int runs_until_given_up(int32_t max_task_failures, int limit)
{
    struct bo_tsm_params p = BO_TSM_PARAMS_INIT;
    struct bo_tsm_task t = BO_TSM_TASK_INIT;
    t.status = T_RUNNING;
    t.max_task_failures = max_task_failures;
    int runs = 0;
    for (;;) {
        struct bo_tsm_result res;
        runs++;
        bo_tsm_decide(&t, T_FAILED, NOW, &p, &res);
        assert_true(res.legal);
        assert_true(res.actions & INC);
        assert_int_equal(res.failure_count, t.failure_count + 1);
        if (!(res.actions & RS) || runs == limit) {
            return runs;
        }
        t.failure_count = res.failure_count; /* carried over to the copy */
    }
}

static void test_failure_limits(void **state)
{
    (void)state;
    struct bo_tsm_params p = BO_TSM_PARAMS_INIT;
    struct bo_tsm_task t = BO_TSM_TASK_INIT;
    struct bo_tsm_result res;
    t.status = T_RUNNING;

    /* max_task_failures 1: no retry. */
    t.max_task_failures = 1;
    bo_tsm_decide(&t, T_FAILED, NOW, &p, &res);
    assert_int_equal(res.actions, INC | SS);
    assert_int_equal(res.failure_count, 1);
    assert_int_equal(runs_until_given_up(1, 100), 1);

    /* max_task_failures 3: two retries, so three runs. */
    t.max_task_failures = 3;
    t.failure_count = 1;
    bo_tsm_decide(&t, T_FAILED, NOW, &p, &res);
    assert_int_equal(res.actions, INC | SS | RS);
    assert_int_equal(res.failure_count, 2);
    t.failure_count = 2;
    bo_tsm_decide(&t, T_FAILED, NOW, &p, &res);
    assert_int_equal(res.actions, INC | SS);
    assert_int_equal(res.failure_count, 3);
    assert_int_equal(runs_until_given_up(3, 100), 3);

    /* -1: unlimited. */
    assert_int_equal(runs_until_given_up(-1, 50), 50);
    t.max_task_failures = -1;
    t.failure_count = INT32_MAX - 1;
    bo_tsm_decide(&t, T_FAILED, NOW, &p, &res);
    assert_int_equal(res.actions, INC | SS | RS);
    assert_int_equal(res.failure_count, INT32_MAX);

    /* 0 (proto3's default when unset) behaves like 1. */
    assert_int_equal(runs_until_given_up(0, 100), 1);

    /* The same limit applies from PARTITIONED. */
    t.status = T_PARTITIONED;
    t.max_task_failures = 2;
    t.failure_count = 0;
    bo_tsm_decide(&t, T_FAILED, NOW, &p, &res);
    assert_int_equal(res.actions, INC | SS | RS);
    t.failure_count = 1;
    bo_tsm_decide(&t, T_FAILED, NOW, &p, &res);
    assert_int_equal(res.actions, INC | SS);

    /* A FAILED report while we stop the task neither counts nor limits. */
    t.status = T_RESTARTING;
    t.max_task_failures = 1;
    t.failure_count = 5;
    bo_tsm_decide(&t, T_FAILED, NOW, &p, &res);
    assert_int_equal(res.actions, SS | RS);
    assert_int_equal(res.failure_count, 5);
}

static void test_service_always_rescheduled(void **state)
{
    (void)state;
    struct bo_tsm_params p = BO_TSM_PARAMS_INIT;
    const int ends[] = {T_FINISHED, T_FAILED, T_KILLED, T_LOST};
    const int froms[] = {T_ASSIGNED, T_STARTING, T_RUNNING};
    for (size_t f = 0; f < sizeof(froms) / sizeof(froms[0]); f++) {
        for (size_t e = 0; e < sizeof(ends) / sizeof(ends[0]); e++) {
            struct bo_tsm_task t = BO_TSM_TASK_INIT;
            t.status = froms[f];
            t.is_service = true;
            t.max_task_failures = 1;
            t.failure_count = 1000;
            struct bo_tsm_result res;
            bo_tsm_decide(&t, ends[e], NOW, &p, &res);
            assert_true(res.legal);
            assert_true(res.actions & RS);
            assert_int_equal(res.reschedule_status, T_PENDING);

            /* The same task as a batch job: only KILLED and LOST reschedule. */
            t.is_service = false;
            bo_tsm_decide(&t, ends[e], NOW, &p, &res);
            bool want = ends[e] == T_KILLED || ends[e] == T_LOST;
            assert_int_equal((res.actions & RS) != 0, want);
        }
    }
}

static void test_flapping(void **state)
{
    (void)state;
    struct bo_tsm_params p;
    memset(&p, 0, sizeof(p));
    bo_tsm_params_init(&p);
    assert_int_equal(p.flapping_threshold_ms, 300000);
    assert_int_equal(p.initial_flapping_delay_ms, 30000);
    assert_int_equal(p.max_flapping_delay_ms, 300000);
    assert_int_equal(p.transient_timeout_ms, 300000);
    assert_int_equal(p.kill_retry_initial_ms, 15000);
    assert_int_equal(p.kill_retry_max_ms, 300000);

    struct bo_tsm_task t = BO_TSM_TASK_INIT;
    t.status = T_RUNNING;
    t.is_service = true;
    t.running_since_ms = NOW - 10000; /* ran 10 s */
    struct bo_tsm_result res;

    bo_tsm_decide(&t, T_FAILED, NOW, &p, &res);
    assert_true(res.actions & RS);
    assert_int_equal(res.reschedule_status, T_THROTTLED);
    assert_int_equal(res.penalty_ms, 30000);
    assert_null(res.reschedule_message);

    t.last_penalty_ms = 30000; /* the task was itself throttled 30 s */
    bo_tsm_decide(&t, T_FAILED, NOW, &p, &res);
    assert_int_equal(res.reschedule_status, T_THROTTLED);
    assert_int_equal(res.penalty_ms, 60000);

    t.last_penalty_ms = 240000; /* doubling would give 8 min */
    bo_tsm_decide(&t, T_FINISHED, NOW, &p, &res);
    assert_int_equal(res.penalty_ms, 300000);
    t.last_penalty_ms = 300000;
    bo_tsm_decide(&t, T_KILLED, NOW, &p, &res);
    assert_int_equal(res.penalty_ms, 300000);
    t.last_penalty_ms = INT64_MAX;
    bo_tsm_decide(&t, T_LOST, NOW, &p, &res);
    assert_int_equal(res.penalty_ms, 300000);

    /* Ran 10 min: not flapping, the penalty history does not matter. */
    t.running_since_ms = NOW - 600000;
    t.last_penalty_ms = 60000;
    bo_tsm_decide(&t, T_FAILED, NOW, &p, &res);
    assert_int_equal(res.reschedule_status, T_PENDING);
    assert_int_equal(res.penalty_ms, 0);
    assert_string_equal(res.reschedule_message, "Rescheduled");

    /* The threshold itself is not flapping; one ms less is. */
    t.running_since_ms = NOW - 300000;
    bo_tsm_decide(&t, T_FAILED, NOW, &p, &res);
    assert_int_equal(res.reschedule_status, T_PENDING);
    t.running_since_ms = NOW - 299999;
    bo_tsm_decide(&t, T_FAILED, NOW, &p, &res);
    assert_int_equal(res.reschedule_status, T_THROTTLED);
    assert_int_equal(res.penalty_ms, 120000);

    /* Interrupted by a user (restart): never flapping. */
    t.status = T_RESTARTING;
    t.running_since_ms = NOW - 10000;
    t.user_interrupted = true;
    bo_tsm_decide(&t, T_KILLED, NOW, &p, &res);
    assert_true(res.actions & RS);
    assert_int_equal(res.reschedule_status, T_PENDING);
    assert_int_equal(res.penalty_ms, 0);

    /* Preemption is not a user interruption. */
    t.status = T_PREEMPTING;
    t.user_interrupted = false;
    t.last_penalty_ms = 0;
    bo_tsm_decide(&t, T_KILLED, NOW, &p, &res);
    assert_int_equal(res.reschedule_status, T_THROTTLED);
    assert_int_equal(res.penalty_ms, 30000);

    /* Never reached RUNNING: not flapping. */
    t.status = T_STARTING;
    t.running_since_ms = 0;
    bo_tsm_decide(&t, T_FAILED, NOW, &p, &res);
    assert_int_equal(res.reschedule_status, T_PENDING);
    bo_tsm_decide(&t, T_FAILED, 1000, &p, &res); /* even close to time 0 */
    assert_int_equal(res.reschedule_status, T_PENDING);

    /* The tunables are honoured. */
    p.initial_flapping_delay_ms = 1000;
    p.flapping_threshold_ms = 5000;
    t.status = T_RUNNING;
    t.running_since_ms = NOW - 4000;
    assert_int_equal(bo_tsm_flapping_penalty(&t, NOW, &p), 1000);
    t.running_since_ms = NOW - 6000;
    assert_int_equal(bo_tsm_flapping_penalty(&t, NOW, &p), 0);
}

static void test_partitioned_to_lost(void **state)
{
    (void)state;
    struct bo_tsm_params p = BO_TSM_PARAMS_INIT;
    struct bo_tsm_task t = BO_TSM_TASK_INIT;
    struct bo_tsm_result res;
    t.status = T_PARTITIONED;

    bo_tsm_decide(&t, T_LOST, NOW, &p, &res);
    assert_true(res.legal);
    assert_int_equal(res.to, T_LOST);
    assert_int_equal(res.actions, SS | RS | K);
    assert_int_equal(res.reschedule_status, T_PENDING);

    t.ever_killing = true; /* went PARTITIONED while being killed */
    t.user_interrupted = true;
    bo_tsm_decide(&t, T_LOST, NOW, &p, &res);
    assert_true(res.legal);
    assert_int_equal(res.actions, SS | K);
    assert_int_equal(res.reschedule_status, BO_TSM_UNKNOWN);

    /* Partition policy timer. */
    int64_t delay = -1;
    struct bo_tsm_task d = BO_TSM_TASK_INIT; /* no policy: reschedule now */
    d.status = T_PARTITIONED;
    assert_true(bo_tsm_partition_lost_delay(&d, NOW, &delay));
    assert_int_equal(delay, 0);
    d.partition_delay_ms = 60000;
    d.partitioned_since_ms = NOW - 20000; /* a failover 20 s after entering */
    assert_true(bo_tsm_partition_lost_delay(&d, NOW, &delay));
    assert_int_equal(delay, 40000);
    d.partitioned_since_ms = NOW - 90000;
    assert_true(bo_tsm_partition_lost_delay(&d, NOW, &delay));
    assert_int_equal(delay, 0);
    d.partitioned_since_ms = 0; /* unknown: the whole delay */
    assert_true(bo_tsm_partition_lost_delay(&d, NOW, &delay));
    assert_int_equal(delay, 60000);
    d.partition_reschedule = false;
    delay = -1;
    assert_false(bo_tsm_partition_lost_delay(&d, NOW, &delay));
    assert_int_equal(delay, -1);
}

static void test_timeouts_and_kill_retry(void **state)
{
    (void)state;
    struct bo_tsm_params p = BO_TSM_PARAMS_INIT;
    const int64_t want[] = {15000, 30000, 60000, 120000, 240000, 300000, 300000};
    for (int i = 0; i < (int)(sizeof(want) / sizeof(want[0])); i++) {
        assert_int_equal(bo_tsm_kill_retry_delay(&p, i), want[i]);
    }
    assert_int_equal(bo_tsm_kill_retry_delay(&p, 1000000), 300000);
    p.kill_retry_max_ms = 100000;
    assert_int_equal(bo_tsm_kill_retry_delay(&p, 3), 100000);

    p = (struct bo_tsm_params)BO_TSM_PARAMS_INIT;
    assert_false(bo_tsm_transient_timed_out(T_ASSIGNED, NOW, NOW + 299999, &p));
    assert_true(bo_tsm_transient_timed_out(T_ASSIGNED, NOW, NOW + 300000, &p));
    assert_true(bo_tsm_transient_timed_out(T_KILLING, NOW, NOW + 400000, &p));
    assert_false(bo_tsm_transient_timed_out(T_STARTING, NOW, NOW + 400000, &p));
    assert_false(bo_tsm_transient_timed_out(T_RUNNING, NOW, NOW + 400000, &p));
}

struct set_row {
    int s;
    bool active, slave_assigned, live, terminal, transient;
};

static void test_sets(void **state)
{
    (void)state;
    static const struct set_row rows[] = {
        /* s, active, slave_assigned, live, terminal, transient */
        {T_INIT, false, false, false, false, false},
        {T_THROTTLED, true, false, false, false, false},
        {T_PENDING, true, false, false, false, false},
        {T_ASSIGNED, true, true, false, false, true},
        {T_STARTING, true, true, false, false, false},
        {T_RUNNING, true, true, true, false, false},
        {T_FINISHED, false, false, false, true, false},
        {T_PREEMPTING, true, true, true, false, true},
        {T_RESTARTING, true, true, true, false, true},
        {T_DRAINING, true, true, true, false, true},
        {T_FAILED, false, false, false, true, false},
        {T_KILLED, false, false, false, true, false},
        {T_KILLING, true, true, true, false, true},
        {T_LOST, false, false, false, true, false},
        {T_PARTITIONED, true, true, true, false, false},
        {T_DELETED, false, false, false, false, false},
        {8, false, false, false, false, false},
        {10, false, false, false, false, false},
        {99, false, false, false, false, false},
        {BO_TSM_UNKNOWN, false, false, false, false, false},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct set_row *r = &rows[i];
        if (bo_tsm_is_active(r->s) != r->active ||
            bo_tsm_is_slave_assigned(r->s) != r->slave_assigned ||
            bo_tsm_is_live(r->s) != r->live || bo_tsm_is_terminal(r->s) != r->terminal ||
            bo_tsm_is_transient(r->s) != r->transient) {
            fail_msg("sets of %s (%d) are wrong", bo_tsm_status_name(r->s), r->s);
        }
        assert_int_equal(bo_tsm_is_valid(r->s), i < BO_TSM_NUM_STATES);
    }
}

static void test_names(void **state)
{
    (void)state;
    static const char *const names[BO_TSM_NUM_STATES] = {
        "INIT",     "THROTTLED",  "PENDING",     "ASSIGNED", "STARTING", "RUNNING",
        "FINISHED", "PREEMPTING", "RESTARTING",  "DRAINING", "FAILED",   "KILLED",
        "KILLING",  "LOST",       "PARTITIONED", "DELETED",
    };
    for (size_t i = 0; i < BO_TSM_NUM_STATES; i++) {
        assert_string_equal(bo_tsm_status_name(all_states[i]), names[i]);
        assert_int_equal(bo_tsm_status_parse(names[i]), all_states[i]);
    }
    assert_int_equal(bo_tsm_status_parse("RUNNING"), 2);
    assert_int_equal(bo_tsm_status_parse("PARTITIONED"), 18);
    assert_int_equal(bo_tsm_status_parse("DELETED"), -1);
    assert_int_equal(bo_tsm_status_parse("running"), BO_TSM_UNKNOWN);
    assert_int_equal(bo_tsm_status_parse("RUNNING "), BO_TSM_UNKNOWN);
    assert_int_equal(bo_tsm_status_parse(""), BO_TSM_UNKNOWN);
    assert_int_equal(bo_tsm_status_parse("UNKNOWN"), BO_TSM_UNKNOWN);
    assert_int_equal(bo_tsm_status_parse(NULL), BO_TSM_UNKNOWN);
    assert_string_equal(bo_tsm_status_name(8), "UNKNOWN");
    assert_string_equal(bo_tsm_status_name(BO_TSM_UNKNOWN), "UNKNOWN");
}

static void test_penalty_message(void **state)
{
    (void)state;
    char buf[BO_TSM_PENALTY_MSG_SIZE];
    int64_t ms = -1;
    size_t n = bo_tsm_format_penalty_message(buf, sizeof(buf), 30000);
    assert_string_equal(buf, "Rescheduled, penalized for 30000 ms for flapping");
    assert_int_equal(n, strlen(buf));
    assert_true(bo_tsm_parse_penalty_message(buf, &ms));
    assert_int_equal(ms, 30000);

    assert_true(bo_tsm_format_penalty_message(buf, sizeof(buf), INT64_MAX) < sizeof(buf));
    assert_true(bo_tsm_parse_penalty_message(buf, &ms));
    assert_int_equal(ms, INT64_MAX);

    char small[12];
    assert_int_equal(bo_tsm_format_penalty_message(small, sizeof(small), 30000),
                     strlen("Rescheduled, penalized for 30000 ms for flapping"));
    assert_string_equal(small, "Rescheduled");

    static const char *const bad[] = {
        "Rescheduled",
        "Rescheduled, penalized for  ms for flapping",
        "Rescheduled, penalized for 12x ms for flapping",
        "Rescheduled, penalized for -5 ms for flapping",
        "Rescheduled, penalized for 5 ms for flapping!",
        "Rescheduled, penalized for 5 ms",
        "rescheduled, penalized for 5 ms for flapping",
        "Rescheduled, penalized for 99999999999999999999 ms for flapping",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ms = 7;
        if (bo_tsm_parse_penalty_message(bad[i], &ms)) {
            fail_msg("'%s' parsed", bad[i]);
        }
        assert_int_equal(ms, 7);
    }
    assert_false(bo_tsm_parse_penalty_message(NULL, &ms));
}

/* A stored task with `n` events, statuses and times from the arrays. */
struct proto_task {
    Bo__ScheduledTask st;
    Bo__AssignedTask at;
    Bo__TaskConfig cfg;
    Bo__PartitionPolicy pp;
    Bo__TaskEvent ev[16];
    Bo__TaskEvent *evp[16];
};

static void proto_task_init(struct proto_task *pt, int status, const int *statuses,
                            const int64_t *times, size_t n)
{
    assert_true(n <= 16);
    pt->st = (Bo__ScheduledTask)BO__SCHEDULED_TASK__INIT;
    pt->at = (Bo__AssignedTask)BO__ASSIGNED_TASK__INIT;
    pt->cfg = (Bo__TaskConfig)BO__TASK_CONFIG__INIT;
    pt->pp = (Bo__PartitionPolicy)BO__PARTITION_POLICY__INIT;
    pt->st.assigned_task = &pt->at;
    pt->at.task = &pt->cfg;
    pt->st.status = (Bo__ScheduleStatus)status;
    for (size_t i = 0; i < n; i++) {
        pt->ev[i] = (Bo__TaskEvent)BO__TASK_EVENT__INIT;
        pt->ev[i].status = (Bo__ScheduleStatus)statuses[i];
        pt->ev[i].timestamp_ms = times[i];
        pt->evp[i] = &pt->ev[i];
    }
    pt->st.n_task_events = n;
    pt->st.task_events = pt->evp;
}

static void test_from_proto(void **state)
{
    (void)state;
    struct proto_task pt;
    struct bo_tsm_task t;
    char penalty[BO_TSM_PENALTY_MSG_SIZE];

    /* A throttled service that ran, was partitioned, and came back. */
    const int s1[] = {T_INIT,     T_THROTTLED, T_PENDING,     T_ASSIGNED,
                      T_STARTING, T_RUNNING,   T_PARTITIONED, T_RUNNING};
    const int64_t t1[] = {1000, 1001, 31001, 32000, 33000, 34000, 40000, 45000};
    proto_task_init(&pt, T_RUNNING, s1, t1, 8);
    bo_tsm_format_penalty_message(penalty, sizeof(penalty), 60000);
    pt.ev[1].message = penalty;
    pt.cfg.is_service = true;
    pt.cfg.max_task_failures = 5;
    pt.st.failure_count = 2;
    pt.pp.reschedule = false;
    pt.pp.delay_secs = 30;
    pt.cfg.partition_policy = &pt.pp;

    memset(&t, 0xa5, sizeof(t));
    assert_int_equal(bo_tsm_task_from_proto(&pt.st, &t), BO_OK);
    assert_int_equal(t.status, T_RUNNING);
    assert_true(t.is_service);
    assert_int_equal(t.max_task_failures, 5);
    assert_int_equal(t.failure_count, 2);
    assert_false(t.ever_killing);
    assert_false(t.user_interrupted);
    assert_int_equal(t.running_since_ms, 45000);
    assert_int_equal(t.last_penalty_ms, 60000);
    assert_false(t.partition_reschedule);
    assert_int_equal(t.partition_delay_ms, 30000);
    assert_int_equal(t.partitioned_since_ms, 40000);

    /* The extracted facts drive the decision: it failed 10 s after running
     * again, so the replacement is throttled for twice the last penalty. */
    struct bo_tsm_params p = BO_TSM_PARAMS_INIT;
    struct bo_tsm_result res;
    bo_tsm_decide(&t, T_FAILED, 55000, &p, &res);
    assert_int_equal(res.actions, INC | SS | RS);
    assert_int_equal(res.failure_count, 3);
    assert_int_equal(res.reschedule_status, T_THROTTLED);
    assert_int_equal(res.penalty_ms, 120000);

    /* No policy: reschedule on partition, no delay. A restart interrupts;
     * a THROTTLED event without a penalty message gives no penalty. */
    const int s2[] = {T_THROTTLED, T_PENDING, T_ASSIGNED, T_RUNNING, T_RESTARTING};
    const int64_t t2[] = {10, 20, 30, 40, 50};
    proto_task_init(&pt, T_RESTARTING, s2, t2, 5);
    pt.ev[0].message = "Rescheduled";
    assert_int_equal(bo_tsm_task_from_proto(&pt.st, &t), BO_OK);
    assert_false(t.is_service);
    assert_int_equal(t.max_task_failures, 0);
    assert_true(t.partition_reschedule);
    assert_int_equal(t.partition_delay_ms, 0);
    assert_int_equal(t.partitioned_since_ms, 0);
    assert_int_equal(t.last_penalty_ms, 0);
    assert_int_equal(t.running_since_ms, 40);
    assert_true(t.user_interrupted);
    assert_false(t.ever_killing);

    /* KILLING: both flags, from an event ... */
    const int s3[] = {T_PENDING, T_ASSIGNED, T_KILLING, T_PARTITIONED};
    const int64_t t3[] = {1, 2, 3, 4};
    proto_task_init(&pt, T_PARTITIONED, s3, t3, 4);
    assert_int_equal(bo_tsm_task_from_proto(&pt.st, &t), BO_OK);
    assert_true(t.ever_killing);
    assert_true(t.user_interrupted);
    assert_int_equal(t.running_since_ms, 0);
    bo_tsm_decide(&t, T_LOST, 5, &p, &res);
    assert_int_equal(res.actions, SS | K);

    /* ... or from the current status alone. */
    proto_task_init(&pt, T_KILLING, s3, t3, 2);
    assert_int_equal(bo_tsm_task_from_proto(&pt.st, &t), BO_OK);
    assert_true(t.ever_killing);
    assert_true(t.user_interrupted);

    /* Draining interrupts without killing. */
    proto_task_init(&pt, T_DRAINING, s3, t3, 2);
    assert_int_equal(bo_tsm_task_from_proto(&pt.st, &t), BO_OK);
    assert_false(t.ever_killing);
    assert_true(t.user_interrupted);

    /* Preempting does not interrupt. */
    proto_task_init(&pt, T_PREEMPTING, s3, t3, 2);
    assert_int_equal(bo_tsm_task_from_proto(&pt.st, &t), BO_OK);
    assert_false(t.user_interrupted);

    /* The last THROTTLED event counts. */
    const int s4[] = {T_THROTTLED, T_PENDING, T_THROTTLED};
    const int64_t t4[] = {1, 2, 3};
    char penalty2[BO_TSM_PENALTY_MSG_SIZE];
    proto_task_init(&pt, T_THROTTLED, s4, t4, 3);
    bo_tsm_format_penalty_message(penalty2, sizeof(penalty2), 240000);
    pt.ev[0].message = penalty;
    pt.ev[2].message = penalty2;
    assert_int_equal(bo_tsm_task_from_proto(&pt.st, &t), BO_OK);
    assert_int_equal(t.last_penalty_ms, 240000);

    /* Bad input. */
    proto_task_init(&pt, 8, s4, t4, 0);
    assert_int_equal(bo_tsm_task_from_proto(&pt.st, &t), BO_EINVAL);
    proto_task_init(&pt, T_RUNNING, s4, t4, 0);
    pt.at.task = NULL;
    assert_int_equal(bo_tsm_task_from_proto(&pt.st, &t), BO_EINVAL);
    pt.st.assigned_task = NULL;
    assert_int_equal(bo_tsm_task_from_proto(&pt.st, &t), BO_EINVAL);
    assert_int_equal(t.status, T_RUNNING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_covers_every_pair),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_action_order),
        cmocka_unit_test(test_failure_limits),
        cmocka_unit_test(test_service_always_rescheduled),
        cmocka_unit_test(test_flapping),
        cmocka_unit_test(test_partitioned_to_lost),
        cmocka_unit_test(test_timeouts_and_kill_retry),
        cmocka_unit_test(test_sets),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_penalty_message),
        cmocka_unit_test(test_from_proto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
