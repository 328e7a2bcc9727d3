/*
 * place.h - task placement: an in-memory index of hosts and their free
 * resources, and the function that places a group of identical pending tasks
 * onto them (Aurora's TaskAssigner + SchedulingFilter, without offers).
 *
 * The index knows every host (agent): its totals (cpus, ram, disk, port
 * ranges), its attributes, its maintenance mode and whether it is usable, and
 * the tasks the owner told it about. The owner calls bo_place_add_task for
 * every task in a state that occupies a host (ASSIGNED, STARTING, RUNNING,
 * KILLING, ...) and bo_place_remove_task, with the same arguments, when the
 * task leaves that state. bo_place_tasks never changes what is accounted: it
 * answers where a group of tasks would go, counting the tasks it places
 * earlier in the same call, and the owner then adds the tasks it assigns.
 *
 * Rules (Aurora's): a host takes a task if it is
 * registered, usable, not DRAINING/DRAINED, has the free cpus/ram/disk and
 * enough free ports for every named port, and satisfies the task's
 * constraints:
 * - value constraint on attribute A: the host has A with one of the values
 *   (negated: none of them; a host without A passes only a negated one);
 * - limit constraint limit:N on A: the host has A, and for each of its values
 *   fewer than N active tasks of the job are on hosts with that value (A =
 *   "host" is the host name, so per host);
 * - dedicated: a host with attribute "dedicated" takes only jobs with a
 *   (non-negated) value constraint on "dedicated", whose value must match one
 *   of the host's ("role/x" only for that role; "*\/x" for any role). The
 *   constraint itself is the ordinary value rule, so a dedicated job goes
 *   only to matching hosts.
 * SCHEDULED hosts are used only when no NONE host can take another task.
 *
 * Resources: cpus are kept in thousandths (as Mesos does), so adding and
 * removing the same task restores the free amount exactly. ram and disk are
 * in MB. Ports are 1..65535.
 *
 * Threads: none of this is thread-safe; one thread owns a struct bo_place.
 * Nothing here does I/O or reads the clock.
 */
#ifndef BO_PLACE_H
#define BO_PLACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "storage.pb-c.h"

struct bo_place;

/* ---- lifecycle ---- */

int bo_place_new(struct bo_place **out);
/* Frees the index and everything in it; NULL is a no-op. */
void bo_place_free(struct bo_place *p);

/* ---- hosts ---- */

struct bo_place_range {
    int32_t lo; /* inclusive */
    int32_t hi; /* inclusive */
};

struct bo_place_attr {
    const char *name;
    const char *const *values;
    size_t n_values;
};

/* Everything is copied; the spec may be freed after the call. An attribute
 * named "host" is ignored: "host" is always the host name. Duplicate values
 * and overlapping ranges are merged. */
struct bo_place_host_spec {
    const char *name;     /* unique key, not empty */
    const char *agent_id; /* may be empty */
    double cpus;
    int64_t ram_mb;
    int64_t disk_mb;
    const struct bo_place_range *ranges;
    size_t n_ranges;
    const struct bo_place_attr *attrs;
    size_t n_attrs;
};

/* Register a host, or update a registered one (an agent re-registering):
 * totals, ranges, attributes and agent id are replaced, the tasks accounted
 * on it stay (their ports too, even outside the new ranges). A new host
 * starts usable in mode NONE; an existing one keeps its mode, and its usable
 * flag unless it was an unregistered placeholder (see bo_place_add_task),
 * which becomes usable. BO_EINVAL for a bad spec, BO_ENOMEM; on error
 * nothing changed. */
int bo_place_upsert_host(struct bo_place *p, const struct bo_place_host_spec *spec,
                         struct bo_err *err);

/* Unregister a host. If tasks are still accounted on it, it stays as an
 * unregistered placeholder (takes nothing, keeps its attributes for the limit
 * counts) until its last task is removed. BO_ENOTFOUND if unknown. */
int bo_place_remove_host(struct bo_place *p, const char *name, struct bo_err *err);

/* Maintenance mode (DRAINING and DRAINED take nothing; SCHEDULED comes
 * last). BO_ENOTFOUND if unknown, BO_EINVAL for a value outside the enum. */
int bo_place_set_mode(struct bo_place *p, const char *name, Bo__MaintenanceMode mode,
                      struct bo_err *err);

/* An agent that is disconnected or partitioned is not usable: it takes
 * nothing, its tasks stay accounted. BO_ENOTFOUND if unknown. */
int bo_place_set_usable(struct bo_place *p, const char *name, bool usable, struct bo_err *err);

/* ---- task accounting ---- */

/* Account one task of job `job_key` ("role/env/name") on `host`: its
 * resources and ports become used and it counts for the job's limit
 * constraints. Ports outside the host's ranges, or already used, are kept
 * (counted twice) so that the matching remove restores the state exactly.
 * A host that is not known (tasks recovered before their agent registered)
 * is created as an unregistered placeholder with zero totals: it takes
 * nothing, its free amounts go negative, and its counts are right once the
 * agent registers with bo_place_upsert_host. BO_EINVAL for negative or
 * absurd amounts, BO_ETOOBIG if a sum would overflow, BO_ENOMEM; on error
 * nothing changed. */
int bo_place_add_task(struct bo_place *p, const char *host, const char *job_key, double cpus,
                      int64_t ram_mb, int64_t disk_mb, const int32_t *ports, size_t n_ports,
                      struct bo_err *err);

/* Undo a bo_place_add_task; pass the same arguments. Ports not held are
 * ignored. An unregistered placeholder goes away with its last task.
 * BO_EINVAL for bad arguments, BO_ENOTFOUND if the host is unknown or has no
 * task of the job (nothing changed then); never fails otherwise. */
int bo_place_remove_task(struct bo_place *p, const char *host, const char *job_key, double cpus,
                         int64_t ram_mb, int64_t disk_mb, const int32_t *ports, size_t n_ports,
                         struct bo_err *err);

/* ---- placement ---- */

enum bo_place_constraint_kind {
    BO_PLACE_VALUE = 1,
    BO_PLACE_LIMIT = 2,
};

struct bo_place_constraint {
    const char *attr;
    enum bo_place_constraint_kind kind;
    bool negated;              /* BO_PLACE_VALUE */
    const char *const *values; /* BO_PLACE_VALUE */
    size_t n_values;
    int32_t limit; /* BO_PLACE_LIMIT: at most this many per attribute value */
};

/* A group of identical tasks: one job, one TaskConfig. All pointers are
 * borrowed for the duration of the call. */
struct bo_place_request {
    const char *role;
    const char *environment;
    const char *name;
    double cpus;
    int64_t ram_mb;
    int64_t disk_mb;
    const char **ports; /* named ports, one port each */
    size_t n_ports;
    struct bo_place_constraint *constraints;
    size_t n_constraints;
};

/* Fill `req` from a TaskConfig: job key, resources (summed per kind; named
 * ports in order) and constraints. Strings are borrowed from `tc`, which must
 * outlive `req`; the ports and constraints arrays are allocated: release them
 * with bo_place_request_release (only for requests filled here). BO_EINVAL if
 * the config has no job key, asks for GPUs or has a constraint of neither
 * kind; BO_ENOMEM. On error `req` holds nothing to release. */
int bo_place_request_from_config(struct bo_place_request *req, const Bo__TaskConfig *tc,
                                 struct bo_err *err);
void bo_place_request_release(struct bo_place_request *req);

/* One placed task. `host` and `agent_id` point into the index: valid until
 * the next bo_place_upsert_host, bo_place_remove_host or
 * bo_place_remove_task. `ports[i]` is the port for request port i. */
struct bo_place_slot {
    const char *host;
    const char *agent_id;
    const int32_t *ports;
};

#define BO_PLACE_REASON_MAX 256

/* Initialize with BO_PLACE_RESULT_INIT; its buffers are reused by later
 * calls; free them with bo_place_result_release. */
struct bo_place_result {
    size_t n_placed;
    struct bo_place_slot *slots;
    /* when n_placed < n: why the rest stays pending, e.g. "Insufficient: cpu,
     * ram", or "Insufficient: ram (4990 hosts), Limit not satisfied: host (10
     * hosts)"; empty otherwise */
    char reason[BO_PLACE_REASON_MAX];
    /* private */
    int32_t *port_buf;
    size_t cap_slots, cap_ports;
};

#define BO_PLACE_RESULT_INIT                                                                       \
    {                                                                                              \
        0                                                                                          \
    }

void bo_place_result_release(struct bo_place_result *res);

/* Place up to `n` tasks of `req`. Tasks go one per host first, the hosts with
 * the most free resources (relative to their size) first, ties by host name;
 * when every fitting host has one, round-robin over them again; SCHEDULED
 * hosts only after the NONE ones can take nothing more. Deterministic for a
 * given sequence of calls. Tasks that do not fit are left out and
 * `res->reason` says why (see the .c for how the reason is chosen). The index
 * is not changed: add the tasks that are assigned with bo_place_add_task,
 * with the ports returned. BO_EINVAL for a bad request, BO_ENOMEM; on error
 * res->n_placed is 0. */
int bo_place_tasks(struct bo_place *p, const struct bo_place_request *req, size_t n,
                   struct bo_place_result *res, struct bo_err *err);

/* A counter that changes with every call that may let a host take a task it
 * refused before (everything but bo_place_add_task and bo_place_tasks). A
 * caller may skip retrying a group whose last attempt left tasks pending at
 * the same epoch: the answer would be the same. */
uint64_t bo_place_epoch(const struct bo_place *p);

/* ---- read-only views (API and metrics) ---- */

struct bo_place_stats {
    size_t n_hosts;       /* registered */
    size_t n_schedulable; /* registered, usable, mode NONE or SCHEDULED */
    size_t n_tasks;       /* accounted, on all hosts */
    double total_cpus, free_cpus;
    int64_t total_ram_mb, free_ram_mb;
    int64_t total_disk_mb, free_disk_mb;
};

/* Sums over registered hosts. O(hosts). */
void bo_place_get_stats(const struct bo_place *p, struct bo_place_stats *out);

struct bo_place_host_info {
    const char *name;
    const char *agent_id;
    Bo__MaintenanceMode mode;
    bool registered; /* false: a placeholder known only from its tasks */
    bool usable;
    size_t n_tasks;
    double total_cpus, free_cpus; /* free may be negative when overcommitted */
    int64_t total_ram_mb, free_ram_mb;
    int64_t total_disk_mb, free_disk_mb;
    uint32_t total_ports, free_ports;
};

/* False if unknown. Strings point into the index (see bo_place_slot). */
bool bo_place_host_get(const struct bo_place *p, const char *name, struct bo_place_host_info *out);

/* Call `cb` for every host (placeholders too), in the order they became
 * known. A nonzero return from `cb` stops the walk and is returned. `cb` must
 * not change the index. */
typedef int (*bo_place_host_cb)(const struct bo_place_host_info *info, void *ctx);
int bo_place_foreach_host(const struct bo_place *p, bo_place_host_cb cb, void *ctx);

#endif
