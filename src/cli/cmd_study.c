/* cmd_study.c - `cbctiq study`: the whole poster study in one command,
 * resumable (stages cached by the hash of their inputs and options). */
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/dist.h"
#include "cbctiq/study.h"
#include "cli.h"

const char cli_study_usage[] =
    "usage: cbctiq study [--config study.json] [--out DIR] [--threads N] [--seed N] [--quiet]\n"
    "       cbctiq study [--config study.json] --print-config\n"
    "\n"
    "Runs the whole study: cohort (your cohort.csv, or the built-in simulated\n"
    "cohort), consensus and rater agreement, training with early stopping,\n"
    "evaluation on the test split, Grad-CAM and Attribution Energy, Spearman\n"
    "statistics with leave-one-out, atypical cases, sanity checks of the maps\n"
    "(model and label randomisation), and the HTML report.\n"
    "Each stage writes into its own folder under DIR and is skipped on a rerun\n"
    "when its inputs, options and outputs are unchanged; an interrupted run\n"
    "resumes. DIR must be new, empty or a study folder (marked by its\n"
    "cbctiq-study.lock); one run at a time holds it.\n"
    "At the end prints on stdout the verdict (does the model beat the constant\n"
    "training-mean predictor, is its prediction nearly constant, does AE track\n"
    "the slice count; each failed check, too few volumes or an undefined AE is\n"
    "a line beginning \"warning:\" on stderr), then the poster's table (per\n"
    "category: n, median LOO rho and p, rho, p (the exact permutation p when\n"
    "n <= 9), 95% CI). Warnings do not change the exit status.\n"
    "  --config FILE    options as JSON (keys as --print-config shows; unknown\n"
    "                   keys are errors); relative paths are relative to FILE\n"
    "  --out DIR        output folder (default: the config's \"out\", study-out)\n"
    "  --print-config   print the full configuration (defaults + FILE) and exit\n"
    "  --list-options   every option with its default and meaning (Markdown)\n"
    "  --threads N      threads (default: all cores; not part of the cache key)\n"
    "  --seed N         seed of simulation, split, training, bootstrap and sanity\n"
    "                   checks (default 1)\n"
    "  --quiet          no progress or stage lines on stderr\n"
    "Under mpirun every stage runs on the ranks: the simulation, the trainings\n"
    "(spread over groups of ranks) and the sanity checks share the work; rank 0\n"
    "alone prints and writes the cache (docs/cluster.md).\n"
    "See docs/study.md.\n";

int cli_study(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"out", required_argument, NULL, 'o'},
        {"threads", required_argument, NULL, 't'}, {"seed", required_argument, NULL, 's'},
        {"quiet", no_argument, NULL, 'q'}, {"print-config", no_argument, NULL, 'p'},
        {"list-options", no_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    const char *config = NULL, *out = NULL;
    int print = 0, quiet = 0, have_threads = 0, have_seed = 0;
    uint64_t threads = 0, seed = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:o:t:s:qpLh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'o': out = optarg; break;
        case 't':
            if (!cli_parse_u64("study", "--threads", optarg, 0, 1024, &threads))
                return CLI_EXIT_USAGE;
            have_threads = 1;
            break;
        case 's':
            if (!cli_parse_u64("study", "--seed", optarg, 0, 9007199254740992ull, &seed))
                return CLI_EXIT_USAGE;
            have_seed = 1;
            break;
        case 'q': quiet = 1; break;
        case 'p': print = 1; break;
        case 'L':
            printf("| key | default | meaning |\n|---|---|---|\n");
            cbq_study_config_describe(stdout);
            return CLI_EXIT_OK;
        case 'h': fputs(cli_study_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("study", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("study", "unexpected argument '%s'", argv[optind]);
    cbq_study_config cfg;
    cbq_study_config_defaults(&cfg);
    cbq_error err = {0};
    if (config && cbq_study_config_load(&cfg, config, &err) != CBQ_OK)
        return cli_report(&err);
    if (out) {
        if (strlen(out) >= sizeof cfg.out)
            return cli_usage_error("study", "--out path too long");
        snprintf(cfg.out, sizeof cfg.out, "%s", out);
    }
    if (have_threads)
        cfg.threads = (int)threads;
    if (have_seed)
        cfg.seed = seed;
    if (quiet)
        cfg.quiet = 1;
    if (print) {
        char *json = cbq_study_config_json(&cfg);
        if (!json) {
            fprintf(stderr, "cbctiq: out of memory\n");
            return CLI_EXIT_FAIL;
        }
        printf("%s\n", json);
        free(json);
        return CLI_EXIT_OK;
    }
    if (cfg.threads > 0)
        omp_set_num_threads(cfg.threads);
    cbq_dist dist; /* under mpirun, rank 0 alone prints progress */
    cbq_dist_current(&dist);
    if (dist.rank != 0)
        cfg.quiet = 1;
    if (cbq_study_run(&cfg, stdout, NULL, &err) != CBQ_OK)
        return cli_report(&err);
    return CLI_EXIT_OK;
}
