// diffusers' StableDiffusionPipeline run with generator=torch.Generator().manual_seed(3), reproduced
// from dato's torch noise (tests/fixtures/noise/parity.*, tools/make_noise_fixtures.py): the tiny SD1.5
// folder of tests/fixtures/pipeline, one prompt, one image, 10 steps, guidance 7.5, with the folder's
// DDIM (init_noise_sigma 1) and EulerDiscreteScheduler.from_config (init_noise_sigma 8.45). The
// noise is dato_torch_randn_latents(3); the sampler's init_noise_sigma must equal diffusers' float,
// the final latents agree to 1e-3 relative and the 8-bit image within 2/255 per pixel.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "pipeline.h"
#include "test_util.h"
#include "torch_rng.h"

#define FIX "tests/fixtures/noise/"

static void check_sampler(dato_pipeline* p, const dato_conditioning* cond, const cJSON* js, const dato_safetensors* st,
                          const char* name, dato_sampler_kind kind) {
    const cJSON* case_js = cJSON_GetObjectItem(js, name);
    int steps = cJSON_GetObjectItem(js, "num_inference_steps")->valueint;
    int H = cJSON_GetObjectItem(js, "height")->valueint, W = cJSON_GetObjectItem(js, "width")->valueint;
    int f = dato_pipeline_vae_factor(p), h = H / f, w = W / f, C = p->unet.cfg.in_channels;
    size_t n = (size_t)C * h * w;
    dato_error err;

    // The scale diffusers puts on the noise: latents * scheduler.init_noise_sigma (a float32).
    dato_scheduler_config cfg;
    dato_sampler* s = NULL;
    dato_status rc = dato_pipeline_scheduler(p, kind, &cfg, &err);
    if (rc == DATO_OK) rc = dato_sampler_create(&s, &cfg, kind, steps, n, &err);
    CHECK(rc == DATO_OK, "%s: sampler: %s", name, err.msg);
    float sigma = s ? dato_sampler_init_noise_sigma(s) : 0.0f;
    float want = (float)cJSON_GetObjectItem(case_js, "init_noise_sigma")->valuedouble;
    printf("%-5s init_noise_sigma %.9g, diffusers %.9g\n", name, sigma, want);
    CHECK(sigma == want, "%s: init_noise_sigma %.9g, diffusers %.9g", name, sigma, want);
    dato_sampler_destroy(s);

    float* noise = malloc(n * sizeof *noise); // (1, C, h, w)
    float* latents = malloc(n * sizeof *latents);
    uint8_t* rgb = malloc((size_t)H * W * 3);
    dato_torch_randn_latents((uint64_t)cJSON_GetObjectItem(js, "seed")->valuedouble, DATO_TORCH_AVX2, noise, n);
    dato_generate_params gp = {.steps = steps,
                               .sampler = kind,
                               .guidance = (float)cJSON_GetObjectItem(js, "guidance_scale")->valuedouble,
                               .height = h,
                               .width = w,
                               .cond = cond,
                               .init_latent = noise};
    int ch = 0;
    rc = dato_pipeline_generate(p, &gp, latents, &err);
    if (rc == DATO_OK) rc = dato_pipeline_decode(p, latents, 1, h, w, rgb, NULL, &ch, &err);
    CHECK(rc == DATO_OK && ch == 3, "%s: %s", name, err.msg);

    char key[64];
    snprintf(key, sizeof key, "%s_latents_out", name);
    size_t nl = 0;
    float* ref_latents = fixture_f32(st, key, &nl);
    snprintf(key, sizeof key, "%s_image_u8", name);
    const dato_st_tensor* img = dato_safetensors_find(st, key);
    if (rc == DATO_OK && ref_latents && nl == n && img && img->numel == (int64_t)H * W * 3) {
        double el = test_rel_err(latents, ref_latents, n);
        const uint8_t* ref = img->data;
        int worst = 0;
        for (int64_t i = 0; i < img->numel; i++) {
            int d = abs((int)rgb[i] - (int)ref[i]);
            worst = d > worst ? d : worst;
        }
        printf("%-5s latents %.2e (tol 1e-3); image max |diff| = %d/255 (tol 2/255)\n", name, el, worst);
        CHECK(el <= 1e-3, "%s: final latents off by %.2e", name, el);
        CHECK(worst <= 2, "%s: image off by %d/255", name, worst);
    } else {
        CHECK(0, "%s: fixture tensors missing or the run failed", name);
    }
    free(ref_latents);
    free(noise);
    free(latents);
    free(rgb);
}

int main(void) {
    dato_backend be;
    dato_error err;
    if (dato_backend_cpu_init(&be, 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    cJSON* js = fixture_json(FIX "parity.json");
    dato_safetensors st;
    dato_pipeline p;
    CHECK(js != NULL, "cannot read " FIX "parity.json");
    if (js && dato_safetensors_open(&st, FIX "parity.safetensors", &err) == DATO_OK) {
        if (dato_pipeline_open(&p, cJSON_GetObjectItem(js, "model")->valuestring, &be, NULL, &err) == DATO_OK) {
            const char* prompt = cJSON_GetObjectItem(js, "prompt")->valuestring;
            int H = cJSON_GetObjectItem(js, "height")->valueint, W = cJSON_GetObjectItem(js, "width")->valueint;
            dato_conditioning cond;
            if (dato_pipeline_encode(&p, &prompt, NULL, 1, H, W, &cond, &err) == DATO_OK) { // no negative: ""
                check_sampler(&p, &cond, js, &st, "ddim", DATO_SAMPLER_DDIM);
                check_sampler(&p, &cond, js, &st, "euler", DATO_SAMPLER_EULER);
                dato_conditioning_free(&cond);
            } else {
                CHECK(0, "encode: %s", err.msg);
            }
            dato_pipeline_close(&p);
        } else {
            CHECK(0, "%s", err.msg);
        }
        dato_safetensors_close(&st);
    } else if (js) {
        CHECK(0, "%s", err.msg);
    }
    cJSON_Delete(js);
    dato_backend_destroy(&be);
    return test_summary();
}
