/* Unit tests for src/common/http: a real uv loop on the test thread, real
 * sockets on loopback, clients (libcurl easy, or raw sockets) on threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/http.h"
#include "common/mem.h"

#define WAIT_MS      10000 /* bound on every wait */
#define MAX_HELD     64
#define MANY         50
#define DEFER_MS     50
#define BIG_ANSWER   (16 * 1024 * 1024)
#define SHUTDOWN_503 "{\"code\":\"SHUTDOWN\",\"message\":\"the server is shutting down\"}"

/* ------------------------------------------------------------ clients ---- */

/* One client request, run on a client thread. */
struct creq {
    /* in: either a curl request... */
    const char *method; /* GET, HEAD, POST, PUT, DELETE */
    char url[256];
    const char *body;
    size_t body_len;
    bool chunked;
    /* ...or raw bytes sent on a plain socket to `port` */
    const char *raw;
    bool raw_close_early; /* close right after sending, read nothing */
    uint16_t port;
    /* out */
    CURLcode rc;
    long status;
    struct bo_buf out;
    char location[256];
    char content_type[128];
    double elapsed_ms;
    size_t upload_pos;
};

struct job {
    struct creq *reqs;
    size_t n;
    uv_async_t *wake;
    pthread_t thread;
    atomic_bool done;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct creq *r = arg;
    return bo_buf_append(&r->out, p, size * n) == BO_OK ? size * n : 0;
}

static void copy_header_value(char *dst, size_t cap, const char *v, size_t len)
{
    while (len > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ')) {
        len--;
    }
    if (len >= cap) {
        len = cap - 1;
    }
    memcpy(dst, v, len);
    dst[len] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct creq *r = arg;
    size_t len = size * n;
    if (len > 9 && strncasecmp(p, "Location:", 9) == 0) {
        copy_header_value(r->location, sizeof(r->location), p + 9, len - 9);
    } else if (len > 13 && strncasecmp(p, "Content-Type:", 13) == 0) {
        copy_header_value(r->content_type, sizeof(r->content_type), p + 13, len - 13);
    }
    return len;
}

static size_t on_upload(char *p, size_t size, size_t n, void *arg)
{
    struct creq *r = arg;
    size_t left = r->body_len - r->upload_pos;
    size_t k = size * n < left ? size * n : left;
    if (k > 777) {
        k = 777; /* several chunks */
    }
    memcpy(p, r->body + r->upload_pos, k);
    r->upload_pos += k;
    return k;
}

static double now_ms(void)
{
    return (double)uv_hrtime() / 1e6;
}

static void run_curl(struct creq *r)
{
    CURL *c = curl_easy_init();
    if (c == NULL) {
        r->rc = CURLE_FAILED_INIT;
        return;
    }
    struct curl_slist *hdrs = NULL;
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)WAIT_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (r->chunked) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_upload);
        curl_easy_setopt(c, CURLOPT_READDATA, r);
        hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
    } else if (r->body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    }
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0 &&
        strcmp(r->method, "POST") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    }
    hdrs = curl_slist_append(hdrs, "X-Test: yes");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    double t0 = now_ms();
    r->rc = curl_easy_perform(c);
    r->elapsed_ms = now_ms() - t0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
}

/* Send r->raw, then read the answer until EOF (or close at once). */
static void run_raw(struct creq *r)
{
    r->rc = CURLE_COULDNT_CONNECT;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return;
    }
    struct timeval tv = {WAIT_MS / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(r->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return;
    }
    size_t len = strlen(r->raw), off = 0;
    while (off < len) {
        ssize_t k = send(fd, r->raw + off, len - off, MSG_NOSIGNAL);
        if (k <= 0) {
            break;
        }
        off += (size_t)k;
    }
    r->rc = CURLE_OK;
    if (!r->raw_close_early) {
        char chunk[4096];
        ssize_t k;
        while ((k = recv(fd, chunk, sizeof(chunk), 0)) > 0) {
            bo_buf_append(&r->out, chunk, (size_t)k);
        }
        if (k < 0) {
            r->rc = CURLE_RECV_ERROR;
        }
        if (r->out.len >= 12 && memcmp(r->out.data, "HTTP/1.", 7) == 0) {
            r->status = strtol((const char *)r->out.data + 9, NULL, 10);
        }
    }
    close(fd);
}

static void run_one(struct creq *r)
{
    if (r->raw != NULL) {
        run_raw(r);
    } else {
        run_curl(r);
    }
}

static void *one_main(void *arg)
{
    run_one(arg);
    return NULL;
}

static void *job_main(void *arg)
{
    struct job *j = arg;
    if (j->n == 1) {
        run_one(&j->reqs[0]);
    } else {
        pthread_t th[MAX_HELD];
        if (j->n > MAX_HELD) {
            abort();
        }
        for (size_t i = 0; i < j->n; i++) {
            if (pthread_create(&th[i], NULL, one_main, &j->reqs[i]) != 0) {
                abort();
            }
        }
        for (size_t i = 0; i < j->n; i++) {
            pthread_join(th[i], NULL);
        }
    }
    atomic_store(&j->done, true);
    uv_async_send(j->wake);
    return NULL;
}

/* ------------------------------------------------------------ fixture ---- */

struct fx {
    uv_loop_t loop;
    uv_timer_t watchdog;
    uv_async_t wake;
    uv_timer_t defer;
    uv_timer_t nap;
    bool napped;
    bool timed_out;
    struct bo_http_server *srv;
    uint16_t port;
    bool close_started;
    bool closed;
    int handler_calls;
    char last_method[16];
    struct bo_http_req *held[MAX_HELD];
    size_t n_held;
    size_t defer_when; /* answer the held requests once this many are held */
    size_t inflight_seen;
    bool job_running;
    unsigned max_connections;
    struct job job;
};

static void on_watchdog(uv_timer_t *t)
{
    struct fx *fx = t->data;
    fx->timed_out = true;
}

static void on_wake(uv_async_t *a)
{
    (void)a; /* the loop re-checks its condition */
}

static void on_nap(uv_timer_t *t)
{
    struct fx *fx = t->data;
    fx->napped = true;
}

#define RUN_UNTIL(fx, cond)                                                                        \
    do {                                                                                           \
        uv_timer_start(&(fx)->watchdog, on_watchdog, WAIT_MS, 0);                                  \
        while (!(cond) && !(fx)->timed_out) {                                                      \
            uv_run(&(fx)->loop, UV_RUN_ONCE);                                                      \
        }                                                                                          \
        uv_timer_stop(&(fx)->watchdog);                                                            \
        assert_false((fx)->timed_out);                                                             \
    } while (0)

/* Serve for `ms` milliseconds. */
static void run_for(struct fx *fx, uint64_t ms)
{
    fx->napped = false;
    uv_timer_start(&fx->nap, on_nap, ms, 0);
    RUN_UNTIL(fx, fx->napped);
}

static void respond_text(struct bo_http_req *req, unsigned status, const char *text)
{
    bo_http_respond(req, status, "text/plain", text, strlen(text));
}

/* Answer the held requests, newest first, each with its "id" argument. */
static void on_defer(uv_timer_t *t)
{
    struct fx *fx = t->data;
    fx->inflight_seen = bo_http_inflight(fx->srv);
    while (fx->n_held > 0) {
        struct bo_http_req *req = fx->held[--fx->n_held];
        const char *id = bo_http_query(req, "id");
        char body[64];
        snprintf(body, sizeof(body), "deferred %s", id != NULL ? id : "?");
        respond_text(req, 200, body);
    }
}

static void on_closed(struct bo_http_server *srv)
{
    struct fx *fx = bo_http_data(srv);
    fx->closed = true;
}

static void handler(struct bo_http_req *req, void *data)
{
    struct fx *fx = data;
    fx->handler_calls++;
    snprintf(fx->last_method, sizeof(fx->last_method), "%s", bo_http_method(req));
    const char *path = bo_http_path(req);

    if (strncmp(path, "/echo", 5) == 0) {
        size_t blen;
        const char *body = bo_http_body(req, &blen);
        assert_int_equal(body[blen], '\0');
        const char *a = bo_http_query(req, "a"), *b = bo_http_query(req, "b");
        const char *flag = bo_http_query(req, "flag"), *xt = bo_http_header(req, "x-TEST");
        char head[512];
        int n = snprintf(head, sizeof(head),
                         "%s %s a=%s b=%s flag=%s x-test=%s body=", bo_http_method(req), path,
                         a ? a : "-", b ? b : "-", flag ? flag : "-", xt ? xt : "-");
        struct bo_buf out = BO_BUF_INIT;
        assert_int_equal(bo_buf_append(&out, head, (size_t)n), BO_OK);
        assert_int_equal(bo_buf_append(&out, body, blen), BO_OK);
        bo_http_respond(req, 200, "text/plain", out.data, out.len);
        bo_buf_release(&out);
    } else if (strcmp(path, "/size") == 0) {
        size_t blen;
        bo_http_body(req, &blen);
        char text[32];
        snprintf(text, sizeof(text), "%zu", blen);
        respond_text(req, 200, text);
    } else if (strcmp(path, "/defer") == 0 || strcmp(path, "/pending") == 0 ||
               strcmp(path, "/gone") == 0) {
        assert_true(fx->n_held < MAX_HELD);
        bo_http_req_set_data(req, fx);
        fx->held[fx->n_held++] = req;
        if (strcmp(path, "/defer") == 0 && fx->n_held == fx->defer_when) {
            uv_timer_start(&fx->defer, on_defer, DEFER_MS, 0);
        }
    } else if (strcmp(path, "/redirect") == 0) {
        assert_int_equal(bo_http_set_header(req, "Bad\r\nName", "x"), BO_EINVAL);
        assert_int_equal(bo_http_set_header(req, "X-Ok", "a\r\nInjected: 1"), BO_EINVAL);
        assert_int_equal(bo_http_set_header(req, "content-length", "5"), BO_EINVAL);
        assert_int_equal(bo_http_set_header(req, "Location", "http://10.0.0.2:8081/api?x=1"),
                         BO_OK);
        assert_int_equal(bo_http_set_header(req, "X-Leader", "2"), BO_OK);
        respond_text(req, 307, "to the leader");
    } else if (strcmp(path, "/shutdown") == 0) {
        /* Answer with more than the socket buffers hold, then close from
         * inside the handler: the grace period lets the answer out. */
        char *big = bo_malloc(BIG_ANSWER);
        assert_non_null(big);
        memset(big, 'b', BIG_ANSWER);
        bo_http_respond(req, 200, "application/octet-stream", big, BIG_ANSWER);
        bo_free(big);
        fx->close_started = true;
        bo_http_close(fx->srv, on_closed);
    } else {
        bo_http_respond(req, 404, NULL, NULL, 0);
    }
}

static void fx_init(struct fx *fx)
{
    memset(fx, 0, sizeof(*fx));
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->watchdog);
    fx->watchdog.data = fx;
    uv_timer_init(&fx->loop, &fx->defer);
    fx->defer.data = fx;
    uv_timer_init(&fx->loop, &fx->nap);
    fx->nap.data = fx;
    assert_int_equal(uv_async_init(&fx->loop, &fx->wake, on_wake), 0);
    fx->defer_when = 1;
}

static void fx_start(struct fx *fx, const char *listen, size_t max_body)
{
    struct bo_http_config cfg;
    bo_http_config_init(&cfg);
    cfg.listen = listen;
    cfg.handler = handler;
    cfg.data = fx;
    if (max_body > 0) {
        cfg.max_body = max_body;
    }
    if (fx->max_connections > 0) {
        cfg.max_connections = fx->max_connections;
    }
    cfg.close_grace_ms = WAIT_MS / 2; /* generous: the machine may be loaded */
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_http_start(&fx->loop, &cfg, &fx->srv, &err);
    if (rv != BO_OK) {
        fail_msg("bo_http_start: %s", bo_err_msg(&err, rv));
    }
    fx->port = bo_http_port(fx->srv);
    assert_true(fx->port != 0);
}

static int setup(void **state)
{
    struct fx *fx = bo_calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fx_init(fx);
    *state = fx;
    return 0;
}

/* Close the server (unless a handler did), free it, close every handle and
 * check that the loop closes cleanly. */
static void finish(struct fx *fx)
{
    if (fx->srv != NULL) {
        if (!fx->close_started) {
            fx->close_started = true;
            bo_http_close(fx->srv, on_closed);
            assert_false(fx->closed); /* never from inside bo_http_close */
        }
        RUN_UNTIL(fx, fx->closed);
        bo_http_free(fx->srv);
        fx->srv = NULL;
    }
    uv_close((uv_handle_t *)&fx->watchdog, NULL);
    uv_close((uv_handle_t *)&fx->defer, NULL);
    uv_close((uv_handle_t *)&fx->nap, NULL);
    uv_close((uv_handle_t *)&fx->wake, NULL);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    /* After a failed test the loop may still hold handles: leak them, but
     * let the clients finish (they time out) before their memory goes. */
    if (fx->job_running) {
        pthread_join(fx->job.thread, NULL);
    }
    bo_free(fx);
    return 0;
}

static void start_job(struct fx *fx, struct creq *reqs, size_t n)
{
    fx->job.reqs = reqs;
    fx->job.n = n;
    fx->job.wake = &fx->wake;
    atomic_store(&fx->job.done, false);
    assert_int_equal(pthread_create(&fx->job.thread, NULL, job_main, &fx->job), 0);
    fx->job_running = true;
}

static void wait_job(struct fx *fx)
{
    RUN_UNTIL(fx, atomic_load(&fx->job.done));
    pthread_join(fx->job.thread, NULL);
    fx->job_running = false;
}

/* Run requests to completion while the loop serves them. */
static void run_requests(struct fx *fx, struct creq *reqs, size_t n)
{
    start_job(fx, reqs, n);
    wait_job(fx);
}

static void creq_init(struct creq *r, const struct fx *fx, const char *method, const char *target)
{
    memset(r, 0, sizeof(*r));
    r->method = method;
    r->port = fx->port;
    snprintf(r->url, sizeof(r->url), "http://127.0.0.1:%u%s", (unsigned)fx->port, target);
}

static void creq_release(struct creq *r)
{
    bo_buf_release(&r->out);
}

static void assert_body(const struct creq *r, const char *want)
{
    size_t n = strlen(want);
    if (r->out.len != n || (n > 0 && memcmp(r->out.data, want, n) != 0)) {
        fail_msg("body '%.*s', want '%s'", (int)r->out.len,
                 r->out.data != NULL ? (const char *)r->out.data : "", want);
    }
}

static void assert_ok(const struct creq *r, long status)
{
    if (r->rc != CURLE_OK) {
        fail_msg("request to '%s' failed: %s", r->url, curl_easy_strerror(r->rc));
    }
    assert_int_equal(r->status, status);
}

/* -------------------------------------------------------------- tests ---- */

static void get_with_query_args(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, "127.0.0.1:0", 0);
    struct creq r;
    creq_init(&r, fx, "GET", "/echo/a%20b?a=1&b=x%20y&flag");
    run_requests(fx, &r, 1);
    assert_ok(&r, 200);
    assert_string_equal(r.content_type, "text/plain");
    assert_body(&r, "GET /echo/a b a=1 b=x y flag= x-test=yes body=");
    assert_int_equal(fx->handler_calls, 1);
    creq_release(&r);

    creq_init(&r, fx, "GET", "/nothing");
    run_requests(fx, &r, 1);
    assert_ok(&r, 404);
    assert_body(&r, "");
    assert_int_equal(bo_http_inflight(fx->srv), 0);
    creq_release(&r);
    finish(fx);
}

static void post_put_delete_head(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, "127.0.0.1:0", 0);
    static const char body[] = "hello\0world"; /* a NUL inside the body */
    struct creq r[4];
    creq_init(&r[0], fx, "POST", "/echo?a=2");
    r[0].body = body;
    r[0].body_len = sizeof(body) - 1;
    creq_init(&r[1], fx, "PUT", "/echo");
    r[1].body = "{\"x\":1}";
    r[1].body_len = 7;
    creq_init(&r[2], fx, "DELETE", "/echo");
    creq_init(&r[3], fx, "HEAD", "/echo");
    for (size_t i = 0; i < 4; i++) {
        run_requests(fx, &r[i], 1);
        assert_ok(&r[i], 200);
    }
    static const char want0[] = "POST /echo a=2 b=- flag=- x-test=yes body=hello\0world";
    assert_int_equal(r[0].out.len, sizeof(want0) - 1);
    assert_memory_equal(r[0].out.data, want0, sizeof(want0) - 1);
    assert_body(&r[1], "PUT /echo a=- b=- flag=- x-test=yes body={\"x\":1}");
    assert_body(&r[2], "DELETE /echo a=- b=- flag=- x-test=yes body=");
    assert_body(&r[3], ""); /* HEAD: the handler answered, nothing sent */
    assert_string_equal(fx->last_method, "HEAD");
    assert_int_equal(fx->handler_calls, 4);
    for (size_t i = 0; i < 4; i++) {
        creq_release(&r[i]);
    }

    /* On the wire, HEAD announces the length and sends no body. */
    struct creq raw;
    creq_init(&raw, fx, "HEAD", "/echo");
    raw.raw = "HEAD /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    run_requests(fx, &raw, 1);
    assert_int_equal(raw.rc, CURLE_OK);
    assert_int_equal(raw.status, 200);
    assert_int_equal(bo_buf_append_byte(&raw.out, '\0'), BO_OK);
    const char *text = (const char *)raw.out.data;
    assert_non_null(strcasestr(text, "\r\nContent-Length: 40\r\n"));
    assert_int_equal(strcmp(text + raw.out.len - 5, "\r\n\r\n"), 0);
    creq_release(&raw);
    finish(fx);
}

static void deferred_from_timer(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, "127.0.0.1:0", 0);
    struct creq r;
    creq_init(&r, fx, "GET", "/defer?id=7");
    start_job(fx, &r, 1);
    RUN_UNTIL(fx, fx->handler_calls == 1);
    /* The handler returned without answering: the request waits. */
    assert_int_equal(bo_http_inflight(fx->srv), 1);
    assert_int_equal(fx->n_held, 1);
    assert_ptr_equal(bo_http_req_get_data(fx->held[0]), fx);
    wait_job(fx);
    assert_ok(&r, 200);
    assert_body(&r, "deferred 7");
    assert_int_equal(fx->inflight_seen, 1);
    assert_int_equal(bo_http_inflight(fx->srv), 0);
    assert_true(r.elapsed_ms >= DEFER_MS - 10);
    creq_release(&r);
    finish(fx);
}

static void many_concurrent_deferred(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, "127.0.0.1:0", 0);
    /* Nothing is answered until all MANY requests wait at the same time. */
    fx->defer_when = MANY;
    struct creq *r = bo_calloc(MANY, sizeof(*r));
    assert_non_null(r);
    for (size_t i = 0; i < MANY; i++) {
        char target[64];
        snprintf(target, sizeof(target), "/defer?id=%zu", i);
        creq_init(&r[i], fx, "GET", target);
    }
    run_requests(fx, r, MANY);
    assert_int_equal(fx->inflight_seen, MANY);
    for (size_t i = 0; i < MANY; i++) {
        char want[64];
        snprintf(want, sizeof(want), "deferred %zu", i);
        assert_ok(&r[i], 200);
        assert_body(&r[i], want);
        creq_release(&r[i]);
    }
    assert_int_equal(fx->handler_calls, MANY);
    assert_int_equal(bo_http_inflight(fx->srv), 0);
    bo_free(r);
    finish(fx);
}

static char *filled(size_t n)
{
    char *p = bo_malloc(n);
    assert_non_null(p);
    memset(p, 'x', n);
    return p;
}

static void oversize_body_is_413(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, "127.0.0.1:0", 0); /* default limit: 1 MiB */
    size_t mib = 1024 * 1024;
    char *big = filled(mib + 1);
    struct creq r;
    creq_init(&r, fx, "POST", "/size");
    r.body = big;
    r.body_len = mib + 1;
    run_requests(fx, &r, 1);
    assert_ok(&r, 413);
    assert_string_equal(r.content_type, "application/json");
    assert_body(&r, "{\"code\":\"TOO_BIG\",\"message\":\"request body is larger than 1048576 "
                    "bytes\"}");
    assert_int_equal(fx->handler_calls, 0);
    creq_release(&r);

    /* Exactly at the limit is fine. */
    creq_init(&r, fx, "POST", "/size");
    r.body = big;
    r.body_len = mib;
    run_requests(fx, &r, 1);
    assert_ok(&r, 200);
    assert_body(&r, "1048576");
    assert_int_equal(fx->handler_calls, 1);
    creq_release(&r);

    /* A raw client that sends the whole body without waiting for
     * "100 Continue" gets the 413 too. */
    char raw[256];
    snprintf(raw, sizeof(raw),
             "POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\nxxxxxxxx", mib + 1);
    creq_init(&r, fx, "POST", "/size");
    r.raw = raw;
    run_requests(fx, &r, 1);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 413);
    assert_int_equal(fx->handler_calls, 1);
    creq_release(&r);
    bo_free(big);
    finish(fx);
}

static void oversize_chunked_body_is_413(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, "127.0.0.1:0", 1000);
    char *big = filled(5000);
    struct creq r;
    creq_init(&r, fx, "POST", "/size");
    r.body = big;
    r.body_len = 5000;
    r.chunked = true;
    run_requests(fx, &r, 1);
    assert_ok(&r, 413);
    assert_body(&r,
                "{\"code\":\"TOO_BIG\",\"message\":\"request body is larger than 1000 bytes\"}");
    assert_int_equal(fx->handler_calls, 0);
    creq_release(&r);

    creq_init(&r, fx, "POST", "/size");
    r.body = big;
    r.body_len = 1000;
    r.chunked = true;
    run_requests(fx, &r, 1);
    assert_ok(&r, 200);
    assert_body(&r, "1000");
    assert_int_equal(fx->handler_calls, 1);
    creq_release(&r);
    bo_free(big);
    finish(fx);
}

static void ephemeral_port_and_bad_addresses(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, "127.0.0.1:0", 0);
    assert_true(fx->port > 0);

    struct bo_http_config cfg;
    bo_http_config_init(&cfg);
    cfg.handler = handler;
    cfg.data = fx;
    struct bo_http_server *other = NULL;
    struct bo_err err = BO_ERR_INIT;

    /* The port is taken (and not shared through SO_REUSEPORT). */
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)fx->port);
    cfg.listen = listen;
    assert_int_equal(bo_http_start(&fx->loop, &cfg, &other, &err), BO_EIO);
    assert_null(other);
    assert_non_null(strstr(err.msg, listen));

    static const char *const bad[] = {"localhost:80",  "127.0.0.1",  "[::1]80", "::1:80",
                                      "1.2.3.4:70000", "1.2.3.4:8x", "[::1]:",  ":80",
                                      "[nonsense]:80", "1.2.3:80",   "[::1:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg.listen = bad[i];
        if (bo_http_start(&fx->loop, &cfg, &other, &err) != BO_EINVAL) {
            fail_msg("'%s' accepted", bad[i]);
        }
        assert_non_null(strstr(err.msg, bad[i]));
    }
    assert_null(other);

    /* The ephemeral port serves. */
    struct creq r;
    creq_init(&r, fx, "GET", "/echo");
    run_requests(fx, &r, 1);
    assert_ok(&r, 200);
    creq_release(&r);
    finish(fx);
}

static bool have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0) {
        return false;
    }
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static void ipv6_loopback(void **state)
{
    struct fx *fx = *state;
    if (!have_ipv6_loopback()) {
        finish(fx);
        skip();
    }
    fx_start(fx, "[::1]:0", 0);
    struct creq r;
    creq_init(&r, fx, "GET", "/echo?a=6");
    snprintf(r.url, sizeof(r.url), "http://[::1]:%u/echo?a=6", (unsigned)fx->port);
    run_requests(fx, &r, 1);
    assert_ok(&r, 200);
    assert_body(&r, "GET /echo a=6 b=- flag=- x-test=yes body=");
    creq_release(&r);
    finish(fx);
}

static void redirect_with_location(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, "127.0.0.1:0", 0);
    struct creq r;
    creq_init(&r, fx, "POST", "/redirect");
    r.body = "{}";
    r.body_len = 2;
    run_requests(fx, &r, 1);
    assert_ok(&r, 307);
    assert_string_equal(r.location, "http://10.0.0.2:8081/api?x=1");
    assert_body(&r, "to the leader");
    creq_release(&r);
    finish(fx);
}

static void close_answers_pending_503(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, "127.0.0.1:0", 0);
    struct creq r[2];
    creq_init(&r[0], fx, "GET", "/pending?id=1");
    creq_init(&r[1], fx, "GET", "/pending?id=2");
    start_job(fx, r, 2);
    RUN_UNTIL(fx, fx->n_held == 2);
    assert_int_equal(bo_http_inflight(fx->srv), 2);

    fx->close_started = true;
    bo_http_close(fx->srv, on_closed);
    assert_int_equal(bo_http_inflight(fx->srv), 0);
    /* One owner answers at once, before the 503 has gone out: discarded. */
    assert_string_equal(bo_http_path(fx->held[0]), "/pending");
    respond_text(fx->held[0], 200, "too late");
    wait_job(fx);
    for (size_t i = 0; i < 2; i++) {
        assert_ok(&r[i], 503);
        assert_string_equal(r[i].content_type, "application/json");
        assert_body(&r[i], SHUTDOWN_503);
        creq_release(&r[i]);
    }
    RUN_UNTIL(fx, fx->closed);

    /* The other answers after the close: the pointer is still valid, the
     * connection gone, the answer discarded. */
    struct bo_http_req *held = fx->held[1];
    assert_ptr_equal(bo_http_req_get_data(held), fx);
    assert_string_equal(bo_http_path(held), "");
    assert_null(bo_http_query(held, "id"));
    respond_text(held, 200, "too late");

    /* Nothing listens any more. */
    struct creq again;
    creq_init(&again, fx, "GET", "/echo");
    run_requests(fx, &again, 1);
    assert_int_equal(again.rc, CURLE_COULDNT_CONNECT);
    assert_int_equal(fx->handler_calls, 2);
    creq_release(&again);
    finish(fx);
}

static void close_leaves_held_request_to_free(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, "127.0.0.1:0", 0);
    struct creq r;
    creq_init(&r, fx, "GET", "/pending");
    start_job(fx, &r, 1);
    RUN_UNTIL(fx, fx->n_held == 1);
    fx->close_started = true;
    bo_http_close(fx->srv, on_closed);
    wait_job(fx);
    assert_ok(&r, 503);
    creq_release(&r);
    /* The owner never answers: bo_http_free frees the request (ASan checks). */
    finish(fx);
}

static void close_from_handler(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, "127.0.0.1:0", 0);
    struct creq r;
    creq_init(&r, fx, "POST", "/shutdown");
    r.body = "now";
    r.body_len = 3;
    run_requests(fx, &r, 1);
    assert_ok(&r, 200);
    assert_int_equal(r.out.len, BIG_ANSWER);
    assert_int_equal(r.out.data[BIG_ANSWER - 1], 'b');
    creq_release(&r);
    RUN_UNTIL(fx, fx->closed);
    finish(fx);
}

static void client_gone_before_answer(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, "127.0.0.1:0", 0);
    struct creq r;
    creq_init(&r, fx, "GET", "/gone");
    r.raw = "GET /gone HTTP/1.1\r\nHost: x\r\n\r\n";
    r.raw_close_early = true;
    start_job(fx, &r, 1);
    RUN_UNTIL(fx, fx->n_held == 1);
    wait_job(fx); /* the client has closed its socket */
    assert_int_equal(bo_http_inflight(fx->srv), 1);
    respond_text(fx->held[0], 200, "nobody listens");
    fx->n_held = 0;
    assert_int_equal(bo_http_inflight(fx->srv), 0);
    creq_release(&r);

    /* The server carries on. */
    creq_init(&r, fx, "GET", "/echo");
    run_requests(fx, &r, 1);
    assert_ok(&r, 200);
    creq_release(&r);
    finish(fx);
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 + ru.ru_stime.tv_sec * 1e3 +
           ru.ru_stime.tv_usec / 1e3;
}

/* Connections over the limit wait in the backlog, without the loop
 * spinning on a listening socket it cannot accept from, and are served once
 * others close. */
static void connection_limit(void **state)
{
    struct fx *fx = *state;
    fx->max_connections = 2;
    fx_start(fx, "127.0.0.1:0", 0);
    fx->defer_when = MAX_HELD + 1; /* hold them all */
    struct creq r[3];
    for (size_t i = 0; i < 3; i++) {
        char target[64];
        snprintf(target, sizeof(target), "/defer?id=%zu", i);
        creq_init(&r[i], fx, "GET", target);
    }
    start_job(fx, r, 3);
    RUN_UNTIL(fx, fx->n_held == 2);
    double cpu0 = cpu_ms();
    run_for(fx, 300);
    assert_true(cpu_ms() - cpu0 < 100);
    assert_int_equal(fx->handler_calls, 2);
    assert_int_equal(fx->n_held, 2);

    fx->defer_when = 1; /* the third is answered 50 ms after it arrives */
    on_defer(&fx->defer);
    wait_job(fx);
    for (size_t i = 0; i < 3; i++) {
        char want[64];
        snprintf(want, sizeof(want), "deferred %zu", i);
        assert_ok(&r[i], 200);
        assert_body(&r[i], want);
        creq_release(&r[i]);
    }
    assert_int_equal(fx->handler_calls, 3);
    finish(fx);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(get_with_query_args, setup, teardown),
        cmocka_unit_test_setup_teardown(post_put_delete_head, setup, teardown),
        cmocka_unit_test_setup_teardown(deferred_from_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(many_concurrent_deferred, setup, teardown),
        cmocka_unit_test_setup_teardown(oversize_body_is_413, setup, teardown),
        cmocka_unit_test_setup_teardown(oversize_chunked_body_is_413, setup, teardown),
        cmocka_unit_test_setup_teardown(ephemeral_port_and_bad_addresses, setup, teardown),
        cmocka_unit_test_setup_teardown(ipv6_loopback, setup, teardown),
        cmocka_unit_test_setup_teardown(redirect_with_location, setup, teardown),
        cmocka_unit_test_setup_teardown(close_answers_pending_503, setup, teardown),
        cmocka_unit_test_setup_teardown(close_leaves_held_request_to_free, setup, teardown),
        cmocka_unit_test_setup_teardown(close_from_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(client_gone_before_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(connection_limit, setup, teardown),
    };
    int rv = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rv;
}
