#include "single_file.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- the model type --------------------------------------------------------------------------------

// The hub's scheduler/scheduler_config.json of the repos from_single_file falls back to, verbatim.
// Keys a file lacks (SD1.5 and SD2.1 have no timestep_spacing) take the defaults of the class that
// runs, so SD1.5's file gives leading for PNDM/DDIM and linspace for DPM-Solver and Euler.
static const char SD15_SCHEDULER[] = // stable-diffusion-v1-5/stable-diffusion-v1-5
    "{\n"
    "  \"_class_name\": \"PNDMScheduler\",\n"
    "  \"_diffusers_version\": \"0.6.0\",\n"
    "  \"beta_end\": 0.012,\n"
    "  \"beta_schedule\": \"scaled_linear\",\n"
    "  \"beta_start\": 0.00085,\n"
    "  \"num_train_timesteps\": 1000,\n"
    "  \"set_alpha_to_one\": false,\n"
    "  \"skip_prk_steps\": true,\n"
    "  \"steps_offset\": 1,\n"
    "  \"trained_betas\": null,\n"
    "  \"clip_sample\": false\n"
    "}\n";
static const char SD21_SCHEDULER[] = // stabilityai/stable-diffusion-2-1 (768, v-prediction)
    "{\n"
    "  \"_class_name\": \"DDIMScheduler\",\n"
    "  \"_diffusers_version\": \"0.8.0\",\n"
    "  \"beta_end\": 0.012,\n"
    "  \"beta_schedule\": \"scaled_linear\",\n"
    "  \"beta_start\": 0.00085,\n"
    "  \"clip_sample\": false,\n"
    "  \"num_train_timesteps\": 1000,\n"
    "  \"prediction_type\": \"v_prediction\",\n"
    "  \"set_alpha_to_one\": false,\n"
    "  \"skip_prk_steps\": true,\n"
    "  \"steps_offset\": 1,\n"
    "  \"trained_betas\": null\n"
    "}\n";
static const char SDXL_SCHEDULER[] = // stabilityai/stable-diffusion-xl-base-1.0
    "{\n"
    "  \"_class_name\": \"EulerDiscreteScheduler\",\n"
    "  \"_diffusers_version\": \"0.19.0.dev0\",\n"
    "  \"beta_end\": 0.012,\n"
    "  \"beta_schedule\": \"scaled_linear\",\n"
    "  \"beta_start\": 0.00085,\n"
    "  \"clip_sample\": false,\n"
    "  \"interpolation_type\": \"linear\",\n"
    "  \"num_train_timesteps\": 1000,\n"
    "  \"prediction_type\": \"epsilon\",\n"
    "  \"sample_max_value\": 1.0,\n"
    "  \"set_alpha_to_one\": false,\n"
    "  \"skip_prk_steps\": true,\n"
    "  \"steps_offset\": 1,\n"
    "  \"timestep_spacing\": \"leading\",\n"
    "  \"trained_betas\": null,\n"
    "  \"use_karras_sigmas\": false\n"
    "}\n";

// The model types an SD-architecture file can be taken for. dato carries the configs of the three
// families it generates with; the others are named so that opening one says what diffusers would do.
static const dato_single_file_model MODELS[] = {
    {"v1", "stable-diffusion-v1-5/stable-diffusion-v1-5", SD15_SCHEDULER, 64},
    {"v2", "stabilityai/stable-diffusion-2-1", SD21_SCHEDULER, 96},
    {"xl_base", "stabilityai/stable-diffusion-xl-base-1.0", SDXL_SCHEDULER, 128},
    {"xl_refiner", "stabilityai/stable-diffusion-xl-refiner-1.0", NULL, 0},
    {"xl_inpaint", "diffusers/stable-diffusion-xl-1.0-inpainting-0.1", NULL, 0},
    {"inpainting", "stable-diffusion-v1-5/stable-diffusion-inpainting", NULL, 0},
    {"inpainting_v2", "stabilityai/stable-diffusion-2-inpainting", NULL, 0},
    {"playground-v2-5", "playgroundai/playground-v2.5-1024px-aesthetic", NULL, 0},
    {"upscale", "stabilityai/stable-diffusion-x4-upscaler", NULL, 0},
    {"instruct-pix2pix", "timbrooks/instruct-pix2pix", NULL, 0},
};
#define N_MODELS ((int)(sizeof MODELS / sizeof MODELS[0]))

// A probe holds when the tensor exists and, unless dim is ANY, its shape[dim] (LAST: the last
// dimension) equals value.
enum { ANY = -1, LAST = -2 };
typedef struct {
    const char* key;
    int dim;
    int64_t value;
} probe;

#define UNET_IN "model.diffusion_model.input_blocks.0.0.weight"
#define V2_TO_K "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
#define XL_BASE_TE "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias"
#define XL_REFINER_TE "conditioner.embedders.0.model.transformer.resblocks.9.mlp.c_proj.bias"

// infer_diffusers_model_type's branches in its order, each with every probe it tests (up to two). Left
// out: the types whose files hold no LDM UNet (ControlNet, Stable Cascade, SD3, Flux, video models...),
// which dato cannot open in any case.
static const struct {
    const char* type;
    probe all[2];
} RULES[] = {
    {"inpainting_v2", {{UNET_IN, 1, 9}, {V2_TO_K, LAST, 1024}}},
    {"xl_inpaint", {{UNET_IN, 1, 9}, {XL_BASE_TE, ANY, 0}}},
    {"inpainting", {{UNET_IN, 1, 9}}},
    {"v2", {{V2_TO_K, LAST, 1024}}},
    {"playground-v2-5", {{"edm_mean", ANY, 0}}},
    {"xl_base", {{XL_BASE_TE, ANY, 0}}},
    {"xl_refiner", {{XL_REFINER_TE, ANY, 0}}},
    {"upscale", {{"model.diffusion_model.input_blocks.10.0.skip_connection.bias", ANY, 0}}},
    {"instruct-pix2pix", {{UNET_IN, 1, 8}}},
};

static int probe_holds(const dato_tensor_source* src, const probe* p) {
    if (!p->key) return 1; // an unused slot
    const dato_st_tensor* t = src->find(src->ctx, p->key);
    if (!t) return 0;
    if (p->dim == ANY) return 1;
    int d = p->dim == LAST ? t->ndim - 1 : p->dim;
    return d >= 0 && d < t->ndim && t->shape[d] == p->value;
}

const dato_single_file_model* dato_single_file_model_find(const char* type) {
    for (int i = 0; type && i < N_MODELS; i++)
        if (strcmp(MODELS[i].type, type) == 0) return &MODELS[i];
    return NULL;
}

const dato_single_file_model* dato_single_file_model_infer(const dato_tensor_source* src) {
    for (size_t r = 0; r < sizeof RULES / sizeof RULES[0]; r++)
        if (probe_holds(src, &RULES[r].all[0]) && probe_holds(src, &RULES[r].all[1]))
            return dato_single_file_model_find(RULES[r].type);
    return &MODELS[0]; // diffusers' fallback: "v1"
}

// ---- shape hints by name -----------------------------------------------------------------------------

#define AT(field) offsetof(dato_single_file_hints, field)
// The four hints of text encoder i, named after its folder (flag) and described as what.
#define TEXT_HINTS(flag, what, i)                                                                                    \
    {flag "-num-attention-heads", "N", what " attention heads (default: width / 64)", DATO_HINT_INT,                 \
     AT(text[i].heads), 1, 1, 4096},                                                                                 \
    {flag "-hidden-act", "quick_gelu|gelu",                                                                          \
     what " MLP activation (default: quick_gelu for OpenAI CLIP, gelu for OpenCLIP)", DATO_HINT_ACT,                 \
     AT(text[i].act), 1, 0, 0},                                                                                      \
    {flag "-layer-norm-eps", "EPS", what " LayerNorm epsilon (default 1e-5)", DATO_HINT_FLOAT, AT(text[i].eps), 1,  \
     1e-12, 1},                                                                                                      \
    {flag "-eos-token-id", "ID", what " end-of-text id, where pooling reads (default 2: the legacy rule, the "     \
     "largest id)", DATO_HINT_INT, AT(text[i].eos_token_id), 1, 1, 2147483647.0}

// Every count is at most DATO_UNET_MAX_LEVELS (the parser's buffer).
static const dato_single_file_hint HINTS[] = {
    {"unet-attention-heads", "N[,N...]",
     "UNet attention heads per resolution level, one value for all (default: 8 with a 768-wide context, else "
     "channels / 64)", DATO_HINT_INT_LIST, AT(unet.heads), DATO_UNET_MAX_LEVELS, 1, 4096},
    {"unet-norm-num-groups", "N", "UNet GroupNorm groups (default 32)", DATO_HINT_INT, AT(unet.norm_groups), 1, 1,
     4096},
    {"unet-addition-time-embed-dim", "N", "SDXL UNet: width of each size/crop time-id embedding (default 256)",
     DATO_HINT_INT, AT(unet.addition_time_embed_dim), 1, 2, 65536},
    TEXT_HINTS("text-encoder", "text encoder", 0),
    TEXT_HINTS("text-encoder-2", "second text encoder (SDXL)", 1),
    {"vae-norm-num-groups", "N", "VAE GroupNorm groups (default 32)", DATO_HINT_INT, AT(vae_norm_groups), 1, 1, 4096},
};
#undef TEXT_HINTS
#undef AT
#define N_HINTS ((int)(sizeof HINTS / sizeof HINTS[0]))

const dato_single_file_hint* dato_single_file_hint_table(int* n) {
    if (n) *n = N_HINTS;
    return HINTS;
}

// One number of a hint's value: the whole of [s, end) must parse and lie in [min, max].
static int parse_number(const char* s, const char* end, int integer, double min, double max, double* out) {
    char buf[64];
    size_t len = (size_t)(end - s);
    if (len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, s, len);
    buf[len] = 0;
    char* stop = NULL;
    errno = 0;
    double v = integer ? (double)strtoll(buf, &stop, 10) : strtod(buf, &stop);
    if (errno || *stop || !isfinite(v) || v < min || v > max) return 0;
    *out = v;
    return 1;
}

dato_status dato_single_file_hint_set(dato_single_file_hints* hints, const char* name, const char* value,
                                      dato_error* err) {
    if (!hints || !name || !value) return dato_fail(err, DATO_ERR_INVALID, "single-file hint: NULL argument");
    const dato_single_file_hint* h = NULL;
    for (int i = 0; i < N_HINTS && !h; i++)
        if (strcmp(HINTS[i].name, name) == 0) h = &HINTS[i];
    if (!h) {
        char names[1024] = "";
        size_t used = 0;
        for (int i = 0; i < N_HINTS && used < sizeof names; i++)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", HINTS[i].name);
        return dato_fail(err, DATO_ERR_INVALID, "unknown single-file hint '%s' (expected one of: %s)", name, names);
    }
    char* field = (char*)hints + h->offset;
    if (h->kind == DATO_HINT_ACT) {
        static const char* const acts[] = {[DATO_TE_ACT_QUICK_GELU] = "quick_gelu", [DATO_TE_ACT_GELU] = "gelu"};
        for (int a = DATO_TE_ACT_QUICK_GELU; a <= DATO_TE_ACT_GELU; a++) {
            if (strcmp(value, acts[a]) == 0) {
                *(dato_te_act*)field = (dato_te_act)a;
                return DATO_OK;
            }
        }
        return dato_fail(err, DATO_ERR_INVALID, "hint '%s': '%s' is not quick_gelu or gelu", name, value);
    }
    // Numbers: parse every one before storing any, so a bad value leaves hints unchanged.
    int integer = h->kind != DATO_HINT_FLOAT, n = 0;
    double v[DATO_UNET_MAX_LEVELS];
    const char* s = value;
    for (;;) {
        const char* end = h->kind == DATO_HINT_INT_LIST ? strchr(s, ',') : NULL;
        if (!end) end = s + strlen(s);
        if (n == h->count || !parse_number(s, end, integer, h->min, h->max, &v[n])) {
            char form[64];
            if (h->count > 1) snprintf(form, sizeof form, "1 to %d comma-separated integers", h->count);
            else snprintf(form, sizeof form, "%s", integer ? "an integer" : "a number");
            return dato_fail(err, DATO_ERR_INVALID, "hint '%s': '%s' is not %s in [%.10g, %.10g]", name, value, form,
                             h->min, h->max);
        }
        n++;
        if (!*end) break;
        s = end + 1;
    }
    if (h->kind == DATO_HINT_FLOAT) *(float*)field = (float)v[0];
    else if (n == 1) // one value: every entry of a list
        for (int i = 0; i < h->count; i++) ((int*)field)[i] = (int)v[0];
    else
        for (int i = 0; i < h->count; i++) ((int*)field)[i] = i < n ? (int)v[i] : 0;
    return DATO_OK;
}
