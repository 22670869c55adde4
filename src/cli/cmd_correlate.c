/* cmd_correlate.c - `cbctiq correlate`: the study's statistics of one column
 * against another (AE vs consensus), per category, into stats.json. */
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "cbctiq/correlate.h"
#include "cbctiq/csv.h"
#include "cbctiq/ratings_csv.h"
#include "cbctiq/table_join.h"
#include "cli.h"
#include "cbctiq/json_file.h"

enum { MAX_GIVEN = 8 };

const char cli_correlate_usage[] =
    "usage: cbctiq correlate --x FILE:COLUMN --y FILE:COLUMN --out stats.json\n"
    "                        [--by category|none] [--given FILE:COLUMN]... [--where COL=VALUE]\n"
    "                        [--csv stats.csv] [--seed N] [--n-boot N] [--n-perm N]\n"
    "                        [--exact-max-n N] [--ratings R [--raters W]] [--threads N] [--quiet]\n"
    "\n"
    "Joins the two tables on volume_id (and category) and reports, per category,\n"
    "Spearman rho with its t-test p, permutation p (exact for n <= 9), Fisher-z and\n"
    "bootstrap (percentile, BCa) 95% intervals, leave-one-out rho and p, Pearson,\n"
    "Kendall tau-b, Holm and Benjamini-Hochberg adjusted p across categories, and\n"
    "with --given the partial Spearman rho given those columns.\n"
    "  --x, --y FILE:COLUMN  e.g. ae.csv:ae and consensus.csv:consensus\n"
    "  --by category|none    group by category (default) or pool all rows\n"
    "  --given FILE:COLUMN   covariate for the partial correlation (up to 8)\n"
    "  --where COL=VALUE     keep only rows with this value in tables having COL\n"
    "                        (e.g. method=gradcam)\n"
    "  --n-boot N            bootstrap resamples (default 10000)\n"
    "  --n-perm N            random permutations when n > exact-max-n (default 100000)\n"
    "  --exact-max-n N       enumerate all n! permutations up to this n (default 9, max 12)\n"
    "  --seed N              seed of resamples and permutations (default 1)\n"
    "  --ratings, --raters   also put the rater agreement of `cbctiq agreement` into\n"
    "                        stats.json (key \"agreement\")\n"
    "  --threads N           worker threads (default: all cores); results do not depend on it\n";

static const char *num_field(const cJSON *o, const char *path1, const char *path2, char *buf)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, path1);
    if (v && path2)
        v = cJSON_GetObjectItemCaseSensitive(v, path2);
    buf[0] = '\0';
    if (cJSON_IsNumber(v))
        cbq_format_double(buf, 40, v->valuedouble);
    return buf;
}

static const char *pair_field(const cJSON *o, const char *key, const char *sub, int i, char *buf)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (v && sub)
        v = cJSON_GetObjectItemCaseSensitive(v, sub);
    v = cJSON_GetArrayItem(v, i);
    buf[0] = '\0';
    if (cJSON_IsNumber(v))
        cbq_format_double(buf, 40, v->valuedouble);
    return buf;
}

static int write_csv(const cJSON *root, const char *path, cbq_error *err)
{
    static const char *const header[] = {
        "category", "n", "rho", "p", "p_perm", "n_perm", "ci95_lo", "ci95_hi",
        "boot_percentile_lo", "boot_percentile_hi", "boot_bca_lo", "boot_bca_hi", "p_holm", "p_bh",
        "loo_median_rho", "loo_median_p", "loo_min_rho", "loo_max_rho", "jackknife_se",
        "pearson_r", "pearson_p", "kendall_tau", "kendall_p", "reason"};
    enum { N_COLS = sizeof header / sizeof header[0] };
    cbq_csv_writer w;
    CBQ_TRY(cbq_csv_writer_open(&w, path, header, N_COLS, err));
    const cJSON *cats = cJSON_GetObjectItemCaseSensitive(root, "categories"), *c;
    char b[40];
    int rc = CBQ_OK;
    cJSON_ArrayForEach(c, cats)
    {
        cbq_csv_put_str(&w, c->string);
        cbq_csv_put_str(&w, num_field(c, "n", NULL, b));
        cbq_csv_put_str(&w, num_field(c, "rho", NULL, b));
        cbq_csv_put_str(&w, num_field(c, "p", NULL, b));
        cbq_csv_put_str(&w, num_field(c, "p_perm", NULL, b));
        cbq_csv_put_str(&w, num_field(c, "n_perm", NULL, b));
        cbq_csv_put_str(&w, pair_field(c, "ci95", NULL, 0, b));
        cbq_csv_put_str(&w, pair_field(c, "ci95", NULL, 1, b));
        cbq_csv_put_str(&w, pair_field(c, "ci95_bootstrap", "percentile", 0, b));
        cbq_csv_put_str(&w, pair_field(c, "ci95_bootstrap", "percentile", 1, b));
        cbq_csv_put_str(&w, pair_field(c, "ci95_bootstrap", "bca", 0, b));
        cbq_csv_put_str(&w, pair_field(c, "ci95_bootstrap", "bca", 1, b));
        cbq_csv_put_str(&w, num_field(c, "p_holm", NULL, b));
        cbq_csv_put_str(&w, num_field(c, "p_bh", NULL, b));
        cbq_csv_put_str(&w, num_field(c, "loo", "median_rho", b));
        cbq_csv_put_str(&w, num_field(c, "loo", "median_p", b));
        cbq_csv_put_str(&w, num_field(c, "loo", "min_rho", b));
        cbq_csv_put_str(&w, num_field(c, "loo", "max_rho", b));
        cbq_csv_put_str(&w, num_field(c, "loo", "jackknife_se", b));
        cbq_csv_put_str(&w, num_field(c, "pearson", "r", b));
        cbq_csv_put_str(&w, num_field(c, "pearson", "p", b));
        cbq_csv_put_str(&w, num_field(c, "kendall", "tau", b));
        cbq_csv_put_str(&w, num_field(c, "kendall", "p", b));
        const cJSON *reason = cJSON_GetObjectItemCaseSensitive(c, "reason");
        cbq_csv_put_str(&w, cJSON_IsString(reason) ? reason->valuestring : "");
        if ((rc = cbq_csv_end_row(&w, err)) != CBQ_OK)
            break;
    }
    if (rc == CBQ_OK)
        return cbq_csv_writer_commit(&w, err);
    cbq_csv_writer_abort(&w);
    return rc;
}

static void warn_one_sided(const cbq_joined *j, const char *xs, const char *ys, int quiet)
{
    for (size_t g = 0; !quiet && g < j->n_groups; g++) {
        const cbq_corr_group *gr = &j->groups[g];
        for (size_t i = 0; i < gr->n_only_x; i++)
            fprintf(stderr, "cbctiq: warning: volume '%s' (category %s) is only in %s\n",
                    gr->only_x[i], gr->category, xs);
        for (size_t i = 0; i < gr->n_only_y; i++)
            fprintf(stderr, "cbctiq: warning: volume '%s' (category %s) is only in %s\n",
                    gr->only_y[i], gr->category, ys);
    }
}

typedef struct {
    const char *x, *y, *out, *csv, *by, *where, *ratings, *raters;
    const char *given[MAX_GIVEN];
    size_t n_given;
    cbq_correlate_opts opts;
    cli_common common;
} correlate_args;

static int parse_args(correlate_args *a, int argc, char **argv)
{
    static const struct option opts[] = {
        {"x", required_argument, 0, 'x'},       {"y", required_argument, 0, 'y'},
        {"out", required_argument, 0, 'o'},     {"csv", required_argument, 0, 'c'},
        {"by", required_argument, 0, 'b'},      {"given", required_argument, 0, 'g'},
        {"where", required_argument, 0, 'W'},   {"seed", required_argument, 0, 's'},
        {"n-boot", required_argument, 0, 'B'},  {"n-perm", required_argument, 0, 'P'},
        {"exact-max-n", required_argument, 0, 'E'}, {"threads", required_argument, 0, 't'},
        {"ratings", required_argument, 0, 'R'}, {"raters", required_argument, 0, 'w'},
        {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    uint64_t v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'x': a->x = optarg; break;
        case 'y': a->y = optarg; break;
        case 'o': a->out = optarg; break;
        case 'c': a->csv = optarg; break;
        case 'b': a->by = optarg; break;
        case 'W': a->where = optarg; break;
        case 'R': a->ratings = optarg; break;
        case 'w': a->raters = optarg; break;
        case 'h': fputs(cli_correlate_usage, stdout); return -1;
        case 'q': a->common.quiet = 1; break;
        case 'g':
            if (a->n_given == MAX_GIVEN)
                return cli_usage_error("correlate", "at most %d --given columns", MAX_GIVEN);
            a->given[a->n_given++] = optarg;
            break;
        case 's':
            if (!cli_parse_u64("correlate", "--seed", optarg, 0, UINT64_MAX, &a->opts.seed))
                return CLI_EXIT_USAGE;
            break;
        case 'B':
            if (!cli_parse_u64("correlate", "--n-boot", optarg, 0, 100000000, &v))
                return CLI_EXIT_USAGE;
            a->opts.n_boot = (size_t)v;
            break;
        case 'P':
            if (!cli_parse_u64("correlate", "--n-perm", optarg, 0, 1000000000, &v))
                return CLI_EXIT_USAGE;
            a->opts.n_perm = (size_t)v;
            break;
        case 'E':
            if (!cli_parse_u64("correlate", "--exact-max-n", optarg, 0, 12, &v))
                return CLI_EXIT_USAGE;
            a->opts.exact_max_n = (size_t)v;
            break;
        case 't':
            if (!cli_parse_threads("correlate", optarg, &a->common.threads))
                return CLI_EXIT_USAGE;
            break;
        default: return cli_usage_error("correlate", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("correlate", "unexpected argument '%s'", argv[optind]);
    if (!a->x || !a->y || !a->out)
        return cli_usage_error("correlate", "--x, --y and --out are required");
    if (a->raters && !a->ratings)
        return cli_usage_error("correlate", "--raters needs --ratings");
    if (a->by && strcmp(a->by, "category") != 0 && strcmp(a->by, "none") != 0)
        return cli_usage_error("correlate", "--by expects 'category' or 'none', got '%s'", a->by);
    return CLI_EXIT_OK;
}

int cli_correlate(int argc, char **argv)
{
    correlate_args a = {0};
    cbq_correlate_opts_default(&a.opts);
    cli_common_defaults(&a.common);
    a.opts.seed = a.common.seed;
    int st = parse_args(&a, argc, argv);
    if (st != CLI_EXIT_OK)
        return st < 0 ? CLI_EXIT_OK : st; /* -1: --help printed */
    if (a.common.threads > 0)
        omp_set_num_threads(a.common.threads);
    cbq_error err = {0};
    cbq_column_ref x, y, z[MAX_GIVEN];
    if (cbq_column_ref_parse(&x, a.x, &err) || cbq_column_ref_parse(&y, a.y, &err))
        return cli_usage_error("correlate", "%s", err.msg);
    for (size_t q = 0; q < a.n_given; q++)
        if (cbq_column_ref_parse(&z[q], a.given[q], &err))
            return cli_usage_error("correlate", "%s", err.msg);
    int by_category = !a.by || strcmp(a.by, "category") == 0;
    cbq_joined j;
    if (cbq_join_columns(&x, &y, z, a.n_given, by_category, a.where, &j, &err) != CBQ_OK)
        return cli_report(&err);
    warn_one_sided(&j, a.x, a.y, a.common.quiet);
    cJSON *doc = NULL, *agreement = NULL;
    int rc = CBQ_OK;
    if (a.ratings) {
        cbq_ratings r;
        rc = cbq_ratings_read(&r, a.ratings, a.raters, &err);
        if (rc == CBQ_OK) {
            rc = cbq_agreement_json(&r, &agreement, &err);
            cbq_ratings_free(&r);
        }
    }
    if (rc == CBQ_OK)
        rc = cbq_correlate(&j, &a.opts, &doc, &err);
    if (rc == CBQ_OK && agreement) {
        cJSON_AddItemToObject(doc, "agreement", agreement);
        agreement = NULL;
    }
    cJSON_Delete(agreement);
    if (rc == CBQ_OK) {
        cJSON_AddStringToObject(doc, "x", a.x);
        cJSON_AddStringToObject(doc, "y", a.y);
        cJSON_AddStringToObject(doc, "method", "spearman");
        cJSON_AddNumberToObject(doc, "seed", (double)a.opts.seed);
        cJSON_AddNumberToObject(doc, "n_boot", (double)a.opts.n_boot);
        cJSON_AddNumberToObject(doc, "n_perm", (double)a.opts.n_perm);
        rc = cbq_json_write(doc, a.out, &err);
    }
    if (rc == CBQ_OK && a.csv)
        rc = write_csv(doc, a.csv, &err);
    cJSON_Delete(doc);
    cbq_joined_free(&j);
    return rc == CBQ_OK ? CLI_EXIT_OK : cli_report(&err);
}
