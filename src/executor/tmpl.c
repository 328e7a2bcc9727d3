/*
 * tmpl.c - runtime template expansion.
 *
 * Happy path: scan for "{{", find the next "}}", strip blanks from the
 * reference between them and look it up; literal text and values are
 * appended to a bo_buf. References are resolved in one pass: a value is never
 * scanned again, so a port name cannot smuggle in another reference.
 *
 * Failure modes: the first unknown reference ends the expansion with
 * BO_ENOTFOUND and a message quoting it as written (bounded to 100 bytes);
 * the buffer is released, nothing is returned.
 */
#include "executor/tmpl.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/mem.h"

/* Copy `s[0..n)` without blanks into `out` (size `size`); false if too long. */
static bool squeeze(const char *s, size_t n, char *out, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (isspace((unsigned char)s[i])) {
            continue;
        }
        if (k + 1 >= size) {
            return false;
        }
        out[k++] = s[i];
    }
    out[k] = '\0';
    return true;
}

/* The value of the reference `ref` (blanks removed) into `val`; false if unknown. */
static bool lookup(const struct bo_tmpl_ctx *ctx, const char *ref, char *val, size_t size)
{
    static const char ports[] = "thermos.ports[";
    if (strcmp(ref, "thermos.task_id") == 0) {
        snprintf(val, size, "%s", ctx->task_id != NULL ? ctx->task_id : "");
        return true;
    }
    if (strcmp(ref, "thermos.user") == 0) {
        snprintf(val, size, "%s", ctx->user != NULL ? ctx->user : "");
        return true;
    }
    if (strcmp(ref, "mesos.hostname") == 0) {
        snprintf(val, size, "%s", ctx->hostname != NULL ? ctx->hostname : "");
        return true;
    }
    if (strcmp(ref, "mesos.instance") == 0) {
        snprintf(val, size, "%d", ctx->instance);
        return true;
    }
    size_t plen = sizeof(ports) - 1;
    size_t len = strlen(ref);
    if (len > plen + 1 && strncmp(ref, ports, plen) == 0 && ref[len - 1] == ']') {
        const char *name = ref + plen;
        size_t nlen = len - plen - 1;
        /* tolerate quoted names: thermos.ports['http'] */
        if (nlen >= 2 && (name[0] == '\'' || name[0] == '"') && name[nlen - 1] == name[0]) {
            name++;
            nlen -= 2;
        }
        for (size_t i = 0; i < ctx->nports; i++) {
            if (strlen(ctx->ports[i].name) == nlen && memcmp(ctx->ports[i].name, name, nlen) == 0) {
                snprintf(val, size, "%d", ctx->ports[i].port);
                return true;
            }
        }
    }
    return false;
}

int bo_tmpl_expand(const struct bo_tmpl_ctx *ctx, const char *in, char **out, struct bo_err *err)
{
    struct bo_buf b = BO_BUF_INIT;
    const char *p = in;
    int rv = BO_OK;
    for (;;) {
        const char *open = strstr(p, "{{");
        const char *close = open != NULL ? strstr(open + 2, "}}") : NULL;
        if (close == NULL) {
            rv = bo_buf_append(&b, p, strlen(p) + 1); /* with the NUL */
            break;
        }
        if ((rv = bo_buf_append(&b, p, (size_t)(open - p))) != BO_OK) {
            break;
        }
        char ref[512];
        char val[512];
        if (!squeeze(open + 2, (size_t)(close - open - 2), ref, sizeof(ref)) ||
            !lookup(ctx, ref, val, sizeof(val))) {
            int shown = (int)(close + 2 - open);
            rv = bo_errf(err, BO_ENOTFOUND, "unknown reference '%.*s'", shown > 100 ? 100 : shown,
                         open);
            bo_buf_release(&b);
            return rv;
        }
        if ((rv = bo_buf_append(&b, val, strlen(val))) != BO_OK) {
            break;
        }
        p = close + 2;
    }
    if (rv != BO_OK) {
        bo_buf_release(&b);
        return bo_errf(err, BO_ENOMEM, "out of memory");
    }
    size_t len;
    *out = (char *)bo_buf_detach(&b, &len);
    return BO_OK;
}
