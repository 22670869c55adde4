/* text_file.c - cbq_read_text_file. Reads until end of file into a buffer
 * that doubles, filling all of its free space per fread, rather than
 * trusting a size from stat, so pipes and growing files work too. */
#include "cbctiq/text_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FIRST_CAPACITY = 65536 };

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
        if (cap - used < FIRST_CAPACITY) { /* room for a good read and the NUL */
            cap = cap ? 2 * cap : FIRST_CAPACITY;
            char *grown = realloc(buf, cap);
            if (!grown) {
                rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            buf = grown;
        }
        size_t got = fread(buf + used, 1, cap - used - 1, fp);
        used += got;
        if (got == 0) {
            if (ferror(fp))
                rc = CBQ_FAIL(err, CBQ_ERR_IO, "%s: read error", path);
            break;
        }
    }
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
