/* versions.c - cbq_component_versions: what the study's numbers were
 * computed with. Kept beside the study because it is the one subsystem that
 * links every library. */
#include "cbctiq/versions.h"

#include <cairo.h>
#include <cjson/cJSON.h>
#include <gsl/gsl_version.h>
#include <png.h>
#include <stdio.h>
#include <zlib.h>

#include "cbctiq/dicom.h"

/* OpenBLAS's own cblas.h declares these; the project includes the
 * reference cblas.h elsewhere, so they are declared here. */
char *openblas_get_config(void);
char *openblas_get_corename(void);

#ifndef CBQ_VERSION
#define CBQ_VERSION "unknown"
#endif
#ifndef CBQ_NIFTI_VERSION
#define CBQ_NIFTI_VERSION "unknown"
#endif

static void put(cbq_component_version *out, size_t cap, size_t *n, const char *component,
                const char *fmt_version)
{
    if (*n >= cap)
        return;
    out[*n].component = component;
    snprintf(out[*n].version, sizeof out[*n].version, "%s", fmt_version);
    (*n)++;
}

static const char *compiler(char *buf, size_t cap)
{
#if defined(__clang__)
    snprintf(buf, cap, "clang %s", __clang_version__);
#elif defined(__GNUC__)
    snprintf(buf, cap, "gcc %s", __VERSION__);
#else
    snprintf(buf, cap, "unknown C compiler");
#endif
    return buf;
}

/* _OPENMP is the specification's release date (yyyymm). */
static const char *openmp_spec(int date)
{
    return date >= 202011 ? "5.1" : date >= 201811 ? "5.0" : date >= 201511 ? "4.5"
         : date >= 201307 ? "4.0" : "3.1 or older";
}

size_t cbq_component_versions(cbq_component_version *out, size_t cap)
{
    size_t n = 0;
    char buf[160];
    put(out, cap, &n, "cbctiq", CBQ_VERSION);
    put(out, cap, &n, "compiler", compiler(buf, sizeof buf));
#ifdef _OPENMP
    snprintf(buf, sizeof buf, "%s (_OPENMP %d)", openmp_spec(_OPENMP), _OPENMP);
    put(out, cap, &n, "OpenMP", buf);
#endif
    snprintf(buf, sizeof buf, "%s (core %s)", openblas_get_config(), openblas_get_corename());
    put(out, cap, &n, "OpenBLAS", buf);
    put(out, cap, &n, "GSL", gsl_version);
    put(out, cap, &n, "DCMTK", cbq_dicom_toolkit_version());
    put(out, cap, &n, "nifti_clib", "Debian package " CBQ_NIFTI_VERSION);
    put(out, cap, &n, "cJSON", cJSON_Version());
    put(out, cap, &n, "cairo", cairo_version_string());
    put(out, cap, &n, "libpng", png_get_libpng_ver(NULL));
    put(out, cap, &n, "zlib", zlibVersion());
    return n;
}
