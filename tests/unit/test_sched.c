/*
 * test_sched.c - the scheduler in one process on a real store: the real
 * storage (a single raft voter in a temporary directory) and the scheduler
 * driven through its API with in-process agents, the loop stepped until a
 * condition holds (bounded in time). No HTTP: that is the e2e tier.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "scheduler/sched.h"
#include "storage/storage.h"
#include "testnet.h"

struct fixture {
    uv_loop_t loop;
    char dir[64];
    struct bo_storage *storage;
    struct bo_sched *sched;
    int replies;
    int last_status;
    char last_msg[512];
    json_t *last_result;
    json_t *commands; /* the last poll's commands */
    bool polled;
};

static void reply(void *data, int status, const char *message, json_t *result)
{
    struct fixture *f = data;
    f->replies++;
    f->last_status = status;
    snprintf(f->last_msg, sizeof(f->last_msg), "%s", message != NULL ? message : "");
    json_decref(f->last_result);
    f->last_result = result != NULL ? json_incref(result) : NULL;
}

static void poll_reply(void *data, int status, const char *message, json_t *result)
{
    (void)message;
    struct fixture *f = data;
    f->polled = true;
    json_decref(f->commands);
    f->commands = status == BO_OK ? json_incref(json_object_get(result, "commands")) : NULL;
}

/* Run the loop until `cond` holds, at most ~5 s. */
#define STEP_UNTIL(f, cond)                                                                        \
    do {                                                                                           \
        for (int i_ = 0; i_ < 5000 && !(cond); i_++) {                                             \
            uv_run(&(f)->loop, UV_RUN_NOWAIT);                                                     \
            usleep(1000);                                                                          \
        }                                                                                          \
        assert_true(cond);                                                                         \
    } while (0)

static void closed(struct bo_storage *s)
{
    (void)s;
}

static int setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/bo-test-sched-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        return -1;
    }
    uv_loop_init(&f->loop);
    struct bo_storage_config sc;
    bo_storage_config_init(&sc);
    sc.data_dir = f->dir;
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", test_free_port());
    sc.address = addr;
    struct bo_err err = BO_ERR_INIT;
    if (bo_storage_open(&f->loop, &sc, &f->storage, &err) != BO_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    struct bo_sched_config cfg;
    bo_sched_config_init(&cfg);
    cfg.agent_poll_hold_ms = 50;
    if (bo_sched_create(&f->loop, f->storage, NULL, &cfg, &f->sched, &err) != BO_OK) {
        return -1;
    }
    for (int i = 0; i < 2000 && bo_storage_role(f->storage) != BO_ROLE_LEADER; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    bo_sched_set_leader(f->sched, true);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    bo_sched_close(f->sched);
    bo_storage_close(f->storage, closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    bo_sched_free(f->sched);
    bo_storage_free(f->storage);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    json_decref(f->last_result);
    json_decref(f->commands);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static json_t *job(const char *name, int instances)
{
    return json_pack("{s:{s:s, s:s, s:s}, s:i, s:{s:b, s:[{s:f}, {s:i}, {s:i}]}}", "key", "role",
                     "www", "environment", "prod", "name", name, "instance_count", instances,
                     "task_config", "is_service", 1, "resources", "num_cpus", 1.0, "ram_mb", 64,
                     "disk_mb", 64);
}

static int count(struct fixture *f, const char *name, const char *status)
{
    struct bo_err err = BO_ERR_INIT;
    json_t *out = NULL;
    json_t *q = json_pack("{s:s, s:[s], s:b}", "job_name", name, "statuses", status, "configs", 0);
    assert_int_equal(bo_sched_read(f->sched, "tasks", q, &out, &err), BO_OK);
    json_decref(q);
    int n = (int)json_array_size(json_object_get(out, "tasks"));
    json_decref(out);
    return n;
}

static const char *register_agent(struct fixture *f, const char *host, double cpus)
{
    struct bo_err err = BO_ERR_INIT;
    json_t *a = json_pack("{s:s, s:{s:f, s:i, s:i, s:[[i, i]]}}", "host", host, "resources", "cpus",
                          cpus, "ram_mb", 4096, "disk_mb", 4096, "ports", 31000, 31100);
    int before = f->replies;
    assert_int_equal(bo_sched_agent_register(f->sched, a, reply, f, &err), BO_OK);
    assert_int_equal(f->replies, before + 1);
    assert_int_equal(f->last_status, BO_OK);
    return json_string_value(json_object_get(f->last_result, "agent_id"));
}

/* Poll once; answer every launch with RUNNING. Returns the launches. */
static int poll_and_run(struct fixture *f, const char *agent, json_int_t *ack)
{
    struct bo_err err = BO_ERR_INIT;
    f->polled = false;
    json_t *p = json_pack("{s:s, s:I}", "agent_id", agent, "ack", *ack);
    assert_int_equal(bo_sched_agent_poll(f->sched, p, poll_reply, f, &err), BO_OK);
    STEP_UNTIL(f, f->polled);
    int launches = 0;
    json_t *ups = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(f->commands, i, c)
    {
        json_int_t seq = json_integer_value(json_object_get(c, "seq"));
        if (seq > *ack) {
            *ack = seq;
        }
        if (strcmp(json_string_value(json_object_get(c, "type")), "launch") == 0) {
            launches++;
            json_array_append_new(ups,
                                  json_pack("{s:O, s:s}", "task_id", json_object_get(c, "task_id"),
                                            "status", "RUNNING"));
        }
    }
    if (launches > 0) {
        int before = f->replies;
        json_t *st = json_pack("{s:s, s:o}", "agent_id", agent, "updates", ups);
        assert_int_equal(bo_sched_submit(f->sched, BO_SCHED_AGENT_STATUS, st, reply, f, &err),
                         BO_OK);
        STEP_UNTIL(f, f->replies > before);
        assert_int_equal(f->last_status, BO_OK);
    } else {
        json_decref(ups);
    }
    return launches;
}

static void test_create_place_run(void **state)
{
    struct fixture *f = *state;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_sched_submit(f->sched, BO_SCHED_CREATE_JOB, job("web", 3), reply, f, &err),
                     BO_OK);
    STEP_UNTIL(f, f->replies == 1);
    assert_int_equal(f->last_status, BO_OK);
    assert_int_equal(count(f, "web", "PENDING"), 3);
    char agent[64];
    snprintf(agent, sizeof(agent), "%s", register_agent(f, "host-a", 2.0));
    json_int_t ack = 0;
    int launched = 0;
    for (int i = 0; i < 50 && launched < 2; i++) {
        launched += poll_and_run(f, agent, &ack);
    }
    /* two cpus, one per task: two run, one stays pending */
    assert_int_equal(launched, 2);
    STEP_UNTIL(f, count(f, "web", "RUNNING") == 2);
    assert_int_equal(count(f, "web", "PENDING"), 1);
    struct bo_sched_stats st;
    bo_sched_get_stats(f->sched, &st);
    assert_int_equal(st.tasks_placed, 2);
    assert_true(st.schedule_no_match >= 1);
}

/* The reads written as text without a tree are the tree's dump, byte for
 * byte: a service job, a cron job (schedule and next run), and their tasks. */
static void check_text_is_tree(struct fixture *f, const char *what, json_t *args)
{
    struct bo_err err = BO_ERR_INIT;
    json_t *tree = NULL;
    assert_int_equal(bo_sched_read(f->sched, what, args, &tree, &err), BO_OK);
    char *want = json_dumps(tree, JSON_COMPACT);
    struct bo_buf b = BO_BUF_INIT;
    assert_int_equal(bo_buf_append(&b, "x", 1), BO_OK);
    assert_int_equal(bo_sched_read_text(f->sched, what, args, &b, &err), BO_OK);
    assert_int_equal(b.len, 1 + strlen(want));
    assert_memory_equal(b.data + 1, want, b.len - 1);
    free(want);
    bo_buf_release(&b);
    json_decref(tree);
    json_decref(args);
}

static void test_text_reads_are_tree_dumps(void **state)
{
    struct fixture *f = *state;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_sched_submit(f->sched, BO_SCHED_CREATE_JOB, job("svc", 2), reply, f, &err),
                     BO_OK);
    STEP_UNTIL(f, f->replies == 1);
    json_t *cron = job("nightly", 1);
    json_object_set_new(cron, "cron_schedule", json_string("0 3 * * *"));
    json_object_set_new(json_object_get(cron, "task_config"), "is_service", json_false());
    assert_int_equal(bo_sched_submit(f->sched, BO_SCHED_SCHEDULE_CRON, cron, reply, f, &err),
                     BO_OK);
    STEP_UNTIL(f, f->replies == 2);
    assert_int_equal(f->last_status, BO_OK);
    char agent[64];
    snprintf(agent, sizeof(agent), "%s", register_agent(f, "host-t", 4.0));
    json_int_t ack = 0;
    for (int i = 0; i < 50 && count(f, "svc", "RUNNING") < 2; i++) {
        poll_and_run(f, agent, &ack);
    }
    check_text_is_tree(f, "job_summaries", json_pack("{s:s}", "role", "www"));
    check_text_is_tree(f, "job_summaries", json_pack("{s:s}", "role", "nobody"));
    check_text_is_tree(f, "job_summaries", json_object());
    check_text_is_tree(f, "tasks", json_pack("{s:s, s:b}", "job_name", "svc", "configs", 0));
    check_text_is_tree(f, "tasks", json_pack("{s:s}", "job_name", "svc"));
    /* the texts the store keeps follow a change: kill, and read again */
    int before = f->replies;
    assert_int_equal(bo_sched_submit(f->sched, BO_SCHED_KILL,
                                     json_pack("{s:{s:s, s:s, s:s}}", "key", "role", "www",
                                               "environment", "prod", "name", "svc"),
                                     reply, f, &err),
                     BO_OK);
    STEP_UNTIL(f, f->replies > before);
    assert_int_equal(f->last_status, BO_OK);
    assert_int_equal(count(f, "svc", "KILLING"), 2);
    check_text_is_tree(f, "tasks", json_pack("{s:s, s:b}", "job_name", "svc", "configs", 0));

    json_t *tree = NULL, *all = json_object();
    assert_int_equal(bo_sched_read(f->sched, "job_summaries", all, &tree, &err), BO_OK);
    json_decref(all);
    json_t *jobs = json_object_get(tree, "jobs");
    assert_int_equal(json_array_size(jobs), 2);
    json_t *n = json_array_get(jobs, 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(n, "key"), "name")),
                        "nightly");
    assert_true(json_is_true(json_object_get(n, "is_cron")));
    assert_string_equal(json_string_value(json_object_get(n, "cron_schedule")), "0 3 * * *");
    assert_true(json_integer_value(json_object_get(n, "next_cron_run_ms")) > 0);
    json_t *svc = json_array_get(jobs, 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(svc, "stats"), "active")),
                     2);
    json_decref(tree);
}

/* Two kills of one job queued together: the second waits for the batch of
 * the first, sees its tasks KILLING, and changes nothing. */
static void test_conflicting_requests_serialize(void **state)
{
    struct fixture *f = *state;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_sched_submit(f->sched, BO_SCHED_CREATE_JOB, job("db", 2), reply, f, &err),
                     BO_OK);
    STEP_UNTIL(f, f->replies == 1);
    char agent[64];
    snprintf(agent, sizeof(agent), "%s", register_agent(f, "host-b", 4.0));
    json_int_t ack = 0;
    int launched = 0;
    for (int i = 0; i < 50 && launched < 2; i++) {
        launched += poll_and_run(f, agent, &ack);
    }
    STEP_UNTIL(f, count(f, "db", "RUNNING") == 2);
    int before = f->replies;
    for (int i = 0; i < 2; i++) {
        json_t *k = json_pack("{s:{s:s, s:s, s:s}}", "key", "role", "www", "environment", "prod",
                              "name", "db");
        assert_int_equal(bo_sched_submit(f->sched, BO_SCHED_KILL, k, reply, f, &err), BO_OK);
    }
    STEP_UNTIL(f, f->replies == before + 2);
    assert_int_equal(f->last_status, BO_OK);
    /* the second saw them KILLING already */
    assert_int_equal(json_integer_value(json_object_get(f->last_result, "killed")), 0);
    assert_int_equal(count(f, "db", "KILLING"), 2);
}

/* Requests queued when leadership goes are failed with NOT_LEADER, and no
 * request is accepted after. */
static void test_leadership_loss_fails_queued(void **state)
{
    struct fixture *f = *state;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_sched_submit(f->sched, BO_SCHED_CREATE_JOB, job("x", 1), reply, f, &err),
                     BO_OK);
    bo_sched_set_leader(f->sched, false); /* before the drain ran */
    assert_int_equal(f->replies, 1);
    assert_int_equal(f->last_status, BO_ENOTLEADER);
    assert_int_equal(bo_sched_submit(f->sched, BO_SCHED_CREATE_JOB, job("y", 1), reply, f, &err),
                     BO_ENOTLEADER);
    assert_int_equal(count(f, "x", "PENDING"), 0);
    bo_sched_set_leader(f->sched, true);
    assert_int_equal(bo_sched_submit(f->sched, BO_SCHED_CREATE_JOB, job("x", 1), reply, f, &err),
                     BO_OK);
    STEP_UNTIL(f, f->replies == 2);
    assert_int_equal(f->last_status, BO_OK);
    assert_int_equal(count(f, "x", "PENDING"), 1);
}

static void test_bad_requests_queue_nothing(void **state)
{
    struct fixture *f = *state;
    struct bo_err err = BO_ERR_INIT;
    json_t *bad = json_pack("{s:{s:s, s:s, s:s}, s:i}", "key", "role", "www", "environment", "nope",
                            "name", "a", "instance_count", 1);
    assert_int_equal(bo_sched_submit(f->sched, BO_SCHED_CREATE_JOB, bad, reply, f, &err),
                     BO_EINVAL);
    assert_non_null(strstr(err.msg, "environment"));
    json_t *st = json_pack("{s:s, s:[{s:s, s:s}]}", "agent_id", "a", "updates", "task_id", "t",
                           "status", "BOGUS");
    assert_int_equal(bo_sched_submit(f->sched, BO_SCHED_AGENT_STATUS, st, reply, f, &err),
                     BO_EINVAL);
    struct bo_sched_stats s;
    bo_sched_get_stats(f->sched, &s);
    assert_int_equal(s.queued, 0);
    assert_int_equal(f->replies, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_place_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_reads_are_tree_dumps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflicting_requests_serialize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leadership_loss_fails_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests_queue_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
