/*
 * cgroup.h - resource isolation of tasks with Linux control groups.
 *
 * bo_cg_init finds out what the machine offers and records it in a struct
 * bo_cg, the context every other call takes:
 *
 *   - cgroup v2: a cgroup2 mount (normally /sys/fs/cgroup, statfs magic
 *     CGROUP2_SUPER_MAGIC) whose root lists both `memory` and `cpu` in
 *     cgroup.controllers;
 *   - else cgroup v1: a `memory` and a `cpu` hierarchy, wherever
 *     /proc/self/mountinfo says they are mounted. A hybrid layout (v1
 *     controllers plus an empty cgroup2 at /sys/fs/cgroup/unified) is v1;
 *   - else none: the agent falls back to rlimits and RSS sampling.
 *
 * It then creates the agent's root group `<hierarchy>/borealis/<agent_tag>/`
 * (in each v1 hierarchy; in v2 enabling +memory +cpu in the subtree_control of
 * the mount root, `borealis` and the agent root) and proves it writable by
 * creating and removing a probe group. If any of that fails, isolation is
 * unavailable and the reason is kept. Either way bo_cg_describe() returns one
 * human-readable line for the agent log, e.g.
 *     cgroups v1 (memory at /sys/fs/cgroup/memory, cpu at /sys/fs/cgroup/cpu):
 *     memory and cpu limits enforced
 *     cgroups not writable (mkdir '/sys/fs/cgroup/memory/borealis': read-only
 *     file system): falling back to rlimits and RSS sampling
 *
 * Each task gets `<root>/<task_id>` (one per v1 hierarchy, or one in v2). Task
 * ids must be 1-200 characters of [A-Za-z0-9_.-], not starting with '.'.
 * The task functions require an available struct (bo_cg_available); they
 * return BO_EINVAL "cgroups unavailable" otherwise.
 *
 * struct bo_cg is a plain value with no allocations: nothing to release, safe
 * to copy. It is read-only after bo_cg_init, so any thread may use it
 * concurrently; operations on one task group must not race each other (the
 * agent serialises them per task). Every function blocks (file I/O and short
 * sleeps while processes drain): call them from worker threads.
 */
#ifndef BO_HOST_CGROUP_H
#define BO_HOST_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

enum bo_cg_mode {
    BO_CG_NONE = 0, /* no isolation: see desc */
    BO_CG_V1,
    BO_CG_V2,
};

#define BO_CG_DESC_SIZE 640

struct bo_cg {
    enum bo_cg_mode mode;
    bool memsw;                 /* v1: memory.memsw.limit_in_bytes usable */
    bool swap_max;              /* v2: memory.swap.max exists */
    char mem_root[PATH_MAX];    /* the agent root in the memory hierarchy */
    char cpu_root[PATH_MAX];    /* in the cpu hierarchy; equal to mem_root in v2 */
    char desc[BO_CG_DESC_SIZE]; /* bo_cg_describe() */
};

/* What bo_cg_task_create made: the directories to give the executor. In v2
 * both name the same directory. */
struct bo_cg_task {
    char mem_dir[PATH_MAX];
    char cpu_dir[PATH_MAX];
};

/* Period of the cpu quota: 100 ms. */
#define BO_CG_CPU_PERIOD_US 100000
/* Smallest quota: 1 ms per period. */
#define BO_CG_CPU_MIN_QUOTA_US 1000
/* Largest cpu count accepted by bo_cg_task_create. */
#define BO_CG_MAX_CPUS 4096.0

/* Detect the layout, create the agent's root group and probe it. `agent_tag`
 * separates agents sharing a machine (a short hash of the work dir); it must
 * be a valid task-id-like name, else BO_EINVAL. Unavailable isolation is not
 * an error: the call returns BO_OK with mode BO_CG_NONE and the reason in the
 * description. */
int bo_cg_init(struct bo_cg *cg, const char *agent_tag, struct bo_err *err);

bool bo_cg_available(const struct bo_cg *cg);
const char *bo_cg_describe(const struct bo_cg *cg);

/* Create the task group with a memory limit of `mem_bytes` (0: none) and a
 * cpu quota of `cpus` cpus (0: none; otherwise quota = cpus * 100 ms per
 * 100 ms period, at least 1 ms; negative, NaN or above BO_CG_MAX_CPUS is
 * BO_EINVAL). v1 also sets memory.memsw.limit_in_bytes to the same value when
 * it is usable, so swap cannot dodge the limit; v2 sets memory.swap.max to 0
 * when it exists (memory.oom.group is left at 0: the executor shares the
 * group and must outlive an OOM kill to report it).
 * An existing group is BO_EEXIST. On failure nothing is left behind. */
int bo_cg_task_create(const struct bo_cg *cg, const char *task_id, uint64_t mem_bytes, double cpus,
                      struct bo_cg_task *out, struct bo_err *err);

/* Move process `pid` (all its threads) into the task group. */
int bo_cg_task_join(const struct bo_cg *cg, const char *task_id, pid_t pid, struct bo_err *err);

/* The pids in the task group (v1: the union of both hierarchies), sorted and
 * unique, in a new bo_malloc'd array (*pids, NULL when *count is 0; release
 * with bo_free). A missing group is BO_ENOTFOUND. */
int bo_cg_task_pids(const struct bo_cg *cg, const char *task_id, pid_t **pids, size_t *count,
                    struct bo_err *err);

/* Kill every process in the group with SIGKILL and wait until it is empty:
 * v2 writes cgroup.kill when the kernel has it; otherwise (and v1) lists and
 * kills in rounds, up to 2 seconds. BO_EBUSY if processes remain (including
 * processes in uninterruptible sleep that have not died yet). A missing group
 * is BO_OK. Zombies do not count: they have left the group. */
int bo_cg_task_kill_all(const struct bo_cg *cg, const char *task_id, struct bo_err *err);

/* How many times the kernel OOM killer killed a process in the group (v1:
 * `oom_kill` of memory.oom_control, v2: `oom_kill` of memory.events). */
int bo_cg_task_oom_kills(const struct bo_cg *cg, const char *task_id, uint64_t *count,
                         struct bo_err *err);

/* Remove the task group (and any groups the task made inside it), retrying for
 * up to 2 seconds while exiting processes drain. A missing group is BO_OK; one
 * that still has processes afterwards is BO_EBUSY. Call bo_cg_task_kill_all
 * first. */
int bo_cg_task_remove(const struct bo_cg *cg, const char *task_id, struct bo_err *err);

/* Agent restart cleanup: kill and remove every task group under the agent
 * root whose name is not among `running[0..n)`. *removed (may be NULL) gets
 * the number removed. Stops at the first failure. */
int bo_cg_remove_stale(const struct bo_cg *cg, const char *const *running, size_t n,
                       size_t *removed, struct bo_err *err);

/* Remove the agent root itself (it must hold no task groups); for tests and
 * decommissioning. `<hierarchy>/borealis` is left in place for other agents. */
int bo_cg_remove_root(const struct bo_cg *cg, struct bo_err *err);

/* The limits on the calling process's own cgroup (the agent's), the tightest
 * along the path to the hierarchy root: memory in bytes (UINT64_MAX: none)
 * and cpus as quota/period (0: none). Works without bo_cg_init and without
 * write access; anything it cannot read counts as no limit. */
void bo_cg_self_limits(uint64_t *mem_bytes, double *cpus);

#endif
