/* agreement_json.c - the agreement statistics of every category as a cJSON
 * tree, shared by `cbctiq agreement --json` and the "agreement" section that
 * `cbctiq correlate --ratings` adds to stats.json. */
#include <math.h>

#include "cbctiq/correlate.h"
#include "cbctiq/ratings.h"

static void add_reason(cJSON *reasons, const char *key, const char *reason)
{
    if (reason)
        cJSON_AddStringToObject(reasons, key, reason);
}

static void category_json(const cbq_ratings *r, const cbq_agreement *a, cJSON *o)
{
    const cbq_icc *icc = &a->icc;
    cJSON_AddNumberToObject(o, "n_raters", (double)a->n_raters);
    cJSON_AddNumberToObject(o, "n_complete", (double)a->n_complete);
    cbq_json_add_number(o, "icc2_1", icc->icc2_1);
    cbq_json_add_number(o, "icc2_k", icc->icc2_k);
    cbq_json_add_number(o, "icc3_1", icc->icc3_1);
    cbq_json_add_number(o, "icc3_k", icc->icc3_k);
    cbq_json_add_number(o, "alpha_interval", a->alpha_interval);
    cbq_json_add_number(o, "alpha_ordinal", a->alpha_ordinal);
    cbq_json_add_number(o, "kendall_w", a->kw.w);
    cbq_json_add_number(o, "kendall_w_chi2", a->kw.chi2);
    cbq_json_add_number(o, "kendall_w_p", a->kw.p);
    cJSON *reasons = cJSON_AddObjectToObject(o, "reasons");
    add_reason(reasons, "icc", icc->reason);
    add_reason(reasons, "alpha", a->alpha_reason);
    add_reason(reasons, "kendall_w", a->kw.reason);
    cJSON *raters = cJSON_AddObjectToObject(o, "rater_vs_rest");
    for (size_t j = 0; j < a->n_raters; j++) {
        const cbq_corr *c = &a->rater_rho[j];
        cJSON *rj = cJSON_AddObjectToObject(raters, r->raters[a->rater[j]]);
        cJSON_AddNumberToObject(rj, "n", (double)c->n);
        cbq_json_add_number(rj, "rho", c->r);
        cbq_json_add_number(rj, "p", c->p);
        if (c->reason)
            cJSON_AddStringToObject(rj, "reason", c->reason);
    }
}

int cbq_agreement_json(const cbq_ratings *r, cJSON **out, cbq_error *err)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "agreement: out of memory");
    for (size_t k = 0; k < r->n_categories; k++) {
        cbq_agreement a;
        int rc = cbq_agreement_compute(r, k, &a, err);
        if (rc != CBQ_OK) {
            cJSON_Delete(root);
            return rc;
        }
        category_json(r, &a, cJSON_AddObjectToObject(root, r->categories[k]));
        cbq_agreement_free(&a);
    }
    *out = root;
    return CBQ_OK;
}
