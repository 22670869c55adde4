/* fuzz_util.h - what every libFuzzer target here shares: writing the input
 * bytes to a per-process scratch file for the readers that take a path. */
#ifndef CBQ_FUZZ_UTIL_H
#define CBQ_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes data[0..size) to /tmp/cbq_fuzz_<tag>_<pid><ext> and returns 0 with
 * the name in path, or -1 when the file cannot be written. */
static inline int fuzz_write_file(char *path, size_t cap, const char *tag, const char *ext,
                                  const uint8_t *data, size_t size)
{
    snprintf(path, cap, "/tmp/cbq_fuzz_%s_%ld%s", tag, (long)getpid(), ext);
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    size_t put = size ? fwrite(data, 1, size, fp) : 0;
    return (fclose(fp) == 0 && put == size) ? 0 : -1;
}

#endif
