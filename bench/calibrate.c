/*
 * calibrate.c - how compressible and how deduplicable is the generator's
 * state? Prints the ratios the seeds' 2015 Aurora backup had (gzip -3 alone
 * 5.2x, dedup alone 5.5x, both 35x) for generated state, so gen.c can be
 * tuned to match.
 *
 * Two encodings are streamed, never held whole:
 *   raw   = a plain Snapshot: the rest (hosts, cron jobs, quotas, metadata)
 *           and every task with its full config (field 3);
 *   dedup = a DeduplicatedSnapshot: each distinct config once (field 3),
 *           every task without its config plus its config index (field 2),
 *           the rest as the partial snapshot (field 1).
 * Each goes through zlib level 3 (deflate with compress2's defaults, i.e. the
 * same bytes compress2 would produce) and zstd level 3 as it is produced.
 *
 * usage: bench-calibrate [-n tasks] [-j jobs] [-r configs] [-H hosts]
 *                        [-e events_per_task] [-s seed] [-D task_index]
 * -D prints task i and its config as text and exits (to eyeball realism).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>
#include <zstd.h>

#include "bench/gen.h"
#include "common/pbwire.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/mem.h"

#define FLUSH_AT ((size_t)1 << 20)

/* One encoding being measured: bytes produced, and both compressors. */
struct sink {
    const char *name;
    struct bo_buf pending;
    uint64_t bytes;
    z_stream z;
    uint64_t zbytes;
    ZSTD_CCtx *zs;
    uint64_t zsbytes;
    uint8_t *out;
    size_t out_cap;
};

static int sink_init(struct sink *s, const char *name)
{
    memset(s, 0, sizeof(*s));
    s->name = name;
    s->out_cap = (size_t)4 << 20;
    s->out = bo_malloc(s->out_cap);
    if (!s->out)
        return BO_ENOMEM;
    if (deflateInit(&s->z, 3) != Z_OK)
        return BO_ENOMEM;
    s->zs = ZSTD_createCCtx();
    if (!s->zs)
        return BO_ENOMEM;
    ZSTD_CCtx_setParameter(s->zs, ZSTD_c_compressionLevel, 3);
    return BO_OK;
}

static int sink_flush(struct sink *s, bool last)
{
    /* zlib */
    s->z.next_in = s->pending.data;
    s->z.avail_in = (uInt)s->pending.len;
    int zr;
    do {
        s->z.next_out = s->out;
        s->z.avail_out = (uInt)s->out_cap;
        zr = deflate(&s->z, last ? Z_FINISH : Z_NO_FLUSH);
        if (zr == Z_STREAM_ERROR)
            return BO_EINTERNAL;
        s->zbytes += s->out_cap - s->z.avail_out;
    } while (s->z.avail_out == 0 || (last && zr != Z_STREAM_END));
    /* zstd */
    ZSTD_inBuffer in = {s->pending.data, s->pending.len, 0};
    size_t left;
    do {
        ZSTD_outBuffer out = {s->out, s->out_cap, 0};
        left = ZSTD_compressStream2(s->zs, &out, &in, last ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(left))
            return BO_EINTERNAL;
        s->zsbytes += out.pos;
    } while (in.pos < in.size || (last && left != 0));
    s->pending.len = 0;
    return BO_OK;
}

static int sink_put(struct sink *s, const void *data, size_t len)
{
    s->bytes += len;
    int rc = bo_buf_append(&s->pending, data, len);
    if (rc == BO_OK && s->pending.len >= FLUSH_AT)
        rc = sink_flush(s, false);
    return rc;
}

/* A length-delimited field: tag, length, bytes. */
static int sink_field(struct sink *s, unsigned field, const uint8_t *data, size_t len)
{
    /* A tag and a length are 15 bytes at most: the buffer never grows, so
     * it can live on the stack. */
    uint8_t space[20];
    struct bo_buf hdr = {space, 0, sizeof(space)};
    int rc = bo_pb_put_len_header(&hdr, field, len);
    if (rc == BO_OK)
        rc = sink_put(s, hdr.data, hdr.len);
    if (rc == BO_OK)
        rc = sink_put(s, data, len);
    return rc;
}

static void sink_release(struct sink *s)
{
    deflateEnd(&s->z);
    ZSTD_freeCCtx(s->zs);
    bo_free(s->out);
    bo_buf_release(&s->pending);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Pack into a reusable buffer. */
static int pack(const ProtobufCMessage *m, struct bo_buf *b)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    b->len = 0;
    int rc = bo_buf_reserve(b, n);
    if (rc != BO_OK)
        return rc;
    b->len = protobuf_c_message_pack(m, b->data);
    return BO_OK;
}

static void print_task(const Bo__ScheduledTask *t)
{
    const Bo__AssignedTask *at = t->assigned_task;
    const Bo__TaskConfig *tc = at->task;
    printf("task_id: %s\nstatus: %d failure_count: %d times_partitioned: %d\n", at->task_id,
           t->status, t->failure_count, t->times_partitioned);
    printf("ancestor_id: %s\nslave: %s %s\ninstance: %d\n", t->ancestor_id, at->slave_host,
           at->slave_id, at->instance_id);
    for (size_t k = 0; k < at->n_assigned_ports; k++)
        printf("port %s=%d\n", at->assigned_ports[k]->key, at->assigned_ports[k]->value);
    for (size_t k = 0; k < t->n_task_events; k++)
        printf("event %lld %d '%s' %s\n", (long long)t->task_events[k]->timestamp_ms,
               t->task_events[k]->status, t->task_events[k]->message, t->task_events[k]->scheduler);
    printf("job: %s/%s/%s owner %s service %d prio %d max_fail %d prod %d tier %s\n", tc->job->role,
           tc->job->environment, tc->job->name, tc->owner_user, tc->is_service, tc->priority,
           tc->max_task_failures, tc->production, tc->tier);
    for (size_t k = 0; k < tc->n_resources; k++) {
        const Bo__Resource *r = tc->resources[k];
        switch (r->kind_case) {
        case BO__RESOURCE__KIND_NUM_CPUS:
            printf("resource cpus=%g\n", r->num_cpus);
            break;
        case BO__RESOURCE__KIND_RAM_MB:
            printf("resource ram_mb=%lld\n", (long long)r->ram_mb);
            break;
        case BO__RESOURCE__KIND_DISK_MB:
            printf("resource disk_mb=%lld\n", (long long)r->disk_mb);
            break;
        case BO__RESOURCE__KIND_NAMED_PORT:
            printf("resource port=%s\n", r->named_port);
            break;
        default:
            printf("resource ?\n");
        }
    }
    for (size_t k = 0; k < tc->n_constraints; k++) {
        const Bo__Constraint *c = tc->constraints[k];
        if (c->kind_case == BO__CONSTRAINT__KIND_LIMIT)
            printf("constraint %s limit %d\n", c->name, c->limit->limit);
        else
            printf("constraint %s %svalue %s%s%s\n", c->name, c->value->negated ? "!" : "",
                   c->value->values[0], c->value->n_values > 1 ? "," : "",
                   c->value->n_values > 1 ? c->value->values[1] : "");
    }
    for (size_t k = 0; k < tc->n_metadata; k++)
        printf("metadata %s=%s\n", tc->metadata[k]->key, tc->metadata[k]->value);
    for (size_t k = 0; k < tc->n_task_links; k++)
        printf("link %s=%s\n", tc->task_links[k]->key, tc->task_links[k]->value);
    for (size_t k = 0; k < tc->n_fetcher_uris; k++)
        printf("fetch %s\n", tc->fetcher_uris[k]->value);
    printf("contact: %s\n", tc->contact_email);
    if (tc->container->mesos->image)
        printf("image: %s:%s\n", tc->container->mesos->image->docker->name,
               tc->container->mesos->image->docker->tag);
    printf("executor %s: %s\n", tc->executor_config->name, tc->executor_config->data);
}

static uint64_t parse_u64(const char *s, const char *what)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s) {
        fprintf(stderr, "bench-calibrate: bad %s '%s'\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    struct bo_gen_params p = BO_GEN_PARAMS_DEFAULT;
    p.tasks = 100000;
    p.jobs = 1000;
    p.configs = 0;
    p.hosts = 2000;
    int opt;
    long long dump = -1;
    while ((opt = getopt(argc, argv, "n:j:r:H:e:s:D:")) != -1) {
        switch (opt) {
        case 'n':
            p.tasks = parse_u64(optarg, "task count");
            break;
        case 'j':
            p.jobs = parse_u64(optarg, "job count");
            break;
        case 'r':
            p.configs = parse_u64(optarg, "config count");
            break;
        case 'H':
            p.hosts = parse_u64(optarg, "host count");
            break;
        case 'e':
            p.events_per_task = (unsigned)parse_u64(optarg, "events per task");
            break;
        case 's':
            p.seed = parse_u64(optarg, "seed");
            break;
        case 'D':
            dump = (long long)parse_u64(optarg, "task index");
            break;
        default:
            fprintf(stderr, "usage: bench-calibrate [-n tasks] [-j jobs] [-r configs] "
                            "[-H hosts] [-e events_per_task] [-s seed] [-D task_index]\n");
            return 2;
        }
    }

    struct bo_gen g;
    double t0 = now_s();
    int rc = bo_gen_init(&g, &p);
    if (rc != BO_OK) {
        fprintf(stderr, "bench-calibrate: init: %s\n", bo_strerror(rc));
        return 1;
    }
    double t_init = now_s() - t0;

    if (dump >= 0) {
        struct bo_gen_arena da = BO_GEN_ARENA_INIT;
        Bo__ScheduledTask *t;
        rc =
            (uint64_t)dump < g.p.tasks ? bo_gen_task(&g, (uint64_t)dump, true, &da, &t) : BO_EINVAL;
        if (rc == BO_OK)
            print_task(t);
        bo_gen_arena_release(&da);
        bo_gen_release(&g);
        if (rc != BO_OK)
            fprintf(stderr, "bench-calibrate: dump: %s\n", bo_strerror(rc));
        return rc == BO_OK ? 0 : 1;
    }

    /* generation speed alone: every task built and dropped */
    struct bo_gen_arena a = BO_GEN_ARENA_INIT;
    t0 = now_s();
    for (uint64_t i = 0; i < g.p.tasks; i++) {
        Bo__ScheduledTask *t;
        bo_gen_arena_reset(&a);
        if (bo_gen_task(&g, i, true, &a, &t) != BO_OK) {
            fprintf(stderr, "bench-calibrate: out of memory\n");
            return 1;
        }
    }
    double t_gen = now_s() - t0;

    struct sink raw, dedup;
    if (sink_init(&raw, "raw") != BO_OK || sink_init(&dedup, "dedup") != BO_OK) {
        fprintf(stderr, "bench-calibrate: out of memory\n");
        return 1;
    }
    struct bo_buf b = BO_BUF_INIT, b2 = BO_BUF_INIT;
    uint64_t config_bytes = 0, partial_bytes = 0, exec_bytes = 0;
    t0 = now_s();

    /* the rest, first in both: Snapshot fields 2,4,5,6 / DeduplicatedSnapshot field 1 */
    Bo__Snapshot *rest;
    bo_gen_arena_reset(&a);
    rc = bo_gen_rest(&g, &a, &rest);
    if (rc == BO_OK)
        rc = pack(&rest->base, &b);
    if (rc == BO_OK)
        rc = sink_put(&raw, b.data, b.len);
    if (rc == BO_OK)
        rc = sink_field(&dedup, 1, b.data, b.len);
    uint64_t rest_bytes = b.len;

    for (uint64_t c = 0; rc == BO_OK && c < g.p.configs; c++) {
        const Bo__TaskConfig *tc = bo_gen_config(&g, c);
        rc = pack(&tc->base, &b);
        if (rc == BO_OK)
            rc = sink_field(&dedup, 3, b.data, b.len);
        config_bytes += b.len;
        exec_bytes += strlen(tc->executor_config->data);
    }

    for (uint64_t i = 0; rc == BO_OK && i < g.p.tasks; i++) {
        Bo__ScheduledTask *t;
        uint64_t config;
        bo_gen_arena_reset(&a);
        rc = bo_gen_task(&g, i, true, &a, &t);
        if (rc != BO_OK)
            break;
        rc = pack(&t->base, &b);
        if (rc == BO_OK)
            rc = sink_field(&raw, 3, b.data, b.len);
        if (rc != BO_OK)
            break;
        /* the same task, partial: config unset, its index beside it */
        t->assigned_task->task = NULL;
        bo_gen_task_place(&g, i, NULL, NULL, &config);
        rc = pack(&t->base, &b);
        if (rc != BO_OK)
            break;
        partial_bytes += b.len;
        /* DeduplicatedScheduledTask{partial_task = 1, task_config_id = 2} */
        b2.len = 0;
        rc = bo_pb_put_varint(&b2, 1 << 3 | 2);
        if (rc == BO_OK)
            rc = bo_pb_put_varint(&b2, b.len);
        if (rc == BO_OK)
            rc = bo_buf_append(&b2, b.data, b.len);
        if (rc == BO_OK && config) /* proto3: 0 is not written */
            rc = bo_pb_put_varint(&b2, 2 << 3 | 0);
        if (rc == BO_OK && config)
            rc = bo_pb_put_varint(&b2, config);
        if (rc == BO_OK)
            rc = sink_field(&dedup, 2, b2.data, b2.len);
    }
    if (rc == BO_OK)
        rc = sink_flush(&raw, true);
    if (rc == BO_OK)
        rc = sink_flush(&dedup, true);
    if (rc != BO_OK) {
        fprintf(stderr, "bench-calibrate: %s\n", bo_strerror(rc));
        return 1;
    }
    double t_enc = now_s() - t0;

    double n = (double)g.p.tasks;
    printf("{\n");
    printf("  \"params\": {\"tasks\": %llu, \"jobs\": %llu, \"configs\": %llu, \"hosts\": %llu, "
           "\"events_per_task\": %u, \"seed\": %llu},\n",
           (unsigned long long)g.p.tasks, (unsigned long long)g.p.jobs,
           (unsigned long long)g.p.configs, (unsigned long long)g.p.hosts, g.p.events_per_task,
           (unsigned long long)g.p.seed);
    printf("  \"seconds\": {\"init\": %.3f, \"generate\": %.3f, \"encode_and_compress\": %.3f},\n",
           t_init, t_gen, t_enc);
    printf("  \"avg_bytes\": {\"config\": %.0f, \"executor_data\": %.0f, \"partial_task\": "
           "%.0f, \"rest_total\": %llu},\n",
           (double)config_bytes / (double)g.p.configs, (double)exec_bytes / (double)g.p.configs,
           (double)partial_bytes / n, (unsigned long long)rest_bytes);
    printf("  \"bytes\": {\"raw\": %llu, \"raw_zlib3\": %llu, \"raw_zstd3\": %llu, \"dedup\": "
           "%llu, \"dedup_zlib3\": %llu, \"dedup_zstd3\": %llu},\n",
           (unsigned long long)raw.bytes, (unsigned long long)raw.zbytes,
           (unsigned long long)raw.zsbytes, (unsigned long long)dedup.bytes,
           (unsigned long long)dedup.zbytes, (unsigned long long)dedup.zsbytes);
    double r = (double)raw.bytes;
    printf("  \"ratios\": {\"zlib3\": %.2f, \"zstd3\": %.2f, \"dedup\": %.2f, \"dedup_zlib3\": "
           "%.2f, \"dedup_zstd3\": %.2f},\n",
           r / (double)raw.zbytes, r / (double)raw.zsbytes, r / (double)dedup.bytes,
           r / (double)dedup.zbytes, r / (double)dedup.zsbytes);
    printf("  \"seeds_2015\": {\"raw_MiB\": 1546, \"dedup_MiB\": 281, \"zlib3\": 5.22, "
           "\"dedup\": 5.48, \"dedup_zlib3\": 35.1}\n");
    printf("}\n");

    sink_release(&raw);
    sink_release(&dedup);
    bo_buf_release(&b);
    bo_buf_release(&b2);
    bo_gen_arena_release(&a);
    bo_gen_release(&g);
    return 0;
}
