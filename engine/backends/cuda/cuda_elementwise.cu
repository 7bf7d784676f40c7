// Elementwise ops, the last-dim softmax and the timestep embedding on CUDA. Each op is one
// grid-stride kernel on the backend's stream; elementwise kernels move float4s when both
// pointers are 16-byte aligned (arena tensors are) and finish the tail one float at a time.
// out may alias x in every op but geglu (whose out is half the size of x).
//
// The math is the CPU reference's (engine/backends/cpu/cpu_activation.c, cpu_layout.c) with CUDA's
// accurate expf/erff/sinf (no fast-math), so results agree to a few f32 ulps.
#include <math.h>
#include <stdint.h>

#include "cuda_ops.h"

#define EW_THREADS 256
#define EW_MAX_BLOCKS 65536 // grid-stride loops cover the rest

// The frequencies of one timestep_embedding call travel as a kernel argument, computed on the host
// by the CPU's exact formula; the timesteps are read from device memory when the kernel runs.
#define TSEMB_MAX_HALF 512 // dim <= 1024; 2 KB of arguments, under the 4 KB kernel-parameter limit

// Blocks for a grid-stride loop over work items.
static int grid_for(int64_t work) {
    int64_t blocks = (work + EW_THREADS - 1) / EW_THREADS;
    return blocks < 1 ? 1 : blocks > EW_MAX_BLOCKS ? EW_MAX_BLOCKS : (int)blocks;
}

static int aligned16(const void* p) { return ((uintptr_t)p & 15) == 0; }

// ---- unary activations ---------------------------------------------------------------------------

typedef enum { ACT_SILU, ACT_GELU, ACT_QUICK_GELU, ACT_RELU } act_kind;

// One activation; kind is uniform over the grid, so the switch does not diverge.
__device__ __forceinline__ float act(float x, int kind) {
    switch (kind) {
    case ACT_SILU: return x / (1.0f + expf(-x));
    case ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); // erf, exact
    case ACT_QUICK_GELU: return x / (1.0f + expf(-1.702f * x));
    default: return x > 0.0f ? x : 0.0f; // ACT_RELU
    }
}

// out[i] = act(x[i]) for i < n; the first n4 float4s vectorized (n4 == 0 when misaligned).
__global__ void act_kernel(float* out, const float* x, int64_t n, int64_t n4, int kind) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    int64_t i0 = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const float4* x4 = (const float4*)x; // (n4)
    float4* o4 = (float4*)out;           // (n4)
    for (int64_t i = i0; i < n4; i += stride) {
        float4 v = x4[i];
        v.x = act(v.x, kind);
        v.y = act(v.y, kind);
        v.z = act(v.z, kind);
        v.w = act(v.w, kind);
        o4[i] = v;
    }
    for (int64_t i = 4 * n4 + i0; i < n; i += stride) out[i] = act(x[i], kind);
}

// Checks out and x of an elementwise op and runs act_kernel.
static dato_status run_act(dato_backend* be, const char* op, dato_tensor* out, const dato_tensor* x, int kind,
                           dato_error* err) {
    DATO_TRY(dato_op_check_unary(op, out, x, DATO_DEV_CUDA, err));
    int64_t n = dato_tensor_numel(x);
    if (n == 0) return DATO_OK;
    int64_t n4 = aligned16(out->data) && aligned16(x->data) ? n / 4 : 0;
    act_kernel<<<grid_for(n4 > 0 ? n4 : n), EW_THREADS, 0, cuda_impl(be)->stream>>>((float*)out->data,
                                                                                   (const float*)x->data, n, n4, kind);
    return cuda_check_launch(op, err);
}

extern "C" dato_status cuda_silu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    return run_act(be, "silu", out, x, ACT_SILU, err);
}

extern "C" dato_status cuda_gelu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    return run_act(be, "gelu", out, x, ACT_GELU, err);
}

extern "C" dato_status cuda_quick_gelu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    return run_act(be, "quick_gelu", out, x, ACT_QUICK_GELU, err);
}

extern "C" dato_status cuda_relu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    return run_act(be, "relu", out, x, ACT_RELU, err);
}

// ---- geglu -----------------------------------------------------------------------------------------

// out (rows, F) = hidden * gelu(gate) for x (rows, 2F) = [hidden, gate].
__global__ void geglu_kernel(float* out, const float* x, int64_t rows, int64_t f) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < rows * f; i += stride) {
        int64_t r = i / f, j = i % f;
        float hidden = x[r * 2 * f + j];
        float gate = x[r * 2 * f + f + j];
        out[i] = hidden * (0.5f * gate * (1.0f + erff(gate * 0.70710678118654752f)));
    }
}

extern "C" dato_status cuda_geglu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    DATO_TRY(dato_op_check_geglu(out, x, DATO_DEV_CUDA, err));
    int64_t f = x->shape[x->ndim - 1] / 2;
    if (f == 0) return DATO_OK;
    int64_t rows = dato_tensor_numel(out) / f;
    if (rows == 0) return DATO_OK;
    geglu_kernel<<<grid_for(rows * f), EW_THREADS, 0, cuda_impl(be)->stream>>>((float*)out->data,
                                                                              (const float*)x->data, rows, f);
    return cuda_check_launch("geglu", err);
}

// ---- softmax -------------------------------------------------------------------------------------

// Max or sum of v over the warp; every lane gets the result.
__device__ __forceinline__ float warp_reduce(float v, int is_max) {
    for (int o = 16; o > 0; o >>= 1) {
        float u = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, u) : v + u;
    }
    return v;
}

// Max or sum of v over the block (blockDim.x a multiple of 32, at most 1024); every thread
// gets the result. shared holds 32 floats; the leading barrier lets a block call this twice.
__device__ float block_reduce(float v, int is_max, float* shared) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_reduce(v, is_max);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : (is_max ? -INFINITY : 0.0f);
    return warp_reduce(v, is_max);
}

// out (rows, n) = softmax of each row of x (rows, n), one block per row (grid-stride over
// rows): max, then exp(x - max) and its sum, then scale by 1/sum. Each element is read and
// written by one thread, so out may alias x.
__global__ void softmax_kernel(float* out, const float* x, int64_t rows, int64_t n) {
    __shared__ float shared[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* xr = x + r * n; // (n)
        float* orow = out + r * n;   // (n)
        float mx = -INFINITY;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) mx = fmaxf(mx, xr[i]);
        mx = block_reduce(mx, 1, shared);
        float sum = 0.0f;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            float e = expf(xr[i] - mx);
            orow[i] = e;
            sum += e;
        }
        float inv = 1.0f / block_reduce(sum, 0, shared);
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) orow[i] *= inv;
    }
}

extern "C" dato_status cuda_softmax(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    DATO_TRY(dato_op_check_unary("softmax", out, x, DATO_DEV_CUDA, err));
    int64_t n = x->shape[x->ndim - 1];
    if (n == 0) return DATO_OK;
    int64_t rows = dato_tensor_numel(x) / n;
    if (rows == 0) return DATO_OK;
    // a warp for short rows (77 text tokens), more threads for long ones (4096 image tokens)
    int threads = n <= 128 ? 32 : n <= 1024 ? 128 : 512;
    int blocks = rows < EW_MAX_BLOCKS ? (int)rows : EW_MAX_BLOCKS;
    softmax_kernel<<<blocks, threads, 0, cuda_impl(be)->stream>>>((float*)out->data, (const float*)x->data, rows, n);
    return cuda_check_launch("softmax", err);
}

// ---- add, axpby, add_channel_bias, copy -------------------------------------------------------------

// out[i] = alpha * a[i] + beta * b[i] for i < n; the first n4 float4s vectorized.
__global__ void axpby_kernel(float* out, float alpha, const float* a, float beta, const float* b, int64_t n,
                             int64_t n4) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    int64_t i0 = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const float4* a4 = (const float4*)a; // (n4)
    const float4* b4 = (const float4*)b; // (n4)
    float4* o4 = (float4*)out;           // (n4)
    for (int64_t i = i0; i < n4; i += stride) {
        float4 u = a4[i], v = b4[i];
        o4[i] = make_float4(alpha * u.x + beta * v.x, alpha * u.y + beta * v.y, alpha * u.z + beta * v.z,
                            alpha * u.w + beta * v.w);
    }
    for (int64_t i = 4 * n4 + i0; i < n; i += stride) out[i] = alpha * a[i] + beta * b[i];
}

// out = alpha * a + beta * b for add and axpby; op names the caller in errors. With alpha =
// beta = 1 this is exactly a + b (multiplying by 1 is exact, and so is a fused 1 * a + b).
static dato_status lincomb(dato_backend* be, const char* op, dato_tensor* out, float alpha, const dato_tensor* a,
                           float beta, const dato_tensor* b, dato_error* err) {
    DATO_TRY(dato_op_check_lincomb(op, out, a, b, DATO_DEV_CUDA, err));
    int64_t n = dato_tensor_numel(a);
    if (n == 0) return DATO_OK;
    int64_t n4 = aligned16(out->data) && aligned16(a->data) && aligned16(b->data) ? n / 4 : 0;
    axpby_kernel<<<grid_for(n4 > 0 ? n4 : n), EW_THREADS, 0, cuda_impl(be)->stream>>>(
        (float*)out->data, alpha, (const float*)a->data, beta, (const float*)b->data, n, n4);
    return cuda_check_launch(op, err);
}

extern "C" dato_status cuda_add(dato_backend* be, dato_tensor* out, const dato_tensor* a, const dato_tensor* b,
                                dato_error* err) {
    return lincomb(be, "add", out, 1.0f, a, 1.0f, b, err);
}

extern "C" dato_status cuda_axpby(dato_backend* be, dato_tensor* out, float alpha, const dato_tensor* a, float beta,
                                  const dato_tensor* b, dato_error* err) {
    return lincomb(be, "axpby", out, alpha, a, beta, b, err);
}

// x (planes, hw) += v[plane]; float4s when hw % 4 == 0 (a float4 then never straddles planes).
__global__ void channel_bias_kernel(float* x, const float* v, int64_t planes, int64_t hw, int vec) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    int64_t i0 = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (vec) {
        float4* x4 = (float4*)x; // (planes * hw / 4)
        for (int64_t i = i0; i < planes * hw / 4; i += stride) {
            float bias = v[4 * i / hw];
            float4 u = x4[i];
            x4[i] = make_float4(u.x + bias, u.y + bias, u.z + bias, u.w + bias);
        }
    } else {
        for (int64_t i = i0; i < planes * hw; i += stride) x[i] += v[i / hw];
    }
}

extern "C" dato_status cuda_add_channel_bias(dato_backend* be, dato_tensor* x, const dato_tensor* v, dato_error* err) {
    DATO_TRY(dato_op_check_add_channel_bias(x, v, DATO_DEV_CUDA, err));
    int64_t batch = x->shape[0], c = x->shape[1], hw = x->shape[2] * x->shape[3];
    int64_t planes = batch * c;
    if (planes * hw == 0) return DATO_OK;
    int vec = hw % 4 == 0 && aligned16(x->data);
    channel_bias_kernel<<<grid_for(vec ? planes * hw / 4 : planes * hw), EW_THREADS, 0, cuda_impl(be)->stream>>>(
        (float*)x->data, (const float*)v->data, planes, hw, vec);
    return cuda_check_launch("add_channel_bias", err);
}

extern "C" dato_status cuda_copy(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    DATO_TRY(dato_op_check_unary("copy", out, x, DATO_DEV_CUDA, err));
    size_t bytes = dato_tensor_nbytes(x);
    if (out->data == x->data || bytes == 0) return DATO_OK;
    // tensors are disjoint or identical (the arena hands out disjoint blocks): no memmove needed
    cudaError_t e = cudaMemcpyAsync(out->data, x->data, bytes, cudaMemcpyDeviceToDevice, cuda_impl(be)->stream);
    if (e == cudaSuccess) return DATO_OK;
    cudaGetLastError(); // reported here, not by the next op
    return dato_fail(err, DATO_ERR_UNSUPPORTED, "copy: CUDA error %s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
}

// ---- timestep embedding ---------------------------------------------------------------------------

typedef struct {
    float freq[TSEMB_MAX_HALF]; // (half) exp(-ln(max_period) * i / (half - freq_shift))
} tsemb_args;

// out (B, 2*half): [sin(t f), cos(t f)], or [cos, sin] when flip, for t (B). One thread per (n, i).
__global__ void timestep_embedding_kernel(float* out, const float* t, tsemb_args args, int batch, int half,
                                          int flip) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= batch * half) return;
    int n = idx / half, i = idx % half;
    float arg = t[n] * args.freq[i];
    float* row = out + (int64_t)n * 2 * half; // (2 * half)
    row[(flip ? half : 0) + i] = sinf(arg);
    row[(flip ? 0 : half) + i] = cosf(arg);
}

extern "C" dato_status cuda_timestep_embedding(dato_backend* be, dato_tensor* out, const dato_tensor* t,
                                               int flip_sin_to_cos, float freq_shift, float max_period,
                                               dato_error* err) {
    DATO_TRY(dato_op_check_timestep_embedding(out, t, freq_shift, max_period, DATO_DEV_CUDA, err));
    int64_t batch = out->shape[0], dim = out->shape[1], half = dim / 2;
    if (half > TSEMB_MAX_HALF || batch * half > INT32_MAX)
        return dato_fail(err, DATO_ERR_UNSUPPORTED,
                         "timestep_embedding: out (%lld, %lld) exceeds the CUDA backend's dim limit %d",
                         (long long)batch, (long long)dim, 2 * TSEMB_MAX_HALF);
    if (batch == 0) return DATO_OK;
    // The frequencies exactly as cpu_timestep_embedding computes them (host expf), so the
    // device's arguments t * f match the CPU's bit for bit and only sinf/cosf differ.
    tsemb_args args = {};
    float neg_log_period = (float)-log((double)max_period);
    float denom = (float)((double)half - (double)freq_shift);
    for (int64_t i = 0; i < half; i++) args.freq[i] = expf(neg_log_period * (float)i / denom);
    int work = (int)(batch * half);
    timestep_embedding_kernel<<<(work + EW_THREADS - 1) / EW_THREADS, EW_THREADS, 0, cuda_impl(be)->stream>>>(
        (float*)out->data, (const float*)t->data, args, (int)batch, (int)half, flip_sin_to_cos);
    return cuda_check_launch("timestep_embedding", err);
}
