/* atomic_file.h - write a file under a temporary name, then rename it.
 *
 * No partial output is ever visible under the final name: a crash, a kill or
 * an error leaves either the old file or nothing.
 *
 *   cbq_atomic_file af;
 *   CBQ_TRY(cbq_atomic_open(&af, "out.csv", &err));
 *   fprintf(af.fp, "...");
 *   CBQ_TRY(cbq_atomic_commit(&af, &err));   // or cbq_atomic_abort(&af)
 */
#ifndef CBCTIQ_ATOMIC_FILE_H
#define CBCTIQ_ATOMIC_FILE_H

#include <stdio.h>
#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    FILE *fp;             /* write here between open and commit */
    char final_path[4096];
    char tmp_path[4096];
} cbq_atomic_file;

int cbq_atomic_open(cbq_atomic_file *af, const char *path, cbq_error *err);
/* Flushes, fsyncs, closes and renames onto the final path. */
int cbq_atomic_commit(cbq_atomic_file *af, cbq_error *err);
/* Closes and removes the temporary file; safe to call twice. */
void cbq_atomic_abort(cbq_atomic_file *af);

/* Temporary sibling name for libraries that write files themselves
 * (nifti_clib, cairo): write to tmp, then cbq_atomic_rename(tmp, final), or
 * on failure cbq_atomic_discard(tmp). From the name on, the file is pending:
 * cbq_atomic_remove_pending removes it if the process is interrupted. */
int cbq_atomic_tmp_name(char *tmp, size_t cap, const char *final_path, cbq_error *err);
int cbq_atomic_rename(const char *tmp, const char *final_path, cbq_error *err);
/* Removes the temporary file and forgets it. */
void cbq_atomic_discard(const char *tmp);

/* The same for a writer that fills a whole folder with files (a DICOM
 * series): creates the empty temporary folder `tmp` beside `final_dir`,
 * pending like a temporary file (cbq_atomic_remove_pending removes it with
 * the files in it; one level, no subfolders). cbq_atomic_rename_dir moves
 * it onto final_dir, replacing a folder there (its files are removed after
 * the rename; the caller decides whether that folder may be replaced);
 * cbq_atomic_discard_dir removes it. */
int cbq_atomic_tmp_dir(char *tmp, size_t cap, const char *final_dir, cbq_error *err);
int cbq_atomic_rename_dir(const char *tmp, const char *final_dir, cbq_error *err);
void cbq_atomic_discard_dir(const char *tmp);

/* Unlinks every pending temporary file (named, not yet renamed or
 * discarded). Async-signal-safe: for a SIGINT/SIGTERM handler, so that an
 * interrupted write leaves no hidden file behind. A kill -9 cannot be
 * caught; its leftovers carry the dead process id in their names. */
void cbq_atomic_remove_pending(void);

/* mkdir -p; existing folders are fine. */
int cbq_mkdir_p(const char *path, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
