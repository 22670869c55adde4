/* error.h - how every cbctiq library call reports failure.
 *
 * A library function that can fail returns an int status (CBQ_OK or one of
 * cbq_code) and takes a `cbq_error *err` as its last argument, which it fills
 * with a message a user can act on: the file, the line or field, and what was
 * expected. `err` may be NULL when the caller does not want the message. The
 * library never exits; only src/cli turns a status into an exit code.
 *
 *   cbq_error err = {0};
 *   if (cbq_nifti_read(&vol, path, &err) != CBQ_OK)
 *       fprintf(stderr, "cbctiq: %s\n", err.msg);
 */
#ifndef CBCTIQ_ERROR_H
#define CBCTIQ_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CBQ_OK = 0,
    CBQ_ERR_ARG,        /* invalid argument or option from the user */
    CBQ_ERR_IO,         /* a file could not be opened, read or written */
    CBQ_ERR_FORMAT,     /* a file's content is malformed */
    CBQ_ERR_NOMEM,      /* allocation failed or a request exceeds memory */
    CBQ_ERR_RANGE,      /* a value is outside its allowed range */
    CBQ_ERR_UNDEFINED,  /* a statistic is undefined for the data */
    CBQ_ERR_INTERNAL    /* a broken invariant: a bug in cbctiq */
} cbq_code;

typedef struct {
    int code;          /* cbq_code */
    char msg[1024];    /* user-facing message, no trailing newline */
    const char *src_file; /* where in cbctiq it was raised, for bug reports */
    int src_line;
} cbq_error;

/* Fills *err (when not NULL) and returns code; use through CBQ_FAIL. */
int cbq_error_set(cbq_error *err, int code, const char *src_file, int src_line,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Prepends context ("reading cohort.csv: ") to an existing message. */
int cbq_error_prefix(cbq_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Name of a code, e.g. "format error". */
const char *cbq_code_name(int code);

/* Raise an error: `return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: line %zu: ...", ...);` */
#define CBQ_FAIL(err, code, ...) cbq_error_set((err), (code), __FILE__, __LINE__, __VA_ARGS__)

/* Propagate a failing status unchanged. */
#define CBQ_TRY(expr)                       \
    do {                                    \
        int cbq_try_rc_ = (expr);           \
        if (cbq_try_rc_ != CBQ_OK)          \
            return cbq_try_rc_;             \
    } while (0)

/* Always-on contract check for public entry points (not inner loops). */
#define CBQ_CHECK_ARG(err, cond, ...) \
    do { if (!(cond)) return CBQ_FAIL((err), CBQ_ERR_ARG, __VA_ARGS__); } while (0)

/* Overflow-checked size arithmetic: returns 0 on overflow. */
int cbq_size_mul(size_t *out, size_t a, size_t b);

#ifdef __cplusplus
}
#endif
#endif
