/* support.c - see support.h. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#include "support.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "cbctiq/rng.h"

double bench_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

float *bench_synthetic_slices(size_t n, size_t side)
{
    float *x = malloc(n * side * side * sizeof *x);
    if (!x)
        return NULL;
    cbq_rng rng;
    cbq_rng_seed(&rng, 2026);
    for (size_t k = 0; k < n; k++)
        for (size_t j = 0; j < side; j++)
            for (size_t i = 0; i < side; i++) {
                double r = hypot((double)i - side / 2.0, (double)j - side / 2.0) / (side / 2.0);
                double v = (r < 0.8 ? 0.55 : 0.05) + 0.1 * sin(0.2 * i + 0.05 * k) * cos(0.15 * j) +
                           0.05 * cbq_rng_normal(&rng);
                x[(k * side + j) * side + i] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
            }
    return x;
}
