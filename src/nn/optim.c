/* optim.c - SGD, Adam and AdamW over the net's parameter block (formulas in
 * optim.h, PyTorch 1.13 single-tensor code paths). Updates are computed in
 * double per element and stored as float, one pass per parameter. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/optim.h"

struct cbq_optim {
    cbq_net *net;
    cbq_optim_cfg cfg;
    size_t count, steps;
    float *m, *v; /* SGD: m = momentum buffer; Adam: first and second moments */
};

cbq_optim_cfg cbq_optim_defaults(cbq_optim_kind kind)
{
    cbq_optim_cfg c = {.kind = kind, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    if (kind == CBQ_OPTIM_SGD)
        c.lr = 0.01;
    if (kind == CBQ_OPTIM_ADAMW)
        c.weight_decay = 0.01;
    return c;
}

int cbq_optim_parse(const char *name, cbq_optim_kind *kind)
{
    static const struct { const char *name; cbq_optim_kind kind; } table[] = {
        {"sgd", CBQ_OPTIM_SGD}, {"adam", CBQ_OPTIM_ADAM}, {"adamw", CBQ_OPTIM_ADAMW}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (name && strcmp(name, table[i].name) == 0) {
            *kind = table[i].kind;
            return 1;
        }
    return 0;
}

int cbq_optim_create(cbq_optim **out, cbq_net *net, const cbq_optim_cfg *cfg, cbq_error *err)
{
    *out = NULL;
    CBQ_CHECK_ARG(err, cfg->lr >= 0.0, "optimiser: learning rate %g must be >= 0", cfg->lr);
    CBQ_CHECK_ARG(err, cfg->weight_decay >= 0.0, "optimiser: weight_decay %g must be >= 0",
                  cfg->weight_decay);
    if (cfg->kind == CBQ_OPTIM_SGD) {
        CBQ_CHECK_ARG(err, cfg->momentum >= 0.0, "optimiser: momentum %g must be >= 0", cfg->momentum);
        CBQ_CHECK_ARG(err, !cfg->nesterov || (cfg->momentum > 0.0 && cfg->dampening == 0.0),
                      "optimiser: nesterov needs momentum > 0 and dampening 0");
    } else {
        CBQ_CHECK_ARG(err, cfg->beta1 >= 0.0 && cfg->beta1 < 1.0 && cfg->beta2 >= 0.0 &&
                               cfg->beta2 < 1.0,
                      "optimiser: betas (%g, %g) must be in [0, 1)", cfg->beta1, cfg->beta2);
        CBQ_CHECK_ARG(err, cfg->eps >= 0.0, "optimiser: eps %g must be >= 0", cfg->eps);
    }
    cbq_optim *opt = calloc(1, sizeof *opt);
    if (!opt)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory creating the optimiser");
    opt->net = net;
    opt->cfg = *cfg;
    cbq_net_params(net, &opt->count);
    opt->m = calloc(2 * (opt->count ? opt->count : 1), sizeof *opt->m);
    if (!opt->m) {
        size_t count = opt->count;
        free(opt);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for optimiser state (%zu parameters)",
                        count);
    }
    opt->v = opt->m + opt->count;
    *out = opt;
    return CBQ_OK;
}

void cbq_optim_free(cbq_optim *opt)
{
    if (!opt)
        return;
    free(opt->m);
    free(opt);
}

void cbq_optim_set_lr(cbq_optim *opt, double lr) { opt->cfg.lr = lr; }
double cbq_optim_lr(const cbq_optim *opt) { return opt->cfg.lr; }
size_t cbq_optim_steps(const cbq_optim *opt) { return opt->steps; }

static void sgd_step(cbq_optim *o, float *p, const float *grad)
{
    const cbq_optim_cfg *c = &o->cfg;
    const int first = o->steps == 0;
    for (size_t i = 0; i < o->count; i++) {
        float g = grad[i];
        if (c->weight_decay != 0.0)
            g = (float)(g + c->weight_decay * p[i]);
        if (c->momentum != 0.0) {
            float buf = first ? g : (float)(c->momentum * o->m[i] + (1.0 - c->dampening) * g);
            o->m[i] = buf;
            g = c->nesterov ? (float)(g + c->momentum * buf) : buf;
        }
        p[i] = (float)(p[i] - c->lr * g);
    }
}

/* Adam's constants for one step, hoisted out of the element loop. */
typedef struct {
    double beta1, one_minus_beta1, beta2, one_minus_beta2, bc2_sqrt, eps, step_size;
    double decay;     /* AdamW: the parameter is first scaled by this */
    double l2;        /* Adam: weight_decay added to the gradient */
} adam_consts;

/* One Adam(W) update of count elements. The arithmetic is the reference
 * formula's, operation for operation, so that the result does not depend
 * on vectorisation; the two flags are constants at each call below, so GCC
 * emits one vectorised loop per variant (restrict: the four arrays are
 * separate blocks). */
static inline void adam_update(float *restrict p, float *restrict m1, float *restrict m2,
                               const float *restrict grad, size_t count, const adam_consts *k,
                               int decoupled, int l2)
{
    const adam_consts c = *k;
    for (size_t i = 0; i < count; i++) {
        double g = grad[i];
        float w = p[i];
        if (decoupled)
            w = (float)(w * c.decay);
        else if (l2)
            g = (float)(g + c.l2 * w);
        float m = (float)(c.beta1 * m1[i] + c.one_minus_beta1 * g);
        float v = (float)(c.beta2 * m2[i] + c.one_minus_beta2 * g * g);
        m1[i] = m;
        m2[i] = v;
        double denom = sqrt((double)v) / c.bc2_sqrt + c.eps;
        p[i] = (float)(w - c.step_size * m / denom);
    }
}

/* Where thread t's range of count elements starts, over nt threads:
 * multiples of 16 floats (a cache line), so no line is written by two. */
static size_t adam_range_start(size_t count, size_t t, size_t nt)
{
    const size_t lines = (count + 15) / 16, start = lines * t / nt * 16;
    return start < count ? start : count;
}

static void adam_step(cbq_optim *o, float *p, const float *grad, int decoupled)
{
    const cbq_optim_cfg *c = &o->cfg;
    const double step = (double)(o->steps + 1);
    const double bc1 = 1.0 - pow(c->beta1, step);
    const adam_consts k = {.beta1 = c->beta1, .one_minus_beta1 = 1.0 - c->beta1,
                           .beta2 = c->beta2, .one_minus_beta2 = 1.0 - c->beta2,
                           .bc2_sqrt = sqrt(1.0 - pow(c->beta2, step)), .eps = c->eps,
                           .step_size = c->lr / bc1, .decay = 1.0 - c->lr * c->weight_decay,
                           .l2 = c->weight_decay};
    /* Each element's update depends on that element only, so the net's
     * threads share the block in contiguous ranges with the same bits as one
     * thread; done serially, the other threads would spin-wait through it
     * (libgomp's default wait), and it takes 3-4% of a resnet18 step. */
#pragma omp parallel num_threads(cbq_net_threads(o->net))
    {
        const size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        const size_t lo = adam_range_start(o->count, t, nt);
        const size_t n = adam_range_start(o->count, t + 1, nt) - lo;
        if (decoupled)
            adam_update(p + lo, o->m + lo, o->v + lo, grad + lo, n, &k, 1, 0);
        else if (c->weight_decay != 0.0)
            adam_update(p + lo, o->m + lo, o->v + lo, grad + lo, n, &k, 0, 1);
        else
            adam_update(p + lo, o->m + lo, o->v + lo, grad + lo, n, &k, 0, 0);
    }
}

void cbq_optim_step(cbq_optim *opt)
{
    size_t count;
    float *p = cbq_net_params(opt->net, &count);
    const float *g = cbq_net_grads(opt->net, &count);
    if (opt->cfg.kind == CBQ_OPTIM_SGD)
        sgd_step(opt, p, g);
    else
        adam_step(opt, p, g, opt->cfg.kind == CBQ_OPTIM_ADAMW);
    opt->steps++;
}

double cbq_lr_cosine(size_t step, size_t total_steps, size_t warmup, double base_lr, double min_lr)
{
    if (step < warmup)
        return base_lr * (double)(step + 1) / (double)warmup;
    if (total_steps <= warmup || step >= total_steps)
        return step >= total_steps ? min_lr : base_lr;
    double progress = (double)(step - warmup) / (double)(total_steps - warmup);
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + cos(3.14159265358979323846 * progress));
}

/* Sum of g[i]^2 in double, in NORM_LANES interleaved partial sums (element
 * i goes to sum i % NORM_LANES) added in a fixed order at the end: GCC
 * vectorises it, where one running sum is a chain of dependent additions,
 * and the bits do not depend on the thread count or the machine. */
enum { NORM_LANES = 8 };
static double sum_of_squares(const float *restrict g, size_t count)
{
    double lane[NORM_LANES] = {0};
    size_t i = 0;
    for (; i + NORM_LANES <= count; i += NORM_LANES)
        for (size_t l = 0; l < NORM_LANES; l++)
            lane[l] += (double)g[i + l] * g[i + l];
    for (size_t l = 0; i < count; i++, l++)
        lane[l] += (double)g[i] * g[i];
    double sum = 0.0;
    for (size_t l = 0; l < NORM_LANES; l++)
        sum += lane[l];
    return sum;
}

double cbq_clip_grad_norm(cbq_net *net, double max_norm)
{
    size_t count;
    float *g = cbq_net_grads(net, &count);
    double norm = sqrt(sum_of_squares(g, count));
    if (max_norm > 0.0) {
        double coef = max_norm / (norm + 1e-6);
        if (coef < 1.0)
            for (size_t i = 0; i < count; i++)
                g[i] = (float)(g[i] * coef);
    }
    return norm;
}
