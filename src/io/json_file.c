/* json_file.c - atomic JSON output (see json_file.h). */
#include "cbctiq/json_file.h"

#include <stdlib.h>

#include "cbctiq/atomic_file.h"

int cbq_json_write(const cJSON *doc, const char *path, cbq_error *err)
{
    char *text = cJSON_Print(doc);
    if (!text)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory formatting JSON", path);
    cbq_atomic_file af;
    int rc = cbq_atomic_open(&af, path, err);
    if (rc == CBQ_OK) {
        fputs(text, af.fp);
        fputc('\n', af.fp);
        rc = cbq_atomic_commit(&af, err);
    }
    free(text);
    return rc;
}
