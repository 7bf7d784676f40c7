// The null backend: every op checks nothing and does nothing, alloc returns NULL. Running a
// forward on it with a measuring arena (arena.h) plans the workspace without touching memory.
#include "backend.h"

static void* null_alloc(dato_backend* be, size_t bytes) { (void)be; (void)bytes; return NULL; }
static void null_free(dato_backend* be, void* p) { (void)be; (void)p; }
static void null_copy_bytes(dato_backend* be, void* dst, const void* src, size_t bytes) {
    (void)be; (void)dst; (void)src; (void)bytes;
}
static void null_synchronize(dato_backend* be) { (void)be; }

static dato_status null_conv2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                               const dato_tensor* b, int stride_h, int stride_w, int pad_h, int pad_w,
                               dato_error* err) {
    (void)be; (void)out; (void)x; (void)w; (void)b; (void)stride_h; (void)stride_w; (void)pad_h; (void)pad_w; (void)err;
    return DATO_OK;
}
static dato_status null_group_norm_conv2d(dato_backend* be, dato_tensor* out, const dato_tensor* x,
                                          const dato_tensor* gamma, const dato_tensor* beta, int groups, float eps,
                                          int fuse_silu, const dato_tensor* w, const dato_tensor* b, int stride_h,
                                          int stride_w, int pad_h, int pad_w, dato_error* err) {
    (void)be; (void)out; (void)x; (void)gamma; (void)beta; (void)groups; (void)eps; (void)fuse_silu; (void)w; (void)b;
    (void)stride_h; (void)stride_w; (void)pad_h; (void)pad_w; (void)err;
    return DATO_OK;
}
static dato_status null_geglu_linear(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                                     const dato_tensor* b, dato_error* err) {
    (void)be; (void)out; (void)x; (void)w; (void)b; (void)err;
    return DATO_OK;
}
static dato_status null_linear(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                               const dato_tensor* b, dato_error* err) {
    (void)be; (void)out; (void)x; (void)w; (void)b; (void)err;
    return DATO_OK;
}
static dato_status null_group_norm(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* gamma,
                                   const dato_tensor* beta, int groups, float eps, int fuse_silu, dato_error* err) {
    (void)be; (void)out; (void)x; (void)gamma; (void)beta; (void)groups; (void)eps; (void)fuse_silu; (void)err;
    return DATO_OK;
}
static dato_status null_layer_norm(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* gamma,
                                   const dato_tensor* beta, float eps, dato_error* err) {
    (void)be; (void)out; (void)x; (void)gamma; (void)beta; (void)eps; (void)err;
    return DATO_OK;
}
static dato_status null_pool2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, int k, int stride, int pad,
                               dato_error* err) {
    (void)be; (void)out; (void)x; (void)k; (void)stride; (void)pad; (void)err;
    return DATO_OK;
}
static dato_status null_avg_pool2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, int k, int stride,
                                   int pad, int count_include_pad, dato_error* err) {
    (void)be; (void)out; (void)x; (void)k; (void)stride; (void)pad; (void)count_include_pad; (void)err;
    return DATO_OK;
}
// silu, gelu, quick_gelu, geglu, softmax, relu, mean_hw, upsample, nchw_to_tokens, tokens_to_nchw, copy
static dato_status null_unary(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    (void)be; (void)out; (void)x; (void)err;
    return DATO_OK;
}
// concat_channels, add
static dato_status null_binary(dato_backend* be, dato_tensor* out, const dato_tensor* a, const dato_tensor* b,
                               dato_error* err) {
    (void)be; (void)out; (void)a; (void)b; (void)err;
    return DATO_OK;
}
static dato_status null_attention(dato_backend* be, dato_tensor* out, const dato_tensor* q, const dato_tensor* k,
                                  const dato_tensor* v, int heads, float scale, int causal, dato_error* err) {
    (void)be; (void)out; (void)q; (void)k; (void)v; (void)heads; (void)scale; (void)causal; (void)err;
    return DATO_OK;
}
static dato_status null_add_channel_bias(dato_backend* be, dato_tensor* x, const dato_tensor* v, dato_error* err) {
    (void)be; (void)x; (void)v; (void)err;
    return DATO_OK;
}
static dato_status null_axpby(dato_backend* be, dato_tensor* out, float alpha, const dato_tensor* a, float beta,
                              const dato_tensor* b, dato_error* err) {
    (void)be; (void)out; (void)alpha; (void)a; (void)beta; (void)b; (void)err;
    return DATO_OK;
}
static dato_status null_timestep_embedding(dato_backend* be, dato_tensor* out, const dato_tensor* t,
                                           int flip_sin_to_cos, float freq_shift, float max_period, dato_error* err) {
    (void)be; (void)out; (void)t; (void)flip_sin_to_cos; (void)freq_shift; (void)max_period; (void)err;
    return DATO_OK;
}
static dato_status null_dato_similarity(dato_backend* be, dato_tensor* sim, dato_tensor* assign, dato_tensor* is_base,
                                        const dato_tensor* x, const dato_tensor* base, dato_tensor* work,
                                        dato_error* err) {
    (void)be; (void)sim; (void)assign; (void)is_base; (void)x; (void)base; (void)work; (void)err;
    return DATO_OK;
}
static dato_status null_dato_select_keep(dato_backend* be, dato_tensor* keep, const dato_tensor* sim,
                                         const dato_tensor* is_base, int P, int n, dato_error* err) {
    (void)be; (void)keep; (void)sim; (void)is_base; (void)P; (void)n; (void)err;
    return DATO_OK;
}
static dato_status null_dato_gather_kept(dato_backend* be, dato_tensor* pos, dato_tensor* x_kept, const dato_tensor* x,
                                         const dato_tensor* keep, dato_error* err) {
    (void)be; (void)pos; (void)x_kept; (void)x; (void)keep; (void)err;
    return DATO_OK;
}
static dato_status null_dato_scatter_recover(dato_backend* be, dato_tensor* out, const dato_tensor* o_kept,
                                             const dato_tensor* pos, const dato_tensor* assign, dato_error* err) {
    (void)be; (void)out; (void)o_kept; (void)pos; (void)assign; (void)err;
    return DATO_OK;
}

static const dato_backend_ops null_ops = {
    .alloc = null_alloc,
    .free = null_free,
    .upload = null_copy_bytes,
    .download = null_copy_bytes,
    .synchronize = null_synchronize,
    .alloc_host = null_alloc,
    .free_host = null_free,
    .upload_async = null_copy_bytes,
    .conv2d = null_conv2d,
    .group_norm_conv2d = NULL, // the optional fused ops: NULL here, present where a backend
    .linear = null_linear,     // that has them is mirrored (dato_backend_null_init_like)
    .geglu_linear = NULL,
    .group_norm = null_group_norm,
    .layer_norm = null_layer_norm,
    .silu = null_unary,
    .gelu = null_unary,
    .quick_gelu = null_unary,
    .geglu = null_unary,
    .softmax = null_unary,
    .relu = null_unary,
    .attention = null_attention,
    .upsample_nearest2x = null_unary,
    .max_pool2d = null_pool2d,
    .avg_pool2d = null_avg_pool2d,
    .mean_hw = null_unary,
    .concat_channels = null_binary,
    .nchw_to_tokens = null_unary,
    .tokens_to_nchw = null_unary,
    .add = null_binary,
    .add_channel_bias = null_add_channel_bias,
    .axpby = null_axpby,
    .copy = null_unary,
    .timestep_embedding = null_timestep_embedding,
    .dato_similarity = null_dato_similarity,
    .dato_select_keep = null_dato_select_keep,
    .dato_gather_kept = null_dato_gather_kept,
    .dato_scatter_recover = null_dato_scatter_recover,
};

void dato_backend_null_init(dato_backend* be) {
    if (be) *be = (dato_backend){.name = "null", .device = DATO_DEV_CPU, .ops = &null_ops, .impl = NULL};
}

void dato_backend_null_init_like(dato_backend* be, dato_backend_ops* ops, const dato_backend* like) {
    *ops = null_ops;
    ops->group_norm_conv2d = like->ops->group_norm_conv2d ? null_group_norm_conv2d : NULL;
    ops->geglu_linear = like->ops->geglu_linear ? null_geglu_linear : NULL;
    *be = (dato_backend){.name = "null", .device = DATO_DEV_CPU, .ops = ops, .impl = NULL};
}
