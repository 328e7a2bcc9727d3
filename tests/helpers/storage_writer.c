/*
 * bo-storage-writer - drives the storage library from the command line, the
 * way the scheduler will, so end-to-end tests can run it as a real process:
 * kill it with SIGKILL in the middle of a write load, restart it, and check
 * that every write it acknowledged is there.
 *
 *   bo-storage-writer --data-dir D --address HOST:PORT [options] COMMAND
 *
 * Commands:
 *   write N        commit N transactions (one task each, ids "t-<seq>" from
 *                  --start), --inflight at a time; print "ACK <seq>" on stdout
 *                  (flushed) once each is committed
 *   check FILE     every task id listed in FILE (one per line) must exist;
 *                  prints "OK <n>" or "MISSING <id>" and exits 1
 *   count          print "TASKS <n> INDEX <applied> DIGEST <hex>"
 *   snapshot       take a snapshot now; prints "snapshot taken", then
 *                  "SHIMS FILLED <segments> PACED <writes>": raft segments
 *                  written with zeros and big writes paced in this process
 *   backup         write a backup now (needs --backup-dir); prints its name
 *   serve          stay up as a replica (--peer ...); print "ROLE <role>"
 *                  on every change; as leader, write --rate transactions per
 *                  second printing ACKs; as follower, try one write when a
 *                  leader is known and print "FOLLOWER <status> <message>";
 *                  with --check FILE, check FILE once leader; every 200 ms
 *                  print "STATE <applied index> <digest>" when it changed
 *   recover IMAGE  write a whole state (an image file) through the log
 *
 * Exit codes: 0 ok, 1 failure (message on stderr), 2 usage.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/mem.h"
#include "storage/pacewrite.h"
#include "storage/segfill.h"
#include "storage/storage.h"

#define MAX_PEERS 7

struct app {
    uv_loop_t loop;
    struct bo_storage *s;
    struct bo_storage_config cfg;
    struct bo_storage_peer peers[MAX_PEERS];
    const char *command;
    const char *arg;
    uint64_t start;
    uint64_t count;
    unsigned inflight;
    unsigned rate;
    uint64_t next;
    uint64_t acked;
    unsigned outstanding;
    int exit_code;
    bool done;
    bool began;
    bool follower_tried;
    bool checked;
    const char *check_file;
    uint64_t reported_index;
    uint64_t report_ticks;
    uv_timer_t tick;
    uv_signal_t sigterm;
};

static const char *role_name(enum bo_storage_role r)
{
    switch (r) {
    case BO_ROLE_LEADER:
        return "leader";
    case BO_ROLE_FOLLOWER:
        return "follower";
    case BO_ROLE_CANDIDATE:
        return "candidate";
    default:
        return "unavailable";
    }
}

static void finish(struct app *a, int code);

static void closed_cb(struct bo_storage *s)
{
    (void)s;
}

static void finish(struct app *a, int code)
{
    if (a->done) {
        return;
    }
    a->done = true;
    a->exit_code = code;
    uv_close((uv_handle_t *)&a->tick, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    bo_storage_close(a->s, closed_cb);
}

/* One task per transaction: enough state to be realistic in size. */
static int write_one(struct app *a, uint64_t seq, struct bo_storage_write *req,
                     bo_storage_write_cb cb, struct bo_err *err)
{
    char id[64], role[] = "www", env[] = "prod", name[] = "writer", host[64];
    snprintf(id, sizeof(id), "t-%" PRIu64, seq);
    snprintf(host, sizeof(host), "host-%" PRIu64, seq % 10);
    Bo__JobKey key = BO__JOB_KEY__INIT;
    key.role = role;
    key.environment = env;
    key.name = name;
    Bo__Resource cpu = BO__RESOURCE__INIT, ram = BO__RESOURCE__INIT;
    cpu.kind_case = BO__RESOURCE__KIND_NUM_CPUS;
    cpu.num_cpus = 0.5;
    ram.kind_case = BO__RESOURCE__KIND_RAM_MB;
    ram.ram_mb = 128;
    Bo__Resource *res[] = {&cpu, &ram};
    Bo__TaskConfig cfg = BO__TASK_CONFIG__INIT;
    cfg.job = &key;
    cfg.is_service = true;
    cfg.n_resources = 2;
    cfg.resources = res;
    Bo__AssignedTask at = BO__ASSIGNED_TASK__INIT;
    at.task_id = id;
    at.slave_host = host;
    at.task = &cfg;
    at.instance_id = (int32_t)(seq % 1000);
    Bo__TaskEvent ev = BO__TASK_EVENT__INIT;
    ev.timestamp_ms = 1700000000000 + (int64_t)seq;
    ev.status = BO__SCHEDULE_STATUS__PENDING;
    Bo__TaskEvent *evs[] = {&ev};
    Bo__ScheduledTask t = BO__SCHEDULED_TASK__INIT;
    t.assigned_task = &at;
    t.status = BO__SCHEDULE_STATUS__PENDING;
    t.n_task_events = 1;
    t.task_events = evs;
    Bo__ScheduledTask *tasks[] = {&t};
    Bo__SaveTasks save = BO__SAVE_TASKS__INIT;
    save.n_tasks = 1;
    save.tasks = tasks;
    Bo__Op op = BO__OP__INIT;
    op.op_case = BO__OP__OP_SAVE_TASKS;
    op.save_tasks = &save;
    Bo__Op *ops[] = {&op};
    Bo__Transaction txn = BO__TRANSACTION__INIT;
    txn.n_ops = 1;
    txn.ops = ops;
    txn.schema_version = BO_SCHEMA_VERSION;
    return bo_storage_write(a->s, req, &txn, cb, err);
}

struct wreq {
    struct bo_storage_write w;
    struct app *a;
    uint64_t seq;
};

static void pump(struct app *a);

static void write_cb(struct bo_storage_write *req, int status, const char *msg)
{
    struct wreq *r = (struct wreq *)req;
    struct app *a = r->a;
    a->outstanding--;
    if (status == BO_OK) {
        printf("ACK %" PRIu64 "\n", r->seq);
        fflush(stdout);
        a->acked++;
    } else {
        fprintf(stderr, "write t-%" PRIu64 " failed: %s: %s\n", r->seq, bo_errname(status),
                msg != NULL ? msg : "");
        if (strcmp(a->command, "write") == 0) {
            bo_free(r);
            finish(a, 1);
            return;
        }
    }
    bo_free(r);
    if (!a->done) {
        pump(a);
    }
}

static int submit_next(struct app *a)
{
    struct wreq *r = bo_calloc(1, sizeof(*r));
    if (r == NULL) {
        return BO_ENOMEM;
    }
    r->a = a;
    r->seq = a->next;
    struct bo_err err = BO_ERR_INIT;
    int rv = write_one(a, r->seq, &r->w, write_cb, &err);
    if (rv != BO_OK) {
        bo_free(r);
        return rv;
    }
    a->next++;
    a->outstanding++;
    return BO_OK;
}

static void pump(struct app *a)
{
    if (strcmp(a->command, "write") != 0) {
        return;
    }
    while (a->outstanding < a->inflight && a->next < a->start + a->count) {
        if (submit_next(a) != BO_OK) {
            break;
        }
    }
    if (a->outstanding == 0 && a->next >= a->start + a->count) {
        finish(a, 0);
    }
}

static void done_cb(struct bo_storage *s, int status, const char *msg, void *data)
{
    (void)s;
    struct app *a = data;
    if (status != BO_OK) {
        fprintf(stderr, "%s failed: %s\n", a->command, msg);
    } else if (strcmp(a->command, "snapshot") == 0) {
        /* And what the I/O shims did in this process (segfill.h,
         * pacewrite.h). */
        printf("%s\nSHIMS FILLED %" PRIu64 " PACED %" PRIu64 "\n", msg, bo_segfill_filled(),
               bo_pacewrite_paced());
    } else {
        printf("%s\n", msg);
    }
    fflush(stdout);
    finish(a, status == BO_OK ? 0 : 1);
}

static void recover_cb(struct bo_storage_write *req, int status, const char *msg)
{
    struct app *a = req->data;
    bo_free(req);
    if (status != BO_OK) {
        fprintf(stderr, "recover failed: %s\n", msg);
    } else {
        printf("RECOVERED\n");
    }
    finish(a, status == BO_OK ? 0 : 1);
}

static int run_check(struct app *a, const char *file)
{
    uint8_t *data;
    size_t len;
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_fs_read_file(file, &data, &len, &err);
    if (rv != BO_OK) {
        fprintf(stderr, "check: %s\n", bo_err_msg(&err, rv));
        return 1;
    }
    uint64_t n = 0;
    int code = 0;
    char *text = (char *)data;
    size_t pos = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && text[end] != '\n') {
            end++;
        }
        if (end > pos) {
            char id[128];
            size_t l = end - pos < sizeof(id) - 1 ? end - pos : sizeof(id) - 1;
            memcpy(id, text + pos, l);
            id[l] = '\0';
            const char *ids[] = {id};
            struct bo_task_query q = {.task_ids = ids, .n_task_ids = 1};
            uint64_t c = 0;
            rv = bo_store_count_tasks(bo_storage_store(a->s), &q, &c, &err);
            if (rv != BO_OK || c != 1) {
                printf("MISSING %s\n", id);
                code = 1;
            }
            n++;
        }
        pos = end + 1;
    }
    bo_free(data);
    if (code == 0) {
        printf("OK %" PRIu64 "\n", n);
    }
    return code;
}

static void begin(struct app *a)
{
    struct bo_err err = BO_ERR_INIT;
    struct bo_store *st = bo_storage_store(a->s);
    int rv = BO_OK;
    if (strcmp(a->command, "write") == 0) {
        a->next = a->start;
        pump(a);
        return;
    }
    if (strcmp(a->command, "check") == 0) {
        finish(a, run_check(a, a->arg));
        return;
    }
    if (strcmp(a->command, "count") == 0) {
        struct bo_task_query q = {0};
        uint64_t n = 0, digest = 0;
        rv = bo_store_count_tasks(st, &q, &n, &err);
        if (rv == BO_OK) {
            rv = bo_store_digest(st, &digest, &err);
        }
        if (rv == BO_OK) {
            printf("TASKS %" PRIu64 " INDEX %" PRIu64 " DIGEST %016" PRIx64 "\n", n,
                   bo_store_applied_index(st), digest);
        }
    } else if (strcmp(a->command, "snapshot") == 0) {
        rv = bo_storage_snapshot_now(a->s, done_cb, a, &err);
        if (rv == BO_OK) {
            return;
        }
    } else if (strcmp(a->command, "backup") == 0) {
        rv = bo_storage_backup_now(a->s, done_cb, a, &err);
        if (rv == BO_OK) {
            return;
        }
    } else if (strcmp(a->command, "recover") == 0) {
        uint8_t *image;
        size_t len;
        const uint8_t *payload;
        size_t plen;
        rv = bo_fs_read_file(a->arg, &image, &len, &err);
        if (rv == BO_OK) {
            rv = bo_snap_check_header(image, len, &payload, &plen, &err);
            struct bo_storage_write *req = rv == BO_OK ? bo_calloc(1, sizeof(*req)) : NULL;
            if (req != NULL) {
                req->data = a;
                rv = bo_storage_write_entry(a->s, req, payload, plen, recover_cb, &err);
                if (rv != BO_OK) {
                    bo_free(req);
                }
            }
            bo_free(image);
            if (rv == BO_OK) {
                return;
            }
        }
    }
    if (rv != BO_OK) {
        fprintf(stderr, "%s: %s\n", a->command, bo_err_msg(&err, rv));
    }
    finish(a, rv == BO_OK ? 0 : 1);
}

static void role_cb(struct bo_storage *s, enum bo_storage_role role, void *data)
{
    (void)s;
    struct app *a = data;
    if (strcmp(a->command, "serve") == 0) {
        printf("ROLE %s\n", role_name(role));
        fflush(stdout);
    }
}

static void fatal_cb(struct bo_storage *s, int code, const char *msg, void *data)
{
    (void)s;
    (void)data;
    fprintf(stderr, "fatal: %s: %s\n", bo_errname(code), msg);
    exit(1);
}

static void tick_cb(uv_timer_t *t)
{
    struct app *a = t->data;
    if (a->done) {
        return;
    }
    enum bo_storage_role role = bo_storage_role(a->s);
    if (strcmp(a->command, "serve") == 0 && ++a->report_ticks % 20 == 0) {
        struct bo_store *st = bo_storage_store(a->s);
        uint64_t index = bo_store_applied_index(st), digest = 0;
        struct bo_err err = BO_ERR_INIT;
        if (index != a->reported_index && bo_store_digest(st, &digest, &err) == BO_OK) {
            a->reported_index = index;
            printf("STATE %" PRIu64 " %016" PRIx64 "\n", index, digest);
            fflush(stdout);
        }
    }
    if (strcmp(a->command, "serve") == 0 && role == BO_ROLE_LEADER && a->check_file != NULL &&
        !a->checked) {
        a->checked = true;
        printf("CHECK ");
        run_check(a, a->check_file);
        fflush(stdout);
    }
    if (strcmp(a->command, "serve") != 0) {
        if (!a->began && role == BO_ROLE_LEADER) {
            a->began = true;
            begin(a);
        }
        return;
    }
    if (role == BO_ROLE_LEADER && a->rate > 0) {
        unsigned n = a->rate / 100 + 1;
        for (unsigned i = 0; i < n && a->outstanding < 64; i++) {
            if (submit_next(a) != BO_OK) {
                break;
            }
        }
    } else if (role == BO_ROLE_FOLLOWER && !a->follower_tried) {
        uint64_t id;
        const char *addr;
        bo_storage_leader(a->s, &id, &addr);
        if (id != 0) {
            struct bo_storage_write w;
            struct bo_err err = BO_ERR_INIT;
            int rv = write_one(a, 0, &w, write_cb, &err);
            printf("FOLLOWER %s %s\n", bo_errname(rv), bo_err_msg(&err, rv));
            fflush(stdout);
            a->follower_tried = true;
        }
    }
}

static void sigterm_cb(uv_signal_t *h, int sig)
{
    (void)sig;
    finish(h->data, 0);
}

static void usage(void)
{
    fprintf(stderr, "usage: bo-storage-writer --data-dir D --address HOST:PORT [--id N]\n"
                    "  [--peer ID=HOST:PORT]... [--backup-dir B] [--snapshot-threshold N]\n"
                    "  [--codec none|zlib|zstd] [--no-dedup] [--inflight K] [--start S]\n"
                    "  [--rate R] [--check FILE] [--segment-mb M] COMMAND [ARG]\n"
                    "commands: write N | check FILE | count | snapshot | backup | serve |\n"
                    "          recover IMAGE\n");
}

int main(int argc, char **argv)
{
    struct app a;
    memset(&a, 0, sizeof(a));
    bo_storage_config_init(&a.cfg);
    a.inflight = 64;
    a.cfg.backup_interval_ms = 0;
    size_t n_peers = 0;
    bo_log_set_level(BO_LOG_WARN);
    signal(SIGPIPE, SIG_IGN); /* see storage.h */
    static const struct option opts[] = {
        {"data-dir", required_argument, NULL, 'd'},
        {"address", required_argument, NULL, 'a'},
        {"id", required_argument, NULL, 'i'},
        {"peer", required_argument, NULL, 'p'},
        {"backup-dir", required_argument, NULL, 'b'},
        {"snapshot-threshold", required_argument, NULL, 't'},
        {"codec", required_argument, NULL, 'c'},
        {"no-dedup", no_argument, NULL, 'D'},
        {"inflight", required_argument, NULL, 'k'},
        {"start", required_argument, NULL, 's'},
        {"rate", required_argument, NULL, 'r'},
        {"verbose", no_argument, NULL, 'v'},
        {"check", required_argument, NULL, 'C'},
        {"segment-mb", required_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            a.cfg.data_dir = optarg;
            break;
        case 'a':
            a.cfg.address = optarg;
            break;
        case 'i':
            a.cfg.id = strtoull(optarg, NULL, 10);
            break;
        case 'p': {
            char *eq = strchr(optarg, '=');
            if (eq == NULL || n_peers == MAX_PEERS) {
                usage();
                return 2;
            }
            *eq = '\0';
            a.peers[n_peers].id = strtoull(optarg, NULL, 10);
            a.peers[n_peers].address = eq + 1;
            n_peers++;
            break;
        }
        case 'b':
            a.cfg.backup_dir = optarg;
            break;
        case 't':
            a.cfg.snapshot_threshold = (unsigned)strtoul(optarg, NULL, 10);
            a.cfg.snapshot_trailing = a.cfg.snapshot_threshold / 4 + 1;
            break;
        case 'c':
            if (bo_codec_parse(optarg, &a.cfg.snapshot_codec) != BO_OK) {
                usage();
                return 2;
            }
            break;
        case 'D':
            a.cfg.snapshot_dedup = false;
            break;
        case 'k':
            a.inflight = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 's':
            a.start = strtoull(optarg, NULL, 10);
            break;
        case 'r':
            a.rate = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'v':
            bo_log_set_level(BO_LOG_DEBUG);
            break;
        case 'C':
            a.check_file = optarg;
            break;
        case 'S':
            a.cfg.segment_size = (size_t)strtoul(optarg, NULL, 10) << 20;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (optind >= argc || a.cfg.data_dir == NULL || a.cfg.address == NULL || a.inflight == 0) {
        usage();
        return 2;
    }
    a.command = argv[optind];
    a.arg = optind + 1 < argc ? argv[optind + 1] : NULL;
    if (strcmp(a.command, "write") == 0) {
        if (a.arg == NULL) {
            usage();
            return 2;
        }
        a.count = strtoull(a.arg, NULL, 10);
    } else if ((strcmp(a.command, "check") == 0 || strcmp(a.command, "recover") == 0) &&
               a.arg == NULL) {
        usage();
        return 2;
    }
    a.cfg.peers = a.peers;
    a.cfg.n_peers = n_peers;
    a.cfg.role_cb = role_cb;
    a.cfg.fatal_cb = fatal_cb;
    a.cfg.data = &a;
    a.next = a.start;

    uv_loop_init(&a.loop);
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_storage_open(&a.loop, &a.cfg, &a.s, &err);
    if (rv != BO_OK) {
        fprintf(stderr, "open: %s: %s\n", bo_errname(rv), bo_err_msg(&err, rv));
        uv_run(&a.loop, UV_RUN_DEFAULT);
        uv_loop_close(&a.loop);
        return 1;
    }
    uv_timer_init(&a.loop, &a.tick);
    a.tick.data = &a;
    uv_timer_start(&a.tick, tick_cb, 0, 10);
    uv_signal_init(&a.loop, &a.sigterm);
    a.sigterm.data = &a;
    uv_signal_start(&a.sigterm, sigterm_cb, SIGTERM);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    bo_storage_free(a.s);
    rv = uv_loop_close(&a.loop);
    if (rv != 0) {
        fprintf(stderr, "loop close: %s\n", uv_strerror(rv));
        return 1;
    }
    return a.exit_code;
}
