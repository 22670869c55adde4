/* cmd_ae.c - `cbctiq ae`: Attribution Energy of every volume of a cohort
 * and every category, with the identity's parts and the options used,
 * written as ae.csv (docs/formats.md, docs/attribution.md). The cohort, the
 * model input and ae.csv are the data layer's (cohort.h, model_input.h,
 * ae_table.h), the same the study's attrib stage uses, so that the two
 * write the same file for the same model, cohort and slices. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrib_cli.h"
#include "cbctiq/ae_table.h"
#include "cbctiq/atomic_file.h"
#include "cbctiq/cohort.h"
#include "cbctiq/csv.h"
#include "cbctiq/mem_limit.h"
#include "cbctiq/model_file.h"
#include "cbctiq/model_input.h"
#include "cbctiq/pointing.h"
#include "cbctiq/safe_name.h"
#include "cli.h"
#include "cbctiq/dist_parts.h"

const char cli_ae_usage[] =
    "usage: cbctiq ae --model DIR --cohort cohort.csv --out ae.csv [--split NAME]\n"
    "                 [--slices all|structures] [--slice-step N] [--profile profile.csv]\n"
    "                 [--perturbation blur|road|none] [--curve-slices N] [--seed N]\n"
    "                 [--curves curves.csv] [--maps DIR] [options]\n"
    "\n"
    "Attribution Energy (AE: the sum of the raw maps over the used axial slices) of\n"
    "every volume in the cohort for every output category, one forward pass per\n"
    "batch of slices and one partial backward per category. With a `mask` column\n"
    "(label NIfTI + labels.json) or an `rtstruct` column (DICOM RTSTRUCT) also the\n"
    "energy inside each category's structure, the share of the map's energy there\n"
    "(energy_in_structure) and whether the map's maximum lies there (pointing_hit).\n"
    "Deletion and insertion curves (20 steps, in the map's order and in a random\n"
    "order) give deletion_auc, insertion_auc and their random twins. With the\n"
    "study's model, cohort, train.slices, seed and attrib options it writes the\n"
    "study's attrib/ae.csv.\n"
    "  --model DIR        model directory\n"
    "  --cohort FILE      volume_id, path[, mask | rtstruct][, split]; paths relative\n"
    "                     to its folder\n"
    "  --split NAME       only rows with this split: train, val, test or all (default)\n"
    "  --slices WHICH     axial slices used: all (default), or structures: those where\n"
    "                     the mask has a label (RTSTRUCT: a structure), as the study's\n"
    "                     train.slices\n"
    "  --slice-step N     every N-th of those slices (default 1)\n"
    "  --out FILE         ae.csv (written atomically)\n"
    "  --profile FILE     per-slice AE profile along z: volume_id, category, slice, ae, pred\n"
    "  --perturbation B   baseline replacing the pixels of the deletion curves: blur\n"
    "                     (default: the slice's Gaussian blur), road (noisy linear\n"
    "                     imputation) or none (no curves)\n"
    "  --curve-slices N   evenly spaced slices per volume for the curves (default 1,\n"
    "                     0 = all)\n"
    "  --seed N           seed of the random pixel order (default 1)\n"
    "  --curves FILE      the curves, one row per step (docs/formats.md, curves.csv)\n"
    "  --maps DIR         the maps as DIR/VOLUME_CATEGORY.nii.gz on each CBCT's grid\n"
    ATTRIB_CLI_OPTIONS_USAGE
    "  --threads N        threads (default: all cores)\n"
    "  --quiet            no progress bar\n";

static const char *const profile_columns[] = {"volume_id", "category", "slice", "ae", "pred"};

typedef struct {
    const char *model, *cohort, *split, *out, *profile, *curves, *maps;
    cbq_model_input_options input;
    cbq_ae_volume_options rows; /* the curves' baseline, seed and slices */
    cbq_attrib_options opt;
    size_t batch;
    cli_common common;
    cbq_dist dist; /* the ranks sharing the volumes (one without mpirun) */
} ae_args;

static int parse_args(ae_args *a, int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},   {"cohort", required_argument, NULL, 'c'},
        {"split", required_argument, NULL, 's'},   {"out", required_argument, NULL, 'o'},
        {"profile", required_argument, NULL, 'p'}, {"threads", required_argument, NULL, 't'},
        {"quiet", no_argument, NULL, 'q'},         {"help", no_argument, NULL, 'h'},
        {"slices", required_argument, NULL, 'S'},  {"slice-step", required_argument, NULL, 'k'},
        {"perturbation", required_argument, NULL, 'P'},
        {"curve-slices", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 'r'},    {"curves", required_argument, NULL, 'C'},
        {"maps", required_argument, NULL, 'M'},    ATTRIB_CLI_OPTIONS,
        {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof *a);
    cbq_attrib_options_default(&a->opt);
    cli_common_defaults(&a->common);
    a->batch = 16;
    a->input.step = 1;
    cbq_ae_volume_options_default(&a->rows);
    int c;
    uint64_t step, count;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'S':
            if (!cbq_slice_selection_parse(optarg, &a->input.selection))
                return cli_usage_error("ae", "--slices expects all or structures, got '%s'", optarg);
            break;
        case 'k':
            if (!cli_parse_u64("ae", "--slice-step", optarg, 1, 1000, &step))
                return CLI_EXIT_USAGE;
            a->input.step = (size_t)step;
            break;
        case 'P':
            if (!cbq_perturb_parse(optarg, &a->rows.perturbation))
                return cli_usage_error("ae", "--perturbation expects blur, road or none, got '%s'",
                                       optarg);
            break;
        case 'n':
            if (!cli_parse_u64("ae", "--curve-slices", optarg, 0, 100000, &count))
                return CLI_EXIT_USAGE;
            a->rows.curve_slices = (size_t)count;
            break;
        case 'r':
            if (!cli_parse_u64("ae", "--seed", optarg, 0, UINT64_MAX, &a->rows.seed))
                return CLI_EXIT_USAGE;
            break;
        case 'C': a->curves = optarg; break;
        case 'M': a->maps = optarg; break;
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
    a->rows.batch = a->batch;
    if (!a->model || !a->cohort || !a->out)
        return cli_usage_error("ae", "--model, --cohort and --out are required");
    cbq_split split;
    if (a->split && strcmp(a->split, "all") != 0 && (!cbq_split_parse(a->split, &split) || !split))
        return cli_usage_error("ae", "--split expects train, val, test or all, got '%s'", a->split);
    return CLI_EXIT_OK;
}

typedef struct {
    cbq_ae_writer ae;
    cbq_csv_writer profile, curves;
    int has_profile, profile_open, curves_open;
    const ae_args *args;
    /* this rank's files (dist_parts.h) */
    char ae_part[4096], profile_part[4096], curves_part[4096];
} writers;

static int write_profile(writers *w, const char *volume_id, const cbq_cam *cam,
                         const cbq_model_input *in, const cbq_ae *ae, cbq_error *err)
{
    for (size_t c = 0; c < cbq_cam_n_outputs(cam); c++)
        for (size_t k = 0; k < ae[c].n_slices; k++) {
            cbq_csv_put_str(&w->profile, volume_id);
            cbq_csv_put_str(&w->profile, cbq_cam_category_name(cam, c));
            cbq_csv_put_int(&w->profile, (long long)cbq_model_input_source_slice(in, in->ks[k]));
            cbq_csv_put_double(&w->profile, ae[c].profile[k]);
            cbq_csv_put_double(&w->profile, ae[c].slice_pred[k]);
            CBQ_TRY(cbq_csv_end_row(&w->profile, err));
        }
    return CBQ_OK;
}

/* DIR/VOLUME_CATEGORY.nii.gz for every output: the maps on the CBCT's grid. */
static int write_maps(const char *dir, const char *volume_id, const cbq_cam *cam,
                      cbq_model_input *in, float *const *maps, cbq_error *err)
{
    char why[128], path[4096];
    if (!cbq_name_ok(volume_id, why, sizeof why))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "volume_id '%s' cannot name a map file: %s", volume_id,
                        why);
    CBQ_TRY(cbq_mkdir_p(dir, err));
    for (size_t c = 0; c < cbq_cam_n_outputs(cam); c++) {
        int len = snprintf(path, sizeof path, "%s/%s_%s.nii.gz", dir, volume_id,
                           cbq_cam_category_name(cam, c));
        if (len < 0 || (size_t)len >= sizeof path)
            return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: map path too long", dir);
        CBQ_TRY(cbq_model_input_write_map(in, maps[c], path, err));
    }
    return CBQ_OK;
}

/* The rows of the volume with where each map points and its curves (the
 * data layer's, as Python's attribution_energy), its profile and maps. */
static int write_volume(cbq_cam *cam, cbq_net *net, const char *volume_id, cbq_model_input *in,
                        float *const *maps, const cbq_ae *ae, writers *w, cbq_error *err)
{
    const ae_args *a = w->args;
    CBQ_TRY(cbq_ae_writer_put_volume(&w->ae, w->curves_open ? &w->curves : NULL, volume_id, cam,
                                     net, in, (const float *const *)maps, ae, &a->rows, err));
    if (w->has_profile)
        CBQ_TRY(write_profile(w, volume_id, cam, in, ae, err));
    return a->maps ? write_maps(a->maps, volume_id, cam, in, maps, err) : CBQ_OK;
}

static int process_volume(cbq_cam *cam, cbq_net *net, const cbq_cohort *cohort,
                          const cbq_cohort_volume *v, const cbq_model_input_options *opt,
                          writers *w, cbq_error *err)
{
    size_t h, wd, no = cbq_cam_n_outputs(cam);
    cbq_cam_feature_shape(cam, &h, &wd);
    cbq_model_input_options o = *opt;
    o.min_h = h ? h : 1;
    o.min_w = wd ? wd : 1;
    o.with_structures = 1;
    cbq_model_input in;
    CBQ_TRY(cbq_model_input_load(&in, v, cohort, &cbq_cam_spec(cam)->input, &o, err));
    float *maps[CBQ_MAX_OUTPUTS] = {0};
    cbq_ae ae[CBQ_MAX_OUTPUTS];
    int rc = CBQ_OK;
    for (size_t c = 0; c < no && rc == CBQ_OK; c++)
        if (!(maps[c] = malloc(in.n * in.H * in.W * sizeof **maps)))
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for the maps of %zu slices", in.n);
        else
            cbq_mem_advise_huge(maps[c], in.n * in.H * in.W * sizeof **maps);
    if (rc == CBQ_OK)
        rc = cbq_model_input_attrib(cam, &in, ae, maps, err);
    if (rc == CBQ_OK) {
        rc = write_volume(cam, net, v->id, &in, maps, ae, w, err);
        for (size_t c = 0; c < no; c++)
            cbq_ae_free(&ae[c]);
    }
    for (size_t c = 0; c < no; c++)
        free(maps[c]);
    cbq_model_input_free(&in);
    return rc;
}

static int open_outputs(const ae_args *a, writers *w, cbq_error *err)
{
    if (!cbq_dist_part_path(&a->dist, a->out, w->ae_part, sizeof w->ae_part))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: path too long", a->out);
    CBQ_TRY(cbq_ae_writer_open(&w->ae, w->ae_part, err));
    if (a->profile) {
        if (!cbq_dist_part_path(&a->dist, a->profile, w->profile_part, sizeof w->profile_part))
            return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: path too long", a->profile);
        CBQ_TRY(cbq_csv_writer_open(&w->profile, w->profile_part, profile_columns, 5, err));
        w->profile_open = 1;
    }
    if (a->curves) {
        if (!cbq_dist_part_path(&a->dist, a->curves, w->curves_part, sizeof w->curves_part))
            return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: path too long", a->curves);
        CBQ_TRY(cbq_curves_writer_open(&w->curves, w->curves_part, err));
        w->curves_open = 1;
    }
    return CBQ_OK;
}

static int commit_outputs(const ae_args *a, writers *w, cbq_error *err)
{
    CBQ_TRY(cbq_ae_writer_commit(&w->ae, err));
    if (w->profile_open)
        CBQ_TRY(cbq_csv_writer_commit(&w->profile, err));
    w->profile_open = 0;
    if (w->curves_open)
        CBQ_TRY(cbq_csv_writer_commit(&w->curves, err));
    w->curves_open = 0;
    CBQ_TRY(cbq_dist_join_parts(&a->dist, a->out, err));
    if (a->profile)
        CBQ_TRY(cbq_dist_join_parts(&a->dist, a->profile, err));
    if (a->curves)
        CBQ_TRY(cbq_dist_join_parts(&a->dist, a->curves, err));
    return CBQ_OK;
}

static int attrib_cohort(const ae_args *a, cbq_cam *cam, cbq_net *net, const cbq_cohort *cohort,
                         writers *w, cbq_error *err)
{
    size_t todo, begin, end, nth = 0;
    CBQ_TRY(cbq_cohort_count_split(cohort, a->split, &todo, err));
    CBQ_TRY(open_outputs(a, w, err));
    /* This rank's block of the volumes in the split; rank 0 shows its own. */
    cbq_dist_block(&a->dist, todo, &begin, &end);
    cbq_progress prog;
    cbq_progress_begin(&prog, "ae", end - begin, a->common.quiet || a->dist.rank != 0);
    int rc = CBQ_OK;
    for (size_t r = 0; r < cohort->n && rc == CBQ_OK; r++) {
        const cbq_cohort_volume *v = &cohort->v[r];
        if (!cbq_cohort_in_split(cohort, r, a->split))
            continue;
        if (nth++ < begin || nth > end)
            continue;
        rc = process_volume(cam, net, cohort, v, &a->input, w, err);
        if (rc != CBQ_OK)
            cbq_error_prefix(err, "%s:%zu (volume %s): ", a->cohort, v->line, v->id);
        cbq_progress_step(&prog, 1);
    }
    cbq_progress_end(&prog);
    return rc == CBQ_OK ? commit_outputs(a, w, err) : rc;
}

static int run(const ae_args *a, cbq_error *err)
{
    cbq_cohort cohort;
    CBQ_TRY(cbq_cohort_read(&cohort, a->cohort, err));
    cbq_net *net = NULL;
    cbq_cam *cam = NULL;
    writers w = {.has_profile = a->profile != NULL, .args = a};
    int rc = cbq_model_load(a->model, &net, a->batch, err);
    if (rc == CBQ_OK) {
        cbq_net_set_threads(net, a->common.threads);
        rc = cbq_cam_create(&cam, net, a->batch, &a->opt, err);
    }
    if (rc == CBQ_OK)
        rc = attrib_cohort(a, cam, net, &cohort, &w, err);
    if (rc != CBQ_OK) {
        cbq_ae_writer_abort(&w.ae);
        if (w.profile_open)
            cbq_csv_writer_abort(&w.profile);
        if (w.curves_open)
            cbq_csv_writer_abort(&w.curves);
    }
    cbq_cam_free(cam);
    cbq_net_free(net);
    cbq_cohort_free(&cohort);
    return rc;
}

int cli_ae(int argc, char **argv)
{
    ae_args a;
    int rc = parse_args(&a, argc, argv);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    cbq_dist_current(&a.dist);
    cbq_error err = {0};
    return run(&a, &err) == CBQ_OK ? CLI_EXIT_OK : cli_report(&err);
}
