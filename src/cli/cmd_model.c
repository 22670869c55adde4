/* cmd_model.c - `cbctiq model init|info`: create a freshly initialised model
 * directory from a preset, and describe one (layers, shapes, parameters,
 * FLOPs). The model files are described in docs/model-files.md. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/model_cost.h"
#include "cbctiq/model_file.h"
#include "cbctiq/model_json.h"
#include "cbctiq/net.h"
#include "cbctiq/preset.h"
#include "cli.h"

const char cli_model_usage[] =
    "usage: cbctiq model init --arch NAME --out DIR [options]\n"
    "       cbctiq model info DIR\n"
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
    "slice (a multiply-add counts 2), after checking that the weights load.\n";

enum { OPT_WIDTH = 256, OPT_DEPTH, OPT_INPUT, OPT_OUTPUTS, OPT_HU_MIN, OPT_HU_MAX };

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
    printf("%4s  %-20s %-15s %-14s %12s %12s\n", "#", "name", "type", "output", "params", "MFLOP");
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
        printf("%4zu  %-20s %-15s %-14s %12zu %12.3f", i, s->layers[i].name,
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

int cli_model(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("model", "expected a subcommand: init or info");
    if (strcmp(argv[1], "init") == 0)
        return model_init(argc - 1, argv + 1);
    if (strcmp(argv[1], "info") == 0)
        return model_info(argc - 1, argv + 1);
    return cli_usage_error("model", "unknown subcommand '%s' (init, info)", argv[1]);
}
