/* fuzz_ratings.c - libFuzzer target for ratings.csv + raters.csv: the input
 * is split at its first NUL byte into the two files (no NUL: no raters.csv).
 * A table that reads is also turned into consensus and agreement values. */
#include <stdio.h>
#include <string.h>

#include "cbctiq/ratings_csv.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t n1 = nul ? (size_t)(nul - data) : size;
    char ratings[128], raters[128];
    if (fuzz_write_file(ratings, sizeof ratings, "ratings", ".csv", data, n1) != 0)
        return 0;
    int have_raters = nul != NULL;
    if (have_raters &&
        fuzz_write_file(raters, sizeof raters, "raters", ".csv", nul + 1, size - n1 - 1) != 0) {
        remove(ratings);
        return 0;
    }
    cbq_ratings r;
    cbq_error err = {0};
    if (cbq_ratings_read(&r, ratings, have_raters ? raters : NULL, &err) == CBQ_OK) {
        for (size_t c = 0; c < r.n_categories; c++) {
            for (size_t v = 0; v < r.n_volumes; v++) {
                cbq_consensus out;
                cbq_consensus_of(&r, c, v, CBQ_NO_RATER, &out);
            }
            cbq_agreement ag;
            if (cbq_agreement_compute(&r, c, &ag, &err) == CBQ_OK)
                cbq_agreement_free(&ag);
        }
        cbq_ratings_free(&r);
    }
    remove(ratings);
    if (have_raters)
        remove(raters);
    return 0;
}
