/* nn_layer_dump.c - runs one engine operation on raw float32 files so that
 * layers_oracle.py can compare it with PyTorch.
 *
 *   nn_layer_dump DIR OP key=value...
 *
 * Reads DIR/<name>.f32 (little-endian float32, sizes implied by the keys),
 * writes DIR/<result>.f32. OPs and their files:
 *   conv2d   in w [b] dout          -> out din dw [db]  (dh, dw, groups: default 1)
 *   bn       in gamma beta rm rv dout (train=0/1) -> out din dgamma dbeta rm_new rv_new
 *   relu / leaky / sigmoid / silu / maxpool / avgpool (ceil=0/1) / gap /
 *   identity / flatten / adaptive   in dout -> out din (the last three through
 *            a one-layer net, so that the engine's rows are what is tested)
 *   linear   in w [b] dout          -> out din dw [db]
 *   loss     pred target            -> loss (1 value) dpred
 *   optim    p g (steps x count)    -> p_new, p_steps (steps x count: the
 *            parameters after each step), norms (steps: the gradient norm
 *            cbq_clip_grad_norm returned before clipping; 0 without clip)
 * Test helper only: exits 1 with a message on any I/O problem.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/gemm.h"
#include "cbctiq/loss.h"
#include "cbctiq/net.h"
#include "cbctiq/optim.h"
#include "nn/layer.h"

static const char *dir;
static int nkv;
static char **kv;

/* Every buffer is remembered and released at exit (keeps LeakSanitizer quiet). */
static void *owned[64];
static int n_owned;
static float *keep(float *p)
{
    if (!p || n_owned == 64) {
        fprintf(stderr, "nn_layer_dump: out of memory\n");
        exit(1);
    }
    owned[n_owned++] = p;
    return p;
}

static double get(const char *key, double fallback)
{
    size_t len = strlen(key);
    for (int i = 0; i < nkv; i++)
        if (strncmp(kv[i], key, len) == 0 && kv[i][len] == '=')
            return atof(kv[i] + len + 1);
    return fallback;
}
static size_t geti(const char *key) { return (size_t)get(key, 0); }

static float *load(const char *name, size_t count)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.f32", dir, name);
    float *p = keep(calloc(count ? count : 1, sizeof *p));
    FILE *f = fopen(path, "rb");
    if (!p || !f || fread(p, sizeof *p, count, f) != count) {
        fprintf(stderr, "nn_layer_dump: cannot read %zu floats from %s\n", count, path);
        exit(1);
    }
    fclose(f);
    return p;
}

static void save(const char *name, const float *p, size_t count)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.f32", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, sizeof *p, count, f) != count || fclose(f) != 0) {
        fprintf(stderr, "nn_layer_dump: cannot write %s\n", path);
        exit(1);
    }
}

static float *zeros(size_t count) { return keep(calloc(count ? count : 1, sizeof(float))); }

static int threads(void) { return (int)get("threads", 1); }

static void run_conv(void)
{
    cbq_conv2d_cfg c = {(int)geti("cin"), (int)geti("cout"), (int)geti("kh"), (int)geti("kw"),
                        (int)geti("sh"), (int)geti("sw"), (int)geti("ph"), (int)geti("pw"),
                        (int)geti("bias"), (int)get("dh", 1), (int)get("dw", 1),
                        (int)get("groups", 1), CBQ_CONV_AUTO};
    size_t n = geti("n"), h = geti("h"), w = geti("w");
    size_t oh = conv2d_out_h(&c, h), ow = conv2d_out_w(&c, w);
    size_t nin = n * (size_t)c.in_channels * h * w, nout = n * (size_t)c.out_channels * oh * ow;
    size_t nw = (size_t)c.out_channels * (size_t)(c.in_channels / c.groups) *
                (size_t)(c.kernel_h * c.kernel_w);
    int t = threads();
    float *in = load("in", nin), *wt = load("w", nw), *dout = load("dout", nout);
    float *b = c.bias ? load("b", (size_t)c.out_channels) : NULL;
    float *out = zeros(nout), *din = zeros(nin), *dw = zeros(nw), *db = zeros((size_t)c.out_channels);
    float *ws = zeros((size_t)t * conv2d_workspace_floats(&c, h, w));
    float *priv = zeros((size_t)t * conv2d_dw_private_floats(&c));
    conv2d_forward(out, in, wt, b, &c, n, h, w, ws, t);
    conv2d_backward(din, dw, c.bias ? db : NULL, dout, in, wt, &c, n, h, w, ws, priv, t);
    save("out", out, nout);
    save("din", din, nin);
    save("dw", dw, nw);
    if (c.bias)
        save("db", db, (size_t)c.out_channels);
}

static void run_bn(void)
{
    size_t n = geti("n"), ch = geti("c"), hw = geti("h") * geti("w"), count = n * ch * hw;
    cbq_batchnorm2d_cfg c = {(int)ch, get("eps", 1e-5), get("momentum", 0.1)};
    int train = (int)geti("train"), t = threads();
    float *in = load("in", count), *g = load("gamma", ch), *b = load("beta", ch);
    float *rm = load("rm", ch), *rv = load("rv", ch), *dout = load("dout", count);
    float *out = zeros(count), *din = zeros(count), *dg = zeros(ch), *dbeta = zeros(ch);
    float *mean = zeros(ch), *invstd = zeros(ch);
    int64_t nbt = 0;
    if (train)
        batchnorm2d_forward_train(out, mean, invstd, rm, rv, &nbt, in, g, b, &c, n, hw, 0, t);
    else
        batchnorm2d_forward_eval(out, mean, invstd, in, g, b, rm, rv, &c, n, hw, 0, t);
    batchnorm2d_backward(din, dg, dbeta, dout, in, g, mean, invstd, train, ch, n, hw, t);
    save("out", out, count);
    save("din", din, count);
    save("dgamma", dg, ch);
    save("dbeta", dbeta, ch);
    save("rm_new", rm, ch);
    save("rv_new", rv, ch);
}

static void run_simple(const char *op)
{
    size_t n = geti("n"), ch = geti("c"), h = geti("h"), w = geti("w");
    cbq_pool2d_cfg p = {(int)geti("kh"), (int)geti("kw"), (int)geti("sh"), (int)geti("sw"),
                        (int)geti("ph"), (int)geti("pw"), (int)geti("ceil")};
    size_t oh = h, ow = w;
    if (!strcmp(op, "maxpool") || !strcmp(op, "avgpool")) {
        oh = pool2d_out_size(h, p.kernel_h, p.stride_h, p.pad_h, p.ceil_mode);
        ow = pool2d_out_size(w, p.kernel_w, p.stride_w, p.pad_w, p.ceil_mode);
    } else if (!strcmp(op, "gap")) {
        oh = ow = 1;
    }
    size_t nin = n * ch * h * w, nout = n * ch * oh * ow;
    int t = threads();
    float *in = load("in", nin), *dout = load("dout", nout);
    float *out = zeros(nout), *din = zeros(nin);
    float slope = (float)get("slope", 0.01);
    if (!strcmp(op, "relu")) {
        relu_forward(out, in, nin, t);
        relu_backward(din, dout, in, nin, t);
    } else if (!strcmp(op, "leaky")) {
        leaky_relu_forward(out, in, slope, nin, t);
        leaky_relu_backward(din, dout, in, slope, nin, t);
    } else if (!strcmp(op, "sigmoid")) {
        sigmoid_forward(out, in, nin, t);
        sigmoid_backward(din, dout, in, nin, t);
    } else if (!strcmp(op, "silu")) {
        silu_forward(out, in, nin, t);
        silu_backward(din, dout, in, nin, t);
    } else if (!strcmp(op, "maxpool")) {
        maxpool2d_forward(out, in, &p, n * ch, h, w, t);
        maxpool2d_backward(din, dout, in, &p, n * ch, h, w, t);
    } else if (!strcmp(op, "avgpool")) {
        avgpool2d_forward(out, in, &p, n * ch, h, w, t);
        avgpool2d_backward(din, dout, &p, n * ch, h, w, t);
    } else {
        global_avgpool_forward(out, in, n * ch, h * w, t);
        global_avgpool_backward(din, dout, n * ch, h * w, t);
    }
    save("out", out, nout);
    save("din", din, nin);
}

/* A one-layer net of the kind `op` (identity, flatten, adaptive): forward,
 * then backward from dout; out and din come from the engine's buffers. */
static void run_net_layer(const char *op)
{
    size_t n = geti("n"), ch = geti("c"), h = geti("h"), w = geti("w");
    cbq_layer_spec layer = {.name = "x"};
    if (!strcmp(op, "adaptive")) {
        layer.kind = CBQ_LAYER_ADAPTIVE_AVGPOOL2D;
        layer.cfg.adaptive = (cbq_adaptive_pool2d_cfg){1, 1};
    } else
        layer.kind = !strcmp(op, "flatten") ? CBQ_LAYER_FLATTEN : CBQ_LAYER_IDENTITY;
    if (ch != 1) {
        fprintf(stderr, "nn_layer_dump: %s runs on 1-channel input (the net's input)\n", op);
        exit(1);
    }
    cbq_model_spec spec = {.arch = "custom", .input = {(int)h, (int)w, 0.0, 1.0}, .n_layers = 1,
                           .layers = &layer, .n_outputs = 0};
    cbq_net *net = NULL;
    cbq_error err = {0};
    if (cbq_net_create(&net, &spec, n, 1, &err)) {
        fprintf(stderr, "nn_layer_dump: %s\n", err.msg);
        exit(1);
    }
    cbq_net_set_threads(net, threads());
    size_t nin = n * h * w, nout = layer.kind == CBQ_LAYER_ADAPTIVE_AVGPOOL2D ? n : nin;
    float *in = load("in", nin), *dout = load("dout", nout);
    const float *out = NULL;
    if (cbq_net_forward(net, in, n, &out, &err) || cbq_net_backward(net, dout, 0, 1, &err)) {
        fprintf(stderr, "nn_layer_dump: %s\n", err.msg);
        exit(1);
    }
    save("out", out, nout);
    save("din", cbq_net_input_grad(net), nin);
    cbq_net_free(net);
}

static void run_linear(void)
{
    cbq_linear_cfg c = {(int)geti("fin"), (int)geti("fout"), (int)geti("bias")};
    size_t n = geti("n"), fi = (size_t)c.in_features, fo = (size_t)c.out_features;
    float *in = load("in", n * fi), *wt = load("w", fo * fi), *dout = load("dout", n * fo);
    float *b = c.bias ? load("b", fo) : NULL;
    float *out = zeros(n * fo), *din = zeros(n * fi), *dw = zeros(fo * fi), *db = zeros(fo);
    linear_forward(out, in, wt, b, &c, n);
    linear_backward(din, dw, c.bias ? db : NULL, dout, in, wt, &c, n);
    save("out", out, n * fo);
    save("din", din, n * fi);
    save("dw", dw, fo * fi);
    if (c.bias)
        save("db", db, fo);
}

static void run_loss(void)
{
    size_t n = geti("n"), k = geti("k");
    cbq_loss_cfg c = {(cbq_loss_kind)geti("kind"), get("delta", 1.0)};
    float *pred = load("pred", n * k), *target = load("target", n * k), *d = zeros(n * k);
    float loss = (float)cbq_loss(&c, pred, target, n, k, d);
    save("loss", &loss, 1);
    save("dpred", d, n * k);
}

/* The optimiser works on a net; a one-layer linear net without bias whose
 * weight is the parameter vector gives it exactly `count` parameters. */
static void run_optim(void)
{
    size_t count = geti("count"), steps = geti("steps");
    cbq_layer_spec layer = {.name = "fc", .kind = CBQ_LAYER_LINEAR,
                            .cfg.linear = {(int)count, 1, 0}};
    cbq_model_spec spec = {.arch = "custom", .input = {1, (int)count, 0.0, 1.0}, .n_layers = 1,
                           .layers = &layer, .n_outputs = 1};
    cbq_net *net = NULL;
    cbq_optim *opt = NULL;
    cbq_error err = {0};
    cbq_optim_cfg oc = cbq_optim_defaults((cbq_optim_kind)geti("kind"));
    oc.lr = get("lr", oc.lr);
    oc.weight_decay = get("wd", oc.weight_decay);
    oc.momentum = get("momentum", 0.0);
    oc.dampening = get("dampening", 0.0);
    oc.nesterov = (int)geti("nesterov");
    oc.beta1 = get("beta1", 0.9);
    oc.beta2 = get("beta2", 0.999);
    oc.eps = get("eps", 1e-8);
    if (cbq_net_create(&net, &spec, 1, 1, &err) || cbq_optim_create(&opt, net, &oc, &err)) {
        fprintf(stderr, "nn_layer_dump: %s\n", err.msg);
        exit(1);
    }
    size_t pc;
    float *p = cbq_net_params(net, &pc), *g = cbq_net_grads(net, &pc);
    float *p0 = load("p", count), *gs = load("g", steps * count);
    float *p_steps = zeros(steps * count), *norms = zeros(steps);
    double clip = get("clip", 0.0);
    memcpy(p, p0, count * sizeof *p);
    for (size_t s = 0; s < steps; s++) {
        memcpy(g, gs + s * count, count * sizeof *g);
        if (clip > 0)
            norms[s] = (float)cbq_clip_grad_norm(net, clip);
        cbq_optim_step(opt);
        memcpy(p_steps + s * count, p, count * sizeof *p);
    }
    save("p_new", p, count);
    save("p_steps", p_steps, steps * count);
    save("norms", norms, steps);
    cbq_optim_free(opt);
    cbq_net_free(net);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: nn_layer_dump DIR OP key=value...\n");
        return 2;
    }
    cbq_threads_init(0); /* BLAS single-threaded under our OpenMP, as in the engine */
    dir = argv[1];
    kv = argv + 3;
    nkv = argc - 3;
    const char *op = argv[2];
    if (!strcmp(op, "conv2d"))
        run_conv();
    else if (!strcmp(op, "bn"))
        run_bn();
    else if (!strcmp(op, "linear"))
        run_linear();
    else if (!strcmp(op, "loss"))
        run_loss();
    else if (!strcmp(op, "optim"))
        run_optim();
    else if (!strcmp(op, "relu") || !strcmp(op, "leaky") || !strcmp(op, "maxpool") ||
             !strcmp(op, "avgpool") || !strcmp(op, "gap") || !strcmp(op, "sigmoid") ||
             !strcmp(op, "silu"))
        run_simple(op);
    else if (!strcmp(op, "identity") || !strcmp(op, "flatten") || !strcmp(op, "adaptive"))
        run_net_layer(op);
    else {
        fprintf(stderr, "nn_layer_dump: unknown op %s\n", op);
        return 2;
    }
    for (int i = 0; i < n_owned; i++)
        free(owned[i]);
    return 0;
}
