/* fuzz_dicom.c - libFuzzer target for the DICOM adapter's entry points: the
 * bytes become a one-file folder read as a series, then as an RTSTRUCT.
 * Any crash, sanitizer report or leak is a bug; errors are expected. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cbctiq/dicom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[64], path[96];
    snprintf(dir, sizeof dir, "/tmp/cbq_fuzz_dicom_%ld", (long)getpid());
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/x.dcm", dir);
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    cbq_volume vol;
    cbq_error err = {0};
    if (cbq_dicom_read_series(&vol, NULL, dir, NULL, &err) == CBQ_OK)
        cbq_volume_free(&vol);
    cbq_rtstruct rs;
    if (cbq_rtstruct_read(&rs, path, &err) == CBQ_OK)
        cbq_rtstruct_free(&rs);
    remove(path);
    return 0;
}
