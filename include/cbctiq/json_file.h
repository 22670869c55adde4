/* json_file.h - writing a cJSON document to a file atomically. */
#ifndef CBCTIQ_JSON_FILE_H
#define CBCTIQ_JSON_FILE_H

#include <cjson/cJSON.h>
#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Pretty-prints doc (with a final newline) to path through cbq_atomic_*:
 * the file appears whole or not at all. doc stays the caller's. */
int cbq_json_write(const cJSON *doc, const char *path, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
