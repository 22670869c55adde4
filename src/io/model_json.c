/* model_json.c - read, validate and write model.json
 * (include/cbctiq/model_json.h). A layer's keys, their defaults and ranges
 * (PyTorch's names) come from the layer table (include/cbctiq/layer_table.h):
 * nothing here is written per layer kind. Every message names the file and
 * the JSON path of the offending value. */
#include "cbctiq/model_json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/layer_table.h"
#include "cbctiq/model_cost.h"

/* Limits that keep every later size product far from overflow (a layer's
 * own limits are in the layer table). */
#define MAX_INPUT_SIDE 65536
#define MAX_LAYERS 100000
#define MAX_LAYER_PARAMS ((size_t)1 << 32)
#define MAX_FILE_BYTES (64u << 20)

typedef struct {
    const char *file;
    cbq_error *err;
} ctx;

static int fail(const ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(const ctx *c, const char *path, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return CBQ_FAIL(c->err, CBQ_ERR_FORMAT, "%s: %s: %s", c->file, path, what);
}

/* "layers[3]" + "kernel_size" -> "layers[3].kernel_size" */
static const char *join(char *buf, size_t cap, const char *base, const char *key)
{
    snprintf(buf, cap, "%s%s%s", base, base[0] ? "." : "", key);
    return buf;
}

/* Refuses duplicate keys (cJSON keeps both) and keys not in `allowed`
 * (NULL-terminated; NULL allowed = any key). */
static int check_keys(const ctx *c, const cJSON *obj, const char *path, const char *const *allowed,
                      const char *kind)
{
    for (const cJSON *a = obj->child; a; a = a->next) {
        for (const cJSON *b = obj->child; b != a; b = b->next)
            if (strcmp(a->string, b->string) == 0)
                return fail(c, path[0] ? path : "(top level)", "key \"%s\" appears twice", a->string);
        if (!allowed)
            continue;
        int ok = 0;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(a->string, allowed[i]) == 0;
        if (!ok) {
            char p[256];
            return fail(c, join(p, sizeof p, path, a->string), "unknown key for a %s layer", kind);
        }
    }
    return CBQ_OK;
}

/* An integer field in [lo, hi]; absent -> def when !required. */
static int get_int(const ctx *c, const cJSON *obj, const char *path, const char *key, int required,
                   int def, int lo, int hi, int *out)
{
    char p[256];
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) {
        if (required)
            return fail(c, join(p, sizeof p, path, key), "missing (expected an integer in [%d, %d])", lo,
                        hi);
        *out = def;
        return CBQ_OK;
    }
    double v = cJSON_IsNumber(j) ? j->valuedouble : NAN;
    if (!(v >= lo && v <= hi && v == floor(v)))
        return fail(c, join(p, sizeof p, path, key), "expected an integer in [%d, %d]", lo, hi);
    *out = (int)v;
    return CBQ_OK;
}

static int get_num(const ctx *c, const cJSON *obj, const char *path, const char *key, int required,
                   double def, double lo, double hi, double *out)
{
    char p[256];
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) {
        if (required)
            return fail(c, join(p, sizeof p, path, key), "missing (expected a number)");
        *out = def;
        return CBQ_OK;
    }
    if (!cJSON_IsNumber(j) || !(j->valuedouble >= lo && j->valuedouble <= hi))
        return fail(c, join(p, sizeof p, path, key), "expected a number in [%g, %g]", lo, hi);
    *out = j->valuedouble;
    return CBQ_OK;
}

static int get_bool(const ctx *c, const cJSON *obj, const char *path, const char *key, int def, int *out)
{
    char p[256];
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) {
        *out = def;
        return CBQ_OK;
    }
    if (!cJSON_IsBool(j))
        return fail(c, join(p, sizeof p, path, key), "expected true or false");
    *out = cJSON_IsTrue(j);
    return CBQ_OK;
}

/* PyTorch's _pair: an int or [h, w]. */
static int get_pair(const ctx *c, const cJSON *obj, const char *path, const char *key, int required,
                    const int def[2], int lo, int hi, int out[2])
{
    char p[256];
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    const char *what = lo > 0 ? "positive" : "non-negative";
    if (!j) {
        if (required)
            return fail(c, join(p, sizeof p, path, key), "missing (expected a %s integer or [h, w])", what);
        out[0] = def[0];
        out[1] = def[1];
        return CBQ_OK;
    }
    const cJSON *h = j, *w = j;
    if (cJSON_IsArray(j)) {
        if (cJSON_GetArraySize(j) != 2)
            return fail(c, join(p, sizeof p, path, key), "expected a %s integer or [h, w]", what);
        h = cJSON_GetArrayItem(j, 0);
        w = cJSON_GetArrayItem(j, 1);
    }
    const cJSON *v[2] = {h, w};
    for (int i = 0; i < 2; i++) {
        double d = cJSON_IsNumber(v[i]) ? v[i]->valuedouble : NAN;
        if (!(d >= lo && d <= hi && d == floor(d)))
            return fail(c, join(p, sizeof p, path, key), "expected a %s integer or [h, w] (each in [%d, %d])",
                        what, lo, hi);
        out[i] = (int)d;
    }
    return CBQ_OK;
}

static int *int_at(cbq_layer_spec *l, size_t offset) { return (int *)((char *)l + offset); }
static double *num_at(cbq_layer_spec *l, size_t offset) { return (double *)((char *)l + offset); }
static int int_of(const cbq_layer_spec *l, size_t offset)
{
    return *(const int *)((const char *)l + offset);
}
static double num_of(const cbq_layer_spec *l, size_t offset)
{
    return *(const double *)((const char *)l + offset);
}

/* The hyper-parameter `key` of a kind's row, or NULL. */
static const cbq_hyper_param *find_hyper(const cbq_layer_kind_info *info, const char *key)
{
    for (size_t i = 0; i < info->n_hyper; i++)
        if (strcmp(info->hyper[i].key, key) == 0)
            return &info->hyper[i];
    return NULL;
}

/* One hyper-parameter into *l; those before it in the row are already read. */
static int parse_one_hyper(const ctx *c, const cJSON *j, const char *path,
                           const cbq_layer_kind_info *info, const cbq_hyper_param *h,
                           cbq_layer_spec *l)
{
    switch (h->type) {
    case CBQ_HYPER_INT:
        return get_int(c, j, path, h->key, h->required, (int)h->def, (int)h->lo, (int)h->hi,
                       int_at(l, h->offset));
    case CBQ_HYPER_NUMBER:
        return get_num(c, j, path, h->key, h->required, h->def, h->lo, h->hi, num_at(l, h->offset));
    case CBQ_HYPER_BOOL:
        return get_bool(c, j, path, h->key, (int)h->def, int_at(l, h->offset));
    case CBQ_HYPER_PAIR: {
        int def[2] = {(int)h->def, (int)h->def}, v[2];
        const cbq_hyper_param *from = h->default_from ? find_hyper(info, h->default_from) : NULL;
        if (from)
            def[0] = int_of(l, from->offset), def[1] = int_of(l, from->offset_w);
        CBQ_TRY(get_pair(c, j, path, h->key, h->required, def, (int)h->lo, (int)h->hi, v));
        *int_at(l, h->offset) = v[0];
        *int_at(l, h->offset_w) = v[1];
        return CBQ_OK;
    }
    }
    return fail(c, path, "hyper-parameter \"%s\" has no type", h->key);
}

static int parse_hyper(const ctx *c, const cJSON *j, const char *path, cbq_layer_spec *l)
{
    const cbq_layer_kind_info *info = cbq_layer_kind_info_of(l->kind);
    const char *keys[3 + CBQ_HYPER_MAX + 1] = {"name", "type", "inputs"};
    if (info->n_hyper > CBQ_HYPER_MAX)
        return fail(c, path, "the %s row of the layer table has more than %d keys", info->name,
                    CBQ_HYPER_MAX);
    for (size_t i = 0; i < info->n_hyper; i++)
        keys[3 + i] = info->hyper[i].key;
    CBQ_TRY(check_keys(c, j, path, keys, info->name));
    for (size_t i = 0; i < info->n_hyper; i++)
        CBQ_TRY(parse_one_hyper(c, j, path, info, &info->hyper[i], l));
    return CBQ_OK;
}

static void list_kinds(char *buf, size_t cap)
{
    buf[0] = '\0';
    for (int k = 0; k < CBQ_LAYER_KIND_COUNT; k++) {
        size_t used = strlen(buf);
        snprintf(buf + used, cap - used, "%s%s", k ? ", " : "", cbq_layer_kind_name((cbq_layer_kind)k));
    }
}

static int parse_layer(const ctx *c, const cJSON *j, size_t index, cbq_layer_spec *l)
{
    char path[64], p[256];
    snprintf(path, sizeof path, "layers[%zu]", index);
    if (!cJSON_IsObject(j))
        return fail(c, path, "expected an object with \"name\" and \"type\"");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!cJSON_IsString(name))
        return fail(c, join(p, sizeof p, path, "name"), "missing or not a string");
    if (strlen(name->valuestring) >= CBQ_NAME_MAX)
        return fail(c, join(p, sizeof p, path, "name"), "longer than %d characters", CBQ_NAME_MAX - 1);
    snprintf(l->name, sizeof l->name, "%s", name->valuestring);
    if (!cJSON_IsString(type))
        return fail(c, join(p, sizeof p, path, "type"), "missing or not a string");
    if (!cbq_layer_kind_parse(type->valuestring, &l->kind)) {
        char kinds[256];
        list_kinds(kinds, sizeof kinds);
        return fail(c, join(p, sizeof p, path, "type"), "unknown layer type \"%.64s\" (known: %s)",
                    type->valuestring, kinds);
    }
    return parse_hyper(c, j, path, l);
}

/* The layer's "inputs", names of earlier layers or "input" (the network's),
 * into indices; absent: the previous layer (n_inputs 0). Layers are parsed
 * first so that a later layer's name gets its own message. */
static int parse_inputs(const ctx *c, const cJSON *j, size_t index, cbq_model_spec *spec)
{
    cbq_layer_spec *l = &spec->layers[index];
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "inputs");
    char path[64], p[96];
    snprintf(path, sizeof path, "layers[%zu].inputs", index);
    if (!list)
        return CBQ_OK;
    int n = cJSON_GetArraySize(list);
    if (!cJSON_IsArray(list) || n < 1 || n > CBQ_MAX_INPUTS)
        return fail(c, path, "layer \"%s\": expected an array of 1 to %d names of earlier layers "
                             "(or \"input\")", l->name, CBQ_MAX_INPUTS);
    size_t k = 0;
    for (const cJSON *item = list->child; item; item = item->next, k++) {
        snprintf(p, sizeof p, "%s[%zu]", path, k);
        if (!cJSON_IsString(item))
            return fail(c, p, "layer \"%s\": expected the name of an earlier layer or \"input\"",
                        l->name);
        const char *want = item->valuestring;
        long from = strcmp(want, "input") == 0 ? -1 : cbq_model_spec_find(spec, want);
        if (from == -1 && strcmp(want, "input") != 0)
            return fail(c, p, "layer \"%s\": no layer is named \"%.64s\"", l->name, want);
        if (from == (long)index)
            return fail(c, p, "layer \"%s\" cannot read its own output", l->name);
        if (from > (long)index)
            return fail(c, p, "layer \"%s\": \"%s\" is layers[%ld], after it (layers are in "
                              "execution order: a layer reads earlier ones only)", l->name, want, from);
        l->inputs[k] = (int)from;
    }
    l->n_inputs = k;
    return CBQ_OK;
}

/* A layer name must work as a PyTorch module path: dot-separated parts of
 * letters, digits and '_'. */
static int name_ok(const char *s)
{
    size_t part = 0;
    for (; *s; s++) {
        if (*s == '.') {
            if (part == 0)
                return 0;
            part = 0;
        } else if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                   *s == '_')
            part++;
        else
            return 0;
    }
    return part > 0;
}

/* "block1" is a module path prefix of "block1.conv1": PyTorch cannot have both as layers. */
static int is_path_prefix(const char *a, const char *b)
{
    size_t n = strlen(a);
    return strncmp(a, b, n) == 0 && b[n] == '.';
}

/* What parse_input_channels guarantees, for specs built in memory. */
static int validate_input_channels(const ctx *c, const cbq_input_spec *in)
{
    size_t channels = cbq_input_channels(in);
    if (in->channels < 0 || channels > CBQ_MAX_INPUT_CHANNELS)
        return fail(c, "input.channels", "expected an integer in [1, %d] (got %d)", CBQ_MAX_INPUT_CHANNELS,
                    in->channels);
    if (in->slices != CBQ_INPUT_REPLICATE && in->slices != CBQ_INPUT_ADJACENT)
        return fail(c, "input.slices", "expected \"replicate\" or \"adjacent\"");
    if (in->slices == CBQ_INPUT_ADJACENT && channels % 2 == 0)
        return fail(c, "input.slices", "\"adjacent\" needs an odd input.channels (got %zu)", channels);
    if (in->n_norm != 0 && in->n_norm != channels)
        return fail(c, "input.mean", "expected %zu values, one per input channel (got %zu)", channels,
                    in->n_norm);
    for (size_t ch = 0; ch < in->n_norm; ch++)
        if (!isfinite(in->mean[ch]) || !isfinite(in->std[ch]) || in->std[ch] == 0.0)
            return fail(c, "input.std", "channel %zu: mean %g and std %g must be finite, std not 0", ch,
                        in->mean[ch], in->std[ch]);
    return CBQ_OK;
}

static const char *input_name(const cbq_model_spec *spec, long from)
{
    return from < 0 ? "input" : spec->layers[from].name;
}

/* Layer i's inputs: earlier layers or the input (specs built in C come here
 * without the parser's checks), an add's all different. */
static int validate_inputs(const ctx *c, const cbq_model_spec *spec, size_t i)
{
    const cbq_layer_spec *l = &spec->layers[i];
    char p[96];
    snprintf(p, sizeof p, "layers[%zu].inputs", i);
    if (l->n_inputs > CBQ_MAX_INPUTS)
        return fail(c, p, "layer \"%s\": %zu inputs, at most %d", l->name, l->n_inputs,
                    CBQ_MAX_INPUTS);
    for (size_t j = 0; j < l->n_inputs; j++) {
        int from = l->inputs[j];
        if (from < -1 || from >= (int)i)
            return fail(c, p, "layer \"%s\": input %zu is layer index %d; expected an earlier "
                              "layer or -1 (the network's input)", l->name, j, from);
        for (size_t k = 0; k < j && l->kind == CBQ_LAYER_ADD; k++)
            if (l->inputs[k] == from)
                return fail(c, p, "layer \"%s\" (add): \"%s\" is named twice (add sums different "
                                  "tensors; scale by 2 with a mul if that is meant)",
                            l->name, input_name(spec, from));
    }
    return CBQ_OK;
}

static int validate(const ctx *c, const cbq_model_spec *spec)
{
    char p[96];
    if (spec->n_layers == 0)
        return fail(c, "layers", "expected at least one layer");
    if (spec->n_outputs == 0 || spec->n_outputs > CBQ_MAX_OUTPUTS)
        return fail(c, "outputs", "expected 1 to %d category names", CBQ_MAX_OUTPUTS);
    for (size_t i = 0; i < spec->n_outputs; i++) {
        snprintf(p, sizeof p, "outputs[%zu]", i);
        if (!spec->outputs[i][0])
            return fail(c, p, "empty category name");
        for (size_t k = 0; k < i; k++)
            if (strcmp(spec->outputs[k], spec->outputs[i]) == 0)
                return fail(c, p, "category \"%s\" appears twice", spec->outputs[i]);
    }
    if (!(spec->input.hu_min < spec->input.hu_max) || !isfinite(spec->input.hu_min) ||
        !isfinite(spec->input.hu_max))
        return fail(c, "input", "hu_min must be below hu_max (got %g, %g)", spec->input.hu_min,
                    spec->input.hu_max);
    CBQ_TRY(validate_input_channels(c, &spec->input));
    for (size_t i = 0; i < spec->n_layers; i++) {
        const cbq_layer_spec *l = &spec->layers[i];
        snprintf(p, sizeof p, "layers[%zu].name", i);
        if (!name_ok(l->name))
            return fail(c, p, "\"%s\" is not a valid layer name (dot-separated parts of letters, "
                              "digits and '_')", l->name);
        for (size_t k = 0; k < i; k++) {
            if (strcmp(spec->layers[k].name, l->name) == 0)
                return fail(c, p, "\"%s\" is already the name of layers[%zu]", l->name, k);
            if (is_path_prefix(spec->layers[k].name, l->name) || is_path_prefix(l->name, spec->layers[k].name))
                return fail(c, p, "\"%s\" and layers[%zu] \"%s\" clash as PyTorch module paths", l->name, k,
                            spec->layers[k].name);
        }
        if (strcmp(l->name, "input") == 0)
            return fail(c, p, "\"input\" names the network's input in \"inputs\"; choose another "
                              "layer name");
        CBQ_TRY(validate_inputs(c, spec, i));
        if (cbq_layer_param_count(l) > MAX_LAYER_PARAMS)
            return fail(c, p, "layer \"%s\" would have more than %zu parameters", l->name, MAX_LAYER_PARAMS);
    }
    size_t (*shapes)[3] = malloc(spec->n_layers * sizeof *shapes);
    if (!shapes)
        return CBQ_FAIL(c->err, CBQ_ERR_NOMEM, "%s: out of memory", c->file);
    int rc = cbq_model_spec_shapes(spec, shapes, c->err);
    size_t last[3] = {0, 0, 0};
    if (rc == CBQ_OK)
        memcpy(last, shapes[spec->n_layers - 1], sizeof last);
    free(shapes);
    if (rc != CBQ_OK)
        return cbq_error_prefix(c->err, "%s: layers: ", c->file);
    if (last[0] != spec->n_outputs || last[1] != 1 || last[2] != 1)
        return fail(c, "outputs", "%zu categories, but the last layer \"%s\" gives %zux%zux%zu values",
                    spec->n_outputs, spec->layers[spec->n_layers - 1].name, last[0], last[1], last[2]);
    long t = cbq_model_spec_find(spec, spec->target_layer);
    if (t < 0)
        return fail(c, "target_layer", "no layer is named \"%s\"", spec->target_layer);
    if (!cbq_model_spec_has_grid(spec, (size_t)t))
        return fail(c, "target_layer",
                    "\"%s\" must come before the global pool and linear layers (it has no spatial "
                    "map there)", spec->target_layer);
    return CBQ_OK;
}

int cbq_model_spec_validate(const cbq_model_spec *spec, const char *label, cbq_error *err)
{
    ctx c = {label ? label : "model", err};
    return validate(&c, spec);
}

static int get_string(const ctx *c, const cJSON *obj, const char *key, char *out, size_t cap, int required,
                      const char *def)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) {
        if (required)
            return fail(c, key, "missing (expected a string)");
        snprintf(out, cap, "%s", def);
        return CBQ_OK;
    }
    if (!cJSON_IsString(j) || strlen(j->valuestring) >= cap)
        return fail(c, key, "expected a string of at most %zu characters", cap - 1);
    snprintf(out, cap, "%s", j->valuestring);
    return CBQ_OK;
}

/* input.mean or input.std: absent, or one finite number per channel (std
 * non-zero); returns in *n how many were read. */
static int parse_norm_array(const ctx *c, const cJSON *input, const char *key, size_t channels,
                            double *out, size_t *n)
{
    char p[64];
    *n = 0;
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(input, key);
    if (!j)
        return CBQ_OK;
    snprintf(p, sizeof p, "input.%s", key);
    if (!cJSON_IsArray(j) || (size_t)cJSON_GetArraySize(j) != channels)
        return fail(c, p, "expected an array of %zu numbers, one per input channel (input.channels)",
                    channels);
    for (const cJSON *v = j->child; v; v = v->next, (*n)++) {
        snprintf(p, sizeof p, "input.%s[%zu]", key, *n);
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 1e6)
            return fail(c, p, "expected a finite number in [-1e6, 1e6]");
        if (strcmp(key, "std") == 0 && v->valuedouble == 0.0)
            return fail(c, p, "a standard deviation must not be 0 (it divides)");
        out[*n] = v->valuedouble;
    }
    return CBQ_OK;
}

/* input.channels, input.slices, input.mean, input.std: how a slice fills the
 * channels; all optional, their defaults are a single windowed slice. */
static int parse_input_channels(const ctx *c, const cJSON *j, cbq_input_spec *in)
{
    CBQ_TRY(get_int(c, j, "input", "channels", 0, 1, 1, CBQ_MAX_INPUT_CHANNELS, &in->channels));
    const cJSON *slices = cJSON_GetObjectItemCaseSensitive(j, "slices");
    in->slices = CBQ_INPUT_REPLICATE;
    if (slices && !(cJSON_IsString(slices) && cbq_input_slices_parse(slices->valuestring, &in->slices)))
        return fail(c, "input.slices", "expected \"replicate\" or \"adjacent\"");
    if (in->slices == CBQ_INPUT_ADJACENT && in->channels % 2 == 0)
        return fail(c, "input.slices", "\"adjacent\" centres the channels on the slice, so "
                                       "input.channels must be odd (got %d)", in->channels);
    size_t n_mean = 0, n_std = 0, channels = (size_t)in->channels;
    double ones[CBQ_MAX_INPUT_CHANNELS];
    CBQ_TRY(parse_norm_array(c, j, "mean", channels, in->mean, &n_mean));
    CBQ_TRY(parse_norm_array(c, j, "std", channels, in->std, &n_std));
    if (n_mean == 0 && n_std == 0)
        return CBQ_OK;
    for (size_t ch = 0; ch < channels; ch++)
        ones[ch] = 1.0;
    if (n_mean == 0)
        memset(in->mean, 0, sizeof in->mean);
    if (n_std == 0)
        memcpy(in->std, ones, channels * sizeof *ones);
    in->n_norm = channels;
    return CBQ_OK;
}

static int parse_input(const ctx *c, const cJSON *root, cbq_input_spec *in)
{
    static const char *const keys[] = {"height", "width", "hu_min", "hu_max", "channels", "slices",
                                       "mean", "std", NULL};
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (!cJSON_IsObject(j))
        return fail(c, "input", "missing or not an object {height, width, hu_min, hu_max}");
    CBQ_TRY(check_keys(c, j, "input", keys, "input"));
    CBQ_TRY(get_int(c, j, "input", "height", 1, 0, 1, MAX_INPUT_SIDE, &in->height));
    CBQ_TRY(get_int(c, j, "input", "width", 1, 0, 1, MAX_INPUT_SIDE, &in->width));
    CBQ_TRY(get_num(c, j, "input", "hu_min", 1, 0, -1e6, 1e6, &in->hu_min));
    CBQ_TRY(get_num(c, j, "input", "hu_max", 1, 0, -1e6, 1e6, &in->hu_max));
    return parse_input_channels(c, j, in);
}

static int parse_outputs(const ctx *c, const cJSON *root, cbq_model_spec *spec)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, "outputs");
    if (!cJSON_IsArray(j))
        return fail(c, "outputs", "missing or not an array of category names");
    int n = cJSON_GetArraySize(j);
    if (n < 1 || n > CBQ_MAX_OUTPUTS)
        return fail(c, "outputs", "expected 1 to %d category names, got %d", CBQ_MAX_OUTPUTS, n);
    for (int i = 0; i < n; i++) {
        const cJSON *s = cJSON_GetArrayItem(j, i);
        if (!cJSON_IsString(s) || strlen(s->valuestring) >= CBQ_NAME_MAX) {
            char p[32];
            snprintf(p, sizeof p, "outputs[%d]", i);
            return fail(c, p, "expected a string of at most %d characters", CBQ_NAME_MAX - 1);
        }
        snprintf(spec->outputs[i], CBQ_NAME_MAX, "%s", s->valuestring);
    }
    spec->n_outputs = (size_t)n;
    return CBQ_OK;
}

static int parse_root(const ctx *c, const cJSON *root, cbq_model_spec *spec)
{
    if (!cJSON_IsObject(root))
        return fail(c, "(top level)", "expected a JSON object");
    CBQ_TRY(check_keys(c, root, "", NULL, "model"));
    int version = 0;
    CBQ_TRY(get_int(c, root, "", "format_version", 1, 0, 1, 1 << 30, &version));
    if (version > CBQ_MODEL_JSON_VERSION)
        return fail(c, "format_version", "%d is newer than this cbctiq reads (%d): upgrade cbctiq", version,
                    CBQ_MODEL_JSON_VERSION);
    CBQ_TRY(get_string(c, root, "arch", spec->arch, sizeof spec->arch, 0, "custom"));
    CBQ_TRY(parse_input(c, root, &spec->input));
    CBQ_TRY(parse_outputs(c, root, spec));
    CBQ_TRY(get_string(c, root, "target_layer", spec->target_layer, sizeof spec->target_layer, 1, ""));
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (!cJSON_IsArray(layers))
        return fail(c, "layers", "missing or not an array");
    int n = cJSON_GetArraySize(layers);
    if (n < 1 || n > MAX_LAYERS)
        return fail(c, "layers", "expected 1 to %d layers, got %d", MAX_LAYERS, n);
    spec->layers = calloc((size_t)n, sizeof *spec->layers);
    if (!spec->layers)
        return CBQ_FAIL(c->err, CBQ_ERR_NOMEM, "%s: out of memory for %d layers", c->file, n);
    size_t i = 0;
    for (const cJSON *l = layers->child; l; l = l->next, i++) {
        CBQ_TRY(parse_layer(c, l, i, &spec->layers[i]));
        spec->n_layers = i + 1;
    }
    i = 0;
    for (const cJSON *l = layers->child; l; l = l->next, i++)
        CBQ_TRY(parse_inputs(c, l, i, spec));
    return validate(c, spec);
}

/* The parsed object, which only white space may follow (up to stop). */
static int parse_document(const ctx *c, const cJSON *root, const char *end, const char *stop,
                          cbq_model_spec *spec)
{
    for (const char *p = end; p < stop; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return CBQ_FAIL(c->err, CBQ_ERR_FORMAT, "%s: unexpected text after the JSON object",
                            c->file);
    return parse_root(c, root, spec);
}

int cbq_model_json_parse(cbq_model_spec *spec, const char *text, size_t len, const char *label,
                         cbq_error *err)
{
    memset(spec, 0, sizeof *spec);
    ctx c = {label ? label : "model.json", err};
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: not valid JSON", c.file);
    int rc = parse_document(&c, root, end, text + len, spec);
    cJSON_Delete(root);
    if (rc != CBQ_OK)
        cbq_model_spec_free(spec);
    return rc;
}

int cbq_model_json_read(cbq_model_spec *spec, const char *path, cbq_error *err)
{
    memset(spec, 0, sizeof *spec);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot open for reading", path);
    char *buf = malloc(MAX_FILE_BYTES + 1);
    if (!buf) {
        fclose(fp);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, MAX_FILE_BYTES + 1, fp);
    int bad = ferror(fp);
    fclose(fp);
    int rc;
    if (bad)
        rc = CBQ_FAIL(err, CBQ_ERR_IO, "%s: read error", path);
    else if (n > MAX_FILE_BYTES)
        rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: larger than %u bytes: not a model.json", path, MAX_FILE_BYTES);
    else
        rc = cbq_model_json_parse(spec, buf, n, path, err);
    free(buf);
    return rc;
}

/* ---- writing -------------------------------------------------------------- */

static cJSON *pair(int a, int b)
{
    int v[2] = {a, b};
    return cJSON_CreateIntArray(v, 2);
}

static cJSON *hyper_json(const cbq_layer_spec *l, const cbq_hyper_param *h)
{
    switch (h->type) {
    case CBQ_HYPER_INT:
        return cJSON_CreateNumber(int_of(l, h->offset));
    case CBQ_HYPER_NUMBER:
        return cJSON_CreateNumber(num_of(l, h->offset));
    case CBQ_HYPER_BOOL:
        return cJSON_CreateBool(int_of(l, h->offset));
    case CBQ_HYPER_PAIR:
        return pair(int_of(l, h->offset), int_of(l, h->offset_w));
    }
    return NULL;
}

/* A value of an omit_default key that is its default (layer_table.h). */
static int at_default(const cbq_layer_spec *l, const cbq_hyper_param *h)
{
    if (h->type == CBQ_HYPER_NUMBER)
        return num_of(l, h->offset) == h->def;
    int v[2] = {int_of(l, h->offset), h->type == CBQ_HYPER_PAIR ? int_of(l, h->offset_w) : 0};
    int n = h->type == CBQ_HYPER_PAIR ? 2 : 1;
    for (int i = 0; i < n; i++)
        if (!(v[i] == (int)h->def || (v[i] == 0 && h->lo > 0)))
            return 0;
    return 1;
}

/* Exactly the previous layer's output: "inputs" is left out. */
static int reads_previous(const cbq_model_spec *spec, size_t index)
{
    return cbq_model_spec_n_inputs(spec, index) == 1 &&
           cbq_model_spec_input(spec, index, 0) == (long)index - 1;
}

/* Every hyper-parameter explicitly, in the table's order, but for
 * omit_default keys at their default; "inputs" after "type" unless the layer
 * reads the previous one. */
static cJSON *layer_json(const cbq_model_spec *spec, size_t index)
{
    const cbq_layer_spec *l = &spec->layers[index];
    const cbq_layer_kind_info *info = cbq_layer_kind_info_of(l->kind);
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return NULL;
    cJSON_AddStringToObject(j, "name", l->name);
    cJSON_AddStringToObject(j, "type", info->name);
    if (!reads_previous(spec, index)) {
        cJSON *list = cJSON_AddArrayToObject(j, "inputs");
        for (size_t k = 0; list && k < cbq_model_spec_n_inputs(spec, index); k++)
            cJSON_AddItemToArray(list, cJSON_CreateString(
                                           input_name(spec, cbq_model_spec_input(spec, index, k))));
    }
    for (size_t i = 0; i < info->n_hyper; i++)
        if (!(info->hyper[i].omit_default && at_default(l, &info->hyper[i])))
            cJSON_AddItemToObject(j, info->hyper[i].key, hyper_json(l, &info->hyper[i]));
    return j;
}

/* Appends s to a growing buffer; returns 0 when out of memory. */
static int append(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);
    if (*len + n + 1 > *cap) {
        size_t cap2 = (*cap + n + 1) * 2;
        char *b = realloc(*buf, cap2);
        if (!b)
            return 0;
        *buf = b;
        *cap = cap2;
    }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
    return 1;
}

/* Prints an item compactly and appends it; takes ownership of item. */
static int append_json(char **buf, size_t *len, size_t *cap, cJSON *item)
{
    char *s = item ? cJSON_PrintUnformatted(item) : NULL;
    cJSON_Delete(item);
    int ok = s && append(buf, len, cap, s);
    free(s);
    return ok;
}

/* The channel keys only where they differ from a single windowed slice, so
 * that files written before them are written byte-identical. */
static void add_input_channels(cJSON *input, const cbq_input_spec *in)
{
    size_t channels = cbq_input_channels(in);
    if (channels != 1 || in->slices != CBQ_INPUT_REPLICATE) {
        cJSON_AddNumberToObject(input, "channels", (double)channels);
        cJSON_AddStringToObject(input, "slices", cbq_input_slices_name(in->slices));
    }
    if (in->n_norm) {
        cJSON_AddItemToObject(input, "mean", cJSON_CreateDoubleArray(in->mean, (int)in->n_norm));
        cJSON_AddItemToObject(input, "std", cJSON_CreateDoubleArray(in->std, (int)in->n_norm));
    }
}

char *cbq_model_json_format(const cbq_model_spec *spec, cbq_error *err)
{
    if (cbq_model_spec_validate(spec, "model", err) != CBQ_OK)
        return NULL;
    char *buf = NULL, num[64];
    size_t len = 0, cap = 0;
    cJSON *input = cJSON_CreateObject();
    if (input) {
        cJSON_AddNumberToObject(input, "height", spec->input.height);
        cJSON_AddNumberToObject(input, "width", spec->input.width);
        cJSON_AddNumberToObject(input, "hu_min", spec->input.hu_min);
        cJSON_AddNumberToObject(input, "hu_max", spec->input.hu_max);
        add_input_channels(input, &spec->input);
    }
    const char *names[CBQ_MAX_OUTPUTS];
    for (size_t i = 0; i < spec->n_outputs; i++)
        names[i] = spec->outputs[i];
    snprintf(num, sizeof num, "%d", CBQ_MODEL_JSON_VERSION);
    int ok = append(&buf, &len, &cap, "{\n  \"format_version\": ") && append(&buf, &len, &cap, num) &&
             append(&buf, &len, &cap, ",\n  \"arch\": ") &&
             append_json(&buf, &len, &cap, cJSON_CreateString(spec->arch)) &&
             append(&buf, &len, &cap, ",\n  \"input\": ") && append_json(&buf, &len, &cap, input) &&
             append(&buf, &len, &cap, ",\n  \"outputs\": ") &&
             append_json(&buf, &len, &cap, cJSON_CreateStringArray(names, (int)spec->n_outputs)) &&
             append(&buf, &len, &cap, ",\n  \"target_layer\": ") &&
             append_json(&buf, &len, &cap, cJSON_CreateString(spec->target_layer)) &&
             append(&buf, &len, &cap, ",\n  \"layers\": [");
    for (size_t i = 0; ok && i < spec->n_layers; i++)
        ok = append(&buf, &len, &cap, i ? ",\n    " : "\n    ") &&
             append_json(&buf, &len, &cap, layer_json(spec, i));
    ok = ok && append(&buf, &len, &cap, "\n  ]\n}\n");
    if (!ok) {
        free(buf);
        CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory formatting model.json");
        return NULL;
    }
    return buf;
}

int cbq_model_json_write(const cbq_model_spec *spec, const char *path, cbq_error *err)
{
    CBQ_TRY(cbq_model_spec_validate(spec, path, err));
    char *text = cbq_model_json_format(spec, err);
    if (!text)
        return err ? err->code : CBQ_ERR_NOMEM;
    cbq_atomic_file af;
    int rc = cbq_atomic_open(&af, path, err);
    if (rc == CBQ_OK) {
        size_t n = strlen(text);
        if (fwrite(text, 1, n, af.fp) != n) {
            cbq_atomic_abort(&af);
            rc = CBQ_FAIL(err, CBQ_ERR_IO, "%s: write failed (disk full?)", path);
        } else
            rc = cbq_atomic_commit(&af, err);
    }
    free(text);
    return rc;
}
