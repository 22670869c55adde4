/* versions.h - the versions of cbctiq and of every library it computes
 * with, for `cbctiq --version` and the report's reproduction section: a
 * number in a paper should name the code that produced it. */
#ifndef CBCTIQ_VERSIONS_H
#define CBCTIQ_VERSIONS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *component; /* "cbctiq", "compiler", "OpenBLAS", ... */
    char version[160];
} cbq_component_version;

enum { CBQ_MAX_COMPONENTS = 16 };

/* Fills up to cap entries (CBQ_MAX_COMPONENTS is enough) and returns how
 * many: cbctiq itself, the C compiler, OpenMP, then the libraries (OpenBLAS
 * with its build configuration, GSL, DCMTK, nifti_clib, cJSON, cairo,
 * libpng, zlib). Runtime versions where the library reports one, else the
 * version of the headers it was built with. */
size_t cbq_component_versions(cbq_component_version *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
