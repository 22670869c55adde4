/* support.h - what the benchmark programs share: process CPU time and
 * the synthetic slices the attribution benchmarks time. */
#ifndef CBQ_BENCH_SUPPORT_H
#define CBQ_BENCH_SUPPORT_H

#include <stddef.h>

/* CPU seconds of the whole process (all threads): survives a loaded machine
 * better than wall time. */
double bench_cpu_seconds(void);

/* n slices of side x side: smooth blobs plus noise in [0, 1], like windowed
 * CT, from a fixed seed; NULL when out of memory. The caller frees. */
float *bench_synthetic_slices(size_t n, size_t side);

#endif
