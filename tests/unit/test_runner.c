/*
 * test_runner.c - the process-graph planner, driven by hand: ordering,
 * concurrency, retries and min_duration, daemons, ephemerals, finals,
 * stages and the finalization deadline, kills, drains, task failure limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/mem.h"
#include "executor/runner.h"
#include "executor/tconf.h"

struct fx {
    struct bo_tconf c;
    struct bo_runner r;
    struct bo_runner_act acts[64];
    size_t nacts;
    int64_t now;
};

static struct fx *setup(const char *data)
{
    struct fx *f = calloc(1, sizeof(*f));
    json_t *d = json_string(data);
    char *ds = json_dumps(d, JSON_ENCODE_ANY);
    json_decref(d);
    size_t n = strlen(ds) + 512;
    char *s = malloc(n);
    snprintf(s, n,
             "{\"task\": {\"assigned_task\": {\"task_id\": \"t\", \"task\": "
             "{\"executor_config\": {\"data\": %s}}}}, \"sandbox\": \"/tmp/x\"}",
             ds);
    free(ds);
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_tconf_parse(&f->c, s, strlen(s), &err);
    free(s);
    if (rv != BO_OK) {
        print_message("parse: %s\n", bo_err_msg(&err, rv));
    }
    assert_int_equal(rv, BO_OK);
    assert_int_equal(bo_runner_init(&f->r, &f->c), BO_OK);
    assert_true(bo_runner_max_actions(&f->r) <= 64);
    f->now = 1000000;
    return f;
}

static void teardown(struct fx *f)
{
    bo_runner_release(&f->r);
    bo_tconf_release(&f->c);
    free(f);
}

static void take(struct fx *f)
{
    f->nacts = bo_runner_take(&f->r, f->acts);
}

static size_t idx(struct fx *f, const char *name)
{
    long i = bo_tconf_proc_index(&f->c, name);
    assert_true(i >= 0);
    return (size_t)i;
}

static int count_kind(struct fx *f, int kind)
{
    int n = 0;
    for (size_t i = 0; i < f->nacts; i++) {
        n += f->acts[i].kind == kind;
    }
    return n;
}

static bool started(struct fx *f, const char *name, int run)
{
    size_t i = idx(f, name);
    for (size_t k = 0; k < f->nacts; k++) {
        if (f->acts[k].kind == BO_RUNNER_START && f->acts[k].proc == i && f->acts[k].run == run) {
            return true;
        }
    }
    return false;
}

static bool done(struct fx *f)
{
    return count_kind(f, BO_RUNNER_DONE) == 1;
}

/* Fork every START in the last batch (as the executor would). */
static void fork_all(struct fx *f)
{
    struct bo_runner_act a[64];
    size_t n = f->nacts;
    memcpy(a, f->acts, n * sizeof(a[0]));
    f->nacts = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i].kind == BO_RUNNER_START) {
            bo_runner_forked(&f->r, a[i].proc, (long)(100 + a[i].proc), f->now);
            struct bo_runner_act more[64];
            size_t m = bo_runner_take(&f->r, more);
            memcpy(f->acts + f->nacts, more, m * sizeof(more[0]));
            f->nacts += m;
        }
    }
}

static void exit_proc(struct fx *f, const char *name, int code, int sig)
{
    bo_runner_exited(&f->r, idx(f, name), code, sig, f->now);
    take(f);
}

static int pstate(struct fx *f, const char *name)
{
    return f->r.procs[idx(f, name)].state;
}

static void test_single_success(void **state)
{
    (void)state;
    struct fx *f = setup("{\"processes\": [{\"name\": \"hello\", \"cmdline\": \"echo hi\"}]}");
    bo_runner_start(&f->r, f->now);
    take(f);
    assert_true(started(f, "hello", 0));
    assert_int_equal(pstate(f, "hello"), BO_PROC_FORKED);
    fork_all(f);
    assert_int_equal(pstate(f, "hello"), BO_PROC_RUNNING);
    assert_int_equal(f->r.procs[0].pid, 100);
    f->now += 10;
    exit_proc(f, "hello", 0, 0);
    assert_int_equal(pstate(f, "hello"), BO_PROC_SUCCESS);
    assert_true(done(f));
    assert_int_equal(count_kind(f, BO_RUNNER_TERM_ALL), 0);
    assert_int_equal(f->r.stage, BO_STAGE_DONE);
    assert_int_equal(f->r.end, BO_END_FINISHED);
    assert_string_equal(f->r.msg, "all processes finished");
    assert_int_equal(f->r.wake_ms, INT64_MAX);
    /* events after DONE change nothing */
    bo_runner_tick(&f->r, f->now + 1000);
    take(f);
    assert_int_equal(f->nacts, 0);
    teardown(f);
}

static void test_ordering_and_parallel(void **state)
{
    (void)state;
    struct fx *f = setup("{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\"},"
                         " {\"name\": \"b\", \"cmdline\": \"x\"},"
                         " {\"name\": \"c\", \"cmdline\": \"x\"},"
                         " {\"name\": \"d\", \"cmdline\": \"x\"}],"
                         " \"constraints\": [{\"order\": [\"a\", \"b\", \"c\"]}]}");
    bo_runner_start(&f->r, f->now);
    take(f);
    assert_true(started(f, "a", 0));
    assert_true(started(f, "d", 0));
    assert_int_equal(count_kind(f, BO_RUNNER_START), 2);
    fork_all(f);
    exit_proc(f, "d", 0, 0);
    assert_int_equal(count_kind(f, BO_RUNNER_START), 0);
    exit_proc(f, "a", 0, 0);
    assert_true(started(f, "b", 0));
    fork_all(f);
    exit_proc(f, "b", 0, 0);
    assert_true(started(f, "c", 0));
    fork_all(f);
    exit_proc(f, "c", 0, 0);
    assert_true(done(f));
    assert_int_equal(f->r.end, BO_END_FINISHED);
    teardown(f);
}

static void test_max_concurrency(void **state)
{
    (void)state;
    struct fx *f = setup("{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\"},"
                         " {\"name\": \"b\", \"cmdline\": \"x\"},"
                         " {\"name\": \"c\", \"cmdline\": \"x\"}], \"max_concurrency\": 2}");
    bo_runner_start(&f->r, f->now);
    take(f);
    assert_int_equal(count_kind(f, BO_RUNNER_START), 2);
    fork_all(f);
    exit_proc(f, "a", 0, 0);
    assert_true(started(f, "c", 0));
    teardown(f);
}

static void test_retries_then_fail(void **state)
{
    (void)state;
    struct fx *f = setup("{\"processes\": [{\"name\": \"web\", \"cmdline\": \"x\","
                         " \"max_failures\": 2, \"min_duration\": 3}]}");
    bo_runner_start(&f->r, f->now);
    take(f);
    fork_all(f);
    f->now += 1000;
    exit_proc(f, "web", 3, 0);
    assert_int_equal(pstate(f, "web"), BO_PROC_WAITING);
    assert_int_equal(f->r.procs[0].failures, 1);
    assert_int_equal(f->r.procs[0].run, 1);
    assert_int_equal(count_kind(f, BO_RUNNER_START), 0);
    /* the next run no sooner than min_duration after the last start */
    assert_int_equal(f->r.wake_ms, f->now - 1000 + 3000);
    f->now += 1000;
    bo_runner_tick(&f->r, f->now);
    take(f);
    assert_int_equal(count_kind(f, BO_RUNNER_START), 0);
    f->now += 1000;
    bo_runner_tick(&f->r, f->now);
    take(f);
    assert_true(started(f, "web", 1));
    fork_all(f);
    exit_proc(f, "web", 3, 0);
    assert_int_equal(pstate(f, "web"), BO_PROC_FAILED);
    assert_true(done(f));
    assert_int_equal(f->r.end, BO_END_FAILED);
    assert_string_equal(f->r.msg, "process 'web' failed: exit code 3 (run 2 of 2)");
    teardown(f);
}

static void test_signal_death_and_task_max_failures(void **state)
{
    (void)state;
    struct fx *f = setup("{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\"},"
                         " {\"name\": \"b\", \"cmdline\": \"x\"},"
                         " {\"name\": \"c\", \"cmdline\": \"x\"}],"
                         " \"constraints\": [{\"order\": [\"a\", \"c\"]}], \"max_failures\": 2}");
    bo_runner_start(&f->r, f->now);
    take(f);
    fork_all(f);
    exit_proc(f, "a", 0, SIGKILL);
    /* one failed process is under the task's limit of 2; c can never run */
    assert_int_equal(pstate(f, "a"), BO_PROC_FAILED);
    assert_int_equal(f->r.failed_procs, 1);
    assert_false(done(f));
    exit_proc(f, "b", 0, 0);
    assert_true(done(f));
    assert_int_equal(f->r.end, BO_END_FINISHED);
    assert_int_equal(pstate(f, "c"), BO_PROC_WAITING);
    teardown(f);

    f = setup("{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\"},"
              " {\"name\": \"b\", \"cmdline\": \"sleep 100\"}]}");
    bo_runner_start(&f->r, f->now);
    take(f);
    fork_all(f);
    exit_proc(f, "a", 0, 9);
    /* the limit is reached: CLEANING terminates b */
    assert_int_equal(f->r.stage, BO_STAGE_CLEANING);
    assert_int_equal(count_kind(f, BO_RUNNER_TERM_ALL), 1);
    assert_string_equal(f->r.msg, "process 'a' killed by signal 9 (run 1 of 1)");
    exit_proc(f, "b", 0, SIGTERM);
    assert_int_equal(pstate(f, "b"), BO_PROC_KILLED);
    assert_true(done(f));
    assert_int_equal(f->r.end, BO_END_FAILED);
    assert_string_equal(f->r.msg, "process 'a' killed by signal 9 (run 1 of 1)");
    teardown(f);
}

static void test_daemon_ephemeral_final(void **state)
{
    (void)state;
    struct fx *f = setup("{\"processes\": ["
                         " {\"name\": \"main\", \"cmdline\": \"x\"},"
                         " {\"name\": \"tick\", \"cmdline\": \"x\", \"daemon\": true,"
                         "  \"ephemeral\": true, \"min_duration\": 2},"
                         " {\"name\": \"fin1\", \"cmdline\": \"x\", \"final\": true},"
                         " {\"name\": \"fin2\", \"cmdline\": \"x\", \"final\": true}],"
                         " \"constraints\": [{\"order\": [\"fin1\", \"fin2\"]}],"
                         " \"finalization_wait\": 10}");
    bo_runner_start(&f->r, f->now);
    take(f);
    assert_true(started(f, "main", 0));
    assert_true(started(f, "tick", 0));
    assert_false(started(f, "fin1", 0));
    fork_all(f);
    f->now += 500;
    exit_proc(f, "tick", 0, 0);
    /* a daemon runs again, min_duration after its last start */
    assert_int_equal(pstate(f, "tick"), BO_PROC_WAITING);
    assert_int_equal(f->r.wake_ms, f->now - 500 + 2000);
    f->now += 1500;
    bo_runner_tick(&f->r, f->now);
    take(f);
    assert_true(started(f, "tick", 1));
    fork_all(f);
    f->now += 100;
    exit_proc(f, "main", 0, 0);
    /* main done: CLEANING terminates the ephemeral daemon */
    assert_int_equal(f->r.stage, BO_STAGE_CLEANING);
    assert_int_equal(count_kind(f, BO_RUNNER_TERM_ALL), 1);
    assert_int_equal(f->r.deadline_ms, f->now + 10000);
    assert_int_equal(f->r.wake_ms, f->now + 10000);
    /* stray descendants hold CLEANING too */
    bo_runner_stragglers(&f->r, 1, f->now);
    take(f);
    exit_proc(f, "tick", 0, SIGTERM);
    assert_int_equal(pstate(f, "tick"), BO_PROC_KILLED);
    assert_int_equal(f->r.stage, BO_STAGE_CLEANING);
    bo_runner_stragglers(&f->r, 0, f->now);
    take(f);
    assert_int_equal(f->r.stage, BO_STAGE_FINALIZING);
    assert_true(started(f, "fin1", 0));
    assert_false(started(f, "fin2", 0));
    fork_all(f);
    exit_proc(f, "fin1", 0, 0);
    assert_true(started(f, "fin2", 0));
    fork_all(f);
    exit_proc(f, "fin2", 0, 0);
    assert_true(done(f));
    assert_int_equal(f->r.end, BO_END_FINISHED);
    teardown(f);
}

static void test_finalization_deadline(void **state)
{
    (void)state;
    struct fx *f = setup("{\"processes\": ["
                         " {\"name\": \"main\", \"cmdline\": \"x\"},"
                         " {\"name\": \"side\", \"cmdline\": \"x\", \"ephemeral\": true},"
                         " {\"name\": \"fin\", \"cmdline\": \"x\", \"final\": true}],"
                         " \"finalization_wait\": 5}");
    bo_runner_start(&f->r, f->now);
    take(f);
    fork_all(f);
    exit_proc(f, "main", 0, 0);
    assert_int_equal(count_kind(f, BO_RUNNER_TERM_ALL), 1);
    /* side ignores SIGTERM: SIGKILL at the deadline, no finals after that */
    f->now += 5000;
    bo_runner_tick(&f->r, f->now);
    take(f);
    assert_int_equal(count_kind(f, BO_RUNNER_KILL_ALL), 1);
    assert_false(done(f));
    exit_proc(f, "side", 0, SIGKILL);
    assert_true(done(f));
    assert_int_equal(pstate(f, "fin"), BO_PROC_WAITING);
    assert_int_equal(f->r.end, BO_END_FINISHED);
    teardown(f);

    /* a final that hangs is killed at the deadline */
    f = setup("{\"processes\": [{\"name\": \"main\", \"cmdline\": \"x\"},"
              " {\"name\": \"fin\", \"cmdline\": \"x\", \"final\": true}],"
              " \"finalization_wait\": 5}");
    bo_runner_start(&f->r, f->now);
    take(f);
    fork_all(f);
    exit_proc(f, "main", 0, 0);
    assert_true(started(f, "fin", 0));
    fork_all(f);
    f->now += 4999;
    bo_runner_tick(&f->r, f->now);
    take(f);
    assert_int_equal(count_kind(f, BO_RUNNER_KILL_ALL), 0);
    f->now += 1;
    bo_runner_tick(&f->r, f->now);
    take(f);
    assert_int_equal(count_kind(f, BO_RUNNER_KILL_ALL), 1);
    exit_proc(f, "fin", 0, SIGKILL);
    assert_int_equal(pstate(f, "fin"), BO_PROC_KILLED);
    assert_true(done(f));
    teardown(f);
}

static void test_final_failure_fails_task(void **state)
{
    (void)state;
    struct fx *f = setup("{\"processes\": [{\"name\": \"main\", \"cmdline\": \"x\"},"
                         " {\"name\": \"fin\", \"cmdline\": \"x\", \"final\": true}]}");
    bo_runner_start(&f->r, f->now);
    take(f);
    fork_all(f);
    exit_proc(f, "main", 0, 0);
    fork_all(f);
    exit_proc(f, "fin", 1, 0);
    assert_true(done(f));
    assert_int_equal(f->r.end, BO_END_FAILED);
    assert_string_equal(f->r.msg, "process 'fin' failed: exit code 1 (run 1 of 1)");
    teardown(f);
}

static void test_kill(void **state)
{
    (void)state;
    struct fx *f = setup("{\"processes\": [{\"name\": \"web\", \"cmdline\": \"x\"},"
                         " {\"name\": \"fin\", \"cmdline\": \"x\", \"final\": true}],"
                         " \"finalization_wait\": 3}");
    bo_runner_start(&f->r, f->now);
    take(f);
    fork_all(f);
    bo_runner_kill(&f->r, BO_END_KILLED, "killed by request", f->now);
    take(f);
    assert_int_equal(count_kind(f, BO_RUNNER_TERM_ALL), 1);
    /* a second kill, or a failure, changes nothing */
    bo_runner_kill(&f->r, BO_END_FAILED, "disk limit exceeded", f->now);
    take(f);
    assert_int_equal(f->nacts, 0);
    f->now += 3000;
    bo_runner_tick(&f->r, f->now);
    take(f);
    assert_int_equal(count_kind(f, BO_RUNNER_KILL_ALL), 1);
    exit_proc(f, "web", 0, SIGKILL);
    assert_true(done(f));
    assert_int_equal(f->r.end, BO_END_KILLED);
    assert_string_equal(f->r.msg, "killed by request");
    assert_int_equal(pstate(f, "web"), BO_PROC_KILLED);
    /* no finals on a kill */
    assert_int_equal(pstate(f, "fin"), BO_PROC_WAITING);
    teardown(f);
}

static void test_kill_idle_and_drain(void **state)
{
    (void)state;
    /* kill while a retry waits: nothing alive, DONE at once */
    struct fx *f = setup("{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\","
                         " \"max_failures\": 0}]}");
    bo_runner_start(&f->r, f->now);
    take(f);
    fork_all(f);
    exit_proc(f, "a", 1, 0);
    assert_int_equal(pstate(f, "a"), BO_PROC_WAITING);
    bo_runner_kill(&f->r, BO_END_FAILED, "memory limit exceeded", f->now);
    take(f);
    assert_true(done(f));
    assert_int_equal(f->r.end, BO_END_FAILED);
    assert_string_equal(f->r.msg, "memory limit exceeded");
    teardown(f);

    /* drain: no restarts, a clean exit does not finish the task */
    f = setup("{\"processes\": [{\"name\": \"d\", \"cmdline\": \"x\", \"daemon\": true,"
              " \"min_duration\": 0}, {\"name\": \"e\", \"cmdline\": \"x\"}]}");
    bo_runner_start(&f->r, f->now);
    take(f);
    fork_all(f);
    bo_runner_drain(&f->r, f->now);
    take(f);
    assert_int_equal(f->nacts, 0);
    exit_proc(f, "d", 0, 0);
    assert_int_equal(pstate(f, "d"), BO_PROC_SUCCESS);
    exit_proc(f, "e", 1, 0);
    assert_int_equal(pstate(f, "e"), BO_PROC_KILLED);
    assert_int_equal(f->r.stage, BO_STAGE_ACTIVE);
    assert_false(done(f));
    bo_runner_kill(&f->r, BO_END_KILLED, "killed by request", f->now);
    take(f);
    assert_true(done(f));
    assert_int_equal(count_kind(f, BO_RUNNER_TERM_ALL), 0);
    assert_int_equal(f->r.end, BO_END_KILLED);
    teardown(f);
}

static void test_spawn_failure(void **state)
{
    (void)state;
    struct fx *f = setup("{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\","
                         " \"max_failures\": 2, \"min_duration\": 0}]}");
    bo_runner_start(&f->r, f->now);
    take(f);
    bo_runner_spawn_failed(&f->r, 0, "spawn: permission denied", f->now);
    take(f);
    assert_int_equal(count_kind(f, BO_RUNNER_START), 0);
    assert_int_equal(f->r.wake_ms, f->now + 1000);
    f->now += 1000;
    bo_runner_tick(&f->r, f->now);
    take(f);
    assert_true(started(f, "a", 1));
    bo_runner_spawn_failed(&f->r, 0, "spawn: permission denied", f->now);
    take(f);
    assert_true(done(f));
    assert_string_equal(f->r.msg,
                        "process 'a' could not start: spawn: permission denied (run 2 of 2)");
    teardown(f);
}

static void test_only_ephemeral(void **state)
{
    (void)state;
    struct fx *f = setup("{\"processes\": [{\"name\": \"e\", \"cmdline\": \"x\","
                         " \"ephemeral\": true}]}");
    bo_runner_start(&f->r, f->now);
    take(f);
    /* nothing to complete: straight to DONE without starting it */
    assert_true(done(f));
    assert_int_equal(count_kind(f, BO_RUNNER_START), 0);
    assert_int_equal(count_kind(f, BO_RUNNER_STAGE), 3);
    teardown(f);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(bo_proc_state_name(BO_PROC_LOST), "LOST");
    assert_string_equal(bo_proc_state_name(99), "UNKNOWN");
    assert_string_equal(bo_task_stage_name(BO_STAGE_FINALIZING), "FINALIZING");
    assert_string_equal(bo_task_end_name(BO_END_KILLED), "KILLED");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_success),
        cmocka_unit_test(test_ordering_and_parallel),
        cmocka_unit_test(test_max_concurrency),
        cmocka_unit_test(test_retries_then_fail),
        cmocka_unit_test(test_signal_death_and_task_max_failures),
        cmocka_unit_test(test_daemon_ephemeral_final),
        cmocka_unit_test(test_finalization_deadline),
        cmocka_unit_test(test_final_failure_fails_task),
        cmocka_unit_test(test_kill),
        cmocka_unit_test(test_kill_idle_and_drain),
        cmocka_unit_test(test_spawn_failure),
        cmocka_unit_test(test_only_ephemeral),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
