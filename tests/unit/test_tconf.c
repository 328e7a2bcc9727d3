/*
 * test_tconf.c - task.json and Thermos config: both data shapes, defaults,
 * ports and aliases, validation messages, allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/mem.h"
#include "executor/tconf.h"

/* A task.json around `data` (a JSON object, embedded as a string). */
static char *task_json(const char *data, const char *extra)
{
    json_t *d = json_string(data);
    char *ds = json_dumps(d, JSON_ENCODE_ANY);
    json_decref(d);
    size_t n = strlen(ds) + (extra ? strlen(extra) : 0) + 1024;
    char *s = malloc(n);
    snprintf(s, n,
             "{\"task\": {\"assigned_task\": {\"task_id\": \"t-1\", \"slave_host\": \"node-1\", "
             "\"instance_id\": 2, \"assigned_ports\": {\"http\": 31001, \"health\": 31002}, "
             "\"task\": {\"job\": {\"role\": \"www\"}, \"executor_config\": {\"name\": "
             "\"borealis\", \"data\": %s}}}, \"status\": \"ASSIGNED\"}, "
             "\"sandbox\": \"/tmp/sb\"%s%s}",
             ds, extra ? ", " : "", extra ? extra : "");
    free(ds);
    return s;
}

static int parse(struct bo_tconf *c, const char *data, const char *extra, struct bo_err *err)
{
    char *s = task_json(data, extra);
    int rv = bo_tconf_parse(c, s, strlen(s), err);
    free(s);
    return rv;
}

static void parse_ok(struct bo_tconf *c, const char *data, const char *extra)
{
    struct bo_err err = BO_ERR_INIT;
    int rv = parse(c, data, extra, &err);
    if (rv != BO_OK) {
        print_message("parse: %s\n", bo_err_msg(&err, rv));
    }
    assert_int_equal(rv, BO_OK);
}

static void parse_fails(const char *data, const char *extra, const char *msg)
{
    struct bo_tconf c;
    struct bo_err err = BO_ERR_INIT;
    int rv = parse(&c, data, extra, &err);
    assert_int_equal(rv, BO_EINVAL);
    if (strstr(bo_err_msg(&err, rv), msg) == NULL) {
        print_message("got '%s', want '%s'\n", bo_err_msg(&err, rv), msg);
        fail();
    }
    assert_int_equal(c.nprocs, 0);
    bo_tconf_release(&c);
}

static void test_short_shape_defaults(void **state)
{
    (void)state;
    struct bo_tconf c;
    parse_ok(&c, "{\"processes\": [{\"name\": \"hello\", \"cmdline\": \"echo hi\"}]}", NULL);
    assert_string_equal(c.task_id, "t-1");
    assert_string_equal(c.hostname, "node-1");
    assert_string_equal(c.sandbox, "/tmp/sb");
    assert_string_equal(c.user, "");
    assert_false(c.has_ids);
    assert_int_equal(c.instance, 2);
    assert_int_equal(c.nprocs, 1);
    const struct bo_tconf_proc *p = &c.procs[0];
    assert_string_equal(p->name, "hello");
    assert_string_equal(p->cmdline, "echo hi");
    assert_int_equal(p->max_failures, 1);
    assert_false(p->daemon || p->ephemeral || p->final);
    assert_int_equal(p->min_duration_ms, 5000);
    assert_int_equal(p->log_dest, BO_TCONF_LOG_FILE);
    assert_false(p->log_rotate);
    assert_int_equal(p->log_size, 100 * 1024 * 1024);
    assert_int_equal(p->log_backups, 5);
    assert_string_equal(c.task_name, "hello");
    assert_int_equal(c.max_failures, 1);
    assert_int_equal(c.max_concurrency, 0);
    assert_int_equal(c.finalization_wait_ms, 30000);
    /* a 'health' port exists: HTTP health checks with Aurora's defaults */
    assert_int_equal(c.health.kind, BO_TCONF_HEALTH_HTTP);
    assert_int_equal(c.health.port, 31002);
    assert_string_equal(c.health.endpoint, "/health");
    assert_string_equal(c.health.expected_response, "ok");
    assert_int_equal(c.health.expected_response_code, 0);
    assert_int_equal(c.health.initial_interval_ms, 15000);
    assert_int_equal(c.health.interval_ms, 10000);
    assert_int_equal(c.health.max_consecutive_failures, 0);
    assert_int_equal(c.health.min_consecutive_successes, 1);
    assert_int_equal(c.health.timeout_ms, 1000);
    assert_int_equal(c.lifecycle.port, 31002);
    assert_string_equal(c.lifecycle.graceful_endpoint, "/quitquitquit");
    assert_string_equal(c.lifecycle.shutdown_endpoint, "/abortabortabort");
    assert_int_equal(c.lifecycle.graceful_wait_ms, 5000);
    assert_int_equal(c.lifecycle.shutdown_wait_ms, 5000);
    assert_int_equal(c.disk_check_interval_ms, 10000);
    assert_int_equal(c.stop_timeout_ms, 120000);
    assert_false(c.mem_sampling);
    assert_int_equal(bo_tconf_port(&c, "http"), 31001);
    assert_int_equal(bo_tconf_port(&c, "nope"), 0);
    bo_tconf_release(&c);
}

static const char aurora_data[] =
    "{\"name\": \"hello\", \"role\": \"www\", \"environment\": \"prod\", \"cluster\": \"c\","
    " \"service\": true,"
    " \"task\": {\"name\": \"hello_task\", \"max_failures\": 2, \"max_concurrency\": 3,"
    "   \"finalization_wait\": 7, \"user\": \"www\","
    "   \"resources\": {\"cpu\": 0.5, \"ram\": 67108864, \"disk\": 67108864},"
    "   \"processes\": ["
    "     {\"name\": \"fetch\", \"cmdline\": \"true\", \"max_failures\": 3, \"min_duration\": 1,"
    "      \"daemon\": false, \"ephemeral\": false, \"final\": false,"
    "      \"logger\": {\"destination\": \"both\", \"mode\": \"rotate\","
    "                   \"rotate\": {\"log_size\": 1024, \"backups\": 2}}},"
    "     {\"name\": \"web\", \"cmdline\": \"serve {{thermos.ports[http]}}\", \"daemon\": true},"
    "     {\"name\": \"side\", \"cmdline\": \"sleep 100\", \"ephemeral\": true},"
    "     {\"name\": \"cleanup\", \"cmdline\": \"rm -f x\", \"final\": true},"
    "     {\"name\": \"report\", \"cmdline\": \"echo done\", \"final\": true}],"
    "   \"constraints\": [{\"order\": [\"fetch\", \"web\"]}, {\"order\": [\"cleanup\", "
    "\"report\"]}]},"
    " \"health_check_config\": {\"health_checker\": {\"http\": {\"endpoint\": \"/ready\","
    "   \"expected_response\": \"\", \"expected_response_code\": 200}},"
    "   \"initial_interval_secs\": 1.5, \"interval_secs\": 0.5, \"max_consecutive_failures\": 2,"
    "   \"min_consecutive_successes\": 2, \"timeout_secs\": 2},"
    " \"lifecycle\": {\"http\": {\"port\": \"admin\", \"graceful_shutdown_endpoint\": \"/q\","
    "   \"shutdown_endpoint\": \"/a\", \"graceful_shutdown_wait_secs\": 1, \"shutdown_wait_secs\": "
    "2}},"
    " \"announce\": {\"primary_port\": \"http\", \"portmap\": {\"aurora\": \"http\","
    "   \"admin\": \"aurora\", \"static\": 8080, \"str\": \"9090\", \"loose\": \"nothing\"}}}";

static void test_aurora_shape(void **state)
{
    (void)state;
    struct bo_tconf c;
    parse_ok(&c, aurora_data,
             "\"user\": \"www\", \"uid\": 1001, \"gid\": 1002, \"hostname\": \"h2\","
             " \"limits\": {\"ram_bytes\": 1000, \"disk_bytes\": 2000, \"cpus\": 0.5},"
             " \"cgroups\": {\"memory\": \"/m\", \"cpu\": \"\"}, \"disk_check_interval_ms\": 50,"
             " \"stop_timeout_ms\": 900, \"unknown_field\": [1,2]");
    assert_string_equal(c.user, "www");
    assert_true(c.has_ids);
    assert_int_equal(c.uid, 1001);
    assert_int_equal(c.gid, 1002);
    assert_string_equal(c.hostname, "h2");
    assert_int_equal(c.ram_bytes, 1000);
    assert_int_equal(c.disk_bytes, 2000);
    assert_string_equal(c.cg_memory, "/m");
    assert_null(c.cg_cpu);
    assert_null(c.cg_unified);
    assert_false(c.mem_sampling);
    assert_int_equal(c.disk_check_interval_ms, 50);
    assert_int_equal(c.stop_timeout_ms, 900);
    assert_string_equal(c.task_name, "hello_task");
    assert_int_equal(c.max_failures, 2);
    assert_int_equal(c.max_concurrency, 3);
    assert_int_equal(c.finalization_wait_ms, 7000);
    assert_int_equal(c.nprocs, 5);
    const struct bo_tconf_proc *f = &c.procs[0];
    assert_int_equal(f->max_failures, 3);
    assert_int_equal(f->min_duration_ms, 1000);
    assert_int_equal(f->log_dest, BO_TCONF_LOG_BOTH);
    assert_true(f->log_rotate);
    assert_int_equal(f->log_size, 1024);
    assert_int_equal(f->log_backups, 2);
    assert_true(c.procs[1].daemon);
    assert_true(c.procs[2].ephemeral);
    assert_true(c.procs[3].final);
    /* web after fetch; report after cleanup */
    assert_int_equal(c.procs[1].nafter, 1);
    assert_int_equal(c.procs[1].after[0], 0);
    assert_int_equal(c.procs[4].nafter, 1);
    assert_int_equal(c.procs[4].after[0], 3);
    assert_int_equal(c.procs[0].nafter, 0);
    /* ports: assigned, then aliases through other aliases, static ports */
    assert_int_equal(bo_tconf_port(&c, "aurora"), 31001);
    assert_int_equal(bo_tconf_port(&c, "admin"), 31001);
    assert_int_equal(bo_tconf_port(&c, "static"), 8080);
    assert_int_equal(bo_tconf_port(&c, "str"), 9090);
    assert_int_equal(bo_tconf_port(&c, "loose"), 0);
    assert_int_equal(c.health.kind, BO_TCONF_HEALTH_HTTP);
    assert_string_equal(c.health.endpoint, "/ready");
    assert_string_equal(c.health.expected_response, "");
    assert_int_equal(c.health.expected_response_code, 200);
    assert_int_equal(c.health.initial_interval_ms, 1500);
    assert_int_equal(c.health.interval_ms, 500);
    assert_int_equal(c.health.max_consecutive_failures, 2);
    assert_int_equal(c.health.min_consecutive_successes, 2);
    assert_int_equal(c.health.timeout_ms, 2000);
    assert_int_equal(c.lifecycle.port, 31001); /* 'admin' -> 'aurora' -> 'http' */
    assert_string_equal(c.lifecycle.graceful_endpoint, "/q");
    assert_int_equal(c.lifecycle.shutdown_wait_ms, 2000);
    bo_tconf_release(&c);
}

static void test_no_health_port_shell_and_disabled_lifecycle(void **state)
{
    (void)state;
    struct bo_tconf c;
    char *s = task_json("{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\"}],"
                        " \"lifecycle\": {}}",
                        NULL);
    /* drop the assigned ports */
    char *p = strstr(s, "\"assigned_ports\"");
    memcpy(p, "\"assigned_portz\"", 16);
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_tconf_parse(&c, s, strlen(s), &err), BO_OK);
    free(s);
    assert_int_equal(c.health.kind, BO_TCONF_HEALTH_NONE);
    assert_int_equal(c.lifecycle.port, 0);
    assert_int_equal(c.nports, 0);
    bo_tconf_release(&c);

    parse_ok(&c,
             "{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\"}], \"health_check_config\":"
             " {\"health_checker\": {\"shell\": {\"shell_command\": \"test -f ok\"}}},"
             " \"lifecycle\": {\"http\": null}}",
             "\"limits\": {\"ram_bytes\": 64}, \"memory_enforcement\": \"sampling\"");
    assert_int_equal(c.health.kind, BO_TCONF_HEALTH_SHELL);
    assert_string_equal(c.health.shell_command, "test -f ok");
    assert_int_equal(c.lifecycle.port, 0);
    assert_true(c.mem_sampling);
    bo_tconf_release(&c);

    /* no cgroups and a RAM limit: sampling by default */
    parse_ok(&c, "{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\"}]}",
             "\"limits\": {\"ram_bytes\": 64}, \"cgroups\": {\"memory\": \"\"}");
    assert_true(c.mem_sampling);
    bo_tconf_release(&c);
}

static void test_invalid(void **state)
{
    (void)state;
    parse_fails("{\"processes\": []}", NULL, "task has no processes");
    parse_fails("{\"name\": \"x\"}", NULL, "task has no processes");
    parse_fails("not json", NULL, "executor data is not JSON");
    parse_fails("{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\"},"
                " {\"name\": \"a\", \"cmdline\": \"y\"}]}",
                NULL, "duplicate process name 'a'");
    parse_fails("{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\"}],"
                " \"constraints\": [{\"order\": [\"a\", \"b\"]}]}",
                NULL, "order constraint names unknown process 'b'");
    parse_fails(
        "{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\"},"
        " {\"name\": \"b\", \"cmdline\": \"y\"}, {\"name\": \"c\", \"cmdline\": \"z\"}],"
        " \"constraints\": [{\"order\": [\"a\", \"b\", \"c\"]}, {\"order\": [\"c\", \"a\"]}]}",
        NULL, "order constraints have a cycle through 'a'");
    parse_fails("{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\"},"
                " {\"name\": \"f\", \"cmdline\": \"y\", \"final\": true}],"
                " \"constraints\": [{\"order\": [\"a\", \"f\"]}]}",
                NULL, "final process 'f' is ordered against non-final process 'a'");
    parse_fails("{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\", \"max_failures\": \"3\"}]}",
                NULL, "process 'a': 'max_failures' must be an integer");
    parse_fails("{\"processes\": [{\"name\": \"a\", \"cmdline\": 3}]}", NULL,
                "process 'a': 'cmdline' must be a string");
    parse_fails("{\"processes\": [{\"name\": \"a\"}]}", NULL, "process 'a': no 'cmdline'");
    parse_fails("{\"processes\": [{\"cmdline\": \"x\"}]}", NULL, "process 0 has no name");
    parse_fails("{\"processes\": [{\"name\": \"a/b\", \"cmdline\": \"x\"}]}", NULL, "'/'");
    parse_fails("{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\", \"daemon\": 1}]}", NULL,
                "'daemon' must be true or false");
    parse_fails("{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\","
                " \"logger\": {\"destination\": \"syslog\"}}]}",
                NULL, "logger destination 'syslog'");
    parse_fails("{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\"}],"
                " \"health_check_config\": {\"interval_secs\": -1}}",
                NULL, "'interval_secs' must be a non-negative number");
    parse_fails("{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\"}],"
                " \"announce\": {\"portmap\": {\"p\": \"q\", \"q\": \"p\"}}}",
                NULL, "announce portmap: cycle through");
    parse_fails("{\"processes\": [{\"name\": \"a\", \"cmdline\": \"x\"}]}",
                "\"memory_enforcement\": \"magic\"", "'memory_enforcement'");

    struct bo_tconf c;
    struct bo_err err = BO_ERR_INIT;
    const char *bad = "{\"task\": {}, \"sandbox\": \"/x\"}";
    assert_int_equal(bo_tconf_parse(&c, bad, strlen(bad), &err), BO_EINVAL);
    assert_string_equal(bo_err_msg(&err, BO_EINVAL), "task has no executor_config data");
    const char *nosb = "{\"task\": {\"assigned_task\": {\"task\": {\"executor_config\":"
                       " {\"data\": \"{}\"}}}}}";
    assert_int_equal(bo_tconf_parse(&c, nosb, strlen(nosb), &err), BO_EINVAL);
    assert_string_equal(bo_err_msg(&err, BO_EINVAL), "task.json has no absolute 'sandbox' path");
}

static void test_oom(void **state)
{
    (void)state;
    char *s = task_json(aurora_data, NULL);
    for (long n = 0; n < 400; n++) {
        struct bo_tconf c;
        struct bo_err err = BO_ERR_INIT;
        bo_mem_fail_after(n);
        int rv = bo_tconf_parse(&c, s, strlen(s), &err);
        bo_mem_fail_after(-1);
        if (rv == BO_OK) {
            assert_int_equal(c.nprocs, 5);
            bo_tconf_release(&c);
            break;
        }
        assert_int_equal(rv, BO_ENOMEM);
    }
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_shape_defaults),
        cmocka_unit_test(test_aurora_shape),
        cmocka_unit_test(test_no_health_port_shell_and_disabled_lifecycle),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
