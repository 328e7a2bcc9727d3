/*
 * lru.c - see lru.h.
 *
 * A uthash table of entries, each on a doubly linked list in insertion
 * order (newest at the head). An entry is one allocation: header and value.
 * Eviction is second chance (CLOCK): a hit only sets the entry's mark, and
 * put takes entries from the tail, moving a marked one back to the head
 * with its mark cleared instead of evicting it. A hit thus touches nothing
 * but its own entry, which matters when a read copies thousands of values
 * in a row: moving each to the head cost two more cache misses apiece (its
 * neighbours), a third of the time of a 10,000-task read. For the same
 * reason uthash's tables grow at chains of 3 rather than 10: each link of
 * a chain is another entry to miss on. Every operation is O(1) expected.
 */
#include "common/lru.h"

#include <string.h>

#include "common/err.h"
#include "common/mem.h"

#define uthash_malloc(sz)    bo_malloc(sz)
#define uthash_free(ptr, sz) bo_free(ptr)
#define HASH_NONFATAL_OOM    1
#include <uthash.h>
/* Applies where the macros expand, below (see above for why). */
#undef HASH_BKT_CAPACITY_THRESH
#define HASH_BKT_CAPACITY_THRESH 3U

struct lru_entry {
    int64_t key;
    UT_hash_handle hh;
    struct lru_entry *prev, *next; /* insertion order: prev is newer */
    bool marked;                   /* read since it last reached the tail */
    size_t len;
    uint8_t data[];
};

/* What an entry costs beyond its value: its header and the table's share. */
#define ENTRY_OVERHEAD (sizeof(struct lru_entry) + 16)

struct bo_lru {
    struct lru_entry *table;
    struct lru_entry *head, *tail;
    size_t bytes, budget;
    uint64_t hits, misses, evictions;
};

int bo_lru_new(size_t budget, struct bo_lru **out)
{
    struct bo_lru *c = bo_calloc(1, sizeof(*c));
    if (c == NULL) {
        return BO_ENOMEM;
    }
    c->budget = budget;
    *out = c;
    return BO_OK;
}

static void unlink_entry(struct bo_lru *c, struct lru_entry *e)
{
    if (e->prev != NULL) {
        e->prev->next = e->next;
    } else {
        c->head = e->next;
    }
    if (e->next != NULL) {
        e->next->prev = e->prev;
    } else {
        c->tail = e->prev;
    }
    e->prev = e->next = NULL;
}

static void push_head(struct bo_lru *c, struct lru_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head != NULL) {
        c->head->prev = e;
    } else {
        c->tail = e;
    }
    c->head = e;
}

static void remove_entry(struct bo_lru *c, struct lru_entry *e)
{
    HASH_DEL(c->table, e);
    unlink_entry(c, e);
    c->bytes -= e->len + ENTRY_OVERHEAD;
    bo_free(e);
}

void bo_lru_clear(struct bo_lru *c)
{
    if (c == NULL) {
        return;
    }
    HASH_CLEAR(hh, c->table); /* the table lives in the entries: first */
    struct lru_entry *e = c->head;
    while (e != NULL) {
        struct lru_entry *next = e->next;
        bo_free(e);
        e = next;
    }
    c->head = c->tail = NULL;
    c->bytes = 0;
}

void bo_lru_free(struct bo_lru *c)
{
    if (c == NULL) {
        return;
    }
    bo_lru_clear(c);
    bo_free(c);
}

bool bo_lru_get(struct bo_lru *c, int64_t key, const uint8_t **data, size_t *len)
{
    struct lru_entry *e = NULL;
    HASH_FIND(hh, c->table, &key, sizeof(key), e);
    if (e == NULL) {
        c->misses++;
        return false;
    }
    c->hits++;
    e->marked = true;
    *data = e->data;
    *len = e->len;
    return true;
}

void bo_lru_drop(struct bo_lru *c, int64_t key)
{
    struct lru_entry *e = NULL;
    HASH_FIND(hh, c->table, &key, sizeof(key), e);
    if (e != NULL) {
        remove_entry(c, e);
    }
}

int bo_lru_put(struct bo_lru *c, int64_t key, const uint8_t *data, size_t len)
{
    bo_lru_drop(c, key);
    size_t cost = len + ENTRY_OVERHEAD;
    if (cost > c->budget) {
        return BO_OK;
    }
    /* Ends: each marked entry is passed over once, unmarked. */
    while (c->bytes + cost > c->budget && c->tail != NULL) {
        struct lru_entry *old = c->tail;
        if (old->marked) {
            old->marked = false;
            unlink_entry(c, old);
            push_head(c, old);
            continue;
        }
        remove_entry(c, old);
        c->evictions++;
    }
    struct lru_entry *e = bo_malloc(sizeof(*e) + len);
    if (e == NULL) {
        return BO_ENOMEM;
    }
    memset(e, 0, sizeof(*e));
    e->key = key;
    e->len = len;
    if (len > 0) {
        memcpy(e->data, data, len);
    }
    HASH_ADD(hh, c->table, key, sizeof(e->key), e);
    if (e->hh.tbl == NULL) {
        /* uthash could not allocate its table or a bucket chain: not added */
        bo_free(e);
        return BO_ENOMEM;
    }
    push_head(c, e);
    c->bytes += cost;
    return BO_OK;
}

void bo_lru_get_stats(const struct bo_lru *c, struct bo_lru_stats *out)
{
    *out = (struct bo_lru_stats){
        .hits = c->hits,
        .misses = c->misses,
        .evictions = c->evictions,
        .entries = HASH_COUNT(c->table),
        .bytes = c->bytes,
        .budget = c->budget,
    };
}

size_t bo_lru_count(const struct bo_lru *c)
{
    return HASH_COUNT(c->table);
}
