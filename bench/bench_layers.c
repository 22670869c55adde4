/* bench_layers.c - per-layer forward/backward speed of the engine's conv2d
 * on the shapes of iqnet-s (128x128 input, batch 32), in GFLOP/s and % of
 * the machine's FP32 peak, next to PyTorch timing the same layers in the
 * same run (bench/peer_torch.py).
 *
 *   bench_layers [--threads N] [--batch N] [--size S] [--peak GFLOPS] [--no-peer]
 *
 * Verifies each conv against the naive reference on one sample before
 * timing it. Peak default: 40.7 GFLOP/s per core (docs/machine.md).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, popen under -std=c11 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cbctiq/gemm.h"
#include "cbctiq/rng.h"

#include "support.h"
#include "nn/layer.h"

#ifndef CBQ_SOURCE_DIR
#define CBQ_SOURCE_DIR "."
#endif

typedef struct { const char *name; int cin, cout, res_div; } conv_shape;

/* iqnet-s: four stages of two 3x3 convs (16, 32, 64, 128 channels) at
 * full, 1/2, 1/4, 1/8 resolution. */
static const conv_shape shapes[] = {
    {"s1.conv_a 1->16", 1, 16, 1},    {"s1.conv_b 16->16", 16, 16, 1},
    {"s2.conv_a 16->32", 16, 32, 2},  {"s2.conv_b 32->32", 32, 32, 2},
    {"s3.conv_a 32->64", 32, 64, 4},  {"s3.conv_b 64->64", 64, 64, 4},
    {"s4.conv_a 64->128", 64, 128, 8}, {"s4.conv_b 128->128", 128, 128, 8},
};
enum { N_SHAPES = sizeof shapes / sizeof shapes[0] };

/* The shared benchmark machine is often loaded by other jobs; besides wall
 * time we read the process CPU time, whose ratio to wall time shows how
 * much of the cores the run really had. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *randn(cbq_rng *rng, size_t count)
{
    float *p = malloc(count * sizeof *p);
    for (size_t i = 0; i < count; i++)
        p[i] = (float)cbq_rng_normal(rng);
    return p;
}

static int verify(const cbq_conv2d_cfg *c, const float *in, const float *w, const float *b,
                  const float *out, size_t h, size_t wd)
{
    size_t count = (size_t)c->out_channels * h * wd;
    float *ref = malloc(count * sizeof *ref);
    conv2d_forward_ref(ref, in, w, b, c, 1, h, wd);
    double md = 0, mr = 1e-12;
    for (size_t i = 0; i < count; i++) {
        md = fmax(md, fabs((double)out[i] - ref[i]));
        mr = fmax(mr, fabs((double)ref[i]));
    }
    free(ref);
    return md / mr < 1e-5;
}

/* Fastest of `reps` timings of one call (the least disturbed by other
 * jobs); *cores receives CPU time / wall time of that repetition. */
static double time_best(void (*fn)(void *), void *ctx, int reps, double *cores)
{
    double best = 1e30;
    fn(ctx); /* warm-up */
    for (int r = 0; r < reps; r++) {
        double t0 = now(), c0 = bench_cpu_seconds();
        fn(ctx);
        double t = now() - t0, c = bench_cpu_seconds() - c0;
        if (t < best) {
            best = t;
            *cores = c / t;
        }
    }
    return best;
}

typedef struct { float *a, *b, *c; } gemm_run;

static void run_gemm(void *p)
{
    gemm_run *g = p;
    cbq_sgemm(0, 0, 1024, 1024, 1024, 1.0f, g->a, 1024, g->b, 1024, 0.0f, g->c, 1024);
}

/* What this CPU attains in SGEMM 1024^3 on one core, per CPU-second: the
 * practical ceiling the conv figures are compared with. */
static double sgemm_ceiling(cbq_rng *rng)
{
    gemm_run g = {randn(rng, 1 << 20), randn(rng, 1 << 20), calloc(1 << 20, 4)};
    double cores = 0;
    double t = time_best(run_gemm, &g, 5, &cores);
    free(g.a); free(g.b); free(g.c);
    return 2.0 * 1024 * 1024 * 1024 / (t * cores) * 1e-9;
}

typedef struct {
    cbq_conv2d_cfg cfg;
    size_t n, h, w;
    float *in, *wt, *b, *out, *dout, *din, *dw, *db, *ws, *priv;
    int threads;
} conv_run;

static void run_fwd(void *p)
{
    conv_run *r = p;
    conv2d_forward(r->out, r->in, r->wt, r->b, &r->cfg, r->n, r->h, r->w, r->ws, r->threads);
}

static void run_bwd(void *p)
{
    conv_run *r = p;
    conv2d_backward(r->cfg.in_channels > 1 ? r->din : NULL, r->dw, r->db, r->dout, r->in, r->wt,
                    &r->cfg, r->n, r->h, r->w, r->ws, r->priv, r->threads);
}

/* Peer timings: "name fwd_ms bwd_ms" lines from peer_torch.py. */
static int read_peer(int threads, size_t batch, size_t size, double pf[], double pb[],
                     double pfc[], double pbc[])
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/bench/peer_torch.py layers --threads %d --batch %zu --size %zu",
             CBQ_SOURCE_DIR, threads, batch, size);
    FILE *f = popen(cmd, "r");
    if (!f)
        return 0;
    char line[512];
    int got = 0;
    while (fgets(line, sizeof line, f)) {
        int idx;
        double a, b, c, d;
        if (sscanf(line, "layer %d %lf %lf %lf %lf", &idx, &a, &b, &c, &d) == 5 && idx >= 0 &&
            idx < N_SHAPES) {
            pf[idx] = a;
            pb[idx] = b;
            pfc[idx] = c;
            pbc[idx] = d;
            got++;
        }
    }
    return pclose(f) == 0 && got == N_SHAPES;
}

int main(int argc, char **argv)
{
    int threads = 2, peer = 1;
    size_t batch = 32, size = 128;
    double peak_core = 40.7;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = (size_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = (size_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--peak") && i + 1 < argc)
            peak_core = atof(argv[++i]);
        else if (!strcmp(argv[i], "--no-peer"))
            peer = 0;
        else if (!strcmp(argv[i], "--quick")) /* every code path once, in seconds */
            batch = 2, size = 32;
        else {
            fprintf(stderr, "usage: bench_layers [--threads N] [--batch N] [--size S] [--peak GFLOPS_PER_CORE] [--no-peer] [--quick]\n");
            return 2;
        }
    }
    threads = cbq_threads_init(threads);
    printf("bench_layers: conv2d 3x3 pad 1, batch %zu, %zux%zu input, %d threads, OpenBLAS "
           "single-threaded under OpenMP\n", batch, size, size, threads);
    printf("peak %.1f GFLOP/s per core; GF/cs = GFLOP per CPU-second (per-core speed, robust to "
           "other jobs), %%pk = GF/cs of the per-core peak\n", peak_core);
    {
        cbq_rng g_rng;
        cbq_rng_seed(&g_rng, 3);
        double ceil = sgemm_ceiling(&g_rng);
        printf("this CPU: OpenBLAS SGEMM 1024^3 on one core: %.1f GFLOP per CPU-second (%.0f%% of "
               "the nominal per-core peak)\n", ceil, 100 * ceil / peak_core);
    }
    double pf[N_SHAPES] = {0}, pb[N_SHAPES] = {0}, pfc[N_SHAPES] = {0}, pbc[N_SHAPES] = {0};
    int have_peer = peer && read_peer(threads, batch, size, pf, pb, pfc, pbc);
    if (peer && !have_peer) {
        fprintf(stderr, "bench_layers: the PyTorch peer failed (--no-peer times cbctiq alone)\n");
        return 1;
    }
    printf("%-19s %8s %7s %6s %4s | %8s %7s %6s %4s | %6s %6s %6s %6s\n", "layer", "fwd ms",
           "GF/s", "GF/cs", "%pk", "bwd ms", "GF/s", "GF/cs", "%pk", "fwd x", "bwd x", "fwdc x",
           "bwdc x");
    cbq_rng rng;
    cbq_rng_seed(&rng, 1);
    double tot[4] = {0}, ptot[4] = {0}, flop_f = 0, flop_b = 0, cores_sum = 0;
    for (int s = 0; s < N_SHAPES; s++) {
        conv_run r = {.cfg = {shapes[s].cin, shapes[s].cout, 3, 3, 1, 1, 1, 1, 1}, .n = batch,
                      .h = size / (size_t)shapes[s].res_div, .w = size / (size_t)shapes[s].res_div};
        r.threads = threads;
        size_t nin = r.n * (size_t)r.cfg.in_channels * r.h * r.w;
        size_t nout = r.n * (size_t)r.cfg.out_channels * r.h * r.w;
        size_t nw = (size_t)r.cfg.out_channels * (size_t)r.cfg.in_channels * 9;
        r.in = randn(&rng, nin);
        r.wt = randn(&rng, nw);
        r.b = randn(&rng, (size_t)r.cfg.out_channels);
        r.dout = randn(&rng, nout);
        r.out = calloc(nout, 4);
        r.din = calloc(nin, 4);
        r.dw = calloc(nw, 4);
        r.db = calloc((size_t)r.cfg.out_channels, 4);
        r.ws = calloc((size_t)threads * conv2d_workspace_floats(&r.cfg, r.h, r.w), 4);
        r.priv = calloc((size_t)threads * conv2d_dw_private_floats(&r.cfg), 4);
        run_fwd(&r);
        if (!verify(&r.cfg, r.in, r.wt, r.b, r.out, r.h, r.w)) {
            fprintf(stderr, "bench_layers: %s disagrees with the reference\n", shapes[s].name);
            return 1;
        }
        double cf = 0, cb = 0;
        double tf = time_best(run_fwd, &r, 7, &cf), tb = time_best(run_bwd, &r, 7, &cb);
        double ff = 2.0 * (double)nw * (double)(r.h * r.w) * (double)r.n;
        /* backward: dW always, din except for the first layer (input needs none) */
        double fb = ff * (r.cfg.in_channels > 1 ? 2.0 : 1.0);
        double tfc = tf * cf, tbc = tb * cb; /* CPU seconds */
        cores_sum += cf + cb;
        tot[0] += tf; tot[1] += tb; tot[2] += tfc; tot[3] += tbc;
        flop_f += ff;
        flop_b += fb;
        printf("%-19s %8.2f %7.1f %6.1f %3.0f%% | %8.2f %7.1f %6.1f %3.0f%%", shapes[s].name,
               tf * 1e3, ff / tf * 1e-9, ff / tfc * 1e-9, 100 * ff / tfc * 1e-9 / peak_core,
               tb * 1e3, fb / tb * 1e-9, fb / tbc * 1e-9, 100 * fb / tbc * 1e-9 / peak_core);
        if (have_peer) {
            printf(" | %6.2f %6.2f %6.2f %6.2f", pf[s] / (tf * 1e3), pb[s] / (tb * 1e3),
                   pfc[s] / (tfc * 1e3), pbc[s] / (tbc * 1e3));
            ptot[0] += pf[s]; ptot[1] += pb[s]; ptot[2] += pfc[s]; ptot[3] += pbc[s];
        }
        printf("\n");
        free(r.in); free(r.wt); free(r.b); free(r.dout); free(r.out); free(r.din); free(r.dw);
        free(r.db); free(r.ws); free(r.priv);
    }
    printf("%-19s %8.2f %7.1f %6.1f %3.0f%% | %8.2f %7.1f %6.1f %3.0f%%", "all convs",
           tot[0] * 1e3, flop_f / tot[0] * 1e-9, flop_f / tot[2] * 1e-9,
           100 * flop_f / tot[2] * 1e-9 / peak_core, tot[1] * 1e3, flop_b / tot[1] * 1e-9,
           flop_b / tot[3] * 1e-9, 100 * flop_b / tot[3] * 1e-9 / peak_core);
    if (have_peer)
        printf(" | %6.2f %6.2f %6.2f %6.2f", ptot[0] / (tot[0] * 1e3), ptot[1] / (tot[1] * 1e3),
               ptot[2] / (tot[2] * 1e3), ptot[3] / (tot[3] * 1e3));
    printf("\nmean CPU use while timed: %.2f cores of %d\n", cores_sum / (2 * N_SHAPES), threads);
    printf("(x = PyTorch time / cbctiq time, same shapes, threads and run, wall and CPU (c); "
           "> 1 means cbctiq is faster)\n");
    return 0;
}
