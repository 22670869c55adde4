/* pointing.c - ae.csv's localisation and faithfulness columns of one volume
 * (pointing.h): the map's energy inside each category's structure and its
 * maximum, on the canonical grid (axis permutations and flips of the CBCT's
 * own grid, so sums and maxima equal those of the written NIfTI map), and
 * the deletion/insertion curves on evenly spaced model-input slices. */
#include "cbctiq/pointing.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/model_spec.h"
#include "cbctiq/nifti.h"
#include "cbctiq/sanity.h"

static const char *const REASONS[CBQ_EMPTY_COUNT] = {"no_structure", "zero_map", "negative_map_sum",
                                                     "flat_score", "no_curves", "not_computed"};

const char *cbq_empty_reason_name(unsigned bit_index)
{
    return bit_index < CBQ_EMPTY_COUNT ? REASONS[bit_index] : NULL;
}

void cbq_empty_reason_text(unsigned empty, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap)
        buf[0] = '\0';
    for (unsigned i = 0; i < CBQ_EMPTY_COUNT && len < cap; i++)
        if (empty >> i & 1u) {
            int n = snprintf(buf + len, cap - len, "%s%s", len ? ";" : "", REASONS[i]);
            len += n > 0 ? (size_t)n : 0;
        }
}

void cbq_pointing_options_default(cbq_pointing_options *o, const cbq_model_input *in)
{
    memset(o, 0, sizeof *o);
    cbq_faith_options_default(&o->faith, in->H, in->W);
    o->max_slices = 1;
}

/* The maps on the canonical grid are the data layer's
 * (cbq_model_input_unmap_canonical), back on the CBCT's own grid its
 * cbq_model_input_unmap_source: the grid the energies are computed on and
 * the grid of the written map differ by axis permutations and flips only. */
int cbq_model_input_write_map(cbq_model_input *in, const float *maps, const char *path,
                              cbq_error *err)
{
    cbq_volume src;
    CBQ_TRY(cbq_model_input_unmap_source(in, maps, &src, err));
    int rc = cbq_nifti_write(path, &src, CBQ_NIFTI_FLOAT32, err);
    cbq_volume_free(&src);
    return rc;
}

/* The sums and maxima of cbq_pointing_energy, fed in pieces in canonical
 * voxel order, so that a volume's map can be fed slice by slice. */
typedef struct {
    double total, inside;
    float max_all, max_inside;
    int nonzero;
    size_t in_mask;
} energy_sums;

static void energy_begin(energy_sums *e)
{
    *e = (energy_sums){.max_all = -INFINITY, .max_inside = -INFINITY};
}

static void energy_add(energy_sums *e, const float *m, const uint8_t *mask, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        e->total += m[i];
        e->nonzero |= m[i] != 0.0f;
        e->max_all = m[i] > e->max_all ? m[i] : e->max_all;
        if (mask && mask[i]) {
            e->in_mask++;
            e->inside += m[i];
            e->max_inside = m[i] > e->max_inside ? m[i] : e->max_inside;
        }
    }
}

static void energy_end(const energy_sums *e, cbq_pointing *p)
{
    p->energy_in_structure = p->pointing_hit = NAN;
    if (!e->nonzero)
        p->empty |= CBQ_EMPTY_ZERO_MAP;
    /* a structure named in labels.json but absent from this volume is none */
    if (!e->in_mask)
        p->empty |= CBQ_EMPTY_NO_STRUCTURE;
    if (!e->nonzero || !e->in_mask)
        return;
    /* a map that sums below zero has no energy to share out */
    if (e->total > 0.0)
        p->energy_in_structure = e->inside / e->total;
    else
        p->empty |= CBQ_EMPTY_MAP_SUM;
    p->pointing_hit = e->max_inside == e->max_all;
}

void cbq_pointing_energy(const cbq_volume *canon_map, const uint8_t *mask, cbq_pointing *p)
{
    energy_sums e;
    energy_begin(&e);
    energy_add(&e, canon_map->data, mask, cbq_volume_count(canon_map));
    energy_end(&e, p);
}

/* cbq_pointing_energy of the maps [n, H, W] unmapped onto the canonical
 * grid (cbq_model_input_unmap_canonical), without that volume: each
 * canonical slice is unmapped into `plane` (a one-slice volume) when it was
 * selected, read from `zeros` when not, and fed in the volume's order. */
static int slice_energy(cbq_model_input *in, const float *maps, const uint8_t *mask,
                        cbq_volume *plane, const float *zeros, cbq_pointing *p, cbq_error *err)
{
    size_t count = in->canon.nx * in->canon.ny, s = 0;
    energy_sums e;
    energy_begin(&e);
    for (size_t k = 0; k < in->canon.nz; k++) {
        const float *m = zeros;
        size_t last = SIZE_MAX; /* ks ascends; of equal entries the last one lands */
        while (s < in->n && in->ks[s] == k)
            last = s++;
        if (last != SIZE_MAX) {
            CBQ_TRY(cbq_slicer_unmap(&in->slicer, maps + last * in->H * in->W, plane, 0, err));
            m = plane->data;
        }
        energy_add(&e, m, mask ? mask + k * count : NULL, count);
    }
    energy_end(&e, p);
    return CBQ_OK;
}

/* The curves on at most o->max_slices evenly spaced slices of the volume. */
static int volume_curves(const cbq_model_input *in, cbq_net *net, size_t batch,
                         const float *const *maps, const cbq_pointing_options *o,
                         cbq_faith_curves *cur, size_t *used, cbq_error *err)
{
    size_t n_out = cbq_net_spec(net)->n_outputs, HW = in->H * in->W, CHW = in->channels * HW;
    size_t m = cbq_sanity_n_slices(in->n, o->max_slices);
    float *x = malloc(m * CHW * sizeof *x), *sub[CBQ_MAX_OUTPUTS] = {0};
    cbq_faith_options faith = o->faith;
    faith.channels = in->channels;
    int rc = x ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for deletion curves");
    for (size_t c = 0; c < n_out && rc == CBQ_OK; c++)
        if (maps[c] && !(sub[c] = malloc(m * HW * sizeof **sub)))
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for deletion curves");
    for (size_t i = 0; i < m && rc == CBQ_OK; i++) {
        size_t s = cbq_sanity_slice_index(in->n, m, i);
        memcpy(x + i * CHW, in->x + s * CHW, CHW * sizeof *x);
        for (size_t c = 0; c < n_out; c++)
            if (sub[c])
                memcpy(sub[c] + i * HW, maps[c] + s * HW, HW * sizeof *x);
    }
    if (rc == CBQ_OK)
        rc = cbq_faith_curves_compute(cbq_faith_net_score, net, batch, n_out, x, m, in->H, in->W,
                                      (const float *const *)sub, &faith, cur, err);
    *used = m;
    free(x);
    for (size_t c = 0; c < n_out; c++)
        free(sub[c]);
    return rc;
}

static void set_curves(const cbq_pointing_options *o, const cbq_faith_curves *cur,
                       size_t used, cbq_pointing *p)
{
    p->baseline = o->faith.baseline;
    p->seed = o->faith.seed;
    if (o->faith.baseline == CBQ_PERTURB_NONE) {
        p->empty |= CBQ_EMPTY_NO_CURVES;
        return;
    }
    p->curve_slices = used;
    if (!cur || !cur->computed)
        return; /* a zero map, flagged by cbq_pointing_energy */
    p->curves = *cur;
    if (isnan(cur->deletion_auc))
        p->empty |= CBQ_EMPTY_FLAT_SCORE;
}

int cbq_pointing_volume(cbq_model_input *in, cbq_net *net, size_t batch,
                        const char *const *categories, size_t n_categories,
                        const size_t *out_index, const float *const *maps,
                        const cbq_pointing_options *o, cbq_pointing *p, cbq_error *err)
{
    memset(p, 0, n_categories * sizeof *p);
    /* Slice by slice: two planes instead of a canonical volume per map. */
    size_t count = in->canon.nx * in->canon.ny;
    cbq_volume plane = {.nx = in->canon.nx, .ny = in->canon.ny, .nz = 1};
    float *zeros = calloc(count, sizeof *zeros);
    plane.data = malloc(count * sizeof *plane.data);
    int rc = zeros && plane.data ? CBQ_OK
                                 : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for a map slice");
    for (size_t k = 0; k < n_categories && rc == CBQ_OK; k++)
        rc = slice_energy(in, maps[out_index[k]], cbq_model_input_structure(in, categories[k]),
                          &plane, zeros, &p[k], err);
    free(zeros);
    free(plane.data);
    cbq_faith_curves *cur = NULL;
    size_t used = 0;
    if (rc == CBQ_OK && o->faith.baseline != CBQ_PERTURB_NONE) {
        if (!(cur = calloc(CBQ_MAX_OUTPUTS, sizeof *cur)))
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for deletion curves");
        rc = volume_curves(in, net, batch, maps, o, cur, &used, err);
    }
    for (size_t k = 0; k < n_categories && rc == CBQ_OK; k++)
        set_curves(o, cur ? &cur[out_index[k]] : NULL, used, &p[k]);
    free(cur);
    return rc;
}

static const char *const CURVE_COLUMNS[] = {"volume_id", "category", "order", "curve",
                                            "step", "fraction", "score", "normalised"};
enum { N_CURVE_COLUMNS = sizeof CURVE_COLUMNS / sizeof CURVE_COLUMNS[0] };

int cbq_curves_writer_open(cbq_csv_writer *w, const char *path, cbq_error *err)
{
    return cbq_csv_writer_open(w, path, CURVE_COLUMNS, N_CURVE_COLUMNS, err);
}

static int put_curve(cbq_csv_writer *w, const char *volume_id, const char *category,
                     const char *order, const char *curve, const double *score,
                     const cbq_faith_curves *c, cbq_error *err)
{
    double scale = c->score_original - c->score_baseline;
    for (size_t t = 0; t <= CBQ_CURVE_STEPS; t++) {
        cbq_csv_put_str(w, volume_id);
        cbq_csv_put_str(w, category);
        cbq_csv_put_str(w, order);
        cbq_csv_put_str(w, curve);
        cbq_csv_put_int(w, (long long)t);
        cbq_csv_put_double(w, (double)t / CBQ_CURVE_STEPS);
        cbq_csv_put_double(w, score[t]);
        /* empty when the baseline leaves the score as it is (flat_score) */
        cbq_csv_put_double(w, isnan(c->deletion_auc) ? NAN : (score[t] - c->score_baseline) / scale);
        CBQ_TRY(cbq_csv_end_row(w, err));
    }
    return CBQ_OK;
}

int cbq_curves_put(cbq_csv_writer *w, const char *volume_id, const char *category,
                   const cbq_pointing *p, cbq_error *err)
{
    const cbq_faith_curves *c = &p->curves;
    if (!c->computed)
        return CBQ_OK;
    CBQ_TRY(put_curve(w, volume_id, category, "map", "deletion", c->deletion, c, err));
    CBQ_TRY(put_curve(w, volume_id, category, "map", "insertion", c->insertion, c, err));
    CBQ_TRY(put_curve(w, volume_id, category, "random", "deletion", c->deletion_random, c, err));
    return put_curve(w, volume_id, category, "random", "insertion", c->insertion_random, c, err);
}
