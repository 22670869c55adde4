/* bench_sim.c - speed of the simulator's kernels on the default cohort
 * geometry (128 x 128 x 96 at 2 mm, 184 x 144 panel, 200 projections):
 * Joseph projector (rays/s), FDK (voxel updates/s, filtering included) and
 * one whole simulated case. Verifies before it times: the phantom's water
 * region must reconstruct near 0 HU without physics. Prints wall and CPU
 * seconds (CPU/wall shows how busy the machine was).
 *
 * usage: bench_sim [THREADS] [--quick]   (--quick: a 64 x 64 x 48 grid and
 * 100 projections, every code path once in seconds: the test bench_quick) */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, popen under -std=c11 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cbctiq/progress.h"
#include "cbctiq/sim.h"

#include "support.h"

int main(int argc, char **argv)
{
    int threads = 2, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (atoi(argv[i]) > 0)
            threads = atoi(argv[i]);
        else {
            fprintf(stderr, "usage: bench_sim [THREADS] [--quick]\n");
            return 2;
        }
    }
    omp_set_num_threads(threads);
    const size_t side = quick ? 64 : 128, depth = quick ? 48 : 96, n_proj = quick ? 100 : 200;
    const double voxel = quick ? 4.0 : 2.0;
    cbq_rng rng;
    cbq_rng_stream(&rng, 1, 0);
    cbq_case_params cp;
    cbq_case_draw(&cp, side, depth, voxel, &rng);
    cbq_cb_geometry g;
    cbq_cb_geometry_default(&g, cp.geometry.nu, cp.geometry.nv, n_proj); /* the case's own panel */
    g.du = cp.geometry.du;
    g.dv = cp.geometry.dv;
    cbq_error err = {0};
    cbq_volume mu, rec, lab;
    double sp[3] = {voxel, voxel, voxel};
    if (cbq_volume_alloc(&mu, side, side, depth, sp, 0, &err) || cbq_volume_alloc(&rec, side, side, depth, sp, 0, &err) ||
        cbq_volume_alloc(&lab, side, side, depth, sp, 0, &err) ||
        cbq_phantom_rasterise(&cp.anatomy, 0.0, &mu, &lab, &err)) {
        fprintf(stderr, "bench_sim: %s\n", err.msg);
        return 1;
    }
    cbq_hu_to_mu(&mu);
    float *proj = malloc(g.nu * g.nv * g.n_proj * sizeof(float));
    double rays = (double)(g.nu * g.nv * g.n_proj), upd = (double)(side * side * depth) * (double)g.n_proj;
    double w0 = cbq_now(), c0 = bench_cpu_seconds();
    if (!proj || cbq_sim_project(&mu, &g, 0, g.n_proj, NULL, proj, &err)) return 1;
    double w1 = cbq_now(), c1 = bench_cpu_seconds();
    if (cbq_fdk(proj, &g, CBQ_APOD_HANN, &rec, &err)) return 1;
    double w2 = cbq_now(), c2 = bench_cpu_seconds();
    cbq_mu_to_hu(&rec);
    /* Verify: muscle-like voxels far from bone agree with the phantom. */
    double s = 0;
    size_t n = 0;
    for (size_t v = 0; v < cbq_volume_count(&rec); v++) {
        float want = 1000.0f * (mu.data[v] / (float)CBQ_MU_WATER - 1.0f);
        if (want > 40 && want < 50 && lab.data[v] == 0) {
            s += rec.data[v] - want;
            n++;
        }
    }
    int ok = n > 1000 && s / (double)n < 30 && s / (double)n > -30;
    printf("verify: mean error in muscle %.1f HU over %zu voxels (%s)\n", s / (double)n, n, ok ? "ok" : "FAILED");
    if (!ok)
        return 1;
    printf("threads %d, panel %zu x %zu, %zu projections, grid %zux%zux%zu\n", threads, g.nu, g.nv, g.n_proj,
           side, side, depth);
    printf("projector: %.2f s wall (%.2f s CPU): %.3g rays/s wall, %.3g rays/s per CPU second\n", w1 - w0,
           c1 - c0, rays / (w1 - w0), rays / (c1 - c0));
    printf("FDK:       %.2f s wall (%.2f s CPU): %.3g voxel updates/s wall, %.3g per CPU second\n", w2 - w1,
           c2 - c1, upd / (w2 - w1), upd / (c2 - c1));
    cbq_volume img, ref, lab2;
    double w3 = cbq_now(), c3 = bench_cpu_seconds();
    if (cbq_case_simulate(&cp, side, depth, voxel, 7, &img, &ref, &lab2, &err)) return 1;
    double w4 = cbq_now(), c4 = bench_cpu_seconds();
    printf("one case:  %.2f s wall (%.2f s CPU)\n", w4 - w3, c4 - c3);
    return 0;
}
