/* bench_curves.c - speed of the deletion/insertion curves (faithfulness.h):
 * iqnet-s at the study's 64x64 input, all five categories, map order and
 * random order, 20 steps, on N slices of one volume, with 1 and 2 threads,
 * against the same curves in PyTorch CPU in the same run
 * (bench/peer_curves_torch.py: the same model directory, slices, maps and
 * orders, perturbed images batched through a no-grad forward).
 *
 * Verifies: the Grad-CAM maps come from cbctiq; after timing, PyTorch's
 * four AUCs of every category must equal ours (1e-4 of the curve's scale).
 * Also prints the cost of the curves against the AE of the same slices
 * (Grad-CAM of all categories), the ratio the attrib stage pays per slice.
 *
 *   bench_curves [--slices N] [--batch B] [--repeats R] [--no-peer]
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, popen */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cbctiq/attrib.h"
#include "cbctiq/faithfulness.h"
#include "cbctiq/model_file.h"
#include "cbctiq/preset.h"
#include "cbctiq/progress.h"
#include "cbctiq/rng.h"

#include "support.h"

static void die(const char *what, const cbq_error *err)
{
    fprintf(stderr, "bench_curves: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

static void write_f32(const char *path, const float *v, size_t count)
{
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(v, sizeof *v, count, fp) != count || fclose(fp))
        die("cannot write", NULL);
}

typedef struct {
    cbq_net *net;
    cbq_cam *cam;
    const float *x;
    size_t n, side, batch, n_out;
    float *maps[CBQ_MAX_OUTPUTS];
    cbq_faith_options opt;
} bench;

static double time_ae(bench *b, int repeats, double *cpu)
{
    double best = INFINITY;
    cbq_error err = {0};
    for (int r = 0; r < repeats; r++) {
        cbq_ae ae[CBQ_MAX_OUTPUTS];
        double t0 = cbq_now(), c0 = bench_cpu_seconds();
        if (cbq_attrib_volume(b->cam, b->x, b->n, NULL, ae, b->maps, NULL, NULL, &err) != CBQ_OK)
            die("attribution", &err);
        double t = cbq_now() - t0;
        if (t < best) {
            best = t;
            *cpu = bench_cpu_seconds() - c0;
        }
        for (size_t c = 0; c < b->n_out; c++)
            cbq_ae_free(&ae[c]);
    }
    return best;
}

static double time_curves(bench *b, int repeats, cbq_faith_curves *cur, double *cpu)
{
    double best = INFINITY;
    cbq_error err = {0};
    for (int r = 0; r < repeats; r++) {
        double t0 = cbq_now(), c0 = bench_cpu_seconds();
        if (cbq_faith_curves_compute(cbq_faith_net_score, b->net, b->batch, b->n_out, b->x, b->n,
                                     b->side, b->side, (const float *const *)b->maps, &b->opt, cur,
                                     &err) != CBQ_OK)
            die("curves", &err);
        double t = cbq_now() - t0;
        if (t < best) {
            best = t;
            *cpu = bench_cpu_seconds() - c0;
        }
    }
    return best;
}

/* Runs the PyTorch peer: its best wall time, *cpu, and its AUCs [n_out][4]. */
static double run_peer(const char *dir, const bench *b, int threads, int repeats, double (*auc)[4],
                       double *cpu)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "%s %s/bench/peer_curves_torch.py %s/model %s/slices.f32 %s/maps.f32 %zu %d %zu %d %g "
             "%llu",
             CBQ_PYTHON, CBQ_SOURCE_DIR, dir, dir, dir, b->n, threads, b->batch, repeats,
             b->opt.blur_sigma, (unsigned long long)b->opt.seed);
    FILE *p = popen(cmd, "r");
    if (!p)
        die("cannot start the PyTorch peer", NULL);
    double seconds = NAN;
    char line[256];
    while (fgets(line, sizeof line, p)) {
        size_t c;
        double v, a[4];
        if (sscanf(line, "seconds %lf", &v) == 1)
            seconds = v;
        else if (sscanf(line, "cpu_seconds %lf", &v) == 1)
            *cpu = v;
        else if (sscanf(line, "auc %zu %lf %lf %lf %lf", &c, &a[0], &a[1], &a[2], &a[3]) == 5 &&
                 c < b->n_out)
            memcpy(auc[c], a, sizeof a);
    }
    if (pclose(p) != 0 || !isfinite(seconds))
        die("the PyTorch peer failed", NULL);
    return seconds;
}

static double worst_auc_diff(const bench *b, const cbq_faith_curves *cur, double (*peer)[4])
{
    double worst = 0.0;
    for (size_t c = 0; c < b->n_out; c++) {
        if (!cur[c].computed)
            continue; /* a zero map (an untrained model's category): no curves to compare */
        const double ours[4] = {cur[c].deletion_auc, cur[c].insertion_auc,
                                cur[c].deletion_auc_random, cur[c].insertion_auc_random};
        for (int k = 0; k < 4; k++) {
            worst = fmax(worst, fabs(ours[k] - peer[c][k]));
            if (getenv("CBQ_BENCH_DEBUG"))
                fprintf(stderr, "c %zu k %d ours %.9g peer %.9g (orig %.9g base %.9g)\n", c, k,
                        ours[k], peer[c][k], cur[c].score_original, cur[c].score_baseline);
        }
    }
    return worst;
}

static void setup(bench *b, size_t n, size_t batch, char *dir)
{
    cbq_error err = {0};
    cbq_model_spec spec;
    cbq_preset_opts po = {.input = 64};
    if (cbq_preset_build(&spec, "iqnet-s", &po, &err) != CBQ_OK)
        die("preset", &err);
    if (cbq_net_create(&b->net, &spec, batch, 42, &err) != CBQ_OK)
        die("net", &err);
    cbq_model_spec_free(&spec);
    b->side = (size_t)cbq_net_spec(b->net)->input.height;
    b->n = n;
    b->batch = batch;
    char path[4096];
    snprintf(path, sizeof path, "%s/model", dir);
    if (cbq_model_save(path, b->net, &err) != CBQ_OK)
        die("save", &err);
    float *x = bench_synthetic_slices(n, b->side);
    if (!x)
        die("out of memory", NULL);
    b->x = x;
    snprintf(path, sizeof path, "%s/slices.f32", dir);
    write_f32(path, x, n * b->side * b->side);
    cbq_attrib_options opt;
    cbq_attrib_options_default(&opt);
    if (cbq_cam_create(&b->cam, b->net, batch, &opt, &err) != CBQ_OK)
        die("cam", &err);
    b->n_out = cbq_cam_n_outputs(b->cam);
    size_t plane = n * b->side * b->side;
    float *all = malloc(b->n_out * plane * sizeof *all);
    if (!all)
        die("out of memory", NULL);
    for (size_t c = 0; c < b->n_out; c++)
        b->maps[c] = all + c * plane;
    cbq_faith_options_default(&b->opt, b->side, b->side);
}

int main(int argc, char **argv)
{
    size_t n = 4, batch = 64;
    int repeats = 3, peer = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--slices") && i + 1 < argc) n = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-peer")) peer = 0;
        /* --quick: every step and the peer once, in seconds (the test bench_quick) */
        else if (!strcmp(argv[i], "--quick")) n = 1, batch = 16, repeats = 1;
        else { fprintf(stderr, "usage: bench_curves [--slices N] [--batch B] [--repeats R] [--no-peer] [--quick]\n"); return 2; }
    }
    char dir[] = "/tmp/cbq_bench_curves_XXXXXX", path[4096];
    if (!mkdtemp(dir))
        die("cannot create a temporary folder", NULL);
    bench b = {0};
    setup(&b, n, batch, dir);
    double cpu_ae = NAN;
    time_ae(&b, 1, &cpu_ae); /* also fills the maps */
    snprintf(path, sizeof path, "%s/maps.f32", dir);
    write_f32(path, b.maps[0], b.n_out * n * b.side * b.side);
    printf("bench_curves: iqnet-s %zux%zu, %zu slices, batch %zu, %zu categories, %d steps, blur "
           "sigma %.1f px, map + random order\n", b.side, b.side, n, batch, b.n_out, CBQ_CURVE_STEPS,
           b.opt.blur_sigma);
    for (int threads = 1; threads <= 2; threads++) {
        cbq_net_set_threads(b.net, threads);
        cbq_faith_curves cur[CBQ_MAX_OUTPUTS];
        double cpu_ours = NAN, cpu_peer = NAN;
        time_ae(&b, repeats, &cpu_ae);
        double t_ours = time_curves(&b, repeats, cur, &cpu_ours);
        size_t computed = 0;
        for (size_t c = 0; c < b.n_out; c++)
            computed += (size_t)cur[c].computed;
        printf("threads %d: cbctiq curves of %zu categories %.3f s wall (%.1f ms/slice), %.3f s "
               "CPU; %.1fx the CPU time of the AE of the same slices (%.3f s CPU)", threads,
               computed, t_ours, 1e3 * t_ours / (double)n, cpu_ours, cpu_ours / cpu_ae, cpu_ae);
        if (peer) {
            double peer_auc[CBQ_MAX_OUTPUTS][4];
            double t_peer = run_peer(dir, &b, threads, repeats, peer_auc, &cpu_peer);
            double worst = worst_auc_diff(&b, cur, peer_auc);
            printf("; PyTorch %.3f s wall, %.3f s CPU; ratio %.2fx wall, %.2fx CPU; AUCs agree to "
                   "%.1e%s", t_peer, cpu_peer, t_peer / t_ours, cpu_peer / cpu_ours, worst,
                   worst <= 1e-4 ? "" : " (MISMATCH)");
            if (!(worst <= 1e-4)) {
                printf("\n");
                die("PyTorch's AUCs differ from ours", NULL);
            }
        }
        printf("\n");
    }
    char rm[4200];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    if (system(rm) != 0)
        fprintf(stderr, "bench_curves: could not remove %s\n", dir);
    free(b.maps[0]);
    free((float *)b.x);
    cbq_cam_free(b.cam);
    cbq_net_free(b.net);
    return 0;
}
