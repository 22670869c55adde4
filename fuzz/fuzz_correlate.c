/* fuzz_correlate.c - libFuzzer target for the table join behind `cbctiq
 * correlate`: the input is split at its first NUL byte into ae.csv and
 * consensus.csv (no NUL: both the same file), joined on volume_id and
 * category, and correlated with few resamples so that each input is fast. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "cbctiq/table_join.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t n1 = nul ? (size_t)(nul - data) : size;
    char xpath[128], ypath[128];
    if (fuzz_write_file(xpath, sizeof xpath, "ae", ".csv", data, n1) != 0)
        return 0;
    const uint8_t *y = nul ? nul + 1 : data;
    size_t ny = nul ? size - n1 - 1 : size;
    if (fuzz_write_file(ypath, sizeof ypath, "consensus", ".csv", y, ny) != 0) {
        remove(xpath);
        return 0;
    }
    char xs[160], ys[160];
    snprintf(xs, sizeof xs, "%s:ae", xpath);
    snprintf(ys, sizeof ys, "%s:consensus", ypath);
    cbq_column_ref x, yref;
    cbq_error err = {0};
    cbq_joined j;
    if (cbq_column_ref_parse(&x, xs, &err) == CBQ_OK && cbq_column_ref_parse(&yref, ys, &err) == CBQ_OK &&
        cbq_join_columns(&x, &yref, NULL, 0, 1, NULL, &j, &err) == CBQ_OK) {
        cbq_correlate_opts o;
        cbq_correlate_opts_default(&o);
        o.n_boot = 20;
        o.n_perm = 20;
        o.exact_max_n = 5;
        cJSON *out = NULL;
        if (cbq_correlate(&j, &o, &out, &err) == CBQ_OK)
            cJSON_Delete(out);
        cbq_joined_free(&j);
    }
    remove(xpath);
    remove(ypath);
    return 0;
}
