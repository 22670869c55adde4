/* likert_metrics.c - how well volume-level predictions match the consensus:
 * MAE, RMSE, Spearman, and agreement on the Likert scale (confusion matrix,
 * quadratic-weighted kappa on rounded scores). Pure numbers in, numbers out;
 * the study's evaluate stage reads and writes the CSVs. */
#include "cbctiq/likert_metrics.h"

#include "cbctiq/stats.h"

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
    cbq_corr c;
    CBQ_TRY(cbq_spearman(pred, truth, n, &c, err));
    m->rho = c.r;
    m->p = c.p;
    m->kappa = cbq_quadratic_kappa(&m->confusion[0][0], CBQ_LIKERT_LEVELS);
    return CBQ_OK;
}
