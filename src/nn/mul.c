/* mul.c - torch.mul of two tensors [n, C, hw_a] and [n, C, hw_b], each hw
 * either the full hw or 1 (a [C, 1, 1] scale broadcast over the grid, as in
 * squeeze-excitation). The gradient of a broadcast input sums over the grid
 * (in double). */
#include "nn/layer.h"

void mul_forward(float *out, const float *a, const float *b, size_t planes, size_t hw, size_t hw_a,
                 size_t hw_b, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long p = 0; p < (long)planes; p++) {
        const float *pa = a + (size_t)p * hw_a, *pb = b + (size_t)p * hw_b;
        float *o = out + (size_t)p * hw;
        for (size_t i = 0; i < hw; i++)
            o[i] = pa[hw_a == 1 ? 0 : i] * pb[hw_b == 1 ? 0 : i];
    }
}

/* d(a*b)/da = b: full inputs take dy * other; a broadcast one the sum. */
static void mul_input_grad(float *d, const float *dy, const float *other, size_t hw, size_t hw_d,
                           size_t hw_other)
{
    if (hw_d == 1) {
        double s = 0.0;
        for (size_t i = 0; i < hw; i++)
            s += (double)dy[i] * other[hw_other == 1 ? 0 : i];
        d[0] = (float)s;
        return;
    }
    for (size_t i = 0; i < hw; i++)
        d[i] = dy[i] * other[hw_other == 1 ? 0 : i];
}

void mul_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                  size_t planes, size_t hw, size_t hw_a, size_t hw_b, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long p = 0; p < (long)planes; p++) {
        const float *dy = dout + (size_t)p * hw;
        if (da)
            mul_input_grad(da + (size_t)p * hw_a, dy, b + (size_t)p * hw_b, hw, hw_a, hw_b);
        if (db)
            mul_input_grad(db + (size_t)p * hw_b, dy, a + (size_t)p * hw_a, hw, hw_b, hw_a);
    }
}
