/* bench_gradcam.c - speed of Grad-CAM + Attribution Energy: one 96-slice
 * 128x128 volume, iqnet-s, all five categories (one forward per batch, one
 * partial backward per category), with 1 and 2 threads, against PyTorch CPU
 * in the same run (bench/peer_gradcam_torch.py, torch.set_num_threads(N)) on
 * the same model directory and slices.
 *
 * Reports the best wall time of --repeats runs and that run's process CPU
 * time on both sides (CPU time is the steadier figure on a shared machine).
 *
 * Verifies before timing: the Grad-CAM identity on the volume (pre-ReLU
 * feature-grid AE = sum of (y - b), 1e-4), and after timing that PyTorch's AE
 * equals ours (1e-4 relative).
 *
 *   bench_gradcam [--slices N] [--batch B] [--repeats R] [--no-peer]
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, popen */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cbctiq/attrib.h"
#include "cbctiq/model_file.h"
#include "cbctiq/preset.h"
#include "cbctiq/progress.h"
#include "cbctiq/rng.h"

#include "support.h"

static void die(const char *what, const cbq_error *err)
{
    fprintf(stderr, "bench_gradcam: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

typedef struct {
    size_t n_slices, batch;
    int repeats, peer;
} bench_opts;

/* Best wall time of `repeats` runs; *cpu gets the CPU time of that run. */
static double run_ours(cbq_cam *cam, const float *x, size_t n, cbq_ae *ae, int repeats, double *cpu)
{
    double best = INFINITY;
    cbq_error err = {0};
    for (int r = 0; r < repeats; r++) {
        double t0 = cbq_now(), c0 = bench_cpu_seconds();
        if (cbq_attrib_volume(cam, x, n, NULL, ae, NULL, NULL, NULL, &err) != CBQ_OK)
            die("attribution", &err);
        double t = cbq_now() - t0;
        if (t < best) {
            best = t;
            *cpu = bench_cpu_seconds() - c0;
        }
        if (r + 1 < repeats)
            for (size_t c = 0; c < cbq_cam_n_outputs(cam); c++)
                cbq_ae_free(&ae[c]);
    }
    return best;
}

static void verify_identity(const cbq_cam *cam, const cbq_ae *ae)
{
    for (size_t c = 0; c < cbq_cam_n_outputs(cam); c++) {
        double diff = fabs(ae[c].ae_feature_pre - ae[c].pred_part);
        if (diff > 1e-4 * fmax(1.0, fabs(ae[c].pred_part)))
            die("identity check failed (pre-ReLU AE != sum of y - b)", NULL);
    }
    printf("verify: Grad-CAM identity holds for all %zu categories\n", cbq_cam_n_outputs(cam));
}

/* Runs the PyTorch peer; returns its best wall time (*cpu: that run's CPU
 * time) and fills its AE. */
static double run_peer(const char *dir, size_t n, int threads, size_t batch, int repeats, double *peer_ae,
                       size_t n_out, double *cpu)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s/bench/peer_gradcam_torch.py %s/model %s/slices.f32 %zu %d %zu %d",
             CBQ_PYTHON, CBQ_SOURCE_DIR, dir, dir, n, threads, batch, repeats);
    FILE *p = popen(cmd, "r");
    if (!p)
        die("cannot start the PyTorch peer", NULL);
    double seconds = NAN;
    char line[256];
    while (fgets(line, sizeof line, p)) {
        size_t c;
        double v;
        if (sscanf(line, "seconds %lf", &v) == 1)
            seconds = v;
        else if (sscanf(line, "cpu_seconds %lf", &v) == 1)
            *cpu = v;
        else if (sscanf(line, "ae %zu %lf", &c, &v) == 2 && c < n_out)
            peer_ae[c] = v;
    }
    if (pclose(p) != 0 || !isfinite(seconds))
        die("the PyTorch peer failed", NULL);
    return seconds;
}

int main(int argc, char **argv)
{
    bench_opts o = {.n_slices = 96, .batch = 32, .repeats = 3, .peer = 1};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--slices") && i + 1 < argc) o.n_slices = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) o.batch = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) o.repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-peer")) o.peer = 0;
        /* --quick: every code path once, in seconds (the test bench_quick) */
        else if (!strcmp(argv[i], "--quick")) o.n_slices = 8, o.batch = 4, o.repeats = 1;
        else { fprintf(stderr, "usage: bench_gradcam [--slices N] [--batch B] [--repeats R] [--no-peer] [--quick]\n"); return 2; }
    }
    cbq_error err = {0};
    cbq_model_spec spec;
    if (cbq_preset_build(&spec, "iqnet-s", NULL, &err) != CBQ_OK)
        die("preset", &err);
    cbq_net *net = NULL;
    if (cbq_net_create(&net, &spec, o.batch, 42, &err) != CBQ_OK)
        die("net", &err);
    char dir[] = "/tmp/cbq_bench_gradcam_XXXXXX", model[4096], slices_path[4096];
    if (!mkdtemp(dir))
        die("cannot create a temporary folder", NULL);
    snprintf(model, sizeof model, "%s/model", dir);
    snprintf(slices_path, sizeof slices_path, "%s/slices.f32", dir);
    if (cbq_model_save(model, net, &err) != CBQ_OK)
        die("save", &err);
    size_t side = (size_t)spec.input.height, n = o.n_slices;
    float *x = bench_synthetic_slices(n, side);
    if (!x)
        die("out of memory", NULL);
    FILE *fp = fopen(slices_path, "wb");
    if (!fp || fwrite(x, sizeof *x, n * side * side, fp) != n * side * side || fclose(fp))
        die("cannot write the slices", NULL);

    cbq_attrib_options opt;
    cbq_attrib_options_default(&opt);
    cbq_cam *cam = NULL;
    if (cbq_cam_create(&cam, net, o.batch, &opt, &err) != CBQ_OK)
        die("cam", &err);
    size_t n_out = cbq_cam_n_outputs(cam);
    printf("bench_gradcam: iqnet-s %zux%zu, %zu slices, batch %zu, %zu categories, Grad-CAM at %s, "
           "BLAS OpenBLAS\n", side, side, n, o.batch, n_out, cbq_cam_target_name(cam));
    for (int threads = 1; threads <= 2; threads++) {
        cbq_net_set_threads(net, threads);
        cbq_ae ae[CBQ_MAX_OUTPUTS];
        double cpu_ours = NAN, cpu_peer = NAN;
        double t_ours = run_ours(cam, x, n, ae, o.repeats, &cpu_ours);
        if (threads == 1)
            verify_identity(cam, ae);
        printf("threads %d: cbctiq %.3f s wall (%.2f ms/slice, all categories), %.3f s CPU", threads,
               t_ours, 1e3 * t_ours / (double)n, cpu_ours);
        if (o.peer) {
            double peer_ae[CBQ_MAX_OUTPUTS] = {0};
            double t_peer = run_peer(dir, n, threads, o.batch, o.repeats, peer_ae, n_out, &cpu_peer);
            double worst = 0.0;
            for (size_t c = 0; c < n_out; c++)
                worst = fmax(worst, fabs(ae[c].ae - peer_ae[c]) / fmax(fabs(peer_ae[c]), 1e-30));
            printf("; PyTorch %.3f s wall, %.3f s CPU; ratio %.2fx wall, %.2fx CPU; AE agrees to %.1e%s",
                   t_peer, cpu_peer, t_peer / t_ours, cpu_peer / cpu_ours, worst,
                   worst <= 1e-4 ? "" : " (MISMATCH)");
            if (worst > 1e-4) {
                printf("\n");
                die("PyTorch's AE differs from ours", NULL);
            }
        }
        printf("\n");
        for (size_t c = 0; c < n_out; c++)
            cbq_ae_free(&ae[c]);
    }
    char rm[4200];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    if (system(rm) != 0)
        fprintf(stderr, "bench_gradcam: could not remove %s\n", dir);
    cbq_cam_free(cam);
    cbq_net_free(net);
    cbq_model_spec_free(&spec);
    free(x);
    return 0;
}
