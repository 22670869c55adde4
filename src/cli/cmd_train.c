/* cmd_train.c - `cbctiq train`: a model from a cohort and its consensus
 * scores, volume-wise split, early stopping on the validation volumes. */
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/dist.h"
#include "cbctiq/study.h"
#include "cli.h"

const char cli_train_usage[] =
    "usage: cbctiq train --cohort cohort.csv --consensus consensus.csv --out MODEL\n"
    "                    [--config study.json] [--log FILE] [--arch NAME] [--input-size N]\n"
    "                    [--width N] [--depth N]\n"
    "                    [--epochs N] [--batch N] [--lr X] [--patience N]\n"
    "                    [--slices all|structures] [--slice-step N] [--no-augment]\n"
    "                    [--permute-labels]\n"
    "                    [--threads N] [--seed N] [--quiet]\n"
    "\n"
    "Trains on the axial slices of the cohort's train split (each slice takes its\n"
    "volume's consensus scores as targets) and validates every epoch on the val\n"
    "split at volume level (mean over slices); stops when the validation loss has\n"
    "not improved for --patience epochs and keeps the best epoch's weights.\n"
    "cohort.csv needs a split column (train/val/test). Writes MODEL/model.json,\n"
    "MODEL/weights.safetensors and the per-epoch log (default MODEL/train_log.csv:\n"
    "epoch, train_loss, val_loss, val_mae_CAT, val_rho_CAT, lr, seconds, improved).\n"
    "Under `mpirun -np N` it trains data-parallel: each batch split over the ranks,\n"
    "batch norm and gradients summed over them, rank 0 writes (docs/cluster.md).\n"
    "  --config FILE       a study.json whose train.*, categories and seed apply\n"
    "  --arch NAME         architecture preset: iqnet-s (default), resnet18, resnet34;\n"
    "                      or a model.json file (NAME.json): its layers and input (size,\n"
    "                      window, channels, slices, mean/std) trained from scratch\n"
    "  --input-size N      model input height and width (default 64)\n"
    "  --width, --depth N  base channels and blocks of the preset (0 = its default)\n"
    "  --epochs N          maximum epochs (default 16)\n"
    "  --batch N           batch size (default 32)\n"
    "  --lr X              learning rate (default 0.001, Adam)\n"
    "  --patience N        early-stopping patience in epochs (default 6; 0 = off)\n"
    "  --slices MODE       all (default) or structures: slices where the mask has a label\n"
    "  --slice-step N      use every N-th selected slice (default 2)\n"
    "  --no-augment        no flips, shifts or intensity jitter\n"
    "  --permute-labels    a control for `cbctiq sanity --permuted-model`: train on the\n"
    "                      consensus scores of other volumes, deranged (no volume keeps\n"
    "                      its own; from --seed) among the train volumes and separately\n"
    "                      among the val volumes, all categories together; each split\n"
    "                      needs 2 volumes or more; MODEL/permutation.csv says who got\n"
    "                      whose (volume_id, split, labels_from)\n"
    "Other options (window train.hu_min/hu_max, default [-500, 500] HU; optimizer,\n"
    "weight decay, categories) come from --config (docs/study.md).\n"
    "See docs/cli-study.md.\n";

typedef struct { int c; const char *v; } given_opt;

static int set_str(char *dst, size_t cap, const char *v, const char *opt)
{
    if (strlen(v) >= cap) {
        cli_usage_error("train", "%s value too long", opt);
        return 0;
    }
    snprintf(dst, cap, "%s", v);
    return 1;
}

int cli_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"cohort", required_argument, NULL, 'C'}, {"consensus", required_argument, NULL, 'S'},
        {"out", required_argument, NULL, 'o'}, {"config", required_argument, NULL, 'c'},
        {"log", required_argument, NULL, 'L'}, {"arch", required_argument, NULL, 'a'},
        {"input-size", required_argument, NULL, 'i'}, {"width", required_argument, NULL, 'W'},
        {"depth", required_argument, NULL, 'D'}, {"epochs", required_argument, NULL, 'e'},
        {"batch", required_argument, NULL, 'b'}, {"lr", required_argument, NULL, 'l'},
        {"patience", required_argument, NULL, 'P'}, {"slices", required_argument, NULL, 'x'},
        {"slice-step", required_argument, NULL, 'k'}, {"no-augment", no_argument, NULL, 'n'},
        {"threads", required_argument, NULL, 't'}, {"seed", required_argument, NULL, 's'},
        {"quiet", no_argument, NULL, 'q'}, {"help", no_argument, NULL, 'h'},
        {"permute-labels", no_argument, NULL, 'p'}, {NULL, 0, NULL, 0}};
    const char *cohort = NULL, *consensus = NULL, *out = NULL, *config = NULL, *log = NULL;
    /* Options are applied after the config file, so remember them first. */
    given_opt given[32];
    size_t n_given = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'C': cohort = optarg; break;
        case 'S': consensus = optarg; break;
        case 'o': out = optarg; break;
        case 'c': config = optarg; break;
        case 'L': log = optarg; break;
        case 'h': fputs(cli_train_usage, stdout); return CLI_EXIT_OK;
        case '?': return cli_usage_error("train", "unknown option");
        default:
            if (n_given < 32)
                given[n_given++] = (given_opt){c, optarg};
        }
    }
    if (optind < argc)
        return cli_usage_error("train", "unexpected argument '%s'", argv[optind]);
    if (!cohort || !consensus || !out)
        return cli_usage_error("train", "--cohort, --consensus and --out are required");
    cbq_study_config cfg;
    cbq_study_config_defaults(&cfg);
    cbq_error err = {0};
    if (config && cbq_study_config_load(&cfg, config, &err) != CBQ_OK)
        return cli_report(&err);
    for (size_t g = 0; g < n_given; g++) {
        const char *v = given[g].v;
        uint64_t u;
        double d;
        switch (given[g].c) {
        case 'a': if (!set_str(cfg.train.arch, sizeof cfg.train.arch, v, "--arch")) return 2; break;
        case 'i':
            if (!cli_parse_u64("train", "--input-size", v, 8, 1024, &u)) return 2;
            cfg.train.input_size = (int)u;
            break;
        case 'W':
            if (!cli_parse_u64("train", "--width", v, 0, 1024, &u)) return 2;
            cfg.train.width = (int)u;
            break;
        case 'D':
            if (!cli_parse_u64("train", "--depth", v, 0, 16, &u)) return 2;
            cfg.train.depth = (int)u;
            break;
        case 'e':
            if (!cli_parse_u64("train", "--epochs", v, 1, 100000, &u)) return 2;
            cfg.train.epochs = (int)u;
            break;
        case 'b':
            if (!cli_parse_u64("train", "--batch", v, 1, 4096, &u)) return 2;
            cfg.train.batch = (int)u;
            break;
        case 'l':
            if (!cli_parse_double("train", "--lr", v, 1e-12, 10, &d)) return 2;
            cfg.train.lr = d;
            break;
        case 'P':
            if (!cli_parse_u64("train", "--patience", v, 0, 100000, &u)) return 2;
            cfg.train.patience = (int)u;
            break;
        case 'x':
            if (strcmp(v, "all") != 0 && strcmp(v, "structures") != 0)
                return cli_usage_error("train", "--slices expects all or structures, got '%s'", v);
            snprintf(cfg.train.slices, sizeof cfg.train.slices, "%s", v);
            break;
        case 'k':
            if (!cli_parse_u64("train", "--slice-step", v, 1, 1000, &u)) return 2;
            cfg.train.slice_step = (int)u;
            break;
        case 'n': cfg.train.augment = 0; break;
        case 'p': cfg.train.permute_labels = 1; break;
        case 't':
            if (!cli_parse_threads("train", v, &cfg.threads)) return 2;
            break;
        case 's':
            if (!cli_parse_u64("train", "--seed", v, 0, 9007199254740992ull, &u)) return 2;
            cfg.seed = u;
            break;
        case 'q': cfg.quiet = 1; break;
        }
    }
    if (cfg.threads > 0)
        omp_set_num_threads(cfg.threads);
    char log_path[4200];
    if (log)
        snprintf(log_path, sizeof log_path, "%s", log);
    else
        snprintf(log_path, sizeof log_path, "%s/train_log.csv", out);
    if (cbq_mkdir_p(out, &err) != CBQ_OK)
        return cli_report(&err);
    cbq_study_train_result r;
    if (cbq_study_train(&cfg, cohort, consensus, out, log_path, &r, &err) != CBQ_OK)
        return cli_report(&err);
    cbq_dist dist;
    cbq_dist_current(&dist);
    if (dist.rank != 0)
        return CLI_EXIT_OK; /* rank 0 reports for the job */
    if (!cfg.quiet && r.ranks > 1)
        fprintf(stderr, "data-parallel over %zu ranks: gradient allreduce %.3f ms per step (%zu steps)\n",
                r.ranks, r.steps ? 1e3 * r.allreduce_seconds / (double)r.steps : 0.0, r.steps);
    if (!cfg.quiet)
        fprintf(stderr,
                "trained on %zu slices of %zu volumes (validation: %zu volumes); best epoch %zu "
                "of %zu, val loss %.4f%s; model in %s\n",
                r.n_train_slices, r.n_train_volumes, r.n_val_volumes, r.best_epoch, r.epochs_run,
                r.best_val_loss, r.stopped_early ? " (stopped early)" : "", out);
    if (!cfg.quiet && cfg.train.permute_labels)
        fprintf(stderr, "labels permuted: %zu of %zu volumes train on another volume's scores "
                "(%s/permutation.csv)\n", r.n_relabelled, r.n_train_volumes + r.n_val_volumes, out);
    return CLI_EXIT_OK;
}
