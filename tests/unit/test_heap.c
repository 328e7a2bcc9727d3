/*
 * test_heap.c - the deadline heap: order, ties in insertion order, growth.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "common/heap.h"

static void test_order_and_ties(void **state)
{
    (void)state;
    struct bo_heap h = BO_HEAP_INIT;
    int64_t at[] = {50, 10, 30, 10, 40, 20, 10};
    for (size_t i = 0; i < sizeof(at) / sizeof(*at); i++) {
        assert_int_equal(bo_heap_push(&h, at[i], (int)i, NULL), 0);
    }
    assert_int_equal(bo_heap_peek(&h)->deadline_ms, 10);
    /* equal deadlines come out first in, first out: kinds 1, 3, 6 */
    int want_kind[] = {1, 3, 6, 5, 2, 4, 0};
    int64_t want_at[] = {10, 10, 10, 20, 30, 40, 50};
    struct bo_heap_entry e;
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(bo_heap_pop(&h, &e), 1);
        assert_int_equal(e.deadline_ms, want_at[i]);
        assert_int_equal(e.kind, want_kind[i]);
    }
    assert_int_equal(bo_heap_pop(&h, &e), 0);
    assert_null(bo_heap_peek(&h));
    bo_heap_release(&h);
}

static void test_many_random(void **state)
{
    (void)state;
    struct bo_heap h = BO_HEAP_INIT;
    srand(7);
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(bo_heap_push(&h, rand() % 1000, 0, NULL), 0);
    }
    int64_t last = -1;
    struct bo_heap_entry e;
    size_t n = 0;
    while (bo_heap_pop(&h, &e)) {
        assert_true(e.deadline_ms >= last);
        last = e.deadline_ms;
        n++;
    }
    assert_int_equal(n, 10000);
    bo_heap_release(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_ties),
        cmocka_unit_test(test_many_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
