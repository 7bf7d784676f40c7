// dato-generate: images from a Stable-Diffusion-family model folder or single file.
//
//   dato-generate --model tests/fixtures/pipeline/sd15 --prompt "a photo of a cat" --steps 10
//       --num-images-per-prompt 4 --grid
//
// Prompts come from --prompt or --prompts-file (one per line); each prompt gets
// --num-images-per-prompt images, prompt j using seed + j, made --batch images per call. The
// initial noise of prompt j: dato's own (image i: stream i of seed + j), torch's (one
// torch.randn draw of all its images from torch.Generator().manual_seed(seed + j), as diffusers
// draws them), or a --latents file. A model without text encoders takes its conditioning as
// tensors (--context). Every PNG records the run: dato's own keys and an AUTOMATIC1111-style
// "parameters" text.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend_open.h"
#include "cli_args.h"
#include "clock.h"
#include "cost.h"
#include "file_util.h"
#include "image.h"
#include "latents_file.h"
#include "model_defaults.h"
#include "pipeline.h"
#include "rng.h"
#include "safetensors.h"
#include "single_file.h"
#include "torch_rng.h"
#include "weight_dtype.h"

#define MAX_PROMPTS 4096
#define DATO_MAX_HINTS 16 // room for single_file.h's hint rows

static const char* const LOOPS[] = {"auto", "host", "device", NULL}; // dato_loop_kind's order
static const char* const NOISES[] = {"dato", "torch", "torch-avx2", "torch-default", NULL};
enum { NOISE_DATO, NOISE_TORCH, NOISE_TORCH_AVX2, NOISE_TORCH_DEFAULT };

typedef struct {
    const char *model, *context, *prompt, *prompts_file, *negative, *out, *latents_out, *latents, *tokenizer, *schedule;
    const char *sampler_name, *dtype_name, *scheduler_config, *prediction_type;
    const char* hint_values[DATO_MAX_HINTS]; // the value of each single-file hint flag, by row; NULL: not given
    int steps, images_per_prompt, batch, size, height, width, threads, device, grid, compare_baseline, help;
    int backend, loop, conv, noise;
    float guidance;             // < 0: the model's dato.json, else 7.5
    uint64_t seed;
    int have_steps, have_sampler, have_guidance;
    dato_sampler_kind sampler;
    dato_dtype dtype;           // Linear/Conv weights: F32, or F16/BF16 (CUDA)
    char default_model[4096];
} options;

#define N_FIXED 32
#define N_OPTIONS (N_FIXED + DATO_MAX_HINTS)
// The options, as data: one row per flag (cli_args.h), then one per single-file shape hint
// (single_file.h). Defaults are the zero values set in parse_args.
static int options_table(options* o, dato_arg* t, int* n_fixed) {
    dato_arg rows[N_FIXED] = {
        {"model", NULL, DATO_ARG_TEXT, &o->model, 0, 0, NULL, NULL, "DIR|FILE",
         "diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, "
         "scheduler/; SDXL adds text_encoder_2/, tokenizer_2/), a bare UNet folder, or an "
         "LDM single file .safetensors/.ckpt (default: the embedded fashion-sd model, or "
         "$DATO_DEFAULT_MODEL)"},
        {"prompt", NULL, DATO_ARG_TEXT, &o->prompt, 0, 0, NULL, NULL, "TEXT", "the prompt"},
        {"prompts-file", NULL, DATO_ARG_TEXT, &o->prompts_file, 0, 0, NULL, NULL, "FILE",
         "one prompt per line (empty lines skipped)"},
        {"negative-prompt", NULL, DATO_ARG_TEXT, &o->negative, 0, 0, NULL, NULL, "TEXT",
         "the negative prompt of every prompt (default: none; SDXL then uses zeros)"},
        {"context", NULL, DATO_ARG_TEXT, &o->context, 0, 0, NULL, NULL, "FILE",
         "conditioning as tensors instead of prompts: safetensors with context (2, S, X) = "
         "[uncond; cond] (+ text_embeds (2, P), time_ids (2, 6) for SDXL)"},
        {"steps", "num-inference-steps", DATO_ARG_INT, &o->steps, 1, 1000, NULL, &o->have_steps, "N",
         "sampler steps (default: the --schedule file's, else the model's dato.json, else 50)"},
        {"sampler", NULL, DATO_ARG_TEXT, &o->sampler_name, 0, 0, NULL, &o->have_sampler, "NAME",
         "ddim | pndm (plms) | dpmpp-2m | euler | euler-a (default: the --schedule file's, "
         "else the model's scheduler)"},
        {"guidance", "guidance-scale", DATO_ARG_FLOAT, &o->guidance, 0, 100, NULL, &o->have_guidance, "G",
         "classifier-free guidance scale (default: the model's dato.json, else 7.5; "
         "<= 1 turns it off)"},
        {"seed", NULL, DATO_ARG_U64, &o->seed, 0, 18446744073709551615.0, NULL, NULL, "S",
         "seed: prompt j uses S + j (default 0)"},
        {"noise", NULL, DATO_ARG_CHOICE, &o->noise, 0, 0, NOISES, NULL, "dato|torch|torch-avx2|torch-default",
         "initial noise: dato's streams (image i of prompt j: stream i of seed S + j), or "
         "torch.randn of all the prompt's images from torch.Generator().manual_seed(S + j), as "
         "diffusers draws it for pipe(prompt, num_images_per_prompt=N, generator=...); torch's "
         "last bits depend on its CPU capability: torch takes this CPU's, torch-avx2 and "
         "torch-default name one (default dato; docs/NOISE.md)"},
        {"latents", NULL, DATO_ARG_TEXT, &o->latents, 0, 0, NULL, NULL, "FILE",
         "the initial noise itself: .npy or safetensors, (prompts x images, C, h, w), standard "
         "normal as diffusers' latents argument (before init_noise_sigma)"},
        {"num-images-per-prompt", NULL, DATO_ARG_INT, &o->images_per_prompt, 1, 1024, NULL, NULL, "N",
         "images per prompt (default 1)"},
        {"batch", NULL, DATO_ARG_INT, &o->batch, 1, 1024, NULL, NULL, "B",
         "images per generate call (default: all the images of a prompt); the images do not "
         "depend on it, except euler-a's per-step noise"},
        {"height", NULL, DATO_ARG_INT, &o->height, 1, 16384, NULL, NULL, "H",
         "image height in pixels (default: the model's dato.json, else its sample size)"},
        {"width", NULL, DATO_ARG_INT, &o->width, 1, 16384, NULL, NULL, "W", "image width in pixels (default: as --height)"},
        {"size", NULL, DATO_ARG_INT, &o->size, 1, 16384, NULL, NULL, "PX", "sets --height and --width"},
        {"out", NULL, DATO_ARG_TEXT, &o->out, 0, 0, NULL, NULL, "PATH.png",
         "output (default results/dato-generate.png; folders are created); several images go "
         "to PATH-<prompt>-<image>.png, or with --grid one grid PATH.png"},
        {"grid", NULL, DATO_ARG_FLAG, &o->grid, 0, 0, NULL, NULL, NULL,
         "one grid PNG: a row per prompt, a column per image"},
        {"latents-out", NULL, DATO_ARG_TEXT, &o->latents_out, 0, 0, NULL, NULL, "FILE",
         "also write the final latents (N, C, h, w) as safetensors"},
        {"schedule", NULL, DATO_ARG_TEXT, &o->schedule, 0, 0, NULL, NULL, "FILE|PRESET",
         "a DaTo schedule (cache depth, prune ratio per step): a JSON file from dato-export "
         "(its steps and sampler are the run's unless given) or a preset: baseline | "
         "deepcache:N | tome:R | dato-paper | ... (docs/SCHEDULES.md); prints each step's MACs"},
        {"compare-baseline", NULL, DATO_ARG_FLAG, &o->compare_baseline, 0, 0, NULL, NULL, NULL,
         "with --schedule: also run the baseline and print the measured speedup"},
        {"scheduler-config", NULL, DATO_ARG_TEXT, &o->scheduler_config, 0, 0, NULL, NULL, "FILE|DIR",
         "the scheduler_config.json to use (a file, a scheduler/ folder or a diffusers folder) over "
         "the model's own; a single file otherwise gets the one diffusers' from_single_file gives "
         "its model type (docs/SINGLE_FILE.md)"},
        {"prediction-type", NULL, DATO_ARG_TEXT, &o->prediction_type, 0, 0, NULL, NULL, "epsilon|v_prediction",
         "what the UNet predicts, over the scheduler config's (e.g. an SD2 512 px epsilon file, "
         "which diffusers takes for 768 px v_prediction)"},
        {"tokenizer", NULL, DATO_ARG_TEXT, &o->tokenizer, 0, 0, NULL, NULL, "DIR",
         "single files: a CLIP tokenizer folder, vocab.json + merges.txt or tokenizer.json "
         "(default: dato's models/clip_tokenizer)"},
        {"backend", NULL, DATO_ARG_CHOICE, &o->backend, 0, 0, dato_backend_names, NULL, "cpu|cuda",
         "where the networks run (default cpu); cuda needs a build with -DDATO_CUDA=ON"},
        {"device", NULL, DATO_ARG_INT, &o->device, 0, 1023, NULL, NULL, "N",
         "the CUDA device for --backend cuda (default 0)"},
        {"dtype", NULL, DATO_ARG_TEXT, &o->dtype_name, 0, 0, NULL, NULL, "f32|f16|bf16",
         "how Linear/Conv weights are stored (default f32): f16/bf16 convert them at load "
         "and multiply on tensor cores with f32 accumulation; needs --backend cuda"},
        {"loop", NULL, DATO_ARG_CHOICE, &o->loop, 0, 0, LOOPS, NULL, "auto|host|device",
         "where the sampler runs (default auto: host on the CPU, device on CUDA)"},
        {"conv", NULL, DATO_ARG_CHOICE, &o->conv, 0, 0, dato_backend_conv_names, NULL, "auto|im2col|cudnn",
         "how CUDA runs convolutions (default auto: cuDNN where the build has it)"},
        {"threads", NULL, DATO_ARG_INT, &o->threads, 1, 1024, NULL, NULL, "N", "CPU threads (default: all)"},
        {"help", NULL, DATO_ARG_FLAG, &o->help, 0, 0, NULL, NULL, NULL, "this text"},
    };
    int n = 0;
    while (n < N_FIXED && rows[n].name) n++;
    memcpy(t, rows, (size_t)n * sizeof *rows);
    *n_fixed = n;
    int n_hints;
    const dato_single_file_hint* hints = dato_single_file_hint_table(&n_hints);
    for (int i = 0; i < n_hints && i < DATO_MAX_HINTS; i++)
        t[n++] = (dato_arg){hints[i].name, NULL, DATO_ARG_TEXT, &o->hint_values[i], 0, 0, NULL, NULL, hints[i].value,
                            hints[i].help};
    return n;
}

static void usage(FILE* f) {
    options o;
    dato_arg t[N_OPTIONS];
    int n_fixed, n = options_table(&o, t, &n_fixed);
    dato_text h;
    dato_error err;
    if (dato_text_init(&h, 16384, "--help", &err)) return;
    dato_text_append(&h, "usage: dato-generate [--model DIR|FILE] (--prompt TEXT | --prompts-file FILE | --context FILE) "
                         "[options]\n\nGenerates images with a Stable Diffusion 1.x/2.x/SDXL-family model on the CPU "
                         "or a CUDA GPU.\nA value follows its option as the next argument or after '=' (--steps=25).\n\n");
    dato_args_help(t, n_fixed, &h);
    dato_text_append(&h, "\nShape hints of a single file: what tensor shapes cannot tell about a small model of the SD "
                         "architecture\n(released checkpoints need none; docs/SINGLE_FILE.md):\n\n");
    dato_args_help(t + n_fixed, n - n_fixed, &h);
    fputs(h.data, f);
    dato_text_free(&h);
}

// Fills o: 1 go on, 0 stop with status 0 (--help), -1 a usage error (reported).
static int parse_args(int argc, char** argv, options* o) {
    *o = (options){.images_per_prompt = 1, .guidance = -1.0f, .out = "results/dato-generate.png"};
    dato_arg t[N_OPTIONS];
    int n_fixed, n = options_table(o, t, &n_fixed), n_pos = 0;
    const char* pos[1];
    dato_error err;
    if (dato_args_parse(argc, argv, t, n, pos, 0, &n_pos, &err)) {
        fprintf(stderr, "dato-generate: %s\n", err.msg);
        return -1;
    }
    if (o->help) {
        usage(stdout);
        return 0;
    }
    if (o->sampler_name && dato_sampler_kind_parse(o->sampler_name, &o->sampler, &err)) {
        fprintf(stderr, "dato-generate: --sampler: %s\n", err.msg);
        return -1;
    }
    if (o->dtype_name && dato_weight_dtype_parse(o->dtype_name, &o->dtype, &err)) {
        fprintf(stderr, "dato-generate: --dtype: %s\n", err.msg);
        return -1;
    }
    dato_prediction_type pt;
    if (o->prediction_type && dato_prediction_type_parse(o->prediction_type, &pt, &err)) {
        fprintf(stderr, "dato-generate: --prediction-type: %s\n", err.msg);
        return -1;
    }
    if (o->size && (o->height || o->width)) {
        fprintf(stderr, "dato-generate: give --size or --height/--width, not both\n");
        return -1;
    }
    if (o->size) o->height = o->width = o->size;
    if (!o->model) {
        if (dato_default_model_dir(o->default_model, sizeof o->default_model, &err)) {
            fprintf(stderr, "dato-generate: %s\n", err.msg);
            return -1;
        }
        o->model = o->default_model;
    }
    if (!!o->prompt + !!o->prompts_file + !!o->context != 1) {
        fprintf(stderr, "dato-generate: give exactly one of --prompt, --prompts-file, --context (see --help)\n");
        return -1;
    }
    if (o->latents && o->noise != NOISE_DATO) {
        fprintf(stderr, "dato-generate: --latents is the noise itself: it goes without --noise\n");
        return -1;
    }
    return 1;
}

// A schedule file's steps and sampler become the run's, before the model loads: a --steps that
// disagrees is refused with what to run instead. Presets fit any step count.
static int apply_schedule_file(options* o) {
    if (!o->schedule || !dato_schedule_names_file(o->schedule)) return 1;
    dato_schedule* s = malloc(sizeof *s);
    dato_error err;
    if (!s || dato_schedule_load(s, o->schedule, &err)) {
        fprintf(stderr, "dato-generate: --schedule: %s\n", s ? err.msg : "out of memory");
        free(s);
        return 0;
    }
    int ok = 1;
    if (o->have_steps && o->steps != s->steps) {
        fprintf(stderr, "dato-generate: --schedule %s was made for %d steps%s%s; this run asks --steps %d: drop "
                        "--steps (the schedule's steps are the default) or use --steps %d\n",
                o->schedule, s->steps, s->sampler[0] ? " of " : "", s->sampler, o->steps, s->steps);
        ok = 0;
    }
    o->steps = s->steps;
    o->have_steps = 1;
    dato_sampler_kind k;
    if (ok && s->sampler[0] && dato_sampler_kind_parse(s->sampler, &k, &err)) {
        fprintf(stderr, "dato-generate: --schedule %s: sampler: %s\n", o->schedule, err.msg);
        ok = 0;
    } else if (ok && s->sampler[0] && !o->have_sampler) {
        o->sampler = k;
        o->have_sampler = 1;
    } else if (ok && s->sampler[0] && k != o->sampler) {
        fprintf(stderr, "dato-generate: note: --schedule %s was searched with %s; running %s as --sampler asks\n",
                o->schedule, s->sampler, dato_sampler_kind_name(o->sampler));
    }
    free(s);
    return ok;
}

// Starts the backend --backend names; 0 with a message when it cannot run here.
static int backend_init(dato_backend* be, const options* o) {
    // Half weights take the attention products onto the tensor cores too.
    dato_backend_spec spec = {.name = dato_backend_names[o->backend], .threads = o->threads, .device = o->device,
                              .attention = o->dtype, .conv = o->conv ? dato_backend_conv_names[o->conv] : NULL};
    char desc[320];
    dato_error err;
    if (dato_backend_open(be, &spec, desc, sizeof desc, &err)) {
        fprintf(stderr, "dato-generate: %s\n", err.msg);
        return 0;
    }
    if (desc[0]) fprintf(stderr, "dato-generate: %s\n", desc);
    return 1;
}

// The non-empty lines of a --prompts-file, without their newlines, and where each was.
typedef struct {
    char** text; // (n)
    int* line;   // (n) its line in the file, from 1
    int n;
} prompt_list;

static void prompts_free(prompt_list* pl) {
    for (int j = 0; pl->text && j < pl->n; j++) free(pl->text[j]);
    free(pl->text);
    free(pl->line);
    *pl = (prompt_list){0};
}

// Reads path into pl: 1, or 0 with a message (unreadable, a folder, no prompts, too many).
static int read_prompts(const char* path, prompt_list* pl) {
    *pl = (prompt_list){0};
    FILE* f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "dato-generate: --prompts-file %s: cannot open: %s\n", path, strerror(errno));
        return 0;
    }
    pl->text = calloc(MAX_PROMPTS, sizeof *pl->text);
    pl->line = calloc(MAX_PROMPTS, sizeof *pl->line);
    int ok = pl->text && pl->line, line = 0;
    if (!ok) fprintf(stderr, "dato-generate: --prompts-file %s: out of memory\n", path);
    char* buf = NULL;
    size_t cap = 0;
    ssize_t len;
    while (ok && (len = getline(&buf, &cap, f)) >= 0) {
        line++;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) buf[--len] = 0;
        if (len == 0) continue;
        if (pl->n == MAX_PROMPTS) {
            fprintf(stderr, "dato-generate: --prompts-file %s:%d: more than %d prompts\n", path, line, MAX_PROMPTS);
            ok = 0;
            break;
        }
        pl->line[pl->n] = line;
        if (!(pl->text[pl->n++] = strdup(buf))) {
            fprintf(stderr, "dato-generate: --prompts-file %s:%d: out of memory\n", path, line);
            ok = 0;
        }
    }
    if (ok && ferror(f)) { // a folder opens, then fails to read
        fprintf(stderr, "dato-generate: --prompts-file %s: cannot read: %s\n", path, strerror(errno));
        ok = 0;
    }
    if (ok && pl->n == 0) {
        fprintf(stderr, "dato-generate: --prompts-file %s: no prompts (every line is empty)\n", path);
        ok = 0;
    }
    free(buf);
    fclose(f);
    if (!ok) prompts_free(pl);
    return ok;
}

// Where prompt j came from, for messages: FILE:LINE of --prompts-file, else the option.
static const char* prompt_origin(const options* o, const prompt_list* pl, int j, char* buf, size_t n) {
    if (pl->n) snprintf(buf, n, "--prompts-file %s:%d", o->prompts_file, pl->line[j]);
    else snprintf(buf, n, "%s", o->context ? "--context" : "--prompt");
    return buf;
}

typedef struct {
    double t0;
    const char* what;
    int tty; // stderr is a terminal: one line rewritten in place
} progress_state;

static void print_progress(void* ctx, int done, int total) {
    progress_state* ps = ctx;
    if (done < total && !ps->tty) return; // a log file gets the last line only, not one per call
    double el = dato_clock_s() - ps->t0, eta = done ? el / done * (total - done) : 0;
    fprintf(stderr, "%sdato-generate: %s: UNet call %d/%d, %.1f s elapsed, ETA %.1f s%s", ps->tty ? "\r" : "", ps->what,
            done, total, el, eta, ps->tty && done < total ? "   " : "\n");
}

// Prints each step's policy and analytic MACs (one guided UNet call), the totals and the
// analytic speedup over the baseline.
static int print_schedule_costs(const dato_pipeline* p, const dato_schedule* s, const options* o, int h, int w) {
    const dato_unet* u = &p->unet;
    int rows = o->guidance > 1.0f ? 2 * o->batch : o->batch, B = u->n_branches;
    int seq = p->n_text ? dato_tokenizer_max_len(p->tokenizer[0]) : 77;
    dato_error err;
    dato_macs full, m;
    if (dato_unet_step_macs(u, rows, h, w, seq, B + 1, 0.0f, -1, 2, &full, &err)) {
        fprintf(stderr, "dato-generate: %s\n", err.msg);
        return 0;
    }
    double total = 0;
    printf("schedule %s: %d steps, %d branches (depth %d = full)\n", o->schedule, s->steps, B, B + 1);
    printf("  step  depth  ratio    GMAC\n");
    for (int k = 0; k < s->steps; k++) {
        if (dato_unet_step_macs(u, rows, h, w, seq, s->genes[k].depth, s->genes[k].ratio, -1, 2, &m, &err)) {
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

// A malloc'd f32 copy of the --context file's tensor `name`, or NULL with a message: missing, of a
// dtype that is not F32/F16/BF16, or holding a NaN or infinity (which would make every latent NaN).
static float* tensor_f32(const dato_safetensors* st, const char* name) {
    const dato_st_tensor* t = dato_safetensors_find(st, name);
    if (!t) {
        fprintf(stderr, "dato-generate: --context %s: tensor '%s' is missing\n", st->path, name);
        return NULL;
    }
    size_t n = (size_t)t->numel;
    float* x = malloc((n + 1) * sizeof *x); // (numel) its values
    dato_error err;
    size_t bad;
    if (!x) fprintf(stderr, "dato-generate: --context %s: out of memory for tensor '%s'\n", st->path, name);
    else if (dato_st_tensor_to_f32(t, x, n, &err)) fprintf(stderr, "dato-generate: --context: %s\n", err.msg);
    else if ((bad = dato_first_nonfinite(x, n)) < n)
        fprintf(stderr, "dato-generate: --context %s: tensor '%s': value %zu of %zu is %g (conditioning must be "
                        "finite)\n", st->path, name, bad, n, (double)x[bad]);
    else
        return x;
    free(x);
    return NULL;
}

// Conditioning from a --context file, checked against the model and repeated for B images.
static int load_context(const char* path, const dato_unet_config* c, int B, dato_conditioning* cond) {
    dato_error err;
    dato_safetensors st;
    if (dato_safetensors_open(&st, path, &err)) {
        fprintf(stderr, "dato-generate: --context: %s\n", err.msg);
        return 0;
    }
    int P = c->add_embed_in ? c->add_embed_in - 6 * c->addition_time_embed_dim : 0, ok = 0;
    const dato_st_tensor* t = dato_safetensors_find(&st, "context");
    const dato_st_tensor* a = dato_safetensors_find(&st, "text_embeds");
    const dato_st_tensor* b = dato_safetensors_find(&st, "time_ids");
    float *ctx = NULL, *te = NULL, *ids = NULL;
    if (!t || t->ndim != 3 || t->shape[0] != 2 || t->shape[2] != c->cross_attention_dim)
        fprintf(stderr, "dato-generate: --context %s: tensor 'context' must be (2, S, %d) = [uncond; cond]\n", path,
                c->cross_attention_dim);
    else if (P && (!a || a->ndim != 2 || a->shape[0] != 2 || a->shape[1] != P || !b || b->numel != 12))
        fprintf(stderr, "dato-generate: --context %s: this SDXL-style model needs 'text_embeds' (2, %d) and 'time_ids' "
                        "(2, 6)\n", path, P);
    else if ((ctx = tensor_f32(&st, "context")) && (!P || ((te = tensor_f32(&st, "text_embeds")) &&
                                                           (ids = tensor_f32(&st, "time_ids"))))) {
        ok = !dato_conditioning_repeat(cond, B, (int)t->shape[1], (int)t->shape[2], ctx, P, te, ids, &err);
        if (!ok) fprintf(stderr, "dato-generate: --context %s: %s\n", path, err.msg);
    }
    free(ctx);
    free(te);
    free(ids);
    dato_safetensors_close(&st);
    return ok;
}


// Writes one image (or the grid) with the run's settings as PNG text: dato's own keys, and the
// "parameters" text AUTOMATIC1111's PNG Info and ComfyUI's importer read (docs/PNG_METADATA.md).
static int write_png(const char* path, const uint8_t* px, int h, int w, int ch, const options* o, const char* prompt,
                     uint64_t seed, dato_sampler_kind sampler, dato_timestep_spacing spacing) {
    char steps[16], guidance[32], seed_s[32];
    snprintf(steps, sizeof steps, "%d", o->steps);
    snprintf(guidance, sizeof guidance, "%g", (double)o->guidance);
    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)seed);
    dato_a1111_params ap = {.prompt = prompt ? prompt : "(tensor conditioning)", .negative_prompt = o->negative,
                            .steps = o->steps, .sampler = sampler, .spacing = spacing, .guidance = o->guidance,
                            .seed = (unsigned long long)seed, .width = w, .height = h, .model_path = o->model,
                            .dato_schedule = o->schedule, .version = "dato " DATO_VERSION};
    dato_text a1111 = {0};
    dato_error err;
    int ok = !dato_a1111_parameters(&ap, &a1111, &err);
    const char* kv[] = {"parameters", ok ? a1111.data : "", "dato:model", o->model, "dato:prompt", ap.prompt,
                        "dato:negative_prompt", o->negative ? o->negative : "", "dato:seed", seed_s,
                        "dato:noise", o->latents ? o->latents : NOISES[o->noise],
                        "dato:sampler", dato_sampler_kind_name(sampler), "dato:steps", steps,
                        "dato:guidance", guidance, "dato:schedule", o->schedule ? o->schedule : "baseline", NULL};
    ok = ok && !dato_mkdir_parents(path, &err) && !dato_png_write(path, px, h, w, ch, kv, &err);
    if (a1111.data) dato_text_free(&a1111);
    if (!ok) {
        fprintf(stderr, "dato-generate: %s\n", err.msg);
        return 0;
    }
    printf("wrote %s (%dx%d)\n", path, w, h);
    return 1;
}

// The initial noise of prompt j's n images (n, C, h, w) = (n, per_image): dato's streams of seed + j,
// or one torch.randn draw from torch.Generator().manual_seed(seed + j). (A --latents file is read
// whole before the loop.)
static void prompt_noise(const options* o, int j, int n, size_t per_image, float* out) {
    uint64_t seed = o->seed + (uint64_t)j;
    // torch's float transform depends on its CPU capability: this CPU's, or the one named.
    dato_torch_kernel kernel = o->noise == NOISE_TORCH_AVX2      ? DATO_TORCH_AVX2
                               : o->noise == NOISE_TORCH_DEFAULT ? DATO_TORCH_SCALAR
                                                                 : dato_torch_kernel_native();
    if (o->noise == NOISE_DATO) dato_rng_image_noise(seed, n, per_image, out);
    else dato_torch_randn_latents(seed, kernel, out, (size_t)n * per_image);
}

int main(int argc, char** argv) {
    options o;
    int pr = parse_args(argc, argv, &o);
    if (pr <= 0) return pr < 0 ? 2 : 0;
    if (!apply_schedule_file(&o)) return 2;
    prompt_list pl = {0};
    if (o.prompts_file && !read_prompts(o.prompts_file, &pl)) return 2;
    int n_prompts = pl.n ? pl.n : 1;
    char** prompts = pl.text;
    dato_error err;

    dato_pipeline_options popt = {.tokenizer_dir = o.tokenizer, .scheduler_config = o.scheduler_config,
                                  .prediction_type = o.prediction_type, .dtype = o.dtype};
    int n_hints;
    const dato_single_file_hint* hints = dato_single_file_hint_table(&n_hints);
    for (int i = 0; i < n_hints && i < DATO_MAX_HINTS; i++)
        if (o.hint_values[i] && dato_single_file_hint_set(&popt.hints, hints[i].name, o.hint_values[i], &err)) {
            fprintf(stderr, "dato-generate: --%s: %s\n", hints[i].name, err.msg);
            return 2;
        }
    dato_backend be;
    if (!backend_init(&be, &o)) return 1;
    dato_pipeline p;
    double t_load = dato_clock_s();
    if (dato_pipeline_open(&p, o.model, &be, &popt, &err)) {
        fprintf(stderr, "dato-generate: %s\n", err.msg);
        dato_backend_destroy(&be);
        return 1;
    }
    fprintf(stderr, "dato-generate: loaded %s in %.2f s\n", o.model, dato_clock_s() - t_load);
    dato_model_defaults md;
    if (dato_model_defaults_load(&md, o.model, &err)) {
        fprintf(stderr, "dato-generate: %s\n", err.msg);
        dato_pipeline_close(&p);
        dato_backend_destroy(&be);
        return 1;
    }
    if (!o.have_steps) o.steps = md.steps ? md.steps : 50;
    if (!o.have_guidance) o.guidance = md.guidance ? md.guidance : 7.5f;
    const dato_unet_config* c = &p.unet.cfg;
    int factor = dato_pipeline_vae_factor(&p), div = dato_pipeline_size_multiple(&p);
    int H = o.height ? o.height : md.height ? md.height : c->sample_size * factor;
    int W = o.width ? o.width : o.height ? H : md.width ? md.width : c->sample_size * factor;
    int N = o.images_per_prompt, total = n_prompts * N, rc = 1, ch = dato_pipeline_image_channels(&p);
    if (!o.batch || o.batch > N) o.batch = N;
    int h = H / factor, w = W / factor;
    dato_sampler_kind kind = o.have_sampler ? o.sampler : p.sched.kind;
    dato_scheduler_config run_sched; // what this run's sampler reads: its timestep spacing goes into the PNGs
    dato_schedule* sched = NULL;
    size_t latent = (size_t)c->out_channels * h * w, image = (size_t)H * W * ch;
    float* lat = malloc((size_t)total * latent * sizeof *lat);    // (P * N, C, h, w) final latents
    float* noise = malloc((size_t)total * latent * sizeof *noise); // (P * N, C, h, w) initial noise
    uint8_t* px = malloc((size_t)total * image);                   // (P * N, H, W, ch)
    const char** texts = malloc((size_t)o.batch * sizeof *texts);
    const char** negs = malloc((size_t)o.batch * sizeof *negs);
    if (H % div || W % div) {
        const char* from = o.size                  ? "--size"
                           : o.height || o.width ? "--height/--width"
                           : md.height || md.width ? "the model's dato.json"
                                                   : "the UNet's sample_size";
        fprintf(stderr, "dato-generate: the image size %dx%d (width x height, from %s) must be a multiple of %d for "
                        "this model\n", W, H, from, div);
        goto done;
    }
    if (!lat || !noise || !px || !texts || !negs) {
        fprintf(stderr, "dato-generate: out of memory for %d images of %dx%d\n", total, W, H);
        goto done;
    }
    if (dato_pipeline_scheduler(&p, kind, &run_sched, &err)) {
        fprintf(stderr, "dato-generate: %s\n", err.msg);
        goto done;
    }
    if (!o.context && p.n_text == 0) {
        fprintf(stderr, "dato-generate: %s has no text encoder: pass conditioning with --context FILE\n", o.model);
        goto done;
    }
    if (o.latents && dato_latents_load(o.latents, total, c->out_channels, h, w, noise, &err)) {
        fprintf(stderr, "dato-generate: --latents: %s\n", err.msg);
        goto done;
    }
    if (o.schedule) {
        sched = malloc(sizeof *sched);
        if (!sched || dato_schedule_resolve(sched, o.schedule, o.steps, p.unet.n_branches, &err)) {
            fprintf(stderr, "dato-generate: --schedule: %s\n", sched ? err.msg : "out of memory");
            goto done;
        }
        if (!print_schedule_costs(&p, sched, &o, h, w)) goto done;
    }
    char origin[4200]; // where a failing prompt came from
    for (int j = 0; j < n_prompts; j++) {
        const char* prompt = prompts ? prompts[j] : o.prompt;
        float* noise_j = noise + (size_t)j * N * latent;
        if (!o.latents) prompt_noise(&o, j, N, latent, noise_j);
        for (int i0 = 0; i0 < N; i0 += o.batch) { // one generate call: images i0 .. i0 + b of prompt j
            int b = N - i0 < o.batch ? N - i0 : o.batch;
            size_t first = (size_t)j * N + i0;
            dato_conditioning cond;
            if (o.context) {
                if (!load_context(o.context, c, b, &cond)) goto done;
            } else {
                for (int i = 0; i < b; i++) {
                    texts[i] = prompt;
                    negs[i] = o.negative;
                }
                if (dato_pipeline_encode(&p, texts, negs, b, H, W, &cond, &err)) {
                    fprintf(stderr, "dato-generate: %s: %s\n", prompt_origin(&o, &pl, j, origin, sizeof origin), err.msg);
                    goto done;
                }
            }
            char what[96];
            snprintf(what, sizeof what, "prompt %d/%d, images %d-%d of %d", j + 1, n_prompts, i0 + 1, i0 + b, N);
            progress_state ps = {.t0 = dato_clock_s(), .what = what, .tty = isatty(STDERR_FILENO)};
            dato_generate_params gp = {.steps = o.steps, .sampler = kind, .guidance = o.guidance,
                                       .seed = o.seed + (uint64_t)j, .height = h, .width = w, .cond = &cond,
                                       .init_latent = noise + first * latent, .schedule = sched,
                                       .progress = print_progress, .progress_ctx = &ps, .loop = (dato_loop_kind)o.loop};
            float* lj = lat + first * latent;
            dato_status st = DATO_OK;
            double t_base = 0;
            if (sched && o.compare_baseline) { // the same call without the schedule, timed first
                gp.schedule = NULL;
                ps.what = "baseline";
                st = dato_pipeline_generate(&p, &gp, lj, &err);
                t_base = dato_clock_s() - ps.t0;
                gp.schedule = sched;
                ps.what = what;
                ps.t0 = dato_clock_s();
            }
            if (!st) st = dato_pipeline_generate(&p, &gp, lj, &err);
            double t_denoise = dato_clock_s() - ps.t0;
            if (!st && dato_pipeline_warning(&p)[0])
                fprintf(stderr, "dato-generate: %s: warning: %s\n", what, dato_pipeline_warning(&p));
            if (!st && sched)
                printf("%s: denoising %.2f s with the schedule%s", what, t_denoise, t_base > 0 ? "" : "\n");
            if (!st && t_base > 0)
                printf(", %.2f s baseline: measured speedup %.2fx\n", t_base, t_base / t_denoise);
            dato_conditioning_free(&cond);
            double t_decode = dato_clock_s();
            if (!st) st = dato_pipeline_decode(&p, lj, b, h, w, px + first * image, NULL, &ch, &err);
            if (!st) fprintf(stderr, "dato-generate: %s: denoised in %.2f s, decoded in %.2f s\n", what, t_denoise,
                             dato_clock_s() - t_decode);
            if (st) {
                fprintf(stderr, "dato-generate: %s: %s\n", prompt_origin(&o, &pl, j, origin, sizeof origin), err.msg);
                goto done;
            }
        }
        for (int i = 0; !o.grid && i < N; i++) {
            char path[4096];
            const char* dot = strrchr(o.out, '.');
            int stem = dot ? (int)(dot - o.out) : (int)strlen(o.out);
            if (total == 1) snprintf(path, sizeof path, "%s", o.out);
            else snprintf(path, sizeof path, "%.*s-%d-%d%s", stem, o.out, j, i, dot ? dot : ".png");
            if (!write_png(path, px + ((size_t)j * N + i) * image, H, W, ch, &o, prompt, o.seed + (uint64_t)j, kind,
                           run_sched.timestep_spacing))
                goto done;
        }
    }
    if (o.grid) {
        int gh, gw, pad = total > 1 ? 2 : 0;
        uint8_t* grid = NULL;
        int ok = !dato_image_grid_size(total, H, W, N, pad, &gh, &gw, &err) && (grid = malloc((size_t)gh * gw * ch)) &&
                 !dato_image_grid(grid, px, total, H, W, ch, N, pad, &err);
        if (!ok) fprintf(stderr, "dato-generate: --grid: %s\n", grid ? err.msg : "out of memory");
        ok = ok && write_png(o.out, grid, gh, gw, ch, &o, n_prompts == 1 ? (prompts ? prompts[0] : o.prompt) : "(several)",
                             o.seed, kind, run_sched.timestep_spacing);
        free(grid);
        if (!ok) goto done;
    }
    if (o.latents_out) {
        int64_t shape[4] = {total, c->out_channels, h, w};
        dato_st_write_entry e = {.name = "latents", .dtype = DATO_F32, .ndim = 4, .shape = shape, .data = lat};
        if (dato_mkdir_parents(o.latents_out, &err) || dato_safetensors_write(o.latents_out, &e, 1, NULL, &err)) {
            fprintf(stderr, "dato-generate: --latents-out: %s\n", err.msg);
            goto done;
        }
        printf("wrote %s\n", o.latents_out);
    }
    rc = 0;
done:
    free(sched);
    free(lat);
    free(noise);
    free(px);
    free(texts);
    free(negs);
    prompts_free(&pl);
    dato_pipeline_close(&p);
    dato_backend_destroy(&be);
    return rc;
}
