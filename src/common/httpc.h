/*
 * httpc.h - an HTTP client (libcurl's multi interface) driven by a libuv loop.
 *
 * The client owns one curl multi handle. Its sockets are watched with
 * uv_poll handles and its timeout with a uv_timer, so requests progress
 * while the loop runs and every callback fires on the loop thread. Used by
 * the agent (to talk to the scheduler) and by the executor (health checks,
 * lifecycle endpoints).
 *
 * Request contract (libuv's): bo_httpc_request either fails, and then the
 * callback never fires, or succeeds, and then the callback fires exactly
 * once, never from inside bo_httpc_request: with the answer, with a
 * transport error (status 0), or with BO_ECANCELED when the request was
 * cancelled or the client closed first.
 *
 * Redirects are not followed: a 3xx answer is handed over with its Location
 * header, because the agent must learn the leader's URL from it.
 *
 * Threads: every function and callback runs on the loop thread.
 * Lifecycle: bo_httpc_new -> requests -> bo_httpc_close(cb) -> bo_httpc_free
 * in or after cb. bo_httpc_global_init once per process before threads
 * start (curl_global_init is not thread-safe).
 */
#ifndef BO_HTTPC_H
#define BO_HTTPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"

struct bo_httpc;
struct bo_httpc_call;

struct bo_httpc_opts {
    const char *method;       /* "GET" (default when NULL), "POST", ... */
    const char *url;          /* required: "http://127.0.0.1:8081/agent/v1/poll" */
    const void *body;         /* copied; may be NULL */
    size_t body_len;          /* bytes of body */
    const char *content_type; /* sent with a body; default "application/json" */
    unsigned timeout_ms;      /* whole request, connect included; 0 = 30 s */
    size_t max_response;      /* answer bodies over this fail (status 0); 0 = 16 MiB */
};

struct bo_httpc_resp {
    /* BO_OK: an answer arrived (any HTTP status). Otherwise no answer:
     * BO_EIO (connection refused, reset, name or protocol error), BO_EBUSY
     * (timed out), BO_ETOOBIG (body over max_response), BO_ECANCELED. */
    int result;
    unsigned status;      /* HTTP status when result is BO_OK, 0 otherwise */
    const char *body;     /* NUL-terminated; "" when empty; valid during cb */
    size_t body_len;      /* without the NUL */
    const char *location; /* the Location header of the answer, or NULL */
    const char *error;    /* a readable reason when result is not BO_OK */
    uint64_t elapsed_us;  /* from submit to completion */
};

typedef void (*bo_httpc_cb)(const struct bo_httpc_resp *resp, void *data);

/* Once per process, before any thread starts. */
int bo_httpc_global_init(struct bo_err *err);

int bo_httpc_new(uv_loop_t *loop, struct bo_httpc **out, struct bo_err *err);

/* Submit a request; see the contract at the top. `*call` (may be NULL)
 * receives a handle usable with bo_httpc_cancel until the callback fires. */
int bo_httpc_request(struct bo_httpc *c, const struct bo_httpc_opts *opts, bo_httpc_cb cb,
                     void *data, struct bo_httpc_call **call, struct bo_err *err);

/* Cancel a request whose callback has not fired yet: the callback fires
 * later, from the loop, with BO_ECANCELED. */
void bo_httpc_cancel(struct bo_httpc_call *call);

/* Requests submitted whose callback has not fired yet. */
size_t bo_httpc_pending(const struct bo_httpc *c);

typedef void (*bo_httpc_close_cb)(struct bo_httpc *c, void *data);

/* Cancel every pending request (their callbacks fire with BO_ECANCELED),
 * close the loop handles and call `cb` when all is closed. No request may
 * be submitted after this. Call once. */
void bo_httpc_close(struct bo_httpc *c, bo_httpc_close_cb cb, void *data);

/* Free the client once its close callback has fired. */
void bo_httpc_free(struct bo_httpc *c);

#endif
