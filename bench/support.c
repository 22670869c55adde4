/* support.c - see support.h. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cbctiq/gemm.h"
#include "cbctiq/optim.h"
#include "cbctiq/progress.h"
#include "cbctiq/rng.h"
#include "cbctiq/train.h"

double bench_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double bench_sgemm_ceiling(void)
{
    enum { N = 1024 };
    float *a = bench_synthetic_slices(1, N), *b = bench_synthetic_slices(1, N);
    float *c = calloc((size_t)N * N, sizeof *c);
    double best = INFINITY;
    for (int rep = 0; a && b && c && rep < 5; rep++) {
        double c0 = bench_cpu_seconds();
        cbq_sgemm(0, 0, N, N, N, 1.0f, a, N, b, N, 0.0f, c, N);
        double t = bench_cpu_seconds() - c0;
        best = t < best ? t : best;
    }
    free(a);
    free(b);
    free(c);
    return isfinite(best) && best > 0 ? 2.0 * N * N * N / best * 1e-9 : NAN;
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

int bench_time_net_steps(cbq_net *net, const float *x, const float *y, size_t batch, int train,
                         size_t min_steps, double min_s, bench_speed *speed, cbq_error *err)
{
    cbq_optim_cfg ocfg = cbq_optim_defaults(CBQ_OPTIM_ADAM);
    cbq_optim *opt = NULL;
    int rc = cbq_optim_create(&opt, net, &ocfg, err);
    if (rc != CBQ_OK)
        return rc;
    cbq_loss_cfg loss = {.kind = CBQ_LOSS_MSE};
    cbq_net_set_training(net, train);
    size_t n = 0;
    double t0 = 0.0, el = 0.0, c0 = 0.0;
    for (int warm = 1;; warm = 0) {
        double l = 0.0;
        const float *out = NULL;
        rc = train ? cbq_train_step(net, opt, x, y, batch, &loss, 0.0, &l, NULL, err)
                       : cbq_net_forward(net, x, batch, &out, err);
        if (rc == CBQ_OK && train && !isfinite(l))
            rc = cbq_error_set(err, CBQ_ERR_RANGE, __FILE__, __LINE__, "the training loss is not finite");
        if (rc != CBQ_OK) {
            cbq_optim_free(opt);
            return rc;
        }
        if (warm) {
            t0 = cbq_now();
            c0 = bench_cpu_seconds();
            continue;
        }
        n++;
        el = cbq_now() - t0;
        if (n >= min_steps && el >= min_s)
            break;
    }
    double cpu = bench_cpu_seconds() - c0;
    cbq_optim_free(opt);
    *speed = (bench_speed){(double)(n * batch) / el, 1e3 * cpu / (double)(n * batch)};
    return CBQ_OK;
}

int bench_run_peer(const char *cmd, bench_speed *speed)
{
    bench_speed v = {NAN, NAN};
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[512];
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "slices_per_s %lf cpu_ms_per_slice %lf", &v.slices_per_s, &v.cpu_ms_per_slice) != 2)
            fputs(line, stderr);
    *speed = v;
    return pclose(p) == 0 && isfinite(v.slices_per_s) ? 0 : -1;
}
