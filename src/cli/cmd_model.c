/* cmd_model.c - `cbctiq model init|info|import|export`: create a freshly
 * initialised model directory from a preset, describe one (layers, shapes,
 * parameters, FLOPs), import a PyTorch model exported as ONNX, and export a
 * model as ONNX. The model files are described in docs/model-files.md. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/model_cost.h"
#include "cbctiq/model_file.h"
#include "cbctiq/model_json.h"
#include "cbctiq/net.h"
#include "cbctiq/onnx.h"
#include "cbctiq/preset.h"
#include "cli.h"

const char cli_model_usage[] =
    "usage: cbctiq model init --arch NAME --out DIR [options]\n"
    "       cbctiq model info DIR\n"
    "       cbctiq model import MODEL.onnx --out DIR [options]\n"
    "       cbctiq model export DIR --onnx OUT.onnx\n"
    "\n"
    "init: writes DIR/model.json and DIR/weights.safetensors with weights drawn as\n"
    "PyTorch initialises them (from --seed).\n"
    "  --arch NAME        architecture preset: iqnet-s, resnet18, resnet34\n"
    "  --out DIR          model directory to create (files replaced atomically)\n"
    "  --width N          base channels (iqnet-s: 16, resnet18/34: 64)\n"
    "  --depth N          blocks (iqnet-s: 4; the resnets' depth is fixed)\n"
    "  --input N          input height = width in pixels (default 128)\n"
    "  --outputs A,B,...  category names (default: parotid,submandibular,larynx,mandible,overall)\n"
    "  --hu-min X         HU mapped to 0 (default -1000)\n"
    "  --hu-max X         HU mapped to 1 (default 1000)\n"
    "  --seed N           initialisation seed (default 1)\n"
    "  --quiet            print nothing on success\n"
    "\n"
    "info: prints the layers with output shapes, parameters and forward FLOPs per\n"
    "slice (a multiply-add counts 2), after checking that the weights load.\n"
    "\n"
    "import: reads an ONNX file (torch.onnx.export, opset 9 to 17, one input\n"
    "[N, C, H, W], C 1 to 16) and writes DIR/model.json and DIR/weights.safetensors;\n"
    "layer names are the PyTorch module paths, the target layer the last activation\n"
    "before the global pool. Unsupported operators are listed, each with its node name.\n"
    "  --out DIR          model directory to create (files replaced atomically)\n"
    "  --hu-min X         HU mapped to 0 (default: the file's if cbctiq wrote it, else -1000)\n"
    "  --hu-max X         HU mapped to 1 (default: the file's, else 1000)\n"
    "  --outputs A,B,...  category names, one per output (default: the file's, else as init)\n"
    "  --input-size N     input height = width (required when the ONNX input's are dynamic)\n"
    "  --slices MODE      how a slice fills the C channels: replicate (slice k in each) or\n"
    "                     adjacent (k - C/2 .. k + C/2, C odd); default: the file's, else replicate\n"
    "  --mean M1,M2,...   per channel, subtracted after the HU window (C values; default 0)\n"
    "  --std S1,S2,...    per channel, divided by after the mean (C values > 0; default 1)\n"
    "  --quiet            print nothing on success\n"
    "\n"
    "export: writes the model in DIR as ONNX (opset 13) to OUT.onnx, atomically: input\n"
    "'input' [N, C, H, W] (the preprocessed slice), output 'output' [N, outputs]; the\n"
    "window, slices, mean and std go into the metadata, so importing it gives DIR back.\n";

enum { OPT_WIDTH = 256, OPT_DEPTH, OPT_INPUT, OPT_OUTPUTS, OPT_HU_MIN, OPT_HU_MAX, OPT_INPUT_SIZE, OPT_ONNX,
       OPT_SLICES, OPT_MEAN, OPT_STD };

/* Splits "a,b,c" in place into at most CBQ_MAX_OUTPUTS names. */
static int split_outputs(char *list, const char **names, size_t *n)
{
    *n = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        if (*n == CBQ_MAX_OUTPUTS)
            return cli_usage_error("model", "--outputs: at most %d names", CBQ_MAX_OUTPUTS);
        names[(*n)++] = tok;
    }
    if (*n == 0)
        return cli_usage_error("model", "--outputs: expected comma-separated names");
    return CLI_EXIT_OK;
}

static int model_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"arch", required_argument, 0, 'a'},   {"out", required_argument, 0, 'o'},
        {"width", required_argument, 0, OPT_WIDTH}, {"depth", required_argument, 0, OPT_DEPTH},
        {"input", required_argument, 0, OPT_INPUT}, {"outputs", required_argument, 0, OPT_OUTPUTS},
        {"hu-min", required_argument, 0, OPT_HU_MIN}, {"hu-max", required_argument, 0, OPT_HU_MAX},
        {"seed", required_argument, 0, 's'},   {"quiet", no_argument, 0, 'q'},
        {0, 0, 0, 0}};
    const char *arch = NULL, *out = NULL;
    const char *names[CBQ_MAX_OUTPUTS];
    cbq_preset_opts po = {0};
    uint64_t v = 0, seed = 1;
    int quiet = 0, c, have_min = 0, have_max = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'a': arch = optarg; break;
        case 'o': out = optarg; break;
        case 'q': quiet = 1; break;
        case 's':
            if (!cli_parse_u64("model", "--seed", optarg, 0, UINT64_MAX, &seed))
                return CLI_EXIT_USAGE;
            break;
        case OPT_WIDTH: case OPT_DEPTH: case OPT_INPUT: {
            const char *name = c == OPT_WIDTH ? "--width" : c == OPT_DEPTH ? "--depth" : "--input";
            if (!cli_parse_u64("model", name, optarg, 1, c == OPT_DEPTH ? 12 : 65536, &v))
                return CLI_EXIT_USAGE;
            *(c == OPT_WIDTH ? &po.width : c == OPT_DEPTH ? &po.depth : &po.input) = (int)v;
            break;
        }
        case OPT_OUTPUTS:
            if (split_outputs(optarg, names, &po.n_outputs) != CLI_EXIT_OK)
                return CLI_EXIT_USAGE;
            po.outputs = names;
            break;
        case OPT_HU_MIN: case OPT_HU_MAX:
            if (!cli_parse_double("model", c == OPT_HU_MIN ? "--hu-min" : "--hu-max", optarg, -1e6, 1e6,
                                  c == OPT_HU_MIN ? &po.hu_min : &po.hu_max))
                return CLI_EXIT_USAGE;
            *(c == OPT_HU_MIN ? &have_min : &have_max) = 1;
            break;
        default: return cli_usage_error("model", "unknown option");
        }
    }
    if (!arch || !out)
        return cli_usage_error("model", "init needs --arch and --out");
    if (optind < argc)
        return cli_usage_error("model", "unexpected argument '%s'", argv[optind]);
    if (have_min != have_max)
        return cli_usage_error("model", "give both --hu-min and --hu-max, or neither");
    if (have_min && !(po.hu_min < po.hu_max))
        return cli_usage_error("model", "--hu-min must be below --hu-max");

    cbq_error err = {0};
    cbq_model_spec spec;
    if (cbq_preset_build(&spec, arch, &po, &err) != CBQ_OK)
        return cli_report(&err);
    cbq_net *net = NULL;
    int rc = cbq_net_create(&net, &spec, 1, seed, &err);
    cbq_model_spec_free(&spec);
    if (rc == CBQ_OK)
        rc = cbq_model_save(out, net, &err);
    cbq_net_free(net);
    if (rc != CBQ_OK)
        return cli_report(&err);
    if (!quiet)
        printf("wrote %s/model.json and %s/weights.safetensors (%s, seed %llu)\n", out, out, arch,
               (unsigned long long)seed);
    return CLI_EXIT_OK;
}

/* The type column fits every layer kind's name, so that the columns after it line up. */
static size_t kind_name_width(void)
{
    size_t width = strlen("type");
    for (int k = 0; k < CBQ_LAYER_KIND_COUNT; k++)
        if (strlen(cbq_layer_kind_name((cbq_layer_kind)k)) > width)
            width = strlen(cbq_layer_kind_name((cbq_layer_kind)k));
    return width;
}

static void format_shape(char *buf, size_t cap, const size_t s[3])
{
    snprintf(buf, cap, "%zux%zux%zu", s[0], s[1], s[2]);
}

/* How a slice fills the channels, when it is more than one windowed slice. */
static void print_input_channels(const cbq_input_spec *in)
{
    size_t channels = cbq_input_channels(in);
    if (channels > 1)
        printf("channels: %s slices%s\n", cbq_input_slices_name(in->slices),
               in->slices == CBQ_INPUT_ADJACENT ? " (k - c/2 .. k + c/2, edge slice repeated)" : "");
    if (!in->n_norm)
        return;
    printf("per channel, after the window: (x - mean) / std, mean");
    for (size_t ch = 0; ch < channels; ch++)
        printf(" %g", in->mean[ch]);
    printf(", std");
    for (size_t ch = 0; ch < channels; ch++)
        printf(" %g", in->std[ch]);
    printf("\n");
}

/* A graph's layer that does not read just the previous one: "  <- a, b". */
static void print_inputs(const cbq_model_spec *s, size_t i)
{
    size_t n = cbq_model_spec_n_inputs(s, i);
    if (n == 1 && cbq_model_spec_input(s, i, 0) == (long)i - 1) {
        printf("\n");
        return;
    }
    printf("  <-");
    for (size_t j = 0; j < n; j++) {
        long from = cbq_model_spec_input(s, i, j);
        printf("%s %s", j ? "," : "", from < 0 ? "input" : s->layers[from].name);
    }
    printf("\n");
}

static int model_info(int argc, char **argv)
{
    if (argc != 2)
        return cli_usage_error("model", "info expects exactly one model directory");
    cbq_error err = {0};
    cbq_net *net = NULL;
    if (cbq_model_load(argv[1], &net, 1, &err) != CBQ_OK)
        return cli_report(&err);
    const cbq_model_spec *s = cbq_net_spec(net);
    printf("model %s: arch %s, input %zux%dx%d, HU window [%g, %g] mapped to [0, 1]\n", argv[1], s->arch,
           cbq_input_channels(&s->input), s->input.height, s->input.width, s->input.hu_min, s->input.hu_max);
    print_input_channels(&s->input);
    printf("outputs (%zu):", s->n_outputs);
    for (size_t i = 0; i < s->n_outputs; i++)
        printf(" %s", s->outputs[i]);
    size_t ts[3];
    cbq_net_layer_shape(net, (size_t)cbq_model_spec_find(s, s->target_layer), ts);
    printf("\ntarget layer: %s (%zux%zux%zu)\n\n", s->target_layer, ts[0], ts[1], ts[2]);
    int type_width = (int)kind_name_width();
    printf("%4s  %-20s %-*s %-14s %12s %12s\n", "#", "name", type_width, "type", "output", "params", "MFLOP");
    const size_t input[3] = {cbq_input_channels(&s->input), (size_t)s->input.height, (size_t)s->input.width};
    size_t total_params = 0;
    double total_flops = 0.0;
    for (size_t i = 0; i < s->n_layers; i++) {
        size_t shape[3], in[3];
        char buf[48];
        long first = cbq_model_spec_input(s, i, 0);
        if (first < 0)
            memcpy(in, input, sizeof in);
        else
            cbq_net_layer_shape(net, (size_t)first, in);
        cbq_net_layer_shape(net, i, shape);
        size_t params = cbq_layer_param_count(&s->layers[i]);
        double flops = cbq_layer_forward_flops(&s->layers[i], in, shape);
        format_shape(buf, sizeof buf, shape);
        printf("%4zu  %-20s %-*s %-14s %12zu %12.3f", i, s->layers[i].name, type_width,
               cbq_layer_kind_name(s->layers[i].kind), buf, params, flops / 1e6);
        print_inputs(s, i);
        total_params += params;
        total_flops += flops;
    }
    printf("\ntotal: %zu parameters, %.4f GFLOP forward per slice (%.4f GFLOP in conv/linear)\n",
           total_params, total_flops / 1e9, cbq_net_forward_flops(net) / 1e9);
    cbq_net_free(net);
    return CLI_EXIT_OK;
}

/* The spec and weights of an import become a net (the engine's own strict
 * weight check), saved as a model directory. */
static int save_imported(const char *out, const cbq_model_spec *spec, const cbq_safetensors *weights,
                         cbq_error *err)
{
    cbq_net *net = NULL;
    CBQ_TRY(cbq_net_create(&net, spec, 1, 0, err));
    int rc = cbq_model_load_weights(net, weights, err);
    if (rc == CBQ_OK)
        rc = cbq_model_save(out, net, err);
    cbq_net_free(net);
    return rc;
}

/* --slices, --mean and --std as given; n_mean / n_std 0 when absent. */
typedef struct {
    int has_slices;
    cbq_input_slices slices;
    size_t n_mean, n_std;
    double mean[CBQ_MAX_INPUT_CHANNELS], std[CBQ_MAX_INPUT_CHANNELS];
} channel_opts;

/* "m1,m2,..." into at most CBQ_MAX_INPUT_CHANNELS finite numbers. */
static int parse_channel_values(const char *opt, const char *text, double *out, size_t *n)
{
    const char *p = text;
    for (*n = 0;; (*n)++) {
        char *end;
        if (*n == CBQ_MAX_INPUT_CHANNELS)
            return cli_usage_error("model", "%s: at most %d values (one per input channel)", opt,
                                   CBQ_MAX_INPUT_CHANNELS);
        out[*n] = strtod(p, &end);
        if (end == p || (*end != ',' && *end != '\0') || !isfinite(out[*n]) || fabs(out[*n]) > 1e6)
            return cli_usage_error("model", "%s: expected comma-separated finite numbers, one per input "
                                   "channel (got '%s')", opt, text);
        if (*end == '\0') {
            (*n)++;
            return CLI_EXIT_OK;
        }
        p = end + 1;
    }
}

/* Puts the channel options into the imported spec, now that the graph
 * input's channel count is known; messages name the file and the option. */
static int apply_channel_opts(const char *onnx_path, const channel_opts *co, cbq_input_spec *in)
{
    size_t channels = cbq_input_channels(in);
    if (co->has_slices)
        in->slices = co->slices;
    if (in->slices == CBQ_INPUT_ADJACENT && channels % 2 == 0)
        return cli_usage_error("model", "import %s: --slices adjacent centres the channels on the slice, so it "
                               "needs an odd channel count; the graph input has %zu", onnx_path, channels);
    const struct { const char *opt; size_t n; } given[] = {{"--mean", co->n_mean}, {"--std", co->n_std}};
    for (size_t i = 0; i < 2; i++)
        if (given[i].n && given[i].n != channels)
            return cli_usage_error("model", "import %s: %s has %zu value%s, expected %zu (the graph input's "
                                   "channels)", onnx_path, given[i].opt, given[i].n, given[i].n == 1 ? "" : "s",
                                   channels);
    for (size_t ch = 0; ch < co->n_std; ch++)
        if (!(co->std[ch] > 0))
            return cli_usage_error("model", "import %s: --std value %zu is %g; a standard deviation must be > 0 "
                                   "(it divides)", onnx_path, ch + 1, co->std[ch]);
    if (!co->n_mean && !co->n_std)
        return CLI_EXIT_OK;
    if (!in->n_norm)
        for (size_t ch = 0; ch < channels; ch++) {
            in->mean[ch] = 0.0;
            in->std[ch] = 1.0;
        }
    if (co->n_mean)
        memcpy(in->mean, co->mean, channels * sizeof *in->mean);
    if (co->n_std)
        memcpy(in->std, co->std, channels * sizeof *in->std);
    in->n_norm = channels;
    return CLI_EXIT_OK;
}

static int model_import(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'}, {"outputs", required_argument, 0, OPT_OUTPUTS},
        {"hu-min", required_argument, 0, OPT_HU_MIN}, {"hu-max", required_argument, 0, OPT_HU_MAX},
        {"input-size", required_argument, 0, OPT_INPUT_SIZE}, {"slices", required_argument, 0, OPT_SLICES},
        {"mean", required_argument, 0, OPT_MEAN}, {"std", required_argument, 0, OPT_STD},
        {"quiet", no_argument, 0, 'q'}, {0, 0, 0, 0}};
    const char *out = NULL;
    const char *names[CBQ_MAX_OUTPUTS];
    cbq_onnx_import_opts io = {0}; /* HU window and names: the file's (cbctiq's export), else defaults */
    channel_opts co = {0};
    uint64_t v = 0;
    int quiet = 0, c, have_min = 0, have_max = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'q': quiet = 1; break;
        case OPT_INPUT_SIZE:
            if (!cli_parse_u64("model", "--input-size", optarg, 1, 65536, &v))
                return CLI_EXIT_USAGE;
            io.input_size = (int)v;
            break;
        case OPT_OUTPUTS:
            if (split_outputs(optarg, names, &io.n_outputs) != CLI_EXIT_OK)
                return CLI_EXIT_USAGE;
            io.outputs = names;
            break;
        case OPT_HU_MIN: case OPT_HU_MAX:
            if (!cli_parse_double("model", c == OPT_HU_MIN ? "--hu-min" : "--hu-max", optarg, -1e6, 1e6,
                                  c == OPT_HU_MIN ? &io.hu_min : &io.hu_max))
                return CLI_EXIT_USAGE;
            *(c == OPT_HU_MIN ? &have_min : &have_max) = 1;
            break;
        case OPT_SLICES:
            if (!cbq_input_slices_parse(optarg, &co.slices))
                return cli_usage_error("model", "--slices: expected replicate or adjacent (got '%s')", optarg);
            co.has_slices = 1;
            break;
        case OPT_MEAN: case OPT_STD:
            if (parse_channel_values(c == OPT_MEAN ? "--mean" : "--std", optarg, c == OPT_MEAN ? co.mean : co.std,
                                     c == OPT_MEAN ? &co.n_mean : &co.n_std) != CLI_EXIT_OK)
                return CLI_EXIT_USAGE;
            break;
        default: return cli_usage_error("model", "unknown option");
        }
    }
    if (optind + 1 != argc || !out)
        return cli_usage_error("model", "import needs one MODEL.onnx and --out DIR");
    if (have_min != have_max)
        return cli_usage_error("model", "give both --hu-min and --hu-max, or neither");
    if (have_min && !(io.hu_min < io.hu_max))
        return cli_usage_error("model", "--hu-min must be below --hu-max");
    const char *onnx_path = argv[optind];
    cbq_error err = {0};
    cbq_model_spec spec;
    cbq_safetensors weights;
    if (cbq_onnx_read(onnx_path, &io, &spec, &weights, &err) != CBQ_OK)
        return cli_report(&err);
    int usage = apply_channel_opts(onnx_path, &co, &spec.input);
    if (usage != CLI_EXIT_OK) {
        cbq_model_spec_free(&spec);
        cbq_safetensors_free(&weights);
        return usage;
    }
    int rc = save_imported(out, &spec, &weights, &err);
    if (rc == CBQ_OK && !quiet)
        printf("imported %s: %zu layers, %zu outputs, %zu input channel%s, target layer %s; wrote %s/model.json "
               "and %s/weights.safetensors\n", onnx_path, spec.n_layers, spec.n_outputs,
               cbq_input_channels(&spec.input), cbq_input_channels(&spec.input) == 1 ? "" : "s",
               spec.target_layer, out, out);
    cbq_model_spec_free(&spec);
    cbq_safetensors_free(&weights);
    return rc == CBQ_OK ? CLI_EXIT_OK : cli_report(&err);
}

static int export_net(const cbq_net *net, const char *path, cbq_error *err)
{
    size_t n = cbq_net_tensor_count(net);
    cbq_st_entry *e = calloc(n ? n : 1, sizeof *e);
    cbq_tensor_view *tv = calloc(n ? n : 1, sizeof *tv);
    if (!e || !tv) {
        free(e);
        free(tv);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; i < n; i++) {
        cbq_net_tensor(net, i, &tv[i]);
        e[i] = (cbq_st_entry){.name = tv[i].name, .dtype = tv[i].dtype == CBQ_DTYPE_I64 ? CBQ_ST_I64 : CBQ_ST_F32,
                              .ndim = tv[i].ndim, .shape = tv[i].shape, .data = tv[i].data};
    }
    int rc = cbq_onnx_write(path, cbq_net_spec(net), e, n, err);
    free(e);
    free(tv);
    return rc;
}

static int model_export(int argc, char **argv)
{
    static const struct option opts[] = {
        {"onnx", required_argument, 0, OPT_ONNX}, {"quiet", no_argument, 0, 'q'}, {0, 0, 0, 0}};
    const char *onnx_path = NULL;
    int quiet = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_ONNX: onnx_path = optarg; break;
        case 'q': quiet = 1; break;
        default: return cli_usage_error("model", "unknown option");
        }
    }
    if (optind + 1 != argc || !onnx_path)
        return cli_usage_error("model", "export needs one model DIR and --onnx OUT.onnx");
    cbq_error err = {0};
    cbq_net *net = NULL;
    if (cbq_model_load(argv[optind], &net, 1, &err) != CBQ_OK)
        return cli_report(&err);
    int rc = export_net(net, onnx_path, &err);
    cbq_net_free(net);
    if (rc != CBQ_OK)
        return cli_report(&err);
    if (!quiet)
        printf("wrote %s (ONNX opset 13) from %s\n", onnx_path, argv[optind]);
    return CLI_EXIT_OK;
}

int cli_model(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("model", "expected a subcommand: init, info, import or export");
    if (strcmp(argv[1], "init") == 0)
        return model_init(argc - 1, argv + 1);
    if (strcmp(argv[1], "info") == 0)
        return model_info(argc - 1, argv + 1);
    if (strcmp(argv[1], "import") == 0)
        return model_import(argc - 1, argv + 1);
    if (strcmp(argv[1], "export") == 0)
        return model_export(argc - 1, argv + 1);
    return cli_usage_error("model", "unknown subcommand '%s' (init, info, import, export)", argv[1]);
}
