/* add.c - torch.add over n inputs of one shape (a residual block's sum),
 * elementwise, summed in input order as PyTorch's chain of `+` does. Its
 * gradient is dy for every input; add_accumulate also serves the engine,
 * which sums the gradients of a tensor read by several layers. */
#include <string.h>

#include "nn/layer.h"

/* The residual block's case: a loop GCC vectorises (it versions it for
 * aliasing; the general loop below, reading through ins[j], it does not). */
static void add_pair(float *out, const float *a, const float *b, size_t count, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < (long)count; i++)
        out[i] = a[i] + b[i];
}

void add_forward(float *out, const float *const *ins, size_t n_in, size_t count, int threads)
{
    if (n_in == 2) {
        add_pair(out, ins[0], ins[1], count, threads);
        return;
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < (long)count; i++) {
        float s = ins[0][i];
        for (size_t j = 1; j < n_in; j++)
            s += ins[j][i];
        out[i] = s;
    }
}

void add_backward(float *const *dins, const float *dout, size_t n_in, size_t count)
{
    for (size_t j = 0; j < n_in; j++)
        if (dins[j])
            memcpy(dins[j], dout, count * sizeof *dout);
}

void add_accumulate(float *acc, const float *x, size_t count, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < (long)count; i++)
        acc[i] += x[i];
}
