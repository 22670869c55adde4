/* volume_io.c - dispatch between the NIfTI and DICOM readers (see volume_io.h). */
#define _POSIX_C_SOURCE 200809L
#include "cbctiq/volume_io.h"

#include <string.h>
#include <sys/stat.h>

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int cbq_path_is_nifti(const char *path)
{
    return ends_with(path, ".nii") || ends_with(path, ".nii.gz");
}

int cbq_path_is_nifti_input(const char *path)
{
    static const char *const pair[] = {".hdr", ".hdr.gz", ".img", ".img.gz"};
    for (size_t i = 0; i < sizeof pair / sizeof pair[0]; i++)
        if (ends_with(path, pair[i]))
            return 1;
    return cbq_path_is_nifti(path);
}

static const char *file_kind(mode_t mode)
{
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISDIR(mode)) return "a folder";
    return "not a regular file";
}

int cbq_volume_path_check(const char *path, int folder_ok, cbq_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode) || (folder_ok && S_ISDIR(st.st_mode)))
        return CBQ_OK;
    return CBQ_FAIL(err, CBQ_ERR_IO, "%s: is %s; expected a volume file%s", path,
                    file_kind(st.st_mode), folder_ok ? " or a DICOM series folder" : "");
}

int cbq_volume_load(cbq_volume *vol, cbq_volume_source *src, const char *path,
                    const char *series_uid, cbq_error *err)
{
    cbq_volume_source local;
    if (!src)
        src = &local;
    memset(src, 0, sizeof *src);
    int nifti = cbq_path_is_nifti_input(path);
    CBQ_TRY(cbq_volume_path_check(path, !nifti, err));
    if (nifti) {
        if (series_uid && series_uid[0])
            return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: a series UID only applies to DICOM input",
                            path);
        src->kind = CBQ_SOURCE_NIFTI;
        return cbq_nifti_read_ex(vol, &src->nifti, path, err);
    }
    src->kind = CBQ_SOURCE_DICOM;
    return cbq_dicom_read_series(vol, &src->dicom, path, series_uid, err);
}

int cbq_map_write_source(const char *path, const cbq_volume *canon_map, const cbq_reorient *xf,
                         cbq_error *err)
{
    cbq_volume back;
    CBQ_TRY(cbq_volume_uncanonical(&back, canon_map, xf, err));
    int rc = cbq_nifti_write(path, &back, CBQ_NIFTI_FLOAT32, err);
    cbq_volume_free(&back);
    return rc;
}
