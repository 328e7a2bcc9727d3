/*
 * borealis-log - offline inspection and repair of Borealis' durable state.
 *
 *   borealis-log dump    FILE|DIR    JSON lines: an image's contents, or log entries
 *   borealis-log stats   FILE|DIR    counts and sizes
 *   borealis-log verify  FILE|DIR    checksums, decoding, replay into a scratch store
 *   borealis-log convert IN OUT [--codec none|zlib|zstd] [--dedup on|off] [--level N]
 *   borealis-log recover --backup FILE --data-dir DIR [--raft-address HOST:PORT]
 *
 * FILE is an image: a backup, a file written by `convert`, or a raft snapshot
 * file (`snapshot-TERM-INDEX-TIMESTAMP`) from a data directory, which holds the
 * image as is since raft's own snapshot compression is off. DIR is a raft data
 * directory.
 *
 * Happy path for a directory: the raft files (metadata, segments, snapshots)
 * are copied into a scratch directory first, because raft's loader finalizes
 * open segments in place and the tool promises never to modify its input.
 * raft's own uv loader (raft_uv_init, io->init, io->load, auto-recovery off)
 * reads the copy and returns the last snapshot and the entries, after
 * checking every batch checksum. Entries are classified by their LogEntry
 * case; `verify` restores the snapshot into a scratch SQLite store and
 * applies every later command entry in order, as a replica would at start.
 *
 * Failure modes: every problem is printed as "borealis-log: <what>: <why>"
 * with the file and byte offset (images) or the log index (entries); exit 1.
 * Bad usage prints the usage and exits 2. Scratch directories are removed on
 * every path out.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <raft.h>
#include <raft/uv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/pbjson.h"
#include "common/pbwire.h"
#include "storage.pb-c.h"
#include "storage/codec.h"
#include "storage/snapshot.h"
#include "storage/storage.h"
#include "storage/store.h"

#define EXIT_PROBLEM 1
#define EXIT_USAGE   2

static const char *prog = "borealis-log";

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void problem(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ------------------------------------------------------------ json ---- */

/* Dumps leave out proto3 defaults and print payload bytes as their length. */
static json_t *message_to_json(const ProtobufCMessage *m)
{
    return bo_pbjson_encode(m, BO_PBJSON_COMPACT | BO_PBJSON_BYTES_LENGTH);
}

/* Print one JSON line and free the object. */
static void emit(json_t *o)
{
    json_dumpf(o, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    json_decref(o);
}

static json_t *kind_object(const char *kind)
{
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string(kind));
    return o;
}

static void emit_message(const char *kind, const char *key, const ProtobufCMessage *m)
{
    json_t *o = kind_object(kind);
    json_object_set_new(o, key, message_to_json(m));
    emit(o);
}

/* ------------------------------------------------------- image dump ---- */

struct dump_ctx {
    const char *file;
    int failed;
};

static int dump_config(void *data, uint32_t index, const uint8_t *config, size_t len)
{
    struct dump_ctx *d = data;
    Bo__TaskConfig *c = bo__task_config__unpack(NULL, len, config);
    if (c == NULL) {
        problem("dump '%s': config %u does not decode", d->file, index);
        return BO_ECORRUPT;
    }
    json_t *o = kind_object("config");
    json_object_set_new(o, "index", json_integer(index));
    json_object_set_new(o, "config", message_to_json(&c->base));
    emit(o);
    bo__task_config__free_unpacked(c, NULL);
    return BO_OK;
}

static int dump_task(void *data, uint32_t config_index, const uint8_t *partial, size_t len)
{
    struct dump_ctx *d = data;
    Bo__ScheduledTask *t = bo__scheduled_task__unpack(NULL, len, partial);
    if (t == NULL) {
        problem("dump '%s': a task does not decode", d->file);
        return BO_ECORRUPT;
    }
    json_t *o = kind_object("task");
    json_object_set_new(o, "config_index", json_integer(config_index));
    json_object_set_new(o, "task", message_to_json(&t->base));
    emit(o);
    bo__scheduled_task__free_unpacked(t, NULL);
    return BO_OK;
}

static int dump_rest(void *data, const Bo__Snapshot *rest)
{
    (void)data;
    for (size_t i = 0; i < rest->n_host_attributes; i++) {
        emit_message("host", "host", &rest->host_attributes[i]->base);
    }
    for (size_t i = 0; i < rest->n_cron_jobs; i++) {
        emit_message("cron_job", "job", &rest->cron_jobs[i]->base);
    }
    for (size_t i = 0; i < rest->n_quotas; i++) {
        emit_message("quota", "quota", &rest->quotas[i]->base);
    }
    for (size_t i = 0; i < rest->n_job_updates; i++) {
        emit_message("job_update", "update", &rest->job_updates[i]->base);
    }
    for (size_t i = 0; i < rest->n_maintenance_requests; i++) {
        emit_message("maintenance", "request", &rest->maintenance_requests[i]->base);
    }
    if (rest->scheduler_metadata != NULL) {
        emit_message("scheduler_metadata", "metadata", &rest->scheduler_metadata->base);
    }
    return BO_OK;
}

static json_t *stats_json(const struct bo_snap_stats *st)
{
    json_t *o = json_object();
    json_object_set_new(o, "timestamp_ms", json_integer(st->timestamp_ms));
    json_object_set_new(o, "tasks", json_integer((json_int_t)st->tasks));
    json_object_set_new(o, "configs", json_integer((json_int_t)st->configs));
    json_object_set_new(o, "hosts", json_integer((json_int_t)st->hosts));
    json_object_set_new(o, "cron_jobs", json_integer((json_int_t)st->cron_jobs));
    json_object_set_new(o, "quotas", json_integer((json_int_t)st->quotas));
    json_object_set_new(o, "job_updates", json_integer((json_int_t)st->job_updates));
    json_object_set_new(o, "maintenance", json_integer((json_int_t)st->maintenance));
    json_object_set_new(o, "raw_bytes", json_integer((json_int_t)st->raw_bytes));
    json_object_set_new(o, "dedup_bytes", json_integer((json_int_t)st->dedup_bytes));
    json_object_set_new(o, "payload_bytes", json_integer((json_int_t)st->payload_bytes));
    json_object_set_new(o, "codec", json_string(bo_codec_name(st->codec)));
    json_object_set_new(o, "deduplicated", json_boolean(st->deduplicated));
    return o;
}

static int dump_image(const char *file, const uint8_t *image, size_t len)
{
    struct dump_ctx d = {file, 0};
    struct bo_snap_visitor v = {&d, dump_config, dump_task, dump_rest};
    struct bo_snap_stats st;
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_snap_read(image, len, &v, &st, &err);
    if (rv != BO_OK) {
        if (err.msg[0] != '\0') {
            problem("'%s': %s", file, bo_err_msg(&err, rv));
        }
        return EXIT_PROBLEM;
    }
    json_t *o = kind_object("snapshot");
    json_object_set_new(o, "stats", stats_json(&st));
    emit(o);
    return 0;
}

/* ------------------------------------------------------ data dirs ---- */

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Raft's files: metadata1/2, open-N, START-END segments, snapshot-*. */
static bool is_raft_file(const char *name)
{
    if (strcmp(name, "metadata1") == 0 || strcmp(name, "metadata2") == 0) {
        return true;
    }
    if (strncmp(name, "open-", 5) == 0 || strncmp(name, "snapshot-", 9) == 0) {
        return true;
    }
    const char *p = name;
    if (*p < '0' || *p > '9') {
        return false;
    }
    while (*p >= '0' && *p <= '9') {
        p++;
    }
    if (*p++ != '-' || *p < '0' || *p > '9') {
        return false;
    }
    while (*p >= '0' && *p <= '9') {
        p++;
    }
    return *p == '\0';
}

static int copy_file(const char *from, const char *to, struct bo_err *err)
{
    uint8_t *data;
    size_t len;
    int rv = bo_fs_read_file(from, &data, &len, err);
    if (rv != BO_OK) {
        return rv;
    }
    int fd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        bo_free(data);
        return bo_errf(err, bo_err_from_errno(e), "create '%s': %s", to, strerror(e));
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int e = errno;
            close(fd);
            bo_free(data);
            return bo_errf(err, bo_err_from_errno(e), "write '%s': %s", to, strerror(e));
        }
        off += (size_t)n;
    }
    close(fd);
    bo_free(data);
    return BO_OK;
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            char p[PATH_MAX];
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
                bo_fs_join(p, sizeof(p), dir, de->d_name) == BO_OK) {
                unlink(p);
            }
        }
        closedir(d);
    }
    rmdir(dir);
}

static int make_scratch(char *out, size_t size, struct bo_err *err)
{
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(out, size, "%s/borealis-log-XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp");
    if (n < 0 || (size_t)n >= size) {
        return bo_errf(err, BO_ETOOBIG, "scratch directory: path too long");
    }
    if (mkdtemp(out) == NULL) {
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "scratch directory '%s': %s", out, strerror(e));
    }
    return BO_OK;
}

/* What raft's loader returned. */
struct raft_data {
    raft_term term;
    raft_id voted_for;
    struct raft_snapshot *snapshot;
    raft_index start_index;
    struct raft_entry *entries;
    size_t n_entries;
};

static void raft_data_release(struct raft_data *rd)
{
    if (rd->entries != NULL) {
        void *last = NULL;
        for (size_t i = 0; i < rd->n_entries; i++) {
            if (rd->entries[i].batch != last && rd->entries[i].batch != NULL) {
                last = rd->entries[i].batch;
                raft_free(last);
            }
        }
        raft_free(rd->entries);
    }
    if (rd->snapshot != NULL) {
        raft_configuration_close(&rd->snapshot->configuration);
        for (unsigned i = 0; i < rd->snapshot->n_bufs; i++) {
            raft_free(rd->snapshot->bufs[i].base);
        }
        raft_free(rd->snapshot->bufs);
        raft_free(rd->snapshot);
    }
    memset(rd, 0, sizeof(*rd));
}

static void io_close_cb(struct raft_io *io)
{
    *(bool *)io->data = true;
}

/* Replace the scratch path in raft's messages by the directory the user
 * named, so messages point at real files. */
static void report_raft(const char *what, const char *msg, const char *scratch, const char *dir)
{
    char out[1024];
    size_t o = 0, sl = strlen(scratch);
    for (const char *p = msg; *p != '\0' && o + 1 < sizeof(out);) {
        if (strncmp(p, scratch, sl) == 0) {
            int n = snprintf(out + o, sizeof(out) - o, "%s", dir);
            o = n < 0 ? o : (size_t)n + o >= sizeof(out) ? sizeof(out) - 1 : o + (size_t)n;
            p += sl;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    problem("%s '%s': %s", what, dir, out);
}

/* Copy the raft files of `dir` to a scratch directory and load them with
 * raft's own loader. */
static int load_data_dir(const char *dir, struct raft_data *rd)
{
    struct bo_err err = BO_ERR_INIT;
    char scratch[PATH_MAX];
    memset(rd, 0, sizeof(*rd));
    int rv = make_scratch(scratch, sizeof(scratch), &err);
    if (rv != BO_OK) {
        problem("load '%s': %s", dir, bo_err_msg(&err, rv));
        return EXIT_PROBLEM;
    }
    int code = EXIT_PROBLEM;
    size_t copied = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        problem("load '%s': %s", dir, strerror(errno));
        goto err_after_scratch;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!is_raft_file(de->d_name)) {
            continue;
        }
        char from[PATH_MAX], to[PATH_MAX];
        if (bo_fs_join(from, sizeof(from), dir, de->d_name) != BO_OK ||
            bo_fs_join(to, sizeof(to), scratch, de->d_name) != BO_OK) {
            problem("load '%s': path too long", dir);
            closedir(d);
            goto err_after_scratch;
        }
        rv = copy_file(from, to, &err);
        if (rv != BO_OK) {
            problem("load '%s': copy: %s", dir, bo_err_msg(&err, rv));
            closedir(d);
            goto err_after_scratch;
        }
        copied++;
    }
    closedir(d);
    if (copied == 0) {
        problem("load '%s': no raft files (metadata, segments, snapshots) in it", dir);
        goto err_after_scratch;
    }

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct raft_uv_transport transport;
    struct raft_io io;
    memset(&transport, 0, sizeof(transport));
    memset(&io, 0, sizeof(io));
    if (raft_uv_tcp_init(&transport, &loop) != 0) {
        problem("load '%s': raft transport init failed", dir);
        goto err_after_loop;
    }
    if (raft_uv_init(&io, &loop, scratch, &transport) != 0) {
        report_raft("load", io.errmsg, scratch, dir);
        raft_uv_tcp_close(&transport);
        goto err_after_loop;
    }
    /* Report corruption; never repair it by dropping entries. */
    raft_uv_set_auto_recovery(&io, false);
    bool closed = false;
    io.data = &closed;
    rv = io.init(&io, 1, "127.0.0.1:7070");
    if (rv != 0) {
        report_raft("load", io.errmsg, scratch, dir);
        raft_uv_close(&io);
        raft_uv_tcp_close(&transport);
        goto err_after_loop;
    }
    rv = io.load(&io, &rd->term, &rd->voted_for, &rd->snapshot, &rd->start_index, &rd->entries,
                 &rd->n_entries);
    if (rv != 0) {
        report_raft("load", io.errmsg, scratch, dir);
        memset(rd, 0, sizeof(*rd));
    } else {
        code = 0;
    }
    io.close(&io, io_close_cb);
    while (!closed) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    raft_uv_close(&io);
    raft_uv_tcp_close(&transport);

err_after_loop:
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
err_after_scratch:
    remove_tree(scratch);
    return code;
}

/* The LogEntry case of an encoded entry, from its top-level fields. */
static const char *entry_kind(const uint8_t *data, size_t len, const uint8_t **body,
                              size_t *body_len)
{
    static const char *names[] = {NULL,   "snapshot",       "transaction",
                                  "noop", "dedup_snapshot", "compressed"};
    struct bo_pb_reader r;
    struct bo_pb_field f;
    const char *kind = "empty";
    int got;
    bo_pb_reader_init(&r, data, len);
    while ((got = bo_pb_next(&r, &f)) == 1) {
        if (f.number >= 1 && f.number <= 5) {
            kind = names[f.number];
            *body = f.data;
            *body_len = f.len;
        }
    }
    return got == 0 ? kind : "malformed";
}

static const char *raft_type_name(unsigned short type)
{
    switch (type) {
    case RAFT_COMMAND:
        return "command";
    case RAFT_BARRIER:
        return "barrier";
    case RAFT_CHANGE:
        return "configuration";
    }
    return "unknown";
}

static json_t *op_json(const Bo__Op *op)
{
    json_t *o = json_object();
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&bo__op__descriptor, op->op_case);
    json_object_set_new(o, "op", json_string(f != NULL ? f->name : "unknown"));
    switch (op->op_case) {
    case BO__OP__OP_SAVE_TASKS:
    case BO__OP__OP_SAVE_TASK_STATES:
    case BO__OP__OP_SAVE_TASKS_SHARED: {
        json_t *ids = json_array();
        Bo__ScheduledTask **tasks =
            op->op_case == BO__OP__OP_SAVE_TASK_STATES    ? op->save_task_states->tasks
            : op->op_case == BO__OP__OP_SAVE_TASKS_SHARED ? op->save_tasks_shared->tasks
                                                          : op->save_tasks->tasks;
        size_t n = op->op_case == BO__OP__OP_SAVE_TASK_STATES    ? op->save_task_states->n_tasks
                   : op->op_case == BO__OP__OP_SAVE_TASKS_SHARED ? op->save_tasks_shared->n_tasks
                                                                 : op->save_tasks->n_tasks;
        if (op->op_case == BO__OP__OP_SAVE_TASKS_SHARED && op->save_tasks_shared->config != NULL &&
            op->save_tasks_shared->config->job != NULL) {
            json_object_set_new(o, "job",
                                message_to_json(&op->save_tasks_shared->config->job->base));
        }
        for (size_t i = 0; i < n; i++) {
            const Bo__ScheduledTask *t = tasks[i];
            const Bo__AssignedTask *a = t->assigned_task;
            json_array_append_new(ids, json_string(a != NULL && a->task_id ? a->task_id : ""));
        }
        json_object_set_new(o, "task_ids", ids);
        break;
    }
    case BO__OP__OP_SAVE_CRON_JOB:
        if (op->save_cron_job->job_config != NULL && op->save_cron_job->job_config->key != NULL) {
            json_object_set_new(o, "job",
                                message_to_json(&op->save_cron_job->job_config->key->base));
        }
        break;
    case BO__OP__OP_SAVE_JOB_UPDATE:
        if (op->save_job_update->job_update != NULL &&
            op->save_job_update->job_update->summary != NULL &&
            op->save_job_update->job_update->summary->key != NULL) {
            json_object_set_new(
                o, "key", message_to_json(&op->save_job_update->job_update->summary->key->base));
        }
        break;
    case BO__OP__OP__NOT_SET:
        break;
    default: {
        /* The other ops are small: print them whole. */
        const ProtobufCMessage *m =
            *(const ProtobufCMessage *const *)((const char *)op + f->offset);
        if (m != NULL) {
            json_t *fields = message_to_json(m);
            json_object_update(o, fields); /* copies references, does not steal */
            json_decref(fields);
        }
        break;
    }
    }
    return o;
}

static int dump_dir(const char *dir)
{
    struct raft_data rd;
    int code = load_data_dir(dir, &rd);
    if (code != 0) {
        return code;
    }
    if (rd.snapshot != NULL) {
        json_t *o = kind_object("raft_snapshot");
        json_object_set_new(o, "index", json_integer((json_int_t)rd.snapshot->index));
        json_object_set_new(o, "term", json_integer((json_int_t)rd.snapshot->term));
        json_object_set_new(o, "bytes", json_integer((json_int_t)rd.snapshot->bufs[0].len));
        struct bo_snap_stats st;
        struct bo_err err = BO_ERR_INIT;
        int rv = bo_snap_read(rd.snapshot->bufs[0].base, rd.snapshot->bufs[0].len, NULL, &st, &err);
        if (rv == BO_OK) {
            json_object_set_new(o, "stats", stats_json(&st));
        } else {
            json_object_set_new(o, "error", json_string(bo_err_msg(&err, rv)));
            code = EXIT_PROBLEM;
        }
        emit(o);
    }
    for (size_t i = 0; i < rd.n_entries; i++) {
        const struct raft_entry *e = &rd.entries[i];
        json_t *o = json_object();
        json_object_set_new(o, "index", json_integer((json_int_t)(rd.start_index + i)));
        json_object_set_new(o, "term", json_integer((json_int_t)e->term));
        json_object_set_new(o, "type", json_string(raft_type_name(e->type)));
        json_object_set_new(o, "bytes", json_integer((json_int_t)e->buf.len));
        if (e->type == RAFT_COMMAND) {
            const uint8_t *body = NULL;
            size_t blen = 0;
            const char *kind = entry_kind(e->buf.base, e->buf.len, &body, &blen);
            json_object_set_new(o, "kind", json_string(kind));
            if (strcmp(kind, "transaction") == 0) {
                Bo__Transaction *t = bo__transaction__unpack(NULL, blen, body);
                if (t == NULL) {
                    json_object_set_new(o, "error", json_string("transaction does not decode"));
                    code = EXIT_PROBLEM;
                } else {
                    json_t *ops = json_array();
                    for (size_t k = 0; k < t->n_ops; k++) {
                        json_array_append_new(ops, op_json(t->ops[k]));
                    }
                    json_object_set_new(o, "schema_version", json_integer(t->schema_version));
                    json_object_set_new(o, "ops", ops);
                    bo__transaction__free_unpacked(t, NULL);
                }
            } else if (strcmp(kind, "malformed") == 0) {
                code = EXIT_PROBLEM;
            }
        } else {
            json_object_set_new(o, "kind", json_string(raft_type_name(e->type)));
        }
        emit(o);
    }
    raft_data_release(&rd);
    return code;
}

/* ---------------------------------------------------------- images ---- */

static bool looks_like_raft_snapshot(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    size_t n = strlen(base);
    return strncmp(base, "snapshot-", 9) == 0 && !(n > 5 && strcmp(base + n - 5, ".meta") == 0);
}

/* Read an image file; explains what else it might be when it is not one. */
static int read_image(const char *path, uint8_t **data, size_t *len)
{
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_fs_read_file(path, data, len, &err);
    if (rv != BO_OK) {
        problem("%s", bo_err_msg(&err, rv));
        return EXIT_PROBLEM;
    }
    if (*len >= 8 && memcmp(*data, BO_SNAP_MAGIC, 8) == 0) {
        return 0;
    }
    static const uint8_t lz4[4] = {0x04, 0x22, 0x4d, 0x18};
    if (*len >= 4 && memcmp(*data, lz4, 4) == 0) {
        problem("'%s': a raft snapshot compressed by raft (LZ4); only uncompressed ones are "
                "supported",
                path);
    } else if (looks_like_raft_snapshot(path)) {
        problem("'%s': not an image (bad magic at offset 0)", path);
    } else {
        problem("'%s': not an image (bad magic at offset 0) and not a directory", path);
    }
    bo_free(*data);
    *data = NULL;
    return EXIT_PROBLEM;
}

/* ----------------------------------------------------------- stats ---- */

static void print_stats(const char *indent, const struct bo_snap_stats *st)
{
    printf("%stimestamp_ms:  %" PRId64 "\n", indent, st->timestamp_ms);
    printf("%stasks:         %" PRIu64 "\n", indent, st->tasks);
    printf("%sconfigs:       %" PRIu64 " distinct\n", indent, st->configs);
    printf("%shosts:         %" PRIu64 "\n", indent, st->hosts);
    printf("%scron jobs:     %" PRIu64 "\n", indent, st->cron_jobs);
    printf("%squotas:        %" PRIu64 "\n", indent, st->quotas);
    printf("%sjob updates:   %" PRIu64 "\n", indent, st->job_updates);
    printf("%smaintenance:   %" PRIu64 "\n", indent, st->maintenance);
    printf("%sform:          %s\n", indent, st->deduplicated ? "deduplicated" : "plain");
    printf("%scodec:         %s\n", indent, bo_codec_name(st->codec));
    printf("%sraw bytes:     %" PRIu64 " (plain snapshot)\n", indent, st->raw_bytes);
    printf("%sdedup bytes:   %" PRIu64 " (deduplicated)\n", indent, st->dedup_bytes);
    printf("%spayload bytes: %" PRIu64 " (as stored)\n", indent, st->payload_bytes);
    if (st->payload_bytes > 0) {
        printf("%sratio:         %.1fx (raw / stored), dedup %.1fx, compression %.1fx\n", indent,
               (double)st->raw_bytes / (double)st->payload_bytes,
               st->dedup_bytes > 0 ? (double)st->raw_bytes / (double)st->dedup_bytes : 0.0,
               (double)(st->deduplicated ? st->dedup_bytes : st->raw_bytes) /
                   (double)st->payload_bytes);
    }
}

static int stats_image(const char *file, const uint8_t *image, size_t len)
{
    struct bo_snap_stats st;
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_snap_read(image, len, NULL, &st, &err);
    if (rv != BO_OK) {
        problem("'%s': %s", file, bo_err_msg(&err, rv));
        return EXIT_PROBLEM;
    }
    printf("image:         %s (%zu bytes)\n", file, len);
    print_stats("", &st);
    return 0;
}

static int stats_dir(const char *dir)
{
    struct raft_data rd;
    int code = load_data_dir(dir, &rd);
    if (code != 0) {
        return code;
    }
    static const char *kinds[] = {"transaction", "noop",    "compressed",    "dedup_snapshot",
                                  "snapshot",    "barrier", "configuration", "malformed",
                                  "empty",       "unknown"};
    enum { NK = sizeof(kinds) / sizeof(kinds[0]) };
    uint64_t count[NK] = {0}, bytes[NK] = {0}, total = 0;
    for (size_t i = 0; i < rd.n_entries; i++) {
        const struct raft_entry *e = &rd.entries[i];
        const char *kind;
        if (e->type == RAFT_COMMAND) {
            const uint8_t *body;
            size_t blen;
            kind = entry_kind(e->buf.base, e->buf.len, &body, &blen);
        } else {
            kind = raft_type_name(e->type);
        }
        for (size_t k = 0; k < NK; k++) {
            if (strcmp(kind, kinds[k]) == 0) {
                count[k]++;
                bytes[k] += e->buf.len;
                break;
            }
        }
        total += e->buf.len;
    }
    printf("data dir:      %s\n", dir);
    printf("term:          %" PRIu64 "\n", (uint64_t)rd.term);
    if (rd.n_entries > 0) {
        printf("entries:       %zu (index %" PRIu64 "..%" PRIu64 "), %" PRIu64 " bytes\n",
               rd.n_entries, (uint64_t)rd.start_index,
               (uint64_t)(rd.start_index + rd.n_entries - 1), total);
    } else {
        printf("entries:       0\n");
    }
    for (size_t k = 0; k < NK; k++) {
        if (count[k] > 0) {
            printf("  %-14s %" PRIu64 " entries, %" PRIu64 " bytes\n", kinds[k], count[k],
                   bytes[k]);
        }
    }
    if (rd.snapshot != NULL) {
        printf("snapshot:      index %" PRIu64 ", term %" PRIu64 ", %zu bytes\n",
               (uint64_t)rd.snapshot->index, (uint64_t)rd.snapshot->term, rd.snapshot->bufs[0].len);
        struct bo_snap_stats st;
        struct bo_err err = BO_ERR_INIT;
        int rv = bo_snap_read(rd.snapshot->bufs[0].base, rd.snapshot->bufs[0].len, NULL, &st, &err);
        if (rv != BO_OK) {
            problem("snapshot %" PRIu64 " in '%s': %s", (uint64_t)rd.snapshot->index, dir,
                    bo_err_msg(&err, rv));
            code = EXIT_PROBLEM;
        } else {
            print_stats("  ", &st);
        }
    } else {
        printf("snapshot:      none\n");
    }
    raft_data_release(&rd);
    return code;
}

/* ---------------------------------------------------------- verify ---- */

struct scratch_store {
    char dir[PATH_MAX];
    struct bo_store *st;
};

static int scratch_store_open(struct scratch_store *s)
{
    struct bo_err err = BO_ERR_INIT;
    char path[PATH_MAX];
    int rv = make_scratch(s->dir, sizeof(s->dir), &err);
    if (rv == BO_OK && bo_fs_join(path, sizeof(path), s->dir, "state.db") != BO_OK) {
        rv = bo_errf(&err, BO_ETOOBIG, "scratch store: path too long");
    }
    if (rv == BO_OK) {
        rv = bo_store_open(path, true, &s->st, &err);
    }
    if (rv != BO_OK) {
        problem("scratch store: %s", bo_err_msg(&err, rv));
        if (s->dir[0] != '\0') {
            remove_tree(s->dir);
        }
        return EXIT_PROBLEM;
    }
    return 0;
}

static void scratch_store_close(struct scratch_store *s)
{
    bo_store_close(s->st);
    remove_tree(s->dir);
}

/* Decoding check: every config and task must unpack (the reader checks only
 * their top level). */
struct decode_ctx {
    const char *file;
    uint64_t tasks;
};

static int decode_config(void *data, uint32_t index, const uint8_t *config, size_t len)
{
    struct decode_ctx *d = data;
    Bo__TaskConfig *c = bo__task_config__unpack(NULL, len, config);
    if (c == NULL) {
        problem("'%s': config %u does not decode", d->file, index);
        return BO_ECORRUPT;
    }
    bo__task_config__free_unpacked(c, NULL);
    return BO_OK;
}

static int decode_task(void *data, uint32_t config_index, const uint8_t *partial, size_t len)
{
    struct decode_ctx *d = data;
    (void)config_index;
    Bo__ScheduledTask *t = bo__scheduled_task__unpack(NULL, len, partial);
    if (t == NULL) {
        problem("'%s': task %" PRIu64 " does not decode", d->file, d->tasks);
        return BO_ECORRUPT;
    }
    bo__scheduled_task__free_unpacked(t, NULL);
    d->tasks++;
    return BO_OK;
}

static int verify_image(const char *file, const uint8_t *image, size_t len)
{
    struct bo_snap_stats st;
    struct bo_err err = BO_ERR_INIT;
    struct decode_ctx d = {file, 0};
    struct bo_snap_visitor v = {&d, decode_config, decode_task, NULL};
    int rv = bo_snap_read(image, len, &v, &st, &err);
    if (rv != BO_OK) {
        if (err.msg[0] != '\0') {
            problem("'%s': %s", file, bo_err_msg(&err, rv));
        }
        return EXIT_PROBLEM;
    }
    struct scratch_store s = {0};
    if (scratch_store_open(&s) != 0) {
        return EXIT_PROBLEM;
    }
    rv = bo_store_restore(s.st, image, len, 1, &err);
    int code = 0;
    if (rv != BO_OK) {
        problem("'%s': replay: %s", file, bo_err_msg(&err, rv));
        code = EXIT_PROBLEM;
    } else {
        printf("ok: '%s': %" PRIu64 " tasks, %" PRIu64 " configs, %" PRIu64 " hosts, %" PRIu64
               " cron jobs\n",
               file, st.tasks, st.configs, st.hosts, st.cron_jobs);
    }
    scratch_store_close(&s);
    return code;
}

/* The name of the data file of the snapshot raft loaded, for messages. */
static void snapshot_file(const char *dir, const struct raft_snapshot *snap, char *out, size_t size)
{
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "snapshot-%" PRIu64 "-%" PRIu64 "-", (uint64_t)snap->term,
             (uint64_t)snap->index);
    snprintf(out, size, "%s*", prefix);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *de;
    size_t plen = strlen(prefix);
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (strncmp(de->d_name, prefix, plen) == 0 &&
            !(n > 5 && strcmp(de->d_name + n - 5, ".meta") == 0)) {
            snprintf(out, size, "%s", de->d_name);
        }
    }
    closedir(d);
}

static int verify_dir(const char *dir)
{
    struct raft_data rd;
    int code = load_data_dir(dir, &rd);
    if (code != 0) {
        return code;
    }
    struct scratch_store s = {0};
    if (scratch_store_open(&s) != 0) {
        raft_data_release(&rd);
        return EXIT_PROBLEM;
    }
    struct bo_err err = BO_ERR_INIT;
    uint64_t applied = 0, after = 0;
    if (rd.snapshot != NULL) {
        int rv = bo_store_restore(s.st, rd.snapshot->bufs[0].base, rd.snapshot->bufs[0].len,
                                  rd.snapshot->index, &err);
        if (rv != BO_OK) {
            char name[NAME_MAX + 1];
            snapshot_file(dir, rd.snapshot, name, sizeof(name));
            problem("'%s/%s': %s", dir, name, bo_err_msg(&err, rv));
            code = EXIT_PROBLEM;
            goto cleanup;
        }
        after = rd.snapshot->index;
    }
    for (size_t i = 0; i < rd.n_entries; i++) {
        uint64_t index = rd.start_index + i;
        const struct raft_entry *e = &rd.entries[i];
        if (index <= after || e->type != RAFT_COMMAND) {
            continue;
        }
        int rv = bo_store_apply_entry(s.st, e->buf.base, e->buf.len, index, &err);
        if (rv != BO_OK) {
            problem("log entry %" PRIu64 " (term %" PRIu64 ") in '%s': %s", index,
                    (uint64_t)e->term, dir, bo_err_msg(&err, rv));
            code = EXIT_PROBLEM;
            goto cleanup;
        }
        applied++;
    }
    struct bo_store_counts c;
    if (bo_store_counts(s.st, &c, &err) == BO_OK) {
        printf("ok: '%s': snapshot at %" PRIu64 ", %" PRIu64 " entries replayed; state: %" PRIu64
               " tasks, %" PRIu64 " configs, %" PRIu64 " jobs\n",
               dir, after, applied, c.tasks, c.configs, c.jobs);
    } else {
        printf("ok: '%s': snapshot at %" PRIu64 ", %" PRIu64 " entries replayed\n", dir, after,
               applied);
    }

cleanup:
    scratch_store_close(&s);
    raft_data_release(&rd);
    return code;
}

/* --------------------------------------------------------- convert ---- */

static int convert(const char *in, const char *out, bool dedup, enum bo_codec codec, int level)
{
    uint8_t *image;
    size_t len;
    int code = read_image(in, &image, &len);
    if (code != 0) {
        return code;
    }
    struct bo_buf conv = BO_BUF_INIT;
    struct bo_snap_stats st;
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_snap_convert(image, len, dedup, codec, level, &conv, &st, &err);
    bo_free(image);
    if (rv != BO_OK) {
        problem("convert '%s': %s", in, bo_err_msg(&err, rv));
        return EXIT_PROBLEM;
    }
    char dir[PATH_MAX];
    const char *slash = strrchr(out, '/');
    const char *name = slash != NULL ? slash + 1 : out;
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else if (slash == out) {
        snprintf(dir, sizeof(dir), "/");
    } else if ((size_t)(slash - out) < sizeof(dir)) {
        memcpy(dir, out, (size_t)(slash - out));
        dir[slash - out] = '\0';
    } else {
        problem("convert: output path too long");
        bo_buf_release(&conv);
        return EXIT_PROBLEM;
    }
    if (*name == '\0') {
        problem("convert: output '%s' names a directory", out);
        bo_buf_release(&conv);
        return EXIT_PROBLEM;
    }
    struct iovec iov = {conv.data, conv.len};
    rv = bo_fs_write_atomic(dir, name, "temp_", &iov, 1, &err);
    bo_buf_release(&conv);
    if (rv != BO_OK) {
        problem("convert: %s", bo_err_msg(&err, rv));
        return EXIT_PROBLEM;
    }
    printf("wrote '%s': %" PRIu64 " tasks, %" PRIu64 " configs, %s, %s, %" PRIu64
           " bytes of payload\n",
           out, st.tasks, st.configs, st.deduplicated ? "deduplicated" : "plain",
           bo_codec_name(st.codec), st.payload_bytes);
    return 0;
}

/* --------------------------------------------------------- recover ---- */

struct recover {
    uv_loop_t loop;
    uv_timer_t timer;
    struct bo_storage *s;
    const uint8_t *payload;
    size_t len;
    bool written;
    bool done;
    int code;
    uint64_t waited_ms;
};

static void recover_closed(struct bo_storage *s)
{
    (void)s;
}

static void recover_finish(struct recover *r, int code)
{
    if (r->done) {
        return;
    }
    r->done = true;
    r->code = code;
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, NULL);
    bo_storage_close(r->s, recover_closed);
}

static void recover_written(struct bo_storage_write *req, int status, const char *message)
{
    struct recover *r = req->data;
    bo_free(req);
    if (status != BO_OK) {
        problem("recover: write the backup into the log: %s", message);
        recover_finish(r, EXIT_PROBLEM);
        return;
    }
    printf("recovered: the backup is the new log's state\n");
    recover_finish(r, 0);
}

static void recover_tick(uv_timer_t *t)
{
    struct recover *r = t->data;
    if (r->done || r->written) {
        return;
    }
    r->waited_ms += 50;
    if (bo_storage_role(r->s) != BO_ROLE_LEADER) {
        if (r->waited_ms > 30000) {
            problem("recover: raft did not elect this replica within 30 s");
            recover_finish(r, EXIT_PROBLEM);
        }
        return;
    }
    r->written = true;
    struct bo_storage_write *req = bo_calloc(1, sizeof(*req));
    struct bo_err err = BO_ERR_INIT;
    int rv = req == NULL ? bo_errf(&err, BO_ENOMEM, "out of memory") : BO_OK;
    if (rv == BO_OK) {
        req->data = r;
        rv = bo_storage_write_entry(r->s, req, r->payload, r->len, recover_written, &err);
        if (rv != BO_OK) {
            bo_free(req);
        }
    }
    if (rv != BO_OK) {
        problem("recover: %s", bo_err_msg(&err, rv));
        recover_finish(r, EXIT_PROBLEM);
    }
}

static int recover(const char *backup, const char *data_dir, const char *address)
{
    uint8_t *image;
    size_t len;
    int code = read_image(backup, &image, &len);
    if (code != 0) {
        return code;
    }
    struct bo_err err = BO_ERR_INIT;
    struct bo_snap_stats st;
    const uint8_t *payload;
    size_t plen;
    int rv = bo_snap_read(image, len, NULL, &st, &err);
    if (rv == BO_OK) {
        rv = bo_snap_check_header(image, len, &payload, &plen, &err);
    }
    if (rv != BO_OK) {
        problem("recover: '%s': %s", backup, bo_err_msg(&err, rv));
        bo_free(image);
        return EXIT_PROBLEM;
    }
    rv = bo_fs_dir_empty(data_dir, &err);
    if (rv != BO_OK) {
        problem("recover: %s; recovery needs a new, empty data directory", bo_err_msg(&err, rv));
        bo_free(image);
        return EXIT_PROBLEM;
    }
    struct recover r;
    memset(&r, 0, sizeof(r));
    r.payload = payload;
    r.len = plen;
    uv_loop_init(&r.loop);
    struct bo_storage_config cfg;
    bo_storage_config_init(&cfg);
    cfg.data_dir = data_dir;
    cfg.address = address;
    cfg.backup_dir = NULL;
    cfg.backup_interval_ms = 0;
    rv = bo_storage_open(&r.loop, &cfg, &r.s, &err);
    if (rv != BO_OK) {
        problem("recover: open '%s': %s", data_dir, bo_err_msg(&err, rv));
        uv_loop_close(&r.loop);
        bo_free(image);
        return EXIT_PROBLEM;
    }
    uv_timer_init(&r.loop, &r.timer);
    r.timer.data = &r;
    uv_timer_start(&r.timer, recover_tick, 50, 50);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    bo_storage_free(r.s);
    uv_loop_close(&r.loop);
    bo_free(image);
    if (r.code == 0) {
        printf("'%s' now holds %" PRIu64 " tasks, %" PRIu64 " configs from '%s'\n", data_dir,
               st.tasks, st.configs, backup);
    }
    return r.code;
}

/* ------------------------------------------------------------ main ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: borealis-log COMMAND ...\n"
            "  dump FILE|DIR       JSON lines: an image's contents, or a data dir's log entries\n"
            "  stats FILE|DIR      counts and sizes\n"
            "  verify FILE|DIR     checksums, decoding and replay into a scratch store\n"
            "  convert IN OUT [--codec none|zlib|zstd] [--dedup on|off] [--level N]\n"
            "                      re-encode an image (backup, snapshot file) atomically\n"
            "  recover --backup FILE --data-dir DIR [--raft-address HOST:PORT]\n"
            "                      start a new log (empty DIR) holding a backup's state\n"
            "FILE is an image (a backup or a raft snapshot file); DIR a raft data directory.\n"
            "Exit status: 0 ok, 1 a problem was found or the command failed, 2 bad usage.\n"
            "'borealis-log COMMAND --help' describes one command.\n");
}

static const char *const command_help[][2] = {
    {"dump", "usage: borealis-log dump FILE|DIR\n"
             "Print JSON lines. For an image: one line per config, task, host, cron job,\n"
             "quota, job update, maintenance request and scheduler metadata, then a\n"
             "'snapshot' line with the stats. For a data dir: the raft snapshot's stats,\n"
             "then one line per log entry (index, term, type, kind, bytes; for\n"
             "transactions the ops with their kind and keys).\n"},
    {"stats", "usage: borealis-log stats FILE|DIR\n"
              "Counts and sizes of an image, or of a data dir's entries (by kind) and its\n"
              "snapshot.\n"},
    {"verify", "usage: borealis-log verify FILE|DIR\n"
               "Check checksums and decoding, then replay into a scratch store: an image is\n"
               "restored; a data dir's snapshot is restored and its later entries applied.\n"
               "Exits 1 naming the file and byte offset, or the log index, of the first\n"
               "problem.\n"},
    {"convert", "usage: borealis-log convert IN OUT [--codec none|zlib|zstd] [--dedup on|off]\n"
                "                            [--level N]\n"
                "Re-encode image IN (a backup, an image, or a raft snapshot file of a data\n"
                "dir) into OUT, written atomically. Defaults: zstd, deduplicated.\n"},
    {"recover", "usage: borealis-log recover --backup FILE --data-dir DIR\n"
                "                            [--raft-address HOST:PORT]\n"
                "Create a new single-voter log in the empty directory DIR whose state is the\n"
                "backup's (written through the log as one snapshot entry). Default address\n"
                "127.0.0.1:7070.\n"},
};

static bool wants_help(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return true;
        }
    }
    return false;
}

static int cmd_simple(const char *cmd, int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "%s: %s takes one FILE or DIR\n", prog, cmd);
        return EXIT_USAGE;
    }
    const char *path = argv[2];
    if (is_dir(path)) {
        if (strcmp(cmd, "dump") == 0) {
            return dump_dir(path);
        }
        return strcmp(cmd, "stats") == 0 ? stats_dir(path) : verify_dir(path);
    }
    uint8_t *image;
    size_t len;
    int code = read_image(path, &image, &len);
    if (code != 0) {
        return code;
    }
    if (strcmp(cmd, "dump") == 0) {
        code = dump_image(path, image, len);
    } else if (strcmp(cmd, "stats") == 0) {
        code = stats_image(path, image, len);
    } else {
        code = verify_image(path, image, len);
    }
    bo_free(image);
    return code;
}

static int cmd_convert(int argc, char **argv)
{
    static const struct option opts[] = {{"codec", required_argument, NULL, 'c'},
                                         {"dedup", required_argument, NULL, 'd'},
                                         {"level", required_argument, NULL, 'l'},
                                         {NULL, 0, NULL, 0}};
    enum bo_codec codec = BO_CODEC_ZSTD;
    bool dedup = true;
    int level = 0, c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (bo_codec_parse(optarg, &codec) != BO_OK) {
                fprintf(stderr, "%s: convert: unknown codec '%s' (none, zlib, zstd)\n", prog,
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'd':
            if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0) {
                fprintf(stderr, "%s: convert: --dedup takes 'on' or 'off'\n", prog);
                return EXIT_USAGE;
            }
            dedup = strcmp(optarg, "on") == 0;
            break;
        case 'l': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end != '\0' || v < -100 || v > 100) {
                fprintf(stderr, "%s: convert: bad --level '%s'\n", prog, optarg);
                return EXIT_USAGE;
            }
            level = (int)v;
            break;
        }
        default:
            fputs(command_help[3][1], stderr);
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 2) {
        fputs(command_help[3][1], stderr);
        return EXIT_USAGE;
    }
    return convert(argv[optind], argv[optind + 1], dedup, codec, level);
}

static int cmd_recover(int argc, char **argv)
{
    static const struct option opts[] = {{"backup", required_argument, NULL, 'b'},
                                         {"data-dir", required_argument, NULL, 'd'},
                                         {"raft-address", required_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    const char *backup = NULL, *dir = NULL, *address = "127.0.0.1:7070";
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            backup = optarg;
            break;
        case 'd':
            dir = optarg;
            break;
        case 'a':
            address = optarg;
            break;
        default:
            fputs(command_help[4][1], stderr);
            return EXIT_USAGE;
        }
    }
    if (backup == NULL || dir == NULL || optind != argc) {
        fputs(command_help[4][1], stderr);
        return EXIT_USAGE;
    }
    return recover(backup, dir, address);
}

int main(int argc, char **argv)
{
    bo_log_set_level(BO_LOG_WARN);
    signal(SIGPIPE, SIG_IGN); /* `recover` runs the storage: see storage.h */
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(command_help) / sizeof(command_help[0]); i++) {
        if (strcmp(cmd, command_help[i][0]) != 0) {
            continue;
        }
        if (wants_help(argc, argv)) {
            fputs(command_help[i][1], stdout);
            return 0;
        }
        if (strcmp(cmd, "convert") == 0) {
            return cmd_convert(argc, argv);
        }
        if (strcmp(cmd, "recover") == 0) {
            return cmd_recover(argc, argv);
        }
        return cmd_simple(cmd, argc, argv);
    }
    fprintf(stderr, "%s: unknown command '%s'\n", prog, cmd);
    usage(stderr);
    return EXIT_USAGE;
}
