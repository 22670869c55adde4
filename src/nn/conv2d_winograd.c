/* conv2d_winograd.c - 3x3 stride-1 convolutions by Winograd F(4x4, 3x3).
 * Placeholder: no convolution is eligible yet, so conv2d.c keeps im2col. */
#include "nn/layer.h"

int conv2d_winograd_eligible(const cbq_conv2d_cfg *cfg, size_t h, size_t w)
{
    (void)cfg, (void)h, (void)w;
    return 0;
}

size_t conv2d_winograd_workspace_floats(const cbq_conv2d_cfg *cfg, size_t h, size_t w)
{
    (void)cfg, (void)h, (void)w;
    return 0;
}

void conv2d_winograd_forward(float *out, const float *in, const float *weight, const float *bias,
                             const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w,
                             float *workspace, int threads)
{
    (void)out, (void)in, (void)weight, (void)bias, (void)cfg, (void)n, (void)h, (void)w;
    (void)workspace, (void)threads;
}

void conv2d_winograd_backward_data(float *din, const float *dout, const float *weight,
                                   const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w,
                                   float *workspace, int threads)
{
    (void)din, (void)dout, (void)weight, (void)cfg, (void)n, (void)h, (void)w;
    (void)workspace, (void)threads;
}
