/*
 * bench-storage - the storage benchmarks of docs/benchmarks.md.
 *
 *   bench-storage sizes    [gen options]          the seeds' size table
 *   bench-storage snapshot [gen options] --dir D  snapshot creation, restore, RSS per task
 *   bench-storage write    --dir D [--kind new|change] [--per-txn K] [--inflight C]
 *                          [--seconds S] [gen options]
 *       new: each transaction saves new tasks, each with its config (a store
 *       that starts empty); change: each one changes the state of tasks of
 *       a loaded --tasks state, as the scheduler logs a transition
 *   bench-storage stall    [gen options] --dir D [--seconds S] [--rate R] [--inflight C]
 *       --rate R: writes are due R times a second on a fixed schedule (at
 *       most C in flight; latency counts from when a write was due), not
 *       C in flight all the time
 *   bench-storage gen-image [gen options] --dir FILE   write a generated state as an image
 *   gen options: --tasks N --jobs J --configs R --hosts H --runs K
 *
 * Each prints one JSON object on stdout; bench/run-storage assembles them.
 * Times are wall clock (CLOCK_MONOTONIC); repeated runs report the median.
 */
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/mem.h"
#include "gen.h"
#include "storage/canon.h"
#include "storage/snapshot.h"
#include "storage/storage.h"
#include "storage/store.h"

#define MAX_RUNS 9

struct opts {
    struct bo_gen_params gen;
    const char *dir;
    unsigned per_txn;
    unsigned inflight;
    double seconds;
    unsigned runs;
    bool change;      /* write: state changes of loaded tasks, not new tasks */
    double rate;      /* writes a second on a fixed schedule; 0: `inflight` always */
    const char *dump; /* stall: each write's submit time and latency, to read the tail */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double percentile(double *v, size_t n, double p)
{
    if (n == 0) {
        return 0;
    }
    qsort(v, n, sizeof(*v), cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f != NULL) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2) {
            resident = 0;
        }
        fclose(f);
    }
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void die(const char *what, int rv, const struct bo_err *err)
{
    fprintf(stderr, "bench-storage: %s: %s\n", what, bo_err_msg(err, rv));
    exit(1);
}

/* Feed the generated state to a snapshot writer: configs, tasks, rest. */
struct placed {
    uint64_t key; /* config << 32 | instance */
    uint64_t task;
};

static int cmp_placed(const void *a, const void *b)
{
    uint64_t x = ((const struct placed *)a)->key, y = ((const struct placed *)b)->key;
    return (x > y) - (x < y);
}

/* Feed the generated state to a snapshot writer: configs, tasks, rest.
 * `grouped`: tasks ordered by config then instance, as Aurora's deduplicator
 * emitted them (and as the store exports them); otherwise in the generator's
 * order, which is Aurora's hash-set order of a plain Snapshot. */
static void feed(const struct bo_gen *g, struct bo_snap_writer *w, bool grouped)
{
    struct bo_gen_arena a = BO_GEN_ARENA_INIT;
    struct bo_buf buf = BO_BUF_INIT;
    uint32_t *index = bo_calloc(g->p.configs, sizeof(*index));
    struct placed *order = grouped ? bo_calloc(g->p.tasks, sizeof(*order)) : NULL;
    if (index == NULL || (grouped && order == NULL)) {
        die("feed", BO_ENOMEM, NULL);
    }
    for (uint64_t c = 0; c < g->p.configs; c++) {
        buf.len = 0;
        Bo__TaskConfig *cfg = (Bo__TaskConfig *)bo_gen_config(g, c);
        if (bo_canon_encode_config(cfg, &buf) != BO_OK ||
            bo_snap_writer_add_config(w, buf.data, buf.len, &index[c]) != BO_OK) {
            die("add config", BO_ENOMEM, NULL);
        }
    }
    if (grouped) {
        for (uint64_t i = 0; i < g->p.tasks; i++) {
            uint64_t job, config;
            uint32_t inst;
            bo_gen_task_place(g, i, &job, &inst, &config);
            order[i] = (struct placed){.key = config << 32 | inst, .task = i};
        }
        qsort(order, g->p.tasks, sizeof(*order), cmp_placed);
    }
    for (uint64_t n = 0; n < g->p.tasks; n++) {
        uint64_t i = grouped ? order[n].task : n;
        Bo__ScheduledTask *t;
        uint64_t job, config;
        uint32_t inst;
        if (bo_gen_task(g, i, false, &a, &t) != BO_OK) {
            die("gen task", BO_ENOMEM, NULL);
        }
        bo_gen_task_place(g, i, &job, &inst, &config);
        size_t len = protobuf_c_message_get_packed_size(&t->base);
        buf.len = 0;
        if (bo_buf_reserve(&buf, len) != BO_OK) {
            die("task buffer", BO_ENOMEM, NULL);
        }
        protobuf_c_message_pack(&t->base, buf.data);
        if (bo_snap_writer_add_task(w, index[config], buf.data, len) != BO_OK) {
            die("add task", BO_ENOMEM, NULL);
        }
        if ((n & 1023) == 1023) {
            bo_gen_arena_reset(&a);
        }
    }
    bo_gen_arena_reset(&a);
    Bo__Snapshot *rest;
    if (bo_gen_rest(g, &a, &rest) != BO_OK || bo_snap_writer_set_rest(w, rest) != BO_OK) {
        die("rest", BO_ENOMEM, NULL);
    }
    bo_gen_arena_release(&a);
    bo_buf_release(&buf);
    bo_free(index);
    bo_free(order);
}

static void build_image(const struct bo_gen *g, bool dedup, enum bo_codec codec,
                        struct bo_buf *image, struct bo_snap_stats *stats)
{
    struct bo_snap_writer *w;
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_snap_writer_new(dedup, codec, 0, &w);
    if (rv != BO_OK) {
        die("writer", rv, NULL);
    }
    feed(g, w, dedup);
    rv = bo_snap_writer_finish(w, image, stats, &err);
    if (rv != BO_OK) {
        die("finish", rv, &err);
    }
    bo_snap_writer_free(w);
}

static void init_gen(struct bo_gen *g, const struct opts *o)
{
    int rv = bo_gen_init(g, &o->gen);
    if (rv != BO_OK) {
        die("generator parameters", rv, NULL);
    }
}

/* ---- sizes: the seeds' table ---- */

static int cmd_sizes(const struct opts *o)
{
    struct bo_gen g;
    init_gen(&g, o);
    struct bo_snap_stats st;
    struct bo_buf img = BO_BUF_INIT;
    double t0 = now_s();
    build_image(&g, true, BO_CODEC_NONE, &img, &st);
    uint64_t raw = st.raw_bytes, dedup = st.dedup_bytes;
    img.len = 0;
    build_image(&g, true, BO_CODEC_ZLIB, &img, &st);
    uint64_t dedup_zlib = st.payload_bytes;
    img.len = 0;
    double tz = now_s();
    build_image(&g, true, BO_CODEC_ZSTD, &img, &st);
    double zstd_s = now_s() - tz;
    uint64_t dedup_zstd = st.payload_bytes;
    img.len = 0;
    build_image(&g, false, BO_CODEC_ZLIB, &img, &st);
    uint64_t zlib = st.payload_bytes;
    bo_buf_release(&img);
    printf("{\"tasks\": %" PRIu64 ", \"configs\": %" PRIu64 ", \"raw_bytes\": %" PRIu64
           ", \"zlib3_bytes\": %" PRIu64 ", \"dedup_bytes\": %" PRIu64
           ", \"dedup_zlib3_bytes\": %" PRIu64 ", \"dedup_zstd_bytes\": %" PRIu64
           ", \"dedup_zstd_build_s\": %.3f, \"sizes_total_s\": %.1f}\n",
           o->gen.tasks, o->gen.configs, raw, zlib, dedup, dedup_zlib, dedup_zstd, zstd_s,
           now_s() - t0);
    bo_gen_release(&g);
    return 0;
}

/* ---- gen-image: a generated cluster state as an image file ---- */

static int cmd_gen_image(const struct opts *o, const char *out)
{
    struct bo_gen g;
    init_gen(&g, o);
    struct bo_buf img = BO_BUF_INIT;
    struct bo_snap_stats st;
    build_image(&g, true, BO_CODEC_ZSTD, &img, &st);
    FILE *f = fopen(out, "wb");
    if (f == NULL || fwrite(img.data, 1, img.len, f) != img.len || fclose(f) != 0) {
        fprintf(stderr, "bench-storage: cannot write '%s'\n", out);
        return 1;
    }
    printf("{\"tasks\": %" PRIu64 ", \"configs\": %" PRIu64 ", \"bytes\": %zu}\n", st.tasks,
           st.configs, img.len);
    bo_buf_release(&img);
    bo_gen_release(&g);
    return 0;
}

/* ---- snapshot: creation from the store, restore, RSS ---- */

static int cmd_snapshot(const struct opts *o)
{
    struct bo_gen g;
    init_gen(&g, o);
    struct bo_err err = BO_ERR_INIT;
    struct bo_buf img = BO_BUF_INIT;
    struct bo_snap_stats st;
    build_image(&g, true, BO_CODEC_ZSTD, &img, &st);
    uint64_t tasks = g.p.tasks;
    /* The image goes to a file and everything generated is freed, so the
     * process holds nothing but what the store keeps. */
    char path[4096], image_path[4096];
    snprintf(path, sizeof(path), "%s/bench-state.db", o->dir);
    snprintf(image_path, sizeof(image_path), "%s/bench.img", o->dir);
    struct iovec iov = {img.data, img.len};
    int rv = bo_fs_write_atomic(o->dir, "bench.img", "tmp_", &iov, 1, &err);
    if (rv != BO_OK) {
        die("write image", rv, &err);
    }
    bo_buf_release(&img);
    bo_gen_release(&g);
    malloc_trim(0);
    uint64_t rss_base = rss_bytes();
    double restore[MAX_RUNS], snap[MAX_RUNS];
    uint64_t snap_bytes = 0, rss_per_task = 0, rss_after = 0, db_bytes = 0;
    for (unsigned r = 0; r < o->runs; r++) {
        struct bo_store *store;
        rv = bo_store_open(path, true, &store, &err);
        if (rv != BO_OK) {
            die("store open", rv, &err);
        }
        uint8_t *data;
        size_t len;
        rv = bo_fs_read_file(image_path, &data, &len, &err);
        if (rv != BO_OK) {
            die("read image", rv, &err);
        }
        double t0 = now_s();
        rv = bo_store_restore(store, data, len, 1, &err);
        if (rv != BO_OK) {
            die("restore", rv, &err);
        }
        restore[r] = now_s() - t0;
        bo_free(data);
        if (r == 0) {
            /* Everything the process holds for the state: the store's
             * connections and page cache (warmed by the queries an API would
             * run: counts, summaries, every task of a thousand jobs), not the
             * OS's file cache. */
            struct bo_task_query all = {0};
            uint64_t n_all = 0;
            struct bo_role_summary_list roles = {0};
            struct bo_job_summary_list jobs = {0};
            if (bo_store_count_tasks(store, &all, &n_all, &err) != BO_OK ||
                bo_store_role_summaries(store, &roles, &err) != BO_OK ||
                bo_store_job_summaries(store, NULL, &jobs, &err) != BO_OK) {
                die("warm queries", BO_EIO, &err);
            }
            for (size_t j = 0; j < jobs.n && j < 1000; j++) {
                const Bo__JobKey *keys[] = {jobs.jobs[j].key};
                struct bo_task_query q = {.job_keys = keys, .n_job_keys = 1};
                struct bo_task_list tl = {0};
                if (bo_store_query_tasks(store, &q, true, &tl, &err) != BO_OK) {
                    die("warm query", BO_EIO, &err);
                }
                bo_task_list_release(&tl);
            }
            bo_role_summary_list_release(&roles);
            bo_job_summary_list_release(&jobs);
            malloc_trim(0);
            rss_after = rss_bytes();
            rss_per_task = rss_after > rss_base ? (rss_after - rss_base) / tasks : 0;
            struct stat sb;
            if (stat(path, &sb) == 0) {
                db_bytes = (uint64_t)sb.st_size;
            }
        }
        struct bo_snap_writer *w;
        struct bo_buf out = BO_BUF_INIT;
        t0 = now_s();
        struct bo_store_view *view;
        rv = bo_store_view_open(store, &view, &err);
        if (rv == BO_OK) {
            rv = bo_snap_writer_new(true, BO_CODEC_ZSTD, 0, &w);
        }
        if (rv == BO_OK) {
            rv = bo_store_view_export(view, w, 0, &err);
        }
        if (rv == BO_OK) {
            rv = bo_snap_writer_finish(w, &out, NULL, &err);
        }
        if (rv != BO_OK) {
            die("snapshot", rv, &err);
        }
        snap[r] = now_s() - t0;
        snap_bytes = out.len;
        bo_snap_writer_free(w);
        bo_store_view_close(view);
        bo_buf_release(&out);
        bo_store_close(store);
    }
    printf("{\"tasks\": %" PRIu64 ", \"configs\": %" PRIu64 ", \"snapshot_s\": %.3f"
           ", \"restore_s\": %.3f, \"snapshot_bytes\": %" PRIu64
           ", \"rss_bytes_per_task\": %" PRIu64 ", \"rss_bytes\": %" PRIu64
           ", \"db_bytes_per_task\": %" PRIu64 ", \"runs\": %u}\n",
           o->gen.tasks, o->gen.configs, median(snap, o->runs), median(restore, o->runs),
           snap_bytes, rss_per_task, rss_after, db_bytes / tasks, o->runs);
    return 0;
}

/* ---- write and stall: the real storage, raft on disk ---- */

/* CPU time of each thread of this process, from /proc/self/task: what a
 * write costs each thread, steadier on a shared machine than writes/s. */
#define CPU_THREADS 64

struct cpu_sample {
    unsigned long long all; /* the whole process */
    size_t n;
    struct {
        long tid;
        char comm[16];
        unsigned long long ticks; /* user + system */
    } t[CPU_THREADS];
};

/* utime + stime from a stat line of /proc, 0 if unreadable. */
static int stat_ticks(const char *path, char comm[16], unsigned long long *ticks)
{
    char line[1024];
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    char *got = fgets(line, sizeof(line), f);
    fclose(f);
    char *open = got ? strchr(line, '(') : NULL, *close = got ? strrchr(line, ')') : NULL;
    unsigned long long ut, st;
    /* after "pid (comm)": state and 10 fields, then utime and stime */
    if (open == NULL || close == NULL ||
        sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) {
        return -1;
    }
    size_t len = (size_t)(close - open - 1);
    len = len < 15 ? len : 15;
    memcpy(comm, open + 1, len);
    comm[len] = '\0';
    *ticks = ut + st;
    return 0;
}

static void cpu_sample(struct cpu_sample *cs)
{
    cs->n = 0;
    char comm[16];
    /* the process: its threads, the ones gone (per-job threads) included */
    stat_ticks("/proc/self/stat", comm, &cs->all);
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d != NULL && cs->n < CPU_THREADS && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[300];
        snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
        if (stat_ticks(path, cs->t[cs->n].comm, &cs->t[cs->n].ticks) == 0) {
            cs->t[cs->n++].tid = strtol(e->d_name, NULL, 10);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
}

/* `"cpu_us": {"comm": us per write, ...}`: the CPU each thread name spent
 * between `a` and `b`, per committed write. */
static void cpu_print(const struct cpu_sample *a, const struct cpu_sample *b, uint64_t writes)
{
    double hz = (double)sysconf(_SC_CLK_TCK);
    const char *names[CPU_THREADS];
    double us[CPU_THREADS];
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++) {
        unsigned long long before = 0;
        for (size_t j = 0; j < a->n; j++) {
            if (a->t[j].tid == b->t[i].tid) {
                before = a->t[j].ticks;
            }
        }
        size_t k = 0;
        while (k < n && strcmp(names[k], b->t[i].comm) != 0) {
            k++;
        }
        if (k == n) {
            names[n] = b->t[i].comm;
            us[n++] = 0;
        }
        us[k] += (double)(b->t[i].ticks - before) * 1e6 / (hz * (writes ? (double)writes : 1.0));
    }
    double per = hz * (writes ? (double)writes : 1.0);
    printf(", \"cpu_us\": {\"all\": %.1f", (double)(b->all - a->all) * 1e6 / per);
    for (size_t k = 0; k < n; k++) {
        printf(", \"%s\": %.1f", names[k], us[k]);
    }
    printf("}");
}

struct load {
    uv_loop_t loop;
    struct bo_storage *s;
    const struct opts *o;
    struct bo_gen g;
    struct bo_gen_arena arena;
    uv_timer_t tick;
    uv_timer_t pace; /* rate > 0: submits what is due, every millisecond */
    double next_due; /* rate > 0: when the next write is due */
    uint64_t next;
    unsigned outstanding;
    bool stopping, closed;
    double t_start, t_end;
    /* latencies by submit time */
    double *lat, *at;
    size_t n_lat, cap_lat;
    uint64_t entry_bytes; /* encoded transactions submitted, summed */
    /* stall: load a big state, run, snapshot while running; state changes
     * load it too, to change its tasks */
    bool stall, preload;
    enum { PH_WAIT_LEADER, PH_LOADING, PH_RUNNING, PH_SNAPSHOT } phase;
    struct bo_buf image;
    bool snap_done;
    double snap_t0, snap_t1;
    struct cpu_sample cpu0, cpu1; /* at the start and the end of the run */
    uint64_t committed;
    int failed;
};

struct wr {
    struct bo_storage_write w;
    struct load *l;
    double t0;
};

static void pump(struct load *l);

static void write_done(struct bo_storage_write *req, int status, const char *msg)
{
    struct wr *r = (struct wr *)req;
    struct load *l = r->l;
    double t = now_s();
    l->outstanding--;
    if (status != BO_OK) {
        fprintf(stderr, "bench-storage: write failed: %s\n", msg);
        l->failed++;
    } else {
        l->committed++;
        if (l->n_lat < l->cap_lat) {
            l->lat[l->n_lat] = (t - r->t0) * 1000.0;
            l->at[l->n_lat] = r->t0;
            l->n_lat++;
        }
    }
    bo_free(r);
    pump(l);
}

static void closed(struct bo_storage *s)
{
    (void)s;
}

static void pump(struct load *l)
{
    if (l->stopping) {
        if (l->outstanding == 0 && !l->closed) {
            l->closed = true;
            uv_close((uv_handle_t *)&l->tick, NULL);
            uv_close((uv_handle_t *)&l->pace, NULL);
            bo_storage_close(l->s, closed);
        }
        return;
    }
    double now = l->o->rate > 0 ? now_s() : 0;
    while (l->outstanding < l->o->inflight && (l->o->rate == 0 || l->next_due <= now)) {
        Bo__Transaction *txn;
        int grv = l->o->change
                      ? bo_gen_txn_save_task_states(&l->g, l->next, l->o->per_txn,
                                                    l->next / l->g.p.tasks, &l->arena, &txn)
                      : bo_gen_txn_save_tasks(&l->g, l->next, l->o->per_txn, &l->arena, &txn);
        if (grv != BO_OK) {
            die("gen txn", BO_ENOMEM, NULL);
        }
        l->entry_bytes += protobuf_c_message_get_packed_size(&txn->base);
        struct wr *r = bo_malloc(sizeof(*r));
        r->l = l;
        /* On a schedule, latency counts from when the write was due: a write
         * held back by a full window waited as much as any other. */
        r->t0 = l->o->rate > 0 ? l->next_due : now_s();
        l->next_due += l->o->rate > 0 ? 1.0 / l->o->rate : 0;
        struct bo_err err = BO_ERR_INIT;
        int rv = bo_storage_write(l->s, &r->w, txn, write_done, &err);
        bo_gen_arena_reset(&l->arena);
        if (rv != BO_OK) {
            die("write", rv, &err);
        }
        l->next += l->o->per_txn;
        l->outstanding++;
    }
}

static void pace_cb(uv_timer_t *t)
{
    pump(t->data);
}

static void start_running(struct load *l, double now)
{
    l->phase = PH_RUNNING;
    l->t_start = now;
    cpu_sample(&l->cpu0);
    l->next_due = now;
    if (l->o->rate > 0) {
        uv_timer_start(&l->pace, pace_cb, 1, 1);
    }
    pump(l);
}

static void snap_done_cb(struct bo_storage *s, int status, const char *msg, void *data)
{
    (void)s;
    struct load *l = data;
    if (status != BO_OK) {
        die("snapshot now", status, NULL);
    }
    (void)msg;
    l->snap_done = true;
    l->snap_t1 = now_s();
}

static void loaded_cb(struct bo_storage_write *req, int status, const char *msg)
{
    struct load *l = req->data;
    bo_free(req);
    if (status != BO_OK) {
        fprintf(stderr, "bench-storage: load failed: %s\n", msg);
        exit(1);
    }
    bo_buf_release(&l->image);
    start_running(l, now_s());
}

static void tick_cb(uv_timer_t *t)
{
    struct load *l = t->data;
    double now = now_s();
    struct bo_err err = BO_ERR_INIT;
    int rv;
    if (l->stopping) {
        return;
    }
    switch (l->phase) {
    case PH_WAIT_LEADER:
        if (bo_storage_role(l->s) != BO_ROLE_LEADER) {
            return;
        }
        if (!l->preload) {
            start_running(l, now);
            return;
        }
        /* The big state goes through the log as one entry, as a recovery
         * commit does, and every replica restores it. */
        struct bo_storage_write *req = bo_calloc(1, sizeof(*req));
        req->data = l;
        rv = bo_storage_write_entry(l->s, req, l->image.data + BO_SNAP_HEADER_SIZE,
                                    l->image.len - BO_SNAP_HEADER_SIZE, loaded_cb, &err);
        if (rv != BO_OK) {
            die("load", rv, &err);
        }
        l->phase = PH_LOADING;
        return;
    case PH_LOADING:
        return;
    case PH_RUNNING:
        if (now - l->t_start < l->o->seconds) {
            return;
        }
        if (!l->stall) {
            break;
        }
        l->snap_t0 = now;
        rv = bo_storage_snapshot_now(l->s, snap_done_cb, l, &err);
        if (rv != BO_OK) {
            die("snapshot now", rv, &err);
        }
        l->phase = PH_SNAPSHOT;
        return;
    case PH_SNAPSHOT:
        if (!l->snap_done || now - l->snap_t1 < 0.5) {
            return;
        }
        break;
    }
    l->t_end = now;
    cpu_sample(&l->cpu1);
    l->stopping = true;
    pump(l);
}

static void run_load(struct load *l, const struct opts *o, bool stall)
{
    char data[4096];
    snprintf(data, sizeof(data), "%s/raft", o->dir);
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data);
    if (system(cmd) != 0) {
        die("clean data dir", BO_EIO, NULL);
    }
    struct bo_storage_config cfg;
    bo_storage_config_init(&cfg);
    cfg.data_dir = data;
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", 20000 + (int)(getpid() % 20000));
    cfg.address = addr;
    /* Threshold snapshots would compete for the two cores; their effect on
     * the write path is what the stall benchmark measures on its own. */
    cfg.snapshot_threshold = 100000000;
    cfg.backup_interval_ms = 0;
    l->o = o;
    l->cap_lat = 20000000;
    l->lat = bo_calloc(l->cap_lat, sizeof(double));
    l->at = bo_calloc(l->cap_lat, sizeof(double));
    init_gen(&l->g, o);
    l->stall = stall;
    l->preload = stall || o->change;
    if (l->preload) {
        struct bo_snap_stats st;
        build_image(&l->g, true, BO_CODEC_ZSTD, &l->image, &st);
    }
    uv_loop_init(&l->loop);
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_storage_open(&l->loop, &cfg, &l->s, &err);
    if (rv != BO_OK) {
        die("storage open", rv, &err);
    }
    uv_timer_init(&l->loop, &l->tick);
    l->tick.data = l;
    uv_timer_init(&l->loop, &l->pace);
    l->pace.data = l;
    uv_timer_start(&l->tick, tick_cb, 0, 5);
    uv_run(&l->loop, UV_RUN_DEFAULT);
    bo_storage_free(l->s);
    uv_loop_close(&l->loop);
    bo_gen_arena_release(&l->arena);
    bo_gen_release(&l->g);
}

static int cmd_write(const struct opts *o)
{
    struct load l;
    memset(&l, 0, sizeof(l));
    run_load(&l, o, false);
    double secs = l.t_end - l.t_start;
    double p50 = percentile(l.lat, l.n_lat, 0.50), p99 = percentile(l.lat, l.n_lat, 0.99);
    uint64_t submitted = l.committed + (uint64_t)l.failed + l.outstanding;
    printf("{\"kind\": \"%s\", \"per_txn\": %u, \"inflight\": %u, \"commits\": %" PRIu64
           ", \"seconds\": %.2f, \"commits_per_s\": %.0f, \"tasks_per_s\": %.0f"
           ", \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"entry_bytes\": %" PRIu64 ", \"failed\": %d",
           o->change ? "change" : "new", o->per_txn, o->inflight, l.committed, secs,
           (double)l.committed / secs, (double)l.committed * o->per_txn / secs, p50, p99,
           submitted ? l.entry_bytes / submitted : 0, l.failed);
    cpu_print(&l.cpu0, &l.cpu1, l.committed);
    printf("}\n");
    bo_free(l.lat);
    bo_free(l.at);
    return l.failed ? 1 : 0;
}

/* Lines "submit_s latency_ms" (monotonic clock) from 0.2 s before the
 * snapshot on, then "# t0 T t1 T off O": the window, and the realtime clock
 * minus the monotonic one, to line the writes up with strace or perf. */
static void dump_latencies(const struct load *l, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        die("dump", BO_EIO, NULL);
    }
    for (size_t i = 0; i < l->n_lat; i++) {
        if (l->at[i] >= l->snap_t0 - 0.2) {
            fprintf(f, "%.6f %.3f\n", l->at[i], l->lat[i]);
        }
    }
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    double off = (double)rt.tv_sec + (double)rt.tv_nsec / 1e9 - now_s();
    fprintf(f, "# t0 %.6f t1 %.6f off %.6f\n", l->snap_t0, l->snap_t1, off);
    fclose(f);
}

static int cmd_stall(const struct opts *o)
{
    struct load l;
    memset(&l, 0, sizeof(l));
    run_load(&l, o, true);
    /* Split latencies by submit time: before the snapshot, and during it. */
    double *base = bo_calloc(l.n_lat + 1, sizeof(double));
    double *during = bo_calloc(l.n_lat + 1, sizeof(double));
    size_t nb = 0, nd = 0;
    double maxd = 0;
    for (size_t i = 0; i < l.n_lat; i++) {
        if (l.at[i] < l.snap_t0) {
            base[nb++] = l.lat[i];
        } else if (l.at[i] <= l.snap_t1) {
            during[nd++] = l.lat[i];
            maxd = l.lat[i] > maxd ? l.lat[i] : maxd;
        }
    }
    double maxb = 0;
    for (size_t i = 0; i < nb; i++) {
        maxb = base[i] > maxb ? base[i] : maxb;
    }
    if (o->dump != NULL) {
        dump_latencies(&l, o->dump);
    }
    double window = l.snap_t1 - l.snap_t0, before = l.snap_t0 - l.t_start;
    printf("{\"tasks\": %" PRIu64 ", \"rate\": %.0f, \"inflight\": %u"
           ", \"snapshot_window_s\": %.3f, \"writes_during\": %zu"
           ", \"writes_per_s_before\": %.0f, \"writes_per_s_during\": %.0f"
           ", \"commit_p50_ms\": %.3f, \"commit_p99_ms\": %.3f, \"commit_max_ms\": %.3f"
           ", \"stall_p50_ms\": %.3f, \"stall_p99_ms\": %.3f, \"stall_max_ms\": %.3f}\n",
           o->gen.tasks, o->rate, o->inflight, window, nd, before > 0 ? (double)nb / before : 0,
           window > 0 ? (double)nd / window : 0, percentile(base, nb, 0.50),
           percentile(base, nb, 0.99), maxb, percentile(during, nd, 0.50),
           percentile(during, nd, 0.99), maxd);
    bo_free(base);
    bo_free(during);
    bo_free(l.lat);
    bo_free(l.at);
    return l.failed ? 1 : 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench-storage sizes|snapshot|write|stall [--tasks N] [--jobs J]\n"
                    "       [--configs R] [--hosts H] [--runs K] [--dir D] [--per-txn K]\n"
                    "       [--inflight C] [--seconds S] [--kind new|change] [--rate R]\n"
                    "       [--dump FILE]\n");
}

int main(int argc, char **argv)
{
    struct opts o = {
        .gen = BO_GEN_PARAMS_DEFAULT, .per_txn = 1, .inflight = 64, .seconds = 10, .runs = 3};
    bool jobs_set = false, configs_set = false, hosts_set = false;
    static const struct option lo[] = {
        {"tasks", required_argument, NULL, 'n'},
        {"jobs", required_argument, NULL, 'j'},
        {"configs", required_argument, NULL, 'r'},
        {"hosts", required_argument, NULL, 'h'},
        {"runs", required_argument, NULL, 'k'},
        {"dir", required_argument, NULL, 'd'},
        {"per-txn", required_argument, NULL, 'p'},
        {"inflight", required_argument, NULL, 'c'},
        {"seconds", required_argument, NULL, 's'},
        {"kind", required_argument, NULL, 'K'},
        {"rate", required_argument, NULL, 'R'},
        {"dump", required_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *cmd = argv[1];
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'n':
            o.gen.tasks = strtoull(optarg, NULL, 10);
            break;
        case 'j':
            o.gen.jobs = strtoull(optarg, NULL, 10);
            jobs_set = true;
            break;
        case 'r':
            o.gen.configs = strtoull(optarg, NULL, 10);
            configs_set = true;
            break;
        case 'h':
            o.gen.hosts = strtoull(optarg, NULL, 10);
            hosts_set = true;
            break;
        case 'k':
            o.runs = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'd':
            o.dir = optarg;
            break;
        case 'p':
            o.per_txn = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'c':
            o.inflight = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 's':
            o.seconds = strtod(optarg, NULL);
            break;
        case 'R':
            o.rate = strtod(optarg, NULL);
            break;
        case 'D':
            o.dump = optarg;
            break;
        case 'K':
            if (strcmp(optarg, "change") != 0 && strcmp(optarg, "new") != 0) {
                usage();
                return 2;
            }
            o.change = strcmp(optarg, "change") == 0;
            break;
        default:
            usage();
            return 2;
        }
    }
    /* Smaller runs keep the default shape: 100 instances a job, one config
     * a job, a host per 50 tasks. */
    if (!jobs_set) {
        o.gen.jobs = o.gen.tasks / 100 > 0 ? o.gen.tasks / 100 : 1;
    }
    if (!configs_set) {
        o.gen.configs = o.gen.jobs;
    }
    if (!hosts_set) {
        o.gen.hosts = o.gen.tasks / 50 > 0 ? o.gen.tasks / 50 : 1;
    }
    if (o.runs == 0 || o.runs > MAX_RUNS || o.inflight == 0 || o.per_txn == 0) {
        usage();
        return 2;
    }
    bo_log_set_level(BO_LOG_WARN);
    signal(SIGPIPE, SIG_IGN); /* see storage.h */
    if (strcmp(cmd, "sizes") == 0) {
        return cmd_sizes(&o);
    }
    if (o.dir == NULL) {
        usage();
        return 2;
    }
    struct bo_err err = BO_ERR_INIT;
    if (strcmp(cmd, "gen-image") != 0 && bo_fs_mkdirs(o.dir, &err) != BO_OK) {
        die("--dir", BO_EIO, &err);
    }
    if (strcmp(cmd, "gen-image") == 0) {
        return cmd_gen_image(&o, o.dir);
    }
    if (strcmp(cmd, "snapshot") == 0) {
        return cmd_snapshot(&o);
    }
    if (strcmp(cmd, "write") == 0) {
        return cmd_write(&o);
    }
    if (strcmp(cmd, "stall") == 0) {
        return cmd_stall(&o);
    }
    usage();
    return 2;
}
