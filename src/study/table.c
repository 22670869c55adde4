/* table.c - the poster's table on stdout, from the stats stage's table.csv
 * (so a fully cached rerun prints exactly what the first run printed). */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/csv.h"

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

int study_print_table(const study_ctx *ctx, FILE *out, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_path(path, sizeof path, ctx->dir[CBQ_STAGE_STATS], "table.csv", err));
    cbq_csv t;
    CBQ_TRY(cbq_csv_read(&t, path, err));
    static const char *const cols[] = {"category", "n", "median_loo_rho", "median_loo_p",
                                       "rho", "p", "ci_low", "ci_high"};
    size_t c[8];
    int rc = CBQ_OK;
    for (int i = 0; i < 8 && rc == CBQ_OK; i++)
        rc = cbq_csv_require_col(&t, cols[i], &c[i], err);
    if (rc == CBQ_OK) {
        fprintf(out, "%-15s %3s %9s %9s %7s %9s  %s\n", "category", "n", "LOO rho", "LOO p",
                "rho", "p", "95% CI of rho");
        fprintf(out, "%-15s %3s %9s %9s %7s %9s\n", "", "", "(median)", "(median)", "", "");
        for (size_t r = 0; r < t.n_rows; r++) {
            fprintf(out, "%-15s %3s", cbq_csv_cell(&t, r, c[0]), cbq_csv_cell(&t, r, c[1]));
            put_num(out, cbq_csv_cell(&t, r, c[2]), 9, 3);
            put_num(out, cbq_csv_cell(&t, r, c[3]), 9, 4);
            put_num(out, cbq_csv_cell(&t, r, c[4]), 7, 3);
            put_num(out, cbq_csv_cell(&t, r, c[5]), 9, 4);
            fprintf(out, "  [");
            put_num(out, cbq_csv_cell(&t, r, c[6]), 6, 3);
            fprintf(out, ",");
            put_num(out, cbq_csv_cell(&t, r, c[7]), 6, 3);
            fprintf(out, " ]\n");
        }
    }
    cbq_csv_free(&t);
    return rc;
}
