/*
 * health.h - health-check counting (Aurora's HealthChecker rules), pure.
 *
 * The caller runs one check per interval and feeds each result to
 * bo_health_record, which says what the task's health has become:
 *   - the first `grace` attempts (ceil(initial_interval / interval)) may
 *     fail without consequence while the task is not yet healthy;
 *   - after min_consecutive_successes successes in a row the task becomes
 *     healthy (BO_HEALTH_BECAME_HEALTHY, once): the executor sends RUNNING;
 *   - after the grace period, more than max_consecutive_failures failures in
 *     a row is BO_HEALTH_FAILED, healthy or not;
 *   - a task not yet healthy after grace + max_consecutive_failures +
 *     min_consecutive_successes attempts is BO_HEALTH_FAILED.
 * Once FAILED, the verdict stays FAILED. A skipped check (the
 * .healthchecksnooze file) is simply not recorded.
 *
 * No I/O, no clock, no allocation; the struct is the caller's.
 */
#ifndef BO_EXEC_HEALTH_H
#define BO_EXEC_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

enum bo_health_verdict {
    BO_HEALTH_CONTINUE = 0,
    BO_HEALTH_BECAME_HEALTHY,
    BO_HEALTH_FAILED,
};

struct bo_health {
    /* parameters */
    int grace; /* attempts whose failures are forgiven */
    int max_consecutive_failures;
    int min_consecutive_successes;
    int max_attempts_to_healthy; /* grace + max_cf + min_cs */
    /* counters */
    int attempts;
    int consecutive_failures;
    int consecutive_successes;
    int total_failures;
    bool healthy;
    bool failed;
};

/* Set the parameters and zero the counters. Intervals in milliseconds;
 * interval_ms must be positive. A min_consecutive_successes below 1 counts
 * as 1. */
void bo_health_init(struct bo_health *h, int64_t initial_interval_ms, int64_t interval_ms,
                    int max_consecutive_failures, int min_consecutive_successes);

/* Record one check. */
enum bo_health_verdict bo_health_record(struct bo_health *h, bool ok);

#endif
