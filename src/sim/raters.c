/* raters.c - from image figures to expert-like Likert scores.
 *
 * A latent quality per category is a logistic function of the figures the
 * category's readers look at (CNR for the glands, sharpness for the larynx,
 * streaks for the mandible). Each simulated rater sees it through a personal
 * bias, a slope (how much of the scale they use) and a trial-to-trial spread,
 * and answers with an integer 1..5. Weights follow experience: the more
 * experienced raters are also the more consistent ones. */
#include "cbctiq/sim.h"

#include <math.h>
#include <stdio.h>

static double to_scale(double x)
{
    return 1.0 + 4.0 / (1.0 + exp(-x));
}

static double cnr(const cbq_fom *f)
{
    return fmax(f->cnr, 0.05);
}

void cbq_latent_quality(const cbq_fom fom[CBQ_CAT_COUNT], double q[CBQ_CAT_COUNT])
{
    double x[CBQ_CAT_COUNT];
    const cbq_fom *f = fom;
    x[CBQ_CAT_PAROTID] = 2.2 * log(cnr(&f[CBQ_CAT_PAROTID]) / 1.6) -
                         (f[CBQ_CAT_PAROTID].streak - 35.0) / 40.0;
    x[CBQ_CAT_SUBMAND] = 2.2 * log(cnr(&f[CBQ_CAT_SUBMAND]) / 5.0) -
                         (f[CBQ_CAT_SUBMAND].streak - 25.0) / 30.0;
    x[CBQ_CAT_LARYNX] = 14.0 * (f[CBQ_CAT_LARYNX].sharpness - 0.76) +
                        0.7 * log(cnr(&f[CBQ_CAT_LARYNX]) / 5.0);
    x[CBQ_CAT_MANDIBLE] = -(f[CBQ_CAT_MANDIBLE].streak - 95.0) / 20.0 -
                          (f[CBQ_CAT_MANDIBLE].noise - 90.0) / 60.0;
    x[CBQ_CAT_OVERALL] = 0.3 * (x[CBQ_CAT_PAROTID] + x[CBQ_CAT_SUBMAND] + x[CBQ_CAT_LARYNX] +
                                x[CBQ_CAT_MANDIBLE]) -
                         (fabs(f[CBQ_CAT_OVERALL].cupping) - 60.0) / 50.0;
    for (int c = 0; c < CBQ_CAT_COUNT; c++)
        q[c] = to_scale(x[c]);
}

void cbq_raters_draw(cbq_rater *raters, size_t n, cbq_rng *rng)
{
    for (size_t r = 0; r < n; r++) {
        cbq_rater *t = &raters[r];
        /* Experience falls along the list: weights 1.0, 1.0, 0.8, 0.6, 0.5, ... */
        double exp_level = n > 1 ? 1.0 - (double)r / (double)(n - 1) : 1.0;
        snprintf(t->name, sizeof t->name, "r%u", (unsigned)(r + 1) % 100000u);
        t->weight = r < 2 ? 1.0 : fmax(0.4, 1.0 - 0.2 * (double)(r - 1));
        t->bias = 0.3 * cbq_rng_normal(rng);
        t->slope = 0.8 + 0.45 * cbq_rng_uniform(rng);
        t->spread = 0.3 + 0.3 * (1.0 - exp_level) + 0.1 * cbq_rng_uniform(rng);
    }
}

int cbq_rater_score(const cbq_rater *r, double latent, cbq_rng *rng)
{
    double s = 3.0 + r->slope * (latent - 3.0) + r->bias + r->spread * cbq_rng_normal(rng);
    long k = lrint(s);
    return k < 1 ? 1 : k > 5 ? 5 : (int)k;
}
