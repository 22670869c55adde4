/* bench_net.c - whole-network speed of iqnet-s (as built by
 * bench/peer_torch.py: 4 stages of 2x [conv3x3-BN-ReLU], 16/32/64/128
 * channels, max-pool between stages, global average pool, dropout 0.2,
 * linear 128->5): training step (Adam, MSE) and inference in slices/s,
 * next to PyTorch timing the same network in the same run.
 *
 *   bench_net [--threads N] [--batch B] [--size S] [--reps R] [--no-peer]
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, popen under -std=c11 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cbctiq/net.h"
#include "cbctiq/optim.h"
#include "cbctiq/train.h"

#ifndef CBQ_SOURCE_DIR
#define CBQ_SOURCE_DIR "."
#endif

static double now(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static size_t build_iqnet_s(cbq_layer_spec *l)
{
    size_t n = 0;
    int cin = 1;
    const int chans[4] = {16, 32, 64, 128};
    for (int s = 0; s < 4; s++) {
        for (int j = 0; j < 2; j++) {
            cbq_layer_spec c = {.kind = CBQ_LAYER_CONV2D,
                                .cfg.conv = {j ? chans[s] : cin, chans[s], 3, 3, 1, 1, 1, 1, 1}};
            snprintf(c.name, sizeof c.name, "s%d.conv%d", s + 1, j + 1);
            l[n++] = c;
            cbq_layer_spec b = {.kind = CBQ_LAYER_BATCHNORM2D, .cfg.bn = {chans[s], 1e-5, 0.1}};
            snprintf(b.name, sizeof b.name, "s%d.bn%d", s + 1, j + 1);
            l[n++] = b;
            cbq_layer_spec r = {.kind = CBQ_LAYER_RELU};
            snprintf(r.name, sizeof r.name, "s%d.relu%d", s + 1, j + 1);
            l[n++] = r;
        }
        cin = chans[s];
        if (s < 3) {
            cbq_layer_spec p = {.kind = CBQ_LAYER_MAXPOOL2D, .cfg.pool = {2, 2, 2, 2, 0, 0}};
            snprintf(p.name, sizeof p.name, "s%d.pool", s + 1);
            l[n++] = p;
        }
    }
    l[n++] = (cbq_layer_spec){.name = "gap", .kind = CBQ_LAYER_GLOBAL_AVGPOOL};
    l[n++] = (cbq_layer_spec){.name = "drop", .kind = CBQ_LAYER_DROPOUT, .cfg.dropout = {0.2}};
    l[n++] = (cbq_layer_spec){.name = "head", .kind = CBQ_LAYER_LINEAR, .cfg.linear = {128, 5, 1}};
    return n;
}

static int read_peer(int threads, size_t batch, size_t size, int reps, double v[4])
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/bench/peer_torch.py net --threads %d --batch %zu --size %zu --reps %d",
             CBQ_SOURCE_DIR, threads, batch, size, reps);
    FILE *f = popen(cmd, "r");
    if (!f)
        return 0;
    char line[512];
    int ok = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "net %lf %lf %lf %lf", &v[0], &v[1], &v[2], &v[3]) == 4)
            ok = 1;
    return pclose(f) == 0 && ok;
}

int main(int argc, char **argv)
{
    int threads = 2, peer = 1, reps = 5;
    size_t batch = 32, size = 128;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = (size_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = (size_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-peer"))
            peer = 0;
        else {
            fprintf(stderr, "usage: bench_net [--threads N] [--batch B] [--size S] [--reps R] [--no-peer]\n");
            return 2;
        }
    }
    cbq_layer_spec layers[40];
    cbq_model_spec spec = {.arch = "iqnet-s", .input = {(int)size, (int)size, -1000, 1000},
                           .layers = layers, .n_outputs = 5};
    spec.n_layers = build_iqnet_s(layers);
    cbq_net *net = NULL;
    cbq_optim *opt = NULL;
    cbq_error err = {0};
    cbq_optim_cfg oc = cbq_optim_defaults(CBQ_OPTIM_ADAM);
    if (cbq_net_create(&net, &spec, batch, 1, &err) || cbq_optim_create(&opt, net, &oc, &err)) {
        fprintf(stderr, "bench_net: %s\n", err.msg);
        return 1;
    }
    cbq_net_set_threads(net, threads);
    threads = cbq_net_threads(net);
    size_t count = batch * size * size;
    float *in = malloc(count * sizeof *in), *tgt = malloc(batch * 5 * sizeof *tgt);
    cbq_rng rng;
    cbq_rng_seed(&rng, 2);
    for (size_t i = 0; i < count; i++)
        in[i] = (float)cbq_rng_uniform(&rng);
    for (size_t i = 0; i < batch * 5; i++)
        tgt[i] = (float)(1.0 + 4.0 * cbq_rng_uniform(&rng));
    cbq_loss_cfg lc = {CBQ_LOSS_MSE, 0};
    double best[2] = {1e30, 1e30}, cpu[2] = {0, 0};
    for (int mode = 0; mode < 2; mode++) {
        for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
            double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
            int rc;
            if (mode == 0) {
                rc = cbq_train_step(net, opt, in, tgt, batch, &lc, 0.0, NULL, NULL, &err);
            } else {
                cbq_net_set_training(net, 0);
                rc = cbq_net_forward(net, in, batch, NULL, &err);
            }
            if (rc) {
                fprintf(stderr, "bench_net: %s\n", err.msg);
                return 1;
            }
            double w = now(CLOCK_MONOTONIC) - w0, c = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
            if (r >= 0 && w < best[mode]) {
                best[mode] = w;
                cpu[mode] = c;
            }
        }
    }
    double pv[4];
    int have_peer = peer && read_peer(threads, batch, size, reps, pv);
    double fl = cbq_net_forward_flops(net);
    printf("bench_net: iqnet-s %zux%zu, batch %zu, %d threads, %.3f GFLOP forward per slice\n",
           size, size, batch, threads, fl * 1e-9);
    const char *names[2] = {"training step", "inference"};
    for (int m = 0; m < 2; m++) {
        printf("%-14s cbctiq %7.1f slices/s (%.1f ms/batch, %.2f cores busy)", names[m],
               (double)batch / best[m], best[m] * 1e3, cpu[m] / best[m]);
        if (have_peer)
            printf("  PyTorch %7.1f slices/s (%.1f ms, %.2f cores)  ratio wall %.2f, CPU time %.2f",
                   (double)batch / (pv[m] * 1e-3), pv[m], pv[m + 2] / pv[m],
                   pv[m] / (best[m] * 1e3), pv[m + 2] / (cpu[m] * 1e3));
        printf("\n");
    }
    if (peer && !have_peer)
        printf("(PyTorch peer unavailable)\n");
    printf("(ratio = PyTorch time / cbctiq time; > 1 means cbctiq is faster)\n");
    free(in);
    free(tgt);
    cbq_optim_free(opt);
    cbq_net_free(net);
    return 0;
}
