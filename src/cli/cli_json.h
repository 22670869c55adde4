/* cli_json.h - writing a cJSON document to a file atomically (CLI helper). */
#ifndef CBCTIQ_CLI_JSON_H
#define CBCTIQ_CLI_JSON_H

#include <cjson/cJSON.h>
#include "cbctiq/error.h"

/* Pretty-prints doc to path through cbq_atomic_*; doc stays the caller's. */
int cli_write_json(const cJSON *doc, const char *path, cbq_error *err);

#endif
