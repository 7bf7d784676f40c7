// UNet forward on the CPU or the CUDA backend with seeded random weights in a real config's
// exact shapes (no weight file needed), Linear/Conv weights in f32 or (CUDA) f16/bf16. Prints
// one JSON line, the same fields as bench/unet_torch.py, so bench/unet_cpu.sh and scripts/gpu-kit
// can put both side by side.
//
//   bench_unet --config tests/fixtures/manifests/sd15_config.json --latent 64 --batch 2 --iters 1
//   bench_unet --config tests/fixtures/manifests/sd15_config.json --latent 64 --batch 8 --backend cuda
//   bench_unet --config tests/fixtures/manifests/sd15_config.json --latent 64 --batch 8 --backend cuda --dtype f16
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bench_backend.h"
#include "bench_util.h"
#include "rng.h"
#include "unet.h"
#include "weight_dtype.h"

// ---- --profile: the backend's ops wrapped with timers ------------------------------------------------
// Each timed op is bracketed by synchronize, so a device backend's asynchronous ops are timed too
// (at the cost of the overlap a plain run has).

enum { P_CONV3, P_NORM_CONV3, P_CONV1, P_LINEAR, P_GEGLU_LINEAR, P_ATTN, P_NORM, P_GEGLU, P_OTHER, P_N };
static const char* const PROFILE_NAMES[P_N] = {"conv2d 3x3", "norm + conv2d 3x3", "conv2d 1x1", "linear",
                                               "geglu + linear", "attention", "group/layer norm", "geglu", "other"};

typedef struct {
    dato_backend be;               // first member: the ops receive &timed->be
    const dato_backend_ops* inner; // the wrapped backend's ops
    dato_backend_ops ops;
    double seconds[P_N], flops[P_N];
} timed_backend;

#define TIMED(kind, flop, call)                          \
    timed_backend* tb = (timed_backend*)be;             \
    tb->inner->synchronize(be);                          \
    double t0 = dato_clock_s();                          \
    dato_status st = tb->inner->call;                    \
    tb->inner->synchronize(be);                          \
    tb->seconds[kind] += dato_clock_s() - t0;            \
    tb->flops[kind] += (flop);                           \
    return st

static dato_status t_conv2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                            const dato_tensor* b, int stride_h, int stride_w, int pad_h, int pad_w, dato_error* err) {
    double f = 2.0 * (double)dato_tensor_numel(out) * (double)(w->shape[1] * w->shape[2] * w->shape[3]);
    TIMED(w->shape[2] == 1 ? P_CONV1 : P_CONV3, f, conv2d(be, out, x, w, b, stride_h, stride_w, pad_h, pad_w, err));
}
static dato_status t_group_norm_conv2d(dato_backend* be, dato_tensor* out, const dato_tensor* x,
                                       const dato_tensor* gamma, const dato_tensor* beta, int groups, float eps,
                                       int silu, const dato_tensor* w, const dato_tensor* b, int stride_h, int stride_w,
                                       int pad_h, int pad_w, dato_error* err) {
    double f = 2.0 * (double)dato_tensor_numel(out) * (double)(w->shape[1] * w->shape[2] * w->shape[3]);
    TIMED(w->shape[2] == 1 ? P_CONV1 : P_NORM_CONV3, f,
          group_norm_conv2d(be, out, x, gamma, beta, groups, eps, silu, w, b, stride_h, stride_w, pad_h, pad_w, err));
}
static dato_status t_linear(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                            const dato_tensor* b, dato_error* err) {
    double f = 2.0 * (double)dato_tensor_numel(out) * (double)w->shape[1];
    TIMED(P_LINEAR, f, linear(be, out, x, w, b, err));
}
static dato_status t_geglu_linear(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                                  const dato_tensor* b, dato_error* err) {
    double f = 2.0 * (double)dato_tensor_numel(out) * (double)w->shape[1];
    TIMED(P_GEGLU_LINEAR, f, geglu_linear(be, out, x, w, b, err));
}
static dato_status t_attention(dato_backend* be, dato_tensor* out, const dato_tensor* q, const dato_tensor* k,
                               const dato_tensor* v, int heads, float scale, int causal, dato_error* err) {
    double f = 4.0 * (double)q->shape[0] * (double)q->shape[1] * (double)k->shape[1] * (double)q->shape[2];
    TIMED(P_ATTN, f, attention(be, out, q, k, v, heads, scale, causal, err));
}
static dato_status t_group_norm(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* g,
                                const dato_tensor* b, int groups, float eps, int silu, dato_error* err) {
    TIMED(P_NORM, 0, group_norm(be, out, x, g, b, groups, eps, silu, err));
}
static dato_status t_layer_norm(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* g,
                                const dato_tensor* b, float eps, dato_error* err) {
    TIMED(P_NORM, 0, layer_norm(be, out, x, g, b, eps, err));
}
static dato_status t_geglu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    TIMED(P_GEGLU, 0, geglu(be, out, x, err));
}
static dato_status t_add(dato_backend* be, dato_tensor* out, const dato_tensor* a, const dato_tensor* b,
                         dato_error* err) {
    TIMED(P_OTHER, 0, add(be, out, a, b, err));
}
static dato_status t_concat(dato_backend* be, dato_tensor* out, const dato_tensor* a, const dato_tensor* b,
                            dato_error* err) {
    TIMED(P_OTHER, 0, concat_channels(be, out, a, b, err));
}
static dato_status t_to_tokens(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    TIMED(P_OTHER, 0, nchw_to_tokens(be, out, x, err));
}
static dato_status t_to_nchw(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    TIMED(P_OTHER, 0, tokens_to_nchw(be, out, x, err));
}
static dato_status t_upsample(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    TIMED(P_OTHER, 0, upsample_nearest2x(be, out, x, err));
}

// A backend whose heavy ops time themselves around the wrapped backend's.
static void timed_backend_wrap(timed_backend* tb, const dato_backend* inner) {
    memset(tb, 0, sizeof *tb);
    tb->be = *inner;
    tb->inner = inner->ops;
    tb->ops = *inner->ops;
    tb->ops.conv2d = t_conv2d;
    tb->ops.group_norm_conv2d = inner->ops->group_norm_conv2d ? t_group_norm_conv2d : NULL; // optional, as below
    tb->ops.linear = t_linear;
    tb->ops.geglu_linear = inner->ops->geglu_linear ? t_geglu_linear : NULL; // optional: the caller's fallback
    tb->ops.attention = t_attention;
    tb->ops.group_norm = t_group_norm;
    tb->ops.layer_norm = t_layer_norm;
    tb->ops.geglu = t_geglu;
    tb->ops.add = t_add;
    tb->ops.concat_channels = t_concat;
    tb->ops.nchw_to_tokens = t_to_tokens;
    tb->ops.tokens_to_nchw = t_to_nchw;
    tb->ops.upsample_nearest2x = t_upsample;
    tb->be.ops = &tb->ops;
}

static void print_profile(const timed_backend* tb, int forwards, double total_ms) {
    fprintf(stderr, "%-18s %10s %8s %10s\n", "op", "ms/forward", "share", "GFLOP/s");
    for (int k = 0; k < P_N; k++) {
        double ms = tb->seconds[k] * 1e3 / forwards;
        fprintf(stderr, "%-18s %10.1f %7.1f%% %10.1f\n", PROFILE_NAMES[k], ms, 100.0 * ms / total_ms,
                tb->flops[k] > 0 ? tb->flops[k] / tb->seconds[k] / 1e9 : 0.0);
    }
}

static void usage(void) {
    printf("usage: bench_unet --config PATH [--latent N] [--batch B] [--seq S] [--threads T] [--iters K] "
           "[--warmup W] [--backend cpu|cuda] [--device N] [--dtype f32|f16|bf16] [--conv auto|im2col|cudnn]\n"
           "  [--profile]\n"
           "  Times dato_unet_forward on the CPU (default) or CUDA backend with seeded random weights in the\n"
           "  config's shapes; --dtype stores the Linear/Conv weights as f32 (default) or, on CUDA, f16/bf16;\n"
           "  --conv: how CUDA runs conv2d (auto: cuDNN where it can, else im2col + cuBLAS).\n"
           "  Prints one JSON line: impl, backend, dtype, config, latent, batch, threads,\n"
           "  ms_per_forward_median, ms_min, weights_mb, workspace_mb, peak_rss_mb.\n"
           "  --profile also prints time per op kind to stderr.\n");
}

int main(int argc, char** argv) {
    const char *config = NULL, *backend = "cpu", *dtype_name = "f32", *conv = NULL;
    int latent = 32, batch = 2, seq = 77, threads = 0, iters = 3, warmup = 1, profile = 0, device = 0;
    const bench_opt opts[] = {
        {"--config", .str_value = &config},
        {"--latent", .int_value = &latent},
        {"--batch", .int_value = &batch},
        {"--seq", .int_value = &seq},
        {"--threads", .int_value = &threads},
        {"--iters", .int_value = &iters},
        {"--warmup", .int_value = &warmup},
        {"--profile", .flag = &profile},
        {"--backend", .str_value = &backend},
        {"--device", .int_value = &device},
        {"--dtype", .str_value = &dtype_name},
        {"--conv", .str_value = &conv},
    };
    int pr = bench_parse(argc, argv, "bench_unet", opts, (int)(sizeof opts / sizeof opts[0]), usage);
    if (pr) return pr == 1 ? 0 : 2;
    if (!config || latent < 1 || batch < 1 || seq < 1 || iters < 1 || iters > 1000 || warmup < 0) {
        usage();
        return 2;
    }

    dato_error err;
    dato_dtype dtype;
    if (dato_weight_dtype_parse(dtype_name, &dtype, &err)) {
        fprintf(stderr, "bench_unet: --dtype: %s\n", err.msg);
        return 2;
    }
    dato_backend base;
    timed_backend tb;
    dato_unet_config cfg;
    dato_unet u;
    dato_unet_ws ws;
    dato_backend_spec spec = {.name = backend, .threads = threads, .device = device, .attention = dtype, .conv = conv};
    if (!bench_backend_init(&base, &spec, "bench_unet")) return 1;
    timed_backend_wrap(&tb, &base);
    dato_backend* be = profile ? &tb.be : &base;
    if (dato_unet_config_from_json(&cfg, config, &err) || dato_unet_build(&u, &cfg, be, &err) ||
        dato_unet_set_weight_dtype(&u, dtype, &err) || dato_unet_init_random(&u, 1234, 0.02f, &err) ||
        dato_unet_ws_create(&ws, &u, batch, latent, latent, seq, 0, &err)) {
        fprintf(stderr, "bench_unet: %s\n", err.msg);
        return 1;
    }
    size_t nx = (size_t)batch * cfg.in_channels * latent * latent, nc = (size_t)batch * seq * cfg.cross_attention_dim;
    int P = cfg.add_embed_in ? cfg.add_embed_in - 6 * cfg.addition_time_embed_dim : 0;
    size_t ny = (size_t)batch * cfg.out_channels * latent * latent, nte = (size_t)batch * (P ? P : 1);
    float* x = malloc(nx * sizeof *x);     // (B, C, H, W)
    float* y = malloc(ny * sizeof *y);     // (B, Co, H, W)
    float* ctx = malloc(nc * sizeof *ctx); // (B, S, X)
    float* te = malloc(nte * sizeof *te);  // (B, P)
    float* ids = malloc((size_t)batch * 6 * sizeof *ids);
    float* t = malloc((size_t)batch * sizeof *t);
    dato_rng rng;
    dato_rng_seed(&rng, 7);
    dato_rng_fill_normal(&rng, x, nx);
    dato_rng_fill_normal(&rng, ctx, nc);
    dato_rng_fill_normal(&rng, te, nte);
    for (int i = 0; i < batch; i++) t[i] = 500.0f;
    for (int i = 0; i < batch * 6; i++) ids[i] = i % 6 < 4 ? 1024.0f : 0.0f;
    // The inputs and the output on the backend's device (copies there; plain buffers on the CPU).
    dato_tensor hx = dato_tensor_f32_4d(x, batch, cfg.in_channels, latent, latent);
    dato_tensor hy = dato_tensor_f32_4d(y, batch, cfg.out_channels, latent, latent);
    dato_tensor hc = dato_tensor_f32_3d(ctx, batch, seq, cfg.cross_attention_dim);
    dato_tensor ht = dato_tensor_f32_2d(te, batch, P ? P : 1); // (B, 1) unused placeholder without P
    dato_tensor hts = dato_tensor_f32_1d(t, batch), hids = dato_tensor_f32_2d(ids, batch, 6);
    dato_tensor tx = bench_to_device(be, &hx), ty = bench_to_device(be, &hy), tc = bench_to_device(be, &hc);
    dato_tensor tt = bench_to_device(be, &ht), tts = bench_to_device(be, &hts), tids = bench_to_device(be, &hids);
    if (!tx.data || !ty.data || !tc.data || !tt.data || !tts.data || !tids.data) {
        fprintf(stderr, "bench_unet: cannot allocate the inputs on the %s backend\n", be->name);
        return 1;
    }
    dato_net_inputs in = {.sample = &tx, .timesteps = &tts, .context = &tc, .text_embeds = P ? &tt : NULL,
                           .time_ids = P ? &tids : NULL};
    dato_net_plan plan = dato_unet_plan_full(&u);

    double* ms = malloc((size_t)iters * sizeof *ms);
    for (int i = 0; i < warmup + iters; i++) {
        if (i == warmup) { // the profile counts the timed forwards only
            memset(tb.seconds, 0, sizeof tb.seconds);
            memset(tb.flops, 0, sizeof tb.flops);
        }
        double t0 = dato_clock_s();
        if (dato_unet_forward(&u, &ws, &plan, &in, &ty, &err)) {
            fprintf(stderr, "bench_unet: %s\n", err.msg);
            return 1;
        }
        be->ops->synchronize(be);
        double dt = (dato_clock_s() - t0) * 1e3;
        if (i >= warmup) ms[i - warmup] = dt;
        fprintf(stderr, "bench_unet: forward %d/%d: %.1f ms\n", i + 1, warmup + iters, dt);
    }
    if (profile) {
        double total = 0;
        for (int i = 0; i < iters; i++) total += ms[i];
        print_profile(&tb, iters, total / iters);
    }
    be->ops->download(be, y, ty.data, dato_tensor_nbytes(&hy));
    for (size_t i = 0; i < ny; i++) { // a NaN or Inf output means a broken forward was timed
        if (!isfinite(y[i])) {
            fprintf(stderr, "bench_unet: output element %zu is not finite\n", i);
            return 1;
        }
    }
    qsort(ms, (size_t)iters, sizeof *ms, cmp_double);
    size_t weight_bytes = 0; // as stored: half GEMM weights take 2 bytes
    for (int i = 0; i < u.n_params; i++) weight_bytes += dato_tensor_nbytes(u.params[i].slot);
    printf("{\"impl\":\"dato\",\"backend\":\"%s\",\"dtype\":\"%s\",\"config\":\"%s\",\"latent\":%d,\"batch\":%d,"
           "\"seq\":%d,\"threads\":%d,"
           "\"ms_per_forward_median\":%.2f,\"ms_min\":%.2f,\"weights_mb\":%.1f,\"workspace_mb\":%.1f,"
           "\"peak_rss_mb\":%.1f}\n",
           be->name, dato_weight_dtype_flag(dtype), config, latent, batch, seq, threads, ms[iters / 2], ms[0],
           (double)weight_bytes / 1048576.0,
           (double)ws.arena.cap / 1048576.0, peak_rss_mb());
    free(ms);
    free(x);
    free(y);
    free(ctx);
    free(te);
    free(ids);
    free(t);
    be->ops->free(be, tx.data);
    be->ops->free(be, ty.data);
    be->ops->free(be, tc.data);
    be->ops->free(be, tt.data);
    be->ops->free(be, tts.data);
    be->ops->free(be, tids.data);
    dato_unet_ws_free(&ws, &u);
    dato_unet_free(&u);
    dato_backend_destroy(&base);
    return 0;
}
