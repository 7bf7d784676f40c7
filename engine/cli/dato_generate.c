// dato-generate: images from a Stable-Diffusion-family model folder or single file.
//
//   dato-generate --model tests/fixtures/pipeline/sd15 --prompt "a photo of a cat" --steps 10 --batch 4 --grid
//
// Prompts come from --prompt or --prompts-file (one per line); each prompt gets --batch images,
// prompt j using seed + j (image i of it: stream i of that seed). A model without text
// encoders takes its conditioning as tensors (--context). Every PNG records the prompt, the
// negative prompt, the seed, the sampler, the steps, the guidance and the schedule.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cost.h"
#include "image.h"
#include "model_defaults.h"
#include "pipeline.h"
#include "safetensors.h"
#include "weight_dtype.h"
#ifdef DATO_HAVE_CUDA
#include "backend_cuda.h"
#include "cuda_device.h"
#endif

#define MAX_PROMPTS 4096

typedef struct {
    const char *model, *context, *prompt, *prompts_file, *negative, *out, *latents_out, *tokenizer, *schedule;
    const char* backend;            // "cpu" or "cuda"
    dato_dtype dtype;               // Linear/Conv weights: F32, or F16/BF16 (CUDA)
    int steps, batch, size, threads, device, grid, have_sampler, compare_baseline;
    float guidance;                 // steps / guidance < 0: the model's dato.json, else 50 / 7.5
    char default_model[4096];
    unsigned long long seed;
    dato_sampler_kind sampler;
    dato_loop_kind loop;
    int conv;                       // --conv: an index of CONV_NAMES, dato_cuda_conv's order
} options;

static const char* const LOOP_NAMES[] = {"auto", "host", "device"};  // dato_loop_kind's order
static const char* const CONV_NAMES[] = {"auto", "im2col", "cudnn"}; // dato_cuda_conv's order

// The index of v in names[0..n), or -1.
static int name_index(const char* v, const char* const* names, int n) {
    for (int k = 0; k < n; k++)
        if (!strcmp(v, names[k])) return k;
    return -1;
}

static void usage(FILE* f) {
    fprintf(f,
            "usage: dato-generate [--model DIR|FILE] (--prompt TEXT | --prompts-file FILE | --context FILE) [options]\n"
            "\n"
            "Generates images with a Stable Diffusion 1.x/2.x/SDXL-family model on the CPU or a CUDA GPU.\n"
            "\n"
            "  --model DIR|FILE       diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/,\n"
            "                         scheduler/; SDXL adds text_encoder_2/, tokenizer_2/), a bare UNet folder,\n"
            "                         or an LDM single-file .safetensors (default: the embedded models/fashion-sd,\n"
            "                         or $DATO_DEFAULT_MODEL)\n"
            "  --prompt TEXT          the prompt\n"
            "  --prompts-file FILE    one prompt per line (empty lines skipped)\n"
            "  --negative-prompt TEXT the negative prompt for every prompt (default: none; SDXL then uses zeros)\n"
            "  --context FILE         conditioning as tensors instead of prompts: safetensors with context\n"
            "                         (2, S, X) = [uncond; cond] (+ text_embeds (2, P), time_ids (2, 6) for SDXL)\n"
            "  --steps N              sampler steps (default: the model's dato.json, else 50)\n"
            "  --sampler NAME         ddim | pndm (plms) | dpmpp-2m | euler | euler-a\n"
            "                         (default: the model's scheduler_config.json)\n"
            "  --guidance G           classifier-free guidance scale (default: the model's\n"
            "                         dato.json, else 7.5; <= 1 turns it off)\n"
            "  --seed S               seed; prompt j uses S + j, its image i stream i of that (default 0)\n"
            "  --batch B              images per prompt (default 1)\n"
            "  --size PX              image size in pixels (default: the UNet's sample_size x the VAE factor)\n"
            "  --out PATH.png         output (default results/dato-generate.png); several images go to\n"
            "                         PATH-<prompt>-<image>.png, or with --grid one grid PATH.png\n"
            "  --grid                 one grid PNG: a row per prompt, a column per image\n"
            "  --latents-out FILE     also write the final latents (N, C, h, w) as safetensors\n"
            "  --schedule FILE|PRESET a DaTo schedule (cache depth, prune ratio per step): a JSON file\n"
            "                         (docs/SCHEDULES.md) or baseline | deepcache:N | deepcache:N:center:power |\n"
            "                         tome:R | dato-paper; prints each step's MACs and the time\n"
            "  --compare-baseline     with --schedule: also run the baseline and print the measured speedup\n"
            "  --tokenizer DIR        single files: the CLIP vocab.json + merges.txt (default models/clip_tokenizer)\n"
            "  --backend cpu|cuda     where the networks run (default cpu); cuda needs a build with\n"
            "                         -DDATO_CUDA=ON\n"
            "  --device N             the CUDA device for --backend cuda (default 0)\n"
            "  --dtype f32|f16|bf16   how Linear/Conv weights are stored (default f32): f16/bf16 convert them\n"
            "                         at load (round to nearest even; half the weight memory) and multiply on\n"
            "                         tensor cores with f32 accumulation, the attention products too;\n"
            "                         needs --backend cuda\n"
            "  --loop auto|host|device where the sampler runs (default auto: host on the CPU, device on CUDA):\n"
            "                         host keeps the latents on the host (diffusers' arithmetic, the reference);\n"
            "                         device keeps them on the backend and replays the UNet calls as graphs\n"
            "  --conv auto|im2col|cudnn how CUDA runs convolutions (default auto: cuDNN where the build has it)\n"
            "  --threads N            CPU threads (default: all)\n"
            "  --help                 this text\n");
}

static int parse_args(int argc, char** argv, options* o) {
    *o = (options){.steps = -1, .batch = 1, .guidance = -1.0f, .out = "results/dato-generate.png", .backend = "cpu"};
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
        if (!strcmp(a, "--compare-baseline")) {
            o->compare_baseline = 1;
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
        else if (!strcmp(a, "--prompts-file")) o->prompts_file = v;
        else if (!strcmp(a, "--negative-prompt")) o->negative = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--latents-out")) o->latents_out = v;
        else if (!strcmp(a, "--tokenizer")) o->tokenizer = v;
        else if (!strcmp(a, "--schedule")) o->schedule = v;
        else if (!strcmp(a, "--backend")) o->backend = v;
        else if (!strcmp(a, "--device")) o->device = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--dtype")) {
            dato_error err;
            if (dato_weight_dtype_parse(v, &o->dtype, &err)) {
                fprintf(stderr, "dato-generate: --dtype: %s\n", err.msg);
                return 0;
            }
        }
        else if (!strcmp(a, "--loop") || !strcmp(a, "--conv")) {
            int is_loop = !strcmp(a, "--loop"), k = name_index(v, is_loop ? LOOP_NAMES : CONV_NAMES, 3);
            if (k < 0) {
                fprintf(stderr, "dato-generate: %s '%s': expected %s\n", a, v,
                        is_loop ? "auto, host or device" : "auto, im2col or cudnn");
                return 0;
            }
            if (is_loop) o->loop = (dato_loop_kind)k;
            else o->conv = k;
        }
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
        dato_error err;
        if (dato_default_model_dir(o->default_model, sizeof o->default_model, &err)) {
            fprintf(stderr, "dato-generate: %s\n", err.msg);
            return 0;
        }
        o->model = o->default_model;
    }
    if (!!o->prompt + !!o->prompts_file + !!o->context != 1) {
        fprintf(stderr, "dato-generate: give exactly one of --prompt, --prompts-file, --context (see --help)\n");
        return 0;
    }
    if ((o->steps != -1 && (o->steps < 1 || o->steps > 1000)) || o->batch < 1 || o->batch > 1024 || o->size < 0) {
        fprintf(stderr, "dato-generate: --steps must be in 1..1000, --batch in 1..1024, --size >= 0\n");
        return 0;
    }
    if (strcmp(o->backend, "cpu") && strcmp(o->backend, "cuda")) {
        fprintf(stderr, "dato-generate: --backend '%s': expected cpu or cuda\n", o->backend);
        return 0;
    }
    if (o->device < 0) {
        fprintf(stderr, "dato-generate: --device must be >= 0\n");
        return 0;
    }
    return 1;
}

// Starts the backend --backend names; 0 with a message when it cannot run here.
static int backend_init(dato_backend* be, const options* o) {
    dato_error err;
    if (!strcmp(o->backend, "cpu")) {
        if (!dato_backend_cpu_init(be, o->threads, &err)) return 1;
        fprintf(stderr, "dato-generate: %s\n", err.msg);
        return 0;
    }
#ifdef DATO_HAVE_CUDA
    // Half weights take the attention products onto the tensor cores too.
    dato_cuda_options copt = {.attention = o->dtype, .conv = (dato_cuda_conv)o->conv};
    dato_status st = dato_backend_cuda_init(be, o->device, &err);
    if (!st && (st = dato_backend_cuda_configure(be, &copt, &err))) dato_backend_destroy(be);
    if (st) {
        fprintf(stderr, "dato-generate: --backend cuda --device %d: %s\n", o->device, err.msg);
        return 0;
    }
    char desc[256];
    if (!dato_cuda_describe(o->device, desc, sizeof desc, &err))
        fprintf(stderr, "dato-generate: CUDA device %d: %s\n", o->device, desc);
    return 1;
#else
    (void)be;
    fprintf(stderr, "dato-generate: --backend cuda: this build has no CUDA backend (rebuild with -DDATO_CUDA=ON on a "
                    "machine with nvcc)\n");
    return 0;
#endif
}

// Reads non-empty lines (without their newline) of path; *n gets the count.
static char** read_prompts(const char* path, int* n) {
    FILE* f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "dato-generate: --prompts-file %s: cannot open\n", path);
        return NULL;
    }
    char** lines = calloc(MAX_PROMPTS, sizeof *lines);
    char* line = NULL;
    size_t cap = 0;
    ssize_t len;
    *n = 0;
    while (lines && (len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        if (*n == MAX_PROMPTS) {
            fprintf(stderr, "dato-generate: %s: more than %d prompts\n", path, MAX_PROMPTS);
            break;
        }
        lines[(*n)++] = strdup(line);
    }
    free(line);
    fclose(f);
    if (*n == 0 && lines) fprintf(stderr, "dato-generate: %s: no prompts\n", path);
    return lines;
}

typedef struct {
    double t0;
    const char* what;
} progress_state;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void print_progress(void* ctx, int done, int total) {
    progress_state* ps = ctx;
    double el = now_s() - ps->t0, eta = done ? el / done * (total - done) : 0;
    fprintf(stderr, "\rdato-generate: %s: UNet call %d/%d, %.1f s elapsed, ETA %.1f s   ", ps->what, done, total, el,
            eta);
    if (done == total) fprintf(stderr, "\n");
}

// Prints each step's policy and analytic MACs (one guided UNet call), the totals and the
// analytic speedup over the baseline.
static int print_schedule_costs(const dato_pipeline* p, const dato_schedule* s, const options* o, int latent) {
    const dato_unet* u = &p->unet;
    int rows = o->guidance > 1.0f ? 2 * o->batch : o->batch, B = u->n_branches;
    int seq = p->n_text ? dato_tokenizer_max_len(p->tokenizer[0]) : 77;
    dato_error err;
    dato_macs full, m;
    if (dato_unet_step_macs(u, rows, latent, latent, seq, B + 1, 0.0f, -1, 2, &full, &err)) {
        fprintf(stderr, "dato-generate: %s\n", err.msg);
        return 0;
    }
    double total = 0;
    printf("schedule %s: %d steps, %d branches (depth %d = full)\n", o->schedule, s->steps, B, B + 1);
    printf("  step  depth  ratio    GMAC\n");
    for (int k = 0; k < s->steps; k++) {
        if (dato_unet_step_macs(u, rows, latent, latent, seq, s->genes[k].depth, s->genes[k].ratio, -1, 2, &m, &err)) {
            fprintf(stderr, "dato-generate: step %d: %s\n", k, err.msg);
            return 0;
        }
        total += m.total;
        printf("  %4d  %5d  %5.1f  %9.4f\n", k, s->genes[k].depth, (double)s->genes[k].ratio, m.total / 1e9);
    }
    printf("total %.2f GMAC vs %.2f GMAC for the baseline: %.2fx fewer MACs (one UNet call per step; context "
           "length %d assumed)\n", total / 1e9, full.total * s->steps / 1e9, full.total * s->steps / total, seq);
    return 1;
}

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

// Conditioning from a --context file, checked against the model and repeated for B images.
static int load_context(const char* path, const dato_unet_config* c, int B, dato_conditioning* cond) {
    dato_error err;
    dato_safetensors st;
    if (dato_safetensors_open(&st, path, &err)) {
        fprintf(stderr, "dato-generate: %s\n", err.msg);
        return 0;
    }
    int P = c->add_embed_in ? c->add_embed_in - 6 * c->addition_time_embed_dim : 0, ok = 0;
    const dato_st_tensor* t = dato_safetensors_find(&st, "context");
    const dato_st_tensor* a = dato_safetensors_find(&st, "text_embeds");
    const dato_st_tensor* b = dato_safetensors_find(&st, "time_ids");
    float *ctx = NULL, *te = NULL, *ids = NULL;
    if (!t || t->ndim != 3 || t->shape[0] != 2 || t->shape[2] != c->cross_attention_dim)
        fprintf(stderr, "dato-generate: %s: tensor 'context' must be (2, S, %d) = [uncond; cond]\n", path,
                c->cross_attention_dim);
    else if (P && (!a || a->ndim != 2 || a->shape[0] != 2 || a->shape[1] != P || !b || b->numel != 12))
        fprintf(stderr, "dato-generate: %s: this SDXL-style model needs 'text_embeds' (2, %d) and 'time_ids' (2, 6)\n",
                path, P);
    else if ((ctx = tensor_f32(&st, "context")) && (!P || ((te = tensor_f32(&st, "text_embeds")) &&
                                                           (ids = tensor_f32(&st, "time_ids"))))) {
        ok = !dato_conditioning_repeat(cond, B, (int)t->shape[1], (int)t->shape[2], ctx, P, te, ids, &err);
        if (!ok) fprintf(stderr, "dato-generate: %s\n", err.msg);
    }
    free(ctx);
    free(te);
    free(ids);
    dato_safetensors_close(&st);
    return ok;
}

// Writes the images of one prompt (or all of them into a grid) with the run's settings as PNG text.
static int write_png(const char* path, const uint8_t* px, int h, int w, int ch, const options* o, const char* prompt,
                     unsigned long long seed, const char* sampler) {
    char steps[16], guidance[32], seed_s[32];
    snprintf(steps, sizeof steps, "%d", o->steps);
    snprintf(guidance, sizeof guidance, "%g", o->guidance);
    snprintf(seed_s, sizeof seed_s, "%llu", seed);
    const char* kv[] = {"dato:model", o->model, "dato:prompt", prompt ? prompt : "(tensor conditioning)",
                        "dato:negative_prompt", o->negative ? o->negative : "", "dato:seed", seed_s,
                        "dato:sampler", sampler, "dato:steps", steps, "dato:guidance", guidance,
                        "dato:schedule", o->schedule ? o->schedule : "baseline", NULL};
    dato_error err;
    if (dato_png_write(path, px, h, w, ch, kv, &err)) {
        fprintf(stderr, "dato-generate: %s\n", err.msg);
        return 0;
    }
    printf("wrote %s (%dx%d)\n", path, w, h);
    return 1;
}

int main(int argc, char** argv) {
    options o;
    if (!parse_args(argc, argv, &o)) return 2;
    int n_prompts = 1;
    char** prompts = NULL;
    if (o.prompts_file && !(prompts = read_prompts(o.prompts_file, &n_prompts))) return 2;
    if (o.prompts_file && n_prompts == 0) return 2;

    dato_error err;
    dato_backend be;
    if (!backend_init(&be, &o)) return 1;
    dato_pipeline p;
    dato_pipeline_options popt = {.tokenizer_dir = o.tokenizer, .dtype = o.dtype};
    double t_load = now_s();
    if (dato_pipeline_open(&p, o.model, &be, &popt, &err)) {
        fprintf(stderr, "dato-generate: %s\n", err.msg);
        dato_backend_destroy(&be);
        return 1;
    }
    fprintf(stderr, "dato-generate: loaded %s in %.2f s\n", o.model, now_s() - t_load);
    dato_model_defaults md;
    if (dato_model_defaults_load(&md, o.model, &err)) {
        fprintf(stderr, "dato-generate: %s\n", err.msg);
        dato_pipeline_close(&p);
        dato_backend_destroy(&be);
        return 1;
    }
    if (o.steps < 0) o.steps = md.steps ? md.steps : 50;
    if (o.guidance < 0) o.guidance = md.guidance ? md.guidance : 7.5f;
    const dato_unet_config* c = &p.unet.cfg;
    int factor = dato_pipeline_vae_factor(&p);
    int size = o.size ? o.size : md.height ? md.height : c->sample_size * factor;
    int div = dato_pipeline_size_multiple(&p), rc = 1, B = o.batch;
    int h = size / factor, w = h, ch = dato_pipeline_image_channels(&p);
    dato_sampler_kind kind = o.have_sampler ? o.sampler : p.sched.kind;
    const char* kind_name = dato_sampler_kind_name(kind);
    dato_schedule* sched = NULL;
    size_t latent = (size_t)c->out_channels * h * w;
    float* lat = malloc((size_t)n_prompts * B * latent * sizeof *lat);          // (N, C, h, w)
    uint8_t* px = malloc((size_t)n_prompts * B * size * size * ch);            // (N, H, W, ch)
    const char** texts = malloc((size_t)B * sizeof *texts);
    const char** negs = malloc((size_t)B * sizeof *negs);
    if (size % div) {
        fprintf(stderr, "dato-generate: --size %d must be a multiple of %d for this model\n", size, div);
        goto done;
    }
    if (!lat || !px || !texts || !negs) {
        fprintf(stderr, "dato-generate: out of memory\n");
        goto done;
    }
    if (!o.context && p.n_text == 0) {
        fprintf(stderr, "dato-generate: %s has no text encoder: pass conditioning with --context FILE\n", o.model);
        goto done;
    }
    if (o.schedule) {
        sched = malloc(sizeof *sched);
        if (!sched || dato_schedule_resolve(sched, o.schedule, o.steps, p.unet.n_branches, &err)) {
            fprintf(stderr, "dato-generate: --schedule: %s\n", sched ? err.msg : "out of memory");
            goto done;
        }
        if (!print_schedule_costs(&p, sched, &o, size / factor)) {
            goto done;
        }
    }
    for (int j = 0; j < n_prompts; j++) {
        const char* prompt = prompts ? prompts[j] : o.prompt;
        dato_conditioning cond;
        if (o.context) {
            if (!load_context(o.context, c, B, &cond)) goto done;
        } else {
            for (int i = 0; i < B; i++) {
                texts[i] = prompt;
                negs[i] = o.negative;
            }
            if (dato_pipeline_encode(&p, texts, negs, B, size, size, &cond, &err)) {
                fprintf(stderr, "dato-generate: prompt %d: %s\n", j, err.msg);
                goto done;
            }
        }
        char what[64];
        snprintf(what, sizeof what, "prompt %d/%d", j + 1, n_prompts);
        progress_state ps = {.t0 = now_s(), .what = what};
        dato_generate_params gp = {.steps = o.steps, .sampler = kind, .guidance = o.guidance, .seed = o.seed + j,
                                   .height = h, .width = w, .cond = &cond, .schedule = sched,
                                   .progress = print_progress, .progress_ctx = &ps, .loop = o.loop};
        float* lj = lat + (size_t)j * B * latent;
        dato_status st = DATO_OK;
        double t_base = 0;
        if (sched && o.compare_baseline) { // the same run without the schedule, timed first
            gp.schedule = NULL;
            ps.what = "baseline";
            st = dato_pipeline_generate(&p, &gp, lj, &err);
            t_base = now_s() - ps.t0;
            gp.schedule = sched;
            ps.what = what;
            ps.t0 = now_s();
        }
        if (!st) st = dato_pipeline_generate(&p, &gp, lj, &err);
        if (!st && sched)
            printf("prompt %d: denoising %.2f s with the schedule%s", j, now_s() - ps.t0, t_base > 0 ? "" : "\n");
        if (!st && t_base > 0)
            printf(", %.2f s baseline: measured speedup %.2fx\n", t_base, t_base / (now_s() - ps.t0));
        dato_conditioning_free(&cond);
        double t_decode = now_s();
        if (!st) st = dato_pipeline_decode(&p, lj, B, h, w, px + (size_t)j * B * size * size * ch, NULL, &ch, &err);
        if (!st) fprintf(stderr, "dato-generate: prompt %d/%d: denoised in %.2f s, decoded in %.2f s\n", j + 1, n_prompts,
                         t_decode - ps.t0, now_s() - t_decode);
        if (st) {
            fprintf(stderr, "dato-generate: prompt %d: %s\n", j, err.msg);
            goto done;
        }
        if (o.grid) continue;
        for (int i = 0; i < B; i++) {
            char path[4096];
            const char* dot = strrchr(o.out, '.');
            int stem = dot ? (int)(dot - o.out) : (int)strlen(o.out);
            if (n_prompts * B == 1) snprintf(path, sizeof path, "%s", o.out);
            else snprintf(path, sizeof path, "%.*s-%d-%d%s", stem, o.out, j, i, dot ? dot : ".png");
            if (!write_png(path, px + ((size_t)j * B + i) * size * size * ch, size, size, ch, &o, prompt, o.seed + j,
                           kind_name))
                goto done;
        }
    }
    if (o.grid) {
        int gh, gw, pad = n_prompts * B > 1 ? 2 : 0;
        uint8_t* grid = NULL;
        int ok = !dato_image_grid_size(n_prompts * B, size, size, B, pad, &gh, &gw, &err) &&
                 (grid = malloc((size_t)gh * gw * ch)) &&
                 !dato_image_grid(grid, px, n_prompts * B, size, size, ch, B, pad, &err);
        if (!ok) fprintf(stderr, "dato-generate: grid: %s\n", grid ? err.msg : "out of memory");
        ok = ok && write_png(o.out, grid, gh, gw, ch, &o, n_prompts == 1 ? (prompts ? prompts[0] : o.prompt) : "(several)",
                             o.seed, kind_name);
        free(grid);
        if (!ok) goto done;
    }
    if (o.latents_out) {
        int64_t shape[4] = {(int64_t)n_prompts * B, c->out_channels, h, w};
        dato_st_write_entry e = {.name = "latents", .dtype = DATO_F32, .ndim = 4, .shape = shape, .data = lat};
        if (dato_safetensors_write(o.latents_out, &e, 1, NULL, &err)) {
            fprintf(stderr, "dato-generate: %s\n", err.msg);
            goto done;
        }
        printf("wrote %s\n", o.latents_out);
    }
    rc = 0;
done:
    free(sched);
    free(lat);
    free(px);
    free(texts);
    free(negs);
    if (prompts)
        for (int j = 0; j < n_prompts; j++) free(prompts[j]);
    free(prompts);
    dato_pipeline_close(&p);
    dato_backend_destroy(&be);
    return rc;
}
