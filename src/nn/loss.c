/* loss.c - MSE, Huber and cross-entropy (see loss.h for the formulas). */
#include <math.h>
#include <string.h>

#include "cbctiq/loss.h"

static double mse(const float *pred, const float *target, size_t count, float *dpred)
{
    double sum = 0.0;
    for (size_t i = 0; i < count; i++) {
        double d = (double)pred[i] - target[i];
        sum += d * d;
        if (dpred)
            dpred[i] = (float)(2.0 * d / (double)count);
    }
    return sum / (double)count;
}

static double huber(const float *pred, const float *target, size_t count, double delta, float *dpred)
{
    double sum = 0.0;
    for (size_t i = 0; i < count; i++) {
        double d = (double)pred[i] - target[i], ad = fabs(d);
        sum += ad < delta ? 0.5 * d * d : delta * (ad - 0.5 * delta);
        if (dpred)
            dpred[i] = (float)((ad < delta ? d : (d > 0 ? delta : -delta)) / (double)count);
    }
    return sum / (double)count;
}

static double cross_entropy(const float *pred, const float *target, size_t n, size_t k, float *dpred)
{
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float *z = pred + i * k, *t = target + i * k;
        double zmax = z[0];
        for (size_t j = 1; j < k; j++)
            zmax = z[j] > zmax ? z[j] : zmax;
        double se = 0.0, tsum = 0.0;
        for (size_t j = 0; j < k; j++) {
            se += exp(z[j] - zmax);
            tsum += t[j];
        }
        double lse = zmax + log(se);
        for (size_t j = 0; j < k; j++) {
            total -= t[j] * (z[j] - lse);
            /* d/dz_j of -sum t log softmax = softmax_j * sum(t) - t_j */
            if (dpred)
                dpred[i * k + j] = (float)((exp(z[j] - lse) * tsum - t[j]) / (double)n);
        }
    }
    return total / (double)n;
}

double cbq_loss(const cbq_loss_cfg *cfg, const float *pred, const float *target, size_t n, size_t k,
                float *dpred)
{
    switch (cfg->kind) {
    case CBQ_LOSS_HUBER:
        return huber(pred, target, n * k, cfg->delta > 0 ? cfg->delta : 1.0, dpred);
    case CBQ_LOSS_CROSS_ENTROPY:
        return cross_entropy(pred, target, n, k, dpred);
    case CBQ_LOSS_MSE:
    default:
        return mse(pred, target, n * k, dpred);
    }
}

int cbq_loss_parse(const char *name, cbq_loss_kind *kind)
{
    static const struct { const char *name; cbq_loss_kind kind; } table[] = {
        {"mse", CBQ_LOSS_MSE}, {"huber", CBQ_LOSS_HUBER}, {"cross_entropy", CBQ_LOSS_CROSS_ENTROPY}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (name && strcmp(name, table[i].name) == 0) {
            *kind = table[i].kind;
            return 1;
        }
    return 0;
}
