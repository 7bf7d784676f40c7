// dato-generate end to end on the tiny SD1.5-shaped fixture: the CLI's latents equal the
// pipeline API's for the same seed, bit for bit; a seed is reproducible; an image does not
// depend on the batch it is in (stream per image); the PNG grid has the right size; bad
// input gives a clear message and a non-zero exit. argv[1] is the dato-generate binary.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "image.h"
#include "pipeline.h"
#include "test_util.h"

#define MODEL "tests/fixtures/unet/sd15"
#define CONTEXT MODEL "/loop_ddim.safetensors"

static char tmpdir[] = "/tmp/dato-gen-XXXXXX";

// Runs a shell command; returns its exit status, stderr captured into tmpdir/stderr.txt.
static int run(const char* cmd) {
    char full[4096];
    snprintf(full, sizeof full, "%s 2>%s/stderr.txt >/dev/null", cmd, tmpdir);
    int rc = system(full);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int stderr_has(const char* needle) {
    char path[256], buf[4096] = {0};
    snprintf(path, sizeof path, "%s/stderr.txt", tmpdir);
    FILE* f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return strstr(buf, needle) != NULL;
}

static float* generate(dato_pipeline* p, int batch, unsigned long long seed, const float* ctx, size_t* n) {
    const dato_unet_config* c = &p->unet.cfg;
    *n = (size_t)batch * c->out_channels * 16 * 16;
    float* out = malloc(*n * sizeof *out);
    dato_error err;
    dato_conditioning cond;
    if (dato_conditioning_repeat(&cond, batch, 8, c->cross_attention_dim, ctx, 0, NULL, NULL, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        free(out);
        return NULL;
    }
    dato_generate_params gp = {.steps = 4, .sampler = DATO_SAMPLER_DDIM, .guidance = 7.5f, .seed = seed,
                               .height = 16, .width = 16, .cond = &cond};
    dato_status st = dato_pipeline_generate(p, &gp, out, &err);
    dato_conditioning_free(&cond);
    if (st) {
        fprintf(stderr, "%s\n", err.msg);
        free(out);
        return NULL;
    }
    return out;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_generate PATH/TO/dato-generate\n");
        return 2;
    }
    const char* exe = argv[1];
    if (!mkdtemp(tmpdir)) return 1;
    dato_error err;
    dato_backend be;
    dato_pipeline p;
    if (dato_backend_cpu_init(&be, 0, &err) || dato_pipeline_open(&p, MODEL, &be, NULL, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    dato_safetensors st;
    if (dato_safetensors_open(&st, CONTEXT, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    float* ctx = fixture_f32(&st, "context", NULL);

    // Reproducible, and batch-independent.
    size_t n3, n3b, n1;
    float* a = generate(&p, 3, 11, ctx, &n3);
    float* b = generate(&p, 3, 11, ctx, &n3b);
    float* one = generate(&p, 1, 11, ctx, &n1);
    CHECK(a && b && one, "generation failed");
    if (a && b && one) {
        CHECK(memcmp(a, b, n3 * sizeof *a) == 0, "same seed, different bits");
        double d = test_rel_err(one, a, n1);
        printf("image 0 alone vs in a batch of 3: max|diff|/max|ref| = %.3e (tol 1e-5)\n", d);
        CHECK(d <= 1e-5, "image 0 depends on its batch: %.3e", d);
        double other = test_rel_err(a + n1, a, n1);
        CHECK(other > 1e-2, "images 0 and 1 of a batch are the same (%.3e)", other);
    }

    // The CLI gives the API's latents, a grid PNG, and its settings in the PNG text.
    char cmd[4096], lat[256], png[256];
    snprintf(lat, sizeof lat, "%s/lat.safetensors", tmpdir);
    snprintf(png, sizeof png, "%s/grid.png", tmpdir);
    snprintf(cmd, sizeof cmd,
             "%s --model %s --context %s --steps 4 --sampler ddim --seed 11 --num-images-per-prompt 3 --grid --out %s "
             "--latents-out %s --threads 2",
             exe, MODEL, CONTEXT, png, lat);
    CHECK(run(cmd) == 0, "dato-generate failed");
    dato_safetensors ls;
    if (dato_safetensors_open(&ls, lat, &err) == DATO_OK) {
        size_t nl = 0;
        float* cli = fixture_f32(&ls, "latents", &nl);
        CHECK(cli && a && nl == n3 && memcmp(cli, a, n3 * sizeof *a) == 0, "CLI latents differ from the API's");
        free(cli);
        dato_safetensors_close(&ls);
    } else {
        CHECK(0, "%s", err.msg);
    }
    uint8_t* px = NULL;
    int h = 0, w = 0, c = 0;
    CHECK(dato_png_read(png, &px, &h, &w, &c, &err) == DATO_OK, "%s", err.msg);
    CHECK(h == 16 + 2 * 2 && w == 3 * 16 + 4 * 2 && c == 3, "grid is %dx%dx%d, expected 20x56x3", h, w, c);
    free(px);

    // Prompts through the full pipeline (tokenizer, text encoder, UNet, VAE): one PNG per image,
    // each carrying its prompt and seed in PNG text.
    char prompts[256];
    snprintf(prompts, sizeof prompts, "%s/prompts.txt", tmpdir);
    CHECK(write_bytes(prompts, "a photo of a cat\n\nred car\n", 26), "cannot write %s", prompts);
    snprintf(png, sizeof png, "%s/p.png", tmpdir);
    snprintf(cmd, sizeof cmd,
             "%s --model tests/fixtures/pipeline/sd15 --prompts-file %s --negative-prompt blurry --steps 3 "
             "--num-images-per-prompt 2 --batch 1 --seed 5 --out %s",
             exe, prompts, png);
    CHECK(run(cmd) == 0, "dato-generate with prompts failed");
    char p11[256];
    snprintf(p11, sizeof p11, "%s/p-1-1.png", tmpdir);
    px = NULL;
    CHECK(dato_png_read(p11, &px, &h, &w, &c, &err) == DATO_OK && h == 16 && w == 16 && c == 3,
          "p-1-1.png: %s (%dx%dx%d)", err.msg, h, w, c);
    free(px);
    size_t nb = 0;
    unsigned char* bytes = read_bytes(p11, &nb);
    static const char want_prompt[] = "dato:prompt\0red car", want_seed[] = "dato:seed\0" "6"; // prompt 1: seed + 1
    int has_prompt = 0, has_seed = 0;
    for (size_t i = 0; bytes && i + sizeof want_prompt < nb; i++) {
        has_prompt |= memcmp(bytes + i, want_prompt, sizeof want_prompt - 1) == 0;
        has_seed |= memcmp(bytes + i, want_seed, sizeof want_seed - 1) == 0;
    }
    CHECK(has_prompt && has_seed, "p-1-1.png lacks its prompt (%d) or seed (%d) text", has_prompt, has_seed);
    free(bytes);

    // Clear errors, non-zero exits.
    // Without --model the embedded default is used; $DATO_DEFAULT_MODEL moves it (here: nowhere).
    snprintf(cmd, sizeof cmd, "DATO_DEFAULT_MODEL=%s/no-default %s --context %s", tmpdir, exe, CONTEXT);
    CHECK(run(cmd) == 1 && stderr_has("no-default"), "a missing default model is not named");
    snprintf(cmd, sizeof cmd, "%s --model %s/nowhere --context %s", exe, tmpdir, CONTEXT);
    CHECK(run(cmd) == 1 && stderr_has("nowhere"), "a missing model path is not named");
    snprintf(cmd, sizeof cmd, "%s --model %s --context %s/io.safetensors", exe, MODEL, MODEL);
    CHECK(run(cmd) == 1 && stderr_has("'context'"), "a context file without 'context' is not named");
    snprintf(cmd, sizeof cmd, "%s --model %s --context %s --steps 0", exe, MODEL, CONTEXT);
    CHECK(run(cmd) == 2 && stderr_has("--steps"), "--steps 0 accepted");
    snprintf(cmd, sizeof cmd, "%s --model %s --context %s --sampler nope", exe, MODEL, CONTEXT);
    CHECK(run(cmd) == 2 && stderr_has("nope"), "an unknown sampler is not named");
    snprintf(cmd, sizeof cmd, "%s --help", exe);
    CHECK(run(cmd) == 0, "--help fails");

    free(a);
    free(b);
    free(one);
    free(ctx);
    dato_safetensors_close(&st);
    dato_pipeline_close(&p);
    dato_backend_destroy(&be);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
