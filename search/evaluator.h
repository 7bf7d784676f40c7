// The evaluator of dato-search (METHOD.md §5): a fixed set of prompts and initial noises (common
// random numbers: every schedule is scored on the same images' starting points), generation under
// a schedule, decoding, and feature extraction for FID/KID. The quality benchmark of the default
// model uses the same code with the baseline schedule.
//
// The images are spread over the prompts in order: with I images and P prompts, each prompt gets
// I / P and the first I % P one more (a prompt past the I-th gets none when I < P). Image n is
// image i of prompt j (n = first[j] + i); its initial noise is stream i of seed + j, as in
// dato-generate, so any image can be reproduced there.
//
// Every generate call goes through the pipeline's denoiser (engine/runtime/denoiser.h), which the pipeline
// keeps: the calls of a run (a short last one included) and of every later run share one workspace,
// planned at the first call.
#ifndef DATO_EVALUATOR_H
#define DATO_EVALUATOR_H

#include <stdint.h>

#include "clip.h"
#include "extractor.h"
#include "pipeline.h"
#include "schedule.h"

#define DATO_EVAL_MAX_IMAGES 1000000 // images of one evaluator: the counts stay far from int overflow

typedef struct {
    int steps;
    float guidance;
    dato_sampler_kind sampler;
    uint64_t seed;
    int images;      // images in all, spread over the prompts: 1..DATO_EVAL_MAX_IMAGES
    int height, width; // image size in pixels (multiples of the VAE factor); 0: the model's default
    int batch;       // images per generate call (the last call may be smaller)
    dato_clip* clip; // optional (not owned): each image's CLIP score against its prompt, in clip_scores
    // Optional: called after every generate call with the images done so far (progress, ETA).
    void (*progress)(void* ctx, int done, int total);
    void* progress_ctx;
} dato_eval_config;

typedef struct {
    dato_pipeline* pipe;            // not owned
    dato_feature_extractor* fx;     // not owned
    dato_eval_config cfg;
    int n_prompts, n_images, n_batches;
    int n_used;                     // prompts with at least one image: min(n_images, n_prompts)
    int* first;                     // (n_prompts + 1) prompt j's images are first[j] .. first[j + 1] - 1
    int h, w, C;                    // latent size and channels
    int H, W, ch;                   // image size and channels
    float* noise;                   // (n_images, C, h, w) standard normal, fixed for the evaluator's life
    dato_conditioning* conds;       // (n_batches) encoded once
    float* latents;                 // (batch, C, h, w)
    uint8_t* pixels;                // (n_images, H, W, ch) the last run's images
    float* fx_in;                   // (batch, in_c, in_h, in_w) the feature network's input
    // with cfg.clip
    float* clip_text;               // (n_used, D) each used prompt's CLIP text embedding
    float* clip_image;              // (batch, D) a call's image embeddings
    uint8_t* clip_pixels;           // (batch, H, W, ch) a short last call's images, padded to batch
    double* clip_scores;            // (n_images) 100 cos(image, its prompt) of the last run
} dato_evaluator;

// DATO_ERR_INVALID, saying what sides the model takes, unless H x W pixels is a size p can generate.
dato_status dato_evaluator_check_size(const dato_pipeline* p, int H, int W, dato_error* err);
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
// ev->pixels and writes their features (n_images, fx->dim) (and with cfg.clip, ev->clip_scores). predicted (n_images) may be NULL; else
// the extractor must be the feature network (metrics/featnet.h) and it gets each image's class.
// timing (may be NULL) gets the denoising wall time.
dato_status dato_evaluator_run(dato_evaluator* ev, const dato_schedule* schedule, float* features, int* predicted,
                               dato_eval_timing* timing, dato_error* err);
// The same for batches first_batch .. first_batch + n_batches - 1 alone (images first_batch * batch
// on): their images, bit for bit those of a whole run, a share of a run spread over evaluators.
// features (n_images, fx->dim), predicted and ev->pixels, ev->clip_scores are the whole run's:
// only those images' rows are written. timing covers those batches.
dato_status dato_evaluator_run_batches(dato_evaluator* ev, const dato_schedule* schedule, int first_batch,
                                       int n_batches, float* features, int* predicted, dato_eval_timing* timing,
                                       dato_error* err);
void dato_evaluator_free(dato_evaluator* ev);
// The CLIP score of the last run, as torchmetrics' CLIPScore: max(mean of ev->clip_scores, 0).
double dato_evaluator_clip_score(const dato_evaluator* ev);

#endif
