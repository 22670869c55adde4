/* consensus.c - weighted consensus score per (volume, category): the mean
 * over the raters who scored it, weighted by rater, with the weighted sd for
 * reliability weights (equal weights: the ordinary sample sd, ddof = 1). */
#include "cbctiq/ratings.h"

#include <math.h>

#include "cbctiq/csv.h"

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

int cbq_consensus_write(const cbq_ratings *r, const char *path, cbq_error *err)
{
    static const char *const header[] = {"volume_id", "category", "consensus", "n_raters", "sd"};
    cbq_csv_writer w;
    CBQ_TRY(cbq_csv_writer_open(&w, path, header, 5, err));
    int rc = CBQ_OK;
    for (size_t v = 0; rc == CBQ_OK && v < r->n_volumes; v++)
        for (size_t c = 0; rc == CBQ_OK && c < r->n_categories; c++) {
            cbq_consensus cs;
            cbq_consensus_of(r, c, v, CBQ_NO_RATER, &cs);
            if (!cs.n_raters)
                continue;
            cbq_csv_put_str(&w, r->volumes[v]);
            cbq_csv_put_str(&w, r->categories[c]);
            cbq_csv_put_double(&w, cs.mean);
            cbq_csv_put_int(&w, (long long)cs.n_raters);
            cbq_csv_put_double(&w, cs.sd);
            rc = cbq_csv_end_row(&w, err);
        }
    if (rc == CBQ_OK)
        return cbq_csv_writer_commit(&w, err);
    cbq_csv_writer_abort(&w);
    return rc;
}
