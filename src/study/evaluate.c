/* evaluate.c - how well volume-level predictions match the consensus:
 * MAE, RMSE, Spearman, and agreement on the Likert scale (confusion matrix,
 * quadratic-weighted kappa on rounded scores). Pure numbers in, numbers out;
 * the stage that reads and writes the CSVs lives in pipeline.c. */
#include "cbctiq/study.h"

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int cbq_likert_round(double score)
{
    /* Half-up on the 1..5 scale: a consensus of 3.5 counts as 4. */
    double r = floor(score + 0.5);
    if (!(r >= 1))
        return 1;
    if (r > CBQ_LIKERT_LEVELS)
        return CBQ_LIKERT_LEVELS;
    return (int)r;
}

double cbq_quadratic_kappa(const size_t *confusion, size_t k)
{
    if (k < 2)
        return NAN;
    double total = 0;
    double *row = calloc(2 * k, sizeof *row);
    if (!row)
        return NAN;
    double *col = row + k;
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < k; j++) {
            double o = (double)confusion[i * k + j];
            row[i] += o;
            col[j] += o;
            total += o;
        }
    double observed = 0, expected = 0;
    double denom = (double)((k - 1) * (k - 1));
    for (size_t i = 0; i < k && total > 0; i++)
        for (size_t j = 0; j < k; j++) {
            double d = (double)i - (double)j;
            double w = d * d / denom;
            observed += w * (double)confusion[i * k + j];
            expected += w * row[i] * col[j] / total;
        }
    free(row);
    return expected > 0 ? 1.0 - observed / expected : NAN;
}

/* Average ranks (1-based) of v[0..n), ties sharing the mean of their ranks. */
static int average_ranks(const double *v, size_t n, double *rank)
{
    size_t *order = malloc(n * sizeof *order);
    if (!order)
        return 0;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    /* Insertion sort keeps this dependency-free; n is a test split (tens). */
    for (size_t i = 1; i < n; i++) {
        size_t cur = order[i], j = i;
        while (j > 0 && v[order[j - 1]] > v[cur]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = cur;
    }
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && v[order[j]] == v[order[i]])
            j++;
        double r = 0.5 * (double)(i + j - 1) + 1.0;
        for (size_t t = i; t < j; t++)
            rank[order[t]] = r;
        i = j;
    }
    free(order);
    return 1;
}

double cbq_study_spearman(const double *x, const double *y, size_t n, double *p)
{
    if (p)
        *p = NAN;
    if (n < 3)
        return NAN;
    double *rx = malloc(2 * n * sizeof *rx);
    if (!rx)
        return NAN;
    double *ry = rx + n;
    if (!average_ranks(x, n, rx) || !average_ranks(y, n, ry)) {
        free(rx);
        return NAN;
    }
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) {
        mx += rx[i];
        my += ry[i];
    }
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        sxy += (rx[i] - mx) * (ry[i] - my);
        sxx += (rx[i] - mx) * (rx[i] - mx);
        syy += (ry[i] - my) * (ry[i] - my);
    }
    free(rx);
    if (sxx <= 0 || syy <= 0)
        return NAN;
    double rho = sxy / sqrt(sxx * syy);
    if (rho > 1)
        rho = 1;
    if (rho < -1)
        rho = -1;
    if (p) {
        double df = (double)n - 2.0;
        if (fabs(rho) >= 1.0) {
            *p = 0.0;
        } else {
            double t = rho * sqrt(df / ((1.0 - rho) * (1.0 + rho)));
            *p = 2.0 * gsl_cdf_tdist_Q(fabs(t), df);
        }
    }
    return rho;
}

int cbq_eval_metrics_compute(const double *pred, const double *truth, size_t n,
                             cbq_eval_metrics *m, cbq_error *err)
{
    memset(m, 0, sizeof *m);
    CBQ_CHECK_ARG(err, n >= 1, "evaluation needs at least one volume");
    double abs_sum = 0, sq_sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(pred[i]) || !isfinite(truth[i]))
            return CBQ_FAIL(err, CBQ_ERR_RANGE, "evaluation: value %zu is not finite", i);
        double d = pred[i] - truth[i];
        abs_sum += fabs(d);
        sq_sum += d * d;
        m->confusion[cbq_likert_round(truth[i]) - 1][cbq_likert_round(pred[i]) - 1]++;
    }
    m->n = n;
    m->mae = abs_sum / (double)n;
    m->rmse = sqrt(sq_sum / (double)n);
    m->rho = cbq_study_spearman(pred, truth, n, &m->p);
    m->kappa = cbq_quadratic_kappa(&m->confusion[0][0], CBQ_LIKERT_LEVELS);
    return CBQ_OK;
}
