/*
 * entrydec.c - log entries decoded with the configs of new tasks as bytes
 * (contract in entrydec.h).
 *
 * protobuf-c decodes a message by its descriptor alone: the field table says
 * where each field goes in the struct and which descriptor decodes a nested
 * message. So a copy of the descriptors from LogEntry down to AssignedTask,
 * each copy pointing its one field at the next copy, decodes every entry as
 * the generated code does, except at the end of the path: there the config
 * field is declared repeated bytes, at an offset past the end of
 * Bo__AssignedTask in a struct made larger for it. Same field number, same
 * wire type (length delimited), so the entries the generated code accepts
 * are accepted, and a malformed config is found when the store decodes it.
 * Repeated, so that a config sent in two parts (which protobuf merges) is
 * seen as such rather than as its last part.
 *
 * Initialization: the copies above AssignedTask keep the generated init
 * functions, so what they decode carries the generated descriptors and is
 * plain. The AssignedTask copy has none: protobuf-c then zeroes the whole
 * (larger) struct and sets the copy as its descriptor, which is how the
 * store finds the tasks to make plain again.
 */
#include "storage/entrydec.h"

#include <stddef.h>
#include <string.h>

#include "common/err.h"
#include "common/mem.h"

enum { D_ENTRY, D_TXN, D_OP, D_SAVE_TASKS, D_TASK, D_ASSIGNED };

static const struct {
    const ProtobufCMessageDescriptor *desc;
    const char *field; /* the field that leads to the next copy */
} path[BO_ENTRYDEC_DEPTH] = {
    [D_ENTRY] = {&bo__log_entry__descriptor, "transaction"},
    [D_TXN] = {&bo__transaction__descriptor, "ops"},
    [D_OP] = {&bo__op__descriptor, "save_tasks"},
    [D_SAVE_TASKS] = {&bo__save_tasks__descriptor, "tasks"},
    [D_TASK] = {&bo__scheduled_task__descriptor, "assigned_task"},
    [D_ASSIGNED] = {&bo__assigned_task__descriptor, "task"},
};

int bo_entrydec_init(struct bo_entrydec *d)
{
    memset(d, 0, sizeof(*d));
    for (int k = 0; k < BO_ENTRYDEC_DEPTH; k++) {
        const ProtobufCMessageDescriptor *orig = path[k].desc;
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(orig, path[k].field);
        if (f == NULL) {
            bo_entrydec_release(d);
            return BO_EINTERNAL;
        }
        ProtobufCFieldDescriptor *fields = bo_calloc(orig->n_fields, sizeof(*fields));
        if (fields == NULL) {
            bo_entrydec_release(d);
            return BO_ENOMEM;
        }
        memcpy(fields, orig->fields, orig->n_fields * sizeof(*fields));
        d->fields[k] = fields;
        d->msg[k] = *orig;
        d->msg[k].fields = fields;
        ProtobufCFieldDescriptor *g = &fields[f - orig->fields];
        if (k + 1 < BO_ENTRYDEC_DEPTH) {
            g->descriptor = &d->msg[k + 1];
            continue;
        }
        g->label = PROTOBUF_C_LABEL_REPEATED;
        g->type = PROTOBUF_C_TYPE_BYTES;
        g->quantifier_offset = offsetof(struct bo_entrydec_assigned, n_raw);
        g->offset = offsetof(struct bo_entrydec_assigned, raw);
        g->descriptor = NULL;
        g->default_value = NULL;
        g->flags = 0;
        d->msg[k].sizeof_message = sizeof(struct bo_entrydec_assigned);
        d->msg[k].message_init = NULL;
    }
    return BO_OK;
}

void bo_entrydec_release(struct bo_entrydec *d)
{
    for (int k = 0; k < BO_ENTRYDEC_DEPTH; k++) {
        bo_free(d->fields[k]);
        d->fields[k] = NULL;
    }
}

Bo__LogEntry *bo_entrydec_unpack(const struct bo_entrydec *d, ProtobufCAllocator *a, size_t len,
                                 const uint8_t *data)
{
    return (Bo__LogEntry *)protobuf_c_message_unpack(&d->msg[D_ENTRY], a, len, data);
}

struct bo_entrydec_assigned *bo_entrydec_assigned(const struct bo_entrydec *d, Bo__AssignedTask *a)
{
    if (a == NULL || a->base.descriptor != &d->msg[D_ASSIGNED]) {
        return NULL;
    }
    return (struct bo_entrydec_assigned *)a;
}

void bo_entrydec_plain(struct bo_entrydec_assigned *x)
{
    x->base.base.descriptor = &bo__assigned_task__descriptor;
}
