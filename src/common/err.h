/*
 * err.h - the one error enum of Borealis, and the error-context buffer.
 *
 * Every module returns an `int` that is BO_OK (0) or one of the negative codes
 * below. Foreign codes (errno, uv_*, SQLITE_*, RAFT_*, ZSTD_*) are translated
 * where they enter a module and never cross a module boundary.
 *
 * Beside the code travels a `struct bo_err`: a bounded message buffer that
 * each layer prefixes with its own "op: cause" context. A function that
 * succeeds leaves the buffer untouched. Messages are lowercase, have no full
 * stop, say what failed first and quote names ('like this').
 */
#ifndef BO_ERR_H
#define BO_ERR_H

#include <stddef.h>

/* X(name, value, description) */
#define BO_ERR_MAP(X)                                                                              \
    X(BO_OK, 0, "success")                                                                         \
    X(BO_ENOMEM, -1, "out of memory")                                                              \
    X(BO_EINVAL, -2, "invalid argument")                                                           \
    X(BO_EIO, -3, "input/output error")                                                            \
    X(BO_ENOSPC, -4, "no space left on device")                                                    \
    X(BO_ECORRUPT, -5, "data is corrupt")                                                          \
    X(BO_ENOTFOUND, -6, "not found")                                                               \
    X(BO_EEXIST, -7, "already exists")                                                             \
    X(BO_ENOTLEADER, -8, "not the leader")                                                         \
    X(BO_ENOLEADER, -9, "no leader")                                                               \
    X(BO_EBUSY, -10, "busy")                                                                       \
    X(BO_ECANCELED, -11, "canceled")                                                               \
    X(BO_ENOTEMPTY, -12, "not empty")                                                              \
    X(BO_ESHUTDOWN, -13, "shutting down")                                                          \
    X(BO_EVERSION, -14, "unsupported format version")                                              \
    X(BO_ETOOBIG, -15, "too big")                                                                  \
    X(BO_EINTERNAL, -16, "internal error")

enum bo_errcode {
#define BO_ERR_ENUM(name, value, desc) name = value,
    BO_ERR_MAP(BO_ERR_ENUM)
#undef BO_ERR_ENUM
};

/* Static strings, never NULL; unknown codes give "unknown error". */
const char *bo_strerror(int code);
const char *bo_errname(int code);

/* Translate an errno value (positive) into a bo code. */
int bo_err_from_errno(int errnum);

#define BO_ERR_MSG_SIZE 512

struct bo_err {
    char msg[BO_ERR_MSG_SIZE];
};

#define BO_ERR_INIT                                                                                \
    {                                                                                              \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

/* Set the message (replacing what was there). Returns `code` for tail calls:
 *     return bo_errf(err, BO_EIO, "open '%s': %s", path, strerror(errno));
 * `err` may be NULL, in which case only the code is returned. */
int bo_errf(struct bo_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the existing message with "context: ". Returns `code`. */
int bo_err_wrapf(struct bo_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The message, or the code's description when no message was set. */
const char *bo_err_msg(const struct bo_err *err, int code);

#endif
