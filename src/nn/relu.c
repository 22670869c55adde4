/* relu.c - torch.nn.ReLU and torch.nn.LeakyReLU, elementwise. The gradient
 * at exactly 0 is PyTorch's: 0 for ReLU, the slope for LeakyReLU. */
#include "nn/layer.h"

void relu_forward(float *out, const float *in, size_t count, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < (long)count; i++)
        out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void relu_backward(float *din, const float *dout, const float *in, size_t count, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < (long)count; i++)
        din[i] = in[i] > 0.0f ? dout[i] : 0.0f;
}

void leaky_relu_forward(float *out, const float *in, float slope, size_t count, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < (long)count; i++)
        out[i] = in[i] > 0.0f ? in[i] : in[i] * slope;
}

void leaky_relu_backward(float *din, const float *dout, const float *in, float slope, size_t count,
                         int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < (long)count; i++)
        din[i] = in[i] > 0.0f ? dout[i] : dout[i] * slope;
}
