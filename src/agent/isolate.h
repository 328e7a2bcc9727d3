/*
 * isolate.h - what the agent offers and how it fences tasks in: host
 * resources, cgroups (or the fallback when they cannot be written), and
 * the user a task runs as. A thin layer over src/host/ so agent.c states
 * policy, not mechanism.
 *
 * Threads: agent_iso_init on the loop thread at start; the others on
 * worker threads, reading only fields of the agent that never change
 * after start.
 */
#ifndef BO_AGENT_ISOLATE_H
#define BO_AGENT_ISOLATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct bo_agent;

/* Detect resources (config values win over detection), probe cgroups and
 * set a->cpus, ram_mb, disk_mb, cg_available, cg_tag and isolation_note
 * (one line for the log saying what is enforced and how). */
int agent_iso_init(struct bo_agent *a, struct bo_err *err);

/* The local user for a role (docs/agent.md, "Users"), created if allowed. */
int agent_iso_user(const struct bo_agent *a, const char *role, char *name, size_t name_size,
                   uint32_t *uid, uint32_t *gid, struct bo_err *err);

/* Make the task's cgroup with its limits; fills the directories to hand to
 * the executor ("" for those not used). */
int agent_iso_prepare(const struct bo_agent *a, const char *task_id, double cpus, int64_t ram_bytes,
                      char *memory_dir, char *cpu_dir, char *unified_dir, size_t dir_size,
                      struct bo_err *err);

/* After the executor is gone: kill what is left of the task (its cgroup,
 * or without one the session the executor led) and remove the cgroup. */
void agent_iso_cleanup(const struct bo_agent *a, const char *task_id, int executor_pid,
                       const char *memory_dir, const char *cpu_dir, const char *unified_dir);

#endif
