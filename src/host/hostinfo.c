/*
 * hostinfo.c - host resources, attributes, ports, agent id, role -> user.
 *
 * Happy path: bo_host_detect asks sysconf for online cpus, sysinfo for total
 * ram and statvfs for the work directory's file system, then lowers cpus and
 * ram to the agent's own cgroup limits (bo_cg_self_limits), so an agent
 * started inside a container does not advertise the whole machine. The
 * parsers walk the command-line text once, item by item (items split on ',',
 * name and value on the first '='), check every character against a small
 * whitelist and build the JSON only when the whole text is valid. The agent id
 * is read from `<work>/agent_id` or made from 8 bytes of getrandom() and
 * written with bo_fs_write_atomic, so a crash never leaves half an id.
 * bo_host_resolve_user applies the documented rule (hostinfo.h) with the
 * reentrant getpwnam_r and, when allowed, runs useradd with posix_spawn and a
 * fixed PATH, capturing its stderr through a pipe.
 *
 * Failure modes: every malformed input is BO_EINVAL naming the offending item
 * in quotes. A corrupt agent_id file is BO_ECORRUPT and is not replaced: the
 * operator decides (an agent that silently changes its id would orphan its
 * tasks at the scheduler). useradd failing is BO_EIO carrying its exit status
 * and first line(s) of stderr, unless the user exists afterwards anyway (a
 * concurrent creation of the same user), which counts as success. Signals are
 * reset to default and unblocked in the useradd child, since the agent's
 * threads may block some.
 */
#include "host/hostinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/mem.h"
#include "host/cgroup.h"

#define MIB (1024ULL * 1024ULL)

/* How much of useradd's stderr goes into the error message. */
#define STDERR_KEEP 200

/* ---- resources ---- */

int bo_host_detect(const char *work_dir, struct bo_host_resources *out, struct bo_err *err)
{
    struct bo_host_resources r;
    memset(&r, 0, sizeof(r));

    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1) {
        ncpu = 1;
    }
    struct sysinfo si;
    if (sysinfo(&si) != 0) {
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "sysinfo: %s", strerror(e));
    }
    uint64_t ram = (uint64_t)si.totalram * (si.mem_unit > 0 ? si.mem_unit : 1);
    struct statvfs sv;
    if (statvfs(work_dir, &sv) != 0) {
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "statvfs '%s': %s", work_dir, strerror(e));
    }
    uint64_t disk;
    if (__builtin_mul_overflow((uint64_t)sv.f_blocks, (uint64_t)sv.f_frsize, &disk)) {
        disk = UINT64_MAX;
    }
    if (gethostname(r.hostname, sizeof(r.hostname) - 1) != 0 || r.hostname[0] == '\0') {
        snprintf(r.hostname, sizeof(r.hostname), "localhost");
    }
    r.hostname[sizeof(r.hostname) - 1] = '\0';

    uint64_t cg_mem;
    double cg_cpus;
    bo_cg_self_limits(&cg_mem, &cg_cpus);
    r.cpus = (double)ncpu;
    if (cg_cpus > 0 && cg_cpus < r.cpus) {
        r.cpus = cg_cpus;
    }
    if (cg_mem < ram) {
        ram = cg_mem;
    }
    r.ram_mib = ram / MIB;
    r.disk_mib = disk / MIB;
    *out = r;
    return BO_OK;
}

/* ---- text helpers ---- */

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

static bool is_value_char(char c)
{
    return c > ' ' && c <= '~' && c != ',' && c != ';' && c != '=';
}

bool bo_host_safe_user_name(const char *s)
{
    if (s == NULL || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) {
        return false;
    }
    size_t i = 1;
    for (; s[i] != '\0'; i++) {
        char c = s[i];
        if (i > BO_HOST_USER_MAX - 1 ||
            !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

/* One "name=value" item of a comma-separated list, as NUL-terminated copies
 * inside the caller's scratch string. */
struct item {
    char *name;
    char *value;
};

/* Split the next item off *cursor (a mutable copy of the spec). Returns false
 * at the end. An item without '=' gets value NULL. */
static bool next_item(char **cursor, struct item *it)
{
    char *p = *cursor;
    if (p == NULL) {
        return false;
    }
    char *comma = strchr(p, ',');
    if (comma != NULL) {
        *comma = '\0';
        *cursor = comma + 1;
    } else {
        *cursor = NULL;
    }
    it->name = p;
    char *eq = strchr(p, '=');
    it->value = NULL;
    if (eq != NULL) {
        *eq = '\0';
        it->value = eq + 1;
    }
    return true;
}

static bool valid_attr_name(const char *s)
{
    if (s[0] == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (!is_name_char(*s)) {
            return false;
        }
    }
    return true;
}

/* "v1;v2" into a new array; BO_EINVAL on a bad or duplicate value. */
static int parse_values(char *value, json_t **out, struct bo_err *err, const char *name)
{
    json_t *arr = json_array();
    if (arr == NULL) {
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    char *p = value;
    for (;;) {
        char *semi = strchr(p, ';');
        if (semi != NULL) {
            *semi = '\0';
        }
        bool ok = p[0] != '\0';
        for (const char *c = p; ok && *c != '\0'; c++) {
            ok = is_value_char(*c);
        }
        if (!ok) {
            json_decref(arr);
            return bo_errf(err, BO_EINVAL, "attribute '%s': bad value '%s'", name, p);
        }
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v)
        {
            if (strcmp(json_string_value(v), p) == 0) {
                json_decref(arr);
                return bo_errf(err, BO_EINVAL, "attribute '%s': duplicate value '%s'", name, p);
            }
        }
        if (json_array_append_new(arr, json_string(p)) != 0) {
            json_decref(arr);
            return bo_errf(err, BO_ENOMEM, "out of memory");
        }
        if (semi == NULL) {
            break;
        }
        p = semi + 1;
    }
    *out = arr;
    return BO_OK;
}

int bo_host_parse_attributes(const char *spec, const char *hostname, json_t **out,
                             struct bo_err *err)
{
    json_t *obj = json_object();
    char *copy = bo_strdup(spec != NULL ? spec : "");
    int rv = BO_OK;
    if (obj == NULL || copy == NULL) {
        rv = bo_errf(err, BO_ENOMEM, "parse attributes: out of memory");
        goto out;
    }
    char *cursor = copy[0] != '\0' ? copy : NULL;
    struct item it;
    while (next_item(&cursor, &it)) {
        if (it.value == NULL || !valid_attr_name(it.name)) {
            rv = bo_errf(err, BO_EINVAL, "parse attributes: bad item '%s'%s", it.name,
                         it.value == NULL ? " (want name=value)" : "");
            goto out;
        }
        if (json_object_get(obj, it.name) != NULL) {
            rv = bo_errf(err, BO_EINVAL, "parse attributes: duplicate attribute '%s'", it.name);
            goto out;
        }
        json_t *values = NULL;
        rv = parse_values(it.value, &values, err, it.name);
        if (rv != BO_OK) {
            bo_err_wrapf(err, rv, "parse attributes");
            goto out;
        }
        if (json_object_set_new(obj, it.name, values) != 0) {
            rv = bo_errf(err, BO_ENOMEM, "parse attributes: out of memory");
            goto out;
        }
    }
    if (json_object_get(obj, "host") == NULL && hostname != NULL && hostname[0] != '\0') {
        if (json_object_set_new(obj, "host", json_pack("[s]", hostname)) != 0) {
            rv = bo_errf(err, BO_EINVAL, "parse attributes: bad host name '%s'", hostname);
            goto out;
        }
    }
    *out = obj;
    obj = NULL;
out:
    json_decref(obj);
    bo_free(copy);
    return rv;
}

/* ---- ports ---- */

struct range {
    long lo;
    long hi;
};

/* A decimal port 1..65535, digits only. */
static bool parse_port(const char *s, size_t len, long *out)
{
    if (len == 0 || len > 5) {
        return false;
    }
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535) {
        return false;
    }
    *out = v;
    return true;
}

static int cmp_range(const void *a, const void *b)
{
    const struct range *x = a, *y = b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

int bo_host_parse_ports(const char *spec, json_t **out, struct bo_err *err)
{
    struct range *v = NULL;
    size_t n = 0, cap = 0;
    json_t *arr = NULL;
    int rv = BO_OK;
    const char *p = spec != NULL ? spec : "";
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        const char *dash = memchr(p, '-', len);
        struct range r;
        bool ok = dash == NULL ? parse_port(p, len, &r.lo)
                               : parse_port(p, (size_t)(dash - p), &r.lo) &&
                                     parse_port(dash + 1, len - (size_t)(dash - p) - 1, &r.hi);
        if (dash == NULL) {
            r.hi = r.lo;
        }
        if (!ok || r.lo > r.hi) {
            rv = bo_errf(err, BO_EINVAL, "parse ports: bad range '%.*s'", (int)len, p);
            goto out;
        }
        if (n == cap) {
            size_t ncap = cap == 0 ? 8 : cap * 2;
            struct range *nv = bo_reallocarray(v, ncap, sizeof(*v));
            if (nv == NULL) {
                rv = bo_errf(err, BO_ENOMEM, "parse ports: out of memory");
                goto out;
            }
            v = nv;
            cap = ncap;
        }
        v[n++] = r;
        p += len;
        if (*p == ',') {
            p++;
            if (*p == '\0') {
                rv = bo_errf(err, BO_EINVAL, "parse ports: trailing ','");
                goto out;
            }
        }
    }
    if (n > 0) {
        qsort(v, n, sizeof(*v), cmp_range);
    }
    for (size_t i = 1; i < n; i++) {
        if (v[i].lo <= v[i - 1].hi) {
            rv = bo_errf(err, BO_EINVAL, "parse ports: ranges %ld-%ld and %ld-%ld overlap",
                         v[i - 1].lo, v[i - 1].hi, v[i].lo, v[i].hi);
            goto out;
        }
    }
    arr = json_array();
    if (arr == NULL) {
        rv = bo_errf(err, BO_ENOMEM, "parse ports: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(
                arr, json_pack("[I,I]", (json_int_t)v[i].lo, (json_int_t)v[i].hi)) != 0) {
            rv = bo_errf(err, BO_ENOMEM, "parse ports: out of memory");
            goto out;
        }
    }
    *out = arr;
    arr = NULL;
out:
    json_decref(arr);
    bo_free(v);
    return rv;
}

/* ---- agent id ---- */

static int new_agent_id(const char *work_dir, char *out, struct bo_err *err)
{
    uint8_t rnd[8];
    size_t got = 0;
    while (got < sizeof(rnd)) {
        ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int e = errno;
            return bo_errf(err, BO_EIO, "getrandom: %s", strerror(e));
        }
        got += (size_t)n;
    }
    char id[BO_HOST_AGENT_ID_MAX + 2];
    int len = snprintf(id, sizeof(id), "agent-");
    for (size_t i = 0; i < sizeof(rnd); i++) {
        len += snprintf(id + len, sizeof(id) - (size_t)len, "%02x", rnd[i]);
    }
    id[len] = '\n';
    struct iovec iov = {id, (size_t)len + 1};
    int rv = bo_fs_write_atomic(work_dir, "agent_id", ".tmp-", &iov, 1, err);
    if (rv != BO_OK) {
        return bo_err_wrapf(err, rv, "save agent id");
    }
    memcpy(out, id, (size_t)len);
    out[len] = '\0';
    return BO_OK;
}

int bo_host_agent_id(const char *work_dir, char *out, struct bo_err *err)
{
    char path[PATH_MAX];
    if (bo_fs_join(path, sizeof(path), work_dir, "agent_id") != BO_OK) {
        return bo_errf(err, BO_ETOOBIG, "agent id: path too long: '%s'", work_dir);
    }
    uint8_t *data;
    size_t len;
    struct bo_err rerr = BO_ERR_INIT;
    int rv = bo_fs_read_file(path, &data, &len, &rerr);
    if (rv == BO_ENOTFOUND) {
        return new_agent_id(work_dir, out, err);
    }
    if (rv != BO_OK) {
        return bo_errf(err, rv, "agent id: %s", bo_err_msg(&rerr, rv));
    }
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r')) {
        len--;
    }
    bool ok = len > 0 && len <= BO_HOST_AGENT_ID_MAX;
    for (size_t i = 0; ok && i < len; i++) {
        ok = is_name_char((char)data[i]);
    }
    if (ok) {
        memcpy(out, data, len);
        out[len] = '\0';
    }
    bo_free(data);
    if (!ok) {
        return bo_errf(err, BO_ECORRUPT,
                       "agent id: '%s' does not hold an id ([A-Za-z0-9_.-], 1-%d characters)", path,
                       BO_HOST_AGENT_ID_MAX);
    }
    return BO_OK;
}

/* ---- users ---- */

int bo_host_parse_user_map(const char *spec, json_t **out, struct bo_err *err)
{
    json_t *obj = json_object();
    char *copy = bo_strdup(spec != NULL ? spec : "");
    int rv = BO_OK;
    if (obj == NULL || copy == NULL) {
        rv = bo_errf(err, BO_ENOMEM, "parse user map: out of memory");
        goto out;
    }
    char *cursor = copy[0] != '\0' ? copy : NULL;
    struct item it;
    while (next_item(&cursor, &it)) {
        if (!bo_host_safe_user_name(it.name)) {
            rv = bo_errf(err, BO_EINVAL, "parse user map: bad role '%s'", it.name);
            goto out;
        }
        if (it.value == NULL || !bo_host_safe_user_name(it.value)) {
            rv = bo_errf(err, BO_EINVAL, "parse user map: role '%s': bad user '%s'", it.name,
                         it.value != NULL ? it.value : "");
            goto out;
        }
        if (json_object_get(obj, it.name) != NULL) {
            rv = bo_errf(err, BO_EINVAL, "parse user map: duplicate role '%s'", it.name);
            goto out;
        }
        if (json_object_set_new(obj, it.name, json_string(it.value)) != 0) {
            rv = bo_errf(err, BO_ENOMEM, "parse user map: out of memory");
            goto out;
        }
    }
    *out = obj;
    obj = NULL;
out:
    json_decref(obj);
    bo_free(copy);
    return rv;
}

/* getpwnam_r into `out`; BO_ENOTFOUND when there is no such user. */
static int lookup_user(const char *name, struct bo_host_user *out, struct bo_err *err)
{
    long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
    size_t size = hint > 0 ? (size_t)hint : 16384;
    for (;;) {
        char *buf = bo_malloc(size);
        if (buf == NULL) {
            return bo_errf(err, BO_ENOMEM, "look up user '%s': out of memory", name);
        }
        struct passwd pw, *res = NULL;
        int e = getpwnam_r(name, &pw, buf, size, &res);
        if (e == 0 && res != NULL) {
            snprintf(out->name, sizeof(out->name), "%s", name);
            out->uid = pw.pw_uid;
            out->gid = pw.pw_gid;
        }
        bo_free(buf);
        if (e == ERANGE && size < (1u << 20)) {
            size *= 4;
            continue;
        }
        if (e != 0 && e != ENOENT && e != ESRCH) {
            return bo_errf(err, BO_EIO, "look up user '%s': %s", name, strerror(e));
        }
        return res != NULL ? BO_OK : BO_ENOTFOUND;
    }
}

static const char *find_useradd(void)
{
    static const char *const paths[] = {"/usr/sbin/useradd", "/sbin/useradd", "/usr/bin/useradd",
                                        "/bin/useradd"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (access(paths[i], X_OK) == 0) {
            return paths[i];
        }
    }
    return NULL;
}

/* Read the child's stderr to EOF, keeping the first STDERR_KEEP bytes. */
static void drain(int fd, char *keep, size_t size)
{
    size_t n = 0;
    char tmp[512];
    for (;;) {
        ssize_t r = read(fd, tmp, sizeof(tmp));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        for (ssize_t i = 0; i < r && n + 1 < size; i++) {
            keep[n++] = tmp[i] == '\n' ? ' ' : tmp[i];
        }
    }
    while (n > 0 && keep[n - 1] == ' ') {
        n--;
    }
    keep[n] = '\0';
}

static int run_useradd(const char *name, struct bo_err *err)
{
    const char *exe = find_useradd();
    if (exe == NULL) {
        return bo_errf(err, BO_ENOTFOUND, "create user '%s': useradd not found", name);
    }
    char *const argv[] = {(char *)"useradd",      (char *)"--system",
                          (char *)"--user-group", (char *)"--no-create-home",
                          (char *)"--shell",      (char *)"/usr/sbin/nologin",
                          (char *)name,           NULL};
    char *const envp[] = {(char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", (char *)"LC_ALL=C", NULL};
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "create user '%s': pipe: %s", name, strerror(e));
    }
    int rv = BO_OK;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    pid_t pid;
    int e = posix_spawn(&pid, exe, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(fds[1]);
    if (e != 0) {
        close(fds[0]);
        return bo_errf(err, bo_err_from_errno(e), "create user '%s': spawn '%s': %s", name, exe,
                       strerror(e));
    }
    char text[STDERR_KEEP + 1];
    drain(fds[0], text, sizeof(text));
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            e = errno;
            return bo_errf(err, BO_EIO, "create user '%s': wait: %s", name, strerror(e));
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return BO_OK;
    }
    if (WIFEXITED(status)) {
        rv = bo_errf(err, BO_EIO, "create user '%s': useradd exited with status %d%s%s", name,
                     WEXITSTATUS(status), text[0] != '\0' ? ": " : "", text);
    } else {
        rv = bo_errf(err, BO_EIO, "create user '%s': useradd killed by signal %d", name,
                     WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
    return rv;
}

int bo_host_resolve_user(const char *role, const json_t *user_map, bool allow_create,
                         struct bo_host_user *out, struct bo_err *err)
{
    if (role == NULL || !bo_host_safe_user_name(role)) {
        return bo_errf(err, BO_EINVAL, "role '%s' is not a valid user name",
                       role != NULL ? role : "(null)");
    }
    const char *name = role;
    json_t *mapped = user_map != NULL ? json_object_get(user_map, role) : NULL;
    if (mapped != NULL) {
        name = json_string_value(mapped);
        if (name == NULL || !bo_host_safe_user_name(name)) {
            return bo_errf(err, BO_EINVAL, "role '%s': bad mapped user", role);
        }
    }
    struct bo_host_user u;
    int rv = lookup_user(name, &u, err);
    if (rv == BO_ENOTFOUND) {
        if (!allow_create) {
            return bo_errf(err, BO_ENOTFOUND, "no local user '%s' for role '%s'", name, role);
        }
        struct bo_err cerr = BO_ERR_INIT;
        int crv = run_useradd(name, &cerr);
        rv = lookup_user(name, &u, err);
        if (rv == BO_ENOTFOUND) {
            return bo_errf(err, crv != BO_OK ? crv : BO_ENOTFOUND, "role '%s': %s", role,
                           crv != BO_OK ? bo_err_msg(&cerr, crv) : "user missing after useradd");
        }
    }
    if (rv != BO_OK) {
        return rv;
    }
    *out = u;
    return BO_OK;
}
