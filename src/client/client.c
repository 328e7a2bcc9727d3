/*
 * client.c - calls to the scheduler's HTTP/JSON API for the CLIs, with
 * leader discovery; error formatting, exit codes, progress lines.
 *
 * Happy path of bo_client_call: the request goes to the base URL that
 * answered last (at first the cluster's first URL) and its answer, whatever
 * its status, is returned.
 *
 * Leader discovery and failures, in the order they are handled:
 *   - Connection failures (refused, unresolvable, connect timeout) move on to
 *     the cluster's next URL; each URL is tried once per attempt. When every
 *     URL failed the call is BO_EIO naming each URL and its failure.
 *   - A failure after the request went out (reset, empty answer) is retried
 *     on the next URL only for GET and HEAD; a write may have been applied,
 *     so it is BO_EIO at once, saying so.
 *   - An answer that takes longer than the per-request timeout is BO_EBUSY.
 *   - 307 and 308 are followed by hand to their Location with the same method
 *     and body, at most MAX_HOPS times (a loop of redirects is BO_EIO). The
 *     leader's base URL (the "leader" field of the answer, else the Location
 *     without the request path) becomes the URL tried first next time.
 *   - 503 NO_LEADER is retried, with the next URL and a backoff of 100 ms
 *     doubling up to 1 s, until no_leader_wait_ms has passed; then the last
 *     503 answer is returned like any other.
 * Every other answer (4xx, 5xx) is returned to the caller with BO_OK.
 */
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "common/buf.h"
#include "common/mem.h"

#define DEFAULT_TIMEOUT_MS   30000u
#define DEFAULT_NO_LEADER_MS 10000u
#define CONNECT_TIMEOUT_MS   5000u
#define MAX_HOPS             5
#define BACKOFF_FIRST_MS     100u
#define BACKOFF_MAX_MS       1000u

struct bo_client {
    CURL *curl;
    char *cluster;
    char **urls;
    size_t n_urls;
    size_t next;     /* the URL of the list tried first when `preferred` is NULL */
    char *preferred; /* the base URL that answered last (may be a leader not listed) */
    struct bo_client_opts opts;
};

static unsigned curl_users;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

int bo_client_open(const struct bo_cluster *c, const struct bo_client_opts *opts,
                   struct bo_client **out, struct bo_err *err)
{
    if (c->n_urls == 0)
        return bo_errf(err, BO_EINVAL, "cluster '%s' has no scheduler URL", c->name);
    if (curl_users == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return bo_errf(err, BO_EIO, "cannot initialize libcurl");
    curl_users++;
    struct bo_client *cl = bo_calloc(1, sizeof(*cl));
    if (cl == NULL)
        goto err_nomem;
    if (opts != NULL)
        cl->opts = *opts;
    if (cl->opts.timeout_ms == 0)
        cl->opts.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (cl->opts.no_leader_wait_ms == 0)
        cl->opts.no_leader_wait_ms = DEFAULT_NO_LEADER_MS;
    cl->cluster = bo_strdup(c->name ? c->name : "");
    cl->urls = bo_calloc(c->n_urls, sizeof(*cl->urls));
    if (cl->cluster == NULL || cl->urls == NULL)
        goto err_after_client;
    for (size_t i = 0; i < c->n_urls; i++) {
        cl->urls[i] = bo_strdup(c->urls[i]);
        if (cl->urls[i] == NULL)
            goto err_after_client;
        cl->n_urls++;
    }
    cl->curl = curl_easy_init();
    if (cl->curl == NULL)
        goto err_after_client;
    *out = cl;
    return BO_OK;

err_after_client:
    bo_client_close(cl);
    return bo_errf(err, BO_ENOMEM, "client: out of memory");
err_nomem:
    if (--curl_users == 0)
        curl_global_cleanup();
    return bo_errf(err, BO_ENOMEM, "client: out of memory");
}

void bo_client_close(struct bo_client *cl)
{
    if (cl == NULL)
        return;
    if (cl->curl != NULL)
        curl_easy_cleanup(cl->curl);
    for (size_t i = 0; i < cl->n_urls; i++)
        bo_free(cl->urls[i]);
    bo_free(cl->urls);
    bo_free(cl->cluster);
    bo_free(cl->preferred);
    bo_free(cl);
    if (--curl_users == 0)
        curl_global_cleanup();
}

const char *bo_client_url(const struct bo_client *cl)
{
    return cl->preferred ? cl->preferred : cl->urls[cl->next];
}

/* ---- one HTTP exchange ---- */

enum outcome {
    ANSWERED,     /* an HTTP answer, any status */
    NOT_SENT,     /* no connection: safe to try elsewhere */
    LOST,         /* failed after the request went out */
    TIMED_OUT,    /* connected, no answer in time */
    OUT_OF_MEMORY /* ours */
};

struct exchange {
    struct bo_buf body;
    unsigned status;
    char *location; /* bo_malloc'd absolute redirect target, for 3xx */
    char error[CURL_ERROR_SIZE];
    bool nomem;
};

static size_t on_data(char *p, size_t size, size_t n, void *data)
{
    struct exchange *x = data;
    size_t len = size * n;
    if (bo_buf_append(&x->body, p, len) != BO_OK) {
        x->nomem = true;
        return 0;
    }
    return len;
}

static enum outcome perform(struct bo_client *cl, const char *method, const char *url,
                            const char *body, struct exchange *x)
{
    CURL *h = cl->curl;
    curl_easy_reset(h);
    *x = (struct exchange){.body = BO_BUF_INIT};
    struct curl_slist *hdrs = NULL, *t;
    const char *lines[] = {"Accept: application/json", "Content-Type: application/json", "Expect:"};
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        t = curl_slist_append(hdrs, lines[i]);
        if (t == NULL) {
            curl_slist_free_all(hdrs);
            return OUT_OF_MEMORY;
        }
        hdrs = t;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_USERAGENT,
                     "borealis-client/"
                     "0.1");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)cl->opts.timeout_ms);
    unsigned cto =
        cl->opts.timeout_ms < CONNECT_TIMEOUT_MS ? cl->opts.timeout_ms : CONNECT_TIMEOUT_MS;
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)cto);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->error);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        if (strcmp(method, "GET") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    if (cl->opts.verbose)
        fprintf(stderr, "> %s %s%s\n", method, url, body ? " (with a body)" : "");

    uint64_t start = now_ms();
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    if (x->nomem)
        return OUT_OF_MEMORY;
    if (rc != CURLE_OK) {
        if (x->error[0] == '\0')
            snprintf(x->error, sizeof(x->error), "%s", curl_easy_strerror(rc));
        if (cl->opts.verbose)
            fprintf(stderr, "< %s: %s\n", url, x->error);
        curl_off_t connected = 0;
        curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connected);
        if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
            rc == CURLE_COULDNT_RESOLVE_PROXY || connected == 0)
            return NOT_SENT;
        if (rc == CURLE_OPERATION_TIMEDOUT)
            return TIMED_OUT;
        return LOST;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    x->status = (unsigned)status;
    if (status == 307 || status == 308) {
        char *loc = NULL;
        curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc);
        if (loc != NULL) {
            x->location = bo_strdup(loc);
            if (x->location == NULL)
                return OUT_OF_MEMORY;
        }
    }
    if (cl->opts.verbose)
        fprintf(stderr, "< %ld (%zu bytes, %llu ms)%s%s\n", status, x->body.len,
                (unsigned long long)(now_ms() - start), x->location ? " -> " : "",
                x->location ? x->location : "");
    return ANSWERED;
}

static void exchange_release(struct exchange *x)
{
    bo_buf_release(&x->body);
    bo_free(x->location);
    x->location = NULL;
}

static json_t *parse_json(const struct bo_buf *b)
{
    if (b->len == 0)
        return NULL;
    return json_loadb((const char *)b->data, b->len, JSON_DECODE_ANY, NULL);
}

/* The API's error code ("NO_LEADER") of an answer, or "". */
static const char *answer_code(const struct exchange *x, char *buf, size_t size)
{
    buf[0] = '\0';
    json_t *j = parse_json(&x->body);
    const char *c = json_string_value(json_object_get(j, "code"));
    if (c != NULL)
        snprintf(buf, size, "%s", c);
    json_decref(j);
    return buf;
}

/* The leader's base URL after a redirect of `path` to `location`. */
static char *leader_base(const struct exchange *x, const char *location, const char *path)
{
    json_t *j = parse_json(&x->body);
    const char *leader = json_string_value(json_object_get(j, "leader"));
    char *out = NULL;
    if (leader != NULL && strncmp(location, leader, strlen(leader)) == 0) {
        size_t n = strlen(leader);
        while (n > 0 && leader[n - 1] == '/')
            n--;
        out = bo_strndup(leader, n);
        json_decref(j);
        return out;
    }
    json_decref(j);
    /* Location is the leader's URL plus the path (its query re-encoded) */
    size_t plen = strcspn(path, "?");
    size_t llen = strcspn(location, "?");
    if (llen >= plen && strncmp(location + llen - plen, path, plen) == 0)
        return bo_strndup(location, llen - plen);
    /* else scheme://authority */
    const char *auth = strstr(location, "://");
    const char *slash = auth ? strchr(auth + 3, '/') : NULL;
    return slash ? bo_strndup(location, (size_t)(slash - location)) : bo_strdup(location);
}

static char *join_url(const char *base, const char *path)
{
    size_t n = strlen(base) + strlen(path) + 1;
    char *u = bo_malloc(n);
    if (u != NULL)
        snprintf(u, n, "%s%s", base, path);
    return u;
}

static void append_failure(char *buf, size_t size, const char *url, const char *why)
{
    size_t used = strlen(buf);
    if (used < size)
        snprintf(buf + used, size - used, "%s%s: %s", used ? "; " : "", url, why);
}

/*
 * One attempt: the preferred URL, then the listed ones in turn, following
 * redirects. On BO_OK `x` holds an answer (status not 307/308 unless a
 * redirect had no Location).
 */
static int attempt(struct bo_client *cl, const char *method, const char *path, const char *body,
                   struct exchange *x, struct bo_err *err)
{
    char failures[BO_ERR_MSG_SIZE] = "";
    bool idempotent = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    size_t n_cand = cl->n_urls + (cl->preferred ? 1 : 0);
    for (size_t c = 0; c < n_cand; c++) {
        const char *base;
        if (cl->preferred != NULL && c == 0)
            base = cl->preferred;
        else
            base = cl->urls[(cl->next + c - (cl->preferred ? 1 : 0)) % cl->n_urls];
        if (c > 0 && cl->preferred != NULL && strcmp(base, cl->preferred) == 0)
            continue;
        char *cur_base = bo_strdup(base);
        char *url = join_url(base, path);
        if (cur_base == NULL || url == NULL) {
            bo_free(cur_base);
            bo_free(url);
            return bo_errf(err, BO_ENOMEM, "%s %s: out of memory", method, path);
        }
        for (int hops = 0;; hops++) {
            enum outcome o = perform(cl, method, url, body, x);
            if (o == OUT_OF_MEMORY) {
                exchange_release(x);
                bo_free(cur_base);
                bo_free(url);
                return bo_errf(err, BO_ENOMEM, "%s %s: out of memory", method, path);
            }
            if (o == TIMED_OUT) {
                int rc = bo_errf(err, BO_EBUSY, "%s %s: no answer within %u ms", method, url,
                                 cl->opts.timeout_ms);
                exchange_release(x);
                bo_free(cur_base);
                bo_free(url);
                return rc;
            }
            if (o == LOST && !idempotent) {
                int rc =
                    bo_errf(err, BO_EIO, "%s %s: %s (the request may or may not have been applied)",
                            method, url, x->error);
                exchange_release(x);
                bo_free(cur_base);
                bo_free(url);
                return rc;
            }
            if (o != ANSWERED) {
                append_failure(failures, sizeof(failures), url, x->error);
                exchange_release(x);
                break;
            }
            if ((x->status != 307 && x->status != 308) || x->location == NULL) {
                /* answered: this base is asked first from now on */
                if (cl->preferred == NULL || strcmp(cl->preferred, cur_base) != 0) {
                    bo_free(cl->preferred);
                    cl->preferred = cur_base;
                    cur_base = NULL;
                }
                bo_free(cur_base);
                bo_free(url);
                return BO_OK;
            }
            if (hops + 1 > MAX_HOPS) {
                int rc = bo_errf(err, BO_EIO, "%s %s: more than %d redirects (last to '%s')",
                                 method, path, MAX_HOPS, x->location);
                exchange_release(x);
                bo_free(cur_base);
                bo_free(url);
                return rc;
            }
            char *nb = leader_base(x, x->location, path);
            char *nurl = bo_strdup(x->location);
            exchange_release(x);
            if (nb == NULL || nurl == NULL) {
                bo_free(nb);
                bo_free(nurl);
                bo_free(cur_base);
                bo_free(url);
                return bo_errf(err, BO_ENOMEM, "%s %s: out of memory", method, path);
            }
            bo_free(cur_base);
            bo_free(url);
            cur_base = nb;
            url = nurl;
        }
        bo_free(cur_base);
        bo_free(url);
    }
    /* nobody answered: start with the next listed URL next time */
    bo_free(cl->preferred);
    cl->preferred = NULL;
    cl->next = (cl->next + 1) % cl->n_urls;
    return bo_errf(err, BO_EIO, "cannot reach a scheduler of cluster '%s': %s", cl->cluster,
                   failures);
}

int bo_client_call(struct bo_client *cl, const char *method, const char *path, json_t *body,
                   unsigned *status, json_t **resp, char **text, struct bo_err *err)
{
    if (path == NULL || path[0] != '/')
        return bo_errf(err, BO_EINVAL, "%s '%s': the path must start with '/'", method,
                       path ? path : "");
    char *body_text = NULL;
    if (body != NULL) {
        body_text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        if (body_text == NULL)
            return bo_errf(err, BO_ENOMEM, "%s %s: cannot encode the body", method, path);
    }
    uint64_t deadline = now_ms() + cl->opts.no_leader_wait_ms;
    unsigned backoff = BACKOFF_FIRST_MS;
    struct exchange x;
    int rc;
    for (;;) {
        rc = attempt(cl, method, path, body_text, &x, err);
        if (rc != BO_OK)
            break;
        char code[32];
        uint64_t now = now_ms();
        if (x.status != 503 || strcmp(answer_code(&x, code, sizeof(code)), "NO_LEADER") != 0 ||
            now >= deadline)
            break;
        exchange_release(&x);
        /* another replica may know the leader */
        bo_free(cl->preferred);
        cl->preferred = NULL;
        cl->next = (cl->next + 1) % cl->n_urls;
        unsigned wait = backoff;
        if (now + wait > deadline)
            wait = (unsigned)(deadline - now);
        if (cl->opts.verbose)
            fprintf(stderr, "no leading scheduler yet: retrying in %u ms\n", wait);
        sleep_ms(wait);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    free(body_text); /* jansson's allocator */
    if (rc != BO_OK)
        return rc;

    json_t *j = parse_json(&x.body);
    if (j == NULL && text != NULL) {
        char *t = bo_malloc(x.body.len + 1);
        if (t == NULL) {
            exchange_release(&x);
            return bo_errf(err, BO_ENOMEM, "%s %s: out of memory", method, path);
        }
        if (x.body.len)
            memcpy(t, x.body.data, x.body.len);
        t[x.body.len] = '\0';
        *text = t;
    } else if (text != NULL) {
        *text = NULL;
    }
    *status = x.status;
    if (resp != NULL)
        *resp = j;
    else
        json_decref(j);
    exchange_release(&x);
    return BO_OK;
}

/* ---- errors and exit codes ---- */

static const char *reason_phrase(unsigned status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "unexpected answer";
    }
}

int bo_client_api_error(const char *method, const char *path, unsigned status, json_t *resp,
                        const char *text, struct bo_err *err)
{
    int rc;
    if (status >= 200 && status < 300)
        return BO_OK;
    switch (status) {
    case 400:
        rc = BO_EINVAL;
        break;
    case 404:
        rc = BO_ENOTFOUND;
        break;
    case 409:
        rc = BO_EEXIST;
        break;
    case 503:
        rc = BO_EBUSY;
        break;
    default:
        rc = status >= 400 && status < 500 ? BO_EINVAL : BO_EIO;
        break;
    }
    const char *code = json_string_value(json_object_get(resp, "code"));
    const char *msg = json_string_value(json_object_get(resp, "message"));
    if (code != NULL && msg != NULL && msg[0] != '\0')
        return bo_errf(err, rc, "%s %s: %u %s: %s", method, path, status, code, msg);
    if (code != NULL)
        return bo_errf(err, rc, "%s %s: %u %s", method, path, status, code);
    if (text != NULL && text[0] != '\0') {
        int len = (int)strcspn(text, "\r\n");
        return bo_errf(err, rc, "%s %s: %u %.*s", method, path, status, len > 200 ? 200 : len,
                       text);
    }
    return bo_errf(err, rc, "%s %s: %u %s", method, path, status, reason_phrase(status));
}

int bo_client_exit_code(int rc)
{
    switch (rc) {
    case BO_OK:
        return BO_EXIT_OK;
    case BO_EINVAL:
    case BO_ENOTFOUND:
        return BO_EXIT_INVALID_PARAMETER;
    case BO_EIO:
    case BO_ENOLEADER:
    case BO_ENOTLEADER:
        return BO_EXIT_NETWORK_ERROR;
    case BO_EBUSY:
        return BO_EXIT_TIMEOUT;
    case BO_EEXIST:
        return BO_EXIT_API_ERROR;
    case BO_ECANCELED:
        return BO_EXIT_INTERRUPTED;
    default:
        return BO_EXIT_UNKNOWN;
    }
}

/* ---- output ---- */

static bool progress_shown;

bool bo_client_tty(void)
{
    return isatty(STDOUT_FILENO) == 1;
}

void bo_client_progress(const char *fmt, ...)
{
    if (!bo_client_tty())
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("\r\033[K", stdout);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fflush(stdout);
    progress_shown = true;
}

void bo_client_progress_done(void)
{
    if (!progress_shown)
        return;
    fputs("\n", stdout);
    fflush(stdout);
    progress_shown = false;
}
