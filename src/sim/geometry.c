/* geometry.c - the circular cone-beam orbit of a linac's on-board imager:
 * defaults, short-scan range, projection angles and validation. The frame
 * conventions are written once in sim.h. */
#include "cbctiq/sim.h"

#include <math.h>

void cbq_cb_geometry_default(cbq_cb_geometry *g, size_t nu, size_t nv, size_t n_proj)
{
    g->sad = 1000.0;
    g->sdd = 1500.0;
    g->nu = nu;
    g->nv = nv;
    /* A 397 x 298 mm panel (Varian OBI class) binned to nu x nv pixels. */
    g->du = 397.0 / (double)nu;
    g->dv = 298.0 / (double)nv;
    g->u_offset = 0.0;
    g->n_proj = n_proj;
    g->start = 0.0;
    g->arc = 2.0 * CBQ_PI;
    g->short_scan = 0;
}

double cbq_cb_fan_half_angle(const cbq_cb_geometry *g)
{
    double half = 0.5 * (double)g->nu * g->du;
    double umax = fmax(fabs(g->u_offset + half), fabs(g->u_offset - half));
    return atan(umax / g->sdd);
}

void cbq_cb_geometry_make_short(cbq_cb_geometry *g)
{
    /* Two degrees beyond the minimum so that Parker's weights have room to
     * taper smoothly at both ends. */
    g->arc = CBQ_PI + 2.0 * cbq_cb_fan_half_angle(g) + 10.0 * CBQ_PI / 180.0;
    g->short_scan = 1;
}

double cbq_cb_angle(const cbq_cb_geometry *g, size_t p)
{
    return g->start + ((double)p + 0.5) * g->arc / (double)g->n_proj;
}

int cbq_cb_geometry_check(const cbq_cb_geometry *g, cbq_error *err)
{
    CBQ_CHECK_ARG(err, g->sad > 0 && g->sdd > g->sad,
                  "cone-beam geometry: need 0 < SAD < SDD, got SAD %g mm, SDD %g mm", g->sad, g->sdd);
    CBQ_CHECK_ARG(err, g->nu >= 2 && g->nv >= 1 && g->nu <= 8192 && g->nv <= 8192,
                  "cone-beam geometry: detector %zu x %zu pixels, expected 2..8192 x 1..8192",
                  g->nu, g->nv);
    CBQ_CHECK_ARG(err, g->du > 0 && g->dv > 0, "cone-beam geometry: detector pitch %g x %g mm must be > 0",
                  g->du, g->dv);
    CBQ_CHECK_ARG(err, g->n_proj >= 1 && g->n_proj <= 100000,
                  "cone-beam geometry: %zu projections, expected 1..100000", g->n_proj);
    CBQ_CHECK_ARG(err, g->arc > 0 && g->arc <= 2.0 * CBQ_PI + 1e-9,
                  "cone-beam geometry: arc %g rad, expected (0, 2 pi]", g->arc);
    CBQ_CHECK_ARG(err, !(g->short_scan && g->u_offset != 0.0),
                  "cone-beam geometry: a short scan with an offset (half-fan) panel is not supported");
    return CBQ_OK;
}
