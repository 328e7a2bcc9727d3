/*
 * tconf.c - task.json and Thermos config parsing and validation.
 *
 * Happy path: jansson parses task.json; the launch record's fields are read
 * with defaults; the Thermos data string found at
 * task.assigned_task.task.executor_config.data is parsed again as JSON. Its
 * shape is told apart by a "task" object holding "processes" (Aurora's whole
 * job) versus "processes" at top level (the short shape). Processes are read
 * in order, then the order constraints are turned into per-process
 * predecessor lists and checked for unknown names, final/non-final mixes and
 * cycles (Kahn's algorithm: whatever is left unsorted lies on a cycle). The
 * announce portmap is resolved last, because health checks and the lifecycle
 * look their ports up through it.
 *
 * Failure modes: every problem is BO_EINVAL with a message naming the field
 * and the process ("process 'web': 'max_failures' must be an integer"); the
 * first problem wins and the half-built struct is released, so the caller
 * sees either a whole config or an empty one. Memory is BO_ENOMEM.
 */
#include "executor/tconf.h"

#include <assert.h>
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

#define MIB (1024LL * 1024LL)

/* ---- typed field readers: absent or null = default; wrong type = error ---- */

static int get_str(json_t *obj, const char *key, const char *def, char **out, const char *ctx,
                   struct bo_err *err)
{
    json_t *v = json_object_get(obj, key);
    const char *s = def;
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_string(v)) {
            return bo_errf(err, BO_EINVAL, "%s'%s' must be a string", ctx, key);
        }
        s = json_string_value(v);
    }
    if (s == NULL) {
        *out = NULL;
        return BO_OK;
    }
    *out = bo_strdup(s);
    return *out == NULL ? bo_errf(err, BO_ENOMEM, "out of memory") : BO_OK;
}

static int get_int(json_t *obj, const char *key, int64_t def, int64_t *out, const char *ctx,
                   struct bo_err *err)
{
    json_t *v = json_object_get(obj, key);
    *out = def;
    if (v == NULL || json_is_null(v)) {
        return BO_OK;
    }
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return BO_OK;
    }
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
        fabs(json_real_value(v)) < 9e15) {
        *out = (int64_t)json_real_value(v);
        return BO_OK;
    }
    return bo_errf(err, BO_EINVAL, "%s'%s' must be an integer", ctx, key);
}

static int get_count(json_t *obj, const char *key, int def, int *out, const char *ctx,
                     struct bo_err *err)
{
    int64_t v;
    int rv = get_int(obj, key, def, &v, ctx, err);
    if (rv != BO_OK) {
        return rv;
    }
    if (v < 0 || v > 1000000) {
        return bo_errf(err, BO_EINVAL, "%s'%s' must be between 0 and 1000000", ctx, key);
    }
    *out = (int)v;
    return BO_OK;
}

/* Seconds (integer or real) to milliseconds; must not be negative. */
static int get_secs(json_t *obj, const char *key, double def, int64_t *out_ms, const char *ctx,
                    struct bo_err *err)
{
    json_t *v = json_object_get(obj, key);
    double s = def;
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_number(v)) {
            return bo_errf(err, BO_EINVAL, "%s'%s' must be a number", ctx, key);
        }
        s = json_number_value(v);
    }
    if (!(s >= 0) || s > 1e9) {
        return bo_errf(err, BO_EINVAL, "%s'%s' must be a non-negative number of seconds", ctx, key);
    }
    *out_ms = (int64_t)llround(s * 1000.0);
    return BO_OK;
}

static int get_bool(json_t *obj, const char *key, bool def, bool *out, const char *ctx,
                    struct bo_err *err)
{
    json_t *v = json_object_get(obj, key);
    *out = def;
    if (v == NULL || json_is_null(v)) {
        return BO_OK;
    }
    if (!json_is_boolean(v)) {
        return bo_errf(err, BO_EINVAL, "%s'%s' must be true or false", ctx, key);
    }
    *out = json_is_true(v);
    return BO_OK;
}

/* An optional object member: NULL when absent or null; error when not an object. */
static int get_obj(json_t *obj, const char *key, json_t **out, const char *ctx, struct bo_err *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return BO_OK;
    }
    if (!json_is_object(v)) {
        return bo_errf(err, BO_EINVAL, "%s'%s' must be an object", ctx, key);
    }
    *out = v;
    return BO_OK;
}

/* ---- processes ---- */

static int parse_logger(struct bo_tconf_proc *p, json_t *jp, const char *ctx, struct bo_err *err)
{
    json_t *lg;
    int rv = get_obj(jp, "logger", &lg, ctx, err);
    p->log_dest = BO_TCONF_LOG_FILE;
    p->log_rotate = false;
    p->log_size = 100 * MIB;
    p->log_backups = 5;
    if (rv != BO_OK || lg == NULL) {
        return rv;
    }
    char *dest = NULL;
    char *mode = NULL;
    if ((rv = get_str(lg, "destination", "file", &dest, ctx, err)) != BO_OK) {
        goto out;
    }
    if ((rv = get_str(lg, "mode", "standard", &mode, ctx, err)) != BO_OK) {
        goto out;
    }
    static const char *const dests[] = {"file", "console", "both", "none"};
    p->log_dest = -1;
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(dest, dests[i]) == 0) {
            p->log_dest = i;
        }
    }
    if (p->log_dest < 0) {
        rv = bo_errf(err, BO_EINVAL,
                     "%slogger destination '%s' is not one of file, console, "
                     "both, none",
                     ctx, dest);
        goto out;
    }
    if (strcasecmp(mode, "rotate") == 0) {
        p->log_rotate = true;
    } else if (strcasecmp(mode, "standard") != 0) {
        rv =
            bo_errf(err, BO_EINVAL, "%slogger mode '%s' is not one of standard, rotate", ctx, mode);
        goto out;
    }
    json_t *rot;
    if ((rv = get_obj(lg, "rotate", &rot, ctx, err)) != BO_OK || rot == NULL) {
        goto out;
    }
    if ((rv = get_int(rot, "log_size", 100 * MIB, &p->log_size, ctx, err)) != BO_OK) {
        goto out;
    }
    if ((rv = get_count(rot, "backups", 5, &p->log_backups, ctx, err)) != BO_OK) {
        goto out;
    }
    if (p->log_size <= 0) {
        rv = bo_errf(err, BO_EINVAL, "%srotate 'log_size' must be positive", ctx);
    }
out:
    bo_free(dest);
    bo_free(mode);
    return rv;
}

static int parse_proc(struct bo_tconf_proc *p, json_t *jp, size_t idx, struct bo_err *err)
{
    char ctx[160];
    if (!json_is_object(jp)) {
        return bo_errf(err, BO_EINVAL, "process %zu is not an object", idx);
    }
    snprintf(ctx, sizeof(ctx), "process %zu: ", idx);
    int rv = get_str(jp, "name", NULL, &p->name, ctx, err);
    if (rv != BO_OK) {
        return rv;
    }
    if (p->name == NULL || p->name[0] == '\0') {
        return bo_errf(err, BO_EINVAL, "process %zu has no name", idx);
    }
    for (const char *s = p->name; *s != '\0'; s++) {
        if (*s == '/' || (unsigned char)*s < 0x20) {
            return bo_errf(err, BO_EINVAL, "process name '%s' has a '/' or a control character",
                           p->name);
        }
    }
    if (strcmp(p->name, ".") == 0 || strcmp(p->name, "..") == 0) {
        return bo_errf(err, BO_EINVAL, "process name '%s' is not allowed", p->name);
    }
    snprintf(ctx, sizeof(ctx), "process '%.100s': ", p->name);
    if ((rv = get_str(jp, "cmdline", NULL, &p->cmdline, ctx, err)) != BO_OK) {
        return rv;
    }
    if (p->cmdline == NULL) {
        return bo_errf(err, BO_EINVAL, "%sno 'cmdline'", ctx);
    }
    int64_t mf;
    if ((rv = get_int(jp, "max_failures", 1, &mf, ctx, err)) != BO_OK) {
        return rv;
    }
    if (mf < 0 || mf > 1000000) {
        return bo_errf(err, BO_EINVAL, "%s'max_failures' must be between 0 and 1000000", ctx);
    }
    p->max_failures = (int)mf;
    if ((rv = get_bool(jp, "daemon", false, &p->daemon, ctx, err)) != BO_OK ||
        (rv = get_bool(jp, "ephemeral", false, &p->ephemeral, ctx, err)) != BO_OK ||
        (rv = get_bool(jp, "final", false, &p->final, ctx, err)) != BO_OK ||
        (rv = get_secs(jp, "min_duration", 5, &p->min_duration_ms, ctx, err)) != BO_OK) {
        return rv;
    }
    return parse_logger(p, jp, ctx, err);
}

static int add_after(struct bo_tconf_proc *p, size_t pred)
{
    for (size_t i = 0; i < p->nafter; i++) {
        if (p->after[i] == pred) {
            return BO_OK;
        }
    }
    size_t *v = bo_reallocarray(p->after, p->nafter + 1, sizeof(*v));
    if (v == NULL) {
        return BO_ENOMEM;
    }
    v[p->nafter++] = pred;
    p->after = v;
    return BO_OK;
}

static int parse_constraints(struct bo_tconf *c, json_t *task, struct bo_err *err)
{
    json_t *cons = json_object_get(task, "constraints");
    if (cons == NULL || json_is_null(cons)) {
        return BO_OK;
    }
    if (!json_is_array(cons)) {
        return bo_errf(err, BO_EINVAL, "'constraints' must be a list");
    }
    size_t i;
    json_t *con;
    json_array_foreach(cons, i, con)
    {
        json_t *order = json_is_object(con) ? json_object_get(con, "order") : NULL;
        if (order == NULL || !json_is_array(order)) {
            return bo_errf(err, BO_EINVAL, "constraint %zu has no 'order' list", i);
        }
        long prev = -1;
        size_t j;
        json_t *jn;
        json_array_foreach(order, j, jn)
        {
            if (!json_is_string(jn)) {
                return bo_errf(err, BO_EINVAL, "constraint %zu: order entries must be strings", i);
            }
            const char *name = json_string_value(jn);
            long k = bo_tconf_proc_index(c, name);
            if (k < 0) {
                return bo_errf(err, BO_EINVAL, "order constraint names unknown process '%s'", name);
            }
            if (prev >= 0) {
                struct bo_tconf_proc *a = &c->procs[prev];
                struct bo_tconf_proc *b = &c->procs[k];
                if (a->final != b->final) {
                    const struct bo_tconf_proc *f = a->final ? a : b;
                    const struct bo_tconf_proc *nf = a->final ? b : a;
                    return bo_errf(err, BO_EINVAL,
                                   "final process '%s' is ordered against non-final process '%s'",
                                   f->name, nf->name);
                }
                if (prev == k) {
                    return bo_errf(err, BO_EINVAL, "order constraint has a cycle through '%s'",
                                   name);
                }
                if (add_after(b, (size_t)prev) != BO_OK) {
                    return bo_errf(err, BO_ENOMEM, "out of memory");
                }
            }
            prev = k;
        }
    }
    /* Kahn's algorithm: processes never reaching in-degree 0 are on a cycle. */
    size_t n = c->nprocs;
    size_t *indeg = bo_calloc(n, sizeof(*indeg));
    size_t *queue = bo_calloc(n, sizeof(*queue));
    int rv = BO_OK;
    if (indeg == NULL || queue == NULL) {
        rv = bo_errf(err, BO_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        indeg[k] = c->procs[k].nafter;
    }
    size_t head = 0, tail = 0;
    for (size_t k = 0; k < n; k++) {
        if (indeg[k] == 0) {
            queue[tail++] = k;
        }
    }
    while (head < tail) {
        size_t done = queue[head++];
        for (size_t k = 0; k < n; k++) {
            for (size_t a = 0; a < c->procs[k].nafter; a++) {
                if (c->procs[k].after[a] == done && --indeg[k] == 0) {
                    queue[tail++] = k;
                }
            }
        }
    }
    if (tail < n) {
        for (size_t k = 0; k < n; k++) {
            if (indeg[k] > 0) {
                rv = bo_errf(err, BO_EINVAL, "order constraints have a cycle through '%s'",
                             c->procs[k].name);
                break;
            }
        }
    }
out:
    bo_free(indeg);
    bo_free(queue);
    return rv;
}

/* ---- ports ---- */

static int add_port(struct bo_tconf *c, const char *name, int port)
{
    struct bo_tconf_port *v = bo_reallocarray(c->ports, c->nports + 1, sizeof(*v));
    if (v == NULL) {
        return BO_ENOMEM;
    }
    c->ports = v;
    v[c->nports].name = bo_strdup(name);
    if (v[c->nports].name == NULL) {
        return BO_ENOMEM;
    }
    v[c->nports].port = port;
    c->nports++;
    return BO_OK;
}

/* A decimal port number ("8080"), or -1. */
static int static_port(const char *s)
{
    if (*s == '\0' || strlen(s) > 5) {
        return -1;
    }
    int v = 0;
    for (; *s != '\0'; s++) {
        if (!isdigit((unsigned char)*s)) {
            return -1;
        }
        v = v * 10 + (*s - '0');
    }
    return v <= 65535 ? v : -1;
}

/* Follow `name` through the portmap: the port, 0 if it resolves to nothing,
 * or BO_EINVAL on a cycle. */
static int resolve_alias(const struct bo_tconf *c, json_t *portmap, const char *primary,
                         const char *start, int *port, struct bo_err *err)
{
    const char *name = start;
    size_t limit = json_object_size(portmap) + 1;
    for (size_t hops = 0; hops <= limit; hops++) {
        int p = bo_tconf_port(c, name);
        if (p > 0) {
            *port = p;
            return BO_OK;
        }
        json_t *v = json_object_get(portmap, name);
        if (v == NULL) {
            *port = 0;
            return BO_OK;
        }
        if (json_is_integer(v)) {
            json_int_t iv = json_integer_value(v);
            if (iv <= 0 || iv > 65535) {
                return bo_errf(err, BO_EINVAL, "announce portmap: '%s' is not a port number", name);
            }
            *port = (int)iv;
            return BO_OK;
        }
        if (!json_is_string(v)) {
            return bo_errf(err, BO_EINVAL, "announce portmap: '%s' must be a name or a port", name);
        }
        const char *next = json_string_value(v);
        int sp = static_port(next);
        if (sp > 0) {
            *port = sp;
            return BO_OK;
        }
        if (strcmp(next, "{{primary_port}}") == 0) {
            next = primary;
        }
        name = next;
    }
    return bo_errf(err, BO_EINVAL, "announce portmap: cycle through '%s'", start);
}

static int parse_announce(struct bo_tconf *c, json_t *root, struct bo_err *err)
{
    json_t *ann;
    int rv = get_obj(root, "announce", &ann, "", err);
    if (rv != BO_OK || ann == NULL) {
        return rv;
    }
    json_t *prim = json_object_get(ann, "primary_port");
    const char *primary = json_is_string(prim) ? json_string_value(prim) : "http";
    json_t *portmap = json_object_get(ann, "portmap");
    json_t *owned = NULL;
    if (portmap == NULL || json_is_null(portmap)) {
        owned = json_pack("{s:s}", "aurora", primary);
        if (owned == NULL) {
            return bo_errf(err, BO_ENOMEM, "out of memory");
        }
        portmap = owned;
    } else if (!json_is_object(portmap)) {
        return bo_errf(err, BO_EINVAL, "announce 'portmap' must be an object");
    }
    const char *key;
    json_t *v;
    json_object_foreach(portmap, key, v)
    {
        (void)v;
        if (bo_tconf_port(c, key) > 0) {
            continue; /* an assigned port wins over an alias of the same name */
        }
        int port = 0;
        if ((rv = resolve_alias(c, portmap, primary, key, &port, err)) != BO_OK) {
            break;
        }
        if (port > 0 && add_port(c, key, port) != BO_OK) {
            rv = bo_errf(err, BO_ENOMEM, "out of memory");
            break;
        }
    }
    json_decref(owned);
    return rv;
}

/* ---- health checks and lifecycle ---- */

static int parse_health(struct bo_tconf *c, json_t *root, struct bo_err *err)
{
    struct bo_tconf_health *h = &c->health;
    json_t *hc, *checker = NULL, *http = NULL, *shell = NULL;
    const char *ctx = "health_check_config: ";
    int rv = get_obj(root, "health_check_config", &hc, "", err);
    if (rv != BO_OK) {
        return rv;
    }
    json_t *empty = json_object();
    if (empty == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    if (hc == NULL) {
        hc = empty;
    }
    if ((rv = get_obj(hc, "health_checker", &checker, ctx, err)) != BO_OK) {
        goto out;
    }
    if (checker != NULL) {
        if ((rv = get_obj(checker, "http", &http, ctx, err)) != BO_OK ||
            (rv = get_obj(checker, "shell", &shell, ctx, err)) != BO_OK) {
            goto out;
        }
    }
    if (http == NULL) {
        http = hc; /* legacy: endpoint and expected_response at top level */
    }
    int64_t code;
    if ((rv = get_str(http, "endpoint", "/health", &h->endpoint, ctx, err)) != BO_OK ||
        (rv = get_str(http, "expected_response", "ok", &h->expected_response, ctx, err)) != BO_OK ||
        (rv = get_int(http, "expected_response_code", 0, &code, ctx, err)) != BO_OK) {
        goto out;
    }
    if (code < 0 || code > 999) {
        rv = bo_errf(err, BO_EINVAL, "%s'expected_response_code' is not an HTTP status", ctx);
        goto out;
    }
    h->expected_response_code = (int)code;
    if (h->endpoint[0] != '/') {
        rv = bo_errf(err, BO_EINVAL, "%s'endpoint' must start with '/'", ctx);
        goto out;
    }
    if (shell != NULL) {
        if ((rv = get_str(shell, "shell_command", NULL, &h->shell_command, ctx, err)) != BO_OK) {
            goto out;
        }
        if (h->shell_command == NULL || h->shell_command[0] == '\0') {
            rv = bo_errf(err, BO_EINVAL, "%sshell checker has no 'shell_command'", ctx);
            goto out;
        }
    }
    if ((rv = get_secs(hc, "initial_interval_secs", 15, &h->initial_interval_ms, ctx, err)) !=
            BO_OK ||
        (rv = get_secs(hc, "interval_secs", 10, &h->interval_ms, ctx, err)) != BO_OK ||
        (rv = get_secs(hc, "timeout_secs", 1, &h->timeout_ms, ctx, err)) != BO_OK ||
        (rv = get_count(hc, "max_consecutive_failures", 0, &h->max_consecutive_failures, ctx,
                        err)) != BO_OK ||
        (rv = get_count(hc, "min_consecutive_successes", 1, &h->min_consecutive_successes, ctx,
                        err)) != BO_OK) {
        goto out;
    }
    if (h->interval_ms <= 0) {
        rv = bo_errf(err, BO_EINVAL, "%s'interval_secs' must be positive", ctx);
        goto out;
    }
    if (h->timeout_ms <= 0) {
        h->timeout_ms = 1000;
    }
    h->port = bo_tconf_port(c, "health");
    if (h->shell_command != NULL) {
        h->kind = BO_TCONF_HEALTH_SHELL;
    } else if (h->port > 0) {
        h->kind = BO_TCONF_HEALTH_HTTP;
    } else {
        h->kind = BO_TCONF_HEALTH_NONE;
    }
out:
    json_decref(empty);
    return rv;
}

static int parse_lifecycle(struct bo_tconf *c, json_t *root, struct bo_err *err)
{
    struct bo_tconf_lifecycle *l = &c->lifecycle;
    const char *ctx = "lifecycle: ";
    json_t *lc, *http = NULL;
    int rv = get_obj(root, "lifecycle", &lc, "", err);
    if (rv != BO_OK) {
        return rv;
    }
    json_t *empty = json_object();
    if (empty == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    if (lc == NULL) {
        http = empty; /* Aurora's default: LifecycleConfig(http=HttpLifecycleConfig()) */
    } else if ((rv = get_obj(lc, "http", &http, ctx, err)) != BO_OK) {
        goto out;
    }
    bool enabled = http != NULL;
    if (http == NULL) {
        http = empty;
    }
    if ((rv = get_str(http, "port", "health", &l->port_name, ctx, err)) != BO_OK ||
        (rv = get_str(http, "graceful_shutdown_endpoint", "/quitquitquit", &l->graceful_endpoint,
                      ctx, err)) != BO_OK ||
        (rv = get_str(http, "shutdown_endpoint", "/abortabortabort", &l->shutdown_endpoint, ctx,
                      err)) != BO_OK ||
        (rv = get_secs(http, "graceful_shutdown_wait_secs", 5, &l->graceful_wait_ms, ctx, err)) !=
            BO_OK ||
        (rv = get_secs(http, "shutdown_wait_secs", 5, &l->shutdown_wait_ms, ctx, err)) != BO_OK) {
        goto out;
    }
    l->port = enabled ? bo_tconf_port(c, l->port_name) : 0;
out:
    json_decref(empty);
    return rv;
}

/* ---- the Thermos data ---- */

int bo_tconf_parse_thermos(struct bo_tconf *c, const char *data,
                           const struct bo_tconf_port *assigned, size_t nassigned,
                           struct bo_err *err)
{
    json_error_t jerr;
    json_t *root = json_loads(data, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return bo_errf(err, BO_EINVAL, "executor data is not JSON: %s (line %d)", jerr.text,
                       jerr.line);
    }
    int rv = BO_OK;
    if (!json_is_object(root)) {
        rv = bo_errf(err, BO_EINVAL, "executor data is not a JSON object");
        goto out;
    }
    json_t *task = json_object_get(root, "task");
    if (!json_is_object(task) || json_object_get(task, "processes") == NULL) {
        task = root; /* the short shape */
    }
    json_t *procs = json_object_get(task, "processes");
    if (procs == NULL || json_is_null(procs)) {
        rv = bo_errf(err, BO_EINVAL, "task has no processes");
        goto out;
    }
    if (!json_is_array(procs)) {
        rv = bo_errf(err, BO_EINVAL, "'processes' must be a list");
        goto out;
    }
    if (json_array_size(procs) == 0) {
        rv = bo_errf(err, BO_EINVAL, "task has no processes");
        goto out;
    }
    c->procs = bo_calloc(json_array_size(procs), sizeof(*c->procs));
    if (c->procs == NULL) {
        rv = bo_errf(err, BO_ENOMEM, "out of memory");
        goto out;
    }
    size_t i;
    json_t *jp;
    json_array_foreach(procs, i, jp)
    {
        c->nprocs = i + 1;
        if ((rv = parse_proc(&c->procs[i], jp, i, err)) != BO_OK) {
            goto out;
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(c->procs[k].name, c->procs[i].name) == 0) {
                rv = bo_errf(err, BO_EINVAL, "duplicate process name '%s'", c->procs[i].name);
                goto out;
            }
        }
    }
    const char *ctx = "task: ";
    int64_t fw;
    if ((rv = get_str(task, "name", c->procs[0].name, &c->task_name, ctx, err)) != BO_OK ||
        (rv = get_count(task, "max_failures", 1, &c->max_failures, ctx, err)) != BO_OK ||
        (rv = get_count(task, "max_concurrency", 0, &c->max_concurrency, ctx, err)) != BO_OK ||
        (rv = get_secs(task, "finalization_wait", 30, &fw, ctx, err)) != BO_OK) {
        goto out;
    }
    c->finalization_wait_ms = fw;
    if ((rv = parse_constraints(c, task, err)) != BO_OK) {
        goto out;
    }
    for (size_t k = 0; k < nassigned; k++) {
        if (add_port(c, assigned[k].name, assigned[k].port) != BO_OK) {
            rv = bo_errf(err, BO_ENOMEM, "out of memory");
            goto out;
        }
    }
    if ((rv = parse_announce(c, root, err)) != BO_OK ||
        (rv = parse_health(c, root, err)) != BO_OK ||
        (rv = parse_lifecycle(c, root, err)) != BO_OK) {
        goto out;
    }
out:
    json_decref(root);
    return rv;
}

/* ---- task.json ---- */

static int parse_ports(json_t *at, struct bo_tconf_port **out, size_t *n, struct bo_err *err)
{
    json_t *ap = json_object_get(at, "assigned_ports");
    *out = NULL;
    *n = 0;
    if (ap == NULL || json_is_null(ap)) {
        return BO_OK;
    }
    if (!json_is_object(ap)) {
        return bo_errf(err, BO_EINVAL, "'assigned_ports' must be an object");
    }
    size_t cnt = json_object_size(ap);
    if (cnt == 0) {
        return BO_OK;
    }
    struct bo_tconf_port *v = bo_calloc(cnt, sizeof(*v));
    if (v == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    const char *key;
    json_t *jv;
    json_object_foreach(ap, key, jv)
    {
        if (!json_is_integer(jv) || json_integer_value(jv) <= 0 || json_integer_value(jv) > 65535) {
            bo_free(v);
            return bo_errf(err, BO_EINVAL, "assigned port '%s' is not a port number", key);
        }
        v[*n].name = (char *)key; /* borrowed from the JSON tree */
        v[*n].port = (int)json_integer_value(jv);
        (*n)++;
    }
    *out = v;
    return BO_OK;
}

static int dup_nonempty(json_t *obj, const char *key, char **out, struct bo_err *err)
{
    int rv = get_str(obj, key, NULL, out, "cgroups: ", err);
    if (rv == BO_OK && *out != NULL && (*out)[0] == '\0') {
        bo_free(*out);
        *out = NULL;
    }
    return rv;
}

int bo_tconf_parse(struct bo_tconf *c, const char *text, size_t len, struct bo_err *err)
{
    memset(c, 0, sizeof(*c));
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (root == NULL) {
        return bo_errf(err, BO_EINVAL, "task.json is not JSON: %s (line %d)", jerr.text, jerr.line);
    }
    int rv = BO_OK;
    struct bo_tconf_port *assigned = NULL;
    size_t nassigned = 0;
    if (!json_is_object(root)) {
        rv = bo_errf(err, BO_EINVAL, "task.json is not an object");
        goto out;
    }
    json_t *st = json_object_get(root, "task");
    if (!json_is_object(st)) {
        rv = bo_errf(err, BO_EINVAL, "task.json has no 'task' object");
        goto out;
    }
    json_t *at = json_object_get(st, "assigned_task");
    if (!json_is_object(at)) {
        at = st; /* tolerate an AssignedTask without its ScheduledTask wrapper */
    }
    json_t *tc = json_object_get(at, "task");
    json_t *ec = json_is_object(tc) ? json_object_get(tc, "executor_config") : NULL;
    json_t *data = json_is_object(ec) ? json_object_get(ec, "data") : NULL;
    if (!json_is_string(data)) {
        rv = bo_errf(err, BO_EINVAL, "task has no executor_config data");
        goto out;
    }
    int64_t inst;
    char *slave_host = NULL;
    if ((rv = get_str(at, "task_id", "", &c->task_id, "task: ", err)) != BO_OK ||
        (rv = get_int(at, "instance_id", 0, &inst, "task: ", err)) != BO_OK ||
        (rv = get_str(at, "slave_host", "", &slave_host, "task: ", err)) != BO_OK) {
        goto out;
    }
    c->instance = (int)inst;
    rv = get_str(root, "hostname", slave_host, &c->hostname, "", err);
    bo_free(slave_host);
    if (rv != BO_OK) {
        goto out;
    }
    if ((rv = get_str(root, "sandbox", NULL, &c->sandbox, "", err)) != BO_OK) {
        goto out;
    }
    if (c->sandbox == NULL || c->sandbox[0] != '/') {
        rv = bo_errf(err, BO_EINVAL, "task.json has no absolute 'sandbox' path");
        goto out;
    }
    if ((rv = get_str(root, "user", "", &c->user, "", err)) != BO_OK) {
        goto out;
    }
    if (c->user[0] != '\0' && json_object_get(root, "uid") != NULL) {
        int64_t uid, gid;
        if ((rv = get_int(root, "uid", 0, &uid, "", err)) != BO_OK ||
            (rv = get_int(root, "gid", 0, &gid, "", err)) != BO_OK) {
            goto out;
        }
        if (uid < 0 || gid < 0 || uid > UINT32_MAX - 1 || gid > UINT32_MAX - 1) {
            rv = bo_errf(err, BO_EINVAL, "'uid' and 'gid' must be user and group ids");
            goto out;
        }
        c->has_ids = true;
        c->uid = (uint32_t)uid;
        c->gid = (uint32_t)gid;
    }
    json_t *lim, *cg;
    if ((rv = get_obj(root, "limits", &lim, "", err)) != BO_OK ||
        (rv = get_obj(root, "cgroups", &cg, "", err)) != BO_OK) {
        goto out;
    }
    if (lim != NULL) {
        json_t *cpus = json_object_get(lim, "cpus");
        if ((rv = get_int(lim, "ram_bytes", 0, &c->ram_bytes, "limits: ", err)) != BO_OK ||
            (rv = get_int(lim, "disk_bytes", 0, &c->disk_bytes, "limits: ", err)) != BO_OK) {
            goto out;
        }
        c->cpus = json_is_number(cpus) ? json_number_value(cpus) : 0;
    }
    if (cg != NULL) {
        if ((rv = dup_nonempty(cg, "memory", &c->cg_memory, err)) != BO_OK ||
            (rv = dup_nonempty(cg, "cpu", &c->cg_cpu, err)) != BO_OK ||
            (rv = dup_nonempty(cg, "unified", &c->cg_unified, err)) != BO_OK) {
            goto out;
        }
    }
    char *enf = NULL;
    if ((rv = get_str(root, "memory_enforcement", NULL, &enf, "", err)) != BO_OK) {
        goto out;
    }
    bool have_mem_cg = c->cg_memory != NULL || c->cg_unified != NULL;
    if (enf == NULL) {
        c->mem_sampling = !have_mem_cg && c->ram_bytes > 0;
    } else if (strcmp(enf, "sampling") == 0) {
        c->mem_sampling = c->ram_bytes > 0;
    } else if (strcmp(enf, "cgroup") == 0) {
        /* without a memory cgroup there is nothing else to enforce with */
        c->mem_sampling = !have_mem_cg && c->ram_bytes > 0;
    } else {
        rv = bo_errf(err, BO_EINVAL,
                     "'memory_enforcement' must be 'cgroup' or 'sampling', not "
                     "'%s'",
                     enf);
    }
    bo_free(enf);
    if (rv != BO_OK) {
        goto out;
    }
    if ((rv = get_int(root, "disk_check_interval_ms", 10000, &c->disk_check_interval_ms, "",
                      err)) != BO_OK ||
        (rv = get_int(root, "stop_timeout_ms", 120000, &c->stop_timeout_ms, "", err)) != BO_OK) {
        goto out;
    }
    if (c->disk_check_interval_ms <= 0) {
        c->disk_check_interval_ms = 10000;
    }
    if (c->stop_timeout_ms <= 0) {
        c->stop_timeout_ms = 120000;
    }
    if ((rv = parse_ports(at, &assigned, &nassigned, err)) != BO_OK) {
        goto out;
    }
    rv = bo_tconf_parse_thermos(c, json_string_value(data), assigned, nassigned, err);
out:
    bo_free(assigned);
    json_decref(root);
    if (rv != BO_OK) {
        bo_tconf_release(c);
    }
    return rv;
}

int bo_tconf_port(const struct bo_tconf *c, const char *name)
{
    for (size_t i = 0; i < c->nports; i++) {
        if (strcmp(c->ports[i].name, name) == 0) {
            return c->ports[i].port;
        }
    }
    return 0;
}

long bo_tconf_proc_index(const struct bo_tconf *c, const char *name)
{
    for (size_t i = 0; i < c->nprocs; i++) {
        if (c->procs[i].name != NULL && strcmp(c->procs[i].name, name) == 0) {
            return (long)i;
        }
    }
    return -1;
}

void bo_tconf_release(struct bo_tconf *c)
{
    bo_free(c->task_id);
    bo_free(c->sandbox);
    bo_free(c->hostname);
    bo_free(c->user);
    bo_free(c->cg_memory);
    bo_free(c->cg_cpu);
    bo_free(c->cg_unified);
    bo_free(c->task_name);
    for (size_t i = 0; i < c->nprocs; i++) {
        bo_free(c->procs[i].name);
        bo_free(c->procs[i].cmdline);
        bo_free(c->procs[i].after);
    }
    bo_free(c->procs);
    for (size_t i = 0; i < c->nports; i++) {
        bo_free(c->ports[i].name);
    }
    bo_free(c->ports);
    bo_free(c->health.endpoint);
    bo_free(c->health.expected_response);
    bo_free(c->health.shell_command);
    bo_free(c->lifecycle.port_name);
    bo_free(c->lifecycle.graceful_endpoint);
    bo_free(c->lifecycle.shutdown_endpoint);
    memset(c, 0, sizeof(*c));
}
