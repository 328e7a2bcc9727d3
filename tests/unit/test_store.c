/*
 * test_store.c - the SQLite store: every op applied and read back, config
 * deduplication and collection, all-or-nothing transactions, queries and
 * summaries, derived job update state, replica determinism, export/restore
 * round trips and garbage log entries. Real database files in a mkdtemp
 * directory, removed at the end.
 *
 * BO_STORE_BENCH=N (environment) also times export and restore of N tasks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/mem.h"
#include "common/pbwire.h"
#include <sqlite3.h>

#include "storage.pb-c.h"
#include "storage/canon.h"
#include "storage/snapshot.h"
#include "storage/store.h"

/* ---------------------------------------------------------- fixtures ---- */

/* Fixtures are built with bo_malloc and freed through this allocator. */
static void *t_alloc(void *d, size_t n)
{
    (void)d;
    return bo_malloc(n);
}

static void t_free(void *d, void *p)
{
    (void)d;
    bo_free(p);
}

static ProtobufCAllocator test_allocator = {t_alloc, t_free, NULL};

static void free_msg(void *m)
{
    protobuf_c_message_free_unpacked(m, &test_allocator);
}

static char dir[256];

static void path_in_dir(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_store_XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                char p[512];
                path_in_dir(p, sizeof(p), e->d_name);
                unlink(p);
            }
        }
        closedir(d);
    }
    return rmdir(dir);
}

static struct bo_store *open_store(const char *name)
{
    char p[512];
    path_in_dir(p, sizeof(p), name);
    struct bo_store *st = NULL;
    struct bo_err err = BO_ERR_INIT;
    int rc = bo_store_open(p, true, &st, &err);
    if (rc != BO_OK) {
        fail_msg("open: %s", bo_err_msg(&err, rc));
    }
    return st;
}

static Bo__JobKey *mk_key(const char *role, const char *env, const char *name)
{
    Bo__JobKey *k = bo_calloc(1, sizeof(*k));
    bo__job_key__init(k);
    k->role = bo_strdup(role);
    k->environment = bo_strdup(env);
    k->name = bo_strdup(name);
    return k;
}

static Bo__Resource *mk_resource(int which, double v)
{
    Bo__Resource *r = bo_calloc(1, sizeof(*r));
    bo__resource__init(r);
    if (which == 0) {
        r->kind_case = BO__RESOURCE__KIND_NUM_CPUS;
        r->num_cpus = v;
    } else {
        r->kind_case = BO__RESOURCE__KIND_RAM_MB;
        r->ram_mb = (int64_t)v;
    }
    return r;
}

static Bo__Constraint *mk_constraint(const char *name, const char *value)
{
    Bo__Constraint *c = bo_calloc(1, sizeof(*c));
    bo__constraint__init(c);
    c->name = bo_strdup(name);
    c->kind_case = BO__CONSTRAINT__KIND_VALUE;
    c->value = bo_calloc(1, sizeof(*c->value));
    bo__value_constraint__init(c->value);
    c->value->n_values = 1;
    c->value->values = bo_calloc(1, sizeof(char *));
    c->value->values[0] = bo_strdup(value);
    return c;
}

/* A config of job role/env/name; `variant` changes its content, `reversed`
 * only the order of its set-like fields. */
static Bo__TaskConfig *mk_config(const char *role, const char *env, const char *name, int variant,
                                 bool reversed)
{
    Bo__TaskConfig *c = bo_calloc(1, sizeof(*c));
    bo__task_config__init(c);
    c->job = mk_key(role, env, name);
    c->owner_user = bo_strdup(role);
    c->is_service = true;
    c->tier = bo_strdup("preferred");
    c->n_resources = 2;
    c->resources = bo_calloc(2, sizeof(*c->resources));
    c->resources[reversed ? 1 : 0] = mk_resource(0, 0.5 + variant);
    c->resources[reversed ? 0 : 1] = mk_resource(1, 128.0 * (variant + 1));
    c->n_constraints = 2;
    c->constraints = bo_calloc(2, sizeof(*c->constraints));
    c->constraints[reversed ? 1 : 0] = mk_constraint("host", "limit");
    c->constraints[reversed ? 0 : 1] = mk_constraint("rack", "r1");
    return c;
}

static Bo__ScheduledTask *mk_task(const char *id, Bo__TaskConfig *cfg, int instance,
                                  Bo__ScheduleStatus status, const char *host)
{
    Bo__ScheduledTask *t = bo_calloc(1, sizeof(*t));
    bo__scheduled_task__init(t);
    t->assigned_task = bo_calloc(1, sizeof(*t->assigned_task));
    bo__assigned_task__init(t->assigned_task);
    t->assigned_task->task_id = bo_strdup(id);
    t->assigned_task->task = cfg;
    t->assigned_task->instance_id = instance;
    t->assigned_task->slave_host = bo_strdup(host != NULL ? host : "");
    t->assigned_task->slave_id = bo_strdup(host != NULL ? host : "");
    t->status = status;
    t->n_task_events = 1;
    t->task_events = bo_calloc(1, sizeof(*t->task_events));
    t->task_events[0] = bo_calloc(1, sizeof(Bo__TaskEvent));
    bo__task_event__init(t->task_events[0]);
    t->task_events[0]->timestamp_ms = 1000 + instance;
    t->task_events[0]->status = status;
    t->task_events[0]->message = bo_strdup("created");
    t->task_events[0]->scheduler = bo_strdup("sched");
    return t;
}

/* A transaction built op by op; freed with txn_free. */
static Bo__Transaction *txn_new(void)
{
    Bo__Transaction *t = bo_calloc(1, sizeof(*t));
    bo__transaction__init(t);
    t->schema_version = BO_SCHEMA_VERSION;
    return t;
}

static Bo__Op *txn_op(Bo__Transaction *t, Bo__Op__OpCase c)
{
    t->ops = bo_reallocarray(t->ops, t->n_ops + 1, sizeof(*t->ops));
    Bo__Op *op = bo_calloc(1, sizeof(*op));
    bo__op__init(op);
    op->op_case = c;
    t->ops[t->n_ops++] = op;
    return op;
}

static void txn_save_tasks(Bo__Transaction *t, Bo__ScheduledTask **tasks, size_t n)
{
    Bo__Op *op = txn_op(t, BO__OP__OP_SAVE_TASKS);
    op->save_tasks = bo_calloc(1, sizeof(*op->save_tasks));
    bo__save_tasks__init(op->save_tasks);
    op->save_tasks->tasks = bo_calloc(n, sizeof(*tasks));
    memcpy(op->save_tasks->tasks, tasks, n * sizeof(*tasks));
    op->save_tasks->n_tasks = n;
}

static void txn_save_task(Bo__Transaction *t, Bo__ScheduledTask *task)
{
    txn_save_tasks(t, &task, 1);
}

static void txn_remove_tasks(Bo__Transaction *t, const char *const *ids, size_t n)
{
    Bo__Op *op = txn_op(t, BO__OP__OP_REMOVE_TASKS);
    op->remove_tasks = bo_calloc(1, sizeof(*op->remove_tasks));
    bo__remove_tasks__init(op->remove_tasks);
    op->remove_tasks->task_ids = bo_calloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        op->remove_tasks->task_ids[i] = bo_strdup(ids[i]);
    }
    op->remove_tasks->n_task_ids = n;
}

static void txn_save_cron(Bo__Transaction *t, const char *role, const char *name, int variant,
                          int instances)
{
    Bo__Op *op = txn_op(t, BO__OP__OP_SAVE_CRON_JOB);
    op->save_cron_job = bo_calloc(1, sizeof(*op->save_cron_job));
    bo__save_cron_job__init(op->save_cron_job);
    Bo__JobConfiguration *jc = bo_calloc(1, sizeof(*jc));
    bo__job_configuration__init(jc);
    jc->key = mk_key(role, "prod", name);
    jc->owner_user = bo_strdup(role);
    jc->cron_schedule = bo_strdup("*/5 * * * *");
    jc->task_config = mk_config(role, "prod", name, variant, false);
    jc->instance_count = instances;
    op->save_cron_job->job_config = jc;
}

static void txn_remove_cron(Bo__Transaction *t, const char *role, const char *name)
{
    Bo__Op *op = txn_op(t, BO__OP__OP_REMOVE_CRON_JOB);
    op->remove_cron_job = bo_calloc(1, sizeof(*op->remove_cron_job));
    bo__remove_cron_job__init(op->remove_cron_job);
    op->remove_cron_job->job_key = mk_key(role, "prod", name);
}

static void txn_save_quota(Bo__Transaction *t, const char *role, int64_t ram)
{
    Bo__Op *op = txn_op(t, BO__OP__OP_SAVE_QUOTA);
    op->save_quota = bo_calloc(1, sizeof(*op->save_quota));
    bo__save_quota__init(op->save_quota);
    op->save_quota->role = bo_strdup(role);
    op->save_quota->quota = bo_calloc(1, sizeof(Bo__ResourceAggregate));
    bo__resource_aggregate__init(op->save_quota->quota);
    op->save_quota->quota->n_resources = 1;
    op->save_quota->quota->resources = bo_calloc(1, sizeof(Bo__Resource *));
    op->save_quota->quota->resources[0] = mk_resource(1, (double)ram);
}

static void txn_remove_quota(Bo__Transaction *t, const char *role)
{
    Bo__Op *op = txn_op(t, BO__OP__OP_REMOVE_QUOTA);
    op->remove_quota = bo_calloc(1, sizeof(*op->remove_quota));
    bo__remove_quota__init(op->remove_quota);
    op->remove_quota->role = bo_strdup(role);
}

static void txn_save_host(Bo__Transaction *t, const char *host, Bo__MaintenanceMode mode)
{
    Bo__Op *op = txn_op(t, BO__OP__OP_SAVE_HOST_ATTRIBUTES);
    op->save_host_attributes = bo_calloc(1, sizeof(*op->save_host_attributes));
    bo__save_host_attributes__init(op->save_host_attributes);
    Bo__HostAttributes *h = bo_calloc(1, sizeof(*h));
    bo__host_attributes__init(h);
    h->host = bo_strdup(host);
    h->slave_id = bo_strdup(host);
    h->mode = mode;
    /* Out of order on purpose: reads come back sorted. */
    h->n_attributes = 2;
    h->attributes = bo_calloc(2, sizeof(*h->attributes));
    const char *names[] = {"zone", "rack"};
    for (int i = 0; i < 2; i++) {
        Bo__Attribute *a = bo_calloc(1, sizeof(*a));
        bo__attribute__init(a);
        a->name = bo_strdup(names[i]);
        a->n_values = 1;
        a->values = bo_calloc(1, sizeof(char *));
        a->values[0] = bo_strdup("v");
        h->attributes[i] = a;
    }
    op->save_host_attributes->host_attributes = h;
}

static void txn_save_maintenance(Bo__Transaction *t, const char *host, int64_t timeout)
{
    Bo__Op *op = txn_op(t, BO__OP__OP_SAVE_HOST_MAINTENANCE_REQUEST);
    op->save_host_maintenance_request = bo_calloc(1, sizeof(*op->save_host_maintenance_request));
    bo__save_host_maintenance_request__init(op->save_host_maintenance_request);
    Bo__HostMaintenanceRequest *r = bo_calloc(1, sizeof(*r));
    bo__host_maintenance_request__init(r);
    r->host = bo_strdup(host);
    r->timeout_secs = timeout;
    op->save_host_maintenance_request->request = r;
}

static void txn_remove_maintenance(Bo__Transaction *t, const char *host)
{
    Bo__Op *op = txn_op(t, BO__OP__OP_REMOVE_HOST_MAINTENANCE_REQUEST);
    op->remove_host_maintenance_request =
        bo_calloc(1, sizeof(*op->remove_host_maintenance_request));
    bo__remove_host_maintenance_request__init(op->remove_host_maintenance_request);
    op->remove_host_maintenance_request->host = bo_strdup(host);
}

static void txn_save_metadata(Bo__Transaction *t, const char *cluster)
{
    Bo__Op *op = txn_op(t, BO__OP__OP_SAVE_SCHEDULER_METADATA);
    op->save_scheduler_metadata = bo_calloc(1, sizeof(*op->save_scheduler_metadata));
    bo__save_scheduler_metadata__init(op->save_scheduler_metadata);
    Bo__SchedulerMetadata *m = bo_calloc(1, sizeof(*m));
    bo__scheduler_metadata__init(m);
    m->cluster_id = bo_strdup(cluster);
    op->save_scheduler_metadata->metadata = m;
}

static Bo__JobUpdateKey *mk_update_key(const char *name, const char *id)
{
    Bo__JobUpdateKey *k = bo_calloc(1, sizeof(*k));
    bo__job_update_key__init(k);
    k->job = mk_key("www", "prod", name);
    k->id = bo_strdup(id);
    return k;
}

static Bo__InstanceTaskConfig *mk_itc(const char *name, int variant, int first, int last)
{
    Bo__InstanceTaskConfig *c = bo_calloc(1, sizeof(*c));
    bo__instance_task_config__init(c);
    c->task = mk_config("www", "prod", name, variant, false);
    c->n_instances = 1;
    c->instances = bo_calloc(1, sizeof(Bo__Range *));
    c->instances[0] = bo_calloc(1, sizeof(Bo__Range));
    bo__range__init(c->instances[0]);
    c->instances[0]->first = first;
    c->instances[0]->last = last;
    return c;
}

static void txn_save_update(Bo__Transaction *t, const char *name, const char *id,
                            int desired_variant, int initial_variant)
{
    Bo__Op *op = txn_op(t, BO__OP__OP_SAVE_JOB_UPDATE);
    op->save_job_update = bo_calloc(1, sizeof(*op->save_job_update));
    bo__save_job_update__init(op->save_job_update);
    Bo__JobUpdate *u = bo_calloc(1, sizeof(*u));
    bo__job_update__init(u);
    u->summary = bo_calloc(1, sizeof(*u->summary));
    bo__job_update_summary__init(u->summary);
    u->summary->key = mk_update_key(name, id);
    u->summary->user = bo_strdup("alice");
    /* A state that must not be trusted. */
    u->summary->state = bo_calloc(1, sizeof(Bo__JobUpdateState));
    bo__job_update_state__init(u->summary->state);
    u->summary->state->status = BO__JOB_UPDATE_STATUS__UPDATE_FAILED;
    u->summary->state->created_timestamp_ms = 42;
    u->instructions = bo_calloc(1, sizeof(*u->instructions));
    bo__job_update_instructions__init(u->instructions);
    u->instructions->desired_state = mk_itc(name, desired_variant, 0, 9);
    u->instructions->n_initial_state = 1;
    u->instructions->initial_state = bo_calloc(1, sizeof(Bo__InstanceTaskConfig *));
    u->instructions->initial_state[0] = mk_itc(name, initial_variant, 0, 4);
    op->save_job_update->job_update = u;
}

static void txn_update_event(Bo__Transaction *t, const char *name, const char *id,
                             Bo__JobUpdateStatus status, int64_t ts)
{
    Bo__Op *op = txn_op(t, BO__OP__OP_SAVE_JOB_UPDATE_EVENT);
    op->save_job_update_event = bo_calloc(1, sizeof(*op->save_job_update_event));
    bo__save_job_update_event__init(op->save_job_update_event);
    op->save_job_update_event->key = mk_update_key(name, id);
    Bo__JobUpdateEvent *e = bo_calloc(1, sizeof(*e));
    bo__job_update_event__init(e);
    e->status = status;
    e->timestamp_ms = ts;
    e->user = bo_strdup("alice");
    op->save_job_update_event->event = e;
}

static void txn_instance_event(Bo__Transaction *t, const char *name, const char *id, int instance,
                               int64_t ts)
{
    Bo__Op *op = txn_op(t, BO__OP__OP_SAVE_JOB_INSTANCE_UPDATE_EVENT);
    op->save_job_instance_update_event = bo_calloc(1, sizeof(*op->save_job_instance_update_event));
    bo__save_job_instance_update_event__init(op->save_job_instance_update_event);
    op->save_job_instance_update_event->key = mk_update_key(name, id);
    Bo__JobInstanceUpdateEvent *e = bo_calloc(1, sizeof(*e));
    bo__job_instance_update_event__init(e);
    e->instance_id = instance;
    e->timestamp_ms = ts;
    e->action = BO__JOB_UPDATE_ACTION__ACTION_INSTANCE_UPDATED;
    op->save_job_instance_update_event->event = e;
}

static void txn_remove_update(Bo__Transaction *t, const char *name, const char *id)
{
    Bo__Op *op = txn_op(t, BO__OP__OP_REMOVE_JOB_UPDATES);
    op->remove_job_updates = bo_calloc(1, sizeof(*op->remove_job_updates));
    bo__remove_job_updates__init(op->remove_job_updates);
    op->remove_job_updates->n_keys = 1;
    op->remove_job_updates->keys = bo_calloc(1, sizeof(Bo__JobUpdateKey *));
    op->remove_job_updates->keys[0] = mk_update_key(name, id);
}

/* Apply and free; fails the test unless the result is `want`. */
static void apply_expect(struct bo_store *st, Bo__Transaction *t, uint64_t index, int want,
                         struct bo_err *err)
{
    int rc = bo_store_apply(st, t, index, err);
    if (rc != want) {
        fail_msg("apply %llu: want %s, got %s: %s", (unsigned long long)index, bo_errname(want),
                 bo_errname(rc), bo_err_msg(err, rc));
    }
    free_msg(t);
}

static void apply_ok(struct bo_store *st, Bo__Transaction *t, uint64_t index)
{
    struct bo_err err = BO_ERR_INIT;
    apply_expect(st, t, index, BO_OK, &err);
}

static uint64_t digest_of(struct bo_store *st)
{
    uint64_t d = 0;
    struct bo_err err = BO_ERR_INIT;
    int rc = bo_store_digest(st, &d, &err);
    if (rc != BO_OK) {
        fail_msg("digest: %s", bo_err_msg(&err, rc));
    }
    return d;
}

static struct bo_store_counts counts_of(struct bo_store *st)
{
    struct bo_store_counts c;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_store_counts(st, &c, &err), BO_OK);
    return c;
}

struct each_ctx {
    struct bo_task_list list; /* what bo_store_query_tasks gave */
    size_t seen;
    size_t stop_after; /* 0: never */
};

/* Each streamed task packs to the same bytes as the listed one. */
static int each_cmp(const Bo__ScheduledTask *t, void *data)
{
    struct each_ctx *ec = data;
    assert_true(ec->seen < ec->list.n);
    const Bo__ScheduledTask *want = ec->list.tasks[ec->seen];
    size_t a = protobuf_c_message_get_packed_size(&t->base);
    size_t b = protobuf_c_message_get_packed_size(&want->base);
    assert_int_equal(a, b);
    uint8_t *pa = bo_malloc(a + 1), *pb = bo_malloc(b + 1);
    protobuf_c_message_pack(&t->base, pa);
    protobuf_c_message_pack(&want->base, pb);
    assert_memory_equal(pa, pb, a);
    bo_free(pa);
    bo_free(pb);
    ec->seen++;
    return ec->stop_after && ec->seen == ec->stop_after ? BO_ECANCELED : BO_OK;
}

static void query(struct bo_store *st, const struct bo_task_query *q, struct bo_task_list *l)
{
    struct bo_err err = BO_ERR_INIT;
    int rc = bo_store_query_tasks(st, q, true, l, &err);
    if (rc != BO_OK) {
        fail_msg("query: %s", bo_err_msg(&err, rc));
    }
}

static const char *tid(const struct bo_task_list *l, size_t i)
{
    return l->tasks[i]->assigned_task->task_id;
}

static uint64_t count_q(struct bo_store *st, const struct bo_task_query *q)
{
    uint64_t n = 0;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_store_count_tasks(st, q, &n, &err), BO_OK);
    return n;
}

/* A mixed workload: two roles, three jobs, hosts, statuses, cron, quota,
 * hosts, maintenance, an update with events. Indexes from `base`. */
static uint64_t load_workload(struct bo_store *st, uint64_t base)
{
    uint64_t index = base;
    Bo__Transaction *t = txn_new();
    Bo__ScheduledTask *tasks[10];
    for (int i = 0; i < 6; i++) {
        char id[32];
        snprintf(id, sizeof(id), "web-%d", i);
        tasks[i] = mk_task(id, mk_config("www", "prod", "web", i < 4 ? 0 : 1, i % 2 == 0), i,
                           i < 4 ? BO__SCHEDULE_STATUS__RUNNING : BO__SCHEDULE_STATUS__PENDING,
                           i < 4 ? (i % 2 ? "host-b" : "host-a") : NULL);
    }
    txn_save_tasks(t, tasks, 6);
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof(id), "db-%d", i);
        tasks[i] =
            mk_task(id, mk_config("dba", "devel", "db", 2, false), i,
                    i == 2 ? BO__SCHEDULE_STATUS__FAILED : BO__SCHEDULE_STATUS__RUNNING, "host-c");
    }
    txn_save_tasks(t, tasks, 3);
    apply_ok(st, t, ++index);

    t = txn_new();
    txn_save_cron(t, "www", "nightly", 7, 3);
    txn_save_quota(t, "www", 4096);
    txn_save_quota(t, "dba", 1024);
    txn_save_host(t, "host-a", BO__MAINTENANCE_MODE__MAINTENANCE_NONE);
    txn_save_host(t, "host-b", BO__MAINTENANCE_MODE__MAINTENANCE_DRAINING);
    txn_save_maintenance(t, "host-b", 60);
    txn_save_metadata(t, "cluster-1");
    txn_save_update(t, "web", "u1", 5, 0);
    txn_update_event(t, "web", "u1", BO__JOB_UPDATE_STATUS__UPDATE_ROLLING_FORWARD, 100);
    apply_ok(st, t, ++index);

    t = txn_new();
    txn_instance_event(t, "web", "u1", 0, 150);
    txn_update_event(t, "web", "u1", BO__JOB_UPDATE_STATUS__UPDATE_ROLL_FORWARD_PAUSED, 200);
    tasks[0] = mk_task("web-1", mk_config("www", "prod", "web", 0, false), 1,
                       BO__SCHEDULE_STATUS__KILLED, "host-b");
    txn_save_task(t, tasks[0]);
    const char *gone[] = {"db-2", "no-such-task"};
    txn_remove_tasks(t, gone, 2);
    apply_ok(st, t, ++index);
    return index;
}

/* ------------------------------------------------------------- tests ---- */

static void test_open_empty(void **state)
{
    (void)state;
    struct bo_store *st = open_store("empty.db");
    assert_int_equal(bo_store_applied_index(st), 0);
    struct bo_store_counts c = counts_of(st);
    assert_int_equal(c.tasks + c.jobs + c.configs, 0);
    bo_store_close(st);

    /* Reopening without `fresh` keeps the state. */
    st = open_store("keep.db");
    load_workload(st, 0);
    uint64_t d = digest_of(st);
    bo_store_close(st);
    char p[512];
    path_in_dir(p, sizeof(p), "keep.db");
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_store_open(p, false, &st, &err), BO_OK);
    assert_int_equal(bo_store_applied_index(st), 3);
    assert_true(digest_of(st) == d);
    bo_store_close(st);
}

static void test_tasks_round_trip(void **state)
{
    (void)state;
    struct bo_store *st = open_store("tasks.db");
    load_workload(st, 0);
    assert_int_equal(bo_store_applied_index(st), 3);

    struct bo_task_query q = {0};
    struct bo_task_list l;
    query(st, &q, &l);
    /* db-2 removed; ordered by role/env/name, instance, id. */
    assert_int_equal(l.n, 8);
    const char *want[] = {"db-0", "db-1", "web-0", "web-1", "web-2", "web-3", "web-4", "web-5"};
    for (size_t i = 0; i < 8; i++) {
        assert_string_equal(tid(&l, i), want[i]);
    }
    /* The replaced web-1 came back as saved, with its config and events. */
    const Bo__ScheduledTask *t = l.tasks[3];
    assert_int_equal(t->status, BO__SCHEDULE_STATUS__KILLED);
    assert_string_equal(t->assigned_task->slave_host, "host-b");
    assert_int_equal(t->n_task_events, 1);
    assert_string_equal(t->task_events[0]->message, "created");
    assert_non_null(t->assigned_task->task);
    assert_string_equal(t->assigned_task->task->job->name, "web");
    assert_int_equal(t->assigned_task->task->n_resources, 2);
    /* web-0 and web-1 share a config struct (interned). */
    assert_ptr_equal(l.tasks[2]->assigned_task->task, l.tasks[3]->assigned_task->task);
    bo_task_list_release(&l);

    /* Without configs. */
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_store_query_tasks(st, &q, false, &l, &err), BO_OK);
    assert_int_equal(l.n, 8);
    assert_null(l.tasks[0]->assigned_task->task);
    bo_task_list_release(&l);

    /* Streamed (arena-backed) walks see the same tasks, byte for byte, with
     * and without configs, and a callback can stop the walk. */
    for (int with = 0; with < 2; with++) {
        struct each_ctx ec = {0};
        assert_int_equal(bo_store_query_tasks(st, &q, with, &ec.list, &err), BO_OK);
        assert_int_equal(bo_store_each_task(st, &q, with, each_cmp, &ec, &err), BO_OK);
        assert_int_equal(ec.seen, 8);
        bo_task_list_release(&ec.list);
    }
    struct each_ctx stop = {.stop_after = 3};
    assert_int_equal(bo_store_query_tasks(st, &q, true, &stop.list, &err), BO_OK);
    assert_int_equal(bo_store_each_task(st, &q, true, each_cmp, &stop, &err), BO_ECANCELED);
    assert_int_equal(stop.seen, 3);
    bo_task_list_release(&stop.list);

    struct bo_store_counts c = counts_of(st);
    assert_int_equal(c.tasks, 8);
    /* web variant 0, web variant 1, db, cron nightly, update desired (5). */
    assert_int_equal(c.configs, 5);
    assert_int_equal(c.jobs, 3);
    assert_int_equal(c.cron_jobs, 1);
    assert_int_equal(c.quotas, 2);
    assert_int_equal(c.hosts, 2);
    assert_int_equal(c.maintenance, 1);
    assert_int_equal(c.job_updates, 1);
    bo_store_close(st);
}

static void test_config_dedup(void **state)
{
    (void)state;
    struct bo_store *st = open_store("dedup.db");
    enum { N = 1000 };
    Bo__Transaction *t = txn_new();
    Bo__ScheduledTask **tasks = bo_calloc(N, sizeof(*tasks));
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof(id), "t-%04d", i);
        /* 3 distinct configs, each in two field orders. */
        tasks[i] = mk_task(id, mk_config("www", "prod", "big", i % 3, (i / 3) % 2 == 1), i,
                           BO__SCHEDULE_STATUS__RUNNING, "h");
    }
    txn_save_tasks(t, tasks, N);
    bo_free(tasks);
    apply_ok(st, t, 1);
    struct bo_store_counts c = counts_of(st);
    assert_int_equal(c.tasks, N);
    assert_int_equal(c.configs, 3);
    assert_int_equal(c.jobs, 1);

    /* The same config in another transaction, reordered, is found again. */
    t = txn_new();
    txn_save_task(t, mk_task("t-extra", mk_config("www", "prod", "big", 1, true), N,
                             BO__SCHEDULE_STATUS__RUNNING, "h"));
    apply_ok(st, t, 2);
    assert_int_equal(counts_of(st).configs, 3);

    /* Equal configs read back as equal bytes. */
    struct bo_task_query q = {0};
    const char *ids[] = {"t-0001", "t-0004"};
    q.task_ids = ids;
    q.n_task_ids = 2;
    struct bo_task_list l;
    query(st, &q, &l);
    assert_int_equal(l.n, 2);
    assert_ptr_equal(l.tasks[0]->assigned_task->task, l.tasks[1]->assigned_task->task);
    bo_task_list_release(&l);
    bo_store_close(st);
}

/* An allocator that remembers what it gave, for functions that leave
 * freeing to an arena. */
struct tracked {
    void *p[64];
    size_t n;
};

static void *tracked_alloc(void *d, size_t n)
{
    struct tracked *t = d;
    assert_true(t->n < 64);
    return t->p[t->n++] = bo_malloc(n);
}

static void tracked_free_all(struct tracked *t)
{
    for (size_t i = 0; i < t->n; i++) {
        bo_free(t->p[i]);
    }
    t->n = 0;
}

/* A config that arrives in canonical order is interned from its own
 * encoding, one that does not from a sorted copy: both must land on the
 * same row, whichever comes first, with the canonical bytes. */
static void test_config_canonical_fast_path(void **state)
{
    (void)state;
    Bo__TaskConfig *sorted_cfg = mk_config("www", "prod", "c", 0, false);
    Bo__TaskConfig *reversed_cfg = mk_config("www", "prod", "c", 0, true);
    assert_true(bo_canon_task_config_is_canonical(sorted_cfg));
    assert_false(bo_canon_task_config_is_canonical(reversed_cfg));
    struct bo_buf canon = BO_BUF_INIT;
    assert_int_equal(bo_canon_encode_config(reversed_cfg, &canon), BO_OK);
    assert_true(bo_canon_task_config_is_canonical(reversed_cfg));
    free_msg(reversed_cfg);
    free_msg(sorted_cfg);

    /* Encoding from a shallow copy gives the bytes sorting in place gives,
     * values of a constraint and metadata out of order included, and
     * leaves the config as it was. */
    Bo__TaskConfig *c = mk_config("www", "prod", "c", 1, true);
    Bo__Constraint *k = c->constraints[0]->value != NULL ? c->constraints[0] : c->constraints[1];
    k->value->values = bo_reallocarray(k->value->values, 3, sizeof(char *));
    k->value->values[1] = bo_strdup("r0");
    k->value->values[2] = bo_strdup("a9");
    k->value->n_values = 3;
    c->n_metadata = 2;
    c->metadata = bo_calloc(2, sizeof(*c->metadata));
    for (size_t i = 0; i < 2; i++) {
        c->metadata[i] = bo_calloc(1, sizeof(Bo__Metadata));
        bo__metadata__init(c->metadata[i]);
        c->metadata[i]->key = bo_strdup(i == 0 ? "team" : "build");
        c->metadata[i]->value = bo_strdup("x");
    }
    struct bo_buf before = BO_BUF_INIT, after = BO_BUF_INIT, viacopy = BO_BUF_INIT,
                  inplace = BO_BUF_INIT;
    size_t n = protobuf_c_message_get_packed_size(&c->base);
    assert_int_equal(bo_buf_reserve(&before, n), BO_OK);
    before.len = protobuf_c_message_pack(&c->base, before.data);
    struct tracked tr = {0};
    ProtobufCAllocator track = {tracked_alloc, t_free, &tr};
    assert_int_equal(bo_canon_encode_config_const(c, &track, &viacopy), BO_OK);
    assert_true(tr.n > 0);
    tracked_free_all(&tr);
    assert_int_equal(bo_buf_reserve(&after, n), BO_OK);
    after.len = protobuf_c_message_pack(&c->base, after.data);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.data, before.data, before.len);
    assert_int_equal(bo_canon_encode_config(c, &inplace), BO_OK);
    assert_int_equal(viacopy.len, inplace.len);
    assert_memory_equal(viacopy.data, inplace.data, inplace.len);
    assert_memory_not_equal(before.data, inplace.data, inplace.len);
    bo_buf_release(&before);
    bo_buf_release(&after);
    bo_buf_release(&viacopy);
    bo_buf_release(&inplace);
    free_msg(c);

    for (int reversed_first = 0; reversed_first < 2; reversed_first++) {
        struct bo_store *st = open_store(reversed_first ? "fast1.db" : "fast0.db");
        Bo__Transaction *t = txn_new();
        txn_save_task(t, mk_task("t-a", mk_config("www", "prod", "c", 0, reversed_first), 0,
                                 BO__SCHEDULE_STATUS__RUNNING, "h"));
        apply_ok(st, t, 1);
        t = txn_new();
        txn_save_task(t, mk_task("t-b", mk_config("www", "prod", "c", 0, !reversed_first), 1,
                                 BO__SCHEDULE_STATUS__RUNNING, "h"));
        apply_ok(st, t, 2);
        assert_int_equal(counts_of(st).configs, 1);
        struct bo_task_query q = {0};
        struct bo_task_list l;
        query(st, &q, &l);
        assert_int_equal(l.n, 2);
        assert_ptr_equal(l.tasks[0]->assigned_task->task, l.tasks[1]->assigned_task->task);
        struct bo_buf got = BO_BUF_INIT;
        size_t n = protobuf_c_message_get_packed_size(&l.tasks[0]->assigned_task->task->base);
        assert_int_equal(bo_buf_reserve(&got, n), BO_OK);
        got.len = protobuf_c_message_pack(&l.tasks[0]->assigned_task->task->base, got.data);
        assert_int_equal(got.len, canon.len);
        assert_memory_equal(got.data, canon.data, canon.len);
        bo_buf_release(&got);
        bo_task_list_release(&l);
        bo_store_close(st);
    }
    bo_buf_release(&canon);
}

/* How many frames the WAL holds: the wal-index header's mxFrame (a native
 * u32 at byte 16 of the -shm file). The file's size says less: the store
 * allocates it ahead of its frames (wbuf.h). */
static uint32_t wal_frames(const char *name)
{
    char p[512];
    path_in_dir(p, sizeof(p), name);
    strncat(p, "-shm", sizeof(p) - strlen(p) - 1);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    uint32_t mx = 0;
    assert_int_equal(fseek(f, 16, SEEK_SET), 0);
    assert_int_equal(fread(&mx, sizeof(mx), 1, f), 1);
    fclose(f);
    return mx;
}

/* Group commit with a checkpoint that runs while a group is open, as the
 * worker's does under steady writes: without bo_store_ckpt_finish the WAL
 * never starts over and grows by every group; with it, it stops growing. */
static void test_wal_restarts(void **state)
{
    (void)state;
    for (int finish = 0; finish < 2; finish++) {
        const char *name = finish ? "walf1.db" : "walf0.db";
        struct bo_store *st = open_store(name);
        bo_store_set_group_commit(st, true);
        struct bo_err err = BO_ERR_INIT;
        uint32_t after_warmup = 0;
        uint64_t index = 1;
        for (int round = 0; round < 40; round++) {
            for (int i = 0; i < 4; i++) {
                char id[32];
                snprintf(id, sizeof(id), "t-%d-%d", round, i);
                Bo__Transaction *t = txn_new();
                txn_save_task(t, mk_task(id, mk_config("www", "prod", "w", i, false), i,
                                         BO__SCHEDULE_STATUS__RUNNING, "h"));
                apply_ok(st, t, index++);
            }
            struct bo_store_ckpt *k;
            assert_int_equal(bo_store_ckpt_open(st, &k, &err), BO_OK);
            assert_int_equal(bo_store_ckpt_run(k, &err), BO_OK);
            bo_store_ckpt_close(k);
            assert_int_equal(bo_store_flush(st, &err), BO_OK);
            if (finish) {
                assert_int_equal(bo_store_ckpt_finish(st, &err), BO_OK);
            }
            /* The WAL's high-water mark: the most frames it held. */
            uint32_t frames = wal_frames(name);
            if (round <= 5) {
                after_warmup = frames > after_warmup ? frames : after_warmup;
            } else if (finish) {
                assert_true(frames <= after_warmup);
            }
        }
        if (!finish) {
            assert_true(wal_frames(name) > after_warmup + 34 * 4);
        }
        assert_int_equal(counts_of(st).tasks, 160);
        bo_store_close(st);
    }
}

/* bo_store_ckpt_behind says when more frames wait than a finish copies, so
 * the owner runs the next checkpoint at once: true after a big group, false
 * once a checkpoint has copied it, true again when a group lands while a
 * checkpoint runs and leaves more than the finish would copy. */
/* 4,000 tasks of ~1 KB in one group: ~1,000 frames, over 512. */
static void apply_big_group(struct bo_store *st, int round, uint64_t *index)
{
    for (int i = 0; i < 4000; i++) {
        char id[32];
        snprintf(id, sizeof(id), "b-%d-%d", round, i);
        Bo__ScheduledTask *task = mk_task(id, mk_config("www", "prod", "b", 0, false), i,
                                          BO__SCHEDULE_STATUS__RUNNING, "h");
        bo_free(task->task_events[0]->message);
        task->task_events[0]->message = bo_calloc(1001, 1);
        memset(task->task_events[0]->message, 'm', 1000);
        Bo__Transaction *t = txn_new();
        txn_save_task(t, task);
        apply_ok(st, t, (*index)++);
    }
}

static void test_ckpt_behind(void **state)
{
    (void)state;
    struct bo_store *st = open_store("behind.db");
    bo_store_set_group_commit(st, true);
    struct bo_err err = BO_ERR_INIT;
    uint64_t index = 1;
    assert_false(bo_store_ckpt_behind(st));
    for (int round = 0; round < 2; round++) {
        apply_big_group(st, round, &index);
        struct bo_store_ckpt *k;
        assert_int_equal(bo_store_ckpt_open(st, &k, &err), BO_OK);
        if (round == 1) {
            /* The group lands after the checkpoint ran: it is left over. */
            assert_int_equal(bo_store_ckpt_run(k, &err), BO_OK);
            bo_store_ckpt_close(k);
            assert_int_equal(bo_store_flush(st, &err), BO_OK);
            assert_true(bo_store_ckpt_behind(st));
            break;
        }
        assert_int_equal(bo_store_flush(st, &err), BO_OK);
        assert_true(bo_store_ckpt_behind(st));
        assert_int_equal(bo_store_ckpt_run(k, &err), BO_OK);
        bo_store_ckpt_close(k);
        assert_false(bo_store_ckpt_behind(st));
    }
    /* A view opened with frames left in the WAL holds the frames after its
     * start: a checkpoint stops there, and running the next at once would
     * copy nothing more. Once the view is gone the next one copies the
     * rest. */
    struct bo_store_ckpt *k;
    struct bo_store_view *v;
    assert_int_equal(bo_store_view_open(st, &v, &err), BO_OK);
    apply_big_group(st, 2, &index);
    assert_int_equal(bo_store_flush(st, &err), BO_OK);
    assert_true(bo_store_ckpt_behind(st));
    assert_int_equal(bo_store_ckpt_open(st, &k, &err), BO_OK);
    assert_int_equal(bo_store_ckpt_run(k, &err), BO_OK);
    bo_store_ckpt_close(k);
    assert_false(bo_store_ckpt_behind(st));
    bo_store_view_close(v);
    assert_int_equal(bo_store_ckpt_open(st, &k, &err), BO_OK);
    assert_int_equal(bo_store_ckpt_run(k, &err), BO_OK);
    bo_store_ckpt_close(k);
    assert_false(bo_store_ckpt_behind(st));
    bo_store_close(st);
}

/* With group commit the applied index is written by the flush: a view (which
 * reads it from the file) sees the last applied entry's, and an entry the
 * store rejected in the group does not move it. */
static void test_group_index(void **state)
{
    (void)state;
    struct bo_store *st = open_store("gidx.db");
    bo_store_set_group_commit(st, true);
    struct bo_err err = BO_ERR_INIT;
    for (uint64_t i = 1; i <= 3; i++) {
        char id[32];
        snprintf(id, sizeof(id), "t-%d", (int)i);
        Bo__Transaction *t = txn_new();
        txn_save_task(t, mk_task(id, mk_config("www", "prod", "g", 0, false), (int)i,
                                 BO__SCHEDULE_STATUS__RUNNING, "h"));
        apply_ok(st, t, i);
    }
    /* An event for an update nobody saved: rejected, index stays at 3. */
    static const uint8_t bad[] = {0x12, 0x06, 0x0a, 0x04, 0x4a, 0x02, 0x0a, 0x00};
    assert_int_not_equal(bo_store_apply_entry(st, bad, sizeof(bad), 4, &err), BO_OK);
    assert_int_equal(bo_store_applied_index(st), 3);
    struct bo_store_view *v;
    assert_int_equal(bo_store_view_open(st, &v, &err), BO_OK);
    assert_int_equal(bo_store_view_index(v), 3);
    bo_store_view_close(v);
    assert_false(bo_store_pending(st));
    bo_store_close(st);
}

static void test_config_collection(void **state)
{
    (void)state;
    struct bo_store *st = open_store("gc.db");
    Bo__Transaction *t = txn_new();
    Bo__ScheduledTask *tasks[2] = {
        mk_task("a", mk_config("www", "prod", "j", 0, false), 0, BO__SCHEDULE_STATUS__RUNNING, "h"),
        mk_task("b", mk_config("www", "prod", "j", 0, true), 1, BO__SCHEDULE_STATUS__RUNNING, "h")};
    txn_save_tasks(t, tasks, 2);
    txn_save_cron(t, "www", "j", 0, 2); /* same content as the tasks' config */
    apply_ok(st, t, 1);
    assert_int_equal(counts_of(st).configs, 1);

    const char *a[] = {"a"};
    t = txn_new();
    txn_remove_tasks(t, a, 1);
    apply_ok(st, t, 2);
    assert_int_equal(counts_of(st).configs, 1);

    /* A replace that changes the config releases the old one... */
    t = txn_new();
    txn_save_task(t, mk_task("b", mk_config("www", "prod", "j", 9, false), 1,
                             BO__SCHEDULE_STATUS__RUNNING, "h"));
    apply_ok(st, t, 3);
    assert_int_equal(counts_of(st).configs, 2); /* cron's + b's new */

    /* ...and the last reference takes the config and the job with it. */
    t = txn_new();
    txn_remove_cron(t, "www", "j");
    apply_ok(st, t, 4);
    assert_int_equal(counts_of(st).configs, 1);
    const char *b[] = {"b"};
    t = txn_new();
    txn_remove_tasks(t, b, 1);
    apply_ok(st, t, 5);
    struct bo_store_counts c = counts_of(st);
    assert_int_equal(c.configs, 0);
    assert_int_equal(c.jobs, 0);
    assert_int_equal(c.tasks, 0);

    /* Job updates hold references too. */
    t = txn_new();
    txn_save_update(t, "upd", "u", 1, 2);
    apply_ok(st, t, 6);
    assert_int_equal(counts_of(st).configs, 2);
    t = txn_new();
    txn_save_update(t, "upd", "u", 3, 3); /* re-save: both configs replaced by one */
    apply_ok(st, t, 7);
    assert_int_equal(counts_of(st).configs, 1);
    t = txn_new();
    txn_remove_update(t, "upd", "u");
    apply_ok(st, t, 8);
    c = counts_of(st);
    assert_int_equal(c.configs, 0);
    assert_int_equal(c.jobs, 0);
    assert_int_equal(c.job_updates, 0);
    bo_store_close(st);
}

static void test_rollback(void **state)
{
    (void)state;
    struct bo_store *st = open_store("rollback.db");
    uint64_t index = load_workload(st, 0);
    uint64_t before = digest_of(st);

    /* The third op refers to an update that does not exist. */
    Bo__Transaction *t = txn_new();
    txn_save_task(t, mk_task("new-task", mk_config("www", "prod", "new", 3, false), 0,
                             BO__SCHEDULE_STATUS__PENDING, NULL));
    txn_save_quota(t, "www", 1);
    txn_update_event(t, "web", "no-such-update", BO__JOB_UPDATE_STATUS__UPDATE_ABORTED, 5);
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_store_validate(st, t, &err), BO_EINVAL);
    assert_non_null(strstr(err.msg, "op 2 (save_job_update_event)"));
    memset(&err, 0, sizeof(err));
    apply_expect(st, t, index + 1, BO_EINVAL, &err);
    assert_non_null(strstr(err.msg, "op 2 (save_job_update_event)"));
    assert_non_null(strstr(err.msg, "not found"));
    assert_int_equal(bo_store_applied_index(st), index);
    assert_true(digest_of(st) == before);
    assert_int_equal(counts_of(st).tasks, 8);

    /* A structural error names op, task and field. */
    t = txn_new();
    txn_save_quota(t, "www", 1);
    Bo__ScheduledTask *tasks[2] = {mk_task("x", mk_config("www", "prod", "x", 0, false), 0,
                                           BO__SCHEDULE_STATUS__PENDING, NULL),
                                   mk_task("y", NULL, 1, BO__SCHEDULE_STATUS__PENDING, NULL)};
    txn_save_tasks(t, tasks, 2);
    memset(&err, 0, sizeof(err));
    apply_expect(st, t, index + 1, BO_EINVAL, &err);
    assert_string_equal(err.msg, "op 1 (save_tasks): task 1: missing assigned_task.task");

    /* Duplicate ids in one op, empty job key fields. */
    t = txn_new();
    tasks[0] = mk_task("dup", mk_config("www", "prod", "x", 0, false), 0,
                       BO__SCHEDULE_STATUS__PENDING, NULL);
    tasks[1] = mk_task("dup", mk_config("www", "prod", "x", 0, false), 1,
                       BO__SCHEDULE_STATUS__PENDING, NULL);
    txn_save_tasks(t, tasks, 2);
    memset(&err, 0, sizeof(err));
    apply_expect(st, t, index + 1, BO_EINVAL, &err);
    assert_non_null(strstr(err.msg, "'dup' appears twice"));
    t = txn_new();
    txn_save_task(t, mk_task("e", mk_config("www", "", "x", 0, false), 0,
                             BO__SCHEDULE_STATUS__PENDING, NULL));
    memset(&err, 0, sizeof(err));
    apply_expect(st, t, index + 1, BO_EINVAL, &err);
    assert_non_null(strstr(err.msg, "assigned_task.task.job: empty environment"));

    /* A valid transaction: validate agrees, the event may follow its update
     * in the same transaction. */
    t = txn_new();
    txn_save_update(t, "web", "u2", 1, 0);
    txn_update_event(t, "web", "u2", BO__JOB_UPDATE_STATUS__UPDATE_ROLLING_FORWARD, 5);
    assert_int_equal(bo_store_validate(st, t, &err), BO_OK);
    apply_ok(st, t, index + 1);
    assert_int_equal(bo_store_applied_index(st), index + 1);
    assert_true(digest_of(st) != before);
    bo_store_close(st);
}

/* Host ids are remembered between applies: one a rolled back entry added
 * must be forgotten, since the next new host gets its row id. */
static void test_host_cache_rollback(void **state)
{
    (void)state;
    for (int group = 0; group < 2; group++) {
        struct bo_store *st = open_store(group ? "hosts1.db" : "hosts0.db");
        bo_store_set_group_commit(st, group == 1);
        Bo__Transaction *t = txn_new();
        txn_save_task(t, mk_task("t-old", mk_config("www", "prod", "h", 0, false), 0,
                                 BO__SCHEDULE_STATUS__RUNNING, "h-old"));
        apply_ok(st, t, 1);
        t = txn_new();
        txn_save_task(t, mk_task("t-gone", mk_config("www", "prod", "h", 0, false), 1,
                                 BO__SCHEDULE_STATUS__RUNNING, "h-new"));
        txn_update_event(t, "web", "no-such-update", BO__JOB_UPDATE_STATUS__UPDATE_ABORTED, 5);
        struct bo_err err = BO_ERR_INIT;
        apply_expect(st, t, 2, BO_EINVAL, &err);
        t = txn_new();
        txn_save_task(t, mk_task("t-other", mk_config("www", "prod", "h", 0, false), 2,
                                 BO__SCHEDULE_STATUS__RUNNING, "h-other"));
        apply_ok(st, t, 2);
        t = txn_new();
        txn_save_task(t, mk_task("t-new", mk_config("www", "prod", "h", 0, false), 3,
                                 BO__SCHEDULE_STATUS__RUNNING, "h-new"));
        apply_ok(st, t, 3);
        const char *hosts[] = {"h-new"};
        struct bo_task_query q = {.hosts = hosts, .n_hosts = 1};
        struct bo_task_list l;
        query(st, &q, &l);
        assert_int_equal(l.n, 1);
        assert_string_equal(tid(&l, 0), "t-new");
        bo_task_list_release(&l);
        hosts[0] = "h-other";
        query(st, &q, &l);
        assert_int_equal(l.n, 1);
        assert_string_equal(tid(&l, 0), "t-other");
        bo_task_list_release(&l);
        bo_store_close(st);
    }
}

static void txn_save_states(Bo__Transaction *t, Bo__ScheduledTask **tasks, size_t n)
{
    Bo__Op *op = txn_op(t, BO__OP__OP_SAVE_TASK_STATES);
    op->save_task_states = bo_calloc(1, sizeof(*op->save_task_states));
    bo__save_task_states__init(op->save_task_states);
    op->save_task_states->tasks = bo_calloc(n, sizeof(*tasks));
    memcpy(op->save_task_states->tasks, tasks, n * sizeof(*tasks));
    op->save_task_states->n_tasks = n;
}

/* SaveTaskStates: a new state without the config keeps the stored config,
 * and gives the same state as SaveTasks with the config; unknown tasks are
 * skipped; a config in it is refused. */
static void test_task_states(void **state)
{
    (void)state;
    struct bo_store *a = open_store("states-a.db");
    struct bo_store *b = open_store("states-b.db");
    uint64_t index = load_workload(a, 0);
    assert_int_equal(load_workload(b, 0), index);
    uint64_t configs = counts_of(a).configs;

    Bo__Transaction *t = txn_new();
    txn_save_task(t, mk_task("web-0", mk_config("www", "prod", "web", 0, true), 0,
                             BO__SCHEDULE_STATUS__RUNNING, "host-c"));
    apply_ok(a, t, index + 1);
    t = txn_new();
    Bo__ScheduledTask *st = mk_task("web-0", NULL, 0, BO__SCHEDULE_STATUS__RUNNING, "host-c");
    txn_save_states(t, &st, 1);
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_store_validate(b, t, &err), BO_OK);
    apply_ok(b, t, index + 1);
    assert_true(digest_of(a) == digest_of(b));
    assert_int_equal(counts_of(b).configs, configs);

    const char *ids[1] = {"web-0"};
    struct bo_task_query q = {.task_ids = ids, .n_task_ids = 1};
    struct bo_task_list l;
    query(b, &q, &l);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.tasks[0]->status, BO__SCHEDULE_STATUS__RUNNING);
    assert_string_equal(l.tasks[0]->assigned_task->slave_host, "host-c");
    assert_non_null(l.tasks[0]->assigned_task->task);
    assert_string_equal(l.tasks[0]->assigned_task->task->job->name, "web");
    bo_task_list_release(&l);

    /* unknown task: skipped on apply, alike on every replica */
    uint64_t before = digest_of(b);
    t = txn_new();
    st = mk_task("nope", NULL, 0, BO__SCHEDULE_STATUS__RUNNING, NULL);
    txn_save_states(t, &st, 1);
    apply_ok(b, t, index + 2);
    assert_true(digest_of(b) == before);

    /* a state that carries a config is not a state */
    t = txn_new();
    st = mk_task("web-1", mk_config("www", "prod", "web", 0, false), 1,
                 BO__SCHEDULE_STATUS__RUNNING, NULL);
    txn_save_states(t, &st, 1);
    memset(&err, 0, sizeof(err));
    apply_expect(b, t, index + 3, BO_EINVAL, &err);
    assert_non_null(strstr(err.msg, "carries a config"));
    bo_store_close(a);
    bo_store_close(b);
}

/* ---- tasks as text, kept (bo_store_each_task_text) ---- */

static void export_image(struct bo_store *st, bool dedup, struct bo_buf *image);

static int render_calls;

/* A renderer that shows what changes: id, status, host, instance, events.
 * Tasks whose id starts with "skip" cannot be rendered. */
static int test_render(const Bo__ScheduledTask *t, struct bo_buf *out)
{
    render_calls++;
    const Bo__AssignedTask *a = t->assigned_task;
    if (strncmp(a->task_id, "skip", 4) == 0) {
        return BO_EINVAL;
    }
    char tmp[512];
    int n = snprintf(tmp, sizeof(tmp), "%s:%d:%s:%d:%zu", a->task_id, (int)t->status,
                     a->slave_host != NULL ? a->slave_host : "", a->instance_id, t->n_task_events);
    return bo_buf_append(out, tmp, (size_t)n);
}

static int text_collect(const uint8_t *text, size_t len, void *data)
{
    struct bo_buf *b = data;
    assert_int_equal(bo_buf_append(b, text, len), BO_OK);
    return bo_buf_append_byte(b, '|');
}

static int render_collect(const Bo__ScheduledTask *t, void *data)
{
    struct bo_buf *b = data;
    size_t mark = b->len;
    int rc = test_render(t, b);
    if (rc == BO_EINVAL) {
        b->len = mark;
        return BO_OK;
    }
    return bo_buf_append_byte(b, '|');
}

/* The kept texts of every task, and of one job's, are what rendering the
 * stored tasks afresh gives. */
static void texts_match(struct bo_store *st)
{
    const Bo__JobKey *web[1] = {mk_key("www", "prod", "web")};
    struct bo_task_query qs[2] = {{0}, {.job_keys = web, .n_job_keys = 1}};
    for (int i = 0; i < 2; i++) {
        for (int pass = 0; pass < 2; pass++) { /* a miss, then a hit */
            struct bo_buf got = BO_BUF_INIT, want = BO_BUF_INIT;
            struct bo_err err = BO_ERR_INIT;
            int rc = bo_store_each_task_text(st, &qs[i], text_collect, &got, &err);
            if (rc != BO_OK) {
                fail_msg("each_task_text: %s", bo_err_msg(&err, rc));
            }
            assert_int_equal(bo_store_each_task(st, &qs[i], false, render_collect, &want, &err),
                             BO_OK);
            assert_int_equal(got.len, want.len);
            assert_memory_equal(got.data, want.data, got.len);
            bo_buf_release(&got);
            bo_buf_release(&want);
        }
    }
    free_msg((void *)web[0]);
}

static void test_task_texts(void **state)
{
    (void)state;
    struct bo_store *st = open_store("texts.db");
    struct bo_err err = BO_ERR_INIT;
    struct bo_buf b = BO_BUF_INIT;
    struct bo_task_query all = {0};
    assert_int_equal(bo_store_each_task_text(st, &all, text_collect, &b, &err), BO_EINVAL);
    assert_int_equal(bo_store_set_task_render(st, test_render, 1 << 20, &err), BO_OK);
    uint64_t index = load_workload(st, 0);
    texts_match(st);

    /* a second read renders nothing: every text was kept */
    render_calls = 0;
    assert_int_equal(bo_store_each_task_text(st, &all, text_collect, &b, &err), BO_OK);
    assert_int_equal(render_calls, 0);
    struct bo_store_text_stats ts;
    bo_store_get_text_stats(st, &ts);
    assert_int_equal(ts.entries, 8);
    assert_true(ts.hits >= 8 && ts.bytes > 0 && ts.bytes <= ts.budget);

    /* a whole task saved, a state saved: their texts follow */
    Bo__Transaction *t = txn_new();
    txn_save_task(t, mk_task("web-0", mk_config("www", "prod", "web", 0, true), 0,
                             BO__SCHEDULE_STATUS__KILLING, "host-z"));
    apply_ok(st, t, ++index);
    texts_match(st);
    t = txn_new();
    Bo__ScheduledTask *s1 = mk_task("web-2", NULL, 2, BO__SCHEDULE_STATUS__LOST, "host-y");
    txn_save_states(t, &s1, 1);
    apply_ok(st, t, ++index);
    texts_match(st);

    /* a removed task is gone; a new one that takes its row id is itself */
    t = txn_new();
    const char *gone[] = {"db-1"};
    txn_remove_tasks(t, gone, 1);
    apply_ok(st, t, ++index);
    texts_match(st);
    t = txn_new();
    txn_save_task(t, mk_task("db-new", mk_config("dba", "devel", "db", 2, false), 1,
                             BO__SCHEDULE_STATUS__PENDING, NULL));
    apply_ok(st, t, ++index);
    texts_match(st);

    /* a transaction that fails after saving a task leaves the old text */
    t = txn_new();
    txn_save_task(t, mk_task("web-3", mk_config("www", "prod", "web", 0, false), 3,
                             BO__SCHEDULE_STATUS__FAILED, "host-x"));
    txn_update_event(t, "web", "no-such-update", BO__JOB_UPDATE_STATUS__UPDATE_ABORTED, 5);
    apply_expect(st, t, index + 1, BO_EINVAL, &err);
    texts_match(st);

    /* a task the renderer refuses is left out, every time */
    t = txn_new();
    txn_save_task(t, mk_task("skip-me", mk_config("www", "prod", "web", 0, false), 7,
                             BO__SCHEDULE_STATUS__PENDING, NULL));
    apply_ok(st, t, ++index);
    texts_match(st);
    b.len = 0;
    assert_int_equal(bo_store_each_task_text(st, &all, text_collect, &b, &err), BO_OK);
    assert_null(memmem(b.data, b.len, "skip", 4));

    /* a restore replaces every row: the texts are the restored tasks' */
    struct bo_store *other = open_store("texts-other.db");
    load_workload(other, 0);
    t = txn_new();
    txn_save_task(t, mk_task("web-0", mk_config("www", "prod", "web", 0, true), 0,
                             BO__SCHEDULE_STATUS__FINISHED, "host-r"));
    apply_ok(other, t, 4);
    struct bo_buf image = BO_BUF_INIT;
    export_image(other, true, &image);
    int rc = bo_store_restore(st, image.data, image.len, 50, &err);
    if (rc != BO_OK) {
        fail_msg("restore: %s", bo_err_msg(&err, rc));
    }
    texts_match(st);
    b.len = 0;
    assert_int_equal(bo_store_each_task_text(st, &all, text_collect, &b, &err), BO_OK);
    char want[64];
    snprintf(want, sizeof(want), "web-0:%d:host-r:", (int)BO__SCHEDULE_STATUS__FINISHED);
    assert_non_null(memmem(b.data, b.len, want, strlen(want)));

    /* with a read view open the restore happens in place, by DELETEs that
     * call no hook: the texts follow all the same */
    t = txn_new();
    txn_save_task(t, mk_task("web-0", mk_config("www", "prod", "web", 0, true), 0,
                             BO__SCHEDULE_STATUS__FAILED, "host-q"));
    apply_ok(other, t, 5);
    bo_buf_release(&image);
    export_image(other, true, &image);
    struct bo_store_view *view;
    assert_int_equal(bo_store_view_open(st, &view, &err), BO_OK);
    rc = bo_store_restore(st, image.data, image.len, 60, &err);
    if (rc != BO_OK) {
        fail_msg("restore in place: %s", bo_err_msg(&err, rc));
    }
    bo_store_view_close(view);
    texts_match(st);
    b.len = 0;
    assert_int_equal(bo_store_each_task_text(st, &all, text_collect, &b, &err), BO_OK);
    snprintf(want, sizeof(want), "web-0:%d:host-q:", (int)BO__SCHEDULE_STATUS__FAILED);
    assert_non_null(memmem(b.data, b.len, want, strlen(want)));

    /* a budget of zero keeps nothing and still answers */
    assert_int_equal(bo_store_set_task_render(st, test_render, 0, &err), BO_OK);
    texts_match(st);
    bo_store_get_text_stats(st, &ts);
    assert_int_equal(ts.entries, 0);
    bo_buf_release(&image);
    bo_buf_release(&b);
    bo_store_close(other);
    bo_store_close(st);
}

static void ids_of(struct bo_store *st, const struct bo_task_query *q, struct bo_buf *out)
{
    struct bo_task_list l;
    query(st, q, &l);
    out->len = 0;
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(bo_buf_append(out, tid(&l, i), strlen(tid(&l, i))), BO_OK);
        assert_int_equal(bo_buf_append_byte(out, ','), BO_OK);
    }
    bo_task_list_release(&l);
}

/* A query naming one job (one key, or role, environment and name) takes a
 * path of its own: the same answers as the general one, in the same order
 * (instance, then task id), with statuses, limits and offsets. */
static void test_query_one_job(void **state)
{
    (void)state;
    struct bo_store *st = open_store("one-job.db");
    uint64_t index = load_workload(st, 0);
    /* more tasks of instance 1, created out of id order */
    Bo__Transaction *t = txn_new();
    txn_save_task(t, mk_task("web-1-z", mk_config("www", "prod", "web", 0, false), 1,
                             BO__SCHEDULE_STATUS__RUNNING, "host-a"));
    txn_save_task(t, mk_task("web-1-a", mk_config("www", "prod", "web", 0, false), 1,
                             BO__SCHEDULE_STATUS__FAILED, "host-a"));
    apply_ok(st, t, ++index);

    Bo__JobKey web = BO__JOB_KEY__INIT, none = BO__JOB_KEY__INIT;
    web.role = "www";
    web.environment = "prod";
    web.name = "web";
    none.role = "www";
    none.environment = "prod";
    none.name = "absent";
    const Bo__JobKey *one[] = {&web}, *two[] = {&web, &none}, *missing[] = {&none};
    Bo__ScheduleStatus sts[] = {BO__SCHEDULE_STATUS__RUNNING, BO__SCHEDULE_STATUS__PENDING};
    struct bo_buf want = BO_BUF_INIT, got = BO_BUF_INIT;
    for (int filter = 0; filter < 2; filter++) {
        for (int64_t off = 0; off < 4; off++) {
            for (int64_t lim = 0; lim < 4; lim++) {
                struct bo_task_query general = {
                    .job_keys = two, .n_job_keys = 2, .offset = off, .limit = lim};
                struct bo_task_query by_key = {
                    .job_keys = one, .n_job_keys = 1, .offset = off, .limit = lim};
                struct bo_task_query by_fields = {.role = "www",
                                                  .environment = "prod",
                                                  .job_name = "web",
                                                  .offset = off,
                                                  .limit = lim};
                if (filter) {
                    general.statuses = by_key.statuses = by_fields.statuses = sts;
                    general.n_statuses = by_key.n_statuses = by_fields.n_statuses = 2;
                }
                ids_of(st, &general, &want);
                ids_of(st, &by_key, &got);
                assert_int_equal(got.len, want.len);
                assert_memory_equal(got.data, want.data, got.len);
                ids_of(st, &by_fields, &got);
                assert_int_equal(got.len, want.len);
                assert_memory_equal(got.data, want.data, got.len);
                assert_int_equal(count_q(st, &by_key), count_q(st, &general));
            }
        }
    }
    struct bo_task_query all = {.job_keys = one, .n_job_keys = 1};
    ids_of(st, &all, &got);
    const char *order = "web-0,web-1,web-1-a,web-1-z,web-2,web-3,web-4,web-5,";
    assert_int_equal(got.len, strlen(order));
    assert_memory_equal(got.data, order, got.len);
    struct bo_task_query absent = {.job_keys = missing, .n_job_keys = 1};
    ids_of(st, &absent, &got);
    assert_int_equal(got.len, 0);
    assert_int_equal(count_q(st, &absent), 0);
    bo_buf_release(&want);
    bo_buf_release(&got);
    bo_store_close(st);
}

/* Status changes in one transaction (counts summed, written at its end;
 * rows changed in place) leave the state that one transaction per change
 * leaves: the same digest, counts, and rows emptied pruned. */
static void test_state_changes_batched(void **state)
{
    (void)state;
    struct bo_store *a = open_store("batched-a.db");
    struct bo_store *b = open_store("batched-b.db");
    uint64_t ia = load_workload(a, 0), ib = load_workload(b, 0);
    static const char *const ids[] = {"web-0", "web-2", "web-3", "web-4", "web-5"};
    static const Bo__ScheduleStatus to[] = {
        BO__SCHEDULE_STATUS__KILLING, BO__SCHEDULE_STATUS__KILLING, BO__SCHEDULE_STATUS__FINISHED,
        BO__SCHEDULE_STATUS__ASSIGNED, BO__SCHEDULE_STATUS__ASSIGNED};
    static const char *const host[] = {"host-a", "host-a", "host-b", "host-n", "host-m"};
    /* a: one transaction, with web-4 moved twice (ASSIGNED, then RUNNING) */
    Bo__Transaction *t = txn_new();
    for (size_t i = 0; i < 5; i++) {
        Bo__ScheduledTask *st = mk_task(ids[i], NULL, i == 0 ? 0 : (int)i, to[i], host[i]);
        txn_save_states(t, &st, 1);
    }
    Bo__ScheduledTask *again = mk_task("web-4", NULL, 4, BO__SCHEDULE_STATUS__RUNNING, "host-n");
    txn_save_states(t, &again, 1);
    apply_ok(a, t, ++ia);
    /* b: the same changes one transaction each */
    for (size_t i = 0; i < 5; i++) {
        t = txn_new();
        Bo__ScheduledTask *st = mk_task(ids[i], NULL, i == 0 ? 0 : (int)i, to[i], host[i]);
        txn_save_states(t, &st, 1);
        apply_ok(b, t, ++ib);
    }
    t = txn_new();
    again = mk_task("web-4", NULL, 4, BO__SCHEDULE_STATUS__RUNNING, "host-n");
    txn_save_states(t, &again, 1);
    apply_ok(b, t, ++ib);
    assert_true(digest_of(a) == digest_of(b));

    struct bo_job_summary_list jl;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_store_job_summaries(a, "www", &jl, &err), BO_OK);
    const struct bo_task_counts *c = NULL;
    for (size_t i = 0; i < jl.n; i++) {
        if (strcmp(jl.jobs[i].key->name, "web") == 0) {
            c = &jl.jobs[i].counts;
        }
    }
    assert_non_null(c);
    /* web-0, web-2 KILLING; web-4 RUNNING; web-5 ASSIGNED; web-1 KILLED,
     * web-3 FINISHED: nothing PENDING any more */
    assert_int_equal(c->by_status[BO__SCHEDULE_STATUS__PENDING], 0);
    assert_int_equal(c->by_status[BO__SCHEDULE_STATUS__KILLING], 2);
    assert_int_equal(c->by_status[BO__SCHEDULE_STATUS__RUNNING], 1);
    assert_int_equal(c->active, 4);
    assert_int_equal(c->finished, 2);
    bo_job_summary_list_release(&jl);

    /* hosts moved with the states: by-host queries see them */
    const char *hn[] = {"host-n"};
    struct bo_task_query q = {.hosts = hn, .n_hosts = 1};
    assert_int_equal(count_q(a, &q), 1);
    bo_store_close(a);
    bo_store_close(b);
}

/* The web job's tasks in `status`, as its job summary counts them. */
static uint64_t web_count(struct bo_store *st, Bo__ScheduleStatus status)
{
    struct bo_job_summary_list jl;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_store_job_summaries(st, "www", &jl, &err), BO_OK);
    uint64_t n = UINT64_MAX;
    for (size_t i = 0; i < jl.n; i++) {
        if (strcmp(jl.jobs[i].key->name, "web") == 0) {
            n = jl.jobs[i].counts.by_status[status];
        }
    }
    bo_job_summary_list_release(&jl);
    assert_true(n != UINT64_MAX);
    return n;
}

/* Task counts are kept in memory beside the state: a summary read between
 * the applies of an open group sees each apply before it, a failed apply's
 * changes go with it, the counts match the tasks (bo_store_digest checks
 * them) as applies one transaction each leave them, and a store opened on
 * an existing file counts its tasks again. */
static void test_task_counts(void **state)
{
    (void)state;
    struct bo_store *a = open_store("counts-a.db");
    struct bo_store *b = open_store("counts-b.db");
    uint64_t ia = load_workload(a, 0), ib = load_workload(b, 0);
    bo_store_set_group_commit(a, true);
    assert_int_equal(web_count(a, BO__SCHEDULE_STATUS__RUNNING), 3);
    static const char *const ids[] = {"web-0", "web-2", "web-4", "web-0"};
    static const int inst[] = {0, 2, 4, 0};
    static const Bo__ScheduleStatus to[] = {
        BO__SCHEDULE_STATUS__KILLING, BO__SCHEDULE_STATUS__KILLING, BO__SCHEDULE_STATUS__RUNNING,
        BO__SCHEDULE_STATUS__KILLED};
    for (size_t i = 0; i < 4; i++) {
        for (int side = 0; side < 2; side++) {
            Bo__Transaction *t = txn_new();
            Bo__ScheduledTask *task = mk_task(ids[i], NULL, inst[i], to[i], "host-a");
            txn_save_states(t, &task, 1);
            apply_ok(side ? b : a, t, side ? ++ib : ++ia);
        }
        if (i != 1) {
            continue;
        }
        /* mid-group: web-0 and web-2 moved to KILLING */
        assert_true(bo_store_pending(a));
        assert_int_equal(web_count(a, BO__SCHEDULE_STATUS__RUNNING), 1);
        assert_int_equal(web_count(a, BO__SCHEDULE_STATUS__KILLING), 2);
        /* a failed apply: its state change goes, its count change too */
        for (int side = 0; side < 2; side++) {
            Bo__Transaction *t = txn_new();
            Bo__ScheduledTask *task =
                mk_task("web-3", NULL, 3, BO__SCHEDULE_STATUS__LOST, "host-b");
            txn_save_states(t, &task, 1);
            txn_update_event(t, "web", "no-such-update", BO__JOB_UPDATE_STATUS__UPDATE_ABORTED, 5);
            struct bo_err err = BO_ERR_INIT;
            apply_expect(side ? b : a, t, side ? ib + 1 : ia + 1, BO_EINVAL, &err);
        }
        struct bo_role_summary_list rl;
        struct bo_err err = BO_ERR_INIT;
        assert_int_equal(bo_store_role_summaries(a, &rl, &err), BO_OK);
        assert_int_equal(rl.n, 2);
        assert_string_equal(rl.roles[1].role, "www");
        assert_int_equal(rl.roles[1].job_count, 1);
        assert_int_equal(rl.roles[1].cron_job_count, 1);
        assert_int_equal(rl.roles[1].counts.by_status[BO__SCHEDULE_STATUS__LOST], 0);
        assert_int_equal(rl.roles[1].counts.by_status[BO__SCHEDULE_STATUS__KILLING], 2);
        bo_role_summary_list_release(&rl);
    }
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_store_flush(a, &err), BO_OK);
    assert_int_equal(web_count(a, BO__SCHEDULE_STATUS__LOST), 0);
    assert_int_equal(web_count(a, BO__SCHEDULE_STATUS__KILLING), 1);
    assert_int_equal(web_count(a, BO__SCHEDULE_STATUS__KILLED), 2);
    assert_int_equal(web_count(a, BO__SCHEDULE_STATUS__RUNNING), 2);
    assert_true(digest_of(a) == digest_of(b));

    /* the dba job loses its last tasks: gone from the summaries, and its
     * role with it (nothing else refers to them) */
    Bo__Transaction *t = txn_new();
    const char *dba[] = {"db-0", "db-1"};
    txn_remove_tasks(t, dba, 2);
    apply_ok(a, t, ++ia);
    struct bo_job_summary_list jl;
    assert_int_equal(bo_store_job_summaries(a, "dba", &jl, &err), BO_OK);
    assert_int_equal(jl.n, 0);
    bo_job_summary_list_release(&jl);
    struct bo_role_summary_list rl;
    assert_int_equal(bo_store_role_summaries(a, &rl, &err), BO_OK);
    assert_int_equal(rl.n, 1);
    assert_string_equal(rl.roles[0].role, "www");
    bo_role_summary_list_release(&rl);
    assert_int_equal(bo_store_flush(a, &err), BO_OK);
    uint64_t before = digest_of(a);

    /* an existing file: counted from its tasks */
    bo_store_close(a);
    char path[512];
    path_in_dir(path, sizeof(path), "counts-a.db");
    assert_int_equal(bo_store_open(path, false, &a, &err), BO_OK);
    assert_int_equal(web_count(a, BO__SCHEDULE_STATUS__KILLED), 2);
    assert_int_equal(web_count(a, BO__SCHEDULE_STATUS__RUNNING), 2);
    assert_true(digest_of(a) == before);
    bo_store_close(a);
    bo_store_close(b);
}

/* The status of task `id`, or -1 if there is none. */
static int status_of(struct bo_store *st, const char *id)
{
    const char *ids[] = {id};
    struct bo_task_query q = {.task_ids = ids, .n_task_ids = 1};
    struct bo_task_list l;
    query(st, &q, &l);
    int status = l.n == 1 ? (int)l.tasks[0]->status : -1;
    bo_task_list_release(&l);
    return status;
}

/* Task ops take no savepoint of their own in a group (the state cannot
 * refuse them): one that fails anyway (here, a task whose body is gone)
 * undoes the group and says so with BO_EIO, not as a refusal the caller
 * would skip; ops the state may refuse keep their savepoint, and a refusal
 * undoes that apply alone. */
static void test_group_savepoints(void **state)
{
    (void)state;
    struct bo_store *st = open_store("savepoints.db");
    uint64_t index = load_workload(st, 0);
    /* web-3's body goes behind the store's back */
    char path[512];
    path_in_dir(path, sizeof(path), "savepoints.db");
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DELETE FROM task_bodies WHERE id ="
                                  " (SELECT id FROM tasks WHERE task_id = 'web-3')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_changes(db), 1);
    sqlite3_close(db);

    bo_store_set_group_commit(st, true);
    /* refused with its savepoint: web-0's change before it stays */
    Bo__Transaction *t = txn_new();
    Bo__ScheduledTask *task = mk_task("web-0", NULL, 0, BO__SCHEDULE_STATUS__KILLING, "host-a");
    txn_save_states(t, &task, 1);
    apply_ok(st, t, ++index);
    t = txn_new();
    task = mk_task("web-2", NULL, 2, BO__SCHEDULE_STATUS__KILLING, "host-a");
    txn_save_states(t, &task, 1);
    txn_update_event(t, "web", "no-such-update", BO__JOB_UPDATE_STATUS__UPDATE_ABORTED, 5);
    struct bo_err err = BO_ERR_INIT;
    apply_expect(st, t, index + 1, BO_EINVAL, &err);
    assert_true(bo_store_pending(st));
    assert_int_equal(status_of(st, "web-0"), BO__SCHEDULE_STATUS__KILLING);
    assert_int_equal(status_of(st, "web-2"), BO__SCHEDULE_STATUS__RUNNING);
    t = txn_new();
    task = mk_task("web-2", NULL, 2, BO__SCHEDULE_STATUS__FINISHED, "host-a");
    txn_save_states(t, &task, 1);
    apply_ok(st, t, ++index);

    /* a task op that fails: the group is undone, and the caller told */
    t = txn_new();
    task = mk_task("web-3", NULL, 3, BO__SCHEDULE_STATUS__KILLING, "host-b");
    txn_save_states(t, &task, 1);
    apply_expect(st, t, index + 1, BO_EIO, &err);
    assert_non_null(strstr(err.msg, "has no body"));
    assert_false(bo_store_pending(st));
    assert_int_equal(status_of(st, "web-0"), BO__SCHEDULE_STATUS__RUNNING);
    assert_int_equal(status_of(st, "web-2"), BO__SCHEDULE_STATUS__RUNNING);
    assert_int_equal(web_count(st, BO__SCHEDULE_STATUS__RUNNING), 3);
    assert_int_equal(web_count(st, BO__SCHEDULE_STATUS__KILLING), 0);
    bo_store_close(st);
}

static void txn_save_shared(Bo__Transaction *t, Bo__TaskConfig *cfg, Bo__ScheduledTask **tasks,
                            size_t n)
{
    Bo__Op *op = txn_op(t, BO__OP__OP_SAVE_TASKS_SHARED);
    op->save_tasks_shared = bo_calloc(1, sizeof(*op->save_tasks_shared));
    bo__save_tasks_shared__init(op->save_tasks_shared);
    op->save_tasks_shared->config = cfg;
    op->save_tasks_shared->tasks = bo_calloc(n, sizeof(*tasks));
    memcpy(op->save_tasks_shared->tasks, tasks, n * sizeof(*tasks));
    op->save_tasks_shared->n_tasks = n;
    t->schema_version = BO_TXN_VERSION;
}

/* SaveTasksShared (one config, the tasks without it) leaves the state
 * SaveTasks of the same tasks with their configs leaves, new tasks and
 * replaced ones alike; what it must not hold is refused whole; and a store
 * refuses a transaction version it does not know. */
static void test_tasks_shared(void **state)
{
    (void)state;
    struct bo_store *a = open_store("shared-a.db");
    struct bo_store *b = open_store("shared-b.db");
    uint64_t ia = load_workload(a, 0), ib = load_workload(b, 0);
    static const char *const ids[] = {"api-0", "api-1", "api-2", "web-4"};
    Bo__ScheduledTask *full[4], *bare[4];
    for (int i = 0; i < 4; i++) {
        int inst = i < 3 ? i : 4;
        full[i] = mk_task(ids[i], mk_config("www", "prod", i < 3 ? "api" : "web", 1, false), inst,
                          BO__SCHEDULE_STATUS__PENDING, NULL);
        bare[i] = mk_task(ids[i], NULL, inst, BO__SCHEDULE_STATUS__PENDING, NULL);
    }
    Bo__Transaction *t = txn_new();
    txn_save_tasks(t, full, 3);
    txn_save_tasks(t, &full[3], 1);
    apply_ok(a, t, ++ia);
    t = txn_new();
    txn_save_shared(t, mk_config("www", "prod", "api", 1, false), bare, 3);
    txn_save_shared(t, mk_config("www", "prod", "web", 1, false), &bare[3], 1);
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_store_validate(b, t, &err), BO_OK);
    apply_ok(b, t, ++ib);
    assert_true(digest_of(a) == digest_of(b));
    assert_int_equal(counts_of(a).configs, counts_of(b).configs);
    struct bo_task_list la, lb;
    struct bo_task_query q = {0};
    query(a, &q, &la);
    query(b, &q, &lb);
    assert_int_equal(la.n, lb.n);
    for (size_t i = 0; i < la.n; i++) {
        assert_string_equal(tid(&la, i), tid(&lb, i));
        assert_string_equal(la.tasks[i]->assigned_task->task->job->name,
                            lb.tasks[i]->assigned_task->task->job->name);
    }
    bo_task_list_release(&la);
    bo_task_list_release(&lb);

    /* refused whole, nothing applied */
    uint64_t before = digest_of(b);
    Bo__ScheduledTask *one = mk_task("x-0", mk_config("www", "prod", "x", 0, false), 0,
                                     BO__SCHEDULE_STATUS__PENDING, NULL);
    t = txn_new();
    txn_save_shared(t, mk_config("www", "prod", "x", 0, false), &one, 1);
    apply_expect(b, t, ib + 1, BO_EINVAL, &err);
    assert_non_null(strstr(err.msg, "carries a config of its own"));
    one = mk_task("x-0", NULL, 0, BO__SCHEDULE_STATUS__PENDING, NULL);
    t = txn_new();
    txn_save_shared(t, NULL, &one, 1);
    memset(&err, 0, sizeof(err));
    apply_expect(b, t, ib + 1, BO_EINVAL, &err);
    assert_non_null(strstr(err.msg, "missing config"));
    Bo__ScheduledTask *dup[2] = {mk_task("x-0", NULL, 0, BO__SCHEDULE_STATUS__PENDING, NULL),
                                 mk_task("x-0", NULL, 1, BO__SCHEDULE_STATUS__PENDING, NULL)};
    t = txn_new();
    txn_save_shared(t, mk_config("www", "prod", "x", 0, false), dup, 2);
    memset(&err, 0, sizeof(err));
    apply_expect(b, t, ib + 1, BO_EINVAL, &err);
    assert_non_null(strstr(err.msg, "appears twice"));
    one = mk_task("x-0", NULL, 0, BO__SCHEDULE_STATUS__PENDING, NULL);
    t = txn_new();
    txn_save_shared(t, mk_config("www", "", "x", 0, false), &one, 1);
    memset(&err, 0, sizeof(err));
    apply_expect(b, t, ib + 1, BO_EINVAL, &err);
    assert_non_null(strstr(err.msg, "empty environment"));
    t = txn_new();
    txn_save_quota(t, "www", 1);
    t->schema_version = BO_TXN_VERSION + 1;
    memset(&err, 0, sizeof(err));
    apply_expect(b, t, ib + 1, BO_EVERSION, &err);
    assert_true(digest_of(b) == before);
    assert_int_equal(bo_store_applied_index(b), ib);
    bo_store_close(a);
    bo_store_close(b);
}

static void test_query_filters(void **state)
{
    (void)state;
    struct bo_store *st = open_store("filters.db");
    load_workload(st, 0);
    struct bo_task_query q = {0};
    struct bo_task_list l;

    q.role = "dba";
    assert_int_equal(count_q(st, &q), 2);
    q.role = NULL;
    q.environment = "prod";
    assert_int_equal(count_q(st, &q), 6);
    q.environment = NULL;
    q.job_name = "db";
    assert_int_equal(count_q(st, &q), 2);
    q.job_name = NULL;

    Bo__JobKey k1 = BO__JOB_KEY__INIT, k2 = BO__JOB_KEY__INIT;
    k1.role = "www";
    k1.environment = "prod";
    k1.name = "web";
    k2.role = "dba";
    k2.environment = "devel";
    k2.name = "nope";
    const Bo__JobKey *keys[] = {&k1, &k2};
    q.job_keys = keys;
    q.n_job_keys = 2;
    assert_int_equal(count_q(st, &q), 6);
    q.n_job_keys = 1;
    q.job_keys = &keys[1];
    assert_int_equal(count_q(st, &q), 0);
    q.n_job_keys = 0;

    const char *ids[] = {"web-3", "db-0", "missing"};
    q.task_ids = ids;
    q.n_task_ids = 3;
    query(st, &q, &l);
    assert_int_equal(l.n, 2);
    assert_string_equal(tid(&l, 0), "db-0");
    assert_string_equal(tid(&l, 1), "web-3");
    bo_task_list_release(&l);
    q.n_task_ids = 0;

    int32_t inst[] = {1, 5};
    q.instance_ids = inst;
    q.n_instance_ids = 2;
    query(st, &q, &l);
    assert_int_equal(l.n, 3); /* db-1, web-1, web-5 */
    assert_string_equal(tid(&l, 0), "db-1");
    assert_string_equal(tid(&l, 2), "web-5");
    bo_task_list_release(&l);
    q.n_instance_ids = 0;

    Bo__ScheduleStatus sts[] = {BO__SCHEDULE_STATUS__PENDING, BO__SCHEDULE_STATUS__KILLED};
    q.statuses = sts;
    q.n_statuses = 2;
    assert_int_equal(count_q(st, &q), 3); /* web-4, web-5 pending, web-1 killed */
    q.n_statuses = 1;
    assert_int_equal(count_q(st, &q), 2);
    q.n_statuses = 0;

    const char *hosts[] = {"host-a", "host-c"};
    q.hosts = hosts;
    q.n_hosts = 2;
    assert_int_equal(count_q(st, &q), 4); /* web-0, web-2, db-0, db-1 */
    /* Combined: host-a and role www. */
    q.role = "www";
    query(st, &q, &l);
    assert_int_equal(l.n, 2);
    assert_string_equal(tid(&l, 0), "web-0");
    assert_string_equal(tid(&l, 1), "web-2");
    bo_task_list_release(&l);
    q = (struct bo_task_query){0};

    /* Offset and limit page through the same order. */
    q.offset = 2;
    q.limit = 3;
    query(st, &q, &l);
    assert_int_equal(l.n, 3);
    assert_string_equal(tid(&l, 0), "web-0");
    assert_string_equal(tid(&l, 2), "web-2");
    bo_task_list_release(&l);
    q.offset = 7;
    q.limit = 0;
    query(st, &q, &l);
    assert_int_equal(l.n, 1);
    assert_string_equal(tid(&l, 0), "web-5");
    bo_task_list_release(&l);
    /* Counts ignore paging. */
    assert_int_equal(count_q(st, &q), 8);
    bo_store_close(st);
}

static void test_summaries(void **state)
{
    (void)state;
    struct bo_store *st = open_store("summaries.db");
    load_workload(st, 0);
    struct bo_err err = BO_ERR_INIT;
    struct bo_job_summary_list jl;
    assert_int_equal(bo_store_job_summaries(st, NULL, &jl, &err), BO_OK);
    assert_int_equal(jl.n, 3); /* dba/devel/db, www/prod/nightly (cron), www/prod/web */
    assert_string_equal(jl.jobs[0].key->name, "db");
    assert_int_equal(jl.jobs[0].counts.active, 2);
    assert_int_equal(jl.jobs[0].counts.failed, 0); /* db-2 was removed */
    assert_int_equal(jl.jobs[0].instance_count, 2);
    assert_false(jl.jobs[0].is_cron);
    assert_string_equal(jl.jobs[1].key->name, "nightly");
    assert_true(jl.jobs[1].is_cron);
    assert_string_equal(jl.jobs[1].cron_schedule, "*/5 * * * *");
    assert_int_equal(jl.jobs[1].instance_count, 3);
    assert_int_equal(jl.jobs[1].counts.active + jl.jobs[1].counts.pending, 0);
    const struct bo_job_summary *web = &jl.jobs[2];
    assert_string_equal(web->key->name, "web");
    assert_int_equal(web->counts.active, 3);
    assert_int_equal(web->counts.pending, 2);
    assert_int_equal(web->counts.finished, 1);
    assert_int_equal(web->counts.by_status[BO__SCHEDULE_STATUS__RUNNING], 3);
    assert_int_equal(web->counts.by_status[BO__SCHEDULE_STATUS__KILLED], 1);
    assert_int_equal(web->instance_count, 5);
    bo_job_summary_list_release(&jl);

    assert_int_equal(bo_store_job_summaries(st, "dba", &jl, &err), BO_OK);
    assert_int_equal(jl.n, 1);
    bo_job_summary_list_release(&jl);

    struct bo_role_summary_list rl;
    assert_int_equal(bo_store_role_summaries(st, &rl, &err), BO_OK);
    assert_int_equal(rl.n, 2);
    assert_string_equal(rl.roles[0].role, "dba");
    assert_int_equal(rl.roles[0].job_count, 1);
    assert_int_equal(rl.roles[0].cron_job_count, 0);
    assert_int_equal(rl.roles[0].counts.active, 2);
    assert_string_equal(rl.roles[1].role, "www");
    assert_int_equal(rl.roles[1].job_count, 1);
    assert_int_equal(rl.roles[1].cron_job_count, 1);
    assert_int_equal(rl.roles[1].counts.pending, 2);
    assert_int_equal(rl.roles[1].counts.by_status[BO__SCHEDULE_STATUS__KILLED], 1);
    bo_role_summary_list_release(&rl);
    bo_store_close(st);
}

static void test_config_groups(void **state)
{
    (void)state;
    struct bo_store *st = open_store("groups.db");
    Bo__Transaction *t = txn_new();
    Bo__ScheduledTask *tasks[10];
    /* Instances 0-4 and 8 run config A, 5-7 config B, 9 is finished. */
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof(id), "g-%d", i);
        int variant = i >= 5 && i <= 7 ? 1 : 0;
        tasks[i] =
            mk_task(id, mk_config("www", "prod", "g", variant, i % 2 == 0), i,
                    i == 9 ? BO__SCHEDULE_STATUS__FINISHED : BO__SCHEDULE_STATUS__RUNNING, "h");
    }
    txn_save_tasks(t, tasks, 10);
    apply_ok(st, t, 1);
    Bo__JobKey k = BO__JOB_KEY__INIT;
    k.role = "www";
    k.environment = "prod";
    k.name = "g";
    struct bo_config_group_list gl;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_store_config_groups(st, &k, &gl, &err), BO_OK);
    assert_int_equal(gl.n, 2);
    assert_int_equal(gl.groups[0].n_ranges, 2);
    assert_int_equal(gl.groups[0].ranges[0]->first, 0);
    assert_int_equal(gl.groups[0].ranges[0]->last, 4);
    assert_int_equal(gl.groups[0].ranges[1]->first, 8);
    assert_int_equal(gl.groups[0].ranges[1]->last, 8);
    assert_int_equal(gl.groups[1].n_ranges, 1);
    assert_int_equal(gl.groups[1].ranges[0]->first, 5);
    assert_int_equal(gl.groups[1].ranges[0]->last, 7);
    assert_true(gl.groups[0].config->resources[0]->kind_case == BO__RESOURCE__KIND_NUM_CPUS ||
                gl.groups[0].config->resources[0]->kind_case == BO__RESOURCE__KIND_RAM_MB);
    assert_string_equal(gl.groups[1].config->job->name, "g");
    bo_config_group_list_release(&gl);

    k.name = "nothing";
    assert_int_equal(bo_store_config_groups(st, &k, &gl, &err), BO_OK);
    assert_int_equal(gl.n, 0);
    bo_store_close(st);
}

static void test_job_updates(void **state)
{
    (void)state;
    struct bo_store *st = open_store("updates.db");
    Bo__Transaction *t = txn_new();
    txn_save_update(t, "web", "u1", 1, 0);
    txn_save_update(t, "web", "u2", 2, 0);
    txn_update_event(t, "web", "u1", BO__JOB_UPDATE_STATUS__UPDATE_ROLLING_FORWARD, 1000);
    txn_update_event(t, "web", "u2", BO__JOB_UPDATE_STATUS__UPDATE_ROLLING_FORWARD, 500);
    apply_ok(st, t, 1);
    t = txn_new();
    /* Appended out of timestamp order: the newest event decides the status. */
    txn_update_event(t, "web", "u1", BO__JOB_UPDATE_STATUS__UPDATE_ROLLED_FORWARD, 3000);
    txn_update_event(t, "web", "u1", BO__JOB_UPDATE_STATUS__UPDATE_ROLL_FORWARD_PAUSED, 2000);
    txn_instance_event(t, "web", "u1", 3, 4000);
    txn_instance_event(t, "web", "u1", 1, 1500);
    apply_ok(st, t, 2);

    struct bo_err err = BO_ERR_INIT;
    Bo__JobUpdateKey *key = mk_update_key("web", "u1");
    Bo__JobUpdateDetails *d = NULL;
    assert_int_equal(bo_store_get_job_update(st, key, &d, &err), BO_OK);
    const Bo__JobUpdateState *s = d->update->summary->state;
    assert_non_null(s);
    assert_int_equal(s->status, BO__JOB_UPDATE_STATUS__UPDATE_ROLLED_FORWARD);
    assert_int_equal(s->created_timestamp_ms, 1000);
    assert_int_equal(s->last_modified_timestamp_ms, 4000);
    assert_int_equal(d->n_update_events, 3);
    assert_int_equal(d->update_events[0]->timestamp_ms, 1000);
    assert_int_equal(d->update_events[1]->timestamp_ms, 2000);
    assert_int_equal(d->update_events[2]->timestamp_ms, 3000);
    assert_int_equal(d->n_instance_events, 2);
    assert_int_equal(d->instance_events[0]->instance_id, 1);
    /* Configs re-attached, ranges kept. */
    const Bo__JobUpdateInstructions *in = d->update->instructions;
    assert_non_null(in->desired_state->task);
    assert_string_equal(in->desired_state->task->job->name, "web");
    assert_int_equal(in->desired_state->instances[0]->last, 9);
    assert_int_equal(in->n_initial_state, 1);
    assert_non_null(in->initial_state[0]->task);
    assert_int_equal(in->initial_state[0]->instances[0]->last, 4);
    assert_string_equal(d->update->summary->user, "alice");
    protobuf_c_message_free_unpacked(&d->base, NULL);

    /* Summaries newest first. */
    Bo__JobUpdateSummary **sums = NULL;
    size_t n = 0;
    assert_int_equal(bo_store_list_job_updates(st, NULL, &sums, &n, &err), BO_OK);
    assert_int_equal(n, 2);
    assert_string_equal(sums[0]->key->id, "u1");
    assert_string_equal(sums[1]->key->id, "u2");
    assert_int_equal(sums[1]->state->last_modified_timestamp_ms, 500);
    bo_store_free_list(sums, n);

    /* Re-saving keeps events; the state is not taken from the input. */
    t = txn_new();
    txn_save_update(t, "web", "u1", 4, 0);
    apply_ok(st, t, 3);
    assert_int_equal(bo_store_get_job_update(st, key, &d, &err), BO_OK);
    assert_int_equal(d->n_update_events, 3);
    assert_int_equal(d->update->summary->state->status,
                     BO__JOB_UPDATE_STATUS__UPDATE_ROLLED_FORWARD);
    protobuf_c_message_free_unpacked(&d->base, NULL);

    t = txn_new();
    txn_remove_update(t, "web", "u1");
    apply_ok(st, t, 4);
    assert_int_equal(bo_store_get_job_update(st, key, &d, &err), BO_ENOTFOUND);
    Bo__JobKey other = BO__JOB_KEY__INIT;
    other.role = "x";
    other.environment = "y";
    other.name = "z";
    assert_int_equal(bo_store_list_job_updates(st, &other, &sums, &n, &err), BO_OK);
    assert_int_equal(n, 0);
    bo_store_free_list(sums, n);
    assert_int_equal(bo_store_list_job_updates(st, key->job, &sums, &n, &err), BO_OK);
    assert_int_equal(n, 1);
    bo_store_free_list(sums, n);
    free_msg(key);
    bo_store_close(st);
}

static void test_other_entities(void **state)
{
    (void)state;
    struct bo_store *st = open_store("entities.db");
    load_workload(st, 0);
    struct bo_err err = BO_ERR_INIT;

    Bo__JobConfiguration *jc = NULL;
    Bo__JobKey *k = mk_key("www", "prod", "nightly");
    assert_int_equal(bo_store_get_cron_job(st, k, &jc, &err), BO_OK);
    assert_int_equal(jc->instance_count, 3);
    assert_non_null(jc->task_config);
    assert_string_equal(jc->task_config->job->name, "nightly");
    protobuf_c_message_free_unpacked(&jc->base, NULL);
    free_msg(k);
    k = mk_key("www", "prod", "web");
    assert_int_equal(bo_store_get_cron_job(st, k, &jc, &err), BO_ENOTFOUND);
    free_msg(k);
    Bo__JobConfiguration **crons;
    size_t n;
    assert_int_equal(bo_store_list_cron_jobs(st, &crons, &n, &err), BO_OK);
    assert_int_equal(n, 1);
    assert_non_null(crons[0]->task_config);
    bo_store_free_list(crons, n);

    Bo__ResourceAggregate *q = NULL;
    assert_int_equal(bo_store_get_quota(st, "www", &q, &err), BO_OK);
    assert_int_equal(q->n_resources, 1);
    assert_int_equal(q->resources[0]->ram_mb, 4096);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    Bo__QuotaConfiguration **qs;
    assert_int_equal(bo_store_list_quotas(st, &qs, &n, &err), BO_OK);
    assert_int_equal(n, 2);
    assert_string_equal(qs[0]->role, "dba");
    assert_int_equal(qs[0]->quota->resources[0]->ram_mb, 1024);
    bo_store_free_list(qs, n);

    Bo__HostAttributes *h = NULL;
    assert_int_equal(bo_store_get_host(st, "host-b", &h, &err), BO_OK);
    assert_int_equal(h->mode, BO__MAINTENANCE_MODE__MAINTENANCE_DRAINING);
    assert_string_equal(h->attributes[0]->name, "rack"); /* sorted on the way out */
    protobuf_c_message_free_unpacked(&h->base, NULL);
    assert_int_equal(bo_store_get_host(st, "host-z", &h, &err), BO_ENOTFOUND);
    Bo__HostAttributes **hs;
    assert_int_equal(bo_store_list_hosts(st, &hs, &n, &err), BO_OK);
    assert_int_equal(n, 2);
    assert_string_equal(hs[0]->host, "host-a");
    bo_store_free_list(hs, n);

    Bo__HostMaintenanceRequest **ms;
    assert_int_equal(bo_store_list_maintenance(st, &ms, &n, &err), BO_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ms[0]->timeout_secs, 60);
    bo_store_free_list(ms, n);

    Bo__SchedulerMetadata *md = NULL;
    assert_int_equal(bo_store_get_metadata(st, &md, &err), BO_OK);
    assert_string_equal(md->cluster_id, "cluster-1");
    protobuf_c_message_free_unpacked(&md->base, NULL);

    /* Upserts and removals. */
    Bo__Transaction *t = txn_new();
    txn_save_host(t, "host-a", BO__MAINTENANCE_MODE__MAINTENANCE_DRAINED);
    txn_remove_quota(t, "dba");
    txn_remove_maintenance(t, "host-b");
    txn_remove_cron(t, "www", "nightly");
    txn_save_metadata(t, "cluster-2");
    apply_ok(st, t, 4);
    assert_int_equal(bo_store_get_host(st, "host-a", &h, &err), BO_OK);
    assert_int_equal(h->mode, BO__MAINTENANCE_MODE__MAINTENANCE_DRAINED);
    protobuf_c_message_free_unpacked(&h->base, NULL);
    assert_int_equal(bo_store_get_quota(st, "dba", &q, &err), BO_ENOTFOUND);
    assert_int_equal(bo_store_list_maintenance(st, &ms, &n, &err), BO_OK);
    assert_int_equal(n, 0);
    bo_store_free_list(ms, n);
    assert_int_equal(bo_store_list_cron_jobs(st, &crons, &n, &err), BO_OK);
    assert_int_equal(n, 0);
    bo_store_free_list(crons, n);
    assert_int_equal(bo_store_get_metadata(st, &md, &err), BO_OK);
    assert_string_equal(md->cluster_id, "cluster-2");
    protobuf_c_message_free_unpacked(&md->base, NULL);
    struct bo_store_counts c = counts_of(st);
    assert_int_equal(c.hosts, 2);
    assert_int_equal(c.cron_jobs, 0);
    assert_int_equal(c.quotas, 1);
    bo_store_close(st);
}

/* Everything a query returns, encoded: equal lists give equal bytes. */
static void encode_all(struct bo_store *st, struct bo_buf *out)
{
    struct bo_task_query q = {0};
    struct bo_task_list l;
    query(st, &q, &l);
    for (size_t i = 0; i < l.n; i++) {
        size_t n = bo__scheduled_task__get_packed_size(l.tasks[i]);
        assert_int_equal(bo_buf_reserve(out, n), BO_OK);
        out->len += bo__scheduled_task__pack(l.tasks[i], out->data + out->len);
    }
    bo_task_list_release(&l);
}

static void test_replicas_identical(void **state)
{
    (void)state;
    struct bo_store *a = open_store("replica-a.db");
    struct bo_store *b = open_store("replica-b.db");
    load_workload(a, 0);
    load_workload(b, 0);
    assert_true(digest_of(a) == digest_of(b));
    struct bo_buf ea = BO_BUF_INIT, eb = BO_BUF_INIT;
    encode_all(a, &ea);
    encode_all(b, &eb);
    assert_int_equal(ea.len, eb.len);
    assert_memory_equal(ea.data, eb.data, ea.len);
    bo_buf_release(&ea);
    bo_buf_release(&eb);

    /* One more write on one side only changes its digest. */
    Bo__Transaction *t = txn_new();
    txn_save_quota(t, "www", 1);
    apply_ok(a, t, 4);
    assert_true(digest_of(a) != digest_of(b));
    bo_store_close(a);
    bo_store_close(b);
}

static void export_image(struct bo_store *st, bool dedup, struct bo_buf *image)
{
    struct bo_snap_writer *w;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_snap_writer_new(dedup, BO_CODEC_ZSTD, 0, &w), BO_OK);
    int rc = bo_store_export(st, w, 12345, &err);
    if (rc != BO_OK) {
        bo_snap_writer_free(w);
        fail_msg("export: %s", bo_err_msg(&err, rc));
    }
    rc = bo_snap_writer_finish(w, image, NULL, &err);
    bo_snap_writer_free(w);
    if (rc != BO_OK) {
        fail_msg("finish: %s", bo_err_msg(&err, rc));
    }
}

static uint64_t count_on_host(struct bo_store *st, const char *host)
{
    const char *hosts[] = {host};
    struct bo_task_query q = {.hosts = hosts, .n_hosts = 1};
    return count_q(st, &q);
}

/* Tasks keep their host as an id into `hosts`: queries by host name after a
 * restore (fresh file and in place) and after tasks move between hosts. */
static void test_hosts_by_id(void **state)
{
    (void)state;
    struct bo_store *a = open_store("hosts-a.db");
    Bo__Transaction *t = txn_new();
    char id[32];
    for (int i = 0; i < 30; i++) {
        char host[32];
        snprintf(id, sizeof(id), "t-%d", i);
        snprintf(host, sizeof(host), "h-%d", i % 3);
        txn_save_task(t, mk_task(id, mk_config("r", "e", "j", 0, false), i,
                                 BO__SCHEDULE_STATUS__RUNNING, i == 29 ? NULL : host));
    }
    apply_ok(a, t, 1);
    assert_int_equal(count_on_host(a, "h-0"), 10);
    assert_int_equal(count_on_host(a, "h-2"), 9);
    assert_int_equal(count_on_host(a, ""), 1);
    assert_int_equal(count_on_host(a, "nowhere"), 0);
    struct bo_buf image = BO_BUF_INIT;
    export_image(a, true, &image);

    for (int in_place = 0; in_place <= 1; in_place++) {
        struct bo_store *b = open_store(in_place ? "hosts-c.db" : "hosts-b.db");
        t = txn_new();
        txn_save_task(t, mk_task("other", mk_config("z", "z", "z", 0, false), 0,
                                 BO__SCHEDULE_STATUS__RUNNING, "h-1"));
        apply_ok(b, t, 1);
        struct bo_store_view *view = NULL;
        struct bo_err err = BO_ERR_INIT;
        if (in_place) {
            assert_int_equal(bo_store_view_open(b, &view, &err), BO_OK);
        }
        int rc = bo_store_restore(b, image.data, image.len, 2, &err);
        if (rc != BO_OK) {
            fail_msg("restore: %s", bo_err_msg(&err, rc));
        }
        if (view != NULL) {
            bo_store_view_close(view);
        }
        assert_true(digest_of(b) == digest_of(a));
        assert_int_equal(count_on_host(b, "h-1"), 10);
        assert_int_equal(count_on_host(b, ""), 1);

        /* Moves: to a known host, to a new one, off every host. */
        t = txn_new();
        txn_save_task(t, mk_task("t-0", mk_config("r", "e", "j", 0, false), 0,
                                 BO__SCHEDULE_STATUS__RUNNING, "h-1"));
        txn_save_task(t, mk_task("t-3", mk_config("r", "e", "j", 0, false), 3,
                                 BO__SCHEDULE_STATUS__RUNNING, "h-new"));
        txn_save_task(t, mk_task("t-6", mk_config("r", "e", "j", 0, false), 6,
                                 BO__SCHEDULE_STATUS__RUNNING, NULL));
        apply_ok(b, t, 3);
        assert_int_equal(count_on_host(b, "h-0"), 7);
        assert_int_equal(count_on_host(b, "h-1"), 11);
        assert_int_equal(count_on_host(b, "h-new"), 1);
        assert_int_equal(count_on_host(b, ""), 2);
        const char *hosts[] = {"h-new", "h-1", "nowhere"};
        struct bo_task_query q = {.hosts = hosts, .n_hosts = 3, .job_name = "j"};
        struct bo_task_list l;
        query(b, &q, &l);
        assert_int_equal(l.n, 12);
        for (size_t i = 0; i < l.n; i++) {
            const char *h = l.tasks[i]->assigned_task->slave_host;
            assert_true(strcmp(h, "h-new") == 0 || strcmp(h, "h-1") == 0);
        }
        bo_task_list_release(&l);
        bo_store_close(b);
    }
    bo_buf_release(&image);
    bo_store_close(a);
}

static bool file_exists(const char *name);

/* A restore into a fresh file inserts on a thread of its own, a chunk of
 * 1,024 tasks at a time, and numbers hosts as it meets them. Sizes around
 * the chunks (and the pipe of three): the restored store equals the source,
 * hosts first met in any chunk are found by name, and new hosts keep
 * coming after the restore. */
static void test_restore_chunks(void **state)
{
    (void)state;
    const int sizes[] = {1023, 1024, 1025, 3 * 1024 + 7};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        int n = sizes[k];
        struct bo_store *a = open_store("chunks-a.db");
        Bo__Transaction *t = txn_new();
        for (int i = 0; i < n; i++) {
            char id[32], host[32];
            snprintf(id, sizeof(id), "c-%d", i);
            snprintf(host, sizeof(host), "h-%d", i / 50);
            txn_save_task(t, mk_task(id, mk_config("r", "e", i % 2 ? "odd" : "even", 0, false), i,
                                     BO__SCHEDULE_STATUS__RUNNING, host));
        }
        apply_ok(a, t, 1);
        struct bo_buf image = BO_BUF_INIT;
        export_image(a, true, &image);
        struct bo_store *b = open_store("chunks-b.db");
        struct bo_err err = BO_ERR_INIT;
        int rc = bo_store_restore(b, image.data, image.len, 2, &err);
        if (rc != BO_OK) {
            fail_msg("restore of %d: %s", n, bo_err_msg(&err, rc));
        }
        assert_true(digest_of(b) == digest_of(a));
        assert_int_equal(counts_of(b).tasks, n);
        assert_int_equal(count_on_host(b, "h-0"), 50);
        char last[32];
        snprintf(last, sizeof(last), "h-%d", (n - 1) / 50);
        assert_int_equal(count_on_host(b, last), (n - 1) % 50 + 1);
        t = txn_new();
        txn_save_task(t, mk_task("c-0", mk_config("r", "e", "even", 0, false), 0,
                                 BO__SCHEDULE_STATUS__RUNNING, "h-after"));
        apply_ok(b, t, 3);
        assert_int_equal(count_on_host(b, "h-after"), 1);
        assert_int_equal(count_on_host(b, "h-0"), 49);
        bo_buf_release(&image);
        bo_store_close(b);
        bo_store_close(a);
    }
}

/* An image of `n` tasks on hosts of 50 tasks each; the last task repeats
 * the id of task `dup` (if >= 0), task `bad` (if >= 0) has a status no store
 * knows, each task's event message is `pad` bytes. */
static void image_of(int n, int dup, int bad, size_t pad, struct bo_buf *image)
{
    struct bo_snap_writer *w = NULL;
    assert_int_equal(bo_snap_writer_new(true, BO_CODEC_ZSTD, 0, &w), BO_OK);
    struct bo_buf cfg = BO_BUF_INIT, part = BO_BUF_INIT;
    char *msg = bo_calloc(pad + 1, 1);
    for (size_t i = 0; i < pad; i++) {
        msg[i] = (char)('a' + (i * 7 + i / 26) % 26);
    }
    uint32_t ci = 0;
    for (int i = 0; i < n; i++) {
        char id[32], host[32];
        snprintf(id, sizeof(id), "p-%d", dup >= 0 && i == n - 1 ? dup : i);
        snprintf(host, sizeof(host), "h-%d", i / 50);
        Bo__ScheduledTask *t =
            mk_task(id, mk_config("r", "e", "j", 0, false), i,
                    i == bad ? (Bo__ScheduleStatus)99 : BO__SCHEDULE_STATUS__RUNNING, host);
        if (pad > 0) {
            bo_free(t->task_events[0]->message);
            t->task_events[0]->message = bo_strdup(msg);
        }
        cfg.len = 0;
        part.len = 0;
        assert_int_equal(bo_snap_split_task(t, &cfg, &part), BO_OK);
        if (i == 0) {
            assert_int_equal(bo_snap_writer_add_config(w, cfg.data, cfg.len, &ci), BO_OK);
        }
        assert_int_equal(bo_snap_writer_add_task(w, ci, part.data, part.len), BO_OK);
        protobuf_c_message_free_unpacked(&t->base, NULL);
    }
    Bo__Snapshot rest = BO__SNAPSHOT__INIT;
    assert_int_equal(bo_snap_writer_set_rest(w, &rest), BO_OK);
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_snap_writer_finish(w, image, NULL, &err), BO_OK);
    bo_snap_writer_free(w);
    bo_free(msg);
    bo_buf_release(&cfg);
    bo_buf_release(&part);
}

/* A restore that fails while its inserter runs (a bad task found by the
 * walk, or writes the disk refuses to the inserter) stops both threads,
 * reports the cause and keeps the previous state. */
static void test_restore_fails_mid_pipe(void **state)
{
    (void)state;
    struct bo_buf image = BO_BUF_INIT;
    image_of(5000, -1, 3500, 0, &image);
    struct bo_store *b = open_store("midpipe.db");
    Bo__Transaction *t = txn_new();
    txn_save_task(t, mk_task("keep", mk_config("z", "z", "z", 0, false), 0,
                             BO__SCHEDULE_STATUS__RUNNING, "h-1"));
    apply_ok(b, t, 1);
    uint64_t before = digest_of(b);
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_store_restore(b, image.data, image.len, 2, &err), BO_ECORRUPT);
    assert_non_null(strstr(err.msg, "snapshot task 3500: unknown status"));
    assert_true(digest_of(b) == before);
    assert_false(file_exists("midpipe.db.restore"));
    bo_buf_release(&image);

    /* 40,000 tasks of 2 KB each cannot fit under a 4 MB file size limit:
     * they outgrow the restore's 64 MiB cache, so the inserter's writes
     * fail long before the index builds. */
    image_of(40000, -1, -1, 2048, &image);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 4 << 20;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = bo_store_restore(b, image.data, image.len, 3, &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_not_equal(rc, BO_OK);
    assert_int_equal(rc, BO_EIO);
    assert_true(strstr(err.msg, "store task bodies") != NULL ||
                strstr(err.msg, "insert task") != NULL);
    assert_true(digest_of(b) == before);
    assert_int_equal(bo_store_applied_index(b), 1);
    assert_false(file_exists("midpipe.db.restore"));
    /* The same image restores once the disk takes it. */
    rc = bo_store_restore(b, image.data, image.len, 3, &err);
    if (rc != BO_OK) {
        fail_msg("restore: %s", bo_err_msg(&err, rc));
    }
    assert_int_equal(counts_of(b).tasks, 40000);
    assert_int_equal(count_on_host(b, "h-399"), 50);
    bo_buf_release(&image);
    bo_store_close(b);
}

/* A task id twice in an image is refused, in a fresh file or in place, and
 * the previous state stays. Sizes around the restore's insert batch. */
static void test_restore_duplicate_task_ids(void **state)
{
    (void)state;
    const int sizes[][2] = {{2, 0}, {17, 3}, {65, 3}, {130, 128}};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        struct bo_buf image = BO_BUF_INIT;
        image_of(sizes[k][0], sizes[k][1], -1, 0, &image);
        for (int in_place = 0; in_place <= 1; in_place++) {
            struct bo_store *b = open_store("dup.db");
            Bo__Transaction *t = txn_new();
            txn_save_task(t, mk_task("keep", mk_config("z", "z", "z", 0, false), 0,
                                     BO__SCHEDULE_STATUS__RUNNING, "h-1"));
            apply_ok(b, t, 1);
            uint64_t before = digest_of(b);
            struct bo_store_view *view = NULL;
            struct bo_err err = BO_ERR_INIT;
            if (in_place) {
                assert_int_equal(bo_store_view_open(b, &view, &err), BO_OK);
            }
            assert_int_equal(bo_store_restore(b, image.data, image.len, 2, &err), BO_ECORRUPT);
            assert_non_null(strstr(err.msg, "duplicate task ids"));
            if (view != NULL) {
                bo_store_view_close(view);
            }
            assert_true(digest_of(b) == before);
            assert_int_equal(bo_store_applied_index(b), 1);
            assert_int_equal(count_on_host(b, "h-1"), 1);
            bo_store_close(b);
        }
        bo_buf_release(&image);
    }
    struct bo_buf image = BO_BUF_INIT;
    image_of(40, 39, -1, 0, &image); /* the last task is itself: no repeat */
    struct bo_store *b = open_store("dup.db");
    struct bo_err err = BO_ERR_INIT;
    int rc = bo_store_restore(b, image.data, image.len, 2, &err);
    if (rc != BO_OK) {
        fail_msg("restore: %s", bo_err_msg(&err, rc));
    }
    assert_int_equal(counts_of(b).tasks, 40);
    assert_int_equal(count_on_host(b, "h-0"), 40);
    bo_store_close(b);
    bo_buf_release(&image);
}

static void test_export_restore(void **state)
{
    (void)state;
    struct bo_store *a = open_store("export-a.db");
    load_workload(a, 0);
    uint64_t da = digest_of(a);
    for (int dedup = 1; dedup >= 0; dedup--) {
        struct bo_buf image = BO_BUF_INIT;
        export_image(a, dedup, &image);

        /* Into a store that has other content: it is replaced. */
        struct bo_store *b = open_store("export-b.db");
        Bo__Transaction *t = txn_new();
        txn_save_quota(t, "other", 5);
        txn_save_task(t, mk_task("zzz", mk_config("z", "z", "z", 0, false), 0,
                                 BO__SCHEDULE_STATUS__RUNNING, "h"));
        apply_ok(b, t, 1);
        struct bo_err err = BO_ERR_INIT;
        int rc = bo_store_restore(b, image.data, image.len, 3, &err);
        if (rc != BO_OK) {
            fail_msg("restore: %s", bo_err_msg(&err, rc));
        }
        assert_int_equal(bo_store_applied_index(b), 3);
        assert_true(digest_of(b) == da);
        struct bo_buf ea = BO_BUF_INIT, eb = BO_BUF_INIT;
        encode_all(a, &ea);
        encode_all(b, &eb);
        assert_int_equal(ea.len, eb.len);
        assert_memory_equal(ea.data, eb.data, ea.len);
        bo_buf_release(&ea);
        bo_buf_release(&eb);

        /* The restored store goes on applying like the original. */
        t = txn_new();
        txn_update_event(t, "web", "u1", BO__JOB_UPDATE_STATUS__UPDATE_ROLLED_FORWARD, 900);
        txn_save_task(t, mk_task("web-9", mk_config("www", "prod", "web", 0, true), 9,
                                 BO__SCHEDULE_STATUS__PENDING, NULL));
        apply_ok(b, t, 4);
        assert_int_equal(counts_of(b).configs, 5);

        /* A corrupt image keeps the previous state. */
        uint64_t db = digest_of(b);
        image.data[image.len / 2] ^= 0xff;
        assert_int_equal(bo_store_restore(b, image.data, image.len, 9, &err), BO_ECORRUPT);
        assert_int_equal(bo_store_applied_index(b), 4);
        assert_true(digest_of(b) == db);

        /* A snapshot as a log entry (the image's payload) replaces state too. */
        image.data[image.len / 2] ^= 0xff;
        rc = bo_store_apply_entry(b, image.data + BO_SNAP_HEADER_SIZE,
                                  image.len - BO_SNAP_HEADER_SIZE, 10, &err);
        if (rc != BO_OK) {
            fail_msg("apply snapshot entry: %s", bo_err_msg(&err, rc));
        }
        assert_int_equal(bo_store_applied_index(b), 10);
        assert_true(digest_of(b) == da);
        bo_store_close(b);
        bo_buf_release(&image);
    }
    bo_store_close(a);
}

static bool file_exists(const char *name)
{
    char p[512];
    path_in_dir(p, sizeof(p), name);
    return access(p, F_OK) == 0;
}

/* The restore's file dance: the old file is moved aside, the new one renamed
 * in, nothing is left behind; a crash between the renames is repaired by the
 * next open; a file from the layout with bodies in `tasks` is refused. */
static void test_restore_files(void **state)
{
    (void)state;
    struct bo_store *a = open_store("files-a.db");
    load_workload(a, 0);
    uint64_t da = digest_of(a);
    struct bo_buf image = BO_BUF_INIT;
    export_image(a, true, &image);
    bo_store_close(a);

    struct bo_store *b = open_store("files-b.db");
    Bo__Transaction *t = txn_new();
    txn_save_quota(t, "other", 5);
    apply_ok(b, t, 1);
    struct bo_err err = BO_ERR_INIT;
    int rc = bo_store_restore(b, image.data, image.len, 7, &err);
    if (rc != BO_OK) {
        fail_msg("restore: %s", bo_err_msg(&err, rc));
    }
    assert_true(digest_of(b) == da);
    assert_true(file_exists("files-b.db"));
    assert_false(file_exists("files-b.db.old"));
    assert_false(file_exists("files-b.db.restore"));
    /* Twice: the second restore moves a restored file aside. */
    rc = bo_store_restore(b, image.data, image.len, 8, &err);
    if (rc != BO_OK) {
        fail_msg("restore again: %s", bo_err_msg(&err, rc));
    }
    assert_true(digest_of(b) == da);
    assert_false(file_exists("files-b.db.old"));
    bo_store_close(b);

    /* A crash after the first rename: only ".old" holds the state. */
    char p[512], old[512];
    path_in_dir(p, sizeof(p), "files-b.db");
    path_in_dir(old, sizeof(old), "files-b.db.old");
    assert_int_equal(rename(p, old), 0);
    assert_int_equal(bo_store_open(p, false, &b, &err), BO_OK);
    assert_int_equal(bo_store_applied_index(b), 8);
    assert_true(digest_of(b) == da);
    assert_false(file_exists("files-b.db.old"));
    bo_store_close(b);
    /* With `fresh` a leftover ".old" is only removed. */
    assert_int_equal(rename(p, old), 0);
    assert_int_equal(bo_store_open(p, true, &b, &err), BO_OK);
    assert_int_equal(counts_of(b).tasks, 0);
    assert_false(file_exists("files-b.db.old"));
    bo_store_close(b);

    /* The layout before task_bodies. */
    char legacy[512];
    path_in_dir(legacy, sizeof(legacy), "legacy.db");
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(legacy, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE tasks(id INTEGER PRIMARY KEY, task_id TEXT NOT NULL,"
                     " job_id INTEGER NOT NULL, instance_id INTEGER NOT NULL,"
                     " status INTEGER NOT NULL, host TEXT NOT NULL,"
                     " config_id INTEGER NOT NULL, body BLOB NOT NULL);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(bo_store_open(legacy, false, &b, &err), BO_EVERSION);
    bo_buf_release(&image);
}

/* A writer fed configs and tasks interleaved (the streaming zstd writer keeps
 * arrival order) restores to the state the same tasks reach through the log;
 * past 8 MB, so the compressor runs on its worker threads. */
static void test_restore_interleaved(void **state)
{
    (void)state;
    enum { N_TASKS = 70000, N_CFG = 7, BATCH = 1000 };
    struct bo_store *a = open_store("inter-a.db");
    struct bo_snap_writer *w;
    assert_int_equal(bo_snap_writer_new(true, BO_CODEC_ZSTD, 0, &w), BO_OK);
    uint32_t index[N_CFG];
    bool added[N_CFG] = {false};
    struct bo_buf cfg = BO_BUF_INIT, part = BO_BUF_INIT;
    char id[96], host[48];
    Bo__Transaction *t = NULL;
    for (int i = 0; i < N_TASKS; i++) {
        int c = (i * 5 + i / 3) % N_CFG;
        snprintf(id, sizeof(id), "1697226027560-role-prod-job-%05d-f30f1e31-8359-484b-8b47-1531",
                 i);
        snprintf(host, sizeof(host), "atla-r441-h%05d.example.com", i % 97);
        Bo__ScheduledTask *task = mk_task(id, mk_config("role", "prod", "job", c, i % 2 == 0),
                                          i / N_CFG, BO__SCHEDULE_STATUS__RUNNING, host);
        cfg.len = 0;
        part.len = 0;
        assert_int_equal(bo_snap_split_task(task, &cfg, &part), BO_OK);
        if (!added[c]) {
            assert_int_equal(bo_snap_writer_add_config(w, cfg.data, cfg.len, &index[c]), BO_OK);
            added[c] = true;
        }
        assert_int_equal(bo_snap_writer_add_task(w, index[c], part.data, part.len), BO_OK);
        if (t == NULL) {
            t = txn_new();
        }
        txn_save_task(t, task);
        if ((i + 1) % BATCH == 0) {
            apply_ok(a, t, (uint64_t)(i + 1) / BATCH);
            t = NULL;
        }
    }
    struct bo_buf image = BO_BUF_INIT;
    struct bo_snap_stats ws;
    struct bo_err err = BO_ERR_INIT;
    int rc = bo_snap_writer_finish(w, &image, &ws, &err);
    bo_snap_writer_free(w);
    if (rc != BO_OK) {
        fail_msg("finish: %s", bo_err_msg(&err, rc));
    }
    assert_int_equal(ws.tasks, N_TASKS);
    assert_int_equal(ws.configs, N_CFG);
    assert_true(ws.dedup_bytes > ((size_t)8 << 20));
    struct bo_snap_stats rs;
    assert_int_equal(bo_snap_read(image.data, image.len, NULL, &rs, &err), BO_OK);
    assert_int_equal(rs.tasks, N_TASKS);
    assert_true(rs.dedup_bytes == ws.dedup_bytes);
    assert_true(rs.raw_bytes == ws.raw_bytes);

    struct bo_store *b = open_store("inter-b.db");
    rc = bo_store_restore(b, image.data, image.len, N_TASKS, &err);
    if (rc != BO_OK) {
        fail_msg("restore: %s", bo_err_msg(&err, rc));
    }
    assert_true(digest_of(b) == digest_of(a));
    struct bo_store_counts cb = counts_of(b);
    assert_int_equal(cb.tasks, N_TASKS);
    assert_int_equal(cb.configs, N_CFG);

    /* And the restored store exports what it holds, configs first. */
    struct bo_buf again = BO_BUF_INIT;
    export_image(b, true, &again);
    struct bo_store *c = open_store("inter-c.db");
    rc = bo_store_restore(c, again.data, again.len, 1, &err);
    if (rc != BO_OK) {
        fail_msg("restore again: %s", bo_err_msg(&err, rc));
    }
    assert_true(digest_of(c) == digest_of(a));
    bo_store_close(c);
    bo_store_close(b);
    bo_store_close(a);
    bo_buf_release(&again);
    bo_buf_release(&image);
    bo_buf_release(&cfg);
    bo_buf_release(&part);
}

static void test_view_consistency(void **state)
{
    (void)state;
    struct bo_store *a = open_store("view-a.db");
    load_workload(a, 0);
    uint64_t before = digest_of(a);
    struct bo_err err = BO_ERR_INIT;
    struct bo_store_view *v;
    assert_int_equal(bo_store_view_open(a, &v, &err), BO_OK);
    assert_int_equal(bo_store_view_index(v), 3);

    /* Writes go on while the view is open; a bad restore changes nothing. */
    Bo__Transaction *t = txn_new();
    const char *ids[] = {"web-0", "web-1", "web-2"};
    txn_remove_tasks(t, ids, 3);
    txn_save_quota(t, "late", 1);
    apply_ok(a, t, 4);
    assert_int_equal(counts_of(a).tasks, 5);
    uint64_t after_write = digest_of(a);
    assert_int_equal(bo_store_restore(a, (const uint8_t *)"x", 1, 5, &err), BO_ECORRUPT);
    assert_true(digest_of(a) == after_write);

    struct bo_snap_writer *w;
    assert_int_equal(bo_snap_writer_new(true, BO_CODEC_ZSTD, 0, &w), BO_OK);
    assert_int_equal(bo_store_view_export(v, w, 1, &err), BO_OK);
    struct bo_buf image = BO_BUF_INIT;
    struct bo_snap_stats stats;
    assert_int_equal(bo_snap_writer_finish(w, &image, &stats, &err), BO_OK);
    bo_snap_writer_free(w);
    bo_store_view_close(v);
    assert_int_equal(stats.tasks, 8);
    assert_int_equal(stats.configs, 3); /* configs used by tasks only */

    struct bo_store *b = open_store("view-b.db");
    assert_int_equal(bo_store_restore(b, image.data, image.len, 3, &err), BO_OK);
    assert_true(digest_of(b) == before);

    /* A restore while a view is open (a recovery commit arriving during a
     * snapshot) replaces the state in place; the view keeps its own. */
    struct bo_store_view *v2;
    assert_int_equal(bo_store_view_open(a, &v2, &err), BO_OK);
    assert_int_equal(bo_store_restore(a, image.data, image.len, 6, &err), BO_OK);
    assert_true(digest_of(a) == before);
    assert_int_equal(counts_of(a).tasks, 8);
    assert_int_equal(bo_store_applied_index(a), 6);
    assert_int_equal(bo_snap_writer_new(true, BO_CODEC_ZSTD, 0, &w), BO_OK);
    assert_int_equal(bo_store_view_export(v2, w, 1, &err), BO_OK);
    struct bo_buf image2 = BO_BUF_INIT;
    assert_int_equal(bo_snap_writer_finish(w, &image2, &stats, &err), BO_OK);
    bo_snap_writer_free(w);
    bo_store_view_close(v2);
    struct bo_store *c = open_store("view-c.db");
    assert_int_equal(bo_store_restore(c, image2.data, image2.len, 4, &err), BO_OK);
    assert_true(digest_of(c) == after_write);
    /* And the in-place state keeps working: writes apply on top of it. */
    Bo__Transaction *t2 = txn_new();
    txn_save_quota(t2, "later", 2);
    apply_ok(a, t2, 7);
    bo_buf_release(&image2);
    bo_store_close(c);
    bo_buf_release(&image);
    bo_store_close(b);
    bo_store_close(a);
}

static void test_log_entries(void **state)
{
    (void)state;
    struct bo_store *st = open_store("entries.db");
    load_workload(st, 0);
    uint64_t before = digest_of(st);
    struct bo_err err = BO_ERR_INIT;

    /* Garbage, a truncated message, an empty entry: nothing changes. */
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    int rc = bo_store_apply_entry(st, garbage, sizeof(garbage), 4, &err);
    assert_true(rc == BO_ECORRUPT || rc == BO_EINVAL);
    const uint8_t truncated[] = {0x12, 0x40, 0x0a};
    rc = bo_store_apply_entry(st, truncated, sizeof(truncated), 4, &err);
    assert_int_equal(rc, BO_ECORRUPT);
    rc = bo_store_apply_entry(st, (const uint8_t *)"", 0, 4, &err);
    assert_int_equal(rc, BO_ECORRUPT);
    const uint8_t bad_snapshot[] = {0x22, 0x02, 0xff, 0xff};
    rc = bo_store_apply_entry(st, bad_snapshot, sizeof(bad_snapshot), 4, &err);
    assert_int_equal(rc, BO_ECORRUPT);
    assert_int_equal(bo_store_applied_index(st), 3);
    assert_true(digest_of(st) == before);

    /* A noop moves the index only. */
    Bo__LogEntry e = BO__LOG_ENTRY__INIT;
    e.entry_case = BO__LOG_ENTRY__ENTRY_NOOP;
    e.noop = true;
    uint8_t buf[64];
    size_t len = bo__log_entry__pack(&e, buf);
    assert_int_equal(bo_store_apply_entry(st, buf, len, 4, &err), BO_OK);
    assert_int_equal(bo_store_applied_index(st), 4);
    assert_true(digest_of(st) == before);

    /* A transaction entry. */
    Bo__Transaction *t = txn_new();
    txn_save_quota(t, "entry", 77);
    e.entry_case = BO__LOG_ENTRY__ENTRY_TRANSACTION;
    e.transaction = t;
    struct bo_buf b = BO_BUF_INIT;
    assert_int_equal(bo_buf_reserve(&b, bo__log_entry__get_packed_size(&e)), BO_OK);
    b.len = bo__log_entry__pack(&e, b.data);
    free_msg(t);
    assert_int_equal(bo_store_apply_entry(st, b.data, b.len, 5, &err), BO_OK);
    bo_buf_release(&b);
    assert_int_equal(bo_store_applied_index(st), 5);
    Bo__ResourceAggregate *q;
    assert_int_equal(bo_store_get_quota(st, "entry", &q, &err), BO_OK);
    assert_int_equal(q->resources[0]->ram_mb, 77);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    bo_store_close(st);
}

/* `t` as the bytes of a transaction log entry. */
static void entry_of(const Bo__Transaction *t, struct bo_buf *out)
{
    Bo__LogEntry e = BO__LOG_ENTRY__INIT;
    e.entry_case = BO__LOG_ENTRY__ENTRY_TRANSACTION;
    e.transaction = (Bo__Transaction *)t;
    out->len = 0;
    assert_int_equal(bo_buf_reserve(out, bo__log_entry__get_packed_size(&e)), BO_OK);
    out->len = bo__log_entry__pack(&e, out->data);
}

/* Apply `t` as a log entry to `a` and as it is to `b`, then free it: the
 * same result, the same state. */
static void apply_both(struct bo_store *a, struct bo_store *b, Bo__Transaction *t, uint64_t index,
                       int want)
{
    struct bo_buf e = BO_BUF_INIT;
    entry_of(t, &e);
    struct bo_err err = BO_ERR_INIT;
    int rc = bo_store_apply_entry(a, e.data, e.len, index, &err);
    if (rc != want) {
        fail_msg("entry %llu: want %s, got %s: %s", (unsigned long long)index, bo_errname(want),
                 bo_errname(rc), bo_err_msg(&err, rc));
    }
    bo_buf_release(&e);
    apply_expect(b, t, index, want, &err);
    assert_true(digest_of(a) == digest_of(b));
}

/* A transaction entry saving one task given as the bytes `task` (which may
 * repeat fields, as protobuf allows), built by hand. */
static void entry_with_task(const struct bo_buf *task, struct bo_buf *out)
{
    struct bo_buf tasks = BO_BUF_INIT, op = BO_BUF_INIT, txn = BO_BUF_INIT;
    assert_int_equal(bo_pb_put_bytes(&tasks, 1, task->data, task->len), BO_OK); /* SaveTasks */
    assert_int_equal(bo_pb_put_bytes(&op, 1, tasks.data, tasks.len), BO_OK);    /* Op */
    assert_int_equal(bo_pb_put_bytes(&txn, 1, op.data, op.len), BO_OK);         /* Transaction */
    assert_int_equal(bo_pb_put_uint(&txn, 2, BO_SCHEMA_VERSION), BO_OK);
    out->len = 0;
    assert_int_equal(bo_pb_put_bytes(out, 2, txn.data, txn.len), BO_OK); /* LogEntry */
    bo_buf_release(&tasks);
    bo_buf_release(&op);
    bo_buf_release(&txn);
}

static void pack_append(struct bo_buf *b, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    assert_int_equal(bo_buf_reserve(b, n), BO_OK);
    b->len += protobuf_c_message_pack(m, b->data + b->len);
}

/* Configs in log entries are looked up by their bytes before they are
 * decoded (entrydec.h). A store fed entries ends where one fed the same
 * transactions as structs does: through configs it knows, configs sent out
 * of canonical order, a known config whose row goes earlier in the same
 * entry, an invalid job key, a config sent in two parts, and one that does
 * not decode. */
static void test_entry_configs(void **state)
{
    (void)state;
    struct bo_store *a = open_store("entry-a.db");
    struct bo_store *b = open_store("entry-b.db");
    uint64_t index = 0;
    struct bo_err err = BO_ERR_INIT;

    /* One config, one task per entry: the second is known by its bytes. */
    for (int i = 0; i < 2; i++) {
        char id[16];
        snprintf(id, sizeof(id), "web-%d", i);
        Bo__Transaction *t = txn_new();
        txn_save_task(t, mk_task(id, mk_config("www", "prod", "web", 0, false), i,
                                 BO__SCHEDULE_STATUS__RUNNING, "host-a"));
        apply_both(a, b, t, ++index, BO_OK);
    }
    /* Out of canonical order twice (known by those bytes the second time),
     * then in order: one row. */
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "api-%d", i);
        Bo__Transaction *t = txn_new();
        txn_save_task(t, mk_task(id, mk_config("www", "prod", "api", 1, i < 2), i,
                                 BO__SCHEDULE_STATUS__PENDING, NULL));
        apply_both(a, b, t, ++index, BO_OK);
    }
    assert_int_equal(counts_of(a).configs, 2);

    /* The entry removes the last tasks of the known config, so its row goes,
     * then saves a task of it again: the row must come back. */
    Bo__Transaction *t = txn_new();
    const char *ids[] = {"web-0", "web-1"};
    txn_remove_tasks(t, ids, 2);
    txn_save_task(t, mk_task("web-2", mk_config("www", "prod", "web", 0, false), 2,
                             BO__SCHEDULE_STATUS__PENDING, NULL));
    apply_both(a, b, t, ++index, BO_OK);
    assert_int_equal(counts_of(a).configs, 2);
    struct bo_task_query q = {0};
    const char *web2[] = {"web-2"};
    q.task_ids = web2;
    q.n_task_ids = 1;
    struct bo_task_list l = {0};
    query(a, &q, &l);
    assert_int_equal(l.n, 1);
    assert_non_null(l.tasks[0]->assigned_task->task);
    assert_int_equal(l.tasks[0]->assigned_task->task->n_constraints, 2);
    bo_task_list_release(&l);

    /* A known config's bytes with a task that fails validation, and a
     * config whose job key fails it: refused alike. */
    t = txn_new();
    txn_save_task(t, mk_task("web-3", mk_config("www", "prod", "web", 0, false), -1,
                             BO__SCHEDULE_STATUS__PENDING, NULL));
    apply_both(a, b, t, ++index, BO_EINVAL);
    t = txn_new();
    txn_save_task(t, mk_task("web-3", mk_config("", "prod", "web", 0, false), 3,
                             BO__SCHEDULE_STATUS__PENDING, NULL));
    apply_both(a, b, t, index, BO_EINVAL);
    assert_int_equal(bo_store_applied_index(a), index - 1);
    index--;

    /* A config in two parts: protobuf merges them (the second adds
     * metadata), as the generated decoder does for the other store. */
    Bo__ScheduledTask *whole = mk_task("merged-0", mk_config("www", "prod", "merge", 2, false), 0,
                                       BO__SCHEDULE_STATUS__RUNNING, "host-b");
    Bo__TaskConfig extra = BO__TASK_CONFIG__INIT;
    Bo__Metadata md = BO__METADATA__INIT;
    Bo__Metadata *mds[] = {&md};
    md.key = "team";
    md.value = "storage";
    extra.n_metadata = 1;
    extra.metadata = mds;
    Bo__AssignedTask extra_at = BO__ASSIGNED_TASK__INIT;
    extra_at.task = &extra;
    Bo__ScheduledTask extra_st = BO__SCHEDULED_TASK__INIT;
    extra_st.assigned_task = &extra_at;
    struct bo_buf task = BO_BUF_INIT, e = BO_BUF_INIT;
    pack_append(&task, &whole->base);
    pack_append(&task, &extra_st.base);
    free_msg(whole);
    entry_with_task(&task, &e);
    assert_int_equal(bo_store_apply_entry(a, e.data, e.len, ++index, &err), BO_OK);
    Bo__LogEntry *decoded = bo__log_entry__unpack(&test_allocator, e.len, e.data);
    assert_non_null(decoded);
    assert_int_equal(bo_store_apply(b, decoded->transaction, index, &err), BO_OK);
    free_msg(decoded);
    assert_true(digest_of(a) == digest_of(b));
    const char *merged[] = {"merged-0"};
    q.task_ids = merged;
    query(a, &q, &l);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.tasks[0]->assigned_task->task->n_metadata, 1);
    assert_int_equal(l.tasks[0]->assigned_task->task->n_constraints, 2);
    bo_task_list_release(&l);

    /* A config that does not decode: the entry is corrupt, as it is to the
     * generated decoder, and nothing changes. */
    uint64_t before = digest_of(a);
    Bo__AssignedTask bad_at = BO__ASSIGNED_TASK__INIT;
    bad_at.task_id = "bad-0";
    struct bo_buf at = BO_BUF_INIT;
    pack_append(&at, &bad_at.base);
    const uint8_t garbage[] = {0x0a, 0x7f, 0x01};
    assert_int_equal(bo_pb_put_bytes(&at, 4, garbage, sizeof(garbage)), BO_OK);
    task.len = 0;
    assert_int_equal(bo_pb_put_bytes(&task, 1, at.data, at.len), BO_OK);
    entry_with_task(&task, &e);
    assert_null(bo__log_entry__unpack(&test_allocator, e.len, e.data));
    assert_int_equal(bo_store_apply_entry(a, e.data, e.len, index + 1, &err), BO_ECORRUPT);
    assert_int_equal(bo_store_applied_index(a), index);
    assert_true(digest_of(a) == before);

    bo_buf_release(&at);
    bo_buf_release(&task);
    bo_buf_release(&e);
    bo_store_close(a);
    bo_store_close(b);
}

/* ------------------------------------------------------------- bench ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_bench(void **state)
{
    (void)state;
    const char *env = getenv("BO_STORE_BENCH");
    if (env == NULL) {
        skip();
    }
    long n = atol(env);
    struct bo_store *a = open_store("bench-a.db");
    double t0 = now_s();
    enum { BATCH = 1000 };
    uint64_t index = 0;
    for (long i = 0; i < n; i += BATCH) {
        Bo__Transaction *t = txn_new();
        Bo__ScheduledTask *tasks[BATCH];
        long m = n - i < BATCH ? n - i : BATCH;
        for (long j = 0; j < m; j++) {
            char id[64], name[16];
            long k = i + j;
            snprintf(id, sizeof(id), "bench-task-%08ld-abcdef0123456789", k);
            snprintf(name, sizeof(name), "job%ld", k % 20);
            tasks[j] =
                mk_task(id, mk_config("bench", "prod", name, (int)(k % 20), false), (int)(k / 20),
                        BO__SCHEDULE_STATUS__RUNNING, "host-0001.example.com");
        }
        txn_save_tasks(t, tasks, (size_t)m);
        apply_ok(a, t, ++index);
    }
    double t1 = now_s();
    struct bo_buf image = BO_BUF_INIT;
    export_image(a, true, &image);
    double t2 = now_s();
    struct bo_store *b = open_store("bench-b.db");
    struct bo_err err = BO_ERR_INIT;
    int rc = bo_store_restore(b, image.data, image.len, index, &err);
    if (rc != BO_OK) {
        fail_msg("restore: %s", bo_err_msg(&err, rc));
    }
    double t3 = now_s();
    assert_int_equal(counts_of(b).tasks, (uint64_t)n);
    fprintf(stderr,
            "bench: %ld tasks: apply %.2f s (batches of %d), export+zstd %.3f s (%zu bytes),"
            " restore %.3f s\n",
            n, t1 - t0, BATCH, t2 - t1, image.len, t3 - t2);
    double t4 = now_s();
    assert_true(digest_of(a) == digest_of(b));
    fprintf(stderr, "bench: two digests %.3f s\n", now_s() - t4);
    bo_buf_release(&image);
    bo_store_close(b);
    bo_store_close(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_empty),
        cmocka_unit_test(test_tasks_round_trip),
        cmocka_unit_test(test_config_dedup),
        cmocka_unit_test(test_config_canonical_fast_path),
        cmocka_unit_test(test_wal_restarts),
        cmocka_unit_test(test_ckpt_behind),
        cmocka_unit_test(test_group_index),
        cmocka_unit_test(test_host_cache_rollback),
        cmocka_unit_test(test_config_collection),
        cmocka_unit_test(test_rollback),
        cmocka_unit_test(test_task_states),
        cmocka_unit_test(test_tasks_shared),
        cmocka_unit_test(test_task_texts),
        cmocka_unit_test(test_query_one_job),
        cmocka_unit_test(test_state_changes_batched),
        cmocka_unit_test(test_task_counts),
        cmocka_unit_test(test_group_savepoints),
        cmocka_unit_test(test_query_filters),
        cmocka_unit_test(test_summaries),
        cmocka_unit_test(test_config_groups),
        cmocka_unit_test(test_job_updates),
        cmocka_unit_test(test_other_entities),
        cmocka_unit_test(test_replicas_identical),
        cmocka_unit_test(test_export_restore),
        cmocka_unit_test(test_hosts_by_id),
        cmocka_unit_test(test_restore_duplicate_task_ids),
        cmocka_unit_test(test_restore_chunks),
        cmocka_unit_test(test_restore_fails_mid_pipe),
        cmocka_unit_test(test_restore_files),
        cmocka_unit_test(test_restore_interleaved),
        cmocka_unit_test(test_view_consistency),
        cmocka_unit_test(test_log_entries),
        cmocka_unit_test(test_entry_configs),
        cmocka_unit_test(test_bench),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
