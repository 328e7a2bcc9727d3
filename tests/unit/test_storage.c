/*
 * Unit tests for src/storage/storage.c: a single raft voter on real disk in a
 * temporary directory, driven on a real libuv loop. Every wait is bounded.
 * (Replication across processes, kills and corruption are in tests/e2e.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/mem.h"
#include "storage/backup.h"
#include "storage/storage.h"
#include "testnet.h"

struct fx {
    uv_loop_t loop;
    struct bo_storage *s;
    char dir[64];
    char data[128];
    char backups[128];
    char addr[32];
    int writes_done;
    int last_status;
    char last_msg[512];
    int done_calls;
    int done_status;
    char done_msg[512];
    bool closed;
    int roles_seen;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Run the loop until *flag becomes true or the deadline passes. */
static bool run_until(uv_loop_t *loop, const bool *flag, int timeout_ms)
{
    double end = now_ms() + timeout_ms;
    while (!*flag && now_ms() < end) {
        uv_run(loop, UV_RUN_ONCE);
    }
    return *flag;
}

static void role_cb(struct bo_storage *s, enum bo_storage_role role, void *data)
{
    (void)s;
    (void)role;
    struct fx *f = data;
    f->roles_seen++;
}

static void open_storage(struct fx *f)
{
    struct bo_storage_config cfg;
    bo_storage_config_init(&cfg);
    cfg.data_dir = f->data;
    cfg.address = f->addr;
    cfg.backup_dir = f->backups;
    cfg.backup_interval_ms = 0;
    cfg.snapshot_threshold = 64;
    cfg.snapshot_trailing = 8;
    cfg.role_cb = role_cb;
    cfg.data = f;
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_storage_open(&f->loop, &cfg, &f->s, &err);
    if (rv != BO_OK) {
        fail_msg("open: %s", bo_err_msg(&err, rv));
    }
    /* A single voter leads once it has committed its barrier. */
    double end = now_ms() + 10000;
    while (bo_storage_role(f->s) != BO_ROLE_LEADER && now_ms() < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(bo_storage_role(f->s), BO_ROLE_LEADER);
}

static void closed_cb(struct bo_storage *s)
{
    (void)s;
}

static void close_storage(struct fx *f)
{
    bo_storage_close(f->s, closed_cb);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    bo_storage_free(f->s);
    f->s = NULL;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/bo-test-storage-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        return -1;
    }
    snprintf(f->data, sizeof(f->data), "%s/data", f->dir);
    snprintf(f->backups, sizeof(f->backups), "%s/backups", f->dir);
    /* A single voter never dials itself; the port only has to be valid. */
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", test_free_port());
    uv_loop_init(&f->loop);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->s != NULL) {
        close_storage(f);
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* A transaction saving `n` tasks with ids prefix-0.. of job www/prod/<job>. */
struct txn_buf {
    Bo__JobKey key;
    Bo__TaskConfig cfg;
    Bo__Resource cpu;
    Bo__Resource *res[1];
    Bo__AssignedTask at[8];
    Bo__ScheduledTask t[8];
    Bo__ScheduledTask *tp[8];
    char ids[8][32];
    Bo__SaveTasks save;
    Bo__Op op;
    Bo__Op *ops[1];
    Bo__Transaction txn;
};

static Bo__Transaction *make_txn(struct txn_buf *b, const char *job, const char *prefix, int n)
{
    memset(b, 0, sizeof(*b));
    bo__job_key__init(&b->key);
    b->key.role = "www";
    b->key.environment = "prod";
    b->key.name = (char *)job;
    bo__resource__init(&b->cpu);
    b->cpu.kind_case = BO__RESOURCE__KIND_NUM_CPUS;
    b->cpu.num_cpus = 1;
    b->res[0] = &b->cpu;
    bo__task_config__init(&b->cfg);
    b->cfg.job = &b->key;
    b->cfg.n_resources = 1;
    b->cfg.resources = b->res;
    for (int i = 0; i < n; i++) {
        snprintf(b->ids[i], sizeof(b->ids[i]), "%s-%d", prefix, i);
        bo__assigned_task__init(&b->at[i]);
        b->at[i].task_id = b->ids[i];
        b->at[i].task = &b->cfg;
        b->at[i].instance_id = i;
        bo__scheduled_task__init(&b->t[i]);
        b->t[i].assigned_task = &b->at[i];
        b->t[i].status = BO__SCHEDULE_STATUS__RUNNING;
        b->tp[i] = &b->t[i];
    }
    bo__save_tasks__init(&b->save);
    b->save.n_tasks = (size_t)n;
    b->save.tasks = b->tp;
    bo__op__init(&b->op);
    b->op.op_case = BO__OP__OP_SAVE_TASKS;
    b->op.save_tasks = &b->save;
    b->ops[0] = &b->op;
    bo__transaction__init(&b->txn);
    b->txn.n_ops = 1;
    b->txn.ops = b->ops;
    b->txn.schema_version = BO_SCHEMA_VERSION;
    return &b->txn;
}

struct wreq {
    struct bo_storage_write w;
    struct fx *f;
    bool fired;
};

static void write_cb(struct bo_storage_write *req, int status, const char *msg)
{
    struct wreq *r = (struct wreq *)req;
    assert_false(r->fired); /* exactly once */
    r->fired = true;
    r->f->writes_done++;
    r->f->last_status = status;
    snprintf(r->f->last_msg, sizeof(r->f->last_msg), "%s", msg != NULL ? msg : "");
}

static uint64_t count_tasks(struct fx *f, const char *job)
{
    Bo__JobKey key = BO__JOB_KEY__INIT;
    key.role = "www";
    key.environment = "prod";
    key.name = (char *)job;
    const Bo__JobKey *keys[] = {&key};
    struct bo_task_query q = {.job_keys = keys, .n_job_keys = job != NULL ? 1 : 0};
    uint64_t n = 0;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_store_count_tasks(bo_storage_store(f->s), &q, &n, &err), BO_OK);
    return n;
}

static void write_sync(struct fx *f, const char *job, const char *prefix, int n)
{
    struct txn_buf b;
    struct wreq r = {.f = f};
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_storage_write(f->s, &r.w, make_txn(&b, job, prefix, n), write_cb, &err);
    if (rv != BO_OK) {
        fail_msg("write: %s", bo_err_msg(&err, rv));
    }
    assert_true(run_until(&f->loop, &r.fired, 10000));
    assert_int_equal(f->last_status, BO_OK);
    assert_true(r.w.index > 0);
}

static void writes_commit_and_survive_restart(void **state)
{
    struct fx *f = *state;
    open_storage(f);
    assert_true(f->roles_seen >= 1);
    for (int i = 0; i < 10; i++) {
        char prefix[16];
        snprintf(prefix, sizeof(prefix), "a%d", i);
        write_sync(f, "web", prefix, 3);
    }
    assert_int_equal(count_tasks(f, "web"), 30);
    uint64_t digest1;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_store_digest(bo_storage_store(f->s), &digest1, &err), BO_OK);
    struct bo_storage_stats st;
    bo_storage_stats(f->s, &st);
    assert_int_equal(st.writes_committed, 10);
    close_storage(f);

    open_storage(f);
    assert_int_equal(count_tasks(f, "web"), 30);
    uint64_t digest2;
    assert_int_equal(bo_store_digest(bo_storage_store(f->s), &digest2, &err), BO_OK);
    assert_true(digest1 == digest2);
}

static void bad_write_fails_at_once_and_callback_never_fires(void **state)
{
    struct fx *f = *state;
    open_storage(f);
    struct txn_buf b;
    Bo__Transaction *txn = make_txn(&b, "web", "x", 2);
    b.at[1].task_id = b.at[0].task_id; /* duplicate id in one SaveTasks */
    struct wreq r = {.f = f};
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_storage_write(f->s, &r.w, txn, write_cb, &err);
    assert_int_equal(rv, BO_EINVAL);
    assert_true(strlen(err.msg) > 0);
    /* Nothing was appended: the loop runs a while and the callback stays
     * quiet, the state is unchanged. */
    bool never = false;
    run_until(&f->loop, &never, 200);
    assert_false(r.fired);
    assert_int_equal(count_tasks(f, NULL), 0);
}

static void done_cb(struct bo_storage *s, int status, const char *msg, void *data)
{
    (void)s;
    struct fx *f = data;
    f->done_calls++;
    f->done_status = status;
    snprintf(f->done_msg, sizeof(f->done_msg), "%s", msg != NULL ? msg : "");
}

static bool done_flag(struct fx *f, int want)
{
    return f->done_calls >= want;
}

static void wait_done(struct fx *f, int want)
{
    double end = now_ms() + 20000;
    while (!done_flag(f, want) && now_ms() < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(f->done_calls, want);
}

static void snapshot_on_demand_then_restore(void **state)
{
    struct fx *f = *state;
    open_storage(f);
    for (int i = 0; i < 5; i++) {
        char prefix[16];
        snprintf(prefix, sizeof(prefix), "s%d", i);
        write_sync(f, "api", prefix, 4);
    }
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_storage_snapshot_now(f->s, done_cb, f, &err), BO_OK);
    /* One at a time. */
    assert_int_equal(bo_storage_snapshot_now(f->s, done_cb, f, &err), BO_EBUSY);
    wait_done(f, 1);
    assert_int_equal(f->done_status, BO_OK);
    struct bo_storage_stats st;
    bo_storage_stats(f->s, &st);
    assert_int_equal(st.snapshots_taken, 1);
    assert_true(st.last_snapshot_bytes > 32);
    write_sync(f, "api", "after", 2);
    close_storage(f);
    /* Restart: snapshot, then the entry after it. */
    open_storage(f);
    assert_int_equal(count_tasks(f, "api"), 22);
}

static void backup_stage_query_delete_commit(void **state)
{
    struct fx *f = *state;
    open_storage(f);
    write_sync(f, "db", "keep", 4);
    write_sync(f, "cache", "drop", 3);
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_storage_backup_now(f->s, done_cb, f, &err), BO_OK);
    wait_done(f, 1);
    assert_int_equal(f->done_status, BO_OK);
    char name[sizeof(f->done_msg)];
    memcpy(name, f->done_msg, sizeof(name));
    assert_non_null(strstr(name, BO_BACKUP_PREFIX));

    /* Changes after the backup are what recovery undoes. */
    write_sync(f, "late", "late", 2);
    assert_int_equal(count_tasks(f, NULL), 9);

    assert_int_equal(bo_storage_recovery_stage(f->s, name, &err), BO_OK);
    assert_int_equal(bo_storage_recovery_stage(f->s, name, &err), BO_EBUSY);
    Bo__JobKey key = BO__JOB_KEY__INIT;
    key.role = "www";
    key.environment = "prod";
    key.name = "cache";
    const Bo__JobKey *keys[] = {&key};
    struct bo_task_query q = {.job_keys = keys, .n_job_keys = 1};
    struct bo_task_list list = {0};
    assert_int_equal(bo_storage_recovery_query(f->s, &q, &list, &err), BO_OK);
    assert_int_equal(list.n, 3);
    bo_task_list_release(&list);
    uint64_t deleted = 0;
    assert_int_equal(bo_storage_recovery_delete(f->s, &q, &deleted, &err), BO_OK);
    assert_int_equal(deleted, 3);
    assert_int_equal(bo_storage_recovery_commit(f->s, done_cb, f, &err), BO_OK);
    wait_done(f, 2);
    assert_int_equal(f->done_status, BO_OK);
    /* The live state is now the backup minus the deleted job. */
    assert_int_equal(count_tasks(f, "db"), 4);
    assert_int_equal(count_tasks(f, "cache"), 0);
    assert_int_equal(count_tasks(f, "late"), 0);
    assert_int_equal(bo_storage_recovery_unload(f->s, &err), BO_ENOTFOUND);
    close_storage(f);
    /* And it went through the log: a restart sees the same. */
    open_storage(f);
    assert_int_equal(count_tasks(f, NULL), 4);

    /* A name with a slash is refused; a missing backup is not found. */
    assert_int_equal(bo_storage_recovery_stage(f->s, "../x", &err), BO_EINVAL);
    assert_int_not_equal(bo_storage_recovery_stage(f->s, "scheduler-backup-1999-01-01-00-00", &err),
                         BO_OK);
}

/* Many writes in flight at once: the applier applies them on its own
 * thread, yet each callback fires in log order, after its entry is applied
 * (its task is there to read), and a snapshot taken in the middle of them is
 * at a consistent point: a restart from it has every write. */
#define INFLIGHT 200

struct flight {
    struct wreq r[INFLIGHT];
    struct txn_buf b;
    char prefix[INFLIGHT][16];
    uint64_t last_index;
    int in_order;
    int saw_own;
};

static struct flight *flight_of;

static void flight_cb(struct bo_storage_write *req, int status, const char *msg)
{
    write_cb(req, status, msg);
    struct wreq *r = (struct wreq *)req;
    struct flight *fl = flight_of;
    size_t k = (size_t)(r - fl->r);
    if (status != BO_OK) {
        return;
    }
    if (req->index > fl->last_index) {
        fl->in_order++;
    }
    fl->last_index = req->index;
    char id[48];
    snprintf(id, sizeof(id), "%s-0", fl->prefix[k]);
    const char *ids[] = {id};
    struct bo_task_query q = {.task_ids = ids, .n_task_ids = 1};
    uint64_t n = 0;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_store_count_tasks(bo_storage_store(r->f->s), &q, &n, &err), BO_OK);
    fl->saw_own += n == 1;
}

static void writes_in_flight_complete_in_order_after_their_apply(void **state)
{
    struct fx *f = *state;
    open_storage(f);
    struct flight *fl = calloc(1, sizeof(*fl));
    flight_of = fl;
    struct bo_err err = BO_ERR_INIT;
    for (int k = 0; k < INFLIGHT; k++) {
        snprintf(fl->prefix[k], sizeof(fl->prefix[k]), "f%d", k);
        fl->r[k].f = f;
        int rv = bo_storage_write(f->s, &fl->r[k].w, make_txn(&fl->b, "fly", fl->prefix[k], 1),
                                  flight_cb, &err);
        if (rv != BO_OK) {
            fail_msg("write %d: %s", k, bo_err_msg(&err, rv));
        }
        if (k == INFLIGHT / 2) {
            assert_int_equal(bo_storage_snapshot_now(f->s, done_cb, f, &err), BO_OK);
        }
    }
    double end = now_ms() + 20000;
    while ((f->writes_done < INFLIGHT || f->done_calls < 1) && now_ms() < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(f->writes_done, INFLIGHT);
    assert_int_equal(f->done_calls, 1);
    assert_int_equal(f->done_status, BO_OK);
    assert_int_equal(fl->in_order, INFLIGHT);
    assert_int_equal(fl->saw_own, INFLIGHT);
    struct bo_storage_stats st;
    bo_storage_stats(f->s, &st);
    assert_int_equal(st.writes_committed, INFLIGHT + 1); /* and the snapshot's noop */
    assert_true(st.entries_applied >= INFLIGHT);
    close_storage(f);
    open_storage(f);
    assert_int_equal(count_tasks(f, "fly"), INFLIGHT);
    free(fl);
}

/* An entry that passes the log but not the store (bytes that do not decode,
 * appended as they are) fails its own write, with the store's reason; the
 * writes around it, in flight with it, are applied. */
static void entry_the_store_rejects_fails_only_its_write(void **state)
{
    struct fx *f = *state;
    open_storage(f);
    struct txn_buf b1, b2;
    struct wreq before = {.f = f}, bad = {.f = f}, after = {.f = f};
    struct bo_err err = BO_ERR_INIT;
    static const uint8_t junk[] = {0x0a, 0x7f, 0x01}; /* a field longer than its entry */
    assert_int_equal(bo_storage_write(f->s, &before.w, make_txn(&b1, "ok", "b", 1), write_cb, &err),
                     BO_OK);
    assert_int_equal(bo_storage_write_entry(f->s, &bad.w, junk, sizeof(junk), write_cb, &err),
                     BO_OK);
    assert_int_equal(bo_storage_write(f->s, &after.w, make_txn(&b2, "ok", "a", 1), write_cb, &err),
                     BO_OK);
    double end = now_ms() + 10000;
    while (f->writes_done < 3 && now_ms() < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(f->writes_done, 3);
    if (f->last_status != BO_OK) {
        fail_msg("last write: %d %s", f->last_status, f->last_msg);
    }
    assert_true(before.fired && bad.fired && after.fired);
    assert_int_equal(count_tasks(f, "ok"), 2);
    struct bo_storage_stats st;
    bo_storage_stats(f->s, &st);
    assert_int_equal(st.writes_committed, 2);
    assert_int_equal(st.writes_failed, 1);
}

/* The same two with every entry through the applier: under this light a
 * load the loop would apply them itself (storage.c, applier_light). */
static void through_the_applier(void **state, void (*test)(void **))
{
    assert_int_equal(setenv("BO_APPLIER", "all", 1), 0);
    test(state);
    unsetenv("BO_APPLIER");
}

static void applier_writes_in_flight_complete_in_order(void **state)
{
    through_the_applier(state, writes_in_flight_complete_in_order_after_their_apply);
}

static void applier_rejected_entry_fails_only_its_write(void **state)
{
    through_the_applier(state, entry_the_store_rejects_fails_only_its_write);
}

static void open_refuses_bad_config(void **state)
{
    struct fx *f = *state;
    struct bo_storage_config cfg;
    bo_storage_config_init(&cfg);
    struct bo_err err = BO_ERR_INIT;
    struct bo_storage *s = NULL;
    assert_int_equal(bo_storage_open(&f->loop, &cfg, &s, &err), BO_EINVAL);
    assert_null(s);
    /* A data directory that is a file cannot be used. */
    char file[160];
    snprintf(file, sizeof(file), "%s/file", f->dir);
    FILE *fp = fopen(file, "w");
    fclose(fp);
    cfg.data_dir = file;
    cfg.address = f->addr;
    assert_int_not_equal(bo_storage_open(&f->loop, &cfg, &s, &err), BO_OK);
    assert_non_null(strstr(err.msg, "file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(writes_commit_and_survive_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_write_fails_at_once_and_callback_never_fires, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(snapshot_on_demand_then_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(backup_stage_query_delete_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(open_refuses_bad_config, setup, teardown),
        cmocka_unit_test_setup_teardown(writes_in_flight_complete_in_order_after_their_apply, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(entry_the_store_rejects_fails_only_its_write, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(applier_writes_in_flight_complete_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(applier_rejected_entry_fails_only_its_write, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
