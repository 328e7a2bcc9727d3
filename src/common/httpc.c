/*
 * httpc.c - libcurl's multi interface on a libuv loop.
 *
 * Happy path: bo_httpc_request makes an easy handle and adds it to the
 * multi handle. libcurl then tells us, through two callbacks, what to wait
 * for: the socket callback asks to watch a socket for reading and/or
 * writing (one uv_poll per socket, its context kept with
 * curl_multi_assign), the timer callback asks for a wake-up (one uv_timer).
 * Either event calls curl_multi_socket_action, after which finished
 * transfers are collected from curl_multi_info_read and put on the done
 * list. The done list is drained from a zero-delay timer, so a callback
 * never fires from inside a function the owner called (request, cancel,
 * close), and the owner may submit or cancel from inside a callback.
 *
 * Failure modes: a transfer error becomes result BO_EIO (BO_EBUSY for a
 * timeout, BO_ETOOBIG when the body would pass max_response, which aborts
 * the transfer from the write callback). A cancelled call is removed from
 * the multi handle at once and completes with BO_ECANCELED on the next
 * drain. Closing cancels everything pending, delivers those callbacks,
 * then closes every poll handle and both timers; the close callback fires
 * after the last handle's close callback.
 *
 * Poll handles outlive nothing: when libcurl says CURL_POLL_REMOVE the
 * handle is closed and its context freed in the close callback. libcurl may
 * reuse the descriptor at once; libuv allows a new uv_poll on it because
 * closing a poll stops its watcher immediately.
 */
#include "common/httpc.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/mem.h"

#define HTTPC_DEFAULT_TIMEOUT_MS   30000u
#define HTTPC_DEFAULT_MAX_RESPONSE (16u << 20)

struct httpc_sock {
    uv_poll_t poll;
    struct bo_httpc *c;
    curl_socket_t fd;
    struct httpc_sock *prev, *next; /* every live poll, for close */
};

struct bo_httpc_call {
    struct bo_httpc *c;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    struct bo_buf resp;
    size_t max_response;
    bool too_big;
    bool done;
    int result;
    unsigned status;
    char *location;
    char errbuf[CURL_ERROR_SIZE];
    char error[CURL_ERROR_SIZE + 64];
    uint64_t start_ns;
    uint64_t elapsed_us;
    bo_httpc_cb cb;
    void *data;
    struct bo_httpc_call *prev, *next; /* pending or done list */
};

struct bo_httpc {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer; /* libcurl's timeout */
    uv_timer_t drain; /* delivers completed calls */
    struct bo_httpc_call *pending;
    struct bo_httpc_call *done_head, *done_tail;
    size_t npending; /* submitted, callback not fired */
    struct httpc_sock *socks;
    bool closing;
    unsigned nsocks;      /* poll handles not closed yet */
    unsigned open_timers; /* 2 until closed */
    bo_httpc_close_cb close_cb;
    void *close_data;
};

int bo_httpc_global_init(struct bo_err *err)
{
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK)
        return bo_errf(err, BO_EINTERNAL, "curl_global_init: %s", curl_easy_strerror(rc));
    return BO_OK;
}

/* ---- lists ---- */

static void pending_remove(struct bo_httpc *c, struct bo_httpc_call *call)
{
    if (call->prev)
        call->prev->next = call->next;
    else
        c->pending = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
}

static void drain_cb(uv_timer_t *t);

/* Detach `call` from libcurl and queue its callback. */
static void finish(struct bo_httpc_call *call, int result)
{
    struct bo_httpc *c = call->c;
    if (call->done)
        return;
    call->done = true;
    call->result = result;
    call->elapsed_us = (uv_hrtime() - call->start_ns) / 1000;
    if (call->easy) {
        if (result == BO_OK) {
            long code = 0;
            char *loc = NULL;
            curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &code);
            call->status = (unsigned)code;
            if (curl_easy_getinfo(call->easy, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc)
                call->location = bo_strdup(loc);
        }
        curl_multi_remove_handle(c->multi, call->easy);
        curl_easy_cleanup(call->easy);
        call->easy = NULL;
    }
    pending_remove(c, call);
    call->next = NULL;
    if (c->done_tail)
        call->prev = c->done_tail, c->done_tail->next = call;
    else
        c->done_head = call;
    c->done_tail = call;
    uv_timer_start(&c->drain, drain_cb, 0, 0);
}

static void call_free(struct bo_httpc_call *call)
{
    curl_slist_free_all(call->headers);
    bo_free(call->body);
    bo_free(call->location);
    bo_buf_release(&call->resp);
    bo_free(call);
}

static void close_handles(struct bo_httpc *c);

static void drain_cb(uv_timer_t *t)
{
    struct bo_httpc *c = t->data;
    /* Take the whole list first: callbacks may submit, cancel or close. */
    struct bo_httpc_call *call = c->done_head;
    c->done_head = c->done_tail = NULL;
    while (call) {
        struct bo_httpc_call *next = call->next;
        struct bo_httpc_resp r = {
            .result = call->result,
            .status = call->status,
            .body = "",
            .location = call->location,
            .elapsed_us = call->elapsed_us,
        };
        if (call->result == BO_OK) {
            if (bo_buf_reserve(&call->resp, 1) == BO_OK) {
                call->resp.data[call->resp.len] = '\0';
                r.body = (const char *)call->resp.data;
                r.body_len = call->resp.len;
            } else {
                r.result = BO_ENOMEM;
                r.status = 0;
                r.error = "out of memory";
            }
        } else {
            r.error = call->error[0] ? call->error : bo_strerror(call->result);
        }
        c->npending--;
        call->cb(&r, call->data);
        call_free(call);
        call = next;
    }
    if (c->closing && c->npending == 0 && c->nsocks == 0)
        close_handles(c);
}

/* Collect finished transfers. */
static void check_info(struct bo_httpc *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct bo_httpc_call *call = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&call);
        CURLcode rc = msg->data.result;
        int result = BO_OK;
        if (rc != CURLE_OK) {
            if (call->too_big) {
                result = BO_ETOOBIG;
                snprintf(call->error, sizeof(call->error), "answer over %zu bytes",
                         call->max_response);
            } else {
                result = rc == CURLE_OPERATION_TIMEDOUT ? BO_EBUSY : BO_EIO;
                snprintf(call->error, sizeof(call->error), "%s%s%s", curl_easy_strerror(rc),
                         call->errbuf[0] ? ": " : "", call->errbuf);
            }
        }
        finish(call, result);
    }
}

/* ---- libcurl's callbacks ---- */

static void sock_closed(uv_handle_t *h)
{
    struct httpc_sock *s = h->data;
    struct bo_httpc *c = s->c;
    bo_free(s);
    c->nsocks--;
    if (c->closing && c->nsocks == 0 && c->npending == 0)
        close_handles(c);
}

static void sock_release(struct bo_httpc *c, struct httpc_sock *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct httpc_sock *s = p->data;
    struct bo_httpc *c = s->c;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_info(c);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct bo_httpc *c = userp;
    struct httpc_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_release(c, s);
        }
        return 0;
    }
    if (!s) {
        s = bo_calloc(1, sizeof(*s));
        if (!s)
            return -1;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            bo_free(s);
            return -1;
        }
        s->c = c;
        s->fd = fd;
        s->poll.data = s;
        s->next = c->socks;
        if (c->socks)
            c->socks->prev = s;
        c->socks = s;
        c->nsocks++;
        curl_multi_assign(c->multi, fd, s);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    return uv_poll_start(&s->poll, events, on_poll) == 0 ? 0 : -1;
}

static void on_timer(uv_timer_t *t)
{
    struct bo_httpc *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_info(c);
}

static int on_timeout(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct bo_httpc *c = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct bo_httpc_call *call = userdata;
    size_t n = size * nmemb;
    if (call->resp.len + n > call->max_response) {
        call->too_big = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (bo_buf_append(&call->resp, ptr, n) != BO_OK)
        return 0;
    return n;
}

/* ---- public ---- */

int bo_httpc_new(uv_loop_t *loop, struct bo_httpc **out, struct bo_err *err)
{
    struct bo_httpc *c = bo_calloc(1, sizeof(*c));
    if (!c)
        return bo_errf(err, BO_ENOMEM, "httpc: out of memory");
    c->loop = loop;
    c->multi = curl_multi_init();
    if (!c->multi) {
        bo_free(c);
        return bo_errf(err, BO_ENOMEM, "httpc: curl_multi_init failed");
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timeout);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    uv_timer_init(loop, &c->timer);
    uv_timer_init(loop, &c->drain);
    c->timer.data = c;
    c->drain.data = c;
    c->open_timers = 2;
    *out = c;
    return BO_OK;
}

int bo_httpc_request(struct bo_httpc *c, const struct bo_httpc_opts *opts, bo_httpc_cb cb,
                     void *data, struct bo_httpc_call **out, struct bo_err *err)
{
    if (c->closing)
        return bo_errf(err, BO_ESHUTDOWN, "httpc: client is closing");
    if (!opts->url)
        return bo_errf(err, BO_EINVAL, "httpc: no url");
    struct bo_httpc_call *call = bo_calloc(1, sizeof(*call));
    if (!call)
        return bo_errf(err, BO_ENOMEM, "httpc: out of memory");
    call->c = c;
    call->cb = cb;
    call->data = data;
    call->max_response = opts->max_response ? opts->max_response : HTTPC_DEFAULT_MAX_RESPONSE;
    call->easy = curl_easy_init();
    if (!call->easy)
        goto err_nomem;
    const char *method = opts->method ? opts->method : "GET";
    CURL *e = call->easy;
    curl_easy_setopt(e, CURLOPT_URL, opts->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)call);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                     (long)(opts->timeout_ms ? opts->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS));
    /* Loopback and cluster-internal peers: no proxy from the environment. */
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    if (strcmp(method, "GET") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (opts->body_len || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        call->body = bo_malloc(opts->body_len + 1);
        if (!call->body)
            goto err_nomem;
        if (opts->body_len)
            memcpy(call->body, opts->body, opts->body_len);
        call->body[opts->body_len] = '\0';
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, call->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)opts->body_len);
        char ct[256];
        snprintf(ct, sizeof(ct), "Content-Type: %s",
                 opts->content_type ? opts->content_type : "application/json");
        struct curl_slist *h = curl_slist_append(NULL, ct);
        if (!h)
            goto err_nomem;
        /* No "100 continue" round trip for small bodies. */
        struct curl_slist *h2 = curl_slist_append(h, "Expect:");
        if (!h2) {
            curl_slist_free_all(h);
            goto err_nomem;
        }
        call->headers = h2;
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->headers);
    }
    call->start_ns = uv_hrtime();
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        curl_easy_cleanup(call->easy);
        call_free(call);
        return bo_errf(err, BO_EINTERNAL, "httpc: curl_multi_add_handle failed");
    }
    call->next = c->pending;
    if (c->pending)
        c->pending->prev = call;
    c->pending = call;
    c->npending++;
    if (out)
        *out = call;
    return BO_OK;

err_nomem:
    if (call->easy)
        curl_easy_cleanup(call->easy);
    call_free(call);
    return bo_errf(err, BO_ENOMEM, "httpc: out of memory");
}

void bo_httpc_cancel(struct bo_httpc_call *call)
{
    if (!call->done)
        finish(call, BO_ECANCELED);
}

size_t bo_httpc_pending(const struct bo_httpc *c)
{
    return c->npending;
}

static void handle_closed(uv_handle_t *h)
{
    struct bo_httpc *c = h->data;
    c->open_timers--;
    if (c->open_timers == 0 && c->close_cb)
        c->close_cb(c, c->close_data);
}

/* Last step of closing: every call delivered, every poll closed. */
static void close_handles(struct bo_httpc *c)
{
    if (uv_is_closing((uv_handle_t *)&c->timer))
        return;
    uv_close((uv_handle_t *)&c->timer, handle_closed);
    uv_close((uv_handle_t *)&c->drain, handle_closed);
}

void bo_httpc_close(struct bo_httpc *c, bo_httpc_close_cb cb, void *data)
{
    c->closing = true;
    c->close_cb = cb;
    c->close_data = data;
    while (c->pending)
        finish(c->pending, BO_ECANCELED);
    /* Closes cached connections; their sockets come back as POLL_REMOVE. */
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->socks)
        sock_release(c, c->socks);
    /* The drain timer delivers the cancelled callbacks, then closes. */
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->drain, drain_cb, 0, 0);
}

void bo_httpc_free(struct bo_httpc *c)
{
    bo_free(c);
}
