/* sanity.c - the sanity checks of sanity.h: for each method, the maps of
 * the trained model against those of the cascade's re-initialised models
 * (randomise.c) and of a label-permuted model, summarised per step and
 * category over volumes, with the median of a per-volume number of the
 * maps (options.energy: the share of the map on the category's structure)
 * under each model. It computes and returns rows; writing them is the
 * caller's (study's sanity.csv writer), reading volumes too. */
#include "cbctiq/sanity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/progress.h"

void cbq_sanity_options_default(cbq_sanity_options *o)
{
    memset(o, 0, sizeof *o);
    o->methods[0] = CBQ_CAM_GRADCAM;
    o->n_methods = 1;
    o->threshold = 0.5;
    o->seed = 1;
    o->batch = 16;
    cbq_attrib_options_default(&o->attrib);
}

size_t cbq_sanity_n_slices(size_t nz, size_t max_slices)
{
    return max_slices && max_slices < nz ? max_slices : nz;
}

size_t cbq_sanity_slice_index(size_t nz, size_t n, size_t i)
{
    return (nz * (2 * i + 1)) / (2 * n);
}

/* The same channels filled the same way (model_spec.h). */
static int same_channels(const cbq_input_spec *x, const cbq_input_spec *y)
{
    size_t channels = cbq_input_channels(x);
    if (channels != cbq_input_channels(y) || (channels > 1 && x->slices != y->slices) ||
        x->n_norm != y->n_norm)
        return 0;
    for (size_t ch = 0; ch < x->n_norm; ch++)
        if (x->mean[ch] != y->mean[ch] || x->std[ch] != y->std[ch])
            return 0;
    return 1;
}

int cbq_sanity_same_outputs(const cbq_net *a, const cbq_net *b)
{
    const cbq_model_spec *x = cbq_net_spec(a), *y = cbq_net_spec(b);
    if (x->n_outputs != y->n_outputs || x->input.height != y->input.height ||
        x->input.width != y->input.width || x->input.hu_min != y->input.hu_min ||
        x->input.hu_max != y->input.hu_max || !same_channels(&x->input, &y->input))
        return 0;
    for (size_t c = 0; c < x->n_outputs; c++)
        if (strcmp(x->outputs[c], y->outputs[c]) != 0)
            return 0;
    return 1;
}

/* ---- the trained weights, to come back to before each volume's cascade ---- */
typedef struct {
    float **data;
    size_t n;
} snapshot;

static size_t tensor_bytes(const cbq_tensor_view *v)
{
    return v->numel * (v->dtype == CBQ_DTYPE_I64 ? sizeof(int64_t) : sizeof(float));
}

static int snapshot_take(snapshot *s, const cbq_net *net, cbq_error *err)
{
    s->n = cbq_net_tensor_count(net);
    s->data = calloc(s->n ? s->n : 1, sizeof *s->data);
    if (!s->data)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (size_t t = 0; t < s->n; t++) {
        cbq_tensor_view v;
        cbq_net_tensor(net, t, &v);
        size_t bytes = tensor_bytes(&v);
        if (!(s->data[t] = malloc(bytes ? bytes : 1)))
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
        memcpy(s->data[t], v.data, bytes);
    }
    return CBQ_OK;
}

static void snapshot_restore(const snapshot *s, cbq_net *net)
{
    for (size_t t = 0; t < s->n; t++) {
        cbq_tensor_view v;
        cbq_net_tensor(net, t, &v);
        memcpy(v.data, s->data[t], tensor_bytes(&v));
    }
}

static void snapshot_free(snapshot *s)
{
    for (size_t t = 0; t < s->n && s->data; t++)
        free(s->data[t]);
    free(s->data);
}

/* ---- maps of one volume and their comparisons ---- */
/* Maps of every output for one volume: [n_out][nz * grid] on the grid the
 * comparison uses, and, for CAM methods under options.energy, the same maps
 * on the input grid (the grid of ae.csv's maps) that the energy is of. */
typedef struct {
    float *maps[CBQ_MAX_OUTPUTS];
    float *input[CBQ_MAX_OUTPUTS];
    double ae[CBQ_MAX_OUTPUTS];
    double energy[CBQ_MAX_OUTPUTS];
    unsigned energy_empty[CBQ_MAX_OUTPUTS];
    size_t per_map;
    size_t cap_maps, cap_input; /* floats each maps[c] / input[c] holds */
} vol_maps;

/* Room for `count` floats per output; grown for a volume with more tested
 * slices than the ones before (volumes differ in nz). */
static int alloc_maps(float **maps, size_t no, size_t count, size_t *cap, cbq_error *err)
{
    if (count <= *cap)
        return CBQ_OK;
    for (size_t c = 0; c < no; c++) {
        float *grown = realloc(maps[c], count * sizeof(float));
        if (!grown)
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
        maps[c] = grown;
    }
    *cap = count;
    return CBQ_OK;
}

/* options.energy of the input-grid maps; NaN without a hook. */
static int map_energy(const cbq_sanity_options *o, size_t v, float *const *input, vol_maps *out,
                      cbq_error *err)
{
    for (size_t c = 0; c < CBQ_MAX_OUTPUTS; c++) {
        out->energy[c] = NAN;
        out->energy_empty[c] = 0;
    }
    if (!o->energy)
        return CBQ_OK;
    return o->energy(o->energy_user, v, (const float *const *)input, out->energy, out->energy_empty,
                     err);
}

static int compute_maps(cbq_cam *cam, const cbq_sanity_options *o, const cbq_sanity_volume *vols,
                        size_t v, vol_maps *out, cbq_error *err)
{
    size_t h, w, H, W, no = cbq_cam_n_outputs(cam);
    cbq_cam_feature_shape(cam, &h, &w);
    cbq_cam_input_shape(cam, &H, &W);
    int pixel = h * w == 0, want_input = o->energy && !pixel;
    out->per_map = vols[v].nz * (pixel ? H * W : h * w);
    CBQ_TRY(alloc_maps(out->maps, no, out->per_map, &out->cap_maps, err));
    if (want_input)
        CBQ_TRY(alloc_maps(out->input, no, vols[v].nz * H * W, &out->cap_input, err));
    float *const *input = pixel ? out->maps : want_input ? out->input : NULL;
    cbq_ae ae[CBQ_MAX_OUTPUTS];
    CBQ_TRY(cbq_attrib_volume(cam, vols[v].slices, vols[v].nz, NULL, ae, input,
                              pixel ? NULL : out->maps, NULL, err));
    for (size_t c = 0; c < no; c++) {
        out->ae[c] = ae[c].ae;
        cbq_ae_free(&ae[c]);
    }
    return map_energy(o, v, input, out, err);
}

static void vol_maps_free(vol_maps *m)
{
    for (size_t c = 0; c < CBQ_MAX_OUTPUTS; c++) {
        free(m->maps[c]);
        free(m->input[c]);
    }
}

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* Median of the finite values (NaN when none). Sorts x. */
static double median(double *x, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]))
            x[m++] = x[i];
    if (m == 0)
        return NAN;
    qsort(x, m, sizeof *x, cmp_double);
    return m % 2 ? x[m / 2] : 0.5 * (x[m / 2 - 1] + x[m / 2]);
}

/* Per comparison slot (slot 0: the label-permuted model; slot s >= 1:
 * cascade step s), output and volume: rank correlation, AE ratio and the
 * energies of both models' maps. */
typedef struct {
    size_t n_slots, no, n_vols;
    double *rho, *ratio;   /* [slot][output][volume] */
    /* the energy share of the trained and the other maps, and both models'
     * reason bits (as doubles, exact, so that they gather with the rest) */
    double *energy_t, *energy_r, *energy_empty;
    double *ae_t, *ae_r;   /* [slot][output][volume]: AE of the trained and the other maps */
    double *tmp;           /* [no * n_vols] scratch for medians */
} comparisons;

static int comparisons_init(comparisons *cmp, size_t n_slots, size_t no, size_t n_vols, cbq_error *err)
{
    size_t cells = n_slots * no * n_vols;
    cmp->n_slots = n_slots;
    cmp->no = no;
    cmp->n_vols = n_vols;
    cmp->rho = malloc((cells + 1) * sizeof *cmp->rho);
    cmp->ratio = malloc((cells + 1) * sizeof *cmp->ratio);
    cmp->ae_t = calloc(cells + 1, sizeof *cmp->ae_t);
    cmp->ae_r = calloc(cells + 1, sizeof *cmp->ae_r);
    cmp->tmp = malloc((no * n_vols + 1) * sizeof *cmp->tmp);
    cmp->energy_t = malloc((cells + 1) * sizeof *cmp->energy_t);
    cmp->energy_r = malloc((cells + 1) * sizeof *cmp->energy_r);
    cmp->energy_empty = calloc(cells + 1, sizeof *cmp->energy_empty);
    if (!cmp->rho || !cmp->ratio || !cmp->ae_t || !cmp->ae_r || !cmp->tmp || !cmp->energy_t ||
        !cmp->energy_r || !cmp->energy_empty)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    return CBQ_OK;
}

static void comparisons_free(comparisons *cmp)
{
    free(cmp->rho);
    free(cmp->ratio);
    free(cmp->ae_t);
    free(cmp->ae_r);
    free(cmp->tmp);
    free(cmp->energy_t);
    free(cmp->energy_r);
    free(cmp->energy_empty);
}

static void compare_maps(comparisons *cmp, size_t slot, size_t v, const vol_maps *ref,
                         const vol_maps *cur, void *work)
{
    for (size_t c = 0; c < cmp->no; c++) {
        size_t i = (slot * cmp->no + c) * cmp->n_vols + v;
        cmp->rho[i] = cbq_map_spearman(ref->maps[c], cur->maps[c], ref->per_map, work);
        cmp->ratio[i] = ref->ae[c] != 0.0 ? cur->ae[c] / ref->ae[c] : NAN;
        cmp->ae_t[i] = ref->ae[c];
        cmp->ae_r[i] = cur->ae[c];
        cmp->energy_t[i] = ref->energy[c];
        cmp->energy_r[i] = cur->energy[c];
        cmp->energy_empty[i] = (double)(ref->energy_empty[c] | cur->energy_empty[c]);
    }
}

/* Mean over volumes, summed in volume order. */
static double volume_mean(const double *x, size_t n)
{
    double mean = 0.0;
    for (size_t v = 0; v < n; v++)
        mean += x[v] / (double)n;
    return mean;
}

/* Median rank correlation of `slot`, pooled over outputs and volumes. */
static double slot_median(const comparisons *cmp, size_t slot)
{
    size_t n = cmp->no * cmp->n_vols;
    memcpy(cmp->tmp, cmp->rho + slot * n, n * sizeof *cmp->tmp);
    return median(cmp->tmp, n);
}

/* The energy columns of the row of cell range [i, i + n_vols). */
static void energy_columns(const comparisons *cmp, size_t i, cbq_sanity_row *row)
{
    memcpy(cmp->tmp, cmp->energy_t + i, cmp->n_vols * sizeof *cmp->tmp);
    row->median_energy_trained = median(cmp->tmp, cmp->n_vols);
    memcpy(cmp->tmp, cmp->energy_r + i, cmp->n_vols * sizeof *cmp->tmp);
    row->median_energy_random = median(cmp->tmp, cmp->n_vols);
    row->energy_change = row->median_energy_random - row->median_energy_trained;
    row->energy_empty = 0;
    if (isnan(row->median_energy_random) || isnan(row->median_energy_trained))
        for (size_t v = 0; v < cmp->n_vols; v++)
            row->energy_empty |= (unsigned)cmp->energy_empty[i + v];
}

/* The slot's rows, one per output, appended to res. */
static void add_rows(cbq_sanity_result *res, const comparisons *cmp, size_t slot,
                     cbq_cam_method method, const char *layer, const cbq_cam *cam,
                     double threshold, int survives)
{
    double pooled = slot_median(cmp, slot);
    for (size_t c = 0; c < cmp->no; c++) {
        const double *r = cmp->rho + (slot * cmp->no + c) * cmp->n_vols;
        const double *q = cmp->ratio + (slot * cmp->no + c) * cmp->n_vols;
        double lo = INFINITY, hi = -INFINITY;
        for (size_t v = 0; v < cmp->n_vols; v++)
            if (isfinite(r[v])) {
                lo = fmin(lo, r[v]);
                hi = fmax(hi, r[v]);
            }
        cbq_sanity_row *row = &res->rows[res->n_rows++];
        memset(row, 0, sizeof *row);
        row->method = method;
        row->permuted = slot == 0;
        row->step = slot;
        snprintf(row->layer, sizeof row->layer, "%s", layer);
        snprintf(row->category, sizeof row->category, "%s", cbq_cam_category_name(cam, c));
        row->n_volumes = cmp->n_vols;
        memcpy(cmp->tmp, r, cmp->n_vols * sizeof *cmp->tmp);
        row->median_rho = median(cmp->tmp, cmp->n_vols);
        row->min_rho = isfinite(lo) ? lo : NAN;
        row->max_rho = isfinite(hi) ? hi : NAN;
        memcpy(cmp->tmp, q, cmp->n_vols * sizeof *cmp->tmp);
        row->median_ae_ratio = median(cmp->tmp, cmp->n_vols);
        row->mean_ae_trained = volume_mean(cmp->ae_t + (slot * cmp->no + c) * cmp->n_vols, cmp->n_vols);
        row->mean_ae_random = volume_mean(cmp->ae_r + (slot * cmp->no + c) * cmp->n_vols, cmp->n_vols);
        row->threshold = threshold;
        row->pooled_rho = pooled;
        row->survives = survives;
        energy_columns(cmp, (slot * cmp->no + c) * cmp->n_vols, row);
    }
}

/* ---- volumes shared over ranks ---- */

/* The ranks' blocks of volumes [begin, end) joined on rank 0: every array
 * of cmp is [slot][output][volume], so each rank sends, per array and row,
 * the values of its own volumes, and rank 0 puts every rank's back in its
 * columns. Rank 0 then holds what one process computes alone. */
static int gather_comparisons(const cbq_dist *d, comparisons *cmp, cbq_error *err)
{
    double *const arrays[] = {cmp->rho,      cmp->ratio,    cmp->ae_t,       cmp->ae_r,
                              cmp->energy_t, cmp->energy_r, cmp->energy_empty};
    enum { N_ARRAYS = sizeof arrays / sizeof *arrays };
    const size_t rows = cmp->n_slots * cmp->no;
    size_t begin, end;
    cbq_dist_block(d, cmp->n_vols, &begin, &end);
    size_t mine = end - begin, at = 0;
    double *own = malloc((N_ARRAYS * rows * mine + 1) * sizeof *own);
    if (!own)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (size_t a = 0; a < N_ARRAYS; a++)
        for (size_t r = 0; r < rows; r++, at += mine)
            memcpy(own + at, arrays[a] + r * cmp->n_vols + begin, mine * sizeof *own);
    void *all = NULL;
    size_t all_len = 0;
    int rc = cbq_dist_gather_bytes(d, own, at * sizeof *own, &all, &all_len, err);
    free(own);
    const double *from = all;
    for (int rank = 0; rc == CBQ_OK && d->rank == 0 && rank < d->size; rank++) {
        cbq_dist other = {.rank = rank, .size = d->size};
        cbq_dist_block(&other, cmp->n_vols, &begin, &end);
        for (size_t a = 0; a < N_ARRAYS; a++)
            for (size_t r = 0; r < rows; r++, from += end - begin)
                memcpy(arrays[a] + r * cmp->n_vols + begin, from, (end - begin) * sizeof *from);
    }
    free(all);
    return rc;
}

/* ---- one method ---- */
typedef struct {
    cbq_net *net, *permuted;
    const snapshot *trained;
    const cbq_sanity_volume *vols;
    size_t n_vols, steps;
    const cbq_sanity_options *o;
    const cbq_dist *dist;  /* o->dist or this process alone */
    cbq_progress *prog;
} sanity_job;

/* Every comparison of one volume: the permuted model (slot 0) and each
 * cumulative cascade step (the top s layers random, the rest trained). */
static int volume_comparisons(const sanity_job *j, cbq_cam *cam, cbq_cam *perm_cam, size_t v,
                              comparisons *cmp, vol_maps *ref, vol_maps *cur, cbq_error *err)
{
    snapshot_restore(j->trained, j->net);
    CBQ_TRY(compute_maps(cam, j->o, j->vols, v, ref, err));
    void *work = malloc(cbq_map_spearman_work_bytes(ref->per_map));
    if (!work)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    int rc = perm_cam ? compute_maps(perm_cam, j->o, j->vols, v, cur, err) : CBQ_OK;
    if (rc == CBQ_OK && perm_cam)
        compare_maps(cmp, 0, v, ref, cur, work);
    for (size_t s = 1; s <= j->steps && rc == CBQ_OK; s++) {
        if ((rc = cbq_randomise_top(j->net, s, j->o->seed, err)) == CBQ_OK &&
            (rc = compute_maps(cam, j->o, j->vols, v, cur, err)) == CBQ_OK)
            compare_maps(cmp, s, v, ref, cur, work);
        cbq_progress_step(j->prog, 1);
    }
    free(work);
    return rc;
}

static int run_method(const sanity_job *j, cbq_cam_method method, cbq_sanity_result *res,
                      cbq_error *err)
{
    snapshot_restore(j->trained, j->net);
    cbq_attrib_options opt = j->o->attrib;
    opt.method = method;
    cbq_cam *cam = NULL, *perm_cam = NULL;
    CBQ_TRY(cbq_cam_create(&cam, j->net, j->o->batch, &opt, err));
    comparisons cmp = {0};
    vol_maps ref = {0}, cur = {0};
    int rc = comparisons_init(&cmp, j->steps + 1, cbq_cam_n_outputs(cam), j->n_vols, err);
    if (rc == CBQ_OK && j->permuted)
        rc = cbq_cam_create(&perm_cam, j->permuted, j->o->batch, &opt, err);
    size_t begin, end;
    cbq_dist_block(j->dist, j->n_vols, &begin, &end);
    for (size_t v = begin; v < end && rc == CBQ_OK; v++)
        if ((rc = volume_comparisons(j, cam, perm_cam, v, &cmp, &ref, &cur, err)) != CBQ_OK)
            cbq_error_prefix(err, "%s: ", j->vols[v].id ? j->vols[v].id : "volume");
    if (rc == CBQ_OK && j->dist->size > 1)
        rc = gather_comparisons(j->dist, &cmp, err);
    if (rc == CBQ_OK && j->dist->rank == 0) {
        double th = j->o->threshold;
        cbq_sanity_method *m = &res->methods[res->n_methods++];
        m->method = method;
        m->last_rho = j->steps ? slot_median(&cmp, j->steps) : NAN;
        m->survives = isfinite(m->last_rho) && m->last_rho > th;
        m->permuted_rho = perm_cam ? slot_median(&cmp, 0) : NAN;
        m->survives_permuted = isfinite(m->permuted_rho) && m->permuted_rho > th;
        if (perm_cam)
            add_rows(res, &cmp, 0, method, "(model trained on permuted labels)", cam, th,
                     m->survives_permuted);
        for (size_t s = 1; s <= j->steps; s++)
            add_rows(res, &cmp, s, method, cbq_randomise_step_layer(j->net, s), cam, th,
                     m->survives);
    }
    vol_maps_free(&ref);
    vol_maps_free(&cur);
    comparisons_free(&cmp);
    cbq_cam_free(perm_cam);
    cbq_cam_free(cam);
    return rc;
}

int cbq_sanity_run(cbq_net *net, cbq_net *permuted, const cbq_sanity_volume *vols, size_t n_vols,
                   const cbq_sanity_options *o, cbq_sanity_result *res, cbq_error *err)
{
    CBQ_CHECK_ARG(err, n_vols > 0 && o->n_methods > 0 && o->n_methods <= CBQ_CAM_METHOD_COUNT,
                  "sanity checks need volumes and methods (%zu, %zu)", n_vols, o->n_methods);
    CBQ_CHECK_ARG(err, !permuted || cbq_sanity_same_outputs(net, permuted),
                  "the permuted-labels model must have the same outputs and input");
    size_t steps = cbq_randomise_n_steps(net), no = cbq_net_spec(net)->n_outputs;
    cbq_sanity_result r;
    memset(&r, 0, sizeof r);
    r.n_steps = steps;
    r.rows = calloc(o->n_methods * (steps + 1) * no + 1, sizeof *r.rows);
    snapshot trained = {0};
    int rc = r.rows ? snapshot_take(&trained, net, err) : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    int have_snapshot = rc == CBQ_OK;
    cbq_progress prog;
    cbq_progress_begin(&prog, "sanity", o->n_methods * n_vols * steps, o->quiet || rc != CBQ_OK);
    const cbq_dist alone = {.rank = 0, .size = 1};
    sanity_job j = {.net = net, .permuted = permuted, .trained = &trained, .vols = vols,
                    .n_vols = n_vols, .steps = steps, .o = o, .dist = o->dist ? o->dist : &alone,
                    .prog = &prog};
    for (size_t m = 0; m < o->n_methods && rc == CBQ_OK; m++)
        rc = run_method(&j, o->methods[m], &r, err);
    cbq_progress_end(&prog);
    if (have_snapshot)
        snapshot_restore(&trained, net);
    snapshot_free(&trained);
    if (rc == CBQ_OK)
        *res = r;
    else
        cbq_sanity_result_free(&r);
    return rc;
}

void cbq_sanity_result_free(cbq_sanity_result *res)
{
    free(res->rows);
    res->rows = NULL;
    res->n_rows = 0;
}
