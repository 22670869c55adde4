/* cmd_sanity.c - `cbctiq sanity`: the cascading model-randomisation test
 * of Adebayo et al. (NeurIPS 2018) for each attribution method. The
 * parametrised layers are re-initialised from the output down, one more per
 * step; after each step the maps are compared with the trained model's by
 * Spearman rank correlation and their AE with the trained AE. A method whose
 * maps still correlate after the whole network is random (median rho above
 * --threshold) explains the image, not the model, and is flagged. The
 * checks themselves are the library's (sanity.h); this file parses the
 * options and reads the cohort's volumes through the data layer. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrib_cli.h"
#include "cbctiq/cohort.h"
#include "cbctiq/dist.h"
#include "cbctiq/model_file.h"
#include "cbctiq/model_input.h"
#include "cbctiq/sanity.h"
#include "cbctiq/sanity_energy.h"
#include "cbctiq/study.h"
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
    "randomisation test: maps of a model trained on permuted labels (`cbctiq train\n"
    "--permute-labels` with the trained model's recipe) against the trained\n"
    "model's (rows with test = permuted_labels, step 0). Each row also gives the\n"
    "median over volumes of energy_in_structure (ae.csv's: the share of the map on\n"
    "the category's structure, from the cohort's masks) under the trained and the\n"
    "compared model, on the tested slices. `cbctiq study` runs both tests in its\n"
    "sanity stage.\n"
    "  --methods LIST     default {sanity_methods}\n"
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
    char bad[64];
    if (!cbq_cam_method_list_parse(list, a->methods, MAX_METHODS, &a->n_methods, bad, sizeof bad,
                                   NULL))
        return cli_usage_error("sanity", "--methods: unknown method '%s'; known: %s", bad,
                               cbq_cam_method_list());
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
    for (int m = 0; m < CBQ_CAM_METHOD_COUNT; m++)
        if (cbq_cam_method_sanity_default((cbq_cam_method)m))
            a->methods[a->n_methods++] = (cbq_cam_method)m;
    int rc = CLI_EXIT_OK;
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
            if (!cli_parse_threads("sanity", optarg, &a->common.threads)) return CLI_EXIT_USAGE;
            break;
        case 'q': a->common.quiet = 1; break;
        case 'h': cli_usage_print(stdout, cli_sanity_usage); return -1;
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

/* Volumes of the cohort, each reduced to its tested slices and structure
 * masks as it is read (kept by the energy hook), so that only those stay in
 * memory. */
static int load_cohort(const sanity_args *a, const cbq_net *net, cbq_sanity_volume **vols,
                       cbq_cohort *c, cbq_sanity_energy *energy, cbq_error *err)
{
    *vols = NULL;
    CBQ_TRY(cbq_cohort_read(c, a->cohort, err));
    size_t todo;
    CBQ_TRY(cbq_cohort_count_split(c, a->split, &todo, err));
    CBQ_TRY(cbq_sanity_energy_init(energy, net, todo, err));
    if (!(*vols = calloc(todo + 1, sizeof **vols)))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    cbq_model_input_options o = {.max_slices = a->max_slices, .with_structures = 1};
    for (size_t r = 0; r < c->n; r++) {
        if (!cbq_cohort_in_split(c, r, a->split))
            continue;
        cbq_model_input in;
        if (cbq_model_input_load(&in, &c->v[r], c, &cbq_net_spec(net)->input, &o, err) != CBQ_OK)
            return cbq_error_prefix(err, "%s:%zu: ", a->cohort, c->v[r].line);
        CBQ_TRY(cbq_sanity_energy_add(energy, &in, err));
        const cbq_model_input *kept = &energy->inputs[energy->n - 1];
        (*vols)[energy->n - 1] = (cbq_sanity_volume){.id = c->v[r].id, .slices = kept->x, .nz = kept->n};
    }
    return CBQ_OK;
}

static void print_verdicts(const cbq_sanity_result *res, int permuted)
{
    for (size_t m = 0; m < res->n_methods; m++) {
        const cbq_sanity_method *sm = &res->methods[m];
        const char *name = cbq_cam_method_name(sm->method);
        fprintf(stderr, "sanity: %-10s %s\n", name,
                sm->survives ? "FLAGGED: maps survive full randomisation" : "maps change with the model");
        if (permuted)
            fprintf(stderr, "sanity: %-10s %s\n", name,
                    sm->survives_permuted ? "FLAGGED: maps survive label permutation"
                                          : "maps change when the labels are permuted");
    }
}

static int load_nets(const sanity_args *a, cbq_net **net, cbq_net **permuted, cbq_error *err)
{
    CBQ_TRY(cbq_model_load(a->model, net, a->batch, err));
    cbq_net_set_threads(*net, a->common.threads);
    if (!a->permuted_model)
        return CBQ_OK;
    CBQ_TRY(cbq_model_load(a->permuted_model, permuted, a->batch, err));
    cbq_net_set_threads(*permuted, a->common.threads);
    if (!cbq_sanity_same_outputs(*net, *permuted))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: --permuted-model must have the same outputs and "
                        "input as %s", a->permuted_model, a->model);
    return CBQ_OK;
}

static int run(const sanity_args *a, cbq_error *err)
{
    cbq_net *net = NULL, *permuted = NULL;
    cbq_sanity_volume *sv = NULL;
    cbq_cohort cohort = {0};
    cbq_sanity_energy energy = {0};
    int rc = load_nets(a, &net, &permuted, err);
    if (rc == CBQ_OK)
        rc = load_cohort(a, net, &sv, &cohort, &energy, err);
    cbq_sanity_options o;
    cbq_sanity_options_default(&o);
    memcpy(o.methods, a->methods, sizeof o.methods);
    o.n_methods = a->n_methods;
    o.threshold = a->threshold;
    o.seed = a->common.seed;
    o.batch = a->batch;
    o.attrib = a->opt;
    cbq_dist dist; /* the ranks sharing the volumes (one without mpirun) */
    cbq_dist_current(&dist);
    o.dist = &dist;
    o.quiet = a->common.quiet || dist.rank != 0;
    cbq_sanity_energy_hook(&energy, &o);
    cbq_sanity_result res;
    if (rc == CBQ_OK && (rc = cbq_sanity_run(net, permuted, sv, energy.n, &o, &res, err)) == CBQ_OK &&
        dist.rank != 0) {
        cbq_sanity_result_free(&res); /* rank 0 writes the job's result */
    } else if (rc == CBQ_OK) {
        rc = cbq_study_sanity_write(a->out, &res, err);
        if (rc == CBQ_OK && !a->common.quiet)
            print_verdicts(&res, permuted != NULL);
        cbq_sanity_result_free(&res);
    }
    free(sv); /* its slices are energy's */
    cbq_sanity_energy_free(&energy);
    cbq_cohort_free(&cohort);
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
