// dato's deepcache presets against DeepCache itself: DeepCacheSDHelper(cache_interval, cache_branch_id)
// on diffusers' StableDiffusionPipeline over the tiny SD1.5 folder (tools/make_deepcache_fixtures.py;
// the prompts, negatives and latents of tests/fixtures/pipeline's sd15_negative case, DDIM 10 steps,
// guidance 7.5). Per case: the preset's full steps are the steps where DeepCache ran the mid block
// (exactly), the final latents within 1e-3 relative, the 8-bit image within 2/255 per pixel.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "pipeline.h"
#include "test_util.h"

#define PIPE "tests/fixtures/pipeline/"
#define PARITY "tests/fixtures/deepcache/parity.safetensors"

// Fixture case (tensor prefix) -> the dato preset that gives the same images.
static const struct {
    const char* name;
    const char* spec;
} CASES[] = {
    {"interval3_branch0", "deepcache:3"},          // DeepCache's README call
    {"interval4_branch0", "deepcache:4"},          // 4 does not divide the 10 steps
    {"interval3_branch1", "deepcache:3:branch=1"}, // depth 2
    {"interval3_branch9", "deepcache:3:branch=9"}, // past the last branch: depth B
};
#define N_CASES (sizeof(CASES) / sizeof(CASES[0]))

// The fixture's full steps of a case equal the preset's full (depth B + 1) steps.
static int same_full_steps(const dato_safetensors* st, const char* name, const dato_schedule* s) {
    char key[96];
    snprintf(key, sizeof key, "%s.full_steps", name);
    const dato_st_tensor* t = dato_safetensors_find(st, key);
    if (!t || t->dtype != DATO_ST_I32) return 0;
    int32_t full[DATO_SCHEDULE_MAX_STEPS];
    int n = (int)t->numel;
    if (n > DATO_SCHEDULE_MAX_STEPS) return 0;
    memcpy(full, t->data, (size_t)t->nbytes);
    int j = 0, same = 1;
    for (int k = 0; k < s->steps; k++) {
        int is_full = s->genes[k].depth == s->n_branches + 1;
        int want = j < n && full[j] == k;
        same &= is_full == want;
        j += want;
    }
    return same && j == n;
}

int main(void) {
    dato_backend be;
    dato_error err = {{0}};
    if (dato_backend_cpu_init(&be, 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    size_t n_json = 0;
    char* text = (char*)read_bytes(PIPE "reference/sd15_negative.json", &n_json);
    char* z = text ? realloc(text, n_json + 1) : NULL;
    if (z) z[n_json] = 0;
    cJSON* js = z ? cJSON_Parse(z) : NULL;
    free(z ? z : text);
    dato_safetensors ref, dc;
    int ok = js && dato_safetensors_open(&ref, PIPE "reference/sd15_negative.safetensors", &err) == DATO_OK;
    ok = ok && dato_safetensors_open(&dc, PARITY, &err) == DATO_OK;
    dato_pipeline p;
    ok = ok && dato_pipeline_open(&p, PIPE "sd15", &be, NULL, &err) == DATO_OK;
    CHECK(ok, "cannot open the fixtures: %s", err.msg);
    if (!ok) return test_summary();

    const cJSON* pr = cJSON_GetObjectItem(js, "prompt");
    const cJSON* ng = cJSON_GetObjectItem(js, "negative_prompt");
    int B = cJSON_GetArraySize(pr), steps = cJSON_GetObjectItem(js, "num_inference_steps")->valueint;
    const char *prompts[8], *negatives[8];
    for (int i = 0; i < B && i < 8; i++) {
        prompts[i] = cJSON_GetArrayItem(pr, i)->valuestring;
        negatives[i] = cJSON_GetArrayItem(ng, i)->valuestring;
    }
    const dato_st_tensor* shape = dato_safetensors_find(&ref, "latents_in");
    int h = (int)shape->shape[2], w = (int)shape->shape[3];
    float* latents_in = fixture_f32(&ref, "latents_in", NULL); // (B, 4, h, w)
    dato_conditioning cond;
    int H = cJSON_GetObjectItem(js, "height")->valueint, W = cJSON_GetObjectItem(js, "width")->valueint;
    ok = dato_pipeline_encode(&p, prompts, negatives, B, H, W, &cond, &err) == DATO_OK;
    CHECK(ok && latents_in, "encode: %s", err.msg);

    size_t n_latents = (size_t)shape->numel, n_image = (size_t)B * H * W * 3;
    float* got = malloc(n_latents * sizeof *got); // (B, 4, h, w)
    uint8_t* rgb = malloc(n_image);               // (B, H, W, 3)
    double worst_latents = 0;
    int worst_image = 0;
    static dato_schedule s; // ~8 KB: kept off the stack
    for (size_t c = 0; c < N_CASES && ok; c++) {
        const char* name = CASES[c].name;
        CHECK(dato_schedule_preset(&s, CASES[c].spec, steps, p.unet.n_branches, &err) == DATO_OK, "%s", err.msg);
        CHECK(same_full_steps(&dc, name, &s), "%s: %s's full steps differ from DeepCache's", name, CASES[c].spec);
        dato_generate_params gp = {.steps = steps, .sampler = p.sched.kind,
                                   .guidance = (float)cJSON_GetObjectItem(js, "guidance_scale")->valuedouble,
                                   .height = h, .width = w, .cond = &cond, .init_latent = latents_in, .schedule = &s};
        int ch = 0;
        dato_status st = dato_pipeline_generate(&p, &gp, got, &err);
        if (!st) st = dato_pipeline_decode(&p, got, B, h, w, rgb, NULL, &ch, &err);
        CHECK(st == DATO_OK && ch == 3, "%s: %s", name, err.msg);
        char key[96];
        snprintf(key, sizeof key, "%s.latents_out", name);
        float* want = fixture_f32(&dc, key, NULL); // (B, 4, h, w)
        snprintf(key, sizeof key, "%s.image_u8", name);
        const dato_st_tensor* img = dato_safetensors_find(&dc, key);
        if (st || !want || !img || (size_t)img->numel != n_image) {
            CHECK(0, "%s: fixture tensors missing or of the wrong size", name);
            free(want);
            continue;
        }
        double e = test_rel_err(got, want, n_latents);
        int d = 0;
        const uint8_t* ref_rgb = img->data;
        for (size_t i = 0; i < n_image; i++) {
            int di = abs((int)rgb[i] - (int)ref_rgb[i]);
            d = di > d ? di : d;
        }
        printf("%-18s %-22s latents %.2e (tol 1e-3); image max |diff| = %d/255 (tol 2/255)\n", name, CASES[c].spec, e,
               d);
        CHECK(e <= 1e-3, "%s: final latents off by %.2e", name, e);
        CHECK(d <= 2, "%s: image off by %d/255", name, d);
        worst_latents = e > worst_latents ? e : worst_latents;
        worst_image = d > worst_image ? d : worst_image;
        free(want);
    }
    printf("deepcache parity: max latents error %.2e, max image error %d/255\n", worst_latents, worst_image);
    free(got);
    free(rgb);
    free(latents_in);
    dato_conditioning_free(&cond);
    dato_pipeline_close(&p);
    dato_safetensors_close(&dc);
    dato_safetensors_close(&ref);
    cJSON_Delete(js);
    dato_backend_destroy(&be);
    return test_summary();
}
