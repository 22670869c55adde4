/* boot_dump.c - test helper: runs cbq_spearman_bootstrap on the x, y columns
 * of a CSV and writes the resample indices it drew together with the
 * intervals, so that the oracle can recompute percentile and BCa intervals
 * with SciPy from the very same resamples.
 *
 * usage: stats_boot_dump IN.csv N_BOOT SEED OUT.json */
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "cbctiq/correlate.h"
#include "cbctiq/csv.h"
#include "cbctiq/stats.h"

static int fail(const cbq_error *err)
{
    fprintf(stderr, "stats_boot_dump: %s\n", err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: stats_boot_dump IN.csv N_BOOT SEED OUT.json\n");
        return 2;
    }
    cbq_error err = {0};
    cbq_csv t;
    if (cbq_csv_read(&t, argv[1], &err) != CBQ_OK)
        return fail(&err);
    size_t n = t.n_rows, cx, cy;
    size_t n_boot = strtoull(argv[2], NULL, 10);
    uint64_t seed = strtoull(argv[3], NULL, 10);
    double *x = malloc(2 * n * sizeof *x), *y = x + n;
    uint32_t *idx = malloc(n_boot * n * sizeof *idx);
    if (cbq_csv_require_col(&t, "x", &cx, &err) || cbq_csv_require_col(&t, "y", &cy, &err))
        return fail(&err);
    for (size_t i = 0; i < n; i++)
        if (cbq_csv_get_double(&t, i, cx, &x[i], &err) || cbq_csv_get_double(&t, i, cy, &y[i], &err))
            return fail(&err);
    cbq_boot b;
    if (cbq_spearman_bootstrap(x, y, n, n_boot, 0.95, seed, &b, idx, &err) != CBQ_OK)
        return fail(&err);
    cJSON *doc = cJSON_CreateObject(), *all = cJSON_AddArrayToObject(doc, "idx");
    for (size_t k = 0; k < n_boot; k++) {
        cJSON *row = cJSON_CreateArray();
        for (size_t i = 0; i < n; i++)
            cJSON_AddItemToArray(row, cJSON_CreateNumber(idx[k * n + i]));
        cJSON_AddItemToArray(all, row);
    }
    cbq_json_add_number(doc, "pct_lo", b.percentile[0]);
    cbq_json_add_number(doc, "pct_hi", b.percentile[1]);
    cbq_json_add_number(doc, "bca_lo", b.bca[0]);
    cbq_json_add_number(doc, "bca_hi", b.bca[1]);
    cbq_json_add_number(doc, "z0", b.z0);
    cbq_json_add_number(doc, "accel", b.accel);
    cJSON_AddNumberToObject(doc, "n_valid", (double)b.n_valid);
    char *text = cJSON_PrintUnformatted(doc);
    FILE *fp = fopen(argv[4], "w");
    if (!fp || fputs(text, fp) < 0 || fclose(fp) != 0) {
        fprintf(stderr, "stats_boot_dump: cannot write %s\n", argv[4]);
        return 1;
    }
    free(text);
    cJSON_Delete(doc);
    free(x);
    free(idx);
    cbq_csv_free(&t);
    return 0;
}
