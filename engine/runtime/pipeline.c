#include "pipeline.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "data_dir.h"
#include "file_util.h"
#include "image.h"
#include "rng.h"
#include "sampler_program.h"
#include "unet_denoiser.h"

// ---- opening -------------------------------------------------------------------------------------

// model_index.json's force_zeros_for_empty_prompt (SDXL pipelines default to true).
static dato_status read_force_zeros(const char* dir, int* out, dato_error* err) {
    char path[4096];
    DATO_TRY(dato_path_join(path, sizeof path, dir, "model_index.json", err));
    if (!dato_is_file(path)) return DATO_OK;
    char* text = NULL;
    DATO_TRY(dato_read_text_file(path, &text, 1 << 20, err));
    cJSON* root = cJSON_Parse(text);
    free(text);
    if (!root) return dato_fail(err, DATO_ERR_FORMAT, "%s: not valid JSON", path);
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(root, "force_zeros_for_empty_prompt");
    if (cJSON_IsBool(v)) *out = cJSON_IsTrue(v);
    cJSON_Delete(root);
    return DATO_OK;
}

static dato_status open_folder_text(dato_pipeline* p, const char* dir, dato_dtype dtype, dato_error* err) {
    static const char* const te_dirs[2] = {"text_encoder", "text_encoder_2"};
    static const char* const tok_dirs[2] = {"tokenizer", "tokenizer_2"};
    char te[4096], tok[4096];
    for (int i = 0; i < 2; i++) {
        DATO_TRY(dato_path_join(te, sizeof te, dir, te_dirs[i], err));
        DATO_TRY(dato_path_join(tok, sizeof tok, dir, tok_dirs[i], err));
        if (!dato_is_dir(te)) break;
        if (!dato_is_dir(tok))
            return dato_fail(err, DATO_ERR_NOT_FOUND, "%s: has %s/ but no %s/", dir, te_dirs[i], tok_dirs[i]);
        DATO_TRY(dato_tokenizer_open(&p->tokenizer[i], tok, err));
        DATO_TRY(dato_text_encoder_open_folder_as(&p->text[i], te, p->be, dtype, err));
        p->n_text = i + 1;
    }
    if (p->n_text == 2) { // SDXL: penultimate layers, no final LayerNorm
        p->text_skip = 1;
        p->text_final_norm = 0;
        p->force_zeros_for_empty_prompt = 1;
        DATO_TRY(read_force_zeros(dir, &p->force_zeros_for_empty_prompt, err));
    }
    return DATO_OK;
}

// The CLIP tokenizer of a single file: dir's, with the family's pad token (SD1: <|endoftext|>; SD2
// and SDXL's second: "!"). The shipped models/clip_tokenizer keeps SD2's configs in its sd2/ folder
// beside the shared vocabulary; any other folder (vocab.json + merges.txt, or tokenizer.json) is
// taken with its own configs, as a diffusers tokenizer folder has them.
static dato_status open_shipped_tokenizer(dato_tokenizer** t, const char* dir, const char* variant, dato_error* err) {
    char vocab[4096], merges[4096], sub[4096];
    DATO_TRY(dato_path_join(sub, sizeof sub, dir, variant, err));
    if (strcmp(variant, "sd2") != 0 || !dato_is_dir(sub)) return dato_tokenizer_open(t, dir, err);
    DATO_TRY(dato_path_join(vocab, sizeof vocab, dir, "vocab.json", err));
    DATO_TRY(dato_path_join(merges, sizeof merges, dir, "merges.txt", err));
    return dato_tokenizer_open_files(t, vocab, merges, sub, err);
}

// A single LDM file's text encoders, found by their prefixes (ENGINE.md §8).
static dato_status open_single_file_text(dato_pipeline* p, const dato_tensor_source* src, const char* tok_dir,
                                         const dato_te_hints* hints /* [2] or NULL */, dato_dtype dtype,
                                         dato_error* err) {
    typedef struct {
        const char* probe;   // a tensor that marks the family
        const char* prefix;
        dato_te_layout layout;
        const char* tokenizer;
    } encoder_spec;
    static const encoder_spec SD1[] = {{"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
                                        "cond_stage_model.transformer.", DATO_TE_LAYOUT_HF, "sd1"}};
    static const encoder_spec SD2[] = {{"cond_stage_model.model.token_embedding.weight", "cond_stage_model.model.",
                                        DATO_TE_LAYOUT_OPENCLIP, "sd2"}};
    static const encoder_spec SDXL[] = {
        {"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
         "conditioner.embedders.0.transformer.", DATO_TE_LAYOUT_HF, "sd1"},
        {"conditioner.embedders.1.model.token_embedding.weight", "conditioner.embedders.1.model.",
         DATO_TE_LAYOUT_OPENCLIP, "sd2"}};
    const encoder_spec* spec = NULL;
    int n = 0;
    if (src->find(src->ctx, SDXL[0].probe)) spec = SDXL, n = 2;
    else if (src->find(src->ctx, SD2[0].probe)) spec = SD2, n = 1;
    else if (src->find(src->ctx, SD1[0].probe)) spec = SD1, n = 1;
    if (!spec) return DATO_OK; // a UNet-only file: conditioning comes as tensors
    for (int i = 0; i < n; i++) {
        DATO_TRY(open_shipped_tokenizer(&p->tokenizer[i], tok_dir, spec[i].tokenizer, err));
        DATO_TRY(dato_text_encoder_open_source_as(&p->text[i], src, spec[i].prefix, spec[i].layout,
                                                  hints ? &hints[i] : NULL, p->be, dtype, err));
        p->n_text = i + 1;
    }
    if (spec == SD2) { // OpenCLIP-H: 24 layers stored, the penultimate + final LN used
        p->text_skip = 1;
        p->text_final_norm = 1;
    } else if (spec == SDXL) {
        p->text_skip = 1;
        p->text_final_norm = 0;
        p->force_zeros_for_empty_prompt = 1;
    }
    return DATO_OK;
}

// The scheduler config's text into p->sched_json: the options' file or folder, else the model's
// scheduler_config.json (model_file), else the built-in one of the single file's model type (SD1.5's
// for a folder without scheduler/); then p->sched read from it with its own class, and the
// prediction-type override kept for every run. path: the model, for messages.
static dato_status open_scheduler(dato_pipeline* p, const dato_pipeline_options* opt, const char* path,
                                  const char* model_file, dato_error* err) {
    const char* file = opt && opt->scheduler_config ? opt->scheduler_config : model_file;
    if (file) {
        DATO_TRY(dato_scheduler_config_read(file, &p->sched_json, p->sched_source, sizeof p->sched_source, err));
    } else {
        const dato_single_file_model* m = p->single_file ? p->single_file : dato_single_file_model_find("v1");
        if (!m->scheduler_json)
            return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: diffusers' from_single_file takes this file for model "
                             "type '%s' (configs of %s), whose scheduler dato does not carry (it has those of v1, "
                             "v2 and xl_base): name a scheduler config", path, m->type, m->repo);
        snprintf(p->sched_source, sizeof p->sched_source, "%s's scheduler_config.json (built in)", m->repo);
        p->sched_json = strdup(m->scheduler_json);
        if (!p->sched_json) return dato_fail(err, DATO_ERR_NOMEM, "scheduler config: out of memory");
    }
    p->prediction_override = -1;
    if (opt && opt->prediction_type) {
        dato_prediction_type t;
        DATO_TRY(dato_prediction_type_parse(opt->prediction_type, &t, err));
        p->prediction_override = (int)t;
    }
    DATO_TRY(dato_scheduler_config_parse(p->sched_json, p->sched_source, NULL, &p->sched, err));
    if (p->prediction_override >= 0) p->sched.prediction_type = (dato_prediction_type)p->prediction_override;
    return DATO_OK;
}

dato_status dato_pipeline_scheduler(const dato_pipeline* p, dato_sampler_kind kind, dato_scheduler_config* cfg,
                                    dato_error* err) {
    *cfg = p->sched;
    if (!p->sched_json || kind == p->sched.kind) return DATO_OK;
    DATO_TRY(dato_scheduler_config_parse(p->sched_json, p->sched_source, &kind, cfg, err));
    if (p->prediction_override >= 0) cfg->prediction_type = (dato_prediction_type)p->prediction_override;
    cfg->eta = p->sched.eta; // a run's argument, not the file's
    return DATO_OK;
}

dato_status dato_pipeline_open(dato_pipeline* p, const char* path, dato_backend* be, const dato_pipeline_options* opt,
                               dato_error* err) {
    memset(p, 0, sizeof *p);
    p->be = be;
    p->text_final_norm = 1;
    const dato_single_file_hints* hints = opt ? &opt->hints : NULL;
    dato_dtype dtype = opt ? opt->dtype : DATO_F32;
    dato_status st;
    if (dato_is_dir(path)) {
        char sub[4096];
        if ((st = dato_path_join(sub, sizeof sub, path, "scheduler/scheduler_config.json", err))) goto fail;
        if ((st = open_scheduler(p, opt, path, dato_is_file(sub) ? sub : NULL, err))) goto fail;
        if ((st = dato_unet_open_as(&p->unet, path, be, hints ? &hints->unet : NULL, dtype, err))) goto fail;
        if ((st = open_folder_text(p, path, dtype, err))) goto fail;
        if ((st = dato_path_join(sub, sizeof sub, path, "vae", err))) goto fail;
        if (dato_is_dir(sub)) {
            if ((st = dato_vae_open_folder_as(&p->vae, sub, be, dtype, err))) goto fail;
            p->has_vae = 1;
        }
        return DATO_OK;
    }
    // A single LDM file (.safetensors, or a PyTorch .ckpt/.pt/.pth zip): every component from
    // one tensor source.
    const char* ext = strrchr(path, '.');
    int is_ckpt = ext && (!strcmp(ext, ".ckpt") || !strcmp(ext, ".pt") || !strcmp(ext, ".pth"));
    dato_weight_files wf = {0};
    dato_ckpt* ck = NULL;
    if ((st = is_ckpt ? dato_ckpt_open(&ck, path, err) : dato_weight_files_open(&wf, path, err))) goto fail;
    dato_tensor_source src = is_ckpt ? dato_ckpt_source(ck) : dato_tensor_source_files(&wf);
    p->single_file = dato_single_file_model_infer(&src);
    char shipped_tok[4096]; // the shipped CLIP vocabulary in the data dir (engine/core/data_dir.h), unless named
    const char* tok_dir = opt && opt->tokenizer_dir ? opt->tokenizer_dir : shipped_tok;
    st = tok_dir == shipped_tok ? dato_data_path(shipped_tok, sizeof shipped_tok, "models/clip_tokenizer", err) : DATO_OK;
    if (!st) st = open_scheduler(p, opt, path, NULL, err);
    if (!st) st = dato_unet_open_source_as(&p->unet, &src, be, hints ? &hints->unet : NULL, dtype, err);
    if (!st && p->single_file->sample_size) // diffusers builds the UNet from its repo's config
        p->unet.cfg.sample_size = p->single_file->sample_size;
    if (!st) st = open_single_file_text(p, &src, tok_dir, hints ? hints->text : NULL, dtype, err);
    if (!st && src.find(src.ctx, "first_stage_model.decoder.conv_in.weight")) {
        float scale = p->n_text == 2 ? 0.13025f : 0.18215f; // SDXL's VAE, else SD1/2's
        st = dato_vae_open_source_as(&p->vae, &src, "first_stage_model.", scale, hints ? hints->vae_norm_groups : 0,
                                     be, dtype, err);
        p->has_vae = !st;
    }
    if (is_ckpt) dato_ckpt_close(ck);
    else dato_weight_files_close(&wf);
    if (!st) return DATO_OK;
fail:
    dato_pipeline_close(p);
    return st;
}

void dato_pipeline_close(dato_pipeline* p) {
    dato_denoiser_free(&p->den);
    if (p->unet.params) dato_unet_free(&p->unet);
    for (int i = 0; i < 2; i++) {
        if (p->tokenizer[i]) dato_tokenizer_free(p->tokenizer[i]);
        if (i < p->n_text) dato_text_encoder_free(&p->text[i]);
    }
    if (p->has_vae) dato_vae_free(&p->vae);
    free(p->sched_json);
    memset(p, 0, sizeof *p);
}

int dato_pipeline_vae_factor(const dato_pipeline* p) {
    return p->has_vae ? 1 << (p->vae.cfg.n_levels - 1) : 1;
}

int dato_pipeline_size_multiple(const dato_pipeline* p) {
    return dato_pipeline_vae_factor(p) << (p->unet.cfg.n_levels - 1);
}

// ---- conditioning ----------------------------------------------------------------------------------

void dato_conditioning_free(dato_conditioning* c) {
    free(c->context);
    free(c->text_embeds);
    free(c->time_ids);
    memset(c, 0, sizeof *c);
}

static dato_status conditioning_alloc(dato_conditioning* c, int B, int seq, int dim, int pooled_dim, dato_error* err) {
    memset(c, 0, sizeof *c);
    *c = (dato_conditioning){.batch = B, .seq = seq, .dim = dim, .pooled_dim = pooled_dim};
    c->context = calloc((size_t)2 * B * seq * dim, sizeof(float));
    if (pooled_dim) {
        c->text_embeds = calloc((size_t)2 * B * pooled_dim, sizeof(float));
        c->time_ids = calloc((size_t)2 * B * 6, sizeof(float));
    }
    if (!c->context || (pooled_dim && (!c->text_embeds || !c->time_ids))) {
        dato_conditioning_free(c);
        return dato_fail(err, DATO_ERR_NOMEM, "conditioning: cannot allocate for %d images", B);
    }
    return DATO_OK;
}

dato_status dato_conditioning_repeat(dato_conditioning* out, int B, int seq, int dim, const float* context,
                                     int pooled_dim, const float* text_embeds, const float* time_ids, dato_error* err) {
    if (B < 1 || seq < 1 || dim < 1 || !context || (pooled_dim && (!text_embeds || !time_ids)))
        return dato_fail(err, DATO_ERR_INVALID, "conditioning: bad sizes or missing tensors");
    DATO_TRY(conditioning_alloc(out, B, seq, dim, pooled_dim, err));
    size_t row = (size_t)seq * dim;
    for (int half = 0; half < 2; half++)
        for (int i = 0; i < B; i++) {
            memcpy(out->context + (size_t)(half * B + i) * row, context + half * row, row * sizeof(float));
            if (pooled_dim) {
                memcpy(out->text_embeds + (size_t)(half * B + i) * pooled_dim, text_embeds + (size_t)half * pooled_dim,
                       (size_t)pooled_dim * sizeof(float));
                memcpy(out->time_ids + (size_t)(half * B + i) * 6, time_ids + half * 6, 6 * sizeof(float));
            }
        }
    return DATO_OK;
}

// Runs encoder i over n texts, the first n_neg of them negative prompts: hidden (n, L, W) and, if
// pooled != NULL, pooled (n, pooled_w), on the host.
static dato_status encode_texts(dato_pipeline* p, int i, const char* const* texts, int n, int n_neg, float* hidden,
                                float* pooled, dato_error* err) {
    dato_tokenizer* tok = p->tokenizer[i];
    dato_text_encoder* te = &p->text[i];
    dato_backend* be = p->be;
    int L = dato_tokenizer_max_len(tok), W = te->cfg.width;
    int pooled_w = te->cfg.projection_dim ? te->cfg.projection_dim : W;
    int32_t* ids = malloc((size_t)n * L * sizeof *ids);
    size_t hbytes = (size_t)n * L * W * sizeof(float), pbytes = (size_t)n * pooled_w * sizeof(float);
    void* dev = be->ops->alloc(be, hbytes + pbytes);
    dato_status st = ids && dev ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "encode: cannot allocate for %d texts", n);
    for (int k = 0; k < n && !st; k++) {
        st = dato_tokenizer_encode(tok, texts[k], ids + (size_t)k * L, NULL, err);
        if (st && k < n_neg) dato_error_prefix(err, st, "encode: a negative prompt: ");
        else if (st) dato_error_prefix(err, st, "encode: prompt %d: ", k - n_neg);
    }
    if (!st) {
        dato_tensor h = dato_tensor_make(dev, DATO_F32, be->device, 3, (int64_t[]){n, L, W});
        dato_tensor pl = dato_tensor_make((char*)dev + hbytes, DATO_F32, be->device, 2, (int64_t[]){n, pooled_w});
        st = dato_text_encoder_forward(te, ids, n, L, p->text_skip, p->text_final_norm, &h, pooled ? &pl : NULL, err);
        if (!st) be->ops->download(be, hidden, h.data, hbytes);
        if (!st && pooled) be->ops->download(be, pooled, pl.data, pbytes);
    }
    if (dev) be->ops->free(be, dev);
    free(ids);
    return st;
}

dato_status dato_pipeline_encode(dato_pipeline* p, const char* const* prompts, const char* const* negatives, int B,
                                 int height, int width, dato_conditioning* out, dato_error* err) {
    memset(out, 0, sizeof *out);
    if (p->n_text == 0)
        return dato_fail(err, DATO_ERR_INVALID, "encode: this model has no text encoder; give conditioning as tensors");
    if (B < 1 || !prompts) return dato_fail(err, DATO_ERR_INVALID, "encode: no prompts");
    int L = dato_tokenizer_max_len(p->tokenizer[0]);
    int dim = 0, pooled_w = 0;
    for (int i = 0; i < p->n_text; i++) dim += p->text[i].cfg.width;
    if (p->n_text == 2) pooled_w = p->text[1].cfg.projection_dim ? p->text[1].cfg.projection_dim : p->text[1].cfg.width;
    if (p->n_text == 2 && dato_tokenizer_max_len(p->tokenizer[1]) != L)
        return dato_fail(err, DATO_ERR_INVALID, "encode: the two tokenizers disagree on the length");
    if (dim != p->unet.cfg.cross_attention_dim)
        return dato_fail(err, DATO_ERR_INVALID, "encode: text width %d does not match the UNet's cross_attention_dim %d",
                         dim, p->unet.cfg.cross_attention_dim);

    // Texts: [negatives x B; prompts x B]; zeroed negatives (SDXL, none given) are left out.
    const char** texts = malloc((size_t)2 * B * sizeof *texts);
    int* zero = calloc((size_t)B, sizeof *zero);
    if (!texts || !zero) {
        free(texts);
        free(zero);
        return dato_fail(err, DATO_ERR_NOMEM, "encode: out of memory");
    }
    int n = 0;
    for (int k = 0; k < B; k++) {
        const char* neg = negatives ? negatives[k] : NULL;
        zero[k] = !neg && p->force_zeros_for_empty_prompt;
        if (!zero[k]) texts[n++] = neg ? neg : "";
    }
    int n_neg = n;
    for (int k = 0; k < B; k++) texts[n++] = prompts[k];

    dato_status st = conditioning_alloc(out, B, L, dim, pooled_w, err);
    float* hidden = NULL;
    float* pooled = NULL;
    int off = 0; // channel offset of encoder i in the context
    for (int i = 0; i < p->n_text && !st; i++) {
        int W = p->text[i].cfg.width, want_pooled = p->n_text == 2 && i == 1;
        hidden = realloc(hidden, (size_t)n * L * W * sizeof *hidden);
        if (want_pooled) pooled = malloc((size_t)n * pooled_w * sizeof *pooled);
        if (!hidden || (want_pooled && !pooled)) {
            st = dato_fail(err, DATO_ERR_NOMEM, "encode: out of memory");
            break;
        }
        st = encode_texts(p, i, texts, n, n_neg, hidden, want_pooled ? pooled : NULL, err);
        // Scatter rows into [uncond x B; cond x B]; zeroed rows stay 0.
        for (int r = 0, k = 0; r < 2 * B && !st; r++) {
            int is_neg = r < B;
            if (is_neg && zero[r]) continue;
            int src_row = is_neg ? k++ : n_neg + (r - B);
            for (int t = 0; t < L; t++)
                memcpy(out->context + ((size_t)r * L + t) * dim + off, hidden + ((size_t)src_row * L + t) * W,
                       (size_t)W * sizeof(float));
            if (want_pooled)
                memcpy(out->text_embeds + (size_t)r * pooled_w, pooled + (size_t)src_row * pooled_w,
                       (size_t)pooled_w * sizeof(float));
        }
        off += W;
        free(pooled);
        pooled = NULL;
    }
    // SDXL size conditioning: original (h, w), crop (top, left), target (h, w), in pixels.
    if (!st && pooled_w)
        for (int r = 0; r < 2 * B; r++) {
            float ids[6] = {(float)height, (float)width, 0, 0, (float)height, (float)width};
            memcpy(out->time_ids + (size_t)r * 6, ids, sizeof ids);
        }
    free(hidden);
    free(texts);
    free(zero);
    if (st) dato_conditioning_free(out);
    return st;
}

// ---- the denoising loop ---------------------------------------------------------------------------

// The model function the sampler calls: batch [x; x] through the denoiser with [uncond; cond]
// conditioning and combine eps = u + g (c - u).
typedef struct {
    dato_pipeline* p;
    dato_denoiser* d;             // p->den, begun for this call's rows
    const dato_generate_params* gp;
    int n_calls;
    int batch, guided;            // images; 1 when guidance runs both halves
    size_t latent_numel;          // one image's latent elements
    float guidance;
    float* x2;                    // (guided ? 2B : B, C, h, w) model input
    float* y2;                    // (guided ? 2B : B, C, h, w) model output
    float* t2;                    // (2B) timesteps on the host
} guided_model;

// The schedule's gene of sampler step `step` (PLMS's two calls of step 0 share it); NULL: full.
static const dato_gene* step_gene(const guided_model* g, int step) {
    return g->gp->schedule ? &g->gp->schedule->genes[step] : NULL;
}

static dato_status guided_model_call(void* vctx, const dato_sampler_call* call, const float* model_in, float* model_out,
                                     dato_error* err) {
    guided_model* g = vctx;
    dato_denoiser* d = g->d;
    dato_backend* be = g->p->be;
    int B = g->batch, n2 = g->guided ? 2 * B : B;
    size_t n = (size_t)B * g->latent_numel;
    // Depth 0 reuses the previous raw prediction y2 (both halves, before guidance) without a call.
    const dato_gene* gene = step_gene(g, call->step);
    if (dato_denoiser_depth(d, gene) > 0) {
        for (int half = 0; half < n2 / B; half++) memcpy(g->x2 + (size_t)half * n, model_in, n * sizeof(float));
        for (int i = 0; i < n2; i++) g->t2[i] = call->timestep;
        be->ops->upload(be, d->x.data, g->x2, (size_t)n2 * g->latent_numel * sizeof(float));
        be->ops->upload(be, d->t.data, g->t2, (size_t)n2 * sizeof(float));
        DATO_TRY(dato_denoiser_call(d, call->step, gene, 0, g->y2, err));
    }
    if (g->gp->raw_out)
        memcpy(g->gp->raw_out + (size_t)call->call * n2 * g->latent_numel, g->y2,
               (size_t)n2 * g->latent_numel * sizeof(float));
    if (g->gp->progress) g->gp->progress(g->gp->progress_ctx, call->call + 1, g->n_calls);
    if (!g->guided) {
        memcpy(model_out, g->y2, n * sizeof(float));
        return DATO_OK;
    }
    const float *u = g->y2, *c = g->y2 + n; // [uncond; cond]
    for (size_t i = 0; i < n; i++) model_out[i] = u[i] + g->guidance * (c[i] - u[i]);
    return DATO_OK;
}

// The device loop (DATO_LOOP_DEVICE): the latent x (B, C, h, w) stays on the backend from the first
// call to the last. Per call: x * input_scale into both halves of the model input, the call's
// timesteps copied from a table uploaded once, the denoiser (replayed as a graph where it can be), the
// guidance and the sampler program as axpby ops, then x's mean per (image, channel) into a table on
// the device: a mean is finite exactly when its values are (summed in double), so the table, read
// once after the loop, names the first call whose latents hold a NaN or infinity, at the cost of
// one tiny reduction per call and no wait. The host waits between calls only to hand the pruning
// runtime a prediction, to fill raw_out, to report progress, or before it overwrites the pinned noise
// buffer; never inside a call. latents: (B, C, h, w), in: the initial latent, out: the final.
static dato_status denoise_on_device(guided_model* g, dato_sampler* s, float* latents, dato_rng* noise_rng,
                                     dato_error* err) {
    dato_denoiser* d = g->d;
    dato_backend* be = g->p->be;
    const dato_backend_ops* op = be->ops;
    int B = g->batch, n2 = g->guided ? 2 * B : B, calls = g->n_calls, C = d->dims.in_channels;
    size_t n = (size_t)B * g->latent_numel, slots = DATO_SLOT_H0 + (size_t)dato_sampler_program_slots(s);
    size_t n_means = (size_t)calls * B * C;
    // the slots, t_all, the means; on the host: t_all's staging, a noise draw, the means
    float* dev = op->alloc(be, (slots * n + (size_t)calls * n2 + n_means) * sizeof(float));
    float* pinned = op->alloc_host(be, ((size_t)calls * n2 + n + n_means) * sizeof(float));
    dato_status st = dev && pinned ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "generate: cannot allocate the "
                                                         "device loop's buffers");
    dato_tensor slot[DATO_SLOT_COUNT]; // (B, C, h, w) each
    for (size_t k = 0; k < DATO_SLOT_COUNT && !st; k++)
        slot[k] = dato_tensor_make(k < slots ? dev + k * n : NULL, DATO_F32, be->device, 4,
                                   (int64_t[]){B, d->dims.in_channels, d->h, d->w});
    int64_t half_shape[4] = {B, d->dims.out_channels, d->h, d->w};
    dato_tensor y_u = dato_tensor_make(d->y.data, DATO_F32, be->device, 4, half_shape);       // (B, C, h, w)
    dato_tensor y_c = dato_tensor_make((float*)d->y.data + (g->guided ? n : 0), DATO_F32, be->device, 4, half_shape);
    if (!st && !g->guided) slot[DATO_SLOT_OUT] = y_c; // no guidance: the raw output is the model output
    float* t_all = dev + slots * n;   // (calls, n2) every call's timesteps
    float* means = t_all + (size_t)calls * n2;       // (calls, B, C) x's mean after each call
    float* noise_host = pinned + (size_t)calls * n2; // (B, C, h, w)
    float* means_host = noise_host + n;              // (calls, B, C)
    for (int k = 0; k < calls && !st; k++) {
        float t = dato_sampler_call_info(s, k).timestep;
        for (int i = 0; i < n2; i++) pinned[(size_t)k * n2 + i] = t;
    }
    if (!st) {
        op->upload(be, t_all, pinned, (size_t)calls * n2 * sizeof(float));
        op->upload(be, slot[DATO_SLOT_X].data, latents, n * sizeof(float));
    }
    for (int k = 0; k < calls && !st; k++) {
        dato_sampler_call call = dato_sampler_call_info(s, k);
        const dato_gene* gene = step_gene(g, call.step);
        if (dato_denoiser_depth(d, gene) > 0) {
            dato_tensor t_k = dato_tensor_make(t_all + (size_t)k * n2, DATO_F32, be->device, 1, (int64_t[]){n2});
            if ((st = op->copy(be, &d->t, &t_k, err))) break;
            for (int half = 0; half < n2 / B && !st; half++) {
                dato_tensor in_half = dato_tensor_make((float*)d->x.data + half * n, DATO_F32, be->device, 4,
                                                       slot[DATO_SLOT_X].shape);
                st = op->axpby(be, &in_half, call.input_scale, &slot[DATO_SLOT_X], 0.0f, &slot[DATO_SLOT_X], err);
            }
            if (!st) st = dato_denoiser_call(d, call.step, gene, 1, d->rt || g->gp->raw_out ? g->y2 : NULL, err);
        }
        if (st) break;
        if (g->gp->raw_out) // depth 0: y2 still holds the previous call's prediction, as on the host
            memcpy(g->gp->raw_out + (size_t)k * n2 * g->latent_numel, g->y2,
                   (size_t)n2 * g->latent_numel * sizeof(float));
        if (g->guided && (st = op->axpby(be, &slot[DATO_SLOT_OUT], 1.0f - g->guidance, &y_u, g->guidance, &y_c, err)))
            break;
        if (dato_sampler_needs_noise(s, k)) {
            op->synchronize(be); // the previous draw's copy has left noise_host
            dato_rng_fill_normal(noise_rng, noise_host, n);
            op->upload_async(be, slot[DATO_SLOT_NOISE].data, noise_host, n * sizeof(float));
        }
        dato_sampler_instr prog[DATO_SAMPLER_MAX_INSTR];
        int n_instr = 0;
        if ((st = dato_sampler_program(s, k, prog, &n_instr, err))) break;
        for (int i = 0; i < n_instr && !st; i++) {
            const dato_sampler_instr* in = &prog[i];
            st = op->axpby(be, &slot[in->dst], in->alpha, &slot[in->a], in->beta, &slot[in->b], err);
        }
        dato_tensor mean_k = dato_tensor_make(means + (size_t)k * B * C, DATO_F32, be->device, 2, (int64_t[]){B, C});
        if (!st) st = op->mean_hw(be, &mean_k, &slot[DATO_SLOT_X], err);
        if (!st && g->gp->progress) {
            op->synchronize(be);
            g->gp->progress(g->gp->progress_ctx, k + 1, calls);
        }
    }
    if (!st) {
        op->download(be, latents, slot[DATO_SLOT_X].data, n * sizeof(float));
        op->download(be, means_host, means, n_means * sizeof(float));
        size_t bad = dato_first_nonfinite(means_host, n_means), per_call = (size_t)B * C;
        if (bad < n_means) {
            char what[96];
            snprintf(what, sizeof what, "image %zu, channel %zu holds a NaN or infinity", bad % per_call / C, bad % C);
            st = dato_sampler_nonfinite(s, (int)(bad / per_call), what, err);
        }
    } else {
        op->synchronize(be); // nothing in flight reads pinned or dev once they are freed
    }
    if (pinned) op->free_host(be, pinned);
    if (dev) op->free(be, dev);
    return st;
}

// Conditioning must be finite: a NaN or infinity in it makes every latent NaN. x: (rows, per_row),
// rows [uncond x B; cond x B].
static dato_status check_conditioning(const char* name, const float* x, int rows, size_t per_row, dato_error* err) {
    size_t n = (size_t)rows * per_row, bad = dato_first_nonfinite(x, n);
    if (bad == n) return DATO_OK;
    return dato_fail(err, DATO_ERR_INVALID,
                     "generate: conditioning '%s' is not finite: row %zu of %d ([uncond x %d; cond x %d]), value %zu "
                     "of %zu is %g", name, bad / per_row, rows, rows / 2, rows / 2, bad % per_row, per_row,
                     (double)x[bad]);
}

dato_status dato_pipeline_generate(dato_pipeline* p, const dato_generate_params* gp, float* out, dato_error* err) {
    const dato_unet_config* c = &p->unet.cfg;
    const dato_conditioning* cond = gp->cond;
    dato_backend* be = p->be;
    if (!cond || cond->batch < 1 || gp->steps < 1 || gp->height < 1 || gp->width < 1 || !cond->context)
        return dato_fail(err, DATO_ERR_INVALID, "generate: steps and size must be >= 1 and the conditioning given");
    if (cond->dim != c->cross_attention_dim)
        return dato_fail(err, DATO_ERR_INVALID, "generate: context width %d, the UNet expects %d", cond->dim,
                         c->cross_attention_dim);
    int pooled_w = c->add_embed_in ? c->add_embed_in - 6 * c->addition_time_embed_dim : 0;
    if (pooled_w && (cond->pooled_dim != pooled_w || !cond->text_embeds || !cond->time_ids))
        return dato_fail(err, DATO_ERR_INVALID, "generate: this model (SDXL-style) needs text_embeds (%d wide) and "
                         "time_ids", pooled_w);
    if (!isfinite(gp->guidance)) // NaN > 1 is false: it would silently mean no guidance
        return dato_fail(err, DATO_ERR_INVALID, "generate: guidance %g is not a finite number", (double)gp->guidance);
    int B = cond->batch, guided = gp->guidance > 1.0f, n2 = guided ? 2 * B : B;
    DATO_TRY(check_conditioning("context", cond->context, 2 * B, (size_t)cond->seq * cond->dim, err));
    if (pooled_w) {
        DATO_TRY(check_conditioning("text_embeds", cond->text_embeds, 2 * B, (size_t)pooled_w, err));
        DATO_TRY(check_conditioning("time_ids", cond->time_ids, 2 * B, 6, err));
    }
    size_t latent = (size_t)c->in_channels * gp->height * gp->width;
    size_t skip_rows = guided ? 0 : (size_t)B; // without guidance only the cond half runs

    if (!p->den.model) dato_denoiser_init(&p->den, &dato_denoiser_unet, &p->unet, be);
    guided_model g = {.p = p, .d = &p->den, .gp = gp, .batch = B, .guided = guided, .latent_numel = latent,
                      .guidance = gp->guidance};
    dato_sampler* s = NULL;
    float* host = NULL;
    dato_scheduler_config sched;
    dato_status st = dato_pipeline_scheduler(p, gp->sampler, &sched, err);
    if (st) return st;
    if (gp->schedule && (st = dato_schedule_validate(gp->schedule, gp->steps, p->unet.n_branches, err))) return st;
    int cached = 0, prunes = 0; // any partial step: the workspace holds the deep-feature cache
    for (int k = 0; gp->schedule && k < gp->steps; k++) {
        const dato_gene* gk = &gp->schedule->genes[k];
        cached |= gk->depth >= 1 && gk->depth <= p->unet.n_branches;
        prunes |= gk->ratio > 0;
    }
    if ((st = dato_sampler_create(&s, &sched, gp->sampler, gp->steps, (size_t)B * latent, err))) return st;
    g.n_calls = dato_sampler_num_calls(s);
    dato_prune_config pc = gp->prune ? *gp->prune : dato_prune_config_default();
    if (!gp->prune) pc.seed = gp->seed;
    if ((st = dato_denoiser_begin(&p->den, n2, guided ? B : 0, gp->height, gp->width, cond->seq, cached,
                                  prunes ? &pc : NULL, err)))
        goto done;
    dato_denoiser_condition(&p->den, cond->context + skip_rows * cond->seq * cond->dim,
                            pooled_w ? cond->text_embeds + skip_rows * pooled_w : NULL,
                            pooled_w ? cond->time_ids + skip_rows * 6 : NULL);

    host = calloc(2 * (size_t)n2 * latent + (size_t)n2, sizeof *host);
    if (!host) {
        st = dato_fail(err, DATO_ERR_NOMEM, "generate: cannot allocate the loop's buffers");
        goto done;
    }
    g.x2 = host;
    g.y2 = g.x2 + (size_t)n2 * latent;
    g.t2 = g.y2 + (size_t)n2 * latent;

    // Initial latent: per-image noise streams so an image does not depend on its batch.
    float sigma = dato_sampler_init_noise_sigma(s);
    if (gp->init_latent) memcpy(out, gp->init_latent, (size_t)B * latent * sizeof(float));
    else dato_rng_image_noise(gp->seed, B, latent, out);
    for (size_t k = 0; k < (size_t)B * latent; k++) out[k] *= sigma;
    size_t bad = dato_first_nonfinite(out, (size_t)B * latent);
    if (bad < (size_t)B * latent) {
        st = dato_fail(err, DATO_ERR_INVALID, "generate: the initial latents are not finite: value %zu is %g (image %zu)",
                       bad, (double)out[bad], bad / latent);
        goto done;
    }
    dato_rng noise_rng;
    dato_rng_seed_stream(&noise_rng, gp->seed, 0x5a4d504c4552ull); // the sampler's own stream ("SAMPLER")
    int on_device = gp->loop == DATO_LOOP_DEVICE || (gp->loop == DATO_LOOP_AUTO && be->device != DATO_DEV_CPU);
    if (on_device && gp->loop == DATO_LOOP_AUTO) { // a sampler without programs (a nonlinear update) steps on the host
        dato_sampler_instr prog[DATO_SAMPLER_MAX_INSTR];
        int n_instr;
        dato_error ignored;
        on_device = dato_sampler_program(s, 0, prog, &n_instr, &ignored) == DATO_OK;
    }
    st = on_device ? denoise_on_device(&g, s, out, &noise_rng, err)
                   : dato_sampler_run(s, out, guided_model_call, &g, &noise_rng, err);

done:
    free(host);
    dato_sampler_destroy(s);
    return st;
}

// ---- decoding -----------------------------------------------------------------------------------------

const char* dato_pipeline_warning(const dato_pipeline* p) { return p->den.rt ? dato_runtime_warning(p->den.rt) : ""; }

int dato_pipeline_image_channels(const dato_pipeline* p) {
    if (p->has_vae) return p->vae.cfg.out_channels;
    return p->unet.cfg.out_channels == 4 ? 3 : p->unet.cfg.out_channels; // 4: a latent preview
}

dato_status dato_pipeline_decode(dato_pipeline* p, const float* latents, int B, int h, int w, uint8_t* rgb,
                                 float* image_f32, int* channels, dato_error* err) {
    const dato_unet_config* c = &p->unet.cfg;
    dato_backend* be = p->be;
    size_t latent = (size_t)c->out_channels * h * w;
    int ch = dato_pipeline_image_channels(p);
    if (ch != 1 && ch != 3)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "decode: cannot show a %d-channel %s output", ch,
                         p->has_vae ? "VAE" : "UNet");
    *channels = ch;
    if (!p->has_vae) { // pixel-space output, or a latent preview for a bare latent UNet
        for (int i = 0; i < B; i++) {
            dato_tensor x = dato_tensor_f32_3d((float*)latents + i * latent, c->out_channels, h, w);
            DATO_TRY(c->out_channels == 4 ? dato_latent_preview(&x, rgb + (size_t)i * h * w * ch, err)
                                     : dato_image_from_float(&x, rgb + (size_t)i * h * w * ch, err));
            if (image_f32 && ch == c->out_channels) memcpy(image_f32 + i * latent, x.data, latent * sizeof(float));
        }
        return DATO_OK;
    }
    int f = dato_pipeline_vae_factor(p), H = h * f, W = w * f;
    size_t img = (size_t)ch * H * W;
    dato_vae_ws ws;
    DATO_TRY(dato_vae_ws_create(&ws, &p->vae, 1, h, w, err));
    void* dev = be->ops->alloc(be, (latent + img) * sizeof(float));
    float* host = malloc(img * sizeof *host);
    dato_status st = dev && host ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "decode: out of memory");
    dato_tensor z = dato_tensor_make(dev, DATO_F32, be->device, 4, (int64_t[]){1, c->out_channels, h, w});
    dato_tensor x = dato_tensor_make((float*)dev + latent, DATO_F32, be->device, 4, (int64_t[]){1, ch, H, W});
    for (int i = 0; i < B && !st; i++) { // one image at a time: the VAE's activations dominate memory
        be->ops->upload(be, z.data, latents + i * latent, latent * sizeof(float));
        st = dato_vae_decode(&p->vae, &ws, &z, &x, err);
        if (st) break;
        be->ops->download(be, host, x.data, img * sizeof(float));
        dato_tensor hx = dato_tensor_f32_3d(host, ch, H, W);
        st = dato_image_from_float(&hx, rgb + (size_t)i * H * W * ch, err);
        if (image_f32) memcpy(image_f32 + i * img, host, img * sizeof(float));
    }
    if (dev) be->ops->free(be, dev);
    free(host);
    dato_vae_ws_free(&ws, &p->vae);
    return st;
}
