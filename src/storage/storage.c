/*
 * storage.c - the store as the state machine of a raft log.
 *
 * Happy path. bo_storage_open() rebuilds the SQLite cache from scratch: raft
 * loads its last snapshot (fsm_restore) and its log; committed entries are
 * applied to the store as raft commits them (fsm_apply), on the applier's
 * thread under load and on the loop otherwise ("applier" below). A single voter
 * elects itself at once. When this replica becomes leader it first commits a
 * barrier, so every entry of earlier terms is applied before the owner is told
 * it leads (Aurora appended a noop before reading its log for the same reason).
 * A write is validated against the store, encoded as one bo.LogEntry and given
 * to raft_apply; its callback fires when the entry is committed and applied,
 * in log order.
 *
 * Snapshots use raft's asynchronous hooks (fsm version 3): fsm_snapshot pins a
 * read view of the store on the loop thread, fsm_snapshot_async exports the
 * view into an image on raft's worker thread while the loop keeps applying
 * writes, fsm_snapshot_finalize releases it on the loop. Backups build an image
 * the same way on libuv's thread pool and write it to the backup directory.
 *
 * Failure modes.
 * - Raft cannot load its data directory (a corrupt or truncated segment,
 *   metadata or snapshot file): raft_start fails and so does open, with raft's
 *   message; auto-recovery is off so raft reports corruption, never repairs it
 *   by dropping entries.
 * - A snapshot image that fails its checksum at restore: fsm_restore fails,
 *   and so does open, with the store's message naming the offset.
 * - An append fails (disk full): raft fails the pending writes; their callbacks
 *   get BO_EIO/BO_ENOSPC and nothing was acknowledged.
 * - A committed entry the store rejects deterministically (BO_EINVAL): every
 *   replica rejects it the same way; the write's callback gets the error.
 * - A committed entry the store cannot apply for environmental reasons
 *   (SQLite I/O, out of memory): the store no longer follows the log, so
 *   fatal_cb is called; the owner must stop. Nothing acknowledged is lost:
 *   the log still has the entry and a restart applies it again.
 */
#include "storage/storage.h"

#include <assert.h>
#include <limits.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/flags.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/mem.h"
#include "storage/backup.h"
#include "storage/iodefer.h"
#include "storage/pacewrite.h"
#include "storage/segfill.h"
#include "storage/snapshot.h"

#define ROLE_POLL_MS 10

struct write_impl {
    struct raft_apply apply;
    struct bo_storage_write *req;
    uint64_t start_ns;
    uint64_t index;          /* once committed: waiting for the applier */
    struct write_impl *next; /* in the applier's list of writes to complete */
};

/* ------------------------------------------------------------ applier ----
 *
 * Committed entries are applied to SQLite on a thread of their own, so the
 * loop thread runs raft, encodes writes and serves reads while the applier
 * does the SQLite work (about two thirds of a write's CPU time on the loop
 * before; docs/benchmarks.md, "Fifth pass").
 *
 * fsm_apply copies the entry into the applier's queue and returns; raft
 * calls the write's apply callback at once, which parks the write in
 * `done_head` with its index. The applier takes everything queued, applies
 * it entry by entry (each apply holds the store's lock: store.h, "Threads"),
 * commits the group, then publishes the index it reached and the entries
 * the store rejected, and wakes the loop (uv_async). The loop completes the
 * parked writes up to that index: a write's callback still fires only after
 * its entry is committed and applied on this replica.
 *
 * Under a light load the loop applies entries itself (applier_light): each
 * handoff is two thread wakeups, and a wakeup can wait milliseconds for a
 * CPU behind background work.
 *
 * Whatever must see the store exactly at raft's applied index first waits
 * for the applier to run dry (applier_drain): a snapshot's view, a restore,
 * the barrier a new leader commits before it reports itself leader. The
 * queue holds only what raft committed and the applier has not reached, a
 * group or two under load, so the wait is short.
 *
 * Failure modes. An entry the store rejects (BO_EINVAL, BO_ECORRUPT) fails
 * its write as before. One it cannot apply for environmental reasons stops
 * the applier (it discards what comes after) and the loop calls fatal_cb;
 * writes parked or committed later fail with BO_EIO. Out of memory for a
 * queue entry is the same kind of failure. BO_APPLIER=0 applies on the loop
 * thread instead, as before, for comparisons. */

struct apply_item {
    uint64_t index;
    size_t len;
    uint8_t data[];
};

struct apply_fail {
    uint64_t index;
    int rv;
    char msg[BO_ERR_MSG_SIZE];
};

struct applier {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* items queued, or stop */
    pthread_cond_t idle_cv; /* the queue ran dry */
    uv_async_t async;
    bool running; /* the thread exists */
    /* Under mu. */
    struct apply_item **q;
    size_t n, cap;
    bool busy; /* the thread is applying what it took */
    bool stop;
    uint64_t applied;         /* entries up to here are applied (and visible to the loop) */
    uint64_t cost_ns;         /* moving average of an entry's apply, for applier_light */
    struct apply_fail *fails; /* rejected entries up to `applied` */
    size_t n_fails, cap_fails;
    int fatal_rv; /* BO_OK, or why the applier stopped */
    char fatal_msg[BO_ERR_MSG_SIZE + 64];
};

struct image_job {
    uv_work_t work;
    struct bo_storage *s;
    struct bo_store_view *view;
    bool dedup;
    enum bo_codec codec;
    int level;
    int64_t now_ms;
    char name[BO_BACKUP_NAME_MAX];
    int rv;
    struct bo_err err;
    bo_storage_done_cb cb;
    void *data;
};

/* What a taken snapshot leaves behind: its view and its image, let go on
 * the thread pool. Closing the view unmaps its file mapping and freeing the
 * image hands 46 MB back to the kernel: at a million tasks the two took
 * 25 ms of the loop thread, a stall of every write in flight
 * (docs/benchmarks.md, "Stall"). The view counts as open until the
 * after-work callback closes it on the loop. */
struct reap_job {
    uv_work_t work;
    struct bo_storage *s;
    struct bo_store_view *view;
    struct bo_buf image;
};

struct ckpt_job {
    uv_work_t work;
    struct bo_storage *s;
    struct bo_store_ckpt *ckpt;
    int rv;
    struct bo_err err;
};

struct bo_storage {
    uv_loop_t *loop;
    struct bo_storage_config cfg;
    char *data_dir;
    char *address;
    char *backup_dir;
    char db_path[PATH_MAX];
    char staged_path[PATH_MAX];

    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_fsm fsm;
    bool raft_started;

    struct bo_store *store;

    uv_timer_t role_timer;
    uv_timer_t backup_timer;
    uv_check_t flush_check;
    uv_timer_t ckpt_timer;
    struct ckpt_job *ckpt;
    unsigned reaps;   /* reap jobs queued and not yet called back */
    bool ckpt_finish; /* a checkpoint ended: finish it after the next flush */
    unsigned applies; /* raft_apply requests not yet called back */
    enum bo_storage_role role;
    bool barrier_pending;
    struct raft_barrier barrier;

    /* The snapshot raft is taking: set by fsm_snapshot on the loop, used by
     * fsm_snapshot_async on a worker, released by fsm_snapshot_finalize. */
    struct bo_store_view *snap_view;
    struct bo_buf snap_image;
    struct raft_buffer *snap_bufs;
    uint64_t snap_start_ns;
    int snap_rv;
    char snap_errmsg[BO_ERR_MSG_SIZE];

    /* A snapshot asked for on demand. */
    bool snap_now_pending;
    bo_storage_done_cb snap_now_cb;
    void *snap_now_data;
    struct bo_storage_write snap_now_write;

    struct image_job *backup;

    struct bo_store *staged;
    struct bo_storage_write *recovery_write;
    bo_storage_done_cb recovery_cb;
    void *recovery_data;

    struct bo_err apply_err; /* message of the last rejected entry */
    struct bo_err restore_err;
    bool fatal;

    struct bo_storage_stats stats;

    bool closing;
    int closing_pending;
    bo_storage_close_cb close_cb;
    bool raft_closed;         /* raft_close finished; raft_uv's memory is ours to free */
    uint64_t close_waited_ms; /* for a snapshot in flight, at close */
    uint64_t ckpt_index;      /* applied index at the last checkpoint */

    /* The applier (above); off: entries applied on the loop thread. */
    bool applier_on;
    bool applier_all; /* BO_APPLIER=all: never apply on the loop */
    struct applier ap;
    uint64_t ap_seen;   /* the applier's index the loop last acted on */
    uint64_t fsm_index; /* of the entry fsm_apply took last */
    bool fsm_inline;    /* ... and applied it there, not through the applier */
    /* How busy applying on the loop would keep it (applier_light). */
    uint64_t win_start_ns, win_count, win_prev;
    uint64_t inline_cost_ns;                  /* moving average of an entry applied inline */
    struct write_impl *done_head, *done_tail; /* committed, not yet completed */
};

/* Background work (snapshot export and compression, backups, checkpoints)
 * runs in Linux's SCHED_IDLE class so it takes only what the loop thread
 * leaves: on two cores, an equal share made commits stall for the length of
 * a snapshot, and even at nice 19 a woken loop thread could wait 2-3 ms for
 * the background thread on its core to reach the end of its slice, where a
 * SCHED_IDLE thread is preempted at once (docs/benchmarks.md, "Fourth
 * pass"). Where SCHED_IDLE is refused, nice 19. The work gets a short-lived
 * thread of its own because Linux keeps both per thread: lowering the pool
 * thread's would stick (an unprivileged process cannot raise it back), and
 * zstd's workers inherit the creating thread's. If the thread cannot be
 * created the work runs in place, at normal priority. */
struct low_prio {
    void (*fn)(void *arg);
    void *arg;
};

static void *low_prio_main(void *p)
{
    struct low_prio *lp = p;
    pthread_setname_np(pthread_self(), "bo-background"); /* zstd's workers inherit it */
    struct sched_param none = {.sched_priority = 0};
    if (sched_setscheduler(0, SCHED_IDLE, &none) != 0) {
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
    }
    lp->fn(lp->arg);
    return NULL;
}

static void run_low_priority(void (*fn)(void *arg), void *arg)
{
    struct low_prio lp = {.fn = fn, .arg = arg};
    pthread_t t;
    if (pthread_create(&t, NULL, low_prio_main, &lp) != 0) {
        fn(arg);
        return;
    }
    pthread_join(t, NULL);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int from_raft(int rv)
{
    switch (rv) {
    case 0:
        return BO_OK;
    case RAFT_NOMEM:
        return BO_ENOMEM;
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
        return BO_ENOTLEADER;
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED:
        return BO_ECANCELED;
    case RAFT_CORRUPT:
        return BO_ECORRUPT;
    case RAFT_NOSPACE:
        return BO_ENOSPC;
    case RAFT_BUSY:
        return BO_EBUSY;
    case RAFT_TOOBIG:
        return BO_ETOOBIG;
    default:
        return BO_EIO;
    }
}

void bo_storage_config_init(struct bo_storage_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->id = 1;
    cfg->snapshot_threshold = 8192;
    cfg->snapshot_trailing = 1024;
    /* Raft's 8 MiB. Rollovers once cost ~40 ms each (we ran 32 MiB then);
     * with segments zeroed ahead (segfill.c) and their AIO contexts
     * destroyed off the loop (iodefer.c) they no longer show, while the
     * deletion of the segments a snapshot replaces does: smaller files are
     * shorter stalls between which appends get through (p99 during a
     * snapshot at 64 in flight 7.5-8.0 ms against 8.6-12.0 ms with 32 MiB,
     * docs/benchmarks.md, "Sixth pass"). */
    cfg->segment_size = 8u << 20;
    cfg->snapshot_dedup = true;
    cfg->snapshot_codec = BO_CODEC_ZSTD;
    cfg->backup_interval_ms = 3600 * 1000;
    cfg->max_saved_backups = 48;
    cfg->election_timeout_ms = 1000;
    cfg->heartbeat_timeout_ms = 100;
}

/* ---------------------------------------------------------------- fsm ---- */

static void fatal(struct bo_storage *s, int code, const char *msg)
{
    if (s->fatal) {
        return;
    }
    s->fatal = true;
    bo_error("storage: fatal: %s", msg);
    if (s->cfg.fatal_cb != NULL) {
        s->cfg.fatal_cb(s, code, msg, s->cfg.data);
    }
}

/* What the applier reached, handed to the loop: the index, the entries
 * rejected up to it, and why it stopped if it did (under a->mu). */
struct applier_out {
    uint64_t last;
    uint64_t cost_ns; /* moving average of an entry's apply */
    struct apply_fail *fails;
    size_t n_fails, cap_fails;
    int fatal_rv;
    char fatal_msg[BO_ERR_MSG_SIZE + 64];
};

static void applier_publish(struct applier *a, struct applier_out *o)
{
    pthread_mutex_lock(&a->mu);
    if (o->fatal_rv != BO_OK && a->fatal_rv == BO_OK) {
        a->fatal_rv = o->fatal_rv;
        memcpy(a->fatal_msg, o->fatal_msg, sizeof(a->fatal_msg));
    }
    if (a->fatal_rv == BO_OK) {
        a->applied = o->last;
    }
    a->cost_ns = o->cost_ns;
    if (o->n_fails > 0) {
        size_t need = a->n_fails + o->n_fails;
        if (need > a->cap_fails) {
            struct apply_fail *f = bo_realloc(a->fails, need * sizeof(*f));
            if (f != NULL) {
                a->fails = f;
                a->cap_fails = need;
            }
        }
        if (need <= a->cap_fails) {
            memcpy(a->fails + a->n_fails, o->fails, o->n_fails * sizeof(*o->fails));
            a->n_fails = need;
        }
        o->n_fails = 0;
    }
    pthread_mutex_unlock(&a->mu);
    uv_async_send(&a->async);
}

/* Apply one entry; a rejection is noted, anything else stops the applier. */
static void applier_apply(struct bo_storage *s, const struct apply_item *it, struct applier_out *o)
{
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_store_apply_entry(s->store, it->data, it->len, it->index, &err);
    if ((rv == BO_EINVAL || rv == BO_ECORRUPT) && o->n_fails == o->cap_fails) {
        size_t cap = o->cap_fails ? o->cap_fails * 2 : 8;
        struct apply_fail *f = bo_realloc(o->fails, cap * sizeof(*f));
        if (f == NULL) {
            rv = BO_ENOMEM;
        } else {
            o->fails = f;
            o->cap_fails = cap;
        }
    }
    if (rv == BO_EINVAL || rv == BO_ECORRUPT) {
        struct apply_fail *f = &o->fails[o->n_fails++];
        f->index = it->index;
        f->rv = rv;
        snprintf(f->msg, sizeof(f->msg), "%s", bo_err_msg(&err, rv));
    } else if (rv != BO_OK) {
        o->fatal_rv = rv;
        snprintf(o->fatal_msg, sizeof(o->fatal_msg), "apply entry %llu: %s",
                 (unsigned long long)it->index, bo_err_msg(&err, rv));
    }
}

/* Writes are completed this many entries at a time, not once per group: a
 * write's latency then does not include the rest of its group and the
 * group's commit, and at a fixed number in flight that is throughput. The
 * loop reads through the same connection, so what is applied is visible to
 * it before the commit. */
#define APPLIER_PUBLISH_EVERY 16

/* The applier's thread (see "applier" above). */
static void *applier_main(void *arg)
{
    struct bo_storage *s = arg;
    struct applier *a = &s->ap;
    pthread_setname_np(pthread_self(), "bo-applier");
    struct apply_item **mine = NULL;
    size_t mine_cap = 0;
    struct applier_out o = {.fatal_rv = BO_OK};
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->n == 0 && !a->stop) {
            pthread_cond_wait(&a->work_cv, &a->mu);
        }
        if (a->n == 0) {
            break;
        }
        /* Take the whole queue; hand the loop the spare array. */
        struct apply_item **items = a->q;
        size_t items_cap = a->cap;
        size_t n = a->n;
        a->q = mine;
        a->cap = mine_cap;
        a->n = 0;
        mine = items;
        mine_cap = items_cap;
        a->busy = true;
        pthread_mutex_unlock(&a->mu);

        /* After an environmental failure nothing is applied any more. */
        for (size_t i = 0; i < n; i++) {
            if (o.fatal_rv == BO_OK) {
                uint64_t t0 = now_ns();
                applier_apply(s, items[i], &o);
                o.cost_ns = (o.cost_ns * 7 + (now_ns() - t0)) / 8;
                o.last = items[i]->index;
                if ((i + 1) % APPLIER_PUBLISH_EVERY == 0 && i + 1 < n) {
                    applier_publish(a, &o);
                }
            }
            bo_free(items[i]);
        }
        if (o.fatal_rv == BO_OK) {
            applier_publish(a, &o);
            struct bo_err err = BO_ERR_INIT;
            int rv = bo_store_flush(s->store, &err);
            if (rv != BO_OK) {
                o.fatal_rv = rv;
                snprintf(o.fatal_msg, sizeof(o.fatal_msg), "sqlite commit: %s",
                         bo_err_msg(&err, rv));
            }
        }
        if (o.fatal_rv != BO_OK) {
            applier_publish(a, &o);
        }

        pthread_mutex_lock(&a->mu);
        a->busy = false;
        if (a->n == 0) {
            pthread_cond_broadcast(&a->idle_cv);
        }
        uv_async_send(&a->async); /* the loop may finish a checkpoint now */
    }
    pthread_mutex_unlock(&a->mu);
    bo_free(mine);
    bo_free(o.fails);
    return NULL;
}

/* Wait until everything queued is applied and committed (loop thread). */
static void applier_drain(struct bo_storage *s)
{
    struct applier *a = &s->ap;
    if (!a->running) {
        return;
    }
    pthread_mutex_lock(&a->mu);
    while (a->n > 0 || a->busy) {
        pthread_cond_wait(&a->idle_cv, &a->mu);
    }
    pthread_mutex_unlock(&a->mu);
}

static bool applier_idle(struct bo_storage *s)
{
    struct applier *a = &s->ap;
    pthread_mutex_lock(&a->mu);
    bool idle = a->n == 0 && !a->busy;
    pthread_mutex_unlock(&a->mu);
    return idle;
}

static void record_latency(struct bo_storage *s, uint64_t start_ns);

static void complete_write(struct bo_storage *s, struct write_impl *impl, int rv, const char *msg)
{
    struct bo_storage_write *req = impl->req;
    if (rv == BO_OK) {
        req->index = impl->index;
        s->stats.writes_committed++;
        record_latency(s, impl->start_ns);
    } else {
        s->stats.writes_failed++;
    }
    bo_free(impl);
    req->impl = NULL;
    s->applies--;
    req->cb(req, rv, msg);
}

static void ckpt_maybe_finish(struct bo_storage *s);

/* The oldest parked write, taken off the list. */
static struct write_impl *done_pop(struct bo_storage *s)
{
    struct write_impl *impl = s->done_head;
    s->done_head = impl->next;
    if (s->done_head == NULL) {
        s->done_tail = NULL;
    }
    return impl;
}

/* The applier moved on: complete the writes it reached (loop thread). */
static void applier_async_cb(uv_async_t *h)
{
    struct bo_storage *s = h->data;
    struct applier *a = &s->ap;
    pthread_mutex_lock(&a->mu);
    uint64_t applied = a->applied;
    if (a->cost_ns > 0) {
        s->inline_cost_ns = a->cost_ns; /* what entries cost lately, where applied */
    }
    struct apply_fail *fails = a->fails;
    size_t n_fails = a->n_fails;
    a->fails = NULL;
    a->n_fails = a->cap_fails = 0;
    int fatal_rv = a->fatal_rv;
    char fatal_msg[sizeof(a->fatal_msg)];
    memcpy(fatal_msg, a->fatal_msg, sizeof(fatal_msg));
    pthread_mutex_unlock(&a->mu);

    if (applied > s->ap_seen) {
        s->stats.entries_applied += applied - s->ap_seen;
        s->ap_seen = applied;
    }
    size_t f = 0;
    while (s->done_head != NULL && s->done_head->index <= applied) {
        struct write_impl *impl = done_pop(s);
        while (f < n_fails && fails[f].index < impl->index) {
            f++;
        }
        if (f < n_fails && fails[f].index == impl->index) {
            complete_write(s, impl, fails[f].rv, fails[f].msg);
        } else {
            complete_write(s, impl, BO_OK, NULL);
        }
    }
    bo_free(fails);
    if (fatal_rv != BO_OK) {
        fatal(s, fatal_rv, fatal_msg);
        while (s->done_head != NULL) {
            complete_write(s, done_pop(s), BO_EIO, "storage stopped after a fatal error");
        }
    }
    ckpt_maybe_finish(s);
}

static int applier_start(struct bo_storage *s, struct bo_err *err)
{
    struct applier *a = &s->ap;
    if (pthread_mutex_init(&a->mu, NULL) != 0) {
        return bo_errf(err, BO_ENOMEM, "storage: applier lock");
    }
    if (pthread_cond_init(&a->work_cv, NULL) != 0) {
        pthread_mutex_destroy(&a->mu);
        return bo_errf(err, BO_ENOMEM, "storage: applier condition");
    }
    if (pthread_cond_init(&a->idle_cv, NULL) != 0) {
        pthread_cond_destroy(&a->work_cv);
        pthread_mutex_destroy(&a->mu);
        return bo_errf(err, BO_ENOMEM, "storage: applier condition");
    }
    int rv = uv_async_init(s->loop, &a->async, applier_async_cb);
    if (rv == 0) {
        a->async.data = s;
        rv = pthread_create(&a->thread, NULL, applier_main, s);
        if (rv != 0) {
            uv_close((uv_handle_t *)&a->async, NULL);
            uv_run(s->loop, UV_RUN_NOWAIT); /* let the close finish */
            rv = UV_EAGAIN;
        }
    }
    if (rv != 0) {
        pthread_cond_destroy(&a->idle_cv);
        pthread_cond_destroy(&a->work_cv);
        pthread_mutex_destroy(&a->mu);
        return bo_errf(err, BO_ENOMEM, "storage: start the applier: %s", uv_strerror(rv));
    }
    a->running = true;
    return BO_OK;
}

/* Stop the thread once it has applied everything queued (loop thread). The
 * async handle stays open; raft_closed_cb (or applier_abort) closes it. */
static void applier_stop(struct bo_storage *s)
{
    struct applier *a = &s->ap;
    if (!a->running) {
        return;
    }
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_signal(&a->work_cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    a->running = false;
}

static void applier_release(struct bo_storage *s)
{
    struct applier *a = &s->ap;
    for (size_t i = 0; i < a->n; i++) {
        bo_free(a->q[i]);
    }
    bo_free(a->q);
    bo_free(a->fails);
    pthread_cond_destroy(&a->idle_cv);
    pthread_cond_destroy(&a->work_cv);
    pthread_mutex_destroy(&a->mu);
}

/* Entries are applied on the loop thread while they would take less than
 * this share of it (APPLIER_LIGHT_PCT of each APPLIER_WINDOW_NS, at the
 * cost per entry measured there), and by the applier above it. Under a
 * light load that spares each write two thread wakeups, each of which can
 * wait for a CPU behind background work (docs/benchmarks.md, "Fifth pass");
 * under a heavy one the loop keeps raft going while the applier applies.
 * The share leaves room for the loop's own work per write, about as much
 * again: at 30%, once new tasks cost a third less to apply, the loop took
 * them up to ~20,000 a second, became the bottleneck itself and stayed
 * there as its rate fell (docs/benchmarks.md, "Eighth pass"). */
#define APPLIER_WINDOW_NS (50 * 1000 * 1000ull)
#define APPLIER_LIGHT_PCT 15

static bool applier_light(struct bo_storage *s)
{
    uint64_t now = now_ns();
    if (now - s->win_start_ns >= APPLIER_WINDOW_NS) {
        /* A window with no entry at all leaves nothing to remember. */
        s->win_prev = now - s->win_start_ns >= 2 * APPLIER_WINDOW_NS ? 0 : s->win_count;
        s->win_count = 0;
        s->win_start_ns = now;
    }
    s->win_count++;
    uint64_t max = APPLIER_WINDOW_NS * APPLIER_LIGHT_PCT / 100 / (s->inline_cost_ns + 1);
    return s->win_count <= max && s->win_prev <= max;
}

/* The loop applied entry `index` itself, in `ns`, while the applier idled. */
static void applier_note_inline(struct bo_storage *s, uint64_t index, uint64_t ns)
{
    s->inline_cost_ns = (s->inline_cost_ns * 7 + ns) / 8;
    struct applier *a = &s->ap;
    pthread_mutex_lock(&a->mu);
    a->applied = index;
    pthread_mutex_unlock(&a->mu);
    s->ap_seen = index; /* counted in fsm_apply, not by applier_async_cb */
}

static int applier_push(struct bo_storage *s, const struct raft_buffer *buf, uint64_t index)
{
    struct applier *a = &s->ap;
    struct apply_item *it = bo_malloc(sizeof(*it) + buf->len);
    if (it == NULL) {
        return BO_ENOMEM;
    }
    it->index = index;
    it->len = buf->len;
    memcpy(it->data, buf->base, buf->len);
    pthread_mutex_lock(&a->mu);
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        struct apply_item **q = bo_realloc(a->q, cap * sizeof(*q));
        if (q == NULL) {
            pthread_mutex_unlock(&a->mu);
            bo_free(it);
            return BO_ENOMEM;
        }
        a->q = q;
        a->cap = cap;
    }
    a->q[a->n++] = it;
    if (a->n == 1) {
        pthread_cond_signal(&a->work_cv);
    }
    pthread_mutex_unlock(&a->mu);
    return BO_OK;
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct bo_storage *s = fsm->data;
    struct bo_err err = BO_ERR_INIT;
    uint64_t index = raft_last_applied(&s->raft) + 1;
    s->fsm_index = index;
    s->fsm_inline = !s->applier_on || (!s->applier_all && applier_light(s) && applier_idle(s));
    if (!s->fsm_inline) {
        int rv = s->fatal ? BO_EIO : applier_push(s, buf, index);
        if (rv != BO_OK && !s->fatal) {
            char msg[64];
            snprintf(msg, sizeof(msg), "apply entry %llu: out of memory",
                     (unsigned long long)index);
            fatal(s, rv, msg);
        }
        *result = (void *)(intptr_t)rv;
        return 0;
    }
    /* Here, on the loop thread: without the applier, or while it idles (only
     * this thread queues work for it, so it stays idle until we do). Under a
     * light load that spares each write two thread wakeups; under a heavy
     * one the applier is busy and takes the entries. */
    if (s->fatal) {
        *result = (void *)(intptr_t)BO_EIO;
        return 0;
    }
    uint64_t t0 = s->applier_on ? now_ns() : 0;
    int rv = bo_store_apply_entry(s->store, buf->base, buf->len, index, &err);
    if (s->applier_on) {
        applier_note_inline(s, index, now_ns() - t0);
    }
    s->stats.entries_applied++;
    if (rv != BO_OK) {
        s->apply_err = err;
        if (rv != BO_EINVAL && rv != BO_ECORRUPT) {
            char msg[BO_ERR_MSG_SIZE + 64];
            snprintf(msg, sizeof(msg), "apply entry %llu: %s", (unsigned long long)index,
                     bo_err_msg(&err, rv));
            fatal(s, rv, msg);
        }
    }
    /* Raft stops applying if the fsm fails, so the outcome travels in result. */
    *result = (void *)(intptr_t)rv;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct bo_storage *s = fsm->data;
    struct bo_err err = BO_ERR_INIT;
    applier_drain(s);
    int rv = bo_store_restore(s->store, buf->base, buf->len, 0, &err);
    if (rv != BO_OK) {
        bo_err_wrapf(&err, rv, "restore snapshot");
        s->restore_err = err;
        bo_error("storage: %s", err.msg);
        return rv == BO_ENOMEM ? RAFT_NOMEM : RAFT_CORRUPT;
    }
    raft_free(buf->base);
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct bo_storage *s = fsm->data;
    if (s->snap_view != NULL || s->closing) {
        return RAFT_BUSY;
    }
    struct bo_err err = BO_ERR_INIT;
    applier_drain(s); /* the view must be at raft's applied index */
    int rv = bo_store_view_open(s->store, &s->snap_view, &err);
    if (rv != BO_OK) {
        bo_warn("storage: snapshot: %s", bo_err_msg(&err, rv));
        return RAFT_BUSY;
    }
    s->snap_start_ns = now_ns();
    s->snap_rv = BO_OK;
    s->snap_errmsg[0] = '\0';
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

/* Builds an image from a pinned view. Runs on a worker thread; touches only
 * the view and the output. */
static int build_image(struct bo_store_view *view, bool dedup, enum bo_codec codec, int level,
                       int64_t now, struct bo_buf *image, struct bo_snap_stats *stats,
                       struct bo_err *err)
{
    struct bo_snap_writer *w;
    int rv = bo_snap_writer_new(dedup, codec, level, &w);
    if (rv != BO_OK) {
        return bo_errf(err, rv, "snapshot writer: %s", bo_strerror(rv));
    }
    rv = bo_store_view_export(view, w, now, err);
    if (rv == BO_OK) {
        rv = bo_snap_writer_finish(w, image, stats, err);
    }
    bo_snap_writer_free(w);
    return rv;
}

struct image_args {
    struct bo_store_view *view;
    bool dedup;
    enum bo_codec codec;
    int level;
    int64_t now_ms;
    struct bo_buf *image;
    struct bo_err *err;
    int rv;
};

static void build_image_fn(void *p)
{
    struct image_args *a = p;
    a->rv = build_image(a->view, a->dedup, a->codec, a->level, a->now_ms, a->image, NULL, a->err);
}

static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct bo_storage *s = fsm->data;
    struct bo_err err = BO_ERR_INIT;
    struct image_args args = {.view = s->snap_view,
                              .dedup = s->cfg.snapshot_dedup,
                              .codec = s->cfg.snapshot_codec,
                              .level = s->cfg.snapshot_level,
                              .now_ms = wall_ms(),
                              .image = &s->snap_image,
                              .err = &err};
    run_low_priority(build_image_fn, &args);
    int rv = args.rv;
    if (rv == BO_OK) {
        s->snap_bufs = raft_malloc(sizeof(*s->snap_bufs));
        if (s->snap_bufs == NULL) {
            rv = bo_errf(&err, BO_ENOMEM, "snapshot buffers");
        }
    }
    if (rv != BO_OK) {
        s->snap_rv = rv;
        snprintf(s->snap_errmsg, sizeof(s->snap_errmsg), "%s", bo_err_msg(&err, rv));
        return rv == BO_ENOMEM ? RAFT_NOMEM : RAFT_IOERR;
    }
    s->snap_bufs[0].base = s->snap_image.data;
    s->snap_bufs[0].len = s->snap_image.len;
    *bufs = s->snap_bufs;
    *n_bufs = 1;
    return 0;
}

static void finish_snapshot_now(struct bo_storage *s, int status, const char *msg)
{
    if (!s->snap_now_pending) {
        return;
    }
    s->snap_now_pending = false;
    raft_set_snapshot_threshold(&s->raft, s->cfg.snapshot_threshold);
    if (s->snap_now_cb != NULL) {
        s->snap_now_cb(s, status, msg, s->snap_now_data);
    }
}

static void maybe_finish_close(struct bo_storage *s);

static void reap_fn(void *p)
{
    struct reap_job *job = p;
    bo_store_view_release(job->view);
    bo_buf_release(&job->image);
}

static void reap_work(uv_work_t *work)
{
    run_low_priority(reap_fn, work->data);
}

static void reap_after_work(uv_work_t *work, int status)
{
    (void)status;
    struct reap_job *job = work->data;
    struct bo_storage *s = job->s;
    bo_store_view_close(job->view); /* released already: bookkeeping only */
    bo_buf_release(&job->image);    /* if the work was canceled */
    bo_free(job);
    s->reaps--;
    if (s->closing) {
        maybe_finish_close(s);
    }
}

/* Let go of `view` and `image` off the loop, or here if the pool refuses. */
static void reap(struct bo_storage *s, struct bo_store_view *view, struct bo_buf *image)
{
    struct reap_job *job = bo_calloc(1, sizeof(*job));
    if (job != NULL) {
        job->s = s;
        job->view = view;
        job->image = *image;
        *image = (struct bo_buf)BO_BUF_INIT;
        job->work.data = job;
        if (uv_queue_work(s->loop, &job->work, reap_work, reap_after_work) == 0) {
            s->reaps++;
            return;
        }
        *image = job->image;
        bo_free(job);
    }
    bo_store_view_close(view);
    bo_buf_release(image);
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct bo_storage *s = fsm->data;
    double secs = (double)(now_ns() - s->snap_start_ns) / 1e9;
    uint64_t bytes = s->snap_image.len;
    if (s->snap_bufs != NULL) {
        raft_free(s->snap_bufs);
        s->snap_bufs = NULL;
    }
    *bufs = NULL;
    *n_bufs = 0;
    reap(s, s->snap_view, &s->snap_image);
    s->snap_view = NULL;
    if (s->snap_rv == BO_OK) {
        s->stats.snapshots_taken++;
        s->stats.last_snapshot_bytes = bytes;
        s->stats.last_snapshot_seconds = secs;
        bo_info("storage: snapshot at %llu: %llu bytes in %.3f s",
                (unsigned long long)raft_last_applied(&s->raft), (unsigned long long)bytes, secs);
        finish_snapshot_now(s, BO_OK, "snapshot taken");
    } else {
        bo_warn("storage: snapshot failed: %s", s->snap_errmsg);
        finish_snapshot_now(s, s->snap_rv, s->snap_errmsg);
    }
    return 0;
}

/* -------------------------------------------------------------- roles ---- */

static void set_role(struct bo_storage *s, enum bo_storage_role role)
{
    if (s->role == role) {
        return;
    }
    s->role = role;
    if (s->cfg.role_cb != NULL && !s->closing) {
        s->cfg.role_cb(s, role, s->cfg.data);
    }
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    struct bo_storage *s = req->data;
    s->barrier_pending = false;
    applier_drain(s); /* a new leader's reads see every earlier entry */
    bo_store_note_index(s->store, raft_last_applied(&s->raft));
    if (status == 0 && raft_state(&s->raft) == RAFT_LEADER) {
        set_role(s, BO_ROLE_LEADER);
    }
}

/* Runs once per loop iteration, after the I/O callbacks in which raft applied
 * entries: everything applied in the iteration becomes one SQLite commit. */
static void flush_check_cb(uv_check_t *h)
{
    struct bo_storage *s = h->data;
    /* With the applier, it commits what it applies; here only a group of
     * reads (bo_store_read_begin) is left to end, and only while it idles. */
    if (s->applier_on && !applier_idle(s)) {
        return;
    }
    if (!bo_store_pending(s->store)) {
        return;
    }
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_store_flush(s->store, &err);
    if (rv != BO_OK) {
        char msg[BO_ERR_MSG_SIZE + 32];
        snprintf(msg, sizeof(msg), "sqlite commit: %s", bo_err_msg(&err, rv));
        fatal(s, rv, msg);
        return;
    }
    ckpt_maybe_finish(s);
}

/* A worker's checkpoint ended: copy the few frames committed meanwhile, on
 * the store's connection between two groups (store.h, "Checkpoints"). */
static void ckpt_maybe_finish(struct bo_storage *s)
{
    if (s->ckpt_finish && s->ckpt == NULL) {
        s->ckpt_finish = false;
        struct bo_err err = BO_ERR_INIT;
        int rv = bo_store_ckpt_finish(s->store, &err);
        if (rv != BO_OK) {
            bo_warn("storage: checkpoint: %s", bo_err_msg(&err, rv));
        }
    }
}

/* WAL checkpoints run on the thread pool so the loop never copies pages into
 * the database file itself (store.h, "Checkpoints"). */
static void ckpt_start(struct bo_storage *s);

static void ckpt_fn(void *p)
{
    struct ckpt_job *job = p;
    job->rv = bo_store_ckpt_run(job->ckpt, &job->err);
}

static void ckpt_work(uv_work_t *work)
{
    run_low_priority(ckpt_fn, work->data);
}

static void ckpt_after_work(uv_work_t *work, int status)
{
    (void)status;
    struct ckpt_job *job = work->data;
    struct bo_storage *s = job->s;
    bo_store_ckpt_close(job->ckpt);
    if (job->rv != BO_OK) {
        bo_warn("storage: checkpoint: %s", bo_err_msg(&job->err, job->rv));
    }
    s->ckpt = NULL;
    s->ckpt_finish = job->rv == BO_OK;
    bool again = job->rv == BO_OK && bo_store_ckpt_behind(s->store);
    bo_free(job);
    if (s->closing) {
        maybe_finish_close(s);
        return;
    }
    /* Writes came in faster than one checkpoint a timer tick copies: run
     * the next at once. Each pass copies what the previous one left, so the
     * gap shrinks as long as copying outruns writing (it does, by several
     * times), until bo_store_ckpt_finish can close it and the WAL starts
     * over. On the timer alone, state changes at a million tasks grew the
     * WAL to 718 MB in 8 s. */
    if (again) {
        ckpt_start(s);
    }
}

static void ckpt_timer_cb(uv_timer_t *t)
{
    ckpt_start(t->data);
}

/* Start a checkpoint on the thread pool unless one runs or nothing new was
 * committed since the last. */
static void ckpt_start(struct bo_storage *s)
{
    if (s->ckpt != NULL || s->closing) {
        return;
    }
    /* Nothing committed since the last checkpoint: nothing to copy. */
    uint64_t index = bo_store_applied_index(s->store);
    if (index == s->ckpt_index) {
        return;
    }
    s->ckpt_index = index;
    struct ckpt_job *job = bo_calloc(1, sizeof(*job));
    if (job == NULL) {
        return;
    }
    job->s = s;
    job->work.data = job;
    if (bo_store_ckpt_open(s->store, &job->ckpt, &job->err) != BO_OK) {
        bo_free(job);
        return; /* a restore is running; next time */
    }
    if (uv_queue_work(s->loop, &job->work, ckpt_work, ckpt_after_work) != 0) {
        bo_store_ckpt_close(job->ckpt);
        bo_free(job);
        return;
    }
    s->ckpt = job;
}

static void role_timer_cb(uv_timer_t *t)
{
    struct bo_storage *s = t->data;
    int state = raft_state(&s->raft);
    if (state == RAFT_LEADER) {
        if (s->role != BO_ROLE_LEADER && !s->barrier_pending) {
            s->barrier.data = s;
            if (raft_barrier(&s->raft, &s->barrier, barrier_cb) == 0) {
                s->barrier_pending = true;
            }
        }
        return;
    }
    set_role(s, state == RAFT_FOLLOWER    ? BO_ROLE_FOLLOWER
                : state == RAFT_CANDIDATE ? BO_ROLE_CANDIDATE
                                          : BO_ROLE_UNAVAILABLE);
}

enum bo_storage_role bo_storage_role(const struct bo_storage *s)
{
    return s->role;
}

void bo_storage_leader(const struct bo_storage *s, uint64_t *id, const char **address)
{
    raft_id lid = 0;
    const char *addr = NULL;
    raft_leader((struct raft *)&s->raft, &lid, &addr);
    if (id != NULL) {
        *id = lid;
    }
    if (address != NULL) {
        *address = addr;
    }
}

struct bo_store *bo_storage_store(struct bo_storage *s)
{
    return s->store;
}

/* -------------------------------------------------------------- writes ---- */

static int not_leader(struct bo_storage *s, struct bo_err *err)
{
    uint64_t id;
    const char *addr;
    bo_storage_leader(s, &id, &addr);
    if (s->role != BO_ROLE_LEADER && id == s->cfg.id) {
        return bo_errf(err, BO_ENOLEADER, "this replica was just elected and is catching up");
    }
    if (id == 0 || addr == NULL) {
        return bo_errf(err, BO_ENOLEADER, "no leader");
    }
    return bo_errf(err, BO_ENOTLEADER, "not the leader; leader is %llu at '%s'",
                   (unsigned long long)id, addr);
}

static void record_latency(struct bo_storage *s, uint64_t start_ns)
{
    uint64_t us = (now_ns() - start_ns) / 1000;
    s->stats.commit_latency_us_sum += us;
    size_t i = 0;
    uint64_t bound = 100;
    while (i < 15 && us > bound) {
        bound *= 2;
        i++;
    }
    s->stats.commit_latency_us_buckets[i]++;
}

static void apply_cb(struct raft_apply *apply, int status, void *result)
{
    struct write_impl *impl = apply->data;
    struct bo_storage *s = impl->req->s;
    int rv = status != 0 ? from_raft(status) : (int)(intptr_t)result;
    char buf[BO_ERR_MSG_SIZE];
    if (status != 0) {
        snprintf(buf, sizeof(buf), "log append: %s", raft_strerror(status));
        complete_write(s, impl, rv, buf);
        return;
    }
    /* libraft 0.15 calls this right after fsm_apply for the same entry and
     * counts the entry as applied only afterwards. */
    impl->index = s->fsm_index;
    if (s->fsm_inline && s->applier_on) {
        /* Earlier writes the applier applied are called back first. */
        applier_async_cb(&s->ap.async);
    }
    if (rv != BO_OK) {
        complete_write(s, impl, rv,
                       s->fsm_inline ? bo_err_msg(&s->apply_err, rv)
                                     : "storage stopped after a fatal error");
        return;
    }
    if (s->fsm_inline) {
        complete_write(s, impl, BO_OK, NULL);
        return;
    }
    /* Committed and queued for the applier: completed when it is applied. */
    impl->next = NULL;
    if (s->done_tail != NULL) {
        s->done_tail->next = impl;
    } else {
        s->done_head = impl;
    }
    s->done_tail = impl;
}

/* Raft's segment format stores entry payloads padded to 8 bytes and trusts
 * their lengths to be multiples of 8. An encoded LogEntry gets a trailing
 * `padding` field (number 15, length-delimited) of the right size: a field
 * header is two bytes, so a shortfall of 1 takes 9. */
static size_t padding_for(size_t len)
{
    size_t pad = (8 - len % 8) % 8;
    return pad == 1 ? 9 : pad;
}

static void put_padding(uint8_t *p, size_t pad)
{
    if (pad == 0) {
        return;
    }
    p[0] = (15 << 3) | 2;
    p[1] = (uint8_t)(pad - 2);
    memset(p + 2, 0, pad - 2);
}

static int submit(struct bo_storage *s, struct bo_storage_write *req, struct raft_buffer *buf,
                  bo_storage_write_cb cb, struct bo_err *err)
{
    struct write_impl *impl = bo_malloc(sizeof(*impl));
    if (impl == NULL) {
        raft_free(buf->base);
        return bo_errf(err, BO_ENOMEM, "write: out of memory");
    }
    impl->req = req;
    impl->start_ns = now_ns();
    impl->apply.data = impl;
    req->s = s;
    req->cb = cb;
    req->index = 0;
    req->impl = impl;
    int rv = raft_apply(&s->raft, &impl->apply, buf, 1, apply_cb);
    if (rv == 0) {
        s->applies++;
    }
    if (rv != 0) {
        raft_free(buf->base);
        bo_free(impl);
        req->impl = NULL;
        if (rv == RAFT_NOTLEADER) {
            return not_leader(s, err);
        }
        return bo_errf(err, from_raft(rv), "log append: %s", raft_errmsg(&s->raft));
    }
    return BO_OK;
}

static int check_writable(struct bo_storage *s, struct bo_err *err)
{
    if (s->closing) {
        return bo_errf(err, BO_ESHUTDOWN, "storage is closing");
    }
    if (s->fatal) {
        return bo_errf(err, BO_EIO, "storage stopped after a fatal error");
    }
    if (s->role != BO_ROLE_LEADER) {
        return not_leader(s, err);
    }
    return BO_OK;
}

int bo_storage_write(struct bo_storage *s, struct bo_storage_write *req, const Bo__Transaction *txn,
                     bo_storage_write_cb cb, struct bo_err *err)
{
    int rv = check_writable(s, err);
    if (rv != BO_OK) {
        return rv;
    }
    rv = bo_store_validate(s->store, txn, err);
    if (rv != BO_OK) {
        return rv;
    }
    Bo__LogEntry entry = BO__LOG_ENTRY__INIT;
    entry.entry_case = BO__LOG_ENTRY__ENTRY_TRANSACTION;
    entry.transaction = (Bo__Transaction *)txn;
    size_t len = protobuf_c_message_get_packed_size(&entry.base);
    size_t pad = padding_for(len);
    struct raft_buffer buf = {.base = raft_malloc(len + pad), .len = len + pad};
    if (buf.base == NULL) {
        return bo_errf(err, BO_ENOMEM, "write: out of memory");
    }
    protobuf_c_message_pack(&entry.base, buf.base);
    put_padding((uint8_t *)buf.base + len, pad);
    return submit(s, req, &buf, cb, err);
}

int bo_storage_write_entry(struct bo_storage *s, struct bo_storage_write *req, const uint8_t *entry,
                           size_t len, bo_storage_write_cb cb, struct bo_err *err)
{
    int rv = check_writable(s, err);
    if (rv != BO_OK) {
        return rv;
    }
    size_t pad = padding_for(len);
    struct raft_buffer buf = {.base = raft_malloc(len + pad), .len = len + pad};
    if (buf.base == NULL) {
        return bo_errf(err, BO_ENOMEM, "write: out of memory");
    }
    memcpy(buf.base, entry, len);
    put_padding((uint8_t *)buf.base + len, pad);
    return submit(s, req, &buf, cb, err);
}

/* ---------------------------------------------------- snapshot on demand ---- */

static void snap_now_noop_cb(struct bo_storage_write *req, int status, const char *msg)
{
    struct bo_storage *s = req->data;
    if (status != BO_OK) {
        finish_snapshot_now(s, status, msg);
    }
    /* Otherwise fsm_snapshot_finalize reports. */
}

int bo_storage_snapshot_now(struct bo_storage *s, bo_storage_done_cb cb, void *data,
                            struct bo_err *err)
{
    if (s->snap_now_pending) {
        return bo_errf(err, BO_EBUSY, "a snapshot is already being taken");
    }
    /* Raft snapshots when the entries since the last one reach the threshold;
     * lowering it to one and committing a noop takes one now. */
    static const uint8_t noop[] = {0x18, 0x01}; /* LogEntry{noop: true} */
    s->snap_now_write.data = s;
    s->snap_now_pending = true;
    s->snap_now_cb = cb;
    s->snap_now_data = data;
    raft_set_snapshot_threshold(&s->raft, 1);
    int rv =
        bo_storage_write_entry(s, &s->snap_now_write, noop, sizeof(noop), snap_now_noop_cb, err);
    if (rv != BO_OK) {
        s->snap_now_pending = false;
        raft_set_snapshot_threshold(&s->raft, s->cfg.snapshot_threshold);
    }
    return rv;
}

/* --------------------------------------------------------------- backups ---- */

static void backup_work(uv_work_t *work)
{
    struct image_job *job = work->data;
    struct bo_buf image = BO_BUF_INIT;
    struct image_args args = {.view = job->view,
                              .dedup = job->dedup,
                              .codec = job->codec,
                              .level = job->level,
                              .now_ms = job->now_ms,
                              .image = &image,
                              .err = &job->err};
    run_low_priority(build_image_fn, &args);
    /* Closing the view unmaps its mapping: here, not on the loop (reap). */
    bo_store_view_release(job->view);
    job->rv = args.rv;
    if (job->rv == BO_OK) {
        job->rv = bo_backup_write(job->s->backup_dir, job->name, image.data, image.len, &job->err);
    }
    if (job->rv == BO_OK) {
        job->rv = bo_backup_prune(job->s->backup_dir, job->s->cfg.max_saved_backups, &job->err);
    }
    bo_buf_release(&image);
}

static void backup_after_work(uv_work_t *work, int status)
{
    struct image_job *job = work->data;
    struct bo_storage *s = job->s;
    bo_store_view_close(job->view);
    s->backup = NULL;
    if (status == UV_ECANCELED) {
        job->rv = bo_errf(&job->err, BO_ECANCELED, "backup canceled");
    }
    if (job->rv == BO_OK) {
        s->stats.backups_written++;
        bo_info("storage: backup '%s' written", job->name);
    } else {
        s->stats.backups_failed++;
        bo_warn("storage: backup failed: %s", bo_err_msg(&job->err, job->rv));
    }
    if (job->cb != NULL) {
        job->cb(s, job->rv, job->rv == BO_OK ? job->name : bo_err_msg(&job->err, job->rv),
                job->data);
    }
    bo_free(job);
    if (s->closing) {
        maybe_finish_close(s);
    }
}

int bo_storage_backup_now(struct bo_storage *s, bo_storage_done_cb cb, void *data,
                          struct bo_err *err)
{
    if (s->backup_dir == NULL) {
        return bo_errf(err, BO_EINVAL, "no backup directory configured");
    }
    if (s->closing) {
        return bo_errf(err, BO_ESHUTDOWN, "storage is closing");
    }
    if (s->backup != NULL) {
        return bo_errf(err, BO_EBUSY, "a backup is already being written");
    }
    struct image_job *job = bo_calloc(1, sizeof(*job));
    if (job == NULL) {
        return bo_errf(err, BO_ENOMEM, "backup: out of memory");
    }
    int rv = bo_store_view_open(s->store, &job->view, err);
    if (rv != BO_OK) {
        bo_free(job);
        return bo_err_wrapf(err, rv, "backup");
    }
    job->s = s;
    job->dedup = s->cfg.snapshot_dedup;
    job->codec = s->cfg.snapshot_codec;
    job->level = s->cfg.snapshot_level;
    job->now_ms = wall_ms();
    bo_backup_name(job->now_ms, job->name);
    job->cb = cb;
    job->data = data;
    job->work.data = job;
    rv = uv_queue_work(s->loop, &job->work, backup_work, backup_after_work);
    if (rv != 0) {
        bo_store_view_close(job->view);
        bo_free(job);
        return bo_errf(err, BO_EIO, "backup: queue work: %s", uv_strerror(rv));
    }
    s->backup = job;
    return BO_OK;
}

static void backup_timer_cb(uv_timer_t *t)
{
    struct bo_storage *s = t->data;
    if (s->role != BO_ROLE_LEADER || s->backup != NULL) {
        return;
    }
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_storage_backup_now(s, NULL, NULL, &err);
    if (rv != BO_OK) {
        bo_warn("storage: periodic backup: %s", bo_err_msg(&err, rv));
    }
}

/* -------------------------------------------------------------- recovery ---- */

int bo_storage_recovery_stage(struct bo_storage *s, const char *name, struct bo_err *err)
{
    if (s->staged != NULL) {
        return bo_errf(err, BO_EBUSY, "another backup is already staged");
    }
    if (s->backup_dir == NULL && strchr(name, '/') == NULL) {
        return bo_errf(err, BO_EINVAL, "no backup directory configured");
    }
    if (strchr(name, '/') != NULL || strcmp(name, "..") == 0) {
        return bo_errf(err, BO_EINVAL, "backup name '%s' must be a plain file name", name);
    }
    uint8_t *image;
    size_t len;
    int rv = bo_backup_read(s->backup_dir, name, &image, &len, err);
    if (rv != BO_OK) {
        return bo_err_wrapf(err, rv, "stage '%s'", name);
    }
    rv = bo_store_open(s->staged_path, true, &s->staged, err);
    if (rv == BO_OK) {
        rv = bo_store_restore(s->staged, image, len, 0, err);
        if (rv != BO_OK) {
            bo_store_close(s->staged);
            s->staged = NULL;
            remove(s->staged_path);
        }
    }
    bo_free(image);
    return rv == BO_OK ? BO_OK : bo_err_wrapf(err, rv, "stage '%s'", name);
}

int bo_storage_recovery_query(struct bo_storage *s, const struct bo_task_query *q,
                              struct bo_task_list *out, struct bo_err *err)
{
    if (s->staged == NULL) {
        return bo_errf(err, BO_ENOTFOUND, "no backup is staged");
    }
    return bo_store_query_tasks(s->staged, q, true, out, err);
}

int bo_storage_recovery_delete(struct bo_storage *s, const struct bo_task_query *q,
                               uint64_t *deleted, struct bo_err *err)
{
    if (s->staged == NULL) {
        return bo_errf(err, BO_ENOTFOUND, "no backup is staged");
    }
    struct bo_task_list list = {0};
    int rv = bo_store_query_tasks(s->staged, q, false, &list, err);
    if (rv != BO_OK) {
        return rv;
    }
    char **ids = bo_calloc(list.n, sizeof(*ids));
    if (ids == NULL) {
        bo_task_list_release(&list);
        return bo_errf(err, BO_ENOMEM, "recovery delete: out of memory");
    }
    for (size_t i = 0; i < list.n; i++) {
        ids[i] = list.tasks[i]->assigned_task->task_id;
    }
    Bo__RemoveTasks remove = BO__REMOVE_TASKS__INIT;
    remove.n_task_ids = list.n;
    remove.task_ids = ids;
    Bo__Op op = BO__OP__INIT;
    op.op_case = BO__OP__OP_REMOVE_TASKS;
    op.remove_tasks = &remove;
    Bo__Op *ops[] = {&op};
    Bo__Transaction txn = BO__TRANSACTION__INIT;
    txn.n_ops = 1;
    txn.ops = ops;
    txn.schema_version = BO_SCHEMA_VERSION;
    rv = list.n == 0 ? BO_OK
                     : bo_store_apply(s->staged, &txn, bo_store_applied_index(s->staged), err);
    if (rv == BO_OK && deleted != NULL) {
        *deleted = list.n;
    }
    bo_free(ids);
    bo_task_list_release(&list);
    return rv;
}

int bo_storage_recovery_unload(struct bo_storage *s, struct bo_err *err)
{
    if (s->staged == NULL) {
        return bo_errf(err, BO_ENOTFOUND, "no backup is staged");
    }
    if (s->recovery_write != NULL) {
        return bo_errf(err, BO_EBUSY, "the staged backup is being committed");
    }
    bo_store_close(s->staged);
    s->staged = NULL;
    remove(s->staged_path);
    return BO_OK;
}

static void recovery_commit_cb(struct bo_storage_write *req, int status, const char *msg)
{
    struct bo_storage *s = req->data;
    bo_free(req);
    s->recovery_write = NULL;
    if (status == BO_OK) {
        struct bo_err ignored = BO_ERR_INIT;
        bo_storage_recovery_unload(s, &ignored);
    }
    if (s->recovery_cb != NULL) {
        s->recovery_cb(s, status, status == BO_OK ? "recovery committed" : msg, s->recovery_data);
    }
}

int bo_storage_recovery_commit(struct bo_storage *s, bo_storage_done_cb cb, void *data,
                               struct bo_err *err)
{
    if (s->staged == NULL) {
        return bo_errf(err, BO_ENOTFOUND, "no backup is staged");
    }
    if (s->recovery_write != NULL) {
        return bo_errf(err, BO_EBUSY, "the staged backup is already being committed");
    }
    struct bo_snap_writer *w;
    int rv = bo_snap_writer_new(true, s->cfg.snapshot_codec, s->cfg.snapshot_level, &w);
    if (rv != BO_OK) {
        return bo_errf(err, rv, "recovery commit: snapshot writer");
    }
    struct bo_buf image = BO_BUF_INIT;
    rv = bo_store_export(s->staged, w, wall_ms(), err);
    if (rv == BO_OK) {
        rv = bo_snap_writer_finish(w, &image, NULL, err);
    }
    bo_snap_writer_free(w);
    struct bo_storage_write *req = NULL;
    if (rv == BO_OK) {
        req = bo_calloc(1, sizeof(*req));
        rv = req == NULL ? bo_errf(err, BO_ENOMEM, "recovery commit: out of memory") : BO_OK;
    }
    if (rv == BO_OK) {
        /* The log entry is the image's payload: an encoded LogEntry holding the
         * whole state, which every replica applies by replacing its state. */
        req->data = s;
        rv = bo_storage_write_entry(s, req, image.data + BO_SNAP_HEADER_SIZE,
                                    image.len - BO_SNAP_HEADER_SIZE, recovery_commit_cb, err);
    }
    bo_buf_release(&image);
    if (rv != BO_OK) {
        bo_free(req);
        return bo_err_wrapf(err, rv, "recovery commit");
    }
    s->recovery_write = req;
    s->recovery_cb = cb;
    s->recovery_data = data;
    return BO_OK;
}

/* ---------------------------------------------------------- open / close ---- */

static void wait_raft_closed_cb(struct raft *r)
{
    struct bo_storage *s = r->data;
    s->raft_started = false;
}

/* Closing raft is asynchronous; when open fails halfway there is no caller
 * loop running yet, so run ours until raft is done. */
static void abort_raft(struct bo_storage *s)
{
    s->raft_started = true;
    raft_close(&s->raft, wait_raft_closed_cb);
    while (s->raft_started) {
        uv_run(s->loop, UV_RUN_ONCE);
    }
    raft_uv_close(&s->io);
    raft_uv_tcp_close(&s->transport);
}

static void applier_abort_closed_cb(uv_handle_t *h)
{
    struct bo_storage *s = h->data;
    s->ap.async.data = NULL;
}

/* Undo applier_start for a failed open: nothing was queued for it. */
static void applier_abort(struct bo_storage *s)
{
    if (!s->ap.running) {
        return;
    }
    applier_stop(s);
    uv_close((uv_handle_t *)&s->ap.async, applier_abort_closed_cb);
    while (s->ap.async.data != NULL) {
        uv_run(s->loop, UV_RUN_ONCE);
    }
    applier_release(s);
    s->applier_on = false;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? bo_strdup(s) : NULL;
}

static void free_storage(struct bo_storage *s)
{
    bo_free(s->data_dir);
    bo_free(s->address);
    bo_free(s->backup_dir);
    bo_free(s);
}

int bo_storage_open(uv_loop_t *loop, const struct bo_storage_config *cfg, struct bo_storage **out,
                    struct bo_err *err)
{
    if (cfg->data_dir == NULL || cfg->address == NULL || cfg->id == 0) {
        return bo_errf(err, BO_EINVAL, "storage: data_dir, address and a non-zero id are needed");
    }
    struct bo_storage *s = bo_calloc(1, sizeof(*s));
    if (s == NULL) {
        return bo_errf(err, BO_ENOMEM, "storage: out of memory");
    }
    bo_iodefer_init();   /* raft's io_destroy off this loop (iodefer.h) */
    bo_segfill_init();   /* raft's segments as written zeros (segfill.h) */
    bo_pacewrite_init(); /* raft's snapshot files written back as they go (pacewrite.h) */
    s->loop = loop;
    s->cfg = *cfg;
    s->data_dir = bo_strdup(cfg->data_dir);
    s->address = bo_strdup(cfg->address);
    s->backup_dir = dup_or_null(cfg->backup_dir);
    s->cfg.data_dir = s->data_dir;
    s->cfg.address = s->address;
    s->cfg.backup_dir = s->backup_dir;
    s->cfg.peers = NULL; /* only used below, while bootstrapping */
    int rv;
    if (s->data_dir == NULL || s->address == NULL || (cfg->backup_dir && !s->backup_dir)) {
        rv = bo_errf(err, BO_ENOMEM, "storage: out of memory");
        goto err_after_alloc;
    }
    rv = bo_fs_mkdirs(s->data_dir, err);
    if (rv != BO_OK) {
        goto err_after_alloc;
    }
    if (bo_fs_join(s->db_path, sizeof(s->db_path), s->data_dir, "state.db") != BO_OK ||
        bo_fs_join(s->staged_path, sizeof(s->staged_path), s->data_dir, "recovery.db") != BO_OK) {
        rv = bo_errf(err, BO_ETOOBIG, "storage: data directory path too long");
        goto err_after_alloc;
    }
    rv = bo_store_open(s->db_path, true, &s->store, err);
    if (rv != BO_OK) {
        bo_err_wrapf(err, rv, "storage: open '%s'", s->db_path);
        goto err_after_alloc;
    }
    bo_store_set_group_commit(s->store, true);

    rv = raft_uv_tcp_init(&s->transport, loop);
    if (rv != 0) {
        rv = bo_errf(err, from_raft(rv), "storage: raft transport: %s", raft_strerror(rv));
        goto err_after_store;
    }
    rv = raft_uv_init(&s->io, loop, s->data_dir, &s->transport);
    if (rv != 0) {
        rv = bo_errf(err, from_raft(rv), "storage: raft io on '%s': %s", s->data_dir, s->io.errmsg);
        raft_uv_tcp_close(&s->transport);
        goto err_after_store;
    }
    /* Our images are compressed already, and corruption must be reported, not
     * repaired by truncating the log. */
    raft_uv_set_snapshot_compression(&s->io, false);
    raft_uv_set_auto_recovery(&s->io, false);
    if (cfg->segment_size > 0) {
        raft_uv_set_segment_size(&s->io, cfg->segment_size);
    }
    /* raft_uv 0.15 implements async_work (on libuv's thread pool) but still
     * declares io version 1, and raft only uses async snapshots from version 2
     * on. Declare what is there; refuse to run without it rather than take
     * snapshots on the loop thread. */
    if (s->io.async_work == NULL) {
        rv = bo_errf(err, BO_EINTERNAL, "storage: this libraft has no async_work");
        raft_uv_close(&s->io);
        raft_uv_tcp_close(&s->transport);
        goto err_after_store;
    }
    s->io.version = 2;

    s->fsm.version = 3;
    s->fsm.data = s;
    s->fsm.apply = fsm_apply;
    s->fsm.snapshot = fsm_snapshot;
    s->fsm.restore = fsm_restore;
    s->fsm.snapshot_finalize = fsm_snapshot_finalize;
    s->fsm.snapshot_async = fsm_snapshot_async;

    rv = raft_init(&s->raft, &s->io, &s->fsm, cfg->id, s->address);
    if (rv != 0) {
        rv = bo_errf(err, from_raft(rv), "storage: raft init: %s", raft_errmsg(&s->raft));
        raft_uv_close(&s->io);
        raft_uv_tcp_close(&s->transport);
        goto err_after_store;
    }
    s->raft.data = s;

    struct raft_configuration conf;
    raft_configuration_init(&conf);
    if (cfg->n_peers == 0) {
        rv = raft_configuration_add(&conf, cfg->id, s->address, RAFT_VOTER);
    } else {
        rv = 0;
        for (size_t i = 0; i < cfg->n_peers && rv == 0; i++) {
            rv = raft_configuration_add(&conf, cfg->peers[i].id, cfg->peers[i].address, RAFT_VOTER);
        }
    }
    if (rv == 0) {
        rv = raft_bootstrap(&s->raft, &conf);
        if (rv == RAFT_CANTBOOTSTRAP) {
            rv = 0; /* not pristine: the configuration is in the log */
        }
    }
    raft_configuration_close(&conf);
    if (rv != 0) {
        rv = bo_errf(err, from_raft(rv), "storage: bootstrap '%s': %s", s->data_dir,
                     raft_errmsg(&s->raft));
        goto err_after_raft;
    }

    raft_set_snapshot_threshold(&s->raft, cfg->snapshot_threshold);
    raft_set_snapshot_trailing(&s->raft, cfg->snapshot_trailing);
    raft_set_election_timeout(&s->raft, cfg->election_timeout_ms);
    raft_set_heartbeat_timeout(&s->raft, cfg->heartbeat_timeout_ms);
    raft_set_pre_vote(&s->raft, true);

    s->applier_on = bo_flags_env_on("BO_APPLIER");
    /* "all": every entry through the applier, however light the load (tests,
     * comparisons). */
    const char *ap_env = getenv("BO_APPLIER");
    s->applier_all = ap_env != NULL && strcmp(ap_env, "all") == 0;
    s->inline_cost_ns = 30000; /* until measured */
    if (s->applier_on) {
        rv = applier_start(s, err);
        if (rv != BO_OK) {
            goto err_after_raft;
        }
    }
    rv = raft_start(&s->raft);
    if (rv != 0) {
        if (s->restore_err.msg[0] != '\0') {
            rv = bo_errf(err, BO_ECORRUPT, "storage: '%s': %s", s->data_dir, s->restore_err.msg);
        } else {
            int code = from_raft(rv);
            if (code == BO_EIO && strstr(raft_errmsg(&s->raft), "checksum") != NULL) {
                code = BO_ECORRUPT;
            }
            const char *why = raft_errmsg(&s->raft);
            if (why == NULL || why[0] == '\0') {
                /* raft says nothing when its transport cannot listen */
                rv = bo_errf(err, code,
                             "storage: start raft in '%s' on '%s': %s (is the address in use?)",
                             s->data_dir, s->address, raft_strerror(rv));
            } else {
                rv = bo_errf(err, code, "storage: load '%s': %s", s->data_dir, why);
            }
        }
        goto err_after_raft;
    }

    bo_store_note_index(s->store, raft_last_applied(&s->raft));
    uv_check_init(loop, &s->flush_check);
    s->flush_check.data = s;
    uv_check_start(&s->flush_check, flush_check_cb);
    uv_timer_init(loop, &s->ckpt_timer);
    s->ckpt_timer.data = s;
    uv_timer_start(&s->ckpt_timer, ckpt_timer_cb, 100, 100);
    uv_timer_init(loop, &s->role_timer);
    s->role_timer.data = s;
    uv_timer_start(&s->role_timer, role_timer_cb, 0, ROLE_POLL_MS);
    uv_timer_init(loop, &s->backup_timer);
    s->backup_timer.data = s;
    if (s->backup_dir != NULL && cfg->backup_interval_ms > 0) {
        uv_timer_start(&s->backup_timer, backup_timer_cb, cfg->backup_interval_ms,
                       cfg->backup_interval_ms);
    }
    *out = s;
    return BO_OK;

err_after_raft:
    abort_raft(s);
    applier_abort(s);
err_after_store:
    bo_store_close(s->store);
err_after_alloc:
    free_storage(s);
    return rv;
}

/* Raft's libuv I/O may still complete requests after it reported itself
 * closed (an async snapshot or a disk write that raft does not count as
 * pending), and each completion looks at raft_uv's memory and may use our
 * snapshot view. So the close callback only says that no callback reaches
 * the owner any more; raft_uv's memory, the view and the store are released
 * in bo_storage_free, which the owner calls once the loop has run dry. */
static void maybe_finish_close(struct bo_storage *s)
{
    if (s->closing_pending > 0 || s->backup != NULL || s->ckpt != NULL || s->reaps > 0) {
        return;
    }
    bo_storage_close_cb cb = s->close_cb;
    s->close_cb = NULL;
    if (cb != NULL) {
        cb(s);
    }
}

static void handle_closed_cb(uv_handle_t *h)
{
    struct bo_storage *s = h->data;
    s->closing_pending--;
    maybe_finish_close(s);
}

static void raft_closed_cb(struct raft *r)
{
    struct bo_storage *s = r->data;
    if (s->raft_closed) {
        return;
    }
    s->raft_closed = true; /* its memory goes in bo_storage_free */
    /* libraft 0.15's I/O can report itself closed a second time, when a
     * request still in flight completes after the close (seen under load;
     * reproduced by ASan as a double free of r->address in raft's close
     * callback). That callback frees the address, the log and the
     * configuration, then calls us: leave them empty so that a second run
     * frees nothing, and let it not call us again. */
    r->address = NULL;
    r->log.entries = NULL;
    r->log.refs = NULL;
    r->log.size = r->log.front = r->log.back = r->log.refs_size = 0;
    r->configuration.servers = NULL;
    r->configuration.n = 0;
    r->close_cb = NULL;
    if (s->applier_on) {
        /* No entry comes any more: let the applier finish, complete what it
         * applied, and stop it. */
        applier_drain(s);
        applier_async_cb(&s->ap.async);
        applier_stop(s);
        s->closing_pending++;
        uv_close((uv_handle_t *)&s->ap.async, handle_closed_cb);
    }
    s->closing_pending--;
    maybe_finish_close(s);
}

/* The owner may close from inside one of our callbacks, which raft calls
 * from inside its own loop over committed entries; raft must not be closed
 * under its own feet, so the real work starts on the next loop iteration. */
static void close_now_cb(uv_timer_t *t)
{
    struct bo_storage *s = t->data;
    /* A snapshot raft started is let finish (bounded): closing raft under an
     * asynchronous snapshot leaves raft and us both owning its buffers. */
    if (s->snap_view != NULL && s->close_waited_ms < 60000) {
        s->close_waited_ms += 10;
        uv_timer_start(&s->role_timer, close_now_cb, 10, 0);
        return;
    }
    /* So are the writes in flight (new ones are refused while closing), for
     * a few seconds: libraft 0.15 can complete an append after its close
     * and read the log the close emptied (raft_closed_cb), which ASan saw
     * as a NULL read in a replica stopped under a steady write load. A
     * leader without a quorum never completes them: hence the bound. */
    if (s->applies > 0 && s->close_waited_ms < 3000) {
        s->close_waited_ms += 10;
        uv_timer_start(&s->role_timer, close_now_cb, 10, 0);
        return;
    }
    uv_close((uv_handle_t *)&s->role_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&s->backup_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&s->flush_check, handle_closed_cb);
    uv_close((uv_handle_t *)&s->ckpt_timer, handle_closed_cb);
    if (s->backup != NULL) {
        uv_cancel((uv_req_t *)&s->backup->work);
    }
    raft_close(&s->raft, raft_closed_cb);
}

void bo_storage_close(struct bo_storage *s, bo_storage_close_cb cb)
{
    assert(!s->closing);
    s->closing = true;
    s->close_cb = cb;
    s->closing_pending = 5;
    uv_timer_stop(&s->backup_timer);
    uv_timer_start(&s->role_timer, close_now_cb, 0, 0);
}

void bo_storage_free(struct bo_storage *s)
{
    if (s == NULL) {
        return;
    }
    if (s->raft_closed) {
        raft_uv_close(&s->io);
        raft_uv_tcp_close(&s->transport);
    }
    if (s->applier_on) {
        applier_stop(s); /* stopped at raft's close already, unless it never came */
        applier_release(s);
    }
    if (s->snap_view != NULL) {
        bo_store_view_close(s->snap_view);
    }
    if (s->staged != NULL) {
        bo_store_close(s->staged);
        remove(s->staged_path);
    }
    bo_store_close(s->store);
    free_storage(s);
}

void bo_storage_stats(const struct bo_storage *s, struct bo_storage_stats *out)
{
    *out = s->stats;
}
