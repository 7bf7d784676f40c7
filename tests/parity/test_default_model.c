// The embedded default model (models/fashion-sd) against diffusers' StableDiffusionPipeline on the
// same trained weights (tools/make_default_model_fixtures.py): token ids of every training prompt
// exactly; the ten evaluation prompts from stored initial latents at the model's defaults (PLMS,
// dato.json's steps and guidance) give 8-bit images within 2/255 per pixel (the bar) and
// decoder outputs (clamped to [-1, 1] as diffusers does) within 2e-3 absolute.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "model_defaults.h"
#include "pipeline.h"
#include "test_util.h"

#define MODEL "models/fashion-sd"
#define FIX "tests/fixtures/default_model/"

static void check_tokens(dato_pipeline* p, const cJSON* js, const dato_safetensors* st) {
    const cJSON* texts = cJSON_GetObjectItem(js, "tokenized_prompts");
    const dato_st_tensor* t = dato_safetensors_find(st, "token_ids");
    int L = dato_tokenizer_max_len(p->tokenizer[0]), n = cJSON_GetArraySize(texts), bad = 0;
    CHECK(t && t->ndim == 2 && t->shape[0] == n && t->shape[1] == L, "token_ids must be (%d, %d)", n, L);
    if (!t || t->shape[0] != n || t->shape[1] != L) return;
    int32_t ids[64];
    for (int i = 0; i < n; i++) {
        dato_error err;
        const char* s = cJSON_GetArrayItem(texts, i)->valuestring;
        if (dato_tokenizer_encode(p->tokenizer[0], s, ids, NULL, &err) ||
            memcmp(ids, (const int32_t*)t->data + (size_t)i * L, (size_t)L * sizeof *ids)) {
            if (bad++ < 3) fprintf(stderr, "prompt %d (%s): ids differ\n", i, s);
        }
    }
    printf("tokenizer: %d of %d prompts identical to CLIPTokenizer\n", n - bad, n);
    CHECK(bad == 0, "%d prompts tokenize differently", bad);
}

int main(void) {
    dato_error err = {{0}};
    dato_backend be;
    CHECK(dato_backend_cpu_init(&be, 0, &err) == DATO_OK, "%s", err.msg);
    dato_pipeline p;
    if (dato_pipeline_open(&p, MODEL, &be, NULL, &err)) {
        CHECK(0, "%s", err.msg);
        return test_summary();
    }
    dato_model_defaults md;
    CHECK(dato_model_defaults_load(&md, MODEL, &err) == DATO_OK && md.present, "dato.json: %s", err.msg);
    cJSON* js = fixture_json(FIX "reference.json");
    dato_safetensors st;
    CHECK(js != NULL, "cannot read " FIX "reference.json");
    if (!js || dato_safetensors_open(&st, FIX "reference.safetensors", &err)) {
        CHECK(0, "%s", err.msg);
        return test_summary();
    }
    check_tokens(&p, js, &st);

    const cJSON* jp = cJSON_GetObjectItem(js, "prompts");
    int B = cJSON_GetArraySize(jp), steps = cJSON_GetObjectItem(js, "steps")->valueint;
    float guidance = (float)cJSON_GetObjectItem(js, "guidance")->valuedouble;
    CHECK(steps == md.steps && guidance == md.guidance, "fixture (%d steps, guidance %g) vs dato.json (%d, %g)", steps,
          (double)guidance, md.steps, (double)md.guidance);
    const char* prompts[16];
    for (int i = 0; i < B && i < 16; i++) prompts[i] = cJSON_GetArrayItem(jp, i)->valuestring;
    size_t n_lat = 0, n_img = 0;
    float* noise = fixture_f32(&st, "latents", &n_lat);    // (B, 4, 14, 14)
    const dato_st_tensor* ti = dato_safetensors_find(&st, "images");
    const uint8_t* ref_img = ti && ti->dtype == DATO_ST_U8 ? (const uint8_t*)ti->data : NULL; // (B, 28, 28)
    float* ref_f = fixture_f32(&st, "images_f", &n_img);   // (B, 1, 28, 28)
    float* lat = malloc(n_lat * sizeof *lat);
    float* img_f = malloc(n_img * sizeof *img_f);
    uint8_t* px = malloc(n_img);
    dato_conditioning cond;
    int ch = 0, h = p.unet.cfg.sample_size;
    CHECK(noise && ref_img && ref_f && lat && img_f && px, "fixture tensors");
    CHECK(dato_pipeline_encode(&p, prompts, NULL, B, 28, 28, &cond, &err) == DATO_OK, "%s", err.msg);
    dato_generate_params gp = {.steps = steps, .sampler = p.sched.kind, .guidance = guidance, .height = h,
                               .width = h, .cond = &cond, .init_latent = noise};
    CHECK(p.sched.kind == DATO_SAMPLER_PNDM, "the default model's scheduler is PLMS (pndm)");
    CHECK(dato_pipeline_generate(&p, &gp, lat, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_pipeline_decode(&p, lat, B, h, h, px, img_f, &ch, &err) == DATO_OK, "%s", err.msg);
    CHECK(ch == 1, "gray images, got %d channels", ch);
    for (size_t i = 0; i < n_img; i++) // diffusers' postprocess clamps to [-1, 1] before its float output
        img_f[i] = img_f[i] < -1 ? -1 : img_f[i] > 1 ? 1 : img_f[i];
    double max_px = 0, max_f = test_max_abs_diff(img_f, ref_f, n_img);
    for (size_t i = 0; i < n_img; i++) {
        double d = px[i] > ref_img[i] ? px[i] - ref_img[i] : ref_img[i] - px[i];
        if (d > max_px) max_px = d;
    }
    printf("%d images, PLMS %d steps, guidance %g: max pixel difference %.0f/255 (bar 2/255), decoder output max "
           "abs error %.3g (tol 2e-3)\n", B, steps, (double)guidance, max_px, max_f);
    CHECK(max_px <= 2, "pixels differ by %.0f/255", max_px);
    CHECK(max_f <= 2e-3, "decoder output differs by %g", max_f);
    dato_conditioning_free(&cond);
    free(noise);
    free(ref_f);
    free(lat);
    free(img_f);
    free(px);
    dato_safetensors_close(&st);
    cJSON_Delete(js);
    dato_pipeline_close(&p);
    dato_backend_destroy(&be);
    return test_summary();
}
