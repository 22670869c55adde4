/* anatomy_ct.c - a real planning CT as the simulator's anatomy (synthetic
 * CBCT from CT). The CT and its organ labels are brought to canonical
 * orientation, cropped around the neck (centred between the mandible and
 * the larynx, body centre in-plane) and resampled to the simulator grid;
 * CT-saturated voxels become dental metal; the submandibular glands, which
 * the OpenKBP labels lack, come from the analytic model placed relative to
 * the mandible. */
#include "cbctiq/sim.h"
#include "cbctiq/nifti.h"
#include "cbctiq/orient.h"

#include <math.h>
#include <string.h>

/* OpenKBP label codes -> simulator labels. */
static int map_label(int src)
{
    switch (src) {
    case 2: return CBQ_LAB_SPINAL_CANAL;
    case 3: return CBQ_LAB_PAROTID_R;
    case 4: return CBQ_LAB_PAROTID_L;
    case 6: return CBQ_LAB_LARYNX;
    case 7: return CBQ_LAB_MANDIBLE;
    default: return 0;
    }
}

/* HU at or above which a CT voxel is taken as metal (CT saturates there). */
static const float METAL_CT_HU = 3000.0f, METAL_HU = 30000.0f;

typedef struct {
    double lo[3], hi[3], sum[3];
    size_t n;
} extent;

static void extent_of(const cbq_volume *lab, int code, int mapped, extent *e)
{
    memset(e, 0, sizeof *e);
    for (int a = 0; a < 3; a++) {
        e->lo[a] = 1e30;
        e->hi[a] = -1e30;
    }
    for (size_t k = 0; k < lab->nz; k++)
        for (size_t j = 0; j < lab->ny; j++)
            for (size_t i = 0; i < lab->nx; i++) {
                int l = (int)*cbq_volume_at(lab, i, j, k);
                if ((mapped ? l : map_label(l)) != code)
                    continue;
                double x[3] = {(double)i * lab->spacing[0], (double)j * lab->spacing[1],
                               (double)k * lab->spacing[2]};
                for (int a = 0; a < 3; a++) {
                    e->lo[a] = fmin(e->lo[a], x[a]);
                    e->hi[a] = fmax(e->hi[a], x[a]);
                    e->sum[a] += x[a];
                }
                e->n++;
            }
}

/* Centre of the crop in source mm: z between mandible and larynx centroids,
 * x and y the body centroid over +-20 mm around that level. */
static int crop_centre(const cbq_volume *ct, const cbq_volume *lab, const char *path, double c[3],
                       cbq_error *err)
{
    extent m, l;
    extent_of(lab, CBQ_LAB_MANDIBLE, 0, &m);
    extent_of(lab, CBQ_LAB_LARYNX, 0, &l);
    if (m.n == 0 || l.n == 0)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: the labels need a mandible (7) and a larynx (6) to place the neck",
                        path);
    c[2] = 0.5 * (m.sum[2] / (double)m.n + l.sum[2] / (double)l.n);
    double sx = 0, sy = 0, n = 0;
    for (size_t k = 0; k < ct->nz; k++) {
        if (fabs((double)k * ct->spacing[2] - c[2]) > 20.0)
            continue;
        for (size_t j = 0; j < ct->ny; j++)
            for (size_t i = 0; i < ct->nx; i++)
                if (*cbq_volume_at(ct, i, j, k) > -400.0f) {
                    sx += (double)i * ct->spacing[0];
                    sy += (double)j * ct->spacing[1];
                    n += 1;
                }
    }
    if (n < 1)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: no body (HU > -400) near the neck level", path);
    c[0] = sx / n;
    c[1] = sy / n;
    return CBQ_OK;
}

static float sample_hu(const cbq_volume *ct, double si, double sj, double sk)
{
    if (si < 0 || sj < 0 || sk < 0 || si > (double)(ct->nx - 1) || sj > (double)(ct->ny - 1) ||
        sk > (double)(ct->nz - 1))
        return -1000.0f;
    size_t i0 = (size_t)si, j0 = (size_t)sj, k0 = (size_t)sk;
    size_t i1 = i0 + 1 < ct->nx ? i0 + 1 : i0, j1 = j0 + 1 < ct->ny ? j0 + 1 : j0,
           k1 = k0 + 1 < ct->nz ? k0 + 1 : k0;
    double fi = si - (double)i0, fj = sj - (double)j0, fk = sk - (double)k0;
    size_t ii[2] = {i0, i1}, jj[2] = {j0, j1}, kk[2] = {k0, k1};
    double wi[2] = {1 - fi, fi}, wj[2] = {1 - fj, fj}, wk[2] = {1 - fk, fk}, v = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 2; c++) {
                float h = *cbq_volume_at(ct, ii[a], jj[b], kk[c]);
                v += wi[a] * wj[b] * wk[c] * (h >= METAL_CT_HU ? METAL_HU : h);
            }
    return (float)v;
}

/* Submandibular glands (analytic model: below and medial to the mandibular
 * body) painted into soft tissue of the resampled anatomy. */
static void add_submandibular(cbq_volume *hu, cbq_volume *lab)
{
    extent m;
    extent_of(lab, CBQ_LAB_MANDIBLE, 1, &m);
    if (m.n == 0)
        return;
    double width = m.hi[0] - m.lo[0], depth = m.hi[1] - m.lo[1];
    double s = width / 94.0; /* the phantom's mandible is 94 mm wide */
    double cx = 0.5 * (m.lo[0] + m.hi[0]);
    double h = hu->spacing[0];
    for (int side = -1; side <= 1; side += 2) {
        double c[3] = {cx + side * 0.36 * width, m.lo[1] + 0.4 * depth, m.lo[2] - 2.0 * s};
        double r[3] = {10.0 * s, 13.0 * s, 10.0 * s};
        int code = side > 0 ? CBQ_LAB_SUBMAND_L : CBQ_LAB_SUBMAND_R;
        for (size_t k = 0; k < hu->nz; k++)
            for (size_t j = 0; j < hu->ny; j++)
                for (size_t i = 0; i < hu->nx; i++) {
                    double x[3] = {(double)i * hu->spacing[0], (double)j * hu->spacing[1],
                                   (double)k * hu->spacing[2]};
                    double q = 0, g = 0;
                    for (int a = 0; a < 3; a++) {
                        double u = (x[a] - c[a]) / r[a];
                        q += u * u;
                        g += (u / r[a]) * (u / r[a]);
                    }
                    q = sqrt(q);
                    double d = q > 1e-9 ? (q - 1.0) / (sqrt(g) / q) : -1e9;
                    double o = fmin(fmax(0.5 - d / h, 0.0), 1.0);
                    float *v = cbq_volume_at(hu, i, j, k), *l = cbq_volume_at(lab, i, j, k);
                    if (o <= 0 || *l != 0 || *v < -250.0f || *v > 250.0f)
                        continue;
                    *v = (float)((1.0 - o) * *v + o * 40.0);
                    if (o >= 0.5)
                        *l = (float)code;
                }
    }
}

int cbq_anatomy_from_ct(const char *ct_path, const char *labels_path, size_t size, size_t slices,
                        double spacing, cbq_volume *hu, cbq_volume *labels, cbq_error *err)
{
    memset(hu, 0, sizeof *hu);
    memset(labels, 0, sizeof *labels);
    CBQ_CHECK_ARG(err, ct_path && labels_path, "anatomy: a CT and its label volume are both needed");
    cbq_volume raw = {0}, rawl = {0}, ct = {0}, lab = {0};
    int rc = cbq_nifti_read(&raw, ct_path, err);
    if (rc == CBQ_OK) rc = cbq_nifti_read(&rawl, labels_path, err);
    if (rc == CBQ_OK && (raw.nx != rawl.nx || raw.ny != rawl.ny || raw.nz != rawl.nz))
        rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: grid %zux%zux%zu differs from the CT's %zux%zux%zu", labels_path,
                      rawl.nx, rawl.ny, rawl.nz, raw.nx, raw.ny, raw.nz);
    if (rc == CBQ_OK) rc = cbq_volume_canonical(&ct, &raw, NULL, err);
    if (rc == CBQ_OK) rc = cbq_volume_canonical(&lab, &rawl, NULL, err);
    double c[3];
    if (rc == CBQ_OK) rc = crop_centre(&ct, &lab, labels_path, c, err);
    if (rc == CBQ_OK) rc = cbq_sim_grid_alloc(hu, size, slices, spacing, err);
    if (rc == CBQ_OK) rc = cbq_sim_grid_alloc(labels, size, slices, spacing, err);
    if (rc == CBQ_OK) {
#pragma omp parallel for schedule(static)
        for (size_t k = 0; k < slices; k++)
            for (size_t j = 0; j < size; j++)
                for (size_t i = 0; i < size; i++) {
                    double x[3] = {((double)i - 0.5 * (double)(size - 1)) * spacing,
                                   ((double)j - 0.5 * (double)(size - 1)) * spacing,
                                   ((double)k - 0.5 * (double)(slices - 1)) * spacing};
                    double s[3];
                    for (int a = 0; a < 3; a++)
                        s[a] = (c[a] + x[a]) / ct.spacing[a];
                    *cbq_volume_at(hu, i, j, k) = sample_hu(&ct, s[0], s[1], s[2]);
                    long n[3];
                    int inside = 1;
                    for (int a = 0; a < 3; a++) {
                        n[a] = lrint(s[a]);
                        size_t dim = a == 0 ? lab.nx : a == 1 ? lab.ny : lab.nz;
                        inside &= n[a] >= 0 && n[a] < (long)dim;
                    }
                    int l = inside ? map_label((int)*cbq_volume_at(&lab, (size_t)n[0], (size_t)n[1], (size_t)n[2]))
                                   : 0;
                    if (l == 0 && inside && *cbq_volume_at(&ct, (size_t)n[0], (size_t)n[1], (size_t)n[2]) >= METAL_CT_HU)
                        l = CBQ_LAB_METAL;
                    *cbq_volume_at(labels, i, j, k) = (float)l;
                }
        add_submandibular(hu, labels);
    }
    cbq_volume_free(&raw);
    cbq_volume_free(&rawl);
    cbq_volume_free(&ct);
    cbq_volume_free(&lab);
    if (rc != CBQ_OK) {
        cbq_volume_free(hu);
        cbq_volume_free(labels);
    }
    return rc;
}
