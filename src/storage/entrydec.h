/*
 * entrydec.h - log entries decoded with the configs of new tasks as bytes.
 *
 * Most of what a new task costs the applier is its config: decoding it, then
 * encoding it again in canonical order to find its row, although it is
 * nearly always a config the store has seen. bo_entrydec_unpack decodes a
 * LogEntry as bo__log_entry__unpack does, except that the config of each
 * task of a save_tasks op is left as the bytes it was sent as, so the store
 * can look those bytes up first and decode them only when they are new.
 *
 * Such a task's assigned_task is a struct bo_entrydec_assigned: its `base`
 * has task == NULL and entrydec's descriptor (bo_entrydec_assigned finds
 * it), and the config's bytes in `raw` (none if the task had none). The caller
 * must make each one plain (bo_entrydec_plain) before anything else sees the
 * entry: protobuf-c packs and frees a message by its descriptor. Every other
 * message of the entry is exactly what bo__log_entry__unpack would give.
 *
 * The descriptors are copies of the generated ones with one field changed
 * along the path LogEntry.transaction, Transaction.ops, Op.save_tasks,
 * SaveTasks.tasks, ScheduledTask.assigned_task, AssignedTask.task (a bytes
 * field at the end of the larger struct); they are read-only once built,
 * so one set may serve any number of threads.
 */
#ifndef BO_ENTRYDEC_H
#define BO_ENTRYDEC_H

#include <protobuf-c/protobuf-c.h>

#include "storage.pb-c.h"

struct bo_entrydec_assigned {
    Bo__AssignedTask base;
    /* One element per occurrence of the config field, as sent (allocated
     * by the unpack's allocator). More than one is legal protobuf, meaning
     * the configs merged, which only the generated decoder does: a caller
     * meeting n_raw > 1 decodes the entry with bo__log_entry__unpack. */
    size_t n_raw;
    ProtobufCBinaryData *raw;
};

enum { BO_ENTRYDEC_DEPTH = 6 };

struct bo_entrydec {
    ProtobufCMessageDescriptor msg[BO_ENTRYDEC_DEPTH];
    ProtobufCFieldDescriptor *fields[BO_ENTRYDEC_DEPTH];
};

/* Build the descriptors into `d` (caller's memory). BO_ENOMEM, or BO_OK. */
int bo_entrydec_init(struct bo_entrydec *d);
void bo_entrydec_release(struct bo_entrydec *d);

/* Decode a LogEntry; NULL if the bytes are malformed or `a` failed. */
Bo__LogEntry *bo_entrydec_unpack(const struct bo_entrydec *d, ProtobufCAllocator *a, size_t len,
                                 const uint8_t *data);

/* The entrydec struct behind `a`, or NULL if `a` is a plain AssignedTask. */
struct bo_entrydec_assigned *bo_entrydec_assigned(const struct bo_entrydec *d, Bo__AssignedTask *a);

/* Give `x` the generated descriptor back; its task stays as the caller set
 * it, `raw` stays readable (the struct is unchanged past `base`). */
void bo_entrydec_plain(struct bo_entrydec_assigned *x);

#endif
