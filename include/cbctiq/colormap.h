/* colormap.h - the colour maps of cbctiq's figures: grey, viridis, inferno.
 *
 * viridis and inferno are perceptually uniform (lightness rises steadily from
 * one end to the other), so equal steps in attribution look like equal steps
 * in colour and the maps survive grey-scale printing. Each is rebuilt from 65
 * anchor colours of the published 256-entry tables (van der Walt & Smith,
 * matplotlib 2015) by a natural cubic spline; the result stays within 0.5/255
 * of the published table (checked by tests/draw/colormap_oracle.py).
 *
 *   cbq_colormap cm;
 *   CBQ_TRY(cbq_colormap_build(&cm, CBQ_CMAP_VIRIDIS, err));
 *   const unsigned char *rgb = cbq_colormap_lookup(&cm, 0.5);
 */
#ifndef CBCTIQ_COLORMAP_H
#define CBCTIQ_COLORMAP_H

#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CBQ_CMAP_VIRIDIS = 0, /* default for attribution maps */
    CBQ_CMAP_INFERNO,
    CBQ_CMAP_GREY
} cbq_colormap_id;

/* A 256-entry table; entry i stands for t = i / 255. Plain value, no heap. */
typedef struct {
    cbq_colormap_id id;
    float rgb_f[256][3];          /* sRGB in [0, 1], before rounding */
    unsigned char rgb[256][3];    /* the same, rounded to 8 bits */
} cbq_colormap;

/* Fills *out for map `id`; fails (CBQ_ERR_ARG) on an unknown id. */
int cbq_colormap_build(cbq_colormap *out, cbq_colormap_id id, cbq_error *err);

/* The 8-bit colour for t in [0, 1] (clamped; NaN gives entry 0). The
 * returned pointer points into *cm. */
const unsigned char *cbq_colormap_lookup(const cbq_colormap *cm, double t);

/* "viridis", "inferno", "grey". */
const char *cbq_colormap_name(cbq_colormap_id id);

/* Parses a name as written by cbq_colormap_name ("gray" accepted too). */
int cbq_colormap_parse(const char *name, cbq_colormap_id *id, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
