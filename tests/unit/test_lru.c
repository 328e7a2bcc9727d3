/*
 * test_lru.c - the bounded byte cache: hits and misses, recency order of
 * eviction, the byte budget, replacement and drops, values larger than the
 * budget, and allocation failures leaving the cache consistent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/lru.h"
#include "common/mem.h"

static void put_str(struct bo_lru *c, int64_t key, const char *s)
{
    assert_int_equal(bo_lru_put(c, key, (const uint8_t *)s, strlen(s)), BO_OK);
}

static bool has(struct bo_lru *c, int64_t key, const char *want)
{
    const uint8_t *d;
    size_t len;
    if (!bo_lru_get(c, key, &d, &len)) {
        return false;
    }
    assert_int_equal(len, strlen(want));
    assert_memory_equal(d, want, len);
    return true;
}

static void test_get_put_replace_drop(void **state)
{
    (void)state;
    struct bo_lru *c;
    assert_int_equal(bo_lru_new(1 << 20, &c), BO_OK);
    assert_false(has(c, 1, ""));
    put_str(c, 1, "one");
    put_str(c, -7, "minus seven");
    put_str(c, 2, "");
    assert_true(has(c, 1, "one"));
    assert_true(has(c, -7, "minus seven"));
    assert_true(has(c, 2, "")); /* an empty value is a value */
    put_str(c, 1, "uno");
    assert_true(has(c, 1, "uno"));
    bo_lru_drop(c, 1);
    bo_lru_drop(c, 12345); /* absent: nothing */
    assert_false(has(c, 1, ""));
    struct bo_lru_stats st;
    bo_lru_get_stats(c, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.hits, 4);
    assert_int_equal(st.misses, 2);
    bo_lru_clear(c);
    bo_lru_get_stats(c, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    assert_false(has(c, -7, ""));
    put_str(c, 3, "after clear");
    assert_true(has(c, 3, "after clear"));
    bo_lru_free(c);
}

/* The budget holds whatever was used last: a get protects an entry from
 * the next eviction, and bytes never exceed the budget. */
static void test_eviction_order_and_budget(void **state)
{
    (void)state;
    char v[100];
    memset(v, 'x', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    /* room for exactly ten such values, whatever the overhead per entry */
    struct bo_lru *probe;
    assert_int_equal(bo_lru_new(1 << 20, &probe), BO_OK);
    put_str(probe, 0, v);
    struct bo_lru_stats st;
    bo_lru_get_stats(probe, &st);
    size_t one = st.bytes;
    bo_lru_free(probe);

    struct bo_lru *c;
    assert_int_equal(bo_lru_new(one * 10, &c), BO_OK);
    for (int64_t k = 0; k < 10; k++) {
        put_str(c, k, v);
    }
    bo_lru_get_stats(c, &st);
    assert_int_equal(st.entries, 10);
    assert_int_equal(st.evictions, 0);
    assert_true(has(c, 0, v)); /* 0 is now the most recent; 1 the least */
    put_str(c, 10, v);
    assert_false(has(c, 1, v));
    assert_true(has(c, 0, v));
    assert_true(has(c, 2, v));
    put_str(c, 11, v); /* evicts 3: 0 and 2 were used since */
    assert_false(has(c, 3, v));
    assert_true(has(c, 4, v));
    bo_lru_get_stats(c, &st);
    assert_true(st.bytes <= st.budget);
    assert_int_equal(st.evictions, 2);
    assert_int_equal(st.entries, 10);

    /* every entry read: each gets its second chance once, then the oldest
     * goes all the same */
    for (int64_t k = 0; k <= 11; k++) {
        has(c, k, v);
    }
    put_str(c, 12, v);
    bo_lru_get_stats(c, &st);
    assert_int_equal(st.evictions, 3);
    assert_int_equal(st.entries, 10);
    assert_true(has(c, 12, v));

    /* a value bigger than the whole budget is not kept, and evicts nothing */
    char big[4096];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct bo_lru *small;
    assert_int_equal(bo_lru_new(one * 2, &small), BO_OK);
    put_str(small, 1, v);
    put_str(small, 2, big);
    assert_false(has(small, 2, big));
    assert_true(has(small, 1, v));
    bo_lru_free(small);

    /* a zero budget keeps nothing */
    struct bo_lru *none;
    assert_int_equal(bo_lru_new(0, &none), BO_OK);
    put_str(none, 1, "");
    assert_false(has(none, 1, ""));
    bo_lru_free(none);
    bo_lru_free(c);
}

/* Many keys through a small cache: what it holds is always the most recent
 * ones, checked against a model. */
static void test_many_keys_against_model(void **state)
{
    (void)state;
    struct bo_lru *probe;
    assert_int_equal(bo_lru_new(1 << 20, &probe), BO_OK);
    put_str(probe, 0, "value-0000");
    struct bo_lru_stats st;
    bo_lru_get_stats(probe, &st);
    size_t one = st.bytes;
    bo_lru_free(probe);
    enum { CAP = 64, KEYS = 5000 };
    struct bo_lru *c;
    assert_int_equal(bo_lru_new(one * CAP, &c), BO_OK);
    char v[16];
    for (int64_t k = 0; k < KEYS; k++) {
        snprintf(v, sizeof(v), "value-%04d", (int)(k % 10000));
        put_str(c, k, v);
    }
    for (int64_t k = 0; k < KEYS; k++) {
        snprintf(v, sizeof(v), "value-%04d", (int)(k % 10000));
        const uint8_t *d;
        size_t len;
        bool in = k >= KEYS - CAP;
        assert_int_equal(bo_lru_get(c, k, &d, &len), in);
    }
    bo_lru_free(c);
}

/* Every allocation of a put failing in turn: BO_ENOMEM, the key absent,
 * the rest intact, nothing leaked (the ASan build checks). */
static void test_out_of_memory(void **state)
{
    (void)state;
    for (long fail = 0; fail < 6; fail++) {
        struct bo_lru *c;
        assert_int_equal(bo_lru_new(1 << 20, &c), BO_OK);
        put_str(c, 1, "kept");
        bo_mem_fail_after(fail);
        int rc = bo_lru_put(c, 2, (const uint8_t *)"new", 3);
        bo_mem_fail_after(-1);
        if (rc != BO_OK) {
            assert_int_equal(rc, BO_ENOMEM);
            assert_false(has(c, 2, "new"));
        } else {
            assert_true(has(c, 2, "new"));
        }
        assert_true(has(c, 1, "kept"));
        bo_lru_free(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_put_replace_drop),
        cmocka_unit_test(test_eviction_order_and_budget),
        cmocka_unit_test(test_many_keys_against_model),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
