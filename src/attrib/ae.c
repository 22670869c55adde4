/* ae.c - Attribution Energy: the volumetric sum of the raw maps over all
 * axial slices of a volume (the poster's AE), its feature-grid twin, the
 * per-slice profile along z, the energy inside a structure, and the parts
 * of the Grad-CAM identity (prediction part and clipped remainder). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cam_private.h"

double cbq_ae_per_slice(const cbq_ae *ae)
{
    return ae->n_slices ? ae->ae / (double)ae->n_slices : NAN;
}

double cbq_ae_pred(const cbq_ae *ae)
{
    return ae->n_slices ? ae->pred_sum / (double)ae->n_slices : NAN;
}

double cbq_ae_clipped(const cbq_ae *ae)
{
    return ae->ae_feature_post - ae->ae_feature_pre;
}

double cbq_ae_structure_fraction(const cbq_ae *ae)
{
    if (!ae->has_structure || ae->ae == 0.0)
        return NAN;
    return ae->ae_in_structure / ae->ae;
}

double cbq_ae_selected(const cbq_ae *ae, const cbq_attrib_options *opt)
{
    double v = opt->grid == CBQ_GRID_FEATURE ? ae->ae_feature : ae->ae;
    if (opt->aggregate == CBQ_AGG_MEAN)
        v = ae->n_slices ? v / (double)ae->n_slices : NAN;
    return v;
}

void cbq_ae_free(cbq_ae *ae)
{
    if (ae) {
        free(ae->profile);
        free(ae->slice_pred);
        ae->profile = NULL;
        ae->slice_pred = NULL;
    }
}

static int ae_init(cbq_ae *ae, size_t nz, int pixel, int has_structure, cbq_error *err)
{
    memset(ae, 0, sizeof *ae);
    ae->profile = calloc(nz, sizeof *ae->profile);
    ae->slice_pred = calloc(nz, sizeof *ae->slice_pred);
    if (!ae->profile || !ae->slice_pred) {
        cbq_ae_free(ae);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for a profile of %zu slices", nz);
    }
    ae->n_slices = nz;
    ae->has_structure = has_structure;
    if (pixel)
        ae->ae_feature = ae->ae_feature_pre = ae->ae_feature_post = NAN;
    return CBQ_OK;
}

/* Adds the batch's slices [z0, z0 + n) of output c (its input-grid maps
 * are already in place: see maps_to). */
static void ae_add_batch(const cbq_cam *cam, size_t c, size_t z0, size_t n, const float *structure,
                         cbq_ae *ae, float *map_feature)
{
    size_t HW = cam->H * cam->W, hw = cam->h * cam->w;
    const cbq_cam_slice_sum *sums = cbq_cam_sums(cam, c);
    const float *imaps = cbq_cam_map_input(cam, c), *fmaps = cbq_cam_map_feature(cam, c);
    for (size_t s = 0; s < n; s++) {
        double y = cam->pred[s * cam->n_out + c];
        ae->ae += sums[s].input;
        ae->ae_feature += sums[s].feature;
        ae->ae_feature_pre += sums[s].feature_pre;
        ae->ae_feature_post += sums[s].feature_post;
        ae->pred_sum += y;
        ae->pred_part += cam->opt.sign * (y - cam->bias[c]);
        ae->profile[z0 + s] = sums[s].input;
        ae->slice_pred[z0 + s] = (float)y;
        const float *im = imaps + s * HW;
        if (structure) {
            const float *wgt = structure + (z0 + s) * HW;
            double in = 0.0, wsum = 0.0;
            for (size_t i = 0; i < HW; i++) {
                in += (double)wgt[i] * im[i];
                wsum += wgt[i];
            }
            ae->ae_in_structure += in;
            ae->structure_sum += wsum;
        }
        if (map_feature && fmaps)
            memcpy(map_feature + (z0 + s) * hw, fmaps + s * hw, hw * sizeof *fmaps);
    }
}

/* The cam writes the input-grid maps of the coming batch straight into
 * the caller's maps_input[c] at `offset` (NULL array or entry: into its
 * own buffer): a copy per map and a buffer of the batch's maps fewer. */
static void maps_to(cbq_cam *cam, float *const *maps_input, size_t offset)
{
    for (size_t c = 0; c < cam->n_out; c++)
        cam->map_input_dst[c] = maps_input && maps_input[c] ? maps_input[c] + offset : NULL;
}

/* Finite outputs can still give maps whose sum overflows (huge gradients):
 * an error naming the output, never an "inf" or empty AE cell. */
static int check_finite(const cbq_cam *cam, cbq_ae *ae, cbq_error *err)
{
    const cbq_model_spec *spec = cbq_cam_spec(cam);
    for (size_t c = 0; c < cam->n_out; c++)
        if (!isfinite(ae[c].ae) || isinf(ae[c].ae_feature) || !isfinite(ae[c].ae_in_structure)) {
            for (size_t j = 0; j < cam->n_out; j++)
                cbq_ae_free(&ae[j]);
            return CBQ_FAIL(err, CBQ_ERR_RANGE, "the attribution energy of output '%s' is not "
                            "finite (the maps overflow: check the model's weights)",
                            spec->outputs[c]);
        }
    return CBQ_OK;
}

int cbq_attrib_volume(cbq_cam *cam, const float *slices, size_t nz,
                      const float *const *structures, cbq_ae *ae, float *const *maps_input,
                      float *const *maps_feature, cbq_progress *progress, cbq_error *err)
{
    CBQ_CHECK_ARG(err, nz >= 1, "the volume has no axial slices; at least 1 is needed");
    size_t HW = cam->H * cam->W;
    int pixel = cbq_cam_method_is_pixel(cam->opt.method);
    for (size_t c = 0; c < cam->n_out; c++) {
        int rc = ae_init(&ae[c], nz, pixel, structures && structures[c], err);
        if (rc != CBQ_OK) {
            for (size_t j = 0; j < c; j++)
                cbq_ae_free(&ae[j]);
            return rc;
        }
    }
    for (size_t z0 = 0; z0 < nz; z0 += cam->max_batch) {
        size_t n = nz - z0 < cam->max_batch ? nz - z0 : cam->max_batch;
        maps_to(cam, maps_input, z0 * HW);
        int rc = cbq_cam_run(cam, slices + z0 * cam->C * HW, n, err);
        if (rc != CBQ_OK) {
            maps_to(cam, NULL, 0);
            for (size_t c = 0; c < cam->n_out; c++)
                cbq_ae_free(&ae[c]);
            return rc;
        }
        for (size_t c = 0; c < cam->n_out; c++)
            ae_add_batch(cam, c, z0, n, structures ? structures[c] : NULL, &ae[c],
                         maps_feature ? maps_feature[c] : NULL);
        if (progress)
            cbq_progress_step(progress, n);
    }
    maps_to(cam, NULL, 0);
    return check_finite(cam, ae, err);
}
