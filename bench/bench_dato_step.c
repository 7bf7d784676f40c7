// One UNet call under DaTo policies on the CPU, side by side in one run: a full step (the
// baseline), partial steps at several depths (DeepCache), and full steps with token pruning
// at ratios 0.3..0.7 (the DaTo runtime, scores from two recorded predictions). Seeded random
// weights in a real config's shapes. Prints a markdown table for docs/BENCHMARKS.md.
//
//   bench_dato_step --config tests/fixtures/manifests/sd15_config.json --latent 64 --batch 2
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bench_util.h"
#include "dato.h"
#include "rng.h"
#include "unet.h"
#include "unet_denoiser.h"

static void usage(void) {
    printf("usage: bench_dato_step --config PATH [--latent N] [--batch B] [--seq S] [--threads T] [--iters K]\n"
           "  Times one UNet call: full, partial at depths 1, 2, B/2 and B, and full with pruning r = 0.3..0.7.\n");
}

typedef struct {
    const char* name;
    int depth;
    float ratio;
} policy;

int main(int argc, char** argv) {
    const char* config = NULL;
    int latent = 64, batch = 2, seq = 77, threads = 0, iters = 1;
    const bench_opt opts[] = {
        {"--config", .str_value = &config},
        {"--latent", .int_value = &latent},
        {"--batch", .int_value = &batch},
        {"--seq", .int_value = &seq},
        {"--threads", .int_value = &threads},
        {"--iters", .int_value = &iters},
    };
    int pr = bench_parse(argc, argv, "bench_dato_step", opts, (int)(sizeof opts / sizeof opts[0]), usage);
    if (pr) return pr == 1 ? 0 : 2;
    if (!config || latent < 1 || batch < 1 || iters < 1) {
        usage();
        return 2;
    }
    dato_error err;
    dato_backend be;
    dato_unet_config cfg;
    dato_unet u;
    dato_unet_ws ws;
    dato_runtime* rt = NULL;
    int cfg_half = batch % 2 == 0 ? batch / 2 : 0;
    if (dato_backend_cpu_init(&be, threads, &err) || dato_unet_config_from_json(&cfg, config, &err) ||
        dato_unet_build(&u, &cfg, &be, &err) || dato_unet_init_random(&u, 1234, 0.02f, &err) ||
        dato_unet_ws_create(&ws, &u, batch, latent, latent, seq, 1, &err) ||
        dato_unet_runtime_create(&rt, &u, batch, cfg_half, latent, latent, NULL, &err)) {
        fprintf(stderr, "bench_dato_step: %s\n", err.msg);
        return 1;
    }
    if (cfg.add_embed_in) {
        fprintf(stderr, "bench_dato_step: SDXL-style configs are not wired here\n");
        return 2;
    }
    size_t nx = (size_t)batch * cfg.in_channels * latent * latent, nc = (size_t)batch * seq * cfg.cross_attention_dim;
    float *x = malloc(nx * sizeof *x), *y = malloc(nx * sizeof *y), *ctx = malloc(nc * sizeof *ctx);
    float* t = malloc((size_t)batch * sizeof *t);
    dato_rng rng;
    dato_rng_seed(&rng, 7);
    dato_rng_fill_normal(&rng, x, nx);
    dato_rng_fill_normal(&rng, ctx, nc);
    for (int i = 0; i < batch; i++) t[i] = 500.0f;
    dato_tensor tx = dato_tensor_f32_4d(x, batch, cfg.in_channels, latent, latent);
    dato_tensor ty = dato_tensor_f32_4d(y, batch, cfg.out_channels, latent, latent);
    dato_tensor tc = dato_tensor_f32_3d(ctx, batch, seq, cfg.cross_attention_dim);
    dato_tensor tt = dato_tensor_f32_1d(t, batch);
    dato_net_inputs in = {.sample = &tx, .timesteps = &tt, .context = &tc};

    int B = u.n_branches;
    policy pol[] = {{"full (baseline)", B + 1, 0},   {"partial, depth 1", 1, 0}, {"partial, depth 2", 2, 0},
                    {"partial, depth B/2", B / 2, 0}, {"partial, depth B", B, 0}, {"full, r = 0.3", B + 1, 0.3f},
                    {"full, r = 0.5", B + 1, 0.5f},  {"full, r = 0.7", B + 1, 0.7f}, {"depth 2, r = 0.7", 2, 0.7f}};
    int n_pol = (int)(sizeof pol / sizeof pol[0]);
    // Fill the cache, and give the runtime two predictions to score from.
    dato_net_plan fill = {.depth = B + 1, .write_cache = 1};
    for (int k = 0; k < 2; k++) {
        if (dato_unet_forward(&u, &ws, &fill, &in, &ty, &err)) {
            fprintf(stderr, "bench_dato_step: %s\n", err.msg);
            return 1;
        }
        for (size_t i = 0; i < nx; i++) y[i] += 0.01f * (float)dato_rng_normal(&rng); // distinct predictions
        dato_runtime_record(rt, y);
    }
    printf("| policy | depth | ratio | ms per call | speedup vs full |\n|---|---|---|---|---|\n");
    double base_ms = 0;
    for (int p = 0; p < n_pol; p++) {
        double best = 1e30;
        for (int it = 0; it < iters; it++) {
            dato_net_plan plan = {.depth = pol[p].depth};
            if (dato_runtime_prepare(rt, 5, pol[p].ratio, &plan, &err)) return 1;
            double t0 = dato_clock_s();
            if (dato_unet_forward(&u, &ws, &plan, &in, &ty, &err)) {
                fprintf(stderr, "bench_dato_step: %s: %s\n", pol[p].name, err.msg);
                return 1;
            }
            double ms = (dato_clock_s() - t0) * 1e3;
            best = ms < best ? ms : best;
        }
        if (p == 0) base_ms = best;
        printf("| %s | %d | %.1f | %.1f | %.2fx |\n", pol[p].name, pol[p].depth, (double)pol[p].ratio, best,
               base_ms / best);
        fflush(stdout);
    }
    printf("\n%s, %dx%d latent, batch %d, %d threads, best of %d; peak RSS %.0f MB\n", config, latent, latent, batch,
           threads, iters, peak_rss_mb());
    dato_runtime_destroy(rt);
    dato_unet_ws_free(&ws, &u);
    dato_unet_free(&u);
    dato_backend_destroy(&be);
    free(x);
    free(y);
    free(ctx);
    free(t);
    return 0;
}
