/* ae_table.c - ae.csv's schema, writer and reader (ae_table.h). The column
 * table below is the schema: the writer puts, and the reader takes, the
 * columns in its order, so that the two cannot drift apart. */
#define _POSIX_C_SOURCE 200809L
#include "cbctiq/ae_table.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where each column lives in a row: a number (offset of a double) or a
 * text (offset and size of a char array). */
typedef struct {
    const char *name;
    size_t offset, text_size; /* text_size 0: a double */
} ae_column;

#define NUM(field) {#field, offsetof(cbq_ae_row, field), 0}
#define TEXT(field) {#field, offsetof(cbq_ae_row, field), sizeof(((cbq_ae_row *)0)->field)}
static const ae_column COLUMNS[] = {
    /* what the AE is, per volume and category */
    TEXT(volume_id), TEXT(category), TEXT(method), NUM(ae), NUM(ae_feature), NUM(ae_per_slice),
    NUM(n_slices), NUM(pred), NUM(ae_in_structure), NUM(structure_fraction), TEXT(target_layer),
    /* the identity's parts (docs/attribution.md) */
    NUM(ae_feature_pre), NUM(ae_clipped), NUM(pred_minus_bias_sum), NUM(identity_holds),
    /* how it was made: the options */
    NUM(ae_selected), NUM(ae_feature_post), NUM(bias), TEXT(relu), TEXT(grid), TEXT(sign),
    TEXT(aggregate),
    /* where the map points, and whether it matters to the prediction (pointing.h) */
    NUM(energy_in_structure), NUM(pointing_hit), NUM(deletion_auc), NUM(insertion_auc),
    NUM(deletion_auc_random), NUM(insertion_auc_random), TEXT(perturbation), TEXT(perturb_seed),
    NUM(curve_slices), TEXT(empty_reason)};
#undef NUM
#undef TEXT
enum { N_COLUMNS = sizeof COLUMNS / sizeof COLUMNS[0] };

size_t cbq_ae_n_columns(void) { return N_COLUMNS; }

const char *cbq_ae_column_name(size_t i) { return i < N_COLUMNS ? COLUMNS[i].name : NULL; }

/* The localisation and faithfulness columns; a cell is empty (NaN) exactly
 * when empty_reason names why. */
static void fill_pointing(cbq_ae_row *r, const cbq_pointing *given)
{
    cbq_pointing none = {.energy_in_structure = NAN, .pointing_hit = NAN,
                         .empty = CBQ_EMPTY_NOT_COMPUTED};
    const cbq_pointing *p = given ? given : &none;
    const cbq_faith_curves *c = &p->curves;
    int curves = c->computed && !(p->empty & (CBQ_EMPTY_NO_CURVES | CBQ_EMPTY_FLAT_SCORE));
    r->energy_in_structure = p->energy_in_structure;
    r->pointing_hit = p->pointing_hit;
    r->deletion_auc = curves ? c->deletion_auc : NAN;
    r->insertion_auc = curves ? c->insertion_auc : NAN;
    r->deletion_auc_random = curves ? c->deletion_auc_random : NAN;
    r->insertion_auc_random = curves ? c->insertion_auc_random : NAN;
    r->curve_slices = given ? (double)p->curve_slices : 0.0;
    snprintf(r->perturbation, sizeof r->perturbation, "%s", cbq_perturb_name(p->baseline));
    snprintf(r->perturb_seed, sizeof r->perturb_seed, "%llu", (unsigned long long)p->seed);
    cbq_empty_reason_text(p->empty, r->empty_reason, sizeof r->empty_reason);
}

static int is_integer_column(const char *name)
{
    return strcmp(name, "n_slices") == 0 || strcmp(name, "identity_holds") == 0 ||
           strcmp(name, "pointing_hit") == 0 || strcmp(name, "curve_slices") == 0;
}

/* The value of each column for one row, in COLUMNS order. */
static void fill_row(cbq_ae_row *r, const char *volume_id, const char *category,
                     const cbq_cam *cam, size_t output, const cbq_ae *ae,
                     const cbq_pointing *pointing)
{
    const cbq_attrib_options *o = cbq_cam_options(cam);
    memset(r, 0, sizeof *r);
    snprintf(r->volume_id, sizeof r->volume_id, "%s", volume_id);
    snprintf(r->category, sizeof r->category, "%s", category);
    snprintf(r->method, sizeof r->method, "%s", cbq_cam_method_name(o->method));
    r->ae = ae->ae;
    r->ae_feature = ae->ae_feature;
    r->ae_per_slice = cbq_ae_per_slice(ae);
    r->n_slices = (double)ae->n_slices;
    r->pred = cbq_ae_pred(ae);
    r->ae_in_structure = ae->has_structure ? ae->ae_in_structure : NAN;
    r->structure_fraction = ae->has_structure ? cbq_ae_structure_fraction(ae) : NAN;
    snprintf(r->target_layer, sizeof r->target_layer, "%s", cbq_cam_target_name(cam));
    r->ae_feature_pre = ae->ae_feature_pre;
    r->ae_clipped = cbq_ae_clipped(ae);
    r->pred_minus_bias_sum = ae->pred_part;
    /* The identity ae_feature_pre = pred_minus_bias_sum is Grad-CAM's. */
    r->identity_holds = cbq_cam_identity_holds(cam) && o->method == CBQ_CAM_GRADCAM;
    r->ae_selected = cbq_ae_selected(ae, o);
    r->ae_feature_post = ae->ae_feature_post;
    r->bias = cbq_cam_output_bias(cam, output);
    snprintf(r->relu, sizeof r->relu, "%s", o->relu ? "after" : "before");
    snprintf(r->grid, sizeof r->grid, "%s", cbq_grid_name(o->grid));
    snprintf(r->sign, sizeof r->sign, "%s", o->sign > 0 ? "pos" : "neg");
    snprintf(r->aggregate, sizeof r->aggregate, "%s", cbq_aggregate_name(o->aggregate));
    fill_pointing(r, pointing);
}

int cbq_ae_writer_open(cbq_ae_writer *w, const char *path, cbq_error *err)
{
    memset(w, 0, sizeof *w);
    const char *header[N_COLUMNS];
    for (size_t c = 0; c < N_COLUMNS; c++)
        header[c] = COLUMNS[c].name;
    CBQ_TRY(cbq_csv_writer_open(&w->csv, path, header, N_COLUMNS, err));
    w->open = 1;
    return CBQ_OK;
}

int cbq_ae_writer_put(cbq_ae_writer *w, const char *volume_id, const char *category,
                      const cbq_cam *cam, size_t output, const cbq_ae *ae,
                      const cbq_pointing *pointing, cbq_error *err)
{
    cbq_ae_row r;
    fill_row(&r, volume_id, category, cam, output, ae, pointing);
    for (size_t c = 0; c < N_COLUMNS; c++) {
        const char *field = (const char *)&r + COLUMNS[c].offset;
        if (COLUMNS[c].text_size)
            cbq_csv_put_str(&w->csv, field);
        else if (is_integer_column(COLUMNS[c].name) && isfinite(*(const double *)field))
            cbq_csv_put_int(&w->csv, (long long)*(const double *)field);
        else
            cbq_csv_put_double(&w->csv, *(const double *)field);
    }
    return cbq_csv_end_row(&w->csv, err);
}

void cbq_ae_volume_options_default(cbq_ae_volume_options *o)
{
    memset(o, 0, sizeof *o);
    o->perturbation = CBQ_PERTURB_BLUR;
    o->seed = 1;
    o->curve_slices = 1;
    o->batch = 16;
}

int cbq_ae_writer_put_volume(cbq_ae_writer *w, cbq_csv_writer *curves, const char *volume_id,
                             const cbq_cam *cam, cbq_net *net, cbq_model_input *in,
                             const float *const *maps, const cbq_ae *ae,
                             const cbq_ae_volume_options *o, cbq_error *err)
{
    size_t no = cbq_cam_n_outputs(cam), index[CBQ_MAX_OUTPUTS];
    const char *names[CBQ_MAX_OUTPUTS];
    for (size_t c = 0; c < no; c++) {
        names[c] = cbq_cam_category_name(cam, c);
        index[c] = c;
    }
    cbq_pointing_options po;
    cbq_pointing_options_default(&po, in);
    po.faith.baseline = o->perturbation;
    po.faith.seed = o->seed;
    po.max_slices = o->curve_slices;
    cbq_pointing p[CBQ_MAX_OUTPUTS];
    CBQ_TRY(cbq_pointing_volume(in, net, o->batch, names, no, index, maps, &po, p, err));
    for (size_t c = 0; c < no; c++) {
        CBQ_TRY(cbq_ae_writer_put(w, volume_id, names[c], cam, c, &ae[c], &p[c], err));
        if (curves)
            CBQ_TRY(cbq_curves_put(curves, volume_id, names[c], &p[c], err));
    }
    return CBQ_OK;
}

int cbq_ae_writer_commit(cbq_ae_writer *w, cbq_error *err)
{
    CBQ_TRY(cbq_csv_writer_commit(&w->csv, err));
    w->open = 0;
    return CBQ_OK;
}

void cbq_ae_writer_abort(cbq_ae_writer *w)
{
    if (w->open)
        cbq_csv_writer_abort(&w->csv);
    w->open = 0;
}

void cbq_ae_table_free(cbq_ae_table *t)
{
    free(t->rows);
    memset(t, 0, sizeof *t);
}

static int read_cell(const cbq_csv *t, size_t r, size_t col, const ae_column *c, cbq_ae_row *row,
                     cbq_error *err)
{
    const char *cell = cbq_csv_cell(t, r, col);
    char *field = (char *)row + c->offset;
    if (c->text_size) {
        if (strlen(cell) >= c->text_size)
            return cbq_csv_fail(t, r, col, err, CBQ_ERR_FORMAT, "expected at most %zu characters",
                                c->text_size - 1);
        memcpy(field, cell, strlen(cell) + 1);
        return CBQ_OK;
    }
    *(double *)field = NAN; /* empty: missing (no structure, no identity) */
    return cell[0] ? cbq_csv_get_double(t, r, col, (double *)field, err) : CBQ_OK;
}

static int read_rows(cbq_ae_table *t, const cbq_csv *csv, cbq_error *err)
{
    size_t col[N_COLUMNS];
    for (size_t c = 0; c < N_COLUMNS; c++)
        CBQ_TRY(cbq_csv_require_col(csv, COLUMNS[c].name, &col[c], err));
    if (!(t->rows = calloc(csv->n_rows + 1, sizeof *t->rows)))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", t->path);
    for (size_t r = 0; r < csv->n_rows; r++) {
        for (size_t c = 0; c < N_COLUMNS; c++)
            CBQ_TRY(read_cell(csv, r, col[c], &COLUMNS[c], &t->rows[r], err));
        t->rows[r].line = csv->line[r];
        t->n++;
    }
    return CBQ_OK;
}

int cbq_ae_table_read(cbq_ae_table *t, const char *path, cbq_error *err)
{
    memset(t, 0, sizeof *t);
    snprintf(t->path, sizeof t->path, "%s", path);
    cbq_csv csv;
    CBQ_TRY(cbq_csv_read(&csv, path, err));
    int rc = read_rows(t, &csv, err);
    cbq_csv_free(&csv);
    if (rc != CBQ_OK)
        cbq_ae_table_free(t);
    return rc;
}

long cbq_ae_table_find(const cbq_ae_table *t, const char *volume_id, const char *category)
{
    for (size_t r = 0; r < t->n; r++)
        if (strcmp(t->rows[r].volume_id, volume_id) == 0 &&
            strcmp(t->rows[r].category, category) == 0)
            return (long)r;
    return -1;
}
