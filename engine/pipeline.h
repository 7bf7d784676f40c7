// The generation pipeline: a model folder or file -> UNet + scheduler -> the denoising loop
// with classifier-free guidance -> final latents. Text encoders and the VAE join in the
// pipeline issue; until then conditioning comes in as tensors.
#ifndef DATO_PIPELINE_H
#define DATO_PIPELINE_H

#include <stdint.h>

#include "backend.h"
#include "sampler.h"
#include "unet.h"
#include "unet_load.h"

typedef struct {
    dato_backend* be;
    dato_unet unet;
    dato_scheduler_config sched;   // scheduler/scheduler_config.json, or SD1.5's; sched.kind = default sampler
    char sched_path[4096];         // that file, re-read for another sampler's defaults ("" if none)
} dato_pipeline;

// Opens a diffusers folder (unet/, scheduler/) or an LDM single file. hints: see unet_load.h.
dato_status dato_pipeline_open(dato_pipeline* p, const char* path, dato_backend* be, const dato_unet_ldm_hints* hints,
                               dato_error* err);
void dato_pipeline_close(dato_pipeline* p);

typedef struct {
    int steps;
    dato_sampler_kind sampler;
    float guidance;              // classifier-free guidance scale; <= 1 runs the conditional half only
    uint64_t seed;               // image i draws its noise from stream i of this seed
    int batch;                   // images
    int height, width;           // latent size
    int seq;                     // context length S
    const float* context;        // (2, S, X) [uncond; cond], shared by every image, on the host
    const float* text_embeds;    // SDXL: (2, P) [uncond; cond]; else NULL
    const float* time_ids;       // SDXL: (2, 6) [uncond; cond]; else NULL
    const float* init_latent;    // optional (batch, C, h, w) standard-normal noise; NULL draws it from seed
    // Optional: called after every UNet call (done of total), e.g. to print progress with an ETA.
    void (*progress)(void* ctx, int done, int total);
    void* progress_ctx;
} dato_generate_params;

// Runs the whole loop; out (batch, C, h, w) receives the final latents on the host.
// Every buffer is allocated before the loop; the loop itself allocates nothing.
dato_status dato_pipeline_generate(dato_pipeline* p, const dato_generate_params* gp, float* out, dato_error* err);

#endif
