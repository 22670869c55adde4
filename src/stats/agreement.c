/* agreement.c - inter-rater agreement of one category: ICC and Kendall's W
 * on the volumes every rater of the category scored (complete cases),
 * Krippendorff's alpha on all ratings (it allows missing values), and each
 * rater's Spearman correlation with the consensus of the other raters. */
#include "cbctiq/ratings.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void cbq_agreement_free(cbq_agreement *a)
{
    free(a->rater);
    free(a->rater_rho);
    a->rater = NULL;
    a->rater_rho = NULL;
}

static int rater_vs_rest(const cbq_ratings *r, size_t cat, size_t rater, double *x, double *y,
                         cbq_corr *out, cbq_error *err)
{
    size_t n = 0;
    for (size_t v = 0; v < r->n_volumes; v++) {
        double s = cbq_ratings_score(r, cat, v, rater);
        if (isnan(s))
            continue;
        cbq_consensus cs;
        cbq_consensus_of(r, cat, v, rater, &cs);
        if (!cs.n_raters)
            continue;
        x[n] = s;
        y[n++] = cs.mean;
    }
    return cbq_spearman(x, y, n, out, err);
}

int cbq_agreement_compute(const cbq_ratings *r, size_t cat, cbq_agreement *out, cbq_error *err)
{
    memset(out, 0, sizeof *out);
    out->category = cat;
    size_t nv = r->n_volumes, nr = r->n_raters;
    out->rater = malloc((nr + 1) * sizeof *out->rater);
    out->rater_rho = calloc(nr + 1, sizeof *out->rater_rho);
    double *all = calloc(nv * nr + 2 * nv + 1, sizeof *all);
    if (!out->rater || !out->rater_rho || !all) {
        free(all);
        cbq_agreement_free(out);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "agreement: out of memory");
    }
    for (size_t k = 0; k < nr; k++)
        for (size_t v = 0; v < nv; v++)
            if (!isnan(cbq_ratings_score(r, cat, v, k))) {
                out->rater[out->n_raters++] = k;
                break;
            }
    size_t k_used = out->n_raters;
    /* units x coders with NaN for missing; complete rows copied to the front later */
    double *m = all, *x = all + nv * nr, *y = x + nv;
    size_t n_units = 0;
    for (size_t v = 0; v < nv; v++) {
        size_t have = 0;
        for (size_t j = 0; j < k_used; j++) {
            double s = cbq_ratings_score(r, cat, v, out->rater[j]);
            m[n_units * k_used + j] = s;
            have += !isnan(s);
        }
        if (have)
            n_units++;
    }
    int rc = cbq_krippendorff_alpha(m, n_units, k_used, CBQ_ALPHA_INTERVAL, &out->alpha_interval,
                                    &out->alpha_reason, err);
    if (rc == CBQ_OK)
        rc = cbq_krippendorff_alpha(m, n_units, k_used, CBQ_ALPHA_ORDINAL, &out->alpha_ordinal,
                                    &out->alpha_reason, err);
    /* compact to complete rows (in place: row i moves to row <= i) */
    size_t n_complete = 0;
    for (size_t i = 0; i < n_units; i++) {
        int complete = 1;
        for (size_t j = 0; j < k_used; j++)
            complete &= !isnan(m[i * k_used + j]);
        if (!complete)
            continue;
        memmove(m + n_complete * k_used, m + i * k_used, k_used * sizeof *m);
        n_complete++;
    }
    out->n_complete = n_complete;
    if (rc == CBQ_OK)
        rc = cbq_icc_compute(m, n_complete, k_used, &out->icc, err);
    if (rc == CBQ_OK)
        rc = cbq_kendall_w_compute(m, n_complete, k_used, &out->kw, err);
    for (size_t j = 0; rc == CBQ_OK && j < k_used; j++)
        rc = rater_vs_rest(r, cat, out->rater[j], x, y, &out->rater_rho[j], err);
    free(all);
    if (rc != CBQ_OK)
        cbq_agreement_free(out);
    return rc;
}
