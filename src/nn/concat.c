/* concat.c - torch.cat(dim=1): inputs [n, C_j, hw] side by side along the
 * channels, in input order; the gradient is the matching slice of dy. */
#include <string.h>

#include "nn/layer.h"

static size_t sum_channels(const size_t *channels, size_t n_in)
{
    size_t total = 0;
    for (size_t j = 0; j < n_in; j++)
        total += channels[j];
    return total;
}

void concat_forward(float *out, const float *const *ins, const size_t *channels, size_t n_in,
                    size_t n, size_t hw, int threads)
{
    const size_t total = sum_channels(channels, n_in);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long s = 0; s < (long)n; s++) {
        float *o = out + (size_t)s * total * hw;
        for (size_t j = 0; j < n_in; j++) {
            size_t block = channels[j] * hw;
            memcpy(o, ins[j] + (size_t)s * block, block * sizeof *o);
            o += block;
        }
    }
}

void concat_backward(float *const *dins, const float *dout, const size_t *channels, size_t n_in,
                     size_t n, size_t hw, int threads)
{
    const size_t total = sum_channels(channels, n_in);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long s = 0; s < (long)n; s++) {
        const float *g = dout + (size_t)s * total * hw;
        for (size_t j = 0; j < n_in; j++) {
            size_t block = channels[j] * hw;
            if (dins[j])
                memcpy(dins[j] + (size_t)s * block, g, block * sizeof *g);
            g += block;
        }
    }
}
