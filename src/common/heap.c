/*
 * heap.c - binary min-heap ordered by (deadline, insertion sequence).
 */
#include "common/heap.h"

#include "common/err.h"
#include "common/mem.h"

static int less(const struct bo_heap_entry *a, const struct bo_heap_entry *b)
{
    return a->deadline_ms < b->deadline_ms || (a->deadline_ms == b->deadline_ms && a->seq < b->seq);
}

static void swap(struct bo_heap_entry *a, struct bo_heap_entry *b)
{
    struct bo_heap_entry t = *a;
    *a = *b;
    *b = t;
}

int bo_heap_push(struct bo_heap *h, int64_t deadline_ms, int kind, void *payload)
{
    if (h->n == h->cap) {
        size_t cap = h->cap == 0 ? 64 : h->cap * 2;
        struct bo_heap_entry *v = bo_reallocarray(h->v, cap, sizeof(*v));
        if (v == NULL) {
            return BO_ENOMEM;
        }
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    h->v[i] = (struct bo_heap_entry){deadline_ms, h->next_seq++, kind, payload};
    while (i > 0 && less(&h->v[i], &h->v[(i - 1) / 2])) {
        swap(&h->v[i], &h->v[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    return BO_OK;
}

const struct bo_heap_entry *bo_heap_peek(const struct bo_heap *h)
{
    return h->n > 0 ? &h->v[0] : NULL;
}

int bo_heap_pop(struct bo_heap *h, struct bo_heap_entry *out)
{
    if (h->n == 0) {
        return 0;
    }
    *out = h->v[0];
    h->v[0] = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && less(&h->v[l], &h->v[m])) {
            m = l;
        }
        if (r < h->n && less(&h->v[r], &h->v[m])) {
            m = r;
        }
        if (m == i) {
            break;
        }
        swap(&h->v[i], &h->v[m]);
        i = m;
    }
    return 1;
}

void bo_heap_release(struct bo_heap *h)
{
    bo_free(h->v);
    *h = (struct bo_heap)BO_HEAP_INIT;
}
