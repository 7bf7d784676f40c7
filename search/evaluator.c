// Common-random-number evaluation of a schedule (search/evaluator.h).
#include "evaluator.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "featnet.h"
#include "rng.h"

void dato_evaluator_free(dato_evaluator* ev) {
    if (ev->conds)
        for (int b = 0; b < ev->n_batches; b++) dato_conditioning_free(&ev->conds[b]);
    free(ev->conds);
    free(ev->noise);
    free(ev->latents);
    free(ev->pixels);
    free(ev->fx_in);
    free(ev->first);
    free(ev->clip_text);
    free(ev->clip_image);
    free(ev->clip_pixels);
    free(ev->clip_scores);
    memset(ev, 0, sizeof *ev);
}

// CLIP's text embedding of every used prompt (in batches of the evaluator's size, so the workspace
// planned for them is the one the images use), and the image buffers.
static dato_status clip_setup(dato_evaluator* ev, const char* const* prompts, dato_error* err) {
    dato_clip* clip = ev->cfg.clip;
    int B = ev->cfg.batch, D = dato_clip_dim(clip);
    ev->clip_text = malloc((size_t)ev->n_used * D * sizeof(float));
    ev->clip_image = malloc((size_t)B * D * sizeof(float));
    ev->clip_pixels = malloc((size_t)B * ev->H * ev->W * ev->ch);
    ev->clip_scores = malloc((size_t)ev->n_images * sizeof(double));
    if (!ev->clip_text || !ev->clip_image || !ev->clip_pixels || !ev->clip_scores)
        return dato_fail(err, DATO_ERR_NOMEM, "evaluator: out of memory for CLIP scores of %d images", ev->n_images);
    DATO_TRY(dato_clip_reserve(clip, B, B, err));
    for (int j = 0; j < ev->n_used; j += B) {
        int n = ev->n_used - j < B ? ev->n_used - j : B;
        DATO_TRY(dato_clip_text_embeds(clip, prompts + j, n, ev->clip_text + (size_t)j * D, err));
    }
    return DATO_OK;
}

// CLIP scores of images first .. first + nb - 1 (ev->pixels): embedded in one call of the full batch
// size (a short last call padded with its last image), each against its prompt's text.
static dato_status clip_score_batch(dato_evaluator* ev, int first, int nb, int ch, dato_error* err) {
    int B = ev->cfg.batch, D = dato_clip_dim(ev->cfg.clip);
    size_t image = (size_t)ev->H * ev->W * ch;
    const uint8_t* px = ev->pixels + (size_t)first * image;
    if (nb < B) {
        memcpy(ev->clip_pixels, px, (size_t)nb * image);
        for (int i = nb; i < B; i++) memcpy(ev->clip_pixels + (size_t)i * image, px + (size_t)(nb - 1) * image, image);
        px = ev->clip_pixels;
    }
    DATO_TRY(dato_clip_image_embeds(ev->cfg.clip, px, B, ev->H, ev->W, ch, ev->clip_image, err));
    for (int i = 0, j = 0; i < nb; i++) {
        while (ev->first[j + 1] <= first + i) j++;
        ev->clip_scores[first + i] =
            100.0 * dato_clip_cosine(ev->clip_image + (size_t)i * D, ev->clip_text + (size_t)j * D, D);
    }
    return DATO_OK;
}

double dato_evaluator_clip_score(const dato_evaluator* ev) {
    if (!ev->clip_scores || ev->n_images < 1) return NAN;
    double sum = 0;
    for (int n = 0; n < ev->n_images; n++) sum += ev->clip_scores[n];
    return fmax(sum / ev->n_images, 0.0);
}

dato_status dato_evaluator_check_size(const dato_pipeline* p, int H, int W, dato_error* err) {
    int m = dato_pipeline_size_multiple(p);
    if (H < m || W < m || H % m || W % m)
        return dato_fail(err, DATO_ERR_INVALID, "image size %dx%d (h x w): this model needs positive multiples of %d "
                         "(the VAE factor %d times the UNet's downsampling)", H, W, m, dato_pipeline_vae_factor(p));
    return DATO_OK;
}

dato_status dato_evaluator_create(dato_evaluator* ev, dato_pipeline* p, dato_feature_extractor* fx,
                                  const char* const* prompts, int n_prompts, const dato_eval_config* cfg,
                                  dato_error* err) {
    memset(ev, 0, sizeof *ev);
    if (!p || !fx || !prompts || n_prompts < 1 || !cfg)
        return dato_fail(err, DATO_ERR_INVALID, "evaluator: model, feature network and prompts are required");
    if (cfg->images < 1 || cfg->images > DATO_EVAL_MAX_IMAGES || cfg->batch < 1 || cfg->steps < 1 ||
        cfg->steps > DATO_SCHEDULE_MAX_STEPS)
        return dato_fail(err, DATO_ERR_INVALID, "evaluator: images %d, batch %d, steps %d: expected images in 1..%d, "
                         "batch >= 1, steps in 1..%d", cfg->images, cfg->batch, cfg->steps, DATO_EVAL_MAX_IMAGES,
                         DATO_SCHEDULE_MAX_STEPS);
    if (p->n_text == 0) return dato_fail(err, DATO_ERR_INVALID, "evaluator: the model has no text encoder");
    for (int j = 0; j < n_prompts; j++)
        if (!prompts[j]) return dato_fail(err, DATO_ERR_INVALID, "evaluator: prompt %d is NULL", j);
    const dato_unet_config* c = &p->unet.cfg;
    int f = dato_pipeline_vae_factor(p);
    int H = cfg->height ? cfg->height : c->sample_size * f, W = cfg->width ? cfg->width : c->sample_size * f;
    DATO_TRY(dato_evaluator_check_size(p, H, W, err));
    *ev = (dato_evaluator){.pipe = p, .fx = fx, .cfg = *cfg, .n_prompts = n_prompts, .n_images = cfg->images,
                           .n_used = cfg->images < n_prompts ? cfg->images : n_prompts, .h = H / f, .w = W / f,
                           .H = H, .W = W, .C = c->in_channels, .ch = dato_pipeline_image_channels(p)};
    if (ev->cfg.batch > ev->n_images) ev->cfg.batch = ev->n_images;
    int B = ev->cfg.batch;
    ev->n_batches = ev->n_images / B + (ev->n_images % B != 0);
    size_t latent = (size_t)ev->C * ev->h * ev->w;
    ev->first = malloc(((size_t)n_prompts + 1) * sizeof *ev->first);
    ev->noise = malloc((size_t)ev->n_images * latent * sizeof(float));
    ev->latents = malloc((size_t)B * latent * sizeof(float));
    ev->pixels = malloc((size_t)ev->n_images * ev->H * ev->W * ev->ch);
    ev->fx_in = malloc((size_t)B * fx->in_c * fx->in_h * fx->in_w * sizeof(float));
    ev->conds = calloc((size_t)ev->n_batches, sizeof *ev->conds);
    const char** texts = malloc((size_t)B * sizeof *texts);
    int* prompt_of = malloc((size_t)ev->n_images * sizeof *prompt_of); // (n_images)
    dato_status st = ev->first && ev->noise && ev->latents && ev->pixels && ev->fx_in && ev->conds && texts && prompt_of
                         ? DATO_OK
                         : dato_fail(err, DATO_ERR_NOMEM, "evaluator: out of memory for %d images", ev->n_images);
    for (int j = 0, n = 0; j <= n_prompts && !st; j++) {
        ev->first[j] = n;
        int count = j < n_prompts ? ev->n_images / n_prompts + (j < ev->n_images % n_prompts) : 0;
        for (int i = 0; i < count; i++, n++) {
            prompt_of[n] = j;
            dato_rng r;
            dato_rng_seed_stream(&r, cfg->seed + (uint64_t)j, (uint64_t)i);
            dato_rng_fill_normal(&r, ev->noise + (size_t)n * latent, latent);
        }
    }
    for (int b = 0; b < ev->n_batches && !st; b++) {
        int first = b * B, nb = ev->n_images - first < B ? ev->n_images - first : B;
        for (int i = 0; i < nb; i++) texts[i] = prompts[prompt_of[first + i]];
        st = dato_pipeline_encode(p, texts, NULL, nb, ev->H, ev->W, &ev->conds[b], err);
    }
    free(prompt_of);
    if (!st && cfg->clip) st = clip_setup(ev, prompts, err);
    free(texts);
    if (st) dato_evaluator_free(ev);
    return st;
}

dato_status dato_evaluator_run(dato_evaluator* ev, const dato_schedule* schedule, float* features, int* predicted,
                               dato_eval_timing* timing, dato_error* err) {
    return dato_evaluator_run_batches(ev, schedule, 0, ev->n_batches, features, predicted, timing, err);
}

dato_status dato_evaluator_run_batches(dato_evaluator* ev, const dato_schedule* schedule, int first_batch,
                                       int n_batches, float* features, int* predicted, dato_eval_timing* timing,
                                       dato_error* err) {
    dato_feature_extractor* fx = ev->fx;
    if (predicted && !dato_featnet_config_of(fx))
        return dato_fail(err, DATO_ERR_INVALID, "evaluator: classes need the feature network, not %s", fx->name);
    if (first_batch < 0 || n_batches < 1 || first_batch > ev->n_batches - n_batches)
        return dato_fail(err, DATO_ERR_INVALID, "evaluator: batches %d..%d of %d", first_batch,
                         first_batch + n_batches - 1, ev->n_batches);
    int B = ev->cfg.batch;
    size_t latent = (size_t)ev->C * ev->h * ev->w, image = (size_t)ev->H * ev->W * ev->ch;
    size_t fx_image = (size_t)fx->in_c * fx->in_h * fx->in_w;
    double denoise = 0, best = INFINITY;
    for (int b = first_batch; b < first_batch + n_batches; b++) {
        int first = b * B, nb = ev->conds[b].batch;
        dato_generate_params gp = {.steps = ev->cfg.steps, .sampler = ev->cfg.sampler, .guidance = ev->cfg.guidance,
                                   .seed = ev->cfg.seed + (uint64_t)b, .height = ev->h, .width = ev->w,
                                   .cond = &ev->conds[b], .init_latent = ev->noise + (size_t)first * latent,
                                   .schedule = schedule};
        double t0 = dato_clock_s();
        DATO_TRY(dato_pipeline_generate(ev->pipe, &gp, ev->latents, err));
        double dt = dato_clock_s() - t0;
        denoise += dt;
        best = fmin(best, dt / nb);
        int ch = 0;
        uint8_t* px = ev->pixels + (size_t)first * image;
        DATO_TRY(dato_pipeline_decode(ev->pipe, ev->latents, nb, ev->h, ev->w, px, NULL, &ch, err));
        if (ev->cfg.clip) DATO_TRY(clip_score_batch(ev, first, nb, ch, err));
        for (int i = 0; i < nb; i++)
            DATO_TRY(fx->preprocess(fx, px + (size_t)i * image, ev->H, ev->W, ch, ev->fx_in + (size_t)i * fx_image, err));
        dato_tensor x = dato_tensor_f32_4d(ev->fx_in, nb, fx->in_c, fx->in_h, fx->in_w);
        float* f = features + (size_t)first * fx->dim; // (nb, dim)
        if (predicted) {
            DATO_TRY(dato_featnet_classify(fx, &x, f, NULL, predicted + first, err));
        } else {
            dato_tensor y = dato_tensor_f32_2d(f, nb, fx->dim);
            DATO_TRY(fx->forward(fx, &x, &y, err));
        }
        if (ev->cfg.progress) ev->cfg.progress(ev->cfg.progress_ctx, first + nb, ev->n_images);
    }
    if (timing) *timing = (dato_eval_timing){denoise, best};
    return DATO_OK;
}
