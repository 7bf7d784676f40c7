// The CUDA backend's conv2d in its three modes (dato_backend_cuda_configure: IM2COL, CUDNN, AUTO;
// engine/backends/cuda/cuda_gemm.cu, engine/backends/cuda/cuda_conv_cudnn.cu) against the CPU backend, on seeded random
// inputs in the shapes of SD's UNet and VAE, Inception's rectangular kernels and an odd size.
// Every GPU output starts poisoned with NaN, so an element a mode misses fails the test.
//
// Tolerances, all max|got - ref| / max|ref| (see test_cuda_gemm.c), the CPU run on the operands
// the GPU multiplies (the dequantized weights, the activations rounded to the weights' dtype):
//   F32 weights, every mode: 1e-5 (f32 on both sides, FMA math: never TF32);
//   F16/BF16 weights on im2col: 1e-3 (f32 accumulation and f32 output, as in test_cuda_gemm.c);
//   F16 weights on cuDNN: 2e-3; BF16 weights on cuDNN: 5e-3. cuDNN's half configurations write a
//   half output, one more rounding than im2col's f32 GEMM output: at most 2^-11 of |y| for F16,
//   2^-8 (3.9e-3) for BF16, so BF16 needs the wider bound.
// AUTO must give CUDNN's bits exactly where cuDNN runs (the same plan and algorithm), and fall
// back to im2col where cuDNN refuses (an image over the half scratch). No timings here: cuDNN
// against im2col (and PyTorch) is timed by bench/bench_gpu_ops.c.
// Exits 77 (skipped) without a GPU, or in a build without cuDNN.
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
#define TOL_HALF_IM2COL 1e-3
#define TOL_F16_CUDNN 2e-3
#define TOL_BF16_CUDNN 5e-3

// Fills the F32 device tensor t with NaN.
static void poison(dato_backend* gpu, dato_tensor* t) {
    size_t n = (size_t)dato_tensor_numel(t);
    float* nan = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) nan[i] = NAN;
    gpu->ops->upload(gpu, t->data, nan, n * sizeof(float));
    free(nan);
}

static dato_status set_conv(dato_backend* gpu, dato_cuda_conv mode, dato_error* err) {
    dato_cuda_options opt = {.attention = DATO_F32, .conv = mode};
    return dato_backend_cuda_configure(gpu, &opt, err);
}

static const char* mode_name(dato_cuda_conv m) {
    return m == DATO_CUDA_CONV_IM2COL ? "im2col" : m == DATO_CUDA_CONV_CUDNN ? "cudnn" : "auto";
}

static double tolerance(dato_cuda_conv m, dato_dtype dt) {
    if (dt == DATO_F32) return TOL_F32;
    if (m == DATO_CUDA_CONV_IM2COL) return TOL_HALF_IM2COL;
    return dt == DATO_F16 ? TOL_F16_CUDNN : TOL_BF16_CUDNN;
}

typedef struct {
    const char* name;
    int64_t batch, ci, h, w, co, kh, kw;
    int sh, sw, ph, pw, bias;
    int cudnn_refuses; // the CUDNN mode must return DATO_ERR_UNSUPPORTED (and AUTO fall back)
} conv_case;

// One case in dtype dt: the CPU reference, then each mode on the GPU against it.
static void run_case(dato_backend* cpu, dato_backend* gpu, const conv_case* c, dato_dtype dt) {
    int64_t ho = (c->h + 2 * c->ph - c->kh) / c->sh + 1, wo = (c->w + 2 * c->pw - c->kw) / c->sw + 1;
    int64_t x_shape[4] = {c->batch, c->ci, c->h, c->w}, w_shape[4] = {c->co, c->ci, c->kh, c->kw};
    int64_t o_shape[4] = {c->batch, c->co, ho, wo}, co = c->co;
    size_t nx = numel(4, x_shape), nw = numel(4, w_shape), no = numel(4, o_shape);
    float* x = rand_buf(nx, 1.0f);
    float* w = rand_buf(nw, 0.1f);
    float* b = c->bias ? rand_buf((size_t)co, 1.0f) : NULL;
    float* ref = cpu_conv2d_ref(cpu, x, w, b, dt, x_shape, w_shape, o_shape, c->sh, c->sw, c->ph, c->pw);
    CHECK(ref != NULL, "%s: cpu conv2d reference", c->name);
    dato_error err = {{0}};
    dato_status st;

    dato_tensor gx = dev_tensor(gpu, x, DATO_F32, 4, x_shape);
    dato_tensor gw = dev_tensor(gpu, w, dt, 4, w_shape);
    dato_tensor gb = c->bias ? dev_tensor(gpu, b, DATO_F32, 1, &co) : dato_tensor_f32_1d(NULL, co);
    dato_tensor go = dato_tensor_make(gpu->ops->alloc(gpu, no * sizeof(float)), DATO_F32, DATO_DEV_CUDA, 4, o_shape);
    CHECK(gx.data && gw.data && (!c->bias || gb.data) && go.data, "%s: device allocation failed", c->name);

    const dato_cuda_conv modes[3] = {DATO_CUDA_CONV_IM2COL, DATO_CUDA_CONV_CUDNN, DATO_CUDA_CONV_AUTO};
    float* cudnn_out = NULL;
    for (int m = 0; m < 3; m++) {
        CHECK(set_conv(gpu, modes[m], &err) == DATO_OK, "configure %s: %s", mode_name(modes[m]), err.msg);
        poison(gpu, &go);
        err.msg[0] = '\0';
        st = gpu->ops->conv2d(gpu, &go, &gx, &gw, c->bias ? &gb : NULL, c->sh, c->sw, c->ph, c->pw, &err);
        char what[200];
        snprintf(what, sizeof what, "%-6s %-4s %s", mode_name(modes[m]), dato_dtype_name(dt), c->name);
        if (modes[m] == DATO_CUDA_CONV_CUDNN && c->cudnn_refuses) {
            printf("%-58s refused as expected: %s\n", what, err.msg);
            CHECK(st == DATO_ERR_UNSUPPORTED, "%s: expected DATO_ERR_UNSUPPORTED, got %d (%s)", what, (int)st, err.msg);
            continue;
        }
        CHECK(st == DATO_OK, "%s: %s", what, err.msg);
        if (st != DATO_OK) continue;
        CHECK(modes[m] != DATO_CUDA_CONV_AUTO || err.msg[0] == '\0', "%s: AUTO left a message: %s", what, err.msg);
        float* got = to_host(gpu, &go);
        double rel = ref ? test_rel_err(got, ref, no) : 1e30, tol = tolerance(modes[m], dt);
        if (modes[m] == DATO_CUDA_CONV_AUTO && c->cudnn_refuses) tol = tolerance(DATO_CUDA_CONV_IM2COL, dt);
        printf("%-58s max rel err %.3g (tol %.0e, max |ref| %.3g)\n", what, rel, tol, ref ? test_max_abs(ref, no) : 0.0);
        CHECK(rel <= tol, "%s: rel err %.3g over %.0e", what, rel, tol);
        if (modes[m] == DATO_CUDA_CONV_CUDNN) {
            cudnn_out = got;
            got = NULL;
        } else if (modes[m] == DATO_CUDA_CONV_AUTO && cudnn_out) {
            CHECK(memcmp(got, cudnn_out, no * sizeof(float)) == 0, "%s: AUTO differs from CUDNN's bits", what);
        }
        free(got);
    }
    CHECK(set_conv(gpu, DATO_CUDA_CONV_AUTO, &err) == DATO_OK, "configure auto: %s", err.msg);

    gpu->ops->free(gpu, gx.data), gpu->ops->free(gpu, gw.data), gpu->ops->free(gpu, go.data);
    if (c->bias) gpu->ops->free(gpu, gb.data);
    free(x), free(w), free(b), free(ref), free(cudnn_out);
}

int main(int argc, char** argv) {
    (void)argc, (void)argv; // argv[1]: dato-generate's path, unused
    if (!dato_backend_cuda_has_cudnn()) {
        printf("this build has no cuDNN (engine/backends/cuda/CMakeLists.txt did not find it, or -DDATO_CUDNN=OFF): skipped\n");
        return 77;
    }
    dato_error err = {{0}};
    dato_backend cpu, gpu;
    int start = gpu_test_start(&cpu, &gpu);
    if (start) return start;
    char desc[256];
    if (dato_cuda_describe(0, desc, sizeof desc, &err) == DATO_OK) printf("device: %s\n", desc);

    CHECK(set_conv(&gpu, DATO_CUDA_CONV_CUDNN, &err) == DATO_OK, "configure cudnn: %s", err.msg);
    CHECK(set_conv(&gpu, (dato_cuda_conv)7, &err) == DATO_ERR_INVALID, "configure conv mode 7 accepted");
    CHECK(set_conv(&gpu, DATO_CUDA_CONV_AUTO, &err) == DATO_OK, "configure auto: %s", err.msg);

    const conv_case cases[] = {
        {"unet 3x3 320->320 B2 64x64", 2, 320, 64, 64, 320, 3, 3, 1, 1, 1, 1, 1, 0},
        {"unet 3x3 s2 320->320 B2 64x64 (downsample)", 2, 320, 64, 64, 320, 3, 3, 2, 2, 1, 1, 1, 0},
        {"unet 1x1 640->320 B2 32x32 (shortcut)", 2, 640, 32, 32, 320, 1, 1, 1, 1, 0, 0, 1, 0},
        {"unet conv_in 3x3 4->320 B2 64x64", 2, 4, 64, 64, 320, 3, 3, 1, 1, 1, 1, 1, 0},
        {"vae 3x3 128->128 B1 128x128", 1, 128, 128, 128, 128, 3, 3, 1, 1, 1, 1, 1, 0},
        {"inception 1x7 p(0,3) 128->192 B2 17x17", 2, 128, 17, 17, 192, 1, 7, 1, 1, 0, 3, 1, 0},
        {"inception 7x1 p(3,0) 128->192 B2 17x17 no bias", 2, 128, 17, 17, 192, 7, 1, 1, 1, 3, 0, 0, 0},
        {"odd 3x3 p1 3->8 B3 5x7", 3, 3, 5, 7, 8, 3, 3, 1, 1, 1, 1, 1, 0},
        {"odd 3x3 s2 p0 3->8 B3 5x7 no bias", 3, 3, 5, 7, 8, 3, 3, 2, 2, 0, 0, 0, 0},
        {"3x3 p1 32->16 B5 9x9 no bias", 5, 32, 9, 9, 16, 3, 3, 1, 1, 1, 1, 0, 0},
    };
    const dato_dtype dts[3] = {DATO_F32, DATO_F16, DATO_BF16};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int d = 0; d < 3; d++) run_case(&cpu, &gpu, &cases[i], dts[d]);

    // One image whose half x (256 x 512 x 512) and y do not fit the 128 MiB half scratch: CUDNN
    // refuses, AUTO runs it on im2col.
    const conv_case big = {"1x1 256->4 B1 512x512 (over the half scratch)", 1, 256, 512, 512, 4, 1, 1,
                           1, 1, 0, 0, 1, 1};
    run_case(&cpu, &gpu, &big, DATO_F16);

    dato_backend_destroy(&gpu);
    dato_backend_destroy(&cpu);
    return test_summary();
}
