// A pixel-space model (a model folder without vae/): the UNet's 3-channel output is the image.
// The test writes such a folder (seeded random weights, diffusers names), opens it through the
// pipeline, and checks the decode is exactly diffusers' float -> uint8 conversion of the UNet
// output, with a VAE factor of 1; then the same through dato-generate (argv[1]).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "pipeline.h"
#include "test_util.h"

static const char* CONFIG =
    "{\"block_out_channels\": [16, 32], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
    " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"], \"in_channels\": 3, \"out_channels\": 3,"
    " \"layers_per_block\": 1, \"norm_num_groups\": 8, \"attention_head_dim\": 2, \"cross_attention_dim\": 8,"
    " \"sample_size\": 16}";

int main(int argc, char** argv) {
    char dir[] = "/tmp/dato-pixel-XXXXXX", path[256];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    dato_error err = {{0}};
    dato_backend be;
    if (dato_backend_cpu_init(&be, 0, &err)) return 1;

    // The folder: unet/config.json + unet/diffusion_pytorch_model.safetensors.
    dato_unet_config cfg;
    dato_unet u;
    snprintf(path, sizeof path, "%s/unet", dir);
    CHECK(mkdir(path, 0755) == 0, "mkdir %s", path);
    snprintf(path, sizeof path, "%s/unet/config.json", dir);
    CHECK(write_bytes(path, CONFIG, strlen(CONFIG)), "write %s", path);
    dato_status st = dato_unet_config_from_json_text(&cfg, CONFIG, "pixel config", &err);
    if (!st) st = dato_unet_build(&u, &cfg, &be, &err);
    if (!st) st = dato_unet_init_random(&u, 3, 0.1f, &err);
    CHECK(st == DATO_OK, "%s", err.msg);
    if (st) return test_summary();
    dato_st_write_entry* e = calloc((size_t)u.n_params, sizeof *e);
    for (int i = 0; i < u.n_params; i++)
        e[i] = (dato_st_write_entry){.name = u.params[i].name[DATO_LAYOUT_DIFFUSERS], .dtype = DATO_F32,
                                     .ndim = u.params[i].ndim, .shape = u.params[i].shape, .data = u.params[i].slot->data};
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    CHECK(dato_safetensors_write(path, e, u.n_params, NULL, &err) == DATO_OK, "%s", err.msg);
    free(e);
    dato_unet_free(&u);

    dato_pipeline p;
    st = dato_pipeline_open(&p, dir, &be, NULL, &err);
    CHECK(st == DATO_OK, "open: %s", err.msg);
    if (!st) {
        CHECK(!p.has_vae && p.n_text == 0 && dato_pipeline_vae_factor(&p) == 1, "not seen as a pixel-space model");
        float ctx[2 * 4 * 8];
        for (int i = 0; i < 2 * 4 * 8; i++) ctx[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
        dato_conditioning cond;
        st = dato_conditioning_repeat(&cond, 2, 4, 8, ctx, 0, NULL, NULL, &err);
        size_t n = (size_t)2 * 3 * 16 * 16;
        float* x = malloc(n * sizeof *x);
        uint8_t *rgb = malloc(n), *want = malloc(n);
        dato_generate_params gp = {.steps = 3, .sampler = DATO_SAMPLER_DDIM, .guidance = 3.0f, .seed = 9,
                                   .height = 16, .width = 16, .cond = &cond};
        int ch = 0;
        if (!st) st = dato_pipeline_generate(&p, &gp, x, &err);
        if (!st) st = dato_pipeline_decode(&p, x, 2, 16, 16, rgb, NULL, &ch, &err);
        CHECK(st == DATO_OK && ch == 3, "generate/decode: %s", err.msg);
        for (int i = 0; i < 2 && !st; i++) {
            dato_tensor xi = dato_tensor_f32_3d(x + (size_t)i * 3 * 256, 3, 16, 16);
            dato_image_from_float(&xi, want + (size_t)i * 3 * 256, &err);
        }
        CHECK(!st && memcmp(rgb, want, n) == 0, "the pixel model's image is not its UNet output");
        free(x);
        free(rgb);
        free(want);
        dato_conditioning_free(&cond);
        dato_pipeline_close(&p);
    }
    if (argc > 1) { // the CLI: a pixel model takes --context and writes a 16x16 PNG
        char cmd[1024], ctxf[256], png[256];
        snprintf(ctxf, sizeof ctxf, "%s/ctx.safetensors", dir);
        snprintf(png, sizeof png, "%s/out.png", dir);
        static float ctx2[2 * 4 * 8];
        dato_st_write_entry ce = {.name = "context", .dtype = DATO_F32, .ndim = 3, .shape = (int64_t[]){2, 4, 8},
                                  .data = ctx2};
        CHECK(dato_safetensors_write(ctxf, &ce, 1, NULL, &err) == DATO_OK, "%s", err.msg);
        snprintf(cmd, sizeof cmd, "%s --model %s --context %s --steps 2 --sampler ddim --out %s >/dev/null 2>&1",
                 argv[1], dir, ctxf, png);
        CHECK(system(cmd) == 0, "dato-generate on a pixel model failed");
        uint8_t* px = NULL;
        int h = 0, w = 0, c = 0;
        CHECK(dato_png_read(png, &px, &h, &w, &c, &err) == DATO_OK && h == 16 && w == 16 && c == 3,
              "pixel model PNG %dx%dx%d: %s", h, w, c, err.msg);
        free(px);
    }
    char rm[300];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    if (system(rm) != 0) fprintf(stderr, "could not remove %s\n", dir);
    dato_backend_destroy(&be);
    printf("pixel-space model: image == UNet output through diffusers' conversion\n");
    return test_summary();
}
