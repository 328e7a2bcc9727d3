#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *bo_strerror(int code)
{
    switch (code) {
#define BO_ERR_STR(name, value, desc)                                                              \
    case value:                                                                                    \
        return desc;
        BO_ERR_MAP(BO_ERR_STR)
#undef BO_ERR_STR
    }
    return "unknown error";
}

const char *bo_errname(int code)
{
    switch (code) {
#define BO_ERR_NAME(name, value, desc)                                                             \
    case value:                                                                                    \
        return #name;
        BO_ERR_MAP(BO_ERR_NAME)
#undef BO_ERR_NAME
    }
    return "BO_EUNKNOWN";
}

int bo_err_from_errno(int errnum)
{
    switch (errnum) {
    case 0:
        return BO_OK;
    case ENOMEM:
        return BO_ENOMEM;
    case ENOSPC:
    case EDQUOT:
        return BO_ENOSPC;
    case ENOENT:
        return BO_ENOTFOUND;
    case EEXIST:
        return BO_EEXIST;
    case EINVAL:
        return BO_EINVAL;
    case EBUSY:
    case EAGAIN:
        return BO_EBUSY;
    case ENOTEMPTY:
        return BO_ENOTEMPTY;
    case ECANCELED:
        return BO_ECANCELED;
    default:
        return BO_EIO;
    }
}

int bo_errf(struct bo_err *err, int code, const char *fmt, ...)
{
    if (err == NULL) {
        return code;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

int bo_err_wrapf(struct bo_err *err, int code, const char *fmt, ...)
{
    if (err == NULL) {
        return code;
    }
    char prefix[BO_ERR_MSG_SIZE];
    char old[BO_ERR_MSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    old[sizeof(old) - 1] = '\0';
    /* Truncation is acceptable: the message stays bounded and readable. */
    const char *tail = old[0] == '\0' ? bo_strerror(code) : old;
    size_t cap = sizeof(err->msg) - 1, n = strnlen(prefix, cap);
    memcpy(err->msg, prefix, n);
    if (n + 2 <= cap) {
        memcpy(err->msg + n, ": ", 2);
        n += 2;
    }
    size_t t = strnlen(tail, cap - n);
    memcpy(err->msg + n, tail, t);
    err->msg[n + t] = '\0';
    return code;
}

const char *bo_err_msg(const struct bo_err *err, int code)
{
    if (err != NULL && err->msg[0] != '\0') {
        return err->msg;
    }
    return bo_strerror(code);
}
