/*
 * jobkey.c - job keys ("cluster/role/env/name[/instances]") and instance
 * lists ("0-2,5,7-9") as the CLIs take them.
 *
 * Parts follow the scheduler's rules (docs/api.md "Job keys"): one or more of
 * [A-Za-z0-9_.-], not starting with '.' (so "." and ".." never reach a URL
 * path), shorter than BO_KEY_PART_MAX. Partial keys may also use the globs
 * '*' and '?'. Every error is BO_EINVAL with a message naming the key and
 * the bad part; *out is untouched on error.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "common/mem.h"

/* Instance ids above this are refused (the scheduler's --max-tasks-per-job
 * is 4000 by default), which also bounds the expanded list. */
#define MAX_INSTANCE 1000000

static const char *const part_names[] = {"cluster", "role", "environment", "name"};

static int check_part(const char *key, int idx, const char *p, size_t len, bool globs,
                      struct bo_err *err)
{
    const char *what = part_names[idx];
    if (len == 0)
        return bo_errf(err, BO_EINVAL, "job key '%s': empty %s", key, what);
    if (len >= BO_KEY_PART_MAX)
        return bo_errf(err, BO_EINVAL, "job key '%s': %s is longer than %d characters", key, what,
                       BO_KEY_PART_MAX - 1);
    if (p[0] == '.')
        return bo_errf(err, BO_EINVAL, "job key '%s': %s '%.*s' may not start with '.'", key, what,
                       (int)len, p);
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-' || (globs && (c == '*' || c == '?'));
        if (!ok)
            return bo_errf(err, BO_EINVAL, "job key '%s': %s '%.*s' must match %s", key, what,
                           (int)len, p, globs ? "[A-Za-z0-9_.*?-]+" : "[A-Za-z0-9_.-]+");
    }
    return BO_OK;
}

int bo_jobkey_parse(const char *s, int flags, struct bo_jobkey *out, struct bo_err *err)
{
    bool partial = flags & BO_JOBKEY_PARTIAL;
    bool need_inst = flags & BO_JOBKEY_NEED_INSTANCES;
    bool inst_ok = need_inst || (flags & BO_JOBKEY_INSTANCES);
    struct bo_jobkey k = {0};

    /* split on '/': up to four key parts, then the instance list (which has
     * no '/' of its own) */
    const char *p = s;
    int n = 0;
    const char *inst = NULL;
    char *dst[4] = {k.cluster, k.role, k.env, k.name};
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 4) {
            if (slash != NULL || !inst_ok)
                return bo_errf(err, BO_EINVAL, "job key '%s': expected %s", s,
                               inst_ok ? "cluster/role/env/name/instances"
                                       : "cluster/role/env/name");
            inst = p;
            break;
        }
        int rc = check_part(s, n, p, len, partial, err);
        if (rc != BO_OK)
            return rc;
        memcpy(dst[n], p, len);
        dst[n][len] = '\0';
        n++;
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    if (n < 4 && !partial)
        return bo_errf(err, BO_EINVAL, "job key '%s': expected cluster/role/env/name%s", s,
                       need_inst ? "/instances" : "");
    if (need_inst && inst == NULL)
        return bo_errf(err, BO_EINVAL, "job key '%s': an instance list is required (%s/0-2,5)", s,
                       s);
    if (inst != NULL) {
        struct bo_err ierr = BO_ERR_INIT;
        int rc = bo_instances_parse(inst, &k.instances, &k.n_instances, &ierr);
        if (rc != BO_OK)
            return bo_errf(err, rc, "job key '%s': %s", s, ierr.msg);
    }
    *out = k;
    return BO_OK;
}

void bo_jobkey_release(struct bo_jobkey *k)
{
    if (k == NULL)
        return;
    bo_free(k->instances);
    k->instances = NULL;
    k->n_instances = 0;
}

void bo_jobkey_str(const struct bo_jobkey *k, char *buf, size_t size)
{
    const char *parts[4] = {k->cluster, k->role, k->env, k->name};
    size_t used = 0;
    if (size == 0)
        return;
    buf[0] = '\0';
    for (int i = 0; i < 4 && parts[i][0] != '\0'; i++) {
        int w = snprintf(buf + used, size - used, "%s%s", i ? "/" : "", parts[i]);
        if (w < 0 || (size_t)w >= size - used)
            return; /* truncated, still NUL-terminated */
        used += (size_t)w;
    }
}

static int parse_num(const char *s, size_t len, long *out)
{
    if (len == 0 || len > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > MAX_INSTANCE)
        return -1;
    *out = v;
    return 0;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int bo_instances_parse(const char *s, int **out, size_t *n, struct bo_err *err)
{
    if (s == NULL || s[0] == '\0')
        return bo_errf(err, BO_EINVAL, "empty instance list");
    int *v = NULL;
    size_t len = 0, cap = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t item = comma ? (size_t)(comma - p) : strlen(p);
        const char *dash = memchr(p, '-', item);
        long lo = 0, hi = 0;
        int bad;
        if (dash != NULL) {
            bad = parse_num(p, (size_t)(dash - p), &lo) ||
                  parse_num(dash + 1, item - (size_t)(dash - p) - 1, &hi);
        } else {
            bad = parse_num(p, item, &lo);
            hi = lo;
        }
        if (bad) {
            bo_free(v);
            if (item == 0)
                return bo_errf(err, BO_EINVAL, "instance list '%s': empty item", s);
            return bo_errf(err, BO_EINVAL,
                           "instance list '%s': '%.*s' is not an instance id or a range "
                           "like 0-2 (ids 0 to %d)",
                           s, (int)item, p, MAX_INSTANCE);
        }
        if (lo > hi) {
            bo_free(v);
            return bo_errf(err, BO_EINVAL, "instance list '%s': range '%.*s' is backwards", s,
                           (int)item, p);
        }
        size_t add = (size_t)(hi - lo) + 1;
        if (len + add > MAX_INSTANCE + 1) {
            bo_free(v);
            return bo_errf(err, BO_EINVAL, "instance list '%s': too many instances", s);
        }
        if (len + add > cap) {
            size_t ncap = cap ? cap : 16;
            while (ncap < len + add)
                ncap *= 2;
            int *nv = bo_reallocarray(v, ncap, sizeof(*v));
            if (nv == NULL) {
                bo_free(v);
                return bo_errf(err, BO_ENOMEM, "instance list: out of memory");
            }
            v = nv;
            cap = ncap;
        }
        for (long i = lo; i <= hi; i++)
            v[len++] = (int)i;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    if (len > 1)
        qsort(v, len, sizeof(*v), cmp_int);
    size_t u = 0;
    for (size_t i = 0; i < len; i++)
        if (u == 0 || v[u - 1] != v[i])
            v[u++] = v[i];
    *out = v;
    *n = u;
    return BO_OK;
}
