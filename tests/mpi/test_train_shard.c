/* test_train_shard.c - data-parallel training steps (train.h,
 * cbq_net_set_dist), run as one process and under `mpirun -np 2` or more.
 *
 * Every rank builds two identical nets (a preset with batch norm): the
 * reference trains alone on the whole global batch with cbq_train_step,
 * exactly as one process does; the other trains on this rank's block of the
 * rows with cbq_train_step_shard, batch-norm statistics and gradients summed
 * over the ranks. Over 2 epochs of batches (the last one short) the global
 * loss of every step must equal the reference's to 1e-4 relative, and the
 * weights after them too; every rank must end with the same weight bits
 * (gathered on rank 0 and compared), and a second run of the sharded
 * training must give the same bits again. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/dist.h"
#include "cbctiq/net.h"
#include "cbctiq/optim.h"
#include "cbctiq/preset.h"
#include "cbctiq/rng.h"
#include "cbctiq/train.h"

enum { SIDE = 16, OUTPUTS = 5, SAMPLES = 22, BATCH = 8, EPOCHS = 2, STEPS_PER_EPOCH = 3 };

static int failures;

#define EXPECT(cond, ...)                                        \
    do {                                                         \
        if (!(cond)) {                                           \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                        \
            fprintf(stderr, "\n");                               \
            failures++;                                          \
        }                                                        \
    } while (0)

#define CHECK_OK(call)                                                   \
    do {                                                                 \
        if ((call) != CBQ_OK) {                                          \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, err.msg); \
            return 1;                                                    \
        }                                                                \
    } while (0)

typedef struct {
    cbq_net *net;
    cbq_optim *opt;
} trained;

static int make_net(trained *t, const cbq_dist *dist, cbq_error *err)
{
    cbq_preset_opts po = {.width = 4, .depth = 2, .input = SIDE};
    cbq_model_spec spec;
    CBQ_TRY(cbq_preset_build(&spec, "iqnet-s", &po, err));
    int rc = cbq_net_create_training(&t->net, &spec, BATCH, 11, err);
    cbq_model_spec_free(&spec);
    if (rc != CBQ_OK)
        return rc;
    cbq_net_set_threads(t->net, 1);
    cbq_optim_cfg oc = cbq_optim_defaults(CBQ_OPTIM_ADAM);
    oc.lr = 3e-3;
    CBQ_TRY(cbq_optim_create(&t->opt, t->net, &oc, err));
    return cbq_net_set_dist(t->net, dist, err);
}

static void free_net(trained *t)
{
    cbq_optim_free(t->opt);
    cbq_net_free(t->net);
}

/* Trains over EPOCHS passes of the samples in batches of BATCH; alone on the
 * whole batch (dist NULL) or on this rank's block. losses[step]. */
static int train(trained *t, const cbq_dist *dist, const float *x, const float *y, double *losses,
                 cbq_error *err)
{
    const cbq_loss_cfg loss = {.kind = CBQ_LOSS_MSE};
    const size_t plane = SIDE * SIDE;
    size_t step = 0;
    for (int e = 0; e < EPOCHS; e++)
        for (size_t at = 0; at < SAMPLES; at += BATCH, step++) {
            size_t m = SAMPLES - at < BATCH ? SAMPLES - at : BATCH;
            const float *bx = x + at * plane, *by = y + at * OUTPUTS;
            if (!dist) {
                CBQ_TRY(cbq_train_step(t->net, t->opt, bx, by, m, &loss, 1.0, &losses[step], NULL, err));
                continue;
            }
            size_t begin, end;
            cbq_dist_block(dist, m, &begin, &end);
            cbq_train_shard shard = {.dist = dist, .n = end - begin, .n_global = m};
            CBQ_TRY(cbq_train_step_shard(t->net, t->opt, bx + begin * plane, by + begin * OUTPUTS, &shard,
                                         &loss, 1.0, &losses[step], NULL, err));
        }
    return CBQ_OK;
}

static double max_rel_diff(const float *a, const float *b, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double scale = fabs(a[i]) > 1e-2 ? fabs(a[i]) : 1e-2;
        double d = fabs((double)a[i] - b[i]) / scale;
        worst = d > worst ? d : worst;
    }
    return worst;
}

int main(int argc, char **argv)
{
    int expect_size = argc > 1 ? atoi(argv[1]) : 1;
    cbq_dist d;
    cbq_dist_init(&d, &argc, &argv);
    cbq_error err = {0};
    EXPECT(d.size == expect_size, "%d ranks, expected %d", d.size, expect_size);
    enum { STEPS = EPOCHS * STEPS_PER_EPOCH };
    static float x[SAMPLES * SIDE * SIDE], y[SAMPLES * OUTPUTS];
    cbq_rng rng;
    cbq_rng_stream(&rng, 5, 0);
    for (size_t i = 0; i < sizeof x / sizeof *x; i++)
        x[i] = (float)(2.0 * cbq_rng_uniform(&rng) - 0.5);
    for (size_t i = 0; i < sizeof y / sizeof *y; i++)
        y[i] = (float)(1.0 + 4.0 * cbq_rng_uniform(&rng));

    double ref_loss[STEPS], loss[STEPS], again_loss[STEPS];
    trained ref, par, again;
    CHECK_OK(make_net(&ref, NULL, &err));
    CHECK_OK(make_net(&par, &d, &err));
    CHECK_OK(make_net(&again, &d, &err));
    CHECK_OK(train(&ref, NULL, x, y, ref_loss, &err));
    CHECK_OK(train(&par, &d, x, y, loss, &err));
    CHECK_OK(train(&again, &d, x, y, again_loss, &err));
    for (int s = 0; s < STEPS; s++) {
        double rel = fabs(loss[s] - ref_loss[s]) / fabs(ref_loss[s]);
        EXPECT(rel <= 1e-4, "step %d: loss %.9g on %d ranks, %.9g alone (relative %.3g)", s + 1, loss[s],
               d.size, ref_loss[s], rel);
        EXPECT(memcmp(&loss[s], &again_loss[s], sizeof loss[s]) == 0, "step %d: rerun gave loss %.17g, not %.17g",
               s + 1, again_loss[s], loss[s]);
        if (d.rank == 0)
            printf("step %d: loss %.9f alone, %.9f on %d ranks (relative %.2g)\n", s + 1, ref_loss[s], loss[s],
                   d.size, rel);
    }
    /* Every state tensor: parameters and the batch-norm running statistics. */
    size_t n_params;
    float *w = cbq_net_params(par.net, &n_params), *w_ref = cbq_net_params(ref.net, &n_params);
    double worst = max_rel_diff(w_ref, w, n_params);
    EXPECT(worst <= 1e-3, "weights after %d steps differ from the one-process run by %.3g relative", STEPS, worst);
    for (size_t i = 0; i < cbq_net_tensor_count(par.net); i++) {
        cbq_tensor_view a, b, c;
        cbq_net_tensor(par.net, i, &a);
        cbq_net_tensor(ref.net, i, &b);
        cbq_net_tensor(again.net, i, &c);
        size_t bytes = a.numel * (a.dtype == CBQ_DTYPE_I64 ? sizeof(int64_t) : sizeof(float));
        EXPECT(memcmp(a.data, c.data, bytes) == 0, "%s: a rerun gave other bits", a.name);
        if (a.dtype == CBQ_DTYPE_F32)
            EXPECT(max_rel_diff(b.data, a.data, a.numel) <= 1e-3, "%s differs from the one-process run", a.name);
        else
            EXPECT(memcmp(a.data, b.data, bytes) == 0, "%s differs from the one-process run", a.name);
    }
    if (d.rank == 0)
        printf("weights after %d steps: largest relative difference to one process %.2g\n", STEPS, worst);
    void *all = NULL;
    size_t all_len = 0;
    CHECK_OK(cbq_dist_gather_bytes(&d, w, n_params * sizeof *w, &all, &all_len, &err));
    for (int r = 1; r < d.size && d.rank == 0; r++)
        EXPECT(memcmp(all, (char *)all + (size_t)r * n_params * sizeof *w, n_params * sizeof *w) == 0,
               "rank %d's weights are not rank 0's", r);
    free(all);
    free_net(&ref);
    free_net(&par);
    free_net(&again);
    if (failures && d.size > 1)
        cbq_dist_abort(&d, 1, "test_train_shard failed");
    cbq_dist_finalize(&d);
    if (d.rank == 0)
        printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
