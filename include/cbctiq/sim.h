/* sim.h - the built-in simulated cohort: an analytic head-and-neck phantom,
 * circular cone-beam acquisition with physics, FDK reconstruction, image
 * figures of merit and simulated expert raters.
 *
 * Frames. The simulator works in a "phantom frame" in millimetres with its
 * origin at the centre of the reconstruction grid: +X = patient left,
 * +Y = posterior, +Z = superior. Voxel (i, j, k) of a simulator volume sits
 * at X = (i - (nx-1)/2) sx, Y = (j - (ny-1)/2) sy, Z = (k - (nz-1)/2) sz, so
 * i runs right to left, j anterior to posterior, k inferior to superior (the
 * axes of the real CT data). The gantry rotates about Z.
 *
 * Geometry (as RTK/TIGRE describe a circular orbit, our own conventions):
 * at angle b the source is at SAD (cos b, sin b, 0); the flat panel is
 * perpendicular to that direction at distance SDD from the source; panel
 * coordinate u runs along (-sin b, cos b, 0), v along +Z. Pixel (iu, iv)
 * has u = (iu - (nu-1)/2) du + u_offset, v = (iv - (nv-1)/2) dv.
 *
 * Projections are float arrays [n_proj][nv][nu] (u fastest) of line
 * integrals of linear attenuation mu (1/mm), i.e. dimensionless.
 * Ownership: functions write into caller-allocated buffers unless stated.
 */
#ifndef CBCTIQ_SIM_H
#define CBCTIQ_SIM_H

#include <stddef.h>
#include <stdint.h>
#include "cbctiq/dist.h"
#include "cbctiq/error.h"
#include "cbctiq/rng.h"
#include "cbctiq/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Linear attenuation of water at about 70 keV, 1/mm. */
#define CBQ_MU_WATER 0.0195
/* Strict C11 has no M_PI. */
#define CBQ_PI 3.14159265358979323846

/* ---------------------------------------------------------------- geometry */

typedef struct {
    double sad, sdd;        /* source-isocentre and source-detector distance, mm */
    size_t nu, nv;          /* detector pixels along u and v */
    double du, dv;          /* detector pitch, mm (at the detector) */
    double u_offset;        /* lateral panel shift (half fan), mm at the detector */
    size_t n_proj;          /* projections over the arc */
    double start;           /* angle of the first projection, radians */
    double arc;             /* angular range covered, radians (2 pi = full scan) */
    int short_scan;         /* 1: arc = pi + 2 x fan half-angle, Parker weights */
} cbq_cb_geometry;

/* Linac-OBI-like defaults: SAD 1000, SDD 1500, 397 x 298 mm panel binned to
 * nu x nv, full fan, full scan, n_proj projections. */
void cbq_cb_geometry_default(cbq_cb_geometry *g, size_t nu, size_t nv, size_t n_proj);
/* Turns g into a short scan (pi + 2 fan half-angle + 2 degrees margin). */
void cbq_cb_geometry_make_short(cbq_cb_geometry *g);
/* Fan half-angle covered by the panel, radians (largest |atan(u/SDD)|). */
double cbq_cb_fan_half_angle(const cbq_cb_geometry *g);
/* Angle of projection p: start + (p + 1/2) arc / n_proj. */
double cbq_cb_angle(const cbq_cb_geometry *g, size_t p);
/* Checks distances, counts and pitches; names the bad field. */
int cbq_cb_geometry_check(const cbq_cb_geometry *g, cbq_error *err);

/* --------------------------------------------------------------- projector */

/* Joseph forward projection of `mu` (1/mm, simulator axes as above) for
 * projections [p0, p1) into proj (which holds all n_proj projections; only
 * those in the range are written). `shift` (may be NULL) gives per
 * projection a rigid object translation in mm (3 doubles per projection,
 * indexed by absolute p). Threads over projections; the result does not
 * depend on the thread count. */
int cbq_sim_project(const cbq_volume *mu, const cbq_cb_geometry *g, size_t p0, size_t p1,
                    const double *shift, float *proj, cbq_error *err);

/* Exact transpose of cbq_sim_project (no shift, all projections):
 * vol = A^T proj, serial; used to prove the projector is adjoint. `vol` must
 * be allocated with the volume geometry; it is overwritten. */
int cbq_sim_backproject_matched(const float *proj, const cbq_cb_geometry *g, cbq_volume *vol,
                                cbq_error *err);

/* --------------------------------------------------------------------- FDK */

typedef enum { CBQ_APOD_RAMLAK = 0, CBQ_APOD_SHEPP_LOGAN, CBQ_APOD_HANN } cbq_apodisation;

/* FDK reconstruction of line integrals `proj` into `vol` (1/mm), which must
 * be allocated with the wanted grid (simulator axes). Cosine weights, ramp
 * filter with apodisation, Parker weights for short scans and redundancy
 * weights for an offset (half-fan) panel, voxel-driven backprojection with
 * bilinear detector interpolation. `proj` is not modified. Threads over
 * slices; deterministic for any thread count. */
int cbq_fdk(const float *proj, const cbq_cb_geometry *g, cbq_apodisation apod, cbq_volume *vol,
            cbq_error *err);

/* ----------------------------------------------------------------- phantom */

enum {
    CBQ_LAB_BACKGROUND = 0,
    CBQ_LAB_PAROTID_L = 1, CBQ_LAB_PAROTID_R, CBQ_LAB_SUBMAND_L, CBQ_LAB_SUBMAND_R,
    CBQ_LAB_LARYNX, CBQ_LAB_MANDIBLE, CBQ_LAB_TEETH, CBQ_LAB_MAXILLA, CBQ_LAB_VERTEBRA,
    CBQ_LAB_SPINAL_CANAL, CBQ_LAB_AIRWAY, CBQ_LAB_THYROID_CARTILAGE, CBQ_LAB_METAL,
    CBQ_LAB_COUNT
};
/* Name of a label ("parotid_l", ...), NULL when out of range. */
const char *cbq_sim_label_name(int label);

typedef struct {
    double scale;           /* overall size factor */
    double width, depth;    /* lateral and AP factors on top of scale */
    double shift[3];        /* position of the anatomy in the grid, mm */
    double flexion;         /* neck flexion, radians, head rotated about X */
    double parotid_hu, submand_hu, cartilage_hu; /* tissue variation */
    int n_fillings, n_crowns;  /* dental metal */
    uint32_t metal_teeth;   /* bit t set: tooth t carries metal */
    uint32_t crown_teeth;   /* bit t set: that metal is a crown, else a filling */
    double swallow_mm;      /* larynx displacement used for the moved state */
    double yaw;             /* patient rotation about Z, radians */
    uint64_t jitter_seed;   /* per-structure size and position variation */
} cbq_phantom_params;

/* Draws a subject from the cohort's distributions. */
void cbq_phantom_draw(cbq_phantom_params *pp, cbq_rng *rng);

/* Rasterises the phantom into hu (HU, partial-volume edges by analytic edge
 * smoothing over one voxel) and labels (may be NULL; same grid, float label
 * values). `swallow` in [0, 1] moves the larynx and pharynx by that fraction
 * of swallow_mm superiorly (0 = rest). Both volumes must be allocated. */
int cbq_phantom_rasterise(const cbq_phantom_params *pp, double swallow, cbq_volume *hu,
                          cbq_volume *labels, cbq_error *err);

/* HU -> mu (1/mm) in place: mu = mu_water (1 + HU/1000), clamped at 0. */
void cbq_hu_to_mu(cbq_volume *vol);
/* mu -> HU in place. */
void cbq_mu_to_hu(cbq_volume *vol);

/* ----------------------------------------------------------------- physics */

typedef struct {
    double i0;              /* photons per detector pixel and projection (unattenuated) */
    double scatter;         /* scatter amplitude kappa (0 = none) */
    double scatter_sigma;   /* scatter kernel width, mm at the detector */
    double bh;              /* beam hardening: p -> p / (1 + bh p) */
    double blur_px;         /* detector blur sigma, pixels (0 = none) */
    double lag;             /* fraction of the previous frame kept (0 = none) */
    double ring_sd;         /* per-pixel gain error sd (rings) */
    double motion_frac;     /* fraction of the arc spent in the moved state */
    double motion_start;    /* where in the arc it starts, fraction [0, 1) */
    double swallow;         /* larynx displacement factor in the moved state */
    double shift_mm[3];     /* whole-head translation in the moved state */
    int noise;              /* 0: no quantum noise (for tests) */
} cbq_physics;

/* No degradation at all: the ideal linear model. */
void cbq_physics_ideal(cbq_physics *ph);
/* Draws per-volume physics from the cohort distributions (see docs/simulation.md). */
void cbq_physics_draw(cbq_physics *ph, cbq_rng *rng);

/* Turns ideal line integrals into measured ones in place: beam hardening,
 * detector blur, gain errors, scatter, quantum noise, lag, then
 * p = -log(I / I0). Noise for projection p comes from stream p of `seed`,
 * so the result does not depend on the thread count. */
int cbq_physics_apply(const cbq_physics *ph, const cbq_cb_geometry *g, uint64_t seed, float *proj,
                      cbq_error *err);

/* --------------------------------------------------------- figures of merit */

enum { CBQ_CAT_PAROTID = 0, CBQ_CAT_SUBMAND, CBQ_CAT_LARYNX, CBQ_CAT_MANDIBLE, CBQ_CAT_OVERALL,
       CBQ_CAT_COUNT };
const char *cbq_sim_category_name(int cat);

typedef struct {
    double noise;       /* sd of (image - reference) after removing low frequencies, HU */
    double contrast;    /* |structure - surroundings| in the image, HU */
    double contrast_ref;/* the same in the reference */
    double cnr;         /* contrast / noise */
    double streak;      /* sd of the band-passed error (5x5 minus 15x15 in-plane means:
                         * streaks, not noise or slow shading), HU */
    double cupping;     /* mean error at the rim minus at the centre of the body slice, HU */
    double sharpness;   /* edge gradient in the image relative to the reference (1 = same) */
    size_t n_voxels;    /* voxels in the structure */
} cbq_fom;

/* Figures of merit of `img` against the noise-free reference `ref` (both HU,
 * same grid) in the region of a category, using the label volume. */
int cbq_fom_measure(const cbq_volume *img, const cbq_volume *ref, const cbq_volume *labels, int cat,
                    cbq_fom *out, cbq_error *err);

/* ------------------------------------------------------------------ raters */

typedef struct {
    char name[16];
    double weight, bias, spread, slope;
} cbq_rater;

/* Latent quality of every category (continuous, 1..5) from its figures:
 * parotid and submandibular from CNR (noise and scatter's lost contrast),
 * larynx from edge sharpness (motion), mandible from streaks (metal),
 * overall from all of them and cupping. See docs/simulation.md. (The
 * panel is binned with the voxel size at a fixed dose per pixel, so noise in
 * HU hardly depends on the grid and needs no rescaling.) */
void cbq_latent_quality(const cbq_fom fom[CBQ_CAT_COUNT], double q[CBQ_CAT_COUNT]);
/* Draws n raters (weights by experience, bias, spread, use of the scale). */
void cbq_raters_draw(cbq_rater *raters, size_t n, cbq_rng *rng);
/* Integer score 1..5 that a rater gives for a latent quality. */
int cbq_rater_score(const cbq_rater *r, double latent, cbq_rng *rng);

/* ------------------------------------------------------------------ cohort */

typedef struct {
    const char *out_dir;
    size_t volumes;         /* default 64 */
    size_t size, slices;    /* grid nx = ny = size, nz = slices (128, 96) */
    double spacing;         /* mm (2) */
    uint64_t seed;
    size_t n_test;          /* volumes in the test split (16) */
    size_t n_raters;        /* 5 */
    int quiet, preview;
    const char *anatomy_ct;     /* real CT as anatomy for every volume (NULL: analytic) */
    const char *anatomy_labels; /* its label volume */
    const char *anatomy_dir;    /* folder of subject folders with ct.nii.gz + oar_labels.nii.gz */
    /* Ranks that share the volumes (NULL: this process alone): each rank
     * simulates a block and writes its volumes' NIfTI files (the folder is
     * on a filesystem every rank sees); rank 0 gathers the records and alone
     * writes the tables and the preview. Same bytes for any number of ranks. */
    const cbq_dist *dist;
} cbq_cohort_options;

void cbq_cohort_defaults(cbq_cohort_options *o);
/* Simulates the cohort and writes the folder (see docs/simulation.md). */
int cbq_cohort_simulate(const cbq_cohort_options *o, cbq_error *err);

/* One simulated volume: reconstructions (HU), label volume and parameters.
 * Allocates img, ref and labels (caller frees with cbq_volume_free). */
typedef struct {
    cbq_phantom_params anatomy;
    cbq_physics physics;
    cbq_cb_geometry geometry;
    int half_fan;
} cbq_case_params;

void cbq_case_draw(cbq_case_params *cp, size_t size, size_t slices, double spacing, cbq_rng *rng);
int cbq_case_simulate(const cbq_case_params *cp, size_t size, size_t slices, double spacing,
                      uint64_t seed, cbq_volume *img, cbq_volume *ref, cbq_volume *labels,
                      cbq_error *err);

/* ------------------------------------------------------- real CT anatomy */

/* Allocates a simulator grid (size x size x slices at spacing mm) with the
 * simulator's axes and an affine centred on the isocentre. */
int cbq_sim_grid_alloc(cbq_volume *v, size_t size, size_t slices, double spacing, cbq_error *err);

/* Real planning CT as anatomy: reads ct_path (HU) and labels_path (OpenKBP
 * codes: 2 spinal_cord, 3 parotid_r, 4 parotid_l, 6 larynx, 7 mandible; may
 * be NULL only if the CT has none, which is refused: the crop needs the
 * mandible and larynx), brings both to canonical orientation, centres the
 * grid between mandible and larynx (body centre in-plane), resamples
 * (trilinear HU, nearest labels), turns CT-saturated voxels (>= 3000 HU)
 * into dental metal and adds submandibular glands from the analytic model
 * placed relative to the mandible. Allocates hu and labels (simulator
 * labels, see cbq_sim_label_name). */
int cbq_anatomy_from_ct(const char *ct_path, const char *labels_path, size_t size, size_t slices,
                        double spacing, cbq_volume *hu, cbq_volume *labels, cbq_error *err);

/* As cbq_case_simulate with a given anatomy (HU and labels on the
 * simulator grid, not modified) instead of the analytic phantom; swallowing
 * is a smooth displacement field around the larynx label. */
int cbq_case_simulate_anatomy(const cbq_case_params *cp, const cbq_volume *hu_anat,
                              const cbq_volume *lab_anat, uint64_t seed, cbq_volume *img,
                              cbq_volume *ref, cbq_volume *labels, cbq_error *err);

/* ----------------------------------------------------------------- preview */

typedef struct {
    const cbq_volume *vol;  /* HU */
    size_t k;               /* axial slice */
} cbq_preview_tile;

/* Writes a grey-scale PNG montage of the tiles, `cols` per row, window
 * [hu_lo, hu_hi], patient right on the image left and anterior at the top. */
int cbq_sim_preview_png(const char *path, const cbq_preview_tile *tiles, size_t n_tiles, size_t cols,
                        double hu_lo, double hu_hi, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
