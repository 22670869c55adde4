/* correlate.c - every statistic of the study for each joined group, as the
 * stats.json document: Spearman (t p, permutation p, Fisher and bootstrap
 * CIs, leave-one-out), Pearson, Kendall, partial Spearman, and Holm / BH
 * adjustment of the Spearman p across groups. */
#include "cbctiq/correlate.h"

#include <math.h>
#include <stdlib.h>

#include "cbctiq/stats.h"

void cbq_correlate_opts_default(cbq_correlate_opts *o)
{
    *o = (cbq_correlate_opts){.n_boot = 10000, .n_perm = 100000, .exact_max_n = 9, .conf = 0.95,
                              .seed = 1};
}

void cbq_json_add_number(cJSON *obj, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(obj, key, v);
    else
        cJSON_AddNullToObject(obj, key);
}

static cJSON *number_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static cJSON *number_array(const double *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, number_or_null(v[i]));
    return a;
}

static cJSON *string_array(char *const *s, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(s[i]));
    return a;
}

static cJSON *pair(double a, double b)
{
    double v[2] = {a, b};
    return number_array(v, 2);
}

static void add_reason(cJSON *obj, const char *reason)
{
    if (reason)
        cJSON_AddStringToObject(obj, "reason", reason);
}

static cJSON *corr_json(const cbq_corr *c, const char *name)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", (double)c->n);
    cbq_json_add_number(o, name, c->r);
    cbq_json_add_number(o, "p", c->p);
    cJSON_AddStringToObject(o, "p_method", c->p_method);
    add_reason(o, c->reason);
    return o;
}

static cJSON *loo_json(const cbq_loo *l, char *const *volumes)
{
    cJSON *o = cJSON_CreateObject();
    if (l->rho) {
        cJSON_AddItemToObject(o, "left_out", string_array(volumes, l->n));
        cJSON_AddItemToObject(o, "rho", number_array(l->rho, l->n));
        cJSON_AddItemToObject(o, "p", number_array(l->p, l->n));
        cJSON_AddItemToObject(o, "influence", number_array(l->influence, l->n));
    }
    cbq_json_add_number(o, "median_rho", l->median_rho);
    cbq_json_add_number(o, "median_p", l->median_p);
    cbq_json_add_number(o, "min_rho", l->min_rho);
    cbq_json_add_number(o, "max_rho", l->max_rho);
    cbq_json_add_number(o, "jackknife_se", l->jackknife_se);
    add_reason(o, l->reason);
    return o;
}

static cJSON *boot_json(const cbq_boot *b, uint64_t seed)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "percentile", pair(b->percentile[0], b->percentile[1]));
    cJSON_AddItemToObject(o, "bca", pair(b->bca[0], b->bca[1]));
    cJSON_AddNumberToObject(o, "n_boot", (double)b->n_boot);
    cJSON_AddNumberToObject(o, "n_valid", (double)b->n_valid);
    cbq_json_add_number(o, "z0", b->z0);
    cbq_json_add_number(o, "accel", b->accel);
    cJSON_AddNumberToObject(o, "seed", (double)seed);
    add_reason(o, b->reason);
    return o;
}

/* All statistics of one group; *p_spearman receives its t p for the adjustment. */
static int group_json(const cbq_corr_group *g, const cbq_correlate_opts *o, cJSON *obj,
                      double *p_spearman, cbq_error *err)
{
    cbq_corr sp, pe, ke;
    CBQ_TRY(cbq_spearman(g->x, g->y, g->n, &sp, err));
    CBQ_TRY(cbq_pearson(g->x, g->y, g->n, &pe, err));
    CBQ_TRY(cbq_kendall(g->x, g->y, g->n, &ke, err));
    *p_spearman = sp.p;
    cJSON_AddNumberToObject(obj, "n", (double)g->n);
    cbq_json_add_number(obj, "rho", sp.r);
    cbq_json_add_number(obj, "p", sp.p);
    cJSON_AddStringToObject(obj, "p_method", "t");
    add_reason(obj, sp.reason);
    double ci[2];
    cbq_fisher_ci(sp.r, g->n, o->conf, ci);
    cJSON_AddItemToObject(obj, "ci95", pair(ci[0], ci[1]));
    cJSON_AddStringToObject(obj, "ci95_method", "fisher_z");

    cbq_perm pp;
    CBQ_TRY(cbq_spearman_perm(g->x, g->y, g->n, o->exact_max_n, o->n_perm, o->seed, &pp, err));
    cbq_json_add_number(obj, "p_perm", pp.p);
    cJSON_AddNumberToObject(obj, "n_perm", (double)pp.n_perm);
    cJSON_AddBoolToObject(obj, "p_perm_exact", pp.exact);
    if (pp.reason)
        cJSON_AddStringToObject(obj, "p_perm_reason", pp.reason);

    cbq_boot bt;
    CBQ_TRY(cbq_spearman_bootstrap(g->x, g->y, g->n, o->n_boot, o->conf, o->seed, &bt, NULL, err));
    cJSON_AddItemToObject(obj, "ci95_bootstrap", boot_json(&bt, o->seed));

    cbq_loo loo;
    CBQ_TRY(cbq_spearman_loo(g->x, g->y, g->n, sp.r, &loo, err));
    cJSON_AddItemToObject(obj, "loo", loo_json(&loo, g->volumes));
    cbq_loo_free(&loo);

    cJSON_AddItemToObject(obj, "pearson", corr_json(&pe, "r"));
    cJSON_AddItemToObject(obj, "kendall", corr_json(&ke, "tau"));
    if (g->k) {
        cbq_corr pa;
        CBQ_TRY(cbq_partial_spearman(g->x, g->y, (const double *const *)g->z, g->k, g->n, &pa, err));
        cJSON *pj = corr_json(&pa, "rho");
        cJSON_AddNumberToObject(pj, "df", (double)g->n - 2.0 - (double)g->k);
        cJSON_AddItemToObject(obj, "partial_spearman", pj);
    }
    cJSON_AddItemToObject(obj, "volumes", string_array(g->volumes, g->n));
    cJSON_AddItemToObject(obj, "only_in_x", string_array(g->only_x, g->n_only_x));
    cJSON_AddItemToObject(obj, "only_in_y", string_array(g->only_y, g->n_only_y));
    return CBQ_OK;
}

int cbq_correlate(const cbq_joined *j, const cbq_correlate_opts *o, cJSON **out, cbq_error *err)
{
    cJSON *root = cJSON_CreateObject(), *cats = cJSON_AddObjectToObject(root, "categories");
    double *p = malloc((2 * j->n_groups + 1) * sizeof *p), *holm = p + j->n_groups;
    cJSON **objs = malloc((j->n_groups + 1) * sizeof *objs);
    int rc = root && cats && p && objs ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "statistics: out of memory");
    for (size_t g = 0; rc == CBQ_OK && g < j->n_groups; g++) {
        objs[g] = cJSON_AddObjectToObject(cats, j->groups[g].category);
        rc = objs[g] ? group_json(&j->groups[g], o, objs[g], &p[g], err)
                     : CBQ_FAIL(err, CBQ_ERR_FORMAT, "category '%s' appears twice", j->groups[g].category);
    }
    if (rc == CBQ_OK)
        rc = cbq_p_adjust_holm(p, j->n_groups, holm, err);
    for (size_t g = 0; rc == CBQ_OK && g < j->n_groups; g++)
        cbq_json_add_number(objs[g], "p_holm", holm[g]);
    if (rc == CBQ_OK)
        rc = cbq_p_adjust_bh(p, j->n_groups, holm, err);
    for (size_t g = 0; rc == CBQ_OK && g < j->n_groups; g++)
        cbq_json_add_number(objs[g], "p_bh", holm[g]);
    free(p);
    free(objs);
    if (rc != CBQ_OK) {
        cJSON_Delete(root);
        return rc;
    }
    *out = root;
    return CBQ_OK;
}
