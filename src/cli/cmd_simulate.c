/* cmd_simulate.c - `cbctiq simulate`: the built-in simulated cohort. */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "cbctiq/dist.h"
#include "cbctiq/sim.h"

const char cli_simulate_usage[] =
    "usage: cbctiq simulate --out DIR [options]\n"
    "\n"
    "Simulates head-and-neck CBCT volumes (analytic phantom, cone-beam projection\n"
    "with noise, scatter, beam hardening, metal, motion, FDK reconstruction) and\n"
    "simulated expert ratings; writes DIR/cohort.csv, ratings.csv, raters.csv,\n"
    "truth.csv, labels.json, simNNN.nii.gz and simNNN_labels.nii.gz.\n"
    "\n"
    "  --out DIR        output folder (created; an existing one must be empty)\n"
    "  --force          write into a non-empty --out folder (files of the same\n"
    "                   names are replaced, others are left)\n"
    "  --volumes N      number of volumes (64)\n"
    "  --size S         in-plane grid S x S (128)\n"
    "  --slices Z       axial slices (96)\n"
    "  --spacing MM     voxel size in mm (2)\n"
    "  --raters N       simulated raters (5)\n"
    "  --test N         volumes in the test split (16)\n"
    "  --preview        also write DIR/preview.png (lowest, median, highest quality)\n"
    "  --anatomy CT     real planning CT (NIfTI, HU) as anatomy for every volume\n"
    "  --labels L       its organ labels (OpenKBP codes; mandible and larynx required)\n"
    "  --anatomy-cohort DIR  subject folders with ct.nii.gz + oar_labels.nii.gz,\n"
    "                   used in turn (e.g. the OpenKBP head-and-neck set)\n"
    "  --seed K         random seed (1): same seed, same bytes, any thread count\n"
    "  --threads N      threads (all cores)\n"
    "  --quiet          no progress output\n";

/* A cohort written over another one mixes their volumes and ratings: an
 * existing --out folder must be empty unless --force. Returns 1 when it may
 * be written (absent or empty), 0 after printing why not. */
static int out_dir_free(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 1;
        if (errno == ENOTDIR) {
            fprintf(stderr, "cbctiq: %s: --out exists and is not a folder\n", dir);
            return 0;
        }
        return 1; /* unreadable: creating files there fails with its own message */
    }
    const struct dirent *e;
    char first[256] = "";
    while ((e = readdir(d)) != NULL && !first[0])
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            snprintf(first, sizeof first, "%s", e->d_name);
    closedir(d);
    if (!first[0])
        return 1;
    fprintf(stderr,
            "cbctiq: %s: --out folder is not empty (it holds '%s'); simulate would overwrite "
            "what is there: choose a new folder, or give --force\n",
            dir, first);
    return 0;
}

int cli_simulate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},     {"volumes", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 's'},    {"slices", required_argument, NULL, 'z'},
        {"spacing", required_argument, NULL, 'm'}, {"raters", required_argument, NULL, 'r'},
        {"test", required_argument, NULL, 'T'},    {"preview", no_argument, NULL, 'p'},
        {"seed", required_argument, NULL, 'k'},    {"threads", required_argument, NULL, 't'},
        {"quiet", no_argument, NULL, 'q'},         {"help", no_argument, NULL, 'h'},
        {"anatomy", required_argument, NULL, 'a'}, {"labels", required_argument, NULL, 'l'},
        {"anatomy-cohort", required_argument, NULL, 'A'}, {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0}};
    cbq_cohort_options o;
    cbq_cohort_defaults(&o);
    cli_common common;
    cli_common_defaults(&common);
    uint64_t u;
    double d;
    int force = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o': o.out_dir = optarg; break;
        case 'n': if (!cli_parse_u64("simulate", "--volumes", optarg, 1, 100000, &u)) return CLI_EXIT_USAGE;
                  o.volumes = (size_t)u; break;
        case 's': if (!cli_parse_u64("simulate", "--size", optarg, 32, 1024, &u)) return CLI_EXIT_USAGE;
                  o.size = (size_t)u; break;
        case 'z': if (!cli_parse_u64("simulate", "--slices", optarg, 8, 1024, &u)) return CLI_EXIT_USAGE;
                  o.slices = (size_t)u; break;
        case 'm': if (!cli_parse_double("simulate", "--spacing", optarg, 0.25, 8.0, &d)) return CLI_EXIT_USAGE;
                  o.spacing = d; break;
        case 'r': if (!cli_parse_u64("simulate", "--raters", optarg, 1, 100, &u)) return CLI_EXIT_USAGE;
                  o.n_raters = (size_t)u; break;
        case 'T': if (!cli_parse_u64("simulate", "--test", optarg, 0, 100000, &u)) return CLI_EXIT_USAGE;
                  o.n_test = (size_t)u; break;
        case 'p': o.preview = 1; break;
        case 'k': if (!cli_parse_u64("simulate", "--seed", optarg, 0, UINT64_MAX, &u)) return CLI_EXIT_USAGE;
                  o.seed = u; break;
        case 't': if (!cli_parse_u64("simulate", "--threads", optarg, 1, 1024, &u)) return CLI_EXIT_USAGE;
                  common.threads = (int)u; break;
        case 'q': o.quiet = 1; break;
        case 'a': o.anatomy_ct = optarg; break;
        case 'l': o.anatomy_labels = optarg; break;
        case 'A': o.anatomy_dir = optarg; break;
        case 'f': force = 1; break;
        case 'h': fputs(cli_simulate_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("simulate", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("simulate", "unexpected argument '%s'", argv[optind]);
    if (!o.out_dir)
        return cli_usage_error("simulate", "--out DIR is required");
    if (o.anatomy_labels && !o.anatomy_ct)
        return cli_usage_error("simulate", "--labels needs --anatomy CT");
    if (o.anatomy_ct && o.anatomy_dir)
        return cli_usage_error("simulate", "give --anatomy or --anatomy-cohort, not both");
    if (o.anatomy_ct && !o.anatomy_labels)
        return cli_usage_error("simulate", "--anatomy needs --labels (mandible and larynx place the neck)");
    if (!force && !out_dir_free(o.out_dir))
        return CLI_EXIT_FAIL;
    cbq_error err = {0};
    /* Under mpirun every rank checks the folder before any rank writes. */
    cbq_dist dist;
    cbq_dist_current(&dist);
    if (cbq_dist_barrier(&dist, &err) != CBQ_OK)
        return cli_report(&err);
    o.dist = &dist;
    if (common.threads > 0)
        omp_set_num_threads(common.threads);
    if (cbq_cohort_simulate(&o, &err) != CBQ_OK)
        return cli_report(&err);
    if (!o.quiet && dist.rank == 0)
        fprintf(stderr, "simulate: wrote %zu volumes to %s\n", o.volumes, o.out_dir);
    return CLI_EXIT_OK;
}
