/* zeroed_alloc.c - see zeroed_alloc.h.
 *
 * Why huge pages: `cbctiq ae` on one 128x128x96 volume spent about 15% of
 * its CPU time in the kernel's page faults on the network's freshly
 * allocated blocks (200 MB of activations for batch 16), one fault per
 * 4 KiB. A block of 4 MiB or more is aligned to 2 MiB and advised for
 * transparent huge pages, so that its first touch takes one fault per 2 MiB.
 * Advice only: where the kernel refuses it, the block is the same.
 *
 * Why such a block is mapped rather than allocated: fresh anonymous pages
 * are zero already, so it needs no memset, and pages the process never
 * touches (a Grad-CAM net uses the gradient blocks of its last layers only)
 * are never faulted in and cleared at all. Memset-ing them cost a pass over
 * the whole block plus the kernel's clearing of every page. Sanitizer builds
 * keep the heap path, where AddressSanitizer checks every access. */
#define _DEFAULT_SOURCE /* madvise, MAP_ANONYMOUS */
#include "core/zeroed_alloc.h"

#include "cbctiq/mem_limit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define CBQ_ZEROED_MMAP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define CBQ_ZEROED_MMAP 0
#endif
#endif
#if !defined(CBQ_ZEROED_MMAP) && defined(MAP_ANONYMOUS)
#define CBQ_ZEROED_MMAP 1
#endif
#ifndef CBQ_ZEROED_MMAP
#define CBQ_ZEROED_MMAP 0
#endif

/* Kept in the 64 bytes before the block the caller gets. */
typedef struct {
    void *base;    /* what to release */
    size_t length; /* mapped length; 0: heap block (free(base)) */
} block_header;

enum { HEADER = 64 };
static const size_t huge = (size_t)2 << 20;

/* From the heap: the block starts `align` bytes into the allocation, the
 * header just before it. */
static void *heap_block(size_t bytes)
{
    const int big = bytes >= 2 * huge;
    const size_t align = big ? huge : HEADER;
    if (bytes > SIZE_MAX - 2 * align)
        return NULL;
    char *base = aligned_alloc(align, (bytes + 2 * align - 1) / align * align);
    if (!base)
        return NULL;
    char *p = base + align;
#ifdef MADV_HUGEPAGE
    if (big)
        (void)madvise(p, (bytes + huge - 1) / huge * huge, MADV_HUGEPAGE);
#endif
    memset(p, 0, bytes);
    block_header h = {base, 0};
    memcpy(p - HEADER, &h, sizeof h);
    return p;
}

#if CBQ_ZEROED_MMAP
/* length = one huge page ahead (the header sits at its end) + the block,
 * rounded to huge pages, + one more to align the block. */
static void *mapped_block(size_t bytes)
{
    if (bytes > SIZE_MAX - 3 * huge)
        return NULL;
    size_t length = (bytes + huge - 1) / huge * huge + 2 * huge;
    void *base = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    uintptr_t start = ((uintptr_t)base + huge + huge - 1) / huge * huge;
    char *p = (char *)start;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, (bytes + huge - 1) / huge * huge, MADV_HUGEPAGE);
#endif
    block_header h = {base, length};
    memcpy(p - HEADER, &h, sizeof h);
    return p;
}
#endif

void *cbq_alloc_zeroed(size_t bytes)
{
    if (bytes == 0)
        return NULL;
#if CBQ_ZEROED_MMAP
    if (bytes >= 2 * huge)
        return mapped_block(bytes);
#endif
    return heap_block(bytes);
}

void cbq_free_zeroed(void *p)
{
    if (!p)
        return;
    block_header h;
    memcpy(&h, (char *)p - HEADER, sizeof h);
#if CBQ_ZEROED_MMAP
    if (h.length) {
        (void)munmap(h.base, h.length);
        return;
    }
#endif
    free(h.base);
}

void cbq_mem_advise_huge(void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    uintptr_t start = ((uintptr_t)p + huge - 1) / huge * huge;
    uintptr_t end = ((uintptr_t)p + bytes) / huge * huge;
    if (p && end > start)
        (void)madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}
