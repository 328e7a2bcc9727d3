/*
 * flags.h - parsing the values of command-line flags, shared by the
 * daemons so that "30s" or "5m" mean the same everywhere.
 */
#ifndef BO_FLAGS_H
#define BO_FLAGS_H

#include <stdbool.h>
#include <stdint.h>

/* "250ms", "30s", "5m", "2h", "1d", "1.5s"; a bare number is seconds.
 * Returns 0 and sets *ms, or -1 for anything else (negative, nan, hex,
 * trailing junk, overflow). */
int bo_flags_duration_ms(const char *s, int64_t *ms);

/* A decimal integer in [0, max]. Returns 0 and sets *out, or -1. */
int bo_flags_uint(const char *s, long long max, long long *out);

/* A decimal number >= 0 (digits and one point, no exponent). */
int bo_flags_double(const char *s, double *out);

/* An on-by-default switch from the environment (BO_SEGFILL and the like,
 * docs/operations.md): false only when `name` is set to "0". */
bool bo_flags_env_on(const char *name);

#endif
