/*
 * gen.h - a deterministic generator of realistic cluster state for the
 * storage benchmarks: tasks, their TaskConfigs, host attributes, cron jobs,
 * quotas and SaveTasks transactions, as protobuf-c structs (storage.proto).
 *
 * Everything is a pure function of (params, seed, index): task 17 is the
 * same task whether it is generated first, last or twice, by any thread
 * holding its own arena. So a benchmark can generate the snapshot content,
 * later regenerate any task to check what it reads back, and two runs with
 * the same seed write byte-identical data.
 *
 * Memory. Tasks, transactions, hosts and the rest of the snapshot are built
 * in a caller-owned bo_gen_arena and stay valid until that arena is reset or
 * released; nothing is freed one message at a time. The TaskConfigs are built
 * once by bo_gen_init and owned by the generator: a task's
 * assigned_task->task points at the shared config, so it is valid until
 * bo_gen_release. Never pass generated messages to
 * protobuf_c_message_free_unpacked.
 *
 * Order. Task i is not instance i of anything: indices are spread over jobs
 * by a fixed permutation, so consecutive tasks belong to unrelated jobs, as
 * in Aurora's hash-ordered task map (see the design block in gen.c for why
 * this matters to the compression ratios).
 *
 * A generator is read-only after bo_gen_init, so several threads may generate
 * tasks concurrently, each with its own arena.
 */
#ifndef BO_BENCH_GEN_H
#define BO_BENCH_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage.pb-c.h"

/* ---------------------------------------------------------------- arena ---- */

struct bo_gen_chunk;

/* A bump allocator. BO_GEN_ARENA_INIT (or zeroing) is an empty arena. Reset
 * keeps the chunks for reuse, so generating a task after the first costs no
 * malloc. */
struct bo_gen_arena {
    struct bo_gen_chunk *first;
    struct bo_gen_chunk *cur;
    char *pos;
    char *end;
};

#define BO_GEN_ARENA_INIT                                                                          \
    {                                                                                              \
        NULL, NULL, NULL, NULL                                                                     \
    }

/* Forget everything allocated (pointers into the arena become invalid). */
void bo_gen_arena_reset(struct bo_gen_arena *a);
/* Free the chunks; the arena is empty and reusable afterwards. */
void bo_gen_arena_release(struct bo_gen_arena *a);
/* Bytes held by the arena's chunks. */
size_t bo_gen_arena_capacity(const struct bo_gen_arena *a);

/* ------------------------------------------------------------ generator ---- */

/* Events in a task's history are capped (a RUNNING task has
 * events_per_task of them, a terminal one one more). */
#define BO_GEN_MAX_EVENTS 16

struct bo_gen_params {
    uint64_t tasks;           /* N >= 1 */
    uint64_t jobs;            /* 1 <= J <= N; tasks are spread evenly */
    uint64_t configs;         /* J <= R <= N (a config names its job); 0 means R = J */
    uint64_t hosts;           /* H >= 1 */
    uint64_t seed;            /* any value */
    unsigned events_per_task; /* 1 .. BO_GEN_MAX_EVENTS - 1; the events of a RUNNING task */
};

/* The calibrated defaults (gen.c explains the numbers): 1M tasks, 10k jobs of
 * 100 instances, one config per job, 20k hosts, 4 events per task. */
#define BO_GEN_PARAMS_DEFAULT                                                                      \
    {                                                                                              \
        1000000, 10000, 10000, 20000, 1, 4                                                         \
    }

struct bo_gen {
    struct bo_gen_params p;
    int64_t now_ms; /* the cluster's "now"; every timestamp is before it */
    uint64_t roles;
    uint64_t perm_mul; /* task order: slot = (i * perm_mul + perm_add) mod N */
    uint64_t perm_add;
    Bo__TaskConfig **configs; /* p.configs of them, built by bo_gen_init */
    struct bo_gen_arena config_arena;
};

/* Validate `p` and build the R configs. Returns BO_OK, BO_EINVAL (bad
 * parameters) or BO_ENOMEM; on failure nothing is left to release. */
int bo_gen_init(struct bo_gen *g, const struct bo_gen_params *p);
void bo_gen_release(struct bo_gen *g);

/* Where task i sits: its job, instance number and config (all < J, < the
 * job's instance count, < R). */
void bo_gen_task_place(const struct bo_gen *g, uint64_t i, uint64_t *job, uint32_t *instance,
                       uint64_t *config);

/* Config c (< R), owned by the generator. Configs of one job differ in their
 * package version and resources, as in the middle of a rolling update. */
const Bo__TaskConfig *bo_gen_config(const struct bo_gen *g, uint64_t c);

/* Task i (< N) into `a`. With `with_config` false assigned_task->task is
 * left NULL: the "partial task" of a deduplicated snapshot. BO_OK or
 * BO_ENOMEM. */
int bo_gen_task(const struct bo_gen *g, uint64_t i, bool with_config, struct bo_gen_arena *a,
                Bo__ScheduledTask **out);

/* Host h (< H): host name, rack/zone/host attributes, slave id, mode NONE. */
int bo_gen_host(const struct bo_gen *g, uint64_t h, struct bo_gen_arena *a,
                Bo__HostAttributes **out);

/* Everything in a snapshot but the tasks: all H host attributes, one cron
 * job per 100 jobs (sharing the job's config 0), one quota per role,
 * scheduler metadata and the timestamp now_ms. `tasks` is left empty. */
int bo_gen_rest(const struct bo_gen *g, struct bo_gen_arena *a, Bo__Snapshot **out);

/* A write: one SaveTasks op holding tasks first, first+1, ... (k of them,
 * wrapping around at N), each with its config; schema_version 1. */
int bo_gen_txn_save_tasks(const struct bo_gen *g, uint64_t first, unsigned k,
                          struct bo_gen_arena *a, Bo__Transaction **out);

/* A write as the scheduler logs task transitions: one SaveTaskStates op
 * holding tasks first, first+1, ... (k of them, wrapping at N) without
 * their configs, each with a new status and one more event. Round r moves
 * the tasks off their generated status when even, back when odd. */
int bo_gen_txn_save_task_states(const struct bo_gen *g, uint64_t first, unsigned k, uint64_t round,
                                struct bo_gen_arena *a, Bo__Transaction **out);

#endif
