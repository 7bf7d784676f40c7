// The evaluator of dato-search (METHOD.md §5): a fixed set of prompts and initial noises (common
// random numbers: every schedule is scored on the same images' starting points), generation under
// a schedule, decoding, and feature extraction for FID/KID. The quality benchmark of the default
// model uses the same code with the baseline schedule.
//
// Image n is image i = n % per_prompt of prompt j = n / per_prompt; its initial noise is stream i
// of seed + j, as in dato-generate, so any image can be reproduced there.
#ifndef DATO_EVALUATOR_H
#define DATO_EVALUATOR_H

#include <stdint.h>

#include "extractor.h"
#include "pipeline.h"
#include "schedule.h"

typedef struct {
    int steps;
    float guidance;
    dato_sampler_kind sampler;
    uint64_t seed;
    int per_prompt;  // images per prompt
    int batch;       // images per generate call (the last call may be smaller)
    // Optional: called after every generate call with the images done so far (progress, ETA).
    void (*progress)(void* ctx, int done, int total);
    void* progress_ctx;
} dato_eval_config;

typedef struct {
    dato_pipeline* pipe;            // not owned
    dato_feature_extractor* fx;     // not owned
    dato_eval_config cfg;
    int n_prompts, n_images, n_batches;
    int h, w, C;                    // latent size and channels
    int H, W, ch;                   // image size and channels
    float* noise;                   // (n_images, C, h, w) standard normal, fixed for the evaluator's life
    dato_conditioning* conds;       // (n_batches) encoded once
    float* latents;                 // (batch, C, h, w)
    uint8_t* pixels;                // (n_images, H, W, ch) the last run's images
    float* fx_in;                   // (batch, in_c, in_h, in_w) the feature network's input
} dato_evaluator;

// Encodes the prompts (copied; NULL entries are not allowed) and draws the noise once.
dato_status dato_evaluator_create(dato_evaluator* ev, dato_pipeline* p, dato_feature_extractor* fx,
                                  const char* const* prompts, int n_prompts, const dato_eval_config* cfg,
                                  dato_error* err);
// The wall time of a run's denoising loops alone: the latency a schedule changes.
typedef struct {
    double total_s;            // all generate calls
    double best_s_per_image;   // the fastest call's time per image: every call does the same work per
                               // image, so the least is the one least disturbed by other load
} dato_eval_timing;

// Generates every image under schedule (NULL: the baseline, every step full), decodes them into
// ev->pixels and writes their features (n_images, fx->dim). predicted (n_images) may be NULL; else
// the extractor must be the feature network (metrics/featnet.h) and it gets each image's class.
// timing (may be NULL) gets the denoising wall time.
dato_status dato_evaluator_run(dato_evaluator* ev, const dato_schedule* schedule, float* features, int* predicted,
                               dato_eval_timing* timing, dato_error* err);
void dato_evaluator_free(dato_evaluator* ev);

#endif
