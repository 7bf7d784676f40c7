// dato-generate: images from a Stable-Diffusion-family model folder or single file.
//
//   dato-generate --model tests/fixtures/unet/sd15 --context tests/fixtures/unet/sd15/loop_ddim.safetensors
//                 --steps 10 --sampler ddim --seed 1 --batch 4 --grid --out results/sample.png
//
// Conditioning comes from --context (a safetensors file with "context" (2, S, X) laid out
// [uncond; cond], plus "text_embeds" (2, P) and "time_ids" (2, 6) for SDXL-style models) until
// the text encoder exists; --prompt is parsed and refused with a clear message until then.
// Without a VAE, a 4-channel latent is written as a preview (engine/image.h); a pixel-space
// model's 1- or 3-channel output is written as the image itself.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image.h"
#include "pipeline.h"
#include "safetensors.h"

typedef struct {
    const char *model, *context, *prompt, *out, *latents_out;
    int steps, batch, size, threads, grid, have_sampler;
    float guidance;
    unsigned long long seed;
    dato_sampler_kind sampler;
} options;

static void usage(FILE* f) {
    fprintf(f,
            "usage: dato-generate --model DIR|FILE --context FILE [options]\n"
            "\n"
            "Generates images with a Stable Diffusion 1.x/2.x/SDXL-family UNet on the CPU.\n"
            "\n"
            "  --model DIR|FILE     diffusers folder (unet/, scheduler/) or LDM single .safetensors\n"
            "  --context FILE       safetensors with context (2, S, X) = [uncond; cond]\n"
            "                       (+ text_embeds (2, P), time_ids (2, 6) for SDXL-style models)\n"
            "  --prompt TEXT        needs the text encoder (not in this build yet): use --context\n"
            "  --steps N            sampler steps (default 50)\n"
            "  --sampler NAME       ddim | pndm (plms) | dpmpp-2m | euler | euler-a\n"
            "                       (default: the model's scheduler_config.json)\n"
            "  --guidance G         classifier-free guidance scale (default 7.5; <= 1 turns it off)\n"
            "  --seed S             seed of the initial noise; image i uses stream i (default 0)\n"
            "  --batch B            images (default 1)\n"
            "  --size PX            image size in pixels (default: the UNet's sample_size x 8 for\n"
            "                       latent models, x 1 for pixel-space models)\n"
            "  --out PATH.png       output (default results/dato-generate.png); without --grid,\n"
            "                       image i of a batch goes to PATH-i.png\n"
            "  --grid               one grid PNG of the whole batch\n"
            "  --latents-out FILE   also write the final latents (B, C, h, w) as safetensors\n"
            "  --threads N          CPU threads (default: all)\n"
            "  --help               this text\n");
}

static int parse_args(int argc, char** argv, options* o) {
    *o = (options){.steps = 50, .batch = 1, .guidance = 7.5f, .out = "results/dato-generate.png"};
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--grid")) {
            o->grid = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "dato-generate: %s needs a value (see --help)\n", a);
            return 0;
        }
        const char* v = argv[++i];
        char* end = NULL;
        if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--context")) o->context = v;
        else if (!strcmp(a, "--prompt")) o->prompt = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--latents-out")) o->latents_out = v;
        else if (!strcmp(a, "--steps")) o->steps = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--batch")) o->batch = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--size")) o->size = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--threads")) o->threads = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--guidance")) o->guidance = strtof(v, &end);
        else if (!strcmp(a, "--seed")) o->seed = strtoull(v, &end, 10);
        else if (!strcmp(a, "--sampler")) {
            dato_error err;
            if (dato_sampler_kind_parse(v, &o->sampler, &err)) {
                fprintf(stderr, "dato-generate: --sampler: %s\n", err.msg);
                return 0;
            }
            o->have_sampler = 1;
        } else {
            fprintf(stderr, "dato-generate: unknown option %s (see --help)\n", a);
            return 0;
        }
        if (end && (*end || end == v)) {
            fprintf(stderr, "dato-generate: %s: '%s' is not a number\n", a, v);
            return 0;
        }
    }
    if (!o->model) {
        fprintf(stderr, "dato-generate: --model is required (see --help)\n");
        return 0;
    }
    if (o->prompt && !o->context) {
        fprintf(stderr, "dato-generate: --prompt needs a text encoder, which this build does not have yet; "
                        "pass conditioning with --context FILE\n");
        return 0;
    }
    if (!o->context) {
        fprintf(stderr, "dato-generate: --context FILE is required (see --help)\n");
        return 0;
    }
    if (o->steps < 1 || o->steps > 1000 || o->batch < 1 || o->batch > 1024 || o->size < 0) {
        fprintf(stderr, "dato-generate: --steps must be in 1..1000, --batch in 1..1024, --size >= 0\n");
        return 0;
    }
    return 1;
}

typedef struct {
    double t0;
} progress_state;

// A malloc'd f32 copy of tensor `name` of st, or NULL with a message.
static float* tensor_f32(const dato_safetensors* st, const char* name) {
    const dato_st_tensor* t = dato_safetensors_find(st, name);
    float* x = t ? malloc(((size_t)t->numel + 1) * sizeof *x) : NULL;
    dato_error err;
    if (x && dato_st_tensor_to_f32(t, x, (size_t)t->numel, &err) == DATO_OK) return x;
    fprintf(stderr, "dato-generate: %s: tensor '%s': %s\n", st->path, name, t ? err.msg : "missing");
    free(x);
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void print_progress(void* ctx, int done, int total) {
    progress_state* ps = ctx;
    double el = now_s() - ps->t0, eta = done ? el / done * (total - done) : 0;
    fprintf(stderr, "\rdato-generate: UNet call %d/%d, %.1f s elapsed, ETA %.1f s   ", done, total, el, eta);
    if (done == total) fprintf(stderr, "\n");
}

// Loads the conditioning tensors and checks them against the model.
static int load_context(const options* o, const dato_unet_config* c, dato_safetensors* st, float** ctx, int* seq,
                        float** te, float** ids) {
    dato_error err;
    if (dato_safetensors_open(st, o->context, &err)) {
        fprintf(stderr, "dato-generate: %s\n", err.msg);
        return 0;
    }
    const dato_st_tensor* t = dato_safetensors_find(st, "context");
    if (!t || t->ndim != 3 || t->shape[0] != 2 || t->shape[2] != c->cross_attention_dim) {
        fprintf(stderr, "dato-generate: %s: tensor 'context' must be (2, S, %d) = [uncond; cond]\n", o->context,
                c->cross_attention_dim);
        return 0;
    }
    *seq = (int)t->shape[1];
    *ctx = tensor_f32(st, "context");
    if (c->add_embed_in) {
        const dato_st_tensor* a = dato_safetensors_find(st, "text_embeds");
        const dato_st_tensor* b = dato_safetensors_find(st, "time_ids");
        int P = c->add_embed_in - 6 * c->addition_time_embed_dim;
        if (!a || a->ndim != 2 || a->shape[0] != 2 || a->shape[1] != P || !b || b->numel != 12) {
            fprintf(stderr, "dato-generate: %s: this SDXL-style model needs 'text_embeds' (2, %d) and 'time_ids' (2, 6)\n",
                    o->context, P);
            return 0;
        }
        *te = tensor_f32(st, "text_embeds");
        *ids = tensor_f32(st, "time_ids");
    }
    return *ctx != NULL;
}

// Writes the images (one file each, or a grid) with the run's settings as PNG text.
static int write_images(const options* o, const dato_unet_config* c, const float* lat, int h, int w) {
    int ch = c->out_channels == 4 ? 3 : c->out_channels;
    if (ch != 1 && ch != 3) {
        fprintf(stderr, "dato-generate: cannot show a %d-channel output as an image\n", c->out_channels);
        return 0;
    }
    size_t img = (size_t)h * w * ch, latent = (size_t)c->out_channels * h * w;
    uint8_t* px = malloc(img * o->batch);
    dato_error err;
    for (int i = 0; i < o->batch; i++) {
        dato_tensor x = dato_tensor_f32_3d((float*)lat + i * latent, c->out_channels, h, w);
        dato_status st = c->out_channels == 4 ? dato_latent_preview(&x, px + i * img, &err)
                                              : dato_image_from_float(&x, px + i * img, &err);
        if (st) {
            fprintf(stderr, "dato-generate: %s\n", err.msg);
            free(px);
            return 0;
        }
    }
    char steps[16], guidance[32], seed[32];
    snprintf(steps, sizeof steps, "%d", o->steps);
    snprintf(guidance, sizeof guidance, "%g", o->guidance);
    snprintf(seed, sizeof seed, "%llu", o->seed);
    const char* kv[] = {"dato:model", o->model, "dato:steps", steps, "dato:guidance", guidance, "dato:seed", seed,
                        "dato:preview", c->out_channels == 4 ? "latent preview (no VAE)" : "no", NULL};
    int ok = 1;
    if (o->grid || o->batch == 1) {
        int cols = 1;
        while (cols * cols < o->batch) cols++;
        int gh = h, gw = w, pad = o->batch > 1 ? 2 : 0;
        uint8_t* grid = px;
        if (o->batch > 1) {
            ok = !dato_image_grid_size(o->batch, h, w, cols, pad, &gh, &gw, &err);
            grid = ok ? malloc((size_t)gh * gw * ch) : NULL;
            ok = ok && grid && !dato_image_grid(grid, px, o->batch, h, w, ch, cols, pad, &err);
        }
        ok = ok && !dato_png_write(o->out, grid, gh, gw, ch, kv, &err);
        if (grid != px) free(grid);
        if (ok) printf("wrote %s (%dx%d)\n", o->out, gw, gh);
    } else {
        for (int i = 0; i < o->batch && ok; i++) {
            char path[4096];
            const char* dot = strrchr(o->out, '.');
            int stem = dot ? (int)(dot - o->out) : (int)strlen(o->out);
            snprintf(path, sizeof path, "%.*s-%d%s", stem, o->out, i, dot ? dot : ".png");
            ok = !dato_png_write(path, px + i * img, h, w, ch, kv, &err);
            if (ok) printf("wrote %s (%dx%d)\n", path, w, h);
        }
    }
    if (!ok) fprintf(stderr, "dato-generate: %s\n", err.msg);
    free(px);
    return ok;
}

int main(int argc, char** argv) {
    options o;
    if (!parse_args(argc, argv, &o)) return 2;
    dato_error err;
    dato_backend be;
    if (dato_backend_cpu_init(&be, o.threads, &err)) {
        fprintf(stderr, "dato-generate: %s\n", err.msg);
        return 1;
    }
    dato_pipeline p;
    if (dato_pipeline_open(&p, o.model, &be, NULL, &err)) {
        fprintf(stderr, "dato-generate: %s\n", err.msg);
        dato_backend_destroy(&be);
        return 1;
    }
    const dato_unet_config* c = &p.unet.cfg;
    int factor = c->in_channels == 4 ? 8 : 1; // latent models: the SD VAE's factor
    int size = o.size ? o.size : c->sample_size * factor;
    int div = factor << (c->n_levels - 1);
    int rc = 1;
    dato_safetensors cst = {0};
    float *ctx = NULL, *te = NULL, *ids = NULL, *lat = NULL;
    int seq = 0;
    if (size % div) {
        fprintf(stderr, "dato-generate: --size %d must be a multiple of %d for this model\n", size, div);
        goto done;
    }
    if (!load_context(&o, c, &cst, &ctx, &seq, &te, &ids)) goto done;
    int h = size / factor, w = h;
    lat = malloc((size_t)o.batch * c->out_channels * h * w * sizeof *lat);
    progress_state ps = {.t0 = now_s()};
    dato_generate_params gp = {.steps = o.steps, .sampler = o.have_sampler ? o.sampler : p.sched.kind,
                               .guidance = o.guidance, .seed = o.seed, .batch = o.batch, .height = h, .width = w,
                               .seq = seq, .context = ctx, .text_embeds = te, .time_ids = ids,
                               .progress = print_progress, .progress_ctx = &ps};
    if (dato_pipeline_generate(&p, &gp, lat, &err)) {
        fprintf(stderr, "dato-generate: %s\n", err.msg);
        goto done;
    }
    if (o.latents_out) {
        int64_t shape[4] = {o.batch, c->out_channels, h, w};
        dato_st_write_entry e = {.name = "latents", .dtype = DATO_F32, .ndim = 4, .shape = shape, .data = lat};
        if (dato_safetensors_write(o.latents_out, &e, 1, NULL, &err)) {
            fprintf(stderr, "dato-generate: %s\n", err.msg);
            goto done;
        }
        printf("wrote %s\n", o.latents_out);
    }
    if (write_images(&o, c, lat, h, w)) rc = 0;
done:
    free(lat);
    free(ctx);
    free(te);
    free(ids);
    if (cst.path) dato_safetensors_close(&cst);
    dato_pipeline_close(&p);
    dato_backend_destroy(&be);
    return rc;
}
