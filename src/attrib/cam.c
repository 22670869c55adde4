/* cam.c - runs an attribution method on batches of slices: one forward, then
 * per output one backward that stops at the target layer (gradients of the
 * parameters skipped), the forward's activations staying valid throughout.
 *
 * Owns every buffer it needs, sized once at creation for the largest batch;
 * a run allocates nothing. The methods' arithmetic lives in combine.c,
 * eigencam.c, scorecam.c and pixel.c; this file is the plumbing.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cam_private.h"
#include "cbctiq/layer_table.h"

static void list_spatial_layers(const cbq_model_spec *spec, char *buf, size_t cap)
{
    buf[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < spec->n_layers; i++) {
        if (!cbq_model_spec_has_grid(spec, i))
            continue;
        int k = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", spec->layers[i].name);
        if (k < 0 || (size_t)k >= cap - used)
            break;
        used += (size_t)k;
    }
}

static int resolve_target(cbq_cam *cam, cbq_error *err)
{
    const cbq_model_spec *spec = cam->spec;
    char names[768];
    list_spatial_layers(spec, names, sizeof names);
    const char *want = cam->opt.layer[0] ? cam->opt.layer : spec->target_layer;
    if (!want[0])
        return CBQ_FAIL(err, CBQ_ERR_ARG,
                        "the model names no target_layer and none was given (--layer); "
                        "layers with a spatial grid: %s", names);
    long idx = cbq_model_spec_find(spec, want);
    if (idx < 0)
        return CBQ_FAIL(err, CBQ_ERR_ARG,
                        "unknown target layer '%s'; layers with a spatial grid: %s", want, names);
    if (!cbq_model_spec_has_grid(spec, (size_t)idx)) {
        long flat = 0; /* the first flattening layer: a layer without a grid follows one */
        while (flat < idx && !cbq_layer_kind_info_of(spec->layers[flat].kind)->flattens)
            flat++;
        return CBQ_FAIL(err, CBQ_ERR_ARG,
                        "target layer '%s' comes at or after the global pool/linear layer "
                        "'%s', where no spatial grid is left; choose one of: %s",
                        want, spec->layers[flat].name, names);
    }
    cam->target = (size_t)idx;
    snprintf(cam->target_name, sizeof cam->target_name, "%s", want);
    return CBQ_OK;
}

/* The identity needs: after the target only dropout and identity layers,
 * then exactly one global average pool (global_avgpool, or
 * adaptive_avgpool2d to 1x1 and a flatten of its 1x1 grid, as torchvision's
 * ResNets end), then dropout, then exactly one final linear layer. */
static int identity_after(const cbq_model_spec *spec, size_t target)
{
    int seen_gap = 0, seen_linear = 0;
    for (size_t i = target + 1; i < spec->n_layers; i++) {
        cbq_layer_kind k = spec->layers[i].kind;
        if (cbq_model_spec_n_inputs(spec, i) != 1 || cbq_model_spec_input(spec, i, 0) != (long)i - 1)
            return 0; /* a graph after the target: not a plain pool and linear */
        if ((k == CBQ_LAYER_DROPOUT || k == CBQ_LAYER_IDENTITY) && !seen_linear)
            continue;
        if ((k == CBQ_LAYER_GLOBAL_AVGPOOL || k == CBQ_LAYER_ADAPTIVE_AVGPOOL2D) && !seen_gap) {
            seen_gap = 1;
            continue;
        }
        if (k == CBQ_LAYER_FLATTEN && seen_gap && !seen_linear)
            continue;
        if (k == CBQ_LAYER_LINEAR && seen_gap && !seen_linear) {
            seen_linear = 1;
            continue;
        }
        return 0;
    }
    return seen_gap && seen_linear;
}

static void read_output_bias(cbq_cam *cam)
{
    const cbq_model_spec *spec = cam->spec;
    for (size_t c = 0; c < CBQ_MAX_OUTPUTS; c++)
        cam->bias[c] = 0.0;
    for (size_t i = spec->n_layers; i-- > 0;) {
        if (spec->layers[i].kind != CBQ_LAYER_LINEAR)
            continue;
        char name[CBQ_NAME_MAX + 8];
        snprintf(name, sizeof name, "%s.bias", spec->layers[i].name);
        cbq_tensor_view v;
        if (cbq_net_tensor_find(cam->net, name, &v) && v.dtype == CBQ_DTYPE_F32)
            for (size_t c = 0; c < v.numel && c < CBQ_MAX_OUTPUTS; c++)
                cam->bias[c] = ((const float *)v.data)[c];
        return;
    }
}

static int check_options(const cbq_attrib_options *o, cbq_error *err)
{
    CBQ_CHECK_ARG(err, (unsigned)o->method < CBQ_CAM_METHOD_COUNT, "unknown method %d", (int)o->method);
    CBQ_CHECK_ARG(err, o->sign == 1 || o->sign == -1, "sign must be +1 or -1, got %d", o->sign);
    CBQ_CHECK_ARG(err, o->relu == 0 || o->relu == 1, "relu must be 0 or 1, got %d", o->relu);
    CBQ_CHECK_ARG(err, o->ig_steps >= 1 && o->ig_steps <= 4096,
                  "Integrated Gradients steps must be in [1, 4096], got %d", o->ig_steps);
    return CBQ_OK;
}

static void *alloc_floats(size_t a, size_t b, size_t c, int *ok)
{
    size_t n, bytes;
    if (!cbq_size_mul(&n, a, b) || !cbq_size_mul(&n, n, c) || !cbq_size_mul(&bytes, n, sizeof(float))) {
        *ok = 0;
        return NULL;
    }
    void *p = calloc(n ? n : 1, sizeof(float));
    if (!p)
        *ok = 0;
    return p;
}

static int alloc_buffers(cbq_cam *cam, cbq_error *err)
{
    size_t B = cam->max_batch, hw = cam->h * cam->w, HW = cam->H * cam->W, no = cam->n_out;
    size_t CHW = cam->C * HW; /* one sample of the input */
    int ok = 1;
    cam->pred = alloc_floats(B, no, 1, &ok);
    cam->dout = alloc_floats(B, no, 1, &ok);
    cam->map_input = alloc_floats(no, B, HW, &ok);
    cam->pre_input = alloc_floats(B, HW, 1, &ok);
    cam->sums = calloc(no * B, sizeof *cam->sums);
    ok = ok && cam->sums;
    if (!cbq_cam_method_is_pixel(cam->opt.method)) {
        cam->map_feature = alloc_floats(no, B, hw, &ok);
        cam->pre_feature = alloc_floats(B, hw, 1, &ok);
    }
    if (cam->opt.method == CBQ_CAM_EIGENCAM) {
        cam->eig_work = calloc(cbq_eigencam_work_size(cam->K, hw), sizeof(double));
        ok = ok && cam->eig_work;
    }
    if (cam->opt.method == CBQ_CAM_SCORECAM) {
        cam->act_copy = alloc_floats(B, cam->K, hw, &ok);
        cam->x_copy = alloc_floats(B, CHW, 1, &ok);
        cam->masks = alloc_floats(cam->K, CHW, 1, &ok);
        cam->scores = calloc(cam->K * no, sizeof(double));
        ok = ok && cam->scores;
        cam->path = alloc_floats(B, CHW, 1, &ok);
    }
    if (cbq_cam_method_is_pixel(cam->opt.method)) {
        cam->x_copy = alloc_floats(B, CHW, 1, &ok);
        cam->path = alloc_floats(B, CHW, 1, &ok);
        cam->grad_acc = calloc(no * B * CHW, sizeof(double));
        cam->slice_of = calloc(B, sizeof(size_t));
        cam->weight_of = calloc(B, sizeof(double));
        ok = ok && cam->grad_acc && cam->slice_of && cam->weight_of;
    }
    if (!ok)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM,
                        "out of memory for attribution buffers (batch %zu, %zu outputs, %zux%zu input)",
                        B, no, cam->H, cam->W);
    return CBQ_OK;
}

int cbq_cam_create(cbq_cam **out, cbq_net *net, size_t max_batch, const cbq_attrib_options *opt,
                   cbq_error *err)
{
    *out = NULL;
    CBQ_CHECK_ARG(err, net && opt, "cbq_cam_create: net and options are required");
    CBQ_CHECK_ARG(err, max_batch >= 1, "batch size must be at least 1");
    CBQ_TRY(check_options(opt, err));
    cbq_cam *cam = calloc(1, sizeof *cam);
    if (!cam)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    cam->net = net;
    cam->spec = cbq_net_spec(net);
    cam->opt = *opt;
    cam->max_batch = max_batch;
    cam->H = (size_t)cam->spec->input.height;
    cam->W = (size_t)cam->spec->input.width;
    cam->C = cbq_input_channels(&cam->spec->input);
    int rc = CBQ_OK;
    cam->shapes = calloc(cam->spec->n_layers ? cam->spec->n_layers : 1, sizeof *cam->shapes);
    if (!cam->shapes) {
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((rc = cbq_model_spec_shapes(cam->spec, cam->shapes, err)) != CBQ_OK)
        goto fail;
    cam->n_out = cam->spec->n_outputs;
    if (cam->n_out == 0 || cam->n_out > CBQ_MAX_OUTPUTS) {
        rc = CBQ_FAIL(err, CBQ_ERR_ARG, "the model has %zu outputs; expected 1 to %d",
                      cam->n_out, CBQ_MAX_OUTPUTS);
        goto fail;
    }
    if (cbq_cam_method_is_pixel(opt->method)) {
        cam->target = 0;
        snprintf(cam->target_name, sizeof cam->target_name, "input");
    } else {
        if ((rc = resolve_target(cam, err)) != CBQ_OK)
            goto fail;
        cam->K = cam->shapes[cam->target][0];
        cam->h = cam->shapes[cam->target][1];
        cam->w = cam->shapes[cam->target][2];
        cam->identity = identity_after(cam->spec, cam->target);
    }
    /* Every method but the pixel ones reads the target layer and what lies
     * above it only, so the layers below may share memory; the pixel
     * methods' backward goes down to the input and needs them all. */
    if ((rc = cbq_net_keep_activations_from(net, cam->target, err)) != CBQ_OK)
        goto fail;
    read_output_bias(cam);
    if ((rc = alloc_buffers(cam, err)) != CBQ_OK)
        goto fail;
    cbq_net_set_training(net, 0);
    *out = cam;
    return CBQ_OK;
fail:
    cbq_cam_free(cam);
    return rc;
}

void cbq_cam_free(cbq_cam *cam)
{
    if (!cam)
        return;
    free(cam->shapes);
    free(cam->pred);
    free(cam->dout);
    free(cam->map_input);
    free(cam->pre_input);
    free(cam->map_feature);
    free(cam->pre_feature);
    free(cam->sums);
    free(cam->eig_work);
    free(cam->act_copy);
    free(cam->x_copy);
    free(cam->masks);
    free(cam->scores);
    free(cam->path);
    free(cam->grad_acc);
    free(cam->slice_of);
    free(cam->weight_of);
    free(cam);
}

const cbq_attrib_options *cbq_cam_options(const cbq_cam *cam) { return &cam->opt; }
size_t cbq_cam_target_index(const cbq_cam *cam) { return cam->target; }
const char *cbq_cam_target_name(const cbq_cam *cam) { return cam->target_name; }
size_t cbq_cam_n_outputs(const cbq_cam *cam) { return cam->n_out; }
const cbq_model_spec *cbq_cam_spec(const cbq_cam *cam) { return cam->spec; }

const char *cbq_cam_category_name(const cbq_cam *cam, size_t output)
{
    return output < cam->n_out ? cam->spec->outputs[output] : NULL;
}
int cbq_cam_identity_holds(const cbq_cam *cam) { return cam->identity; }

void cbq_cam_feature_shape(const cbq_cam *cam, size_t *h, size_t *w)
{
    *h = cam->h;
    *w = cam->w;
}

void cbq_cam_input_shape(const cbq_cam *cam, size_t *H, size_t *W)
{
    *H = cam->H;
    *W = cam->W;
}

double cbq_cam_output_bias(const cbq_cam *cam, size_t output)
{
    return output < cam->n_out ? cam->bias[output] : 0.0;
}

const float *cbq_cam_pred(const cbq_cam *cam) { return cam->pred; }

const float *cbq_cam_map_feature(const cbq_cam *cam, size_t output)
{
    if (!cam->map_feature || output >= cam->n_out)
        return NULL;
    return cam->map_feature + output * cam->max_batch * cam->h * cam->w;
}

/* Where slice s of this batch's map of output c lives on the input grid. */
static float *input_map(const cbq_cam *cam, size_t c, size_t s)
{
    size_t HW = cam->H * cam->W;
    if (cam->map_input_dst[c])
        return cam->map_input_dst[c] + s * HW;
    return cam->map_input + (c * cam->max_batch + s) * HW;
}

const float *cbq_cam_map_input(const cbq_cam *cam, size_t output)
{
    return output < cam->n_out ? input_map(cam, output, 0) : NULL;
}

const cbq_cam_slice_sum *cbq_cam_sums(const cbq_cam *cam, size_t output)
{
    return output < cam->n_out ? cam->sums + output * cam->max_batch : NULL;
}

/* From a pre-ReLU feature map of slice s for output c: the sums, the chosen
 * map on both grids. */
void cam_finish_feature(cbq_cam *cam, size_t c, size_t s, const float *pre)
{
    size_t hw = cam->h * cam->w, HW = cam->H * cam->W;
    float *fmap = cam->map_feature + (c * cam->max_batch + s) * hw;
    double sum_pre = 0.0, sum_post = 0.0, sum_chosen = 0.0;
    for (size_t i = 0; i < hw; i++) {
        float v = pre[i], clipped = v > 0.0f ? v : 0.0f;
        sum_pre += v;
        sum_post += clipped;
        fmap[i] = cam->opt.relu ? clipped : v;
        sum_chosen += fmap[i];
    }
    float *imap = input_map(cam, c, s);
    cbq_resize_bilinear(fmap, 1, cam->h, cam->w, imap, cam->H, cam->W, 0);
    double sum_input = 0.0;
    for (size_t i = 0; i < HW; i++)
        sum_input += imap[i];
    cbq_cam_slice_sum *ss = cam->sums + c * cam->max_batch + s;
    ss->input = sum_input;
    ss->feature = sum_chosen;
    ss->feature_pre = sum_pre;
    ss->feature_post = sum_post;
}

/* For pixel methods: the pre-ReLU map is already on the input grid. */
void cam_finish_input(cbq_cam *cam, size_t c, size_t s, const float *pre)
{
    size_t HW = cam->H * cam->W;
    float *imap = input_map(cam, c, s);
    double sum = 0.0;
    for (size_t i = 0; i < HW; i++) {
        float v = pre[i];
        imap[i] = cam->opt.relu && v < 0.0f ? 0.0f : v;
        sum += imap[i];
    }
    cbq_cam_slice_sum *ss = cam->sums + c * cam->max_batch + s;
    ss->input = sum;
    ss->feature = NAN;
    ss->feature_pre = NAN;
    ss->feature_post = NAN;
}

/* dout selecting output c of every slice, times the sign. */
void cam_fill_dout(cbq_cam *cam, size_t n, size_t c)
{
    memset(cam->dout, 0, n * cam->n_out * sizeof *cam->dout);
    for (size_t s = 0; s < n; s++)
        cam->dout[s * cam->n_out + c] = (float)cam->opt.sign;
}

static int run_gradient_cam(cbq_cam *cam, size_t n, cbq_error *err)
{
    size_t hw = cam->h * cam->w, khw = cam->K * hw;
    const float *A = cbq_net_activation(cam->net, cam->target);
    for (size_t c = 0; c < cam->n_out; c++) {
        cam_fill_dout(cam, n, c);
        CBQ_TRY(cbq_net_backward(cam->net, cam->dout, cam->target, 0, err));
        const float *G = cbq_net_activation_grad(cam->net, cam->target);
        for (size_t s = 0; s < n; s++) {
            cbq_cam_combine(cam->opt.method, A + s * khw, G + s * khw, cam->K, cam->h, cam->w,
                            cam->pre_feature);
            cam_finish_feature(cam, c, s, cam->pre_feature);
        }
    }
    return CBQ_OK;
}

static void run_eigencam(cbq_cam *cam, size_t n)
{
    size_t hw = cam->h * cam->w, khw = cam->K * hw;
    const float *A = cbq_net_activation(cam->net, cam->target);
    for (size_t s = 0; s < n; s++) {
        cbq_eigencam_project(A + s * khw, cam->K, cam->h, cam->w, cam->pre_feature, cam->eig_work);
        /* class-agnostic: the same map for every output */
        for (size_t c = 0; c < cam->n_out; c++)
            cam_finish_feature(cam, c, s, cam->pre_feature);
    }
}

int cbq_cam_run(cbq_cam *cam, const float *x, size_t n, cbq_error *err)
{
    CBQ_CHECK_ARG(err, n >= 1 && n <= cam->max_batch, "batch of %zu slices; expected 1 to %zu",
                  n, cam->max_batch);
    const float *out = NULL;
    CBQ_TRY(cbq_net_forward(cam->net, x, n, &out, err));
    CBQ_TRY(cbq_net_check_outputs(cam->net, out, n, err));
    memcpy(cam->pred, out, n * cam->n_out * sizeof *cam->pred);
    cam->n = n;
    switch (cam->opt.method) {
    case CBQ_CAM_EIGENCAM:
        run_eigencam(cam, n);
        return CBQ_OK;
    case CBQ_CAM_SCORECAM:
        return cam_run_scorecam(cam, x, n, err);
    case CBQ_CAM_GRADXINPUT:
    case CBQ_CAM_IG:
        return cam_run_pixel(cam, x, n, err);
    default:
        return run_gradient_cam(cam, n, err);
    }
}
