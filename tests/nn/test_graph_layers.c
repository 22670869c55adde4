/* test_graph_layers.c - the graph kinds' kernels (add.c, concat.c, mul.c):
 * each backward against central finite differences of its own forward, with
 * 1 and 2 threads, including mul's channel-wise broadcast ([C, 1, 1] against
 * [C, H, W], either side), and the NULL (skipped) input gradients.
 *
 * Objective f = sum(out * r) for a fixed random r, so df/dx_j is the
 * backward of dout = r; summed in double, step 1e-2, a gradient passes when
 * |fd - analytic| <= 2e-3 + 1e-2 |analytic| (as test_layers.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cbctiq/rng.h"
#include "nn/layer.h"

#define FD_EPS 1e-2f
#define FD_ATOL 2e-3
#define FD_RTOL 1e-2
enum { MAX_IN = 4 };

/* One kernel under test: inputs of sizes[j] values, one output. */
typedef struct graph_op graph_op;
struct graph_op {
    void (*forward)(const graph_op *op, float *out, const float *const *ins);
    void (*backward)(const graph_op *op, float *const *dins, const float *dout, const float *const *ins);
    size_t n_in, sizes[MAX_IN], n_out;
    size_t n, hw, channels[MAX_IN], hw_of[MAX_IN]; /* shapes, read by the wrappers */
    int threads;
};

static float *randn(cbq_rng *rng, size_t count)
{
    float *p = malloc((count ? count : 1) * sizeof *p);
    for (size_t i = 0; i < count; i++)
        p[i] = (float)cbq_rng_normal(rng);
    return p;
}

static double objective(const graph_op *op, float *const *ins, const float *r)
{
    float *out = malloc(op->n_out * sizeof *out);
    op->forward(op, out, (const float *const *)ins);
    double f = 0.0;
    for (size_t i = 0; i < op->n_out; i++)
        f += (double)out[i] * r[i];
    free(out);
    return f;
}

/* Every input's gradient against central differences; then backward with
 * only input `skip`'s gradient NULL gives the same other gradients. */
static void check_op(graph_op *op, uint64_t seed)
{
    cbq_rng rng;
    cbq_rng_seed(&rng, seed);
    float *ins[MAX_IN], *dins[MAX_IN], *again[MAX_IN];
    for (size_t j = 0; j < op->n_in; j++) {
        ins[j] = randn(&rng, op->sizes[j]);
        dins[j] = calloc(op->sizes[j], sizeof(float));
        again[j] = calloc(op->sizes[j], sizeof(float));
    }
    float *r = randn(&rng, op->n_out);
    for (int threads = 1; threads <= 2; threads++) {
        op->threads = threads;
        op->backward(op, dins, r, (const float *const *)ins);
        for (size_t j = 0; j < op->n_in; j++)
            for (size_t i = 0; i < op->sizes[j]; i++) {
                float keep = ins[j][i];
                ins[j][i] = keep + FD_EPS;
                double up = objective(op, ins, r);
                ins[j][i] = keep - FD_EPS;
                double down = objective(op, ins, r);
                ins[j][i] = keep;
                double fd = (up - down) / (2.0 * FD_EPS), g = dins[j][i];
                if (fabs(fd - g) > FD_ATOL + FD_RTOL * fabs(g))
                    fail_msg("input %zu value %zu: backward %g, differences %g", j, i, g, fd);
            }
        float *partial[MAX_IN];
        for (size_t j = 0; j < op->n_in; j++)
            partial[j] = j == 0 ? NULL : again[j];
        op->backward(op, partial, r, (const float *const *)ins);
        for (size_t j = 1; j < op->n_in; j++)
            assert_memory_equal(again[j], dins[j], op->sizes[j] * sizeof(float));
    }
    for (size_t j = 0; j < op->n_in; j++) {
        free(ins[j]);
        free(dins[j]);
        free(again[j]);
    }
    free(r);
}

static void add_fwd(const graph_op *op, float *out, const float *const *ins)
{
    add_forward(out, ins, op->n_in, op->n_out, 0, op->threads);
}

static void add_bwd(const graph_op *op, float *const *dins, const float *dout, const float *const *ins)
{
    (void)ins;
    add_backward(dins, dout, op->n_in, op->n_out);
}

static void test_add_fd(void **state)
{
    (void)state;
    graph_op op = {.forward = add_fwd, .backward = add_bwd, .n_in = 3, .n_out = 2 * 3 * 5 * 4};
    for (size_t j = 0; j < op.n_in; j++)
        op.sizes[j] = op.n_out;
    check_op(&op, 1);
}

static void test_add_accumulate(void **state)
{
    (void)state;
    float acc[5] = {1, 2, 3, 4, 5}, x[5] = {0.5f, -2, 0, 1e-3f, 7};
    for (int threads = 1; threads <= 2; threads++) {
        float a[5];
        memcpy(a, acc, sizeof a);
        add_accumulate(a, x, 5, threads);
        for (int i = 0; i < 5; i++)
            assert_true(a[i] == acc[i] + x[i]);
    }
}

static void concat_fwd(const graph_op *op, float *out, const float *const *ins)
{
    concat_forward(out, ins, op->channels, op->n_in, op->n, op->hw, op->threads);
}

static void concat_bwd(const graph_op *op, float *const *dins, const float *dout, const float *const *ins)
{
    (void)ins;
    concat_backward(dins, dout, op->channels, op->n_in, op->n, op->hw, op->threads);
}

/* Also the layout: output sample s holds input 0's channels, then 1's, ... */
static void test_concat_fd(void **state)
{
    (void)state;
    graph_op op = {.forward = concat_fwd, .backward = concat_bwd, .n_in = 3, .n = 2, .hw = 6,
                   .channels = {2, 1, 3}};
    for (size_t j = 0; j < op.n_in; j++)
        op.sizes[j] = op.n * op.channels[j] * op.hw;
    op.n_out = op.n * 6 * op.hw;
    check_op(&op, 2);

    float a[2 * 2 * 1] = {1, 2, 3, 4}, b[2 * 1 * 1] = {5, 6}, out[6];
    const float *ins[2] = {a, b};
    const size_t ch[2] = {2, 1};
    concat_forward(out, ins, ch, 2, 2, 1, 1);
    const float want[6] = {1, 2, 5, 3, 4, 6};
    assert_memory_equal(out, want, sizeof want);
}

static void mul_fwd(const graph_op *op, float *out, const float *const *ins)
{
    mul_forward(out, ins[0], ins[1], op->n * op->channels[0], op->hw, op->hw_of[0], op->hw_of[1],
                op->threads);
}

static void mul_bwd(const graph_op *op, float *const *dins, const float *dout, const float *const *ins)
{
    mul_backward(dins[0], dins[1], dout, ins[0], ins[1], op->n * op->channels[0], op->hw, op->hw_of[0],
                 op->hw_of[1], op->threads);
}

/* Same shapes, a [C, 1, 1] scale second (squeeze-excitation) and first. */
static void test_mul_fd(void **state)
{
    (void)state;
    const size_t hw_cases[3][2] = {{12, 12}, {12, 1}, {1, 12}};
    for (int c = 0; c < 3; c++) {
        graph_op op = {.forward = mul_fwd, .backward = mul_bwd, .n_in = 2, .n = 2, .hw = 12,
                       .channels = {3, 3}, .hw_of = {hw_cases[c][0], hw_cases[c][1]}};
        for (size_t j = 0; j < 2; j++)
            op.sizes[j] = op.n * op.channels[j] * op.hw_of[j];
        op.n_out = op.n * 3 * op.hw;
        check_op(&op, 3 + (uint64_t)c);
    }
    /* broadcast: out[s, c, p] = x[s, c, p] * scale[s, c] */
    float x[2 * 2] = {1, 2, 3, 4}, scale[2] = {10, -1}, out[4];
    mul_forward(out, x, scale, 2, 2, 2, 1, 1);
    const float want[4] = {10, 20, -3, -4};
    assert_memory_equal(out, want, sizeof want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_fd),    cmocka_unit_test(test_add_accumulate),
        cmocka_unit_test(test_concat_fd), cmocka_unit_test(test_mul_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
