// Layout changes and pooling on CUDA: nearest x2 upsample, max/avg pools, the spatial mean,
// channel concat and the NCHW <-> tokens permutes (tiled transposes through shared memory so
// reads and writes both coalesce). The pools sum in the CPU's order, so they match cpu_pool.c
// bit for bit.
#include <math.h>
#include <stdint.h>

#include "cuda_ops.h"

#define LAYOUT_THREADS 256
#define LAYOUT_MAX_BLOCKS 65536 // grid-stride loops cover the rest
#define TILE 32                 // transpose tile side; a block is TILE x TILE_ROWS threads
#define TILE_ROWS 8

// Blocks for a grid-stride loop over work items.
static int grid_for(int64_t work) {
    int64_t blocks = (work + LAYOUT_THREADS - 1) / LAYOUT_THREADS;
    return blocks < 1 ? 1 : blocks > LAYOUT_MAX_BLOCKS ? LAYOUT_MAX_BLOCKS : (int)blocks;
}

// ---- upsample -----------------------------------------------------------------------------------

// out (planes, 2H, 2W)[y][x] = x (planes, H, W)[y/2][x/2]; one thread per output (coalesced writes).
__global__ void upsample_nearest2x_kernel(float* out, const float* x, int64_t planes, int64_t h, int64_t w) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x, total = planes * 4 * h * w;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int64_t ox = i % (2 * w), oy = i / (2 * w) % (2 * h), p = i / (4 * h * w);
        out[i] = x[(p * h + oy / 2) * w + ox / 2];
    }
}

extern "C" dato_status cuda_upsample_nearest2x(dato_backend* be, dato_tensor* out, const dato_tensor* x,
                                               dato_error* err) {
    DATO_TRY(dato_op_check_upsample_nearest2x(out, x, DATO_DEV_CUDA, err));
    int64_t h = x->shape[2], w = x->shape[3];
    int64_t planes = x->shape[0] * x->shape[1];
    if (planes * h * w == 0) return DATO_OK;
    upsample_nearest2x_kernel<<<grid_for(planes * 4 * h * w), LAYOUT_THREADS, 0, cuda_impl(be)->stream>>>(
        (float*)out->data, (const float*)x->data, planes, h, w);
    return cuda_check_launch("upsample_nearest2x", err);
}

// ---- pools --------------------------------------------------------------------------------------

// out (planes, Ho, Wo) = max (is_max) or mean over each k x k window of x (planes, H, W), the
// window clipped to the input. The mean divides by k*k when count_include_pad, else by the
// inputs inside (pad < k and Ho floored: a window never passes the padded edge, so k*k is
// PyTorch's padded count). One thread per output.
__global__ void pool_kernel(float* out, const float* x, int64_t planes, int64_t h, int64_t w, int64_t ho, int64_t wo,
                            int k, int stride, int pad, int is_max, int count_include_pad) {
    int64_t step = (int64_t)gridDim.x * blockDim.x, total = planes * ho * wo;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
        int64_t ox = i % wo, oy = i / wo % ho, p = i / (ho * wo);
        int64_t ys = oy * stride - pad, xs = ox * stride - pad;
        int64_t y0 = ys < 0 ? 0 : ys, y1 = ys + k > h ? h : ys + k;
        int64_t x0 = xs < 0 ? 0 : xs, x1 = xs + k > w ? w : xs + k;
        const float* xp = x + p * h * w; // (H, W)
        float acc = is_max ? -INFINITY : 0.0f;
        for (int64_t iy = y0; iy < y1; iy++)
            for (int64_t ix = x0; ix < x1; ix++) {
                float v = xp[iy * w + ix];
                acc = is_max ? (v > acc ? v : acc) : acc + v;
            }
        if (!is_max) acc /= count_include_pad ? (float)(k * k) : (float)((y1 - y0) * (x1 - x0));
        out[i] = acc;
    }
}

// Checks a pool's arguments and runs pool_kernel; op names the caller.
static dato_status run_pool(dato_backend* be, const char* op, dato_tensor* out, const dato_tensor* x, int k, int stride,
                            int pad, int is_max, int count_include_pad, dato_error* err) {
    DATO_TRY(dato_op_check_pool2d(op, out, x, k, stride, pad, DATO_DEV_CUDA, err));
    int64_t planes = x->shape[0] * x->shape[1], ho = out->shape[2], wo = out->shape[3];
    if (planes * ho * wo == 0) return DATO_OK;
    pool_kernel<<<grid_for(planes * ho * wo), LAYOUT_THREADS, 0, cuda_impl(be)->stream>>>(
        (float*)out->data, (const float*)x->data, planes, x->shape[2], x->shape[3], ho, wo, k, stride, pad, is_max,
        count_include_pad);
    return cuda_check_launch(op, err);
}

extern "C" dato_status cuda_max_pool2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, int k, int stride,
                                       int pad, dato_error* err) {
    return run_pool(be, "max_pool2d", out, x, k, stride, pad, 1, 0, err);
}

extern "C" dato_status cuda_avg_pool2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, int k, int stride,
                                       int pad, int count_include_pad, dato_error* err) {
    return run_pool(be, "avg_pool2d", out, x, k, stride, pad, 0, count_include_pad, err);
}

// out (planes) = mean of each plane of x (planes, hw), summed in double as on the CPU; one warp
// per plane, grid-stride over planes (blocks of LAYOUT_THREADS / 32 warps).
__global__ void mean_hw_kernel(float* out, const float* x, int64_t planes, int64_t hw) {
    int lane = threadIdx.x % 32, warps = blockDim.x / 32;
    for (int64_t p = (int64_t)blockIdx.x * warps + threadIdx.x / 32; p < planes; p += (int64_t)gridDim.x * warps) {
        double s = 0.0;
        for (int64_t i = lane; i < hw; i += 32) s += x[p * hw + i];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) out[p] = (float)(s / (double)hw);
    }
}

extern "C" dato_status cuda_mean_hw(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    DATO_TRY(dato_op_check_mean_hw(out, x, DATO_DEV_CUDA, err));
    int64_t planes = x->shape[0] * x->shape[1], hw = x->shape[2] * x->shape[3];
    if (planes == 0) return DATO_OK;
    int64_t warps = LAYOUT_THREADS / 32, blocks = (planes + warps - 1) / warps;
    mean_hw_kernel<<<blocks < LAYOUT_MAX_BLOCKS ? (int)blocks : LAYOUT_MAX_BLOCKS, LAYOUT_THREADS, 0,
                     cuda_impl(be)->stream>>>((float*)out->data, (const float*)x->data, planes, hw);
    return cuda_check_launch("mean_hw", err);
}

// ---- concat -------------------------------------------------------------------------------------

extern "C" dato_status cuda_concat_channels(dato_backend* be, dato_tensor* out, const dato_tensor* a,
                                            const dato_tensor* b, dato_error* err) {
    DATO_TRY(dato_op_check_concat_channels(out, a, b, DATO_DEV_CUDA, err));
    int64_t batch = a->shape[0], ca = a->shape[1], cb = b->shape[1], hw = a->shape[2] * a->shape[3];
    // Per image, out holds a's Ca*HW floats then b's Cb*HW: two strided 2D copies, one row per image.
    size_t a_row = (size_t)(ca * hw) * sizeof(float), b_row = (size_t)(cb * hw) * sizeof(float);
    size_t out_row = a_row + b_row;
    cudaStream_t stream = cuda_impl(be)->stream;
    cudaError_t e = cudaSuccess;
    if (batch > 0 && a_row > 0)
        e = cudaMemcpy2DAsync(out->data, out_row, a->data, a_row, a_row, (size_t)batch, cudaMemcpyDeviceToDevice, stream);
    if (e == cudaSuccess && batch > 0 && b_row > 0)
        e = cudaMemcpy2DAsync((char*)out->data + a_row, out_row, b->data, b_row, b_row, (size_t)batch,
                              cudaMemcpyDeviceToDevice, stream);
    if (e == cudaSuccess) return DATO_OK;
    cudaGetLastError(); // reported here, not by the next op
    return dato_fail(err, DATO_ERR_UNSUPPORTED, "concat_channels: CUDA error %s: %s", cudaGetErrorName(e),
                     cudaGetErrorString(e));
}

// ---- NCHW <-> tokens --------------------------------------------------------------------------------

// dst (B, cols, rows) = src (B, rows, cols) transposed per image; block (TILE, TILE_ROWS) moves one
// TILE x TILE tile: blockIdx.x over column tiles, blockIdx.y over row tiles, blockIdx.z the image.
// The +1 column keeps the transposed reads of the tile free of shared-memory bank conflicts.
__global__ void transpose_kernel(float* dst, const float* src, int64_t rows, int64_t cols) {
    __shared__ float tile[TILE][TILE + 1];
    const float* s = src + (int64_t)blockIdx.z * rows * cols; // (rows, cols)
    float* d = dst + (int64_t)blockIdx.z * rows * cols;       // (cols, rows)
    int64_t r0 = (int64_t)blockIdx.y * TILE, c0 = (int64_t)blockIdx.x * TILE;
    for (int j = threadIdx.y; j < TILE; j += TILE_ROWS) {
        int64_t r = r0 + j, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[j][threadIdx.x] = s[r * cols + c]; // tile[j][i] = src(r0 + j, c0 + i)
    }
    __syncthreads();
    for (int j = threadIdx.y; j < TILE; j += TILE_ROWS) {
        int64_t c = c0 + j, r = r0 + threadIdx.x;
        if (r < rows && c < cols) d[c * rows + r] = tile[threadIdx.x][j]; // dst(c0 + j, r0 + i) = src(r0 + i, c0 + j)
    }
}

// Launches transpose_kernel for op; grid dims y and z are limited to 65535.
static dato_status transpose(dato_backend* be, const char* op, float* dst, const float* src, int64_t batch,
                             int64_t rows, int64_t cols, dato_error* err) {
    if (batch * rows * cols == 0) return DATO_OK;
    int64_t col_tiles = (cols + TILE - 1) / TILE, row_tiles = (rows + TILE - 1) / TILE;
    if (row_tiles > 65535 || batch > 65535 || col_tiles > INT32_MAX)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: (%lld, %lld, %lld) is too large for one transpose grid", op,
                         (long long)batch, (long long)rows, (long long)cols);
    dim3 grid((unsigned)col_tiles, (unsigned)row_tiles, (unsigned)batch), block(TILE, TILE_ROWS);
    transpose_kernel<<<grid, block, 0, cuda_impl(be)->stream>>>(dst, src, rows, cols);
    return cuda_check_launch(op, err);
}

extern "C" dato_status cuda_nchw_to_tokens(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    DATO_TRY(dato_op_check_nchw_to_tokens(out, x, DATO_DEV_CUDA, err));
    int64_t batch = x->shape[0], c = x->shape[1], hw = x->shape[2] * x->shape[3];
    return transpose(be, "nchw_to_tokens", (float*)out->data, (const float*)x->data, batch, c, hw, err);
}

extern "C" dato_status cuda_tokens_to_nchw(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    DATO_TRY(dato_op_check_tokens_to_nchw(out, x, DATO_DEV_CUDA, err));
    int64_t batch = out->shape[0], c = out->shape[1], hw = out->shape[2] * out->shape[3];
    return transpose(be, "tokens_to_nchw", (float*)out->data, (const float*)x->data, batch, hw, c, err);
}
