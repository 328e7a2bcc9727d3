/*
 * sched_ops.c - the scheduler's operations: what each API request, agent
 * report, cron trigger and maintenance step does to the state, and the reads.
 *
 * Each operation runs in two steps. sched_validate_op checks the request's
 * shape and everything that needs no state (keys, names, resources, the cron
 * expression) before it is queued, so a bad request is refused at once and
 * queues nothing. sched_run_op runs in a batch against the committed state:
 * it first checks what needs the store (the job exists, quota suffices),
 * then touches every task and job it will change (returning 1 to wait for
 * the next batch if one is already touched), and only then changes anything.
 * So a request that fails changes nothing, and two requests never decide on
 * the same task from the same stale read.
 */
#include "scheduler/sched_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/pbjson.h"
#include "storage/backup.h"

const char *sched_pending_reason(struct bo_sched *s, const char *job_key);
bool sched_agent_launch_pending(struct bo_sched *s, const char *agent_id, const char *task_id);
bool sched_agent_registered(struct bo_sched *s, const char *agent_id);

static const Bo__ScheduleStatus ACTIVE[] = {
    BO__SCHEDULE_STATUS__PENDING,    BO__SCHEDULE_STATUS__THROTTLED,
    BO__SCHEDULE_STATUS__ASSIGNED,   BO__SCHEDULE_STATUS__STARTING,
    BO__SCHEDULE_STATUS__RUNNING,    BO__SCHEDULE_STATUS__KILLING,
    BO__SCHEDULE_STATUS__RESTARTING, BO__SCHEDULE_STATUS__DRAINING,
    BO__SCHEDULE_STATUS__PREEMPTING, BO__SCHEDULE_STATUS__PARTITIONED,
};
#define N_ACTIVE (sizeof(ACTIVE) / sizeof(*ACTIVE))

static const Bo__ScheduleStatus TERMINAL[] = {
    BO__SCHEDULE_STATUS__FINISHED,
    BO__SCHEDULE_STATUS__FAILED,
    BO__SCHEDULE_STATUS__KILLED,
    BO__SCHEDULE_STATUS__LOST,
};

/* ------------------------------------------------------------ validation --- */

static bool good_ident(const char *s)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > 200) {
        return false;
    }
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.')) {
            return false;
        }
    }
    return true;
}

static int check_key(struct bo_sched *s, const Bo__JobKey *k, struct bo_err *err)
{
    if (k == NULL) {
        return bo_errf(err, BO_EINVAL, "key: missing");
    }
    if (!good_ident(k->role)) {
        return bo_errf(err, BO_EINVAL, "key.role: '%s' must match [A-Za-z0-9_.-]+", k->role);
    }
    if (!good_ident(k->environment)) {
        return bo_errf(err, BO_EINVAL, "key.environment: '%s' must match [A-Za-z0-9_.-]+",
                       k->environment);
    }
    if (!good_ident(k->name)) {
        return bo_errf(err, BO_EINVAL, "key.name: '%s' must match [A-Za-z0-9_.-]+", k->name);
    }
    if (regexec(&s->env_re, k->environment, 0, NULL, 0) != 0) {
        return bo_errf(err, BO_EINVAL, "key.environment: '%s' is not an allowed environment",
                       k->environment);
    }
    return BO_OK;
}

static bool is_dedicated(const Bo__TaskConfig *c)
{
    for (size_t i = 0; i < c->n_constraints; i++) {
        if (strcmp(c->constraints[i]->name, "dedicated") == 0) {
            return true;
        }
    }
    return false;
}

static bool preemptible_tier(const Bo__TaskConfig *c)
{
    if (c->tier == NULL || c->tier[0] == '\0') {
        return !c->production;
    }
    return strcmp(c->tier, "preferred") != 0;
}

/* Server-side checks of a TaskConfig, and its normalization: the job key is
 * the job's, defaults filled in. */
static int check_config(struct bo_sched *s, Bo__TaskConfig *c, const Bo__JobKey *key,
                        struct bo_err *err)
{
    (void)s;
    if (c == NULL) {
        return bo_errf(err, BO_EINVAL, "task_config: missing");
    }
    double cpus = 0;
    int64_t ram = 0, disk = 0;
    for (size_t i = 0; i < c->n_resources; i++) {
        const Bo__Resource *r = c->resources[i];
        switch (r->kind_case) {
        case BO__RESOURCE__KIND_NUM_CPUS:
            cpus += r->num_cpus;
            break;
        case BO__RESOURCE__KIND_RAM_MB:
            ram += r->ram_mb;
            break;
        case BO__RESOURCE__KIND_DISK_MB:
            disk += r->disk_mb;
            break;
        case BO__RESOURCE__KIND_NAMED_PORT:
            if (!good_ident(r->named_port)) {
                return bo_errf(err, BO_EINVAL, "task_config.resources[%zu]: bad port name '%s'", i,
                               r->named_port);
            }
            for (size_t j = 0; j < i; j++) {
                const Bo__Resource *o = c->resources[j];
                if (o->kind_case == BO__RESOURCE__KIND_NAMED_PORT &&
                    strcmp(o->named_port, r->named_port) == 0) {
                    return bo_errf(err, BO_EINVAL, "task_config.resources: port '%s' twice",
                                   r->named_port);
                }
            }
            break;
        case BO__RESOURCE__KIND_NUM_GPUS:
            if (r->num_gpus != 0) {
                return bo_errf(err, BO_EINVAL, "task_config.resources: gpus are not supported");
            }
            break;
        default:
            return bo_errf(err, BO_EINVAL, "task_config.resources[%zu]: empty resource", i);
        }
    }
    if (!(cpus > 0) || ram <= 0 || disk <= 0) {
        return bo_errf(err, BO_EINVAL,
                       "task_config.resources: num_cpus, ram_mb and disk_mb must all be > 0");
    }
    if (c->tier != NULL && c->tier[0] != '\0' && strcmp(c->tier, "preferred") != 0 &&
        strcmp(c->tier, "preemptible") != 0 && strcmp(c->tier, "revocable") != 0) {
        return bo_errf(err, BO_EINVAL,
                       "task_config.tier: '%s' is not a tier (preferred, preemptible, revocable)",
                       c->tier);
    }
    if (c->container != NULL && c->container->kind_case == BO__CONTAINER__KIND_DOCKER) {
        return bo_errf(err, BO_EINVAL,
                       "task_config.container: docker containers are not supported");
    }
    if (c->container != NULL && c->container->kind_case == BO__CONTAINER__KIND_MESOS &&
        c->container->mesos != NULL &&
        (c->container->mesos->image != NULL || c->container->mesos->n_volumes > 0)) {
        return bo_errf(err, BO_EINVAL,
                       "task_config.container: images and volumes are not supported");
    }
    if (c->n_fetcher_uris > 0) {
        return bo_errf(err, BO_EINVAL, "task_config.fetcher_uris: not supported");
    }
    if (c->executor_config != NULL && c->executor_config->data != NULL &&
        c->executor_config->data[0] != '\0') {
        /* the executor reads it: refuse now what it could not read later */
        json_error_t je;
        json_t *d = json_loads(c->executor_config->data, 0, &je);
        bool obj = json_is_object(d);
        json_decref(d);
        if (!obj) {
            return bo_errf(err, BO_EINVAL,
                           "task_config.executor_config.data: not a JSON object (%s)",
                           d == NULL ? je.text : "another JSON value");
        }
    }
    if (c->max_task_failures < -1) {
        return bo_errf(err, BO_EINVAL, "task_config.max_task_failures: must be >= -1");
    }
    for (size_t i = 0; i < c->n_constraints; i++) {
        const Bo__Constraint *k = c->constraints[i];
        if (k->name == NULL || k->name[0] == '\0') {
            return bo_errf(err, BO_EINVAL, "task_config.constraints[%zu]: no attribute name", i);
        }
        if (k->kind_case == BO__CONSTRAINT__KIND_LIMIT) {
            if (k->limit == NULL || k->limit->limit <= 0) {
                return bo_errf(err, BO_EINVAL, "task_config.constraints[%zu]: limit must be > 0",
                               i);
            }
        } else if (k->kind_case == BO__CONSTRAINT__KIND_VALUE) {
            if (k->value == NULL || k->value->n_values == 0) {
                return bo_errf(err, BO_EINVAL,
                               "task_config.constraints[%zu]: a value constraint needs values", i);
            }
            if (strcmp(k->name, "dedicated") == 0) {
                for (size_t j = 0; j < k->value->n_values; j++) {
                    const char *v = k->value->values[j];
                    size_t rl = strlen(key->role);
                    bool own = strncmp(v, key->role, rl) == 0 && v[rl] == '/';
                    bool any = strncmp(v, "*/", 2) == 0;
                    if ((!own && !any) || k->value->negated) {
                        return bo_errf(err, BO_EINVAL,
                                       "task_config.constraints: dedicated value '%s' must be "
                                       "'%s/...' or '*/...'",
                                       v, key->role);
                    }
                }
            }
        } else {
            return bo_errf(err, BO_EINVAL, "task_config.constraints[%zu]: empty constraint", i);
        }
    }
    /* The config names its job. */
    if (c->job == NULL) {
        c->job = bo_calloc(1, sizeof(*c->job));
        if (c->job == NULL) {
            return bo_errf(err, BO_ENOMEM, "out of memory");
        }
        bo__job_key__init(c->job);
    }
    if ((c->job->role[0] != '\0' && strcmp(c->job->role, key->role) != 0) ||
        (c->job->environment[0] != '\0' && strcmp(c->job->environment, key->environment) != 0) ||
        (c->job->name[0] != '\0' && strcmp(c->job->name, key->name) != 0)) {
        return bo_errf(err, BO_EINVAL, "task_config.job: does not match the job's key");
    }
    char *r = bo_strdup(key->role), *e = bo_strdup(key->environment), *n = bo_strdup(key->name);
    if (r == NULL || e == NULL || n == NULL) {
        bo_free(r);
        bo_free(e);
        bo_free(n);
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    if (c->job->role != protobuf_c_empty_string) {
        bo_free(c->job->role);
    }
    if (c->job->environment != protobuf_c_empty_string) {
        bo_free(c->job->environment);
    }
    if (c->job->name != protobuf_c_empty_string) {
        bo_free(c->job->name);
    }
    c->job->role = r;
    c->job->environment = e;
    c->job->name = n;
    return BO_OK;
}

static int decode_job(struct bo_sched *s, const json_t *j, bool cron, Bo__JobConfiguration **out,
                      struct bo_err *err)
{
    ProtobufCMessage *m;
    int rc = bo_pbjson_decode(&bo__job_configuration__descriptor, j, &m, err);
    if (rc != BO_OK) {
        return rc;
    }
    Bo__JobConfiguration *jc = (Bo__JobConfiguration *)m;
    rc = check_key(s, jc->key, err);
    if (rc == BO_OK && (jc->instance_count <= 0 || jc->instance_count > s->cfg.max_tasks_per_job)) {
        rc = bo_errf(err, BO_EINVAL, "instance_count: must be within 1..%d",
                     s->cfg.max_tasks_per_job);
    }
    if (rc == BO_OK) {
        rc = check_config(s, jc->task_config, jc->key, err);
    }
    if (rc == BO_OK && cron) {
        struct bo_cron c;
        if (jc->cron_schedule == NULL || jc->cron_schedule[0] == '\0') {
            rc = bo_errf(err, BO_EINVAL, "cron_schedule: missing");
        } else if ((rc = bo_cron_parse(&c, jc->cron_schedule, err)) != BO_OK) {
            bo_err_wrapf(err, rc, "cron_schedule");
        } else if (jc->task_config->is_service) {
            rc = bo_errf(err, BO_EINVAL, "a cron job cannot be a service");
        } else if (jc->cron_collision_policy == BO__CRON_COLLISION_POLICY__CRON_RUN_OVERLAP) {
            rc = bo_errf(err, BO_EINVAL,
                         "cron_collision_policy: RUN_OVERLAP is deprecated and not accepted");
        }
    } else if (rc == BO_OK && jc->cron_schedule != NULL && jc->cron_schedule[0] != '\0') {
        rc = bo_errf(err, BO_EINVAL,
                     "job has a cron_schedule: schedule it as a cron job instead of creating it");
    }
    if (rc != BO_OK) {
        bo__job_configuration__free_unpacked(jc, NULL);
        return rc;
    }
    *out = jc;
    return BO_OK;
}

static int decode_key(const json_t *j, Bo__JobKey **out, struct bo_err *err)
{
    if (j == NULL) {
        return bo_errf(err, BO_EINVAL, "key: missing");
    }
    ProtobufCMessage *m;
    int rc = bo_pbjson_decode(&bo__job_key__descriptor, j, &m, err);
    if (rc != BO_OK) {
        return bo_err_wrapf(err, rc, "key");
    }
    *out = (Bo__JobKey *)m;
    return BO_OK;
}

static int instances_arg(const json_t *j, int32_t **out, size_t *n, struct bo_err *err)
{
    *out = NULL;
    *n = 0;
    if (j == NULL || json_is_null(j)) {
        return BO_OK;
    }
    if (!json_is_array(j)) {
        return bo_errf(err, BO_EINVAL, "instances: expected an array of instance ids");
    }
    size_t m = json_array_size(j);
    int32_t *v = bo_calloc(m == 0 ? 1 : m, sizeof(*v));
    if (v == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < m; i++) {
        json_t *x = json_array_get(j, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > INT32_MAX) {
            bo_free(v);
            return bo_errf(err, BO_EINVAL, "instances[%zu]: expected an instance id", i);
        }
        v[i] = (int32_t)json_integer_value(x);
    }
    *out = v;
    *n = m;
    return BO_OK;
}

static int check_fields(const json_t *args, const char *const *allowed, struct bo_err *err)
{
    if (!json_is_object(args)) {
        return bo_errf(err, BO_EINVAL, "expected a JSON object");
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)args, k, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a != NULL; a++) {
            if (strcmp(*a, k) == 0) {
                ok = true;
            }
        }
        if (!ok) {
            return bo_errf(err, BO_EINVAL, "unknown field '%s'", k);
        }
    }
    return BO_OK;
}

static int quota_args(const json_t *args, const char **role, double *cpu, int64_t *ram,
                      int64_t *disk, struct bo_err *err)
{
    static const char *const f[] = {"role", "cpu", "ram_mb", "disk_mb", NULL};
    int rc = check_fields(args, f, err);
    if (rc != BO_OK) {
        return rc;
    }
    json_t *r = json_object_get(args, "role"), *c = json_object_get(args, "cpu"),
           *m = json_object_get(args, "ram_mb"), *d = json_object_get(args, "disk_mb");
    if (!json_is_string(r) || !good_ident(json_string_value(r))) {
        return bo_errf(err, BO_EINVAL, "role: expected a role name");
    }
    if (!json_is_number(c) || json_number_value(c) < 0 || !isfinite(json_number_value(c))) {
        return bo_errf(err, BO_EINVAL, "cpu: expected a number >= 0");
    }
    if (!json_is_integer(m) || json_integer_value(m) < 0) {
        return bo_errf(err, BO_EINVAL, "ram_mb: expected an integer >= 0");
    }
    if (!json_is_integer(d) || json_integer_value(d) < 0) {
        return bo_errf(err, BO_EINVAL, "disk_mb: expected an integer >= 0");
    }
    *role = json_string_value(r);
    *cpu = json_number_value(c);
    *ram = json_integer_value(m);
    *disk = json_integer_value(d);
    return BO_OK;
}

static int hosts_arg(const json_t *args, struct bo_err *err)
{
    static const char *const f[] = {"hosts", NULL};
    int rc = check_fields(args, f, err);
    if (rc != BO_OK) {
        return rc;
    }
    json_t *h = json_object_get(args, "hosts");
    if (!json_is_array(h) || json_array_size(h) == 0) {
        return bo_errf(err, BO_EINVAL, "hosts: expected a non-empty array of host names");
    }
    for (size_t i = 0; i < json_array_size(h); i++) {
        json_t *x = json_array_get(h, i);
        if (!json_is_string(x) || json_string_length(x) == 0) {
            return bo_errf(err, BO_EINVAL, "hosts[%zu]: expected a host name", i);
        }
    }
    return BO_OK;
}

int sched_validate_op(struct bo_sched *s, int op, json_t *args, struct bo_err *err)
{
    int rc = BO_OK;
    if (!json_is_object(args)) {
        return bo_errf(err, BO_EINVAL, "expected a JSON object");
    }
    switch (op) {
    case BO_SCHED_CREATE_JOB:
    case BO_SCHED_SCHEDULE_CRON: {
        Bo__JobConfiguration *jc;
        rc = decode_job(s, args, op == BO_SCHED_SCHEDULE_CRON, &jc, err);
        if (rc == BO_OK) {
            bo__job_configuration__free_unpacked(jc, NULL);
        }
        return rc;
    }
    case BO_SCHED_ADD_INSTANCES: {
        static const char *const f[] = {"key", "instance_id", "count", NULL};
        Bo__JobKey *k = NULL;
        if ((rc = check_fields(args, f, err)) != BO_OK ||
            (rc = decode_key(json_object_get(args, "key"), &k, err)) != BO_OK) {
            return rc;
        }
        rc = check_key(s, k, err);
        bo__job_key__free_unpacked(k, NULL);
        json_t *c = json_object_get(args, "count"), *i = json_object_get(args, "instance_id");
        if (rc == BO_OK && (!json_is_integer(c) || json_integer_value(c) <= 0 ||
                            json_integer_value(c) > s->cfg.max_tasks_per_job)) {
            rc = bo_errf(err, BO_EINVAL, "count: expected an integer within 1..%d",
                         s->cfg.max_tasks_per_job);
        }
        if (rc == BO_OK && i != NULL && (!json_is_integer(i) || json_integer_value(i) < 0)) {
            rc = bo_errf(err, BO_EINVAL, "instance_id: expected an instance id");
        }
        return rc;
    }
    case BO_SCHED_KILL:
    case BO_SCHED_RESTART: {
        static const char *const f[] = {"key", "instances", "message", NULL};
        Bo__JobKey *k = NULL;
        if ((rc = check_fields(args, f, err)) != BO_OK ||
            (rc = decode_key(json_object_get(args, "key"), &k, err)) != BO_OK) {
            return rc;
        }
        rc = check_key(s, k, err);
        bo__job_key__free_unpacked(k, NULL);
        int32_t *ids;
        size_t n;
        if (rc == BO_OK &&
            (rc = instances_arg(json_object_get(args, "instances"), &ids, &n, err)) == BO_OK) {
            bo_free(ids);
            if (op == BO_SCHED_RESTART && n == 0) {
                rc = bo_errf(err, BO_EINVAL, "instances: restart needs instance ids");
            }
        }
        json_t *m = json_object_get(args, "message");
        if (rc == BO_OK && m != NULL && !json_is_string(m)) {
            rc = bo_errf(err, BO_EINVAL, "message: expected a string");
        }
        return rc;
    }
    case BO_SCHED_FORCE_STATE: {
        static const char *const f[] = {"task_id", "status", NULL};
        if ((rc = check_fields(args, f, err)) != BO_OK) {
            return rc;
        }
        json_t *t = json_object_get(args, "task_id"), *st = json_object_get(args, "status");
        if (!json_is_string(t)) {
            return bo_errf(err, BO_EINVAL, "task_id: expected a string");
        }
        if (!json_is_string(st) || bo_tsm_status_parse(json_string_value(st)) < 0) {
            return bo_errf(err, BO_EINVAL, "status: expected a task status name");
        }
        return BO_OK;
    }
    case BO_SCHED_PRUNE: {
        static const char *const f[] = {"role",     "environment", "job_name",
                                        "statuses", "limit",       NULL};
        if ((rc = check_fields(args, f, err)) != BO_OK) {
            return rc;
        }
        json_t *st = json_object_get(args, "statuses");
        if (st != NULL) {
            if (!json_is_array(st)) {
                return bo_errf(err, BO_EINVAL, "statuses: expected an array");
            }
            for (size_t i = 0; i < json_array_size(st); i++) {
                int v = bo_tsm_status_parse(json_string_value(json_array_get(st, i)));
                if (v < 0 || !bo_tsm_is_terminal(v)) {
                    return bo_errf(err, BO_EINVAL,
                                   "statuses[%zu]: only terminal statuses can be pruned", i);
                }
            }
        }
        json_t *l = json_object_get(args, "limit");
        if (l != NULL && (!json_is_integer(l) || json_integer_value(l) < 0)) {
            return bo_errf(err, BO_EINVAL, "limit: expected an integer >= 0");
        }
        static const char *const strs[] = {"role", "environment", "job_name", NULL};
        for (const char *const *k = strs; *k != NULL; k++) {
            json_t *x = json_object_get(args, *k);
            if (x != NULL && !json_is_string(x)) {
                return bo_errf(err, BO_EINVAL, "%s: expected a string", *k);
            }
        }
        return BO_OK;
    }
    case BO_SCHED_DESCHEDULE_CRON:
    case BO_SCHED_START_CRON: {
        static const char *const f[] = {"key", NULL};
        Bo__JobKey *k = NULL;
        if ((rc = check_fields(args, f, err)) != BO_OK ||
            (rc = decode_key(json_object_get(args, "key"), &k, err)) != BO_OK) {
            return rc;
        }
        rc = check_key(s, k, err);
        bo__job_key__free_unpacked(k, NULL);
        return rc;
    }
    case BO_SCHED_SET_QUOTA:
    case BO_SCHED_INCREASE_QUOTA: {
        const char *role;
        double cpu;
        int64_t ram, disk;
        return quota_args(args, &role, &cpu, &ram, &disk, err);
    }
    case BO_SCHED_MAINT_START:
    case BO_SCHED_MAINT_DRAIN:
    case BO_SCHED_MAINT_END:
        return hosts_arg(args, err);
    case BO_SCHED_AGENT_STATUS: {
        static const char *const f[] = {"agent_id", "updates", NULL};
        if ((rc = check_fields(args, f, err)) != BO_OK) {
            return rc;
        }
        json_t *u = json_object_get(args, "updates");
        if (!json_is_string(json_object_get(args, "agent_id")) || !json_is_array(u)) {
            return bo_errf(err, BO_EINVAL, "expected {agent_id, updates: [...]}");
        }
        for (size_t i = 0; i < json_array_size(u); i++) {
            json_t *x = json_array_get(u, i);
            const char *id, *st, *msg = NULL;
            json_int_t ts = 0;
            json_error_t je;
            if (json_unpack_ex(x, &je, JSON_STRICT, "{s:s, s:s, s?s, s?I}", "task_id", &id,
                               "status", &st, "message", &msg, "timestamp_ms", &ts) != 0) {
                return bo_errf(err, BO_EINVAL, "updates[%zu]: %s", i, je.text);
            }
            int v = bo_tsm_status_parse(st);
            if (v < 0) {
                return bo_errf(err, BO_EINVAL, "updates[%zu].status: unknown status '%s'", i, st);
            }
        }
        return BO_OK;
    }
    default:
        return bo_errf(err, BO_EINVAL, "unknown operation");
    }
}

/* ------------------------------------------------------------------ quota --- */

struct res_sum {
    double cpu;
    int64_t ram_mb, disk_mb;
};

static void add_config(struct res_sum *r, const Bo__TaskConfig *c, int64_t n)
{
    for (size_t i = 0; i < c->n_resources; i++) {
        const Bo__Resource *x = c->resources[i];
        if (x->kind_case == BO__RESOURCE__KIND_NUM_CPUS) {
            r->cpu += x->num_cpus * (double)n;
        } else if (x->kind_case == BO__RESOURCE__KIND_RAM_MB) {
            r->ram_mb += x->ram_mb * n;
        } else if (x->kind_case == BO__RESOURCE__KIND_DISK_MB) {
            r->disk_mb += x->disk_mb * n;
        }
    }
}

static bool quota_counts(const Bo__TaskConfig *c)
{
    return !preemptible_tier(c) && !is_dedicated(c);
}

/* What a role's non-preemptible, non-dedicated jobs consume: active tasks and
 * cron templates. */
static int quota_consumption(struct bo_sched *s, const char *role, struct res_sum *out,
                             struct bo_err *err)
{
    *out = (struct res_sum){0};
    struct bo_job_summary_list jobs = {0};
    int rc = bo_store_job_summaries(s->store, role, &jobs, err);
    if (rc != BO_OK) {
        return rc;
    }
    for (size_t i = 0; i < jobs.n && rc == BO_OK; i++) {
        if (jobs.jobs[i].is_cron) {
            continue; /* its template counts, below, as in Aurora */
        }
        struct bo_config_group_list g = {0};
        rc = bo_store_config_groups(s->store, jobs.jobs[i].key, &g, err);
        for (size_t j = 0; rc == BO_OK && j < g.n; j++) {
            if (!quota_counts(g.groups[j].config)) {
                continue;
            }
            int64_t n = 0;
            for (size_t k = 0; k < g.groups[j].n_ranges; k++) {
                n += g.groups[j].ranges[k]->last - g.groups[j].ranges[k]->first + 1;
            }
            add_config(out, g.groups[j].config, n);
        }
        bo_config_group_list_release(&g);
    }
    bo_job_summary_list_release(&jobs);
    if (rc != BO_OK) {
        return rc;
    }
    Bo__JobConfiguration **crons = NULL;
    size_t n = 0;
    rc = bo_store_list_cron_jobs(s->store, &crons, &n, err);
    for (size_t i = 0; rc == BO_OK && i < n; i++) {
        if (strcmp(crons[i]->key->role, role) == 0 && quota_counts(crons[i]->task_config)) {
            add_config(out, crons[i]->task_config, crons[i]->instance_count);
        }
    }
    bo_store_free_list(crons, n);
    return rc;
}

static void quota_get(struct bo_sched *s, const char *role, struct res_sum *q)
{
    *q = (struct res_sum){0};
    Bo__ResourceAggregate *agg = NULL;
    struct bo_err err = BO_ERR_INIT;
    if (bo_store_get_quota(s->store, role, &agg, &err) == BO_OK) {
        for (size_t i = 0; i < agg->n_resources; i++) {
            const Bo__Resource *x = agg->resources[i];
            if (x->kind_case == BO__RESOURCE__KIND_NUM_CPUS) {
                q->cpu += x->num_cpus;
            } else if (x->kind_case == BO__RESOURCE__KIND_RAM_MB) {
                q->ram_mb += x->ram_mb;
            } else if (x->kind_case == BO__RESOURCE__KIND_DISK_MB) {
                q->disk_mb += x->disk_mb;
            }
        }
        bo__resource_aggregate__free_unpacked(agg, NULL);
    }
}

/* Refuse `n` more instances of `c` if the role's quota cannot hold them;
 * `replacing` is a cron template the request replaces (its share is freed). */
static int quota_check(struct bo_sched *s, const Bo__JobKey *key, const Bo__TaskConfig *c,
                       int64_t n, const Bo__JobConfiguration *replacing, struct bo_err *err)
{
    if (!quota_counts(c)) {
        return BO_OK;
    }
    struct res_sum used, want = {0}, q;
    int rc = quota_consumption(s, key->role, &used, err);
    if (rc != BO_OK) {
        return rc;
    }
    if (replacing != NULL && quota_counts(replacing->task_config)) {
        struct res_sum old = {0};
        add_config(&old, replacing->task_config, replacing->instance_count);
        used.cpu -= old.cpu;
        used.ram_mb -= old.ram_mb;
        used.disk_mb -= old.disk_mb;
    }
    add_config(&want, c, n);
    quota_get(s, key->role, &q);
    const char *short_of = NULL;
    if (used.cpu + want.cpu > q.cpu + 1e-9) {
        short_of = "cpu";
    } else if (used.ram_mb + want.ram_mb > q.ram_mb) {
        short_of = "ram";
    } else if (used.disk_mb + want.disk_mb > q.disk_mb) {
        short_of = "disk";
    }
    if (short_of != NULL) {
        return bo_errf(err, BO_EINVAL,
                       "Insufficient resource quota for role '%s': %s (quota cpu %.2f ram %" PRId64
                       " MB disk %" PRId64 " MB; used cpu %.2f ram %" PRId64 " MB disk %" PRId64
                       " MB; requested cpu %.2f ram %" PRId64 " MB disk %" PRId64 " MB)",
                       key->role, short_of, q.cpu, q.ram_mb, q.disk_mb, used.cpu, used.ram_mb,
                       used.disk_mb, want.cpu, want.ram_mb, want.disk_mb);
    }
    return BO_OK;
}

/* -------------------------------------------------------------- job ops --- */

static int active_tasks(struct bo_sched *s, struct sched_batch *b, const Bo__JobKey *key,
                        const int32_t *ids, size_t n_ids, struct bo_task_list **out,
                        struct bo_err *err)
{
    const Bo__JobKey *keys[1] = {key};
    struct bo_task_query q = {.job_keys = keys,
                              .n_job_keys = 1,
                              .statuses = ACTIVE,
                              .n_statuses = N_ACTIVE,
                              .instance_ids = ids,
                              .n_instance_ids = n_ids};
    return sched_query(s, b, &q, true, out, err);
}

/* Touch every task of `l` and `extra` or none: 1 if any is already touched. */
static int touch_all(struct sched_batch *b, struct bo_task_list *l, const char *extra)
{
    if (extra != NULL && batch_touched(b, extra)) {
        return 1;
    }
    for (size_t i = 0; l != NULL && i < l->n; i++) {
        if (batch_touched(b, l->tasks[i]->assigned_task->task_id)) {
            return 1;
        }
    }
    if (extra != NULL) {
        batch_touch(b, extra);
    }
    for (size_t i = 0; l != NULL && i < l->n; i++) {
        batch_touch(b, l->tasks[i]->assigned_task->task_id);
    }
    return 0;
}

static int create_tasks(struct bo_sched *s, struct sched_batch *b, const Bo__JobKey *key,
                        Bo__TaskConfig *c, int32_t first, int32_t count, struct bo_err *err)
{
    for (int32_t i = 0; i < count; i++) {
        Bo__ScheduledTask *t;
        int rc = sched_new_task(s, b, key, c, first + i, &t, err);
        if (rc != BO_OK) {
            return rc;
        }
    }
    return BO_OK;
}

/* The start shared by create and cron schedule: decode and check the job
 * (answering the request on a bad one), and read its active tasks. Returns
 * 1 if the job is touched by the batch already (retry in the next one), and
 * sets *jc to NULL when the request was answered. */
static int job_request(struct bo_sched *s, struct sched_batch *b, struct sched_work *w, bool cron,
                       Bo__JobConfiguration **jc, char *key, size_t key_size,
                       struct bo_task_list **active, struct bo_err *err)
{
    *jc = NULL;
    int rc = decode_job(s, w->args, cron, jc, err);
    if (rc != BO_OK) {
        work_fail(w, rc, bo_err_msg(err, rc));
        return BO_OK;
    }
    job_key_str((*jc)->key, key, key_size);
    rc = batch_touched(b, key) ? 1 : active_tasks(s, b, (*jc)->key, NULL, 0, active, err);
    if (rc != BO_OK) {
        bo__job_configuration__free_unpacked(*jc, NULL);
        *jc = NULL;
    }
    return rc;
}

static int op_create_job(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                         struct bo_err *err)
{
    Bo__JobConfiguration *jc;
    char key[512];
    struct bo_task_list *l;
    int rc = job_request(s, b, w, false, &jc, key, sizeof(key), &l, err);
    if (rc != BO_OK || jc == NULL) {
        return rc;
    }
    Bo__JobConfiguration *cron = NULL;
    struct bo_err e2 = BO_ERR_INIT;
    if (l->n > 0) {
        rc = bo_errf(err, BO_EEXIST, "job '%s' already exists", key);
    } else if (bo_store_get_cron_job(s->store, jc->key, &cron, &e2) == BO_OK) {
        bo__job_configuration__free_unpacked(cron, NULL);
        rc = bo_errf(err, BO_EEXIST, "job '%s' is a cron job", key);
    } else {
        rc = quota_check(s, jc->key, jc->task_config, jc->instance_count, NULL, err);
    }
    if (rc != BO_OK) {
        work_fail(w, rc, bo_err_msg(err, rc));
        bo__job_configuration__free_unpacked(jc, NULL);
        return BO_OK;
    }
    batch_touch(b, key);
    if (batch_own_msg(b, &jc->base) != BO_OK) {
        bo__job_configuration__free_unpacked(jc, NULL);
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    rc = create_tasks(s, b, jc->key, jc->task_config, 0, jc->instance_count, err);
    if (rc == BO_OK) {
        w->result = json_pack("{s:s, s:i}", "job", key, "instances", jc->instance_count);
    }
    return rc;
}

static int op_add_instances(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                            struct bo_err *err)
{
    Bo__JobKey *k = NULL;
    int rc = decode_key(json_object_get(w->args, "key"), &k, err);
    if (rc != BO_OK) {
        return rc;
    }
    if (batch_own_msg(b, &k->base) != BO_OK) {
        bo__job_key__free_unpacked(k, NULL);
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    char key[512];
    job_key_str(k, key, sizeof(key));
    json_int_t count = json_integer_value(json_object_get(w->args, "count"));
    json_t *ji = json_object_get(w->args, "instance_id");
    struct bo_task_list *l;
    if ((rc = active_tasks(s, b, k, NULL, 0, &l, err)) != BO_OK) {
        return rc;
    }
    if (l->n == 0) {
        work_fail(w, BO_ENOTFOUND, "job has no active tasks to copy");
        return BO_OK;
    }
    Bo__ScheduledTask *tmpl = NULL;
    int32_t max = -1;
    for (size_t i = 0; i < l->n; i++) {
        Bo__AssignedTask *a = l->tasks[i]->assigned_task;
        if (a->instance_id > max) {
            max = a->instance_id;
        }
        if (ji == NULL ? tmpl == NULL : a->instance_id == json_integer_value(ji)) {
            tmpl = l->tasks[i];
        }
    }
    if (tmpl == NULL) {
        work_fail(w, BO_ENOTFOUND, "instance to copy is not active");
        return BO_OK;
    }
    if ((int64_t)max + 1 + count > s->cfg.max_tasks_per_job) {
        char msg[128];
        snprintf(msg, sizeof(msg), "job would exceed %d instances", s->cfg.max_tasks_per_job);
        work_fail(w, BO_EINVAL, msg);
        return BO_OK;
    }
    rc = quota_check(s, k, tmpl->assigned_task->task, count, NULL, err);
    if (rc != BO_OK) {
        work_fail(w, rc, bo_err_msg(err, rc));
        return BO_OK;
    }
    if (batch_touched(b, key)) {
        return 1;
    }
    batch_touch(b, key);
    rc = create_tasks(s, b, k, tmpl->assigned_task->task, max + 1, (int32_t)count, err);
    if (rc == BO_OK) {
        w->result =
            json_pack("{s:s, s:i, s:I}", "job", key, "first_instance", max + 1, "count", count);
    }
    return rc;
}

static int op_kill_restart(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                           bool restart, struct bo_err *err)
{
    Bo__JobKey *k = NULL;
    int rc = decode_key(json_object_get(w->args, "key"), &k, err);
    if (rc != BO_OK) {
        return rc;
    }
    if (batch_own_msg(b, &k->base) != BO_OK) {
        bo__job_key__free_unpacked(k, NULL);
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    int32_t *ids;
    size_t n_ids;
    if ((rc = instances_arg(json_object_get(w->args, "instances"), &ids, &n_ids, err)) != BO_OK) {
        return rc;
    }
    struct bo_task_list *l;
    rc = active_tasks(s, b, k, ids, n_ids, &l, err);
    if (rc != BO_OK) {
        bo_free(ids);
        return rc;
    }
    if (restart) {
        /* every instance asked for must be active */
        for (size_t i = 0; i < n_ids; i++) {
            bool found = false;
            for (size_t j = 0; j < l->n && !found; j++) {
                found = l->tasks[j]->assigned_task->instance_id == ids[i];
            }
            if (!found) {
                char msg[128];
                snprintf(msg, sizeof(msg), "instance %" PRId32 " is not active", ids[i]);
                work_fail(w, BO_EINVAL, msg);
                bo_free(ids);
                return BO_OK;
            }
        }
    }
    bo_free(ids);
    char key[512];
    job_key_str(k, key, sizeof(key));
    if (touch_all(b, l, NULL) != 0) {
        return 1;
    }
    const char *msg = json_string_value(json_object_get(w->args, "message"));
    char buf[600];
    if (!restart) {
        snprintf(buf, sizeof(buf), "Killed by the user%s%s", msg != NULL ? ": " : "",
                 msg != NULL ? msg : "");
    } else {
        snprintf(buf, sizeof(buf), "Restarted by the user%s%s", msg != NULL ? ": " : "",
                 msg != NULL ? msg : "");
    }
    int target = restart ? BO__SCHEDULE_STATUS__RESTARTING : BO__SCHEDULE_STATUS__KILLING;
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        Bo__ScheduledTask *t = l->tasks[i];
        if (restart && (t->status == BO__SCHEDULE_STATUS__PENDING ||
                        t->status == BO__SCHEDULE_STATUS__THROTTLED)) {
            continue; /* not running: nothing to restart */
        }
        if (!restart && t->status == BO__SCHEDULE_STATUS__KILLING) {
            continue;
        }
        rc = sched_transition(s, b, t, target, buf, err);
        if (rc != BO_OK) {
            return rc;
        }
        n++;
    }
    w->result =
        json_pack("{s:s, s:I}", "job", key, restart ? "restarted" : "killed", (json_int_t)n);
    return BO_OK;
}

static int op_force_state(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                          struct bo_err *err)
{
    const char *id = json_string_value(json_object_get(w->args, "task_id"));
    int to = bo_tsm_status_parse(json_string_value(json_object_get(w->args, "status")));
    if (batch_touched(b, id)) {
        return 1;
    }
    const char *ids[1] = {id};
    struct bo_task_query q = {.task_ids = ids, .n_task_ids = 1};
    struct bo_task_list *l;
    int rc = sched_query(s, b, &q, true, &l, err);
    if (rc != BO_OK) {
        return rc;
    }
    if (l->n == 0) {
        char msg[300];
        snprintf(msg, sizeof(msg), "task '%s' not found", id);
        work_fail(w, BO_ENOTFOUND, msg);
        return BO_OK;
    }
    batch_touch(b, id);
    rc = sched_transition(s, b, l->tasks[0], to, "Forced by an operator", err);
    if (rc == BO_OK) {
        w->result = json_pack("{s:s, s:s}", "task_id", id, "status",
                              bo_tsm_status_name(l->tasks[0]->status));
    }
    return rc;
}

static int op_prune(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                    struct bo_err *err)
{
    Bo__ScheduleStatus st[4];
    size_t n_st = 0;
    json_t *js = json_object_get(w->args, "statuses");
    if (js != NULL && json_array_size(js) > 0) {
        for (size_t i = 0; i < json_array_size(js) && n_st < 4; i++) {
            st[n_st++] =
                (Bo__ScheduleStatus)bo_tsm_status_parse(json_string_value(json_array_get(js, i)));
        }
    } else {
        memcpy(st, TERMINAL, sizeof(TERMINAL));
        n_st = 4;
    }
    struct bo_task_query q = {
        .role = json_string_value(json_object_get(w->args, "role")),
        .environment = json_string_value(json_object_get(w->args, "environment")),
        .job_name = json_string_value(json_object_get(w->args, "job_name")),
        .statuses = st,
        .n_statuses = n_st,
        .limit = json_integer_value(json_object_get(w->args, "limit")),
    };
    struct bo_task_list *l;
    int rc = sched_query(s, b, &q, false, &l, err);
    if (rc != BO_OK) {
        return rc;
    }
    if (touch_all(b, l, NULL) != 0) {
        return 1;
    }
    for (size_t i = 0; i < l->n; i++) {
        if (batch_remove_task(b, l->tasks[i]->assigned_task->task_id) != BO_OK) {
            return bo_errf(err, BO_ENOMEM, "out of memory");
        }
    }
    s->stats.tasks_pruned += l->n;
    w->result = json_pack("{s:I}", "pruned", (json_int_t)l->n);
    return BO_OK;
}

/* --------------------------------------------------------------- cron --- */

static void cron_set(struct bo_sched *s, const Bo__JobConfiguration *jc)
{
    char key[512];
    job_key_str(jc->key, key, sizeof(key));
    struct sched_cron *c = NULL;
    HASH_FIND_STR(s->crons, key, c);
    if (c == NULL) {
        c = bo_calloc(1, sizeof(*c));
        if (c == NULL || (c->key = bo_strdup(key)) == NULL) {
            bo_free(c);
            return;
        }
        HASH_ADD_KEYPTR(hh, s->crons, c->key, strlen(c->key), c);
    }
    struct bo_err err = BO_ERR_INIT;
    c->next_ms = 0;
    if (bo_cron_parse(&c->expr, jc->cron_schedule, &err) == BO_OK) {
        int64_t next;
        if (bo_cron_next(&c->expr, sched_now_ms(s), s->cfg.cron_utc, &next) == BO_OK) {
            c->next_ms = next;
        }
    } else {
        bo_warn("scheduler: cron job '%s': %s", key, bo_err_msg(&err, BO_EINVAL));
    }
}

static void cron_del(struct bo_sched *s, const char *key)
{
    struct sched_cron *c = NULL;
    HASH_FIND_STR(s->crons, key, c);
    if (c != NULL) {
        HASH_DEL(s->crons, c);
        bo_free(c->key);
        bo_free(c);
    }
}

void sched_cron_reload(struct bo_sched *s)
{
    Bo__JobConfiguration **crons = NULL;
    size_t n = 0;
    struct bo_err err = BO_ERR_INIT;
    if (bo_store_list_cron_jobs(s->store, &crons, &n, &err) != BO_OK) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        cron_set(s, crons[i]);
    }
    bo_store_free_list(crons, n);
}

static int save_cron_op(struct sched_batch *b, Bo__JobConfiguration *jc)
{
    Bo__SaveCronJob *sc = batch_op(b, BO__OP__OP_SAVE_CRON_JOB);
    if (sc == NULL) {
        return BO_ENOMEM;
    }
    sc->job_config = jc;
    return BO_OK;
}

static int op_schedule_cron(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                            struct bo_err *err)
{
    Bo__JobConfiguration *jc;
    char key[512];
    struct bo_task_list *l; /* a running non-cron job of the same key blocks it */
    int rc = job_request(s, b, w, true, &jc, key, sizeof(key), &l, err);
    if (rc != BO_OK || jc == NULL) {
        return rc;
    }
    Bo__JobConfiguration *old = NULL;
    struct bo_err e2 = BO_ERR_INIT;
    bool exists = bo_store_get_cron_job(s->store, jc->key, &old, &e2) == BO_OK;
    if (!exists && l->n > 0) {
        rc = bo_errf(err, BO_EEXIST, "job '%s' exists and is not a cron job", key);
    } else {
        rc = quota_check(s, jc->key, jc->task_config, jc->instance_count, exists ? old : NULL, err);
    }
    if (exists) {
        bo__job_configuration__free_unpacked(old, NULL);
    }
    if (rc != BO_OK) {
        work_fail(w, rc, bo_err_msg(err, rc));
        bo__job_configuration__free_unpacked(jc, NULL);
        return BO_OK;
    }
    batch_touch(b, key);
    /* the op owns jc from here */
    if (save_cron_op(b, jc) != BO_OK) {
        bo__job_configuration__free_unpacked(jc, NULL);
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    cron_set(s, jc);
    w->result = json_pack("{s:s, s:s, s:b}", "job", key, "cron_schedule", jc->cron_schedule,
                          "replaced", exists);
    return BO_OK;
}

static int op_deschedule_cron(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                              struct bo_err *err)
{
    Bo__JobKey *k = NULL;
    int rc = decode_key(json_object_get(w->args, "key"), &k, err);
    if (rc != BO_OK) {
        return rc;
    }
    char key[512];
    job_key_str(k, key, sizeof(key));
    Bo__JobConfiguration *old = NULL;
    struct bo_err e2 = BO_ERR_INIT;
    if (bo_store_get_cron_job(s->store, k, &old, &e2) != BO_OK) {
        bo__job_key__free_unpacked(k, NULL);
        char msg[600];
        snprintf(msg, sizeof(msg), "no cron job '%s'", key);
        work_fail(w, BO_ENOTFOUND, msg);
        return BO_OK;
    }
    bo__job_configuration__free_unpacked(old, NULL);
    if (batch_touched(b, key)) {
        bo__job_key__free_unpacked(k, NULL);
        return 1;
    }
    batch_touch(b, key);
    Bo__RemoveCronJob *rm = batch_op(b, BO__OP__OP_REMOVE_CRON_JOB);
    if (rm == NULL) {
        bo__job_key__free_unpacked(k, NULL);
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    rm->job_key = k;
    cron_del(s, key);
    w->result = json_pack("{s:s}", "job", key);
    return BO_OK;
}

/* A cron run: launch the template's instances, handling a previous run that
 * is still active by the collision policy. Runs for cron triggers, for
 * "start now", and for the retries of KILL_EXISTING. */
int sched_run_cron(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                   struct bo_err *err)
{
    const char *keystr =
        w->kind == W_DEADLINE ? w->dl.id : json_string_value(json_object_get(w->args, "key"));
    Bo__JobKey *k = NULL;
    json_t *kj = w->kind == W_OP ? json_object_get(w->args, "key") : NULL;
    char role[256], env[256], name[256];
    Bo__JobKey tmp = BO__JOB_KEY__INIT;
    if (kj != NULL) {
        int rc = decode_key(kj, &k, err);
        if (rc != BO_OK) {
            return rc;
        }
        if (batch_own_msg(b, &k->base) != BO_OK) {
            bo__job_key__free_unpacked(k, NULL);
            return bo_errf(err, BO_ENOMEM, "out of memory");
        }
    } else {
        if (keystr == NULL || sscanf(keystr, "%255[^/]/%255[^/]/%255s", role, env, name) != 3) {
            return BO_OK;
        }
        tmp.role = role;
        tmp.environment = env;
        tmp.name = name;
        k = &tmp;
    }
    char key[512];
    job_key_str(k, key, sizeof(key));
    Bo__JobConfiguration *jc = NULL;
    struct bo_err e2 = BO_ERR_INIT;
    if (bo_store_get_cron_job(s->store, k, &jc, &e2) != BO_OK) {
        char msg[600];
        snprintf(msg, sizeof(msg), "no cron job '%s'", key);
        work_fail(w, BO_ENOTFOUND, msg);
        return BO_OK;
    }
    if (batch_own_msg(b, &jc->base) != BO_OK) {
        bo__job_configuration__free_unpacked(jc, NULL);
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    struct bo_task_list *l;
    int rc = active_tasks(s, b, k, NULL, 0, &l, err);
    if (rc != BO_OK) {
        return rc;
    }
    if (touch_all(b, l, key) != 0) {
        return 1;
    }
    bool retry = w->kind == W_DEADLINE;
    if (!retry) {
        s->stats.cron_triggers++;
    }
    struct sched_cron *c = NULL;
    HASH_FIND_STR(s->crons, key, c);
    if (l->n > 0) {
        if (!retry) {
            s->stats.cron_collisions++;
        }
        if (jc->cron_collision_policy == BO__CRON_COLLISION_POLICY__CRON_CANCEL_NEW) {
            bo_info("scheduler: cron job '%s': previous run still active, run cancelled", key);
            w->result = json_pack("{s:s, s:s}", "job", key, "outcome", "cancelled");
            return BO_OK;
        }
        for (size_t i = 0; i < l->n; i++) {
            Bo__ScheduledTask *t = l->tasks[i];
            if (t->status == BO__SCHEDULE_STATUS__KILLING) {
                continue;
            }
            rc = sched_transition(s, b, t, BO__SCHEDULE_STATUS__KILLING,
                                  "Killed for a new cron run (KILL_EXISTING)", err);
            if (rc != BO_OK) {
                return rc;
            }
        }
        int64_t backoff = c != NULL && c->launch_backoff_ms > 0 ? c->launch_backoff_ms : 5000;
        if (c != NULL) {
            c->launch_backoff_ms = backoff * 2 > 60000 ? 60000 : backoff * 2;
        }
        rc = batch_deadline(b, sched_now_ms(s) + backoff, DL_CRON_LAUNCH, key, 0, 0);
        if (rc != BO_OK) {
            return bo_errf(err, rc, "out of memory");
        }
        w->result = json_pack("{s:s, s:s}", "job", key, "outcome", "killing previous run");
        return BO_OK;
    }
    if (c != NULL) {
        c->launch_backoff_ms = 0;
    }
    rc = create_tasks(s, b, jc->key, jc->task_config, 0, jc->instance_count, err);
    if (rc == BO_OK) {
        w->result = json_pack("{s:s, s:s}", "job", key, "outcome", "launched");
    }
    return rc;
}

/* --------------------------------------------------------------- quota --- */

static int op_quota(struct bo_sched *s, struct sched_batch *b, struct sched_work *w, bool increase,
                    struct bo_err *err)
{
    const char *role;
    double cpu;
    int64_t ram, disk;
    int rc = quota_args(w->args, &role, &cpu, &ram, &disk, err);
    if (rc != BO_OK) {
        return rc;
    }
    char key[300];
    snprintf(key, sizeof(key), "quota:%s", role);
    if (batch_touched(b, key)) {
        return 1;
    }
    batch_touch(b, key);
    if (increase) {
        struct res_sum q;
        quota_get(s, role, &q);
        cpu += q.cpu;
        ram += q.ram_mb;
        disk += q.disk_mb;
    }
    /* On a failure below the op stays half built in the batch, which the
     * error then drops whole. */
    Bo__SaveQuota *sq = batch_op(b, BO__OP__OP_SAVE_QUOTA);
    Bo__ResourceAggregate *agg = bo_calloc(1, sizeof(*agg));
    if (sq == NULL || agg == NULL) {
        bo_free(agg);
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    bo__resource_aggregate__init(agg);
    sq->quota = agg;
    agg->resources = bo_calloc(3, sizeof(*agg->resources));
    if ((sq->role = bo_strdup(role)) == NULL || agg->resources == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    for (int i = 0; i < 3; i++) {
        Bo__Resource *r = bo_calloc(1, sizeof(*r));
        if (r == NULL) {
            return bo_errf(err, BO_ENOMEM, "out of memory");
        }
        bo__resource__init(r);
        agg->resources[agg->n_resources++] = r;
    }
    Bo__Resource **rs = agg->resources;
    rs[0]->kind_case = BO__RESOURCE__KIND_NUM_CPUS;
    rs[0]->num_cpus = cpu;
    rs[1]->kind_case = BO__RESOURCE__KIND_RAM_MB;
    rs[1]->ram_mb = ram;
    rs[2]->kind_case = BO__RESOURCE__KIND_DISK_MB;
    rs[2]->disk_mb = disk;
    w->result = json_pack("{s:s, s:f, s:I, s:I}", "role", role, "cpu", cpu, "ram_mb",
                          (json_int_t)ram, "disk_mb", (json_int_t)disk);
    return BO_OK;
}

/* --------------------------------------------------------- maintenance --- */

static int save_host_op(struct sched_batch *b, Bo__HostAttributes *h)
{
    Bo__SaveHostAttributes *sh = batch_op(b, BO__OP__OP_SAVE_HOST_ATTRIBUTES);
    if (sh == NULL) {
        return BO_ENOMEM;
    }
    sh->host_attributes = h;
    return BO_OK;
}

/* The stored record of `host`, or a new one. */
static Bo__HostAttributes *host_record(struct bo_sched *s, const char *host)
{
    Bo__HostAttributes *h = NULL;
    struct bo_err err = BO_ERR_INIT;
    if (bo_store_get_host(s->store, host, &h, &err) == BO_OK) {
        return h;
    }
    h = bo_calloc(1, sizeof(*h));
    if (h == NULL) {
        return NULL;
    }
    bo__host_attributes__init(h);
    if ((h->host = bo_strdup(host)) == NULL) {
        bo_free(h);
        return NULL;
    }
    return h;
}

static int set_mode(struct bo_sched *s, struct sched_batch *b, const char *host, int mode)
{
    Bo__HostAttributes *h = host_record(s, host);
    if (h == NULL) {
        return BO_ENOMEM;
    }
    h->mode = (Bo__MaintenanceMode)mode;
    int rc = save_host_op(b, h);
    if (rc != BO_OK) {
        bo__host_attributes__free_unpacked(h, NULL);
        return rc;
    }
    struct bo_err err = BO_ERR_INIT;
    if (bo_place_set_mode(s->place, host, (Bo__MaintenanceMode)mode, &err) == BO_ENOTFOUND) {
        /* not known yet: a placeholder keeps the mode for when it registers */
        struct bo_place_host_spec spec = {.name = host, .agent_id = ""};
        if (bo_place_upsert_host(s->place, &spec, &err) == BO_OK) {
            bo_place_set_usable(s->place, host, false, &err);
            bo_place_set_mode(s->place, host, (Bo__MaintenanceMode)mode, &err);
        }
    }
    return BO_OK;
}

static int host_tasks(struct bo_sched *s, struct sched_batch *b, const char *host,
                      struct bo_task_list **out, struct bo_err *err)
{
    const char *hosts[1] = {host};
    struct bo_task_query q = {
        .hosts = hosts, .n_hosts = 1, .statuses = ACTIVE, .n_statuses = N_ACTIVE};
    return sched_query(s, b, &q, true, out, err);
}

static int op_maintenance(struct bo_sched *s, struct sched_batch *b, struct sched_work *w, int op,
                          struct bo_err *err)
{
    json_t *hosts = json_object_get(w->args, "hosts");
    size_t n = json_array_size(hosts);
    struct bo_task_list **lists = bo_calloc(n == 0 ? 1 : n, sizeof(*lists));
    if (lists == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    int rc = BO_OK;
    /* check first, change after */
    for (size_t i = 0; i < n && rc == BO_OK; i++) {
        const char *h = json_string_value(json_array_get(hosts, i));
        char key[300];
        snprintf(key, sizeof(key), "host:%s", h);
        if (batch_touched(b, key)) {
            rc = 1;
            break;
        }
        if (op == BO_SCHED_MAINT_DRAIN) {
            rc = host_tasks(s, b, h, &lists[i], err);
            if (rc == BO_OK && touch_all(b, lists[i], NULL) != 0) {
                rc = 1;
            }
        }
    }
    json_t *result = json_array();
    for (size_t i = 0; i < n && rc == BO_OK; i++) {
        const char *h = json_string_value(json_array_get(hosts, i));
        char key[300];
        snprintf(key, sizeof(key), "host:%s", h);
        batch_touch(b, key);
        int mode = op == BO_SCHED_MAINT_START ? BO__MAINTENANCE_MODE__MAINTENANCE_SCHEDULED
                   : op == BO_SCHED_MAINT_END ? BO__MAINTENANCE_MODE__MAINTENANCE_NONE
                                              : BO__MAINTENANCE_MODE__MAINTENANCE_DRAINING;
        if (op == BO_SCHED_MAINT_DRAIN && lists[i]->n == 0) {
            mode = BO__MAINTENANCE_MODE__MAINTENANCE_DRAINED;
        }
        if (set_mode(s, b, h, mode) != BO_OK) {
            rc = bo_errf(err, BO_ENOMEM, "out of memory");
            break;
        }
        if (op == BO_SCHED_MAINT_DRAIN) {
            for (size_t j = 0; j < lists[i]->n && rc == BO_OK; j++) {
                Bo__ScheduledTask *t = lists[i]->tasks[j];
                if (t->status == BO__SCHEDULE_STATUS__PENDING ||
                    t->status == BO__SCHEDULE_STATUS__THROTTLED ||
                    t->status == BO__SCHEDULE_STATUS__KILLING ||
                    t->status == BO__SCHEDULE_STATUS__DRAINING) {
                    continue;
                }
                rc = sched_transition(s, b, t, BO__SCHEDULE_STATUS__DRAINING,
                                      "Draining the host for maintenance", err);
            }
        }
        json_array_append_new(
            result, json_pack("{s:s, s:s}", "host", h, "mode",
                              bo_pbjson_enum_name(&bo__maintenance_mode__descriptor, mode)));
    }
    bo_free(lists);
    if (rc != BO_OK) {
        json_decref(result);
        return rc;
    }
    w->result = json_pack("{s:o}", "hosts", result);
    return BO_OK;
}

int sched_run_drain_check(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                          struct bo_err *err)
{
    const char *h = json_string_value(json_object_get(w->args, "host"));
    char key[300];
    snprintf(key, sizeof(key), "host:%s", h);
    if (batch_touched(b, key)) {
        return BO_OK; /* the next tick checks again */
    }
    Bo__HostAttributes *rec = NULL;
    struct bo_err e2 = BO_ERR_INIT;
    if (bo_store_get_host(s->store, h, &rec, &e2) != BO_OK) {
        return BO_OK;
    }
    bool draining = rec->mode == BO__MAINTENANCE_MODE__MAINTENANCE_DRAINING;
    bo__host_attributes__free_unpacked(rec, NULL);
    if (!draining) {
        return BO_OK;
    }
    const char *hosts[1] = {h};
    struct bo_task_query q = {
        .hosts = hosts, .n_hosts = 1, .statuses = ACTIVE, .n_statuses = N_ACTIVE};
    uint64_t n = 0;
    int rc = bo_store_count_tasks(s->store, &q, &n, err);
    if (rc != BO_OK || n > 0) {
        return rc;
    }
    batch_touch(b, key);
    if (set_mode(s, b, h, BO__MAINTENANCE_MODE__MAINTENANCE_DRAINED) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    bo_info("scheduler: host '%s' is drained", h);
    return BO_OK;
}

int sched_run_host_attrs(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                         struct bo_err *err)
{
    const char *host = json_string_value(json_object_get(w->args, "host"));
    const char *agent = json_string_value(json_object_get(w->args, "agent_id"));
    json_t *attrs = json_object_get(w->args, "attributes");
    char key[300];
    snprintf(key, sizeof(key), "host:%s", host);
    if (batch_touched(b, key)) {
        return 1;
    }
    Bo__HostAttributes *h = host_record(s, host);
    if (h == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    /* Rebuild the attribute list; keep the maintenance mode. */
    json_t *want = json_object();
    json_object_set_new(want, "host", json_string(host));
    json_object_set_new(want, "slave_id", json_string(agent));
    json_object_set_new(want, "mode", json_integer(h->mode));
    json_t *list = json_array();
    const char *k;
    json_t *v;
    void *it;
    /* sorted by name, for a stable record */
    const char **names = bo_calloc(json_object_size(attrs) + 1, sizeof(*names));
    size_t n = 0;
    json_object_foreach(attrs, k, v)
    {
        if (names != NULL) {
            names[n++] = k;
        }
    }
    (void)it;
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    }
    for (size_t i = 0; i < n; i++) {
        v = json_object_get(attrs, names[i]);
        json_t *vals = json_is_array(v) ? json_incref(v) : json_pack("[O]", v);
        json_array_append_new(list, json_pack("{s:s, s:o}", "name", names[i], "values", vals));
    }
    bo_free(names);
    json_object_set_new(want, "attributes", list);
    ProtobufCMessage *m = NULL;
    int rc = bo_pbjson_decode(&bo__host_attributes__descriptor, want, &m, err);
    json_decref(want);
    if (rc != BO_OK) {
        bo__host_attributes__free_unpacked(h, NULL);
        return BO_OK; /* attributes were checked at registration */
    }
    Bo__HostAttributes *nh = (Bo__HostAttributes *)m;
    size_t l1 = protobuf_c_message_get_packed_size(&h->base);
    size_t l2 = protobuf_c_message_get_packed_size(&nh->base);
    bool same = false;
    if (l1 == l2) {
        uint8_t *p1 = bo_malloc(l1 + 1), *p2 = bo_malloc(l2 + 1);
        if (p1 != NULL && p2 != NULL) {
            protobuf_c_message_pack(&h->base, p1);
            protobuf_c_message_pack(&nh->base, p2);
            same = memcmp(p1, p2, l1) == 0;
        }
        bo_free(p1);
        bo_free(p2);
    }
    bo__host_attributes__free_unpacked(h, NULL);
    if (same) {
        bo__host_attributes__free_unpacked(nh, NULL);
        return BO_OK;
    }
    batch_touch(b, key);
    if (save_host_op(b, nh) != BO_OK) {
        bo__host_attributes__free_unpacked(nh, NULL);
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    return BO_OK;
}

/* ------------------------------------------------------- agent reports --- */

static int op_agent_status(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                           struct bo_err *err)
{
    const char *agent = json_string_value(json_object_get(w->args, "agent_id"));
    json_t *ups = json_object_get(w->args, "updates");
    size_t n = json_array_size(ups);
    if (n == 0) {
        w->result = json_pack("{s:i}", "acked", 0);
        return BO_OK;
    }
    for (size_t i = 0; i < n; i++) {
        if (batch_touched(b,
                          json_string_value(json_object_get(json_array_get(ups, i), "task_id")))) {
            return 1;
        }
    }
    int rc = BO_OK;
    /* the task each update found, so that later updates of the same task in
     * this request (STARTING then RUNNING) go on from the same record */
    Bo__ScheduledTask **seen = bo_calloc(n, sizeof(*seen));
    if (seen == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        json_t *u = json_array_get(ups, i);
        const char *id = json_string_value(json_object_get(u, "task_id"));
        int st = bo_tsm_status_parse(json_string_value(json_object_get(u, "status")));
        const char *msg = json_string_value(json_object_get(u, "message"));
        s->stats.status_updates++;
        Bo__ScheduledTask *t = NULL;
        bool again = false;
        for (size_t j = 0; j < i && !again; j++) {
            const char *other =
                json_string_value(json_object_get(json_array_get(ups, j), "task_id"));
            if (strcmp(other, id) == 0) {
                again = true;
                t = seen[j];
            }
        }
        if (!again) {
            /* One task per query: the statement is the same every time (and
             * cached), where a list of ids makes SQLite build a temporary
             * index per call. */
            const char *ids[1] = {id};
            struct bo_task_query q = {.task_ids = ids, .n_task_ids = 1};
            struct bo_task_list *l;
            rc = sched_query(s, b, &q, true, &l, err);
            if (rc != BO_OK) {
                bo_free(seen);
                return rc;
            }
            t = l->n > 0 ? l->tasks[0] : NULL;
        }
        seen[i] = t;
        batch_touch(b, id);
        if (t == NULL) {
            /* unknown: if it claims to run, it must not */
            if (st == BO__SCHEDULE_STATUS__ASSIGNED || st == BO__SCHEDULE_STATUS__STARTING ||
                st == BO__SCHEDULE_STATUS__RUNNING) {
                rc = sched_queue_kill(s, b, agent, id);
                if (rc != BO_OK) {
                    bo_free(seen);
                    return bo_errf(err, rc, "out of memory");
                }
            }
            continue;
        }
        if ((int)t->status == st) {
            continue; /* the same update twice changes nothing */
        }
        rc = sched_transition(s, b, t, st, msg, err);
        if (rc != BO_OK) {
            bo_free(seen);
            return rc;
        }
    }
    bo_free(seen);
    w->result = json_pack("{s:I}", "acked", (json_int_t)n);
    return BO_OK;
}

/* Reconcile an agent's report of what it runs with the store, or (lost)
 * partition everything the store has on its host. */
int sched_run_reconcile(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                        struct bo_err *err)
{
    const char *agent = json_string_value(json_object_get(w->args, "agent_id"));
    const char *host = json_string_value(json_object_get(w->args, "host"));
    bool lost = json_is_true(json_object_get(w->args, "lost"));
    json_t *reported = json_object_get(w->args, "tasks");
    struct bo_task_list *l;
    int rc = host_tasks(s, b, host, &l, err);
    if (rc != BO_OK) {
        return rc;
    }
    size_t nr = json_array_size(reported);
    for (size_t i = 0; i < nr; i++) {
        const char *id = json_string_value(json_object_get(json_array_get(reported, i), "task_id"));
        if (id != NULL && batch_touched(b, id)) {
            return 1;
        }
    }
    if (touch_all(b, l, NULL) != 0) {
        return 1;
    }
    if (lost) {
        if (sched_agent_registered(s, agent)) {
            return BO_OK; /* it came back in the meantime */
        }
        for (size_t i = 0; i < l->n; i++) {
            Bo__ScheduledTask *t = l->tasks[i];
            if (strcmp(t->assigned_task->slave_id, agent) != 0 ||
                !bo_tsm_is_slave_assigned(t->status) ||
                t->status == BO__SCHEDULE_STATUS__PARTITIONED) {
                continue;
            }
            int to = t->status == BO__SCHEDULE_STATUS__ASSIGNED ? BO__SCHEDULE_STATUS__LOST
                                                                : BO__SCHEDULE_STATUS__PARTITIONED;
            rc = sched_transition(s, b, t, to, "Agent stopped reporting", err);
            if (rc != BO_OK) {
                return rc;
            }
        }
        return BO_OK;
    }
    /* What the agent reports. */
    for (size_t i = 0; i < nr; i++) {
        json_t *r = json_array_get(reported, i);
        const char *id = json_string_value(json_object_get(r, "task_id"));
        int st = bo_tsm_status_parse(json_string_value(json_object_get(r, "status")));
        if (id == NULL || st < 0) {
            continue;
        }
        Bo__ScheduledTask *t = NULL;
        for (size_t j = 0; j < l->n; j++) {
            if (strcmp(l->tasks[j]->assigned_task->task_id, id) == 0) {
                t = l->tasks[j];
            }
        }
        if (t == NULL) {
            /* not active here in the store: unknown or already terminal */
            if (!bo_tsm_is_terminal(st)) {
                rc = sched_queue_kill(s, b, agent, id);
                if (rc != BO_OK) {
                    return bo_errf(err, rc, "out of memory");
                }
            }
            continue;
        }
        if ((int)t->status != st) {
            rc = sched_transition(s, b, t, st, "Reconciled with the agent", err);
            if (rc != BO_OK) {
                return rc;
            }
        }
    }
    /* What the store has here that the agent does not report. */
    for (size_t j = 0; j < l->n; j++) {
        Bo__ScheduledTask *t = l->tasks[j];
        const char *id = t->assigned_task->task_id;
        if (!bo_tsm_is_slave_assigned(t->status)) {
            continue;
        }
        bool seen = false;
        for (size_t i = 0; i < nr && !seen; i++) {
            const char *rid =
                json_string_value(json_object_get(json_array_get(reported, i), "task_id"));
            seen = rid != NULL && strcmp(rid, id) == 0;
        }
        if (seen || sched_agent_launch_pending(s, agent, id)) {
            continue;
        }
        if (t->status == BO__SCHEDULE_STATUS__ASSIGNED &&
            strcmp(t->assigned_task->slave_id, agent) == 0 && t->n_task_events > 0 &&
            sched_now_ms(s) - t->task_events[t->n_task_events - 1]->timestamp_ms < 2000) {
            continue; /* just assigned; its launch is on its way */
        }
        rc = sched_transition(s, b, t, BO__SCHEDULE_STATUS__LOST,
                              "Task not found on its agent at reconciliation", err);
        if (rc != BO_OK) {
            return rc;
        }
    }
    return BO_OK;
}

/* Aurora's task history pruning: a terminal task goes once it has been
 * terminal for history_prune_threshold, and a job keeps at most
 * history_max_per_job terminal tasks (the oldest go first); no task goes
 * before history_min_retention. At most PRUNE_MAX tasks per round keep the
 * transaction small; the next round goes on. */
#define PRUNE_MAX 5000

static int64_t ended_at(const Bo__ScheduledTask *t)
{
    return t->n_task_events > 0 ? t->task_events[t->n_task_events - 1]->timestamp_ms : 0;
}

static int cmp_ended(const void *a, const void *b)
{
    int64_t x = ended_at(*(Bo__ScheduledTask *const *)a);
    int64_t y = ended_at(*(Bo__ScheduledTask *const *)b);
    return x < y ? -1 : x > y;
}

int sched_run_prune(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                    struct bo_err *err)
{
    (void)w;
    struct bo_job_summary_list jobs = {0};
    int rc = bo_store_job_summaries(s->store, NULL, &jobs, err);
    if (rc != BO_OK) {
        return rc;
    }
    int64_t now = sched_now_ms(s);
    size_t pruned = 0;
    for (size_t i = 0; i < jobs.n && rc == BO_OK && pruned < PRUNE_MAX; i++) {
        const struct bo_job_summary *j = &jobs.jobs[i];
        if (j->counts.finished + j->counts.failed == 0) {
            continue;
        }
        const Bo__JobKey *keys[1] = {j->key};
        struct bo_task_query q = {
            .job_keys = keys, .n_job_keys = 1, .statuses = TERMINAL, .n_statuses = 4};
        struct bo_task_list *l;
        rc = sched_query(s, b, &q, false, &l, err);
        if (rc != BO_OK) {
            break;
        }
        if (l->n > 1) {
            qsort(l->tasks, l->n, sizeof(*l->tasks), cmp_ended);
        }
        size_t keep = (size_t)(s->cfg.history_max_per_job > 0 ? s->cfg.history_max_per_job : 0);
        for (size_t k = 0; k < l->n && pruned < PRUNE_MAX; k++) {
            Bo__ScheduledTask *t = l->tasks[k];
            int64_t age = now - ended_at(t);
            bool too_many = l->n - k > keep;
            bool too_old = age >= s->cfg.history_prune_threshold_ms;
            if (age < s->cfg.history_min_retention_ms || !(too_many || too_old) ||
                !batch_touch(b, t->assigned_task->task_id)) {
                continue;
            }
            if (batch_remove_task(b, t->assigned_task->task_id) != BO_OK) {
                rc = bo_errf(err, BO_ENOMEM, "out of memory");
                break;
            }
            pruned++;
        }
    }
    bo_job_summary_list_release(&jobs);
    s->stats.tasks_pruned += pruned;
    return rc;
}

int sched_run_op(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                 struct bo_err *err)
{
    switch (w->op) {
    case BO_SCHED_CREATE_JOB:
        return op_create_job(s, b, w, err);
    case BO_SCHED_ADD_INSTANCES:
        return op_add_instances(s, b, w, err);
    case BO_SCHED_KILL:
        return op_kill_restart(s, b, w, false, err);
    case BO_SCHED_RESTART:
        return op_kill_restart(s, b, w, true, err);
    case BO_SCHED_FORCE_STATE:
        return op_force_state(s, b, w, err);
    case BO_SCHED_PRUNE:
        return op_prune(s, b, w, err);
    case BO_SCHED_SCHEDULE_CRON:
        return op_schedule_cron(s, b, w, err);
    case BO_SCHED_DESCHEDULE_CRON:
        return op_deschedule_cron(s, b, w, err);
    case BO_SCHED_START_CRON:
        return sched_run_cron(s, b, w, err);
    case BO_SCHED_SET_QUOTA:
        return op_quota(s, b, w, false, err);
    case BO_SCHED_INCREASE_QUOTA:
        return op_quota(s, b, w, true, err);
    case BO_SCHED_MAINT_START:
    case BO_SCHED_MAINT_DRAIN:
    case BO_SCHED_MAINT_END:
        return op_maintenance(s, b, w, w->op, err);
    case BO_SCHED_AGENT_STATUS:
        return op_agent_status(s, b, w, err);
    default:
        work_fail(w, BO_EINVAL, "unknown operation");
        return BO_OK;
    }
}

/* ----------------------------------------------------------------- reads --- */

#define MAXQ 1024

/* Room for the lists a task query points into; lives as long as the query. */
struct query_space {
    Bo__ScheduleStatus st[32];
    const char *ids[MAXQ], *hosts[MAXQ];
    int32_t inst[MAXQ];
};

static int query_from_json(const json_t *a, struct bo_task_query *q, struct query_space *sp,
                           struct bo_err *err)
{
    const size_t max_st = sizeof(sp->st) / sizeof(sp->st[0]);
    Bo__ScheduleStatus *st = sp->st;
    const char **ids = sp->ids, **hosts = sp->hosts;
    int32_t *inst = sp->inst;
    *q = (struct bo_task_query){0};
    if (a == NULL) {
        return BO_OK;
    }
    static const char *const f[] = {"role",     "environment",  "job_name", "task_ids",
                                    "statuses", "instance_ids", "hosts",    "offset",
                                    "limit",    "configs",      NULL};
    int rc = check_fields(a, f, err);
    if (rc != BO_OK) {
        return rc;
    }
    json_t *v;
    if ((v = json_object_get(a, "role")) != NULL && !json_is_string(v)) {
        return bo_errf(err, BO_EINVAL, "role: expected a string");
    }
    q->role = json_string_value(v);
    if ((v = json_object_get(a, "environment")) != NULL && !json_is_string(v)) {
        return bo_errf(err, BO_EINVAL, "environment: expected a string");
    }
    q->environment = json_string_value(v);
    if ((v = json_object_get(a, "job_name")) != NULL && !json_is_string(v)) {
        return bo_errf(err, BO_EINVAL, "job_name: expected a string");
    }
    q->job_name = json_string_value(v);
    v = json_object_get(a, "statuses");
    for (size_t i = 0; i < json_array_size(v); i++) {
        int x = bo_tsm_status_parse(json_string_value(json_array_get(v, i)));
        if (x < 0 || i >= max_st) {
            return bo_errf(err, BO_EINVAL, "statuses[%zu]: unknown status", i);
        }
        st[q->n_statuses++] = (Bo__ScheduleStatus)x;
    }
    q->statuses = st;
    v = json_object_get(a, "task_ids");
    for (size_t i = 0; i < json_array_size(v); i++) {
        if (!json_is_string(json_array_get(v, i)) || i >= MAXQ) {
            return bo_errf(err, BO_EINVAL, "task_ids[%zu]: expected a task id", i);
        }
        ids[q->n_task_ids++] = json_string_value(json_array_get(v, i));
    }
    q->task_ids = ids;
    v = json_object_get(a, "hosts");
    for (size_t i = 0; i < json_array_size(v); i++) {
        if (!json_is_string(json_array_get(v, i)) || i >= MAXQ) {
            return bo_errf(err, BO_EINVAL, "hosts[%zu]: expected a host", i);
        }
        hosts[q->n_hosts++] = json_string_value(json_array_get(v, i));
    }
    q->hosts = hosts;
    v = json_object_get(a, "instance_ids");
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *x = json_array_get(v, i);
        if (!json_is_integer(x) || i >= MAXQ || json_integer_value(x) < 0 ||
            json_integer_value(x) > INT32_MAX) {
            return bo_errf(err, BO_EINVAL, "instance_ids[%zu]: expected an instance id", i);
        }
        inst[q->n_instance_ids++] = (int32_t)json_integer_value(x);
    }
    q->instance_ids = inst;
    if ((v = json_object_get(a, "offset")) != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            return bo_errf(err, BO_EINVAL, "offset: expected an integer >= 0");
        }
        q->offset = json_integer_value(v);
    }
    if ((v = json_object_get(a, "limit")) != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            return bo_errf(err, BO_EINVAL, "limit: expected an integer >= 0");
        }
        q->limit = json_integer_value(v);
    }
    return BO_OK;
}

static json_t *counts_json(const struct bo_task_counts *c)
{
    return json_pack("{s:I, s:I, s:I, s:I}", "active", (json_int_t)c->active, "pending",
                     (json_int_t)c->pending, "finished", (json_int_t)c->finished, "failed",
                     (json_int_t)c->failed);
}

/* The tasks a "tasks" read asks for, from the store. */
static int load_tasks(struct bo_sched *s, const json_t *args, bool pending_reasons,
                      struct bo_task_list *l, struct bo_err *err)
{
    struct query_space sp;
    struct bo_task_query q;
    int rc = query_from_json(args, &q, &sp, err);
    if (rc != BO_OK) {
        return rc;
    }
    bool configs = !json_is_false(json_object_get(args, "configs"));
    Bo__ScheduleStatus pend = BO__SCHEDULE_STATUS__PENDING;
    if (pending_reasons) {
        q.statuses = &pend;
        q.n_statuses = 1;
        configs = false;
    }
    return bo_store_query_tasks(s->store, &q, configs, l, err);
}

/* A task as the API shows it: the ScheduledTask, its status by the state
 * machine's name. NULL when the encoder refuses it or out of memory. */
static json_t *task_json(const Bo__ScheduledTask *t)
{
    json_t *j = bo_pbjson_encode(&t->base, 0);
    if (j != NULL) {
        json_object_set_new(j, "status", json_string(bo_tsm_status_name(t->status)));
    }
    return j;
}

static int dump_to_buf(const char *text, size_t len, void *data)
{
    return bo_buf_append(data, text, len) == BO_OK ? 0 : -1;
}

/* task_json's text, appended to `out`: written straight from the message
 * when the state machine's name of the status is the encoder's (every
 * status in storage.proto), else dumped from the tree. BO_EINVAL for a task
 * task_json cannot encode, BO_ENOMEM; `out` is as it was on error. */
int sched_task_text(const Bo__ScheduledTask *t, struct bo_buf *out)
{
    const char *name = bo_pbjson_enum_name(&bo__schedule_status__descriptor, t->status);
    if (name != NULL && strcmp(name, bo_tsm_status_name(t->status)) == 0) {
        return bo_pbjson_write(&t->base, 0, out);
    }
    json_t *j = task_json(t);
    if (j == NULL) {
        return BO_EINVAL;
    }
    size_t saved = out->len;
    int rc = json_dump_callback(j, dump_to_buf, out, JSON_COMPACT) == 0 ? BO_OK : BO_ENOMEM;
    if (rc != BO_OK) {
        out->len = saved;
    }
    json_decref(j);
    return rc;
}

static int read_tasks(struct bo_sched *s, const json_t *args, bool pending_reasons, json_t **out,
                      struct bo_err *err)
{
    struct bo_task_list l = {0};
    int rc = load_tasks(s, args, pending_reasons, &l, err);
    if (rc != BO_OK) {
        return rc;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n && arr != NULL; i++) {
        if (pending_reasons) {
            const Bo__AssignedTask *a = l.tasks[i]->assigned_task;
            /* the task id starts with role-env-name; the job comes from the query */
            json_t *o =
                json_pack("{s:s, s:i}", "task_id", a->task_id, "instance_id", a->instance_id);
            json_array_append_new(arr, o);
        } else {
            /* a task the encoder refuses (NULL) is left out */
            json_array_append_new(arr, task_json(l.tasks[i]));
        }
    }
    bo_task_list_release(&l);
    if (arr == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    *out = json_pack("{s:o}", "tasks", arr);
    return BO_OK;
}

/* read_tasks (without pending reasons) as text, without the tree: the
 * bytes json_dumps(JSON_COMPACT) gives for read_tasks' answer. */
struct text_ctx {
    struct bo_buf *out;
    bool first;
};

static int write_one(const Bo__ScheduledTask *t, void *data)
{
    struct text_ctx *x = data;
    size_t mark = x->out->len;
    int rc = x->first ? BO_OK : bo_buf_append_byte(x->out, ',');
    if (rc == BO_OK) {
        rc = sched_task_text(t, x->out);
    }
    if (rc == BO_EINVAL) {
        /* left out, as read_tasks leaves it out */
        x->out->len = mark;
        return BO_OK;
    }
    if (rc == BO_OK) {
        x->first = false;
    }
    return rc;
}

/* A task's text kept by the store (sched_task_text's bytes). */
static int append_text(const uint8_t *text, size_t len, void *data)
{
    struct text_ctx *x = data;
    int rc = x->first ? BO_OK : bo_buf_append_byte(x->out, ',');
    x->first = false;
    return rc != BO_OK ? rc : bo_buf_append(x->out, text, len);
}

/* The tasks answer as text, each task written as it is read from the store
 * (bo_store_each_task): no list, no tree, no allocation per field. */
static int read_tasks_text(struct bo_sched *s, const json_t *args, struct bo_buf *out,
                           struct bo_err *err)
{
    struct query_space sp;
    struct bo_task_query q;
    int rc = query_from_json(args, &q, &sp, err);
    if (rc != BO_OK) {
        return rc;
    }
    bool configs = !json_is_false(json_object_get(args, "configs"));
    size_t saved = out->len;
    struct text_ctx x = {out, true};
    rc = bo_buf_append(out, "{\"tasks\":[", 10);
    if (rc == BO_OK && !configs) {
        rc = bo_store_each_task_text(s->store, &q, append_text, &x, err);
    } else if (rc == BO_OK) {
        rc = bo_store_each_task(s->store, &q, configs, write_one, &x, err);
    }
    if (rc == BO_OK) {
        rc = bo_buf_append(out, "]}", 2);
    }
    if (rc != BO_OK) {
        out->len = saved;
        return rc == BO_ENOMEM ? bo_errf(err, rc, "out of memory") : rc;
    }
    return BO_OK;
}

/* Pending reasons per job: tasks of the jobs of the query that are PENDING,
 * with the reason of their job's last placement attempt. */
static int read_pending(struct bo_sched *s, const json_t *args, json_t **out, struct bo_err *err)
{
    struct query_space sp;
    struct bo_task_query q;
    int rc = query_from_json(args, &q, &sp, err);
    if (rc != BO_OK) {
        return rc;
    }
    Bo__ScheduleStatus pend[2] = {BO__SCHEDULE_STATUS__PENDING, BO__SCHEDULE_STATUS__THROTTLED};
    q.statuses = pend;
    q.n_statuses = 2;
    struct bo_task_list l = {0};
    rc = bo_store_query_tasks(s->store, &q, true, &l, err);
    if (rc != BO_OK) {
        return rc;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++) {
        const Bo__ScheduledTask *t = l.tasks[i];
        char key[512];
        job_key_str(t->assigned_task->task->job, key, sizeof(key));
        const char *reason;
        char buf[128];
        if (t->status == BO__SCHEDULE_STATUS__THROTTLED) {
            snprintf(buf, sizeof(buf), "Throttled: the task was flapping");
            reason = buf;
        } else {
            reason = sched_pending_reason(s, key);
            if (reason == NULL) {
                reason = s->leader ? "Waiting to be scheduled" : "No leading scheduler";
            }
        }
        json_array_append_new(arr, json_pack("{s:s, s:s, s:i, s:s}", "task_id",
                                             t->assigned_task->task_id, "job", key, "instance_id",
                                             t->assigned_task->instance_id, "reason", reason));
    }
    bo_task_list_release(&l);
    *out = json_pack("{s:o}", "reasons", arr);
    return BO_OK;
}

/* A cron job's next run: the one armed, else computed from its schedule;
 * 0 when it has none. */
static int64_t job_next_cron_ms(struct bo_sched *s, const struct bo_job_summary *j, const char *key)
{
    struct sched_cron *c = NULL;
    HASH_FIND_STR(s->crons, key, c);
    int64_t next = c != NULL ? c->next_ms : 0;
    if (next == 0) {
        struct bo_cron ce;
        struct bo_err e2 = BO_ERR_INIT;
        if (bo_cron_parse(&ce, j->cron_schedule, &e2) == BO_OK) {
            bo_cron_next(&ce, sched_now_ms(s), s->cfg.cron_utc, &next);
        }
    }
    return next;
}

static int read_job_summaries(struct bo_sched *s, const json_t *args, json_t **out,
                              struct bo_err *err)
{
    const char *role = json_string_value(json_object_get(args, "role"));
    struct bo_job_summary_list l = {0};
    int rc = bo_store_job_summaries(s->store, role, &l, err);
    if (rc != BO_OK) {
        return rc;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++) {
        const struct bo_job_summary *j = &l.jobs[i];
        json_t *o = json_pack("{s:o, s:o, s:b, s:i}", "key", bo_pbjson_encode(&j->key->base, 0),
                              "stats", counts_json(&j->counts), "is_cron", j->is_cron,
                              "instance_count", j->instance_count);
        if (j->is_cron && j->cron_schedule != NULL) {
            char key[512];
            job_key_str(j->key, key, sizeof(key));
            json_object_set_new(o, "cron_schedule", json_string(j->cron_schedule));
            int64_t next = job_next_cron_ms(s, j, key);
            if (next > 0) {
                json_object_set_new(o, "next_cron_run_ms", json_integer(next));
            }
        }
        json_array_append_new(arr, o);
    }
    bo_job_summary_list_release(&l);
    *out = json_pack("{s:o}", "jobs", arr);
    return BO_OK;
}

static int put_lit(struct bo_buf *out, const char *lit)
{
    return bo_buf_append(out, lit, strlen(lit));
}

/* One job summary as text: the bytes of read_job_summaries' object, dumped
 * compact (the API's order of keys, jansson's numbers and strings). */
static int job_summary_write(struct bo_sched *s, const struct bo_job_summary *j, struct bo_buf *o)
{
    const struct bo_task_counts *c = &j->counts;
    int rc = put_lit(o, "{\"key\":");
    rc = rc != BO_OK ? rc : bo_pbjson_write(&j->key->base, 0, o);
    rc = rc != BO_OK ? rc : put_lit(o, ",\"stats\":{\"active\":");
    rc = rc != BO_OK ? rc : bo_pbjson_write_int((int64_t)c->active, o);
    rc = rc != BO_OK ? rc : put_lit(o, ",\"pending\":");
    rc = rc != BO_OK ? rc : bo_pbjson_write_int((int64_t)c->pending, o);
    rc = rc != BO_OK ? rc : put_lit(o, ",\"finished\":");
    rc = rc != BO_OK ? rc : bo_pbjson_write_int((int64_t)c->finished, o);
    rc = rc != BO_OK ? rc : put_lit(o, ",\"failed\":");
    rc = rc != BO_OK ? rc : bo_pbjson_write_int((int64_t)c->failed, o);
    rc = rc != BO_OK ? rc : put_lit(o, j->is_cron ? "},\"is_cron\":true" : "},\"is_cron\":false");
    rc = rc != BO_OK ? rc : put_lit(o, ",\"instance_count\":");
    rc = rc != BO_OK ? rc : bo_pbjson_write_int(j->instance_count, o);
    if (rc == BO_OK && j->is_cron && j->cron_schedule != NULL) {
        char key[512];
        job_key_str(j->key, key, sizeof(key));
        rc = put_lit(o, ",\"cron_schedule\":");
        rc = rc != BO_OK ? rc : bo_pbjson_write_str(j->cron_schedule, o);
        int64_t next = job_next_cron_ms(s, j, key);
        if (rc == BO_OK && next > 0) {
            rc = put_lit(o, ",\"next_cron_run_ms\":");
            rc = rc != BO_OK ? rc : bo_pbjson_write_int(next, o);
        }
    }
    return rc != BO_OK ? rc : bo_buf_append_byte(o, '}');
}

/* Job summaries as text, without a tree: a role's page of a thousand jobs
 * is the UI's most frequent read. A job whose key or schedule is not UTF-8
 * (neither can come in through the API, which is JSON) is left out. */
static int read_job_summaries_text(struct bo_sched *s, const json_t *args, struct bo_buf *out,
                                   struct bo_err *err)
{
    const char *role = json_string_value(json_object_get(args, "role"));
    struct bo_job_summary_list l = {0};
    int rc = bo_store_job_summaries(s->store, role, &l, err);
    if (rc != BO_OK) {
        return rc;
    }
    size_t saved = out->len;
    rc = put_lit(out, "{\"jobs\":[");
    bool first = true;
    for (size_t i = 0; i < l.n && rc == BO_OK; i++) {
        size_t mark = out->len;
        rc = first ? BO_OK : bo_buf_append_byte(out, ',');
        rc = rc != BO_OK ? rc : job_summary_write(s, &l.jobs[i], out);
        if (rc == BO_EINVAL) {
            out->len = mark;
            rc = BO_OK;
            continue;
        }
        first = false;
    }
    rc = rc != BO_OK ? rc : put_lit(out, "]}");
    bo_job_summary_list_release(&l);
    if (rc != BO_OK) {
        out->len = saved;
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    return BO_OK;
}

static int read_roles(struct bo_sched *s, json_t **out, struct bo_err *err)
{
    struct bo_role_summary_list l = {0};
    int rc = bo_store_role_summaries(s->store, &l, err);
    if (rc != BO_OK) {
        return rc;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++) {
        const struct bo_role_summary *r = &l.roles[i];
        json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:o}", "role", r->role, "job_count",
                                             (json_int_t)r->job_count, "cron_job_count",
                                             (json_int_t)r->cron_job_count, "stats",
                                             counts_json(&r->counts)));
    }
    bo_role_summary_list_release(&l);
    *out = json_pack("{s:o}", "roles", arr);
    return BO_OK;
}

static int read_config_summary(struct bo_sched *s, const json_t *args, json_t **out,
                               struct bo_err *err)
{
    Bo__JobKey *k = NULL;
    int rc = decode_key(json_object_get(args, "key"), &k, err);
    if (rc != BO_OK) {
        return rc;
    }
    struct bo_config_group_list g = {0};
    rc = bo_store_config_groups(s->store, k, &g, err);
    if (rc != BO_OK) {
        bo__job_key__free_unpacked(k, NULL);
        return rc;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < g.n; i++) {
        json_t *ranges = json_array();
        for (size_t j = 0; j < g.groups[i].n_ranges; j++) {
            json_array_append_new(ranges, bo_pbjson_encode(&g.groups[i].ranges[j]->base, 0));
        }
        json_array_append_new(arr, json_pack("{s:o, s:o}", "config",
                                             bo_pbjson_encode(&g.groups[i].config->base, 0),
                                             "instances", ranges));
    }
    bo_config_group_list_release(&g);
    *out = json_pack("{s:o, s:o}", "key", bo_pbjson_encode(&k->base, 0), "groups", arr);
    bo__job_key__free_unpacked(k, NULL);
    return BO_OK;
}

static int read_quota(struct bo_sched *s, const json_t *args, json_t **out, struct bo_err *err)
{
    const char *role = json_string_value(json_object_get(args, "role"));
    if (role == NULL || !good_ident(role)) {
        return bo_errf(err, BO_EINVAL, "role: expected a role name");
    }
    struct res_sum q, used;
    quota_get(s, role, &q);
    int rc = quota_consumption(s, role, &used, err);
    if (rc != BO_OK) {
        return rc;
    }
    *out = json_pack("{s:s, s:{s:f, s:I, s:I}, s:{s:f, s:I, s:I}}", "role", role, "quota", "cpu",
                     q.cpu, "ram_mb", (json_int_t)q.ram_mb, "disk_mb", (json_int_t)q.disk_mb,
                     "prod_shared_consumption", "cpu", used.cpu, "ram_mb", (json_int_t)used.ram_mb,
                     "disk_mb", (json_int_t)used.disk_mb);
    return BO_OK;
}

static int read_hosts(struct bo_sched *s, const json_t *args, json_t **out, struct bo_err *err)
{
    json_t *want = json_object_get(args, "hosts");
    json_t *arr = json_array();
    if (want != NULL && json_array_size(want) > 0) {
        for (size_t i = 0; i < json_array_size(want); i++) {
            const char *h = json_string_value(json_array_get(want, i));
            if (h == NULL) {
                json_decref(arr);
                return bo_errf(err, BO_EINVAL, "hosts[%zu]: expected a host name", i);
            }
            Bo__HostAttributes *rec = NULL;
            struct bo_err e2 = BO_ERR_INIT;
            int mode = BO__MAINTENANCE_MODE__MAINTENANCE_NONE;
            if (bo_store_get_host(s->store, h, &rec, &e2) == BO_OK) {
                mode = rec->mode;
                bo__host_attributes__free_unpacked(rec, NULL);
            }
            json_array_append_new(
                arr, json_pack("{s:s, s:s}", "host", h, "mode",
                               bo_pbjson_enum_name(&bo__maintenance_mode__descriptor, mode)));
        }
    } else {
        Bo__HostAttributes **hs = NULL;
        size_t n = 0;
        int rc = bo_store_list_hosts(s->store, &hs, &n, err);
        if (rc != BO_OK) {
            json_decref(arr);
            return rc;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *o = bo_pbjson_encode(&hs[i]->base, 0);
            json_array_append_new(arr, o);
        }
        bo_store_free_list(hs, n);
    }
    *out = json_pack("{s:o}", "hosts", arr);
    return BO_OK;
}

static int read_jobs(struct bo_sched *s, const json_t *args, json_t **out, struct bo_err *err)
{
    const char *role = json_string_value(json_object_get(args, "role"));
    struct bo_job_summary_list l = {0};
    int rc = bo_store_job_summaries(s->store, role, &l, err);
    if (rc != BO_OK) {
        return rc;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n && rc == BO_OK; i++) {
        if (l.jobs[i].is_cron) {
            Bo__JobConfiguration *jc = NULL;
            if (bo_store_get_cron_job(s->store, l.jobs[i].key, &jc, err) == BO_OK) {
                json_array_append_new(arr, bo_pbjson_encode(&jc->base, 0));
                bo__job_configuration__free_unpacked(jc, NULL);
            }
            continue;
        }
        struct bo_config_group_list g = {0};
        rc = bo_store_config_groups(s->store, l.jobs[i].key, &g, err);
        if (rc == BO_OK && g.n > 0) {
            Bo__JobConfiguration jc = BO__JOB_CONFIGURATION__INIT;
            jc.key = l.jobs[i].key;
            jc.task_config = g.groups[0].config;
            jc.instance_count = l.jobs[i].instance_count;
            json_array_append_new(arr, bo_pbjson_encode(&jc.base, 0));
        }
        bo_config_group_list_release(&g);
    }
    bo_job_summary_list_release(&l);
    if (rc != BO_OK) {
        json_decref(arr);
        return rc;
    }
    *out = json_pack("{s:o}", "configs", arr);
    return BO_OK;
}

static int read_cron(struct bo_sched *s, json_t **out, struct bo_err *err)
{
    Bo__JobConfiguration **crons = NULL;
    size_t n = 0;
    int rc = bo_store_list_cron_jobs(s->store, &crons, &n, err);
    if (rc != BO_OK) {
        return rc;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = bo_pbjson_encode(&crons[i]->base, 0);
        char key[512];
        job_key_str(crons[i]->key, key, sizeof(key));
        struct sched_cron *c = NULL;
        HASH_FIND_STR(s->crons, key, c);
        if (c != NULL && c->next_ms > 0) {
            json_object_set_new(o, "next_cron_run_ms", json_integer(c->next_ms));
        }
        json_array_append_new(arr, o);
    }
    bo_store_free_list(crons, n);
    *out = json_pack("{s:o}", "cron_jobs", arr);
    return BO_OK;
}

/* Aurora's populateJobConfig: the job as the scheduler would store it, or
 * why it would refuse it. */
static int read_populate(struct bo_sched *s, const json_t *args, json_t **out, struct bo_err *err)
{
    Bo__JobConfiguration *jc;
    bool cron = args != NULL && json_is_string(json_object_get(args, "cron_schedule")) &&
                json_string_length(json_object_get(args, "cron_schedule")) > 0;
    int rc = decode_job(s, args, cron, &jc, err);
    if (rc != BO_OK) {
        return rc;
    }
    *out = bo_pbjson_encode(&jc->base, 0);
    bo__job_configuration__free_unpacked(jc, NULL);
    return *out != NULL ? BO_OK : bo_errf(err, BO_ENOMEM, "out of memory");
}

int sched_read(struct bo_sched *s, const char *what, const json_t *args, json_t **out,
               struct bo_err *err)
{
    if (strcmp(what, "populate") == 0) {
        return read_populate(s, args, out, err);
    }
    if (strcmp(what, "tasks") == 0) {
        return read_tasks(s, args, false, out, err);
    }
    if (strcmp(what, "pending") == 0) {
        return read_pending(s, args, out, err);
    }
    if (strcmp(what, "job_summaries") == 0) {
        return read_job_summaries(s, args, out, err);
    }
    if (strcmp(what, "roles") == 0) {
        return read_roles(s, out, err);
    }
    if (strcmp(what, "config_summary") == 0) {
        return read_config_summary(s, args, out, err);
    }
    if (strcmp(what, "quota") == 0) {
        return read_quota(s, args, out, err);
    }
    if (strcmp(what, "hosts") == 0) {
        return read_hosts(s, args, out, err);
    }
    if (strcmp(what, "jobs") == 0) {
        return read_jobs(s, args, out, err);
    }
    if (strcmp(what, "cron") == 0) {
        return read_cron(s, out, err);
    }
    return bo_errf(err, BO_ENOTFOUND, "unknown read '%s'", what);
}

int bo_sched_read_text(struct bo_sched *s, const char *what, const json_t *args, struct bo_buf *out,
                       struct bo_err *err)
{
    if (strcmp(what, "tasks") == 0) {
        return read_tasks_text(s, args, out, err);
    }
    if (strcmp(what, "job_summaries") == 0) {
        return read_job_summaries_text(s, args, out, err);
    }
    json_t *j = NULL;
    int rc = sched_read(s, what, args, &j, err);
    if (rc != BO_OK) {
        return rc;
    }
    size_t saved = out->len;
    if (j == NULL || json_dump_callback(j, dump_to_buf, out, JSON_COMPACT) != 0) {
        out->len = saved;
        rc = bo_errf(err, BO_ENOMEM, "out of memory");
    }
    json_decref(j);
    return rc;
}
