/* mem_limit.h - refusing requests larger than the memory this process can
 * get, before allocating them (a calloc that overcommits would succeed and
 * the process would be killed later, or the machine would swap).
 *
 *   CBQ_TRY(cbq_mem_check(bytes, "the network for batch 64", err));
 */
#ifndef CBCTIQ_MEM_LIMIT_H
#define CBCTIQ_MEM_LIMIT_H

#include <stddef.h>
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

/* Advice that the fresh buffer p[bytes] (not yet written) is about to be
 * filled: its 2 MiB-aligned interior is backed by huge pages where the
 * kernel allows it, so that the first touch takes one page fault per 2 MiB
 * instead of one per 4 KiB (the main cost of filling a buffer of a few MiB
 * on Linux). Advice only: nothing changes where it is refused. */
void cbq_mem_advise_huge(void *p, size_t bytes);

#ifdef __cplusplus
}
#endif

#endif
