/* cmd_agreement.c - `cbctiq agreement`: inter-rater agreement per category. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>

#include "cbctiq/correlate.h"
#include "cbctiq/csv.h"
#include "cbctiq/ratings.h"
#include "cli.h"
#include "cli_json.h"

const char cli_agreement_usage[] =
    "usage: cbctiq agreement --ratings ratings.csv [--raters raters.csv] --out agreement.csv\n"
    "                        [--json agreement.json]\n"
    "\n"
    "Per category: ICC(2,1), ICC(2,k), ICC(3,1), ICC(3,k) and Kendall's W on the\n"
    "volumes every rater scored, Krippendorff's alpha (interval, ordinal) on all\n"
    "ratings, and each rater's Spearman rho with the weighted consensus of the\n"
    "other raters. agreement.csv columns: category, measure, rater, value, p, n, reason.\n";

typedef struct {
    cbq_csv_writer w;
    cJSON *cat;
} sink;

static int emit(sink *s, const char *category, const char *measure, const char *rater, double value,
                double p, size_t n, const char *reason, cbq_error *err)
{
    cbq_csv_put_str(&s->w, category);
    cbq_csv_put_str(&s->w, measure);
    cbq_csv_put_str(&s->w, rater ? rater : "");
    cbq_csv_put_double(&s->w, value);
    cbq_csv_put_double(&s->w, p);
    cbq_csv_put_int(&s->w, (long long)n);
    cbq_csv_put_str(&s->w, isnan(value) ? (reason ? reason : "undefined") : "");
    if (!rater)
        cbq_json_add_number(s->cat, measure, value);
    return cbq_csv_end_row(&s->w, err);
}

static int emit_category(sink *s, const cbq_ratings *r, const cbq_agreement *a, cbq_error *err)
{
    const char *cat = r->categories[a->category];
    const cbq_icc *icc = &a->icc;
    cJSON_AddNumberToObject(s->cat, "n_raters", (double)a->n_raters);
    cJSON_AddNumberToObject(s->cat, "n_complete", (double)a->n_complete);
    CBQ_TRY(emit(s, cat, "icc2_1", NULL, icc->icc2_1, NAN, a->n_complete, icc->reason, err));
    CBQ_TRY(emit(s, cat, "icc2_k", NULL, icc->icc2_k, NAN, a->n_complete, icc->reason, err));
    CBQ_TRY(emit(s, cat, "icc3_1", NULL, icc->icc3_1, NAN, a->n_complete, icc->reason, err));
    CBQ_TRY(emit(s, cat, "icc3_k", NULL, icc->icc3_k, NAN, a->n_complete, icc->reason, err));
    CBQ_TRY(emit(s, cat, "alpha_interval", NULL, a->alpha_interval, NAN, 0, a->alpha_reason, err));
    CBQ_TRY(emit(s, cat, "alpha_ordinal", NULL, a->alpha_ordinal, NAN, 0, a->alpha_reason, err));
    CBQ_TRY(emit(s, cat, "kendall_w", NULL, a->kw.w, a->kw.p, a->n_complete, a->kw.reason, err));
    cbq_json_add_number(s->cat, "kendall_w_p", a->kw.p);
    if (icc->reason)
        cJSON_AddStringToObject(s->cat, "icc_reason", icc->reason);
    cJSON *raters = cJSON_AddObjectToObject(s->cat, "rater_vs_rest");
    for (size_t j = 0; j < a->n_raters; j++) {
        const cbq_corr *c = &a->rater_rho[j];
        const char *name = r->raters[a->rater[j]];
        CBQ_TRY(emit(s, cat, "spearman_vs_rest", name, c->r, c->p, c->n, c->reason, err));
        cJSON *o = cJSON_AddObjectToObject(raters, name);
        cJSON_AddNumberToObject(o, "n", (double)c->n);
        cbq_json_add_number(o, "rho", c->r);
        cbq_json_add_number(o, "p", c->p);
        if (c->reason)
            cJSON_AddStringToObject(o, "reason", c->reason);
    }
    return CBQ_OK;
}

int cli_agreement(int argc, char **argv)
{
    static const struct option opts[] = {{"ratings", required_argument, 0, 'r'},
                                         {"raters", required_argument, 0, 'w'},
                                         {"out", required_argument, 0, 'o'},
                                         {"json", required_argument, 0, 'j'},
                                         {"quiet", no_argument, 0, 'q'},
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
    static const char *const header[] = {"category", "measure", "rater", "value", "p", "n", "reason"};
    sink s;
    cJSON *root = cJSON_CreateObject(), *cats = cJSON_AddObjectToObject(root, "agreement");
    int rc = cbq_csv_writer_open(&s.w, out, header, 7, &err);
    int open = rc == CBQ_OK;
    for (size_t k = 0; rc == CBQ_OK && k < r.n_categories; k++) {
        cbq_agreement a;
        rc = cbq_agreement_compute(&r, k, &a, &err);
        if (rc != CBQ_OK)
            break;
        s.cat = cJSON_AddObjectToObject(cats, r.categories[k]);
        rc = emit_category(&s, &r, &a, &err);
        cbq_agreement_free(&a);
    }
    if (rc == CBQ_OK && json)
        rc = cli_write_json(root, json, &err);
    if (rc == CBQ_OK)
        rc = cbq_csv_writer_commit(&s.w, &err);
    else if (open)
        cbq_csv_writer_abort(&s.w);
    cJSON_Delete(root);
    cbq_ratings_free(&r);
    return rc == CBQ_OK ? CLI_EXIT_OK : cli_report(&err);
}
