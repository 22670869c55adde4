/* support.h - what the benchmark programs share: process CPU time, the
 * synthetic slices the attribution benchmarks time, and the whole-network
 * timing loop and PyTorch peer reader of the network benchmarks. */
#ifndef CBQ_BENCH_SUPPORT_H
#define CBQ_BENCH_SUPPORT_H

#include <stddef.h>

#include "cbctiq/error.h"
#include "cbctiq/net.h"

typedef struct {
    double slices_per_s, cpu_ms_per_slice;
} bench_speed;

/* CPU seconds of the whole process (all threads): survives a loaded machine
 * better than wall time. */
double bench_cpu_seconds(void);

/* What this CPU attains in SGEMM 1024^3 on one core, in GFLOP per
 * CPU-second (best of 5): the practical ceiling that engine figures are
 * compared with, measured in the same run (nominal peaks of another CPU
 * would mislead); NaN when out of memory. */
double bench_sgemm_ceiling(void);

/* n slices of side x side: smooth blobs plus noise in [0, 1], like windowed
 * CT, from a fixed seed; NULL when out of memory. The caller frees. */
float *bench_synthetic_slices(size_t n, size_t side);

/* Times forward passes (train 0) or Adam/MSE training steps (train 1) of
 * net on the batch x, targets y: one untimed warm-up step, then at least
 * min_steps steps and min_s seconds. CBQ_OK, or the failing step's error
 * (a non-finite loss counts as a failure). */
int bench_time_net_steps(cbq_net *net, const float *x, const float *y, size_t batch, int train,
                         size_t min_steps, double min_s, bench_speed *speed, cbq_error *err);

/* Runs a PyTorch peer command line and reads its one
 * "slices_per_s X cpu_ms_per_slice Y" line; other lines go to stderr.
 * 0 when the peer ran cleanly and reported a finite speed, else -1. */
int bench_run_peer(const char *cmd, bench_speed *speed);

#endif
