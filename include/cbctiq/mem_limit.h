/* mem_limit.h - refusing requests larger than the memory this process can
 * get, before allocating them (a calloc that overcommits would succeed and
 * the process would be killed later, or the machine would swap).
 *
 *   CBQ_TRY(cbq_mem_check(bytes, "the network for batch 64", err));
 */
#ifndef CBCTIQ_MEM_LIMIT_H
#define CBCTIQ_MEM_LIMIT_H

#include <stdint.h>
#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes this process can still expect to obtain: the smallest of
 * MemAvailable (/proc/meminfo), the cgroup v2 limit minus its usage, and
 * RLIMIT_AS. UINT64_MAX when none of them is known. Reads files; no state. */
uint64_t cbq_mem_available(void);

/* CBQ_OK when `bytes` fit in cbq_mem_available(); otherwise CBQ_ERR_NOMEM
 * with "WHAT needs X GiB but only Y GiB of memory are available". */
int cbq_mem_check(uint64_t bytes, const char *what, cbq_error *err);

#ifdef __cplusplus
}
#endif

#endif
