/* sha256.h - SHA-256 (FIPS 180-4) for the stage cache: content hashes of
 * input files and of the options a stage depends on. Private to src/study.
 * Not constant-time and not meant for anything security-related. */
#ifndef CBQ_STUDY_SHA256_H
#define CBQ_STUDY_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t n_bytes;
    unsigned char block[64];
    size_t fill;
} cbq_sha256;

void cbq_sha256_init(cbq_sha256 *s);
void cbq_sha256_update(cbq_sha256 *s, const void *data, size_t n);
/* Writes 32 bytes of digest; the context must be re-initialised to reuse. */
void cbq_sha256_final(cbq_sha256 *s, unsigned char digest[32]);
/* Digest as 64 lowercase hex characters plus the terminating NUL. */
void cbq_sha256_hex(const unsigned char digest[32], char hex[65]);

#endif
