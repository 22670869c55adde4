/* study_data.c - what several stages read: the study's cohort, the
 * consensus table aligned with it, the model's outputs matched to the
 * categories. */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cbctiq/csv.h"

static long category_index(const study_ctx *ctx, const char *name)
{
    for (size_t k = 0; k < ctx->n_categories; k++)
        if (strcmp(ctx->categories[k], name) == 0)
            return (long)k;
    return -1;
}

static long volume_index(const cbq_cohort *c, const char *id)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i].id, id) == 0)
            return (long)i;
    return -1;
}

int study_read_consensus(const study_ctx *ctx, const cbq_cohort *c, double *cons,
                         cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_CONSENSUS, "consensus.csv", path, sizeof path, err));
    size_t K = ctx->n_categories;
    for (size_t i = 0; i < c->n * K; i++)
        cons[i] = NAN;
    cbq_csv t;
    CBQ_TRY(cbq_csv_read(&t, path, err));
    size_t cv, cc, cs;
    int rc = cbq_csv_require_col(&t, "volume_id", &cv, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&t, "category", &cc, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&t, "consensus", &cs, err);
    for (size_t r = 0; r < t.n_rows && rc == CBQ_OK; r++) {
        long v = volume_index(c, cbq_csv_cell(&t, r, cv));
        long k = category_index(ctx, cbq_csv_cell(&t, r, cc));
        if (v < 0 || k < 0)
            continue; /* rated but not in the cohort, or a category not studied */
        rc = cbq_csv_get_double(&t, r, cs, &cons[(size_t)v * K + (size_t)k], err);
    }
    cbq_csv_free(&t);
    return rc;
}

int study_map_outputs(const study_ctx *ctx, const cbq_net *net, size_t *out_index,
                      const char *model_dir, cbq_error *err)
{
    const cbq_model_spec *spec = cbq_net_spec(net);
    for (size_t k = 0; k < ctx->n_categories; k++) {
        size_t o = 0;
        while (o < spec->n_outputs && strcmp(spec->outputs[o], ctx->categories[k]) != 0)
            o++;
        if (o == spec->n_outputs)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s/model.json: no output named '%s' (the categories option)",
                            model_dir, ctx->categories[k]);
        out_index[k] = o;
    }
    return CBQ_OK;
}

int study_model_dir(const study_ctx *ctx, char *buf, size_t cap, cbq_error *err)
{
    return study_input_path(ctx, CBQ_STAGE_TRAIN, "model", buf, cap, err);
}

double study_slice_z_mm(const cbq_volume *vol, size_t k)
{
    double ci = 0.5 * ((double)vol->nx - 1.0), cj = 0.5 * ((double)vol->ny - 1.0);
    return vol->affine[2][0] * ci + vol->affine[2][1] * cj + vol->affine[2][2] * (double)k +
           vol->affine[2][3];
}
