/* stage_atypical.c - stage 7: volumes whose attribution is atypical. Per
 * category, AE is fitted on consensus by a monotone (isotonic) function,
 * increasing when rho(AE, consensus) >= 0, else decreasing; a volume whose
 * residual has a robust z-score (median / 1.4826 MAD) beyond
 * atypical.mad_threshold is flagged. The atypical.influential volumes whose
 * removal moves the leave-one-out rho most are listed too. Each row says
 * why (atypical.csv); residuals.csv has every test volume. Below
 * STUDY_SMALL_N test volumes in a category nothing is flagged there: the MAD
 * of a handful of residuals is itself noise, and so is the volume that
 * moves a handful-volume rho most. */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/csv.h"
#include "cbctiq/robust_fit.h"
#include "cbctiq/stats.h"
#include "study/ae_table.h"
#include "study/verdict.h"

typedef struct {
    double *fit, *resid, *z;
    size_t *rank;        /* influence rank (1 = largest |change|), 0 = not ranked */
    cbq_loo loo;
    double rho, scale;
    int increasing;
} cat_result;

static const char *const ATYP_HEADER[] = {
    "category", "volume_id", "consensus", "ae", "fit", "residual", "robust_z", "loo_rho",
    "rho_change", "influence_rank", "flag", "reason"};
enum { ATYP_COLS = sizeof ATYP_HEADER / sizeof ATYP_HEADER[0] };

static void result_free(cat_result *r)
{
    free(r->fit);
    free(r->rank);
    cbq_loo_free(&r->loo);
}

/* rank[i] = position of i by decreasing |rho change| (1-based) for the top
 * `top`, ties by volume order; NaN changes are never ranked. */
static void rank_influence(const cbq_loo *loo, size_t n, size_t top, size_t *rank)
{
    for (size_t i = 0; i < n; i++)
        rank[i] = 0;
    for (size_t r = 1; r <= top && r <= n; r++) {
        long best = -1;
        for (size_t i = 0; i < n; i++) {
            double v = fabs(loo->influence[i]);
            if (rank[i] || !isfinite(v))
                continue;
            if (best < 0 || v > fabs(loo->influence[best]))
                best = (long)i;
        }
        if (best < 0)
            break;
        rank[best] = r;
    }
}

static int analyse(const study_ctx *ctx, const ae_category *ac, cat_result *r, cbq_error *err)
{
    memset(r, 0, sizeof *r);
    size_t n = ac->n;
    r->fit = malloc((3 * n + 1) * sizeof *r->fit);
    r->rank = calloc(n + 1, sizeof *r->rank);
    if (!r->fit || !r->rank)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    r->resid = r->fit + n;
    r->z = r->resid + n;
    cbq_corr c;
    CBQ_TRY(cbq_spearman(ac->ae, ac->consensus, n, &c, err));
    r->rho = c.r;
    r->increasing = !(c.r < 0);
    if (n == 0)
        return CBQ_OK;
    CBQ_TRY(cbq_isotonic_fit(ac->consensus, ac->ae, n, r->increasing, r->fit, err));
    for (size_t i = 0; i < n; i++)
        r->resid[i] = ac->ae[i] - r->fit[i];
    CBQ_TRY(cbq_robust_z(r->resid, n, r->z, &r->scale, err));
    CBQ_TRY(cbq_spearman_loo(ac->ae, ac->consensus, n, c.r, &r->loo, err));
    if (!r->loo.reason && n >= STUDY_SMALL_N)
        rank_influence(&r->loo, n, (size_t)ctx->cfg->atypical.influential, r->rank);
    return CBQ_OK;
}

static void describe(const study_ctx *ctx, const ae_category *ac, const cat_result *r, size_t i,
                     int flagged, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    if (flagged)
        len += (size_t)snprintf(buf, cap,
                                "AE %.4g is %.1f robust SD %s the %s fit (%.4g) at consensus %.2f "
                                "(threshold %.1f)",
                                ac->ae[i], fabs(r->z[i]), r->z[i] > 0 ? "above" : "below",
                                r->increasing ? "increasing" : "decreasing", r->fit[i],
                                ac->consensus[i], ctx->cfg->atypical.mad_threshold);
    if (r->rank[i] && len < cap)
        snprintf(buf + len, cap - len,
                 "%sleaving it out moves rho from %.3f to %.3f (largest change #%zu)",
                 len ? "; " : "", r->rho, r->loo.rho[i], r->rank[i]);
}

static int put_row(cbq_csv_writer *w, const char *cat, const ae_category *ac,
                   const cat_result *r, size_t i, const char *flag, const char *reason,
                   cbq_error *err)
{
    cbq_csv_put_str(w, cat);
    cbq_csv_put_str(w, ac->volumes[i]);
    cbq_csv_put_double(w, ac->consensus[i]);
    cbq_csv_put_double(w, ac->ae[i]);
    cbq_csv_put_double(w, r->fit[i]);
    cbq_csv_put_double(w, r->resid[i]);
    cbq_csv_put_double(w, r->z[i]);
    cbq_csv_put_double(w, r->loo.rho ? r->loo.rho[i] : NAN);
    cbq_csv_put_double(w, r->loo.rho ? r->loo.rho[i] - r->rho : NAN);
    cbq_csv_put_int(w, (long long)r->rank[i]);
    cbq_csv_put_str(w, flag);
    cbq_csv_put_str(w, reason);
    return cbq_csv_end_row(w, err);
}

static int open_writer(const study_ctx *ctx, cbq_csv_writer *w, const char *name, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_output_path(ctx, name, path, sizeof path, err));
    return cbq_csv_writer_open(w, path, ATYP_HEADER, ATYP_COLS, err);
}

int study_stage_atypical(study_ctx *ctx, cbq_error *err)
{
    ae_table t;
    CBQ_TRY(ae_table_read(ctx, &t, err));
    cbq_csv_writer wf, wa;
    int rc = open_writer(ctx, &wf, "atypical.csv", err);
    int open_f = rc == CBQ_OK, open_a = 0;
    if (rc == CBQ_OK)
        open_a = (rc = open_writer(ctx, &wa, "residuals.csv", err)) == CBQ_OK;
    size_t n_flag = 0, n_infl = 0, n_small = 0;
    for (size_t k = 0; k < ctx->n_categories && rc == CBQ_OK; k++) {
        const ae_category *ac = &t.cat[k];
        cat_result r;
        rc = analyse(ctx, ac, &r, err);
        n_small += ac->n < STUDY_SMALL_N;
        for (size_t i = 0; i < ac->n && rc == CBQ_OK; i++) {
            int flagged = ac->n >= STUDY_SMALL_N && fabs(r.z[i]) > ctx->cfg->atypical.mad_threshold;
            const char *flag = flagged && r.rank[i] ? "residual+influential"
                               : flagged            ? "residual"
                               : r.rank[i]          ? "influential"
                                                    : "";
            char reason[600];
            describe(ctx, ac, &r, i, flagged, reason, sizeof reason);
            rc = put_row(&wa, ctx->categories[k], ac, &r, i, flag, reason, err);
            if (rc == CBQ_OK && flag[0])
                rc = put_row(&wf, ctx->categories[k], ac, &r, i, flag, reason, err);
            n_flag += (size_t)flagged;
            n_infl += r.rank[i] != 0;
        }
        result_free(&r);
    }
    if (rc == CBQ_OK)
        rc = cbq_csv_writer_commit(&wf, err);
    else if (open_f)
        cbq_csv_writer_abort(&wf);
    if (rc == CBQ_OK)
        rc = cbq_csv_writer_commit(&wa, err);
    else if (open_a)
        cbq_csv_writer_abort(&wa);
    int len = snprintf(ctx->summary, sizeof ctx->summary,
                       "%zu (volume, category) pairs beyond |robust z| %.1f of the isotonic fit; "
                       "%zu most influential listed", n_flag, ctx->cfg->atypical.mad_threshold,
                       n_infl);
    if (n_small && len > 0 && (size_t)len < sizeof ctx->summary)
        snprintf(ctx->summary + len, sizeof ctx->summary - (size_t)len,
                 "; none flagged in %zu categor%s with fewer than %d test volumes", n_small,
                 n_small == 1 ? "y" : "ies", STUDY_SMALL_N);
    ae_table_free(&t);
    return rc;
}
