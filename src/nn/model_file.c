/* model_file.c - save and load a model directory (include/cbctiq/model_file.h). */
#include "cbctiq/model_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/model_json.h"

enum { PATH_CAP = 4096 };

static int join_path(char *out, const char *dir, const char *file, cbq_error *err)
{
    if ((size_t)snprintf(out, PATH_CAP, "%s/%s", dir, file) >= PATH_CAP)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: path too long", dir);
    return CBQ_OK;
}

int cbq_model_save(const char *dir, const cbq_net *net, cbq_error *err)
{
    char path[PATH_CAP];
    CBQ_TRY(cbq_mkdir_p(dir, err));
    CBQ_TRY(join_path(path, dir, "weights.safetensors", err));
    size_t n = cbq_net_tensor_count(net);
    cbq_st_entry *e = calloc(n ? n : 1, sizeof *e);
    cbq_tensor_view *v = calloc(n ? n : 1, sizeof *v);
    if (!e || !v) {
        free(e);
        free(v);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", dir);
    }
    for (size_t i = 0; i < n; i++) {
        cbq_net_tensor(net, i, &v[i]);
        e[i] = (cbq_st_entry){.name = v[i].name, .dtype = v[i].dtype == CBQ_DTYPE_I64 ? CBQ_ST_I64 : CBQ_ST_F32,
                              .ndim = v[i].ndim, .shape = v[i].shape, .data = v[i].data};
    }
    static const char *const meta[] = {"format", "pt", "producer", "cbctiq"};
    int rc = cbq_safetensors_write(path, e, n, meta, 2, err);
    free(e);
    free(v);
    CBQ_TRY(rc);
    CBQ_TRY(join_path(path, dir, "model.json", err));
    return cbq_model_json_write(cbq_net_spec(net), path, err);
}

static int is_float(cbq_st_dtype d)
{
    return d == CBQ_ST_F32 || d == CBQ_ST_F64 || d == CBQ_ST_F16 || d == CBQ_ST_BF16;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* A NaN or infinite weight (or one beyond float range, which converts to
 * infinity) makes every output NaN, and a negative batch-norm variance a
 * NaN square root: refused here, naming the tensor, rather than found as
 * empty cells in a table later. */
static int check_values(const cbq_tensor_view *v, const char *file, cbq_error *err)
{
    const float *x = v->data;
    int is_var = ends_with(v->name, ".running_var");
    for (size_t i = 0; i < v->numel; i++) {
        if (!isfinite(x[i]))
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: tensor '%s': element %zu is %s, expected "
                            "a finite float32 value", file, v->name, i,
                            isnan(x[i]) ? "NaN" : "infinite (or beyond float32 range)");
        if (is_var && x[i] < 0)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: tensor '%s': element %zu is %g, a variance "
                            "must not be negative", file, v->name, i, (double)x[i]);
    }
    return CBQ_OK;
}

static int load_tensor(const cbq_tensor_view *v, const cbq_st_tensor *t, const char *file, cbq_error *err)
{
    int want_int = v->dtype == CBQ_DTYPE_I64;
    int ok_dtype = want_int ? !is_float(t->dtype) : is_float(t->dtype);
    if (!ok_dtype)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: tensor '%s': dtype %s, expected %s", file, v->name,
                        cbq_st_dtype_name(t->dtype), want_int ? "I64" : "F32");
    int same = t->ndim == v->ndim;
    for (int d = 0; same && d < v->ndim; d++)
        same = t->shape[d] == v->shape[d];
    if (!same) {
        char got[160] = "", want[160] = "";
        for (int d = 0; d < t->ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%zu", d ? ", " : "", t->shape[d]);
        for (int d = 0; d < v->ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%zu", d ? ", " : "", v->shape[d]);
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: tensor '%s': shape [%s], model.json needs [%s]", file,
                        v->name, got, want);
    }
    int rc = want_int ? cbq_st_tensor_to_i64(t, v->data, v->numel, err)
                      : cbq_st_tensor_to_f32(t, v->data, v->numel, err);
    if (rc != CBQ_OK)
        return cbq_error_prefix(err, "%s: ", file);
    return want_int ? CBQ_OK : check_values(v, file, err);
}

int cbq_model_load_weights(cbq_net *net, const cbq_safetensors *st, cbq_error *err)
{
    size_t n = cbq_net_tensor_count(net);
    for (size_t i = 0; i < n; i++) {
        cbq_tensor_view v;
        cbq_net_tensor(net, i, &v);
        const cbq_st_tensor *t = cbq_safetensors_find(st, v.name);
        if (!t)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: tensor '%s' is missing (model.json needs it)", st->path,
                            v.name);
        CBQ_TRY(load_tensor(&v, t, st->path, err));
    }
    for (size_t i = 0; i < st->n_tensors; i++) {
        cbq_tensor_view v;
        if (!cbq_net_tensor_find(net, st->tensors[i].name, &v))
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: tensor '%s' is not part of the model in model.json",
                            st->path, st->tensors[i].name);
    }
    return CBQ_OK;
}

static int load_weights_file(cbq_net *net, const char *dir, cbq_error *err)
{
    char path[PATH_CAP];
    CBQ_TRY(join_path(path, dir, "weights.safetensors", err));
    cbq_safetensors st;
    CBQ_TRY(cbq_safetensors_read(&st, path, err));
    int rc = cbq_model_load_weights(net, &st, err);
    cbq_safetensors_free(&st);
    return rc;
}

int cbq_model_load(const char *dir, cbq_net **out, size_t max_batch, cbq_error *err)
{
    char path[PATH_CAP];
    *out = NULL;
    cbq_model_spec spec;
    CBQ_TRY(join_path(path, dir, "model.json", err));
    CBQ_TRY(cbq_model_json_read(&spec, path, err));
    cbq_net *net = NULL;
    int rc = cbq_net_create(&net, &spec, max_batch, 0, err);
    cbq_model_spec_free(&spec);
    CBQ_TRY(rc);
    rc = load_weights_file(net, dir, err);
    if (rc != CBQ_OK) {
        cbq_net_free(net);
        return rc;
    }
    *out = net;
    return CBQ_OK;
}
