/*
 * test_snapshot.c - snapshot images: round trips in every form, stats, and
 * corruption of every region detected without crashing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/mem.h"
#include "common/pbwire.h"
#include "storage.pb-c.h"
#include "storage/canon.h"
#include "storage/codec.h"
#include "storage/snapshot.h"

#define N_CONFIGS 7
#define N_TASKS   200

/* ---------------------------------------------------------- fixtures ---- */

/* Fixtures are built with bo_malloc and freed through this allocator (the
 * default protobuf-c one would use free()). */
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

/* A config with set-like fields in an order that depends on `shuffle`, so
 * two calls with the same `i` give equal configs that encode differently. */
static Bo__TaskConfig *make_config(int i, int shuffle)
{
    Bo__TaskConfig *c = bo_calloc(1, sizeof(*c));
    bo__task_config__init(c);
    Bo__JobKey *k = bo_calloc(1, sizeof(*k));
    bo__job_key__init(k);
    char name[32];
    snprintf(name, sizeof(name), "job%d", i);
    k->role = bo_strdup("www-data");
    k->environment = bo_strdup("prod");
    k->name = bo_strdup(name);
    c->job = k;
    c->owner_user = bo_strdup("www-data");
    c->is_service = true;
    c->priority = i;
    c->tier = bo_strdup("preferred");
    c->n_resources = 3;
    c->resources = bo_calloc(3, sizeof(*c->resources));
    for (int r = 0; r < 3; r++) {
        Bo__Resource *res = bo_calloc(1, sizeof(*res));
        bo__resource__init(res);
        int which = (r + shuffle) % 3;
        if (which == 0) {
            res->kind_case = BO__RESOURCE__KIND_NUM_CPUS;
            res->num_cpus = 0.5 + i;
        } else if (which == 1) {
            res->kind_case = BO__RESOURCE__KIND_RAM_MB;
            res->ram_mb = 128 * (i + 1);
        } else {
            res->kind_case = BO__RESOURCE__KIND_DISK_MB;
            res->disk_mb = 1024;
        }
        c->resources[r] = res;
    }
    c->n_metadata = 2;
    c->metadata = bo_calloc(2, sizeof(*c->metadata));
    for (int m = 0; m < 2; m++) {
        Bo__Metadata *md = bo_calloc(1, sizeof(*md));
        bo__metadata__init(md);
        int which = (m + shuffle) % 2;
        md->key = bo_strdup(which ? "zeta" : "alpha");
        md->value = bo_strdup("v");
        c->metadata[m] = md;
    }
    Bo__ExecutorConfig *e = bo_calloc(1, sizeof(*e));
    bo__executor_config__init(e);
    e->name = bo_strdup("AuroraExecutor");
    char data[200];
    snprintf(data, sizeof(data), "{\"processes\":[{\"name\":\"p%d\",\"cmdline\":\"sleep 60\"}]}",
             i);
    e->data = bo_strdup(data);
    c->executor_config = e;
    return c;
}

static Bo__ScheduledTask *make_task(int i, Bo__TaskConfig *config)
{
    Bo__ScheduledTask *t = bo_calloc(1, sizeof(*t));
    bo__scheduled_task__init(t);
    Bo__AssignedTask *a = bo_calloc(1, sizeof(*a));
    bo__assigned_task__init(a);
    char buf[64];
    snprintf(buf, sizeof(buf), "task-%06d-%08x", i, (unsigned)(i * 2654435761u));
    a->task_id = bo_strdup(buf);
    snprintf(buf, sizeof(buf), "host%d.example.com", i % 13);
    a->slave_host = bo_strdup(buf);
    a->slave_id = bo_strdup("agent-1");
    a->instance_id = i;
    a->task = config;
    a->n_assigned_ports = 1;
    a->assigned_ports = bo_calloc(1, sizeof(*a->assigned_ports));
    Bo__AssignedTask__AssignedPortsEntry *pe = bo_calloc(1, sizeof(*pe));
    bo__assigned_task__assigned_ports_entry__init(pe);
    pe->key = bo_strdup("http");
    pe->value = 31000 + i;
    a->assigned_ports[0] = pe;
    t->assigned_task = a;
    t->status = i % 3 == 0 ? BO__SCHEDULE_STATUS__RUNNING : BO__SCHEDULE_STATUS__PENDING;
    t->failure_count = i % 4;
    t->n_task_events = 2;
    t->task_events = bo_calloc(2, sizeof(*t->task_events));
    for (int e = 0; e < 2; e++) {
        Bo__TaskEvent *ev = bo_calloc(1, sizeof(*ev));
        bo__task_event__init(ev);
        ev->timestamp_ms = 1700000000000 + i * 10 + e;
        ev->status = e == 0 ? BO__SCHEDULE_STATUS__PENDING : BO__SCHEDULE_STATUS__RUNNING;
        ev->scheduler = bo_strdup("sched-1");
        t->task_events[e] = ev;
    }
    return t;
}

/* Hosts, cron jobs, quotas, updates, maintenance, metadata, timestamp. */
static Bo__Snapshot *make_rest(void)
{
    Bo__Snapshot *s = bo_calloc(1, sizeof(*s));
    bo__snapshot__init(s);
    s->timestamp_ms = 1700000123456;
    s->n_host_attributes = 3;
    s->host_attributes = bo_calloc(3, sizeof(*s->host_attributes));
    for (int i = 0; i < 3; i++) {
        Bo__HostAttributes *h = bo_calloc(1, sizeof(*h));
        bo__host_attributes__init(h);
        char name[32];
        snprintf(name, sizeof(name), "host%d.example.com", i);
        h->host = bo_strdup(name);
        h->slave_id = bo_strdup("agent");
        h->mode = BO__MAINTENANCE_MODE__MAINTENANCE_NONE;
        s->host_attributes[i] = h;
    }
    s->n_cron_jobs = 2;
    s->cron_jobs = bo_calloc(2, sizeof(*s->cron_jobs));
    for (int i = 0; i < 2; i++) {
        Bo__JobConfiguration *j = bo_calloc(1, sizeof(*j));
        bo__job_configuration__init(j);
        j->cron_schedule = bo_strdup("*/5 * * * *");
        j->instance_count = 2;
        j->task_config = make_config(100 + i, 0);
        j->key = bo_calloc(1, sizeof(*j->key));
        bo__job_key__init(j->key);
        j->key->role = bo_strdup("cron");
        j->key->environment = bo_strdup("prod");
        j->key->name = bo_strdup(i ? "b" : "a");
        s->cron_jobs[i] = j;
    }
    s->n_quotas = 1;
    s->quotas = bo_calloc(1, sizeof(*s->quotas));
    s->quotas[0] = bo_calloc(1, sizeof(Bo__QuotaConfiguration));
    bo__quota_configuration__init(s->quotas[0]);
    s->quotas[0]->role = bo_strdup("www-data");
    s->n_job_updates = 1;
    s->job_updates = bo_calloc(1, sizeof(*s->job_updates));
    s->job_updates[0] = bo_calloc(1, sizeof(Bo__JobUpdateDetails));
    bo__job_update_details__init(s->job_updates[0]);
    s->n_maintenance_requests = 4;
    s->maintenance_requests = bo_calloc(4, sizeof(*s->maintenance_requests));
    for (int i = 0; i < 4; i++) {
        Bo__HostMaintenanceRequest *m = bo_calloc(1, sizeof(*m));
        bo__host_maintenance_request__init(m);
        m->host = bo_strdup("h");
        m->timeout_secs = i;
        s->maintenance_requests[i] = m;
    }
    s->scheduler_metadata = bo_calloc(1, sizeof(Bo__SchedulerMetadata));
    bo__scheduler_metadata__init(s->scheduler_metadata);
    s->scheduler_metadata->cluster_id = bo_strdup("cluster-42");
    return s;
}

/* The encoded state the writer is fed: canonical configs, partial tasks. */
struct state {
    struct bo_buf cfg[N_CONFIGS];
    struct bo_buf task[N_TASKS];
    uint32_t task_cfg[N_TASKS];
    Bo__Snapshot *rest;
};

static void state_init(struct state *s)
{
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < N_CONFIGS; i++) {
        Bo__TaskConfig *c = make_config(i, i);
        assert_int_equal(bo_canon_encode_config(c, &s->cfg[i]), BO_OK);
        free_msg(c);
    }
    for (int i = 0; i < N_TASKS; i++) {
        Bo__ScheduledTask *t = make_task(i, NULL);
        size_t n = bo__scheduled_task__get_packed_size(t);
        assert_int_equal(bo_buf_reserve(&s->task[i], n), BO_OK);
        s->task[i].len = bo__scheduled_task__pack(t, s->task[i].data);
        s->task_cfg[i] = (uint32_t)((i * 3) % N_CONFIGS);
        free_msg(t);
    }
    s->rest = make_rest();
}

static void state_release(struct state *s)
{
    for (int i = 0; i < N_CONFIGS; i++) {
        bo_buf_release(&s->cfg[i]);
    }
    for (int i = 0; i < N_TASKS; i++) {
        bo_buf_release(&s->task[i]);
    }
    free_msg(s->rest);
}

static void write_image(const struct state *s, bool dedup, enum bo_codec codec,
                        struct bo_buf *image, struct bo_snap_stats *stats)
{
    struct bo_snap_writer *w;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_snap_writer_new(dedup, codec, 0, &w), BO_OK);
    for (uint32_t i = 0; i < N_CONFIGS; i++) {
        uint32_t idx;
        assert_int_equal(bo_snap_writer_add_config(w, s->cfg[i].data, s->cfg[i].len, &idx), BO_OK);
        assert_int_equal(idx, i);
    }
    for (int i = 0; i < N_TASKS; i++) {
        assert_int_equal(
            bo_snap_writer_add_task(w, s->task_cfg[i], s->task[i].data, s->task[i].len), BO_OK);
    }
    assert_int_equal(bo_snap_writer_set_rest(w, s->rest), BO_OK);
    int rv = bo_snap_writer_finish(w, image, stats, &err);
    if (rv != BO_OK) {
        fail_msg("finish: %s", bo_err_msg(&err, rv));
    }
    bo_snap_writer_free(w);
}

/* ------------------------------------------------------------ visitor ---- */

struct seen {
    struct bo_buf cfg[64];
    size_t n_cfg;
    struct bo_buf task[N_TASKS * 2];
    uint32_t task_cfg[N_TASKS * 2];
    size_t n_tasks;
    Bo__Snapshot *rest; /* repacked copy */
    int rest_calls;
    int fail_at_task; /* -1: never */
};

static int seen_config(void *data, uint32_t index, const uint8_t *config, size_t len)
{
    struct seen *s = data;
    assert_int_equal(index, s->n_cfg);
    assert_true(s->n_cfg < 64);
    bo_buf_append(&s->cfg[s->n_cfg++], config, len);
    return BO_OK;
}

static int seen_task(void *data, uint32_t config_index, const uint8_t *partial, size_t len)
{
    struct seen *s = data;
    assert_true(config_index < s->n_cfg);
    if ((int)s->n_tasks == s->fail_at_task) {
        return BO_ECANCELED;
    }
    assert_true(s->n_tasks < N_TASKS * 2);
    s->task_cfg[s->n_tasks] = config_index;
    bo_buf_append(&s->task[s->n_tasks++], partial, len);
    return BO_OK;
}

static int seen_rest(void *data, const Bo__Snapshot *rest)
{
    struct seen *s = data;
    assert_int_equal(rest->n_tasks, 0);
    s->rest_calls++;
    uint8_t *buf = bo_malloc(bo__snapshot__get_packed_size(rest) + 1);
    size_t n = bo__snapshot__pack(rest, buf);
    s->rest = bo__snapshot__unpack(&test_allocator, n, buf);
    bo_free(buf);
    return BO_OK;
}

static void seen_init(struct seen *s, struct bo_snap_visitor *v)
{
    memset(s, 0, sizeof(*s));
    s->fail_at_task = -1;
    *v = (struct bo_snap_visitor){s, seen_config, seen_task, seen_rest};
}

static void seen_release(struct seen *s)
{
    for (size_t i = 0; i < 64; i++) {
        bo_buf_release(&s->cfg[i]);
    }
    for (size_t i = 0; i < N_TASKS * 2; i++) {
        bo_buf_release(&s->task[i]);
    }
    if (s->rest != NULL) {
        free_msg(s->rest);
    }
}

/* The visitor saw exactly the state, config numbering aside. */
static void check_seen(const struct state *st, const struct seen *s)
{
    assert_int_equal(s->n_cfg, N_CONFIGS);
    assert_int_equal(s->n_tasks, N_TASKS);
    assert_int_equal(s->rest_calls, 1);
    for (int i = 0; i < N_TASKS; i++) {
        assert_int_equal(s->task[i].len, st->task[i].len);
        assert_memory_equal(s->task[i].data, st->task[i].data, st->task[i].len);
        const struct bo_buf *want = &st->cfg[st->task_cfg[i]];
        const struct bo_buf *got = &s->cfg[s->task_cfg[i]];
        assert_int_equal(got->len, want->len);
        assert_memory_equal(got->data, want->data, want->len);
    }
    assert_int_equal(s->rest->timestamp_ms, 1700000123456);
    assert_int_equal(s->rest->n_host_attributes, 3);
    assert_string_equal(s->rest->host_attributes[2]->host, "host2.example.com");
    assert_int_equal(s->rest->n_cron_jobs, 2);
    assert_string_equal(s->rest->cron_jobs[1]->key->name, "b");
    assert_int_equal(s->rest->cron_jobs[1]->task_config->priority, 101);
    assert_int_equal(s->rest->n_quotas, 1);
    assert_int_equal(s->rest->n_job_updates, 1);
    assert_int_equal(s->rest->n_maintenance_requests, 4);
    assert_int_equal(s->rest->maintenance_requests[3]->timeout_secs, 3);
    assert_string_equal(s->rest->scheduler_metadata->cluster_id, "cluster-42");
}

static void check_counts(const struct bo_snap_stats *st)
{
    assert_int_equal(st->tasks, N_TASKS);
    assert_int_equal(st->configs, N_CONFIGS);
    assert_int_equal(st->hosts, 3);
    assert_int_equal(st->cron_jobs, 2);
    assert_int_equal(st->quotas, 1);
    assert_int_equal(st->job_updates, 1);
    assert_int_equal(st->maintenance, 4);
    assert_int_equal(st->timestamp_ms, 1700000123456);
}

/* -------------------------------------------------------------- tests ---- */

static const enum bo_codec codecs[] = {BO_CODEC_NONE, BO_CODEC_ZLIB, BO_CODEC_ZSTD};

static void test_roundtrip_all_forms(void **state)
{
    (void)state;
    struct state st;
    state_init(&st);
    for (int d = 0; d < 2; d++) {
        for (size_t c = 0; c < 3; c++) {
            struct bo_buf image = BO_BUF_INIT;
            struct bo_snap_stats ws, rs;
            write_image(&st, d == 0, codecs[c], &image, &ws);
            assert_memory_equal(image.data, BO_SNAP_MAGIC, 8);
            check_counts(&ws);
            assert_int_equal(ws.payload_bytes, image.len - BO_SNAP_HEADER_SIZE);
            assert_int_equal(ws.codec, codecs[c]);
            assert_int_equal(ws.deduplicated, d == 0);

            struct seen seen;
            struct bo_snap_visitor v;
            seen_init(&seen, &v);
            struct bo_err err = BO_ERR_INIT;
            int rv = bo_snap_read(image.data, image.len, &v, &rs, &err);
            if (rv != BO_OK) {
                fail_msg("read: %s", bo_err_msg(&err, rv));
            }
            check_seen(&st, &seen);
            check_counts(&rs);
            /* Reader and writer agree on every number. */
            assert_int_equal(rs.raw_bytes, ws.raw_bytes);
            assert_int_equal(rs.dedup_bytes, ws.dedup_bytes);
            assert_int_equal(rs.payload_bytes, ws.payload_bytes);
            assert_int_equal(rs.codec, codecs[c]);
            assert_int_equal(rs.deduplicated, d == 0);
            /* With codec none the payload is the encoding itself. */
            if (codecs[c] == BO_CODEC_NONE) {
                assert_int_equal(ws.payload_bytes, d == 0 ? ws.dedup_bytes : ws.raw_bytes);
            } else {
                assert_true(ws.payload_bytes < ws.dedup_bytes);
            }
            assert_true(ws.dedup_bytes < ws.raw_bytes);
            seen_release(&seen);
            bo_buf_release(&image);
        }
    }
    state_release(&st);
}

/* The image appends to what the buffer already holds. */
static void test_appends_to_buffer(void **state)
{
    (void)state;
    struct state st;
    state_init(&st);
    struct bo_buf image = BO_BUF_INIT;
    bo_buf_append(&image, "prefix", 6);
    write_image(&st, true, BO_CODEC_ZSTD, &image, NULL);
    assert_memory_equal(image.data, "prefix", 6);
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_snap_read(image.data + 6, image.len - 6, NULL, NULL, &err), BO_OK);
    bo_buf_release(&image);
    state_release(&st);
}

/* A plain Snapshot built by protobuf-c (configs repeated, sets in different
 * orders) is read back deduplicated. */
static void test_plain_from_protobuf_c(void **state)
{
    (void)state;
    Bo__Snapshot *s = make_rest();
    s->n_tasks = 30;
    s->tasks = bo_calloc(30, sizeof(*s->tasks));
    for (int i = 0; i < 30; i++) {
        s->tasks[i] = make_task(i, make_config(i % 3, i));
    }
    Bo__LogEntry e = BO__LOG_ENTRY__INIT;
    e.entry_case = BO__LOG_ENTRY__ENTRY_SNAPSHOT;
    e.snapshot = s;
    size_t n = bo__log_entry__get_packed_size(&e);
    uint8_t *buf = bo_malloc(n);
    bo__log_entry__pack(&e, buf);
    struct bo_buf image = BO_BUF_INIT;
    assert_int_equal(bo_snap_wrap_image(buf, n, &image), BO_OK);

    struct seen seen;
    struct bo_snap_visitor v;
    seen_init(&seen, &v);
    struct bo_snap_stats rs;
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_snap_read(image.data, image.len, &v, &rs, &err);
    if (rv != BO_OK) {
        fail_msg("read: %s", bo_err_msg(&err, rv));
    }
    assert_int_equal(seen.n_cfg, 3);
    assert_int_equal(seen.n_tasks, 30);
    assert_int_equal(rs.configs, 3);
    assert_int_equal(rs.tasks, 30);
    assert_int_equal(rs.raw_bytes, n);
    assert_false(rs.deduplicated);
    for (int i = 0; i < 30; i++) {
        Bo__ScheduledTask *t =
            bo__scheduled_task__unpack(&test_allocator, seen.task[i].len, seen.task[i].data);
        assert_non_null(t);
        assert_null(t->assigned_task->task);
        assert_int_equal(t->assigned_task->instance_id, i);
        free_msg(t);
        Bo__TaskConfig *c = bo__task_config__unpack(&test_allocator, seen.cfg[seen.task_cfg[i]].len,
                                                    seen.cfg[seen.task_cfg[i]].data);
        assert_non_null(c);
        assert_int_equal(c->priority, i % 3);
        free_msg(c);
    }
    /* Same numbers for the same state read through the bare payload. */
    struct bo_snap_stats ps;
    assert_int_equal(bo_snap_read_payload(buf, n, NULL, &ps, &err), BO_OK);
    assert_int_equal(ps.tasks, 30);
    assert_int_equal(ps.configs, 3);
    assert_int_equal(ps.dedup_bytes, rs.dedup_bytes);

    /* Converting to dedup gives the dedup size the plain read predicted. */
    struct bo_buf conv = BO_BUF_INIT;
    struct bo_snap_stats cs;
    assert_int_equal(
        bo_snap_convert(image.data, image.len, true, BO_CODEC_NONE, 0, &conv, &cs, &err), BO_OK);
    assert_int_equal(cs.payload_bytes, rs.dedup_bytes);
    assert_int_equal(cs.raw_bytes, rs.raw_bytes);
    seen_release(&seen);
    bo_buf_release(&conv);
    bo_buf_release(&image);
    bo_free(buf);
    free_msg(s);
}

static void test_convert_chain(void **state)
{
    (void)state;
    struct state st;
    state_init(&st);
    struct bo_buf a = BO_BUF_INIT, b = BO_BUF_INIT, c = BO_BUF_INIT, d = BO_BUF_INIT;
    struct bo_snap_stats sa, sb, sc, sd;
    struct bo_err err = BO_ERR_INIT;
    write_image(&st, true, BO_CODEC_ZSTD, &a, &sa);
    assert_int_equal(bo_snap_convert(a.data, a.len, false, BO_CODEC_NONE, 0, &b, &sb, &err), BO_OK);
    assert_int_equal(bo_snap_convert(b.data, b.len, false, BO_CODEC_ZLIB, 0, &c, &sc, &err), BO_OK);
    assert_int_equal(bo_snap_convert(c.data, c.len, true, BO_CODEC_ZSTD, 0, &d, &sd, &err), BO_OK);
    /* The plain encoding's size is what the dedup writer computed. */
    assert_int_equal(sb.payload_bytes, sa.raw_bytes);
    assert_int_equal(sb.raw_bytes, sa.raw_bytes);
    assert_int_equal(sc.raw_bytes, sa.raw_bytes);
    assert_int_equal(sd.dedup_bytes, sa.dedup_bytes);
    /* Configs are renumbered in first-use order on the way through the plain
     * form, so compare plain forms: byte for byte the same. */
    struct bo_buf e = BO_BUF_INIT;
    assert_int_equal(bo_snap_convert(d.data, d.len, false, BO_CODEC_NONE, 0, &e, NULL, &err),
                     BO_OK);
    assert_int_equal(e.len, b.len);
    assert_memory_equal(e.data, b.data, b.len);
    bo_buf_release(&e);
    struct seen seen;
    struct bo_snap_visitor v;
    seen_init(&seen, &v);
    assert_int_equal(bo_snap_read(c.data, c.len, &v, NULL, &err), BO_OK);
    check_seen(&st, &seen);
    seen_release(&seen);
    bo_buf_release(&a);
    bo_buf_release(&b);
    bo_buf_release(&c);
    bo_buf_release(&d);
    state_release(&st);
}

static void test_empty_snapshot(void **state)
{
    (void)state;
    for (int d = 0; d < 2; d++) {
        struct bo_snap_writer *w;
        struct bo_buf image = BO_BUF_INIT;
        struct bo_err err = BO_ERR_INIT;
        struct bo_snap_stats ws, rs;
        assert_int_equal(bo_snap_writer_new(d == 0, BO_CODEC_ZSTD, 0, &w), BO_OK);
        assert_int_equal(bo_snap_writer_finish(w, &image, &ws, &err), BO_OK);
        bo_snap_writer_free(w);
        struct seen seen;
        struct bo_snap_visitor v;
        seen_init(&seen, &v);
        assert_int_equal(bo_snap_read(image.data, image.len, &v, &rs, &err), BO_OK);
        assert_int_equal(seen.n_tasks, 0);
        assert_int_equal(seen.rest_calls, 1);
        assert_int_equal(rs.raw_bytes, ws.raw_bytes);
        seen_release(&seen);
        bo_buf_release(&image);
    }
}

static void test_writer_rejects(void **state)
{
    (void)state;
    struct bo_snap_writer *w;
    uint32_t idx;
    assert_int_equal(bo_snap_writer_new(true, (enum bo_codec)7, 0, &w), BO_EINVAL);
    assert_int_equal(bo_snap_writer_new(true, BO_CODEC_NONE, 0, &w), BO_OK);
    assert_int_equal(bo_snap_writer_add_task(w, 0, (const uint8_t *)"", 0), BO_EINVAL);
    assert_int_equal(bo_snap_writer_add_config(w, (const uint8_t *)"\x0a\x05", 2, &idx), BO_EINVAL);
    assert_int_equal(bo_snap_writer_add_config(w, (const uint8_t *)"", 0, &idx), BO_OK);
    assert_int_equal(bo_snap_writer_add_task(w, 1, (const uint8_t *)"", 0), BO_EINVAL);
    assert_int_equal(bo_snap_writer_add_task(w, 0, (const uint8_t *)"\x0a\x09", 2), BO_EINVAL);
    Bo__Snapshot s = BO__SNAPSHOT__INIT;
    Bo__ScheduledTask t = BO__SCHEDULED_TASK__INIT;
    Bo__ScheduledTask *tp = &t;
    s.n_tasks = 1;
    s.tasks = &tp;
    assert_int_equal(bo_snap_writer_set_rest(w, &s), BO_EINVAL);
    bo_snap_writer_free(w);
}

/* Expect the read to fail cleanly with `code` and a message. */
static void expect_fail(const uint8_t *image, size_t len, int code)
{
    struct seen seen;
    struct bo_snap_visitor v;
    seen_init(&seen, &v);
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_snap_read(image, len, &v, NULL, &err);
    if (rv != code) {
        fail_msg("expected %s, got %s: %s", bo_errname(code), bo_errname(rv), bo_err_msg(&err, rv));
    }
    assert_true(strlen(err.msg) > 0);
    seen_release(&seen);
}

static void test_corrupt_everywhere(void **state)
{
    (void)state;
    struct state st;
    state_init(&st);
    for (int d = 0; d < 2; d++) {
        for (size_t c = 0; c < 3; c++) {
            struct bo_buf image = BO_BUF_INIT;
            write_image(&st, d == 0, codecs[c], &image, NULL);
            /* Every header byte, then payload bytes at many offsets. */
            for (size_t off = 0; off < image.len;
                 off += off < BO_SNAP_HEADER_SIZE ? 1 : 1 + image.len / 211) {
                for (int bit = 0; bit < 8; bit += 3) {
                    image.data[off] ^= (uint8_t)(1 << bit);
                    struct bo_err err = BO_ERR_INIT;
                    int rv = bo_snap_read(image.data, image.len, NULL, NULL, &err);
                    image.data[off] ^= (uint8_t)(1 << bit);
                    if (rv != BO_ECORRUPT && rv != BO_EVERSION) {
                        fail_msg("flip at %zu bit %d not detected (%s)", off, bit, bo_errname(rv));
                    }
                    assert_true(strstr(err.msg, "offset") != NULL);
                }
            }
            /* Truncation at many lengths, including every header length. */
            for (size_t n = 0; n < image.len; n += n < 40 ? 1 : 1 + image.len / 97) {
                uint8_t *copy = bo_malloc(n + 1);
                memcpy(copy, image.data, n);
                expect_fail(copy, n, BO_ECORRUPT);
                bo_free(copy);
            }
            /* Extra bytes at the end. */
            bo_buf_append(&image, "x", 1);
            expect_fail(image.data, image.len, BO_ECORRUPT);
            bo_buf_release(&image);
        }
    }
    state_release(&st);
}

/* Rewrite the header's checksums after tampering, so the deeper checks run. */
static void reseal(uint8_t *image, size_t len)
{
    size_t plen = len - BO_SNAP_HEADER_SIZE;
    for (int i = 0; i < 8; i++) {
        image[16 + i] = (uint8_t)((uint64_t)plen >> (8 * i));
    }
    uint32_t pc = bo_crc32(0, image + BO_SNAP_HEADER_SIZE, plen);
    for (int i = 0; i < 4; i++) {
        image[24 + i] = (uint8_t)(pc >> (8 * i));
    }
    uint32_t hc = bo_crc32(0, image, 28);
    for (int i = 0; i < 4; i++) {
        image[28 + i] = (uint8_t)(hc >> (8 * i));
    }
}

static void test_version_and_flags(void **state)
{
    (void)state;
    struct state st;
    state_init(&st);
    struct bo_buf image = BO_BUF_INIT;
    write_image(&st, true, BO_CODEC_ZSTD, &image, NULL);
    /* A compressed dedup image holds a delta entry: version 2. */
    assert_int_equal(image.data[8], 2);
    image.data[8] = 3;
    reseal(image.data, image.len);
    expect_fail(image.data, image.len, BO_EVERSION);
    image.data[8] = 2;
    image.data[12] = 1;
    reseal(image.data, image.len);
    expect_fail(image.data, image.len, BO_EVERSION);
    image.data[12] = 0;
    image.data[8] = 0;
    reseal(image.data, image.len);
    expect_fail(image.data, image.len, BO_ECORRUPT);
    image.data[8] = 2;
    reseal(image.data, image.len);
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_snap_read(image.data, image.len, NULL, NULL, &err), BO_OK);
    bo_buf_release(&image);
    /* Images without one stay at version 1, readable by older readers. */
    write_image(&st, true, BO_CODEC_NONE, &image, NULL);
    assert_int_equal(image.data[8], 1);
    bo_buf_release(&image);
    write_image(&st, false, BO_CODEC_ZSTD, &image, NULL);
    assert_int_equal(image.data[8], 1);
    bo_buf_release(&image);
    state_release(&st);
}

/* Hand-built payloads with valid checksums but bad content. */
static void expect_payload_fail(const struct bo_buf *payload, const char *needle)
{
    struct bo_buf image = BO_BUF_INIT;
    assert_int_equal(bo_snap_wrap_image(payload->data, payload->len, &image), BO_OK);
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_snap_read(image.data, image.len, NULL, NULL, &err);
    if (rv != BO_ECORRUPT || strstr(err.msg, needle) == NULL) {
        fail_msg("expected corruption '%s', got %s: %s", needle, bo_errname(rv),
                 bo_err_msg(&err, rv));
    }
    assert_true(strstr(err.msg, "offset") != NULL);
    bo_buf_release(&image);
}

static void test_bad_content(void **state)
{
    (void)state;
    struct bo_buf p = BO_BUF_INIT, d = BO_BUF_INIT, t = BO_BUF_INIT;

    /* A task pointing at config 5 of 1. */
    bo_pb_put_bytes(&d, 3, "", 0);
    bo_pb_put_bytes(&t, 1, "", 0);
    bo_pb_put_uint(&t, 2, 5);
    bo_pb_put_bytes(&d, 2, t.data, t.len);
    bo_pb_put_bytes(&d, 1, "", 0);
    bo_pb_put_bytes(&p, 4, d.data, d.len);
    expect_payload_fail(&p, "out of range");
    /* A negative config id (int32 -1 is a 10-byte varint). */
    p.len = d.len = t.len = 0;
    bo_pb_put_bytes(&d, 3, "", 0);
    bo_pb_put_uint(&t, 2, (uint64_t)(int64_t)-1);
    bo_pb_put_bytes(&d, 2, t.data, t.len);
    bo_pb_put_bytes(&p, 4, d.data, d.len);
    expect_payload_fail(&p, "out of range");

    /* An unknown codec. */
    p.len = d.len = 0;
    bo_pb_put_uint(&d, 1, 9);
    bo_pb_put_uint(&d, 2, 3);
    bo_pb_put_bytes(&d, 3, "abc", 3);
    bo_pb_put_bytes(&p, 5, d.data, d.len);
    expect_payload_fail(&p, "unknown codec 9");

    /* Compressed inside compressed (codec none keeps it simple). */
    struct bo_buf inner = BO_BUF_INIT;
    bo_pb_put_uint(&inner, 1, 0);
    bo_pb_put_uint(&inner, 2, 0);
    bo_pb_put_bytes(&inner, 3, "", 0);
    struct bo_buf inner_entry = BO_BUF_INIT;
    bo_pb_put_bytes(&inner_entry, 5, inner.data, inner.len);
    p.len = d.len = 0;
    bo_pb_put_uint(&d, 2, inner_entry.len);
    bo_pb_put_bytes(&d, 3, inner_entry.data, inner_entry.len);
    bo_pb_put_bytes(&p, 5, d.data, d.len);
    expect_payload_fail(&p, "compressed entry inside");

    /* A transaction, not a snapshot. */
    p.len = 0;
    bo_pb_put_bytes(&p, 2, "", 0);
    expect_payload_fail(&p, "transaction");

    /* Nothing at all. */
    p.len = 0;
    expect_payload_fail(&p, "without content");

    /* Garbage where the snapshot's tasks are. */
    p.len = d.len = 0;
    bo_pb_put_bytes(&d, 3, "\xff\xff\xff", 3);
    bo_pb_put_bytes(&p, 1, d.data, d.len);
    expect_payload_fail(&p, "task that does not decode");

    /* A malformed config inside a dedup snapshot. */
    p.len = d.len = 0;
    bo_pb_put_bytes(&d, 3, "\x0a\x07", 2);
    bo_pb_put_bytes(&p, 4, d.data, d.len);
    expect_payload_fail(&p, "malformed task config");

    /* A partial snapshot that protobuf-c refuses (field 2 hosts: bad bytes). */
    p.len = d.len = t.len = 0;
    bo_pb_put_bytes(&t, 2, "\x0a\x09", 2);
    bo_pb_put_bytes(&d, 1, t.data, t.len);
    bo_pb_put_bytes(&p, 4, d.data, d.len);
    expect_payload_fail(&p, "partial snapshot that does not decode");

    /* A field with a wrong wire type. */
    p.len = d.len = 0;
    bo_pb_put_uint(&d, 3, 1);
    bo_pb_put_bytes(&p, 4, d.data, d.len);
    expect_payload_fail(&p, "bad wire type");

    bo_buf_release(&inner);
    bo_buf_release(&inner_entry);
    bo_buf_release(&p);
    bo_buf_release(&d);
    bo_buf_release(&t);
}

/* Fields in any order, unknown fields skipped, full tasks left inside the
 * partial snapshot treated as tasks. */
static void test_any_order_and_leftover_tasks(void **state)
{
    (void)state;
    struct state st;
    state_init(&st);
    struct bo_buf p = BO_BUF_INIT, d = BO_BUF_INIT, t = BO_BUF_INIT, r = BO_BUF_INIT;
    /* Tasks first, then an unknown field, then configs, then the rest. */
    for (int i = 0; i < N_TASKS; i++) {
        t.len = 0;
        bo_pb_put_uint(&t, 9, 77); /* unknown */
        bo_pb_put_bytes(&t, 1, st.task[i].data, st.task[i].len);
        bo_pb_put_uint(&t, 2, st.task_cfg[i]);
        bo_pb_put_bytes(&d, 2, t.data, t.len);
    }
    bo_pb_put_uint(&d, 15, 12345);
    for (int i = 0; i < N_CONFIGS; i++) {
        bo_pb_put_bytes(&d, 3, st.cfg[i].data, st.cfg[i].len);
    }
    /* Two full tasks inside the partial snapshot: one with a config equal to
     * config 2 (set order shuffled), one with a new config. */
    Bo__Snapshot *rest = make_rest();
    rest->n_tasks = 2;
    rest->tasks = bo_calloc(2, sizeof(*rest->tasks));
    rest->tasks[0] = make_task(1000, make_config(2, 1));
    rest->tasks[1] = make_task(1001, make_config(50, 0));
    size_t n = bo__snapshot__get_packed_size(rest);
    bo_buf_reserve(&r, n);
    r.len = bo__snapshot__pack(rest, r.data);
    bo_pb_put_bytes(&d, 1, r.data, r.len);
    bo_pb_put_bytes(&p, 4, d.data, d.len);
    bo_pb_put_uint(&p, 20, 1); /* unknown LogEntry field */
    struct bo_buf image = BO_BUF_INIT;
    assert_int_equal(bo_snap_wrap_image(p.data, p.len, &image), BO_OK);

    struct seen seen;
    struct bo_snap_visitor v;
    seen_init(&seen, &v);
    struct bo_err err = BO_ERR_INIT;
    struct bo_snap_stats rs;
    int rv = bo_snap_read(image.data, image.len, &v, &rs, &err);
    if (rv != BO_OK) {
        fail_msg("read: %s", bo_err_msg(&err, rv));
    }
    assert_int_equal(seen.n_tasks, N_TASKS + 2);
    assert_int_equal(seen.n_cfg, N_CONFIGS + 1);
    assert_int_equal(rs.tasks, N_TASKS + 2);
    assert_int_equal(rs.configs, N_CONFIGS + 1);
    assert_int_equal(seen.task_cfg[N_TASKS], 2);
    assert_int_equal(seen.task_cfg[N_TASKS + 1], N_CONFIGS);
    for (int i = 0; i < N_TASKS; i++) {
        assert_int_equal(seen.task_cfg[i], st.task_cfg[i]);
        assert_memory_equal(seen.task[i].data, st.task[i].data, st.task[i].len);
    }
    assert_int_equal(seen.rest->n_host_attributes, 3);

    /* A visitor's error stops the walk and comes back as is. */
    seen_release(&seen);
    seen_init(&seen, &v);
    seen.fail_at_task = 5;
    assert_int_equal(bo_snap_read(image.data, image.len, &v, NULL, &err), BO_ECANCELED);
    assert_int_equal(seen.rest_calls, 0);

    seen_release(&seen);
    free_msg(rest);
    bo_buf_release(&image);
    bo_buf_release(&p);
    bo_buf_release(&d);
    bo_buf_release(&t);
    bo_buf_release(&r);
    state_release(&st);
}

/* A visitor that checks tasks against the state's, by position modulo N_TASKS. */
struct big_seen {
    const struct state *st;
    size_t n_cfg, n_tasks, bad;
    size_t fail_at_task; /* SIZE_MAX: never */
};

static int big_config(void *data, uint32_t index, const uint8_t *config, size_t len)
{
    struct big_seen *b = data;
    if (index != b->n_cfg || len != b->st->cfg[index].len ||
        memcmp(config, b->st->cfg[index].data, len) != 0) {
        b->bad++;
    }
    b->n_cfg++;
    return BO_OK;
}

static int big_task(void *data, uint32_t config_index, const uint8_t *partial, size_t len)
{
    struct big_seen *b = data;
    size_t i = b->n_tasks % N_TASKS;
    if (b->n_tasks == b->fail_at_task) {
        return BO_ECANCELED;
    }
    if (config_index >= b->n_cfg || config_index != b->st->task_cfg[i] ||
        len != b->st->task[i].len || memcmp(partial, b->st->task[i].data, len) != 0) {
        b->bad++;
    }
    b->n_tasks++;
    return BO_OK;
}

/* A compressed image big enough to be decoded on a thread while it is
 * walked, with configs after tasks that use them (deferred to a second
 * pass), read whole; then damaged, and with a visitor that stops early. */
static void test_streamed_payload(void **state)
{
    (void)state;
    struct state st;
    state_init(&st);
    enum { ROUNDS = 200, EARLY_CONFIGS = 4 };
    struct bo_buf d = BO_BUF_INIT, t = BO_BUF_INIT, p = BO_BUF_INIT, c = BO_BUF_INIT;
    struct bo_buf e = BO_BUF_INIT, outer = BO_BUF_INIT, image = BO_BUF_INIT, r = BO_BUF_INIT;
    for (int i = 0; i < EARLY_CONFIGS; i++) {
        bo_pb_put_bytes(&d, 3, st.cfg[i].data, st.cfg[i].len);
    }
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N_TASKS; i++) {
            t.len = 0;
            bo_pb_put_bytes(&t, 1, st.task[i].data, st.task[i].len);
            bo_pb_put_uint(&t, 2, st.task_cfg[i]);
            bo_pb_put_bytes(&d, 2, t.data, t.len);
        }
        if (round == ROUNDS / 2) {
            for (int i = EARLY_CONFIGS; i < N_CONFIGS; i++) {
                bo_pb_put_bytes(&d, 3, st.cfg[i].data, st.cfg[i].len);
            }
        }
    }
    Bo__Snapshot *rest = make_rest();
    size_t n = bo__snapshot__get_packed_size(rest);
    bo_buf_reserve(&r, n);
    r.len = bo__snapshot__pack(rest, r.data);
    bo_pb_put_bytes(&d, 1, r.data, r.len);
    bo_pb_put_bytes(&p, 4, d.data, d.len);
    assert_true(p.len > ((size_t)4 << 20)); /* what the reader decodes on a thread */
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_codec_compress(BO_CODEC_ZSTD, 0, p.data, p.len, &c, &err), BO_OK);
    bo_pb_put_uint(&e, 1, BO_CODEC_ZSTD);
    bo_pb_put_uint(&e, 2, p.len);
    bo_pb_put_bytes(&e, 3, c.data, c.len);
    bo_pb_put_bytes(&outer, 5, e.data, e.len);
    assert_int_equal(bo_snap_wrap_image(outer.data, outer.len, &image), BO_OK);

    struct big_seen b = {.st = &st, .fail_at_task = SIZE_MAX};
    struct bo_snap_visitor v = {&b, big_config, big_task, NULL};
    struct bo_snap_stats rs;
    int rv = bo_snap_read(image.data, image.len, &v, &rs, &err);
    if (rv != BO_OK) {
        fail_msg("read: %s", bo_err_msg(&err, rv));
    }
    assert_int_equal(b.bad, 0);
    assert_int_equal(b.n_cfg, N_CONFIGS);
    assert_int_equal(b.n_tasks, (size_t)ROUNDS * N_TASKS);
    assert_int_equal(rs.tasks, (size_t)ROUNDS * N_TASKS);
    assert_int_equal(rs.codec, BO_CODEC_ZSTD);

    /* A visitor's error stops the walk, decoding or not. */
    b = (struct big_seen){.st = &st, .fail_at_task = 1000};
    assert_int_equal(bo_snap_read(image.data, image.len, &v, NULL, &err), BO_ECANCELED);
    assert_int_equal(b.n_tasks, 1000);

    /* Damage in the middle of the compressed data (checksums redone): the
     * decoder's error is what comes back, whatever the walk saw first. */
    c.data[c.len / 2] ^= 0x5a;
    e.len = 0;
    outer.len = 0;
    image.len = 0;
    bo_pb_put_uint(&e, 1, BO_CODEC_ZSTD);
    bo_pb_put_uint(&e, 2, p.len);
    bo_pb_put_bytes(&e, 3, c.data, c.len);
    bo_pb_put_bytes(&outer, 5, e.data, e.len);
    assert_int_equal(bo_snap_wrap_image(outer.data, outer.len, &image), BO_OK);
    b = (struct big_seen){.st = &st, .fail_at_task = SIZE_MAX};
    assert_int_equal(bo_snap_read(image.data, image.len, &v, NULL, &err), BO_ECORRUPT);
    assert_non_null(strstr(err.msg, "compressed data at offset"));

    free_msg(rest);
    bo_buf_release(&d);
    bo_buf_release(&t);
    bo_buf_release(&p);
    bo_buf_release(&c);
    bo_buf_release(&e);
    bo_buf_release(&outer);
    bo_buf_release(&image);
    bo_buf_release(&r);
    state_release(&st);
}

/* ------------------------------------------------------- delta tasks ---- */

/* A partial task built by hand: task id, then one event per timestamp in
 * `ts` (`form` says how the event is written). */
enum ev_form { EV_NORMAL, EV_NO_TS, EV_LONG_VARINT, EV_TS_SECOND, EV_COLUMN_FIELD };

static void hand_task(struct bo_buf *t, int i, const int64_t *ts, size_t n, enum ev_form form)
{
    struct bo_buf at = BO_BUF_INIT, ev = BO_BUF_INIT;
    char id[32];
    snprintf(id, sizeof(id), "hand-%d", i);
    bo_pb_put_bytes(&at, 1, id, strlen(id));
    bo_pb_put_uint(&at, 6, (uint64_t)i);
    t->len = 0;
    bo_pb_put_bytes(t, 1, at.data, at.len);
    bo_pb_put_uint(t, 2, 2);
    for (size_t k = 0; k < n; k++) {
        ev.len = 0;
        if (form == EV_TS_SECOND) {
            bo_pb_put_uint(&ev, 2, 1);
        }
        if (form == EV_LONG_VARINT) {
            /* timestamp 5 as a two-byte varint: valid, not shortest */
            bo_buf_append(&ev, "\x08\x85\x00", 3);
        } else if (form != EV_NO_TS || k != n / 2) {
            bo_pb_put_uint(&ev, 1, (uint64_t)ts[k]);
        }
        bo_pb_put_uint(&ev, 2, 2);
        bo_pb_put_bytes(&ev, 4, "sched-1", 7);
        bo_pb_put_bytes(t, 4, ev.data, ev.len);
    }
    if (form == EV_COLUMN_FIELD) {
        bo_pb_put_bytes(t, 15, "\x01", 1); /* a newer writer's field 15 */
    }
    bo_buf_release(&at);
    bo_buf_release(&ev);
}

/* The inner LogEntry of a compressed image. */
static void inner_entry(const struct bo_buf *image, struct bo_buf *out)
{
    const uint8_t *p;
    size_t n;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_snap_check_header(image->data, image->len, &p, &n, &err), BO_OK);
    struct bo_pb_reader r, cr;
    struct bo_pb_field f, cf;
    bo_pb_reader_init(&r, p, n);
    assert_int_equal(bo_pb_next(&r, &f), 1);
    assert_int_equal(f.number, 5);
    uint64_t codec = 0, size = 0;
    const uint8_t *data = NULL;
    size_t dlen = 0;
    bo_pb_reader_init(&cr, f.data, f.len);
    while (bo_pb_next(&cr, &cf) == 1) {
        if (cf.number == 1) {
            codec = cf.varint;
        } else if (cf.number == 2) {
            size = cf.varint;
        } else if (cf.number == 3) {
            data = cf.data;
            dlen = cf.len;
        }
    }
    assert_int_equal(bo_codec_decompress((enum bo_codec)codec, data, dlen, size, out, &err), BO_OK);
}

/* How many tasks of a delta entry are delta-encoded. */
static size_t count_delta_tasks(const struct bo_buf *entry)
{
    struct bo_pb_reader r, dr, tr;
    struct bo_pb_field f, d, t;
    bo_pb_reader_init(&r, entry->data, entry->len);
    assert_int_equal(bo_pb_next(&r, &f), 1);
    assert_int_equal(f.number, 6);
    size_t n = 0;
    bo_pb_reader_init(&dr, f.data, f.len);
    while (bo_pb_next(&dr, &d) == 1) {
        if (d.number != 2) {
            continue;
        }
        bo_pb_reader_init(&tr, d.data, d.len);
        while (bo_pb_next(&tr, &t) == 1) {
            n += t.number == 3;
        }
    }
    return n;
}

/* Every task comes back byte for byte: delta-encoded where the writer can
 * undo it exactly, as it was otherwise. */
static void test_delta_round_trip(void **state)
{
    (void)state;
    struct state st;
    state_init(&st);
    /* The fixture's tasks (protobuf-c), then hand-built ones in every form,
     * with timestamps far apart, negative and at the ends of int64. */
    const int64_t wide[] = {INT64_MAX, INT64_MIN, -1, 0, 1700000000000, -1700000000000};
    const int64_t close[] = {1700000000000, 1700000000500, 1700000001200, 1700000061000};
    const enum ev_form forms[] = {EV_NORMAL, EV_NO_TS, EV_LONG_VARINT, EV_TS_SECOND,
                                  EV_COLUMN_FIELD};
    enum { N_HAND = 12 };
    struct bo_buf hand[N_HAND];
    bool encodable[N_HAND];
    for (int i = 0; i < N_HAND; i++) {
        hand[i] = (struct bo_buf)BO_BUF_INIT;
        enum ev_form form = forms[i % 5];
        if (i == 10) {
            hand_task(&hand[i], i, NULL, 0, EV_NORMAL); /* no events */
        } else if (i % 2 == 0) {
            hand_task(&hand[i], i, wide, 6, form);
        } else {
            hand_task(&hand[i], i, close, 4, form);
        }
        encodable[i] = i == 10 || form == EV_NORMAL;
    }
    for (size_t c = 1; c < 3; c++) {
        struct bo_snap_writer *w;
        struct bo_err err = BO_ERR_INIT;
        assert_int_equal(bo_snap_writer_new(true, codecs[c], 0, &w), BO_OK);
        for (uint32_t i = 0; i < N_CONFIGS; i++) {
            uint32_t idx;
            assert_int_equal(bo_snap_writer_add_config(w, st.cfg[i].data, st.cfg[i].len, &idx),
                             BO_OK);
        }
        size_t want_delta = 0;
        for (int i = 0; i < N_TASKS; i++) {
            assert_int_equal(
                bo_snap_writer_add_task(w, st.task_cfg[i], st.task[i].data, st.task[i].len), BO_OK);
            want_delta++;
            if (i % 20 == 0) {
                int h = (i / 20) % N_HAND;
                assert_int_equal(bo_snap_writer_add_task(w, 1, hand[h].data, hand[h].len), BO_OK);
                want_delta += encodable[h];
            }
        }
        assert_int_equal(bo_snap_writer_set_rest(w, st.rest), BO_OK);
        struct bo_buf image = BO_BUF_INIT, entry = BO_BUF_INIT;
        struct bo_snap_stats ws, rs;
        assert_int_equal(bo_snap_writer_finish(w, &image, &ws, &err), BO_OK);
        bo_snap_writer_free(w);
        inner_entry(&image, &entry);
        assert_int_equal(count_delta_tasks(&entry), want_delta);
        /* Stats describe the state, not its delta encoding. */
        struct bo_buf plain = BO_BUF_INIT;
        assert_int_equal(
            bo_snap_convert(image.data, image.len, true, BO_CODEC_NONE, 0, &plain, NULL, &err),
            BO_OK);
        assert_int_equal(plain.len - BO_SNAP_HEADER_SIZE, ws.dedup_bytes);

        struct seen seen;
        struct bo_snap_visitor v;
        seen_init(&seen, &v);
        int rv = bo_snap_read(image.data, image.len, &v, &rs, &err);
        if (rv != BO_OK) {
            fail_msg("read: %s", bo_err_msg(&err, rv));
        }
        assert_int_equal(rs.dedup_bytes, ws.dedup_bytes);
        assert_int_equal(rs.raw_bytes, ws.raw_bytes);
        size_t k = 0;
        for (int i = 0; i < N_TASKS; i++) {
            assert_int_equal(seen.task[k].len, st.task[i].len);
            assert_memory_equal(seen.task[k].data, st.task[i].data, st.task[i].len);
            k++;
            if (i % 20 == 0) {
                const struct bo_buf *h = &hand[(i / 20) % N_HAND];
                assert_int_equal(seen.task[k].len, h->len);
                assert_memory_equal(seen.task[k].data, h->data, h->len);
                k++;
            }
        }
        assert_int_equal(seen.n_tasks, k);
        seen_release(&seen);
        bo_buf_release(&plain);
        bo_buf_release(&entry);
        bo_buf_release(&image);
    }
    for (int i = 0; i < N_HAND; i++) {
        bo_buf_release(&hand[i]);
    }
    state_release(&st);
}

/* A delta entry built by hand around one task's encoded bytes `t`
 * (`field`: 3 delta-encoded, 1 not), in LogEntry member `member`. */
static void delta_payload(struct bo_buf *p, uint32_t member, uint32_t field, const struct bo_buf *t,
                          bool config_after)
{
    struct bo_buf d = BO_BUF_INIT, e = BO_BUF_INIT;
    if (!config_after) {
        bo_pb_put_bytes(&d, 3, "", 0);
    }
    bo_pb_put_bytes(&e, field, t->data, t->len);
    bo_pb_put_bytes(&d, 2, e.data, e.len);
    if (config_after) {
        bo_pb_put_bytes(&d, 3, "", 0);
    }
    bo_pb_put_bytes(&d, 1, "", 0);
    p->len = 0;
    bo_pb_put_bytes(p, member, d.data, d.len);
    bo_buf_release(&d);
    bo_buf_release(&e);
}

static void test_delta_malformed(void **state)
{
    (void)state;
    struct bo_buf p = BO_BUF_INIT, t = BO_BUF_INIT, ev = BO_BUF_INIT, at = BO_BUF_INIT;
    bo_pb_put_bytes(&at, 1, "x-1", 3);
    bo_pb_put_uint(&ev, 2, 2);

    /* Two events (timestamps taken out) and a column of two: fine. */
    bo_pb_put_bytes(&t, 1, at.data, at.len);
    bo_pb_put_bytes(&t, 4, ev.data, ev.len);
    bo_pb_put_bytes(&t, 4, ev.data, ev.len);
    bo_pb_put_bytes(&t, 15, "\x02\x04", 2);
    delta_payload(&p, 6, 3, &t, false);
    struct bo_buf image = BO_BUF_INIT;
    assert_int_equal(bo_snap_wrap_image(p.data, p.len, &image), BO_OK);
    struct seen seen;
    struct bo_snap_visitor v;
    seen_init(&seen, &v);
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_snap_read(image.data, image.len, &v, NULL, &err), BO_OK);
    Bo__ScheduledTask *got =
        bo__scheduled_task__unpack(&test_allocator, seen.task[0].len, seen.task[0].data);
    assert_non_null(got);
    assert_int_equal(got->n_task_events, 2);
    assert_int_equal(got->task_events[0]->timestamp_ms, 1); /* zigzag 2 */
    assert_int_equal(got->task_events[1]->timestamp_ms, 3); /* 1 + zigzag 4 */
    free_msg(got);
    seen_release(&seen);
    bo_buf_release(&image);

    /* Fewer timestamps than events. */
    t.len = 0;
    bo_pb_put_bytes(&t, 1, at.data, at.len);
    bo_pb_put_bytes(&t, 4, ev.data, ev.len);
    bo_pb_put_bytes(&t, 4, ev.data, ev.len);
    bo_pb_put_bytes(&t, 15, "\x02", 1);
    delta_payload(&p, 6, 3, &t, false);
    expect_payload_fail(&p, "malformed delta-encoded task");
    /* More timestamps than events. */
    t.len = 0;
    bo_pb_put_bytes(&t, 1, at.data, at.len);
    bo_pb_put_bytes(&t, 4, ev.data, ev.len);
    bo_pb_put_bytes(&t, 15, "\x02\x02", 2);
    delta_payload(&p, 6, 3, &t, false);
    expect_payload_fail(&p, "malformed delta-encoded task");
    /* A truncated varint in the column. */
    t.len = 0;
    bo_pb_put_bytes(&t, 4, ev.data, ev.len);
    bo_pb_put_bytes(&t, 15, "\x82", 1);
    delta_payload(&p, 6, 3, &t, false);
    expect_payload_fail(&p, "malformed delta-encoded task");
    /* The column as a varint, and twice. */
    t.len = 0;
    bo_pb_put_bytes(&t, 4, ev.data, ev.len);
    bo_pb_put_uint(&t, 15, 2);
    delta_payload(&p, 6, 3, &t, false);
    expect_payload_fail(&p, "malformed delta-encoded task");
    t.len = 0;
    bo_pb_put_bytes(&t, 4, ev.data, ev.len);
    bo_pb_put_bytes(&t, 15, "\x02", 1);
    bo_pb_put_bytes(&t, 15, "", 0);
    delta_payload(&p, 6, 3, &t, false);
    expect_payload_fail(&p, "malformed delta-encoded task");
    /* Garbage inside. */
    t.len = 0;
    bo_pb_put_bytes(&t, 4, "\x0a\x09", 2);
    delta_payload(&p, 6, 3, &t, false);
    expect_payload_fail(&p, "malformed delta-encoded task");

    /* A delta-encoded task where no reader expects one. */
    t.len = 0;
    bo_pb_put_bytes(&t, 1, at.data, at.len);
    delta_payload(&p, 4, 3, &t, false);
    expect_payload_fail(&p, "delta-encoded task outside");
    /* In a delta entry a task's config comes first. */
    delta_payload(&p, 6, 1, &t, true);
    expect_payload_fail(&p, "out of range");

    bo_buf_release(&p);
    bo_buf_release(&t);
    bo_buf_release(&ev);
    bo_buf_release(&at);
}

/* A delta image big enough to be compressed by the writer's own thread
 * (past 8 MB staged) and walked while a thread decompresses it: read whole,
 * stopped early by the visitor, and damaged; and a writer given up halfway. */
static void test_streamed_delta(void **state)
{
    (void)state;
    struct state st;
    state_init(&st);
    enum { ROUNDS = 600 };
    struct bo_snap_writer *w;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_snap_writer_new(true, BO_CODEC_ZSTD, 0, &w), BO_OK);
    for (uint32_t i = 0; i < N_CONFIGS; i++) {
        uint32_t idx;
        assert_int_equal(bo_snap_writer_add_config(w, st.cfg[i].data, st.cfg[i].len, &idx), BO_OK);
    }
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N_TASKS; i++) {
            assert_int_equal(
                bo_snap_writer_add_task(w, st.task_cfg[i], st.task[i].data, st.task[i].len), BO_OK);
        }
    }
    assert_int_equal(bo_snap_writer_set_rest(w, st.rest), BO_OK);
    struct bo_buf image = BO_BUF_INIT;
    struct bo_snap_stats ws, rs;
    assert_int_equal(bo_snap_writer_finish(w, &image, &ws, &err), BO_OK);
    bo_snap_writer_free(w);
    assert_true(ws.dedup_bytes > ((size_t)8 << 20)); /* what the reader decodes on a thread */

    struct big_seen b = {.st = &st, .fail_at_task = SIZE_MAX};
    struct bo_snap_visitor v = {&b, big_config, big_task, NULL};
    int rv = bo_snap_read(image.data, image.len, &v, &rs, &err);
    if (rv != BO_OK) {
        fail_msg("read: %s", bo_err_msg(&err, rv));
    }
    assert_int_equal(b.bad, 0);
    assert_int_equal(b.n_tasks, (size_t)ROUNDS * N_TASKS);
    assert_int_equal(rs.dedup_bytes, ws.dedup_bytes);
    assert_int_equal(rs.raw_bytes, ws.raw_bytes);

    b = (struct big_seen){.st = &st, .fail_at_task = 1000};
    assert_int_equal(bo_snap_read(image.data, image.len, &v, NULL, &err), BO_ECANCELED);
    assert_int_equal(b.n_tasks, 1000);

    /* Damage at several places of the compressed data, checksums redone. */
    for (int k = 1; k < 8; k++) {
        size_t off = image.len / 8 * (size_t)k;
        image.data[off] ^= 0x5a;
        reseal(image.data, image.len);
        b = (struct big_seen){.st = &st, .fail_at_task = SIZE_MAX};
        rv = bo_snap_read(image.data, image.len, &v, NULL, &err);
        if (rv != BO_ECORRUPT) {
            fail_msg("damage at %zu: %s", off, bo_errname(rv));
        }
        assert_non_null(strstr(err.msg, "offset"));
        image.data[off] ^= 0x5a;
    }
    /* Cut short: the recorded size is more than the frames hold. */
    size_t cut = image.len - 1000;
    reseal(image.data, cut);
    b = (struct big_seen){.st = &st, .fail_at_task = SIZE_MAX};
    assert_int_equal(bo_snap_read(image.data, cut, &v, NULL, &err), BO_ECORRUPT);
    bo_buf_release(&image);

    /* A writer given up halfway, its compressor thread running: freeing it
     * stops the thread and frees everything (the sanitizer build checks). */
    assert_int_equal(bo_snap_writer_new(true, BO_CODEC_ZSTD, 0, &w), BO_OK);
    for (uint32_t i = 0; i < N_CONFIGS; i++) {
        uint32_t idx;
        assert_int_equal(bo_snap_writer_add_config(w, st.cfg[i].data, st.cfg[i].len, &idx), BO_OK);
    }
    for (int round = 0; round < ROUNDS / 2; round++) {
        for (int i = 0; i < N_TASKS; i++) {
            assert_int_equal(
                bo_snap_writer_add_task(w, st.task_cfg[i], st.task[i].data, st.task[i].len), BO_OK);
        }
    }
    bo_snap_writer_free(w);
    state_release(&st);
}

static void test_split_task(void **state)
{
    (void)state;
    Bo__ScheduledTask *t = make_task(3, make_config(1, 1));
    struct bo_buf cfg = BO_BUF_INIT, partial = BO_BUF_INIT;
    assert_int_equal(bo_snap_split_task(t, &cfg, &partial), BO_OK);
    assert_non_null(t->assigned_task->task); /* put back */
    Bo__ScheduledTask *p = bo__scheduled_task__unpack(&test_allocator, partial.len, partial.data);
    assert_non_null(p);
    assert_null(p->assigned_task->task);
    assert_string_equal(p->assigned_task->task_id, t->assigned_task->task_id);
    /* Canonical: the same config built in another order encodes the same. */
    Bo__TaskConfig *other = make_config(1, 2);
    struct bo_buf cfg2 = BO_BUF_INIT;
    assert_int_equal(bo_canon_encode_config(other, &cfg2), BO_OK);
    assert_int_equal(cfg.len, cfg2.len);
    assert_memory_equal(cfg.data, cfg2.data, cfg.len);
    free_msg(other);
    free_msg(p);
    free_msg(t);
    bo_buf_release(&cfg);
    bo_buf_release(&cfg2);
    bo_buf_release(&partial);
}

/* Allocation failures anywhere in write and read give BO_ENOMEM (or a
 * clean error), never a crash or a leak (ASan checks the latter). */
static void test_out_of_memory(void **state)
{
    (void)state;
    struct state st;
    state_init(&st);
    struct bo_buf good = BO_BUF_INIT;
    write_image(&st, false, BO_CODEC_ZSTD, &good, NULL);
    for (long n = 0; n < 400; n += 7) {
        struct bo_buf out = BO_BUF_INIT;
        struct bo_err err = BO_ERR_INIT;
        bo_mem_fail_after(n);
        int rv = bo_snap_convert(good.data, good.len, true, BO_CODEC_ZLIB, 0, &out, NULL, &err);
        bo_mem_fail_after(-1);
        if (rv != BO_OK && rv != BO_ENOMEM) {
            fail_msg("fail after %ld: %s: %s", n, bo_errname(rv), bo_err_msg(&err, rv));
        }
        bo_buf_release(&out);
    }
    bo_buf_release(&good);
    state_release(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all_forms),
        cmocka_unit_test(test_appends_to_buffer),
        cmocka_unit_test(test_plain_from_protobuf_c),
        cmocka_unit_test(test_convert_chain),
        cmocka_unit_test(test_empty_snapshot),
        cmocka_unit_test(test_writer_rejects),
        cmocka_unit_test(test_corrupt_everywhere),
        cmocka_unit_test(test_version_and_flags),
        cmocka_unit_test(test_bad_content),
        cmocka_unit_test(test_any_order_and_leftover_tasks),
        cmocka_unit_test(test_streamed_payload),
        cmocka_unit_test(test_delta_round_trip),
        cmocka_unit_test(test_delta_malformed),
        cmocka_unit_test(test_streamed_delta),
        cmocka_unit_test(test_split_task),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
