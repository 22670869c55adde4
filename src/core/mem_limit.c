/* mem_limit.c - how much memory a request may take (see mem_limit.h). Not an
 * allocator and not a quota: it only turns an impossible request into a
 * clear message before the allocation. */
#define _POSIX_C_SOURCE 200809L
#include "cbctiq/mem_limit.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

/* First number on the line of `path` that starts with `key` (whole file
 * when key is ""), in the file's unit; 0 when absent or "max". */
static uint64_t read_number(const char *path, const char *key)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return 0;
    char line[256];
    unsigned long long v = 0;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, key, klen) == 0) {
            if (sscanf(line + klen, " %llu", &v) != 1)
                v = 0;
            break;
        }
    }
    fclose(fp);
    return v;
}

static uint64_t min_known(uint64_t a, uint64_t b)
{
    return b && b < a ? b : a;
}

uint64_t cbq_mem_available(void)
{
    uint64_t avail = UINT64_MAX;
    uint64_t kib = read_number("/proc/meminfo", "MemAvailable:");
    if (kib && kib < UINT64_MAX / 1024)
        avail = kib * 1024;
    uint64_t cg_max = read_number("/sys/fs/cgroup/memory.max", "");
    uint64_t cg_cur = read_number("/sys/fs/cgroup/memory.current", "");
    if (cg_max)
        avail = min_known(avail, cg_max > cg_cur ? cg_max - cg_cur : 1);
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        avail = min_known(avail, (uint64_t)rl.rlim_cur);
    return avail;
}

int cbq_mem_check(uint64_t bytes, const char *what, cbq_error *err)
{
    uint64_t avail = cbq_mem_available();
    if (bytes <= avail)
        return CBQ_OK;
    return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s needs %.1f GiB but only %.1f GiB of memory are available",
                    what, (double)bytes / (1u << 30), (double)avail / (1u << 30));
}
