/* error.c - status codes and user-facing messages (see include/cbctiq/error.h). */
#include "cbctiq/error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int cbq_error_set(cbq_error *err, int code, const char *src_file, int src_line,
                  const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
        err->src_file = src_file;
        err->src_line = src_line;
    }
    return code;
}

int cbq_error_prefix(cbq_error *err, const char *fmt, ...)
{
    if (!err)
        return CBQ_OK;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Truncation of very long messages is acceptable: the prefix comes first. */
    char joined[sizeof prefix + sizeof err->msg];
    snprintf(joined, sizeof joined, "%s%s", prefix, err->msg);
    snprintf(err->msg, sizeof err->msg, "%.*s", (int)sizeof err->msg - 1, joined);
    return err->code;
}

const char *cbq_code_name(int code)
{
    switch (code) {
    case CBQ_OK: return "ok";
    case CBQ_ERR_ARG: return "invalid argument";
    case CBQ_ERR_IO: return "I/O error";
    case CBQ_ERR_FORMAT: return "format error";
    case CBQ_ERR_NOMEM: return "out of memory";
    case CBQ_ERR_RANGE: return "value out of range";
    case CBQ_ERR_UNDEFINED: return "undefined";
    case CBQ_ERR_INTERNAL: return "internal error";
    default: return "unknown error";
    }
}

int cbq_size_mul(size_t *out, size_t a, size_t b)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}
