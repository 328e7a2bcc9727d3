/*
 * test_cron.c - crontab parsing, canonical form and next fire times (UTC and
 * America/New_York across both DST changes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "scheduler/cron.h"

/* "YYYY-MM-DD HH:MM" or "YYYY-MM-DD HH:MM:SS", UTC, to milliseconds. */
static int64_t utc_ms(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int n = sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec);
    assert_true(n == 5 || n == 6);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000;
}

/* Milliseconds to "YYYY-MM-DD HH:MM" (UTC); seconds must be zero. */
static void utc_text(int64_t ms, char out[32])
{
    assert_int_equal(ms % 60000, 0);
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    assert_non_null(gmtime_r(&t, &tm));
    strftime(out, 32, "%Y-%m-%d %H:%M", &tm);
}

static void parse_ok(const char *expr, struct bo_cron *c)
{
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_cron_parse(c, expr, &err);
    if (rv != BO_OK) {
        print_message("parse '%s': %s\n", expr, bo_err_msg(&err, rv));
    }
    assert_int_equal(rv, BO_OK);
}

/* Follow the chain of fire times from `start` and compare with `want`. */
static void check_chain(const char *expr, bool utc, const char *start, const char *const *want,
                        size_t nwant)
{
    struct bo_cron c;
    parse_ok(expr, &c);
    int64_t t = utc_ms(start);
    for (size_t i = 0; i < nwant && want[i] != NULL; i++) {
        int64_t next = -1;
        int rv = bo_cron_next(&c, t, utc, &next);
        if (rv != BO_OK) {
            print_message("'%s' after %s: %s\n", expr, start, bo_strerror(rv));
        }
        assert_int_equal(rv, BO_OK);
        assert_true(next > t);
        char got[32];
        utc_text(next, got);
        if (strcmp(got, want[i]) != 0) {
            print_message("'%s' from %s, fire %zu\n", expr, start, i + 1);
        }
        assert_string_equal(got, want[i]);
        t = next;
    }
}

struct next_case {
    const char *expr;
    const char *start; /* UTC */
    const char *want[3];
};

/* 2026-01-01 is a Thursday. */
static const struct next_case next_cases[] = {
    {"* * * * *", "2026-01-01 00:00", {"2026-01-01 00:01", "2026-01-01 00:02", "2026-01-01 00:03"}},
    {"* * * * *", "2026-01-01 00:00:30", {"2026-01-01 00:01"}},
    {"*/15 * * * *",
     "2026-01-01 00:07",
     {"2026-01-01 00:15", "2026-01-01 00:30", "2026-01-01 00:45"}},
    {"*/15 * * * *", "2025-12-31 23:50", {"2026-01-01 00:00", "2026-01-01 00:15"}},
    {"0 9-17/2 * * MON-FRI",
     "2026-01-02 16:00",
     {"2026-01-02 17:00", "2026-01-05 09:00", "2026-01-05 11:00"}},
    {"0 9-17/2 * * MON-FRI", "2026-01-03 12:00", {"2026-01-05 09:00"}},
    {"5,10,50 1,13 * * *",
     "2026-03-10 12:00",
     {"2026-03-10 13:05", "2026-03-10 13:10", "2026-03-10 13:50"}},
    {"5,10,50 1,13 * * *", "2026-03-10 13:50", {"2026-03-11 01:05"}},
    {"50/5 * * * *",
     "2026-01-01 10:00",
     {"2026-01-01 10:50", "2026-01-01 10:55", "2026-01-01 11:50"}},
    {"10-20/5,58 * * * *",
     "2026-01-01 10:12",
     {"2026-01-01 10:15", "2026-01-01 10:20", "2026-01-01 10:58"}},
    {"0 0 1 jan,Jul *",
     "2026-02-01 00:00",
     {"2026-07-01 00:00", "2027-01-01 00:00", "2027-07-01 00:00"}},
    {"0 12 15 MAR-MAY *",
     "2026-05-20 00:00",
     {"2027-03-15 12:00", "2027-04-15 12:00", "2027-05-15 12:00"}},
    {"0 0 1 JAN-DEC/5 *",
     "2026-01-01 00:00",
     {"2026-06-01 00:00", "2026-11-01 00:00", "2027-01-01 00:00"}},
    {"0 0 31 * *",
     "2026-01-31 00:00",
     {"2026-03-31 00:00", "2026-05-31 00:00", "2026-07-31 00:00"}},
    {"0 0 */10 * *",
     "2026-02-21 00:00",
     {"2026-03-01 00:00", "2026-03-11 00:00", "2026-03-21 00:00"}},
    {"30 8 * * SUN",
     "2026-01-01 00:00",
     {"2026-01-04 08:30", "2026-01-11 08:30", "2026-01-18 08:30"}},
    {"0 0 * * 0,6",
     "2026-01-01 00:00",
     {"2026-01-03 00:00", "2026-01-04 00:00", "2026-01-10 00:00"}},
    {"0 6 * * 1,wed-Fri",
     "2026-01-05 06:00",
     {"2026-01-07 06:00", "2026-01-08 06:00", "2026-01-09 06:00"}},
    /* a day-of-month that covers every day is a wildcard: only Mondays */
    {"0 0 1-31 * MON", "2026-01-01 00:00", {"2026-01-05 00:00", "2026-01-12 00:00"}},
    {"0 0 1 1 *", "2026-06-15 00:00", {"2027-01-01 00:00", "2028-01-01 00:00", "2029-01-01 00:00"}},
    {"59 23 31 12 *", "2026-12-31 23:59", {"2027-12-31 23:59"}},
    {"0 0 29 2 *",
     "2026-03-01 00:00",
     {"2028-02-29 00:00", "2032-02-29 00:00", "2036-02-29 00:00"}},
    {"0 0 29 2 *", "2028-02-29 00:00", {"2032-02-29 00:00"}},
    /* 2100 is not a leap year: 2096 -> 2104 */
    {"0 0 29 2 *", "2100-01-01 00:00", {"2104-02-29 00:00"}},
    /* strictly after: a start on a match gives the next one */
    {"0 12 * * *", "2026-04-10 12:00", {"2026-04-11 12:00"}},
    {"0 12 * * *", "2026-04-10 11:59:59", {"2026-04-10 12:00"}},
    /* before the epoch (negative milliseconds) */
    {"0 0 * * *", "1969-12-31 12:00:30", {"1970-01-01 00:00", "1970-01-02 00:00"}},
    {"  0\t0   *  * *\t ", "2026-01-01 00:00", {"2026-01-02 00:00"}},
};

static void test_next_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(next_cases) / sizeof(next_cases[0]); i++) {
        const struct next_case *nc = &next_cases[i];
        check_chain(nc->expr, true, nc->start, nc->want, 3);
    }
}

static void test_start_fraction_of_second(void **state)
{
    (void)state;
    struct bo_cron c;
    parse_ok("0 12 * * *", &c);
    int64_t next = 0;
    int64_t noon = utc_ms("2026-04-10 12:00");
    assert_int_equal(bo_cron_next(&c, noon - 1, true, &next), BO_OK);
    assert_int_equal(next, noon);
    assert_int_equal(bo_cron_next(&c, noon, true, &next), BO_OK);
    assert_int_equal(next, noon + 86400000LL);
    assert_int_equal(bo_cron_next(&c, noon + 1, true, &next), BO_OK);
    assert_int_equal(next, noon + 86400000LL);
}

static void test_not_found(void **state)
{
    (void)state;
    static const struct {
        const char *expr;
        const char *start;
    } cases[] = {
        {"0 0 30 2 *", "2026-01-01 00:00"},
        {"0 0 31 4,6,9,11 *", "2026-01-01 00:00"},
        /* the next Feb 29 after 2097 is in 2104, beyond five years */
        {"0 0 29 2 *", "2097-03-01 00:00"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bo_cron c;
        parse_ok(cases[i].expr, &c);
        int64_t next = 12345;
        assert_int_equal(bo_cron_next(&c, utc_ms(cases[i].start), true, &next), BO_ENOTFOUND);
        assert_int_equal(next, 12345); /* untouched */
    }
    /* within the horizon: 2023 -> 2024 */
    const char *const want[] = {"2024-02-29 00:00"};
    check_chain("0 0 29 2 *", true, "2023-03-01 00:00", want, 1);
}

static void test_next_bad_time(void **state)
{
    (void)state;
    struct bo_cron c;
    parse_ok("* * * * *", &c);
    int64_t next = 0;
    assert_int_equal(bo_cron_next(&c, INT64_MAX, true, &next), BO_EINVAL);
    assert_int_equal(bo_cron_next(&c, INT64_MIN, false, &next), BO_EINVAL);
    assert_int_equal(bo_cron_next(&c, utc_ms("9999-12-31 23:00"), true, &next), BO_OK);
    assert_int_equal(next, utc_ms("9999-12-31 23:01"));
}

static void test_parse_sets(void **state)
{
    (void)state;
    struct bo_cron c;
    parse_ok("0 9-17/2 * * MON-FRI", &c);
    assert_int_equal(c.minutes, 1ULL);
    assert_int_equal(c.hours,
                     (1ULL << 9) | (1ULL << 11) | (1ULL << 13) | (1ULL << 15) | (1ULL << 17));
    assert_int_equal(c.mdays, 0xFFFFFFFEULL);
    assert_int_equal(c.months, 0x1FFEULL);
    assert_int_equal(c.wdays, 0x3EULL);
    assert_string_equal(c.expr, "0 9-17/2 * * MON-FRI");

    parse_ok("*/20 23 * dec sun,sat", &c);
    assert_int_equal(c.minutes, (1ULL << 0) | (1ULL << 20) | (1ULL << 40));
    assert_int_equal(c.hours, 1ULL << 23);
    assert_int_equal(c.months, 1ULL << 12);
    assert_int_equal(c.wdays, (1ULL << 0) | (1ULL << 6));

    parse_ok("59/1 0-23 31 1-12 0-6", &c);
    assert_int_equal(c.minutes, 1ULL << 59);
    assert_int_equal(c.hours, 0xFFFFFFULL);
    assert_int_equal(c.mdays, 1ULL << 31);
    assert_int_equal(c.wdays, 0x7FULL);
}

static void test_format(void **state)
{
    (void)state;
    static const struct {
        const char *expr;
        const char *want;
    } cases[] = {
        {"* * * * *", "* * * * *"},
        {"  0 9-17  *\t* mon-FRI ", "0 9-17 * * 1-5"},
        {"0 9-17/2 * * MON-FRI", "0 9,11,13,15,17 * * 1-5"},
        {"5,1,2,3 0-23 1-31 JAN-DEC 0,1,2,3,4,5,6", "1-3,5 * * * *"},
        {"*/30 0 */15 FEB,jan *", "0,30 0 1,16,31 1-2 *"},
        {"0 0 * * SUN,SAT", "0 0 * * 0,6"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bo_cron c, again;
        char buf[BO_CRON_FORMAT_MAX];
        parse_ok(cases[i].expr, &c);
        bo_cron_format(&c, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].want);
        /* the canonical form parses back to the same sets */
        parse_ok(buf, &again);
        assert_int_equal(again.minutes, c.minutes);
        assert_int_equal(again.hours, c.hours);
        assert_int_equal(again.mdays, c.mdays);
        assert_int_equal(again.months, c.months);
        assert_int_equal(again.wdays, c.wdays);
    }

    /* the longest canonical form fits BO_CRON_FORMAT_MAX */
    struct bo_cron c;
    char buf[BO_CRON_FORMAT_MAX];
    parse_ok("*/2 */2 */2 */2 *", &c);
    bo_cron_format(&c, buf, sizeof(buf));
    assert_true(strlen(buf) + 1 < sizeof(buf));
    assert_non_null(strstr(buf, "0,2,4,6,8,10,12,14,16,18,20,22,24,26,28,30,32,34,36,38,40,42,"
                                "44,46,48,50,52,54,56,58 "));

    /* truncation stays terminated; size 0 writes nothing */
    char small[6];
    memset(small, 'x', sizeof(small));
    parse_ok("0 9-17 * * 1-5", &c);
    bo_cron_format(&c, small, sizeof(small));
    assert_string_equal(small, "0 9-1");
    small[0] = 'x';
    bo_cron_format(&c, small, 0);
    assert_int_equal(small[0], 'x');
}

struct bad_case {
    const char *expr;
    int code;
    const char *msg; /* a substring of the message */
};

static const struct bad_case bad_cases[] = {
    {"", BO_EINVAL, "expected 5 fields (minute hour day-of-month month day-of-week), got 0"},
    {" \t ", BO_EINVAL, "got 0"},
    {"* * * *", BO_EINVAL, "expected 5 fields"},
    {"* * * * * *", BO_EINVAL, "got 6"},
    {"0 0 * * 7", BO_EINVAL, "day-of-week: '7' out of range 0-6"},
    {"0 0 * * 1-7", BO_EINVAL, "day-of-week: '7' out of range 0-6"},
    {"60 * * * *", BO_EINVAL, "minute: '60' out of range 0-59"},
    {"* 24 * * *", BO_EINVAL, "hour: '24' out of range 0-23"},
    {"* * 0 * *", BO_EINVAL, "day-of-month: '0' out of range 1-31"},
    {"* * 32 * *", BO_EINVAL, "day-of-month: '32' out of range 1-31"},
    {"* * * 0 *", BO_EINVAL, "month: '0' out of range 1-12"},
    {"* * * 13 *", BO_EINVAL, "month: '13' out of range 1-12"},
    {"99999999999999999999 * * * *", BO_EINVAL, "minute: '99999999999999999999' out of range"},
    {"1,,2 * * * *", BO_EINVAL, "minute: empty element in '1,,2'"},
    {"1, * * * *", BO_EINVAL, "minute: empty element in '1,'"},
    {",1 * * * *", BO_EINVAL, "minute: empty element"},
    {"* , * * *", BO_EINVAL, "hour: empty element"},
    {"*/0 * * * *", BO_EINVAL, "minute: step '0' out of range 1-60"},
    {"* */25 * * *", BO_EINVAL, "hour: step '25' out of range 1-24"},
    {"*/ * * * *", BO_EINVAL, "minute: missing step in '*/'"},
    {"5/ * * * *", BO_EINVAL, "minute: missing step"},
    {"*/x * * * *", BO_EINVAL, "minute: missing step"},
    {"*/5/2 * * * *", BO_EINVAL, "minute: unexpected '/2' in '*/5/2'"},
    {"5-1 * * * *", BO_EINVAL, "minute: range '5-1' ends before it starts"},
    {"0 0 * * FRI-MON", BO_EINVAL, "day-of-week: range 'FRI-MON' ends before it starts"},
    {"1-2-3 * * * *", BO_EINVAL, "minute: unexpected '-3' in '1-2-3'"},
    {"1#2 * * * *", BO_EINVAL, "minute: unexpected '#2'"},
    {"-1 * * * *", BO_EINVAL, "minute: missing value in '-1'"},
    {"1- * * * *", BO_EINVAL, "minute: missing value in '1-'"},
    {"*-5 * * * *", BO_EINVAL, "minute: unexpected '-5' in '*-5'"},
    {"** * * * *", BO_EINVAL, "minute: unexpected '*'"},
    {"a * * * *", BO_EINVAL, "minute: 'a' is not a number"},
    {"0 1a * * *", BO_EINVAL, "hour: '1a' is not a number"},
    {"0 0 MON * *", BO_EINVAL, "day-of-month: 'MON' is not a number"},
    {"* * * FOO *", BO_EINVAL, "month: 'FOO' is not a number or month name"},
    {"* * * MON *", BO_EINVAL, "month: 'MON' is not a number or month name"},
    {"* * * JANUARY *", BO_EINVAL, "month: 'JANUARY' is not a number or month name"},
    {"* * * * MON-FOO", BO_EINVAL, "day-of-week: 'FOO' is not a number or day name"},
    {"* * * * JAN", BO_EINVAL, "day-of-week: 'JAN' is not a number or day name"},
    {"0 0 1 * MON", BO_EINVAL, "day-of-month and day-of-week cannot both be restricted"},
    {"0 0 */2 * 1-5", BO_EINVAL, "cannot both be restricted"},
    {"@daily", BO_EINVAL, "'@daily' macros are not supported"},
    {"@reboot now", BO_EINVAL, "'@reboot' macros are not supported"},
    {"0 0 ? * MON", BO_EINVAL, "day-of-month: '?' is not supported"},
    {"0 0 * * 5L", BO_EINVAL, "day-of-week: '5L' is not a number or day name"},
    {"0 0 * * 1#2", BO_EINVAL, "day-of-week: unexpected '#2'"},
    {"0 0 * * *\n", BO_EINVAL, "day-of-week: unexpected"},
    {"0 0 * * *,", BO_EINVAL, "day-of-week: empty element in '*,'"},
};

static void test_invalid_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *bc = &bad_cases[i];
        struct bo_cron c;
        memset(&c, 0xA5, sizeof(c));
        struct bo_cron before = c;
        struct bo_err err = BO_ERR_INIT;
        int rv = bo_cron_parse(&c, bc->expr, &err);
        const char *msg = bo_err_msg(&err, rv);
        if (rv != bc->code || strstr(msg, bc->msg) == NULL) {
            print_message("case %zu '%s': got %s '%s', want %s '%s'\n", i, bc->expr, bo_errname(rv),
                          msg, bo_errname(bc->code), bc->msg);
        }
        assert_int_equal(rv, bc->code);
        assert_non_null(strstr(msg, bc->msg));
        /* house style: lowercase start, no full stop */
        assert_true(msg[0] < 'A' || msg[0] > 'Z');
        assert_int_not_equal(msg[strlen(msg) - 1], '.');
        /* failure leaves the struct alone */
        assert_memory_equal(&c, &before, sizeof(c));
        /* a NULL error context is allowed */
        assert_int_equal(bo_cron_parse(&c, bc->expr, NULL), bc->code);
    }
}

static void test_length_limit(void **state)
{
    (void)state;
    char expr[BO_CRON_EXPR_MAX + 1];
    /* 127 bytes is accepted and kept verbatim */
    memset(expr, ' ', sizeof(expr));
    memcpy(expr, "0 0 * * *", 9);
    expr[BO_CRON_EXPR_MAX - 1] = '\0';
    struct bo_cron c;
    parse_ok(expr, &c);
    assert_int_equal(strlen(c.expr), BO_CRON_EXPR_MAX - 1);
    assert_string_equal(c.expr, expr);
    /* 128 bytes is not */
    expr[BO_CRON_EXPR_MAX - 1] = ' ';
    expr[BO_CRON_EXPR_MAX] = '\0';
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_cron_parse(&c, expr, &err), BO_EINVAL);
    assert_non_null(strstr(bo_err_msg(&err, BO_EINVAL), "longer than 127 bytes"));
}

/* ---- local time: America/New_York, DST from 2026-03-08 02:00 EST to
 * 2026-11-01 02:00 EDT ---- */

struct local_case {
    const char *expr;
    const char *start;   /* UTC */
    const char *want[3]; /* UTC */
};

static const struct local_case ny_cases[] = {
    /* 02:30 does not exist on 2026-03-08: the 7th (EST), then the 9th (EDT) */
    {"30 2 * * *",
     "2026-03-07 03:00",
     {"2026-03-07 07:30", "2026-03-09 06:30", "2026-03-10 06:30"}},
    /* the gap is skipped minute by minute too: 01:30 EST, then 03:00 EDT */
    {"*/30 * * * *",
     "2026-03-08 06:00",
     {"2026-03-08 06:30", "2026-03-08 07:00", "2026-03-08 07:30"}},
    /* 01:30 occurs twice on 2026-11-01 and fires once, at 01:30 EDT */
    {"30 1 * * *",
     "2026-10-31 12:00",
     {"2026-11-01 05:30", "2026-11-02 06:30", "2026-11-03 06:30"}},
    /* from inside the second pass (01:00 EST) 01:30 has already fired */
    {"30 1 * * *", "2026-11-01 06:00", {"2026-11-02 06:30"}},
    /* the repeated hour: 01:45 EDT, then 02:00 EST (01:00-01:45 EST already fired) */
    {"*/15 * * * *",
     "2026-11-01 05:40",
     {"2026-11-01 05:45", "2026-11-01 07:00", "2026-11-01 07:15"}},
    /* ordinary days follow the offset: noon EDT is 16:00 UTC, noon EST 17:00 */
    {"0 12 * * *", "2026-06-01 00:00", {"2026-06-01 16:00", "2026-06-02 16:00"}},
    {"0 12 * * *", "2026-12-01 00:00", {"2026-12-01 17:00"}},
    /* the local date decides the day: Sunday 2026-05-31 22:00 EDT is a Monday in UTC */
    {"0 22 * * SUN", "2026-06-01 00:00", {"2026-06-01 02:00", "2026-06-08 02:00"}},
    {"0 0 1 * *", "2026-06-15 00:00", {"2026-07-01 04:00", "2026-08-01 04:00"}},
};

static void test_dst_new_york(void **state)
{
    (void)state;
    if (access("/usr/share/zoneinfo/America/New_York", R_OK) != 0) {
        skip();
    }
    const char *old = getenv("TZ");
    char saved[128] = "";
    bool had = old != NULL;
    if (had) {
        snprintf(saved, sizeof(saved), "%s", old);
    }
    assert_int_equal(setenv("TZ", "America/New_York", 1), 0);
    tzset();

    for (size_t i = 0; i < sizeof(ny_cases) / sizeof(ny_cases[0]); i++) {
        const struct local_case *lc = &ny_cases[i];
        check_chain(lc->expr, false, lc->start, lc->want, 3);
    }
    /* utc = true ignores TZ: 02:30 UTC exists on 2026-03-08 */
    const char *const want_utc[] = {"2026-03-08 02:30", "2026-03-09 02:30"};
    check_chain("30 2 * * *", true, "2026-03-08 00:00", want_utc, 2);

    if (had) {
        setenv("TZ", saved, 1);
    } else {
        unsetenv("TZ");
    }
    tzset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_table),    cmocka_unit_test(test_start_fraction_of_second),
        cmocka_unit_test(test_not_found),     cmocka_unit_test(test_next_bad_time),
        cmocka_unit_test(test_parse_sets),    cmocka_unit_test(test_format),
        cmocka_unit_test(test_invalid_table), cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_dst_new_york),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
