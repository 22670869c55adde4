/* text_file.c - cbq_read_text_file. Reads in chunks rather than trusting a
 * size from stat, so pipes and files that grow while read work too. */
#include "cbctiq/text_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CHUNK = 4096 };

int cbq_read_text_file(const char *path, size_t max_bytes, char **text, size_t *len,
                       cbq_error *err)
{
    *text = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t used = 0, cap = 0;
    int rc = CBQ_OK;
    for (;;) {
        if (max_bytes && used > max_bytes) {
            rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: larger than %zu bytes", path, max_bytes);
            break;
        }
        if (used + CHUNK + 1 > cap) {
            cap = cap ? 2 * cap : 2 * CHUNK;
            char *grown = realloc(buf, cap);
            if (!grown) {
                rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            buf = grown;
        }
        size_t got = fread(buf + used, 1, CHUNK, fp);
        used += got;
        if (got < CHUNK)
            break;
    }
    if (rc == CBQ_OK && ferror(fp))
        rc = CBQ_FAIL(err, CBQ_ERR_IO, "%s: read error", path);
    if (rc == CBQ_OK && max_bytes && used > max_bytes)
        rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: larger than %zu bytes", path, max_bytes);
    fclose(fp);
    if (rc != CBQ_OK) {
        free(buf);
        return rc;
    }
    buf[used] = '\0';
    *text = buf;
    if (len)
        *len = used;
    return CBQ_OK;
}
