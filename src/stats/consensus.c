/* consensus.c - weighted consensus score per (volume, category): the mean
 * over the raters who scored it, weighted by rater, with the weighted sd for
 * reliability weights (equal weights: the ordinary sample sd, ddof = 1). */
#include "cbctiq/ratings.h"

#include <math.h>
#include <stdlib.h>

void cbq_consensus_of(const cbq_ratings *r, size_t cat, size_t vol, size_t skip,
                      cbq_consensus *out)
{
    double v1 = 0, v2 = 0, sum = 0;
    size_t n = 0;
    for (size_t k = 0; k < r->n_raters; k++) {
        double s = cbq_ratings_score(r, cat, vol, k);
        if (k == skip || isnan(s))
            continue;
        double w = r->weight[k];
        v1 += w;
        v2 += w * w;
        sum += w * s;
        n++;
    }
    out->n_raters = n;
    out->mean = n ? sum / v1 : NAN;
    out->sd = NAN;
    if (n < 2)
        return;
    double ss = 0;
    for (size_t k = 0; k < r->n_raters; k++) {
        double s = cbq_ratings_score(r, cat, vol, k);
        if (k == skip || isnan(s))
            continue;
        ss += r->weight[k] * (s - out->mean) * (s - out->mean);
    }
    out->sd = sqrt(ss / (v1 - v2 / v1));
}

int cbq_consensus_table(const cbq_ratings *r, cbq_consensus **table, cbq_error *err)
{
    size_t cells;
    if (!cbq_size_mul(&cells, r->n_volumes, r->n_categories))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "consensus: too many volumes x categories");
    *table = malloc((cells ? cells : 1) * sizeof **table);
    if (!*table)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "consensus: out of memory");
    for (size_t v = 0; v < r->n_volumes; v++)
        for (size_t c = 0; c < r->n_categories; c++)
            cbq_consensus_of(r, c, v, CBQ_NO_RATER, &(*table)[v * r->n_categories + c]);
    return CBQ_OK;
}
