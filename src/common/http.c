/*
 * http.c - libmicrohttpd inside a libuv loop.
 *
 * Happy path: the daemon runs with MHD_USE_EPOLL and no thread of its own.
 * A uv_poll watches its epoll descriptor and a uv_timer follows
 * MHD_get_timeout; both call drive(), which runs MHD_run once and re-arms the
 * timer. libmicrohttpd calls on_access several times per request: first with
 * the headers only (we allocate the bo_http_req and refuse a Content-Length
 * over the limit with 413 at once, before any body is read or "100 Continue"
 * sent), then once per body chunk (appended to req->body), then with no data
 * once the request is complete: the owner's handler runs. If the handler
 * answered, the response is queued on return; if not, the connection is
 * suspended. bo_http_respond from a later callback builds the response,
 * resumes the connection and kicks the timer (0 ms); libmicrohttpd then calls
 * on_access again, which queues the stored response. on_completed (request
 * finished, successfully or not) frees the request unless the owner still
 * holds it.
 *
 * Close: bo_http_close answers the requests the owner holds with 503 (the
 * owner's pointers stay valid, see http.h) and kicks. After the next MHD_run
 * the listening socket is taken away from libmicrohttpd (MHD_quiesce_daemon);
 * once no request is attached to a connection any more, or close_grace_ms
 * has passed, the uv_poll is stopped, the daemon stopped (no connection is
 * suspended by then: every answer resumed its connection and an MHD_run has
 * processed the resumption since, as libmicrohttpd requires), the old
 * listening socket closed, and both handles closed; the close callback fires
 * from the second handle's close callback.
 *
 * Failure modes: a body over max_body announced by Content-Length is answered
 * 413 without reading it; a chunked one is read and discarded up to its end,
 * then answered 413 (bounded by the client's patience and the connection
 * timeout). Out of memory while receiving answers 500; out of memory building
 * an answer drops the connection (on_access returns MHD_NO). A client gone
 * while its request is suspended is noticed only when the answer is sent;
 * libmicrohttpd then ends the request and on_completed frees it. Nothing here
 * runs MHD_run re-entrantly: an answer given inside a handler only sets
 * need_run, and drive() re-arms the timer at 0 ms when it is set.
 *
 * libmicrohttpd pitfalls handled here: MHD_resume_connection wakes nothing in
 * external polling mode (hence the kick); a resumption takes effect only in
 * the next MHD_run, and stopping the daemon with a connection still
 * suspended is undefined (hence need_run is checked before stopping); at the
 * connection limit the listening socket leaves the epoll set and comes back
 * only at the start of a later MHD_run (hence on_connection); libuv must stop
 * polling the epoll descriptor before MHD_stop_daemon closes it; the socket
 * MHD_quiesce_daemon returns is ours to close; MHD_OPTION_LISTENING_ADDRESS_
 * REUSE means SO_REUSEPORT and is not used.
 */
#include "common/http.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <utlist.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/mem.h"

#define DEFAULT_MAX_BODY           (1024 * 1024)
#define DEFAULT_MAX_CONNECTIONS    1024
#define DEFAULT_CONNECTION_TIMEOUT 30
#define DEFAULT_CLOSE_GRACE_MS     1000

struct bo_http_req {
    struct bo_http_server *srv;
    struct MHD_Connection *conn; /* NULL once libmicrohttpd is done with it */
    const char *method;          /* in conn's memory; "" once detached */
    const char *path;
    struct bo_buf body;
    struct bo_buf headers;     /* owner's response headers: "name\0value\0"... */
    struct MHD_Response *resp; /* built, waiting to be queued */
    unsigned status;
    void *data;       /* owner's */
    bool too_big;     /* body over the limit: discard, answer 413 */
    bool oom;         /* out of memory receiving the body: answer 500 */
    bool handed;      /* given to the handler */
    bool answered;    /* an answer was built (by the owner or the close) */
    bool owner_holds; /* handed and bo_http_respond not called yet */
    bool suspended;
    struct bo_http_req *prev, *next; /* srv->reqs */
};

struct bo_http_server {
    uv_loop_t *loop;
    struct bo_http_config cfg;
    struct MHD_Daemon *daemon; /* NULL once stopped */
    uv_poll_t poll;
    uv_timer_t timer;
    uint16_t port;
    size_t inflight;   /* handed, not answered */
    size_t n_attached; /* requests attached to a connection */
    unsigned n_conns;  /* open connections */
    struct bo_http_req *reqs;
    bool in_run;   /* inside MHD_run */
    bool need_run; /* a connection was resumed: run again */
    bool closing;
    bool quiesced;
    bool stopped;
    int listen_fd; /* ours after MHD_quiesce_daemon, -1 before */
    uint64_t close_deadline;
    int open_handles;
    bo_http_close_cb close_cb;
    char last_log[256]; /* libmicrohttpd's last message, for start errors */
};

static void drive(struct bo_http_server *srv);

/* ------------------------------------------------------------- helpers ---- */

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct bo_http_server *srv = cls;
    vsnprintf(srv->last_log, sizeof(srv->last_log), fmt, ap);
    size_t n = strlen(srv->last_log);
    while (n > 0 && (srv->last_log[n - 1] == '\n' || srv->last_log[n - 1] == '\r')) {
        srv->last_log[--n] = '\0';
    }
    bo_debug("http: libmicrohttpd: %s", srv->last_log);
}

static void on_timer(uv_timer_t *t)
{
    drive(t->data);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    (void)status; /* errors on an epoll descriptor: let MHD_run find out */
    (void)events;
    drive(p->data);
}

/* Make sure MHD_run runs soon (a connection was resumed). */
static void kick(struct bo_http_server *srv)
{
    srv->need_run = true;
    if (!srv->in_run && !srv->stopped) {
        uv_timer_start(&srv->timer, on_timer, 0, 0);
    }
}

static void free_req(struct bo_http_req *req)
{
    DL_DELETE(req->srv->reqs, req);
    if (req->resp != NULL) {
        MHD_destroy_response(req->resp);
    }
    bo_buf_release(&req->body);
    bo_buf_release(&req->headers);
    bo_free(req);
}

/* A JSON error answer; all our messages are plain ASCII without quotes. */
static struct MHD_Response *error_response(const char *code, const char *message)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"code\":\"%s\",\"message\":\"%s\"}", code, message);
    assert(n > 0 && (size_t)n < sizeof(body));
    struct MHD_Response *r =
        MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    if (r != NULL &&
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") != MHD_YES) {
        MHD_destroy_response(r);
        r = NULL;
    }
    return r;
}

static enum MHD_Result queue(struct bo_http_server *srv, struct MHD_Connection *conn,
                             unsigned status, struct MHD_Response *r)
{
    if (r == NULL) {
        return MHD_NO; /* out of memory: drop the connection */
    }
    if (srv->closing) {
        /* Best effort: without it the connection stays until the daemon stops. */
        (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    enum MHD_Result rv = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r); /* libmicrohttpd holds its own reference */
    return rv;
}

static enum MHD_Result queue_error(struct bo_http_server *srv, struct MHD_Connection *conn,
                                   unsigned status, const char *code, const char *message)
{
    return queue(srv, conn, status, error_response(code, message));
}

static void too_big_message(const struct bo_http_server *srv, char *out, size_t cap)
{
    snprintf(out, cap, "request body is larger than %zu bytes", srv->cfg.max_body);
}

/* Store the answer and, if the connection waits for it, resume it. */
static void answer(struct bo_http_req *req, unsigned status, struct MHD_Response *r)
{
    struct bo_http_server *srv = req->srv;
    assert(!req->answered);
    req->answered = true;
    req->resp = r; /* NULL when out of memory: on_access drops the connection */
    req->status = status;
    srv->inflight--;
    if (req->suspended) {
        req->suspended = false;
        MHD_resume_connection(req->conn);
        kick(srv);
    }
}

/* ------------------------------------------------------ libmicrohttpd ---- */

static enum MHD_Result first_call(struct bo_http_server *srv, struct MHD_Connection *conn,
                                  const char *url, const char *method, void **con_cls)
{
    struct bo_http_req *req = bo_calloc(1, sizeof(*req));
    if (req == NULL) {
        return MHD_NO;
    }
    req->srv = srv;
    req->conn = conn;
    req->method = method;
    req->path = url;
    DL_APPEND(srv->reqs, req);
    srv->n_attached++;
    *con_cls = req;

    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl != NULL) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (end != cl && errno == 0 && n > srv->cfg.max_body) {
            /* Answer before reading the body (and before "100 Continue"). */
            req->too_big = true;
            char msg[96];
            too_big_message(srv, msg, sizeof(msg));
            return queue_error(srv, conn, MHD_HTTP_CONTENT_TOO_LARGE, "TOO_BIG", msg);
        }
    }
    return MHD_YES;
}

static void receive(struct bo_http_req *req, const char *data, size_t len)
{
    if (req->too_big || req->oom) {
        return; /* discard */
    }
    if (len > req->srv->cfg.max_body - req->body.len) {
        req->too_big = true;
        bo_buf_release(&req->body);
        return;
    }
    if (bo_buf_append(&req->body, data, len) != BO_OK) {
        req->oom = true;
        bo_buf_release(&req->body);
    }
}

static enum MHD_Result dispatch(struct bo_http_server *srv, struct bo_http_req *req)
{
    struct MHD_Connection *conn = req->conn;
    if (req->too_big) {
        char msg[96];
        too_big_message(srv, msg, sizeof(msg));
        return queue_error(srv, conn, MHD_HTTP_CONTENT_TOO_LARGE, "TOO_BIG", msg);
    }
    if (req->oom || bo_buf_reserve(&req->body, 1) != BO_OK) {
        return queue_error(srv, conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "INTERNAL",
                           "out of memory receiving the request");
    }
    if (srv->closing) {
        return queue_error(srv, conn, MHD_HTTP_SERVICE_UNAVAILABLE, "SHUTDOWN",
                           "the server is shutting down");
    }
    req->body.data[req->body.len] = '\0';
    req->handed = true;
    req->owner_holds = true;
    srv->inflight++;
    srv->cfg.handler(req, srv->cfg.data);
    /* `req` is still ours: it is attached to `conn` until on_completed. */
    if (!req->answered) {
        req->suspended = true;
        MHD_suspend_connection(conn);
        return MHD_YES;
    }
    struct MHD_Response *r = req->resp;
    req->resp = NULL;
    return queue(srv, conn, req->status, r);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct bo_http_server *srv = cls;
    struct bo_http_req *req = *con_cls;
    if (req == NULL) {
        return first_call(srv, conn, url, method, con_cls);
    }
    if (*upload_data_size > 0) {
        receive(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!req->handed) {
        return dispatch(srv, req);
    }
    /* Called again after a resume: queue the stored answer. */
    assert(req->answered);
    struct MHD_Response *r = req->resp;
    req->resp = NULL;
    return queue(srv, conn, req->status, r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    struct bo_http_server *srv = cls;
    struct bo_http_req *req = *con_cls;
    if (req == NULL) {
        return;
    }
    *con_cls = NULL;
    req->conn = NULL;
    req->method = "";
    req->path = "";
    req->suspended = false;
    srv->n_attached--;
    if (req->resp != NULL) {
        MHD_destroy_response(req->resp);
        req->resp = NULL;
    }
    if (!req->owner_holds) {
        free_req(req);
    }
}

/* libmicrohttpd takes its listening socket out of the epoll set while at the
 * connection limit and puts it back only at the start of an MHD_run. After
 * the run in which a connection closed at the limit nothing else would wake
 * us, and clients waiting in the backlog would hang: run once more. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)conn;
    (void)socket_context;
    struct bo_http_server *srv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        srv->n_conns++;
    } else if (srv->n_conns-- >= srv->cfg.max_connections) {
        kick(srv);
    }
}

/* ---------------------------------------------------------------- loop ---- */

static void on_handle_closed(uv_handle_t *h)
{
    struct bo_http_server *srv = h->data;
    if (--srv->open_handles == 0 && srv->close_cb != NULL) {
        srv->close_cb(srv);
    }
}

/* After an MHD_run while closing; true once the daemon is stopped. */
static bool maybe_finish_close(struct bo_http_server *srv)
{
    if (!srv->quiesced) {
        srv->quiesced = true;
        MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
        srv->listen_fd = fd == MHD_INVALID_SOCKET ? -1 : fd;
    }
    if (srv->need_run) {
        return false; /* a resumed connection must be processed before stopping */
    }
    if (srv->n_attached > 0 && uv_now(srv->loop) < srv->close_deadline) {
        return false;
    }
    /* libuv must stop watching the epoll descriptor before it is closed. */
    uv_poll_stop(&srv->poll);
    uv_timer_stop(&srv->timer);
    srv->stopped = true;
    MHD_stop_daemon(srv->daemon); /* on_completed runs for attached requests */
    srv->daemon = NULL;
    if (srv->listen_fd >= 0) {
        close(srv->listen_fd);
        srv->listen_fd = -1;
    }
    srv->open_handles = 2;
    uv_close((uv_handle_t *)&srv->poll, on_handle_closed);
    uv_close((uv_handle_t *)&srv->timer, on_handle_closed);
    return true;
}

static void rearm(struct bo_http_server *srv)
{
    uint64_t ms;
    MHD_UNSIGNED_LONG_LONG mhd_ms;
    if (srv->need_run) {
        ms = 0;
    } else if (MHD_get_timeout(srv->daemon, &mhd_ms) == MHD_YES) {
        ms = (uint64_t)mhd_ms;
    } else {
        ms = UINT64_MAX;
    }
    if (srv->closing) {
        uint64_t now = uv_now(srv->loop);
        uint64_t left = srv->close_deadline > now ? srv->close_deadline - now : 0;
        ms = ms < left ? ms : left;
    }
    if (ms == UINT64_MAX) {
        uv_timer_stop(&srv->timer);
    } else {
        uv_timer_start(&srv->timer, on_timer, ms, 0);
    }
}

static void drive(struct bo_http_server *srv)
{
    if (srv->stopped) {
        return;
    }
    assert(!srv->in_run);
    srv->in_run = true;
    srv->need_run = false;
    (void)MHD_run(srv->daemon);
    srv->in_run = false;
    if (srv->closing && maybe_finish_close(srv)) {
        return;
    }
    rearm(srv);
}

/* -------------------------------------------------------------- public ---- */

void bo_http_config_init(struct bo_http_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_body = DEFAULT_MAX_BODY;
    cfg->max_connections = DEFAULT_MAX_CONNECTIONS;
    cfg->connection_timeout_s = DEFAULT_CONNECTION_TIMEOUT;
    cfg->close_grace_ms = DEFAULT_CLOSE_GRACE_MS;
}

/* "1.2.3.4:80" or "[::1]:80" into `ss`. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, bool *v6, struct bo_err *err)
{
    const char *host = s, *host_end, *colon;
    if (s[0] == '[') {
        host = s + 1;
        host_end = strchr(host, ']');
        if (host_end == NULL || host_end[1] != ':') {
            return bo_errf(err, BO_EINVAL, "listen address '%s': expected '[ipv6]:port'", s);
        }
        colon = host_end + 1;
        *v6 = true;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL) {
            return bo_errf(err, BO_EINVAL,
                           "listen address '%s': expected 'ipv4:port' or '[ipv6]:port'", s);
        }
        host_end = colon;
        *v6 = false;
    }
    char ip[INET6_ADDRSTRLEN];
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0 || hlen >= sizeof(ip)) {
        return bo_errf(err, BO_EINVAL, "listen address '%s': bad host", s);
    }
    memcpy(ip, host, hlen);
    ip[hlen] = '\0';
    const char *p = colon + 1;
    unsigned long port = 0;
    if (*p == '\0' || strlen(p) > 5) {
        return bo_errf(err, BO_EINVAL, "listen address '%s': bad port", s);
    }
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return bo_errf(err, BO_EINVAL, "listen address '%s': bad port", s);
        }
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535) {
        return bo_errf(err, BO_EINVAL, "listen address '%s': bad port", s);
    }
    memset(ss, 0, sizeof(*ss));
    if (*v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, ip, &a->sin6_addr) != 1) {
            return bo_errf(err, BO_EINVAL, "listen address '%s': bad IPv6 address", s);
        }
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, ip, &a->sin_addr) != 1) {
            return bo_errf(err, BO_EINVAL, "listen address '%s': bad IPv4 address", s);
        }
    }
    return BO_OK;
}

int bo_http_start(uv_loop_t *loop, const struct bo_http_config *cfg, struct bo_http_server **out,
                  struct bo_err *err)
{
    if (cfg->listen == NULL || cfg->handler == NULL) {
        return bo_errf(err, BO_EINVAL, "http: a listen address and a handler are needed");
    }
    if (cfg->max_body == 0 || cfg->max_connections == 0) {
        return bo_errf(err, BO_EINVAL, "http: max_body and max_connections must be positive");
    }
    struct sockaddr_storage ss;
    bool v6 = false;
    int rv = parse_listen(cfg->listen, &ss, &v6, err);
    if (rv != BO_OK) {
        return bo_err_wrapf(err, rv, "http");
    }
    struct bo_http_server *srv = bo_calloc(1, sizeof(*srv));
    if (srv == NULL) {
        return bo_errf(err, BO_ENOMEM, "http: out of memory");
    }
    srv->loop = loop;
    srv->cfg = *cfg;
    srv->cfg.listen = NULL; /* not kept */
    srv->listen_fd = -1;

    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (v6) {
        flags |= MHD_USE_IPv6;
    }
    uint16_t want_port = v6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                            : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    /* Not MHD_OPTION_LISTENING_ADDRESS_REUSE: it means SO_REUSEPORT, and a
     * second scheduler on the same port would then share it silently.
     * libmicrohttpd sets SO_REUSEADDR by itself, so restarts bind at once. */
    srv->daemon = MHD_start_daemon(
        flags, want_port, NULL, NULL, on_access, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        cfg->connection_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
        srv, MHD_OPTION_END);
    if (srv->daemon == NULL) {
        rv = bo_errf(err, BO_EIO, "http: listen on '%s': %s", cfg->listen,
                     srv->last_log[0] != '\0' ? srv->last_log : "cannot start libmicrohttpd");
        goto err_after_alloc;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *pinfo = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || pinfo == NULL) {
        rv = bo_errf(err, BO_EINTERNAL, "http: libmicrohttpd without epoll or port information");
        goto err_after_daemon;
    }
    srv->port = pinfo->port;
    rv = uv_poll_init(loop, &srv->poll, info->epoll_fd);
    if (rv != 0) {
        rv = bo_errf(err, BO_EINTERNAL, "http: watch epoll descriptor: %s", uv_strerror(rv));
        goto err_after_daemon;
    }
    srv->poll.data = srv;
    uv_timer_init(loop, &srv->timer); /* cannot fail */
    srv->timer.data = srv;
    rv = uv_poll_start(&srv->poll, UV_READABLE, on_poll);
    assert(rv == 0); /* only fails for a descriptor watched twice, checked by init */
    (void)rv;
    rearm(srv);
    *out = srv;
    return BO_OK;

err_after_daemon:
    MHD_stop_daemon(srv->daemon);
err_after_alloc:
    bo_free(srv);
    return rv;
}

uint16_t bo_http_port(const struct bo_http_server *srv)
{
    return srv->port;
}

void *bo_http_data(const struct bo_http_server *srv)
{
    return srv->cfg.data;
}

size_t bo_http_inflight(const struct bo_http_server *srv)
{
    return srv->inflight;
}

void bo_http_close(struct bo_http_server *srv, bo_http_close_cb cb)
{
    assert(!srv->closing);
    srv->closing = true;
    srv->close_cb = cb;
    srv->close_deadline = uv_now(srv->loop) + srv->cfg.close_grace_ms;
    struct bo_http_req *req, *tmp;
    DL_FOREACH_SAFE(srv->reqs, req, tmp)
    {
        if (req->owner_holds && !req->answered) {
            answer(req, MHD_HTTP_SERVICE_UNAVAILABLE,
                   error_response("SHUTDOWN", "the server is shutting down"));
        }
    }
    kick(srv);
}

void bo_http_free(struct bo_http_server *srv)
{
    if (srv == NULL) {
        return;
    }
    assert(srv->stopped && srv->open_handles == 0);
    while (srv->reqs != NULL) {
        free_req(srv->reqs);
    }
    bo_free(srv);
}

/* ------------------------------------------------------------- requests ---- */

struct bo_http_server *bo_http_req_server(const struct bo_http_req *req)
{
    return req->srv;
}

const char *bo_http_method(const struct bo_http_req *req)
{
    return req->method;
}

const char *bo_http_path(const struct bo_http_req *req)
{
    return req->path;
}

const char *bo_http_query(const struct bo_http_req *req, const char *key)
{
    if (req->conn == NULL) {
        return NULL;
    }
    const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
    if (v == NULL && MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, key,
                                                   strlen(key), NULL, NULL) == MHD_YES) {
        return ""; /* "?key" without a value */
    }
    return v;
}

const char *bo_http_header(const struct bo_http_req *req, const char *name)
{
    if (req->conn == NULL) {
        return NULL;
    }
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *bo_http_body(const struct bo_http_req *req, size_t *len)
{
    if (len != NULL) {
        *len = req->body.len;
    }
    return req->body.data != NULL ? (const char *)req->body.data : "";
}

void bo_http_req_set_data(struct bo_http_req *req, void *data)
{
    req->data = data;
}

void *bo_http_req_get_data(const struct bo_http_req *req)
{
    return req->data;
}

static bool is_token(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (*s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && strchr(extra, c) == NULL) {
            return false;
        }
    }
    return true;
}

static bool is_field_value(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return false;
        }
    }
    return true;
}

int bo_http_set_header(struct bo_http_req *req, const char *name, const char *value)
{
    assert(req->owner_holds);
    static const char *const reserved[] = {"Content-Length", "Transfer-Encoding", "Connection",
                                           "Content-Type"};
    if (!is_token(name) || !is_field_value(value)) {
        return BO_EINVAL;
    }
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if (strcasecmp(name, reserved[i]) == 0) {
            return BO_EINVAL;
        }
    }
    size_t before = req->headers.len;
    if (bo_buf_append(&req->headers, name, strlen(name) + 1) != BO_OK ||
        bo_buf_append(&req->headers, value, strlen(value) + 1) != BO_OK) {
        req->headers.len = before;
        return BO_ENOMEM;
    }
    return BO_OK;
}

static struct MHD_Response *build_response(struct bo_http_req *req, const char *content_type,
                                           const void *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)(len > 0 ? body : ""), MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return NULL;
    }
    if (content_type != NULL &&
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES) {
        goto err_after_create;
    }
    const char *p = (const char *)req->headers.data;
    const char *end = p + req->headers.len;
    while (p < end) {
        const char *name = p;
        const char *value = name + strlen(name) + 1;
        p = value + strlen(value) + 1;
        if (MHD_add_response_header(r, name, value) != MHD_YES) {
            goto err_after_create;
        }
    }
    return r;

err_after_create:
    MHD_destroy_response(r);
    return NULL;
}

void bo_http_respond(struct bo_http_req *req, unsigned status, const char *content_type,
                     const void *body, size_t len)
{
    assert(req->owner_holds); /* exactly once */
    assert(len == 0 || body != NULL);
    req->owner_holds = false;
    if (req->conn == NULL) {
        /* libmicrohttpd let go of it (answered by bo_http_close and sent or
         * dropped): discard the answer. */
        if (!req->answered) {
            req->srv->inflight--;
        }
        free_req(req);
        return;
    }
    if (req->answered) {
        return; /* answered by bo_http_close; on_completed frees it */
    }
    answer(req, status, build_response(req, content_type, body, len));
    bo_buf_release(&req->headers);
}
