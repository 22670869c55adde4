/* sim_test_util.h - analytic projections shared by the simulator tests:
 * exact chord lengths through cylinders and spheres, independent of the
 * Joseph projector under test. */
#ifndef SIM_TEST_UTIL_H
#define SIM_TEST_UTIL_H

#include <math.h>
#include "cbctiq/sim.h"

/* Geometry of ray (iu, iv) of projection p: source s and unit direction d. */
static inline void test_ray(const cbq_cb_geometry *g, size_t p, size_t iu, size_t iv, double s[3],
                            double d[3])
{
    double b = cbq_cb_angle(g, p), c = cos(b), sn = sin(b);
    double u = ((double)iu - 0.5 * (double)(g->nu - 1)) * g->du + g->u_offset;
    double v = ((double)iv - 0.5 * (double)(g->nv - 1)) * g->dv;
    double dc = g->sdd - g->sad;
    s[0] = g->sad * c;
    s[1] = g->sad * sn;
    s[2] = 0;
    double q[3] = {-dc * c - u * sn, -dc * sn + u * c, v};
    double n = 0;
    for (int a = 0; a < 3; a++) {
        d[a] = q[a] - s[a];
        n += d[a] * d[a];
    }
    n = sqrt(n);
    for (int a = 0; a < 3; a++)
        d[a] /= n;
}

/* Chord of a ray through an infinite cylinder along Z (centre cx, cy). */
static inline double test_chord_cylinder(const double s[3], const double d[3], double cx, double cy,
                                         double r)
{
    double ox = s[0] - cx, oy = s[1] - cy;
    double a = d[0] * d[0] + d[1] * d[1], b = ox * d[0] + oy * d[1], c = ox * ox + oy * oy - r * r;
    double disc = b * b - a * c;
    return disc > 0 ? 2.0 * sqrt(disc) / a : 0.0;
}

/* Chord through a sphere. */
static inline double test_chord_sphere(const double s[3], const double d[3], const double c3[3],
                                       double r)
{
    double o[3] = {s[0] - c3[0], s[1] - c3[1], s[2] - c3[2]};
    double b = o[0] * d[0] + o[1] * d[1] + o[2] * d[2];
    double c = o[0] * o[0] + o[1] * o[1] + o[2] * o[2] - r * r;
    double disc = b * b - c;
    return disc > 0 ? 2.0 * sqrt(disc) : 0.0;
}

/* Fills proj with mu * chord through a water cylinder of radius r. */
static inline void test_project_cylinder(const cbq_cb_geometry *g, double r, double mu, float *proj)
{
    for (size_t p = 0; p < g->n_proj; p++)
        for (size_t iv = 0; iv < g->nv; iv++)
            for (size_t iu = 0; iu < g->nu; iu++) {
                double s[3], d[3];
                test_ray(g, p, iu, iv, s, d);
                proj[iu + g->nu * (iv + g->nv * p)] = (float)(mu * test_chord_cylinder(s, d, 0, 0, r));
            }
}

#endif
