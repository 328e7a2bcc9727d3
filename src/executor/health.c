/*
 * health.c - health-check counting.
 *
 * Happy path: every recorded attempt bumps `attempts`; a success extends the
 * run of successes and ends the run of failures, and the task turns healthy
 * the first time the run reaches min_consecutive_successes. A failure does
 * the opposite, except that a failure during the grace period of a task not
 * yet healthy is forgiven: it does not extend the run of failures, though
 * it still breaks a run of successes (successes must be consecutive).
 *
 * Failure modes: the two ways to fail are checked after every attempt: a run
 * of failures longer than max_consecutive_failures (outside grace), and, for
 * a task not yet healthy, running out of attempts. The verdict is sticky.
 */
#include "executor/health.h"

#include <assert.h>
#include <string.h>

void bo_health_init(struct bo_health *h, int64_t initial_interval_ms, int64_t interval_ms,
                    int max_consecutive_failures, int min_consecutive_successes)
{
    assert(interval_ms > 0);
    memset(h, 0, sizeof(*h));
    if (initial_interval_ms < 0) {
        initial_interval_ms = 0;
    }
    int64_t grace = (initial_interval_ms + interval_ms - 1) / interval_ms;
    h->grace = grace > 1000000 ? 1000000 : (int)grace;
    h->max_consecutive_failures = max_consecutive_failures < 0 ? 0 : max_consecutive_failures;
    h->min_consecutive_successes = min_consecutive_successes < 1 ? 1 : min_consecutive_successes;
    h->max_attempts_to_healthy =
        h->grace + h->max_consecutive_failures + h->min_consecutive_successes;
}

enum bo_health_verdict bo_health_record(struct bo_health *h, bool ok)
{
    if (h->failed) {
        return BO_HEALTH_FAILED;
    }
    h->attempts++;
    if (ok) {
        h->consecutive_failures = 0;
        h->consecutive_successes++;
        if (!h->healthy && h->consecutive_successes >= h->min_consecutive_successes) {
            h->healthy = true;
            return BO_HEALTH_BECAME_HEALTHY;
        }
    } else {
        h->total_failures++;
        h->consecutive_successes = 0;
        bool forgiven = !h->healthy && h->attempts <= h->grace;
        if (!forgiven) {
            h->consecutive_failures++;
            if (h->consecutive_failures > h->max_consecutive_failures) {
                h->failed = true;
                return BO_HEALTH_FAILED;
            }
        }
    }
    if (!h->healthy && h->attempts >= h->max_attempts_to_healthy) {
        h->failed = true;
        return BO_HEALTH_FAILED;
    }
    return BO_HEALTH_CONTINUE;
}
