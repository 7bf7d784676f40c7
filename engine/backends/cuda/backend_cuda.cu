// The CUDA backend: init and destroy, the memory ops, the launch and cuBLAS error checks every op
// shares, the DaTo ops and the ops table (every op checks its arguments by op_check.h's rule, the
// CPU backend's). The ops live in cuda_gemm.cu (linear, conv2d),
// cuda_attention.cu, cuda_norm.cu, cuda_elementwise.cu and cuda_layout.cu; the DaTo kernels
// in cuda_dato.cu.
//
// Everything runs on one non-blocking stream; only upload, download and synchronize wait for
// it. Those three are void in the table: a copy that fails is kept in cuda_backend.sticky and
// left in the runtime's last-error slot, where the next op's cuda_check_launch reports it.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda.h"
#include "cuda_dato.h"
#include "cuda_ops.h"
#include "op_check.h"

// ---- errors of launches and cuBLAS calls ------------------------------------------------------

extern "C" dato_status cuda_check_launch(const char* op, dato_error* err) {
    cudaError_t e = cudaGetLastError(); // also clears a non-sticky error so the next op starts clean
    if (e == cudaSuccess) return DATO_OK;
    return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: CUDA error %s: %s", op, cudaGetErrorName(e),
                     cudaGetErrorString(e));
}

extern "C" dato_status cuda_check_cublas(const char* op, cublasStatus_t st, dato_error* err) {
    if (st == CUBLAS_STATUS_SUCCESS) return DATO_OK;
    return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: cuBLAS error %s", op, cublasGetStatusString(st));
}

// ---- memory: device memory, cudaMalloc's 256-byte alignment ----------------------------------

// Keeps the first failure of a void memory op (see the top of this file).
static void note_failure(dato_backend* be, cudaError_t e) {
    cuda_backend* cuda = cuda_impl(be);
    if (e != cudaSuccess && cuda->sticky == cudaSuccess) cuda->sticky = e;
}

static void* cuda_alloc(dato_backend* be, size_t bytes) {
    (void)be;
    void* p = NULL;
    // cudaMalloc(0) gives NULL; a zero-byte request still gets a distinct pointer, as on the CPU
    if (cudaMalloc(&p, bytes ? bytes : 256) != cudaSuccess) {
        cudaGetLastError(); // reported as NULL; keep it from blaming the next op
        return NULL;
    }
    return p;
}

static void cuda_free(dato_backend* be, void* p) {
    (void)be;
    if (p) cudaFree(p);
}

// dst = src over bytes in direction kind, waiting for the stream (src_host may be freed after).
static void cuda_memcpy_sync(dato_backend* be, void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    if (!bytes) return;
    cuda_backend* cuda = cuda_impl(be);
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, kind, cuda->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(cuda->stream);
    note_failure(be, e);
}

static void cuda_upload(dato_backend* be, void* dst, const void* src_host, size_t bytes) {
    cuda_memcpy_sync(be, dst, src_host, bytes, cudaMemcpyHostToDevice);
}

static void cuda_download(dato_backend* be, void* dst_host, const void* src, size_t bytes) {
    cuda_memcpy_sync(be, dst_host, src, bytes, cudaMemcpyDeviceToHost);
}

static void cuda_synchronize(dato_backend* be) { note_failure(be, cudaStreamSynchronize(cuda_impl(be)->stream)); }

static void* cuda_alloc_host(dato_backend* be, size_t bytes) {
    (void)be;
    void* p = NULL;
    if (cudaMallocHost(&p, bytes ? bytes : 64) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return p;
}

static void cuda_free_host(dato_backend* be, void* p) {
    (void)be;
    if (p) cudaFreeHost(p);
}

static size_t cuda_mem_available(dato_backend* be) {
    (void)be;
    size_t free_bytes = 0, total = 0;
    if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return free_bytes;
}

// From pinned memory the copy is a DMA in stream order: the host does not wait for it.
static void cuda_upload_async(dato_backend* be, void* dst, const void* src_host, size_t bytes) {
    if (bytes) note_failure(be, cudaMemcpyAsync(dst, src_host, bytes, cudaMemcpyHostToDevice, cuda_impl(be)->stream));
}

// ---- graphs: stream capture of the ops between capture_begin and capture_end ---------------------

static dato_status cuda_error(const char* what, cudaError_t e, dato_error* err) {
    if (e == cudaSuccess) return DATO_OK;
    cudaGetLastError();
    return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: CUDA error %s: %s", what, cudaGetErrorName(e),
                     cudaGetErrorString(e));
}

static dato_status cuda_capture_begin(dato_backend* be, dato_error* err) {
    // Thread-local mode: another thread's unrelated CUDA calls do not invalidate the capture.
    return cuda_error("capture_begin", cudaStreamBeginCapture(cuda_impl(be)->stream, cudaStreamCaptureModeThreadLocal),
                      err);
}

static dato_status cuda_capture_end(dato_backend* be, void** graph, dato_error* err) {
    cudaGraph_t g = NULL;
    cudaGraphExec_t exec = NULL;
    *graph = NULL;
    DATO_TRY(cuda_error("capture_end", cudaStreamEndCapture(cuda_impl(be)->stream, &g), err));
    cudaError_t e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    DATO_TRY(cuda_error("capture_end: instantiating the graph", e, err));
    *graph = exec;
    return DATO_OK;
}

static dato_status cuda_graph_launch(dato_backend* be, void* graph, dato_error* err) {
    return cuda_error("graph_launch", cudaGraphLaunch((cudaGraphExec_t)graph, cuda_impl(be)->stream), err);
}

static void cuda_graph_free(dato_backend* be, void* graph) {
    (void)be;
    if (graph) cudaGraphExecDestroy((cudaGraphExec_t)graph);
}

// ---- the DaTo pruning ops: op_check.h's checks around the kernels of cuda_dato.h ------------------

// Rows and sizes the kernels take as int.
static dato_status check_int_sizes(const char* op, int64_t B, int64_t N, int64_t C, dato_error* err) {
    if (B < 1 || N < 1 || C < 1 || B > 65535 || N > INT32_MAX || C > INT32_MAX)
        return dato_fail(err, DATO_ERR_INVALID, "%s: B %lld, N %lld, C %lld outside [1, 65535] x [1, 2^31)", op,
                         (long long)B, (long long)N, (long long)C);
    return DATO_OK;
}

static dato_status cuda_dato_similarity(dato_backend* be, dato_tensor* sim, dato_tensor* assign, dato_tensor* is_base,
                                        const dato_tensor* x, const dato_tensor* base, dato_tensor* work,
                                        dato_error* err) {
    DATO_TRY(dato_op_check_dato_similarity(sim, assign, is_base, x, base, work, DATO_DEV_CUDA, err));
    int64_t B = x->shape[0], N = x->shape[1], C = x->shape[2], P = base->shape[1];
    DATO_TRY(check_int_sizes("dato_similarity", B, N, C, err));
    // work's first B*N*C floats take the normalized tokens
    return dato_cuda_similarity((const float*)x->data, (const int32_t*)base->data, (int)B, (int)N, (int)C, (int)P,
                                (float*)work->data, (uint8_t*)is_base->data, (float*)sim->data,
                                (int32_t*)assign->data, cuda_impl(be)->stream, err);
}

static dato_status cuda_dato_select_keep(dato_backend* be, dato_tensor* keep, const dato_tensor* sim,
                                         const dato_tensor* is_base, int P, int n, dato_error* err) {
    DATO_TRY(dato_op_check_dato_select_keep(keep, sim, is_base, P, n, DATO_DEV_CUDA, err));
    int64_t B = sim->shape[0], N = sim->shape[1];
    DATO_TRY(check_int_sizes("dato_select_keep", B, N, 1, err));
    return dato_cuda_select_pruned((const float*)sim->data, (const uint8_t*)is_base->data, (int)B, (int)N, P, n,
                                   (uint8_t*)keep->data, cuda_impl(be)->stream, err);
}

static dato_status cuda_dato_gather_kept(dato_backend* be, dato_tensor* pos, dato_tensor* x_kept, const dato_tensor* x,
                                         const dato_tensor* keep, dato_error* err) {
    DATO_TRY(dato_op_check_dato_gather_kept(pos, x_kept, x, keep, DATO_DEV_CUDA, err));
    int64_t B = x->shape[0], N = x->shape[1], C = x->shape[2];
    DATO_TRY(check_int_sizes("dato_gather_kept", B, N, C, err));
    // Unlike the CPU, a keep mask with another count per row is not detected (no read-back): rows past Nk are dropped.
    return dato_cuda_gather_kept((const float*)x->data, (const uint8_t*)keep->data, (int)B, (int)N, (int)C,
                                 (int)x_kept->shape[1], (int32_t*)pos->data, (float*)x_kept->data,
                                 cuda_impl(be)->stream, err);
}

static dato_status cuda_dato_scatter_recover(dato_backend* be, dato_tensor* out, const dato_tensor* o_kept,
                                             const dato_tensor* pos, const dato_tensor* assign, dato_error* err) {
    DATO_TRY(dato_op_check_dato_scatter_recover(out, o_kept, pos, assign, DATO_DEV_CUDA, err));
    int64_t B = out->shape[0], N = out->shape[1], C = out->shape[2];
    DATO_TRY(check_int_sizes("dato_scatter_recover", B, N, C, err));
    // A bad pos or assign (the ops above never make one) gives NaN rows; the CPU reports it instead.
    return dato_cuda_scatter_recover((const float*)o_kept->data, (const int32_t*)pos->data,
                                     (const int32_t*)assign->data, (int)B, (int)N, (int)C, (int)o_kept->shape[1],
                                     (float*)out->data, cuda_impl(be)->stream, err);
}

static const dato_backend_ops cuda_ops = {
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .synchronize = cuda_synchronize,
    .alloc_host = cuda_alloc_host,
    .free_host = cuda_free_host,
    .upload_async = cuda_upload_async,
    .mem_available = cuda_mem_available,
    .conv2d = cuda_conv2d,
    .group_norm_conv2d = NULL, // no fused forms yet: the UNet runs the ops apart
    .linear = cuda_linear,
    .geglu_linear = NULL,
    .group_norm = cuda_group_norm,
    .layer_norm = cuda_layer_norm,
    .silu = cuda_silu,
    .gelu = cuda_gelu,
    .quick_gelu = cuda_quick_gelu,
    .geglu = cuda_geglu,
    .softmax = cuda_softmax,
    .relu = cuda_relu,
    .attention = cuda_attention,
    .upsample_nearest2x = cuda_upsample_nearest2x,
    .max_pool2d = cuda_max_pool2d,
    .avg_pool2d = cuda_avg_pool2d,
    .mean_hw = cuda_mean_hw,
    .concat_channels = cuda_concat_channels,
    .nchw_to_tokens = cuda_nchw_to_tokens,
    .tokens_to_nchw = cuda_tokens_to_nchw,
    .add = cuda_add,
    .add_channel_bias = cuda_add_channel_bias,
    .axpby = cuda_axpby,
    .copy = cuda_copy,
    .timestep_embedding = cuda_timestep_embedding,
    .dato_similarity = cuda_dato_similarity,
    .dato_select_keep = cuda_dato_select_keep,
    .dato_gather_kept = cuda_dato_gather_kept,
    .dato_scatter_recover = cuda_dato_scatter_recover,
    .capture_begin = cuda_capture_begin,
    .capture_end = cuda_capture_end,
    .graph_launch = cuda_graph_launch,
    .graph_free = cuda_graph_free,
};

// ---- init and destroy -----------------------------------------------------------------------------

// Frees whatever of cuda's resources exist (a partial init too), then cuda itself.
static void cuda_release(cuda_backend* cuda) {
    if (cuda->stream) cudaStreamSynchronize(cuda->stream);
    cuda_cudnn_destroy(cuda);
    if (cuda->col) cudaFree(cuda->col);
    if (cuda->half) cudaFree(cuda->half);
    if (cuda->cublas_ws) cudaFree(cuda->cublas_ws);
    if (cuda->cublas) cublasDestroy(cuda->cublas);
    if (cuda->stream) cudaStreamDestroy(cuda->stream);
    cudaGetLastError(); // nothing to report from a teardown
    free(cuda);
}

static void cuda_destroy(dato_backend* be) {
    cuda_backend* cuda = cuda_impl(be);
    cudaSetDevice(cuda->device);
    cuda_release(cuda);
}

extern "C" dato_status dato_backend_cuda_init(dato_backend* be, int device, dato_error* err) {
    if (!be) return dato_fail(err, DATO_ERR_INVALID, "cuda backend: be is NULL");
    *be = dato_backend{};
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "cuda backend: no usable CUDA driver or device (%s)",
                         cudaGetErrorString(e));
    }
    if (device < 0 || device >= count)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "cuda backend: no CUDA device %d (%d found)", device, count);
    cudaDeviceProp prop;
    if ((e = cudaSetDevice(device)) != cudaSuccess || (e = cudaGetDeviceProperties(&prop, device)) != cudaSuccess) {
        cudaGetLastError();
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "cuda backend: device %d: %s", device, cudaGetErrorString(e));
    }
    cuda_backend* cuda = (cuda_backend*)calloc(1, sizeof *cuda);
    if (!cuda) return dato_fail(err, DATO_ERR_NOMEM, "cuda backend: out of memory for its state");
    cuda->destroy = cuda_destroy;
    cuda->device = device;
    cuda->sm = prop.major * 10 + prop.minor;
    cuda->sticky = cudaSuccess;
    // a non-blocking stream does not wait for work other libraries put on the legacy default stream
    if ((e = cudaStreamCreateWithFlags(&cuda->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        cuda->stream = NULL;
        cuda_release(cuda);
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "cuda backend: creating a stream on device %d: %s", device,
                         cudaGetErrorString(e));
    }
    cublasStatus_t cs = cublasCreate(&cuda->cublas);
    if (cs == CUBLAS_STATUS_SUCCESS) cs = cublasSetStream(cuda->cublas, cuda->stream);
    if (cs != CUBLAS_STATUS_SUCCESS) {
        cuda_release(cuda);
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "cuda backend: cuBLAS on device %d: %s", device,
                         cublasGetStatusString(cs));
    }
    if (cudaMalloc(&cuda->col, CUDA_COL_BYTES) != cudaSuccess) cuda->col = NULL;
    if (cuda->col && cudaMalloc(&cuda->half, CUDA_HALF_BYTES) != cudaSuccess) cuda->half = NULL;
    if (cuda->half && cudaMalloc(&cuda->cublas_ws, CUDA_CUBLAS_WS_BYTES) != cudaSuccess) cuda->cublas_ws = NULL;
    // cuBLAS's own workspace, so that no GEMM allocates, even inside a graph capture
    if (cuda->cublas_ws &&
        cublasSetWorkspace(cuda->cublas, cuda->cublas_ws, CUDA_CUBLAS_WS_BYTES) != CUBLAS_STATUS_SUCCESS) {
        cudaFree(cuda->cublas_ws);
        cuda->cublas_ws = NULL;
    }
    if (!cuda->col || !cuda->half || !cuda->cublas_ws) {
        cudaGetLastError();
        cuda_release(cuda);
        return dato_fail(err, DATO_ERR_NOMEM, "cuda backend: %zu MiB of scratch do not fit on device %d",
                         (CUDA_COL_BYTES + CUDA_HALF_BYTES + CUDA_CUBLAS_WS_BYTES) >> 20, device);
    }
    dato_status st = cuda_attention_setup(err);
    if (!st) st = cuda_cudnn_create(cuda, err);
    if (st) {
        cuda_release(cuda);
        return st;
    }
    be->name = "cuda";
    be->device = DATO_DEV_CUDA;
    be->ops = &cuda_ops;
    be->impl = cuda;
    return DATO_OK;
}

extern "C" dato_status dato_backend_cuda_configure(dato_backend* be, const dato_cuda_options* opt, dato_error* err) {
    if (!be || !opt || !be->name || strcmp(be->name, "cuda") != 0)
        return dato_fail(err, DATO_ERR_INVALID, "cuda backend: configure needs a CUDA backend and options");
    if (opt->attention != DATO_F32 && opt->attention != DATO_F16 && opt->attention != DATO_BF16)
        return dato_fail(err, DATO_ERR_INVALID, "cuda backend: attention in %s; F32, F16 or BF16 expected",
                         dato_dtype_name(opt->attention));
    if (opt->conv != DATO_CUDA_CONV_AUTO && opt->conv != DATO_CUDA_CONV_IM2COL && opt->conv != DATO_CUDA_CONV_CUDNN)
        return dato_fail(err, DATO_ERR_INVALID, "cuda backend: conv mode %d; auto, im2col or cudnn expected",
                         (int)opt->conv);
    if (opt->conv == DATO_CUDA_CONV_CUDNN && !dato_backend_cuda_has_cudnn())
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "cuda backend: conv cudnn, but this build has no cuDNN");
    cuda_impl(be)->opt = *opt;
    return DATO_OK;
}
