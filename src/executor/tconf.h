/*
 * tconf.h - the executor's input: DIR/task.json and the Thermos task inside
 * it, parsed and validated into one plain struct.
 *
 * bo_tconf_parse reads the text of task.json (the agent's launch record, see
 * docs/executor.md) and the Thermos data in
 * task.assigned_task.task.executor_config.data, in either of its shapes:
 * Aurora's whole interpolated job ({"task": {"processes": ...}, ...}) or the
 * short shape with the task's fields at top level ({"processes": ...}).
 * Defaults are Aurora's (docs/executor.md lists them). Unknown fields are
 * ignored.
 *
 * Validation rejects, with BO_EINVAL and a message naming the problem: no
 * processes, duplicate or empty process names, an order constraint naming an
 * unknown process, a cycle in the order constraints, a final process ordered
 * against a non-final one, fields of the wrong type, negative counts and
 * intervals, and a cycle in the announce portmap.
 *
 * Ports: `ports` holds every name a template may use: the assigned ports,
 * then the portmap aliases that resolve (through other aliases, with cycle
 * detection) to an assigned port or to a static integer port. An alias that
 * resolves to nothing is left out, as in Aurora's PortResolver.
 *
 * Ownership: every string and array in struct bo_tconf belongs to it and is
 * freed by bo_tconf_release. The module is pure (no I/O, no clock) and keeps
 * no state; any thread may call it.
 */
#ifndef BO_EXEC_TCONF_H
#define BO_EXEC_TCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

enum bo_tconf_log_dest {
    BO_TCONF_LOG_FILE = 0,
    BO_TCONF_LOG_CONSOLE,
    BO_TCONF_LOG_BOTH,
    BO_TCONF_LOG_NONE,
};

struct bo_tconf_proc {
    char *name;
    char *cmdline;           /* untemplated */
    int max_failures;        /* 1; 0 = retry forever */
    bool daemon;             /* false */
    bool ephemeral;          /* false */
    bool final;              /* false */
    int64_t min_duration_ms; /* 5000 */
    int log_dest;            /* enum bo_tconf_log_dest, FILE */
    bool log_rotate;         /* mode 'rotate' (false = 'standard') */
    int64_t log_size;        /* rotate.log_size bytes, 100 MiB */
    int log_backups;         /* rotate.backups, 5 */
    size_t *after;           /* indexes of processes that must succeed first */
    size_t nafter;
};

struct bo_tconf_port {
    char *name;
    int port;
};

enum bo_tconf_health_kind {
    BO_TCONF_HEALTH_NONE = 0, /* no health port and no shell checker: healthy at once */
    BO_TCONF_HEALTH_HTTP,
    BO_TCONF_HEALTH_SHELL,
};

struct bo_tconf_health {
    int kind;                      /* enum bo_tconf_health_kind, after port resolution */
    int port;                      /* HTTP: the port named 'health' */
    char *endpoint;                /* '/health' */
    char *expected_response;       /* 'ok'; "" = do not check the body */
    int expected_response_code;    /* 0 = do not check the code */
    char *shell_command;           /* SHELL: untemplated */
    int64_t initial_interval_ms;   /* 15000 */
    int64_t interval_ms;           /* 10000 */
    int max_consecutive_failures;  /* 0 */
    int min_consecutive_successes; /* 1 */
    int64_t timeout_ms;            /* 1000 */
};

struct bo_tconf_lifecycle {
    int port;                 /* resolved lifecycle port, 0 = no HTTP lifecycle */
    char *port_name;          /* 'health' */
    char *graceful_endpoint;  /* '/quitquitquit' */
    char *shutdown_endpoint;  /* '/abortabortabort' */
    int64_t graceful_wait_ms; /* 5000 */
    int64_t shutdown_wait_ms; /* 5000 */
};

struct bo_tconf {
    /* task.json */
    char *task_id;
    char *sandbox;
    char *hostname; /* "hostname", else assigned_task.slave_host, else "" */
    char *user;     /* "" = the executor's own user */
    bool has_ids;   /* uid/gid given with a non-empty user */
    uint32_t uid;
    uint32_t gid;
    int instance;
    int64_t ram_bytes;  /* 0 = no limit */
    int64_t disk_bytes; /* 0 = no limit */
    double cpus;
    char *cg_memory;                /* v1 memory cgroup dir, or NULL */
    char *cg_cpu;                   /* v1 cpu cgroup dir, or NULL */
    char *cg_unified;               /* v2 cgroup dir, or NULL */
    bool mem_sampling;              /* enforce ram_bytes by sampling RSS */
    int64_t disk_check_interval_ms; /* 10000 */
    int64_t stop_timeout_ms;        /* 120000 */

    /* the Thermos task */
    char *task_name;
    struct bo_tconf_proc *procs;
    size_t nprocs;
    int max_failures;             /* 1 */
    int max_concurrency;          /* 0 = unlimited */
    int64_t finalization_wait_ms; /* 30000 */
    struct bo_tconf_health health;
    struct bo_tconf_lifecycle lifecycle;
    struct bo_tconf_port *ports; /* assigned, then resolved aliases */
    size_t nports;
};

/* Parse and validate task.json (`text`, `len` bytes). On success *c is
 * filled and owns its memory. On failure *c is left empty (releasing it is
 * harmless), and `err` says what is wrong: BO_EINVAL for a bad task.json or
 * Thermos config, BO_ENOMEM. */
int bo_tconf_parse(struct bo_tconf *c, const char *text, size_t len, struct bo_err *err);

/* Parse only the Thermos data (either shape) into the Thermos half of *c;
 * `assigned` holds the assigned ports (may be NULL when n is 0). Used by
 * bo_tconf_parse; exposed for tests. */
int bo_tconf_parse_thermos(struct bo_tconf *c, const char *data,
                           const struct bo_tconf_port *assigned, size_t nassigned,
                           struct bo_err *err);

/* The port of `name` in c->ports, or 0 when there is none. */
int bo_tconf_port(const struct bo_tconf *c, const char *name);

/* The index of the process `name`, or -1. */
long bo_tconf_proc_index(const struct bo_tconf *c, const char *name);

void bo_tconf_release(struct bo_tconf *c);

#endif
