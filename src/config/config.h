/*
 * config.h - .aurora files: evaluated by an embedded CPython with the
 * config schema in scope (Process, Task, Job, Service, Resources, ...,
 * Struct, Default, Required, mustache templates), and turned into the
 * scheduler API's JSON. docs/config.md describes the language.
 *
 * Blocking; one thread. The interpreter is started on the first call and
 * lives until bo_config_shutdown (a CLI calls it once before exiting).
 */
#ifndef BO_CONFIG_H
#define BO_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct bo_config_bind {
    const char *name;  /* "profile.instances", "cluster" */
    const char *value; /* a string; the schema coerces it to the field's type */
};

struct bo_config_opts {
    const struct bo_config_bind *binds; /* --bind name=value, in order */
    size_t n_binds;
    bool read_json; /* --read-json: the file is JSON ({"jobs": [...]} or one job) */
};

/* Evaluate `path` and return a new JSON array with one object per job the
 * file defines (its `jobs = [...]`), in file order:
 *
 *   {"cluster": "devcluster",
 *    "key": "devcluster/www/prod/hello",
 *    "job": { ...the body of POST /api/v1/jobs (docs/api.md): key,
 *             instance_count, task_config (with executor_config.data: the
 *             interpolated job as the executor reads it, docs/executor.md),
 *             cron_schedule, cron_collision_policy... },
 *    "update_config": {...},            the job's UpdateConfig, as given
 *    "source": {"file": "...", "line": 12},
 *    "warnings": ["production: deprecated, use tier='preferred'", ...]}
 *
 * "update_config" has Aurora's field names with defaults filled in; a set
 * update_strategy is tagged with its kind: {"queue": {...}}, {"batch":
 * {...}} or {"var_batch": {...}}. "source" is where the job object was last
 * made (its Job(...) or job(...) call); line 1 with --read-json. "warnings"
 * are what Aurora's client printed and carried on after (an unused announce
 * primary port, the deprecated `production`); the caller shows them.
 * Nothing is printed by this module; what the file itself prints goes to
 * stdout (flushed before the call returns).
 *
 * Errors: BO_EINVAL (the CLI exits 3) with a message that names the file
 * and line and the field: "hello.aurora:12: job 'hello': task.resources.ram:
 * required field not set"; BO_ENOTFOUND for a missing file; BO_ENOMEM. */
int bo_config_load(const char *path, const struct bo_config_opts *opts, json_t **jobs,
                   struct bo_err *err);

/* Stop the interpreter (idempotent). */
void bo_config_shutdown(void);

#endif
