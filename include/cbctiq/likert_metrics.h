/* likert_metrics.h - how well predicted quality scores match the consensus
 * on the 1..5 Likert scale: MAE, RMSE, Spearman, the confusion matrix of
 * rounded scores and Cohen's quadratic-weighted kappa. Arrays in, numbers
 * out; the study's evaluate stage reads and writes the tables.
 *
 *   cbq_eval_metrics m;
 *   CBQ_TRY(cbq_eval_metrics_compute(pred, consensus, n, &m, err));
 */
#ifndef CBCTIQ_LIKERT_METRICS_H
#define CBCTIQ_LIKERT_METRICS_H

#include <stddef.h>
#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { CBQ_LIKERT_LEVELS = 5 };

/* A score rounded to a Likert level 1..5: half-up rounding, then clamped. */
int cbq_likert_round(double score);

typedef struct {
    size_t n;
    double mae, rmse;
    double rho, p;          /* Spearman of prediction vs truth; NAN when undefined */
    double kappa;           /* quadratic-weighted, on rounded scores; NAN when undefined */
    /* confusion[t][p]: truth level t+1 (rows), predicted level p+1 (columns) */
    size_t confusion[CBQ_LIKERT_LEVELS][CBQ_LIKERT_LEVELS];
} cbq_eval_metrics;

/* Cohen's kappa with quadratic weights w_ij = (i-j)^2/(k-1)^2 from a k x k
 * confusion matrix (row-major, rows = rater A): 1 - sum(w O) / sum(w E),
 * E the outer product of the marginals over N. NAN when sum(w E) = 0. */
double cbq_quadratic_kappa(const size_t *confusion, size_t k);

/* All metrics of `pred` against `truth` (n values each, n >= 1). */
int cbq_eval_metrics_compute(const double *pred, const double *truth, size_t n,
                             cbq_eval_metrics *m, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
