/* linear.c - torch.nn.Linear: out = in W^T + b, input flattened per sample. */
#include "cbctiq/gemm.h"
#include "nn/layer.h"

void linear_forward(float *out, const float *in, const float *weight, const float *bias,
                    const cbq_linear_cfg *cfg, size_t n)
{
    const size_t fi = (size_t)cfg->in_features, fo = (size_t)cfg->out_features;
    for (size_t s = 0; s < n; s++)
        for (size_t o = 0; o < fo; o++)
            out[s * fo + o] = bias ? bias[o] : 0.0f;
    cbq_sgemm(0, 1, n, fo, fi, 1.0f, in, fi, weight, fi, 1.0f, out, fo);
}

void linear_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                     const float *weight, const cbq_linear_cfg *cfg, size_t n)
{
    const size_t fi = (size_t)cfg->in_features, fo = (size_t)cfg->out_features;
    if (din) /* din [n, fi] = dout [n, fo] * W [fo, fi] */
        cbq_sgemm(0, 0, n, fi, fo, 1.0f, dout, fo, weight, fi, 0.0f, din, fi);
    if (dweight) /* dW [fo, fi] += dout^T [fo, n] * in [n, fi] */
        cbq_sgemm(1, 0, fo, fi, n, 1.0f, dout, fo, in, fi, 1.0f, dweight, fi);
    if (dbias)
        for (size_t s = 0; s < n; s++)
            for (size_t o = 0; o < fo; o++)
                dbias[o] += dout[s * fo + o];
}
