/* batchnorm2d.c - torch.nn.BatchNorm2d (affine, track_running_stats).
 *
 * Training normalises with the batch mean and the BIASED variance and moves
 * the running statistics by `momentum` towards the batch mean and the
 * UNBIASED variance (N/(N-1)), incrementing num_batches_tracked; evaluation
 * uses the running statistics. Statistics are accumulated in double, one
 * channel per loop iteration (channels are independent, so the parallel
 * split does not change any sum).
 */
#include <math.h>

#include "nn/layer.h"

/* Sums over one channel plane with 8 independent double accumulators
 * (a fixed order, so still deterministic): without -ffast-math the compiler
 * may not reorder one long float-to-double sum, which would leave it
 * latency-bound at one add per 4 cycles. */
enum { LANES = 8 };

static void plane_sums(const float *x, size_t hw, double *sum, double *sq)
{
    double a[LANES] = {0}, b[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= hw; i += LANES)
        for (int j = 0; j < LANES; j++) {
            double v = x[i + (size_t)j];
            a[j] += v;
            b[j] += v * v;
        }
    for (; i < hw; i++) {
        double v = x[i];
        a[0] += v;
        b[0] += v * v;
    }
    for (int j = 0; j < LANES; j++) {
        *sum += a[j];
        *sq += b[j];
    }
}

/* sum of g and of g * (x - mean) * invstd over one plane. */
static void plane_grad_sums(const float *x, const float *g, size_t hw, double mean, double invstd,
                            double *sum_g, double *sum_gx)
{
    double a[LANES] = {0}, b[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= hw; i += LANES)
        for (int j = 0; j < LANES; j++) {
            double gv = g[i + (size_t)j];
            a[j] += gv;
            b[j] += gv * ((x[i + (size_t)j] - mean) * invstd);
        }
    for (; i < hw; i++) {
        a[0] += g[i];
        b[0] += g[i] * ((x[i] - mean) * invstd);
    }
    for (int j = 0; j < LANES; j++) {
        *sum_g += a[j];
        *sum_gx += b[j];
    }
}

/* Mean and biased variance of one channel in a single pass: sum and sum of
 * squares in double. The cancellation in E[x^2] - mean^2 costs about
 * 1e-16 * (mean/std)^2 relative, negligible for activations. */
static void channel_stats(const float *in, size_t c, size_t channels, size_t n, size_t hw,
                          double *mean, double *var)
{
    double sum = 0.0, sq = 0.0;
    for (size_t s = 0; s < n; s++)
        plane_sums(in + (s * channels + c) * hw, hw, &sum, &sq);
    const double count = (double)(n * hw);
    const double m = sum / count;
    double v = sq / count - m * m;
    *mean = m;
    *var = v > 0.0 ? v : 0.0;
}

/* y = x * scale + shift for one channel of every sample; with relu,
 * max(y, 0) as relu_forward writes it. out may be in (in place). */
static void channel_affine(float *out, const float *in, size_t c, size_t channels, size_t n,
                           size_t hw, float scale, float shift, int relu)
{
    for (size_t s = 0; s < n; s++) {
        const float *x = in + (s * channels + c) * hw;
        float *y = out + (s * channels + c) * hw;
        if (relu)
            for (size_t i = 0; i < hw; i++) {
                float v = x[i] * scale + shift;
                y[i] = v > 0.0f ? v : 0.0f;
            }
        else
            for (size_t i = 0; i < hw; i++)
                y[i] = x[i] * scale + shift;
    }
}

/* Normalises channel c with its batch mean and biased variance over count
 * values, saves them for backward and moves the running statistics. */
static void channel_normalise(float *out, float *save_mean, float *save_invstd, float *running_mean,
                              float *running_var, const float *in, const float *gamma,
                              const float *beta, const cbq_batchnorm2d_cfg *cfg, size_t c,
                              size_t channels, size_t n, size_t hw, double count, double mean,
                              double var, int relu)
{
    const double mom = cfg->momentum;
    double invstd = 1.0 / sqrt(var + cfg->eps);
    save_mean[c] = (float)mean;
    save_invstd[c] = (float)invstd;
    double scale = gamma[c] * invstd;
    channel_affine(out, in, c, channels, n, hw, (float)scale, (float)(beta[c] - mean * scale), relu);
    double unbiased = count > 1.0 ? var * count / (count - 1.0) : var;
    running_mean[c] = (float)((1.0 - mom) * running_mean[c] + mom * mean);
    running_var[c] = (float)((1.0 - mom) * running_var[c] + mom * unbiased);
}

void batchnorm2d_forward_train(float *out, float *save_mean, float *save_invstd,
                               float *running_mean, float *running_var,
                               int64_t *num_batches_tracked, const float *in, const float *gamma,
                               const float *beta, const cbq_batchnorm2d_cfg *cfg, size_t n,
                               size_t hw, int relu, int threads)
{
    const long channels = cfg->channels;
    const double count = (double)(n * hw);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long cl = 0; cl < channels; cl++) {
        size_t c = (size_t)cl;
        double mean, var;
        channel_stats(in, c, (size_t)channels, n, hw, &mean, &var);
        channel_normalise(out, save_mean, save_invstd, running_mean, running_var, in, gamma, beta,
                          cfg, c, (size_t)channels, n, hw, count, mean, var, relu);
    }
    (*num_batches_tracked)++;
}

void batchnorm2d_local_sums(double *sums, const float *in, size_t channels, size_t n, size_t hw,
                            int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long cl = 0; cl < (long)channels; cl++) {
        size_t c = (size_t)cl;
        double sum = 0.0, sq = 0.0;
        for (size_t s = 0; s < n; s++)
            plane_sums(in + (s * channels + c) * hw, hw, &sum, &sq);
        sums[c] = sum;
        sums[channels + c] = sq;
    }
}

void batchnorm2d_forward_train_summed(float *out, float *save_mean, float *save_invstd,
                                      float *running_mean, float *running_var,
                                      int64_t *num_batches_tracked, const float *in,
                                      const float *gamma, const float *beta,
                                      const cbq_batchnorm2d_cfg *cfg, const double *sums,
                                      double count, size_t n, size_t hw, int relu, int threads)
{
    const long channels = cfg->channels;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long cl = 0; cl < channels; cl++) {
        size_t c = (size_t)cl;
        const double mean = sums[c] / count;
        const double v = sums[channels + c] / count - mean * mean;
        channel_normalise(out, save_mean, save_invstd, running_mean, running_var, in, gamma, beta,
                          cfg, c, (size_t)channels, n, hw, count, mean, v > 0.0 ? v : 0.0, relu);
    }
    (*num_batches_tracked)++;
}

void batchnorm2d_forward_eval(float *out, float *save_mean, float *save_invstd, const float *in,
                              const float *gamma, const float *beta, const float *running_mean,
                              const float *running_var, const cbq_batchnorm2d_cfg *cfg, size_t n,
                              size_t hw, int relu, int threads)
{
    const long channels = cfg->channels;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long cl = 0; cl < channels; cl++) {
        size_t c = (size_t)cl;
        double invstd = 1.0 / sqrt((double)running_var[c] + cfg->eps);
        save_mean[c] = running_mean[c];
        save_invstd[c] = (float)invstd;
        double scale = gamma[c] * invstd;
        channel_affine(out, in, c, (size_t)channels, n, hw, (float)scale,
                       (float)(beta[c] - running_mean[c] * scale), relu);
    }
}

void batchnorm2d_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                          const float *in, const float *gamma, const float *save_mean,
                          const float *save_invstd, int training, size_t channels, size_t n,
                          size_t hw, int threads)
{
    const double count = (double)(n * hw);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long cl = 0; cl < (long)channels; cl++) {
        size_t c = (size_t)cl;
        const double mean = save_mean[c], invstd = save_invstd[c];
        double sum_g = 0.0, sum_gx = 0.0; /* sum dy, sum dy * xhat */
        for (size_t s = 0; s < n; s++)
            plane_grad_sums(in + (s * channels + c) * hw, dout + (s * channels + c) * hw, hw, mean,
                            invstd, &sum_g, &sum_gx);
        if (dgamma)
            dgamma[c] += (float)sum_gx;
        if (dbeta)
            dbeta[c] += (float)sum_g;
        if (!din)
            continue;
        /* Training: dx = gamma*invstd*(dy - mean(dy) - xhat*mean(dy*xhat));
         * evaluation: the statistics are constants, dx = gamma*invstd*dy. */
        const double k = gamma[c] * invstd;
        const double mg = training ? sum_g / count : 0.0, mgx = training ? sum_gx / count : 0.0;
        for (size_t s = 0; s < n; s++) {
            const float *x = in + (s * channels + c) * hw, *g = dout + (s * channels + c) * hw;
            float *d = din + (s * channels + c) * hw;
            for (size_t i = 0; i < hw; i++) {
                double xhat = (x[i] - mean) * invstd;
                d[i] = (float)(k * (g[i] - mg - xhat * mgx));
            }
        }
    }
}

void batchnorm2d_local_grad_sums(double *sums, float *dgamma, float *dbeta, const float *dout,
                                 const float *in, const float *save_mean, const float *save_invstd,
                                 size_t channels, size_t n, size_t hw, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long cl = 0; cl < (long)channels; cl++) {
        size_t c = (size_t)cl;
        double sum_g = 0.0, sum_gx = 0.0;
        for (size_t s = 0; s < n; s++)
            plane_grad_sums(in + (s * channels + c) * hw, dout + (s * channels + c) * hw, hw,
                            save_mean[c], save_invstd[c], &sum_g, &sum_gx);
        if (dgamma)
            dgamma[c] += (float)sum_gx;
        if (dbeta)
            dbeta[c] += (float)sum_g;
        sums[c] = sum_g;
        sums[channels + c] = sum_gx;
    }
}

void batchnorm2d_input_grad_summed(float *din, const float *dout, const float *in,
                                   const float *gamma, const float *save_mean,
                                   const float *save_invstd, const double *sums, double count,
                                   size_t channels, size_t n, size_t hw, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long cl = 0; cl < (long)channels; cl++) {
        size_t c = (size_t)cl;
        const double mean = save_mean[c], invstd = save_invstd[c];
        const double k = gamma[c] * invstd;
        const double mg = sums[c] / count, mgx = sums[channels + c] / count;
        for (size_t s = 0; s < n; s++) {
            const float *x = in + (s * channels + c) * hw, *g = dout + (s * channels + c) * hw;
            float *d = din + (s * channels + c) * hw;
            for (size_t i = 0; i < hw; i++) {
                double xhat = (x[i] - mean) * invstd;
                d[i] = (float)(k * (g[i] - mg - xhat * mgx));
            }
        }
    }
}
