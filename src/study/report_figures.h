/* report_figures.h - the report stage's figure sections that read more than
 * one table (private to src/study): the leave-one-out rho strip plot, per
 * category the overlays and z-profiles of the highest-, median- and
 * lowest-AE test volumes, and the sanity checks. stage_report.c calls them in reading order. */
#ifndef CBQ_STUDY_REPORT_FIGURES_H
#define CBQ_STUDY_REPORT_FIGURES_H

#include "cbctiq/csv.h"
#include "cbctiq/plot.h"
#include "cbctiq/report.h"
#include "study/ae_table.h"

/* The CSV `name` of stage `from`'s folder shown as a report table, numbers
 * rounded to 4 significant digits (stage_report.c). */
int report_csv_table(cbq_report *r, const study_ctx *ctx, cbq_study_stage from, const char *name,
                     const char *stem, const char *caption, cbq_error *err);

/* Draws `c` and adds it to the report as STEM.png/.svg with its caption. */
int report_add_chart(cbq_report *r, const cbq_chart *c, const char *stem, const char *caption,
                     cbq_error *err);

/* stats/stats.json's leave-one-out rho values per category as one strip
 * plot, each category's full-sample rho marked (stem "loo_rho"). */
int report_loo_figure(cbq_report *r, const study_ctx *ctx, cbq_error *err);

/* Per category: the highest-, median- and lowest-AE test volumes as a
 * Grad-CAM overlay montage at the structure's largest axial slice (stem
 * "maps_CATEGORY"; only when attrib.save_maps is on, otherwise a note says
 * so) and their AE profiles along z from attrib/profiles.csv (stem
 * "profile_CATEGORY"). */
int report_map_figures(cbq_report *r, const study_ctx *ctx, const ae_table *t, cbq_error *err);

/* Rows of the highest, median and lowest AE of a category (fewer when n < 3,
 * each row once); the median of an even count is the lower middle one, an
 * actual volume. The map figures and the viewer show these. */
enum { REPORT_N_PICKS = 3 };
size_t report_pick_rows(const ae_category *ac, size_t rows[REPORT_N_PICKS]);
/* The attribution stage's map of volume `id` for category k
 * (attrib/maps/ID_CATEGORY.nii.gz) on the canonical grid, which must be
 * canon's. */
int report_load_map(const study_ctx *ctx, const char *id, size_t k, const cbq_volume *canon,
                    cbq_volume *map, cbq_error *err);
/* The section "Where does the map point?" (report_pointing.c): per category
 * the distribution of energy_in_structure and the pointing hits, the
 * deletion/insertion curves of the highest-, median- and lowest-AE volumes
 * against the random order (attrib/curves.csv), stats/pointing.csv, and
 * what this says about AE in plain words. */
int report_pointing_section(cbq_report *r, const study_ctx *ctx, const ae_table *t,
                            cbq_error *err);

/* attrib/profiles.csv (report_profiles.c). */
typedef struct {
    cbq_csv t;
    size_t c_volume, c_category, c_z, c_ae;
} report_profiles;

/* A volume whose profile is drawn, with its structure's extent (NaN: none). */
typedef struct {
    const char *id, *role;
    double ae, z_lo, z_hi;
} report_profile_pick;

int report_profiles_read(const study_ctx *ctx, report_profiles *p, cbq_error *err);
void report_profiles_free(report_profiles *p);
/* Category k's chart (stem "profile_CATEGORY"): the picks' AE per slice
 * against z, and the median over the category's n_volumes test volumes at
 * the slice positions at least half of them share. */
int report_profile_figure(cbq_report *r, const study_ctx *ctx, const report_profiles *p, size_t k,
                          const report_profile_pick *picks, size_t n_picks, size_t n_volumes,
                          cbq_error *err);

/* The "Sanity checks" section from the sanity stage's sanity.csv and
 * pooled.csv (report_sanity.c). */
int report_sanity_section(cbq_report *r, const study_ctx *ctx, cbq_error *err);

#endif
