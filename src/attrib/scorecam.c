/* scorecam.c - Score-CAM (Wang et al., CVPR Workshops 2020,
 * arXiv:1910.01279), gradient-free, as pytorch-grad-cam's ScoreCAM computes
 * it: each channel A_k of the target activation is upsampled to the input
 * grid (bilinear, align_corners=True, as torch.nn.UpsamplingBilinear2d),
 * min-max scaled to [0, 1] (denominator + 1e-8), multiplied into the input
 * slice, and the model's output score for the masked slice is taken;
 * weights = softmax over channels of the scores; map = sum_k w_k A_k.
 * An input of several channels is masked in every channel by the same mask
 * (pytorch-grad-cam broadcasts the [K, 1, H, W] masks over the input's channels).
 *
 * Costs one forward per channel and slice; all outputs come from the same
 * masked forwards. The slice's own activations are copied first because the
 * masked forwards overwrite the network's.
 */
#include <math.h>
#include <string.h>

#include "cam_private.h"

static const float scorecam_eps = 1e-8f;

/* masks [K, C, H, W]: x [C, H, W] times channel k's scaled mask. The K
 * upsampled planes land in the first K * HW floats; sample k is written
 * from the last down, and channel 0 last, so that no plane is overwritten
 * before it is read (sample k >= 1 starts at k C HW >= (k + 1) HW). */
static void make_masks(cbq_cam *cam, const float *A, const float *x)
{
    size_t HW = cam->H * cam->W, C = cam->C;
    cbq_resize_bilinear(A, cam->K, cam->h, cam->w, cam->masks, cam->H, cam->W, 1);
    for (size_t k = cam->K; k-- > 0;) {
        const float *m = cam->masks + k * HW;
        float lo = m[0], hi = m[0];
        for (size_t i = 1; i < HW; i++) {
            lo = m[i] < lo ? m[i] : lo;
            hi = m[i] > hi ? m[i] : hi;
        }
        float den = (hi - lo) + scorecam_eps;
        for (size_t ch = C; ch-- > 0;) {
            float *out = cam->masks + (k * C + ch) * HW;
            for (size_t i = 0; i < HW; i++)
                out[i] = x[ch * HW + i] * ((m[i] - lo) / den);
        }
    }
}

static int score_channels(cbq_cam *cam, cbq_error *err)
{
    size_t CHW = cam->C * cam->H * cam->W, B = cam->max_batch;
    for (size_t k0 = 0; k0 < cam->K; k0 += B) {
        size_t nb = cam->K - k0 < B ? cam->K - k0 : B;
        const float *out = NULL;
        /* masks[k0 .. k0+nb) are contiguous [nb, C, H, W] inputs already */
        CBQ_TRY(cbq_net_forward(cam->net, cam->masks + k0 * CHW, nb, &out, err));
        for (size_t j = 0; j < nb; j++)
            for (size_t c = 0; c < cam->n_out; c++)
                cam->scores[(k0 + j) * cam->n_out + c] = cam->opt.sign * (double)out[j * cam->n_out + c];
    }
    return CBQ_OK;
}

/* Softmax over channels of output c's scores, then the weighted sum. */
static void weighted_map(cbq_cam *cam, size_t c, const float *A, float *map)
{
    size_t hw = cam->h * cam->w;
    double top = -INFINITY, z = 0.0;
    for (size_t k = 0; k < cam->K; k++)
        top = fmax(top, cam->scores[k * cam->n_out + c]);
    for (size_t k = 0; k < cam->K; k++)
        z += exp(cam->scores[k * cam->n_out + c] - top);
    memset(map, 0, hw * sizeof *map);
    for (size_t k = 0; k < cam->K; k++) {
        float wk = (float)(exp(cam->scores[k * cam->n_out + c] - top) / z);
        for (size_t i = 0; i < hw; i++)
            map[i] += wk * A[k * hw + i];
    }
}

int cam_run_scorecam(cbq_cam *cam, const float *x, size_t n, cbq_error *err)
{
    size_t hw = cam->h * cam->w, khw = cam->K * hw, CHW = cam->C * cam->H * cam->W;
    memcpy(cam->act_copy, cbq_net_activation(cam->net, cam->target), n * khw * sizeof(float));
    memcpy(cam->x_copy, x, n * CHW * sizeof(float));
    for (size_t s = 0; s < n; s++) {
        const float *A = cam->act_copy + s * khw;
        make_masks(cam, A, cam->x_copy + s * CHW);
        CBQ_TRY(score_channels(cam, err));
        for (size_t c = 0; c < cam->n_out; c++) {
            weighted_map(cam, c, A, cam->pre_feature);
            cam_finish_feature(cam, c, s, cam->pre_feature);
        }
    }
    return CBQ_OK;
}
