/* fuzz_nifti.c - libFuzzer target for the NIfTI reader: the header decoder
 * on the raw bytes, then the whole reader (plain or gzip) on them as a file.
 * Any crash, sanitizer report or leak is a bug; errors are expected. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cbctiq/nifti.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cbq_nifti_header h;
    cbq_error err = {0};
    cbq_nifti_parse_header(&h, data, size, "fuzz", &err);

    char path[64];
    snprintf(path, sizeof path, "/tmp/cbq_fuzz_nifti_%ld.nii", (long)getpid());
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    cbq_volume vol;
    if (cbq_nifti_read(&vol, path, &err) == CBQ_OK)
        cbq_volume_free(&vol);
    remove(path);
    return 0;
}
