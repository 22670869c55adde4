/* fuzz_cohort.c - libFuzzer target for the study's cohort.csv reader
 * (volume_id, path, optional mask and split; paths resolved against the
 * CSV's folder). */
#include <stdio.h>

#include "fuzz_util.h"
#include "study/cohort.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[128];
    if (fuzz_write_file(path, sizeof path, "cohort", ".csv", data, size) != 0)
        return 0;
    study_cohort c;
    cbq_error err = {0};
    if (study_cohort_read(&c, path, &err) == CBQ_OK)
        study_cohort_free(&c);
    remove(path);
    return 0;
}
