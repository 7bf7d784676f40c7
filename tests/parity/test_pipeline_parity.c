// Prompt to image against diffusers' StableDiffusionPipeline and StableDiffusionXLPipeline
// (tools/make_pipeline_fixtures.py: tiny random components, 3 prompts, DDIM 10 steps, guidance
// 7.5, fixed latents). Stage by stage: token ids exactly; the UNet context and SDXL pooled
// embeddings <= 1e-4 relative; final latents <= 1e-3 relative; the 8-bit image within 2/255
// per pixel (the bar).
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "pipeline.h"
#include "test_util.h"

#define DIR "tests/fixtures/pipeline/"

// The negative prompts as passed to diffusers: a list, one string for all, or null (none).
static const char** negatives_of(const cJSON* neg, int B, const char** buf) {
    if (!neg || cJSON_IsNull(neg)) return NULL;
    for (int i = 0; i < B; i++)
        buf[i] = cJSON_IsArray(neg) ? cJSON_GetArrayItem(neg, i)->valuestring : neg->valuestring;
    return buf;
}

static int ids_match(dato_tokenizer* tok, const dato_safetensors* st, const char* name, const char** texts, int B) {
    const dato_st_tensor* t = dato_safetensors_find(st, name);
    if (!t) return 1; // not tokenized in this case (SDXL zeros)
    int L = dato_tokenizer_max_len(tok), ok = t->numel == (int64_t)B * L;
    int32_t* ref = malloc((size_t)t->nbytes);
    memcpy(ref, t->data, t->nbytes);
    int32_t ids[256];
    dato_error err;
    for (int i = 0; i < B && ok; i++) {
        ok = dato_tokenizer_encode(tok, texts[i], ids, NULL, &err) == DATO_OK &&
             memcmp(ids, ref + (size_t)i * L, (size_t)L * sizeof *ids) == 0;
        if (!ok) fprintf(stderr, "%s row %d differs\n", name, i);
    }
    free(ref);
    return ok;
}

static void check_case(dato_backend* be, const char* model, const char* name) {
    char path[512];
    snprintf(path, sizeof path, DIR "reference/%s.json", name);
    size_t n = 0;
    char* text = (char*)read_bytes(path, &n);
    char* z = text ? realloc(text, n + 1) : NULL;
    if (z) z[n] = 0;
    cJSON* js = z ? cJSON_Parse(z) : NULL;
    free(z);
    CHECK(js != NULL, "cannot read %s", path);
    if (!js) return;
    snprintf(path, sizeof path, DIR "reference/%s.safetensors", name);
    dato_error err = {{0}};
    dato_safetensors st;
    if (dato_safetensors_open(&st, path, &err)) {
        CHECK(0, "%s", err.msg);
        cJSON_Delete(js);
        return;
    }
    snprintf(path, sizeof path, DIR "%s", model);
    dato_pipeline p;
    dato_status s = dato_pipeline_open(&p, path, be, NULL, &err);
    CHECK(s == DATO_OK, "%s: %s", model, err.msg);

    const cJSON* pr = cJSON_GetObjectItem(js, "prompt");
    int B = cJSON_GetArraySize(pr), H = cJSON_GetObjectItem(js, "height")->valueint,
        W = cJSON_GetObjectItem(js, "width")->valueint;
    const char *prompts[8], *negbuf[8], *as_encoded[8];
    for (int i = 0; i < B && i < 8; i++) prompts[i] = cJSON_GetArrayItem(pr, i)->valuestring;
    const char** negs = negatives_of(cJSON_GetObjectItem(js, "negative_prompt"), B, negbuf);
    const cJSON* enc = cJSON_GetObjectItem(js, "negative_prompt_as_encoded");
    for (int i = 0; i < B && cJSON_IsArray(enc); i++) as_encoded[i] = cJSON_GetArrayItem(enc, i)->valuestring;

    if (!s) {
        // 1. Token ids, both tokenizers.
        int ok = ids_match(p.tokenizer[0], &st, "input_ids", prompts, B) &&
                 (!cJSON_IsArray(enc) || ids_match(p.tokenizer[0], &st, "uncond_input_ids", as_encoded, B));
        if (p.n_text == 2)
            ok = ok && ids_match(p.tokenizer[1], &st, "input_ids_2", prompts, B) &&
                 (!cJSON_IsArray(enc) || ids_match(p.tokenizer[1], &st, "uncond_input_ids_2", as_encoded, B));
        CHECK(ok, "%s: token ids differ from transformers'", name);

        // 2. Conditioning.
        dato_conditioning cond;
        s = dato_pipeline_encode(&p, prompts, negs, B, H, W, &cond, &err);
        CHECK(s == DATO_OK, "%s: encode: %s", name, err.msg);
        size_t nc = 0, nn = 0;
        float* pe = fixture_f32(&st, "prompt_embeds", &nc);
        float* ne = fixture_f32(&st, "negative_prompt_embeds", &nn);
        if (!s && pe && ne) {
            double e1 = test_rel_err(cond.context + nn, pe, nc), e0 = test_rel_err(cond.context, ne, nn);
            printf("%-14s context: cond %.2e, uncond %.2e (tol 1e-4)", name, e1, e0);
            CHECK(e1 <= 1e-4 && e0 <= 1e-4, "%s: context off (%.2e, %.2e)", name, e1, e0);
            if (cond.text_embeds) {
                size_t np = 0;
                float* pp = fixture_f32(&st, "pooled_prompt_embeds", &np);
                float* pn = fixture_f32(&st, "negative_pooled_prompt_embeds", NULL);
                double p1 = test_rel_err(cond.text_embeds + np, pp, np);
                double p0 = test_max_abs(pn, np) == 0 ? test_max_abs(cond.text_embeds, np)
                                                      : test_rel_err(cond.text_embeds, pn, np);
                printf("; pooled: cond %.2e, uncond %.2e", p1, p0);
                CHECK(p1 <= 1e-4 && p0 <= 1e-4, "%s: pooled off (%.2e, %.2e)", name, p1, p0);
                free(pp);
                free(pn);
            }
            printf("\n");
        }

        // 3. The loop and 4. the image.
        size_t nl = 0, ni = 0;
        float* lin = fixture_f32(&st, "latents_in", NULL);
        float* lout = fixture_f32(&st, "latents_out", &nl);
        const dato_st_tensor* img = dato_safetensors_find(&st, "image_u8");
        const dato_st_tensor* lshape = dato_safetensors_find(&st, "latents_in");
        if (!s && lin && lout && img && lshape) {
            int h = (int)lshape->shape[2], w = (int)lshape->shape[3];
            dato_generate_params gp = {.steps = cJSON_GetObjectItem(js, "num_inference_steps")->valueint,
                                       .sampler = p.sched.kind,
                                       .guidance = (float)cJSON_GetObjectItem(js, "guidance_scale")->valuedouble,
                                       .height = h, .width = w, .cond = &cond, .init_latent = lin};
            float* got = malloc(nl * sizeof *got);
            s = dato_pipeline_generate(&p, &gp, got, &err);
            CHECK(s == DATO_OK, "%s: generate: %s", name, err.msg);
            double el = test_rel_err(got, lout, nl);
            ni = (size_t)img->numel;
            uint8_t* rgb = malloc(ni);
            int ch = 0;
            if (!s) s = dato_pipeline_decode(&p, got, B, h, w, rgb, NULL, &ch, &err);
            CHECK(s == DATO_OK && ch == 3, "%s: decode: %s", name, err.msg);
            int worst = 0;
            const uint8_t* ref = img->data;
            for (size_t i = 0; i < ni && !s; i++) {
                int d = abs((int)rgb[i] - (int)ref[i]);
                worst = d > worst ? d : worst;
            }
            printf("%-14s latents %.2e (tol 1e-3); image max |diff| = %d/255 (tol 2/255)\n", name, el, worst);
            CHECK(el <= 1e-3, "%s: final latents off by %.2e", name, el);
            CHECK(!s && worst <= 2, "%s: image off by %d/255", name, worst);
            free(got);
            free(rgb);
        }
        free(pe);
        free(ne);
        free(lin);
        free(lout);
        dato_conditioning_free(&cond);
        dato_pipeline_close(&p);
    }
    dato_safetensors_close(&st);
    cJSON_Delete(js);
}

int main(void) {
    dato_backend be;
    dato_error err;
    if (dato_backend_cpu_init(&be, 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    check_case(&be, "sd15", "sd15_negative");
    check_case(&be, "sd15", "sd15_empty");
    check_case(&be, "sdxl", "sdxl_negative");
    check_case(&be, "sdxl", "sdxl_empty");
    check_case(&be, "sdxl", "sdxl_zeros");
    dato_backend_destroy(&be);
    return test_summary();
}
