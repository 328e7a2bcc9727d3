/*
 * cron.h - crontab expressions and their next fire time (Aurora cron jobs).
 *
 * An expression has five whitespace-separated fields, a subset of FreeBSD
 * crontab(5) as Aurora accepts it:
 *
 *     minute (0-59)  hour (0-23)  day-of-month (1-31)  month (1-12, JAN-DEC)
 *     day-of-week (0-6, SUN-SAT, 0 is Sunday; 7 is rejected)
 *
 * Each field is a comma-separated list of `*`, `n` or `a-b` (a <= b), each
 * optionally followed by `/s`, every s-th value (s >= 1); `n/s` means n to the
 * field's maximum. Names are three-letter English abbreviations in any case. Day-of-month and
 * day-of-week may not both be restricted, where a field is restricted when it does not cover every
 * value (so `1-31` counts as `*`, as in Aurora's CrontabEntry). `?`, `L`, `W`, `#` and
 * `@daily`-style macros are not supported.
 *
 * struct bo_cron is a plain value: no allocation, nothing to release, safe to
 * copy and embed. Every function here is pure (no I/O, no clock; time comes in
 * as an argument) and may be called from any thread on a struct nobody is
 * writing. bo_cron_next with utc == false reads the process time zone (TZ);
 * TZ must not change while other threads may call it (the scheduler sets it
 * once in main before it starts threads).
 */
#ifndef BO_CRON_H
#define BO_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Room for the expression text, terminator included: at most 127 bytes. */
#define BO_CRON_EXPR_MAX 128

/* A buffer this large always holds bo_cron_format's output. */
#define BO_CRON_FORMAT_MAX 256

/* How far bo_cron_next looks ahead: five years, in days. */
#define BO_CRON_HORIZON_DAYS 1827

struct bo_cron {
    uint64_t minutes;            /* bit m set: minute m (0-59) matches */
    uint64_t hours;              /* bits 0-23 */
    uint64_t mdays;              /* bits 1-31 */
    uint64_t months;             /* bits 1-12 */
    uint64_t wdays;              /* bits 0-6, 0 is Sunday */
    char expr[BO_CRON_EXPR_MAX]; /* the expression as given, NUL-terminated */
};

/* Parse `expr` into `*c`. On failure returns BO_EINVAL with a message naming
 * the field ("day-of-week: '7' out of range 0-6") and leaves `*c` untouched.
 * The text is copied; `expr` need not outlive the call. */
int bo_cron_parse(struct bo_cron *c, const char *expr, struct bo_err *err);

/* The first minute boundary strictly after `after_ms` (milliseconds since the
 * epoch) that `c` matches, in UTC when `utc` is true, otherwise in the local
 * time zone. A local time that does not exist (spring forward) is skipped; one
 * that occurs twice (fall back) fires once, at its first occurrence: a wall
 * time that already fired in the first pass of a repeated hour does not fire
 * again in the second. Returns BO_OK and sets `*next_ms`; BO_ENOTFOUND when
 * nothing matches within BO_CRON_HORIZON_DAYS of `after_ms` (`0 0 30 2 *`);
 * BO_EINVAL when `after_ms` is outside the years 1-9999 (UTC). `*next_ms` is only
 * written on success. */
int bo_cron_next(const struct bo_cron *c, int64_t after_ms, bool utc, int64_t *next_ms);

/* Write the canonical form of `c` to `buf` (always NUL-terminated when
 * `size` > 0, truncated like snprintf): each field as `*` when it covers every
 * value, otherwise as ascending numbers and `a-b` runs, e.g. `0 9-17 * * 1-5`
 * for `0 9-17 * * mon-fri`. Expressions with the same value sets have the same
 * canonical form, and parsing the form gives the same schedule. */
void bo_cron_format(const struct bo_cron *c, char *buf, size_t size);

#endif
