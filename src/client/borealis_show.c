/*
 * borealis_show.c - the read-only `borealis job` verbs: status, list,
 * inspect, diff and open.
 *
 * Routes (docs/api.md):
 *   status   one job: GET /api/v1/tasks of its active tasks without
 *            configs, of its terminal ones with, and GET .../config for the
 *            active configs; a pattern: GET /api/v1/tasks?role&environment&
 *            job_name (the parts without globs; the rest matched here)
 *   list     GET /api/v1/jobs[?role=]
 *   diff     POST /api/v1/jobs/populate (the config as it would be stored)
 *            and GET /api/v1/jobs/{r}/{e}/{n}/config (what runs)
 *   inspect, open: no call
 *
 * `job status --write-json` prints Aurora's shape,
 * [{"job": "cluster/role/env/name", "active": [ScheduledTask], "inactive":
 * [...]}], with the entities as the API gives them (snake_case fields,
 * statuses as names), so `jq '.[0].active[0].status'` works as in Aurora's
 * end-to-end test.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/borealis_cli.h"
#include "common/mem.h"

#define KEY_MAX  (4 * BO_KEY_PART_MAX + 4)
#define PATH_LEN (4 * BO_KEY_PART_MAX + 96)

static bool has_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

/* A pattern part matches: empty (not given) matches everything. */
static bool part_matches(const char *pattern, const char *value)
{
    return !*pattern || fnmatch(pattern, value ? value : "", 0) == 0;
}

/* "&name=value" for a part given without globs. */
static void add_filter(char *buf, size_t size, const char *name, const char *value)
{
    if (!*value || has_glob(value))
        return;
    size_t len = strlen(buf);
    snprintf(buf + len, size - len, "%s%s=%s", strchr(buf, '?') ? "&" : "?", name, value);
}

/* ---- status ---- */

static void print_time(int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char buf[64];
    if (localtime_r(&t, &tm) && strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm))
        printf("%s", buf);
    else
        printf("%lld", (long long)ms);
}

static void print_task(json_t *t)
{
    json_t *at = json_object_get(t, "assigned_task");
    json_t *tc = json_object_get(at, "task");
    json_t *job = json_object_get(tc, "job");
    const char *host = json_string_value(json_object_get(at, "slave_host"));
    printf("\tTask role: %s, env: %s, name: %s, instance: %d, status: %s on %s\n",
           json_string_value(json_object_get(job, "role")),
           json_string_value(json_object_get(job, "environment")),
           json_string_value(json_object_get(job, "name")), cli_task_instance(t),
           cli_task_status(t), host && *host ? host : "(no host)");
    printf("\t  task id: %s\n", cli_task_id(t));
    double cpus = 0;
    json_int_t ram = 0, disk = 0;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(tc, "resources"), i, r)
    {
        cpus += json_number_value(json_object_get(r, "num_cpus"));
        ram += json_integer_value(json_object_get(r, "ram_mb"));
        disk += json_integer_value(json_object_get(r, "disk_mb"));
    }
    printf("\t  CPU: %g core(s), RAM: %lld MB, Disk: %lld MB\n", cpus, (long long)ram,
           (long long)disk);
    json_t *ports = json_object_get(at, "assigned_ports");
    if (json_object_size(ports)) {
        const char *name;
        json_t *v;
        bool first = true;
        printf("\t  assigned ports: ");
        json_object_foreach(ports, name, v)
        {
            printf("%s%s=%lld", first ? "" : ", ", name, (long long)json_integer_value(v));
            first = false;
        }
        printf("\n");
    }
    printf("\t  failure count: %lld (max %lld)\n",
           (long long)json_integer_value(json_object_get(t, "failure_count")),
           (long long)json_integer_value(json_object_get(tc, "max_task_failures")));
    printf("\t  events:\n");
    json_t *ev;
    json_array_foreach(json_object_get(t, "task_events"), i, ev)
    {
        const char *msg = json_string_value(json_object_get(ev, "message"));
        printf("\t   ");
        print_time(json_integer_value(json_object_get(ev, "timestamp_ms")));
        printf(" %s%s%s\n", json_string_value(json_object_get(ev, "status")),
               msg && *msg ? ": " : "", msg && *msg ? msg : "");
    }
}

static void print_job_text(json_t *entry)
{
    json_t *active = json_object_get(entry, "active");
    json_t *inactive = json_object_get(entry, "inactive");
    size_t i;
    json_t *t;
    printf("Job: %s\n", json_string_value(json_object_get(entry, "job")));
    printf("Active tasks (%zu):\n", json_array_size(active));
    json_array_foreach(active, i, t) print_task(t);
    printf("Inactive tasks (%zu):\n", json_array_size(inactive));
    json_array_foreach(inactive, i, t) print_task(t);
}

static json_t *new_entry(const char *key)
{
    return json_pack("{s:s, s:[], s:[]}", "job", key, "active", "inactive");
}

/* One job's tasks, each with its config, cheaply: a job's active tasks
 * mostly share a few configs, so ask for them without configs (the bulk of
 * the answer otherwise: 10,000 copies of the same config) and attach the
 * config of their instance from the job's config groups; the terminal tasks
 * (a bounded history) come with their own configs. The answer has the
 * shape of GET /api/v1/tasks. */
static int fetch_one_job(struct cli *cli, const struct bo_jobkey *k, json_t **resp)
{
    static const char ACTIVE[] = "PENDING,THROTTLED,ASSIGNED,STARTING,RUNNING,KILLING,RESTARTING,"
                                 "DRAINING,PREEMPTING,PARTITIONED";
    static const char TERMINAL[] = "FINISHED,FAILED,KILLED,LOST";
    char base[PATH_LEN], path[PATH_LEN + 160];
    json_t *active = NULL, *ended = NULL, *groups = NULL;
    snprintf(base, sizeof(base), "/api/v1/tasks?role=%s&environment=%s&job_name=%s", k->role,
             k->env, k->name);
    snprintf(path, sizeof(path), "%s&statuses=%s&configs=false", base, ACTIVE);
    int rc = cli_call(cli, "job status", "GET", path, NULL, &active);
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s&statuses=%s", base, TERMINAL);
        rc = cli_call(cli, "job status", "GET", path, NULL, &ended);
    }
    if (rc == 0) {
        cli_job_path(k, "/config", path, sizeof(path));
        rc = cli_call(cli, "job status", "GET", path, NULL, &groups);
    }
    if (rc != 0)
        goto out;
    json_t *list = json_object_get(active, "tasks");
    size_t i, j;
    json_t *t, *g;
    json_array_foreach(list, i, t)
    {
        json_t *at = json_object_get(t, "assigned_task");
        int inst = cli_task_instance(t);
        json_t *cfg = NULL;
        json_array_foreach(json_object_get(groups, "groups"), j, g)
        {
            size_t r;
            json_t *range;
            json_array_foreach(json_object_get(g, "instances"), r, range)
            {
                if (inst >= json_integer_value(json_object_get(range, "first")) &&
                    inst <= json_integer_value(json_object_get(range, "last")))
                    cfg = json_object_get(g, "config");
            }
        }
        if (cfg == NULL) {
            /* Changed between the two calls: ask for this one whole. */
            json_t *one = NULL;
            snprintf(path, sizeof(path), "/api/v1/tasks?task_ids=%s", cli_task_id(t));
            if ((rc = cli_call(cli, "job status", "GET", path, NULL, &one)) != 0)
                goto out;
            json_t *full = json_array_get(json_object_get(one, "tasks"), 0);
            if (full != NULL)
                json_array_set(list, i, full);
            json_decref(one);
            continue;
        }
        /* Shared, not copied: the tree is only read and printed. */
        json_object_set(at, "task", cfg);
    }
    json_array_extend(list, json_object_get(ended, "tasks"));
    *resp = json_incref(active);
out:
    json_decref(active);
    json_decref(ended);
    json_decref(groups);
    return rc;
}

int cli_job_status(struct cli *cli)
{
    struct bo_jobkey k = {0};
    json_t *resp = NULL, *out = NULL;
    char path[PATH_LEN];
    int rc = cli_jobkey(cli->args[0], BO_JOBKEY_PARTIAL, &k);
    if (rc != 0)
        return rc;
    if ((rc = cli_connect(cli, k.cluster)) != 0)
        goto out;
    bool exact = *k.name && !has_glob(k.role) && !has_glob(k.env) && !has_glob(k.name);
    if (exact) {
        rc = fetch_one_job(cli, &k, &resp);
    } else {
        snprintf(path, sizeof(path), "/api/v1/tasks");
        add_filter(path, sizeof(path), "role", k.role);
        add_filter(path, sizeof(path), "environment", k.env);
        add_filter(path, sizeof(path), "job_name", k.name);
        rc = cli_call(cli, "job status", "GET", path, NULL, &resp);
    }
    if (rc != 0)
        goto out;
    out = json_array();
    if (exact) {
        char key[KEY_MAX];
        bo_jobkey_str(&k, key, sizeof(key));
        json_array_append_new(out, new_entry(key));
    }
    size_t i;
    json_t *t, *cur = exact ? json_array_get(out, 0) : NULL;
    json_array_foreach(json_object_get(resp, "tasks"), i, t)
    {
        json_t *job =
            json_object_get(json_object_get(json_object_get(t, "assigned_task"), "task"), "job");
        const char *role = json_string_value(json_object_get(job, "role"));
        const char *env = json_string_value(json_object_get(job, "environment"));
        const char *name = json_string_value(json_object_get(job, "name"));
        if (!role || !env || !name || !part_matches(k.role, role) || !part_matches(k.env, env) ||
            !part_matches(k.name, name))
            continue;
        char key[KEY_MAX];
        snprintf(key, sizeof(key), "%s/%s/%s/%s", k.cluster, role, env, name);
        if (!cur || strcmp(json_string_value(json_object_get(cur, "job")), key) != 0) {
            cur = NULL;
            size_t j;
            json_t *e;
            json_array_foreach(out, j, e) if (strcmp(json_string_value(json_object_get(e, "job")),
                                                     key) == 0) cur = e;
            if (!cur) {
                cur = new_entry(key);
                json_array_append_new(out, cur);
            }
        }
        const char *which = cli_status_active(cli_task_status(t)) ? "active" : "inactive";
        json_array_append(json_object_get(cur, which), t);
    }
    if (cli->o.write_json) {
        cli_print_json(out, false);
    } else if (json_array_size(out) == 0) {
        printf("No jobs match '%s'\n", cli->args[0]);
    } else {
        json_t *e;
        json_array_foreach(out, i, e) print_job_text(e);
    }
out:
    json_decref(out);
    json_decref(resp);
    bo_jobkey_release(&k);
    return rc;
}

/* ---- list ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int cli_job_list(struct cli *cli)
{
    struct bo_jobkey k = {0};
    json_t *resp = NULL;
    char path[PATH_LEN];
    char **keys = NULL;
    size_t n = 0;
    int rc = cli_jobkey(cli->args[0], BO_JOBKEY_PARTIAL, &k);
    if (rc != 0)
        return rc;
    if ((rc = cli_connect(cli, k.cluster)) != 0)
        goto out;
    snprintf(path, sizeof(path), "/api/v1/jobs");
    add_filter(path, sizeof(path), "role", k.role);
    if ((rc = cli_call(cli, "job list", "GET", path, NULL, &resp)) != 0)
        goto out;
    json_t *configs = json_object_get(resp, "configs");
    keys = bo_calloc(json_array_size(configs) + 1, sizeof(*keys));
    if (!keys) {
        rc = cli_fail(BO_EXIT_UNKNOWN, "out of memory");
        goto out;
    }
    size_t i;
    json_t *c;
    json_array_foreach(configs, i, c)
    {
        json_t *key = json_object_get(c, "key");
        const char *role = json_string_value(json_object_get(key, "role"));
        const char *env = json_string_value(json_object_get(key, "environment"));
        const char *name = json_string_value(json_object_get(key, "name"));
        if (!role || !env || !name || !part_matches(k.role, role) || !part_matches(k.env, env) ||
            !part_matches(k.name, name))
            continue;
        char buf[KEY_MAX];
        snprintf(buf, sizeof(buf), "%s/%s/%s/%s", k.cluster, role, env, name);
        if (!(keys[n] = bo_strdup(buf))) {
            rc = cli_fail(BO_EXIT_UNKNOWN, "out of memory");
            goto out;
        }
        n++;
    }
    qsort(keys, n, sizeof(*keys), cmp_str);
    for (i = 0; i < n; i++)
        if (i == 0 || strcmp(keys[i], keys[i - 1]) != 0)
            printf("%s\n", keys[i]);
out:
    for (i = 0; keys && i < n; i++)
        bo_free(keys[i]);
    bo_free(keys);
    json_decref(resp);
    bo_jobkey_release(&k);
    return rc;
}

/* ---- open ---- */

int cli_job_open(struct cli *cli)
{
    struct bo_jobkey k = {0};
    struct bo_cluster c = {0};
    struct bo_err err = BO_ERR_INIT;
    int rc = cli_jobkey(cli->args[0], BO_JOBKEY_PARTIAL, &k);
    if (rc != 0)
        return rc;
    if (has_glob(k.role) || has_glob(k.env) || has_glob(k.name)) {
        rc = cli_fail(BO_EXIT_INVALID_PARAMETER, "'%s': no globs here", cli->args[0]);
        goto out;
    }
    if ((rc = bo_cluster_find(k.cluster, &c, &err)) != BO_OK) {
        rc = cli_fail(BO_EXIT_INVALID_PARAMETER, "%s", bo_err_msg(&err, rc));
        goto out;
    }
    if (c.n_urls == 0) {
        rc = cli_fail(BO_EXIT_INVALID_PARAMETER, "cluster '%s' has no scheduler URL", c.name);
    } else {
        printf("%s/scheduler", c.urls[0]);
        const char *parts[] = {k.role, k.env, k.name};
        for (size_t i = 0; i < 3 && *parts[i]; i++)
            printf("/%s", parts[i]);
        printf("\n");
    }
    bo_cluster_release(&c);
out:
    bo_jobkey_release(&k);
    return rc;
}

/* ---- inspect ---- */

/* The interpolated job the executor reads (task_config.executor_config.data). */
static json_t *executor_data(json_t *job)
{
    json_t *data = json_object_get(
        json_object_get(json_object_get(job, "task_config"), "executor_config"), "data");
    const char *s = json_string_value(data);
    return s && *s ? json_loads(s, 0, NULL) : NULL;
}

static void print_field(const char *indent, const char *name, json_t *v)
{
    if (!v)
        return;
    if (json_is_real(v)) {
        printf("%s%-22s %g\n", indent, name, json_real_value(v));
        return;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s) {
        printf("%s%-22s %s\n", indent, name, s);
        free(s);
    }
}

int cli_job_inspect(struct cli *cli)
{
    struct bo_jobkey k = {0};
    json_t *entry = NULL, *data = NULL;
    int rc = cli_jobkey(cli->args[0], BO_JOBKEY_FULL, &k);
    if (rc != 0)
        return rc;
    if ((rc = cli_config_job(cli, cli->args[1], &k, &entry, NULL)) != 0)
        goto out;
    json_t *job = json_object_get(entry, "job");
    if (cli->o.raw) {
        cli_print_json(job, true);
        goto out;
    }
    data = executor_data(job);
    if (cli->o.write_json) {
        cli_print_json(data ? data : job, false);
        goto out;
    }
    json_t *tc = json_object_get(job, "task_config");
    json_t *src = json_object_get(entry, "source");
    printf("Job level information (%s:%lld)\n", json_string_value(json_object_get(src, "file")),
           (long long)json_integer_value(json_object_get(src, "line")));
    print_field("  ", "key:", json_object_get(entry, "key"));
    print_field("  ", "instances:", json_object_get(job, "instance_count"));
    print_field("  ", "service:", json_object_get(tc, "is_service"));
    print_field("  ", "tier:", json_object_get(tc, "tier"));
    print_field("  ", "production:", json_object_get(tc, "production"));
    print_field("  ", "max task failures:", json_object_get(tc, "max_task_failures"));
    print_field("  ", "contact:", json_object_get(tc, "contact_email"));
    print_field("  ", "cron schedule:", json_object_get(job, "cron_schedule"));
    print_field("  ", "cron policy:", json_object_get(job, "cron_collision_policy"));
    print_field("  ", "resources:", json_object_get(tc, "resources"));
    print_field("  ", "constraints:", json_object_get(tc, "constraints"));
    print_field("  ", "update config:", json_object_get(entry, "update_config"));
    if (!data) {
        printf("(no executor data)\n");
        goto out;
    }
    json_t *task = json_object_get(data, "task");
    if (!json_object_get(task, "processes"))
        task = data;
    printf("Task level information\n");
    print_field("  ", "name:", json_object_get(task, "name"));
    print_field("  ", "max failures:", json_object_get(task, "max_failures"));
    print_field("  ", "max concurrency:", json_object_get(task, "max_concurrency"));
    print_field("  ", "finalization wait:", json_object_get(task, "finalization_wait"));
    print_field("  ", "constraints:", json_object_get(task, "constraints"));
    print_field("  ", "health check:", json_object_get(data, "health_check_config"));
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(task, "processes"), i, p)
    {
        printf("\nProcess '%s':\n", json_string_value(json_object_get(p, "name")));
        printf("  cmdline:\n");
        const char *cmd = json_string_value(json_object_get(p, "cmdline"));
        cmd = cmd ? cmd + strspn(cmd, "\n") : "";
        for (const char *l = cmd; *l;) {
            const char *nl = strchr(l, '\n');
            int len = nl ? (int)(nl - l) : (int)strlen(l);
            printf("    %.*s\n", len, l);
            l += len + (nl ? 1 : 0);
        }
        const char *flags[] = {"daemon", "ephemeral", "final"};
        for (size_t f = 0; f < 3; f++)
            if (json_is_true(json_object_get(p, flags[f])))
                printf("  %s\n", flags[f]);
        print_field("  ", "max failures:", json_object_get(p, "max_failures"));
        print_field("  ", "min duration:", json_object_get(p, "min_duration"));
    }
out:
    json_decref(data);
    json_decref(entry);
    bo_jobkey_release(&k);
    return rc;
}

/* ---- diff ---- */

/* A TaskConfig with its executor data parsed, for readable diffs. */
static void expand_data(json_t *tc)
{
    json_t *ec = json_object_get(tc, "executor_config");
    const char *s = json_string_value(json_object_get(ec, "data"));
    json_t *parsed = s && *s ? json_loads(s, 0, NULL) : NULL;
    if (parsed)
        json_object_set_new(ec, "data", parsed);
}

/* Split a string in place into lines. */
static char **split_lines(char *s, size_t *n)
{
    size_t cap = 1;
    for (char *p = s; *p; p++)
        cap += *p == '\n';
    char **lines = bo_calloc(cap + 1, sizeof(*lines));
    if (!lines)
        return NULL;
    size_t k = 0;
    char *p = s;
    while (*p) {
        lines[k++] = p;
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    *n = k;
    return lines;
}

struct edit {
    char op; /* ' ', '-', '+' */
    const char *line;
    size_t a, b; /* line numbers (1-based) in the old and new text */
};

#define DIFF_MAX_CELLS (16u * 1024 * 1024)
#define DIFF_CONTEXT   3

/* Longest common subsequence, then hunks with 3 lines of context. */
static int print_diff(const char *from, const char *to, char **a, size_t na, char **b, size_t nb)
{
    size_t cells;
    if (bo_mul_overflows(na + 1, nb + 1, &cells) || cells > DIFF_MAX_CELLS)
        return cli_fail(BO_EXIT_COMMAND_FAILURE, "diff: configs too large to compare");
    unsigned *L = bo_calloc(cells, sizeof(*L));
    struct edit *e = bo_calloc(na + nb + 1, sizeof(*e));
    if (!L || !e) {
        bo_free(L);
        bo_free(e);
        return cli_fail(BO_EXIT_UNKNOWN, "out of memory");
    }
#define LCS(i, j) L[(i) * (nb + 1) + (j)]
    for (size_t i = na; i-- > 0;)
        for (size_t j = nb; j-- > 0;)
            LCS(i, j) = strcmp(a[i], b[j]) == 0
                            ? LCS(i + 1, j + 1) + 1
                            : (LCS(i + 1, j) >= LCS(i, j + 1) ? LCS(i + 1, j) : LCS(i, j + 1));
    size_t ne = 0, i = 0, j = 0;
    while (i < na || j < nb) {
        if (i < na && j < nb && strcmp(a[i], b[j]) == 0) {
            e[ne++] = (struct edit){' ', a[i], i + 1, j + 1};
            i++, j++;
        } else if (i < na && (j == nb || LCS(i + 1, j) >= LCS(i, j + 1))) {
            e[ne++] = (struct edit){'-', a[i], i + 1, j + 1};
            i++;
        } else {
            e[ne++] = (struct edit){'+', b[j], i + 1, j + 1};
            j++;
        }
    }
#undef LCS
    bool header = false;
    for (size_t x = 0; x < ne;) {
        if (e[x].op == ' ') {
            x++;
            continue;
        }
        /* A hunk: from DIFF_CONTEXT before this change to DIFF_CONTEXT after
         * the last change closer than 2 * DIFF_CONTEXT. */
        size_t start = x > DIFF_CONTEXT ? x - DIFF_CONTEXT : 0, end = x;
        for (size_t y = x; y < ne; y++) {
            if (e[y].op != ' ')
                end = y;
            else if (y - end > 2 * DIFF_CONTEXT)
                break;
        }
        end = end + DIFF_CONTEXT + 1 < ne ? end + DIFF_CONTEXT + 1 : ne;
        size_t ca = 0, cb = 0;
        for (size_t y = start; y < end; y++) {
            ca += e[y].op != '+';
            cb += e[y].op != '-';
        }
        if (!header) {
            printf("--- %s\n+++ %s\n", from, to);
            header = true;
        }
        printf("@@ -%zu,%zu +%zu,%zu @@\n", ca ? e[start].a : e[start].a - 1, ca,
               cb ? e[start].b : e[start].b - 1, cb);
        for (size_t y = start; y < end; y++)
            printf("%c%s\n", e[y].op, e[y].line);
        x = end;
    }
    bo_free(L);
    bo_free(e);
    return 0;
}

int cli_job_diff(struct cli *cli)
{
    struct bo_jobkey k = {0};
    json_t *entry = NULL, *populated = NULL, *remote = NULL, *local = NULL, *running = NULL;
    char *sa = NULL, *sb = NULL;
    char **la = NULL, **lb = NULL;
    char path[PATH_LEN], key[KEY_MAX];
    int rc = cli_jobkey(cli->args[0], BO_JOBKEY_FULL, &k);
    if (rc != 0)
        return rc;
    bo_jobkey_str(&k, key, sizeof(key));
    if ((rc = cli_config_job(cli, cli->args[1], &k, &entry, NULL)) != 0 ||
        (rc = cli_connect(cli, k.cluster)) != 0)
        goto out;
    if ((rc = cli_call(cli, "job diff", "POST", "/api/v1/jobs/populate",
                       json_object_get(entry, "job"), &populated)) != 0)
        goto out;
    cli_job_path(&k, "/config", path, sizeof(path));
    if ((rc = cli_call(cli, "job diff", "GET", path, NULL, &remote)) != 0)
        goto out;
    json_t *rgroups = json_object_get(remote, "groups");
    size_t i;
    json_t *g;
    json_array_foreach(rgroups, i, g) expand_data(json_object_get(g, "config"));
    json_int_t n = json_integer_value(json_object_get(populated, "instance_count"));
    json_t *tc = json_object_get(populated, "task_config");
    expand_data(tc);
    local = json_pack("{s:[{s:[{s:I, s:I}], s:O}]}", "groups", "instances", "first", (json_int_t)0,
                      "last", n - 1, "config", tc);
    running = json_pack("{s:O}", "groups", rgroups);
    sa = running ? json_dumps(running, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    sb = json_dumps(local, JSON_INDENT(2) | JSON_SORT_KEYS);
    size_t na = 0, nb = 0;
    if (!sa || !sb || !(la = split_lines(sa, &na)) || !(lb = split_lines(sb, &nb))) {
        rc = cli_fail(BO_EXIT_UNKNOWN, "out of memory");
        goto out;
    }
    char from[KEY_MAX + 16], to[1024];
    snprintf(from, sizeof(from), "%s (running)", key);
    snprintf(to, sizeof(to), "%s (%s)", key, cli->args[1]);
    rc = print_diff(from, to, la, na, lb, nb);
out:
    bo_free(la);
    bo_free(lb);
    free(sa);
    free(sb);
    json_decref(local);
    json_decref(running);
    json_decref(remote);
    json_decref(populated);
    json_decref(entry);
    bo_jobkey_release(&k);
    return rc;
}
