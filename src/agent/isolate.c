/*
 * isolate.c - resources, cgroups and users for the agent (isolate.h).
 *
 * Policy, in one place:
 *  - Offered resources: what the flags say, else what src/host detects.
 *  - Isolation: cgroups (v2, or v1 memory+cpu) when the agent can write
 *    them: each task gets a group with its ram as the memory limit and its
 *    cpus as a cfs quota; the executor joins it before starting anything.
 *    Otherwise the executor enforces memory by sampling RSS and nothing
 *    limits cpu; the agent says so in its log at start.
 *  - Users: as root (and unless --no-setuid), a task runs as its role's
 *    user by the rule of src/host/hostinfo.h.
 *  - Clean-up: once a task's executor is gone, whatever is left in its
 *    cgroup is killed and the group removed; without cgroups the processes
 *    still in the executor's session are killed.
 */
#include "agent/isolate.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/hash.h"
#include "common/log.h"
#include "host/cgroup.h"
#include "host/hostinfo.h"

int agent_iso_init(struct bo_agent *a, struct bo_err *err)
{
    struct bo_host_resources res;
    int rc = bo_host_detect(a->work_dir, &res, err);
    if (rc != BO_OK)
        return bo_err_wrapf(err, rc, "agent: detecting resources");
    a->cpus = a->cfg.cpus > 0 ? a->cfg.cpus : res.cpus;
    a->ram_mb = a->cfg.ram_mb > 0 ? a->cfg.ram_mb : (int64_t)res.ram_mib;
    a->disk_mb = a->cfg.disk_mb > 0 ? a->cfg.disk_mb : (int64_t)res.disk_mib;
    if (!a->cfg.hostname)
        snprintf(a->hostname, sizeof(a->hostname), "%s", res.hostname);
    if (a->cfg.user_map) {
        rc = bo_host_parse_user_map(a->cfg.user_map, &a->user_map, err);
        if (rc != BO_OK)
            return bo_err_wrapf(err, rc, "agent: --user-map");
    }
    /* Agents sharing a machine (tests, benchmarks) get groups of their own. */
    char real[PATH_MAX];
    const char *wd = realpath(a->work_dir, real) ? real : a->work_dir;
    snprintf(a->cg_tag, sizeof(a->cg_tag), "a%016" PRIx64, bo_hash64(wd, strlen(wd)));
    a->cg_available = false;
    if (a->cfg.isolation) {
        rc = bo_cg_init(&a->cg, a->cg_tag, err);
        if (rc != BO_OK)
            return bo_err_wrapf(err, rc, "agent: cgroups");
        a->cg_available = bo_cg_available(&a->cg);
        snprintf(a->isolation_note, sizeof(a->isolation_note), "%s%s", bo_cg_describe(&a->cg),
                 a->cg_available ? "" : "; memory is enforced by sampling RSS, cpu is not limited");
    } else {
        snprintf(a->isolation_note, sizeof(a->isolation_note),
                 "isolation turned off (--no-isolation): memory is enforced by sampling RSS, "
                 "cpu is not limited");
    }
    if (a->cfg.setuid && geteuid() != 0)
        bo_info("agent: not root: tasks run as this agent's user");
    return BO_OK;
}

int agent_iso_user(const struct bo_agent *a, const char *role, char *name, size_t name_size,
                   uint32_t *uid, uint32_t *gid, struct bo_err *err)
{
    struct bo_host_user u;
    int rc = bo_host_resolve_user(role, a->user_map, a->cfg.create_users, &u, err);
    if (rc != BO_OK)
        return rc;
    snprintf(name, name_size, "%s", u.name);
    *uid = (uint32_t)u.uid;
    *gid = (uint32_t)u.gid;
    return BO_OK;
}

int agent_iso_prepare(const struct bo_agent *a, const char *task_id, double cpus, int64_t ram_bytes,
                      char *memory_dir, char *cpu_dir, char *unified_dir, size_t dir_size,
                      struct bo_err *err)
{
    struct bo_cg_task ct;
    int rc = bo_cg_task_create(&a->cg, task_id, ram_bytes > 0 ? (uint64_t)ram_bytes : 0,
                               cpus > 0 ? cpus : 0, &ct, err);
    if (rc == BO_EEXIST) {
        /* Left by an agent that died while launching this very task. */
        struct bo_err ignored = BO_ERR_INIT;
        bo_cg_task_kill_all(&a->cg, task_id, &ignored);
        bo_cg_task_remove(&a->cg, task_id, &ignored);
        memset(err->msg, 0, sizeof(err->msg));
        rc = bo_cg_task_create(&a->cg, task_id, ram_bytes > 0 ? (uint64_t)ram_bytes : 0,
                               cpus > 0 ? cpus : 0, &ct, err);
    }
    if (rc != BO_OK)
        return bo_err_wrapf(err, rc, "cgroup for '%s'", task_id);
    if (a->cg.mode == BO_CG_V2) {
        snprintf(unified_dir, dir_size, "%s", ct.mem_dir);
    } else {
        snprintf(memory_dir, dir_size, "%s", ct.mem_dir);
        snprintf(cpu_dir, dir_size, "%s", ct.cpu_dir);
    }
    return BO_OK;
}

/* No cgroup: the processes still in the session the executor led. */
static void kill_session(int sid)
{
    for (int round = 0; round < 3; round++) {
        DIR *d = opendir("/proc");
        if (!d)
            return;
        struct dirent *e;
        int found = 0;
        while ((e = readdir(d))) {
            char *end;
            long pid = strtol(e->d_name, &end, 10);
            if (*end || pid <= 1)
                continue;
            if (getsid((pid_t)pid) == sid) {
                kill((pid_t)pid, SIGKILL);
                found++;
            }
        }
        closedir(d);
        if (!found)
            return;
        usleep(50000);
    }
}

void agent_iso_cleanup(const struct bo_agent *a, const char *task_id, int executor_pid,
                       const char *memory_dir, const char *cpu_dir, const char *unified_dir)
{
    struct bo_err err = BO_ERR_INIT;
    if (memory_dir[0] || cpu_dir[0] || unified_dir[0]) {
        int rc = bo_cg_task_kill_all(&a->cg, task_id, &err);
        if (rc == BO_OK)
            rc = bo_cg_task_remove(&a->cg, task_id, &err);
        if (rc != BO_OK)
            bo_warn("agent: task '%s': cleaning up its cgroup: %s", task_id, bo_err_msg(&err, rc));
    } else if (executor_pid > 1) {
        kill_session(executor_pid);
    }
}
