/* table.c - the poster's table on stdout, from the stats stage's table.csv
 * (so a fully cached rerun prints exactly what the first run printed). */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/csv.h"
#include "cbctiq/report.h"

/* A p-value as the report writes it (%.2g, %.1e below 1e-3): a p of 0.0004
 * or 0.33 must not read as 0.0000 or lose its digits. */
static void put_p(FILE *out, const char *cell, int width)
{
    char *end = NULL;
    double v = cell[0] ? strtod(cell, &end) : NAN;
    char buf[32];
    if (!cell[0] || (end && *end) || !isfinite(v))
        snprintf(buf, sizeof buf, "-");
    else
        cbq_format_p(buf, sizeof buf, v);
    fprintf(out, " %*s", width, buf);
}

static void put_num(FILE *out, const char *cell, int width, int digits)
{
    double v;
    char *end = NULL;
    v = cell[0] ? strtod(cell, &end) : NAN;
    if (!cell[0] || (end && *end) || !isfinite(v))
        fprintf(out, " %*s", width, "-");
    else if (fabs(v) < 1e-3 && v != 0)
        fprintf(out, " %*.1e", width, v);
    else
        fprintf(out, " %*.*f", width, digits, v);
}

/* Under train.repeats the spread over seeds (table.csv's rho_seeds_* and
 * test_rho_seeds_* columns): the headline above is the seeds' ensemble. */
static void print_seed_spread(FILE *out, const cbq_csv *t)
{
    static const char *const cols[] = {"rho_seeds_median", "rho_seeds_min", "rho_seeds_max",
                                       "test_rho_seeds_median", "test_rho_seeds_min",
                                       "test_rho_seeds_max"};
    long c[6];
    for (int i = 0; i < 6; i++)
        if ((c[i] = cbq_csv_col(t, cols[i])) < 0)
            return;
    fprintf(out, "\nover training seeds (AE above: their mean); median [min, max]\n");
    fprintf(out, "%-15s%28s%28s\n", "category", "rho(AE, consensus)", "model's test rho");
    for (size_t r = 0; r < t->n_rows; r++) {
        fprintf(out, "%-15s", cbq_csv_cell(t, r, 0));
        for (int g = 0; g < 2; g++) {
            put_num(out, cbq_csv_cell(t, r, (size_t)c[3 * g]), 7, 3);
            fprintf(out, "  [");
            put_num(out, cbq_csv_cell(t, r, (size_t)c[3 * g + 1]), 6, 3);
            fprintf(out, ",");
            put_num(out, cbq_csv_cell(t, r, (size_t)c[3 * g + 2]), 6, 3);
            fprintf(out, " ]");
        }
        fprintf(out, "\n");
    }
}

int study_print_table(const study_ctx *ctx, FILE *out, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_STATS, "table.csv", path, sizeof path, err));
    cbq_csv t;
    CBQ_TRY(cbq_csv_read(&t, path, err));
    static const char *const cols[] = {"category", "n", "median_loo_rho", "median_loo_p",
                                       "rho", "p", "ci_low", "ci_high", "p_perm", "p_perm_exact"};
    enum { N_COLS = sizeof cols / sizeof cols[0] };
    size_t c[N_COLS];
    int rc = CBQ_OK;
    for (int i = 0; i < N_COLS && rc == CBQ_OK; i++)
        rc = cbq_csv_require_col(&t, cols[i], &c[i], err);
    int any_exact = 0;
    if (rc == CBQ_OK) {
        fprintf(out, "%-15s %3s %9s %9s %7s %9s  %s\n", "category", "n", "LOO rho", "LOO p",
                "rho", "p", "95% CI of rho");
        fprintf(out, "%-15s %3s %9s %9s %7s %9s\n", "", "", "(median)", "(median)", "", "");
        for (size_t r = 0; r < t.n_rows; r++) {
            fprintf(out, "%-15s %3s", cbq_csv_cell(&t, r, c[0]), cbq_csv_cell(&t, r, c[1]));
            put_num(out, cbq_csv_cell(&t, r, c[2]), 9, 3);
            put_p(out, cbq_csv_cell(&t, r, c[3]), 9);
            put_num(out, cbq_csv_cell(&t, r, c[4]), 7, 3);
            /* With few volumes the t approximation is poor (at n = 3 a rho
             * of 1 gives t p = 0): the exact permutation p is shown. */
            int exact = strcmp(cbq_csv_cell(&t, r, c[9]), "1") == 0;
            any_exact |= exact;
            put_p(out, cbq_csv_cell(&t, r, c[exact ? 8 : 5]), 9);
            fprintf(out, "  [");
            put_num(out, cbq_csv_cell(&t, r, c[6]), 6, 3);
            fprintf(out, ",");
            put_num(out, cbq_csv_cell(&t, r, c[7]), 6, 3);
            fprintf(out, " ]\n");
        }
        if (any_exact)
            fprintf(out, "p: exact permutation p (all n! pairings) where n is small enough, else "
                    "the t-test p (table.csv: p, p_perm)\n");        print_seed_spread(out, &t);
    }
    cbq_csv_free(&t);
    return rc;
}
