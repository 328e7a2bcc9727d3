/*
 * borealis_cmds.c - `borealis cron ...`, `borealis quota get` and
 * `borealis config list`.
 *
 * Routes (docs/api.md):
 *   cron schedule    PUT    /api/v1/cron/{r}/{e}/{n}   the config's JobConfiguration
 *   cron deschedule  DELETE /api/v1/cron/{r}/{e}/{n}
 *   cron start       POST   /api/v1/cron/{r}/{e}/{n}/start
 *   cron show        GET    /api/v1/cron               (the job's entry)
 *   quota get        GET    /api/v1/quotas/{role}
 *   config list      no call
 */
#include <stdio.h>
#include <string.h>

#include "client/borealis_cli.h"

#define KEY_MAX  (4 * BO_KEY_PART_MAX + 4)
#define PATH_LEN (4 * BO_KEY_PART_MAX + 64)

static void cron_path(const struct bo_jobkey *k, const char *suffix, char *buf, size_t size)
{
    snprintf(buf, size, "/api/v1/cron/%s/%s/%s%s", k->role, k->env, k->name, suffix);
}

/* Parse the key and connect: the opening of every cron verb. */
static int cron_open(struct cli *cli, struct bo_jobkey *k, char *key)
{
    int rc = cli_jobkey(cli->args[0], BO_JOBKEY_FULL, k);
    if (rc != 0)
        return rc;
    bo_jobkey_str(k, key, KEY_MAX);
    return 0;
}

int cli_cron_schedule(struct cli *cli)
{
    struct bo_jobkey k = {0};
    json_t *entry = NULL, *resp = NULL;
    char key[KEY_MAX], path[PATH_LEN];
    int rc = cron_open(cli, &k, key);
    if (rc != 0)
        return rc;
    if ((rc = cli_config_job(cli, cli->args[1], &k, &entry, NULL)) != 0)
        goto out;
    json_t *job = json_object_get(entry, "job");
    const char *cron = json_string_value(json_object_get(job, "cron_schedule"));
    if (!cron || !*cron) {
        rc = cli_fail(BO_EXIT_COMMAND_FAILURE,
                      "job '%s' has no cron_schedule: non-cron jobs are created with "
                      "'borealis job create'",
                      key);
        goto out;
    }
    if ((rc = cli_connect(cli, k.cluster)) != 0)
        goto out;
    cron_path(&k, "", path, sizeof(path));
    if ((rc = cli_call(cli, "cron schedule", "PUT", path, job, &resp)) != 0)
        goto out;
    printf("Cron job %s: %s '%s', status can be viewed at %s/scheduler/%s/%s/%s\n", key,
           json_is_true(json_object_get(resp, "replaced")) ? "replaced" : "scheduled", cron,
           bo_client_url(cli->client), k.role, k.env, k.name);
out:
    json_decref(resp);
    json_decref(entry);
    bo_jobkey_release(&k);
    return rc;
}

int cli_cron_deschedule(struct cli *cli)
{
    struct bo_jobkey k = {0};
    char key[KEY_MAX], path[PATH_LEN];
    int rc = cron_open(cli, &k, key);
    if (rc != 0)
        return rc;
    cron_path(&k, "", path, sizeof(path));
    if ((rc = cli_connect(cli, k.cluster)) == 0 &&
        (rc = cli_call(cli, "cron deschedule", "DELETE", path, NULL, NULL)) == 0)
        printf("Cron descheduling succeeded: %s\n", key);
    bo_jobkey_release(&k);
    return rc;
}

int cli_cron_start(struct cli *cli)
{
    struct bo_jobkey k = {0};
    json_t *resp = NULL;
    char key[KEY_MAX], path[PATH_LEN];
    int rc = cron_open(cli, &k, key);
    if (rc != 0)
        return rc;
    cron_path(&k, "/start", path, sizeof(path));
    if ((rc = cli_connect(cli, k.cluster)) == 0 &&
        (rc = cli_call(cli, "cron start", "POST", path, NULL, &resp)) == 0) {
        const char *outcome = json_string_value(json_object_get(resp, "outcome"));
        printf("Cron run started: %s (%s)\n", key, outcome ? outcome : "started");
    }
    json_decref(resp);
    bo_jobkey_release(&k);
    return rc;
}

static bool same(json_t *obj, const char *field, const char *want)
{
    const char *v = json_string_value(json_object_get(obj, field));
    return v && strcmp(v, want) == 0;
}

int cli_cron_show(struct cli *cli)
{
    struct bo_jobkey k = {0};
    json_t *resp = NULL;
    char key[KEY_MAX];
    int rc = cron_open(cli, &k, key);
    if (rc != 0)
        return rc;
    if ((rc = cli_connect(cli, k.cluster)) != 0 ||
        (rc = cli_call(cli, "cron show", "GET", "/api/v1/cron", NULL, &resp)) != 0)
        goto out;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(resp, "cron_jobs"), i, c)
    {
        json_t *jk = json_object_get(c, "key");
        if (same(jk, "role", k.role) && same(jk, "environment", k.env) &&
            same(jk, "name", k.name)) {
            printf("%s\t%s\n", key, json_string_value(json_object_get(c, "cron_schedule")));
            goto out;
        }
    }
    rc = cli_fail(BO_EXIT_INVALID_PARAMETER, "no cron job '%s'", key);
out:
    json_decref(resp);
    bo_jobkey_release(&k);
    return rc;
}

/* ---- quota ---- */

static void print_resources(const char *title, json_t *r)
{
    printf("%s:\n", title);
    printf("  CPU: %g\n", json_number_value(json_object_get(r, "cpu")));
    printf("  RAM: %f GB\n", (double)json_integer_value(json_object_get(r, "ram_mb")) / 1024.0);
    printf("  Disk: %f GB\n", (double)json_integer_value(json_object_get(r, "disk_mb")) / 1024.0);
}

int cli_quota_get(struct cli *cli)
{
    struct bo_jobkey k = {0};
    json_t *resp = NULL;
    char path[PATH_LEN];
    int rc = cli_jobkey(cli->args[0], BO_JOBKEY_PARTIAL, &k);
    if (rc != 0)
        return rc;
    if (!*k.role || *k.env || strpbrk(k.role, "*?[")) {
        rc = cli_fail(BO_EXIT_INVALID_PARAMETER, "'%s': expected CLUSTER/ROLE", cli->args[0]);
        goto out;
    }
    snprintf(path, sizeof(path), "/api/v1/quotas/%s", k.role);
    if ((rc = cli_connect(cli, k.cluster)) != 0 ||
        (rc = cli_call(cli, "quota get", "GET", path, NULL, &resp)) != 0)
        goto out;
    if (cli->o.write_json) {
        cli_print_json(resp, false);
        goto out;
    }
    print_resources("Allocated", json_object_get(resp, "quota"));
    static const struct {
        const char *field, *title;
    } POOLS[] = {
        {"prod_shared_consumption", "Production shared pool resources consumed"},
        {"prod_dedicated_consumption", "Production dedicated pool resources consumed"},
        {"non_prod_shared_consumption", "Non-production shared pool resources consumed"},
        {"non_prod_dedicated_consumption", "Non-production dedicated pool resources consumed"},
    };
    for (size_t i = 0; i < sizeof(POOLS) / sizeof(POOLS[0]); i++) {
        json_t *r = json_object_get(resp, POOLS[i].field);
        if (r)
            print_resources(POOLS[i].title, r);
    }
out:
    json_decref(resp);
    bo_jobkey_release(&k);
    return rc;
}

/* ---- config list ---- */

int cli_config_list(struct cli *cli)
{
    json_t *jobs = NULL;
    int rc = cli_config_job(cli, cli->args[0], NULL, NULL, &jobs);
    if (rc != 0)
        return rc;
    printf("jobs=[");
    size_t i;
    json_t *e;
    json_array_foreach(jobs, i, e)
        printf("%s%s", i ? ", " : "", json_string_value(json_object_get(e, "key")));
    printf("]\n");
    json_decref(jobs);
    return 0;
}
