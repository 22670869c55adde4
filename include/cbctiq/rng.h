/* rng.h - the one random number generator of cbctiq: xoshiro256**.
 *
 * State is always passed explicitly (no global generator), so a seed and a
 * thread count reproduce a run to the bit. Derive independent streams for
 * parallel work with cbq_rng_stream(seed, stream_id), never by sharing one.
 */
#ifndef CBCTIQ_RNG_H
#define CBCTIQ_RNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct { uint64_t s[4]; } cbq_rng;

/* Seeds through splitmix64 so that nearby seeds give unrelated streams. */
void cbq_rng_seed(cbq_rng *rng, uint64_t seed);
/* An independent stream for (seed, stream), e.g. one per volume or thread. */
void cbq_rng_stream(cbq_rng *rng, uint64_t seed, uint64_t stream);

uint64_t cbq_rng_u64(cbq_rng *rng);
/* Uniform in [0, 1) with 53 random bits. */
double cbq_rng_uniform(cbq_rng *rng);
/* Uniform integer in [0, n), unbiased (Lemire's method); n > 0. */
uint64_t cbq_rng_below(cbq_rng *rng, uint64_t n);
/* Standard normal (Marsaglia polar method, no cached spare: stateless beyond s). */
double cbq_rng_normal(cbq_rng *rng);
/* Fisher-Yates shuffle of idx[0..n). */
void cbq_rng_shuffle_size(cbq_rng *rng, size_t *idx, size_t n);

#ifdef __cplusplus
}
#endif
#endif
