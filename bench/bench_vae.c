// VAE decoder on the CPU or CUDA backend with seeded random weights (Linear/Conv in f32, or on CUDA
// f16/bf16 with --dtype) in the real SD1/2 (and SDXL: same shapes) decoder config, or a diffusers
// vae/config.json given with --config. Prints one JSON
// line: decode time, weights, planned workspace and peak RSS.
//
//   bench_vae --latent 64 --batch 1 --iters 1      # 64x64 latents -> 512x512 image
//   bench_vae --latent 64 --batch 1 --iters 5 --backend cuda
//   bench_vae --latent 64 --batch 1 --iters 5 --backend cuda --dtype f16
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bench_backend.h"
#include "bench_util.h"
#include "rng.h"
#include "vae.h"
#include "weight_dtype.h"

// diffusers stabilityai/sd-vae-ft-mse vae/config.json, decoder fields
static const char* const SD_VAE_CONFIG =
    "{\"_class_name\": \"AutoencoderKL\", \"block_out_channels\": [128, 256, 512, 512], \"layers_per_block\": 2,"
    " \"latent_channels\": 4, \"norm_num_groups\": 32, \"out_channels\": 3, \"scaling_factor\": 0.18215,"
    " \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}";

static void usage(void) {
    fprintf(stderr, "usage: bench_vae [--config vae/config.json] [--latent 64] [--batch 1] [--threads 0] [--iters 1]\n"
                    "                 [--backend cpu|cuda] [--device 0] [--dtype f32|f16|bf16]\n"
                    "                 [--conv auto|im2col|cudnn]\n"
                    "  default config: the SD1/2 (= SDXL) decoder shapes; weights are seeded random, their\n"
                    "  Linear/Conv ones stored as --dtype (default f32; f16/bf16 need --backend cuda);\n"
                    "  --conv: how CUDA runs conv2d (auto: cuDNN where it can, else im2col + cuBLAS)\n");
}

int main(int argc, char** argv) {
    const char *config = NULL, *backend = "cpu", *dtype_name = "f32", *conv = NULL;
    int latent = 64, batch = 1, threads = 0, iters = 1, device = 0;
    const bench_opt opts[] = {
        {"--config", .str_value = &config},
        {"--latent", .int_value = &latent},
        {"--batch", .int_value = &batch},
        {"--threads", .int_value = &threads},
        {"--iters", .int_value = &iters},
        {"--backend", .str_value = &backend},
        {"--device", .int_value = &device},
        {"--dtype", .str_value = &dtype_name},
        {"--conv", .str_value = &conv},
    };
    int pr = bench_parse(argc, argv, "bench_vae", opts, (int)(sizeof opts / sizeof opts[0]), usage);
    if (pr) return pr == 1 ? 0 : 2;
    if (latent < 1 || latent > 512 || batch < 1 || batch > 64 || iters < 1 || iters > 100) {
        usage();
        return 2;
    }

    dato_error err;
    dato_dtype dtype;
    if (dato_weight_dtype_parse(dtype_name, &dtype, &err)) {
        fprintf(stderr, "bench_vae: --dtype: %s\n", err.msg);
        return 2;
    }
    dato_backend be;
    dato_vae_config cfg;
    dato_vae v;
    dato_vae_ws ws;
    dato_backend_spec spec = {.name = backend, .threads = threads, .device = device, .attention = dtype, .conv = conv};
    if (!bench_backend_init(&be, &spec, "bench_vae")) return 1;
    dato_status st = config ? dato_vae_config_from_json(&cfg, config, &err)
                            : dato_vae_config_from_json_text(&cfg, SD_VAE_CONFIG, "sd-vae", &err);
    if (st || dato_vae_build(&v, &cfg, &be, &err) || dato_vae_set_weight_dtype(&v, dtype, &err) ||
        dato_vae_init_random(&v, 1234, 0.02f, &err) ||
        dato_vae_ws_create(&ws, &v, batch, latent, latent, &err)) {
        fprintf(stderr, "bench_vae: %s\n", err.msg);
        return 1;
    }
    int f = 1 << (cfg.n_levels - 1);
    size_t nz = (size_t)batch * cfg.latent_channels * latent * latent;
    size_t ni = (size_t)batch * cfg.out_channels * latent * f * latent * f;
    float* z = malloc(nz * sizeof *z);   // (B, zc, h, w)
    float* img = malloc(ni * sizeof *img); // (B, 3, f*h, f*w)
    if (!z || !img) {
        fprintf(stderr, "bench_vae: out of memory for the latents and the image\n");
        return 1;
    }
    dato_rng rng;
    dato_rng_seed(&rng, 7);
    dato_rng_fill_normal(&rng, z, nz);
    for (size_t i = 0; i < nz; i++) z[i] *= cfg.scaling_factor; // latents as the sampler hands them over
    dato_tensor hz = dato_tensor_f32_4d(z, batch, cfg.latent_channels, latent, latent);
    dato_tensor hi = dato_tensor_f32_4d(img, batch, cfg.out_channels, (int64_t)latent * f, (int64_t)latent * f);
    dato_tensor tz = bench_to_device(&be, &hz), ti = bench_to_device(&be, &hi); // on the backend's device
    if (!tz.data || !ti.data) {
        fprintf(stderr, "bench_vae: cannot allocate the latents and the image on the %s backend\n", be.name);
        return 1;
    }

    double* s = malloc((size_t)iters * sizeof *s);
    for (int i = 0; i < iters; i++) {
        double t0 = dato_clock_s();
        if (dato_vae_decode(&v, &ws, &tz, &ti, &err)) {
            fprintf(stderr, "bench_vae: %s\n", err.msg);
            return 1;
        }
        be.ops->synchronize(&be);
        s[i] = dato_clock_s() - t0;
        fprintf(stderr, "bench_vae: decode %d/%d: %.2f s\n", i + 1, iters, s[i]);
    }
    qsort(s, (size_t)iters, sizeof *s, cmp_double);
    size_t weight_bytes = 0; // as stored: half GEMM weights take 2 bytes
    for (int i = 0; i < v.n_params; i++) weight_bytes += dato_tensor_nbytes(v.params[i].slot);
    printf("{\"impl\":\"dato\",\"backend\":\"%s\",\"dtype\":\"%s\",\"model\":\"vae_decoder\",\"config\":\"%s\","
           "\"latent\":%d,\"image\":%d,\"batch\":%d,"
           "\"threads\":%d,\"s_per_decode_median\":%.3f,\"s_min\":%.3f,\"weights_mb\":%.1f,\"workspace_mb\":%.1f,"
           "\"peak_rss_mb\":%.1f}\n",
           be.name, dato_weight_dtype_flag(dtype), config ? config : "sd", latent, latent * f, batch, threads,
           s[iters / 2], s[0], (double)weight_bytes / 1048576.0, (double)ws.bytes / 1048576.0, peak_rss_mb());
    free(s);
    free(z);
    free(img);
    be.ops->free(&be, tz.data);
    be.ops->free(&be, ti.data);
    dato_vae_ws_free(&ws, &v);
    dato_vae_free(&v);
    dato_backend_destroy(&be);
    return 0;
}
