/* net.c - a runnable network from a cbq_model_spec (include/cbctiq/net.h).
 *
 * Memory plan, all made in cbq_net_create and never changed afterwards:
 *   params   one block, every trainable tensor in state_dict order
 *   grads    one block, same layout as params
 *   buffers  BN running mean/var (float) and num_batches_tracked (int64)
 *   acts     the arena: the output of every layer for max_batch samples,
 *            and each layer's dLoss/d(output) where it cannot meet a live
 *            activation or gradient (plan_gradients)
 *   input    the copy of the input, and its gradient
 *   aux      per-layer saved state: BN mean/invstd, dropout masks
 *   scratch  conv im2col workspace and per-thread weight-gradient
 *            accumulators, sized for the largest conv and the most threads
 * Forward and backward only index into these blocks. What each layer kind
 * reserves and how it is initialised is its row of the engine's layer
 * table (layer_ops.c).
 */
#include <assert.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/gemm.h"
#include "cbctiq/mem_limit.h"
#include "core/zeroed_alloc.h"
#include "nn/layer_ops.h"
#include "nn/net_impl.h"

static void *alloc_floats(size_t count)
{
    return cbq_alloc_zeroed((count ? count : 1) * sizeof(float));
}

static size_t plane_of(const size_t s[3]) { return s[0] * s[1] * s[2]; }

void net_add_tensor(cbq_net *net, size_t layer, const char *suffix, int kind, size_t offset,
                    int ndim, const size_t *shape)
{
    assert(net->n_tensors < net->max_tensors); /* the row's max_tensors is wrong */
    net_tensor *t = &net->tensors[net->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s.%s", net->spec.layers[layer].name, suffix);
    t->kind = kind;
    t->offset = offset;
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        t->numel *= shape[d];
    }
}

/* Whether layer i is a relu that may overwrite its input: its input comes
 * from a layer whose backward reads only that layer's own input. */
static int relu_runs_in_place(const cbq_net *net, size_t i)
{
    if (!net->relu_in_place || !net->chain || i == 0 || net->spec.layers[i].kind != CBQ_LAYER_RELU)
        return 0;
    cbq_layer_kind before = net->spec.layers[i - 1].kind;
    return before == CBQ_LAYER_CONV2D || before == CBQ_LAYER_BATCHNORM2D || before == CBQ_LAYER_LINEAR;
}

static size_t layer_values(const cbq_net *net, size_t k)
{
    return plane_of(net->shapes[k]) * net->max_batch;
}

/* Where each layer's output gradient lives in the arena. grad(k) is written
 * by layer k+1's backward and read by layer k's, so it is live in those two
 * steps only, beside grad(k+1) in the first and grad(k-1) in the second:
 * even layers take the lowest offset above the activations still needed,
 * odd ones the top of the arena, and the top rises until neighbours cannot
 * meet. In step k the backward reads the activations of layers <= k; a
 * training net's backward (one per forward) may overwrite the others, so
 * at 512x512 the gradients need no memory of their own, as PyTorch frees
 * what backward has passed. A plain net keeps every activation (Grad-CAM
 * runs one backward per category after one forward): its gradients all
 * lie above them. */
static void plan_gradients(cbq_net *net)
{
    const size_t L = net->n_layers;
    size_t reach = layer_values(net, 0) + net->layer[0].act_off, top = net->act_total;
    for (size_t k = 0; k < L; k++) {
        if (k + 1 < L) {
            size_t end = net->layer[k + 1].act_off + layer_values(net, k + 1);
            reach = end > reach ? end : reach;
        }
        size_t low = net->relu_in_place ? reach : net->act_total, need = low + layer_values(net, k);
        if (k % 2 == 0) {
            size_t below = k ? layer_values(net, k - 1) : 0, above = k + 1 < L ? layer_values(net, k + 1) : 0;
            need += below > above ? below : above;
        }
        top = need > top ? need : top;
        net->layer[k].grad_off = low;
    }
    for (size_t k = 1; k < L; k += 2)
        net->layer[k].grad_off = top - layer_values(net, k);
    net->arena_total = top;
}

/* ---- graphs: a plan from the lifetimes of activations and gradients -------- */

/* A block of the arena alive over backward steps [first, last] (step i runs
 * layer i's backward; the forward counts as step n_layers + 1, before them). */
typedef struct {
    size_t size, first, last, off;
} arena_block;

static int blocks_meet(const arena_block *a, const arena_block *b)
{
    return a->first <= b->last && b->first <= a->last;
}

typedef struct {
    size_t off, end;
} arena_span;

static int by_size_then_index(const void *a, const void *b)
{
    const arena_block *x = *(const arena_block *const *)a, *y = *(const arena_block *const *)b;
    if (x->size != y->size)
        return x->size > y->size ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int by_offset(const void *a, const void *b)
{
    const arena_span *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Offsets at the lowest address where each block meets no block placed
 * before it that is alive at the same time; largest first (ties in index
 * order, so the plan is reproducible). order and spans: n entries of
 * scratch. Returns the end of the highest block. */
static size_t pack_blocks(arena_block *blk, size_t n, arena_block **order, arena_span *spans)
{
    for (size_t i = 0; i < n; i++)
        order[i] = &blk[i];
    qsort(order, n, sizeof *order, by_size_then_index);
    size_t top = 0;
    for (size_t a = 0; a < n; a++) {
        arena_block *b = order[a];
        size_t m = 0, off = 0;
        for (size_t p = 0; p < a; p++)
            if (order[p]->size && blocks_meet(b, order[p]))
                spans[m++] = (arena_span){order[p]->off, order[p]->off + order[p]->size};
        qsort(spans, m, sizeof *spans, by_offset);
        for (size_t k = 0; k < m && spans[k].off < off + b->size; k++)
            off = spans[k].end > off ? spans[k].end : off;
        b->off = off;
        top = off + b->size > top ? off + b->size : top;
    }
    return top;
}

/* Layer i's first and last readers (i itself when none reads it). */
static void readers_of(const cbq_net *net, size_t i, size_t *first, size_t *last)
{
    *first = *last = i;
    for (size_t c = i + 1; c < net->n_layers; c++)
        for (size_t j = 0; j < net->layer[c].n_in; j++)
            if (cbq_model_spec_input(&net->spec, c, j) == (long)i) {
                if (*first == i)
                    *first = c;
                *last = c;
            }
}

/* How many input slots of later layers read layer `from`'s output. */
static size_t reads_of(const cbq_net *net, size_t from)
{
    size_t reads = 0;
    for (size_t c = from + 1; c < net->n_layers; c++)
        for (size_t j = 0; j < net->layer[c].n_in; j++)
            reads += cbq_model_spec_input(&net->spec, c, j) == (long)from;
    return reads;
}

/* In a training graph, a ReLU may overwrite its input as in a chain when
 * that input is a conv, batch norm or linear output (their backward reads
 * only their own input) that no other layer reads. */
static int graph_relu_in_place(const cbq_net *net, size_t i)
{
    if (!net->relu_in_place || net->spec.layers[i].kind != CBQ_LAYER_RELU)
        return 0;
    long from = cbq_model_spec_input(&net->spec, i, 0);
    if (from < 0)
        return 0;
    cbq_layer_kind before = net->spec.layers[from].kind;
    if (before != CBQ_LAYER_CONV2D && before != CBQ_LAYER_BATCHNORM2D && before != CBQ_LAYER_LINEAR)
        return 0;
    return reads_of(net, (size_t)from) == 1;
}

/* In a net kept from keep_from (cbq_net_keep_activations_from), whether
 * ReLU i runs in place on a batch norm or add output below keep_from that
 * it alone reads: nobody is promised that output, the ReLU's own output is
 * the same, and its backward gives the same gradient from max(y, 0) as
 * from y (both > 0 exactly where y > 0), so plan_fusion can make the pair
 * one pass. */
static int relu_hides_input(const cbq_net *net, size_t i)
{
    if (net->relu_in_place || net->spec.layers[i].kind != CBQ_LAYER_RELU || net->layer[i].n_in != 1)
        return 0;
    long from = cbq_model_spec_input(&net->spec, i, 0);
    if (from < 0 || (size_t)from >= net->keep_from)
        return 0;
    cbq_layer_kind before = net->spec.layers[from].kind;
    if (before != CBQ_LAYER_BATCHNORM2D && before != CBQ_LAYER_ADD)
        return 0;
    return reads_of(net, (size_t)from) == 1;
}

/* Activation i is written in the forward and read by its readers' backward
 * steps (a net kept for Grad-CAM keeps it through every step); grad(i) is
 * written first by its last reader's step and read by its own. Blocks alive
 * at different times share memory, so a training net's gradients take the
 * place of activations that backward has passed. */
static int plan_graph(cbq_net *net, cbq_error *err)
{
    const size_t L = net->n_layers;
    arena_block *blk = calloc(2 * L, sizeof *blk), **order = calloc(2 * L, sizeof *order);
    arena_span *spans = calloc(2 * L, sizeof *spans);
    if (!blk || !order || !spans) {
        free(blk);
        free(order);
        free(spans);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory planning the network");
    }
    for (size_t i = 0; i < L; i++) {
        size_t first, last;
        readers_of(net, i, &first, &last);
        blk[i] = (arena_block){.size = layer_values(net, i), .first = net->relu_in_place ? first : 0,
                               .last = L + 1};
        blk[L + i] = (arena_block){.size = layer_values(net, i), .first = i,
                                   .last = i + 1 == L ? L : last};
    }
    /* A ReLU in place has no block of its own: its input's block lives on
     * for the ReLU's readers (their steps come after the ReLU's own). */
    for (size_t i = 0; i < L; i++)
        if (graph_relu_in_place(net, i) || relu_hides_input(net, i)) {
            size_t from = (size_t)cbq_model_spec_input(&net->spec, i, 0);
            blk[from].first = blk[from].first < blk[i].first ? blk[from].first : blk[i].first;
            blk[i].size = 0;
        }
    net->arena_total = pack_blocks(blk, 2 * L, order, spans);
    for (size_t i = 0; i < L; i++) {
        net->layer[i].act_off = blk[i].off;
        net->layer[i].grad_off = blk[L + i].off;
    }
    for (size_t i = 0; i < L; i++) /* in order: an input is placed before its ReLU */
        if (graph_relu_in_place(net, i) || relu_hides_input(net, i))
            net->layer[i].act_off = net->layer[cbq_model_spec_input(&net->spec, i, 0)].act_off;
    free(blk);
    free(order);
    free(spans);
    return CBQ_OK;
}

/* The gradient of a tensor read by several layers or slots: its second and
 * later contributions need room of their own, at most all of one layer's
 * inputs at once (none in a chain). */
static int plan_fanout(cbq_net *net, cbq_error *err)
{
    size_t *reads = calloc(net->n_layers + 1, sizeof *reads); /* [k + 1]: reads of k */
    if (!reads)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory planning the network");
    for (size_t i = 0; i < net->n_layers; i++)
        for (size_t j = 0; j < net->layer[i].n_in; j++)
            reads[cbq_model_spec_input(&net->spec, i, j) + 1]++;
    for (size_t i = 0; i < net->n_layers; i++) {
        size_t need = 0;
        for (size_t j = 0; j < net->layer[i].n_in; j++) {
            long from = cbq_model_spec_input(&net->spec, i, j);
            if (reads[from + 1] > 1)
                need += plane_of(net->in_shapes[net->layer[i].in_first + j]) * net->max_batch;
        }
        net->fanout_total = need > net->fanout_total ? need : net->fanout_total;
    }
    free(reads);
    return CBQ_OK;
}

/* A chain's activation offsets. Below keep_from (a net kept for
 * attribution at that layer) no backward reads an activation: only the
 * forward of the next layer does, so those layers alternate between two
 * blocks and never overwrite the input they read; a ReLU that hides its
 * input (relu_hides_input) stays in its input's block, the one exception,
 * and may be layer keep_from itself (no later layer writes that block).
 * The other layers from keep_from on keep a block each, as every layer
 * does otherwise. */
static void plan_chain_activations(cbq_net *net)
{
    size_t shared[2] = {0, 0}, side = 1;
    for (size_t i = 0; i < net->keep_from; i++) { /* act_off: the side, for now */
        if (!relu_hides_input(net, i))
            side ^= 1;
        size_t v = layer_values(net, i);
        shared[side] = v > shared[side] ? v : shared[side];
        net->layer[i].act_off = side;
    }
    size_t act_total = shared[0] + shared[1];
    for (size_t i = 0; i < net->n_layers; i++) {
        if (i < net->keep_from)
            net->layer[i].act_off = net->layer[i].act_off ? shared[0] : 0;
        else if (relu_runs_in_place(net, i) || relu_hides_input(net, i))
            net->layer[i].act_off = net->layer[i - 1].act_off;
        else {
            net->layer[i].act_off = act_total;
            act_total += layer_values(net, i);
        }
    }
    net->act_total = act_total;
}

/* Fuses each ReLU that runs in place on a batch norm's or add's output
 * (a training net's batch norm, or an input below keep_from: the ReLU
 * overwrites that output anyway, so no one can see the values in between)
 * into that layer's forward: one pass instead of two. Offsets decide, so
 * that this follows whatever the planning chose. */
static void plan_fusion(cbq_net *net)
{
    for (size_t i = 0; i < net->n_layers; i++)
        net->layer[i].relu_fused = net->layer[i].relu_done = 0;
    for (size_t i = 0; i < net->n_layers; i++) {
        long from = cbq_model_spec_input(&net->spec, i, 0);
        if (net->spec.layers[i].kind != CBQ_LAYER_RELU || net->layer[i].n_in != 1 || from < 0)
            continue;
        cbq_layer_kind before = net->spec.layers[from].kind;
        if ((before != CBQ_LAYER_BATCHNORM2D && before != CBQ_LAYER_ADD) ||
            net->layer[i].act_off != net->layer[from].act_off)
            continue;
        net->layer[from].relu_fused = 1;
        net->layer[i].relu_done = 1;
    }
}

/* The activation plan for the current keep_from: a chain's shared blocks
 * and gradients, or a graph's liveness plan; then the fusions it allows. */
static int plan_activations(cbq_net *net, cbq_error *err)
{
    if (net->chain) {
        plan_chain_activations(net);
        plan_gradients(net);
    } else
        CBQ_TRY(plan_graph(net, err));
    plan_fusion(net);
    return CBQ_OK;
}

/* First pass: sizes and offsets of every tensor and buffer. */
static int plan(cbq_net *net, cbq_error *err)
{
    const size_t nb = net->max_batch;
    size_t act_total = 0;
    for (size_t i = 0; i < net->n_layers; i++) {
        const cbq_layer_spec *l = &net->spec.layers[i];
        const size_t *in = net->in_shapes[net->layer[i].in_first];
        size_t per = plane_of(net->shapes[i]), bytes;
        if (!cbq_size_mul(&bytes, per, nb) || !cbq_size_mul(&bytes, bytes, 4 * sizeof(float)))
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "layer '%s': activations for batch %zu overflow",
                            l->name, nb);
        /* Totals stay below SIZE_MAX / 16 so that byte counts of the
         * activation and gradient blocks (+ input, aux) cannot overflow. */
        if (act_total > SIZE_MAX / 16 - per * nb)
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "layer '%s': activations for batch %zu overflow",
                            l->name, nb);
        act_total += per * nb;
        const net_layer_ops *ops = net_layer_ops_of(l->kind);
        if (ops->plan)
            ops->plan(net, i, in);
    }
    net->act_total = act_total;
    net->threads_cap = cbq_threads_max();
    if (!net->chain)
        CBQ_TRY(plan_fanout(net, err));
    return plan_activations(net, err);
}

/* One random stream for all layers, drawn in layer order. */
static void init_params(cbq_net *net, uint64_t seed)
{
    cbq_rng rng;
    cbq_rng_stream(&rng, seed, 0);
    for (size_t i = 0; i < net->n_layers; i++) {
        const net_layer_ops *ops = net_layer_ops_of(net->spec.layers[i].kind);
        if (ops->init)
            ops->init(net, i, &rng);
    }
}

static int copy_spec(cbq_model_spec *dst, const cbq_model_spec *src, cbq_error *err)
{
    *dst = *src;
    dst->layers = malloc((src->n_layers ? src->n_layers : 1) * sizeof *dst->layers);
    if (!dst->layers)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory copying the model spec");
    memcpy(dst->layers, src->layers, src->n_layers * sizeof *dst->layers);
    return CBQ_OK;
}

static int allocate(cbq_net *net, cbq_error *err)
{
    size_t in_count = plane_of(net->in_shape) * net->max_batch;
    size_t tws = net->ws_per_thread * (size_t)net->threads_cap;
    size_t tdw = net->dw_per_thread * (size_t)net->threads_cap;
    /* Refuse what cannot fit before calloc overcommits it. */
    size_t parts[] = {net->n_params, net->n_params, net->n_buffers, net->arena_total,
                      in_count, in_count, net->aux_total, tws, tdw,
                      plane_of(net->shapes[net->n_layers - 1]) * net->max_batch, net->fanout_total};
    size_t floats = 0, bytes = 0;
    int fits = 1;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        fits = fits && floats + parts[i] >= floats;
        floats += parts[i];
    }
    if (!fits || !cbq_size_mul(&bytes, floats, sizeof(float)))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "the network for batch %zu overflows memory arithmetic",
                        net->max_batch);
    char what[96];
    snprintf(what, sizeof what, "the network for batch %zu", net->max_batch);
    CBQ_TRY(cbq_mem_check(bytes, what, err));
    net->params = alloc_floats(net->n_params);
    net->grads = alloc_floats(net->n_params);
    net->buffers = alloc_floats(net->n_buffers);
    net->counters = calloc(net->n_counters ? net->n_counters : 1, sizeof(int64_t));
    net->acts = alloc_floats(net->arena_total);
    net->input = alloc_floats(in_count);
    net->input_grad = alloc_floats(in_count);
    net->aux = alloc_floats(net->aux_total);
    net->workspace = alloc_floats(tws);
    net->dw_private = alloc_floats(tdw);
    net->dout_scratch = alloc_floats(plane_of(net->shapes[net->n_layers - 1]) * net->max_batch);
    net->fanout = alloc_floats(net->fanout_total);
    net->written = calloc(net->n_layers + 1, 1);
    if (!net->params || !net->grads || !net->buffers || !net->counters || !net->acts ||
        !net->input || !net->input_grad || !net->aux || !net->workspace || !net->dw_private ||
        !net->dout_scratch || !net->fanout || !net->written)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM,
                        "out of memory allocating the network for batch %zu (%zu activation values)",
                        net->max_batch, net->act_total);
    return CBQ_OK;
}

/* Views of the tensors once the blocks exist. */
static void make_views(cbq_net *net)
{
    for (size_t t = 0; t < net->n_tensors; t++) {
        net_tensor *nt = &net->tensors[t];
        cbq_tensor_view *v = &net->views[t];
        v->name = nt->name;
        v->ndim = nt->ndim;
        memcpy(v->shape, nt->shape, sizeof v->shape);
        v->numel = nt->numel;
        v->dtype = nt->kind == NET_T_COUNTER ? CBQ_DTYPE_I64 : CBQ_DTYPE_F32;
        v->trainable = nt->kind == NET_T_PARAM;
        v->data = nt->kind == NET_T_PARAM    ? (void *)(net->params + nt->offset)
                  : nt->kind == NET_T_BUFFER ? (void *)(net->buffers + nt->offset)
                                             : (void *)(net->counters + nt->offset);
        v->grad = nt->kind == NET_T_PARAM ? net->grads + nt->offset : NULL;
    }
}

/* Every layer's inputs and their shapes, once (the spec's shapes passed). */
static int gather_input_shapes(cbq_net *net, cbq_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < net->n_layers; i++)
        total += cbq_model_spec_n_inputs(&net->spec, i);
    net->in_shapes = calloc(total, sizeof *net->in_shapes);
    if (!net->in_shapes)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory creating the network");
    size_t at = 0;
    for (size_t i = 0; i < net->n_layers; i++) {
        net_layer *nl = &net->layer[i];
        nl->in_first = at;
        nl->n_in = cbq_model_spec_n_inputs(&net->spec, i);
        for (size_t j = 0; j < nl->n_in; j++, at++) {
            long from = cbq_model_spec_input(&net->spec, i, j);
            memcpy(net->in_shapes[at], from < 0 ? net->in_shape : net->shapes[from],
                   sizeof net->in_shapes[at]);
        }
    }
    net->chain = cbq_model_spec_is_chain(&net->spec);
    return CBQ_OK;
}

/* Everything cbq_net_create makes; on failure the caller frees the net. */
static int build(cbq_net *net, const cbq_model_spec *spec, cbq_error *err)
{
    CBQ_TRY(copy_spec(&net->spec, spec, err));
    net->shapes = calloc(net->n_layers, sizeof *net->shapes);
    net->layer = calloc(net->n_layers, sizeof *net->layer);
    if (!net->shapes || !net->layer)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory creating the network");
    /* also refuses kinds outside the layer table and bad inputs */
    CBQ_TRY(cbq_model_spec_shapes(&net->spec, net->shapes, err));
    CBQ_TRY(gather_input_shapes(net, err));
    for (size_t i = 0; i < net->n_layers; i++)
        net->max_tensors += net_layer_ops_of(spec->layers[i].kind)->max_tensors;
    net->tensors = calloc(net->max_tensors ? net->max_tensors : 1, sizeof *net->tensors);
    net->views = calloc(net->max_tensors ? net->max_tensors : 1, sizeof *net->views);
    if (!net->tensors || !net->views)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory creating the network");
    CBQ_TRY(plan(net, err));
    CBQ_TRY(allocate(net, err));
    make_views(net);
    return CBQ_OK;
}

static int create(cbq_net **out, const cbq_model_spec *spec, size_t max_batch, uint64_t seed,
                  int relu_in_place, cbq_error *err)
{
    *out = NULL;
    CBQ_CHECK_ARG(err, spec && spec->n_layers > 0, "model spec: no layers");
    CBQ_CHECK_ARG(err, max_batch > 0, "network: max_batch must be at least 1");
    cbq_net *net = calloc(1, sizeof *net);
    if (!net)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory creating the network");
    net->n_layers = spec->n_layers;
    net->max_batch = max_batch;
    net->relu_in_place = relu_in_place;
    net->in_shape[0] = cbq_input_channels(&spec->input);
    net->in_shape[1] = (size_t)spec->input.height;
    net->in_shape[2] = (size_t)spec->input.width;
    int rc = build(net, spec, err);
    if (rc != CBQ_OK) {
        cbq_net_free(net);
        return rc;
    }
    init_params(net, seed);
    cbq_rng_stream(&net->dropout_rng, seed, 1);
    net->threads = cbq_threads_init(0);
    net->training = 1;
    *out = net;
    return CBQ_OK;
}

int cbq_net_create(cbq_net **out, const cbq_model_spec *spec, size_t max_batch, uint64_t seed,
                   cbq_error *err)
{
    return create(out, spec, max_batch, seed, 0, err);
}

int cbq_net_create_training(cbq_net **out, const cbq_model_spec *spec, size_t max_batch, uint64_t seed,
                            cbq_error *err)
{
    return create(out, spec, max_batch, seed, 1, err);
}

int cbq_net_keep_activations_from(cbq_net *net, size_t layer, cbq_error *err)
{
    CBQ_CHECK_ARG(err, layer < net->n_layers, "network: keep activations from layer %zu, it has %zu",
                  layer, net->n_layers);
    if (net->relu_in_place || layer == net->keep_from)
        return CBQ_OK;
    /* the plan as it is, put back if the new one cannot be made */
    net_layer *was = malloc(net->n_layers * sizeof *was);
    if (!was)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory re-planning the network");
    memcpy(was, net->layer, net->n_layers * sizeof *was);
    size_t was_keep = net->keep_from, was_acts = net->act_total, was_arena = net->arena_total;
    net->keep_from = layer;
    int rc = plan_activations(net, err);
    float *arena = rc == CBQ_OK ? alloc_floats(net->arena_total) : NULL;
    if (rc == CBQ_OK && !arena)
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory re-planning the network for batch %zu",
                      net->max_batch);
    if (rc != CBQ_OK) {
        memcpy(net->layer, was, net->n_layers * sizeof *was);
        net->keep_from = was_keep;
        net->act_total = was_acts;
        net->arena_total = was_arena;
        free(was);
        return rc;
    }
    free(was);
    cbq_free_zeroed(net->acts);
    net->acts = arena;
    net->batch = 0; /* the last forward's activations are gone */
    return CBQ_OK;
}

void cbq_net_free(cbq_net *net)
{
    if (!net)
        return;
    free(net->sync_sums);
    free(net->spec.layers);
    free(net->shapes);
    free(net->in_shapes);
    free(net->layer);
    cbq_free_zeroed(net->fanout);
    free(net->written);
    free(net->tensors);
    free(net->views);
    cbq_free_zeroed(net->params);
    cbq_free_zeroed(net->grads);
    cbq_free_zeroed(net->buffers);
    free(net->counters);
    cbq_free_zeroed(net->acts);
    cbq_free_zeroed(net->input);
    cbq_free_zeroed(net->input_grad);
    cbq_free_zeroed(net->aux);
    cbq_free_zeroed(net->workspace);
    cbq_free_zeroed(net->dw_private);
    cbq_free_zeroed(net->dout_scratch);
    free(net);
}

const cbq_model_spec *cbq_net_spec(const cbq_net *net) { return &net->spec; }

void cbq_net_set_threads(cbq_net *net, int threads)
{
    net->threads = cbq_threads_init(threads);
    if (net->threads > net->threads_cap)
        net->threads = net->threads_cap;
}

void cbq_net_set_conv_algorithm(cbq_net *net, cbq_conv_algorithm algorithm)
{
    for (size_t i = 0; i < net->spec.n_layers; i++)
        if (net->spec.layers[i].kind == CBQ_LAYER_CONV2D)
            net->spec.layers[i].cfg.conv.algorithm = (int)algorithm;
}

int cbq_net_threads(const cbq_net *net) { return net->threads; }
void cbq_net_set_training(cbq_net *net, int training) { net->training = training != 0; }
void cbq_net_seed_dropout(cbq_net *net, uint64_t seed) { cbq_rng_stream(&net->dropout_rng, seed, 1); }

size_t cbq_net_tensor_count(const cbq_net *net) { return net->n_tensors; }

void cbq_net_tensor(const cbq_net *net, size_t index, cbq_tensor_view *view)
{
    *view = net->views[index];
}

int cbq_net_tensor_find(const cbq_net *net, const char *name, cbq_tensor_view *view)
{
    for (size_t t = 0; t < net->n_tensors; t++)
        if (strcmp(net->views[t].name, name) == 0) {
            *view = net->views[t];
            return 1;
        }
    return 0;
}

float *cbq_net_params(cbq_net *net, size_t *count)
{
    *count = net->n_params;
    return net->params;
}

float *cbq_net_grads(cbq_net *net, size_t *count)
{
    *count = net->n_params;
    return net->grads;
}

size_t cbq_net_batch(const cbq_net *net) { return net->batch; }

void cbq_net_layer_shape(const cbq_net *net, size_t layer, size_t shape[3])
{
    memcpy(shape, net->shapes[layer], 3 * sizeof *shape);
}

const float *cbq_net_activation(const cbq_net *net, size_t layer)
{
    return net->acts + net->layer[layer].act_off;
}

const float *cbq_net_activation_grad(const cbq_net *net, size_t layer)
{
    return net->acts + net->layer[layer].grad_off;
}

const float *cbq_net_input_grad(const cbq_net *net) { return net->input_grad; }

void cbq_net_zero_grad(cbq_net *net) { memset(net->grads, 0, net->n_params * sizeof *net->grads); }

/* fan_in is 0 for layers without a matrix product */
double cbq_net_forward_flops(const cbq_net *net)
{
    double flops = 0.0;
    for (size_t i = 0; i < net->n_layers; i++)
        flops += 2.0 * (double)net->layer[i].fan_in * (double)plane_of(net->shapes[i]);
    return flops;
}

int cbq_net_set_dist(cbq_net *net, const cbq_dist *dist, cbq_error *err)
{
    size_t widest = 0;
    for (size_t i = 0; i < net->n_layers; i++)
        if (net->spec.layers[i].kind == CBQ_LAYER_BATCHNORM2D &&
            (size_t)net->spec.layers[i].cfg.bn.channels > widest)
            widest = (size_t)net->spec.layers[i].cfg.bn.channels;
    free(net->sync_sums);
    net->sync_sums = NULL;
    net->dist = NULL;
    if (!dist || dist->size <= 1)
        return CBQ_OK;
    net->sync_sums = malloc((2 * widest + 1) * sizeof *net->sync_sums);
    if (!net->sync_sums)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for batch-norm synchronisation");
    net->dist = dist;
    return CBQ_OK;
}
