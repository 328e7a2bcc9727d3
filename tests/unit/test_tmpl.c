/*
 * test_tmpl.c - runtime template expansion: every reference, whitespace,
 * quoting, literal braces, unknown references.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/err.h"
#include "common/mem.h"
#include "executor/tmpl.h"

static const struct bo_tconf_port ports[] = {{"http", 31001}, {"health", 31002}, {"aurora", 31001}};

static struct bo_tmpl_ctx ctx(void)
{
    struct bo_tmpl_ctx c = {.task_id = "www-prod-hello-0-abc",
                            .hostname = "node-1",
                            .user = "www",
                            .instance = 3,
                            .ports = ports,
                            .nports = 3};
    return c;
}

static void expect(const char *in, const char *want)
{
    struct bo_tmpl_ctx c = ctx();
    struct bo_err err = BO_ERR_INIT;
    char *out = NULL;
    int rv = bo_tmpl_expand(&c, in, &out, &err);
    if (rv != BO_OK) {
        print_message("expand '%s': %s\n", in, bo_err_msg(&err, rv));
    }
    assert_int_equal(rv, BO_OK);
    assert_string_equal(out, want);
    bo_free(out);
}

static void expect_error(const char *in, const char *msg)
{
    struct bo_tmpl_ctx c = ctx();
    struct bo_err err = BO_ERR_INIT;
    char *out = NULL;
    int rv = bo_tmpl_expand(&c, in, &out, &err);
    assert_int_equal(rv, BO_ENOTFOUND);
    assert_null(out);
    assert_string_equal(bo_err_msg(&err, rv), msg);
}

static void test_plain(void **state)
{
    (void)state;
    expect("", "");
    expect("echo hi", "echo hi");
    expect("echo {not a ref} }} {", "echo {not a ref} }} {");
    expect("unclosed {{thermos.ports[http]", "unclosed {{thermos.ports[http]");
}

static void test_refs(void **state)
{
    (void)state;
    expect("python3 -m http.server {{thermos.ports[http]}}", "python3 -m http.server 31001");
    expect("{{thermos.ports[http]}}{{thermos.ports[health]}}", "3100131002");
    expect("--id={{thermos.task_id}} --user={{thermos.user}}",
           "--id=www-prod-hello-0-abc --user=www");
    expect("{{mesos.instance}}@{{mesos.hostname}}", "3@node-1");
    expect("alias {{thermos.ports[aurora]}}", "alias 31001");
}

static void test_whitespace_and_quotes(void **state)
{
    (void)state;
    expect("{{ thermos.ports[http] }}", "31001");
    expect("{{thermos.ports[ http ]}}", "31001");
    expect("{{\tmesos.instance\n}}", "3");
    expect("{{thermos.ports['health']}}", "31002");
    expect("{{thermos.ports[\"health\"]}}", "31002");
}

static void test_unknown(void **state)
{
    (void)state;
    expect_error("echo {{thermos.ports[admin]}}", "unknown reference '{{thermos.ports[admin]}}'");
    expect_error("{{foo}}", "unknown reference '{{foo}}'");
    expect_error("ok {{mesos.instance}} then {{ bad }}", "unknown reference '{{ bad }}'");
    expect_error("{{thermos.ports[]}}", "unknown reference '{{thermos.ports[]}}'");
    expect_error("{{}}", "unknown reference '{{}}'");
}

static void test_no_rescan(void **state)
{
    (void)state;
    /* a value is not scanned again */
    struct bo_tconf_port p[] = {{"x", 1}};
    struct bo_tmpl_ctx c = {.task_id = "{{thermos.user}}", .user = "u", .ports = p, .nports = 1};
    char *out = NULL;
    assert_int_equal(bo_tmpl_expand(&c, "{{thermos.task_id}}", &out, NULL), BO_OK);
    assert_string_equal(out, "{{thermos.user}}");
    bo_free(out);
}

static void test_oom(void **state)
{
    (void)state;
    struct bo_tmpl_ctx c = ctx();
    for (long n = 0; n < 10; n++) {
        bo_mem_fail_after(n);
        char *out = NULL;
        struct bo_err err = BO_ERR_INIT;
        int rv = bo_tmpl_expand(&c, "a {{thermos.ports[http]}} b {{mesos.hostname}} c", &out, &err);
        bo_mem_fail_after(-1);
        if (rv == BO_OK) {
            assert_string_equal(out, "a 31001 b node-1 c");
            bo_free(out);
        } else {
            assert_int_equal(rv, BO_ENOMEM);
            assert_null(out);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_refs),
        cmocka_unit_test(test_whitespace_and_quotes),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_no_rescan),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
