// The DaTo token-pruning kernels on the device (METHOD.md §3-4): the CUDA versions of the
// reference pieces of engine/runtime/dato.c, one function per piece, for the runtime to chain:
//
//   dato_cuda_diffscore     d (B, HW)            from the two latest raw predictions
//   dato_cuda_pool_scores   pooled (B, H, W)     d pooled to a block's resolution
//   dato_cuda_choose_base   base (B, P)          argmax per s x s patch
//   dato_cuda_similarity    sim, assign (B, N)   cosine to the closest base token
//   dato_cuda_select_pruned keep (B, N)          the n most redundant non-base tokens dropped
//   dato_cuda_gather_kept   x_kept (B, Nk, C)    the kept tokens in order, pos (B, N)
//   (attention on x_kept, by the backend's ops)
//   dato_cuda_scatter_recover out (B, N, C)      pruned tokens take their base token's output
//
// The backend's DaTo ops (backend.h) are similarity, select_pruned, gather_kept and
// scatter_recover behind backend_cuda.cu's argument checks; engine/runtime/dato.c chains them. The
// runtime keeps the scores and the base choice on the host (it has the host predictions), so
// diffscore, pool_scores and choose_base serve a device-side choice that nothing calls yet.
//
// Every function takes device pointers, enqueues its kernels on `stream` (a cudaStream_t;
// NULL: the default stream), never synchronizes, never allocates: the caller owns every buffer,
// its size is the shape comment beside it. Index outputs (base, is_base, assign, keep, pos) are
// bit-identical to the reference; diffscore, pool_scores and gather/scatter are bit-identical
// too (same double sums in the same order, or copies); sim matches to f32 rounding (the
// reference takes it from the backend's f32 GEMM).
//
// The stream is a `void*` so that C code without the CUDA include path (the engine's runtime)
// can include this header; cudaStream_t is itself a pointer and is cast back inside.
//
// Not here, by design: before two predictions exist the base tokens are a seeded random pick
// on the host (dato.c's rule); the caller uploads that (B, P) int32 array into the same
// device buffer dato_cuda_choose_base writes, and the later kernels cannot tell the two apart.
// Likewise the optional alpha * N(0,1) score noise is host RNG: upload it and add it to the
// pooled scores (the backend's axpby) before dato_cuda_choose_base. CFG alignment (uncond rows
// take their cond twin's bases) is a device-to-device copy of base rows (cudaMemcpyAsync).
#ifndef DATO_CUDA_DATO_H
#define DATO_CUDA_DATO_H

#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

// d (B, HW) = mean over C of |a - b| for a, b (B, C, HW); as dato_diffscore.
dato_status dato_cuda_diffscore(const float* a, const float* b, int B, int C, int HW, float* d, void* stream,
                                dato_error* err);

// out (B, H/k, W/k) = k x k average pooling of d (B, H, W), H and W multiples of k; as dato_pool_scores.
dato_status dato_cuda_pool_scores(const float* d, int B, int H, int W, int k, float* out, void* stream,
                                  dato_error* err);

// base (B, P) = per row of score (B, H, W), for each s x s patch (row-major patches, border
// patches smaller), the flat index of its highest score, ties to the lowest index;
// P = ceil(H/s) ceil(W/s). As dato_choose_base, row by row.
dato_status dato_cuda_choose_base(const float* score, int B, int H, int W, int s, int32_t* base, void* stream,
                                  dato_error* err);

// For x (B, N, C) and base (B, P) (P distinct token indices in [0, N) per row, as
// dato_cuda_choose_base or the host's random pick give):
//   xn (B, N, C)      workspace: the tokens scaled to unit norm (zero tokens stay zero)
//   is_base (B, N)    1 for the base tokens of the row, else 0
//   sim (B, N)        max over j of xn_i . xn_base[j]
//   assign (B, N)     i for a base token, else base[j*] with j* the lowest argmax j
// dato.c's steps 2 before the selection (its normalization, linear and argmax loop).
dato_status dato_cuda_similarity(const float* x, const int32_t* base, int B, int N, int C, int P, float* xn,
                                 uint8_t* is_base, float* sim, int32_t* assign, void* stream, dato_error* err);

// keep (B, N) = 0 for the n non-base tokens of each row with the highest sim (ties to the lowest
// index), 1 for every other token; sim, is_base (B, N). 0 <= n <= N - P (the caller clamps the
// ratio, as dato.c does). The set pruned by dato_select_pruned, as a mask.
dato_status dato_cuda_select_pruned(const float* sim, const uint8_t* is_base, int B, int N, int P, int n,
                                    uint8_t* keep, void* stream, dato_error* err);

// From keep (B, N) with Nk kept tokens per row: pos (B, N) = a token's row among the kept ones
// of its row (in token order), -1 if pruned; x_kept (B, Nk, C) = the kept tokens of x (B, N, C).
dato_status dato_cuda_gather_kept(const float* x, const uint8_t* keep, int B, int N, int C, int Nk, int32_t* pos,
                                  float* x_kept, void* stream, dato_error* err);

// out (B, N, C) = for every token the row of o_kept (B, Nk, C) it owns (pos (B, N)), or for a
// pruned one (pos -1) the row of its base token assign (B, N). A bad pos or assign (never made
// by the kernels above) gives NaN rows, not an out-of-bounds read.
dato_status dato_cuda_scatter_recover(const float* o_kept, const int32_t* pos, const int32_t* assign, int B, int N,
                                      int C, int Nk, float* out, void* stream, dato_error* err);

#ifdef __cplusplus
}
#endif

#endif
