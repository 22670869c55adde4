/* cmd_ae.c - `cbctiq ae`: Attribution Energy of every volume of a cohort
 * and every category, with the identity's parts and the options used,
 * written as ae.csv (docs/formats.md, docs/attribution.md). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrib_cli.h"
#include "cbctiq/csv.h"
#include "cbctiq/model_file.h"
#include "cli.h"

const char cli_ae_usage[] =
    "usage: cbctiq ae --model DIR --cohort cohort.csv --out ae.csv [--split NAME]\n"
    "                 [--profile profile.csv] [options]\n"
    "\n"
    "Attribution Energy (AE: the sum of the raw maps over all axial slices) of every\n"
    "volume in the cohort for every output category, one forward pass per batch of\n"
    "slices and one partial backward per category. With a `mask` column (label\n"
    "NIfTI + labels.json) or an `rtstruct` column (DICOM RTSTRUCT) also the energy\n"
    "inside each category's structure.\n"
    "  --model DIR        model directory\n"
    "  --cohort FILE      volume_id, path[, mask | rtstruct][, split]; paths relative\n"
    "                     to its folder\n"
    "  --split NAME       only rows with this split (e.g. test)\n"
    "  --out FILE         ae.csv (written atomically)\n"
    "  --profile FILE     per-slice AE profile along z: volume_id, category, slice, ae, pred\n"
    ATTRIB_CLI_OPTIONS_USAGE
    "  --threads N        threads (default: all cores)\n"
    "  --quiet            no progress bar\n";

/* ae.csv columns: the formats.md contract first, then the identity's parts
 * and the options, so that every number says how it was made. */
static const char *const ae_columns[] = {
    "volume_id", "category", "method", "ae", "ae_feature", "ae_per_slice", "n_slices", "pred",
    "ae_in_structure", "structure_fraction", "ae_selected", "ae_feature_pre", "ae_feature_post",
    "pred_part", "clipped", "bias", "identity", "layer", "relu", "grid", "sign", "aggregate"};
enum { N_AE_COLUMNS = sizeof ae_columns / sizeof ae_columns[0] };

static const char *const profile_columns[] = {"volume_id", "category", "slice", "ae", "pred"};

typedef struct {
    const char *model, *cohort, *split, *out, *profile;
    cbq_attrib_options opt;
    size_t batch;
    cli_common common;
} ae_args;

static int parse_args(ae_args *a, int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},   {"cohort", required_argument, NULL, 'c'},
        {"split", required_argument, NULL, 's'},   {"out", required_argument, NULL, 'o'},
        {"profile", required_argument, NULL, 'p'}, {"threads", required_argument, NULL, 't'},
        {"quiet", no_argument, NULL, 'q'},         {"help", no_argument, NULL, 'h'},
        ATTRIB_CLI_OPTIONS,                        {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof *a);
    cbq_attrib_options_default(&a->opt);
    cli_common_defaults(&a->common);
    a->batch = 16;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'c': a->cohort = optarg; break;
        case 's': a->split = optarg; break;
        case 'o': a->out = optarg; break;
        case 'p': a->profile = optarg; break;
        case 't':
            if (!cli_parse_threads("ae", optarg, &a->common.threads))
                return CLI_EXIT_USAGE;
            break;
        case 'q': a->common.quiet = 1; break;
        case 'h': cli_usage_print(stdout, cli_ae_usage); return -1;
        case '?': return cli_usage_error("ae", "unknown option");
        default:
            if (!attrib_cli_option("ae", c, optarg, &a->opt, &a->batch))
                return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("ae", "unexpected argument '%s'", argv[optind]);
    if (!a->model || !a->cohort || !a->out)
        return cli_usage_error("ae", "--model, --cohort and --out are required");
    return CLI_EXIT_OK;
}

/* `rel` relative to the folder of `csv_path` unless absolute. */
static void resolve_path(char *out, size_t cap, const char *csv_path, const char *rel)
{
    const char *slash = strrchr(csv_path, '/');
    if (rel[0] == '/' || !slash)
        snprintf(out, cap, "%s", rel);
    else
        snprintf(out, cap, "%.*s%s", (int)(slash - csv_path + 1), csv_path, rel);
}

typedef struct {
    cbq_csv_writer ae, profile;
    int has_profile;
} writers;

static int write_rows(writers *w, const char *volume_id, const cbq_cam *cam, const cbq_ae *ae,
                      const attrib_input *in, const float *const *preds_per_slice, cbq_error *err)
{
    const cbq_attrib_options *o = cbq_cam_options(cam);
    for (size_t c = 0; c < cbq_cam_n_outputs(cam); c++) {
        const cbq_ae *e = &ae[c];
        cbq_csv_writer *cw = &w->ae;
        cbq_csv_put_str(cw, volume_id);
        cbq_csv_put_str(cw, cbq_cam_category_name(cam, c));
        cbq_csv_put_str(cw, cbq_cam_method_name(o->method));
        cbq_csv_put_double(cw, e->ae);
        cbq_csv_put_double(cw, e->ae_feature);
        cbq_csv_put_double(cw, cbq_ae_per_slice(e));
        cbq_csv_put_int(cw, (long long)e->n_slices);
        cbq_csv_put_double(cw, cbq_ae_pred(e));
        cbq_csv_put_double(cw, e->has_structure ? e->ae_in_structure : NAN);
        cbq_csv_put_double(cw, cbq_ae_structure_fraction(e));
        cbq_csv_put_double(cw, cbq_ae_selected(e, o));
        cbq_csv_put_double(cw, e->ae_feature_pre);
        cbq_csv_put_double(cw, e->ae_feature_post);
        cbq_csv_put_double(cw, e->pred_part);
        cbq_csv_put_double(cw, cbq_ae_clipped(e));
        cbq_csv_put_double(cw, cbq_cam_output_bias(cam, c));
        cbq_csv_put_int(cw, cbq_cam_identity_holds(cam) && o->method == CBQ_CAM_GRADCAM);
        cbq_csv_put_str(cw, cbq_cam_target_name(cam));
        cbq_csv_put_str(cw, o->relu ? "after" : "before");
        cbq_csv_put_str(cw, cbq_grid_name(o->grid));
        cbq_csv_put_str(cw, o->sign > 0 ? "pos" : "neg");
        cbq_csv_put_str(cw, cbq_aggregate_name(o->aggregate));
        CBQ_TRY(cbq_csv_end_row(cw, err));
        if (!w->has_profile)
            continue;
        for (size_t k = 0; k < e->n_slices; k++) {
            cbq_csv_put_str(&w->profile, volume_id);
            cbq_csv_put_str(&w->profile, cbq_cam_category_name(cam, c));
            cbq_csv_put_int(&w->profile, (long long)attrib_input_source_slice(in, k));
            cbq_csv_put_double(&w->profile, e->profile[k]);
            cbq_csv_put_double(&w->profile, preds_per_slice[c][k]);
            CBQ_TRY(cbq_csv_end_row(&w->profile, err));
        }
    }
    return CBQ_OK;
}

static int process_volume(cbq_cam *cam, const char *volume_id, const char *path,
                          const char *mask_path, const char *rtstruct_path, writers *w, cbq_error *err)
{
    size_t h, wd;
    cbq_cam_feature_shape(cam, &h, &wd);
    attrib_input in;
    CBQ_TRY(attrib_input_load(&in, path, cbq_cam_spec(cam), h ? h : 1, wd ? wd : 1, err));
    float *weights[CBQ_MAX_OUTPUTS] = {0};
    float *preds[CBQ_MAX_OUTPUTS] = {0};
    cbq_ae ae[CBQ_MAX_OUTPUTS];
    size_t no = cbq_cam_n_outputs(cam);
    int rc = mask_path || rtstruct_path
                 ? attrib_structure_weights(&in, mask_path, rtstruct_path, cbq_cam_spec(cam), weights, err)
                 : CBQ_OK;
    if (rc == CBQ_OK)
        rc = cbq_attrib_volume(cam, in.slices, in.nz, (const float *const *)weights, ae, NULL, NULL,
                               NULL, err);
    if (rc == CBQ_OK) {
        for (size_t c = 0; c < no; c++)
            preds[c] = ae[c].slice_pred;
        rc = write_rows(w, volume_id, cam, ae, &in, (const float *const *)preds, err);
        for (size_t c = 0; c < no; c++)
            cbq_ae_free(&ae[c]);
    }
    for (size_t c = 0; c < no; c++)
        free(weights[c]);
    attrib_input_free(&in);
    return rc;
}

static int run(const ae_args *a, cbq_error *err)
{
    cbq_csv cohort;
    CBQ_TRY(cbq_csv_read(&cohort, a->cohort, err));
    size_t col_id, col_path;
    long col_mask = cbq_csv_col(&cohort, "mask"), col_split = cbq_csv_col(&cohort, "split");
    long col_rts = cbq_csv_col(&cohort, "rtstruct");
    int rc = cbq_csv_require_col(&cohort, "volume_id", &col_id, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&cohort, "path", &col_path, err);
    if (rc == CBQ_OK && a->split && col_split < 0)
        rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: --split %s given but the file has no 'split' column",
                      a->cohort, a->split);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_names(&cohort, col_id, "volume id", err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_unique(&cohort, col_id, "volume id", err);
    cbq_net *net = NULL;
    cbq_cam *cam = NULL;
    writers w = {.has_profile = a->profile != NULL};
    int opened_ae = 0, opened_profile = 0;
    if (rc == CBQ_OK)
        rc = cbq_model_load(a->model, &net, a->batch, err);
    if (rc == CBQ_OK) {
        cbq_net_set_threads(net, a->common.threads);
        rc = cbq_cam_create(&cam, net, a->batch, &a->opt, err);
    }
    if (rc == CBQ_OK && (rc = cbq_csv_writer_open(&w.ae, a->out, ae_columns, N_AE_COLUMNS, err)) == CBQ_OK)
        opened_ae = 1;
    if (rc == CBQ_OK && a->profile &&
        (rc = cbq_csv_writer_open(&w.profile, a->profile, profile_columns, 5, err)) == CBQ_OK)
        opened_profile = 1;
    size_t todo = 0;
    for (size_t r = 0; r < cohort.n_rows; r++)
        todo += !a->split || strcmp(cbq_csv_cell(&cohort, r, (size_t)col_split), a->split) == 0;
    if (rc == CBQ_OK && todo == 0)
        rc = CBQ_FAIL(err, CBQ_ERR_ARG, "%s: no volumes%s%s", a->cohort,
                      a->split ? " with split " : "", a->split ? a->split : "");
    cbq_progress prog;
    cbq_progress_begin(&prog, "ae", todo, a->common.quiet || rc != CBQ_OK);
    for (size_t r = 0; r < cohort.n_rows && rc == CBQ_OK; r++) {
        if (a->split && strcmp(cbq_csv_cell(&cohort, r, (size_t)col_split), a->split) != 0)
            continue;
        char path[4096], mask[4096], rts[4096];
        resolve_path(path, sizeof path, a->cohort, cbq_csv_cell(&cohort, r, col_path));
        const char *mask_cell = col_mask >= 0 ? cbq_csv_cell(&cohort, r, (size_t)col_mask) : "";
        const char *rts_cell = col_rts >= 0 ? cbq_csv_cell(&cohort, r, (size_t)col_rts) : "";
        if (mask_cell[0])
            resolve_path(mask, sizeof mask, a->cohort, mask_cell);
        if (rts_cell[0] && !mask_cell[0])
            resolve_path(rts, sizeof rts, a->cohort, rts_cell);
        const char *id = cbq_csv_cell(&cohort, r, col_id);
        rc = process_volume(cam, id, path, mask_cell[0] ? mask : NULL,
                            rts_cell[0] && !mask_cell[0] ? rts : NULL, &w, err);
        if (rc != CBQ_OK)
            cbq_error_prefix(err, "%s:%zu (volume %s): ", a->cohort, cohort.line[r], id);
        cbq_progress_step(&prog, 1);
    }
    cbq_progress_end(&prog);
    if (rc == CBQ_OK && opened_ae && (rc = cbq_csv_writer_commit(&w.ae, err)) == CBQ_OK)
        opened_ae = 0;
    if (rc == CBQ_OK && opened_profile && (rc = cbq_csv_writer_commit(&w.profile, err)) == CBQ_OK)
        opened_profile = 0;
    if (opened_ae)
        cbq_csv_writer_abort(&w.ae);
    if (opened_profile)
        cbq_csv_writer_abort(&w.profile);
    cbq_cam_free(cam);
    cbq_net_free(net);
    cbq_csv_free(&cohort);
    return rc;
}

int cli_ae(int argc, char **argv)
{
    ae_args a;
    int rc = parse_args(&a, argc, argv);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    cbq_error err = {0};
    return run(&a, &err) == CBQ_OK ? CLI_EXIT_OK : cli_report(&err);
}
