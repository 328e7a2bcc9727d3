/*
 * heap.h - a binary min-heap of deadlines, for timers that come in numbers
 * too large for one uv_timer each (a deadline per throttled or transient
 * task at a million tasks).
 *
 * Entries are small values copied in: a deadline and an opaque payload. There
 * is no removal by key: owners re-check an entry when it fires and ignore it
 * if it no longer applies (lazy deletion), which keeps every operation
 * O(log n) and the structure one array.
 */
#ifndef BO_HEAP_H
#define BO_HEAP_H

#include <stddef.h>
#include <stdint.h>

struct bo_heap_entry {
    int64_t deadline_ms;
    uint64_t seq; /* insertion order: equal deadlines pop first in, first out */
    int kind;
    void *payload; /* owned by whoever pushed it; handed back on pop */
};

struct bo_heap {
    struct bo_heap_entry *v;
    size_t n;
    size_t cap;
    uint64_t next_seq;
};

#define BO_HEAP_INIT                                                                               \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

/* BO_ENOMEM on failure, the heap unchanged. */
int bo_heap_push(struct bo_heap *h, int64_t deadline_ms, int kind, void *payload);
/* The earliest entry, or NULL when empty. Valid until the next push or pop. */
const struct bo_heap_entry *bo_heap_peek(const struct bo_heap *h);
/* Remove the earliest entry into *out; 0 if there was none. */
int bo_heap_pop(struct bo_heap *h, struct bo_heap_entry *out);
/* Free the array (payloads are the owner's to free first). */
void bo_heap_release(struct bo_heap *h);

#endif
