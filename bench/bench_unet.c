// UNet forward on the CPU backend with seeded random weights in a real config's exact shapes
// (no weight file needed). Prints one JSON line, the same fields as bench/unet_torch.py, so
// bench/unet_cpu.sh can put both side by side.
//
//   bench_unet --config tests/fixtures/manifests/sd15_config.json --latent 64 --batch 2 --iters 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "backend.h"
#include "rng.h"
#include "unet.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

static void usage(void) {
    printf("usage: bench_unet --config PATH [--latent N] [--batch B] [--seq S] [--threads T] [--iters K] "
           "[--warmup W]\n"
           "  Times dato_unet_forward on the CPU backend with seeded random weights in the config's shapes.\n"
           "  Prints one JSON line: impl, config, latent, batch, threads, ms_per_forward_median, ms_min,\n"
           "  weights_mb, workspace_mb, peak_rss_mb.\n");
}

int main(int argc, char** argv) {
    const char* config = NULL;
    int latent = 32, batch = 2, seq = 77, threads = 0, iters = 3, warmup = 1;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        const char* v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        }
        if (!v) {
            fprintf(stderr, "bench_unet: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--config")) config = v;
        else if (!strcmp(a, "--latent")) latent = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--seq")) seq = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--iters")) iters = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else {
            fprintf(stderr, "bench_unet: unknown option %s (try --help)\n", a);
            return 2;
        }
        i++;
    }
    if (!config || latent < 1 || batch < 1 || seq < 1 || iters < 1 || iters > 1000 || warmup < 0) {
        usage();
        return 2;
    }

    dato_error err;
    dato_backend be;
    dato_unet_config cfg;
    dato_unet u;
    dato_unet_ws ws;
    if (dato_backend_cpu_init(&be, threads, &err) || dato_unet_config_from_json(&cfg, config, &err) ||
        dato_unet_build(&u, &cfg, &be, &err) || dato_unet_init_random(&u, 1234, 0.02f, &err) ||
        dato_unet_ws_create(&ws, &u, batch, latent, latent, seq, 0, &err)) {
        fprintf(stderr, "bench_unet: %s\n", err.msg);
        return 1;
    }
    size_t nx = (size_t)batch * cfg.in_channels * latent * latent, nc = (size_t)batch * seq * cfg.cross_attention_dim;
    int P = cfg.add_embed_in ? cfg.add_embed_in - 6 * cfg.addition_time_embed_dim : 0;
    float* x = malloc(nx * sizeof *x);     // (B, C, H, W)
    float* y = malloc(nx * sizeof *y);     // (B, C, H, W)
    float* ctx = malloc(nc * sizeof *ctx); // (B, S, X)
    float* te = malloc(((size_t)batch * P + 1) * sizeof *te);
    float* ids = malloc((size_t)batch * 6 * sizeof *ids);
    float* t = malloc((size_t)batch * sizeof *t);
    dato_rng rng;
    dato_rng_seed(&rng, 7);
    dato_rng_fill_normal(&rng, x, nx);
    dato_rng_fill_normal(&rng, ctx, nc);
    dato_rng_fill_normal(&rng, te, (size_t)batch * P + 1);
    for (int i = 0; i < batch; i++) t[i] = 500.0f;
    for (int i = 0; i < batch * 6; i++) ids[i] = i % 6 < 4 ? 1024.0f : 0.0f;
    dato_tensor tx = dato_tensor_f32_4d(x, batch, cfg.in_channels, latent, latent);
    dato_tensor ty = dato_tensor_f32_4d(y, batch, cfg.out_channels, latent, latent);
    dato_tensor tc = dato_tensor_f32_3d(ctx, batch, seq, cfg.cross_attention_dim);
    dato_tensor tt = dato_tensor_f32_2d(te, batch, P);
    dato_unet_inputs in = {.sample = &tx, .timesteps = t, .context = &tc, .text_embeds = P ? &tt : NULL,
                           .time_ids = P ? ids : NULL};
    dato_unet_plan plan = dato_unet_plan_full(&u);

    double* ms = malloc((size_t)iters * sizeof *ms);
    for (int i = 0; i < warmup + iters; i++) {
        double t0 = now_s();
        if (dato_unet_forward(&u, &ws, &plan, &in, &ty, &err)) {
            fprintf(stderr, "bench_unet: %s\n", err.msg);
            return 1;
        }
        double dt = (now_s() - t0) * 1e3;
        if (i >= warmup) ms[i - warmup] = dt;
        fprintf(stderr, "bench_unet: forward %d/%d: %.1f ms\n", i + 1, warmup + iters, dt);
    }
    qsort(ms, (size_t)iters, sizeof *ms, cmp_double);
    printf("{\"impl\":\"dato\",\"config\":\"%s\",\"latent\":%d,\"batch\":%d,\"seq\":%d,\"threads\":%d,"
           "\"ms_per_forward_median\":%.2f,\"ms_min\":%.2f,\"weights_mb\":%.1f,\"workspace_mb\":%.1f,"
           "\"peak_rss_mb\":%.1f}\n",
           config, latent, batch, seq, threads, ms[iters / 2], ms[0], (double)u.n_weights * 4 / 1048576.0,
           (double)ws.arena.cap / 1048576.0, peak_rss_mb());
    free(ms);
    free(x);
    free(y);
    free(ctx);
    free(te);
    free(ids);
    free(t);
    dato_unet_ws_free(&ws, &u);
    dato_unet_free(&u);
    dato_backend_destroy(&be);
    return 0;
}
