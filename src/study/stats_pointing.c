/* stats_pointing.c - the stats stage's part on where the maps point and
 * whether that matters (stats/pointing.csv, docs/formats.md): per category
 * and per ae.csv localisation or faithfulness column, its mean over the
 * test volumes that have a value and Spearman's rho of it with the
 * consensus and with AE (volumes with an empty cell left out of that pair). */
#define _POSIX_C_SOURCE 200809L
#include "study/stats_pointing.h"

#include <math.h>
#include <stdlib.h>

#include "cbctiq/csv.h"
#include "cbctiq/stats.h"

static const char *const HEADER[] = {"category", "measure", "n", "n_empty", "mean",
                                     "rho_consensus", "p_consensus", "rho_ae", "p_ae",
                                     "reason"};
enum { N_HEADER = sizeof HEADER / sizeof HEADER[0] };

/* The volumes of category c with a value of measure m: values, consensus
 * and AE into the three arrays; returns how many. */
static size_t complete_pairs(const ae_category *c, int m, double *v, double *cons, double *ae)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        if (isfinite(c->pointing[m][i])) {
            v[n] = c->pointing[m][i];
            cons[n] = c->consensus[i];
            ae[n++] = c->ae[i];
        }
    return n;
}

static int put_row(cbq_csv_writer *w, const char *category, const ae_category *c, int m,
                   double *buf, cbq_error *err)
{
    double *v = buf, *cons = buf + c->n, *ae = buf + 2 * c->n;
    size_t n = complete_pairs(c, m, v, cons, ae);
    cbq_corr with_cons = {.r = NAN, .p = NAN}, with_ae = {.r = NAN, .p = NAN};
    const char *reason = n < 3 ? "fewer than 3 test volumes with a value" : NULL;
    if (!reason) {
        CBQ_TRY(cbq_spearman(v, cons, n, &with_cons, err));
        CBQ_TRY(cbq_spearman(v, ae, n, &with_ae, err));
        reason = with_cons.reason ? with_cons.reason : with_ae.reason;
    }
    double mean = 0.0;
    for (size_t i = 0; i < n; i++)
        mean += v[i] / (double)n;
    cbq_csv_put_str(w, category);
    cbq_csv_put_str(w, ae_pointing_name(m));
    cbq_csv_put_int(w, (long long)n);
    cbq_csv_put_int(w, (long long)(c->n - n));
    cbq_csv_put_double(w, n ? mean : NAN);
    cbq_csv_put_double(w, with_cons.r);
    cbq_csv_put_double(w, with_cons.p);
    cbq_csv_put_double(w, with_ae.r);
    cbq_csv_put_double(w, with_ae.p);
    cbq_csv_put_str(w, reason ? reason : "");
    return cbq_csv_end_row(w, err);
}

static int put_rows(cbq_csv_writer *w, const study_ctx *ctx, const ae_table *t, cbq_error *err)
{
    for (size_t k = 0; k < ctx->n_categories; k++) {
        const ae_category *c = &t->cat[k];
        double *buf = malloc((3 * c->n + 1) * sizeof *buf);
        if (!buf)
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
        int rc = CBQ_OK;
        for (int m = 0; m < AE_N_POINTING && rc == CBQ_OK; m++)
            rc = put_row(w, ctx->categories[k], c, m, buf, err);
        free(buf);
        CBQ_TRY(rc);
    }
    return CBQ_OK;
}

int stats_pointing_write(const study_ctx *ctx, const ae_table *t, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_output_path(ctx, "pointing.csv", path, sizeof path, err));
    cbq_csv_writer w;
    CBQ_TRY(cbq_csv_writer_open(&w, path, HEADER, N_HEADER, err));
    int rc = put_rows(&w, ctx, t, err);
    if (rc != CBQ_OK) {
        cbq_csv_writer_abort(&w);
        return rc;
    }
    return cbq_csv_writer_commit(&w, err);
}
