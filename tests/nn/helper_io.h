/* helper_io.h - what the test helper programs under tests/nn (net_dump,
 * train_steps) share: dying with a message and reading raw float32 input. */
#ifndef CBQ_TESTS_NN_HELPER_IO_H
#define CBQ_TESTS_NN_HELPER_IO_H

#include <stddef.h>

#include "cbctiq/error.h"

/* Prints "PROG: WHAT[: err's message]" to stderr and exits 1: these are test
 * helpers, whose caller only needs the message. */
_Noreturn void helper_die(const char *prog, const char *what, const cbq_error *err);

/* count little-endian float32 values from path; dies (as prog) when the file
 * is missing or short or memory runs out. The caller frees. */
float *helper_read_f32(const char *prog, const char *path, size_t count);

#endif
