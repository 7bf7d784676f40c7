// The CUDA backend's non-GEMM ops against the CPU backend (the reference): norms, activations,
// softmax, elementwise arithmetic, the timestep embedding, pools and layout changes, at SD-like
// and Inception-like shapes and at odd sizes (vector tails, partial tiles), on fresh seeded
// random inputs with both outputs poisoned with NaN first. Also: argument errors name the op.
// Exits 77 (skipped) when the build has no CUDA or the machine no GPU.
//
// Error measure: max|cuda - cpu| / max|cpu| over the whole output, i.e. an absolute tolerance
// scaled by the output's magnitude, for every op. Elementwise relative error is meaningless
// where outputs cross zero (GroupNorm and LayerNorm outputs, GELU's negative tail, sin/cos), so
// no test uses it. Arithmetic ops must be within TOL (f32: the two sides use different
// exp/erf/sin implementations and the GPU fuses multiply-adds); pure data movement, relu, add,
// max pooling and the channel-bias add must match exactly.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_cuda.h"
#include "cuda_device.h"
#include "gpu_test.h"
#include "rng.h"
#include "test_util.h"

#define TOL 1e-5 // f32, relative to the output's max magnitude

typedef struct {
    dato_backend cpu, gpu;
    dato_rng rng;
} ctx;

// One tensor on both backends: host memory under the CPU backend, a device copy under CUDA.
typedef struct {
    dato_tensor h; // CPU
    dato_tensor d; // CUDA, same shape
    size_t n;
} pair;

// A pair of the given shape with uninitialized contents.
static pair pair_alloc(ctx* c, int ndim, const int64_t* shape) {
    pair p;
    p.h = dato_tensor_make(NULL, DATO_F32, DATO_DEV_CPU, ndim, shape);
    p.n = (size_t)dato_tensor_numel(&p.h);
    p.h.data = malloc(p.n * sizeof(float) + sizeof(float));
    p.d = dato_tensor_make(c->gpu.ops->alloc(&c->gpu, p.n * sizeof(float)), DATO_F32, DATO_DEV_CUDA, ndim, shape);
    if (!p.h.data || !p.d.data) {
        fprintf(stderr, "out of memory for %zu floats\n", p.n);
        exit(1);
    }
    return p;
}

// Copies the host side to the device side.
static void pair_sync_up(ctx* c, pair* p) { c->gpu.ops->upload(&c->gpu, p->d.data, p->h.data, p->n * sizeof(float)); }

// A pair holding mean + std * N(0, 1) on both sides.
static pair pair_random(ctx* c, int ndim, const int64_t* shape, float mean, float std) {
    pair p = pair_alloc(c, ndim, shape);
    float* h = p.h.data;
    dato_rng_fill_normal(&c->rng, h, p.n);
    for (size_t i = 0; i < p.n; i++) h[i] = mean + std * h[i];
    pair_sync_up(c, &p);
    return p;
}

// A pair holding NaN on both sides: an op that skips an element shows up as NaN.
static pair pair_poison(ctx* c, int ndim, const int64_t* shape) {
    pair p = pair_alloc(c, ndim, shape);
    float* h = p.h.data;
    for (size_t i = 0; i < p.n; i++) h[i] = NAN;
    pair_sync_up(c, &p);
    return p;
}

static void pair_free(ctx* c, pair* p) {
    free(p->h.data);
    c->gpu.ops->free(&c->gpu, p->d.data);
}

// Downloads the device tensor d and compares it with the host tensor h (same shape): prints the
// errors and checks max|d - h| / max|h| <= tol (tol == 0: bit-exact).
static void compare_view(ctx* c, const char* what, const dato_tensor* h, const dato_tensor* d, double tol) {
    size_t n = (size_t)dato_tensor_numel(h);
    float* got = malloc(n * sizeof(float) + sizeof(float));
    if (!got) exit(1);
    c->gpu.ops->download(&c->gpu, got, d->data, n * sizeof(float));
    char s[96];
    double abs_err = test_max_abs_diff(got, h->data, n), rel = test_rel_err(got, h->data, n);
    printf("%-44s %-20s max abs err %.3g, rel err %.3g\n", what, dato_shape_str(h, s, sizeof s), abs_err, rel);
    if (tol == 0)
        CHECK(abs_err == 0, "%s %s: max abs err %g, expected exact", what, s, abs_err);
    else
        CHECK(rel <= tol, "%s %s: rel err %g > %g (max abs err %g)", what, s, rel, tol, abs_err);
    free(got);
}

// compare_view over a whole pair.
static void compare(ctx* c, const char* what, const pair* p, double tol) { compare_view(c, what, &p->h, &p->d, tol); }

#define CHECK_OK(st, what) CHECK((st) == DATO_OK, "%s: %s", what, err.msg)

// ---- activations --------------------------------------------------------------------------------

typedef dato_status (*unary_fn)(dato_backend*, dato_tensor*, const dato_tensor*, dato_error*);

// out = op(x) on both backends for x = std * N(0, 1); in place (out == x) when in_place.
static void test_unary(ctx* c, const char* name, unary_fn fc, unary_fn fg, int ndim, const int64_t* shape, float std,
                       int in_place, double tol) {
    dato_error err = {{0}};
    pair x = pair_random(c, ndim, shape, 0.0f, std);
    pair out = in_place ? x : pair_poison(c, ndim, shape);
    CHECK_OK(fc(&c->cpu, &out.h, &x.h, &err), name);
    CHECK_OK(fg(&c->gpu, &out.d, &x.d, &err), name);
    char what[64];
    snprintf(what, sizeof what, "%s%s", name, in_place ? " (in place)" : "");
    compare(c, what, &out, tol);
    if (!in_place) pair_free(c, &out);
    pair_free(c, &x);
}

// silu on views one float past aligned blocks: the kernel must take its scalar path.
static void test_misaligned(ctx* c) {
    dato_error err = {{0}};
    int64_t shape[1] = {1001};
    pair x = pair_random(c, 1, shape, 0.0f, 2.0f), out = pair_poison(c, 1, shape);
    dato_tensor views[4] = {x.h, x.d, out.h, out.d}; // x on the CPU, on CUDA; out likewise
    for (int i = 0; i < 4; i++) {
        views[i].shape[0] = 1000;
        views[i].data = (float*)views[i].data + 1;
    }
    CHECK_OK(c->cpu.ops->silu(&c->cpu, &views[2], &views[0], &err), "silu");
    CHECK_OK(c->gpu.ops->silu(&c->gpu, &views[3], &views[1], &err), "silu");
    compare_view(c, "silu (misaligned by 4 bytes)", &views[2], &views[3], TOL);
    pair_free(c, &out);
    pair_free(c, &x);
}

static void test_activations(ctx* c) {
    const dato_backend_ops *oc = c->cpu.ops, *og = c->gpu.ops;
    int64_t big[4] = {2, 320, 64, 64}, odd[3] = {3, 5, 7};
    test_unary(c, "silu", oc->silu, og->silu, 4, big, 3.0f, 0, TOL);
    test_unary(c, "silu", oc->silu, og->silu, 3, odd, 3.0f, 1, TOL);
    test_unary(c, "gelu", oc->gelu, og->gelu, 4, big, 3.0f, 0, TOL);
    test_unary(c, "gelu", oc->gelu, og->gelu, 3, odd, 3.0f, 1, TOL);
    test_unary(c, "quick_gelu", oc->quick_gelu, og->quick_gelu, 4, big, 3.0f, 0, TOL);
    test_unary(c, "quick_gelu", oc->quick_gelu, og->quick_gelu, 3, odd, 3.0f, 0, TOL);
    test_unary(c, "relu", oc->relu, og->relu, 4, big, 1.0f, 0, 0);
    test_unary(c, "relu", oc->relu, og->relu, 3, odd, 1.0f, 1, 0);
    int64_t rows77[3] = {16, 512, 77}, rows4096[3] = {4, 64, 4096}, tiny[2] = {5, 3};
    test_unary(c, "softmax", oc->softmax, og->softmax, 3, rows77, 4.0f, 0, TOL);
    test_unary(c, "softmax", oc->softmax, og->softmax, 3, rows4096, 4.0f, 0, TOL);
    test_unary(c, "softmax", oc->softmax, og->softmax, 3, rows4096, 4.0f, 1, TOL);
    test_unary(c, "softmax", oc->softmax, og->softmax, 2, tiny, 4.0f, 0, TOL);
    test_misaligned(c);
}

// geglu: out (..., F) from x (..., 2F) = [hidden, gate].
static void test_geglu(ctx* c, int ndim, const int64_t* xshape) {
    dato_error err = {{0}};
    int64_t oshape[4];
    memcpy(oshape, xshape, (size_t)ndim * sizeof *oshape);
    oshape[ndim - 1] /= 2;
    pair x = pair_random(c, ndim, xshape, 0.0f, 2.0f), out = pair_poison(c, ndim, oshape);
    CHECK_OK(c->cpu.ops->geglu(&c->cpu, &out.h, &x.h, &err), "geglu");
    CHECK_OK(c->gpu.ops->geglu(&c->gpu, &out.d, &x.d, &err), "geglu");
    compare(c, "geglu", &out, TOL);
    pair_free(c, &out);
    pair_free(c, &x);
}

// ---- norms --------------------------------------------------------------------------------------

// GroupNorm of x = 3 + 2 N(0, 1) (an offset the two-pass statistics must handle), random
// gamma/beta, eps 1e-5 (1e-6 as the VAE uses when fuse_silu: it does not matter here).
static void test_group_norm(ctx* c, int ndim, const int64_t* shape, int groups, int fuse_silu, int in_place) {
    dato_error err = {{0}};
    int64_t cshape[1] = {shape[1]};
    pair x = pair_random(c, ndim, shape, 3.0f, 2.0f);
    pair gamma = pair_random(c, 1, cshape, 1.0f, 0.5f), beta = pair_random(c, 1, cshape, 0.0f, 0.5f);
    pair out = in_place ? x : pair_poison(c, ndim, shape);
    CHECK_OK(c->cpu.ops->group_norm(&c->cpu, &out.h, &x.h, &gamma.h, &beta.h, groups, 1e-5f, fuse_silu, &err),
             "group_norm");
    CHECK_OK(c->gpu.ops->group_norm(&c->gpu, &out.d, &x.d, &gamma.d, &beta.d, groups, 1e-5f, fuse_silu, &err),
             "group_norm");
    char what[64];
    snprintf(what, sizeof what, "group_norm G=%d%s%s", groups, fuse_silu ? " +silu" : "", in_place ? " (in place)" : "");
    compare(c, what, &out, TOL);
    if (!in_place) pair_free(c, &out);
    pair_free(c, &x);
    pair_free(c, &gamma);
    pair_free(c, &beta);
}

static void test_layer_norm(ctx* c, int ndim, const int64_t* shape, int in_place) {
    dato_error err = {{0}};
    int64_t cshape[1] = {shape[ndim - 1]};
    pair x = pair_random(c, ndim, shape, -1.0f, 3.0f);
    pair gamma = pair_random(c, 1, cshape, 1.0f, 0.5f), beta = pair_random(c, 1, cshape, 0.0f, 0.5f);
    pair out = in_place ? x : pair_poison(c, ndim, shape);
    CHECK_OK(c->cpu.ops->layer_norm(&c->cpu, &out.h, &x.h, &gamma.h, &beta.h, 1e-5f, &err), "layer_norm");
    CHECK_OK(c->gpu.ops->layer_norm(&c->gpu, &out.d, &x.d, &gamma.d, &beta.d, 1e-5f, &err), "layer_norm");
    compare(c, in_place ? "layer_norm (in place)" : "layer_norm", &out, TOL);
    if (!in_place) pair_free(c, &out);
    pair_free(c, &x);
    pair_free(c, &gamma);
    pair_free(c, &beta);
}

static void test_norms(ctx* c) {
    int64_t sd[4] = {2, 320, 64, 64}, vae[4] = {1, 128, 256, 256}, odd[4] = {2, 64, 5, 7}, flat[3] = {2, 96, 9};
    test_group_norm(c, 4, sd, 32, 0, 0);
    test_group_norm(c, 4, sd, 32, 1, 1);
    test_group_norm(c, 4, vae, 32, 1, 0);
    test_group_norm(c, 4, odd, 32, 0, 0);
    test_group_norm(c, 3, flat, 3, 1, 0);
    int64_t tokens[3] = {2, 4096, 320}, text[3] = {2, 77, 768}, small[3] = {3, 5, 33};
    test_layer_norm(c, 3, tokens, 0);
    test_layer_norm(c, 3, text, 1);
    test_layer_norm(c, 3, small, 0);
}

// ---- elementwise arithmetic ------------------------------------------------------------------------

// add (alpha = beta = 1, exact) or axpby; in place into a when in_place.
static void test_lincomb(ctx* c, int ndim, const int64_t* shape, int axpby, int in_place) {
    dato_error err = {{0}};
    pair a = pair_random(c, ndim, shape, 0.0f, 1.0f), b = pair_random(c, ndim, shape, 0.5f, 2.0f);
    pair out = in_place ? a : pair_poison(c, ndim, shape);
    if (axpby) {
        CHECK_OK(c->cpu.ops->axpby(&c->cpu, &out.h, 1.5f, &a.h, -0.25f, &b.h, &err), "axpby");
        CHECK_OK(c->gpu.ops->axpby(&c->gpu, &out.d, 1.5f, &a.d, -0.25f, &b.d, &err), "axpby");
    } else {
        CHECK_OK(c->cpu.ops->add(&c->cpu, &out.h, &a.h, &b.h, &err), "add");
        CHECK_OK(c->gpu.ops->add(&c->gpu, &out.d, &a.d, &b.d, &err), "add");
    }
    compare(c, axpby ? (in_place ? "axpby (in place)" : "axpby") : (in_place ? "add (in place)" : "add"), &out,
            axpby ? TOL : 0);
    if (!in_place) pair_free(c, &out);
    pair_free(c, &a);
    pair_free(c, &b);
}

static void test_channel_bias(ctx* c, const int64_t* shape) {
    dato_error err = {{0}};
    int64_t vshape[2] = {shape[0], shape[1]};
    pair x = pair_random(c, 4, shape, 0.0f, 1.0f), v = pair_random(c, 2, vshape, 0.0f, 1.0f);
    CHECK_OK(c->cpu.ops->add_channel_bias(&c->cpu, &x.h, &v.h, &err), "add_channel_bias");
    CHECK_OK(c->gpu.ops->add_channel_bias(&c->gpu, &x.d, &v.d, &err), "add_channel_bias");
    compare(c, "add_channel_bias", &x, 0);
    pair_free(c, &x);
    pair_free(c, &v);
}

static void test_copy(ctx* c, int ndim, const int64_t* shape) {
    dato_error err = {{0}};
    pair x = pair_random(c, ndim, shape, 0.0f, 1.0f), out = pair_poison(c, ndim, shape);
    CHECK_OK(c->cpu.ops->copy(&c->cpu, &out.h, &x.h, &err), "copy");
    CHECK_OK(c->gpu.ops->copy(&c->gpu, &out.d, &x.d, &err), "copy");
    compare(c, "copy", &out, 0);
    pair_free(c, &out);
    pair_free(c, &x);
}

static void test_timestep_embedding(ctx* c, int64_t batch, int64_t dim, const float* t, int flip, float shift) {
    dato_error err = {{0}};
    int64_t shape[2] = {batch, dim};
    pair out = pair_poison(c, 2, shape), ts = pair_alloc(c, 1, &batch);
    memcpy(ts.h.data, t, (size_t)batch * sizeof(float));
    pair_sync_up(c, &ts);
    CHECK_OK(c->cpu.ops->timestep_embedding(&c->cpu, &out.h, &ts.h, flip, shift, 10000.0f, &err), "timestep_embedding");
    CHECK_OK(c->gpu.ops->timestep_embedding(&c->gpu, &out.d, &ts.d, flip, shift, 10000.0f, &err), "timestep_embedding");
    compare(c, flip ? "timestep_embedding (cos, sin)" : "timestep_embedding (sin, cos)", &out, TOL);
    pair_free(c, &ts);
    pair_free(c, &out);
}

static void test_elementwise(ctx* c) {
    int64_t big[4] = {2, 320, 64, 64}, odd[1] = {1001}, odd4[4] = {2, 3, 5, 7};
    test_lincomb(c, 4, big, 0, 0);
    test_lincomb(c, 1, odd, 0, 1);
    test_lincomb(c, 4, big, 1, 1);
    test_lincomb(c, 1, odd, 1, 0);
    test_channel_bias(c, big);
    test_channel_bias(c, odd4);
    test_copy(c, 4, big);
    test_copy(c, 1, odd);
    float t2[2] = {999.0f, 1.0f}, t3[3] = {0.5f, 500.0f, 981.0f};
    test_timestep_embedding(c, 2, 320, t2, 1, 0.0f);
    test_timestep_embedding(c, 3, 256, t3, 0, 1.0f);
}

// ---- pools and layout ----------------------------------------------------------------------------

// max pool (count_include_pad < 0) or avg pool on x (shape) with a k x k window.
static void test_pool(ctx* c, const int64_t* shape, int k, int stride, int pad, int count_include_pad) {
    dato_error err = {{0}};
    int64_t oshape[4] = {shape[0], shape[1], (shape[2] + 2 * pad - k) / stride + 1, (shape[3] + 2 * pad - k) / stride + 1};
    pair x = pair_random(c, 4, shape, 0.0f, 1.0f), out = pair_poison(c, 4, oshape);
    char what[64];
    if (count_include_pad < 0) {
        CHECK_OK(c->cpu.ops->max_pool2d(&c->cpu, &out.h, &x.h, k, stride, pad, &err), "max_pool2d");
        CHECK_OK(c->gpu.ops->max_pool2d(&c->gpu, &out.d, &x.d, k, stride, pad, &err), "max_pool2d");
        snprintf(what, sizeof what, "max_pool2d k%d s%d p%d", k, stride, pad);
    } else {
        CHECK_OK(c->cpu.ops->avg_pool2d(&c->cpu, &out.h, &x.h, k, stride, pad, count_include_pad, &err), "avg_pool2d");
        CHECK_OK(c->gpu.ops->avg_pool2d(&c->gpu, &out.d, &x.d, k, stride, pad, count_include_pad, &err), "avg_pool2d");
        snprintf(what, sizeof what, "avg_pool2d k%d s%d p%d %s", k, stride, pad,
                 count_include_pad ? "incl. pad" : "excl. pad");
    }
    compare(c, what, &out, count_include_pad < 0 ? 0 : TOL);
    pair_free(c, &out);
    pair_free(c, &x);
}

static void test_mean_hw(ctx* c, const int64_t* shape) {
    dato_error err = {{0}};
    int64_t oshape[2] = {shape[0], shape[1]};
    pair x = pair_random(c, 4, shape, 1.0f, 1.0f), out = pair_poison(c, 2, oshape);
    CHECK_OK(c->cpu.ops->mean_hw(&c->cpu, &out.h, &x.h, &err), "mean_hw");
    CHECK_OK(c->gpu.ops->mean_hw(&c->gpu, &out.d, &x.d, &err), "mean_hw");
    compare(c, "mean_hw", &out, TOL);
    pair_free(c, &out);
    pair_free(c, &x);
}

static void test_upsample(ctx* c, const int64_t* shape) {
    dato_error err = {{0}};
    int64_t oshape[4] = {shape[0], shape[1], 2 * shape[2], 2 * shape[3]};
    pair x = pair_random(c, 4, shape, 0.0f, 1.0f), out = pair_poison(c, 4, oshape);
    CHECK_OK(c->cpu.ops->upsample_nearest2x(&c->cpu, &out.h, &x.h, &err), "upsample_nearest2x");
    CHECK_OK(c->gpu.ops->upsample_nearest2x(&c->gpu, &out.d, &x.d, &err), "upsample_nearest2x");
    compare(c, "upsample_nearest2x", &out, 0);
    pair_free(c, &out);
    pair_free(c, &x);
}

static void test_concat(ctx* c, const int64_t* ashape, int64_t cb) {
    dato_error err = {{0}};
    int64_t bshape[4] = {ashape[0], cb, ashape[2], ashape[3]};
    int64_t oshape[4] = {ashape[0], ashape[1] + cb, ashape[2], ashape[3]};
    pair a = pair_random(c, 4, ashape, 0.0f, 1.0f), b = pair_random(c, 4, bshape, 0.0f, 1.0f);
    pair out = pair_poison(c, 4, oshape);
    CHECK_OK(c->cpu.ops->concat_channels(&c->cpu, &out.h, &a.h, &b.h, &err), "concat_channels");
    CHECK_OK(c->gpu.ops->concat_channels(&c->gpu, &out.d, &a.d, &b.d, &err), "concat_channels");
    compare(c, "concat_channels", &out, 0);
    pair_free(c, &out);
    pair_free(c, &a);
    pair_free(c, &b);
}

// nchw_to_tokens on x (B, C, H, W), then tokens_to_nchw of a fresh (B, H*W, C).
static void test_permutes(ctx* c, const int64_t* shape) {
    dato_error err = {{0}};
    int64_t tshape[3] = {shape[0], shape[2] * shape[3], shape[1]};
    pair x = pair_random(c, 4, shape, 0.0f, 1.0f), tok = pair_poison(c, 3, tshape);
    CHECK_OK(c->cpu.ops->nchw_to_tokens(&c->cpu, &tok.h, &x.h, &err), "nchw_to_tokens");
    CHECK_OK(c->gpu.ops->nchw_to_tokens(&c->gpu, &tok.d, &x.d, &err), "nchw_to_tokens");
    compare(c, "nchw_to_tokens", &tok, 0);
    pair t = pair_random(c, 3, tshape, 0.0f, 1.0f), img = pair_poison(c, 4, shape);
    CHECK_OK(c->cpu.ops->tokens_to_nchw(&c->cpu, &img.h, &t.h, &err), "tokens_to_nchw");
    CHECK_OK(c->gpu.ops->tokens_to_nchw(&c->gpu, &img.d, &t.d, &err), "tokens_to_nchw");
    compare(c, "tokens_to_nchw", &img, 0);
    pair_free(c, &x);
    pair_free(c, &tok);
    pair_free(c, &t);
    pair_free(c, &img);
}

static void test_layout(ctx* c) {
    // Inception-v3 (FID): max 3x3 s2 after the stem convs and in the reductions; avg 3x3 s1 p1
    // without pad counts in FID's blocks A, C and E; max 3x3 s1 p1 in FID's last block E
    int64_t stem[4] = {1, 64, 147, 147}, r35[4] = {2, 192, 35, 35}, r17[4] = {1, 768, 17, 17}, r8[4] = {2, 2048, 8, 8};
    int64_t odd[4] = {2, 3, 10, 9};
    test_pool(c, stem, 3, 2, 0, -1);
    test_pool(c, r8, 3, 1, 1, -1);
    test_pool(c, odd, 3, 2, 1, -1);
    test_pool(c, r35, 3, 1, 1, 0);
    test_pool(c, r17, 3, 1, 1, 1);
    test_pool(c, odd, 3, 2, 1, 0);
    test_pool(c, odd, 2, 2, 0, 1);
    test_mean_hw(c, r8);
    test_mean_hw(c, odd);
    int64_t sd[4] = {2, 320, 32, 32}, odd_img[4] = {1, 3, 5, 7}, tok[4] = {2, 320, 64, 64}, tok_odd[4] = {3, 5, 7, 9};
    test_upsample(c, sd);
    test_upsample(c, odd_img);
    test_concat(c, sd, 640);
    test_concat(c, odd_img, 2);
    test_permutes(c, tok);
    test_permutes(c, tok_odd);
}

// ---- argument errors --------------------------------------------------------------------------------

static void test_errors(ctx* c) {
    dato_error err = {{0}};
    int64_t shape[2] = {4, 8}, other[2] = {4, 9};
    pair a = pair_random(c, 2, shape, 0.0f, 1.0f), b = pair_random(c, 2, other, 0.0f, 1.0f);
    dato_status st = c->gpu.ops->silu(&c->gpu, &a.d, &a.h, &err); // a CPU tensor handed to CUDA
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "silu") && strstr(err.msg, "CUDA device"), "wrong device: %s",
          err.msg);
    st = c->gpu.ops->add(&c->gpu, &a.d, &a.d, &b.d, &err);
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "add") && strstr(err.msg, "(4, 9)"), "shape mismatch: %s", err.msg);
    dato_tensor half = a.d;
    half.dtype = DATO_F16;
    st = c->gpu.ops->relu(&c->gpu, &a.d, &half, &err);
    CHECK(st == DATO_ERR_UNSUPPORTED && strstr(err.msg, "relu") && strstr(err.msg, "F16"), "F16 input: %s", err.msg);
    int64_t img[4] = {1, 12, 2, 2}, gshape[1] = {12};
    pair x = pair_random(c, 4, img, 0.0f, 1.0f), g = pair_random(c, 1, gshape, 0.0f, 1.0f);
    st = c->gpu.ops->group_norm(&c->gpu, &x.d, &x.d, &g.d, &g.d, 5, 1e-5f, 0, &err);
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "group_norm") && strstr(err.msg, "5 groups"), "groups: %s",
          err.msg);
    int64_t wide[2] = {1, 2048};
    dato_tensor big = dato_tensor_make(x.d.data, DATO_F32, DATO_DEV_CUDA, 2, wide);
    dato_tensor t1 = dato_tensor_make(g.d.data, DATO_F32, DATO_DEV_CUDA, 1, (int64_t[]){1});
    st = c->gpu.ops->timestep_embedding(&c->gpu, &big, &t1, 1, 0.0f, 10000.0f, &err);
    CHECK(st == DATO_ERR_UNSUPPORTED && strstr(err.msg, "timestep_embedding"), "dim 2048: %s", err.msg);
    void* p = c->gpu.ops->alloc(&c->gpu, 0);
    CHECK(p != NULL, "alloc(0) returned NULL");
    c->gpu.ops->free(&c->gpu, p);
    printf("argument errors: reported with the op's name\n");
    pair_free(c, &a);
    pair_free(c, &b);
    pair_free(c, &x);
    pair_free(c, &g);
}

int main(void) {
    ctx c;
    int start = gpu_test_start(&c.cpu, &c.gpu);
    if (start) return start;
    CHECK(strcmp(c.gpu.name, "cuda") == 0 && c.gpu.device == DATO_DEV_CUDA, "backend '%s'", c.gpu.name);
    dato_rng_seed(&c.rng, 20240611);
    test_activations(&c);
    int64_t geglu_big[3] = {2, 1024, 1280}, geglu_odd[3] = {3, 7, 10};
    test_geglu(&c, 3, geglu_big);
    test_geglu(&c, 3, geglu_odd);
    test_norms(&c);
    test_elementwise(&c);
    test_layout(&c);
    test_errors(&c);
    dato_backend_destroy(&c.gpu);
    dato_backend_destroy(&c.cpu);
    return test_summary();
}
