/* cmd_sanity.c - `cbctiq sanity`: the cascading model-randomisation test
 * of Adebayo et al. (NeurIPS 2018) for each attribution method. The
 * parametrised layers are re-initialised from the output down, one more per
 * step; after each step the maps are compared with the trained model's by
 * Spearman rank correlation and their AE with the trained AE. A method whose
 * maps still correlate after the whole network is random (median rho above
 * --threshold) explains the image, not the model, and is flagged. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrib_cli.h"
#include "cbctiq/csv.h"
#include "cbctiq/model_file.h"
#include "cli.h"

const char cli_sanity_usage[] =
    "usage: cbctiq sanity --model DIR --cohort cohort.csv --out sanity.csv [--split NAME]\n"
    "                     [--methods A,B,...] [--max-slices N] [--threshold R] [--seed N]\n"
    "                     [--permuted-model DIR]\n"
    "\n"
    "Cascading model randomisation (Adebayo et al. 2018): re-initialises the\n"
    "model's parametrised layers from the top down (PyTorch default init drawn from\n"
    "--seed), one more per step, and reports per method, step and category the\n"
    "median over volumes of the Spearman rank correlation between the randomised\n"
    "and the trained maps (target-layer grid for CAM methods, input grid for pixel\n"
    "methods) and of the AE ratio random/trained. A method whose median rho at the\n"
    "last step exceeds --threshold is flagged (survives = 1): its maps do not\n"
    "depend on what the model learned. With --permuted-model, also the data\n"
    "randomisation test: maps of a model trained on permuted labels (train it with\n"
    "the same recipe on ratings whose volume labels were shuffled) against the\n"
    "trained model's (rows with test = permuted_labels, step 0).\n"
    "  --methods LIST     default gradcam,hirescam,layercam,xgradcam,gradcam++,eigencam,gradxinput\n"
    "  --permuted-model DIR  a model of the same architecture trained on permuted labels\n"
    "  --max-slices N     evenly spaced axial slices per volume (default 16; 0 = all)\n"
    "  --threshold R      rank correlation that flags a method (default 0.5)\n"
    "  --seed N           seed of the re-initialisation (default 1)\n"
    "  --split NAME       only rows with this split\n"
    "  --layer, --relu, --sign, --batch, --ig-steps, --ig-rule as for `cbctiq ae`\n"
    "  --threads N, --quiet\n";

enum { MAX_METHODS = CBQ_CAM_METHOD_COUNT };

typedef struct {
    const char *model, *cohort, *split, *out, *permuted_model;
    cbq_cam_method methods[MAX_METHODS];
    size_t n_methods, max_slices, batch;
    double threshold;
    cbq_attrib_options opt;
    cli_common common;
} sanity_args;

static int parse_methods(sanity_args *a, const char *list)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    a->n_methods = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (a->n_methods == MAX_METHODS || !cbq_cam_method_parse(tok, &a->methods[a->n_methods]))
            return cli_usage_error("sanity", "--methods: unknown method '%s'; known: %s", tok,
                                   cbq_cam_method_list());
        a->n_methods++;
    }
    return a->n_methods ? CLI_EXIT_OK : cli_usage_error("sanity", "--methods is empty");
}

static int parse_args(sanity_args *a, int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},      {"cohort", required_argument, NULL, 'c'},
        {"split", required_argument, NULL, 's'},      {"out", required_argument, NULL, 'o'},
        {"methods", required_argument, NULL, 'M'},    {"max-slices", required_argument, NULL, 'n'},
        {"threshold", required_argument, NULL, 'r'},  {"seed", required_argument, NULL, 'S'},
        {"threads", required_argument, NULL, 't'},    {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},             {"permuted-model", required_argument, NULL, 'P'},
        ATTRIB_CLI_OPTIONS,
        {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof *a);
    cbq_attrib_options_default(&a->opt);
    cli_common_defaults(&a->common);
    a->batch = 16;
    a->max_slices = 16;
    a->threshold = 0.5;
    int rc = parse_methods(a, "gradcam,hirescam,layercam,xgradcam,gradcam++,eigencam,gradxinput");
    int c;
    uint64_t v;
    optind = 1;
    while (rc == CLI_EXIT_OK && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'c': a->cohort = optarg; break;
        case 's': a->split = optarg; break;
        case 'o': a->out = optarg; break;
        case 'P': a->permuted_model = optarg; break;
        case 'M': rc = parse_methods(a, optarg); break;
        case 'n':
            if (!cli_parse_u64("sanity", "--max-slices", optarg, 0, 100000, &v)) return CLI_EXIT_USAGE;
            a->max_slices = (size_t)v;
            break;
        case 'r':
            if (!cli_parse_double("sanity", "--threshold", optarg, -1, 1, &a->threshold)) return CLI_EXIT_USAGE;
            break;
        case 'S':
            if (!cli_parse_u64("sanity", "--seed", optarg, 0, UINT64_MAX, &a->common.seed)) return CLI_EXIT_USAGE;
            break;
        case 't':
            if (!cli_parse_u64("sanity", "--threads", optarg, 0, 1024, &v)) return CLI_EXIT_USAGE;
            a->common.threads = (int)v;
            break;
        case 'q': a->common.quiet = 1; break;
        case 'h': fputs(cli_sanity_usage, stdout); return -1;
        case '?': return cli_usage_error("sanity", "unknown option");
        default:
            if (c == 1000 || c == 1003 || c == 1005)
                return cli_usage_error("sanity", "use --methods; --grid/--aggregate do not apply");
            if (!attrib_cli_option("sanity", c, optarg, &a->opt, &a->batch))
                return CLI_EXIT_USAGE;
        }
    }
    if (rc != CLI_EXIT_OK)
        return rc;
    if (optind < argc)
        return cli_usage_error("sanity", "unexpected argument '%s'", argv[optind]);
    if (!a->model || !a->cohort || !a->out)
        return cli_usage_error("sanity", "--model, --cohort and --out are required");
    return CLI_EXIT_OK;
}

/* The trained weights, to come back to before each method's cascade. */
typedef struct {
    float **data;
    size_t n;
} snapshot;

static int snapshot_take(snapshot *s, const cbq_net *net, cbq_error *err)
{
    s->n = cbq_net_tensor_count(net);
    s->data = calloc(s->n, sizeof *s->data);
    if (!s->data)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (size_t t = 0; t < s->n; t++) {
        cbq_tensor_view v;
        cbq_net_tensor(net, t, &v);
        size_t bytes = v.numel * (v.dtype == CBQ_DTYPE_I64 ? sizeof(int64_t) : sizeof(float));
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
        memcpy(v.data, s->data[t], v.numel * (v.dtype == CBQ_DTYPE_I64 ? sizeof(int64_t) : sizeof(float)));
    }
}

static void snapshot_free(snapshot *s)
{
    for (size_t t = 0; t < s->n && s->data; t++)
        free(s->data[t]);
    free(s->data);
}

/* Volumes of the cohort, each reduced to its selected slices. */
typedef struct {
    char id[128];
    float *slices;  /* [nz, 1, H, W] */
    size_t nz;
} vol_slices;

static int load_cohort(const sanity_args *a, const cbq_model_spec *spec, vol_slices **vols,
                       size_t *n_vols, cbq_error *err)
{
    cbq_csv t;
    CBQ_TRY(cbq_csv_read(&t, a->cohort, err));
    size_t col_id, col_path;
    long col_split = cbq_csv_col(&t, "split");
    int rc = cbq_csv_require_col(&t, "volume_id", &col_id, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&t, "path", &col_path, err);
    if (rc == CBQ_OK && a->split && col_split < 0)
        rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: --split given but no 'split' column", a->cohort);
    *vols = calloc(t.n_rows ? t.n_rows : 1, sizeof **vols);
    *n_vols = 0;
    if (!*vols && rc == CBQ_OK)
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    size_t HW = (size_t)spec->input.height * (size_t)spec->input.width;
    for (size_t r = 0; r < t.n_rows && rc == CBQ_OK; r++) {
        if (a->split && strcmp(cbq_csv_cell(&t, r, (size_t)col_split), a->split) != 0)
            continue;
        char path[4096];
        const char *rel = cbq_csv_cell(&t, r, col_path), *slash = strrchr(a->cohort, '/');
        if (rel[0] == '/' || !slash)
            snprintf(path, sizeof path, "%s", rel);
        else
            snprintf(path, sizeof path, "%.*s%s", (int)(slash - a->cohort + 1), a->cohort, rel);
        attrib_input in;
        if ((rc = attrib_input_load(&in, path, spec, 1, 1, err)) != CBQ_OK) {
            cbq_error_prefix(err, "%s:%zu: ", a->cohort, t.line[r]);
            break;
        }
        vol_slices *v = &(*vols)[(*n_vols)++];
        snprintf(v->id, sizeof v->id, "%s", cbq_csv_cell(&t, r, col_id));
        v->nz = a->max_slices && a->max_slices < in.nz ? a->max_slices : in.nz;
        v->slices = malloc(v->nz * HW * sizeof *v->slices);
        if (!v->slices) {
            attrib_input_free(&in);
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
            break;
        }
        for (size_t i = 0; i < v->nz; i++) { /* evenly spaced, centred */
            size_t k = (in.nz * (2 * i + 1)) / (2 * v->nz);
            memcpy(v->slices + i * HW, in.slices + k * HW, HW * sizeof(float));
        }
        attrib_input_free(&in);
    }
    if (rc == CBQ_OK && *n_vols == 0)
        rc = CBQ_FAIL(err, CBQ_ERR_ARG, "%s: no volumes to test", a->cohort);
    cbq_csv_free(&t);
    return rc;
}

/* Maps of every output for one volume: [n_out][nz * grid]. */
typedef struct {
    float *maps[CBQ_MAX_OUTPUTS];
    double ae[CBQ_MAX_OUTPUTS];
    size_t per_map;
} vol_maps;

static int compute_maps(cbq_cam *cam, const vol_slices *v, vol_maps *out, cbq_error *err)
{
    size_t h, w, H, W, no = cbq_cam_n_outputs(cam);
    cbq_cam_feature_shape(cam, &h, &w);
    cbq_cam_input_shape(cam, &H, &W);
    int pixel = h * w == 0;
    out->per_map = v->nz * (pixel ? H * W : h * w);
    for (size_t c = 0; c < no; c++)
        if (!out->maps[c] && !(out->maps[c] = malloc(out->per_map * sizeof(float))))
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    cbq_ae ae[CBQ_MAX_OUTPUTS];
    CBQ_TRY(cbq_attrib_volume(cam, v->slices, v->nz, NULL, ae, pixel ? out->maps : NULL,
                              pixel ? NULL : out->maps, NULL, err));
    for (size_t c = 0; c < no; c++) {
        out->ae[c] = ae[c].ae;
        cbq_ae_free(&ae[c]);
    }
    return CBQ_OK;
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

static const char *const sanity_columns[] = {
    "method", "test", "step", "layer", "category", "n_volumes", "median_spearman", "min_spearman",
    "max_spearman", "median_ae_ratio", "mean_ae_trained", "mean_ae_random", "threshold", "survives"};
enum { N_SANITY_COLUMNS = sizeof sanity_columns / sizeof sanity_columns[0] };

/* Per comparison slot (slot 0: the label-permuted model; slot s >= 1:
 * cascade step s), output and volume: rank correlation and AE ratio. */
typedef struct {
    size_t n_slots, no, n_vols;
    double *rho, *ratio;   /* [slot][output][volume] */
    double *ae_t, *ae_r;   /* [slot][output], means over volumes */
} comparisons;

static int comparisons_init(comparisons *cmp, size_t n_slots, size_t no, size_t n_vols, cbq_error *err)
{
    size_t cells = n_slots * no * n_vols;
    cmp->n_slots = n_slots;
    cmp->no = no;
    cmp->n_vols = n_vols;
    cmp->rho = malloc(cells * sizeof *cmp->rho);
    cmp->ratio = malloc(cells * sizeof *cmp->ratio);
    cmp->ae_t = calloc(n_slots * no, sizeof *cmp->ae_t);
    cmp->ae_r = calloc(n_slots * no, sizeof *cmp->ae_r);
    if (!cmp->rho || !cmp->ratio || !cmp->ae_t || !cmp->ae_r)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    return CBQ_OK;
}

static void comparisons_free(comparisons *cmp)
{
    free(cmp->rho);
    free(cmp->ratio);
    free(cmp->ae_t);
    free(cmp->ae_r);
}

static void compare_maps(comparisons *cmp, size_t slot, size_t v, const vol_maps *ref,
                         const vol_maps *cur, void *work)
{
    for (size_t c = 0; c < cmp->no; c++) {
        size_t i = (slot * cmp->no + c) * cmp->n_vols + v;
        cmp->rho[i] = cbq_map_spearman(ref->maps[c], cur->maps[c], ref->per_map, work);
        cmp->ratio[i] = ref->ae[c] != 0.0 ? cur->ae[c] / ref->ae[c] : NAN;
        cmp->ae_t[slot * cmp->no + c] += ref->ae[c] / (double)cmp->n_vols;
        cmp->ae_r[slot * cmp->no + c] += cur->ae[c] / (double)cmp->n_vols;
    }
}

/* 1 when the median rank correlation of `slot`, pooled over outputs and
 * volumes, exceeds the threshold. */
static int slot_survives(const comparisons *cmp, size_t slot, double threshold)
{
    size_t n = cmp->no * cmp->n_vols;
    double *x = malloc(n * sizeof *x);
    if (!x)
        return 0;
    memcpy(x, cmp->rho + slot * n, n * sizeof *x);
    double med = median(x, n);
    free(x);
    return isfinite(med) && med > threshold;
}

static int write_slot(cbq_csv_writer *w, const comparisons *cmp, size_t slot, const char *method,
                      const char *test, const char *layer, const cbq_cam *cam, double threshold,
                      int survives, cbq_error *err)
{
    double *tmp = malloc(cmp->n_vols * sizeof *tmp);
    if (!tmp)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    int rc = CBQ_OK;
    for (size_t c = 0; c < cmp->no && rc == CBQ_OK; c++) {
        const double *r = cmp->rho + (slot * cmp->no + c) * cmp->n_vols;
        const double *q = cmp->ratio + (slot * cmp->no + c) * cmp->n_vols;
        double lo = INFINITY, hi = -INFINITY;
        for (size_t v = 0; v < cmp->n_vols; v++)
            if (isfinite(r[v])) {
                lo = fmin(lo, r[v]);
                hi = fmax(hi, r[v]);
            }
        cbq_csv_put_str(w, method);
        cbq_csv_put_str(w, test);
        cbq_csv_put_int(w, (long long)slot);
        cbq_csv_put_str(w, layer);
        cbq_csv_put_str(w, cbq_cam_category_name(cam, c));
        cbq_csv_put_int(w, (long long)cmp->n_vols);
        memcpy(tmp, r, cmp->n_vols * sizeof *tmp);
        cbq_csv_put_double(w, median(tmp, cmp->n_vols));
        cbq_csv_put_double(w, isfinite(lo) ? lo : NAN);
        cbq_csv_put_double(w, isfinite(hi) ? hi : NAN);
        memcpy(tmp, q, cmp->n_vols * sizeof *tmp);
        cbq_csv_put_double(w, median(tmp, cmp->n_vols));
        cbq_csv_put_double(w, cmp->ae_t[slot * cmp->no + c]);
        cbq_csv_put_double(w, cmp->ae_r[slot * cmp->no + c]);
        cbq_csv_put_double(w, threshold);
        cbq_csv_put_int(w, survives);
        rc = cbq_csv_end_row(w, err);
    }
    free(tmp);
    return rc;
}

/* Runs one method's cascade (and the permuted-label comparison when
 * `permuted` is given) over all volumes; writes its rows. */
static int run_method(const sanity_args *a, cbq_net *net, const snapshot *trained, cbq_net *permuted,
                      cbq_cam_method method, const vol_slices *vols, size_t n_vols,
                      cbq_csv_writer *w, cbq_progress *prog, cbq_error *err)
{
    snapshot_restore(trained, net);
    cbq_attrib_options opt = a->opt;
    opt.method = method;
    cbq_cam *cam = NULL, *perm_cam = NULL;
    CBQ_TRY(cbq_cam_create(&cam, net, a->batch, &opt, err));
    size_t no = cbq_cam_n_outputs(cam), steps = cbq_randomise_n_steps(net);
    comparisons cmp = {0};
    vol_maps ref = {0}, cur = {0};
    void *work = NULL;
    int rc = comparisons_init(&cmp, steps + 1, no, n_vols, err);
    if (rc == CBQ_OK && permuted)
        rc = cbq_cam_create(&perm_cam, permuted, a->batch, &opt, err);
    for (size_t v = 0; v < n_vols && rc == CBQ_OK; v++) {
        snapshot_restore(trained, net);
        if ((rc = compute_maps(cam, &vols[v], &ref, err)) != CBQ_OK)
            break;
        free(work);
        if (!(work = malloc(cbq_map_spearman_work_bytes(ref.per_map)))) {
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
            break;
        }
        if (perm_cam) {
            if ((rc = compute_maps(perm_cam, &vols[v], &cur, err)) != CBQ_OK)
                break;
            compare_maps(&cmp, 0, v, &ref, &cur, work);
        }
        for (size_t s = 1; s <= steps && rc == CBQ_OK; s++) {
            /* cumulative: the top s layers random, the rest trained */
            if ((rc = cbq_randomise_top(net, s, a->common.seed, err)) != CBQ_OK ||
                (rc = compute_maps(cam, &vols[v], &cur, err)) != CBQ_OK)
                break;
            compare_maps(&cmp, s, v, &ref, &cur, work);
            cbq_progress_step(prog, 1);
        }
    }
    const char *name = cbq_cam_method_name(method);
    int survives = rc == CBQ_OK && steps > 0 && slot_survives(&cmp, steps, a->threshold);
    int survives_perm = rc == CBQ_OK && perm_cam && slot_survives(&cmp, 0, a->threshold);
    if (rc == CBQ_OK && perm_cam)
        rc = write_slot(w, &cmp, 0, name, "permuted_labels", "(model trained on permuted labels)",
                        cam, a->threshold, survives_perm, err);
    for (size_t s = 1; s <= steps && rc == CBQ_OK; s++)
        rc = write_slot(w, &cmp, s, name, "cascade", cbq_randomise_step_layer(net, s), cam,
                        a->threshold, survives, err);
    if (rc == CBQ_OK && !a->common.quiet) {
        fprintf(stderr, "sanity: %-10s %s\n", name,
                survives ? "FLAGGED: maps survive full randomisation" : "maps change with the model");
        if (perm_cam)
            fprintf(stderr, "sanity: %-10s %s\n", name,
                    survives_perm ? "FLAGGED: maps survive label permutation"
                                  : "maps change when the labels are permuted");
    }
    for (size_t c = 0; c < CBQ_MAX_OUTPUTS; c++) {
        free(ref.maps[c]);
        free(cur.maps[c]);
    }
    free(work);
    comparisons_free(&cmp);
    cbq_cam_free(perm_cam);
    cbq_cam_free(cam);
    return rc;
}

static int same_outputs(const cbq_model_spec *x, const cbq_model_spec *y)
{
    if (x->n_outputs != y->n_outputs || x->input.height != y->input.height ||
        x->input.width != y->input.width || x->input.hu_min != y->input.hu_min ||
        x->input.hu_max != y->input.hu_max)
        return 0;
    for (size_t c = 0; c < x->n_outputs; c++)
        if (strcmp(x->outputs[c], y->outputs[c]) != 0)
            return 0;
    return 1;
}

static int run(const sanity_args *a, cbq_error *err)
{
    cbq_net *net = NULL, *permuted = NULL;
    CBQ_TRY(cbq_model_load(a->model, &net, a->batch, err));
    cbq_net_set_threads(net, a->common.threads);
    if (a->permuted_model) {
        int prc = cbq_model_load(a->permuted_model, &permuted, a->batch, err);
        if (prc == CBQ_OK && !same_outputs(cbq_net_spec(net), cbq_net_spec(permuted)))
            prc = CBQ_FAIL(err, CBQ_ERR_ARG, "%s: --permuted-model must have the same outputs and "
                           "input as %s", a->permuted_model, a->model);
        if (prc != CBQ_OK) {
            cbq_net_free(permuted);
            cbq_net_free(net);
            return prc;
        }
        cbq_net_set_threads(permuted, a->common.threads);
    }
    vol_slices *vols = NULL;
    size_t n_vols = 0;
    snapshot trained = {0};
    cbq_csv_writer w;
    int opened = 0;
    int rc = load_cohort(a, cbq_net_spec(net), &vols, &n_vols, err);
    if (rc == CBQ_OK)
        rc = snapshot_take(&trained, net, err);
    if (rc == CBQ_OK && (rc = cbq_csv_writer_open(&w, a->out, sanity_columns, N_SANITY_COLUMNS, err)) == CBQ_OK)
        opened = 1;
    cbq_progress prog;
    cbq_progress_begin(&prog, "sanity", a->n_methods * n_vols * cbq_randomise_n_steps(net),
                       a->common.quiet || rc != CBQ_OK);
    for (size_t m = 0; m < a->n_methods && rc == CBQ_OK; m++)
        rc = run_method(a, net, &trained, permuted, a->methods[m], vols, n_vols, &w, &prog, err);
    cbq_progress_end(&prog);
    if (rc == CBQ_OK && opened && (rc = cbq_csv_writer_commit(&w, err)) == CBQ_OK)
        opened = 0;
    if (opened)
        cbq_csv_writer_abort(&w);
    for (size_t v = 0; v < n_vols; v++)
        free(vols[v].slices);
    free(vols);
    snapshot_free(&trained);
    cbq_net_free(permuted);
    cbq_net_free(net);
    return rc;
}

int cli_sanity(int argc, char **argv)
{
    sanity_args a;
    int rc = parse_args(&a, argc, argv);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    cbq_error err = {0};
    return run(&a, &err) == CBQ_OK ? CLI_EXIT_OK : cli_report(&err);
}
