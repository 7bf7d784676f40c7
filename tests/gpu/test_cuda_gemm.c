// Parity of the CUDA backend's GEMM-backed ops (linear, conv2d on im2col; engine/backends/cuda/cuda_gemm.cu) and
// its f32 fused attention (engine/backends/cuda/cuda_attention.cu) with the CPU backend, on seeded random inputs.
// Every GPU output starts poisoned with NaN, so an element the op misses fails the test.
//
// Tolerances, all max|got - ref| / max|ref| (an abs tolerance scaled by the output's largest
// magnitude: single elements near zero after cancellation have no useful relative error):
//   f32 weights and attention: 1e-5 (both sides compute in f32, only the summation order and,
//   for attention, the CPU's polynomial exp2 differ);
//   F16/BF16 weights: 1e-3, against the CPU run on the dequantized weights and on the
//   activations rounded to the same half dtype (the GPU rounds them before its GEMM).
// Exits 77 (skipped) without CUDA in the build or a GPU in the machine.
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "backend_cuda.h"
#include "cuda_device.h"
#include "gpu_tensors.h"
#include "tensor.h"
#include "test_util.h"

#define TOL_F32 1e-5
#define TOL_HALF 1e-3

// Prints and checks max|got - ref| / max|ref| <= tol.
static void compare(const char* what, const float* got, const float* ref, size_t n, double tol) {
    double rel = test_rel_err(got, ref, n);
    printf("%-58s max rel err %.3g (tol %.0e, max |ref| %.3g)\n", what, rel, tol, test_max_abs(ref, n));
    CHECK(rel <= tol, "%s: rel err %.3g over %.0e", what, rel, tol);
}

// ---- linear ------------------------------------------------------------------------------------

// out (x_shape[:-1], N) = x (x_shape) @ w (N, K)^T (+ b) with w stored as dt; w_4d stores it (N, K, 1, 1).
static void test_linear(dato_backend* cpu, dato_backend* gpu, int xdim, const int64_t* x_shape, int64_t n,
                        dato_dtype dt, int bias, int w_4d) {
    int64_t k = x_shape[xdim - 1];
    size_t nx = numel(xdim, x_shape), m = nx / (size_t)k;
    int64_t w_shape[4] = {n, k, 1, 1}, o_shape[4];
    memcpy(o_shape, x_shape, sizeof(int64_t) * (size_t)xdim);
    o_shape[xdim - 1] = n;
    float* x = rand_buf(nx, 1.0f);
    float* w = rand_buf((size_t)(n * k), 0.1f);
    float* b = bias ? rand_buf((size_t)n, 1.0f) : NULL;
    float* xr = rounded(x, nx, dt); // the activations the GPU multiplies
    float* wr = rounded(w, (size_t)(n * k), dt);
    float* ref = malloc(m * (size_t)n * sizeof(float));
    dato_error err = {{0}};

    dato_tensor cx = dato_tensor_make(xr, DATO_F32, DATO_DEV_CPU, xdim, x_shape);
    dato_tensor cw = dato_tensor_make(wr, DATO_F32, DATO_DEV_CPU, w_4d ? 4 : 2, w_shape);
    dato_tensor cb = dato_tensor_f32_1d(b, n);
    dato_tensor co = dato_tensor_make(ref, DATO_F32, DATO_DEV_CPU, xdim, o_shape);
    dato_status st = cpu->ops->linear(cpu, &co, &cx, &cw, bias ? &cb : NULL, &err);
    CHECK(st == DATO_OK, "cpu linear: %s", err.msg);

    dato_tensor gx = dev_tensor(gpu, x, DATO_F32, xdim, x_shape);
    dato_tensor gw = dev_tensor(gpu, w, dt, w_4d ? 4 : 2, w_shape);
    dato_tensor gb = bias ? dev_tensor(gpu, b, DATO_F32, 1, &n) : cb;
    dato_tensor go = dev_poisoned(gpu, xdim, o_shape);
    st = gpu->ops->linear(gpu, &go, &gx, &gw, bias ? &gb : NULL, &err);
    CHECK(st == DATO_OK, "cuda linear: %s", err.msg);
    float* got = to_host(gpu, &go);

    char what[160], sx[96];
    snprintf(what, sizeof what, "linear %s x %s, N %lld, %s%s", dato_dtype_name(dt), dato_shape_str(&cx, sx, sizeof sx),
             (long long)n, bias ? "bias" : "no bias", w_4d ? ", (N, K, 1, 1)" : "");
    compare(what, got, ref, m * (size_t)n, dt == DATO_F32 ? TOL_F32 : TOL_HALF);

    gpu->ops->free(gpu, gx.data), gpu->ops->free(gpu, gw.data), gpu->ops->free(gpu, go.data);
    if (bias) gpu->ops->free(gpu, gb.data);
    free(x), free(w), free(b), free(xr), free(wr), free(ref), free(got);
}

// ---- conv2d ------------------------------------------------------------------------------------

// out = conv2d(x (B, Ci, H, W), w (Co, Ci, kh, kw) stored as dt) (+ b).
static void test_conv(dato_backend* cpu, dato_backend* gpu, int64_t batch, int64_t ci, int64_t h, int64_t wd,
                      int64_t co, int64_t kh, int64_t kw, int sh, int sw, int ph, int pw, dato_dtype dt, int bias) {
    int64_t ho = (h + 2 * ph - kh) / sh + 1, wo = (wd + 2 * pw - kw) / sw + 1;
    int64_t x_shape[4] = {batch, ci, h, wd}, w_shape[4] = {co, ci, kh, kw}, o_shape[4] = {batch, co, ho, wo};
    size_t nx = numel(4, x_shape), nw = numel(4, w_shape), no = numel(4, o_shape);
    float* x = rand_buf(nx, 1.0f);
    float* w = rand_buf(nw, 0.1f);
    float* b = bias ? rand_buf((size_t)co, 1.0f) : NULL;
    float* ref = cpu_conv2d_ref(cpu, x, w, b, dt, x_shape, w_shape, o_shape, sh, sw, ph, pw);
    CHECK(ref != NULL, "cpu conv2d reference");
    dato_error err = {{0}};

    dato_tensor gx = dev_tensor(gpu, x, DATO_F32, 4, x_shape);
    dato_tensor gw = dev_tensor(gpu, w, dt, 4, w_shape);
    dato_tensor gb = bias ? dev_tensor(gpu, b, DATO_F32, 1, &co) : dato_tensor_f32_1d(NULL, co);
    dato_tensor go = dev_poisoned(gpu, 4, o_shape);
    dato_status st = gpu->ops->conv2d(gpu, &go, &gx, &gw, bias ? &gb : NULL, sh, sw, ph, pw, &err);
    CHECK(st == DATO_OK, "cuda conv2d: %s", err.msg);
    float* got = to_host(gpu, &go);

    char what[160], sx[96], sws[96];
    snprintf(what, sizeof what, "conv2d %s x %s w %s s(%d,%d) p(%d,%d)%s", dato_dtype_name(dt),
             dato_shape_str(&gx, sx, sizeof sx), dato_shape_str(&gw, sws, sizeof sws), sh, sw, ph, pw,
             bias ? " bias" : "");
    if (ref) compare(what, got, ref, no, dt == DATO_F32 ? TOL_F32 : TOL_HALF);

    gpu->ops->free(gpu, gx.data), gpu->ops->free(gpu, gw.data), gpu->ops->free(gpu, go.data);
    if (bias) gpu->ops->free(gpu, gb.data);
    free(x), free(w), free(b), free(ref), free(got);
}

// ---- attention ---------------------------------------------------------------------------------

// out (B, Nq, H*D) = attention(q (B, Nq, H*D), k, v (B, Nk, H*D)), scale 1/sqrt(D).
static void test_attention(dato_backend* cpu, dato_backend* gpu, int64_t batch, int64_t nq, int64_t nk, int heads,
                           int64_t d, int causal) {
    int64_t q_shape[3] = {batch, nq, heads * d}, k_shape[3] = {batch, nk, heads * d};
    size_t n_q = numel(3, q_shape), n_k = numel(3, k_shape);
    float* q = rand_buf(n_q, 2.0f);
    float* k = rand_buf(n_k, 2.0f);
    float* v = rand_buf(n_k, 1.0f);
    float scale = 1.0f / sqrtf((float)d);
    float* ref = cpu_attention_ref(cpu, q, k, v, DATO_F32, q_shape, k_shape, heads, scale, causal);
    CHECK(ref != NULL, "cpu attention reference");
    dato_error err = {{0}};

    dato_tensor gq = dev_tensor(gpu, q, DATO_F32, 3, q_shape);
    dato_tensor gk = dev_tensor(gpu, k, DATO_F32, 3, k_shape);
    dato_tensor gv = dev_tensor(gpu, v, DATO_F32, 3, k_shape);
    dato_tensor go = dev_poisoned(gpu, 3, q_shape);
    dato_status st = gpu->ops->attention(gpu, &go, &gq, &gk, &gv, heads, scale, causal, &err);
    CHECK(st == DATO_OK, "cuda attention: %s", err.msg);
    float* got = to_host(gpu, &go);

    char what[160];
    snprintf(what, sizeof what, "attention B %lld Nq %lld Nk %lld H %d D %lld%s", (long long)batch, (long long)nq,
             (long long)nk, heads, (long long)d, causal ? " causal" : "");
    if (ref) compare(what, got, ref, n_q, TOL_F32);

    gpu->ops->free(gpu, gq.data), gpu->ops->free(gpu, gk.data), gpu->ops->free(gpu, gv.data);
    gpu->ops->free(gpu, go.data);
    free(q), free(k), free(v), free(ref), free(got);
}

// Arguments the ops must refuse, with the status and a message naming the problem.
static void test_errors(dato_backend* gpu) {
    dato_error err = {{0}};
    int64_t s_big[3] = {1, 4, 2 * 168}, s_q[3] = {1, 4, 16}, s_k[3] = {1, 5, 16};
    float host[2 * 168 * 5] = {0};
    dato_tensor q = dev_tensor(gpu, host, DATO_F32, 3, s_big), o = dev_tensor(gpu, host, DATO_F32, 3, s_big);
    dato_status st = gpu->ops->attention(gpu, &o, &q, &q, &q, 2, 1.0f, 0, &err);
    CHECK(st == DATO_ERR_UNSUPPORTED && strstr(err.msg, "head dim 168"), "head dim 168: %s", err.msg);
    gpu->ops->free(gpu, q.data), gpu->ops->free(gpu, o.data);

    q = dev_tensor(gpu, host, DATO_F32, 3, s_q), o = dev_tensor(gpu, host, DATO_F32, 3, s_q);
    dato_tensor k = dev_tensor(gpu, host, DATO_F32, 3, s_k);
    st = gpu->ops->attention(gpu, &o, &q, &k, &k, 2, 1.0f, 1, &err);
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "causal"), "causal with Nq != Nk: %s", err.msg);

    int64_t s_w[2] = {8, 15}; // K 15 against x's 16 features
    dato_tensor w = dev_tensor(gpu, host, DATO_F16, 2, s_w);
    st = gpu->ops->linear(gpu, &o, &q, &w, NULL, &err);
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "weight"), "linear K mismatch: %s", err.msg);
    gpu->ops->free(gpu, q.data), gpu->ops->free(gpu, o.data), gpu->ops->free(gpu, k.data), gpu->ops->free(gpu, w.data);
}

int main(void) {
    dato_backend cpu, gpu;
    int start = gpu_test_start(&cpu, &gpu);
    if (start) return start;
    // conv2d on im2col + cuBLAS, the path this file covers (cuDNN's: test_cuda_conv_cudnn.c)
    dato_error err = {{0}};
    dato_cuda_options opt = {.conv = DATO_CUDA_CONV_IM2COL};
    if (dato_backend_cuda_configure(&gpu, &opt, &err)) {
        fprintf(stderr, "configure: %s\n", err.msg);
        return 1;
    }

    const dato_dtype dts[3] = {DATO_F32, DATO_F16, DATO_BF16};
    for (int i = 0; i < 3; i++) {
        int64_t x_tokens[3] = {2, 77, 320}, x_odd[2] = {5, 33}, x_1x1[2] = {3, 24};
        test_linear(&cpu, &gpu, 3, x_tokens, 640, dts[i], 1, 0);
        test_linear(&cpu, &gpu, 2, x_odd, 17, dts[i], 0, 0);
        test_linear(&cpu, &gpu, 2, x_1x1, 8, dts[i], 1, 1);
    }
    int64_t x_rows[2] = {33000, 2048}; // two tiles of rows through the 128 MiB half scratch
    test_linear(&cpu, &gpu, 2, x_rows, 32, DATO_F16, 1, 0);

    for (int i = 0; i < 2; i++) {
        dato_dtype dt = dts[i];
        test_conv(&cpu, &gpu, 2, 16, 12, 10, 24, 3, 3, 1, 1, 1, 1, dt, 1);
        test_conv(&cpu, &gpu, 2, 16, 12, 10, 24, 3, 3, 1, 1, 1, 1, dt, 0);
        test_conv(&cpu, &gpu, 2, 16, 13, 11, 24, 3, 3, 2, 2, 1, 1, dt, 1);
        test_conv(&cpu, &gpu, 2, 16, 12, 10, 24, 1, 1, 1, 1, 0, 0, dt, 1); // direct GEMM on NCHW
        test_conv(&cpu, &gpu, 3, 16, 12, 10, 24, 1, 1, 1, 1, 0, 0, dt, 0);
        test_conv(&cpu, &gpu, 2, 16, 12, 10, 24, 1, 1, 2, 2, 0, 0, dt, 1); // 1x1 stride 2: im2col
        test_conv(&cpu, &gpu, 2, 8, 17, 15, 12, 1, 7, 1, 1, 0, 3, dt, 1);
        test_conv(&cpu, &gpu, 2, 8, 17, 15, 12, 7, 1, 1, 1, 3, 0, dt, 0);
        test_conv(&cpu, &gpu, 2, 4, 9, 9, 6, 3, 3, 1, 1, 0, 0, dt, 1);
        // one image over the col scratch: tiles of positions (576 x 262144 elements)
        test_conv(&cpu, &gpu, 1, 64, 512, 512, 8, 3, 3, 1, 1, 1, 1, dt, 1);
    }
    test_conv(&cpu, &gpu, 2, 16, 12, 10, 24, 3, 3, 1, 1, 1, 1, DATO_BF16, 1);
    test_conv(&cpu, &gpu, 2, 16, 12, 10, 24, 1, 1, 1, 1, 0, 0, DATO_BF16, 1);

    test_attention(&cpu, &gpu, 2, 100, 100, 8, 40, 0);  // SD 1.x self-attention head, Nq % 32 != 0
    test_attention(&cpu, &gpu, 2, 100, 77, 8, 40, 0);   // cross-attention on 77 text tokens
    test_attention(&cpu, &gpu, 2, 64, 64, 5, 64, 0);
    test_attention(&cpu, &gpu, 1, 130, 77, 4, 80, 0);
    test_attention(&cpu, &gpu, 2, 70, 77, 2, 160, 0);   // over 48 KiB of shared memory
    test_attention(&cpu, &gpu, 2, 33, 33, 4, 8, 0);
    test_attention(&cpu, &gpu, 1, 45, 20, 3, 16, 0);
    test_attention(&cpu, &gpu, 1, 31, 31, 2, 2, 0);
    test_attention(&cpu, &gpu, 2, 77, 77, 12, 64, 1);   // CLIP text encoder
    test_attention(&cpu, &gpu, 1, 77, 77, 2, 160, 1);
    test_attention(&cpu, &gpu, 1, 40, 40, 3, 8, 1);
    test_attention(&cpu, &gpu, 1, 1024, 1024, 2, 40, 0); // many key tiles
    test_errors(&gpu);

    dato_backend_destroy(&gpu);
    dato_backend_destroy(&cpu);
    return test_summary();
}
