/* conv2d_winograd_wgrad.c - the weight gradient of 3x3 stride-1
 * convolutions by Winograd F(4x4, 3x3).
 * Placeholder: nothing is eligible yet, so conv2d.c keeps im2col. */
#include "nn/layer.h"

int conv2d_winograd_wgrad_eligible(const cbq_conv2d_cfg *cfg, size_t h, size_t w)
{
    (void)cfg, (void)h, (void)w;
    return 0;
}

size_t conv2d_winograd_wgrad_workspace_floats(const cbq_conv2d_cfg *cfg, size_t h, size_t w)
{
    (void)cfg, (void)h, (void)w;
    return 0;
}

void conv2d_winograd_backward_weight(float *dweight, float *dbias, const float *dout,
                                     const float *in, const cbq_conv2d_cfg *cfg, size_t n,
                                     size_t h, size_t w, float *workspace, int threads)
{
    (void)dweight, (void)dbias, (void)dout, (void)in, (void)cfg, (void)n, (void)h, (void)w;
    (void)workspace, (void)threads;
}
