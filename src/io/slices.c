/* slices.c - windowing, separable area/bilinear resampling of axial slices
 * and the inverse path (see include/cbctiq/slices.h). */
#include "cbctiq/slices.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void cbq_resample_axis_free(cbq_resample_axis *a)
{
    free(a->start);
    free(a->idx);
    free(a->w);
    memset(a, 0, sizeof *a);
}

/* Exact box filter: in integer units of 1/n_out input pixels, output o covers
 * [o*n_in, (o+1)*n_in) and input p covers [p*n_out, (p+1)*n_out). */
static size_t fill_area(cbq_resample_axis *a)
{
    size_t t = 0, in = a->n_in, out = a->n_out;
    for (size_t o = 0; o < out; o++) {
        a->start[o] = t;
        size_t lo = o * in, hi = (o + 1) * in;
        for (size_t p = lo / out; p * out < hi && p < in; p++) {
            size_t plo = p * out, phi = plo + out;
            size_t ov = (phi < hi ? phi : hi) - (plo > lo ? plo : lo);
            if (ov == 0)
                continue;
            a->idx[t] = p;
            a->w[t++] = (float)((double)ov / (double)in);
        }
    }
    a->start[out] = t;
    return t;
}

/* PyTorch upsample_bilinear2d, align_corners=False, one axis. */
static size_t fill_linear(cbq_resample_axis *a)
{
    size_t t = 0, in = a->n_in, out = a->n_out;
    double scale = (double)in / (double)out;
    for (size_t o = 0; o < out; o++) {
        a->start[o] = t;
        double src = scale * ((double)o + 0.5) - 0.5;
        if (src < 0)
            src = 0;
        size_t i0 = (size_t)src;
        if (i0 > in - 1)
            i0 = in - 1;
        size_t i1 = i0 < in - 1 ? i0 + 1 : i0;
        double l1 = src - (double)i0, l0 = 1.0 - l1;
        a->idx[t] = i0;
        a->w[t++] = (float)l0;
        a->idx[t] = i1;
        a->w[t++] = (float)l1;
    }
    a->start[out] = t;
    return t;
}

int cbq_resample_axis_init(cbq_resample_axis *a, size_t n_in, size_t n_out, cbq_error *err)
{
    memset(a, 0, sizeof *a);
    if (n_in == 0 || n_out == 0)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "cannot resample %zu pixels to %zu", n_in, n_out);
    a->n_in = n_in;
    a->n_out = n_out;
    /* Area: each output touches at most ceil(in/out) + 1 inputs. */
    size_t per = n_out < n_in ? n_in / n_out + 2 : 2, cap;
    if (!cbq_size_mul(&cap, per, n_out))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "resampling table overflows");
    a->start = malloc((n_out + 1) * sizeof *a->start);
    a->idx = malloc(cap * sizeof *a->idx);
    a->w = malloc(cap * sizeof *a->w);
    if (!a->start || !a->idx || !a->w) {
        cbq_resample_axis_free(a);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for a resampling table");
    }
    if (n_out < n_in)
        fill_area(a);
    else if (n_out > n_in)
        fill_linear(a);
    else
        for (size_t o = 0; o <= n_out; o++) {
            a->start[o] = o;
            if (o < n_out) {
                a->idx[o] = o;
                a->w[o] = 1.0f;
            }
        }
    return CBQ_OK;
}

void cbq_resample2d(const cbq_resample_axis *ax, const cbq_resample_axis *ay, const float *in,
                    float *tmp, float *out)
{
    size_t nxi = ax->n_in, nxo = ax->n_out, nyo = ay->n_out;
    if (nxi == nxo && ay->n_in == nyo) {
        /* Same size on both axes (a volume already on the model's grid):
         * the tables are 1.0 weights, and both passes below reduce to
         * 0 + x, which turns -0 into +0 and leaves every other value as it
         * is; so does x + 0. */
        for (size_t i = 0; i < nxo * nyo; i++)
            out[i] = in[i] + 0.0f;
        return;
    }
    for (size_t y = 0; y < ay->n_in; y++) {
        const float *row = in + y * nxi;
        float *dst = tmp + y * nxo;
        for (size_t o = 0; o < nxo; o++) {
            float acc = 0;
            for (size_t t = ax->start[o]; t < ax->start[o + 1]; t++)
                acc += ax->w[t] * row[ax->idx[t]];
            dst[o] = acc;
        }
    }
    for (size_t o = 0; o < nyo; o++) {
        float *dst = out + o * nxo;
        size_t t0 = ay->start[o], t1 = ay->start[o + 1];
        for (size_t x = 0; x < nxo; x++)
            dst[x] = 0;
        for (size_t t = t0; t < t1; t++) {
            const float *src = tmp + ay->idx[t] * nxo;
            float w = ay->w[t];
            for (size_t x = 0; x < nxo; x++)
                dst[x] += w * src[x];
        }
    }
}

void cbq_slicer_free(cbq_slicer *s)
{
    cbq_resample_axis_free(&s->fx);
    cbq_resample_axis_free(&s->fy);
    cbq_resample_axis_free(&s->bx);
    cbq_resample_axis_free(&s->by);
    free(s->scratch);
    free(s->scratch2);
    memset(s, 0, sizeof *s);
}

int cbq_slicer_init(cbq_slicer *s, size_t nx, size_t ny, const cbq_slice_spec *spec,
                    cbq_error *err)
{
    memset(s, 0, sizeof *s);
    CBQ_CHECK_ARG(err, spec->height > 0 && spec->width > 0, "model input size %zux%zu is empty",
                  spec->height, spec->width);
    CBQ_CHECK_ARG(err, isfinite(spec->hu_min) && isfinite(spec->hu_max) &&
                  spec->hu_max > spec->hu_min,
                  "HU window [%g, %g] is empty: hu_max must exceed hu_min", spec->hu_min,
                  spec->hu_max);
    s->spec = *spec;
    s->nx = nx;
    s->ny = ny;
    size_t mx = nx > spec->width ? nx : spec->width, my = ny > spec->height ? ny : spec->height;
    size_t cells;
    int rc = cbq_size_mul(&cells, mx, my) ? CBQ_OK
                                           : CBQ_FAIL(err, CBQ_ERR_NOMEM, "slice size overflows");
    if (rc == CBQ_OK) rc = cbq_resample_axis_init(&s->fx, nx, spec->width, err);
    if (rc == CBQ_OK) rc = cbq_resample_axis_init(&s->fy, ny, spec->height, err);
    if (rc == CBQ_OK) rc = cbq_resample_axis_init(&s->bx, spec->width, nx, err);
    if (rc == CBQ_OK) rc = cbq_resample_axis_init(&s->by, spec->height, ny, err);
    if (rc == CBQ_OK) {
        s->scratch = malloc(cells * sizeof(float));
        s->scratch2 = malloc(cells * sizeof(float));
        if (!s->scratch || !s->scratch2)
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for slice buffers");
    }
    if (rc != CBQ_OK)
        cbq_slicer_free(s);
    return rc;
}

int cbq_slicer_fill(cbq_slicer *s, const cbq_volume *vol, const size_t *ks, size_t n, float *out,
                    cbq_error *err)
{
    CBQ_CHECK_ARG(err, vol->nx == s->nx && vol->ny == s->ny,
                  "volume slices are %zux%zu, the slicer was built for %zux%zu", vol->nx, vol->ny,
                  s->nx, s->ny);
    double lo = s->spec.hu_min, inv = 1.0 / (s->spec.hu_max - s->spec.hu_min);
    size_t plane = s->nx * s->ny, out_plane = s->spec.height * s->spec.width;
    for (size_t b = 0; b < n; b++) {
        CBQ_CHECK_ARG(err, ks[b] < vol->nz, "slice %zu is outside the volume (%zu slices)", ks[b],
                      vol->nz);
        const float *src = vol->data + ks[b] * plane;
        for (size_t p = 0; p < plane; p++) {
            double x = ((double)src[p] - lo) * inv;
            s->scratch[p] = (float)(x < 0 ? 0 : x > 1 ? 1 : x);
        }
        cbq_resample2d(&s->fx, &s->fy, s->scratch, s->scratch2, out + b * out_plane);
    }
    return CBQ_OK;
}

int cbq_slicer_unmap(cbq_slicer *s, const float *map, cbq_volume *dst, size_t k, cbq_error *err)
{
    CBQ_CHECK_ARG(err, dst->nx == s->nx && dst->ny == s->ny && k < dst->nz,
                  "map target slice %zu of a %zux%zux%zu volume does not match the slicer (%zux%zu)",
                  k, dst->nx, dst->ny, dst->nz, s->nx, s->ny);
    cbq_resample2d(&s->bx, &s->by, map, s->scratch2, dst->data + k * s->nx * s->ny);
    return CBQ_OK;
}

size_t cbq_slices_nonempty(const cbq_volume *mask, size_t *ks)
{
    size_t plane = mask->nx * mask->ny, n = 0;
    for (size_t k = 0; k < mask->nz; k++) {
        const float *p = mask->data + k * plane;
        for (size_t i = 0; i < plane; i++)
            if (p[i] != 0) {
                ks[n++] = k;
                break;
            }
    }
    return n;
}

size_t cbq_slices_zrange(const cbq_volume *vol, double z_min, double z_max, size_t *ks)
{
    size_t n = 0;
    double ci = ((double)vol->nx - 1) / 2, cj = ((double)vol->ny - 1) / 2;
    for (size_t k = 0; k < vol->nz; k++) {
        double xyz[3];
        cbq_volume_world(vol, ci, cj, (double)k, xyz);
        if (xyz[2] >= z_min && xyz[2] <= z_max)
            ks[n++] = k;
    }
    return n;
}
