// conv2d through cuDNN's legacy API (cudnnConvolutionForward), for builds that find cuDNN
// (engine/backends/cuda/CMakeLists.txt; cuda_conv_none.cu stands in otherwise). cuda_conv2d calls it unless
// the backend is configured for im2col; in AUTO mode a DATO_ERR_UNSUPPORTED from here sends the
// call down the im2col path instead.
//
// Plans: a fixed cache of PLAN_CAP plans, allocated once at create, keyed by everything a
// cuDNN call depends on (images per call, Ci, H, W, Co, kh, kw, stride, pad, weight dtype). A
// plan holds the descriptors and the chosen algorithm; it is made the first time its key is
// seen, on the host only (no device allocation, no synchronization, nothing enqueued), so a
// plan can be made during CUDA graph capture. A key cuDNN refuses is cached too (its status and
// the call that failed), so heuristics are asked once per shape. A full cache is
// DATO_ERR_UNSUPPORTED.
//
// Algorithm choice, deterministic (no timing, no synchronization; a measured FindEx would make
// the bits depend on timing and cannot run inside graph capture): the results of
// cudnnGetConvolutionForwardAlgorithm_v7's heuristics, best first, taking the first with status
// success, of the GEMM family (IMPLICIT_GEMM, IMPLICIT_PRECOMP_GEMM, GEMM; never FFT or
// Winograd, whose transforms add error), and whose workspace fits the backend's im2col scratch
// (cb->col, CUDA_COL_BYTES), which is the workspace: this file never allocates device memory.
//
// Precision:
// - F32 weights: x, w and y in f32 with math type CUDNN_FMA_MATH (never TF32), so results match
//   the CPU backend to ~1e-6 like the im2col path. cuDNN writes out directly; a small kernel adds
//   the bias.
// - F16/BF16 weights: cuDNN's PSEUDO_HALF / BFLOAT16 configurations (x, w, y all in the weight's
//   dtype, f32 compute) on tensor cores (CUDNN_TENSOR_OP_MATH). x is rounded into the backend's
//   half scratch, cuDNN writes a half y beside it, and one kernel converts y to the f32 out,
//   adding the bias. The output's rounding to half is the one step the im2col path (f32 GEMM
//   output) does not take.
//
// Half scratch split (cb->half, CUDA_HALF_BYTES): per call of `imgs` images,
//   [0, A)          x of the images rounded to the half dtype, imgs*Ci*H*W elements,
//   [A, A + Y)      cuDNN's half y, imgs*Co*Ho*Wo elements,
// with A the x part rounded up to 256 bytes (cuDNN's kernels want aligned tensors). The batch is
// tiled over images into equal tiles of as many images as fit (so most shapes make one plan);
// when not even one image fits, DATO_ERR_UNSUPPORTED (AUTO then runs im2col, which tiles over
// positions). F32 calls also tile over images, only so that no tensor of a call exceeds 2^31
// elements (cuDNN's int sizes).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cudnn.h>
#include <limits.h>
#include <stdlib.h>

#include "cuda_ops.h"

#define PLAN_CAP 256     // shapes per backend: a UNet's, a VAE's and Inception's at a few batch sizes
#define CONV_THREADS 256
#define HALF_ALIGN 256   // byte alignment of the half y in the scratch

// What a cuDNN call depends on, besides the data pointers.
typedef struct {
    int n, ci, h, w, co, kh, kw, sh, sw, ph, pw;
    dato_dtype dt;
} plan_key;

typedef struct {
    plan_key key;
    cudnnStatus_t status; // CUDNN_STATUS_SUCCESS: usable; else why cuDNN refused the key
    const char* stage;    // the step that failed, when status says so
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    cudnnConvolutionFwdAlgo_t algo;
    size_t ws_bytes; // the algorithm's workspace, <= CUDA_COL_BYTES
} conv_plan;

typedef struct {
    cudnnHandle_t handle;       // NULL when cudnnCreate or cudnnSetStream failed: every call is then
    cudnnStatus_t create_status; // DATO_ERR_UNSUPPORTED naming create_status
    int nplans;
    conv_plan plans[PLAN_CAP];
} cudnn_state;

extern "C" int dato_backend_cuda_has_cudnn(void) { return 1; }

// ---- create and destroy -------------------------------------------------------------------------

// A cuDNN that cannot start (a driver or library mismatch) does not fail the backend: cb->cudnn
// records why, and conv2d reports it as DATO_ERR_UNSUPPORTED, so AUTO keeps running on im2col.
extern "C" dato_status cuda_cudnn_create(cuda_backend* cb, dato_error* err) {
    cudnn_state* s = (cudnn_state*)calloc(1, sizeof(cudnn_state));
    if (!s) return dato_fail(err, DATO_ERR_NOMEM, "cuda backend: cannot allocate the cuDNN plan cache");
    cudnnStatus_t st = cudnnCreate(&s->handle);
    if (st == CUDNN_STATUS_SUCCESS) {
        st = cudnnSetStream(s->handle, cb->stream);
        if (st != CUDNN_STATUS_SUCCESS) {
            cudnnDestroy(s->handle);
            s->handle = NULL;
        }
    } else {
        s->handle = NULL;
    }
    s->create_status = st;
    cudaGetLastError(); // a failed start leaves nothing for the next op to report
    cb->cudnn = s;
    return DATO_OK;
}

static void plan_release(conv_plan* p) {
    if (p->xd) cudnnDestroyTensorDescriptor(p->xd);
    if (p->yd) cudnnDestroyTensorDescriptor(p->yd);
    if (p->wd) cudnnDestroyFilterDescriptor(p->wd);
    if (p->cd) cudnnDestroyConvolutionDescriptor(p->cd);
}

extern "C" void cuda_cudnn_destroy(cuda_backend* cb) {
    cudnn_state* s = (cudnn_state*)cb->cudnn;
    if (!s) return;
    for (int i = 0; i < s->nplans; i++) plan_release(&s->plans[i]);
    if (s->handle) cudnnDestroy(s->handle);
    free(s);
    cb->cudnn = NULL;
}

// ---- plans --------------------------------------------------------------------------------------

static int key_equal(const plan_key* a, const plan_key* b) {
    return a->n == b->n && a->ci == b->ci && a->h == b->h && a->w == b->w && a->co == b->co && a->kh == b->kh &&
           a->kw == b->kw && a->sh == b->sh && a->sw == b->sw && a->ph == b->ph && a->pw == b->pw && a->dt == b->dt;
}

static cudnnDataType_t cudnn_dtype(dato_dtype dt) {
    return dt == DATO_F16 ? CUDNN_DATA_HALF : dt == DATO_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
}

static int gemm_family(cudnnConvolutionFwdAlgo_t a) {
    return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
           a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM;
}

// Records the failure of step `stage` in p; returns st.
static cudnnStatus_t plan_fail(conv_plan* p, const char* stage, cudnnStatus_t st) {
    p->status = st;
    p->stage = stage;
    return st;
}

#define PLAN_STEP(stage, call)                                     \
    do {                                                           \
        cudnnStatus_t plan_st_ = (call);                           \
        if (plan_st_ != CUDNN_STATUS_SUCCESS) return plan_fail(p, stage, plan_st_); \
    } while (0)

// Fills p (key set, everything else zero) with descriptors and an algorithm, host-side only.
static cudnnStatus_t plan_make(cudnnHandle_t handle, conv_plan* p, int ho, int wo) {
    const plan_key* k = &p->key;
    cudnnDataType_t t = cudnn_dtype(k->dt);
    int is_f32 = k->dt == DATO_F32;
    PLAN_STEP("cudnnCreateTensorDescriptor", cudnnCreateTensorDescriptor(&p->xd));
    PLAN_STEP("cudnnCreateTensorDescriptor", cudnnCreateTensorDescriptor(&p->yd));
    PLAN_STEP("cudnnCreateFilterDescriptor", cudnnCreateFilterDescriptor(&p->wd));
    PLAN_STEP("cudnnCreateConvolutionDescriptor", cudnnCreateConvolutionDescriptor(&p->cd));
    PLAN_STEP("cudnnSetTensor4dDescriptor (x)",
              cudnnSetTensor4dDescriptor(p->xd, CUDNN_TENSOR_NCHW, t, k->n, k->ci, k->h, k->w));
    PLAN_STEP("cudnnSetFilter4dDescriptor",
              cudnnSetFilter4dDescriptor(p->wd, t, CUDNN_TENSOR_NCHW, k->co, k->ci, k->kh, k->kw));
    // backend.h's conv2d is a cross-correlation; f32 compute for every dtype
    PLAN_STEP("cudnnSetConvolution2dDescriptor",
              cudnnSetConvolution2dDescriptor(p->cd, k->ph, k->pw, k->sh, k->sw, 1, 1, CUDNN_CROSS_CORRELATION,
                                              CUDNN_DATA_FLOAT));
    cudnnMathType_t math = is_f32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
    PLAN_STEP("cudnnSetConvolutionMathType", cudnnSetConvolutionMathType(p->cd, math));
    int on, oc, oh, ow;
    PLAN_STEP("cudnnGetConvolution2dForwardOutputDim",
              cudnnGetConvolution2dForwardOutputDim(p->cd, p->xd, p->wd, &on, &oc, &oh, &ow));
    if (on != k->n || oc != k->co || oh != ho || ow != wo)
        return plan_fail(p, "cudnnGetConvolution2dForwardOutputDim (another output size)", CUDNN_STATUS_BAD_PARAM);
    PLAN_STEP("cudnnSetTensor4dDescriptor (y)",
              cudnnSetTensor4dDescriptor(p->yd, CUDNN_TENSOR_NCHW, t, k->n, k->co, ho, wo));

    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int count = 0;
    PLAN_STEP("cudnnGetConvolutionForwardAlgorithm_v7",
              cudnnGetConvolutionForwardAlgorithm_v7(handle, p->xd, p->wd, p->cd, p->yd,
                                                     CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf));
    for (int i = 0; i < count; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || !gemm_family(perf[i].algo)) continue;
        if (is_f32) {
            // the descriptor stays on FMA math; a result that needs tensor ops (TF32) is skipped
            if (perf[i].mathType == CUDNN_TENSOR_OP_MATH || perf[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)
                continue;
        } else if (cudnnSetConvolutionMathType(p->cd, perf[i].mathType) != CUDNN_STATUS_SUCCESS) {
            continue; // half data: any math type computes in f32 (tensor cores or FMA)
        }
        size_t ws = 0;
        if (cudnnGetConvolutionForwardWorkspaceSize(handle, p->xd, p->wd, p->cd, p->yd, perf[i].algo, &ws) !=
                CUDNN_STATUS_SUCCESS ||
            ws > CUDA_COL_BYTES)
            continue;
        p->algo = perf[i].algo;
        p->ws_bytes = ws;
        p->status = CUDNN_STATUS_SUCCESS;
        return CUDNN_STATUS_SUCCESS;
    }
    return plan_fail(p, "no GEMM-family algorithm whose workspace fits the im2col scratch",
                     CUDNN_STATUS_NOT_SUPPORTED);
}

// The plan of key (made now if new), or NULL when the cache is full.
static conv_plan* plan_get(cudnn_state* s, const plan_key* key, int ho, int wo) {
    for (int i = 0; i < s->nplans; i++)
        if (key_equal(&s->plans[i].key, key)) return &s->plans[i];
    if (s->nplans == PLAN_CAP) return NULL;
    conv_plan* p = &s->plans[s->nplans++];
    p->key = *key;
    plan_make(s->handle, p, ho, wo); // a refusal stays in p->status
    return p;
}

// ---- kernels ------------------------------------------------------------------------------------

static unsigned grid_for(int64_t n) {
    int64_t blocks = (n + CONV_THREADS - 1) / CONV_THREADS;
    return (unsigned)(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

static __device__ inline void store_as(__half* p, float v) { *p = __float2half_rn(v); }
static __device__ inline void store_as(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
static __device__ inline float load_f32(const float* p) { return *p; }
static __device__ inline float load_f32(const __half* p) { return __half2float(*p); }
static __device__ inline float load_f32(const __nv_bfloat16* p) { return __bfloat162float(*p); }

// dst (n) = src (n) rounded to T (nearest even).
template <typename T>
static __global__ void round_kernel(T* dst, const float* src, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        store_as(dst + i, src[i]);
}

// out (total) = y (total) + b[(i / npos) % co] (no bias: b NULL). y may be out itself (T = float).
template <typename T>
static __global__ void finish_kernel(float* out, const T* y, const float* b, int64_t total, int64_t npos, int64_t co) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = load_f32(y + i) + (b ? b[i / npos % co] : 0.0f);
}

// ---- conv2d -------------------------------------------------------------------------------------

static size_t align_up(size_t v) { return (v + HALF_ALIGN - 1) / HALF_ALIGN * HALF_ALIGN; }

extern "C" dato_status cuda_cudnn_conv2d(cuda_backend* cb, dato_tensor* out, const dato_tensor* x,
                                         const dato_tensor* w, const dato_tensor* b, int stride_h, int stride_w,
                                         int pad_h, int pad_w, dato_error* err) {
    cudnn_state* s = (cudnn_state*)cb->cudnn;
    char sx[96], sw[96];
    dato_dtype dt = w->dtype;
    if (!s || !s->handle)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "conv2d: cuDNN did not start: %s",
                         s ? cudnnGetErrorString(s->create_status) : "no cuDNN state");
    if (dt != DATO_F32 && dt != DATO_F16 && dt != DATO_BF16)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "conv2d: cuDNN path takes F32, F16 or BF16 weights, not %s",
                         dato_dtype_name(dt));
    int64_t batch = x->shape[0], ci = x->shape[1], h = x->shape[2], wd = x->shape[3];
    int64_t co = w->shape[0], kh = w->shape[2], kw = w->shape[3], ho = out->shape[2], wo = out->shape[3];
    int64_t xin = ci * h * wd, yout = co * ho * wo; // elements per image
    if (batch == 0) return DATO_OK;

    // images per call: f32 only under cuDNN's int sizes; half also within the scratch split
    int64_t cap = INT_MAX / (xin > yout ? xin : yout);
    if (dt != DATO_F32) {
        int64_t fit = (int64_t)(CUDA_HALF_BYTES / (2 * (size_t)(xin + yout)));
        while (fit > 0 && align_up(2 * (size_t)(xin * fit)) + 2 * (size_t)(yout * fit) > CUDA_HALF_BYTES) fit--;
        cap = fit < cap ? fit : cap;
    }
    if (cap < 1)
        return dato_fail(err, DATO_ERR_UNSUPPORTED,
                         "conv2d: one image of x %s (weight %s %s) does not fit the cuDNN path's %s",
                         dato_shape_str(x, sx, sizeof sx), dato_shape_str(w, sw, sizeof sw), dato_dtype_name(dt),
                         dt == DATO_F32 ? "int sizes" : "half scratch (x and y in the half dtype)");
    int64_t tiles = (batch + cap - 1) / cap, imgs = (batch + tiles - 1) / tiles;

    const float one = 1.0f, zero = 0.0f;
    const float* xd = (const float*)x->data;
    const float* bd = b ? (const float*)b->data : NULL;
    float* od = (float*)out->data;
    void* xh = cb->half;
    void* yh = (char*)cb->half + align_up(2 * (size_t)(xin * imgs));
    for (int64_t n0 = 0; n0 < batch; n0 += imgs) {
        int64_t n = batch - n0 < imgs ? batch - n0 : imgs;
        plan_key key = {(int)n,  (int)ci,  (int)h,   (int)wd, (int)co, (int)kh,
                        (int)kw, stride_h, stride_w, pad_h,   pad_w,   dt};
        conv_plan* p = plan_get(s, &key, (int)ho, (int)wo);
        if (!p)
            return dato_fail(err, DATO_ERR_UNSUPPORTED,
                             "conv2d: the cuDNN plan cache is full (%d shapes); x %s, weight %s", PLAN_CAP,
                             dato_shape_str(x, sx, sizeof sx), dato_shape_str(w, sw, sizeof sw));
        if (p->status != CUDNN_STATUS_SUCCESS)
            return dato_fail(err, DATO_ERR_UNSUPPORTED,
                             "conv2d: cuDNN %s: %s; x %s (%lld images per call), weight %s %s, stride (%d, %d), "
                             "pad (%d, %d)",
                             p->stage, cudnnGetErrorString(p->status), dato_shape_str(x, sx, sizeof sx), (long long)n,
                             dato_shape_str(w, sw, sizeof sw), dato_dtype_name(dt), stride_h, stride_w, pad_h, pad_w);
        const float* xt = xd + n0 * xin;
        float* ot = od + n0 * yout;
        const void* xin_ptr = xt;
        void* y_ptr = ot;
        if (dt != DATO_F32) {
            int64_t nx = n * xin;
            if (dt == DATO_F16) round_kernel<<<grid_for(nx), CONV_THREADS, 0, cb->stream>>>((__half*)xh, xt, nx);
            else round_kernel<<<grid_for(nx), CONV_THREADS, 0, cb->stream>>>((__nv_bfloat16*)xh, xt, nx);
            DATO_TRY(cuda_check_launch("conv2d", err));
            xin_ptr = xh;
            y_ptr = yh;
        }
        cudnnStatus_t st = cudnnConvolutionForward(s->handle, &one, p->xd, xin_ptr, p->wd, w->data, p->cd, p->algo,
                                                   cb->col, p->ws_bytes, &zero, p->yd, y_ptr);
        if (st != CUDNN_STATUS_SUCCESS)
            return dato_fail(err, DATO_ERR_UNSUPPORTED,
                             "conv2d: cuDNN cudnnConvolutionForward (algorithm %d): %s; x %s, weight %s %s, "
                             "stride (%d, %d), pad (%d, %d)",
                             (int)p->algo, cudnnGetErrorString(st), dato_shape_str(x, sx, sizeof sx),
                             dato_shape_str(w, sw, sizeof sw), dato_dtype_name(dt), stride_h, stride_w, pad_h, pad_w);
        int64_t ny = n * yout, npos = ho * wo;
        if (dt == DATO_F16)
            finish_kernel<<<grid_for(ny), CONV_THREADS, 0, cb->stream>>>(ot, (const __half*)yh, bd, ny, npos, co);
        else if (dt == DATO_BF16)
            finish_kernel<<<grid_for(ny), CONV_THREADS, 0, cb->stream>>>(ot, (const __nv_bfloat16*)yh, bd, ny, npos,
                                                                        co);
        else if (bd)
            finish_kernel<<<grid_for(ny), CONV_THREADS, 0, cb->stream>>>(ot, (const float*)ot, bd, ny, npos, co);
        DATO_TRY(cuda_check_launch("conv2d", err));
    }
    return DATO_OK;
}
