/*
 * lru.c - see lru.h.
 *
 * A uthash table of entries, each on a doubly linked recency list (most
 * recent at the head). An entry is one allocation: header and value. Get
 * moves the entry to the head; put evicts from the tail until the new value
 * fits. Every operation is O(1) expected.
 */
#include "common/lru.h"

#include <string.h>

#include "common/err.h"
#include "common/mem.h"

#define uthash_malloc(sz)    bo_malloc(sz)
#define uthash_free(ptr, sz) bo_free(ptr)
#define HASH_NONFATAL_OOM    1
#include <uthash.h>

struct lru_entry {
    int64_t key;
    UT_hash_handle hh;
    struct lru_entry *prev, *next; /* recency: prev is more recent */
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
    if (e != c->head) {
        unlink_entry(c, e);
        push_head(c, e);
    }
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
    while (c->bytes + cost > c->budget && c->tail != NULL) {
        remove_entry(c, c->tail);
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
