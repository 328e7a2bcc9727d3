/*
 * borealis_admin.c - borealis-admin, the operator CLI: Aurora's aurora_admin
 * with its flat subcommands, argument shapes and output, on the scheduler's
 * JSON API (docs/api.md). docs/client.md lists every command.
 *
 * Each command parses its own options (getopt_long, so options and
 * positional arguments may be mixed), opens the cluster named by its first
 * positional argument, makes one or a few calls, prints, and returns an
 * Aurora exit code:
 *   5  unknown command or option, wrong number of arguments
 *   6  a value that does not parse (cpu, sizes, states, hosts, cluster name)
 *   3  a clusters.json that does not parse
 *   7  no scheduler could be reached
 *   9  no answer in time (or a drain that did not finish in time)
 *   10 the scheduler answered with an error
 *   4  a command that ran but failed (a post-drain script)
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "common/buf.h"
#include "common/flags.h"
#include "common/mem.h"

#define PROG "borealis-admin"

/* Snapshots and backups of a big state take a while. */
#define SLOW_TIMEOUT_MS (10u * 60u * 1000u)

struct ctx {
    bool verbose;
    unsigned timeout_ms;
    struct bo_cluster cluster;
    struct bo_client *cl;
};

struct cmd {
    const char *name;
    int (*run)(struct ctx *x, const struct cmd *c, int argc, char **argv);
    const char *usage; /* the synopsis, after "usage: " */
    const char *help;  /* what it does */
};

static const struct cmd *find_cmd(const char *name);

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

static int usage_error(const struct cmd *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const struct cmd *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG " ", stderr);
    fputs(c->name, stderr);
    fputs(": ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nusage: %s\n", c->usage);
    va_end(ap);
    return BO_EXIT_INVALID_COMMAND;
}

static void print_help(FILE *f, const struct cmd *c)
{
    fprintf(f, "usage: %s\n\n%s\n", c->usage, c->help);
}

/* ---- the cluster and calls ---- */

static int open_cluster(struct ctx *x, const char *name, unsigned timeout_ms)
{
    struct bo_err err = BO_ERR_INIT;
    int rc = bo_cluster_find(name, &x->cluster, &err);
    if (rc != BO_OK) {
        int code = rc == BO_ENOTFOUND && strncmp(err.msg, "unknown cluster", 15) == 0
                       ? BO_EXIT_INVALID_PARAMETER
                   : rc == BO_EINVAL || rc == BO_ENOTFOUND ? BO_EXIT_INVALID_CONFIG
                                                           : bo_client_exit_code(rc);
        return fail(code, "%s", bo_err_msg(&err, rc));
    }
    struct bo_client_opts o = {.timeout_ms = timeout_ms ? timeout_ms : x->timeout_ms,
                               .verbose = x->verbose};
    rc = bo_client_open(&x->cluster, &o, &x->cl, &err);
    if (rc != BO_OK)
        return fail(bo_client_exit_code(rc), "%s", bo_err_msg(&err, rc));
    return BO_EXIT_OK;
}

/* One call that must answer 2xx: the exit code; *resp (may be NULL) on 0. */
static int api(struct ctx *x, const char *method, const char *path, json_t *body, json_t **resp)
{
    struct bo_err err = BO_ERR_INIT;
    unsigned status = 0;
    json_t *j = NULL;
    char *text = NULL;
    int rc = bo_client_call(x->cl, method, path, body, &status, &j, &text, &err);
    if (rc != BO_OK)
        return fail(bo_client_exit_code(rc), "%s", bo_err_msg(&err, rc));
    if (status < 200 || status >= 300) {
        /* Whatever the code, the scheduler answered: an API error. */
        rc = bo_client_api_error(method, path, status, j, text, &err);
        json_decref(j);
        bo_free(text);
        return fail(BO_EXIT_API_ERROR, "%s", bo_err_msg(&err, rc));
    }
    bo_free(text);
    if (resp != NULL)
        *resp = j;
    else
        json_decref(j);
    return BO_EXIT_OK;
}

/* ---- paths and query strings ---- */

static int buf_puts(struct bo_buf *b, const char *s)
{
    return bo_buf_append(b, s, strlen(s));
}

static int buf_escape(struct bo_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_' || c == '.' || c == '~' || c == ',';
        int rc;
        if (plain) {
            rc = bo_buf_append_byte(b, c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = bo_buf_append(b, e, 3);
        }
        if (rc != BO_OK)
            return rc;
    }
    return BO_OK;
}

/* Append "?k=v" or "&k=v" (v escaped); nothing for a NULL or empty v. */
static int qs_add(struct bo_buf *b, const char *k, const char *v)
{
    if (v == NULL || v[0] == '\0')
        return BO_OK;
    bool first = memchr(b->data, '?', b->len) == NULL;
    int rc = bo_buf_append_byte(b, first ? '?' : '&');
    if (rc == BO_OK)
        rc = buf_puts(b, k);
    if (rc == BO_OK)
        rc = bo_buf_append_byte(b, '=');
    if (rc == BO_OK)
        rc = buf_escape(b, v);
    return rc;
}

/* NUL-terminate and hand out as a C string (owned by the buffer). */
static const char *buf_str(struct bo_buf *b)
{
    if (bo_buf_append_byte(b, 0) != BO_OK)
        return NULL;
    b->len--;
    return (const char *)b->data;
}

/* ---- values ---- */

static const char *const all_states[] = {
    "INIT",        "PENDING",  "THROTTLED",  "ASSIGNED", "STARTING",
    "RUNNING",     "KILLING",  "RESTARTING", "DRAINING", "PREEMPTING",
    "PARTITIONED", "FINISHED", "FAILED",     "KILLED",   "LOST",
};
/* Aurora's ACTIVE_STATES */
static const char *const active_states[] = {
    "PENDING", "THROTTLED",  "ASSIGNED", "STARTING",   "RUNNING",
    "KILLING", "RESTARTING", "DRAINING", "PREEMPTING", "PARTITIONED",
};
static const char *const terminal_states[] = {"FINISHED", "FAILED", "KILLED", "LOST"};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static bool in_list(const char *s, size_t len, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == len && strncmp(list[i], s, len) == 0)
            return true;
    return false;
}

/* Check a comma-separated state list against `allowed`. 0, or 6 after a
 * message. *outside is set when a state is not in `within` (may be NULL). */
static int check_states(const char *cmd, const char *states, const char *const *allowed,
                        size_t n_allowed, const char *const *within, size_t n_within, bool *outside)
{
    if (states[0] == '\0')
        return fail(BO_EXIT_INVALID_PARAMETER, "%s: empty state list", cmd);
    for (const char *p = states;;) {
        size_t len = strcspn(p, ",");
        if (!in_list(p, len, all_states, N_OF(all_states)))
            return fail(BO_EXIT_INVALID_PARAMETER,
                        "%s: unknown state '%.*s' (valid states: INIT, PENDING, THROTTLED, "
                        "ASSIGNED, STARTING, RUNNING, KILLING, RESTARTING, DRAINING, PREEMPTING, "
                        "PARTITIONED, FINISHED, FAILED, KILLED, LOST)",
                        cmd, (int)len, p);
        if (allowed != NULL && !in_list(p, len, allowed, n_allowed))
            return fail(BO_EXIT_INVALID_PARAMETER, "%s: '%.*s' is not a terminal state", cmd,
                        (int)len, p);
        if (within != NULL && !in_list(p, len, within, n_within))
            *outside = true;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    return 0;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 200 || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* "4096m", "2g", "1t", "512k", "1.5G", "100MB"; a bare number is MB. The
 * result is in MB, rounded up. -1 for anything else. */
static int parse_size_mb(const char *s, long long *mb)
{
    size_t n = strspn(s, "0123456789.");
    if (n == 0 || n > 32)
        return -1;
    char num[33];
    memcpy(num, s, n);
    num[n] = '\0';
    double v;
    if (bo_flags_double(num, &v) != 0)
        return -1;
    const char *u = s + n;
    double scale; /* to MB */
    switch (u[0]) {
    case '\0':
    case 'm':
    case 'M':
        scale = 1;
        break;
    case 'b':
    case 'B':
        scale = 1.0 / (1024.0 * 1024.0);
        break;
    case 'k':
    case 'K':
        scale = 1.0 / 1024.0;
        break;
    case 'g':
    case 'G':
        scale = 1024;
        break;
    case 't':
    case 'T':
        scale = 1024.0 * 1024.0;
        break;
    default:
        return -1;
    }
    if (u[0] != '\0' && u[1] != '\0') {
        if (!((u[1] == 'b' || u[1] == 'B') && u[2] == '\0' && u[0] != 'b' && u[0] != 'B'))
            return -1;
    }
    double r = ceil(v * scale - 1e-9);
    if (!(r >= 0) || r > 9007199254740992.0)
        return -1;
    *mb = (long long)r;
    return 0;
}

/* Hosts from --hosts=a,b or --filename=F (one per line): a JSON array. */
static int get_hosts(const char *cmd, const char *hosts, const char *filename, json_t **out)
{
    if ((hosts == NULL) == (filename == NULL))
        return fail(BO_EXIT_INVALID_PARAMETER, "%s: give either --hosts or --filename", cmd);
    json_t *arr = json_array();
    if (arr == NULL)
        return fail(BO_EXIT_UNKNOWN, "out of memory");
    if (hosts != NULL) {
        for (const char *p = hosts;;) {
            size_t len = strcspn(p, ",");
            if (len > 0)
                json_array_append_new(arr, json_stringn(p, len));
            if (p[len] == '\0')
                break;
            p += len + 1;
        }
    } else {
        FILE *f = fopen(filename, "r");
        if (f == NULL) {
            json_decref(arr);
            return fail(BO_EXIT_INVALID_PARAMETER, "%s: cannot read '%s': %s", cmd, filename,
                        strerror(errno));
        }
        char line[1024];
        while (fgets(line, sizeof(line), f) != NULL) {
            char *s = line;
            while (*s == ' ' || *s == '\t')
                s++;
            size_t len = strcspn(s, " \t\r\n#");
            if (len > 0)
                json_array_append_new(arr, json_stringn(s, len));
        }
        fclose(f);
    }
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        return fail(BO_EXIT_INVALID_PARAMETER, "%s: no hosts given", cmd);
    }
    *out = arr;
    return 0;
}

/* ---- option parsing shared by every command ---- */

enum {
    O_HELP = 'h',
    O_VERBOSE = 'v',
    O_FORCE = 256,
    O_SHARDS,
    O_STATES,
    O_LISTFORMAT,
    O_ROLE,
    O_ENV,
    O_JOB,
    O_LIMIT,
    O_HOSTS,
    O_FILENAME,
    O_POST_DRAIN,
    O_GROUPING,
    O_DRAIN_TIMEOUT,
    O_OVERRIDE,
    O_SH,
    O_EXPORT,
    O_TYPE,
    O_BATCH,
};

struct opts {
    bool force, sh, export;
    const char *shards, *states, *listformat, *role, *env, *job, *limit, *hosts, *filename,
        *post_drain, *grouping, *drain_timeout, *type, *batch;
    int npos;
    char **pos;
};

/* The options a command accepts, besides --help and -v. */
#define OPT_QUERY  "force,shards,states,listformat"
#define OPT_PRUNE  "states,role,env,job,limit"
#define OPT_HOSTS  "hosts,filename"
#define OPT_DRAIN  "hosts,filename,post_drain_script,grouping,drain_timeout,override"
#define OPT_CONFIG "sh,export"
#define OPT_RECONC "type,batch_size"

static const struct option long_opts[] = {
    {"help", no_argument, NULL, O_HELP},
    {"verbose", no_argument, NULL, O_VERBOSE},
    {"force", no_argument, NULL, O_FORCE},
    {"shards", required_argument, NULL, O_SHARDS},
    {"states", required_argument, NULL, O_STATES},
    {"listformat", required_argument, NULL, O_LISTFORMAT},
    {"role", required_argument, NULL, O_ROLE},
    {"env", required_argument, NULL, O_ENV},
    {"job", required_argument, NULL, O_JOB},
    {"limit", required_argument, NULL, O_LIMIT},
    {"hosts", required_argument, NULL, O_HOSTS},
    {"filename", required_argument, NULL, O_FILENAME},
    {"post_drain_script", required_argument, NULL, O_POST_DRAIN},
    {"grouping", required_argument, NULL, O_GROUPING},
    {"drain_timeout", required_argument, NULL, O_DRAIN_TIMEOUT},
    {"override_percentage", required_argument, NULL, O_OVERRIDE},
    {"override_duration", required_argument, NULL, O_OVERRIDE},
    {"override_reason", required_argument, NULL, O_OVERRIDE},
    {"unsafe_hosts_file", required_argument, NULL, O_OVERRIDE},
    {"sh", no_argument, NULL, O_SH},
    {"export", no_argument, NULL, O_EXPORT},
    {"type", required_argument, NULL, O_TYPE},
    {"batch_size", required_argument, NULL, O_BATCH},
    {NULL, 0, NULL, 0},
};

static bool allows(const char *allowed, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = allowed; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    return false;
}

/*
 * Parse argv (argv[0] is the command) into *o. Returns -1 to go on, or an
 * exit code: 0 after --help, 5 for an option the command does not take or a
 * positional count outside [min_pos, max_pos].
 */
static int parse(struct ctx *x, const struct cmd *c, const char *allowed, int argc, char **argv,
                 int min_pos, int max_pos, struct opts *o)
{
    *o = (struct opts){0};
    /* '-': positionals come back as 1, so options may follow them, as with
     * Aurora's optparse */
    char shortopts[16];
    snprintf(shortopts, sizeof(shortopts), "-hv%s%s%s", allows(allowed, "listformat") ? "l:" : "",
             allows(allowed, "type") ? "t:" : "", allows(allowed, "batch_size") ? "b:" : "");
    char *pos[64];
    int npos = 0;
    optind = 0;
    opterr = 0;
    int ch, idx;
    while ((ch = getopt_long(argc, argv, shortopts, long_opts, &idx)) != -1) {
        const char *name = NULL;
        if (ch == 1) { /* a positional */
            if (npos == (int)N_OF(pos))
                return usage_error(c, "too many arguments");
            pos[npos++] = optarg;
            continue;
        }
        if (ch == '?' || ch == ':') {
            if (optopt != 0 && optopt < 256)
                return usage_error(c, "unknown option '-%c' or missing value", optopt);
            return usage_error(c, "unknown option '%s' or missing value", argv[optind - 1]);
        }
        if (ch < 256 && ch != 'l' && ch != 't' && ch != 'b') {
            if (ch == 'h') {
                print_help(stdout, c);
                return 0;
            }
            x->verbose = true;
            continue;
        }
        switch (ch) {
        case 'l':
        case O_LISTFORMAT:
            name = "listformat";
            o->listformat = optarg;
            break;
        case 't':
        case O_TYPE:
            name = "type";
            o->type = optarg;
            break;
        case 'b':
        case O_BATCH:
            name = "batch_size";
            o->batch = optarg;
            break;
        case O_FORCE:
            name = "force";
            o->force = true;
            break;
        case O_SHARDS:
            name = "shards";
            o->shards = optarg;
            break;
        case O_STATES:
            name = "states";
            o->states = optarg;
            break;
        case O_ROLE:
            name = "role";
            o->role = optarg;
            break;
        case O_ENV:
            name = "env";
            o->env = optarg;
            break;
        case O_JOB:
            name = "job";
            o->job = optarg;
            break;
        case O_LIMIT:
            name = "limit";
            o->limit = optarg;
            break;
        case O_HOSTS:
            name = "hosts";
            o->hosts = optarg;
            break;
        case O_FILENAME:
            name = "filename";
            o->filename = optarg;
            break;
        case O_POST_DRAIN:
            name = "post_drain_script";
            o->post_drain = optarg;
            break;
        case O_GROUPING:
            name = "grouping";
            o->grouping = optarg;
            break;
        case O_DRAIN_TIMEOUT:
            name = "drain_timeout";
            o->drain_timeout = optarg;
            break;
        case O_OVERRIDE:
            name = "override";
            if (allows(allowed, name))
                return fail(BO_EXIT_INVALID_PARAMETER,
                            "%s: --%s: SLA-checked drains are not supported (there are no SLA "
                            "policies); plain host_drain drains without checks",
                            c->name, long_opts[idx].name);
            break;
        case O_SH:
            name = "sh";
            o->sh = true;
            break;
        case O_EXPORT:
            name = "export";
            o->export = true;
            break;
        default:
            return usage_error(c, "unknown option");
        }
        if (!allows(allowed, name))
            return usage_error(c, "'%s' takes no option '%s'", c->name, argv[optind - 1]);
    }
    for (int i = optind; i < argc && npos < (int)N_OF(pos); i++)
        pos[npos++] = argv[i];
    if (npos < min_pos)
        return usage_error(c, "missing arguments");
    if (npos > max_pos)
        return usage_error(c, "too many arguments");
    static char *saved[64];
    memcpy(saved, pos, sizeof(pos[0]) * (size_t)npos);
    o->pos = saved;
    o->npos = npos;
    return -1;
}

#define PARSE(allowed, min, max)                                                                   \
    struct opts o;                                                                                 \
    do {                                                                                           \
        int prc_ = parse(x, c, allowed, argc, argv, min, max, &o);                                 \
        if (prc_ >= 0)                                                                             \
            return prc_;                                                                           \
    } while (0)

/* ---- query ---- */

static void snake_to_camel(const char *s, char *out, size_t size)
{
    size_t j = 0;
    bool up = false;
    for (; *s && j + 1 < size; s++) {
        if (*s == '_') {
            up = true;
            continue;
        }
        out[j++] = up && *s >= 'a' && *s <= 'z' ? (char)(*s - 'a' + 'A') : *s;
        up = false;
    }
    out[j] = '\0';
}

static json_t *leaf_string(json_t *v)
{
    char num[64];
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_incref(v);
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
        return json_string(num);
    case JSON_REAL: {
        double d = json_real_value(v);
        snprintf(num, sizeof(num), "%.15g", d);
        if (strtod(num, NULL) != d)
            snprintf(num, sizeof(num), "%.17g", d);
        return json_string(num);
    }
    case JSON_TRUE:
        return json_string("true");
    case JSON_FALSE:
        return json_string("false");
    case JSON_NULL:
        return json_string("");
    default: {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        json_t *r = json_string(s ? s : "");
        free(s);
        return r;
    }
    }
}

static void put_field(json_t *map, const char *key, json_t *value, bool replace)
{
    char camel[128];
    snake_to_camel(key, camel, sizeof(camel));
    if (replace || json_object_get(map, key) == NULL)
        json_object_set(map, key, value);
    if (replace || json_object_get(map, camel) == NULL)
        json_object_set(map, camel, value);
}

/* Aurora's TaskConfig also has numCpus, ramMb and diskMb as plain fields;
 * here they are the sums over the `resources` list. */
static void put_resources(json_t *map, json_t *resources)
{
    const char *names[] = {"num_cpus", "ram_mb", "disk_mb"};
    for (size_t i = 0; i < N_OF(names); i++) {
        double sum = 0;
        bool any = false;
        size_t j;
        json_t *r;
        json_array_foreach(resources, j, r)
        {
            json_t *v = json_object_get(r, names[i]);
            if (json_is_number(v)) {
                sum += json_number_value(v);
                any = true;
            }
        }
        if (!any)
            continue;
        json_t *num = i == 0 ? json_real(sum) : json_integer((json_int_t)sum);
        json_t *str = num ? leaf_string(num) : NULL;
        if (str != NULL)
            put_field(map, names[i], str, false);
        json_decref(str);
        json_decref(num);
    }
}

/*
 * Aurora's flattened task: every scalar of the task, nested or not, under
 * its own name (snake_case as in the JSON, and camelCase as in Aurora's
 * thrift: %taskId%, %instanceId%). Shallower fields win; lists and maps
 * (task_events, assigned_ports) are one value, their compact JSON. Then the
 * names Aurora users rely on are set explicitly.
 */
static json_t *flatten_task(json_t *task)
{
    json_t *map = json_object();
    json_t *queue[64];
    size_t head = 0, tail = 0;
    queue[tail++] = task;
    while (head < tail) {
        json_t *o = queue[head++];
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v)
        {
            if (strcmp(k, "resources") == 0 && json_is_array(v))
                put_resources(map, v);
            bool is_map = strcmp(k, "assigned_ports") == 0 || strcmp(k, "task_links") == 0;
            if (json_is_object(v) && !is_map) {
                if (tail < N_OF(queue))
                    queue[tail++] = v;
                continue;
            }
            json_t *s = leaf_string(v);
            if (s != NULL)
                put_field(map, k, s, false);
            json_decref(s);
        }
    }
    json_t *at = json_object_get(task, "assigned_task");
    json_t *job = json_object_get(json_object_get(at, "task"), "job");
    struct {
        const char *name;
        json_t *v;
    } alias[] = {
        {"task_id", json_object_get(at, "task_id")},
        {"instance_id", json_object_get(at, "instance_id")},
        {"slave_host", json_object_get(at, "slave_host")},
        {"host", json_object_get(at, "slave_host")},
        {"slave_id", json_object_get(at, "slave_id")},
        {"status", json_object_get(task, "status")},
        {"role", json_object_get(job, "role")},
        {"environment", json_object_get(job, "environment")},
        {"env", json_object_get(job, "environment")},
        {"name", json_object_get(job, "name")},
        {"job_name", json_object_get(job, "name")},
    };
    for (size_t i = 0; i < N_OF(alias); i++) {
        if (alias[i].v == NULL)
            continue;
        json_t *s = leaf_string(alias[i].v);
        if (s != NULL)
            put_field(map, alias[i].name, s, true);
        json_decref(s);
    }
    if (job != NULL) {
        char key[600];
        snprintf(key, sizeof(key), "%s/%s/%s", json_string_value(json_object_get(job, "role")),
                 json_string_value(json_object_get(job, "environment")),
                 json_string_value(json_object_get(job, "name")));
        json_t *s = json_string(key);
        put_field(map, "job_key", s, true);
        json_decref(s);
    }
    return map;
}

/* Replace each %field% of `fmt` by the task's value. */
static void print_formatted(const char *fmt, json_t *map, bool *warned)
{
    const char *p = fmt;
    while (*p) {
        if (*p == '%') {
            size_t n = 0;
            while (p[1 + n] == '_' || (p[1 + n] >= 'a' && p[1 + n] <= 'z') ||
                   (p[1 + n] >= 'A' && p[1 + n] <= 'Z') || (p[1 + n] >= '0' && p[1 + n] <= '9'))
                n++;
            if (n > 0 && p[1 + n] == '%') {
                char key[128];
                snprintf(key, sizeof(key), "%.*s", (int)n, p + 1);
                const char *v = json_string_value(json_object_get(map, key));
                if (v != NULL) {
                    fputs(v, stdout);
                } else if (!*warned) {
                    *warned = true;
                    fprintf(stderr, PROG " query: unknown field '%s' in the list format\n", key);
                }
                p += n + 2;
                continue;
            }
        }
        fputc(*p++, stdout);
    }
    fputc('\n', stdout);
}

static int cmd_query(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    PARSE(OPT_QUERY, 1, 3);
    const char *role = o.npos > 1 ? o.pos[1] : NULL;
    const char *job = o.npos > 2 ? o.pos[2] : NULL;
    const char *states = o.states ? o.states : "RUNNING";
    const char *fmt = o.listformat ? o.listformat : "%role%/%name%/%instanceId% %status%";
    bool outside = false;
    int rc = check_states("query", states, NULL, 0, active_states, N_OF(active_states), &outside);
    if (rc != 0)
        return rc;
    if (role != NULL && !valid_name(role))
        return fail(BO_EXIT_INVALID_PARAMETER, "query: bad role '%s'", role);
    if (job != NULL && !valid_name(job))
        return fail(BO_EXIT_INVALID_PARAMETER, "query: bad job name '%s'", job);
    char *shards = NULL;
    if (o.shards != NULL) {
        int *ids;
        size_t n;
        struct bo_err err = BO_ERR_INIT;
        if (bo_instances_parse(o.shards, &ids, &n, &err) != BO_OK)
            return fail(BO_EXIT_INVALID_PARAMETER, "query: --shards: %s", err.msg);
        struct bo_buf b = BO_BUF_INIT;
        for (size_t i = 0; i < n; i++) {
            char num[24];
            snprintf(num, sizeof(num), "%s%d", i ? "," : "", ids[i]);
            buf_puts(&b, num);
        }
        bo_free(ids);
        shards = bo_strdup(b.len ? buf_str(&b) : "");
        bo_buf_release(&b);
    }
    /* Aurora's guards against expensive queries */
    const char *why = role == NULL  ? "no role given"
                      : job == NULL ? "no job given"
                      : outside     ? "states outside the active ones"
                                    : NULL;
    if (why != NULL && !o.force) {
        bo_free(shards);
        return fail(BO_EXIT_INVALID_PARAMETER,
                    "query: --force is required for expensive queries "
                    "(%s)",
                    why);
    }
    rc = open_cluster(x, o.pos[0], 0);
    if (rc != 0) {
        bo_free(shards);
        return rc;
    }
    struct bo_buf path = BO_BUF_INIT;
    buf_puts(&path, "/api/v1/tasks");
    qs_add(&path, "role", role);
    qs_add(&path, "job_name", job);
    qs_add(&path, "statuses", states);
    qs_add(&path, "instance_ids", shards);
    bo_free(shards);
    json_t *resp = NULL;
    rc = api(x, "GET", buf_str(&path), NULL, &resp);
    bo_buf_release(&path);
    if (rc != 0)
        return rc;
    bool warned = false;
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(resp, "tasks"), i, t)
    {
        json_t *map = flatten_task(t);
        if (map != NULL)
            print_formatted(fmt, map, &warned);
        json_decref(map);
    }
    json_decref(resp);
    return 0;
}

/* ---- prune ---- */

static int cmd_prune_tasks(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    PARSE(OPT_PRUNE, 1, 1);
    json_t *body = json_object();
    if (o.states != NULL) {
        int rc = check_states("prune_tasks", o.states, terminal_states, N_OF(terminal_states), NULL,
                              0, NULL);
        if (rc != 0) {
            json_decref(body);
            return rc;
        }
        json_t *arr = json_array();
        for (const char *p = o.states;;) {
            size_t len = strcspn(p, ",");
            json_array_append_new(arr, json_stringn(p, len));
            if (p[len] == '\0')
                break;
            p += len + 1;
        }
        json_object_set_new(body, "statuses", arr);
    }
    const struct {
        const char *opt, *key, *v;
    } names[] = {
        {"role", "role", o.role}, {"env", "environment", o.env}, {"job", "job_name", o.job}};
    for (size_t i = 0; i < N_OF(names); i++) {
        if (names[i].v == NULL)
            continue;
        if (!valid_name(names[i].v)) {
            json_decref(body);
            return fail(BO_EXIT_INVALID_PARAMETER, "prune_tasks: bad --%s '%s'", names[i].opt,
                        names[i].v);
        }
        json_object_set_new(body, names[i].key, json_string(names[i].v));
    }
    if (o.limit != NULL) {
        long long lim;
        if (bo_flags_uint(o.limit, 1000000000LL, &lim) != 0) {
            json_decref(body);
            return fail(BO_EXIT_INVALID_PARAMETER, "prune_tasks: bad --limit '%s'", o.limit);
        }
        json_object_set_new(body, "limit", json_integer(lim));
    }
    int rc = open_cluster(x, o.pos[0], 0);
    json_t *resp = NULL;
    if (rc == 0)
        rc = api(x, "POST", "/api/v1/admin/prune", body, &resp);
    json_decref(body);
    if (rc != 0)
        return rc;
    printf("pruned %lld tasks\n", (long long)json_integer_value(json_object_get(resp, "pruned")));
    json_decref(resp);
    return 0;
}

/* ---- quota ---- */

static void print_quota(const char *what, const char *role, json_t *q)
{
    json_t *cpu = json_object_get(q, "cpu");
    printf("%s quota of role '%s': cpu %g, ram %lld MB, disk %lld MB\n", what, role,
           json_number_value(cpu), (long long)json_integer_value(json_object_get(q, "ram_mb")),
           (long long)json_integer_value(json_object_get(q, "disk_mb")));
}

static int quota(struct ctx *x, const struct cmd *c, int argc, char **argv, bool increase)
{
    PARSE("", 5, 5);
    const char *role = o.pos[1];
    double cpu;
    long long ram, disk;
    if (!valid_name(role))
        return fail(BO_EXIT_INVALID_PARAMETER, "%s: bad role '%s'", c->name, role);
    if (bo_flags_double(o.pos[2], &cpu) != 0)
        return fail(BO_EXIT_INVALID_PARAMETER, "%s: bad cpu '%s' (a number like 2 or 0.5)", c->name,
                    o.pos[2]);
    if (parse_size_mb(o.pos[3], &ram) != 0)
        return fail(BO_EXIT_INVALID_PARAMETER, "%s: bad ram '%s' (a size like 4096m, 2g, 1t)",
                    c->name, o.pos[3]);
    if (parse_size_mb(o.pos[4], &disk) != 0)
        return fail(BO_EXIT_INVALID_PARAMETER, "%s: bad disk '%s' (a size like 4096m, 2g, 1t)",
                    c->name, o.pos[4]);
    int rc = open_cluster(x, o.pos[0], 0);
    if (rc != 0)
        return rc;
    char path[300];
    snprintf(path, sizeof(path), "/api/v1/quotas/%s%s", role, increase ? "/increase" : "");
    json_t *body = json_pack("{s:f, s:I, s:I}", "cpu", cpu, "ram_mb", (json_int_t)ram, "disk_mb",
                             (json_int_t)disk);
    json_t *resp = NULL;
    rc = api(x, increase ? "POST" : "PUT", path, body, &resp);
    json_decref(body);
    if (rc != 0)
        return rc;
    print_quota(increase ? "increased" : "set", role, resp);
    json_decref(resp);
    return 0;
}

static int cmd_set_quota(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    return quota(x, c, argc, argv, false);
}

static int cmd_increase_quota(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    return quota(x, c, argc, argv, true);
}

/* ---- backups, recovery, snapshot, reconciliation ---- */

/* A command that is one call with no arguments but the cluster. */
static int simple(struct ctx *x, const struct cmd *c, int argc, char **argv, const char *method,
                  const char *path, unsigned timeout_ms, json_t **resp)
{
    PARSE("", 1, 1);
    int rc = open_cluster(x, o.pos[0], timeout_ms);
    if (rc != 0)
        return rc;
    return api(x, method, path, NULL, resp);
}

static int cmd_backup_now(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    json_t *resp = NULL;
    int rc = simple(x, c, argc, argv, "POST", "/api/v1/admin/backup", SLOW_TIMEOUT_MS, &resp);
    if (rc != 0 || resp == NULL)
        return rc;
    printf("%s\n", json_string_value(json_object_get(resp, "name")));
    json_decref(resp);
    return 0;
}

static int cmd_list_backups(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    json_t *resp = NULL;
    int rc = simple(x, c, argc, argv, "GET", "/api/v1/admin/backups", 0, &resp);
    if (rc != 0 || resp == NULL)
        return rc;
    json_t *list = json_object_get(resp, "backups");
    printf("%zu available backups:\n", json_array_size(list));
    size_t i;
    json_t *b;
    json_array_foreach(list, i, b)
    {
        printf("%s\n", json_string_value(b));
    }
    json_decref(resp);
    return 0;
}

static int cmd_stage_recovery(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    PARSE("", 2, 2);
    int rc = open_cluster(x, o.pos[0], SLOW_TIMEOUT_MS);
    if (rc != 0)
        return rc;
    json_t *body = json_pack("{s:s}", "backup", o.pos[1]);
    json_t *resp = NULL;
    rc = api(x, "POST", "/api/v1/admin/recovery/stage", body, &resp);
    json_decref(body);
    if (rc != 0)
        return rc;
    printf("staged %s\n", json_string_value(json_object_get(resp, "staged")));
    json_decref(resp);
    return 0;
}

static int cmd_print_recovery_tasks(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    PARSE("", 1, 1);
    int rc = open_cluster(x, o.pos[0], 0);
    if (rc != 0)
        return rc;
    struct bo_buf path = BO_BUF_INIT;
    buf_puts(&path, "/api/v1/admin/recovery/tasks?statuses=");
    for (size_t i = 0; i < N_OF(active_states); i++) {
        buf_puts(&path, i ? "," : "");
        buf_puts(&path, active_states[i]);
    }
    json_t *resp = NULL;
    rc = api(x, "GET", buf_str(&path), NULL, &resp);
    bo_buf_release(&path);
    if (rc != 0)
        return rc;
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(resp, "tasks"), i, t)
    {
        json_t *m = flatten_task(t);
        printf("role: %s, env: %s, name: %s, shard: %s, status: %s on %s, task: %s\n",
               json_string_value(json_object_get(m, "role")),
               json_string_value(json_object_get(m, "environment")),
               json_string_value(json_object_get(m, "name")),
               json_string_value(json_object_get(m, "instanceId")),
               json_string_value(json_object_get(m, "status")),
               json_string_value(json_object_get(m, "slaveHost")),
               json_string_value(json_object_get(m, "taskId")));
        json_decref(m);
    }
    json_decref(resp);
    return 0;
}

static int cmd_delete_recovery_tasks(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    PARSE("", 2, 2);
    json_t *ids = json_array();
    for (const char *p = o.pos[1];;) {
        size_t len = strcspn(p, ",");
        if (len > 0)
            json_array_append_new(ids, json_stringn(p, len));
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    if (json_array_size(ids) == 0) {
        json_decref(ids);
        return fail(BO_EXIT_INVALID_PARAMETER, "%s: no task ids given", c->name);
    }
    int rc = open_cluster(x, o.pos[0], 0);
    json_t *body = json_pack("{s:o}", "task_ids", ids);
    json_t *resp = NULL;
    if (rc == 0)
        rc = api(x, "POST", "/api/v1/admin/recovery/delete", body, &resp);
    json_decref(body);
    if (rc != 0)
        return rc;
    printf("deleted %lld tasks from the staged recovery\n",
           (long long)json_integer_value(json_object_get(resp, "deleted")));
    json_decref(resp);
    return 0;
}

static int cmd_commit_recovery(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    json_t *resp = NULL;
    int rc =
        simple(x, c, argc, argv, "POST", "/api/v1/admin/recovery/commit", SLOW_TIMEOUT_MS, &resp);
    if (rc != 0 || resp == NULL)
        return rc;
    const char *m = json_string_value(json_object_get(resp, "committed"));
    printf("committed: %s\n", m ? m : "the scheduler restarts on the recovered state");
    json_decref(resp);
    return 0;
}

static int cmd_unload_recovery(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    int rc = simple(x, c, argc, argv, "POST", "/api/v1/admin/recovery/unload", 0, NULL);
    if (rc == 0)
        printf("unloaded the staged recovery\n");
    return rc;
}

static int cmd_snapshot(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    json_t *resp = NULL;
    int rc = simple(x, c, argc, argv, "POST", "/api/v1/admin/snapshot", SLOW_TIMEOUT_MS, &resp);
    if (rc != 0 || resp == NULL)
        return rc;
    const char *m = json_string_value(json_object_get(resp, "name"));
    printf("%s\n", m ? m : "snapshot taken");
    json_decref(resp);
    return 0;
}

static int cmd_reconcile(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    PARSE(OPT_RECONC, 1, 1);
    if (o.type != NULL && strcmp(o.type, "explicit") != 0) {
        if (strcmp(o.type, "implicit") == 0)
            return fail(BO_EXIT_INVALID_PARAMETER,
                        "reconcile_tasks: implicit reconciliation is not supported; agents "
                        "report every task when they register");
        return fail(BO_EXIT_INVALID_PARAMETER,
                    "reconcile_tasks: --type must be 'explicit' or 'implicit', not '%s'", o.type);
    }
    long long batch;
    if (o.batch != NULL && (bo_flags_uint(o.batch, 1000000, &batch) != 0 || batch == 0))
        return fail(BO_EXIT_INVALID_PARAMETER,
                    "reconcile_tasks: --batch_size must be a positive integer, not '%s'", o.batch);
    int rc = open_cluster(x, o.pos[0], 0);
    if (rc == 0)
        rc = api(x, "POST", "/api/v1/admin/reconcile", NULL, NULL);
    if (rc == 0)
        printf("explicit reconciliation triggered\n");
    return rc;
}

/* ---- hosts ---- */

/* Aurora logs these with its one-word level prefix ("INFO] "), and scripts
 * read the mode as the sixth field of the line; keep both. */
static void print_host_modes(json_t *resp)
{
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(resp, "hosts"), i, h)
    {
        printf("INFO] %s is in state: %s\n", json_string_value(json_object_get(h, "host")),
               json_string_value(json_object_get(h, "mode")));
    }
}

static int host_cmd(struct ctx *x, const struct cmd *c, int argc, char **argv, const char *route)
{
    PARSE(OPT_HOSTS, 1, 1);
    json_t *hosts;
    int rc = get_hosts(c->name, o.hosts, o.filename, &hosts);
    if (rc != 0)
        return rc;
    rc = open_cluster(x, o.pos[0], 0);
    if (rc != 0) {
        json_decref(hosts);
        return rc;
    }
    json_t *resp = NULL;
    if (route != NULL) {
        json_t *body = json_pack("{s:O}", "hosts", hosts);
        rc = api(x, "POST", route, body, &resp);
        json_decref(body);
    } else {
        struct bo_buf path = BO_BUF_INIT;
        struct bo_buf list = BO_BUF_INIT;
        size_t i;
        json_t *h;
        json_array_foreach(hosts, i, h)
        {
            buf_puts(&list, i ? "," : "");
            buf_puts(&list, json_string_value(h));
        }
        buf_puts(&path, "/api/v1/maintenance");
        qs_add(&path, "hosts", buf_str(&list));
        rc = api(x, "GET", buf_str(&path), NULL, &resp);
        bo_buf_release(&path);
        bo_buf_release(&list);
    }
    json_decref(hosts);
    if (rc != 0)
        return rc;
    print_host_modes(resp);
    json_decref(resp);
    return 0;
}

static int cmd_host_deactivate(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    return host_cmd(x, c, argc, argv, "/api/v1/maintenance/start");
}

static int cmd_host_activate(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    return host_cmd(x, c, argc, argv, "/api/v1/maintenance/end");
}

static int cmd_host_status(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    return host_cmd(x, c, argc, argv, NULL);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int run_script(const char *script, const char *host)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execl(script, script, host, (char *)NULL);
        fprintf(stderr, PROG ": cannot run '%s': %s\n", script, strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int wait_drained(struct ctx *x, const char *host, uint64_t deadline)
{
    struct bo_buf path = BO_BUF_INIT;
    buf_puts(&path, "/api/v1/maintenance");
    qs_add(&path, "hosts", host);
    const char *p = buf_str(&path);
    uint64_t start = mono_ms();
    int rc = 0;
    for (;;) {
        json_t *resp = NULL;
        rc = api(x, "GET", p, NULL, &resp);
        if (rc != 0)
            break;
        const char *mode = json_string_value(
            json_object_get(json_array_get(json_object_get(resp, "hosts"), 0), "mode"));
        bool done = mode != NULL && strcmp(mode, "DRAINED") == 0;
        char m[32];
        snprintf(m, sizeof(m), "%s", mode ? mode : "?");
        json_decref(resp);
        if (done)
            break;
        if (mono_ms() >= deadline) {
            bo_client_progress_done();
            rc = fail(BO_EXIT_TIMEOUT,
                      "host_drain: '%s' is still %s: its tasks did not all end "
                      "in time (--drain_timeout)",
                      host, m);
            break;
        }
        bo_client_progress("draining %s: %s for %llu s", host, m,
                           (unsigned long long)((mono_ms() - start) / 1000));
        struct timespec ts = {0, 250 * 1000000L};
        nanosleep(&ts, NULL);
    }
    bo_client_progress_done();
    bo_buf_release(&path);
    return rc;
}

static int cmd_host_drain(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    PARSE(OPT_DRAIN, 1, 1);
    if (o.grouping != NULL && strcmp(o.grouping, "by_host") != 0)
        return fail(BO_EXIT_INVALID_PARAMETER,
                    "host_drain: unknown grouping '%s' (only by_host is supported)", o.grouping);
    int64_t timeout = 5 * 60 * 1000;
    if (o.drain_timeout != NULL && bo_flags_duration_ms(o.drain_timeout, &timeout) != 0)
        return fail(BO_EXIT_INVALID_PARAMETER, "host_drain: bad --drain_timeout '%s'",
                    o.drain_timeout);
    json_t *hosts;
    int rc = get_hosts(c->name, o.hosts, o.filename, &hosts);
    if (rc != 0)
        return rc;
    rc = open_cluster(x, o.pos[0], 0);
    /* All of them into maintenance first, so tasks drained from the first
     * batch do not land on hosts of the next ones (Aurora does the same). */
    json_t *body = json_pack("{s:O}", "hosts", hosts);
    if (rc == 0)
        rc = api(x, "POST", "/api/v1/maintenance/start", body, NULL);
    json_decref(body);
    bool script_failed = false;
    size_t i;
    json_t *h;
    json_array_foreach(hosts, i, h)
    {
        if (rc != 0)
            break;
        const char *host = json_string_value(h);
        body = json_pack("{s:[s]}", "hosts", host);
        rc = api(x, "POST", "/api/v1/maintenance/drain", body, NULL);
        json_decref(body);
        if (rc == 0)
            rc = wait_drained(x, host, mono_ms() + (uint64_t)timeout);
        if (rc == 0 && o.post_drain != NULL) {
            int st = run_script(o.post_drain, host);
            if (st != 0) {
                fprintf(stderr, PROG " host_drain: '%s %s' exited %d\n", o.post_drain, host, st);
                script_failed = true;
            }
        }
    }
    if (rc == 0) {
        struct bo_buf path = BO_BUF_INIT, list = BO_BUF_INIT;
        json_array_foreach(hosts, i, h)
        {
            buf_puts(&list, i ? "," : "");
            buf_puts(&list, json_string_value(h));
        }
        buf_puts(&path, "/api/v1/maintenance");
        qs_add(&path, "hosts", buf_str(&list));
        json_t *resp = NULL;
        rc = api(x, "GET", buf_str(&path), NULL, &resp);
        if (rc == 0)
            print_host_modes(resp);
        json_decref(resp);
        bo_buf_release(&path);
        bo_buf_release(&list);
    }
    json_decref(hosts);
    if (rc == 0 && script_failed)
        rc = BO_EXIT_COMMAND_FAILURE;
    return rc;
}

/* ---- cluster ---- */

static int cmd_get_scheduler(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    PARSE("", 1, 1);
    int rc = open_cluster(x, o.pos[0], 0);
    json_t *resp = NULL;
    if (rc == 0)
        rc = api(x, "GET", "/api/v1/info", NULL, &resp);
    if (rc != 0)
        return rc;
    const char *leader = json_string_value(json_object_get(resp, "leader_url"));
    if (leader == NULL && json_is_true(json_object_get(resp, "leader")))
        leader = bo_client_url(x->cl);
    if (leader == NULL) {
        json_decref(resp);
        return fail(BO_EXIT_NETWORK_ERROR,
                    "get_scheduler: no leading scheduler is known "
                    "to %s right now",
                    bo_client_url(x->cl));
    }
    printf("%s\n", leader);
    json_decref(resp);
    return 0;
}

static void shell_quote(const char *s)
{
    putchar('\'');
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", stdout);
        else
            putchar(*s);
    }
    putchar('\'');
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmd_get_cluster_config(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    PARSE(OPT_CONFIG, 1, 1);
    struct bo_err err = BO_ERR_INIT;
    int rc = bo_cluster_find(o.pos[0], &x->cluster, &err);
    if (rc != BO_OK)
        return fail(rc == BO_ENOTFOUND && strncmp(err.msg, "unknown cluster", 15) == 0
                        ? BO_EXIT_INVALID_PARAMETER
                        : BO_EXIT_INVALID_CONFIG,
                    "%s", bo_err_msg(&err, rc));
    if (!o.sh && !o.export) {
        char *s = json_dumps(x->cluster.entry, JSON_INDENT(2) | JSON_SORT_KEYS);
        printf("%s\n", s ? s : "{}");
        free(s);
        return 0;
    }
    const char *k;
    json_t *v;
    const char *keys[128];
    size_t n = 0;
    json_object_foreach(x->cluster.entry, k, v)
    {
        if (n < N_OF(keys))
            keys[n++] = k;
    }
    qsort(keys, n, sizeof(keys[0]), cmp_str);
    for (size_t i = 0; i < n; i++) {
        k = keys[i];
        v = json_object_get(x->cluster.entry, k);
        if (o.export)
            fputs("export ", stdout);
        for (const char *p = k; *p; p++) {
            char ch = *p;
            if (ch >= 'a' && ch <= 'z')
                ch = (char)(ch - 'a' + 'A');
            else if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')))
                ch = '_';
            putchar(ch);
        }
        putchar('=');
        json_t *s;
        if (json_is_array(v)) {
            struct bo_buf b = BO_BUF_INIT;
            size_t j;
            json_t *e;
            json_array_foreach(v, j, e)
            {
                json_t *l = leaf_string(e);
                buf_puts(&b, j ? "," : "");
                buf_puts(&b, json_string_value(l) ? json_string_value(l) : "");
                json_decref(l);
            }
            shell_quote(b.len ? buf_str(&b) : "");
            bo_buf_release(&b);
        } else {
            s = leaf_string(v);
            shell_quote(json_string_value(s) ? json_string_value(s) : "");
            json_decref(s);
        }
        putchar('\n');
    }
    return 0;
}

/* ---- help and the command table ---- */

static int cmd_help(struct ctx *x, const struct cmd *c, int argc, char **argv);

#define HOSTS_USAGE "{--filename=FILE | --hosts=HOST[,HOST...]}"

static const struct cmd commands[] = {
    {"get_cluster_config", cmd_get_cluster_config, "get_cluster_config [--sh] [--export] CLUSTER",
     "Print the cluster's entry of clusters.json: as JSON, or with --sh as shell\n"
     "variables (NAME='value'; lists joined with commas), with --export as export lines."},
    {"get_scheduler", cmd_get_scheduler, "get_scheduler CLUSTER",
     "Print the URL of the leading scheduler (GET /api/v1/info)."},
    {"help", cmd_help, "help [COMMAND]", "List the commands, or describe one."},
    {"host_activate", cmd_host_activate, "host_activate " HOSTS_USAGE " CLUSTER",
     "Take hosts out of maintenance (mode NONE): they take tasks again.\n"
     "POST /api/v1/maintenance/end. Prints '<host> is in state: <MODE>' per host."},
    {"host_deactivate", cmd_host_deactivate, "host_deactivate " HOSTS_USAGE " CLUSTER",
     "Put hosts into maintenance (mode SCHEDULED): they are used only when no other\n"
     "host fits. POST /api/v1/maintenance/start."},
    {"host_drain", cmd_host_drain,
     "host_drain " HOSTS_USAGE " [--post_drain_script=PATH] [--grouping=by_host]\n"
     "                  [--drain_timeout=DUR] CLUSTER",
     "Put every host into maintenance, then drain them one at a time: the host's\n"
     "tasks are killed and rescheduled elsewhere, and the command waits until the host\n"
     "is DRAINED (at most --drain_timeout, 5m by default; exit 9 past it). After each\n"
     "host, PATH runs with the host name as its argument. The hosts stay in\n"
     "maintenance: host_activate ends it. No SLA checks (--override_* are refused).\n"
     "POST /api/v1/maintenance/start, /api/v1/maintenance/drain, GET /api/v1/maintenance."},
    {"host_status", cmd_host_status, "host_status " HOSTS_USAGE " CLUSTER",
     "Print each host's maintenance mode: 'INFO] <host> is in state: <MODE>' with MODE\n"
     "one of NONE, SCHEDULED, DRAINING, DRAINED. GET /api/v1/maintenance?hosts=..."},
    {"increase_quota", cmd_increase_quota, "increase_quota CLUSTER ROLE CPU RAM DISK",
     "Add to a role's quota. RAM and DISK are sizes: 512m, 2g, 1t (a bare number is MB).\n"
     "POST /api/v1/quotas/ROLE/increase."},
    {"prune_tasks", cmd_prune_tasks,
     "prune_tasks [--states=S,...] [--role=R] [--env=E] [--job=J] [--limit=N] CLUSTER",
     "Delete terminal tasks from the scheduler for good (states: FINISHED, FAILED,\n"
     "KILLED, LOST; all four by default). POST /api/v1/admin/prune."},
    {"query", cmd_query,
     "query [--force] [--shards=N[,N...]] [--states=S[,S...]] [-l FORMAT] CLUSTER [ROLE [JOB]]",
     "Print the tasks that match, one line each, by FORMAT (default\n"
     "'%role%/%name%/%instanceId% %status%'). %field% is any field of the task,\n"
     "nested or not, by its JSON or camelCase name: %taskId%, %instanceId%, %status%,\n"
     "%host%, %slaveId%, %role%, %environment%, %name%, %failureCount%, ...\n"
     "--states defaults to RUNNING; --shards takes ids and ranges (0-2,5).\n"
     "--force is needed without a ROLE, without a JOB, or for states that are not\n"
     "active. GET /api/v1/tasks."},
    {"reconcile_tasks", cmd_reconcile,
     "reconcile_tasks [-t|--type=explicit] [-b|--batch_size=N] CLUSTER",
     "Ask every registered agent to report all its tasks again.\n"
     "Only explicit reconciliation exists; --batch_size is accepted and ignored.\n"
     "POST /api/v1/admin/reconcile."},
    {"scheduler_backup_now", cmd_backup_now, "scheduler_backup_now CLUSTER",
     "Write a backup now and print its name. POST /api/v1/admin/backup."},
    {"scheduler_commit_recovery", cmd_commit_recovery, "scheduler_commit_recovery CLUSTER",
     "Replace the scheduler's state by the staged backup; the leader then exits and\n"
     "its supervisor restarts it. POST /api/v1/admin/recovery/commit."},
    {"scheduler_delete_recovery_tasks", cmd_delete_recovery_tasks,
     "scheduler_delete_recovery_tasks CLUSTER TASK_ID[,TASK_ID...]",
     "Delete tasks from the staged backup. POST /api/v1/admin/recovery/delete."},
    {"scheduler_list_backups", cmd_list_backups, "scheduler_list_backups CLUSTER",
     "List the backups of the scheduler that answers, oldest first.\n"
     "GET /api/v1/admin/backups."},
    {"scheduler_print_recovery_tasks", cmd_print_recovery_tasks,
     "scheduler_print_recovery_tasks CLUSTER",
     "Print the active tasks of the staged backup.\n"
     "GET /api/v1/admin/recovery/tasks."},
    {"scheduler_snapshot", cmd_snapshot, "scheduler_snapshot CLUSTER",
     "Take a snapshot of the replicated log now and wait for it.\n"
     "POST /api/v1/admin/snapshot."},
    {"scheduler_stage_recovery", cmd_stage_recovery, "scheduler_stage_recovery CLUSTER BACKUP",
     "Load a backup (a name from scheduler_list_backups) for inspection and recovery.\n"
     "POST /api/v1/admin/recovery/stage."},
    {"scheduler_unload_recovery", cmd_unload_recovery, "scheduler_unload_recovery CLUSTER",
     "Drop the staged backup. POST /api/v1/admin/recovery/unload."},
    {"set_quota", cmd_set_quota, "set_quota CLUSTER ROLE CPU RAM DISK",
     "Set a role's quota. RAM and DISK are sizes: 512m, 2g, 1t (a bare number is MB).\n"
     "PUT /api/v1/quotas/ROLE."},
};

static void print_usage(FILE *f)
{
    fprintf(f, "usage: " PROG " [-v] COMMAND [options] ARGS\n\nCommands:\n");
    for (size_t i = 0; i < N_OF(commands); i++)
        fprintf(f, "  %s\n", commands[i].usage);
    fprintf(f, "\n'" PROG " help COMMAND' or '" PROG " COMMAND --help' describes one.\n"
               "Clusters come from clusters.json (docs/client.md); $BOREALIS_CLUSTERS names\n"
               "an extra file.\n"
               "Exit codes: 0 ok, 3 bad clusters.json, 4 command failure, 5 bad command,\n"
               "6 bad parameter, 7 network error, 9 timeout, 10 API error.\n");
}

static const struct cmd *find_cmd(const char *name)
{
    for (size_t i = 0; i < N_OF(commands); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int cmd_help(struct ctx *x, const struct cmd *c, int argc, char **argv)
{
    PARSE("", 0, 1);
    if (o.npos == 0) {
        print_usage(stdout);
        return 0;
    }
    const struct cmd *h = find_cmd(o.pos[0]);
    if (h == NULL)
        return fail(BO_EXIT_INVALID_COMMAND, "help: unknown command '%s'", o.pos[0]);
    print_help(stdout, h);
    return 0;
}

int main(int argc, char **argv)
{
    struct ctx x = {.timeout_ms = 30000};
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
            x.verbose = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            print_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, PROG ": unknown option '%s'\n", argv[i]);
            print_usage(stderr);
            return BO_EXIT_INVALID_COMMAND;
        }
    }
    if (i == argc) {
        print_usage(stderr);
        return BO_EXIT_INVALID_COMMAND;
    }
    const struct cmd *c = find_cmd(argv[i]);
    if (c == NULL) {
        fprintf(stderr, PROG ": unknown command '%s'\n", argv[i]);
        print_usage(stderr);
        return BO_EXIT_INVALID_COMMAND;
    }
    int rc = c->run(&x, c, argc - i, argv + i);
    fflush(stdout);
    bo_client_close(x.cl);
    bo_cluster_release(&x.cluster);
    return rc;
}
