/*
 * proc.h - the executor's view of the host: process trees from /proc,
 * signals to them, reaping adopted orphans, cgroup membership and OOM
 * counters, RSS and disk usage.
 *
 * All functions are blocking system calls on /proc, /sys and the sandbox;
 * the /proc ones are cheap (a few milliseconds for a few hundred processes)
 * and are called on the loop thread; bo_proc_disk_usage walks a directory
 * tree and must run on a worker thread.
 */
#ifndef BO_EXEC_PROC_H
#define BO_EXEC_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

/* One snapshot of the processes descended from `root` (not `root` itself). */
struct bo_proc_tree {
    pid_t *pids;
    pid_t *ppids;
    char *states; /* the /proc state letter: 'R', 'S', 'Z', ... */
    size_t n;
};

/* Walk /proc and fill `t` with the descendants of `root`, zombies
 * included. BO_ENOMEM, BO_EIO (no /proc). */
int bo_proc_tree_scan(pid_t root, struct bo_proc_tree *t, struct bo_err *err);
void bo_proc_tree_release(struct bo_proc_tree *t);

/* Whether `pid` is `ancestor` or below it in `t`. */
bool bo_proc_tree_under(const struct bo_proc_tree *t, pid_t pid, pid_t ancestor);

/* Send `sig` to every live (non-zombie) descendant of `root` whose pid is
 * not in `skip` or below one of them; the number signalled. */
size_t bo_proc_signal_tree(pid_t root, int sig, const pid_t *skip, size_t nskip);

/* Live (non-zombie) descendants of `root`, not counting those in `skip` or
 * below them; -1 if /proc cannot be read. */
int bo_proc_count_tree(pid_t root, const pid_t *skip, size_t nskip);

/* waitpid(WNOHANG) every zombie child of this process whose pid is not in
 * `managed` (the children libuv waits for itself); never waitpid(-1).
 * Returns how many were reaped. */
size_t bo_proc_reap_orphans(const pid_t *managed, size_t nmanaged);

/* Sum of the resident set sizes of the live descendants of `root`, bytes. */
int64_t bo_proc_tree_rss(pid_t root);

/* Become a child subreaper: orphans below us re-parent to us. */
int bo_proc_make_subreaper(struct bo_err *err);

/* Move this process into the cgroup directory `dir` (cgroup.procs, or
 * `tasks` for a v1 hierarchy that has no cgroup.procs). */
int bo_proc_join_cgroup(const char *dir, struct bo_err *err);

/* The value of the line "`key` N" in the file `path` (memory.oom_control,
 * memory.events); BO_ENOTFOUND when the file or the line is missing. */
int bo_proc_read_counter(const char *path, const char *key, uint64_t *out, struct bo_err *err);

/* The first number in `path` (memory.limit_in_bytes, memory.max); "max"
 * is BO_ENOTFOUND. */
int bo_proc_read_number(const char *path, uint64_t *out, struct bo_err *err);

/* Bytes allocated under `dir` (st_blocks * 512 of every entry), not
 * following symlinks, not crossing filesystems. Blocking: worker thread. */
int bo_proc_disk_usage(const char *dir, uint64_t *out, struct bo_err *err);

#endif
