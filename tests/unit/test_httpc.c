/* Unit tests for src/common/httpc: the client and a real bo_http server on
 * loopback share one uv loop on the test thread, so every request crosses a
 * real socket and both sides progress only while the loop runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>
#include <uv.h>

#include "common/err.h"
#include "common/http.h"
#include "common/httpc.h"
#include "common/mem.h"
#include "testnet.h"

#define WAIT_MS 10000
#define MANY    200

struct fx {
    uv_loop_t loop;
    struct bo_http_server *srv;
    struct bo_httpc *c;
    char base[64];
    struct bo_http_req *held; /* a request the server never answers */
    uv_timer_t watchdog;
    bool closed_srv, closed_c;
};

struct got {
    bool fired;
    int result;
    unsigned status;
    char body[256];
    size_t body_len;
    char location[128];
    int order; /* completion order, for the sync/async checks */
};

static int completions;

static void handler(struct bo_http_req *req, void *data)
{
    struct fx *fx = data;
    const char *path = bo_http_path(req);
    if (strcmp(path, "/hello") == 0) {
        bo_http_respond(req, 200, "text/plain", "hello", 5);
    } else if (strcmp(path, "/echo") == 0) {
        size_t len;
        const char *body = bo_http_body(req, &len);
        bo_http_set_header(req, "X-Method", bo_http_method(req));
        bo_http_respond(req, 201, "application/json", body, len);
    } else if (strcmp(path, "/redirect") == 0) {
        bo_http_set_header(req, "Location", "http://127.0.0.1:1/elsewhere?x=1");
        bo_http_respond(req, 307, NULL, NULL, 0);
    } else if (strcmp(path, "/big") == 0) {
        static char big[64 * 1024];
        memset(big, 'x', sizeof(big));
        bo_http_respond(req, 200, "text/plain", big, sizeof(big));
    } else if (strcmp(path, "/hold") == 0) {
        fx->held = req; /* answered at close time (503) */
    } else {
        bo_http_respond(req, 404, NULL, NULL, 0);
    }
}

static void on_got(const struct bo_httpc_resp *r, void *data)
{
    struct got *g = data;
    assert_false(g->fired);
    g->fired = true;
    g->result = r->result;
    g->status = r->status;
    g->body_len = r->body_len;
    snprintf(g->body, sizeof(g->body), "%s", r->body ? r->body : "");
    if (r->location)
        snprintf(g->location, sizeof(g->location), "%s", r->location);
    if (r->result != BO_OK)
        assert_non_null(r->error);
    g->order = ++completions;
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    fail_msg("test did not finish within %d ms", WAIT_MS);
}

static int setup(void **state)
{
    struct fx *fx = bo_calloc(1, sizeof(*fx));
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    struct bo_http_config cfg;
    bo_http_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.handler = handler;
    cfg.data = fx;
    assert_int_equal(bo_http_start(&fx->loop, &cfg, &fx->srv, &err), BO_OK);
    snprintf(fx->base, sizeof(fx->base), "http://127.0.0.1:%u", bo_http_port(fx->srv));
    assert_int_equal(bo_httpc_new(&fx->loop, &fx->c, &err), BO_OK);
    uv_timer_init(&fx->loop, &fx->watchdog);
    uv_timer_start(&fx->watchdog, on_watchdog, WAIT_MS, 0);
    uv_unref((uv_handle_t *)&fx->watchdog);
    completions = 0;
    *state = fx;
    return 0;
}

static void srv_closed(struct bo_http_server *srv)
{
    struct fx *fx = bo_http_data(srv);
    fx->closed_srv = true;
}

static void c_closed(struct bo_httpc *c, void *data)
{
    (void)c;
    struct fx *fx = data;
    fx->closed_c = true;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    if (!fx->closed_c)
        bo_httpc_close(fx->c, c_closed, fx);
    bo_http_close(fx->srv, srv_closed);
    uv_close((uv_handle_t *)&fx->watchdog, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_true(fx->closed_c);
    assert_true(fx->closed_srv);
    bo_httpc_free(fx->c);
    bo_http_free(fx->srv);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    bo_free(fx);
    return 0;
}

/* Run the loop until `g` has fired (bounded by the watchdog). */
static void wait_for(struct fx *fx, struct got *g)
{
    while (!g->fired)
        uv_run(&fx->loop, UV_RUN_ONCE);
}

static void submit(struct fx *fx, const char *method, const char *path, const char *body,
                   unsigned timeout_ms, struct got *g, struct bo_httpc_call **call)
{
    char url[128];
    snprintf(url, sizeof(url), "%s%s", fx->base, path);
    struct bo_httpc_opts o = {.method = method,
                              .url = url,
                              .body = body,
                              .body_len = body ? strlen(body) : 0,
                              .timeout_ms = timeout_ms};
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_httpc_request(fx->c, &o, on_got, g, call, &err), BO_OK);
}

static void get_and_post(void **state)
{
    struct fx *fx = *state;
    struct got a = {0}, b = {0};
    submit(fx, NULL, "/hello", NULL, 0, &a, NULL);
    submit(fx, "POST", "/echo", "{\"x\":1}", 0, &b, NULL);
    /* Never from inside the submit. */
    assert_false(a.fired);
    assert_int_equal(bo_httpc_pending(fx->c), 2);
    wait_for(fx, &a);
    wait_for(fx, &b);
    assert_int_equal(a.result, BO_OK);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.body, "hello");
    assert_int_equal(b.status, 201);
    assert_string_equal(b.body, "{\"x\":1}");
    assert_int_equal(bo_httpc_pending(fx->c), 0);
}

static void redirect_is_not_followed(void **state)
{
    struct fx *fx = *state;
    struct got g = {0};
    submit(fx, "POST", "/redirect", "{}", 0, &g, NULL);
    wait_for(fx, &g);
    assert_int_equal(g.result, BO_OK);
    assert_int_equal(g.status, 307);
    assert_string_equal(g.location, "http://127.0.0.1:1/elsewhere?x=1");
}

static void refused_timeout_and_too_big(void **state)
{
    struct fx *fx = *state;
    struct got refused = {0}, slow = {0}, big = {0};
    char url[64];
    int port = test_free_port(); /* nothing listens on it for the next moment */
    assert_true(port > 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", port);
    struct bo_httpc_opts o = {.url = url};
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_httpc_request(fx->c, &o, on_got, &refused, NULL, &err), BO_OK);
    submit(fx, NULL, "/hold", NULL, 200, &slow, NULL);
    char bigurl[128];
    snprintf(bigurl, sizeof(bigurl), "%s/big", fx->base);
    struct bo_httpc_opts ob = {.url = bigurl, .max_response = 1000};
    assert_int_equal(bo_httpc_request(fx->c, &ob, on_got, &big, NULL, &err), BO_OK);
    wait_for(fx, &refused);
    wait_for(fx, &slow);
    wait_for(fx, &big);
    assert_int_equal(refused.result, BO_EIO);
    assert_int_equal(refused.status, 0);
    assert_int_equal(slow.result, BO_EBUSY);
    assert_int_equal(big.result, BO_ETOOBIG);
}

static void cancel_fires_once_later(void **state)
{
    struct fx *fx = *state;
    struct got g = {0};
    struct bo_httpc_call *call = NULL;
    submit(fx, NULL, "/hold", NULL, 0, &g, &call);
    /* Let the request reach the server. */
    while (!fx->held)
        uv_run(&fx->loop, UV_RUN_ONCE);
    bo_httpc_cancel(call);
    assert_false(g.fired);
    wait_for(fx, &g);
    assert_int_equal(g.result, BO_ECANCELED);
    /* The client still works afterwards. */
    struct got h = {0};
    submit(fx, NULL, "/hello", NULL, 0, &h, NULL);
    wait_for(fx, &h);
    assert_int_equal(h.status, 200);
}

static void close_cancels_pending(void **state)
{
    struct fx *fx = *state;
    struct got g[3] = {{0}};
    for (int i = 0; i < 3; i++)
        submit(fx, NULL, "/hold", NULL, 0, &g[i], NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    bo_httpc_close(fx->c, c_closed, fx);
    struct bo_err err = BO_ERR_INIT;
    struct bo_httpc_opts o = {.url = "http://127.0.0.1:1/"};
    struct got late = {0};
    assert_int_equal(bo_httpc_request(fx->c, &o, on_got, &late, NULL, &err), BO_ESHUTDOWN);
    for (int i = 0; i < 3; i++) {
        wait_for(fx, &g[i]);
        assert_int_equal(g[i].result, BO_ECANCELED);
    }
    while (!fx->closed_c)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_false(late.fired);
}

static void many_concurrent(void **state)
{
    struct fx *fx = *state;
    struct got *g = bo_calloc(MANY, sizeof(*g));
    for (int i = 0; i < MANY; i++)
        submit(fx, (i % 2) ? "POST" : NULL, (i % 2) ? "/echo" : "/hello", (i % 2) ? "[1]" : NULL, 0,
               &g[i], NULL);
    for (int i = 0; i < MANY; i++) {
        wait_for(fx, &g[i]);
        assert_int_equal(g[i].result, BO_OK);
        assert_string_equal(g[i].body, (i % 2) ? "[1]" : "hello");
    }
    bo_free(g);
}

int main(void)
{
    struct bo_err err = BO_ERR_INIT;
    if (bo_httpc_global_init(&err) != BO_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(get_and_post, setup, teardown),
        cmocka_unit_test_setup_teardown(redirect_is_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_timeout_and_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_fires_once_later, setup, teardown),
        cmocka_unit_test_setup_teardown(close_cancels_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(many_concurrent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
