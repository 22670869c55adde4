/* cmd_predict.c - `cbctiq predict`: a model's scores for volumes, streamed
 * slice batch by slice batch through the network (pred.csv, formats.md). */
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/csv.h"
#include "cbctiq/model_file.h"
#include "cbctiq/progress.h"
#include "cbctiq/study.h"
#include "cli.h"
#include "cbctiq/dist_parts.h"

const char cli_predict_usage[] =
    "usage: cbctiq predict --model MODEL --out pred.csv [--per-slice] [--batch N]\n"
    "                      [--threads N] [--quiet] VOLUME...\n"
    "\n"
    "Runs the model on every axial slice of each volume (NIfTI file or DICOM\n"
    "series folder) and writes pred.csv: volume_id, category, pred (volume level:\n"
    "the mean over slices), n_slices; with --per-slice one row per slice and\n"
    "category with its 0-based slice index in the source volume's order.\n"
    "volume_id is the file or folder name without .nii/.nii.gz.\n"
    "  --model DIR    model folder (model.json + weights.safetensors)\n"
    "  --batch N      slices per forward pass (default 64)\n";

static void volume_id(const char *path, char *id, size_t cap)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/')
        start--;
    size_t n = len - start;
    static const char *const exts[] = {".nii.gz", ".hdr.gz", ".img.gz", ".nii", ".hdr", ".img"};
    for (size_t e = 0; e < sizeof exts / sizeof exts[0]; e++) {
        size_t m = strlen(exts[e]);
        if (n > m && strncmp(path + len - m, exts[e], m) == 0) {
            n -= m;
            break;
        }
    }
    snprintf(id, cap, "%.*s", (int)n, path + start);
}

static int predict_one(cbq_net *net, const char *path, size_t batch, int per_slice,
                       cbq_csv_writer *w, cbq_error *err)
{
    const cbq_model_spec *spec = cbq_net_spec(net);
    char id[512];
    volume_id(path, id, sizeof id);
    cbq_model_input in;
    cbq_model_input_options every_slice = {.selection = CBQ_SLICES_ALL};
    CBQ_TRY(cbq_model_input_load_path(&in, path, &spec->input, &every_slice, err));
    cbq_volume_pred vp = {0};
    int rc = cbq_predict_input(net, &in, batch, &vp, err);
    for (size_t i = 0; rc == CBQ_OK && per_slice && i < vp.n_slices; i++)
        for (size_t o = 0; o < vp.n_outputs && rc == CBQ_OK; o++) {
            cbq_csv_put_str(w, id);
            cbq_csv_put_str(w, spec->outputs[o]);
            cbq_csv_put_double(w, vp.pred[i * vp.n_outputs + o]);
            cbq_csv_put_int(w, (long long)cbq_model_input_source_slice(&in, vp.slice[i]));
            rc = cbq_csv_end_row(w, err);
        }
    for (size_t o = 0; rc == CBQ_OK && !per_slice && o < vp.n_outputs; o++) {
        cbq_csv_put_str(w, id);
        cbq_csv_put_str(w, spec->outputs[o]);
        cbq_csv_put_double(w, vp.mean[o]);
        cbq_csv_put_int(w, (long long)vp.n_slices);
        rc = cbq_csv_end_row(w, err);
    }
    cbq_volume_pred_free(&vp);
    cbq_model_input_free(&in);
    return rc == CBQ_OK ? rc : cbq_error_prefix(err, "%s: ", path);
}

int cli_predict(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"out", required_argument, NULL, 'o'},
        {"per-slice", no_argument, NULL, 'p'}, {"batch", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    const char *model = NULL, *out = NULL;
    int per_slice = 0, quiet = 0;
    uint64_t batch = 64, threads = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:pb:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'o': out = optarg; break;
        case 'p': per_slice = 1; break;
        case 'b':
            if (!cli_parse_u64("predict", "--batch", optarg, 1, 4096, &batch))
                return CLI_EXIT_USAGE;
            break;
        case 't':
            if (!cli_parse_u64("predict", "--threads", optarg, 0, 1024, &threads))
                return CLI_EXIT_USAGE;
            break;
        case 'q': quiet = 1; break;
        case 'h': fputs(cli_predict_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("predict", "unknown option");
        }
    }
    if (!model || !out)
        return cli_usage_error("predict", "--model and --out are required");
    if (optind >= argc)
        return cli_usage_error("predict", "no VOLUME given");
    if (threads)
        omp_set_num_threads((int)threads);
    cbq_error err = {0};
    cbq_net *net = NULL;
    /* Only the outputs are read: the layers below may share memory and fuse
     * their ReLUs (cbq_net_keep_activations_from). */
    if (cbq_model_load(model, &net, (size_t)batch, &err) != CBQ_OK ||
        cbq_net_keep_activations_from(net, cbq_net_spec(net)->n_layers - 1, &err) != CBQ_OK) {
        cbq_net_free(net);
        return cli_report(&err);
    }
    cbq_net_set_threads(net, (int)threads);
    static const char *const h_vol[] = {"volume_id", "category", "pred", "n_slices"};
    static const char *const h_slice[] = {"volume_id", "category", "pred", "slice"};
    /* Under mpirun each rank predicts a block of the volumes into its part
     * of --out; rank 0 joins the parts (dist_parts.h). */
    cbq_dist dist;
    cbq_dist_current(&dist);
    size_t begin, end;
    cbq_dist_block(&dist, (size_t)(argc - optind), &begin, &end);
    char part[4096];
    if (!cbq_dist_part_path(&dist, out, part, sizeof part)) {
        cbq_net_free(net);
        return cli_usage_error("predict", "--out path too long");
    }
    cbq_csv_writer w;
    int rc = cbq_csv_writer_open(&w, part, per_slice ? h_slice : h_vol, 4, &err);
    int opened = rc == CBQ_OK;
    cbq_progress prog;
    cbq_progress_begin(&prog, "predict", end - begin, quiet || dist.rank != 0);
    for (size_t i = begin; i < end && rc == CBQ_OK; i++) {
        rc = predict_one(net, argv[optind + (int)i], (size_t)batch, per_slice, &w, &err);
        cbq_progress_step(&prog, 1);
    }
    cbq_progress_end(&prog);
    if (rc == CBQ_OK)
        rc = cbq_csv_writer_commit(&w, &err);
    else if (opened)
        cbq_csv_writer_abort(&w);
    if (rc == CBQ_OK)
        rc = cbq_dist_join_parts(&dist, out, &err);
    cbq_net_free(net);
    return rc == CBQ_OK ? CLI_EXIT_OK : cli_report(&err);
}
