/*
 * metrics.h - counters, gauges and histograms, rendered as Prometheus text
 * and as Aurora-style /vars and /vars.json.
 *
 * A registry (struct bo_metrics) holds metrics; a metric has a type, a name,
 * a help text and a fixed list of label names given when it is registered;
 * each distinct list of label values is a series with its own value. Hot
 * paths look a series up once and keep the handle:
 *
 *     struct bo_metric *m;
 *     static const char *const labels[] = {"code"};
 *     struct bo_metric_desc d = {BO_METRIC_COUNTER, "http_responses_total",
 *                                "HTTP responses by status code", labels, 1};
 *     bo_metrics_register(reg, &d, &m, err);
 *     struct bo_metrics_series *ok = bo_metrics_with(m, "200");   // once
 *     bo_metrics_inc(ok, 1);                                      // cheap
 *
 * Series live as long as the registry; there is no removal.
 *
 * Renderings (all append to a bo_buf; on failure the buffer is left as it
 * was and BO_ENOMEM returned). Metrics appear in registration order, series
 * in creation order.
 *   - Prometheus text exposition format 0.0.4 (BO_METRICS_PROMETHEUS_TYPE):
 *     "# HELP" (when help is set) and "# TYPE" per metric, then one sample
 *     line per series; histograms give cumulative "_bucket{...,le="..."}"
 *     lines ending with le="+Inf", then "_sum" and "_count". Label values
 *     escape backslash, double quote and newline; help escapes backslash and
 *     newline.
 *   - /vars: one "name value" line per series (Aurora's /vars). The name is
 *     the metric name followed, for each label value in label order, by '_'
 *     and the value with every byte outside [A-Za-z0-9_.:-] replaced by '_':
 *     task_store{state="RUNNING"} is "task_store_RUNNING",
 *     http{code="200",kind="responses"} is "http_200_responses". A histogram
 *     gives two lines, that name plus "_count" and plus "_sum". Distinct
 *     series can map to one name (values differing only in replaced bytes,
 *     or a metric named like another's series); keeping names apart is the
 *     owner's business.
 *   - /vars.json: one JSON object {"name": value, ...} with the same names
 *     and values, compact, in the same order (a later duplicate name
 *     overwrites the earlier value in place).
 *
 * Numbers: counters and integer gauges print as integers. In text, doubles
 * print in the shortest form that reads back to the same value ("0.25",
 * "1e+20", "3"), and as "NaN", "+Inf", "-Inf". In JSON, doubles are jansson
 * reals printed with the fewest digits (15 to 17) that read every value of
 * the document back exactly ("0.3", "3.0"); NaN and infinities are null.
 *
 * Threads: none of it is thread-safe; use a registry from one thread (the
 * loop thread). Work on other threads reports its numbers back to the loop.
 * Lifecycle: bo_metrics_new -> register, update, render -> bo_metrics_free.
 */
#ifndef BO_METRICS_H
#define BO_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define BO_METRICS_PROMETHEUS_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct bo_metrics;
struct bo_metric;
struct bo_metrics_series;

enum bo_metric_type {
    BO_METRIC_COUNTER,   /* uint64, only goes up */
    BO_METRIC_GAUGE,     /* double */
    BO_METRIC_GAUGE_INT, /* int64 */
    BO_METRIC_HISTOGRAM  /* fixed buckets, sum and count */
};

struct bo_metric_desc {
    enum bo_metric_type type;
    /* [a-zA-Z_:][a-zA-Z0-9_:]*, unique in the registry */
    const char *name;
    const char *help; /* may be NULL */
    /* Label names, [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", distinct,
     * not "le" for histograms. */
    const char *const *labels;
    size_t n_labels;
    /* Histograms only: finite, strictly increasing bucket upper bounds (the
     * +Inf bucket is implicit); at least one. */
    const double *bounds;
    size_t n_bounds;
};

int bo_metrics_new(struct bo_metrics **out);
/* Frees the registry, its metrics and series; every handle becomes invalid. */
void bo_metrics_free(struct bo_metrics *reg);

/* Register a metric; the description is copied. BO_EINVAL for a bad name,
 * label or bounds, BO_EEXIST for a name taken, BO_ENOMEM. The metric is owned
 * by the registry. */
int bo_metrics_register(struct bo_metrics *reg, const struct bo_metric_desc *desc,
                        struct bo_metric **out, struct bo_err *err);

/* The series for these label values (copied), created at zero the first time.
 * `n` must equal the metric's label count (values may be NULL when it is
 * 0). Returns NULL only when out of memory. Cost: a hash of the values; keep
 * the handle on hot paths. */
struct bo_metrics_series *bo_metrics_series(struct bo_metric *m, const char *const *values,
                                            size_t n);

/* bo_metrics_series with the values as arguments, counted for you:
 *     bo_metrics_with(m, "GET", "200") */
#define bo_metrics_with(m, ...)                                                                    \
    bo_metrics_series((m), (const char *const[]){__VA_ARGS__},                                     \
                      sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* Updates; each asserts the series' type. Counter increments wrap at 2^64. */
void bo_metrics_inc(struct bo_metrics_series *s, uint64_t delta);    /* counter */
void bo_metrics_set(struct bo_metrics_series *s, double v);          /* gauge */
void bo_metrics_add(struct bo_metrics_series *s, double delta);      /* gauge */
void bo_metrics_set_int(struct bo_metrics_series *s, int64_t v);     /* integer gauge */
void bo_metrics_add_int(struct bo_metrics_series *s, int64_t delta); /* integer gauge */
void bo_metrics_observe(struct bo_metrics_series *s, double v);      /* histogram */

/* Reads, for tests and for owners that derive one number from another. */
uint64_t bo_metrics_counter_value(const struct bo_metrics_series *s);
double bo_metrics_gauge_value(const struct bo_metrics_series *s);
int64_t bo_metrics_gauge_int_value(const struct bo_metrics_series *s);
uint64_t bo_metrics_histogram_count(const struct bo_metrics_series *s);
double bo_metrics_histogram_sum(const struct bo_metrics_series *s);

int bo_metrics_render_prometheus(const struct bo_metrics *reg, struct bo_buf *out);
int bo_metrics_render_vars(const struct bo_metrics *reg, struct bo_buf *out);
int bo_metrics_render_vars_json(const struct bo_metrics *reg, struct bo_buf *out);

#endif
