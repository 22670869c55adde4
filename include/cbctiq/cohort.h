/* cohort.h - the one reader of cohort.csv (docs/formats.md), shared by the
 * study and every command that takes --cohort: one row per volume with its
 * paths resolved against the CSV's folder, its structures (label mask or
 * DICOM RTSTRUCT) and its split, plus the labels.json beside the CSV.
 *
 *     cbq_cohort c;
 *     CBQ_TRY(cbq_cohort_read(&c, "study/cohort/cohort.csv", err));
 *     for (size_t i = 0; i < c.n; i++)
 *         if (c.v[i].split == CBQ_SPLIT_TEST) ... c.v[i].path ...
 *     cbq_cohort_free(&c);
 */
#ifndef CBCTIQ_COHORT_H
#define CBCTIQ_COHORT_H

#include <stddef.h>

#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { CBQ_SPLIT_NONE = 0, CBQ_SPLIT_TRAIN, CBQ_SPLIT_VAL, CBQ_SPLIT_TEST } cbq_split;

typedef struct {
    char id[256];        /* a safe name (safe_name.h): it becomes part of file names */
    char path[4096];     /* volume (NIfTI or DICOM), resolved against the CSV's folder */
    char mask[4096];     /* label NIfTI, "" when none */
    char rtstruct[4096]; /* DICOM RTSTRUCT file, "" when none (a mask wins over it) */
    cbq_split split;     /* CBQ_SPLIT_NONE when the row has none */
    size_t line;         /* the row's line in the CSV, for messages */
} cbq_cohort_volume;

typedef struct {
    char csv[4096];         /* the file read */
    size_t n;
    cbq_cohort_volume *v;   /* n rows, owned */
    int has_split_column;   /* the file has a split column */
    int has_split;          /* every row has a valid split */
    char labels_json[4096]; /* labels.json beside the CSV, "" when absent */
} cbq_cohort;

/* Reads cohort.csv: required columns volume_id and path, optional mask,
 * rtstruct and split (train, val, test or empty). Paths are relative to the
 * CSV's folder unless absolute. Ids must be safe names and unique; a bad
 * cell fails naming file:line and what was expected. Free with
 * cbq_cohort_free (also safe after a failure). */
int cbq_cohort_read(cbq_cohort *c, const char *csv_path, cbq_error *err);
void cbq_cohort_free(cbq_cohort *c);

/* "train", "val", "test", or "" for CBQ_SPLIT_NONE. */
const char *cbq_split_name(cbq_split s);
/* Parses "train", "val", "test" (and "" as none); 0 when unknown. */
int cbq_split_parse(const char *s, cbq_split *out);

/* Rows selected by a split name as a user gives it (--split): "all" or NULL
 * selects every row, "train"/"val"/"test" the rows of that split. Fails
 * when the name is unknown, when a split is asked of a file without a split
 * column, or when nothing is selected. */
int cbq_cohort_count_split(const cbq_cohort *c, const char *split, size_t *n, cbq_error *err);
/* Whether row i belongs to `split` as above (the name must be valid). */
int cbq_cohort_in_split(const cbq_cohort *c, size_t i, const char *split);

/* The labels.json that names volume v's mask labels: the one beside the
 * cohort CSV, else the mask's own sidecar (structures.h). 0 when none. */
int cbq_cohort_labels_json(const cbq_cohort *c, const cbq_cohort_volume *v, char *out, size_t cap);

/* The path of `target` relative to folder `from_dir`, both resolved as the
 * system resolves them (symbolic links, "." and ".."), so that
 * from_dir/result opens target (a cohort.csv written into from_dir stays
 * valid when its folder moves). from_dir and target's folder must exist. */
int cbq_path_relative(char *out, size_t cap, const char *from_dir, const char *target,
                      cbq_error *err);

#ifdef __cplusplus
}
#endif

#endif
