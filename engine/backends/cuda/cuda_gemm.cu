// The GEMM-backed ops of the CUDA backend: linear and conv2d through cuBLAS (conv2d through cuDNN
// first, unless configured for im2col: cuda_conv_cudnn.cu).
//
// Row-major tensors meet column-major cuBLAS by reading every matrix transposed: a row-major
// (R, C) matrix with row stride ld is, to cuBLAS, a column-major (C, R) matrix with the same ld.
// So each op asks cuBLAS for the transpose of the product it wants, C^T = B^T A^T, which lands
// in memory exactly as the row-major C.
//
// Precision: F32 weights multiply in plain f32 (CUBLAS_COMPUTE_32F, the handle's default math
// mode, never TF32) so results match the CPU backend to ~1e-6. F16/BF16 weights multiply on
// tensor cores with f32 accumulation and an f32 output: the activations are first rounded to the
// weight's dtype (into the backend's `half` scratch, or straight into the im2col tile).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <limits.h>

#include "cuda_ops.h"

#define GEMM_THREADS 256

// Blocks for a grid-stride loop over n elements: enough to fill the GPU, never too many.
static unsigned grid_for(int64_t n) {
    int64_t blocks = (n + GEMM_THREADS - 1) / GEMM_THREADS;
    return (unsigned)(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

// The cuBLAS element type of a weight dtype.
static cudaDataType_t cublas_dtype(dato_dtype dt) {
    return dt == DATO_F16 ? CUDA_R_16F : dt == DATO_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

// ---- small kernels: rounding to half, bias, im2col ------------------------------------------------

// f32 -> the element type of a GEMM operand (round to nearest even).
static __device__ inline void store_as(float* p, float v) { *p = v; }
static __device__ inline void store_as(__half* p, float v) { *p = __float2half_rn(v); }
static __device__ inline void store_as(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// dst (n) = src (n) rounded to T.
template <typename T>
static __global__ void round_kernel(T* dst, const float* src, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        store_as(dst + i, src[i]);
}

// Rounds n floats into dst of dtype dt (F16 or BF16) on stream s.
static void launch_round(dato_dtype dt, void* dst, const float* src, int64_t n, cudaStream_t s) {
    if (dt == DATO_F16) round_kernel<<<grid_for(n), GEMM_THREADS, 0, s>>>((__half*)dst, src, n);
    else round_kernel<<<grid_for(n), GEMM_THREADS, 0, s>>>((__nv_bfloat16*)dst, src, n);
}

// out (total) += b[(i / inner) % n]: b (n) broadcast along rows (linear: inner = 1) or along
// the positions of each channel (conv2d: inner = Ho*Wo).
static __global__ void add_bias_kernel(float* out, const float* b, int64_t total, int64_t inner, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
        out[i] += b[i / inner % n];
}

// The geometry of one conv2d call.
typedef struct {
    int64_t ci, h, w;        // input channels and size
    int kh, kw;              // kernel size
    int sh, sw, ph, pw;      // stride and padding per dim
    int64_t ho, wo;          // output size
} conv_geom;

// col (imgs, K = Ci*kh*kw, cols) for the output positions [p0, p0 + cols) of the images
// x (imgs, Ci, H, W). Row r = (ci*kh + ky)*kw + kx matches the memory order of w (Co, Ci, kh, kw);
// taps in the padding are 0. One thread per element of col: consecutive threads walk the
// positions, so writes are coalesced and reads are strided by the conv's stride.
template <typename T>
static __global__ void im2col_kernel(T* col, const float* x, conv_geom g, int64_t imgs, int64_t p0, int64_t cols) {
    int64_t kdim = g.ci * g.kh * g.kw, total = imgs * kdim * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t p = p0 + i % cols, r = i / cols % kdim, img = i / (cols * kdim);
        int64_t c = r / (g.kh * g.kw), ky = r / g.kw % g.kh, kx = r % g.kw;
        int64_t iy = p / g.wo * g.sh - g.ph + ky, ix = p % g.wo * g.sw - g.pw + kx;
        float v = 0.0f;
        if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) v = x[((img * g.ci + c) * g.h + iy) * g.w + ix];
        store_as(col + i, v);
    }
}

static void launch_im2col(dato_dtype dt, void* col, const float* x, conv_geom g, int64_t imgs, int64_t p0,
                          int64_t cols, cudaStream_t s) {
    unsigned blocks = grid_for(imgs * g.ci * g.kh * g.kw * cols);
    if (dt == DATO_F16) im2col_kernel<<<blocks, GEMM_THREADS, 0, s>>>((__half*)col, x, g, imgs, p0, cols);
    else if (dt == DATO_BF16) im2col_kernel<<<blocks, GEMM_THREADS, 0, s>>>((__nv_bfloat16*)col, x, g, imgs, p0, cols);
    else im2col_kernel<<<blocks, GEMM_THREADS, 0, s>>>((float*)col, x, g, imgs, p0, cols);
}

// Adds b (n) to out as add_bias_kernel does; no-op without a bias.
static dato_status add_bias(const char* op, cuda_backend* cb, float* out, const dato_tensor* b, int64_t total,
                            int64_t inner, dato_error* err) {
    if (!b) return DATO_OK;
    add_bias_kernel<<<grid_for(total), GEMM_THREADS, 0, cb->stream>>>(out, (const float*)b->data, total, inner,
                                                                     b->shape[0]);
    return cuda_check_launch(op, err);
}

// ---- linear --------------------------------------------------------------------------------------

// out^T (N, rows) = w (N, K) @ x^T (K, rows) in cuBLAS's column-major terms: w is stored row-major
// (N, K), i.e. column-major (K, N) with ld K, so it enters transposed; x rows (rows, K) row-major
// are column-major (K, rows) with ld K, entering as is; out (rows, N) row-major is column-major
// (N, rows) with ld N. xa is x in the weight's dtype.
static dato_status linear_gemm(cuda_backend* cb, const void* w, const void* xa, dato_dtype dt, float* out, int rows,
                               int n, int k, dato_error* err) {
    const float one = 1.0f, zero = 0.0f;
    cudaDataType_t t = cublas_dtype(dt);
    cublasStatus_t st = cublasGemmEx(cb->cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, rows, k, &one, w, t, k, xa, t, k, &zero,
                                     out, CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    return cuda_check_cublas("linear", st, err);
}

extern "C" dato_status cuda_linear(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                                   const dato_tensor* b, dato_error* err) {
    DATO_TRY(dato_op_check_linear(out, x, w, b, DATO_DEV_CUDA, 1, err));
    char sx[96];
    int64_t n = w->shape[0], kdim = w->shape[1], m = dato_tensor_numel(x) / kdim;
    if (m == 0) return DATO_OK;

    cuda_backend* cb = cuda_impl(be);
    const float* xd = (const float*)x->data; // (M, K)
    float* od = (float*)out->data;           // (M, N)
    if (w->dtype == DATO_F32) {
        DATO_TRY(linear_gemm(cb, w->data, xd, DATO_F32, od, (int)m, (int)n, (int)kdim, err));
    } else {
        // x rounded to the weight's dtype, as many rows at a time as the half scratch holds
        int64_t tile = (int64_t)(CUDA_HALF_BYTES / (2 * (size_t)kdim));
        if (tile < 1)
            return dato_fail(err, DATO_ERR_UNSUPPORTED, "linear: %lld input features of x %s overflow the half scratch",
                             (long long)kdim, dato_shape_str(x, sx, sizeof sx));
        for (int64_t r0 = 0; r0 < m; r0 += tile) {
            int64_t rows = m - r0 < tile ? m - r0 : tile;
            launch_round(w->dtype, cb->half, xd + r0 * kdim, rows * kdim, cb->stream); // (rows, K)
            DATO_TRY(cuda_check_launch("linear", err));
            DATO_TRY(linear_gemm(cb, w->data, cb->half, w->dtype, od + r0 * n, (int)rows, (int)n, (int)kdim, err));
        }
    }
    return add_bias("linear", cb, od, b, m * n, 1, err);
}

// ---- conv2d --------------------------------------------------------------------------------------

// For `batch` images at once (strided batched, the weight shared by all): out_i (Co, Ho*Wo) at
// columns [p0, p0 + cols) = w (Co, K) @ a_i (K, cols). Column-major, per image: out_i^T (cols, Co),
// ld Ho*Wo, = a_i^T (cols, K), ld cols, @ w^T (K, Co), ld K. a is the im2col tile or, for a 1x1
// stride-1 unpadded conv, the input itself (K = Ci, cols = Ho*Wo = H*W).
static dato_status conv_gemm(cuda_backend* cb, dato_dtype dt, const void* a, int64_t cols, int64_t kdim,
                             const void* w, int64_t co, float* out, int64_t npos, int batch, dato_error* err) {
    const float one = 1.0f, zero = 0.0f;
    cudaDataType_t t = cublas_dtype(dt);
    cublasStatus_t st = cublasGemmStridedBatchedEx(
        cb->cublas, CUBLAS_OP_N, CUBLAS_OP_N, (int)cols, (int)co, (int)kdim, &one, a, t, (int)cols,
        (long long)(kdim * cols), w, t, (int)kdim, 0, &zero, out, CUDA_R_32F, (int)npos, (long long)(co * npos), batch,
        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    return cuda_check_cublas("conv2d", st, err);
}

extern "C" dato_status cuda_conv2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                                   const dato_tensor* b, int stride_h, int stride_w, int pad_h, int pad_w,
                                   dato_error* err) {
    DATO_TRY(dato_op_check_conv2d(out, x, w, b, stride_h, stride_w, pad_h, pad_w, DATO_DEV_CUDA, 1, err));
    char sw[96], sx[96];
    int64_t batch = x->shape[0], ci = x->shape[1], h = x->shape[2], wd = x->shape[3];
    int64_t co = w->shape[0], kh = w->shape[2], kw = w->shape[3], ho = out->shape[2], wo = out->shape[3];
    if (batch == 0) return DATO_OK;
    if (batch > INT_MAX) // cuBLAS's batch count is an int too (op_check checked the GEMM's sizes)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "conv2d: input %s, weight %s exceed the int sizes of cuBLAS",
                         dato_shape_str(x, sx, sizeof sx), dato_shape_str(w, sw, sizeof sw));

    // cuDNN (cuda_conv_cudnn.cu) unless configured for im2col. In AUTO mode, a case it does not
    // take (no cuDNN in the build, a shape or dtype it refuses, a tile over its scratch, a full plan
    // cache) runs on im2col below; in CUDNN mode that is the error. (cb->cudnn is NULL in a build
    // without cuDNN: AUTO goes straight to im2col.)
    cuda_backend* cb = cuda_impl(be);
    if (cb->opt.conv == DATO_CUDA_CONV_CUDNN || (cb->opt.conv == DATO_CUDA_CONV_AUTO && cb->cudnn)) {
        dato_status st = cuda_cudnn_conv2d(cb, out, x, w, b, stride_h, stride_w, pad_h, pad_w, err);
        if (st != DATO_ERR_UNSUPPORTED || cb->opt.conv == DATO_CUDA_CONV_CUDNN) return st;
        if (err) err->msg[0] = '\0';
    }
    const float* xd = (const float*)x->data; // (B, Ci, H, W)
    float* od = (float*)out->data;           // (B, Co, Ho*Wo)
    dato_dtype dt = w->dtype;
    int64_t kdim = ci * kh * kw, npos = ho * wo;
    int direct = kh == 1 && kw == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0;

    // 1x1 stride-1 conv: x (B, Ci, H*W) is already the GEMM operand (f32 weights), or is after
    // rounding whole images into the half scratch (half weights, when one image fits; else the
    // im2col path below rounds it tile by tile).
    int64_t half_imgs = (int64_t)(CUDA_HALF_BYTES / (2 * (size_t)(ci * npos)));
    if (direct && dt == DATO_F32) {
        DATO_TRY(conv_gemm(cb, dt, xd, npos, ci, w->data, co, od, npos, (int)batch, err));
        return add_bias("conv2d", cb, od, b, batch * co * npos, npos, err);
    }
    if (direct && half_imgs >= 1) {
        for (int64_t n0 = 0; n0 < batch; n0 += half_imgs) {
            int64_t imgs = batch - n0 < half_imgs ? batch - n0 : half_imgs;
            launch_round(dt, cb->half, xd + n0 * ci * npos, imgs * ci * npos, cb->stream); // (imgs, Ci, H*W)
            DATO_TRY(cuda_check_launch("conv2d", err));
            DATO_TRY(conv_gemm(cb, dt, cb->half, npos, ci, w->data, co, od + n0 * co * npos, npos, (int)imgs, err));
        }
        return add_bias("conv2d", cb, od, b, batch * co * npos, npos, err);
    }

    // im2col: whole images per tile when one fits the col scratch (a strided-batched GEMM over
    // them), else tiles of positions of one image, equal in size so no GEMM is thin.
    int64_t cap = (int64_t)(CUDA_COL_BYTES / dato_dtype_size(dt)); // elements of the col tile
    int64_t imgs = 1, cols = npos;
    if (kdim * npos <= cap) {
        imgs = cap / (kdim * npos);
        imgs = imgs < batch ? imgs : batch;
    } else {
        cols = cap / kdim;
        if (cols < 1)
            return dato_fail(err, DATO_ERR_UNSUPPORTED,
                             "conv2d: weight %s needs %lld elements per im2col column, over the scratch",
                             dato_shape_str(w, sw, sizeof sw), (long long)kdim);
        int64_t tiles = (npos + cols - 1) / cols;
        cols = (npos + tiles - 1) / tiles;
    }
    conv_geom g = {ci, h, wd, (int)kh, (int)kw, stride_h, stride_w, pad_h, pad_w, ho, wo};
    for (int64_t n0 = 0; n0 < batch; n0 += imgs) {
        int64_t nimg = batch - n0 < imgs ? batch - n0 : imgs;
        for (int64_t p0 = 0; p0 < npos; p0 += cols) {
            int64_t ncol = npos - p0 < cols ? npos - p0 : cols;
            launch_im2col(dt, cb->col, xd + n0 * ci * h * wd, g, nimg, p0, ncol, cb->stream); // (nimg, K, ncol)
            DATO_TRY(cuda_check_launch("conv2d", err));
            DATO_TRY(conv_gemm(cb, dt, cb->col, ncol, kdim, w->data, co, od + n0 * co * npos + p0, npos, (int)nimg,
                               err));
        }
    }
    return add_bias("conv2d", cb, od, b, batch * co * npos, npos, err);
}
