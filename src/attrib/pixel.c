/* pixel.c - pixel-level attributions on the model-input grid:
 *   gradient x input: x * d(sign*y_c)/dx (Shrikumar et al. 2016,
 *     arXiv:1605.01713; Captum's InputXGradient);
 *   Integrated Gradients (Sundararajan et al., ICML 2017,
 *     arXiv:1703.01365) with the baseline x' = 0 AFTER preprocessing (the
 *     slice of value 0, i.e. HU <= hu_min) and m steps:
 *       IG(x) = x * sum_j w_j dy/dx(alpha_j x),  alpha_j = j/m,
 *     trapezoid rule: j = 0..m, w_0 = w_m = 1/(2m), else 1/m;
 *     right Riemann sum: j = 1..m, w_j = 1/m.
 * Path points of all slices of a batch are packed into network batches.
 * An input of several channels (model_spec.h) gets one map per slice, the
 * sum over its channels of the per-channel attributions (Captum's
 * attribution summed over the channel dimension).
 */
#include <string.h>

#include "cam_private.h"

static int accumulate_input_grads(cbq_cam *cam, size_t nb, const size_t *slice_of,
                                  const double *weight_of, cbq_error *err)
{
    size_t CHW = cam->C * cam->H * cam->W;
    for (size_t c = 0; c < cam->n_out; c++) {
        cam_fill_dout(cam, nb, c);
        CBQ_TRY(cbq_net_backward(cam->net, cam->dout, 0, 0, err));
        const float *g = cbq_net_input_grad(cam->net);
        for (size_t b = 0; b < nb; b++) {
            double *acc = cam->grad_acc + (c * cam->max_batch + slice_of[b]) * CHW;
            for (size_t i = 0; i < CHW; i++)
                acc[i] += weight_of[b] * g[b * CHW + i];
        }
    }
    return CBQ_OK;
}

static int run_ig_path(cbq_cam *cam, size_t n, cbq_error *err)
{
    size_t CHW = cam->C * cam->H * cam->W, B = cam->max_batch, m = (size_t)cam->opt.ig_steps;
    size_t j0 = cam->opt.ig_rule == CBQ_IG_TRAPEZOID ? 0 : 1, per_slice = m + 1 - j0;
    size_t *slice_of = cam->slice_of;
    double *weight_of = cam->weight_of;
    size_t total = n * per_slice;
    for (size_t q0 = 0; q0 < total; q0 += B) {
        size_t nb = total - q0 < B ? total - q0 : B;
        for (size_t b = 0; b < nb; b++) {
            size_t s = (q0 + b) / per_slice, j = j0 + (q0 + b) % per_slice;
            float alpha = (float)j / (float)m;
            double w = 1.0 / (double)m;
            if (cam->opt.ig_rule == CBQ_IG_TRAPEZOID && (j == 0 || j == m))
                w *= 0.5;
            slice_of[b] = s;
            weight_of[b] = w;
            const float *xs = cam->x_copy + s * CHW;
            float *p = cam->path + b * CHW;
            for (size_t i = 0; i < CHW; i++)
                p[i] = alpha * xs[i];
        }
        const float *out = NULL;
        CBQ_TRY(cbq_net_forward(cam->net, cam->path, nb, &out, err));
        CBQ_TRY(accumulate_input_grads(cam, nb, slice_of, weight_of, err));
    }
    return CBQ_OK;
}

int cam_run_pixel(cbq_cam *cam, const float *x, size_t n, cbq_error *err)
{
    size_t HW = cam->H * cam->W, CHW = cam->C * HW;
    memcpy(cam->x_copy, x, n * CHW * sizeof(float));
    memset(cam->grad_acc, 0, cam->n_out * cam->max_batch * CHW * sizeof(double));
    if (cam->opt.method == CBQ_CAM_IG) {
        CBQ_TRY(run_ig_path(cam, n, err));
    } else { /* gradient x input: the forward of cbq_cam_run is the point */
        for (size_t s = 0; s < n; s++) {
            cam->slice_of[s] = s;
            cam->weight_of[s] = 1.0;
        }
        CBQ_TRY(accumulate_input_grads(cam, n, cam->slice_of, cam->weight_of, err));
    }
    for (size_t c = 0; c < cam->n_out; c++) {
        for (size_t s = 0; s < n; s++) {
            const double *acc = cam->grad_acc + (c * cam->max_batch + s) * CHW;
            const float *xs = cam->x_copy + s * CHW;
            for (size_t i = 0; i < HW; i++)
                cam->pre_input[i] = (float)(xs[i] * acc[i]);
            for (size_t ch = 1; ch < cam->C; ch++)
                for (size_t i = 0; i < HW; i++)
                    cam->pre_input[i] += (float)(xs[ch * HW + i] * acc[ch * HW + i]);
            cam_finish_input(cam, c, s, cam->pre_input);
        }
    }
    return CBQ_OK;
}
