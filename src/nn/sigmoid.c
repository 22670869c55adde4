/* sigmoid.c - torch.nn.Sigmoid, 1 / (1 + exp(-x)), and torch.nn.SiLU,
 * x * sigmoid(x). Backward recomputes sigmoid from the input (the engine
 * keeps inputs, not outputs): dsigmoid = s (1 - s), dsilu = s (1 + x (1 - s)),
 * PyTorch's formulas. */
#include <math.h>

#include "nn/layer.h"

static inline float sigmoid_of(float x) { return 1.0f / (1.0f + expf(-x)); }

void sigmoid_forward(float *out, const float *in, size_t count, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < (long)count; i++)
        out[i] = sigmoid_of(in[i]);
}

void sigmoid_backward(float *din, const float *dout, const float *in, size_t count, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < (long)count; i++) {
        float s = sigmoid_of(in[i]);
        din[i] = dout[i] * (1.0f - s) * s;
    }
}

void silu_forward(float *out, const float *in, size_t count, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < (long)count; i++)
        out[i] = in[i] * sigmoid_of(in[i]);
}

void silu_backward(float *din, const float *dout, const float *in, size_t count, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < (long)count; i++) {
        float s = sigmoid_of(in[i]);
        din[i] = dout[i] * s * (1.0f + in[i] * (1.0f - s));
    }
}
