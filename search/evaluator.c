// Common-random-number evaluation of a schedule (search/evaluator.h).
#include "evaluator.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "featnet.h"
#include "rng.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void dato_evaluator_free(dato_evaluator* ev) {
    if (ev->conds)
        for (int b = 0; b < ev->n_batches; b++) dato_conditioning_free(&ev->conds[b]);
    free(ev->conds);
    free(ev->noise);
    free(ev->latents);
    free(ev->pixels);
    free(ev->fx_in);
    memset(ev, 0, sizeof *ev);
}

dato_status dato_evaluator_create(dato_evaluator* ev, dato_pipeline* p, dato_feature_extractor* fx,
                                  const char* const* prompts, int n_prompts, const dato_eval_config* cfg,
                                  dato_error* err) {
    memset(ev, 0, sizeof *ev);
    if (!p || !fx || !prompts || n_prompts < 1 || !cfg)
        return dato_fail(err, DATO_ERR_INVALID, "evaluator: model, feature network and prompts are required");
    if (cfg->per_prompt < 1 || cfg->batch < 1 || cfg->steps < 1 || cfg->steps > DATO_SCHEDULE_MAX_STEPS)
        return dato_fail(err, DATO_ERR_INVALID, "evaluator: images per prompt and batch must be >= 1, steps in 1..%d",
                         DATO_SCHEDULE_MAX_STEPS);
    if (p->n_text == 0) return dato_fail(err, DATO_ERR_INVALID, "evaluator: the model has no text encoder");
    for (int j = 0; j < n_prompts; j++)
        if (!prompts[j]) return dato_fail(err, DATO_ERR_INVALID, "evaluator: prompt %d is NULL", j);
    const dato_unet_config* c = &p->unet.cfg;
    int f = dato_pipeline_vae_factor(p);
    *ev = (dato_evaluator){.pipe = p, .fx = fx, .cfg = *cfg, .n_prompts = n_prompts,
                           .n_images = n_prompts * cfg->per_prompt, .h = c->sample_size, .w = c->sample_size,
                           .C = c->in_channels, .ch = dato_pipeline_image_channels(p)};
    ev->H = ev->h * f;
    ev->W = ev->w * f;
    if (ev->cfg.batch > ev->n_images) ev->cfg.batch = ev->n_images;
    int B = ev->cfg.batch;
    ev->n_batches = (ev->n_images + B - 1) / B;
    size_t latent = (size_t)ev->C * ev->h * ev->w;
    ev->noise = malloc((size_t)ev->n_images * latent * sizeof(float));
    ev->latents = malloc((size_t)B * latent * sizeof(float));
    ev->pixels = malloc((size_t)ev->n_images * ev->H * ev->W * ev->ch);
    ev->fx_in = malloc((size_t)B * fx->in_c * fx->in_h * fx->in_w * sizeof(float));
    ev->conds = calloc((size_t)ev->n_batches, sizeof *ev->conds);
    const char** texts = malloc((size_t)B * sizeof *texts);
    dato_status st = ev->noise && ev->latents && ev->pixels && ev->fx_in && ev->conds && texts
                         ? DATO_OK
                         : dato_fail(err, DATO_ERR_NOMEM, "evaluator: out of memory for %d images", ev->n_images);
    for (int n = 0; n < ev->n_images && !st; n++) {
        dato_rng r;
        dato_rng_seed_stream(&r, cfg->seed + (uint64_t)(n / cfg->per_prompt), (uint64_t)(n % cfg->per_prompt));
        dato_rng_fill_normal(&r, ev->noise + (size_t)n * latent, latent);
    }
    for (int b = 0; b < ev->n_batches && !st; b++) {
        int first = b * B, nb = first + B <= ev->n_images ? B : ev->n_images - first;
        for (int i = 0; i < nb; i++) texts[i] = prompts[(first + i) / cfg->per_prompt];
        st = dato_pipeline_encode(p, texts, NULL, nb, ev->H, ev->W, &ev->conds[b], err);
    }
    free(texts);
    if (st) dato_evaluator_free(ev);
    return st;
}

dato_status dato_evaluator_run(dato_evaluator* ev, const dato_schedule* schedule, float* features, int* predicted,
                               dato_eval_timing* timing, dato_error* err) {
    dato_feature_extractor* fx = ev->fx;
    if (predicted && !dato_featnet_config_of(fx))
        return dato_fail(err, DATO_ERR_INVALID, "evaluator: classes need the feature network, not %s", fx->name);
    int B = ev->cfg.batch;
    size_t latent = (size_t)ev->C * ev->h * ev->w, image = (size_t)ev->H * ev->W * ev->ch;
    size_t fx_image = (size_t)fx->in_c * fx->in_h * fx->in_w;
    double denoise = 0, best = INFINITY;
    for (int b = 0; b < ev->n_batches; b++) {
        int first = b * B, nb = ev->conds[b].batch;
        dato_generate_params gp = {.steps = ev->cfg.steps, .sampler = ev->cfg.sampler, .guidance = ev->cfg.guidance,
                                   .seed = ev->cfg.seed + (uint64_t)b, .height = ev->h, .width = ev->w,
                                   .cond = &ev->conds[b], .init_latent = ev->noise + (size_t)first * latent,
                                   .schedule = schedule};
        double t0 = now_s();
        DATO_TRY(dato_pipeline_generate(ev->pipe, &gp, ev->latents, err));
        double dt = now_s() - t0;
        denoise += dt;
        best = fmin(best, dt / nb);
        int ch = 0;
        uint8_t* px = ev->pixels + (size_t)first * image;
        DATO_TRY(dato_pipeline_decode(ev->pipe, ev->latents, nb, ev->h, ev->w, px, NULL, &ch, err));
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
