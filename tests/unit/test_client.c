/* Unit tests for src/client: clusters.json merging, job keys and instance
 * lists, and bo_client_call against real HTTP servers (src/common/http) on
 * loopback, run by a libuv loop on a thread of their own: the client under
 * test is blocking, so the servers cannot share the test thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "client/client.h"
#include "common/err.h"
#include "common/http.h"
#include "common/mem.h"

/* ---- files ---- */

static char tmpdir[256];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int env_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/bo-test-client-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    char p[512];
    snprintf(p, sizeof(p), "%s/.borealis", tmpdir);
    assert_int_equal(mkdir(p, 0755), 0);
    setenv("HOME", tmpdir, 1);
    unsetenv("BOREALIS_CLUSTERS");
    return 0;
}

static int env_teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void user_file(const char *text)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/.borealis/clusters.json", tmpdir);
    write_file(p, text);
}

static void env_file(const char *text)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/extra.json", tmpdir);
    write_file(p, text);
    setenv("BOREALIS_CLUSTERS", p, 1);
}

/* ---- clusters ---- */

static void test_clusters_merge(void **state)
{
    (void)state;
    user_file("[{\"name\": \"zeta\", \"scheduler_uri\": \"http://z:8081\"},"
              " {\"name\": \"dev\", \"scheduler_uri\": \"http://old:8081\", \"extra\": 1}]");
    env_file("[{\"name\": \"dev\", \"scheduler_urls\": [\"http://a:8081/\", \"http://b:8081\"],"
             " \"scheduler_uri\": \"http://ignored:1\"},"
             " {\"name\": \"alpha\", \"scheduler_uri\": \"http://x:1//\"}]");
    json_t *all = NULL;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_clusters_load(&all, &err), BO_OK);
    assert_int_equal(json_array_size(all), 3);
    /* sorted by name; dev comes from the later file, whole */
    assert_string_equal(json_string_value(json_object_get(json_array_get(all, 0), "name")),
                        "alpha");
    json_t *dev = json_array_get(all, 1);
    assert_string_equal(json_string_value(json_object_get(dev, "name")), "dev");
    assert_null(json_object_get(dev, "extra"));
    json_decref(all);

    struct bo_cluster c;
    assert_int_equal(bo_cluster_find("dev", &c, &err), BO_OK);
    assert_int_equal(c.n_urls, 2);
    assert_string_equal(c.urls[0], "http://a:8081");
    assert_string_equal(c.urls[1], "http://b:8081");
    assert_string_equal(c.name, "dev");
    bo_cluster_release(&c);
    assert_int_equal(bo_cluster_find("alpha", &c, &err), BO_OK);
    assert_int_equal(c.n_urls, 1);
    assert_string_equal(c.urls[0], "http://x:1");
    bo_cluster_release(&c);
    assert_int_equal(bo_cluster_find("zeta", &c, &err), BO_OK);
    assert_string_equal(c.urls[0], "http://z:8081");
    bo_cluster_release(&c);

    assert_int_equal(bo_cluster_find("nope", &c, &err), BO_ENOTFOUND);
    assert_string_equal(err.msg, "unknown cluster 'nope' (known: alpha, dev, zeta)");
}

static void test_clusters_errors(void **state)
{
    (void)state;
    struct bo_err err = BO_ERR_INIT;
    json_t *all = NULL;
    /* no files at all: no clusters */
    assert_int_equal(bo_clusters_load(&all, &err), BO_OK);
    assert_int_equal(json_array_size(all), 0);
    json_decref(all);

    /* $BOREALIS_CLUSTERS naming a missing file */
    setenv("BOREALIS_CLUSTERS", "/nonexistent/clusters.json", 1);
    assert_int_equal(bo_clusters_load(&all, &err), BO_ENOTFOUND);
    assert_non_null(strstr(err.msg, "/nonexistent/clusters.json"));
    unsetenv("BOREALIS_CLUSTERS");

    user_file("{\"name\": \"x\"}");
    assert_int_equal(bo_clusters_load(&all, &err), BO_EINVAL);
    assert_non_null(strstr(err.msg, ".borealis/clusters.json"));
    assert_non_null(strstr(err.msg, "array"));

    user_file("[{\"name\": \"x\", ");
    assert_int_equal(bo_clusters_load(&all, &err), BO_EINVAL);
    assert_non_null(strstr(err.msg, "not valid JSON"));

    user_file("[{\"scheduler_uri\": \"http://a\"}]");
    assert_int_equal(bo_clusters_load(&all, &err), BO_EINVAL);
    assert_non_null(strstr(err.msg, "\"name\""));

    user_file("[{\"name\": \"x\", \"scheduler_urls\": \"http://a\"}]");
    assert_int_equal(bo_clusters_load(&all, &err), BO_EINVAL);
    assert_non_null(strstr(err.msg, "scheduler_urls"));

    /* a cluster without URLs loads, but cannot be used */
    user_file("[{\"name\": \"x\"}]");
    struct bo_cluster c;
    assert_int_equal(bo_cluster_find("x", &c, &err), BO_EINVAL);
    assert_non_null(strstr(err.msg, "scheduler_uri"));
    user_file("[]");
}

/* ---- job keys and instances ---- */

static void test_jobkey_parse(void **state)
{
    (void)state;
    struct bo_jobkey k;
    struct bo_err err = BO_ERR_INIT;
    char s[600];

    assert_int_equal(bo_jobkey_parse("dev/www/prod/hello", BO_JOBKEY_FULL, &k, &err), BO_OK);
    assert_string_equal(k.cluster, "dev");
    assert_string_equal(k.role, "www");
    assert_string_equal(k.env, "prod");
    assert_string_equal(k.name, "hello");
    assert_null(k.instances);
    bo_jobkey_str(&k, s, sizeof(s));
    assert_string_equal(s, "dev/www/prod/hello");
    bo_jobkey_release(&k);

    assert_int_equal(bo_jobkey_parse("dev/www/prod/hello/0-2,5", BO_JOBKEY_INSTANCES, &k, &err),
                     BO_OK);
    assert_int_equal(k.n_instances, 4);
    assert_int_equal(k.instances[3], 5);
    bo_jobkey_release(&k);
    assert_int_equal(bo_jobkey_parse("dev/www/prod/hello", BO_JOBKEY_INSTANCES, &k, &err), BO_OK);
    assert_null(k.instances);
    bo_jobkey_release(&k);

    assert_int_equal(bo_jobkey_parse("dev/w*/p?od", BO_JOBKEY_PARTIAL, &k, &err), BO_OK);
    assert_string_equal(k.role, "w*");
    assert_string_equal(k.name, "");
    bo_jobkey_str(&k, s, sizeof(s));
    assert_string_equal(s, "dev/w*/p?od");
    bo_jobkey_release(&k);
    assert_int_equal(bo_jobkey_parse("dev", BO_JOBKEY_PARTIAL, &k, &err), BO_OK);
    bo_jobkey_release(&k);

    /* errors name the part */
    assert_int_equal(bo_jobkey_parse("dev/www/prod", BO_JOBKEY_FULL, &k, &err), BO_EINVAL);
    assert_non_null(strstr(err.msg, "cluster/role/env/name"));
    assert_int_equal(bo_jobkey_parse("dev/w w/prod/x", BO_JOBKEY_FULL, &k, &err), BO_EINVAL);
    assert_string_equal(err.msg, "job key 'dev/w w/prod/x': role 'w w' must match "
                                 "[A-Za-z0-9_.-]+");
    assert_int_equal(bo_jobkey_parse("dev/www/.x/y", BO_JOBKEY_FULL, &k, &err), BO_EINVAL);
    assert_non_null(strstr(err.msg, "environment '.x'"));
    assert_int_equal(bo_jobkey_parse("dev/www//y", BO_JOBKEY_FULL, &k, &err), BO_EINVAL);
    assert_non_null(strstr(err.msg, "empty environment"));
    assert_int_equal(bo_jobkey_parse("dev/w*/prod/x", BO_JOBKEY_FULL, &k, &err), BO_EINVAL);
    assert_int_equal(bo_jobkey_parse("dev/www/prod/x/1", BO_JOBKEY_FULL, &k, &err), BO_EINVAL);
    assert_int_equal(bo_jobkey_parse("dev/www/prod/x", BO_JOBKEY_NEED_INSTANCES, &k, &err),
                     BO_EINVAL);
    assert_non_null(strstr(err.msg, "instance list is required"));
    assert_int_equal(bo_jobkey_parse("dev/www/prod/x/1/2", BO_JOBKEY_INSTANCES, &k, &err),
                     BO_EINVAL);
    assert_int_equal(bo_jobkey_parse("dev/www/prod/x/a", BO_JOBKEY_INSTANCES, &k, &err), BO_EINVAL);
    assert_non_null(strstr(err.msg, "'a'"));
    char longkey[300];
    memset(longkey, 'a', sizeof(longkey));
    memcpy(longkey, "dev/", 4);
    longkey[sizeof(longkey) - 1] = '\0';
    assert_int_equal(bo_jobkey_parse(longkey, BO_JOBKEY_PARTIAL, &k, &err), BO_EINVAL);
    assert_non_null(strstr(err.msg, "longer than"));
}

static void test_instances_parse(void **state)
{
    (void)state;
    int *v;
    size_t n;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_instances_parse("0-2,5,7-9", &v, &n, &err), BO_OK);
    int want[] = {0, 1, 2, 5, 7, 8, 9};
    assert_int_equal(n, 7);
    assert_memory_equal(v, want, sizeof(want));
    bo_free(v);
    assert_int_equal(bo_instances_parse("5,1,1-2,2", &v, &n, &err), BO_OK);
    assert_int_equal(n, 3);
    assert_int_equal(v[0], 1);
    assert_int_equal(v[2], 5);
    bo_free(v);
    const char *bad[] = {"", "1-", "-1", "a", "1,,2", "1 ", "2-1", "99999999999", "1-2-3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.msg[0] = '\0';
        assert_int_equal(bo_instances_parse(bad[i], &v, &n, &err), BO_EINVAL);
        assert_true(err.msg[0] != '\0');
    }
    assert_int_equal(bo_instances_parse("3-1", &v, &n, &err), BO_EINVAL);
    assert_non_null(strstr(err.msg, "backwards"));
}

/* ---- a scripted scheduler on loopback ---- */

struct srv {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    struct bo_http_server *a, *b; /* a: "follower", b: "leader" */
    char url_a[64], url_b[64];
    int no_leader_left; /* 503 NO_LEADER answers still to give */
    int calls_a, calls_b;
    char last_method[16], last_body[256], last_query[64];
};

static void respond_json(struct bo_http_req *req, unsigned status, const char *body)
{
    bo_http_respond(req, status, "application/json", body, strlen(body));
}

static void handle(struct bo_http_req *req, void *data)
{
    struct bo_http_server *self = bo_http_req_server(req);
    struct srv *s = data;
    bool is_b = self == s->b;
    const char *path = bo_http_path(req);
    __atomic_add_fetch(is_b ? &s->calls_b : &s->calls_a, 1, __ATOMIC_SEQ_CST);
    if (strcmp(path, "/echo") == 0) {
        size_t len;
        const char *body = bo_http_body(req, &len);
        snprintf(s->last_method, sizeof(s->last_method), "%s", bo_http_method(req));
        snprintf(s->last_body, sizeof(s->last_body), "%s", body);
        const char *q = bo_http_query(req, "x");
        snprintf(s->last_query, sizeof(s->last_query), "%s", q ? q : "");
        json_t *j = json_pack("{s:s, s:b}", "method", bo_http_method(req), "leader", is_b);
        char *t = json_dumps(j, JSON_COMPACT);
        respond_json(req, 200, t);
        free(t);
        json_decref(j);
    } else if (strcmp(path, "/redirect") == 0 && !is_b) {
        char loc[128], body[256];
        snprintf(loc, sizeof(loc), "%s/echo?x=1", s->url_b);
        snprintf(body, sizeof(body),
                 "{\"code\":\"NOT_LEADER\",\"message\":\"not the leader: follow the redirect\","
                 "\"details\":[],\"leader\":\"%s\"}",
                 s->url_b);
        bo_http_set_header(req, "Location", loc);
        respond_json(req, 307, body);
    } else if (strcmp(path, "/loop") == 0) {
        char loc[128];
        snprintf(loc, sizeof(loc), "%s/loop", is_b ? s->url_a : s->url_b);
        bo_http_set_header(req, "Location", loc);
        respond_json(req, 308, "{}");
    } else if (strcmp(path, "/noleader") == 0) {
        if (__atomic_sub_fetch(&s->no_leader_left, 1, __ATOMIC_SEQ_CST) >= 0)
            respond_json(req, 503,
                         "{\"code\":\"NO_LEADER\",\"message\":\"no leading scheduler: try again "
                         "shortly\"}");
        else
            respond_json(req, 200, "{\"ok\":true}");
    } else if (strcmp(path, "/slow") == 0) {
        /* never answered: bo_http_close answers it with 503 */
    } else if (strcmp(path, "/bad") == 0) {
        respond_json(req, 400,
                     "{\"code\":\"INVALID_REQUEST\",\"message\":\"key.role: 'bad role' must "
                     "match [A-Za-z0-9_.-]+\",\"details\":[]}");
    } else if (strcmp(path, "/text") == 0) {
        bo_http_respond(req, 502, "text/plain", "upstream broke\nmore", 19);
    } else {
        respond_json(req, 404, "{\"code\":\"NOT_FOUND\",\"message\":\"no route\"}");
    }
}

static void closed(struct bo_http_server *srv)
{
    bo_http_free(srv);
}

static void on_stop(uv_async_t *a)
{
    struct srv *s = a->data;
    bo_http_close(s->a, closed);
    bo_http_close(s->b, closed);
    uv_close((uv_handle_t *)a, NULL);
}

static void *run_loop(void *data)
{
    struct srv *s = data;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int srv_setup(void **state)
{
    env_setup(state);
    struct srv *s = calloc(1, sizeof(*s));
    assert_int_equal(uv_loop_init(&s->loop), 0);
    struct bo_err err = BO_ERR_INIT;
    struct bo_http_config cfg;
    bo_http_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.handler = handle;
    cfg.data = s;
    cfg.close_grace_ms = 100;
    assert_int_equal(bo_http_start(&s->loop, &cfg, &s->a, &err), BO_OK);
    assert_int_equal(bo_http_start(&s->loop, &cfg, &s->b, &err), BO_OK);
    snprintf(s->url_a, sizeof(s->url_a), "http://127.0.0.1:%u", bo_http_port(s->a));
    snprintf(s->url_b, sizeof(s->url_b), "http://127.0.0.1:%u", bo_http_port(s->b));
    uv_async_init(&s->loop, &s->stop, on_stop);
    s->stop.data = s;
    assert_int_equal(pthread_create(&s->thread, NULL, run_loop, s), 0);
    *state = s;
    return 0;
}

static int srv_teardown(void **state)
{
    struct srv *s = *state;
    uv_async_send(&s->stop);
    pthread_join(s->thread, NULL);
    assert_int_equal(uv_loop_close(&s->loop), 0);
    free(s);
    return env_teardown(state);
}

/* A port nobody listens on (bound, then closed). */
static unsigned dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static struct bo_client *open_urls(const char *u1, const char *u2, unsigned timeout_ms,
                                   unsigned no_leader_ms)
{
    char *urls[2] = {(char *)u1, (char *)u2};
    struct bo_cluster c = {.name = "test", .urls = urls, .n_urls = u2 ? 2 : 1};
    struct bo_client_opts o = {.timeout_ms = timeout_ms, .no_leader_wait_ms = no_leader_ms};
    struct bo_client *cl = NULL;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_client_open(&c, &o, &cl, &err), BO_OK);
    return cl;
}

static void test_call_rotates_past_refused_url(void **state)
{
    struct srv *s = *state;
    char dead[64];
    snprintf(dead, sizeof(dead), "http://127.0.0.1:%u", dead_port());
    struct bo_client *cl = open_urls(dead, s->url_a, 0, 0);
    struct bo_err err = BO_ERR_INIT;
    unsigned status = 0;
    json_t *resp = NULL;
    assert_int_equal(bo_client_call(cl, "GET", "/echo", NULL, &status, &resp, NULL, &err), BO_OK);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(resp, "method")), "GET");
    json_decref(resp);
    /* the URL that answered is asked first from now on */
    assert_string_equal(bo_client_url(cl), s->url_a);
    assert_int_equal(bo_client_call(cl, "GET", "/echo", NULL, &status, NULL, NULL, &err), BO_OK);
    assert_int_equal(__atomic_load_n(&s->calls_a, __ATOMIC_SEQ_CST), 2);
    bo_client_close(cl);

    /* nobody answers: BO_EIO naming each URL, exit 7 */
    cl = open_urls(dead, dead, 0, 0);
    int rc = bo_client_call(cl, "POST", "/echo", NULL, &status, NULL, NULL, &err);
    assert_int_equal(rc, BO_EIO);
    assert_int_equal(bo_client_exit_code(rc), BO_EXIT_NETWORK_ERROR);
    assert_non_null(strstr(err.msg, "cannot reach a scheduler of cluster 'test'"));
    assert_non_null(strstr(err.msg, dead));
    bo_client_close(cl);
}

static void test_call_follows_redirect_to_leader(void **state)
{
    struct srv *s = *state;
    struct bo_client *cl = open_urls(s->url_a, NULL, 0, 0);
    struct bo_err err = BO_ERR_INIT;
    unsigned status = 0;
    json_t *resp = NULL;
    json_t *body = json_pack("{s:s}", "hello", "leader");
    assert_int_equal(bo_client_call(cl, "PUT", "/redirect", body, &status, &resp, NULL, &err),
                     BO_OK);
    json_decref(body);
    assert_int_equal(status, 200);
    assert_true(json_is_true(json_object_get(resp, "leader")));
    json_decref(resp);
    /* method, body and the query of the Location were kept */
    assert_string_equal(s->last_method, "PUT");
    assert_string_equal(s->last_body, "{\"hello\":\"leader\"}");
    assert_string_equal(s->last_query, "1");
    /* and the leader is asked first from now on */
    assert_string_equal(bo_client_url(cl), s->url_b);
    int before = __atomic_load_n(&s->calls_a, __ATOMIC_SEQ_CST);
    assert_int_equal(bo_client_call(cl, "POST", "/echo", NULL, &status, &resp, NULL, &err), BO_OK);
    assert_true(json_is_true(json_object_get(resp, "leader")));
    assert_string_equal(s->last_method, "POST");
    json_decref(resp);
    assert_int_equal(__atomic_load_n(&s->calls_a, __ATOMIC_SEQ_CST), before);

    /* a redirect loop ends */
    int rc = bo_client_call(cl, "GET", "/loop", NULL, &status, NULL, NULL, &err);
    assert_int_equal(rc, BO_EIO);
    assert_non_null(strstr(err.msg, "redirects"));
    bo_client_close(cl);
}

static void test_call_retries_no_leader(void **state)
{
    struct srv *s = *state;
    struct bo_client *cl = open_urls(s->url_a, NULL, 0, 5000);
    struct bo_err err = BO_ERR_INIT;
    unsigned status = 0;
    json_t *resp = NULL;
    __atomic_store_n(&s->no_leader_left, 2, __ATOMIC_SEQ_CST);
    assert_int_equal(bo_client_call(cl, "POST", "/noleader", NULL, &status, &resp, NULL, &err),
                     BO_OK);
    assert_int_equal(status, 200);
    assert_true(json_is_true(json_object_get(resp, "ok")));
    json_decref(resp);
    assert_int_equal(__atomic_load_n(&s->calls_a, __ATOMIC_SEQ_CST), 3);
    bo_client_close(cl);

    /* bounded: after no_leader_wait_ms the 503 is the answer */
    cl = open_urls(s->url_a, NULL, 0, 300);
    __atomic_store_n(&s->no_leader_left, 1000, __ATOMIC_SEQ_CST);
    char *text = NULL;
    assert_int_equal(bo_client_call(cl, "POST", "/noleader", NULL, &status, &resp, &text, &err),
                     BO_OK);
    assert_int_equal(status, 503);
    assert_null(text);
    int rc = bo_client_api_error("POST", "/noleader", status, resp, text, &err);
    assert_int_equal(rc, BO_EBUSY);
    assert_string_equal(err.msg,
                        "POST /noleader: 503 NO_LEADER: no leading scheduler: try again shortly");
    json_decref(resp);
    bo_client_close(cl);
}

static void test_call_timeout(void **state)
{
    struct srv *s = *state;
    struct bo_client *cl = open_urls(s->url_a, NULL, 300, 0);
    struct bo_err err = BO_ERR_INIT;
    unsigned status = 0;
    int rc = bo_client_call(cl, "GET", "/slow", NULL, &status, NULL, NULL, &err);
    assert_int_equal(rc, BO_EBUSY);
    assert_int_equal(bo_client_exit_code(rc), BO_EXIT_TIMEOUT);
    assert_non_null(strstr(err.msg, "no answer within 300 ms"));
    bo_client_close(cl);
}

static void test_call_errors_formatted(void **state)
{
    struct srv *s = *state;
    struct bo_client *cl = open_urls(s->url_a, NULL, 0, 0);
    struct bo_err err = BO_ERR_INIT;
    unsigned status = 0;
    json_t *resp = NULL;
    char *text = NULL;
    assert_int_equal(bo_client_call(cl, "POST", "/bad", NULL, &status, &resp, &text, &err), BO_OK);
    assert_int_equal(status, 400);
    assert_null(text);
    assert_int_equal(bo_client_api_error("POST", "/bad", status, resp, text, &err), BO_EINVAL);
    assert_string_equal(err.msg, "POST /bad: 400 INVALID_REQUEST: key.role: 'bad role' must "
                                 "match [A-Za-z0-9_.-]+");
    json_decref(resp);

    assert_int_equal(bo_client_call(cl, "GET", "/text", NULL, &status, &resp, &text, &err), BO_OK);
    assert_int_equal(status, 502);
    assert_null(resp);
    assert_string_equal(text, "upstream broke\nmore");
    assert_int_equal(bo_client_api_error("GET", "/text", status, resp, text, &err), BO_EIO);
    assert_string_equal(err.msg, "GET /text: 502 upstream broke");
    bo_free(text);

    assert_int_equal(bo_client_call(cl, "GET", "/nope", NULL, &status, &resp, NULL, &err), BO_OK);
    assert_int_equal(bo_client_api_error("GET", "/nope", status, resp, NULL, &err), BO_ENOTFOUND);
    json_decref(resp);
    assert_int_equal(bo_client_api_error("GET", "/x", 409, NULL, NULL, &err), BO_EEXIST);
    assert_string_equal(err.msg, "GET /x: 409 Conflict");
    snprintf(err.msg, sizeof(err.msg), "untouched");
    assert_int_equal(bo_client_api_error("GET", "/x", 200, NULL, NULL, &err), BO_OK);
    assert_string_equal(err.msg, "untouched");

    assert_int_equal(bo_client_call(cl, "GET", "no-slash", NULL, &status, NULL, NULL, &err),
                     BO_EINVAL);
    bo_client_close(cl);
}

static void test_exit_codes(void **state)
{
    (void)state;
    assert_int_equal(bo_client_exit_code(BO_OK), 0);
    assert_int_equal(bo_client_exit_code(BO_EINVAL), BO_EXIT_INVALID_PARAMETER);
    assert_int_equal(bo_client_exit_code(BO_EIO), BO_EXIT_NETWORK_ERROR);
    assert_int_equal(bo_client_exit_code(BO_EBUSY), BO_EXIT_TIMEOUT);
    assert_int_equal(bo_client_exit_code(BO_EEXIST), BO_EXIT_API_ERROR);
    assert_int_equal(bo_client_exit_code(BO_ENOMEM), BO_EXIT_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_clusters_merge, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_clusters_errors, env_setup, env_teardown),
        cmocka_unit_test(test_jobkey_parse),
        cmocka_unit_test(test_instances_parse),
        cmocka_unit_test_setup_teardown(test_call_rotates_past_refused_url, srv_setup,
                                        srv_teardown),
        cmocka_unit_test_setup_teardown(test_call_follows_redirect_to_leader, srv_setup,
                                        srv_teardown),
        cmocka_unit_test_setup_teardown(test_call_retries_no_leader, srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(test_call_timeout, srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(test_call_errors_formatted, srv_setup, srv_teardown),
        cmocka_unit_test(test_exit_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
