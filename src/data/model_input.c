/* model_input.c - a cohort row to the model's input slices (model_input.h):
 * read, reorient, structures, select, window and resample. Not the model
 * itself: what runs on the batch is attrib's and nn's. */
#define _POSIX_C_SOURCE 200809L
#include "cbctiq/model_input.h"

#include <stdlib.h>
#include <string.h>

#include "cbctiq/mem_limit.h"
#include "cbctiq/sanity.h"

int cbq_slice_selection_parse(const char *s, cbq_slice_selection *out)
{
    if (strcmp(s, "all") == 0)
        *out = CBQ_SLICES_ALL;
    else if (strcmp(s, "structures") == 0)
        *out = CBQ_SLICES_STRUCTURES;
    else
        return 0;
    return 1;
}

const char *cbq_slice_selection_name(cbq_slice_selection s)
{
    return s == CBQ_SLICES_STRUCTURES ? "structures" : "all";
}

void cbq_model_input_free(cbq_model_input *in)
{
    cbq_volume_free(&in->canon);
    cbq_structures_free(&in->structures);
    cbq_slicer_free(&in->slicer);
    free(in->ks);
    free(in->x);
    memset(in, 0, sizeof *in);
}

size_t cbq_model_input_source_slice(const cbq_model_input *in, size_t k)
{
    return in->xf.flip[2] ? in->canon.nz - 1 - k : k;
}

/* The canonical volume checked against the smallest plane the caller can
 * use; `name` (a path, or what a caller calls an in-memory volume) begins
 * every message. */
static int check_canonical(const cbq_model_input *in, const char *name,
                           const cbq_model_input_options *o, cbq_error *err)
{
    if (in->canon.nz < 1 || in->canon.nx < o->min_w || in->canon.ny < o->min_h)
        return CBQ_FAIL(err, CBQ_ERR_RANGE,
                        "%s: %zu x %zu pixels in plane, %zu axial slices; attribution needs at "
                        "least 1 slice of at least %zu x %zu pixels (the target layer's grid)",
                        name, in->canon.nx, in->canon.ny, in->canon.nz, o->min_w, o->min_h);
    return CBQ_OK;
}

/* A borrowed volume (a program's) copied onto the canonical grid. */
static int canonical_volume(cbq_model_input *in, const cbq_volume *src, const char *name,
                            const cbq_model_input_options *o, cbq_error *err)
{
    int rc = cbq_volume_canonical(&in->canon, src, &in->xf, err);
    if (rc != CBQ_OK)
        return cbq_error_prefix(err, "%s: ", name), rc;
    return check_canonical(in, name, o, err);
}

static int load_volume(cbq_model_input *in, const char *path, const cbq_model_input_options *o,
                       cbq_error *err)
{
    cbq_volume src;
    CBQ_TRY(cbq_volume_load(&src, &in->src, path, NULL, err));
    int rc = cbq_volume_canonical_move(&in->canon, &src, &in->xf, err); /* frees src */
    if (rc != CBQ_OK)
        return cbq_error_prefix(err, "%s: ", path), rc;
    return check_canonical(in, path, o, err);
}

/* The row's structures on the canonical grid: from its label mask, or from
 * its RTSTRUCT matched to the DICOM series the volume came from. */
static int load_structures(cbq_model_input *in, const cbq_cohort_volume *v, const cbq_cohort *c,
                           cbq_error *err)
{
    if (v->mask[0]) {
        const char *labels = c && c->labels_json[0] ? c->labels_json : NULL; /* NULL: sidecar */
        CBQ_TRY(cbq_structures_from_labels(&in->structures, &in->canon, v->mask, labels, err));
    } else if (v->rtstruct[0]) {
        const cbq_dicom_series_info *series =
            in->src.kind == CBQ_SOURCE_DICOM ? &in->src.dicom.info : NULL;
        CBQ_TRY(cbq_structures_from_rtstruct(&in->structures, &in->canon, series, v->rtstruct, err));
    } else {
        return CBQ_OK;
    }
    in->has_structures = 1;
    return CBQ_OK;
}

/* Slices where any label of the mask file is set (labels that name no
 * category count too: the slice shows anatomy someone drew). */
static int mask_slices(const cbq_model_input *in, const char *mask_path, size_t *ks, size_t *n,
                       cbq_error *err)
{
    cbq_volume raw, mask;
    CBQ_TRY(cbq_volume_load(&raw, NULL, mask_path, NULL, err));
    int rc = cbq_volume_canonical_move(&mask, &raw, NULL, err); /* frees raw */
    if (rc != CBQ_OK)
        return rc;
    const cbq_volume *vol = &in->canon;
    if (mask.nx != vol->nx || mask.ny != vol->ny || mask.nz != vol->nz)
        rc = CBQ_FAIL(err, CBQ_ERR_FORMAT,
                      "%s: mask grid %zux%zux%zu differs from the volume's %zux%zux%zu", mask_path,
                      mask.nx, mask.ny, mask.nz, vol->nx, vol->ny, vol->nz);
    else
        *n = cbq_slices_nonempty(&mask, ks);
    cbq_volume_free(&mask);
    return rc;
}

/* Slices where any structure of an RTSTRUCT is present. */
static size_t structure_slices(const cbq_model_input *in, size_t *ks)
{
    size_t plane = in->canon.nx * in->canon.ny, n = 0;
    for (size_t k = 0; k < in->canon.nz; k++) {
        int any = 0;
        for (int s = 0; s < CBQ_STRUCT_COUNT && !any; s++)
            for (size_t i = 0; in->structures.mask[s] && i < plane && !any; i++)
                any = in->structures.mask[s][k * plane + i] != 0;
        if (any)
            ks[n++] = k;
    }
    return n;
}

static int select_slices(cbq_model_input *in, const cbq_cohort_volume *v,
                         const cbq_model_input_options *o, cbq_error *err)
{
    size_t nz = in->canon.nz, n = nz;
    if (!(in->ks = malloc(nz * sizeof *in->ks)))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory choosing slices");
    for (size_t k = 0; k < nz; k++)
        in->ks[k] = k;
    if (o->selection == CBQ_SLICES_STRUCTURES && v && v->mask[0])
        CBQ_TRY(mask_slices(in, v->mask, in->ks, &n, err));
    else if (o->selection == CBQ_SLICES_STRUCTURES && in->has_structures)
        n = structure_slices(in, in->ks);
    size_t step = o->step > 1 ? o->step : 1, m = 0;
    for (size_t i = 0; i < n; i += step) /* ascending, so in place */
        in->ks[m++] = in->ks[i];
    size_t keep = cbq_sanity_n_slices(m, o->max_slices); /* evenly spaced, as sanity.h tests */
    for (size_t i = 0; i < keep; i++)
        in->ks[i] = in->ks[cbq_sanity_slice_index(m, keep, i)];
    in->n = keep;
    return CBQ_OK;
}

/* Channel ch of sample i reads canonical slice ks[i] (replicate) or
 * ks[i] + ch - C/2 (adjacent), the edge slice repeating past either end as
 * replicate-padding along z would. */
static size_t channel_slice(const cbq_input_spec *input, size_t C, size_t k, size_t ch, size_t nz)
{
    if (input->slices != CBQ_INPUT_ADJACENT)
        return k;
    long z = (long)k + (long)ch - (long)(C / 2);
    return z < 0 ? 0 : z >= (long)nz ? nz - 1 : (size_t)z;
}

/* x = (w - mean) / std of one channel, in place over a plane. */
static void normalise_plane(const cbq_input_spec *input, size_t ch, float *x, size_t HW)
{
    if (!input->n_norm)
        return;
    float mean = (float)input->mean[ch], std = (float)input->std[ch];
    for (size_t p = 0; p < HW; p++)
        x[p] = (x[p] - mean) / std;
}

/* in->x [n, C, H, W]: each channel's slices windowed and resampled into
 * `planes` [n, H, W], then copied into place and normalised. */
static int fill_channels(cbq_model_input *in, const cbq_input_spec *input, size_t *ks, float *planes,
                         cbq_error *err)
{
    size_t C = in->channels, HW = in->H * in->W;
    for (size_t ch = 0; ch < C; ch++) {
        if (ch == 0 || input->slices == CBQ_INPUT_ADJACENT) {
            for (size_t i = 0; i < in->n; i++)
                ks[i] = channel_slice(input, C, in->ks[i], ch, in->canon.nz);
            CBQ_TRY(cbq_slicer_fill(&in->slicer, &in->canon, ks, in->n, planes, err));
        }
        for (size_t i = 0; i < in->n; i++) {
            float *x = in->x + (i * C + ch) * HW;
            memcpy(x, planes + i * HW, HW * sizeof *x);
            normalise_plane(input, ch, x, HW);
        }
    }
    return CBQ_OK;
}

static int fill_batch(cbq_model_input *in, const cbq_input_spec *input, cbq_error *err)
{
    in->H = (size_t)input->height;
    in->W = (size_t)input->width;
    in->channels = cbq_input_channels(input);
    in->hu_min = input->hu_min;
    in->hu_max = input->hu_max;
    cbq_slice_spec ss = {.height = in->H, .width = in->W, .hu_min = input->hu_min,
                         .hu_max = input->hu_max};
    CBQ_TRY(cbq_slicer_init(&in->slicer, in->canon.nx, in->canon.ny, &ss, err));
    size_t n = in->n ? in->n : 1, plane_count, count;
    if (!cbq_size_mul(&plane_count, n, in->H * in->W) ||
        !cbq_size_mul(&count, plane_count, in->channels) ||
        !(in->x = malloc(count * sizeof *in->x)))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for %zu slices", in->n);
    cbq_mem_advise_huge(in->x, count * sizeof *in->x);
    if (in->channels == 1 && !input->n_norm) /* the common case needs no copy */
        return cbq_slicer_fill(&in->slicer, &in->canon, in->ks, in->n, in->x, err);
    size_t *ks = malloc(n * sizeof *ks);
    float *planes = malloc(plane_count * sizeof *planes);
    int rc = ks && planes ? fill_channels(in, input, ks, planes, err)
                          : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for %zu slices", in->n);
    free(ks);
    free(planes);
    return rc;
}

/* Structures, slices and the batch of a model input whose canonical volume
 * is in place. */
static int prepare(cbq_model_input *in, const cbq_cohort_volume *v, const cbq_cohort *c,
                   const cbq_input_spec *input, const cbq_model_input_options *o, cbq_error *err)
{
    int selection_needs = v && o->selection == CBQ_SLICES_STRUCTURES && !v->mask[0]; /* RTSTRUCT */
    if (v && (o->with_structures || selection_needs))
        CBQ_TRY(load_structures(in, v, c, err));
    if (!input)
        return CBQ_OK; /* the grid and its structures only */
    CBQ_TRY(select_slices(in, v, o, err));
    return fill_batch(in, input, err);
}

static int load(cbq_model_input *in, const char *path, const cbq_cohort_volume *v,
                const cbq_cohort *c, const cbq_input_spec *input, const cbq_model_input_options *o,
                cbq_error *err)
{
    CBQ_TRY(load_volume(in, path, o, err));
    return prepare(in, v, c, input, o, err);
}

int cbq_model_input_load(cbq_model_input *in, const cbq_cohort_volume *v, const cbq_cohort *c,
                         const cbq_input_spec *input, const cbq_model_input_options *o,
                         cbq_error *err)
{
    memset(in, 0, sizeof *in);
    int rc = load(in, v->path, v, c, input, o, err);
    if (rc != CBQ_OK)
        cbq_model_input_free(in);
    return rc;
}

int cbq_model_input_load_path(cbq_model_input *in, const char *path, const cbq_input_spec *input,
                              const cbq_model_input_options *o, cbq_error *err)
{
    memset(in, 0, sizeof *in);
    int rc = load(in, path, NULL, NULL, input, o, err);
    if (rc != CBQ_OK)
        cbq_model_input_free(in);
    return rc;
}

int cbq_model_input_from_volume(cbq_model_input *in, const cbq_volume *vol, const char *name,
                                const cbq_input_spec *input, const cbq_model_input_options *o,
                                cbq_error *err)
{
    memset(in, 0, sizeof *in);
    int rc = canonical_volume(in, vol, name, o, err);
    if (rc == CBQ_OK)
        rc = prepare(in, NULL, NULL, input, o, err);
    if (rc != CBQ_OK)
        cbq_model_input_free(in);
    return rc;
}

int cbq_model_input_unmap_canonical(const cbq_model_input *in, const float *maps, cbq_volume *out,
                                    cbq_error *err)
{
    CBQ_TRY(cbq_volume_alloc(out, in->canon.nx, in->canon.ny, in->canon.nz, in->canon.spacing, 0,
                             err));
    cbq_mem_advise_huge(out->data, cbq_volume_count(out) * sizeof *out->data);
    memcpy(out->affine, in->canon.affine, sizeof out->affine);
    /* cbq_slicer_unmap only reads its tables and writes into its scratch,
     * which belongs to this model input. */
    cbq_slicer *slicer = (cbq_slicer *)&in->slicer;
    for (size_t i = 0; i < in->n; i++) {
        int rc = cbq_slicer_unmap(slicer, maps + i * in->H * in->W, out, in->ks[i], err);
        if (rc != CBQ_OK) {
            cbq_volume_free(out);
            return rc;
        }
    }
    return CBQ_OK;
}

int cbq_model_input_unmap_source(const cbq_model_input *in, const float *maps, cbq_volume *out,
                                 cbq_error *err)
{
    cbq_volume canon;
    CBQ_TRY(cbq_model_input_unmap_canonical(in, maps, &canon, err));
    int rc = cbq_volume_uncanonical(out, &canon, &in->xf, err);
    cbq_volume_free(&canon);
    return rc;
}

const uint8_t *cbq_model_input_structure(const cbq_model_input *in, const char *category)
{
    for (int s = 0; s < CBQ_STRUCT_COUNT; s++)
        if (strcmp(cbq_structure_name(s), category) == 0)
            return in->structures.mask[s];
    return NULL;
}

int cbq_model_input_structure_weights(const cbq_model_input *in, const char *const *categories,
                                      size_t n_categories, float **weights, cbq_error *err)
{
    for (size_t c = 0; c < n_categories; c++)
        weights[c] = NULL;
    size_t nx = in->canon.nx, ny = in->canon.ny, HW = in->H * in->W;
    float *plane = malloc(nx * ny * sizeof *plane), *tmp = malloc(ny * in->W * sizeof *tmp);
    int rc = plane && tmp ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for structure masks");
    for (size_t c = 0; c < n_categories && rc == CBQ_OK; c++) {
        const uint8_t *mask = cbq_model_input_structure(in, categories[c]);
        if (!mask)
            continue; /* "overall", or a structure this volume does not have */
        if (!(weights[c] = malloc((in->n ? in->n : 1) * HW * sizeof **weights))) {
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for structure %s", categories[c]);
            break;
        }
        /* A 0/1 plane area-averaged by the image's resampling gives each
         * input pixel the fraction of it the structure covers. */
        for (size_t i = 0; i < in->n; i++) {
            const uint8_t *m = mask + in->ks[i] * nx * ny;
            for (size_t p = 0; p < nx * ny; p++)
                plane[p] = m[p] ? 1.0f : 0.0f;
            cbq_resample2d(&in->slicer.fx, &in->slicer.fy, plane, tmp, weights[c] + i * HW);
        }
    }
    free(plane);
    free(tmp);
    if (rc != CBQ_OK)
        for (size_t c = 0; c < n_categories; c++) {
            free(weights[c]);
            weights[c] = NULL;
        }
    return rc;
}

int cbq_model_input_attrib(cbq_cam *cam, const cbq_model_input *in, cbq_ae *ae,
                           float *const *maps_input, cbq_error *err)
{
    if (in->n == 0)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "no slice with a structure");
    size_t no = cbq_cam_n_outputs(cam);
    const char *names[CBQ_MAX_OUTPUTS] = {0};
    for (size_t c = 0; c < no; c++)
        names[c] = cbq_cam_category_name(cam, c);
    float *weights[CBQ_MAX_OUTPUTS] = {0};
    int rc = cbq_model_input_structure_weights(in, names, no, weights, err);
    if (rc == CBQ_OK)
        rc = cbq_attrib_volume(cam, in->x, in->n, (const float *const *)weights, ae, maps_input,
                               NULL, NULL, err);
    for (size_t c = 0; c < no; c++)
        free(weights[c]);
    return rc;
}
