/* hugepages.h - private to io: advice that a freshly allocated volume is
 * about to be filled front to back. On Linux, 2 MiB pages cut the page
 * faults of that first touch (the dominant cost of reading a large volume)
 * by 512x. Advice only: failure changes nothing. */
#ifndef CBQ_IO_HUGEPAGES_H
#define CBQ_IO_HUGEPAGES_H

#include <stdint.h>
#include <sys/mman.h>

#include "cbctiq/volume.h"

static inline void cbq_io_advise_huge(const cbq_volume *vol)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t page = (uintptr_t)2 << 20;
    uintptr_t start = ((uintptr_t)vol->data + page - 1) & ~(page - 1);
    uintptr_t end = (uintptr_t)(vol->data + cbq_volume_count(vol)) & ~(page - 1);
    if (end > start)
        madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
    (void)vol;
#endif
}

#endif
