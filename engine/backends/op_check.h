// The argument rule of every op in backend.h, shared by the backends: the same rule and the same
// message whether the tensors live on the CPU or on a GPU. Each check names the op, the tensor
// at fault and what was expected ("conv2d: out (1, 4, 7, 8), expected (1, 4, 8, 8) for ...").
// dev is the device the backend computes on; every tensor must be there, contiguous, F32 (the
// weights of linear and conv2d may be F16/BF16 where half_weights: the CUDA backend), with data.
// A backend adds only its own limits (grid dims, scratch sizes) after a check.
#ifndef DATO_OP_CHECK_H
#define DATO_OP_CHECK_H

#include <stdint.h>

#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---- one tensor --------------------------------------------------------------------------------

// DATO_OK if t is a tensor on dev with data and ndim dims (any of 1..4 when ndim == 0), dtype F32
// (or F16/BF16 when half_ok); otherwise an error naming op and arg ("conv2d: x is F16; ...").
dato_status dato_op_check_tensor(const char* op, const char* arg, const dato_tensor* t, int ndim, dato_device dev,
                                 int half_ok, dato_error* err);
// DATO_OK if a has the same shape as b, else DATO_ERR_INVALID naming both shapes.
dato_status dato_op_check_same_shape(const char* op, const char* a_name, const dato_tensor* a, const char* b_name,
                                     const dato_tensor* b, dato_error* err);
// DATO_OK if t is a tensor of dtype dt on dev with data and shape (d0, d1); otherwise
// an error naming op and arg ("dato_select_keep: keep is F32, expected U8").
dato_status dato_op_check_rows(const char* op, const char* arg, const dato_tensor* t, dato_dtype dt, dato_device dev,
                               int64_t d0, int64_t d1, dato_error* err);

// ---- dense layers ------------------------------------------------------------------------------

// linear: out (..., N), x (..., K), weight (N, K) or (N, K, 1, 1) not empty, bias (N) or NULL;
// the GEMM's M, N, K within int (BLAS and cuBLAS take int).
dato_status dato_op_check_linear(const dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                                 const dato_tensor* b, dato_device dev, int half_weights, dato_error* err);
// geglu_linear: x (..., 2F) and, as linear's, out (..., N), weight (N, F), bias (N) or NULL.
dato_status dato_op_check_geglu_linear(const dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                                       const dato_tensor* b, dato_device dev, dato_error* err);
// conv2d: out (B, Co, Ho, Wo) for x (B, Ci, H, W), weight (Co, Ci, kh, kw), bias (Co) or NULL,
// stride >= 1, 0 <= pad < k, the padded input at least the kernel; Ho, Wo as backend.h; Co,
// Ci*kh*kw and Ho*Wo within int.
dato_status dato_op_check_conv2d(const dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                                 const dato_tensor* b, int stride_h, int stride_w, int pad_h, int pad_w,
                                 dato_device dev, int half_weights, dato_error* err);

// ---- normalization -----------------------------------------------------------------------------

// group_norm: out and x (B, C, ...) alike, groups dividing C, gamma and beta (C).
dato_status dato_op_check_group_norm(const dato_tensor* out, const dato_tensor* x, const dato_tensor* gamma,
                                     const dato_tensor* beta, int groups, dato_device dev, dato_error* err);
// layer_norm: out and x (..., C) alike, gamma and beta (C).
dato_status dato_op_check_layer_norm(const dato_tensor* out, const dato_tensor* x, const dato_tensor* gamma,
                                     const dato_tensor* beta, dato_device dev, dato_error* err);

// ---- activations and elementwise ---------------------------------------------------------------

// An elementwise op on one input (silu, gelu, quick_gelu, relu, softmax, copy): out shaped as x.
dato_status dato_op_check_unary(const char* op, const dato_tensor* out, const dato_tensor* x, dato_device dev,
                                dato_error* err);
// geglu: out (..., F) for x (..., 2F).
dato_status dato_op_check_geglu(const dato_tensor* out, const dato_tensor* x, dato_device dev, dato_error* err);
// add, axpby (op names which): out, a and b of one shape.
dato_status dato_op_check_lincomb(const char* op, const dato_tensor* out, const dato_tensor* a, const dato_tensor* b,
                                  dato_device dev, dato_error* err);
// add_channel_bias: x (B, C, H, W), v (B, C).
dato_status dato_op_check_add_channel_bias(const dato_tensor* x, const dato_tensor* v, dato_device dev,
                                           dato_error* err);
// timestep_embedding: out (B, dim) with dim even and positive, t holding B values, max_period > 0,
// freq_shift != dim/2.
dato_status dato_op_check_timestep_embedding(const dato_tensor* out, const dato_tensor* t, float freq_shift,
                                             float max_period, dato_device dev, dato_error* err);

// ---- attention ---------------------------------------------------------------------------------

// attention: out and q (B, Nq, H*D) alike, k and v (B, Nk, H*D) alike, heads dividing the channels,
// Nk >= 1, Nk == Nq when causal.
dato_status dato_op_check_attention(const dato_tensor* out, const dato_tensor* q, const dato_tensor* k,
                                    const dato_tensor* v, int heads, int causal, dato_device dev, dato_error* err);

// ---- layout and pooling ------------------------------------------------------------------------

// upsample_nearest2x: out (B, C, 2H, 2W) for x (B, C, H, W).
dato_status dato_op_check_upsample_nearest2x(const dato_tensor* out, const dato_tensor* x, dato_device dev,
                                             dato_error* err);
// max_pool2d, avg_pool2d (op names which): out (B, C, Ho, Wo) for x (B, C, H, W), k and stride >= 1,
// 0 <= pad < k, the padded input at least the window; Ho, Wo as backend.h.
dato_status dato_op_check_pool2d(const char* op, const dato_tensor* out, const dato_tensor* x, int k, int stride,
                                 int pad, dato_device dev, dato_error* err);
// mean_hw: out (B, C) for x (B, C, H, W) with H*W > 0.
dato_status dato_op_check_mean_hw(const dato_tensor* out, const dato_tensor* x, dato_device dev, dato_error* err);
// concat_channels: out (B, Ca+Cb, H, W) for a (B, Ca, H, W), b (B, Cb, H, W).
dato_status dato_op_check_concat_channels(const dato_tensor* out, const dato_tensor* a, const dato_tensor* b,
                                          dato_device dev, dato_error* err);
// nchw_to_tokens: out (B, H*W, C) for x (B, C, H, W).
dato_status dato_op_check_nchw_to_tokens(const dato_tensor* out, const dato_tensor* x, dato_device dev,
                                         dato_error* err);
// tokens_to_nchw: x (B, H*W, C) for out (B, C, H, W).
dato_status dato_op_check_tokens_to_nchw(const dato_tensor* out, const dato_tensor* x, dato_device dev,
                                         dato_error* err);

// ---- DaTo token pruning --------------------------------------------------------------------------

// dato_similarity: x (B, N, C), base (B, P) I32 with 1 <= P <= N, sim (B, N) F32, assign (B, N) I32,
// is_base (B, N) U8, work (F32) of at least B*N*C + P*(N + C) floats.
dato_status dato_op_check_dato_similarity(const dato_tensor* sim, const dato_tensor* assign,
                                          const dato_tensor* is_base, const dato_tensor* x, const dato_tensor* base,
                                          const dato_tensor* work, dato_device dev, dato_error* err);
// dato_select_keep: sim (B, N) F32, is_base and keep (B, N) U8, 1 <= P <= N, 0 <= n <= N - P.
dato_status dato_op_check_dato_select_keep(const dato_tensor* keep, const dato_tensor* sim,
                                           const dato_tensor* is_base, int P, int n, dato_device dev,
                                           dato_error* err);
// dato_gather_kept: x (B, N, C), x_kept (B, Nk, C) with Nk <= N, keep (B, N) U8, pos (B, N) I32.
dato_status dato_op_check_dato_gather_kept(const dato_tensor* pos, const dato_tensor* x_kept, const dato_tensor* x,
                                           const dato_tensor* keep, dato_device dev, dato_error* err);
// dato_scatter_recover: out (B, N, C), o_kept (B, Nk, C) with Nk <= N, pos and assign (B, N) I32.
dato_status dato_op_check_dato_scatter_recover(const dato_tensor* out, const dato_tensor* o_kept,
                                               const dato_tensor* pos, const dato_tensor* assign, dato_device dev,
                                               dato_error* err);

#ifdef __cplusplus
}
#endif

#endif
