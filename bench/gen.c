/*
 * gen.c - deterministic, realistic cluster state for the storage benchmarks.
 *
 * Calibration target: the 2015 Aurora backup of the seeds, in absolute size
 * as well as in ratios: 1546 MiB plain Snapshot, 281 MiB deduplicated; gzip -3
 * alone 5.2x, dedup alone 5.5x, dedup + gzip -3 35x. Read as a cluster of
 * ~1M tasks, that is ~270 bytes per task without its config and ~1.3 KB of
 * config share. bench-calibrate (calibrate.c) measures the same on generated
 * state. At the defaults (1M tasks, 10k jobs, 10k configs, 20k hosts):
 *
 *                 bytes     zlib-3    zstd-3    (ratios are raw / compressed)
 *   raw         1637 MB     4.92x     6.03x
 *   dedup        304 MB    19.4x     23.1x     (dedup alone 5.38x; tasks in
 *                                                 hash order, bench-calibrate)
 *   dedup        304 MB    25.8x     31.4x     (tasks grouped by config, as
 *                                                 Aurora's deduplicator and our
 *                                                 store emit them)
 *   dedup        304 MB    29.4x     35.5x     (and event timestamps as deltas
 *                                                 in one column per task, zstd
 *                                                 window 4 MB, hash log 18: our
 *                                                 compressed images; bench-storage
 *                                                 sizes)
 *
 * with a config of ~1350 bytes (Thermos JSON ~960) and a partial task of
 * ~280. At 100k tasks / 1k jobs: 162 MB raw, zlib 5.0x, dedup 5.4x, dedup +
 * zlib 20.4x, dedup + zstd 27.2x (zstd's 2 MB window then holds most configs).
 *
 * Sizes. Raw is N (T + C) and dedup N T + R C for a partial task of T bytes
 * and a config of C; with R = N / 100 their quotient, the dedup ratio, is
 * about (T + C) / T. A partial task is T ~280: task id "role-env-name-
 * instance-suffix" (the job key an operator greps for and 32 random bits, not
 * Aurora's timestamp and 128-bit UUID), agent id and host, 1-3 ports from the
 * low end of the agent's range, and four events (PENDING, ASSIGNED, STARTING,
 * RUNNING), each with a millisecond timestamp and the scheduler's short host
 * name, a message only where Aurora writes one ("Initializing sandbox.",
 * terminal states). C ~1350 is a TaskConfig (~390 bytes: resources,
 * constraints, metadata, links) plus ~960 bytes of Thermos JSON: a package
 * fetch with its md5, the server command line with ports and a few flags
 * (round values, as people type them), resources, health check, announce.
 *
 * Compression alone is z(T) + z(C) per task, where z(C) is what a config
 * costs against a window of unrelated ones: the package checksum, git sha,
 * build ids and flag choices keep that near 230 bytes, hence zlib ~4.9x.
 *
 * Dedup + compression is (T + C) / (z(T) + z(C) / 100): all but ~2 bytes
 * of the denominator is the compressed partial task, so 35x at T + C ~1630
 * would need z(T) <= 44 bytes, i.e. partial tasks compressing 6.4x as the
 * seeds' Thrift tasks did. Protobuf tasks of this content do not. Measured
 * on 200k partial tasks (marginal cost of each field, zlib-3 / zstd-3, in
 * bytes per task): task id 21.6 / 19.5, the four event timestamps 27.2 /
 * 24.5, agent id 7.2 / 4.9, host 9.3 / 7.0, ports 7.6 / 6.7, messages,
 * scheduler and ancestor 10 / 6; in all 77 / 64 bytes for 279 (3.6x /
 * 4.4x). The floor is in the data, not the compressors' level: xz -9e
 * still needs 37 bytes a task and zstd -19 --long 45; level 3 pays a match
 * (2-3 bytes in deflate) at each of the ~25 varying fields between constant
 * runs. The same tasks encoded as Aurora's Thrift (TBinaryProtocol: 3-byte
 * field headers, 4-byte lengths, fixed i32/i64) are 396 bytes and compress
 * to 86 (4.6x): Thrift's padding is cheap to compress but carries no less
 * information. So the seeds' 6.4x says their tasks held more redundant bytes
 * per task (longer histories, FQDN scheduler names, Thrift framing), i.e.
 * fewer than 1M tasks of ~500 bytes, each compressing to ~80 bytes as here.
 * What the data does allow is a layout zstd can use: the deltas of the
 * timestamps (to the previous event of the task, the first to the median of
 * the previous three tasks' first) are 1-3 bytes where a timestamp is 6, and
 * gathered at the end of the task (docs/storage-format.md) they leave the
 * events between them equal to the previous task's, matched whole instead of
 * one match per event: 52.1 -> 46.9 MB at 1M tasks (the median alone is
 * 0.04 MB of it), and a 4 MB window with a hash log of 18 at level 3 makes
 * it 46.1 MB, 35.5x (45.9 MB with zstd's own 16 MB jobs for that window,
 * which lengthen the end of a snapshot). Each event's timestamp left in place
 * as a zigzag delta saved only 1.3 MB: a 2-3 byte literal between matches
 * still costs its match, and the event's length then varies too.
 *
 * Why the order matters. zlib's window is 32 KB, about 20 tasks with their
 * configs. Aurora's task map is hash-ordered, so neighbours belong to
 * unrelated jobs and gzip cannot see that configs repeat; that is why the
 * seeds' gzip ratio is so far below the dedup + gzip one. Task i is
 * therefore placed by a permutation (i * a + b mod N) over (job, instance).
 * Creation times follow how tasks come to exist: the update that rolled out
 * a config created its instances in batches of five about a minute apart,
 * each batch within a scheduling round (a few hundred ms); one task in ten
 * was rescheduled since, at a time of its own, over 60 days. Grouped by
 * config (as a deduplicated snapshot is written), neighbouring tasks share
 * most of their timestamps' bytes, which is where 23x becomes 31x.
 *
 * Knobs, and what they move: events_per_task (each event ~27 bytes, ~6
 * compressed: raises T, lowers dedup, barely moves T / z(T)); configs > jobs
 * (several versions per job, as mid-update: lowers dedup).
 *
 * Mechanics. Every object (task, config, host) seeds its own splitmix64
 * stream from (seed, kind, index), so objects are independent of generation
 * order. An object is built in one reserved span of an arena: the function
 * reserves an upper bound once (the only allocation that can fail), then
 * carves structs and strings out of it with infallible bump allocations;
 * exceeding the bound is a bug and asserts. Strings are appended in place
 * (no snprintf on the per-task path), which keeps a million tasks well under
 * the two-second budget.
 */
#include "bench/gen.h"

#include <assert.h>
#include <stdalign.h>
#include <stddef.h>
#include <string.h>

#include "common/err.h"
#include "common/mem.h"

/* ---------------------------------------------------------------- arena ---- */

struct bo_gen_chunk {
    struct bo_gen_chunk *next;
    size_t size; /* usable bytes after the header */
};

#define GA_ALIGN      8
#define GA_CHUNK_SIZE ((size_t)256 * 1024)
#define GA_HDR        ((sizeof(struct bo_gen_chunk) + 15) & ~(size_t)15)

static char *ga_chunk_data(struct bo_gen_chunk *c)
{
    return (char *)c + GA_HDR;
}

void bo_gen_arena_reset(struct bo_gen_arena *a)
{
    a->cur = a->first;
    if (a->first) {
        a->pos = ga_chunk_data(a->first);
        a->end = a->pos + a->first->size;
    } else {
        a->pos = a->end = NULL;
    }
}

void bo_gen_arena_release(struct bo_gen_arena *a)
{
    struct bo_gen_chunk *c = a->first;
    while (c) {
        struct bo_gen_chunk *next = c->next;
        bo_free(c);
        c = next;
    }
    *a = (struct bo_gen_arena)BO_GEN_ARENA_INIT;
}

size_t bo_gen_arena_capacity(const struct bo_gen_arena *a)
{
    size_t n = 0;
    for (const struct bo_gen_chunk *c = a->first; c; c = c->next)
        n += c->size;
    return n;
}

/* Make the next `n` bytes of allocations infallible. Chunks after the
 * current one (kept by a reset) are reused when big enough. */
static int ga_reserve(struct bo_gen_arena *a, size_t n)
{
    n += GA_ALIGN;
    if (a->pos && (size_t)(a->end - a->pos) >= n)
        return BO_OK;
    struct bo_gen_chunk *c = a->cur ? a->cur->next : a->first;
    while (c && c->size < n)
        c = c->next;
    if (!c) {
        size_t size = n > GA_CHUNK_SIZE ? (n + 15) & ~(size_t)15 : GA_CHUNK_SIZE;
        c = bo_malloc(GA_HDR + size);
        if (!c)
            return BO_ENOMEM;
        c->next = NULL;
        c->size = size;
        if (!a->first) {
            a->first = c;
        } else {
            struct bo_gen_chunk *last = a->cur ? a->cur : a->first;
            while (last->next)
                last = last->next;
            last->next = c;
        }
    }
    a->cur = c;
    a->pos = ga_chunk_data(c);
    a->end = a->pos + c->size;
    return BO_OK;
}

static void *ga_alloc(struct bo_gen_arena *a, size_t n)
{
    n = (n + GA_ALIGN - 1) & ~(size_t)(GA_ALIGN - 1);
    assert(a->pos && (size_t)(a->end - a->pos) >= n); /* the caller reserved too little */
    void *p = a->pos;
    a->pos += n;
    return p;
}

#define GA_NEW(a, type, init)                                                                      \
    ({                                                                                             \
        type *p_ = ga_alloc((a), sizeof(type));                                                    \
        *p_ = (type)init;                                                                          \
        p_;                                                                                        \
    })

#define GA_ARRAY(a, type, n) ((type *)ga_alloc((a), sizeof(type) * (n)))

/* A string built in place at the arena's position; no other allocation may
 * happen between sb_begin and sb_end. */
struct gsb {
    char *start;
    char *p;
    char *end;
};

static void sb_begin(struct gsb *s, struct bo_gen_arena *a)
{
    s->start = s->p = a->pos;
    s->end = a->end;
}

static char *sb_end(struct gsb *s, struct bo_gen_arena *a)
{
    assert(s->p < s->end);
    *s->p++ = '\0';
    a->pos = s->start;
    ga_alloc(a, (size_t)(s->p - s->start));
    return s->start;
}

static void sb_mem(struct gsb *s, const char *d, size_t n)
{
    assert((size_t)(s->end - s->p) > n);
    memcpy(s->p, d, n);
    s->p += n;
}

static void sb_str(struct gsb *s, const char *str)
{
    sb_mem(s, str, strlen(str));
}

static void sb_chr(struct gsb *s, char c)
{
    sb_mem(s, &c, 1);
}

static void sb_u64(struct gsb *s, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sb_mem(s, tmp + sizeof(tmp) - n, n);
}

/* Zero-padded decimal of at least `width` digits. */
static void sb_u64w(struct gsb *s, uint64_t v, unsigned width)
{
    char tmp[24];
    unsigned n = 0;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v || n < width);
    sb_mem(s, tmp + sizeof(tmp) - n, n);
}

static void sb_hex(struct gsb *s, uint64_t v, unsigned digits)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    assert(digits <= 16);
    for (unsigned k = 0; k < digits; k++) {
        tmp[digits - 1 - k] = hex[v & 15];
        v >>= 4;
    }
    sb_mem(s, tmp, digits);
}

/* "0.25", "1.5", "12": a number of quarter units. */
static void sb_quarters(struct gsb *s, uint64_t q)
{
    static const char *const frac[] = {"", ".25", ".5", ".75"};
    sb_u64(s, q / 4);
    sb_str(s, q % 4 ? frac[q % 4] : ".0");
}

/* ------------------------------------------------------------------ rng ---- */

struct grng {
    uint64_t s;
};

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

enum { K_TASK = 1, K_CONFIG, K_HOST, K_ROLE, K_CLUSTER, K_JOB };

static void rng_seed(struct grng *r, uint64_t seed, uint64_t kind, uint64_t i)
{
    r->s = mix64(seed ^ mix64(kind * 0x9e3779b97f4a7c15ULL + i));
}

static uint64_t rng_next(struct grng *r)
{
    r->s += 0x9e3779b97f4a7c15ULL;
    return mix64(r->s);
}

static uint64_t rng_below(struct grng *r, uint64_t n)
{
    return n ? rng_next(r) % n : 0;
}

/* True with probability pct/100. */
static bool rng_pct(struct grng *r, unsigned pct)
{
    return rng_below(r, 100) < pct;
}

#define PICK(r, arr) ((arr)[rng_below((r), sizeof(arr) / sizeof((arr)[0]))])
#define NELEM(arr)   (sizeof(arr) / sizeof((arr)[0]))

static void sb_uuid(struct gsb *s, struct grng *r)
{
    uint64_t a = rng_next(r), b = rng_next(r);
    sb_hex(s, a >> 32, 8);
    sb_chr(s, '-');
    sb_hex(s, a >> 16, 4);
    sb_chr(s, '-');
    sb_hex(s, 0x4000 | (a & 0x0fff), 4);
    sb_chr(s, '-');
    sb_hex(s, 0x8000 | (b >> 50), 4);
    sb_chr(s, '-');
    sb_hex(s, b, 12);
}

/* ----------------------------------------------------------- vocabulary ---- */

static const char *const role_words[] = {
    "www-data", "search",  "ads",      "timeline", "tweetypie", "cache",     "graph",
    "notify",   "media",   "video",    "geo",      "identity",  "payments",  "analytics",
    "ml",       "storage", "infra",    "monitor",  "mobile",    "messaging", "discovery",
    "trends",   "abuse",   "platform", "revenue",  "growth",    "frontend",  "data",
};

static const char *const job_first[] = {
    "user",    "tweet",  "timeline", "search",  "ad",     "media",  "graph",    "notify",
    "session", "geo",    "rank",     "feature", "event",  "image",  "video",    "auth",
    "billing", "report", "index",    "crawl",   "stream", "kafka",  "memcache", "redis",
    "mysql",   "hdfs",   "spark",    "model",   "metric", "log",    "trace",    "config",
    "deploy",  "edge",   "api",      "web",     "push",   "social", "profile",  "friend",
};

static const char *const job_second[] = {
    "service", "frontend", "backend",  "cache",   "indexer", "writer",    "reader",
    "proxy",   "worker",   "consumer", "server",  "api",     "gateway",   "scorer",
    "mixer",   "router",   "builder",  "fetcher", "store",   "collector",
};

static const char *const envs[] = {
    "prod", "prod", "prod",  "prod",  "prod",  "prod",  "prod",    "prod",    "prod",    "prod",
    "prod", "prod", "devel", "devel", "devel", "devel", "staging", "staging", "staging", "test"};

static const char *const port_names[] = {"http", "health", "admin",   "thrift",
                                         "grpc", "debug",  "metrics", "aurora"};

static const char *const zones[] = {"smf1", "atla", "pdxa", "sjc2"};

static const char *const runtimes[] = {"java", "python2.7", "python3", "go", "node"};

static const char *const java_flags[] = {
    "-XX:+UseConcMarkSweepGC",
    "-XX:+UseG1GC",
    "-XX:+PrintGCDetails",
    "-XX:+PrintGCDateStamps",
    "-XX:+HeapDumpOnOutOfMemoryError",
    "-Djava.net.preferIPv4Stack=true",
    "-XX:+UseCompressedOops",
    "-Dfile.encoding=UTF-8",
    "-XX:+AlwaysPreTouch",
    "-XX:ReservedCodeCacheSize=256m",
};

/* Application flags: distinct names, numeric values below the modulus. */
static const struct {
    const char *name;
    uint64_t mod;
} app_flags[] = {
    {"-stats.export_interval_secs", 120},
    {"-cache.size_mb", 8192},
    {"-finagle.timeout_ms", 5000},
    {"-thrift.max_requests", 100000},
    {"-tracing.sample_per_mille", 1000},
    {"-db.pool_size", 256},
    {"-features.rollout_pct", 100},
    {"-request.deadline_ms", 30000},
    {"-backend.retries", 8},
    {"-shard.count", 4096},
    {"-queue.capacity", 1000000},
    {"-http.max_body_kb", 65536},
    {"-auth.token_ttl_secs", 86400},
    {"-log.max_files", 64},
    {"-worker.threads", 128},
    {"-batch.size", 10000},
};

/* Flag values people type: round numbers. */
static const uint64_t round_values[] = {
    1,    2,    3,    4,    5,    8,     10,    16,    20,    25,    30,     32,
    50,   60,   64,   100,  128,  200,   250,   256,   500,   512,   1000,   1024,
    2000, 2048, 4096, 5000, 8192, 10000, 30000, 60000, 65536, 86400, 100000, 1000000};

/* A round value for a flag whose values stay below `mod`. */
static uint64_t round_value(struct grng *r, uint64_t mod)
{
    size_t n = 0;
    while (n < NELEM(round_values) && round_values[n] < mod)
        n++;
    return round_values[rng_below(r, n ? n : 1)];
}

static const char *const team_names[] = {"core-services",  "revenue-eng",  "search-quality",
                                         "infra-platform", "data-eng",     "media-platform",
                                         "identity",       "observability"};

static const char *const users[] = {"jsmith", "mchen", "akumar",  "lgarcia", "bwhite",
                                    "okafor", "nsato", "dpetrov", "erossi",  "tnguyen"};

/* The schedulers' short host names, as TaskEvent.scheduler records them. */
static const char *const sched_hosts[] = {"smf1-aurora-01", "smf1-aurora-02", "smf1-aurora-03"};

/* ------------------------------------------------------------ placement ---- */

static uint64_t gcd64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static uint64_t mulmod(uint64_t a, uint64_t b, uint64_t m)
{
    return (uint64_t)(((unsigned __int128)a * b) % m);
}

void bo_gen_task_place(const struct bo_gen *g, uint64_t i, uint64_t *job, uint32_t *instance,
                       uint64_t *config)
{
    const struct bo_gen_params *p = &g->p;
    assert(i < p->tasks);
    uint64_t slot = (mulmod(i, g->perm_mul, p->tasks) + g->perm_add) % p->tasks;
    uint64_t j = slot % p->jobs;
    uint64_t k = slot / p->jobs;
    uint64_t count = p->tasks / p->jobs + (j < p->tasks % p->jobs);
    uint64_t versions = p->configs / p->jobs + (j < p->configs % p->jobs);
    /* Instances split into contiguous groups by version, as a rolling update
     * leaves them: the newest version (highest) on the lowest instances. */
    uint64_t v = versions - 1 - k * versions / count;
    if (job)
        *job = j;
    if (instance)
        *instance = (uint32_t)k;
    if (config)
        *config = j + v * p->jobs;
}

static uint64_t job_role(const struct bo_gen *g, uint64_t j)
{
    struct grng r;
    rng_seed(&r, g->p.seed, K_JOB, j);
    return rng_below(&r, g->roles);
}

static void sb_role(struct gsb *s, uint64_t role)
{
    sb_str(s, role_words[role % NELEM(role_words)]);
    if (role >= NELEM(role_words))
        sb_u64(s, role / NELEM(role_words) + 1);
}

static const char *job_env(const struct bo_gen *g, uint64_t j)
{
    struct grng r;
    rng_seed(&r, g->p.seed, K_JOB, j);
    rng_next(&r);
    return PICK(&r, envs);
}

static void sb_job_name(struct gsb *s, uint64_t j)
{
    uint64_t a = NELEM(job_first), b = NELEM(job_second);
    sb_str(s, job_first[j % a]);
    sb_chr(s, '_');
    sb_str(s, job_second[(j / a) % b]);
    if (j >= a * b) {
        sb_chr(s, '_');
        sb_u64(s, j / (a * b));
    }
}

/* Racks of 40 hosts, racks dealt round-robin to the zones. */
static const char *host_zone(uint64_t h)
{
    return zones[(h / 40) % NELEM(zones)];
}

/* Host h: "smf1-r042-h0815.example.com"-like. */
static void sb_host(struct gsb *s, uint64_t h)
{
    sb_str(s, host_zone(h));
    sb_str(s, "-r");
    sb_u64w(s, h / 40, 3);
    sb_str(s, "-h");
    sb_u64w(s, h, 4);
    sb_str(s, ".example.com");
}

/* Mesos agent ids: a master epoch UUID and a sequence; three epochs, as
 * agents re-registered after master failovers. */
static void sb_slave_id(struct gsb *s, const struct bo_gen *g, uint64_t h)
{
    struct grng r;
    rng_seed(&r, g->p.seed, K_CLUSTER, h % 3);
    sb_uuid(s, &r);
    sb_str(s, "-S");
    sb_u64(s, h * 3 + h % 7);
}

/* ------------------------------------------------------------- configs ---- */

/* Thermos' executor JSON, in the shape Aurora's client writes it: the job's
 * fields, two processes (fetch the package, run the server) and sometimes a
 * stats sidecar, resources, health check, lifecycle and announce. ~1 KB. */
static void sb_thermos(struct gsb *s, struct grng *r, const char *role, const char *env,
                       const char *name, uint64_t version, const Bo__TaskConfig *tc,
                       const char *const *ports, size_t n_ports, double cpus, int64_t ram_mb,
                       int64_t disk_mb)
{
    const char *rt = PICK(r, runtimes);
    sb_str(s, "{\"environment\": \"");
    sb_str(s, env);
    sb_str(s, "\", \"health_check_config\": {\"initial_interval_secs\": ");
    sb_u64(s, 5 + rng_below(r, 4) * 5);
    sb_str(s, ".0, \"interval_secs\": ");
    sb_u64(s, 5 + rng_below(r, 3) * 5);
    sb_str(s, ".0, \"max_consecutive_failures\": ");
    sb_u64(s, rng_below(r, 4));
    sb_str(s, ", \"timeout_secs\": 1.0}, \"name\": \"");
    sb_str(s, name);
    sb_str(s, "\", \"service\": ");
    sb_str(s, tc->is_service ? "true" : "false");
    sb_str(s, ", \"max_task_failures\": ");
    sb_u64(s, (uint64_t)tc->max_task_failures);
    sb_str(s, ", \"cluster\": \"smf1\", \"task\": {\"processes\": [");
    /* fetch the package: differs per config (version and checksum) */
    sb_str(s, "{\"name\": \"fetch_package\", \"max_failures\": 1, "
              "\"cmdline\": \"cp /var/lib/packer/");
    sb_str(s, role);
    sb_chr(s, '/');
    sb_str(s, name);
    sb_chr(s, '/');
    sb_u64(s, version);
    sb_str(s, "/pkg.zip . && echo '");
    sb_hex(s, rng_next(r), 16);
    sb_hex(s, rng_next(r), 16);
    sb_str(s, "  pkg.zip' | md5sum -c && unzip -q pkg.zip\"}, ");
    /* the server: the bulk of the variety */
    sb_str(s, "{\"name\": \"");
    sb_str(s, name);
    sb_str(s, "\", \"max_failures\": 1, \"cmdline\": \"");
    if (strcmp(rt, "java") == 0) {
        sb_str(s, "JAVA_OPTS='-Xmx");
        sb_u64(s, (uint64_t)ram_mb * 3 / 4);
        sb_str(s, "m");
        sb_chr(s, ' ');
        sb_str(s, PICK(r, java_flags));
        sb_str(s, "' java -jar ");
        sb_str(s, name);
        sb_str(s, ".jar");
    } else {
        sb_str(s, "./");
        sb_str(s, name);
        sb_str(s, rt[0] == 'p' ? ".pex" : "");
    }
    for (size_t k = 0; k < n_ports; k++) {
        sb_str(s, " -");
        sb_str(s, ports[k]);
        sb_str(s, ".port={{thermos.ports[");
        sb_str(s, ports[k]);
        sb_str(s, "]}}");
    }
    unsigned na = 1 + (unsigned)rng_below(r, 3);
    size_t f0 = rng_below(r, NELEM(app_flags));
    for (unsigned k = 0; k < na; k++) {
        size_t f = (f0 + k) % NELEM(app_flags);
        sb_chr(s, ' ');
        sb_str(s, app_flags[f].name);
        sb_chr(s, '=');
        sb_u64(s, round_value(r, app_flags[f].mod));
    }
    sb_str(s, " -serverset=/aurora/");
    sb_str(s, role);
    sb_chr(s, '/');
    sb_str(s, env);
    sb_chr(s, '/');
    sb_str(s, name);
    sb_str(s, " -instance={{mesos.instance}}\"}");
    if (rng_pct(r, 15)) {
        sb_str(s, ", {\"daemon\": true, \"name\": \"stats\", \"max_failures\": 0, "
                  "\"cmdline\": \"./bin/stats_exporter --port={{thermos.ports[");
        sb_str(s, ports[0]);
        sb_str(s, "]}} --interval=");
        sb_u64(s, 10 + 5 * rng_below(r, 12));
        sb_str(s, "s\"}");
    }
    sb_str(s, "], \"name\": \"");
    sb_str(s, name);
    sb_str(s, "\", \"resources\": {\"disk\": ");
    sb_u64(s, (uint64_t)disk_mb * 1048576);
    sb_str(s, ", \"ram\": ");
    sb_u64(s, (uint64_t)ram_mb * 1048576);
    sb_str(s, ", \"cpu\": ");
    sb_quarters(s, (uint64_t)(cpus * 4));
    sb_str(s, "}}, \"production\": ");
    sb_str(s, tc->production ? "true" : "false");
    sb_str(s, ", \"role\": \"");
    sb_str(s, role);
    sb_str(s, "\", \"tier\": \"");
    sb_str(s, tc->tier);
    sb_str(s, "\", \"priority\": ");
    sb_u64(s, (uint64_t)tc->priority);
    if (tc->is_service) { /* services register in ZooKeeper */
        sb_str(s, ", \"announce\": {\"primary_port\": \"");
        sb_str(s, ports[0]);
        sb_str(s, "\"}");
    }
    sb_chr(s, '}');
}

#define CONFIG_RESERVE ((size_t)24 * 1024)

static Bo__Resource *new_resource(struct bo_gen_arena *a)
{
    return GA_NEW(a, Bo__Resource, BO__RESOURCE__INIT);
}

static int build_config(struct bo_gen *g, uint64_t c, Bo__TaskConfig **out)
{
    struct bo_gen_arena *a = &g->config_arena;
    int rc = ga_reserve(a, CONFIG_RESERVE);
    if (rc != BO_OK)
        return rc;
    const uint64_t j = c % g->p.jobs, version = c / g->p.jobs;
    struct grng jr, r;
    /* Per-job choices come from the job's stream, so every version of a job
     * agrees on them; per-version choices from the config's stream. */
    rng_seed(&jr, g->p.seed, K_CONFIG, j);
    rng_seed(&r, g->p.seed, K_CONFIG, c + 0x100000000ULL);
    struct gsb s;

    Bo__TaskConfig *tc = GA_NEW(a, Bo__TaskConfig, BO__TASK_CONFIG__INIT);
    Bo__JobKey *key = GA_NEW(a, Bo__JobKey, BO__JOB_KEY__INIT);
    sb_begin(&s, a);
    sb_role(&s, job_role(g, j));
    key->role = sb_end(&s, a);
    key->environment = (char *)job_env(g, j);
    sb_begin(&s, a);
    sb_job_name(&s, j);
    key->name = sb_end(&s, a);
    tc->job = key;
    tc->owner_user = key->role;
    tc->is_service = rng_pct(&jr, 85);
    tc->priority = rng_pct(&jr, 80) ? 0 : (int32_t)(1 + rng_below(&jr, 100));
    tc->max_task_failures = tc->is_service ? 1 : (int32_t)(1 + rng_below(&jr, 4));
    tc->production = strcmp(key->environment, "prod") == 0 && rng_pct(&jr, 80);
    tc->tier = tc->production ? "preferred" : (rng_pct(&jr, 80) ? "preemptible" : "revocable");

    /* resources: cpu, ram, disk, 1-3 named ports */
    static const double cpu_choices[] = {0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 8, 16};
    static const int64_t ram_choices[] = {256, 512, 1024, 2048, 3072, 4096, 8192, 16384, 32768};
    static const int64_t disk_choices[] = {1024, 2048, 4096, 8192, 16384, 65536, 131072};
    double cpus = PICK(&jr, cpu_choices);
    int64_t ram = PICK(&jr, ram_choices), disk = PICK(&jr, disk_choices);
    if (version > 0 && rng_pct(&r, 50))
        ram += 512 * (int64_t)version; /* updates often bump the heap */
    const char *ports[3];
    uint64_t port_roll = rng_below(&jr, 10); /* 1 port for 6 jobs in 10, 2 for 3, 3 for 1 */
    size_t n_ports = port_roll < 6 ? 1 : port_roll < 9 ? 2 : 3;
    size_t first_port = rng_below(&jr, NELEM(port_names));
    for (size_t k = 0; k < n_ports; k++)
        ports[k] = port_names[(first_port + k) % NELEM(port_names)];
    tc->n_resources = 3 + n_ports;
    tc->resources = GA_ARRAY(a, Bo__Resource *, tc->n_resources);
    for (size_t k = 0; k < tc->n_resources; k++)
        tc->resources[k] = new_resource(a);
    tc->resources[0]->kind_case = BO__RESOURCE__KIND_NUM_CPUS;
    tc->resources[0]->num_cpus = cpus;
    tc->resources[1]->kind_case = BO__RESOURCE__KIND_RAM_MB;
    tc->resources[1]->ram_mb = ram;
    tc->resources[2]->kind_case = BO__RESOURCE__KIND_DISK_MB;
    tc->resources[2]->disk_mb = disk;
    for (size_t k = 0; k < n_ports; k++) {
        tc->resources[3 + k]->kind_case = BO__RESOURCE__KIND_NAMED_PORT;
        tc->resources[3 + k]->named_port = (char *)ports[k];
    }

    /* constraints: limit host=1 is the common one; a dedicated pool or a zone */
    size_t n_cons = rng_below(&jr, 4);
    tc->n_constraints = n_cons;
    tc->constraints = GA_ARRAY(a, Bo__Constraint *, n_cons ? n_cons : 1);
    for (size_t k = 0; k < n_cons; k++) {
        Bo__Constraint *con = GA_NEW(a, Bo__Constraint, BO__CONSTRAINT__INIT);
        if (k == 0 || k == 2) {
            Bo__LimitConstraint *lim = GA_NEW(a, Bo__LimitConstraint, BO__LIMIT_CONSTRAINT__INIT);
            con->name = k == 0 ? "host" : "rack";
            lim->limit = k == 0 ? 1 : (int32_t)(2 + rng_below(&jr, 3));
            con->kind_case = BO__CONSTRAINT__KIND_LIMIT;
            con->limit = lim;
        } else {
            Bo__ValueConstraint *val = GA_NEW(a, Bo__ValueConstraint, BO__VALUE_CONSTRAINT__INIT);
            val->values = GA_ARRAY(a, char *, 2);
            if (rng_pct(&jr, 50)) {
                con->name = "dedicated";
                sb_begin(&s, a);
                sb_str(&s, key->role);
                sb_chr(&s, '/');
                sb_str(&s, key->name);
                val->values[0] = sb_end(&s, a);
                val->n_values = 1;
            } else {
                con->name = "zone";
                val->negated = rng_pct(&jr, 30);
                val->values[0] = (char *)zones[rng_below(&jr, 2)];
                val->values[1] = (char *)zones[2 + rng_below(&jr, 2)];
                val->n_values = 2;
            }
            con->kind_case = BO__CONSTRAINT__KIND_VALUE;
            con->value = val;
        }
        tc->constraints[k] = con;
    }

    /* task links, one per named port, in Aurora's template syntax */
    tc->n_task_links = n_ports;
    tc->task_links = GA_ARRAY(a, Bo__TaskConfig__TaskLinksEntry *, n_ports);
    for (size_t k = 0; k < n_ports; k++) {
        Bo__TaskConfig__TaskLinksEntry *e =
            GA_NEW(a, Bo__TaskConfig__TaskLinksEntry, BO__TASK_CONFIG__TASK_LINKS_ENTRY__INIT);
        e->key = (char *)ports[k];
        sb_begin(&s, a);
        sb_str(&s, "http://%host%:%port:");
        sb_str(&s, ports[k]);
        sb_str(&s, "%");
        e->value = sb_end(&s, a);
        tc->task_links[k] = e;
    }

    sb_begin(&s, a);
    if (rng_pct(&jr, 60)) {
        sb_str(&s, key->role);
        sb_str(&s, "-oncall");
    } else {
        sb_str(&s, PICK(&jr, users));
    }
    sb_str(&s, "@example.com");
    tc->contact_email = sb_end(&s, a);

    /* a package to fetch, for a third of the jobs */
    if (rng_pct(&jr, 30)) {
        Bo__FetcherUri *u = GA_NEW(a, Bo__FetcherUri, BO__FETCHER_URI__INIT);
        sb_begin(&s, a);
        sb_str(&s, "hdfs://hadoop-nn.smf1.example.com/user/");
        sb_str(&s, key->role);
        sb_str(&s, "/packages/");
        sb_str(&s, key->name);
        sb_chr(&s, '-');
        sb_u64(&s, version + 1 + rng_below(&jr, 200));
        sb_str(&s, ".tar.gz");
        u->value = sb_end(&s, a);
        u->extract = true;
        u->cache = rng_pct(&jr, 50);
        tc->fetcher_uris = GA_ARRAY(a, Bo__FetcherUri *, 1);
        tc->fetcher_uris[0] = u;
        tc->n_fetcher_uris = 1;
    }

    /* 2-5 metadata: who owns it, what build it is */
    size_t n_md = 2 + rng_below(&jr, 4);
    tc->n_metadata = n_md;
    tc->metadata = GA_ARRAY(a, Bo__Metadata *, n_md);
    for (size_t k = 0; k < n_md; k++) {
        Bo__Metadata *m = GA_NEW(a, Bo__Metadata, BO__METADATA__INIT);
        sb_begin(&s, a);
        switch (k) {
        case 0:
            m->key = "git_sha";
            sb_hex(&s, rng_next(&r), 16);
            sb_hex(&s, rng_next(&r), 16);
            sb_hex(&s, rng_next(&r), 8);
            break;
        case 1:
            m->key = "team";
            sb_str(&s, PICK(&jr, team_names));
            break;
        case 2:
            m->key = "build_id";
            sb_u64(&s, 100000 + rng_below(&r, 900000));
            break;
        case 3:
            m->key = "deployed_by";
            sb_str(&s, PICK(&r, users));
            break;
        default:
            m->key = "pager_rotation";
            sb_str(&s, key->role);
            sb_str(&s, "-primary");
            break;
        }
        m->value = sb_end(&s, a);
        tc->metadata[k] = m;
    }

    Bo__PartitionPolicy *pp = GA_NEW(a, Bo__PartitionPolicy, BO__PARTITION_POLICY__INIT);
    pp->reschedule = true;
    pp->delay_secs = rng_pct(&jr, 80) ? 0 : 60 * (int64_t)(1 + rng_below(&jr, 10));
    tc->partition_policy = pp;

    if (tc->production && rng_pct(&jr, 30)) {
        Bo__SlaPolicy *sla = GA_NEW(a, Bo__SlaPolicy, BO__SLA_POLICY__INIT);
        Bo__PercentageSlaPolicy *pct =
            GA_NEW(a, Bo__PercentageSlaPolicy, BO__PERCENTAGE_SLA_POLICY__INIT);
        pct->percentage = 95;
        pct->duration_secs = 1800;
        sla->kind_case = BO__SLA_POLICY__KIND_PERCENTAGE;
        sla->percentage = pct;
        tc->sla_policy = sla;
    }

    /* Thermos on a Mesos container; a fifth run a Docker image in it */
    Bo__Container *ct = GA_NEW(a, Bo__Container, BO__CONTAINER__INIT);
    Bo__MesosContainer *mc = GA_NEW(a, Bo__MesosContainer, BO__MESOS_CONTAINER__INIT);
    if (rng_pct(&jr, 20)) {
        Bo__Image *img = GA_NEW(a, Bo__Image, BO__IMAGE__INIT);
        Bo__DockerImage *di = GA_NEW(a, Bo__DockerImage, BO__DOCKER_IMAGE__INIT);
        sb_begin(&s, a);
        sb_str(&s, "registry.example.com/");
        sb_str(&s, key->role);
        sb_chr(&s, '/');
        sb_str(&s, key->name);
        di->name = sb_end(&s, a);
        sb_begin(&s, a);
        sb_str(&s, "1.");
        sb_u64(&s, version + rng_below(&jr, 40));
        sb_chr(&s, '.');
        sb_u64(&s, rng_below(&r, 10));
        di->tag = sb_end(&s, a);
        img->kind_case = BO__IMAGE__KIND_DOCKER;
        img->docker = di;
        mc->image = img;
    }
    ct->kind_case = BO__CONTAINER__KIND_MESOS;
    ct->mesos = mc;
    tc->container = ct;

    Bo__ExecutorConfig *ec = GA_NEW(a, Bo__ExecutorConfig, BO__EXECUTOR_CONFIG__INIT);
    ec->name = "AuroraExecutor";
    sb_begin(&s, a);
    sb_thermos(&s, &r, key->role, key->environment, key->name, version + 1 + rng_below(&jr, 300),
               tc, ports, n_ports, cpus, ram, disk);
    ec->data = sb_end(&s, a);
    tc->executor_config = ec;

    *out = tc;
    return BO_OK;
}

/* ------------------------------------------------------------ generator ---- */

int bo_gen_init(struct bo_gen *g, const struct bo_gen_params *p)
{
    memset(g, 0, sizeof(*g));
    g->p = *p;
    if (g->p.configs == 0)
        g->p.configs = g->p.jobs;
    if (p->tasks == 0 || p->jobs == 0 || p->jobs > p->tasks || g->p.configs < p->jobs ||
        g->p.configs > p->tasks || p->hosts == 0 || p->events_per_task == 0 ||
        p->events_per_task >= BO_GEN_MAX_EVENTS)
        return BO_EINVAL;
    g->now_ms = 1700000000000LL; /* fixed: runs are reproducible */
    g->roles = p->jobs / 25 ? p->jobs / 25 : 1;
    /* A multiplier coprime to N near N/phi scatters consecutive indices over
     * the whole range, hence over all jobs. */
    uint64_t n = p->tasks;
    uint64_t mul = (uint64_t)((double)n * 0.6180339887) | 1;
    while (n > 1 && gcd64(mul, n) != 1)
        mul++;
    g->perm_mul = n > 1 ? mul % n : 0;
    g->perm_add = mix64(p->seed) % n;

    g->configs = bo_calloc(g->p.configs, sizeof(*g->configs));
    if (!g->configs)
        return BO_ENOMEM;
    for (uint64_t c = 0; c < g->p.configs; c++) {
        int rc = build_config(g, c, &g->configs[c]);
        if (rc != BO_OK) {
            bo_gen_release(g);
            return rc;
        }
    }
    return BO_OK;
}

void bo_gen_release(struct bo_gen *g)
{
    bo_free(g->configs);
    bo_gen_arena_release(&g->config_arena);
    memset(g, 0, sizeof(*g));
}

const Bo__TaskConfig *bo_gen_config(const struct bo_gen *g, uint64_t c)
{
    assert(c < g->p.configs);
    return g->configs[c];
}

/* --------------------------------------------------------------- tasks ---- */

/* "role-env-name-instance-suffix": the job key and instance (what an operator
 * greps for) and 32 random bits, which keep ids unique across the instance's
 * reschedules. */
static void sb_task_id(struct gsb *s, const Bo__TaskConfig *tc, uint32_t instance, struct grng *r)
{
    sb_str(s, tc->job->role);
    sb_chr(s, '-');
    sb_str(s, tc->job->environment);
    sb_chr(s, '-');
    sb_str(s, tc->job->name);
    sb_chr(s, '-');
    sb_u64(s, instance);
    sb_chr(s, '-');
    sb_hex(s, rng_next(r), 8);
}

static const char *event_message(struct grng *r, Bo__ScheduleStatus st)
{
    static const char *const pending[] = {
        "Instance added by job update",
        "Job created by user",
        "Rescheduled after failure of its predecessor",
        "Instance restarted by user",
    };
    static const char *const failed[] = {
        "Process 'server' failed (exit status 1)",
        "Failed health check after 3 consecutive failures",
        "Memory limit exceeded: Requested: 2048MB Maximum Used: 2049MB",
        "Process 'fetch_package' failed (exit status 127)",
    };
    static const char *const killed[] = {"Killed by user", "Instance shutdown via update",
                                         "Killed for job update", "Preempted by a production task"};
    static const char *const lost[] = {"Agent removed", "Task lost after agent failover",
                                       "Reconciliation: task unknown to agent"};
    switch (st) {
    case BO__SCHEDULE_STATUS__THROTTLED:
        return "Rescheduled, penalized for 30000 ms for flapping";
    case BO__SCHEDULE_STATUS__PENDING:
        return rng_pct(r, 90) ? "" : PICK(r, pending);
    case BO__SCHEDULE_STATUS__ASSIGNED:
        return "";
    case BO__SCHEDULE_STATUS__STARTING:
        return "Initializing sandbox.";
    case BO__SCHEDULE_STATUS__RUNNING:
        return "";
    case BO__SCHEDULE_STATUS__FINISHED:
        return "Task finished successfully.";
    case BO__SCHEDULE_STATUS__FAILED:
        return PICK(r, failed);
    case BO__SCHEDULE_STATUS__KILLING:
    case BO__SCHEDULE_STATUS__KILLED:
        return PICK(r, killed);
    case BO__SCHEDULE_STATUS__LOST:
        return PICK(r, lost);
    case BO__SCHEDULE_STATUS__PARTITIONED:
        return "Agent is unreachable";
    default:
        return "";
    }
}

#define TASK_RESERVE ((size_t)2048 + BO_GEN_MAX_EVENTS * 160)

static int build_task(const struct bo_gen *g, uint64_t i, bool with_config, struct bo_gen_arena *a,
                      Bo__ScheduledTask **out)
{
    int rc = ga_reserve(a, TASK_RESERVE);
    if (rc != BO_OK)
        return rc;
    uint64_t job, config;
    uint32_t instance;
    bo_gen_task_place(g, i, &job, &instance, &config);
    const Bo__TaskConfig *tc = g->configs[config];
    struct grng r;
    rng_seed(&r, g->p.seed, K_TASK, i);
    struct gsb s;

    /* status mix of a healthy service cluster */
    static const Bo__ScheduleStatus mix[] = {
        BO__SCHEDULE_STATUS__PENDING,  BO__SCHEDULE_STATUS__PENDING,  BO__SCHEDULE_STATUS__ASSIGNED,
        BO__SCHEDULE_STATUS__STARTING, BO__SCHEDULE_STATUS__FINISHED, BO__SCHEDULE_STATUS__FINISHED,
        BO__SCHEDULE_STATUS__FAILED,   BO__SCHEDULE_STATUS__FAILED,   BO__SCHEDULE_STATUS__KILLED,
        BO__SCHEDULE_STATUS__LOST,
    };
    uint64_t roll = rng_below(&r, 100);
    Bo__ScheduleStatus st = roll < 90 ? BO__SCHEDULE_STATUS__RUNNING : mix[roll - 90];

    Bo__ScheduledTask *t = GA_NEW(a, Bo__ScheduledTask, BO__SCHEDULED_TASK__INIT);
    Bo__AssignedTask *at = GA_NEW(a, Bo__AssignedTask, BO__ASSIGNED_TASK__INIT);
    t->assigned_task = at;
    t->status = st;
    at->task = with_config ? (Bo__TaskConfig *)tc : NULL;
    at->instance_id = (int32_t)instance;

    /* Created by the update that rolled out the task's config, some time in
     * the last 60 days: instances go out in batches of 5 about a minute
     * apart, each batch within a few hundred milliseconds (one scheduling
     * round). One task in ten was rescheduled since, at its own time. */
    struct grng cr;
    rng_seed(&cr, g->p.seed, K_CONFIG, config + 0x200000000ULL);
    int64_t rollout = g->now_ms - 3600000 - (int64_t)rng_below(&cr, 60LL * 86400 * 1000);
    int64_t created = rollout + (int64_t)(instance / 5) * (55000 + (int64_t)rng_below(&cr, 10000)) +
                      (int64_t)rng_below(&r, 400);
    if (rng_pct(&r, 10) || created >= g->now_ms - 60000) {
        created = g->now_ms - 60000 - (int64_t)rng_below(&r, 60LL * 86400 * 1000);
    }
    sb_begin(&s, a);
    sb_task_id(&s, tc, instance, &r);
    at->task_id = sb_end(&s, a);

    bool placed = st != BO__SCHEDULE_STATUS__PENDING;
    if (placed) {
        uint64_t h = rng_below(&r, g->p.hosts);
        sb_begin(&s, a);
        sb_host(&s, h);
        at->slave_host = sb_end(&s, a);
        sb_begin(&s, a);
        sb_slave_id(&s, g, h);
        at->slave_id = sb_end(&s, a);
        size_t n_ports = tc->n_resources - 3;
        at->n_assigned_ports = n_ports;
        at->assigned_ports = GA_ARRAY(a, Bo__AssignedTask__AssignedPortsEntry *, n_ports);
        for (size_t k = 0; k < n_ports; k++) {
            Bo__AssignedTask__AssignedPortsEntry *e =
                GA_NEW(a, Bo__AssignedTask__AssignedPortsEntry,
                       BO__ASSIGNED_TASK__ASSIGNED_PORTS_ENTRY__INIT);
            e->key = tc->resources[3 + k]->named_port;
            e->value = (int32_t)(31000 + rng_below(&r, 256));
            at->assigned_ports[k] = e;
        }
    }

    /* a replacement for an earlier task of the same instance */
    if (rng_pct(&r, 8)) {
        t->failure_count = (int32_t)rng_below(&r, 4);
        sb_begin(&s, a);
        sb_task_id(&s, tc, instance, &r);
        t->ancestor_id = sb_end(&s, a);
    }

    /* History: [THROTTLED] PENDING ASSIGNED STARTING RUNNING {PARTITIONED
     * RUNNING}* [terminal]; a RUNNING task keeps events_per_task of it. */
    Bo__ScheduleStatus hist[BO_GEN_MAX_EVENTS + 4];
    size_t n = 0;
    unsigned e = g->p.events_per_task;
    if (e >= 5 && rng_pct(&r, 50))
        hist[n++] = BO__SCHEDULE_STATUS__THROTTLED;
    hist[n++] = BO__SCHEDULE_STATUS__PENDING;
    hist[n++] = BO__SCHEDULE_STATUS__ASSIGNED;
    hist[n++] = BO__SCHEDULE_STATUS__STARTING;
    hist[n++] = BO__SCHEDULE_STATUS__RUNNING;
    while (n + 2 <= e) {
        hist[n++] = BO__SCHEDULE_STATUS__PARTITIONED;
        hist[n++] = BO__SCHEDULE_STATUS__RUNNING;
        t->times_partitioned++;
    }
    size_t upto; /* events up to and including the current status */
    switch (st) {
    case BO__SCHEDULE_STATUS__PENDING:
        upto = 2 - (hist[0] != BO__SCHEDULE_STATUS__THROTTLED);
        t->times_partitioned = 0;
        break;
    case BO__SCHEDULE_STATUS__ASSIGNED:
        upto = 3 - (hist[0] != BO__SCHEDULE_STATUS__THROTTLED);
        t->times_partitioned = 0;
        break;
    case BO__SCHEDULE_STATUS__STARTING:
        upto = 4 - (hist[0] != BO__SCHEDULE_STATUS__THROTTLED);
        t->times_partitioned = 0;
        break;
    case BO__SCHEDULE_STATUS__RUNNING:
        upto = n;
        break;
    case BO__SCHEDULE_STATUS__KILLED:
        hist[n++] = BO__SCHEDULE_STATUS__KILLING;
        hist[n++] = st;
        upto = n;
        break;
    default:
        hist[n++] = st;
        upto = n;
        break;
    }
    /* keep the newest e (+1 for terminal states), as a pruned history */
    size_t keep = e + (st != BO__SCHEDULE_STATUS__RUNNING && upto > 4);
    if (keep > BO_GEN_MAX_EVENTS)
        keep = BO_GEN_MAX_EVENTS;
    size_t from = upto > keep ? upto - keep : 0;
    t->n_task_events = upto - from;
    t->task_events = GA_ARRAY(a, Bo__TaskEvent *, t->n_task_events);
    int64_t ts = created;
    /* the leader of the day: one scheduler for most of the history */
    const char *sched = rng_pct(&r, 85) ? sched_hosts[0] : PICK(&r, sched_hosts);
    for (size_t k = 0; k < upto; k++) {
        switch (hist[k]) {
        case BO__SCHEDULE_STATUS__ASSIGNED:
            ts += 50 + (int64_t)rng_below(&r, 2000);
            break;
        case BO__SCHEDULE_STATUS__STARTING:
            ts += 100 + (int64_t)rng_below(&r, 1500);
            break;
        case BO__SCHEDULE_STATUS__RUNNING:
            ts += 2000 + (int64_t)rng_below(&r, 60000);
            break;
        default: /* the first event is the task's creation */
            ts += k ? (int64_t)rng_below(&r, 3600000) : 0;
            break;
        }
        if (k < from)
            continue;
        Bo__TaskEvent *ev = GA_NEW(a, Bo__TaskEvent, BO__TASK_EVENT__INIT);
        ev->timestamp_ms = ts;
        ev->status = hist[k];
        ev->message = (char *)event_message(&r, hist[k]);
        ev->scheduler = (char *)sched;
        t->task_events[k - from] = ev;
    }
    *out = t;
    return BO_OK;
}

int bo_gen_task(const struct bo_gen *g, uint64_t i, bool with_config, struct bo_gen_arena *a,
                Bo__ScheduledTask **out)
{
    return build_task(g, i, with_config, a, out);
}

/* ---------------------------------------------------------------- hosts ---- */

#define HOST_RESERVE ((size_t)2048)

int bo_gen_host(const struct bo_gen *g, uint64_t h, struct bo_gen_arena *a,
                Bo__HostAttributes **out)
{
    assert(h < g->p.hosts);
    int rc = ga_reserve(a, HOST_RESERVE);
    if (rc != BO_OK)
        return rc;
    struct grng r;
    rng_seed(&r, g->p.seed, K_HOST, h);
    struct gsb s;
    Bo__HostAttributes *ha = GA_NEW(a, Bo__HostAttributes, BO__HOST_ATTRIBUTES__INIT);
    sb_begin(&s, a);
    sb_host(&s, h);
    ha->host = sb_end(&s, a);
    sb_begin(&s, a);
    sb_slave_id(&s, g, h);
    ha->slave_id = sb_end(&s, a);
    ha->mode = BO__MAINTENANCE_MODE__MAINTENANCE_NONE;
    bool dedicated = rng_pct(&r, 5);
    ha->n_attributes = 3 + dedicated;
    ha->attributes = GA_ARRAY(a, Bo__Attribute *, ha->n_attributes);
    static const char *const names[] = {"host", "rack", "zone", "dedicated"};
    for (size_t k = 0; k < ha->n_attributes; k++) {
        Bo__Attribute *at = GA_NEW(a, Bo__Attribute, BO__ATTRIBUTE__INIT);
        at->name = (char *)names[k];
        at->values = GA_ARRAY(a, char *, 1);
        at->n_values = 1;
        sb_begin(&s, a);
        switch (k) {
        case 0:
            sb_host(&s, h);
            break;
        case 1:
            sb_str(&s, host_zone(h));
            sb_str(&s, "-r");
            sb_u64w(&s, h / 40, 3);
            break;
        case 2:
            sb_str(&s, host_zone(h));
            break;
        default: {
            uint64_t j = rng_below(&r, g->p.jobs);
            sb_role(&s, job_role(g, j));
            sb_chr(&s, '/');
            sb_job_name(&s, j);
            break;
        }
        }
        at->values[0] = sb_end(&s, a);
        ha->attributes[k] = at;
    }
    *out = ha;
    return BO_OK;
}

/* ----------------------------------------------------------------- rest ---- */

int bo_gen_rest(const struct bo_gen *g, struct bo_gen_arena *a, Bo__Snapshot **out)
{
    const uint64_t n_cron = g->p.jobs / 100 ? g->p.jobs / 100 : 1;
    size_t ptrs;
    if (bo_mul_overflows(g->p.hosts + n_cron + g->roles, sizeof(void *), &ptrs))
        return BO_ENOMEM;
    int rc = ga_reserve(a, ptrs + 4096);
    if (rc != BO_OK)
        return rc;
    Bo__Snapshot *snap = GA_NEW(a, Bo__Snapshot, BO__SNAPSHOT__INIT);
    snap->timestamp_ms = g->now_ms;
    snap->host_attributes = GA_ARRAY(a, Bo__HostAttributes *, g->p.hosts);
    snap->cron_jobs = GA_ARRAY(a, Bo__JobConfiguration *, n_cron);
    snap->quotas = GA_ARRAY(a, Bo__QuotaConfiguration *, g->roles);

    Bo__SchedulerMetadata *md = GA_NEW(a, Bo__SchedulerMetadata, BO__SCHEDULER_METADATA__INIT);
    struct gsb s;
    struct grng r;
    rng_seed(&r, g->p.seed, K_CLUSTER, 1000);
    sb_begin(&s, a);
    sb_uuid(&s, &r);
    md->cluster_id = sb_end(&s, a);
    md->details = GA_ARRAY(a, Bo__SchedulerMetadata__DetailsEntry *, 2);
    static const char *const dk[] = {"build.version", "build.git_sha"};
    static const char *const dv[] = {"0.1.0", "43bab4a"};
    for (size_t k = 0; k < 2; k++) {
        Bo__SchedulerMetadata__DetailsEntry *e = GA_NEW(
            a, Bo__SchedulerMetadata__DetailsEntry, BO__SCHEDULER_METADATA__DETAILS_ENTRY__INIT);
        e->key = (char *)dk[k];
        e->value = (char *)dv[k];
        md->details[k] = e;
    }
    md->n_details = 2;
    snap->scheduler_metadata = md;

    for (uint64_t h = 0; h < g->p.hosts; h++) {
        rc = bo_gen_host(g, h, a, &snap->host_attributes[h]);
        if (rc != BO_OK)
            return rc;
    }
    snap->n_host_attributes = g->p.hosts;

    /* cron jobs: every 100th job, with its first config */
    for (uint64_t k = 0; k < n_cron; k++) {
        rc = ga_reserve(a, 512);
        if (rc != BO_OK)
            return rc;
        uint64_t j = k * 100 % g->p.jobs;
        const Bo__TaskConfig *tc = g->configs[j];
        Bo__JobConfiguration *jc = GA_NEW(a, Bo__JobConfiguration, BO__JOB_CONFIGURATION__INIT);
        jc->key = tc->job;
        jc->owner_user = tc->owner_user;
        jc->cron_schedule = k % 2 ? "0 */4 * * *" : "15 3 * * *";
        jc->cron_collision_policy = k % 3 ? BO__CRON_COLLISION_POLICY__CRON_KILL_EXISTING
                                          : BO__CRON_COLLISION_POLICY__CRON_CANCEL_NEW;
        jc->task_config = (Bo__TaskConfig *)tc;
        jc->instance_count = (int32_t)(g->p.tasks / g->p.jobs);
        snap->cron_jobs[k] = jc;
    }
    snap->n_cron_jobs = n_cron;

    /* a quota per role */
    for (uint64_t k = 0; k < g->roles; k++) {
        rc = ga_reserve(a, 512);
        if (rc != BO_OK)
            return rc;
        Bo__QuotaConfiguration *q =
            GA_NEW(a, Bo__QuotaConfiguration, BO__QUOTA_CONFIGURATION__INIT);
        sb_begin(&s, a);
        sb_role(&s, k);
        q->role = sb_end(&s, a);
        Bo__ResourceAggregate *agg = GA_NEW(a, Bo__ResourceAggregate, BO__RESOURCE_AGGREGATE__INIT);
        agg->resources = GA_ARRAY(a, Bo__Resource *, 3);
        for (size_t m = 0; m < 3; m++)
            agg->resources[m] = new_resource(a);
        agg->resources[0]->kind_case = BO__RESOURCE__KIND_NUM_CPUS;
        agg->resources[0]->num_cpus = 1000;
        agg->resources[1]->kind_case = BO__RESOURCE__KIND_RAM_MB;
        agg->resources[1]->ram_mb = 4096 * 1024;
        agg->resources[2]->kind_case = BO__RESOURCE__KIND_DISK_MB;
        agg->resources[2]->disk_mb = 64 * 1024 * 1024;
        agg->n_resources = 3;
        q->quota = agg;
        snap->quotas[k] = q;
    }
    snap->n_quotas = g->roles;
    *out = snap;
    return BO_OK;
}

/* ---------------------------------------------------------- transactions ---- */

/* A transaction of one op with room for k task pointers, all in `a`. */
static int txn_one_op(unsigned k, Bo__Op__OpCase c, struct bo_gen_arena *a, Bo__Transaction **txn,
                      Bo__Op **op, Bo__ScheduledTask ***tasks)
{
    size_t ptrs;
    if (k == 0 || bo_mul_overflows(k, sizeof(void *), &ptrs))
        return BO_EINVAL;
    int rc = ga_reserve(a, ptrs + 512);
    if (rc != BO_OK)
        return rc;
    *txn = GA_NEW(a, Bo__Transaction, BO__TRANSACTION__INIT);
    *op = GA_NEW(a, Bo__Op, BO__OP__INIT);
    *tasks = GA_ARRAY(a, Bo__ScheduledTask *, k);
    (*txn)->ops = GA_ARRAY(a, Bo__Op *, 1);
    (*txn)->ops[0] = *op;
    (*txn)->n_ops = 1;
    (*txn)->schema_version = 1;
    (*op)->op_case = c;
    return BO_OK;
}

int bo_gen_txn_save_tasks(const struct bo_gen *g, uint64_t first, unsigned k,
                          struct bo_gen_arena *a, Bo__Transaction **out)
{
    Bo__Transaction *txn;
    Bo__Op *op;
    Bo__ScheduledTask **tasks;
    int rc = txn_one_op(k, BO__OP__OP_SAVE_TASKS, a, &txn, &op, &tasks);
    if (rc != BO_OK)
        return rc;
    Bo__SaveTasks *st = GA_NEW(a, Bo__SaveTasks, BO__SAVE_TASKS__INIT);
    st->tasks = tasks;
    op->save_tasks = st;
    for (unsigned m = 0; m < k; m++) {
        rc = build_task(g, (first + m) % g->p.tasks, true, a, &st->tasks[m]);
        if (rc != BO_OK)
            return rc;
    }
    st->n_tasks = k;
    *out = txn;
    return BO_OK;
}

int bo_gen_txn_save_task_states(const struct bo_gen *g, uint64_t first, unsigned k, uint64_t round,
                                struct bo_gen_arena *a, Bo__Transaction **out)
{
    Bo__Transaction *txn;
    Bo__Op *op;
    Bo__ScheduledTask **tasks;
    int rc = txn_one_op(k, BO__OP__OP_SAVE_TASK_STATES, a, &txn, &op, &tasks);
    if (rc != BO_OK)
        return rc;
    Bo__SaveTaskStates *st = GA_NEW(a, Bo__SaveTaskStates, BO__SAVE_TASK_STATES__INIT);
    st->tasks = tasks;
    op->save_task_states = st;
    for (unsigned m = 0; m < k; m++) {
        Bo__ScheduledTask *t;
        rc = build_task(g, (first + m) % g->p.tasks, false, a, &t);
        if (rc != BO_OK)
            return rc;
        rc = ga_reserve(a, 256 + (t->n_task_events + 1) * sizeof(void *));
        if (rc != BO_OK)
            return rc;
        /* Even rounds move a task off its generated status, odd ones back,
         * each with its event, as the scheduler logs a transition. */
        Bo__ScheduleStatus to = t->status;
        if (round % 2 == 0)
            to = t->status == BO__SCHEDULE_STATUS__RUNNING ? BO__SCHEDULE_STATUS__KILLING
                                                           : BO__SCHEDULE_STATUS__RUNNING;
        Bo__TaskEvent **evs = GA_ARRAY(a, Bo__TaskEvent *, t->n_task_events + 1);
        memcpy(evs, t->task_events, t->n_task_events * sizeof(*evs));
        Bo__TaskEvent *ev = GA_NEW(a, Bo__TaskEvent, BO__TASK_EVENT__INIT);
        ev->timestamp_ms = g->now_ms + (int64_t)round;
        ev->status = to;
        ev->message = (char *)"bench: state change";
        ev->scheduler = t->n_task_events ? t->task_events[0]->scheduler : (char *)"";
        evs[t->n_task_events] = ev;
        t->task_events = evs;
        t->n_task_events++;
        t->status = to;
        st->tasks[m] = t;
    }
    st->n_tasks = k;
    *out = txn;
    return BO_OK;
}
