/* ranks.c - average ranks (ties share the mean of their positions), and a
 * precomputed ordering that ranks any multiset of a sample's points in O(n):
 * the kernel under leave-one-out, bootstrap and jackknife, which otherwise
 * would re-sort for every subsample. */
#include "stats_internal.h"

#include <gsl/gsl_sort.h>
#include <math.h>
#include <stdlib.h>

int cbq_rank_average(const double *x, size_t n, double *ranks, cbq_error *err)
{
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    if (!order)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "ranking %zu values: out of memory", n);
    gsl_sort_index(order, x, 1, n);
    for (size_t k = 0; k < n;) {
        size_t end = k + 1;
        while (end < n && x[order[end]] == x[order[k]])
            end++;
        /* positions k..end-1 (0-based) share rank mean(k+1 .. end) */
        double r = 0.5 * (double)(k + 1 + end);
        for (size_t j = k; j < end; j++)
            ranks[order[j]] = r;
        k = end;
    }
    free(order);
    return CBQ_OK;
}

int cbq_rank_plan_init(cbq_rank_plan *plan, const double *x, size_t n, cbq_error *err)
{
    plan->n = n;
    plan->order = malloc((n ? n : 1) * sizeof *plan->order);
    plan->group_end = malloc((n ? n : 1) * sizeof *plan->group_end);
    if (!plan->order || !plan->group_end) {
        cbq_rank_plan_free(plan);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "ranking %zu values: out of memory", n);
    }
    gsl_sort_index(plan->order, x, 1, n);
    for (size_t k = 0; k < n;) {
        size_t end = k + 1;
        while (end < n && x[plan->order[end]] == x[plan->order[k]])
            end++;
        for (size_t j = k; j < end; j++)
            plan->group_end[j] = end;
        k = end;
    }
    return CBQ_OK;
}

void cbq_rank_plan_free(cbq_rank_plan *plan)
{
    free(plan->order);
    free(plan->group_end);
    plan->order = plan->group_end = NULL;
}

void cbq_rank_plan_ranks(const cbq_rank_plan *plan, const uint32_t *counts, double *ranks)
{
    const size_t *order = plan->order;
    uint64_t before = 0; /* copies with a smaller value */
    for (size_t k = 0; k < plan->n;) {
        size_t end = plan->group_end[k];
        if (end == k + 1) { /* untied value: the common case, one gather */
            uint32_t c = counts[order[k]];
            ranks[order[k]] = c ? (double)before + 0.5 * (double)(c + 1) : 0.0;
            before += c;
            k = end;
            continue;
        }
        uint64_t in_group = 0;
        for (size_t j = k; j < end; j++)
            in_group += counts[order[j]];
        /* the group occupies positions before+1 .. before+in_group */
        double r = in_group ? (double)before + 0.5 * (double)(in_group + 1) : 0.0;
        for (size_t j = k; j < end; j++)
            ranks[order[j]] = counts[order[j]] ? r : 0.0;
        before += in_group;
        k = end;
    }
}

double cbq_spearman_counts(const cbq_rank_plan *px, const cbq_rank_plan *py,
                           const uint32_t *counts, double *rx, double *ry)
{
    size_t n = px->n;
    cbq_rank_plan_ranks(px, counts, rx);
    cbq_rank_plan_ranks(py, counts, ry);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += counts[i];
    double mean = 0.5 * (double)(total + 1);
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        if (!counts[i])
            continue;
        double c = (double)counts[i], dx = rx[i] - mean, dy = ry[i] - mean;
        sxy += c * dx * dy;
        sxx += c * dx * dx;
        syy += c * dy * dy;
    }
    return stats_r_from_sums(sxy, sxx, syy);
}
