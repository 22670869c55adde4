/* bench_iqnet.c - whole-network speed of iqnet-s: training steps
 * (128x128 batch 32, 256x256 batch 16) and inference (128x128 batch 32) in
 * slices per second with 1 and 2 threads, against PyTorch CPU measured in the
 * same run (bench/peer_iqnet_torch.py, torch.set_num_threads(N)) on the same
 * model.json. Prints GFLOP per CPU-second and, for both sides, its fraction
 * of the SGEMM ceiling measured on this CPU in the same run.
 *
 * Before timing it verifies the net: eval-mode outputs of a batch equal those
 * of each slice run alone, and a training step gives a finite loss.
 *
 * Then peak memory: the peak resident set of a process that makes the net
 * and runs two training steps (batch 32, 2 threads), against PyTorch's doing
 * the same, each in a fresh process (bench_iqnet runs itself with
 * --peak-rss-child SIDE BATCH).
 *
 *   bench_iqnet [--min-seconds S] [--no-peer] [--quick]
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cbctiq/gemm.h"
#include "cbctiq/model_json.h"
#include "cbctiq/net.h"
#include "cbctiq/optim.h"
#include "cbctiq/preset.h"
#include "cbctiq/progress.h"
#include "cbctiq/rng.h"
#include "cbctiq/train.h"

#include "support.h"
#include <time.h>


typedef struct {
    const char *mode; /* "train" or "infer" */
    int side;
    size_t batch;
} bench_case;

typedef bench_speed speed;

static int fail(const char *what, const cbq_error *err)
{
    fprintf(stderr, "bench_iqnet: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

/* Eval-mode batch outputs must equal per-slice outputs (up to GEMM blocking). */
static void verify(cbq_net *net, const float *x, size_t batch, size_t plane, size_t k)
{
    cbq_error err = {0};
    const float *out = NULL;
    cbq_net_set_training(net, 0);
    if (cbq_net_forward(net, x, batch, &out, &err) != CBQ_OK)
        fail("forward", &err);
    float *all = malloc(batch * k * sizeof *all);
    memcpy(all, out, batch * k * sizeof *all);
    double worst = 0.0, scale = 1e-12;
    for (size_t i = 0; i < batch; i += batch > 4 ? batch / 4 : 1) {
        if (cbq_net_forward(net, x + i * plane, 1, &out, &err) != CBQ_OK)
            fail("forward", &err);
        for (size_t j = 0; j < k; j++) {
            worst = fmax(worst, fabs(out[j] - all[i * k + j]));
            scale = fmax(scale, fabs(all[i * k + j]));
            if (!isfinite(out[j]))
                fail("verification: non-finite output", NULL);
        }
    }
    free(all);
    if (worst / scale > 1e-4) {
        fprintf(stderr, "bench_iqnet: verification failed: batch vs single rel err %.2e\n", worst / scale);
        exit(1);
    }
}

static speed time_cbctiq(const bench_case *c, int threads, double min_s, double *fwd_flops,
                         double *first_flops)
{
    cbq_preset_opts o = {.input = c->side};
    cbq_model_spec spec;
    cbq_error err = {0};
    if (cbq_preset_build(&spec, "iqnet-s", &o, &err) != CBQ_OK)
        fail("preset", &err);
    cbq_net *net = NULL;
    int train = strcmp(c->mode, "train") == 0;
    if ((train ? cbq_net_create_training : cbq_net_create)(&net, &spec, c->batch, 1, &err) != CBQ_OK)
        fail("net", &err);
    /* inference reads the output only, as cbctiq predict does */
    if (!train && cbq_net_keep_activations_from(net, spec.n_layers - 1, &err) != CBQ_OK)
        fail("net", &err);
    cbq_net_set_threads(net, threads);
    size_t plane = (size_t)c->side * (size_t)c->side, k = spec.n_outputs;
    const cbq_layer_spec *l0 = &spec.layers[0];
    *first_flops = 2.0 * l0->cfg.conv.out_channels * l0->cfg.conv.kernel_h * l0->cfg.conv.kernel_w * (double)plane;
    cbq_model_spec_free(&spec);
    *fwd_flops = cbq_net_forward_flops(net);
    float *x = malloc(c->batch * plane * sizeof *x), *y = malloc(c->batch * k * sizeof *y);
    cbq_rng rng;
    cbq_rng_seed(&rng, 7);
    for (size_t i = 0; i < c->batch * plane; i++)
        x[i] = (float)cbq_rng_uniform(&rng);
    for (size_t i = 0; i < c->batch * k; i++)
        y[i] = (float)cbq_rng_uniform(&rng);
    verify(net, x, c->batch, plane, k);

    speed v;
    if (bench_time_net_steps(net, x, y, c->batch, train, 3, min_s, &v, &err) != CBQ_OK)
        fail("step", &err);
    cbq_net_free(net);
    free(x);
    free(y);
    return v;
}

static speed time_peer(const char *json, const bench_case *c, int threads, double min_s)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' '%s/bench/peer_iqnet_torch.py' '%s' %d %s %zu %g 2>&1", CBQ_PYTHON,
             CBQ_SOURCE_DIR, json, threads, c->mode, c->batch, min_s);
    speed v;
    if (bench_run_peer(cmd, &v) != 0)
        fail("the PyTorch peer failed", NULL);
    return v;
}

/* The child of the memory table: the net for `batch` slices of side x side,
 * two training steps, its peak resident set in KiB on stdout. */
static int peak_rss_child(int side, size_t batch)
{
    cbq_preset_opts o = {.input = side};
    cbq_model_spec spec;
    cbq_error err = {0};
    cbq_net *net = NULL;
    cbq_optim *opt = NULL;
    cbq_optim_cfg ocfg = cbq_optim_defaults(CBQ_OPTIM_ADAM);
    if (cbq_preset_build(&spec, "iqnet-s", &o, &err) != CBQ_OK || cbq_net_create_training(&net, &spec, batch, 1, &err) != CBQ_OK ||
        cbq_optim_create(&opt, net, &ocfg, &err) != CBQ_OK)
        fail("memory: the net", &err);
    cbq_net_set_threads(net, 2);
    size_t plane = (size_t)side * (size_t)side, k = spec.n_outputs;
    float *x = malloc(batch * plane * sizeof *x), *y = calloc(batch * k, sizeof *y);
    cbq_rng rng;
    cbq_rng_seed(&rng, 7);
    for (size_t i = 0; i < batch * plane; i++)
        x[i] = (float)cbq_rng_uniform(&rng);
    cbq_loss_cfg loss = {.kind = CBQ_LOSS_MSE};
    cbq_net_set_training(net, 1);
    for (int step = 0; step < 2; step++) {
        double l = 0.0;
        if (cbq_train_step(net, opt, x, y, batch, &loss, 0.0, &l, NULL, &err) != CBQ_OK || !isfinite(l))
            fail("memory: training step", &err);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak_rss_kb %ld\n", ru.ru_maxrss);
    return 0;
}

/* Runs cmd and returns the number after "peak_rss_kb" in its output, in MiB. */
static double peak_rss_of(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    char line[512];
    long kb = -1;
    while (p && fgets(line, sizeof line, p))
        if (sscanf(line, "peak_rss_kb %ld", &kb) != 1)
            fputs(line, stderr);
    if (!p || pclose(p) != 0 || kb < 0)
        fail("memory: the measuring process failed", NULL);
    return (double)kb / 1024.0;
}

/* model.json of iqnet-s at this input size, for the peer. */
static void write_json(char *path, size_t cap, const char *dir, int side)
{
    cbq_preset_opts o = {.input = side};
    cbq_model_spec spec;
    cbq_error err = {0};
    snprintf(path, cap, "%s/iqnet-s-%d.json", dir, side);
    if (cbq_preset_build(&spec, "iqnet-s", &o, &err) != CBQ_OK || cbq_model_json_write(&spec, path, &err) != CBQ_OK)
        fail("writing model.json", &err);
    cbq_model_spec_free(&spec);
}

/* Peak resident set of training, ours and PyTorch's, each in a fresh process. */
static void print_memory(int quick, int peer, const char *tmp)
{
    static const int full_sides[] = {128, 256, 512}, quick_sides[] = {64};
    const int *sides = quick ? quick_sides : full_sides;
    size_t n_sides = quick ? 1 : 3, batch = quick ? 4 : 32;
    printf("peak memory, training batch %zu, 2 threads (peak RSS of the whole process, MiB; ratio < 1: "
           "cbctiq smaller)\n", batch);
    printf("%-8s %10s %10s %7s\n", "input", "cbctiq", "torch", "ratio");
    for (size_t i = 0; i < n_sides; i++) {
        char cmd[4096], json[1024];
        snprintf(cmd, sizeof cmd, "/proc/%ld/exe --peak-rss-child %d %zu", (long)getpid(), sides[i], batch);
        double ours = peak_rss_of(cmd), theirs = NAN;
        if (peer) {
            write_json(json, sizeof json, tmp, sides[i]);
            snprintf(cmd, sizeof cmd, "'%s' '%s/bench/peer_iqnet_torch.py' '%s' 2 memory %zu 0 2>&1", CBQ_PYTHON,
                     CBQ_SOURCE_DIR, json, batch);
            theirs = peak_rss_of(cmd);
            remove(json);
        }
        char input[16];
        snprintf(input, sizeof input, "%dx%d", sides[i], sides[i]);
        printf("%-8s %10.0f %10.0f %7.2f\n", input, ours, theirs, ours / theirs);
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    double min_s = 3.0;
    int peer = 1, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--min-seconds") == 0 && i + 1 < argc)
            min_s = atof(argv[++i]);
        else if (strcmp(argv[i], "--no-peer") == 0)
            peer = 0;
        else if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--peak-rss-child") == 0 && i + 2 < argc)
            return peak_rss_child(atoi(argv[i + 1]), (size_t)atol(argv[i + 2]));
        else {
            fprintf(stderr, "usage: bench_iqnet [--min-seconds S] [--no-peer] [--quick]\n");
            return 2;
        }
    }
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    double fwd128 = 0.0, first128 = 0.0;
    static const bench_case full_cases[] = {{"train", 128, 32}, {"train", 256, 16}, {"infer", 128, 32}};
    /* --quick: every code path once, on sizes that take seconds (the test bench_quick). */
    static const bench_case quick_cases[] = {{"train", 128, 4}, {"infer", 128, 4}};
    const bench_case *cases = quick ? quick_cases : full_cases;
    size_t n_cases = quick ? 2 : sizeof full_cases / sizeof full_cases[0];
    if (quick)
        min_s = 0.0;
    cbq_threads_init(1); /* OpenBLAS single-threaded before the ceiling is measured */
    const double ceiling = bench_sgemm_ceiling() * 1e9;
    printf("bench_iqnet: iqnet-s, float32, OpenBLAS SGEMM (1 BLAS thread, OpenMP around it); "
           "SGEMM 1024^3 on this CPU: %.1f GFLOP per CPU-second\n", ceiling / 1e9);
    printf("wall: slices/s; cpu: CPU-ms per slice (all threads); ratios > 1: cbctiq faster\n");
    printf("%-6s %-8s %5s %3s %11s %7s %9s %6s %10s %7s %6s %7s %7s\n", "mode", "input", "batch", "thr",
           "cbctiq sl/s", "cpu ms", "GF/cpu-s", "%ceil", "torch sl/s", "cpu ms", "%ceil", "r wall", "r cpu");
    for (size_t ci = 0; ci < n_cases; ci++) {
        const bench_case *c = &cases[ci];
        char json[1024];
        write_json(json, sizeof json, tmp, c->side);
        for (int threads = 1; threads <= 2; threads++) {
            double fwd = 0.0, first = 0.0;
            speed ours = time_cbctiq(c, threads, min_s, &fwd, &first);
            if (c->side == 128)
                fwd128 = fwd, first128 = first;
            /* Training: forward + weight gradients + input gradients except the first layer's. */
            double flops = strcmp(c->mode, "train") == 0 ? 3.0 * fwd - first : fwd;
            speed theirs = peer ? time_peer(json, c, threads, min_s) : (speed){NAN, NAN};
            char input[16];
            snprintf(input, sizeof input, "%dx%d", c->side, c->side);
            /* %ceil: GFLOP per CPU-second over the SGEMM ceiling, so threads and load cancel. */
            printf("%-6s %-8s %5zu %3d %11.2f %7.1f %9.1f %5.1f%% %10.2f %7.1f %5.1f%% %7.2f %7.2f\n", c->mode,
                   input, c->batch, threads, ours.slices_per_s, ours.cpu_ms_per_slice,
                   flops / (ours.cpu_ms_per_slice * 1e6), 100.0 * flops / (ours.cpu_ms_per_slice * 1e-3 * ceiling),
                   theirs.slices_per_s, theirs.cpu_ms_per_slice, 100.0 * flops / (theirs.cpu_ms_per_slice * 1e-3 * ceiling),
                   ours.slices_per_s / theirs.slices_per_s, theirs.cpu_ms_per_slice / ours.cpu_ms_per_slice);
            fflush(stdout);
        }
        remove(json);
    }
    printf("FLOPs per slice (conv/linear): 128x128 forward %.3f GFLOP, training step %.3f GFLOP\n",
           fwd128 / 1e9, (3.0 * fwd128 - first128) / 1e9);
    print_memory(quick, peer, tmp);
    return 0;
}
