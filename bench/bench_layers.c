/* bench_layers.c - per-layer forward/backward speed of the engine's conv2d
 * in GFLOP/s, as a fraction of the SGEMM ceiling measured in the same run,
 * next to PyTorch timing the same layers in the same run
 * (bench/peer_torch.py). Two sets of shapes:
 *   iqnet-s: its eight 3x3 convolutions at --size (128) input, --batch (32);
 *   resnet18: every distinct convolution of torchvision's resnet18 with one
 *     input channel (7x7/2 stem, 3x3 and 3x3/2, 1x1/2 downsampling) at 224
 *     and 128 input, --resnet-batch (16).
 *
 *   bench_layers [--threads N] [--batch N] [--size S] [--resnet-batch N]
 *                [--set iqnet|resnet18|all] [--peak GFLOPS] [--no-peer] [--quick]
 *                [--algorithm auto|gemm|winograd]
 *
 * Column "alg": how the layer ran (F4x4 / F2x2: Winograd F(4x4, 3x3) or,
 * on 4x4 planes, F(2x2, 3x3) for the forward and input gradient; gemm:
 * im2col + GEMM). GF/s and GF/cs always
 * count the direct convolution's FLOPs (2 * K * C * 9 * OH * OW per
 * sample), so Winograd's fewer multiplications show as a higher rate.
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

/* One convolution: kernel k x k, stride, padding k/2 (torchvision's), input
 * side = the set's input size / in_div. */
typedef struct { const char *name; int cin, cout, k, stride, in_div; } conv_shape;

/* iqnet-s: four stages of two 3x3 convs (16, 32, 64, 128 channels) at
 * full, 1/2, 1/4, 1/8 resolution. */
static const conv_shape iqnet_shapes[] = {
    {"s1.conv_a 1->16", 1, 16, 3, 1, 1},    {"s1.conv_b 16->16", 16, 16, 3, 1, 1},
    {"s2.conv_a 16->32", 16, 32, 3, 1, 2},  {"s2.conv_b 32->32", 32, 32, 3, 1, 2},
    {"s3.conv_a 32->64", 32, 64, 3, 1, 4},  {"s3.conv_b 64->64", 64, 64, 3, 1, 4},
    {"s4.conv_a 64->128", 64, 128, 3, 1, 8}, {"s4.conv_b 128->128", 128, 128, 3, 1, 8},
};

/* resnet18 (1 input channel): the stem, then per stage its 3x3 conv, the
 * first block's strided 3x3 and its 1x1 strided downsampling. */
static const conv_shape resnet_shapes[] = {
    {"conv1 7x7/2 1->64", 1, 64, 7, 2, 1},
    {"layer1 3x3 64", 64, 64, 3, 1, 4},
    {"layer2 3x3/2 64->128", 64, 128, 3, 2, 4},   {"layer2 3x3 128", 128, 128, 3, 1, 8},
    {"layer2 1x1/2 64->128", 64, 128, 1, 2, 4},
    {"layer3 3x3/2 128->256", 128, 256, 3, 2, 8}, {"layer3 3x3 256", 256, 256, 3, 1, 16},
    {"layer3 1x1/2 128->256", 128, 256, 1, 2, 8},
    {"layer4 3x3/2 256->512", 256, 512, 3, 2, 16}, {"layer4 3x3 512", 512, 512, 3, 1, 32},
    {"layer4 1x1/2 256->512", 256, 512, 1, 2, 16},
};
enum { MAX_SHAPES = 16 };

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
    size_t count = (size_t)c->out_channels * conv2d_out_size(h, c->kernel_h, c->stride_h, c->pad_h) *
                   conv2d_out_size(wd, c->kernel_w, c->stride_w, c->pad_w);
    float *ref = malloc(count * sizeof *ref);
    conv2d_forward_ref(ref, in, w, b, c, 1, h, wd);
    double md = 0, mr = 1e-12;
    for (size_t i = 0; i < count; i++) {
        md = fmax(md, fabs((double)out[i] - ref[i]));
        mr = fmax(mr, fabs((double)ref[i]));
    }
    free(ref);
    /* Winograd's float error grows with the channels summed (1.4e-5 of the
     * largest output at 256, test_conv_winograd) */
    return md / mr < (conv2d_winograd_eligible(c, h, wd) ? 3e-5 : 1e-5);
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

typedef struct {
    cbq_conv2d_cfg cfg;
    size_t n, h, w;
    float *in, *wt, *b, *out, *dout, *din, *dw, *db, *ws, *priv, *wgws;
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

/* The weight gradient alone (dW, no bias), by im2col + GEMM and by Winograd. */
static void run_wgrad_im2col(void *p)
{
    conv_run *r = p;
    conv2d_backward_im2col(NULL, r->dw, NULL, r->dout, r->in, r->wt, &r->cfg, r->n, r->h, r->w,
                           r->ws, r->priv, r->threads);
}

static void run_wgrad_winograd(void *p)
{
    conv_run *r = p;
    conv2d_winograd_backward_weight(r->dw, NULL, r->dout, r->in, &r->cfg, r->n, r->h, r->w,
                                    r->wgws, r->threads);
}

/* The Winograd weight gradient against the im2col one on one sample: both
 * against the double reference would cost seconds, so the tolerance is
 * Winograd's error bound (tests/nn/test_conv_winograd_wgrad.c). */
static int verify_wgrad(conv_run *r)
{
    const size_t nw = (size_t)r->cfg.out_channels * (size_t)r->cfg.in_channels * 9;
    float *a = calloc(nw, sizeof *a), *b = calloc(nw, sizeof *b);
    conv2d_backward_im2col(NULL, a, NULL, r->dout, r->in, r->wt, &r->cfg, 1, r->h, r->w, r->ws,
                           r->priv, r->threads);
    conv2d_winograd_backward_weight(b, NULL, r->dout, r->in, &r->cfg, 1, r->h, r->w, r->wgws,
                                    r->threads);
    double md = 0, mr = 1e-12;
    for (size_t i = 0; i < nw; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mr = fmax(mr, fabs((double)a[i]));
    }
    free(a);
    free(b);
    return md / mr < 5e-5;
}

/* CPU ms of the weight gradient by im2col and Winograd, per 3x3 stride-1 shape. */
typedef struct { double im2col_ms, winograd_ms; int eligible; } wgrad_time;

/* The shapes as peer_torch.py reads them: "cin,cout,k,stride,side;..." */
static void shapes_arg(char *buf, size_t cap, const conv_shape *shapes, int n, size_t size)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%d,%d,%d,%d,%zu", i ? ";" : "",
                                 shapes[i].cin, shapes[i].cout, shapes[i].k, shapes[i].stride,
                                 size / (size_t)shapes[i].in_div);
}

/* Peer timings: "layer I fwd_ms bwd_ms fwd_cpu_ms bwd_cpu_ms" lines from peer_torch.py. */
static int read_peer(int threads, size_t batch, const conv_shape *shapes, int n, size_t size,
                     double pf[], double pb[], double pfc[], double pbc[])
{
    char cmd[2048], arg[1024];
    shapes_arg(arg, sizeof arg, shapes, n, size);
    snprintf(cmd, sizeof cmd, "%s %s/bench/peer_torch.py layers --threads %d --batch %zu --shapes '%s'",
             CBQ_PYTHON, CBQ_SOURCE_DIR, threads, batch, arg);
    FILE *f = popen(cmd, "r");
    if (!f)
        return 0;
    char line[512];
    int got = 0;
    while (fgets(line, sizeof line, f)) {
        int idx;
        double a, b, c, d;
        if (sscanf(line, "layer %d %lf %lf %lf %lf", &idx, &a, &b, &c, &d) == 5 && idx >= 0 &&
            idx < n) {
            pf[idx] = a;
            pb[idx] = b;
            pfc[idx] = c;
            pbc[idx] = d;
            got++;
        }
    }
    return pclose(f) == 0 && got == n;
}

/* Times the weight gradient of a shape Winograd computes (else leaves *t
 * zero); 0 when the two disagree. */
static int time_wgrad(conv_run *r, wgrad_time *t)
{
    const size_t per_thread = conv2d_winograd_wgrad_workspace_floats(&r->cfg, r->h, r->w);
    if (per_thread == 0)
        return 1;
    r->wgws = calloc((size_t)r->threads * per_thread, sizeof *r->wgws);
    int ok = verify_wgrad(r);
    if (ok) {
        double ci = 0, cw = 0;
        t->im2col_ms = 1e3 * time_best(run_wgrad_im2col, r, 7, &ci);
        t->winograd_ms = 1e3 * time_best(run_wgrad_winograd, r, 7, &cw);
        t->im2col_ms *= ci; /* CPU ms */
        t->winograd_ms *= cw;
        t->eligible = conv2d_winograd_wgrad_eligible(&r->cfg, r->h, r->w);
    }
    free(r->wgws);
    r->wgws = NULL;
    return ok;
}

/* The weight gradient alone, per shape Winograd computes: CPU ms by im2col
 * and by Winograd, and PyTorch's whole backward (input and weight
 * gradients) for scale. */
static void print_wgrad(const conv_shape *shapes, int n_shapes, const wgrad_time *wg,
                        const double *peer_bwd_cpu)
{
    printf("weight gradient alone (dW), CPU ms: im2col vs Winograd F(4x4,3x3); eligible = the "
           "engine's choice%s\n", peer_bwd_cpu ? "; PyTorch: its whole backward (din + dW)" : "");
    printf("%-26s %10s %10s %7s %8s %12s\n", "layer", "im2col", "winograd", "x", "eligible",
           peer_bwd_cpu ? "torch bwd" : "");
    for (int s = 0; s < n_shapes; s++) {
        if (wg[s].winograd_ms <= 0)
            continue;
        printf("%-26s %10.2f %10.2f %7.2f %8s", shapes[s].name, wg[s].im2col_ms,
               wg[s].winograd_ms, wg[s].im2col_ms / wg[s].winograd_ms, wg[s].eligible ? "yes" : "no");
        if (peer_bwd_cpu)
            printf(" %12.2f", peer_bwd_cpu[s]);
        printf("\n");
    }
}

typedef struct {
    int threads, peer, algorithm;
    double peak_core, ceiling;
} bench_opts;

/* Times one set of shapes at one input size; returns 0 when a check or the peer failed. */
/* The "alg" column: how conv2d computes this layer's forward. */
static const char *algorithm_label(const cbq_conv2d_cfg *c, size_t h, size_t w)
{
    if (!conv2d_winograd_eligible(c, h, w))
        return "gemm";
    return conv2d_winograd_tile(c, h, w) == 2 ? "F2x2" : "F4x4";
}

static int run_set(const char *title, const conv_shape *shapes, int n_shapes, size_t batch,
                   size_t size, const bench_opts *o)
{
    const int threads = o->threads;
    double pf[MAX_SHAPES] = {0}, pb[MAX_SHAPES] = {0}, pfc[MAX_SHAPES] = {0}, pbc[MAX_SHAPES] = {0};
    int have_peer = o->peer && read_peer(threads, batch, shapes, n_shapes, size, pf, pb, pfc, pbc);
    if (o->peer && !have_peer) {
        fprintf(stderr, "bench_layers: the PyTorch peer failed (--no-peer times cbctiq alone)\n");
        return 0;
    }
    printf("\n%s: %zux%zu input, batch %zu, %d threads\n", title, size, size, batch, threads);
    printf("%-26s %4s %8s %7s %6s %4s | %8s %7s %6s %4s | %6s %6s %6s %6s\n", "layer (input side)",
           "alg", "fwd ms", "GF/s", "GF/cs", "%sg", "bwd ms", "GF/s", "GF/cs", "%sg", "fwd x", "bwd x",
           "fwdc x", "bwdc x");
    cbq_rng rng;
    cbq_rng_seed(&rng, 1);
    double tot[4] = {0}, ptot[4] = {0}, flop_f = 0, flop_b = 0, cores_sum = 0;
    wgrad_time wg[MAX_SHAPES] = {{0}};
    for (int s = 0; s < n_shapes; s++) {
        const conv_shape *sh = &shapes[s];
        conv_run r = {.cfg = {sh->cin, sh->cout, sh->k, sh->k, sh->stride, sh->stride, sh->k / 2,
                              sh->k / 2, 1, .algorithm = o->algorithm},
                      .n = batch, .h = size / (size_t)sh->in_div, .w = size / (size_t)sh->in_div};
        r.threads = threads;
        const size_t oh = conv2d_out_size(r.h, sh->k, sh->stride, sh->k / 2);
        const size_t ow = conv2d_out_size(r.w, sh->k, sh->stride, sh->k / 2);
        size_t nin = r.n * (size_t)r.cfg.in_channels * r.h * r.w;
        size_t nout = r.n * (size_t)r.cfg.out_channels * oh * ow;
        size_t nw = (size_t)r.cfg.out_channels * (size_t)r.cfg.in_channels * (size_t)(sh->k * sh->k);
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
            fprintf(stderr, "bench_layers: %s disagrees with the reference\n", sh->name);
            return 0;
        }
        double cf = 0, cb = 0;
        double tf = time_best(run_fwd, &r, 7, &cf), tb = time_best(run_bwd, &r, 7, &cb);
        double ff = 2.0 * (double)nw * (double)(oh * ow) * (double)r.n;
        /* backward: dW always, din except for a first layer (input needs none) */
        double fb = ff * (r.cfg.in_channels > 1 ? 2.0 : 1.0);
        double tfc = tf * cf, tbc = tb * cb; /* CPU seconds */
        cores_sum += cf + cb;
        tot[0] += tf; tot[1] += tb; tot[2] += tfc; tot[3] += tbc;
        flop_f += ff;
        flop_b += fb;
        char label[64];
        snprintf(label, sizeof label, "%s (%zu)", sh->name, r.h);
        printf("%-26s %4s %8.2f %7.1f %6.1f %3.0f%% | %8.2f %7.1f %6.1f %3.0f%%", label,
               algorithm_label(&r.cfg, r.h, r.w), tf * 1e3, ff / tf * 1e-9, ff / tfc * 1e-9, 100 * ff / tfc * 1e-9 / o->ceiling,
               tb * 1e3, fb / tb * 1e-9, fb / tbc * 1e-9, 100 * fb / tbc * 1e-9 / o->ceiling);
        if (have_peer) {
            printf(" | %6.2f %6.2f %6.2f %6.2f", pf[s] / (tf * 1e3), pb[s] / (tb * 1e3),
                   pfc[s] / (tfc * 1e3), pbc[s] / (tbc * 1e3));
            ptot[0] += pf[s]; ptot[1] += pb[s]; ptot[2] += pfc[s]; ptot[3] += pbc[s];
        }
        printf("\n");
        if (!time_wgrad(&r, &wg[s])) {
            fprintf(stderr, "bench_layers: %s: the Winograd weight gradient disagrees with im2col\n",
                    sh->name);
            return 0;
        }
        free(r.in); free(r.wt); free(r.b); free(r.dout); free(r.out); free(r.din); free(r.dw);
        free(r.db); free(r.ws); free(r.priv);
    }
    printf("%-26s %4s %8.2f %7.1f %6.1f %3.0f%% | %8.2f %7.1f %6.1f %3.0f%%", "all convs", "",
           tot[0] * 1e3, flop_f / tot[0] * 1e-9, flop_f / tot[2] * 1e-9,
           100 * flop_f / tot[2] * 1e-9 / o->ceiling, tot[1] * 1e3, flop_b / tot[1] * 1e-9,
           flop_b / tot[3] * 1e-9, 100 * flop_b / tot[3] * 1e-9 / o->ceiling);
    if (have_peer)
        printf(" | %6.2f %6.2f %6.2f %6.2f", ptot[0] / (tot[0] * 1e3), ptot[1] / (tot[1] * 1e3),
               ptot[2] / (tot[2] * 1e3), ptot[3] / (tot[3] * 1e3));
    printf("\nmean CPU use while timed: %.2f cores of %d\n", cores_sum / (2 * n_shapes), threads);
    print_wgrad(shapes, n_shapes, wg, have_peer ? pbc : NULL);
    fflush(stdout);
    return 1;
}

int main(int argc, char **argv)
{
    int threads = 2, peer = 1, algorithm = CBQ_CONV_AUTO;
    size_t batch = 32, size = 128, resnet_batch = 16;
    size_t resnet_sizes[2] = {224, 128};
    const char *set = "all";
    double peak_core = 40.7;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = (size_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = (size_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--resnet-batch") && i + 1 < argc)
            resnet_batch = (size_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--set") && i + 1 < argc)
            set = argv[++i];
        else if (!strcmp(argv[i], "--peak") && i + 1 < argc)
            peak_core = atof(argv[++i]);
        else if (!strcmp(argv[i], "--no-peer"))
            peer = 0;
        else if (!strcmp(argv[i], "--algorithm") && i + 1 < argc) {
            const char *a = argv[++i];
            algorithm = !strcmp(a, "gemm") ? CBQ_CONV_GEMM
                        : !strcmp(a, "winograd") ? CBQ_CONV_WINOGRAD
                        : !strcmp(a, "auto") ? CBQ_CONV_AUTO : -1;
            if (algorithm < 0) {
                fprintf(stderr, "bench_layers: --algorithm %s: expected auto, gemm or winograd\n", a);
                return 2;
            }
        }
        else if (!strcmp(argv[i], "--quick")) { /* every code path once, in seconds */
            batch = 2, size = 32, resnet_batch = 1;
            resnet_sizes[0] = 64, resnet_sizes[1] = 32;
        } else {
            fprintf(stderr, "usage: bench_layers [--threads N] [--batch N] [--size S] [--resnet-batch N] "
                            "[--set iqnet|resnet18|all] [--peak GFLOPS_PER_CORE] [--no-peer] [--quick] "
                            "[--algorithm auto|gemm|winograd]\n");
            return 2;
        }
    }
    const int want_iqnet = !strcmp(set, "all") || !strcmp(set, "iqnet");
    const int want_resnet = !strcmp(set, "all") || !strcmp(set, "resnet18");
    if (!want_iqnet && !want_resnet) {
        fprintf(stderr, "bench_layers: --set %s: expected iqnet, resnet18 or all\n", set);
        return 2;
    }
    bench_opts o = {.threads = cbq_threads_init(threads), .peer = peer, .peak_core = peak_core,
                    .algorithm = algorithm};
    printf("bench_layers: conv2d, OpenBLAS single-threaded under OpenMP, %d threads\n", o.threads);
    {
        o.ceiling = bench_sgemm_ceiling();
        printf("this CPU: OpenBLAS SGEMM 1024^3 on one core: %.1f GFLOP per CPU-second (%.0f%% of "
               "the nominal per-core peak %.1f)\n", o.ceiling, 100 * o.ceiling / peak_core, peak_core);
    }
    printf("GF/cs = GFLOP per CPU-second (per-core speed, robust to other jobs); %%sg = GF/cs as a "
           "fraction of that SGEMM ceiling\n");
    printf("x = PyTorch time / cbctiq time, same shapes, threads and run, wall and CPU (c); "
           "> 1 means cbctiq is faster\n");
    if (want_iqnet && !run_set("iqnet-s 3x3 convolutions", iqnet_shapes,
                               (int)(sizeof iqnet_shapes / sizeof iqnet_shapes[0]), batch, size, &o))
        return 1;
    for (int i = 0; want_resnet && i < 2; i++)
        if (!run_set("resnet18 convolutions", resnet_shapes,
                     (int)(sizeof resnet_shapes / sizeof resnet_shapes[0]), resnet_batch,
                     resnet_sizes[i], &o))
            return 1;
    return 0;
}
