/* helper_io.c - see helper_io.h. */
#include "helper_io.h"

#include <stdio.h>
#include <stdlib.h>

void helper_die(const char *prog, const char *what, const cbq_error *err)
{
    fprintf(stderr, "%s: %s%s%s\n", prog, what, err ? ": " : "", err ? err->msg : "");
    exit(1);
}

float *helper_read_f32(const char *prog, const char *path, size_t count)
{
    float *buf = malloc(count * sizeof *buf);
    FILE *fp = fopen(path, "rb");
    if (!buf || !fp || fread(buf, sizeof *buf, count, fp) != count)
        helper_die(prog, path, NULL);
    fclose(fp);
    return buf;
}
