/*
 * canon.c - canonical order for the set-like fields of a TaskConfig.
 *
 * Sorting is by content, field by field, with a total order (doubles by
 * value, strings by bytes), so the result does not depend on the order a
 * client sent. Duplicates are kept: a set with a duplicate is the client's
 * business and validation's, not canonicalization's.
 */
#include "storage/canon.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

static int cmp_str(const char *a, const char *b)
{
    return strcmp(a != NULL ? a : "", b != NULL ? b : "");
}

static int cmp_i64(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

static int cmp_double(double a, double b)
{
    return (a > b) - (a < b);
}

static int cmp_resource(const void *pa, const void *pb)
{
    const Bo__Resource *a = *(Bo__Resource *const *)pa;
    const Bo__Resource *b = *(Bo__Resource *const *)pb;
    if (a->kind_case != b->kind_case) {
        return cmp_i64(a->kind_case, b->kind_case);
    }
    switch (a->kind_case) {
    case BO__RESOURCE__KIND_NUM_CPUS:
        return cmp_double(a->num_cpus, b->num_cpus);
    case BO__RESOURCE__KIND_RAM_MB:
        return cmp_i64(a->ram_mb, b->ram_mb);
    case BO__RESOURCE__KIND_DISK_MB:
        return cmp_i64(a->disk_mb, b->disk_mb);
    case BO__RESOURCE__KIND_NAMED_PORT:
        return cmp_str(a->named_port, b->named_port);
    case BO__RESOURCE__KIND_NUM_GPUS:
        return cmp_i64(a->num_gpus, b->num_gpus);
    default:
        return 0;
    }
}

static int cmp_strp(const void *pa, const void *pb)
{
    return cmp_str(*(char *const *)pa, *(char *const *)pb);
}

static int cmp_string_lists(char **a, size_t na, char **b, size_t nb)
{
    for (size_t i = 0; i < na && i < nb; i++) {
        int c = cmp_str(a[i], b[i]);
        if (c != 0) {
            return c;
        }
    }
    return cmp_i64((int64_t)na, (int64_t)nb);
}

static int cmp_constraint(const void *pa, const void *pb)
{
    const Bo__Constraint *a = *(Bo__Constraint *const *)pa;
    const Bo__Constraint *b = *(Bo__Constraint *const *)pb;
    int c = cmp_str(a->name, b->name);
    if (c != 0) {
        return c;
    }
    if (a->kind_case != b->kind_case) {
        return cmp_i64(a->kind_case, b->kind_case);
    }
    if (a->kind_case == BO__CONSTRAINT__KIND_LIMIT) {
        return cmp_i64(a->limit != NULL ? a->limit->limit : 0,
                       b->limit != NULL ? b->limit->limit : 0);
    }
    if (a->kind_case == BO__CONSTRAINT__KIND_VALUE && a->value != NULL && b->value != NULL) {
        if (a->value->negated != b->value->negated) {
            return cmp_i64(a->value->negated, b->value->negated);
        }
        return cmp_string_lists(a->value->values, a->value->n_values, b->value->values,
                                b->value->n_values);
    }
    return cmp_i64(a->value != NULL, b->value != NULL);
}

static int cmp_fetcher(const void *pa, const void *pb)
{
    const Bo__FetcherUri *a = *(Bo__FetcherUri *const *)pa;
    const Bo__FetcherUri *b = *(Bo__FetcherUri *const *)pb;
    int c = cmp_str(a->value, b->value);
    if (c == 0) {
        c = cmp_i64(a->extract, b->extract);
    }
    if (c == 0) {
        c = cmp_i64(a->cache, b->cache);
    }
    if (c == 0) {
        c = cmp_str(a->output_file, b->output_file);
    }
    return c;
}

static int cmp_link(const void *pa, const void *pb)
{
    const Bo__TaskConfig__TaskLinksEntry *a = *(Bo__TaskConfig__TaskLinksEntry *const *)pa;
    const Bo__TaskConfig__TaskLinksEntry *b = *(Bo__TaskConfig__TaskLinksEntry *const *)pb;
    int c = cmp_str(a->key, b->key);
    return c != 0 ? c : cmp_str(a->value, b->value);
}

static int cmp_metadata(const void *pa, const void *pb)
{
    const Bo__Metadata *a = *(Bo__Metadata *const *)pa;
    const Bo__Metadata *b = *(Bo__Metadata *const *)pb;
    int c = cmp_str(a->key, b->key);
    return c != 0 ? c : cmp_str(a->value, b->value);
}

static int cmp_attribute(const void *pa, const void *pb)
{
    const Bo__Attribute *a = *(Bo__Attribute *const *)pa;
    const Bo__Attribute *b = *(Bo__Attribute *const *)pb;
    int c = cmp_str(a->name, b->name);
    return c != 0 ? c : cmp_string_lists(a->values, a->n_values, b->values, b->n_values);
}

#define SORT(arr, n, cmp)                                                                          \
    do {                                                                                           \
        if ((n) > 1) {                                                                             \
            qsort((arr), (n), sizeof(*(arr)), (cmp));                                              \
        }                                                                                          \
    } while (0)

void bo_canon_task_config(Bo__TaskConfig *c)
{
    SORT(c->resources, c->n_resources, cmp_resource);
    for (size_t i = 0; i < c->n_constraints; i++) {
        Bo__Constraint *k = c->constraints[i];
        if (k->kind_case == BO__CONSTRAINT__KIND_VALUE && k->value != NULL) {
            SORT(k->value->values, k->value->n_values, cmp_strp);
        }
    }
    SORT(c->constraints, c->n_constraints, cmp_constraint);
    SORT(c->fetcher_uris, c->n_fetcher_uris, cmp_fetcher);
    SORT(c->task_links, c->n_task_links, cmp_link);
    SORT(c->metadata, c->n_metadata, cmp_metadata);
}

static bool sorted(void *const *arr, size_t n, int (*cmp)(const void *, const void *))
{
    for (size_t i = 1; i < n; i++) {
        if (cmp(&arr[i - 1], &arr[i]) > 0) {
            return false;
        }
    }
    return true;
}

bool bo_canon_task_config_is_canonical(const Bo__TaskConfig *c)
{
    for (size_t i = 0; i < c->n_constraints; i++) {
        const Bo__Constraint *k = c->constraints[i];
        if (k->kind_case == BO__CONSTRAINT__KIND_VALUE && k->value != NULL &&
            !sorted((void *const *)k->value->values, k->value->n_values, cmp_strp)) {
            return false;
        }
    }
    return sorted((void *const *)c->resources, c->n_resources, cmp_resource) &&
           sorted((void *const *)c->constraints, c->n_constraints, cmp_constraint) &&
           sorted((void *const *)c->fetcher_uris, c->n_fetcher_uris, cmp_fetcher) &&
           sorted((void *const *)c->task_links, c->n_task_links, cmp_link) &&
           sorted((void *const *)c->metadata, c->n_metadata, cmp_metadata);
}

int bo_canon_encode_config(Bo__TaskConfig *c, struct bo_buf *out)
{
    bo_canon_task_config(c);
    size_t len = protobuf_c_message_get_packed_size(&c->base);
    int rv = bo_buf_reserve(out, len);
    if (rv != BO_OK) {
        return rv;
    }
    size_t n = protobuf_c_message_pack(&c->base, out->data + out->len);
    out->len += n;
    return BO_OK;
}

/* A sorted copy of a pointer array, from `a`; the array itself when it is
 * sorted already (nothing to copy). */
static void **sorted_copy(void **arr, size_t n, int (*cmp)(const void *, const void *),
                          ProtobufCAllocator *a)
{
    if (sorted((void *const *)arr, n, cmp)) {
        return arr;
    }
    void **out = a->alloc(a->allocator_data, n * sizeof(*out));
    if (out == NULL) {
        return NULL;
    }
    memcpy(out, arr, n * sizeof(*out));
    qsort(out, n, sizeof(*out), cmp);
    return out;
}

int bo_canon_encode_config_const(const Bo__TaskConfig *c, ProtobufCAllocator *a, struct bo_buf *out)
{
    Bo__TaskConfig copy = *c;
    /* Value constraints whose values are out of order get a shallow copy
     * with a sorted copy of the values; the rest are shared. */
    for (size_t i = 0; i < c->n_constraints; i++) {
        const Bo__Constraint *k = c->constraints[i];
        if (k->kind_case != BO__CONSTRAINT__KIND_VALUE || k->value == NULL ||
            sorted((void *const *)k->value->values, k->value->n_values, cmp_strp)) {
            continue;
        }
        if (copy.constraints == c->constraints) {
            copy.constraints = a->alloc(a->allocator_data, c->n_constraints * sizeof(void *));
            if (copy.constraints == NULL) {
                return BO_ENOMEM;
            }
            memcpy(copy.constraints, c->constraints, c->n_constraints * sizeof(void *));
        }
        Bo__Constraint *kc = a->alloc(a->allocator_data, sizeof(*kc));
        Bo__ValueConstraint *vc = a->alloc(a->allocator_data, sizeof(*vc));
        if (kc == NULL || vc == NULL) {
            return BO_ENOMEM;
        }
        *kc = *k;
        *vc = *k->value;
        vc->values = (char **)sorted_copy((void **)vc->values, vc->n_values, cmp_strp, a);
        if (vc->values == NULL) {
            return BO_ENOMEM;
        }
        kc->value = vc;
        copy.constraints[i] = kc;
    }
#define SORTED(field, n, cmp)                                                                      \
    do {                                                                                           \
        if ((n) > 1) {                                                                             \
            void **p = sorted_copy((void **)copy.field, (n), (cmp), a);                            \
            if (p == NULL) {                                                                       \
                return BO_ENOMEM;                                                                  \
            }                                                                                      \
            copy.field = (void *)p;                                                                \
        }                                                                                          \
    } while (0)
    SORTED(resources, c->n_resources, cmp_resource);
    SORTED(constraints, c->n_constraints, cmp_constraint);
    SORTED(fetcher_uris, c->n_fetcher_uris, cmp_fetcher);
    SORTED(task_links, c->n_task_links, cmp_link);
    SORTED(metadata, c->n_metadata, cmp_metadata);
#undef SORTED
    size_t len = protobuf_c_message_get_packed_size(&copy.base);
    int rv = bo_buf_reserve(out, len);
    if (rv != BO_OK) {
        return rv;
    }
    out->len += protobuf_c_message_pack(&copy.base, out->data + out->len);
    return BO_OK;
}

void bo_canon_host_attributes(Bo__HostAttributes *h)
{
    for (size_t i = 0; i < h->n_attributes; i++) {
        SORT(h->attributes[i]->values, h->attributes[i]->n_values, cmp_strp);
    }
    SORT(h->attributes, h->n_attributes, cmp_attribute);
}
