/* fuzz_csv.c - libFuzzer target for the generic CSV reader (quotes, line
 * ends, ragged rows) and the number parsers every table reader uses. */
#include "cbctiq/csv.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cbq_csv t;
    cbq_error err = {0};
    if (cbq_csv_parse(&t, (const char *)data, size, "fuzz.csv", &err) == CBQ_OK) {
        for (size_t r = 0; r < t.n_rows && r < 64; r++)
            for (size_t c = 0; c < t.n_cols; c++) {
                double d;
                long long v;
                cbq_csv_get_double(&t, r, c, &d, &err);
                cbq_csv_get_int(&t, r, c, &v, &err);
            }
        cbq_csv_col(&t, "volume_id");
    }
    cbq_csv_free(&t);
    return 0;
}
