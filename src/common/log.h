/*
 * log.h - diagnostic logging to stderr.
 *
 * Library code logs only what an operator needs to see; it never logs an error
 * and carries on as if nothing happened: errors are returned. The threshold is
 * process-wide and set once by main() before threads start.
 */
#ifndef BO_LOG_H
#define BO_LOG_H

enum bo_log_level { BO_LOG_DEBUG = 0, BO_LOG_INFO, BO_LOG_WARN, BO_LOG_ERROR, BO_LOG_OFF };

void bo_log_set_level(enum bo_log_level level);
/* Parses "debug", "info", "warn", "error", "off"; returns -1 if unknown. */
int bo_log_parse_level(const char *s);

void bo_logf(enum bo_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define bo_debug(...) bo_logf(BO_LOG_DEBUG, __VA_ARGS__)
#define bo_info(...)  bo_logf(BO_LOG_INFO, __VA_ARGS__)
#define bo_warn(...)  bo_logf(BO_LOG_WARN, __VA_ARGS__)
#define bo_error(...) bo_logf(BO_LOG_ERROR, __VA_ARGS__)

#endif
