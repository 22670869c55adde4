/* text_file.h - a whole small text file (JSON sidecars, configurations,
 * stats.json) read into one NUL-terminated string. */
#ifndef CBCTIQ_TEXT_FILE_H
#define CBCTIQ_TEXT_FILE_H

#include <stddef.h>
#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads path into *text (caller frees; *len, may be NULL, gets its length
 * without the NUL). max_bytes > 0 refuses a longer file, naming it, before
 * it is read whole; 0 = no limit. */
int cbq_read_text_file(const char *path, size_t max_bytes, char **text, size_t *len,
                       cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
