/* cli_json.c - atomic JSON output for subcommands. */
#include "cli_json.h"

#include <stdlib.h>

#include "cbctiq/atomic_file.h"

int cli_write_json(const cJSON *doc, const char *path, cbq_error *err)
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
