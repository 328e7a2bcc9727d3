/* Unit tests for src/common/metrics: registry, Prometheus text, /vars, /vars.json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/mem.h"
#include "common/metrics.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const double latency_bounds[] = {0.25, 0.5, 1};

static struct bo_metric *must_register(struct bo_metrics *reg, enum bo_metric_type type,
                                       const char *name, const char *help,
                                       const char *const *labels, size_t n_labels)
{
    struct bo_metric_desc d = {type, name, help, labels, n_labels, NULL, 0};
    if (type == BO_METRIC_HISTOGRAM) {
        d.bounds = latency_bounds;
        d.n_bounds = ARRAY_LEN(latency_bounds);
    }
    struct bo_metric *m = NULL;
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_metrics_register(reg, &d, &m, &err);
    if (rv != BO_OK) {
        fail_msg("register '%s': %s", name, bo_err_msg(&err, rv));
    }
    assert_non_null(m);
    return m;
}

/* Render into a NUL-terminated string (free with bo_free). */
static char *render(const struct bo_metrics *reg,
                    int (*fn)(const struct bo_metrics *, struct bo_buf *))
{
    struct bo_buf b = BO_BUF_INIT;
    assert_int_equal(fn(reg, &b), BO_OK);
    assert_int_equal(bo_buf_append_byte(&b, '\0'), BO_OK);
    return (char *)bo_buf_detach(&b, NULL);
}

static void assert_text(const char *got, const char *want)
{
    if (strcmp(got, want) != 0) {
        fail_msg("got:\n%s\nwant:\n%s", got, want);
    }
}

/* The small registry the exact-output tests share. */
static struct bo_metrics *small_registry(void)
{
    struct bo_metrics *reg = NULL;
    assert_int_equal(bo_metrics_new(&reg), BO_OK);
    static const char *const req_labels[] = {"method", "code"};
    static const char *const state_label[] = {"state"};
    static const char *const path_label[] = {"path"};

    struct bo_metric *req = must_register(reg, BO_METRIC_COUNTER, "http_requests_total",
                                          "HTTP requests.", req_labels, 2);
    struct bo_metric *temp =
        must_register(reg, BO_METRIC_GAUGE, "temperature_celsius", "Temperature.", NULL, 0);
    struct bo_metric *tasks =
        must_register(reg, BO_METRIC_GAUGE_INT, "tasks", NULL, state_label, 1);
    struct bo_metric *lat = must_register(reg, BO_METRIC_HISTOGRAM, "latency_seconds",
                                          "Latency\\ of\nrequests", NULL, 0);
    struct bo_metric *rpc =
        must_register(reg, BO_METRIC_HISTOGRAM, "rpc_seconds", "RPC time.", path_label, 1);

    struct bo_metrics_series *get200 = bo_metrics_with(req, "GET", "200");
    bo_metrics_inc(get200, 2);
    bo_metrics_inc(bo_metrics_with(req, "POST", "500"), 1);
    bo_metrics_inc(bo_metrics_with(req, "GET", "200"), 1); /* the same series */
    assert_ptr_equal(bo_metrics_with(req, "GET", "200"), get200);
    assert_int_equal(bo_metrics_counter_value(get200), 3);

    bo_metrics_set(bo_metrics_series(temp, NULL, 0), 20);
    bo_metrics_add(bo_metrics_series(temp, NULL, 0), 1.5);
    bo_metrics_set_int(bo_metrics_with(tasks, "RUNNING"), 7);
    bo_metrics_set_int(bo_metrics_with(tasks, "PENDING"), 1);
    bo_metrics_add_int(bo_metrics_with(tasks, "PENDING"), -3);
    assert_true(bo_metrics_gauge_value(bo_metrics_series(temp, NULL, 0)) == 21.5);
    assert_int_equal(bo_metrics_gauge_int_value(bo_metrics_with(tasks, "PENDING")), -2);

    struct bo_metrics_series *l = bo_metrics_series(lat, NULL, 0);
    static const double obs[] = {0.125, 0.25, 0.5, 2, 0.75};
    for (size_t i = 0; i < ARRAY_LEN(obs); i++) {
        bo_metrics_observe(l, obs[i]);
    }
    assert_int_equal(bo_metrics_histogram_count(l), 5);
    assert_true(bo_metrics_histogram_sum(l) == 3.625);
    bo_metrics_observe(bo_metrics_with(rpc, "/api"), 0.3);
    return reg;
}

static void prometheus_exposition_exact(void **state)
{
    (void)state;
    struct bo_metrics *reg = small_registry();
    char *text = render(reg, bo_metrics_render_prometheus);
    assert_text(text, "# HELP http_requests_total HTTP requests.\n"
                      "# TYPE http_requests_total counter\n"
                      "http_requests_total{method=\"GET\",code=\"200\"} 3\n"
                      "http_requests_total{method=\"POST\",code=\"500\"} 1\n"
                      "# HELP temperature_celsius Temperature.\n"
                      "# TYPE temperature_celsius gauge\n"
                      "temperature_celsius 21.5\n"
                      "# TYPE tasks gauge\n"
                      "tasks{state=\"RUNNING\"} 7\n"
                      "tasks{state=\"PENDING\"} -2\n"
                      "# HELP latency_seconds Latency\\\\ of\\nrequests\n"
                      "# TYPE latency_seconds histogram\n"
                      "latency_seconds_bucket{le=\"0.25\"} 2\n"
                      "latency_seconds_bucket{le=\"0.5\"} 3\n"
                      "latency_seconds_bucket{le=\"1\"} 4\n"
                      "latency_seconds_bucket{le=\"+Inf\"} 5\n"
                      "latency_seconds_sum 3.625\n"
                      "latency_seconds_count 5\n"
                      "# HELP rpc_seconds RPC time.\n"
                      "# TYPE rpc_seconds histogram\n"
                      "rpc_seconds_bucket{path=\"/api\",le=\"0.25\"} 0\n"
                      "rpc_seconds_bucket{path=\"/api\",le=\"0.5\"} 1\n"
                      "rpc_seconds_bucket{path=\"/api\",le=\"1\"} 1\n"
                      "rpc_seconds_bucket{path=\"/api\",le=\"+Inf\"} 1\n"
                      "rpc_seconds_sum{path=\"/api\"} 0.3\n"
                      "rpc_seconds_count{path=\"/api\"} 1\n");
    bo_free(text);

    /* Rendering appends to what the buffer holds. */
    struct bo_buf b = BO_BUF_INIT;
    assert_int_equal(bo_buf_append(&b, "x", 1), BO_OK);
    assert_int_equal(bo_metrics_render_prometheus(reg, &b), BO_OK);
    assert_memory_equal(b.data, "x# HELP http_requests_total", 27);
    bo_buf_release(&b);
    bo_metrics_free(reg);
}

static void vars_and_vars_json(void **state)
{
    (void)state;
    struct bo_metrics *reg = small_registry();
    char *text = render(reg, bo_metrics_render_vars);
    assert_text(text, "http_requests_total_GET_200 3\n"
                      "http_requests_total_POST_500 1\n"
                      "temperature_celsius 21.5\n"
                      "tasks_RUNNING 7\n"
                      "tasks_PENDING -2\n"
                      "latency_seconds_count 5\n"
                      "latency_seconds_sum 3.625\n"
                      "rpc_seconds__api_count 1\n"
                      "rpc_seconds__api_sum 0.3\n");
    bo_free(text);

    char *json = render(reg, bo_metrics_render_vars_json);
    assert_text(json, "{\"http_requests_total_GET_200\":3,\"http_requests_total_POST_500\":1,"
                      "\"temperature_celsius\":21.5,\"tasks_RUNNING\":7,\"tasks_PENDING\":-2,"
                      "\"latency_seconds_count\":5,\"latency_seconds_sum\":3.625,"
                      "\"rpc_seconds__api_count\":1,\"rpc_seconds__api_sum\":0.3}");
    /* And it parses back to the same numbers. */
    json_error_t jerr;
    json_t *v = json_loads(json, 0, &jerr);
    assert_non_null(v);
    assert_true(json_real_value(json_object_get(v, "rpc_seconds__api_sum")) == 0.3);
    assert_int_equal(json_integer_value(json_object_get(v, "tasks_PENDING")), -2);
    json_decref(v);
    bo_free(json);
    bo_metrics_free(reg);
}

static void label_values_are_escaped(void **state)
{
    (void)state;
    struct bo_metrics *reg = NULL;
    assert_int_equal(bo_metrics_new(&reg), BO_OK);
    static const char *const labels[] = {"job", "note"};
    struct bo_metric *m = must_register(reg, BO_METRIC_COUNTER, "jobs_total", "Jobs.", labels, 2);
    bo_metrics_inc(bo_metrics_with(m, "www-data/prod/hello", "say \"hi\"\\now\nthen"), 4);
    bo_metrics_inc(bo_metrics_with(m, "", ""), 1);

    char *text = render(reg, bo_metrics_render_prometheus);
    assert_text(text,
                "# HELP jobs_total Jobs.\n"
                "# TYPE jobs_total counter\n"
                "jobs_total{job=\"www-data/prod/hello\",note=\"say \\\"hi\\\"\\\\now\\nthen\"} 4\n"
                "jobs_total{job=\"\",note=\"\"} 1\n");
    bo_free(text);

    char *vars = render(reg, bo_metrics_render_vars);
    assert_text(vars, "jobs_total_www-data_prod_hello_say__hi__now_then 4\n"
                      "jobs_total__ 1\n");
    bo_free(vars);

    char *json = render(reg, bo_metrics_render_vars_json);
    assert_text(json,
                "{\"jobs_total_www-data_prod_hello_say__hi__now_then\":4,\"jobs_total__\":1}");
    bo_free(json);
    bo_metrics_free(reg);
}

static void numbers_and_histogram_edges(void **state)
{
    (void)state;
    struct bo_metrics *reg = NULL;
    assert_int_equal(bo_metrics_new(&reg), BO_OK);
    static const char *const k[] = {"k"};
    struct bo_metric *g = must_register(reg, BO_METRIC_GAUGE, "g", NULL, k, 1);
    static const struct {
        const char *label;
        double v;
    } cases[] = {{"a", 0.1}, {"b", 1e20}, {"c", 3}, {"d", -0.5}, {"e", 1.0 / 3}};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        bo_metrics_set(bo_metrics_with(g, cases[i].label), cases[i].v);
    }
    bo_metrics_set(bo_metrics_with(g, "nan"), NAN);
    bo_metrics_set(bo_metrics_with(g, "inf"), INFINITY);
    bo_metrics_set(bo_metrics_with(g, "ninf"), -INFINITY);
    struct bo_metric *h = must_register(reg, BO_METRIC_HISTOGRAM, "h", NULL, NULL, 0);
    struct bo_metrics_series *hs = bo_metrics_series(h, NULL, 0);
    bo_metrics_observe(hs, -1);  /* below every bound: first bucket */
    bo_metrics_observe(hs, 1);   /* on the last bound: that bucket */
    bo_metrics_observe(hs, 1.5); /* above: +Inf only */
    struct bo_metric *c = must_register(reg, BO_METRIC_COUNTER, "c_total", NULL, NULL, 0);
    bo_metrics_inc(bo_metrics_series(c, NULL, 0), UINT64_MAX);

    char *text = render(reg, bo_metrics_render_prometheus);
    assert_text(text, "# TYPE g gauge\n"
                      "g{k=\"a\"} 0.1\n"
                      "g{k=\"b\"} 1e+20\n"
                      "g{k=\"c\"} 3\n"
                      "g{k=\"d\"} -0.5\n"
                      "g{k=\"e\"} 0.3333333333333333\n"
                      "g{k=\"nan\"} NaN\n"
                      "g{k=\"inf\"} +Inf\n"
                      "g{k=\"ninf\"} -Inf\n"
                      "# TYPE h histogram\n"
                      "h_bucket{le=\"0.25\"} 1\n"
                      "h_bucket{le=\"0.5\"} 1\n"
                      "h_bucket{le=\"1\"} 2\n"
                      "h_bucket{le=\"+Inf\"} 3\n"
                      "h_sum 1.5\n"
                      "h_count 3\n"
                      "# TYPE c_total counter\n"
                      "c_total 18446744073709551615\n");
    bo_free(text);

    /* NaN goes to +Inf only, and makes the sum NaN. */
    bo_metrics_observe(hs, NAN);
    assert_int_equal(bo_metrics_histogram_count(hs), 4);
    assert_true(isnan(bo_metrics_histogram_sum(hs)));

    char *json = render(reg, bo_metrics_render_vars_json);
    assert_text(json, "{\"g_a\":0.1,\"g_b\":1e20,\"g_c\":3.0,\"g_d\":-0.5,"
                      "\"g_e\":0.3333333333333333,\"g_nan\":null,\"g_inf\":null,"
                      "\"g_ninf\":null,\"h_count\":4,\"h_sum\":null,"
                      "\"c_total\":9223372036854775807}");
    bo_free(json);
    bo_metrics_free(reg);

    /* One value that needs 17 digits raises the precision of the document. */
    assert_int_equal(bo_metrics_new(&reg), BO_OK);
    g = must_register(reg, BO_METRIC_GAUGE, "g", NULL, k, 1);
    bo_metrics_set(bo_metrics_with(g, "x"), 0.1);
    bo_metrics_set(bo_metrics_with(g, "y"), 0.1 + 0.2);
    text = render(reg, bo_metrics_render_vars);
    assert_text(text, "g_x 0.1\ng_y 0.30000000000000004\n");
    bo_free(text);
    json = render(reg, bo_metrics_render_vars_json);
    assert_text(json, "{\"g_x\":0.10000000000000001,\"g_y\":0.30000000000000004}");
    bo_free(json);
    bo_metrics_free(reg);
}

static void many_series(void **state)
{
    (void)state;
    struct bo_metrics *reg = NULL;
    assert_int_equal(bo_metrics_new(&reg), BO_OK);
    static const char *const labels[] = {"host", "slot"};
    struct bo_metric *m = must_register(reg, BO_METRIC_COUNTER, "slots_total", "Slots.", labels, 2);
    enum { HOSTS = 500, SLOTS = 20 };
    struct bo_metrics_series **handles = bo_calloc(HOSTS * SLOTS, sizeof(*handles));
    assert_non_null(handles);
    for (int h = 0; h < HOSTS; h++) {
        char host[32];
        snprintf(host, sizeof(host), "host-%04d", h);
        for (int s = 0; s < SLOTS; s++) {
            char slot[16];
            snprintf(slot, sizeof(slot), "%d", s);
            struct bo_metrics_series *se = bo_metrics_with(m, host, slot);
            assert_non_null(se);
            bo_metrics_inc(se, (uint64_t)(h * SLOTS + s));
            handles[h * SLOTS + s] = se;
        }
    }
    /* Lookups find the same series; all handles are distinct. */
    assert_ptr_equal(bo_metrics_with(m, "host-0123", "7"), handles[123 * SLOTS + 7]);
    assert_int_equal(bo_metrics_counter_value(handles[123 * SLOTS + 7]), 123 * SLOTS + 7);
    for (int i = 1; i < HOSTS * SLOTS; i++) {
        assert_true(handles[i] != handles[i - 1]);
    }
    /* A long label value takes the allocated key path. */
    char longv[1000];
    memset(longv, 'v', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    struct bo_metrics_series *lv = bo_metrics_with(m, longv, "0");
    assert_non_null(lv);
    assert_ptr_equal(bo_metrics_with(m, longv, "0"), lv);

    char *text = render(reg, bo_metrics_render_prometheus);
    size_t lines = 0;
    for (const char *p = text; *p != '\0'; p++) {
        lines += *p == '\n';
    }
    assert_int_equal(lines, 2 + HOSTS * SLOTS + 1);
    /* Creation order: the first and the last series. */
    assert_non_null(strstr(text, "# TYPE slots_total counter\n"
                                 "slots_total{host=\"host-0000\",slot=\"0\"} 0\n"
                                 "slots_total{host=\"host-0000\",slot=\"1\"} 1\n"));
    assert_non_null(strstr(text, "slots_total{host=\"host-0499\",slot=\"19\"} 9999\n"));
    bo_free(text);

    char *vars = render(reg, bo_metrics_render_vars);
    assert_non_null(strstr(vars, "\nslots_total_host-0123_7 2467\n"));
    bo_free(vars);
    bo_free(handles);
    bo_metrics_free(reg);
}

static void registration_errors(void **state)
{
    (void)state;
    struct bo_metrics *reg = NULL;
    assert_int_equal(bo_metrics_new(&reg), BO_OK);
    struct bo_metric *m = NULL;
    struct bo_err err = BO_ERR_INIT;
    static const char *const le[] = {"le"};
    static const char *const twice[] = {"a", "a"};
    static const char *const reserved[] = {"__x"};
    static const char *const dash[] = {"a-b"};
    static const double not_increasing[] = {1, 1};
    static const double infinite[] = {1, INFINITY};
    static const struct {
        struct bo_metric_desc d;
        const char *msg;
    } bad[] = {
        {{BO_METRIC_COUNTER, "1abc", NULL, NULL, 0, NULL, 0}, "metric '1abc': bad name"},
        {{BO_METRIC_COUNTER, "a-b", NULL, NULL, 0, NULL, 0}, "metric 'a-b': bad name"},
        {{BO_METRIC_COUNTER, "", NULL, NULL, 0, NULL, 0}, "metric '': bad name"},
        {{BO_METRIC_COUNTER, "x", NULL, twice, 2, NULL, 0}, "metric 'x': label 'a' given twice"},
        {{BO_METRIC_COUNTER, "x", NULL, reserved, 1, NULL, 0}, "metric 'x': bad label name '__x'"},
        {{BO_METRIC_COUNTER, "x", NULL, dash, 1, NULL, 0}, "metric 'x': bad label name 'a-b'"},
        {{BO_METRIC_HISTOGRAM, "h", NULL, le, 1, latency_bounds, 3},
         "metric 'h': label 'le' is reserved in histograms"},
        {{BO_METRIC_HISTOGRAM, "h", NULL, NULL, 0, NULL, 0}, "histogram 'h': no bucket bounds"},
        {{BO_METRIC_HISTOGRAM, "h", NULL, NULL, 0, not_increasing, 2},
         "histogram 'h': bounds are not increasing at 1"},
        {{BO_METRIC_HISTOGRAM, "h", NULL, NULL, 0, infinite, 2},
         "histogram 'h': bound 1 is not finite"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        assert_int_equal(bo_metrics_register(reg, &bad[i].d, &m, &err), BO_EINVAL);
        assert_string_equal(err.msg, bad[i].msg);
        assert_null(m);
    }
    /* "le" is fine outside histograms, and ':' in metric names. */
    struct bo_metric_desc ok = {BO_METRIC_GAUGE, "ns:x", NULL, le, 1, NULL, 0};
    assert_int_equal(bo_metrics_register(reg, &ok, &m, &err), BO_OK);
    assert_int_equal(bo_metrics_register(reg, &ok, &m, &err), BO_EEXIST);
    assert_string_equal(err.msg, "metric 'ns:x': already registered");
    bo_metrics_free(reg);
}

/* Every allocation failure leaves things consistent: an error or NULL, no
 * leak (the sanitizer build checks), the output buffer unchanged. */
static void out_of_memory(void **state)
{
    (void)state;
    static const char *const labels[] = {"a", "b"};
    bool completed = false;
    for (long n = 0; !completed; n++) {
        assert_true(n < 1000);
        struct bo_metrics *reg = NULL;
        struct bo_buf out = BO_BUF_INIT;
        assert_int_equal(bo_buf_append(&out, "keep", 4), BO_OK);
        bo_mem_fail_after(n);
        int rv = bo_metrics_new(&reg);
        if (rv != BO_OK) {
            bo_mem_fail_after(-1);
            assert_int_equal(rv, BO_ENOMEM);
            bo_buf_release(&out);
            continue;
        }
        struct bo_metric *c = NULL, *h = NULL;
        struct bo_metric_desc dc = {BO_METRIC_COUNTER, "c", "help", labels, 2, NULL, 0};
        struct bo_metric_desc dh = {BO_METRIC_HISTOGRAM, "h", "help", labels, 2, latency_bounds, 3};
        struct bo_err err = BO_ERR_INIT;
        bool ok = bo_metrics_register(reg, &dc, &c, &err) == BO_OK &&
                  bo_metrics_register(reg, &dh, &h, &err) == BO_OK;
        if (!ok) {
            assert_non_null(strstr(err.msg, "out of memory"));
        }
        for (int i = 0; ok && i < 40; i++) {
            char v[300]; /* longer than the key's stack buffer at times */
            snprintf(v, sizeof(v), "%0*d", i % 2 ? 280 : 3, i);
            struct bo_metrics_series *s1 = bo_metrics_with(c, v, "x");
            struct bo_metrics_series *s2 = bo_metrics_with(h, "x", v);
            ok = s1 != NULL && s2 != NULL;
            if (ok) {
                bo_metrics_inc(s1, 1);
                bo_metrics_observe(s2, 0.3);
            }
        }
        if (ok) {
            rv = bo_metrics_render_prometheus(reg, &out);
            if (rv != BO_OK) {
                assert_int_equal(rv, BO_ENOMEM);
                assert_int_equal(out.len, 4); /* truncated back */
            } else {
                size_t len = out.len;
                rv = bo_metrics_render_vars(reg, &out);
                if (rv != BO_OK) {
                    assert_int_equal(rv, BO_ENOMEM);
                    assert_int_equal(out.len, len);
                } else {
                    completed = true;
                }
            }
        }
        bo_mem_fail_after(-1);
        assert_memory_equal(out.data, "keep", 4);
        /* Whatever failed, the registry is still whole and usable. */
        if (c != NULL) {
            struct bo_metrics_series *s = bo_metrics_with(c, "again", "x");
            assert_non_null(s);
            assert_ptr_equal(bo_metrics_with(c, "again", "x"), s);
        }
        assert_int_equal(bo_metrics_render_prometheus(reg, &out), BO_OK);
        assert_int_equal(bo_metrics_render_vars_json(reg, &out), BO_OK);
        bo_buf_release(&out);
        bo_metrics_free(reg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prometheus_exposition_exact),
        cmocka_unit_test(vars_and_vars_json),
        cmocka_unit_test(label_values_are_escaped),
        cmocka_unit_test(numbers_and_histogram_edges),
        cmocka_unit_test(many_series),
        cmocka_unit_test(registration_errors),
        cmocka_unit_test(out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
