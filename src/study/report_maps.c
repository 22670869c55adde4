/* report_maps.c - the report's attribution-map figures, per category: the
 * test volumes with the highest, median and lowest AE as Grad-CAM overlays
 * at the level of the category's structure, and their AE profiles along z.
 * It reads the attribution stage's maps and profiles.csv and the cohort's
 * volumes and structures; it computes no statistics. */
#define _POSIX_C_SOURCE 200809L
#include "study/report_figures.h"

#include "cbctiq/model_input.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { N_PICKS = 3 };
static const char *const ROLE[N_PICKS] = {"highest", "median", "lowest"};

/* One shown volume and what its figures need, on the canonical grid. */
typedef struct {
    size_t row;                /* index into the category's ae_category arrays */
    const char *role;
    cbq_model_input in;        /* the CBCT (in.canon) and its structures */
    cbq_volume map;            /* this category's map; data NULL when maps are not saved */
    const uint8_t *structure;  /* 0/1 structure of the category (in in), NULL when none */
    const unsigned char *mask; /* the shown slice of `structure`, NULL when none */
    size_t slice;              /* the shown axial slice */
    const char *slice_by;      /* how it was chosen */
    double z_lo, z_hi;         /* the structure's extent along z (mm), NaN when none */
} pick_view;

size_t report_pick_rows(const ae_category *ac, size_t rows[3])
{
    size_t hi = 0, lo = 0;
    for (size_t i = 1; i < ac->n; i++) {
        hi = ac->ae[i] > ac->ae[hi] ? i : hi;
        lo = ac->ae[i] < ac->ae[lo] ? i : lo;
    }
    /* The median is the volume with as many AEs above as below it (rank
     * (n - 1) / 2 from the top, ties broken by row). */
    size_t med = hi;
    for (size_t i = 0; i < ac->n; i++) {
        size_t above = 0;
        for (size_t j = 0; j < ac->n; j++)
            above += ac->ae[j] > ac->ae[i] || (ac->ae[j] == ac->ae[i] && j < i);
        if (above == (ac->n - 1) / 2)
            med = i;
    }
    size_t cand[N_PICKS] = {hi, med, lo}, n = 0;
    for (size_t p = 0; p < N_PICKS && ac->n > 0; p++) {
        int seen = 0;
        for (size_t q = 0; q < n; q++)
            seen |= rows[q] == cand[p];
        if (!seen)
            rows[n++] = cand[p];
    }
    return n;
}

static void pick_free(pick_view *pv)
{
    cbq_model_input_free(&pv->in);
    cbq_volume_free(&pv->map);
    memset(pv, 0, sizeof *pv);
}

/* The volume on the canonical grid with its structures, through the one
 * model-input path; pv->structure is category k's. */
static int load_structure(const study_ctx *ctx, const cbq_cohort *c, const cbq_cohort_volume *sv,
                          size_t k, pick_view *pv, cbq_error *err)
{
    cbq_model_input_options o = {.with_structures = 1};
    CBQ_TRY(cbq_model_input_load(&pv->in, sv, c, NULL, &o, err));
    pv->structure = cbq_model_input_structure(&pv->in, ctx->categories[k]);
    return CBQ_OK;
}

/* Sum of axial plane z of the structure, else of the map. */
static double plane_sum(const pick_view *pv, size_t z)
{
    size_t plane = pv->in.canon.nx * pv->in.canon.ny;
    double s = 0.0;
    for (size_t i = 0; i < plane; i++)
        s += pv->structure ? pv->structure[z * plane + i] : pv->map.data[z * plane + i];
    return s;
}

/* The structure's largest axial slice and z extent; without a structure
 * the slice with the largest map sum (the middle one without a map or
 * when nothing is above zero). */
static void choose_slice(pick_view *pv)
{
    int by = pv->structure || pv->map.data;
    size_t nz = pv->in.canon.nz, best = nz / 2, first = nz, last = 0;
    double best_sum = 0.0;
    for (size_t z = 0; by && z < nz; z++) {
        double s = plane_sum(pv, z);
        if (s > best_sum)
            best_sum = s, best = z;
        if (pv->structure && s > 0)
            first = z < first ? z : first, last = z;
    }
    pv->slice = best;
    /* A zero map (AE 0) or an empty structure ranks no slice. */
    pv->slice_by = !(best_sum > 0) ? "middle" : pv->structure ? "structure area" : "map sum";
    pv->z_lo = first < nz ? study_slice_z_mm(&pv->in.canon, first) : NAN;
    pv->z_hi = first < nz ? study_slice_z_mm(&pv->in.canon, last) : NAN;
}

static void structure_mask(pick_view *pv)
{
    size_t plane = pv->in.canon.nx * pv->in.canon.ny;
    pv->mask = pv->structure ? pv->structure + pv->slice * plane : NULL;
}

static const cbq_cohort_volume *find_volume(const cbq_cohort *c, const char *id)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i].id, id) == 0)
            return &c->v[i];
    return NULL;
}

static int load_map(const study_ctx *ctx, const char *id, size_t k, pick_view *pv, cbq_error *err)
{
    char name[600], path[CBQ_STUDY_PATH_MAX + 600];
    snprintf(name, sizeof name, "maps/%s_%s.nii.gz", id, ctx->categories[k]);
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_ATTRIB, name, path, sizeof path, err));
    CBQ_TRY(cbq_study_load_volume(path, &pv->map, NULL, err)); /* canonical, like the CBCT */
    if (pv->map.nx != pv->in.canon.nx || pv->map.ny != pv->in.canon.ny || pv->map.nz != pv->in.canon.nz)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: grid differs from the volume's", path);
    return CBQ_OK;
}

/* files: the cohort with the paths of its volumes and label volumes. */
static int pick_load(const study_ctx *ctx, const ae_table *t, const cbq_cohort *files, size_t k,
                     size_t row, pick_view *pv, cbq_error *err)
{
    const char *id = t->cat[k].volumes[row];
    const cbq_cohort_volume *sv = find_volume(files, id);
    if (!sv)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "attrib/ae.csv: volume '%s' is not in the cohort", id);
    pv->row = row;
    CBQ_TRY(load_structure(ctx, files, sv, k, pv, err));
    if (ctx->cfg->attrib.save_maps)
        CBQ_TRY(load_map(ctx, id, k, pv, err));
    choose_slice(pv);
    structure_mask(pv);
    return CBQ_OK;
}

static int overlay_figure(cbq_report *r, const study_ctx *ctx, const ae_category *ac, size_t k,
                          const pick_view *pv, size_t n, cbq_error *err)
{
    cbq_overlay_panel panels[N_PICKS];
    char titles[N_PICKS][320];
    for (size_t p = 0; p < n; p++) {
        snprintf(titles[p], sizeof titles[p], "%.200s  AE %.4g  cons. %.2f  k %zu",
                 ac->volumes[pv[p].row], ac->ae[pv[p].row], ac->consensus[pv[p].row], pv[p].slice);
        size_t plane = pv[p].in.canon.nx * pv[p].in.canon.ny; /* volumes may differ in size */
        panels[p] = (cbq_overlay_panel){.image = pv[p].in.canon.data + pv[p].slice * plane,
                                        .map = pv[p].map.data + pv[p].slice * plane,
                                        .mask = pv[p].mask, .width = pv[p].in.canon.nx,
                                        .height = pv[p].in.canon.ny,
                                        .pixel_aspect = pv[p].in.canon.spacing[1] / pv[p].in.canon.spacing[0],
                                        .title = titles[p]};
    }
    const cbq_study_config *cfg = ctx->cfg;
    const char *cat = ctx->categories[k];
    char title[200], stem[96], caption[900];
    snprintf(title, sizeof title, "%.63s: highest, median and lowest AE (%.63s)", cat,
             cfg->attrib.method);
    snprintf(stem, sizeof stem, "maps_%s", cat);
    snprintf(caption, sizeof caption,
             "%s: raw %s maps of the test volumes with the highest (left), median and lowest "
             "(right) AE, each on the axial slice k %s. Title: volume, AE, consensus, slice. "
             "Axial view, anterior up, patient right on the left; CT window [%g, %g] HU; one "
             "colour scale for the three panels, in raw map units (arbitrary).",
             cat, cfg->attrib.method,
             pv[0].structure ? "where the structure (vermillion outline) has its largest area"
                             : "with the largest map sum (no structure for this category)",
             cfg->train.hu_min, cfg->train.hu_max);
    cbq_montage m = {.title = title, .panels = panels, .n_panels = n, .n_cols = n,
                     .panel_size = 280, .window_lo = cfg->train.hu_min,
                     .window_hi = cfg->train.hu_max, .cmap = CBQ_CMAP_VIRIDIS, .map_auto = 1,
                     .map_label = "raw map value (a.u.)"};
    cbq_figure *fig = NULL;
    CBQ_TRY(cbq_montage_draw(&fig, &m, err));
    int rc = cbq_report_figure(r, fig, stem, caption, err);
    cbq_figure_free(fig);
    return rc;
}

/* The volumes shown, one row each, as a table after the figures (the ids
 * can be copied, and tests check the choice). */
static const char *const SHOWN_HEADER[] = {"category", "shown", "volume_id", "ae", "consensus",
                                           "slice", "z_mm", "slice_chosen_by"};
enum { SHOWN_COLS = sizeof SHOWN_HEADER / sizeof SHOWN_HEADER[0], SHOWN_CELL = 96 };
typedef struct {
    char (*cell)[SHOWN_CELL]; /* n_rows x SHOWN_COLS */
    size_t n_rows;
} shown_table;

static void shown_add(shown_table *st, const study_ctx *ctx, const ae_category *ac, size_t k,
                      const pick_view *pv)
{
    char (*c)[SHOWN_CELL] = st->cell + st->n_rows++ * SHOWN_COLS;
    snprintf(c[0], SHOWN_CELL, "%s", ctx->categories[k]);
    snprintf(c[1], SHOWN_CELL, "%s", pv->role);
    snprintf(c[2], SHOWN_CELL, "%s", ac->volumes[pv->row]);
    snprintf(c[3], SHOWN_CELL, "%.9g", ac->ae[pv->row]);
    snprintf(c[4], SHOWN_CELL, "%.6g", ac->consensus[pv->row]);
    snprintf(c[5], SHOWN_CELL, "%zu", pv->slice);
    snprintf(c[6], SHOWN_CELL, "%.2f", study_slice_z_mm(&pv->in.canon, pv->slice));
    snprintf(c[7], SHOWN_CELL, "%s", pv->slice_by);
}

static int shown_write(cbq_report *r, const shown_table *st, cbq_error *err)
{
    const char **cells = malloc((st->n_rows * SHOWN_COLS + 1) * sizeof *cells);
    if (!cells)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < st->n_rows * SHOWN_COLS; i++)
        cells[i] = st->cell[i];
    int rc = cbq_report_table(r, "maps_shown",
                              "The volumes of the figures above: AE, consensus, the axial slice "
                              "shown (canonical index, inferior to superior) with its z and how "
                              "it was chosen.", SHOWN_COLS, SHOWN_HEADER, st->n_rows, cells, err);
    free(cells);
    return rc;
}

static int category_figures(cbq_report *r, const study_ctx *ctx, const ae_table *t,
                            const cbq_cohort *files, size_t k, const report_profiles *prof,
                            shown_table *st, cbq_error *err)
{
    const ae_category *ac = &t->cat[k];
    size_t rows[N_PICKS], n = report_pick_rows(ac, rows);
    if (n == 0)
        return CBQ_OK;
    pick_view pv[N_PICKS];
    memset(pv, 0, sizeof pv);
    int rc = cbq_report_subsection(r, ctx->categories[k], err);
    for (size_t p = 0; p < n && rc == CBQ_OK; p++) {
        rc = pick_load(ctx, t, files, k, rows[p], &pv[p], err);
        pv[p].role = ROLE[n == N_PICKS ? p : (p == 0 ? 0 : 2)];
    }
    if (rc == CBQ_OK && ctx->cfg->attrib.save_maps)
        rc = overlay_figure(r, ctx, ac, k, pv, n, err);
    report_profile_pick shown[N_PICKS];
    for (size_t p = 0; p < n; p++)
        shown[p] = (report_profile_pick){.id = ac->volumes[rows[p]], .role = pv[p].role,
                                         .ae = ac->ae[rows[p]], .z_lo = pv[p].z_lo,
                                         .z_hi = pv[p].z_hi};
    if (rc == CBQ_OK)
        rc = report_profile_figure(r, ctx, prof, k, shown, n, ac->n, err);
    for (size_t p = 0; p < n && rc == CBQ_OK; p++)
        shown_add(st, ctx, ac, k, &pv[p]);
    for (size_t p = 0; p < N_PICKS; p++)
        pick_free(&pv[p]);
    return rc;
}

int report_map_figures(cbq_report *r, const study_ctx *ctx, const ae_table *t, cbq_error *err)
{
    const char *maps_note =
        ctx->cfg->attrib.save_maps
            ? "Per category, the test volumes with the highest, median and lowest AE: their "
              "Grad-CAM maps at the level of the category's structure, and their AE per axial "
              "slice along z."
            : "Grad-CAM maps were not saved (attrib.save_maps is off), so no overlays are "
              "shown; the AE profiles along z come from attrib/profiles.csv.";
    CBQ_TRY(cbq_report_paragraph(r, maps_note, err));
    cbq_cohort files;
    CBQ_TRY(study_read_cohort_files(ctx, STUDY_READS_VOLUMES | STUDY_READS_STRUCTURES, &files, err));
    report_profiles prof;
    int rc = report_profiles_read(ctx, &prof, err);
    if (rc != CBQ_OK) {
        cbq_cohort_free(&files);
        return rc;
    }
    shown_table st = {.cell = calloc(ctx->n_categories * N_PICKS * SHOWN_COLS + 1,
                                     sizeof *st.cell)};
    rc = st.cell ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < ctx->n_categories && rc == CBQ_OK; k++)
        rc = category_figures(r, ctx, t, &files, k, &prof, &st, err);
    if (rc == CBQ_OK && st.n_rows > 0)
        rc = shown_write(r, &st, err);
    free(st.cell);
    report_profiles_free(&prof);
    cbq_cohort_free(&files);
    return rc;
}
