/* eigencam.c - Eigen-CAM (Muhammad & Yeasin, IJCNN 2020, arXiv:2008.00299):
 * the projection of the channel-centred activations on their first right
 * singular vector, as pytorch-grad-cam's get_2d_projection computes it.
 *
 * With X the [hw, K] matrix of activations (pixels x channels) centred per
 * channel, the map is X v1 where v1 is the top eigenvector of X^T X. We solve
 * the smaller of X^T X (K x K) and X X^T (hw x hw) with cyclic Jacobi in
 * double: exact enough to match an SVD to float rounding, no LAPACK needed.
 * An SVD's sign is arbitrary; ours is fixed (docs/attribution.md): v1 points
 * along the channel means of the uncentred activations, ties broken by a
 * non-negative sum of v1's components.
 */
#include <math.h>
#include <string.h>

#include "cbctiq/attrib.h"

size_t cbq_eigencam_work_size(size_t K, size_t hw)
{
    size_t n = K < hw ? K : hw;
    /* X (hw*K), Gram (n*n), eigenvectors (n*n), channel means (K), v1 (K) */
    return hw * K + 2 * n * n + 2 * K;
}

/* Cyclic Jacobi on the symmetric n x n matrix a (destroyed): eigenvalues on
 * the diagonal, eigenvectors in the columns of v. */
static void jacobi_eigen(double *a, double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            v[i * n + j] = i == j ? 1.0 : 0.0;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, diag = 0.0;
        for (size_t p = 0; p < n; p++) {
            diag += a[p * n + p] * a[p * n + p];
            for (size_t q = p + 1; q < n; q++)
                off += a[p * n + q] * a[p * n + q];
        }
        if (off <= 1e-30 * diag || off == 0.0)
            return;
        for (size_t p = 0; p < n; p++) {
            for (size_t q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (apq == 0.0)
                    continue;
                double theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (size_t k = 0; k < n; k++) { /* columns p, q */
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (size_t k = 0; k < n; k++) { /* rows p, q */
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for (size_t k = 0; k < n; k++) {
                    double vkp = v[k * n + p], vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
}

void cbq_eigencam_project(const float *A, size_t K, size_t h, size_t w, float *map, double *work)
{
    size_t hw = h * w, n = K < hw ? K : hw;
    double *X = work, *gram = X + hw * K, *vec = gram + n * n, *mean = vec + n * n,
           *v1 = mean + K;
    for (size_t k = 0; k < K; k++) {
        double m = 0.0;
        for (size_t i = 0; i < hw; i++)
            m += A[k * hw + i];
        mean[k] = m / (double)hw;
        for (size_t i = 0; i < hw; i++)
            X[i * K + k] = A[k * hw + i] - mean[k];
    }
    int channel_gram = K <= hw;
    for (size_t p = 0; p < n; p++) {
        for (size_t q = p; q < n; q++) {
            double s = 0.0;
            if (channel_gram)
                for (size_t i = 0; i < hw; i++)
                    s += X[i * K + p] * X[i * K + q];
            else
                for (size_t k = 0; k < K; k++)
                    s += X[p * K + k] * X[q * K + k];
            gram[p * n + q] = gram[q * n + p] = s;
        }
    }
    jacobi_eigen(gram, vec, n);
    size_t top = 0;
    for (size_t i = 1; i < n; i++)
        if (gram[i * n + i] > gram[top * n + top])
            top = i;
    double lambda = gram[top * n + top];
    if (!(lambda > 0.0)) { /* constant channels: nothing to project */
        memset(map, 0, hw * sizeof *map);
        return;
    }
    if (channel_gram) {
        for (size_t k = 0; k < K; k++)
            v1[k] = vec[k * n + top];
    } else { /* v1 = X^T u / sigma */
        double sigma = sqrt(lambda);
        for (size_t k = 0; k < K; k++) {
            double s = 0.0;
            for (size_t i = 0; i < hw; i++)
                s += X[i * K + k] * vec[i * n + top];
            v1[k] = s / sigma;
        }
    }
    double along_mean = 0.0, comp_sum = 0.0;
    for (size_t k = 0; k < K; k++) {
        along_mean += v1[k] * mean[k];
        comp_sum += v1[k];
    }
    double sign = along_mean > 0.0 ? 1.0 : along_mean < 0.0 ? -1.0 : (comp_sum >= 0.0 ? 1.0 : -1.0);
    for (size_t i = 0; i < hw; i++) {
        double s = 0.0;
        for (size_t k = 0; k < K; k++)
            s += X[i * K + k] * v1[k];
        map[i] = (float)(sign * s);
    }
}
