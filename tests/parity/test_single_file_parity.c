// A single LDM checkpoint end to end: the tiny SD1.5-layout pipeline of
// tests/fixtures/pipeline/sd15 is written as one .safetensors with LDM names
// (model.diffusion_model.*, first_stage_model.*, cond_stage_model.transformer.*), opened as a
// single file (configs inferred from shapes, plus the hints a tiny model needs), and must give
// the folder's image bit for bit and diffusers' image within 2/255.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "pipeline.h"
#include "test_util.h"

#define MODEL "tests/fixtures/pipeline/sd15"
#define REF "tests/fixtures/pipeline/reference/sd15_negative.safetensors"

typedef struct {
    dato_st_write_entry* e;
    char** names;
    int n, cap;
} entries;

static void add(entries* es, const char* prefix, const char* name, const dato_tensor* t) {
    if (es->n == es->cap) {
        es->cap = es->cap ? 2 * es->cap : 256;
        es->e = realloc(es->e, (size_t)es->cap * sizeof *es->e);
        es->names = realloc(es->names, (size_t)es->cap * sizeof *es->names);
    }
    es->names[es->n] = malloc(strlen(prefix) + strlen(name) + 1);
    sprintf(es->names[es->n], "%s%s", prefix, name);
    es->e[es->n] = (dato_st_write_entry){.name = es->names[es->n], .dtype = DATO_F32, .ndim = t->ndim,
                                         .shape = t->shape, .data = t->data};
    es->n++;
}

// Every weight of the folder-loaded pipeline under its LDM single-file name.
static int write_single_file(const dato_pipeline* p, const char* path) {
    entries es = {0};
    for (int i = 0; i < p->unet.n_params; i++)
        add(&es, "model.diffusion_model.", p->unet.params[i].name[DATO_LAYOUT_LDM], p->unet.params[i].slot);
    for (int i = 0; i < p->vae.n_params; i++)
        add(&es, "first_stage_model.", p->vae.params[i].name[DATO_LAYOUT_LDM], p->vae.params[i].slot);
    for (int i = 0; i < p->text[0].n_params; i++)
        add(&es, "cond_stage_model.transformer.", p->text[0].params[i].name[DATO_TE_LAYOUT_HF], p->text[0].params[i].slot);
    dato_error err;
    int ok = dato_safetensors_write(path, es.e, es.n, NULL, &err) == DATO_OK;
    if (!ok) fprintf(stderr, "%s\n", err.msg);
    printf("single file: %d tensors\n", es.n);
    for (int i = 0; i < es.n; i++) free(es.names[i]);
    free(es.names);
    free(es.e);
    return ok;
}

// Encodes, generates and decodes the reference case; rgb (B, H, W, 3).
static int run(dato_pipeline* p, const float* latents_in, int B, uint8_t* rgb) {
    static const char* prompts[3] = {"a photo of a cat", "A painting of an old house by the sea, 4k!", "red car"};
    static const char* negs[3] = {"blurry", "low quality, bad art",
                                  "a photo of a dog, a photo of a dog, a photo of a dog, a photo of a dog, a photo of "
                                  "a dog, a photo of a dog, a photo of a dog, a photo of a dog, a photo of a dog, a "
                                  "photo of a dog, a photo of a dog, a photo of a dog, "};
    dato_error err;
    dato_conditioning cond;
    if (dato_pipeline_encode(p, prompts, negs, B, 16, 16, &cond, &err)) {
        fprintf(stderr, "encode: %s\n", err.msg);
        return 0;
    }
    float* lat = malloc((size_t)B * 4 * 8 * 8 * sizeof *lat);
    dato_generate_params gp = {.steps = 10, .sampler = DATO_SAMPLER_DDIM, .guidance = 7.5f, .height = 8, .width = 8,
                               .cond = &cond, .init_latent = latents_in};
    int ch = 0;
    int ok = dato_pipeline_generate(p, &gp, lat, &err) == DATO_OK &&
             dato_pipeline_decode(p, lat, B, 8, 8, rgb, NULL, &ch, &err) == DATO_OK && ch == 3;
    if (!ok) fprintf(stderr, "%s\n", err.msg);
    free(lat);
    dato_conditioning_free(&cond);
    return ok;
}

int main(void) {
    dato_backend be;
    dato_error err = {{0}};
    if (dato_backend_cpu_init(&be, 0, &err)) return 1;
    dato_pipeline folder;
    dato_status st = dato_pipeline_open(&folder, MODEL, &be, NULL, &err);
    CHECK(st == DATO_OK, "%s", err.msg);
    if (st) return test_summary();
    char dir[] = "/tmp/dato-single-XXXXXX", path[256];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/sd15-tiny.safetensors", dir);
    CHECK(write_single_file(&folder, path), "cannot write %s", path);

    // What shapes cannot tell about this tiny model; a released SD1.5 file needs none of it.
    dato_unet_ldm_hints uh = {.norm_groups = folder.unet.cfg.norm_groups};
    memcpy(uh.heads, folder.unet.cfg.heads, sizeof uh.heads);
    dato_te_hints th = {.heads = folder.text[0].cfg.heads, .act = folder.text[0].cfg.act, .eps = folder.text[0].cfg.eps,
                        .eos_token_id = folder.text[0].cfg.eos_token_id};
    dato_pipeline_options opt = {.unet_hints = &uh, .text_hints = {&th, NULL},
                                 .vae_norm_groups = folder.vae.cfg.norm_groups, .tokenizer_dir = MODEL "/tokenizer"};
    dato_pipeline single;
    st = dato_pipeline_open(&single, path, &be, &opt, &err);
    CHECK(st == DATO_OK, "open single file: %s", err.msg);
    CHECK(!st && single.n_text == 1 && single.has_vae, "single file: %d text encoders, vae %d", single.n_text,
          single.has_vae);

    dato_safetensors ref;
    if (!st && dato_safetensors_open(&ref, REF, &err) == DATO_OK) {
        float* lin = fixture_f32(&ref, "latents_in", NULL);
        const dato_st_tensor* img = dato_safetensors_find(&ref, "image_u8");
        size_t n = img ? (size_t)img->numel : 0;
        uint8_t *a = malloc(n), *b = malloc(n);
        CHECK(lin && img && run(&folder, lin, 3, a) && run(&single, lin, 3, b), "generation failed");
        int worst = 0;
        for (size_t i = 0; i < n; i++) {
            int d = abs((int)b[i] - (int)((const uint8_t*)img->data)[i]);
            worst = d > worst ? d : worst;
        }
        printf("single file vs folder: %s; vs diffusers: max |diff| = %d/255 (tol 2/255)\n",
               memcmp(a, b, n) ? "DIFFERENT" : "identical", worst);
        CHECK(memcmp(a, b, n) == 0, "the single file's image differs from the folder's");
        CHECK(worst <= 2, "single-file image off by %d/255", worst);
        free(a);
        free(b);
        free(lin);
        dato_safetensors_close(&ref);
    }
    if (!st) dato_pipeline_close(&single);
    dato_pipeline_close(&folder);
    unlink(path);
    rmdir(dir);
    dato_backend_destroy(&be);
    return test_summary();
}
