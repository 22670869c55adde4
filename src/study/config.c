/* config.c - the study's options: one table gives each option its JSON key,
 * type, default, range, help and the stages that read it. Defaults,
 * --print-config, parsing (with unknown-key errors) and the per-stage option
 * hashes all come from that table, so they cannot drift apart. */
#define _POSIX_C_SOURCE 200809L
#include "cbctiq/study.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/attrib.h"
#include "cbctiq/layer_table.h"
#include "cbctiq/preset.h"
#include "cbctiq/text_file.h"
#include "study/sha256.h"

typedef enum { OPT_INT, OPT_U64, OPT_DOUBLE, OPT_BOOL, OPT_STRING, OPT_PATH, OPT_LIST } opt_type;

#define STAGE_BIT(s) (1u << (s))
#define FROM(s) (~0u << (s) & ((1u << CBQ_STAGE_COUNT) - 1u)) /* stage s and all after */

typedef struct {
    const char *key;          /* dotted JSON key */
    opt_type type;
    size_t offset;
    size_t size;              /* capacity of string options */
    const char *def;          /* default, in text form */
    double lo, hi;            /* range of numbers */
    const char *choices;      /* "|a|b|" for closed string sets, or NULL */
    unsigned stages;          /* STAGE_BIT mask of the stages that read it */
    const char *help;
} opt_def;

#define F(field) offsetof(cbq_study_config, field), sizeof(((cbq_study_config *)0)->field)
#define S(s) STAGE_BIT(CBQ_STAGE_##s)
/* The train recipe: the sanity stage trains its label-permuted model with it. */
#define RECIPE (S(TRAIN) | S(SANITY))

static const opt_def OPTS[] = {
    {"out", OPT_PATH, F(out), "study-out", 0, 0, NULL, 0, "output folder"},
    {"threads", OPT_INT, F(threads), "0", 0, 1024, NULL, 0, "threads (0 = all cores)"},
    {"quiet", OPT_BOOL, F(quiet), "false", 0, 0, NULL, 0, "no progress output"},
    {"seed", OPT_U64, F(seed), "1", 0, 0, NULL,
     S(COHORT) | S(TRAIN) | S(ATTRIB) | S(STATS) | S(SANITY),
     "seed of the simulated cohort, the split, training, the random pixel order of the "
     "deletion curves, the bootstrap and the sanity checks"},
    {"categories", OPT_LIST, F(categories), "parotid,submandibular,larynx,mandible,overall", 0, 0,
     NULL, FROM(CBQ_STAGE_CONSENSUS), "rating categories, in model-output order"},
    {"cohort.csv", OPT_PATH, F(cohort.csv), "", 0, 0, NULL, S(COHORT),
     "cohort.csv of your own data; empty = the built-in simulated cohort"},
    {"cohort.ratings", OPT_PATH, F(cohort.ratings), "", 0, 0, NULL, S(COHORT),
     "ratings.csv; empty = ratings.csv beside cohort.csv"},
    {"cohort.raters", OPT_PATH, F(cohort.raters), "", 0, 0, NULL, S(COHORT),
     "raters.csv (weights); empty = raters.csv beside cohort.csv when present"},
    {"cohort.split_train", OPT_DOUBLE, F(cohort.split_train), "0.5", 0, 1, NULL, S(COHORT),
     "fraction of volumes for training when cohort.csv has no split column"},
    {"cohort.split_val", OPT_DOUBLE, F(cohort.split_val), "0.17", 0, 1, NULL, S(COHORT),
     "fraction for validation (the rest is the test split)"},
    {"cohort.simulate.volumes", OPT_INT, F(cohort.simulate.volumes), "48", 6, 100000, NULL,
     S(COHORT), "volumes of the built-in cohort"},
    {"cohort.simulate.size", OPT_INT, F(cohort.simulate.size), "96", 16, 4096, NULL, S(COHORT),
     "simulated in-plane grid (voxels, square)"},
    {"cohort.simulate.slices", OPT_INT, F(cohort.simulate.slices), "72", 1, 4096, NULL,
     S(COHORT), "simulated axial slices"},
    {"cohort.simulate.spacing", OPT_DOUBLE, F(cohort.simulate.spacing), "2.667", 0.1, 20, NULL,
     S(COHORT), "simulated voxel size (mm)"},
    {"cohort.simulate.test", OPT_INT, F(cohort.simulate.test), "16", 3, 100000, NULL, S(COHORT),
     "volumes in the simulated test split"},
    {"cohort.simulate.raters", OPT_INT, F(cohort.simulate.raters), "5", 1, 100, NULL, S(COHORT),
     "simulated raters"},
    {"cohort.folds", OPT_INT, F(cohort.folds), "0", 0, 1000, NULL,
     S(COHORT) | S(TRAIN) | S(EVALUATE) | S(ATTRIB) | S(STATS) | S(SANITY),
     "k-fold cross-validation: K >= 2 folds, grouped by volume and stratified by the overall "
     "consensus, every volume tested once (0 = the single split)"},
    {"train.model", OPT_PATH, F(train.model), "", 0, 0, NULL, S(TRAIN),
     "use this model folder instead of training one"},
    {"train.arch", OPT_STRING, F(train.arch), "iqnet-s", 0, 0, NULL, RECIPE, "architecture preset: iqnet-s, resnet18 or resnet34; or a model.json file (NAME.json) whose layers and input (size, window, channels, mean/std) are trained from scratch"},
    {"train.width", OPT_INT, F(train.width), "0", 0, 1024, NULL, RECIPE,
     "base channels of the preset (0 = its default)"},
    {"train.depth", OPT_INT, F(train.depth), "0", 0, 16, NULL, RECIPE,
     "blocks of the preset (0 = its default)"},
    {"train.input_size", OPT_INT, F(train.input_size), "64", 8, 1024, NULL, RECIPE,
     "model input height and width (pixels)"},
    {"train.hu_min", OPT_DOUBLE, F(train.hu_min), "-500", -1e5, 1e5, NULL, RECIPE,
     "window lower bound (HU)"},
    {"train.hu_max", OPT_DOUBLE, F(train.hu_max), "500", -1e5, 1e5, NULL, RECIPE,
     "window upper bound (HU)"},
    {"train.slices", OPT_STRING, F(train.slices), "all", 0, 0, "|all|structures|",
     RECIPE | S(EVALUATE) | S(ATTRIB),
     "axial slices used: all, or those with any structure present"},
    {"train.slice_step", OPT_INT, F(train.slice_step), "2", 1, 1000, NULL, RECIPE,
     "use every k-th slice for training"},
    {"train.epochs", OPT_INT, F(train.epochs), "16", 1, 100000, NULL, RECIPE, "maximum epochs"},
    {"train.batch", OPT_INT, F(train.batch), "32", 1, 4096, NULL, RECIPE, "batch size"},
    {"train.patience", OPT_INT, F(train.patience), "6", 0, 100000, NULL, RECIPE,
     "epochs without validation improvement before stopping (0 = never stop early)"},
    {"train.lr", OPT_DOUBLE, F(train.lr), "0.001", 0, 10, NULL, RECIPE,
     "learning rate (0 = the weights stay as initialised: a model that learns nothing)"},
    {"train.weight_decay", OPT_DOUBLE, F(train.weight_decay), "0", 0, 10, NULL, RECIPE,
     "weight decay"},
    {"train.optimizer", OPT_STRING, F(train.optimizer), "adam", 0, 0, "|adam|sgd|", RECIPE,
     "optimiser: adam or sgd"},
    {"train.augment", OPT_BOOL, F(train.augment), "true", 0, 0, NULL, RECIPE,
     "random flips, shifts and intensity jitter during training"},
    {"train.permute_labels", OPT_BOOL, F(train.permute_labels), "false", 0, 0, NULL, S(TRAIN),
     "train on consensus scores permuted between volumes within each split (a control)"},
    {"train.repeats", OPT_INT, F(train.repeats), "1", 1, 100, NULL,
     S(TRAIN) | S(EVALUATE) | S(ATTRIB) | S(STATS) | S(SANITY),
     "models trained per fold, each with its own seed; predictions and AE are their mean"},
    {"evaluate.batch", OPT_INT, F(evaluate.batch), "64", 1, 4096, NULL,
     S(EVALUATE) | S(ATTRIB) | S(SANITY), "slices per forward pass at prediction"},
    {"attrib.method", OPT_STRING, F(attrib.method), "gradcam", 0, 0, NULL, S(ATTRIB) | S(SANITY),
     "attribution method: {methods}"},
    {"attrib.target_layer", OPT_STRING, F(attrib.target_layer), "", 0, 0, NULL,
     S(ATTRIB) | S(SANITY),
     "Grad-CAM layer; empty = the model's target_layer"},
    {"attrib.save_maps", OPT_BOOL, F(attrib.save_maps), "true", 0, 0, "|dicom|", S(ATTRIB),
     "write Grad-CAM maps as NIfTI volumes; \"dicom\": also as DICOM Parametric Maps of "
     "the test volumes' DICOM series (refused for NIfTI volumes)"},
    {"attrib.perturbation", OPT_STRING, F(attrib.perturbation), "blur", 0, 0, "|none|blur|road|",
     S(ATTRIB), "deletion/insertion curves' baseline: blur, road (noisy linear imputation), "
     "or none (no curves)"},
    {"attrib.curve_slices", OPT_INT, F(attrib.curve_slices), "1", 0, 100000, NULL, S(ATTRIB),
     "evenly spaced slices per test volume for the deletion/insertion curves (0 = all)"},
    {"stats.ci", OPT_STRING, F(stats.ci), "fisher", 0, 0, "|fisher|bootstrap|", S(STATS),
     "the table's confidence interval of rho: Fisher z or bootstrap BCa"},
    {"stats.bootstrap", OPT_INT, F(stats.bootstrap), "10000", 10, 10000000, NULL, S(STATS),
     "bootstrap resamples of rho (BCa interval in stats.json; the table's when stats.ci = bootstrap)"},
    {"stats.permutations", OPT_INT, F(stats.permutations), "100000", 10, 100000000, NULL,
     S(STATS), "random permutations for the permutation p (all n! when n <= 9)"},
    {"stats.ci_level", OPT_DOUBLE, F(stats.ci_level), "0.95", 0.5, 0.9999, NULL, S(STATS),
     "confidence level"},
    {"atypical.mad_threshold", OPT_DOUBLE, F(atypical.mad_threshold), "3.5", 0.1, 100, NULL,
     S(ATYPICAL), "robust |z| of the AE residual above which a volume is atypical"},
    {"atypical.influential", OPT_INT, F(atypical.influential), "3", 0, 1000, NULL, S(ATYPICAL),
     "most influential leave-one-out volumes listed per category"},
    {"sanity.enabled", OPT_BOOL, F(sanity.enabled), "true", 0, 0, NULL, S(SANITY),
     "run the sanity checks of the attribution maps (false = the stage writes an empty table)"},
    {"sanity.permuted_labels", OPT_BOOL, F(sanity.permuted_labels), "true", 0, 0, NULL, S(SANITY),
     "also train a model on permuted labels (the train recipe) and compare its maps"},
    {"sanity.methods", OPT_STRING, F(sanity.methods), "", 0, 0, NULL, S(SANITY),
     "comma-separated methods to test; empty = attrib.method and gradxinput"},
    {"sanity.max_slices", OPT_INT, F(sanity.max_slices), "16", 0, 100000, NULL, S(SANITY),
     "evenly spaced slices per test volume (0 = all)"},
    {"sanity.threshold", OPT_DOUBLE, F(sanity.threshold), "0.5", -1, 1, NULL, S(SANITY),
     "median rank correlation above which a method survives randomisation (flagged)"},
    {"report.title", OPT_STRING, F(report.title), "Attribution Energy vs expert image quality", 0,
     0, NULL, S(REPORT), "report title"},
    {"report.dpi", OPT_INT, F(report.dpi), "150", 50, 1200, NULL, S(REPORT),
     "resolution of the figures' PNG files (300 for print; PDF and SVG beside them are vector)"},
    {"report.viewer", OPT_STRING, F(report.viewer), "picks", 0, 0, "|picks|all|off|", S(REPORT),
     "volumes in the report's map viewer: each category's highest, median and lowest AE; every "
     "test volume (a larger report); none"},
};
enum { N_OPTS = sizeof OPTS / sizeof OPTS[0] };

static void *field(cbq_study_config *cfg, const opt_def *o) { return (char *)cfg + o->offset; }
static const void *cfield(const cbq_study_config *cfg, const opt_def *o)
{
    return (const char *)cfg + o->offset;
}

/* A boolean option with `choices` also takes those words (attrib.save_maps =
 * "dicom"): the first is stored as 2 (CBQ_SAVE_MAPS_DICOM), and so on. */
static int bool_choice(const opt_def *o, const char *word)
{
    char probe[CBQ_STUDY_STR_MAX + 2];
    snprintf(probe, sizeof probe, "|%s|", word);
    const char *at = o->choices && word[0] ? strstr(o->choices, probe) : NULL;
    if (!at)
        return -1;
    int index = 2;
    for (const char *c = o->choices + 1; c < at + 1; c++)
        index += *c == '|';
    return index;
}

/* The text of a boolean option's value into word[cap]: true, false or its choice. */
static const char *bool_text(const opt_def *o, int v, char *word, size_t cap)
{
    if (v == 0 || v == 1 || !o->choices) {
        snprintf(word, cap, "%s", v ? "true" : "false");
        return word;
    }
    const char *c = o->choices + 1;
    for (int i = 2; i < v && strchr(c, '|'); i++)
        c = strchr(c, '|') + 1;
    snprintf(word, cap, "%.*s", (int)strcspn(c, "|"), c);
    return word;
}

/* Text form of a value: the canonical form hashed and printed. */
static void format_value(const cbq_study_config *cfg, const opt_def *o, char *buf, size_t cap)
{
    const void *p = cfield(cfg, o);
    switch (o->type) {
    case OPT_INT: snprintf(buf, cap, "%d", *(const int *)p); break;
    case OPT_U64: snprintf(buf, cap, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    case OPT_DOUBLE: snprintf(buf, cap, "%.17g", *(const double *)p); break;
    case OPT_BOOL: bool_text(o, *(const int *)p, buf, cap); break;
    default: snprintf(buf, cap, "%s", (const char *)p); break;
    }
}

/* Sets an option from text (defaults only; trusted). */
static void set_from_text(cbq_study_config *cfg, const opt_def *o, const char *text)
{
    void *p = field(cfg, o);
    switch (o->type) {
    case OPT_INT: *(int *)p = atoi(text); break;
    case OPT_U64: *(uint64_t *)p = strtoull(text, NULL, 10); break;
    case OPT_DOUBLE: *(double *)p = strtod(text, NULL); break;
    case OPT_BOOL: *(int *)p = bool_choice(o, text) > 1 ? bool_choice(o, text) : strcmp(text, "true") == 0; break;
    default: snprintf(p, o->size, "%s", text); break;
    }
}

void cbq_study_config_defaults(cbq_study_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_OPTS; i++)
        set_from_text(cfg, &OPTS[i], OPTS[i].def);
}

const char *cbq_study_stage_name(cbq_study_stage stage)
{
    static const char *names[CBQ_STAGE_COUNT] = {
#define CBQ_STUDY_STAGE(id, name) [CBQ_STAGE_##id] = #name,
#include "cbctiq/study_stages.def"
#undef CBQ_STUDY_STAGE
    };
    return (unsigned)stage < CBQ_STAGE_COUNT ? names[stage] : "?";
}

static const opt_def *find_opt(const char *key)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strcmp(OPTS[i].key, key) == 0)
            return &OPTS[i];
    return NULL;
}

/* Is `prefix` (dotted) the parent of some option? */
static int is_section(const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < N_OPTS; i++)
        if (strncmp(OPTS[i].key, prefix, n) == 0 && OPTS[i].key[n] == '.')
            return 1;
    return 0;
}

static int resolve_path(char *dst, size_t cap, const char *value, const char *base_dir,
                        const char *source, const char *key, cbq_error *err)
{
    int n;
    if (value[0] == '\0' || value[0] == '/' || !base_dir || !base_dir[0] ||
        strcmp(base_dir, ".") == 0)
        n = snprintf(dst, cap, "%s", value);
    else
        n = snprintf(dst, cap, "%s/%s", base_dir, value);
    if (n < 0 || (size_t)n >= cap)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: %s: path too long", source, key);
    return CBQ_OK;
}

/* Why a category name cannot be a file name component, or NULL. */
static const char *name_problem(const char *name)
{
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return "is '.' or '..'";
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
        if (*c == '/' || *c == '\\')
            return "contains a path separator ('/' or '\\')";
        if (*c < 0x20 || *c == 0x7f)
            return "contains a control character";
    }
    return NULL;
}

static int set_list(cbq_study_config *cfg, const opt_def *o, const cJSON *item, const char *source,
                    cbq_error *err)
{
    char *dst = field(cfg, o);
    size_t len = 0, count = 0;
    dst[0] = '\0';
    if (!cJSON_IsArray(item))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: %s: expected an array of names", source, o->key);
    const cJSON *el;
    cJSON_ArrayForEach(el, item) {
        if (!cJSON_IsString(el) || !el->valuestring[0] || strchr(el->valuestring, ',') ||
            strlen(el->valuestring) >= 64)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: %s: expected non-empty names without commas (< 64 chars)",
                            source, o->key);
        const char *why = name_problem(el->valuestring);
        if (why)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: %s: '%s' %s; a category names files, so it "
                            "must be one plain path component", source, o->key, el->valuestring,
                            why);
        for (const cJSON *prev = item->child; prev != el; prev = prev->next)
            if (strcmp(prev->valuestring, el->valuestring) == 0)
                return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: %s: '%s' appears twice", source, o->key,
                                el->valuestring);
        size_t n = strlen(el->valuestring);
        if (len + n + 2 > o->size)
            return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: %s: list too long", source, o->key);
        if (count++)
            dst[len++] = ',';
        memcpy(dst + len, el->valuestring, n + 1);
        len += n;
    }
    if (count == 0 || count > 16)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: %s: expected 1 to 16 names", source, o->key);
    return CBQ_OK;
}

static int set_number(cbq_study_config *cfg, const opt_def *o, const cJSON *item,
                      const char *source, cbq_error *err)
{
    if (!cJSON_IsNumber(item))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: %s: expected a number", source, o->key);
    double v = item->valuedouble;
    if (o->type == OPT_U64) {
        if (!(v >= 0 && v <= 9007199254740992.0) || v != floor(v))
            return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: %s: expected an integer in [0, 2^53], got %g",
                            source, o->key, v);
        *(uint64_t *)field(cfg, o) = (uint64_t)v;
        return CBQ_OK;
    }
    if (!isfinite(v) || v < o->lo || v > o->hi || (o->type == OPT_INT && v != floor(v)))
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: %s: expected %s in [%g, %g], got %g", source,
                        o->key, o->type == OPT_INT ? "an integer" : "a number", o->lo, o->hi, v);
    if (o->type == OPT_INT)
        *(int *)field(cfg, o) = (int)v;
    else
        *(double *)field(cfg, o) = v;
    return CBQ_OK;
}

static int set_option(cbq_study_config *cfg, const opt_def *o, const cJSON *item,
                      const char *source, const char *base_dir, cbq_error *err)
{
    switch (o->type) {
    case OPT_INT:
    case OPT_U64:
    case OPT_DOUBLE: return set_number(cfg, o, item, source, err);
    case OPT_BOOL:
        if (cJSON_IsString(item) && bool_choice(o, item->valuestring) > 1) {
            *(int *)field(cfg, o) = bool_choice(o, item->valuestring);
            return CBQ_OK;
        }
        if (!cJSON_IsBool(item))
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: %s: expected true or false%s%s", source, o->key,
                            o->choices ? " or one of " : "", o->choices ? o->choices : "");
        *(int *)field(cfg, o) = cJSON_IsTrue(item);
        return CBQ_OK;
    case OPT_LIST: return set_list(cfg, o, item, source, err);
    default: break;
    }
    if (!cJSON_IsString(item))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: %s: expected a string", source, o->key);
    const char *v = item->valuestring;
    if (o->choices) {
        char probe[CBQ_STUDY_STR_MAX + 2];
        snprintf(probe, sizeof probe, "|%s|", v);
        if (!v[0] || !strstr(o->choices, probe))
            return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: %s: expected one of %s, got '%s'", source,
                            o->key, o->choices, v);
    }
    /* train.arch naming a model.json is a path like train.model's: relative
     * to the config file's folder. */
    int arch_file = strcmp(o->key, "train.arch") == 0 && cbq_study_arch_is_file(v);
    if (o->type == OPT_PATH || arch_file)
        return resolve_path(field(cfg, o), o->size, v, base_dir, source, o->key, err);
    if (strlen(v) >= o->size)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: %s: longer than %zu characters", source, o->key,
                        o->size - 1);
    snprintf(field(cfg, o), o->size, "%s", v);
    return CBQ_OK;
}

static int parse_object(cbq_study_config *cfg, const cJSON *obj, const char *prefix,
                        const char *source, const char *base_dir, cbq_error *err)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, obj) {
        char key[256];
        int n = snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "", item->string);
        if (n < 0 || (size_t)n >= sizeof key)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: key too long under '%s'", source, prefix);
        /* cJSON keeps both copies of a repeated key and finds the first, so
         * one of two values would be silently ignored. */
        for (const cJSON *prev = obj->child; prev != item; prev = prev->next)
            if (strcmp(prev->string, item->string) == 0)
                return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: '%s' appears twice (each key once)",
                                source, key);
        const opt_def *o = find_opt(key);
        if (o) {
            CBQ_TRY(set_option(cfg, o, item, source, base_dir, err));
        } else if (is_section(key)) {
            if (!cJSON_IsObject(item))
                return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: %s: expected an object", source, key);
            CBQ_TRY(parse_object(cfg, item, key, source, base_dir, err));
        } else {
            return CBQ_FAIL(err, CBQ_ERR_ARG,
                            "%s: unknown option '%s' (`cbctiq study --print-config` lists them)",
                            source, key);
        }
    }
    return CBQ_OK;
}

/* sanity.methods is checked here so that a typo fails at once instead of
 * after training, when the sanity stage reaches it. */
static int check_methods(const char *list, const char *source, cbq_error *err)
{
    cbq_cam_method m[CBQ_CAM_METHOD_COUNT];
    size_t n = 0;
    char bad[64];
    int too_many = 0;
    if (!cbq_cam_method_list_parse(list, m, CBQ_CAM_METHOD_COUNT, &n, bad, sizeof bad, &too_many) &&
        !too_many)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: sanity.methods: unknown method '%s' (one of %s)",
                        source, bad, cbq_cam_method_list());
    if ((list[0] && n == 0) || too_many)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: sanity.methods: expected 1 to %d method names, "
                        "comma-separated", source, (int)CBQ_CAM_METHOD_COUNT);
    return CBQ_OK;
}

int cbq_study_arch_is_file(const char *arch)
{
    size_t n = strlen(arch);
    return n > 5 && strcmp(arch + n - 5, ".json") == 0;
}

static int check_arch(const char *arch, const char *source, cbq_error *err)
{
    if (cbq_study_arch_is_file(arch))
        return CBQ_OK; /* read, and checked, by the train stage */
    char known[256] = "";
    for (size_t i = 0; cbq_preset_names[i]; i++) {
        if (strcmp(cbq_preset_names[i], arch) == 0)
            return CBQ_OK;
        size_t len = strlen(known);
        snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "", cbq_preset_names[i]);
    }
    return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: train.arch: unknown architecture '%s' (one of %s, "
                    "or a model.json file)", source, arch, known);
}

/* attrib.target_layer must be a layer with a spatial grid (before the
 * global pool and the linear head) of the model the study will train: the
 * train.arch preset with these options. With train.model the architecture
 * is only known once that model is read (the attrib stage checks it then). */
static int check_target_layer(const cbq_study_config *cfg, const char *source, cbq_error *err)
{
    if (!cfg->attrib.target_layer[0] || cfg->train.model[0] || cbq_study_arch_is_file(cfg->train.arch))
        return CBQ_OK;
    char cats[16][64];
    const char *outs[16];
    size_t K = cbq_study_categories(cfg, cats, 16);
    for (size_t k = 0; k < K; k++)
        outs[k] = cats[k];
    cbq_preset_opts po = {.width = cfg->train.width, .depth = cfg->train.depth,
                          .input = cfg->train.input_size, .hu_min = cfg->train.hu_min,
                          .hu_max = cfg->train.hu_max, .n_outputs = K, .outputs = outs};
    cbq_model_spec spec;
    if (cbq_preset_build(&spec, cfg->train.arch, &po, err) != CBQ_OK)
        return cbq_error_prefix(err, "%s: train: ", source);
    char names[1024] = "";
    int found = 0;
    for (size_t i = 0; i < spec.n_layers && !found; i++) {
        if (cbq_layer_kind_info_of(spec.layers[i].kind)->flattens)
            break;
        found = strcmp(spec.layers[i].name, cfg->attrib.target_layer) == 0;
        size_t len = strlen(names);
        snprintf(names + len, sizeof names - len, "%s%s", len ? ", " : "", spec.layers[i].name);
    }
    cbq_model_spec_free(&spec);
    if (found)
        return CBQ_OK;
    return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: attrib.target_layer: '%s' is not a layer with a "
                    "spatial grid of the %s model this study trains (one of %s)", source,
                    cfg->attrib.target_layer, cfg->train.arch, names);
}

static int check_consistency(const cbq_study_config *cfg, const char *source, cbq_error *err)
{
    CBQ_TRY(check_methods(cfg->sanity.methods, source, err));
    if (cfg->attrib.save_maps == CBQ_SAVE_MAPS_DICOM && !cfg->cohort.csv[0])
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: attrib.save_maps = dicom needs DICOM test volumes; "
                        "the built-in simulated cohort is NIfTI (give cohort.csv of DICOM series, "
                        "or set attrib.save_maps to true)", source);
    cbq_cam_method method;
    if (!cbq_cam_method_parse(cfg->attrib.method, &method))
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: attrib.method: unknown method '%s' (one of %s)",
                        source, cfg->attrib.method, cbq_cam_method_list());
    CBQ_TRY(check_arch(cfg->train.arch, source, err));
    if (cfg->train.hu_max <= cfg->train.hu_min)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: train.hu_max (%g) must exceed train.hu_min (%g)",
                        source, cfg->train.hu_max, cfg->train.hu_min);
    if (cfg->cohort.split_train + cfg->cohort.split_val >= 1.0)
        return CBQ_FAIL(err, CBQ_ERR_RANGE,
                        "%s: cohort.split_train + cohort.split_val must leave a test split (< 1)",
                        source);
    if (cfg->cohort.split_train <= 0)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: cohort.split_train must be > 0", source);
    if (cfg->cohort.folds == 1)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: cohort.folds: 1 fold tests no volume out of "
                        "fold; expected 0 (the single split) or K >= 2", source);
    if (cfg->cohort.folds > 0 && cfg->train.model[0])
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: cohort.folds needs a model trained per fold; "
                        "train.model gives one model (set cohort.folds = 0)", source);
    if (cfg->train.repeats > 1 && cfg->train.model[0])
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: train.repeats needs models trained here; "
                        "train.model gives one model (set train.repeats = 1)", source);
    return check_target_layer(cfg, source, err);
}

int cbq_study_config_parse(cbq_study_config *cfg, const char *json_text, const char *source,
                           const char *base_dir, cbq_error *err)
{
    cJSON *root = cJSON_Parse(json_text);
    if (!root) {
        const char *where = cJSON_GetErrorPtr();
        size_t line = 1;
        for (const char *c = json_text; where && c < where && *c; c++)
            line += *c == '\n';
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: line %zu: invalid JSON", source, line);
    }
    int rc = cJSON_IsObject(root) ? parse_object(cfg, root, "", source, base_dir, err)
                                  : CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: expected a JSON object", source);
    cJSON_Delete(root);
    return rc == CBQ_OK ? check_consistency(cfg, source, err) : rc;
}

int cbq_study_config_load(cbq_study_config *cfg, const char *path, cbq_error *err)
{
    char *text = NULL;
    CBQ_TRY(cbq_read_text_file(path, 0, &text, NULL, err));
    char base[CBQ_STUDY_PATH_MAX];
    const char *slash = strrchr(path, '/');
    snprintf(base, sizeof base, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    if (slash == path)
        snprintf(base, sizeof base, "/");
    int rc = cbq_study_config_parse(cfg, text, path, base, err);
    free(text);
    return rc;
}

/* The object holding `key`'s last component, creating sections on the way. */
static cJSON *section_for(cJSON *root, const char *key, const char **leaf)
{
    cJSON *obj = root;
    const char *start = key;
    for (const char *dot; (dot = strchr(start, '.')) != NULL; start = dot + 1) {
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(dot - start), start);
        cJSON *child = cJSON_GetObjectItemCaseSensitive(obj, name);
        if (!child)
            child = cJSON_AddObjectToObject(obj, name);
        if (!child)
            return NULL;
        obj = child;
    }
    *leaf = start;
    return obj;
}

static cJSON *value_json(const cbq_study_config *cfg, const opt_def *o)
{
    const void *p = cfield(cfg, o);
    switch (o->type) {
    case OPT_INT: return cJSON_CreateNumber(*(const int *)p);
    case OPT_U64: return cJSON_CreateNumber((double)*(const uint64_t *)p);
    case OPT_DOUBLE: return cJSON_CreateNumber(*(const double *)p);
    case OPT_BOOL: {
        char word[CBQ_STUDY_STR_MAX];
        return *(const int *)p > 1 ? cJSON_CreateString(bool_text(o, *(const int *)p, word, sizeof word))
                                   : cJSON_CreateBool(*(const int *)p);
    }
    case OPT_LIST: {
        cJSON *arr = cJSON_CreateArray();
        char buf[CBQ_STUDY_STR_MAX];
        snprintf(buf, sizeof buf, "%s", (const char *)p);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && arr;
             t = strtok_r(NULL, ",", &save))
            cJSON_AddItemToArray(arr, cJSON_CreateString(t));
        return arr;
    }
    default: return cJSON_CreateString((const char *)p);
    }
}

char *cbq_study_config_json(const cbq_study_config *cfg)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    for (size_t i = 0; i < N_OPTS; i++) {
        const char *leaf = NULL;
        cJSON *obj = section_for(root, OPTS[i].key, &leaf);
        cJSON *v = obj ? value_json(cfg, &OPTS[i]) : NULL;
        if (!v || !cJSON_AddItemToObject(obj, leaf, v)) {
            cJSON_Delete(v);
            cJSON_Delete(root);
            return NULL;
        }
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

void cbq_study_config_stage_hash(const cbq_study_config *cfg, cbq_study_stage stage, char hex[65])
{
    cbq_sha256 h;
    cbq_sha256_init(&h);
    for (size_t i = 0; i < N_OPTS; i++) {
        if (!(OPTS[i].stages & STAGE_BIT(stage)))
            continue;
        char line[CBQ_STUDY_PATH_MAX + 300];
        char value[CBQ_STUDY_PATH_MAX + 32];
        format_value(cfg, &OPTS[i], value, sizeof value);
        int n = snprintf(line, sizeof line, "%s=%s\n", OPTS[i].key, value);
        cbq_sha256_update(&h, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    }
    unsigned char d[32];
    cbq_sha256_final(&h, d);
    cbq_sha256_hex(d, hex);
}

size_t cbq_study_categories(const cbq_study_config *cfg, char (*names)[64], size_t cap)
{
    char buf[CBQ_STUDY_STR_MAX];
    snprintf(buf, sizeof buf, "%s", cfg->categories);
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < cap;
         t = strtok_r(NULL, ",", &save))
        snprintf(names[n++], 64, "%s", t);
    return n;
}

/* n characters of text in a Markdown cell, where a '|' would end the cell */
static void put_cell(FILE *out, const char *text, size_t n)
{
    for (size_t i = 0; i < n && text[i]; i++)
        fputs(text[i] == '|' ? "\\|" : (char[2]){text[i], 0}, out);
}

/* A help text; {methods} stands for the attribution methods of the method
 * table (cbctiq/cam_methods.def), so that a new method is listed here too. */
static void put_help(FILE *out, const char *help)
{
    static const char token[] = "{methods}";
    const char *at = strstr(help, token);
    if (!at) {
        put_cell(out, help, strlen(help));
        return;
    }
    put_cell(out, help, (size_t)(at - help));
    put_cell(out, cbq_cam_method_list(), strlen(cbq_cam_method_list()));
    put_cell(out, at + sizeof token - 1, strlen(at + sizeof token - 1));
}

void cbq_study_config_describe(FILE *out)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        fprintf(out, "| `%s` | %s%s%s | ", OPTS[i].key, OPTS[i].def[0] ? "`" : "(empty)",
                OPTS[i].def, OPTS[i].def[0] ? "`" : "");
        put_help(out, OPTS[i].help);
        fputs(" |\n", out);
    }
}
