/* report_profiles.c - the report's z-profiles of attribution: AE per axial
 * slice (the slice sums that add up to a volume's AE, attrib/profiles.csv)
 * against the slice's position along z, for the volumes the map figures
 * show, with the median over all test volumes as a reference. */
#define _POSIX_C_SOURCE 200809L
#include "study/report_figures.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Slice positions closer than this (mm) are the same position. */
#define SAME_Z_MM 1e-3

int report_profiles_read(const study_ctx *ctx, report_profiles *p, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    memset(p, 0, sizeof *p);
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_ATTRIB, "profiles.csv", path, sizeof path, err));
    CBQ_TRY(cbq_csv_read(&p->t, path, err));
    int rc = cbq_csv_require_col(&p->t, "volume_id", &p->c_volume, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&p->t, "category", &p->c_category, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&p->t, "z_mm", &p->c_z, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&p->t, "ae", &p->c_ae, err);
    if (rc != CBQ_OK)
        cbq_csv_free(&p->t);
    return rc;
}

void report_profiles_free(report_profiles *p) { cbq_csv_free(&p->t); }

/* (z, ae) of the rows of `cat` (and of volume `id` unless NULL) into xy
 * (2 x n_rows doubles, pairs), in file order; *n receives how many. */
static int profile_rows(const report_profiles *p, const char *cat, const char *id, double *xy,
                        size_t *n, cbq_error *err)
{
    *n = 0;
    for (size_t i = 0; i < p->t.n_rows; i++) {
        if (strcmp(cbq_csv_cell(&p->t, i, p->c_category), cat) != 0 ||
            (id && strcmp(cbq_csv_cell(&p->t, i, p->c_volume), id) != 0))
            continue;
        CBQ_TRY(cbq_csv_get_double(&p->t, i, p->c_z, &xy[2 * *n], err));
        CBQ_TRY(cbq_csv_get_double(&p->t, i, p->c_ae, &xy[2 * *n + 1], err));
        (*n)++;
    }
    return CBQ_OK;
}

static int by_z_then_ae(const void *a, const void *b)
{
    const double *u = a, *v = b;
    if (u[0] != v[0])
        return u[0] < v[0] ? -1 : 1;
    return (u[1] > v[1]) - (u[1] < v[1]);
}

/* In place: xy (n sorted pairs) becomes the per-position medians of the
 * positions held by at least half of n_volumes volumes; *m receives how many.
 * Volumes on different z grids share no position, and then there is none. */
static void median_profile(double *xy, size_t n, size_t n_volumes, size_t *m)
{
    qsort(xy, n, 2 * sizeof *xy, by_z_then_ae);
    *m = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && xy[2 * j] - xy[2 * i] < SAME_Z_MM)
            j++;
        size_t g = j - i;
        if (2 * g >= n_volumes) {
            double med = g % 2 ? xy[2 * (i + g / 2) + 1]
                               : 0.5 * (xy[2 * (i + g / 2 - 1) + 1] + xy[2 * (i + g / 2) + 1]);
            double z = xy[2 * i];
            xy[2 * *m] = z;
            xy[2 * *m + 1] = med;
            (*m)++;
        }
        i = j;
    }
}

/* Splits n (x, y) pairs into separate x and y arrays (cbq_series wants them so). */
static void unzip(const double *xy, size_t n, double *x, double *y)
{
    for (size_t i = 0; i < n; i++) {
        x[i] = xy[2 * i];
        y[i] = xy[2 * i + 1];
    }
}

typedef struct {
    cbq_series s[2 * 3 + 2]; /* picks, median, extents */
    char labels[3][400];
    double extent[3][2];
    size_t n;
} profile_chart;

static int add_pick(profile_chart *pc, const report_profiles *p, const char *cat,
                    const report_profile_pick *pk, size_t idx, double *xy, double *out,
                    cbq_error *err)
{
    size_t n;
    CBQ_TRY(profile_rows(p, cat, pk->id, xy, &n, err));
    if (n == 0)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "attrib/profiles.csv: no rows for %s %s", pk->id, cat);
    unzip(xy, n, out, out + n);
    snprintf(pc->labels[idx], sizeof pc->labels[idx], "%s AE: %.200s (%.4g)", pk->role, pk->id,
             pk->ae);
    pc->s[pc->n++] = (cbq_series){.kind = CBQ_SERIES_LINE, .label = pc->labels[idx], .x = out,
                                  .y = out + n, .n = n, .color = (int)idx};
    return CBQ_OK;
}

/* Dashed lines at each pick's structure extent, in the pick's colour. */
static void add_extents(profile_chart *pc, const report_profile_pick *picks, size_t n_picks)
{
    int labelled = 0;
    for (size_t i = 0; i < n_picks; i++) {
        if (!isfinite(picks[i].z_lo))
            continue;
        pc->extent[i][0] = picks[i].z_lo;
        pc->extent[i][1] = picks[i].z_hi;
        pc->s[pc->n++] = (cbq_series){.kind = CBQ_SERIES_VLINE, .y = pc->extent[i], .n = 2,
                                      .color = (int)i, .dashed = 1,
                                      .label = labelled++ ? NULL : "structure extent"};
    }
}

static int draw_profile(cbq_report *r, const study_ctx *ctx, profile_chart *pc, size_t k,
                        int has_extent, cbq_error *err)
{
    const char *cat = ctx->categories[k];
    char title[160], stem[96], caption[700];
    snprintf(title, sizeof title, "%s: AE along z", cat);
    snprintf(stem, sizeof stem, "profile_%s", cat);
    snprintf(caption, sizeof caption,
             "%s: AE per axial slice (the slice's sum of the raw %s map on the model-input grid; "
             "the slices add up to the volume's AE) against the slice's position along z "
             "(world superior coordinate, mm, inferior on the left), for the volumes of the "
             "map figure, with the median over the test volumes in black%s.",
             cat, ctx->cfg->attrib.method,
             has_extent ? "; dashed lines bound each volume's structure" : "");
    cbq_chart c = {.title = title, .x_label = "z (mm, superior)", .y_label = "AE per slice",
                   .series = pc->s, .n_series = pc->n};
    return report_add_chart(r, &c, stem, caption, err);
}

int report_profile_figure(cbq_report *r, const study_ctx *ctx, const report_profiles *p, size_t k,
                          const report_profile_pick *picks, size_t n_picks, size_t n_volumes,
                          cbq_error *err)
{
    profile_chart pc;
    memset(&pc, 0, sizeof pc);
    size_t rows = p->t.n_rows;
    /* xy scratch (2 rows), then per pick and for the median x and y arrays. */
    double *xy = malloc((2 * rows * (n_picks + 2) + 1) * sizeof *xy);
    if (!xy)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    const char *cat = ctx->categories[k];
    int rc = CBQ_OK;
    for (size_t i = 0; i < n_picks && rc == CBQ_OK; i++)
        rc = add_pick(&pc, p, cat, &picks[i], i, xy, xy + 2 * rows * (i + 1), err);
    size_t m = 0, n_all = 0;
    if (rc == CBQ_OK)
        rc = profile_rows(p, cat, NULL, xy, &n_all, err);
    if (rc == CBQ_OK)
        median_profile(xy, n_all, n_volumes, &m);
    double *med = xy + 2 * rows * (n_picks + 1);
    unzip(xy, m, med, med + m);
    char med_label[64];
    snprintf(med_label, sizeof med_label, "median of %zu test volumes", n_volumes);
    if (m > 0)
        pc.s[pc.n++] = (cbq_series){.kind = CBQ_SERIES_LINE, .label = med_label, .x = med,
                                    .y = med + m, .n = m, .color = 6};
    size_t before = pc.n;
    add_extents(&pc, picks, n_picks);
    if (rc == CBQ_OK)
        rc = draw_profile(r, ctx, &pc, k, pc.n > before, err);
    free(xy);
    return rc;
}
