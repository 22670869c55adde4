/* bench_resnet.c - whole-network speed of the resnet18 preset (torchvision's
 * resnet18 with one input channel and five outputs): training steps (Adam +
 * MSE) and inference at 128x128 and 224x224, batch 16, with 1 and 2
 * threads, against torchvision's resnet18 on PyTorch CPU measured in the
 * same run with the same thread count (bench/peer_resnet_torch.py).
 *
 * Before timing, at each input size: the preset's initial weights are saved
 * as a model folder, the PyTorch peer loads them into torchvision's resnet18
 * and its eval-mode outputs must equal cbctiq's to 1e-4 (relative to the
 * largest output); a training step must give a finite loss.
 *
 *   bench_resnet [--min-seconds S] [--batch N] [--no-peer] [--quick]
 *                [--threads N] [--mode train|infer] [--size 128|224]
 *
 * --threads, --mode and --size keep one row (or a few) of the table, so
 * that it can be profiled alone (perf record -g); the default is all rows.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbctiq/model_file.h"
#include "cbctiq/net.h"
#include "cbctiq/optim.h"
#include "cbctiq/preset.h"
#include "cbctiq/progress.h"
#include "cbctiq/rng.h"
#include "cbctiq/train.h"

#include "support.h"

typedef bench_speed speed;

static void fail(const char *what, const cbq_error *err)
{
    fprintf(stderr, "bench_resnet: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
    exit(1);
}

static void build_spec(cbq_model_spec *spec, int side)
{
    cbq_preset_opts o = {.input = side};
    cbq_error err = {0};
    if (cbq_preset_build(spec, "resnet18", &o, &err) != CBQ_OK)
        fail("preset resnet18", &err);
}

static float *uniform(size_t count, uint64_t seed)
{
    float *p = malloc(count * sizeof *p);
    if (!p)
        fail("out of memory", NULL);
    cbq_rng rng;
    cbq_rng_seed(&rng, seed);
    for (size_t i = 0; i < count; i++)
        p[i] = (float)cbq_rng_uniform(&rng);
    return p;
}

static void write_f32(const char *path, const float *p, size_t count)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, sizeof *p, count, f) != count || fclose(f) != 0)
        fail("cannot write a file for the peer", NULL);
}

/* cbctiq's eval outputs of a 2-slice batch, the weights as a model folder:
 * the peer loads both into torchvision's resnet18 and compares. */
static void verify(const char *tmp, int side)
{
    cbq_model_spec spec;
    build_spec(&spec, side);
    cbq_net *net = NULL;
    cbq_error err = {0};
    const size_t n = 2, plane = (size_t)side * (size_t)side;
    if (cbq_net_create(&net, &spec, n, 11, &err) != CBQ_OK)
        fail("net", &err);
    cbq_model_spec_free(&spec);
    /* the plan time_cbctiq's inference times: only the output kept */
    if (cbq_net_keep_activations_from(net, cbq_net_spec(net)->n_layers - 1, &err) != CBQ_OK)
        fail("net", &err);
    char dir[1024], path[1200], cmd[4096];
    snprintf(dir, sizeof dir, "%s/bench_resnet_%ld_%d", tmp, (long)getpid(), side);
    if (cbq_model_save(dir, net, &err) != CBQ_OK)
        fail("saving the model", &err);
    float *x = uniform(n * plane, 5);
    const float *out = NULL;
    cbq_net_set_training(net, 0);
    if (cbq_net_forward(net, x, n, &out, &err) != CBQ_OK)
        fail("forward", &err);
    snprintf(path, sizeof path, "%s/x.f32", dir);
    write_f32(path, x, n * plane);
    snprintf(path, sizeof path, "%s/out.f32", dir);
    write_f32(path, out, n * 5);
    snprintf(cmd, sizeof cmd, "'%s' '%s/bench/peer_resnet_torch.py' verify '%s' %zu 2>&1", CBQ_PYTHON,
             CBQ_SOURCE_DIR, dir, n);
    fflush(stdout);
    int rc = system(cmd);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_resnet: could not remove %s\n", dir);
    free(x);
    cbq_net_free(net);
    if (rc != 0)
        fail("verification against torchvision's resnet18 failed", NULL);
}

static speed time_cbctiq(int train, int side, size_t batch, int threads, double min_s)
{
    cbq_model_spec spec;
    build_spec(&spec, side);
    cbq_net *net = NULL;
    cbq_error err = {0};
    if ((train ? cbq_net_create_training : cbq_net_create)(&net, &spec, batch, 1, &err) != CBQ_OK)
        fail("net", &err);
    /* inference reads the output only, as cbctiq predict does */
    if (!train && cbq_net_keep_activations_from(net, spec.n_layers - 1, &err) != CBQ_OK)
        fail("net", &err);
    const size_t plane = (size_t)side * (size_t)side, k = spec.n_outputs;
    cbq_model_spec_free(&spec);
    cbq_net_set_threads(net, threads);
    float *x = uniform(batch * plane, 7), *y = uniform(batch * k, 8);
    speed v;
    if (bench_time_net_steps(net, x, y, batch, train, 2, min_s, &v, &err) != CBQ_OK)
        fail("step", &err);
    cbq_net_free(net);
    free(x);
    free(y);
    return v;
}

static speed time_peer(int train, int side, size_t batch, int threads, double min_s)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' '%s/bench/peer_resnet_torch.py' %s %d %d %zu %g 2>&1", CBQ_PYTHON,
             CBQ_SOURCE_DIR, train ? "train" : "infer", side, threads, batch, min_s);
    speed v;
    if (bench_run_peer(cmd, &v) != 0)
        fail("the PyTorch peer failed", NULL);
    return v;
}

/* Forward FLOPs per slice of the convolutions and the linear layer. */
static double forward_flops(int side)
{
    cbq_model_spec spec;
    build_spec(&spec, side);
    cbq_net *net = NULL;
    cbq_error err = {0};
    if (cbq_net_create(&net, &spec, 1, 1, &err) != CBQ_OK)
        fail("net", &err);
    cbq_model_spec_free(&spec);
    double f = cbq_net_forward_flops(net);
    cbq_net_free(net);
    return f;
}

#define USAGE                                                                                     \
    "usage: bench_resnet [--min-seconds S] [--batch N] [--no-peer] [--quick] [--threads N]\n"    \
    "                    [--mode train|infer] [--size 128|224]\n"

/* The rows to run: 0 in a field means every value. */
typedef struct { int threads, mode, size; } row_filter; /* mode: 1 train, 2 infer */

static int keep_row(const row_filter *f, int train, int side, int threads)
{
    return (!f->threads || f->threads == threads) && (!f->mode || f->mode == (train ? 1 : 2)) &&
           (!f->size || f->size == side);
}

static int parse_filter(row_filter *f, const char *opt, const char *val)
{
    if (strcmp(opt, "--threads") == 0)
        return (f->threads = atoi(val)) >= 1 ? 0 : -1;
    if (strcmp(opt, "--mode") == 0) {
        f->mode = strcmp(val, "train") == 0 ? 1 : strcmp(val, "infer") == 0 ? 2 : 0;
        return f->mode ? 0 : -1;
    }
    if (strcmp(opt, "--size") == 0) {
        f->size = atoi(val);
        return f->size == 128 || f->size == 224 ? 0 : -1;
    }
    return 1; /* not a filter option */
}

int main(int argc, char **argv)
{
    double min_s = 3.0;
    size_t batch = 16;
    int peer = 1, quick = 0;
    row_filter filter = {0, 0, 0};
    for (int i = 1; i < argc; i++) {
        const int filt = i + 1 < argc ? parse_filter(&filter, argv[i], argv[i + 1]) : 1;
        if (filt < 0) {
            fprintf(stderr, "bench_resnet: bad value '%s' for %s\n" USAGE, argv[i + 1], argv[i]);
            return 2;
        }
        if (filt == 0) {
            i++;
            continue;
        }
        if (strcmp(argv[i], "--min-seconds") == 0 && i + 1 < argc)
            min_s = atof(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--no-peer") == 0)
            peer = 0;
        else if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else {
            fputs(USAGE, stderr);
            return 2;
        }
    }
    /* --quick: every code path once, on sizes that take seconds (the test bench_quick). */
    static const int full_sides[] = {128, 224}, quick_sides[] = {64};
    const int *sides = quick ? quick_sides : full_sides;
    const size_t n_sides = quick ? 1 : 2;
    /* quick: one thread (two threads run the same code), batch 2 */
    const int max_threads = quick ? 1 : filter.threads > 2 ? filter.threads : 2;
    if (quick)
        min_s = 0.0, batch = 2;
    if (batch < 2)
        fail("--batch must be at least 2 (batch norm trains on the batch)", NULL);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    printf("bench_resnet: resnet18 (1 input channel, 5 outputs), float32, batch %zu; PyTorch: "
           "torchvision's resnet18, same threads\n", batch);
    /* libgomp's waiting threads spin (about 3 ms by default) before they
     * sleep; on a loaded machine that spinning is most of two threads' extra
     * CPU time, and only the environment sets it (docs/performance.md). */
    const char *policy = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    printf("OpenMP waits: OMP_WAIT_POLICY=%s GOMP_SPINCOUNT=%s (the PyTorch peer inherits them)\n",
           policy ? policy : "(unset)", spin ? spin : "(unset)");
    printf("wall: slices/s; cpu: CPU-ms per slice (all threads); GF/cs: GFLOP per CPU-second; "
           "ratios > 1: cbctiq faster\n");
    printf("%-6s %-8s %3s %11s %7s %7s %10s %7s %7s %7s\n", "mode", "input", "thr", "cbctiq sl/s",
           "cpu ms", "GF/cs", "torch sl/s", "cpu ms", "r wall", "r cpu");
    for (size_t si = 0; si < n_sides; si++) {
        const int side = sides[si];
        if (!quick && filter.size && filter.size != side)
            continue;
        if (peer)
            verify(tmp, side);
        const double fwd = forward_flops(side);
        for (int train = 1; train >= 0; train--)
            for (int threads = 1; threads <= max_threads; threads++) {
                if (!quick && !keep_row(&filter, train, side, threads))
                    continue;
                speed ours = time_cbctiq(train, side, batch, threads, min_s);
                speed theirs = peer ? time_peer(train, side, batch, threads, min_s) : (speed){NAN, NAN};
                /* training: forward, weight gradients, input gradients (all but the stem's) */
                const double flops = train ? 3.0 * fwd : fwd;
                char input[16];
                snprintf(input, sizeof input, "%dx%d", side, side);
                printf("%-6s %-8s %3d %11.2f %7.1f %7.1f %10.2f %7.1f %7.2f %7.2f\n",
                       train ? "train" : "infer", input, threads, ours.slices_per_s,
                       ours.cpu_ms_per_slice, flops / (ours.cpu_ms_per_slice * 1e6),
                       theirs.slices_per_s, theirs.cpu_ms_per_slice,
                       ours.slices_per_s / theirs.slices_per_s,
                       theirs.cpu_ms_per_slice / ours.cpu_ms_per_slice);
                fflush(stdout);
            }
        printf("%dx%d: %.3f GFLOP forward per slice (conv + linear)\n", side, side, fwd / 1e9);
    }
    return 0;
}
