/* add.c - torch.add over n inputs of one shape (a residual block's sum),
 * elementwise, summed in input order as PyTorch's chain of `+` does. Its
 * gradient is dy for every input; add_accumulate also serves the engine,
 * which sums the gradients of a tensor read by several layers. */
#include <string.h>

#include "nn/layer.h"

/* The residual block's case: loops GCC vectorises (it versions them for
 * aliasing; the general loop below, reading through ins[j], it does not).
 * With relu, max(a + b, 0) as relu_forward writes it from the sum. */
static void add_pair(float *out, const float *a, const float *b, size_t count, int relu,
                     int threads)
{
    if (relu) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (long i = 0; i < (long)count; i++) {
            float s = a[i] + b[i];
            out[i] = s > 0.0f ? s : 0.0f;
        }
        return;
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < (long)count; i++)
        out[i] = a[i] + b[i];
}

void add_forward(float *out, const float *const *ins, size_t n_in, size_t count, int relu,
                 int threads)
{
    if (n_in == 2) {
        add_pair(out, ins[0], ins[1], count, relu, threads);
        return;
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < (long)count; i++) {
        float s = ins[0][i];
        for (size_t j = 1; j < n_in; j++)
            s += ins[j][i];
        out[i] = relu && !(s > 0.0f) ? 0.0f : s;
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
