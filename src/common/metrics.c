/*
 * metrics.c - the metrics registry and its three renderings.
 *
 * Happy path: the registry keeps its metrics in a uthash table by name, and
 * each labelled metric its series in a uthash table keyed by the label values
 * laid end to end, each with its NUL ("GET\0" "200\0"): values cannot hold a
 * NUL, so the key is unambiguous. uthash keeps insertion order when iterating,
 * which gives the rendering order. A metric without labels has exactly one
 * series, created with the metric and kept outside the table. Updates touch
 * only the series (no lookup); a histogram observation is a binary search
 * over the bounds and one non-cumulative bucket increment; buckets are summed
 * up when rendered.
 *
 * Failure modes: registering checks every name, label and bound and copies
 * them, unwinding on the first failure; a series lookup that must create the
 * series and runs out of memory returns NULL and adds nothing (uthash runs
 * with HASH_NONFATAL_OOM, allocating through bo_malloc: a failed insertion
 * leaves hh.tbl NULL instead of exiting). A rendering that runs out of memory
 * truncates the output buffer back to where it started.
 */
#include "common/metrics.h"

#include <assert.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

#define HASH_NONFATAL_OOM    1
#define uthash_malloc(sz)    bo_malloc(sz)
#define uthash_free(ptr, sz) bo_free(ptr)
#include <uthash.h>

struct bo_metrics_series {
    struct bo_metric *metric;
    char *key; /* label values, each with its NUL, end to end */
    size_t key_len;
    union {
        uint64_t u; /* counter */
        double d;   /* gauge */
        int64_t i;  /* integer gauge */
    } v;
    uint64_t count;    /* histogram */
    double sum;        /* histogram */
    uint64_t *buckets; /* histogram: n_bounds counts, not cumulative */
    UT_hash_handle hh;
};

struct bo_metric {
    enum bo_metric_type type;
    char *name;
    char *help;
    char **labels;
    size_t n_labels;
    double *bounds;
    size_t n_bounds;
    struct bo_metrics_series *only;   /* the series when n_labels == 0 */
    struct bo_metrics_series *series; /* by key when n_labels > 0 */
    UT_hash_handle hh;
};

struct bo_metrics {
    struct bo_metric *by_name;
};

/* -------------------------------------------------------------- registry ---- */

int bo_metrics_new(struct bo_metrics **out)
{
    struct bo_metrics *reg = bo_calloc(1, sizeof(*reg));
    if (reg == NULL) {
        return BO_ENOMEM;
    }
    *out = reg;
    return BO_OK;
}

static void free_series(struct bo_metrics_series *s)
{
    if (s == NULL) {
        return;
    }
    bo_free(s->key);
    bo_free(s->buckets);
    bo_free(s);
}

static void free_metric(struct bo_metric *m)
{
    struct bo_metrics_series *s, *tmp;
    HASH_ITER(hh, m->series, s, tmp)
    {
        HASH_DEL(m->series, s);
        free_series(s);
    }
    free_series(m->only);
    for (size_t i = 0; i < m->n_labels && m->labels != NULL; i++) {
        bo_free(m->labels[i]);
    }
    bo_free(m->labels);
    bo_free(m->bounds);
    bo_free(m->name);
    bo_free(m->help);
    bo_free(m);
}

void bo_metrics_free(struct bo_metrics *reg)
{
    if (reg == NULL) {
        return;
    }
    struct bo_metric *m, *tmp;
    HASH_ITER(hh, reg->by_name, m, tmp)
    {
        HASH_DEL(reg->by_name, m);
        free_metric(m);
    }
    bo_free(reg);
}

static bool is_alpha_(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool valid_metric_name(const char *s)
{
    if (s == NULL || !(is_alpha_(*s) || *s == ':')) {
        return false;
    }
    for (s++; *s != '\0'; s++) {
        if (!is_alpha_(*s) && !is_digit(*s) && *s != ':') {
            return false;
        }
    }
    return true;
}

static bool valid_label_name(const char *s)
{
    if (s == NULL || !is_alpha_(*s) || strncmp(s, "__", 2) == 0) {
        return false;
    }
    for (s++; *s != '\0'; s++) {
        if (!is_alpha_(*s) && !is_digit(*s)) {
            return false;
        }
    }
    return true;
}

static int check_desc(const struct bo_metric_desc *d, struct bo_err *err)
{
    const char *name = d->name != NULL ? d->name : "(null)";
    if (d->type > BO_METRIC_HISTOGRAM) {
        return bo_errf(err, BO_EINVAL, "metric '%s': unknown type %d", name, (int)d->type);
    }
    if (!valid_metric_name(d->name)) {
        return bo_errf(err, BO_EINVAL, "metric '%s': bad name", name);
    }
    if (d->n_labels > 0 && d->labels == NULL) {
        return bo_errf(err, BO_EINVAL, "metric '%s': label names missing", name);
    }
    for (size_t i = 0; i < d->n_labels; i++) {
        const char *l = d->labels[i];
        if (!valid_label_name(l)) {
            return bo_errf(err, BO_EINVAL, "metric '%s': bad label name '%s'", name,
                           l != NULL ? l : "(null)");
        }
        if (d->type == BO_METRIC_HISTOGRAM && strcmp(l, "le") == 0) {
            return bo_errf(err, BO_EINVAL, "metric '%s': label 'le' is reserved in histograms",
                           name);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(l, d->labels[j]) == 0) {
                return bo_errf(err, BO_EINVAL, "metric '%s': label '%s' given twice", name, l);
            }
        }
    }
    if (d->type != BO_METRIC_HISTOGRAM) {
        return BO_OK;
    }
    if (d->n_bounds == 0 || d->bounds == NULL) {
        return bo_errf(err, BO_EINVAL, "histogram '%s': no bucket bounds", name);
    }
    for (size_t i = 0; i < d->n_bounds; i++) {
        if (!isfinite(d->bounds[i])) {
            return bo_errf(err, BO_EINVAL, "histogram '%s': bound %zu is not finite", name, i);
        }
        if (i > 0 && !(d->bounds[i] > d->bounds[i - 1])) {
            return bo_errf(err, BO_EINVAL, "histogram '%s': bounds are not increasing at %zu", name,
                           i);
        }
    }
    return BO_OK;
}

static struct bo_metrics_series *new_series(struct bo_metric *m, const char *key, size_t key_len)
{
    struct bo_metrics_series *s = bo_calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->metric = m;
    s->key_len = key_len;
    s->key = bo_malloc(key_len);
    if (s->key == NULL) {
        goto err_after_alloc;
    }
    memcpy(s->key, key, key_len);
    if (m->type == BO_METRIC_HISTOGRAM) {
        s->buckets = bo_calloc(m->n_bounds, sizeof(*s->buckets));
        if (s->buckets == NULL) {
            goto err_after_alloc;
        }
    }
    return s;

err_after_alloc:
    free_series(s);
    return NULL;
}

int bo_metrics_register(struct bo_metrics *reg, const struct bo_metric_desc *desc,
                        struct bo_metric **out, struct bo_err *err)
{
    int rv = check_desc(desc, err);
    if (rv != BO_OK) {
        return rv;
    }
    struct bo_metric *m;
    HASH_FIND_STR(reg->by_name, desc->name, m);
    if (m != NULL) {
        return bo_errf(err, BO_EEXIST, "metric '%s': already registered", desc->name);
    }
    m = bo_calloc(1, sizeof(*m));
    if (m == NULL) {
        return bo_errf(err, BO_ENOMEM, "metric '%s': out of memory", desc->name);
    }
    m->type = desc->type;
    m->name = bo_strdup(desc->name);
    m->help = desc->help != NULL ? bo_strdup(desc->help) : NULL;
    if (m->name == NULL || (desc->help != NULL && m->help == NULL)) {
        goto err_after_alloc;
    }
    if (desc->n_labels > 0) {
        m->labels = bo_calloc(desc->n_labels, sizeof(*m->labels));
        if (m->labels == NULL) {
            goto err_after_alloc;
        }
        m->n_labels = desc->n_labels;
        for (size_t i = 0; i < desc->n_labels; i++) {
            m->labels[i] = bo_strdup(desc->labels[i]);
            if (m->labels[i] == NULL) {
                goto err_after_alloc;
            }
        }
    }
    if (desc->type == BO_METRIC_HISTOGRAM) {
        m->bounds = bo_reallocarray(NULL, desc->n_bounds, sizeof(*m->bounds));
        if (m->bounds == NULL) {
            goto err_after_alloc;
        }
        memcpy(m->bounds, desc->bounds, desc->n_bounds * sizeof(*m->bounds));
        m->n_bounds = desc->n_bounds;
    }
    if (m->n_labels == 0) {
        m->only = new_series(m, "", 0);
        if (m->only == NULL) {
            goto err_after_alloc;
        }
    }
    HASH_ADD_KEYPTR(hh, reg->by_name, m->name, strlen(m->name), m);
    if (m->hh.tbl == NULL) {
        goto err_after_alloc;
    }
    *out = m;
    return BO_OK;

err_after_alloc:
    free_metric(m);
    return bo_errf(err, BO_ENOMEM, "metric '%s': out of memory", desc->name);
}

struct bo_metrics_series *bo_metrics_series(struct bo_metric *m, const char *const *values,
                                            size_t n)
{
    assert(n == m->n_labels);
    if (n == 0) {
        return m->only;
    }
    size_t key_len = 0;
    for (size_t i = 0; i < n; i++) {
        assert(values[i] != NULL);
        key_len += strlen(values[i]) + 1; /* no overflow: the strings are in memory */
    }
    char small[256];
    char *key = key_len <= sizeof(small) ? small : bo_malloc(key_len);
    if (key == NULL) {
        return NULL;
    }
    char *p = key;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(values[i]) + 1;
        memcpy(p, values[i], l);
        p += l;
    }
    struct bo_metrics_series *s;
    HASH_FIND(hh, m->series, key, key_len, s);
    if (s == NULL) {
        s = new_series(m, key, key_len);
        if (s != NULL) {
            HASH_ADD_KEYPTR(hh, m->series, s->key, s->key_len, s);
            if (s->hh.tbl == NULL) {
                free_series(s);
                s = NULL;
            }
        }
    }
    if (key != small) {
        bo_free(key);
    }
    return s;
}

/* --------------------------------------------------------------- updates ---- */

void bo_metrics_inc(struct bo_metrics_series *s, uint64_t delta)
{
    assert(s->metric->type == BO_METRIC_COUNTER);
    s->v.u += delta;
}

void bo_metrics_set(struct bo_metrics_series *s, double v)
{
    assert(s->metric->type == BO_METRIC_GAUGE);
    s->v.d = v;
}

void bo_metrics_add(struct bo_metrics_series *s, double delta)
{
    assert(s->metric->type == BO_METRIC_GAUGE);
    s->v.d += delta;
}

void bo_metrics_set_int(struct bo_metrics_series *s, int64_t v)
{
    assert(s->metric->type == BO_METRIC_GAUGE_INT);
    s->v.i = v;
}

void bo_metrics_add_int(struct bo_metrics_series *s, int64_t delta)
{
    assert(s->metric->type == BO_METRIC_GAUGE_INT);
    /* Wrap rather than overflow (undefined for signed integers). */
    s->v.i = (int64_t)((uint64_t)s->v.i + (uint64_t)delta);
}

void bo_metrics_observe(struct bo_metrics_series *s, double v)
{
    const struct bo_metric *m = s->metric;
    assert(m->type == BO_METRIC_HISTOGRAM);
    /* First bound >= v; NaN and values above every bound land in +Inf only. */
    size_t lo = 0, hi = m->n_bounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->bounds[mid] >= v) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if (lo < m->n_bounds && !isnan(v)) {
        s->buckets[lo]++;
    }
    s->count++;
    s->sum += v;
}

uint64_t bo_metrics_counter_value(const struct bo_metrics_series *s)
{
    assert(s->metric->type == BO_METRIC_COUNTER);
    return s->v.u;
}

double bo_metrics_gauge_value(const struct bo_metrics_series *s)
{
    assert(s->metric->type == BO_METRIC_GAUGE);
    return s->v.d;
}

int64_t bo_metrics_gauge_int_value(const struct bo_metrics_series *s)
{
    assert(s->metric->type == BO_METRIC_GAUGE_INT);
    return s->v.i;
}

uint64_t bo_metrics_histogram_count(const struct bo_metrics_series *s)
{
    assert(s->metric->type == BO_METRIC_HISTOGRAM);
    return s->count;
}

double bo_metrics_histogram_sum(const struct bo_metrics_series *s)
{
    assert(s->metric->type == BO_METRIC_HISTOGRAM);
    return s->sum;
}

/* ------------------------------------------------------------- rendering ---- */

/* An output buffer with a sticky error: writes after a failure do nothing. */
struct out {
    struct bo_buf *b;
    size_t start;
    int rv;
};

static void put_mem(struct out *o, const void *p, size_t n)
{
    if (o->rv == BO_OK) {
        o->rv = bo_buf_append(o->b, p, n);
    }
}

static void put(struct out *o, const char *s)
{
    put_mem(o, s, strlen(s));
}

static void put_u64(struct out *o, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    put_mem(o, tmp, (size_t)n);
}

static void put_i64(struct out *o, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    put_mem(o, tmp, (size_t)n);
}

/* The shortest of %.15g..%.17g that reads back to `v`; returns the
 * precision used (0 for NaN and infinities). */
static int format_double(double v, char out[32])
{
    if (isnan(v)) {
        snprintf(out, 32, "NaN");
        return 0;
    }
    if (isinf(v)) {
        snprintf(out, 32, "%s", v > 0 ? "+Inf" : "-Inf");
        return 0;
    }
    int prec = 15;
    for (; prec < 17; prec++) {
        snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v) {
            return prec;
        }
    }
    snprintf(out, 32, "%.17g", v); /* always reads back */
    return prec;
}

static void put_double(struct out *o, double v)
{
    char tmp[32];
    format_double(v, tmp);
    put(o, tmp);
}

/* Escape backslash and newline, and double quote when `quote`. */
static void put_escaped(struct out *o, const char *s, bool quote)
{
    const char *run = s;
    for (; *s != '\0'; s++) {
        const char *rep = NULL;
        if (*s == '\\') {
            rep = "\\\\";
        } else if (*s == '\n') {
            rep = "\\n";
        } else if (*s == '"' && quote) {
            rep = "\\\"";
        }
        if (rep != NULL) {
            put_mem(o, run, (size_t)(s - run));
            put(o, rep);
            run = s + 1;
        }
    }
    put_mem(o, run, (size_t)(s - run));
}

static int finish(struct out *o)
{
    if (o->rv != BO_OK) {
        o->b->len = o->start;
    }
    return o->rv;
}

/* {a="x",b="y"} plus le="..." when `le` is not NULL; nothing when empty. */
static void put_labels(struct out *o, const struct bo_metrics_series *s, const char *le)
{
    const struct bo_metric *m = s->metric;
    if (m->n_labels == 0 && le == NULL) {
        return;
    }
    put(o, "{");
    const char *v = s->key;
    for (size_t i = 0; i < m->n_labels; i++) {
        if (i > 0) {
            put(o, ",");
        }
        put(o, m->labels[i]);
        put(o, "=\"");
        put_escaped(o, v, true);
        put(o, "\"");
        v += strlen(v) + 1;
    }
    if (le != NULL) {
        put(o, m->n_labels > 0 ? ",le=\"" : "le=\"");
        put(o, le);
        put(o, "\"");
    }
    put(o, "}");
}

static void put_sample_name(struct out *o, const struct bo_metric *m, const char *suffix)
{
    put(o, m->name);
    put(o, suffix);
}

static void prometheus_series(struct out *o, const struct bo_metrics_series *s)
{
    const struct bo_metric *m = s->metric;
    switch (m->type) {
    case BO_METRIC_COUNTER:
        put(o, m->name);
        put_labels(o, s, NULL);
        put(o, " ");
        put_u64(o, s->v.u);
        put(o, "\n");
        break;
    case BO_METRIC_GAUGE:
        put(o, m->name);
        put_labels(o, s, NULL);
        put(o, " ");
        put_double(o, s->v.d);
        put(o, "\n");
        break;
    case BO_METRIC_GAUGE_INT:
        put(o, m->name);
        put_labels(o, s, NULL);
        put(o, " ");
        put_i64(o, s->v.i);
        put(o, "\n");
        break;
    case BO_METRIC_HISTOGRAM: {
        uint64_t cum = 0;
        char le[32];
        for (size_t i = 0; i < m->n_bounds; i++) {
            cum += s->buckets[i];
            format_double(m->bounds[i], le);
            put_sample_name(o, m, "_bucket");
            put_labels(o, s, le);
            put(o, " ");
            put_u64(o, cum);
            put(o, "\n");
        }
        put_sample_name(o, m, "_bucket");
        put_labels(o, s, "+Inf");
        put(o, " ");
        put_u64(o, s->count);
        put(o, "\n");
        put_sample_name(o, m, "_sum");
        put_labels(o, s, NULL);
        put(o, " ");
        put_double(o, s->sum);
        put(o, "\n");
        put_sample_name(o, m, "_count");
        put_labels(o, s, NULL);
        put(o, " ");
        put_u64(o, s->count);
        put(o, "\n");
        break;
    }
    }
}

static const char *type_name(enum bo_metric_type t)
{
    switch (t) {
    case BO_METRIC_COUNTER:
        return "counter";
    case BO_METRIC_HISTOGRAM:
        return "histogram";
    case BO_METRIC_GAUGE:
    case BO_METRIC_GAUGE_INT:
        break;
    }
    return "gauge";
}

int bo_metrics_render_prometheus(const struct bo_metrics *reg, struct bo_buf *out)
{
    struct out o = {out, out->len, BO_OK};
    const struct bo_metric *m, *tmp;
    HASH_ITER(hh, reg->by_name, m, tmp)
    {
        if (m->help != NULL) {
            put(&o, "# HELP ");
            put(&o, m->name);
            put(&o, " ");
            put_escaped(&o, m->help, false);
            put(&o, "\n");
        }
        put(&o, "# TYPE ");
        put(&o, m->name);
        put(&o, " ");
        put(&o, type_name(m->type));
        put(&o, "\n");
        if (m->only != NULL) {
            prometheus_series(&o, m->only);
        }
        const struct bo_metrics_series *s, *stmp;
        HASH_ITER(hh, m->series, s, stmp)
        {
            prometheus_series(&o, s);
        }
    }
    return finish(&o);
}

/* ------------------------------------------------------------------ vars ---- */

static bool is_vars_char(char c)
{
    return is_alpha_(c) || is_digit(c) || c == '.' || c == ':' || c == '-';
}

/* The series' /vars name plus `suffix`, NUL-terminated, into `name`. */
static int vars_name(struct bo_buf *name, const struct bo_metrics_series *s, const char *suffix)
{
    const struct bo_metric *m = s->metric;
    name->len = 0;
    struct out o = {name, 0, BO_OK};
    put(&o, m->name);
    const char *v = s->key;
    for (size_t i = 0; i < m->n_labels; i++) {
        put(&o, "_");
        for (; *v != '\0'; v++) {
            char c = is_vars_char(*v) ? *v : '_';
            put_mem(&o, &c, 1);
        }
        v++;
    }
    put(&o, suffix);
    put_mem(&o, "", 1);
    return o.rv;
}

/* Calls `fn` for every (name, series, suffix) line of /vars in order. */
typedef void (*vars_fn)(struct out *o, const char *name, const struct bo_metrics_series *s,
                        bool sum, void *data);

static void vars_series(struct out *o, struct bo_buf *name, const struct bo_metrics_series *s,
                        vars_fn fn, void *data)
{
    if (s->metric->type != BO_METRIC_HISTOGRAM) {
        if (o->rv == BO_OK && (o->rv = vars_name(name, s, "")) == BO_OK) {
            fn(o, (const char *)name->data, s, false, data);
        }
        return;
    }
    if (o->rv == BO_OK && (o->rv = vars_name(name, s, "_count")) == BO_OK) {
        fn(o, (const char *)name->data, s, false, data);
    }
    if (o->rv == BO_OK && (o->rv = vars_name(name, s, "_sum")) == BO_OK) {
        fn(o, (const char *)name->data, s, true, data);
    }
}

static void vars_walk(const struct bo_metrics *reg, struct out *o, vars_fn fn, void *data)
{
    struct bo_buf name = BO_BUF_INIT;
    const struct bo_metric *m, *tmp;
    HASH_ITER(hh, reg->by_name, m, tmp)
    {
        if (m->only != NULL) {
            vars_series(o, &name, m->only, fn, data);
        }
        const struct bo_metrics_series *s, *stmp;
        HASH_ITER(hh, m->series, s, stmp)
        {
            vars_series(o, &name, s, fn, data);
        }
    }
    bo_buf_release(&name);
}

static void vars_text_line(struct out *o, const char *name, const struct bo_metrics_series *s,
                           bool sum, void *data)
{
    (void)data;
    put(o, name);
    put(o, " ");
    switch (s->metric->type) {
    case BO_METRIC_COUNTER:
        put_u64(o, s->v.u);
        break;
    case BO_METRIC_GAUGE:
        put_double(o, s->v.d);
        break;
    case BO_METRIC_GAUGE_INT:
        put_i64(o, s->v.i);
        break;
    case BO_METRIC_HISTOGRAM:
        if (sum) {
            put_double(o, s->sum);
        } else {
            put_u64(o, s->count);
        }
        break;
    }
    put(o, "\n");
}

int bo_metrics_render_vars(const struct bo_metrics *reg, struct bo_buf *out)
{
    struct out o = {out, out->len, BO_OK};
    vars_walk(reg, &o, vars_text_line, NULL);
    return finish(&o);
}

struct json_walk {
    json_t *obj;
    int prec; /* digits the doubles need to read back, at least 15 */
};

static json_t *json_double(struct json_walk *w, double v)
{
    if (!isfinite(v)) {
        return json_null();
    }
    char tmp[32];
    int prec = format_double(v, tmp);
    if (prec > w->prec) {
        w->prec = prec;
    }
    return json_real(v);
}

static json_t *json_u64(uint64_t v)
{
    return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static void vars_json_entry(struct out *o, const char *name, const struct bo_metrics_series *s,
                            bool sum, void *data)
{
    struct json_walk *w = data;
    json_t *v = NULL;
    switch (s->metric->type) {
    case BO_METRIC_COUNTER:
        v = json_u64(s->v.u);
        break;
    case BO_METRIC_GAUGE:
        v = json_double(w, s->v.d);
        break;
    case BO_METRIC_GAUGE_INT:
        v = json_integer((json_int_t)s->v.i);
        break;
    case BO_METRIC_HISTOGRAM:
        v = sum ? json_double(w, s->sum) : json_u64(s->count);
        break;
    }
    /* json_object_set_new takes `v` (and frees it on failure). */
    if (v == NULL || json_object_set_new(w->obj, name, v) != 0) {
        o->rv = BO_ENOMEM;
    }
}

static int dump_to_out(const char *buf, size_t size, void *data)
{
    struct out *o = data;
    put_mem(o, buf, size);
    return o->rv == BO_OK ? 0 : -1;
}

int bo_metrics_render_vars_json(const struct bo_metrics *reg, struct bo_buf *out)
{
    struct out o = {out, out->len, BO_OK};
    /* jansson prints reals with one precision for the whole document: use
     * the smallest that still reads every value back exactly, so that 0.3
     * prints as 0.3 rather than 0.29999999999999999. */
    struct json_walk w = {json_object(), 15};
    if (w.obj == NULL) {
        return BO_ENOMEM;
    }
    vars_walk(reg, &o, vars_json_entry, &w);
    if (o.rv == BO_OK &&
        json_dump_callback(w.obj, dump_to_out, &o, JSON_COMPACT | JSON_REAL_PRECISION(w.prec)) !=
            0 &&
        o.rv == BO_OK) {
        o.rv = BO_ENOMEM;
    }
    json_decref(w.obj);
    return finish(&o);
}
