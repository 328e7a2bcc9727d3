/*
 * main.c - borealis-agent: flags, then the agent on one libuv loop.
 *
 * Runs with no configuration on one machine: work directory
 * ./borealis-agent, scheduler http://127.0.0.1:8081, observer on
 * 127.0.0.1:1338, resources detected. docs/agent.md lists every flag.
 *
 * SIGTERM or SIGINT stops the agent and leaves its executors running; the
 * next agent on the same work directory takes them over.
 */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "common/flags.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/mem.h"
#include "host/hostinfo.h"

#define MAX_SCHEDULERS 9

struct app {
    uv_loop_t loop;
    struct bo_agent_config cfg;
    const char *schedulers[MAX_SCHEDULERS];
    size_t n_schedulers;
    const char *attributes, *ports;
    char executor[PATH_MAX];
    struct bo_metrics *metrics;
    struct bo_agent *agent;
    uv_signal_t sigterm, sigint;
    bool stopping;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: borealis-agent [options]\n"
               "\n"
               "  --work-dir DIR           sandboxes and task state (./borealis-agent)\n"
               "  --scheduler URL          a scheduler replica (repeat; http://127.0.0.1:8081)\n"
               "  --http HOST:PORT         read-only observer, 'none' for none (127.0.0.1:1338)\n"
               "  --executor PATH          borealis-executor (next to this binary)\n"
               "  --hostname NAME          the host's name for placement (the hostname)\n"
               "  --attributes K=V,...     host attributes: rack=r1,zone=z1,dedicated=www/web;\n"
               "                           a value may be a list: rack=r1;r2\n"
               "  --ports RANGES           port ranges to offer (31000-32000)\n"
               "  --cpus N                 cpus to offer (detected)\n"
               "  --ram-mb N               memory to offer in MiB (detected)\n"
               "  --disk-mb N              disk to offer in MiB (detected, of the work dir)\n"
               "  --no-setuid              as root, still run tasks as root\n"
               "  --no-create-users        never create a missing role user\n"
               "  --user-map ROLE=USER,... run a role's tasks as another user\n"
               "  --no-isolation           do not use cgroups even when writable\n"
               "  --sandbox-retention DUR  keep finished sandboxes (1h)\n"
               "  --disk-check-interval DUR  executor's sandbox disk checks (10s)\n"
               "  --stop-timeout DUR       a task's whole graceful kill (2m)\n"
               "  --log-level LEVEL        debug, info, warn, error, off (info)\n"
               "  --help                   this text\n"
               "\n"
               "Durations: a number with ms, s, m, h or d (a bare number is seconds).\n");
}

enum {
    O_WORK_DIR = 256,
    O_SCHEDULER,
    O_HTTP,
    O_EXECUTOR,
    O_HOSTNAME,
    O_ATTRIBUTES,
    O_PORTS,
    O_CPUS,
    O_RAM,
    O_DISK,
    O_NO_SETUID,
    O_NO_CREATE,
    O_USER_MAP,
    O_NO_ISOLATION,
    O_RETENTION,
    O_DISK_CHECK,
    O_STOP_TIMEOUT,
    O_LOG_LEVEL,
    O_HELP,
};

static const struct option OPTS[] = {
    {"work-dir", required_argument, NULL, O_WORK_DIR},
    {"scheduler", required_argument, NULL, O_SCHEDULER},
    {"http", required_argument, NULL, O_HTTP},
    {"executor", required_argument, NULL, O_EXECUTOR},
    {"hostname", required_argument, NULL, O_HOSTNAME},
    {"attributes", required_argument, NULL, O_ATTRIBUTES},
    {"ports", required_argument, NULL, O_PORTS},
    {"cpus", required_argument, NULL, O_CPUS},
    {"ram-mb", required_argument, NULL, O_RAM},
    {"disk-mb", required_argument, NULL, O_DISK},
    {"no-setuid", no_argument, NULL, O_NO_SETUID},
    {"no-create-users", no_argument, NULL, O_NO_CREATE},
    {"user-map", required_argument, NULL, O_USER_MAP},
    {"no-isolation", no_argument, NULL, O_NO_ISOLATION},
    {"sandbox-retention", required_argument, NULL, O_RETENTION},
    {"disk-check-interval", required_argument, NULL, O_DISK_CHECK},
    {"stop-timeout", required_argument, NULL, O_STOP_TIMEOUT},
    {"log-level", required_argument, NULL, O_LOG_LEVEL},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static int bad(const char *flag, const char *v, const char *want)
{
    fprintf(stderr, "borealis-agent: --%s '%s': expected %s\n", flag, v, want);
    return -1;
}

static int apply(struct app *a, int opt, const char *v)
{
    long long n;
    switch (opt) {
    case O_WORK_DIR:
        a->cfg.work_dir = v;
        return 0;
    case O_SCHEDULER:
        if (a->n_schedulers == MAX_SCHEDULERS)
            return bad("scheduler", v, "at most 9 schedulers");
        if (strncmp(v, "http://", 7) != 0)
            return bad("scheduler", v, "an http:// URL");
        a->schedulers[a->n_schedulers++] = v;
        return 0;
    case O_HTTP:
        a->cfg.listen = strcmp(v, "none") == 0 ? NULL : v;
        return 0;
    case O_EXECUTOR:
        snprintf(a->executor, sizeof(a->executor), "%s", v);
        return 0;
    case O_HOSTNAME:
        a->cfg.hostname = v;
        return 0;
    case O_ATTRIBUTES:
        a->attributes = v;
        return 0;
    case O_PORTS:
        a->ports = v;
        return 0;
    case O_CPUS:
        if (bo_flags_double(v, &a->cfg.cpus) != 0 || a->cfg.cpus <= 0)
            return bad("cpus", v, "a positive number");
        return 0;
    case O_RAM:
        if (bo_flags_uint(v, 1LL << 40, &n) != 0 || n == 0)
            return bad("ram-mb", v, "a positive integer");
        a->cfg.ram_mb = n;
        return 0;
    case O_DISK:
        if (bo_flags_uint(v, 1LL << 40, &n) != 0 || n == 0)
            return bad("disk-mb", v, "a positive integer");
        a->cfg.disk_mb = n;
        return 0;
    case O_NO_SETUID:
        a->cfg.setuid = false;
        return 0;
    case O_NO_CREATE:
        a->cfg.create_users = false;
        return 0;
    case O_USER_MAP:
        a->cfg.user_map = v;
        return 0;
    case O_NO_ISOLATION:
        a->cfg.isolation = false;
        return 0;
    case O_RETENTION:
        return bo_flags_duration_ms(v, &a->cfg.sandbox_retention_ms)
                   ? bad("sandbox-retention", v, "a duration")
                   : 0;
    case O_DISK_CHECK:
        return bo_flags_duration_ms(v, &a->cfg.disk_check_interval_ms)
                   ? bad("disk-check-interval", v, "a duration")
                   : 0;
    case O_STOP_TIMEOUT:
        return bo_flags_duration_ms(v, &a->cfg.stop_timeout_ms)
                   ? bad("stop-timeout", v, "a duration")
                   : 0;
    case O_LOG_LEVEL: {
        int level = bo_log_parse_level(v);
        if (level < 0)
            return bad("log-level", v, "debug, info, warn, error or off");
        bo_log_set_level((enum bo_log_level)level);
        return 0;
    }
    default:
        return -1;
    }
}

static void agent_closed(struct bo_agent *agent, void *data)
{
    (void)agent;
    struct app *a = data;
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
}

static void signal_cb(uv_signal_t *h, int sig)
{
    struct app *a = h->data;
    (void)sig;
    if (a->stopping)
        return;
    a->stopping = true;
    bo_info("agent: stopping (executors keep running)");
    bo_agent_close(a->agent, agent_closed, a);
}

/* borealis-executor beside this binary, by default. */
static void default_executor(struct app *a)
{
    char self[PATH_MAX - 64];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        snprintf(a->executor, sizeof(a->executor), "borealis-executor");
        return;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    /* The build tree keeps it in a sibling directory. */
    snprintf(a->executor, sizeof(a->executor), "%s/borealis-executor", self);
    if (access(a->executor, X_OK) != 0)
        snprintf(a->executor, sizeof(a->executor), "%s/../executor/borealis-executor", self);
}

int main(int argc, char **argv)
{
    static struct app a;
    signal(SIGPIPE, SIG_IGN);
    bo_agent_config_init(&a.cfg);
    a.cfg.work_dir = "borealis-agent";
    a.cfg.listen = "127.0.0.1:1338";
    int opt;
    while ((opt = getopt_long(argc, argv, "h", OPTS, NULL)) != -1) {
        if (opt == O_HELP || opt == 'h') {
            usage(stdout);
            return 0;
        }
        if (opt == '?' || apply(&a, opt, optarg) != 0) {
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "borealis-agent: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (a.n_schedulers == 0)
        a.schedulers[a.n_schedulers++] = "http://127.0.0.1:8081";
    if (!a.executor[0])
        default_executor(&a);
    a.cfg.schedulers = a.schedulers;
    a.cfg.n_schedulers = a.n_schedulers;
    a.cfg.executor_path = a.executor;

    struct bo_err err = BO_ERR_INIT;
    char host[256] = "localhost";
    if (!a.cfg.hostname && gethostname(host, sizeof(host) - 1) == 0)
        a.cfg.hostname = host;
    json_t *attrs = NULL, *ports = NULL;
    int rc = bo_host_parse_attributes(a.attributes, a.cfg.hostname, &attrs, &err);
    if (rc != BO_OK) {
        fprintf(stderr, "borealis-agent: --attributes: %s\n", bo_err_msg(&err, rc));
        return 2;
    }
    if (a.ports) {
        rc = bo_host_parse_ports(a.ports, &ports, &err);
        if (rc != BO_OK) {
            fprintf(stderr, "borealis-agent: --ports: %s\n", bo_err_msg(&err, rc));
            json_decref(attrs);
            return 2;
        }
    }
    a.cfg.attributes = attrs;
    a.cfg.ports = ports;
    if (bo_httpc_global_init(&err) != BO_OK || bo_metrics_new(&a.metrics) != BO_OK) {
        fprintf(stderr, "borealis-agent: %s\n", bo_err_msg(&err, BO_ENOMEM));
        return 1;
    }
    a.cfg.metrics = a.metrics;
    uv_loop_init(&a.loop);
    rc = bo_agent_start(&a.loop, &a.cfg, &a.agent, &err);
    if (rc != BO_OK) {
        fprintf(stderr, "borealis-agent: %s\n", bo_err_msg(&err, rc));
        uv_run(&a.loop, UV_RUN_DEFAULT); /* let a half-started agent close */
        json_decref(attrs);
        json_decref(ports);
        bo_metrics_free(a.metrics);
        return 1;
    }
    uv_signal_init(&a.loop, &a.sigterm);
    uv_signal_init(&a.loop, &a.sigint);
    a.sigterm.data = a.sigint.data = &a;
    uv_signal_start(&a.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&a.sigint, signal_cb, SIGINT);
    printf("borealis-agent: id '%s', observer on %s%s, scheduler %s\n", bo_agent_id(a.agent),
           a.cfg.listen ? "http://" : "", a.cfg.listen ? a.cfg.listen : "none", a.schedulers[0]);
    fflush(stdout);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    bo_agent_free(a.agent);
    json_decref(attrs);
    json_decref(ports);
    bo_metrics_free(a.metrics);
    uv_loop_close(&a.loop);
    return 0;
}
