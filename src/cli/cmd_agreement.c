/* cmd_agreement.c - `cbctiq agreement`: inter-rater agreement per category. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>

#include "cbctiq/correlate.h"
#include "cbctiq/csv.h"
#include "cbctiq/ratings_csv.h"
#include "cli.h"
#include "cbctiq/json_file.h"

const char cli_agreement_usage[] =
    "usage: cbctiq agreement --ratings ratings.csv [--raters raters.csv] --out agreement.csv\n"
    "                        [--json agreement.json]\n"
    "\n"
    "Per category: ICC(2,1), ICC(2,k), ICC(3,1), ICC(3,k) and Kendall's W on the\n"
    "volumes every rater scored, Krippendorff's alpha (interval, ordinal) on all\n"
    "ratings, and each rater's Spearman rho with the weighted consensus of the\n"
    "other raters. agreement.csv columns: category, measure, rater, value, p, n, reason.\n";

static double number(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *text(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static int row(cbq_csv_writer *w, const char *cat, const char *measure, const char *rater, double value,
               double p, double n, const char *reason, cbq_error *err)
{
    cbq_csv_put_str(w, cat);
    cbq_csv_put_str(w, measure);
    cbq_csv_put_str(w, rater);
    cbq_csv_put_double(w, value);
    cbq_csv_put_double(w, p);
    cbq_csv_put_double(w, n);
    cbq_csv_put_str(w, isnan(value) ? reason : "");
    return cbq_csv_end_row(w, err);
}

static int write_table(const cJSON *doc, const char *path, cbq_error *err)
{
    static const char *const header[] = {"category", "measure", "rater", "value", "p", "n", "reason"};
    static const struct {
        const char *key, *p_key, *reason_key;
        int complete;
    } measures[] = {{"icc2_1", NULL, "icc", 1},         {"icc2_k", NULL, "icc", 1},
                    {"icc3_1", NULL, "icc", 1},         {"icc3_k", NULL, "icc", 1},
                    {"alpha_interval", NULL, "alpha", 0}, {"alpha_ordinal", NULL, "alpha", 0},
                    {"kendall_w", "kendall_w_p", "kendall_w", 1}};
    cbq_csv_writer w;
    CBQ_TRY(cbq_csv_writer_open(&w, path, header, 7, err));
    const cJSON *cat, *rj;
    int rc = CBQ_OK;
    cJSON_ArrayForEach(cat, doc)
    {
        const cJSON *reasons = cJSON_GetObjectItemCaseSensitive(cat, "reasons");
        for (size_t m = 0; rc == CBQ_OK && m < sizeof measures / sizeof measures[0]; m++)
            rc = row(&w, cat->string, measures[m].key, "", number(cat, measures[m].key),
                     measures[m].p_key ? number(cat, measures[m].p_key) : NAN,
                     measures[m].complete ? number(cat, "n_complete") : NAN,
                     text(reasons, measures[m].reason_key), err);
        cJSON_ArrayForEach(rj, cJSON_GetObjectItemCaseSensitive(cat, "rater_vs_rest"))
        {
            if (rc == CBQ_OK)
                rc = row(&w, cat->string, "spearman_vs_rest", rj->string, number(rj, "rho"),
                         number(rj, "p"), number(rj, "n"), text(rj, "reason"), err);
        }
    }
    if (rc == CBQ_OK)
        return cbq_csv_writer_commit(&w, err);
    cbq_csv_writer_abort(&w);
    return rc;
}

int cli_agreement(int argc, char **argv)
{
    static const struct option opts[] = {{"ratings", required_argument, 0, 'r'},
                                         {"raters", required_argument, 0, 'w'},
                                         {"out", required_argument, 0, 'o'},
                                         {"json", required_argument, 0, 'j'},
                                         {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *ratings = NULL, *raters = NULL, *out = NULL, *json = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'r': ratings = optarg; break;
        case 'w': raters = optarg; break;
        case 'o': out = optarg; break;
        case 'j': json = optarg; break;
        case 'h': fputs(cli_agreement_usage, stdout); return CLI_EXIT_OK;
        case 'q': break;
        default: return cli_usage_error("agreement", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("agreement", "unexpected argument '%s'", argv[optind]);
    if (!ratings || !out)
        return cli_usage_error("agreement", "--ratings and --out are required");
    cbq_error err = {0};
    cbq_ratings r;
    if (cbq_ratings_read(&r, ratings, raters, &err) != CBQ_OK)
        return cli_report(&err);
    cJSON *doc = NULL;
    int rc = cbq_agreement_json(&r, &doc, &err);
    cbq_ratings_free(&r);
    if (rc == CBQ_OK)
        rc = write_table(doc, out, &err);
    if (rc == CBQ_OK && json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddItemToObject(root, "agreement", doc);
        doc = root;
        rc = cbq_json_write(doc, json, &err);
    }
    cJSON_Delete(doc);
    return rc == CBQ_OK ? CLI_EXIT_OK : cli_report(&err);
}
