/* cohort.h - the study's view of a cohort (private to src/study): one row
 * per volume with its resolved paths and split, read from a cohort.csv. */
#ifndef CBQ_STUDY_COHORT_H
#define CBQ_STUDY_COHORT_H

#include <stddef.h>
#include "cbctiq/error.h"
#include "cbctiq/orient.h"
#include "cbctiq/volume.h"

typedef enum { SPLIT_NONE = 0, SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST } study_split;

typedef struct {
    char id[256];
    char path[4096];   /* resolved against the CSV's folder */
    char mask[4096];   /* "" when none */
    char rtstruct[4096]; /* DICOM RTSTRUCT file, "" when none */
    study_split split;
} study_volume;

typedef struct {
    size_t n;
    study_volume *v;   /* owned */
    int has_split;     /* every row had a valid split */
    char labels_json[4096]; /* labels.json beside the CSV, "" when absent */
} study_cohort;

/* Reads cohort.csv (volume_id, path, optional mask / split). Paths are made
 * relative to the CSV's folder; duplicate ids, empty paths and unknown split
 * values fail naming file:line. */
int study_cohort_read(study_cohort *c, const char *csv_path, cbq_error *err);
void study_cohort_free(study_cohort *c);
const char *study_split_name(study_split s);

/* Loads sv's volume on the canonical grid (*xf, may be NULL: how it was
 * reoriented) and picks the axial slices the study uses: all of them, or
 * with structures_only (train.slices = "structures") those where sv's mask
 * has a label. *ks is allocated (caller frees it, and *vol, also after a
 * failure); *n may be 0. */
int study_volume_used_slices(const study_volume *sv, int structures_only, cbq_volume *vol,
                             cbq_reorient *xf, size_t **ks, size_t *n, cbq_error *err);

/* The path of `target` relative to folder `from_dir`, both resolved as the
 * system resolves them (symbolic links, "." and ".."), so that
 * from_dir/result opens target. from_dir and target's folder must exist. */
int study_relative_path(char *out, size_t cap, const char *from_dir, const char *target,
                        cbq_error *err);

#endif
