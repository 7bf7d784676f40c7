// Parity of the CUDA backend's tensor-core attention (engine/backends/cuda/cuda_attention_mma.cu, chosen by
// dato_backend_cuda_configure's .attention = F16 or BF16) with the CPU backend, on seeded random
// inputs at Stable Diffusion's head dims (40, 64, 80, 160) and shapes, cross-attention on 77
// text tokens, causal, and ragged sizes (head dims 2..160, sizes off the 64-query and 64-key
// tiles). Every GPU output starts poisoned with NaN, so an element the kernel misses fails.
//
// The reference is the CPU backend's f32 attention on q, k, v rounded through the dtype on the
// host: the kernel rounds them the same way before its MMAs, so the inputs agree exactly. What
// remains is the kernel's rounding of the probabilities p to the dtype before p v (as
// FlashAttention and SDPA do): a relative error of at most u/2 per probability, u = 2^-10 (F16)
// or 2^-7 (BF16), that averages out over the keys (out is a weighted mean of v). Tolerances,
// max|got - ref| / max|ref| as in test_cuda_gemm.c: 2e-3 for F16 and 1e-2 for BF16, a few u/2
// with room for the f32 summation order and exp2 of each side; the first GPU runs calibrate them.
// The f32 kernel, after switching back to F32, keeps test_cuda_gemm.c's 1e-5.
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
#define TOL_F16 2e-3
#define TOL_BF16 1e-2

// out (B, Nq, H*D) = attention(q (B, Nq, H*D), k, v (B, Nk, H*D)) with the GPU configured for
// attention in dt, against the CPU on q, k, v rounded through dt. Scale qk_scale / sqrt(D):
// qk_scale 1 is SD's, larger ones make the softmax peaked (the running max moves more).
static void test_attention(dato_backend* cpu, dato_backend* gpu, dato_dtype dt, int64_t batch, int64_t nq,
                           int64_t nk, int heads, int64_t d, int causal, float qk_scale) {
    int64_t q_shape[3] = {batch, nq, heads * d}, k_shape[3] = {batch, nk, heads * d};
    size_t n_q = (size_t)(batch * nq * heads * d), n_k = (size_t)(batch * nk * heads * d);
    float* q = rand_buf(n_q, 2.0f);
    float* k = rand_buf(n_k, 2.0f);
    float* v = rand_buf(n_k, 1.0f);
    float* got = malloc(n_q * sizeof(float));
    float scale = qk_scale / sqrtf((float)d);
    float* ref = cpu_attention_ref(cpu, q, k, v, dt, q_shape, k_shape, heads, scale, causal);
    CHECK(ref != NULL, "cpu attention reference");
    dato_error err = {{0}};

    dato_cuda_options opt = {.attention = dt};
    dato_status st = dato_backend_cuda_configure(gpu, &opt, &err);
    CHECK(st == DATO_OK, "configure attention %s: %s", dato_dtype_name(dt), err.msg);
    dato_tensor gq = dev_tensor(gpu, q, DATO_F32, 3, q_shape); // unrounded: the kernel rounds
    dato_tensor gk = dev_tensor(gpu, k, DATO_F32, 3, k_shape);
    dato_tensor gv = dev_tensor(gpu, v, DATO_F32, 3, k_shape);
    dato_tensor go = dev_poisoned(gpu, 3, q_shape);
    st = gpu->ops->attention(gpu, &go, &gq, &gk, &gv, heads, scale, causal, &err);
    CHECK(st == DATO_OK, "cuda attention %s: %s", dato_dtype_name(dt), err.msg);
    gpu->ops->download(gpu, got, go.data, n_q * sizeof(float));

    char what[160];
    snprintf(what, sizeof what, "attention %s B %lld Nq %lld Nk %lld H %d D %lld%s%s", dato_dtype_name(dt),
             (long long)batch, (long long)nq, (long long)nk, heads, (long long)d, causal ? " causal" : "",
             qk_scale != 1.0f ? " peaked" : "");
    double tol = dt == DATO_F16 ? TOL_F16 : dt == DATO_BF16 ? TOL_BF16 : TOL_F32;
    double rel = ref ? test_rel_err(got, ref, n_q) : 1e30;
    printf("%-66s max rel err %.3g (tol %.0e, max |ref| %.3g)\n", what, rel, tol, test_max_abs(ref, n_q));
    CHECK(rel <= tol, "%s: rel err %.3g over %.0e", what, rel, tol);

    opt.attention = DATO_F32;
    dato_backend_cuda_configure(gpu, &opt, &err);
    gpu->ops->free(gpu, gq.data), gpu->ops->free(gpu, gk.data), gpu->ops->free(gpu, gv.data);
    gpu->ops->free(gpu, go.data);
    free(q), free(k), free(v), free(ref), free(got);
}

// configure refuses an attention dtype other than F32, F16, BF16, naming the field.
static void test_configure_errors(dato_backend* gpu) {
    dato_error err = {{0}};
    dato_cuda_options opt = {.attention = DATO_I32};
    dato_status st = dato_backend_cuda_configure(gpu, &opt, &err);
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "attention"), "configure attention I32: %s", err.msg);
    memset(&err, 0, sizeof err);
    opt.attention = (dato_dtype)42;
    st = dato_backend_cuda_configure(gpu, &opt, &err);
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "attention"), "configure attention 42: %s", err.msg);
    printf("configure attention I32 / 42 refused: %s\n", err.msg);
}

int main(void) {
    dato_backend cpu, gpu;
    int start = gpu_test_start(&cpu, &gpu);
    if (start) return start;

    const dato_dtype dts[2] = {DATO_F16, DATO_BF16};
    for (int i = 0; i < 2; i++) {
        dato_dtype dt = dts[i];
        // SD 1.x self-attention at the four UNet levels of a 512x512 image (64x64 latent)
        test_attention(&cpu, &gpu, dt, 2, 4096, 4096, 8, 40, 0, 1.0f);
        test_attention(&cpu, &gpu, dt, 2, 1024, 1024, 8, 80, 0, 1.0f);
        test_attention(&cpu, &gpu, dt, 2, 256, 256, 8, 160, 0, 1.0f);
        test_attention(&cpu, &gpu, dt, 2, 1024, 1024, 10, 64, 0, 1.0f); // SD 2.x / SDXL heads
        // cross-attention on 77 text tokens
        test_attention(&cpu, &gpu, dt, 2, 4096, 77, 8, 40, 0, 1.0f);
        test_attention(&cpu, &gpu, dt, 2, 256, 77, 8, 160, 0, 1.0f);
        test_attention(&cpu, &gpu, dt, 1, 1024, 77, 10, 64, 0, 1.0f);
        // causal (CLIP text encoder), over two query tiles
        test_attention(&cpu, &gpu, dt, 2, 77, 77, 12, 64, 1, 1.0f);
        test_attention(&cpu, &gpu, dt, 1, 77, 77, 2, 160, 1, 1.0f);
        test_attention(&cpu, &gpu, dt, 1, 40, 40, 3, 8, 1, 1.0f);
        test_attention(&cpu, &gpu, dt, 1, 200, 200, 2, 40, 1, 1.0f); // several key tiles, skipped ones
        // ragged: head dims off 16, sizes off the tiles, batches 1..3
        test_attention(&cpu, &gpu, dt, 3, 100, 33, 3, 2, 0, 1.0f);
        test_attention(&cpu, &gpu, dt, 1, 100, 33, 2, 24, 0, 1.0f);
        test_attention(&cpu, &gpu, dt, 2, 100, 33, 4, 8, 0, 1.0f);
        test_attention(&cpu, &gpu, dt, 1, 1, 1, 1, 16, 0, 1.0f);
        test_attention(&cpu, &gpu, dt, 2, 65, 130, 2, 17, 0, 1.0f);  // scalar loads (D % 4 != 0)
        test_attention(&cpu, &gpu, dt, 1, 70, 100, 2, 96, 0, 1.0f);  // largest class, 6 of 10 chunks
        test_attention(&cpu, &gpu, dt, 1, 130, 77, 4, 130, 0, 1.0f);
        test_attention(&cpu, &gpu, dt, 3, 31, 31, 2, 48, 0, 1.0f);
        // peaked softmax: the running max changes across key tiles
        test_attention(&cpu, &gpu, dt, 1, 300, 300, 2, 64, 0, 8.0f);
        test_attention(&cpu, &gpu, dt, 1, 130, 130, 2, 160, 1, 8.0f);
    }
    // back to the f32 kernel
    test_attention(&cpu, &gpu, DATO_F32, 2, 100, 77, 8, 40, 0, 1.0f);
    test_configure_errors(&gpu);

    dato_backend_destroy(&gpu);
    dato_backend_destroy(&cpu);
    return test_summary();
}
