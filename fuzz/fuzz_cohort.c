/* fuzz_cohort.c - libFuzzer target for the one cohort.csv reader
 * (cohort.h: volume_id, path, optional mask, rtstruct and split; paths
 * resolved against the CSV's folder), and the --split selection on what
 * it reads. */
#include <stdio.h>

#include "cbctiq/cohort.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[128];
    if (fuzz_write_file(path, sizeof path, "cohort", ".csv", data, size) != 0)
        return 0;
    cbq_cohort c;
    cbq_error err = {0};
    if (cbq_cohort_read(&c, path, &err) == CBQ_OK) {
        size_t n;
        cbq_cohort_count_split(&c, "test", &n, &err);
        cbq_cohort_free(&c);
    }
    remove(path);
    return 0;
}
