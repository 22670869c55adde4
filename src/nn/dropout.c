/* dropout.c - torch.nn.Dropout in training mode: inverted dropout, each
 * element zeroed with probability p and the survivors scaled by 1/(1-p), so
 * evaluation is the identity. Masks come from the net's cbq_rng in element
 * order (PyTorch's own random stream cannot be reproduced; tests check the
 * rule and the statistics, not PyTorch's bits). */
#include "nn/layer.h"

void dropout_forward(float *out, float *mask, const float *in, double p, size_t count, cbq_rng *rng)
{
    const float keep_scale = (float)(1.0 / (1.0 - p));
    for (size_t i = 0; i < count; i++) {
        mask[i] = cbq_rng_uniform(rng) < p ? 0.0f : keep_scale;
        out[i] = in[i] * mask[i];
    }
}

void dropout_backward(float *din, const float *dout, const float *mask, size_t count)
{
    for (size_t i = 0; i < count; i++)
        din[i] = dout[i] * mask[i];
}
