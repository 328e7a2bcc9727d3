/*
 * main.c - borealis-scheduler: flags and config file, then the storage, the
 * scheduler and the HTTP API on one libuv loop.
 *
 * Runs with no configuration at all: a single voter in ./borealis-data,
 * HTTP on 127.0.0.1:8081, raft on 127.0.0.1:9081. Every flag can also be
 * given in a config file (--config FILE) as `name = value` lines; flags on
 * the command line win. docs/configuration.md lists them.
 *
 * Shutdown: SIGTERM or SIGINT (or POST /quitquitquit) stops the API (pending
 * requests get 503), then the scheduler, then the storage, and the loop
 * ends. A fatal storage error exits with status 1 after logging why.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/flags.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/metrics.h"
#include "scheduler/api.h"
#include "scheduler/sched.h"
#include "storage/storage.h"

#define MAX_PEERS 9

struct app {
    uv_loop_t loop;
    struct bo_storage_config scfg;
    struct bo_sched_config cfg;
    struct bo_api_config acfg;
    struct bo_storage_peer peers[MAX_PEERS];
    struct bo_api_peer api_peers[MAX_PEERS];
    size_t n_peers;
    struct bo_metrics *metrics;
    struct bo_storage *storage;
    struct bo_sched *sched;
    struct bo_api *api;
    uv_signal_t sigterm, sigint;
    bool stopping;
    int exit_code;
    char *strings[256]; /* values owned by the config file parser */
    size_t n_strings;
    char http_default[64];
    char raft_default[64];
    const char *cron_tz;
};

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: borealis-scheduler [options]\n"
        "\n"
        "  --config FILE               read `name = value` options from FILE first\n"
        "  --cluster NAME              cluster name (devcluster)\n"
        "  --data-dir DIR              raft log, snapshots, state (./borealis-data)\n"
        "  --http HOST:PORT            API address (127.0.0.1:8081)\n"
        "  --hostname NAME             name written into task events (the host's name)\n"
        "  --id N                      this replica's raft id (1)\n"
        "  --raft HOST:PORT            this replica's raft address (127.0.0.1:9081)\n"
        "  --peer ID,HOST:PORT,URL     a voter (repeat; include this one): raft\n"
        "                              address and API URL, e.g.\n"
        "                              2,127.0.0.1:9082,http://127.0.0.1:8082\n"
        "  --backup-dir DIR            periodic backups go here (none)\n"
        "  --backup-interval DUR       between backups (1h)\n"
        "  --max-saved-backups N       backups kept (48)\n"
        "  --snapshot-threshold N      log entries between snapshots (8192)\n"
        "  --snapshot-codec CODEC      snapshot compression: zstd, zlib or none (zstd)\n"
        "  --allowed-environments RE   environments accepted (^(prod|devel|test|staging[0-9]*)$)\n"
        "  --transient-timeout DUR     ASSIGNED/KILLING/... -> LOST (5m)\n"
        "  --kill-retry DUR            first kill re-send (15s)\n"
        "  --flapping-threshold DUR    shorter runs are flapping (5m)\n"
        "  --initial-flapping-delay DUR first THROTTLED penalty (30s)\n"
        "  --max-flapping-delay DUR    penalty cap (5m)\n"
        "  --agent-timeout DUR         silent agents' tasks are PARTITIONED (15s)\n"
        "  --agent-poll-hold DUR       long-poll hold for agents (5s)\n"
        "  --history-prune-threshold DUR terminal tasks kept at most (2d)\n"
        "  --history-max-per-job N     terminal tasks kept per job (100)\n"
        "  --history-min-retention DUR no terminal task goes sooner (1h)\n"
        "  --max-tasks-per-job N       instances per job at most (4000)\n"
        "  --cron-timezone TZ          cron schedules' timezone (UTC)\n"
        "  --max-request-body BYTES    larger requests get 413 (1048576)\n"
        "  --task-text-cache BYTES     tasks' JSON kept for reads (67108864; 0: none)\n"
        "  --log-level LEVEL           debug, info, warn, error, off (info)\n"
        "  --help                      this text\n"
        "\n"
        "Durations: a number with ms, s, m, h or d (a bare number is seconds).\n");
}

enum {
    O_CONFIG = 256,
    O_CLUSTER,
    O_DATA_DIR,
    O_HTTP,
    O_HOSTNAME,
    O_ID,
    O_RAFT,
    O_PEER,
    O_BACKUP_DIR,
    O_BACKUP_INTERVAL,
    O_MAX_BACKUPS,
    O_SNAP_THRESHOLD,
    O_SNAP_CODEC,
    O_ENVS,
    O_TRANSIENT,
    O_KILL_RETRY,
    O_FLAP,
    O_FLAP_INIT,
    O_FLAP_MAX,
    O_AGENT_TIMEOUT,
    O_AGENT_HOLD,
    O_HIST_PRUNE,
    O_HIST_MAX,
    O_HIST_MIN,
    O_MAX_TASKS,
    O_CRON_TZ,
    O_MAX_BODY,
    O_TEXT_CACHE,
    O_LOG_LEVEL,
    O_HELP,
};

static const struct option OPTS[] = {
    {"config", required_argument, NULL, O_CONFIG},
    {"cluster", required_argument, NULL, O_CLUSTER},
    {"data-dir", required_argument, NULL, O_DATA_DIR},
    {"http", required_argument, NULL, O_HTTP},
    {"hostname", required_argument, NULL, O_HOSTNAME},
    {"id", required_argument, NULL, O_ID},
    {"raft", required_argument, NULL, O_RAFT},
    {"peer", required_argument, NULL, O_PEER},
    {"backup-dir", required_argument, NULL, O_BACKUP_DIR},
    {"backup-interval", required_argument, NULL, O_BACKUP_INTERVAL},
    {"max-saved-backups", required_argument, NULL, O_MAX_BACKUPS},
    {"snapshot-threshold", required_argument, NULL, O_SNAP_THRESHOLD},
    {"snapshot-codec", required_argument, NULL, O_SNAP_CODEC},
    {"allowed-environments", required_argument, NULL, O_ENVS},
    {"transient-timeout", required_argument, NULL, O_TRANSIENT},
    {"kill-retry", required_argument, NULL, O_KILL_RETRY},
    {"flapping-threshold", required_argument, NULL, O_FLAP},
    {"initial-flapping-delay", required_argument, NULL, O_FLAP_INIT},
    {"max-flapping-delay", required_argument, NULL, O_FLAP_MAX},
    {"agent-timeout", required_argument, NULL, O_AGENT_TIMEOUT},
    {"agent-poll-hold", required_argument, NULL, O_AGENT_HOLD},
    {"history-prune-threshold", required_argument, NULL, O_HIST_PRUNE},
    {"history-max-per-job", required_argument, NULL, O_HIST_MAX},
    {"history-min-retention", required_argument, NULL, O_HIST_MIN},
    {"max-tasks-per-job", required_argument, NULL, O_MAX_TASKS},
    {"cron-timezone", required_argument, NULL, O_CRON_TZ},
    {"max-request-body", required_argument, NULL, O_MAX_BODY},
    {"task-text-cache", required_argument, NULL, O_TEXT_CACHE},
    {"log-level", required_argument, NULL, O_LOG_LEVEL},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

/* Apply one option; returns 0 or prints why not and returns -1. */
static int apply(struct app *a, int opt, const char *val, const char *where)
{
    long long n;
    int64_t ms;
    const char *name = "?";
    for (const struct option *o = OPTS; o->name != NULL; o++) {
        if (o->val == opt) {
            name = o->name;
        }
    }
#define BAD(what)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "borealis-scheduler: %s--%s: '%s' is not %s\n", where, name, val, what);   \
        return -1;                                                                                 \
    } while (0)
    switch (opt) {
    case O_CLUSTER:
        a->cfg.cluster = val;
        a->acfg.cluster = val;
        break;
    case O_DATA_DIR:
        a->scfg.data_dir = val;
        break;
    case O_HTTP:
        a->acfg.listen = val;
        break;
    case O_HOSTNAME:
        a->cfg.hostname = val;
        break;
    case O_ID:
        if (bo_flags_uint(val, INT32_MAX, &n) != 0 || n == 0) {
            BAD("a raft id (a positive integer)");
        }
        a->scfg.id = (uint64_t)n;
        break;
    case O_RAFT:
        a->scfg.address = val;
        break;
    case O_PEER: {
        if (a->n_peers >= MAX_PEERS) {
            BAD("allowed: too many peers");
        }
        char buf[512];
        snprintf(buf, sizeof(buf), "%s", val);
        char *c1 = strchr(buf, ','), *c2 = c1 != NULL ? strchr(c1 + 1, ',') : NULL;
        if (c1 == NULL || c2 == NULL) {
            BAD("ID,HOST:PORT,URL");
        }
        *c1 = *c2 = '\0';
        if (bo_flags_uint(buf, INT32_MAX, &n) != 0 || n == 0 || strchr(c1 + 1, ':') == NULL ||
            strncmp(c2 + 1, "http", 4) != 0) {
            BAD("ID,HOST:PORT,URL");
        }
        char *raft = bo_strdup(c1 + 1), *url = bo_strdup(c2 + 1);
        if (raft == NULL || url == NULL || a->n_strings + 2 > 256) {
            BAD("storable (out of memory)");
        }
        a->strings[a->n_strings++] = raft;
        a->strings[a->n_strings++] = url;
        a->peers[a->n_peers] = (struct bo_storage_peer){(uint64_t)n, raft};
        a->api_peers[a->n_peers] = (struct bo_api_peer){(uint64_t)n, url};
        a->n_peers++;
        break;
    }
    case O_BACKUP_DIR:
        a->scfg.backup_dir = val;
        a->acfg.backup_dir = val;
        break;
    case O_BACKUP_INTERVAL:
        if (bo_flags_duration_ms(val, &ms) != 0) {
            BAD("a duration");
        }
        a->scfg.backup_interval_ms = (uint64_t)ms;
        break;
    case O_MAX_BACKUPS:
        if (bo_flags_uint(val, 100000, &n) != 0 || n == 0) {
            BAD("a count of at least 1");
        }
        a->scfg.max_saved_backups = (unsigned)n;
        break;
    case O_SNAP_THRESHOLD:
        if (bo_flags_uint(val, UINT32_MAX, &n) != 0 || n < 16) {
            BAD("a count of at least 16");
        }
        a->scfg.snapshot_threshold = (unsigned)n;
        a->scfg.snapshot_trailing = (unsigned)(n / 8 + 1);
        break;
    case O_SNAP_CODEC:
        if (bo_codec_parse(val, &a->scfg.snapshot_codec) != BO_OK) {
            BAD("a codec (zstd, zlib)");
        }
        break;
    case O_ENVS:
        a->cfg.env_pattern = val;
        break;
    case O_TRANSIENT:
    case O_KILL_RETRY:
    case O_FLAP:
    case O_FLAP_INIT:
    case O_FLAP_MAX:
    case O_AGENT_TIMEOUT:
    case O_AGENT_HOLD:
    case O_HIST_PRUNE:
    case O_HIST_MIN:
        if (bo_flags_duration_ms(val, &ms) != 0) {
            BAD("a duration");
        }
        if (opt == O_TRANSIENT) {
            a->cfg.transient_timeout_ms = ms;
        } else if (opt == O_KILL_RETRY) {
            a->cfg.kill_retry_initial_ms = ms;
        } else if (opt == O_FLAP) {
            a->cfg.flapping_threshold_ms = ms;
        } else if (opt == O_FLAP_INIT) {
            a->cfg.initial_flapping_delay_ms = ms;
        } else if (opt == O_FLAP_MAX) {
            a->cfg.max_flapping_delay_ms = ms;
        } else if (opt == O_AGENT_TIMEOUT) {
            a->cfg.agent_timeout_ms = ms;
        } else if (opt == O_AGENT_HOLD) {
            a->cfg.agent_poll_hold_ms = ms;
        } else if (opt == O_HIST_MIN) {
            a->cfg.history_min_retention_ms = ms;
        } else {
            a->cfg.history_prune_threshold_ms = ms;
        }
        break;
    case O_HIST_MAX:
        if (bo_flags_uint(val, INT32_MAX, &n) != 0) {
            BAD("a count");
        }
        a->cfg.history_max_per_job = (int)n;
        break;
    case O_MAX_TASKS:
        if (bo_flags_uint(val, 1000000, &n) != 0 || n == 0) {
            BAD("a count within 1..1000000");
        }
        a->cfg.max_tasks_per_job = (int)n;
        break;
    case O_CRON_TZ:
        a->cron_tz = val;
        break;
    case O_MAX_BODY:
        if (bo_flags_uint(val, 1LL << 30, &n) != 0 || n < 1024) {
            BAD("a size within 1024..1073741824");
        }
        a->acfg.max_body = (size_t)n;
        break;
    case O_TEXT_CACHE:
        if (bo_flags_uint(val, 1LL << 40, &n) != 0) {
            BAD("a size in bytes within 0..1099511627776");
        }
        a->cfg.task_text_cache_bytes = (size_t)n;
        break;
    case O_LOG_LEVEL: {
        int lvl = bo_log_parse_level(val);
        if (lvl < 0) {
            BAD("a log level (debug, info, warn, error)");
        }
        bo_log_set_level((enum bo_log_level)lvl);
        break;
    }
    default:
        return -1;
    }
#undef BAD
    return 0;
}

static int load_config(struct app *a, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "borealis-scheduler: --config: cannot open '%s': %s\n", path,
                strerror(errno));
        return -1;
    }
    char line[1024];
    int lineno = 0;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            fprintf(stderr, "borealis-scheduler: %s:%d: line longer than %zu bytes\n", path, lineno,
                    sizeof(line) - 2);
            rc = -1;
            break;
        }
        char *p = line;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        size_t len = strlen(p);
        while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r' || p[len - 1] == ' ' ||
                           p[len - 1] == '\t')) {
            p[--len] = '\0';
        }
        if (*p == '\0' || *p == '#') {
            continue;
        }
        char *eq = strchr(p, '=');
        char where[600];
        snprintf(where, sizeof(where), "%s:%d: ", path, lineno);
        if (eq == NULL) {
            fprintf(stderr, "borealis-scheduler: %sexpected 'name = value'\n", where);
            rc = -1;
            break;
        }
        char *k = p, *v = eq + 1;
        *eq = '\0';
        size_t kl = strlen(k);
        while (kl > 0 && (k[kl - 1] == ' ' || k[kl - 1] == '\t')) {
            k[--kl] = '\0';
        }
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        int opt = 0;
        for (const struct option *o = OPTS; o->name != NULL; o++) {
            if (strcmp(o->name, k) == 0) {
                opt = o->val;
            }
        }
        if (opt == 0 || opt == O_CONFIG || opt == O_HELP) {
            fprintf(stderr, "borealis-scheduler: %sunknown option '%s'\n", where, k);
            rc = -1;
            break;
        }
        char *val = bo_strdup(v);
        if (val == NULL || a->n_strings >= 256) {
            bo_free(val);
            fprintf(stderr, "borealis-scheduler: %stoo many options (at most 256 values)\n", where);
            rc = -1;
            break;
        }
        a->strings[a->n_strings++] = val;
        rc = apply(a, opt, val, where);
    }
    fclose(f);
    return rc;
}

/* ----------------------------------------------------------------- loop --- */

static void storage_closed(struct bo_storage *s)
{
    (void)s;
}

static void api_closed(struct bo_api *api)
{
    struct app *a = bo_api_get_data(api);
    bo_sched_close(a->sched);
    bo_storage_close(a->storage, storage_closed);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
}

static void stop(struct app *a, int code)
{
    if (a->stopping) {
        return;
    }
    a->stopping = true;
    a->exit_code = code;
    bo_info("scheduler: shutting down");
    bo_api_close(a->api, api_closed);
}

static void signal_cb(uv_signal_t *h, int sig)
{
    (void)sig;
    stop(h->data, 0);
}

static void exit_cb(struct bo_api *api, int code)
{
    stop(bo_api_get_data(api), code);
}

static void role_cb(struct bo_storage *s, enum bo_storage_role role, void *data)
{
    (void)s;
    struct app *a = data;
    if (a->sched != NULL) {
        bo_sched_set_leader(a->sched, role == BO_ROLE_LEADER);
    }
}

static void fatal_cb(struct bo_storage *s, int code, const char *msg, void *data)
{
    (void)s;
    struct app *a = data;
    bo_error("scheduler: storage failed (%s): %s: stopping", bo_errname(code), msg);
    if (a->sched != NULL) {
        bo_sched_set_leader(a->sched, false);
    }
    stop(a, 1);
}

int main(int argc, char **argv)
{
    static struct app a;
    signal(SIGPIPE, SIG_IGN); /* storage.h */
    bo_storage_config_init(&a.scfg);
    bo_sched_config_init(&a.cfg);
    char host[256] = "localhost";
    if (gethostname(host, sizeof(host) - 1) != 0) {
        snprintf(host, sizeof(host), "localhost");
    }
    a.cfg.hostname = host;
    a.scfg.data_dir = "borealis-data";
    a.acfg.cluster = a.cfg.cluster;
    a.cron_tz = "UTC";

    /* --config first (a pass of its own, so abbreviations work as for any
     * option), then the command line, which wins. */
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", OPTS, NULL)) != -1) {
        if (opt == O_CONFIG && load_config(&a, optarg) != 0) {
            return 2;
        }
    }
    opterr = 1;
    optind = 0; /* glibc: start over */
    while ((opt = getopt_long(argc, argv, "h", OPTS, NULL)) != -1) {
        if (opt == O_CONFIG) {
            continue;
        }
        if (opt == O_HELP || opt == 'h') {
            usage(stdout);
            return 0;
        }
        if (opt == '?' || apply(&a, opt, optarg, "") != 0) {
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "borealis-scheduler: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (a.acfg.listen == NULL) {
        a.acfg.listen = "127.0.0.1:8081";
    }
    if (a.scfg.address == NULL) {
        /* the raft port defaults to the HTTP port + 1000 */
        const char *colon = strrchr(a.acfg.listen, ':');
        long port = colon != NULL ? strtol(colon + 1, NULL, 10) : 8081;
        snprintf(a.raft_default, sizeof(a.raft_default), "127.0.0.1:%ld",
                 port > 0 && port < 64535 ? port + 1000 : 9081);
        a.scfg.address = a.raft_default;
    }
    if (strcmp(a.cron_tz, "UTC") != 0) {
        /* process-wide, set once before any thread starts (cron.h) */
        setenv("TZ", a.cron_tz, 1);
        tzset();
        a.cfg.cron_utc = false;
    }
    a.scfg.peers = a.peers;
    a.scfg.n_peers = a.n_peers;
    a.scfg.role_cb = role_cb;
    a.scfg.fatal_cb = fatal_cb;
    a.scfg.data = &a;
    a.acfg.peers = a.api_peers;
    a.acfg.n_peers = a.n_peers;
    if (a.n_peers == 0) {
        /* a single voter: redirects never happen, but /api/v1/info names us */
        snprintf(a.http_default, sizeof(a.http_default), "http://%s", a.acfg.listen);
        a.api_peers[0] = (struct bo_api_peer){a.scfg.id, a.http_default};
        a.acfg.n_peers = 1;
    }

    struct bo_err err = BO_ERR_INIT;
    uv_loop_init(&a.loop);
    int rc = bo_metrics_new(&a.metrics);
    if (rc != BO_OK) {
        fprintf(stderr, "borealis-scheduler: out of memory\n");
        return 1;
    }
    a.acfg.metrics = a.metrics;
    bo_info("scheduler: opening storage in '%s'", a.scfg.data_dir);
    rc = bo_storage_open(&a.loop, &a.scfg, &a.storage, &err);
    if (rc != BO_OK) {
        fprintf(stderr, "borealis-scheduler: %s\n", bo_err_msg(&err, rc));
        return 1;
    }
    rc = bo_sched_create(&a.loop, a.storage, a.metrics, &a.cfg, &a.sched, &err);
    if (rc == BO_OK) {
        rc = bo_api_start(&a.loop, &a.acfg, a.sched, a.storage, &a.api, &err);
    }
    if (rc != BO_OK) {
        fprintf(stderr, "borealis-scheduler: %s\n", bo_err_msg(&err, rc));
        if (a.sched != NULL) {
            bo_sched_close(a.sched);
        }
        bo_storage_close(a.storage, storage_closed);
        uv_run(&a.loop, UV_RUN_DEFAULT);
        bo_sched_free(a.sched);
        bo_storage_free(a.storage);
        return 1;
    }
    bo_api_set_data(a.api, &a);
    bo_api_on_exit(a.api, exit_cb);
    uv_signal_init(&a.loop, &a.sigterm);
    uv_signal_init(&a.loop, &a.sigint);
    a.sigterm.data = a.sigint.data = &a;
    uv_signal_start(&a.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&a.sigint, signal_cb, SIGINT);
    /* The role may have been settled while opening. */
    bo_sched_set_leader(a.sched, bo_storage_role(a.storage) == BO_ROLE_LEADER);
    printf("borealis-scheduler: cluster '%s', API on http://%s, raft %s (id %" PRIu64 ")\n",
           a.cfg.cluster, a.acfg.listen, a.scfg.address, a.scfg.id);
    fflush(stdout);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    bo_api_free(a.api);
    bo_sched_free(a.sched);
    bo_storage_free(a.storage);
    bo_metrics_free(a.metrics);
    uv_loop_close(&a.loop);
    for (size_t i = 0; i < a.n_strings; i++) {
        bo_free(a.strings[i]);
    }
    return a.exit_code;
}
