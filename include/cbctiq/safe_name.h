/* safe_name.h - may a name read from a user's file become part of a file name?
 *
 * cbctiq builds file names from volume ids, categories and raters (a study's
 * attrib/maps/<id>_<category>.nii.gz, for example). A name that could lead
 * out of its folder or hide in a terminal is refused where it is read, never
 * encoded: an empty name, "." or "..", or one that contains '/', '\', or a
 * control character (bytes 1-31 and 127). Everything else (spaces, dots
 * inside a name, UTF-8) is kept as written. NUL bytes never reach here: the
 * readers refuse them first (csv.h).
 *
 *   char why[96];
 *   if (!cbq_name_ok(id, why, sizeof why))
 *       return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s:%zu: volume id %s", file, line, why);
 */
#ifndef CBCTIQ_SAFE_NAME_H
#define CBCTIQ_SAFE_NAME_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when `name` is a safe file-name part; otherwise 0, and `why` (cap bytes)
 * gets the name, shown with control characters as '?', and what is wrong
 * with it, e.g. "'../x' contains '/'". */
int cbq_name_ok(const char *name, char *why, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
