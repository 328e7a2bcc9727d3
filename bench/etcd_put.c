/*
 * etcd_put.c - the etcd peer of the write benchmark: how many committed puts
 * per second does a single etcd member on loopback sustain, with a fixed
 * number of requests in flight?
 *
 * There is no Go client here, so this talks to etcd's JSON gRPC gateway:
 *   POST http://HOST:PORT/v3/kv/put  {"key": base64, "value": base64}
 * A put returns once the entry is committed (fsynced by the single member's
 * WAL), which is what Borealis' committed transactions are compared with.
 *
 * Happy path: C easy handles, each one request in flight; when one completes
 * its latency is recorded and it is re-armed with the next key, so exactly C
 * requests are outstanding until the deadline or the request cap. libcurl's
 * connection cache keeps one keep-alive connection per handle, so after the
 * first round no connection is opened. The loop is a plain curl_multi_poll
 * loop: the load generator has nothing else to wait for.
 *
 * Failure modes: a transport error or a non-200 answer counts as an error
 * (not a put) and the handle carries on; more than max(100, 1% of requests)
 * errors stops the run with exit status 1. Everything is bounded: the run by
 * -d seconds and -n requests, each request by a 10 s timeout.
 *
 * usage: bench-etcd-put [-u http://127.0.0.1:2379] [-c 64] [-d 10] [-n 10000000]
 *                       [-s 150] [-k 100000]
 * prints {"puts": n, "errors": e, "seconds": s, "puts_per_s": x, "p50_ms": ..,
 *         "p90_ms": .., "p99_ms": .., "max_ms": .., "in_flight": c, "value_bytes": v}
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/mem.h"

#define MAX_IN_FLIGHT 4096
#define BODY_CAP      4096
#define RESP_CAP      1024
#define MAX_VALUE     1024

struct req {
    CURL *easy;
    double started;
    char body[BODY_CAP];
    char resp[RESP_CAP];
    size_t resp_len;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Standard base64 with padding; returns the length written (no NUL). */
static size_t b64(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    return o;
}

/* Keep the start of the answer, for error messages; drop the rest. */
static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct req *r = userdata;
    size_t n = size * nmemb;
    size_t room = RESP_CAP - 1 - r->resp_len;
    size_t take = n < room ? n : room;
    memcpy(r->resp + r->resp_len, ptr, take);
    r->resp_len += take;
    r->resp[r->resp_len] = '\0';
    return n;
}

/* The body of put number `seq`: a task-like key and a value of `vlen` bytes
 * that changes with every put (so etcd cannot elide anything). */
static void make_body(struct req *r, uint64_t seq, uint64_t keys, size_t vlen)
{
    char key[64];
    uint8_t value[MAX_VALUE];
    int kn = snprintf(key, sizeof(key), "/borealis/tasks/%08llu", (unsigned long long)(seq % keys));
    uint64_t x = seq * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < vlen; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        value[i] = (uint8_t)("{}\":, abcdefghijklmnopqrstuvwxyz0123456789"[x % 42]);
    }
    size_t o = 0;
    memcpy(r->body, "{\"key\": \"", 9);
    o = 9;
    o += b64((const uint8_t *)key, (size_t)kn, r->body + o);
    memcpy(r->body + o, "\", \"value\": \"", 13);
    o += 13;
    o += b64(value, vlen, r->body + o);
    memcpy(r->body + o, "\"}", 3);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i];
}

static unsigned long long parse_ull(const char *s, const char *what)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s) {
        fprintf(stderr, "bench-etcd-put: bad %s '%s'\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *base = "http://127.0.0.1:2379";
    unsigned long long conc = 64, secs = 10, max_req = 10000000, vlen = 150, keys = 100000;
    int opt;
    while ((opt = getopt(argc, argv, "u:c:d:n:s:k:")) != -1) {
        switch (opt) {
        case 'u':
            base = optarg;
            break;
        case 'c':
            conc = parse_ull(optarg, "concurrency");
            break;
        case 'd':
            secs = parse_ull(optarg, "duration");
            break;
        case 'n':
            max_req = parse_ull(optarg, "request count");
            break;
        case 's':
            vlen = parse_ull(optarg, "value size");
            break;
        case 'k':
            keys = parse_ull(optarg, "key count");
            break;
        default:
            fprintf(stderr, "usage: bench-etcd-put [-u url] [-c in_flight] [-d seconds] "
                            "[-n requests] [-s value_bytes] [-k keys]\n");
            return 2;
        }
    }
    if (conc == 0 || conc > MAX_IN_FLIGHT || secs == 0 || secs > 3600 || max_req == 0 ||
        max_req > 100000000 || vlen == 0 || vlen > MAX_VALUE || keys == 0) {
        fprintf(stderr,
                "bench-etcd-put: out of range: -c 1..%d, -d 1..3600, -n 1..1e8, "
                "-s 1..%d, -k >= 1\n",
                MAX_IN_FLIGHT, MAX_VALUE);
        return 2;
    }
    char url[512];
    if ((size_t)snprintf(url, sizeof(url), "%s/v3/kv/put", base) >= sizeof(url)) {
        fprintf(stderr, "bench-etcd-put: url too long\n");
        return 2;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "bench-etcd-put: curl_global_init failed\n");
        return 1;
    }
    CURLM *multi = curl_multi_init();
    struct req *reqs = bo_calloc(conc, sizeof(*reqs));
    size_t lat_cap = 1 << 16, n_lat = 0;
    double *lat = bo_malloc(lat_cap * sizeof(*lat));
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = hdrs ? curl_slist_append(hdrs, "Expect:") : NULL;
    if (!multi || !reqs || !lat || !hdrs) {
        fprintf(stderr, "bench-etcd-put: out of memory\n");
        return 1;
    }
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)conc);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conc);

    uint64_t seq = 0, errors = 0;
    int rc = 0;
    const double t0 = now_s(), deadline = t0 + (double)secs;
    for (size_t i = 0; i < conc; i++) {
        struct req *r = &reqs[i];
        r->easy = curl_easy_init();
        if (!r->easy) {
            fprintf(stderr, "bench-etcd-put: curl_easy_init failed\n");
            return 1;
        }
        curl_easy_setopt(r->easy, CURLOPT_URL, url);
        curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
        curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, 10000L);
        curl_easy_setopt(r->easy, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
        if (seq < max_req) {
            make_body(r, seq++, keys, (size_t)vlen);
            r->started = now_s();
            curl_multi_add_handle(multi, r->easy);
        }
    }

    int running = 1;
    char first_error[256] = "";
    while (running) {
        CURLMcode mc = curl_multi_perform(multi, &running);
        if (mc != CURLM_OK) {
            fprintf(stderr, "bench-etcd-put: curl_multi_perform: %s\n", curl_multi_strerror(mc));
            rc = 1;
            break;
        }
        CURLMsg *msg;
        int left;
        bool rearmed = false;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct req *r;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            double t = now_s();
            long code = 0;
            curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
            if (msg->data.result == CURLE_OK && code == 200) {
                if (n_lat == lat_cap) {
                    double *nl = bo_reallocarray(lat, lat_cap * 2, sizeof(*lat));
                    if (!nl) {
                        fprintf(stderr, "bench-etcd-put: out of memory\n");
                        return 1;
                    }
                    lat = nl;
                    lat_cap *= 2;
                }
                lat[n_lat++] = (t - r->started) * 1000.0;
            } else {
                errors++;
                if (!first_error[0])
                    snprintf(first_error, sizeof(first_error), "%s (http %ld): %.120s",
                             curl_easy_strerror(msg->data.result), code, r->resp);
            }
            curl_multi_remove_handle(multi, r->easy);
            r->resp_len = 0;
            r->resp[0] = '\0';
            if (t < deadline && seq < max_req && errors <= 100 + seq / 100) {
                make_body(r, seq++, keys, (size_t)vlen);
                r->started = now_s();
                curl_multi_add_handle(multi, r->easy);
                rearmed = true;
            }
        }
        if (rearmed)
            running = 1;
        if (running) {
            mc = curl_multi_poll(multi, NULL, 0, 100, NULL);
            if (mc != CURLM_OK) {
                fprintf(stderr, "bench-etcd-put: curl_multi_poll: %s\n", curl_multi_strerror(mc));
                rc = 1;
                break;
            }
        }
    }
    double elapsed = now_s() - t0;

    if (errors > 100 + seq / 100) {
        fprintf(stderr, "bench-etcd-put: too many errors (%llu), first: %s\n",
                (unsigned long long)errors, first_error);
        rc = 1;
    } else if (errors) {
        fprintf(stderr, "bench-etcd-put: %llu errors, first: %s\n", (unsigned long long)errors,
                first_error);
    }
    qsort(lat, n_lat, sizeof(*lat), cmp_double);
    printf("{\"puts\": %zu, \"errors\": %llu, \"seconds\": %.3f, \"puts_per_s\": %.1f, "
           "\"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, "
           "\"in_flight\": %llu, \"value_bytes\": %llu}\n",
           n_lat, (unsigned long long)errors, elapsed, (double)n_lat / elapsed,
           pct(lat, n_lat, 0.50), pct(lat, n_lat, 0.90), pct(lat, n_lat, 0.99),
           n_lat ? lat[n_lat - 1] : 0.0, conc, vlen);

    for (size_t i = 0; i < conc; i++) {
        if (reqs[i].easy) {
            curl_multi_remove_handle(multi, reqs[i].easy);
            curl_easy_cleanup(reqs[i].easy);
        }
    }
    curl_multi_cleanup(multi);
    curl_slist_free_all(hdrs);
    curl_global_cleanup();
    bo_free(reqs);
    bo_free(lat);
    return n_lat ? rc : 1;
}
