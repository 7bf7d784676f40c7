// Single GPU ops on the CUDA backend, at Stable Diffusion 1.5 shapes: attention (the f32 kernel and
// the tensor-core F16/BF16 kernels, dato_backend_cuda_configure's .attention) and conv2d (f32 and
// f16 weights, each through im2col + cuBLAS and through cuDNN). One JSON line per row, the same
// fields as bench/gpu_ops_torch.py prints for PyTorch, so the GPU kit (scripts/gpu-kit) puts both side by side:
//   {"impl":"dato","op":"attention"|"conv2d","case":"...","dtype":"f32|f16|bf16","mode":"im2col|cudnn|-",
//    "ms":...,"tflops":...}
// ms is the median of --iters calls after --warmup, each bracketed by synchronize (the ops are
// asynchronous); tflops counts 4*B*H*Nq*Nk*D for attention and 2*|out|*Ci*kh*kw for conv2d.
// The correctness of these kernels is tests/gpu/test_cuda_attention_mma.c's and
// test_cuda_conv_cudnn.c's; here a non-finite output only fails the row.
//
//   bench_gpu_ops --iters 20 --warmup 3
//   bench_gpu_ops --batch 8 --device 1
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bench_backend.h"
#include "bench_util.h"
#include "rng.h"
#include "tensor.h"

static void usage(void) {
    printf("usage: bench_gpu_ops [--iters K] [--warmup W] [--device N] [--batch B]\n"
           "  Times single ops on the CUDA backend at SD1.5 shapes (median of K calls after W warm-up\n"
           "  calls, each between two synchronizes; defaults K 20, W 3, B 2):\n"
           "    attention, f32 / f16 / bf16 kernels: self-attention over 4096 tokens (8 heads x 40),\n"
           "      1024 (8 x 80), 256 (8 x 160), cross-attention 4096 x 77 (8 x 40), batch B;\n"
           "    conv2d, f32 / f16 weights, im2col and cudnn: UNet 3x3 320->320 64x64, 640->640 32x32,\n"
           "      1280->1280 16x16, 1x1 640->320 32x32, 3x3 stride 2 320->320 64x64 (batch B), VAE 3x3\n"
           "      128->128 512x512 and 256->256 256x256 (batch 1).\n"
           "  Prints one JSON line per row: impl, op, case, dtype, mode, ms, tflops (the same fields as\n"
           "  bench/gpu_ops_torch.py). cudnn rows are skipped, with a note on stderr, in a build without\n"
           "  cuDNN or where cuDNN refuses the shape. Needs a build with -DDATO_CUDA=ON and a GPU.\n");
}

#ifdef DATO_HAVE_CUDA

typedef struct {
    int iters, warmup;
    double* ms; // iters samples
    int failed; // some row failed (its error printed)
} bench_ctx;

// One random F32 device tensor (standard normal, seeded), or data NULL when allocation fails.
static dato_tensor dev_random(dato_backend* be, dato_rng* rng, float scale, dato_dtype dt, int ndim,
                              const int64_t* shape) {
    dato_tensor t = dato_tensor_make(NULL, dt, DATO_DEV_CUDA, ndim, shape);
    size_t n = (size_t)dato_tensor_numel(&t), bytes = dato_tensor_nbytes(&t);
    float* h = malloc(n * sizeof(float));
    dato_rng_fill_normal(rng, h, n);
    for (size_t i = 0; i < n; i++) h[i] *= scale;
    t.data = be->ops->alloc(be, bytes);
    if (t.data && dt == DATO_F32) {
        be->ops->upload(be, t.data, h, bytes);
    } else if (t.data) { // half weights: converted on the host, as the weight loader stores them
        uint16_t* hh = malloc(bytes);
        for (size_t i = 0; i < n; i++) hh[i] = dt == DATO_F16 ? dato_f32_to_f16(h[i]) : dato_f32_to_bf16(h[i]);
        be->ops->upload(be, t.data, hh, bytes);
        free(hh);
    }
    free(h);
    return t;
}

static dato_tensor dev_empty(dato_backend* be, int ndim, const int64_t* shape) {
    dato_tensor t = dato_tensor_make(NULL, DATO_F32, DATO_DEV_CUDA, ndim, shape);
    t.data = be->ops->alloc(be, dato_tensor_nbytes(&t));
    return t;
}

// Whether the F32 device tensor t holds only finite values.
static int all_finite(dato_backend* be, const dato_tensor* t) {
    size_t n = (size_t)dato_tensor_numel(t);
    float* h = malloc(n * sizeof(float));
    be->ops->download(be, h, t->data, n * sizeof(float));
    size_t i = 0;
    while (i < n && isfinite(h[i])) i++;
    free(h);
    return i == n;
}

static void emit(const char* op, const char* name, const char* dtype, const char* mode, double ms, double flop) {
    printf("{\"impl\":\"dato\",\"op\":\"%s\",\"case\":\"%s\",\"dtype\":\"%s\",\"mode\":\"%s\",\"ms\":%.4f,"
           "\"tflops\":%.2f}\n",
           op, name, dtype, mode, ms, flop / (ms * 1e-3) * 1e-12);
    fflush(stdout);
}

// ---- attention -------------------------------------------------------------------------------------

typedef struct {
    const char* kind; // "self" or "cross"
    int64_t nq, nk;
    int heads;
    int64_t d;
} attn_case;

static void bench_attention(dato_backend* be, bench_ctx* cx, dato_rng* rng, const attn_case* c, int batch) {
    char name[96];
    if (!strcmp(c->kind, "self"))
        snprintf(name, sizeof name, "self %lld h%dx%lld B%d", (long long)c->nq, c->heads, (long long)c->d, batch);
    else
        snprintf(name, sizeof name, "cross %lldx%lld h%dx%lld B%d", (long long)c->nq, (long long)c->nk, c->heads,
                 (long long)c->d, batch);
    int64_t qs[3] = {batch, c->nq, c->heads * c->d}, ks[3] = {batch, c->nk, c->heads * c->d};
    dato_tensor q = dev_random(be, rng, 1.0f, DATO_F32, 3, qs), k = dev_random(be, rng, 1.0f, DATO_F32, 3, ks);
    dato_tensor v = dev_random(be, rng, 1.0f, DATO_F32, 3, ks), o = dev_empty(be, 3, qs);
    float scale = 1.0f / sqrtf((float)c->d);
    double flop = 4.0 * batch * c->heads * (double)c->nq * (double)c->nk * (double)c->d;
    if (!q.data || !k.data || !v.data || !o.data) {
        fprintf(stderr, "bench_gpu_ops: attention %s: cannot allocate the tensors\n", name);
        cx->failed = 1;
    } else {
        static const dato_dtype dts[3] = {DATO_F32, DATO_F16, DATO_BF16};
        static const char* const dt_names[3] = {"f32", "f16", "bf16"};
        for (int t = 0; t < 3; t++) {
            dato_error err = {{0}};
            dato_cuda_options opt = {.attention = dts[t], .conv = DATO_CUDA_CONV_AUTO};
            dato_status st = dato_backend_cuda_configure(be, &opt, &err);
            for (int i = 0; st == DATO_OK && i < cx->warmup + cx->iters; i++) {
                be->ops->synchronize(be);
                double t0 = dato_clock_s();
                st = be->ops->attention(be, &o, &q, &k, &v, c->heads, scale, 0, &err);
                be->ops->synchronize(be);
                if (i >= cx->warmup) cx->ms[i - cx->warmup] = (dato_clock_s() - t0) * 1e3;
            }
            if (st == DATO_OK && !all_finite(be, &o)) {
                st = DATO_ERR_INVALID;
                snprintf(err.msg, sizeof err.msg, "output not finite");
            }
            if (st != DATO_OK) {
                fprintf(stderr, "bench_gpu_ops: attention %s %s: %s\n", name, dt_names[t], err.msg);
                cx->failed = 1;
                continue;
            }
            qsort(cx->ms, (size_t)cx->iters, sizeof *cx->ms, cmp_double);
            emit("attention", name, dt_names[t], "-", cx->ms[cx->iters / 2], flop);
        }
    }
    be->ops->free(be, q.data), be->ops->free(be, k.data), be->ops->free(be, v.data), be->ops->free(be, o.data);
}

// ---- conv2d ----------------------------------------------------------------------------------------

typedef struct {
    const char* name; // without the batch
    int vae;          // batch 1 (the VAE decodes one image), else --batch
    int64_t ci, h, w, co, k;
    int stride, pad;
} conv_case;

static void bench_conv(dato_backend* be, bench_ctx* cx, dato_rng* rng, const conv_case* c, int batch) {
    int64_t b = c->vae ? 1 : batch;
    char name[96];
    snprintf(name, sizeof name, "%s B%lld", c->name, (long long)b);
    int64_t ho = (c->h + 2 * c->pad - c->k) / c->stride + 1, wo = (c->w + 2 * c->pad - c->k) / c->stride + 1;
    int64_t xs[4] = {b, c->ci, c->h, c->w}, ws[4] = {c->co, c->ci, c->k, c->k}, os[4] = {b, c->co, ho, wo};
    int64_t bs[1] = {c->co};
    dato_tensor x = dev_random(be, rng, 1.0f, DATO_F32, 4, xs), bias = dev_random(be, rng, 1.0f, DATO_F32, 1, bs);
    dato_tensor o = dev_empty(be, 4, os);
    double flop = 2.0 * (double)dato_tensor_numel(&o) * (double)(c->ci * c->k * c->k);
    float wscale = 1.0f / sqrtf((float)(c->ci * c->k * c->k));
    static const dato_dtype dts[2] = {DATO_F32, DATO_F16};
    static const char* const dt_names[2] = {"f32", "f16"};
    static const dato_cuda_conv modes[2] = {DATO_CUDA_CONV_IM2COL, DATO_CUDA_CONV_CUDNN};
    static const char* const mode_names[2] = {"im2col", "cudnn"};
    for (int t = 0; t < 2 && x.data && bias.data && o.data; t++) {
        dato_tensor w = dev_random(be, rng, wscale, dts[t], 4, ws);
        if (!w.data) {
            fprintf(stderr, "bench_gpu_ops: conv2d %s %s: cannot allocate the weights\n", name, dt_names[t]);
            cx->failed = 1;
            continue;
        }
        for (int m = 0; m < 2; m++) {
            if (modes[m] == DATO_CUDA_CONV_CUDNN && !dato_backend_cuda_has_cudnn()) continue; // noted once in main
            dato_error err = {{0}};
            dato_cuda_options opt = {.attention = DATO_F32, .conv = modes[m]};
            dato_status st = dato_backend_cuda_configure(be, &opt, &err);
            for (int i = 0; st == DATO_OK && i < cx->warmup + cx->iters; i++) {
                be->ops->synchronize(be);
                double t0 = dato_clock_s();
                st = be->ops->conv2d(be, &o, &x, &w, &bias, c->stride, c->stride, c->pad, c->pad, &err);
                be->ops->synchronize(be);
                if (i >= cx->warmup) cx->ms[i - cx->warmup] = (dato_clock_s() - t0) * 1e3;
            }
            if (st == DATO_ERR_UNSUPPORTED && modes[m] == DATO_CUDA_CONV_CUDNN) {
                fprintf(stderr, "bench_gpu_ops: conv2d %s %s cudnn: skipped, cuDNN refuses it: %s\n", name,
                        dt_names[t], err.msg);
                continue;
            }
            if (st == DATO_OK && !all_finite(be, &o)) {
                st = DATO_ERR_INVALID;
                snprintf(err.msg, sizeof err.msg, "output not finite");
            }
            if (st != DATO_OK) {
                fprintf(stderr, "bench_gpu_ops: conv2d %s %s %s: %s\n", name, dt_names[t], mode_names[m], err.msg);
                cx->failed = 1;
                continue;
            }
            qsort(cx->ms, (size_t)cx->iters, sizeof *cx->ms, cmp_double);
            emit("conv2d", name, dt_names[t], mode_names[m], cx->ms[cx->iters / 2], flop);
        }
        be->ops->free(be, w.data);
    }
    if (!x.data || !bias.data || !o.data) {
        fprintf(stderr, "bench_gpu_ops: conv2d %s: cannot allocate the tensors\n", name);
        cx->failed = 1;
    }
    be->ops->free(be, x.data), be->ops->free(be, bias.data), be->ops->free(be, o.data);
}

static int run_all(dato_backend* be, int iters, int warmup, int batch) {
    bench_ctx cx = {.iters = iters, .warmup = warmup, .ms = malloc((size_t)iters * sizeof(double))};
    dato_rng rng;
    dato_rng_seed(&rng, 1234);

    const attn_case attn[] = {
        {"self", 4096, 4096, 8, 40}, // SD1.5 UNet levels of a 64x64 latent (512x512 image)
        {"self", 1024, 1024, 8, 80},
        {"self", 256, 256, 8, 160},
        {"cross", 4096, 77, 8, 40}, // on the 77 text tokens
    };
    for (size_t i = 0; i < sizeof attn / sizeof attn[0]; i++) bench_attention(be, &cx, &rng, &attn[i], batch);

    if (!dato_backend_cuda_has_cudnn())
        fprintf(stderr, "bench_gpu_ops: this build has no cuDNN: conv2d cudnn rows skipped\n");
    const conv_case conv[] = {
        {"unet 3x3 320->320 64x64", 0, 320, 64, 64, 320, 3, 1, 1},
        {"unet 3x3 640->640 32x32", 0, 640, 32, 32, 640, 3, 1, 1},
        {"unet 3x3 1280->1280 16x16", 0, 1280, 16, 16, 1280, 3, 1, 1},
        {"unet 1x1 640->320 32x32", 0, 640, 32, 32, 320, 1, 1, 0},
        {"unet 3x3 s2 320->320 64x64", 0, 320, 64, 64, 320, 3, 2, 1},
        {"vae 3x3 128->128 512x512", 1, 128, 512, 512, 128, 3, 1, 1},
        {"vae 3x3 256->256 256x256", 1, 256, 256, 256, 256, 3, 1, 1},
    };
    for (size_t i = 0; i < sizeof conv / sizeof conv[0]; i++) bench_conv(be, &cx, &rng, &conv[i], batch);
    free(cx.ms);
    return cx.failed;
}

#endif

int main(int argc, char** argv) {
    int iters = 20, warmup = 3, device = 0, batch = 2;
    const bench_opt opts[] = {
        {"--iters", .int_value = &iters},
        {"--warmup", .int_value = &warmup},
        {"--device", .int_value = &device},
        {"--batch", .int_value = &batch},
    };
    int pr = bench_parse(argc, argv, "bench_gpu_ops", opts, (int)(sizeof opts / sizeof opts[0]), usage);
    if (pr) return pr == 1 ? 0 : 2;
    if (iters < 1 || iters > 10000 || warmup < 0 || batch < 1 || device < 0) {
        usage();
        return 2;
    }
#ifdef DATO_HAVE_CUDA
    dato_backend be;
    dato_backend_spec spec = {.name = "cuda", .device = device};
    if (!bench_backend_init(&be, &spec, "bench_gpu_ops")) return 1; // no GPU: says why
    int failed = run_all(&be, iters, warmup, batch);
    dato_backend_destroy(&be);
    return failed ? 1 : 0;
#else
    fprintf(stderr, "bench_gpu_ops: this build has no CUDA backend (rebuild with -DDATO_CUDA=ON)\n");
    return 1;
#endif
}
