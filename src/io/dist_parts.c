/* dist_parts.c - joining the ranks' part files of one table (dist_parts.h). */
#include "cbctiq/dist_parts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/text_file.h"

int cbq_dist_part_path(const cbq_dist *d, const char *final, char *buf, size_t cap)
{
    int n = d->size == 1 ? snprintf(buf, cap, "%s", final)
                         : snprintf(buf, cap, "%s.rank%d-of-%d.part", final, d->rank, d->size);
    return n >= 0 && (size_t)n < cap;
}

/* This rank's part without its header line (rank 0 keeps it). */
static int read_part(const cbq_dist *d, const char *final, char **text, size_t *len, size_t *skip,
                     cbq_error *err)
{
    char part[4096];
    if (!cbq_dist_part_path(d, final, part, sizeof part))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: path too long", final);
    CBQ_TRY(cbq_read_text_file(part, 0, text, len, err));
    remove(part);
    *skip = 0;
    if (d->rank != 0) {
        const char *nl = memchr(*text, '\n', *len);
        *skip = nl ? (size_t)(nl - *text) + 1 : *len;
    }
    return CBQ_OK;
}

static int write_joined(const char *final, const char *bytes, size_t len, cbq_error *err)
{
    cbq_atomic_file af;
    CBQ_TRY(cbq_atomic_open(&af, final, err));
    if (len && fwrite(bytes, 1, len, af.fp) != len) {
        cbq_atomic_abort(&af);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: write failed", final);
    }
    return cbq_atomic_commit(&af, err);
}

int cbq_dist_join_parts(const cbq_dist *d, const char *final, cbq_error *err)
{
    if (d->size == 1)
        return CBQ_OK;
    char *text = NULL;
    size_t len = 0, skip = 0;
    CBQ_TRY(read_part(d, final, &text, &len, &skip, err));
    void *all = NULL;
    size_t all_len = 0;
    int rc = cbq_dist_gather_bytes(d, text + skip, len - skip, &all, &all_len, err);
    free(text);
    if (rc == CBQ_OK && d->rank == 0)
        rc = write_joined(final, all, all_len, err);
    free(all);
    return rc;
}
