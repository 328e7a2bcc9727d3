/*
 * tmpl.h - the runtime templates of Thermos command lines.
 *
 * bo_tmpl_expand replaces every `{{ref}}` in a string with its value:
 *   {{thermos.ports[NAME]}}  the port NAME (assigned, or an announce alias)
 *   {{thermos.task_id}}      the task id
 *   {{thermos.user}}         the user the processes run as
 *   {{mesos.instance}}       the instance number
 *   {{mesos.hostname}}       the agent's host name
 * Whitespace inside the braces and the brackets is ignored
 * (`{{ thermos.ports[ http ] }}`). Text without `{{`, and a `{{` with no
 * closing `}}`, is copied as is.
 *
 * Failure: an unknown reference (or a port name that is not bound) is
 * BO_ENOTFOUND with the message "unknown reference '{{...}}'", the
 * reference as written; BO_ENOMEM. The module is pure and keeps no state.
 */
#ifndef BO_EXEC_TMPL_H
#define BO_EXEC_TMPL_H

#include <stddef.h>

#include "common/err.h"
#include "executor/tconf.h"

struct bo_tmpl_ctx {
    const char *task_id;
    const char *hostname;
    const char *user;
    int instance;
    const struct bo_tconf_port *ports; /* borrowed */
    size_t nports;
};

/* Expand `in` into a fresh bo_malloc'd string (*out, release with bo_free).
 * *out is set only on success. */
int bo_tmpl_expand(const struct bo_tmpl_ctx *ctx, const char *in, char **out, struct bo_err *err);

#endif
