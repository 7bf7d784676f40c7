// VAE decoder against diffusers (tools/make_vae_fixtures.py) on three tiny AutoencoderKLs:
// "sd" (3 levels, 2 layers per block, scaling 0.18215, batch 2), "xl" (2 levels, 1 layer,
// scaling 0.13025, batch 1, old diffusers attention names) and "shift" (shift_factor, no
// post_quant_conv, no mid attention). Each is loaded from its diffusers
// folder and from its LDM single file (first_stage_model.*, attention as 1x1 convs, config
// inferred from shapes). Float image: max|diff| / max|ref| <= 1e-4. uint8 image (through
// dato_image_from_float): equal to diffusers' postprocess except at most 1 level where the
// reference float sits within 1e-3 of a rounding boundary (counted and printed).
// Also: the real SD decoder's parameter count and workspace at 64x64 latents (planned only),
// and errors for a config mismatch, a workspace mismatch and 32 groups on a 4-group file.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "image.h"
#include "test_util.h"
#include "vae.h"

#define TOL 1e-4

typedef struct {
    float *latents, *ref;
    uint8_t* ref_u8;       // (B, H, W, 3)
    int64_t lat_shape[4], img_shape[4];
    size_t n_lat, n_img;
} io_fixture;

static int load_io(const char* dir, io_fixture* io) {
    char path[512];
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    dato_safetensors st;
    dato_error err;
    memset(io, 0, sizeof *io);
    if (dato_safetensors_open(&st, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 0;
    }
    io->latents = fixture_f32(&st, "latents", &io->n_lat);
    io->ref = fixture_f32(&st, "image", &io->n_img);
    const dato_st_tensor* lt = dato_safetensors_find(&st, "latents");
    const dato_st_tensor* it = dato_safetensors_find(&st, "image");
    const dato_st_tensor* ut = dato_safetensors_find(&st, "image_u8");
    int ok = io->latents && io->ref && lt && it && ut && lt->ndim == 4 && it->ndim == 4 && ut->dtype == DATO_ST_U8 &&
             (size_t)ut->numel == io->n_img;
    if (ok) {
        memcpy(io->lat_shape, lt->shape, sizeof io->lat_shape);
        memcpy(io->img_shape, it->shape, sizeof io->img_shape);
        io->ref_u8 = malloc(io->n_img);
        memcpy(io->ref_u8, ut->data, io->n_img);
    }
    dato_safetensors_close(&st);
    return ok;
}

static void free_io(io_fixture* io) {
    free(io->latents);
    free(io->ref);
    free(io->ref_u8);
}

// Decodes the fixture's latents with v and compares the float and the uint8 images.
static void check_decode(const char* label, const dato_vae* v, const io_fixture* io) {
    dato_error err;
    dato_vae_ws ws;
    const int64_t* ls = io->lat_shape;
    const int64_t* is = io->img_shape;
    dato_status st = dato_vae_ws_create(&ws, v, (int)ls[0], (int)ls[2], (int)ls[3], &err);
    CHECK(st == DATO_OK, "%s: ws: %s", label, err.msg);
    if (st) return;
    float* got = malloc(io->n_img * sizeof *got);
    dato_tensor lat = dato_tensor_f32_4d(io->latents, ls[0], ls[1], ls[2], ls[3]);
    dato_tensor img = dato_tensor_f32_4d(got, is[0], is[1], is[2], is[3]);
    st = dato_vae_decode(v, &ws, &lat, &img, &err);
    CHECK(st == DATO_OK, "%s: decode: %s", label, err.msg);
    if (!st) {
        double rel = test_rel_err(got, io->ref, io->n_img);
        printf("%s: image %lldx%lldx%lldx%lld, max|ref| %.3f, rel err %.3g (workspace %zu bytes)\n", label,
               (long long)is[0], (long long)is[1], (long long)is[2], (long long)is[3], test_max_abs(io->ref, io->n_img),
               rel, ws.bytes);
        CHECK(rel <= TOL, "%s: rel err %g > %g", label, rel, TOL);

        // uint8 per image: (C, H, W) -> (H, W, C)
        int64_t per = is[1] * is[2] * is[3];
        uint8_t* u8 = malloc((size_t)per);
        int off_by_one = 0, bad = 0;
        for (int64_t b = 0; b < is[0]; b++) {
            dato_tensor x = dato_tensor_f32_3d(got + b * per, is[1], is[2], is[3]);
            st = dato_image_from_float(&x, u8, &err);
            CHECK(st == DATO_OK, "%s: image_from_float: %s", label, err.msg);
            for (int64_t p = 0; p < is[2] * is[3]; p++)
                for (int64_t c = 0; c < is[1]; c++) {
                    int g = u8[p * is[1] + c], r = io->ref_u8[b * per + p * is[1] + c];
                    if (g == r) continue;
                    // the reference float's distance to the nearest rounding boundary, in levels
                    float f = io->ref[b * per + c * is[2] * is[3] + p];
                    double lv = fmin(fmax(f * 0.5 + 0.5, 0.0), 1.0) * 255.0;
                    double to_boundary = fabs(lv - floor(lv) - 0.5);
                    if (abs(g - r) == 1 && to_boundary < 1e-3) off_by_one++;
                    else bad++;
                }
        }
        printf("%s: uint8 pixels differing by 1 at a rounding boundary: %d of %lld, other differences: %d\n", label,
               off_by_one, (long long)io->n_img, bad);
        CHECK(bad == 0, "%s: %d uint8 values differ beyond a rounding boundary", label, bad);
        free(u8);
    }
    free(got);
    dato_vae_ws_free(&ws, v);
}

static void check_model(const char* name, dato_backend* be) {
    char dir[256], path[512], label[64];
    snprintf(dir, sizeof dir, "tests/fixtures/vae/%s", name);
    io_fixture io;
    int ok = load_io(dir, &io);
    CHECK(ok, "%s: fixture io.safetensors unreadable", name);
    if (!ok) return;
    dato_error err;

    // diffusers folder
    dato_vae vd;
    dato_status st = dato_vae_open_folder(&vd, dir, be, &err);
    CHECK(st == DATO_OK, "%s: open_folder: %s", name, err.msg);
    if (st) {
        free_io(&io);
        return;
    }
    snprintf(label, sizeof label, "%s/diffusers", name);
    check_decode(label, &vd, &io);

    // LDM single file; the 4 groups of the tiny model cannot be read off shapes
    snprintf(path, sizeof path, "%s/ldm.safetensors", dir);
    dato_weight_files wf;
    st = dato_weight_files_open(&wf, path, &err);
    CHECK(st == DATO_OK, "%s: %s", name, err.msg);
    if (!st) {
        dato_tensor_source src = dato_tensor_source_files(&wf);
        dato_vae_config cfg;
        dato_vae vl;
        st = dato_vae_config_infer_ldm(&cfg, &src, "first_stage_model.", vd.cfg.scaling_factor, vd.cfg.norm_groups, &err);
        CHECK(st == DATO_OK, "%s: infer: %s", name, err.msg);
        cfg.shift_factor = vd.cfg.shift_factor; // LDM files carry no shift (SD1/2/XL have none)
        if (!st) {
            CHECK(memcmp(&cfg, &vd.cfg, sizeof cfg) == 0, "%s: inferred LDM config differs from config.json", name);
            st = dato_vae_build(&vl, &cfg, be, &err);
            if (!st) st = dato_vae_load_weights(&vl, &src, DATO_LAYOUT_LDM, "first_stage_model.", &err);
            CHECK(st == DATO_OK, "%s: LDM load: %s", name, err.msg);
            if (!st) {
                snprintf(label, sizeof label, "%s/ldm", name);
                check_decode(label, &vl, &io);
                dato_vae_free(&vl);
            }
        }
        // dato_vae_open_source's default of 32 groups: refused on these 8-channel levels, naming the problem.
        st = dato_vae_open_source(&vl, &src, "first_stage_model.", 0.18215f, 0, be, &err);
        CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "groups"), "%s: open_source with 32 groups: %d %s", name, st,
              err.msg);
        // A config with one layer fewer per block must reject the file's extra ResBlocks.
        cfg.layers_per_block -= 1;
        if (cfg.layers_per_block >= 0 && !dato_vae_build(&vl, &cfg, be, &err)) {
            st = dato_vae_load_weights(&vl, &src, DATO_LAYOUT_LDM, "first_stage_model.", &err);
            CHECK(st == DATO_ERR_FORMAT && strstr(err.msg, "not part of"), "%s: mismatched config: %d %s", name, st,
                  err.msg);
            dato_vae_free(&vl);
        }
        dato_weight_files_close(&wf);
    }

    // A workspace planned for another size is refused.
    dato_vae_ws ws;
    st = dato_vae_ws_create(&ws, &vd, 1, 4, 4, &err);
    CHECK(st == DATO_OK, "%s: ws: %s", name, err.msg);
    if (!st) {
        float* out = calloc(io.n_img, sizeof *out);
        const int64_t* ls = io.lat_shape;
        const int64_t* is = io.img_shape;
        dato_tensor lat = dato_tensor_f32_4d(io.latents, ls[0], ls[1], ls[2], ls[3]);
        dato_tensor img = dato_tensor_f32_4d(out, is[0], is[1], is[2], is[3]);
        st = dato_vae_decode(&vd, &ws, &lat, &img, &err);
        CHECK(st == DATO_ERR_INVALID, "%s: decode on a 4x4 workspace: %d", name, st);
        free(out);
        dato_vae_ws_free(&ws, &vd);
    }
    dato_vae_free(&vd);
    free_io(&io);
}

// The real SD1/2 decoder: parameter count (ENGINE.md §5) and planned workspace at 64x64.
static void check_sd_shapes(dato_backend* be) {
    const char* json = "{\"_class_name\": \"AutoencoderKL\", \"block_out_channels\": [128, 256, 512, 512],"
                       " \"layers_per_block\": 2, \"latent_channels\": 4, \"norm_num_groups\": 32,"
                       " \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\","
                       " \"UpDecoderBlock2D\"], \"scaling_factor\": 0.18215, \"shift_factor\": null}";
    dato_vae_config cfg;
    dato_error err;
    dato_status st = dato_vae_config_from_json_text(&cfg, json, "sd-vae", &err);
    CHECK(st == DATO_OK, "sd config: %s", err.msg);
    dato_vae v;
    if (st || (st = dato_vae_build(&v, &cfg, be, &err))) return;
    CHECK(v.n_weights == 49490199, "SD decoder has %zu parameters, expected 49,490,199", v.n_weights);
    const dato_vae_param* p = dato_vae_find_param(&v, DATO_LAYOUT_LDM, "decoder.up.3.block.0.conv1.weight");
    CHECK(p && strcmp(p->name[DATO_LAYOUT_DIFFUSERS], "decoder.up_blocks.0.resnets.0.conv1.weight") == 0,
          "up.3 <-> up_blocks.0");
    p = dato_vae_find_param(&v, DATO_LAYOUT_DIFFUSERS, "decoder.mid_block.attentions.0.proj_attn.weight");
    CHECK(p && strcmp(p->name[DATO_LAYOUT_LDM], "decoder.mid.attn_1.proj_out.weight") == 0, "legacy proj_attn name");
    size_t bytes = 0;
    st = dato_vae_ws_bytes(&v, 1, 64, 64, &bytes, &err);
    CHECK(st == DATO_OK, "sd ws: %s", err.msg);
    printf("SD VAE decoder: %zu parameters, workspace for 64x64 latents (512x512 image), batch 1: %zu bytes (%.1f MiB)\n",
           v.n_weights, bytes, (double)bytes / (1 << 20));
    // two 256 MiB activation buffers, one 128 MiB, 32 MiB of attention buffers
    CHECK(bytes <= (size_t)700 << 20, "workspace %zu bytes > 700 MiB", bytes);
    const char* bad = "{\"block_out_channels\": [64, 64], \"up_block_types\": [\"UpDecoderBlock2D\", \"SomethingElse\"]}";
    st = dato_vae_config_from_json_text(&cfg, bad, "bad", &err);
    CHECK(st == DATO_ERR_UNSUPPORTED && strstr(err.msg, "up_block_types"), "unsupported block type: %d %s", st, err.msg);
    dato_vae_free(&v);
}

int main(void) {
    dato_backend be;
    dato_error err;
    if (dato_backend_cpu_init(&be, 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    check_model("sd", &be);
    check_model("xl", &be);
    check_model("shift", &be);
    check_sd_shapes(&be);
    dato_backend_destroy(&be);
    return test_summary();
}
