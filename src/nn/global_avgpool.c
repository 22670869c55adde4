/* global_avgpool.c - mean over each channel plane (torch
 * nn.AdaptiveAvgPool2d(1) followed by flatten). */
#include "nn/layer.h"

void global_avgpool_forward(float *out, const float *in, size_t planes, size_t hw, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long pl = 0; pl < (long)planes; pl++) {
        const float *x = in + (size_t)pl * hw;
        double acc = 0.0;
        for (size_t i = 0; i < hw; i++)
            acc += x[i];
        out[pl] = (float)(acc / (double)hw);
    }
}

void global_avgpool_backward(float *din, const float *dout, size_t planes, size_t hw, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long pl = 0; pl < (long)planes; pl++) {
        float v = (float)(dout[pl] / (double)hw);
        float *d = din + (size_t)pl * hw;
        for (size_t i = 0; i < hw; i++)
            d[i] = v;
    }
}
