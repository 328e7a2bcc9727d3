/*
 * lru.h - a bounded cache of byte strings by 64-bit key; what was not read
 * recently goes first (second chance, an approximation of least recently
 * used that costs a hit nothing but a mark).
 *
 * For values that are expensive to make and cheap to keep for a while, such
 * as a stored task rendered as the API's JSON: the owner knows when a key's
 * value goes stale and drops it (bo_lru_drop, bo_lru_clear); the cache only
 * bounds the bytes held. The budget counts each value's bytes plus a fixed
 * overhead per entry, so many tiny values cannot hold unbounded memory.
 *
 * One thread: no locking.
 */
#ifndef BO_LRU_H
#define BO_LRU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bo_lru;

struct bo_lru_stats {
    uint64_t hits, misses, evictions;
    size_t entries;
    size_t bytes; /* values plus per-entry overhead, <= budget */
    size_t budget;
};

/* A cache holding at most `budget` bytes; 0 makes one that keeps nothing.
 * BO_ENOMEM. */
int bo_lru_new(size_t budget, struct bo_lru **out);
void bo_lru_free(struct bo_lru *c);

/* The value of `key`, now marked as read. Valid until the next
 * bo_lru_put, drop or clear. false (a miss) when absent. */
bool bo_lru_get(struct bo_lru *c, int64_t key, const uint8_t **data, size_t *len);

/* Keep `len` bytes (copied) as the value of `key`, replacing any, evicting
 * from the least recently used end to make room. A value larger than the
 * whole budget is not kept (BO_OK: a cache may forget). Entries go oldest
 * first, but one read since it was last considered is kept once more.
 * BO_ENOMEM, with
 * `key` then absent. */
int bo_lru_put(struct bo_lru *c, int64_t key, const uint8_t *data, size_t len);

/* Forget `key` (nothing if absent); forget everything. */
void bo_lru_drop(struct bo_lru *c, int64_t key);
void bo_lru_clear(struct bo_lru *c);

void bo_lru_get_stats(const struct bo_lru *c, struct bo_lru_stats *out);
/* Entries held, in O(1). */
size_t bo_lru_count(const struct bo_lru *c);

#endif
