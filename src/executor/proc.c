/*
 * proc.c - process trees, orphans, cgroups and usage, from /proc and /sys.
 *
 * Happy path: a tree scan reads /proc/<pid>/stat of every process once
 * (pid, state, ppid; the command name is skipped by looking for the last
 * ')', since it may hold spaces and parentheses) and keeps those whose
 * parent chain reaches the root, by fixed-point passes over the list (a
 * tree is shallow; each pass adds a level). Signalling walks a fresh
 * snapshot, so a process forked between two walks is caught by the next one:
 * callers repeat SIGKILL until the count reaches zero.
 *
 * Orphans: the executor is a child subreaper, so a double-forked daemon
 * becomes our child when its parent exits. libuv reaps only the pids it
 * spawned (waitpid on each); the zombies of adopted orphans are ours to
 * reap, one pid at a time, skipping every pid libuv manages, because a
 * waitpid on one of those would steal its exit status from libuv.
 *
 * Failure modes: processes vanish between readdir and reading their stat
 * file; such entries are skipped. A /proc that cannot be opened is BO_EIO
 * for the scan, -1 for the counters. Disk usage ignores entries that
 * cannot be stat'ed (a file deleted during the walk).
 */
#include "executor/proc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/mem.h"

/* Read /proc/<pid>/stat: state and ppid. */
static bool read_stat(pid_t pid, char *state, pid_t *ppid)
{
    char path[64];
    char buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return false;
    }
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    if (rp == NULL || rp[1] != ' ') {
        return false;
    }
    char st;
    int pp;
    if (sscanf(rp + 2, "%c %d", &st, &pp) != 2) {
        return false;
    }
    *state = st;
    *ppid = (pid_t)pp;
    return true;
}

int bo_proc_tree_scan(pid_t root, struct bo_proc_tree *t, struct bo_err *err)
{
    memset(t, 0, sizeof(*t));
    DIR *d = opendir("/proc");
    if (d == NULL) {
        return bo_errf(err, BO_EIO, "open '/proc': %s", strerror(errno));
    }
    size_t cap = 0, all = 0;
    pid_t *pids = NULL, *ppids = NULL;
    char *states = NULL;
    int rv = BO_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)de->d_name[0])) {
            continue;
        }
        pid_t pid = (pid_t)atoi(de->d_name);
        char st;
        pid_t pp;
        if (!read_stat(pid, &st, &pp)) {
            continue;
        }
        if (all == cap) {
            size_t ncap = cap == 0 ? 256 : cap * 2;
            pid_t *a = bo_reallocarray(pids, ncap, sizeof(*a));
            if (a != NULL) {
                pids = a;
            }
            pid_t *b = a != NULL ? bo_reallocarray(ppids, ncap, sizeof(*b)) : NULL;
            if (b != NULL) {
                ppids = b;
            }
            char *c = b != NULL ? bo_reallocarray(states, ncap, 1) : NULL;
            if (c == NULL) {
                rv = bo_errf(err, BO_ENOMEM, "out of memory");
                goto out;
            }
            states = c;
            cap = ncap;
        }
        pids[all] = pid;
        ppids[all] = pp;
        states[all] = st;
        all++;
    }
    /* Mark descendants of root: fixed point over the flat list. */
    bool *in = all > 0 ? bo_calloc(all, sizeof(*in)) : NULL;
    if (all > 0 && in == NULL) {
        rv = bo_errf(err, BO_ENOMEM, "out of memory");
        goto out;
    }
    bool grew = true;
    while (grew) {
        grew = false;
        for (size_t i = 0; i < all; i++) {
            if (in[i] || pids[i] == root) {
                continue;
            }
            bool parent_in = ppids[i] == root;
            for (size_t k = 0; !parent_in && k < all; k++) {
                parent_in = in[k] && pids[k] == ppids[i];
            }
            if (parent_in) {
                in[i] = true;
                grew = true;
            }
        }
    }
    size_t n = 0;
    for (size_t i = 0; i < all; i++) {
        if (in[i]) {
            pids[n] = pids[i];
            ppids[n] = ppids[i];
            states[n] = states[i];
            n++;
        }
    }
    bo_free(in);
    t->pids = pids;
    t->ppids = ppids;
    t->states = states;
    t->n = n;
    pids = NULL;
    ppids = NULL;
    states = NULL;
out:
    closedir(d);
    bo_free(pids);
    bo_free(ppids);
    bo_free(states);
    return rv;
}

void bo_proc_tree_release(struct bo_proc_tree *t)
{
    bo_free(t->pids);
    bo_free(t->ppids);
    bo_free(t->states);
    memset(t, 0, sizeof(*t));
}

bool bo_proc_tree_under(const struct bo_proc_tree *t, pid_t pid, pid_t ancestor)
{
    for (size_t hops = 0; hops <= t->n; hops++) {
        if (pid == ancestor) {
            return true;
        }
        pid_t parent = 0;
        for (size_t i = 0; i < t->n; i++) {
            if (t->pids[i] == pid) {
                parent = t->ppids[i];
                break;
            }
        }
        if (parent == 0) {
            return false;
        }
        pid = parent;
    }
    return false;
}

static bool skipped(const struct bo_proc_tree *t, pid_t pid, const pid_t *skip, size_t nskip)
{
    for (size_t k = 0; k < nskip; k++) {
        if (skip[k] > 0 && bo_proc_tree_under(t, pid, skip[k])) {
            return true;
        }
    }
    return false;
}

size_t bo_proc_signal_tree(pid_t root, int sig, const pid_t *skip, size_t nskip)
{
    struct bo_proc_tree t;
    if (bo_proc_tree_scan(root, &t, NULL) != BO_OK) {
        return 0;
    }
    size_t n = 0;
    for (size_t i = 0; i < t.n; i++) {
        if (t.states[i] == 'Z' || skipped(&t, t.pids[i], skip, nskip)) {
            continue;
        }
        if (kill(t.pids[i], sig) == 0) {
            n++;
        }
    }
    bo_proc_tree_release(&t);
    return n;
}

int bo_proc_count_tree(pid_t root, const pid_t *skip, size_t nskip)
{
    struct bo_proc_tree t;
    if (bo_proc_tree_scan(root, &t, NULL) != BO_OK) {
        return -1;
    }
    int n = 0;
    for (size_t i = 0; i < t.n; i++) {
        if (t.states[i] != 'Z' && !skipped(&t, t.pids[i], skip, nskip)) {
            n++;
        }
    }
    bo_proc_tree_release(&t);
    return n;
}

static bool push_pid(pid_t **out, size_t *n, size_t *cap, pid_t pid)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        pid_t *a = bo_reallocarray(*out, ncap, sizeof(*a));
        if (a == NULL) {
            return false;
        }
        *out = a;
        *cap = ncap;
    }
    (*out)[(*n)++] = pid;
    return true;
}

/* Append the children listed in /proc/self/task/<tid>/children for every
 * thread of ours. Returns false when the kernel has no such files. */
static bool own_children(pid_t **out, size_t *n, size_t *cap)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL) {
        return false;
    }
    bool any_file = false;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)de->d_name[0])) {
            continue;
        }
        char path[300];
        snprintf(path, sizeof(path), "/proc/self/task/%s/children", de->d_name);
        FILE *f = fopen(path, "re");
        if (f == NULL) {
            continue;
        }
        any_file = true;
        int pid;
        while (fscanf(f, "%d", &pid) == 1 && push_pid(out, n, cap, (pid_t)pid)) {
        }
        fclose(f);
    }
    closedir(d);
    return any_file;
}

size_t bo_proc_reap_orphans(const pid_t *managed, size_t nmanaged)
{
    /* Our children only (a few small files), not a walk of all of /proc:
     * this runs every second in every executor on the host. */
    pid_t *kids = NULL;
    size_t nk = 0, cap = 0;
    pid_t self = getpid();
    if (!own_children(&kids, &nk, &cap)) {
        /* No children files (CONFIG_PROC_CHILDREN off): the slow way. */
        struct bo_proc_tree t;
        if (bo_proc_tree_scan(self, &t, NULL) != BO_OK) {
            return 0;
        }
        for (size_t i = 0; i < t.n; i++) {
            if (t.ppids[i] == self && !push_pid(&kids, &nk, &cap, t.pids[i])) {
                break;
            }
        }
        bo_proc_tree_release(&t);
    }
    size_t n = 0;
    for (size_t i = 0; i < nk; i++) {
        bool ours = false;
        for (size_t k = 0; k < nmanaged && !ours; k++) {
            ours = managed[k] == kids[i];
        }
        char st;
        pid_t pp;
        if (ours || !read_stat(kids[i], &st, &pp) || st != 'Z') {
            continue;
        }
        int status;
        if (waitpid(kids[i], &status, WNOHANG) == kids[i]) {
            n++;
        }
    }
    bo_free(kids);
    return n;
}

int64_t bo_proc_tree_rss(pid_t root)
{
    struct bo_proc_tree t;
    if (bo_proc_tree_scan(root, &t, NULL) != BO_OK) {
        return 0;
    }
    long page = sysconf(_SC_PAGESIZE);
    int64_t total = 0;
    for (size_t i = 0; i < t.n; i++) {
        if (t.states[i] == 'Z') {
            continue;
        }
        char path[64];
        char buf[256];
        snprintf(path, sizeof(path), "/proc/%d/statm", (int)t.pids[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0) {
            continue;
        }
        buf[n] = '\0';
        long long size, resident;
        if (sscanf(buf, "%lld %lld", &size, &resident) == 2) {
            total += (int64_t)resident * page;
        }
    }
    bo_proc_tree_release(&t);
    return total;
}

int bo_proc_make_subreaper(struct bo_err *err)
{
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
        return bo_errf(err, bo_err_from_errno(errno), "prctl(PR_SET_CHILD_SUBREAPER): %s",
                       strerror(errno));
    }
    return BO_OK;
}

static int write_pid(const char *path, struct bo_err *err)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return bo_errf(err, bo_err_from_errno(errno), "open '%s': %s", path, strerror(errno));
    }
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    ssize_t n = write(fd, buf, (size_t)len);
    int saved = errno;
    close(fd);
    if (n != len) {
        return bo_errf(err, BO_EIO, "write '%s': %s", path, n < 0 ? strerror(saved) : "short");
    }
    return BO_OK;
}

int bo_proc_join_cgroup(const char *dir, struct bo_err *err)
{
    char path[4096];
    if (bo_fs_join(path, sizeof(path), dir, "cgroup.procs") != BO_OK) {
        return bo_errf(err, BO_ETOOBIG, "cgroup path '%s' is too long", dir);
    }
    if (access(path, F_OK) != 0) {
        snprintf(path, sizeof(path), "%s/tasks", dir);
    }
    int rv = write_pid(path, err);
    if (rv != BO_OK) {
        return bo_err_wrapf(err, rv, "join cgroup '%s'", dir);
    }
    return BO_OK;
}

int bo_proc_read_counter(const char *path, const char *key, uint64_t *out, struct bo_err *err)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return bo_errf(err, BO_ENOTFOUND, "open '%s': %s", path, strerror(errno));
    }
    char line[256];
    size_t klen = strlen(key);
    int rv = bo_errf(err, BO_ENOTFOUND, "'%s' has no '%s' line", path, key);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
            *out = strtoull(line + klen + 1, NULL, 10);
            rv = BO_OK;
            break;
        }
    }
    fclose(f);
    return rv;
}

int bo_proc_read_number(const char *path, uint64_t *out, struct bo_err *err)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return bo_errf(err, BO_ENOTFOUND, "open '%s': %s", path, strerror(errno));
    }
    char line[64];
    int rv = bo_errf(err, BO_ENOTFOUND, "'%s' holds no number", path);
    if (fgets(line, sizeof(line), f) != NULL && isdigit((unsigned char)line[0])) {
        *out = strtoull(line, NULL, 10);
        rv = BO_OK;
    }
    fclose(f);
    return rv;
}

/* nftw has no user pointer; one walk at a time per thread. */
static _Thread_local uint64_t du_total;

static int du_visit(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (type != FTW_NS) {
        du_total += (uint64_t)sb->st_blocks * 512u;
    }
    return 0;
}

int bo_proc_disk_usage(const char *dir, uint64_t *out, struct bo_err *err)
{
    du_total = 0;
    if (nftw(dir, du_visit, 32, FTW_PHYS | FTW_MOUNT) != 0) {
        return bo_errf(err, BO_EIO, "walk '%s': %s", dir, strerror(errno));
    }
    *out = du_total;
    return BO_OK;
}
