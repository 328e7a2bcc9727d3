/*
 * borealis_cli.h - internal to the `borealis` binary: the parsed command
 * line, the per-run context, and the helpers the verbs share (scheduler
 * calls, config loading, task queries, bounded waits).
 *
 * Every verb is `int verb(struct cli *cli)` and returns an Aurora exit code
 * (enum bo_exit); it prints its own output and its own error. Helpers that
 * fail print the error to stderr and return the exit code to pass up, so a
 * verb only does `if ((rc = helper(...)) != 0) goto out;`.
 */
#ifndef BO_BOREALIS_CLI_H
#define BO_BOREALIS_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/client.h"
#include "config/config.h"

#define CLI_MAX_ARGS  8
#define CLI_MAX_BINDS 64

/* --wait-until targets, in order of strength. */
enum cli_wait_until { WAIT_PENDING = 0, WAIT_RUNNING, WAIT_FINISHED };

struct cli_opts {
    bool verbose;
    bool read_json, write_json, raw, no_batching;
    enum cli_wait_until wait_until;
    struct bo_config_bind binds[CLI_MAX_BINDS]; /* point into `bind_mem` */
    char *bind_mem[CLI_MAX_BINDS];              /* bo_strdup'd "name\0value" */
    size_t n_binds;
    long batch_size; /* -1: the verb's default */
    long watch_secs; /* restart: 30 */
    long max_per_instance_failures, max_total_failures;
    const char *message;
    int64_t wait_timeout_ms; /* every wait is bounded by this */
};

struct cli {
    const struct cli_command *cmd;
    const char *args[CLI_MAX_ARGS]; /* positional arguments after the verb */
    size_t n_args;
    struct cli_opts o;
    /* Set by cli_connect. */
    bool connected;
    struct bo_cluster cluster;
    struct bo_client *client;
};

struct cli_command {
    const char *noun, *verb;
    const char *synopsis; /* positional arguments, e.g. "JOBKEY CONFIG" */
    const char *summary;
    const char *help; /* longer text, may be NULL */
    uint32_t opts;    /* bit mask of (1u << enum cli_opt) */
    size_t min_args, max_args;
    int (*run)(struct cli *cli);
};

/* ---- borealis.c: helpers ---- */

/* Print "borealis: <fmt>" to stderr and return `code`. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse a job key (bo_jobkey_parse flags); exit 6 with the reason. */
int cli_jobkey(const char *s, int flags, struct bo_jobkey *out);

/* Find the cluster and open a client for it (once per run). */
int cli_connect(struct cli *cli, const char *cluster);

/* One API call. On a 2xx answer returns 0 and hands over *resp (may be
 * NULL if the caller does not want it); on anything else prints the error
 * ("<what>: POST /api/...: 400 INVALID_REQUEST: ...") and returns the exit
 * code: 10 for an API error, 7 for the network, 9 for a timeout. */
int cli_call(struct cli *cli, const char *what, const char *method, const char *path, json_t *body,
             json_t **resp);

/* "/api/v1/jobs/<role>/<env>/<name><suffix>" into buf. */
void cli_job_path(const struct bo_jobkey *k, const char *suffix, char *buf, size_t size);

/* Evaluate CONFIG and return (new reference) the entry whose "key" is the
 * key's "cluster/role/env/name" (exit 3 when there is none). With `all`
 * non-NULL, the whole array is returned there instead and `k` may be NULL. */
int cli_config_job(struct cli *cli, const char *path, const struct bo_jobkey *k, json_t **entry,
                   json_t **all);

/* Every task of the job (terminal ones too), as the API orders them. */
int cli_job_tasks(struct cli *cli, const struct bo_jobkey *k, bool configs, json_t **tasks);

bool cli_status_terminal(const char *status);
bool cli_status_active(const char *status);
const char *cli_task_status(json_t *task);
const char *cli_task_id(json_t *task);
int cli_task_instance(json_t *task);

/* The task that stands for each instance now: its active task if it has
 * one, else its newest terminal one. `out[i]` for i in [0, n) is borrowed
 * from `tasks` or NULL when the instance has no task at all. */
void cli_instance_tasks(json_t *tasks, const int *instances, size_t n, json_t **out);

/* Poll the job until `done(tasks, data)` is true; 9 when --wait-timeout
 * passes. `label` prefixes the progress line (terminal only). */
typedef bool (*cli_done_fn)(struct cli *cli, json_t *tasks, void *data);
int cli_wait(struct cli *cli, const struct bo_jobkey *k, const char *label, cli_done_fn done,
             void *data);

/* Wait for the instances to reach --wait-until (PENDING returns at once). */
int cli_wait_until(struct cli *cli, const struct bo_jobkey *k, const int *instances, size_t n,
                   enum cli_wait_until target);

/* Progress line "label: 1 pending, 2 running, 0 finished" for instances. */
void cli_progress(const char *label, json_t *tasks, const int *instances, size_t n);

/* The monotonic clock in ms, and a sleep. */
int64_t cli_now_ms(void);
void cli_sleep_ms(int64_t ms);

/* Print a JSON value: one compact line, or indented with `pretty`. */
void cli_print_json(json_t *v, bool pretty);

/* ---- the verbs ---- */

int cli_job_create(struct cli *cli);
int cli_job_add(struct cli *cli);
int cli_job_kill(struct cli *cli);
int cli_job_killall(struct cli *cli);
int cli_job_restart(struct cli *cli);
int cli_job_status(struct cli *cli);
int cli_job_list(struct cli *cli);
int cli_job_inspect(struct cli *cli);
int cli_job_diff(struct cli *cli);
int cli_job_open(struct cli *cli);
int cli_cron_schedule(struct cli *cli);
int cli_cron_deschedule(struct cli *cli);
int cli_cron_start(struct cli *cli);
int cli_cron_show(struct cli *cli);
int cli_quota_get(struct cli *cli);
int cli_config_list(struct cli *cli);

#endif
