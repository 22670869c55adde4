/* combine.c - the gradient-based CAM methods: how the target layer's
 * activation A [K, h, w] and the gradient G = d(sign * y_c)/dA [K, h, w] of
 * one slice become one pre-ReLU map [h, w].
 *
 * Each method is defined exactly as the pytorch-grad-cam package computes it
 * (jacobgil/pytorch-grad-cam, `get_cam_weights` / `get_cam_image`), minus its
 * final min-max scaling: our maps stay raw.
 *   Grad-CAM   Selvaraju et al., ICCV 2017, arXiv:1610.02391
 *   HiResCAM   Draelos & Carin, arXiv:2011.08891
 *   LayerCAM   Jiang et al., IEEE TIP 30:5875, 2021
 *   XGrad-CAM  Fu et al., BMVC 2020, arXiv:2008.02312
 *   Grad-CAM++ Chattopadhyay et al., WACV 2018, arXiv:1710.11063 (eq. 19)
 * Channel weights are reduced in double; the weighted sum over channels runs
 * in float in a fixed order, as numpy does it in the reference.
 */
#include <assert.h>
#include <stddef.h>

#include "cbctiq/attrib.h"

/* pytorch-grad-cam's regularisers, kept so the maps match it. */
static const double xgradcam_eps = 1e-7;
static const double gradcampp_eps = 1e-6;

static double plane_sum(const float *p, size_t hw)
{
    double s = 0.0;
    for (size_t i = 0; i < hw; i++)
        s += p[i];
    return s;
}

/* Channel weight of one channel (A_k, G_k) for the methods of the form
 * map = sum_k weight_k A_k. */
static double channel_weight(cbq_cam_method m, const float *a, const float *g, size_t hw)
{
    double s = 0.0;
    switch (m) {
    case CBQ_CAM_GRADCAM: /* alpha_k = spatial mean of dy/dA_k */
        return plane_sum(g, hw) / (double)hw;
    case CBQ_CAM_XGRADCAM: { /* sum_ij G A / (sum_ij A + eps) */
        for (size_t i = 0; i < hw; i++)
            s += (double)g[i] * a[i];
        return s / (plane_sum(a, hw) + xgradcam_eps);
    }
    case CBQ_CAM_GRADCAMPP: { /* sum_ij relu(G) a_ij, a_ij = G^2 / (2G^2 + sum(A) G^3 + eps) */
        double sum_a = plane_sum(a, hw);
        for (size_t i = 0; i < hw; i++) {
            double gi = g[i];
            if (gi == 0.0)
                continue;
            double g2 = gi * gi;
            double aij = g2 / (2.0 * g2 + sum_a * g2 * gi + gradcampp_eps);
            if (gi > 0.0)
                s += gi * aij;
        }
        return s;
    }
    default:
        assert(0 && "not a channel-weight method");
        return 0.0;
    }
}

enum { GROUP = 8 }; /* channels whose weights are reduced side by side */

/* Grad-CAM's weights of n <= GROUP channels g [n, hw]: each channel's sum
 * in double in pixel order, exactly plane_sum's, but n sums advance
 * together so that the additions of one do not wait on the previous one
 * (a lone double sum is bound by the adder's latency). */
static void gradient_means(const float *g, size_t n, size_t hw, double *out)
{
    double s[GROUP] = {0};
    if (n == GROUP) {
        for (size_t i = 0; i < hw; i++)
            for (size_t j = 0; j < GROUP; j++)
                s[j] += g[j * hw + i];
    } else {
        for (size_t j = 0; j < n; j++)
            s[j] = plane_sum(g + j * hw, hw);
    }
    for (size_t j = 0; j < n; j++)
        out[j] = s[j] / (double)hw;
}

void cbq_cam_combine(cbq_cam_method m, const float *A, const float *G, size_t K, size_t h,
                     size_t w, float *map)
{
    size_t hw = h * w;
    if (m == CBQ_CAM_HIRESCAM || m == CBQ_CAM_LAYERCAM) {
        for (size_t i = 0; i < hw; i++) {
            double s = 0.0;
            for (size_t k = 0; k < K; k++) {
                double g = G[k * hw + i];
                if (m == CBQ_CAM_LAYERCAM && g < 0.0)
                    g = 0.0;
                s += g * A[k * hw + i];
            }
            map[i] = (float)s;
        }
        return;
    }
    for (size_t i = 0; i < hw; i++)
        map[i] = 0.0f;
    for (size_t k0 = 0; k0 < K; k0 += GROUP) {
        size_t n = K - k0 < GROUP ? K - k0 : GROUP;
        double wd[GROUP];
        if (m == CBQ_CAM_GRADCAM)
            gradient_means(G + k0 * hw, n, hw, wd);
        else
            for (size_t j = 0; j < n; j++)
                wd[j] = channel_weight(m, A + (k0 + j) * hw, G + (k0 + j) * hw, hw);
        for (size_t j = 0; j < n; j++) {
            float wk = (float)wd[j];
            const float *a = A + (k0 + j) * hw;
            for (size_t i = 0; i < hw; i++)
                map[i] += wk * a[i];
        }
    }
}
