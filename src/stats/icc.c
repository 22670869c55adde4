/* icc.c - intraclass correlations from the two-way ANOVA of a complete
 * targets x judges matrix (Shrout & Fleiss 1979, Psychol Bull 86:420;
 * McGraw & Wong 1996): ICC(2,1), ICC(2,k) (two-way random, absolute
 * agreement) and ICC(3,1), ICC(3,k) (two-way mixed, consistency). */
#include "cbctiq/ratings.h"

#include <math.h>
#include <stdlib.h>

int cbq_icc_compute(const double *m, size_t n, size_t k, cbq_icc *out, cbq_error *err)
{
    *out = (cbq_icc){.n = n, .k = k, .bms = NAN, .jms = NAN, .ems = NAN, .icc2_1 = NAN,
                     .icc2_k = NAN, .icc3_1 = NAN, .icc3_k = NAN};
    if (n < 2 || k < 2) {
        out->reason = "ICC needs at least 2 volumes rated by all of at least 2 raters";
        return CBQ_OK;
    }
    double *col = calloc(k, sizeof *col);
    if (!col)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "ICC: out of memory");
    double grand = 0;
    for (size_t i = 0; i < n * k; i++)
        grand += m[i];
    grand /= (double)(n * k);
    double ss_rows = 0, ss_total = 0, ss_cols = 0;
    for (size_t i = 0; i < n; i++) {
        double row = 0;
        for (size_t j = 0; j < k; j++) {
            row += m[i * k + j];
            col[j] += m[i * k + j];
            ss_total += (m[i * k + j] - grand) * (m[i * k + j] - grand);
        }
        row /= (double)k;
        ss_rows += (row - grand) * (row - grand);
    }
    for (size_t j = 0; j < k; j++) {
        double cm = col[j] / (double)n;
        ss_cols += (cm - grand) * (cm - grand);
    }
    free(col);
    double nn = (double)n, kk = (double)k;
    ss_rows *= kk;
    ss_cols *= nn;
    out->bms = ss_rows / (nn - 1);
    out->jms = ss_cols / (kk - 1);
    out->ems = (ss_total - ss_rows - ss_cols) / ((nn - 1) * (kk - 1));
    double b = out->bms, j = out->jms, e = out->ems;
    if (b == 0 && e == 0) {
        out->reason = "ICC undefined: every volume has the same score from every rater";
        return CBQ_OK;
    }
    out->icc2_1 = (b - e) / (b + (kk - 1) * e + kk * (j - e) / nn);
    out->icc2_k = (b - e) / (b + (j - e) / nn);
    out->icc3_1 = (b - e) / (b + (kk - 1) * e);
    out->icc3_k = b > 0 ? (b - e) / b : NAN;
    return CBQ_OK;
}
