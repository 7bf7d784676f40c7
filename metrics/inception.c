// The FID Inception-v3 forward (docs/FID.md §3): a stem of five units and two max pools, then
// Mixed_5b..7c, then the spatial mean. Block branches are concatenated along channels in
// torchvision's order. The network is sequential, so stage outputs ping-pong between two
// buffers sized for the largest activation (Conv2d_2b's); branch temporaries are carved from
// the arena above them and released after each block.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inception.h"
#include "param_table.h"
#include "safetensors.h"

#define BN_EPS 1e-3 // TF's BatchNorm epsilon, kept by the port
#define MIN_SIZE 75 // smallest H, W for which every stage has an output pixel

// ---- the parameter table ----------------------------------------------------------------------

static void add_unit(dato_inception* net, int* n, const char* block, const char* unit, int cin, int cout, int kh,
                     int kw, int stride, int pad_h, int pad_w) {
    dato_inception_unit* u = &net->units[(*n)++];
    if (block)
        snprintf(u->name, sizeof u->name, "%s.%s", block, unit);
    else
        snprintf(u->name, sizeof u->name, "%s", unit);
    u->cin = cin, u->cout = cout, u->kh = kh, u->kw = kw, u->stride = stride, u->pad_h = pad_h, u->pad_w = pad_w;
    u->w = dato_tensor_make(NULL, DATO_F32, net->be->device, 4, (int64_t[]){cout, cin, kh, kw});
    u->b = dato_tensor_make(NULL, DATO_F32, net->be->device, 1, (int64_t[]){cout});
}

static void add_block_a(dato_inception* net, int* n, const char* b, int in, int pool_features) {
    add_unit(net, n, b, "branch1x1", in, 64, 1, 1, 1, 0, 0);
    add_unit(net, n, b, "branch5x5_1", in, 48, 1, 1, 1, 0, 0);
    add_unit(net, n, b, "branch5x5_2", 48, 64, 5, 5, 1, 2, 2);
    add_unit(net, n, b, "branch3x3dbl_1", in, 64, 1, 1, 1, 0, 0);
    add_unit(net, n, b, "branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
    add_unit(net, n, b, "branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1);
    add_unit(net, n, b, "branch_pool", in, pool_features, 1, 1, 1, 0, 0);
}

static void add_block_c(dato_inception* net, int* n, const char* b, int c7) {
    add_unit(net, n, b, "branch1x1", 768, 192, 1, 1, 1, 0, 0);
    add_unit(net, n, b, "branch7x7_1", 768, c7, 1, 1, 1, 0, 0);
    add_unit(net, n, b, "branch7x7_2", c7, c7, 1, 7, 1, 0, 3);
    add_unit(net, n, b, "branch7x7_3", c7, 192, 7, 1, 1, 3, 0);
    add_unit(net, n, b, "branch7x7dbl_1", 768, c7, 1, 1, 1, 0, 0);
    add_unit(net, n, b, "branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0);
    add_unit(net, n, b, "branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3);
    add_unit(net, n, b, "branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0);
    add_unit(net, n, b, "branch7x7dbl_5", c7, 192, 1, 7, 1, 0, 3);
    add_unit(net, n, b, "branch_pool", 768, 192, 1, 1, 1, 0, 0);
}

static void add_block_e(dato_inception* net, int* n, const char* b, int in) {
    add_unit(net, n, b, "branch1x1", in, 320, 1, 1, 1, 0, 0);
    add_unit(net, n, b, "branch3x3_1", in, 384, 1, 1, 1, 0, 0);
    add_unit(net, n, b, "branch3x3_2a", 384, 384, 1, 3, 1, 0, 1);
    add_unit(net, n, b, "branch3x3_2b", 384, 384, 3, 1, 1, 1, 0);
    add_unit(net, n, b, "branch3x3dbl_1", in, 448, 1, 1, 1, 0, 0);
    add_unit(net, n, b, "branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1);
    add_unit(net, n, b, "branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1);
    add_unit(net, n, b, "branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0);
    add_unit(net, n, b, "branch_pool", in, 192, 1, 1, 1, 0, 0);
}

void dato_inception_init(dato_inception* net, dato_backend* be) {
    memset(net, 0, sizeof *net);
    net->be = be;
    int n = 0;
    add_unit(net, &n, NULL, "Conv2d_1a_3x3", 3, 32, 3, 3, 2, 0, 0);
    add_unit(net, &n, NULL, "Conv2d_2a_3x3", 32, 32, 3, 3, 1, 0, 0);
    add_unit(net, &n, NULL, "Conv2d_2b_3x3", 32, 64, 3, 3, 1, 1, 1);
    add_unit(net, &n, NULL, "Conv2d_3b_1x1", 64, 80, 1, 1, 1, 0, 0);
    add_unit(net, &n, NULL, "Conv2d_4a_3x3", 80, 192, 3, 3, 1, 0, 0);
    add_block_a(net, &n, "Mixed_5b", 192, 32);
    add_block_a(net, &n, "Mixed_5c", 256, 64);
    add_block_a(net, &n, "Mixed_5d", 288, 64);
    add_unit(net, &n, "Mixed_6a", "branch3x3", 288, 384, 3, 3, 2, 0, 0);
    add_unit(net, &n, "Mixed_6a", "branch3x3dbl_1", 288, 64, 1, 1, 1, 0, 0);
    add_unit(net, &n, "Mixed_6a", "branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
    add_unit(net, &n, "Mixed_6a", "branch3x3dbl_3", 96, 96, 3, 3, 2, 0, 0);
    add_block_c(net, &n, "Mixed_6b", 128);
    add_block_c(net, &n, "Mixed_6c", 160);
    add_block_c(net, &n, "Mixed_6d", 160);
    add_block_c(net, &n, "Mixed_6e", 192);
    add_unit(net, &n, "Mixed_7a", "branch3x3_1", 768, 192, 1, 1, 1, 0, 0);
    add_unit(net, &n, "Mixed_7a", "branch3x3_2", 192, 320, 3, 3, 2, 0, 0);
    add_unit(net, &n, "Mixed_7a", "branch7x7x3_1", 768, 192, 1, 1, 1, 0, 0);
    add_unit(net, &n, "Mixed_7a", "branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3);
    add_unit(net, &n, "Mixed_7a", "branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0);
    add_unit(net, &n, "Mixed_7a", "branch7x7x3_4", 192, 192, 3, 3, 2, 0, 0);
    add_block_e(net, &n, "Mixed_7b", 1280);
    add_block_e(net, &n, "Mixed_7c", 2048);
}

void dato_inception_free(dato_inception* net) {
    if (net->weights) net->be->ops->free(net->be, net->weights);
    if (net->workspace) net->be->ops->free(net->be, net->workspace);
    memset(net, 0, sizeof *net);
}

// ---- loading --------------------------------------------------------------------------------------

// Finds prefix.suffix in src and checks it has the ndim/shape given.
static dato_status find_checked(const dato_tensor_source* src, const char* prefix, const char* suffix, int ndim,
                                const int64_t* shape, const dato_st_tensor** out, dato_error* err) {
    char name[96];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    const dato_st_tensor* t = src->find(src->ctx, name);
    if (!t) return dato_fail(err, DATO_ERR_NOT_FOUND, "%s: inception tensor '%s' is missing", src->label, name);
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same) {
        char got[128], want[96];
        return dato_fail(err, DATO_ERR_FORMAT, "%s: inception tensor '%s' has shape %s, expected %s", src->label, name,
                         dato_shape_text(t->ndim, t->shape, got, sizeof got),
                         dato_shape_text(ndim, shape, want, sizeof want));
    }
    *out = t;
    return DATO_OK;
}

static dato_status load_unit(dato_inception_unit* u, dato_backend* be, const dato_tensor_source* src, float* w,
                             float* bn, dato_error* err) {
    static const char* const BN_NAMES[4] = {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"};
    int64_t wshape[4] = {u->cout, u->cin, u->kh, u->kw}, c = u->cout;
    const dato_st_tensor* t;
    DATO_TRY(find_checked(src, u->name, "conv.weight", 4, wshape, &t, err));
    size_t per_out = (size_t)u->cin * u->kh * u->kw;
    DATO_TRY(dato_st_tensor_to_f32(t, w, (size_t)c * per_out, err));
    float* gamma = bn;         // (cout) each
    float* beta = bn + c;
    float* mean = bn + 2 * c;
    float* var = bn + 3 * c;
    for (int j = 0; j < 4; j++) {
        DATO_TRY(find_checked(src, u->name, BN_NAMES[j], 1, &c, &t, err));
        DATO_TRY(dato_st_tensor_to_f32(t, bn + j * c, (size_t)c, err));
    }
    float* bias = bn + 4 * c; // (cout)
    for (int64_t o = 0; o < c; o++) {
        double scale = (double)gamma[o] / sqrt((double)var[o] + BN_EPS);
        if (!(var[o] + BN_EPS > 0))
            return dato_fail(err, DATO_ERR_FORMAT, "%s: inception tensor '%s.bn.running_var' has %g at %lld",
                             src->label, u->name, (double)var[o], (long long)o);
        for (size_t i = 0; i < per_out; i++) w[o * per_out + i] = (float)(w[o * per_out + i] * scale);
        bias[o] = (float)(beta[o] - mean[o] * scale);
    }
    be->ops->upload(be, u->w.data, w, (size_t)c * per_out * sizeof(float));
    be->ops->upload(be, u->b.data, bias, (size_t)c * sizeof(float));
    return DATO_OK;
}

dato_status dato_inception_load(dato_inception* net, const dato_tensor_source* src, dato_error* err) {
    dato_backend* be = net->be;
    size_t bytes = 0, max_w = 0, max_c = 0;
    for (int i = 0; i < DATO_INCEPTION_UNITS; i++) {
        const dato_inception_unit* u = &net->units[i];
        size_t nw = (size_t)dato_tensor_numel(&u->w);
        bytes += dato_arena_bytes(DATO_F32, nw) + dato_arena_bytes(DATO_F32, (size_t)u->cout);
        max_w = nw > max_w ? nw : max_w;
        max_c = (size_t)u->cout > max_c ? (size_t)u->cout : max_c;
    }
    if (!net->weights) {
        net->weights = be->ops->alloc(be, bytes);
        if (!net->weights) return dato_fail(err, DATO_ERR_NOMEM, "inception: cannot allocate %zu bytes of weights", bytes);
        dato_arena a = dato_arena_over(net->weights, bytes);
        for (int i = 0; i < DATO_INCEPTION_UNITS; i++) {
            dato_inception_unit* u = &net->units[i];
            u->w.data = dato_arena_alloc(&a, dato_tensor_nbytes(&u->w));
            u->b.data = dato_arena_alloc(&a, dato_tensor_nbytes(&u->b));
        }
    }
    float* w = malloc(max_w * sizeof *w);      // staging: one unit's conv weight
    float* bn = malloc(5 * max_c * sizeof *bn); // gamma, beta, mean, var, folded bias
    dato_status st = w && bn ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "inception: cannot allocate staging buffers");
    for (int i = 0; st == DATO_OK && i < DATO_INCEPTION_UNITS; i++) st = load_unit(&net->units[i], be, src, w, bn, err);
    free(w);
    free(bn);
    return st;
}

// ---- the forward --------------------------------------------------------------------------------

typedef struct {
    const dato_inception* net;
    dato_backend* be;
    const dato_backend_ops* op;
    dato_arena* a;
    int next_unit; // units run in table order: each unit() call takes the next one
    dato_error* err;
} fwd_ctx;

// A (B, C, H, W) tensor over dst's memory (a stage buffer), or carved from the arena when dst is NULL.
static dato_status new_act(fwd_ctx* f, const dato_tensor* dst, int64_t b, int64_t c, int64_t h, int64_t w, dato_tensor* out) {
    int64_t shape[4] = {b, c, h, w};
    if (dst) {
        if (b * c * h * w > dato_tensor_numel(dst))
            return dato_fail(f->err, DATO_ERR_NOMEM, "inception: stage output (%lld, %lld, %lld, %lld) exceeds its buffer",
                             (long long)b, (long long)c, (long long)h, (long long)w);
        *out = dato_tensor_make(dst->data, DATO_F32, f->be->device, 4, shape);
        return DATO_OK;
    }
    *out = dato_arena_tensor(f->a, DATO_F32, f->be->device, 4, shape);
    if (f->a->overflowed)
        return dato_fail(f->err, DATO_ERR_NOMEM, "inception: workspace too small (unit %d)", f->next_unit);
    return DATO_OK;
}

// out = relu(conv(x) + b) with the next unit's folded weights; out over dst or the arena.
static dato_status unit(fwd_ctx* f, const dato_tensor* dst, const dato_tensor* x, dato_tensor* out) {
    if (f->next_unit >= DATO_INCEPTION_UNITS) return dato_fail(f->err, DATO_ERR_INVALID, "inception: out of units");
    const dato_inception_unit* u = &f->net->units[f->next_unit++];
    int64_t ho = (x->shape[2] + 2 * u->pad_h - u->kh) / u->stride + 1;
    int64_t wo = (x->shape[3] + 2 * u->pad_w - u->kw) / u->stride + 1;
    DATO_TRY(new_act(f, dst, x->shape[0], u->cout, ho, wo, out));
    dato_status st = f->op->conv2d(f->be, out, x, &u->w, &u->b, u->stride, u->stride, u->pad_h, u->pad_w, f->err);
    if (st) return dato_error_prefix(f->err, st, "inception %s: ", u->name);
    return f->op->relu(f->be, out, out, f->err);
}

typedef enum { POOL_MAX, POOL_AVG_EXCL_PAD } pool_kind;

static dato_status pool(fwd_ctx* f, const dato_tensor* dst, pool_kind kind, int k, int stride, int pad, const dato_tensor* x,
                        dato_tensor* out) {
    int64_t ho = (x->shape[2] + 2 * pad - k) / stride + 1, wo = (x->shape[3] + 2 * pad - k) / stride + 1;
    DATO_TRY(new_act(f, dst, x->shape[0], x->shape[1], ho, wo, out));
    if (kind == POOL_MAX) return f->op->max_pool2d(f->be, out, x, k, stride, pad, f->err);
    return f->op->avg_pool2d(f->be, out, x, k, stride, pad, 0, f->err);
}

// out (over dst) = cat(parts, dim=1), by a chain of two-input concats through arena temporaries.
static dato_status concat(fwd_ctx* f, const dato_tensor* dst, const dato_tensor* parts, int n, dato_tensor* out) {
    dato_tensor acc = parts[0];
    for (int i = 1; i < n; i++) {
        dato_tensor next;
        DATO_TRY(new_act(f, i == n - 1 ? dst : NULL, acc.shape[0], acc.shape[1] + parts[i].shape[1], acc.shape[2],
                         acc.shape[3], &next));
        DATO_TRY(f->op->concat_channels(f->be, &next, &acc, &parts[i], f->err));
        acc = next;
    }
    *out = acc;
    return DATO_OK;
}

// FIDInceptionA: [1x1] [1x1, 5x5] [1x1, 3x3, 3x3] [avg pool excl. pad, 1x1].
static dato_status block_a(fwd_ctx* f, const dato_tensor* x, const dato_tensor* dst, dato_tensor* out) {
    size_t mark = dato_arena_mark(f->a);
    dato_tensor p[4], t, u;
    DATO_TRY(unit(f, NULL, x, &p[0]));
    DATO_TRY(unit(f, NULL, x, &t));
    DATO_TRY(unit(f, NULL, &t, &p[1]));
    DATO_TRY(unit(f, NULL, x, &t));
    DATO_TRY(unit(f, NULL, &t, &u));
    DATO_TRY(unit(f, NULL, &u, &p[2]));
    DATO_TRY(pool(f, NULL, POOL_AVG_EXCL_PAD, 3, 1, 1, x, &t));
    DATO_TRY(unit(f, NULL, &t, &p[3]));
    DATO_TRY(concat(f, dst, p, 4, out));
    dato_arena_release(f->a, mark);
    return DATO_OK;
}

// InceptionB (Mixed_6a): [3x3 s2] [1x1, 3x3, 3x3 s2] [max pool 3 s2].
static dato_status block_b(fwd_ctx* f, const dato_tensor* x, const dato_tensor* dst, dato_tensor* out) {
    size_t mark = dato_arena_mark(f->a);
    dato_tensor p[3], t, u;
    DATO_TRY(unit(f, NULL, x, &p[0]));
    DATO_TRY(unit(f, NULL, x, &t));
    DATO_TRY(unit(f, NULL, &t, &u));
    DATO_TRY(unit(f, NULL, &u, &p[1]));
    DATO_TRY(pool(f, NULL, POOL_MAX, 3, 2, 0, x, &p[2]));
    DATO_TRY(concat(f, dst, p, 3, out));
    dato_arena_release(f->a, mark);
    return DATO_OK;
}

// FIDInceptionC: [1x1] [1x1, 1x7, 7x1] [1x1, 7x1, 1x7, 7x1, 1x7] [avg pool excl. pad, 1x1].
static dato_status block_c(fwd_ctx* f, const dato_tensor* x, const dato_tensor* dst, dato_tensor* out) {
    size_t mark = dato_arena_mark(f->a);
    dato_tensor p[4], t[2];
    DATO_TRY(unit(f, NULL, x, &p[0]));
    DATO_TRY(unit(f, NULL, x, &t[0]));
    DATO_TRY(unit(f, NULL, &t[0], &t[1]));
    DATO_TRY(unit(f, NULL, &t[1], &p[1]));
    DATO_TRY(unit(f, NULL, x, &t[0]));
    for (int i = 0; i < 3; i++) DATO_TRY(unit(f, NULL, &t[i % 2], &t[(i + 1) % 2]));
    DATO_TRY(unit(f, NULL, &t[1], &p[2]));
    DATO_TRY(pool(f, NULL, POOL_AVG_EXCL_PAD, 3, 1, 1, x, &t[0]));
    DATO_TRY(unit(f, NULL, &t[0], &p[3]));
    DATO_TRY(concat(f, dst, p, 4, out));
    dato_arena_release(f->a, mark);
    return DATO_OK;
}

// InceptionD (Mixed_7a): [1x1, 3x3 s2] [1x1, 1x7, 7x1, 3x3 s2] [max pool 3 s2].
static dato_status block_d(fwd_ctx* f, const dato_tensor* x, const dato_tensor* dst, dato_tensor* out) {
    size_t mark = dato_arena_mark(f->a);
    dato_tensor p[3], t[2];
    DATO_TRY(unit(f, NULL, x, &t[0]));
    DATO_TRY(unit(f, NULL, &t[0], &p[0]));
    DATO_TRY(unit(f, NULL, x, &t[0]));
    DATO_TRY(unit(f, NULL, &t[0], &t[1]));
    DATO_TRY(unit(f, NULL, &t[1], &t[0]));
    DATO_TRY(unit(f, NULL, &t[0], &p[1]));
    DATO_TRY(pool(f, NULL, POOL_MAX, 3, 2, 0, x, &p[2]));
    DATO_TRY(concat(f, dst, p, 3, out));
    dato_arena_release(f->a, mark);
    return DATO_OK;
}

// FIDInceptionE_1 / E_2: [1x1] [1x1 -> {1x3, 3x1}] [1x1, 3x3 -> {1x3, 3x1}] [pool, 1x1]; the pool
// is an average excluding padding in Mixed_7b and a max in Mixed_7c (the standard's quirk).
static dato_status block_e(fwd_ctx* f, const dato_tensor* x, pool_kind pool_kind_, const dato_tensor* dst, dato_tensor* out) {
    size_t mark = dato_arena_mark(f->a);
    dato_tensor p[6], t, u;
    DATO_TRY(unit(f, NULL, x, &p[0]));
    DATO_TRY(unit(f, NULL, x, &t));
    DATO_TRY(unit(f, NULL, &t, &p[1]));
    DATO_TRY(unit(f, NULL, &t, &p[2]));
    DATO_TRY(unit(f, NULL, x, &t));
    DATO_TRY(unit(f, NULL, &t, &u));
    DATO_TRY(unit(f, NULL, &u, &p[3]));
    DATO_TRY(unit(f, NULL, &u, &p[4]));
    DATO_TRY(pool(f, NULL, pool_kind_, 3, 1, 1, x, &t));
    DATO_TRY(unit(f, NULL, &t, &p[5]));
    DATO_TRY(concat(f, dst, p, 6, out));
    dato_arena_release(f->a, mark);
    return DATO_OK;
}

// Floats per image of the largest stage output, Conv2d_2b's (64, H2, W2): every later stage output
// is smaller (the next largest, Conv2d_4a's, is 70% of it at 299). new_act checks the fit.
static int64_t max_activation(int64_t h, int64_t w) {
    int64_t h2 = (h - 3) / 2 + 1 - 2, w2 = (w - 3) / 2 + 1 - 2;
    return 64 * h2 * w2;
}

static dato_status forward_impl(const dato_inception* net, dato_backend* be, dato_arena* a, const dato_tensor* images,
                                dato_tensor* features, dato_error* err) {
    fwd_ctx f = {.net = net, .be = be, .op = be->ops, .a = a, .next_unit = 0, .err = err};
    int64_t batch = images->shape[0];
    size_t ping_floats = (size_t)(batch * max_activation(images->shape[2], images->shape[3]));
    dato_tensor ping[2]; // (B * max activation) each: stage outputs alternate between them
    for (int i = 0; i < 2; i++) {
        ping[i] = dato_arena_tensor(a, DATO_F32, be->device, 1, (int64_t[]){(int64_t)ping_floats});
        if (a->overflowed) return dato_fail(err, DATO_ERR_NOMEM, "inception: workspace too small for the stage buffers");
    }
    dato_tensor x[2];
    DATO_TRY(unit(&f, &ping[0], images, &x[0]));       // Conv2d_1a_3x3
    DATO_TRY(unit(&f, &ping[1], &x[0], &x[1]));        // Conv2d_2a_3x3
    DATO_TRY(unit(&f, &ping[0], &x[1], &x[0]));        // Conv2d_2b_3x3
    DATO_TRY(pool(&f, &ping[1], POOL_MAX, 3, 2, 0, &x[0], &x[1]));
    DATO_TRY(unit(&f, &ping[0], &x[1], &x[0]));        // Conv2d_3b_1x1
    DATO_TRY(unit(&f, &ping[1], &x[0], &x[1]));        // Conv2d_4a_3x3
    DATO_TRY(pool(&f, &ping[0], POOL_MAX, 3, 2, 0, &x[1], &x[0]));
    int cur = 0; // x[cur] holds the current stage output, in ping[cur]
#define STAGE(call)                                             \
    do {                                                        \
        DATO_TRY(call(&f, &x[cur], &ping[1 - cur], &x[1 - cur])); \
        cur = 1 - cur;                                          \
    } while (0)
    for (int i = 0; i < 3; i++) STAGE(block_a); // Mixed_5b, 5c, 5d
    STAGE(block_b);                             // Mixed_6a
    for (int i = 0; i < 4; i++) STAGE(block_c); // Mixed_6b..6e
    STAGE(block_d);                             // Mixed_7a
#undef STAGE
    DATO_TRY(block_e(&f, &x[cur], POOL_AVG_EXCL_PAD, &ping[1 - cur], &x[1 - cur])); // Mixed_7b
    cur = 1 - cur;
    DATO_TRY(block_e(&f, &x[cur], POOL_MAX, &ping[1 - cur], &x[1 - cur]));          // Mixed_7c
    cur = 1 - cur;
    if (f.next_unit != DATO_INCEPTION_UNITS)
        return dato_fail(err, DATO_ERR_INVALID, "inception: ran %d of %d units", f.next_unit, DATO_INCEPTION_UNITS);
    return be->ops->mean_hw(be, features, &x[cur], err); // pool_3
}

dato_status dato_inception_forward(dato_inception* net, const dato_tensor* images, dato_tensor* features,
                                   dato_error* err) {
    char si[96], sf[96];
    if (!net->weights) return dato_fail(err, DATO_ERR_INVALID, "inception: no weights loaded");
    if (!images || !features || images->ndim != 4 || images->shape[1] != 3 || images->shape[0] < 1 ||
        images->shape[2] < MIN_SIZE || images->shape[3] < MIN_SIZE)
        return dato_fail(err, DATO_ERR_INVALID, "inception: images %s are not (B >= 1, 3, H >= %d, W >= %d)",
                         images ? dato_shape_str(images, si, sizeof si) : "NULL", MIN_SIZE, MIN_SIZE);
    if (features->ndim != 2 || features->shape[0] != images->shape[0] || features->shape[1] != DATO_INCEPTION_FEATURES)
        return dato_fail(err, DATO_ERR_INVALID, "inception: features %s are not (%lld, %d)",
                         dato_shape_str(features, sf, sizeof sf), (long long)images->shape[0], DATO_INCEPTION_FEATURES);
    if (net->workspace_batch != images->shape[0] || net->workspace_h != images->shape[2] ||
        net->workspace_w != images->shape[3]) {
        // plan: the same forward on the null backend with a measuring arena
        dato_backend null_be;
        dato_backend_null_init(&null_be);
        dato_arena measure = dato_arena_measure();
        DATO_TRY(forward_impl(net, &null_be, &measure, images, features, err));
        if (net->workspace) net->be->ops->free(net->be, net->workspace);
        net->workspace_batch = 0;
        net->workspace_bytes = measure.peak;
        net->workspace = net->be->ops->alloc(net->be, measure.peak);
        if (!net->workspace)
            return dato_fail(err, DATO_ERR_NOMEM, "inception: cannot allocate a %zu-byte workspace for batch %lld",
                             measure.peak, (long long)images->shape[0]);
        net->workspace_batch = images->shape[0], net->workspace_h = images->shape[2], net->workspace_w = images->shape[3];
    }
    dato_arena a = dato_arena_over(net->workspace, net->workspace_bytes);
    return forward_impl(net, net->be, &a, images, features, err);
}

// ---- seeded weights (parity fixtures, benchmarks, tests without the real file) ------------------

// v in [-1, 1) for element k of tensor i: the hash tools/make_inception_fixtures.py implements too.
double dato_inception_hash_uniform(uint32_t seed, uint32_t i, uint32_t k) {
    uint32_t h = seed ^ (i * 0x9E3779B9u) ^ (k * 0x85EBCA6Bu);
    h ^= h >> 16;
    h *= 0x7FEB352Du;
    h ^= h >> 15;
    h *= 0x846CA68Bu;
    h ^= h >> 16;
    return 2.0 * ((double)(h >> 8) / (double)(1u << 24)) - 1.0;
}

static const char* const KINDS[5] = {"conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"};

// Tensor j (0..4, KINDS order) of unit u, index i = 5u + j in the script's order.
static void seeded_tensor(float* dst, const dato_inception_unit* u, int i, int j, uint32_t seed) {
    int64_t n = j == 0 ? (int64_t)u->cout * u->cin * u->kh * u->kw : u->cout;
    double fan_in = (double)u->cin * u->kh * u->kw;
    for (int64_t k = 0; k < n; k++) {
        double v = dato_inception_hash_uniform(seed, (uint32_t)i, (uint32_t)k);
        double x = j == 0 ? v * sqrt(6.0 / fan_in) : j == 1 ? 1.0 + 0.2 * v : j == 4 ? 1.0 + 0.5 * v : 0.1 * v;
        dst[k] = (float)x; // the script rounds the double to f32 the same way
    }
}

// Writes the seeded state dict (all 470 unit tensors, plus an unused fc.bias) to path.
dato_status dato_inception_write_seeded(const dato_inception* net, const char* path, uint32_t seed, dato_error* err) {
    enum { N = DATO_INCEPTION_UNITS * 5 + 1 };
    dato_st_write_entry* e = calloc(N, sizeof *e);
    char (*names)[96] = calloc(N, sizeof *names);
    int64_t (*shapes)[4] = calloc(N, sizeof *shapes);
    float** data = calloc(N, sizeof *data);
    for (int u = 0; u < DATO_INCEPTION_UNITS; u++) {
        const dato_inception_unit* un = &net->units[u];
        for (int j = 0; j < 5; j++) {
            int i = 5 * u + j;
            snprintf(names[i], sizeof names[i], "%s.%s", un->name, KINDS[j]);
            int64_t ws[4] = {un->cout, un->cin, un->kh, un->kw};
            memcpy(shapes[i], ws, sizeof ws);
            int64_t n = j == 0 ? ws[0] * ws[1] * ws[2] * ws[3] : un->cout;
            data[i] = malloc((size_t)n * sizeof(float));
            seeded_tensor(data[i], un, i, j, seed);
            e[i] = (dato_st_write_entry){names[i], DATO_F32, j == 0 ? 4 : 1, shapes[i], data[i]};
        }
    }
    shapes[N - 1][0] = 1008;
    data[N - 1] = calloc(1008, sizeof(float));
    e[N - 1] = (dato_st_write_entry){"fc.bias", DATO_F32, 1, shapes[N - 1], data[N - 1]};
    dato_status st = dato_safetensors_write(path, e, N, NULL, err);
    for (int i = 0; i < N; i++) free(data[i]);
    free(data), free(shapes), free(names), free(e);
    return st;
}
