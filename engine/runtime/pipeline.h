// The generation pipeline: a model folder or single file -> tokenizers, text encoders, UNet,
// scheduler, VAE -> prompts to images, as diffusers' StableDiffusionPipeline and
// StableDiffusionXLPipeline do.
//
//   open -> encode(prompts, negatives) -> generate(conditioning, seed) -> decode(latents)
//
// Conditioning rows are laid out [uncond x B; cond x B] (diffusers' CFG batch). A model without
// text encoders (a bare UNet folder) takes its conditioning as tensors; a model without a VAE
// is a pixel-space model and its UNet output is the image.
#ifndef DATO_PIPELINE_H
#define DATO_PIPELINE_H

#include <stdint.h>

#include "backend.h"
#include "dato.h"
#include "denoiser.h"
#include "sampler.h"
#include "schedule.h"
#include "single_file.h"
#include "text_encoder.h"
#include "tokenizer.h"
#include "unet.h"
#include "unet_load.h"
#include "vae.h"

// How to open a model; the zero value takes everything from the model (docs/SINGLE_FILE.md).
typedef struct {
    dato_single_file_hints hints;  // single files: what tensor shapes cannot tell (zeros: the SD-family rules;
                                   // released SD checkpoints need none, small models of the same architecture may)
    const char* tokenizer_dir;     // single files: a CLIP tokenizer folder, vocab.json + merges.txt or tokenizer.json
                                   // (NULL: the shipped models/clip_tokenizer)
    const char* scheduler_config;  // a scheduler_config.json, a scheduler folder or a diffusers folder, in place
                                   // of the model's (NULL: the folder's, or the single file's model type's)
    const char* prediction_type;   // "epsilon" or "v_prediction" over the config's (NULL: the config's)
    dato_dtype dtype;              // GEMM weights: F32 (default), F16 or BF16, converted at load (weight_dtype.h)
} dato_pipeline_options;

typedef struct {
    dato_backend* be;
    dato_unet unet;
    dato_scheduler_config sched;      // read from sched_json with its own class; sched.kind = default sampler
    char* sched_json;                 // the scheduler_config.json text: the options', the folder's scheduler/, or the
                                      // single file's model type's (SD1.5's for a folder without one); re-read
                                      // with another sampler's class defaults (dato_pipeline_scheduler)
    char sched_source[4096];          // where that text came from, for messages
    int prediction_override;          // -1: the config's prediction type; else the dato_prediction_type of every run
    const dato_single_file_model* single_file; // what diffusers takes a single file for; NULL for a folder
    // Text side: 0 encoders (conditioning as tensors), 1 (SD1.x/2.x) or 2 (SDXL).
    int n_text;
    dato_tokenizer* tokenizer[2];
    dato_text_encoder text[2];
    int text_skip, text_final_norm;   // SD1/2: last layer + final LN; SDXL: penultimate, no final LN
    int force_zeros_for_empty_prompt; // SDXL: a missing negative prompt is zeros, not an encoding
    int has_vae;                      // 0: a pixel-space model
    dato_vae vae;
    // The UNet as a denoiser: its workspace, pruning runtime, buffers and graphs, made at the first
    // generate and kept across generate calls (denoiser.h: when it is planned again); den.stats.plans
    // counts its workspace plans.
    dato_denoiser den;
} dato_pipeline;

// Opens a diffusers folder (model_index.json, unet/, vae/, text_encoder[_2]/, tokenizer[_2]/,
// scheduler/), a bare UNet folder, or an LDM single file (.safetensors, or a PyTorch zip
// .ckpt/.pt/.pth read by the restricted unpickler). Weights are converted to f32 (GEMM weights to
// opt->dtype) once, so the file is closed when this returns. opt may be NULL.
dato_status dato_pipeline_open(dato_pipeline* p, const char* path, dato_backend* be, const dato_pipeline_options* opt,
                               dato_error* err);
void dato_pipeline_close(dato_pipeline* p);
// The scheduler config a run with sampler kind uses: sched_json read with that class's defaults for
// the keys it lacks (diffusers' X.from_config(pipe.scheduler.config)), the prediction override on top.
dato_status dato_pipeline_scheduler(const dato_pipeline* p, dato_sampler_kind kind, dato_scheduler_config* cfg,
                                    dato_error* err);
// Pixels per latent pixel: the VAE's upsampling factor, or 1 for a pixel-space model.
int dato_pipeline_vae_factor(const dato_pipeline* p);
// What image sides must be multiples of: the VAE factor times the UNet's downsampling (8 << 3 = 64
// for SD; 2 << 1 for the tiny test models).
int dato_pipeline_size_multiple(const dato_pipeline* p);

// What the UNet is conditioned on, for B images, rows [uncond x B; cond x B], on the host.
typedef struct {
    int batch, seq, dim, pooled_dim;
    float* context;      // (2B, seq, dim)
    float* text_embeds;  // SDXL: (2B, pooled_dim); else NULL
    float* time_ids;     // SDXL: (2B, 6); else NULL
} dato_conditioning;

// Encodes B prompts. negatives: NULL or B entries; a NULL entry means "no negative prompt"
// (the encoding of "" for SD1/2, zeros for SDXL with force_zeros_for_empty_prompt), "" is
// encoded like any text. height/width: the image size in pixels (SDXL's size conditioning).
dato_status dato_pipeline_encode(dato_pipeline* p, const char* const* prompts, const char* const* negatives, int B,
                                 int height, int width, dato_conditioning* out, dato_error* err);
// Conditioning from tensors shared by every image: context (2, S, X) [uncond; cond], SDXL
// text_embeds (2, P) and time_ids (2, 6) (NULL otherwise), repeated for B images.
dato_status dato_conditioning_repeat(dato_conditioning* out, int B, int seq, int dim, const float* context,
                                     int pooled_dim, const float* text_embeds, const float* time_ids, dato_error* err);
void dato_conditioning_free(dato_conditioning* c);

// Where the denoising loop runs its guidance and sampler updates.
typedef enum {
    DATO_LOOP_AUTO,   // the host loop on the CPU backend, the device loop on any other (but the host loop
                      // for a sampler whose update is not linear: DDIM with clip_sample)
    DATO_LOOP_HOST,   // the latents on the host: dato_sampler_step, diffusers' own arithmetic (the reference)
    DATO_LOOP_DEVICE, // the latents on the backend: guidance and sampler updates as axpby programs
                      // (sampler_program.h; ~1e-6 from the host loop), UNet steps replayed as graphs where
                      // the backend has them; the host waits only where pruning or raw_out needs a prediction
} dato_loop_kind;

typedef struct {
    int steps;
    dato_sampler_kind sampler;
    float guidance;              // classifier-free guidance scale; <= 1 runs the conditional half only
    uint64_t seed;               // image i draws its noise from stream i of this seed
    int height, width;           // latent size
    const dato_conditioning* cond; // its batch is the number of images
    const float* init_latent;    // optional (batch, C, h, w) standard-normal noise; NULL draws it from seed
    const dato_schedule* schedule; // optional DaTo schedule (depth, ratio per step); NULL: every step full
    const dato_prune_config* prune; // token pruning settings; NULL: defaults with the run's seed
    float* raw_out;              // optional (n_calls, 2B or B, C, h, w): every call's raw UNet output, before
                                 // guidance (depth-0 steps: the reused one), for tests and analysis
    // Optional: called after every UNet call (done of total), e.g. to print progress with an ETA.
    // The device loop then waits for each call to finish (between calls, never inside one).
    void (*progress)(void* ctx, int done, int total);
    void* progress_ctx;
    dato_loop_kind loop;
} dato_generate_params;

// Runs the whole loop; out (batch, C, h, w) receives the final latents on the host.
// Every buffer is allocated before the loop; the loop itself allocates nothing. A NaN or infinity
// in the guidance, the conditioning, the initial latents or the latents after a step is
// DATO_ERR_INVALID naming where it first appeared (docs/SAMPLERS.md).
dato_status dato_pipeline_generate(dato_pipeline* p, const dato_generate_params* gp, float* out, dato_error* err);
// What the last generate call warns of, "" when nothing: a prune ratio clamped to the non-base tokens
// of some block (dato_runtime_warning); for the caller to say.
const char* dato_pipeline_warning(const dato_pipeline* p);

// Channels of the decoded images: the VAE's out_channels (3 for SD, 1 for a gray model), or for a
// pixel-space model its UNet's (a 4-channel latent UNet without a VAE shows a 3-channel preview).
int dato_pipeline_image_channels(const dato_pipeline* p);
// Latents (B, C, h, w) on the host -> 8-bit images (B, H, W, channels), channels =
// dato_pipeline_image_channels: the VAE decoder, or the UNet output itself for a pixel-space
// model. image_f32 (B, channels, H, W) before quantization may be NULL.
dato_status dato_pipeline_decode(dato_pipeline* p, const float* latents, int B, int h, int w, uint8_t* rgb,
                                 float* image_f32, int* channels, dato_error* err);

#endif
