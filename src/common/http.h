/*
 * http.h - an HTTP/1.1 server (libmicrohttpd) driven by a libuv loop.
 *
 * libmicrohttpd runs without threads of its own: its epoll descriptor is
 * watched by a uv_poll and its timeouts by a uv_timer, so the one handler
 * callback runs on the loop thread, like every other callback of the owner.
 *
 * A request reaches the handler once, after its whole body is in. The
 * handler answers it with bo_http_respond exactly once: either before it
 * returns, or later from any other callback on the loop thread (after a log
 * commit, say). Until then the connection is suspended and costs nothing but
 * its socket and its memory.
 *
 * Request pointer validity: a `struct bo_http_req *` handed to the handler
 * stays valid until bo_http_respond is called on it, or until bo_http_free,
 * whichever comes first. In particular:
 *   - A client that disconnects while its request waits for an answer is not
 *     noticed (its connection is suspended); the owner responds as usual and
 *     the answer is discarded.
 *   - bo_http_close answers every request still waiting with 503 SHUTDOWN,
 *     but the owner's pointers stay valid: a later bo_http_respond on them is
 *     accepted and discarded. Once the server has let go of such a request's
 *     connection its method and path read "" and query and header lookups
 *     return NULL (the body and the owner's data stay). The owner must not
 *     touch a request after bo_http_free.
 *
 * Errors produced by the server itself are JSON, as all of the API's:
 *   413 {"code":"TOO_BIG","message":...}   body over `max_body` (the handler
 *                                           never sees the request)
 *   503 {"code":"SHUTDOWN","message":...}  unanswered at close time
 *   500 {"code":"INTERNAL","message":...}  out of memory receiving a body
 * If building an answer runs out of memory, the connection is dropped.
 *
 * Process: libmicrohttpd sends with MSG_NOSIGNAL, but the owner should ignore
 * SIGPIPE anyway (storage.h).
 *
 * Threads: every function here, and the handler, run on the loop thread.
 * Lifecycle: bo_http_start -> ... -> bo_http_close(cb) -> bo_http_free after
 * (or inside) cb.
 */
#ifndef BO_HTTP_H
#define BO_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"

struct bo_http_server;
struct bo_http_req;

/* Called once per request, on the loop thread, with the body complete. */
typedef void (*bo_http_handler)(struct bo_http_req *req, void *data);

struct bo_http_config {
    /* "127.0.0.1:8081", "0.0.0.0:80", "[::1]:0", "[::]:8081": a numeric
     * address (no name lookup) and a port; port 0 picks an ephemeral one. */
    const char *listen;
    size_t max_body; /* request body limit in bytes (default 1 MiB) */
    /* Concurrent connections (default 1024); more wait in the listen backlog. */
    unsigned max_connections;
    unsigned connection_timeout_s; /* idle connection timeout (default 30 s; 0 = never) */
    /* How long bo_http_close waits for answers still being sent before it
     * drops their connections (default 1000 ms). */
    unsigned close_grace_ms;
    bo_http_handler handler; /* required */
    void *data;              /* passed to the handler */
};

/* Fill `cfg` with the defaults above (listen and handler left NULL). */
void bo_http_config_init(struct bo_http_config *cfg);

/* Bind, listen and start serving on `loop`. The configuration is copied. On
 * error nothing is left behind and *out is untouched. */
int bo_http_start(uv_loop_t *loop, const struct bo_http_config *cfg, struct bo_http_server **out,
                  struct bo_err *err);

/* The bound port (the ephemeral one when the configuration said 0). */
uint16_t bo_http_port(const struct bo_http_server *srv);

/* The configuration's `data` (for the close callback). */
void *bo_http_data(const struct bo_http_server *srv);

/* Requests handed to the handler and not answered yet. */
size_t bo_http_inflight(const struct bo_http_server *srv);

typedef void (*bo_http_close_cb)(struct bo_http_server *srv);

/* Stop accepting connections, answer requests still waiting with 503, give
 * the answers being sent up to `close_grace_ms`, stop libmicrohttpd and close
 * the loop handles; `cb` fires (never from inside this call) when all is
 * closed. Requests whose body is still arriving are answered 503 if it
 * completes in time, dropped otherwise. May be called from the handler. Call
 * once. */
void bo_http_close(struct bo_http_server *srv, bo_http_close_cb cb);

/* Free the server once its close callback has fired. Requests still held by
 * the owner (answered by the close) are freed too. */
void bo_http_free(struct bo_http_server *srv);

/* ---- requests (valid as described at the top) ---- */

struct bo_http_server *bo_http_req_server(const struct bo_http_req *req);

/* "GET", "HEAD", "POST", ... as sent. */
const char *bo_http_method(const struct bo_http_req *req);
/* The path, percent-decoded, without the query string. */
const char *bo_http_path(const struct bo_http_req *req);
/* A query argument, decoded; NULL if absent, "" for a key without a value
 * ("?force"). With repeated keys the first wins. */
const char *bo_http_query(const struct bo_http_req *req, const char *key);
/* A request header, looked up case-insensitively; NULL if absent. */
const char *bo_http_header(const struct bo_http_req *req, const char *name);
/* The body and its length; NUL-terminated (the NUL is not counted), never
 * NULL ("" when there is no body). */
const char *bo_http_body(const struct bo_http_req *req, size_t *len);

/* One pointer for the owner, NULL until set. */
void bo_http_req_set_data(struct bo_http_req *req, void *data);
void *bo_http_req_get_data(const struct bo_http_req *req);

/* Add a response header (both strings are copied); any number of times,
 * before bo_http_respond. Returns BO_EINVAL for a name that is not an HTTP
 * token, a value with control characters (CR, LF, ...), or a header the
 * server sets itself (Content-Length, Transfer-Encoding, Connection,
 * Content-Type); BO_ENOMEM when out of memory. A failed call adds nothing and
 * the request can still be answered. */
int bo_http_set_header(struct bo_http_req *req, const char *name, const char *value);

/* Answer the request: `status`, a Content-Type (NULL for none) and `len`
 * bytes of `body` (copied; NULL if len is 0). Exactly once per request. The
 * request pointer is invalid once this returns. Never fails from the owner's
 * point of view: a client gone or a server closed discards the answer, and
 * running out of memory drops the connection. For HEAD the body is not sent
 * but its length is announced. */
void bo_http_respond(struct bo_http_req *req, unsigned status, const char *content_type,
                     const void *body, size_t len);

#endif
