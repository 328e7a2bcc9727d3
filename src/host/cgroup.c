/*
 * cgroup.c - cgroup v1/v2 detection, agent and task groups, limits and kills.
 *
 * Happy path: bo_cg_init parses /proc/self/mountinfo for the `cgroup2` mount
 * and the v1 `cgroup` mounts whose super options name the memory and cpu
 * controllers (co-mounts such as cpu,cpuacct included). A cgroup2 mount whose
 * statfs magic is CGROUP2_SUPER_MAGIC and whose root offers both controllers
 * wins; otherwise v1 is used when both hierarchies are mounted, which is what
 * a hybrid layout (v1 controllers plus an empty cgroup2 at .../unified) gets.
 * The agent root `<hierarchy>/borealis/<tag>` is created (v2: with +memory
 * +cpu enabled in every subtree_control from the mount root down), and a
 * probe group is created inside, given limits and removed: only then is
 * isolation reported available. A task group is one directory per hierarchy;
 * limits are single write()s of decimal text to the control files, as the
 * kernel wants them.
 *
 * Failure modes: anything that fails during init turns into mode BO_CG_NONE
 * and a description naming the step and the errno text, not an error. A task
 * group that fails half-way through creation is removed again. Killing is
 * done in rounds (list, SIGKILL, sleep 10 ms) for up to two seconds because a
 * process can fork while being killed; v2's cgroup.kill does it atomically
 * when present and the rounds then only wait. Removal retries rmdir on EBUSY
 * for up to two seconds because a killed process stays in its group until the
 * kernel has torn it down; groups the task created inside its own are removed
 * depth first. Our own pid is never signalled, even if someone put it in a
 * task group. Everything read from cgroupfs is read until EOF, never by
 * st_size, which is 0 or 4096 there.
 */
#include "host/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/mem.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define FALLBACK_TAIL    "falling back to rlimits and RSS sampling"
#define DRAIN_TIMEOUT_MS 2000
#define DRAIN_SLEEP_MS   10
#define MAX_NESTING      8
#define TASK_ID_MAX      200

/* The mounts bo_cg_init cares about; empty strings when absent. */
struct mounts {
    char v1_mem[PATH_MAX];
    char v1_mem_root[PATH_MAX]; /* the mount's root inside its hierarchy */
    char v1_cpu[PATH_MAX];
    char v1_cpu_root[PATH_MAX];
    char v2[PATH_MAX];
    char v2_root[PATH_MAX];
};

/* ---- small file helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Read a whole (pseudo) file until EOF into `b`, NUL-terminated (the NUL is
 * not counted in b->len). Returns BO_OK or a bo code with errno in *errnum. */
static int read_text(const char *path, struct bo_buf *b, int *errnum)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *errnum = errno;
        return bo_err_from_errno(errno);
    }
    int rv = BO_OK;
    for (;;) {
        if (bo_buf_reserve(b, 4096) != BO_OK) {
            *errnum = ENOMEM;
            rv = BO_ENOMEM;
            break;
        }
        ssize_t n = read(fd, b->data + b->len, b->cap - b->len - 1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            *errnum = errno;
            rv = bo_err_from_errno(errno);
            break;
        }
        if (n == 0) {
            break;
        }
        b->len += (size_t)n;
    }
    close(fd);
    if (rv == BO_OK) {
        b->data[b->len] = '\0';
    }
    return rv;
}

static int read_file_err(const char *path, struct bo_buf *b, struct bo_err *err)
{
    int e = 0;
    int rv = read_text(path, b, &e);
    if (rv != BO_OK) {
        return bo_errf(err, rv, "read '%s': %s", path, strerror(e));
    }
    return BO_OK;
}

/* One write() of `value` to an existing control file; errno on failure. */
static int write_ctl(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno;
    }
    size_t len = strlen(value);
    ssize_t n;
    do {
        n = write(fd, value, len);
    } while (n < 0 && errno == EINTR);
    int e = n < 0 ? errno : ((size_t)n != len ? EIO : 0);
    close(fd);
    return e;
}

static int write_ctl_err(const char *path, const char *value, struct bo_err *err)
{
    int e = write_ctl(path, value);
    if (e != 0) {
        return bo_errf(err, bo_err_from_errno(e), "write '%s' to '%s': %s", value, path,
                       strerror(e));
    }
    return BO_OK;
}

static int join2(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    return n < 0 || n >= PATH_MAX ? BO_ETOOBIG : BO_OK;
}

static bool file_exists(const char *dir, const char *name)
{
    char p[PATH_MAX];
    return join2(p, dir, name) == BO_OK && access(p, F_OK) == 0;
}

static int write_in(const char *dir, const char *name, const char *value, struct bo_err *err)
{
    char p[PATH_MAX];
    if (join2(p, dir, name) != BO_OK) {
        return bo_errf(err, BO_ETOOBIG, "path too long: '%s/%s'", dir, name);
    }
    return write_ctl_err(p, value, err);
}

/* Does a whitespace/comma separated list contain `word` exactly? */
static bool has_word(const char *list, const char *word, const char *seps)
{
    size_t wl = strlen(word);
    const char *p = list;
    while (*p != '\0') {
        size_t n = strcspn(p, seps);
        if (n == wl && strncmp(p, word, wl) == 0) {
            return true;
        }
        p += n;
        p += strspn(p, seps);
    }
    return false;
}

static bool valid_name(const char *s)
{
    size_t n = strnlen(s, TASK_ID_MAX + 1);
    if (n == 0 || n > TASK_ID_MAX || s[0] == '.') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-')) {
            return false;
        }
    }
    return true;
}

/* ---- mountinfo ---- */

/* Copy a mountinfo field, decoding the \ooo octal escapes. */
static void unescape(char *out, size_t size, const char *in, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < size; i++) {
        if (in[i] == '\\' && i + 3 < len && in[i + 1] >= '0' && in[i + 1] <= '3' &&
            in[i + 2] >= '0' && in[i + 2] <= '7' && in[i + 3] >= '0' && in[i + 3] <= '7') {
            out[o++] = (char)((in[i + 1] - '0') * 64 + (in[i + 2] - '0') * 8 + (in[i + 3] - '0'));
            i += 3;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
}

/* Split one mountinfo line into root, mount point, fstype, super options. */
static bool parse_mount_line(char *line, const char **fields, size_t *lens)
{
    /* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
    const char *tok[32];
    size_t tlen[32];
    size_t n = 0;
    char *p = line;
    while (*p != '\0' && n < 32) {
        size_t len = strcspn(p, " ");
        tok[n] = p;
        tlen[n] = len;
        n++;
        p += len;
        p += strspn(p, " ");
    }
    size_t dash = 0;
    for (size_t i = 6; i < n; i++) {
        if (tlen[i] == 1 && tok[i][0] == '-') {
            dash = i;
            break;
        }
    }
    if (dash == 0 || dash + 1 >= n) {
        return false;
    }
    fields[0] = tok[3], lens[0] = tlen[3];               /* root */
    fields[1] = tok[4], lens[1] = tlen[4];               /* mount point */
    fields[2] = tok[dash + 1], lens[2] = tlen[dash + 1]; /* fstype */
    fields[3] = dash + 3 < n ? tok[dash + 3] : "";       /* super options */
    lens[3] = dash + 3 < n ? tlen[dash + 3] : 0;
    return true;
}

static void set_mount(char *mnt, char *root, const char **f, const size_t *l)
{
    unescape(mnt, PATH_MAX, f[1], l[1]);
    unescape(root, PATH_MAX, f[0], l[0]);
}

static int parse_mountinfo(struct mounts *m, struct bo_err *err)
{
    memset(m, 0, sizeof(*m));
    struct bo_buf b = BO_BUF_INIT;
    int rv = read_file_err("/proc/self/mountinfo", &b, err);
    if (rv != BO_OK) {
        bo_buf_release(&b);
        return rv;
    }
    char *save = NULL;
    for (char *line = strtok_r((char *)b.data, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        const char *f[4];
        size_t l[4];
        if (!parse_mount_line(line, f, l)) {
            continue;
        }
        char fstype[32], opts[256];
        unescape(fstype, sizeof(fstype), f[2], l[2]);
        unescape(opts, sizeof(opts), f[3], l[3]);
        if (strcmp(fstype, "cgroup2") == 0) {
            char mnt[PATH_MAX];
            unescape(mnt, sizeof(mnt), f[1], l[1]);
            /* Prefer the canonical location when there are several. */
            if (m->v2[0] == '\0' || strcmp(mnt, "/sys/fs/cgroup") == 0) {
                set_mount(m->v2, m->v2_root, f, l);
            }
        } else if (strcmp(fstype, "cgroup") == 0) {
            /* One mount may carry both (memory,cpu co-mounted). */
            if (has_word(opts, "memory", ",") && m->v1_mem[0] == '\0') {
                set_mount(m->v1_mem, m->v1_mem_root, f, l);
            }
            if (has_word(opts, "cpu", ",") && m->v1_cpu[0] == '\0') {
                set_mount(m->v1_cpu, m->v1_cpu_root, f, l);
            }
        }
    }
    bo_buf_release(&b);
    return BO_OK;
}

/* ---- init ---- */

static int mkdir_one(const char *path, struct bo_err *err)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "mkdir '%s': %s", path, strerror(e));
    }
    return BO_OK;
}

/* mkdir <hier>/borealis and <hier>/borealis/<tag>; the latter into `root`. */
static int make_root(const char *hier, const char *tag, char *root, bool v2, struct bo_err *err)
{
    char parent[PATH_MAX];
    if (join2(parent, hier, "borealis") != BO_OK || join2(root, parent, tag) != BO_OK) {
        return bo_errf(err, BO_ETOOBIG, "path too long under '%s'", hier);
    }
    int rv;
    if (v2 && (rv = write_in(hier, "cgroup.subtree_control", "+memory +cpu", err)) != BO_OK) {
        return rv;
    }
    if ((rv = mkdir_one(parent, err)) != BO_OK) {
        return rv;
    }
    if (v2 && (rv = write_in(parent, "cgroup.subtree_control", "+memory +cpu", err)) != BO_OK) {
        return rv;
    }
    if ((rv = mkdir_one(root, err)) != BO_OK) {
        return rv;
    }
    if (v2 && (rv = write_in(root, "cgroup.subtree_control", "+memory +cpu", err)) != BO_OK) {
        return rv;
    }
    return BO_OK;
}

static int rmdir_err(const char *path, struct bo_err *err)
{
    if (rmdir(path) != 0 && errno != ENOENT) {
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "rmdir '%s': %s", path, strerror(e));
    }
    return BO_OK;
}

/* Can a process be moved into the group? Executors join their task's group
 * first thing; where that is refused (a v2 namespace whose root holds
 * processes, a read-only delegation) the agent must fall back now, not fail
 * every launch later. A short-lived child joins and exits. */
static int probe_join(const char *dir, const char *file, struct bo_err *err)
{
    char p[PATH_MAX];
    if (join2(p, dir, file) != BO_OK) {
        return bo_errf(err, BO_ETOOBIG, "path too long: '%s/%s'", dir, file);
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "fork: %s", strerror(e));
    }
    if (pid == 0) {
        int fd = open(p, O_WRONLY | O_CLOEXEC);
        char num[32];
        int n = snprintf(num, sizeof(num), "%ld", (long)getpid());
        _exit(fd >= 0 && write(fd, num, (size_t)n) == n ? 0 : 1);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return bo_errf(err, BO_EIO, "a process cannot join '%s'", dir);
    }
    return BO_OK;
}

/* Create a probe group in `root`, run the writes, remove it. */
static int probe(struct bo_cg *cg, const char *root, bool mem, bool cpu, struct bo_err *err)
{
    char name[64], dir[PATH_MAX];
    snprintf(name, sizeof(name), ".probe-%ld", (long)getpid());
    if (join2(dir, root, name) != BO_OK) {
        return bo_errf(err, BO_ETOOBIG, "path too long under '%s'", root);
    }
    rmdir(dir); /* left over from a crash */
    if (mkdir(dir, 0755) != 0) {
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "mkdir '%s': %s", dir, strerror(e));
    }
    int rv = BO_OK;
    if (cg->mode == BO_CG_V1) {
        if (mem) {
            rv = write_in(dir, "memory.limit_in_bytes", "-1", err);
            cg->memsw = rv == BO_OK && file_exists(dir, "memory.memsw.limit_in_bytes") &&
                        write_in(dir, "memory.memsw.limit_in_bytes", "-1", NULL) == BO_OK;
        }
        if (rv == BO_OK && cpu) {
            rv = write_in(dir, "cpu.cfs_period_us", "100000", err);
        }
    } else {
        rv = write_in(dir, "memory.max", "max", err);
        if (rv == BO_OK) {
            rv = write_in(dir, "cpu.max", "max 100000", err);
        }
        cg->swap_max = file_exists(dir, "memory.swap.max");
    }
    if (rv == BO_OK) {
        rv = probe_join(dir, cg->mode == BO_CG_V1 ? "tasks" : "cgroup.procs", err);
    }
    int rrv = rmdir_err(dir, rv == BO_OK ? err : NULL);
    return rv != BO_OK ? rv : rrv;
}

/* The description; long paths are truncated, which is fine for a log line. */
static void set_desc(struct bo_cg *cg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_desc(struct bo_cg *cg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cg->desc, sizeof(cg->desc), fmt, ap);
    va_end(ap);
}

static void set_unavailable(struct bo_cg *cg, const char *what, const struct bo_err *why, int code)
{
    cg->mode = BO_CG_NONE;
    cg->memsw = cg->swap_max = false;
    cg->mem_root[0] = cg->cpu_root[0] = '\0';
    set_desc(cg, "%s (%s): " FALLBACK_TAIL, what, bo_err_msg(why, code));
}

static bool v2_usable(const char *mnt)
{
    struct statfs sf;
    if (mnt[0] == '\0' || statfs(mnt, &sf) != 0 ||
        (unsigned long)sf.f_type != CGROUP2_SUPER_MAGIC) {
        return false;
    }
    char p[PATH_MAX];
    struct bo_buf b = BO_BUF_INIT;
    int e;
    bool ok = join2(p, mnt, "cgroup.controllers") == BO_OK && read_text(p, &b, &e) == BO_OK &&
              has_word((char *)b.data, "memory", " \n") && has_word((char *)b.data, "cpu", " \n");
    bo_buf_release(&b);
    return ok;
}

static void init_v2(struct bo_cg *cg, const struct mounts *m, const char *tag)
{
    struct bo_err e = BO_ERR_INIT;
    cg->mode = BO_CG_V2;
    int rv = make_root(m->v2, tag, cg->mem_root, true, &e);
    if (rv == BO_OK) {
        rv = probe(cg, cg->mem_root, true, true, &e);
    }
    if (rv != BO_OK) {
        set_unavailable(cg, "cgroups v2 not writable", &e, rv);
        return;
    }
    memcpy(cg->cpu_root, cg->mem_root, sizeof(cg->cpu_root));
    set_desc(cg, "cgroups v2 (unified at %s): memory and cpu limits enforced%s", m->v2,
             cg->swap_max ? "" : " (no memory.swap.max: swap is not limited)");
}

static void init_v1(struct bo_cg *cg, const struct mounts *m, const char *tag)
{
    struct bo_err e = BO_ERR_INIT;
    cg->mode = BO_CG_V1;
    int rv = make_root(m->v1_mem, tag, cg->mem_root, false, &e);
    if (rv == BO_OK) {
        rv = make_root(m->v1_cpu, tag, cg->cpu_root, false, &e);
    }
    if (rv == BO_OK) {
        rv = probe(cg, cg->mem_root, true, false, &e);
    }
    if (rv == BO_OK) {
        rv = probe(cg, cg->cpu_root, false, true, &e);
    }
    if (rv != BO_OK) {
        set_unavailable(cg, "cgroups not writable", &e, rv);
        return;
    }
    set_desc(cg, "cgroups v1 (memory at %s, cpu at %s): memory and cpu limits enforced%s",
             m->v1_mem, m->v1_cpu, cg->memsw ? "" : " (no memory.memsw: swap is not limited)");
}

int bo_cg_init(struct bo_cg *cg, const char *agent_tag, struct bo_err *err)
{
    if (agent_tag == NULL || !valid_name(agent_tag)) {
        return bo_errf(err, BO_EINVAL, "cgroup init: bad agent tag '%s'",
                       agent_tag != NULL ? agent_tag : "(null)");
    }
    memset(cg, 0, sizeof(*cg));
    struct mounts *m = bo_malloc(sizeof(*m));
    if (m == NULL) {
        return bo_errf(err, BO_ENOMEM, "cgroup init: out of memory");
    }
    struct bo_err e = BO_ERR_INIT;
    int rv = parse_mountinfo(m, &e);
    if (rv != BO_OK) {
        set_unavailable(cg, "cgroups unavailable", &e, rv);
    } else if (v2_usable(m->v2)) {
        init_v2(cg, m, agent_tag);
    } else if (m->v1_mem[0] != '\0' && m->v1_cpu[0] != '\0') {
        init_v1(cg, m, agent_tag);
    } else {
        cg->mode = BO_CG_NONE;
        set_desc(cg, "no usable cgroups (%s%s%s%s%s): " FALLBACK_TAIL,
                 m->v2[0] != '\0' ? "cgroup2 at '" : "no cgroup2 mount",
                 m->v2[0] != '\0' ? m->v2 : "",
                 m->v2[0] != '\0' ? "' lacks the memory or cpu controller" : "",
                 m->v1_mem[0] == '\0' ? "; no v1 memory hierarchy" : "",
                 m->v1_cpu[0] == '\0' ? "; no v1 cpu hierarchy" : "");
    }
    bo_free(m);
    return BO_OK;
}

bool bo_cg_available(const struct bo_cg *cg)
{
    return cg->mode != BO_CG_NONE;
}

const char *bo_cg_describe(const struct bo_cg *cg)
{
    return cg->desc;
}

/* ---- task groups ---- */

/* Paths of group `name` under the roots; cpu equals mem in v2. */
static int group_dirs(const struct bo_cg *cg, const char *name, char *mem, char *cpu,
                      struct bo_err *err)
{
    if (cg->mode == BO_CG_NONE) {
        return bo_errf(err, BO_EINVAL, "cgroups unavailable");
    }
    if (join2(mem, cg->mem_root, name) != BO_OK || join2(cpu, cg->cpu_root, name) != BO_OK) {
        return bo_errf(err, BO_ETOOBIG, "path too long for task group '%s'", name);
    }
    return BO_OK;
}

static int task_dirs(const struct bo_cg *cg, const char *task_id, char *mem, char *cpu,
                     struct bo_err *err)
{
    if (task_id == NULL || !valid_name(task_id)) {
        return bo_errf(err, BO_EINVAL, "bad task id '%s'", task_id != NULL ? task_id : "(null)");
    }
    return group_dirs(cg, task_id, mem, cpu, err);
}

static int set_limits(const struct bo_cg *cg, const char *mem, const char *cpu, uint64_t mem_bytes,
                      double cpus, struct bo_err *err)
{
    char v[64];
    int rv = BO_OK;
    if (mem_bytes > 0) {
        snprintf(v, sizeof(v), "%" PRIu64, mem_bytes);
        if (cg->mode == BO_CG_V1) {
            rv = write_in(mem, "memory.limit_in_bytes", v, err);
            if (rv == BO_OK && cg->memsw) {
                rv = write_in(mem, "memory.memsw.limit_in_bytes", v, err);
            }
        } else {
            /* memory.oom.group stays 0: the executor lives in the task's
             * group too, and must outlive the OOM kill of a process to
             * report it (FAILED "memory limit exceeded") and end the rest. */
            rv = write_in(mem, "memory.max", v, err);
            if (rv == BO_OK && cg->swap_max) {
                rv = write_in(mem, "memory.swap.max", "0", err);
            }
        }
        if (rv != BO_OK) {
            return rv;
        }
    }
    if (cpus > 0) {
        long long quota = (long long)(cpus * BO_CG_CPU_PERIOD_US + 0.5); /* cpus > 0 */
        if (quota < BO_CG_CPU_MIN_QUOTA_US) {
            quota = BO_CG_CPU_MIN_QUOTA_US;
        }
        if (cg->mode == BO_CG_V1) {
            snprintf(v, sizeof(v), "%d", BO_CG_CPU_PERIOD_US);
            rv = write_in(cpu, "cpu.cfs_period_us", v, err);
            snprintf(v, sizeof(v), "%lld", quota);
            if (rv == BO_OK) {
                rv = write_in(cpu, "cpu.cfs_quota_us", v, err);
            }
        } else {
            snprintf(v, sizeof(v), "%lld %d", quota, BO_CG_CPU_PERIOD_US);
            rv = write_in(cpu, "cpu.max", v, err);
        }
    }
    return rv;
}

int bo_cg_task_create(const struct bo_cg *cg, const char *task_id, uint64_t mem_bytes, double cpus,
                      struct bo_cg_task *out, struct bo_err *err)
{
    char mem[PATH_MAX], cpu[PATH_MAX];
    int rv = task_dirs(cg, task_id, mem, cpu, err);
    if (rv != BO_OK) {
        return rv;
    }
    if (!(cpus >= 0 && cpus <= BO_CG_MAX_CPUS)) {
        return bo_errf(err, BO_EINVAL, "create task group '%s': bad cpu count %g", task_id, cpus);
    }
    if (mkdir(mem, 0755) != 0) {
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "create task group: mkdir '%s': %s", mem,
                       strerror(e));
    }
    if (cg->mode == BO_CG_V1 && mkdir(cpu, 0755) != 0) {
        int e = errno;
        rv = bo_errf(err, bo_err_from_errno(e), "create task group: mkdir '%s': %s", cpu,
                     strerror(e));
        goto err_after_mem;
    }
    rv = set_limits(cg, mem, cpu, mem_bytes, cpus, err);
    if (rv != BO_OK) {
        bo_err_wrapf(err, rv, "create task group '%s'", task_id);
        goto err_after_cpu;
    }
    memcpy(out->mem_dir, mem, sizeof(out->mem_dir));
    memcpy(out->cpu_dir, cpu, sizeof(out->cpu_dir));
    return BO_OK;

err_after_cpu:
    if (cg->mode == BO_CG_V1) {
        rmdir(cpu);
    }
err_after_mem:
    rmdir(mem);
    return rv;
}

int bo_cg_task_join(const struct bo_cg *cg, const char *task_id, pid_t pid, struct bo_err *err)
{
    char mem[PATH_MAX], cpu[PATH_MAX], v[32];
    int rv = task_dirs(cg, task_id, mem, cpu, err);
    if (rv != BO_OK) {
        return rv;
    }
    if (pid <= 0) {
        return bo_errf(err, BO_EINVAL, "join task group '%s': bad pid %ld", task_id, (long)pid);
    }
    snprintf(v, sizeof(v), "%ld", (long)pid);
    rv = write_in(mem, "cgroup.procs", v, err);
    if (rv == BO_OK && cg->mode == BO_CG_V1) {
        rv = write_in(cpu, "cgroup.procs", v, err);
    }
    if (rv != BO_OK) {
        return bo_err_wrapf(err, rv, "join task group '%s'", task_id);
    }
    return BO_OK;
}

static int cmp_pid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

/* Append the pids in `dir`/cgroup.procs to *v. */
static int read_procs(const char *dir, pid_t **v, size_t *n, size_t *cap, struct bo_err *err)
{
    char p[PATH_MAX];
    if (join2(p, dir, "cgroup.procs") != BO_OK) {
        return bo_errf(err, BO_ETOOBIG, "path too long: '%s'", dir);
    }
    struct bo_buf b = BO_BUF_INIT;
    int rv = read_file_err(p, &b, err);
    const char *s = (const char *)b.data;
    while (rv == BO_OK && *s != '\0') {
        char *end;
        long pid = strtol(s, &end, 10);
        if (end == s) {
            break;
        }
        s = end + strspn(end, " \n");
        if (*n == *cap) {
            size_t ncap = *cap == 0 ? 16 : *cap * 2;
            pid_t *nv = bo_reallocarray(*v, ncap, sizeof(**v));
            if (nv == NULL) {
                rv = bo_errf(err, BO_ENOMEM, "read '%s': out of memory", p);
                break;
            }
            *v = nv;
            *cap = ncap;
        }
        (*v)[(*n)++] = (pid_t)pid;
    }
    bo_buf_release(&b);
    return rv;
}

static int group_pids(const struct bo_cg *cg, const char *mem, const char *cpu, pid_t **pids,
                      size_t *count, struct bo_err *err)
{
    pid_t *v = NULL;
    size_t n = 0, cap = 0;
    int rv = read_procs(mem, &v, &n, &cap, err);
    if (rv == BO_OK && cg->mode == BO_CG_V1) {
        rv = read_procs(cpu, &v, &n, &cap, err);
    }
    if (rv != BO_OK) {
        bo_free(v);
        return rv;
    }
    if (n > 0) {
        qsort(v, n, sizeof(*v), cmp_pid);
    }
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (u == 0 || v[u - 1] != v[i]) {
            v[u++] = v[i];
        }
    }
    if (u == 0) {
        bo_free(v);
        v = NULL;
    }
    *pids = v;
    *count = u;
    return BO_OK;
}

int bo_cg_task_pids(const struct bo_cg *cg, const char *task_id, pid_t **pids, size_t *count,
                    struct bo_err *err)
{
    char mem[PATH_MAX], cpu[PATH_MAX];
    int rv = task_dirs(cg, task_id, mem, cpu, err);
    if (rv != BO_OK) {
        return rv;
    }
    return group_pids(cg, mem, cpu, pids, count, err);
}

static int kill_group(const struct bo_cg *cg, const char *name, struct bo_err *err)
{
    char mem[PATH_MAX], cpu[PATH_MAX];
    int rv = group_dirs(cg, name, mem, cpu, err);
    if (rv != BO_OK) {
        return rv;
    }
    if (access(mem, F_OK) != 0 && (cg->mode == BO_CG_V2 || access(cpu, F_OK) != 0)) {
        return BO_OK;
    }
    bool kill_file = cg->mode == BO_CG_V2 && file_exists(mem, "cgroup.kill");
    if (kill_file && (rv = write_in(mem, "cgroup.kill", "1", err)) != BO_OK) {
        return bo_err_wrapf(err, rv, "kill task group '%s'", name);
    }
    pid_t self = getpid();
    int64_t deadline = now_ms() + DRAIN_TIMEOUT_MS;
    for (;;) {
        pid_t *pids = NULL;
        size_t n = 0;
        rv = group_pids(cg, mem, cpu, &pids, &n, err);
        if (rv == BO_ENOTFOUND) {
            return BO_OK; /* removed meanwhile */
        }
        if (rv != BO_OK) {
            return bo_err_wrapf(err, rv, "kill task group '%s'", name);
        }
        if (n == 0) {
            return BO_OK;
        }
        for (size_t i = 0; i < n; i++) {
            if (pids[i] > 1 && pids[i] != self) {
                kill(pids[i], SIGKILL);
            }
        }
        bo_free(pids);
        if (now_ms() >= deadline) {
            return bo_errf(err, BO_EBUSY, "kill task group '%s': %zu processes remain", name, n);
        }
        sleep_ms(DRAIN_SLEEP_MS);
    }
}

int bo_cg_task_kill_all(const struct bo_cg *cg, const char *task_id, struct bo_err *err)
{
    if (task_id == NULL || !valid_name(task_id)) {
        return bo_errf(err, BO_EINVAL, "bad task id '%s'", task_id != NULL ? task_id : "(null)");
    }
    return kill_group(cg, task_id, err);
}

int bo_cg_task_oom_kills(const struct bo_cg *cg, const char *task_id, uint64_t *count,
                         struct bo_err *err)
{
    char mem[PATH_MAX], cpu[PATH_MAX], p[PATH_MAX];
    int rv = task_dirs(cg, task_id, mem, cpu, err);
    if (rv != BO_OK) {
        return rv;
    }
    const char *file = cg->mode == BO_CG_V1 ? "memory.oom_control" : "memory.events";
    if (join2(p, mem, file) != BO_OK) {
        return bo_errf(err, BO_ETOOBIG, "path too long: '%s'", mem);
    }
    struct bo_buf b = BO_BUF_INIT;
    rv = read_file_err(p, &b, err);
    if (rv != BO_OK) {
        return rv;
    }
    rv = bo_errf(err, BO_ENOTFOUND, "read '%s': no oom_kill counter", p);
    const char *s = (const char *)b.data;
    while (s != NULL && *s != '\0') {
        if (strncmp(s, "oom_kill ", 9) == 0) {
            *count = strtoull(s + 9, NULL, 10);
            rv = BO_OK;
            break;
        }
        s = strchr(s, '\n');
        s = s != NULL ? s + 1 : NULL;
    }
    bo_buf_release(&b);
    return rv;
}

/* rmdir `dir` after its child groups, retrying on EBUSY until `deadline`. */
static int remove_tree(const char *dir, int depth, int64_t deadline, struct bo_err *err)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT) {
            return BO_OK;
        }
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "open '%s': %s", dir, strerror(e));
    }
    int rv = BO_OK;
    struct dirent *de;
    while (rv == BO_OK && (de = readdir(d)) != NULL) {
        if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        char sub[PATH_MAX];
        if (depth >= MAX_NESTING || join2(sub, dir, de->d_name) != BO_OK) {
            rv = bo_errf(err, BO_ETOOBIG, "remove '%s': groups nested too deep", dir);
        } else {
            rv = remove_tree(sub, depth + 1, deadline, err);
        }
    }
    closedir(d);
    if (rv != BO_OK) {
        return rv;
    }
    for (;;) {
        if (rmdir(dir) == 0 || errno == ENOENT) {
            return BO_OK;
        }
        int e = errno;
        if (e != EBUSY || now_ms() >= deadline) {
            return bo_errf(err, bo_err_from_errno(e), "rmdir '%s': %s", dir, strerror(e));
        }
        sleep_ms(DRAIN_SLEEP_MS);
    }
}

static int remove_group(const struct bo_cg *cg, const char *name, struct bo_err *err)
{
    char mem[PATH_MAX], cpu[PATH_MAX];
    int rv = group_dirs(cg, name, mem, cpu, err);
    if (rv != BO_OK) {
        return rv;
    }
    int64_t deadline = now_ms() + DRAIN_TIMEOUT_MS;
    rv = remove_tree(mem, 0, deadline, err);
    if (rv == BO_OK && cg->mode == BO_CG_V1) {
        rv = remove_tree(cpu, 0, deadline, err);
    }
    if (rv != BO_OK) {
        return bo_err_wrapf(err, rv, "remove task group '%s'", name);
    }
    return BO_OK;
}

int bo_cg_task_remove(const struct bo_cg *cg, const char *task_id, struct bo_err *err)
{
    if (task_id == NULL || !valid_name(task_id)) {
        return bo_errf(err, BO_EINVAL, "bad task id '%s'", task_id != NULL ? task_id : "(null)");
    }
    return remove_group(cg, task_id, err);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Add the subdirectory names of `root` to the list (duplicates allowed). */
static int list_groups(const char *root, char ***v, size_t *n, size_t *cap, struct bo_err *err)
{
    DIR *d = opendir(root);
    if (d == NULL) {
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "open '%s': %s", root, strerror(e));
    }
    int rv = BO_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        if (*n == *cap) {
            size_t ncap = *cap == 0 ? 16 : *cap * 2;
            char **nv = bo_reallocarray(*v, ncap, sizeof(**v));
            if (nv == NULL) {
                rv = bo_errf(err, BO_ENOMEM, "list '%s': out of memory", root);
                break;
            }
            *v = nv;
            *cap = ncap;
        }
        if (((*v)[*n] = bo_strdup(de->d_name)) == NULL) {
            rv = bo_errf(err, BO_ENOMEM, "list '%s': out of memory", root);
            break;
        }
        (*n)++;
    }
    closedir(d);
    return rv;
}

int bo_cg_remove_stale(const struct bo_cg *cg, const char *const *running, size_t n,
                       size_t *removed, struct bo_err *err)
{
    if (cg->mode == BO_CG_NONE) {
        return bo_errf(err, BO_EINVAL, "cgroups unavailable");
    }
    char **names = NULL;
    size_t count = 0, cap = 0, done = 0;
    int rv = list_groups(cg->mem_root, &names, &count, &cap, err);
    if (rv == BO_OK && cg->mode == BO_CG_V1) {
        rv = list_groups(cg->cpu_root, &names, &count, &cap, err);
    }
    if (rv == BO_OK && count > 0) {
        qsort(names, count, sizeof(*names), cmp_str);
    }
    for (size_t i = 0; rv == BO_OK && i < count; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0) {
            continue;
        }
        bool keep = false;
        for (size_t j = 0; j < n && !keep; j++) {
            keep = strcmp(running[j], names[i]) == 0;
        }
        if (keep) {
            continue;
        }
        rv = kill_group(cg, names[i], err);
        if (rv == BO_OK) {
            rv = remove_group(cg, names[i], err);
        }
        if (rv == BO_OK) {
            done++;
        }
    }
    for (size_t i = 0; i < count; i++) {
        bo_free(names[i]);
    }
    bo_free(names);
    if (removed != NULL) {
        *removed = done;
    }
    return rv;
}

int bo_cg_remove_root(const struct bo_cg *cg, struct bo_err *err)
{
    if (cg->mode == BO_CG_NONE) {
        return bo_errf(err, BO_EINVAL, "cgroups unavailable");
    }
    int rv = rmdir_err(cg->mem_root, err);
    if (rv == BO_OK && cg->mode == BO_CG_V1) {
        rv = rmdir_err(cg->cpu_root, err);
    }
    return rv;
}

/* ---- the agent's own limits ---- */

/* Parse a number or "max"/"-1"-style no-limit; false if unreadable. */
static bool read_u64_in(const char *dir, const char *name, uint64_t *v)
{
    char p[PATH_MAX];
    struct bo_buf b = BO_BUF_INIT;
    int e;
    bool ok = false;
    if (join2(p, dir, name) == BO_OK && read_text(p, &b, &e) == BO_OK) {
        const char *s = (const char *)b.data;
        if (strncmp(s, "max", 3) == 0 || s[0] == '-') {
            *v = UINT64_MAX;
            ok = true;
        } else if (s[0] >= '0' && s[0] <= '9') {
            *v = strtoull(s, NULL, 10);
            ok = true;
        }
    }
    bo_buf_release(&b);
    return ok;
}

/* v2 cpu.max: "max 100000" or "50000 100000". */
static bool read_cpu_max(const char *dir, double *cpus)
{
    char p[PATH_MAX];
    struct bo_buf b = BO_BUF_INIT;
    int e;
    bool ok = false;
    if (join2(p, dir, "cpu.max") == BO_OK && read_text(p, &b, &e) == BO_OK) {
        unsigned long long q, per;
        if (sscanf((const char *)b.data, "%llu %llu", &q, &per) == 2 && per > 0) {
            *cpus = (double)q / (double)per;
            ok = true;
        }
    }
    bo_buf_release(&b);
    return ok;
}

/* Directory of our own cgroup `cgpath` in a hierarchy mounted at `mnt` whose
 * mount root is `mroot`; false if the group is not visible there. */
static bool own_dir(char *out, const char *mnt, const char *mroot, const char *cgpath)
{
    size_t rl = strlen(mroot);
    const char *rel = cgpath;
    if (!(rl == 1 && mroot[0] == '/')) {
        if (strncmp(cgpath, mroot, rl) != 0 || (cgpath[rl] != '\0' && cgpath[rl] != '/')) {
            return false;
        }
        rel = cgpath + rl;
    }
    int n = snprintf(out, PATH_MAX, "%s%s", mnt, rel);
    return n >= 0 && n < PATH_MAX;
}

static void tighten(const char *mnt, char *dir, bool v2, uint64_t *mem, double *cpus)
{
    size_t ml = strlen(mnt);
    for (;;) {
        uint64_t m;
        if (read_u64_in(dir, v2 ? "memory.max" : "memory.limit_in_bytes", &m) && m < *mem) {
            *mem = m;
        }
        double c = 0;
        if (v2) {
            read_cpu_max(dir, &c);
        } else {
            uint64_t q, per;
            if (read_u64_in(dir, "cpu.cfs_quota_us", &q) && q != UINT64_MAX &&
                read_u64_in(dir, "cpu.cfs_period_us", &per) && per > 0) {
                c = (double)q / (double)per;
            }
        }
        if (c > 0 && (*cpus == 0 || c < *cpus)) {
            *cpus = c;
        }
        char *slash = strrchr(dir, '/');
        if (strlen(dir) <= ml || slash == NULL || (size_t)(slash - dir) < ml) {
            break;
        }
        *slash = '\0';
    }
}

void bo_cg_self_limits(uint64_t *mem_bytes, double *cpus)
{
    *mem_bytes = UINT64_MAX;
    *cpus = 0;
    struct mounts *m = bo_malloc(sizeof(*m));
    struct bo_buf b = BO_BUF_INIT;
    int e;
    if (m == NULL || parse_mountinfo(m, NULL) != BO_OK ||
        read_text("/proc/self/cgroup", &b, &e) != BO_OK) {
        goto out;
    }
    char *save = NULL;
    for (char *line = strtok_r((char *)b.data, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        /* hierarchy-id:controllers:path */
        char *c1 = strchr(line, ':');
        char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL) {
            continue;
        }
        *c2 = '\0';
        const char *ctrls = c1 + 1, *path = c2 + 1;
        char dir[PATH_MAX];
        if (ctrls[0] == '\0' && m->v2[0] != '\0') {
            if (own_dir(dir, m->v2, m->v2_root, path)) {
                tighten(m->v2, dir, true, mem_bytes, cpus);
            }
            continue;
        }
        if (has_word(ctrls, "memory", ",") && m->v1_mem[0] != '\0') {
            if (own_dir(dir, m->v1_mem, m->v1_mem_root, path)) {
                double unused = 0;
                tighten(m->v1_mem, dir, false, mem_bytes, &unused);
            }
        }
        if (has_word(ctrls, "cpu", ",") && m->v1_cpu[0] != '\0') {
            if (own_dir(dir, m->v1_cpu, m->v1_cpu_root, path)) {
                uint64_t unused = UINT64_MAX;
                tighten(m->v1_cpu, dir, false, &unused, cpus);
            }
        }
    }
out:
    bo_buf_release(&b);
    bo_free(m);
}
