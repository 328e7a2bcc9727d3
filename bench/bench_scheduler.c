/*
 * bench-scheduler - placement at scale and API read latency, in one process.
 *
 *   bench-scheduler [--jobs J] [--instances I] [--hosts H] [--big N]
 *                   [--data-dir D] [--json OUT] [--queries K] [--window W]
 *                   [--timeout S]
 *
 * Happy path. The real storage (a single raft voter in a data directory on
 * disk, snapshots at the daemon's default threshold) and the real scheduler
 * library run on one libuv loop, wired as src/scheduler/main.c wires them.
 * H simulated agents register (64 cpus, 256 GB ram, 1 TB disk, 20,000
 * ports; attributes rack (50 racks) and zone (3 zones)), then each keeps one
 * poll outstanding. When a poll answers with launch commands the agent at
 * once reports RUNNING for each (one status request per answer, STARTING
 * skipped) and polls again acknowledging the highest seq. The clock starts at
 * the first create-job request: J jobs of I instances in role "bench" (a
 * third with a limit constraint on host, a third with a value constraint on
 * zone, a third with none; 0.01 cpu, 16 MB ram, 16 MB disk, one named port)
 * plus one job of N (--big, 10,000) instances in role "bench-big", all sent
 * at once (as many concurrent clients would) or W at a time (--window). It
 * stops when every status request is answered (the scheduler answers a
 * status request only once its transition is committed to the log) and the
 * store counts all J * I + N tasks RUNNING.
 *
 * No HTTP anywhere: agents and clients are function calls on the loop, so
 * the numbers are the scheduler and storage alone, an upper bound for the
 * daemon behind its API.
 *
 * Then, with the tasks in the store, K timed calls of each read the API
 * serves: job summaries of role "bench" (J jobs) and tasks without configs
 * of the N-instance job. Each is timed twice: bo_sched_read_text, what the
 * API serves: the answer's text (written without a tree) and freeing it
 * (*_p50_ms, *_p99_ms; *_bytes is its size; tasks_query_first_ms is the
 * first call, before the store keeps any task's text), and for the first
 * 20 calls bo_sched_read, the answer as a jansson tree (*_tree_p50_ms,
 * *_tree_p99_ms). The first call of each checks that the text is the
 * tree's, byte for byte.
 *
 * Output: progress on stderr every second; one JSON object on stdout (and in
 * --json OUT): tasks, hosts, seconds, tasks_per_s, rss_bytes (VmHWM: the
 * peak of the whole process, simulated agents included), rss_end_bytes
 * (VmRSS when placement ends), the reads' p50/p99, counters.
 *
 * Failure modes: any refused request or failed write ends the run with exit
 * status 1 and says why; past --timeout seconds (600) the run stops, prints
 * what it reached with "timed_out": true and exits 1.
 */
#include <getopt.h>
#include <inttypes.h>
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
#include "scheduler/sched.h"
#include "storage/storage.h"
#include "storage/store.h"

#define ROLE         "bench"
#define BIG_ROLE     "bench-big"
#define BIG_NAME     "big"
#define ENV          "prod"
#define N_RACKS      50
#define N_ZONES      3
#define PORT_LO      20000
#define PORT_HI      39999
#define TICK_MS      100
#define REPORT_MS    1000
#define MAX_QUERIES  100000
#define TREE_QUERIES 20

struct bench_opts {
    unsigned jobs;
    unsigned instances;
    unsigned hosts;
    unsigned big;     /* instances of the extra job for the tasks read; 0: none */
    unsigned queries; /* timed calls of each read */
    unsigned window;  /* create requests in flight; 0: all at once */
    double timeout_s;
    const char *data_dir;
    const char *json_out;
};

enum bench_phase {
    PH_LEADER = 0, /* waiting for the single voter to lead */
    PH_REGISTER,   /* agents registered; waiting for their hosts to be stored */
    PH_PLACE,      /* the timed part */
    PH_DONE,
};

struct bench;

struct bench_agent {
    struct bench *b;
    char id[64];
    char host[32];
    uint64_t ack;      /* highest command seq seen */
    uint64_t launched; /* launch commands received */
};

struct bench {
    const struct bench_opts *o;
    uv_loop_t loop;
    uv_timer_t tick;
    struct bo_storage *storage;
    struct bo_sched *sched;
    struct bench_agent *agents;
    enum bench_phase phase;
    bool stopping;
    bool timed_out;
    uint64_t total;        /* tasks to run */
    unsigned n_jobs;       /* create requests to send, the big job included */
    unsigned next_job;     /* next create to send */
    unsigned jobs_done;    /* create replies */
    uint64_t launches;     /* launch commands received by agents */
    uint64_t dup_launches; /* commands delivered again (at least once) */
    uint64_t acked;        /* RUNNING updates answered (committed) */
    uint64_t status_reqs;  /* status requests sent */
    uint64_t polls;        /* polls answered */
    uint64_t empty_polls;  /* answered with no commands (hold expired) */
    uint64_t running;      /* RUNNING in the store, at the last check */
    double t_start, t_created, t_placed, t_end, t_last_report;
    uint64_t last_acked;
    double peak_rate; /* best one-second rate */
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

static double percentile(double *v, size_t n, double p)
{
    if (n == 0) {
        return 0;
    }
    qsort(v, n, sizeof(*v), cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* VmHWM (peak) and VmRSS (now) of this process, in bytes. */
static void rss(uint64_t *hwm, uint64_t *cur)
{
    *hwm = *cur = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) {
        return;
    }
    char line[256];
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long long kb;
        if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) {
            *hwm = (uint64_t)kb * 1024;
        } else if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) {
            *cur = (uint64_t)kb * 1024;
        }
    }
    fclose(f);
}

static void die(const char *what, int rv, const struct bo_err *err)
{
    fprintf(stderr, "bench-scheduler: %s: %s\n", what, bo_err_msg(err, rv));
    exit(1);
}

static uint64_t count_status(struct bench *b, Bo__ScheduleStatus st)
{
    struct bo_task_query q = {.statuses = &st, .n_statuses = 1};
    uint64_t n = 0;
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_store_count_tasks(bo_storage_store(b->storage), &q, &n, &err);
    if (rv != BO_OK) {
        die("count tasks", rv, &err);
    }
    return n;
}

static void report(struct bench *b, double now);

/* Done when every update is answered and the store agrees: all RUNNING. */
static bool check_done(struct bench *b)
{
    if (b->phase != PH_PLACE || b->acked < b->total || b->jobs_done < b->n_jobs) {
        return false;
    }
    b->running = count_status(b, BO__SCHEDULE_STATUS__RUNNING);
    if (b->running < b->total) {
        return false;
    }
    b->t_end = now_s();
    report(b, b->t_end);
    b->phase = PH_DONE;
    uv_stop(&b->loop);
    return true;
}

/* ---- simulated agents ---- */

static void agent_poll(struct bench_agent *a);

static void status_cb(void *data, int status, const char *message, json_t *result)
{
    struct bench *b = data;
    if (status != BO_OK) {
        if (b->stopping) {
            return; /* cancelled by the shutdown after a timeout */
        }
        fprintf(stderr, "bench-scheduler: status update failed: %s\n", message);
        exit(1);
    }
    b->acked += (uint64_t)json_integer_value(json_object_get(result, "acked"));
    check_done(b);
}

static void poll_cb(void *data, int status, const char *message, json_t *result)
{
    struct bench_agent *a = data;
    struct bench *b = a->b;
    if (status != BO_OK) {
        if (!b->stopping) {
            fprintf(stderr, "bench-scheduler: poll of '%s' failed: %s\n", a->host, message);
            exit(1);
        }
        return; /* the scheduler is closing */
    }
    b->polls++;
    json_t *cmds = json_object_get(result, "commands");
    json_t *updates = json_array();
    if (updates == NULL) {
        die("poll", BO_ENOMEM, NULL);
    }
    size_t i;
    json_t *c;
    json_array_foreach(cmds, i, c)
    {
        uint64_t seq = (uint64_t)json_integer_value(json_object_get(c, "seq"));
        const char *type = json_string_value(json_object_get(c, "type"));
        if (seq <= a->ack) {
            b->dup_launches++; /* delivered at least once: already taken */
            continue;
        }
        a->ack = seq;
        if (type == NULL || strcmp(type, "launch") != 0) {
            continue;
        }
        a->launched++;
        if (++b->launches == b->total) {
            b->t_placed = now_s(); /* every task placed, committed, delivered */
        }
        json_t *u =
            json_pack("{s:O, s:s}", "task_id", json_object_get(c, "task_id"), "status", "RUNNING");
        if (u == NULL || json_array_append_new(updates, u) != 0) {
            die("poll", BO_ENOMEM, NULL);
        }
    }
    if (json_array_size(updates) == 0) {
        b->empty_polls++;
        json_decref(updates);
    } else {
        json_t *args = json_pack("{s:s, s:o}", "agent_id", a->id, "updates", updates);
        struct bo_err err = BO_ERR_INIT;
        int rv = args == NULL
                     ? BO_ENOMEM
                     : bo_sched_submit(b->sched, BO_SCHED_AGENT_STATUS, args, status_cb, b, &err);
        if (rv != BO_OK) {
            die("status update", rv, &err);
        }
        b->status_reqs++;
    }
    if (!b->stopping) {
        agent_poll(a);
    }
}

static void agent_poll(struct bench_agent *a)
{
    json_t *args = json_pack("{s:s, s:I}", "agent_id", a->id, "ack", (json_int_t)a->ack);
    struct bo_err err = BO_ERR_INIT;
    int rv = args == NULL ? BO_ENOMEM : bo_sched_agent_poll(a->b->sched, args, poll_cb, a, &err);
    if (rv != BO_OK) {
        die("poll", rv, &err);
    }
}

static void register_cb(void *data, int status, const char *message, json_t *result)
{
    struct bench_agent *a = data;
    if (status != BO_OK) {
        fprintf(stderr, "bench-scheduler: register '%s': %s\n", a->host, message);
        exit(1);
    }
    snprintf(a->id, sizeof(a->id), "%s", json_string_value(json_object_get(result, "agent_id")));
}

static void register_agents(struct bench *b)
{
    b->agents = bo_calloc(b->o->hosts, sizeof(*b->agents));
    if (b->agents == NULL) {
        die("agents", BO_ENOMEM, NULL);
    }
    for (unsigned i = 0; i < b->o->hosts; i++) {
        struct bench_agent *a = &b->agents[i];
        a->b = b;
        snprintf(a->host, sizeof(a->host), "host-%05u", i);
        char rack[16], zone[16];
        snprintf(rack, sizeof(rack), "rack-%02u", i % N_RACKS);
        snprintf(zone, sizeof(zone), "zone-%u", i % N_ZONES);
        json_t *args = json_pack(
            "{s:s, s:{s:f, s:I, s:I, s:[[i, i]]}, s:{s:s, s:s}}", "host", a->host, "resources",
            "cpus", 64.0, "ram_mb", (json_int_t)256 * 1024, "disk_mb", (json_int_t)1024 * 1024,
            "ports", PORT_LO, PORT_HI, "attributes", "rack", rack, "zone", zone);
        struct bo_err err = BO_ERR_INIT;
        int rv = args == NULL ? BO_ENOMEM
                              : bo_sched_agent_register(b->sched, args, register_cb, a, &err);
        if (rv != BO_OK) {
            die("register", rv, &err);
        }
        agent_poll(a);
    }
}

/* ---- clients ---- */

/* Job `j` of J, or the big job for j == J. */
static json_t *job_json(const struct bench_opts *o, unsigned j)
{
    bool big = j == o->jobs;
    char name[32];
    snprintf(name, sizeof(name), big ? BIG_NAME : "job-%05u", j);
    json_t *constraints = json_array();
    if (!big && j % 3 == 0) {
        /* limit N per host, with room: twice the spread over all hosts */
        unsigned limit = 2 * ((o->instances + o->hosts - 1) / o->hosts);
        json_array_append_new(
            constraints, json_pack("{s:s, s:{s:i}}", "name", "host", "limit", "limit", (int)limit));
    } else if (!big && j % 3 == 1) {
        char zone[16];
        snprintf(zone, sizeof(zone), "zone-%u", (j / 3) % N_ZONES);
        json_array_append_new(
            constraints, json_pack("{s:s, s:{s:[s]}}", "name", "zone", "value", "values", zone));
    }
    return json_pack("{s:{s:s, s:s, s:s}, s:i, s:{s:b, s:i, s:[{s:f}, {s:i}, {s:i}, {s:s}], "
                     "s:o, s:{s:s, s:s}}}",
                     "key", "role", big ? BIG_ROLE : ROLE, "environment", ENV, "name", name,
                     "instance_count", (int)(big ? o->big : o->instances), "task_config",
                     "is_service", 1, "max_task_failures", 1, "resources", "num_cpus", 0.01,
                     "ram_mb", 16, "disk_mb", 16, "named_port", "http", "constraints", constraints,
                     "executor_config", "name", "borealis", "data", "{}");
}

static void submit_jobs(struct bench *b);

static void create_cb(void *data, int status, const char *message, json_t *result)
{
    struct bench *b = data;
    (void)result;
    if (status != BO_OK && b->stopping) {
        return;
    }
    if (status != BO_OK) {
        fprintf(stderr, "bench-scheduler: create job: %s\n", message);
        exit(1);
    }
    if (++b->jobs_done == b->n_jobs) {
        b->t_created = now_s();
    }
    if (!b->stopping) {
        submit_jobs(b);
    }
}

static void submit_jobs(struct bench *b)
{
    unsigned window = b->o->window == 0 ? b->n_jobs : b->o->window;
    while (b->next_job < b->n_jobs && b->next_job - b->jobs_done < window) {
        json_t *args = job_json(b->o, b->next_job);
        struct bo_err err = BO_ERR_INIT;
        int rv = args == NULL
                     ? BO_ENOMEM
                     : bo_sched_submit(b->sched, BO_SCHED_CREATE_JOB, args, create_cb, b, &err);
        if (rv != BO_OK) {
            die("create job", rv, &err);
        }
        b->next_job++;
    }
}

/* ---- the loop ---- */

static void storage_closed(struct bo_storage *s)
{
    (void)s;
}

static void stop(struct bench *b)
{
    if (b->stopping) {
        return;
    }
    b->stopping = true;
    uv_timer_stop(&b->tick);
    uv_close((uv_handle_t *)&b->tick, NULL);
    bo_sched_close(b->sched);
    bo_storage_close(b->storage, storage_closed);
}

static void role_cb(struct bo_storage *s, enum bo_storage_role role, void *data)
{
    (void)s;
    struct bench *b = data;
    if (b->sched != NULL && !b->stopping) {
        bo_sched_set_leader(b->sched, role == BO_ROLE_LEADER);
    }
}

static void fatal_cb(struct bo_storage *s, int code, const char *msg, void *data)
{
    (void)s;
    (void)data;
    fprintf(stderr, "bench-scheduler: storage failed (%s): %s\n", bo_errname(code), msg);
    exit(1);
}

static void report(struct bench *b, double now)
{
    struct bo_sched_stats st;
    bo_sched_get_stats(b->sched, &st);
    uint64_t hwm, cur;
    rss(&hwm, &cur);
    double dt = now - b->t_last_report;
    double rate = dt > 0 ? (double)(b->acked - b->last_acked) / dt : 0;
    if (rate > b->peak_rate && b->phase == PH_PLACE) {
        b->peak_rate = rate;
    }
    double el = now - b->t_start;
    fprintf(stderr,
            "bench-scheduler: %6.1fs jobs %u/%u placed %" PRIu64 " running %" PRIu64 "/%" PRIu64
            " (%.0f/s now, %.0f/s avg) batches %" PRIu64 " queued %zu pending-jobs %zu rss %" PRIu64
            " MB\n",
            el, b->jobs_done, b->n_jobs, st.tasks_placed, b->acked, b->total, rate,
            el > 0 ? (double)b->acked / el : 0, st.batches, st.queued, st.pending_jobs, cur >> 20);
    b->t_last_report = now;
    b->last_acked = b->acked;
}

static void tick_cb(uv_timer_t *t)
{
    struct bench *b = t->data;
    double now = now_s();
    if (b->stopping) {
        return;
    }
    switch (b->phase) {
    case PH_LEADER:
        if (!bo_sched_is_leader(b->sched)) {
            if (bo_storage_role(b->storage) == BO_ROLE_LEADER) {
                bo_sched_set_leader(b->sched, true);
            }
            return;
        }
        register_agents(b);
        b->phase = PH_REGISTER;
        return;
    case PH_REGISTER: {
        /* registrations are reconciled and their hosts saved in batches */
        struct bo_sched_stats st;
        bo_sched_get_stats(b->sched, &st);
        struct bo_store_counts c;
        struct bo_err err = BO_ERR_INIT;
        int rv = bo_store_counts(bo_storage_store(b->storage), &c, &err);
        if (rv != BO_OK) {
            die("store counts", rv, &err);
        }
        if (st.queued > 0 || c.hosts < b->o->hosts) {
            return;
        }
        fprintf(stderr,
                "bench-scheduler: %u agents registered; placing %" PRIu64
                " tasks (in-process agents and clients, no HTTP)\n",
                b->o->hosts, b->total);
        b->phase = PH_PLACE;
        b->t_start = b->t_last_report = now;
        submit_jobs(b);
        return;
    }
    case PH_PLACE:
        break;
    case PH_DONE:
        return;
    }
    if (check_done(b)) {
        return;
    }
    if (now - b->t_last_report >= REPORT_MS / 1000.0) {
        report(b, now);
    }
    if (now - b->t_start > b->o->timeout_s) {
        fprintf(stderr, "bench-scheduler: timed out after %.0f s\n", b->o->timeout_s);
        b->timed_out = true;
        b->t_end = now;
        b->running = count_status(b, BO__SCHEDULE_STATUS__RUNNING);
        b->phase = PH_DONE;
        uv_stop(&b->loop);
    }
}

/* K timed calls of one read. out[0..1]: p50 and p99 in ms of bo_sched_read
 * alone (the tree); out[2..3]: the same of what the API calls,
 * bo_sched_read_text (the answer's text, written without a tree for job
 * summaries and tasks), freeing included; out[4]: the text's size in
 * bytes; out[5]: the first text call alone (for tasks: nothing kept yet,
 * every task read, decoded and rendered). The first call checks that both
 * give the same bytes. */
static void time_read(struct bench *b, const char *what, const json_t *args, const char *field,
                      size_t want, double out[6])
{
    unsigned k = b->o->queries;
    /* The tree is not what the API serves: a few calls show its cost. */
    unsigned kt = k < TREE_QUERIES ? k : TREE_QUERIES;
    double t_all = now_s();
    double *lat = bo_calloc(k, sizeof(*lat));
    double *full = bo_calloc(k, sizeof(*full));
    if (lat == NULL || full == NULL) {
        die("queries", BO_ENOMEM, NULL);
    }
    char *tree_text = NULL;
    for (unsigned i = 0; i < k; i++) {
        struct bo_err err = BO_ERR_INIT;
        int rv;
        if (i < kt) {
            json_t *res = NULL;
            double t0 = now_s();
            rv = bo_sched_read(b->sched, what, args, &res, &err);
            lat[i] = (now_s() - t0) * 1000.0;
            if (rv != BO_OK) {
                die(what, rv, &err);
            }
            size_t got = json_array_size(json_object_get(res, field));
            if (got != want) {
                fprintf(stderr, "bench-scheduler: %s: %zu %s, expected %zu\n", what, got, field,
                        want);
                exit(1);
            }
            if (i == 0 && (tree_text = json_dumps(res, JSON_COMPACT)) == NULL) {
                die(what, BO_ENOMEM, NULL);
            }
            json_decref(res);
        }
        struct bo_buf text = BO_BUF_INIT;
        double t2 = now_s();
        rv = bo_sched_read_text(b->sched, what, args, &text, &err);
        if (rv != BO_OK) {
            die(what, rv, &err);
        }
        out[4] = (double)text.len;
        if (tree_text != NULL) {
            if (strlen(tree_text) != text.len || memcmp(tree_text, text.data, text.len) != 0) {
                fprintf(stderr, "bench-scheduler: %s: the text differs from the tree's\n", what);
                exit(1);
            }
            free(tree_text);
            tree_text = NULL;
        }
        bo_buf_release(&text);
        full[i] = (now_s() - t2) * 1000.0;
    }
    out[5] = full[0];
    out[0] = percentile(lat, kt, 0.50);
    out[1] = percentile(lat, kt, 0.99);
    out[2] = percentile(full, k, 0.50);
    out[3] = percentile(full, k, 0.99);
    fprintf(stderr,
            "bench-scheduler: %s: tree (%u calls) p50 %.3f ms, p99 %.3f ms; as served (text, %u "
            "calls): p50 %.3f ms, p99 %.3f ms, first %.3f ms (%.1f s)\n",
            what, kt, out[0], out[1], k, out[2], out[3], out[5], now_s() - t_all);
    bo_free(lat);
    bo_free(full);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench-scheduler [--jobs J] [--instances I] [--hosts H] [--big N]\n"
            "                       [--data-dir D] [--json OUT] [--queries K] [--window W]\n"
            "                       [--timeout S]\n"
            "  defaults: 1000 jobs x 1000 instances on 5000 hosts, a 10000-instance job,\n"
            "  200 queries, all creates at once (--window 0), 600 s, a temporary data dir\n");
}

static unsigned parse_count(const char *s, unsigned min, unsigned max)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end != '\0' || v < min || v > max) {
        usage();
        exit(2);
    }
    return (unsigned)v;
}

int main(int argc, char **argv)
{
    struct bench_opts o = {.jobs = 1000,
                           .instances = 1000,
                           .hosts = 5000,
                           .big = 10000,
                           .queries = 200,
                           .timeout_s = 600};
    static const struct option lo[] = {
        {"jobs", required_argument, NULL, 'j'},
        {"instances", required_argument, NULL, 'i'},
        {"hosts", required_argument, NULL, 'h'},
        {"big", required_argument, NULL, 'b'},
        {"data-dir", required_argument, NULL, 'd'},
        {"json", required_argument, NULL, 'o'},
        {"queries", required_argument, NULL, 'q'},
        {"window", required_argument, NULL, 'w'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, '?'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'j':
            o.jobs = parse_count(optarg, 1, 1000000);
            break;
        case 'i':
            o.instances = parse_count(optarg, 1, 1000000);
            break;
        case 'h':
            o.hosts = parse_count(optarg, 1, 1000000);
            break;
        case 'b':
            o.big = parse_count(optarg, 0, 1000000);
            break;
        case 'd':
            o.data_dir = optarg;
            break;
        case 'o':
            o.json_out = optarg;
            break;
        case 'q':
            o.queries = parse_count(optarg, 1, MAX_QUERIES);
            break;
        case 'w':
            o.window = parse_count(optarg, 0, 1000000);
            break;
        case 't':
            o.timeout_s = parse_count(optarg, 1, 86400);
            break;
        default:
            usage();
            return 2;
        }
    }
    if (optind < argc) {
        usage();
        return 2;
    }
    bo_log_set_level(BO_LOG_WARN);
    signal(SIGPIPE, SIG_IGN); /* see storage.h */

    /* The data directory: given (must be empty or absent) or a fresh one. */
    char tmpl[4096];
    bool own_dir = o.data_dir == NULL;
    if (own_dir) {
        const char *base = getenv("BO_BENCH_DIR");
        snprintf(tmpl, sizeof(tmpl), "%s/bo-bench-sched-XXXXXX", base != NULL ? base : "/tmp");
        if (mkdtemp(tmpl) == NULL) {
            die("data dir", BO_EIO, NULL);
        }
        o.data_dir = tmpl;
    }
    struct bo_err err = BO_ERR_INIT;
    if (bo_fs_mkdirs(o.data_dir, &err) != BO_OK) {
        die("--data-dir", BO_EIO, &err);
    }

    static struct bench b;
    b.o = &o;
    b.n_jobs = o.jobs + (o.big > 0 ? 1 : 0);
    b.total = (uint64_t)o.jobs * o.instances + o.big;
    uv_loop_init(&b.loop);

    struct bo_storage_config scfg;
    bo_storage_config_init(&scfg);
    scfg.data_dir = o.data_dir;
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", 20000 + (int)(getpid() % 20000));
    scfg.address = addr;
    scfg.backup_interval_ms = 0;
    scfg.role_cb = role_cb;
    scfg.fatal_cb = fatal_cb;
    scfg.data = &b;
    int rv = bo_storage_open(&b.loop, &scfg, &b.storage, &err);
    if (rv != BO_OK) {
        die("storage open", rv, &err);
    }
    struct bo_sched_config cfg;
    bo_sched_config_init(&cfg);
    cfg.hostname = "bench";
    unsigned per_job = o.instances > o.big ? o.instances : o.big;
    cfg.max_tasks_per_job = per_job > 20000 ? (int)per_job : 20000;
    /* Nothing times out or retries during the run. */
    cfg.agent_timeout_ms = 10 * 60 * 1000;
    cfg.transient_timeout_ms = 60 * 60 * 1000;
    rv = bo_sched_create(&b.loop, b.storage, NULL, &cfg, &b.sched, &err);
    if (rv != BO_OK) {
        die("scheduler", rv, &err);
    }
    uv_timer_init(&b.loop, &b.tick);
    b.tick.data = &b;
    uv_timer_start(&b.tick, tick_cb, 0, TICK_MS);
    double t_open = now_s();
    uv_run(&b.loop, UV_RUN_DEFAULT);

    /* Placement is over (or timed out): the numbers, then the reads. */
    uint64_t hwm, cur;
    rss(&hwm, &cur);
    struct bo_sched_stats st;
    bo_sched_get_stats(b.sched, &st);
    struct bo_storage_stats sst;
    bo_storage_stats(b.storage, &sst);
    double secs = b.t_end - b.t_start;
    double job_summary[6] = {0}, tasks_query[6] = {0};
    if (!b.timed_out) {
        json_t *a1 = json_pack("{s:s}", "role", ROLE);
        time_read(&b, "job_summaries", a1, "jobs", o.jobs, job_summary);
        json_decref(a1);
        if (o.big > 0) {
            json_t *a2 = json_pack("{s:s, s:s, s:s, s:b}", "role", BIG_ROLE, "environment", ENV,
                                   "job_name", BIG_NAME, "configs", 0);
            time_read(&b, "tasks", a2, "tasks", o.big, tasks_query);
            json_decref(a2);
        }
    }
    uint64_t hwm2, cur2;
    rss(&hwm2, &cur2);

    char line[4096];
    snprintf(line, sizeof(line),
             "{\"transport\": \"in-process, no HTTP\", \"jobs\": %u, \"instances\": %u"
             ", \"big_job_instances\": %u, \"tasks\": %" PRIu64 ", \"hosts\": %u"
             ", \"running\": %" PRIu64 ", \"timed_out\": %s, \"seconds\": %.3f"
             ", \"tasks_per_s\": %.0f, \"peak_tasks_per_s\": %.0f, \"created_s\": %.3f"
             ", \"placed_s\": %.3f, \"rss_bytes\": %" PRIu64 ", \"rss_end_bytes\": %" PRIu64
             ", \"rss_after_queries_bytes\": %" PRIu64 ", \"job_summary_p50_ms\": %.3f"
             ", \"job_summary_p99_ms\": %.3f, \"tasks_query_p50_ms\": %.3f"
             ", \"tasks_query_p99_ms\": %.3f, \"tasks_query_first_ms\": %.3f"
             ", \"job_summary_tree_p50_ms\": %.3f, \"job_summary_tree_p99_ms\": %.3f"
             ", \"tasks_query_tree_p50_ms\": %.3f, \"tasks_query_tree_p99_ms\": %.3f"
             ", \"job_summary_bytes\": %.0f"
             ", \"tasks_query_bytes\": %.0f, \"queries\": %u, \"window\": %u"
             ", \"batches\": %" PRIu64 ", \"status_requests\": %" PRIu64 ", \"polls\": %" PRIu64
             ", \"empty_polls\": %" PRIu64 ", \"duplicate_commands\": %" PRIu64
             ", \"snapshots\": %" PRIu64 ", \"setup_s\": %.3f}",
             o.jobs, o.instances, o.big, b.total, o.hosts, b.running,
             b.timed_out ? "true" : "false", secs, secs > 0 ? (double)b.acked / secs : 0,
             b.peak_rate, b.t_created > 0 ? b.t_created - b.t_start : -1,
             b.t_placed > 0 ? b.t_placed - b.t_start : -1, hwm, cur, cur2, job_summary[2],
             job_summary[3], tasks_query[2], tasks_query[3], tasks_query[5], job_summary[0],
             job_summary[1], tasks_query[0], tasks_query[1], job_summary[4], tasks_query[4],
             o.queries, o.window, st.batches, b.status_reqs, b.polls, b.empty_polls, b.dup_launches,
             sst.snapshots_taken, b.t_start - t_open);
    printf("%s\n", line);
    fflush(stdout);
    if (o.json_out != NULL) {
        FILE *f = fopen(o.json_out, "w");
        if (f == NULL || fprintf(f, "%s\n", line) < 0 || fclose(f) != 0) {
            fprintf(stderr, "bench-scheduler: cannot write '%s'\n", o.json_out);
            return 1;
        }
    }

    /* Close everything: parked polls are answered with an error. */
    double t_close = now_s();
    stop(&b);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    fprintf(stderr, "bench-scheduler: closed in %.1f s\n", now_s() - t_close);
    bo_sched_free(b.sched);
    bo_storage_free(b.storage);
    bo_free(b.agents);
    uv_loop_close(&b.loop);
    if (own_dir) {
        char cmd[4200];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
        if (system(cmd) != 0) {
            fprintf(stderr, "bench-scheduler: could not remove '%s'\n", tmpl);
        }
    }
    return b.timed_out ? 1 : 0;
}
