/* figures_of_merit.c - objective image-quality figures of a reconstruction
 * measured against the noise-free, artefact-free reference in the region of
 * one rating category: noise, contrast and CNR of the structure against its
 * surroundings, streaks (low-frequency structured error), cupping and edge
 * sharpness. These drive the simulated raters (raters.c); they are written
 * to truth.csv so every score can be traced back. */
#include "cbctiq/sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const cat_names[CBQ_CAT_COUNT] = {"parotid", "submandibular", "larynx", "mandible",
                                                     "overall"};

const char *cbq_sim_category_name(int cat)
{
    return cat >= 0 && cat < CBQ_CAT_COUNT ? cat_names[cat] : NULL;
}

/* Does label value lab belong to category cat's structure? */
static int in_category(int cat, int lab)
{
    switch (cat) {
    case CBQ_CAT_PAROTID: return lab == CBQ_LAB_PAROTID_L || lab == CBQ_LAB_PAROTID_R;
    case CBQ_CAT_SUBMAND: return lab == CBQ_LAB_SUBMAND_L || lab == CBQ_LAB_SUBMAND_R;
    case CBQ_CAT_LARYNX: return lab == CBQ_LAB_LARYNX || lab == CBQ_LAB_THYROID_CARTILAGE;
    case CBQ_CAT_MANDIBLE: return lab == CBQ_LAB_MANDIBLE || lab == CBQ_LAB_TEETH;
    default: return 0;
    }
}

enum { M_IN = 1, M_RING = 2, M_BAND = 4 };
enum { RING_R = 3, BOX_R = 2, SHADE_R = 7 };

typedef struct {
    size_t nx, ny, nz;
    const float *img, *ref;
    unsigned char *mask;
} fom_ctx;

/* Region masks: the structure (overall: the body), a ring of soft tissue
 * around it, and a band of edge voxels (structure dilated by one). */
static void build_masks(fom_ctx *c, const cbq_volume *labels, int cat)
{
    size_t nx = c->nx, ny = c->ny, n = nx * ny * c->nz;
    for (size_t v = 0; v < n; v++) {
        int in = cat == CBQ_CAT_OVERALL ? c->ref[v] > -500.0f : in_category(cat, (int)labels->data[v]);
        c->mask[v] = in ? M_IN : 0;
    }
    if (cat == CBQ_CAT_OVERALL) {
        for (size_t v = 0; v < n; v++)
            if (c->mask[v])
                c->mask[v] |= M_BAND;
        return;
    }
    for (size_t k = 0; k < c->nz; k++)
        for (size_t j = 0; j < ny; j++)
            for (size_t i = 0; i < nx; i++) {
                size_t v = i + nx * (j + ny * k);
                if (!(c->mask[v] & M_IN))
                    continue;
                for (long dj = -RING_R; dj <= RING_R; dj++)
                    for (long di = -RING_R; di <= RING_R; di++) {
                        long ii = (long)i + di, jj = (long)j + dj;
                        if (ii < 0 || jj < 0 || ii >= (long)nx || jj >= (long)ny)
                            continue;
                        size_t w = (size_t)ii + nx * ((size_t)jj + ny * k);
                        if (labs(di) <= 1 && labs(dj) <= 1)
                            c->mask[w] |= M_BAND;
                        /* Ring: unlabelled soft tissue only. */
                        if (!(c->mask[w] & M_IN) && labels->data[w] == 0 && c->ref[w] > -300.0f &&
                            c->ref[w] < 300.0f)
                            c->mask[w] |= M_RING;
                    }
            }
}

/* Mean of (img - ref) over an in-plane box around voxel (i, j, k). */
static double box_error(const fom_ctx *c, size_t i, size_t j, size_t k, long r)
{
    double s = 0;
    int cnt = 0;
    for (long dj = -r; dj <= r; dj++)
        for (long di = -r; di <= r; di++) {
            long ii = (long)i + di, jj = (long)j + dj;
            if (ii < 0 || jj < 0 || ii >= (long)c->nx || jj >= (long)c->ny)
                continue;
            size_t w = (size_t)ii + c->nx * ((size_t)jj + c->ny * k);
            s += (double)c->img[w] - c->ref[w];
            cnt++;
        }
    return s / cnt;
}

static double grad_dot(const fom_ctx *c, size_t i, size_t j, size_t k, double *gref2)
{
    size_t v = i + c->nx * (j + c->ny * k), sx = 1, sy = c->nx;
    if (i == 0 || j == 0 || i + 1 >= c->nx || j + 1 >= c->ny) {
        *gref2 = 0;
        return 0;
    }
    double rx = 0.5 * (c->ref[v + sx] - c->ref[v - sx]), ry = 0.5 * (c->ref[v + sy] - c->ref[v - sy]);
    double ix = 0.5 * (c->img[v + sx] - c->img[v - sx]), iy = 0.5 * (c->img[v + sy] - c->img[v - sy]);
    *gref2 = rx * rx + ry * ry;
    return ix * rx + iy * ry;
}

/* Cupping: per axial slice, mean error at the body's rim minus at its
 * centre (by distance from the slice's body centroid), averaged over slices. */
static double cupping(const fom_ctx *c)
{
    double total = 0;
    size_t used = 0;
    for (size_t k = 0; k < c->nz; k++) {
        double cx = 0, cy = 0, area = 0;
        for (size_t j = 0; j < c->ny; j++)
            for (size_t i = 0; i < c->nx; i++)
                if (c->ref[i + c->nx * (j + c->ny * k)] > -500.0f) {
                    cx += (double)i;
                    cy += (double)j;
                    area += 1;
                }
        if (area < 200)
            continue;
        cx /= area;
        cy /= area;
        double req = sqrt(area / CBQ_PI), s_in = 0, s_rim = 0, n_in = 0, n_rim = 0;
        for (size_t j = 0; j < c->ny; j++)
            for (size_t i = 0; i < c->nx; i++) {
                size_t v = i + c->nx * (j + c->ny * k);
                if (c->ref[v] < -300.0f || c->ref[v] > 300.0f)
                    continue; /* soft tissue only: bone and air would dominate */
                double r = hypot((double)i - cx, (double)j - cy) / req;
                double e = (double)c->img[v] - c->ref[v];
                if (r < 0.4) { s_in += e; n_in += 1; }
                else if (r > 0.7 && r < 0.9) { s_rim += e; n_rim += 1; }
            }
        if (n_in > 10 && n_rim > 10) {
            total += s_rim / n_rim - s_in / n_in;
            used++;
        }
    }
    return used ? total / (double)used : 0.0;
}

int cbq_fom_measure(const cbq_volume *img, const cbq_volume *ref, const cbq_volume *labels, int cat,
                    cbq_fom *out, cbq_error *err)
{
    CBQ_CHECK_ARG(err, cat >= 0 && cat < CBQ_CAT_COUNT, "figures of merit: category %d unknown", cat);
    CBQ_CHECK_ARG(err, img->nx == ref->nx && img->ny == ref->ny && img->nz == ref->nz &&
                           labels->nx == img->nx && labels->ny == img->ny && labels->nz == img->nz,
                  "figures of merit: image, reference and labels differ in grid");
    fom_ctx c = {img->nx, img->ny, img->nz, img->data, ref->data, NULL};
    size_t n = cbq_volume_count(img);
    c.mask = malloc(n);
    if (!c.mask)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "figures of merit: out of memory");
    build_masks(&c, labels, cat);
    memset(out, 0, sizeof *out);
    double s_img = 0, s_ref = 0, r_img = 0, r_ref = 0, n_in = 0, n_ring = 0;
    double hp = 0, lp = 0, lp2 = 0, dot = 0, g2 = 0;
    for (size_t k = 0; k < c.nz; k++)
        for (size_t j = 0; j < c.ny; j++)
            for (size_t i = 0; i < c.nx; i++) {
                size_t v = i + c.nx * (j + c.ny * k);
                unsigned char m = c.mask[v];
                if (m & M_RING) {
                    r_img += img->data[v];
                    r_ref += ref->data[v];
                    n_ring += 1;
                }
                if (m & M_BAND) {
                    double gr2, d = grad_dot(&c, i, j, k, &gr2);
                    if (gr2 > 100.0 * 100.0) {
                        dot += d;
                        g2 += gr2;
                    }
                }
                if (!(m & M_IN))
                    continue;
                s_img += img->data[v];
                s_ref += ref->data[v];
                n_in += 1;
                double e = (double)img->data[v] - ref->data[v];
                /* Band-pass: the 5x5 mean keeps streaks and drops most noise;
                 * minus the 15x15 mean drops slow shading (cupping). */
                double e1 = box_error(&c, i, j, k, 1);
                double e2 = box_error(&c, i, j, k, BOX_R) - box_error(&c, i, j, k, SHADE_R);
                hp += (e - e1) * (e - e1);
                lp += e2;
                lp2 += e2 * e2;
            }
    free(c.mask);
    out->n_voxels = (size_t)n_in;
    if (n_in < 1)
        return CBQ_FAIL(err, CBQ_ERR_UNDEFINED, "figures of merit: no voxel of %s in the label volume",
                        cbq_sim_category_name(cat));
    /* White noise: e - mean3x3(e) has variance sigma^2 (1 - 1/9). */
    out->noise = sqrt(hp / n_in * 9.0 / 8.0);
    double lp_var = lp2 / n_in - (lp / n_in) * (lp / n_in);
    /* White noise through the band-pass: sigma^2 (1/25 - 1/225). */
    double b1 = (2.0 * BOX_R + 1) * (2.0 * BOX_R + 1), b2 = (2.0 * SHADE_R + 1) * (2.0 * SHADE_R + 1);
    out->streak = sqrt(fmax(0.0, lp_var - out->noise * out->noise * (1.0 / b1 - 1.0 / b2)));
    if (n_ring > 0) {
        out->contrast = fabs(s_img / n_in - r_img / n_ring);
        out->contrast_ref = fabs(s_ref / n_in - r_ref / n_ring);
    }
    out->cnr = out->contrast / fmax(out->noise, 1e-3);
    out->cupping = cupping(&c);
    out->sharpness = g2 > 0 ? dot / g2 : 1.0;
    return CBQ_OK;
}
