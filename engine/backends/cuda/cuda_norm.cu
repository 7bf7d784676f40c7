// group_norm and layer_norm on CUDA. Statistics are two-pass as on the CPU (mean, then the mean
// of squared deviations), summed in double so a long group (a VAE group is 16 channels x
// 512 x 512) loses nothing and mean and variance agree with cpu_norm.c to f32 rounding. out may
// alias x: every element is read by the statistics before a barrier (block or warp reduction)
// and then rewritten by the same thread that reads it.
#include <math.h>
#include <stdint.h>

#include "cuda_ops.h"

#define GN_THREADS 512 // one block per (image, group)
#define LN_WARPS 4     // rows per block of layer_norm: one warp each
#define LN_MAX_BLOCKS 65536

// Sum of v over the warp; every lane gets it.
__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Sum of v over the block (blockDim.x a multiple of 32); every thread gets it. shared holds 32
// doubles; the leading barrier lets a block call this twice.
__device__ double block_sum(double v, double* shared) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    return warp_sum(lane < warps ? shared[lane] : 0.0);
}

// out (B*G, C/G, spatial) = GroupNorm of x, then SiLU if fuse_silu; block bg normalizes group bg.
__global__ void group_norm_kernel(float* out, const float* x, const float* gamma, const float* beta, int groups,
                                  int64_t group_channels, int64_t spatial, float eps, int fuse_silu) {
    __shared__ double shared[32];
    int64_t bg = blockIdx.x, group_len = group_channels * spatial;
    const float* xg = x + bg * group_len; // (C/G, spatial)
    float* og = out + bg * group_len;     // (C/G, spatial)
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < group_len; i += blockDim.x) s += xg[i];
    float mean = (float)(block_sum(s, shared) / (double)group_len);
    double q = 0.0;
    for (int64_t i = threadIdx.x; i < group_len; i += blockDim.x) {
        float d = xg[i] - mean;
        q += d * d;
    }
    float var = (float)(block_sum(q, shared) / (double)group_len);
    float rstd = 1.0f / sqrtf(var + eps);
    int64_t c0 = bg % groups * group_channels;
    for (int64_t j = 0; j < group_channels; j++) {
        float scale = rstd * gamma[c0 + j];
        float shift = beta[c0 + j] - mean * scale;
        const float* xc = xg + j * spatial; // (spatial)
        float* oc = og + j * spatial;       // (spatial)
        for (int64_t i = threadIdx.x; i < spatial; i += blockDim.x) {
            float y = xc[i] * scale + shift;
            oc[i] = fuse_silu ? y / (1.0f + expf(-y)) : y;
        }
    }
}

extern "C" dato_status cuda_group_norm(dato_backend* be, dato_tensor* out, const dato_tensor* x,
                                       const dato_tensor* gamma, const dato_tensor* beta, int groups, float eps,
                                       int fuse_silu, dato_error* err) {
    DATO_TRY(dato_op_check_group_norm(out, x, gamma, beta, groups, DATO_DEV_CUDA, err));
    int64_t batch = x->shape[0], c = x->shape[1];
    int64_t spatial = c > 0 && batch > 0 ? dato_tensor_numel(x) / (batch * c) : 0;
    int64_t group_channels = c / groups;
    if (group_channels * spatial == 0 || batch == 0) return DATO_OK;
    if (batch * groups > INT32_MAX)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "group_norm: %lld groups exceed one grid",
                         (long long)(batch * groups));
    group_norm_kernel<<<(int)(batch * groups), GN_THREADS, 0, cuda_impl(be)->stream>>>(
        (float*)out->data, (const float*)x->data, (const float*)gamma->data, (const float*)beta->data, groups,
        group_channels, spatial, eps, fuse_silu);
    return cuda_check_launch("group_norm", err);
}

// out (rows, C) = LayerNorm of each row of x (rows, C); one warp per row, grid-stride over rows.
__global__ void layer_norm_kernel(float* out, const float* x, const float* gamma, const float* beta, int64_t rows,
                                  int64_t c, float eps) {
    int lane = threadIdx.x % 32;
    int64_t row_stride = (int64_t)gridDim.x * LN_WARPS;
    for (int64_t r = (int64_t)blockIdx.x * LN_WARPS + threadIdx.x / 32; r < rows; r += row_stride) {
        const float* xr = x + r * c; // (C)
        float* orow = out + r * c;   // (C)
        double s = 0.0;
        for (int64_t i = lane; i < c; i += 32) s += xr[i];
        float mean = (float)(warp_sum(s) / (double)c);
        double q = 0.0;
        for (int64_t i = lane; i < c; i += 32) {
            float d = xr[i] - mean;
            q += d * d;
        }
        float var = (float)(warp_sum(q) / (double)c);
        float rstd = 1.0f / sqrtf(var + eps);
        for (int64_t i = lane; i < c; i += 32) orow[i] = (xr[i] - mean) * rstd * gamma[i] + beta[i];
    }
}

extern "C" dato_status cuda_layer_norm(dato_backend* be, dato_tensor* out, const dato_tensor* x,
                                       const dato_tensor* gamma, const dato_tensor* beta, float eps, dato_error* err) {
    DATO_TRY(dato_op_check_layer_norm(out, x, gamma, beta, DATO_DEV_CUDA, err));
    int64_t c = x->shape[x->ndim - 1];
    if (c == 0) return DATO_OK;
    int64_t rows = dato_tensor_numel(x) / c;
    if (rows == 0) return DATO_OK;
    int64_t blocks = (rows + LN_WARPS - 1) / LN_WARPS;
    layer_norm_kernel<<<blocks < LN_MAX_BLOCKS ? (int)blocks : LN_MAX_BLOCKS, LN_WARPS * 32, 0,
                        cuda_impl(be)->stream>>>((float*)out->data, (const float*)x->data, (const float*)gamma->data,
                                                 (const float*)beta->data, rows, c, eps);
    return cuda_check_launch("layer_norm", err);
}
