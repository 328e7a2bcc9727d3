/*
 * borealis_job.c - `borealis job ...`: create, add, kill, killall, restart.
 * (status, list, inspect, diff and open, the read-only verbs, are in
 * borealis_show.c.)
 *
 * Routes (docs/api.md):
 *   create   POST /api/v1/jobs                          then waits on GET /api/v1/tasks
 *   add      POST /api/v1/jobs/{r}/{e}/{n}/instances    {"instance_id", "count"}
 *   kill     POST /api/v1/jobs/{r}/{e}/{n}/kill         {"instances", "message"}, per batch
 *   restart  POST /api/v1/jobs/{r}/{e}/{n}/restart      {"instances", "message"}, per batch
 *
 * kill and killall wait until the killed instances have no active task.
 * restart is client-side, like Aurora's: a batch is restarted, then each of
 * its instances must get a new task that reaches RUNNING and stays RUNNING
 * (the same task id) for --watch-secs. A watched task that stops running is
 * a failure of its instance; the scheduler reschedules it and the new task
 * is watched again, until the instance has failed more than
 * --max-per-instance-failures times. More than --max-total-failures failed
 * instances stop the restart with exit 4.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/borealis_cli.h"
#include "common/mem.h"

#define KEY_MAX  (4 * BO_KEY_PART_MAX + 4)
#define PATH_LEN (4 * BO_KEY_PART_MAX + 64)

/* [first, first + n) as a bo_malloc'd array. */
static int *range(int first, size_t n)
{
    int *a = bo_calloc(n ? n : 1, sizeof(*a));
    if (a)
        for (size_t i = 0; i < n; i++)
            a[i] = first + (int)i;
    return a;
}

static json_t *int_array(const int *a, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, json_integer(a[i]));
    return arr;
}

/* The distinct instances with an active task, sorted. */
static int active_instances(json_t *tasks, int **out, size_t *n)
{
    size_t cap = json_array_size(tasks);
    int *a = bo_calloc(cap ? cap : 1, sizeof(*a));
    if (!a)
        return cli_fail(BO_EXIT_UNKNOWN, "out of memory");
    size_t k = 0, i;
    json_t *t;
    json_array_foreach(tasks, i, t)
    {
        if (!cli_status_active(cli_task_status(t)))
            continue;
        int inst = cli_task_instance(t);
        size_t j = 0;
        while (j < k && a[j] < inst)
            j++;
        if (j < k && a[j] == inst)
            continue;
        memmove(a + j + 1, a + j, (k - j) * sizeof(*a));
        a[j] = inst;
        k++;
    }
    *out = a;
    *n = k;
    return 0;
}

/* ---- create, add ---- */

int cli_job_create(struct cli *cli)
{
    struct bo_jobkey k = {0};
    json_t *entry = NULL, *resp = NULL;
    int *inst = NULL;
    char key[KEY_MAX];
    int rc = cli_jobkey(cli->args[0], BO_JOBKEY_FULL, &k);
    if (rc != 0)
        return rc;
    bo_jobkey_str(&k, key, sizeof(key));
    if ((rc = cli_config_job(cli, cli->args[1], &k, &entry, NULL)) != 0)
        goto out;
    json_t *job = json_object_get(entry, "job");
    const char *cron = json_string_value(json_object_get(job, "cron_schedule"));
    if (cron && *cron) {
        rc = cli_fail(BO_EXIT_COMMAND_FAILURE,
                      "job '%s' is a cron job ('%s'): cron jobs may only be scheduled with "
                      "'borealis cron schedule'",
                      key, cron);
        goto out;
    }
    if ((rc = cli_connect(cli, k.cluster)) != 0)
        goto out;
    if ((rc = cli_call(cli, "create job", "POST", "/api/v1/jobs", job, &resp)) != 0)
        goto out;
    printf("Job create succeeded: job url=%s/scheduler/%s/%s/%s\n", bo_client_url(cli->client),
           k.role, k.env, k.name);
    fflush(stdout);
    json_int_t n = json_integer_value(json_object_get(resp, "instances"));
    if (n <= 0)
        n = json_integer_value(json_object_get(job, "instance_count"));
    if (!(inst = range(0, (size_t)n))) {
        rc = cli_fail(BO_EXIT_UNKNOWN, "out of memory");
        goto out;
    }
    rc = cli_wait_until(cli, &k, inst, (size_t)n, cli->o.wait_until);
out:
    bo_free(inst);
    json_decref(resp);
    json_decref(entry);
    bo_jobkey_release(&k);
    return rc;
}

int cli_job_add(struct cli *cli)
{
    struct bo_jobkey k = {0};
    json_t *body = NULL, *resp = NULL;
    int *inst = NULL;
    char path[PATH_LEN], key[KEY_MAX];
    int rc = cli_jobkey(cli->args[0], BO_JOBKEY_INSTANCES | BO_JOBKEY_NEED_INSTANCES, &k);
    if (rc != 0)
        return rc;
    bo_jobkey_str(&k, key, sizeof(key));
    char *end;
    long count = strtol(cli->args[1], &end, 10);
    if (*cli->args[1] == '\0' || *end != '\0' || count < 1 || count > 100000) {
        rc = cli_fail(BO_EXIT_INVALID_PARAMETER, "COUNT '%s': expected a positive integer",
                      cli->args[1]);
        goto out;
    }
    if (k.n_instances != 1) {
        rc = cli_fail(BO_EXIT_INVALID_PARAMETER,
                      "'%s': name exactly one instance to copy (CLUSTER/ROLE/ENV/NAME/INSTANCE)",
                      cli->args[0]);
        goto out;
    }
    if ((rc = cli_connect(cli, k.cluster)) != 0)
        goto out;
    body = json_pack("{s:i, s:i}", "instance_id", k.instances[0], "count", (int)count);
    cli_job_path(&k, "/instances", path, sizeof(path));
    if ((rc = cli_call(cli, "add instances", "POST", path, body, &resp)) != 0)
        goto out;
    int first = (int)json_integer_value(json_object_get(resp, "first_instance"));
    printf("Added %ld instance(s) to job %s: %d-%ld\n", count, key, first, first + count - 1);
    fflush(stdout);
    if (!(inst = range(first, (size_t)count))) {
        rc = cli_fail(BO_EXIT_UNKNOWN, "out of memory");
        goto out;
    }
    rc = cli_wait_until(cli, &k, inst, (size_t)count, cli->o.wait_until);
out:
    bo_free(inst);
    json_decref(body);
    json_decref(resp);
    bo_jobkey_release(&k);
    return rc;
}

/* ---- kill, killall ---- */

struct gone_ctx {
    const int *instances; /* NULL: the whole job */
    size_t n;
};

static bool gone_done(struct cli *cli, json_t *tasks, void *data)
{
    (void)cli;
    struct gone_ctx *g = data;
    size_t i, active = 0, total = 0;
    json_t *t;
    json_array_foreach(tasks, i, t)
    {
        int inst = cli_task_instance(t);
        bool mine = !g->instances;
        for (size_t j = 0; !mine && j < g->n; j++)
            mine = g->instances[j] == inst;
        if (!mine)
            continue;
        total++;
        if (cli_status_active(cli_task_status(t)))
            active++;
    }
    if (bo_client_tty())
        bo_client_progress("killing: %zu active, %zu gone", active, total - active);
    return active == 0;
}

/* Kill `inst` (all active instances when NULL) in batches. */
static int kill_batches(struct cli *cli, const struct bo_jobkey *k, const int *inst, size_t n)
{
    char path[PATH_LEN];
    cli_job_path(k, "/kill", path, sizeof(path));
    size_t batch = cli->o.no_batching      ? (n ? n : 1)
                   : cli->o.batch_size > 0 ? (size_t)cli->o.batch_size
                                           : 1;
    if (!inst) {
        /* --no-batching on the whole job: one call, every active instance. */
        json_t *body = json_object();
        if (cli->o.message)
            json_object_set_new(body, "message", json_string(cli->o.message));
        int rc = cli_call(cli, "kill job", "POST", path, body, NULL);
        json_decref(body);
        if (rc != 0)
            return rc;
        struct gone_ctx g = {NULL, 0};
        return cli_wait(cli, k, "killing", gone_done, &g);
    }
    for (size_t off = 0; off < n; off += batch) {
        size_t m = n - off < batch ? n - off : batch;
        json_t *body = json_pack("{s:o}", "instances", int_array(inst + off, m));
        if (cli->o.message)
            json_object_set_new(body, "message", json_string(cli->o.message));
        int rc = cli_call(cli, "kill job", "POST", path, body, NULL);
        json_decref(body);
        if (rc != 0)
            return rc;
        struct gone_ctx g = {inst + off, m};
        if ((rc = cli_wait(cli, k, "killing", gone_done, &g)) != 0)
            return rc;
    }
    return 0;
}

int cli_job_kill(struct cli *cli)
{
    struct bo_jobkey k = {0};
    int rc = cli_jobkey(cli->args[0], BO_JOBKEY_INSTANCES | BO_JOBKEY_NEED_INSTANCES, &k);
    if (rc != 0)
        return rc;
    if ((rc = cli_connect(cli, k.cluster)) == 0 &&
        (rc = kill_batches(cli, &k, k.instances, k.n_instances)) == 0)
        printf("Job kill succeeded\n");
    bo_jobkey_release(&k);
    return rc;
}

int cli_job_killall(struct cli *cli)
{
    struct bo_jobkey k = {0};
    json_t *tasks = NULL;
    int *inst = NULL;
    size_t n = 0;
    int rc = cli_jobkey(cli->args[0], BO_JOBKEY_FULL, &k);
    if (rc != 0)
        return rc;
    if ((rc = cli_connect(cli, k.cluster)) != 0)
        goto out;
    if (cli->o.no_batching) {
        rc = kill_batches(cli, &k, NULL, 0);
    } else {
        if ((rc = cli_job_tasks(cli, &k, false, &tasks)) != 0 ||
            (rc = active_instances(tasks, &inst, &n)) != 0)
            goto out;
        rc = kill_batches(cli, &k, inst, n);
    }
    if (rc == 0)
        printf("Job killall succeeded\n");
out:
    bo_free(inst);
    json_decref(tasks);
    bo_jobkey_release(&k);
    return rc;
}

/* ---- restart ---- */

#define TASK_ID_MAX 256

enum rs_state { RS_WAITING, RS_WATCHING, RS_DONE, RS_FAILED };

struct rs_inst {
    int id;
    char old[TASK_ID_MAX];   /* the task restarted ("" if there was none to restart) */
    char watch[TASK_ID_MAX]; /* the new task being watched, or the last one that failed */
    int64_t running_since;   /* when we first saw `watch` RUNNING */
    long failures;
    enum rs_state state;
};

struct rs_ctx {
    struct rs_inst *insts;
    size_t n;
    long failed_total;
    bool abort;
    int64_t watch_ms;
    long max_per_instance, max_total;
};

static void rs_failure(struct rs_ctx *r, struct rs_inst *in, const char *task, const char *why)
{
    in->failures++;
    if (task != in->watch)
        snprintf(in->watch, sizeof(in->watch), "%s", task);
    in->state = RS_WAITING;
    bo_client_progress_done();
    fprintf(stderr, "borealis: instance %d: task '%s' %s (failure %ld)\n", in->id, task, why,
            in->failures);
    if (in->failures > r->max_per_instance) {
        in->state = RS_FAILED;
        r->failed_total++;
        if (r->failed_total > r->max_total)
            r->abort = true;
    }
}

static bool rs_step(struct cli *cli, json_t *tasks, void *data)
{
    (void)cli;
    struct rs_ctx *r = data;
    int64_t now = cli_now_ms();
    size_t waiting = 0, watching = 0, done = 0;
    for (size_t i = 0; i < r->n && !r->abort; i++) {
        struct rs_inst *in = &r->insts[i];
        if (in->state == RS_DONE || in->state == RS_FAILED) {
            done++;
            continue;
        }
        json_t *cur = NULL;
        cli_instance_tasks(tasks, &in->id, 1, &cur);
        const char *id = cur ? cli_task_id(cur) : "";
        const char *st = cur ? cli_task_status(cur) : "";
        bool is_new = cur && strcmp(id, in->old) != 0;
        if (!is_new) {
            waiting++;
            continue;
        }
        if (in->state == RS_WATCHING && strcmp(id, in->watch) != 0) {
            rs_failure(r, in, in->watch, "was replaced while watched");
        } else if (in->state == RS_WATCHING && strcmp(st, "RUNNING") != 0) {
            rs_failure(r, in, id, "stopped running while watched");
            continue;
        }
        if (in->state == RS_FAILED)
            continue;
        if (strcmp(st, "RUNNING") == 0) {
            if (in->state != RS_WATCHING) {
                in->state = RS_WATCHING;
                snprintf(in->watch, sizeof(in->watch), "%s", id);
                in->running_since = now;
            }
            if (now - in->running_since >= r->watch_ms) {
                in->state = RS_DONE;
                done++;
            } else {
                watching++;
            }
        } else if (cli_status_terminal(st) && strcmp(id, in->watch) != 0) {
            /* A new task that ended before we saw it watched. */
            rs_failure(r, in, id, "ended before it was watched");
        } else {
            waiting++;
        }
    }
    if (bo_client_tty() && !r->abort)
        bo_client_progress("restarting: %zu waiting, %zu watching, %zu done (of %zu)", waiting,
                           watching, done, r->n);
    for (size_t i = 0; i < r->n; i++)
        if (r->insts[i].state != RS_DONE && r->insts[i].state != RS_FAILED)
            return r->abort;
    return true;
}

static int restart_batch(struct cli *cli, const struct bo_jobkey *k, struct rs_ctx *r,
                         struct rs_inst *batch, size_t m)
{
    json_t *tasks = NULL;
    int rc = cli_job_tasks(cli, k, false, &tasks);
    if (rc != 0)
        return rc;
    int *ids = bo_calloc(m, sizeof(*ids));
    if (!ids) {
        json_decref(tasks);
        return cli_fail(BO_EXIT_UNKNOWN, "out of memory");
    }
    for (size_t i = 0; i < m; i++) {
        json_t *cur = NULL;
        ids[i] = batch[i].id;
        cli_instance_tasks(tasks, &batch[i].id, 1, &cur);
        const char *st = cur ? cli_task_status(cur) : "";
        /* PENDING tasks are not restarted: they are the "new" task already. */
        bool keeps = !cur || strcmp(st, "PENDING") == 0 || strcmp(st, "THROTTLED") == 0;
        snprintf(batch[i].old, sizeof(batch[i].old), "%s", keeps ? "" : cli_task_id(cur));
    }
    json_decref(tasks);
    char path[PATH_LEN];
    cli_job_path(k, "/restart", path, sizeof(path));
    json_t *body = json_pack("{s:o}", "instances", int_array(ids, m));
    if (cli->o.message)
        json_object_set_new(body, "message", json_string(cli->o.message));
    bo_free(ids);
    rc = cli_call(cli, "restart", "POST", path, body, NULL);
    json_decref(body);
    if (rc != 0)
        return rc;
    struct rs_ctx sub = *r;
    sub.insts = batch;
    sub.n = m;
    rc = cli_wait(cli, k, "restarting", rs_step, &sub);
    r->failed_total = sub.failed_total;
    r->abort = sub.abort;
    return rc;
}

int cli_job_restart(struct cli *cli)
{
    struct bo_jobkey k = {0};
    json_t *tasks = NULL;
    int *inst = NULL;
    size_t n = 0;
    struct rs_inst *insts = NULL;
    char key[KEY_MAX];
    int rc = cli_jobkey(cli->args[0], BO_JOBKEY_INSTANCES, &k);
    if (rc != 0)
        return rc;
    bo_jobkey_str(&k, key, sizeof(key));
    if ((rc = cli_connect(cli, k.cluster)) != 0)
        goto out;
    if (k.n_instances) {
        inst = range(0, k.n_instances);
        if (inst)
            memcpy(inst, k.instances, k.n_instances * sizeof(*inst));
        n = k.n_instances;
    } else {
        if ((rc = cli_job_tasks(cli, &k, false, &tasks)) != 0 ||
            (rc = active_instances(tasks, &inst, &n)) != 0)
            goto out;
        if (n == 0) {
            rc = cli_fail(BO_EXIT_COMMAND_FAILURE, "job '%s' has no active instances", key);
            goto out;
        }
    }
    insts = bo_calloc(n ? n : 1, sizeof(*insts));
    if (!inst || !insts) {
        rc = cli_fail(BO_EXIT_UNKNOWN, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        insts[i].id = inst[i];
    struct rs_ctx r = {.insts = insts,
                       .n = n,
                       .watch_ms = (int64_t)cli->o.watch_secs * 1000,
                       .max_per_instance = cli->o.max_per_instance_failures,
                       .max_total = cli->o.max_total_failures};
    size_t batch = cli->o.batch_size > 0 ? (size_t)cli->o.batch_size : 1;
    for (size_t off = 0; off < n && rc == 0; off += batch) {
        size_t m = n - off < batch ? n - off : batch;
        rc = restart_batch(cli, &k, &r, insts + off, m);
        if (rc == 0 && r.abort)
            rc = cli_fail(BO_EXIT_COMMAND_FAILURE,
                          "restart of '%s' stopped: %ld instance(s) failed, more than "
                          "--max-total-failures %ld",
                          key, r.failed_total, r.max_total);
    }
    if (rc == 0) {
        if (r.failed_total)
            printf("Job restart succeeded with %ld failed instance(s)\n", r.failed_total);
        else
            printf("Job restart succeeded\n");
    }
out:
    bo_free(insts);
    bo_free(inst);
    json_decref(tasks);
    bo_jobkey_release(&k);
    return rc;
}
