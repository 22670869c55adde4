/* study_data.c - what several stages read: the study's cohort, the
 * consensus table aligned with it, the model's outputs matched to the
 * categories, and structure masks from label volumes. */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cbctiq/csv.h"

int study_read_cohort(const study_ctx *ctx, study_cohort *c, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_path(path, sizeof path, ctx->dir[CBQ_STAGE_COHORT], "cohort.csv", err));
    return study_cohort_read(c, path, err);
}

static long category_index(const study_ctx *ctx, const char *name)
{
    for (size_t k = 0; k < ctx->n_categories; k++)
        if (strcmp(ctx->categories[k], name) == 0)
            return (long)k;
    return -1;
}

static long volume_index(const study_cohort *c, const char *id)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i].id, id) == 0)
            return (long)i;
    return -1;
}

int study_read_consensus(const study_ctx *ctx, const study_cohort *c, double *cons,
                         cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_path(path, sizeof path, ctx->dir[CBQ_STAGE_CONSENSUS], "consensus.csv", err));
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
    return study_path(buf, cap, ctx->dir[CBQ_STAGE_TRAIN], "model", err);
}

static char *read_text(const char *path, cbq_error *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *text = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (!text || fread(text, 1, (size_t)len, fp) != (size_t)len) {
        free(text);
        fclose(fp);
        CBQ_FAIL(err, CBQ_ERR_IO, "%s: read error", path);
        return NULL;
    }
    fclose(fp);
    text[len] = '\0';
    return text;
}

/* labels.json {"1": "parotid_l", ...} -> which label values belong to
 * category k: match[k * 256 + value]. */
static int label_matches(const study_ctx *ctx, const char *labels_json, unsigned char *match,
                         cbq_error *err)
{
    char *text = read_text(labels_json, err);
    if (!text)
        return err ? err->code : CBQ_ERR_IO;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: expected a JSON object of label names",
                        labels_json);
    }
    const cJSON *item;
    int rc = CBQ_OK;
    cJSON_ArrayForEach(item, root) {
        char *end = NULL;
        long value = strtol(item->string, &end, 10);
        if (!cJSON_IsString(item) || *end || value < 1 || value > 255) {
            rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: key '%s': expected a label 1..255 -> name",
                          labels_json, item->string);
            break;
        }
        for (size_t k = 0; k < ctx->n_categories; k++) {
            size_t n = strlen(ctx->categories[k]);
            const char *name = item->valuestring;
            if (strncmp(name, ctx->categories[k], n) == 0 && (name[n] == '\0' || name[n] == '_'))
                match[k * 256 + (size_t)value] = 1;
        }
    }
    cJSON_Delete(root);
    return rc;
}

int study_load_structures(const study_ctx *ctx, const char *mask_path, const char *labels_json,
                          cbq_volume *labels, cbq_volume **structures, cbq_error *err)
{
    size_t K = ctx->n_categories;
    for (size_t k = 0; k < K; k++)
        structures[k] = NULL;
    CBQ_TRY(cbq_study_load_volume(mask_path, labels, NULL, err));
    if (!labels_json[0])
        return CBQ_OK;
    unsigned char *match = calloc(K * 256, 1);
    if (!match)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    int rc = label_matches(ctx, labels_json, match, err);
    size_t nv = cbq_volume_count(labels);
    for (size_t k = 0; k < K && rc == CBQ_OK; k++) {
        size_t any = 0;
        for (size_t v = 1; v < 256; v++)
            any += match[k * 256 + v];
        if (!any)
            continue;
        cbq_volume *s = calloc(1, sizeof *s);
        if (!s || cbq_volume_alloc(s, labels->nx, labels->ny, labels->nz, labels->spacing, 0, err)) {
            free(s);
            rc = err ? err->code : CBQ_ERR_NOMEM;
            break;
        }
        memcpy(s->affine, labels->affine, sizeof s->affine);
        for (size_t i = 0; i < nv; i++) {
            long value = lround(labels->data[i]);
            s->data[i] = value >= 1 && value < 256 && match[k * 256 + (size_t)value] ? 1.0f : 0.0f;
        }
        structures[k] = s;
    }
    free(match);
    return rc;
}
