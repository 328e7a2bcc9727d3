/*
 * test_health.c - health-check counting: grace period, becoming healthy,
 * failing before and after, the attempt bound, stickiness.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "executor/health.h"

static void test_defaults_grace(void **state)
{
    (void)state;
    struct bo_health h;
    /* Aurora's defaults: 15 s initial, 10 s interval -> 2 forgiven attempts;
     * max_cf 0, min_cs 1 -> at most 3 attempts to become healthy. */
    bo_health_init(&h, 15000, 10000, 0, 1);
    assert_int_equal(h.grace, 2);
    assert_int_equal(h.max_attempts_to_healthy, 3);
    assert_int_equal(bo_health_record(&h, false), BO_HEALTH_CONTINUE);
    assert_int_equal(bo_health_record(&h, false), BO_HEALTH_CONTINUE);
    assert_int_equal(h.consecutive_failures, 0);
    assert_int_equal(h.total_failures, 2);
    assert_int_equal(bo_health_record(&h, true), BO_HEALTH_BECAME_HEALTHY);
    assert_true(h.healthy);
    assert_int_equal(bo_health_record(&h, true), BO_HEALTH_CONTINUE);
    /* once healthy, max_cf 0: the first failure fails the task */
    assert_int_equal(bo_health_record(&h, false), BO_HEALTH_FAILED);
    assert_true(h.failed);
    /* sticky */
    assert_int_equal(bo_health_record(&h, true), BO_HEALTH_FAILED);
}

static void test_fail_after_grace(void **state)
{
    (void)state;
    struct bo_health h;
    bo_health_init(&h, 15000, 10000, 0, 1);
    assert_int_equal(bo_health_record(&h, false), BO_HEALTH_CONTINUE);
    assert_int_equal(bo_health_record(&h, false), BO_HEALTH_CONTINUE);
    assert_int_equal(bo_health_record(&h, false), BO_HEALTH_FAILED);
    assert_false(h.healthy);
}

static void test_min_successes(void **state)
{
    (void)state;
    struct bo_health h;
    bo_health_init(&h, 0, 1000, 1, 3);
    assert_int_equal(h.grace, 0);
    assert_int_equal(h.max_attempts_to_healthy, 4);
    assert_int_equal(bo_health_record(&h, true), BO_HEALTH_CONTINUE);
    assert_int_equal(bo_health_record(&h, true), BO_HEALTH_CONTINUE);
    assert_int_equal(bo_health_record(&h, true), BO_HEALTH_BECAME_HEALTHY);
    /* one failure is tolerated, two in a row are not */
    assert_int_equal(bo_health_record(&h, false), BO_HEALTH_CONTINUE);
    assert_int_equal(bo_health_record(&h, true), BO_HEALTH_CONTINUE);
    assert_int_equal(bo_health_record(&h, false), BO_HEALTH_CONTINUE);
    assert_int_equal(bo_health_record(&h, false), BO_HEALTH_FAILED);
    assert_int_equal(h.consecutive_failures, 2);
}

static void test_attempt_bound(void **state)
{
    (void)state;
    struct bo_health h;
    /* a success run broken by a failure never reaches min_cs in time */
    bo_health_init(&h, 0, 1000, 1, 2);
    assert_int_equal(h.max_attempts_to_healthy, 3);
    assert_int_equal(bo_health_record(&h, true), BO_HEALTH_CONTINUE);
    assert_int_equal(bo_health_record(&h, false), BO_HEALTH_CONTINUE);
    assert_int_equal(bo_health_record(&h, true), BO_HEALTH_FAILED);
}

static void test_grace_rounding(void **state)
{
    (void)state;
    struct bo_health h;
    bo_health_init(&h, 1, 10000, 0, 1);
    assert_int_equal(h.grace, 1);
    bo_health_init(&h, 20000, 10000, 0, 1);
    assert_int_equal(h.grace, 2);
    bo_health_init(&h, 20001, 10000, 0, 0);
    assert_int_equal(h.grace, 3);
    assert_int_equal(h.min_consecutive_successes, 1);
    /* failures after healthy are never forgiven, even within grace */
    bo_health_init(&h, 30000, 10000, 0, 1);
    assert_int_equal(bo_health_record(&h, true), BO_HEALTH_BECAME_HEALTHY);
    assert_int_equal(bo_health_record(&h, false), BO_HEALTH_FAILED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_grace), cmocka_unit_test(test_fail_after_grace),
        cmocka_unit_test(test_min_successes),  cmocka_unit_test(test_attempt_bound),
        cmocka_unit_test(test_grace_rounding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
