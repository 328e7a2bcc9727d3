/*
 * borealis.c - the user CLI: `borealis NOUN VERB [options] ARGS`, Aurora's
 * `aurora` command line on the scheduler's HTTP/JSON API (docs/api.md).
 *
 * Happy path: global options (-v, --version, --help) before the noun; the
 * noun and verb pick a row of COMMANDS; getopt_long parses the verb's
 * options anywhere after the verb (only those the row allows); the verb runs
 * and returns an exit code. Verbs open their cluster lazily (cli_connect),
 * so `--help`, `config list` and `job inspect` work without a scheduler.
 *
 * Failure modes and exit codes (Aurora's): an unknown noun, verb or option,
 * or the wrong number of arguments, is 5 with the usage on stderr; a bad
 * value (a job key, a number, a --bind without '=') is 6; a config the
 * evaluator refuses is 3 with its message as is (file, line, field); an
 * answer other than 2xx is 10; no scheduler reachable is 7; a wait that
 * outlives --wait-timeout is 9; a command whose outcome is wrong (a rolling
 * restart beyond its failure limits) is 4.
 *
 * Waits poll GET /api/v1/tasks for the job every 500 ms and print a
 * progress line only when stdout is a terminal (bo_client_progress).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "client/borealis_cli.h"
#include "common/flags.h"
#include "common/mem.h"

#ifndef BO_VERSION
#define BO_VERSION "0.1.0"
#endif

#define DEFAULT_WAIT_TIMEOUT_MS (30LL * 60 * 1000)
#define POLL_INTERVAL_MS        500

/* ---- options ---- */

enum cli_opt {
    O_VERBOSE,
    O_HELP,
    O_WAIT_UNTIL,
    O_BIND,
    O_READ_JSON,
    O_WRITE_JSON,
    O_RAW,
    O_BATCH_SIZE,
    O_NO_BATCHING,
    O_MESSAGE,
    O_WATCH_SECS,
    O_MAX_PER_INSTANCE,
    O_MAX_TOTAL,
    O_WAIT_TIMEOUT,
    O__COUNT
};

struct opt_spec {
    const char *name;
    int has_arg;
    int short_name; /* 0 for none */
    const char *metavar;
    const char *help;
};

static const struct opt_spec OPT_SPECS[O__COUNT] = {
    [O_VERBOSE] = {"verbose", no_argument, 'v', NULL, "log each API request to stderr"},
    [O_HELP] = {"help", no_argument, 'h', NULL, "this text"},
    [O_WAIT_UNTIL] = {"wait-until", required_argument, 0, "STATE",
                      "PENDING (default), RUNNING or FINISHED: wait until every instance is"},
    [O_BIND] = {"bind", required_argument, 0, "NAME=VALUE",
                "bind a config variable (repeatable): --bind profile.instances=3"},
    [O_READ_JSON] = {"read-json", no_argument, 0, NULL, "the config file is JSON, not .aurora"},
    [O_WRITE_JSON] = {"write-json", no_argument, 0, NULL, "print JSON instead of text"},
    [O_RAW] = {"raw", no_argument, 0, NULL, "print the job as the scheduler receives it"},
    [O_BATCH_SIZE] = {"batch-size", required_argument, 0, "N", "instances acted on per batch (1)"},
    [O_NO_BATCHING] = {"no-batching", no_argument, 0, NULL, "kill every instance at once"},
    [O_MESSAGE] = {"message", required_argument, 'm', "TEXT",
                   "a message recorded in the tasks' events"},
    [O_WATCH_SECS] = {"watch-secs", required_argument, 0, "S",
                      "seconds a restarted instance must stay RUNNING (30)"},
    [O_MAX_PER_INSTANCE] = {"max-per-instance-failures", required_argument, 0, "N",
                            "restart failures tolerated per instance (0)"},
    [O_MAX_TOTAL] = {"max-total-failures", required_argument, 0, "N",
                     "instances allowed to fail in total (0)"},
    [O_WAIT_TIMEOUT] = {"wait-timeout", required_argument, 0, "DURATION",
                        "give up waiting after this long, exit 9 (30m)"},
};

#define B(o)      (1u << (o))
#define O_COMMON  (B(O_VERBOSE) | B(O_HELP))
#define O_CONFIG  (B(O_BIND) | B(O_READ_JSON))
#define O_KILLING (B(O_BATCH_SIZE) | B(O_NO_BATCHING) | B(O_MESSAGE) | B(O_WAIT_TIMEOUT))

static const struct cli_command COMMANDS[] = {
    {"job", "create", "JOBKEY CONFIG", "create a service or ad-hoc job from a config",
     "Prints the job's URL. Cron jobs are refused: use 'borealis cron schedule'.",
     O_COMMON | O_CONFIG | B(O_WAIT_UNTIL) | B(O_WAIT_TIMEOUT), 2, 2, cli_job_create},
    {"job", "add", "CLUSTER/ROLE/ENV/NAME/INSTANCE COUNT",
     "add COUNT instances cloned from INSTANCE", NULL,
     O_COMMON | B(O_WAIT_UNTIL) | B(O_WAIT_TIMEOUT), 2, 2, cli_job_add},
    {"job", "kill", "CLUSTER/ROLE/ENV/NAME/INSTANCES",
     "kill the given instances (0-2,5) and wait until they are gone",
     "Instances are killed --batch-size at a time (1), each batch waited for.",
     O_COMMON | O_KILLING, 1, 1, cli_job_kill},
    {"job", "killall", "CLUSTER/ROLE/ENV/NAME", "kill every instance of a job and wait", NULL,
     O_COMMON | O_KILLING, 1, 1, cli_job_killall},
    {"job", "restart", "CLUSTER/ROLE/ENV/NAME[/INSTANCES]",
     "rolling restart: batch by batch, wait until RUNNING and watched",
     "Each batch is restarted, then its new tasks must become RUNNING and stay\n"
     "RUNNING for --watch-secs. An instance whose task fails is watched again; the\n"
     "restart fails (exit 4) when an instance fails more than\n"
     "--max-per-instance-failures times or more than --max-total-failures\n"
     "instances fail.",
     O_COMMON | B(O_BATCH_SIZE) | B(O_WATCH_SECS) | B(O_MAX_PER_INSTANCE) | B(O_MAX_TOTAL) |
         B(O_MESSAGE) | B(O_WAIT_TIMEOUT),
     1, 1, cli_job_restart},
    {"job", "status", "CLUSTER[/ROLE[/ENV[/NAME]]]",
     "active and inactive tasks of the matching jobs (globs allowed)", NULL,
     O_COMMON | B(O_WRITE_JSON), 1, 1, cli_job_status},
    {"job", "list", "CLUSTER[/ROLE[/ENV[/NAME]]]", "the keys of the matching jobs", NULL, O_COMMON,
     1, 1, cli_job_list},
    {"job", "inspect", "JOBKEY CONFIG", "show the job a config defines", NULL,
     O_COMMON | O_CONFIG | B(O_RAW) | B(O_WRITE_JSON), 2, 2, cli_job_inspect},
    {"job", "diff", "JOBKEY CONFIG", "diff a config against the running job",
     "Compares the config, as the scheduler would store it, with the configs of\n"
     "the job's active tasks. Exits 0 whether or not they differ.",
     O_COMMON | O_CONFIG, 2, 2, cli_job_diff},
    {"job", "open", "CLUSTER[/ROLE[/ENV[/NAME]]]", "print the scheduler's URL for a job", NULL,
     O_COMMON, 1, 1, cli_job_open},
    {"cron", "schedule", "JOBKEY CONFIG", "create or replace a cron job", NULL, O_COMMON | O_CONFIG,
     2, 2, cli_cron_schedule},
    {"cron", "deschedule", "JOBKEY", "remove a cron job (running tasks stay)", NULL, O_COMMON, 1, 1,
     cli_cron_deschedule},
    {"cron", "start", "JOBKEY", "start a run of a cron job now", NULL, O_COMMON, 1, 1,
     cli_cron_start},
    {"cron", "show", "JOBKEY", "print the job key and its schedule", NULL, O_COMMON, 1, 1,
     cli_cron_show},
    {"quota", "get", "CLUSTER/ROLE", "a role's quota and what it consumes", NULL,
     O_COMMON | B(O_WRITE_JSON), 1, 1, cli_quota_get},
    {"config", "list", "CONFIG", "the jobs a config file defines", NULL, O_COMMON | O_CONFIG, 1, 1,
     cli_config_list},
};

#define N_COMMANDS (sizeof(COMMANDS) / sizeof(COMMANDS[0]))

static const char *const NOUNS[] = {"job", "cron", "quota", "config"};
#define N_NOUNS (sizeof(NOUNS) / sizeof(NOUNS[0]))

static void usage_top(FILE *f)
{
    fprintf(f, "usage: borealis [-v] NOUN VERB [options] ARGS\n"
               "       borealis --version | --help | help NOUN [VERB]\n\n");
    const char *noun = NULL;
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const struct cli_command *c = &COMMANDS[i];
        if (!noun || strcmp(noun, c->noun) != 0) {
            noun = c->noun;
            fprintf(f, "%s%s\n", i ? "\n" : "", noun);
        }
        fprintf(f, "  %-10s %-37s %s\n", c->verb, c->synopsis, c->summary);
    }
    fprintf(f, "\nClusters come from /etc/borealis/clusters.json, ~/.borealis/clusters.json\n"
               "and $BOREALIS_CLUSTERS. Exit codes: 0 ok, 3 bad config, 4 command failed,\n"
               "5 bad command line, 6 bad parameter, 7 network error, 9 timeout, 10 API error.\n");
}

static void usage_noun(FILE *f, const char *noun)
{
    fprintf(f, "usage: borealis %s VERB [options] ARGS\n\nverbs:\n", noun);
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(COMMANDS[i].noun, noun) == 0)
            fprintf(f, "  %-10s %-37s %s\n", COMMANDS[i].verb, COMMANDS[i].synopsis,
                    COMMANDS[i].summary);
    fprintf(f, "\n'borealis %s VERB --help' describes a verb.\n", noun);
}

static void usage_command(FILE *f, const struct cli_command *c)
{
    fprintf(f, "usage: borealis %s %s [options] %s\n\n%c%s.\n", c->noun, c->verb, c->synopsis,
            c->summary[0] - 'a' + 'A', c->summary + 1);
    if (c->help)
        fprintf(f, "%s\n", c->help);
    fprintf(f, "\noptions:\n");
    for (int o = 0; o < O__COUNT; o++) {
        if (!(c->opts & B(o)))
            continue;
        const struct opt_spec *s = &OPT_SPECS[o];
        char left[64];
        if (s->short_name)
            snprintf(left, sizeof(left), "-%c, --%s%s%s", s->short_name, s->name,
                     s->metavar ? " " : "", s->metavar ? s->metavar : "");
        else
            snprintf(left, sizeof(left), "--%s%s%s", s->name, s->metavar ? " " : "",
                     s->metavar ? s->metavar : "");
        fprintf(f, "  %-32s %s\n", left, s->help);
    }
}

static bool is_noun(const char *s)
{
    for (size_t i = 0; i < N_NOUNS; i++)
        if (strcmp(NOUNS[i], s) == 0)
            return true;
    return false;
}

static const struct cli_command *find_command(const char *noun, const char *verb)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(COMMANDS[i].noun, noun) == 0 && strcmp(COMMANDS[i].verb, verb) == 0)
            return &COMMANDS[i];
    return NULL;
}

/* A non-negative integer option value; -1 for a bad one. */
static long parse_count(const char *flag, const char *v, long min)
{
    long long n;
    if (bo_flags_uint(v, 1000000, &n) != 0 || n < min) {
        fprintf(stderr, "borealis: --%s '%s': expected an integer >= %ld\n", flag, v, min);
        return -1;
    }
    return (long)n;
}

static int apply_opt(struct cli *cli, int o, const char *v)
{
    struct cli_opts *op = &cli->o;
    switch (o) {
    case O_VERBOSE:
        op->verbose = true;
        return 0;
    case O_WAIT_UNTIL:
        if (strcasecmp(v, "PENDING") == 0)
            op->wait_until = WAIT_PENDING;
        else if (strcasecmp(v, "RUNNING") == 0)
            op->wait_until = WAIT_RUNNING;
        else if (strcasecmp(v, "FINISHED") == 0)
            op->wait_until = WAIT_FINISHED;
        else
            return cli_fail(BO_EXIT_INVALID_PARAMETER,
                            "--wait-until '%s': expected PENDING, RUNNING or FINISHED", v);
        return 0;
    case O_BIND: {
        const char *eq = strchr(v, '=');
        if (!eq || eq == v)
            return cli_fail(BO_EXIT_INVALID_PARAMETER, "--bind '%s': expected NAME=VALUE", v);
        if (op->n_binds == CLI_MAX_BINDS)
            return cli_fail(BO_EXIT_INVALID_PARAMETER, "--bind: at most %d bindings",
                            CLI_MAX_BINDS);
        char *mem = bo_strdup(v);
        if (!mem)
            return cli_fail(BO_EXIT_UNKNOWN, "out of memory");
        mem[eq - v] = '\0';
        op->bind_mem[op->n_binds] = mem;
        op->binds[op->n_binds].name = mem;
        op->binds[op->n_binds].value = mem + (eq - v) + 1;
        op->n_binds++;
        return 0;
    }
    case O_READ_JSON:
        op->read_json = true;
        return 0;
    case O_WRITE_JSON:
        op->write_json = true;
        return 0;
    case O_RAW:
        op->raw = true;
        return 0;
    case O_BATCH_SIZE:
        op->batch_size = parse_count("batch-size", v, 1);
        return op->batch_size < 0 ? BO_EXIT_INVALID_PARAMETER : 0;
    case O_NO_BATCHING:
        op->no_batching = true;
        return 0;
    case O_MESSAGE:
        op->message = v;
        return 0;
    case O_WATCH_SECS:
        op->watch_secs = parse_count("watch-secs", v, 0);
        return op->watch_secs < 0 ? BO_EXIT_INVALID_PARAMETER : 0;
    case O_MAX_PER_INSTANCE:
        op->max_per_instance_failures = parse_count("max-per-instance-failures", v, 0);
        return op->max_per_instance_failures < 0 ? BO_EXIT_INVALID_PARAMETER : 0;
    case O_MAX_TOTAL:
        op->max_total_failures = parse_count("max-total-failures", v, 0);
        return op->max_total_failures < 0 ? BO_EXIT_INVALID_PARAMETER : 0;
    case O_WAIT_TIMEOUT:
        if (bo_flags_duration_ms(v, &op->wait_timeout_ms) != 0 || op->wait_timeout_ms <= 0)
            return cli_fail(BO_EXIT_INVALID_PARAMETER,
                            "--wait-timeout '%s': expected a duration (90s, 5m)", v);
        return 0;
    default:
        return BO_EXIT_INVALID_COMMAND;
    }
}

/* Parse the verb's options and arguments; argv[0] is the verb. Returns an
 * exit code, or -1 when --help was printed (exit 0). */
static int parse_verb(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *c = cli->cmd;
    struct option longopts[O__COUNT + 1];
    char shortopts[2 * O__COUNT + 2];
    size_t n = 0, ns = 0;

    shortopts[ns++] = ':'; /* report a missing argument as ':' */
    for (int o = 0; o < O__COUNT; o++) {
        if (!(c->opts & B(o)))
            continue;
        const struct opt_spec *s = &OPT_SPECS[o];
        longopts[n++] = (struct option){s->name, s->has_arg, NULL, 256 + o};
        if (s->short_name) {
            shortopts[ns++] = (char)s->short_name;
            if (s->has_arg == required_argument)
                shortopts[ns++] = ':';
        }
    }
    longopts[n] = (struct option){NULL, 0, NULL, 0};
    shortopts[ns] = '\0';

    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        int o = -1;
        if (ch >= 256)
            o = ch - 256;
        for (int i = 0; o < 0 && i < O__COUNT; i++)
            if (OPT_SPECS[i].short_name == ch && (c->opts & B(i)))
                o = i;
        if (ch == '?' || ch == ':' || o < 0) {
            const char *bad = argv[optind - 1];
            fprintf(stderr, "borealis: %s '%s'\n",
                    ch == ':' ? "missing value for option" : "unknown option", bad);
            usage_command(stderr, c);
            return BO_EXIT_INVALID_COMMAND;
        }
        if (o == O_HELP) {
            usage_command(stdout, c);
            return -1;
        }
        int rc = apply_opt(cli, o, optarg);
        if (rc != 0)
            return rc;
    }
    size_t nargs = (size_t)(argc - optind);
    if (nargs < c->min_args || nargs > c->max_args) {
        fprintf(stderr, "borealis %s %s: expected %s\n", c->noun, c->verb, c->synopsis);
        usage_command(stderr, c);
        return BO_EXIT_INVALID_COMMAND;
    }
    for (size_t i = 0; i < nargs; i++)
        cli->args[cli->n_args++] = argv[optind + (int)i];
    return 0;
}

/* ---- helpers ---- */

int cli_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("borealis: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

int cli_jobkey(const char *s, int flags, struct bo_jobkey *out)
{
    struct bo_err err = BO_ERR_INIT;
    int rc = bo_jobkey_parse(s, flags, out, &err);
    if (rc != BO_OK)
        return cli_fail(rc == BO_ENOMEM ? BO_EXIT_UNKNOWN : BO_EXIT_INVALID_PARAMETER, "%s",
                        bo_err_msg(&err, rc));
    return 0;
}

static int transport_exit(int rc)
{
    if (rc == BO_EIO)
        return BO_EXIT_NETWORK_ERROR;
    if (rc == BO_EBUSY)
        return BO_EXIT_TIMEOUT;
    int code = bo_client_exit_code(rc);
    return code ? code : BO_EXIT_UNKNOWN;
}

int cli_connect(struct cli *cli, const char *cluster)
{
    if (cli->connected) {
        if (strcmp(cli->cluster.name, cluster) != 0)
            return cli_fail(BO_EXIT_INVALID_PARAMETER, "one cluster per command ('%s', '%s')",
                            cli->cluster.name, cluster);
        return 0;
    }
    struct bo_err err = BO_ERR_INIT;
    int rc = bo_cluster_find(cluster, &cli->cluster, &err);
    if (rc != BO_OK)
        return cli_fail(rc == BO_ENOTFOUND ? BO_EXIT_INVALID_PARAMETER : transport_exit(rc), "%s",
                        bo_err_msg(&err, rc));
    struct bo_client_opts opts = {
        .timeout_ms = 30000, .no_leader_wait_ms = 10000, .verbose = cli->o.verbose};
    rc = bo_client_open(&cli->cluster, &opts, &cli->client, &err);
    if (rc != BO_OK) {
        bo_cluster_release(&cli->cluster);
        return cli_fail(transport_exit(rc), "%s", bo_err_msg(&err, rc));
    }
    cli->connected = true;
    return 0;
}

int cli_call(struct cli *cli, const char *what, const char *method, const char *path, json_t *body,
             json_t **resp)
{
    struct bo_err err = BO_ERR_INIT;
    unsigned status = 0;
    json_t *answer = NULL;
    char *text = NULL;
    int rc = bo_client_call(cli->client, method, path, body, &status, &answer, &text, &err);
    if (rc != BO_OK) {
        bo_client_progress_done();
        return cli_fail(transport_exit(rc), "%s: %s", what, bo_err_msg(&err, rc));
    }
    if (status < 200 || status > 299) {
        bo_client_progress_done();
        bo_client_api_error(method, path, status, answer, text, &err);
        json_decref(answer);
        bo_free(text);
        return cli_fail(BO_EXIT_API_ERROR, "%s: %s", what, bo_err_msg(&err, BO_EINVAL));
    }
    bo_free(text);
    if (resp)
        *resp = answer;
    else
        json_decref(answer);
    return 0;
}

void cli_job_path(const struct bo_jobkey *k, const char *suffix, char *buf, size_t size)
{
    snprintf(buf, size, "/api/v1/jobs/%s/%s/%s%s", k->role, k->env, k->name, suffix);
}

int cli_config_job(struct cli *cli, const char *path, const struct bo_jobkey *k, json_t **entry,
                   json_t **all)
{
    struct bo_err err = BO_ERR_INIT;
    struct bo_config_opts opts = {
        .binds = cli->o.binds, .n_binds = cli->o.n_binds, .read_json = cli->o.read_json};
    json_t *jobs = NULL;
    int rc = bo_config_load(path, &opts, &jobs, &err);
    if (rc != BO_OK) {
        /* The evaluator's message names file, line and field: print as is. */
        fprintf(stderr, "%s\n", bo_err_msg(&err, rc));
        return rc == BO_ENOMEM ? BO_EXIT_UNKNOWN : BO_EXIT_INVALID_CONFIG;
    }
    if (all) {
        *all = jobs;
        return 0;
    }
    char want[4 * BO_KEY_PART_MAX + 4];
    bo_jobkey_str(k, want, sizeof(want));
    size_t i;
    json_t *e;
    json_array_foreach(jobs, i, e)
    {
        const char *key = json_string_value(json_object_get(e, "key"));
        if (key && strcmp(key, want) == 0) {
            *entry = json_incref(e);
            json_decref(jobs);
            return 0;
        }
    }
    fprintf(stderr, "%s: no job '%s' in the config (it defines:", path, want);
    json_array_foreach(jobs, i, e)
        fprintf(stderr, "%s %s", i ? "," : "", json_string_value(json_object_get(e, "key")));
    fprintf(stderr, "%s)\n", json_array_size(jobs) ? "" : " nothing");
    json_decref(jobs);
    return BO_EXIT_INVALID_CONFIG;
}

int cli_job_tasks(struct cli *cli, const struct bo_jobkey *k, bool configs, json_t **tasks)
{
    char path[4 * BO_KEY_PART_MAX + 96];
    snprintf(path, sizeof(path), "/api/v1/tasks?role=%s&environment=%s&job_name=%s%s", k->role,
             k->env, k->name, configs ? "" : "&configs=false");
    json_t *resp = NULL;
    int rc = cli_call(cli, "query tasks", "GET", path, NULL, &resp);
    if (rc != 0)
        return rc;
    json_t *t = json_object_get(resp, "tasks");
    if (!json_is_array(t)) {
        json_decref(resp);
        return cli_fail(BO_EXIT_API_ERROR, "query tasks: the answer has no 'tasks' list");
    }
    *tasks = json_incref(t);
    json_decref(resp);
    return 0;
}

bool cli_status_terminal(const char *s)
{
    return s && (strcmp(s, "FINISHED") == 0 || strcmp(s, "FAILED") == 0 ||
                 strcmp(s, "KILLED") == 0 || strcmp(s, "LOST") == 0);
}

bool cli_status_active(const char *s)
{
    return s && !cli_status_terminal(s);
}

const char *cli_task_status(json_t *task)
{
    const char *s = json_string_value(json_object_get(task, "status"));
    return s ? s : "";
}

const char *cli_task_id(json_t *task)
{
    const char *s =
        json_string_value(json_object_get(json_object_get(task, "assigned_task"), "task_id"));
    return s ? s : "";
}

int cli_task_instance(json_t *task)
{
    json_t *v = json_object_get(json_object_get(task, "assigned_task"), "instance_id");
    return json_is_integer(v) ? (int)json_integer_value(v) : -1;
}

static int64_t task_born_ms(json_t *task)
{
    json_t *ev = json_array_get(json_object_get(task, "task_events"), 0);
    return json_integer_value(json_object_get(ev, "timestamp_ms"));
}

void cli_instance_tasks(json_t *tasks, const int *instances, size_t n, json_t **out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    size_t j;
    json_t *t;
    json_array_foreach(tasks, j, t)
    {
        int inst = cli_task_instance(t);
        for (size_t i = 0; i < n; i++) {
            if (instances[i] != inst)
                continue;
            json_t *cur = out[i];
            bool act = cli_status_active(cli_task_status(t));
            if (!cur) {
                out[i] = t;
            } else {
                bool cur_act = cli_status_active(cli_task_status(cur));
                if ((act && !cur_act) || (act == cur_act && task_born_ms(t) >= task_born_ms(cur)))
                    out[i] = t;
            }
        }
    }
}

void cli_progress(const char *label, json_t *tasks, const int *instances, size_t n)
{
    if (!bo_client_tty())
        return;
    json_t **cur = bo_calloc(n ? n : 1, sizeof(*cur));
    if (!cur)
        return;
    cli_instance_tasks(tasks, instances, n, cur);
    size_t pending = 0, running = 0, finished = 0, other = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = cur[i] ? cli_task_status(cur[i]) : "PENDING";
        if (strcmp(s, "RUNNING") == 0)
            running++;
        else if (cli_status_terminal(s))
            finished++;
        else if (strcmp(s, "PENDING") == 0 || strcmp(s, "THROTTLED") == 0 ||
                 strcmp(s, "ASSIGNED") == 0 || strcmp(s, "STARTING") == 0 || strcmp(s, "INIT") == 0)
            pending++;
        else
            other++;
    }
    bo_free(cur);
    if (other)
        bo_client_progress("%s: %zu pending, %zu running, %zu finished, %zu stopping", label,
                           pending, running, finished, other);
    else
        bo_client_progress("%s: %zu pending, %zu running, %zu finished", label, pending, running,
                           finished);
}

int64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cli_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int cli_wait(struct cli *cli, const struct bo_jobkey *k, const char *label, cli_done_fn done,
             void *data)
{
    int64_t deadline = cli_now_ms() + cli->o.wait_timeout_ms;
    for (;;) {
        json_t *tasks = NULL;
        int rc = cli_job_tasks(cli, k, false, &tasks);
        if (rc != 0)
            return rc;
        bool ok = done(cli, tasks, data);
        json_decref(tasks);
        if (ok) {
            bo_client_progress_done();
            return 0;
        }
        if (cli_now_ms() >= deadline) {
            bo_client_progress_done();
            char key[4 * BO_KEY_PART_MAX + 4];
            bo_jobkey_str(k, key, sizeof(key));
            return cli_fail(BO_EXIT_TIMEOUT, "%s: '%s' still not there after %lld ms", label, key,
                            (long long)cli->o.wait_timeout_ms);
        }
        cli_sleep_ms(POLL_INTERVAL_MS);
    }
}

struct until_ctx {
    const int *instances;
    size_t n;
    enum cli_wait_until target;
    const char *label;
};

static bool until_done(struct cli *cli, json_t *tasks, void *data)
{
    (void)cli;
    struct until_ctx *u = data;
    cli_progress(u->label, tasks, u->instances, u->n);
    json_t **cur = bo_calloc(u->n ? u->n : 1, sizeof(*cur));
    if (!cur)
        return false;
    cli_instance_tasks(tasks, u->instances, u->n, cur);
    bool all = true;
    for (size_t i = 0; i < u->n && all; i++) {
        const char *s = cur[i] ? cli_task_status(cur[i]) : "";
        if (u->target == WAIT_RUNNING)
            all = strcmp(s, "RUNNING") == 0 || cli_status_terminal(s);
        else
            all = cli_status_terminal(s);
    }
    bo_free(cur);
    return all;
}

int cli_wait_until(struct cli *cli, const struct bo_jobkey *k, const int *instances, size_t n,
                   enum cli_wait_until target)
{
    if (target == WAIT_PENDING || n == 0)
        return 0;
    struct until_ctx u = {instances, n, target,
                          target == WAIT_RUNNING ? "waiting for RUNNING" : "waiting for FINISHED"};
    return cli_wait(cli, k, u.label, until_done, &u);
}

void cli_print_json(json_t *v, bool pretty)
{
    char *s = json_dumps(v, pretty ? JSON_INDENT(2) | JSON_SORT_KEYS : JSON_COMPACT);
    if (s) {
        printf("%s\n", s);
        free(s);
    }
}

/* ---- main ---- */

static void cli_release(struct cli *cli)
{
    if (cli->connected) {
        bo_client_close(cli->client);
        bo_cluster_release(&cli->cluster);
        cli->connected = false;
    }
    for (size_t i = 0; i < cli->o.n_binds; i++)
        bo_free(cli->o.bind_mem[i]);
    cli->o.n_binds = 0;
}

static int help_command(int argc, char **argv)
{
    if (argc <= 1) {
        usage_top(stdout);
        return 0;
    }
    if (!is_noun(argv[1]))
        return cli_fail(BO_EXIT_INVALID_COMMAND, "unknown noun '%s'", argv[1]);
    if (argc == 2) {
        usage_noun(stdout, argv[1]);
        return 0;
    }
    const struct cli_command *c = find_command(argv[1], argv[2]);
    if (!c)
        return cli_fail(BO_EXIT_INVALID_COMMAND, "unknown verb '%s %s'", argv[1], argv[2]);
    usage_command(stdout, c);
    return 0;
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    cli.o.wait_until = WAIT_PENDING;
    cli.o.batch_size = -1;
    cli.o.watch_secs = 30;
    cli.o.wait_timeout_ms = DEFAULT_WAIT_TIMEOUT_MS;

    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            cli.o.verbose = true;
        } else if (strcmp(a, "--version") == 0) {
            printf("%s\n", BO_VERSION);
            return 0;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage_top(stdout);
            return 0;
        } else {
            fprintf(stderr, "borealis: unknown option '%s'\n", a);
            usage_top(stderr);
            return BO_EXIT_INVALID_COMMAND;
        }
    }
    if (i >= argc) {
        usage_top(stderr);
        return BO_EXIT_INVALID_COMMAND;
    }
    if (strcmp(argv[i], "help") == 0)
        return help_command(argc - i, argv + i);
    if (!is_noun(argv[i])) {
        fprintf(stderr, "borealis: unknown noun '%s'\n", argv[i]);
        usage_top(stderr);
        return BO_EXIT_INVALID_COMMAND;
    }
    const char *noun = argv[i++];
    if (i >= argc || strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
        usage_noun(i >= argc ? stderr : stdout, noun);
        return i >= argc ? BO_EXIT_INVALID_COMMAND : 0;
    }
    cli.cmd = find_command(noun, argv[i]);
    if (!cli.cmd) {
        fprintf(stderr, "borealis: unknown verb '%s %s'\n", noun, argv[i]);
        usage_noun(stderr, noun);
        return BO_EXIT_INVALID_COMMAND;
    }
    int rc = parse_verb(&cli, argc - i, argv + i);
    if (rc == 0)
        rc = cli.cmd->run(&cli);
    else if (rc < 0)
        rc = 0;
    fflush(stdout);
    cli_release(&cli);
    bo_config_shutdown();
    return rc;
}
