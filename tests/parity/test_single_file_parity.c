// A single LDM checkpoint end to end: the tiny SD1.5-layout pipeline of
// tests/fixtures/pipeline/sd15 is written as one .safetensors with LDM names
// (model.diffusion_model.*, first_stage_model.*, cond_stage_model.transformer.*) and opened as a
// single file (configs inferred from shapes, plus the hints a tiny model needs). diffusers'
// from_single_file takes such a file for a "v1" model and gives it SD1.5's scheduler config (PNDM);
// under every sampler the single file must give, bit for bit, the image of the same weights opened
// as a folder whose scheduler/ is SD1.5's, and diffusers' image (that folder, then
// X.from_config(pipe.scheduler.config): tests/fixtures/single_file) within 2/255. Also: the DDIM
// case of the pipeline fixture (whose folder config is DDIM with SD1.5's values) still matches.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

// Encodes, generates and decodes the reference case with a sampler; rgb (B, H, W, 3).
static int run(dato_pipeline* p, dato_sampler_kind sampler, const float* latents_in, int B, uint8_t* rgb) {
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
    float* lat = malloc((size_t)B * 4 * 8 * 8 * sizeof *lat); // (B, 4, 8, 8)
    dato_generate_params gp = {.steps = 10, .sampler = sampler, .guidance = 7.5f, .height = 8, .width = 8,
                               .cond = &cond, .init_latent = latents_in, .seed = 5};
    int ch = 0;
    int ok = dato_pipeline_generate(p, &gp, lat, &err) == DATO_OK &&
             dato_pipeline_decode(p, lat, B, 8, 8, rgb, NULL, &ch, &err) == DATO_OK && ch == 3;
    if (!ok) fprintf(stderr, "%s: %s\n", dato_sampler_kind_name(sampler), err.msg);
    free(lat);
    dato_conditioning_free(&cond);
    return ok;
}

static int max_u8_diff(const uint8_t* a, const uint8_t* b, size_t n) {
    int worst = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        worst = d > worst ? d : worst;
    }
    return worst;
}

// dir/<name> -> target, target made absolute (the test runs from the repo root).
static int link_into(const char* dir, const char* name, const char* target) {
    char abs_target[4096], link[4096];
    if (!realpath(target, abs_target)) return 0;
    snprintf(link, sizeof link, "%s/%s", dir, name);
    return symlink(abs_target, link) == 0;
}

int main(void) {
    dato_backend be;
    dato_error err = {{0}};
    if (dato_backend_cpu_init(&be, 0, &err)) return 1;
    dato_pipeline folder;
    dato_status st = dato_pipeline_open(&folder, MODEL, &be, NULL, &err);
    CHECK(st == DATO_OK, "%s", err.msg);
    if (st) return test_summary();
    char dir[] = "/tmp/dato-single-XXXXXX", path[256], sd15_dir[256];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/sd15-tiny.safetensors", dir);
    CHECK(write_single_file(&folder, path), "cannot write %s", path);
    // The same weights as a folder whose scheduler/ is SD1.5's (the hub file from_single_file reads).
    snprintf(sd15_dir, sizeof sd15_dir, "%s/sd15-pndm", dir);
    CHECK(mkdir(sd15_dir, 0755) == 0 && link_into(sd15_dir, "unet", MODEL "/unet") &&
              link_into(sd15_dir, "vae", MODEL "/vae") && link_into(sd15_dir, "text_encoder", MODEL "/text_encoder") &&
              link_into(sd15_dir, "tokenizer", MODEL "/tokenizer") &&
              link_into(sd15_dir, "scheduler", "tests/fixtures/single_file/schedulers/v1"),
          "cannot make %s", sd15_dir);

    // What shapes cannot tell about this tiny model, set by name as a command line would; a released
    // SD1.5 file needs none of it.
    dato_pipeline_options opt = {.tokenizer_dir = MODEL "/tokenizer"};
    const dato_unet_config* uc = &folder.unet.cfg;
    const dato_te_config* tc = &folder.text[0].cfg;
    char heads[64] = "", groups[16], vae_groups[16], te_heads[16], te_eps[32], te_eos[16];
    for (int i = 0, used = 0; i < uc->n_levels; i++) // one value per level
        used += snprintf(heads + used, sizeof heads - (size_t)used, "%s%d", i ? "," : "", uc->heads[i]);
    snprintf(groups, sizeof groups, "%d", uc->norm_groups);
    snprintf(vae_groups, sizeof vae_groups, "%d", folder.vae.cfg.norm_groups);
    snprintf(te_heads, sizeof te_heads, "%d", tc->heads);
    snprintf(te_eps, sizeof te_eps, "%.9g", tc->eps);
    snprintf(te_eos, sizeof te_eos, "%d", tc->eos_token_id);
    const char* hints[][2] = {{"unet-attention-heads", heads}, {"unet-norm-num-groups", groups},
                              {"vae-norm-num-groups", vae_groups}, {"text-encoder-num-attention-heads", te_heads},
                              {"text-encoder-hidden-act", tc->act == DATO_TE_ACT_GELU ? "gelu" : "quick_gelu"},
                              {"text-encoder-layer-norm-eps", te_eps}, {"text-encoder-eos-token-id", te_eos}};
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++)
        CHECK(dato_single_file_hint_set(&opt.hints, hints[i][0], hints[i][1], &err) == DATO_OK, "%s", err.msg);
    dato_pipeline single, sd15;
    st = dato_pipeline_open(&single, path, &be, &opt, &err);
    CHECK(st == DATO_OK, "open single file: %s", err.msg);
    dato_status st15 = dato_pipeline_open(&sd15, sd15_dir, &be, NULL, &err);
    CHECK(st15 == DATO_OK, "open %s: %s", sd15_dir, err.msg);
    CHECK(!st && single.n_text == 1 && single.has_vae, "single file: %d text encoders, vae %d", single.n_text,
          single.has_vae);
    CHECK(!st && !strcmp(single.single_file->type, "v1") && single.sched.kind == DATO_SAMPLER_PNDM &&
              single.unet.cfg.sample_size == 64,
          "single file: model type %s, default sampler %s, sample size %d", st ? "?" : single.single_file->type,
          dato_sampler_kind_name(single.sched.kind), single.unet.cfg.sample_size);

    dato_safetensors ref, samplers;
    if (!st && !st15 && dato_safetensors_open(&ref, REF, &err) == DATO_OK &&
        dato_safetensors_open(&samplers, "tests/fixtures/single_file/sd15_samplers.safetensors", &err) == DATO_OK) {
        // The pipeline fixture's DDIM case: its folder (DDIM, SD1.5's values), the single file, diffusers.
        float* lin = fixture_f32(&ref, "latents_in", NULL); // (3, 4, 8, 8)
        const dato_st_tensor* img = dato_safetensors_find(&ref, "image_u8");
        size_t n = img ? (size_t)img->numel : 0;
        uint8_t *a = malloc(n), *b = malloc(n);
        CHECK(lin && img && run(&folder, DATO_SAMPLER_DDIM, lin, 3, a) && run(&single, DATO_SAMPLER_DDIM, lin, 3, b),
              "generation failed");
        int worst = max_u8_diff(b, img->data, n);
        printf("ddim (pipeline fixture): single file vs folder %s; vs diffusers: max |diff| = %d/255 (tol 2/255)\n",
               memcmp(a, b, n) ? "DIFFERENT" : "identical", worst);
        CHECK(memcmp(a, b, n) == 0, "the single file's image differs from the folder's");
        CHECK(worst <= 2, "single-file image off by %d/255", worst);

        // Every sampler: the single file == the SD1.5-scheduler folder, bit for bit; == diffusers within 2/255.
        static const dato_sampler_kind kinds[] = {DATO_SAMPLER_DDIM, DATO_SAMPLER_PNDM, DATO_SAMPLER_DPMPP_2M,
                                                  DATO_SAMPLER_EULER, DATO_SAMPLER_EULER_A};
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            const char* name = dato_sampler_kind_name(kinds[k]);
            char key[64];
            snprintf(key, sizeof key, "image_u8_%s", name);
            const dato_st_tensor* want = dato_safetensors_find(&samplers, key); // NULL for euler-a (torch's noise)
            int ok = run(&sd15, kinds[k], lin, 3, a) && run(&single, kinds[k], lin, 3, b);
            CHECK(ok, "%s: generation failed", name);
            int vs_folder = max_u8_diff(a, b, n), vs_diffusers = want ? max_u8_diff(b, want->data, n) : -1;
            printf("%-8s: single file vs SD1.5-scheduler folder max |diff| = %d/255 (tol 0); vs diffusers ", name,
                   vs_folder);
            if (want) printf("%d/255 (tol 2/255)\n", vs_diffusers);
            else printf("not compared (its noise is torch's)\n");
            CHECK(ok && vs_folder == 0, "%s: single file differs from the folder by %d/255", name, vs_folder);
            CHECK(!want || (want->numel == (int64_t)n && vs_diffusers <= 2), "%s: off diffusers by %d/255", name,
                  vs_diffusers);
        }
        free(a);
        free(b);
        free(lin);
        dato_safetensors_close(&samplers);
        dato_safetensors_close(&ref);
    }
    if (!st) dato_pipeline_close(&single);
    if (!st15) dato_pipeline_close(&sd15);
    dato_pipeline_close(&folder);
    static const char* const links[] = {"unet", "vae", "text_encoder", "tokenizer", "scheduler"};
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        char l[512];
        snprintf(l, sizeof l, "%s/%s", sd15_dir, links[i]);
        unlink(l);
    }
    rmdir(sd15_dir);
    unlink(path);
    rmdir(dir);
    dato_backend_destroy(&be);
    return test_summary();
}
