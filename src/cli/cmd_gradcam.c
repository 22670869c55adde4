/* cmd_gradcam.c - `cbctiq gradcam`: the attribution map of one volume and
 * category as a NIfTI aligned with the CBCT (or a DICOM Parametric Map or
 * Secondary Capture series that references it), optional PNG overlays, and
 * the volume's Attribution Energy on stdout. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrib_cli.h"
#include "cbctiq/dist.h"
#include "cbctiq/model_file.h"
#include "cli.h"

const char cli_gradcam_usage[] =
    "usage: cbctiq gradcam --model DIR --category NAME VOLUME --out MAP.nii[.gz]\n"
    "                      [--png DIR] [--slices K,K,...] [options]\n"
    "       cbctiq gradcam ... VOLUME --out DIR --format dicom|dicom-sc\n"
    "                      [--dicom-template SERIES]\n"
    "\n"
    "Computes the raw attribution map of every axial slice of VOLUME (NIfTI file or\n"
    "DICOM series) for one output category and writes it as a float32 NIfTI on the\n"
    "volume's own grid (same affine: opens aligned with the CBCT in any viewer).\n"
    "Prints the volume's Attribution Energy (docs/attribution.md).\n"
    "Under mpirun the ranks share the volume's batches of slices; rank 0 gathers\n"
    "the maps and alone writes them, the same bytes (docs/cluster.md).\n"
    "  --model DIR        model directory (model.json + weights.safetensors)\n"
    "  --category NAME    one of the model's outputs\n"
    "  --out FILE         map NIfTI, or with --format dicom* a folder (written\n"
    "                     atomically)\n"
    "  --format F         nifti (default); dicom: a DICOM Parametric Map (float\n"
    "                     frames, DIR/map.dcm) that references the volume's DICOM\n"
    "                     series, same study, patient and frame of reference, a new\n"
    "                     series; dicom-sc: a Secondary Capture RGB series of the map\n"
    "                     over the CT (DIR/sc_NNNN.dcm; window and colour scale in\n"
    "                     each image's comments) for archives without Parametric Maps\n"
    "  --dicom-template SERIES  the DICOM series a DICOM map references when\n"
    "                     VOLUME is NIfTI (it must lie on the volume's grid)\n"
    "  --map-grid G       grid of the NIfTI: source (default: the CT's voxels),\n"
    "                     input (model input) or feature (target layer); the\n"
    "                     affine places every grid pixel where it lies in the CT\n"
    "  --png DIR          also write heat-map overlays of chosen slices as PNG\n"
    "  --slices LIST      source slice indices for --png (default: 5 evenly spaced)\n"
    "  --map-max X        top of the overlay colour scale in map units (default:\n"
    "                     the largest map value of the volume, shared by all PNGs)\n"
    ATTRIB_CLI_OPTIONS_USAGE
    "  --threads N        threads (default: all cores)\n"
    "  --quiet            no progress, no summary\n";

typedef struct {
    const char *model, *category, *volume, *out, *png, *slices, *map_grid, *dicom_template;
    attrib_out_format format;
    double map_max;
    cbq_attrib_options opt;
    size_t batch;
    cli_common common;
} gradcam_args;

static int parse_args(gradcam_args *a, int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},  {"category", required_argument, NULL, 'c'},
        {"out", required_argument, NULL, 'o'},    {"png", required_argument, NULL, 'p'},
        {"slices", required_argument, NULL, 's'}, {"map-max", required_argument, NULL, 'x'},
        {"threads", required_argument, NULL, 't'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},         {"map-grid", required_argument, NULL, 'g'},
        {"format", required_argument, NULL, 'f'}, {"dicom-template", required_argument, NULL, 'T'},
        ATTRIB_CLI_OPTIONS,
        {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof *a);
    cbq_attrib_options_default(&a->opt);
    cli_common_defaults(&a->common);
    a->batch = 16;
    a->map_grid = "source";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'c': a->category = optarg; break;
        case 'o': a->out = optarg; break;
        case 'p': a->png = optarg; break;
        case 's': a->slices = optarg; break;
        case 'g':
            if (strcmp(optarg, "source") && strcmp(optarg, "input") && strcmp(optarg, "feature"))
                return cli_usage_error("gradcam", "--map-grid expects source, input or feature, got '%s'",
                                       optarg);
            a->map_grid = optarg;
            break;
        case 'f':
            if (!attrib_out_format_parse(optarg, &a->format))
                return cli_usage_error("gradcam", "--format expects nifti, dicom or dicom-sc, got '%s'",
                                       optarg);
            break;
        case 'T': a->dicom_template = optarg; break;
        case 'x':
            if (!cli_parse_double("gradcam", "--map-max", optarg, 0, 1e30, &a->map_max))
                return CLI_EXIT_USAGE;
            break;
        case 't':
            if (!cli_parse_threads("gradcam", optarg, &a->common.threads))
                return CLI_EXIT_USAGE;
            break;
        case 'q': a->common.quiet = 1; break;
        case 'h': cli_usage_print(stdout, cli_gradcam_usage); return -1;
        case '?': return cli_usage_error("gradcam", "unknown option");
        default:
            if (!attrib_cli_option("gradcam", c, optarg, &a->opt, &a->batch))
                return CLI_EXIT_USAGE;
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("gradcam", "expects exactly one VOLUME");
    a->volume = argv[optind];
    if (!a->model || !a->category || !a->out)
        return cli_usage_error("gradcam", "--model, --category and --out are required");
    if (a->format != ATTRIB_OUT_NIFTI && strcmp(a->map_grid, "source") != 0)
        return cli_usage_error("gradcam", "--format %s writes the map on the DICOM series' own grid; "
                               "--map-grid %s cannot be used with it",
                               a->format == ATTRIB_OUT_DICOM ? "dicom" : "dicom-sc", a->map_grid);
    if (a->dicom_template && a->format == ATTRIB_OUT_NIFTI)
        return cli_usage_error("gradcam", "--dicom-template needs --format dicom or dicom-sc");
    return CLI_EXIT_OK;
}

static long find_output(const cbq_model_spec *spec, const char *name, cbq_error *err)
{
    char list[512] = "";
    for (size_t c = 0; c < spec->n_outputs; c++) {
        if (strcmp(spec->outputs[c], name) == 0)
            return (long)c;
        strncat(list, c ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, spec->outputs[c], sizeof list - strlen(list) - 1);
    }
    CBQ_FAIL(err, CBQ_ERR_ARG, "unknown category '%s'; the model's outputs are: %s", name, list);
    return -1;
}

static void print_summary(const gradcam_args *a, const cbq_cam *cam, const cbq_ae *ae)
{
    printf("%s: category %s, method %s, layer %s, %zu slices\n", a->volume, a->category,
           cbq_cam_method_name(a->opt.method), cbq_cam_target_name(cam), ae->n_slices);
    printf("  ae %.9g  ae_feature %.9g  ae_per_slice %.9g  pred %.9g\n", ae->ae, ae->ae_feature,
           cbq_ae_per_slice(ae), cbq_ae_pred(ae));
    if (!cbq_cam_method_is_pixel(a->opt.method))
        printf("  pre-ReLU ae_feature %.9g  prediction part %.9g  clipped remainder %.9g%s\n",
               ae->ae_feature_pre, ae->pred_part, cbq_ae_clipped(ae),
               cbq_cam_identity_holds(cam) && a->opt.method == CBQ_CAM_GRADCAM
                   ? "  (identity: pre-ReLU ae_feature = prediction part)" : "");
}

/* The slices [*z0, *z1) a rank attributes: a contiguous block of whole
 * batches, so that every batch holds the slices it holds in one process and
 * each slice's map has one process's bits. */
static void rank_slices(const cbq_dist *d, size_t n, size_t batch, size_t *z0, size_t *z1)
{
    size_t b0, b1;
    cbq_dist_block(d, (n + batch - 1) / batch, &b0, &b1);
    *z0 = b0 * batch < n ? b0 * batch : n;
    *z1 = b1 * batch < n ? b1 * batch : n;
}

/* Rank 0 receives every rank's slices [z0, z1) of maps [n, per_slice] into
 * its own buffer (the blocks in rank order are the slices in order). */
static int gather_slices(const cbq_dist *d, float *maps, size_t per_slice, size_t z0, size_t z1,
                         cbq_error *err)
{
    if (d->size == 1)
        return CBQ_OK;
    void *all = NULL;
    size_t all_len = 0;
    CBQ_TRY(cbq_dist_gather_bytes(d, maps + z0 * per_slice, (z1 - z0) * per_slice * sizeof *maps,
                                  &all, &all_len, err));
    if (d->rank == 0)
        memcpy(maps, all, all_len);
    free(all);
    return CBQ_OK;
}

/* A rank's share of one output's AE as rank 0 needs it: the block's three
 * feature-grid sums, then per slice the input-grid sum and the prediction. */
enum { BLOCK_SUMS = 3 };

static double *pack_block(const cbq_ae *block, size_t n, size_t *len)
{
    *len = BLOCK_SUMS + 2 * n;
    double *v = malloc(*len * sizeof *v);
    if (!v)
        return NULL;
    v[0] = n ? block->ae_feature : 0.0;
    v[1] = n ? block->ae_feature_pre : 0.0;
    v[2] = n ? block->ae_feature_post : 0.0;
    for (size_t s = 0; s < n; s++) {
        v[BLOCK_SUMS + 2 * s] = block->profile[s];
        v[BLOCK_SUMS + 2 * s + 1] = block->slice_pred[s];
    }
    return v;
}

/* The volume's AE (*whole, scalars only) from every rank's block, on rank
 * 0: the per-slice values are added in slice order from zero, exactly as
 * one process adds them, so the AE and the prediction have its bits; the
 * feature-grid sums, kept per block only, are added in rank order (one
 * process's values to rounding; the same with one rank). */
static int gather_ae(const cbq_dist *d, const cbq_cam *cam, int sign, size_t c, size_t nz,
                     size_t batch, const cbq_ae *block, cbq_ae *whole, cbq_error *err)
{
    size_t z0, z1, len;
    rank_slices(d, nz, batch, &z0, &z1);
    double *mine = pack_block(block, z1 - z0, &len);
    if (!mine)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    void *all = NULL;
    size_t all_len = 0;
    int rc = cbq_dist_gather_bytes(d, mine, len * sizeof *mine, &all, &all_len, err);
    free(mine);
    if (rc != CBQ_OK || d->rank != 0)
        return rc;
    memset(whole, 0, sizeof *whole);
    whole->n_slices = nz;
    double bias = cbq_cam_output_bias(cam, c);
    const double *v = all;
    for (int r = 0; r < d->size; r++) {
        cbq_dist other = {.rank = r, .size = d->size};
        rank_slices(&other, nz, batch, &z0, &z1);
        whole->ae_feature += v[0];
        whole->ae_feature_pre += v[1];
        whole->ae_feature_post += v[2];
        for (size_t s = 0; s < z1 - z0; s++) {
            double y = v[BLOCK_SUMS + 2 * s + 1];
            whole->ae += v[BLOCK_SUMS + 2 * s];
            whole->pred_sum += y;
            whole->pred_part += sign * (y - bias);
        }
        v += BLOCK_SUMS + 2 * (z1 - z0);
    }
    free(all);
    return CBQ_OK;
}

int cli_gradcam(int argc, char **argv)
{
    gradcam_args a;
    int rc = parse_args(&a, argc, argv);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    cbq_error err = {0};
    cbq_net *net = NULL;
    cbq_cam *cam = NULL;
    cbq_model_input in = {0};
    cbq_dicom_grid *dicom_grid = NULL;
    float *maps = NULL, *fmaps = NULL;
    cbq_ae ae[CBQ_MAX_OUTPUTS], whole = {0};
    int have_ae = 0;
    if (cbq_model_load(a.model, &net, a.batch, &err) != CBQ_OK)
        goto fail;
    cbq_net_set_threads(net, a.common.threads);
    long cat = find_output(cbq_net_spec(net), a.category, &err);
    if (cat < 0)
        goto fail;
    if (cbq_cam_create(&cam, net, a.batch, &a.opt, &err) != CBQ_OK)
        goto fail;
    size_t h, w;
    cbq_cam_feature_shape(cam, &h, &w);
    cbq_model_input_options every_slice = {.min_h = h ? h : 1, .min_w = w ? w : 1};
    if (cbq_model_input_load_path(&in, a.volume, &cbq_net_spec(net)->input, &every_slice, &err) !=
        CBQ_OK)
        goto fail;
    if (a.png && attrib_png_check_slices(&in, a.slices, &err) != CBQ_OK)
        goto fail;
    if (a.format != ATTRIB_OUT_NIFTI &&
        attrib_dicom_open(&dicom_grid, &in, a.volume, a.dicom_template, &err) != CBQ_OK)
        goto fail;
    maps = malloc(in.n * in.H * in.W * sizeof *maps);
    if (!maps) {
        CBQ_FAIL(&err, CBQ_ERR_NOMEM, "out of memory for the map of %zu slices", in.n);
        goto fail;
    }
    int feature_out = strcmp(a.map_grid, "feature") == 0;
    if (feature_out && h * w == 0) {
        CBQ_FAIL(&err, CBQ_ERR_ARG, "--map-grid feature: method %s has no target-layer grid",
                 cbq_cam_method_name(a.opt.method));
        goto fail;
    }
    if (feature_out && !(fmaps = malloc(in.n * h * w * sizeof *fmaps))) {
        CBQ_FAIL(&err, CBQ_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* Under mpirun each rank attributes its block of whole batches; rank 0
     * gathers the maps and the AE and alone writes (docs/cluster.md). */
    cbq_dist dist;
    cbq_dist_current(&dist);
    size_t z0, z1;
    rank_slices(&dist, in.n, a.batch, &z0, &z1);
    float *map_ptrs[CBQ_MAX_OUTPUTS] = {0}, *fmap_ptrs[CBQ_MAX_OUTPUTS] = {0};
    map_ptrs[cat] = maps + z0 * in.H * in.W;
    fmap_ptrs[cat] = fmaps ? fmaps + z0 * h * w : NULL;
    cbq_progress prog;
    cbq_progress_begin(&prog, "gradcam", z1 - z0, a.common.quiet || dist.rank != 0);
    rc = z1 > z0 ? cbq_attrib_volume(cam, in.x + z0 * in.H * in.W, z1 - z0, NULL, ae, map_ptrs,
                                     fmap_ptrs, &prog, &err)
                 : CBQ_OK;
    cbq_progress_end(&prog);
    if (rc != CBQ_OK) {
        cbq_error_prefix(&err, "%s: ", a.volume);
        goto fail;
    }
    have_ae = z1 > z0;
    if (gather_slices(&dist, maps, in.H * in.W, z0, z1, &err) != CBQ_OK ||
        (fmaps && gather_slices(&dist, fmaps, h * w, z0, z1, &err) != CBQ_OK) ||
        gather_ae(&dist, cam, a.opt.sign, (size_t)cat, in.n, a.batch, &ae[cat], &whole, &err) !=
            CBQ_OK)
        goto fail;
    if (dist.rank != 0) {
        rc = CLI_EXIT_OK;
        goto done;
    }
    cbq_dicom_map_label label = {.method = cbq_cam_method_name(a.opt.method), .category = a.category,
                                 .target_layer = cbq_cam_target_name(cam)};
    if (dicom_grid)
        rc = attrib_dicom_write(&in, maps, dicom_grid, a.format, a.map_max, &label, a.out, &err);
    else if (feature_out)
        rc = attrib_grid_map_write(&in, fmaps, h, w, a.out, &err);
    else if (strcmp(a.map_grid, "input") == 0)
        rc = attrib_grid_map_write(&in, maps, in.H, in.W, a.out, &err);
    else
        rc = attrib_map_write(&in, maps, a.out, &err);
    if (rc != CBQ_OK)
        goto fail;
    if (a.png) {
        char title[256];
        snprintf(title, sizeof title, "%s %s (%s, %s)", a.volume, a.category,
                 cbq_cam_method_name(a.opt.method), cbq_cam_target_name(cam));
        if (attrib_png_write(&in, maps, a.png, a.slices, a.map_max, title, &err) != CBQ_OK)
            goto fail;
    }
    if (!a.common.quiet)
        print_summary(&a, cam, &whole);
    rc = CLI_EXIT_OK;
    goto done;
fail:
    rc = cli_report(&err);
done:
    if (have_ae)
        for (size_t c = 0; c < cbq_cam_n_outputs(cam); c++)
            cbq_ae_free(&ae[c]);
    free(maps);
    free(fmaps);
    cbq_dicom_grid_free(dicom_grid);
    cbq_model_input_free(&in);
    cbq_cam_free(cam);
    cbq_net_free(net);
    return rc;
}
