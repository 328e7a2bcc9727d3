/*
 * sched.c - the scheduler's machinery: the work queue, batches that become
 * one log transaction each, task transitions with their side effects,
 * placement rounds, deadlines, agents and leadership.
 *
 * Happy path. Every input (an API request, an agent's status update or
 * registration, a deadline that fell due, a cron trigger) becomes a work
 * item on the queue. When no transaction is in flight, the drain step opens
 * a batch, runs queued items against the committed state of the store and
 * collects their ops, then runs a placement round for jobs with pending
 * tasks, and writes the batch as one transaction. When it commits, the
 * items are answered, launch and kill commands are handed to the agents
 * (waking their parked polls), deadlines are armed, and the next drain runs.
 *
 * Consistency. Decisions read the store, which holds only committed state,
 * and one transaction is in flight at a time, so nothing is decided on stale
 * data except within a batch: an item that touches a task or job already
 * touched by an earlier item of the same batch ends the batch and runs first
 * in the next one. The in-memory host index is updated as decisions are
 * made (so one round does not place two tasks into one slot); if a write
 * fails it is rebuilt from the store.
 *
 * Failure modes. A write that fails (no longer leader, disk full) fails the
 * batch's items with its error, drops its commands and deadlines, and
 * rebuilds the in-memory state. Deadlines are lazy: each one re-reads the
 * task when it fires and does nothing if the task moved on. An agent that
 * stops polling has its tasks PARTITIONED after agent_timeout_ms, then LOST
 * per the job's partition policy.
 */
#include "scheduler/sched_int.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"
#include "common/pbjson.h"

#define TICK_MS 250
/* Task saves per batch, roughly: requests are not split, so one creating
 * many tasks may go over. */
#define BATCH_MAX_TASKS 20000

void bo_sched_config_init(struct bo_sched_config *cfg)
{
    *cfg = (struct bo_sched_config){
        .cluster = "devcluster",
        .hostname = "localhost",
        .env_pattern = "^(prod|devel|test|staging[0-9]*)$",
        .transient_timeout_ms = 5 * 60 * 1000,
        .kill_retry_initial_ms = 15 * 1000,
        .kill_retry_max_ms = 5 * 60 * 1000,
        .flapping_threshold_ms = 5 * 60 * 1000,
        .initial_flapping_delay_ms = 30 * 1000,
        .max_flapping_delay_ms = 5 * 60 * 1000,
        .agent_timeout_ms = 15 * 1000,
        .agent_poll_hold_ms = 5 * 1000,
        .history_prune_threshold_ms = 2LL * 24 * 3600 * 1000,
        .history_min_retention_ms = 3600 * 1000,
        .history_max_per_job = 100,
        .max_tasks_per_job = 4000,
        .scheduling_batch = 10000,
        .unplaced_backoff_ms = 1000,
        .task_text_cache_bytes = 64u << 20,
        .cron_utc = true,
    };
}

int64_t sched_now_ms(const struct bo_sched *s)
{
    (void)s;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void job_key_str(const Bo__JobKey *k, char *out, size_t n)
{
    snprintf(out, n, "%s/%s/%s", k != NULL ? k->role : "", k != NULL ? k->environment : "",
             k != NULL ? k->name : "");
}

void work_fail(struct sched_work *w, int status, const char *msg)
{
    w->status = status;
    bo_free(w->msg);
    w->msg = bo_strdup(msg != NULL ? msg : bo_strerror(status));
}

static void work_free(struct sched_work *w)
{
    json_decref(w->args);
    json_decref(w->result);
    bo_free(w->msg);
    bo_free(w->dl.id);
    bo_free(w);
}

static void work_reply(struct sched_work *w)
{
    if (w->cb != NULL) {
        w->cb(w->data, w->status, w->msg, w->result);
    }
    work_free(w);
}

/* ---------------------------------------------------------------- batch --- */

static int grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) {
        return BO_OK;
    }
    size_t c = *cap == 0 ? 16 : *cap * 2;
    while (c < need) {
        c *= 2;
    }
    void *p = bo_reallocarray(*arr, c, size);
    if (p == NULL) {
        return BO_ENOMEM;
    }
    *arr = p;
    *cap = c;
    return BO_OK;
}

static struct sched_touch *touch_find(const struct sched_batch *b, const char *key)
{
    struct sched_touch *t = NULL;
    HASH_FIND_STR(b->touched, key, t);
    return t;
}

static struct sched_touch *touch_add(struct sched_batch *b, const char *key)
{
    struct sched_touch *t = bo_calloc(1, sizeof(*t));
    if (t == NULL || (t->key = bo_strdup(key)) == NULL) {
        bo_free(t);
        return NULL; /* out of memory: conflicts are then merely undetected */
    }
    HASH_ADD_KEYPTR(hh, b->touched, t->key, strlen(t->key), t);
    return t;
}

bool batch_touched(const struct sched_batch *b, const char *key)
{
    return touch_find(b, key) != NULL;
}

bool batch_touch(struct sched_batch *b, const char *key)
{
    if (batch_touched(b, key)) {
        return false;
    }
    touch_add(b, key);
    return true;
}

int batch_keep_list(struct sched_batch *b, struct bo_task_list *l)
{
    (void)b;
    (void)l;
    return BO_OK;
}

int batch_add_op(struct sched_batch *b, Bo__Op *op)
{
    if (grow((void **)&b->ops, &b->cap_ops, b->n_ops + 1, sizeof(*b->ops)) != BO_OK) {
        return BO_ENOMEM;
    }
    b->ops[b->n_ops++] = op;
    return BO_OK;
}

int batch_own_msg(struct sched_batch *b, ProtobufCMessage *m)
{
    if (grow((void **)&b->msgs, &b->cap_msgs, b->n_msgs + 1, sizeof(*b->msgs)) != BO_OK) {
        return BO_ENOMEM;
    }
    b->msgs[b->n_msgs++] = m;
    return BO_OK;
}

void *batch_op(struct sched_batch *b, Bo__Op__OpCase kind)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&bo__op__descriptor, (unsigned)kind);
    assert(f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE);
    const ProtobufCMessageDescriptor *d = f->descriptor;
    Bo__Op *op = bo_calloc(1, sizeof(*op));
    ProtobufCMessage *body = bo_calloc(1, d->sizeof_message);
    if (op == NULL || body == NULL || batch_add_op(b, op) != BO_OK) {
        bo_free(op);
        bo_free(body);
        return NULL;
    }
    bo__op__init(op);
    protobuf_c_message_init(d, body);
    op->op_case = kind;
    *(ProtobufCMessage **)((char *)op + f->offset) = body;
    return body;
}

/* Saves go into one op as long as nothing else comes between: SaveTasks for
 * tasks created in this batch (their config goes to the log once), and
 * SaveTaskStates for tasks the store has (config left out of the entry). */
int batch_save_task(struct sched_batch *b, Bo__ScheduledTask *t)
{
    const char *id = t->assigned_task->task_id;
    struct sched_touch *tt = touch_find(b, id);
    if (tt == NULL) {
        tt = touch_add(b, id);
    }
    bool created = tt != NULL && tt->created;
    int want = created ? BO__OP__OP_SAVE_TASKS : BO__OP__OP_SAVE_TASK_STATES;
    Bo__Op *last = b->n_ops > 0 ? b->ops[b->n_ops - 1] : NULL;
    if (last == NULL || (int)last->op_case != want) {
        if (batch_op(b, (Bo__Op__OpCase)want) == NULL) {
            return BO_ENOMEM;
        }
        last = b->ops[b->n_ops - 1];
        b->cap_save = 0;
    }
    Bo__ScheduledTask ***tasks =
        created ? &last->save_tasks->tasks : &last->save_task_states->tasks;
    size_t *n = created ? &last->save_tasks->n_tasks : &last->save_task_states->n_tasks;
    /* The same task saved twice in one op: it is there once, and the later
     * state wins since the op points at the task itself. */
    if (tt != NULL && tt->saved == t && tt->saved_op == last) {
        return BO_OK;
    }
    if (grow((void **)tasks, &b->cap_save, *n + 1, sizeof(**tasks)) != BO_OK) {
        return BO_ENOMEM;
    }
    (*tasks)[(*n)++] = t;
    if (tt != NULL) {
        tt->saved = t;
        tt->saved_op = last;
    }
    b->n_tasks_saved++;
    return BO_OK;
}

int batch_remove_task(struct sched_batch *b, const char *task_id)
{
    Bo__Op *last = b->n_ops > 0 ? b->ops[b->n_ops - 1] : NULL;
    if (last == NULL || last->op_case != BO__OP__OP_REMOVE_TASKS) {
        if (batch_op(b, BO__OP__OP_REMOVE_TASKS) == NULL) {
            return BO_ENOMEM;
        }
        last = b->ops[b->n_ops - 1];
    }
    Bo__RemoveTasks *rt = last->remove_tasks;
    char **v = bo_reallocarray(rt->task_ids, rt->n_task_ids + 1, sizeof(*v));
    if (v == NULL) {
        return BO_ENOMEM;
    }
    rt->task_ids = v;
    if ((v[rt->n_task_ids] = bo_strdup(task_id)) == NULL) {
        return BO_ENOMEM;
    }
    rt->n_task_ids++;
    return BO_OK;
}

int batch_effect(struct sched_batch *b, const char *agent_id, const char *task_id, json_t *cmd,
                 bool launch)
{
    struct sched_effect *e = bo_calloc(1, sizeof(*e));
    if (e == NULL) {
        json_decref(cmd);
        return BO_ENOMEM;
    }
    e->agent_id = bo_strdup(agent_id);
    e->task_id = bo_strdup(task_id);
    e->cmd = cmd; /* owned */
    e->launch = launch;
    if (e->agent_id == NULL || e->task_id == NULL) {
        bo_free(e->agent_id);
        bo_free(e->task_id);
        json_decref(e->cmd);
        bo_free(e);
        return BO_ENOMEM;
    }
    if (b->effects_tail != NULL) {
        b->effects_tail->next = e;
    } else {
        b->effects = e;
    }
    b->effects_tail = e;
    return BO_OK;
}

int batch_deadline(struct sched_batch *b, int64_t at_ms, int kind, const char *id, int status,
                   int attempt)
{
    struct sched_post_dl *d = bo_calloc(1, sizeof(*d));
    if (d == NULL || (d->dl.id = bo_strdup(id)) == NULL) {
        bo_free(d);
        return BO_ENOMEM;
    }
    d->at_ms = at_ms;
    d->kind = kind;
    d->dl.status = status;
    d->dl.attempt = attempt;
    d->next = b->dls;
    b->dls = d;
    return BO_OK;
}

int sched_query(struct bo_sched *s, struct sched_batch *b, const struct bo_task_query *q,
                bool with_configs, struct bo_task_list **out, struct bo_err *err)
{
    if (grow((void **)&b->lists, &b->cap_lists, b->n_lists + 1, sizeof(*b->lists)) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    struct bo_task_list *l = &b->lists[b->n_lists];
    *l = (struct bo_task_list){0};
    /* A batch runs thousands of one-task queries (status updates) over a
     * few jobs: their configs are decoded once for the batch. */
    int rc = with_configs ? bo_store_query_tasks_shared(s->store, q, &b->configs, l, err)
                          : bo_store_query_tasks(s->store, q, false, l, err);
    if (rc != BO_OK) {
        return rc;
    }
    b->n_lists++;
    *out = l;
    return BO_OK;
}

static void free_owned_task(Bo__ScheduledTask *t)
{
    if (t->assigned_task != NULL) {
        t->assigned_task->task = NULL; /* borrowed */
    }
    bo__scheduled_task__free_unpacked(t, NULL);
}

static void batch_free(struct sched_batch *b)
{
    if (b == NULL) {
        return;
    }
    for (size_t i = 0; i < b->n_ops; i++) {
        Bo__Op *op = b->ops[i];
        if (op->op_case == BO__OP__OP_SAVE_TASKS) {
            /* the tasks belong to lists or to `owned` */
            bo_free(op->save_tasks->tasks);
            op->save_tasks->tasks = NULL;
            op->save_tasks->n_tasks = 0;
        } else if (op->op_case == BO__OP__OP_SAVE_TASK_STATES) {
            bo_free(op->save_task_states->tasks);
            op->save_task_states->tasks = NULL;
            op->save_task_states->n_tasks = 0;
        }
        bo__op__free_unpacked(op, NULL);
    }
    bo_free(b->ops);
    for (size_t i = 0; i < b->n_owned; i++) {
        free_owned_task(b->owned[i]);
    }
    bo_free(b->owned);
    for (size_t i = 0; i < b->n_lists; i++) {
        bo_task_list_release(&b->lists[i]);
    }
    bo_free(b->lists);
    bo_config_cache_release(&b->configs);
    for (size_t i = 0; i < b->n_msgs; i++) {
        protobuf_c_message_free_unpacked(b->msgs[i], NULL);
    }
    bo_free(b->msgs);
    struct sched_touch *t, *tmp;
    HASH_ITER(hh, b->touched, t, tmp)
    {
        HASH_DEL(b->touched, t);
        bo_free(t->key);
        bo_free(t);
    }
    while (b->effects != NULL) {
        struct sched_effect *e = b->effects;
        b->effects = e->next;
        bo_free(e->agent_id);
        bo_free(e->task_id);
        json_decref(e->cmd);
        bo_free(e);
    }
    while (b->dls != NULL) {
        struct sched_post_dl *d = b->dls;
        b->dls = d->next;
        bo_free(d->dl.id);
        bo_free(d);
    }
    while (b->works != NULL) {
        struct sched_work *w = b->works;
        b->works = w->next;
        work_free(w);
    }
    bo_free(b);
}

/* ---------------------------------------------------------------- agents --- */

static struct sched_agent *agent_find(struct bo_sched *s, const char *id)
{
    struct sched_agent *a = NULL;
    if (id != NULL && id[0] != '\0') {
        HASH_FIND_STR(s->agents, id, a);
    }
    return a;
}

static struct sched_agent *agent_get(struct bo_sched *s, const char *id, const char *host)
{
    struct sched_agent *a = agent_find(s, id);
    if (a != NULL) {
        return a;
    }
    a = bo_calloc(1, sizeof(*a));
    if (a == NULL || (a->id = bo_strdup(id)) == NULL ||
        (a->host = bo_strdup(host != NULL ? host : "")) == NULL) {
        if (a != NULL) {
            bo_free(a->id);
        }
        bo_free(a);
        return NULL;
    }
    a->next_seq = 1;
    a->last_seen_ms = sched_now_ms(NULL);
    HASH_ADD_KEYPTR(hh, s->agents, a->id, strlen(a->id), a);
    return a;
}

static void agent_drop_cmds(struct sched_agent *a, uint64_t upto)
{
    while (a->cmds != NULL && a->cmds->seq <= upto) {
        struct sched_cmd *c = a->cmds;
        a->cmds = c->next;
        json_decref(c->json);
        bo_free(c->task_id);
        bo_free(c);
    }
    if (a->cmds == NULL) {
        a->cmds_tail = NULL;
    }
}

static json_t *agent_cmds_json(struct sched_agent *a)
{
    json_t *arr = json_array();
    for (struct sched_cmd *c = a->cmds; c != NULL && arr != NULL; c = c->next) {
        json_array_append(arr, c->json); /* shared: commands are not changed after queuing */
    }
    json_t *out = json_object();
    json_object_set_new(out, "commands", arr);
    return out;
}

static void agent_answer_poll(struct sched_agent *a, int status, const char *msg)
{
    if (a->poll_cb == NULL) {
        return;
    }
    bo_sched_reply_cb cb = a->poll_cb;
    void *data = a->poll_data;
    a->poll_cb = NULL;
    a->poll_data = NULL;
    json_t *res = status == BO_OK ? agent_cmds_json(a) : NULL;
    cb(data, status, msg, res);
    json_decref(res);
}

static void agent_free(struct bo_sched *s, struct sched_agent *a, int status)
{
    HASH_DEL(s->agents, a);
    agent_answer_poll(a, status, bo_strerror(status));
    agent_drop_cmds(a, UINT64_MAX);
    bo_free(a->id);
    bo_free(a->host);
    bo_free(a);
}

/* Queue a command: `cmd` gets its seq and is shared with the effect it came
 * from (reference counted); it is not changed after this. */
static int agent_push_cmd(struct sched_agent *a, json_t *cmd, const char *task_id, bool launch)
{
    struct sched_cmd *c = bo_calloc(1, sizeof(*c));
    if (c == NULL || (c->task_id = bo_strdup(task_id)) == NULL) {
        bo_free(c);
        return BO_ENOMEM;
    }
    c->seq = a->next_seq++;
    c->launch = launch;
    /* the effect's object is used once: take it instead of copying */
    c->json = json_incref(cmd);
    json_object_set_new(c->json, "seq", json_integer((json_int_t)c->seq));
    if (a->cmds_tail != NULL) {
        a->cmds_tail->next = c;
    } else {
        a->cmds = c;
    }
    a->cmds_tail = c;
    return BO_OK;
}

/* True if a launch of `task_id` is still waiting for the agent to take it. */
static bool agent_launch_pending(const struct sched_agent *a, const char *task_id)
{
    for (const struct sched_cmd *c = a->cmds; c != NULL; c = c->next) {
        if (c->launch && strcmp(c->task_id, task_id) == 0) {
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------ accounting --- */

struct task_res {
    double cpus;
    int64_t ram_mb, disk_mb;
};

static void config_res(const Bo__TaskConfig *c, struct task_res *r)
{
    *r = (struct task_res){0};
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n_resources; i++) {
        const Bo__Resource *x = c->resources[i];
        switch (x->kind_case) {
        case BO__RESOURCE__KIND_NUM_CPUS:
            r->cpus += x->num_cpus;
            break;
        case BO__RESOURCE__KIND_RAM_MB:
            r->ram_mb += x->ram_mb;
            break;
        case BO__RESOURCE__KIND_DISK_MB:
            r->disk_mb += x->disk_mb;
            break;
        default:
            break;
        }
    }
}

static bool occupies(int status)
{
    return status >= 0 && bo_tsm_is_slave_assigned(status);
}

/* Put a task's resources on, or take them off, its host in the index. */
static void account(struct bo_sched *s, const Bo__ScheduledTask *t, bool add)
{
    const Bo__AssignedTask *a = t->assigned_task;
    if (a == NULL || a->slave_host == NULL || a->slave_host[0] == '\0') {
        return;
    }
    struct task_res r;
    config_res(a->task, &r);
    char key[512];
    job_key_str(a->task != NULL ? a->task->job : NULL, key, sizeof(key));
    int32_t ports[64];
    size_t n_ports = 0;
    for (size_t i = 0; i < a->n_assigned_ports && n_ports < 64; i++) {
        ports[n_ports++] = a->assigned_ports[i]->value;
    }
    struct bo_err err = BO_ERR_INIT;
    if (add) {
        bo_place_add_task(s->place, a->slave_host, key, r.cpus, r.ram_mb, r.disk_mb, ports, n_ports,
                          &err);
    } else {
        bo_place_remove_task(s->place, a->slave_host, key, r.cpus, r.ram_mb, r.disk_mb, ports,
                             n_ports, &err);
    }
}

void sched_mark_pending(struct bo_sched *s, const Bo__JobKey *job)
{
    char key[512];
    job_key_str(job, key, sizeof(key));
    struct sched_pjob *p = NULL;
    HASH_FIND_STR(s->pjobs, key, p);
    if (p == NULL) {
        p = bo_calloc(1, sizeof(*p));
        if (p == NULL || (p->key = bo_strdup(key)) == NULL) {
            bo_free(p);
            return;
        }
        HASH_ADD_KEYPTR(hh, s->pjobs, p->key, strlen(p->key), p);
    }
    p->retry_at_ms = 0;
    p->marked = s->batch_seq;
    s->placement_wanted = true;
}

/* Capacity changed somewhere: every waiting job may fit now. */
static void pjobs_retry_all(struct bo_sched *s)
{
    struct sched_pjob *p, *tmp;
    HASH_ITER(hh, s->pjobs, p, tmp)
    {
        p->retry_at_ms = 0;
    }
    s->placement_wanted = true;
}

/* ----------------------------------------------------------- transitions --- */

static int add_event(Bo__ScheduledTask *t, int status, const char *message, const char *host,
                     int64_t now)
{
    Bo__TaskEvent *e = bo_calloc(1, sizeof(*e));
    if (e == NULL) {
        return BO_ENOMEM;
    }
    bo__task_event__init(e);
    e->timestamp_ms = now;
    e->status = (Bo__ScheduleStatus)status;
    if (message != NULL && (e->message = bo_strdup(message)) == NULL) {
        bo_free(e);
        return BO_ENOMEM;
    }
    if ((e->scheduler = bo_strdup(host)) == NULL) {
        bo__task_event__free_unpacked(e, NULL);
        return BO_ENOMEM;
    }
    Bo__TaskEvent **v = bo_reallocarray(t->task_events, t->n_task_events + 1, sizeof(*v));
    if (v == NULL) {
        bo__task_event__free_unpacked(e, NULL);
        return BO_ENOMEM;
    }
    t->task_events = v;
    v[t->n_task_events++] = e;
    return BO_OK;
}

static int new_task_id(const Bo__JobKey *job, int32_t instance, char *out, size_t n)
{
    uint8_t r[16];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        return BO_EIO;
    }
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    snprintf(out, n,
             "%s-%s-%s-%" PRId32 "-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x"
             "%02x",
             job->role, job->environment, job->name, instance, r[0], r[1], r[2], r[3], r[4], r[5],
             r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
    return BO_OK;
}

static int own_task(struct sched_batch *b, Bo__ScheduledTask *t)
{
    if (grow((void **)&b->owned, &b->cap_owned, b->n_owned + 1, sizeof(*b->owned)) != BO_OK) {
        return BO_ENOMEM;
    }
    b->owned[b->n_owned++] = t;
    return BO_OK;
}

/* A bare task of `job`/`instance` with config borrowed, owned by the batch. */
static int build_task(struct sched_batch *b, const Bo__JobKey *job, Bo__TaskConfig *config,
                      int32_t instance, Bo__ScheduledTask **out, struct bo_err *err)
{
    Bo__ScheduledTask *t = bo_calloc(1, sizeof(*t));
    Bo__AssignedTask *a = bo_calloc(1, sizeof(*a));
    char id[512];
    if (t == NULL || a == NULL) {
        bo_free(t);
        bo_free(a);
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    bo__scheduled_task__init(t);
    bo__assigned_task__init(a);
    t->assigned_task = a;
    a->instance_id = instance;
    int rc = new_task_id(job, instance, id, sizeof(id));
    if (rc != BO_OK || (a->task_id = bo_strdup(id)) == NULL || own_task(b, t) != BO_OK) {
        bo__scheduled_task__free_unpacked(t, NULL);
        return bo_errf(err, rc != BO_OK ? rc : BO_ENOMEM, "new task: %s",
                       rc != BO_OK ? "no randomness" : "out of memory");
    }
    a->task = config;
    struct sched_touch *tt = touch_add(b, a->task_id);
    if (tt != NULL) {
        tt->created = true;
    }
    *out = t;
    return BO_OK;
}

int sched_new_task(struct bo_sched *s, struct sched_batch *b, const Bo__JobKey *job,
                   Bo__TaskConfig *config, int32_t instance, Bo__ScheduledTask **out,
                   struct bo_err *err)
{
    Bo__ScheduledTask *t;
    int rc = build_task(b, job, config, instance, &t, err);
    if (rc != BO_OK) {
        return rc;
    }
    t->status = BO__SCHEDULE_STATUS__PENDING;
    if (add_event(t, BO__SCHEDULE_STATUS__PENDING, NULL, s->hostname, sched_now_ms(s)) != BO_OK ||
        batch_save_task(b, t) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    batch_touch(b, t->assigned_task->task_id);
    sched_mark_pending(s, job);
    *out = t;
    return BO_OK;
}

int sched_queue_kill(struct bo_sched *s, struct sched_batch *b, const char *agent_id,
                     const char *task_id)
{
    (void)s;
    if (agent_id == NULL || agent_id[0] == '\0') {
        return BO_OK;
    }
    json_t *cmd = json_pack("{s:s, s:s}", "type", "kill", "task_id", task_id);
    if (cmd == NULL) {
        return BO_ENOMEM;
    }
    return batch_effect(b, agent_id, task_id, cmd, false);
}

static int reschedule(struct bo_sched *s, struct sched_batch *b, const Bo__ScheduledTask *old,
                      const struct bo_tsm_result *r, struct bo_err *err)
{
    const Bo__AssignedTask *oa = old->assigned_task;
    Bo__ScheduledTask *t;
    int rc = build_task(b, oa->task->job, oa->task, oa->instance_id, &t, err);
    if (rc != BO_OK) {
        return rc;
    }
    int64_t now = sched_now_ms(s);
    t->failure_count = r->failure_count;
    t->times_partitioned = 0;
    if ((t->ancestor_id = bo_strdup(oa->task_id)) == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    char msg[128];
    if (r->reschedule_status == BO__SCHEDULE_STATUS__THROTTLED) {
        bo_tsm_format_penalty_message(msg, sizeof(msg), r->penalty_ms);
    } else {
        snprintf(msg, sizeof(msg), "Rescheduled");
    }
    t->status = (Bo__ScheduleStatus)r->reschedule_status;
    if (add_event(t, r->reschedule_status, msg, s->hostname, now) != BO_OK ||
        batch_save_task(b, t) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    batch_touch(b, t->assigned_task->task_id);
    if (r->reschedule_status == BO__SCHEDULE_STATUS__THROTTLED) {
        return batch_deadline(b, now + r->penalty_ms, DL_THROTTLE, t->assigned_task->task_id,
                              BO__SCHEDULE_STATUS__THROTTLED, 0);
    }
    sched_mark_pending(s, oa->task->job);
    return BO_OK;
}

int sched_transition(struct bo_sched *s, struct sched_batch *b, Bo__ScheduledTask *t, int to,
                     const char *message, struct bo_err *err)
{
    struct bo_tsm_task facts;
    struct bo_tsm_result r;
    int64_t now = sched_now_ms(s);
    Bo__AssignedTask *a = t->assigned_task;
    bo_tsm_task_from_proto(t, &facts);
    bo_tsm_decide(&facts, to, now, &s->tsm, &r);
    if (!r.legal) {
        if (!r.noop) {
            s->stats.illegal_transitions++;
        }
        if (r.actions & BO_TSM_KILL) {
            return sched_queue_kill(s, b, a->slave_id, a->task_id);
        }
        return BO_OK;
    }
    int from = t->status;
    int rc;
    if (r.actions & BO_TSM_INCREMENT_FAILURES) {
        t->failure_count = r.failure_count;
    }
    if (r.actions & BO_TSM_SAVE_STATE) {
        t->status = (Bo__ScheduleStatus)r.to;
        if (r.to == BO__SCHEDULE_STATUS__PARTITIONED) {
            t->times_partitioned++;
        }
        if (add_event(t, r.to, message, s->hostname, now) != BO_OK ||
            batch_save_task(b, t) != BO_OK) {
            return bo_errf(err, BO_ENOMEM, "out of memory");
        }
        if (occupies(from) && !occupies(r.to)) {
            account(s, t, false);
            pjobs_retry_all(s);
        }
        /* Transient states time out through the periodic scan (tick_cb):
         * a deadline per task would hold memory for every task placed in
         * the last timeout window, a million in a big burst. */
        if (r.to == BO__SCHEDULE_STATUS__PARTITIONED) {
            const Bo__PartitionPolicy *pp = a->task != NULL ? a->task->partition_policy : NULL;
            bool resched = pp == NULL || pp->reschedule;
            if (resched) {
                int64_t delay = pp != NULL ? pp->delay_secs * 1000 : 0;
                rc = batch_deadline(b, now + delay, DL_PARTITION, a->task_id, r.to, 0);
                if (rc != BO_OK) {
                    return bo_errf(err, rc, "out of memory");
                }
            }
        }
        if (r.to == BO__SCHEDULE_STATUS__PENDING) {
            sched_mark_pending(s, a->task->job);
        }
    }
    if (r.actions & BO_TSM_RESCHEDULE) {
        rc = reschedule(s, b, t, &r, err);
        if (rc != BO_OK) {
            return rc;
        }
    }
    if (r.actions & BO_TSM_TRANSITION_TO_LOST) {
        rc = sched_transition(s, b, t, BO__SCHEDULE_STATUS__LOST,
                              "Task was partitioned when a kill was requested", err);
        if (rc != BO_OK) {
            return rc;
        }
    }
    if (r.actions & BO_TSM_KILL) {
        rc = sched_queue_kill(s, b, a->slave_id, a->task_id);
        if (rc == BO_OK && (t->status == BO__SCHEDULE_STATUS__KILLING ||
                            t->status == BO__SCHEDULE_STATUS__RESTARTING ||
                            t->status == BO__SCHEDULE_STATUS__DRAINING ||
                            t->status == BO__SCHEDULE_STATUS__PREEMPTING)) {
            rc = batch_deadline(b, now + s->cfg.kill_retry_initial_ms, DL_KILL_RETRY, a->task_id,
                                t->status, 1);
        }
        if (rc != BO_OK) {
            return bo_errf(err, rc, "out of memory");
        }
    }
    if (r.actions & BO_TSM_DELETE) {
        if (occupies(from)) {
            account(s, t, false);
        }
        if (batch_remove_task(b, a->task_id) != BO_OK) {
            return bo_errf(err, BO_ENOMEM, "out of memory");
        }
    }
    return BO_OK;
}

/* ------------------------------------------------------------- placement --- */

/* Replace a string field of an unpacked message: unset proto3 strings point
 * at protobuf-c's static empty string, which must not be freed. */
static int pb_set_str(char **field, const char *v)
{
    char *copy = bo_strdup(v);
    if (copy == NULL) {
        return BO_ENOMEM;
    }
    if (*field != NULL && *field != protobuf_c_empty_string) {
        bo_free(*field);
    }
    *field = copy;
    return BO_OK;
}

static int place_job(struct bo_sched *s, struct sched_batch *b, struct sched_pjob *p, int budget,
                     int *placed, struct bo_err *err)
{
    char role[256], env[256], name[256];
    if (sscanf(p->key, "%255[^/]/%255[^/]/%255s", role, env, name) != 3) {
        return BO_OK;
    }
    Bo__JobKey key = BO__JOB_KEY__INIT;
    key.role = role;
    key.environment = env;
    key.name = name;
    const Bo__JobKey *keys[1] = {&key};
    Bo__ScheduleStatus st = BO__SCHEDULE_STATUS__PENDING;
    struct bo_task_query q = {
        .job_keys = keys, .n_job_keys = 1, .statuses = &st, .n_statuses = 1, .limit = budget};
    struct bo_task_list *l;
    int rc = sched_query(s, b, &q, true, &l, err);
    if (rc != BO_OK) {
        return rc;
    }
    *placed = 0;
    if (l->n == 0) {
        HASH_DEL(s->pjobs, p);
        bo_free(p->key);
        bo_free(p->reason);
        bo_free(p);
        return BO_OK;
    }
    /* Tasks of one config share one config struct: place them as groups. */
    size_t i = 0;
    bool all = true;
    while (i < l->n) {
        Bo__TaskConfig *cfg = l->tasks[i]->assigned_task->task;
        size_t j = i;
        Bo__ScheduledTask *group[1024];
        size_t n = 0;
        while (j < l->n && n < 1024) {
            Bo__ScheduledTask *t = l->tasks[j];
            if (t->assigned_task->task == cfg && !batch_touched(b, t->assigned_task->task_id)) {
                group[n++] = t;
            } else if (t->assigned_task->task != cfg) {
                break;
            }
            j++;
        }
        i = j;
        if (n == 0) {
            continue;
        }
        struct bo_place_request req;
        rc = bo_place_request_from_config(&req, cfg, err);
        if (rc != BO_OK) {
            return rc;
        }
        json_t *cfg_json = NULL;
        struct bo_place_result res = BO_PLACE_RESULT_INIT;
        rc = bo_place_tasks(s->place, &req, n, &res, err);
        s->stats.schedule_attempts += n;
        if (rc != BO_OK) {
            bo_place_result_release(&res);
            bo_place_request_release(&req);
            json_decref(cfg_json);
            return rc;
        }
        for (size_t k = 0; k < res.n_placed; k++) {
            Bo__ScheduledTask *t = group[k];
            Bo__AssignedTask *a = t->assigned_task;
            const struct bo_place_slot *slot = &res.slots[k];
            batch_touch(b, a->task_id);
            if (pb_set_str(&a->slave_host, slot->host) != BO_OK ||
                pb_set_str(&a->slave_id, slot->agent_id != NULL ? slot->agent_id : "") != BO_OK) {
                bo_place_result_release(&res);
                bo_place_request_release(&req);
                json_decref(cfg_json);
                return bo_errf(err, BO_ENOMEM, "out of memory");
            }
            if (req.n_ports > 0) {
                Bo__AssignedTask__AssignedPortsEntry **pv = bo_calloc(req.n_ports, sizeof(*pv));
                if (pv == NULL) {
                    bo_place_result_release(&res);
                    bo_place_request_release(&req);
                    json_decref(cfg_json);
                    return bo_errf(err, BO_ENOMEM, "out of memory");
                }
                a->assigned_ports = pv;
                for (size_t x = 0; x < req.n_ports; x++) {
                    pv[x] = bo_calloc(1, sizeof(*pv[x]));
                    if (pv[x] == NULL) {
                        break;
                    }
                    bo__assigned_task__assigned_ports_entry__init(pv[x]);
                    pv[x]->key = bo_strdup(req.ports[x]);
                    pv[x]->value = slot->ports[x];
                    a->n_assigned_ports = x + 1;
                }
            }
            rc = sched_transition(s, b, t, BO__SCHEDULE_STATUS__ASSIGNED, NULL, err);
            if (rc == BO_OK) {
                account(s, t, true);
            }
            if (rc != BO_OK) {
                bo_place_result_release(&res);
                bo_place_request_release(&req);
                json_decref(cfg_json);
                return rc;
            }
            /* The group's config is encoded once and shared by its launch
             * commands (jansson values are reference counted). */
            if (cfg_json == NULL) {
                cfg_json = bo_pbjson_encode(&cfg->base, 0);
            }
            a->task = NULL;
            json_t *task = bo_pbjson_encode(&t->base, 0);
            a->task = cfg;
            if (task != NULL && cfg_json != NULL) {
                json_object_set(json_object_get(task, "assigned_task"), "task", cfg_json);
            }
            json_t *cmd =
                json_pack("{s:s, s:s, s:o}", "type", "launch", "task_id", a->task_id, "task", task);
            if (cmd == NULL || batch_effect(b, a->slave_id, a->task_id, cmd, true) != BO_OK) {
                bo_place_result_release(&res);
                bo_place_request_release(&req);
                json_decref(cfg_json);
                return bo_errf(err, BO_ENOMEM, "out of memory");
            }
            (*placed)++;
            b->n_placed++;
        }
        s->stats.tasks_placed += res.n_placed;
        if (res.n_placed < n) {
            all = false;
            s->stats.schedule_no_match += n - res.n_placed;
            bo_free(p->reason);
            p->reason = bo_strdup(res.reason[0] != '\0' ? res.reason : "No hosts");
        }
        bo_place_result_release(&res);
        bo_place_request_release(&req);
        json_decref(cfg_json);
    }
    if (!all) {
        p->retry_at_ms = sched_now_ms(s) + s->cfg.unplaced_backoff_ms;
    } else {
        bo_free(p->reason);
        p->reason = NULL;
        /* more may be pending beyond the query's limit: go on at once */
        p->retry_at_ms = 0;
        if ((size_t)*placed >= l->n && l->n >= (size_t)budget) {
            s->placement_wanted = true;
        }
    }
    return BO_OK;
}

static int place_round(struct bo_sched *s, struct sched_batch *b, struct bo_err *err)
{
    int budget = s->cfg.scheduling_batch;
    if ((size_t)budget + b->n_tasks_saved > BATCH_MAX_TASKS) {
        budget =
            b->n_tasks_saved >= BATCH_MAX_TASKS ? 0 : (int)(BATCH_MAX_TASKS - b->n_tasks_saved);
    }
    int64_t now = sched_now_ms(s);
    s->placement_wanted = false;
    struct sched_pjob *p, *tmp;
    HASH_ITER(hh, s->pjobs, p, tmp)
    {
        if (budget <= 0) {
            s->placement_wanted = true;
            break;
        }
        if (p->retry_at_ms > now) {
            continue;
        }
        if (p->marked == s->batch_seq) {
            /* its new pending tasks are not committed yet */
            s->placement_wanted = true;
            continue;
        }
        int placed = 0;
        int rc = place_job(s, b, p, budget, &placed, err);
        if (rc != BO_OK) {
            return rc;
        }
        budget -= placed;
    }
    return BO_OK;
}

/* ----------------------------------------------------------------- drain --- */

static void drain(struct bo_sched *s);

static void drain_idle_cb(uv_idle_t *h)
{
    struct bo_sched *s = h->data;
    uv_idle_stop(h);
    s->drain_scheduled = false;
    drain(s);
}

void sched_kick(struct bo_sched *s)
{
    if (!s->drain_scheduled && !s->closing) {
        s->drain_scheduled = true;
        uv_idle_start(&s->drain_idle, drain_idle_cb);
    }
}

static void queue_push(struct bo_sched *s, struct sched_work *w)
{
    w->next = NULL;
    if (s->queue_tail != NULL) {
        s->queue_tail->next = w;
    } else {
        s->queue = w;
    }
    s->queue_tail = w;
    s->queued++;
    sched_kick(s);
}

static void queue_push_front(struct bo_sched *s, struct sched_work *w)
{
    w->next = s->queue;
    s->queue = w;
    if (s->queue_tail == NULL) {
        s->queue_tail = w;
    }
    s->queued++;
}

static struct sched_work *queue_pop(struct bo_sched *s)
{
    struct sched_work *w = s->queue;
    if (w != NULL) {
        s->queue = w->next;
        if (s->queue == NULL) {
            s->queue_tail = NULL;
        }
        s->queued--;
        w->next = NULL;
    }
    return w;
}

static void rebuild(struct bo_sched *s);

/* What a batch does once it is durable (or when it wrote nothing): hand its
 * commands to the agents, waking their parked polls, and arm its deadlines. */
static void batch_effects(struct bo_sched *s, struct sched_batch *b)
{
    if (!s->leader) {
        return;
    }
    for (struct sched_effect *e = b->effects; e != NULL; e = e->next) {
        struct sched_agent *a = agent_find(s, e->agent_id);
        if (a != NULL) {
            agent_push_cmd(a, e->cmd, e->task_id, e->launch);
        }
    }
    for (struct sched_effect *e = b->effects; e != NULL; e = e->next) {
        struct sched_agent *a = agent_find(s, e->agent_id);
        if (a != NULL && a->cmds != NULL) {
            agent_answer_poll(a, BO_OK, NULL);
        }
    }
    while (b->dls != NULL) {
        struct sched_post_dl *d = b->dls;
        b->dls = d->next;
        struct sched_dl *p = bo_malloc(sizeof(*p));
        if (p != NULL) {
            *p = d->dl;
            d->dl.id = NULL;
            if (bo_heap_push(&s->deadlines, d->at_ms, d->kind, p) != BO_OK) {
                bo_free(p->id);
                bo_free(p);
            }
        }
        bo_free(d->dl.id);
        bo_free(d);
    }
}

static void batch_committed(struct bo_storage_write *req, int status, const char *message)
{
    struct sched_batch *b = req->data;
    struct bo_sched *s = b->s;
    s->inflight = NULL;
    if (status == BO_OK) {
        if (s->append_latency != NULL) {
            bo_metrics_observe(s->append_latency, (double)(uv_hrtime() - b->started_ns) / 1e9);
        }
        batch_effects(s, b);
    } else {
        s->stats.batch_failures++;
        bo_warn("scheduler: write of %zu ops failed: %s", b->n_ops, message);
    }
    while (b->works != NULL) {
        struct sched_work *w = b->works;
        b->works = w->next;
        if (status != BO_OK && w->status == BO_OK) {
            work_fail(w, status, message);
        }
        work_reply(w);
    }
    batch_free(b);
    if (status != BO_OK && s->leader) {
        rebuild(s);
    }
    if (s->queue != NULL || s->placement_wanted) {
        sched_kick(s);
    }
}

static int run_work(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                    struct bo_err *err);

/* A batch that is not written: its items are answered now (with `status`
 * unless they failed on their own), and if it failed the in-memory state it
 * may have changed is rebuilt. */
static void batch_abort(struct bo_sched *s, struct sched_batch *b, int status, const char *msg)
{
    struct sched_work *x;
    while ((x = b->works) != NULL) {
        b->works = x->next;
        if (status != BO_OK && x->status == BO_OK) {
            work_fail(x, status, msg);
        }
        work_reply(x);
    }
    b->works_tail = NULL;
    if (status == BO_OK) {
        batch_effects(s, b); /* kills of unknown tasks need no write */
    }
    bool failed = status != BO_OK || b->n_placed > 0;
    batch_free(b);
    if (failed && s->leader) {
        rebuild(s);
    }
    if (s->queue != NULL) {
        sched_kick(s);
    }
}

/* The ops as they are written to the log, built around the batch's own
 * (which keep pointing at whole tasks for the batch's effects): a state
 * save goes without its config, and the new tasks of a SaveTasks op go as
 * SaveTasksShared, one per run of tasks with the same config (a create of
 * 1,000 instances logs its config once, not 1,000 times). Configs are set
 * aside while the entry is encoded, synchronously inside
 * bo_storage_write, and put back after. */
struct log_ops {
    Bo__Op **ops;   /* what the transaction lists */
    Bo__Op *shared; /* the SaveTasksShared ops made here */
    Bo__SaveTasksShared *bodies;
    Bo__TaskConfig **kept; /* configs set aside, in order */
    size_t n_ops, n_shared, n_kept;
    bool any_shared;
};

static void log_ops_release(struct log_ops *lo)
{
    bo_free(lo->ops);
    bo_free(lo->shared);
    bo_free(lo->bodies);
    bo_free(lo->kept);
    *lo = (struct log_ops){0};
}

static int log_ops_build(struct sched_batch *b, struct log_ops *lo)
{
    size_t runs = 0, tasks = 0;
    for (size_t i = 0; i < b->n_ops; i++) {
        const Bo__Op *op = b->ops[i];
        if (op->op_case == BO__OP__OP_SAVE_TASKS) {
            const Bo__SaveTasks *st = op->save_tasks;
            for (size_t j = 0; j < st->n_tasks; j++) {
                runs += j == 0 ||
                        st->tasks[j]->assigned_task->task != st->tasks[j - 1]->assigned_task->task;
            }
            tasks += st->n_tasks;
        } else if (op->op_case == BO__OP__OP_SAVE_TASK_STATES) {
            tasks += op->save_task_states->n_tasks;
        }
    }
    *lo = (struct log_ops){0};
    lo->ops = bo_calloc(b->n_ops + runs + 1, sizeof(*lo->ops));
    lo->shared = bo_calloc(runs + 1, sizeof(*lo->shared));
    lo->bodies = bo_calloc(runs + 1, sizeof(*lo->bodies));
    lo->kept = bo_calloc(tasks + 1, sizeof(*lo->kept));
    if (lo->ops == NULL || lo->shared == NULL || lo->bodies == NULL || lo->kept == NULL) {
        log_ops_release(lo);
        return BO_ENOMEM;
    }
    for (size_t i = 0; i < b->n_ops; i++) {
        Bo__Op *op = b->ops[i];
        if (op->op_case == BO__OP__OP_SAVE_TASK_STATES) {
            Bo__SaveTaskStates *st = op->save_task_states;
            for (size_t j = 0; j < st->n_tasks; j++) {
                lo->kept[lo->n_kept++] = st->tasks[j]->assigned_task->task;
                st->tasks[j]->assigned_task->task = NULL;
            }
        }
        if (op->op_case != BO__OP__OP_SAVE_TASKS) {
            lo->ops[lo->n_ops++] = op;
            continue;
        }
        Bo__SaveTasks *st = op->save_tasks;
        for (size_t j = 0; j < st->n_tasks;) {
            Bo__TaskConfig *cfg = st->tasks[j]->assigned_task->task;
            size_t k = j;
            while (k < st->n_tasks && st->tasks[k]->assigned_task->task == cfg) {
                lo->kept[lo->n_kept++] = cfg;
                st->tasks[k]->assigned_task->task = NULL;
                k++;
            }
            Bo__SaveTasksShared *body = &lo->bodies[lo->n_shared];
            bo__save_tasks_shared__init(body);
            body->config = cfg;
            body->tasks = st->tasks + j;
            body->n_tasks = k - j;
            Bo__Op *sop = &lo->shared[lo->n_shared++];
            bo__op__init(sop);
            sop->op_case = BO__OP__OP_SAVE_TASKS_SHARED;
            sop->save_tasks_shared = body;
            lo->ops[lo->n_ops++] = sop;
            lo->any_shared = true;
            j = k;
        }
    }
    return BO_OK;
}

/* Put back the configs log_ops_build set aside. */
static void log_ops_restore(struct sched_batch *b, const struct log_ops *lo)
{
    size_t k = 0;
    for (size_t i = 0; i < b->n_ops; i++) {
        const Bo__Op *op = b->ops[i];
        Bo__ScheduledTask **tasks = NULL;
        size_t n = 0;
        if (op->op_case == BO__OP__OP_SAVE_TASK_STATES) {
            tasks = op->save_task_states->tasks;
            n = op->save_task_states->n_tasks;
        } else if (op->op_case == BO__OP__OP_SAVE_TASKS) {
            tasks = op->save_tasks->tasks;
            n = op->save_tasks->n_tasks;
        }
        for (size_t j = 0; j < n; j++) {
            tasks[j]->assigned_task->task = lo->kept[k++];
        }
    }
}

/* Write the batch as the log's ops (above). */
static int write_batch(struct bo_sched *s, struct sched_batch *b, struct bo_err *err)
{
    struct log_ops lo;
    if (log_ops_build(b, &lo) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    Bo__Transaction txn = BO__TRANSACTION__INIT;
    txn.ops = lo.ops;
    txn.n_ops = lo.n_ops;
    txn.schema_version = lo.any_shared ? BO_TXN_VERSION : BO_SCHEMA_VERSION;
    int rc = bo_storage_write(s->storage, &b->req, &txn, batch_committed, err);
    log_ops_restore(b, &lo);
    log_ops_release(&lo);
    return rc;
}

static void drain(struct bo_sched *s)
{
    if (s->inflight != NULL || s->closing) {
        return;
    }
    if (!s->leader) {
        struct sched_work *w;
        while ((w = queue_pop(s)) != NULL) {
            work_fail(w, BO_ENOTLEADER, "not the leader");
            work_reply(w);
        }
        return;
    }
    struct sched_batch *b = bo_calloc(1, sizeof(*b));
    if (b == NULL) {
        sched_kick(s);
        return;
    }
    b->s = s;
    b->started_ns = uv_hrtime();
    s->batch_seq++;
    /* One read transaction for all the batch's reads (ended by the
     * storage's flush at the end of this loop turn). */
    struct bo_err rerr = BO_ERR_INIT;
    if (bo_store_read_begin(s->store, &rerr) != BO_OK) {
        bo_warn("scheduler: %s", rerr.msg);
    }
    struct bo_err err = BO_ERR_INIT;
    int rc = BO_OK;
    struct sched_work *w;
    size_t ran = 0;
    while ((w = queue_pop(s)) != NULL) {
        rc = run_work(s, b, w, &err);
        if (rc == 1) {
            /* touches what this batch already touched: first in the next */
            queue_push_front(s, w);
            rc = BO_OK;
            break;
        }
        if (rc != BO_OK) {
            work_fail(w, rc, bo_err_msg(&err, rc));
            work_reply(w);
            break;
        }
        if (b->works_tail != NULL) {
            b->works_tail->next = w;
        } else {
            b->works = w;
        }
        b->works_tail = w;
        /* A batch stays small enough to commit in a blink and to keep the
         * loop responsive; what is left goes in the next one. */
        if (++ran >= 10000 || b->n_tasks_saved >= BATCH_MAX_TASKS) {
            break;
        }
    }
    if (rc == BO_OK && (s->placement_wanted || s->pjobs != NULL)) {
        rc = place_round(s, b, &err);
    }
    if (rc != BO_OK) {
        /* Nothing was written; the in-memory accounting the batch changed
         * is rebuilt from the store. */
        bo_warn("scheduler: batch failed: %s", bo_err_msg(&err, rc));
        batch_abort(s, b, rc, bo_err_msg(&err, rc));
        return;
    }
    if (b->n_ops == 0) {
        /* nothing to write: answer now */
        batch_abort(s, b, BO_OK, NULL);
        return;
    }
    b->req.data = b;
    s->inflight = b;
    s->stats.batches++;
    rc = write_batch(s, b, &err);
    if (rc != BO_OK) {
        s->inflight = NULL;
        bo_warn("scheduler: write failed: %s", bo_err_msg(&err, rc));
        batch_abort(s, b, rc, bo_err_msg(&err, rc));
    }
}

/* ------------------------------------------------------------- deadlines --- */

static int run_deadline(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                        struct bo_err *err)
{
    const char *id = w->dl.id;
    if (w->dl_kind == DL_CRON_LAUNCH) {
        return sched_run_cron(s, b, w, err);
    }
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
        return BO_OK;
    }
    Bo__ScheduledTask *t = l->tasks[0];
    if ((int)t->status != w->dl.status) {
        return BO_OK; /* moved on: this deadline no longer applies */
    }
    batch_touch(b, id);
    int64_t now = sched_now_ms(s);
    switch (w->dl_kind) {
    case DL_KILL_RETRY: {
        rc = sched_queue_kill(s, b, t->assigned_task->slave_id, id);
        if (rc != BO_OK) {
            return bo_errf(err, rc, "out of memory");
        }
        int64_t delay = bo_tsm_kill_retry_delay(&s->tsm, w->dl.attempt + 1);
        return batch_deadline(b, now + delay, DL_KILL_RETRY, id, w->dl.status, w->dl.attempt + 1);
    }
    case DL_THROTTLE:
        return sched_transition(s, b, t, BO__SCHEDULE_STATUS__PENDING, NULL, err);
    case DL_PARTITION:
        return sched_transition(s, b, t, BO__SCHEDULE_STATUS__LOST,
                                "Task partitioned for too long.", err);
    default:
        return BO_OK;
    }
}

/* Tasks in a transient state (ASSIGNED, KILLING, RESTARTING, DRAINING,
 * PREEMPTING) for longer than the timeout become LOST. The statuses are
 * indexed and few tasks are in them at a time, so a scan every few seconds
 * costs little and needs no memory per task. */
static int run_transient_scan(struct bo_sched *s, struct sched_batch *b, struct bo_err *err)
{
    static const Bo__ScheduleStatus transient[] = {
        BO__SCHEDULE_STATUS__ASSIGNED,   BO__SCHEDULE_STATUS__KILLING,
        BO__SCHEDULE_STATUS__RESTARTING, BO__SCHEDULE_STATUS__DRAINING,
        BO__SCHEDULE_STATUS__PREEMPTING,
    };
    struct bo_task_query q = {.statuses = transient,
                              .n_statuses = sizeof(transient) / sizeof(*transient),
                              .limit = 20000};
    struct bo_task_list *l;
    int rc = sched_query(s, b, &q, true, &l, err);
    if (rc != BO_OK) {
        return rc;
    }
    int64_t now = sched_now_ms(s);
    for (size_t i = 0; i < l->n && rc == BO_OK; i++) {
        Bo__ScheduledTask *t = l->tasks[i];
        int64_t since =
            t->n_task_events > 0 ? t->task_events[t->n_task_events - 1]->timestamp_ms : now;
        if (now - since < s->cfg.transient_timeout_ms ||
            !batch_touch(b, t->assigned_task->task_id)) {
            continue;
        }
        s->stats.timed_out_tasks++;
        char msg[128];
        snprintf(msg, sizeof(msg), "Task timed out in state %s", bo_tsm_status_name(t->status));
        rc = sched_transition(s, b, t, BO__SCHEDULE_STATUS__LOST, msg, err);
    }
    return rc;
}

static int run_work(struct bo_sched *s, struct sched_batch *b, struct sched_work *w,
                    struct bo_err *err)
{
    switch (w->kind) {
    case W_TRANSIENT_SCAN:
        return run_transient_scan(s, b, err);
    case W_OP:
        return sched_run_op(s, b, w, err);
    case W_DEADLINE:
        return run_deadline(s, b, w, err);
    case W_RECONCILE:
        return sched_run_reconcile(s, b, w, err);
    case W_CRON_TRIGGER:
        return sched_run_cron(s, b, w, err);
    case W_DRAIN_CHECK:
        return sched_run_drain_check(s, b, w, err);
    case W_HOST_ATTRS:
        return sched_run_host_attrs(s, b, w, err);
    case W_PRUNE:
        return sched_run_prune(s, b, w, err);
    }
    return BO_OK;
}

static struct sched_work *work_new(enum sched_work_kind kind)
{
    struct sched_work *w = bo_calloc(1, sizeof(*w));
    if (w != NULL) {
        w->kind = kind;
    }
    return w;
}

static int drain_check_cb(const struct bo_place_host_info *h, void *ctx)
{
    struct bo_sched *s = ctx;
    if (h->mode == BO__MAINTENANCE_MODE__MAINTENANCE_DRAINING) {
        struct sched_work *w = work_new(W_DRAIN_CHECK);
        if (w != NULL) {
            w->args = json_pack("{s:s}", "host", h->name);
            queue_push(s, w);
        }
    }
    return 0;
}

/* The periodic tick: deadlines due, agents silent for too long, cron, drains. */
static void tick_cb(uv_timer_t *h)
{
    struct bo_sched *s = h->data;
    if (!s->leader) {
        return;
    }
    int64_t now = sched_now_ms(s);
    const struct bo_heap_entry *top;
    while ((top = bo_heap_peek(&s->deadlines)) != NULL && top->deadline_ms <= now) {
        struct bo_heap_entry e;
        bo_heap_pop(&s->deadlines, &e);
        struct sched_dl *d = e.payload;
        struct sched_work *w = work_new(W_DEADLINE);
        if (w == NULL) {
            bo_free(d->id);
            bo_free(d);
            continue;
        }
        w->dl = *d;
        w->dl_kind = e.kind;
        bo_free(d);
        queue_push(s, w);
    }
    /* Agents: answer polls held long enough; partition the silent ones. */
    struct sched_agent *a, *tmp;
    HASH_ITER(hh, s->agents, a, tmp)
    {
        if (a->poll_cb != NULL && a->poll_deadline_ms <= now) {
            agent_answer_poll(a, BO_OK, NULL);
        }
        if (!a->partitioned && a->poll_cb == NULL &&
            now - a->last_seen_ms > s->cfg.agent_timeout_ms) {
            a->partitioned = true;
            s->stats.agents_lost++;
            bo_warn("scheduler: agent '%s' on '%s' is silent: its tasks are partitioned", a->id,
                    a->host);
            struct bo_err e = BO_ERR_INIT;
            bo_place_set_usable(s->place, a->host, false, &e);
            struct sched_work *w = work_new(W_RECONCILE);
            if (w != NULL) {
                w->args =
                    json_pack("{s:s, s:s, s:b}", "agent_id", a->id, "host", a->host, "lost", 1);
                queue_push(s, w);
            }
        }
    }
    /* Cron: triggers due. */
    struct sched_cron *c, *ctmp;
    HASH_ITER(hh, s->crons, c, ctmp)
    {
        if (c->next_ms != 0 && c->next_ms <= now) {
            int64_t next = 0;
            if (bo_cron_next(&c->expr, now, s->cfg.cron_utc, &next) != BO_OK) {
                next = 0;
            }
            /* A fire time the tick reached more than a minute late (a stalled
             * loop) is a misfire; times passed while not leading are skipped,
             * as in Aurora. */
            if (now - c->next_ms > 60 * 1000) {
                s->stats.cron_misfires++;
            }
            c->next_ms = next;
            struct sched_work *w = work_new(W_CRON_TRIGGER);
            if (w != NULL) {
                w->args = json_pack("{s:s}", "key", c->key);
                queue_push(s, w);
            }
        }
    }
    /* Transient states: scanned every few seconds (a tenth of the timeout,
     * between 250 ms and 10 s). */
    int64_t scan_every = s->cfg.transient_timeout_ms / 10;
    scan_every = scan_every < TICK_MS ? TICK_MS : scan_every > 10000 ? 10000 : scan_every;
    if (now - s->last_transient_scan_ms >= scan_every) {
        s->last_transient_scan_ms = now;
        struct sched_work *w = work_new(W_TRANSIENT_SCAN);
        if (w != NULL) {
            queue_push(s, w);
        }
    }
    /* Task history: pruned every minute, or more often when it is kept
     * for less than two minutes. */
    int64_t every = s->cfg.history_prune_threshold_ms / 2;
    if (every > 60000) {
        every = 60000;
    }
    if (every < 500) {
        every = 500;
    }
    if (now - s->last_prune_ms >= every) {
        s->last_prune_ms = now;
        struct sched_work *w = work_new(W_PRUNE);
        if (w != NULL) {
            queue_push(s, w);
        }
    }
    /* Hosts draining: become DRAINED once empty. */
    bo_place_foreach_host(s->place, drain_check_cb, s);
    if (s->placement_wanted || s->pjobs != NULL) {
        sched_kick(s);
    }
}

/* ------------------------------------------------------------ leadership --- */

static void clear_state(struct bo_sched *s, int status)
{
    struct sched_agent *a, *atmp;
    HASH_ITER(hh, s->agents, a, atmp)
    {
        agent_free(s, a, status);
    }
    struct sched_pjob *p, *ptmp;
    HASH_ITER(hh, s->pjobs, p, ptmp)
    {
        HASH_DEL(s->pjobs, p);
        bo_free(p->key);
        bo_free(p->reason);
        bo_free(p);
    }
    struct sched_cron *c, *ctmp;
    HASH_ITER(hh, s->crons, c, ctmp)
    {
        HASH_DEL(s->crons, c);
        bo_free(c->key);
        bo_free(c);
    }
    struct bo_heap_entry e;
    while (bo_heap_pop(&s->deadlines, &e)) {
        struct sched_dl *d = e.payload;
        bo_free(d->id);
        bo_free(d);
    }
    bo_place_free(s->place);
    s->place = NULL;
}

static void push_dl(struct bo_sched *s, int64_t at, int kind, const char *id, int status)
{
    struct sched_dl *d = bo_calloc(1, sizeof(*d));
    if (d == NULL || (d->id = bo_strdup(id)) == NULL) {
        bo_free(d);
        return;
    }
    d->status = status;
    if (bo_heap_push(&s->deadlines, at, kind, d) != BO_OK) {
        bo_free(d->id);
        bo_free(d);
    }
}

/* Build the in-memory state from the store: the host index with every task
 * that occupies a host, the jobs with pending tasks, the deadlines of tasks
 * in timed states, agents known from tasks (they must register again within
 * agent_timeout_ms), maintenance modes and cron schedules. */
static void rebuild(struct bo_sched *s)
{
    clear_state(s, BO_ENOTLEADER);
    struct bo_err err = BO_ERR_INIT;
    if (bo_place_new(&s->place) != BO_OK) {
        bo_error("scheduler: %s", bo_err_msg(&err, BO_ENOMEM));
        return;
    }
    int64_t now = sched_now_ms(s);
    Bo__HostAttributes **hosts = NULL;
    size_t n_hosts = 0;
    if (bo_store_list_hosts(s->store, &hosts, &n_hosts, &err) == BO_OK) {
        for (size_t i = 0; i < n_hosts; i++) {
            /* Totals and attributes come back when the agent registers;
             * until then the host takes nothing but keeps its mode. */
            struct bo_place_host_spec h = {.name = hosts[i]->host, .agent_id = hosts[i]->slave_id};
            if (bo_place_upsert_host(s->place, &h, &err) == BO_OK) {
                bo_place_set_usable(s->place, h.name, false, &err);
                bo_place_set_mode(s->place, h.name, hosts[i]->mode, &err);
            }
        }
        bo_store_free_list(hosts, n_hosts);
    }
    Bo__ScheduleStatus active[] = {
        BO__SCHEDULE_STATUS__PENDING,    BO__SCHEDULE_STATUS__THROTTLED,
        BO__SCHEDULE_STATUS__ASSIGNED,   BO__SCHEDULE_STATUS__STARTING,
        BO__SCHEDULE_STATUS__RUNNING,    BO__SCHEDULE_STATUS__KILLING,
        BO__SCHEDULE_STATUS__RESTARTING, BO__SCHEDULE_STATUS__DRAINING,
        BO__SCHEDULE_STATUS__PREEMPTING, BO__SCHEDULE_STATUS__PARTITIONED,
    };
    struct bo_task_query q = {.statuses = active, .n_statuses = sizeof(active) / sizeof(*active)};
    struct bo_task_list l = {0};
    if (bo_store_query_tasks(s->store, &q, true, &l, &err) != BO_OK) {
        bo_error("scheduler: rebuild: %s", bo_err_msg(&err, BO_EIO));
        return;
    }
    for (size_t i = 0; i < l.n; i++) {
        Bo__ScheduledTask *t = l.tasks[i];
        Bo__AssignedTask *a = t->assigned_task;
        int64_t since =
            t->n_task_events > 0 ? t->task_events[t->n_task_events - 1]->timestamp_ms : now;
        if (occupies(t->status)) {
            account(s, t, true);
            if (a->slave_id != NULL && a->slave_id[0] != '\0') {
                struct sched_agent *ag = agent_get(s, a->slave_id, a->slave_host);
                if (ag != NULL) {
                    ag->last_seen_ms = now; /* a grace period to register again */
                }
            }
        }
        if (t->status == BO__SCHEDULE_STATUS__PENDING) {
            sched_mark_pending(s, a->task->job);
        } else if (t->status == BO__SCHEDULE_STATUS__THROTTLED) {
            struct bo_tsm_task f;
            bo_tsm_task_from_proto(t, &f);
            push_dl(s, since + f.last_penalty_ms, DL_THROTTLE, a->task_id, t->status);
        } else if (t->status == BO__SCHEDULE_STATUS__PARTITIONED) {
            const Bo__PartitionPolicy *pp = a->task->partition_policy;
            if (pp == NULL || pp->reschedule) {
                push_dl(s, since + (pp != NULL ? pp->delay_secs * 1000 : 0), DL_PARTITION,
                        a->task_id, t->status);
            }
        }
        if (bo_tsm_is_transient(t->status)) {
            if (t->status != BO__SCHEDULE_STATUS__ASSIGNED) {
                push_dl(s, now + s->cfg.kill_retry_initial_ms, DL_KILL_RETRY, a->task_id,
                        t->status);
            }
        }
    }
    bo_task_list_release(&l);
    sched_cron_reload(s);
    s->placement_wanted = true;
}

void bo_sched_set_leader(struct bo_sched *s, bool leader)
{
    if (leader == s->leader || s->closing) {
        return;
    }
    s->leader = leader;
    if (leader) {
        s->leader_since_ms = sched_now_ms(s);
        uint8_t r[8] = {0};
        if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
            /* no entropy: the clock still differs between terms */
            uint64_t t = (uint64_t)s->leader_since_ms;
            memcpy(r, &t, sizeof(r));
        }
        snprintf(s->session, sizeof(s->session), "s%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1],
                 r[2], r[3], r[4], r[5], r[6], r[7]);
        bo_info("scheduler: leading: rebuilding state from the store");
        rebuild(s);
        uv_timer_start(&s->tick, tick_cb, TICK_MS, TICK_MS);
        sched_kick(s);
    } else {
        bo_info("scheduler: no longer leading: scheduling stops");
        uv_timer_stop(&s->tick);
        clear_state(s, BO_ENOTLEADER);
        struct sched_work *w;
        while ((w = queue_pop(s)) != NULL) {
            work_fail(w, BO_ENOTLEADER, "not the leader");
            work_reply(w);
        }
    }
}

bool bo_sched_is_leader(const struct bo_sched *s)
{
    return s->leader;
}

/* ------------------------------------------------------------ public API --- */

int bo_sched_create(uv_loop_t *loop, struct bo_storage *storage, struct bo_metrics *metrics,
                    const struct bo_sched_config *cfg, struct bo_sched **out, struct bo_err *err)
{
    struct bo_sched *s = bo_calloc(1, sizeof(*s));
    if (s == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    if (metrics != NULL) {
        static const double bounds[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                        0.05,   0.1,   0.2,   0.5,   1,    2};
        struct bo_metric_desc d = {
            .type = BO_METRIC_HISTOGRAM,
            .name = "scheduler_log_append_seconds",
            .help = "Time from the start of a batch to the commit of its transaction",
            .bounds = bounds,
            .n_bounds = sizeof(bounds) / sizeof(*bounds),
        };
        struct bo_metric *m = NULL;
        if (bo_metrics_register(metrics, &d, &m, err) != BO_OK) {
            bo_free(s);
            return BO_ENOMEM;
        }
        s->append_latency = bo_metrics_series(m, NULL, 0);
    }
    s->loop = loop;
    s->storage = storage;
    s->store = bo_storage_store(storage);
    if (bo_store_set_task_render(s->store, sched_task_text, cfg->task_text_cache_bytes, err) !=
        BO_OK) {
        bo_free(s);
        return BO_ENOMEM;
    }
    s->cfg = *cfg;
    s->cluster = bo_strdup(cfg->cluster);
    s->hostname = bo_strdup(cfg->hostname);
    s->cfg.cluster = s->cluster;
    s->cfg.hostname = s->hostname;
    s->cfg.env_pattern = NULL;
    if (s->cluster == NULL || s->hostname == NULL) {
        bo_free(s->cluster);
        bo_free(s->hostname);
        bo_free(s);
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    if (regcomp(&s->env_re, cfg->env_pattern, REG_EXTENDED | REG_NOSUB) != 0) {
        bo_free(s->cluster);
        bo_free(s->hostname);
        bo_free(s);
        return bo_errf(err, BO_EINVAL, "environment pattern '%s' is not a valid regex",
                       cfg->env_pattern);
    }
    bo_tsm_params_init(&s->tsm);
    s->tsm.flapping_threshold_ms = cfg->flapping_threshold_ms;
    s->tsm.initial_flapping_delay_ms = cfg->initial_flapping_delay_ms;
    s->tsm.max_flapping_delay_ms = cfg->max_flapping_delay_ms;
    s->tsm.transient_timeout_ms = cfg->transient_timeout_ms;
    s->tsm.kill_retry_initial_ms = cfg->kill_retry_initial_ms;
    s->tsm.kill_retry_max_ms = cfg->kill_retry_max_ms;
    s->deadlines = (struct bo_heap)BO_HEAP_INIT;
    uv_idle_init(loop, &s->drain_idle);
    s->drain_idle.data = s;
    uv_timer_init(loop, &s->tick);
    s->tick.data = s;
    *out = s;
    return BO_OK;
}

void bo_sched_close(struct bo_sched *s)
{
    if (s->leader) {
        bo_sched_set_leader(s, false);
    }
    s->closing = true;
    struct sched_work *w;
    while ((w = queue_pop(s)) != NULL) {
        work_fail(w, BO_ESHUTDOWN, "shutting down");
        work_reply(w);
    }
    uv_timer_stop(&s->tick);
    uv_idle_stop(&s->drain_idle);
    uv_close((uv_handle_t *)&s->tick, NULL);
    uv_close((uv_handle_t *)&s->drain_idle, NULL);
}

void bo_sched_free(struct bo_sched *s)
{
    if (s == NULL) {
        return;
    }
    clear_state(s, BO_ESHUTDOWN);
    bo_heap_release(&s->deadlines);
    regfree(&s->env_re);
    bo_free(s->cluster);
    bo_free(s->hostname);
    bo_free(s);
}

static int need_leader(struct bo_sched *s, struct bo_err *err)
{
    if (s->closing) {
        return bo_errf(err, BO_ESHUTDOWN, "scheduler is shutting down");
    }
    if (!s->leader) {
        return bo_errf(err, BO_ENOTLEADER, "not the leader");
    }
    return BO_OK;
}

int bo_sched_submit(struct bo_sched *s, enum bo_sched_op op, json_t *args, bo_sched_reply_cb cb,
                    void *data, struct bo_err *err)
{
    int rc = need_leader(s, err);
    if (rc == BO_OK) {
        rc = sched_validate_op(s, op, args, err);
    }
    if (rc != BO_OK) {
        json_decref(args);
        return rc;
    }
    struct sched_work *w = work_new(W_OP);
    if (w == NULL) {
        json_decref(args);
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    w->op = op;
    w->args = args;
    w->cb = cb;
    w->data = data;
    queue_push(s, w);
    return BO_OK;
}

/* ---------------------------------------------------------------- agents --- */

static int parse_ports(const json_t *j, struct bo_place_range **out, size_t *n, struct bo_err *err)
{
    *out = NULL;
    *n = 0;
    if (j == NULL) {
        return BO_OK;
    }
    if (!json_is_array(j)) {
        return bo_errf(err, BO_EINVAL, "resources.ports: expected an array of [lo, hi]");
    }
    size_t m = json_array_size(j);
    struct bo_place_range *r = bo_calloc(m == 0 ? 1 : m, sizeof(*r));
    if (r == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < m; i++) {
        json_t *e = json_array_get(j, i);
        json_t *lo = json_array_get(e, 0), *hi = json_array_get(e, 1);
        if (!json_is_array(e) || json_array_size(e) != 2 || !json_is_integer(lo) ||
            !json_is_integer(hi) || json_integer_value(lo) < 1 || json_integer_value(hi) > 65535 ||
            json_integer_value(lo) > json_integer_value(hi)) {
            bo_free(r);
            return bo_errf(err, BO_EINVAL,
                           "resources.ports[%zu]: expected [lo, hi] with 1 <= lo <= hi <= 65535",
                           i);
        }
        r[i].lo = (int32_t)json_integer_value(lo);
        r[i].hi = (int32_t)json_integer_value(hi);
    }
    *out = r;
    *n = m;
    return BO_OK;
}

int bo_sched_agent_register(struct bo_sched *s, json_t *args, bo_sched_reply_cb cb, void *data,
                            struct bo_err *err)
{
    int rc = need_leader(s, err);
    if (rc != BO_OK) {
        json_decref(args);
        return rc;
    }
    const char *host = NULL, *id = NULL;
    json_t *res = NULL, *attrs = NULL, *tasks = NULL;
    double cpus = 0;
    json_int_t ram = 0, disk = 0, ack = 0;
    const char *session = "";
    json_error_t jerr;
    if (json_unpack_ex(args, &jerr, JSON_STRICT,
                       "{s?s, s:s, s:{s:F, s:I, s:I, s?o}, s?o, s?o, s?s, s?I}", "agent_id", &id,
                       "host", &host, "resources", "cpus", &cpus, "ram_mb", &ram, "disk_mb", &disk,
                       "ports", &res, "attributes", &attrs, "tasks", &tasks, "session", &session,
                       "ack", &ack) != 0) {
        json_decref(args);
        return bo_errf(err, BO_EINVAL, "registration: %s", jerr.text);
    }
    if (host[0] == '\0' || cpus <= 0 || ram <= 0 || disk < 0) {
        json_decref(args);
        return bo_errf(err, BO_EINVAL,
                       "registration: host must be set and cpus and ram_mb must be positive");
    }
    struct bo_place_range *ranges;
    size_t n_ranges;
    rc = parse_ports(res, &ranges, &n_ranges, err);
    if (rc != BO_OK) {
        json_decref(args);
        return rc;
    }
    /* attributes: {name: [values]} or {name: value} */
    size_t n_attrs = attrs != NULL ? json_object_size(attrs) : 0;
    struct bo_place_attr *pa = bo_calloc(n_attrs + 1, sizeof(*pa));
    if (pa == NULL) {
        bo_free(ranges);
        json_decref(args);
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    const char *k;
    json_t *v;
    size_t ai = 0;
    if (attrs != NULL && !json_is_object(attrs)) {
        rc = bo_errf(err, BO_EINVAL, "attributes: expected an object");
    } else if (attrs != NULL) {
        json_object_foreach(attrs, k, v)
        {
            pa[ai].name = k;
            const char **vals = NULL;
            if (json_is_string(v)) {
                vals = bo_calloc(1, sizeof(char *));
                if (vals != NULL) {
                    vals[0] = json_string_value(v);
                    pa[ai].n_values = 1;
                }
            } else if (json_is_array(v)) {
                size_t m = json_array_size(v);
                vals = bo_calloc(m + 1, sizeof(char *));
                for (size_t x = 0; x < m && vals != NULL; x++) {
                    if (!json_is_string(json_array_get(v, x))) {
                        rc = bo_errf(err, BO_EINVAL, "attributes.%s: expected strings", k);
                        break;
                    }
                    vals[x] = json_string_value(json_array_get(v, x));
                    pa[ai].n_values = x + 1;
                }
            } else {
                rc = bo_errf(err, BO_EINVAL, "attributes.%s: expected a string or strings", k);
            }
            pa[ai].values = vals;
            ai++;
            if (rc != BO_OK) {
                break;
            }
        }
    }
    char idbuf[64];
    if (rc == BO_OK && (id == NULL || id[0] == '\0')) {
        uint8_t r[8];
        if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
            rc = bo_errf(err, BO_EIO, "registration: no randomness for an agent id");
        }
        snprintf(idbuf, sizeof(idbuf), "agent-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2],
                 r[3], r[4], r[5], r[6], r[7]);
        id = idbuf;
    }
    struct sched_agent *a = NULL;
    if (rc == BO_OK) {
        /* An agent that comes back on another host under the same id, or a
         * new agent id on a known host: the host record follows the agent. */
        a = agent_get(s, id, host);
        if (a == NULL) {
            rc = bo_errf(err, BO_ENOMEM, "out of memory");
        } else if (strcmp(session, s->session) == 0 && ack > 0 && (uint64_t)ack < a->next_seq) {
            /* Same session: the agent has handled up to `ack` (a reconcile
             * command answered by this very registration, say). An ack from
             * another session numbers other commands and is ignored. */
            agent_drop_cmds(a, (uint64_t)ack);
        }
    }
    if (rc == BO_OK) {
        if (strcmp(a->host, host) != 0) {
            bo_free(a->host);
            a->host = bo_strdup(host);
        }
        a->registered = true;
        a->partitioned = false;
        a->last_seen_ms = sched_now_ms(s);
        struct bo_place_host_spec h = {.name = host,
                                       .agent_id = id,
                                       .cpus = cpus,
                                       .ram_mb = ram,
                                       .disk_mb = disk,
                                       .ranges = ranges,
                                       .n_ranges = n_ranges,
                                       .attrs = pa,
                                       .n_attrs = ai};
        rc = bo_place_upsert_host(s->place, &h, err);
        if (rc == BO_OK) {
            rc = bo_place_set_usable(s->place, host, true, err);
        }
    }
    for (size_t i = 0; i < n_attrs; i++) {
        bo_free((void *)pa[i].values);
    }
    bo_free(pa);
    bo_free(ranges);
    if (rc != BO_OK) {
        json_decref(args);
        return rc;
    }
    pjobs_retry_all(s);
    /* Reconcile what it runs, and record its attributes, in the next batch. */
    struct sched_work *w = work_new(W_RECONCILE);
    if (w != NULL) {
        w->args = json_pack("{s:s, s:s, s:o}", "agent_id", id, "host", host, "tasks",
                            tasks != NULL ? json_incref(tasks) : json_array());
        queue_push(s, w);
    }
    struct sched_work *hw = work_new(W_HOST_ATTRS);
    if (hw != NULL) {
        hw->args = json_pack("{s:s, s:s, s:o}", "agent_id", id, "host", host, "attributes",
                             attrs != NULL ? json_incref(attrs) : json_object());
        queue_push(s, hw);
    }
    /* Where the agent's acks start in this session: just before the first
     * command still queued for it. */
    uint64_t resume = a->cmds != NULL ? a->cmds->seq - 1 : a->next_seq - 1;
    json_t *reply = json_pack("{s:s, s:I, s:I, s:s, s:I}", "agent_id", id, "poll_hold_ms",
                              (json_int_t)s->cfg.agent_poll_hold_ms, "timeout_ms",
                              (json_int_t)s->cfg.agent_timeout_ms, "session", s->session, "ack",
                              (json_int_t)resume);
    json_decref(args);
    cb(data, BO_OK, NULL, reply);
    json_decref(reply);
    return BO_OK;
}

int bo_sched_agent_poll(struct bo_sched *s, json_t *args, bo_sched_reply_cb cb, void *data,
                        struct bo_err *err)
{
    int rc = need_leader(s, err);
    if (rc != BO_OK) {
        json_decref(args);
        return rc;
    }
    const char *id = NULL;
    json_int_t ack = 0;
    json_error_t jerr;
    if (json_unpack_ex(args, &jerr, JSON_STRICT, "{s:s, s?I}", "agent_id", &id, "ack", &ack) != 0) {
        json_decref(args);
        return bo_errf(err, BO_EINVAL, "poll: %s", jerr.text);
    }
    struct sched_agent *a = agent_find(s, id);
    if (a == NULL || !a->registered) {
        rc = bo_errf(err, BO_ENOTFOUND, "agent '%s' is not registered", id);
        json_decref(args);
        return rc;
    }
    json_decref(args);
    a->last_seen_ms = sched_now_ms(s);
    if (a->partitioned) {
        /* back after a partition: it must register again to reconcile */
        return bo_errf(err, BO_ENOTFOUND, "agent '%s' was partitioned: register again", a->id);
    }
    agent_drop_cmds(a, (uint64_t)ack);
    /* A newer poll replaces a parked one (the agent gave up on it). */
    agent_answer_poll(a, BO_OK, NULL);
    a->poll_cb = cb;
    a->poll_data = data;
    a->poll_deadline_ms = a->last_seen_ms + s->cfg.agent_poll_hold_ms;
    if (a->cmds != NULL) {
        agent_answer_poll(a, BO_OK, NULL);
    }
    return BO_OK;
}

void bo_sched_agent_poll_cancel(struct bo_sched *s, void *data)
{
    struct sched_agent *a, *tmp;
    HASH_ITER(hh, s->agents, a, tmp)
    {
        if (a->poll_cb != NULL && a->poll_data == data) {
            a->poll_cb = NULL;
            a->poll_data = NULL;
        }
    }
}

int bo_sched_read(struct bo_sched *s, const char *what, const json_t *args, json_t **out,
                  struct bo_err *err)
{
    return sched_read(s, what, args, out, err);
}

/* Used by reads: the pending reason of a job, NULL if none. */
const char *sched_pending_reason(struct bo_sched *s, const char *job_key)
{
    struct sched_pjob *p = NULL;
    HASH_FIND_STR(s->pjobs, job_key, p);
    return p != NULL ? p->reason : NULL;
}

static void done_cb(struct bo_storage *st, int status, const char *message, void *data)
{
    (void)st;
    struct sched_work *w = data;
    w->status = status;
    if (status != BO_OK) {
        work_fail(w, status, message);
    } else if (message != NULL) {
        w->result = json_pack("{s:s}", "name", message);
    }
    work_reply(w);
}

static int admin_async(struct bo_sched *s, bool snapshot, bo_sched_reply_cb cb, void *data,
                       struct bo_err *err)
{
    int rc = need_leader(s, err);
    if (rc != BO_OK) {
        return rc;
    }
    struct sched_work *w = work_new(W_OP);
    if (w == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    w->cb = cb;
    w->data = data;
    rc = snapshot ? bo_storage_snapshot_now(s->storage, done_cb, w, err)
                  : bo_storage_backup_now(s->storage, done_cb, w, err);
    if (rc != BO_OK) {
        work_free(w);
    }
    return rc;
}

int bo_sched_snapshot(struct bo_sched *s, bo_sched_reply_cb cb, void *data, struct bo_err *err)
{
    return admin_async(s, true, cb, data, err);
}

int bo_sched_backup(struct bo_sched *s, bo_sched_reply_cb cb, void *data, struct bo_err *err)
{
    return admin_async(s, false, cb, data, err);
}

/* Explicit reconciliation: every agent reports its tasks at its next poll by
 * registering again. */
int bo_sched_reconcile(struct bo_sched *s, struct bo_err *err)
{
    int rc = need_leader(s, err);
    if (rc != BO_OK) {
        return rc;
    }
    struct sched_agent *a, *tmp;
    HASH_ITER(hh, s->agents, a, tmp)
    {
        if (a->registered) {
            json_t *cmd = json_pack("{s:s, s:s}", "type", "reconcile", "task_id", "");
            if (cmd != NULL) {
                agent_push_cmd(a, cmd, "", false);
                json_decref(cmd);
            }
            agent_answer_poll(a, BO_OK, NULL);
        }
    }
    return BO_OK;
}

bool sched_agent_launch_pending(struct bo_sched *s, const char *agent_id, const char *task_id)
{
    struct sched_agent *a = agent_find(s, agent_id);
    return a != NULL && agent_launch_pending(a, task_id);
}

bool sched_agent_registered(struct bo_sched *s, const char *agent_id)
{
    struct sched_agent *a = agent_find(s, agent_id);
    return a != NULL && a->registered && !a->partitioned;
}

void bo_sched_get_stats(const struct bo_sched *s, struct bo_sched_stats *out)
{
    *out = s->stats;
    out->queued = s->queued;
    out->pending_jobs = HASH_COUNT(s->pjobs);
    out->agents_registered = out->agents_partitioned = out->agents_unconfirmed = 0;
    for (const struct sched_agent *a = s->agents; a != NULL; a = a->hh.next) {
        if (!a->registered) {
            out->agents_unconfirmed++;
        } else if (a->partitioned) {
            out->agents_partitioned++;
        } else {
            out->agents_registered++;
        }
    }
}

void bo_sched_pending_reasons(struct bo_sched *s, bo_sched_reason_cb cb, void *ctx)
{
    for (struct sched_pjob *p = s->pjobs; p != NULL; p = p->hh.next) {
        char role[256], env[256], name[256];
        if (sscanf(p->key, "%255[^/]/%255[^/]/%255s", role, env, name) != 3) {
            continue;
        }
        Bo__JobKey key = BO__JOB_KEY__INIT;
        key.role = role;
        key.environment = env;
        key.name = name;
        const Bo__JobKey *keys[1] = {&key};
        Bo__ScheduleStatus st = BO__SCHEDULE_STATUS__PENDING;
        struct bo_task_query q = {
            .job_keys = keys, .n_job_keys = 1, .statuses = &st, .n_statuses = 1};
        uint64_t n = 0;
        struct bo_err err = BO_ERR_INIT;
        if (bo_store_count_tasks(s->store, &q, &n, &err) == BO_OK && n > 0) {
            cb(p->reason != NULL ? p->reason : "", n, ctx);
        }
    }
}
