/* fuzz_rtstruct.c - libFuzzer target for the RTSTRUCT entry of the DICOM
 * adapter alone (contour sequences, ROI numbers, point counts), so that its
 * corpus grows on structure sets rather than on image series. */
#include <stdio.h>

#include "cbctiq/dicom.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[128];
    if (fuzz_write_file(path, sizeof path, "rtstruct", ".dcm", data, size) != 0)
        return 0;
    cbq_rtstruct rs;
    cbq_error err = {0};
    if (cbq_rtstruct_read(&rs, path, &err) == CBQ_OK)
        cbq_rtstruct_free(&rs);
    remove(path);
    return 0;
}
