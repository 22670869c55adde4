/* zeroed_alloc.h - private to the library: zero-filled, 64-byte aligned
 * blocks for a network's parameters, activations and scratch, released with
 * cbq_free_zeroed (never free()). */
#ifndef CBQ_CORE_ZEROED_ALLOC_H
#define CBQ_CORE_ZEROED_ALLOC_H

#include <stddef.h>

/* A zeroed block of at least `bytes` (> 0) bytes, 64-byte aligned (2 MiB
 * aligned from 4 MiB on); NULL when out of memory. The caller releases it
 * with cbq_free_zeroed. */
void *cbq_alloc_zeroed(size_t bytes);
/* Releases a block of cbq_alloc_zeroed; NULL does nothing. */
void cbq_free_zeroed(void *p);

#endif
