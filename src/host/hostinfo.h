/*
 * hostinfo.h - what the agent tells the scheduler about its machine.
 *
 * Resources (cpus, ram, disk), the host's attributes and port ranges from the
 * command line, the agent's persistent id, and the mapping of a job's role to
 * the local user its tasks run as.
 *
 * Role -> user rule (also in docs/agent.md, "Users"):
 *   1. A role name must be a safe user name, [a-z_][a-z0-9_-]{0,31}; any other
 *      role is refused (BO_EINVAL), never transformed (no lowercasing).
 *   2. If the explicit map (--user-map www=nginx,batch=nobody) names the role,
 *      the task runs as that user.
 *   3. Otherwise it runs as the local user named like the role.
 *   4. If that user does not exist and creation is allowed, the agent creates
 *      it with `useradd --system --user-group --no-create-home --shell
 *      /usr/sbin/nologin NAME` and looks it up again; if creation is not
 *      allowed, the result is BO_ENOTFOUND "no local user 'x' for role 'y'".
 *
 * Every function blocks (file system, NSS lookups, a child process) and keeps
 * no state: call them from worker threads, concurrently if need be. JSON
 * results are new references the caller decrefs. Outputs are written only on
 * success.
 */
#ifndef BO_HOST_HOSTINFO_H
#define BO_HOST_HOSTINFO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "common/err.h"

#define BO_HOST_NAME_MAX 256

struct bo_host_resources {
    double cpus;       /* online cpus, lowered by the agent's own cgroup cpu quota */
    uint64_t ram_mib;  /* sysinfo totalram, lowered by the agent's own memory limit */
    uint64_t disk_mib; /* statvfs(work dir): f_blocks * f_frsize */
    char hostname[BO_HOST_NAME_MAX];
};

/* Detect the machine's resources; `work_dir` must exist. */
int bo_host_detect(const char *work_dir, struct bo_host_resources *out, struct bo_err *err);

/* Parse "host=h1,rack=r4,zone=z1,dedicated=www/web" into a new JSON object
 * mapping each name to an array of its values, in the order given:
 *     {"host": ["h1"], "rack": ["r4"], "zone": ["z1"], "dedicated": ["www/web"]}
 * A value may be a list separated by ';' ("rack=r4;r5"). Names are
 * [A-Za-z0-9_.-]+; values are non-empty printable ASCII without spaces, ',',
 * ';' or '='. Duplicate names (and duplicate values under one name) are
 * BO_EINVAL. `host` defaults to `hostname` when absent (skipped when hostname
 * is NULL or empty). `spec` may be NULL or "" (only the default host). */
int bo_host_parse_attributes(const char *spec, const char *hostname, json_t **out,
                             struct bo_err *err);

/* Parse "31000-32000,40000-40100" (a single "8080" is 8080-8080) into a new
 * JSON array of [lo, hi] pairs sorted by lo. Ports are 1..65535, lo <= hi,
 * and ranges may not overlap (BO_EINVAL); adjacent ranges are kept apart.
 * NULL or "" is an empty array. */
int bo_host_parse_ports(const char *spec, json_t **out, struct bo_err *err);

#define BO_HOST_AGENT_ID_MAX 64

/* The agent's persistent id, in `out` (size >= BO_HOST_AGENT_ID_MAX + 1):
 * the content of `<work_dir>/agent_id` (one line; [A-Za-z0-9_.-], at most
 * 64 characters, else BO_ECORRUPT) or, when the file does not exist, a new
 * "agent-" + 16 lowercase hex digits from getrandom(), written atomically
 * (bo_fs_write_atomic) before it is returned. */
int bo_host_agent_id(const char *work_dir, char *out, struct bo_err *err);

/* Parse "www=nginx,batch=nobody" into a new JSON object role -> user. Both
 * sides must be safe user names (bo_host_safe_user_name); duplicate roles are
 * BO_EINVAL. NULL or "" is an empty object. */
int bo_host_parse_user_map(const char *spec, json_t **out, struct bo_err *err);

/* True if `s` matches [a-z_][a-z0-9_-]{0,31}. */
bool bo_host_safe_user_name(const char *s);

#define BO_HOST_USER_MAX 32

struct bo_host_user {
    char name[BO_HOST_USER_MAX + 1];
    uid_t uid;
    gid_t gid; /* the user's primary group */
};

/* Resolve `role` to a local user by the rule at the top of this file.
 * `user_map` (may be NULL) is what bo_host_parse_user_map returned. Creating
 * a user needs root; useradd's exit status and stderr end up in the error. */
int bo_host_resolve_user(const char *role, const json_t *user_map, bool allow_create,
                         struct bo_host_user *out, struct bo_err *err);

#endif
