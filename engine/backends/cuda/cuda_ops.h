// Private to the CUDA backend: its state, the launch and cuBLAS error checks every op shares, and
// the ops each file of engine/backends/cuda/ implements (backend_cuda.cu puts them in the table); their
// argument checks are op_check.h's. Included from .cu files only.
//
// Conventions (beyond backend.h's):
// - Activations are F32 on the device. Weights of linear and conv2d may be F32, F16 or BF16
//   (converted at load, `--dtype`); GEMMs then run on tensor cores with F32 accumulation.
// - Every op is enqueued on the backend's stream; no op synchronizes with the host.
// - Scratch (the im2col tile, the half-precision copy of a GEMM's activations) is allocated
//   once at init; an op tiles its work to fit it and never allocates.
#ifndef DATO_CUDA_OPS_H
#define DATO_CUDA_OPS_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>

#include "backend.h"
#include "backend_cuda.h"
#include "op_check.h"

// Fixed scratch sizes, allocated at init: ops tile their work to fit them.
#define CUDA_COL_BYTES ((size_t)256 << 20)  // conv2d im2col tile (F32, or F16/BF16 for half weights)
#define CUDA_HALF_BYTES ((size_t)128 << 20) // a GEMM's activations converted to F16/BF16
#define CUDA_CUBLAS_WS_BYTES ((size_t)32 << 20) // cuBLAS's workspace (NVIDIA's advice for Hopper)

typedef struct {
    // First member by the convention of dato_backend_destroy: every backend with private
    // state puts its destroy function first in its impl struct.
    void (*destroy)(dato_backend* be);
    int device;              // CUDA device ordinal
    int sm;                  // compute capability, e.g. 90
    cudaStream_t stream;     // every op runs here
    cublasHandle_t cublas;   // bound to stream
    void* col;               // (CUDA_COL_BYTES) im2col tile
    void* half;              // (CUDA_HALF_BYTES) activations in the weights' half dtype
    void* cublas_ws;         // (CUDA_CUBLAS_WS_BYTES) cuBLAS's workspace
    cudaError_t sticky;      // the first launch error seen, reported by the next op
    dato_cuda_options opt;   // dato_backend_cuda_configure's choices
    void* cudnn;             // cuda_conv_cudnn.cu's state (handle, plans); NULL without cuDNN
} cuda_backend;

static inline cuda_backend* cuda_impl(dato_backend* be) { return (cuda_backend*)be->impl; }

#ifdef __cplusplus
extern "C" {
#endif

// After a launch: DATO_OK, or DATO_ERR_UNSUPPORTED naming op and the CUDA error (a launch failure: no device code for this GPU, too many threads, a fault).
dato_status cuda_check_launch(const char* op, dato_error* err);
// After a cuBLAS call: DATO_OK, or DATO_ERR_UNSUPPORTED naming op and the cuBLAS status.
dato_status cuda_check_cublas(const char* op, cublasStatus_t st, dato_error* err);

// ---- cuda_gemm.cu --------------------------------------------------------------------------------
dato_status cuda_linear(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                        const dato_tensor* b, dato_error* err);
dato_status cuda_conv2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                        const dato_tensor* b, int stride_h, int stride_w, int pad_h, int pad_w, dato_error* err);

// ---- cuda_attention.cu ---------------------------------------------------------------------------
// At init: opts the attention kernels (f32 and MMA) in to the shared memory they need.
dato_status cuda_attention_setup(dato_error* err);
// The op: checks, then the f32 kernel, or cuda_attention_mma when opt.attention is F16/BF16.
dato_status cuda_attention(dato_backend* be, dato_tensor* out, const dato_tensor* q, const dato_tensor* k,
                           const dato_tensor* v, int heads, float scale, int causal, dato_error* err);

// ---- cuda_attention_mma.cu -----------------------------------------------------------------------
// At init (from cuda_attention_setup): every MMA instantiation's shared-memory opt-in.
dato_status cuda_attention_mma_setup(dato_error* err);
// Tensor-core attention on checked arguments: out (B, Nq, H*D) for q (B, Nq, H*D), k, v (B, Nk, H*D),
// head dim d <= 160, q, k, v and the probabilities rounded to dt (F16 or BF16), f32 accumulation.
dato_status cuda_attention_mma(cuda_backend* cb, float* out, const float* q, const float* k, const float* v,
                               int64_t batch, int64_t nq, int64_t nk, int heads, int d, float scale, int causal,
                               dato_dtype dt, dato_error* err);

// ---- cuda_conv_cudnn.cu (cuda_conv_none.cu in a build without cuDNN) -------------------------------
// Creates cb->cudnn (handle on cb->stream, empty plan cache); DATO_OK and NULL without cuDNN.
dato_status cuda_cudnn_create(cuda_backend* cb, dato_error* err);
void cuda_cudnn_destroy(cuda_backend* cb);
// conv2d through cuDNN on checked arguments (cuda_conv2d's). DATO_ERR_UNSUPPORTED when cuDNN
// cannot run this case (no cuDNN, a dtype or shape it refuses): AUTO then falls back to im2col.
dato_status cuda_cudnn_conv2d(cuda_backend* cb, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                              const dato_tensor* b, int stride_h, int stride_w, int pad_h, int pad_w,
                              dato_error* err);

// ---- cuda_norm.cu --------------------------------------------------------------------------------
dato_status cuda_group_norm(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* gamma,
                            const dato_tensor* beta, int groups, float eps, int fuse_silu, dato_error* err);
dato_status cuda_layer_norm(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* gamma,
                            const dato_tensor* beta, float eps, dato_error* err);

// ---- cuda_elementwise.cu -------------------------------------------------------------------------
dato_status cuda_silu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cuda_gelu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cuda_quick_gelu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cuda_geglu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cuda_softmax(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cuda_relu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cuda_add(dato_backend* be, dato_tensor* out, const dato_tensor* a, const dato_tensor* b, dato_error* err);
dato_status cuda_add_channel_bias(dato_backend* be, dato_tensor* x, const dato_tensor* v, dato_error* err);
dato_status cuda_axpby(dato_backend* be, dato_tensor* out, float alpha, const dato_tensor* a, float beta,
                       const dato_tensor* b, dato_error* err);
dato_status cuda_copy(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cuda_timestep_embedding(dato_backend* be, dato_tensor* out, const dato_tensor* t, int flip_sin_to_cos,
                                    float freq_shift, float max_period, dato_error* err);

// ---- cuda_layout.cu ------------------------------------------------------------------------------
dato_status cuda_upsample_nearest2x(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cuda_max_pool2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, int k, int stride, int pad,
                            dato_error* err);
dato_status cuda_avg_pool2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, int k, int stride, int pad,
                            int count_include_pad, dato_error* err);
dato_status cuda_mean_hw(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cuda_concat_channels(dato_backend* be, dato_tensor* out, const dato_tensor* a, const dato_tensor* b,
                                 dato_error* err);
dato_status cuda_nchw_to_tokens(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cuda_tokens_to_nchw(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);

#ifdef __cplusplus
}
#endif

#endif
