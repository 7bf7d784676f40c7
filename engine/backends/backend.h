// The backend interface: a table of ops over tensors. Model code (UNet, VAE, text encoders,
// Inception, the DaTo runtime) calls only these; the CPU backend (engine/backends/cpu/) is the
// reference for every op and the CUDA backend (engine/backends/cuda/) fills the same table.
//
// Conventions for every op:
// - Tensors are contiguous, on the backend's device, dtype F32 unless the op or the backend
//   documents otherwise. `out` never aliases an input unless the op says it may.
// - Image tensors are NCHW (B, C, H, W); token tensors are (B, N, C) or flattened (M, C).
// - Shapes are taken from the tensors; an op returns DATO_ERR_INVALID on a shape mismatch
//   and writes which argument was wrong into err.
// - Ops never allocate; the caller plans all memory up front (engine/core/arena.h).
#ifndef DATO_BACKEND_H
#define DATO_BACKEND_H

#include <stddef.h>

#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" { // the CUDA backend includes these headers from .cu files
#endif

typedef struct dato_backend dato_backend;

typedef struct {
    // ---- memory --------------------------------------------------------------------------
    void* (*alloc)(dato_backend* be, size_t bytes);                    // 64-byte aligned, NULL on failure
    void (*free)(dato_backend* be, void* p);
    void (*upload)(dato_backend* be, void* dst, const void* src_host, size_t bytes);
    void (*download)(dato_backend* be, void* dst_host, const void* src, size_t bytes);
    void (*synchronize)(dato_backend* be);
    // Host memory the device copies from without staging (CUDA: pinned), for upload_async.
    void* (*alloc_host)(dato_backend* be, size_t bytes);               // NULL on failure
    void (*free_host)(dato_backend* be, void* p);
    // Copies bytes from src_host (alloc_host memory) to dst in stream order, without waiting: the
    // copy happens after the ops before it and before the ops after it. src_host must keep its
    // contents until then: until the next synchronize or download. CPU: a plain copy.
    void (*upload_async)(dato_backend* be, void* dst, const void* src_host, size_t bytes);
    // Bytes of device memory free for new allocations now (CPU: the host's available memory); 0 when
    // unknown. What sizes batches to fit (dato-search).
    size_t (*mem_available)(dato_backend* be);

    // ---- dense layers ----------------------------------------------------------------------
    // out (B, Co, Ho, Wo) = conv2d(x (B, Ci, H, W), w (Co, Ci, kh, kw)) + b (Co) or no bias if b == NULL.
    // Ho = (H + 2*pad_h - kh) / stride_h + 1, Wo likewise; 0 <= pad < k per dim. Kernels may be
    // rectangular (Inception's 1x7, 7x1, 1x3, 3x1).
    dato_status (*conv2d)(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                          const dato_tensor* b, int stride_h, int stride_w, int pad_h, int pad_w, dato_error* err);
    // out = conv2d(group_norm(x, gamma, beta, groups, eps, fuse_silu), w, b, ...): the two ops as their
    // arguments say, in one pass that never stores the normalized x, with their bits; out must
    // not alias x. Optional: NULL where a backend has no fused form (the caller runs the two).
    dato_status (*group_norm_conv2d)(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* gamma,
                                     const dato_tensor* beta, int groups, float eps, int fuse_silu, const dato_tensor* w,
                                     const dato_tensor* b, int stride_h, int stride_w, int pad_h, int pad_w,
                                     dato_error* err);
    // out (..., N) = x (..., K) @ w (N, K)^T + b (N) or no bias if b == NULL; leading dims flattened.
    dato_status (*linear)(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                          const dato_tensor* b, dato_error* err);
    // out (..., N) = geglu(x (..., 2F)) @ w (N, F)^T + b (N) or no bias: the feed-forward's gate and
    // second projection in one pass that never stores GEGLU's output, with the bits of geglu, then
    // linear. Optional: NULL where a backend has no fused form (the caller runs the two).
    dato_status (*geglu_linear)(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                                const dato_tensor* b, dato_error* err);

    // ---- normalization -----------------------------------------------------------------------
    // out (B, C, ...) = GroupNorm(x) with per-channel gamma/beta (C); then SiLU if fuse_silu.
    // Statistics in f32 over (C/groups) * prod(spatial). out may alias x.
    dato_status (*group_norm)(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* gamma,
                              const dato_tensor* beta, int groups, float eps, int fuse_silu, dato_error* err);
    // out (..., C) = LayerNorm over the last dim with gamma/beta (C). out may alias x.
    dato_status (*layer_norm)(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* gamma,
                              const dato_tensor* beta, float eps, dato_error* err);

    // ---- activations (elementwise; out may alias x) ------------------------------------------
    dato_status (*silu)(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
    dato_status (*gelu)(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err); // erf, exact
    dato_status (*quick_gelu)(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err); // x*sigmoid(1.702x)
    // out (..., F) = x[..., :F] * gelu(x[..., F:]) for x (..., 2F)  (diffusers GEGLU: [hidden, gate]).
    dato_status (*geglu)(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
    // out (..., N) = softmax over the last dim. out may alias x.
    dato_status (*softmax)(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
    dato_status (*relu)(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err); // max(x, 0)

    // ---- attention ---------------------------------------------------------------------------
    // out (B, Nq, H*D) = softmax(q k^T * scale) v per head, for q (B, Nq, H*D), k and v (B, Nk, H*D):
    // heads are interleaved in the channel dim as nn.Linear outputs them. Blocked with an
    // online softmax: the (Nq, Nk) score matrix is never materialized. Accumulation in f32.
    // causal (text encoders): query i attends only to keys j <= i; requires Nq == Nk.
    dato_status (*attention)(dato_backend* be, dato_tensor* out, const dato_tensor* q, const dato_tensor* k,
                             const dato_tensor* v, int heads, float scale, int causal, dato_error* err);

    // ---- layout and elementwise ----------------------------------------------------------------
    // out (B, C, 2H, 2W) = nearest-neighbour x2 upsample of x (B, C, H, W).
    dato_status (*upsample_nearest2x)(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
    // out (B, C, Ho, Wo) = max over k x k windows of x (B, C, H, W); padding acts as -inf.
    // Ho = (H + 2*pad - k) / stride + 1; pad < k so every window holds an input.
    dato_status (*max_pool2d)(dato_backend* be, dato_tensor* out, const dato_tensor* x, int k, int stride, int pad,
                              dato_error* err);
    // out (B, C, Ho, Wo) = mean over k x k windows of x (B, C, H, W), Ho as max_pool2d. The
    // divisor is k*k when count_include_pad, else the number of inputs inside the window (TF).
    dato_status (*avg_pool2d)(dato_backend* be, dato_tensor* out, const dato_tensor* x, int k, int stride, int pad,
                              int count_include_pad, dato_error* err);
    // out (B, C) = mean of x (B, C, H, W) over H, W.
    dato_status (*mean_hw)(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
    // out (B, Ca+Cb, H, W) = cat([a (B, Ca, H, W), b (B, Cb, H, W)], dim=1).
    dato_status (*concat_channels)(dato_backend* be, dato_tensor* out, const dato_tensor* a, const dato_tensor* b,
                                   dato_error* err);
    // out (B, H*W, C) = x (B, C, H, W) permuted to tokens.
    dato_status (*nchw_to_tokens)(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
    // out (B, C, H, W) = x (B, H*W, C) permuted back (shape taken from out).
    dato_status (*tokens_to_nchw)(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
    // out = a + b, same shapes. out may alias a or b.
    dato_status (*add)(dato_backend* be, dato_tensor* out, const dato_tensor* a, const dato_tensor* b, dato_error* err);
    // x (B, C, H, W) += v (B, C) broadcast over H, W (the ResBlock time-embedding add).
    dato_status (*add_channel_bias)(dato_backend* be, dato_tensor* x, const dato_tensor* v, dato_error* err);
    // out = alpha * a + beta * b, same shapes (guidance, sampler updates). out may alias a or b.
    dato_status (*axpby)(dato_backend* be, dato_tensor* out, float alpha, const dato_tensor* a, float beta,
                         const dato_tensor* b, dato_error* err);
    // out = x (copy between same-shape tensors on this device).
    dato_status (*copy)(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);

    // ---- embeddings ----------------------------------------------------------------------------
    // out (B, dim) = sinusoidal embedding of the timesteps t (B values, any shape, on the device), as
    // diffusers' get_timestep_embedding: f_i = exp(-ln(max_period) * i / (dim/2 - freq_shift)),
    // [sin(t f), cos(t f)], swapped to [cos, sin] when flip_sin_to_cos. dim even. t is read when
    // the op runs, not when it is issued, so a captured graph embeds each step's timesteps.
    dato_status (*timestep_embedding)(dato_backend* be, dato_tensor* out, const dato_tensor* t, int flip_sin_to_cos,
                                      float freq_shift, float max_period, dato_error* err);

    // ---- DaTo token pruning (METHOD.md §3-4; the spec: engine/runtime/dato.h's reference pieces) --------
    // The per-token steps of a pruned self-attention, chained by engine/runtime/dato.c: similarity ->
    // select_keep -> gather_kept -> attention on the kept tokens -> scatter_recover. Index tensors
    // are I32 (token indices within a row, -1: none) and U8 (0/1 masks); the rest F32.
    //
    // For x (B, N, C) and base (B, P) I32 (P distinct token indices in [0, N) per row, 1 <= P <= N):
    // is_base (B, N) U8 = 1 at the row's base tokens, else 0; sim (B, N) = max over j of
    // xn_i . xn_base[j], xn = the tokens scaled to unit L2 norm (squared norm summed in double, a
    // zero token stays zero); assign (B, N) I32 = i for a base token, else base[j*] for the lowest
    // argmax j*. work (F32, any shape, >= B*N*C + P*(N + C) elements): scratch. sim may differ between
    // backends by f32 rounding (the CPU takes the products from its GEMM); the indices follow from it.
    dato_status (*dato_similarity)(dato_backend* be, dato_tensor* sim, dato_tensor* assign, dato_tensor* is_base,
                                   const dato_tensor* x, const dato_tensor* base, dato_tensor* work, dato_error* err);
    // keep (B, N) U8 = 0 for the n non-base tokens of each row with the highest sim (B, N), ties to
    // the lowest index, 1 for every other token; is_base (B, N) U8 marks P base tokens per row;
    // 0 <= n <= N - P (the caller clamps the ratio). The set dato_select_pruned picks, as a mask.
    dato_status (*dato_select_keep)(dato_backend* be, dato_tensor* keep, const dato_tensor* sim,
                                    const dato_tensor* is_base, int P, int n, dato_error* err);
    // From keep (B, N) U8 with Nk kept tokens in every row: pos (B, N) I32 = a token's row among
    // the kept tokens of its row (in token order), -1 if pruned; x_kept (B, Nk, C) = those tokens
    // of x (B, N, C), in order.
    dato_status (*dato_gather_kept)(dato_backend* be, dato_tensor* pos, dato_tensor* x_kept, const dato_tensor* x,
                                    const dato_tensor* keep, dato_error* err);
    // out (B, N, C): token i gets row pos[i] of o_kept (B, Nk, C) when kept, else row pos[assign[i]]
    // (the output of its base token); pos and assign (B, N) I32 as the ops above make them.
    dato_status (*dato_scatter_recover)(dato_backend* be, dato_tensor* out, const dato_tensor* o_kept,
                                        const dato_tensor* pos, const dato_tensor* assign, dato_error* err);

    // ---- graphs (NULL where the backend has none: the CPU) ---------------------------------------
    // Between capture_begin and capture_end the ops are recorded, not run (their argument checks
    // still run and report). Nothing that waits for the device (upload, download, synchronize) may
    // be called in between; upload_async may. *graph: the recorded ops, replayed by graph_launch
    // in stream order with the tensors' contents at launch time.
    dato_status (*capture_begin)(dato_backend* be, dato_error* err);
    dato_status (*capture_end)(dato_backend* be, void** graph, dato_error* err);
    dato_status (*graph_launch)(dato_backend* be, void* graph, dato_error* err);
    void (*graph_free)(dato_backend* be, void* graph);
} dato_backend_ops;

struct dato_backend {
    const char* name;         // "cpu", "cuda", "null"
    dato_device device;
    const dato_backend_ops* ops;
    void* impl;               // backend-private state
};

// The CPU backend: C + OpenMP, its own GEMM (cpu_gemm.c). threads <= 0 keeps OpenMP's default.
dato_status dato_backend_cpu_init(dato_backend* be, int threads, dato_error* err);
// The null backend: every op checks nothing and does nothing, alloc returns NULL. Running a
// forward on it with a measuring arena plans the workspace without touching memory.
void dato_backend_null_init(dato_backend* be);
// The same with like's optional ops (the fused ones) present exactly where like has them, so a
// plan reserves what like's run will use; ops is the storage of its table (the caller's).
void dato_backend_null_init_like(dato_backend* be, dato_backend_ops* ops, const dato_backend* like);
void dato_backend_destroy(dato_backend* be);

#ifdef __cplusplus
}
#endif

#endif
