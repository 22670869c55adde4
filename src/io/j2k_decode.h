/* j2k_decode.h - one JPEG 2000 frame decoded with OpenJPEG (private to io;
 * the DICOM adapter hands it the bytes of one frame of encapsulated pixel
 * data, transfer syntaxes 1.2.840.10008.1.2.4.90 and .91).
 *
 * Only greyscale frames are decoded: one component, no subsampling. The
 * samples come back as the codestream holds them (its precision and
 * signedness); how they become DICOM stored values is the caller's rule.
 */
#ifndef CBCTIQ_IO_J2K_DECODE_H
#define CBCTIQ_IO_J2K_DECODE_H

#include <stddef.h>
#include <stdint.h>
#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t width, height;   /* columns, rows */
    uint32_t precision;       /* bits per sample in the codestream, 1..32 */
    int is_signed;            /* the codestream's samples are signed */
    int32_t *samples;         /* width * height, row-major; owned, free() */
} cbq_j2k_frame;

/* Decodes `len` bytes (a raw J2K codestream or a JP2 file) that must hold a
 * width x height greyscale image; any other size is refused before
 * anything is allocated (a damaged header cannot ask for gigabytes).
 * Truncated or damaged streams are errors (OpenJPEG's strict mode), named
 * after `what` (e.g. "file.dcm frame 3"). On failure out->samples is NULL. */
int cbq_j2k_decode(cbq_j2k_frame *out, const unsigned char *data, size_t len, uint32_t width,
                   uint32_t height, const char *what, cbq_error *err);

/* The OpenJPEG version this build decodes with, e.g. "2.5.0". */
const char *cbq_j2k_library_version(void);

#ifdef __cplusplus
}
#endif
#endif
