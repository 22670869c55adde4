/* ae_table.c - ae.csv (read by the data layer, ae_table.h) joined with
 * consensus.csv per category. */
#define _POSIX_C_SOURCE 200809L
#include "study/ae_table.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/ae_table.h"

void ae_table_free(ae_table *t)
{
    for (size_t k = 0; k < t->n_categories; k++) {
        free(t->cat[k].volumes);
        free(t->cat[k].consensus);
    }
    cbq_cohort_free(&t->cohort);
    free(t->left_out);
    memset(t, 0, sizeof *t);
}

static const char NOT_RATED[] =
    "no consensus score in any category: not rated, or its volume_id is spelled differently "
    "in the ratings";
static const char NOT_RATED_HERE[] = "no consensus score in this category: no rater scored it";

const char *ae_table_left_out_reason(const ae_table *t, size_t v, size_t k)
{
    unsigned all = (1u << t->n_categories) - 1u;
    if (!t->left_out || !(t->left_out[v] >> k & 1u))
        return NULL;
    return t->left_out[v] == all ? NOT_RATED : NOT_RATED_HERE;
}

void ae_table_left_out_text(const ae_table *t, const study_ctx *ctx, char *buf, size_t cap)
{
    unsigned all = (1u << t->n_categories) - 1u;
    size_t len = 0;
    buf[0] = '\0';
    for (size_t v = 0; v < t->cohort.n && len < cap; v++) {
        unsigned mask = t->left_out ? t->left_out[v] : 0;
        if (!mask)
            continue;
        int n = snprintf(buf + len, cap - len, "%s'%s': ", len ? "; " : "", t->cohort.v[v].id);
        len += n > 0 ? (size_t)n : 0;
        if (mask == all) {
            n = len < cap ? snprintf(buf + len, cap - len, "%s", NOT_RATED) : 0;
            len += n > 0 ? (size_t)n : 0;
            continue;
        }
        n = len < cap ? snprintf(buf + len, cap - len, "no consensus score in") : 0;
        len += n > 0 ? (size_t)n : 0;
        for (size_t k = 0, first = 1; k < t->n_categories && len < cap; k++)
            if (mask >> k & 1u) {
                n = snprintf(buf + len, cap - len, "%s %s", first ? "" : ",", ctx->categories[k]);
                len += n > 0 ? (size_t)n : 0;
                first = 0;
            }
        n = len < cap ? snprintf(buf + len, cap - len, " (no rater scored it there)") : 0;
        len += n > 0 ? (size_t)n : 0;
    }
}

const char *ae_pointing_name(int measure)
{
    static const char *const names[AE_N_POINTING] = {
        "energy_in_structure", "pointing_hit", "deletion_auc", "insertion_auc",
        "deletion_auc_random", "insertion_auc_random"};
    return measure >= 0 && measure < AE_N_POINTING ? names[measure] : NULL;
}

static int alloc_category(ae_category *c, size_t cap)
{
    c->volumes = calloc(cap + 1, sizeof *c->volumes);
    c->consensus = malloc(((6 + AE_N_POINTING) * cap + 1) * sizeof *c->consensus);
    if (!c->volumes || !c->consensus)
        return 0;
    c->ae = c->consensus + cap;
    c->ae_per_slice = c->ae + cap;
    c->pred = c->ae_per_slice + cap;
    c->n_slices = c->pred + cap;
    c->clipped = c->n_slices + cap;
    for (int m = 0; m < AE_N_POINTING; m++)
        c->pointing[m] = c->clipped + (size_t)(m + 1) * cap;
    return 1;
}

static void fill_row(const cbq_ae_row *r, ae_category *ac, size_t i)
{
    ac->ae[i] = r->ae;
    ac->ae_per_slice[i] = r->ae_per_slice;
    ac->pred[i] = r->pred;
    ac->n_slices[i] = r->n_slices;
    ac->clipped[i] = r->ae_clipped;
    const double pointing[AE_N_POINTING] = {r->energy_in_structure, r->pointing_hit,
                                            r->deletion_auc, r->insertion_auc,
                                            r->deletion_auc_random, r->insertion_auc_random};
    for (int m = 0; m < AE_N_POINTING; m++)
        ac->pointing[m][i] = pointing[m];
}

int ae_table_read(const study_ctx *ctx, ae_table *t, cbq_error *err)
{
    memset(t, 0, sizeof *t);
    size_t K = ctx->n_categories;
    CBQ_TRY(study_read_cohort(ctx, &t->cohort, err));
    t->n_categories = K;
    char path[CBQ_STUDY_PATH_MAX + 32];
    double *cons = malloc((t->cohort.n * K + 1) * sizeof *cons);
    t->left_out = calloc(t->cohort.n + 1, sizeof *t->left_out);
    int rc = cons && t->left_out ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    if (rc == CBQ_OK)
        rc = study_read_consensus(ctx, &t->cohort, cons, err);
    cbq_ae_table ae = {0};
    if (rc == CBQ_OK &&
        (rc = study_input_path(ctx, CBQ_STAGE_ATTRIB, "ae.csv", path, sizeof path, err)) == CBQ_OK)
        rc = cbq_ae_table_read(&ae, path, err);
    for (size_t k = 0; k < K && rc == CBQ_OK; k++) {
        ae_category *ac = &t->cat[k];
        if (!alloc_category(ac, t->cohort.n)) {
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
            break;
        }
        for (size_t v = 0; v < t->cohort.n && rc == CBQ_OK; v++) {
            const cbq_cohort_volume *sv = &t->cohort.v[v];
            if (sv->split != CBQ_SPLIT_TEST)
                continue;
            if (!isfinite(cons[v * K + k])) {
                t->n_left_out += !t->left_out[v];
                t->left_out[v] |= 1u << k;
                continue;
            }
            long r = cbq_ae_table_find(&ae, sv->id, ctx->categories[k]);
            if (r < 0) {
                rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: no AE for volume '%s', category '%s'",
                              path, sv->id, ctx->categories[k]);
                break;
            }
            ac->volumes[ac->n] = t->cohort.v[v].id;
            ac->consensus[ac->n] = cons[v * K + k];
            fill_row(&ae.rows[r], ac, ac->n);
            ac->n++;
        }
    }
    cbq_ae_table_free(&ae);
    free(cons);
    if (rc != CBQ_OK)
        ae_table_free(t);
    return rc;
}
