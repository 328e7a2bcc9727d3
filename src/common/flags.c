/*
 * flags.c - flag value parsing (flags.h). Strict on purpose: a typo in a
 * daemon's flag must stop it at start, not turn into zero.
 */
#include "common/flags.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int bo_flags_double(const char *s, double *out)
{
    /* digits and a point only: strtod would also take "nan", "inf", hex */
    size_t digits = strspn(s, "0123456789.");
    if (digits == 0 || s[digits] != '\0')
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end != s + digits || v < 0)
        return -1;
    *out = v;
    return 0;
}

int bo_flags_duration_ms(const char *s, int64_t *ms)
{
    size_t digits = strspn(s, "0123456789.");
    if (digits == 0)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end != s + digits || v < 0)
        return -1;
    double mult;
    if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else if (strcmp(end, "d") == 0)
        mult = 86400000;
    else
        return -1;
    if (v * mult > (double)INT64_MAX / 2)
        return -1;
    *ms = (int64_t)(v * mult);
    return 0;
}

int bo_flags_uint(const char *s, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

bool bo_flags_env_on(const char *name)
{
    const char *v = getenv(name);
    return v == NULL || strcmp(v, "0") != 0;
}
