/*
 * cron.c - crontab parsing and next fire times.
 *
 * Happy path: bo_cron_parse splits the expression on runs of spaces and tabs
 * into five fields, splits each field on commas, and turns every element
 * (`*`, `n`, `a-b`, each with an optional `/step`) into bits of a uint64_t
 * set. Nothing is allocated and the result is written only once every field
 * has parsed. bo_cron_next walks calendar days from the wall-clock date of the
 * first minute after `after_ms`: a month that does not match is skipped whole,
 * a day whose day-of-month or day-of-week bit is clear is skipped without
 * touching the time zone, and in a matching day only the hours and minutes
 * whose bits are set are tried, in order. Each candidate wall time is turned
 * into an instant (timegm for UTC, mktime for local time) and the first one
 * strictly after `after_ms` wins, so a call costs a few conversions, not one
 * per minute, even when the next fire time is years away.
 *
 * Failure modes: a malformed expression is BO_EINVAL with a message that
 * names the field and quotes the offending text; the first error wins.
 * Day-of-month and day-of-week both restricted is BO_EINVAL, as in Aurora
 * (Quartz cannot express it). In local time, a wall time inside a spring
 * forward gap has no instant and is skipped; a wall time inside a fall back
 * overlap has two, and only the earlier counts (it fires once), which is why
 * candidates are compared with `after_ms` rather than assumed to be later. A
 * schedule that never matches (`0 0 30 2 *`) runs into the five-year horizon
 * and is BO_ENOTFOUND; an `after_ms` outside the years 1-9999 is BO_EINVAL.
 */
#include "scheduler/cron.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum {
    FIELD_MINUTE,
    FIELD_HOUR,
    FIELD_MDAY,
    FIELD_MONTH,
    FIELD_WDAY,
    FIELD_COUNT,
};

struct field_spec {
    const char *name;
    int min;
    int max;
    const char *const *names; /* names[i] is value min + i, or NULL */
    const char *name_kind;    /* "month" or "day" for messages */
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const wday_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

static const struct field_spec field_specs[FIELD_COUNT] = {
    {"minute", 0, 59, NULL, NULL},
    {"hour", 0, 23, NULL, NULL},
    {"day-of-month", 1, 31, NULL, NULL},
    {"month", 1, 12, month_names, "month"},
    {"day-of-week", 0, 6, wday_names, "day"},
};

/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z. */
#define MIN_AFTER_MS (-62135596800000LL)
#define MAX_AFTER_MS 253402300799999LL

/* Numbers are saturated here while parsing, so long digit runs stay out of
 * range instead of overflowing. */
#define NUMBER_CAP 1000000

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static char to_upper(char ch)
{
    return ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
}

static uint64_t field_mask(const struct field_spec *f)
{
    uint64_t all = (f->max == 63 ? ~0ULL : (1ULL << (f->max + 1)) - 1);
    return all & ~((1ULL << f->min) - 1);
}

/* Digits s[0..n) as a number, saturated at NUMBER_CAP. */
static int parse_digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        v = v * 10 + (s[i] - '0');
        if (v > NUMBER_CAP) {
            v = NUMBER_CAP;
        }
    }
    return v;
}

/* A number or name at elem[*pos], advancing *pos past it. */
static int parse_value(const struct field_spec *f, const char *elem, size_t n, size_t *pos,
                       int *out, struct bo_err *err)
{
    size_t start = *pos;
    size_t digits = 0, letters = 0;
    while (*pos < n && (is_digit(elem[*pos]) || is_alpha(elem[*pos]))) {
        digits += is_digit(elem[*pos]);
        letters += is_alpha(elem[*pos]);
        (*pos)++;
    }
    const char *tok = elem + start;
    int len = (int)(*pos - start);
    if (len == 0) {
        return bo_errf(err, BO_EINVAL, "%s: missing value in '%.*s'", f->name, (int)n, elem);
    }
    if (letters == 0) {
        int v = parse_digits(tok, (size_t)len);
        if (v < f->min || v > f->max) {
            return bo_errf(err, BO_EINVAL, "%s: '%.*s' out of range %d-%d", f->name, len, tok,
                           f->min, f->max);
        }
        *out = v;
        return BO_OK;
    }
    if (f->names == NULL) {
        return bo_errf(err, BO_EINVAL, "%s: '%.*s' is not a number", f->name, len, tok);
    }
    if (digits == 0 && len == 3) {
        for (int i = 0; i <= f->max - f->min; i++) {
            const char *name = f->names[i];
            if (to_upper(tok[0]) == name[0] && to_upper(tok[1]) == name[1] &&
                to_upper(tok[2]) == name[2]) {
                *out = f->min + i;
                return BO_OK;
            }
        }
    }
    return bo_errf(err, BO_EINVAL, "%s: '%.*s' is not a number or %s name", f->name, len, tok,
                   f->name_kind);
}

/* One list element elem[0..n) of the field text field[0..fn). */
static int parse_element(const struct field_spec *f, const char *elem, size_t n, const char *field,
                         size_t fn, uint64_t *bits, struct bo_err *err)
{
    if (n == 0) {
        return bo_errf(err, BO_EINVAL, "%s: empty element in '%.*s'", f->name, (int)fn, field);
    }
    if (n == 1 && elem[0] == '?') {
        return bo_errf(err, BO_EINVAL, "%s: '?' is not supported, use '*'", f->name);
    }
    size_t pos = 0;
    int lo, hi, step = 1;
    bool star = false, range = false;
    int rv;
    if (elem[0] == '*') {
        lo = f->min;
        hi = f->max;
        star = true;
        pos = 1;
    } else {
        rv = parse_value(f, elem, n, &pos, &lo, err);
        if (rv != BO_OK) {
            return rv;
        }
        hi = lo;
        if (pos < n && elem[pos] == '-') {
            pos++;
            rv = parse_value(f, elem, n, &pos, &hi, err);
            if (rv != BO_OK) {
                return rv;
            }
            if (lo > hi) {
                return bo_errf(err, BO_EINVAL, "%s: range '%.*s' ends before it starts", f->name,
                               (int)pos, elem);
            }
            range = true;
        }
    }
    if (pos < n && elem[pos] == '/') {
        size_t start = ++pos;
        while (pos < n && is_digit(elem[pos])) {
            pos++;
        }
        int len = (int)(pos - start);
        if (len == 0) {
            return bo_errf(err, BO_EINVAL, "%s: missing step in '%.*s'", f->name, (int)n, elem);
        }
        step = parse_digits(elem + start, (size_t)len);
        int span = f->max - f->min + 1;
        if (step < 1 || step > span) {
            return bo_errf(err, BO_EINVAL, "%s: step '%.*s' out of range 1-%d", f->name, len,
                           elem + start, span);
        }
        if (!star && !range) {
            hi = f->max; /* `a/n` runs from a to the maximum */
        }
    }
    if (pos != n) {
        return bo_errf(err, BO_EINVAL, "%s: unexpected '%.*s' in '%.*s'", f->name, (int)(n - pos),
                       elem + pos, (int)n, elem);
    }
    for (int v = lo; v <= hi; v += step) {
        *bits |= 1ULL << v;
    }
    return BO_OK;
}

static int parse_field(const struct field_spec *f, const char *field, size_t n, uint64_t *bits,
                       struct bo_err *err)
{
    *bits = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || field[i] == ',') {
            int rv = parse_element(f, field + start, i - start, field, n, bits, err);
            if (rv != BO_OK) {
                return rv;
            }
            start = i + 1;
        }
    }
    return BO_OK;
}

int bo_cron_parse(struct bo_cron *c, const char *expr, struct bo_err *err)
{
    assert(c != NULL && expr != NULL);
    size_t len = strnlen(expr, BO_CRON_EXPR_MAX);
    if (len == BO_CRON_EXPR_MAX) {
        return bo_errf(err, BO_EINVAL, "expression longer than %d bytes", BO_CRON_EXPR_MAX - 1);
    }

    const char *tok[FIELD_COUNT];
    size_t tok_len[FIELD_COUNT];
    int count = 0;
    for (size_t i = 0; i < len;) {
        if (is_blank(expr[i])) {
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && !is_blank(expr[i])) {
            i++;
        }
        if (count == 0 && expr[start] == '@') {
            return bo_errf(err, BO_EINVAL, "'%.*s' macros are not supported, use five fields",
                           (int)(i - start), expr + start);
        }
        if (count < FIELD_COUNT) {
            tok[count] = expr + start;
            tok_len[count] = i - start;
        }
        count++;
    }
    if (count != FIELD_COUNT) {
        return bo_errf(err, BO_EINVAL,
                       "expected 5 fields (minute hour day-of-month month day-of-week), got %d",
                       count);
    }

    uint64_t bits[FIELD_COUNT];
    for (int i = 0; i < FIELD_COUNT; i++) {
        int rv = parse_field(&field_specs[i], tok[i], tok_len[i], &bits[i], err);
        if (rv != BO_OK) {
            return rv;
        }
    }
    if (bits[FIELD_MDAY] != field_mask(&field_specs[FIELD_MDAY]) &&
        bits[FIELD_WDAY] != field_mask(&field_specs[FIELD_WDAY])) {
        return bo_errf(err, BO_EINVAL,
                       "day-of-month and day-of-week cannot both be restricted, use '*' for "
                       "one of them");
    }

    c->minutes = bits[FIELD_MINUTE];
    c->hours = bits[FIELD_HOUR];
    c->mdays = bits[FIELD_MDAY];
    c->months = bits[FIELD_MONTH];
    c->wdays = bits[FIELD_WDAY];
    memcpy(c->expr, expr, len);
    c->expr[len] = '\0';
    return BO_OK;
}

/* ---- calendar arithmetic (proleptic Gregorian, no time zone) ---- */

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Days since 1970-01-01 of y-m-d (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* 0 is Sunday; 1970-01-01 was a Thursday. */
static int weekday(int64_t days)
{
    return (int)(((days % 7) + 7 + 4) % 7);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- wall time to instant ---- */

struct wall {
    int year, mon, mday, hour, min; /* mon 1-12 */
};

static struct tm wall_to_tm(const struct wall *w)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = w->year - 1900;
    tm.tm_mon = w->mon - 1;
    tm.tm_mday = w->mday;
    tm.tm_hour = w->hour;
    tm.tm_min = w->min;
    tm.tm_isdst = -1;
    return tm;
}

/* True if `t` is wall time `w` in the local time zone. */
static bool local_is(time_t t, const struct wall *w)
{
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL) {
        return false;
    }
    return tm.tm_year == w->year - 1900 && tm.tm_mon == w->mon - 1 && tm.tm_mday == w->mday &&
           tm.tm_hour == w->hour && tm.tm_min == w->min && tm.tm_sec == 0;
}

/* The UTC offset in force at `t`, or `fallback` if it cannot be computed. */
static long local_offset(time_t t, long fallback)
{
    struct tm tm;
    return localtime_r(&t, &tm) == NULL ? fallback : tm.tm_gmtoff;
}

/*
 * The first instant at which the local wall clock reads `w`, or false if it
 * never does (a spring forward gap). mktime picks one of two instants for an
 * ambiguous time in an unspecified way, so its answer is only the starting
 * point: the offsets in force a day before and a day after give every
 * candidate (the instants are w - offset), and the earliest one whose local
 * time really is `w` wins.
 */
static bool local_first_instant(const struct wall *w, time_t *out)
{
    struct tm tm = wall_to_tm(w);
    time_t guess = mktime(&tm);
    tm = wall_to_tm(w);
    tm.tm_isdst = 0;
    time_t as_utc = timegm(&tm);
    if (as_utc == (time_t)-1) {
        return false;
    }
    long guess_off = (guess == (time_t)-1) ? 0 : (long)(as_utc - guess);
    time_t probe = (guess == (time_t)-1) ? as_utc : guess;
    time_t cand[3] = {
        guess,
        as_utc - local_offset(probe - 86400, guess_off),
        as_utc - local_offset(probe + 86400, guess_off),
    };
    bool found = false;
    time_t best = 0;
    for (size_t i = 0; i < 3; i++) {
        /* -1 is never a match: candidates fall on whole minutes */
        if (cand[i] != (time_t)-1 && (!found || cand[i] < best) && local_is(cand[i], w)) {
            best = cand[i];
            found = true;
        }
    }
    if (found) {
        *out = best;
    }
    return found;
}

static bool wall_instant(const struct wall *w, bool utc, time_t *out)
{
    if (!utc) {
        return local_first_instant(w, out);
    }
    struct tm tm = wall_to_tm(w);
    tm.tm_isdst = 0;
    *out = timegm(&tm);
    return *out != (time_t)-1;
}

/* The first matching time of day `w` (hour and minute at or after w's) whose
 * instant is after `after_ms`. */
static bool first_in_day(const struct bo_cron *c, struct wall w, bool utc, int64_t after_ms,
                         int64_t *next_ms)
{
    int min_from = w.min;
    for (int h = w.hour; h < 24; h++, min_from = 0) {
        if (!((c->hours >> h) & 1)) {
            continue;
        }
        for (int m = min_from; m < 60; m++) {
            if (!((c->minutes >> m) & 1)) {
                continue;
            }
            struct wall cand = {w.year, w.mon, w.mday, h, m};
            time_t t;
            if (wall_instant(&cand, utc, &t) && (int64_t)t * 1000 > after_ms) {
                *next_ms = (int64_t)t * 1000;
                return true;
            }
        }
    }
    return false;
}

int bo_cron_next(const struct bo_cron *c, int64_t after_ms, bool utc, int64_t *next_ms)
{
    assert(c != NULL && next_ms != NULL);
    if (after_ms < MIN_AFTER_MS || after_ms > MAX_AFTER_MS) {
        return BO_EINVAL;
    }
    time_t first = (time_t)((floor_div(after_ms, 60000) + 1) * 60);
    struct tm tm;
    if ((utc ? gmtime_r(&first, &tm) : localtime_r(&first, &tm)) == NULL) {
        return BO_EINVAL;
    }
    struct wall w = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min};
    int64_t start_day = days_from_civil(w.year, w.mon, w.mday);
    int64_t day = start_day;

    while (day - start_day <= BO_CRON_HORIZON_DAYS) {
        int dim = days_in_month(w.year, w.mon);
        if (!((c->months >> w.mon) & 1)) {
            day += dim - w.mday + 1; /* the first of next month */
            w.mday = dim;
        } else {
            if (((c->mdays >> w.mday) & 1) && ((c->wdays >> weekday(day)) & 1) &&
                first_in_day(c, w, utc, after_ms, next_ms)) {
                return BO_OK;
            }
            day++;
        }
        w.hour = 0;
        w.min = 0;
        if (++w.mday > dim) {
            w.mday = 1;
            if (++w.mon > 12) {
                w.mon = 1;
                w.year++;
            }
        }
    }
    return BO_ENOTFOUND;
}

/* ---- canonical text ---- */

struct out {
    char *buf;
    size_t size;
    size_t len; /* as if untruncated */
};

static void out_addf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_addf(struct out *o, const char *fmt, ...)
{
    char *dst = NULL;
    size_t room = 0;
    if (o->len < o->size) {
        dst = o->buf + o->len;
        room = o->size - o->len;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n > 0) {
        o->len += (size_t)n;
    }
}

static void format_field(struct out *o, const struct field_spec *f, uint64_t bits)
{
    if (bits == field_mask(f)) {
        out_addf(o, "*");
        return;
    }
    bool first = true;
    for (int v = f->min; v <= f->max; v++) {
        if (!((bits >> v) & 1)) {
            continue;
        }
        int end = v;
        while (end < f->max && ((bits >> (end + 1)) & 1)) {
            end++;
        }
        const char *sep = first ? "" : ",";
        if (end == v) {
            out_addf(o, "%s%d", sep, v);
        } else {
            out_addf(o, "%s%d-%d", sep, v, end);
        }
        first = false;
        v = end;
    }
}

void bo_cron_format(const struct bo_cron *c, char *buf, size_t size)
{
    assert(c != NULL && (buf != NULL || size == 0));
    struct out o = {buf, size, 0};
    if (size > 0) {
        buf[0] = '\0';
    }
    const uint64_t bits[FIELD_COUNT] = {c->minutes, c->hours, c->mdays, c->months, c->wdays};
    for (int i = 0; i < FIELD_COUNT; i++) {
        if (i > 0) {
            out_addf(&o, " ");
        }
        format_field(&o, &field_specs[i], bits[i]);
    }
}
